#!/usr/bin/env bash
# Compatibility of OUR daemon with Sozu 2.3.3's command line.
#
# Our daemon and a Sozu 2.3.3 daemon start on copies of the fixture
# configuration (each on its own free ports and socket). Sozu's command line
# then runs the same commands against both: `status`, `cluster add`,
# `frontend http add`, `backend add`, `listener list` (human output, and
# `--json` for the listings), `cluster list -i` and `frontend list` (the
# changes' effect) and `state save -f`. Against our daemon each must
# exit 0 and print exactly what it prints against Sozu's daemon, once worker
# pids, ports and temporary paths are replaced by placeholders and table
# padding is squeezed (a pid of another length widens a column).
#
# The state file our daemon wrote must then equal the one Sozu's daemon wrote
# (ports and record ids aside), and it must load into our daemon:
#   - into a fresh daemon started on the same configuration: every record
#     applies, a record identical to what the configuration created being a
#     no-op (older builds refused those as already existing, which is still
#     accepted here), and saving again gives back the same file byte for
#     byte: nothing lost, nothing changed, nothing extra;
#   - into a daemon started with no listener and no cluster: every record
#     applies (exit 0), and saving again gives back the same file.
#
# The reference is installed only when missing, into
# $HOME/.cache/sozu-reference/2.3.3 (several minutes); jq and protoc are
# installed with apt-get when missing. Exits non-zero on any mismatch,
# printing what differed; every daemon started here is stopped on exit.
#
# Environment: SOZU_OURS (our binary; default: built with cargo),
# SOZU_REFERENCE (Sozu's binary; default: the cache above), SOZU_FIXTURES.

set -euo pipefail

NAME=compat-daemon
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

WORK="$(mktemp -d /tmp/sozu-compat-daemon.XXXXXX)"
# Process groups of the daemons started here (each started with setsid),
# and the group of each folder's daemon.
GROUPS_STARTED=()
declare -A GROUP_OF
cleanup() {
    local group
    for group in "${GROUPS_STARTED[@]}"; do
        kill -0 -- "-$group" 2>/dev/null || continue
        kill -INT -- "-$group" 2>/dev/null || true
    done
    for group in "${GROUPS_STARTED[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 -- "-$group" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$group" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# free_port VAR: sets VAR to a port nobody listens on, never the same twice.
USED_PORTS=""
free_port() {
    local port
    while :; do
        port=$(( 20000 + RANDOM % 40000 ))
        case " $USED_PORTS " in *" $port "*) continue ;; esac
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            USED_PORTS="$USED_PORTS $port"
            printf -v "$1" '%s' "$port"
            return
        fi
    done
}

# prepare NAME HTTP HTTPS TCP: $WORK/NAME holding the fixture configuration on
# those ports, its certificate and key, and its socket.
prepare() {
    local dir="$WORK/$1"
    mkdir -p "$dir"
    cp "$FIXTURES/cert.pem" "$FIXTURES/key.pem" "$dir/"
    sed -e "s/28080/$2/g" -e "s/28443/$3/g" -e "s/28081/$4/g" \
        -e "s|^command_socket = .*|command_socket = \"$dir/sozu.sock\"|" \
        "$FIXTURES/config.toml" > "$dir/config.toml"
}

# start BINARY DIR: runs `BINARY start -c DIR/config.toml` in DIR and waits
# (at most 30 s) until Sozu's command line gets an answer on its socket.
start() {
    local binary="$1" dir="$2"
    (cd "$dir" && exec setsid "$binary" start -c "$dir/config.toml" > "$dir/daemon.log" 2>&1) &
    local pid=$!
    GROUPS_STARTED+=("$pid")
    GROUP_OF[$dir]="$pid"
    for _ in $(seq 1 300); do
        if [ -S "$dir/sozu.sock" ] && (cd "$dir" && "$REF" -c config.toml -t 2000 --json status >/dev/null 2>&1); then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { cat "$dir/daemon.log" >&2; die "the daemon in $dir exited"; }
        sleep 0.1
    done
    cat "$dir/daemon.log" >&2
    die "no answer on $dir/sozu.sock after 30 s"
}

