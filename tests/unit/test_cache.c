//  cache: the run of seqs, the byte budget, places without frames, chunk
//  boundaries; every test runs twice, with records shared (copy_max 0) and
//  copied into the cache's blocks.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cache.h"

#define S_PLACE_COST hd_cache_place_cost ()
#define S_COPY_MAX   (16 * 1024)

static size_t s_shared = 0, s_copied = S_COPY_MAX;

//  The copy_max a test runs with (its prestate)
static size_t
s_copy_max (void **state)
{
    return *(size_t *) *state;
}

//  Frames whose bytes say which seq they belong to
static void
s_frames (uint64_t seq, size_t payload_size, zmq_msg_t *envelope, zmq_msg_t *payload)
{
    char text[32];
    int size = snprintf (text, sizeof text, "event-%llu", (unsigned long long) seq);
    assert_int_equal (zmq_msg_init_size (envelope, (size_t) size), 0);
    memcpy (zmq_msg_data (envelope), text, (size_t) size);
    assert_int_equal (zmq_msg_init_size (payload, payload_size), 0);
    memset (zmq_msg_data (payload), (int) (seq & 0xFF), payload_size);
}

static void
s_add (hd_cache_t *cache, uint64_t seq, size_t payload_size, bool keep)
{
    zmq_msg_t envelope, payload;
    s_frames (seq, payload_size, &envelope, &payload);
    hd_record_t record = hd_record_of (&envelope, &payload);
    hd_cache_add (cache, seq, &record, keep);
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
}

static void
s_assert_cached (hd_cache_t *cache, uint64_t seq, size_t payload_size)
{
    hd_cache_view_t view;
    assert_true (hd_cache_find (cache, seq, &view));
    char text[32];
    int size = snprintf (text, sizeof text, "event-%llu", (unsigned long long) seq);
    assert_int_equal (view.envelope_size, (size_t) size);
    assert_memory_equal (view.envelope, text, (size_t) size);
    assert_int_equal (view.payload_size, payload_size);
    for (size_t index = 0; index < payload_size; index++)
        assert_int_equal (((const uint8_t *) view.payload)[index], (uint8_t) (seq & 0xFF));
    //  Frames exactly for a shared record
    assert_true ((view.envelope_frame != NULL) == (view.payload_frame != NULL));
    if (view.envelope_frame) {
        assert_ptr_equal (zmq_msg_data (view.envelope_frame), view.envelope);
        assert_ptr_equal (zmq_msg_data (view.payload_frame), view.payload);
    }
}

static void
s_assert_missing (hd_cache_t *cache, uint64_t seq)
{
    hd_cache_view_t view;
    assert_false (hd_cache_find (cache, seq, &view));
}

static void
test_run_and_shared_frames (void **state)
{
    hd_cache_t *cache = hd_cache_new (1 << 20, s_copy_max (state));
    assert_non_null (cache);
    s_assert_missing (cache, 1);
    zmq_msg_t envelope, payload;
    s_frames (10, 200, &envelope, &payload);
    hd_record_t record = hd_record_of (&envelope, &payload);
    hd_cache_add (cache, 10, &record, true);
    //  Shared or copied, never consumed
    hd_cache_view_t view;
    assert_true (hd_cache_find (cache, 10, &view));
    if (s_copy_max (state) == 0) {
        assert_ptr_equal (view.payload, zmq_msg_data (&payload));
        assert_non_null (view.payload_frame);
    } else {
        assert_true (view.payload != zmq_msg_data (&payload));
        assert_null (view.payload_frame);
    }
    assert_int_equal (zmq_msg_size (&payload), 200);
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
    s_assert_cached (cache, 10, 200);
    for (uint64_t seq = 11; seq <= 2000; seq++)
        s_add (cache, seq, seq % 50, true);
    assert_int_equal (hd_cache_count (cache), 1991);
    for (uint64_t seq = 11; seq <= 2000; seq++)
        s_assert_cached (cache, seq, seq % 50);
    s_assert_missing (cache, 9);
    s_assert_missing (cache, 2001);
    hd_cache_destroy (&cache);
    assert_null (cache);
    hd_cache_destroy (&cache);
}

