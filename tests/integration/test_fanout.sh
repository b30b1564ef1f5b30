#!/usr/bin/env bash
# Fan-out: two live subscribers each get every event, in order, no gaps;
# a subscriber to another prefix gets none of them.
source "$(dirname "$0")/lib.sh"

N=2000
start_broker
spawn sub1 "$BIN/herald" sub orders. --xpub "$XPUB" --broker "$ROUTER" --count $N --timeout 60s --name s1
SUB1=$LAST_PID
spawn sub2 "$BIN/herald" sub "" --xpub "$XPUB" --broker "$ROUTER" --count $N --timeout 60s --json --name s2
SUB2=$LAST_PID
spawn other "$BIN/herald" sub payments. --xpub "$XPUB" --broker "$ROUTER" --timeout 60s
wait_for "3 subscriptions" 10 stat_is .subscriptions 3

"$BIN/herald" pub orders.placed hello --count $N --id f --broker "$ROUTER" >"$WORK/pub.out" ||
    fail "publish"
grep -q "confirmed=$N duplicates=0" "$WORK/pub.out" || fail "publisher: $(cat "$WORK/pub.out")"
wait "$SUB1" || fail "subscriber 1 did not get $N events"
wait "$SUB2" || fail "subscriber 2 did not get $N events"

[ "$(grep -c '^seq=' "$WORK/sub1.log")" = $N ] || fail "subscriber 1 lines"
[ "$(grep -c '"seq"' "$WORK/sub2.log")" = $N ] || fail "subscriber 2 lines"
# Every id once, seqs strictly increasing
[ "$(grep -o 'id=f-[0-9]*' "$WORK/sub1.log" | sort -u | wc -l)" = $N ] || fail "ids at subscriber 1"
grep -o '^seq=[0-9]*' "$WORK/sub1.log" | cut -d= -f2 | sort -n -c || fail "seqs out of order"
grep -q "received=$N gaps=0" "$WORK/sub1.log" || fail "subscriber 1 saw gaps"
grep -q "received=$N gaps=0" "$WORK/sub2.log" || fail "subscriber 2 saw gaps"
[ "$(grep -c '^seq=' "$WORK/other.log" || true)" = 0 ] || fail "payments. subscriber got orders events"
# A burst of one type goes out in FanoutBatch messages; the payload survives
grep -q 'hello' "$WORK/sub1.log" || fail "payload lost at subscriber 1"
[ "$(stat .fanout_sent)" = $N ] || fail "broker fanned out $(stat .fanout_sent) events"
batches=$(stat .fanout_batches)
[ "$batches" -gt 0 ] && [ "$batches" -lt $N ] || fail "$batches fan-out batches for $N events"
log "ok ($N events in $batches batches and single messages)"
