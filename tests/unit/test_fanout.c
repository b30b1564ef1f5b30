/*  fanout: runs of one type go as one FanoutBatch, other events as single
    messages, in seq order, with consecutive type_seqs; large payloads go
    alone. A real XPUB/SUB pair over inproc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <string.h>

#include "codec.h"
#include "fanout.h"
#include "herald.pb-c.h"

typedef struct {
    char type[32];
    uint64_t type_seq;
    uint64_t seq;
    size_t payload_size;
    int payload_fill;         // the byte every payload byte is, -1 when they differ
    const void *payload_data; // where a single message's payload arrived
    int message;              // index of the message that carried it
} s_seen_t;

static int
s_fill_of (const uint8_t *data, size_t size)
{
    for (size_t index = 1; index < size; index++)
        if (data[index] != data[0])
            return -1;
    return size ? data[0] : -1;
}

//  Receives messages until count events arrived; returns messages read.
static int
s_receive (zsock_t *sub, s_seen_t *seen, int count)
{
    int events = 0, messages = 0;
    while (events < count) {
        zmq_pollitem_t item = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
        assert_int_equal (zmq_poll (&item, 1, 5000), 1);
        zmsg_t *msg = zmsg_recv (sub);
        assert_non_null (msg);
        char *type = zframe_strdup (zmsg_first (msg));
        if (zmsg_size (msg) == 4) {
            zframe_t *header = zmsg_next (msg);
            zframe_t *envelope = zmsg_next (msg);
            zframe_t *payload = zmsg_next (msg);
            Herald__Fanout *fanout =
                herald__fanout__unpack (NULL, zframe_size (header), zframe_data (header));
            Herald__Event *event =
                herald__event__unpack (NULL, zframe_size (envelope), zframe_data (envelope));
            assert_non_null (fanout);
            assert_non_null (event);
            snprintf (seen[events].type, sizeof seen[events].type, "%s", type);
            seen[events].type_seq = fanout->type_seq;
            seen[events].seq = event->seq;
            seen[events].payload_size = zframe_size (payload);
            seen[events].payload_fill = s_fill_of (zframe_data (payload), zframe_size (payload));
            seen[events].payload_data = zframe_data (payload);
            seen[events].message = messages;
            events++;
            herald__fanout__free_unpacked (fanout, NULL);
            herald__event__free_unpacked (event, NULL);
        } else {
            assert_int_equal (zmsg_size (msg), 2);
            zframe_t *body = zmsg_next (msg);
            const uint8_t *cursor = zframe_data (body), *end = cursor + zframe_size (body);
            hd_fanout_view_t view;
            int rc;
            while ((rc = hd_decode_fanout_item (&cursor, end, &view)) == 1) {
                Herald__Event *event =
                    herald__event__unpack (NULL, view.envelope_size, view.envelope);
                assert_non_null (event);
                assert_string_equal (event->type, type);
                snprintf (seen[events].type, sizeof seen[events].type, "%s", type);
                seen[events].type_seq = view.type_seq;
                seen[events].seq = event->seq;
                seen[events].payload_size = view.payload_size;
                seen[events].payload_fill = s_fill_of (view.payload, view.payload_size);
                seen[events].message = messages;
                events++;
                herald__event__free_unpacked (event, NULL);
            }
            assert_int_equal (rc, 0);
        }
        free (type);
        zmsg_destroy (&msg);
        messages++;
    }
    return messages;
}

static Herald__Event
s_event (const char *type, uint64_t seq)
{
    Herald__Event event = HERALD__EVENT__INIT;
    event.id = (char *) "id";
    event.source = (char *) "s";
    event.type = (char *) type;
    event.seq = seq;
    return event;
}

//  An XPUB at endpoint with one SUB for everything, and a fan-out on it
//  that has seen the subscription.
static hd_fanout_t *
s_fanout_with_sub (const char *endpoint, uint64_t epoch, zsock_t **xpub, zsock_t **sub)
{
    *xpub = zsock_new_xpub (endpoint);
    *sub = zsock_new_sub (endpoint, "");
    assert_non_null (*xpub);
    assert_non_null (*sub);
    zmq_pollitem_t item = {zsock_resolve (*xpub), 0, ZMQ_POLLIN, 0};
    assert_int_equal (zmq_poll (&item, 1, 5000), 1); // the subscription arrived
    hd_fanout_t *fanout = hd_fanout_new (zsock_resolve (*xpub), epoch, 100);
    assert_non_null (fanout);
    hd_fanout_read_subscriptions (fanout);
    return fanout;
}

static void
test_runs_batch_in_order (void **state)
{
    zsock_t *xpub, *sub;
    hd_fanout_t *fanout = s_fanout_with_sub ("inproc://fanout-test", 7, &xpub, &sub);

    //  A A B A A A(big payload) A, then a flush
    const char *types[] = {"a.x", "a.x", "b.y", "a.x", "a.x", "a.x", "a.x"};
    const size_t payload_sizes[] = {3, 0, 3, 3, 3, 5000, 3};
    enum { COUNT = 7 };
    static char big[5000];
    for (int index = 0; index < COUNT; index++) {
        Herald__Event event = s_event (types[index], 100 + index);
        size_t size;
        uint8_t *packed = hd_proto_pack (&event.base, &size);
        zmq_msg_t envelope, payload;
        zmq_msg_init_size (&envelope, size);
        memcpy (zmq_msg_data (&envelope), packed, size);
        zmq_msg_init_size (&payload, payload_sizes[index]);
        memcpy (zmq_msg_data (&payload), big, payload_sizes[index]);
        hd_record_t record = hd_record_of (&envelope, &payload);
        assert_int_equal (hd_fanout_publish (fanout, types[index], strlen (types[index]), &record),
                          0);
        zmq_msg_close (&envelope); // the fan-out keeps its own references
        zmq_msg_close (&payload);
        free (packed);
    }
    hd_fanout_flush (fanout);

    s_seen_t seen[COUNT];
    int messages = s_receive (sub, seen, COUNT);
    //  [A A] [B] [A A] [A big] [A]
    assert_int_equal (messages, 5);
    const int expected_message[COUNT] = {0, 0, 1, 2, 2, 3, 4};
    const uint64_t expected_type_seq[COUNT] = {1, 2, 1, 3, 4, 5, 6};
    for (int index = 0; index < COUNT; index++) {
        assert_int_equal (seen[index].seq, 100 + index); // seq order kept
        assert_string_equal (seen[index].type, types[index]);
        assert_int_equal (seen[index].type_seq, expected_type_seq[index]);
        assert_int_equal (seen[index].payload_size, payload_sizes[index]);
        assert_int_equal (seen[index].message, expected_message[index]);
    }
    assert_int_equal (hd_fanout_sent (fanout), COUNT);
    assert_int_equal (hd_fanout_batches (fanout), 2);
    hd_fanout_flush (fanout); // nothing waiting: nothing sent
    assert_int_equal (hd_fanout_sent (fanout), COUNT);
    hd_fanout_destroy (&fanout);
    hd_fanout_destroy (&fanout);
    zsock_destroy (&sub);
    zsock_destroy (&xpub);
}

//  Borrowed bytes (parts without a frame, good until the flush returns):
//  whatever goes out as a frame of its own — a run of one, a large
//  payload — is a copy, so the memory can change right after. A frame is
//  still shared, not copied.
static void
test_borrowed_frames_are_copied (void **state)
{
    zsock_t *xpub, *sub;
    hd_fanout_t *fanout = s_fanout_with_sub ("inproc://fanout-borrowed", 1, &xpub, &sub);

    //  B alone, [A A], A with a large payload, A alone, and last an A whose
    //  large payload is its own (only its envelope is borrowed)
    const char *types[] = {"b.y", "a.x", "a.x", "a.x", "a.x", "a.x"};
    const size_t payload_sizes[] = {40, 40, 40, 5000, 40, 6000};
    enum { COUNT = 6, OWNED = 5 };
    static uint8_t envelopes[COUNT][64];
    static uint8_t payloads[COUNT][6000];
    size_t envelope_sizes[COUNT];
    const void *owned_data = NULL;
    for (int index = 0; index < COUNT; index++) {
        Herald__Event event = s_event (types[index], 200 + index);
        assert_true (herald__event__get_packed_size (&event) <= sizeof envelopes[index]);
        envelope_sizes[index] = herald__event__pack (&event, envelopes[index]);
        memset (payloads[index], 'a' + index, payload_sizes[index]);
        hd_record_t record = {NULL,
                              NULL,
                              envelopes[index],
                              payloads[index],
                              envelope_sizes[index],
                              payload_sizes[index]};
        zmq_msg_t payload;
        zmq_msg_init (&payload);
        if (index == OWNED) {
            zmq_msg_close (&payload);
            zmq_msg_init_size (&payload, payload_sizes[index]);
            memset (zmq_msg_data (&payload), 'a' + index, payload_sizes[index]);
            owned_data = zmq_msg_data (&payload);
            record.payload_frame = &payload;
            record.payload = owned_data;
        }
        assert_int_equal (hd_fanout_publish (fanout, types[index], strlen (types[index]), &record),
                          0);
        zmq_msg_close (&payload);
    }
    hd_fanout_flush (fanout);
    //  The caller's memory goes on to other things before anyone reads
    memset (envelopes, 0xFF, sizeof envelopes);
    memset (payloads, 'z', sizeof payloads);

    s_seen_t seen[COUNT];
    assert_int_equal (s_receive (sub, seen, COUNT), 5);
    for (int index = 0; index < COUNT; index++) {
        assert_int_equal (seen[index].seq, 200 + index);
        assert_int_equal (seen[index].payload_size, payload_sizes[index]);
        assert_int_equal (seen[index].payload_fill, 'a' + index);
    }
    //  inproc hands the frame itself over: the same bytes, not a copy
    assert_ptr_equal (seen[OWNED].payload_data, owned_data);
    hd_fanout_destroy (&fanout);
    zsock_destroy (&sub);
    zsock_destroy (&xpub);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_runs_batch_in_order),
        cmocka_unit_test (test_borrowed_frames_are_copied),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
