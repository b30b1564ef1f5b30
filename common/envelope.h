/*  envelope — reads an encoded Event in place, without protobuf-c.

    A PUBLISH carries the Event as protobuf bytes, which the broker stores
    as they are: it needs a few fields and must refuse what other clients
    could not decode (bad wire format, strings that are not UTF-8). The
    client library decodes every received event. Scanning the bytes in
    place serves both without the dozen allocations of a generic decode.
    Semantics follow protobuf: the last occurrence of a field wins, unknown
    fields are skipped (and reported, so a client can keep them).
    Stricter than protobuf-c in two places, on purpose: a string holding a
    NUL byte is refused (C clients would silently cut it), and so are the
    long-deprecated group wire types.
*/
#ifndef HD_ENVELOPE_H_INCLUDED
#define HD_ENVELOPE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *data; // points into the scanned bytes; not NUL-terminated
    size_t size;
} hd_text_t;

//  The Event's string fields, in field-number order (proto/herald.proto).
typedef enum {
    HD_ENVELOPE_ID,
    HD_ENVELOPE_SOURCE,
    HD_ENVELOPE_TYPE,
    HD_ENVELOPE_SUBJECT,
    HD_ENVELOPE_CONTENT_TYPE,
    HD_ENVELOPE_SCHEMA_VERSION,
    HD_ENVELOPE_PARTITION_KEY,
    HD_ENVELOPE_CORRELATION_ID,
    HD_ENVELOPE_CAUSATION_ID,
    HD_ENVELOPE_TRACEPARENT,
    HD_ENVELOPE_STRINGS
} hd_envelope_string_t;

//  Field numbers of the non-string fields.
#define HD_ENVELOPE_FIELD_TIME_US          5
#define HD_ENVELOPE_FIELD_ATTRIBUTES       12
#define HD_ENVELOPE_FIELD_SEQ              20
#define HD_ENVELOPE_FIELD_RECORDED_TIME_US 21

typedef struct {
    hd_text_t text[HD_ENVELOPE_STRINGS]; // unset fields are empty
    uint64_t time_us, seq, recorded_time_us;
    size_t attributes;   // map entries, repeated keys included
    size_t unknown_size; // bytes of fields this version does not know
} hd_envelope_t;

typedef enum {
    HD_ENVELOPE_OK = 0,
    HD_ENVELOPE_MALFORMED, // not a well-formed Event
    HD_ENVELOPE_NOT_UTF8   // a string is not valid UTF-8 (or holds a NUL)
} hd_envelope_result_t;

//  Scans size bytes of an encoded Event into self. With check_utf8 false
//  the strings are taken as they are: clients, which get only events their
//  broker checked, skip the cost.
hd_envelope_result_t hd_envelope_scan (hd_envelope_t *self, const void *data, size_t size,
                                       bool check_utf8);

//  The protobuf field number of a string field.
uint32_t hd_envelope_string_field (hd_envelope_string_t index);

//  Walks the fields of an Event that hd_envelope_scan accepted: for every
//  attribute, key and value (last occurrence within the entry wins); for
//  every unknown field, its raw bytes (tag included) in unknown. Either
//  may be NULL in a call that only wants the other; what a call does not
//  return is left empty (data NULL).
typedef struct {
    const uint8_t *cursor;
    const uint8_t *end;
} hd_envelope_walk_t;

void hd_envelope_walk_start (hd_envelope_walk_t *walk, const void *data, size_t size);
//  Returns true and fills key/value (an attribute) or unknown; false at the end.
bool hd_envelope_walk_next (hd_envelope_walk_t *walk, hd_text_t *key, hd_text_t *value,
                            hd_text_t *unknown);

//  True when size bytes at text are valid UTF-8 without NUL (RFC 3629: no
//  overlong forms, no surrogates, nothing above U+10FFFF).
bool hd_utf8_valid (const char *text, size_t size);

//  True when none of size bytes at type is a space, a control character
//  or DEL: what an event type (a topic) may hold besides its length limit.
bool hd_type_chars_valid (const char *type, size_t size);

#endif
