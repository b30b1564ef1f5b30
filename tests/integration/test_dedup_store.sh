#!/usr/bin/env bash
# herald-worker --dedup-store: processed ids survive kill -9, so a worker
# restarted on the same store does not run the command again for events it
# had processed.
#  A. Every acked event is in the store. After kill -9 and a restart, the
#     same (source, id)s published again (past the broker's dedup window)
#     are acked without running the command.
#  B. Killed mid-run with events recorded but not acked (the broker was
#     frozen, so the worker lost its session before the handlers finished):
#     the broker redelivers them to the restarted worker, which skips every
#     id the store held at the kill.
source "$(dirname "$0")/lib.sh"

start_broker --heartbeat 100ms --liveness 3 --backoff-initial 50ms --dedup-window 300ms

cat >"$WORK/handler.sh" <<'SCRIPT'
#!/usr/bin/env bash
# $1: file of begun ids, $2: file of effects, $3: seconds of work
echo "$HERALD_ID" >>"$1"
[ "$3" = 0 ] || sleep "$3"
echo "$HERALD_ID" >>"$2"
SCRIPT
chmod +x "$WORK/handler.sh"

stored_ids() { "$TBIN/hd_dedup_dump" "$1" | awk '{print $2}' | sort; }
acked() { stat_is ".pools[] | select(.name == \"$1\") | .acked" "$2"; }
# skipped_in LOG: the "(N skipped)" of herald-worker --verbose's last line
skipped_in() { sed -n 's/.*stopped after [0-9]* events (\([0-9]*\) skipped).*/\1/p' "$1"; }
# stop_worker PID: SIGTERM, then reap it (herald-worker settles and leaves)
stop_worker() {
    kill -TERM "$1"
    wait "$1" || fail "worker $1 exited with status $?"
}

# ---- A: restart, then the same ids again -----------------------------------
N=50
worker_a() {
    spawn "$1" "$BIN/herald-worker" --broker "$ROUTER" --pool pay --filter pay. --verbose \
        --dedup-store "$WORK/store-a" -- "$WORK/handler.sh" "$WORK/begun-a" "$WORK/effects-a" 0
}
worker_a wa1
WA1=$LAST_PID
wait_for "worker a1" 10 workers_in pay 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type pay.charge --count $N --id-prefix a- \
    >"$WORK/pub-a1.txt" || fail "publish a1"
published_at=$(date +%s%N)
wait_for "$N acked" 30 acked pay $N
kill -9 "$WA1"
wait_for "a1 gone from the pool" 10 workers_in pay 0
[ "$(stored_ids "$WORK/store-a" | wc -l)" = $N ] || fail "store holds $(stored_ids "$WORK/store-a" | wc -l) ids, not $N"

worker_a wa2
WA2=$LAST_PID
wait_for "worker a2" 10 workers_in pay 1
window_passed() { [ $(($(date +%s%N) - published_at)) -gt 500000000 ]; }
wait_for "the broker's dedup window to pass" 10 window_passed
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type pay.charge --count $N --id-prefix a- \
    >"$WORK/pub-a2.txt" || fail "publish a2"
grep -q "confirmed=$N duplicates=0 " "$WORK/pub-a2.txt" ||
    fail "the broker took the second publish as duplicates: $(cat "$WORK/pub-a2.txt")"
wait_for "the republished events acked" 30 acked pay $((2 * N))
stop_worker "$WA2"
[ "$(count_lines "$WORK/effects-a")" = $N ] ||
    fail "restarted worker redid work: $(count_lines "$WORK/effects-a") effects for $N events"
[ "$(skipped_in "$WORK/wa2.log")" = $N ] || fail "a2 skipped '$(skipped_in "$WORK/wa2.log")', not $N"
log "A ok: $N ids republished after a restart, all skipped"

# ---- B: kill -9 with recorded, unacked events; redelivery ------------------
M=24
worker_b() {
    spawn "$1" "$BIN/herald-worker" --broker "$ROUTER" --pool ship --filter ship. --verbose \
        --concurrency 8 --credit 8 --dedup-store "$WORK/store-b" \
        -- "$WORK/handler.sh" "$WORK/begun-b" "$WORK/effects-b" 2
}
worker_b wb1
WB1=$LAST_PID
wait_for "worker b1" 10 workers_in ship 1
spawn pub-b "$TBIN/hd_test_client" publish --broker "$ROUTER" --type ship.send --count $M \
    --id-prefix b-
PUB_B=$LAST_PID
begun_b() { [ "$(count_lines "$WORK/begun-b")" -ge 8 ]; }
wait_for "8 handlers running" 20 begun_b
wait "$PUB_B" || fail "publish b"
# Freeze the broker: the worker hears nothing for 300 ms and drops the
# session; its handlers finish later and are recorded, but not acked
kill -STOP "$BROKER_PID"
all_recorded() {
    [ "$(count_lines "$WORK/effects-b")" -ge 8 ] || return 1
    [ "$(count_lines "$WORK/effects-b")" = "$(count_lines "$WORK/begun-b")" ] || return 1
    [ -z "$(comm -23 <(sort "$WORK/effects-b") <(stored_ids "$WORK/store-b"))" ]
}
wait_for "running handlers to finish and be recorded" 20 all_recorded
kill -9 "$WB1"
stored_ids "$WORK/store-b" >"$WORK/stored-at-kill"
kill -CONT "$BROKER_PID"
log "killed b1 with $(wc -l <"$WORK/stored-at-kill") ids recorded"

worker_b wb2
WB2=$LAST_PID
wait_for "all $M events acked" 60 acked ship $M
stop_worker "$WB2"
for i in $(seq 0 $((M - 1))); do
    grep -qx "b-$i" "$WORK/effects-b" || fail "b-$i never handled"
done
while read -r id; do
    [ "$(grep -cx "$id" "$WORK/effects-b")" = 1 ] ||
        fail "$id was in the store at the kill but handled $(grep -cx "$id" "$WORK/effects-b") times"
done <"$WORK/stored-at-kill"
skipped=$(skipped_in "$WORK/wb2.log")
[ "${skipped:-0}" -ge 1 ] || fail "no recorded event was redelivered: the test proved nothing"
log "ok: A skipped $N republished ids; B skipped $skipped redeliveries after kill -9," \
    "$(sort "$WORK/effects-b" | uniq -d | wc -l) events ran twice (none recorded)"
