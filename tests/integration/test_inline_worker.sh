#!/usr/bin/env bash
# Inline handlers (hd_worker_set_inline): a handler call that holds the I/O
# thread far longer than heartbeat x liveness does not get its worker
# declared dead. The guard thread heartbeats for it, so the worker keeps its
# session and its lease: the event is not redelivered to the other worker,
# and is acked once the call returns. The worker then takes new events as
# before. Nothing is lost on the way.
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
wait_for "the helper worker" 10 workers_in inl 2
# 2.5 s in one call: four times what the broker waits before it declares a
# silent worker dead (200 ms x 3)
wait_for "the blocked handler to return" 10 grep -q '^ack first-' "$WORK/blocker.txt"
wait_for "its ACK" 10 stat_is '.pools[] | select(.name=="inl") | .acked' 1
[ "$(stat .expired_sessions)" = 0 ] ||
    fail "the broker declared $(stat .expired_sessions) session(s) dead during a long call"
! grep -q '^ack first-' "$WORK/helper.txt" || fail "the event was redelivered to the other worker"
[ "$(pool_field inl redelivered)" = 0 ] || fail "the event was redelivered"
[ "$(stat .expired_sessions)" = 0 ] || fail "a session expired after the call"

# The helper leaves: the inline worker alone takes what comes now
kill -TERM "$HELPER"
wait_for "the helper to leave" 10 workers_in inl 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type i.x --count 20 --id-prefix more- >/dev/null
wait_for "every event acked" 30 stat_is '.pools[] | select(.name=="inl") | .acked' 21
[ "$(grep -c '^ack more-' "$WORK/blocker.txt")" = 20 ] ||
    fail "the inline worker handled $(grep -c '^ack more-' "$WORK/blocker.txt") of 20"
[ "$(pool_field inl dlq)" = 0 ] || fail "events went to the DLQ"
kill -TERM "$BLOCKER"
wait "$BLOCKER" || fail "the inline worker exited with $?"
joins=$(sed -n 's/.*joins=\([0-9]*\).*/\1/p' "$WORK/blocker.log")
[ "${joins:-0}" = 1 ] || fail "the inline worker joined ${joins:-0} times, expected once"
log "ok"
