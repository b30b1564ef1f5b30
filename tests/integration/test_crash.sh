#!/usr/bin/env bash
# The crash test: a publisher confirms events while the broker is killed
# with SIGKILL three times and restarted. Afterwards every confirmed event
# was delivered to each of two pools and every handler effect happened once
# (the workers remember what they processed).
source "$(dirname "$0")/lib.sh"

N=100000
start_broker
for pool in billing audit; do
    spawn "w-$pool" "$TBIN/hd_test_client" work --broker "$ROUTER" --pool "$pool" --filter c. \
        --credit 50 --log "$WORK/$pool.txt"
    wait_for "$pool worker" 10 workers_in "$pool" 1
done
spawn pub "$TBIN/hd_test_client" publish --broker "$ROUTER" --type c.x --count $N --id-prefix c- \
    --window 200 --retry 500ms --timeout 150s
PUB=$LAST_PID

published() { stat .log_next_seq 2>/dev/null || echo 0; }
for round in 1 2 3; do
    target=$((round * N / 5))
    wait_for "the log to reach $target events" 60 eval '[ "$(published)" -gt '$target' ]'
    alive "$PUB" || fail "the publisher finished before crash $round: nothing tested"
    kill_broker
    log "crash $round at seq ~$target"
    start_broker
done
wait "$PUB" || fail "publisher: $(cat "$WORK/pub.log")"
grep -q "confirmed=$N " "$WORK/pub.log" || fail "$(cat "$WORK/pub.log")"

for pool in billing audit; do
    wait_for "$pool to ack all $N" 90 stat_is ".pools[] | select(.name==\"$pool\") | .acked" $N
    ids=$(awk '$1 == "ack" {print $2}' "$WORK/$pool.txt" | sort -u | wc -l)
    [ "$ids" = $N ] || fail "$pool processed $ids distinct events of $N"
    effects=$(awk '$1 == "ack"' "$WORK/$pool.txt" | wc -l)
    [ "$effects" = $N ] || fail "$pool: $effects effects for $N events (some twice)"
done
[ "$(stat .log_next_seq)" = $((N + 1)) ] || fail "log holds $(($(stat .log_next_seq) - 1)) events for $N confirmed"
log "ok: $(tail -n 1 "$WORK/pub.log"); redelivered billing=$(pool_field billing redelivered) audit=$(pool_field audit redelivered)"
