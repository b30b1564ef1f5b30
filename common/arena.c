/*  arena — bump allocation with a malloc fallback. */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>

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
}

size_t
hd_arena_used (hd_arena_t *self)
{
    return self->used;
}
