/*  bytes — little-endian integers in on-disk records (log and journal).

    On a little-endian machine each is one unaligned load or store (a
    memcpy the compiler turns into one instruction); GCC 12 did not merge
    the portable byte-at-a-time loops, which took ~80 instructions
    of every log append. Elsewhere the bytes are put together one by one.
*/
#ifndef HD_BYTES_H_INCLUDED
#define HD_BYTES_H_INCLUDED

#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HD_BYTES_NATIVE 1
#else
#define HD_BYTES_NATIVE 0
#endif

static inline void
hd_put_u16 (uint8_t *at, uint16_t value)
{
    at[0] = (uint8_t) value;
    at[1] = (uint8_t) (value >> 8);
}

static inline void
hd_put_u32 (uint8_t *at, uint32_t value)
{
    if (HD_BYTES_NATIVE) {
        memcpy (at, &value, 4);
        return;
    }
    for (int index = 0; index < 4; index++)
        at[index] = (uint8_t) (value >> (8 * index));
}

static inline void
hd_put_u64 (uint8_t *at, uint64_t value)
{
    if (HD_BYTES_NATIVE) {
        memcpy (at, &value, 8);
        return;
    }
    for (int index = 0; index < 8; index++)
        at[index] = (uint8_t) (value >> (8 * index));
}

static inline uint16_t
hd_get_u16 (const uint8_t *at)
{
    return (uint16_t) (at[0] | at[1] << 8);
}

static inline uint32_t
hd_get_u32 (const uint8_t *at)
{
    uint32_t value = 0;
    if (HD_BYTES_NATIVE) {
        memcpy (&value, at, 4);
        return value;
    }
    for (int index = 3; index >= 0; index--)
        value = (value << 8) | at[index];
    return value;
}

static inline uint64_t
hd_get_u64 (const uint8_t *at)
{
    uint64_t value = 0;
    if (HD_BYTES_NATIVE) {
        memcpy (&value, at, 8);
        return value;
    }
    for (int index = 7; index >= 0; index--)
        value = (value << 8) | at[index];
    return value;
}

#endif
