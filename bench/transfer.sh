#!/usr/bin/env bash
# One large HTTP body through this proxy and through nginx, side by side:
# an upload and a download of SIZE bytes (1 GiB by default), each framed by
# Content-Length and chunked. Prints the throughput (MB/s, 10^6 bytes/s) of
# every transfer, the CPU time the proxy's worker spent on it (user and
# system, from /proc/PID/stat: steadier than the rate on a busy machine),
# and the peak resident memory of the worker during it (VmHWM, reset before
# each transfer through /proc/PID/clear_refs), with the worker's resident
# memory before the first transfer. Not run by CI.
#
#   bench/transfer.sh                      # 1 GiB, 1 round
#   SIZE=$((256 << 20)) ROUNDS=3 bench/transfer.sh
#   SOZU_BIN=path/to/sozu bench/transfer.sh  # skip the release build
#   BUFFER_SIZE=65536 bench/transfer.sh    # this proxy's buffer_size (16393, Sozu's default)
#   PIPE_CAPACITY=65536 bench/transfer.sh  # splice_pipe_capacity_bytes (unset: 1 MiB)
#   SYSCALLS=1 SIZE=$((256 << 20)) bench/transfer.sh  # also system calls per GiB
#
# The backend is a small Python program: it answers GET /cl and GET
# /chunked with SIZE zero bytes (Content-Length, or 1 MiB chunks) and reads
# any upload to its end before answering with the count. curl sends and
# receives (`-T` from a file for Content-Length, from a pipe with
# `Transfer-Encoding: chunked`), without `Expect: 100-continue`. nginx streams both ways
# (`proxy_request_buffering off`, `proxy_buffering off`, 64 KiB buffers
# each way, no body size limit), one worker; this proxy one worker, release build.
#
# SYSCALLS=1 counts each worker's system calls during each transfer with
# `perf stat` (tracepoints raw_syscalls:sys_enter, and splice, epoll_wait,
# read/recvfrom and write/writev/sendto apart), scaled to calls per GiB:
# counts that do not depend on how busy the machine is. perf, as root.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${SIZE:-$((1 << 30))}
# Each relayed body moves through one buffer of buffer_size bytes per
# direction; 65536 gives this proxy the 64 KiB nginx has here.
BUFFER_SIZE=${BUFFER_SIZE:-16393}
ROUNDS=${ROUNDS:-1}
# shellcheck source=bench/common.sh
source bench/common.sh

for tool in nginx curl python3 ${SYSCALLS:+perf}; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 1; }
done
if [ -n "${SOZU_BIN:-}" ]; then
    SOZU=$(cd "$(dirname "$SOZU_BIN")" && pwd)/$(basename "$SOZU_BIN")
else
    echo "building sozu (release)" >&2
    cargo build --release -p sozu-ctl >&2
    SOZU="$(cd "$TARGET_DIR/release" && pwd)/sozu"
fi

read -r BACKEND SOZU_HTTP NGINX_HTTP < <(free_ports 3)

# -- the backend
cat >"$WORK/backend.py" <<'PY'
import socket, sys, threading

PORT, SIZE = int(sys.argv[1]), int(sys.argv[2])
CHUNK = 1 << 20
ZEROS = bytes(CHUNK)

def read_head(conn, buffer):
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None, buffer
        buffer += data
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest

def drain_length(conn, rest, length):
    got = len(rest)
    view = memoryview(bytearray(CHUNK))
    while got < length:
        n = conn.recv_into(view, min(CHUNK, length - got))
        if n == 0:
            break
        got += n
    return got

def drain_chunked(conn, rest):
    # Counts the data of a chunked body, reading as it goes.
    buffer, data = bytearray(rest), 0
    def fill():
        more = conn.recv(CHUNK)
        if not more:
            raise EOFError
        buffer.extend(more)
    while True:
        while (end := buffer.find(b"\r\n")) < 0:
            fill()
        size = int(bytes(buffer[:end]).split(b";")[0], 16)
        del buffer[: end + 2]
        if size == 0:
            while buffer.find(b"\r\n") < 0:
                fill()
            return data
        left = size + 2
        taken = min(len(buffer), left)
        del buffer[:taken]
        left -= taken
        view = memoryview(bytearray(CHUNK))
        while left > 0:
            n = conn.recv_into(view, min(CHUNK, left))
            if n == 0:
                raise EOFError
            left -= n
        data += size

