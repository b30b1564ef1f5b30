/*  event — the Herald envelope plus an opaque payload.

    The envelope is a Herald__Event whose strings and attribute entries are
    all malloc'ed one by one, exactly as protobuf-c's unpacker lays them out,
    so one destructor (herald__event__free_unpacked) serves events we built
    and events we decoded. The payload is a zmq_msg_t so that a received
    payload frame becomes the event's payload, and a sent one shares it,
    without copying.
*/
#include "event.h"
#include "arena.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <fcntl.h>
#include <unistd.h>

struct _hd_event_t {
    Herald__Event *envelope;
    hd_arena_t *arena; // decoded events: the envelope lives here until changed
    zmq_msg_t payload;
};

static hd_event_t *
s_event_wrap (Herald__Event *envelope)
{
    hd_event_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->envelope = envelope;
    zmq_msg_init (&self->payload);
    return self;
}

hd_event_t *
hd_event_new (const char *type)
{
    Herald__Event *envelope = malloc (sizeof *envelope);
    if (!envelope)
        return NULL;
    herald__event__init (envelope);
    hd_event_t *self = s_event_wrap (envelope);
    if (!self) {
        free (envelope);
        return NULL;
    }
    if (hd_event_set_type (self, type)) {
        hd_event_destroy (&self);
        return NULL;
    }
    return self;
}

void
hd_event_destroy (hd_event_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_event_t *self = *self_p;
    herald__event__free_unpacked (self->envelope,
                                  self->arena ? hd_arena_allocator (self->arena) : NULL);
    hd_arena_destroy (&self->arena);
    zmq_msg_close (&self->payload);
    free (self);
    *self_p = NULL;
}

//  Received events are decoded into one arena (two allocations, not one per
//  string); the first change to one moves it to the malloc layout (s_own).
hd_event_t *
hd_event_decode (const void *envelope, size_t size, zmq_msg_t *payload)
{
    hd_arena_t *arena = hd_arena_new (sizeof (Herald__Event) + 2 * size + 256);
    if (!arena)
        return NULL;
    Herald__Event *unpacked = herald__event__unpack (hd_arena_allocator (arena), size, envelope);
    hd_event_t *self = unpacked ? s_event_wrap (unpacked) : NULL;
    if (!self) {
        if (unpacked)
            herald__event__free_unpacked (unpacked, hd_arena_allocator (arena));
        hd_arena_destroy (&arena);
        return NULL;
    }
    self->arena = arena;
    if (payload)
        zmq_msg_move (&self->payload, payload);
    return self;
}

uint8_t *
hd_event_encode (const hd_event_t *self, size_t *size_p)
{
    return hd_proto_pack (&self->envelope->base, size_p);
}

//  The payload is logically const; zmq_msg_copy only bumps a reference count.
static int
s_payload_share (const hd_event_t *self, zmq_msg_t *copy)
{
    zmq_msg_init (copy);
    return zmq_msg_copy (copy, (zmq_msg_t *) &self->payload);
}

int
hd_event_send (const hd_event_t *self, void *socket, int flags)
{
    zmq_msg_t payload;
    if (s_payload_share (self, &payload)) {
        zmq_msg_close (&payload);
        return -1;
    }
    int rc = hd_send_proto (socket, &self->envelope->base, (flags & ~ZMQ_SNDMORE) | ZMQ_SNDMORE);
    if (rc == 0)
        rc = hd_send_msg (socket, &payload, flags);
    int saved = errno;
    zmq_msg_close (&payload);
    errno = saved;
    return rc;
}

hd_event_t *
hd_event_dup (const hd_event_t *self)
{
    if (!self)
        return NULL;
    //  A pack/unpack round trip is the simplest correct deep copy of a
    //  message with maps and unknown fields
    size_t size;
    uint8_t *packed = hd_event_encode (self, &size);
    if (!packed)
        return NULL;
    hd_event_t *copy = hd_event_decode (packed, size, NULL);
    free (packed);
    if (copy && s_payload_share (self, &copy->payload))
        hd_event_destroy (&copy);
    return copy;
}

Herald__Event *
hd_event_envelope (hd_event_t *self)
{
    return self->envelope;
}

