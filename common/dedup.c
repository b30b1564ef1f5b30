/*  dedup — hash of identities plus a FIFO in insertion (= time) order.

    Entries leave strictly oldest first, so they are carved one after the
    other out of large blocks, and a block goes back when the oldest entry
    has moved past it: no malloc and free per event.

    Each entry is numbered in insertion order (its ref, modulo 2^31), and
    a ring of pointers indexed by ref is the FIFO. The index (a tagmap)
    maps a 32-bit tag of the key's hash to the ref: 8 bytes a slot, so a
    full default window's index is ~11 MiB, not the 32 MiB of a table of
    hashes and pointers. A look-up reads the entry only for a tag that
    matches. */
#include "dedup.h"
#include "hashmap.h"
#include "tagmap.h"
#include "buffer.h"
#include "region.h"

#include <czmq.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int64_t time;
    uint64_t seq;
    uint32_t tag; // of the key's hash: the entry's index slot holds it
    uint32_t ref; // the entry's number: its place in the ring
    uint32_t key_size;
    char key[]; // "<source length>:<source><id>", unambiguous for any bytes
} s_entry_t;

//  Refs count modulo 2^31, so a ring of any power-of-two size up to that
//  finds an entry at ref & (size - 1) across the wrap
#define S_REF_MASK   ((uint32_t) (HD_DEDUP_MAX_ENTRIES - 1))
#define S_RING_FIRST 16

//  Entries live in blocks, oldest block first: a window fills its blocks
//  under traffic, so each is a region faulted in at once instead of a
//  page fault every 4 KiB. Blocks start at 64 KiB, so a small window (a
//  worker that saw a few events) stays small, and double up to 2 MiB (a
//  huge page where the kernel gives one). Under AddressSanitizer a block
//  holds one entry, from malloc, to catch misuse.
typedef struct s_block {
    struct s_block *next;
    hd_region_t *region; // holds the block itself; NULL: from malloc
    size_t used, size;
    _Alignas(16) uint8_t data[];
} s_block_t;

#define S_BLOCK_FIRST HD_SPARE_MAX (((size_t) 64 << 10) - offsetof (s_block_t, data))
#define S_BLOCK_MOST  HD_SPARE_MAX (((size_t) 2 << 20) - offsetof (s_block_t, data))
#define S_REGION_MIN  ((size_t) 32 << 10) // smaller blocks come from malloc

static s_block_t *
s_block_new (size_t capacity)
{
    size_t bytes = offsetof (s_block_t, data) + capacity;
    hd_region_t *region = NULL;
    s_block_t *block;
    if (capacity >= S_REGION_MIN) {
        region = hd_region_new ();
        if (!region || hd_region_prepare (region, bytes) != 0) {
            hd_region_destroy (&region);
            return NULL;
        }
        block = hd_region_data (region);
    } else if (!(block = malloc (bytes)))
        return NULL;
    block->region = region;
    block->size = capacity;
    return block;
}

static void
s_block_destroy (s_block_t **block_p)
{
    s_block_t *block = *block_p;
    if (!block)
        return;
    if (block->region) {
        hd_region_t *region = block->region; // the block's memory goes with it
        hd_region_destroy (&region);
    } else
        free (block);
    *block_p = NULL;
}

//  Entries leave oldest first, so the index slots the next drops will
//  touch are known ahead: a drop starts loading the slot of the entry this
//  many places younger, and a full window's drops (one per insert) do not
//  each wait for a cache miss
#define S_DROP_AHEAD 8

struct _hd_dedup_t {
    hd_tagmap_t *index;       // tag of the key's hash -> ref (matched by key)
    s_entry_t **ring;         // ref & (ring_size - 1) -> entry, for the FIFO's refs
    hd_region_t *ring_region; // holds the ring when it is mapped (NULL: from calloc)
    size_t ring_size;         // a power of two, >= entries
    uint32_t oldest_ref;      // the FIFO's head; the youngest is oldest_ref + entries - 1
    s_block_t *first_block, *last_block;
    s_block_t *spare_block; // the last one released, kept for the next
    int64_t window_ms;
    size_t max_entries;
    size_t entries; // in the FIFO, live or replaced: what memory holds
    uint64_t evicted, expired;
};

