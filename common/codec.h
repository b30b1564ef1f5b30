/*  codec — Herald's framing: the command header frame, whole-message
    receive into zmq_msg_t frames, and protobuf frames packed in place.

    Every message on the ROUTER/DEALER channel starts with a 4-byte header
    frame: 'H' 'D' version command. See docs/PROTOCOL.md.
*/
#ifndef HD_CODEC_H_INCLUDED
#define HD_CODEC_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include <protobuf-c/protobuf-c.h>
#include "herald.pb-c.h"
#include "varint.h"

#define HD_PROTOCOL_VERSION 1
#define HD_HEADER_SIZE      4
#define HD_MAX_FRAMES       8

typedef enum {
    HD_CMD_PUBLISH = 0x01,
    HD_CMD_CONFIRM = 0x02,
    HD_CMD_REJECT = 0x03,
    HD_CMD_CONFIRMS = 0x04,
    HD_CMD_PUBLISHES = 0x05,
    HD_CMD_JOIN = 0x10,
    HD_CMD_JOINED = 0x11,
    HD_CMD_DELIVER = 0x12,
    HD_CMD_ACK = 0x13,
    HD_CMD_NACK = 0x14,
    HD_CMD_TERM = 0x15,
    HD_CMD_PROGRESS = 0x16,
    HD_CMD_CREDIT = 0x17,
    HD_CMD_LEAVE = 0x18,
    HD_CMD_DELIVERS = 0x19,
    HD_CMD_HEARTBEAT = 0x20,
    HD_CMD_SUBSCRIBER = 0x21,
    HD_CMD_STATS = 0x30,
    HD_CMD_STATS_REPLY = 0x31,
    HD_CMD_DLQ_LIST = 0x32,
    HD_CMD_DLQ_LIST_REPLY = 0x33,
    HD_CMD_DLQ_SHOW = 0x34,
    HD_CMD_DLQ_EVENT = 0x35,
    HD_CMD_DLQ_REPLAY = 0x36,
    HD_CMD_DLQ_PURGE = 0x37,
    HD_CMD_DLQ_DONE = 0x38,
    HD_CMD_REPLAY = 0x40,
    HD_CMD_REPLAY_EVENT = 0x41,
    HD_CMD_REPLAY_END = 0x42,
    HD_CMD_ERROR = 0x7F
} hd_command_t;

//  A whole multipart message, received frame by frame without copying.
typedef struct {
    zmq_msg_t frame[HD_MAX_FRAMES];
    int count;      // frames initialised in frame[]
    bool truncated; // the message had more than HD_MAX_FRAMES frames (rest discarded)
} hd_frames_t;

//  Name of a command for logs and errors ("PUBLISH"), "UNKNOWN" otherwise.
const char *hd_command_name (int command);

//  Name of an error code ("BACKLOG_FULL").
const char *hd_error_name (int code);

//  Fill a header frame for command.
void hd_header_encode (uint8_t header[HD_HEADER_SIZE], hd_command_t command);

//  Parse a header frame. Returns 0 and sets *command, or an error code
//  (HERALD__ERROR_CODE__MALFORMED / __BAD_VERSION) on bad input.
int hd_header_decode (const void *data, size_t size, int *command);

//  Receive one whole message from socket. flags as for zmq_msg_recv (ZMQ_DONTWAIT).
//  Returns 0, or -1 with errno set (EAGAIN, EINTR, ...) and nothing held.
int hd_frames_recv (hd_frames_t *self, void *socket, int flags);

//  Close every frame held.
void hd_frames_close (hd_frames_t *self);

//  Frame data and size, or NULL/0 when index is out of range.
const void *hd_frames_data (hd_frames_t *self, int index);
size_t hd_frames_size (hd_frames_t *self, int index);

