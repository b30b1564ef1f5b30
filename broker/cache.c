/*  cache — the log's hot cache (see cache.h).

    Place seq lives in chunk number seq / S_CHUNK_PLACES, at seq %
    S_CHUNK_PLACES; chunks sits in a ring of pointers indexed by chunk
    number. A chunk exists exactly while some seq of the run falls in it.
*/
#include "cache.h"
#include "buffer.h"

#include <stdlib.h>

#define S_CHUNK_BITS   9
#define S_CHUNK_PLACES (1u << S_CHUNK_BITS)

typedef struct {
    zmq_msg_t envelope; // empty: the place holds no frames
    zmq_msg_t payload;
} s_place_t;

struct _hd_cache_t {
    s_place_t **chunks; // ring by chunk number & (chunk_max - 1)
    size_t chunk_max;   // a power of two
    hd_reuse_t spare;   // a released chunk, kept for the next
    uint64_t first;     // the run: first .. first + count - 1
    size_t count;
    size_t used, limit;
};

hd_cache_t *
hd_cache_new (size_t limit)
{
    hd_cache_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->limit = limit;
    hd_reuse_init (&self->spare, 1);
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
    return zmq_msg_size (&place->envelope) + zmq_msg_size (&place->payload) + sizeof *place;
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
    zmq_msg_close (&place->envelope);
    zmq_msg_close (&place->payload);
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

void
hd_cache_add (hd_cache_t *self, uint64_t seq, zmq_msg_t *envelope, zmq_msg_t *payload, bool keep)
{
    if (self->count && seq != self->first + self->count)
        hd_cache_drop_from (self, self->first);
    size_t cost = sizeof (s_place_t);
    if (keep)
        cost += zmq_msg_size (envelope) + zmq_msg_size (payload);
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
    if (self->count == 0)
        self->first = seq;
    s_place_t *place = s_place (self, seq);
    zmq_msg_init (&place->envelope);
    zmq_msg_init (&place->payload);
    if (keep) {
        zmq_msg_copy (&place->envelope, envelope);
        zmq_msg_copy (&place->payload, payload);
    }
    self->count++;
    self->used += cost;
}

bool
hd_cache_find (hd_cache_t *self, uint64_t seq, zmq_msg_t **envelope, zmq_msg_t **payload)
{
    if (seq < self->first || seq - self->first >= self->count)
        return false;
    s_place_t *place = s_place (self, seq);
    //  An Event is never empty: an empty envelope is a place without frames
    if (zmq_msg_size (&place->envelope) == 0)
        return false;
    *envelope = &place->envelope;
    *payload = &place->payload;
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
