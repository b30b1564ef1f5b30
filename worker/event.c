/*  event — the Herald envelope plus an opaque payload.

    The strings of an event live in one buffer (text), each NUL-terminated
    and found by offset, so a received event costs one allocation and a
    built one a few: a generic protobuf decode costs one per string. Small
    payloads live in the same buffer; a large one stays the zmq_msg_t it
    arrived in, so a received payload frame becomes the event's payload,
    and a sent one shares it, without copying. A change that does not fit
    where the old value was appends to text; when text is full it is
    rebuilt with only what is still in use. Encoding and decoding are
    written out by hand against proto/herald.proto (common/envelope.c
    reads), and tested against protobuf-c: the known fields encode byte for
    byte as protobuf-c writes them; unknown fields from a newer peer are
    passed on exactly as they came (protobuf-c would rewrite a needlessly
    long tag in its shortest form; the meaning is the same).
*/
#include "event.h"
#include "envelope.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <fcntl.h>
#include <unistd.h>

//  Payloads up to this size are kept with the strings (one allocation);
//  larger ones in a frame of their own, which is shared, never copied.
#define S_TEXT_PAYLOAD_MAX 4096
//  Room for the strings of a new event before its text first grows: a
//  typical envelope and a few hundred bytes of payload
#define S_NEW_TEXT 448

typedef struct {
    uint32_t key, key_length, value, value_length; // offsets and lengths in text
} s_attribute_t;

struct _hd_event_t {
    uint32_t offset[HD_ENVELOPE_STRINGS]; // in text; 0 when unset (text[0] is NUL)
    uint32_t length[HD_ENVELOPE_STRINGS];
    uint64_t time_us, seq, recorded_time_us;
    s_attribute_t *attributes;
    size_t attribute_count, attribute_capacity;
    uint8_t *unknown; // fields a newer peer sent, passed on as they came
    size_t unknown_size;
    char *text;
    size_t text_size, text_capacity;
    bool payload_in_text; // else in payload_frame
    uint32_t payload_offset;
    size_t payload_size;
    zmq_msg_t payload_frame;
    size_t inline_capacity; // bytes of inline_text
    char inline_text[];     // text until it first grows
};

static hd_event_t *
s_event_alloc (size_t text_capacity)
{
    hd_event_t *self = malloc (sizeof *self + text_capacity + 1);
    if (!self)
        return NULL;
    memset (self, 0, sizeof *self);
    self->text = self->inline_text;
    self->text[0] = 0;
    self->text_size = 1;
    self->text_capacity = self->inline_capacity = text_capacity + 1;
    self->payload_in_text = true;
    zmq_msg_init (&self->payload_frame);
    return self;
}

static void s_text_free (hd_event_t *self, char *text);

//  Back to what s_event_alloc made, in the same memory: what the event
//  held besides is released (the attributes' array stays, emptied).
static void
s_event_clear (hd_event_t *self)
{
    s_text_free (self, self->text);
    free (self->unknown);
    if (!self->payload_in_text) {
        zmq_msg_close (&self->payload_frame);
        zmq_msg_init (&self->payload_frame);
    }
    memset (self->offset, 0, sizeof self->offset);
    memset (self->length, 0, sizeof self->length);
    self->time_us = self->seq = self->recorded_time_us = 0;
    self->attribute_count = 0;
    self->unknown = NULL;
    self->unknown_size = 0;
    self->text = self->inline_text;
    self->text[0] = 0;
    self->text_size = 1;
    self->text_capacity = self->inline_capacity;
    self->payload_in_text = true;
    self->payload_offset = 0;
    self->payload_size = 0;
}

//  An event with room for text_capacity bytes of text: *spare_p (taken,
//  cleared) when its own room is as large, else new memory (*spare_p is
//  destroyed). spare_p may be NULL.
static hd_event_t *
s_event_take (hd_event_t **spare_p, size_t text_capacity)
{
    hd_event_t *spare = spare_p ? *spare_p : NULL;
    if (spare_p)
        *spare_p = NULL;
    if (spare && spare->inline_capacity >= text_capacity + 1) {
        s_event_clear (spare);
        return spare;
    }
    hd_event_destroy (&spare);
    return s_event_alloc (text_capacity);
}