//  Send helpers; more is ZMQ_SNDMORE or 0, extra flags (ZMQ_DONTWAIT) or'ed in.
//  Each returns 0 or -1 with errno set.
int hd_send_header (void *socket, hd_command_t command, int flags);
int hd_send_bytes (void *socket, const void *data, size_t size, int flags);
//  Packs message straight into the outgoing frame.
int hd_send_proto (void *socket, const ProtobufCMessage *message, int flags);
//  Sends *frame and leaves it an empty message (zmq_msg_send semantics: takes
//  its content). The caller still owns the zmq_msg_t and must close it.
int hd_send_msg (void *socket, zmq_msg_t *frame, int flags);

//  Send [header][optional proto] as a complete message, with routing id
//  frame first when routing_id is not NULL (broker side).
int hd_send_command (void *socket, const void *routing_id, size_t routing_id_size,
                     hd_command_t command, const ProtobufCMessage *body, int flags);

//  Hand encodings of the hottest small messages, byte for byte what
//  protobuf_c_message_pack produces (tested), at a fraction of its cost.
//  out needs HD_VARINTS_MAX bytes. Return the encoded size.
#define HD_VARINTS_MAX 40
//  A varint field, left out when value is 0 (as proto3 does); returns the
//  bytes written at out.
static inline size_t
hd_encode_varint_field (uint8_t *out, int field, uint64_t value)
{
    if (value == 0)
        return 0;
    size_t size = hd_varint_encode (out, (uint64_t) field << 3);
    return size + hd_varint_encode (out + size, value);
}

//  A length-delimited field; returns the bytes written at out.
size_t hd_encode_bytes_field (uint8_t *out, int field, const void *data, size_t size);
//  Deliver{seq, attempt, ack_wait_ms}
size_t hd_encode_deliver (uint8_t *out, uint64_t seq, uint32_t attempt, uint32_t ack_wait_ms);
//  StateOp{pool, <field> = seq, attempt} for the deliver (3) and ack (4) ops
size_t hd_encode_state_op (uint8_t *out, uint32_t pool, int field, uint64_t seq, uint32_t attempt);

//  One entry of a Delivers body (field 1, a Delivery message): the Deliver
//  fields, the stored Event bytes and the payload. out needs
//  envelope_size + payload_size + HD_DELIVERY_OVERHEAD bytes.
#define HD_DELIVERY_OVERHEAD 64
size_t hd_encode_delivery (uint8_t *out, uint64_t seq, uint32_t attempt, uint32_t ack_wait_ms,
                           const void *envelope, size_t envelope_size, const void *payload,
                           size_t payload_size);

//  A Delivery read in place: envelope and payload point into the body.
typedef struct {
    uint64_t seq;
    uint32_t attempt;
    uint32_t ack_wait_ms;
    const uint8_t *envelope;
    size_t envelope_size;
    const uint8_t *payload;
    size_t payload_size;
} hd_delivery_view_t;

//  Reads the Delivery at *cursor of a Delivers body ending at end, and moves
//  *cursor past it; fields it does not know are skipped. Returns 1 with
//  view filled, 0 at the end of the body, -1 when the body is malformed.
int hd_decode_delivery (const uint8_t **cursor, const uint8_t *end, hd_delivery_view_t *view);

//  One entry of a FanoutBatch body (a FanoutItem): epoch, type_seq, the
//  stored Event and the payload. out needs the same room as a delivery.
size_t hd_encode_fanout_item (uint8_t *out, uint64_t epoch, uint64_t type_seq, const void *envelope,
                              size_t envelope_size, const void *payload, size_t payload_size);

typedef struct {
    uint64_t epoch;
    uint64_t type_seq;
    const uint8_t *envelope;
    size_t envelope_size;
    const uint8_t *payload;
    size_t payload_size;
} hd_fanout_view_t;

//  hd_decode_delivery for a FanoutBatch body. An item without an event is
//  malformed.
int hd_decode_fanout_item (const uint8_t **cursor, const uint8_t *end, hd_fanout_view_t *view);

