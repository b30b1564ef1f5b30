/*  publisher — PUBLISH with a window of unconfirmed events.

    Every unconfirmed event sits on exactly one of two lists: the outbox
    (to be sent as soon as the socket takes it) or waiting (sent, ordered by
    the time it is due to be sent again). A reply finds its event by corr in
    an index on the corr's low bits (s_index_t). Resends keep the corr, so
    a late reply to the first copy settles the event and the reply to the
    second finds nothing and is ignored. The socket is ZMQ_IMMEDIATE: while
    the broker is unreachable, sends fail at once instead of piling copies
    into a dead pipe, and the events stay in the outbox until a connection
    is up.
*/
#include "herald.h"
#include "event.h"
#include "envelope.h"
#include "buffer.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

typedef struct _s_pending_t s_pending_t;
typedef struct _s_list_t s_list_t;

struct _s_list_t {
    s_pending_t *head;
    s_pending_t *tail;
    size_t count;
};

//  Batching (PUBLISHES): while at least hold_unconfirmed events are out and
//  unconfirmed, new events wait in the outbox until batch_events of them
//  are there, a reply comes, or the caller polls or flushes. A lone event
//  on a quiet connection goes at once. Payloads larger than
//  S_BATCH_PAYLOAD_MAX go alone as PUBLISH, their frame shared, not copied.
#define S_BATCH_EVENTS_MAX  128
#define S_HOLD_MAX          32
#define S_BATCH_PAYLOAD_MAX 4096
#define S_BATCH_BYTES_MAX   (256 * 1024)

//  Looking for replies between publishes: every hold / 2 publishes, but at
//  full speed (where that is every ~30 us) no sooner than S_LOOK_GAP_US
//  after the last look, and at least every S_LOOK_MOST publishes. A look
//  that finds nothing costs libzmq two system calls (getpid and poll), and
//  on a paravirtualised host a system call costs more than its own time
//  (the TLB and caches it disturbs). With a look every 16 publishes, a W1
//  publisher made 157 000 system calls per million events, 41 500 with the
//  gap, and W1 took 10-14 % less CPU an event (docs/PERFORMANCE.md).
//  Replies come once per broker turn, every few hundred events at that
//  speed; a publisher whose window is full waits in zmq_poll, which sees a
//  reply at once.
#define S_LOOK_GAP_US 100
#define S_LOOK_MOST   256

struct _s_pending_t {
    s_pending_t *prev;
    s_pending_t *next;
    s_list_t *list;         // the list holding this entry
    s_pending_t *slot_next; // the next entry in its slot of the index
    uint64_t corr;
    hd_event_t *event;
    size_t event_size; // encoded, without the payload: events do not change once published
    int64_t due_ms;    // on waiting: when to send again
    bool sent;         // sent at least once (a further send is a resend)
};

//  Unconfirmed entries by corr. Corrs are handed out in order, at most a
//  window of them unconfirmed at a time, so a table of at least twice the
//  window, indexed by a corr's low bits, holds one entry in a slot; an
//  entry left far behind (resent for a long time) shares its slot with the
//  few that come round to it, chained through slot_next. A hash table
//  scatters consecutive keys and costs several times more per event.
typedef struct {
    s_pending_t **slots;
    size_t mask;
    size_t count;
} s_index_t;

struct _hd_publisher_t {
    zsock_t *socket;
    char *source;
    uint32_t window;
    uint32_t retry_ms;
    hd_confirm_fn *confirm_fn;
    void *confirm_arg;
    s_index_t pending;              // corr → s_pending_t *
    hd_reuse_t spare;               // settled entries kept for reuse, at most a window of them
    hd_event_spares_t spare_events; // settled events for hd_publisher_event_new, likewise
    s_list_t outbox;
    s_list_t waiting;
    bool blocked;       // the last send found the socket full: poll for POLLOUT
    uint32_t undrained; // publishes since replies were last looked for
    int64_t looked_us;  // when they were (zclock_usecs)
    uint64_t next_corr;
    uint64_t confirmed;
    uint64_t duplicates;
    uint64_t rejected;
    uint64_t resent;
    char error[256];
};

static void
s_list_remove (s_pending_t *entry)
{
    s_list_t *list = entry->list;
    if (!list)
        return;
    if (entry->prev)
        entry->prev->next = entry->next;
    else
        list->head = entry->next;
    if (entry->next)
        entry->next->prev = entry->prev;
    else
        list->tail = entry->prev;
    entry->prev = entry->next = NULL;
    entry->list = NULL;
    list->count--;
}

