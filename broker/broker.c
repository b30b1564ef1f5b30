/*  broker — event loop, sessions and command handling.

    Everything runs on the zloop thread. Per turn of the ROUTER reader the
    broker drains a batch of messages, then dispatches the pools that got
    work, then ends the sessions that died during the batch.
*/
#include "broker.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include "arena.h"
#include "codec.h"
#include "buffer.h"
#include "dedup.h"
#include "envelope.h"
#include "hashmap.h"
#include "fanout.h"
#include "session.h"
#include "journal.h"
#include "log.h"
#include "state.pb-c.h"

static uint64_t
s_timeval_us (struct timeval time)
{
    return (uint64_t) time.tv_sec * 1000000 + (uint64_t) time.tv_usec;
}

//  Wall-clock microseconds; zclock_time () only has milliseconds
static uint64_t
s_wall_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
}

#define S_REPORT_MS     1000 // subscribers' report interval (PROTOCOL.md section 7)
#define S_BATCH         512
#define S_TURN_ARENA    (1024 * 1024)      // stamped envelopes of a turn; more go to malloc
#define S_TURN_BODIES   (16 * 1024 * 1024) // PUBLISHES bodies a turn keeps; past it, copies
#define S_BODY_MAX      (64 * 1024)
#define S_POOL_NAME_MAX 128
#define S_LOOKAHEAD     32 // PUBLISHES items checked and identified ahead of publishing

//  A publish appended to the log this turn, waiting for the flush
typedef struct {
    uint8_t rid[HD_ROUTING_ID_MAX];
    size_t rid_size;
    uint64_t corr;
    uint64_t seq;
    char type[256];
    size_t type_size;
    //  Each part is borrowed (its bytes in the turn's memory, good until
    //  the end of the turn: s_pending_frames) or a frame of its own,
    //  shared with the log's cache and the fan-out. A frame's bytes are not
    //  kept here: a very small message holds them inside itself, and they
    //  move when this array does.
    const uint8_t *envelope_borrowed, *payload_borrowed; // NULL: the frame has them
    zmq_msg_t envelope;
    zmq_msg_t payload;
    size_t envelope_size, payload_size;
    //  Which of the first 64 pools took it (bit i: pools[i]; pools are only
    //  ever added), so that its type is compared with each pool's once
    uint64_t pools;
    bool duplicate; // a resend of an event not yet durable: confirm it with it
} s_pending_t;

//  A PUBLISHES item checked and identified, its dedup slot being fetched
typedef struct {
    hd_publish_view_t item;
    hd_envelope_t event;
    hd_dedup_key_t identity; // released once published
} s_ahead_t;

struct _hd_broker_t {
    hd_broker_config_t config;
    zsock_t *router;
    zsock_t *xpub;
    zsock_t *monitor;
    void *router_socket; // raw libzmq handles of the above
    void *xpub_socket;
    zloop_t *loop;
    hd_log_t *log;
    hd_arena_t *arena; // decodes hot-path messages; reset after each one
    //  What pending publishes of events no pool takes borrow until the end
    //  of the turn: stamped envelopes, and the PUBLISHES bodies that hold
    //  their payloads (s_pending_frames)
    hd_arena_t *turn_arena;
    s_ahead_t ahead[S_LOOKAHEAD]; // s_on_publishes' items in hand
    zmq_msg_t *turn_bodies;
    size_t turn_body_count, turn_body_capacity;
    size_t turn_body_bytes;
    size_t body_borrowers; // pending publishes borrowing the body being handled
    //  Clocks read once per message, not per event or per use: two reads
    //  an event were a tenth of the publish path. The wall clock only for
    //  a PUBLISH(ES): it stamps recorded_time_us.
    int64_t message_mono_ms;
    uint64_t message_wall_us;
    hd_journal_t *journal;
    int lock_fd;     // flock on the data directory
    bool recovering; // replaying the journal: pools must not journal again
    hd_dedup_t *dedup;
    hd_fanout_t *fanout;
    hd_hashmap_t *sessions; // routing id hash -> hd_session_t (owned)
    zlistx_t *dead;         // sessions to remove at the end of the turn
    zlistx_t *doomed;       // unreachable sessions to end once dispatch is over
    zlistx_t *disconnected; // sessions whose connection closed, to end after reading it dry
    hd_pool_t **pools;
    bool *pool_dirty;
    size_t pool_count;
    uint32_t next_pool_id;
    hd_session_t **batching; // sessions with deliveries batched in this dispatch pass
    size_t batching_count;
    size_t batching_capacity;
    //  This turn's publishes (and resends of them), confirmed once the log
    //  is flushed
    s_pending_t *pending;
    size_t pending_count, pending_capacity;
    uint8_t *pack_buffer; // journal records are packed here
    size_t pack_capacity;
    uint64_t epoch;
    uint64_t next_session_number;
    int64_t started;
    int64_t last_heartbeat;
    //  Counters
    uint64_t published, duplicates, rejected, malformed, expired_sessions;
    uint64_t confirms_dropped, retired_gaps, deliveries, delivery_batches;
    uint64_t fsyncs, storage_rejects, recovered_events, recovery_ms;
    uint64_t commits, commit_events_max, settle_deliveries;
    uint64_t turns, loop_busy_us;
    int64_t last_retention;
    uint64_t cache_release_at; // published count at which s_release_cache looks next
    //  Rates, refreshed every second
    int64_t rate_time;
    uint64_t rate_published, rate_deliveries;
    double publish_rate, deliver_rate;
};

//  --------------------------------------------------------------------------
//  Replies

static void
s_send_error (hd_broker_t *self, const void *rid, size_t rid_size, int code, int command,
              const char *reason)
{
    Herald__Error error = HERALD__ERROR__INIT;
    error.code = code;
    error.command = (uint32_t) command;
    error.reason = (char *) reason;
    hd_send_command (self->router_socket, rid, rid_size, HD_CMD_ERROR, &error.base, ZMQ_DONTWAIT);
    if (self->config.verbose)
        zsys_debug ("error %s to peer: %s", hd_error_name (code), reason);
}

static void
s_send_stale (hd_broker_t *self, hd_session_t *session, int command, uint64_t seq, uint32_t attempt)
{
    Herald__Error error = HERALD__ERROR__INIT;
    error.code = HERALD__ERROR_CODE__STALE_TAG;
    error.command = (uint32_t) command;
    error.reason = "lease tag is not current";
    error.seq = seq;
    error.attempt = attempt;
    hd_send_command (self->router_socket, session->routing_id, session->routing_id_size,
                     HD_CMD_ERROR, &error.base, ZMQ_DONTWAIT);
}

static void
s_send_reject (hd_broker_t *self, const void *rid, size_t rid_size, uint64_t corr, int code,
               const char *reason, uint32_t retry_after_ms)
{
    Herald__Reject reject = HERALD__REJECT__INIT;
    reject.corr = corr;
    reject.code = code;
    reject.reason = (char *) reason;
    reject.retry_after_ms = retry_after_ms;
    self->rejected++;
    if (hd_send_command (self->router_socket, rid, rid_size, HD_CMD_REJECT, &reject.base,
                         ZMQ_DONTWAIT))
        self->confirms_dropped++;
}

static void
s_send_confirm (hd_broker_t *self, const void *rid, size_t rid_size, uint64_t corr, uint64_t seq,
                bool duplicate)
{
    Herald__Confirm confirm = HERALD__CONFIRM__INIT;
    confirm.corr = corr;
    confirm.seq = seq;
    confirm.duplicate = duplicate;
    //  A publisher that does not read its confirms loses them; it will
    //  resend and be told "duplicate" with the same seq
    if (hd_send_command (self->router_socket, rid, rid_size, HD_CMD_CONFIRM, &confirm.base,
                         ZMQ_DONTWAIT))
        self->confirms_dropped++;
}

//  --------------------------------------------------------------------------
//  Sessions

typedef struct {
    const void *data;
    size_t size;
} s_rid_t;

static bool
s_session_matches (const void *session, const void *arg)
{
    const hd_session_t *self = session;
    const s_rid_t *rid = arg;
    return self->routing_id_size == rid->size &&
           memcmp (self->routing_id, rid->data, rid->size) == 0;
}

static hd_session_t *
s_session_lookup (hd_broker_t *self, const void *rid, size_t rid_size)
{
    s_rid_t wanted = {rid, rid_size};
    hd_session_t *session =
        hd_hashmap_find (self->sessions, hd_hash_bytes (rid, rid_size), s_session_matches, &wanted);
    return session && !session->dead ? session : NULL;
}

static void
s_mark_pool_dirty (hd_broker_t *self, hd_pool_t *pool)
{
    for (size_t index = 0; index < self->pool_count; index++)
        if (self->pools[index] == pool)
            self->pool_dirty[index] = true;
}

//  End a session now: its leases go back to its pool at once.
static void
s_session_end (hd_broker_t *self, hd_session_t *session, const char *why)
{
    if (session->dead)
        return;
    session->dead = true;
    hd_session_batch_drop (session);
    if (self->config.verbose || session->kind == HD_SESSION_WORKER)
        zsys_info ("session %llu (%s '%s') ended: %s", (unsigned long long) session->number,
                   session->kind == HD_SESSION_WORKER ? "worker" : "subscriber", session->name,
                   why);
    if (session->member) {
        hd_pool_leave (session->pool, &session->member, zclock_mono ());
        s_mark_pool_dirty (self, session->pool);
    }
    if (session->kind == HD_SESSION_SUBSCRIBER)
        self->retired_gaps += session->gaps;
    zlistx_add_end (self->dead, session);
}

//  A delivery found the peer gone. Ending it must wait: the pool that
//  called us is in the middle of dispatching to this member.
static void
s_session_doom (hd_broker_t *self, hd_session_t *session)
{
    if (!session->doomed) {
        session->doomed = true;
        zlistx_add_end (self->doomed, session);
    }
}

//  Ends doomed sessions and frees dead ones. Returns how many ended.
static size_t
s_reap_sessions (hd_broker_t *self)
{
    size_t ended = 0;
    hd_session_t *session;
    while ((session = zlistx_detach (self->doomed, NULL))) {
        s_session_end (self, session, "unreachable");
        ended++;
    }
    while ((session = zlistx_detach (self->dead, NULL))) {
        hd_hashmap_remove (self->sessions, session->hash, session);
        hd_session_destroy (&session);
    }
    return ended;
}

static hd_session_t *
s_session_create (hd_broker_t *self, hd_session_kind_t kind, hd_frames_t *frames)
{
    if (hd_hashmap_size (self->sessions) >= (size_t) self->config.max_sessions)
        return NULL;
    //  The transport fd lets the socket monitor tell us when this peer goes
    int fd = zmq_msg_get (&frames->frame[1], ZMQ_SRCFD);
    hd_session_t *session =
        hd_session_new (kind, hd_frames_data (frames, 0), hd_frames_size (frames, 0),
                        ++self->next_session_number, fd, zclock_mono ());
    if (session && hd_hashmap_insert (self->sessions, session->hash, session) != 0)
        hd_session_destroy (&session);
    return session;
}

//  --------------------------------------------------------------------------
//  Pools

static hd_pool_t *
s_pool_lookup (hd_broker_t *self, const char *name)
{
    for (size_t index = 0; index < self->pool_count; index++)
        if (strcmp (hd_pool_name (self->pools[index]), name) == 0)
            return self->pools[index];
    return NULL;
}

//  Sends the session's DELIVERS batch. A session that cannot take it ends
//  at the end of the turn and its leases go back to the pool.
static void
s_flush_batch (hd_broker_t *self, hd_session_t *session)
{
    zmq_msg_t body;
    int count = hd_session_batch_take (session, &body);
    if (count == 0)
        return;
    void *socket = self->router_socket;
    if (count < 0 || hd_send_bytes (socket, session->routing_id, session->routing_id_size,
                                    ZMQ_SNDMORE | ZMQ_DONTWAIT)) {
        zsys_warning ("session %llu: cannot send %d deliveries: %s",
                      (unsigned long long) session->number, count,
                      count < 0 ? "out of memory" : strerror (errno));
        s_session_doom (self, session);
        if (count > 0)
            zmq_msg_close (&body);
        return;
    }
    hd_send_header (socket, HD_CMD_DELIVERS, ZMQ_SNDMORE);
    hd_send_msg (socket, &body, 0);
    zmq_msg_close (&body);
    self->delivery_batches++;
}

//  Every batch of this dispatch pass goes out before the pass ends.
static void
s_flush_batches (hd_broker_t *self)
{
    for (size_t index = 0; index < self->batching_count; index++) {
        hd_session_t *session = self->batching[index];
        session->batch_listed = false;
        if (session->dead || session->doomed)
            hd_session_batch_drop (session);
        else
            s_flush_batch (self, session);
    }
    self->batching_count = 0;
}

