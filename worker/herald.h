/*  herald.h — libherald, the Herald client library.

    Publisher, subscriber, worker and admin clients for a Herald broker.
    Objects follow czmq conventions: hd_x_new () creates, hd_x_destroy (&x)
    destroys and nulls the pointer. Functions return 0 / -1 (or a pointer /
    NULL); hd_x_error () says why. An object is used from one thread at a
    time, except where a comment says otherwise.
*/
#ifndef HERALD_H_INCLUDED
#define HERALD_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HERALD_DEFAULT_BROKER "tcp://127.0.0.1:7100"
#define HERALD_DEFAULT_XPUB   "tcp://127.0.0.1:7101"

//  ---------------------------------------------------------------------
//  Event: the envelope (CloudEvents-aligned) plus an opaque payload.

typedef struct _hd_event_t hd_event_t;

hd_event_t *hd_event_new (const char *type);
void hd_event_destroy (hd_event_t **self_p);
//  Deep copy (envelope and payload).
hd_event_t *hd_event_dup (const hd_event_t *self);

//  Setters copy their argument. They return 0, or -1 on no memory.
int hd_event_set_id (hd_event_t *self, const char *id);
int hd_event_set_source (hd_event_t *self, const char *source);
int hd_event_set_type (hd_event_t *self, const char *type);
int hd_event_set_subject (hd_event_t *self, const char *subject);
int hd_event_set_content_type (hd_event_t *self, const char *content_type);
int hd_event_set_schema_version (hd_event_t *self, const char *schema_version);
int hd_event_set_partition_key (hd_event_t *self, const char *key);
int hd_event_set_correlation_id (hd_event_t *self, const char *correlation_id);
int hd_event_set_causation_id (hd_event_t *self, const char *causation_id);
int hd_event_set_traceparent (hd_event_t *self, const char *traceparent);
int hd_event_set_attribute (hd_event_t *self, const char *key, const char *value);
void hd_event_set_time_us (hd_event_t *self, uint64_t time_us);
int hd_event_set_payload (hd_event_t *self, const void *data, size_t size);

//  Getters return "" (never NULL) for unset strings. What a getter returns
//  (strings, payload) is valid until the event is changed or destroyed.
const char *hd_event_id (const hd_event_t *self);
const char *hd_event_source (const hd_event_t *self);
const char *hd_event_type (const hd_event_t *self);
const char *hd_event_subject (const hd_event_t *self);
const char *hd_event_content_type (const hd_event_t *self);
const char *hd_event_schema_version (const hd_event_t *self);
const char *hd_event_partition_key (const hd_event_t *self);
const char *hd_event_correlation_id (const hd_event_t *self);
const char *hd_event_causation_id (const hd_event_t *self);
const char *hd_event_traceparent (const hd_event_t *self);
//  NULL when the attribute is absent.
const char *hd_event_attribute (const hd_event_t *self, const char *key);
//  Attributes by position, 0 .. count - 1 (NULL past the end), in the
//  order they were set or received.
size_t hd_event_attribute_count (const hd_event_t *self);
const char *hd_event_attribute_key (const hd_event_t *self, size_t index);
const char *hd_event_attribute_value (const hd_event_t *self, size_t index);
uint64_t hd_event_time_us (const hd_event_t *self);
uint64_t hd_event_seq (const hd_event_t *self);              // broker-set
uint64_t hd_event_recorded_time_us (const hd_event_t *self); // broker-set
const void *hd_event_payload (const hd_event_t *self);
size_t hd_event_payload_size (const hd_event_t *self);

//  Make self a consequence of parent: correlation id = parent's correlation
//  id (or parent's id when it has none), causation id = parent's id.
int hd_event_inherit (hd_event_t *self, const hd_event_t *parent);

//  Fill id with a new random id (32 hex characters).
int hd_event_set_random_id (hd_event_t *self);

//  ---------------------------------------------------------------------
//  Publisher: asynchronous publish with a window of unconfirmed events.
//  Unconfirmed events are re-sent with the same id after retry_ms (e.g. when
//  the broker restarted or the connection dropped); the broker's dedup makes
//  that safe. REJECT(BACKLOG_FULL) is retried after the broker's retry-after;
//  other rejections are final and reported to the confirm callback.

typedef struct _hd_publisher_t hd_publisher_t;