static void
s_list_append (s_list_t *list, s_pending_t *entry)
{
    s_list_remove (entry);
    entry->list = list;
    entry->prev = list->tail;
    entry->next = NULL;
    if (list->tail)
        list->tail->next = entry;
    else
        list->head = entry;
    list->tail = entry;
    list->count++;
}

//  Keeps waiting ordered by due_ms; most entries belong at the tail.
static void
s_waiting_insert (hd_publisher_t *self, s_pending_t *entry)
{
    s_list_remove (entry);
    s_pending_t *after = self->waiting.tail;
    while (after && after->due_ms > entry->due_ms)
        after = after->prev;
    entry->list = &self->waiting;
    entry->prev = after;
    entry->next = after ? after->next : self->waiting.head;
    if (entry->next)
        entry->next->prev = entry;
    else
        self->waiting.tail = entry;
    if (after)
        after->next = entry;
    else
        self->waiting.head = entry;
    self->waiting.count++;
}

//  Makes the index the smallest power of two of at least 64 slots and
//  twice window, moving the entries over. Returns 0, or -1 when out of
//  memory (the index is as it was: still correct, only slower once the
//  window outgrows it).
static int
s_index_fit (s_index_t *self, size_t window)
{
    size_t capacity = 64;
    while (capacity < 2 * window && capacity < ((size_t) 1 << 30))
        capacity *= 2;
    if (self->slots && capacity == self->mask + 1)
        return 0;
    s_pending_t **slots = calloc (capacity, sizeof *slots);
    if (!slots)
        return -1;
    for (size_t index = 0; self->slots && index <= self->mask; index++) {
        s_pending_t *entry = self->slots[index];
        while (entry) {
            s_pending_t *next = entry->slot_next;
            s_pending_t **slot = &slots[entry->corr & (capacity - 1)];
            entry->slot_next = *slot;
            *slot = entry;
            entry = next;
        }
    }
    free (self->slots);
    self->slots = slots;
    self->mask = capacity - 1;
    return 0;
}

static void
s_index_insert (s_index_t *self, s_pending_t *entry)
{
    s_pending_t **slot = &self->slots[entry->corr & self->mask];
    entry->slot_next = *slot;
    *slot = entry;
    self->count++;
}

static s_pending_t *
s_index_find (s_index_t *self, uint64_t corr)
{
    s_pending_t *entry = self->slots[corr & self->mask];
    while (entry && entry->corr != corr)
        entry = entry->slot_next;
    return entry;
}

static void
s_index_remove (s_index_t *self, s_pending_t *entry)
{
    s_pending_t **link = &self->slots[entry->corr & self->mask];
    while (*link && *link != entry)
        link = &(*link)->slot_next;
    assert (*link); // every unsettled entry is in the index
    *link = entry->slot_next;
    entry->slot_next = NULL;
    self->count--;
}

static void
s_set_error (hd_publisher_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
}

hd_publisher_t *
hd_publisher_new (const char *broker_endpoint, const char *source)
{
    hd_publisher_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->window = 1000;
    hd_reuse_init (&self->spare, self->window);
    self->spare_events.max = HD_SPARE_MAX ((size_t) self->window);
    self->retry_ms = 3000;
    self->source = source && *source ? strdup (source) : zsys_hostname ();
    if (!self->source)
        self->source = strdup ("herald");
    self->socket = zsock_new (ZMQ_DEALER);
    if (!self->source || s_index_fit (&self->pending, self->window) || !self->socket) {
        hd_publisher_destroy (&self);
        return NULL;
    }
    zsock_set_immediate (self->socket, 1);
    zsock_set_sndhwm (self->socket, 0);
    if (zsock_connect (self->socket, "%s",
                       broker_endpoint ? broker_endpoint : HERALD_DEFAULT_BROKER)) {
        hd_publisher_destroy (&self);
        return NULL;
    }
    return self;
}

