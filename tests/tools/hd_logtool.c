/*  hd_logtool — builds, damages and inspects event log directories for the
    integration tests and for measuring recovery.

      hd_logtool fill DIR N [PAYLOAD_BYTES [SEGMENT_BYTES]]
          append N records (~PAYLOAD_BYTES, default 150) after what is there
      hd_logtool check DIR [--skip-corrupt]
          open (and so recover: this repairs a torn tail) and print the report
      hd_logtool verify DIR [--skip-corrupt]
          as check, then read back every record (CRC checked); exit 1 on error
      hd_logtool segments DIR
          one line per segment file, oldest first: path, size, and where its
          data ends (after its last byte that is not zero: the rest was
          written ahead)
      hd_logtool corrupt DIR OFFSET [FIRST_SEQ]
          flip one byte of the last segment (or the one starting at FIRST_SEQ);
          a negative OFFSET counts from the end of the file

    The test tools link only the client libraries, so the log's sources are
    compiled in here directly.
*/
#include "../../broker/log.c"
#include "../../broker/crc32c.c"
#include "../../broker/spare.c"
#include "../../broker/file.c"
#include "../../broker/cache.c"

#include <sys/time.h>

static int
s_tool_usage (void)
{
    fprintf (stderr, "usage: hd_logtool fill DIR N [PAYLOAD_BYTES [SEGMENT_BYTES]]\n"
                     "       hd_logtool check|verify DIR [--skip-corrupt]\n"
                     "       hd_logtool segments DIR\n"
                     "       hd_logtool corrupt DIR OFFSET [FIRST_SEQ]\n");
    return 2;
}