//  One entry of a Publishes body (field 1, a PublishItem): corr, the Event
//  and the payload. The Event's event_size bytes are left for the caller
//  to write at *event_at. out needs event_size + payload_size +
//  HD_DELIVERY_OVERHEAD bytes.
size_t hd_encode_publish_item (uint8_t *out, uint64_t corr, size_t event_size, const void *payload,
                               size_t payload_size, uint8_t **event_at);

//  The exact size hd_encode_publish_item writes.
size_t hd_publish_item_size (uint64_t corr, size_t event_size, size_t payload_size);

typedef struct {
    uint64_t corr;
    const uint8_t *envelope;
    size_t envelope_size;
    const uint8_t *payload;
    size_t payload_size;
} hd_publish_view_t;

//  hd_decode_delivery for a Publishes body. An item without an event is
//  malformed.
int hd_decode_publish_item (const uint8_t **cursor, const uint8_t *end, hd_publish_view_t *view);

//  A Confirms body as protobuf-c packs it (each array packed; count > 0):
//  its size, and the encoding into out, which must have that many bytes.
size_t hd_confirms_size (const uint64_t *corr, const uint64_t *seq, size_t count);
size_t hd_encode_confirms (uint8_t *out, const uint64_t *corr, const uint64_t *seq,
                           const bool *duplicate, size_t count);

//  A Confirms body read in place: count confirms, each array still packed.
typedef struct {
    size_t count;
    const uint8_t *corr, *seq, *duplicate; // packed varints; duplicate one byte each
    const uint8_t *corr_end, *seq_end;
} hd_confirms_view_t;

//  Reads a Confirms body laid out as hd_encode_confirms writes it: the
//  three arrays packed, once each, in field order, every duplicate flag one
//  byte, the three of one length. Returns 0, or -1 for anything else (a
//  caller hands that to protobuf-c, which reads every valid encoding).
int hd_decode_confirms (const uint8_t *data, size_t size, hd_confirms_view_t *view);

//  The next confirm of view; false after the last.
bool hd_confirms_next (hd_confirms_view_t *view, uint64_t *corr, uint64_t *seq, bool *duplicate);

//  A Settle body (ACK, PROGRESS) read in place: count tags, each array
//  still packed.
typedef struct {
    size_t count;
    const uint8_t *seq, *attempt; // packed varints
    const uint8_t *seq_end, *attempt_end;
    uint32_t handle_ns; // the worker's handler time per event (0: not said)
} hd_settle_view_t;

//  Reads a Settle body laid out as protobuf-c packs one: the two arrays
//  packed, once each, in field order, of one length, not empty, then at
//  most one handle_ns (0 when absent). Returns 0, or -1 for anything else
//  (a caller hands that to protobuf-c, which reads every valid encoding).
int hd_decode_settle (const uint8_t *data, size_t size, hd_settle_view_t *view);

//  The next tag of view; false after the last. An attempt is a uint32:
//  the low 32 bits of its varint, as protobuf-c reads it.
bool hd_settle_next (hd_settle_view_t *view, uint64_t *seq, uint32_t *attempt);

//  Initialises msg with a copy of size bytes at data. Returns 0, -1 when
//  out of memory (msg is then an empty message: closing it is safe).
int hd_msg_init_copy (zmq_msg_t *msg, const void *data, size_t size);

//  Initialises msg with the first size bytes of the malloc'ed buffer *data
//  of capacity bytes, without copying them (a buffer much larger than its
//  content is shrunk first): ZeroMQ frees it once the frame is sent or
//  closed. Takes the buffer in every case (freed on failure) and sets
//  *data to NULL. Returns 0 or -1.
int hd_msg_init_take (zmq_msg_t *msg, uint8_t **data, size_t size, size_t capacity);

//  Pack message into a new malloc'ed buffer. Returns NULL on no memory.
uint8_t *hd_proto_pack (const ProtobufCMessage *message, size_t *size_p);

#endif