//  Adds a delivery to the session's batch; a full batch goes out at once.
static int
s_batch_delivery (hd_broker_t *self, hd_session_t *session, uint64_t seq, uint32_t attempt,
                  uint32_t ack_wait_ms, const hd_log_view_t *record)
{
    if (!session->batch_listed) {
        if (self->batching_count == self->batching_capacity) {
            size_t capacity = self->batching_capacity ? 2 * self->batching_capacity : 64;
            hd_session_t **batching = realloc (self->batching, capacity * sizeof *batching);
            if (!batching)
                return -1;
            self->batching = batching;
            self->batching_capacity = capacity;
        }
        self->batching[self->batching_count++] = session;
        session->batch_listed = true;
    }
    if (hd_session_batch_add (session, seq, attempt, ack_wait_ms, record->envelope,
                              record->envelope_size, record->payload, record->payload_size))
        return -1;
    self->deliveries++;
    if (session->batch_count >= session->max_batch)
        s_flush_batch (self, session);
    return 0;
}

static int
s_deliver (void *handle, uint64_t seq, uint32_t attempt, void *arg)
{
    hd_broker_t *self = arg;
    hd_session_t *session = handle;
    //  A closed connection's session ends after this turn's reading; an
    //  ACK it sent before closing must not win it new events meanwhile
    if (session->dead || session->doomed || session->disconnected)
        return -1;
    uint32_t ack_wait_ms = (uint32_t) hd_pool_config (session->pool)->ack_wait_ms;
    bool batching = session->max_batch > 1;
    //  Batched events are copied into the batch straight from the cache
    hd_log_view_t record;
    if (batching && hd_log_peek (self->log, seq, &record) &&
        record.payload_size <= (size_t) self->config.batch_payload_max)
        return s_batch_delivery (self, session, seq, attempt, ack_wait_ms, &record);
    zmq_msg_t envelope, payload;
    if (hd_log_read (self->log, seq, &envelope, &payload) != 0) {
        //  Retention took it, or the disk failed: the pool keeps it for now
        zsys_error ("cannot read seq %llu from the log: %s", (unsigned long long) seq,
                    strerror (errno));
        return -1;
    }
    if (batching && zmq_msg_size (&payload) <= (size_t) self->config.batch_payload_max) {
        record = (hd_log_view_t){zmq_msg_data (&envelope), zmq_msg_data (&payload),
                                 zmq_msg_size (&envelope), zmq_msg_size (&payload)};
        int rc = s_batch_delivery (self, session, seq, attempt, ack_wait_ms, &record);
        zmq_msg_close (&envelope);
        zmq_msg_close (&payload);
        return rc;
    }
    //  Whatever is batched goes first, so the worker sees dispatch order
    s_flush_batch (self, session);
    uint8_t deliver[HD_VARINTS_MAX];
    size_t deliver_size = hd_encode_deliver (deliver, seq, attempt, ack_wait_ms);
    void *socket = self->router_socket;
    if (hd_send_bytes (socket, session->routing_id, session->routing_id_size,
                       ZMQ_SNDMORE | ZMQ_DONTWAIT)) {
        if (errno == EHOSTUNREACH)
            s_session_doom (self, session);
        zmq_msg_close (&envelope);
        zmq_msg_close (&payload);
        return -1;
    }
    //  After the routing frame went out, the rest of the message cannot fail
    hd_send_header (socket, HD_CMD_DELIVER, ZMQ_SNDMORE);
    hd_send_bytes (socket, deliver, deliver_size, ZMQ_SNDMORE);
    hd_send_msg (socket, &envelope, ZMQ_SNDMORE);
    hd_send_msg (socket, &payload, 0);
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
    self->deliveries++;
    return 0;
}

//  Pool hooks onto the log

static bool
s_log_meta (void *arg, uint64_t seq, uint32_t *type_id, uint32_t *key_hash)
{
    return hd_log_meta (((hd_broker_t *) arg)->log, seq, type_id, key_hash);
}

static const char *
s_log_type_name (void *arg, uint32_t type_id)
{
    return hd_log_type_name (((hd_broker_t *) arg)->log, type_id);
}

//  Pools see only what is flushed: an unflushed append may still be rolled back
static uint64_t
s_log_end (void *arg)
{
    hd_broker_t *self = arg;
    return hd_log_next_seq (self->log) - hd_log_unflushed (self->log);
}

static char *
s_text_dup (const hd_text_t *text)
{
    return text->size ? strndup (text->data, text->size) : strdup ("");
}

static void
s_log_describe (void *arg, uint64_t seq, char **id, char **type)
{
    hd_broker_t *self = arg;
    zmq_msg_t envelope, payload;
    if (hd_log_read (self->log, seq, &envelope, &payload) != 0)
        return;
    hd_envelope_t event;
    if (hd_envelope_scan (&event, zmq_msg_data (&envelope), zmq_msg_size (&envelope), false) !=
        HD_ENVELOPE_MALFORMED) {
        *id = s_text_dup (&event.text[HD_ENVELOPE_ID]);
        *type = s_text_dup (&event.text[HD_ENVELOPE_TYPE]);
    }
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
}

//  A pool's state change goes to the journal, flushed with this turn's appends
static void
s_journal_record (void *arg, const Herald__StateOp *op)
{
    hd_broker_t *self = arg;
    if (self->recovering)
        return;
    //  Deliveries and acks are two per event: encode those by hand
    if ((op->op_case == HERALD__STATE_OP__OP_DELIVER || op->op_case == HERALD__STATE_OP__OP_ACK) &&
        (!op->error || !*op->error)) {
        uint8_t record[HD_VARINTS_MAX];
        size_t size = op->op_case == HERALD__STATE_OP__OP_DELIVER
                          ? hd_encode_state_op (record, op->pool, 3, op->deliver, op->attempt)
                          : hd_encode_state_op (record, op->pool, 4, op->ack, op->attempt);
        if (hd_journal_append (self->journal, record, size) != 0)
            zsys_error ("cannot journal a pool change: %s", strerror (errno));
        return;
    }
    size_t size = protobuf_c_message_get_packed_size (&op->base);
    if (hd_buffer_reserve (&self->pack_buffer, &self->pack_capacity, size)) {
        zsys_error ("out of memory journaling a pool change");
        return;
    }
    protobuf_c_message_pack (&op->base, self->pack_buffer);
    if (hd_journal_append (self->journal, self->pack_buffer, size) != 0)
        zsys_error ("cannot journal a pool change: %s", strerror (errno));
}

static void
s_pool_hooks (hd_broker_t *self, hd_pool_hooks_t *hooks)
{
    memset (hooks, 0, sizeof *hooks);
    hooks->meta = s_log_meta;
    hooks->type_name = s_log_type_name;
    hooks->log_end = s_log_end;
    hooks->deliver = s_deliver;
    hooks->record = s_journal_record;
    hooks->describe = s_log_describe;
    hooks->arg = self;
}

static void
s_dispatch_dirty (hd_broker_t *self)
{
    int64_t now = zclock_mono ();
    for (size_t index = 0; index < self->pool_count; index++)
        if (self->pool_dirty[index]) {
            self->pool_dirty[index] = false;
            hd_pool_dispatch (self->pools[index], now);
        }
}

//  Hand out what became ready; sessions that died doing so give their
//  leases back, which may make more ready.
static void s_commit (hd_broker_t *self);

//  Every this many publishes, at least, the hot cache lets go of what the
//  pools are done with
#define S_CACHE_RELEASE_EVENTS 4096

//  The hot cache keeps only what some pool may still deliver, so it turns
//  over the same memory (fresh pages cost a fault and a clear each) and
//  stays small enough to be in the CPU's caches. Finding the floor scans
//  every pool's table of entries, so the next look waits at least as
//  many publishes as those tables have slots.
static void
s_release_cache (hd_broker_t *self)
{
    if (self->published < self->cache_release_at)
        return;
    uint64_t floor = s_log_end (self);
    size_t cost = 0;
    for (size_t index = 0; index < self->pool_count; index++) {
        uint64_t pool_floor = hd_pool_delivery_floor (self->pools[index]);
        if (pool_floor < floor)
            floor = pool_floor;
        cost += hd_pool_floor_cost (self->pools[index]);
    }
    hd_log_cache_release (self->log, floor);
    self->cache_release_at =
        self->published + (cost > S_CACHE_RELEASE_EVENTS ? cost : S_CACHE_RELEASE_EVENTS);
}

static void
s_end_turn (hd_broker_t *self)
{
    s_commit (self);
    do {
        s_dispatch_dirty (self);
        s_flush_batches (self);
    } while (s_reap_sessions (self) > 0);
    s_release_cache (self);
}

//  --------------------------------------------------------------------------
//  PUBLISH

static bool
s_valid_type (const char *type, size_t size, size_t max)
{
    return size > 0 && size <= max && hd_type_chars_valid (type, size);
}

#define S_STAMP_MAX 24

//  The stored envelope is the publisher's Event bytes followed by the seq
//  and recorded_time_us fields: protobuf keeps the last value of a field,
//  so this overrides whatever the client sent without re-encoding. Writes
//  the two fields at out; returns their size (at most S_STAMP_MAX).
static size_t
s_stamp_fields (uint8_t *out, uint64_t seq, uint64_t recorded_us)
{
    //  Tags of fields 20 and 21 (wire type 0) are the varints A0 01 and A8 01
    size_t size = 0;
    out[size++] = 0xA0;
    out[size++] = 0x01;
    size += hd_varint_encode (out + size, seq);
    out[size++] = 0xA8;
    out[size++] = 0x01;
    size += hd_varint_encode (out + size, recorded_us);
    return size;
}

//  The stamped envelope in memory of its own (a message that outlives the
//  turn: the hot cache keeps it).
static int
s_stamp_envelope (zmq_msg_t *stamped, const void *original, size_t original_size, uint64_t seq,
                  uint64_t recorded_us)
{
    uint8_t fields[S_STAMP_MAX];
    size_t size = s_stamp_fields (fields, seq, recorded_us);
    if (zmq_msg_init_size (stamped, original_size + size) == -1)
        return -1;
    memcpy (zmq_msg_data (stamped), original, original_size);
    memcpy ((uint8_t *) zmq_msg_data (stamped) + original_size, fields, size);
    return 0;
}

//  The pending publish's parts. They are needed only until the end of the
//  turn (the log's write, the fan-out; the hot cache copies what it keeps
//  of a record up to HD_LOG_CACHE_COPY_MAX bytes), so they borrow instead
//  of owning: the stamped envelope goes into the turn's arena, and a
//  payload borrowed from a PUBLISHES body (which the turn keeps) stays
//  there. That saves two allocations, a payload copy and four frame
//  operations per event. A larger record of a pooled event stays in the
//  hot cache by its frames: they get memory of their own.
//  payload: the payload's frame, or NULL when payload_bytes are borrowed
//  from a PUBLISHES body.
static int
s_pending_frames (hd_broker_t *self, s_pending_t *pending, const void *envelope,
                  size_t envelope_size, zmq_msg_t *payload, const void *payload_bytes,
                  size_t payload_size, bool pooled, uint64_t seq, uint64_t recorded_us)
{
    bool cached_by_frames =
        pooled && envelope_size + S_STAMP_MAX + payload_size > HD_LOG_CACHE_COPY_MAX;
    uint8_t *stamped =
        cached_by_frames ? NULL : hd_arena_take (self->turn_arena, envelope_size + S_STAMP_MAX);
    pending->payload_size = payload_size;
    if (stamped) {
        memcpy (stamped, envelope, envelope_size);
        pending->envelope_size =
            envelope_size + s_stamp_fields (stamped + envelope_size, seq, recorded_us);
        pending->envelope_borrowed = stamped;
        if (payload)
            zmq_msg_copy (&pending->payload, payload);
        else {
            pending->payload_borrowed = payload_bytes;
            self->body_borrowers++;
        }
        return 0;
    }
    int rc = payload ? zmq_msg_copy (&pending->payload, payload)
                     : hd_msg_init_copy (&pending->payload, payload_bytes, payload_size);
    if (rc == 0 && s_stamp_envelope (&pending->envelope, envelope, envelope_size, seq, recorded_us))
        rc = -1;
    if (rc) {
        zmq_msg_close (&pending->payload);
        zmq_msg_init (&pending->envelope);
        return -1;
    }
    pending->envelope_size = zmq_msg_size (&pending->envelope);
    return 0;
}

//  The pending publish as the log and the fan-out take it.
static hd_record_t
s_pending_record (s_pending_t *pending)
{
    hd_record_t record = {NULL,
                          NULL,
                          pending->envelope_borrowed,
                          pending->payload_borrowed,
                          pending->envelope_size,
                          pending->payload_size};
    if (!record.envelope) {
        record.envelope_frame = &pending->envelope;
        record.envelope = zmq_msg_data (&pending->envelope);
    }
    if (!record.payload) {
        record.payload_frame = &pending->payload;
        record.payload = zmq_msg_data (&pending->payload);
    }
    return record;
}

//  Whether pools[index] took the pending publish: its bit, or past the
//  first 64 pools its type compared again.
static bool
s_pending_in_pool (hd_broker_t *self, const s_pending_t *pending, size_t index)
{
    if (index < 64)
        return (pending->pools >> index) & 1;
    return hd_pool_matches (self->pools[index], pending->type, pending->type_size);
}

static void
s_pending_free (s_pending_t *pending)
{
    if (!pending->envelope_borrowed)
        zmq_msg_close (&pending->envelope);
    if (!pending->payload_borrowed)
        zmq_msg_close (&pending->payload);
}

