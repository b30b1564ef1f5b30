#!/usr/bin/env bash
# A pool of 4 workers shares 10,000 events: every event handled exactly
# once, none lost, none duplicated, and every worker takes a share.
source "$(dirname "$0")/lib.sh"

N=10000
start_broker
for i in 1 2 3 4; do
    spawn "w$i" "$TBIN/hd_test_client" work --broker "$ROUTER" --pool share --filter jobs. \
        --credit 20 --log "$WORK/handled.txt" --name "w$i"
done
wait_for "4 workers" 10 workers_in share 4

"$TBIN/hd_test_client" publish --broker "$ROUTER" --type jobs.run --count $N --id-prefix j- \
    >"$WORK/pub.out" || fail "publish: $(cat "$WORK/pub.out")"
grep -q "confirmed=$N duplicates=0 rejected=0" "$WORK/pub.out" || fail "$(cat "$WORK/pub.out")"

wait_for "$N acks" 60 stat_is '.pools[] | select(.name=="share") | .acked' $N
[ "$(count_lines "$WORK/handled.txt")" = $N ] || fail "handler ran $(count_lines "$WORK/handled.txt") times for $N events"
[ "$(awk '{print $2}' "$WORK/handled.txt" | sort -u | wc -l)" = $N ] || fail "some events handled twice or not at all"
[ "$(grep -vc '^ack ' "$WORK/handled.txt" || true)" = 0 ] || fail "unexpected non-ack verdicts"
for pid in $(awk '{print $5}' "$WORK/handled.txt" | sort -u); do
    share=$(awk -v p="$pid" '$5 == p' "$WORK/handled.txt" | wc -l)
    log "worker $pid handled $share"
    [ "$share" -gt $((N / 20)) ] || fail "worker $pid got only $share events"
done
[ "$(awk '{print $5}' "$WORK/handled.txt" | sort -u | wc -l)" = 4 ] || fail "not all 4 workers took part"
[ "$(pool_field share pending)" = 0 ] && [ "$(pool_field share inflight)" = 0 ] || fail "events left over"
[ "$(pool_field share redelivered)" = 0 ] || fail "redeliveries without failures"
[ "$(stat .log_next_seq)" = $((N + 1)) ] || fail "the log holds $(stat .log_next_seq) - 1 events"
# Library workers take DELIVERS batches: fewer messages than events
[ "$(stat .deliveries)" = $N ] || fail "broker counted $(stat .deliveries) deliveries"
batches=$(stat .delivery_batches)
log "$N events in $batches DELIVERS messages"
[ "$batches" -gt 0 ] && [ "$batches" -lt $N ] || fail "$batches DELIVERS batches for $N events"
log "ok"
