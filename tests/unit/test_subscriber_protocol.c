/*  Subscriber against a scripted XPUB: FanoutBatch messages give their
    events one per receive, in order, with gaps and unreadable items
    counted, and a subscriber destroyed half way through a batch frees
    the rest (the memcheck run catches a leak). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <string.h>

#include "codec.h"
#include "event.h"
#include "herald.h"

#define WAIT_MS 5000
#define TYPE    "orders.placed"

typedef struct {
    zsock_t *xpub;
    char endpoint[64];
    hd_subscriber_t *subscriber;
} s_fixture_t;

//  An XPUB and a subscriber to everything, joined: the subscription has
//  reached the XPUB, so nothing sent after is dropped as a slow joiner.
static int
s_setup (void **state)
{
    static int counter;
    s_fixture_t *self = calloc (1, sizeof *self);
    assert_non_null (self);
    snprintf (self->endpoint, sizeof self->endpoint, "inproc://fake-xpub-%d-%d", getpid (),
              ++counter);
    self->xpub = zsock_new (ZMQ_XPUB);
    assert_non_null (self->xpub);
    zsock_set_linger (self->xpub, 0);
    assert_int_equal (zsock_bind (self->xpub, "%s", self->endpoint), 0);
    self->subscriber = hd_subscriber_new (self->endpoint, NULL);
    assert_non_null (self->subscriber);
    assert_int_equal (hd_subscriber_subscribe (self->subscriber, ""), 0);
    zpoller_t *poller = zpoller_new (self->xpub, NULL);
    assert_ptr_equal (zpoller_wait (poller, WAIT_MS), self->xpub);
    zpoller_destroy (&poller);
    zframe_t *subscription = zframe_recv (self->xpub);
    assert_non_null (subscription);
    assert_int_equal (zframe_data (subscription)[0], 1);
    zframe_destroy (&subscription);
    *state = self;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *self = *state;
    hd_subscriber_destroy (&self->subscriber);
    zsock_destroy (&self->xpub);
    free (self);
    return 0;
}

//  A FanoutBatch body under construction
typedef struct {
    uint8_t data[8192];
    size_t size;
} s_batch_t;

static void
s_add_item (s_batch_t *batch, uint64_t epoch, uint64_t type_seq, const char *id)
{
    hd_event_t *event = hd_event_new (TYPE);
    assert_non_null (event);
    assert_int_equal (hd_event_set_id (event, id), 0);
    assert_int_equal (hd_event_set_payload (event, id, strlen (id)), 0);
    size_t envelope_size;
    uint8_t *envelope = hd_event_encode (event, &envelope_size);
    assert_non_null (envelope);
    assert_true (batch->size + envelope_size + strlen (id) + HD_DELIVERY_OVERHEAD <=
                 sizeof batch->data);
    batch->size += hd_encode_fanout_item (batch->data + batch->size, epoch, type_seq, envelope,
                                          envelope_size, id, strlen (id));
    free (envelope);
    hd_event_destroy (&event);
}

//  An item whose Event cannot be read: a string field longer than the item
static void
s_add_unreadable_item (s_batch_t *batch, uint64_t epoch, uint64_t type_seq)
{
    const uint8_t broken[] = {0x0a, 0x40, 'x'};
    batch->size += hd_encode_fanout_item (batch->data + batch->size, epoch, type_seq, broken,
                                          sizeof broken, "", 0);
}

static void
s_send_batch (s_fixture_t *self, const s_batch_t *batch)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, TYPE);
    zmsg_addmem (msg, batch->data, batch->size);
    assert_int_equal (zmsg_send (&msg, self->xpub), 0);
}

static void
s_expect_event (s_fixture_t *self, const char *id)
{
    hd_event_t *event = hd_subscriber_recv (self->subscriber, WAIT_MS);
    assert_non_null (event);
    assert_string_equal (hd_event_id (event), id);
    assert_string_equal (hd_event_type (event), TYPE);
    assert_int_equal (hd_event_payload_size (event), strlen (id));
    assert_memory_equal (hd_event_payload (event), id, strlen (id));
    hd_event_destroy (&event);
}

//  Every item of two batches, in order; nothing after
static void
test_batches_in_order (void **state)
{
    s_fixture_t *self = *state;
    s_batch_t first = {.size = 0}, second = {.size = 0};
    s_add_item (&first, 7, 1, "e1");
    s_add_item (&first, 7, 2, "e2");
    s_add_item (&first, 7, 3, "e3");
    s_add_item (&second, 7, 4, "e4");
    s_send_batch (self, &first);
    s_send_batch (self, &second);
    s_expect_event (self, "e1");
    s_expect_event (self, "e2");
    s_expect_event (self, "e3");
    s_expect_event (self, "e4");
    assert_null (hd_subscriber_recv (self->subscriber, 0));
    assert_int_equal (hd_subscriber_received (self->subscriber), 4);
    assert_int_equal (hd_subscriber_gaps (self->subscriber), 0);
    assert_int_equal (hd_subscriber_malformed (self->subscriber), 0);
}

//  A jump in type_seq is a gap; an unreadable item is counted and skipped,
//  the items after it still come; a malformed rest is counted once
static void
test_gaps_and_unreadable_items (void **state)
{
    s_fixture_t *self = *state;
    s_batch_t batch = {.size = 0};
    s_add_item (&batch, 7, 1, "e1");
    s_add_unreadable_item (&batch, 7, 2);
    s_add_item (&batch, 7, 3, "e3");
    s_add_item (&batch, 7, 6, "e6"); // 4 and 5 never came
    const uint8_t garbage[] = {0x0a, 0x7f, 0x00};
    memcpy (batch.data + batch.size, garbage, sizeof garbage);
    batch.size += sizeof garbage;
    s_send_batch (self, &batch);
    s_expect_event (self, "e1");
    s_expect_event (self, "e3");
    s_expect_event (self, "e6");
    assert_null (hd_subscriber_recv (self->subscriber, 0));
    assert_int_equal (hd_subscriber_received (self->subscriber), 3);
    assert_int_equal (hd_subscriber_gaps (self->subscriber), 3); // 2 (unreadable), 4, 5
    assert_int_equal (hd_subscriber_malformed (self->subscriber), 2);
}

//  A new epoch (a broker that lost its counters) starts every type afresh
static void
test_new_epoch_is_no_gap (void **state)
{
    s_fixture_t *self = *state;
    s_batch_t batch = {.size = 0};
    s_add_item (&batch, 7, 10, "e10");
    s_add_item (&batch, 8, 1, "f1");
    s_add_item (&batch, 8, 2, "f2");
    s_send_batch (self, &batch);
    s_expect_event (self, "e10");
    s_expect_event (self, "f1");
    s_expect_event (self, "f2");
    assert_int_equal (hd_subscriber_gaps (self->subscriber), 0);
}

//  A recycled event's memory takes the next item when it has the room:
//  the event is then the next one whole, nothing of the old one left
static void
test_recycled_memory (void **state)
{
    s_fixture_t *self = *state;
    char long_id[300];
    memset (long_id, 'L', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    s_batch_t batch = {.size = 0};
    s_add_item (&batch, 7, 1, "e1");
    s_add_item (&batch, 7, 2, long_id);
    s_add_item (&batch, 7, 3, "e3");
    s_send_batch (self, &batch);
    hd_event_t *event = hd_subscriber_recv (self->subscriber, WAIT_MS);
    assert_string_equal (hd_event_id (event), "e1");
    hd_subscriber_recycle (self->subscriber, &event);
    assert_null (event);
    event = hd_subscriber_recv (self->subscriber, WAIT_MS); // too large for e1's memory
    assert_string_equal (hd_event_id (event), long_id);
    assert_int_equal (hd_event_payload_size (event), strlen (long_id));
    const hd_event_t *large = event;
    hd_subscriber_recycle (self->subscriber, &event);
    hd_event_t *extra = hd_event_new ("t.extra");
    hd_subscriber_recycle (self->subscriber, &extra); // one is kept: this one goes
    assert_null (extra);
    event = hd_subscriber_recv (self->subscriber, WAIT_MS);
    assert_ptr_equal (event, large);
    assert_string_equal (hd_event_id (event), "e3");
    assert_string_equal (hd_event_type (event), TYPE);
    assert_int_equal (hd_event_payload_size (event), 2);
    assert_memory_equal (hd_event_payload (event), "e3", 2);
    hd_subscriber_recycle (self->subscriber, &event); // destroy with one kept
    assert_int_equal (hd_subscriber_received (self->subscriber), 3);
}

//  Destroyed with two events of a batch not yet taken: nothing leaks
static void
test_destroy_mid_batch (void **state)
{
    s_fixture_t *self = *state;
    s_batch_t batch = {.size = 0};
    s_add_item (&batch, 7, 1, "e1");
    s_add_item (&batch, 7, 2, "e2");
    s_add_item (&batch, 7, 3, "e3");
    s_send_batch (self, &batch);
    s_expect_event (self, "e1");
    hd_subscriber_destroy (&self->subscriber);
    assert_null (self->subscriber);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_batches_in_order, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_recycled_memory, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_gaps_and_unreadable_items, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_new_epoch_is_no_gap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_destroy_mid_batch, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
