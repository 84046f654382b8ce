# Shared start of the benchmark scripts; sourced, not run. Sets TARGET_DIR
# (cargo's target folder), WORK (a temporary folder removed on exit) and
# PIDS (the processes the script starts: append to it, and they are stopped
# on exit, by pid, nothing else).

TARGET_DIR=${CARGO_TARGET_DIR:-target}
WORK=$(mktemp -d)
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
