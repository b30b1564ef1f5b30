#!/usr/bin/env bash
# Where a run leaves the machine idle: Herald's W1 (and raw ZeroMQ's, when
# ../shared/bench-peers is there) under the scheduler's tracepoints.
#
#   bench/sched_idle.sh [BUILD_DIR]      (default: build; needs perf, root)
#   bench/sched_idle.sh --analyse FILE COMMS EVENTS
#                                        the same figures from FILE, the text
#                                        of `perf script -F cpu,time,event,trace`
#                                        (COMMS: a regular expression for the
#                                        measured threads' names)
#
# For each run it records sched_switch, sched_wakeup(_new) and
# sched_migrate_task on every CPU and prints one line:
#   system  run  rate  span_s  idle  idle_waiting  sleeps_per_M  out_of_step
# idle is the time a CPU ran nothing, as a share of one CPU over the span;
# idle_waiting is the part of it while a task stood runnable on another,
# busy CPU, waiting there: work the machine had but did not place on the
# idle CPU. sleeps_per_M counts the measured threads' voluntary switches
# (a thread that blocked) over the whole recording, per million events.
# out_of_step counts switches that took off a task the trace did not have
# running: the kernel leaves some switches out, and the idle counted on
# that CPU since its last switch is then taken back, not guessed at, so
# idle figures are lower bounds. A CPU that never switches in the trace
# counts as neither idle nor busy. The
# span is the middle 90 % of the measured threads' switches, which leaves
# out most of set-up and tear-down. Threads are measured by name, machine
# wide: run nothing else that uses libzmq meanwhile.
# Tracing slows every switch, so compare the systems with each other, not
# with untraced runs.
#
# Environment: RUNS=3, EVENTS=1000000 (W1 events), WINDOW=1000 (Herald's
# publisher window), RAW=1 (also raw ZeroMQ, when the peer harness is
# there), PEERS_SRC (../shared/bench-peers), TRIM=0.05 (the share of the
# measured switches left out at each end of the span).
set -euo pipefail
TRIM=${TRIM:-0.05}
if ! [[ $TRIM =~ ^(0|0?\.[0-9]+)$ ]] || ! awk -v t="$TRIM" 'BEGIN { exit !(t < 0.5) }'; then
    echo "TRIM must be a number from 0 to under 0.5" >&2
    exit 2
fi

# analyse_text COMMS EVENTS < perf script text: "span_s idle idle_waiting
# sleeps_per_M out_of_step" for the threads whose name matches COMMS,
# "- - - - -" when fewer than two of their switches are in the text
analyse_text() {
    awk -v comms="$1" -v events="$2" -v trim="$TRIM" '
        # fields after the event name: key=value words; a comm may hold
        # spaces, so values are found by key
        function field(key,    i) {
            for (i = 4; i <= NF; i++) if (index($i, key "=") == 1) return substr($i, length(key) + 2)
            return ""
        }
        function comm_of(key,    i, s, j) {
            for (i = 4; i <= NF; i++) if (index($i, key "=") == 1) {
                s = substr($i, length(key) + 2)
                for (j = i + 1; j <= NF && $j !~ /=/; j++) s = s " " $j
                return s
            }
            return ""
        }
        {
            cpu = substr($1, 2, length($1) - 2) + 0
            t = $2 + 0
            n++
            time[n] = t; cpuof[n] = cpu; ev[n] = $3
            if ($3 ~ /sched_switch/) {
                prev[n] = field("prev_pid"); state[n] = field("prev_state"); next_[n] = field("next_pid")
                if (!(cpu in first_prev)) first_prev[cpu] = prev[n]
                if (comm_of("next_comm") ~ comms) { mine[next_[n]] = 1; sw[++nsw] = t }
                if (comm_of("prev_comm") ~ comms) mine[prev[n]] = 1
            } else if ($3 ~ /sched_wakeup/) {
                pid[n] = field("pid"); target[n] = field("target_cpu") + 0
            } else if ($3 ~ /sched_migrate_task/) {
                pid[n] = field("pid"); from[n] = field("orig_cpu") + 0; to[n] = field("dest_cpu") + 0
            }
            if (cpu + 1 > ncpu) ncpu = cpu + 1
        }
        END {
            if (nsw < 2) { print "- - - - -"; exit }
            a = sw[int(nsw * trim) + 1]; z = sw[nsw - int(nsw * trim)]
            if (z <= a) { print "- - - - -"; exit }
            # A CPU runs, until its first switch in the trace, what that
            # switch takes off it; one never seen switching is unknown (-1)
            for (c = 0; c < ncpu; c++) {
                running[c] = (c in first_prev) ? first_prev[c] : -1
                waiting[c] = 0; pending_idle[c] = 0; pending_wasted[c] = 0
            }
            for (i = 1; i <= n; i++) {
                t = time[i]
                if (last != "" && t > a && last < z) {
                    dt = (t < z ? t : z) - (last > a ? last : a)
                    for (c = 0; c < ncpu; c++) {
                        if (running[c] != 0) continue
                        idle += dt; pending_idle[c] += dt
                        # only tasks waiting on a busy CPU: one waiting on
                        # an idle CPU is on its way in, not misplaced
                        others = 0
                        for (o = 0; o < ncpu; o++) if (o != c && running[o] > 0) others += waiting[o]
                        if (others > 0) { wasted += dt; pending_wasted[c] += dt }
                    }
                }
                last = t
                c = cpuof[i]
                if (ev[i] ~ /sched_switch/) {
                    p = prev[i]; q = next_[i]
                    # The kernel does not always emit a switch: when this
                    # one takes off a task the trace did not have running,
                    # the idle counted since the last switch was not idle
                    if (running[c] != -1 && running[c] != p) {
                        out_of_step++
                        if (running[c] == 0) { idle -= pending_idle[c]; wasted -= pending_wasted[c] }
                    }
                    pending_idle[c] = 0; pending_wasted[c] = 0
                    if (q in at) { waiting[at[q]]--; delete at[q] }
                    if (p in at) { waiting[at[p]]--; delete at[p] }
                    if (p != 0 && state[i] ~ /^R/) { at[p] = c; waiting[c]++ }
                    if (p in mine && state[i] ~ /^[SD]/) sleeps++
                    running[c] = q
                } else if (ev[i] ~ /sched_wakeup/) {
                    p = pid[i]
                    if (p in at) { waiting[at[p]]--; delete at[p] }
                    on_cpu = 0
                    for (o = 0; o < ncpu; o++) if (running[o] == p) on_cpu = 1
                    if (!on_cpu) { at[p] = target[i]; waiting[target[i]]++ }
                } else if (ev[i] ~ /sched_migrate_task/) {
                    p = pid[i]
                    if (p in at) { waiting[at[p]]--; at[p] = to[i]; waiting[to[i]]++ }
                }
            }
            span = z - a
            printf "%.3f %.1f %.1f %.0f %d\n", span, 100 * idle / span, 100 * wasted / span,
                sleeps / events * 1e6, out_of_step
        }'
}

