#!/usr/bin/env bash
# The differential corpus (ctl/tests/e2e/differential/) through this proxy,
# nginx and HAProxy side by side: every case's raw bytes go to each proxy in
# front of the same raw recording backend, and the script prints a table:
# case, our verdict, what ours, nginx and HAProxy did (the statuses the
# client got, the requests the backend received), and for each case where
# ours differs from both the reason (RFC 9112 section) from the corpus.
# Then the counts. Not run by CI (CI runs the part without nginx and
# HAProxy: `cargo test -p sozu-ctl --test e2e differential::`).
#
#   scripts/differential.sh                 # table on stdout
#   OUT=table.md scripts/differential.sh    # also written to table.md
#
# nginx and HAProxy come from the distribution's packages and are started
# on loopback with generated configurations when installed; a missing one
# is said so and shown as "(absent)" in its column. nginx runs with its
# defaults for the request side (request buffering on, 8 KiB header
# buffers), HAProxy with its defaults in `mode http`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/common.sh
source bench/common.sh


read -r BACKEND NGINX HAPROXY < <(free_ports 3)
export DIFF_BACKEND_PORT=$BACKEND

if command -v nginx >/dev/null; then
    nginx_conf "$WORK/nginx" 1024 <<CFG
http {
    access_log off;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    upstream recorder { server 127.0.0.1:$BACKEND; keepalive 8; }
    server {
        listen 127.0.0.1:$NGINX;
        server_name app.test;
        location / {
            proxy_pass http://recorder;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
CFG
    start_nginx "$WORK/nginx"
    wait_port "$NGINX"
    export DIFF_NGINX_PORT=$NGINX
    echo "nginx: $(nginx -v 2>&1) on 127.0.0.1:$NGINX" >&2
else
    echo "nginx is not installed (apt-get install nginx): its column is absent" >&2
fi

if command -v haproxy >/dev/null; then
    mkdir -p "$WORK/haproxy"
    cat >"$WORK/haproxy/haproxy.cfg" <<CFG
global
    maxconn 1024
defaults
    mode http
    timeout connect 3s
    timeout client 5s
    timeout server 5s
    timeout http-request 3s
frontend front
    bind 127.0.0.1:$HAPROXY
    default_backend recorder
backend recorder
    server recorder 127.0.0.1:$BACKEND
CFG
    haproxy -db -f "$WORK/haproxy/haproxy.cfg" >"$WORK/haproxy/out.log" 2>&1 &
    PIDS+=($!)
    wait_port "$HAPROXY"
    export DIFF_HAPROXY_PORT=$HAPROXY
    echo "HAProxy: $(haproxy -v | head -1) on 127.0.0.1:$HAPROXY" >&2
else
    echo "HAProxy is not installed (apt-get install haproxy): its column is absent" >&2
fi

# nginx and HAProxy connect to the recording backend only per request, so
# it may start after them (the test binds DIFF_BACKEND_PORT).
export DIFF_TABLE="$WORK/table.md"
cargo test -q -p sozu-ctl --test e2e differential::table_against_nginx_and_haproxy \
    -- --ignored --exact >&2
cat "$DIFF_TABLE"
if [ -n "${OUT:-}" ]; then
    cp "$DIFF_TABLE" "$OUT"
fi
