/*  log — segment files of CRC32C-framed records, a compact in-memory index
    per segment (12 bytes a record plus a time sample every 256 records), a
    hot cache of recent records shared with the broker's messages (cache.c), and group
    commit: appends go to one write buffer that hd_log_flush writes and
    fdatasyncs once.

    Invariants the code relies on:
    - segments are sorted by first_seq; segment i holds records first_seq ..
      first_seq + count - 1, and only a segment damaged and skipped at
      recovery has a hole after its records (up to the next segment);
    - unflushed bytes are a suffix: the last one or few segments, whose
      bytes from `flushed` on sit in the write buffer, in segment order;
    - the cache holds no seq at or past next_seq.
*/
#include "log.h"
#include "buffer.h"
#include "bytes.h"
#include "cache.h"
#include "codec.h"
#include "crc32c.h"
#include "file.h"
#include "region.h"
#include "spare.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define S_MAGIC       "HDLOG001"
#define S_HEAD_SIZE   16 // magic, u64 first_seq
#define S_RECORD_HEAD 34 // size, crc, seq, recorded_us, key_hash, type_size, envelope_size
#define S_BODY_MIN    (S_RECORD_HEAD - 4 + 1) // a record has at least one type byte
#define S_CRC_FROM    8                       // the crc covers the record from here on
#define S_TIME_EVERY  256                     // records per recorded_us sample
#define S_READ_FDS    8                       // fds kept open for segments other than the last
#define S_SCAN_CHUNK  (4u << 20)              // recovery reads the segments in chunks this big
#define S_BUFFER_KEEP (16u << 20)             // larger write/read buffers are freed after use
#define S_NAME_SIZE   32
#define S_DEFAULT_SEG (64u << 20)
#define S_SPARE_NAME  "next-segment.spare" // not a segment name: recovery ignores it
#define S_SPARE_RETRY 1000                 // ms before a failed spare is tried again
#define S_RELEASE_MIN (64u << 10)          // fewest flushed bytes between page cache releases

_Static_assert(HD_LOG_CACHE_COPY_MAX <= HD_CACHE_COPY_LIMIT,
               "the hot cache copies every record the broker lends it");

typedef struct {
    uint32_t offset; // of the record in its segment file
    uint32_t type_id;
    uint32_t key_hash;
} s_entry_t;

typedef struct {
    uint64_t first_seq;       // from the file name
    uint64_t count;           // records indexed
    uint64_t size;            // file bytes, including unflushed ones
    uint64_t allocated;       // bytes the file has on disk: past `flushed`, zeros written ahead
    uint64_t records_end;     // end of the last indexed record (< size only after a skip)
    uint64_t flushed;         // file bytes as of the last successful flush (0: no file yet)
    uint64_t flushed_count;   // count, records_end and last_us at that flush, for rollback
    uint64_t flushed_last_us; //
    uint64_t last_us;         // recorded time of the last record
    size_t buffer_at;         // where byte `flushed` is in the write buffer, while unflushed
    hd_region_t *index;       // the entries' memory: fills under traffic, so faulted in ahead
    s_entry_t *entries;       // hd_region_data (index)
    size_t entries_max;
    uint64_t *times; // recorded_us of records 0, 256, 512, ...
    size_t times_max;
    int fd;                // -1 when closed
    bool dirty;            // written since its last fdatasync
    uint64_t used;         // read clock tick of the last use, to close the least recent fd
    uint64_t written_back; // file bytes whose writeback was started (page cache release)
    uint64_t dropped;      // file bytes given back from the OS page cache
} s_segment_t;

typedef struct {
    char *name; // NUL-terminated copy
    size_t size;
    uint32_t hash;
} s_type_t;

struct _hd_log_t {
    char *directory;
    int dir_fd;
    size_t segment_size;
    hd_fsync_t fsync;
    int64_t fsync_interval_ms;

    s_segment_t **segments;
    size_t segment_count, segment_max;
    uint64_t next_seq;
    uint64_t flushed_seq; // next_seq after the last successful flush
    uint64_t bytes;       // sum of segment sizes

    uint8_t *buffer; // unflushed bytes of the last segment(s), heads included
    size_t buffer_size, buffer_max;
    uint8_t *read_buffer; // cold reads
    size_t read_max;

    bool dir_dirty; // a segment file was created or removed since the last directory fsync
    bool unsynced;  // some segment is dirty (cheaper than asking each)
    bool synced_once;
    int64_t last_sync_ms;
    uint64_t syncs;
    uint64_t clock; // read clock for the fd LRU

    hd_cache_t *cache; // NULL when cache_bytes is 0

    s_type_t *types; // by id
    uint32_t type_count, types_max;
    uint32_t *type_slots; // open addressing, id + 1 (0 = free)
    uint32_t type_slot_mask;
    uint32_t recent_type_id; // the last type interned (UINT32_MAX: none)

    hd_spare_t *spare;          // the next segment written ahead (NULL: appends only)
    uint64_t segments_prepared; // segments that went into a spare
    uint64_t segments_appended; // segments begun in a new file while a spare was wanted

    uint64_t page_cache_keep; // newest file bytes left in the OS page cache (0: all)
    uint64_t page_size;
    uint64_t page_cache_due;      // bytes flushed since the last release
    uint64_t page_cache_released; // bytes given back from the OS page cache

    int fail_write, fail_sync, fail_truncate; // test hooks: errno to fail with, 0 when disarmed
    unsigned fail_write_skip, fail_sync_skip;
};

//  --------------------------------------------------------------------------
//  Little-endian fields

//  --------------------------------------------------------------------------
//  Small helpers

static int64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

static void
s_segment_name (char *name, uint64_t first_seq)
{
    snprintf (name, S_NAME_SIZE, "%020" PRIu64 ".seg", first_seq);
}

