/*  fanout — XPUB sender with per-type sequence counters. */
#include "fanout.h"
#include "buffer.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include "codec.h"

//  A run of events of one type waiting for hd_fanout_flush: the first one
//  as its frames (a run of one goes out as a plain 4-frame message), all
//  of them encoded as a FanoutBatch body once a second one joins
#define S_RUN_EVENTS_MAX  256
#define S_RUN_BYTES_MAX   (256 * 1024)
#define S_RUN_PAYLOAD_MAX 4096

struct _hd_fanout_t {
    void *xpub;
    uint64_t epoch;
    zhashx_t *type_seqs; // type -> uint64_t counter
    size_t max_types;
    int64_t subscriptions;
    uint64_t sent;
    uint64_t batches;
    //  The run: events come in runs of one type. run_type is the last type
    //  published, its counter kept at hand (NULL when none)
    char run_type[256];
    size_t run_type_size;
    uint64_t *run_counter;
    size_t run_count;
    uint64_t first_type_seq;
    //  The first event: its frames shared (or none, where it was
    //  borrowed), in first_envelope and first_payload
    hd_record_t first;
    zmq_msg_t first_envelope, first_payload;
    uint8_t *batch; // handed to ZeroMQ as the frame when sent
    size_t batch_size, batch_capacity;
    size_t batch_hint; // the size recent batches reached
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
    zmq_msg_init (&self->first_envelope);
    zmq_msg_init (&self->first_payload);
    self->max_types = max_types ? max_types : 1;
    return self;
}

void
hd_fanout_destroy (hd_fanout_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_fanout_t *self = *self_p;
    zhashx_destroy (&self->type_seqs);
    zmq_msg_close (&self->first_envelope);
    zmq_msg_close (&self->first_payload);
    free (self->batch);
    free (*self_p);
    *self_p = NULL;
}

//  Starts counting type (type_size < 256, checked by the caller) as the
//  run's type; returns its next type_seq, or 0 on no memory.
static uint64_t
s_start_type (hd_fanout_t *self, const char *type, size_t type_size)
{
    memcpy (self->run_type, type, type_size);
    self->run_type[type_size] = 0;
    self->run_type_size = type_size;
    self->run_counter = zhashx_lookup (self->type_seqs, self->run_type);
    if (!self->run_counter) {
        if (zhashx_size (self->type_seqs) >= self->max_types) {
            //  Forgetting counters is only safe under a new epoch
            zhashx_purge (self->type_seqs);
            self->epoch++;
        }
        uint64_t *counter = calloc (1, sizeof *counter);
        if (!counter || zhashx_insert (self->type_seqs, self->run_type, counter) != 0) {
            free (counter);
            return 0;
        }
        self->run_counter = counter;
    }
    return ++*self->run_counter;
}

//  A frame to send: shared with msg, or a copy of the size bytes at data
//  when they are borrowed (msg NULL).
static int
s_frame_of (zmq_msg_t *frame, zmq_msg_t *msg, const void *data, size_t size)
{
    if (!msg)
        return hd_msg_init_copy (frame, data, size);
    zmq_msg_init (frame);
    return zmq_msg_copy (frame, msg);
}