typedef struct {
    bool confirmed;     // false: rejected for good
    bool duplicate;     // confirmed as a duplicate of an earlier publish
    uint64_t seq;       // broker seq (the original one for a duplicate)
    int code;           // error code when rejected (herald.proto ErrorCode)
    const char *reason; // rejection text, "" when confirmed
} hd_confirm_t;

typedef void (hd_confirm_fn) (const hd_event_t *event, const hd_confirm_t *confirm, void *arg);

hd_publisher_t *hd_publisher_new (const char *broker_endpoint, const char *source);
void hd_publisher_destroy (hd_publisher_t **self_p);
void hd_publisher_set_window (hd_publisher_t *self, uint32_t window);     // default 1000
void hd_publisher_set_retry_ms (hd_publisher_t *self, uint32_t retry_ms); // default 3000
//  fn runs inside publish / poll / flush, once per event, with the event
//  still valid; it must not call the publisher itself.
void hd_publisher_set_confirm_fn (hd_publisher_t *self, hd_confirm_fn *fn, void *arg);

//  Publish *event_p, taking ownership and nulling it on success (on -1 the
//  caller keeps the event). The event gets a random
//  id if it has none and the publisher's source if it has none. Blocks while
//  the window is full, processing confirms, for at most timeout_ms (-1:
//  forever). Returns 0 once the event is sent or queued, -1 on timeout,
//  invalid event, or interrupt. While many events are unconfirmed, new ones
//  are held and sent together (one PUBLISHES message) when enough are
//  waiting, a reply arrives, or the caller polls or flushes: call
//  hd_publisher_poll or hd_publisher_flush when a burst ends.
int hd_publisher_publish (hd_publisher_t *self, hd_event_t **event_p, int timeout_ms);

//  A new event of type, as hd_event_new makes it, in the memory of an event
//  this publisher settled (it keeps up to a window of them) when it has
//  one: publishing fast, that saves an allocation and a free an event. The
//  event is the caller's like any other. Returns NULL when out of memory.
hd_event_t *hd_publisher_event_new (hd_publisher_t *self, const char *type);

//  Process confirms that have arrived, without blocking.
void hd_publisher_poll (hd_publisher_t *self);

//  Wait until every published event is confirmed or finally rejected.
//  Returns 0, or -1 on timeout / interrupt.
int hd_publisher_flush (hd_publisher_t *self, int timeout_ms);

size_t hd_publisher_unconfirmed (hd_publisher_t *self);
uint64_t hd_publisher_confirmed (hd_publisher_t *self); // includes duplicates
uint64_t hd_publisher_duplicates (hd_publisher_t *self);
uint64_t hd_publisher_rejected (hd_publisher_t *self); // final rejections
uint64_t hd_publisher_resent (hd_publisher_t *self);   // retries sent
const char *hd_publisher_error (hd_publisher_t *self);

//  ---------------------------------------------------------------------
//  Subscriber: live fan-out, at-most-once. Gaps in each type's sequence are
//  counted; when a broker endpoint is given the subscriber reports its
//  counters to the broker every heartbeat (during recv calls).

typedef struct _hd_subscriber_t hd_subscriber_t;

//  broker_endpoint may be NULL (no reports).
hd_subscriber_t *hd_subscriber_new (const char *xpub_endpoint, const char *broker_endpoint);
void hd_subscriber_destroy (hd_subscriber_t **self_p);
void hd_subscriber_set_name (hd_subscriber_t *self, const char *name);
//  Subscribe to a type prefix ("" = everything). Returns 0 / -1.
int hd_subscriber_subscribe (hd_subscriber_t *self, const char *prefix);
//  Next event, or NULL on timeout (-1: wait forever) or interrupt. Caller owns it.
hd_event_t *hd_subscriber_recv (hd_subscriber_t *self, int timeout_ms);
//  Instead of hd_event_destroy: takes an event the caller is done with
//  (nulling *event_p), for the next hd_subscriber_recv to decode into its
//  memory instead of allocating (it keeps one small event; another, or one
//  holding a large payload, is destroyed).
void hd_subscriber_recycle (hd_subscriber_t *self, hd_event_t **event_p);
uint64_t hd_subscriber_received (hd_subscriber_t *self); // events handed out by recv
uint64_t hd_subscriber_gaps (hd_subscriber_t *self);
//  Fan-out messages and batch items dropped as unreadable.
uint64_t hd_subscriber_malformed (hd_subscriber_t *self);
const char *hd_subscriber_error (hd_subscriber_t *self);

