#!/usr/bin/env bash
# --dedup-reserve (the default) sizes the dedup window's index for
# --dedup-max and makes it resident before the broker serves; the window
# still finds duplicates, before and after a restart. With
# --dedup-reserve=false the index is not resident until identities arrive,
# nor is it when it would take more than a quarter of the machine's memory.
source "$(dirname "$0")/lib.sh"

# 2 000 000 identities: an index at most 70 % full, 2 857 143 slots of 8
# bytes, and a ring of 2^21 entry pointers: 39 634 360 bytes
INDEX_KIB=38705
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$BROKER_PID/status"; }

start_broker --dedup-max 2000000
grep -q "dedup window: index of $INDEX_KIB KiB for 2000000 identities ready" "$WORK/broker.log" ||
    fail "no reservation logged: $(cat "$WORK/broker.log")"
[ "$(rss_kib)" -ge "$INDEX_KIB" ] || fail "reserved, but the broker's RSS is $(rss_kib) KiB"

"$BIN/herald" pub orders.placed x --count 100 --id r --broker "$ROUTER" >"$WORK/first.out" || fail "first publish"
grep -q "confirmed=100 duplicates=0" "$WORK/first.out" || fail "first: $(cat "$WORK/first.out")"
"$BIN/herald" pub orders.placed x --count 100 --id r --broker "$ROUTER" >"$WORK/second.out" || fail "second publish"
grep -q "confirmed=100 duplicates=100" "$WORK/second.out" || fail "second: $(cat "$WORK/second.out")"

# Recovery refills the reserved window
kill_broker
start_broker --dedup-max 2000000
"$BIN/herald" pub orders.placed x --count 100 --id r --broker "$ROUTER" >"$WORK/third.out" || fail "third publish"
grep -q "confirmed=100 duplicates=100" "$WORK/third.out" || fail "after restart: $(cat "$WORK/third.out")"

kill_broker
start_broker --dedup-max 2000000 --dedup-reserve=false
! grep -q "dedup window: index" "$WORK/broker.log" || fail "reserved with --dedup-reserve=false"
[ "$(rss_kib)" -lt $((INDEX_KIB / 2)) ] || fail "not reserved, but the broker's RSS is $(rss_kib) KiB"
"$BIN/herald" pub orders.placed x --count 100 --id r --broker "$ROUTER" >"$WORK/fourth.out" || fail "fourth publish"
grep -q "confirmed=100 duplicates=100" "$WORK/fourth.out" || fail "unreserved: $(cat "$WORK/fourth.out")"

# An index past a quarter of the machine's memory is not taken at start:
# the broker says so and serves, its window growing as before. The largest
# --dedup-max (2^31) takes 41 722 539 448 bytes: a machine with a quarter
# of its memory above that would reserve it, so there the step is skipped.
kill_broker
mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
if [ $((mem_kib / 4 * 1024)) -lt 41722539448 ]; then
    start_broker --dedup-max 2147483648
    grep -q "would take more than a quarter of this machine's memory (or of the cgroup's limit): not reserved" "$WORK/broker.log" ||
        fail "no warning for a huge --dedup-max: $(cat "$WORK/broker.log")"
    [ "$(rss_kib)" -lt $((INDEX_KIB / 2)) ] || fail "huge --dedup-max, RSS $(rss_kib) KiB"
    "$BIN/herald" pub orders.placed x --count 100 --id r --broker "$ROUTER" >"$WORK/fifth.out" || fail "fifth publish"
    grep -q "confirmed=100 duplicates=100" "$WORK/fifth.out" || fail "huge window: $(cat "$WORK/fifth.out")"
    kill_broker
else
    log "skipped the huge --dedup-max step: this machine has $mem_kib KiB, a quarter of it holds the largest index"
fi

# --dedup-max has a ceiling, and past it the broker refuses to start
if "$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --data-dir "$WORK/data" \
    --dedup-max 2147483649 >"$WORK/over.log" 2>&1; then
    fail "--dedup-max past its ceiling was accepted"
fi
grep -q -- "--dedup-max is at most 2147483648" "$WORK/over.log" || fail "no error: $(cat "$WORK/over.log")"
log "ok"
