/*  Unit tests for hd_seen_t: lookups, oldest-first eviction at capacity,
    TTL expiry against an explicit clock, and binary-safe keys. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seen.h"

static void
test_insert_and_lookup (void **state)
{
    hd_seen_t *seen = hd_seen_new (10, 0);
    assert_non_null (seen);
    assert_false (hd_seen_contains (seen, "shop", "1", 0));
    assert_int_equal (hd_seen_insert (seen, "shop", "1", 0), 0);
    assert_true (hd_seen_contains (seen, "shop", "1", 0));
    assert_false (hd_seen_contains (seen, "shop", "2", 0));
    assert_false (hd_seen_contains (seen, "other", "1", 0));
    //  A prefetch (the worker's look-ahead) is a hint only
    hd_key_t *key = hd_key_new ("shop", "1");
    assert_non_null (key);
    hd_seen_prefetch (seen, hd_key_hash (key));
    hd_seen_prefetch (seen, 12345);
    assert_true (hd_seen_has (seen, key, hd_key_hash (key), 0));
    assert_int_equal (hd_seen_size (seen), 1);
    free (key);
    //  Inserting again does not add a second entry
    assert_int_equal (hd_seen_insert (seen, "shop", "1", 5), 0);
    assert_int_equal (hd_seen_size (seen), 1);
    //  No TTL: still there much later
    assert_true (hd_seen_contains (seen, "shop", "1", 1000000000));
    hd_seen_destroy (&seen);
    assert_null (seen);
    hd_seen_destroy (&seen);
}

static void
test_key_is_source_and_id (void **state)
{
    hd_seen_t *seen = hd_seen_new (10, 0);
    //  Concatenation alone would make these the same key
    hd_seen_insert (seen, "ab", "c", 0);
    assert_false (hd_seen_contains (seen, "a", "bc", 0));
    assert_false (hd_seen_contains (seen, "abc", "", 0));
    assert_true (hd_seen_contains (seen, "ab", "c", 0));
    hd_seen_insert (seen, "", "", 0);
    assert_true (hd_seen_contains (seen, "", "", 0));
    assert_int_equal (hd_seen_size (seen), 2);

    //  Long keys take the heap path of the lookup
    char source[1000];
    memset (source, 's', sizeof source - 1);
    source[sizeof source - 1] = 0;
    hd_seen_insert (seen, source, "long", 0);
    assert_true (hd_seen_contains (seen, source, "long", 0));
    source[10] = 't';
    assert_false (hd_seen_contains (seen, source, "long", 0));
    hd_seen_destroy (&seen);
}

static void
test_capacity_evicts_oldest (void **state)
{
    hd_seen_t *seen = hd_seen_new (3, 0);
    hd_seen_insert (seen, "s", "a", 1);
    hd_seen_insert (seen, "s", "b", 2);
    hd_seen_insert (seen, "s", "c", 3);
    assert_int_equal (hd_seen_size (seen), 3);
    hd_seen_insert (seen, "s", "d", 4);
    assert_int_equal (hd_seen_size (seen), 3);
    assert_int_equal (hd_seen_evicted (seen), 1);
    assert_false (hd_seen_contains (seen, "s", "a", 4));
    assert_true (hd_seen_contains (seen, "s", "b", 4));
    assert_true (hd_seen_contains (seen, "s", "d", 4));

    //  Re-inserting refreshes: b becomes the newest, so c goes next
    hd_seen_insert (seen, "s", "b", 5);
    hd_seen_insert (seen, "s", "e", 6);
    assert_false (hd_seen_contains (seen, "s", "c", 6));
    assert_true (hd_seen_contains (seen, "s", "b", 6));
    assert_true (hd_seen_contains (seen, "s", "d", 6));
    assert_true (hd_seen_contains (seen, "s", "e", 6));
    assert_int_equal (hd_seen_evicted (seen), 2);
    hd_seen_destroy (&seen);
}

static void
test_many_entries_stay_bounded (void **state)
{
    hd_seen_t *seen = hd_seen_new (1000, 0);
    char id[32];
    for (int index = 0; index < 20000; index++) {
        snprintf (id, sizeof id, "id-%d", index);
        assert_int_equal (hd_seen_insert (seen, "bulk", id, index), 0);
    }
    assert_int_equal (hd_seen_size (seen), 1000);
    assert_int_equal (hd_seen_evicted (seen), 19000);
    //  Exactly the newest 1000 remain
    for (int index = 0; index < 20000; index++) {
        snprintf (id, sizeof id, "id-%d", index);
        assert_int_equal (hd_seen_contains (seen, "bulk", id, 20000), index >= 19000);
    }
    hd_seen_destroy (&seen);
}

static void
test_ttl_expiry (void **state)
{
    hd_seen_t *seen = hd_seen_new (100, 1000);
    hd_seen_insert (seen, "s", "old", 0);
    hd_seen_insert (seen, "s", "mid", 500);
    assert_true (hd_seen_contains (seen, "s", "old", 999));
    //  An entry lives ttl_ms: gone exactly at insert + ttl
    assert_false (hd_seen_contains (seen, "s", "old", 1000));
    assert_int_equal (hd_seen_expired (seen), 1);
    assert_true (hd_seen_contains (seen, "s", "mid", 1000));
    assert_int_equal (hd_seen_size (seen), 1);

    //  Refreshing restarts the clock
    hd_seen_insert (seen, "s", "mid", 1400);
    assert_true (hd_seen_contains (seen, "s", "mid", 2399));
    assert_false (hd_seen_contains (seen, "s", "mid", 2400));
    hd_seen_destroy (&seen);
}

static void
test_expire_sweeps_in_order (void **state)
{
    hd_seen_t *seen = hd_seen_new (100, 100);
    for (int index = 0; index < 10; index++) {
        char id[8];
        snprintf (id, sizeof id, "%d", index);
        hd_seen_insert (seen, "s", id, index * 10);
    }
    hd_seen_expire (seen, 145); // entries at 0..40 are >= 100 ms old
    assert_int_equal (hd_seen_size (seen), 5);
    assert_int_equal (hd_seen_expired (seen), 5);
    assert_false (hd_seen_contains (seen, "s", "4", 145));
    assert_true (hd_seen_contains (seen, "s", "5", 145));
    //  Inserting sweeps too
    hd_seen_insert (seen, "s", "new", 1000);
    assert_int_equal (hd_seen_size (seen), 1);
    assert_int_equal (hd_seen_expired (seen), 10);
    hd_seen_destroy (&seen);
}

static void
test_zero_capacity_means_one (void **state)
{
    hd_seen_t *seen = hd_seen_new (0, 0);
    hd_seen_insert (seen, "s", "a", 0);
    hd_seen_insert (seen, "s", "b", 0);
    assert_int_equal (hd_seen_size (seen), 1);
    assert_true (hd_seen_contains (seen, "s", "b", 0));
    hd_seen_destroy (&seen);
}

//  A key lives in its holder's room when it fits, else it is allocated;
//  moved to another holder it is copied room to room, or handed over.
static void
test_keys_in_rooms (void **state)
{
    hd_key_room_t first, second;
    hd_key_t *whole = hd_key_new ("shop", "order-1");
    hd_key_t *key = hd_key_make (&first, "shop", "order-1");
    assert_ptr_equal (key, (hd_key_t *) first.bytes);
    assert_true (hd_key_equal (key, whole));
    hd_key_t *moved = hd_key_move (&key, &first, &second);
    assert_null (key);
    assert_ptr_equal (moved, (hd_key_t *) second.bytes);
    assert_true (hd_key_equal (moved, whole));
    assert_int_equal (hd_key_hash (moved), hd_key_hash (whole));
    hd_key_free (&moved, &second); // in its room: nothing to free
    assert_null (moved);

    char id[HD_KEY_ROOM];
    memset (id, 'i', sizeof id - 1);
    id[sizeof id - 1] = 0;
    hd_key_t *long_whole = hd_key_new ("shop", id);
    key = hd_key_make (&first, "shop", id);
    assert_non_null (key);
    assert_true (key != (hd_key_t *) first.bytes);
    assert_true (hd_key_equal (key, long_whole));
    hd_key_t *allocated = key;
    moved = hd_key_move (&key, &first, &second);
    assert_ptr_equal (moved, allocated); // handed over, not copied
    hd_key_free (&moved, &second);
    assert_null (moved);
    free (whole);
    free (long_whole);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_insert_and_lookup),
        cmocka_unit_test (test_key_is_source_and_id),
        cmocka_unit_test (test_keys_in_rooms),
        cmocka_unit_test (test_capacity_evicts_oldest),
        cmocka_unit_test (test_many_entries_stay_bounded),
        cmocka_unit_test (test_ttl_expiry),
        cmocka_unit_test (test_expire_sweeps_in_order),
        cmocka_unit_test (test_zero_capacity_means_one),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
