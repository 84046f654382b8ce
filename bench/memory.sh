#!/usr/bin/env bash
# Resident memory of a daemon with one worker holding CLUSTERS clusters
# (10,000 by default), each with an HTTP frontend and two backends. Not run
# by CI.
#
# The script writes that state as a state file (Sōzu's format), starts the
# daemon with one HTTP listener and one worker, loads the file with
# `sozu state load -f`, waits SETTLE seconds, and prints VmRSS (and VmHWM,
# the peak) of the main process and of the worker from /proc. The goal is a
# worker under 100 MB with 10,000 clusters.
#
#   bench/memory.sh
#   CLUSTERS=20000 bench/memory.sh
#   SOZU_RS=/path/to/sozu bench/memory.sh     # another build
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTERS=${CLUSTERS:-10000}
SETTLE=${SETTLE:-2}
# shellcheck source=bench/common.sh
source bench/common.sh

command -v python3 >/dev/null || { echo "python3 is needed to write the state file" >&2; exit 1; }

if [ -z "${SOZU_RS:-}" ]; then
    echo "building sozu (release)" >&2
    cargo build --release -p sozu-ctl >&2
fi
SOZU=${SOZU_RS:-"$(cd "$TARGET_DIR/release" && pwd)/sozu"}

read -r PORT < <(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# -- the state file, in Sōzu's format: JSON WorkerRequest, "\n\0" after each
bench/make-state.py "$CLUSTERS" "$PORT" "$WORK/state.txt"
echo "state: $CLUSTERS clusters, $((CLUSTERS * 4)) requests, $(stat -c %s "$WORK/state.txt") bytes" >&2

cat >"$WORK/config.toml" <<TOML
command_socket = "$WORK/sozu.sock"
worker_count = 1
log_level = "error"
ctl_command_timeout = 600000
worker_timeout = 600

[[listeners]]
protocol = "http"
address = "127.0.0.1:$PORT"
TOML

(cd "$WORK" && exec "$SOZU" start -c config.toml >"$WORK/out.log" 2>&1) &
MAIN=$!
PIDS+=("$MAIN")
tries=0
until [ -S "$WORK/sozu.sock" ] && [ -n "$(pgrep -P "$MAIN" || true)" ] &&
    "$SOZU" -c "$WORK/config.toml" status >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -gt 300 ]; then
        echo "the daemon did not start; its log:" >&2
        cat "$WORK/out.log" >&2
        exit 1
    fi
    sleep 0.1
done
WORKER=$(pgrep -P "$MAIN" | head -1)

status_kb() { awk -v field="$2:" '$1 == field { print $2 }' "/proc/$1/status"; }
megabytes() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }
report() {
    printf '%-22s main %7s MB (peak %7s MB)   worker %7s MB (peak %7s MB)\n' "$1" \
        "$(megabytes "$(status_kb "$MAIN" VmRSS)")" "$(megabytes "$(status_kb "$MAIN" VmHWM)")" \
        "$(megabytes "$(status_kb "$WORKER" VmRSS)")" "$(megabytes "$(status_kb "$WORKER" VmHWM)")"
}

echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
report "started, empty:"
started=$(date +%s.%N)
"$SOZU" -c "$WORK/config.toml" state load -f "$WORK/state.txt" >&2
ended=$(date +%s.%N)
echo "loaded in $(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.2f", b - a }') s"
report "after the load:"
sleep "$SETTLE"
report "${SETTLE} s later:"
rss=$(status_kb "$WORKER" VmRSS)
if [ "$rss" -lt $((100 * 1024)) ]; then
    echo "worker under 100 MB with $CLUSTERS clusters: yes"
else
    echo "worker under 100 MB with $CLUSTERS clusters: NO"
fi
