/*  codec — framing shared by the broker and libherald. */
#include "codec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *
hd_command_name (int command)
{
    switch (command) {
        case HD_CMD_PUBLISH: return "PUBLISH";
        case HD_CMD_CONFIRM: return "CONFIRM";
        case HD_CMD_REJECT: return "REJECT";
        case HD_CMD_CONFIRMS: return "CONFIRMS";
        case HD_CMD_JOIN: return "JOIN";
        case HD_CMD_JOINED: return "JOINED";
        case HD_CMD_DELIVER: return "DELIVER";
        case HD_CMD_ACK: return "ACK";
        case HD_CMD_NACK: return "NACK";
        case HD_CMD_TERM: return "TERM";
        case HD_CMD_PROGRESS: return "PROGRESS";
        case HD_CMD_CREDIT: return "CREDIT";
        case HD_CMD_LEAVE: return "LEAVE";
        case HD_CMD_PUBLISHES: return "PUBLISHES";
        case HD_CMD_DELIVERS: return "DELIVERS";
        case HD_CMD_HEARTBEAT: return "HEARTBEAT";
        case HD_CMD_SUBSCRIBER: return "SUBSCRIBER";
        case HD_CMD_STATS: return "STATS";
        case HD_CMD_STATS_REPLY: return "STATS_REPLY";
        case HD_CMD_DLQ_LIST: return "DLQ_LIST";
        case HD_CMD_DLQ_LIST_REPLY: return "DLQ_LIST_REPLY";
        case HD_CMD_DLQ_SHOW: return "DLQ_SHOW";
        case HD_CMD_DLQ_EVENT: return "DLQ_EVENT";
        case HD_CMD_DLQ_REPLAY: return "DLQ_REPLAY";
        case HD_CMD_DLQ_PURGE: return "DLQ_PURGE";
        case HD_CMD_DLQ_DONE: return "DLQ_DONE";
        case HD_CMD_REPLAY: return "REPLAY";
        case HD_CMD_REPLAY_EVENT: return "REPLAY_EVENT";
        case HD_CMD_REPLAY_END: return "REPLAY_END";
        case HD_CMD_ERROR: return "ERROR";
        default: return "UNKNOWN";
    }
}

const char *
hd_error_name (int code)
{
    const ProtobufCEnumValue *value =
        protobuf_c_enum_descriptor_get_value (&herald__error_code__descriptor, code);
    return value ? value->name : "UNKNOWN";
}

void
hd_header_encode (uint8_t header[HD_HEADER_SIZE], hd_command_t command)
{
    header[0] = 'H';
    header[1] = 'D';
    header[2] = HD_PROTOCOL_VERSION;
    header[3] = (uint8_t) command;
}

int
hd_header_decode (const void *data, size_t size, int *command)
{
    const uint8_t *bytes = data;
    if (size != HD_HEADER_SIZE || bytes[0] != 'H' || bytes[1] != 'D')
        return HERALD__ERROR_CODE__MALFORMED;
    if (bytes[2] != HD_PROTOCOL_VERSION)
        return HERALD__ERROR_CODE__BAD_VERSION;
    *command = bytes[3];
    return 0;
}

int
hd_frames_recv (hd_frames_t *self, void *socket, int flags)
{
    self->count = 0;
    self->truncated = false;
    bool more = true;
    while (more && self->count < HD_MAX_FRAMES) {
        zmq_msg_t *frame = &self->frame[self->count];
        zmq_msg_init (frame);
        if (zmq_msg_recv (frame, socket, self->count == 0 ? flags : 0) == -1) {
            int saved = errno;
            zmq_msg_close (frame);
            hd_frames_close (self);
            errno = saved;
            return -1;
        }
        self->count++;
        more = zmq_msg_more (frame);
    }
    //  Too many frames: discard the rest so the next receive starts clean
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_init (&scratch);
        if (zmq_msg_recv (&scratch, socket, 0) == -1)
            more = false;
        else
            more = zmq_msg_more (&scratch);
        zmq_msg_close (&scratch);
        self->truncated = true;
    }
    return 0;
}

void
hd_frames_close (hd_frames_t *self)
{
    for (int index = 0; index < self->count; index++)
        zmq_msg_close (&self->frame[index]);
    self->count = 0;
}

