# Shared setup of the compatibility scripts; sourced, not run. Before
# sourcing, set NAME (the prefix of error messages). Afterwards these are
# set: ROOT, FIXTURES, REF (Sozu 2.3.3's binary, installed when missing),
# OURS (our binary, built when SOZU_OURS is not given), and the functions
# log, die and need_tool.
#
# Environment: SOZU_OURS, SOZU_REFERENCE, SOZU_FIXTURES.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIXTURES="${SOZU_FIXTURES:-$ROOT/tests/fixtures/sozu-2.3}"
REFERENCE_ROOT="$HOME/.cache/sozu-reference/2.3.3"
REF="${SOZU_REFERENCE:-$REFERENCE_ROOT/bin/sozu}"

log() { printf '%s\n' "$*" >&2; }
die() { log "$NAME: $*"; exit 2; }

[ -f "$FIXTURES/config.toml" ] || die "fixtures not found (looked in $FIXTURES)"

# need_tool COMMAND PACKAGE: installs PACKAGE with apt-get when COMMAND is
# missing and we are root; dies when it is still missing.
need_tool() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing $2"
        apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
    fi
    command -v "$1" >/dev/null 2>&1 || die "$1 is needed (package $2)"
}
need_tool jq jq

# -- the reference, installed only when missing
if [ ! -x "$REF" ]; then
    # Sozu's build compiles its protocol with protoc.
    need_tool protoc protobuf-compiler
    log "installing Sozu 2.3.3 into $REFERENCE_ROOT (several minutes)"
    # In cargo's own temporary folder: with this project's CARGO_TARGET_DIR,
    # Sozu's `sozu` would land on ours.
    env -u CARGO_TARGET_DIR cargo install sozu --version 2.3.3 --locked --root "$REFERENCE_ROOT" >&2
fi
"$REF" --version >/dev/null || die "the reference binary $REF does not run"

# -- ours
if [ -z "${SOZU_OURS:-}" ]; then
    BUILD_LOG="$(mktemp)"
    (cd "$ROOT" && cargo build -q -p sozu-ctl 2>"$BUILD_LOG") || {
        cat "$BUILD_LOG" >&2
        die "could not build our sozu"
    }
    rm -f "$BUILD_LOG"
    # Where cargo put it: CARGO_TARGET_DIR when set (relative to the
    # project), else target/.
    TARGET_DIR="${CARGO_TARGET_DIR:-target}"
    case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
    OURS="$TARGET_DIR/debug/sozu"
else
    OURS="$SOZU_OURS"
fi
