#!/usr/bin/env bash
# Bytes per second of one large TCP transfer through this proxy, HAProxy
# (`mode tcp`) and nginx (`stream`), side by side in one run, with a direct
# connection as the ceiling. Not run by CI.
#
# Each proxy gets one worker (one thread) and forwards to the same sink.
# A round sends SIZE bytes through every target in turn; the script prints
# each round and the median of ROUNDS rounds in MB/s (10^6 bytes/s).
#
#   bench/tcp-throughput.sh                 # 2 GiB, 3 rounds
#   SIZE=$((512 << 20)) ROUNDS=5 bench/tcp-throughput.sh
#   BUFFER_SIZE=65536 bench/tcp-throughput.sh   # this proxy's buffer_size
#
# Buffers per direction by default: this proxy 16393 bytes (Sozu's
# buffer_size), HAProxy 16384 (tune.bufsize), nginx 16384 (proxy_buffer_size).
#
# HAProxy and nginx come from the distribution's packages; on Debian or
# Ubuntu the script installs them when they are missing (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${SIZE:-$((2 << 30))}
BUFFER_SIZE=${BUFFER_SIZE:-16393}
ROUNDS=${ROUNDS:-3}
# shellcheck source=bench/common.sh
source bench/common.sh

# -- tools
need_packages=()
command -v haproxy >/dev/null || need_packages+=(haproxy)
command -v nginx >/dev/null || need_packages+=(nginx)
stream_module=/usr/lib/nginx/modules/ngx_stream_module.so
if [ ! -e "$stream_module" ] && ! nginx -V 2>&1 | grep -q -- '--with-stream[^=]'; then
    need_packages+=(libnginx-mod-stream)
fi
if [ ${#need_packages[@]} -gt 0 ]; then
    echo "installing ${need_packages[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_packages[@]}" >&2
fi
command -v python3 >/dev/null || { echo "python3 is needed for the sink and the sender" >&2; exit 1; }

echo "building sozu (release)" >&2
cargo build --release -p sozu-ctl >&2
SOZU="$(cd "$TARGET_DIR/release" && pwd)/sozu"

# -- the sink, the sender and port helpers (one small python program)
cat > "$WORK/tcpbench.py" <<'PY'
import socket, sys, threading, time

CHUNK = 1 << 20

def sink(port):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(64)
    def serve(conn):
        buffer = bytearray(CHUNK)
        view = memoryview(buffer)
        total = 0
        try:
            while True:
                n = conn.recv_into(view)
                if n == 0:
                    break
                total += n
            # Tell the sender how much arrived: its clock stops there.
            conn.sendall(total.to_bytes(8, "big"))
        except OSError:
            pass
        finally:
            conn.close()
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()

def send(port, size):
    payload = memoryview(bytes(CHUNK))
    started = time.perf_counter()
    conn = socket.create_connection(("127.0.0.1", port))
    left = size
    while left > 0:
        n = min(left, CHUNK)
        conn.sendall(payload[:n])
        left -= n
    conn.shutdown(socket.SHUT_WR)
    answer = b""
    while len(answer) < 8:
        more = conn.recv(8 - len(answer))
        if not more:
            break
        answer += more
    elapsed = time.perf_counter() - started
    received = int.from_bytes(answer, "big") if len(answer) == 8 else -1
    if received != size:
        sys.exit(f"the sink got {received} bytes, not {size}")
    print(f"{size / elapsed / 1e6:.0f}")

def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    print(" ".join(str(s.getsockname()[1]) for s in sockets))

def wait(port, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port} after {seconds}s")

command = sys.argv[1]
if command == "sink":
    sink(int(sys.argv[2]))
elif command == "send":
    send(int(sys.argv[2]), int(sys.argv[3]))
elif command == "ports":
    free_ports(int(sys.argv[2]))
elif command == "wait":
    wait(int(sys.argv[2]), float(sys.argv[3]))
PY
bench() { python3 "$WORK/tcpbench.py" "$@"; }

read -r SINK SOZU_PORT HAPROXY_PORT NGINX_PORT < <(bench ports 4)

python3 "$WORK/tcpbench.py" sink "$SINK" &
PIDS+=($!)
bench wait "$SINK" 10

# -- this proxy: one worker, one TCP listener, one cluster
mkdir -p "$WORK/sozu"
cat > "$WORK/sozu/config.toml" <<TOML
command_socket = "sozu.sock"
worker_count = 1
log_level = "error,access=off"
buffer_size = $BUFFER_SIZE

[[listeners]]
protocol = "tcp"
address = "127.0.0.1:$SOZU_PORT"

[clusters.sink]
protocol = "tcp"
frontends = [{ address = "127.0.0.1:$SOZU_PORT" }]
backends = [{ address = "127.0.0.1:$SINK" }]
TOML
(cd "$WORK/sozu" && exec "$SOZU" start -c config.toml >"$WORK/sozu/out.log" 2>&1) &
PIDS+=($!)

# -- HAProxy: one thread, mode tcp, defaults otherwise
cat > "$WORK/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 1024
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend bench
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend sink
backend sink
    server sink 127.0.0.1:$SINK
CFG
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)

# -- nginx: one worker, stream module, defaults otherwise (but half-closes)
load_stream=""
[ -e "$stream_module" ] && load_stream="load_module $stream_module;"
mkdir -p "$WORK/nginx/logs"
cat > "$WORK/nginx/nginx.conf" <<CFG
$load_stream
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log;
events { worker_connections 1024; }
stream {
    server {
        listen 127.0.0.1:$NGINX_PORT;
        proxy_pass 127.0.0.1:$SINK;
        # The sender shuts its write side and waits for the sink's count:
        # without this, nginx closes both directions on the first FIN.
        proxy_half_close on;
    }
}
CFG
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx/logs/out.log" 2>&1 &
PIDS+=($!)

for port in "$SOZU_PORT" "$HAPROXY_PORT" "$NGINX_PORT"; do
    bench wait "$port" 30
done

# -- rounds: every target once per round, so load changes hit all of them
targets=(direct sozu-rs haproxy nginx)
ports=("$SINK" "$SOZU_PORT" "$HAPROXY_PORT" "$NGINX_PORT")
declare -A results
echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $SIZE bytes per transfer, $ROUNDS rounds, sozu-rs buffer_size $BUFFER_SIZE" >&2
for round in $(seq 1 "$ROUNDS"); do
    for index in "${!targets[@]}"; do
        rate=$(bench send "${ports[$index]}" "$SIZE")
        results[${targets[$index]}]+="$rate "
        echo "round $round ${targets[$index]}: $rate MB/s" >&2
    done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf '%-10s %-24s %s\n' target "rounds (MB/s)" "median (MB/s)"
for target in "${targets[@]}"; do
    printf '%-10s %-24s %s\n' "$target" "${results[$target]}" "$(echo "${results[$target]}" | median)"
done
