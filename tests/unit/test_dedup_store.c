/*  Unit tests for hd_dedup_store_t: lookups, TTL expiry against an explicit
    clock, persistence across reopen, purging (explicit and every N
    inserts), and a full map reported as an error, not a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dedup_store.h"

//  A fresh temporary directory per test, removed afterwards
static int
s_setup (void **state)
{
    const char *tmp = getenv ("TMPDIR");
    char *path = malloc (4096);
    snprintf (path, 4096, "%s/herald-dedup-test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp (path)) {
        free (path);
        return -1;
    }
    *state = path;
    return 0;
}

static int
s_teardown (void **state)
{
    char *path = *state;
    DIR *dir = opendir (path);
    if (dir) {
        struct dirent *entry;
        while ((entry = readdir (dir))) {
            if (strcmp (entry->d_name, ".") == 0 || strcmp (entry->d_name, "..") == 0)
                continue;
            char file[8192];
            snprintf (file, sizeof file, "%s/%s", path, entry->d_name);
            unlink (file);
        }
        closedir (dir);
    }
    rmdir (path);
    free (path);
    return 0;
}

static hd_dedup_store_t *
s_open (void **state, int64_t ttl_ms, size_t map_size)
{
    char error[512];
    hd_dedup_store_t *store = hd_dedup_store_open (*state, ttl_ms, map_size, error, sizeof error);
    if (!store)
        fail_msg ("open: %s", error);
    return store;
}

static void
test_insert_and_contains (void **state)
{
    hd_dedup_store_t *store = s_open (state, 0, 0);
    assert_int_equal (hd_dedup_store_map_size (store) >= HD_DEDUP_STORE_MAP_SIZE_DEFAULT, 1);
    assert_int_equal (hd_dedup_store_contains (store, "shop", "1", 0), 0);
    assert_int_equal (hd_dedup_store_insert (store, "shop", "1", 10), 0);
    assert_int_equal (hd_dedup_store_contains (store, "shop", "1", 10), 1);
    assert_int_equal (hd_dedup_store_contains (store, "shop", "2", 10), 0);
    assert_int_equal (hd_dedup_store_contains (store, "other", "1", 10), 0);
    //  Concatenation alone would make these the same key
    assert_int_equal (hd_dedup_store_insert (store, "ab", "c", 10), 0);
    assert_int_equal (hd_dedup_store_contains (store, "a", "bc", 10), 0);
    assert_int_equal (hd_dedup_store_contains (store, "abc", "", 10), 0);
    assert_int_equal (hd_dedup_store_insert (store, "", "", 10), 0);
    assert_int_equal (hd_dedup_store_contains (store, "", "", 10), 1);
    //  Inserting again refreshes, it does not add
    assert_int_equal (hd_dedup_store_insert (store, "shop", "1", 20), 0);
    assert_int_equal (hd_dedup_store_size (store), 3);
    //  No TTL: still there much later
    assert_int_equal (hd_dedup_store_contains (store, "shop", "1", INT64_MAX / 2), 1);

    //  Keys too long for LMDB are stored hashed, and still told apart
    char source[300], id[300];
    memset (source, 's', sizeof source - 1);
    source[sizeof source - 1] = 0;
    memset (id, 'i', sizeof id - 1);
    id[sizeof id - 1] = 0;
    assert_int_equal (hd_dedup_store_insert (store, source, id, 10), 0);
    assert_int_equal (hd_dedup_store_contains (store, source, id, 10), 1);
    id[5] = 'j';
    assert_int_equal (hd_dedup_store_contains (store, source, id, 10), 0);
    assert_int_equal (hd_dedup_store_size (store), 4);

    //  A batch is one transaction
    const char *sources[] = {"b", "b", "b"};
    const char *ids[] = {"1", "2", "1"};
    assert_int_equal (hd_dedup_store_insert_many (store, sources, ids, 3, 30), 0);
    assert_int_equal (hd_dedup_store_contains (store, "b", "2", 30), 1);
    assert_int_equal (hd_dedup_store_size (store), 6);
    hd_dedup_store_destroy (&store);
    assert_null (store);
    hd_dedup_store_destroy (&store);
}

static void
test_ttl_expiry (void **state)
{
    hd_dedup_store_t *store = s_open (state, 100, 0);
    assert_int_equal (hd_dedup_store_insert (store, "s", "a", 1000), 0);
    assert_int_equal (hd_dedup_store_insert (store, "s", "b", 1000), 0);
    assert_int_equal (hd_dedup_store_contains (store, "s", "a", 1099), 1);
    assert_int_equal (hd_dedup_store_contains (store, "s", "a", 1100), 0);
    //  Expired entries count as absent before any purge
    assert_int_equal (hd_dedup_store_size (store), 2);
    //  A refresh restarts the TTL
    assert_int_equal (hd_dedup_store_insert (store, "s", "b", 1050), 0);
    assert_int_equal (hd_dedup_store_contains (store, "s", "b", 1149), 1);
    assert_int_equal (hd_dedup_store_contains (store, "s", "b", 1150), 0);
    //  The purge takes the expired one only, and not the refreshed one's old slot
    assert_int_equal (hd_dedup_store_purge (store, 1120, 0), 1);
    assert_int_equal (hd_dedup_store_size (store), 1);
    assert_int_equal (hd_dedup_store_contains (store, "s", "b", 1120), 1);
    assert_int_equal (hd_dedup_store_purge (store, 1150, 0), 1);
    assert_int_equal (hd_dedup_store_size (store), 0);
    assert_int_equal (hd_dedup_store_purged (store), 2);
    hd_dedup_store_destroy (&store);
}

typedef struct {
    char lines[16][64];
    int count;
} s_listing_t;

static void
s_list (const char *source, const char *id, int64_t time_ms, void *arg)
{
    s_listing_t *listing = arg;
    if (listing->count < 16)
        snprintf (listing->lines[listing->count++], 64, "%s/%s@%lld", source, id,
                  (long long) time_ms);
}

static void
test_reopen_keeps_entries (void **state)
{
    hd_dedup_store_t *store = s_open (state, 1000, 0);
    assert_int_equal (hd_dedup_store_insert (store, "shop", "2", 200), 0);
    assert_int_equal (hd_dedup_store_insert (store, "shop", "1", 100), 0);
    assert_int_equal (hd_dedup_store_insert (store, "mail", "9", 300), 0);
    hd_dedup_store_destroy (&store);

    store = s_open (state, 1000, 0);
    assert_int_equal (hd_dedup_store_size (store), 3);
    assert_int_equal (hd_dedup_store_contains (store, "shop", "1", 500), 1);
    assert_int_equal (hd_dedup_store_contains (store, "mail", "9", 500), 1);
    assert_int_equal (hd_dedup_store_contains (store, "shop", "3", 500), 0);
    //  The processed time is kept: the TTL runs on from it
    assert_int_equal (hd_dedup_store_contains (store, "shop", "1", 1100), 0);
    assert_int_equal (hd_dedup_store_contains (store, "shop", "2", 1100), 1);
    //  Listed oldest first
    s_listing_t listing = {0};
    assert_int_equal (hd_dedup_store_each (store, s_list, &listing), 0);
    assert_int_equal (listing.count, 3);
    assert_string_equal (listing.lines[0], "shop/1@100");
    assert_string_equal (listing.lines[1], "shop/2@200");
    assert_string_equal (listing.lines[2], "mail/9@300");
    hd_dedup_store_destroy (&store);

    //  A different TTL on reopen applies to the old entries
    store = s_open (state, 50, 0);
    assert_int_equal (hd_dedup_store_contains (store, "mail", "9", 349), 1);
    assert_int_equal (hd_dedup_store_contains (store, "mail", "9", 350), 0);
    hd_dedup_store_destroy (&store);
}

static void
test_purge (void **state)
{
    hd_dedup_store_t *store = s_open (state, 10000, 0);
    //  500 entries at times 0 .. 499, under the every-N purge mark
    char name[16];
    for (int index = 0; index < 500; index++) {
        snprintf (name, sizeof name, "e%d", index);
        assert_int_equal (hd_dedup_store_insert (store, "s", name, index), 0);
    }
    assert_int_equal (hd_dedup_store_size (store), 500);
    //  At 10100 the entries of times 0 .. 100 have expired: 101 of them
    assert_int_equal (hd_dedup_store_purge (store, 10100, 50), 50);
    assert_int_equal (hd_dedup_store_size (store), 450);
    assert_int_equal (hd_dedup_store_purge (store, 10100, 0), 51);
    assert_int_equal (hd_dedup_store_purge (store, 10100, 0), 0);
    assert_int_equal (hd_dedup_store_size (store), 399);
    assert_int_equal (hd_dedup_store_contains (store, "s", "e100", 0), 0);
    assert_int_equal (hd_dedup_store_contains (store, "s", "e101", 0), 1);
    assert_int_equal (hd_dedup_store_purged (store), 101);
    hd_dedup_store_destroy (&store);

    //  No TTL: nothing ever expires
    store = s_open (state, 0, 0);
    assert_int_equal (hd_dedup_store_purge (store, INT64_MAX / 2, 0), 0);
    assert_int_equal (hd_dedup_store_size (store), 399);
    hd_dedup_store_destroy (&store);
}

static void
test_purge_every_n_inserts (void **state)
{
    hd_dedup_store_t *store = s_open (state, 100, 0);
    //  HD_DEDUP_STORE_PURGE_EVERY - 1 inserts at time 0, in one batch
    size_t count = HD_DEDUP_STORE_PURGE_EVERY - 1;
    const char **sources = calloc (count, sizeof *sources);
    const char **ids = calloc (count, sizeof *ids);
    char (*names)[16] = calloc (count, sizeof *names);
    for (size_t index = 0; index < count; index++) {
        snprintf (names[index], sizeof names[index], "e%zu", index);
        sources[index] = "s";
        ids[index] = names[index];
    }
    assert_int_equal (hd_dedup_store_insert_many (store, sources, ids, count, 0), 0);
    assert_int_equal (hd_dedup_store_size (store), count);
    assert_int_equal (hd_dedup_store_purged (store), 0);
    //  The insert that reaches the mark purges what has expired by its time
    assert_int_equal (hd_dedup_store_insert (store, "s", "late", 1000), 0);
    assert_int_equal (hd_dedup_store_purged (store), count);
    assert_int_equal (hd_dedup_store_size (store), 1);
    assert_int_equal (hd_dedup_store_contains (store, "s", "late", 1000), 1);
    free (sources);
    free (ids);
    free (names);
    hd_dedup_store_destroy (&store);
}

static void
test_full_map_is_an_error (void **state)
{
    //  64 KiB: a few hundred entries. Filled until 20 inserts in a row fail
    //  (freed pages can make room for one more now and then)
    hd_dedup_store_t *store = s_open (state, 1000, 65536);
    int inserted = 0;
    int failures = 0;
    int other_errors = 0;
    char id[64];
    for (int index = 0; index < 100000 && failures < 20; index++) {
        snprintf (id, sizeof id, "event-%08d-padding-padding-padding", index);
        int rc = hd_dedup_store_insert (store, "shop", id, 0);
        if (rc == 0) {
            inserted++;
            failures = 0;
        } else if (rc == HD_DEDUP_STORE_FULL)
            failures++;
        else
            other_errors++;
    }
    assert_int_equal (failures, 20);
    assert_int_equal (other_errors, 0);
    assert_true (inserted > 10);
    char error[512];
    hd_dedup_store_error (store, error, sizeof error);
    assert_non_null (strstr (error, "full"));
    //  Still usable: what is in stays in, what failed is not in
    assert_int_equal (
        hd_dedup_store_contains (store, "shop", "event-00000000-padding-padding-padding", 0), 1);
    assert_int_equal (hd_dedup_store_contains (store, "shop", id, 0), 0);
    assert_int_equal (hd_dedup_store_size (store), (size_t) inserted);
    //  Once entries have expired, an insert makes room by purging them
    assert_int_equal (hd_dedup_store_purged (store), 0);
    assert_int_equal (hd_dedup_store_insert (store, "shop", id, 5000), 0);
    assert_int_equal (hd_dedup_store_contains (store, "shop", id, 5000), 1);
    assert_true (hd_dedup_store_purged (store) > 0);
    hd_dedup_store_destroy (&store);

    //  A full store without a TTL stays full, and says so every time
    store = s_open (state, 0, 65536);
    int rc = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        snprintf (id, sizeof id, "more-%d-padding-padding-padding-padding", attempt);
        int more = 0;
        while ((rc = hd_dedup_store_insert (store, "mail", id, 0)) == 0 && more++ < 100000)
            snprintf (id, sizeof id, "more-%d-%d-padding-padding-padding", attempt, more);
        assert_int_equal (rc, HD_DEDUP_STORE_FULL);
    }
    hd_dedup_store_destroy (&store);

    //  Reopened with a larger map size, it has room again
    store = s_open (state, 0, 1 << 20);
    assert_int_equal (hd_dedup_store_map_size (store), 1 << 20);
    assert_int_equal (hd_dedup_store_insert (store, "mail", id, 0), 0);
    hd_dedup_store_destroy (&store);
}

static void
test_open_errors (void **state)
{
    char path[8192];
    snprintf (path, sizeof path, "%s/a-file", (char *) *state);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("not a directory\n", file);
    fclose (file);
    char error[512];
    assert_null (hd_dedup_store_open (path, 0, 0, error, sizeof error));
    assert_non_null (strstr (error, "a-file"));
    assert_null (hd_dedup_store_open (path, 0, 0, NULL, 0));
    assert_null (hd_dedup_store_open ("", 0, 0, error, sizeof error));
    //  A missing directory is created, parents too
    snprintf (path, sizeof path, "%s/new/store", (char *) *state);
    hd_dedup_store_t *store = hd_dedup_store_open (path, 0, 0, error, sizeof error);
    assert_non_null (store);
    assert_string_equal (hd_dedup_store_path (store), path);
    hd_dedup_store_destroy (&store);
    char file_path[8300];
    snprintf (file_path, sizeof file_path, "%s/data.mdb", path);
    unlink (file_path);
    snprintf (file_path, sizeof file_path, "%s/lock.mdb", path);
    unlink (file_path);
    rmdir (path);
    snprintf (path, sizeof path, "%s/new", (char *) *state);
    rmdir (path);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_insert_and_contains, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_ttl_expiry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reopen_keeps_entries, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_purge, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_purge_every_n_inserts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_full_map_is_an_error, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_open_errors, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
