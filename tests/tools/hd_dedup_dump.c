/*  hd_dedup_dump — print the entries of a dedup store (herald-worker
    --dedup-store DIR), oldest first, one "SOURCE ID TIME_MS" line each.
    The store may be in use by a running worker.

    hd_dedup_dump DIR
*/
#include "dedup_store.h"

#include <inttypes.h>
#include <stdio.h>

static void
s_print (const char *source, const char *id, int64_t time_ms, void *arg)
{
    printf ("%s %s %" PRId64 "\n", source, id, time_ms);
}

int
main (int argc, char **argv)
{
    if (argc != 2) {
        fprintf (stderr, "Usage: hd_dedup_dump DIR\n");
        return 2;
    }
    char error[512];
    hd_dedup_store_t *store = hd_dedup_store_open (argv[1], 0, 0, error, sizeof error);
    if (!store) {
        fprintf (stderr, "hd_dedup_dump: %s\n", error);
        return 1;
    }
    int rc = hd_dedup_store_each (store, s_print, NULL);
    if (rc) {
        hd_dedup_store_error (store, error, sizeof error);
        fprintf (stderr, "hd_dedup_dump: %s\n", error);
    }
    hd_dedup_store_destroy (&store);
    return rc ? 1 : 0;
}
