#!/usr/bin/env bash
# Broker memory with a large backlog waiting on disk, and restart time with
# that log: a pool with no workers holds EVENTS events of 128 bytes; the
# broker's resident memory is read from /proc after the publish and after a
# SIGKILL + restart.
#
#   bench/scale_backlog.sh [BUILD_DIR] [EVENTS]
set -euo pipefail
BUILD=${1:-build}
N=${2:-10000000}
BIN="$BUILD/bin"
TBIN="$BUILD/tests"
WORK=$(mktemp -d)
ROUTER="ipc://$WORK/router"
XPUB="ipc://$WORK/xpub"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
payload=$(head -c 128 /dev/zero | tr '\0' 'x')

start() {
    "$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --data-dir "$WORK/data" --fsync never \
        --max-pending 100000000 >>"$WORK/broker.log" 2>&1 &
    broker=$!
    until "$BIN/herald" stat --json --broker "$ROUTER" --timeout 1s >/dev/null 2>&1; do sleep 0.05; done
}
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$broker/status"; }
field() { "$BIN/herald" stat --json --broker "$ROUTER" | grep -o "\"$1\":[0-9]*" | cut -d: -f2; }

start
echo "idle broker: $(rss_mib) MiB resident"
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool backlog --filter "" >/dev/null
started=$(date +%s)
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type scale.x --count "$N" --id-prefix s- \
    --payload "$payload" --window 1000 --timeout 3600s
echo "published $N in $(($(date +%s) - started)) s; pool pending $(field pending); log $(du -sh "$WORK/data/log" | cut -f1)"
echo "broker with a backlog of $N events: $(rss_mib) MiB resident"
kill -9 "$broker"
wait "$broker" 2>/dev/null || true
t0=$(date +%s%N)
start
echo "restart with $N events in the log: answering after $((($(date +%s%N) - t0) / 1000000)) ms (recovery_ms $(field recovery_ms)); $(rss_mib) MiB resident; pending $(field pending)"
