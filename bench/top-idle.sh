#!/usr/bin/env bash
# Idle CPU of the live console, `sozu top`, at its default refresh (1000 ms)
# against a daemon holding 1,000 clusters, and how long it takes to quit:
# this project's console and Sōzu 2.3.3's side by side, in one run, each
# against this project's daemon and against a Sōzu 2.3.3 daemon loaded with
# the same state. Not run by CI.
#
# Goals (issue 12): idle, under 1% of one core (Sōzu 2.3.3's console was
# measured at 96%); quitting with `q` under 100 ms whatever the daemon does,
# a stopped daemon (SIGSTOP) included.
#
# For each daemon: a fresh daemon with 2 workers and one HTTP listener gets
# CLUSTERS clusters (each with an HTTP frontend and two backends, written by
# bench/make-state.py) through `sozu state load`. Then each console runs in
# a real terminal, a detached tmux session of 120x40, with no flag but the
# configuration (our console also once more on its clusters view, the
# largest table). Once the console shows the daemon's data (Sōzu's: once
# it has drawn, its first tab names no cluster) and WARMUP seconds have
# passed, utime + stime of the console's process (all its
# threads, /proc/PID/stat) are read at the start and at the end of a
# MEASURE-second window, and those of the daemon's processes (main and
# workers) too: what the console makes the daemon spend. Then, QUIT_ROUNDS
# times: the console is started again, `q` is sent with `tmux send-keys`,
# and the time until its process is gone is measured (polled every 2 ms);
# and QUIT_ROUNDS times the same with the daemon's main process stopped
# (SIGSTOP) for 2 s before the `q` (a console still polling by then waits on
# a daemon that never answers), continued afterwards. A console still there
# QUIT_DEADLINE seconds after its `q` is killed and reported as such. The
# same `q` sent to bash waiting for one key gives the floor of these figures
# (tmux's client and server, the poll): the baseline row.
#
#   bench/top-idle.sh                             # 1,000 clusters, 30 s windows
#   MEASURE=60 CLUSTERS=5000 bench/top-idle.sh
#   DAEMONS=sozu-rs CONSOLES="sozu-rs sozu-2.3.3" bench/top-idle.sh
#
# Sōzu's console is built only with its `tui` feature, which the
# compatibility scripts' reference lacks: when missing, it is installed into
# $HOME/.cache/sozu-reference/2.3.3-tui (`cargo install sozu --version 2.3.3
# --locked --features tui`, several minutes; needs protoc, installed with
# apt-get when missing and root). That binary also serves as Sōzu's daemon
# when the compatibility scripts' reference ($HOME/.cache/sozu-reference/
# 2.3.3/bin/sozu) is not there. tmux is installed the same way when missing.
#
# Environment: CLUSTERS (1000), MEASURE (30 s), WARMUP (5 s), QUIT_ROUNDS
# (3), QUIT_DEADLINE (5 s), DAEMONS and CONSOLES (each "sozu-rs sozu-2.3.3"),
# SOZU_RS (our binary; default: built here with cargo, release),
# SOZU_REFERENCE (Sōzu's daemon), SOZU_REFERENCE_TUI (Sōzu's console).
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTERS=${CLUSTERS:-1000}
MEASURE=${MEASURE:-30}
WARMUP=${WARMUP:-5}
QUIT_ROUNDS=${QUIT_ROUNDS:-3}
QUIT_DEADLINE=${QUIT_DEADLINE:-5}
DAEMONS=${DAEMONS:-sozu-rs sozu-2.3.3}
CONSOLES=${CONSOLES:-sozu-rs sozu-2.3.3}
WORKERS=2
REFERENCE_TUI_ROOT="$HOME/.cache/sozu-reference/2.3.3-tui"
SOZU_REFERENCE_TUI=${SOZU_REFERENCE_TUI:-$REFERENCE_TUI_ROOT/bin/sozu}
SOZU_REFERENCE=${SOZU_REFERENCE:-$HOME/.cache/sozu-reference/2.3.3/bin/sozu}
# shellcheck source=bench/common.sh
source bench/common.sh

say() { printf '%s\n' "$*" >&2; }
fail() { say "top-idle: $*"; exit 1; }

# -- cleanup: the tmux server (every console), the daemons' process groups
# (main and workers, continued first in case one is stopped), then
# bench/common.sh's cleanup (PIDS, WORK).
TMUX_SOCKET="$WORK/tmux.sock"
DAEMON_GROUPS=()
stop_everything() {
    tmux -S "$TMUX_SOCKET" kill-server 2>/dev/null || true
    local group
    for group in "${DAEMON_GROUPS[@]}"; do
        kill -CONT -- "-$group" 2>/dev/null || true
        kill -TERM -- "-$group" 2>/dev/null || true
    done
    for group in "${DAEMON_GROUPS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 -- "-$group" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$group" 2>/dev/null || true
    done
    cleanup
}
trap stop_everything EXIT
trap 'exit 130' INT TERM

