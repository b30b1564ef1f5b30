#!/usr/bin/env bash
# Key-ordered pool: with 4 workers and 50 keys, each key's effects happen in
# seq order and never two at once, even when a worker is killed mid-run;
# different keys still spread over all workers.
source "$(dirname "$0")/lib.sh"

N=2000
start_broker --ack-wait 3s --backoff-initial 50ms
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool ord --filter o. --ordered 1 >/dev/null ||
    fail "create the ordered pool"
[ "$(pool_field ord ordered)" = true ] || fail "pool is not ordered"
for i in 1 2 3 4; do
    spawn "w$i" "$TBIN/hd_test_client" work --broker "$ROUTER" --pool ord --filter o. --credit 5 \
        --sleep-ms 2 --log "$WORK/handled.txt"
    eval "W$i=$LAST_PID"
done
wait_for "4 workers" 10 workers_in ord 4

spawn pub "$TBIN/hd_test_client" publish --broker "$ROUTER" --type o.x --count $N --id-prefix o- \
    --keys 50 --timeout 120s
wait_for "some progress" 30 eval '[ "$(count_lines "$WORK/handled.txt")" -gt 300 ]'
kill -9 "$W2"
log "killed one worker"
spawn w5 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool ord --filter o. --credit 5 \
    --sleep-ms 2 --log "$WORK/handled.txt"
wait_for "all events acked" 120 stat_is '.pools[] | select(.name=="ord") | .acked' $N

# Per key, the seqs handled (in the order the handlers finished) never go back
awk '$6 != "-" { if (($6 in last) && $3 < last[$6]) { print "key " $6 ": seq " $3 " after " last[$6]; bad = 1 }
                 last[$6] = $3 } END { exit bad }' "$WORK/handled.txt" || fail "a key's events ran out of order"
[ "$(awk '{print $6}' "$WORK/handled.txt" | sort -u | wc -l)" = 50 ] || fail "not all 50 keys seen"
[ "$(awk '{print $5}' "$WORK/handled.txt" | sort -u | wc -l)" -ge 4 ] || fail "keys did not spread over the workers"
[ "$(awk '$1 == "ack" {print $2}' "$WORK/handled.txt" | sort -u | wc -l)" = $N ] || fail "events missing"
log "ok: $(awk '{print $5}' "$WORK/handled.txt" | sort | uniq -c | tr '\n' ' ')"
