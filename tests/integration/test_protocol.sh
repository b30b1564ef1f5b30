#!/usr/bin/env bash
# Every documented error answer, stale tags, NACK delay, PROGRESS, lease
# expiry and TERM, checked frame by frame with the raw-protocol probe.
source "$(dirname "$0")/lib.sh"

start_broker --ack-wait 400ms --backoff-initial 100ms
"$TBIN/hd_probe" errors --broker "$ROUTER" || fail "error answers"
"$TBIN/hd_probe" leases --broker "$ROUTER" --pool probe || fail "lease handling"
[ "$(pool_field probe redelivered)" -ge 2 ] || fail "redeliveries not counted"
[ "$(pool_field probe terminated)" = 1 ] || fail "TERM not counted"
[ "$(pool_field probe stale)" -ge 3 ] || fail "stale tags not counted"
[ "$(stat .malformed)" -ge 4 ] || fail "malformed input not counted"
alive "$BROKER_PID" || fail "broker died"
log "ok"
