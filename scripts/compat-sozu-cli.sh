#!/usr/bin/env bash
# Compatibility of our `sozu` command line with Sozu 2.3.3's, against a real
# Sozu 2.3.3 daemon.
#
# For every command checked, our CLI and Sozu's run against the same daemon
# in the same state and their `--json` outputs must be equal as JSON values
# (worker pids in `status` are ignored). A change is made by our CLI, looked
# at, undone, then made by Sozu's CLI and looked at again: the two results
# must be equal, which shows both sent the same request. `state save` files
# written after each CLI's changes must be byte-identical. Finally `apply`
# and `diff` run against the Sozu daemon: the fixture configuration must
# need no change, and an applied change must leave nothing to do.
#
# The reference is installed only when missing, into
# $HOME/.cache/sozu-reference/2.3.3 (takes several minutes). Exits non-zero
# on any mismatch, printing what differed; the daemon is stopped on exit.
#
# Environment: SOZU_OURS (our binary; default: built with cargo),
# SOZU_REFERENCE (Sozu's binary; default: the cache above).

set -euo pipefail

NAME=compat
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# -- a private copy of the fixture configuration, on free ports
WORK="$(mktemp -d /tmp/sozu-compat.XXXXXX)"
DAEMON_PID=""
cleanup() {
    if [ -n "$DAEMON_PID" ]; then
        "$REF" -c "$WORK/config.toml" -t 2000 shutdown --hard >/dev/null 2>&1 || true
        sleep 0.3
        kill -TERM -- "-$DAEMON_PID" 2>/dev/null || true
        sleep 0.3
        kill -KILL -- "-$DAEMON_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
    local port
    while :; do
        port=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            case " ${USED_PORTS:-} " in *" $port "*) continue ;; esac
            USED_PORTS="${USED_PORTS:-} $port"
            echo "$port"
            return
        fi
    done
}
HTTP_PORT=$(free_port); HTTPS_PORT=$(free_port); TCP_PORT=$(free_port); EXTRA_PORT=$(free_port)
cp "$FIXTURES/cert.pem" "$FIXTURES/key.pem" "$WORK/"
# The configuration's certificate has no chain: add it back the same way.
: > "$WORK/empty-chain.pem"
sed -e "s/28080/$HTTP_PORT/g" -e "s/28443/$HTTPS_PORT/g" -e "s/28081/$TCP_PORT/g" \
    -e "s|^command_socket = .*|command_socket = \"$WORK/sozu.sock\"|" \
    "$FIXTURES/config.toml" > "$WORK/config.toml"
CONFIG="$WORK/config.toml"
cd "$WORK"

# -- the reference daemon, in its own process group so cleanup gets workers too
setsid "$REF" start -c "$CONFIG" > "$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 1 300); do
    [ -S "$WORK/sozu.sock" ] && "$REF" -c "$CONFIG" -j status >/dev/null 2>&1 && break
    kill -0 "$DAEMON_PID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; die "the Sozu daemon exited"; }
    sleep 0.1
done
[ -S "$WORK/sozu.sock" ] || { cat "$WORK/daemon.log" >&2; die "no command socket after 30 s"; }

FAILURES=0
MATCHED=()

ours()   { "$OURS" -c "$CONFIG" --json "$@"; }
theirs() { "$REF" -c "$CONFIG" --json "$@"; }

# Normalises one JSON output (for status: pids zeroed, workers by id).
# Sozu's `metrics get` writes a terminal escape (save cursor) before its
# JSON; ours does not (stdout holds JSON only), so escapes are dropped here.
normal() {
    local filter="$1" text="$2"
    text="$(printf '%s' "$text" | sed -e 's/\x1b\[[0-9;]*[a-zA-Z]//g' -e 's/\x1b[78]//g')"
    printf '%s' "$text" | jq -S "$filter" 2>/dev/null || printf 'NOT JSON: %s\n' "$text"
}

# same NAME FILTER OURS_OUTPUT THEIRS_OUTPUT
same() {
    local name="$1" filter="$2" a b
    a="$(normal "$filter" "$3")"
    b="$(normal "$filter" "$4")"
    if [ "$a" == "$b" ]; then
        MATCHED+=("$name")
    else
        FAILURES=$((FAILURES + 1))
        log "MISMATCH: $name"
        diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") | sed 's/^/    /' | head -40 >&2 || true
        log "    (< ours, > Sozu's)"
    fi
}

# compare NAME -- ARGS: the same query with both CLIs.
compare() {
    local name="$1"; shift
    local filter="."
    if [ "$1" == "--filter" ]; then filter="$2"; shift 2; fi
    same "$name" "$filter" "$(ours "$@" 2>/dev/null || true)" "$(theirs "$@" 2>/dev/null || true)"
}