# stop DIR: hard stop through our command line, then wait until every
# process of that daemon is gone (its listening sockets with them).
stop() {
    local dir="$1" group="${GROUP_OF[$1]}"
    "$OURS" -c "$dir/config.toml" shutdown --hard >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
        kill -0 -- "-$group" 2>/dev/null || return 0
        sleep 0.1
    done
    die "the daemon in $dir did not stop"
}

for name in OURS_HTTP OURS_HTTPS OURS_TCP THEIRS_HTTP THEIRS_HTTPS THEIRS_TCP; do
    free_port "$name"
done
prepare ours "$OURS_HTTP" "$OURS_HTTPS" "$OURS_TCP"
prepare theirs "$THEIRS_HTTP" "$THEIRS_HTTPS" "$THEIRS_TCP"
start "$OURS" "$WORK/ours"
start "$REF" "$WORK/theirs"

FAILURES=0
MATCHED=()
fail() { FAILURES=$((FAILURES + 1)); log "MISMATCH: $*"; }

# Placeholders for what legitimately differs between the two runs.
normal_text() {
    sed -e "s|$WORK/ours|DIR|g" -e "s|$WORK/theirs|DIR|g" \
        -e "s/\b$OURS_HTTP\b/HTTP_PORT/g" -e "s/\b$THEIRS_HTTP\b/HTTP_PORT/g" \
        -e "s/\b$OURS_HTTPS\b/HTTPS_PORT/g" -e "s/\b$THEIRS_HTTPS\b/HTTPS_PORT/g" \
        -e "s/\b$OURS_TCP\b/TCP_PORT/g" -e "s/\b$THEIRS_TCP\b/TCP_PORT/g"
}
# Human tables: worker pids (second column of the status table) replaced,
# then padding squeezed.
normal_human() {
    normal_text | sed -E -e 's/^(│ [0-9]+ +│ )[0-9]+/\1PID/' \
        -e 's/ +/ /g' -e 's/─+/─/g'
}
normal_json() {
    normal_text | jq -S 'if has("WORKERS") then .WORKERS.vec |= (map(.pid = 0) | sort_by(.id)) else . end' 2>/dev/null \
        || echo "NOT JSON"
}

# run_ref DIR ARGS…: Sozu's command line against the daemon of DIR, run in
# DIR (it loads the whole configuration, certificates included, relative to
# its working directory); prints its stdout then a line with its exit code.
run_ref() {
    local dir="$1"; shift
    local code=0 output
    output="$(cd "$dir" && "$REF" -c config.toml "$@" 2>"$WORK/ref.err")" || code=$?
    printf '%s\n' "$output"
    printf 'exit %s\n' "$code"
}

