/*  Unit tests for broker/spare: the next segment file written ahead by a
    thread. Each test works in its own mkdtemp directory. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "spare.h"

#define S_NAME "next.spare"

typedef struct {
    char dir[64];
    int dir_fd;
} s_place_t;

static void
s_place_open (s_place_t *place)
{
    strcpy (place->dir, "/tmp/hd_test_spare.XXXXXX");
    assert_non_null (mkdtemp (place->dir));
    place->dir_fd = open (place->dir, O_RDONLY | O_DIRECTORY);
    assert_true (place->dir_fd >= 0);
}

static void
s_place_close (s_place_t *place)
{
    char command[128];
    snprintf (command, sizeof command, "rm -rf %s", place->dir);
    assert_int_equal (system (command), 0);
    close (place->dir_fd);
}

//  Size of a file in the place, -1 when it does not exist.
static long long
s_size (s_place_t *place, const char *name)
{
    struct stat status;
    if (fstatat (place->dir_fd, name, &status, 0) != 0)
        return -1;
    return (long long) status.st_size;
}

static void
s_assert_zeros (s_place_t *place, const char *name, size_t size)
{
    int fd = openat (place->dir_fd, name, O_RDONLY);
    assert_true (fd >= 0);
    uint8_t *data = malloc (size + 1);
    assert_int_equal (pread (fd, data, size + 1, 0), (ssize_t) size);
    for (size_t at = 0; at < size; at++)
        assert_int_equal (data[at], 0);
    free (data);
    close (fd);
}

//  A spare whose first file is whole, in the place
static hd_spare_t *
s_spare_ready_new (s_place_t *place, size_t size)
{
    char error[256];
    hd_spare_t *spare = hd_spare_new (place->dir_fd, S_NAME, size, 0, 100, error, sizeof error);
    assert_non_null (spare);
    assert_true (hd_spare_wait_ready (spare, 10000));
    return spare;
}

//  A whole file of zeros is made, taken by a rename, and the next one made
static void
test_prepare_and_take (void **state)
{
    s_place_t place;
    s_place_open (&place);
    const size_t size = (1u << 20) + 12345; // not a whole number of chunks
    hd_spare_t *spare = s_spare_ready_new (&place, size);
    assert_true (hd_spare_ready (spare));
    assert_int_equal (hd_spare_bytes (spare), size);
    s_assert_zeros (&place, S_NAME, size);

    assert_int_equal (hd_spare_take (spare, "1.seg"), size);
    assert_int_equal (s_size (&place, "1.seg"), (long long) size);
    s_assert_zeros (&place, "1.seg", size);
    //  The log is idle: the next one comes at full speed
    assert_true (hd_spare_wait_ready (spare, 10000));
    assert_int_equal (hd_spare_take (spare, "2.seg"), size);
    assert_int_equal (s_size (&place, "2.seg"), (long long) size);

    hd_spare_stats_t stats;
    assert_true (hd_spare_wait_ready (spare, 10000));
    hd_spare_stats (spare, &stats);
    assert_int_equal (stats.taken, 2);
    assert_int_equal (stats.prepared, 3);
    assert_int_equal (stats.failed, 0);
    assert_int_equal (stats.bytes_written, 3 * size);

    //  Destroy removes the file it holds, and only that
    hd_spare_destroy (&spare);
    assert_null (spare);
    hd_spare_destroy (&spare);
    assert_int_equal (s_size (&place, S_NAME), -1);
    assert_int_equal (s_size (&place, "1.seg"), (long long) size);
    s_place_close (&place);
}

//  Waits up to 10 s until the file being made holds bytes.
static bool
s_spare_reaches (hd_spare_t *spare, uint64_t bytes)
{
    for (int turn = 0; turn < 2000; turn++) {
        if (hd_spare_bytes (spare) >= bytes)
            return true;
        hd_spare_wait_ready (spare, 5);
    }
    return hd_spare_bytes (spare) >= bytes;
}

//  A spare whose first file the log took as 1.seg, the log counting as
//  busy from then on (idle time set out of reach), however slowly the
//  test runs
static hd_spare_t *
s_spare_taken_busy (s_place_t *place, size_t size)
{
    hd_spare_t *spare = s_spare_ready_new (place, size);
    hd_spare_set_idle_ms (spare, INT64_MAX);
    assert_int_equal (hd_spare_take (spare, "1.seg"), size);
    return spare;
}

//  While the log writes, zeros wait for a lead of a quarter file, then go
//  at twice its pace: none within the lead, half a file a quarter past
//  it, the whole file at three quarters. The log counts as busy all along.
static void
test_paced_by_the_log (void **state)
{
    s_place_t place;
    s_place_open (&place);
    const size_t size = 4u << 20; // 16 chunks
    hd_spare_t *spare = s_spare_taken_busy (&place, size);
    hd_spare_note_written (spare, size / 4 - 1);
    for (int turn = 0; turn < 20; turn++)
        assert_false (hd_spare_wait_ready (spare, 5));
    assert_int_equal (hd_spare_bytes (spare), 0);

    hd_spare_note_written (spare, size / 4);
    assert_true (s_spare_reaches (spare, size / 2));
    for (int turn = 0; turn < 20; turn++)
        assert_false (hd_spare_wait_ready (spare, 5));
    assert_int_equal (hd_spare_bytes (spare), size / 2);

    hd_spare_note_written (spare, size / 4 + 1);
    assert_true (hd_spare_wait_ready (spare, 10000));
    hd_spare_destroy (&spare);
    s_place_close (&place);
}

//  A file that is late, the log having begun a segment by appending, has
//  no lead, and its count runs on from the last take that got a file
static void
test_late_file_has_no_lead (void **state)
{
    s_place_t place;
    s_place_open (&place);
    const size_t size = 4u << 20;
    hd_spare_t *spare = s_spare_taken_busy (&place, size);
    hd_spare_note_written (spare, 1);
    assert_false (hd_spare_wait_ready (spare, 5));
    //  The next roll finds nothing ready and appends to a file of its own
    assert_int_equal (hd_spare_take (spare, "2.seg"), 0);
    assert_int_equal (s_size (&place, "2.seg"), -1);
    //  Half a file since the first take is enough now; with the lead kept
    //  it would stay half made
    hd_spare_note_written (spare, size / 2);
    assert_true (hd_spare_wait_ready (spare, 10000));
    hd_spare_destroy (&spare);
    s_place_close (&place);
}

//  Released, ready or half made, the file goes and its bytes are
//  reported; nothing more is made until the next take
static void
test_release (void **state)
{
    s_place_t place;
    s_place_open (&place);
    const size_t size = 1u << 20;
    hd_spare_t *spare = s_spare_ready_new (&place, size);
    assert_int_equal (hd_spare_release (spare), size);
    assert_int_equal (s_size (&place, S_NAME), -1);
    assert_false (hd_spare_ready (spare));
    assert_false (hd_spare_wait_ready (spare, 50));
    assert_int_equal (hd_spare_release (spare), 0); // nothing left
    //  A take finds nothing but starts the next one
    assert_int_equal (hd_spare_take (spare, "1.seg"), 0);
    assert_int_equal (s_size (&place, "1.seg"), -1);
    assert_true (hd_spare_wait_ready (spare, 10000));

    //  Half made: the log is busy, so the thread stops after a chunk
    hd_spare_note_written (spare, 1);
    assert_int_equal (hd_spare_take (spare, "2.seg"), size);
    hd_spare_note_written (spare, 1);
    hd_spare_release (spare);
    assert_int_equal (s_size (&place, S_NAME), -1);
    assert_int_equal (hd_spare_bytes (spare), 0);
    hd_spare_stats_t stats;
    hd_spare_stats (spare, &stats);
    assert_true (stats.released >= 1);
    hd_spare_destroy (&spare);
    s_place_close (&place);
}

//  Not enough room: no file, counted, tried again later; a destroy while
//  a file is being made removes it
static void
test_no_room_and_stop (void **state)
{
    s_place_t place;
    s_place_open (&place);
    char error[256];
    hd_spare_t *spare =
        hd_spare_new (place.dir_fd, S_NAME, 1u << 20, UINT64_MAX / 4, 20, error, sizeof error);
    assert_non_null (spare);
    //  Tried again after retry_ms, and again
    hd_spare_stats_t stats;
    for (int turn = 0; turn < 1000; turn++) {
        assert_false (hd_spare_wait_ready (spare, 10));
        hd_spare_stats (spare, &stats);
        if (stats.failed >= 2)
            break;
    }
    assert_true (stats.failed >= 2);
    assert_int_equal (s_size (&place, S_NAME), -1);
    assert_int_equal (hd_spare_take (spare, "1.seg"), 0);
    hd_spare_destroy (&spare);

    //  A large file, stopped at once: nothing is left behind
    spare = hd_spare_new (place.dir_fd, S_NAME, 256u << 20, 0, 20, error, sizeof error);
    assert_non_null (spare);
    hd_spare_note_written (spare, 1);
    hd_spare_destroy (&spare);
    assert_int_equal (s_size (&place, S_NAME), -1);
    s_place_close (&place);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_prepare_and_take),      cmocka_unit_test (test_paced_by_the_log),
        cmocka_unit_test (test_late_file_has_no_lead), cmocka_unit_test (test_release),
        cmocka_unit_test (test_no_room_and_stop),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
