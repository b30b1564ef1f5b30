#!/usr/bin/env bash
# Dispatch runs end to end: libherald workers say in their ACKs how long
# their handler takes an event (Settle.handle_ns), and the broker gives a
# worker a run of up to burst / handle_ns events in a row before the next
# one. Here each handler call sleeps 1 ms and the burst is 20 ms, so runs
# are at most 20 events long and, unless this machine stretches a 1 ms
# sleep past 6 ms, at least 3: the worker changes far less often than
# event by event (which it would, were handle_ns lost anywhere between the
# library and the pool), and never goes 20 events without changing while
# the other worker has credit (which it always has here). Every event is
# still handled once.
source "$(dirname "$0")/lib.sh"

WARM=10
N=300
# The burst is a bounded setting: out of range, the broker refuses to start
for bad in -1 60000001; do
    if timeout 10 "$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --data-dir "$WORK/data" \
        --dispatch-burst-us $bad >"$WORK/bad.log" 2>&1; then
        fail "--dispatch-burst-us $bad was accepted"
    fi
    grep -q -- "--dispatch-burst-us must be in" "$WORK/bad.log" || fail "no error: $(cat "$WORK/bad.log")"
done

start_broker --dispatch-burst-us 20000
for i in 1 2; do
    spawn "w$i" "$TBIN/hd_test_client" work --broker "$ROUTER" --pool runs --filter runs. \
        --credit 1000 --sleep-ms 1 --log "$WORK/runs.txt" --name "w$i"
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
# the worker changes from one event to the next, and the longest run
read -r switches longest < <(awk -v first=$((WARM + 1)) '$3 >= first {print $3, $5}' \
    "$WORK/runs.txt" | sort -n | awk '
        NR > 1 && $2 != last {n++; run = 0}
        {run++; if (run > longest) longest = run; last = $2}
        END {print n + 0, longest + 0}')
log "$N events: the worker changed $switches times, longest run $longest"
[ "$switches" -lt $((N / 3)) ] || fail "the worker changed $switches times in $N events: no runs"
[ "$longest" -le 20 ] || fail "a run of $longest events: over burst / handler time (20)"
[ "$(awk -v first=$((WARM + 1)) '$3 >= first {print $5}' "$WORK/runs.txt" | sort -u | wc -l)" = 2 ] ||
    fail "one worker took every event"
[ "$(pool_field runs inflight)" = 0 ] || fail "events left in flight"
# The broker counts its runs, and herald stat shows their mean length
runs=$(pool_field runs runs)
run_events=$(pool_field runs run_events)
log "stats: $run_events events in $runs runs"
[ "$run_events" = $((WARM + N)) ] || fail "run_events $run_events, not $((WARM + N))"
[ "$runs" -gt 1 ] && [ $((run_events / runs)) -ge 3 ] || fail "$runs runs for $run_events events"
"$BIN/herald" stat --broker "$ROUTER" >"$WORK/stat.txt" || fail "herald stat failed"
grep -q " RUN" "$WORK/stat.txt" || fail "no RUN column: $(cat "$WORK/stat.txt")"
log "ok"
