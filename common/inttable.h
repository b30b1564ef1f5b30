/*  inttable — czmq hash tables keyed by integers (seqs, corr numbers).

    The integer is the key itself, stored in the key pointer: no key is
    allocated, copied or freed. Use HD_INT_KEY (value) for keys; 0 works
    too, but callers here never need it.
*/
#ifndef HD_INTTABLE_H_INCLUDED
#define HD_INTTABLE_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

#define HD_INT_KEY(value) ((void *) (uintptr_t) (value))

//  A new zhashx with integer keys, or NULL when out of memory.
zhashx_t *hd_int_table_new (void);

#endif
