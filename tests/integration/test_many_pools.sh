#!/usr/bin/env bash
# Past the first 64 pools, a pending publish's pools are found by comparing
# its type again (the first 64 are a bitmask noted once): pools at both
# sides of that line get every matching event once, and the others none.
source "$(dirname "$0")/lib.sh"

N=500
start_broker
for index in $(seq 0 69); do
    "$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool "p$index" --filter "t$index." >/dev/null ||
        fail "create pool p$index"
done
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool all --filter "" >/dev/null || fail "create pool all"
wait_for "71 pools" 10 stat_is '.pools | length' 71
spawn w3 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool p3 --filter t3. --log "$WORK/p3.txt"
spawn w67 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool p67 --filter t67. --log "$WORK/p67.txt"
wait_for "workers" 10 workers_in p3 1
wait_for "workers" 10 workers_in p67 1

"$TBIN/hd_test_client" publish --broker "$ROUTER" --type t3.x --count $N --id-prefix a- >/dev/null ||
    fail "publish t3"
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type t67.x --count $N --id-prefix b- >/dev/null ||
    fail "publish t67"
for pool in p3 p67; do
    handled_each_once $pool $N
done
[ "$(pool_field all pending)" = $((2 * N)) ] || fail "pool all holds $(pool_field all pending), not $((2 * N))"
for pool in p0 p4 p63 p64 p66 p68 p69; do
    [ "$(pool_field $pool pending)" = 0 ] || fail "$pool took events of other types"
done
log "ok"
