/*  envelope — in-place scan of an encoded Event. */
#include "envelope.h"
#include "varint.h"

#include <stddef.h>
#include <string.h>

//  String field numbers by hd_envelope_string_t (proto/herald.proto)
static const uint8_t s_string_field[HD_ENVELOPE_STRINGS] = {1, 2, 3, 4, 6, 7, 8, 9, 10, 11};
//  and back, for field numbers up to 21: what the field is to the scan (a
//  string is S_STRING plus its index; unlisted numbers are unknown)
enum { S_UNKNOWN, S_ATTRIBUTES, S_TIME_US, S_SEQ, S_RECORDED_TIME_US, S_STRING };
static const uint8_t s_field_kind[22] = {
    [1] = S_STRING + HD_ENVELOPE_ID,
    [2] = S_STRING + HD_ENVELOPE_SOURCE,
    [3] = S_STRING + HD_ENVELOPE_TYPE,
    [4] = S_STRING + HD_ENVELOPE_SUBJECT,
    [HD_ENVELOPE_FIELD_TIME_US] = S_TIME_US,
    [6] = S_STRING + HD_ENVELOPE_CONTENT_TYPE,
    [7] = S_STRING + HD_ENVELOPE_SCHEMA_VERSION,
    [8] = S_STRING + HD_ENVELOPE_PARTITION_KEY,
    [9] = S_STRING + HD_ENVELOPE_CORRELATION_ID,
    [10] = S_STRING + HD_ENVELOPE_CAUSATION_ID,
    [11] = S_STRING + HD_ENVELOPE_TRACEPARENT,
    [HD_ENVELOPE_FIELD_ATTRIBUTES] = S_ATTRIBUTES,
    [HD_ENVELOPE_FIELD_SEQ] = S_SEQ,
    [HD_ENVELOPE_FIELD_RECORDED_TIME_US] = S_RECORDED_TIME_US,
};

static int
s_kind_of (uint64_t number)
{
    return number < sizeof s_field_kind ? s_field_kind[number] : S_UNKNOWN;
}

//  The bytes of a length-delimited field as text.
static inline hd_text_t
s_text (const hd_proto_field_t *field)
{
    return (hd_text_t){(const char *) field->data, field->data ? (size_t) field->value : 0};
}

//  True when the eight bytes hold no byte with the high bit and no zero.
static inline bool
s_plain_ascii (uint64_t word)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    return !(word & highs) && !((word - ones) & ~word & highs);
}

//  Checks from c on, a character at a time.
static bool
s_utf8_valid_slow (const unsigned char *c, const unsigned char *end)
{
    while (c < end) {
        if (*c == 0)
            return false;
        if (*c < 0x80) {
            c++;
            continue;
        }
        int extra = (*c >> 5) == 0x6 ? 1 : (*c >> 4) == 0xE ? 2 : (*c >> 3) == 0x1E ? 3 : -1;
        if (extra < 0 || (extra == 1 && *c < 0xC2) || end - c <= extra)
            return false;
        uint32_t point = *c & (0x3F >> extra);
        for (int index = 1; index <= extra; index++) {
            if ((c[index] & 0xC0) != 0x80)
                return false;
            point = point << 6 | (c[index] & 0x3F);
        }
        if ((extra == 2 && (point < 0x800 || (point >= 0xD800 && point <= 0xDFFF))) ||
            (extra == 3 && (point < 0x10000 || point > 0x10FFFF)))
            return false;
        c += extra + 1;
    }
    return true;
}

