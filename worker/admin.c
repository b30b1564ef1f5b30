/*  admin — STATS and DLQ requests, and the JSON rendering of Stats. */
#include "admin.h"
#include "event.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

//  Seqs per DLQ_REPLAY / DLQ_PURGE request: at most 10 bytes each packed,
//  so a request stays well under the broker's 64 KiB body limit.
#define S_SEQS_PER_REQUEST 4096

//  A DEALER connected to the broker for a few request/reply exchanges.
typedef struct {
    zsock_t *socket;
    void *handle;
    const char *endpoint;
    int timeout_ms;
} s_link_t;

static void
s_fail (hd_admin_error_t *error, hd_admin_failure_t failure, const char *format, ...)
{
    error->failure = failure;
    va_list args;
    va_start (args, format);
    vsnprintf (error->text, sizeof error->text, format, args);
    va_end (args);
}

static const char *
s_duration_text (int ms, char *buffer, size_t size)
{
    if (ms % 1000 == 0)
        snprintf (buffer, size, "%ds", ms / 1000);
    else if (ms < 1000)
        snprintf (buffer, size, "%dms", ms);
    else
        snprintf (buffer, size, "%.3gs", (double) ms / 1000.0);
    return buffer;
}

static int
s_open (s_link_t *link, const char *endpoint, int timeout_ms, hd_admin_error_t *error)
{
    link->endpoint = endpoint ? endpoint : HERALD_DEFAULT_BROKER;
    link->timeout_ms = timeout_ms;
    link->socket = zsock_new (ZMQ_DEALER);
    if (!link->socket) {
        s_fail (error, HD_ADMIN_LOCAL, "cannot create socket");
        return -1;
    }
    zsock_set_linger (link->socket, 0);
    if (zsock_connect (link->socket, "%s", link->endpoint)) {
        zsock_destroy (&link->socket);
        s_fail (error, HD_ADMIN_LOCAL, "invalid broker endpoint '%s'", link->endpoint);
        return -1;
    }
    link->handle = zsock_resolve (link->socket);
    return 0;
}

static void
s_close (s_link_t *link)
{
    zsock_destroy (&link->socket);
}

