#!/usr/bin/env bash
# Inline handlers (hd_worker_set_inline) and their documented price: a
# handler that holds the I/O thread longer than heartbeat x liveness gets
# its worker declared dead, and its lease moves to another worker; once the
# handler returns, the worker JOINs again by itself and works on. Nothing
# is lost on the way.
source "$(dirname "$0")/lib.sh"

start_broker --heartbeat 200ms --liveness 3 --ack-wait 120s
spawn blocker "$TBIN/hd_test_client" work --broker "$ROUTER" --pool inl --filter i. --credit 1 \
    --inline --block-first-ms 2500 --log "$WORK/blocker.txt"
BLOCKER=$LAST_PID
wait_for "the inline worker" 10 workers_in inl 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type i.x --count 1 --id-prefix first- >/dev/null
wait_for "the inline worker to hold the event" 10 eval '[ "$(pool_field inl inflight)" = 1 ]'

spawn helper "$TBIN/hd_test_client" work --broker "$ROUTER" --pool inl --filter i. --inline \
    --log "$WORK/helper.txt"
HELPER=$LAST_PID
wait_for "the blocked worker to be declared dead" 10 stat_is '.expired_sessions' 1
wait_for "its event handled by the other worker" 10 grep -q '^ack first-' "$WORK/helper.txt"
wait_for "the blocked handler to return" 10 grep -q '^ack first-' "$WORK/blocker.txt"
wait_for "the blocked worker to JOIN again" 15 workers_in inl 2

# The helper leaves: the inline worker alone takes what comes now
kill -TERM "$HELPER"
wait_for "the helper to leave" 10 workers_in inl 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type i.x --count 20 --id-prefix more- >/dev/null
wait_for "every event acked" 30 stat_is '.pools[] | select(.name=="inl") | .acked' 21
[ "$(grep -c '^ack more-' "$WORK/blocker.txt")" = 20 ] ||
    fail "the inline worker handled $(grep -c '^ack more-' "$WORK/blocker.txt") of 20 after its JOIN"
[ "$(pool_field inl dlq)" = 0 ] || fail "events went to the DLQ"
kill -TERM "$BLOCKER"
wait "$BLOCKER" || fail "the inline worker exited with $?"
joins=$(sed -n 's/.*joins=\([0-9]*\).*/\1/p' "$WORK/blocker.log")
[ "${joins:-0}" -ge 2 ] || fail "the inline worker joined ${joins:-0} time(s), expected 2 or more"
log "ok"
