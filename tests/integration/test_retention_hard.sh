#!/usr/bin/env bash
# --retention-hard deletes segments even when a pool has not settled them;
# what each pool lost that way is counted per pool, and the pool goes on
# with what is left.
source "$(dirname "$0")/lib.sh"

start_broker --segment-size 16K --retention-bytes 40K --retention-hard
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool behind --filter h. >/dev/null
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool other --filter other. >/dev/null
payload=$(head -c 150 /dev/zero | tr '\0' 'h')
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type h.x --count 600 --id-prefix h- \
    --payload "$payload" >/dev/null || fail "publish"
wait_for "hard retention to delete unsettled segments" 20 eval '[ "$(stat .log_first_seq)" -gt 1 ]'
first=$(stat .log_first_seq)
lost=$(pool_field behind lost)
[ "$lost" -gt 0 ] || fail "pool 'behind' lost nothing though the log starts at $first"
[ "$(pool_field other lost)" = 0 ] || fail "a pool without matching events lost some"
pending=$(pool_field behind pending)
[ $((lost + pending)) = 600 ] || fail "lost $lost + pending $pending != 600 published"
spawn w "$TBIN/hd_test_client" work --broker "$ROUTER" --pool behind --filter h. --log "$WORK/h.txt"
wait_for "the rest acked" 30 stat_is '.pools[] | select(.name=="behind") | .acked' "$pending"
[ "$(sort -n -k3 "$WORK/h.txt" | head -n 1 | awk '{print $3}')" -ge "$first" ] || fail "a deleted event was delivered"
log "ok: log starts at $first, pool lost $lost and delivered the $pending left"
