/*  tagmap — open-addressing table of (32-bit tag, 32-bit ref) pairs. */
#include "tagmap.h"

#include "region.h"

#include <stdlib.h>
#include <string.h>

#define S_INITIAL_SLOTS 16
//  Grow past 70 % full: linear probing stays short below that
#define S_LOAD_NUMERATOR   7
#define S_LOAD_DENOMINATOR 10
//  A home is the tag scaled to the slot count, so at most 2^32 slots
#define S_SLOTS_MOST ((uint64_t) 1 << 32)

typedef struct {
    uint32_t tag;
    uint32_t ref_1; // ref + 1; 0: empty slot
} s_slot_t;

struct _hd_tagmap_t {
    s_slot_t *slots;
    hd_region_t *region; // holds the slots when they are mapped (NULL: from calloc)
    size_t count;        // slots
    size_t size;         // pairs held
};

//  The tag scaled to [0, count): a multiply, where a power-of-two count
//  would take a mask but up to twice the memory
static size_t
s_home (uint32_t tag, size_t count)
{
    return (size_t) (((uint64_t) tag * count) >> 32);
}

static size_t
s_next (size_t index, size_t count)
{
    return index + 1 == count ? 0 : index + 1;
}

hd_tagmap_t *
hd_tagmap_new (void)
{
    hd_tagmap_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->slots = hd_region_table_new (S_INITIAL_SLOTS * sizeof (s_slot_t), &self->region);
    if (!self->slots) {
        free (self);
        return NULL;
    }
    self->count = S_INITIAL_SLOTS;
    return self;
}

void
hd_tagmap_destroy (hd_tagmap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_region_table_free ((*self_p)->slots, &(*self_p)->region);
    free (*self_p);
    *self_p = NULL;
}

size_t
hd_tagmap_size (hd_tagmap_t *self)
{
    return self->size;
}

size_t
hd_tagmap_capacity (hd_tagmap_t *self)
{
    return self->count;
}

size_t
hd_tagmap_table_bytes (hd_tagmap_t *self)
{
    return self->count * sizeof (s_slot_t);
}

static void
s_place (s_slot_t *slots, size_t count, s_slot_t pair)
{
    size_t index = s_home (pair.tag, count);
    while (slots[index].ref_1)
        index = s_next (index, count);
    slots[index] = pair;
}

//  Moves every pair into a new zeroed table of count slots and frees the
//  old one. The map is as it was when that fails.
static int
s_resize (hd_tagmap_t *self, size_t count)
{
    hd_region_t *region;
    s_slot_t *slots = hd_region_table_new (count * sizeof (s_slot_t), &region);
    if (!slots)
        return -1;
    for (size_t index = 0; index < self->count; index++)
        if (self->slots[index].ref_1)
            s_place (slots, count, self->slots[index]);
    hd_region_table_free (self->slots, &self->region);
    self->slots = slots;
    self->region = region;
    self->count = count;
    return 0;
}

//  The fewest slots, at least count, that hold items pairs within the
//  load bound, or 0 when no table can.
static size_t
s_slots_for (size_t items, size_t count)
{
    if (items >= S_SLOTS_MOST)
        return 0;
    uint64_t least =
        ((uint64_t) items * S_LOAD_DENOMINATOR + S_LOAD_NUMERATOR - 1) / S_LOAD_NUMERATOR;
    if (least < count)
        least = count;
    if (least > S_SLOTS_MOST || least > SIZE_MAX / sizeof (s_slot_t))
        return 0;
    return (size_t) least;
}

size_t
hd_tagmap_reserve_bytes (size_t items)
{
    return s_slots_for (items, S_INITIAL_SLOTS) * sizeof (s_slot_t);
}

int
hd_tagmap_reserve (hd_tagmap_t *self, size_t items)
{
    size_t count = s_slots_for (items, self->count);
    if (count == 0)
        return -1;
    //  A mapped table was faulted in whole when it was made
    return count == self->count ? 0 : s_resize (self, count);
}

int
hd_tagmap_insert (hd_tagmap_t *self, uint32_t tag, uint32_t ref)
{
    if (ref > HD_TAGMAP_REF_MAX)
        return -1;
    if ((uint64_t) (self->size + 1) * S_LOAD_DENOMINATOR >
        (uint64_t) self->count * S_LOAD_NUMERATOR) {
        //  Twice the slots, or as many as a table can have
        uint64_t count = (uint64_t) self->count * 2;
        if (count > S_SLOTS_MOST)
            count = S_SLOTS_MOST;
        if (count <= self->count || count > SIZE_MAX / sizeof (s_slot_t) ||
            s_resize (self, (size_t) count) != 0)
            return -1;
    }
    s_place (self->slots, self->count, (s_slot_t){.tag = tag, .ref_1 = ref + 1});
    self->size++;
    return 0;
}

void
hd_tagmap_prefetch (hd_tagmap_t *self, uint32_t tag)
{
    __builtin_prefetch (&self->slots[s_home (tag, self->count)]);
}

int
hd_tagmap_find (hd_tagmap_t *self, uint32_t tag, hd_tagmap_match_fn *match, const void *arg,
                uint32_t *ref_p)
{
    for (size_t index = s_home (tag, self->count); self->slots[index].ref_1;
         index = s_next (index, self->count)) {
        s_slot_t slot = self->slots[index];
        if (slot.tag == tag && match (slot.ref_1 - 1, arg)) {
            *ref_p = slot.ref_1 - 1;
            return 0;
        }
    }
    return -1;
}

//  Empties slot hole and moves later slots of the same probe run back, so
//  every remaining pair is still reachable from its home without
//  tombstones (a slot's home comes from its tag alone).
static void
s_shift_back (hd_tagmap_t *self, size_t hole)
{
    size_t count = self->count;
    for (size_t next = s_next (hole, count); self->slots[next].ref_1; next = s_next (next, count)) {
        size_t home = s_home (self->slots[next].tag, count);
        //  Movable when its home is not inside (hole, next], cyclically
        bool stays = hole < next ? (home > hole && home <= next) : (home > hole || home <= next);
        if (stays)
            continue;
        self->slots[hole] = self->slots[next];
        hole = next;
    }
    self->slots[hole] = (s_slot_t){0};
}

int
hd_tagmap_remove (hd_tagmap_t *self, uint32_t tag, uint32_t ref)
{
    if (ref > HD_TAGMAP_REF_MAX)
        return -1;
    for (size_t index = s_home (tag, self->count); self->slots[index].ref_1;
         index = s_next (index, self->count))
        if (self->slots[index].tag == tag && self->slots[index].ref_1 == ref + 1) {
            s_shift_back (self, index);
            self->size--;
            return 0;
        }
    return -1;
}
