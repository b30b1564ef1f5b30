/*  resident.h — how much memory this test process holds, for the tests of
    modules that make memory resident ahead of use. Header-only. */
#ifndef RESIDENT_H_INCLUDED
#define RESIDENT_H_INCLUDED

#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

//  Resident bytes of this process, 0 when unreadable. From the Rss of
//  /proc/self/smaps_rollup, counted exactly; /proc/self/statm's figure
//  comes from counters that some kernels update in batches of 32 pages
//  or more, as large as the steps these tests look for.
static size_t
s_resident_bytes (void)
{
    FILE *file = fopen ("/proc/self/smaps_rollup", "r");
    unsigned long kib = 0;
    if (file) {
        char line[256];
        while (fgets (line, sizeof line, file))
            if (strncmp (line, "Rss:", 4) == 0 && sscanf (line + 4, "%lu", &kib) == 1)
                break;
        fclose (file);
        if (kib)
            return (size_t) kib * 1024;
    }
    unsigned long size = 0, resident = 0;
    file = fopen ("/proc/self/statm", "r");
    if (file) {
        if (fscanf (file, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose (file);
    }
    return (size_t) resident * (size_t) sysconf (_SC_PAGESIZE);
}

#endif
