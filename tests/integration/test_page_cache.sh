#!/usr/bin/env bash
# --log-page-cache: the broker gives back the OS page cache of its log
# beyond the newest N bytes (Stats.log_page_cache_released, herald stat),
# the files keep at most about that much cached, and events whose pages
# were given back are still delivered, read back from the disk.
source "$(dirname "$0")/lib.sh"

if ! command -v fincore >/dev/null; then
    log "skipped: no fincore (util-linux) to read the page cache with"
    exit 77
fi
# tmpfs pages cannot be given back (they are the file): keep the log in the
# build tree when $WORK is on tmpfs, as /tmp is on many systems
if [ "$(command stat -f -c %T "$WORK")" = tmpfs ]; then
    DATA=$(mktemp -d "$BIN/../page-cache-test.XXXXXX")
    on_cleanup() { rm -rf "$DATA"; }
    [ "$(command stat -f -c %T "$DATA")" != tmpfs ] || { log "skipped: no disk-backed directory"; exit 77; }
    ln -s "$DATA" "$WORK/data"
fi

# --fsync always: every flushed page is clean at once, so the bound holds on
# any file system (the unit test covers never and interval where it can)
N=20000
start_broker --fsync always --segment-size 1M --log-page-cache 1M --cache-size 1M
"$TBIN/hd_probe" create-pool --broker "$ROUTER" --pool back --filter pc. >/dev/null ||
    fail "create-pool"
payload=$(head -c 400 /dev/zero | tr '\0' 'p')
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type pc.a --count $N --id-prefix p- \
    --payload "$payload" --window 1000 >"$WORK/pub.out" || fail "publish: $(cat "$WORK/pub.out")"
log_bytes=$(stat .log_bytes)
released=$(stat .log_page_cache_released)
log "log $log_bytes bytes, $released given back from the page cache"
[ "$log_bytes" -gt $((8 << 20)) ] || fail "log of $log_bytes bytes"
# Past the 1 MiB kept: up to an eighth of it flushed since the last release,
# one commit, and the edges of the segment being released (at most 1 MiB)
slack=$(((1 << 20) + (1 << 17) + 1000 * 500))
# The current segment was written ahead with zeros (--fsync always prepares
# segments): its unwritten rest is cached too, up to the 1 MiB segment
written_ahead=$((1 << 20))
[ "$released" -ge $((log_bytes - (1 << 20) - slack)) ] ||
    fail "only $released of $log_bytes bytes given back"
cached=$(fincore --bytes --noheadings --output RES "$WORK"/data/log/*.seg | awk '{s += $1} END {print s + 0}')
log "the segment files hold $cached bytes of page cache"
[ "$cached" -le $(((1 << 20) + slack + written_ahead)) ] || fail "$cached bytes of the log cached"
"$BIN/herald" stat --broker "$ROUTER" | grep -Eq 'log page cache given back [0-9.]+ [KMG]?i?B' ||
    fail "herald stat does not show the page cache given back: $("$BIN/herald" stat --broker "$ROUTER" | grep -i 'page cache')"

# The pool's backlog is far past the hot cache and the page cache kept: it
# is read from the disk, every event once
spawn worker "$TBIN/hd_test_client" work --broker "$ROUTER" --pool back --filter pc. \
    --credit 100 --log "$WORK/handled.txt"
wait_for "$N acks" 60 stat_is '.pools[] | select(.name=="back") | .acked' $N
[ "$(awk '{print $2}' "$WORK/handled.txt" | sort -u | wc -l)" = $N ] || fail "not every event was handled"
log "ok"
