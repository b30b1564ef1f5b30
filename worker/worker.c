/*  worker — a member of a pool.

    Threads:
    - the I/O thread owns the DEALER, the table of events in hand (jobs),
      and the processed-id set (seen). It JOINs, heartbeats, notices broker
      silence and reconnects, and settles results. Because it never runs
      user code (unless inline), a slow handler never makes the worker
      look dead. With a
      dedup store configured it also looks ids up there and records them
      (one synced transaction per loop turn) before their ACKs are sent.
    - `concurrency` handler threads take jobs from a queue and call the
      handler. Inline (the default when concurrency is 1;
      hd_worker_set_inline) there are none: the I/O thread calls the
      handler itself, as each message is read, and settles the batch when
      it is done (or every half heartbeat). That saves two thread
      hand-offs per message each way. While a handler call runs the I/O
      thread gives up the socket and its state (socket_lock): a guard
      thread heartbeats for it, so a long call does not make the worker
      look dead, and past the stop grace period hd_worker_stop settles
      what has run, LEAVEs and leaves the call behind, as it does with a
      handler thread.
    Everything the threads share sits under one mutex: the job queue, the
      done queue (finished jobs going back to the I/O thread), progress
      requests, the lease tag of each job, and the session state. Handler
      threads wake the I/O thread by writing a byte to a pipe that its
      zmq_poll watches next to the socket.

    Sessions: each loss of the broker's session (UNKNOWN_PEER, silence)
    starts a new generation. A result whose tag belongs to an earlier
    generation is not sent (the broker would refuse it as stale): if the
    event is redelivered while its handler still runs, the redelivery's tag
    replaces the old one and is settled when the handler finishes.
*/
#include "worker.h"
#include "dedup_store.h"
#include "event.h"
#include "buffer.h"
#include "seen.h"
#include "hashmap.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "options.h"

typedef enum {
    S_STATE_IDLE,    // not started
    S_STATE_JOINING, // JOIN sent (or reconnect pending), no session yet
    S_STATE_ACTIVE,  // JOINED
    S_STATE_FAILED,  // the broker refused the JOIN for good
    S_STATE_CLOSED   // LEAVE sent or stopped
} s_state_t;

#define S_HEARTBEAT_DEFAULT_MS 1000
#define S_LIVENESS_DEFAULT     3
#define S_BACKOFF_INITIAL_MS   1000
#define S_BACKOFF_MAX_MS       32000
#define S_DRAIN_BATCH          1000
#define S_MAX_BATCH            256 // events per DELIVERS we accept
#define S_STOP_GRACE_DEFAULT   30000
#define S_DEDUP_LOG_MS         10000
#define S_LOOKAHEAD            32          // DELIVERS items decoded ahead of being taken
#define S_SPARE_EVENTS         S_MAX_BATCH // finished events kept to decode into

struct _hd_delivery_t {
    hd_delivery_t *next; // on the job queue or the done queue
    hd_worker_t *worker;
    hd_event_t *event;
    hd_key_t *key; // (source, id); the jobs table's key: in key_room, or malloc'ed
    uint64_t key_hash;
    hd_key_room_t key_room;
    //  The lease tag: written by the I/O thread under the lock
    uint64_t seq;
    uint32_t attempt;
    uint32_t ack_wait_ms;
    uint64_t generation;
    bool running;          // taken by a handler thread (under the lock)
    int64_t progress_sent; // inline: when hd_delivery_progress last sent (mono ms)
    //  Result: written by the handler thread before it hands the job back
    hd_verdict_t verdict;
    uint64_t took_ns; // the handler call's wall time (written by the thread that ran it)
    uint32_t retry_ms;
    char *error;
};

typedef struct _s_progress_t s_progress_t;
struct _s_progress_t {
    s_progress_t *next;
    uint64_t seq;
    uint32_t attempt;
    uint64_t generation;
};

struct _hd_worker_t {
    //  Configuration, fixed once started
    char *endpoint;
    char *pool;
    char *filter;
    char *name;
    uint32_t credit;
    uint32_t concurrency;
    bool inline_handler; // the I/O thread calls the handler (no handler threads)
    bool inline_chosen;  // hd_worker_set_inline was called; else inline iff concurrency is 1
    size_t seen_capacity;
    uint32_t seen_ttl_ms;
    char *dedup_path;               // NULL: processed ids are kept in memory only
    size_t dedup_map_size;          // 0: the store's default
    hd_dedup_store_t *dedup;        // opened by hd_worker_start; used by the I/O thread
    int stop_grace_ms;              // -1: hd_worker_stop waits for handlers forever
    hd_pool_options_t pool_options; // sent with JOIN (creates the pool with them)
    hd_handler_fn *handler;
    void *handler_arg;
    //  The I/O thread holds socket_lock at all times but during an inline
    //  handler call. Then the guard thread takes it when it is free, and
    //  if the call has kept the worker silent for half a heartbeat, sends a
    //  HEARTBEAT for it: a long call never makes the worker look dead;
    //  hd_delivery_progress, called from the handler, takes it to send at
    //  once; and hd_worker_stop takes it to abandon a call past the grace
    //  period. io_state is the I/O thread's state while that thread runs
    //  and has not been abandoned (under socket_lock).
    pthread_mutex_t socket_lock;
    void *io_state;
    pthread_t guard_thread;
    bool guard_started;
    pthread_cond_t guard_wake; // under lock, with guard_exit
    bool guard_exit;

    pthread_t io_thread;
    pthread_t *handler_threads;
    uint32_t handler_count;
    bool started;
    pthread_mutex_t stop_lock; // serialises hd_worker_stop callers
    bool stopped;

    int wake[2];       // wake[1] written to wake the I/O thread
    pthread_t io_self; // the I/O thread as it knows itself (under lock, once io_running)
    bool io_running;   // under lock

    pthread_mutex_t lock;
    pthread_cond_t jobs_ready;    // handler threads: queue not empty, or exit
    pthread_cond_t state_changed; // JOINED, FAILED, I/O thread done
    //  Under lock:
    hd_delivery_t *queue_head;
    hd_delivery_t *queue_tail;
    hd_delivery_t *done_head;
    hd_delivery_t *done_tail;
    s_progress_t *progress_head;
    s_progress_t *progress_tail;
    bool stop_requested;
    atomic_bool stopping; // stop_requested, readable without the lock (inline handlers)
    bool handlers_exit;
    bool io_done;
    uint32_t handlers_alive; // handler threads not yet returned
    //  hd_worker_stop gave up on an inline call past the grace period: the
    //  I/O thread runs on, detached, until the handler returns (also under
    //  socket_lock)
    bool io_abandoned;
    bool destroyed;        // hd_worker_destroy ran: the last thread out frees
    int64_t stop_deadline; // > 0: when hd_worker_stop stops waiting for handlers
    s_state_t state;
    uint64_t generation;
    char error[256];

    atomic_uint_fast64_t handled;
    atomic_uint_fast64_t skipped;
    atomic_uint_fast64_t joins;
    atomic_uint_fast64_t stale;
    atomic_uint_fast64_t dedup_errors;
};

typedef struct {
    int64_t logged_at;     // mono ms of the last warning, 0: none yet
    uint64_t not_reported; // failures since then
} s_dedup_log_t;

//  I/O thread state, private to that thread.
typedef struct {
    hd_worker_t *worker;
    zsock_t *dealer;
    hd_seen_t *seen;
    hd_hashmap_t *jobs; // hd_key_hash → hd_delivery_t *, queued or running
    //  New jobs of the message at hand, queued for the handlers in one go
    hd_delivery_t *new_head;
    hd_delivery_t *new_tail;
    s_state_t state;
    uint64_t generation;
    uint32_t heartbeat_ms;
    uint32_t liveness;
    uint32_t ack_wait_ms;
    int64_t last_recv;
    int64_t last_send;
    uint32_t credit_sent; // credit of the last JOIN or CREDIT sent
    int64_t reconnect_at; // > 0: socket closed, reconnect then
    uint32_t backoff_ms;
    bool draining;
    //  Dedup store failures, logged at most every S_DEDUP_LOG_MS per kind
    s_dedup_log_t dedup_lookups;
    s_dedup_log_t dedup_inserts;
    //  Tags to ACK, sent as one batch per loop turn
    uint64_t *ack_seq;
    uint32_t *ack_attempt;
    size_t ack_count;
    size_t ack_capacity;
    //  Tags to PROGRESS, likewise
    uint64_t *progress_seq;
    uint32_t *progress_attempt;
    size_t progress_count;
    size_t progress_capacity;
    //  Finished jobs kept for reuse: one comes and goes per event
    hd_reuse_t spare_jobs;          // the I/O thread's jobs, kept for reuse
    hd_event_spares_t spare_events; // finished jobs' events, for DELIVERS items to decode into
    //  Inline: the jobs of the batch at hand that have run, not yet settled,
    //  and when the first of them finished (mono ms)
    hd_delivery_t *ran_head;
    hd_delivery_t *ran_tail;
    int64_t ran_since;
    //  Handler time per event, sent with each ACK (hd_worker_handle_ns_next)
    uint32_t handle_ns;
} s_io_t;