void
hd_publisher_destroy (hd_publisher_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_publisher_t *self = *self_p;
    if (self->socket) {
        //  Unconfirmed events are the caller's loss to decide (flush first);
        //  do not let them hold up process exit
        zsock_set_linger (self->socket, 100);
        zsock_destroy (&self->socket);
    }
    for (size_t index = 0; self->pending.slots && index <= self->pending.mask; index++) {
        s_pending_t *entry = self->pending.slots[index];
        while (entry) {
            s_pending_t *next = entry->slot_next;
            hd_event_destroy (&entry->event);
            free (entry);
            entry = next;
        }
    }
    free (self->pending.slots);
    hd_reuse_drain (&self->spare);
    hd_event_spares_drain (&self->spare_events);
    free (self->source);
    free (self);
    *self_p = NULL;
}

void
hd_publisher_set_window (hd_publisher_t *self, uint32_t window)
{
    self->window = window ? window : 1;
    self->spare.max = self->spare_events.max = HD_SPARE_MAX ((size_t) self->window);
    s_index_fit (&self->pending, self->window);
}

void
hd_publisher_set_retry_ms (hd_publisher_t *self, uint32_t retry_ms)
{
    self->retry_ms = retry_ms ? retry_ms : 1;
}

void
hd_publisher_set_confirm_fn (hd_publisher_t *self, hd_confirm_fn *fn, void *arg)
{
    self->confirm_fn = fn;
    self->confirm_arg = arg;
}

//  Send one PUBLISH without blocking. Returns 0 or -1 (EAGAIN: try later).
static int
s_send (hd_publisher_t *self, s_pending_t *entry)
{
    void *handle = zsock_resolve (self->socket);
    Herald__Publish publish = HERALD__PUBLISH__INIT;
    publish.corr = entry->corr;
    if (hd_send_header (handle, HD_CMD_PUBLISH, ZMQ_SNDMORE | ZMQ_DONTWAIT))
        return -1;
    //  Once the first frame is in, ZeroMQ takes the rest of the message
    if (hd_send_proto (handle, &publish.base, ZMQ_SNDMORE) ||
        hd_event_send (entry->event, handle, 0))
        return -1;
    return 0;
}

static bool
s_batchable (s_pending_t *entry)
{
    return hd_event_payload_size (entry->event) <= S_BATCH_PAYLOAD_MAX;
}

