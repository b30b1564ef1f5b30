#!/usr/bin/env bash
# Broker memory and CPU with many connected idle workers: WORKERS
# connections (hd_probe idle-workers: JOIN, then heartbeats only, as an
# idle worker sends) spread over POOLS pools, over TCP loopback. Resident
# memory from /proc before and with the workers; CPU as the broker's
# utime+stime over a 10 s window once all have joined.
#
#   bench/scale_idle.sh [BUILD_DIR] [WORKERS] [POOLS]
set -euo pipefail
BUILD=${1:-build}
WORKERS=${2:-1000}
POOLS=${3:-100}
BIN="$BUILD/bin"
TBIN="$BUILD/tests"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
port=$((20000 + RANDOM % 20000))
ROUTER="tcp://127.0.0.1:$port"
XPUB="tcp://127.0.0.1:$((port + 1))"

"$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --data-dir "$WORK/data" --fsync never \
    >"$WORK/broker.log" 2>&1 &
broker=$!
until "$BIN/herald" stat --json --broker "$ROUTER" --timeout 1s >/dev/null 2>&1; do sleep 0.05; done
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$broker/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$broker/stat"; }
field() { "$BIN/herald" stat --json --broker "$ROUTER" | grep -o "\"$1\":[0-9]*" | head -1 | cut -d: -f2; }
echo "broker idle, no workers: $(rss_mib) MiB resident"

"$TBIN/hd_probe" idle-workers --broker "$ROUTER" --count "$WORKERS" --pools "$POOLS" \
    --seconds 60 >"$WORK/probe.log" 2>&1 &
probe=$!
for _ in $(seq 300); do grep -q "joined=$WORKERS" "$WORK/probe.log" && break; sleep 0.1; done
grep -q "joined=$WORKERS" "$WORK/probe.log" || { echo "not all workers joined"; cat "$WORK/probe.log"; exit 1; }
sleep 2 # let the joins' allocations settle before measuring
hz=$(getconf CLK_TCK)
t0=$(cpu_ticks)
sleep 10
t1=$(cpu_ticks)
pools=$("$BIN/herald" stat --json --broker "$ROUTER" | grep -o '"name":"idle-[0-9]*"' | sort -u | wc -l)
echo "$WORKERS idle workers in $pools pools (sessions $(field sessions)): $(rss_mib) MiB resident," \
    "CPU $(((t1 - t0) * 1000 / hz)) ms over 10 s ($(echo "scale=2; ($t1 - $t0) * 100 / $hz / 10" | bc) % of a core)"
kill "$probe" 2>/dev/null || true
