#!/usr/bin/env bash
# CPU time an event costs the machine, Herald against the raw-ZeroMQ
# brokers of ../shared/bench-peers, same workloads, same session. On a
# 2-core machine where every row is CPU-bound this explains the rates: a
# row can only reach a peer's rate with as little CPU per event.
#
#   bench/cpu_per_event.sh [BUILD_DIR]      (default: build)
#
# CPU = user + system time of every process of a run (broker and clients;
# herald-bench's own is left out), divided by the events. Herald's comes
# from herald-bench --json (cpu_us_per_event); the raw-ZeroMQ runs are
# started here as run.sh starts them and their children's times are read
# with the shell's `times` once all are reaped.
#
# Environment: RUNS=5 (medians), N1=200000 N2=100000, PEERS_SRC, WINDOW=1000
# (Herald's publisher window: the raw publishers keep none; the library's
# default is 1000).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/raw_zmq.sh
source "$ROOT/bench/raw_zmq.sh"
raw_zmq_setup cpu "${1:-}"
RUNS=${RUNS:-5}
N1=${N1:-200000}
N2=${N2:-100000}
WINDOW=${WINDOW:-1000}

declare -A RATE CPU LOST
row() { # name command...
    local name=$1
    shift
    : >"$WORK/$name"
    for r in $(seq 1 "$RUNS"); do
        local line
        line=$("$@") || line="- - -" # a failed run counts in no median
        echo "$line" >>"$WORK/$name"
        echo "[$(date +%H:%M:%S)] $name run $r: $(tail -n 1 "$WORK/$name")" >&2
    done
    RATE[$name]=$(awk '$1 != "-" {print $1}' "$WORK/$name" | median)
    CPU[$name]=$(awk '$2 != "-" {print $2}' "$WORK/$name" | median)
    LOST[$name]=$(awk '$3 != "-" {s += $3} END {print s + 0}' "$WORK/$name")
}

# Interleaved by row, one system at a time
row zmq_w1 raw_zmq_run fanout "$N1" 2
row herald_w1 herald_run w1 --events "$N1" --fsync never --window "$WINDOW"
row zmq_w2 raw_zmq_run queue "$N2" 4
row herald_w2 herald_run w2 --events "$N2" --fsync never --window "$WINDOW"
row herald_w2_always herald_run w2 --events "$N2" --fsync always --window 256

echo
echo "CPU per event, medians of $RUNS runs ($(nproc) cores; herald window $WINDOW unless noted)"
echo
echo "| workload | system | events/s | CPU us/event | CPU vs raw ZeroMQ | lost |"
echo "|---|---|---:|---:|---:|---:|"
echo "| W1 fan-out (per sub) | raw ZeroMQ XSUB/XPUB, HWM 0 | ${RATE[zmq_w1]} | ${CPU[zmq_w1]} | 1.00 | ${LOST[zmq_w1]} |"
echo "| W1 fan-out (per sub) | Herald, --fsync never | ${RATE[herald_w1]} | ${CPU[herald_w1]} | $(ratio "${CPU[herald_w1]}" "${CPU[zmq_w1]}") | ${LOST[herald_w1]} |"
echo "| W2 work queue | raw ZeroMQ ROUTER/ROUTER | ${RATE[zmq_w2]} | ${CPU[zmq_w2]} | 1.00 | ${LOST[zmq_w2]} |"
echo "| W2 work queue | Herald, --fsync never | ${RATE[herald_w2]} | ${CPU[herald_w2]} | $(ratio "${CPU[herald_w2]}" "${CPU[zmq_w2]}") | ${LOST[herald_w2]} |"
echo "| W2 work queue | Herald, --fsync always, window 256 | ${RATE[herald_w2_always]} | ${CPU[herald_w2_always]} | $(ratio "${CPU[herald_w2_always]}" "${CPU[zmq_w2]}") | ${LOST[herald_w2_always]} |"