//  Returns a reason for INVALID, or NULL when the event is acceptable.
//  proto3 strings must be UTF-8: clients in other languages refuse to
//  decode anything else, so the broker never stores it.
static const char *
s_check_event (hd_broker_t *self, const hd_envelope_t *event, hd_envelope_result_t scanned)
{
    size_t max_id = (size_t) self->config.max_id;
    const hd_text_t *id = &event->text[HD_ENVELOPE_ID];
    const hd_text_t *source = &event->text[HD_ENVELOPE_SOURCE];
    const hd_text_t *type = &event->text[HD_ENVELOPE_TYPE];
    if (id->size == 0)
        return "event id is required";
    if (source->size == 0)
        return "event source is required";
    if (id->size > max_id || source->size > max_id)
        return "event id or source is longer than --max-id";
    if (event->text[HD_ENVELOPE_PARTITION_KEY].size > max_id)
        return "partition key is longer than --max-id";
    if (scanned == HD_ENVELOPE_NOT_UTF8)
        return "event strings must be valid UTF-8 without NUL bytes";
    if (!s_valid_type (type->data, type->size, (size_t) self->config.max_topic))
        return "event type must be 1..max-topic bytes without spaces or control characters";
    return NULL;
}

//  The dedup key of a scanned event (release it after use).
static int
s_identity (const hd_envelope_t *event, hd_dedup_key_t *key)
{
    const hd_text_t *id = &event->text[HD_ENVELOPE_ID], *source = &event->text[HD_ENVELOPE_SOURCE];
    return hd_dedup_key_init (key, source->data, source->size, id->data, id->size);
}

//  A new entry at the end of the pending list, counted; NULL when out of
//  memory. Envelope and payload are left for the caller.
static s_pending_t *
s_pending_add (hd_broker_t *self, const void *rid, size_t rid_size, uint64_t corr, uint64_t seq,
               bool duplicate)
{
    if (self->pending_count == self->pending_capacity) {
        size_t capacity = self->pending_capacity * 2;
        s_pending_t *pending = realloc (self->pending, capacity * sizeof *pending);
        if (!pending)
            return NULL;
        self->pending = pending;
        self->pending_capacity = capacity;
    }
    s_pending_t *pending = &self->pending[self->pending_count++];
    memcpy (pending->rid, rid, rid_size);
    pending->rid_size = rid_size;
    pending->corr = corr;
    pending->seq = seq;
    pending->duplicate = duplicate;
    pending->type_size = 0;
    zmq_msg_init (&pending->envelope);
    zmq_msg_init (&pending->payload);
    pending->envelope_size = pending->payload_size = 0;
    pending->envelope_borrowed = pending->payload_borrowed = NULL;
    pending->pools = 0;
    return pending;
}

//  s_publish_event once the event is valid and its identity worked out.
static void
s_publish_identified (hd_broker_t *self, const void *rid, size_t rid_size, uint64_t corr,
                      const void *envelope, size_t envelope_size, zmq_msg_t *payload,
                      const void *payload_bytes, size_t payload_size, const hd_envelope_t *event,
                      const hd_dedup_key_t *identity)
{
    int64_t now = self->message_mono_ms;
    uint64_t original = hd_dedup_lookup_key (self->dedup, identity, now);
    if (original) {
        self->duplicates++;
        //  A CONFIRM says "on disk": a resend of an event that is not yet
        //  waits for the original's commit
        if (original < s_log_end (self))
            s_send_confirm (self, rid, rid_size, corr, original, true);
        else if (s_pending_add (self, rid, rid_size, corr, original, true) == NULL)
            s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__INTERNAL, "out of memory",
                           (uint32_t) self->config.retry_after_ms);
        return;
    }
    //  Which pools take it, and can they?
    const char *type =
        event->text[HD_ENVELOPE_TYPE].data; // not NUL-terminated: used with type_size
    size_t type_size = event->text[HD_ENVELOPE_TYPE].size;
    const hd_text_t *key = &event->text[HD_ENVELOPE_PARTITION_KEY];
    bool pooled = false;
    uint64_t pools = 0;
    for (size_t index = 0; index < self->pool_count; index++) {
        hd_pool_t *pool = self->pools[index];
        if (!hd_pool_matches (pool, type, type_size))
            continue;
        pooled = true;
        if (index < 64)
            pools |= (uint64_t) 1 << index;
        if (hd_pool_full (pool)) {
            char reason[200];
            snprintf (reason, sizeof reason, "pool '%s' holds --max-pending events",
                      hd_pool_name (pool));
            s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__BACKLOG_FULL, reason,
                           (uint32_t) self->config.retry_after_ms);
            return;
        }
    }
    size_t bytes = envelope_size + payload_size + 64;
    if (self->config.max_disk &&
        hd_log_bytes (self->log) + bytes > (uint64_t) self->config.max_disk) {
        self->storage_rejects++;
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__STORAGE,
                       "the log is at its disk quota (--max-disk)",
                       (uint32_t) self->config.retry_after_ms);
        return;
    }
    uint64_t seq = hd_log_next_seq (self->log);
    s_pending_t *pending = s_pending_add (self, rid, rid_size, corr, seq, false);
    if (!pending) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__INTERNAL, "out of memory",
                       (uint32_t) self->config.retry_after_ms);
        return;
    }
    self->pending_count--; // counted again once it is in the log
    //  The envelope and the log's index carry the same time, the message's
    uint64_t recorded_us = self->message_wall_us;
    if (s_pending_frames (self, pending, envelope, envelope_size, payload, payload_bytes,
                          payload_size, pooled, seq, recorded_us)) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__INTERNAL, "out of memory",
                       (uint32_t) self->config.retry_after_ms);
        return;
    }
    hd_record_t record = s_pending_record (pending);
    if (hd_log_append (self->log, recorded_us, type, type_size,
                       hd_log_key_hash (key->data ? key->data : "", key->size), &record,
                       pooled) != seq) {
        s_pending_free (pending);
        self->storage_rejects++;
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__STORAGE, strerror (errno),
                       (uint32_t) self->config.retry_after_ms);
        return;
    }
    //  Remembered now so a second copy in this same turn is a duplicate too,
    //  and counted in the pools now so --max-pending holds within a turn
    hd_dedup_insert_key (self->dedup, identity, seq, now);
    memcpy (pending->type, type, type_size);
    pending->type_size = type_size;
    pending->pools = pools;
    for (size_t index = 0; pooled && index < self->pool_count; index++)
        if (s_pending_in_pool (self, pending, index))
            hd_pool_notify (self->pools[index], seq);
    self->pending_count++;
}

//  Checks an event of a PUBLISH or PUBLISHES and works out its identity
//  (release it after use). A refused event is answered (REJECT) and
//  counted here: returns -1.
static int
s_publish_check (hd_broker_t *self, const void *rid, size_t rid_size, uint64_t corr,
                 const void *envelope, size_t envelope_size, size_t payload_size,
                 hd_envelope_t *event, hd_dedup_key_t *identity)
{
    if (envelope_size > (size_t) self->config.max_envelope) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__TOO_LARGE,
                       "Event frame is larger than --max-envelope", 0);
        return -1;
    }
    if (payload_size > (size_t) self->config.max_payload) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__TOO_LARGE,
                       "payload is larger than --max-payload", 0);
        return -1;
    }
    hd_envelope_result_t scanned = hd_envelope_scan (event, envelope, envelope_size, true);
    if (scanned == HD_ENVELOPE_MALFORMED) {
        self->malformed++;
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__MALFORMED,
                       "Event does not parse", 0);
        return -1;
    }
    const char *invalid = s_check_event (self, event, scanned);
    if (invalid) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__INVALID, invalid, 0);
        return -1;
    }
    if (s_identity (event, identity)) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__INTERNAL, "out of memory",
                       (uint32_t) self->config.retry_after_ms);
        return -1;
    }
    return 0;
}

//  One event of a PUBLISH: checked, deduplicated, appended to the log and
//  counted in its pools, or refused. payload is shared (a reference is
//  taken), not taken.
static void
s_publish_event (hd_broker_t *self, const void *rid, size_t rid_size, uint64_t corr,
                 const void *envelope, size_t envelope_size, zmq_msg_t *payload)
{
    hd_envelope_t event;
    hd_dedup_key_t identity;
    size_t payload_size = zmq_msg_size (payload);
    if (s_publish_check (self, rid, rid_size, corr, envelope, envelope_size, payload_size, &event,
                         &identity))
        return;
    s_publish_identified (self, rid, rid_size, corr, envelope, envelope_size, payload,
                          zmq_msg_data (payload), payload_size, &event, &identity);
    hd_dedup_key_release (&identity);
}

//  Bad input that gets an ERROR (it has no corr to REJECT), counted.
static void
s_refuse (hd_broker_t *self, hd_frames_t *frames, int code, int command, const char *reason)
{
    self->malformed++;
    s_send_error (self, hd_frames_data (frames, 0), hd_frames_size (frames, 0), code, command,
                  reason);
}

static void
s_on_publish (hd_broker_t *self, hd_frames_t *frames)
{
    const void *rid = hd_frames_data (frames, 0);
    size_t rid_size = hd_frames_size (frames, 0);
    self->message_wall_us = s_wall_us ();
    if (frames->count != 5) {
        s_refuse (self, frames, HERALD__ERROR_CODE__MALFORMED, HD_CMD_PUBLISH,
                  "PUBLISH needs 4 frames: header, Publish, Event, payload");
        return;
    }
    if (hd_frames_size (frames, 2) > S_BODY_MAX) {
        s_refuse (self, frames, HERALD__ERROR_CODE__TOO_LARGE, HD_CMD_PUBLISH,
                  "Publish body is larger than 64 KiB");
        return;
    }
    Herald__Publish *publish = herald__publish__unpack (
        hd_arena_allocator (self->arena), hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!publish) {
        s_refuse (self, frames, HERALD__ERROR_CODE__MALFORMED, HD_CMD_PUBLISH,
                  "Publish body does not parse");
        return;
    }
    uint64_t corr = publish->corr;
    herald__publish__free_unpacked (publish, hd_arena_allocator (self->arena));
    s_publish_event (self, rid, rid_size, corr, hd_frames_data (frames, 3),
                     hd_frames_size (frames, 3), &frames->frame[4]);
}

//  Whether a PUBLISHES body can lend its bytes until the end of the turn:
//  there is room to keep the frame (within S_TURN_BODIES bytes a turn: a
//  body is kept whole, however little of it an event borrows), and its
//  bytes live outside the zmq_msg_t (a very small message holds them
//  inside, and keeping it moves it).
static bool
s_body_lendable (hd_broker_t *self, zmq_msg_t *body)
{
    const uint8_t *data = zmq_msg_data (body);
    if (data >= (const uint8_t *) body && data < (const uint8_t *) (body + 1))
        return false;
    if (self->turn_body_bytes + zmq_msg_size (body) > S_TURN_BODIES)
        return false;
    if (self->turn_body_count < self->turn_body_capacity)
        return true;
    size_t capacity = self->turn_body_capacity ? 2 * self->turn_body_capacity : 16;
    zmq_msg_t *bodies = realloc (self->turn_bodies, capacity * sizeof *bodies);
    if (!bodies)
        return false;
    self->turn_bodies = bodies;
    self->turn_body_capacity = capacity;
    return true;
}

//  The turn keeps the body (moved out of the message, room made by
//  s_body_lendable) while pending publishes borrow from it.
static void
s_keep_body (hd_broker_t *self, zmq_msg_t *body)
{
    zmq_msg_t *kept = &self->turn_bodies[self->turn_body_count++];
    self->turn_body_bytes += zmq_msg_size (body);
    zmq_msg_init (kept);
    zmq_msg_move (kept, body);
}

//  The end of what the turn lent: no pending publish is left.
static void
s_end_turn_memory (hd_broker_t *self)
{
    for (size_t index = 0; index < self->turn_body_count; index++)
        zmq_msg_close (&self->turn_bodies[index]);
    self->turn_body_count = 0;
    self->turn_body_bytes = 0;
    hd_arena_reset (self->turn_arena);
}

//  A PUBLISHES item checked and identified (s_on_publishes), published:
//  its payload borrowed from the body when lendable, or copied out of it.
static void
s_publish_ahead (hd_broker_t *self, const void *rid, size_t rid_size, s_ahead_t *ahead,
                 bool lendable)
{
    hd_publish_view_t *item = &ahead->item;
    zmq_msg_t payload;
    if (!lendable && hd_msg_init_copy (&payload, item->payload, item->payload_size) != 0) {
        s_send_reject (self, rid, rid_size, item->corr, HERALD__ERROR_CODE__INTERNAL,
                       "out of memory", (uint32_t) self->config.retry_after_ms);
        hd_dedup_key_release (&ahead->identity);
        return;
    }
    s_publish_identified (self, rid, rid_size, item->corr, item->envelope, item->envelope_size,
                          lendable ? NULL : &payload, item->payload, item->payload_size,
                          &ahead->event, &ahead->identity);
    if (!lendable)
        zmq_msg_close (&payload);
    hd_dedup_key_release (&ahead->identity);
}

