/*  cache — the log's hot cache: the frames of the most recent records, by
    seq, shared with the messages that carry them (zmq_msg_copy), so a live
    delivery neither reads the disk nor copies a payload.

    It holds one contiguous run of seqs, within a byte budget (frame bytes
    plus a fixed cost per place); the oldest leave first. A record may hold
    its place without frames (nobody will read it soon): a find then says
    "not cached". Places live in fixed chunks of 512, allocated as the run
    grows and released as it shrinks (one kept for reuse), so a cache that
    fills up never copies what it holds and a full one allocates nothing.
*/
#ifndef HD_CACHE_H_INCLUDED
#define HD_CACHE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct _hd_cache_t hd_cache_t;

//  limit: the byte budget (0: nothing is ever kept). Returns NULL when out
//  of memory.
hd_cache_t *hd_cache_new (size_t limit);
//  Closes every frame held.
void hd_cache_destroy (hd_cache_t **self_p);

//  Appends seq to the run: with keep, its frames are shared (not consumed);
//  without, it only holds its place. A seq that does not follow the run,
//  a record larger than the whole budget, or no memory empties the cache
//  first (caching is best effort). The oldest seqs leave to make room.
void hd_cache_add (hd_cache_t *self, uint64_t seq, zmq_msg_t *envelope, zmq_msg_t *payload,
                   bool keep);

//  The frames of seq, still owned by the cache (valid until it next
//  changes), or false when seq is not cached.
bool hd_cache_find (hd_cache_t *self, uint64_t seq, zmq_msg_t **envelope, zmq_msg_t **payload);

//  Removes every seq below seq (retention).
void hd_cache_drop_before (hd_cache_t *self, uint64_t seq);
//  Removes seq and every later one (a rolled-back flush).
void hd_cache_drop_from (hd_cache_t *self, uint64_t seq);

//  Places held (kept or not), and bytes counted against the budget.
size_t hd_cache_count (hd_cache_t *self);
size_t hd_cache_bytes (hd_cache_t *self);

#endif
