#!/usr/bin/env bash
# The hot cache keeps what some pool may still deliver, and lets go of the
# rest: a pool without workers holds every event it has not had in the
# cache; once it has caught up, the next publishes release them (the cache
# then holds about the pools' in-flight window, not its whole budget), and
# every event reached each pool once, payload intact.
source "$(dirname "$0")/lib.sh"

N=20000
MORE=5000
PAYLOAD=$(head -c 100 /dev/zero | tr '\0' 'c')
start_broker
spawn fast "$TBIN/hd_test_client" work --broker "$ROUTER" --pool fast --filter c. \
    --credit 100 --log "$WORK/fast.txt" --name fast
spawn slow "$TBIN/hd_test_client" work --broker "$ROUTER" --pool slow --filter c. \
    --credit 100 --log "$WORK/slow.txt" --name slow
slow_pid=$LAST_PID
both_joined() { workers_in fast 1 && workers_in slow 1; }
wait_for "both pools' workers" 10 both_joined
kill -TERM "$slow_pid"
wait_for "the slow pool's worker to leave" 10 workers_in slow 0

"$TBIN/hd_test_client" publish --broker "$ROUTER" --type c.x --count $N --id-prefix a- \
    --payload "$PAYLOAD" >"$WORK/pub.out" || fail "publish: $(cat "$WORK/pub.out")"
wait_for "$N acks in the fast pool" 60 stat_is '.pools[] | select(.name=="fast") | .acked' $N
held=$(stat .cache_events)
[ "$held" = $N ] || fail "the cache holds $held events, the slow pool still needs $N"

spawn slow2 "$TBIN/hd_test_client" work --broker "$ROUTER" --pool slow --filter c. \
    --credit 100 --log "$WORK/slow.txt" --name slow2
wait_for "$N acks in the slow pool" 60 stat_is '.pools[] | select(.name=="slow") | .acked' $N
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type c.y --count $MORE --id-prefix b- \
    --payload "$PAYLOAD" >"$WORK/pub.out" || fail "publish more: $(cat "$WORK/pub.out")"
total=$((N + MORE))
for pool in fast slow; do
    wait_for "$total acks in $pool" 60 stat_is ".pools[] | select(.name==\"$pool\") | .acked" $total
done
held=$(stat .cache_events)
bytes=$(stat .cache_bytes)
log "after both pools caught up: the cache holds $held events ($bytes bytes)"
[ "$held" -le $((MORE + 1000)) ] || fail "the cache still holds $held events both pools are done with"

sum=$(printf '%s' "$PAYLOAD" | cksum | cut -d' ' -f1)
for pool in fast slow; do
    file="$WORK/$pool.txt"
    [ "$(count_lines "$file")" = $total ] || fail "$pool handled $(count_lines "$file") of $total"
    [ "$(awk '{print $2}' "$file" | sort -u | wc -l)" = $total ] || fail "$pool handled an event twice"
    [ "$(awk -v c="$sum" '$7 == 100 && $8 == c' "$file" | wc -l)" = $total ] ||
        fail "$pool got damaged payloads"
done
log "ok"