//  Borrowed bytes (a record without frames) are copied when they fit
//  copy_max; a larger record cannot be shared, so it only holds its place,
//  and the run goes on after it.
static void
test_borrowed_bytes (void **state)
{
    hd_cache_t *cache = hd_cache_new (1 << 20, s_copy_max (state));
    assert_non_null (cache);
    s_add (cache, 1, 10, true);
    zmq_msg_t envelope, payload;
    s_frames (2, 100, &envelope, &payload);
    hd_record_t borrowed = hd_record_of (&envelope, &payload);
    borrowed.envelope_frame = borrowed.payload_frame = NULL;
    hd_cache_add (cache, 2, &borrowed, true);
    //  The caller's bytes change at once: the cache has its own
    memset (zmq_msg_data (&payload), 0xEE, 100);
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
    if (s_copy_max (state) == 0)
        s_assert_missing (cache, 2);
    else
        s_assert_cached (cache, 2, 100);
    s_add (cache, 3, 10, true);
    s_assert_cached (cache, 1, 10);
    s_assert_cached (cache, 3, 10);
    assert_int_equal (hd_cache_count (cache), 3);
    hd_cache_destroy (&cache);
}

static void
test_budget (void **state)
{
    //  Each record costs envelope ("event-NNNN") + payload + a place
    size_t record = 10 + 100 + S_PLACE_COST;
    hd_cache_t *cache = hd_cache_new (10 * record, s_copy_max (state));
    for (uint64_t seq = 1000; seq <= 1008; seq++)
        s_add (cache, seq, 100, true);
    assert_int_equal (hd_cache_bytes (cache), 9 * record);
    for (uint64_t seq = 1009; seq <= 1500; seq++)
        s_add (cache, seq, 100, true);
    assert_int_equal (hd_cache_count (cache), 10);
    assert_int_equal (hd_cache_bytes (cache), 10 * record);
    s_assert_missing (cache, 1490);
    for (uint64_t seq = 1491; seq <= 1500; seq++)
        s_assert_cached (cache, seq, 100);
    //  A record larger than the whole budget empties the cache
    s_add (cache, 1501, 20 * record, true);
    assert_int_equal (hd_cache_count (cache), 0);
    assert_int_equal (hd_cache_bytes (cache), 0);
    s_assert_missing (cache, 1500);
    s_assert_missing (cache, 1501);
    //  and the run starts again after it
    s_add (cache, 1502, 100, true);
    s_assert_cached (cache, 1502, 100);
    hd_cache_destroy (&cache);

    //  No budget: nothing is kept
    cache = hd_cache_new (0, s_copy_max (state));
    s_add (cache, 1, 10, true);
    assert_int_equal (hd_cache_count (cache), 0);
    s_assert_missing (cache, 1);
    hd_cache_destroy (&cache);
}

static void
test_places_without_frames (void **state)
{
    hd_cache_t *cache = hd_cache_new (1 << 20, s_copy_max (state));
    //  Not kept while the cache is empty: no place at all
    s_add (cache, 1, 10, false);
    s_add (cache, 2, 10, false);
    assert_int_equal (hd_cache_count (cache), 0);
    s_add (cache, 3, 10, true);
    s_add (cache, 4, 10, false);
    s_add (cache, 5, 10, true);
    assert_int_equal (hd_cache_count (cache), 3);
    //  A place costs its size only
    assert_int_equal (hd_cache_bytes (cache), 2 * (7 + 10) + 3 * S_PLACE_COST);
    s_assert_missing (cache, 2);
    s_assert_cached (cache, 3, 10);
    s_assert_missing (cache, 4);
    s_assert_cached (cache, 5, 10);
    hd_cache_destroy (&cache);

    //  A place whose room pushes out the only kept record is not made either
    cache = hd_cache_new (7 + 10 + S_PLACE_COST + S_PLACE_COST / 2, s_copy_max (state));
    s_add (cache, 1, 10, true);
    assert_int_equal (hd_cache_count (cache), 1);
    s_add (cache, 2, 10, false);
    assert_int_equal (hd_cache_count (cache), 0);
    assert_int_equal (hd_cache_bytes (cache), 0);
    hd_cache_destroy (&cache);
}

