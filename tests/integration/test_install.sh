#!/usr/bin/env bash
# `cmake --install` (what `make install` runs) puts the binaries, libherald
# (static and shared), herald.h and herald.pc in place, and a program built
# with `pkg-config herald` links and runs against each library.
source "$(dirname "$0")/lib.sh"

BUILD_DIR=$(cd "$BIN/.." && pwd)
DESTDIR="$WORK/root" cmake --install "$BUILD_DIR" --prefix /usr/local >"$WORK/install.log"
ROOT="$WORK/root/usr/local"
for file in bin/herald bin/herald-broker bin/herald-worker include/herald.h lib/libherald.a \
            lib/pkgconfig/herald.pc; do
    [ -e "$ROOT/$file" ] || fail "not installed: $file"
done
ls "$ROOT"/lib/libherald.so* >/dev/null || fail "shared library not installed"

cat >"$WORK/consumer.c" <<'C'
#include <herald.h>
#include <stdio.h>
#include <string.h>
int main (void)
{
    hd_event_t *parent = hd_event_new ("orders.placed");
    hd_event_t *child = hd_event_new ("orders.charged");
    if (hd_event_set_id (parent, "order-1") || hd_event_inherit (child, parent))
        return 1;
    int ok = strcmp (hd_event_causation_id (child), "order-1") == 0;
    hd_event_destroy (&parent);
    hd_event_destroy (&child);
    puts (ok ? "consumer ok" : "consumer wrong");
    return ok ? 0 : 1;
}
C
# A sanitizer build of the library needs its runtime in the consumer too
SANITIZE=""
# grep -c reads all of nm's output: grep -q would stop early and, with
# pipefail, nm's SIGPIPE would read as "not sanitized"
[ "$(nm "$ROOT/lib/libherald.a" 2>/dev/null | grep -c __asan_)" -gt 0 ] &&
    SANITIZE="-fsanitize=address,undefined"
export PKG_CONFIG_SYSROOT_DIR="$WORK/root" PKG_CONFIG_PATH="$ROOT/lib/pkgconfig"
cc $SANITIZE "$WORK/consumer.c" -o "$WORK/consumer-shared" $(pkg-config --cflags --libs herald) ||
    fail "cannot build against the shared library"
LD_LIBRARY_PATH="$ROOT/lib" "$WORK/consumer-shared" | grep -q "consumer ok" || fail "shared run"
cc $SANITIZE "$WORK/consumer.c" -o "$WORK/consumer-static" $(pkg-config --cflags herald) "$ROOT/lib/libherald.a" \
    $(pkg-config --libs-only-l --static herald | sed 's/-lherald//') ||
    fail "cannot build against the static library"
"$WORK/consumer-static" | grep -q "consumer ok" || fail "static run"
log "ok"