# change NAME "DO ARGS" "UNDO ARGS" "LOOK ARGS": DO with ours, LOOK, UNDO with
# ours, DO with Sozu's, LOOK; both DO outputs and both LOOK outputs must match.
change() {
    local name="$1" do_args="$2" undo_args="$3" look_args="$4"
    local ours_do ours_look theirs_do theirs_look
    # shellcheck disable=SC2086
    ours_do="$(ours $do_args 2>/dev/null || echo "exit $?")"
    # shellcheck disable=SC2086
    ours_look="$(ours $look_args 2>/dev/null || true)"
    # shellcheck disable=SC2086
    ours $undo_args >/dev/null 2>&1 || { FAILURES=$((FAILURES + 1)); log "MISMATCH: $name: undo failed"; }
    # shellcheck disable=SC2086
    theirs_do="$(theirs $do_args 2>/dev/null || echo "exit $?")"
    # shellcheck disable=SC2086
    theirs_look="$(theirs $look_args 2>/dev/null || true)"
    same "$name" . "$ours_do" "$theirs_do"
    same "$name (effect: $look_args)" . "$ours_look" "$theirs_look"
}

STATUS_FILTER='.WORKERS.vec |= (map(.pid = 0) | sort_by(.id))'
compare "status" --filter "$STATUS_FILTER" status
compare "listener list" listener list
compare "frontend list" frontend list
compare "frontend list --http -d example" frontend list --http -d example
compare "cluster list" cluster list
compare "cluster list -i web" cluster list -i web
compare "cluster list -d www.example.com" cluster list -d www.example.com
compare "certificate list" certificate list
# Counts move with every request; the kinds counted must agree.
compare "state stats" --filter '.REQUEST_COUNTS.map | del(.COUNT_REQUESTS) | keys' state stats

# -- the console: `sozu top --snapshot` against the Sozu daemon
# Each view's frame must come out with exit 0 (every data source reached
# the daemon) and show what Sozu's own command line says the daemon holds:
# its cluster ids, its listeners' addresses, each backend (id and address).
# The ids and addresses come from Sozu's `--json` listings, not from the
# fixture, so the check follows the daemon.
CONSOLE_VIEWS=(overview clusters listeners backends)
console_snapshot() {
    local view="$1" code=0
    "$OURS" -c "$CONFIG" top --snapshot --size 120x40 --view "$view" \
        >"$WORK/top-$view.txt" 2>"$WORK/top-$view.err" || code=$?
    if [ "$code" == 0 ]; then
        return 0
    fi
    FAILURES=$((FAILURES + 1))
    log "MISMATCH: sozu top --snapshot --view $view against Sozu 2.3.3 exited $code"
    sed 's/^/    /' "$WORK/top-$view.err" "$WORK/top-$view.txt" | head -60 >&2
    return 1
}
# console_shows VIEW LABEL PATTERN...: a line of the view's frame holds
# every PATTERN (fixed strings).
console_shows() {
    local view="$1" label="$2" lines
    shift 2
    lines="$(cat "$WORK/top-$view.txt")"
    for pattern in "$@"; do
        lines="$(printf '%s\n' "$lines" | grep -F -- "$pattern" || true)"
    done
    if [ -n "$lines" ]; then
        return 0
    fi
    CONSOLE_MISSING+=("$view: $label")
    return 1
}
# A jq function: Sozu's JSON socket address as the console writes it
# (IPv4 in full; for IPv6 only the "]:port" end, to spare jq the address
# compression rules).
SOZU_ADDRESS='def addr: if .ip.inner.V4 != null
    then (.ip.inner.V4 | [(. / 16777216 | floor), (. / 65536 | floor) % 256, (. / 256 | floor) % 256, . % 256]
        | map(tostring) | join(".")) + ":" + (.port | tostring)
    else "]:" + (.port | tostring) end; '
CONSOLE_MISSING=()
CONSOLE_OK=1
for view in "${CONSOLE_VIEWS[@]}"; do
    console_snapshot "$view" || CONSOLE_OK=0
