#!/usr/bin/env bash
# herald-worker's pool policy flags: the JOIN that creates a pool fixes its
# policy (ordered, max-deliver, start position); a later JOIN asking for
# another policy is refused; a command that keeps failing with exit 75 ends
# in the DLQ after --max-deliver attempts, with its error.
source "$(dirname "$0")/lib.sh"

start_broker --backoff-initial 20ms --backoff-max 50ms
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type w.x --count 5 --id-prefix old- >/dev/null
cat >"$WORK/retry.sh" <<'SCRIPT'
#!/usr/bin/env bash
cat >/dev/null
echo "still failing on $HERALD_ID" >&2
exit 75
SCRIPT
chmod +x "$WORK/retry.sh"
spawn hw "$BIN/herald-worker" --broker "$ROUTER" --pool pol --filter w. --ordered --max-deliver 2 \
    --from earliest -- "$WORK/retry.sh"
wait_for "worker" 10 workers_in pol 1
[ "$(pool_field pol ordered)" = true ] || fail "pool not ordered"
[ "$(pool_field pol max_deliver)" = 2 ] || fail "max_deliver $(pool_field pol max_deliver)"
# From earliest: the 5 events published before the pool existed reach it,
# fail twice each, and land in the DLQ
wait_for "5 events in the DLQ" 30 stat_is '.pools[] | select(.name=="pol") | .dlq' 5
[ "$(pool_field pol delivered)" = 10 ] || fail "delivered $(pool_field pol delivered), want 2 attempts x 5"

if "$BIN/herald-worker" --broker "$ROUTER" --pool pol --filter w. --max-deliver 3 -- true \
    >"$WORK/conflict.log" 2>&1; then
    fail "a JOIN with another max-deliver was accepted"
fi
grep -qi "max_deliver\|conflict" "$WORK/conflict.log" || fail "no clear error: $(cat "$WORK/conflict.log")"
log "ok"
