/*  tagmap — open-addressing table of (32-bit tag, 32-bit ref) pairs, 8
    bytes a slot.

    The dedup window's index. A window of a million identities is looked
    up at random for every published event, so the index's size, not its
    code, sets its cost: on the machines measured a random read costs
    ~25 ns within ~12 MiB and ~145 ns at 32 MiB (TLB reach and cache). A
    slot holds no pointer and no full hash: the caller keeps its items
    elsewhere, numbered, and stores each under a 32-bit tag of its hash;
    a tag match is only a candidate, which the caller's match function
    confirms against the item itself. The slot count need not be a power
    of two (a slot's home is the tag scaled to the count), so a table
    sized for N items is N / 0.7 slots, not the next power of two above.

    Linear probing, deletion by backward shift (no tombstones). Tags
    should be well mixed; refs are any value below UINT32_MAX.
*/
#ifndef HD_TAGMAP_H_INCLUDED
#define HD_TAGMAP_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _hd_tagmap_t hd_tagmap_t;

//  The largest ref a tagmap holds.
#define HD_TAGMAP_REF_MAX (UINT32_MAX - 1)

//  True when the item numbered ref is the one looked for (arg: the
//  caller's key).
typedef bool (hd_tagmap_match_fn) (uint32_t ref, const void *arg);

//  Returns NULL when out of memory.
hd_tagmap_t *hd_tagmap_new (void);
void hd_tagmap_destroy (hd_tagmap_t **self_p);

size_t hd_tagmap_size (hd_tagmap_t *self);
//  Slots in the table.
size_t hd_tagmap_capacity (hd_tagmap_t *self);
//  Bytes of the slot table.
size_t hd_tagmap_table_bytes (hd_tagmap_t *self);

//  Makes room for items pairs in all without the table growing, and
//  touches its memory now. Returns 0, or -1 when the memory cannot be had
//  or items is beyond what a table can hold (the map is then as it was).
int hd_tagmap_reserve (hd_tagmap_t *self, size_t items);
//  Bytes of the table hd_tagmap_reserve (items) makes in an empty map (0:
//  beyond what a table can hold).
size_t hd_tagmap_reserve_bytes (size_t items);

//  Adds ref under tag; a tag may hold several refs. Returns 0, or -1 when
//  ref is above HD_TAGMAP_REF_MAX or the table cannot grow (nothing added).
int hd_tagmap_insert (hd_tagmap_t *self, uint32_t tag, uint32_t ref);

//  Sets *ref_p to the first ref under tag for which match (ref, arg) is
//  true and returns 0; returns -1 when there is none.
int hd_tagmap_find (hd_tagmap_t *self, uint32_t tag, hd_tagmap_match_fn *match, const void *arg,
                    uint32_t *ref_p);

//  A hint: starts loading the slot where a look-up of tag begins (no
//  effect on the map), so that several look-ups overlap their misses.
void hd_tagmap_prefetch (hd_tagmap_t *self, uint32_t tag);

//  Removes the pair (tag, ref). Returns 0, or -1 when it is not there.
int hd_tagmap_remove (hd_tagmap_t *self, uint32_t tag, uint32_t ref);

#endif
