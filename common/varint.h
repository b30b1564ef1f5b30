/*  varint — protobuf's base-128 varints and the fields built on them,
    read and written inline: every decoder and encoder of the hot path
    runs them several times per event.
*/
#ifndef HD_VARINT_H_INCLUDED
#define HD_VARINT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

//  What hd_varint_read_long read: the byte after the varint (NULL when it
//  is malformed) and its value. Returned whole, in two registers, so that
//  a caller's cursor need not live in memory.
typedef struct {
    const uint8_t *next;
    uint64_t value;
} hd_varint_long_t;

//  hd_varint_read for a varint whose first two bytes both go on. Kept out
//  of line so that the short cases stay small enough to inline everywhere.
static __attribute__ ((noinline, unused)) hd_varint_long_t
hd_varint_read_long (const uint8_t *at, const uint8_t *end)
{
    //  Sequence numbers and correlation ids run to three and four bytes,
    //  often within the last eight of a message
    if (end - at >= 3) {
        uint64_t two = (uint64_t) (at[0] & 0x7F) | (uint64_t) (at[1] & 0x7F) << 7;
        if (at[2] < 0x80)
            return (hd_varint_long_t){at + 3, two | (uint64_t) at[2] << 14};
        if (end - at >= 4 && at[3] < 0x80)
            return (hd_varint_long_t){at + 4, two | (uint64_t) (at[2] & 0x7F) << 14 |
                                                  (uint64_t) at[3] << 21};
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    //  With eight bytes at hand, one that ends within them (times take
    //  seven or eight) is found and put together a word at a time
    if (end - at >= 8) {
        uint64_t word;
        memcpy (&word, at, 8);
        uint64_t stops = ~word & 0x8080808080808080ULL;
        if (stops) {
            uint64_t last = stops & (0 - stops); // the high bit of its last byte
            uint64_t bits = word & ((last << 1) - 1) & 0x7F7F7F7F7F7F7F7FULL;
            //  Seven bits a byte into one run: pairs of bytes, of pairs, of those
            bits = (bits & 0x007F007F007F007FULL) | ((bits & 0x7F007F007F007F00ULL) >> 1);
            bits = (bits & 0x00003FFF00003FFFULL) | ((bits & 0x3FFF00003FFF0000ULL) >> 2);
            bits = (bits & 0x000000000FFFFFFFULL) | ((bits & 0x0FFFFFFF00000000ULL) >> 4);
            return (hd_varint_long_t){at + (__builtin_ctzll (last) >> 3) + 1, bits};
        }
    }
#endif
    //  With ten bytes at hand no byte needs a bounds check
    if (end - at >= 10) {
        uint64_t result = 0;
        for (int index = 0; index < 10; index++) {
            uint64_t byte = at[index];
            result |= (byte & 0x7F) << (7 * index);
            if (!(byte & 0x80))
                return (hd_varint_long_t){at + index + 1, result};
        }
        return (hd_varint_long_t){NULL, 0};
    }
    uint64_t result = 0;
    for (int shift = 0; shift < 64 && at < end; shift += 7) {
        uint8_t byte = *at++;
        result |= (uint64_t) (byte & 0x7F) << shift;
        if (!(byte & 0x80))
            return (hd_varint_long_t){at, result};
    }
    return (hd_varint_long_t){NULL, 0};
}

//  Reads the varint at *cursor (before end) into *value and moves *cursor
//  past it. False when it runs past end or past ten bytes (*cursor is then
//  where it was).
static inline bool
hd_varint_read (const uint8_t **cursor, const uint8_t *end, uint64_t *value)
{
    const uint8_t *at = *cursor;
    //  Tags and most lengths are one byte
    if (at < end && *at < 0x80) {
        *value = *at;
        *cursor = at + 1;
        return true;
    }
    //  Two-byte tags (fields 16 to 2047) and lengths below 16 KiB
    if (end - at >= 2 && at[1] < 0x80) {
        *value = (uint64_t) (at[0] & 0x7F) | (uint64_t) at[1] << 7;
        *cursor = at + 2;
        return true;
    }
    hd_varint_long_t read = hd_varint_read_long (at, end);
    if (!read.next)
        return false;
    *value = read.value;
    *cursor = read.next;
    return true;
}

//  Writes value at out; returns the bytes written (at most 10).
static inline size_t
hd_varint_encode (uint8_t *out, uint64_t value)
{
    size_t size = 0;
    while (value >= 0x80) {
        out[size++] = (uint8_t) (value | 0x80);
        value >>= 7;
    }
    out[size++] = (uint8_t) value;
    return size;
}

//  Bytes hd_varint_encode writes for value.
static inline size_t
hd_varint_size (uint64_t value)
{
    size_t size = 1;
    while (value >= 0x80) {
        value >>= 7;
        size++;
    }
    return size;
}

//  Bytes of a field whose tag takes one byte (field numbers 1..15): a
//  varint value, or size bytes after their length.
static inline size_t
hd_varint_field_size (uint64_t value)
{
    return 1 + hd_varint_size (value);
}

static inline size_t
hd_bytes_field_size (size_t size)
{
    return 1 + hd_varint_size (size) + size;
}

//  One protobuf field, as hd_proto_field_read finds it.
typedef struct {
    uint32_t number;
    int wire_type;       // 0 varint, 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit
    uint64_t value;      // a varint's value, a length-delimited field's size; 0 for fixed
    const uint8_t *data; // a length-delimited field's bytes; NULL for the others
} hd_proto_field_t;

//  Reads the field at *cursor (before end) and moves *cursor past it;
//  fixed-size values are skipped over. False when it is malformed: runs
//  past end, has field number 0 or above 2^29 - 1, or is a group (wire
//  types 3 and 4, long deprecated) or an unused wire type.
static inline bool
hd_proto_field_read (const uint8_t **cursor, const uint8_t *end, hd_proto_field_t *field)
{
    uint64_t tag;
    if (!hd_varint_read (cursor, end, &tag) || tag >> 3 == 0 || tag >> 3 > 0x1FFFFFFF)
        return false;
    field->number = (uint32_t) (tag >> 3);
    field->wire_type = (int) (tag & 7);
    field->value = 0;
    field->data = NULL;
    switch (field->wire_type) {
        case 0: return hd_varint_read (cursor, end, &field->value);
        case 1:
        case 5: {
            size_t width = field->wire_type == 1 ? 8 : 4;
            if ((size_t) (end - *cursor) < width)
                return false;
            *cursor += width;
            return true;
        }
        case 2:
            if (!hd_varint_read (cursor, end, &field->value) ||
                field->value > (uint64_t) (end - *cursor))
                return false;
            field->data = *cursor;
            *cursor += field->value;
            return true;
        default: return false;
    }
}

#endif
