/*  Unit tests for broker/store: the in-memory event store. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "store.h"

//  Append an event whose envelope and payload are the given strings.
static uint64_t
s_append (hd_store_t *store, const char *envelope_text, const char *payload_text, uint32_t holders)
{
    zmq_msg_t envelope, payload;
    size_t envelope_size = strlen (envelope_text), payload_size = strlen (payload_text);
    assert_int_equal (zmq_msg_init_size (&envelope, envelope_size), 0);
    assert_int_equal (zmq_msg_init_size (&payload, payload_size), 0);
    memcpy (zmq_msg_data (&envelope), envelope_text, envelope_size);
    memcpy (zmq_msg_data (&payload), payload_text, payload_size);
    uint64_t seq = hd_store_append (store, &envelope, &payload, holders);
    //  The store took the content: our messages are empty
    assert_int_equal (zmq_msg_size (&envelope), 0);
    assert_int_equal (zmq_msg_size (&payload), 0);
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
    return seq;
}

static void
s_assert_record (hd_store_t *store, uint64_t seq, const char *envelope_text,
                 const char *payload_text, uint32_t holders)
{
    hd_record_t *record = hd_store_get (store, seq);
    assert_non_null (record);
    assert_int_equal (record->seq, seq);
    assert_int_equal (record->holders, holders);
    assert_int_equal (zmq_msg_size (&record->envelope), strlen (envelope_text));
    assert_memory_equal (zmq_msg_data (&record->envelope), envelope_text, strlen (envelope_text));
    assert_int_equal (zmq_msg_size (&record->payload), strlen (payload_text));
    if (*payload_text)
        assert_memory_equal (zmq_msg_data (&record->payload), payload_text, strlen (payload_text));
}

static void
test_append_and_get (void **state)
{
    hd_store_t *store = hd_store_new (1 << 20);
    assert_non_null (store);
    assert_int_equal (hd_store_next_seq (store), 1);
    assert_int_equal (hd_store_events (store), 0);
    assert_int_equal (hd_store_bytes (store), 0);
    assert_null (hd_store_get (store, 0));
    assert_null (hd_store_get (store, 1));

    assert_int_equal (s_append (store, "env-one", "payload-1", 1), 1);
    assert_int_equal (s_append (store, "env-two", "", 2), 2);
    assert_int_equal (s_append (store, "e3", "p3", 1), 3);
    assert_int_equal (hd_store_next_seq (store), 4);
    assert_int_equal (hd_store_events (store), 3);
    assert_int_equal (hd_store_bytes (store), 7 + 9 + 7 + 0 + 2 + 2);

    s_assert_record (store, 1, "env-one", "payload-1", 1);
    s_assert_record (store, 2, "env-two", "", 2);
    s_assert_record (store, 3, "e3", "p3", 1);
    assert_null (hd_store_get (store, 0));
    assert_null (hd_store_get (store, 4));
    assert_null (hd_store_get (store, UINT64_MAX));

    //  Destroy frees what is still held (valgrind checks)
    hd_store_destroy (&store);
    assert_null (store);
    hd_store_destroy (&store);
}

static void
test_holders_and_release (void **state)
{
    hd_store_t *store = hd_store_new (1 << 20);
    assert_int_equal (s_append (store, "abc", "defg", 3), 1);
    assert_int_equal (hd_store_bytes (store), 7);

    hd_store_release (store, 1);
    s_assert_record (store, 1, "abc", "defg", 2);
    hd_store_release (store, 1);
    s_assert_record (store, 1, "abc", "defg", 1);
    assert_int_equal (hd_store_events (store), 1);
    assert_int_equal (hd_store_bytes (store), 7);

    //  Last holder: the record goes
    hd_store_release (store, 1);
    assert_null (hd_store_get (store, 1));
    assert_int_equal (hd_store_events (store), 0);
    assert_int_equal (hd_store_bytes (store), 0);

    //  Releasing again, or seqs never appended, changes nothing
    hd_store_release (store, 1);
    hd_store_release (store, 0);
    hd_store_release (store, 99);
    assert_int_equal (hd_store_events (store), 0);
    assert_int_equal (hd_store_bytes (store), 0);
    assert_int_equal (hd_store_next_seq (store), 2);
    assert_int_equal (s_append (store, "x", "y", 1), 2);
    s_assert_record (store, 2, "x", "y", 1);
    hd_store_destroy (&store);
}

static void
test_zero_holders (void **state)
{
    hd_store_t *store = hd_store_new (1 << 20);
    //  Nothing held: the seq is used, nothing is kept
    assert_int_equal (s_append (store, "nobody", "wants", 0), 1);
    assert_null (hd_store_get (store, 1));
    assert_int_equal (hd_store_events (store), 0);
    assert_int_equal (hd_store_bytes (store), 0);
    assert_int_equal (hd_store_next_seq (store), 2);

    //  Same while something older is still held
    assert_int_equal (s_append (store, "held", "h", 1), 2);
    assert_int_equal (s_append (store, "skip", "s", 0), 3);
    assert_int_equal (s_append (store, "held2", "h2", 1), 4);
    assert_null (hd_store_get (store, 3));
    s_assert_record (store, 2, "held", "h", 1);
    s_assert_record (store, 4, "held2", "h2", 1);
    assert_int_equal (hd_store_events (store), 2);
    assert_int_equal (hd_store_bytes (store), 5 + 7);
    hd_store_release (store, 3); // not held: harmless
    assert_int_equal (hd_store_events (store), 2);
    hd_store_release (store, 2);
    hd_store_release (store, 4);
    assert_int_equal (hd_store_events (store), 0);
    assert_int_equal (hd_store_bytes (store), 0);
    assert_int_equal (hd_store_next_seq (store), 5);
    hd_store_destroy (&store);
}

static void
test_out_of_order_release (void **state)
{
    hd_store_t *store = hd_store_new (1 << 20);
    char text[32];
    for (int index = 1; index <= 10; index++) {
        snprintf (text, sizeof text, "envelope-%d", index);
        assert_int_equal (s_append (store, text, "p", 1), (uint64_t) index);
    }
    const int order[] = {5, 1, 10, 3, 2, 7};
    for (size_t index = 0; index < sizeof order / sizeof order[0]; index++) {
        hd_store_release (store, (uint64_t) order[index]);
        assert_null (hd_store_get (store, (uint64_t) order[index]));
    }
    assert_int_equal (hd_store_events (store), 4);
    const int kept[] = {4, 6, 8, 9};
    size_t bytes = 0;
    for (size_t index = 0; index < 4; index++) {
        snprintf (text, sizeof text, "envelope-%d", kept[index]);
        s_assert_record (store, (uint64_t) kept[index], text, "p", 1);
        bytes += strlen (text) + 1;
    }
    assert_int_equal (hd_store_bytes (store), bytes);

    //  Appends continue after the highest seq
    assert_int_equal (s_append (store, "next", "", 1), 11);
    s_assert_record (store, 11, "next", "", 1);
    for (size_t index = 0; index < 4; index++)
        hd_store_release (store, (uint64_t) kept[index]);
    hd_store_release (store, 11);
    assert_int_equal (hd_store_events (store), 0);
    assert_int_equal (hd_store_bytes (store), 0);
    hd_store_destroy (&store);
}

static void
test_ring_growth (void **state)
{
    hd_store_t *store = hd_store_new (SIZE_MAX);
    char text[32];
    //  seq 1 held throughout, so the ring must span everything after it
    assert_int_equal (s_append (store, "first", "payload-one", 1), 1);
    size_t held = 1;
    for (uint64_t seq = 2; seq <= 5001; seq++) {
        snprintf (text, sizeof text, "e%llu", (unsigned long long) seq);
        assert_int_equal (s_append (store, text, "pp", 1), seq);
        //  Release every third one right away, keep the rest outstanding
        //  (1024, 2048 and 4096, the seqs that move when the ring grows, are kept)
        if (seq % 3 == 0)
            hd_store_release (store, seq);
        else
            held++;
    }
    assert_int_equal (hd_store_events (store), held);
    s_assert_record (store, 1, "first", "payload-one", 1);
    //  Every held record survived the growth, at its own seq
    for (uint64_t seq = 2; seq <= 5001; seq++) {
        snprintf (text, sizeof text, "e%llu", (unsigned long long) seq);
        if (seq % 3 == 0)
            assert_null (hd_store_get (store, seq));
        else
            s_assert_record (store, seq, text, "pp", 1);
    }
    //  Zero-holder appends in the middle of a grown ring
    assert_int_equal (s_append (store, "skip", "", 0), 5002);
    assert_null (hd_store_get (store, 5002));
    for (uint64_t seq = 2; seq <= 5001; seq++)
        if (seq % 3 != 0)
            hd_store_release (store, seq);
    assert_int_equal (hd_store_events (store), 1);
    assert_int_equal (hd_store_bytes (store), 5 + 11);
    s_assert_record (store, 1, "first", "payload-one", 1);

    //  Still working normally afterwards, and the old record can go last
    assert_int_equal (s_append (store, "after", "a", 1), 5003);
    s_assert_record (store, 5003, "after", "a", 1);
    hd_store_release (store, 1);
    assert_null (hd_store_get (store, 1));
    assert_int_equal (hd_store_events (store), 1);
    assert_int_equal (hd_store_bytes (store), 6);
    //  The ring wraps many times with a small window
    for (uint64_t seq = 5004; seq < 5004 + 10000; seq++) {
        assert_int_equal (s_append (store, "w", "x", 1), seq);
        hd_store_release (store, seq - 1);
        assert_null (hd_store_get (store, seq - 1));
        assert_non_null (hd_store_get (store, seq));
    }
    assert_int_equal (hd_store_events (store), 1);
    assert_int_equal (hd_store_bytes (store), 2);
    hd_store_destroy (&store);
}

static void
test_ring_growth_wrapped (void **state)
{
    //  The window starts mid-ring when it has to grow: records that wrapped
    //  around the old ring must all land where the bigger ring looks for them
    hd_store_t *store = hd_store_new (SIZE_MAX);
    for (uint64_t seq = 1; seq <= 700; seq++) {
        assert_int_equal (s_append (store, "old", "", 1), seq);
        hd_store_release (store, seq);
    }
    char text[32];
    for (uint64_t seq = 701; seq <= 701 + 3000; seq++) {
        snprintf (text, sizeof text, "w%llu", (unsigned long long) seq);
        assert_int_equal (s_append (store, text, "p", 1), seq);
    }
    assert_int_equal (hd_store_events (store), 3001);
    for (uint64_t seq = 701; seq <= 701 + 3000; seq++) {
        snprintf (text, sizeof text, "w%llu", (unsigned long long) seq);
        s_assert_record (store, seq, text, "p", 1);
    }
    assert_null (hd_store_get (store, 700));
    assert_null (hd_store_get (store, 3702));
    //  Release newest first: nothing moves until the oldest goes
    for (uint64_t seq = 701 + 3000; seq > 701; seq--)
        hd_store_release (store, seq);
    assert_int_equal (hd_store_events (store), 1);
    s_assert_record (store, 701, "w701", "p", 1);
    hd_store_release (store, 701);
    assert_int_equal (hd_store_events (store), 0);
    assert_int_equal (hd_store_bytes (store), 0);
    assert_int_equal (s_append (store, "n", "", 1), 3702);
    s_assert_record (store, 3702, "n", "", 1);
    hd_store_destroy (&store);
}

static void
test_append_moves_without_copy (void **state)
{
    hd_store_t *store = hd_store_new (1 << 20);
    zmq_msg_t envelope, payload;
    assert_int_equal (zmq_msg_init_size (&envelope, 200), 0);
    assert_int_equal (zmq_msg_init_size (&payload, 4000), 0);
    memset (zmq_msg_data (&envelope), 'e', 200);
    memset (zmq_msg_data (&payload), 'p', 4000);
    void *payload_data = zmq_msg_data (&payload);
    assert_int_equal (hd_store_append (store, &envelope, &payload, 1), 1);
    assert_int_equal (zmq_msg_size (&envelope), 0);
    assert_int_equal (zmq_msg_size (&payload), 0);
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);

    hd_record_t *record = hd_store_get (store, 1);
    assert_non_null (record);
    assert_int_equal (zmq_msg_size (&record->payload), 4000);
    assert_ptr_equal (zmq_msg_data (&record->payload), payload_data);
    assert_int_equal (((char *) zmq_msg_data (&record->payload))[3999], 'p');
    assert_int_equal (((char *) zmq_msg_data (&record->envelope))[199], 'e');
    assert_int_equal (hd_store_bytes (store), 4200);
    hd_store_destroy (&store);
}

static void
test_full (void **state)
{
    hd_store_t *store = hd_store_new (100);
    assert_false (hd_store_full (store, 0));
    assert_false (hd_store_full (store, 100));
    assert_true (hd_store_full (store, 101));

    char text[61];
    memset (text, 'x', 60);
    text[60] = 0;
    assert_int_equal (s_append (store, text, "0123456789", 1), 1); // 70 bytes
    assert_false (hd_store_full (store, 30));
    assert_true (hd_store_full (store, 31));
    //  Zero-holder events take no room
    assert_int_equal (s_append (store, text, text, 0), 2);
    assert_int_equal (hd_store_bytes (store), 70);
    assert_false (hd_store_full (store, 30));
    //  Releasing gives the room back
    hd_store_release (store, 1);
    assert_false (hd_store_full (store, 100));
    assert_true (hd_store_full (store, 101));
    hd_store_destroy (&store);

    store = hd_store_new (0);
    assert_false (hd_store_full (store, 0));
    assert_true (hd_store_full (store, 1));
    hd_store_destroy (&store);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_append_and_get),
        cmocka_unit_test (test_holders_and_release),
        cmocka_unit_test (test_zero_holders),
        cmocka_unit_test (test_out_of_order_release),
        cmocka_unit_test (test_ring_growth),
        cmocka_unit_test (test_ring_growth_wrapped),
        cmocka_unit_test (test_append_moves_without_copy),
        cmocka_unit_test (test_full),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
