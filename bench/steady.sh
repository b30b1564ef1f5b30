#!/usr/bin/env bash
# W1 offered as an even stream, Herald against raw ZeroMQ: what each
# delivers and what an event costs the machine at fixed offered rates. The
# issue's rows are full-speed bursts and 5 000/s; a steady stream in
# between is where each event may leave the publisher alone (see
# docs/PERFORMANCE.md, "steady streams").
#
#   bench/steady.sh [BUILD_DIR]      (default: build)
#
# Prints a markdown table on stdout, progress on stderr. Herald runs
# herald-bench --rate (--fsync never, its library's default window);
# raw ZeroMQ runs bench-peers' zmq_bench with BENCH_RATE. The two
# alternate which goes first, rate by rate.
#
# Environment: RATES="20000 50000 100000 200000" (events/s), DURATION=3
# (seconds a rate is offered), WINDOW=1000, PEERS_SRC (../shared/bench-peers).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/raw_zmq.sh
source "$ROOT/bench/raw_zmq.sh"
raw_zmq_setup steady "${1:-}"
RATES=${RATES:-20000 50000 100000 200000}
DURATION=${DURATION:-3}
WINDOW=${WINDOW:-1000}

[[ $DURATION =~ ^[1-9][0-9]*$ ]] || { echo "DURATION must be whole seconds, at least 1" >&2; exit 1; }
for rate in $RATES; do
    [[ $rate =~ ^[1-9][0-9]*$ ]] || { echo "RATES must be whole numbers of events/s: '$rate'" >&2; exit 1; }
done

# herald_steady RATE: "delivered cpu_us_per_event p50_us p99_us", or "- - - -"
herald_steady() {
    local json
    json=$("$HB" --workload w1 --rate "$1" --duration "$DURATION" --fsync never \
        --window "$WINDOW" --quiet --json 2>/dev/null) || { echo "- - - -"; return; }
    jq -r '.w1 | "\(.sub_rate) \(.cpu_us_per_event) \(.p50_us) \(.p99_us)"' <<<"$json"
}

# zmq_steady RATE: "delivered cpu_us_per_event", or "- -"
zmq_steady() {
    local line
    line=$(RAW_ZMQ_RATE=$1 raw_zmq_run fanout $(($1 * DURATION)) 2) || { echo "- -"; return; }
    awk '{ print $1, $2 }' <<<"$line"
}

echo "### W1 as an even stream: Herald and raw ZeroMQ at fixed offered rates"
echo
echo "| offered/s | Herald delivered/s | Herald CPU µs/event | Herald p50 µs | Herald p99 µs | raw ZeroMQ delivered/s | raw ZeroMQ CPU µs/event | delivered, Herald / raw ZeroMQ |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
index=0
for rate in $RATES; do
    if ((index++ % 2 == 0)); then
        herald=$(herald_steady "$rate")
        zmq=$(zmq_steady "$rate")
    else
        zmq=$(zmq_steady "$rate")
        herald=$(herald_steady "$rate")
    fi
    read -r h_rate h_cpu h_p50 h_p99 <<<"$herald"
    read -r z_rate z_cpu <<<"$zmq"
    echo "[$(date +%H:%M:%S)] $rate/s: herald $h_rate ($h_cpu µs/event), raw ZeroMQ $z_rate ($z_cpu µs/event)" >&2
    echo "| $rate | $h_rate | $h_cpu | $h_p50 | $h_p99 | $z_rate | $z_cpu | $(ratio "$h_rate" "$z_rate")× |"
done
echo
echo "Each rate is offered for $DURATION s by one publisher to two subscribers (128-byte events);"
echo "delivered/s counts the slower subscriber; CPU covers every process of the run (broker and"
echo "clients). Herald: herald-bench --rate, --fsync never, window $WINDOW; raw ZeroMQ: bench-peers'"
echo "zmq_bench, XSUB/XPUB, HWM 0. \"-\" = a failed run."
