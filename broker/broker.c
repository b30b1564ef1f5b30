/*  broker — event loop, sessions and command handling.

    Everything runs on the zloop thread. Per turn of the ROUTER reader the
    broker drains a batch of messages, then dispatches the pools that got
    work, then ends the sessions that died during the batch.
*/
#include "broker.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"
#include "dedup.h"
#include "fanout.h"
#include "session.h"
#include "store.h"

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
#define S_BODY_MAX      (64 * 1024)
#define S_POOL_NAME_MAX 128

struct _hd_broker_t {
    hd_broker_config_t config;
    zsock_t *router;
    zsock_t *xpub;
    zsock_t *monitor;
    void *router_socket; // raw libzmq handles of the above
    void *xpub_socket;
    zloop_t *loop;
    hd_store_t *store;
    hd_dedup_t *dedup;
    hd_fanout_t *fanout;
    zhashx_t *sessions;     // session key -> hd_session_t (owned)
    zlistx_t *dead;         // sessions to remove at the end of the turn
    zlistx_t *doomed;       // unreachable sessions to end once dispatch is over
    zlistx_t *disconnected; // sessions whose connection closed, to end after reading it dry
    hd_pool_t **pools;
    bool *pool_dirty;
    size_t pool_count;
    uint64_t epoch;
    uint64_t next_session_number;
    int64_t started;
    int64_t last_heartbeat;
    //  Counters
    uint64_t published, duplicates, rejected, malformed, expired_sessions;
    uint64_t confirms_dropped, retired_gaps, deliveries;
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

static hd_session_t *
s_session_lookup (hd_broker_t *self, const void *rid, size_t rid_size)
{
    char key[HD_SESSION_KEY_MAX];
    if (hd_session_key (rid, rid_size, key) != 0)
        return NULL;
    hd_session_t *session = zhashx_lookup (self->sessions, key);
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
    if (self->config.verbose || session->kind == HD_SESSION_WORKER)
        zsys_info ("session %llu (%s '%s') ended: %s", (unsigned long long) session->number,
                   session->kind == HD_SESSION_WORKER ? "worker" : "subscriber", session->name,
                   why);
    if (session->member) {
        hd_pool_leave (session->pool, &session->member);
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
        char key[HD_SESSION_KEY_MAX];
        memcpy (key, session->key, sizeof key);
        zhashx_delete (self->sessions, key);
    }
    return ended;
}

static void
s_session_free (void **item)
{
    hd_session_destroy ((hd_session_t **) item);
}

static hd_session_t *
s_session_create (hd_broker_t *self, hd_session_kind_t kind, hd_frames_t *frames)
{
    if (zhashx_size (self->sessions) >= (size_t) self->config.max_sessions)
        return NULL;
    //  The transport fd lets the socket monitor tell us when this peer goes
    int fd = zmq_msg_get (&frames->frame[1], ZMQ_SRCFD);
    hd_session_t *session =
        hd_session_new (kind, hd_frames_data (frames, 0), hd_frames_size (frames, 0),
                        ++self->next_session_number, fd, zclock_mono ());
    if (session && zhashx_insert (self->sessions, session->key, session) != 0)
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

static int
s_deliver (void *handle, uint64_t seq, uint32_t attempt, void *arg)
{
    hd_broker_t *self = arg;
    hd_session_t *session = handle;
    if (session->dead || session->doomed)
        return -1;
    hd_record_t *record = hd_store_get (self->store, seq);
    if (!record) {
        //  Cannot happen while pools hold their events; say so loudly
        zsys_error ("store has no record for seq %llu", (unsigned long long) seq);
        return -1;
    }
    Herald__Deliver deliver = HERALD__DELIVER__INIT;
    deliver.seq = seq;
    deliver.attempt = attempt;
    deliver.ack_wait_ms = (uint32_t) self->config.pool.ack_wait_ms;
    void *socket = self->router_socket;
    if (hd_send_bytes (socket, session->routing_id, session->routing_id_size,
                       ZMQ_SNDMORE | ZMQ_DONTWAIT)) {
        if (errno == EHOSTUNREACH)
            s_session_doom (self, session);
        return -1;
    }
    zmq_msg_t envelope, payload;
    zmq_msg_init (&envelope);
    zmq_msg_init (&payload);
    zmq_msg_copy (&envelope, &record->envelope);
    zmq_msg_copy (&payload, &record->payload);
    //  After the routing frame went out, the rest of the message cannot fail
    hd_send_header (socket, HD_CMD_DELIVER, ZMQ_SNDMORE);
    hd_send_proto (socket, &deliver.base, ZMQ_SNDMORE);
    hd_send_msg (socket, &envelope, ZMQ_SNDMORE);
    hd_send_msg (socket, &payload, 0);
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
    self->deliveries++;
    return 0;
}

static void
s_release (uint64_t seq, void *arg)
{
    hd_broker_t *self = arg;
    hd_store_release (self->store, seq);
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
static void
s_end_turn (hd_broker_t *self)
{
    do
        s_dispatch_dirty (self);
    while (s_reap_sessions (self) > 0);
}

//  --------------------------------------------------------------------------
//  PUBLISH

static bool
s_valid_type (const char *type, size_t size, size_t max)
{
    if (size == 0 || size > max)
        return false;
    for (size_t index = 0; index < size; index++)
        if ((unsigned char) type[index] <= 0x20 || type[index] == 0x7F)
            return false;
    return true;
}

static size_t
s_varint (uint8_t *out, uint64_t value)
{
    size_t size = 0;
    while (value >= 0x80) {
        out[size++] = (uint8_t) (value | 0x80);
        value >>= 7;
    }
    out[size++] = (uint8_t) value;
    return size;
}

//  The stored envelope is the publisher's Event bytes followed by the seq
//  and recorded_time_us fields: protobuf keeps the last value of a field,
//  so this overrides whatever the client sent without re-encoding.
static int
s_stamp_envelope (zmq_msg_t *stamped, zmq_msg_t *original, uint64_t seq, uint64_t recorded_us)
{
    //  Tags of fields 20 and 21 (wire type 0) are the varints A0 01 and A8 01
    uint8_t suffix[24] = {0xA0, 0x01};
    size_t size = 2;
    size += s_varint (suffix + size, seq);
    suffix[size++] = 0xA8;
    suffix[size++] = 0x01;
    size += s_varint (suffix + size, recorded_us);
    size_t original_size = zmq_msg_size (original);
    if (zmq_msg_init_size (stamped, original_size + size) == -1)
        return -1;
    memcpy (zmq_msg_data (stamped), zmq_msg_data (original), original_size);
    memcpy ((uint8_t *) zmq_msg_data (stamped) + original_size, suffix, size);
    return 0;
}

//  proto3 strings must be UTF-8; clients in other languages refuse to decode
//  anything else, so the broker never stores it.
static bool
s_valid_utf8 (const char *text)
{
    const unsigned char *c = (const unsigned char *) text;
    while (*c) {
        int extra = *c < 0x80           ? 0
                    : (*c >> 5) == 0x6  ? 1
                    : (*c >> 4) == 0xE  ? 2
                    : (*c >> 3) == 0x1E ? 3
                                        : -1;
        if (extra < 0 || (extra == 1 && *c < 0xC2))
            return false;
        uint32_t point = extra == 0 ? *c : *c & (0x3F >> extra);
        c++;
        for (int index = 0; index < extra; index++, c++) {
            if ((*c & 0xC0) != 0x80)
                return false;
            point = point << 6 | (*c & 0x3F);
        }
        if ((extra == 2 && (point < 0x800 || (point >= 0xD800 && point <= 0xDFFF))) ||
            (extra == 3 && (point < 0x10000 || point > 0x10FFFF)))
            return false;
    }
    return true;
}

static bool
s_event_strings_valid (const Herald__Event *event)
{
    const char *fields[] = {
        event->id,           event->source,         event->type,          event->subject,
        event->content_type, event->schema_version, event->partition_key, event->correlation_id,
        event->causation_id, event->traceparent};
    for (size_t index = 0; index < sizeof fields / sizeof fields[0]; index++)
        if (fields[index] && !s_valid_utf8 (fields[index]))
            return false;
    for (size_t index = 0; index < event->n_attributes; index++)
        if (!s_valid_utf8 (event->attributes[index]->key) ||
            !s_valid_utf8 (event->attributes[index]->value))
            return false;
    return true;
}

//  Returns a reason for INVALID, or NULL when the event is acceptable.
static const char *
s_check_event (hd_broker_t *self, const Herald__Event *event)
{
    size_t max_id = (size_t) self->config.max_id;
    if (!event->id || !*event->id)
        return "event id is required";
    if (!event->source || !*event->source)
        return "event source is required";
    if (strlen (event->id) > max_id || strlen (event->source) > max_id)
        return "event id or source is longer than --max-id";
    if (event->partition_key && strlen (event->partition_key) > max_id)
        return "partition key is longer than --max-id";
    if (!s_event_strings_valid (event))
        return "event strings must be valid UTF-8";
    if (!event->type ||
        !s_valid_type (event->type, strlen (event->type), (size_t) self->config.max_topic))
        return "event type must be 1..max-topic bytes without spaces or control characters";
    return NULL;
}

static void
s_on_publish (hd_broker_t *self, hd_frames_t *frames)
{
    const void *rid = hd_frames_data (frames, 0);
    size_t rid_size = hd_frames_size (frames, 0);
    if (frames->count != 5) {
        self->malformed++;
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__MALFORMED, HD_CMD_PUBLISH,
                      "PUBLISH needs 4 frames: header, Publish, Event, payload");
        return;
    }
    if (hd_frames_size (frames, 2) > S_BODY_MAX) {
        self->malformed++;
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__TOO_LARGE, HD_CMD_PUBLISH,
                      "Publish body is larger than 64 KiB");
        return;
    }
    Herald__Publish *publish =
        herald__publish__unpack (NULL, hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!publish) {
        self->malformed++;
        s_send_error (self, rid, rid_size, HERALD__ERROR_CODE__MALFORMED, HD_CMD_PUBLISH,
                      "Publish body does not parse");
        return;
    }
    uint64_t corr = publish->corr;
    herald__publish__free_unpacked (publish, NULL);

    if (hd_frames_size (frames, 3) > (size_t) self->config.max_envelope) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__TOO_LARGE,
                       "Event frame is larger than --max-envelope", 0);
        return;
    }
    if (hd_frames_size (frames, 4) > (size_t) self->config.max_payload) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__TOO_LARGE,
                       "payload is larger than --max-payload", 0);
        return;
    }
    Herald__Event *event =
        herald__event__unpack (NULL, hd_frames_size (frames, 3), hd_frames_data (frames, 3));
    if (!event) {
        self->malformed++;
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__MALFORMED,
                       "Event does not parse", 0);
        return;
    }
    const char *invalid = s_check_event (self, event);
    if (invalid) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__INVALID, invalid, 0);
        herald__event__free_unpacked (event, NULL);
        return;
    }
    int64_t now = zclock_mono ();
    uint64_t original = hd_dedup_lookup (self->dedup, event->source, event->id, now);
    if (original) {
        self->duplicates++;
        s_send_confirm (self, rid, rid_size, corr, original, true);
        herald__event__free_unpacked (event, NULL);
        return;
    }
    //  Which pools take it, and can they?
    size_t type_size = strlen (event->type);
    hd_pool_t *matched[self->pool_count + 1];
    uint32_t holders = 0;
    for (size_t index = 0; index < self->pool_count; index++) {
        hd_pool_t *pool = self->pools[index];
        if (!hd_pool_matches (pool, event->type, type_size))
            continue;
        if (hd_pool_full (pool)) {
            char reason[200];
            snprintf (reason, sizeof reason, "pool '%s' holds --max-pending events",
                      hd_pool_name (pool));
            s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__BACKLOG_FULL, reason,
                           (uint32_t) self->config.retry_after_ms);
            herald__event__free_unpacked (event, NULL);
            return;
        }
        matched[holders++] = pool;
    }
    size_t bytes = hd_frames_size (frames, 3) + hd_frames_size (frames, 4);
    if (holders && hd_store_full (self->store, bytes)) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__BACKLOG_FULL,
                       "store holds --max-store-bytes", (uint32_t) self->config.retry_after_ms);
        herald__event__free_unpacked (event, NULL);
        return;
    }
    uint64_t seq = hd_store_next_seq (self->store);
    zmq_msg_t envelope;
    if (s_stamp_envelope (&envelope, &frames->frame[3], seq, s_wall_us ())) {
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__INTERNAL, "out of memory",
                       (uint32_t) self->config.retry_after_ms);
        herald__event__free_unpacked (event, NULL);
        return;
    }
    //  Fan-out first, while the frames are still ours to share
    if (hd_fanout_subscriptions (self->fanout) > 0)
        hd_fanout_publish (self->fanout, event->type, type_size, &envelope, &frames->frame[4]);
    if (hd_store_append (self->store, &envelope, &frames->frame[4], holders) != seq) {
        zmq_msg_close (&envelope);
        s_send_reject (self, rid, rid_size, corr, HERALD__ERROR_CODE__INTERNAL, "out of memory",
                       (uint32_t) self->config.retry_after_ms);
        herald__event__free_unpacked (event, NULL);
        return;
    }
    zmq_msg_close (&envelope);
    for (uint32_t index = 0; index < holders; index++) {
        if (hd_pool_enqueue (matched[index], seq, now) != 0)
            hd_store_release (self->store, seq); // out of memory: this pool cannot hold it
        s_mark_pool_dirty (self, matched[index]);
    }
    hd_dedup_insert (self->dedup, event->source, event->id, seq, now);
    self->published++;
    s_send_confirm (self, rid, rid_size, corr, seq, false);
    herald__event__free_unpacked (event, NULL);
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

