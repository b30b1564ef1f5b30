/*  envelope — in-place scan of an encoded Event. */
#include "envelope.h"

#include <string.h>

//  Event field numbers (proto/herald.proto)
#define S_FIELD_ID            1
#define S_FIELD_SOURCE        2
#define S_FIELD_TYPE          3
#define S_FIELD_PARTITION_KEY 8
#define S_FIELD_ATTRIBUTES    12
#define S_LAST_STRING_FIELD   11 // 1-4 and 6-11 are strings; 5, 20, 21 varints

typedef struct {
    const uint8_t *cursor;
    const uint8_t *end;
} s_reader_t;

static bool
s_varint (s_reader_t *reader, uint64_t *value)
{
    uint64_t result = 0;
    for (int shift = 0; shift < 64 && reader->cursor < reader->end; shift += 7) {
        uint8_t byte = *reader->cursor++;
        result |= (uint64_t) (byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *value = result;
            return true;
        }
    }
    return false;
}

//  Reads one field: its number, wire type, and for length-delimited fields
//  the bytes. Fixed-size and varint values are skipped over.
static bool
s_field (s_reader_t *reader, uint32_t *number, int *wire_type, hd_text_t *bytes)
{
    uint64_t tag, value;
    if (!s_varint (reader, &tag) || tag >> 3 == 0 || tag >> 3 > 0x1FFFFFFF)
        return false;
    *number = (uint32_t) (tag >> 3);
    *wire_type = (int) (tag & 7);
    size_t left = (size_t) (reader->end - reader->cursor);
    switch (*wire_type) {
        case 0: return s_varint (reader, &value);
        case 1:
        case 5: {
            size_t width = *wire_type == 1 ? 8 : 4;
            if (left < width)
                return false;
            reader->cursor += width;
            return true;
        }
        case 2:
            if (!s_varint (reader, &value) || value > (uint64_t) (reader->end - reader->cursor))
                return false;
            bytes->data = (const char *) reader->cursor;
            bytes->size = (size_t) value;
            reader->cursor += value;
            return true;
        default: return false; // groups (3, 4) and the unused 6, 7
    }
}

bool
hd_utf8_valid (const char *text, size_t size)
{
    const unsigned char *c = (const unsigned char *) text;
    const unsigned char *end = c + size;
    while (c < end) {
        //  ASCII eight bytes at a time: the common case
        if (end - c >= 8) {
            uint64_t word;
            memcpy (&word, c, 8);
            //  No high bit set and no zero byte in the word
            if (!(word & 0x8080808080808080ULL) &&
                !((word - 0x0101010101010101ULL) & ~word & 0x8080808080808080ULL)) {
                c += 8;
                continue;
            }
        }
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

//  A map entry: key (1) and value (2), both strings.
static hd_envelope_result_t
s_attribute (const hd_text_t *entry)
{
    s_reader_t reader = {(const uint8_t *) entry->data,
                         (const uint8_t *) entry->data + entry->size};
    while (reader.cursor < reader.end) {
        uint32_t number;
        int wire_type;
        hd_text_t bytes;
        if (!s_field (&reader, &number, &wire_type, &bytes))
            return HD_ENVELOPE_MALFORMED;
        if (number == 1 || number == 2) {
            if (wire_type != 2)
                return HD_ENVELOPE_MALFORMED;
            if (!hd_utf8_valid (bytes.data, bytes.size))
                return HD_ENVELOPE_NOT_UTF8;
        }
    }
    return HD_ENVELOPE_OK;
}

hd_envelope_result_t
hd_envelope_scan (hd_envelope_t *self, const void *data, size_t size)
{
    memset (self, 0, sizeof *self);
    s_reader_t reader = {data, (const uint8_t *) data + size};
    hd_envelope_result_t result = HD_ENVELOPE_OK;
    while (reader.cursor < reader.end) {
        uint32_t number;
        int wire_type;
        hd_text_t bytes = {NULL, 0};
        if (!s_field (&reader, &number, &wire_type, &bytes))
            return HD_ENVELOPE_MALFORMED;
        bool string_field = number >= 1 && number <= S_LAST_STRING_FIELD && number != 5;
        bool varint_field = number == 5 || number == 20 || number == 21;
        if ((string_field || number == S_FIELD_ATTRIBUTES) && wire_type != 2)
            return HD_ENVELOPE_MALFORMED;
        if (varint_field && wire_type != 0)
            return HD_ENVELOPE_MALFORMED;
        //  Keep reading after a bad string: malformed input wins over it
        if (string_field && result == HD_ENVELOPE_OK && !hd_utf8_valid (bytes.data, bytes.size))
            result = HD_ENVELOPE_NOT_UTF8;
        if (number == S_FIELD_ATTRIBUTES) {
            hd_envelope_result_t entry = s_attribute (&bytes);
            if (entry == HD_ENVELOPE_MALFORMED)
                return entry;
            if (result == HD_ENVELOPE_OK)
                result = entry;
        }
        switch (number) {
            case S_FIELD_ID: self->id = bytes; break;
            case S_FIELD_SOURCE: self->source = bytes; break;
            case S_FIELD_TYPE: self->type = bytes; break;
            case S_FIELD_PARTITION_KEY: self->partition_key = bytes; break;
            default: break;
        }
    }
    return result;
}
