/*  journal — checkpoint plus append-only record file, with generations so
    that a crash during a checkpoint never replays records twice. See
    journal.h for the file formats and the recovery rules.
*/
#include "journal.h"
#include "buffer.h"
#include "bytes.h"
#include "crc32c.h"
#include "file.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HD_JOURNAL_HEAD        8                   // u64 generation
#define HD_JOURNAL_FRAME       8                   // u32 size, u32 crc32c
#define HD_JOURNAL_MAX_RECORD  (64u * 1024 * 1024) // larger sizes can only be corruption
#define HD_CHECKPOINT_HEAD     16                  // u32 size, u32 crc32c, u64 generation
#define HD_JOURNAL_READ_CHUNK  (1024 * 1024)       // recovery reads this much at a time
#define HD_JOURNAL_KEEP_BUFFER (1024 * 1024)       // larger write buffers are freed after a flush

struct _hd_journal_t {
    char *journal_path;
    char *checkpoint_path;
    char *temporary_path;
    char *directory;
    int fd;              // the journal file, O_RDWR
    uint64_t generation; // of the journal file and the current checkpoint
    uint64_t file_size;  // last good size of the journal file
    uint8_t *buffer;     // framed records appended since the last flush
    size_t buffer_used;
    size_t buffer_size;
    hd_fsync_t fsync;
    int64_t fsync_interval_ms;
    bool sync_next;       // the next flush syncs whatever the interval says
    bool unsynced;        // written data waits for an fdatasync
    bool synced_once;     // last_sync_ms is meaningful
    int64_t last_sync_ms; // now_ms of the last policy fdatasync
    bool tail_dirty;      // a rollback ftruncate failed: redo it before writing
    bool broken;          // a checkpoint failed past its rename: refuse writes
    uint64_t syncs;
    int fail_next_write; // test hook: errno for the next write, 0 = none
};

//  Appends a sentence to the recovery detail, keeping what fits.
static void
s_detail (hd_journal_recovery_t *recovery, const char *format, ...)
{
    size_t used = strlen (recovery->detail);
    if (used + 1 >= sizeof recovery->detail)
        return;
    if (used) {
        recovery->detail[used++] = ' ';
        recovery->detail[used] = 0;
    }
    va_list args;
    va_start (args, format);
    vsnprintf (recovery->detail + used, sizeof recovery->detail - used, format, args);
    va_end (args);
}

static void
s_error (char *error, size_t error_size, const char *format, ...)
{
    if (!error || !error_size)
        return;
    va_list args;
    va_start (args, format);
    vsnprintf (error, error_size, format, args);
    va_end (args);
}

//  Writes all of data at offset. The test hook writes half for real first,
//  so rollback has a real partial write to undo.
static int
s_write_all (hd_journal_t *self, int fd, const uint8_t *data, size_t size, uint64_t offset)
{
    int fail = self->fail_next_write;
    self->fail_next_write = 0;
    if (fail) {
        if (hd_file_write_at (fd, data, size / 2, offset) == 0)
            errno = fail;
        return -1;
    }
    return hd_file_write_at (fd, data, size, offset);
}

