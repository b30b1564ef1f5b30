# Shared helpers for Herald's process-level tests. Source it from a test.
# Every test gets its own directory with ipc:// endpoints, so tests never
# share ports and can run in parallel. Conditions are polled with deadlines;
# nothing waits a fixed time for something to happen.
set -euo pipefail

BIN=${HERALD_BIN:?HERALD_BIN must point at build/bin}
TBIN=${HERALD_TEST_BIN:?HERALD_TEST_BIN must point at build/tests}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald-test.XXXXXX")
ROUTER="ipc://$WORK/router"
XPUB="ipc://$WORK/xpub"
PIDS=()
TEST_NAME=$(basename "$0" .sh)

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }

fail() {
    printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2
    exit 1
}

cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    # a test may define on_cleanup (e.g. to unmount what it mounted)
    if declare -F on_cleanup >/dev/null; then on_cleanup || true; fi
    if [ $status -ne 0 ]; then
        for file in "$WORK"/*.log; do
            [ -f "$file" ] || continue
            echo "---- $(basename "$file") (last 30 lines)" >&2
            tail -n 30 "$file" >&2
        done
    fi
    rm -rf "$WORK"
    exit $status
}
trap cleanup EXIT

# Start a process in the background, logging to $WORK/NAME.log; sets LAST_PID.
spawn() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll COMMAND until it succeeds.
wait_for() {
    local what=$1 limit=$2
    shift 2
    local deadline=$((SECONDS + limit))
    until "$@"; do
        [ $SECONDS -lt $deadline ] || fail "timed out after ${limit}s waiting for $what"
        sleep 0.05
    done
}

stat_json() { "$BIN/herald" stat --json --broker "$ROUTER" --timeout 2s; }

# stat EXPR: a jq expression over `herald stat --json`.
stat() { stat_json | jq -r "$1"; }

# pool_field POOL FIELD
pool_field() { stat ".pools[] | select(.name == \"$1\") | .$2"; }

# stat_is EXPR VALUE: true when EXPR evaluates to VALUE.
stat_is() { [ "$(stat "$1" 2>/dev/null)" = "$2" ]; }

broker_answers() { stat_json >/dev/null 2>&1; }

# kill_broker: SIGKILL the broker and wait until it is gone (its data
# directory lock goes with it), so the next start_broker can take over.
kill_broker() {
    kill -9 "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
}

# start_broker [broker options...]; sets BROKER_PID. The log and state live in
# $WORK/data, so a restarted broker finds them again.
start_broker() {
    [ -f "$WORK/broker.log" ] && cat "$WORK/broker.log" >>"$WORK/broker-earlier.log"
    spawn broker "$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --data-dir "$WORK/data" "$@"
    BROKER_PID=$LAST_PID
    wait_for "broker to answer" 10 broker_answers
}

# workers_in POOL N: the pool has N workers.
workers_in() { stat_is ".pools[] | select(.name == \"$1\") | .workers" "$2"; }

# count_lines FILE: lines in FILE (0 if missing).
count_lines() { [ -f "$1" ] && wc -l <"$1" || echo 0; }

# handled_each_once POOL N: pool POOL acks N events, and its workers logged
# ($WORK/POOL.txt, the id second) each of them exactly once.
handled_each_once() {
    wait_for "$1 done" 60 stat_is ".pools[] | select(.name==\"$1\") | .acked" "$2"
    [ "$(awk '{print $2}' "$WORK/$1.txt" | sort -u | wc -l)" = "$2" ] || fail "$1 missed events"
    [ "$(count_lines "$WORK/$1.txt")" = "$2" ] || fail "$1 handled some twice"
}

alive() { kill -0 "$1" 2>/dev/null; }

# For the tests of the bench scripts that run raw ZeroMQ beside Herald: sets
# ROOT and PEERS_SRC, skips the test (77) where ../shared/bench-peers is
# absent, and fails without jq.
need_bench_peers() {
    ROOT=$(cd "$(dirname "$0")/../.." && pwd)
    PEERS_SRC=${PEERS_SRC:-$ROOT/../shared/bench-peers}
    if [ ! -d "$PEERS_SRC/src" ]; then
        log "skipped: no peer harness at $PEERS_SRC"
        exit 77
    fi
    command -v jq >/dev/null || fail "jq is missing"
}