done
if [ "$CONSOLE_OK" == 1 ]; then
    mapfile -t sozu_clusters < <(theirs cluster list | jq -r '.WORKER_RESPONSES.map.main.content_type.CLUSTER_HASHES.map | keys[]')
    mapfile -t sozu_listeners < <(theirs listener list |
        jq -r '.LISTENERS_LIST | (.http_listeners, .https_listeners, .tcp_listeners) | keys[]')
    [ "${#sozu_clusters[@]}" -gt 0 ] && [ "${#sozu_listeners[@]}" -gt 0 ] ||
        die "Sozu's listings name no cluster or no listener: nothing for the console check"
    for cluster in "${sozu_clusters[@]}"; do
        console_shows clusters "cluster $cluster" "$cluster" || true
    done
    for address in "${sozu_listeners[@]}"; do
        console_shows listeners "listener $address" "$address" || true
    done
    backend_count=0
    for cluster in "${sozu_clusters[@]}"; do
        while IFS=$'\t' read -r backend_id address; do
            backend_count=$((backend_count + 1))
            console_shows backends "backend $backend_id ($address) of $cluster" "$cluster" "$backend_id" "$address" || true
        done < <(theirs cluster list -i "$cluster" |
            jq -r "$SOZU_ADDRESS"'.WORKER_RESPONSES.map.main.content_type.CLUSTERS.vec[].backends[] | [.backend_id, (.address | addr)] | @tsv')
    done
    # The overview counts what the daemon holds (in its box, not the tabs).
    grep -Eq "(│|\\|)clusters +${#sozu_clusters[@]}( |$)" "$WORK/top-overview.txt" ||
        CONSOLE_MISSING+=("overview: clusters ${#sozu_clusters[@]}")
    grep -Eq "(│|\\|)listeners +${#sozu_listeners[@]}( |$)" "$WORK/top-overview.txt" ||
        CONSOLE_MISSING+=("overview: listeners ${#sozu_listeners[@]}")
    grep -Eq "(│|\\|)backends +$backend_count( |$)" "$WORK/top-overview.txt" ||
        CONSOLE_MISSING+=("overview: backends $backend_count")
    if [ "${#CONSOLE_MISSING[@]}" == 0 ]; then
        MATCHED+=("sozu top --snapshot (${CONSOLE_VIEWS[*]}): ${#sozu_clusters[@]} clusters, ${#sozu_listeners[@]} listeners, $backend_count backends shown")
    else
        FAILURES=$((FAILURES + 1))
        log "MISMATCH: sozu top --snapshot does not show what the Sozu daemon holds:"
        for missing in "${CONSOLE_MISSING[@]}"; do log "    missing from view $missing"; done
        for view in "${CONSOLE_VIEWS[@]}"; do
            log "    -- view $view:"
            sed 's/^/    | /' "$WORK/top-$view.txt" >&2
        done
    fi
fi

change "cluster add" \
    "cluster add -i newapp --load-balancing-policy round_robin -s" \
    "cluster remove -i newapp" \
    "cluster list -i newapp"
change "frontend http add" \
    "frontend http add -a 127.0.0.1:$HTTP_PORT --hostname new.example.com -p /x id newapp" \
    "frontend http remove -a 127.0.0.1:$HTTP_PORT --hostname new.example.com -p /x id newapp" \
    "frontend list"
change "backend add" \
    "backend add -i newapp --backend-id nb1 -a 127.0.0.1:9101" \
    "backend remove -i newapp --backend-id nb1 -a 127.0.0.1:9101" \
    "cluster list -i newapp"
change "backend remove" \
    "backend remove -i newapp --backend-id nb1 -a 127.0.0.1:9101" \
    "backend add -i newapp --backend-id nb1 -a 127.0.0.1:9101" \
    "cluster list -i newapp"
theirs backend add -i newapp --backend-id nb1 -a 127.0.0.1:9101 >/dev/null 2>&1 || true
change "listener http add" \
    "listener http add -a 127.0.0.1:$EXTRA_PORT" \
    "listener http remove -a 127.0.0.1:$EXTRA_PORT" \
    "listener list"
change "certificate remove" \
    "certificate remove -a 127.0.0.1:$HTTPS_PORT --certificate cert.pem" \
    "certificate add -a 127.0.0.1:$HTTPS_PORT --certificate cert.pem --certificate-chain empty-chain.pem --key key.pem" \
    "certificate list"
theirs certificate remove -a "127.0.0.1:$HTTPS_PORT" --certificate cert.pem >/dev/null 2>&1 || true
change "certificate add" \
    "certificate add -a 127.0.0.1:$HTTPS_PORT --certificate cert.pem --certificate-chain empty-chain.pem --key key.pem" \
    "certificate remove -a 127.0.0.1:$HTTPS_PORT --certificate cert.pem" \
    "certificate list"

change "listener http update" \
    "listener http update -a 127.0.0.1:$HTTP_PORT --front-timeout 99 --sticky-name OTHER" \
    "listener http update -a 127.0.0.1:$HTTP_PORT --front-timeout 60 --sticky-name MYSTICKY" \
    "listener list"
theirs listener http update -a "127.0.0.1:$HTTP_PORT" --front-timeout 60 --sticky-name MYSTICKY >/dev/null 2>&1 || true
change "listener tcp deactivate" \
    "listener tcp deactivate -a 127.0.0.1:$TCP_PORT" \
    "listener tcp activate -a 127.0.0.1:$TCP_PORT" \
    "listener list"
