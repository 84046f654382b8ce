#!/usr/bin/env python3
"""Checks the size limits of doc/architecture.md: no source file over 800
lines and no function over 150 lines, test code aside (files under a
`tests/` or `benches/` folder, files named `tests.rs`, and `#[cfg(test)]`
modules). Files the HTTP/1 relay rewrite will replace are listed in
EXEMPT with the reason.

Usage: scripts/check-sizes.py [FOLDER...]   (default: every crate)
Exit status 1 and one line per excess when a limit is passed.

It relies on rustfmt's layout: an item's closing brace sits on its own
line at the indentation of the line that opened it.
"""

import os
import re
import sys

FILE_LIMIT = 800
FUNCTION_LIMIT = 150
CRATES = ["command-lib", "proxy", "daemon", "ctl", "top"]
# path -> why it is exempt for now
EXEMPT = {}

FN = re.compile(
    r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?(?:default\s+)?(?:const\s+)?(?:async\s+)?"
    r"(?:unsafe\s+)?(?:extern\s+\"[^\"]*\"\s+)?fn\s+([A-Za-z_][A-Za-z0-9_]*)"
)
TEST_MODULE = re.compile(r"^(\s*)(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{")


def closing(lines, start, indent):
    """The index of the line closing the item opened at `start`."""
    if lines[start].rstrip().endswith(";"):
        return start  # a declaration without a body
    for index in range(start, len(lines)):
        line = lines[index]
        if line.startswith(indent + "}") and not line.startswith(indent + " "):
            return index
    return len(lines) - 1


def test_ranges(lines):
    """Line ranges of `#[cfg(test)]` modules."""
    ranges = []
    for index, line in enumerate(lines):
        if line.strip() != "#[cfg(test)]":
            continue
        following = index + 1
        while following < len(lines) and lines[following].strip().startswith("#["):
            following += 1
        if following < len(lines):
            match = TEST_MODULE.match(lines[following])
            if match:
                ranges.append((index, closing(lines, following, match.group(1))))
    return ranges


def check(path, problems):
    with open(path, encoding="utf-8") as source:
        lines = source.read().split("\n")
    tests = test_ranges(lines)

    def in_tests(index):
        return any(start <= index <= end for start, end in tests)

    counted = sum(1 for index in range(len(lines)) if not in_tests(index))
    if counted > FILE_LIMIT:
        problems.append(f"{path}: {counted} lines (limit {FILE_LIMIT})")
    for index, line in enumerate(lines):
        match = FN.match(line)
        if not match or in_tests(index):
            continue
        # The signature may span several lines; the body starts at the
        # first line ending with "{" at or after the `fn` line.
        end = closing(lines, index, match.group(1))
        length = end - index + 1
        if length > FUNCTION_LIMIT:
            problems.append(
                f"{path}:{index + 1}: fn {match.group(2)} is {length} lines (limit {FUNCTION_LIMIT})"
            )


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    folders = sys.argv[1:] or CRATES
    problems = []
    for folder in folders:
        for directory, subfolders, files in os.walk(folder):
            subfolders[:] = [
                name for name in subfolders if name not in ("tests", "benches", "target")
            ]
            for name in sorted(files):
                path = os.path.join(directory, name)
                if not name.endswith(".rs") or name == "tests.rs" or path in EXEMPT:
                    continue
                check(path, problems)
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} size limit(s) passed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