static uint64_t
s_tool_wall_us (void)
{
    struct timeval now;
    gettimeofday (&now, NULL);
    return (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_usec;
}

static hd_log_t *
s_tool_open (const char *directory, size_t segment_size, bool skip_corrupt, bool report)
{
    hd_log_config_t config;
    hd_log_config_defaults (&config);
    config.directory = directory;
    if (segment_size)
        config.segment_size = segment_size;
    config.fsync = HD_FSYNC_NEVER; // the tool's writes are synced once, at the end
    config.skip_corrupt = skip_corrupt;
    config.cache_bytes = 0;
    hd_log_recovery_t recovery;
    char error[512];
    hd_log_t *log = hd_log_open (&config, &recovery, error, sizeof error);
    if (!log) {
        fprintf (stderr, "error: %s\n", error);
        return NULL;
    }
    if (report) {
        printf ("records=%" PRIu64 " segments=%" PRIu64 " truncated_bytes=%" PRIu64
                " skipped_records=%" PRIu64 " skipped_bytes=%" PRIu64 " elapsed_us=%" PRId64
                " first_seq=%" PRIu64 " next_seq=%" PRIu64 "\n",
                recovery.records, recovery.segments, recovery.truncated_bytes,
                recovery.skipped_records, recovery.skipped_bytes, recovery.elapsed_us,
                hd_log_first_seq (log), hd_log_next_seq (log));
        printf ("detail: %s\n", recovery.detail);
    }
    return log;
}

static int
s_tool_fill (const char *directory, uint64_t count, size_t payload_size, size_t segment_size)
{
    hd_log_t *log = s_tool_open (directory, segment_size, false, false);
    if (!log)
        return 1;
    char envelope_text[40];
    memset (envelope_text, 'e', sizeof envelope_text);
    for (uint64_t index = 0; index < count; index++) {
        uint64_t seq = hd_log_next_seq (log);
        char key[32];
        int key_size = snprintf (key, sizeof key, "key-%d", (int) (seq % 100));
        zmq_msg_t envelope, payload;
        zmq_msg_init_size (&envelope, sizeof envelope_text);
        memcpy (zmq_msg_data (&envelope), envelope_text, sizeof envelope_text);
        zmq_msg_init_size (&payload, payload_size);
        memset (zmq_msg_data (&payload), (int) ('a' + seq % 26), payload_size);
        hd_record_t record = hd_record_of (&envelope, &payload);
        uint64_t got = hd_log_append (log, s_tool_wall_us (), "bench.event", 11,
                                      hd_log_key_hash (key, (size_t) key_size), &record, false);
        zmq_msg_close (&envelope);
        zmq_msg_close (&payload);
        if (got == 0 || (index % 1000 == 999 && hd_log_flush (log, 0) != 0)) {
            fprintf (stderr, "error: append/flush at seq %" PRIu64 ": %s\n", seq, strerror (errno));
            hd_log_destroy (&log);
            return 1;
        }
    }
    int rc = hd_log_flush (log, 0);
    printf ("first_seq=%" PRIu64 " next_seq=%" PRIu64 " bytes=%" PRIu64 "\n",
            hd_log_first_seq (log), hd_log_next_seq (log), hd_log_bytes (log));
    hd_log_destroy (&log);
    sync ();
    return rc == 0 ? 0 : 1;
}

static int
s_tool_verify (const char *directory, bool skip_corrupt)
{
    hd_log_t *log = s_tool_open (directory, 0, skip_corrupt, true);
    if (!log)
        return 1;
    uint64_t good = 0, missing = 0, bad = 0;
    for (uint64_t seq = hd_log_first_seq (log); seq < hd_log_next_seq (log); seq++) {
        zmq_msg_t envelope, payload;
        if (hd_log_read (log, seq, &envelope, &payload) == 0) {
            zmq_msg_close (&envelope);
            zmq_msg_close (&payload);
            good++;
        } else if (errno == ENOENT)
            missing++;
        else {
            fprintf (stderr, "error: seq %" PRIu64 ": %s\n", seq, strerror (errno));
            bad++;
        }
    }
    printf ("read=%" PRIu64 " missing=%" PRIu64 " bad=%" PRIu64 "\n", good, missing, bad);
    hd_log_destroy (&log);
    return bad ? 1 : 0;
}

static int
s_tool_segments (const char *directory, uint64_t **names, size_t *count)
{
    hd_log_t probe = {0};
    probe.directory = (char *) directory;
    if (s_list_segments (&probe, names, count) != 0) {
        fprintf (stderr, "error: cannot list %s: %s\n", directory, strerror (errno));
        return -1;
    }
    return 0;
}

static int
s_tool_list (const char *directory)
{
    uint64_t *names;
    size_t count;
    if (s_tool_segments (directory, &names, &count) != 0)
        return 1;
    for (size_t index = 0; index < count; index++) {
        char name[S_NAME_SIZE], path[4096];
        s_segment_name (name, names[index]);
        snprintf (path, sizeof path, "%s/%s", directory, name);
        struct stat status;
        int fd = open (path, O_RDONLY);
        uint8_t *chunk = malloc (S_SCAN_CHUNK);
        uint64_t data_end = 0;
        if (fd < 0 || fstat (fd, &status) != 0 || !chunk ||
            s_nonzero_end (fd, 0, (uint64_t) status.st_size, chunk, S_SCAN_CHUNK, &data_end) != 0) {
            fprintf (stderr, "error: %s: %s\n", path, strerror (errno));
            free (chunk);
            free (names);
            return 1;
        }
        close (fd);
        free (chunk);
        printf ("%s %lld %" PRIu64 "\n", path, (long long) status.st_size, data_end);
    }
    free (names);
    return 0;
}

static int
s_tool_corrupt (const char *directory, long long offset, const char *first_seq)
{
    uint64_t *names;
    size_t count;
    if (s_tool_segments (directory, &names, &count) != 0)
        return 1;
    if (count == 0) {
        fprintf (stderr, "error: no segments in %s\n", directory);
        free (names);
        return 1;
    }
    uint64_t target = first_seq ? strtoull (first_seq, NULL, 10) : names[count - 1];
    free (names);
    char name[S_NAME_SIZE], path[4096];
    s_segment_name (name, target);
    snprintf (path, sizeof path, "%s/%s", directory, name);
    int fd = open (path, O_RDWR);
    struct stat status;
    if (fd < 0 || fstat (fd, &status) != 0) {
        fprintf (stderr, "error: %s: %s\n", path, strerror (errno));
        return 1;
    }
    long long at = offset < 0 ? (long long) status.st_size + offset : offset;
    uint8_t byte;
    if (at < 0 || at >= (long long) status.st_size || pread (fd, &byte, 1, at) != 1) {
        fprintf (stderr, "error: offset %lld outside %s (%lld bytes)\n", at, path,
                 (long long) status.st_size);
        close (fd);
        return 1;
    }
    byte ^= 0xFF;
    int rc = pwrite (fd, &byte, 1, at) == 1 ? 0 : 1;
    close (fd);
    printf ("%s %lld\n", path, at);
    return rc;
}

int
main (int argc, char *argv[])
{
    if (argc < 3)
        return s_tool_usage ();
    const char *command = argv[1], *directory = argv[2];
    bool skip_corrupt = argc > 3 && strcmp (argv[3], "--skip-corrupt") == 0;
    if (strcmp (command, "fill") == 0 && argc >= 4)
        return s_tool_fill (directory, strtoull (argv[3], NULL, 10),
                            argc > 4 ? strtoull (argv[4], NULL, 10) : 150,
                            argc > 5 ? strtoull (argv[5], NULL, 10) : 0);
    if (strcmp (command, "check") == 0) {
        hd_log_t *log = s_tool_open (directory, 0, skip_corrupt, true);
        if (!log)
            return 1;
        hd_log_destroy (&log);
        return 0;
    }
    if (strcmp (command, "verify") == 0)
        return s_tool_verify (directory, skip_corrupt);
    if (strcmp (command, "segments") == 0)
        return s_tool_list (directory);
    if (strcmp (command, "corrupt") == 0 && argc >= 4)
        return s_tool_corrupt (directory, strtoll (argv[3], NULL, 10), argc > 4 ? argv[4] : NULL);
    return s_tool_usage ();
}