//  Sends the first count entries of the outbox as one PUBLISHES. Returns 0
//  or -1 (EAGAIN: nothing was sent).
static int
s_send_batch (hd_publisher_t *self, size_t count)
{
    size_t size = 0;
    s_pending_t *entry = self->outbox.head;
    for (size_t index = 0; index < count; index++, entry = entry->next)
        size += hd_publish_item_size (entry->corr, entry->event_size,
                                      hd_event_payload_size (entry->event));
    zmq_msg_t body;
    if (zmq_msg_init_size (&body, size) != 0)
        return -1;
    uint8_t *out = zmq_msg_data (&body);
    size_t written = 0;
    entry = self->outbox.head;
    for (size_t index = 0; index < count; index++, entry = entry->next) {
        uint8_t *event_at;
        written += hd_encode_publish_item (out + written, entry->corr, entry->event_size,
                                           hd_event_payload (entry->event),
                                           hd_event_payload_size (entry->event), &event_at);
        hd_event_encode_into (entry->event, event_at);
    }
    assert (written == size);
    void *handle = zsock_resolve (self->socket);
    int rc = hd_send_header (handle, HD_CMD_PUBLISHES, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    //  Once the first frame is in, ZeroMQ takes the rest of the message
    if (rc == 0)
        rc = hd_send_msg (handle, &body, 0);
    zmq_msg_close (&body);
    return rc;
}

//  Marks the first count entries of the outbox as sent. The walk keeps its
//  own cursor rather than reading the outbox's head again after each move:
//  built with GCC 12.2 at -O3, that read was hoisted out of the loop (loop
//  invariant motion; not with -fno-strict-aliasing, and the cause was not
//  pinned down), marking the first entry count times and leaving the rest
//  in the outbox, so all of a batch but its first event was sent again and
//  again.
static void
s_mark_sent (hd_publisher_t *self, size_t count)
{
    int64_t due = zclock_mono () + self->retry_ms;
    s_pending_t *entry = self->outbox.head;
    while (count-- && entry) {
        s_pending_t *next = entry->next;
        if (entry->sent)
            self->resent++;
        entry->sent = true;
        entry->due_ms = due;
        //  Not always the tail: a BACKLOG_FULL retry-after may be due later
        s_waiting_insert (self, entry);
        entry = next;
    }
}

//  How many entries from the head of the outbox go into one PUBLISHES.
static size_t
s_batch_size (hd_publisher_t *self)
{
    size_t count = 0, bytes = 0;
    for (s_pending_t *entry = self->outbox.head;
         entry && count < S_BATCH_EVENTS_MAX && s_batchable (entry); entry = entry->next) {
        bytes += entry->event_size + hd_event_payload_size (entry->event) + HD_DELIVERY_OVERHEAD;
        if (count > 0 && bytes > S_BATCH_BYTES_MAX)
            break;
        count++;
    }
    return count;
}

//  Sends what the outbox holds; with force false, holds new events back
//  while enough are unconfirmed (see S_HOLD_MAX).
//  Unconfirmed events past which new ones are held: min(32, window / 8).
static size_t
s_hold (hd_publisher_t *self)
{
    size_t hold = self->window / 8;
    return hold > S_HOLD_MAX ? S_HOLD_MAX : hold < 1 ? 1 : hold;
}

static void
s_flush_outbox (hd_publisher_t *self, bool force)
{
    size_t batch_events = self->window / 4;
    batch_events = batch_events > S_BATCH_EVENTS_MAX ? S_BATCH_EVENTS_MAX
                   : batch_events < 1                ? 1
                                                     : batch_events;
    size_t hold = s_hold (self);
    while (self->outbox.head) {
        size_t unconfirmed = self->pending.count - self->outbox.count;
        if (!force && unconfirmed >= hold && self->outbox.count < batch_events)
            break;
        size_t count = s_batch_size (self);
        if (count <= 1)
            count = s_send (self, self->outbox.head) ? 0 : 1;
        else if (s_send_batch (self, count))
            count = 0;
        self->blocked = count == 0;
        if (count == 0)
            break; // the socket is full or the broker unreachable: later
        s_mark_sent (self, count);
    }
}

static void
s_move_due (hd_publisher_t *self)
{
    int64_t now = zclock_mono ();
    //  Its own cursor, as in s_mark_sent
    s_pending_t *entry = self->waiting.head;
    while (entry && entry->due_ms <= now) {
        s_pending_t *next = entry->next;
        s_list_append (&self->outbox, entry);
        entry = next;
    }
}

//  Report the final outcome of entry and forget it.
static void
s_settle (hd_publisher_t *self, s_pending_t *entry, const hd_confirm_t *confirm)
{
    s_list_remove (entry);
    s_index_remove (&self->pending, entry);
    if (self->confirm_fn)
        self->confirm_fn (entry->event, confirm, self->confirm_arg);
    hd_event_spares_keep (&self->spare_events, &entry->event);
    hd_reuse_keep (&self->spare, entry);
}

static void
s_on_confirm (hd_publisher_t *self, const Herald__Confirm *body)
{
    s_pending_t *entry = s_index_find (&self->pending, body->corr);
    if (!entry)
        return; // a reply to an earlier copy of an event already settled
    self->confirmed++;
    if (body->duplicate)
        self->duplicates++;
    hd_confirm_t confirm = {
        .confirmed = true, .duplicate = body->duplicate, .seq = body->seq, .reason = ""};
    s_settle (self, entry, &confirm);
}

static void
s_on_reject (hd_publisher_t *self, const Herald__Reject *body)
{
    s_pending_t *entry = s_index_find (&self->pending, body->corr);
    if (!entry)
        return;
    if (body->code == HERALD__ERROR_CODE__BACKLOG_FULL) {
        //  Not a failure: the broker asks us to come back later
        uint32_t delay = body->retry_after_ms ? body->retry_after_ms : 100;
        entry->due_ms = zclock_mono () + delay;
        s_waiting_insert (self, entry);
        return;
    }
    self->rejected++;
    s_set_error (self, "event %s rejected: %s %s", hd_event_id (entry->event),
                 hd_error_name (body->code), body->reason ? body->reason : "");
    hd_confirm_t confirm = {
        .confirmed = false, .code = body->code, .reason = body->reason ? body->reason : ""};
    s_settle (self, entry, &confirm);
}

static void
s_on_message (hd_publisher_t *self, hd_frames_t *frames)
{
    int command;
    if (frames->count < 2 ||
        hd_header_decode (hd_frames_data (frames, 0), hd_frames_size (frames, 0), &command))
        return;
    const uint8_t *data = hd_frames_data (frames, 1);
    size_t size = hd_frames_size (frames, 1);
    if (command == HD_CMD_CONFIRM) {
        Herald__Confirm *body = herald__confirm__unpack (NULL, size, data);
        if (body) {
            s_on_confirm (self, body);
            herald__confirm__free_unpacked (body, NULL);
        }
    } else if (command == HD_CMD_CONFIRMS) {
        //  As the broker lays it out, read in place; any other valid
        //  encoding through protobuf-c
        hd_confirms_view_t view;
        if (hd_decode_confirms (data, size, &view) == 0) {
            Herald__Confirm confirm = HERALD__CONFIRM__INIT;
            bool duplicate;
            while (hd_confirms_next (&view, &confirm.corr, &confirm.seq, &duplicate)) {
                confirm.duplicate = duplicate;
                s_on_confirm (self, &confirm);
            }
            return;
        }
        Herald__Confirms *body = herald__confirms__unpack (NULL, size, data);
        if (body && body->n_corr == body->n_seq && body->n_corr == body->n_duplicate)
            for (size_t index = 0; index < body->n_corr; index++) {
                Herald__Confirm confirm = HERALD__CONFIRM__INIT;
                confirm.corr = body->corr[index];
                confirm.seq = body->seq[index];
                confirm.duplicate = body->duplicate[index];
                s_on_confirm (self, &confirm);
            }
        if (body)
            herald__confirms__free_unpacked (body, NULL);
    } else if (command == HD_CMD_REJECT) {
        Herald__Reject *body = herald__reject__unpack (NULL, size, data);
        if (body) {
            s_on_reject (self, body);
            herald__reject__free_unpacked (body, NULL);
        }
    } else if (command == HD_CMD_ERROR) {
        //  Errors carry no corr; the event concerned will be resent
        Herald__Error *body = herald__error__unpack (NULL, size, data);
        if (body && body->code != HERALD__ERROR_CODE__UNKNOWN_PEER)
            s_set_error (self, "broker error %s: %s", hd_error_name (body->code),
                         body->reason ? body->reason : "");
        if (body)
            herald__error__free_unpacked (body, NULL);
    }
}

//  True when replies are to be looked for now (see S_LOOK_GAP_US), given
//  enough publishes since the last look. Asked every hold / 2 publishes,
//  not on each one past that: it reads the clock.
static bool
s_look_due (hd_publisher_t *self)
{
    int64_t now = zclock_usecs ();
    if (now - self->looked_us < S_LOOK_GAP_US && self->undrained < S_LOOK_MOST)
        return false;
    self->looked_us = now;
    return true;
}

//  Receive every reply already queued. Returns how many there were.
static size_t
s_drain (hd_publisher_t *self)
{
    self->undrained = 0;
    void *handle = zsock_resolve (self->socket);
    hd_frames_t frames;
    size_t count = 0;
    while (hd_frames_recv (&frames, handle, ZMQ_DONTWAIT) == 0) {
        s_on_message (self, &frames);
        hd_frames_close (&frames);
        count++;
    }
    return count;
}

//  One round: wait up to timeout_ms (-1 forever) for replies or for the
//  socket to take queued sends, then process. Returns -1 on interrupt.
static int
s_process (hd_publisher_t *self, int timeout_ms, bool force)
{
    s_move_due (self);
    s_flush_outbox (self, force);
    if (self->waiting.head) {
        int64_t until_due = self->waiting.head->due_ms - zclock_mono ();
        if (until_due < 0)
            until_due = 0;
        if (timeout_ms < 0 || until_due < timeout_ms)
            timeout_ms = (int) until_due;
    }
    zmq_pollitem_t item = {zsock_resolve (self->socket), 0, ZMQ_POLLIN, 0};
    //  Held events are not a reason to wake: only a send that found no room
    if (self->outbox.head && self->blocked)
        item.events |= ZMQ_POLLOUT;
    int rc = zmq_poll (&item, 1, timeout_ms);
    if (zsys_interrupted || (rc == -1 && errno == EINTR)) {
        s_set_error (self, "interrupted");
        return -1;
    }
    //  A reply is the moment to send what was held (as Nagle does on an ACK)
    if (rc > 0 && (item.revents & ZMQ_POLLIN) && s_drain (self) > 0)
        force = true;
    s_move_due (self);
    s_flush_outbox (self, force);
    return 0;
}

static int
s_remaining (int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t remaining = deadline - zclock_mono ();
    return remaining > 0 ? (int) remaining : 0;
}

static uint64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
}