bool
hd_utf8_valid (const char *text, size_t size)
{
    //  The common case, plain ASCII, eight bytes at a time
    const unsigned char *c = (const unsigned char *) text;
    const unsigned char *end = c + size;
    uint64_t word;
    for (; end - c >= 8; c += 8) {
        memcpy (&word, c, 8);
        if (!s_plain_ascii (word))
            return s_utf8_valid_slow (c, end);
    }
    if (c == end)
        return true;
    //  The tail: the string's last eight bytes, some looked at twice (a
    //  variable-length copy into a padded word cost more than the rest)
    if (size >= 8) {
        memcpy (&word, end - 8, 8);
        return s_plain_ascii (word) || s_utf8_valid_slow (c, end);
    }
    for (const unsigned char *at = c; at < end; at++)
        if (*at == 0 || *at >= 0x80)
            return s_utf8_valid_slow (c, end);
    return true;
}

//  Whether one of the eight bytes in word is below 0x21 or equal to 0x7F
//  (bytes of 0x80 and up are UTF-8 and fine).
static inline bool
s_word_has_bad_type_char (uint64_t word)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t del = word ^ (0x7F * ones);
    return ((word - 0x21 * ones) & ~word & highs) || ((del - ones) & ~del & highs);
}

//  Eight bytes at a time; the last eight read as one word that overlaps
//  the one before, and a type shorter than eight padded with a valid byte.
bool
hd_type_chars_valid (const char *type, size_t size)
{
    uint64_t word;
    if (size < 8) {
        word = 0x6161616161616161ULL; // "aaaaaaaa"
        memcpy (&word, type, size);
        return !s_word_has_bad_type_char (word);
    }
    for (size_t index = 0; index + 8 < size; index += 8) {
        memcpy (&word, type + index, 8);
        if (s_word_has_bad_type_char (word))
            return false;
    }
    memcpy (&word, type + size - 8, 8);
    return !s_word_has_bad_type_char (word);
}

uint32_t
hd_envelope_string_field (hd_envelope_string_t index)
{
    return s_string_field[index];
}

static bool
s_known (uint64_t number)
{
    return s_kind_of (number) != S_UNKNOWN;
}

//  A map entry: key (1) and value (2), both strings; the last of each wins.
static hd_envelope_result_t
s_attribute (const hd_text_t *entry, hd_text_t *key, hd_text_t *value, bool check_utf8)
{
    const uint8_t *cursor = (const uint8_t *) entry->data;
    const uint8_t *end = cursor + entry->size;
    *key = *value = (hd_text_t){NULL, 0};
    hd_envelope_result_t result = HD_ENVELOPE_OK;
    while (cursor < end) {
        hd_proto_field_t field;
        if (!hd_proto_field_read (&cursor, end, &field))
            return HD_ENVELOPE_MALFORMED;
        if (field.number == 1 || field.number == 2) {
            if (field.wire_type != 2)
                return HD_ENVELOPE_MALFORMED;
            hd_text_t bytes = s_text (&field);
            //  Keep reading after a bad string: malformed input wins over it
            if (check_utf8 && !hd_utf8_valid (bytes.data, bytes.size))
                result = HD_ENVELOPE_NOT_UTF8;
            *(field.number == 1 ? key : value) = bytes;
        }
    }
    return result;
}

