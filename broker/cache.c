/*  cache — the log's hot cache (see cache.h).

    Place seq lives in chunk number seq / S_CHUNK_PLACES, at seq %
    S_CHUNK_PLACES; chunks sits in a ring of pointers indexed by chunk
    number. A chunk exists exactly while some seq of the run falls in it.

    Copied records go into the current block, back to back; a block counts
    the places whose bytes it holds and goes (to a short free list) when
    the last leaves, unless it is the current one, which then starts over.
*/
#include "cache.h"
#include "buffer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define S_CHUNK_BITS   9
#define S_CHUNK_PLACES (1u << S_CHUNK_BITS)
//  Released chunks kept for reuse: a release of what nobody needs any more
//  frees many at once (see hd_cache_drop_before), and the run grows back
#define S_CHUNKS_SPARE 8

#define S_BLOCK_SIZE   (2u << 20) // a huge page
#define S_BLOCKS_SPARE 2          // free blocks kept for reuse

typedef struct _s_block_t s_block_t;
struct _s_block_t {
    s_block_t *next; // on the free list
    size_t used;     // bytes handed out from data
    size_t live;     // places whose bytes are here
    uint8_t data[];
};
#define S_BLOCK_DATA (S_BLOCK_SIZE - sizeof (s_block_t))
_Static_assert(HD_CACHE_COPY_LIMIT <= S_BLOCK_DATA / 8, "a block holds at least 8 records");

typedef enum { S_EMPTY, S_SHARED, S_COPIED } s_kind_t;

//  A large record's frames, shared with whoever else holds them
typedef struct {
    zmq_msg_t envelope;
    zmq_msg_t payload;
} s_frames_t;

//  32 bytes: every seq of the run has one, so it is most of what a run of
//  small records costs besides their bytes
typedef struct {
    union {
        s_block_t *block;   // S_COPIED: the block holding the bytes
        s_frames_t *frames; // S_SHARED
    };
    const uint8_t *bytes; // S_COPIED: envelope, then payload
    uint32_t envelope_size, payload_size;
    uint8_t kind; // s_kind_t
} s_place_t;

struct _hd_cache_t {
    s_place_t **chunks; // ring by chunk number & (chunk_max - 1)
    size_t chunk_max;   // a power of two
    hd_reuse_t spare;   // a released chunk, kept for the next
    uint64_t first;     // the run: first .. first + count - 1
    size_t count;
    size_t used, limit;
    size_t copy_max;
    s_block_t *block;       // where copies go now (NULL: none yet)
    s_block_t *free_blocks; // at most S_BLOCKS_SPARE
    size_t free_count, block_count;
};

hd_cache_t *
hd_cache_new (size_t limit, size_t copy_max)
{
    hd_cache_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    //  A larger copy_max silently lowered would have the cache share frames
    //  its caller lent it only for the call
    if (copy_max > HD_CACHE_COPY_LIMIT) {
        free (self);
        return NULL;
    }
    self->limit = limit;
    self->copy_max = copy_max;
    hd_reuse_init (&self->spare, S_CHUNKS_SPARE);
    return self;
}

void
hd_cache_destroy (hd_cache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_cache_t *self = *self_p;
    hd_cache_drop_from (self, self->first);
    hd_reuse_drain (&self->spare);
    free (self->block);
    while (self->free_blocks) {
        s_block_t *block = self->free_blocks;
        self->free_blocks = block->next;
        free (block);
    }
    free (self->chunks);
    free (self);
    *self_p = NULL;
}

static s_place_t *
s_place (hd_cache_t *self, uint64_t seq)
{
    s_place_t *chunk = self->chunks[(seq >> S_CHUNK_BITS) & (self->chunk_max - 1)];
    return &chunk[seq & (S_CHUNK_PLACES - 1)];
}

static size_t
s_cost (s_place_t *place)
{
    if (place->kind == S_EMPTY)
        return sizeof *place;
    return (size_t) place->envelope_size + place->payload_size + sizeof *place;
}

static s_block_t *
s_block_new (hd_cache_t *self)
{
    s_block_t *block = self->free_blocks;
    if (block) {
        self->free_blocks = block->next;
        self->free_count--;
    } else {
        block = aligned_alloc (S_BLOCK_SIZE, S_BLOCK_SIZE);
        if (!block)
            return NULL;
#ifdef MADV_HUGEPAGE
        madvise (block, S_BLOCK_SIZE, MADV_HUGEPAGE); // a hint: 4 KiB pages still work
#endif
        self->block_count++;
    }
    block->next = NULL;
    block->used = 0;
    block->live = 0;
    return block;
}

