#!/usr/bin/env bash
# Segments written ahead, end to end: the broker prepares the next segment
# file with zeros, the log writes into it, a kill -9 leaves zeros after the
# last records which the restart cuts without calling them damage, every
# confirmed event is there and the log goes on; a clean stop leaves records
# only; --prepare-segments=false and --fsync never prepare nothing.
source "$(dirname "$0")/lib.sh"

SEG=256K
payload=$(head -c 500 /dev/zero | tr '\0' 'p')
published=0
# One event at a time until the log has begun a segment in a prepared file
# (a fresh log starts one as soon as the thread has made it)
publish_and_check_prepared() {
    "$TBIN/hd_test_client" publish --broker "$ROUTER" --type p.x --count 1 \
        --id-prefix "a$published-" --payload "$payload" >/dev/null || fail "publish"
    published=$((published + 1))
    [ "$(stat .log_segments_prepared)" -ge 1 ]
}
start_broker --segment-size $SEG
wait_for "a segment begun in a file written ahead" 20 publish_and_check_prepared
read -r first size end < <("$TBIN/hd_logtool" segments "$WORK/data/log" | tail -n 1)
[ "$size" = 262144 ] && [ "$end" -lt "$size" ] ||
    fail "the newest segment is not the prepared file ($size bytes, data to $end)"

# Enough for several rolls: full segments are cut to their records
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type p.x --count 2000 --id-prefix b- \
    --payload "$payload" >/dev/null || fail "publish more"
confirmed=$(($(stat .log_next_seq) - 1))
[ "$confirmed" = $((published + 2000)) ] || fail "$((published + 2000)) published, log holds $confirmed"
while read -r path size end; do
    [ "$size" = "$end" ] || fail "full segment $path keeps $((size - end)) bytes of zeros"
done < <("$TBIN/hd_logtool" segments "$WORK/data/log" | head -n -1)
# Every segment this broker began went into a prepared file or was appended
segments=$("$TBIN/hd_logtool" segments "$WORK/data/log" | wc -l)
prepared=$(stat .log_segments_prepared)
appended=$(stat .log_segments_appended)
[ "$((prepared + appended))" = "$segments" ] ||
    fail "$segments segments, $prepared prepared and $appended appended"
log "$segments segments: $prepared began in a prepared file, $appended appended"

kill_broker
read -r last size end < <("$TBIN/hd_logtool" segments "$WORK/data/log" | tail -n 1)
log "killed with $((size - end)) bytes written ahead after the last records"
start_broker --segment-size $SEG
[ "$(($(stat .log_next_seq) - 1))" = "$confirmed" ] || fail "events lost in the crash"
if [ "$end" -lt "$size" ]; then
    grep -q "unused bytes written ahead" "$WORK/broker.log" || fail "zeros cut without a word"
fi
grep -q "log recovery removed" "$WORK/broker.log" && fail "zeros written ahead reported as damage"
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type p.x --count 10 --id-prefix c- \
    --payload "$payload" >/dev/null || fail "publish after the restart"
[ "$(stat .log_next_seq)" = $((confirmed + 11)) ] || fail "seqs do not continue"

# A clean stop: records only, no spare file left behind
kill -TERM "$BROKER_PID"
wait "$BROKER_PID" 2>/dev/null || true
while read -r path size end; do
    [ "$size" = "$end" ] || fail "$path keeps $((size - end)) bytes of zeros after a clean stop"
done < <("$TBIN/hd_logtool" segments "$WORK/data/log")
[ -z "$(ls "$WORK/data/log" | grep -v '\.seg$')" ] || fail "left behind: $(ls "$WORK/data/log")"
"$TBIN/hd_logtool" verify "$WORK/data/log" >/dev/null || fail "the log does not verify"

for off in "--prepare-segments=false" "--fsync never"; do
    start_broker --segment-size $SEG $off
    "$TBIN/hd_test_client" publish --broker "$ROUTER" --type p.x --count 1000 --id-prefix "d$RANDOM-" \
        --payload "$payload" >/dev/null || fail "publish with $off"
    [ "$(stat .log_segments_prepared)" = 0 ] && [ "$(stat .log_spare_bytes)" = 0 ] ||
        fail "$off prepared segments"
    [ "$(stat .log_segments_appended)" = 0 ] || fail "$off counted appends as late"
    kill_broker
done
log "ok: $confirmed events across a kill -9 with segments written ahead"
