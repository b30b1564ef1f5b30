#!/usr/bin/env bash
# Demo handler run by herald-worker once per event: payload on stdin, the
# envelope in HERALD_* variables. It is idempotent the way real handlers
# should be: the effect (a ledger line) is recorded once per event id and
# pool, under a lock, so a redelivery never does the work twice.
# usage: demo-handler.sh WORKER_NAME LEDGER WORK_SECONDS
set -euo pipefail
worker=$1 ledger=$2 work=${3:-0}
payload=$(cat)
sleep "$work"   # the "work": charging a card, sending a mail ...
(
    flock 9
    if ! grep -q "^$HERALD_POOL $HERALD_ID " "$ledger" 2>/dev/null; then
        echo "$HERALD_POOL $HERALD_ID $worker attempt=$HERALD_ATTEMPT seq=$HERALD_SEQ ${#payload}B" >>"$ledger"
    else
        echo "$HERALD_POOL $HERALD_ID $worker attempt=$HERALD_ATTEMPT skipped" >>"$ledger.skipped"
    fi
) 9>>"$ledger.lock"
