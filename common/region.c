/*  region — anonymous mappings on 2 MiB boundaries, advised for huge
    pages from 2 MiB on, faulted in a step at a time; small ones shrunk
    back onto the heap. */
#include "region.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 // Linux 5.14
#endif

#define S_HUGE             ((size_t) 2 << 20) // a huge page, the largest step
#define S_FIRST_STEP       ((size_t) 64 << 10)
#define S_HEAP_MAX         ((size_t) 256 << 10) // a region shrunk to this or less moves to the heap
#define S_MOST             (SIZE_MAX / 4) // larger requests are refused, never rounded past SIZE_MAX
#define S_TABLE_MAPPED_MIN ((size_t) 64 << 10) // smaller tables come from calloc

typedef enum { S_ADVICE_NONE, S_ADVICE_SMALL, S_ADVICE_HUGE } s_advice_t;

struct _hd_region_t {
    uint8_t *data;
    size_t size;   // bytes ready: faulted in
    size_t mapped; // address space held from data on (>= size); 0 when on the heap
    size_t page;
    s_advice_t advice; // what the mapping was last advised
};

static size_t
s_round_up (size_t value, size_t unit)
{
    return (value + unit - 1) / unit * unit;
}

hd_region_t *
hd_region_new (void)
{
    hd_region_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    long page = sysconf (_SC_PAGESIZE);
    self->page = page > 0 ? (size_t) page : 4096;
    return self;
}

//  Gives back the region's memory, mapped or on the heap.
static void
s_release (hd_region_t *self)
{
    if (self->mapped)
        munmap (self->data, self->mapped);
    else
        free (self->data);
    self->data = NULL;
    self->size = self->mapped = 0;
}

void
hd_region_destroy (hd_region_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_release (*self_p);
    free (*self_p);
    *self_p = NULL;
}

//  Maps `bytes` (a multiple of S_HUGE) starting on a S_HUGE boundary, so
//  that huge pages can back all of it: over-maps by one huge page and
//  gives back the slack on either side.
static uint8_t *
s_map_aligned (size_t bytes)
{
    size_t span = bytes + S_HUGE;
    uint8_t *raw = mmap (NULL, span, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uint8_t *aligned = (uint8_t *) s_round_up ((uintptr_t) raw, S_HUGE);
    if (aligned > raw)
        munmap (raw, (size_t) (aligned - raw));
    size_t tail = (size_t) ((raw + span) - (aligned + bytes));
    if (tail)
        munmap (aligned + bytes, tail);
    return aligned;
}

//  Holds at least `bytes` of address space: a larger aligned mapping. The
//  kernel moves the old pages to its start and grows them into it in one
//  call, so the region stays one mapping (a kernel before 6.17 cannot
//  move a range that spans two) and no byte is copied. A region on the
//  heap is copied once.
static int
s_grow_mapping (hd_region_t *self, size_t bytes)
{
    size_t mapped = s_round_up (bytes, S_HUGE);
    if (mapped < self->mapped * 2)
        mapped = self->mapped * 2;
    uint8_t *data = s_map_aligned (mapped);
    if (!data)
        return -1;
    if (self->mapped) {
        if (mremap (self->data, self->mapped, mapped, MREMAP_MAYMOVE | MREMAP_FIXED, data) ==
            MAP_FAILED) {
            int error = errno;
            munmap (data, mapped);
            errno = error;
            return -1;
        }
    } else if (self->data) {
        memcpy (data, self->data, self->size);
        free (self->data);
    }
    self->data = data;
    self->mapped = mapped;
    self->advice = S_ADVICE_NONE;
    return 0;
}

//  Huge pages from 2 MiB on only: below, a huge page would hold more than
//  the region (where the system gives them to every mapping, as with
//  transparent huge pages "always", the advice says no). Advice only:
//  4 KiB pages work either way.
static void
s_advise (hd_region_t *self, size_t target)
{
    s_advice_t advice = target >= S_HUGE ? S_ADVICE_HUGE : S_ADVICE_SMALL;
    if (advice == self->advice)
        return;
    if (madvise (self->data, self->mapped,
                 advice == S_ADVICE_HUGE ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0)
        self->advice = advice;
}

//  Faults the pages in for writing, contents unchanged. A kernel before
//  5.14 cannot populate (EINVAL): each page then gets an atomic add of
//  zero, a write from the start, since a read first would map the zero
//  page (on a huge-page mapping the huge zero page, which a write splits).
static int
s_populate (uint8_t *memory, size_t bytes, size_t page)
{
    if (madvise (memory, bytes, MADV_POPULATE_WRITE) == 0)
        return 0;
    if (errno != EINVAL)
        return -1;
    for (size_t offset = 0; offset < bytes; offset += page)
        __atomic_fetch_add (memory + offset, 0, __ATOMIC_RELAXED);
    return 0;
}

int
hd_region_prepare (hd_region_t *self, size_t bytes)
{
    if (bytes <= self->size)
        return 0;
    if (bytes > S_MOST) {
        errno = ENOMEM;
        return -1;
    }
    //  Steps double up to a huge page: a small region stays small
    size_t step = self->size < S_FIRST_STEP ? S_FIRST_STEP : self->size;
    if (step > S_HUGE)
        step = S_HUGE;
    size_t target = s_round_up (bytes > self->size + step ? bytes : self->size + step, self->page);
    if (target > self->mapped && s_grow_mapping (self, target) != 0) {
        errno = ENOMEM;
        return -1;
    }
    s_advise (self, target);
    //  From a page boundary: a region that was on the heap ends mid-page
    size_t from = self->size / self->page * self->page;
    if (s_populate (self->data + from, target - from, self->page) != 0) {
        errno = ENOMEM;
        return -1;
    }
    self->size = target;
    return 0;
}

void
hd_region_shrink (hd_region_t *self, size_t bytes)
{
    if (bytes >= self->size)
        return;
    if (bytes == 0) {
        s_release (self);
        return;
    }
    //  A small region goes to the heap: a mapping of its own each would
    //  run into the system's limit on mappings (vm.max_map_count, 65 530
    //  by default) with many small segments
    if (self->mapped && bytes <= S_HEAP_MAX) {
        uint8_t *heap = malloc (bytes);
        if (heap) {
            memcpy (heap, self->data, bytes);
            munmap (self->data, self->mapped);
            self->data = heap;
            self->size = bytes;
            self->mapped = 0;
            return;
        }
    }
    if (!self->mapped)
        return; // already on the heap and small: nothing worth giving back
    size_t keep = s_round_up (bytes, self->page);
    if (keep < self->mapped)
        munmap (self->data + keep, self->mapped - keep);
    self->mapped = keep;
    if (self->size > keep)
        self->size = keep;
}

void *
hd_region_data (hd_region_t *self)
{
    return self->data;
}

size_t
hd_region_size (hd_region_t *self)
{
    return self->size;
}

void *
hd_region_table_new (size_t bytes, hd_region_t **region_p)
{
    *region_p = NULL;
    if (bytes < S_TABLE_MAPPED_MIN)
        return calloc (1, bytes ? bytes : 1);
    //  Fresh pages are zero
    hd_region_t *region = hd_region_new ();
    if (!region || hd_region_prepare (region, bytes) != 0) {
        hd_region_destroy (&region);
        return NULL;
    }
    *region_p = region;
    return hd_region_data (region);
}

void
hd_region_table_free (void *table, hd_region_t **region_p)
{
    if (*region_p)
        hd_region_destroy (region_p); // the table's memory goes with it
    else
        free (table);
}
