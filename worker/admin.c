/*  admin — STATS request and its JSON rendering. */
#include "admin.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

Herald__Stats *
hd_admin_stats (const char *endpoint, int timeout_ms, const char **error)
{
    const char *dummy;
    if (!error)
        error = &dummy;
    zsock_t *socket = zsock_new (ZMQ_DEALER);
    if (!socket) {
        *error = "cannot create socket";
        return NULL;
    }
    zsock_set_linger (socket, 0);
    if (zsock_connect (socket, "%s", endpoint ? endpoint : HERALD_DEFAULT_BROKER)) {
        zsock_destroy (&socket);
        *error = "invalid broker endpoint";
        return NULL;
    }
    void *handle = zsock_resolve (socket);
    Herald__Stats *stats = NULL;
    *error = "timed out waiting for the broker";
    if (hd_send_command (handle, NULL, 0, HD_CMD_STATS, NULL, 0)) {
        *error = "cannot send STATS";
        zsock_destroy (&socket);
        return NULL;
    }
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
    while (!stats) {
        long wait = -1;
        if (deadline >= 0) {
            wait = (long) (deadline - zclock_mono ());
            if (wait <= 0)
                break;
        }
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll (&item, 1, wait);
        if (zsys_interrupted || (rc == -1 && errno != EINTR)) {
            *error = "interrupted";
            break;
        }
        if (rc <= 0)
            continue;
        hd_frames_t frames;
        if (hd_frames_recv (&frames, handle, ZMQ_DONTWAIT))
            continue;
        int command = 0;
        if (frames.count >= 2 && hd_header_decode (hd_frames_data (&frames, 0),
                                                   hd_frames_size (&frames, 0), &command) == 0) {
            if (command == HD_CMD_STATS_REPLY) {
                stats = herald__stats__unpack (NULL, hd_frames_size (&frames, 1),
                                               hd_frames_data (&frames, 1));
                if (!stats) {
                    *error = "broker sent a STATS_REPLY that does not parse";
                    hd_frames_close (&frames);
                    break;
                }
            } else if (command == HD_CMD_ERROR) {
                *error = "broker refused STATS";
                hd_frames_close (&frames);
                break;
            }
        }
        hd_frames_close (&frames);
    }
    zsock_destroy (&socket);
    if (stats)
        *error = NULL;
    return stats;
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
    s_append (&buffer,
              "{\"uptime_ms\":%" PRIu64 ",\"epoch\":%" PRIu64 ",\"published\":%" PRIu64
              ",\"duplicates\":%" PRIu64 ",\"rejected\":%" PRIu64 ",\"malformed\":%" PRIu64
              ",\"subscribers\":%" PRIu32 ",\"subscriptions\":%" PRIu32
              ",\"subscriber_gaps\":%" PRIu64 ",\"drops\":%" PRIu64 ",\"fanout_sent\":%" PRIu64
              ",\"store_events\":%" PRIu64 ",\"store_bytes\":%" PRIu64 ",\"sessions\":%" PRIu32
              ",\"publish_rate\":%.3f,\"deliver_rate\":%.3f,\"dedup_entries\":%" PRIu64
              ",\"expired_sessions\":%" PRIu64 ",\"pools\":[",
              (uint64_t) stats->uptime_ms, (uint64_t) stats->epoch, (uint64_t) stats->published,
              (uint64_t) stats->duplicates, (uint64_t) stats->rejected, (uint64_t) stats->malformed,
              (uint32_t) stats->subscribers, (uint32_t) stats->subscriptions,
              (uint64_t) stats->subscriber_gaps, (uint64_t) stats->subscriber_gaps,
              (uint64_t) stats->fanout_sent, (uint64_t) stats->store_events,
              (uint64_t) stats->store_bytes, (uint32_t) stats->sessions,
              s_finite (stats->publish_rate), s_finite (stats->deliver_rate),
              (uint64_t) stats->dedup_entries, (uint64_t) stats->expired_sessions);
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
                  ",\"stale\":%" PRIu64 ",\"oldest_pending_ms\":%" PRIu64 "}",
                  (uint32_t) pool->workers, (uint64_t) pool->pending, (uint64_t) pool->inflight,
                  (uint64_t) pool->acked, (uint64_t) pool->delivered, (uint64_t) pool->redelivered,
                  (uint64_t) pool->terminated, (uint64_t) pool->nacked, (uint64_t) pool->expired,
                  (uint64_t) pool->stale, (uint64_t) pool->oldest_pending_ms);
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
