/*  pool — a named, durable consumer group reading the event log.

    The pool does not hold its backlog: it keeps a cursor into the log and
    entries only for events it has delivered and not settled (leased,
    waiting to be redelivered, or, in an ordered pool, blocked behind an
    earlier event of their key), plus its dead-letter queue. Everything it
    needs from the log comes through hooks, and time is passed in, so the
    scheduler is testable without a log or sockets. Every state change that
    must survive a restart is reported through the record hook, in order;
    replaying those records (hd_pool_apply) rebuilds the pool.
*/
#ifndef HD_POOL_H_INCLUDED
#define HD_POOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "herald.pb-c.h"
#include "state.pb-c.h"

typedef struct _hd_pool_t hd_pool_t;
typedef struct _hd_member_t hd_member_t;

typedef struct {
    int64_t ack_wait_ms;        // lease length
    int64_t backoff_initial_ms; // first redelivery delay after a lease expiry or NACK(0)
    int64_t backoff_max_ms;
    double backoff_multiplier;
    double backoff_jitter; // 0.2: delay × random factor in [0.8, 1.2]
    uint32_t max_deliver;  // attempts before the DLQ (0: unlimited)
    bool ordered;          // one event per partition key in flight, in seq order
    size_t max_pending;    // events not yet settled before publishers are refused
    size_t max_dlq;        // DLQ entries kept; the oldest are dropped past it
    size_t max_blocked;    // ordered pools: entries blocked behind their key at most
    //  A worker whose handler takes handle_ns an event gets runs of
    //  max (1, 1000 * burst_us / handle_ns) events, at most its free credit,
    //  before the next worker (0, or handle_ns not said: one event each)
    uint32_t burst_us;
} hd_pool_config_t;

typedef struct {
    //  The log's index: type and key hash of seq; false when seq is not in the log
    bool (*meta) (void *arg, uint64_t seq, uint32_t *type_id, uint32_t *key_hash);
    const char *(*type_name) (void *arg, uint32_t type_id);
    //  The next seq the log will append (the end of the log)
    uint64_t (*log_end) (void *arg);
    //  Hand seq to the worker behind handle. 0 when sent, -1 when it cannot take it now
    int (*deliver) (void *handle, uint64_t seq, uint32_t attempt, void *arg);
    //  A state change to make durable (may be NULL)
    void (*record) (void *arg, const Herald__StateOp *op);
    //  Event id and type of seq for a DLQ entry, malloc'ed (may be NULL)
    void (*describe) (void *arg, uint64_t seq, char **id, char **type);
    void *arg;
} hd_pool_hooks_t;

void hd_pool_config_defaults (hd_pool_config_t *config);

//  A pool reading the log from start_seq. Strings are copied.
hd_pool_t *hd_pool_new (uint32_t id, const char *name, const char *filter,
                        const hd_pool_config_t *config, uint64_t start_seq,
                        const hd_pool_hooks_t *hooks);
void hd_pool_destroy (hd_pool_t **self_p);

uint32_t hd_pool_id (hd_pool_t *self);
const char *hd_pool_name (hd_pool_t *self);
const char *hd_pool_filter (hd_pool_t *self);
const hd_pool_config_t *hd_pool_config (hd_pool_t *self);
bool hd_pool_matches (hd_pool_t *self, const char *type, size_t type_size);
//  True when the pool holds max_pending events not yet settled.
bool hd_pool_full (hd_pool_t *self);

//  A new event matching the filter was appended to the log (the pool will
//  not deliver it before it is flushed).
void hd_pool_notify (hd_pool_t *self, uint64_t seq);
//  That append was rolled back (the flush failed).
void hd_pool_forget (hd_pool_t *self, uint64_t seq);

