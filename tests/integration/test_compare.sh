#!/usr/bin/env bash
# bench/compare.sh with Herald alone (no peers), small and fast: it runs
# every Herald row, the disk's sync floor and the stall watcher, prints
# one table with a figure in each Herald row and in the floor row, and
# keeps the table and the raw figures where RESULTS says, not in the tree.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

mkdir -p "$WORK/results"
# LAT_S over a second: the stall table counts the watcher's whole seconds
# inside a row; C locale: figures without digit grouping
LC_ALL=C PEERS="" RUNS=1 HERALD_PASSES=1 N1=2000 N2=1000 LAT_RATE=500 LAT_S=1.2 PAIRS=0 \
    RESULTS="$WORK/results" TMPDIR="$WORK" \
    bash "$ROOT/bench/compare.sh" "$(dirname "$BIN")" >"$WORK/compare.md" 2>"$WORK/compare.log" ||
    fail "compare.sh exited with $?: $(tail -n 3 "$WORK/compare.log")"
log "$(grep '^|' "$WORK/compare.md" | head -n 20)"

# The Herald table: thirteen rows (the last with every process on one
# CPU), each run ok, nothing lost or duplicated
rows=$(awk -F'|' '/^\| W[12] / && $12 + 0 == 0 && $4 + 0 > 0 && $5 ~ /^ 0 $/ && $6 ~ /^ 0 $/' \
    "$WORK/compare.md" | wc -l)
[ "$rows" = 13 ] || fail "$rows of 13 Herald rows complete with nothing lost"
grep -Eq '^\| W2 @ 500/s, --fsync always, every process on CPU [0-9]+ \|' "$WORK/compare.md" ||
    fail "no one-CPU latency row"
# The floor: a number in its row and the medians in its note
grep -Eq '^\| \(no target\) the disk alone @ 500/s: .* \| [0-9]+(\.[0-9])? µs \|' "$WORK/compare.md" ||
    fail "no floor figure: $(grep 'disk alone' "$WORK/compare.md")"
grep -Eq 'Median over the runs: p50 [0-9.]+ µs, p99 [0-9.]+ µs' "$WORK/compare.md" || fail "no floor note"
# and again with wake-ups between two CPUs beside it (WAKE_RATE defaults to
# LAT_RATE), with its own row, note and stall figure
if [ "$(nproc)" -ge 2 ]; then
    grep -Eq '^\| \(no target\) the disk alone @ 500/s, 500 wake-up round trips/s between two CPUs beside it, p99 \| [0-9]+(\.[0-9])? µs \|' \
        "$WORK/compare.md" || fail "no floor figure with wake-ups: $(grep 'wake-up' "$WORK/compare.md")"
    grep -Eq '^thread on another and waits for its answer, [0-9]+ round trips/s made' "$WORK/compare.md" ||
        fail "no note on the floor with wake-ups"
    grep -Eq '^\| the disk alone @ 500/s, 500 wake-up round trips/s beside it \(no broker\) \| [0-9.]+ ms / [0-9.]+ \|' \
        "$WORK/compare.md" || fail "no stall figure for the floor with wake-ups"
    grep -q '^floor-wake sync floor: 500 events/s.*; beside [0-9]* wake-up round trips/s' \
        "$WORK"/results/compare-*-raw.txt || fail "no raw floor line with wake-ups"
fi
# The stall table covers Herald's latency rows
grep -Eq '^\| Herald W2 @ 500/s, --fsync always \| [0-9.]+ ms / [0-9.]+ \|' "$WORK/compare.md" ||
    fail "no stall figure for the latency row"
grep -Eq '^\| Herald W2 @ 500/s, --fsync always, every process on CPU [0-9]+ \| [0-9.]+ ms / [0-9.]+ \|' \
    "$WORK/compare.md" || fail "no stall figure for the one-CPU latency row"
grep -Eq '^\| the disk alone @ 500/s \(no broker\) \| [0-9.]+ ms / [0-9.]+ \|' "$WORK/compare.md" ||
    fail "no stall figure for the floor"
# Kept where asked, and the raw figures hold every row's JSON
ls "$WORK"/results/compare-*Z.md >/dev/null 2>&1 || fail "no table in RESULTS"
[ -f "$WORK/results/latest.md" ] || fail "no latest.md in RESULTS"
[ "$(grep -c '^herald ' "$WORK"/results/compare-*-raw.txt)" = 13 ] || fail "not thirteen raw Herald rows"
grep -q '^floor sync floor: 500 events/s' "$WORK"/results/compare-*-raw.txt || fail "no raw floor line"
log "ok"
