/*  subscriber — live fan-out over SUB, with per-type gap counting
    (PROTOCOL.md section 7) and optional reports to the broker.
*/
#include "herald.h"
#include "event.h"

#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define HD_SUBSCRIBER_REPORT_MS 1000

struct _hd_subscriber_t {
    zsock_t *sub;
    zsock_t *reporter; // DEALER to the broker, NULL without a broker endpoint
    char *name;
    zhashx_t *last_seq; // type → s_type_counter_t
    //  The last type looked up: events come in runs of one type
    struct _s_type_counter_t *recent;
    uint64_t epoch;
    bool have_epoch;
    uint64_t received;
    uint64_t gaps;
    uint64_t malformed;
    int64_t report_due;
    //  Events of a FanoutBatch not yet returned, oldest at queue[queue_head]
    hd_event_t **queue;
    size_t queue_head, queue_count, queue_capacity;
    char error[256];
};

static void
s_set_error (hd_subscriber_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
}

//  A type's last type_seq seen, with the type it counts
typedef struct _s_type_counter_t {
    uint64_t last;
    char type[];
} s_type_counter_t;

static void
s_counter_free (void **item)
{
    free (*item);
    *item = NULL;
}

hd_subscriber_t *
hd_subscriber_new (const char *xpub_endpoint, const char *broker_endpoint)
{
    hd_subscriber_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->sub = zsock_new (ZMQ_SUB);
    self->last_seq = zhashx_new ();
    self->name = zsys_hostname ();
    if (!self->sub || !self->last_seq) {
        hd_subscriber_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->last_seq, s_counter_free);
    zhashx_set_duplicator (self->last_seq, NULL);
    if (zsock_connect (self->sub, "%s", xpub_endpoint ? xpub_endpoint : HERALD_DEFAULT_XPUB)) {
        hd_subscriber_destroy (&self);
        return NULL;
    }
    if (broker_endpoint && *broker_endpoint) {
        self->reporter = zsock_new (ZMQ_DEALER);
        //  Reports are snapshots: a stale one queued behind a dead link is
        //  worthless. Set before connect: a pipe keeps the HWM it began with.
        if (self->reporter)
            zsock_set_sndhwm (self->reporter, 1);
        if (!self->reporter || zsock_connect (self->reporter, "%s", broker_endpoint)) {
            hd_subscriber_destroy (&self);
            return NULL;
        }
        self->report_due = zclock_mono () + HD_SUBSCRIBER_REPORT_MS;
    }
    return self;
}

void
hd_subscriber_destroy (hd_subscriber_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_subscriber_t *self = *self_p;
    if (self->sub) {
        zsock_set_linger (self->sub, 0);
        zsock_destroy (&self->sub);
    }
    if (self->reporter) {
        zsock_set_linger (self->reporter, 0);
        zsock_destroy (&self->reporter);
    }
    zhashx_destroy (&self->last_seq);
    for (size_t index = 0; index < self->queue_count; index++)
        hd_event_destroy (&self->queue[self->queue_head + index]);
    free (self->queue);
    free (self->name);
    free (self);
    *self_p = NULL;
}

void
hd_subscriber_set_name (hd_subscriber_t *self, const char *name)
{
    char *copy = strdup (name ? name : "");
    if (copy) {
        free (self->name);
        self->name = copy;
    }
}

int
hd_subscriber_subscribe (hd_subscriber_t *self, const char *prefix)
{
    zsock_set_subscribe (self->sub, prefix ? prefix : "");
    return 0;
}

static void
s_send_report (hd_subscriber_t *self)
{
    Herald__SubscriberReport report = HERALD__SUBSCRIBER_REPORT__INIT;
    report.name = self->name ? self->name : (char *) "";
    report.received = self->received;
    report.gaps = self->gaps;
    hd_send_command (zsock_resolve (self->reporter), NULL, 0, HD_CMD_SUBSCRIBER, &report.base,
                     ZMQ_DONTWAIT);
    //  The broker has nothing to tell a reporter we act on; keep the queue empty
    hd_frames_t frames;
    while (hd_frames_recv (&frames, zsock_resolve (self->reporter), ZMQ_DONTWAIT) == 0)
        hd_frames_close (&frames);
}

//  The counter of a type's last type_seq, created at 0; NULL on no memory.
static uint64_t *
s_type_counter (hd_subscriber_t *self, const char *type)
{
    if (self->recent && strcmp (self->recent->type, type) == 0)
        return &self->recent->last;
    s_type_counter_t *counter = zhashx_lookup (self->last_seq, type);
    if (!counter) {
        size_t size = strlen (type) + 1;
        counter = calloc (1, sizeof *counter + size);
        if (!counter)
            return NULL;
        memcpy (counter->type, type, size);
        if (zhashx_insert (self->last_seq, type, counter)) {
            free (counter);
            return NULL;
        }
    }
    self->recent = counter;
    return &counter->last;
}

//  Account for one event's epoch and type_seq: a jump in type_seq is a loss.
static void
s_track_gap (hd_subscriber_t *self, const char *type, uint64_t epoch, uint64_t type_seq)
{
    if (!self->have_epoch || epoch != self->epoch) {
        zhashx_purge (self->last_seq);
        self->recent = NULL;
        self->epoch = epoch;
        self->have_epoch = true;
    }
    uint64_t *last = s_type_counter (self, type);
    if (!last)
        return;
    if (*last && type_seq > *last + 1)
        self->gaps += type_seq - *last - 1;
    //  The first event of a type sets the baseline: what came before we
    //  joined was not lost to us
    if (type_seq > *last)
        *last = type_seq;
}

