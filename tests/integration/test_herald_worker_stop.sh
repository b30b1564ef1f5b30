#!/usr/bin/env bash
# herald-worker: a command that never reads its 1 MiB stdin and never ends
# must not keep herald-worker from stopping: after --stop-grace it leaves the
# pool, kills the command and exits; the event goes back to the pool, and a
# command that exits without reading its stdin gets it acked.
source "$(dirname "$0")/lib.sh"

start_broker
cat >"$WORK/hang.sh" <<'SCRIPT'
#!/usr/bin/env bash
sleep 300
SCRIPT
chmod +x "$WORK/hang.sh"
head -c 1048576 /dev/zero | tr '\0' 'x' >"$WORK/big"

spawn hang "$BIN/herald-worker" --broker "$ROUTER" --pool big --stop-grace 300ms -- "$WORK/hang.sh"
HANG_PID=$LAST_PID
wait_for "hanging worker" 10 workers_in big 1
"$BIN/herald" pub b.x - --id big-1 --broker "$ROUTER" <"$WORK/big" >/dev/null || fail "pub"
wait_for "the command to run" 10 pgrep -f "$WORK/hang.sh"
GROUP=$(pgrep -f "$WORK/hang.sh") # the command leads its own process group
kill -TERM "$HANG_PID"
exited() { ! alive "$HANG_PID"; }
wait_for "herald-worker to exit after the grace period" 10 exited
wait "$HANG_PID" 2>/dev/null || true
grep -q "killed 1 command" "$WORK/hang.log" || fail "no report of the killed command"
gone() { ! pgrep -g "$GROUP" >/dev/null; }
wait_for "the hung command to be killed" 5 gone
wait_for "the event back in the pool" 10 stat_is '.pools[] | select(.name=="big") | .workers' 0
[ "$(pool_field big acked)" = 0 ] || fail "a killed command's event was acked"

# A command that never reads its stdin but exits 0: acked, no hang on the pipe
spawn quick "$BIN/herald-worker" --broker "$ROUTER" --pool big -- sh -c 'sleep 0.1'
wait_for "the event acked by a command that ignores stdin" 20 \
    stat_is '.pools[] | select(.name=="big") | .acked' 1
log "ok"