//  Sends [type][Fanout][Event][payload]; the frames are shared, not copied;
//  borrowed bytes are copied.
static int
s_send_single (hd_fanout_t *self, const char *type, size_t type_size, uint64_t type_seq,
               const hd_record_t *record)
{
    Herald__Fanout fanout = HERALD__FANOUT__INIT;
    fanout.type_seq = type_seq;
    fanout.epoch = self->epoch;
    zmq_msg_t envelope_copy, payload_copy;
    if (s_frame_of (&envelope_copy, record->envelope_frame, record->envelope,
                    record->envelope_size))
        return -1;
    if (s_frame_of (&payload_copy, record->payload_frame, record->payload, record->payload_size)) {
        zmq_msg_close (&envelope_copy);
        return -1;
    }
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

static int
s_batch_append (hd_fanout_t *self, uint64_t type_seq, const hd_record_t *record)
{
    if (hd_buffer_reserve_hinted (&self->batch, &self->batch_capacity,
                                  self->batch_size + record->envelope_size + record->payload_size +
                                      HD_DELIVERY_OVERHEAD,
                                  self->batch_hint))
        return -1;
    self->batch_size += hd_encode_fanout_item (self->batch + self->batch_size, self->epoch,
                                               type_seq, record->envelope, record->envelope_size,
                                               record->payload, record->payload_size);
    return 0;
}

//  The run's first event: borrowed bytes stay good until the flush; frames
//  are shared, and their bytes read from the shared copy (a very small
//  message's bytes live inside it, and the caller's may move)
static void
s_keep_first (hd_fanout_t *self, const hd_record_t *record)
{
    self->first = *record;
    if (record->envelope_frame) {
        zmq_msg_copy (&self->first_envelope, record->envelope_frame);
        self->first.envelope_frame = &self->first_envelope;
        self->first.envelope = zmq_msg_data (&self->first_envelope);
    }
    if (record->payload_frame) {
        zmq_msg_copy (&self->first_payload, record->payload_frame);
        self->first.payload_frame = &self->first_payload;
        self->first.payload = zmq_msg_data (&self->first_payload);
    }
}

void
hd_fanout_flush (hd_fanout_t *self)
{
    if (self->run_count == 1)
        s_send_single (self, self->run_type, self->run_type_size, self->first_type_seq,
                       &self->first);
    else if (self->run_count > 1) {
        //  The batch buffer becomes the frame (no copy); the next one grows
        //  straight to the size recent ones reached
        hd_buffer_note_size (&self->batch_hint, self->batch_size);
        size_t capacity = self->batch_capacity;
        self->batch_capacity = 0;
        zmq_msg_t body;
        if (hd_msg_init_take (&body, &self->batch, self->batch_size, capacity) == 0) {
            if (hd_send_bytes (self->xpub, self->run_type, self->run_type_size,
                               ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0 &&
                hd_send_msg (self->xpub, &body, ZMQ_DONTWAIT) == 0) {
                self->sent += self->run_count;
                self->batches++;
            }
            zmq_msg_close (&body);
        }
    }
    if (self->first.envelope_frame) {
        zmq_msg_close (&self->first_envelope);
        zmq_msg_init (&self->first_envelope);
    }
    if (self->first.payload_frame) {
        zmq_msg_close (&self->first_payload);
        zmq_msg_init (&self->first_payload);
    }
    self->first = (hd_record_t){NULL, NULL, NULL, NULL, 0, 0};
    self->run_count = 0;
    self->batch_size = 0;
}

int
hd_fanout_publish (hd_fanout_t *self, const char *type, size_t type_size, const hd_record_t *record)
{
    if (type_size >= sizeof self->run_type)
        return -1;
    uint64_t type_seq;
    if (self->run_counter && self->run_type_size == type_size &&
        memcmp (self->run_type, type, type_size) == 0)
        type_seq = ++*self->run_counter;
    else {
        //  The run ends under its own type (and epoch) before the next starts
        hd_fanout_flush (self);
        type_seq = s_start_type (self, type, type_size);
    }
    if (self->run_count >= S_RUN_EVENTS_MAX || self->batch_size >= S_RUN_BYTES_MAX)
        hd_fanout_flush (self);
    if (record->payload_size > S_RUN_PAYLOAD_MAX) {
        //  Large payloads are never copied: after the run, on their own
        hd_fanout_flush (self);
        return s_send_single (self, type, type_size, type_seq, record);
    }
    if (self->run_count == 0) {
        self->first_type_seq = type_seq;
        s_keep_first (self, record);
        self->run_count = 1;
        return 0;
    }
    if (self->run_count == 1 && s_batch_append (self, self->first_type_seq, &self->first))
        return -1;
    if (s_batch_append (self, type_seq, record)) {
        if (self->run_count == 1)
            self->batch_size = 0; // the first goes alone at the flush, not twice
        return -1;
    }
    self->run_count++;
    return 0;
}

uint64_t
hd_fanout_batches (hd_fanout_t *self)
{
    return self->batches;
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
