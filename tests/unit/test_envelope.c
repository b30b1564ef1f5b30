/*  envelope: the in-place Event scanner agrees with protobuf-c. Valid
    events give the same id, source, type and partition key (last
    occurrence wins); random damage to valid encodings is never accepted
    when protobuf-c refuses it; UTF-8 rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "codec.h"
#include "envelope.h"
#include "herald.pb-c.h"

static void
s_assert_text (const hd_text_t *text, const char *expected)
{
    size_t size = expected ? strlen (expected) : 0;
    assert_int_equal (text->size, size);
    if (size)
        assert_memory_equal (text->data, expected, size);
}

static uint8_t *
s_full_event (size_t *size)
{
    Herald__Event event = HERALD__EVENT__INIT;
    event.id = (char *) "order-42";
    event.source = (char *) "shop";
    event.type = (char *) "orders.placed";
    event.subject = (char *) "sübject";
    event.time_us = 1234567;
    event.partition_key = (char *) "customer-7";
    event.traceparent = (char *) "00-abc";
    Herald__Event__AttributesEntry entries[2] = {HERALD__EVENT__ATTRIBUTES_ENTRY__INIT,
                                                 HERALD__EVENT__ATTRIBUTES_ENTRY__INIT};
    entries[0].key = (char *) "region";
    entries[0].value = (char *) "eu";
    entries[1].key = (char *) "tier";
    entries[1].value = (char *) "gold";
    Herald__Event__AttributesEntry *pointers[2] = {&entries[0], &entries[1]};
    event.n_attributes = 2;
    event.attributes = pointers;
    event.seq = 99;
    return hd_proto_pack (&event.base, size);
}

static void
test_fields_and_last_wins (void **state)
{
    size_t size;
    uint8_t *packed = s_full_event (&size);
    hd_envelope_t envelope;
    assert_int_equal (hd_envelope_scan (&envelope, packed, size, true), HD_ENVELOPE_OK);
    s_assert_text (&envelope.text[HD_ENVELOPE_ID], "order-42");
    s_assert_text (&envelope.text[HD_ENVELOPE_SOURCE], "shop");
    s_assert_text (&envelope.text[HD_ENVELOPE_TYPE], "orders.placed");
    s_assert_text (&envelope.text[HD_ENVELOPE_PARTITION_KEY], "customer-7");

    //  A second id appended (as the broker appends seq): the last one counts
    uint8_t *longer = malloc (size + 5);
    memcpy (longer, packed, size);
    memcpy (longer + size, "\x0a\x03new", 5);
    assert_int_equal (hd_envelope_scan (&envelope, longer, size + 5, true), HD_ENVELOPE_OK);
    s_assert_text (&envelope.text[HD_ENVELOPE_ID], "new");
    Herald__Event *decoded = herald__event__unpack (NULL, size + 5, longer);
    assert_string_equal (decoded->id, "new");
    herald__event__free_unpacked (decoded, NULL);
    free (longer);

    //  Empty input is an event with nothing set
    assert_int_equal (hd_envelope_scan (&envelope, "", 0, true), HD_ENVELOPE_OK);
    assert_int_equal (envelope.text[HD_ENVELOPE_ID].size, 0);
    free (packed);
}

static void
test_utf8 (void **state)
{
    assert_true (hd_utf8_valid ("plain ascii, long enough for words", 34));
    assert_true (hd_utf8_valid ("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); // é € 😀
    assert_false (hd_utf8_valid ("a\0b", 3));                                // NUL
    assert_false (hd_utf8_valid ("abcdefg\0", 8));                           // NUL in a word
    assert_false (hd_utf8_valid ("\xc0\xaf", 2));                            // overlong
    assert_false (hd_utf8_valid ("\xed\xa0\x80", 3));                        // surrogate
    assert_false (hd_utf8_valid ("\xf4\x90\x80\x80", 4));                    // > U+10FFFF
    assert_false (hd_utf8_valid ("\xe2\x82", 2));                            // cut short
    assert_false (hd_utf8_valid ("\xff", 1));

    //  In an event: a bad string field, or a bad attribute value
    uint8_t bad_subject[] = {0x0a, 0x01, 'i', 0x22, 0x02, 0xc3, 0x28};
    hd_envelope_t envelope;
    assert_int_equal (hd_envelope_scan (&envelope, bad_subject, sizeof bad_subject, true),
                      HD_ENVELOPE_NOT_UTF8);
    uint8_t bad_attribute[] = {0x62, 0x05, 0x0a, 0x01, 'k', 0x12, 0x00,
                               0x62, 0x05, 0x0a, 0x01, 'k', 0x12, 0x00};
    assert_int_equal (hd_envelope_scan (&envelope, bad_attribute, sizeof bad_attribute, true),
                      HD_ENVELOPE_OK);
    bad_attribute[11] = 0xff;
    assert_int_equal (hd_envelope_scan (&envelope, bad_attribute, sizeof bad_attribute, true),
                      HD_ENVELOPE_NOT_UTF8);
    //  Unchecked (clients: their broker checked), both pass as they are
    assert_int_equal (hd_envelope_scan (&envelope, bad_subject, sizeof bad_subject, false),
                      HD_ENVELOPE_OK);
    assert_int_equal (envelope.text[HD_ENVELOPE_SUBJECT].size, 2);
    assert_int_equal (hd_envelope_scan (&envelope, bad_attribute, sizeof bad_attribute, false),
                      HD_ENVELOPE_OK);
    assert_int_equal (envelope.attributes, 2);
}

//  Unicode 15, table 3-7 (well-formed UTF-8 byte sequences), written out
//  independently of the checker, NUL refused as the checker does.
static bool
s_reference_utf8 (const unsigned char *c, size_t size)
{
    size_t at = 0;
    while (at < size) {
        unsigned char b = c[at];
        size_t need;
        unsigned char low = 0x80, high = 0xBF;
        if (b == 0)
            return false;
        if (b <= 0x7F) {
            at++;
            continue;
        }
        if (b >= 0xC2 && b <= 0xDF)
            need = 1;
        else if (b == 0xE0)
            need = 2, low = 0xA0;
        else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
            need = 2;
        else if (b == 0xED)
            need = 2, high = 0x9F;
        else if (b == 0xF0)
            need = 3, low = 0x90;
        else if (b >= 0xF1 && b <= 0xF3)
            need = 3;
        else if (b == 0xF4)
            need = 3, high = 0x8F;
        else
            return false;
        if (size - at <= need)
            return false;
        if (c[at + 1] < low || c[at + 1] > high)
            return false;
        for (size_t index = 2; index <= need; index++)
            if (c[at + index] < 0x80 || c[at + index] > 0xBF)
                return false;
        at += need + 1;
    }
    return true;
}

//  The word-at-a-time checker against the reference, on strings of every
//  length up to 40 around the word boundaries, mostly ASCII with a few
//  bytes that matter.
static void
test_utf8_against_reference (void **state)
{
    static const unsigned char interesting[] = {0x00, 0x01, 0x7F, 0x80, 0xBF, 0xC0, 0xC2,
                                                0xDF, 0xE0, 0xA0, 0xED, 0x9F, 0xEF, 0xF0,
                                                0x90, 0xF4, 0x8F, 0xF5, 0xFF};
    unsigned seed = 3;
    unsigned char text[40];
    for (int round = 0; round < 400000; round++) {
        size_t size = (size_t) (rand_r (&seed) % 41);
        for (size_t index = 0; index < size; index++)
            text[index] = rand_r (&seed) % 5 ? (unsigned char) ('a' + rand_r (&seed) % 26)
                                             : interesting[rand_r (&seed) % sizeof interesting];
        assert_int_equal (hd_utf8_valid ((const char *) text, size), s_reference_utf8 (text, size));
    }
}

//  The word-at-a-time type check against the plain one, bytes that matter
//  at every position of strings up to 40 bytes (every tail after whole
//  words, and the overlapping last word).
static void
test_type_chars (void **state)
{
    static const unsigned char interesting[] = {0x00, 0x01, 0x09, 0x1F, 0x20, 0x21, 0x7E,
                                                0x7F, 0x80, 0x81, 0xA0, 0xC3, 0xFE, 0xFF};
    unsigned seed = 5;
    char type[40];
    for (int round = 0; round < 400000; round++) {
        size_t size = (size_t) (rand_r (&seed) % 41);
        for (size_t index = 0; index < size; index++)
            type[index] = rand_r (&seed) % 6
                              ? (char) ('a' + rand_r (&seed) % 26)
                              : (char) interesting[rand_r (&seed) % sizeof interesting];
        bool plain = true;
        for (size_t index = 0; index < size; index++)
            if ((unsigned char) type[index] <= 0x20 || type[index] == 0x7F)
                plain = false;
        assert_int_equal (hd_type_chars_valid (type, size), plain);
    }
    assert_true (hd_type_chars_valid ("orders.placed", 13));
    assert_true (hd_type_chars_valid ("commandes.pass\xc3\xa9"
                                      "es",
                                      18));
    assert_false (hd_type_chars_valid ("orders placed", 13));
    assert_false (hd_type_chars_valid ("orders.placed\x7f", 14));
}

//  Random damage: whatever protobuf-c refuses, the scanner refuses; what
//  both accept gives the same fields.
static void
test_agrees_with_protobuf_c (void **state)
{
    size_t size;
    uint8_t *packed = s_full_event (&size);
    uint8_t buffer[512];
    srand (7);
    int both_accept = 0, both_refuse = 0;
    for (int round = 0; round < 200000; round++) {
        size_t length = size;
        memcpy (buffer, packed, size);
        int damage = 1 + rand () % 3;
        for (int step = 0; step < damage; step++) {
            int kind = rand () % 3;
            if (kind == 0 && length > 0)
                buffer[rand () % length] = (uint8_t) rand (); // change a byte
            else if (kind == 1 && length > 0)
                length = (size_t) rand () % length; // cut short
            else if (length < sizeof buffer - 1) {
                size_t at = length ? (size_t) rand () % length : 0;
                memmove (buffer + at + 1, buffer + at, length - at); // insert a byte
                buffer[at] = (uint8_t) rand ();
                length++;
            }
        }
        Herald__Event *decoded = herald__event__unpack (NULL, length, buffer);
        hd_envelope_t envelope;
        hd_envelope_result_t result = hd_envelope_scan (&envelope, buffer, length, true);
        if (!decoded) {
            if (result == HD_ENVELOPE_OK)
                fail_msg ("round %d: protobuf-c refuses what the scanner accepts", round);
            both_refuse++;
            continue;
        }
        if (result == HD_ENVELOPE_MALFORMED)
            fail_msg ("round %d: the scanner refuses a well-formed event", round);
        if (result == HD_ENVELOPE_OK) {
            both_accept++;
            //  NUL-free strings: protobuf-c's copies compare whole
            assert_int_equal (envelope.text[HD_ENVELOPE_ID].size, strlen (decoded->id));
            assert_memory_equal (envelope.text[HD_ENVELOPE_ID].data, decoded->id,
                                 envelope.text[HD_ENVELOPE_ID].size);
            assert_int_equal (envelope.text[HD_ENVELOPE_TYPE].size, strlen (decoded->type));
            assert_memory_equal (envelope.text[HD_ENVELOPE_TYPE].data, decoded->type,
                                 envelope.text[HD_ENVELOPE_TYPE].size);
            assert_int_equal (envelope.text[HD_ENVELOPE_SOURCE].size, strlen (decoded->source));
            assert_int_equal (envelope.text[HD_ENVELOPE_PARTITION_KEY].size,
                              strlen (decoded->partition_key));
        }
        herald__event__free_unpacked (decoded, NULL);
    }
    //  The damage produced both kinds of input
    assert_true (both_accept > 1000);
    assert_true (both_refuse > 1000);
    free (packed);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_fields_and_last_wins),   cmocka_unit_test (test_utf8),
        cmocka_unit_test (test_utf8_against_reference), cmocka_unit_test (test_type_chars),
        cmocka_unit_test (test_agrees_with_protobuf_c),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
