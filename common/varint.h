/*  varint — protobuf base-128 varints, read and written inline: every
    decoder and encoder of the hot path runs them several times per event.
*/
#ifndef HD_VARINT_H_INCLUDED
#define HD_VARINT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Reads the varint at *cursor (before end) into *value and moves *cursor
//  past it. False when it runs past end or past ten bytes (*cursor is then
//  somewhere inside it).
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
    //  With ten bytes at hand no byte needs a bounds check
    if (end - at >= 10) {
        uint64_t result = 0;
        for (int index = 0; index < 10; index++) {
            uint64_t byte = at[index];
            result |= (byte & 0x7F) << (7 * index);
            if (!(byte & 0x80)) {
                *value = result;
                *cursor = at + index + 1;
                return true;
            }
        }
        *cursor = at + 10;
        return false;
    }
    uint64_t result = 0;
    for (int shift = 0; shift < 64 && at < end; shift += 7) {
        uint8_t byte = *at++;
        result |= (uint64_t) (byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *value = result;
            *cursor = at;
            return true;
        }
    }
    *cursor = at;
    return false;
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

#endif
