/*  region — memory taken straight from the kernel for data that fills up
    under traffic (the log's index, the dedup window's entries).

    Memory the process touches for the first time costs a page fault per
    4 KiB page; on a virtual machine that is ~10 us (measured on the CI
    machines: 11 us), more than the broker spends on an event. A region is
    mapped in huge pages where the kernel gives them (MADV_HUGEPAGE) and
    faulted in ahead, a step of up to 2 MiB per system call
    (MADV_POPULATE_WRITE): ~0.3-2 us a page there. Without either (an
    older kernel, huge pages off) it behaves as plain memory.

    A region grows without copying (mremap moves the pages, not the
    bytes) and stays one mapping. A region shrunk to 256 KiB or less
    moves to the heap, so that many small ones do not run into the
    system's limit on mappings. Its data may move either way: take
    hd_region_data again after every prepare, whatever it returned, and
    after every shrink.
*/
#ifndef HD_REGION_H_INCLUDED
#define HD_REGION_H_INCLUDED

#include <stddef.h>

typedef struct _hd_region_t hd_region_t;

//  An empty region: nothing is mapped until the first prepare.
hd_region_t *hd_region_new (void);
void hd_region_destroy (hd_region_t **self_p);

//  Makes at least the first `bytes` ready to use, faulting in whole steps
//  ahead. Returns 0, or -1 with errno ENOMEM when the memory cannot be
//  had; the region's bytes and size are then as they were.
int hd_region_prepare (hd_region_t *self, size_t bytes);
//  Keeps the first `bytes` and gives the rest back to the system (a
//  mapping keeps them rounded up to a page; 256 KiB or less go to the
//  heap, where it can get the memory).
void hd_region_shrink (hd_region_t *self, size_t bytes);

//  The first byte (NULL while nothing is prepared).
void *hd_region_data (hd_region_t *self);
//  Bytes ready to use from hd_region_data on.
size_t hd_region_size (hd_region_t *self);

//  Zeroed memory for a table looked up at random (hash slots, a ring of
//  pointers): from calloc below 64 KiB, else a region of its own, faulted
//  in whole now and in huge pages where the kernel has them, since with
//  4 KiB pages nearly every look-up would also miss the TLB. Sets
//  *region_p to the region, or NULL. Returns NULL when out of memory.
void *hd_region_table_new (size_t bytes, hd_region_t **region_p);
//  Frees what hd_region_table_new gave, with the region it set.
void hd_region_table_free (void *table, hd_region_t **region_p);

#endif
