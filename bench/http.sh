#!/usr/bin/env bash
# Requests per second and latency of small HTTP requests through this proxy,
# nginx and HAProxy, side by side in one run. Not run by CI.
#
# The backend is an nginx answering `return 200` with a short body. Each
# proxy runs one worker (one thread) in front of it, keeps connections to it
# alive, and adds X-Forwarded-For. `wrk` drives each proxy in turn; the
# order rotates every round so that a change of load on the machine hits
# every proxy alike. The script prints each run, then the medians of
# requests/s, p50 and p99, and this proxy's ratios to nginx and HAProxy.
#
# Modes (MODES, all by default):
#   http        keep-alive HTTP/1.1
#   https       keep-alive HTTP/1.1 over TLS 1.3
#   http-close  a new connection per request (`Connection: close`)
#   https-close a new TLS 1.3 connection (full handshake) per request
#   pipeline    keep-alive HTTP/1.1, 16 requests pipelined per write (wrk
#               with a Lua script; its latency is that of the 16)
#
#   bench/http.sh                                 # every mode, 3 rounds of 10 s
#   MODES=http ROUNDS=5 DURATION=20s bench/http.sh
#   CONNECTIONS=100 bench/http.sh
#   ACCESS_LOGS=on bench/http.sh                  # access logs on, for all three
#   LOG_LEVEL=info MODES=http bench/http.sh       # this proxy's info log alone
#   PERF=1 MODES=http bench/http.sh               # then a perf profile of our worker
#   CPU=1 MODES=http bench/http.sh                # then CPU time per request of each proxy (CPU_ROUNDS rounds, default 5)
#   DIRECT=1 bench/http.sh                        # also the backend alone, as a ceiling
#   SYSCALLS=1 MODES=http bench/http.sh           # then system calls per request of each proxy
#
# Access logs are off everywhere by default (nginx `access_log off`,
# HAProxy logs nothing without a `log` line, this proxy at
# `log_level = "warn,access=off"`: its access records are written whatever
# the level unless the filter turns them off). ACCESS_LOGS=on turns them on
# for all three: nginx writes its combined-format lines to a file, HAProxy
# `option httplog` to its standard output (a file), this proxy runs at
# `log_level = "info"` (one access record per request, standard output to
# a file). nginx
# gets `keepalive_requests` raised so that it does not close client and
# backend connections every 1,000 requests (the others never do). All three
# serve the same self-signed ECDSA P-256 certificate, made here by openssl.
#
# nginx, HAProxy, wrk and openssl come from the distribution's packages; on
# Debian or Ubuntu the script installs the missing ones (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

MODES=${MODES:-http https http-close https-close pipeline}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-50}
# shellcheck source=bench/common.sh
source bench/common.sh
ACCESS_LOGS=${ACCESS_LOGS:-off}
case "$ACCESS_LOGS" in
    on) LOG_LEVEL=${LOG_LEVEL:-info} NGINX_ACCESS="access_log $WORK/nginx/access.log;"
        HAPROXY_LOG="log stdout format raw local0"
        HAPROXY_HTTPLOG="option httplog" ;;
    off) LOG_LEVEL=${LOG_LEVEL:-warn,access=off} NGINX_ACCESS="access_log off;" HAPROXY_LOG="" HAPROXY_HTTPLOG="" ;;
    *) echo "ACCESS_LOGS is on or off, not $ACCESS_LOGS" >&2; exit 2 ;;
esac
PERF=${PERF:-0}
CPU=${CPU:-0}
DIRECT=${DIRECT:-0}
SYSCALLS=${SYSCALLS:-0}

# -- tools
need_packages=()
command -v nginx >/dev/null || need_packages+=(nginx)
command -v haproxy >/dev/null || need_packages+=(haproxy)
command -v wrk >/dev/null || need_packages+=(wrk)
command -v openssl >/dev/null || need_packages+=(openssl)
if [ "$PERF" = 1 ] && ! command -v perf >/dev/null; then
    need_packages+=(linux-perf)
fi
if [ "$SYSCALLS" = 1 ] && ! command -v strace >/dev/null; then
    need_packages+=(strace)
fi
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "installing ${need_packages[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_packages[@]}" >&2
fi
command -v python3 >/dev/null || { echo "python3 is needed to find free ports" >&2; exit 1; }