# need_tool COMMAND PACKAGE: apt-get install PACKAGE when COMMAND is missing
# and we are root.
need_tool() {
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing $2"
        apt-get update -qq >/dev/null && apt-get install -y -qq "$2" >/dev/null
    fi
    command -v "$1" >/dev/null 2>&1 || fail "$1 is needed (package $2)"
}
need_tool tmux tmux
need_tool jq jq
command -v python3 >/dev/null || fail "python3 is needed to write the state file"

# -- the binaries
wants() { case " $1 " in *" $2 "*) return 0 ;; esac; return 1; }
if wants "$CONSOLES" sozu-2.3.3 || { wants "$DAEMONS" sozu-2.3.3 && [ ! -x "$SOZU_REFERENCE" ]; }; then
    if [ ! -x "$SOZU_REFERENCE_TUI" ]; then
        need_tool protoc protobuf-compiler
        say "installing Sōzu 2.3.3 with its console (--features tui) into $REFERENCE_TUI_ROOT (several minutes)"
        # Its own temporary build folder: a CARGO_TARGET_DIR set for this
        # project would get Sōzu's `sozu` over ours.
        env -u CARGO_TARGET_DIR cargo install sozu --version 2.3.3 --locked --features tui \
            --root "$REFERENCE_TUI_ROOT" >&2
    fi
    "$SOZU_REFERENCE_TUI" top --help >/dev/null 2>&1 || fail "$SOZU_REFERENCE_TUI has no console (top)"
fi
[ -x "$SOZU_REFERENCE" ] || SOZU_REFERENCE=$SOZU_REFERENCE_TUI
if [ -z "${SOZU_RS:-}" ]; then
    say "building sozu (release)"
    cargo build --release -p sozu-ctl >&2
    SOZU_RS="$(cd "$TARGET_DIR/release" && pwd)/sozu"
fi
declare -A daemon_binary=([sozu-rs]="$SOZU_RS" [sozu-2.3.3]="$SOZU_REFERENCE")
declare -A console_binary=([sozu-rs]="$SOZU_RS" [sozu-2.3.3]="$SOZU_REFERENCE_TUI")
# What each console is run with, besides `-c CONFIG top`.
declare -A console_flags=([sozu-rs]="" [sozu-rs/clusters]="--view clusters" [sozu-2.3.3]="")
console_list=()
for console in $CONSOLES; do
    [ -n "${console_binary[$console]:-}" ] || fail "unknown console $console (sozu-rs, sozu-2.3.3)"
    console_list+=("$console")
    [ "$console" = sozu-rs ] && console_list+=("sozu-rs/clusters")
done
for daemon in $DAEMONS; do
    [ -n "${daemon_binary[$daemon]:-}" ] || fail "unknown daemon $daemon (sozu-rs, sozu-2.3.3)"
done

CLOCK_TICKS=$(getconf CLK_TCK)
now_us() { local t=${EPOCHREALTIME/[.,]/}; echo "$((10#$t))"; }

