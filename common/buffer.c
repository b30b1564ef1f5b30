/*  buffer — growing a heap byte buffer for appends. */
#include "buffer.h"

#include <errno.h>
#include <stdlib.h>

int
hd_buffer_reserve (uint8_t **data, size_t *capacity, size_t size)
{
    if (size <= *capacity)
        return 0;
    size_t grown = *capacity ? *capacity : 4096;
    while (grown < size)
        grown = grown > SIZE_MAX / 2 ? size : grown * 2;
    uint8_t *larger = realloc (*data, grown);
    if (!larger) {
        errno = ENOMEM;
        return -1;
    }
    *data = larger;
    *capacity = grown;
    return 0;
}