echo "building sozu (release)" >&2
cargo build --release -p sozu-ctl >&2
SOZU="$(cd "$TARGET_DIR/release" && pwd)/sozu"


read -r BACKEND SOZU_HTTP SOZU_HTTPS NGINX_HTTP NGINX_HTTPS HAPROXY_HTTP HAPROXY_HTTPS < <(free_ports 7)

# -- one self-signed certificate for all three
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -days 2 -subj /CN=localhost \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/combined.pem"

# -- the backend: nginx, one worker, `return 200`
start_backend "$WORK/backend" "$BACKEND"

# -- this proxy: one worker, an HTTP and an HTTPS listener, one cluster
mkdir -p "$WORK/sozu"
cat >"$WORK/sozu/config.toml" <<TOML
command_socket = "sozu.sock"
worker_count = 1
log_level = "$LOG_LEVEL"

[[listeners]]
protocol = "http"
address = "127.0.0.1:$SOZU_HTTP"

[[listeners]]
protocol = "https"
address = "127.0.0.1:$SOZU_HTTPS"
certificate = "$WORK/cert.pem"
key = "$WORK/key.pem"
tls_versions = ["TLS_V13"]

[clusters.bench]
protocol = "http"
frontends = [
    { address = "127.0.0.1:$SOZU_HTTP", hostname = "127.0.0.1" },
    { address = "127.0.0.1:$SOZU_HTTPS", hostname = "127.0.0.1" },
]
backends = [{ address = "127.0.0.1:$BACKEND" }]
TOML
(cd "$WORK/sozu" && exec "$SOZU" start -c config.toml >"$WORK/sozu/out.log" 2>&1) &
SOZU_MAIN=$!
PIDS+=("$SOZU_MAIN")

# -- nginx: one worker, keep-alive to the backend
nginx_proxy_conf "$WORK/nginx" "$BACKEND" "$NGINX_ACCESS" "listen 127.0.0.1:$NGINX_HTTP;
        listen 127.0.0.1:$NGINX_HTTPS ssl;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.3;"
start_nginx "$WORK/nginx"
NGINX_MAIN=$NGINX_PID

# -- HAProxy: one thread, mode http, keep-alive to the backend (its default)
cat >"$WORK/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4096
    ssl-default-bind-options ssl-min-ver TLSv1.3
    $HAPROXY_LOG
defaults
    mode http
    log global
    $HAPROXY_HTTPLOG
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind 127.0.0.1:$HAPROXY_HTTP
    bind 127.0.0.1:$HAPROXY_HTTPS ssl crt $WORK/combined.pem
    default_backend backend
backend backend
    server backend 127.0.0.1:$BACKEND
CFG
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
HAPROXY_MAIN=$!
PIDS+=($!)

for port in "$BACKEND" "$SOZU_HTTP" "$SOZU_HTTPS" "$NGINX_HTTP" "$NGINX_HTTPS" "$HAPROXY_HTTP" "$HAPROXY_HTTPS"; do
    wait_port "$port"
done

# -- wrk runs
# The wrk option a mode needs: 1 (a new connection per request), pipeline,
# or 0.
close_of() {
    case "$1" in *-close) echo 1 ;; pipeline) echo pipeline ;; *) echo 0 ;; esac
}

# The processes that serve for a target (their CPU time and system calls
# are counted).
serving_pids() {
    case "$1" in
        sozu-rs) pgrep -P "$SOZU_MAIN" | tr '\n' ' ' ;;
        nginx) pgrep -P "$NGINX_MAIN" | tr '\n' ' ' ;;
        haproxy) echo "$HAPROXY_MAIN" ;;
    esac
}

# Prints how many requests one DURATION run of wrk made.
count_requests() {
    local target=$1 mode=$2 close=$3
    local args=(-t1 "-c$CONNECTIONS" "-d$DURATION")
    [ "$close" = 1 ] && args+=(-H 'Connection: close')
    [ "$close" = pipeline ] && args+=(-s "$WORK/pipeline.lua")
    wrk "${args[@]}" "$(url_of "$target" "$mode")" | awk '/requests in/ { print $1 }'
}

