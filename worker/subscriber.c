/*  subscriber — live fan-out over SUB, with per-type gap counting
    (PROTOCOL.md section 7) and optional reports to the broker.
*/
#include "herald.h"
#include "event.h"

#include <assert.h>
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
    //  The FanoutBatch being returned, one event per recv: decoding each
    //  item only when it is asked for keeps one event alive at a time, so
    //  its memory is the last one's, still warm, rather than a batch's worth
    hd_frames_t batch;
    bool batch_open;
    const uint8_t *batch_cursor, *batch_end;
    hd_event_spares_t spare; // hd_subscriber_recycle's one, for the next item to decode into
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
    self->spare.max = 1;
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
    if (self->batch_open)
        hd_frames_close (&self->batch);
    hd_event_spares_drain (&self->spare);
    free (self->name);
    free (self);
    *self_p = NULL;
}

void
hd_subscriber_recycle (hd_subscriber_t *self, hd_event_t **event_p)
{
    if (event_p)
        hd_event_spares_keep (&self->spare, event_p);
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

//  The next event of the open batch, NULL when it has no more (the batch
//  is then closed). Items that do not decode are counted and skipped; a
//  malformed rest is counted once.
static hd_event_t *
s_batch_next (hd_subscriber_t *self)
{
    if (!self->batch_open)
        return NULL;
    hd_fanout_view_t item;
    int rc;
    while ((rc = hd_decode_fanout_item (&self->batch_cursor, self->batch_end, &item)) == 1) {
        hd_event_t *spare = hd_event_spares_take (&self->spare);
        hd_event_t *event = hd_event_decode_bytes_into (&spare, item.envelope, item.envelope_size,
                                                        item.payload, item.payload_size);
        if (!event) {
            self->malformed++;
            continue;
        }
        self->received++;
        s_track_gap (self, hd_event_type (event), item.epoch, item.type_seq);
        return event;
    }
    if (rc < 0)
        self->malformed++;
    hd_frames_close (&self->batch);
    self->batch_open = false;
    return NULL;
}

//  Decode [type][Fanout][Event][payload]; NULL (counted) on anything else.
static hd_event_t *
s_decode (hd_subscriber_t *self, hd_frames_t *frames)
{
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

//  Takes one message already queued on the socket into self->batch:
//  returns 0 and its first event in *event (NULL when it had none to
//  give), or -1 when nothing was queued. A batch stays open for the
//  calls after; a single event's frames are closed at once.
static int
s_receive (hd_subscriber_t *self, void *handle, hd_event_t **event)
{
    assert (!self->batch_open);
    if (hd_frames_recv (&self->batch, handle, ZMQ_DONTWAIT) != 0)
        return -1;
    if (self->batch.count == 2 && !self->batch.truncated) {
        self->batch_open = true;
        self->batch_cursor = hd_frames_data (&self->batch, 1);
        self->batch_end = self->batch_cursor + hd_frames_size (&self->batch, 1);
        *event = s_batch_next (self);
        return 0;
    }
    *event = s_decode (self, &self->batch);
    hd_frames_close (&self->batch);
    return 0;
}

hd_event_t *
hd_subscriber_recv (hd_subscriber_t *self, int timeout_ms)
{
    hd_event_t *event = s_batch_next (self);
    if (event)
        return event;
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
    void *handle = zsock_resolve (self->sub);
    while (!zsys_interrupted) {
        int64_t now = zclock_mono ();
        if (self->reporter && now >= self->report_due) {
            s_send_report (self);
            self->report_due = now + HD_SUBSCRIBER_REPORT_MS;
        }
        //  What is already queued needs no poll
        if (s_receive (self, handle, &event) == 0) {
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
        if (rc > 0)
            continue; // the receive at the top of the loop takes it
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