hd_member_t *hd_pool_join (hd_pool_t *self, void *handle, uint32_t credit);
void hd_pool_set_credit (hd_pool_t *self, hd_member_t *member, uint32_t credit);
//  The worker is gone: its leases are ready again at once (or go to the DLQ
//  when they used their last attempt). Nulls *member_p.
void hd_pool_leave (hd_pool_t *self, hd_member_t **member_p, int64_t now);
void hd_pool_wake (hd_pool_t *self, hd_member_t *member);
//  The worker's handler time per event, as its ACK says; sets the length
//  of its runs. 0 (not said) leaves them as they were.
void hd_pool_set_handle_ns (hd_pool_t *self, hd_member_t *member, uint32_t handle_ns);

//  Settles. Each returns 0, or -1 for a stale tag (nothing changes then).
int hd_pool_ack (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt);
int hd_pool_nack (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt,
                  int64_t delay_ms, const char *error, int64_t now);
int hd_pool_term (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt,
                  const char *error, int64_t now);
int hd_pool_progress (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt,
                      int64_t now);

size_t hd_pool_dispatch (hd_pool_t *self, int64_t now);
size_t hd_pool_tick (hd_pool_t *self, int64_t now);
int64_t hd_pool_next_wakeup (hd_pool_t *self);
int64_t hd_pool_backoff_ms (hd_pool_t *self, uint32_t attempt);

//  Dead-letter queue. Entries point into the pool; valid until it changes.
size_t hd_pool_dlq_size (hd_pool_t *self);
const Herald__DlqEntry *hd_pool_dlq_get (hd_pool_t *self, uint64_t seq);
//  Up to limit entries with seq >= from_seq, in seq order, into entries[];
//  returns how many.
size_t hd_pool_dlq_list (hd_pool_t *self, uint64_t from_seq, const Herald__DlqEntry **entries,
                         size_t limit);
//  Return DLQ entries to the pool (attempts start again) or drop them. The
//  selection is the DlqRequest's (seqs, range, or all). Returns how many.
size_t hd_pool_dlq_replay (hd_pool_t *self, const Herald__DlqRequest *request, int64_t now);
size_t hd_pool_dlq_purge (hd_pool_t *self, const Herald__DlqRequest *request);

//  Lowest seq the pool still needs from the log (entries, DLQ, cursor).
uint64_t hd_pool_floor (hd_pool_t *self);
//  Lowest seq the pool may deliver without being asked (entries, cursor):
//  the DLQ's events go out only on request. Scans the entries.
uint64_t hd_pool_delivery_floor (hd_pool_t *self);
//  Retention removed everything below first_seq: forget what is gone
//  (counted as lost) and move the cursor up.
void hd_pool_log_truncated (hd_pool_t *self, uint64_t first_seq);

//  Recovery: apply one journaled change, in order, before any dispatch.
void hd_pool_apply (hd_pool_t *self, const Herald__StateOp *op);
//  Recovery: restore from a checkpoint (replaces the state).
void hd_pool_restore (hd_pool_t *self, const Herald__PoolState *state);
//  Recovery done: line up the entries for redelivery, count the backlog.
void hd_pool_recovered (hd_pool_t *self, int64_t now);
//  Checkpoint: the pool's state; free with hd_pool_export_free.
void hd_pool_export (hd_pool_t *self, Herald__PoolState *state);
void hd_pool_export_free (Herald__PoolState *state);

void hd_pool_stats (hd_pool_t *self, Herald__PoolStats *stats, int64_t now);
size_t hd_pool_workers (hd_pool_t *self);
size_t hd_pool_pending (hd_pool_t *self);
size_t hd_pool_inflight (hd_pool_t *self);
//  What hd_pool_delivery_floor reads: the slots of the entries' table,
//  which keeps the size of the pool's largest in-flight window.
size_t hd_pool_floor_cost (hd_pool_t *self);
uint64_t hd_pool_cursor (hd_pool_t *self);
uint32_t hd_member_inflight (hd_member_t *member);
uint32_t hd_member_credit (hd_member_t *member);
//  Events in a row the pool may give the worker (1 until it says its
//  handler time).
uint32_t hd_member_run_max (hd_member_t *member);

#endif