const void *
hd_frames_data (hd_frames_t *self, int index)
{
    return index >= 0 && index < self->count ? zmq_msg_data (&self->frame[index]) : NULL;
}

size_t
hd_frames_size (hd_frames_t *self, int index)
{
    return index >= 0 && index < self->count ? zmq_msg_size (&self->frame[index]) : 0;
}

int
hd_send_header (void *socket, hd_command_t command, int flags)
{
    uint8_t header[HD_HEADER_SIZE];
    hd_header_encode (header, command);
    return hd_send_bytes (socket, header, sizeof header, flags);
}

int
hd_send_bytes (void *socket, const void *data, size_t size, int flags)
{
    return zmq_send (socket, data, size, flags) == -1 ? -1 : 0;
}

int
hd_send_proto (void *socket, const ProtobufCMessage *message, int flags)
{
    size_t size = protobuf_c_message_get_packed_size (message);
    zmq_msg_t frame;
    if (zmq_msg_init_size (&frame, size) == -1)
        return -1;
    protobuf_c_message_pack (message, zmq_msg_data (&frame));
    int rc = zmq_msg_send (&frame, socket, flags);
    int saved = errno;
    zmq_msg_close (&frame);
    errno = saved;
    return rc == -1 ? -1 : 0;
}

int
hd_send_msg (void *socket, zmq_msg_t *frame, int flags)
{
    return zmq_msg_send (frame, socket, flags) == -1 ? -1 : 0;
}

int
hd_send_command (void *socket, const void *routing_id, size_t routing_id_size, hd_command_t command,
                 const ProtobufCMessage *body, int flags)
{
    int extra = flags & ~ZMQ_SNDMORE;
    if (routing_id && hd_send_bytes (socket, routing_id, routing_id_size, ZMQ_SNDMORE | extra))
        return -1;
    if (hd_send_header (socket, command, (body ? ZMQ_SNDMORE : 0) | extra))
        return -1;
    if (body && hd_send_proto (socket, body, extra))
        return -1;
    return 0;
}

size_t
hd_encode_deliver (uint8_t *out, uint64_t seq, uint32_t attempt, uint32_t ack_wait_ms)
{
    size_t size = hd_encode_varint_field (out, 1, seq);
    size += hd_encode_varint_field (out + size, 2, attempt);
    return size + hd_encode_varint_field (out + size, 3, ack_wait_ms);
}

size_t
hd_encode_bytes_field (uint8_t *out, int field, const void *data, size_t size)
{
    size_t head = hd_varint_encode (out, (uint64_t) field << 3 | 2);
    head += hd_varint_encode (out + head, size);
    memcpy (out + head, data, size);
    return head + size;
}

//  One entry of a batch body: field 1 of the batch, holding the varint
//  fields already encoded in varints, then the Event (field 4) and the
//  payload (field 5, left out when empty, as proto3 does).
static size_t
s_encode_item (uint8_t *out, const uint8_t *varints, size_t varints_size, const void *envelope,
               size_t envelope_size, const void *payload, size_t payload_size)
{
    //  A submessage is always written, even when empty
    size_t inner = varints_size + hd_bytes_field_size (envelope_size);
    if (payload_size)
        inner += hd_bytes_field_size (payload_size);
    out[0] = 1 << 3 | 2;
    size_t size = 1 + hd_varint_encode (out + 1, inner);
    memcpy (out + size, varints, varints_size);
    size += varints_size;
    size += hd_encode_bytes_field (out + size, 4, envelope, envelope_size);
    if (payload_size)
        size += hd_encode_bytes_field (out + size, 5, payload, payload_size);
    return size;
}

size_t
hd_encode_delivery (uint8_t *out, uint64_t seq, uint32_t attempt, uint32_t ack_wait_ms,
                    const void *envelope, size_t envelope_size, const void *payload,
                    size_t payload_size)
{
    uint8_t varints[HD_VARINTS_MAX];
    size_t varints_size = hd_encode_deliver (varints, seq, attempt, ack_wait_ms);
    return s_encode_item (out, varints, varints_size, envelope, envelope_size, payload,
                          payload_size);
}

