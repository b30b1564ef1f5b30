#!/usr/bin/env bash
# New pools start where they are told (earliest, a seq, a time, latest), and
# retention deletes only segments every pool has passed: a pool's backlog
# is kept until it is acked.
source "$(dirname "$0")/lib.sh"

start_broker --segment-size 16K --retention-bytes 40K
# A pool that exists before the events keeps them from retention meanwhile
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool guard --filter r. >/dev/null
payload=$(head -c 150 /dev/zero | tr '\0' 'r')
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type r.x --count 500 --id-prefix a- \
    --payload "$payload" >/dev/null || fail "publish"
marker_us=$(($(date +%s%N) / 1000))
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type r.x --count 100 --id-prefix b- \
    --payload "$payload" >/dev/null || fail "publish"

"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool early --filter r. --from earliest >/dev/null
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool fromseq --filter r. --from 101 >/dev/null
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool fromtime --filter r. --from "@$marker_us" >/dev/null
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool late --filter r. >/dev/null
[ "$(pool_field guard pending)" = 600 ] || fail "guard: pending $(pool_field guard pending)"
wait_for "pools counted" 10 stat_is '.pools[] | select(.name=="early") | .pending' 600
[ "$(pool_field fromseq pending)" = 500 ] || fail "from seq 101: pending $(pool_field fromseq pending)"
[ "$(pool_field fromtime pending)" = 100 ] || fail "from time: pending $(pool_field fromtime pending)"
[ "$(pool_field late pending)" = 0 ] || fail "latest: pending $(pool_field late pending)"

# ~100 KB in 16 KB segments with a 40 KB bound: the backlog keeps it all
[ "$(stat .log_first_seq)" = 1 ] || fail "retention deleted a backlog pools still need"

spawn w1 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool early --filter r. --log "$WORK/early.txt"
spawn w2 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool fromseq --filter r. --log "$WORK/fromseq.txt"
spawn w3 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool fromtime --filter r. --log "$WORK/fromtime.txt"
spawn w4 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool guard --filter r. --log "$WORK/guard.txt"
wait_for "early acked" 30 stat_is '.pools[] | select(.name=="early") | .acked' 600
wait_for "fromseq acked" 30 stat_is '.pools[] | select(.name=="fromseq") | .acked' 500
wait_for "fromtime acked" 30 stat_is '.pools[] | select(.name=="fromtime") | .acked' 100
wait_for "guard acked" 30 stat_is '.pools[] | select(.name=="guard") | .acked' 600
[ "$(awk '{print $3}' "$WORK/fromseq.txt" | sort -n | head -n 1)" = 101 ] || fail "fromseq started elsewhere"
[ "$(awk '{print $2}' "$WORK/fromtime.txt" | grep -c '^b-')" = 100 ] || fail "fromtime got older events"

# Everyone has passed everything: old segments go. Retention runs once a
# second and deletes what every pool had passed at that moment, so a first
# pass can run while the last ACKs are still on their way: wait for the end
# state, not for the first deletion.
wait_for "retention to delete passed segments" 20 eval '[ "$(stat .log_first_seq)" -gt 1 ]'
wait_for "retention to bring the log within its bound" 20 eval '[ "$(stat .log_bytes)" -le 65536 ]'
for pool in guard early fromseq fromtime late; do
    [ "$(pool_field $pool lost)" = 0 ] || fail "$pool lost events to soft retention"
done
log "ok: log now starts at seq $(stat .log_first_seq), $(stat .log_bytes) bytes"
