#!/usr/bin/env bash
# Heartbeats: a frozen worker (SIGSTOP, connection still open) is declared
# dead after liveness x heartbeat and its leases move on; when it thaws it
# re-registers by itself. After a broker restart, workers re-register too.
source "$(dirname "$0")/lib.sh"

start_broker --heartbeat 200ms --liveness 3 --ack-wait 120s
spawn frozen "$TBIN/hd_test_client" work --broker "$ROUTER" --pool hb --filter h. --credit 50 \
    --sleep-ms 20 --log "$WORK/handled.txt"
FROZEN=$LAST_PID
wait_for "first worker" 10 workers_in hb 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type h.x --count 200 --id-prefix h- >/dev/null
wait_for "the frozen worker to hold leases" 10 eval '[ "$(pool_field hb inflight)" -gt 10 ]'
kill -STOP "$FROZEN"
spawn healthy "$TBIN/hd_test_client" work --broker "$ROUTER" --pool hb --filter h. --log "$WORK/handled.txt"
wait_for "the frozen worker to be declared dead" 10 stat_is '.expired_sessions' 1
wait_for "all events acked by the healthy worker" 30 stat_is '.pools[] | select(.name=="hb") | .acked' 200
kill -CONT "$FROZEN"
wait_for "the thawed worker to re-register" 15 workers_in hb 2

# Broker restart: both workers re-register with the new broker by themselves
kill_broker
start_broker --heartbeat 200ms --liveness 3
wait_for "workers to re-register after a broker restart" 20 workers_in hb 2
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type h.y --count 50 --id-prefix after- >/dev/null
# The pool and its progress survived the restart: 200 acked before, 50 now
wait_for "new events acked" 20 stat_is '.pools[] | select(.name=="hb") | .acked' 250
log "ok"