# Prints "requests/s p50_ms p99_ms errors" for one run.
run_wrk() {
    local url=$1 duration=$2 close=$3
    local args=(-t1 "-c$CONNECTIONS" "-d$duration" --latency)
    [ "$close" = 1 ] && args+=(-H 'Connection: close')
    [ "$close" = pipeline ] && args+=(-s "$WORK/pipeline.lua")
    wrk "${args[@]}" "$url" | awk '
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        $1 == "Requests/sec:" { rps = $2 }
        /Non-2xx/ { errors += $NF }
        /Socket errors/ { gsub(",", ""); errors += $4 + $6 + $8 + $10 }
        END { printf "%.0f %.3f %.3f %d\n", rps, p50, p99, errors }'
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

targets=(sozu-rs nginx haproxy)
[ "$DIRECT" = 1 ] && targets+=(direct)
url_of() {
    local target=$1 mode=$2 scheme=http port
    case "$mode" in https*) scheme=https ;; esac
    case "$target:$scheme" in
        sozu-rs:http) port=$SOZU_HTTP ;;
        sozu-rs:https) port=$SOZU_HTTPS ;;
        nginx:http) port=$NGINX_HTTP ;;
        nginx:https) port=$NGINX_HTTPS ;;
        haproxy:http) port=$HAPROXY_HTTP ;;
        haproxy:https) port=$HAPROXY_HTTPS ;;
        direct:*) scheme=http port=$BACKEND ;;
    esac
    echo "$scheme://127.0.0.1:$port/"
}

# 16 requests per write, the replies counted one by one by wrk.
cat >"$WORK/pipeline.lua" <<'LUA'
init = function(args)
    local requests = {}
    for i = 1, 16 do
        requests[i] = wrk.format(nil, "/")
    end
    batch = table.concat(requests)
end
request = function()
    return batch
end
LUA