size_t
hd_encode_fanout_item (uint8_t *out, uint64_t epoch, uint64_t type_seq, const void *envelope,
                       size_t envelope_size, const void *payload, size_t payload_size)
{
    uint8_t varints[HD_VARINTS_MAX];
    size_t varints_size = hd_encode_varint_field (varints, 1, epoch);
    varints_size += hd_encode_varint_field (varints + varints_size, 2, type_seq);
    return s_encode_item (out, varints, varints_size, envelope, envelope_size, payload,
                          payload_size);
}

//  Reads the next entry of a batch body's repeated field 1 and the varint
//  and bytes fields 1..HD_ITEM_FIELDS of it; other fields are skipped.
//  Returns 1, 0 at the end of the body, -1 when malformed.
#define HD_ITEM_FIELDS 5
typedef struct {
    uint64_t value[HD_ITEM_FIELDS + 1];
    const uint8_t *data[HD_ITEM_FIELDS + 1]; // bytes fields; NULL for varints
} s_item_t;

//  Fixed-size fields are nothing any item here reads: they are skipped.
static bool
s_fixed (const hd_proto_field_t *field)
{
    return field->wire_type == 1 || field->wire_type == 5;
}

static int
s_item_read (const uint8_t **cursor, const uint8_t *end, s_item_t *item)
{
    while (*cursor < end) {
        hd_proto_field_t field;
        if (!hd_proto_field_read (cursor, end, &field))
            return -1;
        if (field.number != 1 || s_fixed (&field))
            continue; // a field this version does not know
        if (!field.data)
            return -1;
        memset (item, 0, sizeof *item);
        const uint8_t *inner = field.data, *inner_end = field.data + field.value;
        while (inner < inner_end) {
            hd_proto_field_t entry;
            if (!hd_proto_field_read (&inner, inner_end, &entry))
                return -1;
            if (entry.number <= HD_ITEM_FIELDS && !s_fixed (&entry)) {
                item->value[entry.number] = entry.value;
                item->data[entry.number] = entry.data;
            }
        }
        return 1;
    }
    return 0;
}

int
hd_decode_delivery (const uint8_t **cursor, const uint8_t *end, hd_delivery_view_t *view)
{
    s_item_t item;
    int rc = s_item_read (cursor, end, &item);
    if (rc != 1)
        return rc;
    //  Fields 1-3 are varints, 4 and 5 length-delimited
    if (item.data[1] || item.data[2] || item.data[3] || (item.value[4] && !item.data[4]) ||
        (item.value[5] && !item.data[5]))
        return -1;
    view->seq = item.value[1];
    view->attempt = (uint32_t) item.value[2];
    view->ack_wait_ms = (uint32_t) item.value[3];
    view->envelope = item.data[4];
    view->envelope_size = item.data[4] ? item.value[4] : 0;
    view->payload = item.data[5];
    view->payload_size = item.data[5] ? item.value[5] : 0;
    return 1;
}

static size_t
s_publish_inner_size (uint64_t corr, size_t event_size, size_t payload_size)
{
    size_t inner = (corr ? hd_varint_field_size (corr) : 0) + hd_bytes_field_size (event_size);
    if (payload_size)
        inner += hd_bytes_field_size (payload_size);
    return inner;
}

size_t
hd_publish_item_size (uint64_t corr, size_t event_size, size_t payload_size)
{
    size_t inner = s_publish_inner_size (corr, event_size, payload_size);
    return hd_bytes_field_size (inner);
}

int
hd_decode_fanout_item (const uint8_t **cursor, const uint8_t *end, hd_fanout_view_t *view)
{
    s_item_t item;
    int rc = s_item_read (cursor, end, &item);
    if (rc != 1)
        return rc;
    if (item.data[1] || item.data[2] || !item.data[4] || (item.value[5] && !item.data[5]))
        return -1; // epoch and type_seq are varints; the event is required
    view->epoch = item.value[1];
    view->type_seq = item.value[2];
    view->envelope = item.data[4];
    view->envelope_size = item.value[4];
    view->payload = item.data[5];
    view->payload_size = item.data[5] ? item.value[5] : 0;
    return 1;
}

