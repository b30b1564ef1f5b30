/*  buffer — growing a heap byte buffer for appends. */
#ifndef HD_BUFFER_H_INCLUDED
#define HD_BUFFER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  Grows *data to hold at least size bytes, doubling from 4 KiB (so
//  appends are amortised O(1)). Returns 0, or -1 (ENOMEM) with *data and
//  *capacity as they were.
int hd_buffer_reserve (uint8_t **data, size_t *capacity, size_t size);

//  For buffers handed on when full (a new one each time): the size recent
//  ones reached, slowly forgotten (hd_buffer_note_size, with each finished
//  buffer's size), is what one grows to once its first 4 KiB are not
//  enough, so a large one is not built by doubling and a small one stays
//  small.
static inline void
hd_buffer_note_size (size_t *hint, size_t size)
{
    *hint -= *hint / 8;
    if (size > *hint)
        *hint = size;
}

static inline int
hd_buffer_reserve_hinted (uint8_t **data, size_t *capacity, size_t size, size_t hint)
{
    if (size <= *capacity)
        return 0;
    return hd_buffer_reserve (data, capacity, *capacity && size < hint ? hint : size);
}

//  How many freed objects a reuse list may keep: count, or none in an
//  AddressSanitizer build, so that a use after free is still caught.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) // clang before 21 has no __SANITIZE_ADDRESS__
#define HD_ADDRESS_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(HD_ADDRESS_SANITIZER)
#define HD_SPARE_MAX(count) 0
#else
#define HD_SPARE_MAX(count) (count)
#endif

//  Freed objects of one size kept for the next allocation: objects made
//  and dropped once per event would otherwise go to malloc and back each
//  time. The list links through an object's first bytes, so a kept object
//  must be at least a pointer in size; hd_reuse_take hands it out zeroed.
typedef struct {
    void *head;
    size_t count;
    size_t max; // kept at most (HD_SPARE_MAX applied)
} hd_reuse_t;

static inline void
hd_reuse_init (hd_reuse_t *self, size_t max)
{
    self->head = NULL;
    self->count = 0;
    self->max = HD_SPARE_MAX (max);
}

//  A zeroed object of size bytes, kept or new; NULL when out of memory.
static inline void *
hd_reuse_take (hd_reuse_t *self, size_t size)
{
    void *object = self->head;
    if (!object)
        return calloc (1, size);
    memcpy (&self->head, object, sizeof self->head);
    self->count--;
    memset (object, 0, size);
    return object;
}

//  Keeps object (whose own resources the caller released), or frees it
//  when the list is full.
static inline void
hd_reuse_keep (hd_reuse_t *self, void *object)
{
    if (self->count >= self->max) {
        free (object);
        return;
    }
    memcpy (object, &self->head, sizeof self->head);
    self->head = object;
    self->count++;
}

//  Frees every kept object.
static inline void
hd_reuse_drain (hd_reuse_t *self)
{
    while (self->head) {
        void *object = self->head;
        memcpy (&self->head, object, sizeof self->head);
        free (object);
    }
    self->count = 0;
}

#endif
