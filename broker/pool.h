/*  pool — a named consumer group: its waiting events, its workers and their
    leases. Pure scheduling, no sockets: the broker gives it events and
    settles, and it calls back to deliver and to say when an event is done.
    Time is passed in (monotonic ms) so the scheduler is testable.
*/
#ifndef HD_POOL_H_INCLUDED
#define HD_POOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "herald.pb-c.h"

typedef struct _hd_pool_t hd_pool_t;
typedef struct _hd_member_t hd_member_t;

typedef struct {
    int64_t ack_wait_ms;        // lease length
    int64_t backoff_initial_ms; // first redelivery delay after a lease expiry or NACK(0)
    int64_t backoff_max_ms;
    double backoff_multiplier;
    double backoff_jitter; // 0.2: delay × random factor in [0.8, 1.2]
    size_t max_pending;    // events held (waiting + in flight) before publishers are refused
    size_t max_parked;     // terminated events kept aside
} hd_pool_config_t;

//  Hand seq to the worker behind handle. Return 0 when sent, -1 when the
//  worker cannot take it now (the pool keeps the event for someone else).
typedef int (hd_pool_deliver_fn) (void *handle, uint64_t seq, uint32_t attempt, void *arg);
//  The pool no longer needs seq (acked, or dropped from the parked set).
typedef void (hd_pool_release_fn) (uint64_t seq, void *arg);

void hd_pool_config_defaults (hd_pool_config_t *config);

hd_pool_t *hd_pool_new (const char *name, const char *filter, const hd_pool_config_t *config,
                        hd_pool_deliver_fn *deliver, hd_pool_release_fn *release, void *arg);
//  Frees the pool without calling back.
void hd_pool_destroy (hd_pool_t **self_p);

const char *hd_pool_name (hd_pool_t *self);
const char *hd_pool_filter (hd_pool_t *self);
bool hd_pool_matches (hd_pool_t *self, const char *type, size_t type_size);
//  True when the pool holds max_pending events.
bool hd_pool_full (hd_pool_t *self);

//  A new event for the pool. Returns 0, -1 when out of memory.
int hd_pool_enqueue (hd_pool_t *self, uint64_t seq, int64_t now);

//  Add a worker with credit. handle is passed back to deliver.
hd_member_t *hd_pool_join (hd_pool_t *self, void *handle, uint32_t credit);
void hd_pool_set_credit (hd_pool_t *self, hd_member_t *member, uint32_t credit);
//  The worker is gone: its leases become ready again at once. Nulls *member_p.
void hd_pool_leave (hd_pool_t *self, hd_member_t **member_p);
//  The worker showed a sign of life: it may take deliveries again after a
//  failed one.
void hd_pool_wake (hd_pool_t *self, hd_member_t *member);

//  Settles. Each returns 0, or -1 when (seq, attempt) is not a current lease
//  of member (stale tag); nothing changes then.
int hd_pool_ack (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt);
//  delay_ms 0: the pool's backoff for this attempt decides.
int hd_pool_nack (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt,
                  int64_t delay_ms, int64_t now);
int hd_pool_term (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt);
int hd_pool_progress (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt,
                      int64_t now);

//  Hand ready events to workers with free credit, oldest-waiting worker first.
//  Returns the number of deliveries made.
size_t hd_pool_dispatch (hd_pool_t *self, int64_t now);
//  Expire leases and release delayed events that are due. Returns how many
//  events became ready.
size_t hd_pool_tick (hd_pool_t *self, int64_t now);
//  Earliest time tick has work, or INT64_MAX.
int64_t hd_pool_next_wakeup (hd_pool_t *self);

//  Backoff delay for a redelivery after the given attempt (jittered).
int64_t hd_pool_backoff_ms (hd_pool_t *self, uint32_t attempt);

//  Counters. Strings in stats point into the pool.
void hd_pool_stats (hd_pool_t *self, Herald__PoolStats *stats, int64_t now);
size_t hd_pool_workers (hd_pool_t *self);
size_t hd_pool_pending (hd_pool_t *self); // waiting, ready or delayed
size_t hd_pool_inflight (hd_pool_t *self);
size_t hd_pool_parked (hd_pool_t *self);
uint32_t hd_member_inflight (hd_member_t *member);
uint32_t hd_member_credit (hd_member_t *member);

#endif
