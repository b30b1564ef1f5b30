#!/usr/bin/env bash
# herald sub --from: history then live. With 100 events in the log and 50
# more published while it runs, `herald sub --from 1 --count 150` prints
# seqs 1..150 exactly once each, in order, whichever of them came from the
# history and which live. --from also takes an RFC 3339 time and -DURATION,
# prefixes filter the history as they filter live events, and --json prints
# replayed events in the live format.
source "$(dirname "$0")/lib.sh"

H="$BIN/herald"
sub() { "$H" sub --broker "$ROUTER" --xpub "$XPUB" "$@"; }
# seqs_of FILE: the seq of each line of FILE
seqs_of() { sed -n 's/^seq=\([0-9]*\) .*/\1/p' "$1"; }
# check_seqs FILE FIRST LAST: FILE holds exactly seqs FIRST..LAST in order
check_seqs() {
    [ "$(seqs_of "$1" | tr '\n' ' ')" = "$(seq "$2" "$3" | tr '\n' ' ')" ] ||
        fail "$1: expected seqs $2..$3, got: $(seqs_of "$1" | tr '\n' ' ')"
}
# run_sub NAME ARGS...: herald sub in the background, stdout to $WORK/NAME.out; sets LAST_PID
run_sub() {
    local name=$1
    shift
    sub "$@" >"$WORK/$name.out" 2>"$WORK/$name.log" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}
exited() { ! alive "$1"; }
# finish PID NAME: wait (with a deadline) for the sub to exit 0
finish() {
    wait_for "herald sub ($2) to finish" 60 exited "$1"
    wait "$1" || fail "herald sub ($2) exited $?: $(cat "$WORK/$2.log")"
}

start_broker
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type r.x --count 100 --id-prefix a- \
    >/dev/null || fail "publish the first 100"

# History in pages of 7, with 50 more events published (at 200/s) while it runs
run_sub main --from 1 --count 150 --replay-page 7 --timeout 60s
MAIN=$LAST_PID
"$H" pub r.x --broker "$ROUTER" --count 50 --id b --rate 200 --quiet </dev/null >/dev/null ||
    fail "publish the last 50"
finish "$MAIN" main
check_seqs "$WORK/main.out" 1 150
grep -q '^received=150 gaps=0 replayed=[0-9]*$' "$WORK/main.log" || fail "summary: $(cat "$WORK/main.log")"
replayed=$(sed -n 's/.*replayed=\([0-9]*\).*/\1/p' "$WORK/main.log")
[ "$replayed" -ge 100 ] || fail "only $replayed events came from the history"
[ "$(sed -n '1p' "$WORK/main.out")" = "seq=1 id=a-0 type=r.x" ] || fail "first line: $(head -n 1 "$WORK/main.out")"
[ "$(sed -n '101p' "$WORK/main.out")" = "seq=101 id=b-0 type=r.x" ] || fail "line 101: $(sed -n '101p' "$WORK/main.out")"

# Live events keep coming after the history: --from 140 catches up, then
# prints 10 live events, each once
run_sub live --from 140 --count 21 --timeout 60s
LIVE=$LAST_PID
wait_for "history up to seq 150" 20 grep -q '^seq=150 ' "$WORK/live.out"
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type r.x --count 10 --id-prefix c- \
    >/dev/null || fail "publish 10 live"
finish "$LIVE" live
check_seqs "$WORK/live.out" 140 160

# Prefixes: other types in the log are left out of the history too
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type o.x --count 5 --id-prefix o- \
    >/dev/null || fail "publish o.x"
sub --from 155 o. --count 5 --timeout 20s >"$WORK/o.out" 2>"$WORK/o.log" || fail "sub o.: $(cat "$WORK/o.log")"
check_seqs "$WORK/o.out" 161 165
sub --from 158 r. o. --count 8 --timeout 20s >"$WORK/ro.out" 2>"$WORK/ro.log" || fail "sub r. o."
check_seqs "$WORK/ro.out" 158 165
sub --from 1 r.x --count 160 --timeout 20s --replay-page 33 >"$WORK/rx.out" 2>&1 || fail "sub r.x"
check_seqs "$WORK/rx.out" 1 160

# Times: RFC 3339 and relative, both before the first event
since=$(date -u -d '-1 hour' +%Y-%m-%dT%H:%M:%SZ)
sub --from "$since" --count 165 --timeout 20s >"$WORK/t.out" 2>"$WORK/t.log" ||
    fail "sub --from $since: $(cat "$WORK/t.log")"
check_seqs "$WORK/t.out" 1 165
sub --from -10m --count 165 --timeout 20s >"$WORK/rel.out" 2>"$WORK/rel.log" ||
    fail "sub --from -10m: $(cat "$WORK/rel.log")"
check_seqs "$WORK/rel.out" 1 165
# A time after every event: nothing from the history, only what is
# recorded after it
future_ms=$(($(date +%s%3N) + 1000))
future=$(date -u -d "@$((future_ms / 1000)).$(printf %03d $((future_ms % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ)
run_sub future --from "$future" --count 1 --timeout 30s
FUTURE=$LAST_PID
wait_for "subscription" 10 stat_is .subscriptions 1
past_future() { [ "$(date +%s%3N)" -gt "$future_ms" ]; }
wait_for "the clock to pass --from" 5 past_future
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type r.x --count 1 --id-prefix later- \
    >/dev/null || fail "publish later"
finish "$FUTURE" future
[ "$(count_lines "$WORK/future.out")" = 1 ] && grep -q '^seq=166 id=later-0 ' "$WORK/future.out" ||
    fail "future: $(cat "$WORK/future.out")"

# JSON: replayed events in the live format
sub --from 1 --count 1 --json --timeout 20s >"$WORK/j.out" 2>/dev/null || fail "sub --json"
jq -e '.seq == 1 and .id == "a-0" and .type == "r.x" and .source == "hd_test_client"
       and .recorded_time_us > 0 and (.attributes | type) == "object"' "$WORK/j.out" >/dev/null ||
    fail "json: $(cat "$WORK/j.out")"

# Usage errors
for bad in 0 x 2026-13-01T00:00:00Z 2026-11-22T10:00:00 -10y; do
    status=0
    sub --from "$bad" --count 1 --timeout 1s >/dev/null 2>&1 || status=$?
    [ "$status" = 2 ] || fail "--from $bad: exit $status, not 2"
done
status=0
"$H" sub --from 1 --broker '' --xpub "$XPUB" --count 1 --timeout 1s >/dev/null 2>&1 || status=$?
[ "$status" = 2 ] || fail "--from without --broker: exit $status"
log "ok: history then live without repeats or holes; times, prefixes and json"