static int
s_validate (hd_publisher_t *self, hd_event_t *event)
{
    const char *type = hd_event_type (event);
    if (*type == 0) {
        s_set_error (self, "event has no type");
        return -1;
    }
    if (!hd_type_chars_valid (type, strlen (type))) {
        s_set_error (self, "event type '%s' contains a space or control character", type);
        return -1;
    }
    if (*hd_event_id (event) == 0 && hd_event_set_random_id (event)) {
        s_set_error (self, "cannot make an event id");
        return -1;
    }
    if (*hd_event_source (event) == 0 && hd_event_set_source (event, self->source)) {
        s_set_error (self, "out of memory");
        return -1;
    }
    if (hd_event_time_us (event) == 0)
        hd_event_set_time_us (event, s_now_us ());
    return 0;
}

int
hd_publisher_publish (hd_publisher_t *self, hd_event_t **event_p, int timeout_ms)
{
    if (!event_p || !*event_p) {
        s_set_error (self, "no event");
        return -1;
    }
    if (s_validate (self, *event_p))
        return -1;
    //  The clock is read only when the window is full: most publishes
    //  never wait, and a clock read costs as much as a tenth of a publish
    int64_t deadline = -1;
    if (self->pending.count >= self->window && timeout_ms >= 0)
        deadline = zclock_mono () + timeout_ms;
    //  Replies that already arrived count even with timeout 0
    while (self->pending.count >= self->window) {
        if (s_process (self, s_remaining (deadline), false))
            return -1;
        if (self->pending.count >= self->window && s_remaining (deadline) == 0) {
            s_set_error (self, "timed out: %zu events unconfirmed", self->pending.count);
            return -1;
        }
    }
    s_pending_t *entry = hd_reuse_take (&self->spare, sizeof *entry);
    if (!entry) {
        s_set_error (self, "out of memory");
        return -1;
    }
    entry->corr = ++self->next_corr;
    entry->event = *event_p;
    entry->event_size = hd_event_encoded_size (entry->event);
    s_index_insert (&self->pending, entry);
    *event_p = NULL;
    s_list_append (&self->outbox, entry);
    //  Take replies already here, so callbacks keep pace with publishing and
    //  held events go as soon as the broker has answered. Not on every
    //  publish: a look into an empty socket costs libzmq two system calls
    //  (poll and getpid), more than the rest of a publish. Every hold / 2
    //  publishes keeps what looks unconfirmed below the hold threshold
    //  while the broker keeps up; S_LOOK_GAP_US spaces them at full speed.
    size_t replies = 0;
    size_t every = s_hold (self) / 2;
    if (++self->undrained >= every && (every <= 1 || self->undrained % every == 0) &&
        s_look_due (self))
        replies = s_drain (self);
    s_flush_outbox (self, replies > 0);
    return 0;
}

