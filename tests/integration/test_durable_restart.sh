#!/usr/bin/env bash
# A broker killed with SIGKILL comes back with everything: the pool and its
# progress (acked events are not delivered again), un-acked events (delivered
# again, attempt counts kept), the dedup window (a retry gets duplicate=true
# with the original seq), and seqs that go on where they were.
source "$(dirname "$0")/lib.sh"

start_broker --ack-wait 60s
spawn w "$TBIN/hd_test_client" work --broker "$ROUTER" --pool p --filter d. --log "$WORK/handled.txt"
wait_for "worker" 10 workers_in p 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type d.x --count 1000 --id-prefix a- \
    >"$WORK/pub1.out" || fail "publish"
wait_for "1000 acks" 30 stat_is '.pools[] | select(.name=="p") | .acked' 1000

# A pool whose worker fails everything: 5 events in its DLQ before the crash
spawn bad "$TBIN/hd_test_client" work --broker "$ROUTER" --pool bad --filter z. --fail-every 1 \
    --log "$WORK/bad.txt"
wait_for "bad worker" 10 workers_in bad 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type z.x --count 5 --id-prefix z- >/dev/null
wait_for "5 dead letters" 10 stat_is '.pools[] | select(.name=="bad") | .dlq' 5
"$BIN/herald" dlq ls bad --json --broker "$ROUTER" >"$WORK/dlq-before.json"

# A second pool whose worker holds 3 events un-acked when the broker dies
spawn hold "$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool held --filter d.
wait_for "pool held" 10 stat_is '.pools[] | select(.name=="held") | .workers' 0
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type d.y --count 20 --id-prefix h- >/dev/null
spawn holder "$TBIN/hd_test_client" work --broker "$ROUTER" --pool held --filter d. --sleep-ms 60000 \
    --credit 3 --log "$WORK/holder.txt"
HOLDER=$LAST_PID
wait_for "3 events in flight in pool held" 10 stat_is '.pools[] | select(.name=="held") | .inflight' 3

kill -9 "$HOLDER"
kill_broker
start_broker --ack-wait 60s
grep -q "recovered 3 pools" "$WORK/broker.log" || fail "pools not recovered: $(grep recovered "$WORK/broker.log")"
wait_for "the worker to re-register" 20 workers_in p 1
# p's filter d. took the 1000 d.x and the 20 d.y events
[ "$(pool_field p acked)" = 1020 ] || fail "acked count not restored: $(pool_field p acked)"
[ "$(stat .log_next_seq)" = 1026 ] || fail "log_next_seq $(stat .log_next_seq)"
# The DLQ came back whole: same entries, reasons, attempts and errors
"$BIN/herald" dlq ls bad --json --broker "$ROUTER" >"$WORK/dlq-after.json"
[ "$(jq length "$WORK/dlq-after.json")" = 5 ] || fail "DLQ after restart: $(cat "$WORK/dlq-after.json")"
diff <(jq -S . "$WORK/dlq-before.json") <(jq -S . "$WORK/dlq-after.json") >/dev/null ||
    fail "DLQ changed across the restart"
jq -e 'all(.[]; .error == "failed by --fail-every" and .reason == "terminated")' \
    "$WORK/dlq-after.json" >/dev/null || fail "DLQ entries lost their reason or error"

# Dedup survived: the same ids are duplicates with their original seqs
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type d.x --count 1000 --id-prefix a- \
    >"$WORK/pub2.out" || fail "republish"
grep -q "duplicates=1000" "$WORK/pub2.out" || fail "dedup lost: $(cat "$WORK/pub2.out")"
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type d.x --count 100 --id-prefix b- >/dev/null
wait_for "new events acked" 30 stat_is '.pools[] | select(.name=="p") | .acked' 1120
[ "$(awk '$2 ~ /^a-/' "$WORK/handled.txt" | wc -l)" = 1000 ] || fail "acked events were redelivered"

# The held pool's un-acked events come back with their attempt counts kept
spawn finisher "$TBIN/hd_test_client" work --broker "$ROUTER" --pool held --filter d. --log "$WORK/finisher.txt"
# It got the 20 d.y events and the 100 new ones (not the duplicates)
wait_for "held pool done" 30 stat_is '.pools[] | select(.name=="held") | .acked' 120
second=$(awk '$4 == 2' "$WORK/finisher.txt" | wc -l)
[ "$second" -ge 3 ] || fail "events in flight at the crash were not redelivered as attempt 2 ($second)"
log "ok: $(grep -o 'recovered .*' "$WORK/broker.log" | tail -n 1)"