//  A batch: each item is a PUBLISH of its own. Payloads are borrowed from
//  the body, or copied out of it (clients batch small events only).
static void
s_on_publishes (hd_broker_t *self, hd_frames_t *frames)
{
    const void *rid = hd_frames_data (frames, 0);
    size_t rid_size = hd_frames_size (frames, 0);
    self->message_wall_us = s_wall_us ();
    if (frames->count != 3) {
        s_refuse (self, frames, HERALD__ERROR_CODE__MALFORMED, HD_CMD_PUBLISHES,
                  "PUBLISHES needs 2 frames: header, Publishes");
        return;
    }
    if (hd_frames_size (frames, 2) > (size_t) self->config.max_publish_batch) {
        s_refuse (self, frames, HERALD__ERROR_CODE__TOO_LARGE, HD_CMD_PUBLISHES,
                  "Publishes body is larger than --max-publish-batch");
        return;
    }
    const uint8_t *cursor = hd_frames_data (frames, 2);
    const uint8_t *end = cursor + hd_frames_size (frames, 2);
    bool lendable = s_body_lendable (self, &frames->frame[2]);
    self->body_borrowers = 0;
    //  Items are checked and identified S_LOOKAHEAD at a time, each
    //  identity's slot in the dedup window fetched ahead: the window is
    //  large and looked up at random, so the misses overlap
    s_ahead_t *ahead = self->ahead;
    int rc = 1;
    while (rc == 1) {
        size_t count = 0;
        while (count < S_LOOKAHEAD &&
               (rc = hd_decode_publish_item (&cursor, end, &ahead[count].item)) == 1) {
            s_ahead_t *next = &ahead[count];
            if (s_publish_check (self, rid, rid_size, next->item.corr, next->item.envelope,
                                 next->item.envelope_size, next->item.payload_size, &next->event,
                                 &next->identity) == 0) {
                hd_dedup_prefetch (self->dedup, next->identity.hash);
                count++;
            }
        }
        for (size_t index = 0; index < count; index++)
            s_publish_ahead (self, rid, rid_size, &ahead[index], lendable);
    }
    if (self->body_borrowers)
        s_keep_body (self, &frames->frame[2]);
    if (rc < 0) {
        //  The items before this one stand; the rest have no corr to answer
        s_refuse (self, frames, HERALD__ERROR_CODE__MALFORMED, HD_CMD_PUBLISHES,
                  "Publishes body does not parse");
    }
}

//  A CONFIRMS of count confirms, encoded by hand (protobuf-c's packing and
//  its copy were a tenth of the confirm path) straight into its frame.
static int
s_send_confirms_body (hd_broker_t *self, const void *rid, size_t rid_size, const uint64_t *corr,
                      const uint64_t *seq, const bool *duplicate, size_t count)
{
    zmq_msg_t body;
    if (zmq_msg_init_size (&body, hd_confirms_size (corr, seq, count)) != 0)
        return -1;
    hd_encode_confirms (zmq_msg_data (&body), corr, seq, duplicate, count);
    void *socket = self->router_socket;
    int rc = -1;
    if (hd_send_bytes (socket, rid, rid_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0 &&
        hd_send_header (socket, HD_CMD_CONFIRMS, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0 &&
        hd_send_msg (socket, &body, ZMQ_DONTWAIT) == 0)
        rc = 0;
    zmq_msg_close (&body);
    return rc;
}

//  One CONFIRMS per publisher for the first count pending publishes (a lone
//  one goes as CONFIRM): a message and three frames fewer per event.
static void
s_send_confirms (hd_broker_t *self, size_t count)
{
    uint64_t *corr = malloc (count * sizeof *corr);
    uint64_t *seq = malloc (count * sizeof *seq);
    bool *duplicate = malloc (count * sizeof *duplicate);
    bool *sent = calloc (count, sizeof *sent);
    if (!corr || !seq || !duplicate || !sent) {
        //  Out of memory: the publishers resend and get duplicate confirms
        self->confirms_dropped += count;
        count = 0;
    }
    for (size_t first = 0; first < count; first++) {
        if (sent[first])
            continue;
        s_pending_t *lead = &self->pending[first];
        size_t group = 0;
        for (size_t index = first; index < count; index++) {
            s_pending_t *pending = &self->pending[index];
            if (sent[index] || pending->rid_size != lead->rid_size ||
                memcmp (pending->rid, lead->rid, lead->rid_size) != 0)
                continue;
            corr[group] = pending->corr;
            seq[group] = pending->seq;
            duplicate[group] = pending->duplicate;
            group++;
            sent[index] = true;
        }
        if (group == 1) {
            s_send_confirm (self, lead->rid, lead->rid_size, corr[0], seq[0], duplicate[0]);
            continue;
        }
        if (s_send_confirms_body (self, lead->rid, lead->rid_size, corr, seq, duplicate, group))
            self->confirms_dropped += group;
    }
    free (corr);
    free (seq);
    free (duplicate);
    free (sent);
}

//  The first count pending publishes are durable: pools and subscribers
//  see them, publishers get their CONFIRMs.
static void
s_release (hd_broker_t *self, size_t count)
{
    //  Confirms first: the publishers' windows reopen while the fan-out
    //  is encoded and sent
    s_send_confirms (self, count);
    for (size_t index = 0; index < count; index++) {
        s_pending_t *pending = &self->pending[index];
        if (pending->duplicate)
            continue;
        if (pending->pools || self->pool_count > 64)
            for (size_t pool = 0; pool < self->pool_count; pool++)
                if (s_pending_in_pool (self, pending, pool))
                    self->pool_dirty[pool] = true;
        if (hd_fanout_subscriptions (self->fanout) > 0) {
            hd_record_t record = s_pending_record (pending);
            hd_fanout_publish (self->fanout, pending->type, pending->type_size, &record);
        }
        self->published++;
    }
    hd_fanout_flush (self->fanout);
    for (size_t index = 0; index < count; index++)
        s_pending_free (&self->pending[index]);
    memmove (self->pending, self->pending + count,
             (self->pending_count - count) * sizeof *self->pending);
    self->pending_count -= count;
}

//  The log refused the writes of the pending publishes: they were rolled
//  back; forget them everywhere and answer STORAGE.
static void
s_refuse_unwritten (hd_broker_t *self, int error)
{
    zsys_error ("log write failed, %zu publishes refused: %s", self->pending_count,
                strerror (error));
    for (size_t index = 0; index < self->pending_count; index++) {
        s_pending_t *pending = &self->pending[index];
        if (!pending->duplicate) {
            //  The identity is read back from the stored envelope: keeping
            //  copies of it for this rare case would cost every publish
            hd_envelope_t event;
            hd_dedup_key_t identity;
            hd_record_t record = s_pending_record (pending);
            if (hd_envelope_scan (&event, record.envelope, record.envelope_size, false) !=
                    HD_ENVELOPE_MALFORMED &&
                s_identity (&event, &identity) == 0) {
                hd_dedup_remove_key (self->dedup, &identity);
                hd_dedup_key_release (&identity);
            }
            for (size_t pool = 0; pool < self->pool_count; pool++)
                if (s_pending_in_pool (self, pending, pool))
                    hd_pool_forget (self->pools[pool], pending->seq);
        }
        self->storage_rejects++;
        s_send_reject (self, pending->rid, pending->rid_size, pending->corr,
                       HERALD__ERROR_CODE__STORAGE, strerror (error),
                       (uint32_t) self->config.retry_after_ms);
        s_pending_free (pending);
    }
    self->pending_count = 0;
}

//  Group commit: one flush (and fdatasync, per policy) of the log and the
//  journal for every change of this turn; only then do publishers get their
//  CONFIRMs and subscribers and pools see the events. If the disk refuses,
//  the turn's appends are rolled back and their publishers get STORAGE.
static void
s_commit (hd_broker_t *self)
{
    int64_t now = zclock_mono ();
    int log_rc = hd_log_flush (self->log, now);
    int log_errno = errno;
    if (hd_journal_flush (self->journal, now) != 0)
        zsys_error ("cannot write the pool journal: %s", strerror (errno));
    if (log_rc != 0)
        s_refuse_unwritten (self, log_errno);
    else if (self->pending_count && self->config.fsync == HD_FSYNC_ALWAYS)
        self->fsyncs++;
    if (log_rc == 0 && self->pending_count) {
        self->commits++;
        if (self->pending_count > self->commit_events_max)
            self->commit_events_max = self->pending_count;
    }
    s_release (self, self->pending_count);
    s_end_turn_memory (self);
}

//  --------------------------------------------------------------------------
//  Pool commands

static bool
s_valid_pool_name (const char *name)
{
    size_t size = strlen (name);
    if (size == 0 || size > S_POOL_NAME_MAX)
        return false;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '.' || *c == '_' || *c == '-'))
            return false;
    return true;
}

//  A pool from its definition (new, or recovered from the journal).
static hd_pool_t *
s_pool_add (hd_broker_t *self, const Herald__PoolDef *def)
{
    hd_pool_t **pools = realloc (self->pools, (self->pool_count + 1) * sizeof *pools);
    if (!pools)
        return NULL;
    self->pools = pools;
    bool *dirty = realloc (self->pool_dirty, (self->pool_count + 1) * sizeof *dirty);
    if (!dirty)
        return NULL;
    self->pool_dirty = dirty;
    hd_pool_config_t config = self->config.pool;
    const Herald__PoolOptions *options = def->options;
    if (options) {
        config.ordered = options->ordered;
        config.max_deliver = options->max_deliver;
        config.ack_wait_ms = options->ack_wait_ms;
        config.backoff_initial_ms = options->backoff_initial_ms;
        config.backoff_max_ms = options->backoff_max_ms;
        config.backoff_multiplier = options->backoff_multiplier;
        config.backoff_jitter = options->backoff_jitter;
    }
    hd_pool_hooks_t hooks;
    s_pool_hooks (self, &hooks);
    hd_pool_t *pool =
        hd_pool_new (def->id, def->name, def->filter, &config, def->start_seq, &hooks);
    if (!pool)
        return NULL;
    self->pools[self->pool_count] = pool;
    self->pool_dirty[self->pool_count] = false;
    self->pool_count++;
    if (def->id >= self->next_pool_id)
        self->next_pool_id = def->id + 1;
    return pool;
}

//  The broker's defaults with what the JOIN asked for on top.
static void
s_resolve_options (hd_broker_t *self, const Herald__PoolOptions *asked,
                   Herald__PoolOptions *options)
{
    const hd_pool_config_t *defaults = &self->config.pool;
    herald__pool_options__init (options);
    options->ordered = asked && asked->ordered;
    options->max_deliver = asked && asked->max_deliver ? asked->max_deliver : defaults->max_deliver;
    options->ack_wait_ms =
        asked && asked->ack_wait_ms ? asked->ack_wait_ms : (uint32_t) defaults->ack_wait_ms;
    options->backoff_initial_ms = asked && asked->backoff_initial_ms
                                      ? asked->backoff_initial_ms
                                      : (uint32_t) defaults->backoff_initial_ms;
    options->backoff_max_ms = asked && asked->backoff_max_ms ? asked->backoff_max_ms
                                                             : (uint32_t) defaults->backoff_max_ms;
    options->backoff_multiplier = asked && asked->backoff_multiplier > 0
                                      ? asked->backoff_multiplier
                                      : defaults->backoff_multiplier;
    options->backoff_jitter =
        asked && asked->backoff_jitter > 0 ? asked->backoff_jitter : defaults->backoff_jitter;
}

//  Why the JOIN's options disagree with an existing pool's, or NULL.
static const char *
s_options_conflict (hd_pool_t *pool, const Herald__PoolOptions *asked)
{
    if (!asked)
        return NULL;
    const hd_pool_config_t *config = hd_pool_config (pool);
    if (asked->ordered && !config->ordered)
        return "pool exists and is not ordered";
    if (asked->max_deliver && asked->max_deliver != config->max_deliver)
        return "pool exists with another max_deliver";
    if (asked->ack_wait_ms && asked->ack_wait_ms != (uint32_t) config->ack_wait_ms)
        return "pool exists with another ack_wait";
    if (asked->backoff_initial_ms &&
        asked->backoff_initial_ms != (uint32_t) config->backoff_initial_ms)
        return "pool exists with another backoff";
    return NULL;
}

static uint64_t
s_start_seq (hd_broker_t *self, const Herald__PoolOptions *asked)
{
    uint64_t first = hd_log_first_seq (self->log), end = s_log_end (self);
    const Herald__StartPosition *start = asked ? asked->start : NULL;
    if (!start)
        return end;
    switch (start->from_case) {
        case HERALD__START_POSITION__FROM_EARLIEST: return first;
        case HERALD__START_POSITION__FROM_SEQ:
            return start->seq < first ? first : start->seq > end ? end : start->seq;
        case HERALD__START_POSITION__FROM_TIME_US: {
            uint64_t seq = hd_log_seq_at_time (self->log, start->time_us);
            return seq > end ? end : seq;
        }
        default: return end;
    }
}

