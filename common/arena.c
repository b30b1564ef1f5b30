/*  arena — bump allocation with a malloc fallback. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>

//  Under AddressSanitizer what is not handed out is poisoned, so a read of
//  arena memory after a reset is reported like a use after free
#if defined(__SANITIZE_ADDRESS__)
#define S_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_ASAN 1
#endif
#endif
#ifdef S_ASAN
#include <sanitizer/asan_interface.h>
#define S_POISON(data, size)   ASAN_POISON_MEMORY_REGION (data, size)
#define S_UNPOISON(data, size) ASAN_UNPOISON_MEMORY_REGION (data, size)
#else
#define S_POISON(data, size)   ((void) (data), (void) (size))
#define S_UNPOISON(data, size) ((void) (data), (void) (size))
#endif

struct _hd_arena_t {
    ProtobufCAllocator allocator; // allocator_data points back here
    uint8_t *buffer;
    size_t size;
    size_t used;
};

void *
hd_arena_take (hd_arena_t *self, size_t size)
{
    size_t aligned = (size + 15) & ~(size_t) 15;
    if (aligned < size || aligned > self->size - self->used)
        return NULL;
    void *pointer = self->buffer + self->used;
    self->used += aligned;
    S_UNPOISON (pointer, aligned);
    return pointer;
}

static void *
s_alloc (void *data, size_t size)
{
    void *pointer = hd_arena_take (data, size);
    return pointer ? pointer : malloc (size ? size : 1);
}

static void
s_free (void *data, void *pointer)
{
    hd_arena_t *self = data;
    uint8_t *bytes = pointer;
    if (bytes >= self->buffer && bytes < self->buffer + self->size)
        return; // reclaimed by the next reset
    free (pointer);
}

hd_arena_t *
hd_arena_new (size_t size)
{
    hd_arena_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->buffer = malloc (size);
    if (!self->buffer) {
        free (self);
        return NULL;
    }
    self->size = size;
    S_POISON (self->buffer, size);
    self->allocator.alloc = s_alloc;
    self->allocator.free = s_free;
    self->allocator.allocator_data = self;
    return self;
}

void
hd_arena_destroy (hd_arena_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    S_UNPOISON ((*self_p)->buffer, (*self_p)->size);
    free ((*self_p)->buffer);
    free (*self_p);
    *self_p = NULL;
}

ProtobufCAllocator *
hd_arena_allocator (hd_arena_t *self)
{
    return &self->allocator;
}

void
hd_arena_reset (hd_arena_t *self)
{
    self->used = 0;
    S_POISON (self->buffer, self->size);
}

size_t
hd_arena_used (hd_arena_t *self)
{
    return self->used;
}
