#!/usr/bin/env bash
# bench/sched_idle.sh --analyse: idle time, idle time while a task waited
# on another CPU, voluntary sleeps and switches out of step, from
# scheduler traces whose answers are worked out by hand. With perf and root, one short traced
# Herald run as well (skipped without perf).
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TOOL="$ROOT/bench/sched_idle.sh"

# Two CPUs from t = 1.0 to 2.4 (the first and the last switch into a
# measured thread; TRIM=0 keeps the whole span):
#   cpu0: A 1.0-1.5, C 1.5-2.0, idle 2.0-2.2, B 2.2-2.3, idle 2.3-2.35,
#         kworker 2.35-2.38, idle 2.38-2.4                    idle 0.27
#   cpu1: B 1.0-1.2, idle 1.2-1.7, A 1.7-2.0, idle 2.0-2.4    idle 0.90
# Waiting: C on cpu0 1.3-1.5; A (preempted) on cpu0 1.5-1.6, then moved
# to cpu1 1.6-1.7; B on cpu0 2.1-2.2. An idle CPU while a task waits on
# the other, busy CPU: cpu1 1.3-1.6 = 0.3 (A waiting on idle cpu1 itself
# 1.6-1.7 does not count, nor B 2.1-2.2, waiting on cpu0 while cpu0 is
# idle). Idle 1.17 / 1.4 = 83.6 % of a CPU, waiting 0.3 / 1.4 = 21.4 %.
# Voluntary sleeps of measured threads: B 1.2, C 2.0, A 2.0, B 2.3 (not
# the kworker's) = 4 in 1 000 events = 4 000 a million. No switch out of
# step.
cat >"$WORK/trace.txt" <<'EOF'
[000]     1.000000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=herald-bench next_pid=10 next_prio=120
[001]     1.000000: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ZMQbg/IO/0 next_pid=11 next_prio=120
[001]     1.200000: sched:sched_switch: prev_comm=ZMQbg/IO/0 prev_pid=11 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
[000]     1.300000: sched:sched_wakeup: comm=herald-broker pid=12 prio=120 target_cpu=000
[000]     1.500000: sched:sched_switch: prev_comm=herald-bench prev_pid=10 prev_prio=120 prev_state=R ==> next_comm=herald-broker next_pid=12 next_prio=120
[000]     1.600000: sched:sched_migrate_task: comm=herald-bench pid=10 prio=120 orig_cpu=0 dest_cpu=1
[001]     1.700000: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=herald-bench next_pid=10 next_prio=120
[000]     2.000000: sched:sched_switch: prev_comm=herald-broker prev_pid=12 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
[001]     2.000000: sched:sched_switch: prev_comm=herald-bench prev_pid=10 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
[000]     2.100000: sched:sched_wakeup: comm=ZMQbg/IO/0 pid=11 prio=120 target_cpu=000
[000]     2.200000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ZMQbg/IO/0 next_pid=11 next_prio=120
[000]     2.300000: sched:sched_switch: prev_comm=ZMQbg/IO/0 prev_pid=11 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
[000]     2.350000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=kworker/0:1 next_pid=99 next_prio=120
[000]     2.380000: sched:sched_switch: prev_comm=kworker/0:1 prev_pid=99 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
[001]     2.400000: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=herald-bench next_pid=10 next_prio=120
EOF
COMMS='^(herald-bench|herald-broker|ZMQbg/)'
out=$(TRIM=0 bash "$TOOL" --analyse "$WORK/trace.txt" "$COMMS" 1000) || fail "--analyse exited with $?"
[ "$out" = "1.400 83.6 21.4 4000 0" ] || fail "expected '1.400 83.6 21.4 4000 0', got '$out'"
log "hand-worked trace: $out"

# A switch the kernel left out: cpu0's A blocks at 1.2, runs again from
# 1.4 without a switch in the trace, and blocks at 1.6. The switch at 1.6
# takes off A where the trace had cpu0 idle, so the idle counted since
# 1.2 is taken back. Span 1.0-2.0; idle cpu0 1.6-1.8 and cpu1 1.9-2.0 =
# 0.3 (30.0 %), none while a task waited on a busy CPU (B waits 1.95-2.0
# on its own idle cpu1); sleeps A 1.2, A 1.6, B 1.9 = 3 000 a million;
# one switch out of step. Counting the gap as idle would give 70.0 %.
cat >"$WORK/missing.txt" <<'EOF'
[000]     1.000000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=herald-bench next_pid=10 next_prio=120
[001]     1.000000: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ZMQbg/IO/0 next_pid=11 next_prio=120
[000]     1.200000: sched:sched_switch: prev_comm=herald-bench prev_pid=10 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
[000]     1.600000: sched:sched_switch: prev_comm=herald-bench prev_pid=10 prev_prio=120 prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
[000]     1.800000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=herald-bench next_pid=10 next_prio=120
[001]     1.900000: sched:sched_switch: prev_comm=ZMQbg/IO/0 prev_pid=11 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
[001]     1.950000: sched:sched_wakeup: comm=ZMQbg/IO/0 pid=11 prio=120 target_cpu=001
[001]     2.000000: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ZMQbg/IO/0 next_pid=11 next_prio=120
EOF
out=$(TRIM=0 bash "$TOOL" --analyse "$WORK/missing.txt" "$COMMS" 1000) || fail "--analyse exited with $?"
[ "$out" = "1.000 30.0 0.0 3000 1" ] || fail "a left-out switch: expected '1.000 30.0 0.0 3000 1', got '$out'"

