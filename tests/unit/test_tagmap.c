/*  tagmap: pairs found, shared tags told apart by the match function,
    removal by backward shift across the table's end (checked against a
    plain array model under random inserts and removals, with tags that
    crowd a few homes), growth past a mapped table, reservation (resident
    at once), limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "tagmap.h"
#include "resident.h"

static bool
s_match_any (uint32_t ref, const void *arg)
{
    (void) ref;
    (void) arg;
    return true;
}

static bool
s_match_ref (uint32_t ref, const void *arg)
{
    return ref == *(const uint32_t *) arg;
}

//  A well-mixed tag for a number, as a hash would give
static uint32_t
s_tag_of (uint32_t value)
{
    return (uint32_t) (((uint64_t) value * 0x9E3779B97F4A7C15ULL) >> 32);
}

static void
test_pairs_and_growth (void **state)
{
    hd_tagmap_t *map = hd_tagmap_new ();
    assert_non_null (map);
    //  Past 8 192 slots (64 KiB) the table is a mapping of its own
    enum { COUNT = 200000 };
    for (uint32_t ref = 0; ref < COUNT; ref++)
        assert_int_equal (hd_tagmap_insert (map, s_tag_of (ref), ref), 0);
    assert_int_equal (hd_tagmap_size (map), COUNT);
    assert_true (hd_tagmap_capacity (map) * 7 >= (size_t) COUNT * 10);
    assert_int_equal (hd_tagmap_table_bytes (map), hd_tagmap_capacity (map) * 8);
    for (uint32_t ref = 0; ref < COUNT; ref++) {
        uint32_t found = UINT32_MAX;
        assert_int_equal (hd_tagmap_find (map, s_tag_of (ref), s_match_ref, &ref, &found), 0);
        assert_int_equal (found, ref);
    }
    uint32_t absent = COUNT;
    uint32_t found;
    assert_int_equal (hd_tagmap_find (map, s_tag_of (absent), s_match_ref, &absent, &found), -1);
    //  Remove every other pair; the rest stay reachable
    for (uint32_t ref = 0; ref < COUNT; ref += 2)
        assert_int_equal (hd_tagmap_remove (map, s_tag_of (ref), ref), 0);
    assert_int_equal (hd_tagmap_remove (map, s_tag_of (0), 0), -1);
    assert_int_equal (hd_tagmap_size (map), COUNT / 2);
    for (uint32_t ref = 0; ref < COUNT; ref++)
        assert_int_equal (hd_tagmap_find (map, s_tag_of (ref), s_match_ref, &ref, &found),
                          ref % 2 ? 0 : -1);
    hd_tagmap_destroy (&map);
    hd_tagmap_destroy (&map); // idempotent
    assert_null (map);
}

//  Several refs under one tag: the match function picks, removal takes
//  the exact pair, and the rest of the run stays reachable.
static void
test_shared_tag (void **state)
{
    hd_tagmap_t *map = hd_tagmap_new ();
    for (uint32_t ref = 10; ref < 15; ref++)
        assert_int_equal (hd_tagmap_insert (map, 0xABCD0123, ref), 0);
    uint32_t found;
    assert_int_equal (hd_tagmap_find (map, 0xABCD0123, s_match_any, NULL, &found), 0);
    assert_int_equal (found, 10); // the first in the run
    uint32_t wanted = 13;
    assert_int_equal (hd_tagmap_find (map, 0xABCD0123, s_match_ref, &wanted, &found), 0);
    assert_int_equal (found, 13);
    assert_int_equal (hd_tagmap_remove (map, 0xABCD0123, 10), 0);
    assert_int_equal (hd_tagmap_remove (map, 0xABCD0123, 10), -1);
    assert_int_equal (hd_tagmap_find (map, 0xABCD0123, s_match_ref, &wanted, &found), 0);
    assert_int_equal (found, 13);
    wanted = 10;
    assert_int_equal (hd_tagmap_find (map, 0xABCD0123, s_match_ref, &wanted, &found), -1);
    //  Another tag of the same home is not a candidate
    assert_int_equal (hd_tagmap_find (map, 0xABCD0124, s_match_any, NULL, &found), -1);
    assert_int_equal (hd_tagmap_remove (map, 0xABCD0124, 13), -1);
    hd_tagmap_destroy (&map);
}

//  A run that wraps past the table's last slot: removing its head moves
//  back only what may move, so a pair sitting at its own home (slot 0)
//  stays there and a pair homed at the end moves back across the end.
static void
test_shift_across_end (void **state)
{
    hd_tagmap_t *map = hd_tagmap_new ();
    assert_int_equal (hd_tagmap_capacity (map), 16);
    const uint32_t at_end = UINT32_MAX, at_start = 0;          // homes 15 and 0
    assert_int_equal (hd_tagmap_insert (map, at_end, 1), 0);   // slot 15
    assert_int_equal (hd_tagmap_insert (map, at_start, 2), 0); // slot 0
    assert_int_equal (hd_tagmap_insert (map, at_end, 3), 0);   // slot 1
    assert_int_equal (hd_tagmap_insert (map, at_start, 4), 0); // slot 2
    assert_int_equal (hd_tagmap_remove (map, at_end, 1), 0);
    uint32_t found, wanted;
    for (wanted = 2; wanted <= 4; wanted++) {
        uint32_t tag = wanted % 2 ? at_end : at_start;
        assert_int_equal (hd_tagmap_find (map, tag, s_match_ref, &wanted, &found), 0);
    }
    assert_int_equal (hd_tagmap_remove (map, at_start, 2), 0);
    wanted = 4;
    assert_int_equal (hd_tagmap_find (map, at_start, s_match_ref, &wanted, &found), 0);
    wanted = 3;
    assert_int_equal (hd_tagmap_find (map, at_end, s_match_ref, &wanted, &found), 0);
    assert_int_equal (hd_tagmap_size (map), 2);
    hd_tagmap_destroy (&map);
}

//  Random inserts and removals with tags crowded onto the table's last
//  homes, so that runs wrap past its end, checked against a plain array.
static void
s_run_against_model (size_t reserved, unsigned seed)
{
    enum { REFS = 3000, STEPS = 200000 };
    static uint32_t tags[REFS];
    static bool present[REFS];
    memset (present, 0, sizeof present);
    hd_tagmap_t *map = hd_tagmap_new ();
    if (reserved)
        assert_int_equal (hd_tagmap_reserve (map, reserved), 0);
    srand (seed);
    for (uint32_t ref = 0; ref < REFS; ref++)
        //  Eight tags only, all near the top of the range (homes at the
        //  end of any table), and a few spread out
        tags[ref] = ref % 5 ? UINT32_MAX - (uint32_t) (ref % 8) * 0x10000 : s_tag_of (ref);
    size_t size = 0;
    for (int step = 0; step < STEPS; step++) {
        uint32_t ref = (uint32_t) rand () % REFS;
        //  A prefetch is a hint: present or not, it changes nothing
        hd_tagmap_prefetch (map, tags[ref]);
        hd_tagmap_prefetch (map, (uint32_t) rand ());
        if (present[ref]) {
            assert_int_equal (hd_tagmap_remove (map, tags[ref], ref), 0);
            present[ref] = false;
            size--;
        } else {
            assert_int_equal (hd_tagmap_insert (map, tags[ref], ref), 0);
            present[ref] = true;
            size++;
        }
        if (step % 997 == 0)
            for (uint32_t check = 0; check < REFS; check++) {
                uint32_t found;
                int rc = hd_tagmap_find (map, tags[check], s_match_ref, &check, &found);
                assert_int_equal (rc, present[check] ? 0 : -1);
            }
    }
    assert_int_equal (hd_tagmap_size (map), size);
    hd_tagmap_destroy (&map);
}

//  Grown from 16 slots (powers of two), and reserved ahead at counts that
//  are not (3 002, 4 285 and 7 143 slots), as the dedup window's index is.
static void
test_against_model (void **state)
{
    s_run_against_model (0, 7);
    s_run_against_model (2101, 8);
    s_run_against_model (2999, 9);
    s_run_against_model (5000, 10);
}

//  A reserved table holds its items without growing; its size is the
//  load bound's, not the next power of two.
static void
test_reserve (void **state)
{
    assert_int_equal (hd_tagmap_reserve_bytes (1000000), 1428572 * 8);
    assert_int_equal (hd_tagmap_reserve_bytes ((size_t) 1 << 40), 0);
    hd_tagmap_t *map = hd_tagmap_new ();
    assert_int_equal (hd_tagmap_insert (map, s_tag_of (1), 1), 0);
    size_t resident = s_resident_bytes ();
    assert_int_equal (hd_tagmap_reserve (map, 100000), 0);
    size_t slots = hd_tagmap_capacity (map);
    assert_int_equal (slots, 142858);
    //  Resident at once: a mapping of its own, faulted in whole
    assert_true (s_resident_bytes () >= resident + hd_tagmap_table_bytes (map) - 4096);
    for (uint32_t ref = 2; ref <= 100000; ref++) {
        assert_int_equal (hd_tagmap_insert (map, s_tag_of (ref), ref), 0);
        assert_int_equal (hd_tagmap_capacity (map), slots);
    }
    uint32_t one = 1, found;
    assert_int_equal (hd_tagmap_find (map, s_tag_of (1), s_match_ref, &one, &found), 0);
    //  The next insert grows it
    assert_int_equal (hd_tagmap_insert (map, s_tag_of (100001), 100001), 0);
    assert_true (hd_tagmap_capacity (map) > slots);
    //  Reserving less than it has changes nothing
    slots = hd_tagmap_capacity (map);
    assert_int_equal (hd_tagmap_reserve (map, 10), 0);
    assert_int_equal (hd_tagmap_capacity (map), slots);
    assert_int_equal (hd_tagmap_reserve (map, (size_t) 1 << 40), -1);
    assert_int_equal (hd_tagmap_capacity (map), slots);
    hd_tagmap_destroy (&map);
}

static void
test_ref_limit (void **state)
{
    hd_tagmap_t *map = hd_tagmap_new ();
    assert_int_equal (hd_tagmap_insert (map, 5, UINT32_MAX), -1);
    assert_int_equal (hd_tagmap_size (map), 0);
    assert_int_equal (hd_tagmap_insert (map, 5, HD_TAGMAP_REF_MAX), 0);
    uint32_t found;
    assert_int_equal (hd_tagmap_find (map, 5, s_match_any, NULL, &found), 0);
    assert_int_equal (found, HD_TAGMAP_REF_MAX);
    assert_int_equal (hd_tagmap_remove (map, 5, UINT32_MAX), -1);
    assert_int_equal (hd_tagmap_remove (map, 5, HD_TAGMAP_REF_MAX), 0);
    hd_tagmap_destroy (&map);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_pairs_and_growth), cmocka_unit_test (test_shared_tag),
        cmocka_unit_test (test_shift_across_end), cmocka_unit_test (test_against_model),
        cmocka_unit_test (test_reserve),          cmocka_unit_test (test_ref_limit),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