hd_event_t *
hd_event_new (const char *type)
{
    hd_event_t *self = s_event_alloc (S_NEW_TEXT);
    if (self && hd_event_set_type (self, type))
        hd_event_destroy (&self);
    return self;
}

bool
hd_event_keepable (const hd_event_t *self)
{
    return self->text == self->inline_text && self->inline_capacity <= HD_EVENT_KEEP_MAX &&
           self->payload_in_text && !self->unknown;
}

bool
hd_event_renewable (const hd_event_t *self)
{
    return hd_event_keepable (self) && self->inline_capacity >= S_NEW_TEXT + 1;
}

int
hd_event_renew (hd_event_t *self, const char *type)
{
    if (!hd_event_renewable (self))
        return -1;
    s_event_clear (self);
    return hd_event_set_type (self, type);
}

void
hd_event_spares_keep (hd_event_spares_t *self, hd_event_t **event_p)
{
    if (!*event_p)
        return;
    if (self->count == self->capacity && self->capacity < self->max) {
        size_t capacity = self->capacity ? 2 * self->capacity : 16;
        capacity = capacity < self->max ? capacity : self->max;
        hd_event_t **grown = realloc (self->events, capacity * sizeof *grown);
        if (grown) {
            self->events = grown;
            self->capacity = capacity;
        }
    }
    if (self->count < self->capacity && self->count < self->max && hd_event_keepable (*event_p)) {
        self->events[self->count++] = *event_p;
        *event_p = NULL;
    } else
        hd_event_destroy (event_p);
}

void
hd_event_spares_drain (hd_event_spares_t *self)
{
    while (self->count)
        hd_event_destroy (&self->events[--self->count]);
    free (self->events);
    self->events = NULL;
    self->capacity = 0;
}

static void
s_text_free (hd_event_t *self, char *text)
{
    if (text != self->inline_text)
        free (text);
}

void
hd_event_destroy (hd_event_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_event_t *self = *self_p;
    s_text_free (self, self->text);
    free (self->attributes);
    free (self->unknown);
    zmq_msg_close (&self->payload_frame);
    free (self);
    *self_p = NULL;
}

//  Copies one NUL-terminated string of text into fresh at *size; returns
//  its new offset (0 stays 0: unset).
static uint32_t
s_move_string (const char *text, uint32_t offset, uint32_t length, char *fresh, size_t *size)
{
    if (offset == 0)
        return 0;
    uint32_t moved = (uint32_t) *size;
    memcpy (fresh + moved, text + offset, (size_t) length + 1);
    *size += (size_t) length + 1;
    return moved;
}

//  A new text with only what is in use and room for needed more bytes.
//  The old one is handed back in *retired (still readable: a value being
//  set may point into it) for the caller to free.
static int
s_text_rebuild (hd_event_t *self, size_t needed, char **retired)
{
    size_t live = 1 + (self->payload_in_text ? self->payload_size : 0);
    for (int index = 0; index < HD_ENVELOPE_STRINGS; index++)
        live += self->offset[index] ? self->length[index] + 1 : 0;
    for (size_t index = 0; index < self->attribute_count; index++) {
        s_attribute_t *entry = &self->attributes[index];
        live +=
            (entry->key ? entry->key_length + 1 : 0) + (entry->value ? entry->value_length + 1 : 0);
    }
    if (needed > UINT32_MAX || live + needed > UINT32_MAX / 2) {
        errno = EMSGSIZE; // offsets are 32 bits: no event comes near this
        return -1;
    }
    size_t capacity = 2 * (live + needed);
    char *fresh = malloc (capacity);
    if (!fresh)
        return -1;
    fresh[0] = 0;
    size_t size = 1;
    for (int index = 0; index < HD_ENVELOPE_STRINGS; index++)
        self->offset[index] =
            s_move_string (self->text, self->offset[index], self->length[index], fresh, &size);
    for (size_t index = 0; index < self->attribute_count; index++) {
        s_attribute_t *entry = &self->attributes[index];
        entry->key = s_move_string (self->text, entry->key, entry->key_length, fresh, &size);
        entry->value = s_move_string (self->text, entry->value, entry->value_length, fresh, &size);
    }
    if (self->payload_in_text && self->payload_size) {
        memcpy (fresh + size, self->text + self->payload_offset, self->payload_size);
        self->payload_offset = (uint32_t) size;
        size += self->payload_size;
    }
    *retired = self->text;
    self->text = fresh;
    self->text_size = size;
    self->text_capacity = capacity;
    return 0;
}

