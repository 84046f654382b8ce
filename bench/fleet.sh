#!/usr/bin/env bash
# Rollout time of a fleet (doc/fleet.md): NODES daemons on this machine (one
# worker each), each with its `sozu fleet agent`, one real etcd (Debian's
# etcd-server). A base configuration of CLUSTERS clusters is pushed and
# every node converges; then each of PUSHES pushes changes CHANGED clusters
# (their backend's port), and the time from the push command's start to
# each node's report of the new revision (the agent's `applied_at`, written
# in its report right after the last request is acknowledged) is recorded.
# Prints, per push, the slowest node and the p99 over nodes, then the
# medians over pushes. Not run by CI.
#
#   bench/fleet.sh                                   # 20 nodes, 5 pushes
#   NODES=3 PUSHES=2 CLUSTERS=200 SOZU=target/debug/sozu bench/fleet.sh
#
# SOZU: the binary to run (default: built with cargo --release).
set -euo pipefail
cd "$(dirname "$0")/.."

NODES=${NODES:-20}
PUSHES=${PUSHES:-5}
CLUSTERS=${CLUSTERS:-1000}
CHANGED=${CHANGED:-100}
# shellcheck source=bench/common.sh
source bench/common.sh

command -v etcd >/dev/null || { echo "etcd is needed (package etcd-server)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 1; }
if [ -z "${SOZU:-}" ]; then
    echo "building sozu (release)" >&2
    cargo build --release -p sozu-ctl >&2
    SOZU="$TARGET_DIR/release/sozu"
fi
SOZU="$(cd "$(dirname "$SOZU")" && pwd)/$(basename "$SOZU")"

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
CLIENT=$(port); PEER=$(port); HTTP=$(port)
etcd --name bench --data-dir "$WORK/etcd" --quota-backend-bytes 4294967296 \
    --listen-client-urls "http://127.0.0.1:$CLIENT" --advertise-client-urls "http://127.0.0.1:$CLIENT" \
    --listen-peer-urls "http://127.0.0.1:$PEER" --initial-advertise-peer-urls "http://127.0.0.1:$PEER" \
    --initial-cluster "bench=http://127.0.0.1:$PEER" > "$WORK/etcd.log" 2>&1 &
PIDS+=($!)
FLEET=(--etcd "http://127.0.0.1:$CLIENT" --prefix /sozu/bench)
for _ in $(seq 1 300); do "$SOZU" fleet history "${FLEET[@]}" >/dev/null 2>&1 && break; sleep 0.1; done

# make_config VERSION: CLUSTERS clusters, the first CHANGED with a backend
# port that depends on VERSION.
make_config() {
    python3 - "$CLUSTERS" "$CHANGED" "$HTTP" "$1" <<'PY'
import sys
clusters, changed, http, version = map(int, sys.argv[1:])
print(f'[[listeners]]\nprotocol = "http"\naddress = "127.0.0.1:{http}"\n')
for i in range(clusters):
    backend = 10000 + version if i < changed else 9
    print(f'[clusters.c{i}]\nprotocol = "http"\n'
          f'frontends = [{{ address = "127.0.0.1:{http}", hostname = "c{i}.example.com" }}]\n'
          f'backends = [{{ address = "127.0.0.1:{backend}" }}]\n')
PY
}

echo "starting $NODES daemons and agents" >&2
for n in $(seq 1 "$NODES"); do
    dir="$WORK/node$n"; mkdir -p "$dir"
    printf 'command_socket = "%s/sozu.sock"\nworker_count = 1\nlog_level = "error"\n' "$dir" > "$dir/config.toml"
    # Each node's listener on its own loopback address.
    printf '[fleet.addresses]\n"127.0.0.1:%s" = "127.0.%s.%s:%s"\n' "$HTTP" $((n / 250)) $((n % 250 + 2)) "$HTTP" > "$dir/override.toml"
    "$SOZU" start -c "$dir/config.toml" > "$dir/daemon.log" 2>&1 &
    PIDS+=($!)
done
make_config 0 > "$WORK/v0.toml"
"$SOZU" fleet push "$WORK/v0.toml" "${FLEET[@]}" >/dev/null
for n in $(seq 1 "$NODES"); do
    dir="$WORK/node$n"
    for _ in $(seq 1 300); do [ -S "$dir/sozu.sock" ] && break; sleep 0.1; done
    "$SOZU" fleet push --node "node$n" "$dir/override.toml" "${FLEET[@]}" >/dev/null
    "$SOZU" -t 60000 --socket "$dir/sozu.sock" fleet agent --node "node$n" --heartbeat 1s "${FLEET[@]}" > "$dir/agent.log" 2>&1 &
    PIDS+=($!)
done
"$SOZU" fleet status --wait 300s --nodes "$NODES" "${FLEET[@]}" >/dev/null \
    || { echo "the fleet did not converge on the base configuration" >&2; exit 1; }
echo "base: $CLUSTERS clusters on $NODES nodes, converged" >&2

for p in $(seq 1 "$PUSHES"); do
    make_config "$p" > "$WORK/v$p.toml"
    start=$(python3 -c 'import time; print(int(time.time()*1000))')
    "$SOZU" fleet push "$WORK/v$p.toml" "${FLEET[@]}" >/dev/null
    "$SOZU" fleet status --wait 120s --nodes "$NODES" --json "${FLEET[@]}" \
        | python3 -c 'import json,sys; d=json.JSONDecoder().raw_decode(sys.stdin.read())[0]; print(" ".join(str(n["applied_at"]) for n in d["nodes"]))' \
        | python3 -c "
import sys
start = $start
times = sorted(int(t) - start for t in sys.stdin.read().split())
p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
print(f'push $p: {len(times)} nodes, slowest {times[-1]} ms, p99 {p99} ms, median {times[len(times)//2]} ms')
" | tee -a "$WORK/results"
done
python3 - "$WORK/results" <<'PY'
import re, statistics, sys
lines = open(sys.argv[1]).read().splitlines()
slowest = [int(re.search(r'slowest (\d+)', l).group(1)) for l in lines]
p99 = [int(re.search(r'p99 (\d+)', l).group(1)) for l in lines]
print(f'median over {len(lines)} pushes: slowest node {statistics.median(slowest)} ms, p99 {statistics.median(p99)} ms')
PY