//  Before a change: an envelope in an arena becomes a malloc'ed one, whose
//  strings the setters may free and replace one by one.
static int
s_own (hd_event_t *self)
{
    if (!self->arena)
        return 0;
    size_t size;
    uint8_t *packed = hd_proto_pack (&self->envelope->base, &size);
    Herald__Event *owned = packed ? herald__event__unpack (NULL, size, packed) : NULL;
    free (packed);
    if (!owned)
        return -1;
    herald__event__free_unpacked (self->envelope, hd_arena_allocator (self->arena));
    hd_arena_destroy (&self->arena);
    self->envelope = owned;
    return 0;
}

//  Unset strings point at protobuf_c_empty_string, which the protobuf-c
//  destructor knows not to free.
static int
s_set_string (char **field, const char *value)
{
    char *copy = (char *) protobuf_c_empty_string;
    if (value && *value) {
        copy = strdup (value);
        if (!copy)
            return -1;
    }
    if (*field && *field != protobuf_c_empty_string)
        free (*field);
    *field = copy;
    return 0;
}

static const char *
s_get_string (const char *field)
{
    return field ? field : "";
}

int
hd_event_set_id (hd_event_t *self, const char *id)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->id, id);
}

int
hd_event_set_source (hd_event_t *self, const char *source)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->source, source);
}

int
hd_event_set_type (hd_event_t *self, const char *type)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->type, type);
}

int
hd_event_set_subject (hd_event_t *self, const char *subject)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->subject, subject);
}

int
hd_event_set_content_type (hd_event_t *self, const char *content_type)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->content_type, content_type);
}

int
hd_event_set_schema_version (hd_event_t *self, const char *schema_version)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->schema_version, schema_version);
}

int
hd_event_set_partition_key (hd_event_t *self, const char *key)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->partition_key, key);
}

int
hd_event_set_correlation_id (hd_event_t *self, const char *correlation_id)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->correlation_id, correlation_id);
}

int
hd_event_set_causation_id (hd_event_t *self, const char *causation_id)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->causation_id, causation_id);
}

int
hd_event_set_traceparent (hd_event_t *self, const char *traceparent)
{
    return s_own (self) ? -1 : s_set_string (&self->envelope->traceparent, traceparent);
}

static Herald__Event__AttributesEntry *
s_attribute_find (const hd_event_t *self, const char *key, size_t *index_p)
{
    for (size_t index = 0; index < self->envelope->n_attributes; index++) {
        Herald__Event__AttributesEntry *entry = self->envelope->attributes[index];
        if (entry->key && strcmp (entry->key, key) == 0) {
            if (index_p)
                *index_p = index;
            return entry;
        }
    }
    return NULL;
}

int
hd_event_set_attribute (hd_event_t *self, const char *key, const char *value)
{
    if (!key || s_own (self))
        return -1;
    Herald__Event *envelope = self->envelope;
    size_t index;
    Herald__Event__AttributesEntry *entry = s_attribute_find (self, key, &index);
    if (!value) {
        //  A NULL value removes the attribute
        if (entry) {
            protobuf_c_message_free_unpacked (&entry->base, NULL);
            memmove (envelope->attributes + index, envelope->attributes + index + 1,
                     (envelope->n_attributes - index - 1) * sizeof (entry));
            envelope->n_attributes--;
        }
        return 0;
    }
    if (entry)
        return s_set_string (&entry->value, value);

    Herald__Event__AttributesEntry **grown = realloc (
        envelope->attributes, (envelope->n_attributes + 1) * sizeof (*envelope->attributes));
    if (!grown)
        return -1;
    envelope->attributes = grown;
    entry = malloc (sizeof *entry);
    if (!entry)
        return -1;
    herald__event__attributes_entry__init (entry);
    if (s_set_string (&entry->key, key) || s_set_string (&entry->value, value)) {
        protobuf_c_message_free_unpacked (&entry->base, NULL);
        return -1;
    }
    envelope->attributes[envelope->n_attributes++] = entry;
    return 0;
}

void
hd_event_set_time_us (hd_event_t *self, uint64_t time_us)
{
    self->envelope->time_us = time_us;
}

void
hd_event_set_seq (hd_event_t *self, uint64_t seq)
{
    self->envelope->seq = seq;
}

