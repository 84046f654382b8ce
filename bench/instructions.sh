#!/usr/bin/env bash
# User-space instructions per keep-alive HTTP request of this proxy, nginx
# and HAProxy, counted by valgrind (callgrind): a figure the load of the
# machine does not move, unlike CPU time, for comparing the user-space
# work per request of the three. Not run by CI.
#
# Each proxy (one worker, keep-alive to an nginx backend answering
# `return 200`, X-Forwarded-For added, access logs off, as in
# bench/http.sh) runs under callgrind twice: once for a single request,
# once for DURATION of `wrk -t1 -cCONNECTIONS`. The instructions of the
# second run minus those of the first (start and stop), over the requests
# made in between, are its instructions per request (every process of
# the proxy counted, system calls not: the kernel's work is the same four
# calls a request for all three, see doc/benchmark.md).
#
# Instructions are not time: they say how much work each proxy's own code
# does, not how fast the processor runs it. Under valgrind the proxies are
# some 50 times slower, so wrk keeps fewer connections and each wake-up of
# the event loop serves fewer requests than at full speed.
#
#   bench/instructions.sh                      # 10 s, 10 connections
#   DURATION=20s CONNECTIONS=20 bench/instructions.sh
#
# valgrind, nginx, HAProxy and wrk come from the distribution's packages;
# on Debian or Ubuntu the script installs the missing ones (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-10}
# shellcheck source=bench/common.sh
source bench/common.sh

need_packages=()
command -v valgrind >/dev/null || need_packages+=(valgrind)
command -v nginx >/dev/null || need_packages+=(nginx)
command -v haproxy >/dev/null || need_packages+=(haproxy)
command -v wrk >/dev/null || need_packages+=(wrk)
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "installing ${need_packages[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_packages[@]}" >&2
fi

echo "building sozu (release)" >&2
cargo build --release -p sozu-ctl >&2
SOZU="$(cd "$TARGET_DIR/release" && pwd)/sozu"

read -r BACKEND PROXY < <(free_ports 2)
# The proxies' workers may run as another user (nginx's as nobody): they
# must be able to write their counts here.
chmod 777 "$WORK"

start_backend "$WORK/backend" "$BACKEND"
wait_port "$BACKEND"

sozu_conf "$WORK/sozu" "$PROXY" "$BACKEND"

nginx_proxy_conf "$WORK/nginx" "$BACKEND" "access_log off;" "listen 127.0.0.1:$PROXY;"

cat >"$WORK/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind 127.0.0.1:$PROXY
    default_backend backend
backend backend
    server backend 127.0.0.1:$BACKEND
CFG

# run TARGET SECONDS: starts TARGET under callgrind (its counts in
# $WORK/TARGET-SECONDS/), makes one request, then SECONDS of wrk (none for
# 0), stops it gently (so that every process writes its counts) and prints
# "instructions requests".
run() {
    local target=$1 duration=$2 out="$WORK/$1-$2" pid requests=1
    mkdir -p "$out"
    chmod 777 "$out"
    local grind=(valgrind --tool=callgrind --trace-children=yes "--callgrind-out-file=$out/cg.%p")
    case "$target" in
        sozu-rs) (cd "$WORK/sozu" && exec "${grind[@]}" "$SOZU" start -c config.toml >"$out/log" 2>&1) & ;;
        nginx) "${grind[@]}" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$out/log" 2>&1 & ;;
        haproxy) "${grind[@]}" haproxy -f "$WORK/haproxy.cfg" -db >"$out/log" 2>&1 & ;;
    esac
    pid=$!
    PIDS+=("$pid")
    local tries=0
    until curl -sf -o /dev/null -H 'Host: 127.0.0.1' "http://127.0.0.1:$PROXY/"; do
        tries=$((tries + 1))
        if [ "$tries" -gt 240 ]; then
            echo "$target does not answer after 60 s" >&2
            exit 1
        fi
        sleep 0.25
    done
    if [ "$duration" != 0 ]; then
        local made
        made=$(wrk -t1 "-c$CONNECTIONS" "-d$duration" -H 'Host: 127.0.0.1' "http://127.0.0.1:$PROXY/" |
            awk '/requests in/ { print $1 }')
        requests=$((requests + made))
    fi
    case "$target" in
        nginx) kill -QUIT "$(cat "$WORK/nginx/nginx.pid")" ;;
        haproxy) kill -USR1 "$pid" ;;
        sozu-rs) kill -TERM "$pid" ;;
    esac
    wait "$pid" 2>/dev/null || true
    local total
    total=$(cat "$out"/cg.* | awk '/^summary:/ { sum += $2 } END { print sum + 0 }')
    echo "$total $requests"
}

echo "$(nproc) cores; wrk -t1 -c$CONNECTIONS -d$DURATION under callgrind" >&2
declare -A per_request=()
for target in sozu-rs nginx haproxy; do
    read -r base_instructions base_requests < <(run "$target" 0)
    read -r instructions requests < <(run "$target" "$DURATION")
    per_request[$target]=$(awk -v a="$instructions" -v b="$base_instructions" \
        -v r="$requests" -v s="$base_requests" 'BEGIN { printf "%.0f", (a - b) / (r - s) }')
    printf '%-8s %8d requests  %12d instructions  %6d per request\n' \
        "$target" "$((requests - base_requests))" "$((instructions - base_instructions))" \
        "${per_request[$target]}"
done
echo
awk -v s="${per_request[sozu-rs]}" -v n="${per_request[nginx]}" -v h="${per_request[haproxy]}" \
    'BEGIN { printf "sozu-rs instructions per request: %.2fx nginx, %.2fx HAProxy\n", s / n, s / h }'

