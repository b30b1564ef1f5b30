/*  hashmap: integer keys, shared keys with a match function, removal by
    backward shift (checked against a plain array model under random
    inserts and removals), iteration, growth, large (mapped) slot arrays. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "hashmap.h"

static void
test_integer_keys_and_growth (void **state)
{
    hd_hashmap_t *map = hd_hashmap_new ();
    assert_non_null (map);
    //  Past 2^18 slots (4 MiB) the slot arrays are mappings of their own:
    //  the growth to 2^19 frees one, destroy another
    enum { COUNT = 300000 };
    static int values[COUNT];
    for (uint64_t key = 1; key <= COUNT; key++)
        assert_int_equal (hd_hashmap_insert (map, key, &values[key - 1]), 0);
    assert_int_equal (hd_hashmap_size (map), COUNT);
    for (uint64_t key = 1; key <= COUNT; key++)
        assert_ptr_equal (hd_hashmap_find (map, key, NULL, NULL), &values[key - 1]);
    assert_null (hd_hashmap_find (map, 0, NULL, NULL));
    assert_null (hd_hashmap_find (map, COUNT + 1, NULL, NULL));
    assert_int_equal (hd_hashmap_insert (map, 7, NULL), -1); // values are never NULL
    //  Remove every other key; the rest stay reachable
    for (uint64_t key = 2; key <= COUNT; key += 2)
        assert_int_equal (hd_hashmap_remove (map, key, &values[key - 1]), 0);
    assert_int_equal (hd_hashmap_remove (map, 2, &values[1]), -1);
    assert_int_equal (hd_hashmap_size (map), COUNT / 2);
    for (uint64_t key = 1; key <= COUNT; key++)
        assert_ptr_equal (hd_hashmap_find (map, key, NULL, NULL),
                          key % 2 ? &values[key - 1] : NULL);
    size_t cursor = 0, seen = 0;
    int *value;
    while ((value = hd_hashmap_next (map, &cursor))) {
        assert_true ((value - values) % 2 == 0); // odd keys sit at even indexes
        seen++;
    }
    assert_int_equal (seen, COUNT / 2);
    hd_hashmap_clear (map);
    assert_int_equal (hd_hashmap_size (map), 0);
    assert_null (hd_hashmap_find (map, 1, NULL, NULL));
    hd_hashmap_destroy (&map);
    hd_hashmap_destroy (&map); // idempotent
    assert_null (map);
}

static bool
s_match_string (const void *value, const void *arg)
{
    return strcmp (value, arg) == 0;
}

//  Byte-string keys: distinct strings forced onto one 64-bit key are still
//  told apart by the match function, and each can be removed on its own.
static void
test_shared_keys (void **state)
{
    hd_hashmap_t *map = hd_hashmap_new ();
    char *names[] = {"alpha", "beta", "gamma", "delta"};
    for (int index = 0; index < 4; index++)
        assert_int_equal (hd_hashmap_insert (map, 42, names[index]), 0);
    for (int index = 0; index < 4; index++)
        assert_ptr_equal (hd_hashmap_find (map, 42, s_match_string, names[index]), names[index]);
    assert_null (hd_hashmap_find (map, 42, s_match_string, "epsilon"));
    assert_int_equal (hd_hashmap_remove (map, 42, names[1]), 0);
    assert_null (hd_hashmap_find (map, 42, s_match_string, "beta"));
    assert_ptr_equal (hd_hashmap_find (map, 42, s_match_string, "delta"), names[3]);
    //  Same string, different lengths or contents: different hashes
    assert_true (hd_hash_bytes ("abcdefgh1", 9) != hd_hash_bytes ("abcdefgh2", 9));
    assert_true (hd_hash_bytes ("abc", 3) != hd_hash_bytes ("abc", 2));
    assert_true (hd_hash_bytes ("", 0) == hd_hash_bytes ("", 0));
    hd_hashmap_destroy (&map);
}

//  Random inserts and removals over a small key space (long probe runs,
//  wrap-around at the end of the array), compared with a model.
static void
test_random_against_model (void **state)
{
    enum { KEYS = 300, STEPS = 200000 };
    static int tokens[KEYS];
    bool present[KEYS] = {false};
    hd_hashmap_t *map = hd_hashmap_new ();
    srand (12345);
    size_t size = 0;
    for (int step = 0; step < STEPS; step++) {
        int key = rand () % KEYS;
        //  Keys collide on purpose: many share a home slot in a small table
        uint64_t map_key = (uint64_t) key * 1024;
        if (present[key]) {
            assert_int_equal (hd_hashmap_remove (map, map_key, &tokens[key]), 0);
            present[key] = false;
            size--;
        } else {
            assert_int_equal (hd_hashmap_insert (map, map_key, &tokens[key]), 0);
            present[key] = true;
            size++;
        }
        if (step % 997 == 0)
            for (int check = 0; check < KEYS; check++)
                assert_ptr_equal (hd_hashmap_find (map, (uint64_t) check * 1024, NULL, NULL),
                                  present[check] ? &tokens[check] : NULL);
        assert_int_equal (hd_hashmap_size (map), size);
    }
    hd_hashmap_destroy (&map);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_integer_keys_and_growth),
        cmocka_unit_test (test_shared_keys),
        cmocka_unit_test (test_random_against_model),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
