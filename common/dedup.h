/*  dedup — the window of recently confirmed event identities.

    (source, id) -> seq, for window_ms after the last insert. The broker
    keeps the identities it confirmed; a worker (seen.c) those it
    processed, under keys of its own making. Entries
    expire oldest first; past max_entries the oldest are forgotten early
    (counted), so memory stays bounded under any publish rate.
*/
#ifndef HD_DEDUP_H_INCLUDED
#define HD_DEDUP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct _hd_dedup_t hd_dedup_t;

//  The most identities a window holds (entries are numbered modulo 2^31).
#define HD_DEDUP_MAX_ENTRIES ((size_t) 1 << 31)

//  max_entries 0 means 1; above HD_DEDUP_MAX_ENTRIES it is that.
hd_dedup_t *hd_dedup_new (int64_t window_ms, size_t max_entries);
void hd_dedup_destroy (hd_dedup_t **self_p);

//  Sizes the index for max_entries identities and touches its memory now,
//  so that filling the window neither grows the index nor faults fresh
//  pages in under traffic. Returns 0, or -1 when the memory cannot be had
//  (the index is then as it was, and grows as identities arrive).
int hd_dedup_reserve (hd_dedup_t *self);
//  Bytes of the index hd_dedup_reserve makes (0: too large to count).
size_t hd_dedup_reserve_bytes (hd_dedup_t *self);
//  Bytes of the index's table now (entries not counted).
size_t hd_dedup_index_bytes (hd_dedup_t *self);

//  An identity worked out once (key built and hashed) for a lookup and
//  the insert that follows it on the publish path.
typedef struct {
    const char *data;
    size_t size;
    uint64_t hash;
    char *heap;      // when the key did not fit in stack
    char stack[536]; // two ids of the default --max-id (256) and the framing
} hd_dedup_key_t;

//  Builds the key of (source, id), given with their sizes. Returns 0, or -1
//  when out of memory. Release it with hd_dedup_key_release.
int hd_dedup_key_init (hd_dedup_key_t *key, const char *source, size_t source_size, const char *id,
                       size_t id_size);
void hd_dedup_key_release (hd_dedup_key_t *key);
//  The seq confirmed for the identity within the window, or 0.
uint64_t hd_dedup_lookup_key (hd_dedup_t *self, const hd_dedup_key_t *key, int64_t now);
//  A hint that a key of this hash (hd_dedup_key_t.hash) is looked up soon:
//  starts loading its slot, so a batch's look-ups overlap their misses.
void hd_dedup_prefetch (hd_dedup_t *self, uint64_t hash);
//  Remember identity -> seq from now. Returns 0, or -1 when out of memory.
int hd_dedup_insert_key (hd_dedup_t *self, const hd_dedup_key_t *key, uint64_t seq, int64_t now);
//  Forget the identity now: its publish was rolled back. Returns 0, -1 when absent.
int hd_dedup_remove_key (hd_dedup_t *self, const hd_dedup_key_t *key);

//  Forget entries older than the window.
void hd_dedup_expire (hd_dedup_t *self, int64_t now);

//  For tests: the next entry, in an empty window, gets ref (entries are
//  numbered modulo 2^31), so that the wrap can be reached. Returns 0, or
//  -1 when the window holds entries or ref is past 2^31 - 1.
int hd_dedup_test_first_ref (hd_dedup_t *self, uint32_t ref);

size_t hd_dedup_size (hd_dedup_t *self);
//  Entries forgotten before their window ended because of max_entries.
uint64_t hd_dedup_evicted (hd_dedup_t *self);
//  Entries forgotten because their window ended (replaced ones not counted).
uint64_t hd_dedup_expired (hd_dedup_t *self);
//  Entries held in memory: the live ones and replaced ones not yet dropped
//  (at most max_entries).
size_t hd_dedup_entries (hd_dedup_t *self);

#endif
