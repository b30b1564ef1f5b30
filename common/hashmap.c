/*  hashmap — open-addressing hash table from 64-bit keys to pointers. */
#include "hashmap.h"

#include "region.h"

#include <stdlib.h>
#include <string.h>

#define S_INITIAL_SLOTS 16
//  Grow past 70 % full: linear probing stays short below that
#define S_LOAD_NUMERATOR   7
#define S_LOAD_DENOMINATOR 10

typedef struct {
    uint64_t key;
    void *value; // NULL: empty slot
} s_slot_t;

struct _hd_hashmap_t {
    s_slot_t *slots;
    hd_region_t *region; // holds the slots when they are mapped (NULL: from calloc)
    size_t mask;         // slot count - 1; the count is a power of two
    size_t size;
};

//  Seqs and corrs are sequential: spread them over the slots (the
//  finalizer of MurmurHash3)
static size_t
s_home (uint64_t key, size_t mask)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    key *= 0xc4ceb9fe1a85ec53ULL;
    key ^= key >> 33;
    return (size_t) key & mask;
}

hd_hashmap_t *
hd_hashmap_new (void)
{
    hd_hashmap_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->slots = hd_region_table_new (S_INITIAL_SLOTS * sizeof (s_slot_t), &self->region);
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->mask = S_INITIAL_SLOTS - 1;
    return self;
}

void
hd_hashmap_destroy (hd_hashmap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_region_table_free ((*self_p)->slots, &(*self_p)->region);
    free (*self_p);
    *self_p = NULL;
}

size_t
hd_hashmap_size (hd_hashmap_t *self)
{
    return self->size;
}

size_t
hd_hashmap_capacity (hd_hashmap_t *self)
{
    return self->mask + 1;
}

static void
s_place (s_slot_t *slots, size_t mask, uint64_t key, void *value)
{
    size_t index = s_home (key, mask);
    while (slots[index].value)
        index = (index + 1) & mask;
    slots[index].key = key;
    slots[index].value = value;
}

//  Moves every value into a new zeroed table of count slots (a power of
//  two) and frees the old one. The map is as it was when that fails.
static int
s_resize (hd_hashmap_t *self, size_t count)
{
    hd_region_t *region;
    s_slot_t *slots = hd_region_table_new (count * sizeof (s_slot_t), &region);
    if (!slots)
        return -1;
    for (size_t index = 0; index <= self->mask; index++)
        if (self->slots[index].value)
            s_place (slots, count - 1, self->slots[index].key, self->slots[index].value);
    hd_region_table_free (self->slots, &self->region);
    self->slots = slots;
    self->region = region;
    self->mask = count - 1;
    return 0;
}

static bool
s_over_load (size_t items, size_t count)
{
    return items * S_LOAD_DENOMINATOR > count * S_LOAD_NUMERATOR;
}

int
hd_hashmap_insert (hd_hashmap_t *self, uint64_t key, void *value)
{
    if (!value)
        return -1;
    if (s_over_load (self->size + 1, self->mask + 1) && s_resize (self, (self->mask + 1) * 2) != 0)
        return -1;
    s_place (self->slots, self->mask, key, value);
    self->size++;
    return 0;
}

void *
hd_hashmap_find (hd_hashmap_t *self, uint64_t key, hd_hashmap_match_fn *match, const void *arg)
{
    for (size_t index = s_home (key, self->mask); self->slots[index].value;
         index = (index + 1) & self->mask) {
        s_slot_t *slot = &self->slots[index];
        if (slot->key == key && (!match || match (slot->value, arg)))
            return slot->value;
    }
    return NULL;
}

//  Empties slot hole and moves later slots of the same probe run back, so
//  every remaining key is still reachable from its home without tombstones.
static void
s_shift_back (hd_hashmap_t *self, size_t hole)
{
    size_t mask = self->mask;
    for (size_t next = (hole + 1) & mask; self->slots[next].value; next = (next + 1) & mask) {
        size_t home = s_home (self->slots[next].key, mask);
        //  Movable when its home is not inside (hole, next], cyclically
        bool stays = hole < next ? (home > hole && home <= next) : (home > hole || home <= next);
        if (stays)
            continue;
        self->slots[hole] = self->slots[next];
        hole = next;
    }
    self->slots[hole].value = NULL;
    self->slots[hole].key = 0;
}

int
hd_hashmap_remove (hd_hashmap_t *self, uint64_t key, const void *value)
{
    for (size_t index = s_home (key, self->mask); self->slots[index].value;
         index = (index + 1) & self->mask)
        if (self->slots[index].key == key && self->slots[index].value == value) {
            s_shift_back (self, index);
            self->size--;
            return 0;
        }
    return -1;
}

void *
hd_hashmap_next (hd_hashmap_t *self, size_t *cursor)
{
    while (*cursor <= self->mask) {
        s_slot_t *slot = &self->slots[(*cursor)++];
        if (slot->value)
            return slot->value;
    }
    return NULL;
}

void
hd_hashmap_clear (hd_hashmap_t *self)
{
    memset (self->slots, 0, (self->mask + 1) * sizeof *self->slots);
    self->size = 0;
}

uint64_t
hd_hash_bytes (const void *data, size_t size)
{
    //  Eight bytes per multiply; s_home mixes the result again
    const uint8_t *bytes = data;
    uint64_t hash = 0x9E3779B97F4A7C15ULL ^ (size * 0xff51afd7ed558ccdULL);
    while (size >= 8) {
        uint64_t word;
        memcpy (&word, bytes, 8);
        hash = (hash ^ word) * 0x9E3779B97F4A7C15ULL;
        hash ^= hash >> 29;
        bytes += 8;
        size -= 8;
    }
    uint64_t tail = 0;
    memcpy (&tail, bytes, size);
    hash = (hash ^ tail) * 0x9E3779B97F4A7C15ULL;
    return hash ^ (hash >> 32);
}