//  Send [command][body] and wait for the reply expected (which must have
//  frame_count frames) or an ERROR. Returns 0 with the reply in *reply (the
//  caller closes it), or -1 with *error filled; for an ERROR, error->text is
//  the broker's reason (maybe empty) and error->code its code.
static int
s_exchange (s_link_t *link, hd_command_t command, const ProtobufCMessage *body,
            hd_command_t expected, int frame_count, hd_frames_t *reply, hd_admin_error_t *error)
{
    const char *name = hd_command_name (command);
    if (hd_send_command (link->handle, NULL, 0, command, body, 0)) {
        s_fail (error, HD_ADMIN_LOCAL, "cannot send %s: %s", name, zmq_strerror (errno));
        return -1;
    }
    int64_t deadline = link->timeout_ms < 0 ? -1 : zclock_mono () + link->timeout_ms;
    while (true) {
        long wait = -1;
        if (deadline >= 0) {
            wait = (long) (deadline - zclock_mono ());
            if (wait <= 0) {
                char duration[32];
                s_fail (error, HD_ADMIN_TIMEOUT,
                        "timed out after %s waiting for the broker at %s to answer %s",
                        s_duration_text (link->timeout_ms, duration, sizeof duration),
                        link->endpoint, name);
                return -1;
            }
        }
        zmq_pollitem_t item = {link->handle, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll (&item, 1, wait);
        if (zsys_interrupted || (rc == -1 && errno != EINTR)) {
            s_fail (error, HD_ADMIN_INTERRUPTED, "interrupted");
            return -1;
        }
        if (rc <= 0)
            continue;
        hd_frames_t frames;
        if (hd_frames_recv (&frames, link->handle, ZMQ_DONTWAIT))
            continue;
        int code = 0;
        if (frames.count < 1 ||
            hd_header_decode (hd_frames_data (&frames, 0), hd_frames_size (&frames, 0), &code)) {
            hd_frames_close (&frames);
            continue; // not ours to understand; the answer may still come
        }
        if (code == (int) expected) {
            if (frames.count != frame_count || frames.truncated) {
                s_fail (error, HD_ADMIN_BAD_REPLY, "broker sent a %s with %d frames, not %d",
                        hd_command_name (code), frames.count, frame_count);
                hd_frames_close (&frames);
                return -1;
            }
            *reply = frames;
            return 0;
        }
        if (code == HD_CMD_ERROR) {
            Herald__Error *refusal = frames.count == 2
                                         ? herald__error__unpack (NULL, hd_frames_size (&frames, 1),
                                                                  hd_frames_data (&frames, 1))
                                         : NULL;
            hd_frames_close (&frames);
            if (!refusal) {
                s_fail (error, HD_ADMIN_BAD_REPLY, "broker sent an ERROR that does not parse");
                return -1;
            }
            error->code = refusal->code;
            s_fail (error, HD_ADMIN_REFUSED, "%s", refusal->reason ? refusal->reason : "");
            herald__error__free_unpacked (refusal, NULL);
            return -1;
        }
        hd_frames_close (&frames); // HEARTBEAT or anything else unasked-for
    }
}

Herald__Stats *
hd_admin_stats (const char *endpoint, int timeout_ms, const char **error)
{
    //  The reason lives here until this thread's next call
    static _Thread_local hd_admin_error_t failure;
    const char *dummy;
    if (!error)
        error = &dummy;
    memset (&failure, 0, sizeof failure);
    s_link_t link;
    Herald__Stats *stats = NULL;
    hd_frames_t reply;
    if (s_open (&link, endpoint, timeout_ms, &failure) == 0) {
        if (s_exchange (&link, HD_CMD_STATS, NULL, HD_CMD_STATS_REPLY, 2, &reply, &failure) == 0) {
            stats = herald__stats__unpack (NULL, hd_frames_size (&reply, 1),
                                           hd_frames_data (&reply, 1));
            hd_frames_close (&reply);
            if (!stats)
                s_fail (&failure, HD_ADMIN_BAD_REPLY,
                        "broker sent a STATS_REPLY that does not parse");
        } else if (failure.failure == HD_ADMIN_REFUSED) {
            char reason[sizeof failure.text];
            snprintf (reason, sizeof reason, "%s", failure.text);
            snprintf (failure.text, sizeof failure.text, "broker refused STATS: %s%s%.400s",
                      hd_error_name (failure.code), *reason ? ": " : "", reason);
        }
        s_close (&link);
    }
    *error = stats ? NULL : failure.text;
    return stats;
}

const char *
hd_admin_dlq_reason_name (int reason)
{
    switch (reason) {
        case HERALD__DLQ_REASON__TERMINATED: return "terminated";
        case HERALD__DLQ_REASON__MAX_DELIVER: return "max_deliver";
        default: return "none";
    }
}

//  Turn the broker's ERROR for a DLQ request into one clear line.
static void
s_explain_refusal (hd_admin_error_t *error, hd_command_t command, const char *pool,
                   const uint64_t *seq)
{
    char reason[sizeof error->text];
    snprintf (reason, sizeof reason, "%s", error->text);
    char what[300];
    if (error->code == HERALD__ERROR_CODE__NOT_FOUND) {
        //  The broker's reason says whether the pool or the entry is missing
        bool entry = strstr (reason, "entry") != NULL;
        if (!entry && (strstr (reason, "pool") || (!*reason && command == HD_CMD_DLQ_LIST)))
            snprintf (what, sizeof what, "no such pool '%.128s'", pool);
        else if (entry && seq)
            snprintf (what, sizeof what, "no DLQ entry at seq %" PRIu64 " in pool '%.128s'", *seq,
                      pool);
        else if (entry)
            snprintf (what, sizeof what, "no such DLQ entry in pool '%.128s'", pool);
        else if (*reason && seq)
            snprintf (what, sizeof what, "seq %" PRIu64 " in pool '%.128s'", *seq, pool);
        else if (*reason)
            snprintf (what, sizeof what, "pool '%.128s'", pool);
        else
            snprintf (what, sizeof what, "no such pool '%.128s' (or DLQ entry)", pool);
    } else if (error->code == HERALD__ERROR_CODE__UNKNOWN_COMMAND)
        snprintf (what, sizeof what, "the broker does not support %s (older version?)",
                  hd_command_name (command));
    else
        snprintf (what, sizeof what, "broker refused %s: %s", hd_command_name (command),
                  hd_error_name (error->code));
    if (error->code == HERALD__ERROR_CODE__NOT_FOUND && *reason && !strstr (what, "no "))
        //  "seq 5 in pool 'orders': the event is no longer in the log"
        snprintf (error->text, sizeof error->text, "%.250s: %.240s", what, reason);
    else if (*reason && error->code != HERALD__ERROR_CODE__NOT_FOUND &&
             error->code != HERALD__ERROR_CODE__UNKNOWN_COMMAND)
        snprintf (error->text, sizeof error->text, "%.250s (broker: %.240s)", what, reason);
    else
        snprintf (error->text, sizeof error->text, "%s", what);
}

static void
s_error_reset (hd_admin_error_t *error)
{
    error->failure = HD_ADMIN_OK;
    error->code = 0;
    error->text[0] = 0;
}

Herald__DlqList *
hd_admin_dlq_list (const char *endpoint, const char *pool, uint64_t from_seq, uint32_t limit,
                   int timeout_ms, hd_admin_error_t *error)
{
    hd_admin_error_t dummy;
    if (!error)
        error = &dummy;
    s_error_reset (error);
    Herald__DlqRequest request = HERALD__DLQ_REQUEST__INIT;
    request.pool = (char *) (pool ? pool : "");
    request.from_seq = from_seq;
    request.limit = limit;
    s_link_t link;
    if (s_open (&link, endpoint, timeout_ms, error))
        return NULL;
    Herald__DlqList *list = NULL;
    hd_frames_t reply;
    if (s_exchange (&link, HD_CMD_DLQ_LIST, &request.base, HD_CMD_DLQ_LIST_REPLY, 2, &reply,
                    error) == 0) {
        list =
            herald__dlq_list__unpack (NULL, hd_frames_size (&reply, 1), hd_frames_data (&reply, 1));
        hd_frames_close (&reply);
        if (!list)
            s_fail (error, HD_ADMIN_BAD_REPLY, "broker sent a DLQ_LIST_REPLY that does not parse");
    } else if (error->failure == HD_ADMIN_REFUSED)
        s_explain_refusal (error, HD_CMD_DLQ_LIST, request.pool, NULL);
    s_close (&link);
    return list;
}

Herald__DlqEntry *
hd_admin_dlq_show (const char *endpoint, const char *pool, uint64_t seq, hd_event_t **event_p,
                   int timeout_ms, hd_admin_error_t *error)
{
    hd_admin_error_t dummy;
    if (!error)
        error = &dummy;
    s_error_reset (error);
    if (event_p)
        *event_p = NULL;
    Herald__DlqRequest request = HERALD__DLQ_REQUEST__INIT;
    request.pool = (char *) (pool ? pool : "");
    request.seqs = &seq;
    request.n_seqs = 1;
    request.from_seq = seq; // for a broker that reads the single seq from there
    s_link_t link;
    if (s_open (&link, endpoint, timeout_ms, error))
        return NULL;
    Herald__DlqEntry *entry = NULL;
    hd_frames_t reply;
    if (s_exchange (&link, HD_CMD_DLQ_SHOW, &request.base, HD_CMD_DLQ_EVENT, 4, &reply, error) ==
        0) {
        entry = herald__dlq_entry__unpack (NULL, hd_frames_size (&reply, 1),
                                           hd_frames_data (&reply, 1));
        hd_event_t *event = entry ? hd_event_decode (hd_frames_data (&reply, 2),
                                                     hd_frames_size (&reply, 2), &reply.frame[3])
                                  : NULL;
        hd_frames_close (&reply);
        if (!event) {
            if (entry)
                herald__dlq_entry__free_unpacked (entry, NULL);
            entry = NULL;
            s_fail (error, HD_ADMIN_BAD_REPLY, "broker sent a DLQ_EVENT that does not parse");
        } else if (event_p)
            *event_p = event;
        else
            hd_event_destroy (&event);
    } else if (error->failure == HD_ADMIN_REFUSED)
        s_explain_refusal (error, HD_CMD_DLQ_SHOW, request.pool, &seq);
    s_close (&link);
    return entry;
}

//  DLQ_REPLAY or DLQ_PURGE of a selection, in chunks of listed seqs.
static int64_t
s_dlq_act (hd_command_t command, const char *endpoint, const char *pool,
           const hd_admin_selection_t *selection, int timeout_ms, hd_admin_error_t *error)
{
    hd_admin_error_t dummy;
    if (!error)
        error = &dummy;
    s_error_reset (error);
    const char *verb = command == HD_CMD_DLQ_REPLAY ? "replayed" : "purged";
    //  An empty request could read as "from 0 on" to a broker: never send one
    if (!selection || (selection->seq_count == 0 && !selection->all && selection->from_seq == 0)) {
        s_fail (error, HD_ADMIN_LOCAL, "empty selection: give seqs, a range or all");
        return -1;
    }
    if (selection->seq_count == 0 && !selection->all && selection->to_seq &&
        selection->to_seq < selection->from_seq) {
        s_fail (error, HD_ADMIN_LOCAL, "empty range %" PRIu64 "..%" PRIu64, selection->from_seq,
                selection->to_seq);
        return -1;
    }
    s_link_t link;
    if (s_open (&link, endpoint, timeout_ms, error))
        return -1;
    int64_t total = 0;
    bool failed = false;
    size_t offset = 0;
    do {
        Herald__DlqRequest request = HERALD__DLQ_REQUEST__INIT;
        request.pool = (char *) (pool ? pool : "");
        if (selection->seq_count > 0) {
            size_t chunk = selection->seq_count - offset;
            if (chunk > S_SEQS_PER_REQUEST)
                chunk = S_SEQS_PER_REQUEST;
            request.seqs = (uint64_t *) selection->seqs + offset;
            request.n_seqs = chunk;
            offset += chunk;
        } else if (selection->all)
            request.all = true;
        else {
            request.from_seq = selection->from_seq;
            request.to_seq = selection->to_seq;
        }
        hd_frames_t reply;
        if (s_exchange (&link, command, &request.base, HD_CMD_DLQ_DONE, 2, &reply, error)) {
            if (error->failure == HD_ADMIN_REFUSED)
                s_explain_refusal (error, command, request.pool,
                                   request.n_seqs == 1 ? request.seqs : NULL);
            failed = true;
        } else {
            Herald__DlqDone *done = herald__dlq_done__unpack (NULL, hd_frames_size (&reply, 1),
                                                              hd_frames_data (&reply, 1));
            hd_frames_close (&reply);
            if (done) {
                total += (int64_t) done->count;
                herald__dlq_done__free_unpacked (done, NULL);
            } else {
                s_fail (error, HD_ADMIN_BAD_REPLY, "broker sent a DLQ_DONE that does not parse");
                failed = true;
            }
        }
    } while (!failed && offset < selection->seq_count);
    if (failed && total > 0) {
        //  Earlier requests went through: say so
        size_t length = strlen (error->text);
        snprintf (error->text + length, sizeof error->text - length,
                  "; %" PRId64 " entries were %s before that", total, verb);
    }
    s_close (&link);
    return failed ? -1 : total;
}

int64_t
hd_admin_dlq_replay (const char *endpoint, const char *pool, const hd_admin_selection_t *selection,
                     int timeout_ms, hd_admin_error_t *error)
{
    return s_dlq_act (HD_CMD_DLQ_REPLAY, endpoint, pool, selection, timeout_ms, error);
}

int64_t
hd_admin_dlq_purge (const char *endpoint, const char *pool, const hd_admin_selection_t *selection,
                    int timeout_ms, hd_admin_error_t *error)
{
    return s_dlq_act (HD_CMD_DLQ_PURGE, endpoint, pool, selection, timeout_ms, error);
}

//  A growing string; on allocation failure it goes to failed and stays there.
typedef struct {
    char *data;
    size_t size;
    size_t capacity;
    bool failed;
} s_buffer_t;

static void
s_append (s_buffer_t *buffer, const char *format, ...)
{
    if (buffer->failed)
        return;
    va_list args;
    va_start (args, format);
    va_list copy;
    va_copy (copy, args);
    int needed = vsnprintf (NULL, 0, format, copy);
    va_end (copy);
    if (needed < 0) {
        buffer->failed = true;
        va_end (args);
        return;
    }
    if (buffer->size + (size_t) needed + 1 > buffer->capacity) {
        size_t capacity = (buffer->capacity ? buffer->capacity * 2 : 1024) + (size_t) needed;
        char *grown = realloc (buffer->data, capacity);
        if (!grown) {
            buffer->failed = true;
            va_end (args);
            return;
        }
        buffer->data = grown;
        buffer->capacity = capacity;
    }
    vsnprintf (buffer->data + buffer->size, buffer->capacity - buffer->size, format, args);
    buffer->size += (size_t) needed;
    va_end (args);
}

static void
s_append_string (s_buffer_t *buffer, const char *text)
{
    s_append (buffer, "\"");
    for (const unsigned char *c = (const unsigned char *) (text ? text : ""); *c; c++) {
        switch (*c) {
            case '"': s_append (buffer, "\\\""); break;
            case '\\': s_append (buffer, "\\\\"); break;
            case '\n': s_append (buffer, "\\n"); break;
            case '\r': s_append (buffer, "\\r"); break;
            case '\t': s_append (buffer, "\\t"); break;
            case '\b': s_append (buffer, "\\b"); break;
            case '\f': s_append (buffer, "\\f"); break;
            default:
                if (*c < 0x20 || *c == 0x7F)
                    s_append (buffer, "\\u%04x", *c);
                else
                    s_append (buffer, "%c", *c);
        }
    }
    s_append (buffer, "\"");
}

//  JSON has no NaN or infinity
static double
s_finite (double value)
{
    return isfinite (value) ? value : 0.0;
}

char *
hd_admin_stats_to_json (const Herald__Stats *stats)
{
    s_buffer_t buffer = {0};
    s_append (
        &buffer,
        "{\"uptime_ms\":%" PRIu64 ",\"epoch\":%" PRIu64 ",\"published\":%" PRIu64
        ",\"duplicates\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"malformed\":%" PRIu64
        ",\"subscribers\":%" PRIu32 ",\"subscriptions\":%" PRIu32 ",\"subscriber_gaps\":%" PRIu64
        ",\"fanout_sent\":%" PRIu64 ",\"store_events\":%" PRIu64 ",\"store_bytes\":%" PRIu64
        ",\"sessions\":%" PRIu32
        ",\"publish_rate\":%.3f,\"deliver_rate\":%.3f,\"dedup_entries\":%" PRIu64
        ",\"expired_sessions\":%" PRIu64 ",\"log_first_seq\":%" PRIu64 ",\"log_next_seq\":%" PRIu64
        ",\"log_bytes\":%" PRIu64 ",\"fsyncs\":%" PRIu64 ",\"storage_rejects\":%" PRIu64
        ",\"recovered_events\":%" PRIu64 ",\"recovery_ms\":%" PRIu64 ",\"deliveries\":%" PRIu64
        ",\"delivery_batches\":%" PRIu64 ",\"fanout_batches\":%" PRIu64
        ",\"log_spare_bytes\":%" PRIu64 ",\"log_segments_prepared\":%" PRIu64
        ",\"log_segments_appended\":%" PRIu64 ",\"commits\":%" PRIu64
        ",\"commit_events_max\":%" PRIu64 ",\"settle_deliveries\":%" PRIu64
        ",\"cache_events\":%" PRIu64 ",\"cache_bytes\":%" PRIu64 ",\"turns\":%" PRIu64
        ",\"loop_busy_us\":%" PRIu64 ",\"cpu_user_us\":%" PRIu64 ",\"cpu_system_us\":%" PRIu64
        ",\"log_page_cache_released\":%" PRIu64 ",\"fsync\":",
        (uint64_t) stats->uptime_ms, (uint64_t) stats->epoch, (uint64_t) stats->published,
        (uint64_t) stats->duplicates, (uint64_t) stats->rejected, (uint64_t) stats->malformed,
        (uint32_t) stats->subscribers, (uint32_t) stats->subscriptions,
        (uint64_t) stats->subscriber_gaps, (uint64_t) stats->fanout_sent,
        (uint64_t) stats->store_events, (uint64_t) stats->store_bytes, (uint32_t) stats->sessions,
        s_finite (stats->publish_rate), s_finite (stats->deliver_rate),
        (uint64_t) stats->dedup_entries, (uint64_t) stats->expired_sessions,
        (uint64_t) stats->log_first_seq, (uint64_t) stats->log_next_seq,
        (uint64_t) stats->log_bytes, (uint64_t) stats->fsyncs, (uint64_t) stats->storage_rejects,
        (uint64_t) stats->recovered_events, (uint64_t) stats->recovery_ms,
        (uint64_t) stats->deliveries, (uint64_t) stats->delivery_batches,
        (uint64_t) stats->fanout_batches, (uint64_t) stats->log_spare_bytes,
        (uint64_t) stats->log_segments_prepared, (uint64_t) stats->log_segments_appended,
        (uint64_t) stats->commits, (uint64_t) stats->commit_events_max,
        (uint64_t) stats->settle_deliveries, (uint64_t) stats->cache_events,
        (uint64_t) stats->cache_bytes, (uint64_t) stats->turns, (uint64_t) stats->loop_busy_us,
        (uint64_t) stats->cpu_user_us, (uint64_t) stats->cpu_system_us,
        (uint64_t) stats->log_page_cache_released);
    s_append_string (&buffer, stats->fsync);
    s_append (&buffer, ",\"pools\":[");
    for (size_t index = 0; index < stats->n_pools; index++) {
        const Herald__PoolStats *pool = stats->pools[index];
        s_append (&buffer, "%s{\"name\":", index ? "," : "");
        s_append_string (&buffer, pool->name);
        s_append (&buffer, ",\"filter\":");
        s_append_string (&buffer, pool->filter);
        s_append (&buffer,
                  ",\"workers\":%" PRIu32 ",\"pending\":%" PRIu64 ",\"inflight\":%" PRIu64
                  ",\"acked\":%" PRIu64 ",\"delivered\":%" PRIu64 ",\"redelivered\":%" PRIu64
                  ",\"terminated\":%" PRIu64 ",\"nacked\":%" PRIu64 ",\"expired\":%" PRIu64
                  ",\"stale\":%" PRIu64 ",\"oldest_pending_ms\":%" PRIu64 ",\"dlq\":%" PRIu64
                  ",\"dlq_dropped\":%" PRIu64 ",\"ordered\":%s,\"max_deliver\":%" PRIu32
                  ",\"floor\":%" PRIu64 ",\"cursor\":%" PRIu64 ",\"lost\":%" PRIu64
                  ",\"blocked\":%" PRIu64 ",\"runs\":%" PRIu64 ",\"run_events\":%" PRIu64 "}",
                  (uint32_t) pool->workers, (uint64_t) pool->pending, (uint64_t) pool->inflight,
                  (uint64_t) pool->acked, (uint64_t) pool->delivered, (uint64_t) pool->redelivered,
                  (uint64_t) pool->terminated, (uint64_t) pool->nacked, (uint64_t) pool->expired,
                  (uint64_t) pool->stale, (uint64_t) pool->oldest_pending_ms, (uint64_t) pool->dlq,
                  (uint64_t) pool->dlq_dropped, pool->ordered ? "true" : "false",
                  (uint32_t) pool->max_deliver, (uint64_t) pool->floor, (uint64_t) pool->cursor,
                  (uint64_t) pool->lost, (uint64_t) pool->blocked, (uint64_t) pool->runs,
                  (uint64_t) pool->run_events);
    }
    s_append (&buffer, "]}");
    if (buffer.failed) {
        free (buffer.data);
        return NULL;
    }
    return buffer.data;
}

char *
hd_admin_stats_json (const char *broker_endpoint, int timeout_ms, const char **error)
{
    Herald__Stats *stats = hd_admin_stats (broker_endpoint, timeout_ms, error);
    if (!stats)
        return NULL;
    char *json = hd_admin_stats_to_json (stats);
    herald__stats__free_unpacked (stats, NULL);
    if (!json && error)
        *error = "out of memory";
    return json;
}