//  Makes room for needed more bytes of text, rebuilding it when full; the
//  old text, if any, is handed back in *retired for the caller to free
//  once it has read what it needs from it.
static inline int
s_text_room (hd_event_t *self, size_t needed, char **retired)
{
    *retired = NULL;
    if (self->text_capacity - self->text_size >= needed)
        return 0;
    return s_text_rebuild (self, needed, retired);
}

//  Appends size bytes at data (plus a NUL when terminate) to text and
//  returns their offset, or -1. data may point into text itself.
static inline int64_t
s_text_append (hd_event_t *self, const void *data, size_t size, bool terminate)
{
    size_t needed = size + (terminate ? 1 : 0);
    char *retired;
    if (s_text_room (self, needed, &retired))
        return -1;
    size_t offset = self->text_size;
    if (size)
        memcpy (self->text + offset, data, size);
    if (terminate)
        self->text[offset + size] = 0;
    self->text_size += needed;
    if (retired)
        s_text_free (self, retired);
    return (int64_t) offset;
}

//  Stores value (a C string, or size bytes when it may be unterminated)
//  at *offset / *length: in place when it fits, else appended.
static int
s_text_set (hd_event_t *self, uint32_t *offset, uint32_t *length, const char *value, size_t size)
{
    if (size == 0) {
        *offset = *length = 0;
        return 0;
    }
    if (*offset && size <= *length) {
        memmove (self->text + *offset, value, size);
        self->text[*offset + size] = 0;
        *length = (uint32_t) size;
        return 0;
    }
    int64_t appended = s_text_append (self, value, size, true);
    if (appended < 0)
        return -1;
    *offset = (uint32_t) appended;
    *length = (uint32_t) size;
    return 0;
}

static int
s_set_string (hd_event_t *self, hd_envelope_string_t index, const char *value)
{
    return s_text_set (self, &self->offset[index], &self->length[index], value,
                       value ? strlen (value) : 0);
}

static const char *
s_get_string (const hd_event_t *self, hd_envelope_string_t index)
{
    return self->text + self->offset[index];
}

static int
s_attribute_push (hd_event_t *self, const char *key, size_t key_size, const char *value,
                  size_t value_size)
{
    if (self->attribute_count == self->attribute_capacity) {
        size_t capacity = self->attribute_capacity ? self->attribute_capacity * 2 : 4;
        s_attribute_t *grown = realloc (self->attributes, capacity * sizeof *grown);
        if (!grown)
            return -1;
        self->attributes = grown;
        self->attribute_capacity = capacity;
    }
    //  Room for both first: key and value may point into this event's text,
    //  which a rebuild between the two would free under the second
    size_t needed = (key_size ? key_size + 1 : 0) + (value_size ? value_size + 1 : 0);
    char *retired;
    if (s_text_room (self, needed, &retired))
        return -1;
    s_attribute_t entry = {0, 0, 0, 0};
    //  Neither can fail now: both append into the room made above
    s_text_set (self, &entry.key, &entry.key_length, key, key_size);
    s_text_set (self, &entry.value, &entry.value_length, value, value_size);
    self->attributes[self->attribute_count++] = entry;
    if (retired)
        s_text_free (self, retired);
    return 0;
}

