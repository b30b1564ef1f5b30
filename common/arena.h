/*  arena — a bump allocator for protobuf-c decoding on hot paths, and for
    bytes that live until a known point (the broker's turn).

    Decoding an Event allocates a dozen small pieces; with malloc that is a
    measurable share of the broker's time. The arena hands them out from
    one buffer and forgets them all at once with hd_arena_reset. Requests
    that do not fit go to malloc (and their free to free), so any message
    decodes correctly. Not thread-safe: one arena per thread.
*/
#ifndef HD_ARENA_H_INCLUDED
#define HD_ARENA_H_INCLUDED

#include <stddef.h>
#include <protobuf-c/protobuf-c.h>

typedef struct _hd_arena_t hd_arena_t;

hd_arena_t *hd_arena_new (size_t size);
void hd_arena_destroy (hd_arena_t **self_p);

//  The allocator to pass to *__unpack and *__free_unpacked.
ProtobufCAllocator *hd_arena_allocator (hd_arena_t *self);

//  Forget everything allocated from the buffer. Objects decoded with the
//  arena must not be used after this.
void hd_arena_reset (hd_arena_t *self);

//  size bytes (16-byte aligned) from the buffer, or NULL when they do not
//  fit in what is left: for callers that have a fallback of their own and
//  must know the memory goes away at the next reset.
void *hd_arena_take (hd_arena_t *self, size_t size);

//  Bytes handed out from the buffer since the last reset.
size_t hd_arena_used (hd_arena_t *self);

#endif
