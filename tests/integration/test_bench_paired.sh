#!/usr/bin/env bash
# bench/paired.sh: Herald and raw ZeroMQ in alternating pairs. Two short
# pairs per workload give a table row each, with every pair's ratio, their
# median and a verdict against the target that agrees with the median.
# Skipped where ../shared/bench-peers (the raw ZeroMQ clients) is absent.
source "$(dirname "$0")/lib.sh"
need_bench_peers

PAIRS=2 N1=20000 N2=10000 PEERS_SRC="$PEERS_SRC" TMPDIR="$WORK" \
    bash "$ROOT/bench/paired.sh" "$(dirname "$BIN")" >"$WORK/paired.md" 2>"$WORK/paired.log" ||
    fail "paired.sh exited with $?: $(tail -n 3 "$WORK/paired.log")"
log "$(cat "$WORK/paired.md")"
grep -q "ABBA order, 2 pairs" "$WORK/paired.md" || fail "no heading"
[ "$(grep -c "pair [12]: herald [0-9]*, raw ZeroMQ [0-9]*" "$WORK/paired.log")" = 4 ] ||
    fail "expected 4 completed pairs: $(cat "$WORK/paired.log")"

# check_row PREFIX TARGET: the row's two ratios, their mean (the median of
# two) and the verdict
check_row() {
    local line ratios median verdict expected
    line=$(grep "^| $1" "$WORK/paired.md") || fail "no row for $1"
    ratios=$(awk -F'|' '{ print $5 }' <<<"$line")
    median=$(awk -F'|' '{ gsub(/[ ×]/, "", $6); print $6 }' <<<"$line")
    verdict=$(awk -F'|' '{ gsub(/ /, "", $7); print $7 }' <<<"$line")
    read -r a b extra <<<"$ratios"
    [[ $a =~ ^[0-9]+\.[0-9]{2}$ && $b =~ ^[0-9]+\.[0-9]{2}$ && -z $extra ]] || fail "ratios '$ratios' in: $line"
    awk -v a="$a" -v b="$b" -v m="$median" 'BEGIN { d = (a + b) / 2 - m; exit !(d < 0.006 && d > -0.006) }' ||
        fail "median $median of $a and $b"
    expected=missed
    awk -v m="$median" -v t="$2" 'BEGIN { exit !(m >= t) }' && expected="**met**"
    [ "$verdict" = "$expected" ] || fail "verdict $verdict for $median against $2"
}
check_row "W1 per sub ≥ 90 % of raw ZeroMQ" 0.9
check_row "W2 --fsync never ≥ 80 % of raw ZeroMQ" 0.8
log "ok"
