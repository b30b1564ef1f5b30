/*  journal — recovery, checkpoints and their crash windows, torn and corrupt
    tails, flush rollback, fsync policies. Each test works in its own
    mkdtemp directory, removed afterwards.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "journal.h"

#define MAX_REPLAYED 512

//  What a replay saw: the checkpoint (if any) and every record, copied.
typedef struct {
    int checkpoints;
    char *checkpoint;
    size_t checkpoint_size;
    int records;
    char *record[MAX_REPLAYED];
    size_t record_size[MAX_REPLAYED];
    int fail_at; // record index whose replay returns -1; -2 fails the checkpoint; -1 none
} replay_t;

static int
s_collect (const void *data, size_t size, bool is_checkpoint, void *arg)
{
    replay_t *replay = arg;
    if (is_checkpoint) {
        //  The contract: at most once, and before any record
        assert_int_equal (replay->checkpoints, 0);
        assert_int_equal (replay->records, 0);
        replay->checkpoints++;
        if (replay->fail_at == -2)
            return -1;
        replay->checkpoint = malloc (size + 1);
        memcpy (replay->checkpoint, data, size);
        replay->checkpoint[size] = 0;
        replay->checkpoint_size = size;
        return 0;
    }
    if (replay->fail_at == replay->records)
        return -1;
    assert_true (replay->records < MAX_REPLAYED);
    replay->record[replay->records] = malloc (size + 1);
    memcpy (replay->record[replay->records], data, size);
    replay->record[replay->records][size] = 0;
    replay->record_size[replay->records] = size;
    replay->records++;
    return 0;
}

static void
s_replay_reset (replay_t *replay)
{
    free (replay->checkpoint);
    for (int index = 0; index < replay->records; index++)
        free (replay->record[index]);
    memset (replay, 0, sizeof *replay);
    replay->fail_at = -1;
}

typedef struct {
    char directory[64];
    char path[128];
    replay_t replay;
    hd_journal_recovery_t recovery;
    char error[256];
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *fixture = calloc (1, sizeof *fixture);
    strcpy (fixture->directory, "/tmp/test_journal.XXXXXX");
    if (!mkdtemp (fixture->directory))
        return -1;
    fixture->replay.fail_at = -1;
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fixture = *state;
    DIR *dir = opendir (fixture->directory);
    if (dir) {
        struct dirent *entry;
        char path[512];
        while ((entry = readdir (dir)))
            if (strcmp (entry->d_name, ".") && strcmp (entry->d_name, "..")) {
                snprintf (path, sizeof path, "%s/%s", fixture->directory, entry->d_name);
                unlink (path);
            }
        closedir (dir);
    }
    rmdir (fixture->directory);
    s_replay_reset (&fixture->replay);
    free (fixture);
    return 0;
}

//  <directory>/<name>, valid until the next call.
static const char *
s_path (fixture_t *fixture, const char *name)
{
    snprintf (fixture->path, sizeof fixture->path, "%s/%s", fixture->directory, name);
    return fixture->path;
}

static hd_journal_t *
s_open_policy (fixture_t *fixture, hd_fsync_t fsync, int64_t interval_ms, bool skip_corrupt)
{
    s_replay_reset (&fixture->replay);
    return hd_journal_open (fixture->directory, fsync, interval_ms, skip_corrupt, s_collect,
                            &fixture->replay, &fixture->recovery, fixture->error,
                            sizeof fixture->error);
}

//  Opens with HD_FSYNC_NEVER and requires success: tests of the format do
//  not need real syncs, which only make them slow.
static hd_journal_t *
s_open (fixture_t *fixture)
{
    hd_journal_t *journal = s_open_policy (fixture, HD_FSYNC_NEVER, 0, false);
    if (!journal)
        fail_msg ("open failed: %s", fixture->error);
    return journal;
}

static void
s_append (hd_journal_t *journal, const char *text)
{
    assert_int_equal (hd_journal_append (journal, text, strlen (text)), 0);
}

static void
s_assert_records (fixture_t *fixture, int count, const char *const *expected)
{
    assert_int_equal (fixture->replay.records, count);
    for (int index = 0; index < count; index++)
        assert_string_equal (fixture->replay.record[index], expected[index]);
}

static off_t
s_file_size (fixture_t *fixture, const char *name)
{
    struct stat status;
    if (stat (s_path (fixture, name), &status) != 0)
        return -1;
    return status.st_size;
}

static void
s_read_file (fixture_t *fixture, const char *name, uint8_t **data, size_t *size)
{
    FILE *file = fopen (s_path (fixture, name), "rb");
    assert_non_null (file);
    fseek (file, 0, SEEK_END);
    *size = (size_t) ftell (file);
    fseek (file, 0, SEEK_SET);
    *data = malloc (*size ? *size : 1);
    assert_int_equal (fread (*data, 1, *size, file), *size);
    fclose (file);
}

static void
s_write_file (fixture_t *fixture, const char *name, const uint8_t *data, size_t size)
{
    FILE *file = fopen (s_path (fixture, name), "wb");
    assert_non_null (file);
    assert_int_equal (fwrite (data, 1, size, file), size);
    fclose (file);
}

static void
s_flip_byte (fixture_t *fixture, const char *name, off_t offset)
{
    int fd = open (s_path (fixture, name), O_RDWR);
    assert_true (fd >= 0);
    uint8_t byte;
    assert_int_equal (pread (fd, &byte, 1, offset), 1);
    byte ^= 0x40;
    assert_int_equal (pwrite (fd, &byte, 1, offset), 1);
    close (fd);
}

//  --------------------------------------------------------------------------

static void
test_round_trip (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    assert_false (fixture->recovery.checkpoint_found);
    assert_int_equal (fixture->replay.checkpoints, 0);
    assert_int_equal (fixture->replay.records, 0);
    assert_int_equal (hd_journal_bytes (journal), 8); // the generation head

    s_append (journal, "alpha");
    s_append (journal, "beta");
    assert_int_equal (hd_journal_bytes (journal), 8 + 8 + 5 + 8 + 4);
    assert_int_equal (s_file_size (fixture, "journal"), 8); // buffered only
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    assert_int_equal (s_file_size (fixture, "journal"), 8 + 8 + 5 + 8 + 4);
    s_append (journal, "gamma");
    assert_int_equal (hd_journal_flush (journal, 1), 0);
    s_append (journal, "unflushed"); // dropped by destroy, like a crash
    hd_journal_destroy (&journal);
    assert_null (journal);

    journal = s_open (fixture);
    const char *expected[] = {"alpha", "beta", "gamma"};
    s_assert_records (fixture, 3, expected);
    assert_int_equal (fixture->recovery.records, 3);
    assert_int_equal (fixture->recovery.truncated_bytes, 0);
    assert_int_equal (hd_journal_bytes (journal), 8 + 3 * 8 + 5 + 4 + 5);

    //  Appends after a reopen continue the same file
    s_append (journal, "delta");
    assert_int_equal (hd_journal_flush (journal, 2), 0);
    hd_journal_destroy (&journal);
    journal = s_open (fixture);
    const char *expected2[] = {"alpha", "beta", "gamma", "delta"};
    s_assert_records (fixture, 4, expected2);
    hd_journal_destroy (&journal);
}

static void
test_binary_and_large_records (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    //  Larger than one recovery read and than the initial write buffer
    size_t large = 3 * 1024 * 1024 + 17;
    uint8_t *data = malloc (large);
    for (size_t index = 0; index < large; index++)
        data[index] = (uint8_t) (index * 7 + (index >> 11));
    uint8_t zeros[3] = {0, 0, 0};
    assert_int_equal (hd_journal_append (journal, zeros, 3), 0);
    assert_int_equal (hd_journal_append (journal, data, large), 0);
    s_append (journal, "after");
    //  Sizes recovery would take for corruption are refused up front
    assert_int_equal (hd_journal_append (journal, data, 0), -1);
    assert_int_equal (errno, EINVAL);
    assert_int_equal (hd_journal_append (journal, data, 64u * 1024 * 1024 + 1), -1);
    assert_int_equal (errno, EMSGSIZE);
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    hd_journal_destroy (&journal);

    journal = s_open (fixture);
    assert_int_equal (fixture->replay.records, 3);
    assert_int_equal (fixture->replay.record_size[0], 3);
    assert_memory_equal (fixture->replay.record[0], zeros, 3);
    assert_int_equal (fixture->replay.record_size[1], large);
    assert_memory_equal (fixture->replay.record[1], data, large);
    assert_string_equal (fixture->replay.record[2], "after");
    hd_journal_destroy (&journal);
    free (data);
}

//  Checks each record against its index instead of keeping it, for counts
//  beyond what replay_t holds.
typedef struct {
    int records;
    bool bad;
} counter_t;

static void
s_pattern (uint8_t *data, size_t size, int index)
{
    for (size_t at = 0; at < size; at++)
        data[at] = (uint8_t) (index * 131 + at * 7);
}

static int
s_count (const void *data, size_t size, bool is_checkpoint, void *arg)
{
    counter_t *counter = arg;
    uint8_t expected[1500];
    size_t expected_size = 500 + (size_t) (counter->records * 37) % 1000;
    s_pattern (expected, expected_size, counter->records);
    if (is_checkpoint || size != expected_size || memcmp (data, expected, size) != 0)
        counter->bad = true;
    counter->records++;
    return 0;
}

//  Thousands of records across several recovery reads, so records straddle
//  the edge of the read window again and again.
static void
test_many_records_across_reads (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    enum { COUNT = 4000 };
    uint8_t data[1500];
    for (int index = 0; index < COUNT; index++) {
        size_t size = 500 + (size_t) (index * 37) % 1000;
        s_pattern (data, size, index);
        assert_int_equal (hd_journal_append (journal, data, size), 0);
        if (index % 500 == 499)
            assert_int_equal (hd_journal_flush (journal, index), 0);
    }
    assert_int_equal (hd_journal_flush (journal, COUNT), 0);
    assert_true (hd_journal_bytes (journal) > 3 * 1024 * 1024);
    hd_journal_destroy (&journal);

    counter_t counter = {0};
    hd_journal_recovery_t recovery;
    journal = hd_journal_open (fixture->directory, HD_FSYNC_NEVER, 0, false, s_count, &counter,
                               &recovery, fixture->error, sizeof fixture->error);
    assert_non_null (journal);
    assert_int_equal (counter.records, COUNT);
    assert_false (counter.bad);
    assert_int_equal (recovery.records, COUNT);
    assert_int_equal (recovery.truncated_bytes, 0);
    hd_journal_destroy (&journal);
}

static void
test_checkpoint_then_records (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    s_append (journal, "before-1");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    s_append (journal, "before-2"); // pending: the checkpoint flushes it first
    assert_int_equal (hd_journal_checkpoint (journal, "STATE-1", 7), 0);
    assert_int_equal (hd_journal_bytes (journal), 8);
    assert_int_equal (s_file_size (fixture, "journal"), 8);
    assert_int_equal (s_file_size (fixture, "checkpoint"), 16 + 7);
    assert_int_equal (s_file_size (fixture, "checkpoint.tmp"), -1);
    s_append (journal, "after-1");
    s_append (journal, "after-2");
    assert_int_equal (hd_journal_flush (journal, 1), 0);
    hd_journal_destroy (&journal);

    journal = s_open (fixture);
    assert_true (fixture->recovery.checkpoint_found);
    assert_int_equal (fixture->replay.checkpoints, 1);
    assert_string_equal (fixture->replay.checkpoint, "STATE-1");
    const char *expected[] = {"after-1", "after-2"};
    s_assert_records (fixture, 2, expected);

    //  A second checkpoint replaces the first; an empty blob is a state too
    assert_int_equal (hd_journal_checkpoint (journal, NULL, 0), 0);
    s_append (journal, "after-3");
    assert_int_equal (hd_journal_flush (journal, 2), 0);
    hd_journal_destroy (&journal);
    journal = s_open (fixture);
    assert_int_equal (fixture->replay.checkpoints, 1);
    assert_int_equal (fixture->replay.checkpoint_size, 0);
    const char *expected2[] = {"after-3"};
    s_assert_records (fixture, 1, expected2);
    hd_journal_destroy (&journal);
}

//  Crash after the new checkpoint was renamed into place but before the
//  journal was restarted: the old journal's records are in the checkpoint
//  already and must not be replayed on top of it.
static void
test_crash_before_journal_restart (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    s_append (journal, "old-1");
    s_append (journal, "old-2");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    uint8_t *old_journal;
    size_t old_size;
    s_read_file (fixture, "journal", &old_journal, &old_size);
    assert_int_equal (hd_journal_checkpoint (journal, "STATE", 5), 0);
    hd_journal_destroy (&journal);
    s_write_file (fixture, "journal", old_journal, old_size);
    free (old_journal);

    journal = s_open (fixture);
    assert_string_equal (fixture->replay.checkpoint, "STATE");
    assert_int_equal (fixture->replay.records, 0);
    assert_non_null (strstr (fixture->recovery.detail, "superseded"));
    //  The stale journal was restarted, so new records survive a reopen
    assert_int_equal (s_file_size (fixture, "journal"), 8);
    s_append (journal, "new-1");
    assert_int_equal (hd_journal_flush (journal, 1), 0);
    hd_journal_destroy (&journal);
    journal = s_open (fixture);
    assert_string_equal (fixture->replay.checkpoint, "STATE");
    const char *expected[] = {"new-1"};
    s_assert_records (fixture, 1, expected);
    hd_journal_destroy (&journal);
}

//  Crash while the journal was being restarted: cut to nothing, or only part
//  of the generation head written.
static void
test_crash_during_journal_restart (void **state)
{
    fixture_t *fixture = *state;
    for (size_t cut = 0; cut < 8; cut++) {
        hd_journal_t *journal = s_open (fixture);
        s_append (journal, "old");
        assert_int_equal (hd_journal_checkpoint (journal, "STATE", 5), 0);
        hd_journal_destroy (&journal);
        assert_int_equal (truncate (s_path (fixture, "journal"), (off_t) cut), 0);

        journal = s_open (fixture);
        assert_string_equal (fixture->replay.checkpoint, "STATE");
        assert_int_equal (fixture->replay.records, 0);
        assert_int_equal (fixture->recovery.truncated_bytes, cut);
        s_append (journal, "new");
        assert_int_equal (hd_journal_flush (journal, 0), 0);
        hd_journal_destroy (&journal);
        journal = s_open (fixture);
        const char *expected[] = {"new"};
        s_assert_records (fixture, 1, expected);
        hd_journal_destroy (&journal);
    }
}

//  Crash before the rename: a checkpoint.tmp is left; the old checkpoint and
//  the full journal are the state.
static void
test_crash_before_rename (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    assert_int_equal (hd_journal_checkpoint (journal, "OLD", 3), 0);
    s_append (journal, "kept-1");
    s_append (journal, "kept-2");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    hd_journal_destroy (&journal);
    //  Half a new checkpoint, and then a whole (but never renamed) one
    for (int round = 0; round < 2; round++) {
        const uint8_t partial[] = {9, 0, 0, 0, 1, 2};
        if (round == 0)
            s_write_file (fixture, "checkpoint.tmp", partial, sizeof partial);
        else {
            uint8_t *whole;
            size_t size;
            s_read_file (fixture, "checkpoint", &whole, &size);
            s_write_file (fixture, "checkpoint.tmp", whole, size);
            free (whole);
        }
        journal = s_open (fixture);
        assert_string_equal (fixture->replay.checkpoint, "OLD");
        const char *expected[] = {"kept-1", "kept-2"};
        s_assert_records (fixture, 2, expected);
        assert_int_equal (s_file_size (fixture, "checkpoint.tmp"), -1);
        hd_journal_destroy (&journal);
    }
}

//  A failed checkpoint write leaves the old state whole and the journal
//  usable.
static void
test_checkpoint_write_failure (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    assert_int_equal (hd_journal_checkpoint (journal, "OLD", 3), 0);
    s_append (journal, "one");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    s_append (journal, "two"); // pending when the checkpoint is asked for
    hd_journal_set_fail_next_write (journal, EDQUOT);
    //  The pending records' write takes the failure
    assert_int_equal (hd_journal_checkpoint (journal, "NEW-STATE", 9), -1);
    assert_int_equal (errno, EDQUOT);
    //  Now with nothing pending, the checkpoint file write fails
    s_append (journal, "three");
    assert_int_equal (hd_journal_flush (journal, 1), 0);
    hd_journal_set_fail_next_write (journal, ENOSPC);
    assert_int_equal (hd_journal_checkpoint (journal, "NEW-STATE", 9), -1);
    assert_int_equal (errno, ENOSPC);
    assert_int_equal (s_file_size (fixture, "checkpoint.tmp"), -1);
    assert_int_equal (s_file_size (fixture, "checkpoint"), 16 + 3);
    s_append (journal, "four");
    assert_int_equal (hd_journal_flush (journal, 2), 0);
    hd_journal_destroy (&journal);

    journal = s_open (fixture);
    assert_string_equal (fixture->replay.checkpoint, "OLD");
    const char *expected[] = {"one", "three", "four"};
    s_assert_records (fixture, 3, expected);
    hd_journal_destroy (&journal);
}

//  Records on top of a checkpoint we no longer have must not be applied to
//  the empty state silently.
static void
test_missing_checkpoint (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    assert_int_equal (hd_journal_checkpoint (journal, "STATE", 5), 0);
    s_append (journal, "orphan");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    hd_journal_destroy (&journal);
    assert_int_equal (unlink (s_path (fixture, "checkpoint")), 0);

    assert_null (s_open_policy (fixture, HD_FSYNC_NEVER, 0, false));
    assert_non_null (strstr (fixture->error, "newer than the checkpoint"));
    journal = s_open_policy (fixture, HD_FSYNC_NEVER, 0, true);
    assert_non_null (journal);
    assert_int_equal (fixture->replay.checkpoints, 0);
    assert_int_equal (fixture->replay.records, 0);
    hd_journal_destroy (&journal);
    //  Skipping made the directory consistent again
    journal = s_open (fixture);
    assert_int_equal (fixture->replay.records, 0);
    hd_journal_destroy (&journal);
}

static void
test_corrupt_checkpoint (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    assert_int_equal (hd_journal_checkpoint (journal, "STATE", 5), 0);
    s_append (journal, "on-top");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    hd_journal_destroy (&journal);
    s_flip_byte (fixture, "checkpoint", 16 + 2);

    assert_null (s_open_policy (fixture, HD_FSYNC_NEVER, 0, false));
    assert_non_null (strstr (fixture->error, "corrupt checkpoint"));
    assert_int_equal (fixture->replay.checkpoints, 0);
    //  The generation is covered by the checksum too
    s_flip_byte (fixture, "checkpoint", 16 + 2);
    s_flip_byte (fixture, "checkpoint", 8);
    assert_null (s_open_policy (fixture, HD_FSYNC_NEVER, 0, false));
    //  As is a checkpoint cut short
    s_flip_byte (fixture, "checkpoint", 8);
    assert_int_equal (truncate (s_path (fixture, "checkpoint"), 16 + 4), 0);
    assert_null (s_open_policy (fixture, HD_FSYNC_NEVER, 0, false));

    journal = s_open_policy (fixture, HD_FSYNC_NEVER, 0, true);
    assert_non_null (journal);
    assert_false (fixture->recovery.checkpoint_found);
    assert_int_equal (fixture->replay.checkpoints, 0);
    assert_int_equal (fixture->replay.records, 0); // its journal goes with it
    assert_non_null (strstr (fixture->recovery.detail, "Corrupt checkpoint"));
    assert_int_equal (s_file_size (fixture, "checkpoint.corrupt"), 16 + 4);
    s_append (journal, "fresh");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    hd_journal_destroy (&journal);
    //  And a normal open works again afterwards
    journal = s_open (fixture);
    const char *expected[] = {"fresh"};
    s_assert_records (fixture, 1, expected);
    hd_journal_destroy (&journal);
}

//  Cut the journal at random points: every record wholly before the cut
//  comes back, the rest is cut off and reported, and appends continue.
static void
test_torn_tail (void **state)
{
    fixture_t *fixture = *state;
    enum { COUNT = 40 };
    char text[COUNT][64];
    off_t end[COUNT + 1]; // end[i]: file size after i records
    hd_journal_t *journal = s_open (fixture);
    assert_int_equal (hd_journal_checkpoint (journal, "BASE", 4), 0);
    end[0] = s_file_size (fixture, "journal");
    for (int index = 0; index < COUNT; index++) {
        snprintf (text[index], sizeof text[index], "record-%d-%.*s", index, index % 23,
                  "abcdefghijklmnopqrstuvwxyz");
        s_append (journal, text[index]);
        assert_int_equal (hd_journal_flush (journal, index), 0);
        end[index + 1] = s_file_size (fixture, "journal");
    }
    hd_journal_destroy (&journal);
    uint8_t *whole;
    size_t whole_size;
    s_read_file (fixture, "journal", &whole, &whole_size);
    assert_int_equal (whole_size, end[COUNT]);

    srand (20240607);
    for (int round = 0; round < 150; round++) {
        //  Favour cuts near record boundaries, where off-by-ones live
        size_t cut;
        if (round % 3 == 0) {
            int boundary = rand () % (COUNT + 1);
            long nudge = rand () % 17 - 8;
            long at = (long) end[boundary] + nudge;
            cut = at < 8 ? 8 : at > (long) whole_size ? whole_size : (size_t) at;
        } else
            cut = 8 + (size_t) rand () % (whole_size - 8 + 1);
        s_write_file (fixture, "journal", whole, cut);
        int complete = 0;
        while (complete < COUNT && end[complete + 1] <= (off_t) cut)
            complete++;

        journal = s_open (fixture);
        assert_string_equal (fixture->replay.checkpoint, "BASE");
        assert_int_equal (fixture->replay.records, complete);
        for (int index = 0; index < complete; index++)
            assert_string_equal (fixture->replay.record[index], text[index]);
        assert_int_equal (fixture->recovery.truncated_bytes, cut - (size_t) end[complete]);
        assert_int_equal (s_file_size (fixture, "journal"), end[complete]);
        assert_int_equal (hd_journal_bytes (journal), end[complete]);
        s_append (journal, "appended");
        assert_int_equal (hd_journal_flush (journal, 0), 0);
        hd_journal_destroy (&journal);

        journal = s_open (fixture);
        assert_int_equal (fixture->replay.records, complete + 1);
        assert_string_equal (fixture->replay.record[complete], "appended");
        assert_int_equal (fixture->recovery.truncated_bytes, 0);
        hd_journal_destroy (&journal);
    }
    free (whole);
}

static void
test_corrupt_last_record (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    s_append (journal, "first");
    s_append (journal, "second");
    s_append (journal, "third-and-last");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    hd_journal_destroy (&journal);
    off_t size = s_file_size (fixture, "journal");
    off_t last = size - (8 + 14);

    //  A payload byte, then the checksum itself
    for (int round = 0; round < 2; round++) {
        s_flip_byte (fixture, "journal", round == 0 ? size - 3 : last + 5);
        journal = s_open (fixture);
        const char *expected[] = {"first", "second"};
        s_assert_records (fixture, 2, expected);
        assert_int_equal (fixture->recovery.truncated_bytes, 8 + 14);
        assert_non_null (strstr (fixture->recovery.detail, "checksum"));
        assert_int_equal (s_file_size (fixture, "journal"), last);
        s_append (journal, "third-and-last");
        assert_int_equal (hd_journal_flush (journal, 0), 0);
        hd_journal_destroy (&journal);
    }
}

//  Any bad record ends the journal, even with good-looking ones after it:
//  the documented rule for length-prefixed records.
static void
test_corrupt_middle_record_ends_journal (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    s_append (journal, "first");
    s_append (journal, "second");
    s_append (journal, "third");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    hd_journal_destroy (&journal);
    off_t size = s_file_size (fixture, "journal");
    s_flip_byte (fixture, "journal", 8 + 13 + 8 + 1); // inside "second"

    //  skip_corrupt does not change that
    journal = s_open_policy (fixture, HD_FSYNC_NEVER, 0, true);
    assert_non_null (journal);
    const char *expected[] = {"first"};
    s_assert_records (fixture, 1, expected);
    assert_int_equal (fixture->recovery.truncated_bytes, size - (8 + 13));
    assert_int_equal (fixture->recovery.skipped_records, 0);
    assert_int_equal (s_file_size (fixture, "journal"), 8 + 13);
    hd_journal_destroy (&journal);
}

//  Sizes that cannot be: zero (what a zero-filled tail looks like, with a
//  matching crc of 0) and absurdly large ones, which must not be allocated.
static void
test_impossible_sizes (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    s_append (journal, "good");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    hd_journal_destroy (&journal);
    off_t good = s_file_size (fixture, "journal");

    const uint8_t zeros[64] = {0};
    const uint8_t huge[16] = {0xF0, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 'x'};
    for (int round = 0; round < 2; round++) {
        int fd = open (s_path (fixture, "journal"), O_WRONLY | O_APPEND);
        assert_true (fd >= 0);
        if (round == 0)
            assert_int_equal (write (fd, zeros, sizeof zeros), sizeof zeros);
        else
            assert_int_equal (write (fd, huge, sizeof huge), sizeof huge);
        close (fd);
        journal = s_open (fixture);
        const char *expected[] = {"good"};
        s_assert_records (fixture, 1, expected);
        assert_int_equal (fixture->recovery.truncated_bytes, round == 0 ? 64 : 16);
        assert_int_equal (s_file_size (fixture, "journal"), good);
        hd_journal_destroy (&journal);
    }
}

static void
test_replay_failure_fails_open (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open (fixture);
    assert_int_equal (hd_journal_checkpoint (journal, "STATE", 5), 0);
    s_append (journal, "one");
    s_append (journal, "two");
    s_append (journal, "three");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    hd_journal_destroy (&journal);
    off_t size = s_file_size (fixture, "journal");

    s_replay_reset (&fixture->replay);
    fixture->replay.fail_at = 1;
    journal =
        hd_journal_open (fixture->directory, HD_FSYNC_NEVER, 0, false, s_collect, &fixture->replay,
                         &fixture->recovery, fixture->error, sizeof fixture->error);
    assert_null (journal);
    assert_int_equal (fixture->replay.records, 1);
    assert_non_null (strstr (fixture->error, "record 2"));
    //  A refused replay is not corruption: nothing was cut
    assert_int_equal (s_file_size (fixture, "journal"), size);

    s_replay_reset (&fixture->replay);
    fixture->replay.fail_at = -2;
    journal =
        hd_journal_open (fixture->directory, HD_FSYNC_NEVER, 0, false, s_collect, &fixture->replay,
                         &fixture->recovery, fixture->error, sizeof fixture->error);
    assert_null (journal);
    assert_non_null (strstr (fixture->error, "checkpoint"));
    assert_int_equal (fixture->replay.records, 0);

    journal = s_open (fixture);
    assert_int_equal (fixture->replay.records, 3);
    hd_journal_destroy (&journal);
}

static void
test_flush_failure_rolls_back (void **state)
{
    fixture_t *fixture = *state;
    hd_journal_t *journal = s_open_policy (fixture, HD_FSYNC_ALWAYS, 0, false);
    assert_non_null (journal);
    s_append (journal, "kept");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    off_t good = s_file_size (fixture, "journal");
    uint64_t syncs = hd_journal_syncs (journal);

    s_append (journal, "lost-1 with some length to it");
    s_append (journal, "lost-2 with some length to it");
    hd_journal_set_fail_next_write (journal, ENOSPC);
    errno = 0;
    assert_int_equal (hd_journal_flush (journal, 1), -1);
    assert_int_equal (errno, ENOSPC);
    //  The partial write was cut off and the buffered records dropped
    assert_int_equal (s_file_size (fixture, "journal"), good);
    assert_int_equal (hd_journal_bytes (journal), good);
    assert_int_equal (hd_journal_syncs (journal), syncs);
    assert_int_equal (hd_journal_flush (journal, 2), 0);
    assert_int_equal (s_file_size (fixture, "journal"), good);

    s_append (journal, "after");
    assert_int_equal (hd_journal_flush (journal, 3), 0);
    hd_journal_destroy (&journal);
    journal = s_open (fixture);
    const char *expected[] = {"kept", "after"};
    s_assert_records (fixture, 2, expected);
    assert_int_equal (fixture->recovery.truncated_bytes, 0);
    hd_journal_destroy (&journal);
}

static void
test_sync_next (void **state)
{
    fixture_t *fixture = *state;
    //  Interval of an hour: only the first flush syncs by itself
    hd_journal_t *journal = s_open_policy (fixture, HD_FSYNC_INTERVAL, 3600000, false);
    assert_non_null (journal);
    s_append (journal, "a");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    assert_int_equal (hd_journal_syncs (journal), 1);
    s_append (journal, "b");
    assert_int_equal (hd_journal_flush (journal, 10), 0);
    assert_int_equal (hd_journal_syncs (journal), 1);
    //  Asked for: the next flush syncs at once, then the interval rules again
    hd_journal_sync_next (journal);
    s_append (journal, "c");
    assert_int_equal (hd_journal_flush (journal, 20), 0);
    assert_int_equal (hd_journal_syncs (journal), 2);
    s_append (journal, "d");
    assert_int_equal (hd_journal_flush (journal, 30), 0);
    assert_int_equal (hd_journal_syncs (journal), 2);
    hd_journal_destroy (&journal);
    //  Never stays never
    journal = s_open_policy (fixture, HD_FSYNC_NEVER, 0, false);
    hd_journal_sync_next (journal);
    s_append (journal, "e");
    assert_int_equal (hd_journal_flush (journal, 0), 0);
    assert_int_equal (hd_journal_syncs (journal), 0);
    hd_journal_destroy (&journal);
}

static void
test_fsync_policies (void **state)
{
    fixture_t *fixture = *state;
    //  Always: each flush that wrote, and only those
    hd_journal_t *journal = s_open_policy (fixture, HD_FSYNC_ALWAYS, 0, false);
    assert_non_null (journal);
    assert_int_equal (hd_journal_syncs (journal), 0);
    for (int index = 0; index < 3; index++) {
        s_append (journal, "x");
        assert_int_equal (hd_journal_flush (journal, index), 0);
        assert_int_equal (hd_journal_syncs (journal), index + 1);
    }
    assert_int_equal (hd_journal_flush (journal, 10), 0);
    assert_int_equal (hd_journal_syncs (journal), 3);
    hd_journal_destroy (&journal);

    //  Never: not even after many flushes and a checkpoint
    journal = s_open_policy (fixture, HD_FSYNC_NEVER, 0, false);
    assert_non_null (journal);
    for (int index = 0; index < 5; index++) {
        s_append (journal, "y");
        assert_int_equal (hd_journal_flush (journal, index * 100000), 0);
    }
    assert_int_equal (hd_journal_checkpoint (journal, "S", 1), 0);
    s_append (journal, "y");
    assert_int_equal (hd_journal_flush (journal, 1000000), 0);
    assert_int_equal (hd_journal_syncs (journal), 0);
    hd_journal_destroy (&journal);

    //  Interval: the first flush that wrote, then once the interval passed
    //  since the last sync, even if that flush has nothing new to write
    journal = s_open_policy (fixture, HD_FSYNC_INTERVAL, 100, false);
    assert_non_null (journal);
    s_append (journal, "z");
    assert_int_equal (hd_journal_flush (journal, 1000), 0);
    assert_int_equal (hd_journal_syncs (journal), 1);
    s_append (journal, "z");
    assert_int_equal (hd_journal_flush (journal, 1050), 0);
    assert_int_equal (hd_journal_syncs (journal), 1);
    assert_int_equal (hd_journal_flush (journal, 1099), 0);
    assert_int_equal (hd_journal_syncs (journal), 1);
    assert_int_equal (hd_journal_flush (journal, 1100), 0); // nothing new, sync due
    assert_int_equal (hd_journal_syncs (journal), 2);
    assert_int_equal (hd_journal_flush (journal, 5000), 0); // nothing unsynced
    assert_int_equal (hd_journal_syncs (journal), 2);
    s_append (journal, "z");
    assert_int_equal (hd_journal_flush (journal, 5000), 0);
    assert_int_equal (hd_journal_syncs (journal), 3);
    hd_journal_destroy (&journal);
}

static void
test_open_errors (void **state)
{
    fixture_t *fixture = *state;
    //  The directory is created if missing, nested too
    char nested[128];
    snprintf (nested, sizeof nested, "%s/a/b", fixture->directory);
    hd_journal_t *journal =
        hd_journal_open (nested, HD_FSYNC_NEVER, 0, false, s_collect, &fixture->replay, NULL,
                         fixture->error, sizeof fixture->error);
    assert_non_null (journal);
    hd_journal_destroy (&journal);
    hd_journal_destroy (&journal); // harmless on NULL
    char path[160];
    snprintf (path, sizeof path, "%s/journal", nested);
    assert_int_equal (unlink (path), 0);
    assert_int_equal (rmdir (nested), 0);
    snprintf (path, sizeof path, "%s/a", fixture->directory);
    assert_int_equal (rmdir (path), 0);

    //  A file where the directory should be
    s_write_file (fixture, "plain", (const uint8_t *) "x", 1);
    snprintf (path, sizeof path, "%s/plain", fixture->directory);
    journal = hd_journal_open (path, HD_FSYNC_NEVER, 0, false, s_collect, &fixture->replay,
                               &fixture->recovery, fixture->error, sizeof fixture->error);
    assert_null (journal);
    assert_true (strlen (fixture->error) > 0);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown (test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_binary_and_large_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_many_records_across_reads, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_checkpoint_then_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_before_journal_restart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_during_journal_restart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_crash_before_rename, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_checkpoint_write_failure, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_missing_checkpoint, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_corrupt_checkpoint, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_torn_tail, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_corrupt_last_record, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_corrupt_middle_record_ends_journal, s_setup,
                                         s_teardown),
        cmocka_unit_test_setup_teardown (test_impossible_sizes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_replay_failure_fails_open, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_flush_failure_rolls_back, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_sync_next, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_fsync_policies, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_open_errors, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
