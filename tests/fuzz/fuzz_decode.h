/*  fuzz_decode — the fuzz target's entry point (libFuzzer's signature). */
#ifndef HD_FUZZ_DECODE_H_INCLUDED
#define HD_FUZZ_DECODE_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

#endif
