#!/usr/bin/env bash
# bench/steady.sh: W1 offered as an even stream to Herald and to raw
# ZeroMQ. Two low rates give a row each with every column filled, both
# systems deliver about what was offered, and the ratio column agrees with
# the two rates. Skipped where ../shared/bench-peers is absent.
source "$(dirname "$0")/lib.sh"
need_bench_peers

RATES="1000 2000" DURATION=1 PEERS_SRC="$PEERS_SRC" TMPDIR="$WORK" \
    bash "$ROOT/bench/steady.sh" "$(dirname "$BIN")" >"$WORK/steady.md" 2>"$WORK/steady.log" ||
    fail "steady.sh exited with $?: $(tail -n 3 "$WORK/steady.log")"
log "$(cat "$WORK/steady.md")"
grep -q "^### W1 as an even stream" "$WORK/steady.md" || fail "no heading"

# check_row RATE: numbers in every column; at these rates both keep up
# (at least half of the offered rate, allowing for a stall at the end of a
# one-second run); the ratio is Herald's delivered over raw ZeroMQ's
check_row() {
    local line
    line=$(grep "^| $1 |" "$WORK/steady.md") || fail "no row for $1/s"
    awk -F'|' -v offered="$1" '{
        for (i = 3; i <= 8; i++) { v = $i; gsub(/ /, "", v); if (v !~ /^[0-9]+(\.[0-9]+)?$/) { print "column " i " is \"" v "\""; exit 1 } }
        h = $3 + 0; z = $7 + 0; r = $9; gsub(/[ ×]/, "", r)
        if (h < offered / 2 || z < offered / 2) { print "delivered " h " and " z " of " offered; exit 1 }
        d = h / z - r; if (d > 0.006 || d < -0.006) { print "ratio " r " for " h " / " z; exit 1 }
    }' <<<"$line" >"$WORK/check.txt" || fail "row $1/s: $(cat "$WORK/check.txt"): $line"
}
check_row 1000
check_row 2000
log "ok"
