#!/usr/bin/env bash
# Prometheus scraping benchmark (not run in CI): the wall time of `sozu
# status` against a daemon with the Prometheus endpoint on, first with
# nobody scraping, then while a scraper GETs /metrics every 100 ms; medians
# side by side, as a Markdown table.
#
# The daemon holds CLUSTERS clusters (each with an HTTP frontend and two
# backends, added through the command socket), 2 workers, and serves some
# traffic so the exposition has per-cluster series.
#
# Environment: CLUSTERS (default 200), RUNS (default 100 `sozu status` per
# side), SOZU_BIN (the binary; default target/release/sozu, built with
# `cargo build --release -p sozu-ctl` when missing).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=bench/common.sh
. bench/common.sh

CLUSTERS="${CLUSTERS:-200}"
RUNS="${RUNS:-100}"
SOZU="${SOZU_BIN:-$TARGET_DIR/release/sozu}"
if [ ! -x "$SOZU" ]; then
    cargo build --release -p sozu-ctl >&2
fi
SOZU=$(realpath "$SOZU")
command -v curl >/dev/null 2>&1 || { echo "bench/scrape: curl is needed" >&2; exit 2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
HTTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
BACKEND_PORT=$(free_port)

cat > "$WORK/config.toml" <<EOF
command_socket = "sozu.sock"
worker_count = 2
log_level = "error"

[metrics]
prometheus_address = "127.0.0.1:$METRICS_PORT"

[[listeners]]
protocol = "http"
address = "127.0.0.1:$HTTP_PORT"
EOF

# A backend answering 200 to everything.
python3 - "$BACKEND_PORT" >/dev/null 2>&1 <<'EOF' &
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.send_header("Content-Length", "2"); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *a): pass
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
EOF
PIDS+=($!)

(cd "$WORK" && exec "$SOZU" -c config.toml start >"$WORK/daemon.log" 2>&1) &
PIDS+=($!)
for _ in $(seq 200); do
    [ -S "$WORK/sozu.sock" ] && break
    sleep 0.05
done
[ -S "$WORK/sozu.sock" ] || { cat "$WORK/daemon.log" >&2; exit 1; }

ctl() { "$SOZU" -c "$WORK/config.toml" -t 10000 "$@"; }
for i in $(seq "$CLUSTERS"); do
    ctl cluster add --id "c$i" --load-balancing-policy round_robin >/dev/null
    ctl frontend http add --address "127.0.0.1:$HTTP_PORT" --hostname "c$i.test" id "c$i" >/dev/null
    ctl backend add --id "c$i" --backend-id "c$i-a" --address "127.0.0.1:$BACKEND_PORT" >/dev/null
    ctl backend add --id "c$i" --backend-id "c$i-b" --address "127.0.0.1:$BACKEND_PORT" >/dev/null
done
for i in $(seq "$CLUSTERS"); do
    curl -s -o /dev/null -H "Host: c$i.test" "http://127.0.0.1:$HTTP_PORT/"
done
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$WORK/first.txt"
EXPOSITION_BYTES=$(wc -c <"$WORK/first.txt")

# RUNS timings of `sozu status`, in milliseconds, one a line.
time_status() {
    for _ in $(seq "$RUNS"); do
        local start end
        start=$(date +%s%N)
        ctl status >/dev/null
        end=$(date +%s%N)
        echo $(((end - start) / 1000))
    done
}
median() { sort -n | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m / 1000 }'; }
p90() { sort -n | awk '{ v[NR] = $1 } END { printf "%.2f", v[int(NR * 0.9)] / 1000 }'; }

time_status >"$WORK/quiet.txt"

SCRAPES="$WORK/scrapes"
(
    n=0
    while :; do
        curl -s -o /dev/null -m 5 "http://127.0.0.1:$METRICS_PORT/metrics" && n=$((n + 1))
        echo "$n" >"$SCRAPES"
        sleep 0.1
    done
) &
SCRAPER=$!
PIDS+=($SCRAPER)
sleep 1
time_status >"$WORK/scraped.txt"
kill "$SCRAPER" 2>/dev/null || true

echo "| \`sozu status\` ($RUNS runs, $CLUSTERS clusters, exposition $EXPOSITION_BYTES bytes) | median ms | p90 ms |"
echo "|---|---|---|"
echo "| nobody scraping | $(median <"$WORK/quiet.txt") | $(p90 <"$WORK/quiet.txt") |"
echo "| GET /metrics every 100 ms ($(cat "$SCRAPES") scrapes) | $(median <"$WORK/scraped.txt") | $(p90 <"$WORK/scraped.txt") |"
