/*  Unit tests for hd_event_t: setters copy, getters never return NULL,
    attributes, payload, dup, the wire round trip and causality; the hand-
    written encoding against protobuf-c, unknown fields kept, and long
    random edit sequences against a simple model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <string.h>

#include "herald.h"
#include "event.h"
#include "envelope.h"
#include "herald.pb-c.h"

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
    assert_int_equal (hd_event_attribute_count (a), hd_event_attribute_count (b));
    for (size_t index = 0; index < hd_event_attribute_count (a); index++) {
        assert_string_equal (hd_event_attribute_key (a, index), hd_event_attribute_key (b, index));
        assert_string_equal (hd_event_attribute_value (a, index),
                             hd_event_attribute_value (b, index));
    }
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

    //  Many tiny attributes: reading, changing and freeing such an event
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
    hd_event_destroy (&untouched); // freed as decoded
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

//  A random string of up to max characters, some of them multi-byte.
static char *
s_random_text (unsigned *seed, int max)
{
    static const char *pieces[] = {
        "a", "b", "z", "0", ".", "-", " ", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    int count = rand_r (seed) % (max + 1);
    char *text = calloc (1, (size_t) count * 4 + 1);
    for (int index = 0; index < count; index++)
        strcat (text, pieces[rand_r (seed) % 10]);
    return text;
}

static uint64_t
s_random_varint (unsigned *seed)
{
    switch (rand_r (seed) % 4) {
        case 0: return 0;
        case 1: return (uint64_t) (rand_r (seed) % 200);
        case 2: return UINT64_MAX - (uint64_t) (rand_r (seed) % 3);
        default: return (uint64_t) rand_r (seed) << 31 | (uint64_t) rand_r (seed);
    }
}

static void
s_string_fields (Herald__Event *event, char **fields[HD_ENVELOPE_STRINGS])
{
    char **all[] = {
        &event->id,           &event->source,         &event->type,          &event->subject,
        &event->content_type, &event->schema_version, &event->partition_key, &event->correlation_id,
        &event->causation_id, &event->traceparent};
    memcpy (fields, all, sizeof all);
}

static const char *
s_getter (const hd_event_t *event, int index)
{
    switch (index) {
        case 0: return hd_event_id (event);
        case 1: return hd_event_source (event);
        case 2: return hd_event_type (event);
        case 3: return hd_event_subject (event);
        case 4: return hd_event_content_type (event);
        case 5: return hd_event_schema_version (event);
        case 6: return hd_event_partition_key (event);
        case 7: return hd_event_correlation_id (event);
        case 8: return hd_event_causation_id (event);
        default: return hd_event_traceparent (event);
    }
}

static int
s_setter (hd_event_t *event, int index, const char *value)
{
    switch (index) {
        case 0: return hd_event_set_id (event, value);
        case 1: return hd_event_set_source (event, value);
        case 2: return hd_event_set_type (event, value);
        case 3: return hd_event_set_subject (event, value);
        case 4: return hd_event_set_content_type (event, value);
        case 5: return hd_event_set_schema_version (event, value);
        case 6: return hd_event_set_partition_key (event, value);
        case 7: return hd_event_set_correlation_id (event, value);
        case 8: return hd_event_set_causation_id (event, value);
        default: return hd_event_set_traceparent (event, value);
    }
}

static void
s_assert_matches_proto (const hd_event_t *mine, Herald__Event *theirs)
{
    char **fields[HD_ENVELOPE_STRINGS];
    s_string_fields (theirs, fields);
    for (int index = 0; index < HD_ENVELOPE_STRINGS; index++)
        assert_string_equal (s_getter (mine, index), *fields[index] ? *fields[index] : "");
    assert_true (hd_event_time_us (mine) == theirs->time_us);
    assert_true (hd_event_seq (mine) == theirs->seq);
    assert_true (hd_event_recorded_time_us (mine) == theirs->recorded_time_us);
    assert_int_equal (hd_event_attribute_count (mine), theirs->n_attributes);
    for (size_t index = 0; index < theirs->n_attributes; index++) {
        assert_string_equal (hd_event_attribute_key (mine, index), theirs->attributes[index]->key);
        assert_string_equal (hd_event_attribute_value (mine, index),
                             theirs->attributes[index]->value);
    }
}

//  Random events packed by protobuf-c decode to the same fields; ours
//  encode to the same bytes protobuf-c writes.
static void
test_against_protobuf_c (void **state)
{
    unsigned seed = 7;
    for (int round = 0; round < 3000; round++) {
        Herald__Event event = HERALD__EVENT__INIT;
        char **fields[HD_ENVELOPE_STRINGS];
        s_string_fields (&event, fields);
        for (int index = 0; index < HD_ENVELOPE_STRINGS; index++)
            *fields[index] = rand_r (&seed) % 3 ? s_random_text (&seed, 40) : strdup ("");
        event.time_us = s_random_varint (&seed);
        event.seq = s_random_varint (&seed);
        event.recorded_time_us = s_random_varint (&seed);
        size_t entries = (size_t) (rand_r (&seed) % 4);
        Herald__Event__AttributesEntry storage[3], *pointers[3];
        for (size_t index = 0; index < entries; index++) {
            herald__event__attributes_entry__init (&storage[index]);
            storage[index].key = s_random_text (&seed, 6);
            storage[index].value = s_random_text (&seed, 12);
            pointers[index] = &storage[index];
        }
        event.n_attributes = entries;
        event.attributes = pointers;
        size_t size;
        uint8_t *packed = hd_proto_pack (&event.base, &size);

        hd_event_t *mine = hd_event_decode (packed, size, NULL);
        assert_non_null (mine);
        s_assert_matches_proto (mine, &event);
        assert_int_equal (hd_event_encoded_size (mine), size);
        size_t mine_size;
        uint8_t *mine_packed = hd_event_encode (mine, &mine_size);
        assert_int_equal (mine_size, size);
        assert_memory_equal (mine_packed, packed, size);
        Herald__Event *back = herald__event__unpack (NULL, mine_size, mine_packed);
        assert_non_null (back);
        s_assert_matches_proto (mine, back);
        herald__event__free_unpacked (back, NULL);

        //  Damage: accepted exactly when the scanner accepts, and then stable
        packed[rand_r (&seed) % size] ^= (uint8_t) (1 + rand_r (&seed) % 255);
        size_t cut = size - (size_t) (rand_r (&seed) % 3 == 0 ? rand_r (&seed) % (size + 1) : 0);
        hd_envelope_t scanned;
        bool valid = hd_envelope_scan (&scanned, packed, cut, false) == HD_ENVELOPE_OK;
        hd_event_t *damaged = hd_event_decode (packed, cut, NULL);
        assert_int_equal (damaged != NULL, valid);
        if (damaged) {
            uint8_t *again = hd_event_encode (damaged, &mine_size);
            hd_event_t *twice = hd_event_decode (again, mine_size, NULL);
            assert_non_null (twice);
            size_t twice_size;
            uint8_t *twice_packed = hd_event_encode (twice, &twice_size);
            assert_int_equal (twice_size, mine_size);
            assert_memory_equal (twice_packed, again, mine_size);
            hd_event_destroy (&twice);
            free (twice_packed);
            free (again);
        }
        hd_event_destroy (&damaged);
        hd_event_destroy (&mine);
        free (mine_packed);
        free (packed);
        for (int index = 0; index < HD_ENVELOPE_STRINGS; index++)
            free (*fields[index]);
        for (size_t index = 0; index < entries; index++) {
            free (storage[index].key);
            free (storage[index].value);
        }
    }
}

//  Fields a newer peer added travel on unchanged.
static void
test_unknown_fields_kept (void **state)
{
    hd_event_t *event = s_full_event ();
    size_t size;
    uint8_t *packed = hd_event_encode (event, &size);
    //  field 30 = varint 7, field 31 = bytes "xyz"
    const uint8_t unknown[] = {0xF0, 0x01, 0x07, 0xFA, 0x01, 0x03, 'x', 'y', 'z'};
    uint8_t *longer = malloc (size + sizeof unknown);
    memcpy (longer, packed, size);
    memcpy (longer + size, unknown, sizeof unknown);
    hd_event_t *decoded = hd_event_decode (longer, size + sizeof unknown, NULL);
    assert_non_null (decoded);
    assert_string_equal (hd_event_id (decoded), "order-42");
    assert_int_equal (hd_event_set_subject (decoded, "a-longer-subject-than-before"), 0);
    size_t again_size;
    uint8_t *again = hd_event_encode (decoded, &again_size);
    assert_int_equal (again_size, size + sizeof unknown + strlen ("a-longer-subject-than-before") -
                                      strlen ("customer/7"));
    assert_memory_equal (again + again_size - sizeof unknown, unknown, sizeof unknown);
    Herald__Event *theirs = herald__event__unpack (NULL, again_size, again);
    assert_non_null (theirs);
    assert_int_equal (theirs->base.n_unknown_fields, 2);
    assert_string_equal (theirs->subject, "a-longer-subject-than-before");
    herald__event__free_unpacked (theirs, NULL);
    free (again);
    free (longer);
    free (packed);
    hd_event_destroy (&decoded);
    hd_event_destroy (&event);
}

//  A string field that comes twice: the last one counts, even when it is
//  empty, and a string that ends the envelope keeps its last byte. Setters
//  afterwards work in place or append without disturbing the others.
static void
test_repeated_and_trailing_strings (void **state)
{
    const uint8_t envelope[] = {0x0A, 5, 'f',  'i', 'r', 's',  't',      // id "first"
                                0x12, 4, 's',  'h', 'o', 'p',            // source "shop"
                                0x1A, 3, 'a',  '.', 'b',                 // type "a.b"
                                0x0A, 6, 's',  'e', 'c', 'o',  'n', 'd', // id again: "second"
                                0x22, 2, 's',  '1',                      // subject "s1"
                                0x62, 6, 0x0A, 1,   'k', 0x12, 1,   'v', // attribute k=v
                                0x22, 0,                                 // subject again: empty
                                0x5A, 5, 't',  'r', 'a', 'c',  'e'}; // traceparent "trace", last
    hd_event_t *event = hd_event_decode (envelope, sizeof envelope, NULL);
    assert_non_null (event);
    assert_string_equal (hd_event_id (event), "second");
    assert_string_equal (hd_event_source (event), "shop");
    assert_string_equal (hd_event_type (event), "a.b");
    assert_string_equal (hd_event_subject (event), "");
    assert_string_equal (hd_event_traceparent (event), "trace");
    assert_string_equal (hd_event_attribute (event, "k"), "v");
    assert_int_equal (hd_event_set_id (event, "third"), 0);            // fits: in place
    assert_int_equal (hd_event_set_source (event, "a-longer-one"), 0); // appended
    assert_string_equal (hd_event_id (event), "third");
    assert_string_equal (hd_event_source (event), "a-longer-one");
    assert_string_equal (hd_event_type (event), "a.b");
    assert_string_equal (hd_event_traceparent (event), "trace");
    size_t size;
    uint8_t *packed = hd_event_encode (event, &size);
    Herald__Event *theirs = herald__event__unpack (NULL, size, packed);
    assert_non_null (theirs);
    assert_string_equal (theirs->id, "third");
    assert_string_equal (theirs->source, "a-longer-one");
    assert_string_equal (theirs->subject, "");
    assert_string_equal (theirs->traceparent, "trace");
    assert_int_equal (theirs->n_attributes, 1);
    herald__event__free_unpacked (theirs, NULL);
    free (packed);
    hd_event_destroy (&event);
}

//  Long random edit sequences (values taken from the event itself too,
//  which a setter must read before it moves the event's text) agree with
//  a plain model, and survive an encode/decode at every step.
static void
test_edits_match_a_model (void **state)
{
    unsigned seed = 11;
    char *model[HD_ENVELOPE_STRINGS] = {0};
    char *keys[4] = {0}, *values[4] = {0};
    const char *key_names[4] = {"k0", "k1", "k2", "k3"};
    size_t payload_size = 0;
    static uint8_t payload[6000], scratch[6000];
    hd_event_t *event = hd_event_new (NULL);
    for (int step = 0; step < 20000; step++) {
        int op = rand_r (&seed) % 10;
        if (op < 5) {
            int field = rand_r (&seed) % HD_ENVELOPE_STRINGS;
            char *value;
            if (op == 0) //  another field of the same event
                value = strdup (s_getter (event, rand_r (&seed) % HD_ENVELOPE_STRINGS));
            else
                value = s_random_text (&seed, op == 1 ? 300 : 20);
            int from = rand_r (&seed) % HD_ENVELOPE_STRINGS;
            if (op == 0) {
                free (value);
                value = strdup (s_getter (event, from));
                assert_int_equal (s_setter (event, field, s_getter (event, from)), 0);
            } else
                assert_int_equal (s_setter (event, field, value), 0);
            free (model[field]);
            model[field] = value;
        } else if (op < 8) {
            int slot = rand_r (&seed) % 4;
            if (op == 5) {
                assert_int_equal (hd_event_set_attribute (event, key_names[slot], NULL), 0);
                free (keys[slot]);
                free (values[slot]);
                keys[slot] = values[slot] = NULL;
            } else if (op == 6) {
                //  A value from the event itself, for a key old or new: key
                //  and value must both be in before its text moves
                int from = rand_r (&seed) % HD_ENVELOPE_STRINGS;
                char *value = strdup (s_getter (event, from));
                assert_int_equal (
                    hd_event_set_attribute (event, key_names[slot], s_getter (event, from)), 0);
                if (!keys[slot])
                    keys[slot] = strdup (key_names[slot]);
                free (values[slot]);
                values[slot] = value;
            } else {
                char *value = s_random_text (&seed, 30);
                assert_int_equal (hd_event_set_attribute (event, key_names[slot], value), 0);
                if (!keys[slot])
                    keys[slot] = strdup (key_names[slot]);
                free (values[slot]);
                values[slot] = value;
            }
        } else if (op == 8) {
            static const size_t sizes[] = {0, 10, 128, 4096, 4097, 5000};
            payload_size = sizes[rand_r (&seed) % 6];
            for (size_t index = 0; index < payload_size; index++)
                payload[index] = (uint8_t) rand_r (&seed);
            assert_int_equal (hd_event_set_payload (event, payload, payload_size), 0);
        } else {
            //  Its own payload, or a part of it, as the new one
            size_t part = payload_size ? (size_t) rand_r (&seed) % payload_size : 0;
            memcpy (scratch, payload + part, payload_size - part);
            assert_int_equal (
                hd_event_set_payload (event, (const uint8_t *) hd_event_payload (event) + part,
                                      payload_size - part),
                0);
            payload_size -= part;
            memcpy (payload, scratch, payload_size);
        }
        for (int index = 0; index < HD_ENVELOPE_STRINGS; index++)
            assert_string_equal (s_getter (event, index), model[index] ? model[index] : "");
        size_t present = 0;
        for (int slot = 0; slot < 4; slot++) {
            if (keys[slot])
                assert_string_equal (hd_event_attribute (event, key_names[slot]), values[slot]);
            else
                assert_null (hd_event_attribute (event, key_names[slot]));
            present += keys[slot] != NULL;
        }
        assert_int_equal (hd_event_attribute_count (event), present);
        assert_int_equal (hd_event_payload_size (event), payload_size);
        assert_memory_equal (hd_event_payload (event), payload, payload_size);
        if (step % 97 == 0) {
            hd_event_t *copy = hd_event_dup (event);
            assert_non_null (copy);
            s_assert_same (event, copy);
            hd_event_destroy (&event);
            event = copy; //  go on with the copy: decoded events are edited too
        }
    }
    hd_event_destroy (&event);
    for (int index = 0; index < HD_ENVELOPE_STRINGS; index++)
        free (model[index]);
    for (int slot = 0; slot < 4; slot++) {
        free (keys[slot]);
        free (values[slot]);
    }
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

//  An event's bytes on the wire (the payload apart)
static size_t
s_encoded (const hd_event_t *event, uint8_t *out, size_t room)
{
    size_t size = hd_event_encoded_size (event);
    assert_true (size <= room);
    return hd_event_encode_into (event, out);
}

//  A renewed event is what hd_event_new makes, in the old one's memory;
//  only an event that still fits that memory and holds nothing else is
//  renewed.
static void
test_renew (void **state)
{
    hd_event_t *event = hd_event_new ("orders.placed");
    assert_true (hd_event_renewable (event));
    hd_event_set_id (event, "id-1");
    hd_event_set_source (event, "src");
    hd_event_set_subject (event, "subject");
    hd_event_set_attribute (event, "k", "v");
    hd_event_set_time_us (event, 42);
    assert_int_equal (hd_event_set_payload (event, "payload", 7), 0);
    assert_true (hd_event_renewable (event));
    const hd_event_t *before = event;
    assert_int_equal (hd_event_renew (event, "orders.shipped"), 0);
    assert_ptr_equal (event, before);
    hd_event_t *fresh = hd_event_new ("orders.shipped");
    uint8_t renewed_bytes[512], fresh_bytes[512];
    size_t renewed_size = s_encoded (event, renewed_bytes, sizeof renewed_bytes);
    assert_int_equal (renewed_size, s_encoded (fresh, fresh_bytes, sizeof fresh_bytes));
    assert_memory_equal (renewed_bytes, fresh_bytes, renewed_size);
    assert_string_equal (hd_event_id (event), "");
    assert_string_equal (hd_event_subject (event), "");
    assert_int_equal (hd_event_attribute_count (event), 0);
    assert_null (hd_event_attribute (event, "k"));
    assert_int_equal (hd_event_payload_size (event), 0);
    assert_int_equal (hd_event_time_us (event), 0);
    //  And it takes new values as a new one does
    hd_event_set_attribute (event, "k2", "v2");
    assert_int_equal (hd_event_set_payload (event, "other", 5), 0);
    assert_string_equal (hd_event_attribute (event, "k2"), "v2");
    assert_memory_equal (hd_event_payload (event), "other", 5);
    hd_event_destroy (&fresh);

    //  A payload in a frame of its own is not held on to
    char large[5000];
    memset (large, 'x', sizeof large);
    assert_int_equal (hd_event_set_payload (event, large, sizeof large), 0);
    assert_false (hd_event_renewable (event));
    assert_int_equal (hd_event_renew (event, "t"), -1);
    hd_event_destroy (&event);

    //  Nor text that outgrew the first room
    event = hd_event_new ("t");
    char subject[1000];
    memset (subject, 's', sizeof subject - 1);
    subject[sizeof subject - 1] = 0;
    hd_event_set_subject (event, subject);
    assert_false (hd_event_renewable (event));
    hd_event_destroy (&event);

    //  Nor a decoded event, whose room is its envelope's
    event = hd_event_new ("t");
    size_t size = s_encoded (event, renewed_bytes, sizeof renewed_bytes);
    hd_event_t *decoded = hd_event_decode_bytes (renewed_bytes, size, "p", 1);
    assert_non_null (decoded);
    assert_false (hd_event_renewable (decoded));
    hd_event_destroy (&decoded);
    hd_event_destroy (&event);
}

//  Decoding into a spare event's memory gives exactly what a fresh decode
//  gives, whatever the spare held (attributes, unknown fields, a payload
//  frame, grown text); a spare without the room, or bytes that make no
//  event, consume it all the same.
static void
test_decode_into_spare (void **state)
{
    //  The events to decode: one with three attributes, one with none
    hd_event_t *rich = hd_event_new ("a.rich");
    hd_event_set_id (rich, "rich-1");
    for (int index = 0; index < 3; index++) {
        char key[8];
        snprintf (key, sizeof key, "k%d", index);
        hd_event_set_attribute (rich, key, "value");
    }
    hd_event_t *plain = hd_event_new ("a.plain");
    hd_event_set_id (plain, "plain-1");
    size_t rich_size, plain_size;
    uint8_t *rich_bytes = hd_event_encode (rich, &rich_size);
    uint8_t *plain_bytes = hd_event_encode (plain, &plain_size);

    //  Spares of every kind, each used for both
    for (int kind = 0; kind < 4; kind++) {
        for (int target = 0; target < 2; target++) {
            hd_event_t *spare = hd_event_new ("spare");
            char big[6000];
            memset (big, 'b', sizeof big - 1);
            big[sizeof big - 1] = 0;
            if (kind == 1)
                hd_event_set_attribute (spare, "only", "one"); // an array smaller than rich's
            else if (kind == 2)
                hd_event_set_payload (spare, big, sizeof big); // a payload frame
            else if (kind == 3)
                hd_event_set_subject (spare, big); // text grown out of its room
            const uint8_t *bytes = target ? plain_bytes : rich_bytes;
            size_t size = target ? plain_size : rich_size;
            hd_event_t *fresh = hd_event_decode_bytes (bytes, size, "pl", 2);
            hd_event_t *into = hd_event_decode_bytes_into (&spare, bytes, size, "pl", 2);
            assert_null (spare);
            assert_non_null (into);
            size_t fresh_size, into_size;
            uint8_t *fresh_encoded = hd_event_encode (fresh, &fresh_size);
            uint8_t *into_encoded = hd_event_encode (into, &into_size);
            assert_int_equal (into_size, fresh_size);
            assert_memory_equal (into_encoded, fresh_encoded, fresh_size);
            assert_int_equal (hd_event_attribute_count (into), target ? 0 : 3);
            assert_int_equal (hd_event_payload_size (into), 2);
            assert_memory_equal (hd_event_payload (into), "pl", 2);
            assert_string_equal (hd_event_subject (into), "");
            free (fresh_encoded);
            free (into_encoded);
            hd_event_destroy (&fresh);
            hd_event_destroy (&into);
        }
    }
    //  Kept only while it holds no more than its own small memory: not with
    //  a payload frame (a DELIVER's, or a large payload set), nor with a
    //  room past HD_EVENT_KEEP_MAX
    zmq_msg_t frame;
    zmq_msg_init_size (&frame, 10);
    hd_event_t *framed = hd_event_decode (rich_bytes, rich_size, &frame);
    zmq_msg_close (&frame);
    assert_false (hd_event_keepable (framed));
    hd_event_destroy (&framed);
    char large[HD_EVENT_KEEP_MAX];
    memset (large, 'x', sizeof large);
    hd_event_t *roomy = hd_event_decode_bytes (rich_bytes, rich_size, large, 4000);
    assert_true (hd_event_keepable (roomy));
    assert_int_equal (hd_event_set_payload (roomy, large, sizeof large), 0);
    assert_false (hd_event_keepable (roomy));
    hd_event_destroy (&roomy);
    hd_event_t *event = hd_event_new ("t");
    hd_event_set_attribute (event, "k", "v");
    assert_true (hd_event_keepable (event));
    size_t event_size;
    uint8_t *event_bytes = hd_event_encode (event, &event_size);
    uint8_t envelope[HD_EVENT_KEEP_MAX + 64];
    memcpy (envelope, event_bytes, event_size);
    //  One long subject makes the decoded event's room past the limit
    envelope[event_size] = 0x22; // field 4 (subject), length-delimited
    envelope[event_size + 1] = (uint8_t) (0x80 | (HD_EVENT_KEEP_MAX & 0x7F));
    envelope[event_size + 2] = (uint8_t) (HD_EVENT_KEEP_MAX >> 7);
    memset (envelope + event_size + 3, 's', HD_EVENT_KEEP_MAX);
    hd_event_t *big = hd_event_decode_bytes (envelope, event_size + 3 + HD_EVENT_KEEP_MAX, NULL, 0);
    assert_non_null (big);
    assert_int_equal (strlen (hd_event_subject (big)), HD_EVENT_KEEP_MAX);
    assert_false (hd_event_keepable (big));
    hd_event_destroy (&big);
    free (event_bytes);
    hd_event_destroy (&event);

    //  The same memory when it has the room
    hd_event_t *spare = hd_event_decode_bytes (rich_bytes, rich_size, NULL, 0);
    const hd_event_t *memory = spare;
    hd_event_t *into = hd_event_decode_bytes_into (&spare, plain_bytes, plain_size, NULL, 0);
    assert_ptr_equal (into, memory);
    assert_string_equal (hd_event_id (into), "plain-1");
    //  Bytes that make no event: NULL, and the spare is gone too
    const uint8_t broken[] = {0x0a, 0x40, 'x'};
    assert_null (hd_event_decode_bytes_into (&into, broken, sizeof broken, NULL, 0));
    assert_null (into);
    free (rich_bytes);
    free (plain_bytes);
    hd_event_destroy (&rich);
    hd_event_destroy (&plain);
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
        cmocka_unit_test (test_against_protobuf_c),
        cmocka_unit_test (test_unknown_fields_kept),
        cmocka_unit_test (test_repeated_and_trailing_strings),
        cmocka_unit_test (test_edits_match_a_model),
        cmocka_unit_test (test_round_trip_frames),
        cmocka_unit_test (test_inherit),
        cmocka_unit_test (test_random_id),
        cmocka_unit_test (test_renew),
        cmocka_unit_test (test_decode_into_spare),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
