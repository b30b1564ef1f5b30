#!/usr/bin/env bash
# herald dlq ls|show|replay|purge against a real broker. A worker that fails
# every event sends them to the pool's DLQ as terminated, with its error;
# replayed entries are delivered again and acked by a good worker; purged
# ones are gone. A worker that NACKs everything exhausts max_deliver: the DLQ
# entry says max_deliver with 3 attempts. Broker refusals exit 1 with the
# reason; bad selections exit 2 without asking the broker.
source "$(dirname "$0")/lib.sh"

H="$BIN/herald"
dlq() { "$H" dlq "$@" --broker "$ROUTER" --timeout 5s; }
# dlq_count POOL: entries listed by dlq ls --json
dlq_count() { dlq ls "$1" --json | jq length; }
dlq_count_is() { [ "$(dlq_count "$1" 2>/dev/null)" = "$2" ]; }
# expect_exit CODE COMMAND...: run COMMAND, check its exit status, keep its stderr in $WORK/err
expect_exit() {
    local want=$1 got=0
    shift
    "$@" >"$WORK/out" 2>"$WORK/err" || got=$?
    [ "$got" = "$want" ] || fail "exit $got, not $want: $* ($(cat "$WORK/err"))"
}

start_broker --max-deliver 3 --backoff-initial 20ms --backoff-max 100ms

# --- terminated: a worker that fails every event
spawn bad "$TBIN/hd_test_client" work --broker "$ROUTER" --pool d --filter d. --credit 5 \
    --fail-every 1 --log "$WORK/bad.txt"
BAD=$LAST_PID
wait_for "failing worker" 10 workers_in d 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type d.x --count 10 --id-prefix f- \
    --payload "hello dlq" >/dev/null || fail "publish"
wait_for "10 entries in the DLQ" 20 dlq_count_is d 10
kill -TERM "$BAD"
wait_for "failing worker gone" 10 workers_in d 0

dlq ls d --json >"$WORK/ls.json" || fail "dlq ls --json"
[ "$(wc -l <"$WORK/ls.json")" = 1 ] || fail "dlq ls --json is not one line"
jq -e 'type == "array" and length == 10' "$WORK/ls.json" >/dev/null || fail "not an array of 10"
jq -e 'all(.[]; .reason == "terminated" and .attempts == 1 and .error == "failed by --fail-every"
        and .type == "d.x" and (.id | startswith("f-")) and .time_us > 0 and .seq > 0)' \
    "$WORK/ls.json" >/dev/null || fail "unexpected entries: $(cat "$WORK/ls.json")"
jq -e '[.[].seq] == ([.[].seq] | sort) and ([.[].id] | unique | length) == 10' "$WORK/ls.json" \
    >/dev/null || fail "entries not by seq, or ids repeated"
[ "$(pool_field d dlq)" = 10 ] || fail "stat says dlq=$(pool_field d dlq)"
mapfile -t SEQS < <(jq -r '.[].seq' "$WORK/ls.json")

# The table: a header and one row per entry, with the reason and the error
dlq ls d >"$WORK/ls.txt" || fail "dlq ls"
head -n 1 "$WORK/ls.txt" | grep -q 'SEQ.*ID.*TYPE.*REASON.*ATTEMPTS.*TIME.*ERROR' ||
    fail "table header: $(head -n 1 "$WORK/ls.txt")"
[ "$(grep -c ' terminated .*failed by --fail-every' "$WORK/ls.txt")" = 10 ] ||
    fail "table rows: $(cat "$WORK/ls.txt")"
# --from and --limit
[ "$(dlq ls d --json --limit 3 | jq length)" = 3 ] || fail "--limit 3"
[ "$(dlq ls d --json --from "${SEQS[5]}" | jq -c '[.[].seq]')" = \
    "$(printf '%s\n' "${SEQS[@]:5}" | jq -sc .)" ] || fail "--from ${SEQS[5]}"

# show: the entry, the envelope and the payload
dlq show d "${SEQS[0]}" --json >"$WORK/show.json" || fail "dlq show --json"
jq -e --argjson seq "${SEQS[0]}" '.seq == $seq and .reason == "terminated" and .attempts == 1
        and .error == "failed by --fail-every" and .event.seq == $seq and .event.id == .id
        and .event.type == "d.x" and .event.source == "hd_test_client"
        and .event.payload == "hello dlq"' "$WORK/show.json" >/dev/null ||
    fail "dlq show --json: $(cat "$WORK/show.json")"
dlq show d "${SEQS[0]}" >"$WORK/show.txt" || fail "dlq show"
grep -q 'terminated' "$WORK/show.txt" && grep -q '^hello dlq$' "$WORK/show.txt" &&
    grep -q "$(jq -r .id "$WORK/show.json")" "$WORK/show.txt" || fail "dlq show: $(cat "$WORK/show.txt")"