//  The scan, written out per wire type rather than through
//  hd_proto_field_read: every event crosses it in the broker and again in
//  each client, and the generic field record cost a third more.
static hd_envelope_result_t
s_scan (hd_envelope_t *self, const uint8_t *cursor, const uint8_t *end, bool check_utf8)
{
    hd_envelope_result_t result = HD_ENVELOPE_OK;
    while (cursor < end) {
        const uint8_t *start = cursor;
        uint64_t tag, value;
        if (!hd_varint_read (&cursor, end, &tag) || tag >> 3 == 0 || tag >> 3 > 0x1FFFFFFF)
            return HD_ENVELOPE_MALFORMED;
        int kind = s_kind_of (tag >> 3);
        switch (tag & 7) {
            case 2:
                if (!hd_varint_read (&cursor, end, &value) || value > (uint64_t) (end - cursor))
                    return HD_ENVELOPE_MALFORMED;
                hd_text_t bytes = {(const char *) cursor, (size_t) value};
                cursor += value;
                if (kind >= S_STRING) {
                    //  Keep reading after a bad string: malformed input wins over it
                    if (check_utf8 && result == HD_ENVELOPE_OK &&
                        !hd_utf8_valid (bytes.data, bytes.size))
                        result = HD_ENVELOPE_NOT_UTF8;
                    self->text[kind - S_STRING] = bytes;
                } else if (kind == S_ATTRIBUTES) {
                    hd_text_t key, value_text;
                    hd_envelope_result_t checked =
                        s_attribute (&bytes, &key, &value_text, check_utf8);
                    if (checked == HD_ENVELOPE_MALFORMED)
                        return checked;
                    if (result == HD_ENVELOPE_OK)
                        result = checked;
                    self->attributes++;
                } else if (kind == S_UNKNOWN)
                    self->unknown_size += (size_t) (cursor - start);
                else
                    return HD_ENVELOPE_MALFORMED; // a varint field sent as bytes
                break;
            case 0:
                if (!hd_varint_read (&cursor, end, &value))
                    return HD_ENVELOPE_MALFORMED;
                if (kind == S_TIME_US)
                    self->time_us = value;
                else if (kind == S_SEQ)
                    self->seq = value;
                else if (kind == S_RECORDED_TIME_US)
                    self->recorded_time_us = value;
                else if (kind == S_UNKNOWN)
                    self->unknown_size += (size_t) (cursor - start);
                else
                    return HD_ENVELOPE_MALFORMED; // a string sent as a varint
                break;
            case 1:
            case 5: {
                size_t width = (tag & 7) == 1 ? 8 : 4;
                if ((size_t) (end - cursor) < width || kind != S_UNKNOWN)
                    return HD_ENVELOPE_MALFORMED;
                cursor += width;
                self->unknown_size += (size_t) (cursor - start);
                break;
            }
            default: return HD_ENVELOPE_MALFORMED; // groups and unused wire types
        }
    }
    return result;
}

//  hd_envelope_scan sets every field by name: one added anywhere would be
//  left unset (this fails when the struct changes; padding would too)
_Static_assert(sizeof (hd_envelope_t) == sizeof (((hd_envelope_t *) 0)->text) +
                                             3 * sizeof (uint64_t) + 2 * sizeof (size_t),
               "hd_envelope_scan must set every field of hd_envelope_t");

hd_envelope_result_t
hd_envelope_scan (hd_envelope_t *self, const void *data, size_t size, bool check_utf8)
{
    memset (self->text, 0, sizeof self->text);
    self->time_us = self->seq = self->recorded_time_us = 0;
    self->attributes = self->unknown_size = 0;
    const uint8_t *cursor = data;
    return s_scan (self, cursor, cursor + size, check_utf8);
}

void
hd_envelope_walk_start (hd_envelope_walk_t *walk, const void *data, size_t size)
{
    walk->cursor = data;
    walk->end = (const uint8_t *) data + size;
}

bool
hd_envelope_walk_next (hd_envelope_walk_t *walk, hd_text_t *key, hd_text_t *value,
                       hd_text_t *unknown)
{
    while (walk->cursor < walk->end) {
        const uint8_t *start = walk->cursor;
        hd_proto_field_t field;
        if (!hd_proto_field_read (&walk->cursor, walk->end, &field))
            break; // not scanned first: the programmer's error, ends the walk
        if (field.number == HD_ENVELOPE_FIELD_ATTRIBUTES && key && value) {
            hd_text_t entry = s_text (&field);
            if (s_attribute (&entry, key, value, false) != HD_ENVELOPE_OK)
                break;
            if (unknown)
                *unknown = (hd_text_t){NULL, 0};
            return true;
        }
        if (!s_known (field.number) && unknown) {
            if (key && value)
                *key = *value = (hd_text_t){NULL, 0};
            *unknown = (hd_text_t){(const char *) start, (size_t) (walk->cursor - start)};
            return true;
        }
    }
    walk->cursor = walk->end;
    return false;
}
