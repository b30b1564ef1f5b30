/*  session — one registered peer. */
#include "session.h"
#include "buffer.h"
#include "codec.h"
#include "hashmap.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

hd_session_t *
hd_session_new (hd_session_kind_t kind, const void *routing_id, size_t routing_id_size,
                uint64_t number, int fd, int64_t now)
{
    hd_session_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (routing_id_size == 0 || routing_id_size > HD_ROUTING_ID_MAX) {
        free (self);
        return NULL;
    }
    self->kind = kind;
    memcpy (self->routing_id, routing_id, routing_id_size);
    self->routing_id_size = routing_id_size;
    self->hash = hd_hash_bytes (routing_id, routing_id_size);
    self->number = number;
    self->fd = fd;
    self->last_heard = now;
    return self;
}

void
hd_session_destroy (hd_session_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->batch);
    free (*self_p);
    *self_p = NULL;
}

void
hd_session_set_name (hd_session_t *self, const char *name)
{
    snprintf (self->name, sizeof self->name, "%s", name ? name : "");
}

int
hd_session_batch_add (hd_session_t *self, uint64_t seq, uint32_t attempt, uint32_t ack_wait_ms,
                      const void *envelope, size_t envelope_size, const void *payload,
                      size_t payload_size)
{
    if (hd_buffer_reserve_hinted (&self->batch, &self->batch_capacity,
                                  self->batch_size + envelope_size + payload_size +
                                      HD_DELIVERY_OVERHEAD,
                                  self->batch_hint))
        return -1;
    self->batch_size +=
        hd_encode_delivery (self->batch + self->batch_size, seq, attempt, ack_wait_ms, envelope,
                            envelope_size, payload, payload_size);
    self->batch_count++;
    return 0;
}

int
hd_session_batch_take (hd_session_t *self, zmq_msg_t *body)
{
    int count = (int) self->batch_count;
    if (count == 0)
        return 0;
    //  The buffer becomes the frame: ZeroMQ frees it once it is sent
    hd_buffer_note_size (&self->batch_hint, self->batch_size);
    int rc = hd_msg_init_take (body, &self->batch, self->batch_size, self->batch_capacity);
    self->batch_size = self->batch_capacity = 0;
    self->batch_count = 0;
    return rc == 0 ? count : -1;
}

void
hd_session_batch_drop (hd_session_t *self)
{
    free (self->batch);
    self->batch = NULL;
    self->batch_size = self->batch_capacity = 0;
    self->batch_count = 0;
}