int
hd_event_set_payload (hd_event_t *self, const void *data, size_t size)
{
    zmq_msg_t payload;
    if (zmq_msg_init_size (&payload, size))
        return -1;
    if (size)
        memcpy (zmq_msg_data (&payload), data, size);
    zmq_msg_close (&self->payload);
    zmq_msg_init (&self->payload);
    zmq_msg_move (&self->payload, &payload);
    zmq_msg_close (&payload);
    return 0;
}

const char *
hd_event_id (const hd_event_t *self)
{
    return s_get_string (self->envelope->id);
}

const char *
hd_event_source (const hd_event_t *self)
{
    return s_get_string (self->envelope->source);
}

const char *
hd_event_type (const hd_event_t *self)
{
    return s_get_string (self->envelope->type);
}

const char *
hd_event_subject (const hd_event_t *self)
{
    return s_get_string (self->envelope->subject);
}

const char *
hd_event_content_type (const hd_event_t *self)
{
    return s_get_string (self->envelope->content_type);
}

const char *
hd_event_schema_version (const hd_event_t *self)
{
    return s_get_string (self->envelope->schema_version);
}

const char *
hd_event_partition_key (const hd_event_t *self)
{
    return s_get_string (self->envelope->partition_key);
}

const char *
hd_event_correlation_id (const hd_event_t *self)
{
    return s_get_string (self->envelope->correlation_id);
}

const char *
hd_event_causation_id (const hd_event_t *self)
{
    return s_get_string (self->envelope->causation_id);
}

const char *
hd_event_traceparent (const hd_event_t *self)
{
    return s_get_string (self->envelope->traceparent);
}

const char *
hd_event_attribute (const hd_event_t *self, const char *key)
{
    Herald__Event__AttributesEntry *entry = key ? s_attribute_find (self, key, NULL) : NULL;
    return entry ? s_get_string (entry->value) : NULL;
}

size_t
hd_event_attribute_count (const hd_event_t *self)
{
    return self->envelope->n_attributes;
}

const char *
hd_event_attribute_key (const hd_event_t *self, size_t index)
{
    return index < self->envelope->n_attributes
               ? s_get_string (self->envelope->attributes[index]->key)
               : NULL;
}

const char *
hd_event_attribute_value (const hd_event_t *self, size_t index)
{
    return index < self->envelope->n_attributes
               ? s_get_string (self->envelope->attributes[index]->value)
               : NULL;
}

uint64_t
hd_event_time_us (const hd_event_t *self)
{
    return self->envelope->time_us;
}

uint64_t
hd_event_seq (const hd_event_t *self)
{
    return self->envelope->seq;
}

uint64_t
hd_event_recorded_time_us (const hd_event_t *self)
{
    return self->envelope->recorded_time_us;
}

const void *
hd_event_payload (const hd_event_t *self)
{
    return zmq_msg_data ((zmq_msg_t *) &self->payload);
}

size_t
hd_event_payload_size (const hd_event_t *self)
{
    return zmq_msg_size (&self->payload);
}

int
hd_event_inherit (hd_event_t *self, const hd_event_t *parent)
{
    const char *correlation = hd_event_correlation_id (parent);
    if (*correlation == 0)
        correlation = hd_event_id (parent);
    //  Copy first: parent may be self
    char *correlation_copy = strdup (correlation);
    char *causation_copy = strdup (hd_event_id (parent));
    int rc = -1;
    if (correlation_copy && causation_copy &&
        hd_event_set_correlation_id (self, correlation_copy) == 0 &&
        hd_event_set_causation_id (self, causation_copy) == 0)
        rc = 0;
    free (correlation_copy);
    free (causation_copy);
    return rc;
}

int
hd_event_set_random_id (hd_event_t *self)
{
    uint8_t bytes[16];
    size_t filled = 0;
    while (filled < sizeof bytes) {
        ssize_t got = getrandom (bytes + filled, sizeof bytes - filled, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        filled += (size_t) got;
    }
    char text[sizeof bytes * 2 + 1];
    for (size_t index = 0; index < sizeof bytes; index++)
        snprintf (text + index * 2, 3, "%02x", bytes[index]);
    return hd_event_set_id (self, text);
}
