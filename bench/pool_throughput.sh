#!/usr/bin/env bash
# W2-shaped throughput of one Herald pool: 1 publisher -> broker -> 4
# competing workers, 128-byte events, one ACK per event (batched by the
# library), TCP loopback, in-memory store. Prints events/s per run and the
# median. Compare with ../shared/bench-peers (raw ZeroMQ W2 row) run in the
# same session: this machine is shared and noisy, only ratios mean anything.
#
#   bench/pool_throughput.sh [BUILD_DIR] [EVENTS] [RUNS] [WORKERS]
#   BROKER_ARGS="--fsync never" bench/pool_throughput.sh ...   # extra broker flags
set -euo pipefail
BUILD=${1:-build}
N=${2:-100000}
RUNS=${3:-3}
WORKERS=${4:-4}
BIN="$BUILD/bin"
TBIN="$BUILD/tests"
PORT=${BENCH_PORT:-7300}
ROUTER="tcp://127.0.0.1:$PORT"
XPUB="tcp://127.0.0.1:$((PORT + 1))"
WORK=$(mktemp -d)
payload=$(head -c 128 /dev/zero | tr '\0' 'x')
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

acked() { "$BIN/herald" stat --json --broker "$ROUTER" --timeout 2s | grep -o '"acked":[0-9]*' | cut -d: -f2; }

rates=()
for run in $(seq 1 "$RUNS"); do
    # shellcheck disable=SC2086 # BROKER_ARGS is a list of flags
    "$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --max-pending 10000000 \
        --data-dir "$WORK/data-$run" ${BROKER_ARGS:-} >"$WORK/broker.log" 2>&1 &
    broker=$!
    until "$BIN/herald" stat --json --broker "$ROUTER" --timeout 1s >/dev/null 2>&1; do sleep 0.05; done
    workers=()
    for w in $(seq 1 "$WORKERS"); do
        "$TBIN/hd_test_client" work --broker "$ROUTER" --pool bench --filter bench. --credit 100 \
            --log /dev/null >/dev/null 2>&1 &
        workers+=($!)
    done
    until "$BIN/herald" stat --json --broker "$ROUTER" --timeout 1s 2>/dev/null |
        grep -q "\"workers\":$WORKERS"; do sleep 0.05; done
    start=$(date +%s.%N)
    "$TBIN/hd_test_client" publish --broker "$ROUTER" --type bench.w2 --count "$N" --id-prefix "r$run-" \
        --payload "$payload" --window 256 >"$WORK/pub.out"
    # Poll rarely: polling is load on a 2-core machine
    until [ "$(acked)" = "$N" ]; do sleep 0.1; done
    end=$(date +%s.%N)
    rate=$(echo "$N / ($end - $start)" | bc)
    rates+=("$rate")
    echo "run $run: $N events through $WORKERS workers in $(echo "$end - $start" | bc) s = $rate events/s"
    kill "${workers[@]}" "$broker" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$WORK/data-$run"
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
echo "median: $median events/s (runs: ${rates[*]})"