static void
test_gap_restarts_run (void **state)
{
    hd_cache_t *cache = hd_cache_new (1 << 20, s_copy_max (state));
    for (uint64_t seq = 1; seq <= 600; seq++)
        s_add (cache, seq, 10, true);
    s_add (cache, 700, 10, true); // not 601: the run starts again at 700
    assert_int_equal (hd_cache_count (cache), 1);
    s_assert_missing (cache, 600);
    s_assert_cached (cache, 700, 10);
    s_add (cache, 701, 10, true);
    s_assert_cached (cache, 701, 10);
    //  An earlier seq too
    s_add (cache, 5, 10, true);
    assert_int_equal (hd_cache_count (cache), 1);
    s_assert_missing (cache, 701);
    s_assert_cached (cache, 5, 10);
    hd_cache_destroy (&cache);
}

//  Drops at and across chunk boundaries (512 places), then growth again
static void
test_drops_across_chunks (void **state)
{
    hd_cache_t *cache = hd_cache_new (64 << 20, s_copy_max (state));
    uint64_t first = 500; // the run starts mid-chunk
    for (uint64_t seq = first; seq < first + 3000; seq++)
        s_add (cache, seq, 16, true);
    hd_cache_drop_before (cache, 512);
    assert_int_equal (hd_cache_count (cache), 3000 - 12);
    s_assert_missing (cache, 511);
    s_assert_cached (cache, 512, 16);
    hd_cache_drop_before (cache, 1500);
    s_assert_missing (cache, 1499);
    s_assert_cached (cache, 1500, 16);
    hd_cache_drop_from (cache, 2048); // a chunk's first place
    s_assert_missing (cache, 2048);
    s_assert_cached (cache, 2047, 16);
    hd_cache_drop_from (cache, 2000);
    assert_int_equal (hd_cache_count (cache), 500);
    //  The run goes on from where it was cut, into new chunks
    for (uint64_t seq = 2000; seq < 6000; seq++)
        s_add (cache, seq, 16, true);
    for (uint64_t seq = 1500; seq < 6000; seq++)
        s_assert_cached (cache, seq, 16);
    hd_cache_drop_before (cache, 6000); // everything
    assert_int_equal (hd_cache_count (cache), 0);
    assert_int_equal (hd_cache_bytes (cache), 0);
    s_add (cache, 9000, 16, true);
    s_assert_cached (cache, 9000, 16);
    hd_cache_drop_from (cache, 1); // everything
    assert_int_equal (hd_cache_count (cache), 0);
    hd_cache_destroy (&cache);
}

//  A full cache turning over for a long time: the run stays contiguous
//  and the bytes counted match what it holds
static void
test_turnover (void **state)
{
    hd_cache_t *cache = hd_cache_new (300 * 1024, s_copy_max (state));
    for (uint64_t seq = 1; seq <= 50000; seq++)
        s_add (cache, seq, seq % 300, seq % 7 != 0);
    size_t count = hd_cache_count (cache);
    assert_true (count > 1000);
    size_t bytes = 0;
    for (uint64_t seq = 50001 - count; seq <= 50000; seq++) {
        if (seq % 7 == 0) {
            s_assert_missing (cache, seq);
            bytes += S_PLACE_COST;
        } else {
            s_assert_cached (cache, seq, seq % 300);
            char text[32];
            bytes += (size_t) snprintf (text, sizeof text, "event-%llu", (unsigned long long) seq) +
                     seq % 300 + S_PLACE_COST;
        }
    }
    assert_int_equal (hd_cache_bytes (cache), bytes);
    assert_true (bytes <= 300 * 1024);
    s_assert_missing (cache, 50000 - count);
    hd_cache_destroy (&cache);
}