static int
s_queue_push (hd_subscriber_t *self, hd_event_t *event)
{
    if (self->queue_count == 0)
        self->queue_head = 0;
    if (self->queue_head + self->queue_count == self->queue_capacity) {
        size_t capacity = self->queue_capacity ? self->queue_capacity * 2 : 64;
        hd_event_t **queue = realloc (self->queue, capacity * sizeof *queue);
        if (!queue)
            return -1;
        self->queue = queue;
        self->queue_capacity = capacity;
    }
    self->queue[self->queue_head + self->queue_count++] = event;
    return 0;
}

static hd_event_t *
s_queue_pop (hd_subscriber_t *self)
{
    if (self->queue_count == 0)
        return NULL;
    self->queue_count--;
    return self->queue[self->queue_head++];
}

//  [type][FanoutBatch]: every item is queued (payloads copied out of the
//  body); a malformed rest is counted once.
static void
s_decode_batch (hd_subscriber_t *self, hd_frames_t *frames)
{
    const uint8_t *cursor = hd_frames_data (frames, 1);
    const uint8_t *end = cursor + hd_frames_size (frames, 1);
    hd_fanout_view_t item;
    int rc;
    while ((rc = hd_decode_fanout_item (&cursor, end, &item)) == 1) {
        hd_event_t *event = hd_event_decode_bytes (item.envelope, item.envelope_size, item.payload,
                                                   item.payload_size);
        if (!event || s_queue_push (self, event) != 0) {
            hd_event_destroy (&event);
            self->malformed++;
            continue;
        }
        self->received++;
        s_track_gap (self, hd_event_type (event), item.epoch, item.type_seq);
    }
    if (rc < 0)
        self->malformed++;
}

//  Decode [type][Fanout][Event][payload]; NULL (counted) on anything else.
static hd_event_t *
s_decode (hd_subscriber_t *self, hd_frames_t *frames)
{
    if (frames->count == 2 && !frames->truncated) {
        s_decode_batch (self, frames);
        return s_queue_pop (self);
    }
    if (frames->count != 4 || frames->truncated) {
        self->malformed++;
        return NULL;
    }
    Herald__Fanout *fanout =
        herald__fanout__unpack (NULL, hd_frames_size (frames, 1), hd_frames_data (frames, 1));
    hd_event_t *event = fanout ? hd_event_decode (hd_frames_data (frames, 2),
                                                  hd_frames_size (frames, 2), &frames->frame[3])
                               : NULL;
    if (!event) {
        if (fanout)
            herald__fanout__free_unpacked (fanout, NULL);
        self->malformed++;
        return NULL;
    }
    self->received++;
    s_track_gap (self, hd_event_type (event), fanout->epoch, fanout->type_seq);
    herald__fanout__free_unpacked (fanout, NULL);
    return event;
}

hd_event_t *
hd_subscriber_recv (hd_subscriber_t *self, int timeout_ms)
{
    hd_event_t *queued = s_queue_pop (self);
    if (queued)
        return queued;
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
    void *handle = zsock_resolve (self->sub);
    while (!zsys_interrupted) {
        int64_t now = zclock_mono ();
        if (self->reporter && now >= self->report_due) {
            s_send_report (self);
            self->report_due = now + HD_SUBSCRIBER_REPORT_MS;
        }
        //  What is already queued needs no poll
        hd_frames_t ready;
        if (hd_frames_recv (&ready, handle, ZMQ_DONTWAIT) == 0) {
            hd_event_t *event = s_decode (self, &ready);
            hd_frames_close (&ready);
            if (event)
                return event;
            continue;
        }
        int64_t wait = deadline < 0 ? -1 : deadline - now;
        if (deadline >= 0 && wait < 0)
            wait = 0;
        if (self->reporter && (wait < 0 || self->report_due - now < wait))
            wait = self->report_due - now;
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll (&item, 1, (long) wait);
        if (rc == -1) {
            if (errno == EINTR)
                continue; // zsys_interrupted decides
            s_set_error (self, "poll failed: %s", zmq_strerror (errno));
            return NULL;
        }
        if (rc > 0) {
            hd_frames_t frames;
            if (hd_frames_recv (&frames, handle, ZMQ_DONTWAIT) == 0) {
                hd_event_t *event = s_decode (self, &frames);
                hd_frames_close (&frames);
                if (event)
                    return event;
            }
            continue;
        }
        if (deadline >= 0 && zclock_mono () >= deadline)
            return NULL;
    }
    s_set_error (self, "interrupted");
    return NULL;
}

uint64_t
hd_subscriber_received (hd_subscriber_t *self)
{
    return self->received;
}

uint64_t
hd_subscriber_gaps (hd_subscriber_t *self)
{
    return self->gaps;
}

uint64_t
hd_subscriber_malformed (hd_subscriber_t *self)
{
    return self->malformed;
}

const char *
hd_subscriber_error (hd_subscriber_t *self)
{
    return self->error;
}
