#!/usr/bin/env bash
# An event published from inside a handler inherits the handled event's
# correlation id and takes its id as causation id (herald pub run by
# herald-worker reads them from HERALD_ID / HERALD_CORRELATION_ID).
source "$(dirname "$0")/lib.sh"

start_broker
export HERALD_BROKER=$ROUTER # the handler's herald pub finds the broker through it
cat >"$WORK/handler.sh" <<'SCRIPT'
#!/usr/bin/env bash
cat >/dev/null
"$1/herald" pub orders.charged "charged $HERALD_ID" --id "charge-of-$HERALD_ID" --quiet >/dev/null
SCRIPT
chmod +x "$WORK/handler.sh"
spawn hw "$BIN/herald-worker" --broker "$ROUTER" --pool payments --filter orders.placed \
    -- "$WORK/handler.sh" "$BIN"
wait_for "worker" 10 workers_in payments 1
spawn feed "$BIN/herald" sub orders.charged --xpub "$XPUB" --json --count 2 --timeout 30s
FEED=$LAST_PID
wait_for "subscriber" 10 stat_is .subscriptions 1

"$BIN/herald" pub orders.placed one --id order-1 --quiet >/dev/null
"$BIN/herald" pub orders.placed two --id order-2 --correlation-id checkout-7 --quiet >/dev/null
wait "$FEED" || fail "follow-up events did not arrive"
line1=$(grep '"charge-of-order-1"' "$WORK/feed.log")
line2=$(grep '"charge-of-order-2"' "$WORK/feed.log")
[ "$(echo "$line1" | jq -r .causation_id)" = order-1 ] || fail "causation: $line1"
[ "$(echo "$line1" | jq -r .correlation_id)" = order-1 ] || fail "correlation from parent id: $line1"
[ "$(echo "$line2" | jq -r .causation_id)" = order-2 ] || fail "causation: $line2"
[ "$(echo "$line2" | jq -r .correlation_id)" = checkout-7 ] || fail "inherited correlation: $line2"
log "ok"
