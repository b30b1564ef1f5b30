/*  herald-bench's control file: its pages are made and mapped before a run,
    so a receiver recording a receipt takes no page fault inside the
    measured time (bench-peers' harness writes its file at creation too). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <cmocka.h>
#include "bench.h"

#define S_EVENTS 200000
#define S_ARRAYS 2

static long
s_minor_faults (void)
{
    struct rusage usage;
    assert_int_equal (getrusage (RUSAGE_SELF, &usage), 0);
    return usage.ru_minflt;
}

//  Writes every cell as receivers do: a receipt count and a latency each.
//  Returns the page faults that took.
static long
s_record_all (hb_ctl_t *ctl)
{
    size_t cells = (size_t) ctl->hdr->arrays * ctl->hdr->events;
    long before = s_minor_faults ();
    for (size_t cell = 0; cell < cells; cell++) {
        atomic_fetch_add_explicit (&ctl->cnt[cell], 1, memory_order_relaxed);
        ctl->lat[cell] = cell;
    }
    return s_minor_faults () - before;
}

#define S_TMPFS_MAGIC 0x01021994

//  Where herald-bench puts its control files. Returns true when that is
//  tmpfs, where a populated shared mapping is writable without a fault
//  (on a disk file system the first write to each page still faults, to
//  mark it dirty).
static bool
s_path (char *path, size_t size)
{
    struct statfs fs;
    bool shm = access ("/dev/shm", W_OK) == 0;
    snprintf (path, size, "%s/test-bench-ctl-%d.ctl", shm ? "/dev/shm" : "/tmp", (int) getpid ());
    unlink (path);
    return shm && statfs ("/dev/shm", &fs) == 0 && fs.f_type == S_TMPFS_MAGIC;
}

static void
test_no_fault_while_recording (void **state)
{
    char path[256];
    if (!s_path (path, sizeof path))
        skip ();
    size_t size = hb_ctl_size (S_ARRAYS, S_EVENTS);
    hb_ctl_t creator;
    assert_int_equal (hb_ctl_map (&creator, path, true, size), 0);
    creator.hdr->magic = HB_MAGIC;
    creator.hdr->events = S_EVENTS;
    creator.hdr->arrays = S_ARRAYS;
    hb_ctl_arrays (&creator);

    //  A receiver maps the file the coordinator made; its cells span
    //  hundreds of pages, and recording into them must fault none in
    hb_ctl_t receiver;
    assert_int_equal (hb_ctl_map (&receiver, path, false, 0), 0);
    assert_int_equal (receiver.hdr->events, S_EVENTS);
    assert_true (size / 4096 > 400);
    assert_int_equal (s_record_all (&receiver), 0);
    //  The creator's own mapping shares the pages and was populated too
    assert_int_equal (s_record_all (&creator), 0);
    assert_int_equal (creator.cnt[0], 2);
    assert_int_equal (creator.lat[S_EVENTS], S_EVENTS);

    hb_ctl_unmap (&receiver);
    hb_ctl_unmap (&creator);
    unlink (path);
}

//  A control file larger than the room left fails at creation, with the
//  file gone, instead of a receiver's SIGBUS during the run.
static void
test_too_large_fails_at_creation (void **state)
{
    char path[256];
    if (!s_path (path, sizeof path))
        skip ();
    struct statfs fs;
    assert_int_equal (statfs ("/dev/shm", &fs), 0);
    //  Past the file system's whole size, so tmpfs refuses before it
    //  allocates anything
    size_t whole = (size_t) fs.f_blocks * (size_t) fs.f_bsize;
    hb_ctl_t ctl;
    assert_int_equal (hb_ctl_map (&ctl, path, true, whole + (64u << 20)), -1);
    assert_int_equal (errno, ENOSPC);
    assert_int_equal (access (path, F_OK), -1);
}

static void
test_refuses_foreign_file (void **state)
{
    char path[256];
    s_path (path, sizeof path);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    char zeros[HB_HDR_SPACE] = {0};
    assert_int_equal (fwrite (zeros, 1, sizeof zeros, file), sizeof zeros);
    fclose (file);
    hb_ctl_t ctl;
    assert_int_equal (hb_ctl_map (&ctl, path, false, 0), -1);           // no magic
    assert_int_equal (hb_ctl_map (&ctl, path, true, HB_HDR_SPACE), -1); // exists
    unlink (path);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_no_fault_while_recording),
        cmocka_unit_test (test_too_large_fails_at_creation),
        cmocka_unit_test (test_refuses_foreign_file),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
