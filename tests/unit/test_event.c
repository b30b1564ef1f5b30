/*  Unit tests for hd_event_t: setters copy, getters never return NULL,
    attributes, payload, dup, the wire round trip and causality. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <string.h>

#include "herald.h"
#include "event.h"

static void
test_new_defaults (void **state)
{
    hd_event_t *event = hd_event_new ("orders.placed");
    assert_non_null (event);
    assert_string_equal (hd_event_type (event), "orders.placed");
    assert_string_equal (hd_event_id (event), "");
    assert_string_equal (hd_event_source (event), "");
    assert_string_equal (hd_event_subject (event), "");
    assert_string_equal (hd_event_correlation_id (event), "");
    assert_null (hd_event_attribute (event, "missing"));
    assert_int_equal (hd_event_payload_size (event), 0);
    assert_int_equal (hd_event_seq (event), 0);
    hd_event_destroy (&event);
    assert_null (event);
    hd_event_destroy (&event); // idempotent

    event = hd_event_new (NULL);
    assert_non_null (event);
    assert_string_equal (hd_event_type (event), "");
    hd_event_destroy (&event);
}

static void
test_setters_copy (void **state)
{
    hd_event_t *event = hd_event_new ("t");
    char buffer[32];
    strcpy (buffer, "first");
    assert_int_equal (hd_event_set_id (event, buffer), 0);
    assert_int_equal (hd_event_set_source (event, buffer), 0);
    assert_int_equal (hd_event_set_subject (event, buffer), 0);
    assert_int_equal (hd_event_set_content_type (event, buffer), 0);
    assert_int_equal (hd_event_set_schema_version (event, buffer), 0);
    assert_int_equal (hd_event_set_partition_key (event, buffer), 0);
    assert_int_equal (hd_event_set_correlation_id (event, buffer), 0);
    assert_int_equal (hd_event_set_causation_id (event, buffer), 0);
    assert_int_equal (hd_event_set_traceparent (event, buffer), 0);
    strcpy (buffer, "XXXXX");
    assert_string_equal (hd_event_id (event), "first");
    assert_string_equal (hd_event_source (event), "first");
    assert_string_equal (hd_event_subject (event), "first");
    assert_string_equal (hd_event_content_type (event), "first");
    assert_string_equal (hd_event_schema_version (event), "first");
    assert_string_equal (hd_event_partition_key (event), "first");
    assert_string_equal (hd_event_correlation_id (event), "first");
    assert_string_equal (hd_event_causation_id (event), "first");
    assert_string_equal (hd_event_traceparent (event), "first");

    //  Replacing frees the old value (ASan/valgrind) and NULL clears
    assert_int_equal (hd_event_set_id (event, "second"), 0);
    assert_string_equal (hd_event_id (event), "second");
    assert_int_equal (hd_event_set_id (event, NULL), 0);
    assert_string_equal (hd_event_id (event), "");
    assert_int_equal (hd_event_set_type (event, "other.type"), 0);
    assert_string_equal (hd_event_type (event), "other.type");

    hd_event_set_time_us (event, 1234567);
    assert_int_equal (hd_event_time_us (event), 1234567);
    hd_event_destroy (&event);
}

static void
test_attributes (void **state)
{
    hd_event_t *event = hd_event_new ("t");
    assert_int_equal (hd_event_attribute_count (event), 0);
    assert_int_equal (hd_event_set_attribute (event, "region", "eu"), 0);
    assert_int_equal (hd_event_set_attribute (event, "tenant", "acme"), 0);
    assert_string_equal (hd_event_attribute (event, "region"), "eu");
    assert_string_equal (hd_event_attribute (event, "tenant"), "acme");
    assert_int_equal (hd_event_attribute_count (event), 2);

    //  Setting again replaces, not appends
    assert_int_equal (hd_event_set_attribute (event, "region", "us"), 0);
    assert_int_equal (hd_event_attribute_count (event), 2);
    assert_string_equal (hd_event_attribute (event, "region"), "us");
    assert_string_equal (hd_event_attribute_key (event, 0), "region");
    assert_string_equal (hd_event_attribute_value (event, 0), "us");
    assert_string_equal (hd_event_attribute_key (event, 1), "tenant");
    assert_null (hd_event_attribute_key (event, 2));

    //  NULL removes
    assert_int_equal (hd_event_set_attribute (event, "region", NULL), 0);
    assert_int_equal (hd_event_attribute_count (event), 1);
    assert_null (hd_event_attribute (event, "region"));
    assert_string_equal (hd_event_attribute (event, "tenant"), "acme");
    assert_int_equal (hd_event_set_attribute (event, "absent", NULL), 0);
    assert_int_equal (hd_event_set_attribute (event, NULL, "x"), -1);
    hd_event_destroy (&event);
}

static void
test_payload_and_dup (void **state)
{
    hd_event_t *event = hd_event_new ("t");
    char data[2000];
    for (size_t index = 0; index < sizeof data; index++)
        data[index] = (char) index;
    assert_int_equal (hd_event_set_payload (event, data, sizeof data), 0);
    data[0] = 99; // the event holds its own copy
    assert_int_equal (hd_event_payload_size (event), sizeof data);
    assert_int_equal (((const char *) hd_event_payload (event))[0], 0);
    assert_int_equal (((const char *) hd_event_payload (event))[1999], (char) 1999);
    hd_event_set_id (event, "id-1");
    hd_event_set_attribute (event, "k", "v");

    hd_event_t *copy = hd_event_dup (event);
    assert_non_null (copy);
    hd_event_set_id (event, "changed");
    hd_event_set_attribute (event, "k", "changed");
    assert_int_equal (hd_event_set_payload (event, "small", 5), 0);
    assert_string_equal (hd_event_id (copy), "id-1");
    assert_string_equal (hd_event_attribute (copy, "k"), "v");
    assert_int_equal (hd_event_payload_size (copy), 2000);
    assert_int_equal (((const char *) hd_event_payload (copy))[1], 1);
    assert_string_equal (hd_event_type (copy), "t");
    hd_event_destroy (&event);
    //  The copy outlives the original
    assert_int_equal (((const char *) hd_event_payload (copy))[1999], (char) 1999);
    hd_event_destroy (&copy);

    assert_int_equal (hd_event_set_payload (event = hd_event_new ("t"), NULL, 0), 0);
    assert_int_equal (hd_event_payload_size (event), 0);
    assert_null (hd_event_dup (NULL));
    hd_event_destroy (&event);
}

static hd_event_t *
s_full_event (void)
{
    hd_event_t *event = hd_event_new ("orders.placed");
    hd_event_set_id (event, "order-42");
    hd_event_set_source (event, "shop");
    hd_event_set_subject (event, "customer/7");
    hd_event_set_content_type (event, "application/json");
    hd_event_set_schema_version (event, "2");
    hd_event_set_partition_key (event, "customer-7");
    hd_event_set_correlation_id (event, "corr-1");
    hd_event_set_causation_id (event, "cause-1");
    hd_event_set_traceparent (event, "00-abc-def-01");
    hd_event_set_attribute (event, "region", "eu");
    hd_event_set_time_us (event, 1700000000000000ULL);
    hd_event_set_payload (event, "{\"total\":12}", 12);
    return event;
}

static void
s_assert_same (const hd_event_t *a, const hd_event_t *b)
{
    assert_string_equal (hd_event_id (a), hd_event_id (b));
    assert_string_equal (hd_event_source (a), hd_event_source (b));
    assert_string_equal (hd_event_type (a), hd_event_type (b));
    assert_string_equal (hd_event_subject (a), hd_event_subject (b));
    assert_string_equal (hd_event_content_type (a), hd_event_content_type (b));
    assert_string_equal (hd_event_schema_version (a), hd_event_schema_version (b));
    assert_string_equal (hd_event_partition_key (a), hd_event_partition_key (b));
    assert_string_equal (hd_event_correlation_id (a), hd_event_correlation_id (b));
    assert_string_equal (hd_event_causation_id (a), hd_event_causation_id (b));
    assert_string_equal (hd_event_traceparent (a), hd_event_traceparent (b));
    assert_string_equal (hd_event_attribute (a, "region"), hd_event_attribute (b, "region"));
    assert_int_equal (hd_event_time_us (a), hd_event_time_us (b));
    assert_int_equal (hd_event_payload_size (a), hd_event_payload_size (b));
    assert_memory_equal (hd_event_payload (a), hd_event_payload (b), hd_event_payload_size (a));
}

static void
test_encode_decode_buffer (void **state)
{
    hd_event_t *event = s_full_event ();
    size_t size;
    uint8_t *packed = hd_event_encode (event, &size);
    assert_non_null (packed);
    assert_true (size > 0);
    hd_event_t *decoded = hd_event_decode (packed, size, NULL);
    assert_non_null (decoded);
    assert_string_equal (hd_event_id (decoded), "order-42");
    assert_string_equal (hd_event_attribute (decoded, "region"), "eu");
    assert_int_equal (hd_event_payload_size (decoded), 0); // payload travels apart
    //  Decoded events are mutable like built ones
    assert_int_equal (hd_event_set_id (decoded, "new"), 0);
    assert_int_equal (hd_event_set_attribute (decoded, "region", "us"), 0);
    assert_int_equal (hd_event_set_attribute (decoded, "more", "x"), 0);
    assert_string_equal (hd_event_attribute (decoded, "region"), "us");
    assert_string_equal (hd_event_id (decoded), "new");
    assert_string_equal (hd_event_type (decoded), hd_event_type (event)); // the rest is kept
    assert_string_equal (hd_event_source (decoded), hd_event_source (event));
    hd_event_destroy (&decoded);

    //  Many tiny attributes decode past the event's arena (malloc takes the
    //  rest); reading, changing and freeing such an event is still right
    hd_event_t *crowded = hd_event_new ("t.x");
    char key[16];
    for (int index = 0; index < 200; index++) {
        snprintf (key, sizeof key, "k%d", index);
        assert_int_equal (hd_event_set_attribute (crowded, key, "v"), 0);
    }
    uint8_t *crowded_packed = hd_event_encode (crowded, &size);
    hd_event_t *crowded_decoded = hd_event_decode (crowded_packed, size, NULL);
    assert_non_null (crowded_decoded);
    assert_int_equal (hd_event_attribute_count (crowded_decoded), 200);
    assert_string_equal (hd_event_attribute (crowded_decoded, "k199"), "v");
    hd_event_t *untouched = hd_event_decode (crowded_packed, size, NULL);
    hd_event_destroy (&untouched); // freed from the arena layout
    assert_int_equal (hd_event_set_attribute (crowded_decoded, "k0", NULL), 0);
    assert_int_equal (hd_event_attribute_count (crowded_decoded), 199);
    assert_null (hd_event_attribute (crowded_decoded, "k0"));
    free (crowded_packed);
    hd_event_destroy (&crowded_decoded);
    hd_event_destroy (&crowded);

    //  Garbage does not decode
    uint8_t garbage[] = {0xFF, 0xFF, 0xFF, 0xFF, 0x0F};
    assert_null (hd_event_decode (garbage, sizeof garbage, NULL));
    free (packed);
    hd_event_destroy (&event);
}

static void
test_round_trip_frames (void **state)
{
    zsock_t *sender = zsock_new_pair ("@inproc://test-event");
    zsock_t *receiver = zsock_new_pair (">inproc://test-event");
    assert_non_null (sender);
    assert_non_null (receiver);
    hd_event_t *event = s_full_event ();

    //  A PUBLISH as the publisher sends it, read back with the codec
    Herald__Publish publish = HERALD__PUBLISH__INIT;
    publish.corr = 77;
    assert_int_equal (hd_send_header (zsock_resolve (sender), HD_CMD_PUBLISH, ZMQ_SNDMORE), 0);
    assert_int_equal (hd_send_proto (zsock_resolve (sender), &publish.base, ZMQ_SNDMORE), 0);
    assert_int_equal (hd_event_send (event, zsock_resolve (sender), 0), 0);
    //  The event is still whole after sending (payload shared, not moved)
    assert_int_equal (hd_event_payload_size (event), 12);

    hd_frames_t frames;
    assert_int_equal (hd_frames_recv (&frames, zsock_resolve (receiver), 0), 0);
    assert_int_equal (frames.count, 4);
    int command = 0;
    assert_int_equal (
        hd_header_decode (hd_frames_data (&frames, 0), hd_frames_size (&frames, 0), &command), 0);
    assert_int_equal (command, HD_CMD_PUBLISH);
    Herald__Publish *body =
        herald__publish__unpack (NULL, hd_frames_size (&frames, 1), hd_frames_data (&frames, 1));
    assert_non_null (body);
    assert_int_equal (body->corr, 77);
    herald__publish__free_unpacked (body, NULL);
    hd_event_t *decoded = hd_event_decode (hd_frames_data (&frames, 2), hd_frames_size (&frames, 2),
                                           &frames.frame[3]);
    hd_frames_close (&frames);
    assert_non_null (decoded);
    s_assert_same (event, decoded);
    hd_event_set_seq (decoded, 9);
    assert_int_equal (hd_event_seq (decoded), 9);

    hd_event_destroy (&decoded);
    hd_event_destroy (&event);
    zsock_destroy (&receiver);
    zsock_destroy (&sender);
}

static void
test_inherit (void **state)
{
    hd_event_t *parent = hd_event_new ("orders.placed");
    hd_event_set_id (parent, "parent-1");
    hd_event_t *child = hd_event_new ("invoices.created");

    //  A root parent starts the correlation with its own id
    assert_int_equal (hd_event_inherit (child, parent), 0);
    assert_string_equal (hd_event_correlation_id (child), "parent-1");
    assert_string_equal (hd_event_causation_id (child), "parent-1");

    //  Further down the chain the correlation id is carried, causation is the parent
    hd_event_t *grandchild = hd_event_new ("emails.sent");
    hd_event_set_id (child, "child-1");
    assert_int_equal (hd_event_inherit (grandchild, child), 0);
    assert_string_equal (hd_event_correlation_id (grandchild), "parent-1");
    assert_string_equal (hd_event_causation_id (grandchild), "child-1");

    //  Inheriting from itself must not read freed memory
    assert_int_equal (hd_event_inherit (grandchild, grandchild), 0);
    assert_string_equal (hd_event_correlation_id (grandchild), "parent-1");
    hd_event_destroy (&grandchild);
    hd_event_destroy (&child);
    hd_event_destroy (&parent);
}

static void
test_random_id (void **state)
{
    hd_event_t *a = hd_event_new ("t");
    hd_event_t *b = hd_event_new ("t");
    assert_int_equal (hd_event_set_random_id (a), 0);
    assert_int_equal (hd_event_set_random_id (b), 0);
    assert_int_equal (strlen (hd_event_id (a)), 32);
    assert_int_equal (strspn (hd_event_id (a), "0123456789abcdef"), 32);
    assert_string_not_equal (hd_event_id (a), hd_event_id (b));
    hd_event_destroy (&a);
    hd_event_destroy (&b);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_new_defaults),
        cmocka_unit_test (test_setters_copy),
        cmocka_unit_test (test_attributes),
        cmocka_unit_test (test_payload_and_dup),
        cmocka_unit_test (test_encode_decode_buffer),
        cmocka_unit_test (test_round_trip_frames),
        cmocka_unit_test (test_inherit),
        cmocka_unit_test (test_random_id),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