# cpu_ticks PID...: utime + stime of these processes, in clock ticks (a
# process's line counts all its threads). Gone processes count 0.
cpu_ticks() {
    local total=0 pid line
    for pid in "$@"; do
        line=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # Fields after the command name: state is $1, utime $12, stime $13.
        # shellcheck disable=SC2086
        set -- ${line##*) }
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# alive PID: the process exists and is not a zombie.
alive() {
    local line
    line=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    line=${line##*) }
    [ "${line:0:1}" != Z ]
}

# -- daemons: started with setsid (own process group: main and workers)
read -r PORT < <(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
bench/make-state.py "$CLUSTERS" "$PORT" "$WORK/state.txt"
say "state: $CLUSTERS clusters, $((CLUSTERS * 4)) requests, $(stat -c %s "$WORK/state.txt") bytes"

DAEMON_PID=""
start_daemon() {
    local daemon=$1 bin=${daemon_binary[$1]} dir="$WORK/$1" deadline
    mkdir -p "$dir"
    cat >"$dir/config.toml" <<TOML
command_socket = "$dir/sozu.sock"
worker_count = $WORKERS
log_level = "error"
ctl_command_timeout = 60000

[[listeners]]
protocol = "http"
address = "127.0.0.1:$PORT"
TOML
    (cd "$dir" && exec setsid "$bin" start -c config.toml >"$dir/daemon.log" 2>&1) &
    DAEMON_PID=$!
    DAEMON_GROUPS+=("$DAEMON_PID")
    # Ready when the command socket answers and every worker runs.
    deadline=$(($(now_us) + 30000000))
    until [ -S "$dir/sozu.sock" ] && [ "$(pgrep -c -P "$DAEMON_PID" || true)" -ge "$WORKERS" ] &&
        "$bin" -c "$dir/config.toml" status >/dev/null 2>&1; do
        if ! kill -0 "$DAEMON_PID" 2>/dev/null || [ "$(now_us)" -gt "$deadline" ]; then
            cat "$dir/daemon.log" >&2
            fail "$daemon did not start within 30 s"
        fi
        sleep 0.05
    done
    "$bin" -c "$dir/config.toml" state load -f "$WORK/state.txt" >"$dir/load.log" 2>&1 ||
        { cat "$dir/load.log" >&2; fail "$daemon: state load failed"; }
    local count
    count=$("$bin" -c "$dir/config.toml" --json cluster list |
        jq '.WORKER_RESPONSES.map.main.content_type.CLUSTER_HASHES.map | length')
    [ "$count" = "$CLUSTERS" ] || fail "$daemon holds $count clusters after the load, not $CLUSTERS"
    say "$daemon: daemon $DAEMON_PID ready with $count clusters"
}

stop_daemon() {
    local group=$DAEMON_PID
    kill -CONT -- "-$group" 2>/dev/null || true
    kill -TERM -- "-$group" 2>/dev/null || true
    for _ in $(seq 1 100); do
        kill -0 -- "-$group" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL -- "-$group" 2>/dev/null || true
    wait "$group" 2>/dev/null || true
}

# -- consoles, each in a tmux session of its own
CONSOLE_PID=""
SESSION=0
tmux_() { tmux -S "$TMUX_SOCKET" "$@"; }
# One session that stays: the server would otherwise exit with the last
# console, racing the next command ("server exited unexpectedly").
tmux_ new-session -d -s keep -x 120 -y 40 'exec tail -f /dev/null'

# start_console CONSOLE DAEMON: starts it and waits until it shows data.
start_console() {
    local console=$1 daemon=$2 bin=${console_binary[${1%%/*}]} config="$WORK/$2/config.toml"
    local log="$WORK/console-$SESSION.err" name deadline
    SESSION=$((SESSION + 1))
    name="console-$SESSION"
    tmux_ new-session -d -s "$name" -x 120 -y 40 \
        "exec '$bin' -c '$config' top ${console_flags[$console]} 2>'$log'"
    CONSOLE_PID=$(tmux_ display-message -p -t "$name" '#{pane_pid}' 2>/dev/null) ||
        { cat "$log" >&2; fail "$console did not start"; }
    # Ours is ready when it shows data: some cluster of the state named on
    # screen, or the overview's count of them. Sōzu's console shows neither
    # on its first tab (it reads metrics, not the cluster list): ready once
    # it has drawn; the warm-up gives it its first samples.
    local ready="cluster-[0-9]|\b$CLUSTERS\b"
    [ "${console%%/*}" = sozu-2.3.3 ] && ready="[^[:space:]]"
    deadline=$(($(now_us) + 30000000))
    until tmux_ capture-pane -p -t "$name" 2>/dev/null | grep -Eq "$ready"; do
        if ! alive "$CONSOLE_PID" || [ "$(now_us)" -gt "$deadline" ]; then
            tmux_ capture-pane -p -t "$name" >&2 2>/dev/null || true
            cat "$log" >&2
            fail "$console against $daemon showed no data within 30 s"
        fi
        sleep 0.1
    done
    CONSOLE_SESSION=$name
}

# quit_console: sends q, prints the milliseconds until the process is gone
# (or "killed" after QUIT_DEADLINE s).
quit_console() {
    local started deadline
    started=$(now_us)
    deadline=$((started + QUIT_DEADLINE * 1000000))
    tmux_ send-keys -t "$CONSOLE_SESSION" q
    while alive "$CONSOLE_PID"; do
        if [ "$(now_us)" -gt "$deadline" ]; then
            kill -KILL "$CONSOLE_PID" 2>/dev/null || true
            tmux_ kill-session -t "$CONSOLE_SESSION" 2>/dev/null || true
            echo killed
            return
        fi
        sleep 0.002
    done
    awk -v us=$(($(now_us) - started)) 'BEGIN { printf "%.1f", us / 1000 }'
}

percent() { awk -v ticks="$1" -v us="$2" -v hz="$CLOCK_TICKS" 'BEGIN { printf "%.2f", 100 * ticks / hz / (us / 1e6) }'; }
# quits: "median / max" of the ms figures, or "killed" when any was.
summary() {
    case " $* " in *" killed "*) echo "killed after ${QUIT_DEADLINE} s ($(echo "$*" | tr ' ' '\n' | grep -c killed)/$#)"; return ;; esac
    echo "$*" | tr ' ' '\n' | sort -g |
        awk '{ v[NR] = $1 } END { printf "%s / %s", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[NR] }'
}

# The floor of the quit figures: the same `q` sent to a shell that exits
# on its first key (tmux's client and server, the 2 ms poll).
baseline=""
for _ in $(seq 1 "$QUIT_ROUNDS"); do
    SESSION=$((SESSION + 1))
    CONSOLE_SESSION="baseline-$SESSION"
    tmux_ new-session -d -s "$CONSOLE_SESSION" -x 120 -y 40 "exec bash -c 'read -rsn1'"
    CONSOLE_PID=$(tmux_ display-message -p -t "$CONSOLE_SESSION" '#{pane_pid}')
    # Ready when bash waits in read on its terminal.
    until grep -q '^State:.*S (sleeping)' "/proc/$CONSOLE_PID/status" 2>/dev/null &&
        [ "$(readlink "/proc/$CONSOLE_PID/fd/0")" = "$(tmux_ display-message -p -t "$CONSOLE_SESSION" '#{pane_tty}')" ]; do
        sleep 0.05
    done
    sleep 0.2
    baseline+=" $(quit_console)"
done
say "baseline (bash exiting on its first key): quit in ms:$baseline"

say "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); refresh: each console's default; ${WARMUP} s warm-up, ${MEASURE} s window"
declare -A console_cpu=() daemon_cpu=() quit_live=() quit_stopped=()
for daemon in $DAEMONS; do
    start_daemon "$daemon"
    for console in "${console_list[@]}"; do
        start_console "$console" "$daemon"
        sleep "$WARMUP"
        # shellcheck disable=SC2046
        set -- $(pgrep -g "$DAEMON_PID")
        before_console=$(cpu_ticks "$CONSOLE_PID"); before_daemon=$(cpu_ticks "$@"); started=$(now_us)
        sleep "$MEASURE"
        after_console=$(cpu_ticks "$CONSOLE_PID"); after_daemon=$(cpu_ticks "$@"); elapsed=$(($(now_us) - started))
        alive "$CONSOLE_PID" || fail "$console against $daemon exited during the measure"
        console_cpu[$daemon,$console]=$(percent $((after_console - before_console)) "$elapsed")
        daemon_cpu[$daemon,$console]=$(percent $((after_daemon - before_daemon)) "$elapsed")
        say "$daemon / $console: console ${console_cpu[$daemon,$console]}% of one core, daemon ${daemon_cpu[$daemon,$console]}%"
        tmux_ capture-pane -p -t "$CONSOLE_SESSION" >"$WORK/last-screen.txt" 2>/dev/null || true
        quit=$(quit_console)
        if [ "$console" = sozu-rs/clusters ]; then
            continue
        fi
        live="$quit" stopped=""
        for _ in $(seq 2 "$QUIT_ROUNDS"); do
            start_console "$console" "$daemon"
            sleep 2
            live+=" $(quit_console)"
        done
        for _ in $(seq 1 "$QUIT_ROUNDS"); do
            start_console "$console" "$daemon"
            kill -STOP "$DAEMON_PID"
            sleep 2
            stopped+=" $(quit_console)"
            kill -CONT "$DAEMON_PID"
        done
        quit_live[$daemon,$console]=$(summary $live)
        quit_stopped[$daemon,$console]=$(summary $stopped)
        say "$daemon / $console: quit in ms, live:$(printf ' %s' $live); daemon stopped:$(printf ' %s' $stopped)"
    done
    stop_daemon
done

echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); $CLUSTERS clusters; CPU over ${MEASURE} s, % of one core"
printf '%-11s %-17s %12s %12s %18s %22s\n' daemon console "console CPU" "daemon CPU" "quit ms (med/max)" "quit ms, daemon stopped"
for daemon in $DAEMONS; do
    for console in "${console_list[@]}"; do
        printf '%-11s %-17s %11s%% %11s%% %18s %22s\n' "$daemon" "$console" \
            "${console_cpu[$daemon,$console]}" "${daemon_cpu[$daemon,$console]}" \
            "${quit_live[$daemon,$console]:--}" "${quit_stopped[$daemon,$console]:--}"
    done
done
printf '%-11s %-17s %12s %12s %18s %22s\n' - "baseline: bash" - - "$(summary $baseline)" -
for daemon in $DAEMONS; do
    if [ -n "${console_cpu[$daemon,sozu-2.3.3]:-}" ] && [ -n "${console_cpu[$daemon,sozu-rs]:-}" ]; then
        awk -v a="${console_cpu[$daemon,sozu-rs]}" -v b="${console_cpu[$daemon,sozu-2.3.3]}" -v d="$daemon" \
            'BEGIN { if (a > 0) printf "against %s: Sōzu 2.3.3 console CPU / ours: %.0f\n", d, b / a; else printf "against %s: ours used no measurable CPU\n", d }'
    fi
done