static hd_pool_t *
s_pool_create (hd_broker_t *self, const char *name, const char *filter,
               const Herald__PoolOptions *asked)
{
    Herald__PoolOptions options;
    s_resolve_options (self, asked, &options);
    Herald__PoolDef def = HERALD__POOL_DEF__INIT;
    def.id = self->next_pool_id;
    def.name = (char *) name;
    def.filter = (char *) filter;
    def.options = &options;
    def.start_seq = s_start_seq (self, asked);
    hd_pool_t *pool = s_pool_add (self, &def);
    if (!pool)
        return NULL;
    Herald__StateOp op = HERALD__STATE_OP__INIT;
    op.pool = def.id;
    op.op_case = HERALD__STATE_OP__OP_CREATE;
    op.create = &def;
    s_journal_record (self, &op);
    hd_journal_sync_next (self->journal);     // a pool must not vanish in a crash
    hd_pool_recovered (pool, zclock_mono ()); // counts a backlog it starts with
    zsys_info ("pool '%s' created: filter '%s'%s, max_deliver %u, from seq %llu", name, filter,
               options.ordered ? ", ordered" : "", options.max_deliver,
               (unsigned long long) def.start_seq);
    return pool;
}

static void
s_on_join (hd_broker_t *self, hd_frames_t *frames)
{
    const void *rid = hd_frames_data (frames, 0);
    size_t rid_size = hd_frames_size (frames, 0);
    Herald__Join *join = NULL;
    if (frames->count == 3 && hd_frames_size (frames, 2) <= S_BODY_MAX)
        join = herald__join__unpack (NULL, hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!join) {
        self->malformed++;
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__MALFORMED, HD_CMD_JOIN,
                      "JOIN needs a Join body");
        return;
    }
    int code = 0;
    const char *reason = NULL;
    hd_session_t *session = s_session_lookup (self, rid, rid_size);
    hd_pool_t *pool = s_pool_lookup (self, join->pool);
    if (!s_valid_pool_name (join->pool))
        code = HERALD__ERROR_CODE__INVALID, reason = "pool name must be 1-128 of [A-Za-z0-9._-]";
    else if (!s_valid_type (join->filter, strlen (join->filter), (size_t) self->config.max_topic) &&
             *join->filter)
        code = HERALD__ERROR_CODE__INVALID, reason = "filter must be a valid type prefix";
    else if (join->credit == 0 || join->credit > (uint64_t) self->config.max_credit)
        code = HERALD__ERROR_CODE__INVALID, reason = "credit must be 1..--max-credit";
    else if (pool && strcmp (hd_pool_filter (pool), join->filter) != 0)
        code = HERALD__ERROR_CODE__CONFLICT, reason = "pool exists with another filter";
    else if (pool && s_options_conflict (pool, join->options))
        code = HERALD__ERROR_CODE__CONFLICT, reason = s_options_conflict (pool, join->options);
    else if (session && (session->kind != HD_SESSION_WORKER || session->pool != pool))
        code = HERALD__ERROR_CODE__CONFLICT, reason = "this connection is registered otherwise";
    else if (!pool && self->pool_count >= (size_t) self->config.max_pools)
        code = HERALD__ERROR_CODE__LIMIT, reason = "--max-pools reached";
    if (code) {
        s_send_error (self, rid, rid_size, code, HD_CMD_JOIN, reason);
        herald__join__free_unpacked (join, NULL);
        return;
    }
    if (!pool)
        pool = s_pool_create (self, join->pool, join->filter, join->options);
    if (pool && !session) {
        session = s_session_create (self, HD_SESSION_WORKER, frames);
        if (session) {
            session->pool = pool;
            session->member = hd_pool_join (pool, session, join->credit);
            if (!session->member) {
                s_session_end (self, session, "out of memory");
                session = NULL;
            } else
                zsys_info ("worker '%s' joined pool '%s' (session %llu, credit %u)", join->name,
                           join->pool, (unsigned long long) session->number, join->credit);
        }
    } else if (session)
        hd_pool_set_credit (pool, session->member, join->credit);
    if (session)
        session->max_batch = join->max_batch < (uint64_t) self->config.max_batch
                                 ? join->max_batch
                                 : (uint32_t) self->config.max_batch;
    if (!pool || !session) {
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__LIMIT, HD_CMD_JOIN,
                      "no room for another session");
        herald__join__free_unpacked (join, NULL);
        return;
    }
    hd_session_set_name (session, join->name);
    Herald__Joined joined = HERALD__JOINED__INIT;
    joined.pool = join->pool;
    joined.heartbeat_ms = (uint32_t) self->config.heartbeat_ms;
    joined.liveness = (uint32_t) self->config.liveness;
    joined.ack_wait_ms = (uint32_t) hd_pool_config (pool)->ack_wait_ms;
    joined.session = session->number;
    hd_send_command (self->router_socket, rid, rid_size, HD_CMD_JOINED, &joined.base, ZMQ_DONTWAIT);
    s_mark_pool_dirty (self, pool);
    herald__join__free_unpacked (join, NULL);
}

//  Body of a command that needs a worker session; NULL after answering.
static hd_session_t *
s_worker_session (hd_broker_t *self, hd_frames_t *frames, int command)
{
    const void *rid = hd_frames_data (frames, 0);
    size_t rid_size = hd_frames_size (frames, 0);
    hd_session_t *session = s_session_lookup (self, rid, rid_size);
    if (!session) {
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__UNKNOWN_PEER, command,
                      "no session for this connection: JOIN again");
        return NULL;
    }
    session->last_heard = self->message_mono_ms;
    if (session->kind != HD_SESSION_WORKER && command != HD_CMD_HEARTBEAT &&
        command != HD_CMD_LEAVE) {
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__CONFLICT, command,
                      "this connection is not a pool worker");
        return NULL;
    }
    return session;
}

static bool
s_body_fits (hd_broker_t *self, hd_frames_t *frames, int command)
{
    if (frames->count == 3 && hd_frames_size (frames, 2) <= S_BODY_MAX)
        return true;
    self->malformed++;
    s_send_error (self, hd_frames_data (frames, 0), hd_frames_size (frames, 0),
                  frames->count == 3 ? HERALD__ERROR_CODE__TOO_LARGE
                                     : HERALD__ERROR_CODE__MALFORMED,
                  command, "command needs exactly one body frame of at most 64 KiB");
    return false;
}

static void
s_malformed_body (hd_broker_t *self, hd_frames_t *frames, int command)
{
    self->malformed++;
    s_send_error (self, hd_frames_data (frames, 0), hd_frames_size (frames, 0),
                  HERALD__ERROR_CODE__MALFORMED, command, "body does not parse");
}

//  One tag of an ACK or PROGRESS; a tag that is not current gets STALE_TAG.
static void
s_settle_tag (hd_broker_t *self, hd_session_t *session, int command, uint64_t seq, uint32_t attempt,
              int64_t now)
{
    int rc = command == HD_CMD_ACK
                 ? hd_pool_ack (session->pool, session->member, seq, attempt)
                 : hd_pool_progress (session->pool, session->member, seq, attempt, now);
    if (rc)
        s_send_stale (self, session, command, seq, attempt);
}

static void
s_on_settle (hd_broker_t *self, hd_frames_t *frames, int command)
{
    hd_session_t *session = s_worker_session (self, frames, command);
    if (!session || !s_body_fits (self, frames, command))
        return;
    int64_t now = self->message_mono_ms;
    //  As libherald packs it, read in place (protobuf-c's unpack and its
    //  arrays cost ~80 instructions an acked event); any other valid
    //  encoding through protobuf-c
    hd_settle_view_t view;
    if (hd_decode_settle (hd_frames_data (frames, 2), hd_frames_size (frames, 2), &view) == 0) {
        uint64_t seq;
        uint32_t attempt;
        if (command == HD_CMD_ACK)
            hd_pool_set_handle_ns (session->pool, session->member, view.handle_ns);
        while (hd_settle_next (&view, &seq, &attempt))
            s_settle_tag (self, session, command, seq, attempt, now);
    } else {
        Herald__Settle *settle =
            herald__settle__unpack (hd_arena_allocator (self->arena), hd_frames_size (frames, 2),
                                    hd_frames_data (frames, 2));
        if (!settle || settle->n_seq != settle->n_attempt) {
            if (settle)
                herald__settle__free_unpacked (settle, hd_arena_allocator (self->arena));
            s_malformed_body (self, frames, command);
            return;
        }
        if (command == HD_CMD_ACK)
            hd_pool_set_handle_ns (session->pool, session->member, settle->handle_ns);
        for (size_t index = 0; index < settle->n_seq; index++)
            s_settle_tag (self, session, command, settle->seq[index], settle->attempt[index], now);
        herald__settle__free_unpacked (settle, hd_arena_allocator (self->arena));
    }
    hd_pool_wake (session->pool, session->member);
    s_mark_pool_dirty (self, session->pool);
    //  The credit goes back to work now, not after the rest of the turn:
    //  the worker's round trip bounds a pool's rate. The pool sees only
    //  events already committed, so nothing goes out before its CONFIRM
    //  could. (A NACK, TERM or PROGRESS waits for the turn's end: rare.)
    if (command == HD_CMD_ACK) {
        self->settle_deliveries += hd_pool_dispatch (session->pool, now);
        s_flush_batches (self);
    }
}

static void
s_on_nack (hd_broker_t *self, hd_frames_t *frames)
{
    hd_session_t *session = s_worker_session (self, frames, HD_CMD_NACK);
    if (!session || !s_body_fits (self, frames, HD_CMD_NACK))
        return;
    Herald__Nack *nack = herald__nack__unpack (
        hd_arena_allocator (self->arena), hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!nack) {
        s_malformed_body (self, frames, HD_CMD_NACK);
        return;
    }
    if (hd_pool_nack (session->pool, session->member, nack->seq, nack->attempt, nack->delay_ms,
                      nack->error, self->message_mono_ms))
        s_send_stale (self, session, HD_CMD_NACK, nack->seq, nack->attempt);
    herald__nack__free_unpacked (nack, hd_arena_allocator (self->arena));
    hd_pool_wake (session->pool, session->member);
    s_mark_pool_dirty (self, session->pool);
}

static void
s_on_term (hd_broker_t *self, hd_frames_t *frames)
{
    hd_session_t *session = s_worker_session (self, frames, HD_CMD_TERM);
    if (!session || !s_body_fits (self, frames, HD_CMD_TERM))
        return;
    Herald__Term *term = herald__term__unpack (
        hd_arena_allocator (self->arena), hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!term) {
        s_malformed_body (self, frames, HD_CMD_TERM);
        return;
    }
    if (hd_pool_term (session->pool, session->member, term->seq, term->attempt, term->error,
                      self->message_mono_ms))
        s_send_stale (self, session, HD_CMD_TERM, term->seq, term->attempt);
    else if (self->config.verbose)
        zsys_info ("pool '%s' terminated seq %llu: %s", hd_pool_name (session->pool),
                   (unsigned long long) term->seq, term->error);
    herald__term__free_unpacked (term, hd_arena_allocator (self->arena));
    hd_pool_wake (session->pool, session->member);
    s_mark_pool_dirty (self, session->pool);
}

static void
s_on_credit (hd_broker_t *self, hd_frames_t *frames)
{
    hd_session_t *session = s_worker_session (self, frames, HD_CMD_CREDIT);
    if (!session || !s_body_fits (self, frames, HD_CMD_CREDIT))
        return;
    Herald__Credit *credit =
        herald__credit__unpack (NULL, hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!credit) {
        s_malformed_body (self, frames, HD_CMD_CREDIT);
        return;
    }
    if (credit->credit == 0 || credit->credit > (uint64_t) self->config.max_credit)
        s_send_error (self, session->routing_id, session->routing_id_size,
                      HERALD__ERROR_CODE__INVALID, HD_CMD_CREDIT, "credit must be 1..--max-credit");
    else {
        hd_pool_set_credit (session->pool, session->member, credit->credit);
        s_mark_pool_dirty (self, session->pool);
    }
    herald__credit__free_unpacked (credit, NULL);
}

static void
s_on_heartbeat (hd_broker_t *self, hd_frames_t *frames, int command)
{
    hd_session_t *session = s_worker_session (self, frames, command);
    if (!session)
        return;
    if (command == HD_CMD_LEAVE)
        s_session_end (self, session, "left");
    else if (session->member) {
        hd_pool_wake (session->pool, session->member);
        s_mark_pool_dirty (self, session->pool);
    }
}

static void
s_on_subscriber (hd_broker_t *self, hd_frames_t *frames)
{
    if (!s_body_fits (self, frames, HD_CMD_SUBSCRIBER))
        return;
    Herald__SubscriberReport *report = herald__subscriber_report__unpack (
        NULL, hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!report) {
        s_malformed_body (self, frames, HD_CMD_SUBSCRIBER);
        return;
    }
    hd_session_t *session =
        s_session_lookup (self, hd_frames_data (frames, 0), hd_frames_size (frames, 0));
    if (!session)
        session = s_session_create (self, HD_SESSION_SUBSCRIBER, frames);
    if (session && session->kind == HD_SESSION_SUBSCRIBER) {
        session->last_heard = self->message_mono_ms;
        session->received = report->received;
        session->gaps = report->gaps;
        hd_session_set_name (session, report->name);
    }
    herald__subscriber_report__free_unpacked (report, NULL);
}