echo "$(nproc) cores; wrk -t1 -c$CONNECTIONS -d$DURATION --latency; $ROUNDS rounds; access logs $ACCESS_LOGS (sozu-rs log_level $LOG_LEVEL)" >&2
for mode in $MODES; do
    close=$(close_of "$mode")
    declare -A rps=() p50=() p99=() errors=()
    for target in "${targets[@]}"; do
        run_wrk "$(url_of "$target" "$mode")" 2s "$close" >/dev/null # warm-up
    done
    load_before=$(cut -d' ' -f1-3 /proc/loadavg)
    for round in $(seq 1 "$ROUNDS"); do
        count=${#targets[@]}
        for step in $(seq 0 $((count - 1))); do
            target=${targets[$(((step + round - 1) % count))]}
            read -r r a b e < <(run_wrk "$(url_of "$target" "$mode")" "$DURATION" "$close")
            rps[$target]+="$r "
            p50[$target]+="$a "
            p99[$target]+="$b "
            errors[$target]=$((${errors[$target]:-0} + e))
            printf '%s round %d %-8s %8s req/s  p50 %7s ms  p99 %7s ms  errors %s\n' "$mode" "$round" "$target" "$r" "$a" "$b" "$e" >&2
        done
    done
    echo
    echo "== $mode: load average $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
    printf '%-8s %10s %10s %10s %7s   %s\n' target "req/s" "p50 ms" "p99 ms" errors "req/s by round"
    declare -A median_rps=() median_p99=()
    for target in "${targets[@]}"; do
        median_rps[$target]=$(echo "${rps[$target]}" | median)
        median_p99[$target]=$(echo "${p99[$target]}" | median)
        printf '%-8s %10s %10s %10s %7s   %s\n' "$target" "${median_rps[$target]}" \
            "$(echo "${p50[$target]}" | median)" "${median_p99[$target]}" "${errors[$target]}" "${rps[$target]}"
    done
    for other in nginx haproxy; do
        awk -v a="${median_rps[sozu-rs]}" -v b="${median_rps[$other]}" -v c="${median_p99[sozu-rs]}" -v d="${median_p99[$other]}" -v o="$other" \
            'BEGIN { printf "sozu-rs / %-7s  req/s %.2f  p99 %.2f\n", o, a / b, c / d }'
    done
    unset rps p50 p99 errors median_rps median_p99
done

if [ "$PERF" = 1 ]; then
    worker=$(pgrep -P "$SOZU_MAIN" | head -1)
    mode=${MODES%% *}
    close=$(close_of "$mode")
    echo
    echo "== perf profile of the sozu-rs worker ($worker), $mode"
    run_wrk "$(url_of sozu-rs "$mode")" 12s "$close" >/dev/null &
    load=$!
    sleep 1
    perf record -g -F 999 -p "$worker" -o "$WORK/perf.data" -- sleep 10 2>/dev/null
    wait "$load"
    perf report -i "$WORK/perf.data" --no-children --percent-limit 0.7 --stdio 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -40
fi

# CPU time per request: user and system time (/proc/PID/stat, in clock
# ticks) of the processes that serve (our worker, nginx's worker, the
# HAProxy process) over DURATION runs of the first mode, divided by the
# requests wrk counted: CPU_ROUNDS rounds (default 5), the targets taking
# turns in a rotating order as above, then the median of each and the
# ratios of our user time to theirs. perf's hardware counters are not
# available on every virtual machine; this is. One run moves by ±10% on a
# shared machine, more than the differences to measure; the rounds'
# medians, taken side by side, move far less.
if [ "$CPU" = 1 ]; then
    mode=${MODES%% *}
    close=$(close_of "$mode")
    tick=$(getconf CLK_TCK)
    CPU_ROUNDS=${CPU_ROUNDS:-5}
    cpu_targets=(sozu-rs nginx haproxy)
    ticks() { local u=0 s=0 pid; for pid in "$@"; do read -r a b < <(awk '{ print $14, $15 }' "/proc/$pid/stat"); u=$((u + a)); s=$((s + b)); done; echo "$u $s"; }
    declare -A user=() system=()
    echo
    echo "== CPU time per request, $mode, $CPU_ROUNDS rounds of $DURATION each"
    printf '%-5s %-8s %10s %14s %14s\n' round target requests "user us/req" "system us/req"
    for round in $(seq 1 "$CPU_ROUNDS"); do
        for step in $(seq 0 $((${#cpu_targets[@]} - 1))); do
            target=${cpu_targets[$(((step + round - 1) % ${#cpu_targets[@]}))]}
            pids=$(serving_pids "$target")
            read -r u0 s0 < <(ticks $pids)
            requests=$(count_requests "$target" "$mode" "$close")
            read -r u1 s1 < <(ticks $pids)
            read -r u s < <(awk -v r="$requests" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v t="$tick" \
                'BEGIN { printf "%.2f %.2f\n", u * 1e6 / t / r, s * 1e6 / t / r }')
            user[$target]+="$u "
            system[$target]+="$s "
            printf '%-5s %-8s %10d %14s %14s\n' "$round" "$target" "$requests" "$u" "$s"
        done
    done
    echo "-- medians"
    declare -A median_user=()
    for target in "${cpu_targets[@]}"; do
        median_user[$target]=$(echo "${user[$target]}" | median)
        printf '%-8s user %6s us/req  system %6s us/req\n' "$target" "${median_user[$target]}" \
            "$(echo "${system[$target]}" | median)"
    done
    for other in nginx haproxy; do
        awk -v a="${median_user[sozu-rs]}" -v b="${median_user[$other]}" -v o="$other" \
            'BEGIN { printf "sozu-rs / %-7s  user time %.2f\n", o, a / b }'
    done
    unset user system median_user
fi

# System calls per request: strace counts the calls of the processes that
# serve over one DURATION run of the first mode (strace slows them down, so
# only the counts mean something, not the times), divided by the requests
# wrk counted.
if [ "$SYSCALLS" = 1 ]; then
    mode=${MODES%% *}
    close=$(close_of "$mode")
    echo
    echo "== system calls per request, $mode, one run of $DURATION each"
    for target in sozu-rs nginx haproxy; do
        pids=$(serving_pids "$target")
        # shellcheck disable=SC2046
        strace -c -f -o "$WORK/strace.$target" $(printf -- '-p %s ' $pids) &
        tracer=$!
        sleep 1
        requests=$(count_requests "$target" "$mode" "$close")
        kill -INT "$tracer"
        wait "$tracer" || true
        echo "-- $target: $requests requests"
        awk -v r="$requests" '$NF != "total" && $4 ~ /^[0-9]+$/ && $4 / r >= 0.01 {
                printf "  %-16s %8.2f per request\n", $NF, $4 / r }
            $NF == "total" { printf "  %-16s %8.2f per request\n", "all", $3 / r }' "$WORK/strace.$target"
    done
fi
