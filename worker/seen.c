/*  seen — bounded, expiring set of processed event identities.

    The broker's identity window (dedup.c) holds them: entries carved in
    time order out of large blocks, so capacity eviction and TTL expiry
    take from the head without a malloc or free per event, and a
    re-inserted key becomes the newest.
*/
#include "seen.h"
#include "dedup.h"
#include "hashmap.h"
#include "herald.h"

#include <stdlib.h>
#include <string.h>

//  hd_worker_set_seen_capacity's ceiling is the window's: hd_dedup_new takes
//  more as that
_Static_assert(HD_SEEN_CAPACITY_MAX == HD_DEDUP_MAX_ENTRIES, "seen capacity ceiling");

struct _hd_seen_t {
    hd_dedup_t *identities; // key -> 1, carved in time order out of blocks
};

//  ttl 0 (never expire) is a window no clock difference reaches
#define S_NO_TTL (INT64_MAX / 2)

uint64_t
hd_key_hash (const hd_key_t *key)
{
    return hd_hash_bytes (key->data, key->size);
}

bool
hd_key_equal (const hd_key_t *a, const hd_key_t *b)
{
    return a->size == b->size && memcmp (a->data, b->data, a->size) == 0;
}

static hd_key_t *
s_key_fill (hd_key_t *self, const char *source, size_t source_size, const char *id, size_t id_size)
{
    self->size = source_size + 1 + id_size;
    memcpy (self->data, source, source_size);
    self->data[source_size] = 0;
    memcpy (self->data + source_size + 1, id, id_size);
    return self;
}

hd_key_t *
hd_key_new (const char *source, const char *id)
{
    size_t source_size = strlen (source);
    size_t id_size = strlen (id);
    hd_key_t *self = malloc (sizeof *self + source_size + 1 + id_size);
    return self ? s_key_fill (self, source, source_size, id, id_size) : NULL;
}

hd_key_t *
hd_key_make (hd_key_room_t *room, const char *source, const char *id)
{
    size_t source_size = strlen (source);
    size_t id_size = strlen (id);
    if (sizeof (hd_key_t) + source_size + 1 + id_size <= sizeof room->bytes)
        return s_key_fill ((hd_key_t *) room->bytes, source, source_size, id, id_size);
    return hd_key_new (source, id); // rare: a long id
}

hd_key_t *
hd_key_move (hd_key_t **key_p, const hd_key_room_t *from, hd_key_room_t *to)
{
    hd_key_t *key = *key_p;
    *key_p = NULL;
    if (key == (const hd_key_t *) from->bytes)
        return memcpy (to->bytes, key, sizeof *key + key->size);
    return key;
}

void
hd_key_free (hd_key_t **key_p, const hd_key_room_t *room)
{
    if (*key_p != (const hd_key_t *) room->bytes)
        free (*key_p);
    *key_p = NULL;
}

hd_seen_t *
hd_seen_new (size_t capacity, int64_t ttl_ms)
{
    hd_seen_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->identities = hd_dedup_new (ttl_ms > 0 ? ttl_ms : S_NO_TTL, capacity ? capacity : 1);
    if (!self->identities) {
        free (self);
        return NULL;
    }
    return self;
}

void
hd_seen_destroy (hd_seen_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_dedup_destroy (&(*self_p)->identities);
    free (*self_p);
    *self_p = NULL;
}

//  The worker's key as the identity table's, already built and hashed
//  (fields set one by one: the struct's stack buffer is not needed)
static void
s_identity (hd_dedup_key_t *identity, const hd_key_t *key, uint64_t hash)
{
    identity->data = key->data;
    identity->size = key->size;
    identity->hash = hash;
    identity->heap = NULL;
}

void
hd_seen_expire (hd_seen_t *self, int64_t now_ms)
{
    hd_dedup_expire (self->identities, now_ms);
}

int
hd_seen_add (hd_seen_t *self, const hd_key_t *key, uint64_t hash, int64_t now_ms)
{
    hd_dedup_key_t identity;
    s_identity (&identity, key, hash);
    return hd_dedup_insert_key (self->identities, &identity, 1, now_ms);
}

bool
hd_seen_has (hd_seen_t *self, const hd_key_t *key, uint64_t hash, int64_t now_ms)
{
    hd_dedup_expire (self->identities, now_ms);
    hd_dedup_key_t identity;
    s_identity (&identity, key, hash);
    return hd_dedup_lookup_key (self->identities, &identity, now_ms) != 0;
}

void
hd_seen_prefetch (hd_seen_t *self, uint64_t hash)
{
    hd_dedup_prefetch (self->identities, hash);
}

int
hd_seen_insert (hd_seen_t *self, const char *source, const char *id, int64_t now_ms)
{
    hd_key_t *key = hd_key_new (source, id);
    int rc = key ? hd_seen_add (self, key, hd_key_hash (key), now_ms) : -1;
    free (key);
    return rc;
}

bool
hd_seen_contains (hd_seen_t *self, const char *source, const char *id, int64_t now_ms)
{
    hd_key_t *key = hd_key_new (source, id);
    bool found = key && hd_seen_has (self, key, hd_key_hash (key), now_ms);
    free (key);
    return found;
}

size_t
hd_seen_size (hd_seen_t *self)
{
    return hd_dedup_size (self->identities);
}

uint64_t
hd_seen_evicted (hd_seen_t *self)
{
    return hd_dedup_evicted (self->identities);
}

uint64_t
hd_seen_expired (hd_seen_t *self)
{
    return hd_dedup_expired (self->identities);
}
