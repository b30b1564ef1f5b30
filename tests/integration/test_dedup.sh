#!/usr/bin/env bash
# Duplicate publishes are confirmed with the original seq and routed
# nowhere: the same `herald pub` twice publishes nothing new.
source "$(dirname "$0")/lib.sh"

start_broker
spawn w "$TBIN/hd_test_client" work --broker "$ROUTER" --pool d --filter "" --log "$WORK/handled.txt"
wait_for "worker" 10 workers_in d 1
spawn sub "$BIN/herald" sub --xpub "$XPUB" --broker "$ROUTER" --timeout 60s
wait_for "subscriber" 10 stat_is .subscriptions 1

"$BIN/herald" pub orders.placed x --count 100 --id dup --broker "$ROUTER" >"$WORK/first.out" || fail "first publish"
grep -q "confirmed=100 duplicates=0" "$WORK/first.out" || fail "first: $(cat "$WORK/first.out")"
"$BIN/herald" pub orders.placed x --count 100 --id dup --broker "$ROUTER" >"$WORK/second.out" || fail "second publish"
grep -q "confirmed=100 duplicates=100" "$WORK/second.out" || fail "second: $(cat "$WORK/second.out")"
# Another source with the same ids is a different event
"$BIN/herald" pub orders.placed x --count 10 --id dup --source other --broker "$ROUTER" >"$WORK/third.out" ||
    fail "third publish"
grep -q "confirmed=10 duplicates=0" "$WORK/third.out" || fail "third: $(cat "$WORK/third.out")"

wait_for "110 acks" 20 stat_is '.pools[] | select(.name=="d") | .acked' 110
[ "$(stat .published)" = 110 ] || fail "published=$(stat .published)"
[ "$(stat .duplicates)" = 100 ] || fail "duplicates=$(stat .duplicates)"
[ "$(count_lines "$WORK/handled.txt")" = 110 ] || fail "worker handled $(count_lines "$WORK/handled.txt")"
sub_saw_all() { [ "$(grep -c '^seq=' "$WORK/sub.log")" -ge 110 ]; }
wait_for "subscriber to see 110" 10 sub_saw_all
[ "$(grep -c '^seq=' "$WORK/sub.log")" = 110 ] || fail "subscriber saw duplicates"
# A burst of copies read in one turn: one event, every copy confirmed with its seq
"$TBIN/hd_probe" dup-burst --broker "$ROUTER" --pool burst-1 --count 50 >"$WORK/dup.out" ||
    fail "duplicate burst: $(cat "$WORK/dup.out")"
grep -q "confirmed=50 duplicates=49 rejected=0 one_seq=1" "$WORK/dup.out" || fail "$(cat "$WORK/dup.out")"
log "ok"
