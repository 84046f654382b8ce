#!/usr/bin/env bash
# Time to load a large state file into a running daemon with two workers,
# and the resident memory of its processes afterwards: this project's daemon
# against the reference Sōzu 2.3.3, with the same state file and the same
# configuration, in one run. Not run by CI.
#
# The state holds CLUSTERS clusters (5,000 by default), each with an HTTP
# frontend (a host of its own, TREE position) and two backends: 4 requests
# per cluster, 20,000 in all, in Sōzu's state file format. Backends are
# never connected to. Each round starts a fresh daemon, waits for its
# workers, times `sozu state load -f FILE` (each daemon with its own command
# line, which returns once every worker has answered for every request),
# then reads VmRSS of the main process and of each worker from /proc. The
# daemons take turns, the order changing every round.
#
#   bench/state-load.sh                    # 5,000 clusters, 3 rounds
#   CLUSTERS=10000 ROUNDS=5 bench/state-load.sh
#   SOZU_REFERENCE=/path/to/sozu bench/state-load.sh
#
# The reference binary is looked for at
# $HOME/.cache/sozu-reference/2.3.3/bin/sozu (where the compatibility
# scripts install it); without it, only this project's daemon is measured.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTERS=${CLUSTERS:-5000}
ROUNDS=${ROUNDS:-3}
WORKERS=${WORKERS:-2}
SOZU_REFERENCE=${SOZU_REFERENCE:-$HOME/.cache/sozu-reference/2.3.3/bin/sozu}
# shellcheck source=bench/common.sh
source bench/common.sh

command -v python3 >/dev/null || { echo "python3 is needed to write the state file" >&2; exit 1; }

echo "building sozu (release)" >&2
cargo build --release -p sozu-ctl >&2
OURS=${SOZU_RS:-"$(cd "$TARGET_DIR/release" && pwd)/sozu"}

daemons=(sozu-rs)
declare -A binary=([sozu-rs]="$OURS")
if [ -x "$SOZU_REFERENCE" ]; then
    daemons+=(sozu-2.3.3)
    binary[sozu-2.3.3]=$SOZU_REFERENCE
else
    echo "no reference Sōzu at $SOZU_REFERENCE: measuring this project's daemon only" >&2
fi

read -r PORT < <(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# -- the state file, in Sōzu's format: JSON WorkerRequest, "\n\0" after each
bench/make-state.py "$CLUSTERS" "$PORT" "$WORK/state.txt"
records=$((CLUSTERS * 4))
echo "state: $CLUSTERS clusters, $records requests, $(stat -c %s "$WORK/state.txt") bytes" >&2

# Sōzu wants the socket's folder named; each daemon gets its own copy.
cat >"$WORK/config.toml" <<TOML
command_socket = "SOCKET_DIR/sozu.sock"
worker_count = $WORKERS
log_level = "error"
ctl_command_timeout = 600000
worker_timeout = 600

[[listeners]]
protocol = "http"
address = "127.0.0.1:$PORT"
TOML

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
megabytes() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# Starts DAEMON, loads the state, prints "seconds main_kb worker_kb..." on
# stdout, and stops it.
measure() {
    local daemon=$1 bin=${binary[$1]} dir="$WORK/$1" main workers tries=0
    rm -rf "$dir"
    mkdir -p "$dir"
    sed "s|SOCKET_DIR|$dir|" "$WORK/config.toml" >"$dir/config.toml"
    (cd "$dir" && exec "$bin" start -c config.toml >"$dir/out.log" 2>&1) &
    main=$!
    PIDS+=("$main")
    # Ready when the command socket answers and every worker runs.
    until [ -S "$dir/sozu.sock" ] && [ "$(pgrep -c -P "$main" || true)" -ge "$WORKERS" ] &&
        (cd "$dir" && "$bin" -c config.toml status >/dev/null 2>&1); do
        tries=$((tries + 1))
        if [ "$tries" -gt 300 ]; then
            echo "$daemon did not start; its log:" >&2
            cat "$dir/out.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    local started ended output
    started=$(date +%s.%N)
    if ! output=$(cd "$dir" && "$bin" -c config.toml state load -f "$WORK/state.txt" 2>&1); then
        echo "$daemon: state load failed: $output" >&2
        exit 1
    fi
    ended=$(date +%s.%N)
    workers=$(pgrep -P "$main" | sort -n)
    local line
    line="$(awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.3f", b - a }') $(rss_kb "$main")"
    for worker in $workers; do
        line+=" $(rss_kb "$worker")"
    done
    echo "$line"
    echo "$daemon: $(echo "$output" | grep -i 'loaded' | tail -1)" >"$dir/answer.txt"
    kill "$main"
    wait "$main" 2>/dev/null || true
    # The next daemon binds the same address: wait for every worker to go.
    tries=0
    for worker in $workers; do
        while [ -e "/proc/$worker" ] && [ "$tries" -lt 100 ]; do
            tries=$((tries + 1))
            sleep 0.1
        done
        kill -9 "$worker" 2>/dev/null || true
    done
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $WORKERS workers; $ROUNDS rounds" >&2
declare -A seconds=() main_rss=() worker_rss=()
for round in $(seq 1 "$ROUNDS"); do
    count=${#daemons[@]}
    for step in $(seq 0 $((count - 1))); do
        daemon=${daemons[$(((step + round - 1) % count))]}
        # In this shell, not a subshell: the next round starts only once
        # this daemon and its workers are gone, and the exit trap knows it.
        measure "$daemon" >"$WORK/line"
        read -r took main_kb rest <"$WORK/line"
        seconds[$daemon]+="$took "
        main_rss[$daemon]+="$main_kb "
        worker_rss[$daemon]+="$(echo "$rest" | tr ' ' '\n' | sort -n | tail -1) "
        echo "round $round $daemon: ${took}s, main $(megabytes "$main_kb") MB, workers $(for kb in $rest; do printf '%s MB ' "$(megabytes "$kb")"; done)" >&2
        cat "$WORK/$daemon/answer.txt" >&2
    done
done

echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-11s %12s %14s %18s\n' daemon "load (s)" "main RSS (MB)" "largest worker (MB)"
for daemon in "${daemons[@]}"; do
    printf '%-11s %12s %14s %18s\n' "$daemon" "$(echo "${seconds[$daemon]}" | median)" \
        "$(megabytes "$(echo "${main_rss[$daemon]}" | median)")" \
        "$(megabytes "$(echo "${worker_rss[$daemon]}" | median)")"
done
if [ ${#daemons[@]} -eq 2 ]; then
    awk -v a="$(echo "${seconds[sozu-rs]}" | median)" -v b="$(echo "${seconds[sozu-2.3.3]}" | median)" \
        'BEGIN { printf "sozu-2.3.3 / sozu-rs load time: %.2f (above 1: this project is faster)\n", b / a }'
fi
