/*  log — the durable event log: fixed-size segment files of CRC32C-framed
    records in a data directory, an in-memory index per segment, and a hot
    cache of recent records so live delivery rarely reads the disk.

    With prepare_segments, a thread writes each next segment file ahead with
    zeros (spare.h) and a roll renames it into place, so commits overwrite
    blocks instead of appending them; only the last segment can then end in
    unused zeros, which recovery and a clean close cut off.

    Appends are buffered; hd_log_flush writes them and, per the fsync policy,
    fdatasyncs once for everything appended since the last flush (group
    commit). Nothing appended is confirmed to anyone before that flush.

    On-disk format (little-endian), see docs/OPERATIONS.md:
      segment file  <dir>/<first seq, 20 digits>.seg
      segment head  8 bytes "HDLOG001", u64 first_seq
      record        u32 size (bytes after this field), u32 crc32c (of the
                    bytes after the crc), u64 seq, u64 recorded_us,
                    u32 key_hash, u16 type_size, u32 envelope_size,
                    type bytes, envelope bytes, payload bytes
*/
#ifndef HD_LOG_H_INCLUDED
#define HD_LOG_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "record.h"

typedef enum { HD_FSYNC_ALWAYS, HD_FSYNC_INTERVAL, HD_FSYNC_NEVER } hd_fsync_t;

typedef struct {
    const char *directory; // created if missing
    size_t segment_size;   // bytes; a record larger than this gets a segment of its own
    hd_fsync_t fsync;
    int64_t fsync_interval_ms; // for HD_FSYNC_INTERVAL
    bool skip_corrupt;         // recovery skips corrupt records inside the log (loss reported)
    size_t cache_bytes;        // recent records kept in memory for reads
    bool prepare_segments;     // a thread writes the next segment ahead (spare.h); not
                               // with HD_FSYNC_NEVER, where nothing waits for the disk
    uint64_t page_cache_keep;  // newest bytes of the log left in the OS page cache; older
                               // ones are written back and dropped from it (0: all kept)
} hd_log_config_t;

//  What recovery found. detail is a human sentence for the log and errors.
typedef struct {
    uint64_t records; // records indexed
    uint64_t segments;
    uint64_t truncated_bytes; // torn or corrupt tail removed from the last segment
    uint64_t unused_bytes;    // zeros written ahead removed from the end of the last segment
    uint64_t skipped_records; // lost inside the log (only with skip_corrupt)
    uint64_t skipped_bytes;
    int64_t elapsed_us;
    char detail[256];
} hd_log_recovery_t;

typedef struct _hd_log_t hd_log_t;

void hd_log_config_defaults (hd_log_config_t *config);

//  Open (creating) the log and recover it. Returns NULL and writes why into
//  error, e.g. corruption inside the log without skip_corrupt.
hd_log_t *hd_log_open (const hd_log_config_t *config, hd_log_recovery_t *recovery, char *error,
                       size_t error_size);
//  Flushes (and syncs, unless HD_FSYNC_NEVER) what is still buffered, then
//  closes the log.
void hd_log_destroy (hd_log_t **self_p);

//  First seq still in the log (== next when empty), and the next seq to append.
uint64_t hd_log_first_seq (hd_log_t *self);
uint64_t hd_log_next_seq (hd_log_t *self);
//  Bytes on disk (all segments), including appended but unflushed bytes.
uint64_t hd_log_bytes (hd_log_t *self);

//  Records whose envelope and payload together are at most this many bytes
//  are copied into the hot cache's own memory; larger ones are shared.
#define HD_LOG_CACHE_COPY_MAX (16 * 1024)

//  Append the record for hd_log_next_seq (). With cache, the record is
//  also kept in the hot cache, for a record that will be read back soon (a
//  pool's delivery): copied when it is at most HD_LOG_CACHE_COPY_MAX bytes
//  (then its frames may borrow memory that ends after the call), else its
//  frames are shared (zmq_msg_copy: they must own their bytes). The frames
//  are never consumed. type must be 1..255 bytes. Returns the seq, or 0
//  with errno set.
uint64_t hd_log_append (hd_log_t *self, uint64_t recorded_us, const char *type, size_t type_size,
                        uint32_t key_hash, const hd_record_t *event, bool cache);