//  --------------------------------------------------------------------------
//  STATS

static void
s_on_stats (hd_broker_t *self, hd_frames_t *frames)
{
    int64_t now = zclock_mono ();
    Herald__Stats stats = HERALD__STATS__INIT;
    stats.uptime_ms = (uint64_t) (now - self->started);
    stats.epoch = self->epoch;
    stats.published = self->published;
    stats.duplicates = self->duplicates;
    stats.rejected = self->rejected;
    stats.malformed = self->malformed;
    stats.subscriptions = (uint32_t) hd_fanout_subscriptions (self->fanout);
    stats.subscriber_gaps = self->retired_gaps;
    size_t session_cursor = 0;
    for (hd_session_t *session; (session = hd_hashmap_next (self->sessions, &session_cursor));)
        if (session->kind == HD_SESSION_SUBSCRIBER && !session->dead) {
            stats.subscribers++;
            stats.subscriber_gaps += session->gaps;
        }
    stats.fanout_sent = hd_fanout_sent (self->fanout);
    uint64_t first = hd_log_first_seq (self->log), next = hd_log_next_seq (self->log);
    stats.store_events = next - first;
    stats.store_bytes = hd_log_bytes (self->log);
    stats.log_first_seq = first;
    stats.log_next_seq = next;
    stats.log_bytes = hd_log_bytes (self->log);
    stats.log_spare_bytes = hd_log_spare_bytes (self->log);
    stats.log_segments_prepared = hd_log_segments_prepared (self->log);
    stats.log_segments_appended = hd_log_segments_appended (self->log);
    stats.log_page_cache_released = hd_log_page_cache_released (self->log);
    char fsync[48];
    if (self->config.fsync == HD_FSYNC_INTERVAL)
        snprintf (fsync, sizeof fsync, "interval=%lld", (long long) self->config.fsync_interval_ms);
    else
        snprintf (fsync, sizeof fsync, "%s",
                  self->config.fsync == HD_FSYNC_ALWAYS ? "always" : "never");
    stats.fsync = fsync;
    stats.fsyncs = self->fsyncs;
    stats.deliveries = self->deliveries;
    stats.delivery_batches = self->delivery_batches;
    stats.commits = self->commits;
    stats.commit_events_max = self->commit_events_max;
    stats.settle_deliveries = self->settle_deliveries;
    stats.turns = self->turns;
    stats.loop_busy_us = self->loop_busy_us;
    struct rusage usage;
    if (getrusage (RUSAGE_SELF, &usage) == 0) {
        stats.cpu_user_us = s_timeval_us (usage.ru_utime);
        stats.cpu_system_us = s_timeval_us (usage.ru_stime);
    }
    stats.cache_events = hd_log_cache_events (self->log);
    stats.cache_bytes = hd_log_cache_bytes (self->log);
    stats.fanout_batches = hd_fanout_batches (self->fanout);
    stats.storage_rejects = self->storage_rejects;
    stats.recovered_events = self->recovered_events;
    stats.recovery_ms = self->recovery_ms;
    stats.sessions = (uint32_t) hd_hashmap_size (self->sessions);
    stats.publish_rate = self->publish_rate;
    stats.deliver_rate = self->deliver_rate;
    stats.dedup_entries = hd_dedup_size (self->dedup);
    stats.expired_sessions = self->expired_sessions;
    Herald__PoolStats *pool_stats = calloc (self->pool_count + 1, sizeof *pool_stats);
    Herald__PoolStats **pool_list = calloc (self->pool_count + 1, sizeof *pool_list);
    if (pool_stats && pool_list) {
        for (size_t index = 0; index < self->pool_count; index++) {
            hd_pool_stats (self->pools[index], &pool_stats[index], now);
            pool_list[index] = &pool_stats[index];
        }
        stats.n_pools = self->pool_count;
        stats.pools = pool_list;
    }
    hd_send_command (self->router_socket, hd_frames_data (frames, 0), hd_frames_size (frames, 0),
                     HD_CMD_STATS_REPLY, &stats.base, ZMQ_DONTWAIT);
    free (pool_stats);
    free (pool_list);
}

//  --------------------------------------------------------------------------
//  Dead-letter queues (admin: no session needed)

//  Decode a DlqRequest and find its pool; NULL after answering an error.
static hd_pool_t *
s_dlq_request (hd_broker_t *self, hd_frames_t *frames, int command, Herald__DlqRequest **request_p)
{
    const void *rid = hd_frames_data (frames, 0);
    size_t rid_size = hd_frames_size (frames, 0);
    if (!s_body_fits (self, frames, command))
        return NULL;
    Herald__DlqRequest *request =
        herald__dlq_request__unpack (NULL, hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!request) {
        s_malformed_body (self, frames, command);
        return NULL;
    }
    hd_pool_t *pool = s_pool_lookup (self, request->pool);
    if (!pool) {
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__NOT_FOUND, command, "no such pool");
        herald__dlq_request__free_unpacked (request, NULL);
        return NULL;
    }
    *request_p = request;
    return pool;
}

static void
s_on_dlq_list (hd_broker_t *self, hd_frames_t *frames)
{
    Herald__DlqRequest *request;
    hd_pool_t *pool = s_dlq_request (self, frames, HD_CMD_DLQ_LIST, &request);
    if (!pool)
        return;
    size_t limit = request->limit ? request->limit : 1000;
    if (limit > 10000)
        limit = 10000; // one reply stays well under a frame's sane size
    const Herald__DlqEntry **entries = calloc (limit + 1, sizeof *entries);
    Herald__DlqList list = HERALD__DLQ_LIST__INIT;
    if (entries) {
        list.n_entries = hd_pool_dlq_list (pool, request->from_seq, entries, limit);
        list.entries = (Herald__DlqEntry **) entries;
    }
    list.total = hd_pool_dlq_size (pool);
    hd_send_command (self->router_socket, hd_frames_data (frames, 0), hd_frames_size (frames, 0),
                     HD_CMD_DLQ_LIST_REPLY, &list.base, ZMQ_DONTWAIT);
    free (entries);
    herald__dlq_request__free_unpacked (request, NULL);
}

static void
s_on_dlq_show (hd_broker_t *self, hd_frames_t *frames)
{
    Herald__DlqRequest *request;
    hd_pool_t *pool = s_dlq_request (self, frames, HD_CMD_DLQ_SHOW, &request);
    if (!pool)
        return;
    const void *rid = hd_frames_data (frames, 0);
    size_t rid_size = hd_frames_size (frames, 0);
    uint64_t seq = request->n_seqs ? request->seqs[0] : request->from_seq;
    const Herald__DlqEntry *entry = hd_pool_dlq_get (pool, seq);
    zmq_msg_t envelope, payload;
    if (!entry)
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__NOT_FOUND, HD_CMD_DLQ_SHOW,
                      "no such entry in the pool's DLQ");
    else if (hd_log_read (self->log, seq, &envelope, &payload) != 0)
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__NOT_FOUND, HD_CMD_DLQ_SHOW,
                      "the event is no longer in the log");
    else {
        void *socket = self->router_socket;
        if (hd_send_bytes (socket, rid, rid_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0) {
            hd_send_header (socket, HD_CMD_DLQ_EVENT, ZMQ_SNDMORE);
            hd_send_proto (socket, &entry->base, ZMQ_SNDMORE);
            hd_send_msg (socket, &envelope, ZMQ_SNDMORE);
            hd_send_msg (socket, &payload, 0);
        }
        zmq_msg_close (&envelope);
        zmq_msg_close (&payload);
    }
    herald__dlq_request__free_unpacked (request, NULL);
}

static void
s_on_dlq_change (hd_broker_t *self, hd_frames_t *frames, int command)
{
    Herald__DlqRequest *request;
    hd_pool_t *pool = s_dlq_request (self, frames, command, &request);
    if (!pool)
        return;
    Herald__DlqDone done = HERALD__DLQ_DONE__INIT;
    done.count = command == HD_CMD_DLQ_REPLAY ? hd_pool_dlq_replay (pool, request, zclock_mono ())
                                              : hd_pool_dlq_purge (pool, request);
    zsys_info ("pool '%s': %llu DLQ entries %s", hd_pool_name (pool),
               (unsigned long long) done.count,
               command == HD_CMD_DLQ_REPLAY ? "replayed" : "purged");
    s_mark_pool_dirty (self, pool);
    hd_journal_sync_next (self->journal); // an operator's decision is kept at once
    hd_send_command (self->router_socket, hd_frames_data (frames, 0), hd_frames_size (frames, 0),
                     HD_CMD_DLQ_DONE, &done.base, ZMQ_DONTWAIT);
    herald__dlq_request__free_unpacked (request, NULL);
}

//  --------------------------------------------------------------------------
//  History for subscribers: one page of events per REPLAY

#define S_REPLAY_SCAN_MAX 100000 // seqs looked at per page, so a page never takes long

static void
s_on_replay (hd_broker_t *self, hd_frames_t *frames)
{
    if (!s_body_fits (self, frames, HD_CMD_REPLAY))
        return;
    Herald__Replay *replay =
        herald__replay__unpack (NULL, hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!replay) {
        s_malformed_body (self, frames, HD_CMD_REPLAY);
        return;
    }
    const void *rid = hd_frames_data (frames, 0);
    size_t rid_size = hd_frames_size (frames, 0);
    void *socket = self->router_socket;
    uint64_t first = hd_log_first_seq (self->log), end = s_log_end (self);
    uint64_t seq =
        replay->from_seq ? replay->from_seq : hd_log_seq_at_time (self->log, replay->from_time_us);
    if (seq < first)
        seq = first;
    size_t limit = replay->limit ? replay->limit : 1000;
    size_t prefix_size = strlen (replay->prefix);
    size_t sent = 0, scanned = 0;
    for (; seq < end && sent < limit && scanned < S_REPLAY_SCAN_MAX; seq++, scanned++) {
        uint32_t type_id, key_hash;
        if (!hd_log_meta (self->log, seq, &type_id, &key_hash))
            continue;
        const char *type = hd_log_type_name (self->log, type_id);
        if (strncmp (type, replay->prefix, prefix_size) != 0)
            continue;
        zmq_msg_t envelope, payload;
        if (hd_log_read (self->log, seq, &envelope, &payload) != 0)
            continue;
        if (hd_send_bytes (socket, rid, rid_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0) {
            hd_send_header (socket, HD_CMD_REPLAY_EVENT, ZMQ_SNDMORE);
            hd_send_msg (socket, &envelope, ZMQ_SNDMORE);
            hd_send_msg (socket, &payload, 0);
        }
        zmq_msg_close (&envelope);
        zmq_msg_close (&payload);
        sent++;
    }
    Herald__ReplayEnd replay_end = HERALD__REPLAY_END__INIT;
    replay_end.corr = replay->corr;
    replay_end.next_seq = seq;
    replay_end.end_seq = end;
    replay_end.first_seq = first;
    hd_send_command (socket, rid, rid_size, HD_CMD_REPLAY_END, &replay_end.base, ZMQ_DONTWAIT);
    herald__replay__free_unpacked (replay, NULL);
}

//  --------------------------------------------------------------------------
//  Dispatch of one message

static void
s_handle_message (hd_broker_t *self, hd_frames_t *frames)
{
    const void *rid = hd_frames_data (frames, 0);
    size_t rid_size = hd_frames_size (frames, 0);
    int command = 0;
    int code = frames->count < 2 ? HERALD__ERROR_CODE__MALFORMED
                                 : hd_header_decode (hd_frames_data (frames, 1),
                                                     hd_frames_size (frames, 1), &command);
    if (code == 0 && frames->truncated)
        code = HERALD__ERROR_CODE__MALFORMED;
    if (code) {
        self->malformed++;
        s_send_error (self, rid, rid_size, code, command,
                      code == HERALD__ERROR_CODE__BAD_VERSION
                          ? "protocol version not supported (this broker speaks 1)"
                          : "bad header frame or too many frames");
        return;
    }
    switch (command) {
        case HD_CMD_PUBLISH: s_on_publish (self, frames); break;
        case HD_CMD_PUBLISHES: s_on_publishes (self, frames); break;
        case HD_CMD_JOIN: s_on_join (self, frames); break;
        case HD_CMD_ACK:
        case HD_CMD_PROGRESS: s_on_settle (self, frames, command); break;
        case HD_CMD_NACK: s_on_nack (self, frames); break;
        case HD_CMD_TERM: s_on_term (self, frames); break;
        case HD_CMD_CREDIT: s_on_credit (self, frames); break;
        case HD_CMD_HEARTBEAT:
        case HD_CMD_LEAVE: s_on_heartbeat (self, frames, command); break;
        case HD_CMD_SUBSCRIBER: s_on_subscriber (self, frames); break;
        case HD_CMD_STATS: s_on_stats (self, frames); break;
        case HD_CMD_DLQ_LIST: s_on_dlq_list (self, frames); break;
        case HD_CMD_DLQ_SHOW: s_on_dlq_show (self, frames); break;
        case HD_CMD_DLQ_REPLAY:
        case HD_CMD_DLQ_PURGE: s_on_dlq_change (self, frames, command); break;
        case HD_CMD_REPLAY: s_on_replay (self, frames); break;
        default:
            self->malformed++;
            s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__UNKNOWN_COMMAND, command,
                          "unknown command or not a client command");
    }
}