//  A rename or a new file is only durable once its directory is synced.
static int
s_sync_directory (const char *directory)
{
    int fd = open (directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync (fd);
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}

//  Restarts the journal file empty with generation: cut to 0, write the
//  head, sync. A crash in between leaves an empty or short file (read as
//  "no records") or the old generation (discarded as stale): both safe.
static int
s_journal_reset (hd_journal_t *self, uint64_t generation)
{
    uint8_t head[HD_JOURNAL_HEAD];
    hd_put_u64 (head, generation);
    if (ftruncate (self->fd, 0) != 0)
        return -1;
    self->file_size = 0;
    if (s_write_all (self, self->fd, head, sizeof head, 0) != 0)
        return -1;
    if (fdatasync (self->fd) != 0)
        return -1;
    self->generation = generation;
    self->file_size = HD_JOURNAL_HEAD;
    self->unsynced = false;
    self->tail_dirty = false;
    return 0;
}

//  Puts the file back to its last good size after a failed write or sync.
//  If even that fails, the next write retries it first, as garbage beyond
//  file_size must never end up between good records.
static void
s_rollback (hd_journal_t *self)
{
    self->buffer_used = 0;
    while (ftruncate (self->fd, (off_t) self->file_size) != 0) {
        if (errno != EINTR) {
            self->tail_dirty = true;
            return;
        }
    }
    self->tail_dirty = false;
}

//  Writes the buffered records after file_size. On failure drops them and
//  cuts the file back, errno preserved.
static int
s_write_pending (hd_journal_t *self)
{
    if (self->buffer_used == 0)
        return 0;
    if (self->tail_dirty && ftruncate (self->fd, (off_t) self->file_size) != 0) {
        self->buffer_used = 0;
        return -1;
    }
    self->tail_dirty = false;
    if (s_write_all (self, self->fd, self->buffer, self->buffer_used, self->file_size) != 0) {
        int saved = errno;
        s_rollback (self);
        errno = saved;
        return -1;
    }
    self->file_size += self->buffer_used;
    self->buffer_used = 0;
    self->unsynced = true;
    //  One huge record must not pin its buffer for the life of the broker
    if (self->buffer_size > HD_JOURNAL_KEEP_BUFFER) {
        free (self->buffer);
        self->buffer = NULL;
        self->buffer_size = 0;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Recovery

//  Reads the checkpoint, if any, and hands its blob to fn. Returns 0 with
//  *generation set (0 without a checkpoint), or -1 with error written.
static int
s_recover_checkpoint (hd_journal_t *self, bool skip_corrupt, hd_journal_replay_fn *fn, void *arg,
                      hd_journal_recovery_t *recovery, uint64_t *generation, char *error,
                      size_t error_size)
{
    *generation = 0;
    int fd = open (self->checkpoint_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        s_error (error, error_size, "cannot open %s: %s", self->checkpoint_path, strerror (errno));
        return -1;
    }
    struct stat status;
    if (fstat (fd, &status) != 0) {
        s_error (error, error_size, "cannot stat %s: %s", self->checkpoint_path, strerror (errno));
        close (fd);
        return -1;
    }
    uint64_t file_size = (uint64_t) status.st_size;
    uint8_t *data = malloc (file_size ? file_size : 1);
    if (!data) {
        s_error (error, error_size, "no memory for a %" PRIu64 "-byte checkpoint", file_size);
        close (fd);
        return -1;
    }
    ssize_t got = hd_file_read_at (fd, data, file_size, 0);
    int saved = errno;
    close (fd);
    if (got < 0) {
        s_error (error, error_size, "cannot read %s: %s", self->checkpoint_path, strerror (saved));
        free (data);
        return -1;
    }
    //  The file is written whole before the rename, so any mismatch, even
    //  in the length, is damage and not a torn write
    const char *damage = NULL;
    if ((uint64_t) got != file_size || file_size < HD_CHECKPOINT_HEAD)
        damage = "too short";
    else if (hd_get_u32 (data) != file_size - HD_CHECKPOINT_HEAD)
        damage = "size does not match the file";
    else if (hd_get_u32 (data + 4) != hd_crc32c (0, data + 8, file_size - 8))
        damage = "checksum mismatch";
    if (damage) {
        free (data);
        if (!skip_corrupt) {
            s_error (error, error_size, "corrupt checkpoint %s (%s)", self->checkpoint_path,
                     damage);
            return -1;
        }
        //  Kept aside for a post-mortem; gone from the name so the next open
        //  does not stumble over it again
        char corrupt_path[PATH_MAX];
        snprintf (corrupt_path, sizeof corrupt_path, "%s.corrupt", self->checkpoint_path);
        if (rename (self->checkpoint_path, corrupt_path) != 0 ||
            s_sync_directory (self->directory) != 0) {
            s_error (error, error_size, "cannot move corrupt checkpoint aside: %s",
                     strerror (errno));
            return -1;
        }
        s_detail (recovery, "Corrupt checkpoint (%s) moved to %s; starting from the empty state.",
                  damage, corrupt_path);
        return 0;
    }
    *generation = hd_get_u64 (data + 8);
    recovery->checkpoint_found = true;
    size_t blob_size = (size_t) (file_size - HD_CHECKPOINT_HEAD);
    int rc = fn (data + HD_CHECKPOINT_HEAD, blob_size, true, arg);
    free (data);
    if (rc != 0) {
        s_error (error, error_size, "replaying the checkpoint (%zu bytes) failed", blob_size);
        return -1;
    }
    s_detail (recovery, "Checkpoint of generation %" PRIu64 " (%zu bytes).", *generation,
              blob_size);
    return 0;
}

//  Sequential reader over the journal file: a window of the file in memory,
//  refilled in large reads, grown only for records larger than a read.
typedef struct {
    int fd;
    uint64_t file_size;
    uint8_t *data;
    size_t capacity;
    uint64_t offset; // file offset of data[0]
    size_t length;   // valid bytes in data
} s_reader_t;

//  Returns the size bytes at offset (offset + size <= file_size), or NULL
//  with errno set (ENODATA when the file shrank under us).
static const uint8_t *
s_reader_get (s_reader_t *reader, uint64_t offset, size_t size)
{
    if (offset >= reader->offset && offset + size <= reader->offset + reader->length)
        return reader->data + (offset - reader->offset);
    //  Keep what is left of the window from offset on, then read after it
    size_t keep = 0;
    if (offset >= reader->offset && offset < reader->offset + reader->length) {
        keep = (size_t) (reader->offset + reader->length - offset);
        memmove (reader->data, reader->data + (offset - reader->offset), keep);
    }
    reader->offset = offset;
    reader->length = keep;
    if (hd_buffer_reserve (&reader->data, &reader->capacity, size))
        return NULL;
    uint64_t end = reader->offset + reader->length;
    size_t want = reader->capacity - reader->length;
    if (want > reader->file_size - end)
        want = (size_t) (reader->file_size - end);
    ssize_t got = hd_file_read_at (reader->fd, reader->data + reader->length, want, end);
    if (got < 0)
        return NULL;
    reader->length += (size_t) got;
    if (reader->length < size) {
        errno = ENODATA;
        return NULL;
    }
    return reader->data;
}

//  Reads the journal in large chunks, handing each good record to fn, and
//  cuts the file at the first torn or corrupt one. Treating any checksum
//  failure as the end of the journal is the standard approach for
//  length-prefixed records: after a bad record nothing says where the next
//  one starts, and a record that merely looks valid there proves nothing.
static int
s_recover_records (hd_journal_t *self, uint64_t file_size, hd_journal_replay_fn *fn, void *arg,
                   hd_journal_recovery_t *recovery, char *error, size_t error_size)
{
    s_reader_t reader = {.fd = self->fd, .file_size = file_size, .offset = HD_JOURNAL_HEAD};
    reader.data = malloc (HD_JOURNAL_READ_CHUNK);
    if (!reader.data) {
        s_error (error, error_size, "no memory to read the journal");
        return -1;
    }
    reader.capacity = HD_JOURNAL_READ_CHUNK;
    uint64_t offset = HD_JOURNAL_HEAD; // start of the next record
    const char *damage = NULL;
    int rc = 0;
    while (offset < file_size) {
        //  Sizes are checked against the file before reading, so a torn or
        //  garbage size never makes us read or allocate past the end
        if (file_size - offset < HD_JOURNAL_FRAME) {
            damage = "torn record";
            break;
        }
        const uint8_t *frame = s_reader_get (&reader, offset, HD_JOURNAL_FRAME);
        if (!frame) {
            rc = -1;
            break;
        }
        uint32_t size = hd_get_u32 (frame);
        if (size == 0 || size > HD_JOURNAL_MAX_RECORD) {
            //  Zero is refused too: a zero-filled tail would otherwise pass
            //  for records, the crc32c of nothing being 0
            damage = "impossible record size";
            break;
        }
        if (file_size - offset - HD_JOURNAL_FRAME < size) {
            damage = "torn record";
            break;
        }
        frame = s_reader_get (&reader, offset, HD_JOURNAL_FRAME + (size_t) size);
        if (!frame) {
            rc = -1;
            break;
        }
        if (hd_get_u32 (frame + 4) != hd_crc32c (0, frame + HD_JOURNAL_FRAME, size)) {
            damage = "checksum mismatch";
            break;
        }
        if (fn (frame + HD_JOURNAL_FRAME, size, false, arg) != 0) {
            s_error (error, error_size,
                     "replaying journal record %" PRIu64 " at offset %" PRIu64 " failed",
                     recovery->records + 1, offset);
            free (reader.data);
            return -1;
        }
        recovery->records++;
        offset += HD_JOURNAL_FRAME + (uint64_t) size;
    }
    free (reader.data);
    if (rc != 0) {
        s_error (error, error_size, "cannot read %s: %s", self->journal_path, strerror (errno));
        return -1;
    }
    self->file_size = offset;
    if (damage) {
        if (ftruncate (self->fd, (off_t) offset) != 0 || fdatasync (self->fd) != 0) {
            s_error (error, error_size, "cannot truncate %s: %s", self->journal_path,
                     strerror (errno));
            return -1;
        }
        recovery->truncated_bytes += file_size - offset;
        s_detail (recovery, "Cut %" PRIu64 " bytes (%s) at journal offset %" PRIu64 ".",
                  file_size - offset, damage, offset);
    }
    return 0;
}

//  Opens the journal file, checks its generation against the checkpoint's,
//  and replays or discards its records.
static int
s_recover_journal (hd_journal_t *self, uint64_t generation, bool skip_corrupt,
                   hd_journal_replay_fn *fn, void *arg, hd_journal_recovery_t *recovery,
                   char *error, size_t error_size)
{
    bool created = access (self->journal_path, F_OK) != 0;
    self->fd = open (self->journal_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->fd < 0) {
        s_error (error, error_size, "cannot open %s: %s", self->journal_path, strerror (errno));
        return -1;
    }
    //  Without this a power cut could lose the file with synced records in it
    if (created && s_sync_directory (self->directory) != 0) {
        s_error (error, error_size, "cannot sync %s: %s", self->directory, strerror (errno));
        return -1;
    }
    struct stat status;
    if (fstat (self->fd, &status) != 0) {
        s_error (error, error_size, "cannot stat %s: %s", self->journal_path, strerror (errno));
        return -1;
    }
    uint64_t file_size = (uint64_t) status.st_size;
    bool reset = false;
    if (file_size < HD_JOURNAL_HEAD) {
        //  New, or a crash while the journal was being restarted
        if (file_size) {
            recovery->truncated_bytes += file_size;
            s_detail (recovery, "Cut a torn %" PRIu64 "-byte journal head.", file_size);
        }
        reset = true;
    } else {
        uint8_t head[HD_JOURNAL_HEAD];
        if (hd_file_read_at (self->fd, head, sizeof head, 0) != (ssize_t) sizeof head) {
            s_error (error, error_size, "cannot read %s: %s", self->journal_path, strerror (errno));
            return -1;
        }
        uint64_t journal_generation = hd_get_u64 (head);
        if (journal_generation < generation) {
            //  The crash came after the checkpoint's rename and before the
            //  journal restarted: the checkpoint already holds these records
            s_detail (recovery,
                      "Discarded %" PRIu64 " bytes of journal generation %" PRIu64
                      ", superseded by the checkpoint.",
                      file_size - HD_JOURNAL_HEAD, journal_generation);
            reset = true;
        } else if (journal_generation > generation) {
            //  Records that belong on top of a checkpoint we do not have
            if (!skip_corrupt) {
                s_error (error, error_size,
                         "journal generation %" PRIu64 " is newer than the checkpoint's (%" PRIu64
                         "): checkpoint missing or replaced",
                         journal_generation, generation);
                return -1;
            }
            s_detail (recovery,
                      "Discarded %" PRIu64 " bytes of journal generation %" PRIu64
                      ", which has no checkpoint.",
                      file_size - HD_JOURNAL_HEAD, journal_generation);
            reset = true;
        }
    }
    if (reset) {
        if (s_journal_reset (self, generation) != 0) {
            s_error (error, error_size, "cannot restart %s: %s", self->journal_path,
                     strerror (errno));
            return -1;
        }
        return 0;
    }
    self->generation = generation;
    return s_recover_records (self, file_size, fn, arg, recovery, error, error_size);
}

hd_journal_t *
hd_journal_open (const char *directory, hd_fsync_t fsync, int64_t fsync_interval_ms,
                 bool skip_corrupt, hd_journal_replay_fn *fn, void *arg,
                 hd_journal_recovery_t *recovery, char *error, size_t error_size)
{
    hd_journal_recovery_t scratch;
    if (!recovery)
        recovery = &scratch;
    memset (recovery, 0, sizeof *recovery);
    if (error && error_size)
        error[0] = 0;
    if (!directory || !fn) {
        s_error (error, error_size, "journal needs a directory and a replay function");
        return NULL;
    }
    if (zsys_dir_create ("%s", directory) != 0) {
        s_error (error, error_size, "cannot create %s: %s", directory, strerror (errno));
        return NULL;
    }
    hd_journal_t *self = calloc (1, sizeof *self);
    if (!self) {
        s_error (error, error_size, "no memory");
        return NULL;
    }
    self->fd = -1;
    self->fsync = fsync;
    self->fsync_interval_ms = fsync_interval_ms;
    self->directory = strdup (directory);
    self->journal_path = zsys_sprintf ("%s/journal", directory);
    self->checkpoint_path = zsys_sprintf ("%s/checkpoint", directory);
    self->temporary_path = zsys_sprintf ("%s/checkpoint.tmp", directory);
    if (!self->directory || !self->journal_path || !self->checkpoint_path ||
        !self->temporary_path) {
        s_error (error, error_size, "no memory");
        hd_journal_destroy (&self);
        return NULL;
    }
    //  Left by a crash before the rename; the checkpoint it was meant to
    //  replace is still whole
    if (unlink (self->temporary_path) == 0)
        s_detail (recovery, "Removed an unfinished checkpoint.tmp.");
    uint64_t generation;
    if (s_recover_checkpoint (self, skip_corrupt, fn, arg, recovery, &generation, error,
                              error_size) != 0 ||
        s_recover_journal (self, generation, skip_corrupt, fn, arg, recovery, error, error_size) !=
            0) {
        hd_journal_destroy (&self);
        return NULL;
    }
    s_detail (recovery, "%" PRIu64 " journal records replayed.", recovery->records);
    return self;
}

void
hd_journal_destroy (hd_journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_journal_t *self = *self_p;
    if (self->fd >= 0)
        close (self->fd);
    free (self->buffer);
    free (self->directory);
    zstr_free (&self->journal_path);
    zstr_free (&self->checkpoint_path);
    zstr_free (&self->temporary_path);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Writing

int
hd_journal_append (hd_journal_t *self, const void *data, size_t size)
{
    if (self->broken) {
        errno = EIO;
        return -1;
    }
    if (size == 0 || !data) {
        errno = EINVAL;
        return -1;
    }
    //  Recovery takes anything larger for corruption, so never write it
    if (size > HD_JOURNAL_MAX_RECORD) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t need = self->buffer_used + HD_JOURNAL_FRAME + size;
    if (hd_buffer_reserve (&self->buffer, &self->buffer_size, need))
        return -1;
    uint8_t *frame = self->buffer + self->buffer_used;
    hd_put_u32 (frame, (uint32_t) size);
    hd_put_u32 (frame + 4, hd_crc32c (0, data, size));
    memcpy (frame + HD_JOURNAL_FRAME, data, size);
    self->buffer_used = need;
    return 0;
}

static bool
s_sync_due (hd_journal_t *self, int64_t now_ms)
{
    if (!self->unsynced)
        return false;
    switch (self->fsync) {
        case HD_FSYNC_ALWAYS: return true;
        case HD_FSYNC_INTERVAL:
            return self->sync_next || !self->synced_once ||
                   now_ms - self->last_sync_ms >= self->fsync_interval_ms;
        default: return false;
    }
}

int
hd_journal_flush (hd_journal_t *self, int64_t now_ms)
{
    if (self->broken) {
        self->buffer_used = 0;
        errno = EIO;
        return -1;
    }
    uint64_t good_size = self->file_size;
    if (s_write_pending (self) != 0)
        return -1;
    if (s_sync_due (self, now_ms)) {
        if (fdatasync (self->fd) != 0) {
            //  What this flush wrote may not be on disk: take it back, as if
            //  the write had failed. Earlier flushes' data stays unsynced.
            int saved = errno;
            self->file_size = good_size;
            s_rollback (self);
            errno = saved;
            return -1;
        }
        self->syncs++;
        self->sync_next = false;
        self->unsynced = false;
        self->synced_once = true;
        self->last_sync_ms = now_ms;
    }
    return 0;
}

//  Writes, syncs and renames the checkpoint file. Returns 0, -1 when
//  nothing changed on disk, or -2 when the rename happened but may not be
//  durable.
static int
s_write_checkpoint (hd_journal_t *self, const void *blob, size_t size, uint64_t generation)
{
    uint8_t head[HD_CHECKPOINT_HEAD];
    uint8_t generation_bytes[8];
    hd_put_u64 (generation_bytes, generation);
    hd_put_u32 (head, (uint32_t) size);
    hd_put_u32 (head + 4, hd_crc32c (hd_crc32c (0, generation_bytes, 8), blob, size));
    memcpy (head + 8, generation_bytes, 8);

    int fd = open (self->temporary_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int rc = 0;
    if (s_write_all (self, fd, head, sizeof head, 0) != 0 ||
        (size && s_write_all (self, fd, blob, size, sizeof head) != 0) || fdatasync (fd) != 0)
        rc = -1;
    int saved = errno;
    if (close (fd) != 0 && rc == 0) {
        rc = -1;
        saved = errno;
    }
    if (rc == 0 && rename (self->temporary_path, self->checkpoint_path) != 0) {
        rc = -1;
        saved = errno;
    }
    if (rc != 0) {
        unlink (self->temporary_path);
        errno = saved;
        return -1;
    }
    if (s_sync_directory (self->directory) != 0)
        return -2;
    return 0;
}

int
hd_journal_checkpoint (hd_journal_t *self, const void *blob, size_t size)
{
    if (self->broken) {
        errno = EIO;
        return -1;
    }
    if ((!blob && size) || size > UINT32_MAX) {
        errno = size > UINT32_MAX ? EMSGSIZE : EINVAL;
        return -1;
    }
    //  Written (not necessarily synced) so that if the checkpoint fails the
    //  journal still holds everything; if it succeeds they are superseded
    if (s_write_pending (self) != 0)
        return -1;
    uint64_t generation = self->generation + 1;
    int rc = s_write_checkpoint (self, blob, size, generation);
    if (rc == -1)
        return -1;
    //  Past the rename the old journal no longer matches the checkpoint on
    //  disk (or may not, if the rename is not durable), so appending to it
    //  could lose records on reopen; refuse writes until then
    if (rc == -2 || s_journal_reset (self, generation) != 0) {
        int saved = errno;
        self->broken = true;
        self->buffer_used = 0;
        errno = saved;
        return -1;
    }
    return 0;
}

uint64_t
hd_journal_bytes (hd_journal_t *self)
{
    return self->file_size + self->buffer_used;
}

uint64_t
hd_journal_syncs (hd_journal_t *self)
{
    return self->syncs;
}

void
hd_journal_set_fail_next_write (hd_journal_t *self, int error)
{
    self->fail_next_write = error;
}

void
hd_journal_sync_next (hd_journal_t *self)
{
    self->sync_next = true;
}
