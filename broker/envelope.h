/*  envelope — reads what the broker needs from a published Event without
    decoding it.

    A PUBLISH carries the Event as protobuf bytes, which the broker stores
    as they are. It only needs id, source, type and partition_key, and must
    refuse what other clients could not decode: bad wire format, strings
    that are not UTF-8. Scanning the bytes in place does both without the
    dozen allocations of a generic decode. Semantics follow protobuf: the
    last occurrence of a field wins, unknown fields are skipped.
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

typedef struct {
    hd_text_t id, source, type, partition_key;
} hd_envelope_t;

typedef enum {
    HD_ENVELOPE_OK = 0,
    HD_ENVELOPE_MALFORMED, // not a well-formed Event
    HD_ENVELOPE_NOT_UTF8   // a string is not valid UTF-8 (or holds a NUL)
} hd_envelope_result_t;

//  Scans size bytes of an encoded Event into self (unset fields are empty).
hd_envelope_result_t hd_envelope_scan (hd_envelope_t *self, const void *data, size_t size);

//  True when size bytes at text are valid UTF-8 without NUL (RFC 3629: no
//  overlong forms, no surrogates, nothing above U+10FFFF).
bool hd_utf8_valid (const char *text, size_t size);

#endif