if [[ ${1:-} = --analyse ]]; then
    [[ $# = 4 && -r $2 && $4 =~ ^[1-9][0-9]*$ ]] ||
        { echo "usage: bench/sched_idle.sh --analyse FILE COMMS EVENTS" >&2; exit 2; }
    analyse_text "$3" "$4" <"$2"
    exit 0
fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
[[ $BUILD = /* ]] || BUILD="$PWD/$BUILD"
HB="$BUILD/bin/herald-bench"
RUNS=${RUNS:-3}
EVENTS=${EVENTS:-1000000}
WINDOW=${WINDOW:-1000}
RAW=${RAW:-1}
PEERS_SRC=${PEERS_SRC:-$ROOT/../shared/bench-peers}

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a whole number of at least 1" >&2; exit 2; }
[[ $EVENTS =~ ^[1-9][0-9]*$ ]] || { echo "EVENTS must be a whole number of at least 1" >&2; exit 2; }
[[ -x "$HB" ]] || { echo "no $HB: build first" >&2; exit 1; }
command -v perf >/dev/null || { echo "sched_idle.sh needs perf (linux-perf)" >&2; exit 1; }
command -v jq >/dev/null || { echo "sched_idle.sh needs jq" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald-sched.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
if [[ $RAW = 1 && -d "$PEERS_SRC/src" ]]; then
    # shellcheck source=bench/raw_zmq.sh
    source "$ROOT/bench/raw_zmq.sh"
    raw_zmq_build "$PEERS_SRC" >"$WORK/build.log" 2>&1 ||
        { echo "cannot build the raw ZeroMQ clients: $(tail -n 3 "$WORK/build.log")" >&2; exit 1; }
else
    RAW=0
fi

# record FILE COMMAND...: COMMAND's stdout, with the scheduler traced into FILE
record() {
    local data=$1
    shift
    perf record -q -a -o "$data" -e sched:sched_switch -e sched:sched_wakeup \
        -e sched:sched_wakeup_new -e sched:sched_migrate_task -- "$@" 2>"$WORK/perf.log" ||
        { echo "the traced run failed: $(tail -n 3 "$WORK/perf.log")" >&2; return 1; }
}

# analyse DATA COMMS EVENTS: analyse_text over a perf.data file
analyse() {
    perf script -i "$1" -F cpu,time,event,trace 2>/dev/null | analyse_text "$2" "$3"
}

herald_rate() { jq -r '.w1.sub_rate // "-"' 2>/dev/null || echo "-"; }

echo "| system | run | per sub/s | span s | idle, % of a CPU | idle while a task waited on another, busy CPU, % of a CPU | voluntary sleeps per million events | switches out of step |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for ((run = 1; run <= RUNS; run++)); do
    rate=$(record "$WORK/herald.data" "$HB" --workload w1 --events "$EVENTS" --fsync never \
        --window "$WINDOW" --quiet --json | herald_rate) || rate="-"
    read -r span idle wasted sleeps step < <(analyse "$WORK/herald.data" '^(herald-bench|herald-broker|ZMQbg/)' "$EVENTS")
    echo "| Herald | $run | $rate | $span | $idle | $wasted | $sleeps | $step |"
    echo "[$(date +%H:%M:%S)] Herald run $run: $rate/s" >&2
    if [[ $RAW = 1 ]]; then
        line=$(record "$WORK/raw.data" bash -c "source '$ROOT/bench/raw_zmq.sh'; WORK='$WORK'; raw_zmq_run fanout $EVENTS 2") || line="-"
        read -r span idle wasted sleeps step < <(analyse "$WORK/raw.data" '^(zmq_bench|ZMQbg/)' "$EVENTS")
        echo "| raw ZeroMQ | $run | ${line%% *} | $span | $idle | $wasted | $sleeps | $step |"
        echo "[$(date +%H:%M:%S)] raw ZeroMQ run $run: ${line%% *}/s" >&2
    fi
done
