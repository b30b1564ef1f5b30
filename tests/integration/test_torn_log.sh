#!/usr/bin/env bash
# Torn writes and corruption, end to end: a log whose last segment is torn at
# random points keeps every complete record and serves on (a segment written
# ahead ends in zeros: its torn write is records zeroed before the zeros, a
# segment appended to is cut short); corruption in the
# middle of the log stops the broker with a clear message unless
# --skip-corrupt, which starts it and reports the loss.
source "$(dirname "$0")/lib.sh"

# Fixed cuts (a seeded RANDOM): a cut that happened to fall on a record
# boundary would tear nothing and leave nothing to report
RANDOM=4242
start_broker --segment-size 32K
payload=$(head -c 200 /dev/zero | tr '\0' 't')
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type t.x --count 600 --id-prefix t- \
    --payload "$payload" >/dev/null || fail "publish"
count=$(($(stat .log_next_seq) - 1))
for round in 1 2 3; do
    kill_broker
    read -r last size end < <("$TBIN/hd_logtool" segments "$WORK/data/log" | tail -n 1)
    cut=$((RANDOM % 900 + 1))
    [ $cut -lt $((end - 16)) ] || cut=$((end / 3))
    if [ "$end" -lt "$size" ]; then
        dd if=/dev/zero of="$last" bs=1 seek=$((end - cut)) count=$cut conv=notrunc 2>/dev/null
        log "round $round: zeroed $cut bytes before $((size - end)) written ahead"
    else
        truncate -s $((size - cut)) "$last"
        log "round $round: cut $cut bytes"
    fi
    start_broker --segment-size 32K
    now=$(($(stat .log_next_seq) - 1))
    [ "$now" -lt "$count" ] || fail "round $round: cutting $cut bytes lost no record ($now of $count)"
    [ "$now" -ge $((count - cut / 200 - 1)) ] || fail "round $round: lost more than the cut ($now of $count)"
    grep -qi "torn\|truncat" "$WORK/broker.log" || fail "round $round: truncation not reported"
    # the log goes on from there
    "$TBIN/hd_test_client" publish --broker "$ROUTER" --type t.x --count 10 --id-prefix r$round- \
        --payload "$payload" >/dev/null || fail "publish after recovery"
    [ "$(stat .log_next_seq)" = $((now + 11)) ] || fail "seqs do not continue after recovery"
    count=$((now + 10))
done

# Corruption inside an older segment: refuse, then --skip-corrupt
kill_broker
first=$(ls "$WORK/data/log/"*.seg | sort | head -n 1)
printf '\xde\xad\xbe\xef\xde\xad\xbe\xef' | dd of="$first" bs=1 seek=1000 conv=notrunc 2>/dev/null
if "$BIN/herald-broker" --router "$ROUTER" --xpub "$XPUB" --data-dir "$WORK/data" \
    >"$WORK/refused.log" 2>&1; then
    fail "the broker started on a log corrupt in the middle"
fi
grep -qi "corrupt\|crc" "$WORK/refused.log" || fail "no clear message: $(cat "$WORK/refused.log")"
start_broker --segment-size 32K --skip-corrupt
grep -qi "skipped" "$WORK/broker.log" || fail "the loss was not reported"
log "ok: $(grep -i 'skipped' "$WORK/broker.log" | tail -n 1 | cut -c1-150)"
