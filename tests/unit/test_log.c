/*  Unit tests for broker/log: the durable segmented event log. Each test
    works in its own mkdtemp directory and removes it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "bytes.h"
#include "crc32c.h"
#include "log.h"

#define S_HEAD  16 // segment head
#define S_FIXED 34 // record fields before the type bytes

//  --------------------------------------------------------------------------
//  Directories and files

static char *
s_tempdir (void)
{
    char template[] = "/tmp/hd_test_log.XXXXXX";
    assert_non_null (mkdtemp (template));
    char *path = strdup (template);
    assert_non_null (path);
    return path;
}

//  Removes a directory tree (the tests make at most a few levels).
static void
s_remove_tree (const char *path)
{
    DIR *directory = opendir (path);
    if (!directory)
        return;
    struct dirent *entry;
    while ((entry = readdir (directory))) {
        if (!strcmp (entry->d_name, ".") || !strcmp (entry->d_name, ".."))
            continue;
        char child[512];
        assert_true (snprintf (child, sizeof child, "%s/%s", path, entry->d_name) <
                     (int) sizeof child);
        struct stat status;
        if (lstat (child, &status) == 0 && S_ISDIR (status.st_mode))
            s_remove_tree (child);
        else
            unlink (child);
    }
    closedir (directory);
    rmdir (path);
}

//  A segment file's name: 20 digits of first seq, then ".seg".
static bool
s_is_segment_name (const char *name)
{
    return strlen (name) == 24 && strcmp (name + 20, ".seg") == 0;
}

typedef struct {
    char name[32];
    uint64_t first_seq;
    uint8_t *data;
    size_t size;
} s_file_t;

static int
s_compare_files (const void *left, const void *right)
{
    const s_file_t *a = left, *b = right;
    return a->first_seq < b->first_seq ? -1 : a->first_seq > b->first_seq;
}

//  Reads every segment file of a log directory, sorted by first seq.
static size_t
s_load (const char *dir, s_file_t *files, size_t max)
{
    DIR *directory = opendir (dir);
    assert_non_null (directory);
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir (directory))) {
        if (!s_is_segment_name (entry->d_name))
            continue;
        assert_true (count < max);
        s_file_t *file = &files[count++];
        memcpy (file->name, entry->d_name, 25); // 24 characters (checked above) and NUL
        file->first_seq = strtoull (entry->d_name, NULL, 10);
        char path[512];
        assert_true (snprintf (path, sizeof path, "%s/%s", dir, entry->d_name) < (int) sizeof path);
        int fd = open (path, O_RDONLY);
        assert_true (fd >= 0);
        struct stat status;
        assert_int_equal (fstat (fd, &status), 0);
        file->size = (size_t) status.st_size;
        file->data = malloc (file->size + 1);
        assert_non_null (file->data);
        assert_int_equal (pread (fd, file->data, file->size, 0), (ssize_t) file->size);
        close (fd);
    }
    closedir (directory);
    qsort (files, count, sizeof *files, s_compare_files);
    return count;
}

static void
s_free_files (s_file_t *files, size_t count)
{
    for (size_t index = 0; index < count; index++)
        free (files[index].data);
}

static size_t
s_count_segments (const char *dir)
{
    s_file_t files[256];
    size_t count = s_load (dir, files, 256);
    s_free_files (files, count);
    return count;
}

//  The first seq of the newest segment file.
static uint64_t
s_load_last_first_seq (const char *dir)
{
    s_file_t files[256];
    size_t count = s_load (dir, files, 256);
    assert_true (count > 0);
    uint64_t first_seq = files[count - 1].first_seq;
    s_free_files (files, count);
    return first_seq;
}

//  Writes files as a fresh log directory (replacing what is there).
static void
s_store (const char *dir, s_file_t *files, size_t count)
{
    s_remove_tree (dir);
    assert_int_equal (mkdir (dir, 0755), 0);
    for (size_t index = 0; index < count; index++) {
        char path[512];
        assert_true (snprintf (path, sizeof path, "%s/%s", dir, files[index].name) <
                     (int) sizeof path);
        int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        assert_true (fd >= 0);
        assert_int_equal (write (fd, files[index].data, files[index].size),
                          (ssize_t) files[index].size);
        close (fd);
    }
}

static uint64_t
s_file_size (const char *dir, uint64_t first_seq)
{
    char path[512];
    assert_true (snprintf (path, sizeof path, "%s/%020" PRIu64 ".seg", dir, first_seq) <
                 (int) sizeof path);
    struct stat status;
    if (stat (path, &status) != 0)
        return UINT64_MAX;
    return (uint64_t) status.st_size;
}

static void
s_poke (const char *dir, uint64_t first_seq, uint64_t offset, uint8_t mask)
{
    char path[512];
    assert_true (snprintf (path, sizeof path, "%s/%020" PRIu64 ".seg", dir, first_seq) <
                 (int) sizeof path);
    int fd = open (path, O_RDWR);
    assert_true (fd >= 0);
    uint8_t byte;
    assert_int_equal (pread (fd, &byte, 1, (off_t) offset), 1);
    byte ^= mask;
    assert_int_equal (pwrite (fd, &byte, 1, (off_t) offset), 1);
    close (fd);
}

//  Record start offsets in a segment file image, parsed independently of
//  the log (the format is the contract). Returns the count.
static size_t
s_record_offsets (const s_file_t *file, uint64_t *offsets, size_t max)
{
    size_t count = 0;
    uint64_t offset = S_HEAD;
    while (offset + 4 <= file->size) {
        uint32_t body;
        memcpy (&body, file->data + offset, 4);
        if (offset + 4 + body > file->size)
            break;
        assert_true (count < max);
        offsets[count++] = offset;
        offset += 4 + body;
    }
    offsets[count] = offset; // end of the last whole record
    return count;
}

//  --------------------------------------------------------------------------
//  Deterministic records: content, type, key and time all follow from seq

typedef struct {
    char envelope[64];
    size_t envelope_size;
    char payload[256];
    size_t payload_size;
    char type[16];
    size_t type_size;
    char key[16];
    uint64_t recorded_us;
} s_content_t;

static void
s_content (uint64_t seq, s_content_t *content)
{
    content->envelope_size = 8 + seq % 17;
    for (size_t index = 0; index < content->envelope_size; index++)
        content->envelope[index] = (char) ('a' + (seq + index) % 26);
    content->payload_size = (seq * 7) % 61; // empty now and then
    for (size_t index = 0; index < content->payload_size; index++)
        content->payload[index] = (char) (seq * 31 + index);
    content->type_size =
        (size_t) snprintf (content->type, sizeof content->type, "type.%d", (int) (seq % 3));
    snprintf (content->key, sizeof content->key, "key-%d", (int) (seq % 7));
    content->recorded_us = 1000 * seq;
}

static uint64_t
s_append_cached (hd_log_t *log, uint64_t seq, size_t payload_size, bool cache)
{
    s_content_t content;
    s_content (seq, &content);
    zmq_msg_t envelope, payload;
    assert_int_equal (zmq_msg_init_size (&envelope, content.envelope_size), 0);
    memcpy (zmq_msg_data (&envelope), content.envelope, content.envelope_size);
    assert_int_equal (zmq_msg_init_size (&payload, payload_size), 0);
    for (size_t index = 0; index < payload_size; index++)
        ((char *) zmq_msg_data (&payload))[index] = (char) (seq * 31 + index);
    hd_record_t record = hd_record_of (&envelope, &payload);
    uint64_t got =
        hd_log_append (log, content.recorded_us, content.type, content.type_size,
                       hd_log_key_hash (content.key, strlen (content.key)), &record, cache);
    //  Not consumed: the caller still owns its frames
    assert_int_equal (zmq_msg_size (&envelope), content.envelope_size);
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
    return got;
}

static uint64_t
s_append_sized (hd_log_t *log, uint64_t seq, size_t payload_size)
{
    return s_append_cached (log, seq, payload_size, true);
}

static uint64_t
s_append (hd_log_t *log, uint64_t seq)
{
    s_content_t content;
    s_content (seq, &content);
    return s_append_sized (log, seq, content.payload_size);
}

static void
s_append_range (hd_log_t *log, uint64_t from, uint64_t to)
{
    for (uint64_t seq = from; seq <= to; seq++)
        assert_int_equal (s_append (log, seq), seq);
}

static void
s_check_sized (hd_log_t *log, uint64_t seq, size_t payload_size)
{
    s_content_t content;
    s_content (seq, &content);
    zmq_msg_t envelope, payload;
    assert_int_equal (hd_log_read (log, seq, &envelope, &payload), 0);
    assert_int_equal (zmq_msg_size (&envelope), content.envelope_size);
    assert_memory_equal (zmq_msg_data (&envelope), content.envelope, content.envelope_size);
    assert_int_equal (zmq_msg_size (&payload), payload_size);
    for (size_t index = 0; index < payload_size; index++)
        assert_int_equal (((uint8_t *) zmq_msg_data (&payload))[index],
                          (uint8_t) (seq * 31 + index));
    //  Where the cache has it, a peek shows the same bytes
    hd_log_view_t view;
    if (hd_log_peek (log, seq, &view)) {
        assert_int_equal (view.envelope_size, zmq_msg_size (&envelope));
        assert_memory_equal (view.envelope, zmq_msg_data (&envelope), view.envelope_size);
        assert_int_equal (view.payload_size, payload_size);
        if (payload_size)
            assert_memory_equal (view.payload, zmq_msg_data (&payload), payload_size);
    }
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
    uint32_t type_id, key_hash;
    assert_true (hd_log_meta (log, seq, &type_id, &key_hash));
    assert_string_equal (hd_log_type_name (log, type_id), content.type);
    assert_int_equal (key_hash, hd_log_key_hash (content.key, strlen (content.key)));
}

static void
s_check (hd_log_t *log, uint64_t seq)
{
    s_content_t content;
    s_content (seq, &content);
    s_check_sized (log, seq, content.payload_size);
}

static void
s_check_missing (hd_log_t *log, uint64_t seq)
{
    zmq_msg_t envelope, payload;
    errno = 0;
    assert_int_equal (hd_log_read (log, seq, &envelope, &payload), -1);
    assert_int_equal (errno, ENOENT);
    assert_false (hd_log_meta (log, seq, NULL, NULL));
    //  Nor in the cache: a rolled-back or retained record must leave it
    hd_log_view_t view;
    assert_false (hd_log_peek (log, seq, &view));
}

static size_t
s_record_size (uint64_t seq)
{
    s_content_t content;
    s_content (seq, &content);
    return S_FIXED + content.type_size + content.envelope_size + content.payload_size;
}

static hd_log_config_t
s_config (const char *dir, size_t segment_size, size_t cache_bytes)
{
    hd_log_config_t config;
    hd_log_config_defaults (&config);
    config.directory = dir;
    config.segment_size = segment_size;
    config.cache_bytes = cache_bytes;
    config.fsync = HD_FSYNC_NEVER; // fast; the policy tests use the others
    return config;
}

static hd_log_t *
s_open (const hd_log_config_t *config, hd_log_recovery_t *recovery)
{
    char error[512] = "";
    hd_log_t *log = hd_log_open (config, recovery, error, sizeof error);
    if (!log)
        fail_msg ("open failed: %s", error);
    return log;
}

//  --------------------------------------------------------------------------

static void
test_key_hash (void **state)
{
    assert_int_equal (hd_log_key_hash ("", 0), 0);
    assert_int_equal (hd_log_key_hash ("abc", 0), 0);
    assert_int_not_equal (hd_log_key_hash ("a", 1), 0);
    assert_int_equal (hd_log_key_hash ("order-17", 8), hd_log_key_hash ("order-17", 8));
    assert_int_not_equal (hd_log_key_hash ("order-17", 8), hd_log_key_hash ("order-18", 8));
    //  Bytes, not strings: an embedded NUL counts
    assert_int_not_equal (hd_log_key_hash ("a\0b", 3), hd_log_key_hash ("a\0c", 3));
    //  Spread: low and high bits both even over 64 buckets, few collisions
    enum { KEYS = 64000, BUCKETS = 64 };
    static uint32_t hashes[KEYS];
    int low[BUCKETS] = {0}, high[BUCKETS] = {0};
    for (int index = 0; index < KEYS; index++) {
        char key[32];
        int size = snprintf (key, sizeof key, "customer-%d", index);
        hashes[index] = hd_log_key_hash (key, (size_t) size);
        assert_int_not_equal (hashes[index], 0);
        low[hashes[index] % BUCKETS]++;
        high[hashes[index] >> 26]++;
    }
    for (int bucket = 0; bucket < BUCKETS; bucket++) {
        assert_in_range (low[bucket], 800, 1200);
        assert_in_range (high[bucket], 800, 1200);
    }
    size_t same = 0;
    for (int index = 1; index < KEYS; index++)
        same += hashes[index] == hashes[index - 1];
    assert_true (same < 3);
}

static void
test_round_trip_cache (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 1 << 20, 1 << 20);
    hd_log_recovery_t recovery;
    hd_log_t *log = s_open (&config, &recovery);
    assert_int_equal (recovery.records, 0);
    assert_int_equal (recovery.segments, 0);
    assert_int_equal (hd_log_first_seq (log), 1);
    assert_int_equal (hd_log_next_seq (log), 1);
    assert_int_equal (hd_log_bytes (log), 0);
    s_check_missing (log, 1);
    s_check_missing (log, 0);

    s_append_range (log, 1, 100);
    assert_int_equal (hd_log_unflushed (log), 100);
    assert_int_equal (hd_log_next_seq (log), 101);
    uint64_t bytes = S_HEAD;
    for (uint64_t seq = 1; seq <= 100; seq++)
        bytes += s_record_size (seq);
    assert_int_equal (hd_log_bytes (log), bytes);
    //  Nothing reaches the disk before a flush
    assert_int_equal (s_count_segments (dir), 0);
    for (uint64_t seq = 1; seq <= 100; seq++)
        s_check (log, seq);
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_int_equal (hd_log_unflushed (log), 0);
    assert_int_equal (s_file_size (dir, 1), bytes);
    for (uint64_t seq = 1; seq <= 100; seq++)
        s_check (log, seq);
    s_check_missing (log, 101);

    //  Cached frames share the buffer with what was appended: a read gives
    //  the same bytes however often
    s_check (log, 50);
    s_check (log, 50);
    hd_log_view_t view;
    for (uint64_t seq = 1; seq <= 100; seq++)
        assert_true (hd_log_peek (log, seq, &view));
    assert_false (hd_log_peek (log, 101, &view));
    assert_false (hd_log_peek (log, 0, &view));
    hd_log_destroy (&log);
    assert_null (log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_round_trip_disk (void **state)
{
    char *dir = s_tempdir ();
    //  No cache: reads come from the write buffer before the flush, from
    //  the file after
    hd_log_config_t config = s_config (dir, 4096, 0);
    hd_log_t *log = s_open (&config, NULL);
    s_append_range (log, 1, 300);
    hd_log_view_t view;
    assert_false (hd_log_peek (log, 300, &view));
    for (uint64_t seq = 1; seq <= 300; seq++)
        s_check (log, seq);
    assert_int_equal (hd_log_flush (log, 0), 0);
    for (uint64_t seq = 300; seq >= 1; seq--)
        s_check (log, seq);
    //  Half flushed, half buffered, in a segment that spans both
    s_append_range (log, 301, 320);
    for (uint64_t seq = 290; seq <= 320; seq++)
        s_check (log, seq);
    assert_int_equal (hd_log_flush (log, 0), 0);

    //  A small cache: recent reads from it, older ones from disk
    hd_log_destroy (&log);
    config.cache_bytes = 2000;
    log = s_open (&config, NULL);
    s_append_range (log, 321, 400);
    assert_int_equal (hd_log_flush (log, 0), 0);
    for (uint64_t seq = 1; seq <= 400; seq++)
        s_check (log, seq);
    assert_true (hd_log_peek (log, 400, &view));
    assert_false (hd_log_peek (log, 321, &view)); // pushed out of 2000 bytes
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

//  Records appended without caching (events no pool takes) are read from
//  the write buffer or the disk; the cached ones around them still peek,
//  and the places they hold in the cache cost no frames
static void
test_uncached_records (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 4096, 1 << 16);
    hd_log_t *log = s_open (&config, NULL);
    s_content_t content;
    for (uint64_t seq = 1; seq <= 40; seq++) {
        s_content (seq, &content);
        bool cache = (seq > 10 && seq <= 20) || seq > 30;
        assert_int_equal (s_append_cached (log, seq, content.payload_size, cache), seq);
    }
    for (int flushed = 0; flushed < 2; flushed++) {
        hd_log_view_t view;
        for (uint64_t seq = 1; seq <= 40; seq++) {
            bool cached = (seq > 10 && seq <= 20) || seq > 30;
            assert_int_equal (hd_log_peek (log, seq, &view), cached);
            s_check (log, seq);
        }
        assert_int_equal (hd_log_flush (log, 0), 0);
    }
    hd_log_destroy (&log);

    //  Records not kept while the cache is empty take no place in it: the
    //  first kept one starts it
    config.cache_bytes = 2000;
    log = s_open (&config, NULL);
    uint64_t first = hd_log_next_seq (log);
    for (uint64_t seq = first; seq < first + 50; seq++) {
        s_content (seq, &content);
        assert_int_equal (s_append_cached (log, seq, content.payload_size, seq == first + 49), seq);
    }
    hd_log_view_t view;
    assert_true (hd_log_peek (log, first + 49, &view));
    assert_false (hd_log_peek (log, first + 48, &view));
    for (uint64_t seq = 1; seq < first + 50; seq++)
        s_check (log, seq);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_append_validation (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 4096, 1 << 16);
    hd_log_t *log = s_open (&config, NULL);
    zmq_msg_t envelope, payload;
    zmq_msg_init (&envelope);
    zmq_msg_init (&payload);
    hd_record_t record = hd_record_of (&envelope, &payload);
    char type[256];
    memset (type, 't', sizeof type);
    errno = 0;
    assert_int_equal (hd_log_append (log, 1, type, 0, 0, &record, true), 0);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_int_equal (hd_log_append (log, 1, type, 256, 0, &record, true), 0);
    assert_int_equal (errno, EINVAL);
    errno = 0;
    assert_int_equal (hd_log_append (log, 1, NULL, 3, 0, &record, true), 0);
    assert_int_equal (errno, EINVAL);
    assert_int_equal (hd_log_next_seq (log), 1);
    //  255 bytes of type and empty frames are fine
    assert_int_equal (hd_log_append (log, 1, type, 255, 0, &record, true), 1);
    assert_int_equal (hd_log_flush (log, 0), 0);
    hd_log_destroy (&log);
    log = s_open (&config, NULL);
    assert_int_equal (hd_log_type_count (log), 1);
    assert_int_equal (strlen (hd_log_type_name (log, 0)), 255);
    zmq_msg_t got_envelope, got_payload;
    assert_int_equal (hd_log_read (log, 1, &got_envelope, &got_payload), 0);
    assert_int_equal (zmq_msg_size (&got_envelope), 0);
    assert_int_equal (zmq_msg_size (&got_payload), 0);
    zmq_msg_close (&got_envelope);
    zmq_msg_close (&got_payload);
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_reopen (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 4096, 1 << 20);
    hd_log_t *log = s_open (&config, NULL);
    for (uint64_t from = 1; from <= 500; from += 50) {
        s_append_range (log, from, from + 49);
        assert_int_equal (hd_log_flush (log, 0), 0);
    }
    s_append_range (log, 501, 510); // destroy flushes these
    uint64_t bytes = hd_log_bytes (log);
    hd_log_destroy (&log);

    s_file_t files[256];
    size_t count = s_load (dir, files, 256);
    assert_true (count > 10);
    uint64_t on_disk = 0;
    for (size_t index = 0; index < count; index++)
        on_disk += files[index].size;
    assert_int_equal (on_disk, bytes);
    s_free_files (files, count);

    hd_log_recovery_t recovery;
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.records, 510);
    assert_int_equal (recovery.segments, count);
    assert_int_equal (recovery.truncated_bytes, 0);
    assert_int_equal (recovery.skipped_records, 0);
    assert_true (recovery.elapsed_us >= 0);
    assert_non_null (strstr (recovery.detail, "510 records"));
    assert_int_equal (hd_log_first_seq (log), 1);
    assert_int_equal (hd_log_next_seq (log), 511);
    assert_int_equal (hd_log_bytes (log), bytes);
    assert_int_equal (hd_log_type_count (log), 3);
    for (uint64_t seq = 1; seq <= 510; seq++)
        s_check (log, seq);
    //  Appends go on from there, into the last segment
    s_append_range (log, 511, 520);
    assert_int_equal (hd_log_flush (log, 0), 0);
    hd_log_destroy (&log);
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.records, 520);
    for (uint64_t seq = 1; seq <= 520; seq++)
        s_check (log, seq);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_directory_created (void **state)
{
    char *dir = s_tempdir ();
    char nested[512];
    assert_true (snprintf (nested, sizeof nested, "%s/a/b/data", dir) < (int) sizeof nested);
    hd_log_config_t config = s_config (nested, 4096, 0);
    hd_log_t *log = s_open (&config, NULL);
    s_append_range (log, 1, 3);
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_int_equal (s_file_size (nested, 1),
                      S_HEAD + s_record_size (1) + s_record_size (2) + s_record_size (3));
    hd_log_destroy (&log);

    //  One writer at a time
    log = s_open (&config, NULL);
    char error[256] = "";
    assert_null (hd_log_open (&config, NULL, error, sizeof error));
    assert_non_null (strstr (error, "in use"));
    hd_log_destroy (&log);
    log = s_open (&config, NULL);
    hd_log_destroy (&log);

    //  A file where the directory should be is an error, not a crash
    char file_path[512];
    assert_true (snprintf (file_path, sizeof file_path, "%s/file", dir) < (int) sizeof file_path);
    int fd = open (file_path, O_WRONLY | O_CREAT, 0644);
    close (fd);
    config.directory = file_path;
    assert_null (hd_log_open (&config, NULL, error, sizeof error));
    assert_non_null (strstr (error, file_path));
    s_remove_tree (dir);
    free (dir);
}

static void
test_segment_rollover (void **state)
{
    char *dir = s_tempdir ();
    const size_t segment_size = 1024;
    hd_log_config_t config = s_config (dir, segment_size, 0);
    hd_log_t *log = s_open (&config, NULL);
    s_append_range (log, 1, 200);
    //  A record larger than a segment gets one of its own
    assert_int_equal (s_append_sized (log, 201, 3000), 201);
    s_append_range (log, 202, 210);
    assert_int_equal (hd_log_flush (log, 0), 0);

    s_file_t files[256];
    size_t count = s_load (dir, files, 256);
    assert_true (count > 10);
    uint64_t expected_seq = 1;
    for (size_t index = 0; index < count; index++) {
        s_file_t *file = &files[index];
        assert_int_equal (file->first_seq, expected_seq);
        assert_memory_equal (file->data, "HDLOG001", 8);
        uint64_t head_seq;
        memcpy (&head_seq, file->data + 8, 8);
        assert_int_equal (head_seq, file->first_seq);
        uint64_t offsets[64];
        size_t records = s_record_offsets (file, offsets, 63);
        assert_true (records >= 1);
        assert_int_equal (offsets[records], file->size); // whole records only
        for (size_t record = 0; record < records; record++) {
            uint64_t seq;
            memcpy (&seq, file->data + offsets[record] + 8, 8);
            assert_int_equal (seq, expected_seq + record);
            uint32_t crc;
            memcpy (&crc, file->data + offsets[record] + 4, 4);
            assert_int_equal (crc, hd_crc32c (0, file->data + offsets[record] + 8,
                                              offsets[record + 1] - offsets[record] - 8));
        }
        if (expected_seq == 201) {
            assert_int_equal (records, 1);
            assert_true (file->size > segment_size);
        } else {
            assert_true (file->size <= segment_size);
            //  It was full: the next record would not have fitted
            if (index + 1 < count && files[index + 1].first_seq != 201)
                assert_true (file->size + s_record_size (expected_seq + records) > segment_size);
        }
        expected_seq += records;
    }
    assert_int_equal (expected_seq, 211);
    s_free_files (files, count);
    for (uint64_t seq = 1; seq <= 210; seq++)
        if (seq == 201)
            s_check_sized (log, seq, 3000);
        else
            s_check (log, seq);
    hd_log_destroy (&log);

    hd_log_recovery_t recovery;
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.segments, count);
    assert_int_equal (recovery.records, 210);
    s_check_sized (log, 201, 3000);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_huge_record (void **state)
{
    //  Bigger than recovery's read chunk too (4 MiB)
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 1 << 20, 0);
    hd_log_t *log = s_open (&config, NULL);
    s_append_range (log, 1, 5);
    size_t huge = 5u << 20;
    assert_int_equal (s_append_sized (log, 6, huge), 6);
    s_append_range (log, 7, 9);
    assert_int_equal (hd_log_flush (log, 0), 0);
    hd_log_destroy (&log);
    hd_log_recovery_t recovery;
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.records, 9);
    assert_int_equal (recovery.segments, 3);
    assert_int_equal (recovery.truncated_bytes, 0);
    s_check_sized (log, 6, huge);
    s_check (log, 9);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

//  What recovery reports as torn when the file's damaged tail is data[from
//  .. to): up to its last byte that is not zero. Zeros after it could as
//  well have been written ahead (spare.h), and are reported as unused.
static uint64_t
s_torn_bytes (const uint8_t *data, size_t from, size_t to)
{
    while (to > from && data[to - 1] == 0)
        to--;
    return to - from;
}

//  Opens the damaged copy and checks what recovery kept: records
//  1 .. kept, truncated_bytes as given, and that appends go on at kept + 1
//  and survive another reopen.
static void
s_check_recovered (const hd_log_config_t *config, uint64_t kept, uint64_t truncated, bool headless)
{
    hd_log_recovery_t recovery;
    hd_log_t *log = s_open (config, &recovery);
    assert_int_equal (recovery.records, kept);
    assert_int_equal (recovery.truncated_bytes, truncated);
    assert_int_equal (recovery.skipped_records, 0);
    if (truncated)
        assert_non_null (strstr (recovery.detail, headless ? "Removed" : "Truncated"));
    assert_int_equal (hd_log_next_seq (log), kept + 1);
    for (uint64_t seq = 1; seq <= kept; seq++)
        s_check (log, seq);
    s_check_missing (log, kept + 1);
    assert_int_equal (s_append (log, kept + 1), kept + 1);
    assert_int_equal (hd_log_flush (log, 0), 0);
    hd_log_destroy (&log);
    log = s_open (config, &recovery);
    assert_int_equal (recovery.truncated_bytes, 0);
    assert_int_equal (recovery.records, kept + 1);
    s_check (log, kept + 1);
    hd_log_destroy (&log);
}

static void
test_torn_tail (void **state)
{
    char *pristine_dir = s_tempdir ();
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (pristine_dir, 2048, 0);
    hd_log_t *log = s_open (&config, NULL);
    const uint64_t total = 120;
    s_append_range (log, 1, total);
    hd_log_destroy (&log);

    s_file_t files[64];
    size_t count = s_load (pristine_dir, files, 64);
    assert_true (count >= 3);
    s_file_t *last = &files[count - 1];
    uint64_t before_last = last->first_seq - 1; // records in the other segments
    uint64_t offsets[128];
    size_t in_last = s_record_offsets (last, offsets, 127);
    assert_int_equal (before_last + in_last, total);
    uint8_t *original = malloc (last->size);
    memcpy (original, last->data, last->size);
    size_t original_size = last->size;
    config.directory = dir;
    srand (20240611);

    //  Cut the last segment anywhere: in its head (the file goes), inside a
    //  record (the torn record goes), at a record boundary (nothing goes)
    for (int round = 0; round < 150; round++) {
        size_t cut = round < 20 ? (size_t) round : (size_t) rand () % original_size;
        if (round == 20)
            cut = offsets[in_last - 1]; // exactly before the last record
        last->size = cut;
        s_store (dir, files, count);
        uint64_t kept = before_last, truncated = s_torn_bytes (last->data, 0, cut);
        if (cut >= S_HEAD) {
            size_t whole = 0;
            while (whole < in_last && offsets[whole + 1] <= cut)
                whole++;
            kept = before_last + whole;
            truncated = s_torn_bytes (last->data, offsets[whole], cut);
        }
        s_check_recovered (&config, kept, truncated, cut < S_HEAD);
        if (cut < S_HEAD)
            //  The headless file was removed; the new record started a
            //  segment of the same name
            assert_int_equal (s_file_size (dir, last->first_seq),
                              S_HEAD + s_record_size (kept + 1));
    }
    last->size = original_size;

    //  Flip one byte near the end: the record holding it and all after go
    for (int round = 0; round < 100; round++) {
        size_t window = original_size - S_HEAD < 600 ? original_size - S_HEAD : 600;
        size_t at = original_size - 1 - (size_t) rand () % window;
        memcpy (last->data, original, original_size);
        last->data[at] ^= (uint8_t) (1 + rand () % 255);
        s_store (dir, files, count);
        size_t hit = 0;
        while (offsets[hit + 1] <= at)
            hit++;
        s_check_recovered (&config, before_last + hit,
                           s_torn_bytes (last->data, offsets[hit], original_size), false);
    }
    memcpy (last->data, original, original_size);
    free (original);
    s_free_files (files, count);
    s_remove_tree (dir);
    s_remove_tree (pristine_dir);
    free (dir);
    free (pristine_dir);
}

static void
test_headless_files (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 2048, 0);
    //  An empty file from a crash right after creating the first segment
    char path[512];
    assert_true (snprintf (path, sizeof path, "%s/%020d.seg", dir, 1) < (int) sizeof path);
    int fd = open (path, O_WRONLY | O_CREAT, 0644);
    close (fd);
    hd_log_recovery_t recovery;
    hd_log_t *log = s_open (&config, &recovery);
    assert_int_equal (s_count_segments (dir), 0);
    assert_int_equal (hd_log_next_seq (log), 1);
    s_append_range (log, 1, 40);
    hd_log_destroy (&log);
    size_t segments = s_count_segments (dir);

    //  A head of garbage in a new last segment: removed, next seq kept
    assert_true (snprintf (path, sizeof path, "%s/%020d.seg", dir, 41) < (int) sizeof path);
    fd = open (path, O_WRONLY | O_CREAT, 0644);
    assert_int_equal (write (fd, "HDLOGxxxxxxxxxxxxxxxxxxxx", 25), 25);
    close (fd);
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.truncated_bytes, 25);
    assert_int_equal (recovery.segments, segments);
    assert_non_null (strstr (recovery.detail, "00000000000000000041.seg"));
    assert_int_equal (hd_log_next_seq (log), 41);
    s_check (log, 40);
    hd_log_destroy (&log);
    assert_int_equal (s_count_segments (dir), segments);

    //  A last segment whose head names another seq is not a torn creation:
    //  refused, and left alone
    assert_true (snprintf (path, sizeof path, "%s/%020d.seg", dir, 41) < (int) sizeof path);
    fd = open (path, O_WRONLY | O_CREAT, 0644);
    assert_int_equal (write (fd, "HDLOG001\x2a\0\0\0\0\0\0\0", 16), 16);
    close (fd);
    char error[512] = "";
    assert_null (hd_log_open (&config, NULL, error, sizeof error));
    assert_non_null (strstr (error, "00000000000000000041.seg"));
    assert_int_equal (s_file_size (dir, 41), 16);
    assert_int_equal (unlink (path), 0);

    //  Files that are not segments are left alone
    assert_true (snprintf (path, sizeof path, "%s/notes.txt", dir) < (int) sizeof path);
    fd = open (path, O_WRONLY | O_CREAT, 0644);
    close (fd);
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.records, 40);
    hd_log_destroy (&log);
    assert_int_equal (access (path, F_OK), 0);
    s_remove_tree (dir);
    free (dir);
}

//  Builds a log of 200 records in segments of 1 KiB; returns the files.
static size_t
s_build_segments (const char *dir, s_file_t *files, size_t max)
{
    hd_log_config_t config = s_config (dir, 1024, 0);
    hd_log_t *log = s_open (&config, NULL);
    s_append_range (log, 1, 200);
    hd_log_destroy (&log);
    size_t count = s_load (dir, files, max);
    assert_true (count >= 8);
    return count;
}

static void
test_corrupt_middle (void **state)
{
    char *dir = s_tempdir ();
    s_file_t files[64];
    size_t count = s_build_segments (dir, files, 64);
    s_file_t *victim = &files[3];
    uint64_t offsets[64];
    size_t records = s_record_offsets (victim, offsets, 63);
    assert_true (records >= 4);
    //  A flipped payload byte in the third record of the fourth segment
    uint64_t at = offsets[2] + S_FIXED + 9;
    s_poke (dir, victim->first_seq, at, 0x40);
    hd_log_config_t config = s_config (dir, 1024, 0);
    char error[512] = "";
    assert_null (hd_log_open (&config, NULL, error, sizeof error));
    assert_non_null (strstr (error, victim->name));
    char offset_text[32];
    snprintf (offset_text, sizeof offset_text, "offset %" PRIu64, offsets[2]);
    assert_non_null (strstr (error, offset_text));
    assert_non_null (strstr (error, "CRC"));
    //  Refusing changed nothing
    assert_int_equal (s_file_size (dir, victim->first_seq), victim->size);

    config.skip_corrupt = true;
    hd_log_recovery_t recovery;
    hd_log_t *log = s_open (&config, &recovery);
    uint64_t lost_from = victim->first_seq + 2, lost_to = files[4].first_seq - 1;
    assert_int_equal (recovery.skipped_records, lost_to - lost_from + 1);
    assert_int_equal (recovery.skipped_bytes, victim->size - offsets[2]);
    assert_int_equal (recovery.records, 200 - recovery.skipped_records);
    assert_int_equal (recovery.truncated_bytes, 0);
    assert_non_null (strstr (recovery.detail, "Skipped"));
    assert_int_equal (hd_log_next_seq (log), 201);
    for (uint64_t seq = 1; seq <= 200; seq++)
        if (seq >= lost_from && seq <= lost_to)
            s_check_missing (log, seq);
        else
            s_check (log, seq);
    s_append_range (log, 201, 205);
    assert_int_equal (hd_log_flush (log, 0), 0);
    s_check (log, 205);
    //  The last record before the damage still reads from disk
    s_check (log, lost_from - 1);
    hd_log_destroy (&log);
    //  Without skip_corrupt it is still refused: the loss stays visible
    config.skip_corrupt = false;
    assert_null (hd_log_open (&config, NULL, error, sizeof error));
    s_free_files (files, count);
    s_remove_tree (dir);
    free (dir);
}

static void
test_corrupt_middle_head_and_gap (void **state)
{
    char *dir = s_tempdir ();
    s_file_t files[64];
    size_t count = s_build_segments (dir, files, 64);
    hd_log_config_t config = s_config (dir, 1024, 0);
    char error[512] = "";

    //  A damaged head in a middle segment
    s_poke (dir, files[2].first_seq, 3, 0xFF);
    assert_null (hd_log_open (&config, NULL, error, sizeof error));
    assert_non_null (strstr (error, files[2].name));
    assert_non_null (strstr (error, "head"));
    config.skip_corrupt = true;
    hd_log_recovery_t recovery;
    hd_log_t *log = s_open (&config, &recovery);
    assert_int_equal (recovery.skipped_records, files[3].first_seq - files[2].first_seq);
    assert_int_equal (recovery.skipped_bytes, files[2].size);
    s_check_missing (log, files[2].first_seq);
    s_check (log, files[3].first_seq);
    s_check (log, files[2].first_seq - 1);
    //  Time lookups step over the record-less segment
    assert_int_equal (hd_log_seq_at_time (log, 1000 * files[2].first_seq), files[3].first_seq);
    assert_int_equal (hd_log_seq_at_time (log, 1000 * (files[2].first_seq - 1)),
                      files[2].first_seq - 1);
    hd_log_destroy (&log);

    //  A whole segment missing: a gap in the seqs
    s_store (dir, files, count);
    char path[512];
    assert_true (snprintf (path, sizeof path, "%s/%s", dir, files[5].name) < (int) sizeof path);
    assert_int_equal (unlink (path), 0);
    config.skip_corrupt = false;
    assert_null (hd_log_open (&config, NULL, error, sizeof error));
    assert_non_null (strstr (error, files[4].name));
    assert_non_null (strstr (error, "missing"));
    config.skip_corrupt = true;
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.skipped_records, files[6].first_seq - files[5].first_seq);
    assert_int_equal (recovery.skipped_bytes, 0);
    s_check_missing (log, files[5].first_seq);
    s_check (log, files[6].first_seq);
    assert_int_equal (hd_log_next_seq (log), 201);
    hd_log_destroy (&log);

    //  A torn tail in a segment that is not the last is corruption too
    s_store (dir, files, count);
    assert_true (snprintf (path, sizeof path, "%s/%s", dir, files[1].name) < (int) sizeof path);
    assert_int_equal (truncate (path, (off_t) files[1].size - 5), 0);
    config.skip_corrupt = false;
    assert_null (hd_log_open (&config, NULL, error, sizeof error));
    assert_non_null (strstr (error, files[1].name));
    assert_int_equal (s_file_size (dir, files[1].first_seq), files[1].size - 5);
    s_free_files (files, count);
    s_remove_tree (dir);
    free (dir);
}

//  A whole, CRC-valid record with the wrong seq (a stale copy, as a failed
//  cut-back could leave) is damage like any other.
static void
test_stale_record (void **state)
{
    char *dir = s_tempdir ();
    s_file_t files[64];
    size_t count = s_build_segments (dir, files, 64);
    hd_log_config_t config = s_config (dir, 1024, 0);
    uint64_t offsets[64];

    //  At the end of the last segment: cut off
    s_file_t *last = &files[count - 1];
    size_t records = s_record_offsets (last, offsets, 63);
    size_t stale = offsets[records] - offsets[records - 1];
    uint8_t *grown = realloc (last->data, last->size + stale);
    assert_non_null (grown);
    last->data = grown;
    memcpy (last->data + last->size, last->data + offsets[records - 1], stale);
    last->size += stale;
    s_store (dir, files, count);
    hd_log_recovery_t recovery;
    hd_log_t *log = s_open (&config, &recovery);
    assert_int_equal (recovery.truncated_bytes, stale);
    assert_int_equal (recovery.records, 200);
    assert_non_null (strstr (recovery.detail, "seq 200 where 201 was expected"));
    assert_int_equal (hd_log_next_seq (log), 201);
    hd_log_destroy (&log);
    last->size -= stale;

    //  Inside the log: refused
    s_file_t *middle = &files[2];
    records = s_record_offsets (middle, offsets, 63);
    stale = offsets[1] - offsets[0];
    grown = realloc (middle->data, middle->size + stale);
    assert_non_null (grown);
    middle->data = grown;
    memcpy (middle->data + middle->size, middle->data + offsets[0], stale);
    middle->size += stale;
    s_store (dir, files, count);
    char error[512] = "";
    assert_null (hd_log_open (&config, NULL, error, sizeof error));
    assert_non_null (strstr (error, middle->name));
    assert_non_null (strstr (error, "where"));
    s_free_files (files, count);
    s_remove_tree (dir);
    free (dir);
}

static void
test_cold_read_crc (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 4096, 0);
    hd_log_t *log = s_open (&config, NULL);
    s_append_range (log, 1, 5);
    assert_int_equal (hd_log_flush (log, 0), 0);
    //  Damage record 3 under the open log: its read fails with EIO, the
    //  others still read
    uint64_t offset = S_HEAD + s_record_size (1) + s_record_size (2) + S_FIXED + 7;
    s_poke (dir, 1, offset, 0x01);
    zmq_msg_t envelope, payload;
    errno = 0;
    assert_int_equal (hd_log_read (log, 3, &envelope, &payload), -1);
    assert_int_equal (errno, EIO);
    s_check (log, 2);
    s_check (log, 4);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_meta_and_types (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 4096, 1 << 16);
    hd_log_t *log = s_open (&config, NULL);
    const char *types[] = {"order.created", "order.paid", "order.created", "user.signup",
                           "order.paid"};
    const char *keys[] = {"o-1", "o-1", "o-2", "", "o-2"};
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    hd_record_t record = hd_record_of (&frame, &frame);
    for (int index = 0; index < 5; index++)
        assert_int_equal (hd_log_append (log, 10, types[index], strlen (types[index]),
                                         hd_log_key_hash (keys[index], strlen (keys[index])),
                                         &record, true),
                          (uint64_t) index + 1);
    zmq_msg_close (&frame);
    assert_int_equal (hd_log_type_count (log), 3);
    assert_string_equal (hd_log_type_name (log, 0), "order.created");
    assert_string_equal (hd_log_type_name (log, 1), "order.paid");
    assert_string_equal (hd_log_type_name (log, 2), "user.signup");
    assert_string_equal (hd_log_type_name (log, 3), "");
    assert_string_equal (hd_log_type_name (log, UINT32_MAX), "");
    for (int pass = 0; pass < 2; pass++) {
        uint32_t ids[5], hashes[5];
        for (int index = 0; index < 5; index++) {
            assert_true (hd_log_meta (log, (uint64_t) index + 1, &ids[index], &hashes[index]));
            assert_string_equal (hd_log_type_name (log, ids[index]), types[index]);
            assert_int_equal (hashes[index], hd_log_key_hash (keys[index], strlen (keys[index])));
        }
        assert_int_equal (ids[0], ids[2]);
        assert_int_not_equal (ids[0], ids[1]);
        assert_int_equal (hashes[0], hashes[1]);
        assert_int_equal (hashes[3], 0);
        assert_false (hd_log_meta (log, 0, NULL, NULL));
        assert_false (hd_log_meta (log, 6, NULL, NULL));
        //  After a restart the index is rebuilt from the records
        assert_int_equal (hd_log_flush (log, 0), 0);
        hd_log_destroy (&log);
        log = s_open (&config, NULL);
        assert_int_equal (hd_log_type_count (log), 3);
    }
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

//  Times in runs of three equal values, 10 us apart.
static uint64_t
s_time_of (uint64_t seq)
{
    return 5000 + (seq / 3) * 10;
}

static uint64_t
s_append_at (hd_log_t *log, uint64_t recorded_us)
{
    zmq_msg_t frame;
    zmq_msg_init_size (&frame, 20);
    memset (zmq_msg_data (&frame), 'x', 20);
    hd_record_t record = hd_record_of (&frame, &frame);
    uint64_t seq = hd_log_append (log, recorded_us, "t", 1, 0, &record, true);
    zmq_msg_close (&frame);
    return seq;
}

//  Every time from before the first record to after the last, exact
//  record times (sampled or not) included.
static void
s_check_times (hd_log_t *log, uint64_t records)
{
    uint64_t expected = 1;
    for (uint64_t time = 4990; time <= s_time_of (records) + 20; time++) {
        while (expected <= records && s_time_of (expected) < time)
            expected++;
        assert_int_equal (hd_log_seq_at_time (log, time), expected);
    }
}

static void
test_seq_at_time (void **state)
{
    char *dir = s_tempdir ();
    //  ~ 700 records a segment: several time samples (every 256) each
    hd_log_config_t config = s_config (dir, 50000, 0);
    hd_log_t *log = s_open (&config, NULL);
    assert_int_equal (hd_log_seq_at_time (log, 0), 1);
    const uint64_t records = 2000;
    for (uint64_t seq = 1; seq <= records; seq++)
        assert_int_equal (s_append_at (log, s_time_of (seq)), seq);
    s_check_times (log, records); // from the write buffer
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_true (s_count_segments (dir) >= 3);
    s_check_times (log, records); // from the files
    hd_log_destroy (&log);
    log = s_open (&config, NULL);
    s_check_times (log, records); // from the recovered index
    assert_int_equal (hd_log_seq_at_time (log, 0), 1);
    assert_int_equal (hd_log_seq_at_time (log, UINT64_MAX), records + 1);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

//  Log of 300 records (time 1000 * seq) in ~1 KiB segments; the files
//  are returned for their boundaries.
static hd_log_t *
s_retention_log (const char *dir, s_file_t *files, size_t *count)
{
    hd_log_config_t config = s_config (dir, 1024, 1 << 20);
    hd_log_t *log = s_open (&config, NULL);
    s_append_range (log, 1, 300);
    assert_int_equal (hd_log_flush (log, 0), 0);
    *count = s_load (dir, files, 128);
    assert_true (*count >= 10);
    return log;
}

static void
test_retain (void **state)
{
    char *dir = s_tempdir ();
    s_file_t files[128];
    size_t count;

    //  By age, by the last record of each segment
    hd_log_t *log = s_retention_log (dir, files, &count);
    uint64_t now = 1000 * 300 + 5000, cutoff = files[3].first_seq - 1;
    uint64_t max_age = now - 1000 * cutoff - 1; // segments 0..2 are older than this
    uint64_t bytes = hd_log_bytes (log);
    assert_int_equal (hd_log_retain (log, UINT64_MAX, max_age, 0, false, now), cutoff);
    assert_int_equal (hd_log_first_seq (log), files[3].first_seq);
    assert_int_equal (hd_log_bytes (log), bytes - files[0].size - files[1].size - files[2].size);
    assert_int_equal (s_count_segments (dir), count - 3);
    assert_int_equal (s_file_size (dir, 1), UINT64_MAX);
    s_check_missing (log, 1); // the cache had it: gone too
    s_check_missing (log, cutoff);
    s_check (log, cutoff + 1);
    assert_int_equal (hd_log_retain (log, UINT64_MAX, max_age, 0, false, now), 0);
    hd_log_destroy (&log);
    hd_log_recovery_t recovery;
    hd_log_config_t config = s_config (dir, 1024, 0);
    log = s_open (&config, &recovery);
    assert_int_equal (hd_log_first_seq (log), cutoff + 1);
    assert_int_equal (recovery.records, 300 - cutoff);
    hd_log_destroy (&log);
    s_free_files (files, count);
    s_remove_tree (dir);

    //  keep_from_seq protects a segment that still has needed records,
    //  and everything after it; hard overrides
    assert_int_equal (mkdir (dir, 0700), 0);
    log = s_retention_log (dir, files, &count);
    uint64_t keep = files[1].first_seq + 1; // inside the second segment
    assert_int_equal (hd_log_retain (log, keep, 1, 0, false, now), files[1].first_seq - 1);
    assert_int_equal (hd_log_first_seq (log), files[1].first_seq);
    assert_int_equal (hd_log_retain (log, keep, 1, 0, false, now), 0);
    //  A segment whose last seq is just below keep_from_seq may go
    assert_int_equal (hd_log_retain (log, files[2].first_seq, 1, 0, false, now),
                      files[2].first_seq - files[1].first_seq);
    //  Hard: all but the segment being written
    assert_int_equal (hd_log_retain (log, 1, 1, 0, true, now),
                      files[count - 1].first_seq - files[2].first_seq);
    assert_int_equal (s_count_segments (dir), 1);
    assert_int_equal (hd_log_first_seq (log), files[count - 1].first_seq);
    assert_int_equal (hd_log_next_seq (log), 301);
    s_append_range (log, 301, 302);
    assert_int_equal (hd_log_flush (log, 0), 0);
    s_check (log, 302);
    hd_log_destroy (&log);
    s_free_files (files, count);
    s_remove_tree (dir);

    //  By total size, oldest first, until the log fits
    assert_int_equal (mkdir (dir, 0700), 0);
    log = s_retention_log (dir, files, &count);
    bytes = hd_log_bytes (log);
    uint64_t limit = bytes - files[0].size - files[1].size;
    assert_int_equal (hd_log_retain (log, UINT64_MAX, 0, limit + 1, false, now),
                      files[2].first_seq - 1);
    assert_int_equal (hd_log_bytes (log), limit);
    assert_int_equal (hd_log_retain (log, UINT64_MAX, 0, limit, false, now), 0);
    //  Too young and small enough: nothing; no bound at all: nothing
    assert_int_equal (hd_log_retain (log, UINT64_MAX, 1000 * 1000 * 1000, 0, false, now), 0);
    assert_int_equal (hd_log_retain (log, UINT64_MAX, 0, 0, true, now), 0);
    //  Never the segment being written, even hard and over the limit
    assert_int_equal (hd_log_retain (log, UINT64_MAX, 0, 1, true, now),
                      files[count - 1].first_seq - files[2].first_seq);
    assert_int_equal (hd_log_retain (log, UINT64_MAX, 0, 1, true, now), 0);
    assert_int_equal (hd_log_bytes (log), files[count - 1].size);
    hd_log_destroy (&log);
    s_free_files (files, count);
    s_remove_tree (dir);

    //  Unflushed segments are not deleted
    assert_int_equal (mkdir (dir, 0700), 0);
    config = s_config (dir, 1024, 0);
    log = s_open (&config, NULL);
    s_append_range (log, 1, 100);
    assert_int_equal (hd_log_retain (log, UINT64_MAX, 0, 1, true, now), 0);
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_true (hd_log_retain (log, UINT64_MAX, 0, 1, true, now) > 0);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_flush_failure_rollback (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 1024, 1 << 20);
    config.fsync = HD_FSYNC_ALWAYS;
    hd_log_t *log = s_open (&config, NULL);
    s_append_range (log, 1, 5);
    assert_int_equal (hd_log_flush (log, 0), 0);
    uint64_t size = s_file_size (dir, 1), bytes = hd_log_bytes (log);

    //  A write fails half way (a full disk): the appends since the last
    //  flush are undone, in the file and in memory
    s_append_range (log, 6, 7);
    hd_log_set_fail_write (log, ENOSPC, 0);
    errno = 0;
    assert_int_equal (hd_log_flush (log, 0), -1);
    assert_int_equal (errno, ENOSPC);
    assert_int_equal (hd_log_next_seq (log), 6);
    assert_int_equal (hd_log_unflushed (log), 0);
    assert_int_equal (hd_log_bytes (log), bytes);
    assert_int_equal (s_file_size (dir, 1), size);
    s_check_missing (log, 6);
    s_check (log, 5);
    //  The next appends reuse those seqs and flush fine
    s_append_range (log, 6, 8);
    assert_int_equal (hd_log_flush (log, 0), 0);

    //  fdatasync fails (EIO): same
    size = s_file_size (dir, 1);
    bytes = hd_log_bytes (log);
    s_append_range (log, 9, 9);
    hd_log_set_fail_sync (log, EIO, 0);
    errno = 0;
    assert_int_equal (hd_log_flush (log, 0), -1);
    assert_int_equal (errno, EIO);
    assert_int_equal (hd_log_next_seq (log), 9);
    assert_int_equal (s_file_size (dir, 1), size);
    assert_int_equal (hd_log_bytes (log), bytes);

    //  A batch spanning new segments fails in its second write, after the
    //  first segment was written and synced and the second created: the
    //  created files go, the first is cut back
    size_t segments = s_count_segments (dir);
    uint64_t next = hd_log_next_seq (log);
    s_append_range (log, next, next + 19);
    assert_true (hd_log_bytes (log) > 2 * 1024); // at least two new segments
    hd_log_set_fail_write (log, EIO, 1);
    assert_int_equal (hd_log_flush (log, 0), -1);
    assert_int_equal (errno, EIO);
    assert_int_equal (s_count_segments (dir), segments);
    assert_int_equal (s_file_size (dir, 1), size);
    assert_int_equal (hd_log_bytes (log), bytes);
    assert_int_equal (hd_log_next_seq (log), next);
    for (uint64_t seq = next; seq < next + 20; seq++)
        s_check_missing (log, seq);
    //  And the same batch then goes through
    s_append_range (log, next, next + 19);
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_true (s_count_segments (dir) > segments);
    //  A sync failing late in a batch that created segments rolls back too
    uint64_t last_next = hd_log_next_seq (log);
    segments = s_count_segments (dir);
    bytes = hd_log_bytes (log);
    s_append_range (log, last_next, last_next + 19);
    hd_log_set_fail_sync (log, EIO, 2);
    assert_int_equal (hd_log_flush (log, 0), -1);
    assert_int_equal (s_count_segments (dir), segments);
    assert_int_equal (hd_log_bytes (log), bytes);
    assert_int_equal (hd_log_next_seq (log), last_next);
    hd_log_destroy (&log);

    hd_log_recovery_t recovery;
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.truncated_bytes, 0);
    assert_int_equal (recovery.records, last_next - 1);
    for (uint64_t seq = 1; seq < last_next; seq++)
        s_check (log, seq);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

//  A segment file whose data ends at data_end is followed by zeros only.
static void
s_assert_zero_tail (const char *dir, uint64_t first_seq, uint64_t data_end)
{
    s_file_t files[256];
    size_t count = s_load (dir, files, 256);
    bool found = false;
    for (size_t index = 0; index < count; index++)
        if (files[index].first_seq == first_seq) {
            found = true;
            assert_true (files[index].size >= data_end);
            for (size_t at = data_end; at < files[index].size; at++)
                assert_int_equal (files[index].data[at], 0);
        }
    s_free_files (files, count);
    assert_true (found);
}

//  Segments written ahead (spare.h): a roll takes the prepared file, the
//  full segment is cut to its records before its successor exists, a crash
//  leaves zeros only after the last segment's records and recovery cuts
//  them without calling it damage, a clean close leaves no zeros, a failed
//  flush and a full disk fall back to appends, and no record changes.
static void
test_prepared_segments (void **state)
{
    char *dir = s_tempdir ();
    char *copy = s_tempdir ();
    const size_t segment_size = 4096;
    hd_log_config_t config = s_config (dir, segment_size, 1 << 20);
    config.fsync = HD_FSYNC_ALWAYS;
    config.prepare_segments = true;
    hd_log_t *log = s_open (&config, NULL);
    assert_true (hd_log_wait_spare (log, 10000));
    assert_int_equal (hd_log_spare_bytes (log), segment_size);

    //  The first segment goes into the prepared file, which stays its size
    s_append_range (log, 1, 3);
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_int_equal (hd_log_segments_prepared (log), 1);
    assert_int_equal (hd_log_segments_appended (log), 0);
    assert_int_equal (s_file_size (dir, 1), segment_size);
    uint64_t data_end = hd_log_bytes (log);
    s_assert_zero_tail (dir, 1, data_end);

    //  The roll: segment 1 is cut to its records, the next is prepared
    assert_true (hd_log_wait_spare (log, 10000));
    uint64_t next = 4;
    while (s_count_segments (dir) < 2) {
        s_append_range (log, next, next);
        assert_int_equal (hd_log_flush (log, 0), 0);
        next++;
    }
    assert_int_equal (hd_log_segments_prepared (log), 2);
    uint64_t second = s_load_last_first_seq (dir);
    uint64_t first_bytes = s_file_size (dir, 1);
    assert_true (first_bytes < segment_size);
    assert_true (first_bytes + s_record_size (second) > segment_size); // it was full
    assert_int_equal (s_file_size (dir, second), segment_size);

    //  A crash now: the copy of the files is what a kill -9 leaves
    s_file_t files[256];
    size_t count = s_load (dir, files, 256);
    s_store (copy, files, count);
    hd_log_config_t copy_config = config;
    copy_config.directory = copy;
    copy_config.prepare_segments = false;
    hd_log_recovery_t recovery;
    hd_log_t *recovered = s_open (&copy_config, &recovery);
    assert_int_equal (recovery.records, next - 1);
    assert_int_equal (recovery.truncated_bytes, 0);
    assert_int_equal (recovery.unused_bytes,
                      segment_size - (hd_log_bytes (recovered) - first_bytes));
    assert_non_null (strstr (recovery.detail, "unused bytes written ahead"));
    for (uint64_t seq = 1; seq < next; seq++)
        s_check (recovered, seq);
    hd_log_destroy (&recovered);

    //  A torn write into the prepared file: the last record's end never
    //  reached the disk (zeros); it goes, as torn, and the zeros as unused
    s_file_t *last = &files[count - 1];
    size_t hole = (size_t) (hd_log_bytes (log) - first_bytes) - 5;
    memset (last->data + hole, 0, 5);
    s_store (copy, files, count);
    recovered = s_open (&copy_config, &recovery);
    assert_int_equal (recovery.records, next - 2);
    assert_int_equal (recovery.truncated_bytes,
                      s_torn_bytes (last->data, hole + 5 - s_record_size (next - 1), hole));
    assert_true (recovery.unused_bytes > 0);
    assert_non_null (strstr (recovery.detail, "Truncated"));
    s_check_missing (recovered, next - 1);
    hd_log_destroy (&recovered);
    s_free_files (files, count);

    //  A failed sync is rolled back by cutting the file, which is then
    //  appended to; the next record starts a segment in the file written
    //  ahead as soon as it is ready
    assert_int_equal (s_file_size (dir, second), segment_size);
    s_append_range (log, next, next);
    hd_log_set_fail_sync (log, EIO, 0);
    uint64_t syncs = hd_log_syncs (log);
    assert_int_equal (hd_log_flush (log, 0), -1);
    uint64_t second_bytes = hd_log_bytes (log) - first_bytes;
    assert_int_equal (s_file_size (dir, second), second_bytes);
    //  The failed sync, then the cut synced at once: before the segment
    //  gets a successor, and so that the cut record cannot come back
    assert_int_equal (hd_log_syncs (log), syncs + 2);
    assert_true (hd_log_wait_spare (log, 10000));
    s_append_range (log, next, next);
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_int_equal (hd_log_segments_prepared (log), 3);
    assert_int_equal (s_load_last_first_seq (dir), next);
    assert_int_equal (s_file_size (dir, second), second_bytes);
    assert_int_equal (s_file_size (dir, next), segment_size);
    next++;

    //  A full disk: the spare's space is given back and the write retried;
    //  the next roll then appends (nothing prepared), the one after that
    //  takes a prepared file again
    assert_true (hd_log_wait_spare (log, 10000));
    s_append_range (log, next, next);
    hd_log_set_fail_write (log, ENOSPC, 0);
    assert_int_equal (hd_log_flush (log, 0), 0);
    next++;
    struct stat status;
    char spare_path[512];
    snprintf (spare_path, sizeof spare_path, "%s/next-segment.spare", dir);
    assert_int_not_equal (stat (spare_path, &status), 0);
    uint64_t prepared = hd_log_segments_prepared (log);
    size_t segments = s_count_segments (dir);
    while (s_count_segments (dir) == segments) {
        s_append_range (log, next, next);
        assert_int_equal (hd_log_flush (log, 0), 0);
        next++;
    }
    assert_int_equal (hd_log_segments_prepared (log), prepared);
    assert_int_equal (hd_log_segments_appended (log), 1); // no spare: it was given back
    assert_true (hd_log_wait_spare (log, 10000));
    segments = s_count_segments (dir);
    while (s_count_segments (dir) == segments) {
        s_append_range (log, next, next);
        assert_int_equal (hd_log_flush (log, 0), 0);
        next++;
    }
    assert_int_equal (hd_log_segments_prepared (log), prepared + 1);
    assert_int_equal (hd_log_segments_appended (log), 1);
    uint64_t newest = s_load_last_first_seq (dir);
    assert_int_equal (s_file_size (dir, newest), segment_size);

    //  A roll whose new segment fails to sync: the full segment was cut to
    //  its records and synced before the new one existed; the rollback
    //  cuts it back to what was confirmed, synced, and the new file goes
    assert_true (hd_log_wait_spare (log, 10000));
    uint64_t older_bytes = 0;
    count = s_load (dir, files, 256);
    for (size_t index = 0; index + 1 < count; index++)
        older_bytes += files[index].size;
    s_free_files (files, count);
    uint64_t bytes_before = hd_log_bytes (log);
    uint64_t newest_data = bytes_before - older_bytes;
    uint64_t confirmed_next = next;
    size_t segments_before = s_count_segments (dir);
    uint64_t room = segment_size - newest_data;
    while (s_record_size (next) <= room) {
        room -= s_record_size (next);
        s_append_range (log, next, next);
        next++;
    }
    s_append_range (log, next, next + 1); // two records into the new segment
    next += 2;
    hd_log_set_fail_sync (log, EIO, 1);
    syncs = hd_log_syncs (log);
    assert_int_equal (hd_log_flush (log, 0), -1);
    //  The full segment's cut, the new one's (failed), the cut back
    assert_int_equal (hd_log_syncs (log), syncs + 3);
    assert_int_equal (s_count_segments (dir), segments_before);
    assert_int_equal (s_file_size (dir, newest), newest_data);
    assert_int_equal (hd_log_bytes (log), bytes_before);
    assert_int_equal (hd_log_next_seq (log), confirmed_next);
    count = s_load (dir, files, 256);
    s_store (copy, files, count);
    s_free_files (files, count);
    recovered = s_open (&copy_config, &recovery);
    assert_int_equal (recovery.records, confirmed_next - 1);
    assert_int_equal (recovery.truncated_bytes, 0);
    assert_int_equal (recovery.unused_bytes, 0);
    hd_log_destroy (&recovered);
    //  And the same appends then go through
    next = confirmed_next;
    s_append_range (log, next, next + 60);
    next += 61;
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_true (s_count_segments (dir) > segments_before);

    //  A rollback whose cut fails: the file keeps a half-written batch
    //  after its records (and the zeros after that); the segment must not
    //  get a successor before that is cut, so no early roll, and the roll
    //  that comes cuts it
    assert_true (hd_log_wait_spare (log, 10000));
    s_append_range (log, next, next);
    next++;
    assert_int_equal (hd_log_flush (log, 0), 0);
    uint64_t current = s_load_last_first_seq (dir);
    assert_int_equal (s_file_size (dir, current), segment_size); // written ahead
    segments_before = s_count_segments (dir);
    s_append_range (log, next, next + 4);
    hd_log_set_fail_write (log, EIO, 0);
    hd_log_set_fail_truncate (log, EIO);
    assert_int_equal (hd_log_flush (log, 0), -1);
    assert_int_equal (s_file_size (dir, current), segment_size);
    assert_true (hd_log_wait_spare (log, 10000));
    s_append_range (log, next, next);
    next++;
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_int_equal (s_count_segments (dir), segments_before); // no early roll
    while (s_count_segments (dir) == segments_before) {
        s_append_range (log, next, next);
        next++;
        assert_int_equal (hd_log_flush (log, 0), 0);
    }
    count = s_load (dir, files, 256);
    for (size_t index = 0; index + 1 < count; index++) {
        uint64_t ends[256];
        size_t in_file = s_record_offsets (&files[index], ends, 255);
        assert_int_equal (ends[in_file], files[index].size); // records only
    }
    s_store (copy, files, count);
    s_free_files (files, count);
    recovered = s_open (&copy_config, &recovery);
    assert_int_equal (recovery.records, next - 1);
    assert_int_equal (recovery.truncated_bytes, 0);
    for (uint64_t seq = 1; seq < next; seq++)
        s_check (recovered, seq);
    hd_log_destroy (&recovered);

    //  A clean close leaves records only, and takes the spare file with it
    hd_log_destroy (&log);
    count = s_load (dir, files, 256);
    for (size_t index = 0; index < count; index++) {
        uint64_t ends[256];
        size_t in_file = s_record_offsets (&files[index], ends, 255);
        assert_int_equal (ends[in_file], files[index].size);
    }
    s_free_files (files, count);
    assert_int_not_equal (stat (spare_path, &status), 0);
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.truncated_bytes, 0);
    assert_int_equal (recovery.unused_bytes, 0);
    assert_int_equal (recovery.records, next - 1);
    for (uint64_t seq = 1; seq < next; seq++)
        s_check (log, seq);
    hd_log_destroy (&log);

    //  A crash right after a spare was renamed into place, before its head
    //  was written: a last segment of zeros only goes, as unused space
    char zeros_path[512];
    snprintf (zeros_path, sizeof zeros_path, "%s/%020" PRIu64 ".seg", dir, next);
    int fd = open (zeros_path, O_WRONLY | O_CREAT, 0644);
    assert_true (fd >= 0);
    assert_int_equal (ftruncate (fd, (off_t) segment_size), 0);
    close (fd);
    log = s_open (&config, &recovery);
    assert_int_equal (recovery.truncated_bytes, 0);
    assert_int_equal (recovery.unused_bytes, segment_size);
    assert_non_null (strstr (recovery.detail, "Removed"));
    assert_int_equal (hd_log_next_seq (log), next);
    hd_log_destroy (&log);
    assert_int_not_equal (stat (zeros_path, &status), 0);

    //  Nothing is prepared where nothing waits for the disk, and a spare a
    //  crash left behind goes all the same
    fd = open (spare_path, O_WRONLY | O_CREAT, 0644);
    assert_true (fd >= 0);
    assert_int_equal (ftruncate (fd, (off_t) segment_size), 0);
    close (fd);
    config.fsync = HD_FSYNC_NEVER;
    log = s_open (&config, &recovery);
    assert_non_null (strstr (recovery.detail, "Removed an unused next-segment.spare"));
    assert_int_not_equal (stat (spare_path, &status), 0);
    assert_false (hd_log_wait_spare (log, 0));
    assert_int_equal (hd_log_spare_bytes (log), 0);
    hd_log_destroy (&log);
    s_remove_tree (copy);
    s_remove_tree (dir);
    free (copy);
    free (dir);
}

static void
test_fsync_never (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 1024, 0);
    config.fsync = HD_FSYNC_NEVER;
    hd_log_t *log = s_open (&config, NULL);
    for (uint64_t from = 1; from <= 200; from += 20) {
        s_append_range (log, from, from + 19);
        assert_int_equal (hd_log_flush (log, from * 1000), 0);
        assert_false (hd_log_sync_due (log, from * 1000 + 1000000));
    }
    assert_true (s_count_segments (dir) > 5);
    assert_int_equal (hd_log_syncs (log), 0);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_fsync_always (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 1024, 0);
    config.fsync = HD_FSYNC_ALWAYS;
    hd_log_t *log = s_open (&config, NULL);
    assert_int_equal (hd_log_syncs (log), 0);
    assert_int_equal (hd_log_flush (log, 0), 0); // nothing to write, nothing to sync
    assert_int_equal (hd_log_syncs (log), 0);
    s_append_range (log, 1, 2);
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_int_equal (hd_log_syncs (log), 2); // the new segment and the directory
    s_append_range (log, 3, 3);
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_int_equal (hd_log_syncs (log), 3); // one fdatasync for the batch
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_int_equal (hd_log_syncs (log), 3);
    assert_false (hd_log_sync_due (log, 1000000));
    //  A batch that fills the segment and starts the next: the full one is
    //  synced before the new one is created, then the new one, then the
    //  directory
    uint64_t seq = 4;
    while (s_file_size (dir, 1) + s_record_size (seq) <= 1024) {
        s_append_range (log, seq, seq);
        assert_int_equal (hd_log_flush (log, 0), 0);
        seq++;
    }
    uint64_t syncs = hd_log_syncs (log);
    s_append_range (log, seq, seq + 2);
    assert_true (s_file_size (dir, 1) < 1024);
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_int_equal (hd_log_syncs (log), syncs + 2);
    assert_int_equal (s_count_segments (dir), 2);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_fsync_barrier (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 1024, 0);
    config.fsync = HD_FSYNC_ALWAYS;
    hd_log_t *log = s_open (&config, NULL);
    s_append_range (log, 1, 1);
    assert_int_equal (hd_log_flush (log, 0), 0);
    uint64_t syncs = hd_log_syncs (log);
    //  One batch writes into segment 1 and into a new segment: segment 1
    //  is synced before the new one exists, so a crash can tear only the
    //  last segment; then the new one and the directory
    s_append_range (log, 2, 30);
    assert_int_equal (hd_log_flush (log, 0), 0);
    size_t created = s_count_segments (dir) - 1;
    assert_true (created >= 2);
    //  Each full segment before its successor, the last, the directory
    assert_int_equal (hd_log_syncs (log), syncs + created + 2);

    //  The order: when the write into a new segment fails, the segment
    //  before it has already been synced; the rollback cuts it back to
    //  what was confirmed and syncs that too (what was cut was on disk)
    s_append_range (log, 31, 31);
    assert_int_equal (hd_log_flush (log, 0), 0);
    uint64_t next = hd_log_next_seq (log);
    uint64_t confirmed_size = s_file_size (dir, s_load_last_first_seq (dir));
    s_append_range (log, next, next + 14); // fills the last segment, starts another
    syncs = hd_log_syncs (log);
    hd_log_set_fail_write (log, EIO, 1);
    assert_int_equal (hd_log_flush (log, 0), -1);
    assert_int_equal (hd_log_syncs (log), syncs + 2);
    assert_int_equal (s_file_size (dir, s_load_last_first_seq (dir)), confirmed_size);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static void
test_fsync_interval (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 1 << 20, 0);
    config.fsync = HD_FSYNC_INTERVAL;
    config.fsync_interval_ms = 100;
    hd_log_t *log = s_open (&config, NULL);
    assert_false (hd_log_sync_due (log, 1000));
    s_append_range (log, 1, 1);
    assert_int_equal (hd_log_flush (log, 1000), 0); // the first sync is never held back
    assert_int_equal (hd_log_syncs (log), 2);
    assert_false (hd_log_sync_due (log, 5000)); // nothing written since
    s_append_range (log, 2, 2);
    assert_int_equal (hd_log_flush (log, 1050), 0); // written, not synced yet
    assert_int_equal (hd_log_syncs (log), 2);
    assert_int_equal (hd_log_unflushed (log), 0);
    assert_int_equal (s_file_size (dir, 1), S_HEAD + s_record_size (1) + s_record_size (2));
    assert_false (hd_log_sync_due (log, 1099));
    assert_true (hd_log_sync_due (log, 1100));
    assert_int_equal (hd_log_flush (log, 1100), 0); // the timer's flush syncs
    assert_int_equal (hd_log_syncs (log), 3);
    assert_false (hd_log_sync_due (log, 2000));
    s_append_range (log, 3, 3);
    assert_int_equal (hd_log_flush (log, 1150), 0);
    assert_int_equal (hd_log_syncs (log), 3);
    s_append_range (log, 4, 4);
    assert_int_equal (hd_log_flush (log, 1250), 0);
    assert_int_equal (hd_log_syncs (log), 4);
    //  A clean close syncs what is written
    s_append_range (log, 5, 5);
    assert_int_equal (hd_log_flush (log, 1260), 0);
    assert_true (hd_log_sync_due (log, 1400));
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

static size_t
s_open_fds (void)
{
    DIR *directory = opendir ("/proc/self/fd");
    if (!directory)
        return 0;
    size_t count = 0;
    while (readdir (directory))
        count++;
    closedir (directory);
    return count;
}

static void
test_bounded_fds (void **state)
{
    char *dir = s_tempdir ();
    hd_log_config_t config = s_config (dir, 512, 0);
    size_t before = s_open_fds ();
    hd_log_t *log = s_open (&config, NULL);
    for (uint64_t seq = 1; seq <= 300; seq++) {
        s_append_range (log, seq, seq);
        if (seq % 7 == 0)
            assert_int_equal (hd_log_flush (log, 0), 0);
    }
    assert_int_equal (hd_log_flush (log, 0), 0);
    assert_true (s_count_segments (dir) > 40);
    for (uint64_t seq = 1; seq <= 300; seq++)
        s_check (log, seq);
    //  A few cached read fds, the last segment, the directory
    assert_true (s_open_fds () <= before + 8 + 2);
    hd_log_destroy (&log);
    assert_int_equal (s_open_fds (), before);
    s_remove_tree (dir);
    free (dir);
}

//  --------------------------------------------------------------------------
//  The OS page cache (page_cache_keep)

//  Bytes of the file at path that the OS page cache holds (mincore).
static uint64_t
s_cached_bytes (const char *path)
{
    int fd = open (path, O_RDONLY);
    assert_true (fd >= 0);
    struct stat status;
    assert_int_equal (fstat (fd, &status), 0);
    size_t size = (size_t) status.st_size;
    uint64_t cached = 0;
    if (size > 0) {
        void *map = mmap (NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        assert_true (map != MAP_FAILED);
        size_t page = (size_t) sysconf (_SC_PAGESIZE);
        size_t pages = (size + page - 1) / page;
        unsigned char *resident = malloc (pages);
        assert_non_null (resident);
        assert_int_equal (mincore (map, size, resident), 0);
        for (size_t index = 0; index < pages; index++)
            cached += (resident[index] & 1) ? page : 0;
        free (resident);
        munmap (map, size);
    }
    close (fd);
    return cached;
}

//  Of every segment file in dir.
static uint64_t
s_log_cached_bytes (const char *dir)
{
    //  Not s_load: it reads the files, which caches them
    DIR *directory = opendir (dir);
    assert_non_null (directory);
    uint64_t cached = 0;
    struct dirent *entry;
    while ((entry = readdir (directory))) {
        if (!s_is_segment_name (entry->d_name))
            continue;
        char path[512];
        assert_true (snprintf (path, sizeof path, "%s/%s", dir, entry->d_name) < (int) sizeof path);
        cached += s_cached_bytes (path);
    }
    closedir (directory);
    return cached;
}

//  Whether the file system under dir lets written pages be written back
//  and dropped the way the log does it (tmpfs, for one, cannot: its pages
//  are the file; overlayfs may not pass sync_file_range on).
static bool
s_page_cache_droppable (const char *dir)
{
    char path[512];
    assert_true (snprintf (path, sizeof path, "%s/probe", dir) < (int) sizeof path);
    int fd = open (path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true (fd >= 0);
    static uint8_t block[256 << 10];
    memset (block, 7, sizeof block);
    assert_int_equal (write (fd, block, sizeof block), (ssize_t) sizeof block);
    sync_file_range (
        fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
    close (fd);
    bool droppable = s_cached_bytes (path) == 0;
    unlink (path);
    return droppable;
}

//  Writes 8 MiB in 4 000-byte records, flushing every 16 of them. Returns
//  the next seq.
static uint64_t
s_write_8mib (hd_log_t *log)
{
    uint64_t seq = 1;
    while (hd_log_bytes (log) < (8u << 20)) {
        assert_int_equal (s_append_sized (log, seq, 4000), seq);
        if (seq++ % 16 == 0)
            assert_int_equal (hd_log_flush (log, 0), 0);
    }
    assert_int_equal (hd_log_flush (log, 0), 0);
    return seq;
}

//  The log keeps at most page_cache_keep bytes of its files in the OS page
//  cache, as it writes (with each fsync policy) and after recovery, which
//  reads the whole log; with 0 the OS keeps all of it. Every record still
//  reads back.
static void
test_page_cache_keep (void **state)
{
    //  In the build tree, not /tmp, which is tmpfs on many systems
    char template[] = "./hd_test_page_cache.XXXXXX";
    assert_non_null (mkdtemp (template));
    char *dir = strdup (template);
    assert_non_null (dir);
    if (!s_page_cache_droppable (dir)) {
        s_remove_tree (dir);
        free (dir);
        skip ();
    }
    const uint64_t keep = 1u << 20, segment_size = 1u << 20;
    //  Past keep: what was flushed since the last release (an eighth of keep,
    //  plus one flush of 16 records), and the pages at the edges of earlier
    //  ranges in the segment being dropped, at most all of it (a segment no
    //  longer written is dropped whole)
    const uint64_t slack = keep / 8 + 16 * 4200 + segment_size;
    const hd_fsync_t policies[] = {HD_FSYNC_ALWAYS, HD_FSYNC_NEVER, HD_FSYNC_INTERVAL};
    for (size_t policy = 0; policy < 3; policy++) {
        s_remove_tree (dir);
        assert_int_equal (mkdir (dir, 0755), 0);
        hd_log_config_t config = s_config (dir, segment_size, 0);
        config.fsync = policies[policy];
        config.fsync_interval_ms = 60000;
        config.page_cache_keep = keep;
        hd_log_t *log = s_open (&config, NULL);
        uint64_t next = s_write_8mib (log);
        uint64_t written = hd_log_bytes (log);
        assert_true (s_log_cached_bytes (dir) <= keep + slack);
        assert_true (hd_log_page_cache_released (log) >= written - keep - slack);
        for (uint64_t seq = 1; seq < next; seq++)
            s_check_sized (log, seq, 4000);
        //  Those reads brought it all back in; recovery reads it again
        hd_log_destroy (&log);
        log = s_open (&config, NULL);
        assert_int_equal (hd_log_next_seq (log), next);
        assert_true (s_log_cached_bytes (dir) <= keep + slack);
        hd_log_destroy (&log);
    }
    //  The control: without a bound, recovery leaves the whole log cached
    hd_log_config_t config = s_config (dir, segment_size, 0);
    config.page_cache_keep = 0;
    hd_log_t *log = s_open (&config, NULL);
    assert_true (s_log_cached_bytes (dir) >= (8u << 20) - keep);
    assert_int_equal (hd_log_page_cache_released (log), 0);
    hd_log_destroy (&log);
    s_remove_tree (dir);
    free (dir);
}

//  The record fields are little-endian whatever the machine: the bytes
//  are fixed, and read back to the same values.
static void
test_bytes_little_endian (void **state)
{
    uint8_t at[9] = {0};
    hd_put_u64 (at + 1, 0x0102030405060708ULL);
    const uint8_t u64[] = {0, 8, 7, 6, 5, 4, 3, 2, 1};
    assert_memory_equal (at, u64, sizeof u64);
    assert_int_equal (hd_get_u64 (at + 1), 0x0102030405060708ULL);
    hd_put_u32 (at + 3, 0xA1B2C3D4);
    const uint8_t u32[] = {0, 8, 7, 0xD4, 0xC3, 0xB2, 0xA1, 2, 1};
    assert_memory_equal (at, u32, sizeof u32);
    assert_int_equal (hd_get_u32 (at + 3), 0xA1B2C3D4);
    hd_put_u16 (at, 0xBEEF);
    assert_int_equal (at[0], 0xEF);
    assert_int_equal (at[1], 0xBE);
    assert_int_equal (hd_get_u16 (at), 0xBEEF);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_bytes_little_endian),
        cmocka_unit_test (test_key_hash),
        cmocka_unit_test (test_round_trip_cache),
        cmocka_unit_test (test_round_trip_disk),
        cmocka_unit_test (test_uncached_records),
        cmocka_unit_test (test_append_validation),
        cmocka_unit_test (test_reopen),
        cmocka_unit_test (test_directory_created),
        cmocka_unit_test (test_segment_rollover),
        cmocka_unit_test (test_huge_record),
        cmocka_unit_test (test_torn_tail),
        cmocka_unit_test (test_headless_files),
        cmocka_unit_test (test_corrupt_middle),
        cmocka_unit_test (test_corrupt_middle_head_and_gap),
        cmocka_unit_test (test_stale_record),
        cmocka_unit_test (test_cold_read_crc),
        cmocka_unit_test (test_meta_and_types),
        cmocka_unit_test (test_seq_at_time),
        cmocka_unit_test (test_retain),
        cmocka_unit_test (test_flush_failure_rollback),
        cmocka_unit_test (test_prepared_segments),
        cmocka_unit_test (test_fsync_never),
        cmocka_unit_test (test_fsync_always),
        cmocka_unit_test (test_fsync_barrier),
        cmocka_unit_test (test_fsync_interval),
        cmocka_unit_test (test_bounded_fds),
        cmocka_unit_test (test_page_cache_keep),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
