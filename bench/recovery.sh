#!/usr/bin/env bash
# Recovery time of a broker whose log holds EVENTS events: publish them
# (with --fsync never, to save time), kill the broker with SIGKILL, start it
# again and read how long recovery took (log scan, pool state, dedup
# window rebuild) from `herald stat`. Median of RUNS restarts.
#
#   bench/recovery.sh [BUILD_DIR] [EVENTS] [RUNS]
set -euo pipefail
BUILD=${1:-build}
N=${2:-1000000}
RUNS=${3:-3}
BIN="$BUILD/bin"
TBIN="$BUILD/tests"
WORK=$(mktemp -d)
ROUTER="ipc://$WORK/router"
XPUB="ipc://$WORK/xpub"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
payload=$(head -c 128 /dev/zero | tr '\0' 'x')

start() {
    "$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --data-dir "$WORK/data" "$@" \
        >>"$WORK/broker.log" 2>&1 &
    broker=$!
    until "$BIN/herald" stat --json --broker "$ROUTER" --timeout 1s >/dev/null 2>&1; do sleep 0.02; done
}
stat_field() { "$BIN/herald" stat --json --broker "$ROUTER" | grep -o "\"$1\":[0-9]*" | cut -d: -f2; }

start --fsync never
"$BIN/herald" stat --broker "$ROUTER" >/dev/null
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool backlog --filter "" >/dev/null
echo "publishing $N events of 128 bytes ..."
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type bench.recovery --count "$N" \
    --id-prefix e- --payload "$payload" --window 1000 --timeout 600s
times=()
for run in $(seq 1 "$RUNS"); do
    kill -9 "$broker"
    wait "$broker" 2>/dev/null || true
    started=$(date +%s%N)
    start
    ready_ms=$((($(date +%s%N) - started) / 1000000))
    recovery=$(stat_field recovery_ms)
    events=$(stat_field recovered_events)
    echo "restart $run: $events events recovered in ${recovery} ms (process start to answering: ${ready_ms} ms), log $(du -sh "$WORK/data/log" | cut -f1)"
    times+=("$recovery")
done
median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((RUNS + 1) / 2))p")
echo "median recovery: ${median} ms for $N events (pool 'backlog' holds them all; dedup window rebuilt)"
grep -o 'recovered [0-9]* pools.*' "$WORK/broker.log" | tail -n 1
