#!/usr/bin/env bash
# Two pools on overlapping filters each get every matching event once; a
# pool on another prefix gets none.
source "$(dirname "$0")/lib.sh"

N=3000
start_broker
spawn a1 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool billing --filter orders. --log "$WORK/billing.txt"
spawn a2 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool billing --filter orders. --log "$WORK/billing.txt"
spawn b1 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool audit --filter "" --log "$WORK/audit.txt"
spawn c1 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool refunds --filter refunds. --log "$WORK/refunds.txt"
wait_for "pools" 10 workers_in billing 2
wait_for "pools" 10 workers_in audit 1
wait_for "pools" 10 workers_in refunds 1

"$TBIN/hd_test_client" publish --broker "$ROUTER" --type orders.placed --count $N --id-prefix o- >/dev/null ||
    fail "publish"
for pool in billing audit; do
    handled_each_once $pool $N
done
[ "$(count_lines "$WORK/refunds.txt")" = 0 ] || fail "refunds pool got orders"
[ "$(pool_field refunds delivered)" = 0 ] || fail "refunds pool delivered"
log "ok"
