#!/usr/bin/env bash
# Command line benchmark (not run in CI): the wall time of `sozu status`,
# `sozu --json cluster list` and `sozu cluster list` with OUR command line
# and with SOZU 2.3.3's, both against the same daemon (ours, release build)
# holding 5,000 clusters, each with an HTTP frontend and two backends
# (20,000 records loaded from a generated state file).
#
# Measured with hyperfine (installed with apt-get when missing), or with
# MEASURE=loop (also the fallback without hyperfine) by RUNS runs that
# alternate between the two command lines, reporting medians. Prints a
# Markdown table.
#
# Environment: CLUSTERS (default 5000), RUNS (default 30), SOZU_OURS (our
# binary; default: `cargo build --release`), SOZU_REFERENCE (Sozu's binary;
# default $HOME/.cache/sozu-reference/2.3.3/bin/sozu, installed when
# missing as the compatibility scripts do).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTERS="${CLUSTERS:-5000}"
RUNS="${RUNS:-30}"
REFERENCE_ROOT="$HOME/.cache/sozu-reference/2.3.3"
REF="${SOZU_REFERENCE:-$REFERENCE_ROOT/bin/sozu}"

log() { printf '%s\n' "$*" >&2; }
die() { log "bench/cli: $*"; exit 2; }

install_package() {
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "installing $1"
        apt-get update -qq >/dev/null && apt-get install -y -qq "$1" >/dev/null
    fi
}
command -v jq >/dev/null 2>&1 || install_package jq
command -v jq >/dev/null 2>&1 || die "jq is needed"
command -v hyperfine >/dev/null 2>&1 || install_package hyperfine || true

if [ ! -x "$REF" ]; then
    command -v protoc >/dev/null 2>&1 || install_package protobuf-compiler
    log "installing Sozu 2.3.3 into $REFERENCE_ROOT (several minutes)"
    cargo install sozu --version 2.3.3 --locked --root "$REFERENCE_ROOT" >&2
fi
if [ -z "${SOZU_OURS:-}" ]; then
    (cd "$ROOT" && cargo build --release -q -p sozu-ctl) || die "could not build our sozu"
    OURS="$ROOT/target/release/sozu"
else
    OURS="$SOZU_OURS"
fi