//  Copied records across many blocks: a full cache turning over, a record
//  above copy_max shared among copied ones, cuts that free blocks, and a
//  rolled-back tail written again with other bytes
static void
test_blocks (void **state)
{
    //  A copy limit the blocks cannot honour is refused, not lowered
    assert_null (hd_cache_new (8 << 20, HD_CACHE_COPY_LIMIT + 1));
    hd_cache_t *cache = hd_cache_new (8 << 20, S_COPY_MAX);
    for (uint64_t seq = 1; seq <= 100000; seq++)
        s_add (cache, seq, seq == 95555 ? 20000 : 100 + seq % 400, true);
    size_t count = hd_cache_count (cache);
    assert_true (count > 10000 && count < 100000);
    for (uint64_t seq = 100001 - count; seq <= 100000; seq++)
        s_assert_cached (cache, seq, seq == 95555 ? 20000 : 100 + seq % 400);
    hd_cache_view_t view;
    assert_true (hd_cache_find (cache, 95555, &view));
    assert_non_null (view.payload_frame); // above copy_max: shared
    //  The blocks in use cover the budget, plus the current one and spares
    assert_true (hd_cache_blocks (cache) <= (8u << 20) / (2u << 20) + 4);
    //  Cut the newest back into an older block, then write them again
    hd_cache_drop_from (cache, 99000);
    s_assert_cached (cache, 98999, 100 + 98999 % 400);
    s_assert_missing (cache, 99000);
    for (uint64_t seq = 99000; seq <= 100000; seq++)
        s_add (cache, seq, 50 + seq % 30, true);
    for (uint64_t seq = 99000; seq <= 100000; seq++)
        s_assert_cached (cache, seq, 50 + seq % 30);
    s_assert_cached (cache, 98999, 100 + 98999 % 400);
    //  Everything gone: at most the current block and the spares are left
    hd_cache_drop_before (cache, 100001);
    assert_int_equal (hd_cache_count (cache), 0);
    assert_int_equal (hd_cache_bytes (cache), 0);
    assert_true (hd_cache_blocks (cache) <= 3);
    s_add (cache, 200000, 64, true);
    s_assert_cached (cache, 200000, 64);
    hd_cache_destroy (&cache);
}

//  A cache whose readers release what they are done with, as the broker
//  does, turns over the same few blocks however much goes through it
static void
test_release_reuses_blocks (void **state)
{
    hd_cache_t *cache = hd_cache_new (64 << 20, S_COPY_MAX);
    size_t most_blocks = 0;
    for (uint64_t seq = 1; seq <= 200000; seq++) {
        s_add (cache, seq, 200, true);
        if (seq % 4096 == 0) {
            s_assert_cached (cache, seq - 300, 200);
            hd_cache_drop_before (cache, seq - 300); // 300 still in flight
            s_assert_missing (cache, seq - 301);
            s_assert_cached (cache, seq - 300, 200);
            assert_int_equal (hd_cache_count (cache), 301);
        }
        if (hd_cache_blocks (cache) > most_blocks)
            most_blocks = hd_cache_blocks (cache);
    }
    //  40 MiB went through: the block being filled, the one before, a spare
    assert_true (most_blocks <= 3);
    hd_cache_destroy (&cache);
}

int
main (void)
{
#define S_BOTH(test)                                                                               \
    cmocka_unit_test_prestate (test, &s_shared), cmocka_unit_test_prestate (test, &s_copied)
    const struct CMUnitTest tests[] = {
        S_BOTH (test_run_and_shared_frames),
        S_BOTH (test_borrowed_bytes),
        S_BOTH (test_budget),
        S_BOTH (test_places_without_frames),
        S_BOTH (test_gap_restarts_run),
        S_BOTH (test_drops_across_chunks),
        S_BOTH (test_turnover),
        cmocka_unit_test (test_blocks),
        cmocka_unit_test (test_release_reuses_blocks),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
