/*  journal — durable pool state: an append-only file of CRC-framed records
    plus a checkpoint (snapshot) file, in one directory.

    The broker appends one record per state change (buffered), flushes once
    per loop turn together with the event log (group commit), and now and
    then writes a checkpoint: the whole state in one blob, written to a
    temporary file, fdatasynced, renamed over the old one; the journal then
    starts empty. Recovery = the checkpoint, then every journal record after
    it, in order. A torn or corrupt record at the end of the journal is cut
    off (reported); one in the middle stops recovery unless told to skip.

    Files: <dir>/checkpoint (u32 size, u32 crc32c, blob), <dir>/journal
    (records: u32 size, u32 crc32c, bytes).
*/
#ifndef HD_JOURNAL_H_INCLUDED
#define HD_JOURNAL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "log.h"

typedef struct _hd_journal_t hd_journal_t;

typedef struct {
    uint64_t records;         // journal records replayed
    uint64_t truncated_bytes; // torn tail removed
    uint64_t skipped_records; // corrupt records skipped (only with skip_corrupt)
    bool checkpoint_found;
    char detail[256];
} hd_journal_recovery_t;

//  Called for the checkpoint blob (is_checkpoint true, at most once, first)
//  and then for each journal record in order. Return 0 to go on, -1 to stop
//  recovery with an error.
typedef int (hd_journal_replay_fn) (const void *data, size_t size, bool is_checkpoint, void *arg);

//  Open (creating) the journal in directory and replay it through fn.
//  Returns NULL and writes why into error.
hd_journal_t *hd_journal_open (const char *directory, hd_fsync_t fsync, int64_t fsync_interval_ms,
                               bool skip_corrupt, hd_journal_replay_fn *fn, void *arg,
                               hd_journal_recovery_t *recovery, char *error, size_t error_size);
void hd_journal_destroy (hd_journal_t **self_p);

//  Append one record (copied into the write buffer). Returns 0 / -1.
int hd_journal_append (hd_journal_t *self, const void *data, size_t size);

//  Write buffered records and fdatasync per the policy. Returns 0, or -1
//  with errno set; on failure the unwritten records are dropped and the file
//  is cut back to its last good size.
int hd_journal_flush (hd_journal_t *self, int64_t now_ms);

//  Replace the state with blob: flushes pending records first, writes the
//  checkpoint atomically, then empties the journal. Returns 0 / -1.
int hd_journal_checkpoint (hd_journal_t *self, const void *blob, size_t size);

//  Bytes in the journal file (plus buffered), to decide when to checkpoint.
uint64_t hd_journal_bytes (hd_journal_t *self);

#endif