static void
s_block_release (hd_cache_t *self, s_block_t *block)
{
    if (self->free_count < S_BLOCKS_SPARE) {
        block->next = self->free_blocks;
        self->free_blocks = block;
        self->free_count++;
    } else {
        free (block);
        self->block_count--;
    }
}

//  Room for size bytes in the current block, a new one when it is full.
static uint8_t *
s_block_take (hd_cache_t *self, size_t size, s_block_t **block_p)
{
    s_block_t *block = self->block;
    if (!block || block->used + size > S_BLOCK_DATA) {
        s_block_t *fresh = s_block_new (self);
        if (!fresh)
            return NULL;
        if (block && block->live == 0)
            s_block_release (self, block);
        self->block = block = fresh;
    }
    uint8_t *bytes = block->data + block->used;
    //  Eight-byte aligned, as malloc would
    block->used += (size + 7) & ~(size_t) 7;
    block->live++;
    *block_p = block;
    return bytes;
}

static void
s_block_forget (hd_cache_t *self, s_block_t *block)
{
    if (--block->live > 0)
        return;
    if (block == self->block)
        block->used = 0;
    else
        s_block_release (self, block);
}

static void
s_release_chunk (hd_cache_t *self, uint64_t seq)
{
    s_place_t **slot = &self->chunks[(seq >> S_CHUNK_BITS) & (self->chunk_max - 1)];
    hd_reuse_keep (&self->spare, *slot);
    *slot = NULL;
}

static void
s_close (hd_cache_t *self, uint64_t seq)
{
    s_place_t *place = s_place (self, seq);
    self->used -= s_cost (place);
    if (place->kind == S_SHARED) {
        zmq_msg_close (&place->frames->envelope);
        zmq_msg_close (&place->frames->payload);
        free (place->frames);
    } else if (place->kind == S_COPIED)
        s_block_forget (self, place->block);
    place->kind = S_EMPTY;
}

static void
s_drop_oldest (hd_cache_t *self)
{
    uint64_t seq = self->first;
    s_close (self, seq);
    self->first++;
    self->count--;
    if (self->count == 0 || (self->first & (S_CHUNK_PLACES - 1)) == 0)
        s_release_chunk (self, seq);
}

static void
s_drop_newest (hd_cache_t *self)
{
    uint64_t seq = self->first + self->count - 1;
    s_close (self, seq);
    self->count--;
    if (self->count == 0 || (seq & (S_CHUNK_PLACES - 1)) == 0)
        s_release_chunk (self, seq);
}

void
hd_cache_drop_before (hd_cache_t *self, uint64_t seq)
{
    while (self->count && self->first < seq)
        s_drop_oldest (self);
}

void
hd_cache_drop_from (hd_cache_t *self, uint64_t seq)
{
    while (self->count && self->first + self->count > seq)
        s_drop_newest (self);
}

//  Room in the ring for the chunks of first .. seq: the ring doubles and
//  each chunk pointer moves to its new index (pointers only, never places).
static int
s_ring_fit (hd_cache_t *self, uint64_t seq)
{
    uint64_t low = (self->count ? self->first : seq) >> S_CHUNK_BITS;
    uint64_t span = (seq >> S_CHUNK_BITS) - low + 1;
    if (span <= self->chunk_max)
        return 0;
    size_t max = self->chunk_max ? self->chunk_max : 4;
    while (max < span)
        max *= 2;
    s_place_t **chunks = calloc (max, sizeof *chunks);
    if (!chunks)
        return -1;
    if (self->count) {
        uint64_t high = (self->first + self->count - 1) >> S_CHUNK_BITS;
        for (uint64_t number = low; number <= high; number++)
            chunks[number & (max - 1)] = self->chunks[number & (self->chunk_max - 1)];
    }
    free (self->chunks);
    self->chunks = chunks;
    self->chunk_max = max;
    return 0;
}

