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

# The Herald table: twelve rows, each run ok, nothing lost or duplicated
rows=$(awk -F'|' '/^\| W[12] / && $12 + 0 == 0 && $4 + 0 > 0 && $5 ~ /^ 0 $/ && $6 ~ /^ 0 $/' \
    "$WORK/compare.md" | wc -l)
[ "$rows" = 12 ] || fail "$rows of 12 Herald rows complete with nothing lost"
# The floor: a number in its row and the medians in its note
grep -Eq '^\| \(no target\) the disk alone @ 500/s: .* \| [0-9]+(\.[0-9])? µs \|' "$WORK/compare.md" ||
    fail "no floor figure: $(grep 'disk alone' "$WORK/compare.md")"
grep -Eq 'Median over the runs: p50 [0-9.]+ µs, p99 [0-9.]+ µs' "$WORK/compare.md" || fail "no floor note"
# The stall table covers Herald's latency rows
grep -Eq '^\| Herald W2 @ 500/s, --fsync always \| [0-9.]+ ms / [0-9.]+ \|' "$WORK/compare.md" ||
    fail "no stall figure for the latency row"
# Kept where asked, and the raw figures hold every row's JSON
ls "$WORK"/results/compare-*Z.md >/dev/null 2>&1 || fail "no table in RESULTS"
[ -f "$WORK/results/latest.md" ] || fail "no latest.md in RESULTS"
[ "$(grep -c '^herald ' "$WORK"/results/compare-*-raw.txt)" = 12 ] || fail "not twelve raw Herald rows"
grep -q '^floor sync floor: 500 events/s' "$WORK"/results/compare-*-raw.txt || fail "no raw floor line"
log "ok"
