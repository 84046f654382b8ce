#!/usr/bin/env bash
# Checks that the top-level modules of a crate import each other without a
# cycle: for every `src` folder given (by default proxy/src and daemon/src),
# each file's `crate::<module>` paths (`use crate::{a, b}` groups included,
# and `super::` paths that climb to the crate root) make an edge from the
# top-level module the file belongs to, to the module named. Code under
# `#[cfg(test)]` and files named tests.rs are left out; so are the crate
# roots (lib.rs, main.rs), which declare every module.
#
# Usage: scripts/check-module-dag.sh [--edges] [SRC_DIR...]
#   --edges  also print every edge found, with its first occurrence
# Exits 1 listing each cycle (with where each of its edges comes from),
# 0 when every folder given is a DAG, 2 on a usage error.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v python3 >/dev/null 2>&1 || {
    echo "check-module-dag: python3 is needed" >&2
    exit 2
}

exec python3 - "$@" <<'PYTHON'
import os
import re
import sys

IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
GROUP_ITEM = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)")


def strip(text):
    """The text with comments, string and char literals blanked out
    (newlines kept, so line numbers stay right)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "r" and re.match(r'r#*"', text[i:]) and not (
            i and (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = text.find('"' + hashes, i + 2 + len(hashes))
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            # A char literal ('a', '\n', '\u{7f}', '"'), else a lifetime.
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(c)
                i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def skip_item(code, i):
    """The end of the item starting at `i`: after its `;` or its braced
    body, whichever comes first outside brackets."""
    depth = 0
    n = len(code)
    while i < n:
        c = code[i]
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        elif c == ";" and depth == 0:
            return i + 1
        elif c == "{" and depth == 0:
            level = 0
            while i < n:
                if code[i] == "{":
                    level += 1
                elif code[i] == "}":
                    level -= 1
                    if level == 0:
                        return i + 1
                i += 1
            return n
        i += 1
    return n


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")
OTHER_ATTRIBUTE = re.compile(r"\s*#\s*\[[^\]]*\]")
MOD_DECLARATION = re.compile(r"\s*(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+([A-Za-z_][A-Za-z0-9_]*)\s*;")


def remove_test_code(code):
    """Blanks every item under `#[cfg(test)]`; returns the code and the
    names of the out-of-line modules so declared (their files are test
    code too)."""
    test_modules = []
    while True:
        m = CFG_TEST.search(code)
        if not m:
            return code, test_modules
        start, i = m.start(), m.end()
        while True:
            attribute = OTHER_ATTRIBUTE.match(code, i)
            if not attribute:
                break
            i = attribute.end()
        declaration = MOD_DECLARATION.match(code, i)
        if declaration:
            test_modules.append(declaration.group(1))
        end = skip_item(code, i)
        code = code[:start] + re.sub(r"[^\n]", " ", code[start:end]) + code[end:]


def module_files(src):
    """(top-level module, path inside it as a list, file) for every source
    file of the crate but its roots and its tests."""
    files = []
    for directory, folders, names in os.walk(src):
        folders[:] = sorted(f for f in folders if f != "bin")
        for name in sorted(names):
            if not name.endswith(".rs"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, src).split(os.sep)
            if relative in (["lib.rs"], ["main.rs"]) or name == "tests.rs":
                continue
            parts = relative[:-1] + ([] if name == "mod.rs" else [name[:-3]])
            files.append((parts[0], parts, path))
    return files


def crate_paths(code):
    """(line, number of `super`s, first segment, offset) of every path
    that may start at the crate root: `crate::a`, each item of
    `crate::{a, b::c}` (no `super`), and `super::` chains."""
    found = []
    for m in re.finditer(r"(?<![A-Za-z0-9_])\$?crate\s*::\s*", code):
        line = code.count("\n", 0, m.start()) + 1
        rest = m.end()
        if code.startswith("{", rest):
            depth, j, segment_start = 0, rest, rest + 1
            while j < len(code):
                c = code[j]
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        break
                if depth == 1 and c in "{,":
                    name = GROUP_ITEM.match(code, j + 1)
                    if name:
                        found.append((line, 0, name.group(1), j))
                j += 1
        else:
            name = IDENT.match(code, rest)
            if name:
                found.append((line, 0, name.group(0), rest))
    for m in re.finditer(r"(?<![A-Za-z0-9_:])((?:super\s*::\s*)+)([A-Za-z_][A-Za-z0-9_]*)", code):
        line = code.count("\n", 0, m.start()) + 1
        supers = m.group(1).count("super")
        found.append((line, supers, m.group(2), m.start()))
    return found


def inline_module_depth(code, position):
    """How many inline `mod name { … }` blocks enclose `position`."""
    depth = 0
    stack = []
    for m in re.finditer(r"\bmod\s+[A-Za-z_][A-Za-z0-9_]*\s*\{|[{}]", code[:position]):
        token = m.group(0)
        if token == "}":
            if stack and stack.pop():
                depth -= 1
        elif token == "{":
            stack.append(False)
        else:
            stack.append(True)
            depth += 1
    return depth


def is_test_file(path, test_files):
    """Whether `path` is one of `test_files` or inside the folder of one."""
    return any(
        path == test or (test.endswith("mod.rs") and path.startswith(os.path.dirname(test) + os.sep))
        for test in test_files
    )


def edges_of(src):
    modules = set()
    for name in os.listdir(src):
        path = os.path.join(src, name)
        if name.endswith(".rs") and name not in ("lib.rs", "main.rs"):
            modules.add(name[:-3])
        elif os.path.isdir(path) and name != "bin":
            modules.add(name)
    test_files = set()
    edges = {}
    files = module_files(src)
    sources = {}
    for module, parts, path in files:
        with open(path, encoding="utf-8") as file:
            code, test_modules = remove_test_code(strip(file.read()))
        sources[path] = (module, parts, code)
        folder = os.path.dirname(path)
        own = folder if os.path.basename(path) == "mod.rs" else os.path.splitext(path)[0]
        for test_module in test_modules:
            test_files.add(os.path.join(own, test_module + ".rs"))
            test_files.add(os.path.join(own, test_module, "mod.rs"))
    for root in ("lib.rs", "main.rs"):
        path = os.path.join(src, root)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as file:
                _, test_modules = remove_test_code(strip(file.read()))
            for test_module in test_modules:
                test_files.add(os.path.join(src, test_module + ".rs"))
                test_files.add(os.path.join(src, test_module, "mod.rs"))
    for path, (module, parts, code) in sources.items():
        if is_test_file(path, test_files):
            continue
        for line, supers, target, position in crate_paths(code):
            if supers:
                depth = len(parts) + inline_module_depth(code, position)
                if depth - supers != 0:
                    continue  # still inside its own top-level module
            if target in modules and target != module:
                edges.setdefault((module, target), f"{path}:{line}")
    return modules, edges


def cycles(modules, edges):
    """The strongly connected components with more than one module
    (Tarjan's algorithm)."""
    graph = {module: sorted(t for (f, t) in edges if f == module) for module in modules}
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def main(arguments):
    show_edges = False
    folders = []
    for argument in arguments:
        if argument == "--edges":
            show_edges = True
        elif argument in ("-h", "--help"):
            print("usage: scripts/check-module-dag.sh [--edges] [SRC_DIR...]")
            return 0
        elif argument.startswith("-"):
            print(f"check-module-dag: unknown option {argument}", file=sys.stderr)
            return 2
        else:
            folders.append(argument.rstrip("/"))
    if not folders:
        folders = ["proxy/src", "daemon/src"]
    failed = False
    for src in folders:
        if not os.path.isdir(src):
            print(f"check-module-dag: no folder {src}", file=sys.stderr)
            return 2
        modules, edges = edges_of(src)
        if show_edges:
            for (source, target), where in sorted(edges.items()):
                print(f"{src}: {source} -> {target}  ({where})")
        found = cycles(modules, edges)
        if not found:
            print(f"{src}: {len(modules)} modules, {len(edges)} imports, no cycle")
            continue
        failed = True
        for component in found:
            print(f"{src}: modules importing each other in a cycle: {', '.join(component)}")
            for (source, target), where in sorted(edges.items()):
                if source in component and target in component:
                    print(f"    {source} -> {target}  ({where})")
    return 1 if failed else 0


sys.exit(main(sys.argv[1:]))
PYTHON
