/*  buffer — growing a heap byte buffer for appends. */
#ifndef HD_BUFFER_H_INCLUDED
#define HD_BUFFER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  Grows *data to hold at least size bytes, doubling from 4 KiB (so
//  appends are amortised O(1)). Returns 0, or -1 (ENOMEM) with *data and
//  *capacity as they were.
int hd_buffer_reserve (uint8_t **data, size_t *capacity, size_t size);

//  How many freed objects a reuse list may keep: count, or none in an
//  AddressSanitizer build, so that a use after free is still caught.
#if defined(__SANITIZE_ADDRESS__)
#define HD_SPARE_MAX(count) 0
#else
#define HD_SPARE_MAX(count) (count)
#endif

#endif
