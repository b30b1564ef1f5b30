/*  bytes — little-endian integers in on-disk records (log and journal). */
#ifndef HD_BYTES_H_INCLUDED
#define HD_BYTES_H_INCLUDED

#include <stdint.h>

static inline void
hd_put_u16 (uint8_t *at, uint16_t value)
{
    at[0] = (uint8_t) value;
    at[1] = (uint8_t) (value >> 8);
}

static inline void
hd_put_u32 (uint8_t *at, uint32_t value)
{
    for (int index = 0; index < 4; index++)
        at[index] = (uint8_t) (value >> (8 * index));
}

static inline void
hd_put_u64 (uint8_t *at, uint64_t value)
{
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
    for (int index = 3; index >= 0; index--)
        value = (value << 8) | at[index];
    return value;
}

static inline uint64_t
hd_get_u64 (const uint8_t *at)
{
    uint64_t value = 0;
    for (int index = 7; index >= 0; index--)
        value = (value << 8) | at[index];
    return value;
}

#endif