# Refusals: exit 1 with the reason; usage errors: exit 2
expect_exit 1 dlq ls nosuchpool
grep -q "no such pool 'nosuchpool'" "$WORK/err" || fail "ls of an unknown pool: $(cat "$WORK/err")"
expect_exit 1 dlq show d 999999
grep -qi 'no.*entry\|not found' "$WORK/err" || fail "show of an unknown seq: $(cat "$WORK/err")"
expect_exit 1 dlq purge nosuchpool --all
grep -q "no such pool" "$WORK/err" || fail "purge of an unknown pool: $(cat "$WORK/err")"
expect_exit 2 dlq replay d
grep -q 'nothing selected' "$WORK/err" || fail "empty selection: $(cat "$WORK/err")"
expect_exit 2 dlq purge d
expect_exit 2 dlq purge d --all "${SEQS[0]}"
expect_exit 2 dlq replay d --to 5
expect_exit 2 dlq replay d --from 9 --to 5
expect_exit 2 dlq show d
expect_exit 2 dlq show d x
expect_exit 2 dlq replay d 0
expect_exit 2 "$H" dlq frobnicate d
expect_exit 1 "$H" dlq ls d --broker "ipc://$WORK/nobody" --timeout 300ms
grep -q 'did not answer' "$WORK/err" || fail "no broker: $(cat "$WORK/err")"
[ "$(dlq_count d)" = 10 ] || fail "a refused request changed the DLQ"

# replay: three listed and a range of two go back to the pool
[ "$(dlq replay d "${SEQS[0]}" "${SEQS[1]}" "${SEQS[2]}")" = "replayed=3" ] || fail "replay SEQ..."
[ "$(dlq replay d --from "${SEQS[3]}" --to "${SEQS[4]}")" = "replayed=2" ] || fail "replay --from --to"
[ "$(dlq ls d --json | jq -c '[.[].seq]')" = "$(printf '%s\n' "${SEQS[@]:5}" | jq -sc .)" ] ||
    fail "after replay: $(dlq ls d --json)"
expect_exit 1 dlq show d "${SEQS[0]}"
spawn good "$TBIN/hd_test_client" work --broker "$ROUTER" --pool d --filter d. --log "$WORK/good.txt"
wait_for "replayed events acked" 20 stat_is '.pools[] | select(.name=="d") | .acked' 5
replayed_ids=$(jq -r --argjson n 5 '.[:$n][].id' "$WORK/ls.json" | sort)
[ "$(awk '$1 == "ack" {print $2}' "$WORK/good.txt" | sort)" = "$replayed_ids" ] ||
    fail "acked $(awk '{print $2}' "$WORK/good.txt" | tr '\n' ' '), replayed $replayed_ids"
# A replayed entry's attempts count from 0 again: the good worker saw attempt 1
awk '$1 == "ack" && $4 != 1 {bad = 1} END {exit bad}' "$WORK/good.txt" ||
    fail "replayed events were not delivered as attempt 1: $(cat "$WORK/good.txt")"

# purge: the rest go for good
[ "$(dlq purge d --all)" = "purged=5" ] || fail "purge --all"
[ "$(dlq ls d --json)" = "[]" ] || fail "DLQ not empty after purge: $(dlq ls d --json)"
[ "$(dlq purge d --all)" = "purged=0" ] || fail "purge of an empty DLQ"
dlq ls d | grep -q 'no entries' || fail "empty table: $(dlq ls d)"
[ "$(count_lines "$WORK/good.txt")" = 5 ] || fail "purged entries were delivered"

# --- max_deliver: a worker that NACKs everything, broker --max-deliver 3
spawn nack "$TBIN/hd_test_client" work --broker "$ROUTER" --pool m --filter m. --credit 5 \
    --nack-every 1 --log "$WORK/nack.txt"
wait_for "nacking worker" 10 workers_in m 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type m.x --count 4 --id-prefix n- \
    >/dev/null || fail "publish m.x"
wait_for "4 entries in the DLQ of m" 30 dlq_count_is m 4
dlq ls m --json >"$WORK/m.json"
jq -e 'all(.[]; .reason == "max_deliver" and .attempts == 3 and .error == "retried by --nack-every"
        and .type == "m.x")' "$WORK/m.json" >/dev/null || fail "max_deliver entries: $(cat "$WORK/m.json")"
for id in n-0 n-1 n-2 n-3; do
    [ "$(grep -c "^retry $id " "$WORK/nack.txt")" = 3 ] || fail "$id was not tried exactly 3 times"
done
dlq ls m | grep -q ' max_deliver ' || fail "table: $(dlq ls m)"
[ "$(dlq purge m --from "$(jq '.[0].seq' "$WORK/m.json")")" = "purged=4" ] || fail "purge --from"
log "ok: terminated, show, replay, purge, max_deliver"
