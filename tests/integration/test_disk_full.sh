#!/usr/bin/env bash
# A full disk: the broker's data directory on a 1 MiB tmpfs. Publishes that
# cannot be written get REJECT(STORAGE) and are rolled back; everything
# confirmed is delivered, survives a restart, and nothing unconfirmed is in
# the log. The broker keeps serving throughout. Needs root (mount); skipped
# (exit 77) where mounting is not allowed.
source "$(dirname "$0")/lib.sh"

mkdir -p "$WORK/small"
if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=1m tmpfs "$WORK/small" 2>/dev/null; then
    echo "SKIP: cannot mount a small tmpfs here (needs root)"
    exit 77
fi
on_cleanup() { umount "$WORK/small"; }
# Room set aside now, handed back later to show a refused event is forgotten
head -c 65536 /dev/zero >"$WORK/small/reserve"

DATA="$WORK/small/data"
start_broker --data-dir "$DATA" --segment-size 64K --checkpoint-bytes 64K
spawn w "$TBIN/hd_test_client" work --broker "$ROUTER" --pool f --filter f. --log "$WORK/handled.txt"
wait_for "worker" 10 workers_in f 1
payload=$(head -c 1000 /dev/zero | tr '\0' 'f')
# publish_unpooled N ID-PREFIX: events no pool takes (u.x), which the broker
# holds only in the turn's own memory until the commit, refused or not;
# sets confirmed_u and rejected_u
publish_unpooled() {
    "$TBIN/hd_test_client" publish --broker "$ROUTER" --type u.x --count "$1" --id-prefix "$2" \
        --payload "$payload" --timeout 60s >"$WORK/pub_u.out" || true
    confirmed_u=$(grep -o 'confirmed=[0-9]*' "$WORK/pub_u.out" | cut -d= -f2)
    rejected_u=$(grep -o 'rejected=[0-9]*' "$WORK/pub_u.out" | cut -d= -f2)
    [ "$((confirmed_u + rejected_u))" = "$1" ] || fail "unpooled events unanswered: $(cat "$WORK/pub_u.out")"
}
publish_unpooled 100 u-before-
[ "$confirmed_u" = 100 ] || fail "unpooled events refused on a disk with room: $(cat "$WORK/pub_u.out")"
unpooled_confirmed=$confirmed_u
"$TBIN/hd_test_client" publish --broker "$ROUTER" --type f.x --count 2000 --id-prefix f- \
    --payload "$payload" --timeout 60s >"$WORK/pub.out" || true
confirmed=$(grep -o 'confirmed=[0-9]*' "$WORK/pub.out" | cut -d= -f2)
rejected=$(grep -o 'rejected=[0-9]*' "$WORK/pub.out" | cut -d= -f2)
[ "$rejected" -gt 0 ] && [ "$confirmed" -gt 0 ] || fail "$(cat "$WORK/pub.out")"
# Into the disk that just refused: refused (rolled back) in the turn
publish_unpooled 500 u-after-
unpooled_confirmed=$((unpooled_confirmed + confirmed_u))
[ "$(stat .storage_rejects)" -gt 0 ] || fail "no STORAGE rejection counted"
wait_for "confirmed events acked" 30 stat_is '.pools[] | select(.name=="f") | .acked' "$confirmed"
alive "$BROKER_PID" || fail "broker died on a full disk"
# The log wrote ahead into segment files of zeros up to here; a write that
# met the full disk first got that space back. The bursts below need a
# refusal that no such space can save, so the broker goes on without it
# (restarted: a crash, which loses nothing confirmed either).
kill_broker
start_broker --data-dir "$DATA" --segment-size 64K --checkpoint-bytes 64K --prepare-segments=false
# Resends of an event in the same turn as a refused original are refused
# too, never confirmed as duplicates of nothing. The disk is filled to the
# brim first; a checkpoint may free a little meanwhile, so a burst may also
# fit whole (then all copies are confirmed): try until one is refused.
refused_burst=0
stored_bursts=0
for try in 1 2 3 4 5; do
    dd if=/dev/zero of="$WORK/small/filler-$try" bs=4k 2>/dev/null || true
    "$TBIN/hd_probe" dup-burst --broker "$ROUTER" --pool "dup-on-full-$try" --count 20 \
        >"$WORK/dup.out" || fail "copies answered unlike their original: $(cat "$WORK/dup.out")"
    grep -q "rejected=20" "$WORK/dup.out" && refused_burst=1 && break
    stored_bursts=$((stored_bursts + 1)) # all 20 confirmed: one event in the log
done
[ "$refused_burst" = 1 ] || fail "no burst met a full disk: $(cat "$WORK/dup.out")"
rm -f "$WORK"/small/filler-* "$WORK/small/reserve"
# The refused identity was forgotten: sent again, it is a new event
"$TBIN/hd_probe" dup-burst --broker "$ROUTER" --pool "dup-on-full-$try" --count 20 >"$WORK/dup.out" ||
    fail "resend after the disk emptied: $(cat "$WORK/dup.out")"
grep -q "confirmed=20 duplicates=19 rejected=0" "$WORK/dup.out" ||
    fail "a refused event still counts as stored: $(cat "$WORK/dup.out")"
stored_bursts=$((stored_bursts + 1))
confirmed=$((confirmed + unpooled_confirmed + stored_bursts))

# After a crash the log holds exactly the confirmed events
kill_broker
start_broker --data-dir "$DATA" --segment-size 64K --checkpoint-bytes 64K
[ "$(($(stat .log_next_seq) - 1))" = "$confirmed" ] ||
    fail "log holds $(($(stat .log_next_seq) - 1)) events, $confirmed were confirmed"
log "ok: confirmed=$confirmed rejected=$rejected (unpooled after the disk filled: confirmed=$confirmed_u rejected=$rejected_u) on a 1 MiB disk"