theirs listener tcp activate -a "127.0.0.1:$TCP_PORT" >/dev/null 2>&1 || true
change "frontend tcp remove" \
    "frontend tcp remove -i db -a 127.0.0.1:$TCP_PORT" \
    "frontend tcp add -i db -a 127.0.0.1:$TCP_PORT" \
    "frontend list --tcp"
theirs frontend tcp add -i db -a "127.0.0.1:$TCP_PORT" >/dev/null 2>&1 || true
change "cluster health-check set" \
    "cluster health-check set -i web --uri /health --interval 30 --healthy-threshold 2" \
    "cluster health-check remove -i web" \
    "cluster health-check list"
theirs cluster health-check remove -i web >/dev/null 2>&1 || true
compare "connection-limit show" connection-limit show
change "connection-limit set" "connection-limit set 50" "connection-limit remove" "connection-limit show"
theirs connection-limit remove >/dev/null 2>&1 || true
compare "metrics get --list" metrics get --list
change "metrics disable" "metrics disable" "metrics enable" "metrics get --list"
theirs metrics enable >/dev/null 2>&1 || true
change "logging" "logging info" "logging error" "connection-limit show"
theirs logging error >/dev/null 2>&1 || true

# Last of the changes: newapp goes (with its frontend and backend).
change "cluster remove" \
    "cluster remove -i newapp" \
    "cluster add -i newapp --load-balancing-policy round_robin -s" \
    "cluster list"

# A refused change fails with both.
ours_code=0; ours backend add -i nosuchcluster --backend-id b1 -a 127.0.0.1:9999 >/dev/null 2>&1 || ours_code=$?
theirs_code=0; theirs backend add -i nosuchcluster --backend-id b1 -a 127.0.0.1:9999 >/dev/null 2>&1 || theirs_code=$?
if [ "$ours_code" != 0 ] && [ "$theirs_code" != 0 ]; then
    MATCHED+=("backend add (refused): both fail")
else
    FAILURES=$((FAILURES + 1)); log "MISMATCH: refused backend add: ours exit $ours_code, Sozu's $theirs_code"
fi

# State files written by the daemon on each CLI's order are identical.
same "state save" . "$(ours state save -f ours.state 2>/dev/null || true)" "$(theirs state save -f theirs.state 2>/dev/null || true)"
if cmp -s ours.state theirs.state; then
    MATCHED+=("state save (file bytes)")
else
    FAILURES=$((FAILURES + 1)); log "MISMATCH: state files differ (ours.state vs theirs.state)"
fi
same "state load" . "$(ours state load -f ours.state 2>/dev/null || true)" "$(theirs state load -f ours.state 2>/dev/null || true)"

# -- apply and diff against Sozu: the live state rebuilt from listings
plan_size() { jq '.summary.add + .summary.change + .summary.remove'; }
expect_plan() {
    local name="$1" expected="$2" output size
    shift 2
    output="$("$OURS" -c "$CONFIG" --json "$@" 2>"$WORK/plan.err" || true)"
    size="$(printf '%s' "$output" | plan_size 2>/dev/null || echo "error")"
    if [ "$size" == "$expected" ]; then
        MATCHED+=("$name")
    else
        FAILURES=$((FAILURES + 1))
        log "MISMATCH: $name: expected $expected step(s), got $size"
        printf '%s\n' "$output" | jq -c '.plan[]? | [.action, .description]' 2>/dev/null | head -20 | sed 's/^/    /' >&2 || true
        sed 's/^/    /' "$WORK/plan.err" >&2
    fi
}
expect_plan "diff: the started configuration needs nothing" 0 diff -f "$CONFIG"
cp "$CONFIG" desired.toml
cat >> desired.toml <<EOF

[clusters.extra]
protocol = "http"
load_balancing = "ROUND_ROBIN"
frontends = [ { address = "127.0.0.1:$HTTP_PORT", hostname = "extra.example.com" } ]
backends = [ { address = "127.0.0.1:9201" } ]
EOF
expect_plan "diff: a new cluster is 3 additions" 3 diff -f desired.toml
expect_plan "apply --dry-run sends nothing" 3 apply --dry-run -f desired.toml
expect_plan "apply" 3 apply -f desired.toml
expect_plan "apply is idempotent" 0 apply -f desired.toml
compare "cluster list -i extra (after apply)" cluster list -i extra
expect_plan "apply --prune removes what the file lacks" "$(ours diff --prune -f "$CONFIG" | plan_size)" apply --prune -f "$CONFIG"
expect_plan "after --prune, nothing left" 0 diff --prune -f "$CONFIG"

log ""
log "matched (${#MATCHED[@]}):"
for name in "${MATCHED[@]}"; do log "  ok  $name"; done
if [ "$FAILURES" -gt 0 ]; then
    log "$FAILURES mismatch(es) with Sozu 2.3.3"
    exit 1
fi
log "all checks match Sozu 2.3.3"