def serve(conn):
    buffer = b""
    try:
        while True:
            head, rest = read_head(conn, buffer)
            if head is None:
                return
            lines = head.split("\r\n")
            method, target = lines[0].split(" ")[:2]
            headers = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
            buffer = b""
            if method in ("PUT", "POST"):
                if "chunked" in headers.get("transfer-encoding", ""):
                    got = drain_chunked(conn, rest)
                else:
                    got = drain_length(conn, rest, int(headers.get("content-length", "0")))
                body = str(got).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            elif target == "/chunked":
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                left = SIZE
                while left > 0:
                    n = min(CHUNK, left)
                    conn.sendall(b"%x\r\n" % n)
                    conn.sendall(ZEROS[:n])
                    conn.sendall(b"\r\n")
                    left -= n
                conn.sendall(b"0\r\n\r\n")
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE)
                left = SIZE
                while left > 0:
                    n = min(CHUNK, left)
                    conn.sendall(ZEROS[:n])
                    left -= n
    except (OSError, EOFError, ValueError):
        pass
    finally:
        conn.close()

server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", PORT))
server.listen(64)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
PY
python3 "$WORK/backend.py" "$BACKEND" "$SIZE" &
PIDS+=($!)

# -- this proxy
sozu_conf "$WORK/sozu" "$SOZU_HTTP" "$BACKEND" "buffer_size = $BUFFER_SIZE
${PIPE_CAPACITY:+splice_pipe_capacity_bytes = $PIPE_CAPACITY}
front_timeout = 600
back_timeout = 600
request_timeout = 600"
(cd "$WORK/sozu" && exec "$SOZU" start -c config.toml >"$WORK/sozu/out.log" 2>&1) &
SOZU_MAIN=$!
PIDS+=("$SOZU_MAIN")

# -- nginx, streaming both ways
nginx_conf "$WORK/nginx" 1024 <<CFG
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    upstream backend { server 127.0.0.1:$BACKEND; keepalive 8; }
    server {
        listen 127.0.0.1:$NGINX_HTTP;
        client_max_body_size 0;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_buffer_size 64k;
            proxy_buffers 4 64k;
            proxy_busy_buffers_size 128k;
            client_body_buffer_size 64k;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
        }
    }
}
CFG
start_nginx "$WORK/nginx"
NGINX_MAIN=$NGINX_PID

for port in "$BACKEND" "$SOZU_HTTP" "$NGINX_HTTP"; do
    wait_port "$port"
done
worker_of() {
    local pid tries=0
    until pid=$(pgrep -P "$1" | head -1) && [ -n "$pid" ]; do
        tries=$((tries + 1))
        [ "$tries" -gt 300 ] && { echo "no worker under $1" >&2; exit 1; }
        sleep 0.1
    done
    echo "$pid"
}
SOZU_WORKER=$(worker_of "$SOZU_MAIN")
NGINX_WORKER=$(worker_of "$NGINX_MAIN")
kb() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

head -c "$SIZE" /dev/zero >"$WORK/upload.bin"
echo "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $SIZE bytes per transfer, $ROUNDS round(s)" >&2
echo "worker resident memory before: sozu-rs $(kb "$SOZU_WORKER" VmRSS) kB, nginx $(kb "$NGINX_WORKER" VmRSS) kB"

# The CPU time a process has used, user and system, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# The system calls counted (SYSCALLS=1), each a perf tracepoint.
EVENTS=raw_syscalls:sys_enter,syscalls:sys_enter_splice,syscalls:sys_enter_epoll_wait
EVENTS+=,syscalls:sys_enter_read,syscalls:sys_enter_recvfrom
EVENTS+=,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto

# Starts counting `worker`'s system calls into $WORK/perf.csv; PERF is
# perf's pid. Returns once perf has attached (its events are open).
count_syscalls() {
    perf stat -x, -e "$EVENTS" -p "$1" -o "$WORK/perf.csv" &
    PERF=$!
    local tries=0
    until ls -l "/proc/$PERF/fd" 2>/dev/null | grep -q perf_event; do
        tries=$((tries + 1))
        [ "$tries" -gt 500 ] && { echo "perf did not attach" >&2; exit 1; }
        sleep 0.01
    done
}