//  --------------------------------------------------------------------------
//  Transport events: a closed connection ends its session at once.
//
//  Order matters twice. The peer's last messages (final ACKs, LEAVE) are
//  still queued on the ROUTER when the monitor reports the close, so they
//  are read before the session ends. And a new connection may reuse the
//  fd, so only sessions that existed when the close was seen are ended.

//  Read monitor events; flag the sessions whose connection closed.
//  Returns how many were flagged.
static size_t
s_note_disconnects (hd_broker_t *self)
{
    void *socket = zsock_resolve (self->monitor);
    size_t flagged = 0;
    hd_frames_t frames;
    while (hd_frames_recv (&frames, socket, ZMQ_DONTWAIT) == 0) {
        if (frames.count >= 1 && hd_frames_size (&frames, 0) == 6) {
            const uint8_t *data = hd_frames_data (&frames, 0);
            uint16_t event = (uint16_t) (data[0] | data[1] << 8);
            int32_t fd;
            memcpy (&fd, data + 2, sizeof fd);
            size_t session_cursor = 0;
            hd_session_t *session;
            while (event == ZMQ_EVENT_DISCONNECTED &&
                   (session = hd_hashmap_next (self->sessions, &session_cursor)))
                if (session->fd == fd && !session->dead && !session->disconnected) {
                    session->disconnected = true;
                    zlistx_add_end (self->disconnected, session);
                    flagged++;
                }
        }
        hd_frames_close (&frames);
    }
    return flagged;
}

static void
s_end_disconnected (hd_broker_t *self)
{
    hd_session_t *session;
    while ((session = zlistx_detach (self->disconnected, NULL)))
        s_session_end (self, session, "disconnected");
}

//  True when the turn holds enough events to commit them now. Publishers
//  get their CONFIRMs only after the commit, so a turn that read a whole
//  window's worth would leave them waiting; with fsync always the turn's
//  events share one fdatasync instead, and that is worth the wait.
static bool
s_turn_full (hd_broker_t *self)
{
    return self->config.fsync != HD_FSYNC_ALWAYS && self->config.turn_events > 0 &&
           self->pending_count >= (size_t) self->config.turn_events;
}

//  One turn: note closes, read messages (all of them when a close is
//  pending, else a batch or --turn-events events), end the closed
//  sessions, dispatch.
static void
s_turn (hd_broker_t *self)
{
    bool closing = s_note_disconnects (self) > 0 || zlistx_size (self->disconnected) > 0;
    for (int count = 0; closing || (count < S_BATCH && !s_turn_full (self)); count++) {
        hd_frames_t frames;
        if (hd_frames_recv (&frames, self->router_socket, ZMQ_DONTWAIT) == -1)
            break;
        self->message_mono_ms = zclock_mono ();
        s_handle_message (self, &frames);
        hd_frames_close (&frames);
        hd_arena_reset (self->arena);
    }
    s_end_disconnected (self);
    s_end_turn (self);
}

//  The loop's working time, its fdatasync waits included
//  (Stats.loop_busy_us): against the uptime it says whether the broker's
//  one thread is what holds a workload back.
static void
s_count_busy (hd_broker_t *self, int64_t since_us)
{
    self->loop_busy_us += (uint64_t) (zclock_usecs () - since_us);
}

//  The ROUTER or the socket monitor is readable: one turn either way (a
//  turn reads the monitor first).
static int
s_on_readable (zloop_t *loop, zsock_t *reader, void *arg)
{
    hd_broker_t *self = arg;
    int64_t since = zclock_usecs ();
    self->turns++;
    s_turn (self);
    s_count_busy (self, since);
    return 0;
}

static int
s_on_xpub (zloop_t *loop, zsock_t *reader, void *arg)
{
    hd_broker_t *self = arg;
    int64_t since = zclock_usecs ();
    hd_fanout_read_subscriptions (self->fanout);
    s_count_busy (self, since);
    return 0;
}

//  --------------------------------------------------------------------------
//  Timer: leases, delays, heartbeats, dedup expiry, rates

static void
s_heartbeat_sessions (hd_broker_t *self, int64_t now)
{
    int64_t silence_limit = self->config.heartbeat_ms * self->config.liveness;
    //  Subscribers report once a second whatever our heartbeat is
    int64_t reporter_limit =
        (self->config.heartbeat_ms > S_REPORT_MS ? self->config.heartbeat_ms : S_REPORT_MS) *
        self->config.liveness;
    size_t session_cursor = 0;
    for (hd_session_t *session; (session = hd_hashmap_next (self->sessions, &session_cursor));) {
        if (session->dead)
            continue;
        int64_t limit = session->kind == HD_SESSION_SUBSCRIBER ? reporter_limit : silence_limit;
        if (now - session->last_heard > limit) {
            self->expired_sessions++;
            s_session_end (self, session, "missed heartbeats");
            continue;
        }
        if (session->kind == HD_SESSION_WORKER &&
            hd_send_command (self->router_socket, session->routing_id, session->routing_id_size,
                             HD_CMD_HEARTBEAT, NULL, ZMQ_DONTWAIT) &&
            errno == EHOSTUNREACH)
            s_session_doom (self, session);
    }
}

//  Write every pool's state as one checkpoint; the journal starts again.
static int
s_checkpoint (hd_broker_t *self)
{
    Herald__Checkpoint checkpoint = HERALD__CHECKPOINT__INIT;
    Herald__PoolState *states = calloc (self->pool_count + 1, sizeof *states);
    Herald__PoolState **list = calloc (self->pool_count + 1, sizeof *list);
    int rc = -1;
    if (states && list) {
        for (size_t index = 0; index < self->pool_count; index++) {
            hd_pool_export (self->pools[index], &states[index]);
            list[index] = &states[index];
        }
        checkpoint.n_pools = self->pool_count;
        checkpoint.pools = list;
        checkpoint.next_pool_id = self->next_pool_id;
        size_t size;
        uint8_t *blob = hd_proto_pack (&checkpoint.base, &size);
        //  The log first: the checkpoint may speak of events just appended
        if (blob && hd_log_flush (self->log, zclock_mono ()) == 0)
            rc = hd_journal_checkpoint (self->journal, blob, size);
        free (blob);
        for (size_t index = 0; index < self->pool_count; index++)
            hd_pool_export_free (&states[index]);
    }
    free (states);
    free (list);
    if (rc != 0)
        zsys_error ("checkpoint failed: %s", strerror (errno));
    return rc;
}

//  Retention: delete whole segments older than --retention-age or past
//  --retention-bytes, never what a pool still needs unless --retention-hard.
static void
s_retain (hd_broker_t *self)
{
    if (!self->config.retention_age_ms && !self->config.retention_bytes)
        return;
    uint64_t keep_from = s_log_end (self);
    for (size_t index = 0; index < self->pool_count; index++) {
        uint64_t floor = hd_pool_floor (self->pools[index]);
        if (floor < keep_from)
            keep_from = floor;
    }
    uint64_t deleted = hd_log_retain (
        self->log, keep_from, (uint64_t) self->config.retention_age_ms * 1000,
        (uint64_t) self->config.retention_bytes, self->config.retention_hard, s_wall_us ());
    if (deleted == 0)
        return;
    uint64_t first = hd_log_first_seq (self->log);
    zsys_info ("retention deleted %llu events; the log now starts at seq %llu",
               (unsigned long long) deleted, (unsigned long long) first);
    for (size_t index = 0; index < self->pool_count; index++)
        if (hd_pool_floor (self->pools[index]) < first) {
            hd_pool_log_truncated (self->pools[index], first);
            zsys_warning ("pool '%s' lost events to --retention-hard",
                          hd_pool_name (self->pools[index]));
        }
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    hd_broker_t *self = arg;
    int64_t since = zclock_usecs ();
    int64_t now = zclock_mono ();
    for (size_t index = 0; index < self->pool_count; index++)
        if (hd_pool_next_wakeup (self->pools[index]) <= now) {
            hd_pool_tick (self->pools[index], now);
            self->pool_dirty[index] = true;
        }
    if (now - self->last_heartbeat >= self->config.heartbeat_ms) {
        self->last_heartbeat = now;
        s_heartbeat_sessions (self, now);
        hd_dedup_expire (self->dedup, now);
    }
    if (now - self->rate_time >= 1000) {
        double seconds = (double) (now - self->rate_time) / 1000.0;
        self->publish_rate = (double) (self->published - self->rate_published) / seconds;
        self->deliver_rate = (double) (self->deliveries - self->rate_deliveries) / seconds;
        self->rate_published = self->published;
        self->rate_deliveries = self->deliveries;
        self->rate_time = now;
    }
    if (now - self->last_retention >= 1000) {
        self->last_retention = now;
        s_retain (self);
    }
    if (hd_journal_bytes (self->journal) >= (uint64_t) self->config.checkpoint_bytes)
        s_checkpoint (self);
    s_end_turn (self);
    s_count_busy (self, since);
    return 0;
}

//  --------------------------------------------------------------------------

void
hd_broker_config_defaults (hd_broker_config_t *config)
{
    memset (config, 0, sizeof *config);
    config->router_endpoint = "tcp://127.0.0.1:7100";
    config->xpub_endpoint = "tcp://127.0.0.1:7101";
    config->heartbeat_ms = 1000;
    config->liveness = 3;
    config->dedup_window_ms = 120000;
    config->dedup_max = 1000000;
    config->dedup_reserve = true;
    config->max_payload = 1024 * 1024;
    config->max_envelope = 64 * 1024;
    config->max_topic = 255;
    config->max_id = 256;
    config->data_dir = "./herald-data";
    config->fsync = HD_FSYNC_ALWAYS;
    config->fsync_interval_ms = 100;
    config->segment_size = 64 * 1024 * 1024;
    config->cache_bytes = 64 * 1024 * 1024;
    config->log_page_cache = 256 * 1024 * 1024;
    config->prepare_segments = true;
    config->checkpoint_bytes = 64 * 1024 * 1024;
    config->journal_sync_ms = 100;
    config->turn_events = 512;
    config->max_pools = 1000;
    config->max_sessions = 100000;
    config->max_credit = 10000;
    config->max_batch = 256;
    config->max_publish_batch = 1024 * 1024;
    config->batch_payload_max = 4096;
    config->max_types = 100000;
    config->sub_hwm = 10000;
    config->retry_after_ms = 500;
    config->tick_ms = 20;
    hd_pool_config_defaults (&config->pool);
}

