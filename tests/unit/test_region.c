/*  region: memory faulted in ahead, grown without losing its bytes,
    shrunk in place, and refused cleanly when too large. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include "region.h"

static size_t
s_page (void)
{
    return (size_t) sysconf (_SC_PAGESIZE);
}

//  Pages of [data, data + bytes) the process has in memory; SIZE_MAX when
//  part of the range is not mapped at all.
static size_t
s_resident_pages (const void *data, size_t bytes)
{
    size_t pages = (bytes + s_page () - 1) / s_page ();
    unsigned char *vector = malloc (pages);
    assert_non_null (vector);
    if (mincore ((void *) data, bytes, vector) != 0) {
        assert_int_equal (errno, ENOMEM);
        free (vector);
        return SIZE_MAX;
    }
    size_t resident = 0;
    for (size_t page = 0; page < pages; page++)
        resident += vector[page] & 1;
    free (vector);
    return resident;
}

static void
s_fill (uint8_t *data, size_t from, size_t to)
{
    for (size_t offset = from; offset < to; offset++)
        data[offset] = (uint8_t) (offset * 7 + 3);
}

static void
s_check (const uint8_t *data, size_t from, size_t to)
{
    for (size_t offset = from; offset < to; offset++)
        if (data[offset] != (uint8_t) (offset * 7 + 3))
            fail_msg ("byte %zu changed", offset);
}

//  What a prepare makes ready is in memory before it is touched: that is
//  the region's point (a page fault each 4 KiB is what it saves)
static void
test_prepared_bytes_are_resident (void **state)
{
    hd_region_t *region = hd_region_new ();
    assert_non_null (region);
    assert_null (hd_region_data (region));
    assert_int_equal (hd_region_size (region), 0);

    assert_int_equal (hd_region_prepare (region, 100), 0);
    uint8_t *data = hd_region_data (region);
    assert_non_null (data);
    size_t size = hd_region_size (region);
    assert_true (size >= 100);
    assert_int_equal (size % s_page (), 0);
    assert_int_equal (s_resident_pages (data, size), size / s_page ());
    //  Fresh memory is zero
    for (size_t offset = 0; offset < size; offset++)
        assert_int_equal (data[offset], 0);
    //  Asking for what is ready changes nothing
    assert_int_equal (hd_region_prepare (region, size), 0);
    assert_int_equal (hd_region_size (region), size);
    assert_ptr_equal (hd_region_data (region), data);

    //  A step past it: steps double, so a region filled a byte at a time
    //  prepares few times
    assert_int_equal (hd_region_prepare (region, size + 1), 0);
    assert_true (hd_region_size (region) >= 2 * size);
    assert_int_equal (s_resident_pages (hd_region_data (region), hd_region_size (region)),
                      hd_region_size (region) / s_page ());
    hd_region_destroy (&region);
    assert_null (region);
    hd_region_destroy (&region);
    hd_region_destroy (NULL);
}

//  Growing past the mapping moves the pages, never the bytes' values
static void
test_growth_keeps_bytes (void **state)
{
    hd_region_t *region = hd_region_new ();
    size_t filled = 0;
    int moves = 0;
    uint8_t *before = NULL;
    //  Grown a step at a time to 9 MiB, past several mapping sizes
    while (filled < ((size_t) 9 << 20)) {
        assert_int_equal (hd_region_prepare (region, filled + 1), 0);
        uint8_t *data = hd_region_data (region);
        moves += before && data != before;
        before = data;
        s_check (data, 0, filled);
        size_t size = hd_region_size (region);
        assert_true (size > filled);
        s_fill (data, filled, size);
        filled = size;
    }
    assert_true (moves >= 1);
    //  One large request at once
    assert_int_equal (hd_region_prepare (region, (size_t) 40 << 20), 0);
    s_check (hd_region_data (region), 0, filled);
    assert_true (hd_region_size (region) >= ((size_t) 40 << 20));
    hd_region_destroy (&region);
}

//  Lines of /proc/self/maps that cover part of [data, data + bytes): the
//  mappings the range is made of.
static int
s_mappings (const void *data, size_t bytes)
{
    FILE *maps = fopen ("/proc/self/maps", "r");
    assert_non_null (maps);
    uintptr_t from = (uintptr_t) data, to = from + bytes;
    int count = 0;
    char line[512];
    while (fgets (line, sizeof line, maps)) {
        unsigned long start, end;
        if (sscanf (line, "%lx-%lx", &start, &end) == 2 && start < to && end > from)
            count++;
    }
    fclose (maps);
    return count;
}

//  However often it grew, a region is one mapping: a kernel before 6.17
//  cannot move a range that spans two, so a second growth would fail there
static void
test_growth_stays_one_mapping (void **state)
{
    hd_region_t *region = hd_region_new ();
    for (size_t bytes = 1; bytes < ((size_t) 17 << 20); bytes = hd_region_size (region) + 1) {
        assert_int_equal (hd_region_prepare (region, bytes), 0);
        assert_int_equal (s_mappings (hd_region_data (region), hd_region_size (region)), 1);
    }
    hd_region_destroy (&region);
}

//  The VmFlags of the mapping that holds address (/proc/self/smaps), or ""
static void
s_vm_flags (const void *address, char *flags, size_t size)
{
    FILE *smaps = fopen ("/proc/self/smaps", "r");
    assert_non_null (smaps);
    char line[512];
    bool inside = false;
    *flags = 0;
    while (fgets (line, sizeof line, smaps)) {
        unsigned long start, end;
        char dash;
        if (sscanf (line, "%lx%c%lx ", &start, &dash, &end) == 3 && dash == '-')
            inside = (uintptr_t) address >= start && (uintptr_t) address < end;
        else if (inside && strncmp (line, "VmFlags:", 8) == 0) {
            snprintf (flags, size, "%s", line + 8);
            break;
        }
    }
    fclose (smaps);
}

//  Huge pages are asked for from 2 MiB on; below, they are refused, since
//  where the system hands them to every mapping (transparent huge pages
//  "always") a 64 KiB region would hold a whole 2 MiB page
static void
test_huge_pages_from_2_mib (void **state)
{
    if (access ("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) != 0)
        skip (); // a kernel without transparent huge pages takes no advice
    char flags[512];
    hd_region_t *region = hd_region_new ();
    assert_int_equal (hd_region_prepare (region, 100), 0);
    s_vm_flags (hd_region_data (region), flags, sizeof flags);
    assert_non_null (strstr (flags, " nh"));
    assert_null (strstr (flags, " hg"));
    assert_int_equal (hd_region_prepare (region, (size_t) 3 << 20), 0);
    s_vm_flags (hd_region_data (region), flags, sizeof flags);
    assert_non_null (strstr (flags, " hg"));
    assert_null (strstr (flags, " nh"));
    hd_region_destroy (&region);
}

//  A large region shrinks in place and gives the rest back; a small one
//  moves to the heap (a mapping each would run into vm.max_map_count);
//  either grows again afterwards, bytes kept
static void
test_shrink (void **state)
{
    hd_region_t *region = hd_region_new ();
    assert_int_equal (hd_region_prepare (region, (size_t) 3 << 20), 0);
    uint8_t *data = hd_region_data (region);
    size_t size = hd_region_size (region);
    s_fill (data, 0, size);

    size_t large = ((size_t) 1 << 20) + 10;
    size_t kept = ((size_t) 1 << 20) + s_page ();
    hd_region_shrink (region, large);
    assert_ptr_equal (hd_region_data (region), data);
    assert_int_equal (hd_region_size (region), kept);
    s_check (data, 0, kept);
    //  The rest is no longer the process's
    assert_int_equal (s_resident_pages (data + kept, s_page ()), SIZE_MAX);
    //  Shrinking to more than it holds changes nothing
    hd_region_shrink (region, size);
    assert_int_equal (hd_region_size (region), kept);

    //  Small: to the heap, exactly the bytes asked for
    size_t small = 5 * s_page () + 10;
    hd_region_shrink (region, small);
    assert_int_equal (hd_region_size (region), small);
    s_check (hd_region_data (region), 0, small);
    assert_int_equal (s_resident_pages (data, s_page ()), SIZE_MAX);
    hd_region_shrink (region, small + 1); // more than it holds: nothing
    assert_int_equal (hd_region_size (region), small);
    hd_region_shrink (region, 100); // smaller on the heap: kept as it is
    s_check (hd_region_data (region), 0, 100);

    //  Back to a mapping as it grows: the bytes come along, and the rest
    //  of the prepared size is resident and zero
    assert_int_equal (hd_region_prepare (region, (size_t) 4 << 20), 0);
    uint8_t *grown = hd_region_data (region);
    s_check (grown, 0, 100);
    assert_true (hd_region_size (region) >= ((size_t) 4 << 20));
    assert_int_equal (s_resident_pages (grown, hd_region_size (region)),
                      hd_region_size (region) / s_page ());
    assert_int_equal (s_mappings (grown, hd_region_size (region)), 1);
    for (size_t offset = small; offset < hd_region_size (region); offset += 4099)
        assert_int_equal (grown[offset], 0);

    hd_region_shrink (region, 0);
    assert_null (hd_region_data (region));
    assert_int_equal (hd_region_size (region), 0);
    assert_int_equal (hd_region_prepare (region, 1), 0);
    assert_non_null (hd_region_data (region));
    hd_region_destroy (&region);
}

//  A request no machine can meet fails with ENOMEM and leaves the region
//  as it was
static void
test_too_large (void **state)
{
    hd_region_t *region = hd_region_new ();
    assert_int_equal (hd_region_prepare (region, 1000), 0);
    uint8_t *data = hd_region_data (region);
    size_t size = hd_region_size (region);
    s_fill (data, 0, size);
    size_t requests[] = {SIZE_MAX, SIZE_MAX / 2, (size_t) 1 << 56};
    for (size_t index = 0; index < sizeof requests / sizeof *requests; index++) {
        errno = 0;
        assert_int_equal (hd_region_prepare (region, requests[index]), -1);
        assert_int_equal (errno, ENOMEM);
        assert_int_equal (hd_region_size (region), size);
        s_check (hd_region_data (region), 0, size);
    }
    hd_region_destroy (&region);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_prepared_bytes_are_resident),
        cmocka_unit_test (test_growth_keeps_bytes),
        cmocka_unit_test (test_growth_stays_one_mapping),
        cmocka_unit_test (test_huge_pages_from_2_mib),
        cmocka_unit_test (test_shrink),
        cmocka_unit_test (test_too_large),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
