#!/usr/bin/env bash
# A flood of garbage frames and oversized messages leaves the broker
# serving normal clients: events published before, during and after the
# flood all reach the pool's worker.
source "$(dirname "$0")/lib.sh"

start_broker --max-payload 64K
spawn worker "$TBIN/hd_test_client" work --broker "$ROUTER" --pool g --filter g. \
    --log "$WORK/processed.txt"
wait_for "worker to join" 10 workers_in g 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type g.before --count 200 \
    --id-prefix before >/dev/null || fail "publish before the flood"

spawn flood1 "$TBIN/hd_probe" garbage --broker "$ROUTER" --count 30000
FLOOD1=$LAST_PID
spawn flood2 "$TBIN/hd_probe" errors --broker "$ROUTER"
FLOOD2=$LAST_PID
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type g.during --count 200 \
    --id-prefix during >/dev/null || fail "publish during the flood"
wait "$FLOOD1" || fail "garbage probe: broker stopped answering"
wait "$FLOOD2" || fail "error probe failed during the flood"

# Oversized payloads through the real CLI are refused with a clear error
head -c 100000 /dev/zero | tr '\0' 'x' >"$WORK/big.txt"
if "$BIN/herald" pub g.big - --broker "$ROUTER" --timeout 5s <"$WORK/big.txt" >"$WORK/big.log" 2>&1; then
    fail "a 100 kB payload was accepted with --max-payload 64K"
fi

"$TBIN/hd_test_client" publish --broker "$ROUTER" --type g.after --count 200 \
    --id-prefix after >/dev/null || fail "publish after the flood"
processed_all() { [ "$(sort -u "$WORK/processed.txt" | wc -l)" -ge 600 ]; }
wait_for "all 600 events processed" 30 processed_all
alive "$BROKER_PID" || fail "broker died"
[ "$(stat .malformed)" -gt 1000 ] || fail "garbage was not counted"
log "ok: malformed=$(stat .malformed) rejected=$(stat .rejected)"
