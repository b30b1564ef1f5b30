#!/usr/bin/env bash
# bench/raw_zmq.sh: each raw ZeroMQ run gets a broker on ports of its own.
# Two runs side by side both complete with every event, while a third raw
# broker holds bench-peers' default ports (5601/5602) for the whole time:
# runs that shared those ports (as tests under ctest -j did) failed, or
# sent their clients to another run's broker.
# Skipped where ../shared/bench-peers (the raw ZeroMQ clients) is absent.
source "$(dirname "$0")/lib.sh"
need_bench_peers

source "$ROOT/bench/raw_zmq.sh"
raw_zmq_build "$PEERS_SRC" >"$WORK/build.log" 2>&1 || fail "cannot build the raw clients: $(tail -n 3 "$WORK/build.log")"

# The occupant: a raw broker on the default ports, with its own control file
"$WORK/peers/benchctl" init "$WORK/occupant.ctl" fanout 1000 1 0 120 >/dev/null
spawn occupant env -u BENCH_FRONT -u BENCH_BACK "$WORK/peers/zmq_bench" broker-fanout "$WORK/occupant.ctl"
OCCUPANT=$LAST_PID
occupant_listens() { raw_zmq_listening 5601 "$OCCUPANT" && raw_zmq_listening 5602 "$OCCUPANT"; }
if ! kill -0 "$OCCUPANT" 2>/dev/null || ! (wait_for "the occupant's ports" 10 occupant_listens) 2>/dev/null; then
    # Something else already holds 5601/5602: that is the case under test too
    raw_zmq_port_open 5601 || fail "nothing listens on 5601: $(cat "$WORK/occupant.log")"
    OCCUPANT=
fi

# run_in NAME KIND EVENTS RECEIVERS: raw_zmq_run in a subshell whose WORK
# (raw_zmq.sh's scratch directory) is one of its own; its line in
# $WORK/NAME.out
run_in() {
    local name=$1 top=$WORK
    shift
    (
        WORK="$top/$name"
        mkdir -p "$WORK"
        ln -s "$top/peers" "$WORK/peers"
        raw_zmq_run "$@" >"$top/$name.out" 2>"$top/$name.err"
    )
}
run_in a fanout 20000 2 &
first=$!
run_in b queue 20000 4 &
second=$!
wait "$first" || fail "the fan-out run failed: $(cat "$WORK/a.err")"
wait "$second" || fail "the queue run failed: $(cat "$WORK/b.err")"

# check_line NAME: "rate cpu_us_per_event lost", nothing lost
check_line() {
    local rate cpu lost extra
    read -r rate cpu lost extra <"$WORK/$1.out" || fail "no line from run $1"
    [[ $rate =~ ^[0-9]+(\.[0-9]+)?$ && $cpu =~ ^[0-9]+\.[0-9]{3}$ && -z $extra ]] ||
        fail "run $1 printed: $(cat "$WORK/$1.out")"
    awk -v r="$rate" 'BEGIN { exit !(r > 0) }' || fail "run $1: rate $rate"
    [ "$lost" = 0 ] || fail "run $1 lost $lost events"
    log "run $1: $(cat "$WORK/$1.out")"
}
check_line a
check_line b
if [ -n "$OCCUPANT" ]; then
    kill -0 "$OCCUPANT" 2>/dev/null || fail "the broker on the default ports exited: $(cat "$WORK/occupant.log")"
    occupant_listens || fail "the broker on the default ports no longer listens"
fi
log "ok"