//  Adds the attributes and unknown fields of a scanned Event, whose counts
//  the scan gave.
static int
s_decode_rest (hd_event_t *self, const void *data, size_t size, size_t attributes,
               size_t unknown_size)
{
    if (unknown_size) {
        self->unknown = malloc (unknown_size);
        if (!self->unknown)
            return -1;
    }
    if (attributes > self->attribute_capacity) {
        //  A reused event's array, if any, is too small
        free (self->attributes);
        self->attribute_capacity = 0;
        self->attributes = malloc (attributes * sizeof *self->attributes);
        if (!self->attributes)
            return -1;
        self->attribute_capacity = attributes;
    }
    hd_envelope_walk_t walk;
    hd_envelope_walk_start (&walk, data, size);
    hd_text_t key, value, unknown;
    while (hd_envelope_walk_next (&walk, &key, &value, &unknown)) {
        if (unknown.data) {
            memcpy (self->unknown + self->unknown_size, unknown.data, unknown.size);
            self->unknown_size += unknown.size;
        } else if (s_attribute_push (self, key.data, key.size, value.data, value.size))
            return -1;
    }
    return 0;
}

//  An event from an encoded Event, with payload_room spare bytes of text.
//  NULL when the bytes are not a well-formed Event (errno EPROTO) or
//  memory ran out.
static hd_event_t *
s_decode (const void *data, size_t size, size_t payload_room, hd_event_t **spare_p)
{
    if (size > UINT32_MAX / 4) {
        errno = EMSGSIZE; // text offsets are 32 bits; no broker sends this
        return NULL;
    }
    hd_envelope_t scanned;
    //  The broker stores only events whose strings are UTF-8 without NUL
    if (hd_envelope_scan (&scanned, data, size, false) != HD_ENVELOPE_OK) {
        errno = EPROTO;
        return NULL;
    }
    //  The strings stay where they are in a copy of the envelope, each
    //  NUL-terminated over the byte after it: that is the next field's tag
    //  (or the end, for which one byte more is kept), which nothing reads
    //  once the scan is done. One copy instead of one per string. The
    //  attributes are copied after it: their keys and values, each with a
    //  NUL, take fewer bytes than the entries that encoded them.
    size_t attribute_room = scanned.attributes ? size : 0;
    hd_event_t *self = s_event_take (spare_p, size + 1 + attribute_room + payload_room);
    if (!self)
        return NULL;
    memcpy (self->text + 1, data, size);
    self->text[1 + size] = 0;
    self->text_size = size + 2;
    for (int index = 0; index < HD_ENVELOPE_STRINGS; index++) {
        const hd_text_t *text = &scanned.text[index];
        if (text->size == 0)
            continue; // unset: offset and length stay 0
        uint32_t offset = 1 + (uint32_t) ((const uint8_t *) text->data - (const uint8_t *) data);
        self->offset[index] = offset;
        self->length[index] = (uint32_t) text->size;
        self->text[offset + text->size] = 0;
    }
    self->time_us = scanned.time_us;
    self->seq = scanned.seq;
    self->recorded_time_us = scanned.recorded_time_us;
    if ((scanned.attributes || scanned.unknown_size) &&
        s_decode_rest (self, data, size, scanned.attributes, scanned.unknown_size))
        hd_event_destroy (&self);
    return self;
}

hd_event_t *
hd_event_decode (const void *envelope, size_t size, zmq_msg_t *payload)
{
    hd_event_t *self = s_decode (envelope, size, 0, NULL);
    if (self && payload) {
        self->payload_in_text = false;
        zmq_msg_move (&self->payload_frame, payload);
    }
    return self;
}

hd_event_t *
hd_event_decode_bytes (const void *envelope, size_t size, const void *payload, size_t payload_size)
{
    return hd_event_decode_bytes_into (NULL, envelope, size, payload, payload_size);
}