size_t
hd_encode_publish_item (uint8_t *out, uint64_t corr, size_t event_size, const void *payload,
                        size_t payload_size, uint8_t **event_at)
{
    //  Like protobuf-c: a set submessage is written even when empty
    out[0] = 1 << 3 | 2;
    size_t size =
        1 + hd_varint_encode (out + 1, s_publish_inner_size (corr, event_size, payload_size));
    size += hd_encode_varint_field (out + size, 1, corr);
    out[size++] = 2 << 3 | 2;
    size += hd_varint_encode (out + size, event_size);
    *event_at = out + size;
    size += event_size;
    if (payload_size)
        size += hd_encode_bytes_field (out + size, 3, payload, payload_size);
    return size;
}

int
hd_decode_publish_item (const uint8_t **cursor, const uint8_t *end, hd_publish_view_t *view)
{
    s_item_t item;
    int rc = s_item_read (cursor, end, &item);
    if (rc != 1)
        return rc;
    if (item.data[1] || !item.data[2] || (item.value[3] && !item.data[3]))
        return -1; // corr is a varint; the event is required
    view->corr = item.value[1];
    view->envelope = item.data[2];
    view->envelope_size = item.value[2];
    view->payload = item.data[3];
    view->payload_size = item.data[3] ? item.value[3] : 0;
    return 1;
}

size_t
hd_encode_state_op (uint8_t *out, uint32_t pool, int field, uint64_t seq, uint32_t attempt)
{
    size_t size = hd_encode_varint_field (out, 1, pool);
    //  A oneof member is encoded even when zero
    size += hd_varint_encode (out + size, (uint64_t) field << 3);
    size += hd_varint_encode (out + size, seq);
    return size + hd_encode_varint_field (out + size, 10, attempt);
}

static size_t
s_packed_size (const uint64_t *values, size_t count)
{
    size_t size = 0;
    for (size_t index = 0; index < count; index++)
        size += hd_varint_size (values[index]);
    return size;
}

size_t
hd_confirms_size (const uint64_t *corr, const uint64_t *seq, size_t count)
{
    return hd_bytes_field_size (s_packed_size (corr, count)) +
           hd_bytes_field_size (s_packed_size (seq, count)) + hd_bytes_field_size (count);
}

//  The values as one packed field. Its length is written once they are:
//  a guess of one byte a value, moved when they took other than that.
static size_t
s_encode_packed (uint8_t *out, int field, const uint64_t *values, size_t count)
{
    out[0] = (uint8_t) (field << 3 | 2);
    size_t guess = hd_varint_size (count);
    uint8_t *at = out + 1 + guess;
    for (size_t index = 0; index < count; index++)
        at += hd_varint_encode (at, values[index]);
    size_t length = (size_t) (at - (out + 1 + guess));
    size_t head = hd_varint_size (length);
    if (head != guess)
        memmove (out + 1 + head, out + 1 + guess, length);
    hd_varint_encode (out + 1, length);
    return 1 + head + length;
}

size_t
hd_encode_confirms (uint8_t *out, const uint64_t *corr, const uint64_t *seq, const bool *duplicate,
                    size_t count)
{
    size_t size = s_encode_packed (out, 1, corr, count);
    size += s_encode_packed (out + size, 2, seq, count);
    out[size++] = 3 << 3 | 2;
    size += hd_varint_encode (out + size, count);
    for (size_t index = 0; index < count; index++)
        out[size++] = duplicate[index] ? 1 : 0;
    return size;
}

//  The packed field with this tag at *cursor: its bytes, and how many
//  varints they hold (each must end inside them). -1 when it is not there.
static int
s_packed_read (const uint8_t **cursor, const uint8_t *end, uint8_t tag, const uint8_t **data,
               const uint8_t **data_end, size_t *count)
{
    uint64_t length;
    if (*cursor >= end || **cursor != tag)
        return -1;
    (*cursor)++;
    if (!hd_varint_read (cursor, end, &length) || length > (uint64_t) (end - *cursor))
        return -1;
    *data = *cursor;
    *data_end = *cursor + length;
    *cursor += length;
    //  A varint ends at each byte without the high bit, after at most
    //  nine that have it; the last byte must end one
    size_t ends = 0, run = 0;
    for (const uint8_t *at = *data; at < *data_end; at++) {
        if (!(*at & 0x80)) {
            ends++;
            run = 0;
        } else if (++run > 9)
            return -1;
    }
    if (run)
        return -1;
    *count = ends;
    return 0;
}

