#!/usr/bin/env bash
# Backpressure: a pool with no worker holds at most --max-pending events;
# past that PUBLISH gets REJECT(BACKLOG_FULL) with a retry-after, the
# publisher library retries, and once a worker arrives every event is
# confirmed and processed. Nothing is dropped silently. Ends with a clean
# SIGTERM shutdown.
source "$(dirname "$0")/lib.sh"

start_broker --max-pending 100 --retry-after 100ms
# A worker creates the pool, then leaves: events now wait in the pool
spawn first "$TBIN/hd_test_client" work --broker "$ROUTER" --pool bp --filter bp. --log "$WORK/handled.txt"
FIRST=$LAST_PID
wait_for "pool" 10 workers_in bp 1
kill -INT "$FIRST"
wait_for "pool without workers" 10 workers_in bp 0

spawn pub "$TBIN/hd_test_client" publish --broker "$ROUTER" --type bp.x --count 300 --id-prefix bp- --timeout 60s
PUB=$LAST_PID
wait_for "the pool to fill" 20 stat_is '.pools[] | select(.name=="bp") | .pending' 100
wait_for "publishes to be refused" 20 eval '[ "$(stat .rejected)" -gt 0 ]'
[ "$(pool_field bp pending)" = 100 ] || fail "pool went past --max-pending: $(pool_field bp pending)"
[ "$(stat .published)" = 100 ] || fail "confirmed past the limit: $(stat .published)"
alive "$PUB" || fail "publisher gave up instead of retrying"

spawn second "$TBIN/hd_test_client" work --broker "$ROUTER" --pool bp --filter bp. --log "$WORK/handled.txt"
wait "$PUB" || fail "publisher: $(cat "$WORK/pub.log")"
grep -q "confirmed=300 duplicates=0 rejected=0" "$WORK/pub.log" || fail "$(cat "$WORK/pub.log")"
wait_for "all 300 processed" 30 stat_is '.pools[] | select(.name=="bp") | .acked' 300
[ "$(awk '{print $2}' "$WORK/handled.txt" | sort -u | wc -l)" = 300 ] || fail "events lost"

kill -TERM "$BROKER_PID"
broker_gone() { ! alive "$BROKER_PID"; }
wait_for "broker to stop on SIGTERM" 10 broker_gone
wait "$BROKER_PID" || fail "broker exited with status $? on SIGTERM"
grep -q "herald-broker stopping" "$WORK/broker.log" || fail "no clean shutdown"
log "ok: rejected=$(grep -o 'rejected=[0-9]*' "$WORK/broker.log" | tail -n 1)"
