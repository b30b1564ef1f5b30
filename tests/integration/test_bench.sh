#!/usr/bin/env bash
# herald-bench sanity: a small W1 and W2 run against a broker it starts
# itself completes, and reports no loss (W1, W2), no duplicates (W2) and
# the CPU time its processes took (and the broker's part of it) and how
# busy the broker's loop was; W2 again
# with handler threads.
source "$(dirname "$0")/lib.sh"

[ -x "$BIN/herald-bench" ] || fail "no $BIN/herald-bench"
"$BIN/herald-bench" --workload both --events 5000 --runs 1 --json --quiet --timeout 60s \
    >"$WORK/bench.json" 2>"$WORK/bench.log" || fail "herald-bench exited with $?"
json=$(cat "$WORK/bench.json")
log "$json"
check() { # JQ-EXPR EXPECTED
    local got
    got=$(jq -r "$1" <<<"$json") || fail "not JSON: $json"
    [ "$got" = "$2" ] || fail "$1 is $got, expected $2"
}
check '.w1.ok_runs' 1
check '.w1.lost' 0
check '.w1.runs[0].received' 10000
check '.config.inline' true
check '.w2.ok_runs' 1
check '.w2.lost' 0
check '.w2.dupes' 0
check '.w2.runs[0].received' 5000
check '.w2.proc_rate > 0' true
# CPU per event: every process of the run counted (the broker too); at
# least the broker's start and the clients' connects, far below a second
check '.w1.cpu_scope' 'clients and broker'
check '.w1.runs[0].cpu_us_per_event > 0.5 and .w1.runs[0].cpu_us_per_event < 1000000' true
check '.w2.cpu_us_per_event > 0.5 and .w2.cpu_us_per_event < 1000000' true
# and the broker's share of it on its own: some, not all
check '.w2.broker_cpu_us_per_event > 0 and .w2.broker_cpu_us_per_event < .w2.cpu_us_per_event' true
check '.w1.runs[0].broker_cpu_us_per_event > 0' true
# the broker loop's busy share over the run (Stats.loop_busy_us): some
# work, and no more than the time (a turn may straddle a reading)
check '.w1.runs[0].broker_busy > 0 and .w1.runs[0].broker_busy < 1.05' true
check '.w2.broker_busy > 0 and .w2.broker_busy < 1.05' true
grep -q '| broker busy |' "$WORK/bench.log" || fail "no broker busy column in the table"

# W2 with handler threads (--threaded; the workers run inline by default):
# same counts, and the configuration says so; --inline with it is refused
"$BIN/herald-bench" --workload w2 --threaded --events 5000 --runs 1 --json --quiet --timeout 60s \
    >"$WORK/threaded.json" 2>"$WORK/threaded.log" || fail "herald-bench --threaded exited with $?"
json=$(cat "$WORK/threaded.json")
log "$json"
check '.config.inline' false
check '.w2.ok_runs' 1
check '.w2.lost' 0
check '.w2.dupes' 0
check '.w2.runs[0].received' 5000
"$BIN/herald-bench" --workload w2 --inline --threaded --events 10 >/dev/null 2>&1 &&
    fail "herald-bench took --inline with --threaded"

# herald-machine-probe: a wake-up round trip and three first-touch rates
# per page size, all positive numbers; bad usage is refused
"$BIN/herald-machine-probe" 2000 8 >"$WORK/probe.txt" || fail "herald-machine-probe exited with $?"
cat "$WORK/probe.txt"
grep -Eq '^  both threads on CPU [0-9]+: +[0-9]+\.[0-9]+ us$' "$WORK/probe.txt" || fail "no one-CPU round trip"
[ "$(grep -Ec '^first touch of 8 MiB, (huge|4 KiB) pages, MB/s per round:( +[1-9][0-9]*){3}$' \
    "$WORK/probe.txt")" = 2 ] || fail "no first-touch rates"
