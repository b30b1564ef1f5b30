#!/usr/bin/env bash
# DELIVERS batches: library workers get small events several to a message
# and large ones (over --batch-payload-max) alone as DELIVER; every event
# is handled once with its payload intact (cksum), whichever way it came,
# and whether the hot cache copied it or, above 16 KiB, shares its frames.
source "$(dirname "$0")/lib.sh"

N=300
BIG=$(head -c 150 /dev/zero | tr '\0' 'b')
HUGE=$(head -c 20000 /dev/zero | tr '\0' 'h')
start_broker --batch-payload-max 100
for i in 1 2; do
    spawn "w$i" "$TBIN/hd_test_client" work --broker "$ROUTER" --pool mix --filter mix. \
        --credit 50 --log "$WORK/handled.txt" --name "w$i"
done
wait_for "2 workers" 10 workers_in mix 2

# Interleaved: each round a small and a big event
for round in 1 2 3; do
    "$TBIN/hd_test_client" publish --broker "$ROUTER" --type mix.small --count $((N / 3)) \
        --id-prefix "s$round-" --payload small >"$WORK/pub.out" || fail "publish: $(cat "$WORK/pub.out")"
    "$TBIN/hd_test_client" publish --broker "$ROUTER" --type mix.big --count $((N / 3)) \
        --id-prefix "b$round-" --payload "$BIG" >"$WORK/pub.out" || fail "publish: $(cat "$WORK/pub.out")"
    "$TBIN/hd_test_client" publish --broker "$ROUTER" --type mix.huge --count 10 \
        --id-prefix "h$round-" --payload "$HUGE" >"$WORK/pub.out" || fail "publish: $(cat "$WORK/pub.out")"
done
H=30 # huge events

wait_for "$((2 * N + H)) acks" 30 stat_is '.pools[] | select(.name=="mix") | .acked' $((2 * N + H))
[ "$(count_lines "$WORK/handled.txt")" = $((2 * N + H)) ] || fail "handler ran $(count_lines "$WORK/handled.txt") times"
[ "$(awk '{print $2}' "$WORK/handled.txt" | sort -u | wc -l)" = $((2 * N + H)) ] || fail "an event was handled twice"
sum() { printf '%s' "$1" | cksum | cut -d' ' -f1; }
[ "$(awk -v c="$(sum small)" '$2 ~ /^s/ && $7 == 5 && $8 == c' "$WORK/handled.txt" | wc -l)" = $N ] ||
    fail "small payloads damaged"
[ "$(awk -v c="$(sum "$BIG")" '$2 ~ /^b/ && $7 == 150 && $8 == c' "$WORK/handled.txt" | wc -l)" = $N ] ||
    fail "big payloads damaged"
[ "$(awk -v c="$(sum "$HUGE")" '$2 ~ /^h/ && $7 == 20000 && $8 == c' "$WORK/handled.txt" | wc -l)" = $H ] ||
    fail "huge payloads damaged"
[ "$(stat .deliveries)" = $((2 * N + H)) ] || fail "broker counted $(stat .deliveries) deliveries"
batches=$(stat .delivery_batches)
log "$N small events in $batches DELIVERS; $N big ones went as DELIVER"
[ "$batches" -gt 0 ] && [ "$batches" -lt $N ] || fail "$batches DELIVERS for $N small events"
log "ok"