//  The chunk that seq's place needs, made if it does not exist yet.
static int
s_chunk_for (hd_cache_t *self, uint64_t seq)
{
    if (self->count && (seq & (S_CHUNK_PLACES - 1)) != 0)
        return 0; // seq follows a place in the same chunk
    if (s_ring_fit (self, seq))
        return -1;
    s_place_t *chunk = hd_reuse_take (&self->spare, S_CHUNK_PLACES * sizeof (s_place_t));
    if (!chunk)
        return -1;
    self->chunks[(seq >> S_CHUNK_BITS) & (self->chunk_max - 1)] = chunk;
    return 0;
}

//  Copies the record into a block, or shares its frames when it is large.
static int
s_keep (hd_cache_t *self, s_place_t *place, const hd_record_t *record)
{
    size_t envelope_size = record->envelope_size, payload_size = record->payload_size;
    place->envelope_size = (uint32_t) envelope_size;
    place->payload_size = (uint32_t) payload_size;
    if (envelope_size + payload_size > self->copy_max) {
        s_frames_t *frames = malloc (sizeof *frames);
        if (!frames)
            return -1;
        zmq_msg_init (&frames->envelope);
        zmq_msg_init (&frames->payload);
        zmq_msg_copy (&frames->envelope, record->envelope_frame);
        zmq_msg_copy (&frames->payload, record->payload_frame);
        place->frames = frames;
        place->kind = S_SHARED;
        return 0;
    }
    s_block_t *block;
    uint8_t *bytes = s_block_take (self, envelope_size + payload_size, &block);
    if (!bytes)
        return -1;
    memcpy (bytes, record->envelope, envelope_size);
    memcpy (bytes + envelope_size, record->payload, payload_size);
    place->block = block;
    place->bytes = bytes;
    place->kind = S_COPIED;
    return 0;
}

void
hd_cache_add (hd_cache_t *self, uint64_t seq, const hd_record_t *record, bool keep)
{
    if (self->count && seq != self->first + self->count)
        hd_cache_drop_from (self, self->first);
    //  A record too large to copy is kept by its frames, if it has them
    if (keep && record->envelope_size + record->payload_size > self->copy_max &&
        (!record->envelope_frame || !record->payload_frame))
        keep = false;
    size_t cost = sizeof (s_place_t);
    if (keep)
        cost += record->envelope_size + record->payload_size;
    if (cost > self->limit) {
        hd_cache_drop_from (self, self->first);
        return;
    }
    while (self->used + cost > self->limit)
        s_drop_oldest (self);
    if (!keep && self->count == 0)
        return; // a place before the first kept record is not worth having
    if (s_chunk_for (self, seq)) {
        hd_cache_drop_from (self, self->first);
        return;
    }
    s_place_t *place = s_place (self, seq);
    place->kind = S_EMPTY;
    if (keep && s_keep (self, place, record) != 0) {
        //  Out of memory: caching is best effort
        if (self->count == 0 || (seq & (S_CHUNK_PLACES - 1)) == 0)
            s_release_chunk (self, seq); // made for this place
        hd_cache_drop_from (self, self->first);
        return;
    }
    if (self->count == 0)
        self->first = seq;
    self->count++;
    self->used += cost;
}

bool
hd_cache_find (hd_cache_t *self, uint64_t seq, hd_cache_view_t *view)
{
    if (seq < self->first || seq - self->first >= self->count)
        return false;
    s_place_t *place = s_place (self, seq);
    //  An Event is never empty: an empty envelope is a place without bytes
    if (place->kind == S_EMPTY || place->envelope_size == 0)
        return false;
    view->envelope_size = place->envelope_size;
    view->payload_size = place->payload_size;
    if (place->kind == S_SHARED) {
        view->envelope_frame = &place->frames->envelope;
        view->payload_frame = &place->frames->payload;
        view->envelope = zmq_msg_data (view->envelope_frame);
        view->payload = zmq_msg_data (view->payload_frame);
    } else {
        view->envelope_frame = view->payload_frame = NULL;
        view->envelope = place->bytes;
        view->payload = place->bytes + place->envelope_size;
    }
    return true;
}

size_t
hd_cache_count (hd_cache_t *self)
{
    return self->count;
}

size_t
hd_cache_bytes (hd_cache_t *self)
{
    return self->used;
}

size_t
hd_cache_place_cost (void)
{
    return sizeof (s_place_t);
}

size_t
hd_cache_blocks (hd_cache_t *self)
{
    return self->block_count;
}
