#!/usr/bin/env bash
# The publisher keeps unconfirmed events and resends them with the same id:
# events published while no broker runs are confirmed once it starts, and a
# broker restart in the middle of a run loses no confirm.
source "$(dirname "$0")/lib.sh"

spawn pub "$TBIN/hd_test_client" publish --broker "$ROUTER" --type r.x --count 500 \
    --id-prefix early- --retry 300ms --timeout 60s
PUB=$LAST_PID
wait_for "the publisher to start" 10 test -s "$WORK/pub.log" -o -d "/proc/$PUB"
start_broker
wait "$PUB" || fail "publisher did not finish: $(cat "$WORK/pub.log")"
grep -q "confirmed=500" "$WORK/pub.log" || fail "$(cat "$WORK/pub.log")"
[ "$(stat .published)" = 500 ] || fail "broker published $(stat .published)"

# Restart the broker under a running publisher with a small window
spawn pub2 "$TBIN/hd_test_client" publish --broker "$ROUTER" --type r.y --count 200000 \
    --id-prefix late- --retry 300ms --window 50 --timeout 90s
PUB2=$LAST_PID
wait_for "some confirms" 30 eval '[ "$(stat .published 2>/dev/null || echo 0)" -gt 1000 ]'
alive "$PUB2" || fail "the publisher finished before the broker was killed: test proves nothing"
kill_broker
start_broker
wait "$PUB2" || fail "publisher did not survive the restart: $(cat "$WORK/pub2.log")"
grep -q "confirmed=200000" "$WORK/pub2.log" || fail "$(cat "$WORK/pub2.log")"
log "ok: $(cat "$WORK/pub2.log" | tail -n 1)"