"$BIN/herald-machine-probe" 0 >/dev/null 2>&1 && fail "herald-machine-probe took 0 round trips"
# its stall test: five conditions, each a count, a rate and the longest,
# the two with a flushing process its fdatasync rate; a directory it
# cannot write in is an error, not a figure
"$BIN/herald-machine-probe" --stalls 0.2 --dir "$WORK" 2000 8 >"$WORK/stalls.txt" ||
    fail "herald-machine-probe --stalls exited with $?"
cat "$WORK/stalls.txt"
stall_line='^  [a-zA-Z +]+ +[0-9]+ stalls, +[0-9]+\.[0-9] ms stalled a second, longest +[0-9]+\.[0-9] ms, every +([0-9]+\.[0-9]|-) ms'
[ "$(grep -Ec "$stall_line\$" "$WORK/stalls.txt")" = 3 ] || fail "not three stall lines without a load on the disk"
[ "$(grep -Ec "$stall_line, +[1-9][0-9]* fdatasync/s\$" "$WORK/stalls.txt")" = 2 ] ||
    fail "not two stall lines with a flushing process"
ls "$WORK"/herald-machine-probe.* >/dev/null 2>&1 && fail "the flush file was left behind"
"$BIN/herald-machine-probe" --stalls 0.1 --dir "$WORK/none" 2000 8 >/dev/null 2>"$WORK/stalls.err" &&
    fail "herald-machine-probe flushed into a missing directory"
grep -q "cannot write and sync a file in $WORK/none" "$WORK/stalls.err" || fail "no reason given"
"$BIN/herald-machine-probe" --stalls -1 >/dev/null 2>&1 && fail "herald-machine-probe took --stalls -1"
# --watch: one stamped line a second
"$BIN/herald-machine-probe" --watch 2.2 >"$WORK/watch.txt" || fail "--watch exited with $?"
grep -Eq '^[0-9]{2}:[0-9]{2}:[0-9]{2} stalls [0-9]+ stalled_ms [0-9]+\.[0-9]$' "$WORK/watch.txt" ||
    fail "no watch line: $(cat "$WORK/watch.txt")"
# --sync-floor: one line, commits no more often than events arrive, each
# percentile no smaller than the one below it; its file is removed; a
# directory it cannot write in and bad usage are errors
"$BIN/herald-machine-probe" --sync-floor 400 0.5 --dir "$WORK" >"$WORK/floor.txt" ||
    fail "--sync-floor exited with $?"
cat "$WORK/floor.txt"
floor_line='^sync floor: 400 events/s for 0\.5 s, [0-9]+ commits/s of [0-9]+\.[0-9] events; commit p50 [0-9]+ p99 [0-9]+ us; event p50 [0-9]+ p99 [0-9]+ p99\.9 [0-9]+ us$'
grep -Eq "$floor_line" "$WORK/floor.txt" || fail "no floor line"
awk '{ commits = $8; per = $11; c50 = $15; c99 = $17; e50 = $21; e99 = $23; e999 = $25
       if (commits > 400 || per < 1 || c50 > c99 || e50 > e99 || e99 > e999 || e50 < c50 / 2) exit 1 }' \
    "$WORK/floor.txt" || fail "floor figures out of order"
ls "$WORK"/herald-machine-probe.* >/dev/null 2>&1 && fail "the floor's file was left behind"
"$BIN/herald-machine-probe" --sync-floor 400 0.2 --dir "$WORK/none" >/dev/null 2>"$WORK/floor.err" &&
    fail "--sync-floor wrote into a missing directory"
grep -q "cannot write and sync a file in $WORK/none" "$WORK/floor.err" || fail "no reason given for the floor"
for args in "0 1" "400 0" "400" "x 1" "1e9 60" "1 0.5" "nan 1" "-1 1" "1 inf" "1 100000" \
    "400 1 --watch 1" "400 1 --stalls 1" "400 1 2000"; do
    status=0
    # shellcheck disable=SC2086 # the arguments are meant to split
    "$BIN/herald-machine-probe" --sync-floor $args >/dev/null 2>&1 || status=$?
    [ $status = 2 ] || fail "--sync-floor $args was not refused as bad usage"
