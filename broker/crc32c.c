/*  crc32c — slicing-by-8 software CRC-32C. The tables are built once, on
    first use, and never change after: constant data, not state. */
#include "crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define S_POLY 0x82F63B78u // reflected Castagnoli polynomial

static uint32_t s_table[8][256];
static pthread_once_t s_table_once = PTHREAD_ONCE_INIT;

static void
s_table_build (void)
{
    for (uint32_t byte = 0; byte < 256; byte++) {
        uint32_t crc = byte;
        for (int bit = 0; bit < 8; bit++)
            crc = crc & 1 ? (crc >> 1) ^ S_POLY : crc >> 1;
        s_table[0][byte] = crc;
    }
    for (uint32_t byte = 0; byte < 256; byte++)
        for (int slice = 1; slice < 8; slice++)
            s_table[slice][byte] =
                (s_table[slice - 1][byte] >> 8) ^ s_table[0][s_table[slice - 1][byte] & 0xFF];
}

#if defined(__x86_64__)
//  SSE4.2 has a CRC-32C instruction: 8 bytes a cycle or so, several times
//  the table version. Chosen once, at first use, when the CPU has it.
//  Four words a turn of the loop: half the loop's own instructions per
//  byte, for log records of a few hundred bytes.
__attribute__ ((target ("sse4.2"))) static uint32_t
s_crc32c_sse42 (uint32_t crc, const uint8_t *bytes, size_t size)
{
    uint64_t state = ~crc;
    uint64_t words[4];
    while (size >= sizeof words) {
        memcpy (words, bytes, sizeof words);
        state = __builtin_ia32_crc32di (state, words[0]);
        state = __builtin_ia32_crc32di (state, words[1]);
        state = __builtin_ia32_crc32di (state, words[2]);
        state = __builtin_ia32_crc32di (state, words[3]);
        bytes += sizeof words;
        size -= sizeof words;
    }
    while (size >= 8) {
        memcpy (words, bytes, 8);
        state = __builtin_ia32_crc32di (state, words[0]);
        bytes += 8;
        size -= 8;
    }
    uint32_t state32 = (uint32_t) state;
    while (size--)
        state32 = __builtin_ia32_crc32qi (state32, *bytes++);
    return ~state32;
}
#endif

static bool s_have_sse42;

static void
s_setup (void)
{
    s_table_build ();
#if defined(__x86_64__)
    __builtin_cpu_init ();
    s_have_sse42 = __builtin_cpu_supports ("sse4.2");
#endif
}

static uint32_t s_crc32c_table (uint32_t crc, const void *data, size_t size);

uint32_t
hd_crc32c (uint32_t crc, const void *data, size_t size)
{
    pthread_once (&s_table_once, s_setup);
#if defined(__x86_64__)
    if (s_have_sse42)
        return s_crc32c_sse42 (crc, data, size);
#endif
    return s_crc32c_table (crc, data, size);
}

//  Table-driven fallback; also checked against the instruction in the tests
uint32_t
hd_crc32c_portable (uint32_t crc, const void *data, size_t size)
{
    pthread_once (&s_table_once, s_setup);
    return s_crc32c_table (crc, data, size);
}

static uint32_t
s_crc32c_table (uint32_t crc, const void *data, size_t size)
{
    const uint8_t *bytes = data;
    crc = ~crc;
    while (size >= 8) {
        uint64_t word;
        memcpy (&word, bytes, 8);
        word ^= crc; // little-endian hosts only (x86_64, aarch64)
        crc = s_table[7][word & 0xFF] ^ s_table[6][(word >> 8) & 0xFF] ^
              s_table[5][(word >> 16) & 0xFF] ^ s_table[4][(word >> 24) & 0xFF] ^
              s_table[3][(word >> 32) & 0xFF] ^ s_table[2][(word >> 40) & 0xFF] ^
              s_table[1][(word >> 48) & 0xFF] ^ s_table[0][word >> 56];
        bytes += 8;
        size -= 8;
    }
    while (size--)
        crc = (crc >> 8) ^ s_table[0][(crc ^ *bytes++) & 0xFF];
    return ~crc;
}
