#!/usr/bin/env bash
# A slow (frozen) subscriber never stalls a pool or other subscribers: the
# pool finishes every event while it is frozen and the live subscriber keeps
# receiving. The frozen one loses events at its HWM; once thawed, the next
# event shows it the jump in type_seq, it reports the gap to the broker, and
# its own accounting is exact: received + gaps = events of that type.
source "$(dirname "$0")/lib.sh"

N=20000
start_broker --sub-hwm 100
spawn w "$TBIN/hd_test_client" work --broker "$ROUTER" --pool p --filter "" --credit 100 --log "$WORK/handled.txt"
wait_for "worker" 10 workers_in p 1
# Both wait for events far longer than the test runs: a frozen subscriber
# whose wait ran out while it was stopped would give up the moment it is
# thawed, before its socket has handed it anything (both stop on SIGINT)
spawn slow "$TBIN/hd_test_client" subscribe --xpub "$XPUB" --broker "$ROUTER" --name slow \
    --timeout 600s
SLOW=$LAST_PID
spawn live "$TBIN/hd_test_client" subscribe --xpub "$XPUB" --broker "$ROUTER" --name live \
    --timeout 600s
LIVE=$LAST_PID
wait_for "2 subscriptions" 10 stat_is .subscriptions 2
wait_for "2 reporting subscribers" 10 stat_is .subscribers 2
kill -STOP "$SLOW"

# Phase 1: nothing stalls behind the frozen subscriber
payload=$(head -c 2000 /dev/zero | tr '\0' 'p')
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type big.x --count $N --id-prefix b- \
    --payload "$payload" >/dev/null || fail "publishing stalled behind a frozen subscriber"
wait_for "pool to finish while the subscriber is frozen" 60 \
    stat_is '.pools[] | select(.name=="p") | .acked' $N
[ "$(count_lines "$WORK/handled.txt")" = $N ] || fail "pool handled $(count_lines "$WORK/handled.txt")"
kill -INT "$LIVE"
wait "$LIVE" || true
live_received=$(grep -o 'received=[0-9]*' "$WORK/live.log" | cut -d= -f2)
# The live subscriber's session ends when its connection closes
wait_for "the live subscriber's session to end" 10 stat_is .subscribers 0
gaps_before=$(stat .subscriber_gaps)

# Phase 2: thawed, the frozen subscriber sees and reports its loss
kill -CONT "$SLOW"
extra=0
frozen_reported() { [ "$(stat .subscriber_gaps)" -gt "$gaps_before" ]; }
# Publish one more event per round until the report shows the gap; a round
# lasts at most 2 s (reports go out every second)
deadline=$((SECONDS + 60))
until frozen_reported; do
    [ $SECONDS -lt $deadline ] || fail "the thawed subscriber never reported a gap"
    "$BIN/herald" pub big.x tail --id "tail-$extra" --broker "$ROUTER" --quiet >/dev/null
    extra=$((extra + 1))
    round_end=$((SECONDS + 2))
    while [ $SECONDS -lt $round_end ] && ! frozen_reported; do sleep 0.1; done
done
kill -INT "$SLOW"
wait "$SLOW" || true
slow_received=$(grep -o 'received=[0-9]*' "$WORK/slow.log" | cut -d= -f2)
slow_gaps=$(grep -o 'gaps=[0-9]*' "$WORK/slow.log" | cut -d= -f2)
[ "$slow_gaps" -gt 0 ] || fail "the frozen subscriber saw no gap"
[ $((slow_received + slow_gaps)) = $((N + extra)) ] ||
    fail "frozen subscriber: received $slow_received + gaps $slow_gaps != $((N + extra)) published"
[ "$live_received" -gt "$slow_received" ] || fail "the live subscriber was held back ($live_received)"
log "ok: frozen subscriber got $slow_received, lost $slow_gaps (reported); live one got $live_received of $N"