//  The index's tag of a key's hash: its high half, mixed again, so that a
//  caller's hash with weak high bits still spreads over the slots
static uint32_t
s_tag (uint64_t hash)
{
    return (uint32_t) ((hash * 0x9E3779B97F4A7C15ULL) >> 32);
}

static s_entry_t *
s_entry_at (hd_dedup_t *self, uint32_t ref)
{
    return self->ring[ref & (self->ring_size - 1)];
}

static s_entry_t *
s_oldest (hd_dedup_t *self)
{
    return self->entries ? s_entry_at (self, self->oldest_ref) : NULL;
}

//  Moves the ring to size places (a power of two, >= entries); each entry
//  keeps its ref. Returns 0, or -1 when out of memory (nothing changed).
static int
s_ring_resize (hd_dedup_t *self, size_t size)
{
    if (size > SIZE_MAX / sizeof (s_entry_t *))
        return -1;
    hd_region_t *region;
    s_entry_t **ring = hd_region_table_new (size * sizeof *ring, &region);
    if (!ring)
        return -1;
    for (size_t place = 0; place < self->entries; place++) {
        uint32_t ref = (self->oldest_ref + (uint32_t) place) & S_REF_MASK;
        ring[ref & (size - 1)] = s_entry_at (self, ref);
    }
    hd_region_table_free (self->ring, &self->ring_region);
    self->ring = ring;
    self->ring_region = region;
    self->ring_size = size;
    return 0;
}

//  The ring size that holds entries places: the least power of two
static size_t
s_ring_size_for (size_t entries)
{
    size_t size = S_RING_FIRST;
    while (size < entries)
        size *= 2;
    return size;
}

hd_dedup_t *
hd_dedup_new (int64_t window_ms, size_t max_entries)
{
    hd_dedup_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->window_ms = window_ms;
    self->max_entries = max_entries ? max_entries : 1;
    if (self->max_entries > HD_DEDUP_MAX_ENTRIES)
        self->max_entries = HD_DEDUP_MAX_ENTRIES;
    self->index = hd_tagmap_new ();
    if (!self->index || s_ring_resize (self, S_RING_FIRST) != 0) {
        hd_tagmap_destroy (&self->index);
        free (self);
        return NULL;
    }
    return self;
}

int
hd_dedup_reserve (hd_dedup_t *self)
{
    //  The index holds live entries only, never more than max_entries
    size_t ring_size = self->ring_size;
    size_t reserved = s_ring_size_for (self->max_entries);
    if (reserved > ring_size && s_ring_resize (self, reserved) != 0)
        return -1;
    if (hd_tagmap_reserve (self->index, self->max_entries) != 0) {
        if (self->ring_size != ring_size)
            s_ring_resize (self, ring_size); // as it was, memory permitting
        return -1;
    }
    return 0;
}

size_t
hd_dedup_reserve_bytes (hd_dedup_t *self)
{
    size_t index_bytes = hd_tagmap_reserve_bytes (self->max_entries);
    size_t ring_size = s_ring_size_for (self->max_entries);
    if (!index_bytes || ring_size > (SIZE_MAX - index_bytes) / sizeof (s_entry_t *))
        return 0;
    return index_bytes + ring_size * sizeof (s_entry_t *);
}

size_t
hd_dedup_index_bytes (hd_dedup_t *self)
{
    return hd_tagmap_table_bytes (self->index) + self->ring_size * sizeof (s_entry_t *);
}

void
hd_dedup_destroy (hd_dedup_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_dedup_t *self = *self_p;
    hd_tagmap_destroy (&self->index);
    hd_region_table_free (self->ring, &self->ring_region);
    while (self->first_block) {
        s_block_t *block = self->first_block;
        self->first_block = block->next;
        s_block_destroy (&block);
    }
    s_block_destroy (&self->spare_block);
    free (self);
    *self_p = NULL;
}

