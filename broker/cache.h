/*  cache — the log's hot cache: the bytes of the most recent records, by
    seq, so a live delivery neither reads the disk nor allocates.

    A record of up to copy_max bytes (envelope and payload) is copied into
    the cache's own memory: 2 MiB blocks filled back to back, each freed
    (or kept for reuse) once its last record leaves, so a cache that turns
    over allocates nothing and touches no new memory. The frames handed in
    may then be borrowed ones, valid only for the call. A larger record's
    frames are shared (zmq_msg_copy), so they must own their bytes.

    It holds one contiguous run of seqs, within a byte budget (record bytes
    plus a fixed cost per place); the oldest leave first. A record may hold
    its place without bytes (nobody will read it soon): a find then says
    "not cached". Places live in fixed chunks of 512, allocated as the run
    grows and released as it shrinks (eight kept for reuse).
*/
#ifndef HD_CACHE_H_INCLUDED
#define HD_CACHE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "record.h"

typedef struct _hd_cache_t hd_cache_t;

//  The largest copy_max a cache takes: a record must leave room for others
//  in a block.
#define HD_CACHE_COPY_LIMIT (128 * 1024)

//  limit: the byte budget (0: nothing is ever kept); copy_max: the largest
//  record copied, at most HD_CACHE_COPY_LIMIT (0: every record's frames
//  are shared). Memory: the budget, plus the block being filled and up to
//  two spare ones (2 MiB each, touched as they fill). Returns NULL when
//  out of memory or when copy_max is too large.
hd_cache_t *hd_cache_new (size_t limit, size_t copy_max);
//  Closes every frame held, frees its memory.
void hd_cache_destroy (hd_cache_t **self_p);

//  Appends seq to the run: with keep, its bytes are copied or, above
//  copy_max, its frames shared (never consumed; a record without both
//  frames is then not kept); without, it only holds its place. A seq that
//  does not follow the run, a record larger than the whole budget, or no
//  memory empties the cache first (caching is best effort). The oldest
//  seqs leave to make room.
void hd_cache_add (hd_cache_t *self, uint64_t seq, const hd_record_t *record, bool keep);

//  Where a cached record's bytes are, valid until the cache next changes.
//  envelope_frame and payload_frame are the shared frames of a large
//  record (NULL when it was copied).
typedef struct {
    const void *envelope, *payload;
    size_t envelope_size, payload_size;
    zmq_msg_t *envelope_frame, *payload_frame;
} hd_cache_view_t;

//  Fills view with record seq, or returns false when seq is not cached.
bool hd_cache_find (hd_cache_t *self, uint64_t seq, hd_cache_view_t *view);

//  Removes every seq below seq (retention; records no reader needs soon).
void hd_cache_drop_before (hd_cache_t *self, uint64_t seq);
//  Removes seq and every later one (a rolled-back flush).
void hd_cache_drop_from (hd_cache_t *self, uint64_t seq);

//  Places held (kept or not), and bytes counted against the budget.
size_t hd_cache_count (hd_cache_t *self);
size_t hd_cache_bytes (hd_cache_t *self);
//  What a place costs against the budget besides its record's bytes.
size_t hd_cache_place_cost (void);
//  Blocks of copied records held, including those kept for reuse.
size_t hd_cache_blocks (hd_cache_t *self);

#endif
