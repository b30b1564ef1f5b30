/*  crc32c — CRC-32C (Castagnoli), the checksum of log and journal records. */
#ifndef HD_CRC32C_H_INCLUDED
#define HD_CRC32C_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  Extend crc (0 to start) over size bytes of data.
//  Uses the CPU's CRC-32C instruction when it has one.
uint32_t hd_crc32c (uint32_t crc, const void *data, size_t size);

//  The same without the instruction (table-driven).
uint32_t hd_crc32c_portable (uint32_t crc, const void *data, size_t size);

#endif