static uint64_t
s_mono_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (uint64_t) now.tv_sec * 1000000000ULL + (uint64_t) now.tv_nsec;
}

//  The user's handler on job, timed. Returns when it ended (mono ms, the
//  clock of zclock_mono), so the caller need not read the clock again.
static int64_t
s_run_handler (hd_worker_t *self, hd_delivery_t *job)
{
    uint64_t started = s_mono_ns ();
    job->verdict = self->handler (job, self->handler_arg);
    uint64_t ended = s_mono_ns ();
    job->took_ns = ended - started;
    return (int64_t) (ended / 1000000);
}

static void
s_set_error (hd_worker_t *self, const char *format, ...)
{
    char text[sizeof self->error];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    pthread_mutex_lock (&self->lock);
    memcpy (self->error, text, sizeof text);
    pthread_mutex_unlock (&self->lock);
}

static void
s_wake (hd_worker_t *self)
{
    //  A full pipe already means "wake up"; nothing to do on EAGAIN
    ssize_t rc = write (self->wake[1], "w", 1);
    (void) rc;
}

//  Frees what the job holds, not the job.
static void
s_job_clear (hd_delivery_t *job)
{
    hd_event_destroy (&job->event);
    hd_key_free (&job->key, &job->key_room);
    free (job->error);
    job->error = NULL;
}

static void
s_job_destroy (hd_delivery_t **job_p)
{
    if (!job_p || !*job_p)
        return;
    s_job_clear (*job_p);
    free (*job_p);
    *job_p = NULL;
}

//  s_job_destroy for the I/O thread: the job's memory is kept for reuse.
static void
s_io_job_recycle (s_io_t *io, hd_delivery_t **job_p)
{
    if (!*job_p)
        return;
    //  Kept only while it holds no more than its own small memory: one
    //  with a large payload's frame (a DELIVER) would pin it meanwhile
    hd_event_spares_keep (&io->spare_events, &(*job_p)->event);
    s_job_clear (*job_p);
    hd_reuse_keep (&io->spare_jobs, *job_p);
    *job_p = NULL;
}

static hd_delivery_t *
s_io_job_new (s_io_t *io)
{
    return hd_reuse_take (&io->spare_jobs, sizeof (hd_delivery_t));
}

//  ---------------------------------------------------------------------
//  Delivery: what a handler sees

const hd_event_t *
hd_delivery_event (hd_delivery_t *self)
{
    return self->event;
}

uint32_t
hd_delivery_attempt (hd_delivery_t *self)
{
    pthread_mutex_lock (&self->worker->lock);
    uint32_t attempt = self->attempt;
    pthread_mutex_unlock (&self->worker->lock);
    return attempt;
}

uint64_t
hd_delivery_seq (hd_delivery_t *self)
{
    pthread_mutex_lock (&self->worker->lock);
    uint64_t seq = self->seq;
    pthread_mutex_unlock (&self->worker->lock);
    return seq;
}

uint32_t
hd_delivery_ack_wait_ms (hd_delivery_t *self)
{
    pthread_mutex_lock (&self->worker->lock);
    uint32_t ack_wait_ms = self->ack_wait_ms;
    pthread_mutex_unlock (&self->worker->lock);
    return ack_wait_ms;
}

const char *
hd_delivery_pool (hd_delivery_t *self)
{
    return self->worker->pool;
}

void
hd_delivery_retry_after (hd_delivery_t *self, uint32_t delay_ms)
{
    self->retry_ms = delay_ms;
}

void
hd_delivery_set_error (hd_delivery_t *self, const char *text)
{
    //  NACK and TERM bodies must fit in 64 KiB: keep the start of a long
    //  text, cut at a UTF-8 character boundary
    char *copy = NULL;
    if (text) {
        size_t size = strnlen (text, HD_WORKER_ERROR_MAX + 1);
        if (size > HD_WORKER_ERROR_MAX) {
            size = HD_WORKER_ERROR_MAX;
            while (size > 0 && ((unsigned char) text[size] & 0xC0) == 0x80)
                size--;
        }
        copy = strndup (text, size);
    }
    free (self->error);
    self->error = copy;
}

static int s_io_progress_now (void *io_state, hd_delivery_t *job);

//  True when the caller is the I/O thread: an inline handler.
static bool
s_on_io_thread (hd_worker_t *self)
{
    pthread_mutex_lock (&self->lock);
    bool io_thread = self->io_running && pthread_equal (pthread_self (), self->io_self);
    pthread_mutex_unlock (&self->lock);
    return io_thread;
}

int
hd_delivery_progress (hd_delivery_t *self)
{
    hd_worker_t *worker = self->worker;
    //  On the I/O thread (an inline handler) it goes out at once; from any
    //  other thread it is queued, as from a handler thread
    if (worker->inline_handler && s_on_io_thread (worker)) {
        //  A handler runs without the socket: take it back to send
        pthread_mutex_lock (&worker->socket_lock);
        int rc = s_io_progress_now (worker->io_state, self);
        pthread_mutex_unlock (&worker->socket_lock);
        return rc;
    }
    s_progress_t *request = calloc (1, sizeof *request);
    if (!request)
        return -1;
    pthread_mutex_lock (&worker->lock);
    request->seq = self->seq;
    request->attempt = self->attempt;
    request->generation = self->generation;
    if (worker->progress_tail)
        worker->progress_tail->next = request;
    else
        worker->progress_head = request;
    worker->progress_tail = request;
    pthread_mutex_unlock (&worker->lock);
    s_wake (worker);
    return 0;
}

//  ---------------------------------------------------------------------
//  Handler threads

static void s_worker_free (hd_worker_t *self);

//  Threads hd_worker_stop gave up on that have not returned yet (under
//  lock): whichever of them and hd_worker_destroy comes last frees.
static bool
s_threads_left (hd_worker_t *self)
{
    return self->handlers_alive > 0 || (self->io_abandoned && !self->io_done);
}

static void *
s_handler_thread (void *arg)
{
    hd_worker_t *self = arg;
    pthread_setname_np (pthread_self (), "herald-handler"); // top -H, gdb, tests
    pthread_mutex_lock (&self->lock);
    while (true) {
        while (!self->queue_head && !self->handlers_exit)
            pthread_cond_wait (&self->jobs_ready, &self->lock);
        hd_delivery_t *job = self->queue_head;
        if (!job)
            break; // handlers_exit and nothing left
        self->queue_head = job->next;
        if (!self->queue_head)
            self->queue_tail = NULL;
        job->next = NULL;
        job->running = true;
        pthread_mutex_unlock (&self->lock);

        s_run_handler (self, job);
        atomic_fetch_add (&self->handled, 1);

        pthread_mutex_lock (&self->lock);
        //  The I/O thread empties its wake pipe before it takes the whole
        //  done queue, so a queue that was not empty has a wake-up pending
        bool was_empty = !self->done_head;
        if (self->done_tail)
            self->done_tail->next = job;
        else
            self->done_head = job;
        self->done_tail = job;
        if (was_empty) {
            pthread_mutex_unlock (&self->lock);
            s_wake (self);
            pthread_mutex_lock (&self->lock);
        }
    }
    //  A thread hd_worker_stop gave up on may outlive hd_worker_destroy:
    //  the last one out frees the worker
    self->handlers_alive--;
    pthread_cond_broadcast (&self->state_changed);
    bool last_out = self->destroyed && !s_threads_left (self);
    pthread_mutex_unlock (&self->lock);
    if (last_out)
        s_worker_free (self);
    return NULL;
}

//  ---------------------------------------------------------------------
//  I/O thread

static void
s_io_send_command (s_io_t *io, hd_command_t command, const ProtobufCMessage *body)
{
    if (!io->dealer)
        return;
    //  A send that would block means the broker is unreachable; what we
    //  lose here (heartbeats, settles) the broker recovers by redelivery
    hd_send_command (zsock_resolve (io->dealer), NULL, 0, command, body, ZMQ_DONTWAIT);
    //  Counted as sent even when refused, so a full pipe cannot make the
    //  heartbeat timer fire in a busy loop
    io->last_send = zclock_mono ();
}

static void
s_io_set_state (s_io_t *io, s_state_t state)
{
    hd_worker_t *self = io->worker;
    io->state = state;
    pthread_mutex_lock (&self->lock);
    self->state = state;
    self->generation = io->generation;
    pthread_cond_broadcast (&self->state_changed);
    pthread_mutex_unlock (&self->lock);
}

//  Closes the socket for good, giving the last settles and LEAVE a moment
//  to reach the broker.
static void
s_io_close (s_io_t *io)
{
    if (io->dealer) {
        zsock_set_linger (io->dealer, 1000);
        zsock_destroy (&io->dealer);
    }
}

