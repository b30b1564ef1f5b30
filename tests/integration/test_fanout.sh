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
[ "$(grep -c '^seq=.* hello$' "$WORK/sub1.log")" = $N ] || fail "a payload changed at subscriber 1"

# Two publishers at once, each with its own payload: the broker hands the
# fan-out the payloads inside the publishers' batches, which must not be
# let go (or reused) before they are sent; every event keeps its own.
spawn sub3 "$BIN/herald" sub orders. --xpub "$XPUB" --broker "$ROUTER" --count $((2 * N)) --timeout 60s --name s3
SUB3=$LAST_PID
wait_for "sub3 and other subscribed" 10 stat_is .subscriptions 2 # sub1 and sub2 are done
"$BIN/herald" pub orders.paid payment-payload-of-another-size --count $N --id p --quiet \
    --broker "$ROUTER" >"$WORK/pub_paid.out" &
PAID=$!
"$BIN/herald" pub orders.shipped shipped --count $N --id s --quiet --broker "$ROUTER" \
    >"$WORK/pub_shipped.out" || fail "publish orders.shipped"
wait "$PAID" || fail "publish orders.paid"
wait "$SUB3" || fail "subscriber 3 did not get $((2 * N)) events"
[ "$(grep -c '^seq=.* id=p-[0-9]* type=orders.paid payment-payload-of-another-size$' "$WORK/sub3.log")" = $N ] ||
    fail "orders.paid events with another payload at subscriber 3"
[ "$(grep -c '^seq=.* id=s-[0-9]* type=orders.shipped shipped$' "$WORK/sub3.log")" = $N ] ||
    fail "orders.shipped events with another payload at subscriber 3"
# Batches whose types alternate: every event goes out on its own, its
# payload still inside the publisher's batch, which the broker lets go at
# the end of the turn
"$TBIN/hd_probe" mixed-batches --broker "$ROUTER" --xpub "$XPUB" --count 4000 >"$WORK/mixed.out" ||
    fail "alternating types: $(cat "$WORK/mixed.out")"
# The same with items repeated inside their batch, 1 to 5 items back:
# confirmed as duplicates, never fanned out
"$TBIN/hd_probe" mixed-batches --broker "$ROUTER" --xpub "$XPUB" --count 4000 --repeats 1 \
    >"$WORK/repeats.out" || fail "repeats inside a batch: $(cat "$WORK/repeats.out")"
log "ok ($N events in $batches batches and single messages; two publishers at once; $(cat "$WORK/mixed.out"); with repeats: $(cat "$WORK/repeats.out"))"