# Stops perf (in the shell that started it: a command substitution could
# not wait for it).
stop_counting() {
    kill -INT "$PERF"
    wait "$PERF" || true
}

# Prints "all splice epoll read write" calls per GiB, as perf counted.
syscalls_per_gib() {
    awk -F, -v n="$SIZE" '
        $3 ~ /raw_syscalls/ { all = $1 } $3 ~ /splice/ { sp = $1 } $3 ~ /epoll_wait/ { ep = $1 }
        $3 ~ /enter_(read|recvfrom)$/ { rd += $1 } $3 ~ /enter_(write|writev|sendto)$/ { wr += $1 }
        END { g = 2^30 / n; printf "%.0f %.0f %.0f %.0f %.0f\n", all * g, sp * g, ep * g, rd * g, wr * g }
    ' "$WORK/perf.csv"
}

# Prints "MB/s peak_kB cpu_ms" (and with SYSCALLS=1, the calls per GiB of
# syscalls_per_gib) for one transfer through the proxy on `port`.
transfer() {
    local port=$1 worker=$2 what=$3 seconds before
    echo 5 >"/proc/$worker/clear_refs" 2>/dev/null || true
    [ -n "${SYSCALLS:-}" ] && [ "$worker" != $$ ] && count_syscalls "$worker"
    before=$(cpu_ticks "$worker")
    local url="http://127.0.0.1:$port"
    case "$what" in
        download-cl) seconds=$(curl -sS -o /dev/null -w '%{time_total}' "$url/cl") ;;
        download-chunked) seconds=$(curl -sS -o /dev/null -w '%{time_total}' "$url/chunked") ;;
        upload-cl) seconds=$(curl -sS -o /dev/null -w '%{time_total}' -H 'Expect:' -T "$WORK/upload.bin" "$url/up") ;;
        upload-chunked)
            seconds=$(head -c "$SIZE" /dev/zero |
                curl -sS -o /dev/null -w '%{time_total}' -T - -H 'Expect:' -H 'Transfer-Encoding: chunked' "$url/up") ;;
    esac
    local calls=""
    if [ -n "${SYSCALLS:-}" ] && [ "$worker" != $$ ]; then
        stop_counting
        calls=$(syscalls_per_gib)
    fi
    awk -v s="$seconds" -v n="$SIZE" -v p="$(kb "$worker" VmHWM)" \
        -v c="$(($(cpu_ticks "$worker") - before))" -v t="$TICK" -v calls="$calls" \
        'BEGIN { printf "%.0f %s %.0f %s\n", n / s / 1e6, p, c * 1000 / t, calls }'
}

printf '%-17s %-8s %10s %14s %12s' transfer proxy "MB/s" "peak RSS kB" "worker CPU ms"
[ -n "${SYSCALLS:-}" ] && printf ' %s' "calls/GiB: all" splice epoll_wait read write
echo
for round in $(seq 1 "$ROUNDS"); do
    for what in download-cl download-chunked upload-cl upload-chunked; do
        # Which proxy goes first alternates from round to round.
        order="sozu-rs nginx"
        [ $((round % 2)) -eq 0 ] && order="nginx sozu-rs"
        for proxy in $order; do
            case $proxy in
                sozu-rs) read -r rate peak cpu calls < <(transfer "$SOZU_HTTP" "$SOZU_WORKER" "$what") ;;
                nginx) read -r rate peak cpu calls < <(transfer "$NGINX_HTTP" "$NGINX_WORKER" "$what") ;;
            esac
            printf '%-17s %-8s %10s %14s %12s %s\n' "$what" "$proxy" "$rate" "$peak" "$cpu" "$calls"
        done
    done
done
echo "direct (no proxy), for the ceiling:"
for what in download-cl download-chunked upload-cl; do
    printf '%-17s %-8s %10s\n' "$what" direct "$(transfer "$BACKEND" "$$" "$what" | cut -d' ' -f1)"
done