# A waiting task switched out again: A, preempted on cpu0 at 1.1, runs
# again without a switch in the trace and is preempted again at 1.3 (out
# of step), then switches in at 1.5. It waits once, not twice: cpu1, idle
# from 1.4, counts as idle while a task waited only until 1.5. Span
# 1.0-2.0; idle 0.6 (60.0 %), waiting 0.1 (10.0 %); sleeps B 1.4, C 1.5
# = 2 000 a million; one switch out of step. Counting A twice would leave
# it waiting for ever: 0.6 (60.0 %).
cat >"$WORK/twice.txt" <<'EOF'
[000]     1.000000: sched:sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=herald-bench next_pid=10 next_prio=120
[001]     1.000000: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ZMQbg/IO/0 next_pid=11 next_prio=120
[000]     1.100000: sched:sched_switch: prev_comm=herald-bench prev_pid=10 prev_prio=120 prev_state=R ==> next_comm=herald-broker next_pid=12 next_prio=120
[000]     1.300000: sched:sched_switch: prev_comm=herald-bench prev_pid=10 prev_prio=120 prev_state=R+ ==> next_comm=herald-broker next_pid=12 next_prio=120
[001]     1.400000: sched:sched_switch: prev_comm=ZMQbg/IO/0 prev_pid=11 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120
[000]     1.500000: sched:sched_switch: prev_comm=herald-broker prev_pid=12 prev_prio=120 prev_state=S ==> next_comm=herald-bench next_pid=10 next_prio=120
[001]     1.900000: sched:sched_wakeup: comm=ZMQbg/IO/0 pid=11 prio=120 target_cpu=001
[001]     2.000000: sched:sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=ZMQbg/IO/0 next_pid=11 next_prio=120
EOF
out=$(TRIM=0 bash "$TOOL" --analyse "$WORK/twice.txt" "$COMMS" 1000) || fail "--analyse exited with $?"
[ "$out" = "1.000 60.0 10.0 2000 1" ] || fail "a task preempted twice: expected '1.000 60.0 10.0 2000 1', got '$out'"

# A trace with fewer than two measured switches gives no figures
head -n 1 "$WORK/trace.txt" >"$WORK/one.txt"
out=$(TRIM=0 bash "$TOOL" --analyse "$WORK/one.txt" "$COMMS" 1000) || fail "--analyse exited with $?"
[ "$out" = "- - - - -" ] || fail "one switch gave '$out'"

# Bad usage exits 2 with a message
for args in "--analyse" "--analyse $WORK/trace.txt $COMMS 0" "--analyse $WORK/none.txt $COMMS 10"; do
    set +e
    # shellcheck disable=SC2086 # the words are the arguments
    msg=$(bash "$TOOL" $args 2>&1)
    status=$?
    set -e
    [ $status = 2 ] || fail "'$args' exited with $status"
    grep -q usage <<<"$msg" || fail "'$args' printed: $msg"
done
set +e
msg=$(TRIM=0.5 bash "$TOOL" --analyse "$WORK/trace.txt" "$COMMS" 1000 2>&1)
status=$?
set -e
if [ $status != 2 ] || ! grep -q "TRIM" <<<"$msg"; then
    fail "TRIM=0.5 gave $status: $msg"
fi

# One short traced run of Herald, where perf can trace the scheduler
if command -v perf >/dev/null && [ "$(id -u)" = 0 ] &&
    perf record -q -a -e sched:sched_switch -o "$WORK/probe.data" -- true 2>/dev/null; then
    RUNS=1 EVENTS=20000 RAW=0 TMPDIR="$WORK" bash "$TOOL" "$(dirname "$BIN")" >"$WORK/table.md" 2>"$WORK/run.log" ||
        fail "a traced run failed: $(tail -n 3 "$WORK/run.log")"
    log "$(cat "$WORK/table.md")"
    row=$(grep '^| Herald | 1 |' "$WORK/table.md") || fail "no Herald row"
    awk -F'|' -v n="$(nproc)" '{
        for (i = 4; i <= 9; i++) { gsub(/ /, "", $i); if ($i !~ /^[0-9.]+$/) exit 1; v[i] = $i + 0 }
        # a rate, a span, idle within the CPUs, the waiting part within the
        # idle, some sleeps, a count of switches out of step
        exit !(v[4] > 0 && v[5] > 0 && v[6] <= 100 * n && v[7] <= v[6] && v[8] > 0 && v[9] == int(v[9]))
    }' <<<"$row" || fail "implausible row: $row"
else
    log "no traced run: perf cannot trace the scheduler here"
fi
log "ok"
