/*  fuzz_decode — every hand-written decoder of input that comes off the
    wire: the Event scanner (as the broker runs it, and as clients do),
    the client event decoder (then encode, decode, encode again: the two
    encodings must match), and the batch-body readers (PUBLISHES, DELIVERS,
    FanoutBatch). A crash, a sanitizer report or an abort is a finding.

    Built two ways: with clang and -DHERALD_FUZZ=ON as a libFuzzer target
    (tests/fuzz/README.md), and always as the entry point of
    fuzz_decode_replay, which `make test` runs over a fixed corpus of
    seeds and their mutations.
*/
#include "fuzz_decode.h"

#include "codec.h"
#include "envelope.h"
#include "event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
s_fail (const char *what)
{
    fprintf (stderr, "fuzz_decode: %s\n", what);
    abort ();
}

static void
s_scan (const uint8_t *data, size_t size)
{
    hd_envelope_t checked, unchecked;
    hd_envelope_result_t strict = hd_envelope_scan (&checked, data, size, true);
    hd_envelope_result_t lenient = hd_envelope_scan (&unchecked, data, size, false);
    //  The UTF-8 check can only turn OK into NOT_UTF8
    if ((strict == HD_ENVELOPE_MALFORMED) != (lenient == HD_ENVELOPE_MALFORMED))
        s_fail ("the scanner's verdict on the wire format depends on the UTF-8 check");
    if (lenient == HD_ENVELOPE_MALFORMED)
        return;
    size_t attributes = 0, unknown_size = 0;
    hd_envelope_walk_t walk;
    hd_envelope_walk_start (&walk, data, size);
    hd_text_t key, value, unknown;
    while (hd_envelope_walk_next (&walk, &key, &value, &unknown)) {
        if (unknown.data)
            unknown_size += unknown.size;
        else
            attributes++;
    }
    if (attributes != unchecked.attributes || unknown_size != unchecked.unknown_size)
        s_fail ("the walk and the scan disagree");
}

static void
s_event (const uint8_t *data, size_t size)
{
    hd_event_t *event = hd_event_decode (data, size, NULL);
    if (!event)
        return;
    //  Read everything a caller could
    size_t total = strlen (hd_event_id (event)) + strlen (hd_event_type (event)) +
                   strlen (hd_event_traceparent (event));
    for (size_t index = 0; index < hd_event_attribute_count (event); index++)
        total += strlen (hd_event_attribute_key (event, index)) +
                 strlen (hd_event_attribute_value (event, index));
    (void) total;
    size_t first_size, second_size;
    uint8_t *first = hd_event_encode (event, &first_size);
    hd_event_t *again = first ? hd_event_decode (first, first_size, NULL) : NULL;
    if (first && !again)
        s_fail ("an event's own encoding does not decode");
    uint8_t *second = again ? hd_event_encode (again, &second_size) : NULL;
    if (second && (second_size != first_size || memcmp (first, second, first_size) != 0))
        s_fail ("encode, decode, encode is not stable");
    //  And it can still be changed
    if (again &&
        (hd_event_set_subject (again, "changed") || hd_event_set_attribute (again, "k", "v")))
        s_fail ("a decoded event cannot be changed");
    free (first);
    free (second);
    hd_event_destroy (&again);
    hd_event_destroy (&event);
}

static void
s_batches (const uint8_t *data, size_t size)
{
    const uint8_t *cursor = data;
    hd_publish_view_t publish;
    while (hd_decode_publish_item (&cursor, data + size, &publish) == 1)
        if (publish.envelope + publish.envelope_size > data + size)
            s_fail ("a publish item points past the body");
    cursor = data;
    hd_delivery_view_t delivery;
    while (hd_decode_delivery (&cursor, data + size, &delivery) == 1)
        if (delivery.envelope && delivery.envelope + delivery.envelope_size > data + size)
            s_fail ("a delivery points past the body");
    cursor = data;
    hd_fanout_view_t fanout;
    while (hd_decode_fanout_item (&cursor, data + size, &fanout) == 1)
        if (fanout.payload && fanout.payload + fanout.payload_size > data + size)
            s_fail ("a fan-out item points past the body");
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_scan (data, size);
    s_event (data, size);
    s_batches (data, size);
    return 0;
}
