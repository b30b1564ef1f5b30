#!/usr/bin/env bash
# bench/ablation.patch still applies to this tree exactly (no fuzz), the
# patched broker builds, and each of its switches does what
# bench/ablation.sh says it measures: HD_ABLATE_LOG_WRITE leaves nothing in
# the log for a restart to find, HD_ABLATE_DEDUP lets the same (source, id)
# through twice, HD_ABLATE_CRC writes records a restart refuses. Without
# switches the patched broker behaves as this commit's does.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

# The working tree's tracked files (or all of it outside git), patched
SRC="$WORK/src"
mkdir -p "$SRC"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    git -C "$ROOT" ls-files -z | (cd "$ROOT" && tar --null -T - -cf -) | tar -xf - -C "$SRC"
else
    (cd "$ROOT" && tar --exclude=./build -cf - .) | tar -xf - -C "$SRC"
fi
(cd "$SRC" && patch -p1 -F 0 --no-backup-if-mismatch <"$ROOT/bench/ablation.patch") >"$WORK/patch.log" 2>&1 ||
    fail "bench/ablation.patch does not apply: $(cat "$WORK/patch.log")"
cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release >"$WORK/build.log" 2>&1 &&
    cmake --build "$SRC/build" --target herald-broker -j 2 >>"$WORK/build.log" 2>&1 ||
    fail "the patched broker does not build: $(tail -n 20 "$WORK/build.log")"
ABLATED="$SRC/build/bin/herald-broker"

# run NAME SWITCHES...: the patched broker with the switches on a data dir
# of its own; the same 20 ids published twice; then a restart without
# switches. Sets RESULT to "duplicates recovered" (of the second publish,
# at the restart). Not run in a subshell: the brokers it starts stay in
# PIDS, so a failure half way still kills them.
run() {
    local name=$1
    shift
    local data="$WORK/data-$name"
    spawn "broker-$name" env "$@" "$ABLATED" --router "$ROUTER" --xpub "$XPUB" --data-dir "$data" \
        --fsync never
    local pid=$LAST_PID
    wait_for "the $name broker" 10 broker_answers
    "$BIN/herald" pub t x --count 20 --id same --broker "$ROUTER" --quiet >"$WORK/$name-1.out" ||
        fail "$name: first publish: $(cat "$WORK/$name-1.out")"
    "$BIN/herald" pub t x --count 20 --id same --broker "$ROUTER" --quiet >"$WORK/$name-2.out" ||
        fail "$name: second publish: $(cat "$WORK/$name-2.out")"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    spawn "restart-$name" "$ABLATED" --router "$ROUTER" --xpub "$XPUB" --data-dir "$data" \
        --fsync never
    pid=$LAST_PID
    wait_for "the $name broker's restart" 10 broker_answers
    local recovered
    recovered=$(stat .recovered_events)
    kill -9 "$pid"
    wait "$pid" 2>/dev/null || true
    RESULT="$(grep -o 'duplicates=[0-9]*' "$WORK/$name-2.out" | cut -d= -f2) $recovered"
}

run plain
[ "$RESULT" = "20 20" ] || fail "no switches: duplicates, recovered = $RESULT, expected 20 20"
run write HD_ABLATE_LOG_WRITE=1
[ "$RESULT" = "20 0" ] || fail "HD_ABLATE_LOG_WRITE: duplicates, recovered = $RESULT, expected 20 0"
run dedup HD_ABLATE_DEDUP=1
[ "$RESULT" = "0 40" ] || fail "HD_ABLATE_DEDUP: duplicates, recovered = $RESULT, expected 0 40"
run crc HD_ABLATE_CRC=1
[ "${RESULT#* }" = 0 ] || fail "HD_ABLATE_CRC: recovered = ${RESULT#* }, expected 0 (no record passes its CRC)"
log "ok"