//  ---------------------------------------------------------------------
//  Worker: a member of a pool. The library's I/O thread talks to the broker
//  (heartbeats, credit, re-JOIN after the broker forgets it) and, at
//  concurrency 1, calls the handler itself; at higher concurrency handler
//  threads call it. Processed ids are remembered so that a redelivered,
//  already-processed event is acked without calling the handler again.

typedef enum {
    HD_ACK = 0,   // done: remove the event
    HD_RETRY = 1, // try again later (hd_delivery_retry_after sets the delay)
    HD_FAIL = 2   // never retry (TERM)
} hd_verdict_t;

typedef struct _hd_delivery_t hd_delivery_t;
typedef struct _hd_worker_t hd_worker_t;

typedef hd_verdict_t (hd_handler_fn) (hd_delivery_t *delivery, void *arg);

//  Valid during the handler call only.
const hd_event_t *hd_delivery_event (hd_delivery_t *self);
uint32_t hd_delivery_attempt (hd_delivery_t *self);
const char *hd_delivery_pool (hd_delivery_t *self);
//  The lease: broker seq, and how long it runs without PROGRESS.
uint64_t hd_delivery_seq (hd_delivery_t *self);
uint32_t hd_delivery_ack_wait_ms (hd_delivery_t *self);
void hd_delivery_retry_after (hd_delivery_t *self, uint32_t delay_ms);
void hd_delivery_set_error (hd_delivery_t *self, const char *text);
//  Extend the lease of a long-running handler (thread-safe). Returns 0 / -1.
int hd_delivery_progress (hd_delivery_t *self);

hd_worker_t *hd_worker_new (const char *broker_endpoint, const char *pool, const char *filter);
void hd_worker_destroy (hd_worker_t **self_p);
void hd_worker_set_name (hd_worker_t *self, const char *name);
//  Credit: events held at once (default 10). May be called after start,
//  from any thread: the worker then sends CREDIT to the broker.
void hd_worker_set_credit (hd_worker_t *self, uint32_t credit);
void hd_worker_set_concurrency (hd_worker_t *self, uint32_t threads); // default 1
//  Inline handlers (call before start; default: on at concurrency 1, off
//  above it): the I/O thread calls the handler itself, event by event as
//  each DELIVER(S) is read, and settles the batch when it is done (or
//  sooner: what has run is settled once the first of it finished half a
//  heartbeat ago, even while a later call still runs); no handler threads
//  are started and concurrency is ignored. It saves two
//  thread hand-offs per message each way (more events/s, less CPU per
//  event: docs/PERFORMANCE.md). While one handler call runs the I/O thread
//  reads nothing (deliveries wait in the socket); a guard thread sends
//  HEARTBEATs for the worker whenever half a heartbeat passes without
//  anything sent, so a long call never gets the worker taken for dead (its
//  lease still runs out after ack_wait_ms unless the handler calls
//  hd_delivery_progress). hd_delivery_progress called on the handler's own
//  thread sends at once (at most every quarter heartbeat); from other
//  threads it is queued, and the guard sends it within a quarter
//  heartbeat. hd_worker_stop called from an inline
//  handler asks for the stop: no further event of the batch is run (LEAVE
//  hands them back) and the worker stops once the handler returns
//  (hd_worker_run then returns). From another thread it waits for the call
//  up to the stop grace period, as for a handler thread, and then leaves
//  it behind (see hd_worker_set_stop_grace_ms). Off: `concurrency` handler
//  threads call the handler, and the I/O thread reads on meanwhile. Never
//  call hd_worker_destroy from a handler.
void hd_worker_set_inline (hd_worker_t *self, bool inline_handler);
//  The most processed ids a worker remembers (more is taken as this)
#define HD_SEEN_CAPACITY_MAX ((size_t) 1 << 31)
void hd_worker_set_seen_capacity (hd_worker_t *self, size_t ids);    // default 100000
void hd_worker_set_seen_ttl_ms (hd_worker_t *self, uint32_t ttl_ms); // default 600000
//  Keep the processed ids on disk as well, in an LMDB store in directory
//  path (created if missing), for the seen TTL: a worker restarted on the
//  same path acks redeliveries of events it had processed without calling
//  the handler. An id is recorded after the handler returned HD_ACK and
//  before the ACK is sent, so a crash in between can cause a skip, never a
//  redo. The in-memory set stays the fast path. One worker per path in a
//  process. hd_worker_start opens the store and fails (hd_worker_error says
//  why) if it cannot. Returns 0, or -1 after start or on no memory.
//  NULL or "": memory only (the default).
int hd_worker_set_dedup_store (hd_worker_t *self, const char *path);
//  Largest size of the store's data file (default 256 MiB). When it is
//  full, new ids are not recorded (logged; hd_worker_dedup_errors counts
//  it) and events are still acked.
void hd_worker_set_dedup_map_size (hd_worker_t *self, size_t bytes);

