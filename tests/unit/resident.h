/*  resident.h — how much memory this test process holds, for the tests of
    modules that make memory resident ahead of use. Header-only. */
#ifndef RESIDENT_H_INCLUDED
#define RESIDENT_H_INCLUDED

#include <stddef.h>
#include <stdio.h>
#include <unistd.h>

//  Resident bytes of this process (/proc/self/statm), 0 when unreadable.
static size_t
s_resident_bytes (void)
{
    FILE *file = fopen ("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (file) {
        if (fscanf (file, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose (file);
    }
    return (size_t) resident * (size_t) sysconf (_SC_PAGESIZE);
}

#endif