hd_event_t *
hd_event_decode_bytes_into (hd_event_t **spare_p, const void *envelope, size_t size,
                            const void *payload, size_t payload_size)
{
    hd_event_t *spare = spare_p ? *spare_p : NULL;
    if (spare_p)
        *spare_p = NULL;
    bool in_text = payload_size <= S_TEXT_PAYLOAD_MAX;
    hd_event_t *self = s_decode (envelope, size, in_text ? payload_size : 0, &spare);
    int saved = errno;         // why there is no event, for the caller
    hd_event_destroy (&spare); // not taken: the bytes made no event
    errno = saved;
    if (self && payload_size && hd_event_set_payload (self, payload, payload_size))
        hd_event_destroy (&self);
    return self;
}

static size_t
s_attribute_size (const s_attribute_t *entry)
{
    return (entry->key_length ? hd_bytes_field_size (entry->key_length) : 0) +
           (entry->value_length ? hd_bytes_field_size (entry->value_length) : 0);
}

//  Tags of fields 16 and up take two bytes
static size_t
s_varint_field_size (uint32_t number, uint64_t value)
{
    return value ? hd_varint_size ((uint64_t) number << 3) + hd_varint_size (value) : 0;
}

size_t
hd_event_encoded_size (const hd_event_t *self)
{
    size_t size = s_varint_field_size (HD_ENVELOPE_FIELD_TIME_US, self->time_us) +
                  s_varint_field_size (HD_ENVELOPE_FIELD_SEQ, self->seq) +
                  s_varint_field_size (HD_ENVELOPE_FIELD_RECORDED_TIME_US, self->recorded_time_us) +
                  self->unknown_size;
    for (int index = 0; index < HD_ENVELOPE_STRINGS; index++)
        if (self->length[index])
            size += hd_bytes_field_size (self->length[index]);
    for (size_t index = 0; index < self->attribute_count; index++)
        size += hd_bytes_field_size (s_attribute_size (&self->attributes[index]));
    return size;
}

static size_t
s_encode_string (const hd_event_t *self, uint8_t *out, hd_envelope_string_t index)
{
    if (!self->length[index])
        return 0;
    return hd_encode_bytes_field (out, (int) hd_envelope_string_field (index),
                                  s_get_string (self, index), self->length[index]);
}

//  Fields in number order, as protobuf-c writes them; unknown ones last.
size_t
hd_event_encode_into (const hd_event_t *self, uint8_t *out)
{
    size_t size = 0;
    for (int index = 0; index <= HD_ENVELOPE_SUBJECT; index++)
        size += s_encode_string (self, out + size, index);
    size += hd_encode_varint_field (out + size, HD_ENVELOPE_FIELD_TIME_US, self->time_us);
    for (int index = HD_ENVELOPE_CONTENT_TYPE; index < HD_ENVELOPE_STRINGS; index++)
        size += s_encode_string (self, out + size, index);
    for (size_t index = 0; index < self->attribute_count; index++) {
        const s_attribute_t *entry = &self->attributes[index];
        out[size++] = HD_ENVELOPE_FIELD_ATTRIBUTES << 3 | 2;
        size += hd_varint_encode (out + size, s_attribute_size (entry));
        if (entry->key_length)
            size +=
                hd_encode_bytes_field (out + size, 1, self->text + entry->key, entry->key_length);
        if (entry->value_length)
            size += hd_encode_bytes_field (out + size, 2, self->text + entry->value,
                                           entry->value_length);
    }
    size += hd_encode_varint_field (out + size, HD_ENVELOPE_FIELD_SEQ, self->seq);
    size += hd_encode_varint_field (out + size, HD_ENVELOPE_FIELD_RECORDED_TIME_US,
                                    self->recorded_time_us);
    if (self->unknown_size)
        memcpy (out + size, self->unknown, self->unknown_size);
    return size + self->unknown_size;
}

uint8_t *
hd_event_encode (const hd_event_t *self, size_t *size_p)
{
    size_t size = hd_event_encoded_size (self);
    uint8_t *out = malloc (size ? size : 1);
    if (out)
        *size_p = hd_event_encode_into (self, out);
    return out;
}

