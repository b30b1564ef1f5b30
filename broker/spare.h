/*  spare — the log's next segment file, written ahead with zeros by a
    thread of its own, so that the log writes into it by overwriting.

    Why: with --fsync always every commit ends in an fdatasync. After an
    append the file system must also commit the file's new size and block
    allocation (a journal transaction on ext4); after overwriting blocks
    that already hold data it need not, and the call returns sooner. So the
    log takes a whole file of zeros, already allocated and synced, at each
    segment roll (a rename) and fills it from the front.

    The thread writes the file in chunks, each sent to the disk at once
    (sync_file_range) and paced by the log's own writes (see
    hd_spare_note_written), syncs it once when whole, then waits until it is
    taken and starts the next. It never makes the
    file while the file system has less than size + min_free bytes free,
    and a full disk or an I/O error only means no spare for a while (it
    tries again after retry_ms): the log then appends as without it.
*/
#ifndef HD_SPARE_H_INCLUDED
#define HD_SPARE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _hd_spare_t hd_spare_t;

typedef struct {
    uint64_t prepared;      // files made whole
    uint64_t taken;         // files renamed into place by hd_spare_take
    uint64_t failed;        // preparations given up (disk full, I/O error)
    uint64_t released;      // files removed to give their space back
    uint64_t bytes_written; // zeros written, in all
} hd_spare_stats_t;

//  Starts the thread, which prepares a file called name (not a segment
//  name) in the directory open as dir_fd (borrowed; it must stay open until
//  destroy) at once. A file of that name left by an earlier run is
//  replaced. Returns NULL with error written when the thread cannot start.
hd_spare_t *hd_spare_new (int dir_fd, const char *name, uint64_t size, uint64_t min_free,
                          int64_t retry_ms, char *error, size_t error_size);
//  Stops the thread (it finishes the chunk it is writing) and removes the
//  file, whole or not.
void hd_spare_destroy (hd_spare_t **self_p);

//  When a whole file is ready, renames it to segment_name in the same
//  directory (the caller syncs the directory) and returns its size; the
//  thread then starts the next. Returns 0 when none is ready (the log then
//  appends, and the file being made loses its lead: see below).
uint64_t hd_spare_take (hd_spare_t *self, const char *segment_name);

//  The log wrote bytes. While the log is idle (nothing for 20 ms) the
//  thread writes zeros at full speed. While it writes, zeros slow its
//  fdatasyncs, so they are paced: after a take that got a file the log
//  has a lead of a quarter of a file with no zeros, then they go at twice
//  its pace since that take, so a file is whole when the segment being
//  filled is three quarters full and a burst shorter than the lead meets
//  none. A file that is late (a take found none ready: the log appends)
//  has no lead, and the count is not restarted, so it usually goes out at
//  once.
void hd_spare_note_written (hd_spare_t *self, uint64_t bytes);

//  True when hd_spare_take would get a file (a look, without waiting).
bool hd_spare_ready (hd_spare_t *self);

//  Removes the file, whole or half-written, and returns the bytes it held
//  on disk, for a writer that ran out of space. The thread waits for the
//  next hd_spare_take before it makes another.
uint64_t hd_spare_release (hd_spare_t *self);

//  Bytes the file holds on disk now (written so far).
uint64_t hd_spare_bytes (hd_spare_t *self);

void hd_spare_stats (hd_spare_t *self, hd_spare_stats_t *stats);

//  Test hook: waits until a whole file is ready, up to timeout_ms. Returns
//  true when one is.
bool hd_spare_wait_ready (hd_spare_t *self, int64_t timeout_ms);

//  Test hook: how long the log must write nothing to count as idle (20 ms
//  unless set), so a test can keep it busy however slowly it runs.
void hd_spare_set_idle_ms (hd_spare_t *self, int64_t idle_ms);

#endif