//  Forgets jobs that will not be settled (a list linked by next).
static void
s_io_drop_jobs (s_io_t *io, hd_delivery_t *job)
{
    while (job) {
        hd_delivery_t *next = job->next;
        hd_hashmap_remove (io->jobs, job->key_hash, job);
        s_io_job_recycle (io, &job);
        job = next;
    }
}

//  Jobs not yet taken by a handler thread are dropped when their lease is
//  gone (new session, or stopping): the broker redelivers them anyway.
static void
s_io_drop_queued (s_io_t *io)
{
    hd_worker_t *self = io->worker;
    pthread_mutex_lock (&self->lock);
    hd_delivery_t *job = self->queue_head;
    self->queue_head = self->queue_tail = NULL;
    pthread_mutex_unlock (&self->lock);
    s_io_drop_jobs (io, job);
}

static void
s_io_send_join (s_io_t *io)
{
    hd_worker_t *self = io->worker;
    Herald__Join join = HERALD__JOIN__INIT;
    join.pool = self->pool;
    join.filter = self->filter;
    pthread_mutex_lock (&self->lock);
    join.credit = self->credit; // hd_worker_set_credit may change it any time
    pthread_mutex_unlock (&self->lock);
    io->credit_sent = join.credit;
    join.name = self->name;
    join.max_batch = S_MAX_BATCH;
    const hd_pool_options_t *asked = &self->pool_options;
    Herald__PoolOptions options = HERALD__POOL_OPTIONS__INIT;
    Herald__StartPosition start = HERALD__START_POSITION__INIT;
    options.ordered = asked->ordered;
    options.max_deliver = asked->max_deliver;
    options.ack_wait_ms = asked->ack_wait_ms;
    options.backoff_initial_ms = asked->backoff_initial_ms;
    options.backoff_max_ms = asked->backoff_max_ms;
    options.backoff_multiplier = asked->backoff_multiplier;
    options.backoff_jitter = asked->backoff_jitter;
    switch (asked->start) {
        case HD_START_EARLIEST:
            start.from_case = HERALD__START_POSITION__FROM_EARLIEST;
            start.earliest = true;
            break;
        case HD_START_SEQ:
            start.from_case = HERALD__START_POSITION__FROM_SEQ;
            start.seq = asked->start_seq;
            break;
        case HD_START_TIME:
            start.from_case = HERALD__START_POSITION__FROM_TIME_US;
            start.time_us = asked->start_time_us;
            break;
        default: break;
    }
    if (start.from_case != HERALD__START_POSITION__FROM__NOT_SET)
        options.start = &start;
    join.options = &options;
    s_io_send_command (io, HD_CMD_JOIN, &join.base);
    io->last_recv = zclock_mono (); // the broker gets liveness × 1 s to answer
}

//  Reconnect after the current backoff, which doubles up to 32 s
static void
s_io_schedule_reconnect (s_io_t *io)
{
    io->reconnect_at = zclock_mono () + io->backoff_ms;
    io->backoff_ms = io->backoff_ms * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : io->backoff_ms * 2;
}

static void
s_io_connect (s_io_t *io)
{
    hd_worker_t *self = io->worker;
    io->reconnect_at = 0;
    io->dealer = zsock_new (ZMQ_DEALER);
    if (!io->dealer || zsock_connect (io->dealer, "%s", self->endpoint)) {
        zsock_destroy (&io->dealer);
        s_set_error (self, "cannot connect to %s", self->endpoint);
        s_io_schedule_reconnect (io);
        return;
    }
    s_io_set_state (io, S_STATE_JOINING);
    s_io_send_join (io);
}

//  The session is gone: nothing in hand can be settled under its tags.
static void
s_io_lose_session (s_io_t *io)
{
    io->generation++;
    io->ack_count = 0;
    io->progress_count = 0;
    s_io_drop_queued (io);
    s_io_set_state (io, S_STATE_JOINING);
}

static void
s_io_disconnect (s_io_t *io)
{
    if (io->dealer) {
        zsock_set_linger (io->dealer, 0);
        zsock_destroy (&io->dealer);
    }
    s_io_lose_session (io);
    s_io_schedule_reconnect (io);
}

static int
s_tags_push (uint64_t **seqs, uint32_t **attempts, size_t *count, size_t *capacity, uint64_t seq,
             uint32_t attempt)
{
    if (*count == *capacity) {
        size_t grown = *capacity ? *capacity * 2 : 64;
        uint64_t *new_seqs = realloc (*seqs, grown * sizeof **seqs);
        if (!new_seqs)
            return -1;
        *seqs = new_seqs;
        uint32_t *new_attempts = realloc (*attempts, grown * sizeof **attempts);
        if (!new_attempts)
            return -1;
        *attempts = new_attempts;
        *capacity = grown;
    }
    (*seqs)[*count] = seq;
    (*attempts)[*count] = attempt;
    (*count)++;
    return 0;
}

static void
s_io_queue_ack (s_io_t *io, uint64_t seq, uint32_t attempt)
{
    s_tags_push (&io->ack_seq, &io->ack_attempt, &io->ack_count, &io->ack_capacity, seq, attempt);
}

uint32_t
hd_worker_handle_ns_next (uint32_t handle_ns, uint64_t took_ns)
{
    uint64_t took = took_ns > UINT32_MAX ? UINT32_MAX : took_ns ? took_ns : 1;
    if (handle_ns == 0)
        return (uint32_t) took;
    int64_t next = (int64_t) handle_ns + ((int64_t) took - (int64_t) handle_ns) / 8;
    return next < 1 ? 1 : (uint32_t) next;
}

int
hd_worker_send_settles (void *socket, int command, const uint64_t *seq, const uint32_t *attempt,
                        size_t count, uint32_t handle_ns, int flags)
{
    int messages = 0;
    for (size_t offset = 0; offset < count; offset += HD_WORKER_SETTLE_BATCH) {
        size_t batch = count - offset;
        if (batch > HD_WORKER_SETTLE_BATCH)
            batch = HD_WORKER_SETTLE_BATCH;
        Herald__Settle settle = HERALD__SETTLE__INIT;
        settle.n_seq = settle.n_attempt = batch;
        settle.seq = (uint64_t *) seq + offset;
        settle.attempt = (uint32_t *) attempt + offset;
        settle.handle_ns = handle_ns;
        if (hd_send_command (socket, NULL, 0, (hd_command_t) command, &settle.base, flags))
            return -1;
        messages++;
    }
    return messages;
}

//  A body over 64 KiB is refused whole (TOO_LARGE): batches are cut to fit
static void
s_io_send_settles (s_io_t *io, hd_command_t command, const uint64_t *seq, const uint32_t *attempt,
                   size_t count)
{
    if (!io->dealer || count == 0)
        return;
    uint32_t handle_ns = command == HD_CMD_ACK ? io->handle_ns : 0;
    hd_worker_send_settles (zsock_resolve (io->dealer), command, seq, attempt, count, handle_ns,
                            ZMQ_DONTWAIT);
    io->last_send = zclock_mono ();
}

static void
s_io_flush_settles (s_io_t *io)
{
    if (io->state == S_STATE_ACTIVE) {
        s_io_send_settles (io, HD_CMD_ACK, io->ack_seq, io->ack_attempt, io->ack_count);
        s_io_send_settles (io, HD_CMD_PROGRESS, io->progress_seq, io->progress_attempt,
                           io->progress_count);
    }
    io->ack_count = 0;
    io->progress_count = 0;
}

//  hd_delivery_progress from an inline handler: it runs on the I/O thread,
//  so the PROGRESS goes out now (and tells the broker the worker lives)
static int
s_io_progress_now (void *io_state, hd_delivery_t *job)
{
    s_io_t *io = io_state;
    if (!io)
        return 0; // hd_worker_stop gave up on this call: the worker has left
    if (job->generation != io->generation || io->state != S_STATE_ACTIVE)
        return 0; // the broker would refuse it as stale
    //  A handler calling in a loop sends one every quarter heartbeat: the
    //  lease runs far longer, and a flood would fill the socket
    int64_t now = zclock_mono ();
    if (job->progress_sent && now - job->progress_sent < (int64_t) io->heartbeat_ms / 4)
        return 0;
    job->progress_sent = now;
    if (s_tags_push (&io->progress_seq, &io->progress_attempt, &io->progress_count,
                     &io->progress_capacity, job->seq, job->attempt))
        return -1;
    s_io_send_settles (io, HD_CMD_PROGRESS, io->progress_seq, io->progress_attempt,
                       io->progress_count);
    io->progress_count = 0;
    return 0;
}