static int
s_bind (zsock_t *socket, const char *endpoint, char *error, size_t error_size)
{
    if (zsock_bind (socket, "%s", endpoint) == -1) {
        snprintf (error, error_size, "cannot bind %s: %s", endpoint, zmq_strerror (zmq_errno ()));
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------

//  The memory this process may use: the machine's, or less where a cgroup
//  (v2 memory.max, v1 memory.limit_in_bytes) sets a lower limit, as a
//  container's memory limit does. SIZE_MAX when nothing says.
static size_t
s_memory_bytes (void)
{
    long pages = sysconf (_SC_PHYS_PAGES), page_size = sysconf (_SC_PAGESIZE);
    size_t memory = pages > 0 && page_size > 0 ? (size_t) pages * (size_t) page_size : SIZE_MAX;
    const char *limits[] = {"/sys/fs/cgroup/memory.max",
                            "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    for (size_t index = 0; index < sizeof limits / sizeof limits[0]; index++) {
        FILE *file = fopen (limits[index], "r");
        unsigned long long limit;
        if (!file)
            continue;
        //  "max" (no limit) does not parse as a number
        if (fscanf (file, "%llu", &limit) == 1 && limit > 0 && limit < memory)
            memory = (size_t) limit;
        fclose (file);
    }
    return memory;
}

//  A fresh broker would otherwise double the index into new memory a
//  dozen times as the window fills, each time under traffic: on a VM whose
//  host has taken the memory back, a huge page costs milliseconds to touch.
//  An index larger than a quarter of the memory it may use is left to
//  grow: taken at start, it could get the broker killed before it serves.
static void
s_reserve_dedup (hd_broker_t *self)
{
    long long identities = (long long) self->config.dedup_max;
    size_t needed = hd_dedup_reserve_bytes (self->dedup);
    if (needed == 0 || needed > s_memory_bytes () / 4) {
        zsys_warning ("the dedup window's index for %lld identities would take more than a "
                      "quarter of this machine's memory (or of the cgroup's limit): not "
                      "reserved, it grows as identities arrive",
                      identities);
        return;
    }
    int64_t started = zclock_usecs ();
    if (hd_dedup_reserve (self->dedup) != 0) {
        zsys_warning ("cannot reserve the dedup window's index for %lld identities (out of "
                      "memory): it grows as identities arrive",
                      identities);
        return;
    }
    zsys_info ("dedup window: index of %zu KiB for %lld identities ready in %lld ms",
               hd_dedup_index_bytes (self->dedup) >> 10, identities,
               (long long) (zclock_usecs () - started) / 1000);
}

//  Recovery: the log, then the pools (checkpoint + journal), then the dedup
//  window from the log's recent records.

static hd_pool_t *
s_pool_by_id (hd_broker_t *self, uint32_t id)
{
    for (size_t index = 0; index < self->pool_count; index++)
        if (hd_pool_id (self->pools[index]) == id)
            return self->pools[index];
    return NULL;
}

static int
s_replay_state (const void *data, size_t size, bool is_checkpoint, void *arg)
{
    hd_broker_t *self = arg;
    if (is_checkpoint) {
        Herald__Checkpoint *checkpoint = herald__checkpoint__unpack (NULL, size, data);
        if (!checkpoint)
            return -1;
        for (size_t index = 0; index < checkpoint->n_pools; index++) {
            Herald__PoolState *state = checkpoint->pools[index];
            hd_pool_t *pool = state->def ? s_pool_add (self, state->def) : NULL;
            if (pool)
                hd_pool_restore (pool, state);
        }
        if (checkpoint->next_pool_id > self->next_pool_id)
            self->next_pool_id = checkpoint->next_pool_id;
        herald__checkpoint__free_unpacked (checkpoint, NULL);
        return 0;
    }
    Herald__StateOp *op = herald__state_op__unpack (NULL, size, data);
    if (!op)
        return -1;
    if (op->op_case == HERALD__STATE_OP__OP_CREATE) {
        if (op->create && !s_pool_by_id (self, op->create->id))
            s_pool_add (self, op->create);
    } else {
        hd_pool_t *pool = s_pool_by_id (self, op->pool);
        if (pool)
            hd_pool_apply (pool, op);
    }
    herald__state_op__free_unpacked (op, NULL);
    return 0;
}

//  Identities published within the dedup window, so that a publisher that
//  retries after a crash still gets "duplicate" with the original seq.
static void
s_rebuild_dedup (hd_broker_t *self)
{
    uint64_t now_us = s_wall_us ();
    int64_t now = zclock_mono ();
    uint64_t window_us = (uint64_t) self->config.dedup_window_ms * 1000;
    uint64_t from = hd_log_seq_at_time (self->log, now_us > window_us ? now_us - window_us : 0);
    uint64_t end = hd_log_next_seq (self->log);
    if (end - from > (uint64_t) self->config.dedup_max)
        from = end - (uint64_t) self->config.dedup_max;
    for (uint64_t seq = from; seq < end; seq++) {
        zmq_msg_t envelope, payload;
        if (hd_log_read (self->log, seq, &envelope, &payload) != 0)
            continue;
        hd_envelope_t event;
        hd_dedup_key_t identity;
        if (hd_envelope_scan (&event, zmq_msg_data (&envelope), zmq_msg_size (&envelope), false) !=
                HD_ENVELOPE_MALFORMED &&
            s_identity (&event, &identity) == 0) {
            uint64_t age_ms =
                now_us > event.recorded_time_us ? (now_us - event.recorded_time_us) / 1000 : 0;
            hd_dedup_insert_key (self->dedup, &identity, seq, now - (int64_t) age_ms);
            hd_dedup_key_release (&identity);
        }
        zmq_msg_close (&envelope);
        zmq_msg_close (&payload);
    }
}

static int
s_recover (hd_broker_t *self, char *error, size_t error_size)
{
    const hd_broker_config_t *config = &self->config;
    int64_t started = zclock_usecs ();
    if (zsys_dir_create ("%s", config->data_dir) != 0) {
        snprintf (error, error_size, "cannot create data directory %s: %s", config->data_dir,
                  strerror (errno));
        return -1;
    }
    char path[4096];
    //  Two brokers on one data directory would corrupt it: the first one wins
    snprintf (path, sizeof path, "%s/lock", config->data_dir);
    self->lock_fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->lock_fd == -1 || flock (self->lock_fd, LOCK_EX | LOCK_NB) == -1) {
        snprintf (error, error_size, "data directory %s is in use by another broker (%s)",
                  config->data_dir, strerror (errno));
        return -1;
    }
    //  Once the directory is ours, and before recovery refills the window
    //  (with a window of 0 the index never holds more than one identity)
    if (config->dedup_reserve && config->dedup_window_ms > 0)
        s_reserve_dedup (self);
    hd_log_config_t log_config;
    hd_log_config_defaults (&log_config);
    snprintf (path, sizeof path, "%s/log", config->data_dir);
    log_config.directory = path;
    log_config.segment_size = (size_t) config->segment_size;
    log_config.fsync = config->fsync;
    log_config.fsync_interval_ms = config->fsync_interval_ms;
    log_config.skip_corrupt = config->skip_corrupt;
    log_config.cache_bytes = (size_t) config->cache_bytes;
    log_config.prepare_segments = config->prepare_segments;
    log_config.page_cache_keep = (uint64_t) config->log_page_cache;
    hd_log_recovery_t log_report;
    self->log = hd_log_open (&log_config, &log_report, error, error_size);
    if (!self->log)
        return -1;
    zsys_info ("log: %llu events in %llu segments, seqs %llu..%llu (%s)",
               (unsigned long long) log_report.records, (unsigned long long) log_report.segments,
               (unsigned long long) hd_log_first_seq (self->log),
               (unsigned long long) hd_log_next_seq (self->log), log_report.detail);
    if (log_report.truncated_bytes || log_report.skipped_records)
        zsys_warning ("log recovery removed %llu torn bytes at the end and skipped %llu corrupt "
                      "records",
                      (unsigned long long) log_report.truncated_bytes,
                      (unsigned long long) log_report.skipped_records);
    snprintf (path, sizeof path, "%s/state", config->data_dir);
    hd_journal_recovery_t journal_report;
    self->recovering = true;
    //  Losing a journaled ACK or delivery can only cause a redelivery, never a
    //  lost event, so with a durable log the journal is synced on an interval
    //  (--journal-sync); changes that must survive at once ask for a sync.
    hd_fsync_t journal_fsync = config->fsync == HD_FSYNC_NEVER ? HD_FSYNC_NEVER : HD_FSYNC_INTERVAL;
    int64_t journal_interval = config->journal_sync_ms;
    if (config->fsync == HD_FSYNC_INTERVAL && config->fsync_interval_ms < journal_interval)
        journal_interval = config->fsync_interval_ms;
    self->journal = hd_journal_open (path, journal_fsync, journal_interval, config->skip_corrupt,
                                     s_replay_state, self, &journal_report, error, error_size);
    self->recovering = false;
    if (!self->journal)
        return -1;
    int64_t now = zclock_mono ();
    for (size_t index = 0; index < self->pool_count; index++)
        hd_pool_recovered (self->pools[index], now);
    s_rebuild_dedup (self);
    self->recovered_events = log_report.records;
    self->recovery_ms = (uint64_t) (zclock_usecs () - started) / 1000;
    zsys_info ("recovered %zu pools and %zu dedup entries in %llu ms (journal: %llu records%s)",
               self->pool_count, hd_dedup_size (self->dedup),
               (unsigned long long) self->recovery_ms, (unsigned long long) journal_report.records,
               journal_report.checkpoint_found ? ", from a checkpoint" : "");
    return 0;
}

hd_broker_t *
hd_broker_new (const hd_broker_config_t *config, char *error, size_t error_size)
{
    if (config->dedup_max < 1 || (uint64_t) config->dedup_max > HD_DEDUP_MAX_ENTRIES) {
        snprintf (error, error_size, "dedup_max must be 1 to %zu", HD_DEDUP_MAX_ENTRIES);
        return NULL;
    }
    hd_broker_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    self->lock_fd = -1;
    self->config = *config;
    self->router = zsock_new (ZMQ_ROUTER);
    self->xpub = zsock_new (ZMQ_XPUB);
    self->pending = calloc (S_BATCH, sizeof *self->pending);
    self->pending_capacity = S_BATCH;
    self->arena = hd_arena_new (256 * 1024);
    self->turn_arena = hd_arena_new (S_TURN_ARENA);
    self->dedup = hd_dedup_new (config->dedup_window_ms, (size_t) config->dedup_max);
    self->sessions = hd_hashmap_new ();
    self->dead = zlistx_new ();
    self->doomed = zlistx_new ();
    self->disconnected = zlistx_new ();
    self->loop = zloop_new ();
    if (!self->router || !self->xpub || !self->pending || !self->arena || !self->turn_arena ||
        !self->dedup || !self->sessions || !self->dead || !self->doomed || !self->disconnected ||
        !self->loop) {
        snprintf (error, error_size, "out of memory");
        hd_broker_destroy (&self);
        return NULL;
    }
    if (s_recover (self, error, error_size) != 0) {
        hd_broker_destroy (&self);
        return NULL;
    }
    self->router_socket = zsock_resolve (self->router);
    self->xpub_socket = zsock_resolve (self->xpub);
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_sndhwm (self->router, 100000);
    zsock_set_rcvhwm (self->router, 100000);
    zsock_set_linger (self->router, 0);
    zsock_set_sndhwm (self->xpub, (int) config->sub_hwm);
    zsock_set_xpub_verbose (self->xpub, 1);
    zsock_set_linger (self->xpub, 0);
    //  ZMQ_XPUB_VERBOSER (4.2+): pass unsubscribes up too, so the count stays right
    int verboser = 1;
    zmq_setsockopt (self->xpub_socket, 78, &verboser, sizeof verboser);
    if (s_bind (self->router, config->router_endpoint, error, error_size) ||
        s_bind (self->xpub, config->xpub_endpoint, error, error_size)) {
        hd_broker_destroy (&self);
        return NULL;
    }
    char monitor_endpoint[64];
    snprintf (monitor_endpoint, sizeof monitor_endpoint, "inproc://herald-monitor-%p",
              (void *) self);
    if (zmq_socket_monitor (self->router_socket, monitor_endpoint,
                            ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) == -1 ||
        !(self->monitor = zsock_new_pair (monitor_endpoint))) {
        snprintf (error, error_size, "cannot monitor the ROUTER socket");
        hd_broker_destroy (&self);
        return NULL;
    }
    self->epoch = (uint64_t) zclock_time ();
    self->fanout = hd_fanout_new (self->xpub_socket, self->epoch, (size_t) config->max_types);
    if (!self->fanout) {
        snprintf (error, error_size, "out of memory");
        hd_broker_destroy (&self);
        return NULL;
    }
    self->started = self->rate_time = self->last_heartbeat = zclock_mono ();
    zloop_reader (self->loop, self->router, s_on_readable, self);
    zloop_reader (self->loop, self->xpub, s_on_xpub, self);
    zloop_reader (self->loop, self->monitor, s_on_readable, self);
    zloop_timer (self->loop, (size_t) config->tick_ms, 0, s_on_tick, self);
    return self;
}

void
hd_broker_destroy (hd_broker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_broker_t *self = *self_p;
    zloop_destroy (&self->loop);
    //  Publishes not yet committed are not confirmed: their publishers resend
    for (size_t index = 0; index < self->pending_count; index++)
        s_pending_free (&self->pending[index]);
    self->pending_count = 0;
    if (self->turn_arena)
        s_end_turn_memory (self);
    //  Pools are still alive here: their state goes into the checkpoint
    if (self->journal && self->log && s_checkpoint (self) == 0)
        zsys_info ("state checkpointed for a fast restart");
    if (self->router_socket && self->monitor)
        zmq_socket_monitor (self->router_socket, NULL, 0);
    zsock_destroy (&self->monitor);
    zsock_destroy (&self->router);
    zsock_destroy (&self->xpub);
    for (size_t index = 0; index < self->pool_count; index++)
        hd_pool_destroy (&self->pools[index]);
    free (self->pools);
    free (self->pool_dirty);
    if (self->sessions) {
        size_t cursor = 0;
        hd_session_t *session;
        while ((session = hd_hashmap_next (self->sessions, &cursor)))
            hd_session_destroy (&session);
        hd_hashmap_destroy (&self->sessions);
    }
    zlistx_destroy (&self->dead);
    zlistx_destroy (&self->doomed);
    zlistx_destroy (&self->disconnected);
    hd_fanout_destroy (&self->fanout);
    hd_dedup_destroy (&self->dedup);
    hd_journal_destroy (&self->journal);
    hd_log_destroy (&self->log);
    if (self->lock_fd != -1)
        close (self->lock_fd);
    free (self->pending);
    hd_arena_destroy (&self->arena);
    hd_arena_destroy (&self->turn_arena);
    free (self->turn_bodies);
    free (self->pack_buffer);
    free (self->batching);
    free (self);
    *self_p = NULL;
}

int
hd_broker_run (hd_broker_t *self)
{
    zsys_info ("herald-broker serving ROUTER %s, XPUB %s", self->config.router_endpoint,
               self->config.xpub_endpoint);
    zloop_start (self->loop);
    zsys_info (
        "herald-broker stopping: published=%llu duplicates=%llu rejected=%llu malformed=%llu",
        (unsigned long long) self->published, (unsigned long long) self->duplicates,
        (unsigned long long) self->rejected, (unsigned long long) self->malformed);
    return 0;
}