//  Make everything appended so far durable according to the policy: write,
//  then fdatasync (always; interval: when due; never: not at all). Returns
//  0, or -1 with errno set (ENOSPC, EIO): then every record appended since
//  the previous successful flush is removed again (next_seq rolls back) and
//  the files are as they were before those appends.
int hd_log_flush (hd_log_t *self, int64_t now_ms);
//  Appended records not yet written by a flush (a count of records).
size_t hd_log_unflushed (hd_log_t *self);
//  For HD_FSYNC_INTERVAL: true when written data waits for an fdatasync that is due.
bool hd_log_sync_due (hd_log_t *self, int64_t now_ms);

//  Read record seq into two new messages (the caller closes them): shared
//  frames of a large cached record, else copies. Returns 0, or -1 with
//  errno ENOENT (not in the log), EIO or ENOMEM.
int hd_log_read (hd_log_t *self, uint64_t seq, zmq_msg_t *envelope, zmq_msg_t *payload);

//  Record seq's bytes where the hot cache keeps them, without copies or
//  new messages: valid until the log next changes. Returns false when
//  seq is not cached (then use hd_log_read).
typedef struct {
    const void *envelope, *payload;
    size_t envelope_size, payload_size;
} hd_log_view_t;
bool hd_log_peek (hd_log_t *self, uint64_t seq, hd_log_view_t *view);

//  No reader needs the records below seq soon: the hot cache lets them go
//  (they stay in the log, and hd_log_read reads them from disk). A cache
//  that only holds what is still to be delivered reuses the same memory
//  over and over, instead of filling its whole budget with fresh pages.
void hd_log_cache_release (hd_log_t *self, uint64_t seq);
//  Places the hot cache holds, and the bytes they count against its budget.
size_t hd_log_cache_events (hd_log_t *self);
size_t hd_log_cache_bytes (hd_log_t *self);

//  Index lookups without reading the disk. Return false when seq is not in
//  the log.
bool hd_log_meta (hd_log_t *self, uint64_t seq, uint32_t *type_id, uint32_t *key_hash);
//  The interned type of a type id ("" when unknown); ids are 0 ..
//  hd_log_type_count () - 1, stable while the log is open, not across
//  restarts.
const char *hd_log_type_name (hd_log_t *self, uint32_t type_id);
uint32_t hd_log_type_count (hd_log_t *self);

//  First seq whose recorded time is >= time_us (next_seq when none).
uint64_t hd_log_seq_at_time (hd_log_t *self, uint64_t time_us);

//  Retention: delete whole closed segments (never the one being written)
//  that are older than max_age_us (by their last record) or that make the
//  log larger than max_bytes (oldest first), but only segments whose last
//  seq is below keep_from_seq unless hard is true. 0 disables a bound.
//  Returns the number of records deleted; first_seq moves up.
uint64_t hd_log_retain (hd_log_t *self, uint64_t keep_from_seq, uint64_t max_age_us,
                        uint64_t max_bytes, bool hard, uint64_t now_us);

//  32-bit hash of a partition key (0 for an empty key) as stored in records.
uint32_t hd_log_key_hash (const char *key, size_t size);

//  Disk space the log holds beyond hd_log_bytes: zeros written ahead at
//  the end of the last segment and the next segment's file being prepared
//  (together at most two segment sizes).
uint64_t hd_log_spare_bytes (hd_log_t *self);
//  Segments begun in a file written ahead (the others were appended to).
uint64_t hd_log_segments_prepared (hd_log_t *self);
//  Segments begun by appending to a new file while segments are written
//  ahead: the spare was not whole in time, or was given back to a full disk.
uint64_t hd_log_segments_appended (hd_log_t *self);
//  Bytes of the log's files the OS was asked to drop from its page cache
//  (page_cache_keep); pages still being written stay until it reclaims them.
uint64_t hd_log_page_cache_released (hd_log_t *self);

//  Test hook: waits up to timeout_ms until the next segment's file is
//  ready. False when it is not, or when the log does not prepare segments.
bool hd_log_wait_spare (hd_log_t *self, int64_t timeout_ms);

//  Test hooks, to exercise failure handling: after skip more successful
//  writes (resp. fdatasyncs, directory fsyncs included) the next one fails
//  with errno error; a failing write first writes half its bytes, as a
//  filling disk does. 0 disarms.
void hd_log_set_fail_write (hd_log_t *self, int error, unsigned skip);
void hd_log_set_fail_sync (hd_log_t *self, int error, unsigned skip);
//  The next cut of a segment file (rollback, or a full segment's zeros)
//  fails with errno error.
void hd_log_set_fail_truncate (hd_log_t *self, int error);
//  fdatasync and directory fsync calls made so far (tests, metrics).
uint64_t hd_log_syncs (hd_log_t *self);

#endif
