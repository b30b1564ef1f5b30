/*  seen — bounded, expiring set of processed event identities.

    A hash table finds entries in O(1); the same entries are threaded on a
    list in insertion order, so both capacity eviction and TTL expiry take
    from the head without scanning.
*/
#include "seen.h"
#include "hashmap.h"

#include <stdlib.h>
#include <string.h>

typedef struct _s_entry_t s_entry_t;
struct _s_entry_t {
    s_entry_t *prev;
    s_entry_t *next;
    int64_t time_ms;
    uint64_t hash; // of key
    hd_key_t key;  // last: its data is a flexible array
};

struct _hd_seen_t {
    hd_hashmap_t *table; // hd_key_hash → s_entry_t * (owned, matched by key)
    s_entry_t *oldest;
    s_entry_t *newest;
    size_t capacity;
    int64_t ttl_ms;
    uint64_t evicted;
    uint64_t expired;
};

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

hd_key_t *
hd_key_new (const char *source, const char *id)
{
    size_t source_size = strlen (source);
    size_t id_size = strlen (id);
    hd_key_t *self = malloc (sizeof *self + source_size + 1 + id_size);
    if (!self)
        return NULL;
    self->size = source_size + 1 + id_size;
    memcpy (self->data, source, source_size);
    self->data[source_size] = 0;
    memcpy (self->data + source_size + 1, id, id_size);
    return self;
}

static bool
s_entry_matches (const void *entry, const void *key)
{
    return hd_key_equal (&((const s_entry_t *) entry)->key, key);
}

hd_seen_t *
hd_seen_new (size_t capacity, int64_t ttl_ms)
{
    hd_seen_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->table = hd_hashmap_new ();
    if (!self->table) {
        free (self);
        return NULL;
    }
    self->capacity = capacity ? capacity : 1;
    self->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    return self;
}

void
hd_seen_destroy (hd_seen_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_seen_t *self = *self_p;
    while (self->oldest) {
        s_entry_t *entry = self->oldest;
        self->oldest = entry->next;
        free (entry);
    }
    hd_hashmap_destroy (&self->table);
    free (self);
    *self_p = NULL;
}

static void
s_unlink (hd_seen_t *self, s_entry_t *entry)
{
    if (entry->prev)
        entry->prev->next = entry->next;
    else
        self->oldest = entry->next;
    if (entry->next)
        entry->next->prev = entry->prev;
    else
        self->newest = entry->prev;
    entry->prev = entry->next = NULL;
}

static void
s_append (hd_seen_t *self, s_entry_t *entry)
{
    entry->prev = self->newest;
    entry->next = NULL;
    if (self->newest)
        self->newest->next = entry;
    else
        self->oldest = entry;
    self->newest = entry;
}

static void
s_remove (hd_seen_t *self, s_entry_t *entry)
{
    s_unlink (self, entry);
    hd_hashmap_remove (self->table, entry->hash, entry);
    free (entry);
}

static bool
s_is_expired (hd_seen_t *self, s_entry_t *entry, int64_t now_ms)
{
    return self->ttl_ms && now_ms - entry->time_ms >= self->ttl_ms;
}

void
hd_seen_expire (hd_seen_t *self, int64_t now_ms)
{
    while (self->oldest && s_is_expired (self, self->oldest, now_ms)) {
        s_remove (self, self->oldest);
        self->expired++;
    }
}

int
hd_seen_add (hd_seen_t *self, const hd_key_t *key, uint64_t hash, int64_t now_ms)
{
    hd_seen_expire (self, now_ms);
    s_entry_t *entry = hd_hashmap_find (self->table, hash, s_entry_matches, key);
    if (entry) {
        s_unlink (self, entry);
        entry->time_ms = now_ms;
        s_append (self, entry);
        return 0;
    }
    while (hd_hashmap_size (self->table) >= self->capacity && self->oldest) {
        s_remove (self, self->oldest);
        self->evicted++;
    }
    entry = malloc (sizeof *entry + key->size);
    if (!entry)
        return -1;
    entry->time_ms = now_ms;
    entry->hash = hash;
    entry->key.size = key->size;
    memcpy (entry->key.data, key->data, key->size);
    if (hd_hashmap_insert (self->table, hash, entry)) {
        free (entry);
        return -1;
    }
    s_append (self, entry);
    return 0;
}

bool
hd_seen_has (hd_seen_t *self, const hd_key_t *key, uint64_t hash, int64_t now_ms)
{
    s_entry_t *entry = hd_hashmap_find (self->table, hash, s_entry_matches, key);
    if (!entry)
        return false;
    if (s_is_expired (self, entry, now_ms)) {
        //  Entries expire in list order, so everything older goes too
        hd_seen_expire (self, now_ms);
        return false;
    }
    return true;
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
    return hd_hashmap_size (self->table);
}

uint64_t
hd_seen_evicted (hd_seen_t *self)
{
    return self->evicted;
}

uint64_t
hd_seen_expired (hd_seen_t *self)
{
    return self->expired;
}
