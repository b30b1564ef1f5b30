#!/usr/bin/env bash
# The broker's turn: with --fsync never a turn commits (writes, CONFIRMs)
# once it has read --turn-events events, so no commit holds much more than
# that; and credit an ACK returns goes back to work as the ACK is read,
# not at the end of the turn.
source "$(dirname "$0")/lib.sh"

# 1. --turn-events 1: every PUBLISHES is committed on its own. The
#    publisher keeps ~16 batches of at most 128 events in flight, so a
#    broker that read on would commit several at once.
N=4000
start_broker --fsync never --turn-events 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type turn.a --count $N --id-prefix a- \
    --window $N >"$WORK/pub.out" || fail "publish: $(cat "$WORK/pub.out")"
[ "$(stat .published)" = $N ] || fail "published $(stat .published) of $N"
largest=$(stat .commit_events_max)
commits=$(stat .commits)
log "$N events in $commits commits, the largest $largest events"
[ "$largest" -ge 1 ] && [ "$largest" -le 128 ] || fail "a commit held $largest events (a PUBLISHES has at most 128)"
[ "$commits" -ge $((N / 128)) ] || fail "$commits commits for $N events"
# The loop's own account: a turn per ROUTER wake-up (each commit is one),
# time spent in them within the uptime, and the process's CPU time
turns=$(stat .turns)
busy=$(stat .loop_busy_us)
uptime_us=$(($(stat .uptime_ms) * 1000 + 1000))
cpu=$(($(stat .cpu_user_us) + $(stat .cpu_system_us)))
log "$turns turns, loop busy ${busy} us of ${uptime_us} us, CPU ${cpu} us"
[ "$turns" -ge "$commits" ] || fail "$turns turns for $commits commits"
[ "$busy" -gt 0 ] && [ "$busy" -le "$uptime_us" ] || fail "loop busy $busy us in $uptime_us us"
[ "$cpu" -gt 0 ] || fail "no CPU time"
"$BIN/herald" stat --broker "$ROUTER" | grep -Eq 'loop busy [0-9]+\.[0-9]% of uptime  turns [0-9]+' ||
    fail "herald stat does not show the loop's busy share"
kill_broker

# 2. --fsync always ignores --turn-events: a turn is one group commit, and
#    the commits are the fsyncs.
rm -rf "$WORK/data"
start_broker --fsync always --turn-events 1
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type turn.b --count 1000 --id-prefix b- \
    >"$WORK/pub.out" || fail "publish: $(cat "$WORK/pub.out")"
[ "$(stat .commits)" = "$(stat .fsyncs)" ] || fail "$(stat .commits) commits, $(stat .fsyncs) fsyncs"

# 3. An ACK's credit is used at once. The worker holds 20 events and is
#    stopped while 180 more wait; once it runs, every later delivery goes
#    out as an ACK is read.
W=20
M=200
spawn worker "$TBIN/hd_test_client" work --broker "$ROUTER" --pool turn --filter turn.c \
    --credit $W --log "$WORK/handled.txt"
WORKER_PID=$LAST_PID
wait_for "the worker" 10 workers_in turn 1
kill -STOP "$WORKER_PID"
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type turn.c --count $M --id-prefix c- \
    >"$WORK/pub.out" || fail "publish: $(cat "$WORK/pub.out")"
wait_for "$W deliveries" 10 stat_is .deliveries $W
before=$(stat .settle_deliveries)
kill -CONT "$WORKER_PID"
wait_for "$M acks" 30 stat_is '.pools[] | select(.name=="turn") | .acked' $M
[ "$(awk '{print $2}' "$WORK/handled.txt" | sort -u | wc -l)" = $M ] || fail "not every event was handled once"
after=$(stat .settle_deliveries)
log "$((after - before)) of $((M - W)) later deliveries went out as ACKs were read"
[ $((after - before)) = $((M - W)) ] || fail "$((after - before)) deliveries on ACK, expected $((M - W))"
log "ok"