static hd_pool_t *
s_pool_create (hd_broker_t *self, const char *name, const char *filter)
{
    hd_pool_t **pools = realloc (self->pools, (self->pool_count + 1) * sizeof *pools);
    if (!pools)
        return NULL;
    self->pools = pools;
    bool *dirty = realloc (self->pool_dirty, (self->pool_count + 1) * sizeof *dirty);
    if (!dirty)
        return NULL;
    self->pool_dirty = dirty;
    hd_pool_t *pool = hd_pool_new (name, filter, &self->config.pool, s_deliver, s_release, self);
    if (!pool)
        return NULL;
    self->pools[self->pool_count] = pool;
    self->pool_dirty[self->pool_count] = false;
    self->pool_count++;
    zsys_info ("pool '%s' created with filter '%s'", name, filter);
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
        pool = s_pool_create (self, join->pool, join->filter);
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
    joined.ack_wait_ms = (uint32_t) self->config.pool.ack_wait_ms;
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
    session->last_heard = zclock_mono ();
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

static void
s_on_settle (hd_broker_t *self, hd_frames_t *frames, int command)
{
    hd_session_t *session = s_worker_session (self, frames, command);
    if (!session || !s_body_fits (self, frames, command))
        return;
    Herald__Settle *settle =
        herald__settle__unpack (NULL, hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!settle || settle->n_seq != settle->n_attempt) {
        if (settle)
            herald__settle__free_unpacked (settle, NULL);
        s_malformed_body (self, frames, command);
        return;
    }
    int64_t now = zclock_mono ();
    for (size_t index = 0; index < settle->n_seq; index++) {
        uint64_t seq = settle->seq[index];
        uint32_t attempt = settle->attempt[index];
        int rc = command == HD_CMD_ACK
                     ? hd_pool_ack (session->pool, session->member, seq, attempt)
                     : hd_pool_progress (session->pool, session->member, seq, attempt, now);
        if (rc)
            s_send_stale (self, session, command, seq, attempt);
    }
    herald__settle__free_unpacked (settle, NULL);
    hd_pool_wake (session->pool, session->member);
    s_mark_pool_dirty (self, session->pool);
}

static void
s_on_nack (hd_broker_t *self, hd_frames_t *frames)
{
    hd_session_t *session = s_worker_session (self, frames, HD_CMD_NACK);
    if (!session || !s_body_fits (self, frames, HD_CMD_NACK))
        return;
    Herald__Nack *nack =
        herald__nack__unpack (NULL, hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!nack) {
        s_malformed_body (self, frames, HD_CMD_NACK);
        return;
    }
    if (hd_pool_nack (session->pool, session->member, nack->seq, nack->attempt, nack->delay_ms,
                      zclock_mono ()))
        s_send_stale (self, session, HD_CMD_NACK, nack->seq, nack->attempt);
    herald__nack__free_unpacked (nack, NULL);
    hd_pool_wake (session->pool, session->member);
    s_mark_pool_dirty (self, session->pool);
}

static void
s_on_term (hd_broker_t *self, hd_frames_t *frames)
{
    hd_session_t *session = s_worker_session (self, frames, HD_CMD_TERM);
    if (!session || !s_body_fits (self, frames, HD_CMD_TERM))
        return;
    Herald__Term *term =
        herald__term__unpack (NULL, hd_frames_size (frames, 2), hd_frames_data (frames, 2));
    if (!term) {
        s_malformed_body (self, frames, HD_CMD_TERM);
        return;
    }
    if (hd_pool_term (session->pool, session->member, term->seq, term->attempt))
        s_send_stale (self, session, HD_CMD_TERM, term->seq, term->attempt);
    else if (self->config.verbose)
        zsys_info ("pool '%s' terminated seq %llu: %s", hd_pool_name (session->pool),
                   (unsigned long long) term->seq, term->error);
    herald__term__free_unpacked (term, NULL);
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
        session->last_heard = zclock_mono ();
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
    for (hd_session_t *session = zhashx_first (self->sessions); session;
         session = zhashx_next (self->sessions))
        if (session->kind == HD_SESSION_SUBSCRIBER && !session->dead) {
            stats.subscribers++;
            stats.subscriber_gaps += session->gaps;
        }
    stats.fanout_sent = hd_fanout_sent (self->fanout);
    stats.store_events = hd_store_events (self->store);
    stats.store_bytes = hd_store_bytes (self->store);
    stats.sessions = (uint32_t) zhashx_size (self->sessions);
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
            if (event == ZMQ_EVENT_DISCONNECTED)
                for (hd_session_t *session = zhashx_first (self->sessions); session;
                     session = zhashx_next (self->sessions))
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

//  One turn: note closes, read messages (all of them when a close is
//  pending, else a batch), end the closed sessions, dispatch.
static void
s_turn (hd_broker_t *self)
{
    bool closing = s_note_disconnects (self) > 0 || zlistx_size (self->disconnected) > 0;
    for (int count = 0; closing || count < S_BATCH; count++) {
        hd_frames_t frames;
        if (hd_frames_recv (&frames, self->router_socket, ZMQ_DONTWAIT) == -1)
            break;
        s_handle_message (self, &frames);
        hd_frames_close (&frames);
    }
    s_end_disconnected (self);
    s_end_turn (self);
}

static int
s_on_monitor (zloop_t *loop, zsock_t *reader, void *arg)
{
    s_turn ((hd_broker_t *) arg);
    return 0;
}

static int
s_on_router (zloop_t *loop, zsock_t *reader, void *arg)
{
    s_turn ((hd_broker_t *) arg);
    return 0;
}

static int
s_on_xpub (zloop_t *loop, zsock_t *reader, void *arg)
{
    hd_broker_t *self = arg;
    hd_fanout_read_subscriptions (self->fanout);
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
    for (hd_session_t *session = zhashx_first (self->sessions); session;
         session = zhashx_next (self->sessions)) {
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

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    hd_broker_t *self = arg;
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
    s_end_turn (self);
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
    config->max_payload = 1024 * 1024;
    config->max_envelope = 64 * 1024;
    config->max_topic = 255;
    config->max_id = 256;
    config->max_store_bytes = 1024LL * 1024 * 1024;
    config->max_pools = 1000;
    config->max_sessions = 100000;
    config->max_credit = 10000;
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

hd_broker_t *
hd_broker_new (const hd_broker_config_t *config, char *error, size_t error_size)
{
    hd_broker_t *self = calloc (1, sizeof *self);
    if (!self) {
        snprintf (error, error_size, "out of memory");
        return NULL;
    }
    self->config = *config;
    self->router = zsock_new (ZMQ_ROUTER);
    self->xpub = zsock_new (ZMQ_XPUB);
    self->store = hd_store_new ((size_t) config->max_store_bytes);
    self->dedup = hd_dedup_new (config->dedup_window_ms, (size_t) config->dedup_max);
    self->sessions = zhashx_new ();
    self->dead = zlistx_new ();
    self->doomed = zlistx_new ();
    self->disconnected = zlistx_new ();
    self->loop = zloop_new ();
    if (!self->router || !self->xpub || !self->store || !self->dedup || !self->sessions ||
        !self->dead || !self->doomed || !self->disconnected || !self->loop) {
        snprintf (error, error_size, "out of memory");
        hd_broker_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->sessions, s_session_free);
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
    zloop_reader (self->loop, self->router, s_on_router, self);
    zloop_reader (self->loop, self->xpub, s_on_xpub, self);
    zloop_reader (self->loop, self->monitor, s_on_monitor, self);
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
    if (self->router_socket && self->monitor)
        zmq_socket_monitor (self->router_socket, NULL, 0);
    zsock_destroy (&self->monitor);
    zsock_destroy (&self->router);
    zsock_destroy (&self->xpub);
    for (size_t index = 0; index < self->pool_count; index++)
        hd_pool_destroy (&self->pools[index]);
    free (self->pools);
    free (self->pool_dirty);
    zhashx_destroy (&self->sessions);
    zlistx_destroy (&self->dead);
    zlistx_destroy (&self->doomed);
    zlistx_destroy (&self->disconnected);
    hd_fanout_destroy (&self->fanout);
    hd_dedup_destroy (&self->dedup);
    hd_store_destroy (&self->store);
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
