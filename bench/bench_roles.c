/*  bench_roles.c — herald-bench's child processes: publisher, subscriber
    (W1) and worker (W2), each using libherald only, plus the control file.
*/
#include "bench.h"
#include "herald.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

uint64_t
hb_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

void
hb_sleep_until_ns (uint64_t when_ns)
{
    struct timespec ts = {.tv_sec = (time_t) (when_ns / 1000000000ULL),
                          .tv_nsec = (long) (when_ns % 1000000000ULL)};
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

void
hb_sleep_ms (unsigned ms)
{
    hb_sleep_until_ns (hb_now_ns () + (uint64_t) ms * 1000000ULL);
}

size_t
hb_ctl_size (uint32_t arrays, uint32_t events)
{
    size_t cells = (size_t) arrays * events;
    size_t cnt_bytes = (cells + 63) & ~(size_t) 63;
    return HB_HDR_SPACE + cnt_bytes + cells * sizeof (uint64_t);
}

//  A file this call created and could not finish goes again, whatever
//  failed; errno is kept for the caller. Returns -1.
static int
s_ctl_create_failed (int fd, const char *path)
{
    int error = errno;
    close (fd);
    unlink (path);
    errno = error;
    return -1;
}

int
hb_ctl_map (hb_ctl_t *ctl, const char *path, bool create, size_t size)
{
    memset (ctl, 0, sizeof (*ctl));
    int fd = open (path, create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0600);
    if (fd < 0)
        return -1;
    if (create) {
        //  Allocated now, so a full /dev/shm is an error here and not a
        //  SIGBUS in a receiver half way through the run
        int rc = posix_fallocate (fd, 0, (off_t) size);
        if (rc) {
            errno = rc;
            return s_ctl_create_failed (fd, path);
        }
    } else {
        struct stat st;
        if (fstat (fd, &st) || st.st_size < HB_HDR_SPACE) {
            close (fd);
            return -1;
        }
        size = (size_t) st.st_size;
    }
    //  The file's pages are made (above) and mapped here, before the run,
    //  not by the receivers as they record during it: a fresh page costs a
    //  fault and a clear, and on this VM the host's fault as well.
    //  bench-peers' ctl_create writes its whole file at creation too. On
    //  tmpfs (/dev/shm) a populated mapping then takes no fault at all.
    void *base = mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (base == MAP_FAILED && create)
        return s_ctl_create_failed (fd, path);
    close (fd);
    if (base == MAP_FAILED)
        return -1;
    ctl->hdr = base;
    ctl->size = size;
    if (!create &&
        (ctl->hdr->magic != HB_MAGIC || hb_ctl_size (ctl->hdr->arrays, ctl->hdr->events) != size)) {
        hb_ctl_unmap (ctl);
        return -1;
    }
    if (!create)
        hb_ctl_arrays (ctl);
    return 0;
}

void
hb_ctl_arrays (hb_ctl_t *ctl)
{
    size_t cells = (size_t) ctl->hdr->arrays * ctl->hdr->events;
    ctl->cnt = (_Atomic uint8_t *) ((char *) ctl->hdr + HB_HDR_SPACE);
    ctl->lat = (uint64_t *) ((char *) ctl->hdr + HB_HDR_SPACE + ((cells + 63) & ~(size_t) 63));
}

void
hb_ctl_unmap (hb_ctl_t *ctl)
{
    if (ctl->hdr)
        munmap (ctl->hdr, ctl->size);
    memset (ctl, 0, sizeof (*ctl));
}

static bool
s_past_deadline (hb_ctl_t *ctl)
{
    return hb_now_ns () > ctl->hdr->deadline_ns;
}

static int
s_remaining_ms (hb_ctl_t *ctl)
{
    uint64_t now = hb_now_ns ();
    if (now >= ctl->hdr->deadline_ns)
        return 0;
    uint64_t ms = (ctl->hdr->deadline_ns - now) / 1000000ULL;
    return ms > 100000000 ? 100000000 : (int) ms + 1;
}

//  Account one receipt. Returns 1 for a first receipt, 0 for a duplicate,
//  -1 for a probe or an unreadable payload.
static int
s_record (hb_ctl_t *ctl, uint32_t index, const void *data, size_t size, uint64_t now)
{
    hb_hdr_t *hdr = ctl->hdr;
    hb_recv_t *recv = &hdr->recv[index];
    hb_payload_t head;
    if (size < sizeof (head)) {
        atomic_fetch_add_explicit (&recv->malformed, 1, memory_order_relaxed);
        return -1;
    }
    memcpy (&head, data, sizeof (head));
    if (head.magic != HB_PAYLOAD_MAGIC) {
        atomic_fetch_add_explicit (&recv->malformed, 1, memory_order_relaxed);
        return -1;
    }
    if (head.seq == HB_PROBE_SEQ) {
        atomic_store (&recv->probe_seen, 1);
        return -1;
    }
    if (head.seq >= hdr->events) {
        atomic_fetch_add_explicit (&recv->malformed, 1, memory_order_relaxed);
        return -1;
    }
    size_t cell = (size_t) (hdr->workload == HB_W1 ? index : 0) * hdr->events + head.seq;
    atomic_fetch_add_explicit (&recv->count, 1, memory_order_relaxed);
    if (atomic_fetch_add_explicit (&ctl->cnt[cell], 1, memory_order_relaxed) != 0)
        return 0;
    ctl->lat[cell] = now > head.sched_ns ? now - head.sched_ns : 0;
    atomic_fetch_add_explicit (&recv->distinct, 1, memory_order_relaxed);
    if (atomic_load_explicit (&recv->first_ns, memory_order_relaxed) == 0)
        atomic_store_explicit (&recv->first_ns, now, memory_order_relaxed);
    atomic_store_explicit (&recv->last_ns, now, memory_order_relaxed);
    if (hdr->workload == HB_W2) {
        uint64_t processed = atomic_fetch_add (&hdr->processed, 1) + 1;
        if (processed == hdr->events)
            atomic_store (&hdr->done_ns, now);
    }
    return 1;
}

static void
s_set_error (char *error, const char *what, const char *why)
{
    snprintf (error, HB_TEXT, "%s: %s", what, why && *why ? why : "unknown error");
    fprintf (stderr, "herald-bench: %s\n", error);
}

//  ---------------------------------------------------------------------
//  Publisher

typedef struct {
    hb_ctl_t *ctl;
    hd_publisher_t *publisher;
    uint32_t index;
    char *buffer; // payload
    char id[128];
    int timeout_ms; // what is left of the run, refreshed every S_TIMEOUT_EVERY events
} s_publisher_t;

//  A clock read per publish for the timeout alone would weigh on the
//  publisher this harness measures; the timeout may run over by the time
//  this many publishes take
#define S_TIMEOUT_EVERY 256

//  "<prefix>-<seq>" without snprintf, which costs more than the rest of
//  building the event (a client formats its ids its own way; this harness
//  should not weigh on the publisher it measures).
static void
s_format_id (char *out, size_t size, const char *prefix, uint32_t seq)
{
    char digits[12];
    int count = 0;
    do {
        digits[count++] = (char) ('0' + seq % 10);
        seq /= 10;
    } while (seq);
    size_t prefix_size = strlen (prefix);
    if (prefix_size + 1 + (size_t) count + 1 > size) {
        out[0] = 0;
        return;
    }
    memcpy (out, prefix, prefix_size);
    out[prefix_size] = '-';
    char *cursor = out + prefix_size + 1;
    while (count)
        *cursor++ = digits[--count];
    *cursor = 0;
}

static int
s_publish (s_publisher_t *self, uint32_t seq, uint64_t sched_ns)
{
    hb_hdr_t *hdr = self->ctl->hdr;
    hb_payload_t head = {.magic = HB_PAYLOAD_MAGIC, .seq = seq, .sched_ns = sched_ns};
    memcpy (self->buffer, &head, sizeof (head));
    hd_event_t *event = hd_publisher_event_new (self->publisher, hdr->type);
    if (!event)
        return -1;
    if (seq == HB_PROBE_SEQ)
        snprintf (self->id, sizeof (self->id), "%s-probe-%" PRIu64, hdr->id_prefix, sched_ns);
    else
        s_format_id (self->id, sizeof (self->id), hdr->id_prefix, seq);
    if (hd_event_set_id (event, self->id) ||
        hd_event_set_payload (event, self->buffer, hdr->payload_size) ||
        hd_publisher_publish (self->publisher, &event, self->timeout_ms)) {
        hd_event_destroy (&event);
        return -1;
    }
    return 0;
}

//  W1: send probes until every subscriber has seen one (slow joiners).
static int
s_probe (s_publisher_t *self)
{
    hb_hdr_t *hdr = self->ctl->hdr;
    while (!s_past_deadline (self->ctl)) {
        uint32_t seen = 0;
        for (uint32_t index = 0; index < hdr->nrecv; index++)
            seen += atomic_load (&hdr->recv[index].probe_seen) ? 1 : 0;
        if (seen == hdr->nrecv)
            return 0;
        self->timeout_ms = s_remaining_ms (self->ctl);
        if (s_publish (self, HB_PROBE_SEQ, hb_now_ns ()))
            return -1;
        hd_publisher_poll (self->publisher);
        hb_sleep_ms (10);
    }
    return -1;
}

int
hb_role_publisher (hb_ctl_t *ctl, uint32_t index)
{
    hb_hdr_t *hdr = ctl->hdr;
    hb_pub_t *me = &hdr->pub[index];
    char source[64];
    snprintf (source, sizeof (source), "herald-bench-p%u", index);
    s_publisher_t self = {.ctl = ctl, .index = index};
    self.publisher = hd_publisher_new (hdr->broker, source);
    self.buffer = malloc (hdr->payload_size);
    if (!self.publisher || !self.buffer) {
        s_set_error (me->error, "publisher", "cannot create");
        atomic_store (&me->failed, 1);
        return 1;
    }
    memset (self.buffer, 'x', hdr->payload_size);
    hd_publisher_set_window (self.publisher, hdr->window);
    int rc = 0;

    while (!atomic_load (&hdr->go) && !atomic_load (&hdr->stop) && !s_past_deadline (ctl))
        hb_sleep_ms (1);
    if (!atomic_load (&hdr->go))
        rc = -1;
    if (rc == 0 && index == 0) {
        if (hdr->workload == HB_W1 && s_probe (&self)) {
            s_set_error (me->error, "probing subscribers", hd_publisher_error (self.publisher));
            rc = -1;
        }
        //  Start slightly ahead so the other publishers see it in time.
        atomic_store (&hdr->start_ns, hb_now_ns () + (hdr->npub > 1 ? 2000000ULL : 0));
    }
    uint64_t start = 0;
    while (rc == 0 && (start = atomic_load (&hdr->start_ns)) == 0) {
        if (s_past_deadline (ctl) || atomic_load (&hdr->stop))
            rc = -1;
        hb_sleep_ms (1);
    }
    if (rc == 0)
        hb_sleep_until_ns (start);

    double interval_ns = hdr->rate > 0 ? 1e9 / hdr->rate : 0;
    uint64_t sent = 0;
    for (uint32_t seq = index; rc == 0 && seq < hdr->events; seq += hdr->npub) {
        uint64_t sched;
        if (interval_ns > 0) {
            //  As bench-peers' pacer: wait only when ahead of the schedule,
            //  and then send what is held first (the publisher's contract
            //  before it idles). Behind it, publish back to back.
            sched = start + (uint64_t) (seq * interval_ns);
            if (hb_now_ns () < sched) {
                hd_publisher_poll (self.publisher);
                hb_sleep_until_ns (sched);
            }
        } else
            sched = hb_now_ns ();
        if (sent % S_TIMEOUT_EVERY == 0)
            self.timeout_ms = s_remaining_ms (ctl);
        if (s_publish (&self, seq, sched)) {
            s_set_error (me->error, "publish", hd_publisher_error (self.publisher));
            rc = -1;
            break;
        }
        if ((++sent & 255) == 0)
            atomic_store_explicit (&me->sent, sent, memory_order_relaxed);
        if (atomic_load_explicit (&hdr->stop, memory_order_relaxed))
            rc = -1;
    }
    atomic_store (&me->sent, sent);
    if (rc == 0 && hd_publisher_flush (self.publisher, s_remaining_ms (ctl))) {
        s_set_error (me->error, "flush", hd_publisher_error (self.publisher));
        rc = -1;
    }
    atomic_store (&me->end_ns, hb_now_ns ());
    atomic_store (&me->confirmed, hd_publisher_confirmed (self.publisher));
    atomic_store (&me->rejected, hd_publisher_rejected (self.publisher));
    atomic_store (&me->resent, hd_publisher_resent (self.publisher));
    if (rc)
        atomic_store (&me->failed, 1);
    atomic_store (&me->done, 1);
    hd_publisher_destroy (&self.publisher);
    free (self.buffer);
    return rc ? 1 : 0;
}

//  ---------------------------------------------------------------------
//  Subscriber (W1)

static bool
s_publishers_done (hb_hdr_t *hdr)
{
    for (uint32_t index = 0; index < hdr->npub; index++)
        if (!atomic_load (&hdr->pub[index].done))
            return false;
    return true;
}

int
hb_role_subscriber (hb_ctl_t *ctl, uint32_t index)
{
    hb_hdr_t *hdr = ctl->hdr;
    hb_recv_t *me = &hdr->recv[index];
    char name[64];
    snprintf (name, sizeof (name), "herald-bench-s%u", index);
    hd_subscriber_t *subscriber = hd_subscriber_new (hdr->xpub, hdr->broker);
    if (!subscriber || hd_subscriber_subscribe (subscriber, hdr->type)) {
        s_set_error (me->error, "subscriber",
                     subscriber ? hd_subscriber_error (subscriber) : "cannot create");
        atomic_store (&me->failed, 1);
        atomic_store (&me->exited, 1);
        hd_subscriber_destroy (&subscriber);
        return 1;
    }
    hd_subscriber_set_name (subscriber, name);
    atomic_store (&me->ready, 1);
    //  After the publishers finish, wait this long for stragglers.
    const uint64_t idle_ns = 1000000000ULL;
    uint64_t last_activity = hb_now_ns ();
    while (true) {
        hd_event_t *event = hd_subscriber_recv (subscriber, 100);
        uint64_t now = hb_now_ns ();
        if (event) {
            s_record (ctl, index, hd_event_payload (event), hd_event_payload_size (event), now);
            hd_subscriber_recycle (subscriber, &event);
            last_activity = now;
            if (atomic_load_explicit (&me->distinct, memory_order_relaxed) >= hdr->events)
                break;
            continue;
        }
        if (atomic_load (&hdr->stop) || now > hdr->deadline_ns)
            break;
        if (s_publishers_done (hdr)) {
            uint64_t done_at = 0;
            for (uint32_t p = 0; p < hdr->npub; p++) {
                uint64_t end = atomic_load (&hdr->pub[p].end_ns);
                done_at = end > done_at ? end : done_at;
            }
            uint64_t since = done_at > last_activity ? done_at : last_activity;
            if (now > since + idle_ns)
                break;
        }
    }
    atomic_store (&me->gaps, hd_subscriber_gaps (subscriber));
    atomic_store (&me->exited, 1);
    hd_subscriber_destroy (&subscriber);
    return 0;
}

//  ---------------------------------------------------------------------
//  Worker (W2)

typedef struct {
    hb_ctl_t *ctl;
    uint32_t index;
} s_worker_t;

static hd_verdict_t
s_handler (hd_delivery_t *delivery, void *arg)
{
    s_worker_t *self = arg;
    const hd_event_t *event = hd_delivery_event (delivery);
    s_record (self->ctl, self->index, hd_event_payload (event), hd_event_payload_size (event),
              hb_now_ns ());
    return HD_ACK;
}

int
hb_role_worker (hb_ctl_t *ctl, uint32_t index)
{
    hb_hdr_t *hdr = ctl->hdr;
    hb_recv_t *me = &hdr->recv[index];
    char name[64];
    snprintf (name, sizeof (name), "herald-bench-w%u", index);
    s_worker_t self = {.ctl = ctl, .index = index};
    hd_worker_t *worker = hd_worker_new (hdr->broker, hdr->pool, hdr->type);
    int rc = 0;
    if (!worker) {
        s_set_error (me->error, "worker", "cannot create");
        rc = -1;
    } else {
        hd_worker_set_name (worker, name);
        hd_worker_set_credit (worker, hdr->credit);
        if (hdr->handlers != HB_HANDLERS_DEFAULT)
            hd_worker_set_inline (worker, hdr->handlers == HB_HANDLERS_INLINE);
        hd_worker_set_stop_grace_ms (worker, 2000);
        if (hd_worker_start (worker, s_handler, &self)) {
            s_set_error (me->error, "worker start", hd_worker_error (worker));
            rc = -1;
        } else if (hd_worker_wait_joined (worker, s_remaining_ms (ctl))) {
            s_set_error (me->error, "worker join", hd_worker_error (worker));
            rc = -1;
        }
    }
    if (rc == 0) {
        atomic_store (&me->ready, 1);
        while (!atomic_load (&hdr->stop) && !s_past_deadline (ctl))
            hb_sleep_ms (10);
        hd_worker_stop (worker);
    } else
        atomic_store (&me->failed, 1);
    atomic_store (&me->exited, 1);
    hd_worker_destroy (&worker);
    return rc ? 1 : 0;
}
