/*  dedup_store — the set of processed (source, id) pairs kept on disk, in
    LMDB, so that a worker restarted on the same volume does not redo work.

    Each entry holds the wall-clock time (ms) it was processed; an entry
    older than ttl_ms counts as absent and is deleted by a purge. A second,
    time-ordered index makes purging take the oldest entries without a scan:
    every HD_DEDUP_STORE_PURGE_EVERY inserts, the insert that crosses the
    mark deletes up to HD_DEDUP_STORE_PURGE_BATCH expired entries. Time is
    passed in by the caller, which keeps the class deterministic to test.

    The store is a directory (created if missing) holding LMDB's data.mdb
    and lock.mdb. Every commit is synced, so an entry that insert returned 0
    for survives kill -9 and power loss. Opened with MDB_NOTLS: any thread
    may call contains, insert and purge (LMDB runs one write transaction at
    a time and blocks the others). Several processes may share a directory;
    one process must not open the same directory twice at once (an LMDB
    rule: closing one handle would drop the other's locks).

    When the map is full, insert first purges what has expired and tries
    again; if there is still no room it fails with HD_DEDUP_STORE_FULL and
    the store stays usable for lookups. (A full map has little room even
    for deletes, which copy pages: the purge then deletes a few at a time.)

    If another process grows the map, its size is adopted at the next
    transaction; that is safe only while no other transaction of this
    process is active (the worker uses its store from one thread).
*/
#ifndef HD_DEDUP_STORE_H_INCLUDED
#define HD_DEDUP_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct _hd_dedup_store_t hd_dedup_store_t;

#define HD_DEDUP_STORE_MAP_SIZE_DEFAULT ((size_t) 256 << 20)
#define HD_DEDUP_STORE_PURGE_EVERY      1000
#define HD_DEDUP_STORE_PURGE_BATCH      1000
//  insert's result when the map has no room left
#define HD_DEDUP_STORE_FULL (-2)

//  Open or create the store in directory path. ttl_ms 0 (or less): entries
//  never expire. map_size bounds the data file; 0: an existing store keeps
//  its size, a new one gets HD_DEDUP_STORE_MAP_SIZE_DEFAULT (an existing
//  store opened with a size below what it uses gets what it uses).
//  Nothing is purged here (open knows no time): call purge after it.
//  Returns NULL on failure with the reason in error (error_size bytes;
//  error may be NULL).
hd_dedup_store_t *hd_dedup_store_open (const char *path, int64_t ttl_ms, size_t map_size,
                                       char *error, size_t error_size);
void hd_dedup_store_destroy (hd_dedup_store_t **self_p);

//  1 if (source, id) was inserted and has not expired by now_ms, 0 if not,
//  -1 on a read error.
int hd_dedup_store_contains (hd_dedup_store_t *self, const char *source, const char *id,
                             int64_t now_ms);

//  Remember (source, id) as processed at now_ms, in one synced transaction;
//  an existing entry is refreshed. Returns 0, HD_DEDUP_STORE_FULL, or -1 on
//  another error (nothing of the call is stored then).
int hd_dedup_store_insert (hd_dedup_store_t *self, const char *source, const char *id,
                           int64_t now_ms);
//  The same for count pairs in one transaction (one sync for all).
int hd_dedup_store_insert_many (hd_dedup_store_t *self, const char *const *sources,
                                const char *const *ids, size_t count, int64_t now_ms);

//  Delete entries expired by now_ms, at most limit of them (0: all, in
//  batches of HD_DEDUP_STORE_PURGE_BATCH per transaction). Returns how
//  many were deleted, or -1 on error.
int64_t hd_dedup_store_purge (hd_dedup_store_t *self, int64_t now_ms, size_t limit);

//  Entries stored, expired ones not yet purged included.
size_t hd_dedup_store_size (hd_dedup_store_t *self);
uint64_t hd_dedup_store_purged (hd_dedup_store_t *self); // deleted by purges so far
size_t hd_dedup_store_map_size (hd_dedup_store_t *self);
const char *hd_dedup_store_path (hd_dedup_store_t *self);

//  Copy the text of the latest failure into buffer (size bytes); "" if none.
void hd_dedup_store_error (hd_dedup_store_t *self, char *buffer, size_t size);

//  Call fn for every entry, oldest first: (source, id, processed time).
//  Entries of long keys are stored hashed and reported with source "" and
//  id "#<hex digest>". Returns 0, or -1 on error. For tools and tests.
typedef void (hd_dedup_store_fn) (const char *source, const char *id, int64_t time_ms, void *arg);
int hd_dedup_store_each (hd_dedup_store_t *self, hd_dedup_store_fn *fn, void *arg);

#endif
