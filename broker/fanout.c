/*  fanout — XPUB sender with per-type sequence counters. */
#include "fanout.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"

struct _hd_fanout_t {
    void *xpub;
    uint64_t epoch;
    zhashx_t *type_seqs; // type -> uint64_t counter
    size_t max_types;
    int64_t subscriptions;
    uint64_t sent;
};

static void
s_counter_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

hd_fanout_t *
hd_fanout_new (void *xpub, uint64_t epoch, size_t max_types)
{
    hd_fanout_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->type_seqs = zhashx_new ();
    if (!self->type_seqs) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->type_seqs, s_counter_destroy);
    self->xpub = xpub;
    self->epoch = epoch;
    self->max_types = max_types ? max_types : 1;
    return self;
}

void
hd_fanout_destroy (hd_fanout_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zhashx_destroy (&(*self_p)->type_seqs);
    free (*self_p);
    *self_p = NULL;
}

//  Next type_seq for type; NULL-terminated copy made on the stack by caller.
static uint64_t
s_next_type_seq (hd_fanout_t *self, const char *type)
{
    uint64_t *counter = zhashx_lookup (self->type_seqs, type);
    if (!counter) {
        if (zhashx_size (self->type_seqs) >= self->max_types) {
            //  Forgetting counters is only safe under a new epoch
            zhashx_purge (self->type_seqs);
            self->epoch++;
        }
        counter = calloc (1, sizeof *counter);
        if (!counter || zhashx_insert (self->type_seqs, type, counter) != 0) {
            free (counter);
            return 0;
        }
    }
    return ++*counter;
}

int
hd_fanout_publish (hd_fanout_t *self, const char *type, size_t type_size, zmq_msg_t *envelope,
                   zmq_msg_t *payload)
{
    char type_text[256];
    if (type_size >= sizeof type_text)
        return -1;
    memcpy (type_text, type, type_size);
    type_text[type_size] = 0;
    Herald__Fanout fanout = HERALD__FANOUT__INIT;
    fanout.type_seq = s_next_type_seq (self, type_text);
    fanout.epoch = self->epoch;

    zmq_msg_t envelope_copy, payload_copy;
    zmq_msg_init (&envelope_copy);
    zmq_msg_init (&payload_copy);
    zmq_msg_copy (&envelope_copy, envelope);
    zmq_msg_copy (&payload_copy, payload);
    int rc = -1;
    if (hd_send_bytes (self->xpub, type, type_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0 &&
        hd_send_proto (self->xpub, &fanout.base, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0 &&
        hd_send_msg (self->xpub, &envelope_copy, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0 &&
        hd_send_msg (self->xpub, &payload_copy, ZMQ_DONTWAIT) == 0)
        rc = 0;
    zmq_msg_close (&envelope_copy);
    zmq_msg_close (&payload_copy);
    if (rc == 0)
        self->sent++;
    return rc;
}

void
hd_fanout_read_subscriptions (hd_fanout_t *self)
{
    zmq_msg_t message;
    zmq_msg_init (&message);
    while (zmq_msg_recv (&message, self->xpub, ZMQ_DONTWAIT) != -1) {
        const uint8_t *data = zmq_msg_data (&message);
        if (zmq_msg_size (&message) >= 1 && data[0] == 1)
            self->subscriptions++;
        else if (zmq_msg_size (&message) >= 1 && data[0] == 0 && self->subscriptions > 0)
            self->subscriptions--;
    }
    zmq_msg_close (&message);
}

size_t
hd_fanout_subscriptions (hd_fanout_t *self)
{
    return (size_t) self->subscriptions;
}

uint64_t
hd_fanout_sent (hd_fanout_t *self)
{
    return self->sent;
}

uint64_t
hd_fanout_epoch (hd_fanout_t *self)
{
    return self->epoch;
}
