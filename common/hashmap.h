/*  hashmap — open-addressing hash table from 64-bit keys to pointers.

    For the hot paths (pool entries by seq, publisher corrs, a worker's
    jobs; the dedup window has its compact tagmap): one flat array of
    (key, value) slots, linear probing, deletion by backward shift, so no
    tombstones and no per-item allocation. czmq's zhashx chains items and
    rehashes the whole table whenever a chain grows past a small limit,
    which costs more than the rest of an event's bookkeeping.

    Integer keys (seqs, corrs) are used as they are. For byte-string keys
    the key is hd_hash_bytes() of the string, several values may share it,
    and lookups pass a match function that compares the real key.
    Values must not be NULL; the map never frees them.
*/
#ifndef HD_HASHMAP_H_INCLUDED
#define HD_HASHMAP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _hd_hashmap_t hd_hashmap_t;

//  True when value is the one being looked for (arg: the caller's key).
typedef bool (hd_hashmap_match_fn) (const void *value, const void *arg);

//  Returns NULL when out of memory.
hd_hashmap_t *hd_hashmap_new (void);
void hd_hashmap_destroy (hd_hashmap_t **self_p);

size_t hd_hashmap_size (hd_hashmap_t *self);
//  Slots in the table: what a walk with hd_hashmap_next reads (a table
//  never shrinks).
size_t hd_hashmap_capacity (hd_hashmap_t *self);

//  Adds value under key; a key may hold several values. Returns 0, or -1
//  when out of memory (nothing added).
int hd_hashmap_insert (hd_hashmap_t *self, uint64_t key, void *value);

//  The first value under key for which match (value, arg) is true (match
//  NULL: the first value under key), or NULL.
void *hd_hashmap_find (hd_hashmap_t *self, uint64_t key, hd_hashmap_match_fn *match,
                       const void *arg);

//  Removes value from under key. Returns 0, or -1 when it is not there.
int hd_hashmap_remove (hd_hashmap_t *self, uint64_t key, const void *value);

//  Iterates: *cursor starts at 0; returns the next value, NULL at the end.
//  The map must not change during an iteration.
void *hd_hashmap_next (hd_hashmap_t *self, size_t *cursor);

//  Removes every value (the map does not free them).
void hd_hashmap_clear (hd_hashmap_t *self);

//  A 64-bit hash of size bytes for byte-string keys.
uint64_t hd_hash_bytes (const void *data, size_t size);

#endif