//  hd_worker_set_credit after start: tell the broker (a JOIN in flight
//  carries the old value, so this runs again once JOINED)
static void
s_io_sync_credit (s_io_t *io)
{
    hd_worker_t *self = io->worker;
    if (io->state != S_STATE_ACTIVE)
        return;
    pthread_mutex_lock (&self->lock);
    uint32_t credit = self->credit;
    pthread_mutex_unlock (&self->lock);
    if (credit == io->credit_sent)
        return;
    Herald__Credit body = HERALD__CREDIT__INIT;
    body.credit = credit;
    s_io_send_command (io, HD_CMD_CREDIT, &body.base);
    io->credit_sent = credit;
}

//  ---------------------------------------------------------------------
//  Dedup store. Its failures never stop the worker: a lookup that fails
//  counts as "not processed" (the handler runs), an insert that fails
//  leaves the ids unrecorded (the events are acked all the same).

static void
s_io_dedup_failed (s_io_t *io, s_dedup_log_t *log, const char *consequence)
{
    hd_worker_t *self = io->worker;
    atomic_fetch_add (&self->dedup_errors, 1);
    char text[512];
    hd_dedup_store_error (self->dedup, text, sizeof text);
    s_set_error (self, "%s", text);
    log->not_reported++;
    int64_t now = zclock_mono ();
    if (log->logged_at == 0 || now - log->logged_at >= S_DEDUP_LOG_MS) {
        zsys_warning ("herald worker: %s; %s (%" PRIu64 " time(s) since the last report)", text,
                      consequence, log->not_reported);
        log->logged_at = now;
        log->not_reported = 0;
    }
}

static bool
s_io_stored (s_io_t *io, const char *source, const char *id)
{
    hd_worker_t *self = io->worker;
    if (!self->dedup)
        return false;
    int rc = hd_dedup_store_contains (self->dedup, source, id, zclock_time ());
    if (rc < 0)
        s_io_dedup_failed (io, &io->dedup_lookups, "treating the event as new");
    return rc == 1;
}

//  Record the ids of the jobs the handler acked, in one transaction, before
//  their ACKs are queued: a crash in between can cause a skip, never a redo.
static void
s_io_record (s_io_t *io, hd_delivery_t *done)
{
    hd_worker_t *self = io->worker;
    if (!self->dedup)
        return;
    size_t count = 0;
    for (hd_delivery_t *job = done; job; job = job->next)
        if (job->verdict == HD_ACK)
            count++;
    if (count == 0)
        return;
    const char **sources = malloc (count * sizeof *sources);
    const char **ids = malloc (count * sizeof *ids);
    int64_t now = zclock_time (); // wall clock: the store outlives the process
    int rc = 0;
    if (sources && ids) {
        size_t index = 0;
        for (hd_delivery_t *job = done; job; job = job->next)
            if (job->verdict == HD_ACK) {
                sources[index] = hd_event_source (job->event);
                ids[index++] = hd_event_id (job->event);
            }
        rc = hd_dedup_store_insert_many (self->dedup, sources, ids, count, now);
    } else
        for (hd_delivery_t *job = done; job; job = job->next)
            if (job->verdict == HD_ACK) {
                int one = hd_dedup_store_insert (self->dedup, hd_event_source (job->event),
                                                 hd_event_id (job->event), now);
                rc = one ? one : rc;
            }
    free (sources);
    free (ids);
    if (rc)
        s_io_dedup_failed (io, &io->dedup_inserts, "events are acked without being recorded");
}

static bool
s_job_matches (const void *job, const void *key)
{
    return hd_key_equal (((const hd_delivery_t *) job)->key, key);
}

//  An event as read from a DELIVER or DELIVERS, before it becomes a job:
//  decoded, its key built and hashed (so a batch can look ahead).
typedef struct {
    uint64_t seq;
    uint32_t attempt;
    uint32_t ack_wait_ms;
    hd_event_t *event; // NULL: undecodable, or no memory
    bool undecodable;  // the bytes make no event (TERM), as opposed to no memory
    hd_key_t *key;     // (source, id), in key_room or malloc'ed; NULL when event is
    uint64_t key_hash;
    hd_key_room_t key_room;
} s_arrival_t;

//  Takes event, the decoder's result: NULL when it could not be decoded
//  (errno EPROTO), or no memory (the lease runs out and it comes back).
static void
s_arrival_init (s_arrival_t *self, uint64_t seq, uint32_t attempt, uint32_t ack_wait_ms,
                hd_event_t *event)
{
    self->seq = seq;
    self->attempt = attempt;
    self->ack_wait_ms = ack_wait_ms;
    self->undecodable = !event && errno == EPROTO;
    if (event && (*hd_event_id (event) == 0 || *hd_event_type (event) == 0)) {
        hd_event_destroy (&event); // the broker never accepts such an event
        self->undecodable = true;
    }
    self->event = event;
    self->key =
        event ? hd_key_make (&self->key_room, hd_event_source (event), hd_event_id (event)) : NULL;
    self->key_hash = self->key ? hd_key_hash (self->key) : 0;
}

//  Makes a job of the arrival (taking its event and key), or settles it
//  at once (already processed, undecodable), or drops it.
static void
s_io_take_delivery (s_io_t *io, s_arrival_t *arrival)
{
    hd_worker_t *self = io->worker;
    hd_event_t *event = arrival->event;
    hd_key_t *key = arrival->key; // freed with hd_key_free unless a job takes it
    uint64_t seq = arrival->seq, key_hash = arrival->key_hash;
    uint32_t attempt = arrival->attempt, ack_wait_ms = arrival->ack_wait_ms;
    if (seq == 0 || attempt == 0) {
        hd_event_destroy (&event);
        hd_key_free (&arrival->key, &arrival->key_room);
        return; // not a lease any broker hands out: nothing to settle
    }
    if (arrival->undecodable && io->state == S_STATE_ACTIVE) {
        //  No handler can make sense of it, and redelivery will not change it
        Herald__Term term = HERALD__TERM__INIT;
        term.seq = seq;
        term.attempt = attempt;
        term.error = (char *) "worker could not decode the event";
        s_io_send_command (io, HD_CMD_TERM, &term.base);
    }
    if (!key) {
        hd_event_destroy (&event);
        return;
    }
    if (hd_event_seq (event) == 0)
        hd_event_set_seq (event, seq);
    if (!ack_wait_ms)
        ack_wait_ms = io->ack_wait_ms;

    hd_delivery_t *job = hd_hashmap_find (io->jobs, key_hash, s_job_matches, key);
    //  The memory set is the fast path; the store also knows earlier runs.
    //  Its clock is the message's (read as it arrived)
    if (hd_seen_has (io->seen, key, key_hash, io->last_recv) ||
        s_io_stored (io, hd_event_source (event), hd_event_id (event))) {
        s_io_queue_ack (io, seq, attempt);
        atomic_fetch_add (&self->skipped, 1);
        hd_event_destroy (&event);
        hd_key_free (&arrival->key, &arrival->key_room);
    } else if (job) {
        //  Already in hand: the newest lease is the one to settle
        pthread_mutex_lock (&self->lock);
        job->seq = seq;
        job->attempt = attempt;
        job->ack_wait_ms = ack_wait_ms;
        job->generation = io->generation;
        pthread_mutex_unlock (&self->lock);
        hd_event_destroy (&event);
        hd_key_free (&arrival->key, &arrival->key_room);
    } else if (io->draining) {
        //  Stopping: take nothing new; LEAVE hands it back at once
        hd_event_destroy (&event);
        hd_key_free (&arrival->key, &arrival->key_room);
    } else {
        job = s_io_job_new (io);
        if (!job) {
            hd_event_destroy (&event);
            hd_key_free (&arrival->key, &arrival->key_room);
            return;
        }
        job->worker = self;
        job->event = event;
        job->key = hd_key_move (&arrival->key, &arrival->key_room, &job->key_room);
        job->key_hash = key_hash;
        job->seq = seq;
        job->attempt = attempt;
        job->ack_wait_ms = ack_wait_ms;
        job->generation = io->generation;
        if (hd_hashmap_insert (io->jobs, job->key_hash, job)) {
            s_io_job_recycle (io, &job);
            return;
        }
        if (io->new_tail)
            io->new_tail->next = job;
        else
            io->new_head = job;
        io->new_tail = job;
    }
}

static void s_io_settle (s_io_t *io, hd_delivery_t *done);

//  Settles the inline jobs that have run so far (socket_lock held).
static void
s_io_settle_ran (s_io_t *io)
{
    hd_delivery_t *ran = io->ran_head;
    io->ran_head = io->ran_tail = NULL;
    s_io_settle (io, ran);
    s_io_flush_settles (io);
}