//  A frame with the payload: the event's own frame shared (zmq_msg_copy
//  only bumps a reference count), or a copy of a payload kept in text.
static int
s_payload_frame (const hd_event_t *self, zmq_msg_t *frame)
{
    if (self->payload_in_text)
        return hd_msg_init_copy (frame, hd_event_payload (self), self->payload_size);
    zmq_msg_init (frame);
    if (zmq_msg_copy (frame, (zmq_msg_t *) &self->payload_frame) == 0)
        return 0;
    zmq_msg_close (frame);
    return -1;
}

int
hd_event_send (const hd_event_t *self, void *socket, int flags)
{
    zmq_msg_t envelope, payload;
    if (zmq_msg_init_size (&envelope, hd_event_encoded_size (self)))
        return -1;
    hd_event_encode_into (self, zmq_msg_data (&envelope));
    if (s_payload_frame (self, &payload)) {
        zmq_msg_close (&envelope);
        return -1;
    }
    int rc = hd_send_msg (socket, &envelope, (flags & ~ZMQ_SNDMORE) | ZMQ_SNDMORE);
    if (rc == 0)
        rc = hd_send_msg (socket, &payload, flags);
    int saved = errno;
    zmq_msg_close (&envelope);
    zmq_msg_close (&payload);
    errno = saved;
    return rc;
}

hd_event_t *
hd_event_dup (const hd_event_t *self)
{
    if (!self)
        return NULL;
    //  An encode/decode round trip is the simplest complete deep copy
    size_t size;
    uint8_t *packed = hd_event_encode (self, &size);
    if (!packed)
        return NULL;
    hd_event_t *copy = NULL;
    if (self->payload_in_text)
        copy = hd_event_decode_bytes (packed, size, hd_event_payload (self), self->payload_size);
    else {
        zmq_msg_t payload;
        if (s_payload_frame (self, &payload) == 0) {
            copy = hd_event_decode (packed, size, &payload);
            zmq_msg_close (&payload);
        }
    }
    free (packed);
    return copy;
}

int
hd_event_set_id (hd_event_t *self, const char *id)
{
    return s_set_string (self, HD_ENVELOPE_ID, id);
}

int
hd_event_set_source (hd_event_t *self, const char *source)
{
    return s_set_string (self, HD_ENVELOPE_SOURCE, source);
}

int
hd_event_set_type (hd_event_t *self, const char *type)
{
    return s_set_string (self, HD_ENVELOPE_TYPE, type);
}

int
hd_event_set_subject (hd_event_t *self, const char *subject)
{
    return s_set_string (self, HD_ENVELOPE_SUBJECT, subject);
}

int
hd_event_set_content_type (hd_event_t *self, const char *content_type)
{
    return s_set_string (self, HD_ENVELOPE_CONTENT_TYPE, content_type);
}

int
hd_event_set_schema_version (hd_event_t *self, const char *schema_version)
{
    return s_set_string (self, HD_ENVELOPE_SCHEMA_VERSION, schema_version);
}

int
hd_event_set_partition_key (hd_event_t *self, const char *key)
{
    return s_set_string (self, HD_ENVELOPE_PARTITION_KEY, key);
}

int
hd_event_set_correlation_id (hd_event_t *self, const char *correlation_id)
{
    return s_set_string (self, HD_ENVELOPE_CORRELATION_ID, correlation_id);
}

int
hd_event_set_causation_id (hd_event_t *self, const char *causation_id)
{
    return s_set_string (self, HD_ENVELOPE_CAUSATION_ID, causation_id);
}

int
hd_event_set_traceparent (hd_event_t *self, const char *traceparent)
{
    return s_set_string (self, HD_ENVELOPE_TRACEPARENT, traceparent);
}

