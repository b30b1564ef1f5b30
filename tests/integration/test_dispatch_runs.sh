#!/usr/bin/env bash
# Dispatch runs end to end: libherald workers say in their ACKs how long
# their handler takes an event (Settle.handle_ns), and the broker gives a
# worker with fast handlers a run of events in a row instead of one each.
# With a burst far above the handlers' time a run takes what the dispatch
# pass has (credit is ample), so consecutive events go to the same worker
# and the worker changes about once a pass; were handle_ns lost anywhere
# between the library and the pool, the two workers would alternate event
# by event. Every event is still handled once.
source "$(dirname "$0")/lib.sh"

WARM=20
N=400
# The burst is a bounded setting: out of range, the broker refuses to start
for bad in -1 60000001; do
    if "$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --data-dir "$WORK/data" \
        --dispatch-burst-us $bad >"$WORK/bad.log" 2>&1; then
        fail "--dispatch-burst-us $bad was accepted"
    fi
    grep -q -- "--dispatch-burst-us must be in" "$WORK/bad.log" || fail "no error: $(cat "$WORK/bad.log")"
done

start_broker --dispatch-burst-us 1000000
for i in 1 2; do
    spawn "w$i" "$TBIN/hd_test_client" work --broker "$ROUTER" --pool runs --filter runs. \
        --credit 1000 --log "$WORK/runs.txt" --name "w$i"
done
wait_for "2 workers" 10 workers_in runs 2

# Until a worker's first ACK the broker knows nothing of its handler
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type runs.warm --count $WARM --id-prefix warm- \
    >"$WORK/pub1.out" || fail "publish: $(cat "$WORK/pub1.out")"
handled_each_once runs $WARM

"$TBIN/hd_test_client" publish --broker "$ROUTER" --type runs.x --count $N --id-prefix x- \
    >"$WORK/pub2.out" || fail "publish: $(cat "$WORK/pub2.out")"
grep -q "confirmed=$N duplicates=0 rejected=0" "$WORK/pub2.out" || fail "$(cat "$WORK/pub2.out")"
handled_each_once runs $((WARM + N))
[ "$(grep -vc '^ack ' "$WORK/runs.txt" || true)" = 0 ] || fail "unexpected non-ack verdicts"

# seq (field 3) → pid (field 5) of the second batch, in seq order: how often
# the worker changes from one event to the next
switches=$(awk -v first=$((WARM + 1)) '$3 >= first {print $3, $5}' "$WORK/runs.txt" | sort -n |
    awk 'NR > 1 && $2 != last {n++} {last = $2} END {print n + 0}')
passes=$(stat .commits)
log "$N events: the worker changed $switches times ($passes commits in all)"
[ "$switches" -lt $((N / 4)) ] || fail "the worker changed $switches times in $N events: no runs"
[ "$(pool_field runs inflight)" = 0 ] || fail "events left in flight"
log "ok"