//  Inline: runs the jobs of the message just read, in order, and sends
//  their settles when done, so the broker has the credit back as soon as
//  the batch is (settling every few events costs more messages than it
//  wins). Two things cut in: what has run is settled once the first of it
//  finished half a heartbeat ago (here between calls, by the guard during
//  one), so a finished event's ACK never waits for slow handlers after
//  it; and once a stop is asked for, the jobs not yet run are dropped
//  (LEAVE hands them to other workers).
//  The socket (and all of io) is given up for each handler call only:
//  holding socket_lock with io_state set, another thread knows this one is
//  in a handler call (the guard heartbeats for it; hd_worker_stop, past the
//  grace period, settles what has run and abandons the call).
static void
s_io_run_new_jobs (s_io_t *io)
{
    hd_worker_t *self = io->worker;
    hd_delivery_t *job = io->new_head;
    io->new_head = io->new_tail = NULL;
    while (job) {
        hd_delivery_t *next = job->next;
        job->next = NULL;
        if (!io->draining && atomic_load (&self->stopping))
            io->draining = true;
        if (io->draining) {
            s_io_drop_jobs (io, job);
            job = next;
            continue;
        }
        job->running = true;
        pthread_mutex_unlock (&self->socket_lock);
        int64_t now = s_run_handler (self, job);
        pthread_mutex_lock (&self->socket_lock);
        atomic_fetch_add (&self->handled, 1);
        if (self->io_state != io) {
            //  Abandoned: its result and the rest go nowhere (LEAVE was sent)
            s_io_drop_jobs (io, job);
            s_io_drop_jobs (io, next);
            return;
        }
        if (io->ran_tail)
            io->ran_tail->next = job;
        else {
            io->ran_head = job;
            io->ran_since = now;
        }
        io->ran_tail = job;
        if (now - io->ran_since >= (int64_t) io->heartbeat_ms / 2)
            s_io_settle_ran (io);
        job = next;
    }
    s_io_settle_ran (io);
}

//  Hands the jobs of the message just read to the handler threads: one
//  lock and one wake-up per message, not per event.
static void
s_io_queue_new_jobs (s_io_t *io)
{
    if (!io->new_head)
        return;
    hd_worker_t *self = io->worker;
    if (self->inline_handler) {
        s_io_run_new_jobs (io);
        return;
    }
    pthread_mutex_lock (&self->lock);
    if (self->queue_tail)
        self->queue_tail->next = io->new_head;
    else
        self->queue_head = io->new_head;
    self->queue_tail = io->new_tail;
    if (io->new_head == io->new_tail)
        pthread_cond_signal (&self->jobs_ready);
    else
        pthread_cond_broadcast (&self->jobs_ready);
    pthread_mutex_unlock (&self->lock);
    io->new_head = io->new_tail = NULL;
}

static void
s_io_on_deliver (s_io_t *io, hd_frames_t *frames)
{
    if (frames->count != 4)
        return;
    Herald__Deliver *deliver =
        herald__deliver__unpack (NULL, hd_frames_size (frames, 1), hd_frames_data (frames, 1));
    if (!deliver)
        return;
    s_arrival_t arrival;
    s_arrival_init (&arrival, deliver->seq, deliver->attempt, deliver->ack_wait_ms,
                    hd_event_decode (hd_frames_data (frames, 2), hd_frames_size (frames, 2),
                                     &frames->frame[3]));
    herald__deliver__free_unpacked (deliver, NULL);
    s_io_take_delivery (io, &arrival);
}

//  A batch: each event's payload is copied out of the body (the broker
//  batches small payloads only).
static void
s_io_on_delivers (s_io_t *io, hd_frames_t *frames)
{
    if (frames->count != 2)
        return;
    const uint8_t *cursor = hd_frames_data (frames, 1);
    const uint8_t *end = cursor + hd_frames_size (frames, 1);
    //  Decoded S_LOOKAHEAD at a time, with each key's slot in the processed
    //  set fetched ahead: the set is large and looked up at random, so its
    //  cache misses overlap instead of coming one after another
    s_arrival_t arrivals[S_LOOKAHEAD];
    int rc = 1;
    while (rc == 1) {
        size_t count = 0;
        hd_delivery_view_t view;
        while (count < S_LOOKAHEAD && (rc = hd_decode_delivery (&cursor, end, &view)) == 1) {
            s_arrival_t *arrival = &arrivals[count++];
            hd_event_t *spare = hd_event_spares_take (&io->spare_events);
            s_arrival_init (arrival, view.seq, view.attempt, view.ack_wait_ms,
                            hd_event_decode_bytes_into (
                                &spare, view.envelope ? view.envelope : (const uint8_t *) "",
                                view.envelope_size, view.payload, view.payload_size));
            if (arrival->key)
                hd_seen_prefetch (io->seen, arrival->key_hash);
        }
        for (size_t index = 0; index < count; index++)
            s_io_take_delivery (io, &arrivals[index]);
    }
    if (rc < 0)
        s_set_error (io->worker, "malformed DELIVERS from the broker: the rest of it is dropped");
}

static void
s_io_on_joined (s_io_t *io, hd_frames_t *frames)
{
    hd_worker_t *self = io->worker;
    Herald__Joined *joined =
        herald__joined__unpack (NULL, hd_frames_size (frames, 1), hd_frames_data (frames, 1));
    if (!joined)
        return;
    io->heartbeat_ms = joined->heartbeat_ms ? joined->heartbeat_ms : S_HEARTBEAT_DEFAULT_MS;
    io->liveness = joined->liveness ? joined->liveness : S_LIVENESS_DEFAULT;
    if (joined->ack_wait_ms)
        io->ack_wait_ms = joined->ack_wait_ms;
    io->backoff_ms = S_BACKOFF_INITIAL_MS;
    herald__joined__free_unpacked (joined, NULL);
    if (io->state != S_STATE_ACTIVE)
        atomic_fetch_add (&self->joins, 1);
    s_io_set_state (io, S_STATE_ACTIVE);
}

static void
s_io_on_error (s_io_t *io, hd_frames_t *frames)
{
    hd_worker_t *self = io->worker;
    Herald__Error *error =
        herald__error__unpack (NULL, hd_frames_size (frames, 1), hd_frames_data (frames, 1));
    if (!error)
        return;
    const char *reason = error->reason ? error->reason : "";
    switch (error->code) {
        case HERALD__ERROR_CODE__STALE_TAG: atomic_fetch_add (&self->stale, 1); break;
        case HERALD__ERROR_CODE__UNKNOWN_PEER:
            //  Errors for commands sent before our JOIN arrive while JOINING: ignore those
            if (io->state == S_STATE_ACTIVE && !io->draining) {
                s_io_lose_session (io);
                s_io_send_join (io);
            }
            break;
        case HERALD__ERROR_CODE__INTERNAL:
            if (io->state == S_STATE_JOINING)
                s_io_disconnect (io); // try again after a backoff
            break;
        default:
            //  The broker names the command it refuses; a refusal while
            //  joining that names none can only be about the JOIN
            if (error->command == HD_CMD_JOIN ||
                (io->state == S_STATE_JOINING && error->command == 0)) {
                s_set_error (self, "JOIN refused: %s: %s", hd_error_name (error->code), reason);
                s_io_set_state (io, S_STATE_FAILED);
            } else
                s_set_error (self, "broker error %s on %s: %s", hd_error_name (error->code),
                             hd_command_name ((int) error->command), reason);
    }
    herald__error__free_unpacked (error, NULL);
}

static void
s_io_on_message (s_io_t *io, hd_frames_t *frames)
{
    int command;
    if (frames->count < 1 ||
        hd_header_decode (hd_frames_data (frames, 0), hd_frames_size (frames, 0), &command))
        return;
    switch (command) {
        case HD_CMD_DELIVER: s_io_on_deliver (io, frames); break;
        case HD_CMD_DELIVERS: s_io_on_delivers (io, frames); break;
        case HD_CMD_JOINED:
            if (frames->count == 2)
                s_io_on_joined (io, frames);
            break;
        case HD_CMD_ERROR:
            if (frames->count == 2)
                s_io_on_error (io, frames);
            break;
        default: break; // HEARTBEAT: arriving at all is the point
    }
}

//  Settle finished jobs: forget them, remember what was acked, and queue
//  or send each verdict (ACKs go out in one batch with s_io_flush_settles).
static void
s_io_settle (s_io_t *io, hd_delivery_t *done)
{
    s_io_record (io, done);
    int64_t now = zclock_mono ();
    while (done) {
        hd_delivery_t *job = done;
        done = job->next;
        hd_hashmap_remove (io->jobs, job->key_hash, job);
        //  Only work done is timed: a handler failing fast must not win long runs
        if (job->verdict == HD_ACK) {
            io->handle_ns = hd_worker_handle_ns_next (io->handle_ns, job->took_ns);
            hd_seen_add (io->seen, job->key, job->key_hash, now);
        }
        //  The tag is only written by this thread, so no lock is needed to read it
        bool current = job->generation == io->generation && io->state == S_STATE_ACTIVE;
        if (current && job->verdict == HD_ACK)
            s_io_queue_ack (io, job->seq, job->attempt);
        else if (current && job->verdict == HD_RETRY) {
            Herald__Nack nack = HERALD__NACK__INIT;
            nack.seq = job->seq;
            nack.attempt = job->attempt;
            nack.delay_ms = job->retry_ms;
            nack.error = job->error ? job->error : (char *) "";
            s_io_send_command (io, HD_CMD_NACK, &nack.base);
        } else if (current) {
            Herald__Term term = HERALD__TERM__INIT;
            term.seq = job->seq;
            term.attempt = job->attempt;
            term.error = job->error ? job->error : (char *) "";
            s_io_send_command (io, HD_CMD_TERM, &term.base);
        }
        s_io_job_recycle (io, &job);
    }
}

