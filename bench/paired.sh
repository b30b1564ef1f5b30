#!/usr/bin/env bash
# Herald against raw ZeroMQ in alternating pairs, for the two targets set
# as a ratio to raw ZeroMQ (W1 per subscriber, W2 --fsync never; Herald at
# its library's default window). This host has slow and fast phases that
# last longer than a run: a fixed order (all of one system, then all of
# the other) lends a phase to one side. Here each pair runs both systems
# back to back, in ABBA order (Herald first in odd pairs, raw ZeroMQ first
# in even ones), and the ratio is taken within each pair; the table gives
# every pair's ratio and their median.
#
#   bench/paired.sh [BUILD_DIR]      (default: build)
#
# Prints a markdown section on stdout, progress on stderr. A pair with a
# failed run counts in no median.
#
# Environment: PAIRS=10, N1=200000 (W1 events), N2=100000 (W2 events),
# WINDOW=1000 (Herald's publisher window; the raw publishers keep none),
# PEERS_SRC (../shared/bench-peers).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/raw_zmq.sh
source "$ROOT/bench/raw_zmq.sh"
raw_zmq_setup paired "${1:-}"
PAIRS=${PAIRS:-10}
N1=${N1:-200000}
N2=${N2:-100000}
WINDOW=${WINDOW:-1000}

[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || { echo "PAIRS must be a whole number of at least 1" >&2; exit 1; }

# rate_of COMMAND...: the run's rate, or "-" when it failed
rate_of() {
    local line
    line=$("$@") || { echo "-"; return; }
    awk '{ print ($1 + 0 > 0) ? $1 : "-" }' <<<"$line"
}

# pairs NAME ZMQ_KIND RECEIVERS EVENTS HERALD_ARGS...: PAIRS pairs into
# $WORK/NAME, one "herald_rate zmq_rate" line each
pairs() {
    local name=$1 kind=$2 receivers=$3 events=$4
    shift 4
    : >"$WORK/$name"
    for ((pair = 1; pair <= PAIRS; pair++)); do
        local herald zmq
        if ((pair % 2)); then
            herald=$(rate_of herald_run "$@")
            zmq=$(rate_of raw_zmq_run "$kind" "$events" "$receivers")
        else
            zmq=$(rate_of raw_zmq_run "$kind" "$events" "$receivers")
            herald=$(rate_of herald_run "$@")
        fi
        echo "$herald $zmq" >>"$WORK/$name"
        echo "[$(date +%H:%M:%S)] $name pair $pair: herald $herald, raw ZeroMQ $zmq" >&2
    done
}

pairs w1 fanout 2 "$N1" w1 --events "$N1" --fsync never --window "$WINDOW"
pairs w2 queue 4 "$N2" w2 --events "$N2" --fsync never --window "$WINDOW"

# row NAME LABEL TARGET: one table row from the pairs of NAME
row() {
    local name=$1 label=$2 target=$3 ratios median herald zmq verdict
    ratios=$(while read -r h z; do ratio "$h" "$z"; echo; done <"$WORK/$name")
    median=$(median <<<"$ratios")
    [[ $median = - ]] || median=$(printf "%.2f" "$median")
    herald=$(awk '{ print $1 }' "$WORK/$name" | median)
    zmq=$(awk '{ print $2 }' "$WORK/$name" | median)
    verdict=$(awk -v m="$median" -v t="$target" 'BEGIN { if (m == "-") print "-"; else if (m + 0 >= t) print "**met**"; else print "missed" }')
    echo "| $label | $herald | $zmq | $(tr '\n' ' ' <<<"$ratios" | sed 's/ *$//') | $median× | $verdict |"
}

echo "### Paired with raw ZeroMQ (ABBA order, $PAIRS pairs, ratio within each pair)"
echo
echo "| target (issue 4) | Herald, median | raw ZeroMQ, median | Herald / raw ZeroMQ, pair by pair | median ratio | verdict |"
echo "|---|---:|---:|---|---:|---|"
row w1 "W1 per sub ≥ 90 % of raw ZeroMQ HWM 0, window $WINDOW, $N1 events" 0.9
row w2 "W2 --fsync never ≥ 80 % of raw ZeroMQ, window $WINDOW, $N2 events" 0.8
echo
echo "Each pair runs Herald (herald-bench, --fsync never) and raw ZeroMQ (bench-peers' zmq_bench,"
echo "HWM 0) back to back, Herald first in odd pairs; W1 counts the slower subscriber, W2 the events"
echo "processed. \"-\" = a failed run."
