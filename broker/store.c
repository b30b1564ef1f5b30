/*  store — in-memory event store.

    Records live in a circular array indexed by seq - first_seq. Released
    slots are NULL; first_seq advances over them, so memory follows the
    oldest event some pool still holds.
*/
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct _hd_store_t {
    hd_record_t **slot; // circular, capacity a power of two
    size_t capacity;
    uint64_t first_seq; // oldest seq that may still be held
    uint64_t next_seq;
    size_t events;
    size_t bytes;
    size_t max_bytes;
};

hd_store_t *
hd_store_new (size_t max_bytes)
{
    hd_store_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->capacity = 1024;
    self->slot = calloc (self->capacity, sizeof *self->slot);
    if (!self->slot) {
        free (self);
        return NULL;
    }
    self->first_seq = self->next_seq = 1;
    self->max_bytes = max_bytes;
    return self;
}

static void
s_record_free (hd_record_t *record)
{
    zmq_msg_close (&record->envelope);
    zmq_msg_close (&record->payload);
    free (record);
}

void
hd_store_destroy (hd_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_store_t *self = *self_p;
    for (uint64_t seq = self->first_seq; seq < self->next_seq; seq++) {
        hd_record_t *record = self->slot[seq & (self->capacity - 1)];
        if (record)
            s_record_free (record);
    }
    free (self->slot);
    free (self);
    *self_p = NULL;
}

uint64_t
hd_store_next_seq (hd_store_t *self)
{
    return self->next_seq;
}

bool
hd_store_full (hd_store_t *self, size_t size)
{
    return self->bytes + size > self->max_bytes;
}

//  Double the ring, keeping each seq at seq & (capacity - 1).
static int
s_grow (hd_store_t *self)
{
    size_t capacity = self->capacity * 2;
    hd_record_t **slot = calloc (capacity, sizeof *slot);
    if (!slot)
        return -1;
    for (uint64_t seq = self->first_seq; seq < self->next_seq; seq++)
        slot[seq & (capacity - 1)] = self->slot[seq & (self->capacity - 1)];
    free (self->slot);
    self->slot = slot;
    self->capacity = capacity;
    return 0;
}

//  An event nobody holds: its frames are taken all the same, and dropped.
static void
s_discard (zmq_msg_t *envelope, zmq_msg_t *payload)
{
    zmq_msg_close (envelope);
    zmq_msg_init (envelope);
    zmq_msg_close (payload);
    zmq_msg_init (payload);
}

uint64_t
hd_store_append (hd_store_t *self, zmq_msg_t *envelope, zmq_msg_t *payload, uint32_t holders)
{
    uint64_t seq = self->next_seq;
    if (holders == 0 && self->first_seq == seq) {
        //  Nothing is held: the window simply moves on
        s_discard (envelope, payload);
        self->first_seq++;
        self->next_seq++;
        return seq;
    }
    if (seq - self->first_seq + 1 > self->capacity && s_grow (self) != 0) {
        errno = ENOMEM;
        return 0;
    }
    if (holders == 0) {
        s_discard (envelope, payload);
        self->slot[seq & (self->capacity - 1)] = NULL;
        self->next_seq++;
        return seq;
    }
    hd_record_t *record = malloc (sizeof *record);
    if (!record) {
        errno = ENOMEM;
        return 0;
    }
    record->seq = seq;
    record->holders = holders;
    zmq_msg_init (&record->envelope);
    zmq_msg_init (&record->payload);
    zmq_msg_move (&record->envelope, envelope);
    zmq_msg_move (&record->payload, payload);
    self->slot[seq & (self->capacity - 1)] = record;
    self->next_seq++;
    self->events++;
    self->bytes += zmq_msg_size (&record->envelope) + zmq_msg_size (&record->payload);
    return seq;
}

hd_record_t *
hd_store_get (hd_store_t *self, uint64_t seq)
{
    if (seq < self->first_seq || seq >= self->next_seq)
        return NULL;
    return self->slot[seq & (self->capacity - 1)];
}

void
hd_store_release (hd_store_t *self, uint64_t seq)
{
    hd_record_t *record = hd_store_get (self, seq);
    if (!record || --record->holders > 0)
        return;
    self->slot[seq & (self->capacity - 1)] = NULL;
    self->events--;
    self->bytes -= zmq_msg_size (&record->envelope) + zmq_msg_size (&record->payload);
    s_record_free (record);
    while (self->first_seq < self->next_seq && !self->slot[self->first_seq & (self->capacity - 1)])
        self->first_seq++;
}

size_t
hd_store_events (hd_store_t *self)
{
    return self->events;
}

size_t
hd_store_bytes (hd_store_t *self)
{
    return self->bytes;
}
