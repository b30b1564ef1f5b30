#!/usr/bin/env bash
# NACK / retry-after: every retried event is delivered again and finally
# acked; TERM (handler failure) stops redelivery and is counted. A handler
# slower than ack-wait is not run twice on the same worker.
source "$(dirname "$0")/lib.sh"

# --max-deliver 0: NACKed events come back however often (the DLQ has its own test)
start_broker --backoff-initial 50ms --backoff-max 200ms --ack-wait 400ms --max-deliver 0
spawn w "$TBIN/hd_test_client" work --broker "$ROUTER" --pool r --filter r. --credit 5 \
    --nack-every 3 --fail-every 10 --log "$WORK/handled.txt"
wait_for "worker" 10 workers_in r 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type r.x --count 200 --id-prefix n- >/dev/null ||
    fail "publish"
settled() {
    local acked terminated
    acked=$(pool_field r acked) terminated=$(pool_field r terminated)
    [ $((acked + terminated)) = 200 ] && [ "$(pool_field r pending)" = 0 ]
}
wait_for "every event acked or terminated" 60 settled
retried=$(grep -c '^retry ' "$WORK/handled.txt")
failed=$(grep -c '^fail ' "$WORK/handled.txt")
[ "$retried" -gt 0 ] && [ "$(pool_field r nacked)" = "$retried" ] || fail "nacked=$(pool_field r nacked) retried=$retried"
[ "$(pool_field r terminated)" = "$failed" ] || fail "terminated=$(pool_field r terminated) failed=$failed"
# Every retried id came back with a higher attempt and ended acked or failed
for id in $(awk '$1 == "retry" {print $2}' "$WORK/handled.txt" | head -n 20); do
    grep -Eq "^(ack|fail) $id [0-9]+ [2-9]" "$WORK/handled.txt" || fail "$id not redelivered after NACK"
done
[ "$(awk '$1 == "ack" {print $2}' "$WORK/handled.txt" | sort | uniq -d | wc -l)" = 0 ] || fail "acked twice"

# A handler slower than ack-wait: the broker redelivers, the library does not run it twice
spawn slow "$TBIN/hd_test_client" work --broker "$ROUTER" --pool slow --filter s. --credit 2 \
    --sleep-ms 1000 --log "$WORK/slow.txt"
wait_for "slow worker" 10 workers_in slow 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type s.x --count 3 --id-prefix s- >/dev/null
wait_for "slow events acked" 30 stat_is '.pools[] | select(.name=="slow") | .acked' 3
[ "$(pool_field slow redelivered)" -ge 1 ] || fail "expected lease expiries with a 1 s handler and 400 ms ack-wait"
[ "$(awk '{print $2}' "$WORK/slow.txt" | sort | uniq -d | wc -l)" = 0 ] || fail "slow handler ran twice for one event"
log "ok: nacked=$(pool_field r nacked) terminated=$(pool_field r terminated) slow redelivered=$(pool_field slow redelivered)"
