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

# free_ports N: N free TCP ports on 127.0.0.1, separated by spaces.
free_ports() {
    python3 - "$1" <<'PY'
import socket, sys
sockets = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in sockets))
PY
}

# wait_port PORT: returns once something accepts on 127.0.0.1:PORT, or
# stops the script after 30 s.
wait_port() {
    local port=$1 tries=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -gt 300 ]; then
            echo "nothing listens on $port after 30 s" >&2
            exit 1
        fi
        sleep 0.1
    done
}

# nginx_conf DIR CONNECTIONS: writes DIR/nginx.conf for one nginx worker
# keeping its pid and logs in DIR: the top every script shares, then the
# rest (the http block) from standard input.
nginx_conf() {
    local dir=$1 connections=$2
    mkdir -p "$dir/logs"
    {
        printf 'daemon off;\nworker_processes 1;\npid %s/nginx.pid;\n' "$dir"
        printf 'error_log %s/logs/error.log;\nevents { worker_connections %s; }\n' "$dir" "$connections"
        cat
    } >"$dir/nginx.conf"
}

# start_nginx DIR: starts the nginx of DIR/nginx.conf in the background;
# its pid goes in NGINX_PID and PIDS.
start_nginx() {
    nginx -p "$1" -c "$1/nginx.conf" >"$1/logs/out.log" 2>&1 &
    NGINX_PID=$!
    PIDS+=("$NGINX_PID")
}

# start_backend DIR PORT: the backend of the request benchmarks, an nginx
# of one worker answering `return 200` with a short body on
# 127.0.0.1:PORT, keeping client connections (its pid in NGINX_PID and
# PIDS).
start_backend() {
    nginx_conf "$1" 4096 <<CFG
http {
    access_log off;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$2;
        location / { return 200 "hello from the backend\n"; }
    }
}
CFG
    start_nginx "$1"
}

# sozu_conf DIR PORT BACKEND_PORT [TOP]: writes DIR/config.toml for this
# proxy: one worker, access logs off, one HTTP listener on 127.0.0.1:PORT
# and the cluster `bench` sending host 127.0.0.1 to 127.0.0.1:BACKEND_PORT.
# TOP is more top-level lines (buffer sizes, timeouts).
sozu_conf() {
    mkdir -p "$1"
    cat >"$1/config.toml" <<TOML
command_socket = "sozu.sock"
worker_count = 1
log_level = "warn,access=off"
${4:-}

[[listeners]]
protocol = "http"
address = "127.0.0.1:$2"

[clusters.bench]
protocol = "http"
frontends = [{ address = "127.0.0.1:$2", hostname = "127.0.0.1" }]
backends = [{ address = "127.0.0.1:$3" }]
TOML
}

# nginx_proxy_conf DIR BACKEND_PORT ACCESS SERVER: writes DIR/nginx.conf
# for nginx as the compared proxy: one worker keeping connections to the
# backend on 127.0.0.1:BACKEND_PORT alive, adding X-Forwarded-For; ACCESS
# is its access_log line, SERVER the server block's listen (and TLS)
# lines.
nginx_proxy_conf() {
    nginx_conf "$1" 4096 <<CFG
http {
    $3
    keepalive_requests 1000000;
    upstream backend {
        server 127.0.0.1:$2;
        keepalive 128;
        keepalive_requests 1000000;
    }
    server {
        $4
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
CFG
}
