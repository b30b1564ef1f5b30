#!/usr/bin/env bash
# One broker under sustained load. herald-bench starts a fresh broker for
# every run; a broker in service has been running for hours, its log is
# gigabytes long and its dedup window full. This runs RUNS herald-bench
# runs of EVENTS events back to back against one broker and prints, per
# run: the rate, the broker's CPU per event (Stats cpu_user_us +
# cpu_system_us over the run), its share of the run busy, its resident
# memory, and how much of its log the OS page cache holds (fincore).
#
#   bench/sustained.sh [BUILD_DIR] [RUNS] [EVENTS]
#   env: WORKLOAD=w1|w2 (w1)  FSYNC=never|always (never)  WINDOW=1000
#        BROKER_ARGS="..."  extra herald-broker flags
set -euo pipefail
BUILD=${1:-build}
RUNS=${2:-8}
EVENTS=${3:-1000000}
WORKLOAD=${WORKLOAD:-w1}
FSYNC=${FSYNC:-never}
WINDOW=${WINDOW:-1000}
BIN="$BUILD/bin"
WORK=$(mktemp -d)
ROUTER="ipc://$WORK/router"
XPUB="ipc://$WORK/xpub"
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT
for tool in jq fincore; do
    command -v "$tool" >/dev/null || { echo "sustained.sh: needs $tool" >&2; exit 2; }
done

# shellcheck disable=SC2086 # BROKER_ARGS is a list of flags
"$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --data-dir "$WORK/data" \
    --fsync "$FSYNC" ${BROKER_ARGS:-} >"$WORK/broker.log" 2>&1 &
broker=$!
deadline=$((SECONDS + 30))
until "$BIN/herald" stat --json --broker "$ROUTER" --timeout 1s >/dev/null 2>&1; do
    kill -0 "$broker" 2>/dev/null && ((SECONDS < deadline)) ||
        { echo "sustained.sh: broker did not start" >&2; cat "$WORK/broker.log" >&2; exit 1; }
    sleep 0.05
done
stats() { "$BIN/herald" stat --json --broker "$ROUTER"; }
cpu_us() { jq '.cpu_user_us + .cpu_system_us' <<<"$1"; }
rss_mib() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$broker/status"; }
# Page cache held by the log: the RES column of fincore, in bytes, summed
log_cached_mib() {
    fincore --bytes --noheadings --output RES "$WORK"/data/log/*.seg 2>/dev/null |
        awk '{sum += $1} END {printf "%.0f", sum / 1048576}'
}

echo "# one broker, $RUNS runs of $EVENTS $WORKLOAD events, --fsync $FSYNC, window $WINDOW${BROKER_ARGS:+, broker $BROKER_ARGS}"
echo "| run | events in log | msg/s | broker CPU µs/event | broker busy | broker RSS MiB | log MiB | log in page cache MiB |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
xpub_flag=()
[[ $WORKLOAD = w1 ]] && xpub_flag=(--xpub "$XPUB")
for run in $(seq 1 "$RUNS"); do
    before=$(stats)
    json=$("$BIN/herald-bench" --broker "$ROUTER" "${xpub_flag[@]}" --workload "$WORKLOAD" \
        --window "$WINDOW" --events "$EVENTS" --json --quiet 2>/dev/null) ||
        { echo "sustained.sh: run $run failed" >&2; exit 1; }
    after=$(stats)
    rate=$(jq -r --arg wl "$WORKLOAD" '.[$wl].runs[0].recv_rate | floor' <<<"$json")
    busy=$(jq -r --arg wl "$WORKLOAD" '.[$wl].runs[0].broker_busy // 0 | . * 100 | floor' <<<"$json")
    cpu=$(awk -v a="$(cpu_us "$before")" -v b="$(cpu_us "$after")" -v n="$EVENTS" \
        'BEGIN {printf "%.3f", (b - a) / n}')
    stored=$(jq .store_events <<<"$after")
    log_mib=$(du -sm "$WORK/data/log" | cut -f1)
    echo "| $run | $stored | $rate | $cpu | $busy % | $(rss_mib) | $log_mib | $(log_cached_mib) |"
done
