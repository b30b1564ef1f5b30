#!/usr/bin/env bash
# What Herald's guarantees cost in W1, against raw ZeroMQ, same session.
# Builds a copy of this commit with bench/ablation.patch applied: three
# environment switches that drop, for measurement only, the log's writes
# into the page cache (HD_ABLATE_LOG_WRITE), the dedup window's look-ups
# and inserts (HD_ABLATE_DEDUP) and the records' CRC (HD_ABLATE_CRC).
# A broker built so is not a broker: nothing it confirms is stored. The
# switches are read once per process; unset, the build is this commit's.
# Then runs, round after round, raw ZeroMQ's W1 (../shared/bench-peers,
# HWM 0) and Herald's W1 with each set of switches, one system at a time,
# and prints the medians with each row's ratio to raw ZeroMQ. Where the
# ablated rows land says how much of the gap the guarantees are.
#
#   bench/ablation.sh                 (ROUNDS=5 N=1000000 WINDOW=1000)
#
# Environment: ROUNDS, N (W1 events per run), WINDOW (Herald's publisher
# window), PEERS_SRC (default ../shared/bench-peers; without it the raw
# ZeroMQ row is left out), KEEP=1 keeps the ablated build's directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-5}
N=${N:-1000000}
WINDOW=${WINDOW:-1000}
PEERS_SRC=${PEERS_SRC:-$ROOT/../shared/bench-peers}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald-ablation.XXXXXX")
[[ ${KEEP:-0} = 1 ]] || trap 'rm -rf "$WORK"' EXIT
command -v jq >/dev/null || { echo "ablation.sh needs jq" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# The ablated build: this commit's tree (committed files only), patched
log "building the ablated copy in $WORK/src"
mkdir -p "$WORK/src"
git -C "$ROOT" archive HEAD | tar -x -C "$WORK/src"
(cd "$WORK/src" && patch -p1 -s <"$ROOT/bench/ablation.patch")
cmake -S "$WORK/src" -B "$WORK/src/build" -DCMAKE_BUILD_TYPE=Release >"$WORK/build.log" 2>&1
cmake --build "$WORK/src/build" --target herald-broker herald-bench -j 2 >>"$WORK/build.log" 2>&1 ||
    { tail -n 20 "$WORK/build.log" >&2; exit 1; }
HB="$WORK/src/build/bin/herald-bench"

# shellcheck source=bench/raw_zmq.sh
source "$ROOT/bench/raw_zmq.sh"
ZMQ=""
if [[ -d "$PEERS_SRC/src" ]]; then
    raw_zmq_build "$PEERS_SRC" || exit 1
    ZMQ=1
else
    log "no peer harness at $PEERS_SRC: no raw ZeroMQ row"
fi

# One Herald W1 run with the given switches set; prints "rate cpu broker_cpu"
herald_w1() {
    local json
    json=$(env "$@" "$HB" --workload w1 --events "$N" --fsync never --window "$WINDOW" \
        --json --quiet 2>/dev/null) || { echo "- - -"; return; }
    jq -r '.w1.runs[0] | "\(.recv_rate | floor) \(.cpu_us_per_event) \(.broker_cpu_us_per_event)"' \
        <<<"$json"
}

ROWS=(herald ablate-write ablate-dedup ablate-write+dedup ablate-write+dedup+crc)
switches() {
    case $1 in
    herald) echo "HERALD_ABLATION=none" ;;
    ablate-write) echo "HD_ABLATE_LOG_WRITE=1" ;;
    ablate-dedup) echo "HD_ABLATE_DEDUP=1" ;;
    ablate-write+dedup) echo "HD_ABLATE_LOG_WRITE=1 HD_ABLATE_DEDUP=1" ;;
    ablate-write+dedup+crc) echo "HD_ABLATE_LOG_WRITE=1 HD_ABLATE_DEDUP=1 HD_ABLATE_CRC=1" ;;
    esac
}
for r in $(seq 1 "$ROUNDS"); do
    if [[ -n $ZMQ ]]; then
        line=$(raw_zmq_run fanout "$N" 2 | awk '{print $1}') || line=-
        echo "$line" >>"$WORK/zmq"
        log "round $r raw-zeromq: $line"
    fi
    for row in "${ROWS[@]}"; do
        # shellcheck disable=SC2046 # the switches are words
        line=$(herald_w1 $(switches "$row"))
        echo "$line" >>"$WORK/$row"
        log "round $r $row: $line"
    done
done

ZMQ_RATE=$([[ -n $ZMQ ]] && median <"$WORK/zmq" || echo -)
echo
echo "W1 fan-out, 1 publisher -> broker -> 2 subscribers, $N events, --fsync never,"
echo "window $WINDOW; medians of $ROUNDS rounds ($(nproc) cores), $(git -C "$ROOT" describe --always --dirty)"
echo
echo "| row | switches | events/s (slower sub) | vs raw ZeroMQ | CPU us/event | broker CPU us/event |"
echo "|---|---|---:|---:|---:|---:|"
[[ -n $ZMQ ]] && echo "| raw ZeroMQ XSUB/XPUB, HWM 0 | - | $ZMQ_RATE | 1.00 | - | - |"
for row in "${ROWS[@]}"; do
    rate=$(awk '{print $1}' "$WORK/$row" | median)
    cpu=$(awk '{print $2}' "$WORK/$row" | median)
    broker=$(awk '{print $3}' "$WORK/$row" | median)
    echo "| $row | $(switches "$row") | $rate | $(ratio "$rate" "$ZMQ_RATE") | $cpu | $broker |"
done