//  Writes the key into buffer (size >= source_size + id_size + 24):
//  "<source length>:<source><id>", unambiguous for any bytes. Built by
//  hand: sprintf costs thousands of instructions.
static size_t
s_make_key (char *buffer, const char *source, size_t source_size, const char *id, size_t id_size)
{
    char digits[24];
    int count = 0;
    size_t value = source_size;
    do {
        digits[count++] = (char) ('0' + value % 10);
        value /= 10;
    } while (value);
    char *cursor = buffer;
    while (count)
        *cursor++ = digits[--count];
    *cursor++ = ':';
    memcpy (cursor, source, source_size);
    cursor += source_size;
    memcpy (cursor, id, id_size);
    return (size_t) (cursor - buffer) + id_size;
}

int
hd_dedup_key_init (hd_dedup_key_t *key, const char *source, size_t source_size, const char *id,
                   size_t id_size)
{
    size_t needed = source_size + id_size + 24;
    key->heap = needed <= sizeof key->stack ? NULL : malloc (needed);
    if (needed > sizeof key->stack && !key->heap)
        return -1;
    char *buffer = key->heap ? key->heap : key->stack;
    key->size = s_make_key (buffer, source, source_size, id, id_size);
    key->data = buffer;
    key->hash = hd_hash_bytes (buffer, key->size);
    return 0;
}

void
hd_dedup_key_release (hd_dedup_key_t *key)
{
    free (key->heap);
    key->heap = NULL;
}

typedef struct {
    hd_dedup_t *dedup;
    const hd_dedup_key_t *key;
} s_match_t;

static bool
s_entry_matches (uint32_t ref, const void *arg)
{
    const s_match_t *match = arg;
    const s_entry_t *entry = s_entry_at (match->dedup, ref);
    return entry->key_size == match->key->size &&
           memcmp (entry->key, match->key->data, match->key->size) == 0;
}

static s_entry_t *
s_find (hd_dedup_t *self, const hd_dedup_key_t *key)
{
    s_match_t match = {self, key};
    uint32_t ref;
    if (hd_tagmap_find (self->index, s_tag (key->hash), s_entry_matches, &match, &ref) != 0)
        return NULL;
    return s_entry_at (self, ref);
}

uint64_t
hd_dedup_lookup_key (hd_dedup_t *self, const hd_dedup_key_t *key, int64_t now)
{
    s_entry_t *entry = s_find (self, key);
    if (!entry || now - entry->time >= self->window_ms)
        return 0;
    return entry->seq;
}

void
hd_dedup_prefetch (hd_dedup_t *self, uint64_t hash)
{
    hd_tagmap_prefetch (self->index, s_tag (hash));
}

//  A block's bytes past its header: each new block twice the last, header
//  included, between S_BLOCK_FIRST and S_BLOCK_MOST.
static size_t
s_next_block_size (hd_dedup_t *self)
{
    if (!self->last_block)
        return self->spare_block ? self->spare_block->size : S_BLOCK_FIRST;
    size_t size = 2 * self->last_block->size + offsetof (s_block_t, data);
    if (size > S_BLOCK_MOST)
        size = S_BLOCK_MOST;
    return size > S_BLOCK_FIRST ? size : S_BLOCK_FIRST;
}

//  Room for an entry of size bytes at the end of the last block.
static s_entry_t *
s_entry_alloc (hd_dedup_t *self, size_t size)
{
    size = (size + 15) & ~(size_t) 15;
    s_block_t *block = self->last_block;
    if (!block || block->size - block->used < size) {
        size_t capacity = s_next_block_size (self);
        if (capacity < size)
            capacity = size;
        block = self->spare_block;
        if (block && block->size >= capacity)
            self->spare_block = NULL;
        else if (!(block = s_block_new (capacity)))
            return NULL;
        block->next = NULL;
        block->used = 0;
        if (self->last_block)
            self->last_block->next = block;
        else
            self->first_block = block;
        self->last_block = block;
    }
    s_entry_t *entry = (s_entry_t *) (block->data + block->used);
    block->used += size;
    return entry;
}

static bool
s_block_holds (const s_block_t *block, const void *entry)
{
    return (const uint8_t *) entry >= block->data &&
           (const uint8_t *) entry < block->data + block->used;
}

