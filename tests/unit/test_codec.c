/*  Unit tests for common/codec: header, names, whole-message receive and
    the send helpers, over inproc sockets.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "codec.h"
#include "state.pb-c.h"

typedef struct {
    void *context;
    void *left, *right; // a connected PAIR
} fixture_t;

static void
s_set_timeouts (void *socket)
{
    int timeout = 2000; // a broken test fails instead of hanging
    assert_int_equal (zmq_setsockopt (socket, ZMQ_RCVTIMEO, &timeout, sizeof timeout), 0);
    assert_int_equal (zmq_setsockopt (socket, ZMQ_SNDTIMEO, &timeout, sizeof timeout), 0);
    int linger = 0;
    assert_int_equal (zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger), 0);
}

static int
s_setup (void **state)
{
    static int counter;
    fixture_t *fixture = calloc (1, sizeof *fixture);
    assert_non_null (fixture);
    fixture->context = zmq_ctx_new ();
    assert_non_null (fixture->context);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://codec-%d", ++counter);
    fixture->left = zmq_socket (fixture->context, ZMQ_PAIR);
    fixture->right = zmq_socket (fixture->context, ZMQ_PAIR);
    s_set_timeouts (fixture->left);
    s_set_timeouts (fixture->right);
    assert_int_equal (zmq_bind (fixture->left, endpoint), 0);
    assert_int_equal (zmq_connect (fixture->right, endpoint), 0);
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fixture = *state;
    zmq_close (fixture->left);
    zmq_close (fixture->right);
    zmq_ctx_term (fixture->context);
    free (fixture);
    return 0;
}

//  Send frames[0..count-1] as one message
static void
s_send_strings (void *socket, const char **frames, int count)
{
    for (int index = 0; index < count; index++)
        assert_int_equal (zmq_send (socket, frames[index], strlen (frames[index]),
                                    index < count - 1 ? ZMQ_SNDMORE : 0),
                          (int) strlen (frames[index]));
}

static void
s_assert_frame (hd_frames_t *frames, int index, const void *data, size_t size)
{
    assert_int_equal (hd_frames_size (frames, index), size);
    assert_non_null (hd_frames_data (frames, index));
    if (size)
        assert_memory_equal (hd_frames_data (frames, index), data, size);
}

//  --------------------------------------------------------------------------

static void
test_header_encode_decode (void **state)
{
    uint8_t header[HD_HEADER_SIZE];
    hd_header_encode (header, HD_CMD_DELIVER);
    assert_int_equal (header[0], 'H');
    assert_int_equal (header[1], 'D');
    assert_int_equal (header[2], HD_PROTOCOL_VERSION);
    assert_int_equal (header[3], 0x12);

    const hd_command_t commands[] = {HD_CMD_PUBLISH, HD_CMD_CONFIRM, HD_CMD_JOIN,
                                     HD_CMD_ACK,     HD_CMD_STATS,   HD_CMD_ERROR};
    for (size_t index = 0; index < sizeof commands / sizeof commands[0]; index++) {
        hd_header_encode (header, commands[index]);
        int command = -1;
        assert_int_equal (hd_header_decode (header, sizeof header, &command), 0);
        assert_int_equal (command, commands[index]);
    }
    //  A well-formed header with an unknown code still decodes: the code is
    //  the caller's business (UNKNOWN_COMMAND)
    const uint8_t unknown[] = {'H', 'D', 1, 0x55};
    int command = -1;
    assert_int_equal (hd_header_decode (unknown, 4, &command), 0);
    assert_int_equal (command, 0x55);
    const uint8_t high[] = {'H', 'D', 1, 0xFF};
    assert_int_equal (hd_header_decode (high, 4, &command), 0);
    assert_int_equal (command, 0xFF);
}

static void
test_header_decode_errors (void **state)
{
    int command = -1;
    const uint8_t bad_magic_1[] = {'X', 'D', 1, 0x01};
    const uint8_t bad_magic_2[] = {'H', 'd', 1, 0x01};
    const uint8_t bad_magic_3[] = {'D', 'H', 1, 0x01};
    assert_int_equal (hd_header_decode (bad_magic_1, 4, &command), HERALD__ERROR_CODE__MALFORMED);
    assert_int_equal (hd_header_decode (bad_magic_2, 4, &command), HERALD__ERROR_CODE__MALFORMED);
    assert_int_equal (hd_header_decode (bad_magic_3, 4, &command), HERALD__ERROR_CODE__MALFORMED);

    const uint8_t long_header[] = {'H', 'D', 1, 0x01, 0x00};
    assert_int_equal (hd_header_decode (long_header, 3, &command), HERALD__ERROR_CODE__MALFORMED);
    assert_int_equal (hd_header_decode (long_header, 5, &command), HERALD__ERROR_CODE__MALFORMED);
    assert_int_equal (hd_header_decode (long_header, 1, &command), HERALD__ERROR_CODE__MALFORMED);
    assert_int_equal (hd_header_decode (long_header, 0, &command), HERALD__ERROR_CODE__MALFORMED);
    assert_int_equal (hd_header_decode ("", 0, &command), HERALD__ERROR_CODE__MALFORMED);

    const uint8_t version_0[] = {'H', 'D', 0, 0x01};
    const uint8_t version_2[] = {'H', 'D', 2, 0x01};
    const uint8_t version_ff[] = {'H', 'D', 0xFF, 0x01};
    assert_int_equal (hd_header_decode (version_0, 4, &command), HERALD__ERROR_CODE__BAD_VERSION);
    assert_int_equal (hd_header_decode (version_2, 4, &command), HERALD__ERROR_CODE__BAD_VERSION);
    assert_int_equal (hd_header_decode (version_ff, 4, &command), HERALD__ERROR_CODE__BAD_VERSION);
    //  Bad magic and bad version: the header is not ours at all
    const uint8_t both[] = {'Z', 'Z', 9, 0x01};
    assert_int_equal (hd_header_decode (both, 4, &command), HERALD__ERROR_CODE__MALFORMED);
    //  Nothing was decoded
    assert_int_equal (command, -1);
    assert_int_equal (HERALD__ERROR_CODE__MALFORMED, 1);
    assert_int_equal (HERALD__ERROR_CODE__BAD_VERSION, 3);
}

static void
test_command_names (void **state)
{
    const struct {
        int code;
        const char *name;
    } names[] = {
        {0x01, "PUBLISH"},    {0x02, "CONFIRM"},   {0x03, "REJECT"},      {0x10, "JOIN"},
        {0x04, "CONFIRMS"},   {0x32, "DLQ_LIST"},  {0x40, "REPLAY"},      {0x11, "JOINED"},
        {0x12, "DELIVER"},    {0x13, "ACK"},       {0x14, "NACK"},        {0x15, "TERM"},
        {0x16, "PROGRESS"},   {0x17, "CREDIT"},    {0x18, "LEAVE"},       {0x20, "HEARTBEAT"},
        {0x21, "SUBSCRIBER"}, {0x30, "STATS"},     {0x31, "STATS_REPLY"}, {0x7F, "ERROR"},
        {0x19, "DELIVERS"},   {0x05, "PUBLISHES"},
    };
    for (size_t index = 0; index < sizeof names / sizeof names[0]; index++)
        assert_string_equal (hd_command_name (names[index].code), names[index].name);
    const int unknown[] = {0, 0x06, 0x1A, 0x22, 0x3F, 0x7E, 0x80, 0xFF, 0x101, -1};
    for (size_t index = 0; index < sizeof unknown / sizeof unknown[0]; index++)
        assert_string_equal (hd_command_name (unknown[index]), "UNKNOWN");
}

static void
test_error_names (void **state)
{
    const char *names[] = {"OK",        "MALFORMED", "UNKNOWN_COMMAND", "BAD_VERSION",
                           "TOO_LARGE", "INVALID",   "BACKLOG_FULL",    "UNKNOWN_PEER",
                           "STALE_TAG", "CONFLICT",  "LIMIT",           "INTERNAL"};
    for (int code = 0; code < (int) (sizeof names / sizeof names[0]); code++)
        assert_string_equal (hd_error_name (code), names[code]);
    assert_string_equal (hd_error_name (HERALD__ERROR_CODE__BACKLOG_FULL), "BACKLOG_FULL");
    assert_string_equal (hd_error_name (99), "UNKNOWN");
    assert_string_equal (hd_error_name (-1), "UNKNOWN");
    assert_string_equal (hd_error_name (1000), "UNKNOWN");
}

static void
test_frames_recv_multipart (void **state)
{
    fixture_t *fixture = *state;
    const char *sent[] = {"header", "", "third frame", "4"};
    s_send_strings (fixture->left, sent, 4);

    hd_frames_t frames;
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 4);
    assert_false (frames.truncated);
    for (int index = 0; index < 4; index++)
        s_assert_frame (&frames, index, sent[index], strlen (sent[index]));
    //  Out of range
    assert_null (hd_frames_data (&frames, 4));
    assert_null (hd_frames_data (&frames, -1));
    assert_null (hd_frames_data (&frames, HD_MAX_FRAMES));
    assert_int_equal (hd_frames_size (&frames, 4), 0);
    assert_int_equal (hd_frames_size (&frames, -1), 0);
    hd_frames_close (&frames);
    assert_int_equal (frames.count, 0);
    assert_null (hd_frames_data (&frames, 0));
    hd_frames_close (&frames); // twice is harmless

    //  Single frame, and exactly HD_MAX_FRAMES frames
    const char *single[] = {"only"};
    s_send_strings (fixture->left, single, 1);
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 1);
    assert_false (frames.truncated);
    s_assert_frame (&frames, 0, "only", 4);
    hd_frames_close (&frames);

    const char *eight[HD_MAX_FRAMES] = {"0", "1", "2", "3", "4", "5", "6", "7"};
    s_send_strings (fixture->left, eight, HD_MAX_FRAMES);
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, HD_MAX_FRAMES);
    assert_false (frames.truncated);
    s_assert_frame (&frames, HD_MAX_FRAMES - 1, "7", 1);
    hd_frames_close (&frames);
}

static void
test_frames_recv_truncated (void **state)
{
    fixture_t *fixture = *state;
    const char *many[HD_MAX_FRAMES + 3] = {"f0", "f1", "f2", "f3", "f4", "f5",
                                           "f6", "f7", "f8", "f9", "f10"};
    s_send_strings (fixture->left, many, HD_MAX_FRAMES + 3);
    const char *next[] = {"next", "message", "intact"};
    s_send_strings (fixture->left, next, 3);

    hd_frames_t frames;
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_true (frames.truncated);
    assert_int_equal (frames.count, HD_MAX_FRAMES);
    for (int index = 0; index < HD_MAX_FRAMES; index++)
        s_assert_frame (&frames, index, many[index], strlen (many[index]));
    hd_frames_close (&frames);

    //  The rest was discarded: the next receive gets the next message whole
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_false (frames.truncated);
    assert_int_equal (frames.count, 3);
    for (int index = 0; index < 3; index++)
        s_assert_frame (&frames, index, next[index], strlen (next[index]));
    hd_frames_close (&frames);

    //  And nothing else is queued
    assert_int_equal (hd_frames_recv (&frames, fixture->right, ZMQ_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (frames.count, 0);
}

static void
test_frames_recv_would_block (void **state)
{
    fixture_t *fixture = *state;
    hd_frames_t frames;
    assert_int_equal (hd_frames_recv (&frames, fixture->right, ZMQ_DONTWAIT), -1);
    assert_int_equal (errno, EAGAIN);
    assert_int_equal (frames.count, 0);
    assert_false (frames.truncated);
    hd_frames_close (&frames);

    //  A large frame arrives without trouble
    size_t size = 1 << 20;
    char *big = malloc (size);
    assert_non_null (big);
    for (size_t index = 0; index < size; index++)
        big[index] = (char) (index * 7);
    assert_int_equal (hd_send_header (fixture->left, HD_CMD_PUBLISH, ZMQ_SNDMORE), 0);
    assert_int_equal (hd_send_bytes (fixture->left, big, size, 0), 0);
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 2);
    int command = 0;
    assert_int_equal (
        hd_header_decode (hd_frames_data (&frames, 0), hd_frames_size (&frames, 0), &command), 0);
    assert_int_equal (command, HD_CMD_PUBLISH);
    s_assert_frame (&frames, 1, big, size);
    hd_frames_close (&frames);
    free (big);
}

static void
test_send_proto_round_trip (void **state)
{
    fixture_t *fixture = *state;
    Herald__Confirm confirm = HERALD__CONFIRM__INIT;
    confirm.corr = 42;
    confirm.seq = 1234567890123ULL;
    confirm.duplicate = true;
    assert_int_equal (hd_send_proto (fixture->left, &confirm.base, 0), 0);

    hd_frames_t frames;
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 1);
    assert_int_equal (hd_frames_size (&frames, 0), herald__confirm__get_packed_size (&confirm));
    Herald__Confirm *decoded =
        herald__confirm__unpack (NULL, hd_frames_size (&frames, 0), hd_frames_data (&frames, 0));
    assert_non_null (decoded);
    assert_int_equal (decoded->corr, 42);
    assert_int_equal (decoded->seq, 1234567890123ULL);
    assert_true (decoded->duplicate);
    herald__confirm__free_unpacked (decoded, NULL);
    hd_frames_close (&frames);

    //  An all-default message packs to an empty frame that still parses
    Herald__Confirm empty = HERALD__CONFIRM__INIT;
    assert_int_equal (hd_send_proto (fixture->left, &empty.base, 0), 0);
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 1);
    assert_int_equal (hd_frames_size (&frames, 0), 0);
    decoded =
        herald__confirm__unpack (NULL, hd_frames_size (&frames, 0), hd_frames_data (&frames, 0));
    assert_non_null (decoded);
    assert_int_equal (decoded->seq, 0);
    assert_false (decoded->duplicate);
    herald__confirm__free_unpacked (decoded, NULL);
    hd_frames_close (&frames);
}

static void
test_send_command (void **state)
{
    fixture_t *fixture = *state;
    hd_frames_t frames;
    int command = 0;

    //  Without body: one frame, the header
    assert_int_equal (hd_send_command (fixture->left, NULL, 0, HD_CMD_HEARTBEAT, NULL, 0), 0);
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 1);
    const uint8_t heartbeat[] = {'H', 'D', 1, 0x20};
    s_assert_frame (&frames, 0, heartbeat, 4);
    hd_frames_close (&frames);

    //  With body: header then the packed message
    Herald__Confirm confirm = HERALD__CONFIRM__INIT;
    confirm.corr = 7;
    confirm.seq = 99;
    assert_int_equal (hd_send_command (fixture->left, NULL, 0, HD_CMD_CONFIRM, &confirm.base, 0),
                      0);
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 2);
    assert_int_equal (
        hd_header_decode (hd_frames_data (&frames, 0), hd_frames_size (&frames, 0), &command), 0);
    assert_int_equal (command, HD_CMD_CONFIRM);
    Herald__Confirm *decoded =
        herald__confirm__unpack (NULL, hd_frames_size (&frames, 1), hd_frames_data (&frames, 1));
    assert_non_null (decoded);
    assert_int_equal (decoded->corr, 7);
    assert_int_equal (decoded->seq, 99);
    assert_false (decoded->duplicate);
    herald__confirm__free_unpacked (decoded, NULL);
    hd_frames_close (&frames);

    //  With a routing id it comes first (on a PAIR it arrives as a frame)
    assert_int_equal (
        hd_send_command (fixture->left, "peer-1", 6, HD_CMD_CONFIRM, &confirm.base, 0), 0);
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 3);
    s_assert_frame (&frames, 0, "peer-1", 6);
    assert_int_equal (
        hd_header_decode (hd_frames_data (&frames, 1), hd_frames_size (&frames, 1), &command), 0);
    assert_int_equal (command, HD_CMD_CONFIRM);
    hd_frames_close (&frames);

    //  ZMQ_SNDMORE in flags does not leave the message open: two messages arrive
    assert_int_equal (hd_send_command (fixture->left, NULL, 0, HD_CMD_STATS, NULL, ZMQ_SNDMORE), 0);
    assert_int_equal (
        hd_send_command (fixture->left, NULL, 0, HD_CMD_CONFIRM, &confirm.base, ZMQ_SNDMORE), 0);
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 1);
    assert_int_equal (
        hd_header_decode (hd_frames_data (&frames, 0), hd_frames_size (&frames, 0), &command), 0);
    assert_int_equal (command, HD_CMD_STATS);
    hd_frames_close (&frames);
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 2);
    hd_frames_close (&frames);
}

static void
test_send_command_router_dealer (void **state)
{
    fixture_t *fixture = *state;
    void *router = zmq_socket (fixture->context, ZMQ_ROUTER);
    void *dealer = zmq_socket (fixture->context, ZMQ_DEALER);
    s_set_timeouts (router);
    s_set_timeouts (dealer);
    assert_int_equal (zmq_bind (router, "inproc://codec-router"), 0);
    assert_int_equal (zmq_connect (dealer, "inproc://codec-router"), 0);

    //  The dealer speaks first; the router sees [routing id][header]
    assert_int_equal (hd_send_command (dealer, NULL, 0, HD_CMD_STATS, NULL, 0), 0);
    hd_frames_t frames;
    assert_int_equal (hd_frames_recv (&frames, router, 0), 0);
    assert_int_equal (frames.count, 2);
    int command = 0;
    assert_int_equal (
        hd_header_decode (hd_frames_data (&frames, 1), hd_frames_size (&frames, 1), &command), 0);
    assert_int_equal (command, HD_CMD_STATS);

    //  The router answers that peer by routing id; the dealer sees no id frame
    Herald__Confirm confirm = HERALD__CONFIRM__INIT;
    confirm.seq = 5;
    assert_int_equal (hd_send_command (router, hd_frames_data (&frames, 0),
                                       hd_frames_size (&frames, 0), HD_CMD_CONFIRM, &confirm.base,
                                       ZMQ_DONTWAIT),
                      0);
    hd_frames_close (&frames);
    assert_int_equal (hd_frames_recv (&frames, dealer, 0), 0);
    assert_int_equal (frames.count, 2);
    assert_int_equal (
        hd_header_decode (hd_frames_data (&frames, 0), hd_frames_size (&frames, 0), &command), 0);
    assert_int_equal (command, HD_CMD_CONFIRM);
    Herald__Confirm *decoded =
        herald__confirm__unpack (NULL, hd_frames_size (&frames, 1), hd_frames_data (&frames, 1));
    assert_non_null (decoded);
    assert_int_equal (decoded->seq, 5);
    herald__confirm__free_unpacked (decoded, NULL);
    hd_frames_close (&frames);
    zmq_close (router);
    zmq_close (dealer);
}

static void
test_send_msg_and_bytes (void **state)
{
    fixture_t *fixture = *state;
    zmq_msg_t frame;
    assert_int_equal (zmq_msg_init_size (&frame, 100), 0);
    memset (zmq_msg_data (&frame), 'm', 100);
    assert_int_equal (hd_send_bytes (fixture->left, "abc", 3, ZMQ_SNDMORE), 0);
    assert_int_equal (hd_send_msg (fixture->left, &frame, 0), 0);
    //  The content was taken
    assert_int_equal (zmq_msg_size (&frame), 0);
    zmq_msg_close (&frame);

    hd_frames_t frames;
    assert_int_equal (hd_frames_recv (&frames, fixture->right, 0), 0);
    assert_int_equal (frames.count, 2);
    s_assert_frame (&frames, 0, "abc", 3);
    assert_int_equal (hd_frames_size (&frames, 1), 100);
    assert_int_equal (((const char *) hd_frames_data (&frames, 1))[99], 'm');
    hd_frames_close (&frames);
}

static void
test_proto_pack (void **state)
{
    Herald__Confirm confirm = HERALD__CONFIRM__INIT;
    confirm.corr = 1;
    confirm.seq = 300;
    size_t size = 0;
    uint8_t *buffer = hd_proto_pack (&confirm.base, &size);
    assert_non_null (buffer);
    assert_int_equal (size, herald__confirm__get_packed_size (&confirm));
    Herald__Confirm *decoded = herald__confirm__unpack (NULL, size, buffer);
    assert_non_null (decoded);
    assert_int_equal (decoded->corr, 1);
    assert_int_equal (decoded->seq, 300);
    herald__confirm__free_unpacked (decoded, NULL);
    free (buffer);

    Herald__Confirm empty = HERALD__CONFIRM__INIT;
    size = 99;
    buffer = hd_proto_pack (&empty.base, &size);
    assert_non_null (buffer);
    assert_int_equal (size, 0);
    free (buffer);
}

//  The hand encodings must be byte for byte what protobuf-c produces.
static void
test_hand_encodings_match_protobuf (void **state)
{
    const uint64_t values[] = {
        0,         1,       127,     128,           300,           16383,
        16384,     2097151, 2097152, 4294967295ULL, 4294967296ULL, UINT64_MAX / 3,
        UINT64_MAX};
    size_t count = sizeof values / sizeof values[0];
    for (size_t i = 0; i < count; i++)
        for (size_t j = 0; j < count; j++) {
            uint64_t seq = values[i];
            uint32_t small = (uint32_t) values[j];
            uint8_t mine[HD_VARINTS_MAX], theirs[128];
            Herald__Deliver deliver = HERALD__DELIVER__INIT;
            deliver.seq = seq;
            deliver.attempt = small;
            deliver.ack_wait_ms = small / 2;
            size_t size = hd_encode_deliver (mine, seq, small, small / 2);
            assert_int_equal (size, herald__deliver__pack (&deliver, theirs));
            assert_memory_equal (mine, theirs, size);
            for (int field = 3; field <= 4; field++) {
                Herald__StateOp op = HERALD__STATE_OP__INIT;
                op.pool = small;
                op.attempt = small / 3;
                op.op_case = field;
                if (field == 3)
                    op.deliver = seq;
                else
                    op.ack = seq;
                size = hd_encode_state_op (mine, small, field, seq, small / 3);
                assert_int_equal (size, herald__state_op__pack (&op, theirs));
                assert_memory_equal (mine, theirs, size);
            }
        }
}

//  A Delivers body built with hd_encode_delivery is what protobuf-c packs,
//  and hd_decode_delivery reads back every field, in place.
static void
test_delivers_encode_decode (void **state)
{
    enum { COUNT = 5 };
    const size_t payload_sizes[COUNT] = {0, 1, 127, 128, 5000};
    Herald__Event events[COUNT];
    Herald__Delivery deliveries[COUNT];
    Herald__Delivery *pointers[COUNT];
    uint8_t *envelopes[COUNT];
    size_t envelope_sizes[COUNT];
    uint8_t payload[5000];
    for (size_t index = 0; index < sizeof payload; index++)
        payload[index] = (uint8_t) (index * 7);
    uint8_t *mine = malloc (COUNT * (5000 + 256 + HD_DELIVERY_OVERHEAD));
    size_t size = 0;
    for (size_t index = 0; index < COUNT; index++) {
        herald__event__init (&events[index]);
        events[index].id = (char *) (index % 2 ? "a" : "a-much-longer-identity-0123456789");
        events[index].source = (char *) "src";
        events[index].type = (char *) "t.x";
        events[index].seq = 1000 + index;
        envelopes[index] = hd_proto_pack (&events[index].base, &envelope_sizes[index]);
        herald__delivery__init (&deliveries[index]);
        deliveries[index].seq = index == 0 ? UINT64_MAX : 1000 + index;
        deliveries[index].attempt = (uint32_t) index; // 0: left out of the encoding
        deliveries[index].ack_wait_ms = 30000;
        deliveries[index].event = &events[index];
        deliveries[index].payload.data = payload;
        deliveries[index].payload.len = payload_sizes[index];
        pointers[index] = &deliveries[index];
        size += hd_encode_delivery (mine + size, deliveries[index].seq, (uint32_t) index, 30000,
                                    envelopes[index], envelope_sizes[index], payload,
                                    payload_sizes[index]);
    }
    Herald__Delivers delivers = HERALD__DELIVERS__INIT;
    delivers.n_deliveries = COUNT;
    delivers.deliveries = pointers;
    size_t theirs_size;
    uint8_t *theirs = hd_proto_pack (&delivers.base, &theirs_size);
    assert_int_equal (size, theirs_size);
    assert_memory_equal (mine, theirs, size);

    const uint8_t *cursor = mine, *end = mine + size;
    hd_delivery_view_t view;
    for (size_t index = 0; index < COUNT; index++) {
        assert_int_equal (hd_decode_delivery (&cursor, end, &view), 1);
        assert_true (view.seq == deliveries[index].seq);
        assert_int_equal (view.attempt, index);
        assert_int_equal (view.ack_wait_ms, 30000);
        assert_int_equal (view.envelope_size, envelope_sizes[index]);
        assert_memory_equal (view.envelope, envelopes[index], view.envelope_size);
        assert_int_equal (view.payload_size, payload_sizes[index]);
        if (view.payload_size)
            assert_memory_equal (view.payload, payload, view.payload_size);
        free (envelopes[index]);
    }
    assert_int_equal (hd_decode_delivery (&cursor, end, &view), 0);

    //  Every cut short of the whole body is malformed somewhere, never read past
    for (size_t cut = 1; cut < size; cut += 7) {
        uint8_t *copy = malloc (cut);
        memcpy (copy, mine, cut);
        const uint8_t *at = copy;
        int rc;
        while ((rc = hd_decode_delivery (&at, copy + cut, &view)) == 1)
            assert_true (at <= copy + cut);
        assert_true (rc == -1 || at == copy + cut);
        free (copy);
    }
    //  Unknown fields are skipped; a bad wire type is malformed
    const uint8_t unknown[] = {0x10, 0x05, 0x0A, 0x02, 0x08, 0x07};
    cursor = unknown;
    assert_int_equal (hd_decode_delivery (&cursor, unknown + sizeof unknown, &view), 1);
    assert_true (view.seq == 7);
    const uint8_t bad_type[] = {0x0B};
    cursor = bad_type;
    assert_int_equal (hd_decode_delivery (&cursor, bad_type + 1, &view), -1);
    const uint8_t envelope_as_varint[] = {0x0A, 0x02, 0x20, 0x01};
    cursor = envelope_as_varint;
    assert_int_equal (
        hd_decode_delivery (&cursor, envelope_as_varint + sizeof envelope_as_varint, &view), -1);
    free (theirs);
    free (mine);
}

//  FanoutBatch items: what protobuf-c packs, read back in place.
static void
test_fanout_items (void **state)
{
    Herald__Event event = HERALD__EVENT__INIT;
    event.id = (char *) "id";
    event.source = (char *) "src";
    event.type = (char *) "t.x";
    size_t envelope_size;
    uint8_t *envelope = hd_proto_pack (&event.base, &envelope_size);
    const uint64_t epochs[] = {0, 1, UINT64_MAX};
    const uint64_t type_seqs[] = {1, 300, UINT64_MAX};
    Herald__FanoutItem items[3];
    Herald__FanoutItem *pointers[3];
    uint8_t mine[3 * (64 + 16 + HD_DELIVERY_OVERHEAD)];
    size_t size = 0;
    for (size_t index = 0; index < 3; index++) {
        herald__fanout_item__init (&items[index]);
        items[index].epoch = epochs[index];
        items[index].type_seq = type_seqs[index];
        items[index].event = &event;
        items[index].payload.data = (uint8_t *) "payload";
        items[index].payload.len = index; // 0: left out
        pointers[index] = &items[index];
        size += hd_encode_fanout_item (mine + size, epochs[index], type_seqs[index], envelope,
                                       envelope_size, "payload", index);
    }
    Herald__FanoutBatch batch = HERALD__FANOUT_BATCH__INIT;
    batch.n_items = 3;
    batch.items = pointers;
    size_t theirs_size;
    uint8_t *theirs = hd_proto_pack (&batch.base, &theirs_size);
    assert_int_equal (size, theirs_size);
    assert_memory_equal (mine, theirs, size);
    const uint8_t *cursor = mine;
    hd_fanout_view_t view;
    for (size_t index = 0; index < 3; index++) {
        assert_int_equal (hd_decode_fanout_item (&cursor, mine + size, &view), 1);
        assert_true (view.epoch == epochs[index]);
        assert_true (view.type_seq == type_seqs[index]);
        assert_int_equal (view.envelope_size, envelope_size);
        assert_int_equal (view.payload_size, index);
    }
    assert_int_equal (hd_decode_fanout_item (&cursor, mine + size, &view), 0);
    free (theirs);
    free (envelope);
}

//  PUBLISHES items: what protobuf-c packs, read back in place.
static void
test_publishes_encode_decode (void **state)
{
    enum { COUNT = 4 };
    const size_t payload_sizes[COUNT] = {0, 3, 200, 4096};
    const uint64_t corrs[COUNT] = {0, 1, 300, UINT64_MAX};
    uint8_t payload[4096];
    memset (payload, 'p', sizeof payload);
    Herald__Event events[COUNT];
    Herald__PublishItem items[COUNT];
    Herald__PublishItem *pointers[COUNT];
    uint8_t *mine = malloc (COUNT * (4096 + 256 + HD_DELIVERY_OVERHEAD));
    size_t size = 0;
    for (size_t index = 0; index < COUNT; index++) {
        herald__event__init (&events[index]);
        events[index].id = (char *) "id";
        events[index].source = (char *) "src";
        events[index].type = (char *) (index % 2 ? "t" : "a.longer.type.name");
        herald__publish_item__init (&items[index]);
        items[index].corr = corrs[index];
        items[index].event = &events[index];
        items[index].payload.data = payload;
        items[index].payload.len = payload_sizes[index];
        pointers[index] = &items[index];
        size_t event_size = protobuf_c_message_get_packed_size (&events[index].base);
        uint8_t *event_at;
        size += hd_encode_publish_item (mine + size, corrs[index], event_size, payload,
                                        payload_sizes[index], &event_at);
        protobuf_c_message_pack (&events[index].base, event_at);
    }
    Herald__Publishes publishes = HERALD__PUBLISHES__INIT;
    publishes.n_items = COUNT;
    publishes.items = pointers;
    size_t theirs_size;
    uint8_t *theirs = hd_proto_pack (&publishes.base, &theirs_size);
    assert_int_equal (size, theirs_size);
    assert_memory_equal (mine, theirs, size);

    const uint8_t *cursor = mine;
    hd_publish_view_t view;
    for (size_t index = 0; index < COUNT; index++) {
        assert_int_equal (hd_decode_publish_item (&cursor, mine + size, &view), 1);
        assert_true (view.corr == corrs[index]);
        Herald__Event *event = herald__event__unpack (NULL, view.envelope_size, view.envelope);
        assert_non_null (event);
        assert_string_equal (event->type, events[index].type);
        herald__event__free_unpacked (event, NULL);
        assert_int_equal (view.payload_size, payload_sizes[index]);
    }
    assert_int_equal (hd_decode_publish_item (&cursor, mine + size, &view), 0);
    //  Sizes where the item's length prefix grows a byte
    for (size_t payload_size = 80; payload_size < 140; payload_size++) {
        Herald__PublishItem *one[1] = {&items[1]};
        items[1].payload.len = payload_size;
        Herald__Publishes single = HERALD__PUBLISHES__INIT;
        single.n_items = 1;
        single.items = one;
        size_t packed_size;
        uint8_t *packed = hd_proto_pack (&single.base, &packed_size);
        size_t event_size = protobuf_c_message_get_packed_size (&events[1].base);
        assert_int_equal (hd_publish_item_size (corrs[1], event_size, payload_size), packed_size);
        uint8_t *event_at;
        assert_int_equal (
            hd_encode_publish_item (mine, corrs[1], event_size, payload, payload_size, &event_at),
            packed_size);
        protobuf_c_message_pack (&events[1].base, event_at);
        assert_memory_equal (mine, packed, packed_size);
        free (packed);
    }
    //  An item without its event is malformed
    const uint8_t no_event[] = {0x0A, 0x02, 0x08, 0x01};
    cursor = no_event;
    assert_int_equal (hd_decode_publish_item (&cursor, no_event + sizeof no_event, &view), -1);
    free (theirs);
    free (mine);
}

//  Varints both ways, through the short path (fewer than ten bytes left
//  before the end) and the unchecked one (ten or more).
static void
test_varints (void **state)
{
    const uint64_t values[] = {
        0,         1, 127, 128, 300, 16383, 16384, (1ULL << 35) - 1, 1ULL << 56, UINT64_MAX - 1,
        UINT64_MAX};
    for (size_t index = 0; index < sizeof values / sizeof values[0]; index++) {
        for (int padded = 0; padded < 2; padded++) {
            uint8_t buffer[32];
            memset (buffer, 0xEE, sizeof buffer);
            size_t size = hd_varint_encode (buffer, values[index]);
            assert_int_equal (size, hd_varint_size (values[index]));
            const uint8_t *cursor = buffer;
            uint64_t value = 0;
            const uint8_t *end = buffer + size + (padded ? 12 : 0);
            assert_true (hd_varint_read (&cursor, end, &value));
            assert_true (value == values[index]);
            assert_ptr_equal (cursor, buffer + size);
            //  One byte short never reads
            cursor = buffer;
            if (size > 1)
                assert_false (hd_varint_read (&cursor, buffer + size - 1, &value));
        }
    }
    //  Eleven continuation bytes: too long, on both paths
    uint8_t overlong[24];
    memset (overlong, 0x80, sizeof overlong);
    const uint8_t *cursor = overlong;
    uint64_t value;
    assert_false (hd_varint_read (&cursor, overlong + sizeof overlong, &value));
    cursor = overlong;
    assert_false (hd_varint_read (&cursor, overlong + 9, &value));
    cursor = overlong;
    assert_false (hd_varint_read (&cursor, overlong, &value)); // nothing at all
}

//  What hd_varint_read must do, a byte at a time.
static bool
s_reference_varint (const uint8_t **cursor, const uint8_t *end, uint64_t *value)
{
    uint64_t result = 0;
    const uint8_t *at = *cursor;
    for (int index = 0; index < 10; index++) {
        if (at == end) {
            *cursor = at;
            return false;
        }
        uint8_t byte = *at++;
        result |= (uint64_t) (byte & 0x7F) << (7 * index);
        if (!(byte & 0x80)) {
            *value = result;
            *cursor = at;
            return true;
        }
    }
    *cursor = at;
    return false;
}

//  Random bytes (runs of continuation bits, overlong forms, any length
//  left before the end): every path reads what the reference reads.
static void
test_varints_random (void **state)
{
    unsigned seed = 7;
    for (int round = 0; round < 200000; round++) {
        uint8_t buffer[16];
        size_t length = (size_t) (rand_r (&seed) % 13);
        int continued = rand_r (&seed) % 12; // leading bytes with the high bit set
        for (size_t index = 0; index < sizeof buffer; index++) {
            uint8_t byte = (uint8_t) rand_r (&seed);
            buffer[index] = (int) index < continued ? byte | 0x80 : byte & 0x7F;
            if (rand_r (&seed) % 4 == 0)
                buffer[index] = (uint8_t) rand_r (&seed);
        }
        const uint8_t *mine = buffer, *theirs = buffer;
        uint64_t my_value = 0, their_value = 0;
        bool my_ok = hd_varint_read (&mine, buffer + length, &my_value);
        bool their_ok = s_reference_varint (&theirs, buffer + length, &their_value);
        assert_int_equal (my_ok, their_ok);
        if (my_ok) {
            assert_true (my_value == their_value);
            assert_ptr_equal (mine, theirs);
        }
    }
}

//  CONFIRMS: what hd_encode_confirms writes is what protobuf-c packs, and
//  hd_decode_confirms reads back every confirm of it.
static void
test_confirms_match_protobuf (void **state)
{
    const uint64_t values[] = {0,       1,       127,       128,       16383,     16384,
                               2097151, 2097152, 268435455, 268435456, UINT64_MAX};
    size_t nvalues = sizeof values / sizeof values[0];
    unsigned seed = 11;
    for (size_t count = 1; count <= 300; count += count < 20 ? 1 : 37) {
        uint64_t corr[300], seq[300];
        bool duplicate[300];
        protobuf_c_boolean their_duplicate[300];
        for (size_t index = 0; index < count; index++) {
            corr[index] = values[rand_r (&seed) % nvalues] + (uint64_t) index;
            seq[index] = values[rand_r (&seed) % nvalues];
            duplicate[index] = rand_r (&seed) % 3 == 0;
            their_duplicate[index] = duplicate[index];
        }
        Herald__Confirms confirms = HERALD__CONFIRMS__INIT;
        confirms.n_corr = confirms.n_seq = confirms.n_duplicate = count;
        confirms.corr = corr;
        confirms.seq = seq;
        confirms.duplicate = their_duplicate;
        size_t size = hd_confirms_size (corr, seq, count);
        assert_int_equal (size, herald__confirms__get_packed_size (&confirms));
        uint8_t *mine = malloc (size), *theirs = malloc (size);
        assert_int_equal (hd_encode_confirms (mine, corr, seq, duplicate, count), size);
        herald__confirms__pack (&confirms, theirs);
        assert_memory_equal (mine, theirs, size);

        hd_confirms_view_t view;
        assert_int_equal (hd_decode_confirms (mine, size, &view), 0);
        assert_int_equal (view.count, count);
        uint64_t one_corr, one_seq;
        bool one_duplicate;
        for (size_t index = 0; index < count; index++) {
            assert_true (hd_confirms_next (&view, &one_corr, &one_seq, &one_duplicate));
            assert_true (one_corr == corr[index]);
            assert_true (one_seq == seq[index]);
            assert_int_equal (one_duplicate, duplicate[index]);
        }
        assert_false (hd_confirms_next (&view, &one_corr, &one_seq, &one_duplicate));
        free (mine);
        free (theirs);
    }
}

//  One or two random changes to the length bytes at buffer (of capacity
//  bytes): a byte overwritten, the end cut, a byte inserted. Returns the
//  new length.
static size_t
s_damage (uint8_t *buffer, size_t length, size_t capacity, unsigned *seed)
{
    int damage = 1 + rand_r (seed) % 2;
    for (int step = 0; step < damage; step++) {
        int kind = rand_r (seed) % 3;
        if (kind == 0 && length > 0)
            buffer[rand_r (seed) % length] = (uint8_t) rand_r (seed);
        else if (kind == 1 && length > 0)
            length = (size_t) rand_r (seed) % length;
        else if (length < capacity - 1) {
            size_t at = (size_t) rand_r (seed) % (length + 1);
            memmove (buffer + at + 1, buffer + at, length - at);
            buffer[at] = (uint8_t) rand_r (seed);
            length++;
        }
    }
    return length;
}

//  Checks a damaged body: false when the hand reader refuses it, else true
//  once protobuf-c read the same from it.
typedef bool (s_damaged_fn) (const uint8_t *body, size_t size);

//  100 000 rounds of s_damage on packed, each checked: most are refused,
//  enough accepted.
static void
s_damaged_rounds (const uint8_t *packed, size_t size, unsigned seed, s_damaged_fn *check)
{
    uint8_t buffer[80];
    assert_true (size <= sizeof buffer);
    int accepted = 0, refused = 0;
    for (int round = 0; round < 100000; round++) {
        memcpy (buffer, packed, size);
        size_t length = s_damage (buffer, size, sizeof buffer, &seed);
        if (check (buffer, length))
            accepted++;
        else
            refused++;
    }
    assert_true (accepted > 100);
    assert_true (refused > 1000);
}

static bool
s_confirms_damaged (const uint8_t *body, size_t size)
{
    hd_confirms_view_t view;
    if (hd_decode_confirms (body, size, &view) != 0)
        return false;
    Herald__Confirms *theirs = herald__confirms__unpack (NULL, size, body);
    if (!theirs)
        fail_msg ("protobuf-c refuses what hd_decode_confirms reads");
    assert_int_equal (view.count, theirs->n_corr);
    assert_int_equal (theirs->n_corr, theirs->n_seq);
    assert_int_equal (theirs->n_corr, theirs->n_duplicate);
    uint64_t one_corr, one_seq;
    bool one_duplicate;
    for (size_t index = 0; index < theirs->n_corr; index++) {
        assert_true (hd_confirms_next (&view, &one_corr, &one_seq, &one_duplicate));
        assert_true (one_corr == theirs->corr[index]);
        assert_true (one_seq == theirs->seq[index]);
        assert_int_equal (one_duplicate, theirs->duplicate[index] != 0);
    }
    assert_false (hd_confirms_next (&view, &one_corr, &one_seq, &one_duplicate));
    herald__confirms__free_unpacked (theirs, NULL);
    return true;
}

static bool
s_settle_damaged (const uint8_t *body, size_t size)
{
    hd_settle_view_t view;
    if (hd_decode_settle (body, size, &view) != 0)
        return false;
    Herald__Settle *theirs = herald__settle__unpack (NULL, size, body);
    if (!theirs)
        fail_msg ("protobuf-c refuses what hd_decode_settle reads");
    assert_int_equal (view.count, theirs->n_seq);
    assert_int_equal (theirs->n_seq, theirs->n_attempt);
    assert_int_equal (view.handle_ns, theirs->handle_ns);
    uint64_t one_seq;
    uint32_t one_attempt;
    for (size_t index = 0; index < theirs->n_seq; index++) {
        assert_true (hd_settle_next (&view, &one_seq, &one_attempt));
        assert_true (one_seq == theirs->seq[index]);
        assert_true (one_attempt == theirs->attempt[index]);
    }
    assert_false (hd_settle_next (&view, &one_seq, &one_attempt));
    herald__settle__free_unpacked (theirs, NULL);
    return true;
}

//  Damaged CONFIRMS: whatever hd_decode_confirms accepts, protobuf-c reads
//  to the same confirms; what it refuses goes to protobuf-c, so it may be
//  valid (other layouts) or not.
static void
test_confirms_decode_damage (void **state)
{
    uint64_t corr[] = {5, 300, 70000, 1ULL << 40}, seq[] = {1, 2, 3, 16384};
    bool duplicate[] = {false, true, false, true};
    size_t size = hd_confirms_size (corr, seq, 4);
    uint8_t packed[64];
    assert_true (size <= sizeof packed);
    hd_encode_confirms (packed, corr, seq, duplicate, 4);
    s_damaged_rounds (packed, size, 5, s_confirms_damaged);
    //  Unpacked arrays, valid protobuf, are not this layout: protobuf-c's
    const uint8_t unpacked[] = {0x08, 0x05, 0x10, 0x01, 0x18, 0x00};
    hd_confirms_view_t view;
    assert_int_equal (hd_decode_confirms (unpacked, sizeof unpacked, &view), -1);
    //  Eleven continuation bytes in a packed array: never a varint
    uint8_t overlong[] = {0x0a, 0x0b, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                          0x80, 0x80, 0x01, 0x12, 0x01, 0x01, 0x1a, 0x01, 0x00};
    assert_int_equal (hd_decode_confirms (overlong, sizeof overlong, &view), -1);
    overlong[11] = 0x01; // ten bytes: a varint (protobuf-c reads it too)
    overlong[1] = 0x0a;
    memmove (overlong + 12, overlong + 13, sizeof overlong - 13);
    assert_int_equal (hd_decode_confirms (overlong, sizeof overlong - 1, &view), 0);
}

//  A Settle as libherald packs it (protobuf-c) reads back whole; damaged
//  ones: whatever hd_decode_settle accepts, protobuf-c reads to the same
//  tags (attempts as protobuf-c makes uint32s of longer varints), and what
//  it refuses goes to protobuf-c in the broker.
static void
test_settle_decode (void **state)
{
    uint64_t seq[] = {1, 300, 70000, 1ULL << 40, 5};
    uint32_t attempt[] = {1, 2, 200, 70000, UINT32_MAX};
    Herald__Settle settle = HERALD__SETTLE__INIT;
    settle.n_seq = settle.n_attempt = 5;
    settle.seq = seq;
    settle.attempt = attempt;
    uint8_t packed[64];
    size_t size = herald__settle__get_packed_size (&settle);
    assert_true (size <= sizeof packed);
    herald__settle__pack (&settle, packed);
    hd_settle_view_t view;
    assert_int_equal (hd_decode_settle (packed, size, &view), 0);
    uint64_t one_seq;
    uint32_t one_attempt;
    for (size_t index = 0; index < 5; index++) {
        assert_true (hd_settle_next (&view, &one_seq, &one_attempt));
        assert_true (one_seq == seq[index]);
        assert_true (one_attempt == attempt[index]);
    }
    assert_false (hd_settle_next (&view, &one_seq, &one_attempt));
    assert_int_equal (view.handle_ns, 0);
    s_damaged_rounds (packed, size, 7, s_settle_damaged);

    //  With the worker's handler time (field 3) after the arrays
    settle.handle_ns = 123456;
    size = herald__settle__get_packed_size (&settle);
    assert_true (size <= sizeof packed);
    herald__settle__pack (&settle, packed);
    assert_int_equal (hd_decode_settle (packed, size, &view), 0);
    assert_int_equal (view.handle_ns, 123456);
    assert_int_equal (view.count, 5);
    s_damaged_rounds (packed, size, 7, s_settle_damaged);
    //  Longer varints keep their low 32 bits, as protobuf-c reads a uint32
    const uint8_t wide[] = {0x0a, 0x01, 0x07, 0x12, 0x01, 0x01,
                            0x18, 0x85, 0x80, 0x80, 0x80, 0x10}; // 5 + 2^32
    assert_int_equal (hd_decode_settle (wide, sizeof wide, &view), 0);
    assert_int_equal (view.handle_ns, 5);
    assert_true (s_settle_damaged (wide, sizeof wide));
    //  Anything after field 3, or another field there, is protobuf-c's
    const uint8_t other[] = {0x0a, 0x01, 0x07, 0x12, 0x01, 0x01, 0x20, 0x05};
    assert_int_equal (hd_decode_settle (other, sizeof other, &view), -1);
    const uint8_t twice[] = {0x0a, 0x01, 0x07, 0x12, 0x01, 0x01, 0x18, 0x05, 0x18, 0x06};
    assert_int_equal (hd_decode_settle (twice, sizeof twice, &view), -1);
    const uint8_t cut[] = {0x0a, 0x01, 0x07, 0x12, 0x01, 0x01, 0x18, 0x85};
    assert_int_equal (hd_decode_settle (cut, sizeof cut, &view), -1);
    //  Unpacked arrays and an empty body, valid protobuf, are protobuf-c's
    const uint8_t unpacked[] = {0x08, 0x05, 0x10, 0x01};
    assert_int_equal (hd_decode_settle (unpacked, sizeof unpacked, &view), -1);
    assert_int_equal (hd_decode_settle (unpacked, 0, &view), -1);
    //  Arrays of different lengths: not a Settle the broker can use
    const uint8_t uneven[] = {0x0a, 0x02, 0x01, 0x02, 0x12, 0x01, 0x01};
    assert_int_equal (hd_decode_settle (uneven, sizeof uneven, &view), -1);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_varints),
        cmocka_unit_test (test_varints_random),
        cmocka_unit_test (test_hand_encodings_match_protobuf),
        cmocka_unit_test (test_confirms_match_protobuf),
        cmocka_unit_test (test_settle_decode),
        cmocka_unit_test (test_confirms_decode_damage),
        cmocka_unit_test (test_delivers_encode_decode),
        cmocka_unit_test (test_publishes_encode_decode),
        cmocka_unit_test (test_fanout_items),
        cmocka_unit_test (test_header_encode_decode),
        cmocka_unit_test (test_header_decode_errors),
        cmocka_unit_test (test_command_names),
        cmocka_unit_test (test_error_names),
        cmocka_unit_test_setup_teardown (test_frames_recv_multipart, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_frames_recv_truncated, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_frames_recv_would_block, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_send_proto_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_send_command, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_send_command_router_dealer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_send_msg_and_bytes, s_setup, s_teardown),
        cmocka_unit_test (test_proto_pack),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
