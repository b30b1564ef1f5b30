/*  journal — durable pool state: an append-only file of CRC-framed records
    plus a checkpoint (snapshot) file, in one directory.

    The broker appends one record per state change (buffered), flushes once
    per loop turn together with the event log (group commit), and now and
    then writes a checkpoint: the whole state in one blob, written to a
    temporary file, fdatasynced, renamed over the old one; the journal then
    starts empty. Recovery = the checkpoint, then every journal record after
    it, in order.

    Generations make the checkpoint/journal pair unambiguous after a crash:
    the checkpoint names the generation of the journal that continues it,
    and the journal file starts with its own generation. A checkpoint of
    generation G+1 is made durable (rename, directory fsync) before the
    journal of generation G is emptied and restarted as G+1, so a crash in
    between leaves the new checkpoint and an old-generation journal, whose
    records the checkpoint already contains: they are discarded, never
    replayed twice. No checkpoint means generation 0 (the empty state). A
    journal newer than the checkpoint (checkpoint lost or replaced) is an
    error unless skip_corrupt.

    A torn or corrupt record ends the journal: it and everything after it
    are cut off and reported (truncated_bytes). With length-prefixed records
    a corrupt length makes everything after it unreadable, so recovery never
    tries to resynchronise past a bad record. A corrupt checkpoint (it is
    written atomically, so it can only be damaged, not torn) is an error;
    with skip_corrupt it is renamed to checkpoint.corrupt and recovery starts
    from the empty state (the journal of its generation is discarded too, as
    its records only make sense on top of it).

    Files (little-endian):
      <dir>/checkpoint  u32 size (of blob), u32 crc32c (of generation and
                        blob), u64 generation, blob
      <dir>/journal     u64 generation, then records: u32 size (1 .. 64 MiB),
                        u32 crc32c (of bytes), bytes
      <dir>/checkpoint.tmp  a checkpoint being written; removed on open
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
    uint64_t skipped_records; // always 0: a corrupt record ends the journal (see above)
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
//  Unflushed records are dropped.
void hd_journal_destroy (hd_journal_t **self_p);

//  Append one record (copied into the write buffer). size must be 1 .. 64
//  MiB. Returns 0, or -1 with errno set (EINVAL, EMSGSIZE, ENOMEM, EIO).
int hd_journal_append (hd_journal_t *self, const void *data, size_t size);

//  Write buffered records and fdatasync per the policy. Returns 0, or -1
//  with errno set; on failure the unwritten records are dropped and the file
//  is cut back to its last good size.
int hd_journal_flush (hd_journal_t *self, int64_t now_ms);

//  Replace the state with blob: flushes pending records first, writes the
//  checkpoint atomically, then empties the journal. Always fdatasyncs,
//  whatever the policy. Returns 0, or -1 with errno set: before the rename
//  nothing changed; after it (the directory fsync or emptying the journal
//  failed) every later append and flush fails with EIO until the journal is
//  reopened, which then recovers a consistent state.
int hd_journal_checkpoint (hd_journal_t *self, const void *blob, size_t size);

//  With HD_FSYNC_INTERVAL: make the next flush fdatasync, however recent the
//  last sync (for changes that must be durable at once). No effect with
//  HD_FSYNC_NEVER; HD_FSYNC_ALWAYS syncs every flush anyway.
void hd_journal_sync_next (hd_journal_t *self);

//  Bytes in the journal file (plus buffered), to decide when to checkpoint.
uint64_t hd_journal_bytes (hd_journal_t *self);

//  fdatasyncs of the journal done by flushes (per the policy).
uint64_t hd_journal_syncs (hd_journal_t *self);

//  Test hooks
//  The next write (journal flush or checkpoint file) writes part of its data
//  and then fails with error, to exercise the rollback paths.
void hd_journal_set_fail_next_write (hd_journal_t *self, int error);

#endif