# check NAME KIND ARGS… (ARGS may use {HTTP} for the HTTP listener port and
# {DIR} for the daemon's folder): Sozu's command line, against both daemons.
check() {
    local name="$1" kind="$2"; shift 2
    local ours_args=() theirs_args=() argument
    for argument in "$@"; do
        argument="${argument//\{DIR\}/__DIR__}"
        ours_args+=("$(printf '%s' "${argument//\{HTTP\}/$OURS_HTTP}" | sed "s|__DIR__|$WORK/ours|g")")
        theirs_args+=("$(printf '%s' "${argument//\{HTTP\}/$THEIRS_HTTP}" | sed "s|__DIR__|$WORK/theirs|g")")
    done
    local ours_output theirs_output ours_code theirs_code
    ours_output="$(run_ref "$WORK/ours" "${ours_args[@]}")"
    cp "$WORK/ref.err" "$WORK/ours.err"
    theirs_output="$(run_ref "$WORK/theirs" "${theirs_args[@]}")"
    ours_code="$(printf '%s\n' "$ours_output" | tail -n 1)"
    theirs_code="$(printf '%s\n' "$theirs_output" | tail -n 1)"
    if [ "$ours_code" != "exit 0" ]; then
        fail "$name: Sozu's command line failed against our daemon ($ours_code)"
        sed 's/^/    /' "$WORK/ours.err" >&2
        return
    fi
    [ "$theirs_code" == "exit 0" ] || die "$name: Sozu's command line failed against Sozu's daemon ($theirs_code)"
    local a b
    if [ "$kind" == json ]; then
        a="$(printf '%s\n' "$ours_output" | sed '$d' | sed -n '/^[{[]/,$p' | normal_json)"
        b="$(printf '%s\n' "$theirs_output" | sed '$d' | sed -n '/^[{[]/,$p' | normal_json)"
    else
        a="$(printf '%s\n' "$ours_output" | normal_human)"
        b="$(printf '%s\n' "$theirs_output" | normal_human)"
    fi
    if [ "$a" == "$b" ]; then
        MATCHED+=("$name")
    else
        fail "$name: Sozu's command line prints something else against our daemon"
        diff <(printf '%s\n' "$a") <(printf '%s\n' "$b") | sed 's/^/    /' | head -60 >&2 || true
        log "    (< against ours, > against Sozu's)"
    fi
}

check "status" human status
check "status --json" json --json status
check "cluster add" human cluster add -i newapp --load-balancing-policy round_robin
check "frontend http add" human frontend http add -a "127.0.0.1:{HTTP}" --hostname new.example.com -p /x id newapp
check "backend add" human backend add -i newapp --backend-id nb1 -a 127.0.0.1:9101
check "listener list" human listener list
# What the changes did, seen by Sozu's command line.
check "cluster list -i newapp --json" json --json cluster list -i newapp
check "frontend list" human frontend list
check "listener list --json" json --json listener list
check "state save -f" human state save -f "{DIR}/saved.state"

# -- the state files: ours equals Sozu's for the same configuration and changes
SAVED="$WORK/ours/saved.state"
[ -s "$SAVED" ] || die "our daemon wrote no state file at $SAVED"
records() {
    # One record per line, ids dropped (Sozu numbers them; readers ignore them).
    tr -d '\000' < "$1" | grep -v '^$' | normal_text | sed -E 's/^\{"id":"[^"]*",/{/'
}
if diff <(records "$SAVED") <(records "$WORK/theirs/saved.state") > "$WORK/state.diff"; then
    MATCHED+=("state file equals Sozu's ($(records "$SAVED" | wc -l) records)")
else
    fail "the state file our daemon wrote differs from Sozu's"
    sed 's/^/    /' "$WORK/state.diff" | cut -c1-300 | head -20 >&2
    log "    (< ours, > Sozu's)"
fi
RECORDS="$(records "$SAVED" | wc -l)"

# -- the state file loads into a fresh daemon on the same configuration
stop "$WORK/ours"
rm -f "$WORK/ours/daemon.log"
start "$OURS" "$WORK/ours"
"$OURS" -c "$WORK/ours/config.toml" --json state save -f "$WORK/ours/before.state" >/dev/null \
    || die "could not save the fresh daemon's state"
# Records of the file the fresh daemon already holds, identically.
SHARED="$(comm -12 <(records "$SAVED" | sort) <(records "$WORK/ours/before.state" | sort) | wc -l)"
load_code=0
load_output="$("$OURS" -c "$WORK/ours/config.toml" --json -t 30000 state load -f "$SAVED")" || load_code=$?
load_message="$(printf '%s' "$load_output" | jq -r '.error.message // "ok"')"
if [ "$load_code" == 0 ]; then
    # Records equal to present objects were accepted again (as Sozu does for
    # clusters); the saved state below decides whether anything changed.
    MATCHED+=("state load on a fresh daemon: every record accepted")
elif [ "$load_code" == 1 ]; then
    # "A of T records from F applied; P problems: record N (byte B): REASON; …"
    total="$(printf '%s' "$load_message" | sed -nE 's/^([0-9]+) of ([0-9]+) records.*/\2/p')"
    problems="$(printf '%s' "$load_message" | sed -nE 's/^[^;]*; ([0-9]+) problems:.*/\1/p')"
    listed="$(printf '%s' "$load_message" | grep -oE 'record [0-9]+ \(byte [0-9]+\): [^;]*' || true)"
    others="$(printf '%s\n' "$listed" | grep -v '^$' | grep -vc 'already exist' || true)"
    if [ "$total" != "$RECORDS" ]; then
        fail "state load on a fresh daemon: the daemon read ${total:-?} records, the file has $RECORDS"
        log "    $load_message"
    elif [ -z "$problems" ] || [ "$problems" -gt "$SHARED" ]; then
        # Only records identical to what the configuration created may be refused.
        fail "state load on a fresh daemon: ${problems:-?} records refused, but only $SHARED of the file's records were already there"
        log "    $load_message"
    elif [ "$others" != 0 ]; then
        fail "state load on a fresh daemon: $others refusal(s) other than 'already exists'"
        log "    $load_message"
    else
        MATCHED+=("state load on a fresh daemon: $problems of $RECORDS records refused, each as already existing (the configuration holds $SHARED of them)")
    fi
else
    fail "state load on a fresh daemon: exit $load_code: $load_message"
fi
"$OURS" -c "$WORK/ours/config.toml" state save -f "$WORK/ours/after.state" >/dev/null \
    || die "could not save the state after the load"
if cmp -s "$SAVED" "$WORK/ours/after.state"; then
    MATCHED+=("state after the load is the file, byte for byte")
else
    fail "the state after loading differs from the file loaded"
    diff <(records "$SAVED") <(records "$WORK/ours/after.state") | cut -c1-300 | head -20 | sed 's/^/    /' >&2 || true
fi
stop "$WORK/ours"

# -- and into a daemon without listeners or clusters: every record applies
mkdir -p "$WORK/empty"
printf 'command_socket = "%s"\nworker_count = 2\nlog_level = "error"\n' "$WORK/empty/sozu.sock" > "$WORK/empty/config.toml"
start "$OURS" "$WORK/empty"
load_code=0
load_output="$("$OURS" -c "$WORK/empty/config.toml" --json -t 30000 state load -f "$SAVED")" || load_code=$?
if [ "$load_code" == 0 ]; then
    MATCHED+=("state load on an empty daemon: all $RECORDS records applied")
else
    fail "state load on an empty daemon: exit $load_code: $(printf '%s' "$load_output" | jq -r '.error.message // .')"
fi
"$OURS" -c "$WORK/empty/config.toml" state save -f "$WORK/empty/after.state" >/dev/null \
    || die "could not save the empty daemon's state"
if cmp -s "$SAVED" "$WORK/empty/after.state"; then
    MATCHED+=("state of the empty daemon after the load is the file, byte for byte")
else
    fail "the empty daemon's state after loading differs from the file loaded"
    diff <(records "$SAVED") <(records "$WORK/empty/after.state") | cut -c1-300 | head -20 | sed 's/^/    /' >&2 || true
fi
stop "$WORK/empty"

# -- our fleet agent driving a Sozu 2.3.3 daemon through its command socket
# (doc/fleet.md): a real etcd (Debian's etcd-server, installed when missing
# and root; skipped with a message otherwise), one push with an HTTPS
# listener and the fixture's certificate, a hand-made change reverted as
# drift, a second push.
ETCD_BIN="$(command -v etcd || true)"
if [ -z "$ETCD_BIN" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing etcd-server"
    apt-get update -qq >/dev/null && apt-get install -y -qq etcd-server >/dev/null || true
    ETCD_BIN="$(command -v etcd || true)"
fi
if [ -z "$ETCD_BIN" ]; then
    log "fleet: skipped, no etcd binary (package etcd-server)"
else
    free_port ETCD_CLIENT; free_port ETCD_PEER; free_port FLEET_HTTP; free_port FLEET_HTTPS
    mkdir -p "$WORK/etcd" "$WORK/fleet"
    (exec setsid "$ETCD_BIN" --name fleet --data-dir "$WORK/etcd/data" \
        --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT" --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
        --initial-cluster "fleet=http://127.0.0.1:$ETCD_PEER" > "$WORK/etcd/log" 2>&1) &
    GROUPS_STARTED+=("$!")
    FLEET=(--etcd "http://127.0.0.1:$ETCD_CLIENT" --prefix /sozu/compat)
    for _ in $(seq 1 300); do
        "$OURS" fleet history "${FLEET[@]}" >/dev/null 2>&1 && break
        sleep 0.1
    done
    "$OURS" fleet history "${FLEET[@]}" >/dev/null || { cat "$WORK/etcd/log" >&2; die "etcd did not start"; }
    printf 'command_socket = "%s"\nworker_count = 1\nlog_level = "error"\n' "$WORK/fleet/sozu.sock" > "$WORK/fleet/config.toml"
    start "$REF" "$WORK/fleet"
    cp "$FIXTURES/cert.pem" "$FIXTURES/key.pem" "$WORK/fleet/"
    fleet_config() {
        printf '[[listeners]]\nprotocol = "http"\naddress = "127.0.0.1:%s"\n\n' "$FLEET_HTTP"
        printf '[[listeners]]\nprotocol = "https"\naddress = "127.0.0.1:%s"\n\n' "$FLEET_HTTPS"
        local cluster tls=yes
        for cluster in "$@"; do
            printf '[clusters.%s]\nprotocol = "http"\nbackends = [{ address = "127.0.0.1:9" }]\n' "$cluster"
            printf 'frontends = [{ address = "127.0.0.1:%s", hostname = "%s.example.com" }' "$FLEET_HTTP" "$cluster"
            # The HTTPS frontend (and its certificate) on the first cluster only.
            [ "$tls" = yes ] && printf ',\n  { address = "127.0.0.1:%s", hostname = "lolcatho.st", certificate = "cert.pem", key = "key.pem" }' "$FLEET_HTTPS"
            printf ']\n\n'
            tls=no
        done
    }
    fleet_config app > "$WORK/fleet/v1.toml"
    "$OURS" fleet push "$WORK/fleet/v1.toml" "${FLEET[@]}" >/dev/null || die "fleet push failed"
    (exec setsid "$OURS" -t 30000 --socket "$WORK/fleet/sozu.sock" fleet agent --node sozu233 \
        --resync 500ms --heartbeat 500ms "${FLEET[@]}" > "$WORK/fleet/agent.log" 2>&1) &
    GROUPS_STARTED+=("$!")
    fleet_converged() {
        for _ in $(seq 1 300); do
            "$OURS" fleet status "${FLEET[@]}" >/dev/null 2>&1 && return 0
            sleep 0.1
        done
        return 1
    }
    # Converged, and `diff --prune` against Sozu's daemon finds nothing left
    # to send for the pushed file (its certificate included).
    fleet_matches() {
        [ "$("$OURS" --socket "$WORK/fleet/sozu.sock" -t 30000 --json diff -f "$1" --prune | jq '.plan | length')" = 0 ]
    }
    if fleet_converged && fleet_matches "$WORK/fleet/v1.toml"; then
        MATCHED+=("fleet: the agent brought Sozu 2.3.3's daemon to the pushed revision, certificate included")
    else
        fail "fleet: Sozu 2.3.3's daemon did not converge: $("$OURS" fleet status "${FLEET[@]}" 2>&1 | tail -3) $(tail -3 "$WORK/fleet/agent.log")"
    fi
    "$OURS" --socket "$WORK/fleet/sozu.sock" cluster add --id handmade --load-balancing-policy round_robin >/dev/null 2>&1 || true
    drift=no
    for _ in $(seq 1 100); do
        grep -q '"event":"drift"' "$WORK/fleet/agent.log" && { drift=yes; break; }
        sleep 0.1
    done
    if [ "$drift" = yes ] && fleet_matches "$WORK/fleet/v1.toml"; then
        MATCHED+=("fleet: a hand-made change on Sozu 2.3.3's daemon reverted and reported as drift")
    else
        fail "fleet: drift on Sozu 2.3.3's daemon not reverted: $(tail -3 "$WORK/fleet/agent.log")"
    fi
    fleet_config app other > "$WORK/fleet/v2.toml"
    "$OURS" fleet push "$WORK/fleet/v2.toml" "${FLEET[@]}" >/dev/null || die "fleet push failed"
    if fleet_converged && fleet_matches "$WORK/fleet/v2.toml"; then
        MATCHED+=("fleet: a second push applied to Sozu 2.3.3's daemon")
    else
        fail "fleet: the second push did not reach Sozu 2.3.3's daemon: $(tail -3 "$WORK/fleet/agent.log")"
    fi
fi

log ""
log "matched (${#MATCHED[@]}):"
for name in "${MATCHED[@]}"; do log "  ok  $name"; done
if [ "$FAILURES" -gt 0 ]; then
    log "$FAILURES mismatch(es): Sozu 2.3.3's command line against our daemon"
    exit 1
fi
log "Sozu 2.3.3's command line works against our daemon as against its own"
