#!/usr/bin/env bash
# herald-worker runs a command per event: payload on stdin, envelope in
# HERALD_* variables; exit 0 acks, exit 75 retries, other exits terminate.
source "$(dirname "$0")/lib.sh"

start_broker --backoff-initial 50ms
cat >"$WORK/handler.sh" <<'SCRIPT'
#!/usr/bin/env bash
payload=$(cat)
echo "$HERALD_ID|$HERALD_SOURCE|$HERALD_TYPE|$HERALD_SEQ|$HERALD_ATTEMPT|$HERALD_KEY|$payload" >>"$1"
case "$payload" in
    retry) [ "$HERALD_ATTEMPT" -ge 3 ] && exit 0 || exit 75 ;;
    fail) echo "card declined" >&2; exit 1 ;;
esac
exit 0
SCRIPT
chmod +x "$WORK/handler.sh"
spawn hw "$BIN/herald-worker" --broker "$ROUTER" --pool cmd --filter c. -- "$WORK/handler.sh" "$WORK/out.txt"
wait_for "herald-worker" 10 workers_in cmd 1

"$BIN/herald" pub c.ok hello --id ok-1 --key k42 --source shop --broker "$ROUTER" >/dev/null || fail "pub ok"
"$BIN/herald" pub c.retry retry --id retry-1 --broker "$ROUTER" >/dev/null || fail "pub retry"
"$BIN/herald" pub c.fail fail --id fail-1 --broker "$ROUTER" >/dev/null || fail "pub fail"
wait_for "ok and retry acked" 20 stat_is '.pools[] | select(.name=="cmd") | .acked' 2
wait_for "fail terminated" 20 stat_is '.pools[] | select(.name=="cmd") | .terminated' 1

grep -q '^ok-1|shop|c.ok|[0-9]*|1|k42|hello$' "$WORK/out.txt" || fail "envelope variables: $(cat "$WORK/out.txt")"
[ "$(grep -c '^retry-1|' "$WORK/out.txt")" = 3 ] || fail "exit 75 should retry until attempt 3"
[ "$(grep -c '^fail-1|' "$WORK/out.txt")" = 1 ] || fail "a failed event must not be retried"
[ "$(pool_field cmd nacked)" = 2 ] || fail "nacked=$(pool_field cmd nacked)"

"$BIN/herald-worker" --broker "$ROUTER" --filter c. -- true 2>"$WORK/usage.txt" && fail "missing --pool accepted"
grep -qi "pool" "$WORK/usage.txt" || fail "no clear message for a missing --pool"
"$BIN/herald-worker" --broker "$ROUTER" --pool cmd --seen-capacity 2147483649 -- true 2>"$WORK/usage.txt" &&
    fail "--seen-capacity past its ceiling accepted"
grep -q -- "--seen-capacity must be 1 to 2147483648" "$WORK/usage.txt" || fail "no clear message: $(cat "$WORK/usage.txt")"
log "ok"
