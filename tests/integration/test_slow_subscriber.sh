#!/usr/bin/env bash
# A slow (stopped) subscriber never stalls a pool or other subscribers: the
# pool finishes every event while it is frozen, the other subscriber keeps
# receiving, and the frozen one, once thawed, sees its loss as a gap in
# type_seq and reports it to the broker.
source "$(dirname "$0")/lib.sh"

N=20000
start_broker --sub-hwm 100
spawn w "$TBIN/hd_test_client" work --broker "$ROUTER" --pool p --filter "" --credit 100 --log "$WORK/handled.txt"
wait_for "worker" 10 workers_in p 1
spawn slow "$TBIN/hd_test_client" subscribe --xpub "$XPUB" --broker "$ROUTER" --name slow
SLOW=$LAST_PID
spawn live "$TBIN/hd_test_client" subscribe --xpub "$XPUB" --broker "$ROUTER" --name live
LIVE=$LAST_PID
wait_for "2 subscriptions" 10 stat_is .subscriptions 2
wait_for "2 reporting subscribers" 10 stat_is .subscribers 2
kill -STOP "$SLOW"

payload=$(head -c 2000 /dev/zero | tr '\0' 'p')
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type big.x --count $N --id-prefix b- \
    --payload "$payload" >/dev/null || fail "publishing stalled behind a frozen subscriber"
wait_for "pool to finish while the subscriber is frozen" 60 \
    stat_is '.pools[] | select(.name=="p") | .acked' $N
[ "$(count_lines "$WORK/handled.txt")" = $N ] || fail "pool handled $(count_lines "$WORK/handled.txt")"

kill -CONT "$SLOW"
wait_for "the slow subscriber to report its losses" 30 eval '[ "$(stat .subscriber_gaps)" -gt 0 ]'
kill -INT "$SLOW" "$LIVE"
wait "$SLOW" "$LIVE" || true
slow_received=$(grep -o 'received=[0-9]*' "$WORK/slow.log" | cut -d= -f2)
live_received=$(grep -o 'received=[0-9]*' "$WORK/live.log" | cut -d= -f2)
[ "$slow_received" -lt $N ] || fail "the frozen subscriber lost nothing: HWM not enforced"
[ "$live_received" -gt "$slow_received" ] || fail "the live subscriber was held back ($live_received)"
log "ok: frozen subscriber got $slow_received of $N, live one $live_received; gaps reported $(stat .subscriber_gaps)"