//  Queues the PROGRESS of requests from other threads (a list it frees).
static void
s_io_queue_progress (s_io_t *io, s_progress_t *progress)
{
    while (progress) {
        s_progress_t *request = progress;
        progress = request->next;
        if (request->generation == io->generation)
            s_tags_push (&io->progress_seq, &io->progress_attempt, &io->progress_count,
                         &io->progress_capacity, request->seq, request->attempt);
        free (request);
    }
}

//  Settle what the handler threads finished and pass on progress requests.
static void
s_io_take_results (s_io_t *io)
{
    hd_worker_t *self = io->worker;
    pthread_mutex_lock (&self->lock);
    hd_delivery_t *done = self->done_head;
    self->done_head = self->done_tail = NULL;
    s_progress_t *progress = self->progress_head;
    self->progress_head = self->progress_tail = NULL;
    pthread_mutex_unlock (&self->lock);

    s_io_settle (io, done);
    s_io_queue_progress (io, progress);
}

static void
s_io_check_timers (s_io_t *io)
{
    int64_t now = zclock_mono ();
    if (!io->dealer) {
        if (!io->draining && io->reconnect_at && now >= io->reconnect_at)
            s_io_connect (io);
        return;
    }
    //  Before JOINED we have no heartbeat settings yet: assume the defaults
    uint32_t heartbeat = io->state == S_STATE_ACTIVE ? io->heartbeat_ms : S_HEARTBEAT_DEFAULT_MS;
    uint32_t liveness = io->state == S_STATE_ACTIVE ? io->liveness : S_LIVENESS_DEFAULT;
    if (now - io->last_recv > (int64_t) heartbeat * liveness) {
        s_io_disconnect (io);
        return;
    }
    if (io->state == S_STATE_ACTIVE && now - io->last_send >= heartbeat)
        s_io_send_command (io, HD_CMD_HEARTBEAT, NULL);
}

static long
s_io_poll_timeout (s_io_t *io)
{
    int64_t now = zclock_mono ();
    int64_t timeout = 1000;
    if (io->draining) {
        pthread_mutex_lock (&io->worker->lock);
        int64_t stop_deadline = io->worker->stop_deadline;
        pthread_mutex_unlock (&io->worker->lock);
        if (stop_deadline > 0 && stop_deadline - now < timeout)
            timeout = stop_deadline - now;
    }
    if (!io->dealer) {
        if (io->reconnect_at)
            timeout = io->reconnect_at - now;
    } else {
        uint32_t heartbeat =
            io->state == S_STATE_ACTIVE ? io->heartbeat_ms : S_HEARTBEAT_DEFAULT_MS;
        uint32_t liveness = io->state == S_STATE_ACTIVE ? io->liveness : S_LIVENESS_DEFAULT;
        int64_t silence_at = io->last_recv + (int64_t) heartbeat * liveness + 1;
        if (silence_at - now < timeout)
            timeout = silence_at - now;
        if (io->state == S_STATE_ACTIVE && io->last_send + heartbeat - now < timeout)
            timeout = io->last_send + heartbeat - now;
    }
    return timeout < 0 ? 0 : (long) timeout;
}