static s_attribute_t *
s_attribute_find (const hd_event_t *self, const char *key, size_t *index_p)
{
    for (size_t index = 0; index < self->attribute_count; index++) {
        s_attribute_t *entry = &self->attributes[index];
        if (strcmp (self->text + entry->key, key) == 0) {
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
    if (!key)
        return -1;
    size_t index;
    s_attribute_t *entry = s_attribute_find (self, key, &index);
    if (!value) {
        //  A NULL value removes the attribute
        if (entry) {
            memmove (self->attributes + index, self->attributes + index + 1,
                     (self->attribute_count - index - 1) * sizeof *entry);
            self->attribute_count--;
        }
        return 0;
    }
    if (entry)
        return s_text_set (self, &entry->value, &entry->value_length, value, strlen (value));
    return s_attribute_push (self, key, strlen (key), value, strlen (value));
}

void
hd_event_set_time_us (hd_event_t *self, uint64_t time_us)
{
    self->time_us = time_us;
}

void
hd_event_set_seq (hd_event_t *self, uint64_t seq)
{
    self->seq = seq;
}

int
hd_event_set_payload (hd_event_t *self, const void *data, size_t size)
{
    //  The new payload is in place before the old one goes: data may be it
    if (size <= S_TEXT_PAYLOAD_MAX) {
        int64_t offset = s_text_append (self, data, size, false);
        if (offset < 0)
            return -1;
        zmq_msg_close (&self->payload_frame);
        zmq_msg_init (&self->payload_frame);
        self->payload_in_text = true;
        self->payload_offset = (uint32_t) offset;
        self->payload_size = size;
        return 0;
    }
    zmq_msg_t payload;
    if (hd_msg_init_copy (&payload, data, size))
        return -1;
    zmq_msg_move (&self->payload_frame, &payload); // releases the old frame
    self->payload_in_text = false;
    self->payload_size = 0;
    return 0;
}

const char *
hd_event_id (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_ID);
}

const char *
hd_event_source (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_SOURCE);
}

const char *
hd_event_type (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_TYPE);
}

const char *
hd_event_subject (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_SUBJECT);
}

const char *
hd_event_content_type (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_CONTENT_TYPE);
}

const char *
hd_event_schema_version (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_SCHEMA_VERSION);
}

const char *
hd_event_partition_key (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_PARTITION_KEY);
}

const char *
hd_event_correlation_id (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_CORRELATION_ID);
}

const char *
hd_event_causation_id (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_CAUSATION_ID);
}

const char *
hd_event_traceparent (const hd_event_t *self)
{
    return s_get_string (self, HD_ENVELOPE_TRACEPARENT);
}

const char *
hd_event_attribute (const hd_event_t *self, const char *key)
{
    s_attribute_t *entry = key ? s_attribute_find (self, key, NULL) : NULL;
    return entry ? self->text + entry->value : NULL;
}

size_t
hd_event_attribute_count (const hd_event_t *self)
{
    return self->attribute_count;
}

const char *
hd_event_attribute_key (const hd_event_t *self, size_t index)
{
    return index < self->attribute_count ? self->text + self->attributes[index].key : NULL;
}

const char *
hd_event_attribute_value (const hd_event_t *self, size_t index)
{
    return index < self->attribute_count ? self->text + self->attributes[index].value : NULL;
}

uint64_t
hd_event_time_us (const hd_event_t *self)
{
    return self->time_us;
}

uint64_t
hd_event_seq (const hd_event_t *self)
{
    return self->seq;
}

uint64_t
hd_event_recorded_time_us (const hd_event_t *self)
{
    return self->recorded_time_us;
}

const void *
hd_event_payload (const hd_event_t *self)
{
    if (self->payload_in_text)
        return self->text + self->payload_offset;
    return zmq_msg_data ((zmq_msg_t *) &self->payload_frame);
}

size_t
hd_event_payload_size (const hd_event_t *self)
{
    return self->payload_in_text ? self->payload_size : zmq_msg_size (&self->payload_frame);
}

int
hd_event_inherit (hd_event_t *self, const hd_event_t *parent)
{
    const char *correlation = hd_event_correlation_id (parent);
    if (*correlation == 0)
        correlation = hd_event_id (parent);
    //  Copy first: parent may be self, and a setter may move its text
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
