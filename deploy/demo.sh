#!/usr/bin/env bash
# make demo: a broker, a `payments` pool of 3 workers and an `email` pool of
# 2, a live subscriber, a publisher with deliberate duplicates, and one
# payment worker killed with SIGKILL in the middle. Prints what happened.
set -euo pipefail
BIN=${1:-build/bin}
BIN=$(cd "$BIN" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
HANDLER="$HERE/demo-handler.sh"
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/herald-demo.XXXXXX")
export HERALD_BROKER="ipc://$DEMO/router" HERALD_XPUB="ipc://$DEMO/xpub"
LEDGER="$DEMO/ledger.txt"
EVENTS=300
DUPLICATES=60
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$DEMO"
}
trap cleanup EXIT
say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
# Effects recorded so far for a pool (0 before the ledger exists).
ledger_count() {
    local n
    n=$(grep -c "^$1 " "$LEDGER" 2>/dev/null) || true
    echo "${n:-0}"
}
deadline() { [ $SECONDS -lt $1 ] || { echo "demo: timed out: $2" >&2; exit 1; }; }

say "starting herald-broker (ROUTER $HERALD_BROKER, XPUB $HERALD_XPUB)"
"$BIN/herald-broker" --router "$HERALD_BROKER" --xpub "$HERALD_XPUB" --data-dir "$DEMO/data" --ack-wait 10s >"$DEMO/broker.log" 2>&1 &
PIDS+=($!)
limit=$((SECONDS + 10))
until "$BIN/herald" stat --json --timeout 1s >/dev/null 2>&1; do deadline $limit "broker"; sleep 0.1; done

say "starting pool 'payments' (3 workers) and pool 'email' (2 workers), filter 'orders.'"
declare -A WORKER_PID
for name in pay-1 pay-2 pay-3; do
    "$BIN/herald-worker" --pool payments --filter orders. --name "$name" --credit 4 \
        -- "$HANDLER" "$name" "$LEDGER" 0.03 >"$DEMO/$name.log" 2>&1 &
    WORKER_PID[$name]=$!
    PIDS+=($!)
done
for name in mail-1 mail-2; do
    "$BIN/herald-worker" --pool email --filter orders. --name "$name" --credit 4 \
        -- "$HANDLER" "$name" "$LEDGER" 0.01 >"$DEMO/$name.log" 2>&1 &
    PIDS+=($!)
done
workers_ready() {
    "$BIN/herald" stat --json --timeout 1s 2>/dev/null | grep -q '"workers":3' &&
        "$BIN/herald" stat --json --timeout 1s 2>/dev/null | grep -q '"workers":2'
}
limit=$((SECONDS + 15))
until workers_ready; do deadline $limit "workers to join"; sleep 0.1; done

say "starting a live subscriber on 'orders.'"
"$BIN/herald" sub orders. --count $EVENTS --timeout 50s >"$DEMO/feed.txt" 2>"$DEMO/sub.log" &
SUB_PID=$!
PIDS+=($SUB_PID)
limit=$((SECONDS + 10))
until "$BIN/herald" stat --json --timeout 1s 2>/dev/null | grep -q '"subscriptions":[1-9]'; do
    deadline $limit "subscriber"; sleep 0.1
done

say "publishing $EVENTS orders.placed events (ids order-0 … order-$((EVENTS - 1)))"
"$BIN/herald" pub orders.placed '{"amount":42}' --id order --count $EVENTS --source shop --quiet |
    sed 's/^/    /' &
PUB_PID=$!

say "waiting for payments to be under way, then killing pay-3 with SIGKILL"
limit=$((SECONDS + 30))
until [ "$(ledger_count payments)" -ge 60 ]; do deadline $limit "payments"; sleep 0.05; done
kill -9 "${WORKER_PID[pay-3]}"
wait "${WORKER_PID[pay-3]}" 2>/dev/null || true
killed_at=$(ledger_count payments)
echo "    pay-3 killed after $killed_at payments"
wait $PUB_PID

say "publishing $DUPLICATES of the same events again (a publisher retry): the broker must suppress them"
"$BIN/herald" pub orders.placed '{"amount":42}' --id order --count $DUPLICATES --source shop --quiet | sed 's/^/    /'

done_all() { [ "$(ledger_count "$1")" -ge $EVENTS ]; }
limit=$((SECONDS + 40))
until done_all payments && done_all email; do deadline $limit "all events processed"; sleep 0.1; done
wait $SUB_PID || true

stats=$("$BIN/herald" stat --json)
field() { echo "$stats" | tr '{},' '\n\n\n' | grep "\"$1\":" | head -n 1 | cut -d: -f2; }

echo
say "summary"
for pool in payments email; do
    processed=$(grep "^$pool " "$LEDGER" | awk '{print $2}' | sort | uniq | wc -l)
    twice=$(grep "^$pool " "$LEDGER" | awk '{print $2}' | sort | uniq -d | wc -l)
    echo "  pool $pool: $processed of $EVENTS events processed, $twice processed twice"
    grep "^$pool " "$LEDGER" | awk '{print $3}' | sort | uniq -c | awk '{printf "      %-7s %4d events\n", $2, $1}'
    retried=$(grep "^$pool " "$LEDGER" | grep -vc 'attempt=1 ' || true)
    echo "      delivered more than once before completing: $retried"
done
skipped=$(grep -c . "$LEDGER.skipped" 2>/dev/null || true)
after_kill=$(grep '^payments ' "$LEDGER" | tail -n +$((killed_at + 1)) | grep -vc ' pay-3 ' || true)
echo "  pay-3 was killed after $killed_at payments; the other workers finished $after_kill more (its leases moved at once)"
echo "  redeliveries whose effect was already recorded (idempotent handler skipped them): ${skipped:-0}"
echo "  broker: published=$(field published) duplicates suppressed=$(field duplicates) rejected=$(field rejected)"
echo "  live subscriber: $(grep -c '^seq=' "$DEMO/feed.txt" || true) events seen; $(tail -n 1 "$DEMO/sub.log")"
echo
echo "  last lines of the live feed:"
tail -n 3 "$DEMO/feed.txt" | cut -c1-100 | sed 's/^/    /'