//  Hands back the blocks before the one holding oldest, the oldest entry
//  (all of them when the FIFO is empty: oldest NULL).
static void
s_blocks_release (hd_dedup_t *self, const s_entry_t *oldest)
{
    while (self->first_block && (!oldest || !s_block_holds (self->first_block, oldest))) {
        s_block_t *block = self->first_block;
        self->first_block = block->next;
        if (!self->first_block)
            self->last_block = NULL;
        if (HD_SPARE_MAX (1) && (!self->spare_block || self->spare_block->size < block->size)) {
            s_block_destroy (&self->spare_block);
            self->spare_block = block;
        } else
            s_block_destroy (&block);
    }
}

//  Returns true when the entry was live, false when a later insert of the
//  same key had already replaced it.
static bool
s_drop_oldest (hd_dedup_t *self)
{
    s_entry_t *entry = s_oldest (self);
    self->oldest_ref = (self->oldest_ref + 1) & S_REF_MASK;
    self->entries--;
    //  A later insert of the same key replaced the index entry; keep that one
    bool live = hd_tagmap_remove (self->index, entry->tag, entry->ref) == 0;
    s_entry_t *oldest = s_oldest (self);
    if (!oldest || !s_block_holds (self->first_block, oldest))
        s_blocks_release (self, oldest);
    if (self->entries > S_DROP_AHEAD) {
        uint32_t ahead = (self->oldest_ref + S_DROP_AHEAD) & S_REF_MASK;
        hd_tagmap_prefetch (self->index, s_entry_at (self, ahead)->tag);
    }
    return live;
}

int
hd_dedup_insert_key (hd_dedup_t *self, const hd_dedup_key_t *key, uint64_t seq, int64_t now)
{
    hd_dedup_expire (self, now);
    //  A replaced entry stays in the FIFO, out of the index, until it
    //  reaches the head. It is taken out first, so that a re-insert at
    //  capacity evicts nothing live when it is the oldest (should the
    //  insert then fail for memory, the identity is forgotten: a worker
    //  may redo an idempotent event, the broker never re-inserts a live one)
    if (key->size > UINT32_MAX)
        return -1;
    s_entry_t *old = s_find (self, key);
    if (old)
        hd_tagmap_remove (self->index, old->tag, old->ref);
    //  Replaced entries count against max_entries too, so a key inserted
    //  again and again cannot grow memory; only live ones count as evicted
    while (self->entries >= self->max_entries && self->entries)
        if (s_drop_oldest (self))
            self->evicted++;
    if (self->entries == self->ring_size && s_ring_resize (self, self->ring_size * 2) != 0)
        return -1;
    s_entry_t *entry = s_entry_alloc (self, sizeof *entry + key->size);
    if (!entry)
        return -1;
    memcpy (entry->key, key->data, key->size);
    entry->key_size = (uint32_t) key->size;
    entry->tag = s_tag (key->hash);
    entry->ref = (self->oldest_ref + (uint32_t) self->entries) & S_REF_MASK;
    entry->time = now;
    entry->seq = seq;
    //  On failure the entry's room stays unused until its block goes
    if (hd_tagmap_insert (self->index, entry->tag, entry->ref) != 0)
        return -1;
    self->ring[entry->ref & (self->ring_size - 1)] = entry;
    self->entries++;
    return 0;
}

int
hd_dedup_remove_key (hd_dedup_t *self, const hd_dedup_key_t *key)
{
    //  The FIFO entry stays until it expires; it no longer owns the index slot
    s_entry_t *entry = s_find (self, key);
    return entry ? hd_tagmap_remove (self->index, entry->tag, entry->ref) : -1;
}

void
hd_dedup_expire (hd_dedup_t *self, int64_t now)
{
    while (self->entries && now - s_oldest (self)->time >= self->window_ms)
        if (s_drop_oldest (self))
            self->expired++;
}

int
hd_dedup_test_first_ref (hd_dedup_t *self, uint32_t ref)
{
    if (self->entries || ref > S_REF_MASK)
        return -1;
    self->oldest_ref = ref;
    return 0;
}

size_t
hd_dedup_size (hd_dedup_t *self)
{
    return hd_tagmap_size (self->index);
}

uint64_t
hd_dedup_evicted (hd_dedup_t *self)
{
    return self->evicted;
}

uint64_t
hd_dedup_expired (hd_dedup_t *self)
{
    return self->expired;
}

size_t
hd_dedup_entries (hd_dedup_t *self)
{
    return self->entries;
}