static void *
s_io_thread (void *arg)
{
    hd_worker_t *self = arg;
    pthread_setname_np (pthread_self (), "herald-io");
    s_io_t io_state = {0};
    s_io_t *io = &io_state;
    io->worker = self;
    pthread_mutex_lock (&self->socket_lock);
    self->io_state = io;
    pthread_mutex_lock (&self->lock);
    self->io_self = pthread_self ();
    self->io_running = true;
    pthread_mutex_unlock (&self->lock);
    hd_reuse_init (&io->spare_jobs, 1024);
    io->spare_events.max = HD_SPARE_MAX (S_SPARE_EVENTS);
    io->heartbeat_ms = S_HEARTBEAT_DEFAULT_MS;
    io->liveness = S_LIVENESS_DEFAULT;
    io->ack_wait_ms = 30000;
    io->backoff_ms = S_BACKOFF_INITIAL_MS;
    io->seen = hd_seen_new (self->seen_capacity, self->seen_ttl_ms);
    io->jobs = hd_hashmap_new ();
    if (!io->seen || !io->jobs) {
        s_set_error (self, "out of memory");
        s_io_set_state (io, S_STATE_FAILED);
    } else
        s_io_connect (io);

    while (io->state != S_STATE_FAILED) {
        zmq_pollitem_t items[2] = {
            {NULL, self->wake[0], ZMQ_POLLIN, 0},
            {io->dealer ? zsock_resolve (io->dealer) : NULL, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll (items, io->dealer ? 2 : 1, s_io_poll_timeout (io));
        if (rc == -1 && errno != EINTR)
            break;
        if (rc > 0 && (items[0].revents & ZMQ_POLLIN)) {
            char buffer[256];
            while (read (self->wake[0], buffer, sizeof buffer) > 0)
                ;
        }
        if (rc > 0 && io->dealer && (items[1].revents & ZMQ_POLLIN)) {
            hd_frames_t frames;
            for (int count = 0;
                 count < S_DRAIN_BATCH && io->dealer && io->state != S_STATE_FAILED &&
                 hd_frames_recv (&frames, zsock_resolve (io->dealer), ZMQ_DONTWAIT) == 0;
                 count++) {
                io->last_recv = zclock_mono ();
                s_io_on_message (io, &frames);
                s_io_queue_new_jobs (io);
                hd_frames_close (&frames);
            }
        }
        if (self->io_state != io)
            break; // hd_worker_stop abandoned a handler call: exit
        s_io_take_results (io);

        pthread_mutex_lock (&self->lock);
        bool stop = self->stop_requested;
        int64_t stop_deadline = self->stop_deadline;
        pthread_mutex_unlock (&self->lock);
        if (stop && !io->draining) {
            io->draining = true;
            s_io_drop_queued (io);
        }
        s_io_flush_settles (io);
        s_io_sync_credit (io);
        //  Past the stop grace period, handlers still running are left
        //  behind: LEAVE hands their events to other workers
        if (io->draining && (hd_hashmap_size (io->jobs) == 0 ||
                             (stop_deadline > 0 && zclock_mono () >= stop_deadline))) {
            if (io->state == S_STATE_ACTIVE)
                s_io_send_command (io, HD_CMD_LEAVE, NULL);
            break;
        }
        if (io->state != S_STATE_FAILED)
            s_io_check_timers (io);
    }

    //  Jobs still running come back on the done queue; hd_worker_stop frees them
    s_io_drop_queued (io);
    s_io_close (io);
    hd_seen_destroy (&io->seen);
    hd_hashmap_destroy (&io->jobs);
    hd_reuse_drain (&io->spare_jobs);
    hd_event_spares_drain (&io->spare_events);
    free (io->ack_seq);
    free (io->ack_attempt);
    free (io->progress_seq);
    free (io->progress_attempt);
    self->io_state = NULL;
    pthread_mutex_unlock (&self->socket_lock);
    pthread_mutex_lock (&self->lock);
    if (self->state != S_STATE_FAILED)
        self->state = S_STATE_CLOSED;
    self->io_done = true;
    self->io_running = false; // its thread id may be reused from now on
    pthread_cond_broadcast (&self->state_changed);
    bool last_out = self->io_abandoned && self->destroyed && !s_threads_left (self);
    pthread_mutex_unlock (&self->lock);
    if (last_out)
        s_worker_free (self);
    return NULL;
}

//  ---------------------------------------------------------------------
//  Guard thread (inline handlers)

//  Called with socket_lock held while the I/O thread runs a handler call:
//  the worker would say nothing until the call returns, so the guard
//  speaks for it. It passes on PROGRESS asked for from other threads,
//  settles what the batch has run once the first of it finished half a
//  heartbeat ago, and sends a HEARTBEAT when half a heartbeat passed
//  without a send. Returns the next period.
static uint32_t
s_guard_check (s_io_t *io)
{
    hd_worker_t *self = io->worker;
    if (io->state != S_STATE_ACTIVE || !io->dealer)
        return S_HEARTBEAT_DEFAULT_MS / 4;
    pthread_mutex_lock (&self->lock);
    s_progress_t *progress = self->progress_head;
    self->progress_head = self->progress_tail = NULL;
    pthread_mutex_unlock (&self->lock);
    s_io_queue_progress (io, progress);
    int64_t now = zclock_mono ();
    int64_t half = (int64_t) io->heartbeat_ms / 2;
    if (io->ran_head && now - io->ran_since >= half)
        s_io_settle_ran (io);
    else
        s_io_flush_settles (io);
    if (now - io->last_send >= half)
        s_io_send_command (io, HD_CMD_HEARTBEAT, NULL);
    return io->heartbeat_ms >= 4 ? io->heartbeat_ms / 4 : 1;
}

static void s_deadline (struct timespec *deadline, int timeout_ms);

static void *
s_guard_thread (void *arg)
{
    hd_worker_t *self = arg;
    pthread_setname_np (pthread_self (), "herald-guard");
    uint32_t period_ms = S_HEARTBEAT_DEFAULT_MS / 4;
    pthread_mutex_lock (&self->lock);
    while (!self->guard_exit) {
        struct timespec until;
        s_deadline (&until, (int) period_ms);
        pthread_cond_timedwait (&self->guard_wake, &self->lock, &until);
        if (self->guard_exit)
            break;
        pthread_mutex_unlock (&self->lock);
        //  Free only while handlers run (or before and after the I/O thread)
        if (pthread_mutex_trylock (&self->socket_lock) == 0) {
            if (self->io_state)
                period_ms = s_guard_check (self->io_state);
            pthread_mutex_unlock (&self->socket_lock);
        }
        pthread_mutex_lock (&self->lock);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

//  ---------------------------------------------------------------------
//  Worker

hd_worker_t *
hd_worker_new (const char *broker_endpoint, const char *pool, const char *filter)
{
    hd_worker_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    //  czmq installs its SIGINT/SIGTERM handler here, before any thread starts
    zsys_init ();
    self->endpoint = strdup (broker_endpoint ? broker_endpoint : HERALD_DEFAULT_BROKER);
    self->pool = strdup (pool ? pool : "");
    self->filter = strdup (filter ? filter : "");
    self->name = zsys_hostname ();
    if (!self->name)
        self->name = strdup ("");
    self->credit = 10;
    self->concurrency = 1;
    self->seen_capacity = 100000;
    self->seen_ttl_ms = 600000;
    self->stop_grace_ms = S_STOP_GRACE_DEFAULT;
    self->wake[0] = self->wake[1] = -1;
    pthread_mutex_init (&self->lock, NULL);
    pthread_mutex_init (&self->stop_lock, NULL);
    pthread_mutex_init (&self->socket_lock, NULL);
    pthread_cond_init (&self->jobs_ready, NULL);
    //  Waits are timed against the monotonic clock
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->state_changed, &attr);
    pthread_cond_init (&self->guard_wake, &attr);
    pthread_condattr_destroy (&attr);
    if (!self->endpoint || !self->pool || !self->filter || !self->name ||
        pipe2 (self->wake, O_NONBLOCK | O_CLOEXEC)) {
        hd_worker_destroy (&self);
        return NULL;
    }
    return self;
}

static void
s_free_results (hd_worker_t *self)
{
    while (self->done_head) {
        hd_delivery_t *job = self->done_head;
        self->done_head = job->next;
        s_job_destroy (&job);
    }
    self->done_tail = NULL;
    while (self->progress_head) {
        s_progress_t *request = self->progress_head;
        self->progress_head = request->next;
        free (request);
    }
    self->progress_tail = NULL;
}

void
hd_worker_destroy (hd_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_worker_t *self = *self_p;
    *self_p = NULL;
    hd_worker_stop (self);
    pthread_mutex_lock (&self->lock);
    self->destroyed = true;
    bool free_now = !s_threads_left (self);
    pthread_mutex_unlock (&self->lock);
    if (free_now)
        s_worker_free (self);
}

static void
s_worker_free (hd_worker_t *self)
{
    s_free_results (self);
    if (self->wake[0] >= 0)
        close (self->wake[0]);
    if (self->wake[1] >= 0)
        close (self->wake[1]);
    pthread_cond_destroy (&self->jobs_ready);
    pthread_cond_destroy (&self->state_changed);
    pthread_cond_destroy (&self->guard_wake);
    pthread_mutex_destroy (&self->lock);
    pthread_mutex_destroy (&self->stop_lock);
    pthread_mutex_destroy (&self->socket_lock);
    free (self->handler_threads);
    free (self->endpoint);
    free (self->pool);
    free (self->filter);
    free (self->name);
    free (self->dedup_path);
    hd_dedup_store_destroy (&self->dedup);
    free (self);
}

void
hd_worker_set_pool_options (hd_worker_t *self, const hd_pool_options_t *options)
{
    self->pool_options = *options;
}

int
hd_pool_options_parse_start (hd_pool_options_t *options, const char *text)
{
    char *end;
    if (strcmp (text, "latest") == 0)
        options->start = HD_START_LATEST;
    else if (strcmp (text, "earliest") == 0)
        options->start = HD_START_EARLIEST;
    else if (text[0] == '-') {
        int64_t age_ms;
        if (hd_parse_duration_ms (text + 1, &age_ms) != 0)
            return -1;
        struct timespec now;
        clock_gettime (CLOCK_REALTIME, &now);
        uint64_t now_us = (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
        options->start = HD_START_TIME;
        options->start_time_us =
            now_us > (uint64_t) age_ms * 1000 ? now_us - (uint64_t) age_ms * 1000 : 0;
    } else if (strchr (text, 'T')) {
        struct tm tm = {0};
        const char *rest = strptime (text, "%Y-%m-%dT%H:%M:%S", &tm);
        if (!rest || (*rest != 'Z' && *rest != 0))
            return -1;
        time_t seconds = timegm (&tm);
        options->start = HD_START_TIME;
        options->start_time_us = (uint64_t) seconds * 1000000;
    } else {
        errno = 0;
        unsigned long long seq = strtoull (text, &end, 10);
        if (errno || end == text || *end || seq == 0)
            return -1;
        options->start = HD_START_SEQ;
        options->start_seq = seq;
    }
    return 0;
}

void
hd_worker_set_name (hd_worker_t *self, const char *name)
{
    char *copy = strdup (name ? name : "");
    if (copy) {
        free (self->name);
        self->name = copy;
    }
}

void
hd_worker_set_credit (hd_worker_t *self, uint32_t credit)
{
    pthread_mutex_lock (&self->lock);
    self->credit = credit ? credit : 1;
    bool started = self->started;
    pthread_mutex_unlock (&self->lock);
    if (started)
        s_wake (self); // the I/O thread sends CREDIT
}

void
hd_worker_set_concurrency (hd_worker_t *self, uint32_t threads)
{
    self->concurrency = threads ? threads : 1;
}

void
hd_worker_set_inline (hd_worker_t *self, bool inline_handler)
{
    if (!self->started) {
        self->inline_handler = inline_handler;
        self->inline_chosen = true;
    }
}

void
hd_worker_set_seen_capacity (hd_worker_t *self, size_t ids)
{
    self->seen_capacity = ids;
}

void
hd_worker_set_seen_ttl_ms (hd_worker_t *self, uint32_t ttl_ms)
{
    self->seen_ttl_ms = ttl_ms;
}

int
hd_worker_set_dedup_store (hd_worker_t *self, const char *path)
{
    pthread_mutex_lock (&self->lock);
    bool started = self->started;
    pthread_mutex_unlock (&self->lock);
    if (started) {
        s_set_error (self, "the dedup store must be set before start");
        return -1;
    }
    char *copy = NULL;
    if (path && *path && !(copy = strdup (path)))
        return -1;
    free (self->dedup_path);
    self->dedup_path = copy;
    return 0;
}

void
hd_worker_set_dedup_map_size (hd_worker_t *self, size_t bytes)
{
    self->dedup_map_size = bytes;
}

void
hd_worker_set_stop_grace_ms (hd_worker_t *self, int grace_ms)
{
    pthread_mutex_lock (&self->lock);
    self->stop_grace_ms = grace_ms < 0 ? -1 : grace_ms;
    pthread_mutex_unlock (&self->lock);
}

int
hd_worker_start (hd_worker_t *self, hd_handler_fn *handler, void *arg)
{
    if (self->started) {
        s_set_error (self, "worker already started");
        return -1;
    }
    if (!handler) {
        s_set_error (self, "no handler");
        return -1;
    }
    if (self->dedup_path && !self->dedup) {
        char error[512];
        self->dedup = hd_dedup_store_open (self->dedup_path, self->seen_ttl_ms,
                                           self->dedup_map_size, error, sizeof error);
        if (!self->dedup) {
            s_set_error (self, "%s", error);
            return -1;
        }
        hd_dedup_store_purge (self->dedup, zclock_time (), 0);
    }
    self->handler = handler;
    self->handler_arg = arg;
    //  One handler at a time needs no thread of its own: inline saves two
    //  hand-offs per message each way
    if (!self->inline_chosen)
        self->inline_handler = self->concurrency == 1;
    uint32_t threads = self->inline_handler ? 0 : self->concurrency;
    self->handler_threads = calloc (threads ? threads : 1, sizeof (pthread_t));
    if (!self->handler_threads) {
        s_set_error (self, "out of memory");
        return -1;
    }
    self->state = S_STATE_JOINING;
    if (pthread_create (&self->io_thread, NULL, s_io_thread, self)) {
        s_set_error (self, "cannot start the I/O thread");
        return -1;
    }
    pthread_mutex_lock (&self->lock);
    self->started = true;
    pthread_mutex_unlock (&self->lock);
    //  Without it an inline worker would be silent for as long as a
    //  handler call runs; with no guard it still works, as it did before
    if (self->inline_handler) {
        self->guard_started = pthread_create (&self->guard_thread, NULL, s_guard_thread, self) == 0;
        if (!self->guard_started)
            zsys_warning ("herald worker: no guard thread, a long inline handler call may "
                          "make the worker look dead");
    }
    for (uint32_t index = 0; index < threads; index++) {
        pthread_mutex_lock (&self->lock);
        self->handlers_alive++;
        pthread_mutex_unlock (&self->lock);
        if (pthread_create (&self->handler_threads[index], NULL, s_handler_thread, self)) {
            pthread_mutex_lock (&self->lock);
            self->handlers_alive--;
            pthread_mutex_unlock (&self->lock);
            break;
        }
        self->handler_count++;
    }
    if (threads > 0 && self->handler_count == 0) {
        s_set_error (self, "cannot start handler threads");
        hd_worker_stop (self);
        return -1;
    }
    return 0;
}

static void
s_deadline (struct timespec *deadline, int timeout_ms)
{
    clock_gettime (CLOCK_MONOTONIC, deadline);
    deadline->tv_sec += timeout_ms / 1000;
    deadline->tv_nsec += (long) (timeout_ms % 1000) * 1000000;
    if (deadline->tv_nsec >= 1000000000) {
        deadline->tv_sec++;
        deadline->tv_nsec -= 1000000000;
    }
}

//  Waits for the I/O thread to finish; inline, at most until the stop
//  deadline (0: none), as it may be held by a handler call. Handler
//  threads the I/O thread leaves behind by itself. True: it finished.
static bool
s_wait_io_done (hd_worker_t *self, int64_t deadline)
{
    pthread_mutex_lock (&self->lock);
    while (!self->io_done) {
        int64_t remaining = deadline > 0 && self->inline_handler ? deadline - zclock_mono () : 100;
        if (remaining <= 0)
            break;
        struct timespec until;
        s_deadline (&until, remaining < 100 ? (int) remaining : 100);
        pthread_cond_timedwait (&self->state_changed, &self->lock, &until);
    }
    bool done = self->io_done;
    pthread_mutex_unlock (&self->lock);
    return done;
}

//  Past the stop grace period with an inline call still running: do what
//  the I/O thread would have done once it returned. Settle what its batch
//  has run, LEAVE (the broker hands the rest to other workers) and close
//  the socket. The thread runs on, detached, and exits when the call
//  returns. The I/O thread holds socket_lock but while it is in a handler
//  call, so once we have it, it either is in one or has finished (io_state
//  NULL; then false: join it).
static bool
s_abandon_io (hd_worker_t *self)
{
    pthread_mutex_lock (&self->socket_lock);
    s_io_t *io = self->io_state;
    if (io) {
        s_io_settle_ran (io);
        if (io->state == S_STATE_ACTIVE)
            s_io_send_command (io, HD_CMD_LEAVE, NULL);
        s_io_close (io);
        self->io_state = NULL;
        pthread_mutex_lock (&self->lock);
        self->io_abandoned = true;
        snprintf (self->error, sizeof self->error, "%s",
                  "a handler call still running after the stop grace period: left behind");
        pthread_mutex_unlock (&self->lock);
    }
    pthread_mutex_unlock (&self->socket_lock);
    return io != NULL;
}

int
hd_worker_wait_joined (hd_worker_t *self, int timeout_ms)
{
    if (!self->started)
        return -1;
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
    pthread_mutex_lock (&self->lock);
    while (self->state != S_STATE_ACTIVE && self->state != S_STATE_FAILED && !self->io_done &&
           !zsys_interrupted) {
        int64_t remaining = deadline < 0 ? 100 : deadline - zclock_mono ();
        if (remaining <= 0)
            break;
        //  Wake now and then to notice zsys_interrupted
        struct timespec until;
        s_deadline (&until, remaining < 100 ? (int) remaining : 100);
        pthread_cond_timedwait (&self->state_changed, &self->lock, &until);
    }
    int rc = self->state == S_STATE_ACTIVE ? 0 : -1;
    if (rc && !*self->error)
        snprintf (self->error, sizeof self->error, "%s", "timed out waiting for JOINED");
    pthread_mutex_unlock (&self->lock);
    return rc;
}

void
hd_worker_stop (hd_worker_t *self)
{
    if (s_on_io_thread (self)) {
        //  From an inline handler: the I/O thread cannot wait for itself.
        //  It runs nothing more, and LEAVEs once the handler returns
        pthread_mutex_lock (&self->lock);
        self->stop_requested = true;
        atomic_store (&self->stopping, true);
        self->stop_deadline = 0;
        pthread_mutex_unlock (&self->lock);
        return;
    }
    pthread_mutex_lock (&self->stop_lock);
    if (!self->started || self->stopped) {
        pthread_mutex_unlock (&self->stop_lock);
        return;
    }
    pthread_mutex_lock (&self->lock);
    self->stop_requested = true;
    atomic_store (&self->stopping, true);
    int64_t deadline = self->stop_grace_ms < 0 ? 0 : zclock_mono () + self->stop_grace_ms;
    self->stop_deadline = deadline > 0 ? deadline : 0;
    pthread_mutex_unlock (&self->lock);
    s_wake (self);
    if (s_wait_io_done (self, deadline) || !s_abandon_io (self))
        pthread_join (self->io_thread, NULL);
    else
        pthread_detach (self->io_thread);
    if (self->guard_started) {
        pthread_mutex_lock (&self->lock);
        self->guard_exit = true;
        pthread_cond_signal (&self->guard_wake);
        pthread_mutex_unlock (&self->lock);
        pthread_join (self->guard_thread, NULL);
        self->guard_started = false;
    }

    pthread_mutex_lock (&self->lock);
    self->handlers_exit = true;
    pthread_cond_broadcast (&self->jobs_ready);
    //  The I/O thread waited for the handlers up to the deadline; the last
    //  ones may be returning just now
    while (self->handlers_alive > 0) {
        int64_t remaining = deadline > 0 ? deadline - zclock_mono () : 100;
        if (remaining <= 0)
            break;
        struct timespec until;
        s_deadline (&until, remaining < 100 ? (int) remaining : 100);
        pthread_cond_timedwait (&self->state_changed, &self->lock, &until);
    }
    bool abandon = self->handlers_alive > 0;
    if (abandon)
        snprintf (self->error, sizeof self->error,
                  "%u handler(s) still running after the stop grace period: left behind",
                  (unsigned) self->handlers_alive);
    pthread_mutex_unlock (&self->lock);
    for (uint32_t index = 0; index < self->handler_count; index++) {
        if (abandon)
            pthread_detach (self->handler_threads[index]);
        else
            pthread_join (self->handler_threads[index], NULL);
    }

    //  Results nobody will settle: the I/O thread is gone
    pthread_mutex_lock (&self->lock);
    s_free_results (self);
    pthread_mutex_unlock (&self->lock);
    self->stopped = true;
    pthread_mutex_unlock (&self->stop_lock);
}

int
hd_worker_run (hd_worker_t *self, hd_handler_fn *handler, void *arg)
{
    if (hd_worker_start (self, handler, arg))
        return -1;
    pthread_mutex_lock (&self->lock);
    //  An I/O thread abandoned in an inline call is done with as far as
    //  run is concerned: the stop that left it behind has returned
    while (!self->io_done && !self->io_abandoned && !zsys_interrupted) {
        struct timespec until;
        s_deadline (&until, 100);
        pthread_cond_timedwait (&self->state_changed, &self->lock, &until);
    }
    int rc = self->state == S_STATE_FAILED ? -1 : 0;
    pthread_mutex_unlock (&self->lock);
    hd_worker_stop (self);
    return rc;
}

uint64_t
hd_worker_handled (hd_worker_t *self)
{
    return atomic_load (&self->handled);
}

uint64_t
hd_worker_skipped (hd_worker_t *self)
{
    return atomic_load (&self->skipped);
}

uint64_t
hd_worker_joins (hd_worker_t *self)
{
    return atomic_load (&self->joins);
}

uint64_t
hd_worker_stale (hd_worker_t *self)
{
    return atomic_load (&self->stale);
}

uint64_t
hd_worker_dedup_errors (hd_worker_t *self)
{
    return atomic_load (&self->dedup_errors);
}

const char *
hd_worker_error (hd_worker_t *self)
{
    return self->error;
}