done
# The first CPU this test may use (a runner's cpuset need not start at 0)
FIRST_CPU=$(awk '/^Cpus_allowed_list/ { split($2, cpus, /[-,]/); print cpus[1] }' /proc/self/status)
# --wakeups beside the floor: the same line, then the round trips it made
# between two CPUs (some, and no more than asked: missed ones are skipped,
# not made up); alone, or with a bad rate, it is bad usage; on one CPU it
# is an error that says why
if [ "$(nproc)" -ge 2 ]; then
    "$BIN/herald-machine-probe" --sync-floor 400 0.5 --wakeups 300 --dir "$WORK" >"$WORK/wake.txt" ||
        fail "--sync-floor --wakeups exited with $?"
    cat "$WORK/wake.txt"
    grep -Eq "${floor_line%\$}; beside [0-9]+ wake-up round trips/s between CPUs [0-9]+ and [0-9]+\$" \
        "$WORK/wake.txt" || fail "no floor line with wake-ups"
    awk '{ trips = $(NF - 8); if (trips < 1 || trips > 300 * 1.05 + 2 || $(NF - 2) == $NF) exit 1 }' \
        "$WORK/wake.txt" || fail "wake-up figures out of range"
    taskset -c "$FIRST_CPU" "$BIN/herald-machine-probe" --sync-floor 400 0.2 --wakeups 300 --dir "$WORK" \
        >/dev/null 2>"$WORK/wake.err" && fail "--wakeups ran on one CPU"
    grep -q -- "--wakeups needs two CPUs" "$WORK/wake.err" || fail "no reason given for one CPU"
fi
for args in "--wakeups 300" "--sync-floor 400 1 --wakeups -1" \
    "--sync-floor 400 1 --wakeups x" "--sync-floor 400 1 --wakeups 1e9" "--sync-floor 400 1 --wakeups 0.5" \
    "--watch 1 --wakeups 5"; do
    status=0
    # shellcheck disable=SC2086 # the arguments are meant to split
    "$BIN/herald-machine-probe" $args >/dev/null 2>&1 || status=$?
    [ $status = 2 ] || fail "$args was not refused as bad usage"
done
# --cpus: herald-bench and every process it starts run on those CPUs only
# (the configuration says which; the broker it starts, through a wrapper,
# reports its own affinity); a list that is not one, or that names no CPU
# this machine has, is refused
printf '#!/bin/sh\ntaskset -pc $$ >"%s"\nexec "%s" "$@"\n' "$WORK/broker-affinity.txt" \
    "$BIN/herald-broker" >"$WORK/broker-affinity.sh"
chmod +x "$WORK/broker-affinity.sh"
"$BIN/herald-bench" --cpus "$FIRST_CPU" --broker-bin "$WORK/broker-affinity.sh" --workload w2 \
    --events 2000 --json --quiet >"$WORK/cpus.json" 2>"$WORK/cpus.log" ||
    fail "herald-bench --cpus $FIRST_CPU exited with $?"
grep -q "current affinity list: $FIRST_CPU\$" "$WORK/broker-affinity.txt" ||
    fail "the broker ran on $(cat "$WORK/broker-affinity.txt")"
json=$(cat "$WORK/cpus.json")
check '.config.cpus' "$FIRST_CPU"
check '.w2.runs[0].received' 2000
check '.w2.lost' 0
json=$(cat "$WORK/bench.json")
check '.config.cpus' any
for cpus in "0," "-1" "2-1" "x" "1 2" "99999" "1000" "$FIRST_CPU,1000"; do
    status=0
    "$BIN/herald-bench" --cpus "$cpus" --workload w2 --events 100 --quiet >/dev/null 2>&1 || status=$?
    [ $status = 2 ] || fail "--cpus '$cpus' was not refused as bad usage ($status)"
done
log "ok"
