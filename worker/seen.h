/*  seen — the set of (source, id) pairs a worker has processed, so that a
    redelivered event can be acked without running its handler again.

    Bounded: past capacity the oldest entry is forgotten, and entries older
    than ttl_ms are forgotten too. Time is passed in by the caller (any
    monotonic milliseconds), which keeps the class deterministic to test.
    Not thread-safe: the worker's I/O thread owns it.
*/
#ifndef HD_SEEN_H_INCLUDED
#define HD_SEEN_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _hd_seen_t hd_seen_t;

//  capacity 0 means 1; ttl_ms 0 means entries never expire.
hd_seen_t *hd_seen_new (size_t capacity, int64_t ttl_ms);
void hd_seen_destroy (hd_seen_t **self_p);

//  Remember (source, id) as processed at now_ms; an existing entry is
//  refreshed and becomes the newest. Returns 0, or -1 on no memory.
int hd_seen_insert (hd_seen_t *self, const char *source, const char *id, int64_t now_ms);
//  True if (source, id) was processed and has not expired by now_ms.
bool hd_seen_contains (hd_seen_t *self, const char *source, const char *id, int64_t now_ms);
//  Forget entries that expired by now_ms.
void hd_seen_expire (hd_seen_t *self, int64_t now_ms);

size_t hd_seen_size (hd_seen_t *self);
uint64_t hd_seen_evicted (hd_seen_t *self); // forgotten for capacity
uint64_t hd_seen_expired (hd_seen_t *self); // forgotten for age

//  ---------------------------------------------------------------------
//  Event identity keys: source '\0' id, length-prefixed because the key
//  holds a NUL. Shared with the worker's table of events in progress.

typedef struct {
    size_t size;
    char data[];
} hd_key_t;

//  New malloc'ed key (free with free ()), or NULL on no memory.
hd_key_t *hd_key_new (const char *source, const char *id);
//  Room for most keys inside the struct that holds one per event: a short
//  source and id then take no allocation. A key that does not fit is
//  allocated; hd_key_make, hd_key_move and hd_key_free tell the two apart.
#define HD_KEY_ROOM 128
typedef struct {
    _Alignas(hd_key_t) char bytes[HD_KEY_ROOM];
} hd_key_room_t;
//  The key of (source, id) in room, or allocated when it does not fit;
//  NULL on no memory.
hd_key_t *hd_key_make (hd_key_room_t *room, const char *source, const char *id);
//  Hands *key_p (in from, or allocated) to a holder whose room is to:
//  returns it copied into to, or the same allocation. *key_p becomes NULL.
hd_key_t *hd_key_move (hd_key_t **key_p, const hd_key_room_t *from, hd_key_room_t *to);
//  Frees *key_p unless it is in room, and nulls it.
void hd_key_free (hd_key_t **key_p, const hd_key_room_t *room);
//  The key's hash for an hd_hashmap_t, and key equality for its match
//  functions.
uint64_t hd_key_hash (const hd_key_t *key);
bool hd_key_equal (const hd_key_t *a, const hd_key_t *b);

//  hd_seen_insert and hd_seen_contains for a key already built and hashed
//  (hd_key_hash), as the worker has one for every event in hand.
int hd_seen_add (hd_seen_t *self, const hd_key_t *key, uint64_t hash, int64_t now_ms);
bool hd_seen_has (hd_seen_t *self, const hd_key_t *key, uint64_t hash, int64_t now_ms);
//  Starts loading what hd_seen_has will read for hash (a hint, no effect
//  on the set): look-ups of a batch can then overlap their cache misses.
void hd_seen_prefetch (hd_seen_t *self, uint64_t hash);

#endif