int
hd_decode_confirms (const uint8_t *data, size_t size, hd_confirms_view_t *view)
{
    const uint8_t *cursor = data, *end = data + size, *duplicate_end;
    size_t corrs, seqs, flags;
    if (s_packed_read (&cursor, end, 1 << 3 | 2, &view->corr, &view->corr_end, &corrs) ||
        s_packed_read (&cursor, end, 2 << 3 | 2, &view->seq, &view->seq_end, &seqs) ||
        s_packed_read (&cursor, end, 3 << 3 | 2, &view->duplicate, &duplicate_end, &flags) ||
        cursor != end)
        return -1;
    //  One byte per flag, each 0 or 1: then flags counts them
    if ((size_t) (duplicate_end - view->duplicate) != flags || corrs != seqs || corrs != flags)
        return -1;
    for (const uint8_t *at = view->duplicate; at < duplicate_end; at++)
        if (*at > 1)
            return -1;
    view->count = corrs;
    return 0;
}

bool
hd_confirms_next (hd_confirms_view_t *view, uint64_t *corr, uint64_t *seq, bool *duplicate)
{
    if (view->count == 0)
        return false;
    //  Neither can fail: hd_decode_confirms counted whole varints
    hd_varint_read (&view->corr, view->corr_end, corr);
    hd_varint_read (&view->seq, view->seq_end, seq);
    *duplicate = *view->duplicate++ == 1;
    view->count--;
    return true;
}

int
hd_decode_settle (const uint8_t *data, size_t size, hd_settle_view_t *view)
{
    const uint8_t *cursor = data, *end = data + size;
    size_t seqs, attempts;
    if (s_packed_read (&cursor, end, 1 << 3 | 2, &view->seq, &view->seq_end, &seqs) ||
        s_packed_read (&cursor, end, 2 << 3 | 2, &view->attempt, &view->attempt_end, &attempts) ||
        seqs != attempts || seqs == 0)
        return -1;
    uint64_t handle_ns = 0;
    if (cursor < end && (*cursor++ != (3 << 3 | 0) || !hd_varint_read (&cursor, end, &handle_ns)))
        return -1;
    if (cursor != end)
        return -1;
    view->count = seqs;
    view->handle_ns = (uint32_t) handle_ns; // a uint32: its low 32 bits, as protobuf-c reads it
    return 0;
}

bool
hd_settle_next (hd_settle_view_t *view, uint64_t *seq, uint32_t *attempt)
{
    if (view->count == 0)
        return false;
    //  Neither can fail: hd_decode_settle counted whole varints
    uint64_t value = 0;
    hd_varint_read (&view->seq, view->seq_end, seq);
    hd_varint_read (&view->attempt, view->attempt_end, &value);
    *attempt = (uint32_t) value;
    view->count--;
    return true;
}

int
hd_msg_init_copy (zmq_msg_t *msg, const void *data, size_t size)
{
    if (zmq_msg_init_size (msg, size) != 0) {
        //  A failed init_size can leave a message that close would follow
        //  to a NULL block: an empty one is safe to close
        zmq_msg_init (msg);
        return -1;
    }
    if (size)
        memcpy (zmq_msg_data (msg), data, size);
    return 0;
}

static void
s_free_taken (void *data, void *hint)
{
    (void) hint;
    free (data);
}

int
hd_msg_init_take (zmq_msg_t *msg, uint8_t **data, size_t size, size_t capacity)
{
    //  A frame holds its whole allocation while it is queued: give back
    //  what the content does not use when that is much
    if (capacity > 2 * size + 4096) {
        uint8_t *smaller = realloc (*data, size ? size : 1);
        if (smaller)
            *data = smaller;
    }
    int rc = zmq_msg_init_data (msg, *data, size, s_free_taken, NULL);
    if (rc != 0)
        free (*data);
    *data = NULL;
    return rc;
}

uint8_t *
hd_proto_pack (const ProtobufCMessage *message, size_t *size_p)
{
    size_t size = protobuf_c_message_get_packed_size (message);
    uint8_t *buffer = malloc (size ? size : 1);
    if (buffer)
        protobuf_c_message_pack (message, buffer);
    *size_p = size;
    return buffer;
}
