#!/usr/bin/env bash
# Disk quota: once the log reaches --max-disk, PUBLISH gets REJECT(STORAGE);
# nothing confirmed is harmed, and the broker keeps serving reads and acks.
source "$(dirname "$0")/lib.sh"

start_broker --max-disk 300K --segment-size 64K
spawn w "$TBIN/hd_test_client" work --broker "$ROUTER" --pool q --filter q. --log "$WORK/handled.txt"
wait_for "worker" 10 workers_in q 1
payload=$(head -c 1000 /dev/zero | tr '\0' 'q')
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type q.x --count 1000 --id-prefix q- \
    --payload "$payload" >"$WORK/pub.out" || true
confirmed=$(grep -o 'confirmed=[0-9]*' "$WORK/pub.out" | cut -d= -f2)
rejected=$(grep -o 'rejected=[0-9]*' "$WORK/pub.out" | cut -d= -f2)
[ "$rejected" -gt 0 ] && [ "$confirmed" -gt 0 ] || fail "$(cat "$WORK/pub.out")"
[ "$(stat .storage_rejects)" -ge "$rejected" ] || fail "storage rejects not counted"
[ "$(stat .log_bytes)" -le 307200 ] || fail "log grew past the quota: $(stat .log_bytes)"
# Everything confirmed is delivered and acked; the broker still answers
wait_for "confirmed events acked" 30 stat_is '.pools[] | select(.name=="q") | .acked' "$confirmed"
"$BIN/herald" pub q.more "$payload" --broker "$ROUTER" --timeout 3s >"$WORK/small.out" 2>&1 &&
    fail "a publish over quota was confirmed"
grep -qi "storage\|quota" "$WORK/small.out" || fail "no clear error: $(cat "$WORK/small.out")"
alive "$BROKER_PID" || fail "broker died"
log "ok: confirmed=$confirmed rejected=$rejected log_bytes=$(stat .log_bytes)"