WORK="$(mktemp -d /tmp/sozu-bench-cli.XXXXXX)"
DAEMON=""
cleanup() {
    if [ -n "$DAEMON" ]; then
        "$OURS" -c "$WORK/config.toml" shutdown --hard >/dev/null 2>&1 || true
        for _ in $(seq 1 50); do
            kill -0 -- "-$DAEMON" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$DAEMON" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PORT=""
while [ -z "$PORT" ]; do
    candidate=$(( 20000 + RANDOM % 40000 ))
    (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null || PORT=$candidate
done
CONFIG="$WORK/config.toml"
cat > "$CONFIG" <<EOF
command_socket = "$WORK/sozu.sock"
worker_count = 2
log_level = "warn"
ctl_command_timeout = 60000

[[listeners]]
protocol = "http"
address = "127.0.0.1:$PORT"
EOF

# -- the state file: clusters, then frontends, then backends (Sozu's order)
log "generating $CLUSTERS clusters"
LOCALHOST=2130706433
{
    for ((i = 0; i < CLUSTERS; i++)); do
        printf '{"id":"B-%d","content":{"request_type":{"ADD_CLUSTER":{"cluster_id":"cluster-%d","sticky_session":false,"https_redirect":false,"load_balancing":0}}}}\n\0' "$i" "$i"
    done
    for ((i = 0; i < CLUSTERS; i++)); do
        printf '{"id":"F-%d","content":{"request_type":{"ADD_HTTP_FRONTEND":{"cluster_id":"cluster-%d","address":{"ip":{"inner":{"V4":%d}},"port":%d},"hostname":"cluster-%d.example.com","path":{"kind":0,"value":""},"position":2,"tags":{}}}}}\n\0' \
            "$i" "$i" "$LOCALHOST" "$PORT" "$i"
    done
    for ((i = 0; i < CLUSTERS; i++)); do
        for b in 0 1; do
            printf '{"id":"K-%d-%d","content":{"request_type":{"ADD_BACKEND":{"cluster_id":"cluster-%d","backend_id":"cluster-%d-%d","address":{"ip":{"inner":{"V4":%d}},"port":%d},"load_balancing_parameters":{"weight":100}}}}}\n\0' \
                "$i" "$b" "$i" "$i" "$b" "$LOCALHOST" $((10000 + (2 * i + b) % 50000))
        done
    done
} > "$WORK/clusters.state"

# -- our daemon, loaded
(cd "$WORK" && exec setsid "$OURS" start -c "$CONFIG" > "$WORK/daemon.log" 2>&1) &
DAEMON=$!
ready=0
for _ in $(seq 1 300); do
    "$OURS" -c "$CONFIG" status >/dev/null 2>&1 && { ready=1; break; }
    kill -0 "$DAEMON" 2>/dev/null || { cat "$WORK/daemon.log" >&2; die "the daemon exited"; }
    sleep 0.1
done
[ "$ready" = 1 ] || { cat "$WORK/daemon.log" >&2; die "the daemon did not answer status within 30 s"; }
log "loading $((CLUSTERS * 4)) records"
started=$(date +%s%N)
"$OURS" -c "$CONFIG" -t 0 state load -f "$WORK/clusters.state" >/dev/null
log "loaded in $(( ($(date +%s%N) - started) / 1000000 )) ms"
count="$("$OURS" -c "$CONFIG" --json cluster list | jq '.WORKER_RESPONSES.map.main.content_type.CLUSTER_HASHES.map | length')"
[ "$count" == "$CLUSTERS" ] || die "the daemon holds $count clusters, not $CLUSTERS"
# Both command lines print the same document.
cmp -s <("$OURS" -c "$CONFIG" --json cluster list | jq -S .) \
       <("$REF" -c "$CONFIG" --json cluster list | jq -S .) \
    || die "the two command lines print different JSON for cluster list"

COMMANDS=(
    "status"
    "--json cluster list"
    "cluster list"
)

if [ "${MEASURE:-hyperfine}" == hyperfine ] && command -v hyperfine >/dev/null 2>&1; then
    arguments=()
    for command in "${COMMANDS[@]}"; do
        arguments+=(-n "ours: sozu $command" "$OURS -c $CONFIG $command")
        arguments+=(-n "Sozu: sozu $command" "$REF -c $CONFIG $command")
    done
    hyperfine -N --warmup 3 --runs "$RUNS" --export-markdown "$WORK/results.md" \
        "${arguments[@]}" >&2
    cat "$WORK/results.md"
else
    # Runs alternate between the two command lines, so both meet the same
    # load on the machine; medians of RUNS runs each.
    elapsed_us() {
        local start
        start=$(date +%s%N)
        "$@" >/dev/null 2>&1
        echo $(( ($(date +%s%N) - start) / 1000 ))
    }
    median_ms() {
        sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] / 1000 }'
    }
    printf '| command | ours, median ms | Sozu 2.3.3, median ms |\n|---|---:|---:|\n'
    for command in "${COMMANDS[@]}"; do
        ours_times=(); theirs_times=()
        for ((run = 0; run < RUNS; run++)); do
            # shellcheck disable=SC2086
            ours_times+=("$(elapsed_us "$OURS" -c "$CONFIG" $command)")
            # shellcheck disable=SC2086
            theirs_times+=("$(elapsed_us "$REF" -c "$CONFIG" $command)")
        done
        printf '| `sozu %s` | %s | %s |\n' "$command" \
            "$(printf '%s\n' "${ours_times[@]}" | median_ms)" \
            "$(printf '%s\n' "${theirs_times[@]}" | median_ms)"
    done
fi