hd_event_t *
hd_publisher_event_new (hd_publisher_t *self, const char *type)
{
    hd_event_t *event = hd_event_spares_take (&self->spare_events);
    if (event && hd_event_renew (event, type) == 0)
        return event;
    hd_event_destroy (&event);
    return hd_event_new (type);
}

void
hd_publisher_poll (hd_publisher_t *self)
{
    s_drain (self);
    s_move_due (self);
    s_flush_outbox (self, true);
}

int
hd_publisher_flush (hd_publisher_t *self, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
    while (self->pending.count > 0) {
        if (s_process (self, s_remaining (deadline), true))
            return -1;
        if (self->pending.count > 0 && s_remaining (deadline) == 0) {
            s_set_error (self, "timed out: %zu events unconfirmed", self->pending.count);
            return -1;
        }
    }
    return 0;
}

size_t
hd_publisher_unconfirmed (hd_publisher_t *self)
{
    return self->pending.count;
}

uint64_t
hd_publisher_confirmed (hd_publisher_t *self)
{
    return self->confirmed;
}

uint64_t
hd_publisher_duplicates (hd_publisher_t *self)
{
    return self->duplicates;
}

uint64_t
hd_publisher_rejected (hd_publisher_t *self)
{
    return self->rejected;
}

uint64_t
hd_publisher_resent (hd_publisher_t *self)
{
    return self->resent;
}

const char *
hd_publisher_error (hd_publisher_t *self)
{
    return self->error;
}