//  The pool's policy, used when this worker's JOIN creates the pool (zero
//  fields: the broker's defaults). Joining an existing pool whose policy
//  differs in a non-zero field fails with CONFLICT. Call before start.
typedef enum {
    HD_START_LATEST = 0, // events published after the pool is created (default)
    HD_START_EARLIEST,   // everything still in the log
    HD_START_SEQ,        // from start_seq on
    HD_START_TIME        // from the first event recorded at or after start_time_us
} hd_start_t;

typedef struct {
    bool ordered;         // one event per partition key in flight, in seq order
    uint32_t max_deliver; // attempts before the DLQ
    uint32_t ack_wait_ms; // lease length
    uint32_t backoff_initial_ms;
    uint32_t backoff_max_ms;
    double backoff_multiplier;
    double backoff_jitter;
    hd_start_t start;
    uint64_t start_seq;
    uint64_t start_time_us;
} hd_pool_options_t;

void hd_worker_set_pool_options (hd_worker_t *self, const hd_pool_options_t *options);

//  Parse a start position: "latest", "earliest", a seq ("4711"), an RFC 3339
//  UTC time ("2026-11-22T10:00:00Z") or an age ("-10m", "-2h"). Returns 0 / -1.
int hd_pool_options_parse_start (hd_pool_options_t *options, const char *text);

//  Start the I/O and handler threads. Returns 0 / -1.
int hd_worker_start (hd_worker_t *self, hd_handler_fn *handler, void *arg);
//  Wait until the broker has accepted the JOIN. Returns 0 / -1 on timeout.
int hd_worker_wait_joined (hd_worker_t *self, int timeout_ms);
//  How long hd_worker_stop waits for running handlers (default 30000 ms;
//  -1: forever). Handlers still running then are left behind: the worker
//  settles what has finished, LEAVEs (their events go to other workers),
//  hd_worker_stop returns and their results are dropped. Such a handler
//  runs on in its detached thread (inline: the detached I/O thread) until
//  it returns, so its arg must stay valid until then; the worker's memory
//  is freed by whichever of hd_worker_destroy and the last such thread
//  comes last.
void hd_worker_set_stop_grace_ms (hd_worker_t *self, int grace_ms);

//  Stop taking events, finish the ones in progress (settling them), LEAVE.
//  Waits at most the stop grace period for handlers (see above).
void hd_worker_stop (hd_worker_t *self);
//  start, then block until SIGINT/SIGTERM or hd_worker_stop from another thread.
int hd_worker_run (hd_worker_t *self, hd_handler_fn *handler, void *arg);

//  Counters (thread-safe reads).
uint64_t hd_worker_handled (hd_worker_t *self); // handler calls
uint64_t hd_worker_skipped (hd_worker_t *self); // already processed, acked without handler
uint64_t hd_worker_joins (hd_worker_t *self);   // JOINs accepted (1 + re-registrations)
uint64_t hd_worker_stale (hd_worker_t *self);   // settles the broker refused as stale
//  Dedup store lookups and inserts that failed (logged, at most every 10 s).
uint64_t hd_worker_dedup_errors (hd_worker_t *self);
const char *hd_worker_error (hd_worker_t *self);

//  ---------------------------------------------------------------------
//  Admin: broker statistics.

//  Ask the broker for STATS; returns a malloc'ed JSON object (caller frees)
//  or NULL with *error set to a static reason.
char *hd_admin_stats_json (const char *broker_endpoint, int timeout_ms, const char **error);

#ifdef __cplusplus
}
#endif
#endif