//  Parses "<20 digits>.seg"; anything else in the directory is not ours.
static bool
s_parse_name (const char *name, uint64_t *first_seq)
{
    if (strlen (name) != 24 || strcmp (name + 20, ".seg") != 0)
        return false;
    uint64_t value = 0;
    for (int index = 0; index < 20; index++) {
        if (name[index] < '0' || name[index] > '9')
            return false;
        uint64_t digit = (uint64_t) (name[index] - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    *first_seq = value;
    return true;
}

static void
s_set_error (char *error, size_t error_size, const char *format, ...)
{
    if (!error || !error_size)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (error, error_size, format, args);
    va_end (args);
}

//  mkdir -p
static int
s_make_directory (const char *path)
{
    char *copy = strdup (path);
    if (!copy)
        return -1;
    int rc = 0;
    for (char *slash = copy + 1; rc == 0; slash++) {
        if (*slash != '/' && *slash != '\0')
            continue;
        char saved = *slash;
        *slash = '\0';
        if (mkdir (copy, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *slash = saved;
        if (saved == '\0')
            break;
    }
    free (copy);
    return rc;
}

//  --------------------------------------------------------------------------
//  I/O with the test hooks in the one place that does each kind of call

static int
s_write_at (hd_log_t *self, int fd, const uint8_t *data, size_t size, uint64_t offset)
{
    if (self->fail_write && self->fail_write_skip-- == 0) {
        //  Test hook: half the bytes reach the file, like a disk filling up
        hd_file_write_at (fd, data, size / 2, offset);
        errno = self->fail_write;
        self->fail_write = 0;
        return -1;
    }
    return hd_file_write_at (fd, data, size, offset);
}

//  Reads exactly size bytes; a short file is EIO (the index said they exist).
static int
s_read_at (int fd, uint8_t *data, size_t size, uint64_t offset)
{
    ssize_t got = hd_file_read_at (fd, data, size, offset);
    if (got < 0)
        return -1;
    if ((size_t) got < size) {
        errno = EIO;
        return -1;
    }
    return 0;
}

//  Cuts a segment file while the log runs (recovery cuts its own).
static int
s_truncate (hd_log_t *self, int fd, uint64_t size)
{
    if (self->fail_truncate) {
        errno = self->fail_truncate;
        self->fail_truncate = 0;
        return -1;
    }
    return ftruncate (fd, (off_t) size);
}

static int
s_sync (hd_log_t *self, int fd, bool directory)
{
    self->syncs++;
    if (self->fail_sync && self->fail_sync_skip-- == 0) {
        errno = self->fail_sync;
        self->fail_sync = 0;
        return -1;
    }
    //  fdatasync on a directory is not portable; fsync is what makes a new
    //  entry durable
    return directory ? fsync (fd) : fdatasync (fd);
}

//  --------------------------------------------------------------------------
//  Interned types: an open-addressing table of ids over a dense array

static uint32_t
s_hash_bytes (const void *data, size_t size)
{
    //  FNV-1a, then the murmur3 finaliser so every input bit reaches every
    //  output bit (FNV alone has weak low bits for short keys)
    const uint8_t *bytes = data;
    uint32_t hash = 2166136261u;
    for (size_t index = 0; index < size; index++)
        hash = (hash ^ bytes[index]) * 16777619u;
    hash ^= hash >> 16;
    hash *= 0x85ebca6bu;
    hash ^= hash >> 13;
    hash *= 0xc2b2ae35u;
    hash ^= hash >> 16;
    return hash;
}

static int
s_type_slots_grow (hd_log_t *self)
{
    uint32_t slot_count = self->type_slot_mask ? (self->type_slot_mask + 1) * 2 : 64;
    uint32_t *slots = calloc (slot_count, sizeof *slots);
    if (!slots)
        return -1;
    for (uint32_t id = 0; id < self->type_count; id++) {
        uint32_t slot = self->types[id].hash & (slot_count - 1);
        while (slots[slot])
            slot = (slot + 1) & (slot_count - 1);
        slots[slot] = id + 1;
    }
    free (self->type_slots);
    self->type_slots = slots;
    self->type_slot_mask = slot_count - 1;
    return 0;
}

//  Finds or adds the type. Returns 0 / -1 (ENOMEM).
static int
s_type_intern (hd_log_t *self, const char *type, size_t size, uint32_t *type_id)
{
    //  Consecutive records mostly share their type: skip the hash then
    uint32_t recent = self->recent_type_id;
    if (recent != UINT32_MAX && self->types[recent].size == size &&
        memcmp (self->types[recent].name, type, size) == 0) {
        *type_id = recent;
        return 0;
    }
    uint32_t hash = s_hash_bytes (type, size);
    if (self->type_slots) {
        uint32_t slot = hash & self->type_slot_mask;
        while (self->type_slots[slot]) {
            s_type_t *known = &self->types[self->type_slots[slot] - 1];
            if (known->hash == hash && known->size == size &&
                memcmp (known->name, type, size) == 0) {
                *type_id = self->recent_type_id = self->type_slots[slot] - 1;
                return 0;
            }
            slot = (slot + 1) & self->type_slot_mask;
        }
    }
    //  Keep the table at most half full so probes stay short
    if ((self->type_count + 1) * 2 > (self->type_slots ? self->type_slot_mask + 1 : 0))
        if (s_type_slots_grow (self) != 0)
            return -1;
    if (self->type_count == self->types_max) {
        uint32_t new_max = self->types_max ? self->types_max * 2 : 16;
        s_type_t *types = realloc (self->types, new_max * sizeof *types);
        if (!types)
            return -1;
        self->types = types;
        self->types_max = new_max;
    }
    char *name = malloc (size + 1);
    if (!name)
        return -1;
    memcpy (name, type, size);
    name[size] = '\0';
    uint32_t id = self->type_count++;
    self->types[id] = (s_type_t){name, size, hash};
    uint32_t slot = hash & self->type_slot_mask;
    while (self->type_slots[slot])
        slot = (slot + 1) & self->type_slot_mask;
    self->type_slots[slot] = id + 1;
    *type_id = self->recent_type_id = id;
    return 0;
}

//  --------------------------------------------------------------------------
//  Segments

//  Points entries at the index region, after it was prepared or shrunk.
static void
s_segment_entries_moved (s_segment_t *segment)
{
    segment->entries = hd_region_data (segment->index);
    segment->entries_max = hd_region_size (segment->index) / sizeof *segment->entries;
}

static s_segment_t *
s_segment_new (uint64_t first_seq)
{
    s_segment_t *segment = calloc (1, sizeof *segment);
    if (!segment)
        return NULL;
    segment->first_seq = first_seq;
    segment->fd = -1;
    //  Room for the first record, so an append that creates the segment
    //  cannot fail after it is linked in
    segment->index = hd_region_new ();
    segment->times_max = 1;
    segment->times = malloc (sizeof *segment->times);
    if (!segment->index || !segment->times ||
        hd_region_prepare (segment->index, sizeof *segment->entries) != 0) {
        hd_region_destroy (&segment->index);
        free (segment->times);
        free (segment);
        return NULL;
    }
    s_segment_entries_moved (segment);
    return segment;
}

static void
s_segment_destroy (s_segment_t **segment_p)
{
    s_segment_t *segment = *segment_p;
    if (!segment)
        return;
    if (segment->fd >= 0)
        close (segment->fd);
    hd_region_destroy (&segment->index);
    free (segment->times);
    free (segment);
    *segment_p = NULL;
}

//  Room for one more record in the index. The entries grow in a region,
//  without copying; the time samples (one per 256 records) by half.
static int
s_segment_reserve (s_segment_t *segment)
{
    if (segment->count == segment->entries_max) {
        int rc =
            hd_region_prepare (segment->index, (segment->count + 1) * sizeof *segment->entries);
        s_segment_entries_moved (segment);
        if (rc != 0)
            return -1;
    }
    size_t samples = (size_t) (segment->count / S_TIME_EVERY) + 1;
    if (samples > segment->times_max) {
        size_t new_max = segment->times_max + segment->times_max / 2 + 4;
        uint64_t *times = realloc (segment->times, new_max * sizeof *times);
        if (!times)
            return -1;
        segment->times = times;
        segment->times_max = new_max;
    }
    return 0;
}

//  A segment that takes no more records gives back its spare index room.
static void
s_segment_trim (s_segment_t *segment)
{
    if (segment->count && segment->count < segment->entries_max) {
        hd_region_shrink (segment->index, segment->count * sizeof *segment->entries);
        s_segment_entries_moved (segment);
    }
    size_t samples = (size_t) ((segment->count + S_TIME_EVERY - 1) / S_TIME_EVERY);
    if (samples && samples < segment->times_max) {
        uint64_t *times = realloc (segment->times, samples * sizeof *times);
        if (times) {
            segment->times = times;
            segment->times_max = samples;
        }
    }
}

//  Adds one record to the index (room reserved by the caller).
static void
s_segment_index (s_segment_t *segment, uint32_t offset, uint32_t type_id, uint32_t key_hash,
                 uint64_t recorded_us)
{
    if (segment->count % S_TIME_EVERY == 0)
        segment->times[segment->count / S_TIME_EVERY] = recorded_us;
    segment->entries[segment->count++] = (s_entry_t){offset, type_id, key_hash};
    segment->last_us = recorded_us;
}

static s_segment_t *
s_last (hd_log_t *self)
{
    return self->segment_count ? self->segments[self->segment_count - 1] : NULL;
}

static int
s_segments_push (hd_log_t *self, s_segment_t *segment)
{
    if (self->segment_count == self->segment_max) {
        size_t new_max = self->segment_max ? self->segment_max * 2 : 16;
        s_segment_t **segments = realloc (self->segments, new_max * sizeof *segments);
        if (!segments)
            return -1;
        self->segments = segments;
        self->segment_max = new_max;
    }
    self->segments[self->segment_count++] = segment;
    return 0;
}

//  The segment that holds seq (by first_seq), or NULL when seq is before
//  the log.
static s_segment_t *
s_find (hd_log_t *self, uint64_t seq)
{
    size_t low = 0, high = self->segment_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (self->segments[middle]->first_seq <= seq)
            low = middle + 1;
        else
            high = middle;
    }
    return low ? self->segments[low - 1] : NULL;
}

//  Closes the least recently used fds of clean segments other than the
//  last until at most S_READ_FDS are open: bounded fd use however long the
//  log is.
static void
s_trim_fds (hd_log_t *self)
{
    while (true) {
        size_t open_fds = 0;
        s_segment_t *oldest = NULL;
        for (size_t index = 0; index + 1 < self->segment_count; index++) {
            s_segment_t *segment = self->segments[index];
            if (segment->fd < 0)
                continue;
            open_fds++;
            bool clean = segment->size == segment->flushed && !segment->dirty;
            if (clean && (!oldest || segment->used < oldest->used))
                oldest = segment;
        }
        if (open_fds <= S_READ_FDS || !oldest)
            return;
        close (oldest->fd);
        oldest->fd = -1;
    }
}

//  The segment's fd, opened on demand. Read-write, because after a
//  rollback an older segment can become the one being written again.
static int
s_segment_fd (hd_log_t *self, s_segment_t *segment)
{
    segment->used = ++self->clock;
    if (segment->fd >= 0)
        return segment->fd;
    char name[S_NAME_SIZE];
    s_segment_name (name, segment->first_seq);
    segment->fd = openat (self->dir_fd, name, O_RDWR | O_CLOEXEC);
    if (segment->fd >= 0)
        s_trim_fds (self);
    return segment->fd;
}

//  --------------------------------------------------------------------------
//  Recovery

typedef struct {
    uint8_t *data;
    size_t max;
    size_t have;          // bytes in data
    size_t at;            // parse position in data
    uint64_t data_offset; // file offset of data[0]
} s_scan_t;

//  Makes at least need bytes available at scan->at (the caller checked
//  that the file has them). Reads big chunks: one syscall per 4 MiB, not
//  one per record.
static int
s_scan_fill (s_scan_t *scan, int fd, uint64_t file_size, size_t need)
{
    if (scan->have - scan->at >= need)
        return 0;
    memmove (scan->data, scan->data + scan->at, scan->have - scan->at);
    scan->data_offset += scan->at;
    scan->have -= scan->at;
    scan->at = 0;
    if (need > scan->max && hd_buffer_reserve (&scan->data, &scan->max, need) != 0)
        return -1;
    uint64_t left = file_size - (scan->data_offset + scan->have);
    size_t room = scan->max - scan->have;
    size_t want = left < room ? (size_t) left : room;
    if (s_read_at (fd, scan->data + scan->have, want, scan->data_offset + scan->have) != 0)
        return -1;
    scan->have += want;
    return scan->have >= need ? 0 : (errno = EIO, -1);
}

typedef enum { S_SCAN_CLEAN, S_SCAN_DAMAGED, S_SCAN_FAILED } s_scan_result_t;

//  Indexes the valid records of segment (its head already checked) up to
//  the first damaged one, whose offset and what is wrong with it are
//  returned. S_SCAN_FAILED is an I/O or memory error (errno).
static s_scan_result_t
s_scan_segment (hd_log_t *self, s_scan_t *scan, s_segment_t *segment, int fd, uint64_t file_size,
                uint64_t *bad_offset, char *reason, size_t reason_size)
{
    scan->have = scan->at = 0;
    scan->data_offset = S_HEAD_SIZE;
    uint64_t expected = segment->first_seq;
    while (true) {
        uint64_t offset = scan->data_offset + scan->at;
        segment->records_end = offset;
        if (offset == file_size)
            return S_SCAN_CLEAN;
        *bad_offset = offset;
        if (file_size - offset < 4) {
            snprintf (reason, reason_size, "torn record size field");
            return S_SCAN_DAMAGED;
        }
        if (offset > UINT32_MAX) {
            snprintf (reason, reason_size, "record beyond 4 GiB");
            return S_SCAN_DAMAGED;
        }
        if (s_scan_fill (scan, fd, file_size, 4) != 0)
            return S_SCAN_FAILED;
        uint32_t body = hd_get_u32 (scan->data + scan->at);
        if (body < S_BODY_MIN) {
            snprintf (reason, reason_size, "record size %" PRIu32 " below the minimum", body);
            return S_SCAN_DAMAGED;
        }
        if (body > file_size - offset - 4) {
            snprintf (reason, reason_size,
                      "record of %" PRIu32 " bytes runs past the end of the file (torn write)",
                      body);
            return S_SCAN_DAMAGED;
        }
        if (s_scan_fill (scan, fd, file_size, (size_t) body + 4) != 0)
            return S_SCAN_FAILED;
        const uint8_t *record = scan->data + scan->at;
        if (hd_get_u32 (record + 4) != hd_crc32c (0, record + S_CRC_FROM, body - 4)) {
            snprintf (reason, reason_size, "CRC mismatch (seq %" PRIu64 " expected)", expected);
            return S_SCAN_DAMAGED;
        }
        uint64_t seq = hd_get_u64 (record + 8);
        if (seq != expected) {
            snprintf (reason, reason_size, "seq %" PRIu64 " where %" PRIu64 " was expected", seq,
                      expected);
            return S_SCAN_DAMAGED;
        }
        uint16_t type_size = hd_get_u16 (record + 28);
        uint32_t envelope_size = hd_get_u32 (record + 30);
        if (type_size == 0 || type_size > 255 ||
            (uint64_t) type_size + envelope_size > body - (S_RECORD_HEAD - 4)) {
            snprintf (reason, reason_size, "bad type or envelope size in seq %" PRIu64, seq);
            return S_SCAN_DAMAGED;
        }
        const char *type = (const char *) record + S_RECORD_HEAD;
        uint32_t type_id;
        if (s_type_intern (self, type, type_size, &type_id) != 0)
            return S_SCAN_FAILED;
        if (s_segment_reserve (segment) != 0)
            return S_SCAN_FAILED;
        s_segment_index (segment, (uint32_t) offset, type_id, hd_get_u32 (record + 24),
                         hd_get_u64 (record + 16));
        scan->at += (size_t) body + 4;
        expected++;
    }
}

static int
s_compare_seq (const void *left, const void *right)
{
    uint64_t a = *(const uint64_t *) left, b = *(const uint64_t *) right;
    return a < b ? -1 : a > b;
}

//  The first seqs of the segment files in the directory, sorted.
static int
s_list_segments (hd_log_t *self, uint64_t **list_p, size_t *count_p)
{
    DIR *directory = opendir (self->directory);
    if (!directory)
        return -1;
    uint64_t *list = NULL;
    size_t count = 0, max = 0;
    struct dirent *entry;
    int rc = 0;
    while ((entry = readdir (directory))) {
        uint64_t first_seq;
        if (!s_parse_name (entry->d_name, &first_seq))
            continue;
        if (count == max) {
            max = max ? max * 2 : 64;
            uint64_t *grown = realloc (list, max * sizeof *list);
            if (!grown) {
                rc = -1;
                break;
            }
            list = grown;
        }
        list[count++] = first_seq;
    }
    closedir (directory);
    if (rc != 0) {
        free (list);
        return -1;
    }
    if (count > 1)
        qsort (list, count, sizeof *list, s_compare_seq);
    *list_p = list;
    *count_p = count;
    return 0;
}

//  The end of the last byte that is not zero in offset .. file_size
//  (offset when all are): zeros there were written ahead, not records.
static int
s_nonzero_end (int fd, uint64_t offset, uint64_t file_size, uint8_t *chunk, size_t chunk_size,
               uint64_t *end)
{
    *end = offset;
    while (offset < file_size) {
        size_t size = file_size - offset < chunk_size ? (size_t) (file_size - offset) : chunk_size;
        if (s_read_at (fd, chunk, size, offset) != 0)
            return -1;
        for (size_t at = size; at > 0; at--)
            if (chunk[at - 1]) {
                *end = offset + at;
                break;
            }
        offset += size;
    }
    return 0;
}

typedef enum { S_HEAD_OK, S_HEAD_TORN, S_HEAD_WRONG_SEQ, S_HEAD_UNREADABLE } s_head_t;

//  Reads and checks a segment head. Torn: short or without the magic, what
//  a crash while creating the file leaves (the file system may show zeros).
static s_head_t
s_head_check (int fd, uint64_t file_size, uint64_t first_seq)
{
    uint8_t head[S_HEAD_SIZE];
    if (file_size < S_HEAD_SIZE)
        return S_HEAD_TORN;
    if (s_read_at (fd, head, S_HEAD_SIZE, 0) != 0)
        return S_HEAD_UNREADABLE;
    if (memcmp (head, S_MAGIC, 8) != 0)
        return S_HEAD_TORN;
    return hd_get_u64 (head + 8) == first_seq ? S_HEAD_OK : S_HEAD_WRONG_SEQ;
}

//  Appends a sentence to the recovery detail.
static void
s_note (hd_log_recovery_t *recovery, const char *format, ...)
{
    size_t used = strlen (recovery->detail);
    if (used + 2 >= sizeof recovery->detail)
        return;
    if (used)
        recovery->detail[used++] = ' ';
    va_list args;
    va_start (args, format);
    vsnprintf (recovery->detail + used, sizeof recovery->detail - used, format, args);
    va_end (args);
}

//  Builds the index from the segment files. See log.h for what is repaired
//  and what is refused.
static int
s_recover (hd_log_t *self, bool skip_corrupt, hd_log_recovery_t *recovery, char *error,
           size_t error_size)
{
    uint64_t *names = NULL;
    size_t name_count = 0;
    if (s_list_segments (self, &names, &name_count) != 0) {
        s_set_error (error, error_size, "cannot list %s: %s", self->directory, strerror (errno));
        return -1;
    }
    char name[S_NAME_SIZE];
    uint64_t removed_next_seq = 0;

    //  A crash while a segment was being created can leave the last file
    //  empty or with a partial head. Nothing in it was confirmed (the head
    //  is written with the first records and synced before any confirm), so
    //  it goes; its name still tells the next seq if it was the only file.
    while (name_count) {
        s_segment_name (name, names[name_count - 1]);
        int fd = openat (self->dir_fd, name, O_RDONLY | O_CLOEXEC);
        struct stat status;
        if (fd < 0 || fstat (fd, &status) != 0) {
            s_set_error (error, error_size, "cannot open %s/%s: %s", self->directory, name,
                         strerror (errno));
            if (fd >= 0)
                close (fd);
            free (names);
            return -1;
        }
        s_head_t head = s_head_check (fd, (uint64_t) status.st_size, names[name_count - 1]);
        //  A spare renamed into place before its head was written is zeros
        //  only: space written ahead, not a torn write
        uint8_t chunk[4096];
        uint64_t data_end = (uint64_t) status.st_size;
        if (head == S_HEAD_TORN &&
            s_nonzero_end (fd, 0, (uint64_t) status.st_size, chunk, sizeof chunk, &data_end) != 0)
            head = S_HEAD_UNREADABLE;
        close (fd);
        if (head == S_HEAD_OK)
            break;
        //  Not what a crash leaves: refuse rather than delete data
        if (head != S_HEAD_TORN) {
            s_set_error (error, error_size, "corrupt log: %s/%s: %s", self->directory, name,
                         head == S_HEAD_UNREADABLE ? strerror (errno)
                                                   : "its head names another first seq");
            free (names);
            return -1;
        }
        if (unlinkat (self->dir_fd, name, 0) != 0) {
            s_set_error (error, error_size, "cannot remove %s/%s: %s", self->directory, name,
                         strerror (errno));
            free (names);
            return -1;
        }
        self->dir_dirty = true;
        recovery->truncated_bytes += data_end;
        recovery->unused_bytes += (uint64_t) status.st_size - data_end;
        s_note (recovery, "Removed %s (%" PRIu64 " bytes, no valid head: torn creation).", name,
                (uint64_t) status.st_size);
        removed_next_seq = names[name_count - 1];
        name_count--;
    }

    s_scan_t scan = {0};
    scan.max = S_SCAN_CHUNK;
    scan.data = malloc (scan.max);
    if (!scan.data && name_count) {
        s_set_error (error, error_size, "out of memory");
        free (names);
        return -1;
    }
    int rc = 0;
    for (size_t index = 0; index < name_count && rc == 0; index++) {
        bool last = index + 1 == name_count;
        uint64_t next_first = last ? 0 : names[index + 1];
        s_segment_name (name, names[index]);
        s_segment_t *segment = s_segment_new (names[index]);
        if (!segment || s_segments_push (self, segment) != 0) {
            s_segment_destroy (&segment);
            s_set_error (error, error_size, "out of memory");
            rc = -1;
            break;
        }
        segment->fd = openat (self->dir_fd, name, O_RDWR | O_CLOEXEC);
        struct stat status;
        if (segment->fd < 0 || fstat (segment->fd, &status) != 0) {
            s_set_error (error, error_size, "cannot open %s/%s: %s", self->directory, name,
                         strerror (errno));
            rc = -1;
            break;
        }
        uint64_t file_size = (uint64_t) status.st_size;
        segment->size = segment->flushed = file_size;
        segment->records_end = S_HEAD_SIZE;
        uint64_t bad_offset = 0;
        char reason[128];
        s_scan_result_t result;
        s_head_t head = s_head_check (segment->fd, file_size, segment->first_seq);
        if (head == S_HEAD_UNREADABLE)
            result = S_SCAN_FAILED;
        else if (head != S_HEAD_OK) {
            //  Only a file that is not the last can get here (see above)
            result = S_SCAN_DAMAGED;
            segment->records_end = 0;
            snprintf (reason, sizeof reason, "missing or bad segment head");
        } else
            result = s_scan_segment (self, &scan, segment, segment->fd, file_size, &bad_offset,
                                     reason, sizeof reason);
        if (result == S_SCAN_FAILED) {
            s_set_error (error, error_size, "cannot read %s/%s: %s", self->directory, name,
                         strerror (errno));
            rc = -1;
            break;
        }
        uint64_t after = segment->first_seq + segment->count; // first seq not in this file
        recovery->records += segment->count;
        if (result == S_SCAN_DAMAGED && last) {
            //  A torn or corrupt tail: nothing after it can have been
            //  confirmed, since records are written in order. Zeros after
            //  it are space written ahead (spare.h), not damage.
            uint64_t damage_end;
            if (s_nonzero_end (segment->fd, bad_offset, file_size, scan.data, scan.max,
                               &damage_end) != 0 ||
                ftruncate (segment->fd, (off_t) bad_offset) != 0) {
                s_set_error (error, error_size, "cannot read or truncate %s/%s: %s",
                             self->directory, name, strerror (errno));
                rc = -1;
                break;
            }
            recovery->truncated_bytes += damage_end - bad_offset;
            recovery->unused_bytes += file_size - damage_end;
            if (damage_end > bad_offset)
                s_note (recovery, "Truncated %" PRIu64 " bytes at offset %" PRIu64 " of %s: %s.",
                        damage_end - bad_offset, bad_offset, name, reason);
            if (file_size > damage_end)
                s_note (recovery, "Cut %" PRIu64 " unused bytes written ahead from the end of %s.",
                        file_size - damage_end, name);
            segment->size = segment->flushed = bad_offset;
        } else if (result == S_SCAN_DAMAGED) {
            if (!skip_corrupt) {
                s_set_error (error, error_size,
                             "corrupt log: %s/%s at offset %" PRIu64
                             ": %s; records from seq %" PRIu64 " on in this segment are lost "
                             "(start with skip-corrupt to open anyway, losing them)",
                             self->directory, name, bad_offset, reason, after);
                rc = -1;
                break;
            }
            if (next_first < after) {
                s_set_error (error, error_size,
                             "corrupt log: %s/%s holds seqs up to %" PRIu64
                             " but the next segment starts at %" PRIu64,
                             self->directory, name, after - 1, next_first);
                rc = -1;
                break;
            }
            recovery->skipped_records += next_first - after;
            recovery->skipped_bytes += file_size - bad_offset;
            s_note (recovery,
                    "Skipped %" PRIu64 " records (seqs %" PRIu64 "..%" PRIu64
                    ") in %s at offset %" PRIu64 ": %s.",
                    next_first - after, after, next_first - 1, name, bad_offset, reason);
        } else if (!last && next_first != after) {
            if (next_first < after || !skip_corrupt) {
                s_set_error (error, error_size,
                             "corrupt log: %s/%s ends before seq %" PRIu64
                             " but the next segment starts at %" PRIu64 " (%s)",
                             self->directory, name, after, next_first,
                             next_first < after ? "overlap" : "missing records");
                rc = -1;
                break;
            }
            recovery->skipped_records += next_first - after;
            s_note (recovery,
                    "Skipped %" PRIu64 " missing records (seqs %" PRIu64 "..%" PRIu64 ").",
                    next_first - after, after, next_first - 1);
        }
        segment->flushed_count = segment->count;
        segment->flushed_last_us = segment->last_us;
        segment->allocated = segment->size;
        self->bytes += segment->size;
        if (last)
            self->next_seq = after;
        else {
            //  Only the last segment stays open; older ones open on demand
            s_segment_trim (segment);
            close (segment->fd);
            segment->fd = -1;
        }
    }
    free (scan.data);
    free (names);
    if (rc == 0 && self->segment_count == 0)
        self->next_seq = removed_next_seq ? removed_next_seq : 1;
    recovery->segments = self->segment_count;
    return rc;
}

//  --------------------------------------------------------------------------
//  Public API

void
hd_log_config_defaults (hd_log_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->directory = "./herald-data";
    config->segment_size = S_DEFAULT_SEG;
    config->fsync = HD_FSYNC_ALWAYS;
    config->fsync_interval_ms = 1000;
    config->skip_corrupt = false;
    config->cache_bytes = 64u << 20;
    config->page_cache_keep = 256u << 20;
}

static void s_release_page_cache (hd_log_t *self, bool wait);

hd_log_t *
hd_log_open (const hd_log_config_t *config, hd_log_recovery_t *recovery, char *error,
             size_t error_size)
{
    hd_log_recovery_t local;
    if (!recovery)
        recovery = &local;
    memset (recovery, 0, sizeof *recovery);
    int64_t started = s_now_us ();
    if (!config || !config->directory || !*config->directory) {
        s_set_error (error, error_size, "no log directory given");
        errno = EINVAL;
        return NULL;
    }
    hd_log_t *self = calloc (1, sizeof *self);
    if (!self || !(self->directory = strdup (config->directory))) {
        s_set_error (error, error_size, "out of memory");
        free (self);
        return NULL;
    }
    self->dir_fd = -1;
    self->recent_type_id = UINT32_MAX;
    //  Offsets in the index are u32: a segment never starts a record past 4 GiB
    self->segment_size = config->segment_size ? config->segment_size : S_DEFAULT_SEG;
    if (self->segment_size > UINT32_MAX)
        self->segment_size = UINT32_MAX;
    self->fsync = config->fsync;
    self->fsync_interval_ms = config->fsync_interval_ms > 0 ? config->fsync_interval_ms : 0;
    self->page_cache_keep = config->page_cache_keep;
    long page_size = sysconf (_SC_PAGESIZE);
    self->page_size = page_size > 0 ? (uint64_t) page_size : 4096;
    self->next_seq = 1;
    if (config->cache_bytes &&
        !(self->cache = hd_cache_new (config->cache_bytes, HD_LOG_CACHE_COPY_MAX))) {
        s_set_error (error, error_size, "out of memory");
        hd_log_destroy (&self);
        errno = ENOMEM;
        return NULL;
    }

    if (s_make_directory (self->directory) != 0 ||
        (self->dir_fd = open (self->directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        s_set_error (error, error_size, "cannot open log directory %s: %s", self->directory,
                     strerror (errno));
        int saved = errno;
        hd_log_destroy (&self);
        errno = saved;
        return NULL;
    }
    //  Two writers would interleave records; the lock goes with the fd
    if (flock (self->dir_fd, LOCK_EX | LOCK_NB) != 0) {
        int saved = errno;
        s_set_error (error, error_size, "log directory %s is in use by another process (%s)",
                     self->directory, strerror (saved));
        hd_log_destroy (&self);
        errno = saved;
        return NULL;
    }
    if (s_recover (self, config->skip_corrupt, recovery, error, error_size) != 0) {
        int saved = errno;
        hd_log_destroy (&self);
        errno = saved;
        return NULL;
    }
    self->flushed_seq = self->next_seq;
    //  Repairs (truncation, removed files) are made durable before anyone
    //  appends after them
    if (self->fsync != HD_FSYNC_NEVER &&
        (recovery->truncated_bytes || recovery->unused_bytes || self->dir_dirty)) {
        s_segment_t *last = s_last (self);
        if ((last && s_sync (self, last->fd, false) != 0) ||
            s_sync (self, self->dir_fd, true) != 0) {
            s_set_error (error, error_size, "cannot sync %s: %s", self->directory,
                         strerror (errno));
            int saved = errno;
            hd_log_destroy (&self);
            errno = saved;
            return NULL;
        }
        self->dir_dirty = false;
    }
    //  A spare left by a crash is space, not data; gone whether or not
    //  this run prepares segments
    if (unlinkat (self->dir_fd, S_SPARE_NAME, 0) == 0)
        s_note (recovery, "Removed an unused %s.", S_SPARE_NAME);
    if (config->prepare_segments && self->fsync != HD_FSYNC_NEVER) {
        //  Leave the file system at least one more segment's room. Without
        //  the thread the log only appends, as with prepare_segments off.
        char reason[128];
        self->spare = hd_spare_new (self->dir_fd, S_SPARE_NAME, self->segment_size,
                                    self->segment_size, S_SPARE_RETRY, reason, sizeof reason);
        if (!self->spare)
            s_note (recovery, "Segments are not written ahead: %s.", reason);
    }
    //  Recovery read the whole log through the page cache. Pages a crashed
    //  run left dirty are not waited for: writeback is started, and they
    //  stay cached until the kernel reclaims them
    if (self->page_cache_keep)
        s_release_page_cache (self, false);
    recovery->elapsed_us = s_now_us () - started;
    s_note (recovery,
            "Recovered %" PRIu64 " records (seqs %" PRIu64 "..%" PRIu64 ") in %" PRIu64
            " segments in %" PRId64 " ms.",
            recovery->records, hd_log_first_seq (self), self->next_seq - 1, recovery->segments,
            recovery->elapsed_us / 1000);
    return self;
}

static int s_flush (hd_log_t *self, int64_t now_ms, bool force_sync);
static int s_segment_close_tail (hd_log_t *self, s_segment_t *segment);

void
hd_log_destroy (hd_log_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_log_t *self = *self_p;
    //  A clean close writes and syncs what is buffered (best effort: on
    //  failure it is rolled back, as it was never confirmed)
    s_flush (self, 0, true);
    hd_spare_destroy (&self->spare);
    //  Zeros written ahead go, so that a clean restart finds only records
    //  (best effort: recovery cuts them too)
    if (s_last (self))
        s_segment_close_tail (self, s_last (self));
    for (size_t index = 0; index < self->segment_count; index++)
        s_segment_destroy (&self->segments[index]);
    free (self->segments);
    hd_cache_destroy (&self->cache);
    for (uint32_t id = 0; id < self->type_count; id++)
        free (self->types[id].name);
    free (self->types);
    free (self->type_slots);
    free (self->buffer);
    free (self->read_buffer);
    if (self->dir_fd >= 0)
        close (self->dir_fd);
    free (self->directory);
    free (self);
    *self_p = NULL;
}

uint64_t
hd_log_first_seq (hd_log_t *self)
{
    return self->segment_count ? self->segments[0]->first_seq : self->next_seq;
}

uint64_t
hd_log_next_seq (hd_log_t *self)
{
    return self->next_seq;
}

uint64_t
hd_log_bytes (hd_log_t *self)
{
    return self->bytes;
}

uint64_t
hd_log_append (hd_log_t *self, uint64_t recorded_us, const char *type, size_t type_size,
               uint32_t key_hash, const hd_record_t *event, bool cache)
{
    if (!type || type_size == 0 || type_size > 255 || !event) {
        errno = EINVAL;
        return 0;
    }
    size_t envelope_size = event->envelope_size, payload_size = event->payload_size;
    uint64_t body = (uint64_t) (S_RECORD_HEAD - 4) + type_size + envelope_size + payload_size;
    if (body > UINT32_MAX || envelope_size > UINT32_MAX) {
        errno = EMSGSIZE;
        return 0;
    }
    size_t record_size = (size_t) body + 4;
    uint32_t type_id;
    if (s_type_intern (self, type, type_size, &type_id) != 0)
        return 0;

    //  A record goes into a new segment when it would pass segment_size,
    //  unless the segment is empty (so a huge record gets one of its own),
    //  and as soon as a file written ahead is ready while the segment's own
    //  file is being appended to (a new log, a restart, a failed flush)
    s_segment_t *segment = s_last (self);
    bool roll = !segment ||
                (segment->size > S_HEAD_SIZE && segment->size + record_size > self->segment_size) ||
                (self->spare && segment->flushed > S_HEAD_SIZE &&
                 segment->allocated == segment->flushed && hd_spare_ready (self->spare));
    if (hd_buffer_reserve (&self->buffer, &self->buffer_max,
                           self->buffer_size + record_size + (roll ? S_HEAD_SIZE : 0)) != 0)
        return 0;
    if (roll) {
        s_segment_t *created = s_segment_new (self->next_seq);
        if (!created || s_segments_push (self, created) != 0) {
            s_segment_destroy (&created);
            errno = ENOMEM;
            return 0;
        }
        if (segment)
            s_segment_trim (segment);
        segment = created;
        segment->buffer_at = self->buffer_size;
        uint8_t *head = self->buffer + self->buffer_size;
        memcpy (head, S_MAGIC, 8);
        hd_put_u64 (head + 8, segment->first_seq);
        self->buffer_size += S_HEAD_SIZE;
        segment->size = segment->records_end = S_HEAD_SIZE;
        self->bytes += S_HEAD_SIZE;
    } else {
        if (s_segment_reserve (segment) != 0)
            return 0;
        if (segment->size == segment->flushed)
            segment->buffer_at = self->buffer_size;
    }

    uint64_t seq = self->next_seq;
    uint8_t *record = self->buffer + self->buffer_size;
    hd_put_u32 (record, (uint32_t) body);
    hd_put_u64 (record + 8, seq);
    hd_put_u64 (record + 16, recorded_us);
    hd_put_u32 (record + 24, key_hash);
    hd_put_u16 (record + 28, (uint16_t) type_size);
    hd_put_u32 (record + 30, (uint32_t) envelope_size);
    uint8_t *data = record + S_RECORD_HEAD;
    memcpy (data, type, type_size);
    data += type_size;
    if (envelope_size)
        memcpy (data, event->envelope, envelope_size);
    data += envelope_size;
    if (payload_size)
        memcpy (data, event->payload, payload_size);
    hd_put_u32 (record + 4, hd_crc32c (0, record + S_CRC_FROM, record_size - S_CRC_FROM));

    s_segment_index (segment, (uint32_t) segment->size, type_id, key_hash, recorded_us);
    segment->size += record_size;
    segment->records_end = segment->size;
    self->buffer_size += record_size;
    self->bytes += record_size;
    if (self->cache)
        hd_cache_add (self->cache, seq, event, cache && envelope_size > 0);
    return self->next_seq++;
}

//  Cuts a segment's file back to its flushed size after a failed flush
//  (zeros written ahead after it go too: cheaper than writing them back),
//  and syncs that at once: the bytes cut may already be on disk (synced
//  before a roll, written back, or inside a file written ahead whose size
//  was durable), and they must not come back after a crash, nor sit in a
//  segment that gets a successor. What cannot be cut or synced now is left
//  for s_segment_close_tail and the next flush (allocated, dirty).
static void
s_segment_cut_back (hd_log_t *self, s_segment_t *segment)
{
    uint64_t file_end = segment->allocated > segment->size ? segment->allocated : segment->size;
    if (segment->fd < 0 || s_truncate (self, segment->fd, segment->flushed) != 0) {
        segment->allocated = file_end;
        return;
    }
    segment->allocated = segment->flushed;
    if (self->fsync == HD_FSYNC_NEVER)
        return;
    if (s_sync (self, segment->fd, false) != 0) {
        segment->dirty = true;
        self->unsynced = true;
    }
}

//  Puts the files and the index back as they were at the last successful
//  flush: removes segments created since, cuts the one that was being
//  written back to its flushed size.
static void
s_rollback (hd_log_t *self)
{
    while (self->segment_count) {
        s_segment_t *segment = s_last (self);
        if (segment->size == segment->flushed)
            break;
        self->bytes -= segment->size - segment->flushed;
        if (segment->flushed == 0) {
            if (segment->fd >= 0) {
                char name[S_NAME_SIZE];
                s_segment_name (name, segment->first_seq);
                unlinkat (self->dir_fd, name, 0);
                self->dir_dirty = true;
            }
            s_segment_destroy (&segment);
            self->segment_count--;
            continue;
        }
        s_segment_cut_back (self, segment);
        segment->size = segment->records_end = segment->flushed;
        segment->count = segment->flushed_count;
        segment->last_us = segment->flushed_last_us;
        break;
    }
    if (self->cache)
        hd_cache_drop_from (self->cache, self->flushed_seq);
    self->next_seq = self->flushed_seq;
    self->buffer_size = 0;
}

//  A full segment about to get a successor: zeros written ahead after its
//  records are cut, and that is synced before the successor exists, so that
//  only the last segment ever ends in zeros.
static int
s_segment_close_tail (hd_log_t *self, s_segment_t *segment)
{
    if (segment->allocated > segment->size) {
        if (s_segment_fd (self, segment) < 0 || s_truncate (self, segment->fd, segment->size) != 0)
            return -1;
        segment->allocated = segment->size;
        segment->dirty = segment->dirty || self->fsync != HD_FSYNC_NEVER;
    }
    if (segment->dirty) {
        if (s_sync (self, segment->fd, false) != 0)
            return -1;
        segment->dirty = false;
    }
    return 0;
}

//  Opens a new segment's file: the spare written ahead when one is ready,
//  else a new empty file.
static int
s_segment_create (hd_log_t *self, s_segment_t *segment)
{
    char name[S_NAME_SIZE];
    s_segment_name (name, segment->first_seq);
    uint64_t taken = self->spare ? hd_spare_take (self->spare, name) : 0;
    int flags = O_RDWR | O_CLOEXEC | (taken ? 0 : O_CREAT | O_TRUNC);
    segment->fd = openat (self->dir_fd, name, flags, 0644);
    self->dir_dirty = true;
    if (segment->fd < 0) {
        int error = errno;
        if (taken)
            unlinkat (self->dir_fd, name, 0);
        errno = error;
        return -1;
    }
    segment->allocated = taken;
    segment->used = ++self->clock;
    if (taken)
        self->segments_prepared++;
    else if (self->spare)
        self->segments_appended++; // the spare was late, or given back on a full disk
    return 0;
}

//  Writes segment's unflushed bytes. A full disk first gets the spare's
//  space back, which is the log's own, before the write is refused.
static int
s_segment_write (hd_log_t *self, s_segment_t *segment)
{
    const uint8_t *data = self->buffer + segment->buffer_at;
    size_t size = (size_t) (segment->size - segment->flushed);
    if (s_write_at (self, segment->fd, data, size, segment->flushed) == 0)
        return 0;
    if (errno != ENOSPC || !self->spare || hd_spare_release (self->spare) == 0)
        return -1;
    return s_write_at (self, segment->fd, data, size, segment->flushed);
}

//  --------------------------------------------------------------------------
//  The OS page cache

//  Where, in a segment file of size bytes followed by newer bytes of the
//  log, the bytes at least distance behind the log's end stop.
static uint64_t
s_offset_behind (uint64_t size, uint64_t newer, uint64_t distance)
{
    if (newer >= distance)
        return size;
    uint64_t inside = distance - newer;
    return size > inside ? size - inside : 0;
}

//  Gives back to the OS the page cache of what lies more than
//  page_cache_keep bytes behind the log's end. The log writes every byte
//  once and reads little of it back (deliveries come from the hot cache),
//  yet left alone the kernel keeps all of it cached, gigabytes for a
//  long-running broker, and every new page it caches is memory found and
//  cleared for a write (on a VM, memory the host must supply again). Pages
//  given back are reused warm by the next writes.
//  Unless every flush is synced (--fsync always), writeback is started
//  half the distance back and, with wait, waited for at the full distance,
//  so only clean pages are dropped: dirty data stays bounded by the
//  distance, and a disk slower than the publishers slows the loop here
//  rather than at the kernel's dirty limit (a fifth of memory). Never on a
//  segment an fdatasync is still due for (--fsync interval): waiting on its
//  fd would take a writeback error that fdatasync must report. Its pages
//  still dirty stay cached until it is closed (synced) and dropped whole.
//  Best effort otherwise: a failed call leaves its pages to the kernel.
static void
s_release_page_cache (hd_log_t *self, bool wait)
{
    uint64_t keep = self->page_cache_keep;
    uint64_t newer = 0;
    for (size_t index = self->segment_count; index-- > 0;) {
        s_segment_t *segment = self->segments[index];
        uint64_t size = segment->flushed;
        if (newer >= keep && segment->dropped >= size)
            break; // the older segments were released before this one
        uint64_t write_to = s_offset_behind (size, newer, keep / 2);
        uint64_t drop_to = s_offset_behind (size, newer, keep);
        //  The kernel drops only pages, and folios of several, wholly inside
        //  a range: a range ends at a page's start, and a segment no longer
        //  written is dropped once more from its start to its end (length
        //  0), which takes what the earlier ranges' edges left
        bool whole = drop_to == size && index + 1 < self->segment_count;
        if (!whole)
            drop_to -= drop_to % self->page_size;
        newer += size;
        bool write = self->fsync != HD_FSYNC_ALWAYS && write_to > segment->written_back;
        if (!write && drop_to <= segment->dropped)
            continue;
        int fd = s_segment_fd (self, segment);
        if (fd < 0)
            continue;
        if (write) {
            sync_file_range (fd, (off_t) segment->written_back,
                             (off_t) (write_to - segment->written_back), SYNC_FILE_RANGE_WRITE);
            segment->written_back = write_to;
        }
        if (drop_to > segment->dropped) {
            off_t from = (off_t) segment->dropped, length = (off_t) (drop_to - segment->dropped);
            if (wait && self->fsync != HD_FSYNC_ALWAYS && !segment->dirty)
                sync_file_range (fd, from, length,
                                 SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                     SYNC_FILE_RANGE_WAIT_AFTER);
            if (whole)
                posix_fadvise (fd, 0, 0, POSIX_FADV_DONTNEED);
            else
                posix_fadvise (fd, from, length, POSIX_FADV_DONTNEED);
            self->page_cache_released += drop_to - segment->dropped;
            segment->dropped = drop_to;
        }
    }
}

//  Releases once every eighth of the distance kept has been flushed.
static void
s_page_cache_flushed (hd_log_t *self, uint64_t bytes)
{
    if (!self->page_cache_keep)
        return;
    self->page_cache_due += bytes;
    uint64_t step = self->page_cache_keep / 8;
    if (self->page_cache_due >= (step > S_RELEASE_MIN ? step : S_RELEASE_MIN)) {
        self->page_cache_due = 0;
        s_release_page_cache (self, true);
    }
}

static int
s_flush (hd_log_t *self, int64_t now_ms, bool force_sync)
{
    bool syncing = self->fsync != HD_FSYNC_NEVER;
    bool created = false;
    uint64_t written = 0;
    //  The unflushed segments are a suffix
    size_t first = self->segment_count;
    while (first > 0 && self->segments[first - 1]->size > self->segments[first - 1]->flushed)
        first--;
    for (size_t index = first; index < self->segment_count; index++) {
        s_segment_t *segment = self->segments[index];
        if (segment->flushed == 0) {
            //  The previous segment is synced before its successor exists,
            //  so a crash can tear only the last segment, never one inside
            s_segment_t *previous = index ? self->segments[index - 1] : NULL;
            if (previous && s_segment_close_tail (self, previous) != 0)
                goto failed;
            created = true;
            if (s_segment_create (self, segment) != 0)
                goto failed;
        } else if (s_segment_fd (self, segment) < 0)
            goto failed;
        if (s_segment_write (self, segment) != 0)
            goto failed;
        written += segment->size - segment->flushed;
        if (self->spare)
            hd_spare_note_written (self->spare, segment->size - segment->flushed);
        if (segment->size > segment->allocated)
            segment->allocated = segment->size;
        segment->dirty = self->unsynced = syncing;
    }
    bool due = self->fsync == HD_FSYNC_ALWAYS || force_sync || !self->synced_once ||
               now_ms - self->last_sync_ms >= self->fsync_interval_ms;
    if (syncing && due && (self->unsynced || self->dir_dirty)) {
        bool synced = false;
        for (size_t index = 0; index < self->segment_count && self->unsynced; index++) {
            s_segment_t *segment = self->segments[index];
            if (segment->dirty) {
                if (s_sync (self, segment->fd, false) != 0)
                    goto failed;
                segment->dirty = false;
                synced = true;
            }
        }
        self->unsynced = false;
        if (self->dir_dirty) {
            if (s_sync (self, self->dir_fd, true) != 0)
                goto failed;
            self->dir_dirty = false;
            synced = true;
        }
        if (synced) {
            self->last_sync_ms = now_ms;
            self->synced_once = true;
        }
    }
    for (size_t index = first; index < self->segment_count; index++) {
        s_segment_t *segment = self->segments[index];
        segment->flushed = segment->size;
        segment->flushed_count = segment->count;
        segment->flushed_last_us = segment->last_us;
    }
    self->flushed_seq = self->next_seq;
    self->buffer_size = 0;
    if (self->buffer_max > S_BUFFER_KEEP) {
        free (self->buffer);
        self->buffer = NULL;
        self->buffer_max = 0;
    }
    if (created)
        s_trim_fds (self);
    s_page_cache_flushed (self, written);
    return 0;

failed:;
    int error = errno;
    //  Data written since the last sync stays dirty: a later sync retries
    s_rollback (self);
    errno = error;
    return -1;
}

int
hd_log_flush (hd_log_t *self, int64_t now_ms)
{
    return s_flush (self, now_ms, false);
}

size_t
hd_log_unflushed (hd_log_t *self)
{
    return (size_t) (self->next_seq - self->flushed_seq);
}

bool
hd_log_sync_due (hd_log_t *self, int64_t now_ms)
{
    if (self->fsync != HD_FSYNC_INTERVAL)
        return false;
    return (self->unsynced || self->dir_dirty) &&
           (!self->synced_once || now_ms - self->last_sync_ms >= self->fsync_interval_ms);
}

//  The bytes of record index of segment, from the write buffer or the file.
//  Returns NULL with errno on failure.
static const uint8_t *
s_record_bytes (hd_log_t *self, s_segment_t *segment, uint64_t index, size_t *size_p)
{
    uint64_t offset = segment->entries[index].offset;
    uint64_t end =
        index + 1 < segment->count ? segment->entries[index + 1].offset : segment->records_end;
    size_t size = (size_t) (end - offset);
    *size_p = size;
    if (offset >= segment->flushed)
        return self->buffer + segment->buffer_at + (offset - segment->flushed);
    int fd = s_segment_fd (self, segment);
    if (fd < 0 || hd_buffer_reserve (&self->read_buffer, &self->read_max, size) != 0 ||
        s_read_at (fd, self->read_buffer, size, offset) != 0) {
        if (errno == 0 || errno == ENOENT)
            errno = EIO; // the index says it exists: a missing file is damage
        return NULL;
    }
    return self->read_buffer;
}

bool
hd_log_peek (hd_log_t *self, uint64_t seq, hd_log_view_t *view)
{
    hd_cache_view_t cached;
    if (!self->cache || !hd_cache_find (self->cache, seq, &cached))
        return false;
    view->envelope = cached.envelope;
    view->envelope_size = cached.envelope_size;
    view->payload = cached.payload;
    view->payload_size = cached.payload_size;
    return true;
}

void
hd_log_cache_release (hd_log_t *self, uint64_t seq)
{
    if (self->cache)
        hd_cache_drop_before (self->cache, seq);
}

size_t
hd_log_cache_events (hd_log_t *self)
{
    return self->cache ? hd_cache_count (self->cache) : 0;
}

size_t
hd_log_cache_bytes (hd_log_t *self)
{
    return self->cache ? hd_cache_bytes (self->cache) : 0;
}

int
hd_log_read (hd_log_t *self, uint64_t seq, zmq_msg_t *envelope, zmq_msg_t *payload)
{
    if (seq < hd_log_first_seq (self) || seq >= self->next_seq) {
        errno = ENOENT;
        return -1;
    }
    hd_cache_view_t cached;
    if (self->cache && hd_cache_find (self->cache, seq, &cached)) {
        if (cached.envelope_frame) {
            zmq_msg_init (envelope);
            zmq_msg_init (payload);
            zmq_msg_copy (envelope, cached.envelope_frame);
            zmq_msg_copy (payload, cached.payload_frame);
            return 0;
        }
        //  A small record the cache copied: copied out again
        if (hd_msg_init_copy (envelope, cached.envelope, cached.envelope_size) != 0)
            return -1;
        if (hd_msg_init_copy (payload, cached.payload, cached.payload_size) != 0) {
            zmq_msg_close (envelope);
            return -1;
        }
        return 0;
    }
    s_segment_t *segment = s_find (self, seq);
    if (!segment || seq - segment->first_seq >= segment->count) {
        errno = ENOENT; // lost in a damaged segment skipped at recovery
        return -1;
    }
    size_t size;
    const uint8_t *record = s_record_bytes (self, segment, seq - segment->first_seq, &size);
    if (!record)
        return -1;
    if (size < S_RECORD_HEAD || hd_get_u32 (record) != size - 4 ||
        hd_get_u32 (record + 4) != hd_crc32c (0, record + S_CRC_FROM, size - S_CRC_FROM) ||
        hd_get_u64 (record + 8) != seq) {
        errno = EIO;
        return -1;
    }
    size_t type_size = hd_get_u16 (record + 28);
    size_t envelope_size = hd_get_u32 (record + 30);
    if (type_size + envelope_size > size - S_RECORD_HEAD) {
        errno = EIO;
        return -1;
    }
    size_t payload_size = size - S_RECORD_HEAD - type_size - envelope_size;
    if (zmq_msg_init_size (envelope, envelope_size) != 0)
        return -1;
    if (zmq_msg_init_size (payload, payload_size) != 0) {
        zmq_msg_close (envelope);
        return -1;
    }
    const uint8_t *data = record + S_RECORD_HEAD + type_size;
    if (envelope_size)
        memcpy (zmq_msg_data (envelope), data, envelope_size);
    if (payload_size)
        memcpy (zmq_msg_data (payload), data + envelope_size, payload_size);
    if (self->read_max > S_BUFFER_KEEP) {
        free (self->read_buffer);
        self->read_buffer = NULL;
        self->read_max = 0;
    }
    return 0;
}

bool
hd_log_meta (hd_log_t *self, uint64_t seq, uint32_t *type_id, uint32_t *key_hash)
{
    if (seq >= self->next_seq)
        return false;
    s_segment_t *segment = s_find (self, seq);
    if (!segment || seq - segment->first_seq >= segment->count)
        return false;
    s_entry_t *entry = &segment->entries[seq - segment->first_seq];
    if (type_id)
        *type_id = entry->type_id;
    if (key_hash)
        *key_hash = entry->key_hash;
    return true;
}

const char *
hd_log_type_name (hd_log_t *self, uint32_t type_id)
{
    return type_id < self->type_count ? self->types[type_id].name : "";
}

uint32_t
hd_log_type_count (hd_log_t *self)
{
    return self->type_count;
}

//  The recorded time of one record, read from its header. On a read error
//  the time sample of its block stands in (the answer is then approximate,
//  which is all a time lookup can promise with clock steps anyway).
static uint64_t
s_record_time (hd_log_t *self, s_segment_t *segment, uint64_t index)
{
    uint64_t offset = segment->entries[index].offset;
    uint8_t field[8];
    const uint8_t *at = field;
    if (offset >= segment->flushed)
        at = self->buffer + segment->buffer_at + (offset - segment->flushed) + 16;
    else {
        int fd = s_segment_fd (self, segment);
        if (fd < 0 || s_read_at (fd, field, 8, offset + 16) != 0)
            return segment->times[index / S_TIME_EVERY];
    }
    return hd_get_u64 (at);
}

//  The last recorded time up to segment index; a record-less segment
//  (skipped damage, a tail cut to its head) takes its predecessor's, so the
//  times stay non-decreasing for bisection.
static uint64_t
s_last_us (hd_log_t *self, size_t index)
{
    for (; index < self->segment_count; index--)
        if (self->segments[index]->count)
            return self->segments[index]->last_us;
    return 0;
}

uint64_t
hd_log_seq_at_time (hd_log_t *self, uint64_t time_us)
{
    //  Recorded times are the broker's clock at append: non-decreasing
    //  along the log, so segments, then samples, then records bisect
    size_t low = 0, high = self->segment_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        if (s_last_us (self, middle) < time_us)
            low = middle + 1;
        else
            high = middle;
    }
    //  Defensive: the bisection lands on a segment with records
    while (low < self->segment_count && self->segments[low]->count == 0)
        low++;
    if (low == self->segment_count)
        return self->next_seq;
    s_segment_t *segment = self->segments[low];
    size_t samples = (size_t) ((segment->count + S_TIME_EVERY - 1) / S_TIME_EVERY);
    size_t sample_low = 0, sample_high = samples; // first sample with time >= time_us
    while (sample_low < sample_high) {
        size_t middle = sample_low + (sample_high - sample_low) / 2;
        if (segment->times[middle] < time_us)
            sample_low = middle + 1;
        else
            sample_high = middle;
    }
    if (sample_low == 0)
        return segment->first_seq;
    //  The answer is in the block before that sample, or is the sample
    uint64_t record_low = (uint64_t) (sample_low - 1) * S_TIME_EVERY + 1;
    uint64_t record_high = (uint64_t) sample_low * S_TIME_EVERY;
    if (record_high > segment->count - 1)
        record_high = segment->count - 1; // the last record qualifies (last_us >= time_us)
    while (record_low < record_high) {
        uint64_t middle = record_low + (record_high - record_low) / 2;
        if (s_record_time (self, segment, middle) < time_us)
            record_low = middle + 1;
        else
            record_high = middle;
    }
    return segment->first_seq + record_low;
}

uint64_t
hd_log_retain (hd_log_t *self, uint64_t keep_from_seq, uint64_t max_age_us, uint64_t max_bytes,
               bool hard, uint64_t now_us)
{
    uint64_t deleted = 0;
    size_t gone = 0;
    //  Only a prefix can go (first_seq moves up, no holes), never the last
    while (gone + 1 < self->segment_count) {
        s_segment_t *segment = self->segments[gone];
        uint64_t last_seq = self->segments[gone + 1]->first_seq - 1;
        if (!hard && last_seq >= keep_from_seq)
            break;
        if (segment->size != segment->flushed || segment->dirty)
            break;
        bool too_old =
            max_age_us && now_us > segment->last_us && now_us - segment->last_us > max_age_us;
        bool too_big = max_bytes && self->bytes > max_bytes;
        if (!too_old && !too_big)
            break;
        char name[S_NAME_SIZE];
        s_segment_name (name, segment->first_seq);
        if (unlinkat (self->dir_fd, name, 0) != 0 && errno != ENOENT)
            break;
        self->bytes -= segment->size;
        deleted += segment->count;
        s_segment_destroy (&self->segments[gone]);
        gone++;
    }
    if (gone) {
        memmove (self->segments, self->segments + gone,
                 (self->segment_count - gone) * sizeof *self->segments);
        self->segment_count -= gone;
        if (self->cache)
            hd_cache_drop_before (self->cache, hd_log_first_seq (self));
    }
    return deleted;
}

uint32_t
hd_log_key_hash (const char *key, size_t size)
{
    if (!key || size == 0)
        return 0;
    uint32_t hash = s_hash_bytes (key, size);
    return hash ? hash : 1;
}

uint64_t
hd_log_spare_bytes (hd_log_t *self)
{
    s_segment_t *last = s_last (self);
    uint64_t ahead = last && last->allocated > last->size ? last->allocated - last->size : 0;
    return ahead + (self->spare ? hd_spare_bytes (self->spare) : 0);
}

uint64_t
hd_log_page_cache_released (hd_log_t *self)
{
    return self->page_cache_released;
}

uint64_t
hd_log_segments_prepared (hd_log_t *self)
{
    return self->segments_prepared;
}

uint64_t
hd_log_segments_appended (hd_log_t *self)
{
    return self->segments_appended;
}

bool
hd_log_wait_spare (hd_log_t *self, int64_t timeout_ms)
{
    return self->spare && hd_spare_wait_ready (self->spare, timeout_ms);
}

void
hd_log_set_fail_write (hd_log_t *self, int error, unsigned skip)
{
    self->fail_write = error;
    self->fail_write_skip = skip;
}

void
hd_log_set_fail_truncate (hd_log_t *self, int error)
{
    self->fail_truncate = error;
}

void
hd_log_set_fail_sync (hd_log_t *self, int error, unsigned skip)
{
    self->fail_sync = error;
    self->fail_sync_skip = skip;
}

uint64_t
hd_log_syncs (hd_log_t *self)
{
    return self->syncs;
}
