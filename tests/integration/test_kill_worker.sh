#!/usr/bin/env bash
# kill -9 of a worker holding leases: all its events are completed by the
# others. Only events whose handler had already run on the killed worker
# may run twice. Heartbeats and ack-wait are set far beyond the test's
# deadline, so passing proves the broker saw the disconnect at once.
source "$(dirname "$0")/lib.sh"

N=600
start_broker --heartbeat 10s --liveness 6 --ack-wait 120s
for i in 1 2 3; do
    spawn "w$i" "$TBIN/hd_test_client" work --broker "$ROUTER" --pool pay --filter pay. \
        --credit 10 --sleep-ms 5 --log "$WORK/handled.txt"
    eval "W$i=$LAST_PID"
done
wait_for "3 workers" 10 workers_in pay 3

spawn pub "$TBIN/hd_test_client" publish --broker "$ROUTER" --type pay.charge --count $N --id-prefix p-
PUB=$LAST_PID
victim_busy() { [ "$(awk -v p="$W3" '$5 == p' "$WORK/handled.txt" 2>/dev/null | wc -l)" -ge 30 ]; }
wait_for "victim to handle 30 events" 30 victim_busy
held=$(pool_field pay inflight)
kill -9 "$W3"
log "killed worker $W3 while the pool had $held events in flight"
wait "$PUB" || fail "publisher"

wait_for "all events acked by the survivors" 30 stat_is '.pools[] | select(.name=="pay") | .acked' $N
[ "$(pool_field pay workers)" = 2 ] || fail "dead worker still counted"
[ "$(awk '$1 == "ack" {print $2}' "$WORK/handled.txt" | sort -u | wc -l)" = $N ] || fail "events missing"
# Any event handled twice must have been handled by the victim
for id in $(awk '{print $2}' "$WORK/handled.txt" | sort | uniq -d); do
    awk -v id="$id" -v p="$W3" '$2 == id && $5 == p {found = 1} END {exit !found}' \
        "$WORK/handled.txt" || fail "$id handled twice, not by the killed worker"
done
[ "$(pool_field pay redelivered)" -ge 1 ] || fail "no redelivery recorded"
log "ok: redelivered=$(pool_field pay redelivered) twice=$(awk '{print $2}' "$WORK/handled.txt" | sort | uniq -d | wc -l)"
