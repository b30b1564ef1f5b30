/*  inttable — integer-keyed zhashx. */
#include "inttable.h"

//  Seqs and corrs are sequential: mix them so they spread over the buckets
static size_t
s_hash (const void *key)
{
    uint64_t value = (uint64_t) (uintptr_t) key;
    value ^= value >> 33;
    value *= 0xff51afd7ed558ccdULL;
    value ^= value >> 33;
    return (size_t) value;
}

static int
s_compare (const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) a, y = (uintptr_t) b;
    return x < y ? -1 : x > y;
}

zhashx_t *
hd_int_table_new (void)
{
    zhashx_t *table = zhashx_new ();
    if (table) {
        zhashx_set_key_hasher (table, s_hash);
        zhashx_set_key_comparator (table, s_compare);
        zhashx_set_key_duplicator (table, NULL);
        zhashx_set_key_destructor (table, NULL);
    }
    return table;
}
