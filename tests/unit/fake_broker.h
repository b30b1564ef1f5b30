/*  fake_broker.h — a scripted broker for client-library unit tests: a
    ROUTER the test drives by hand, so it can send what a real broker would
    (or would never) send and see exactly what the client puts on the wire.
    One client (the last one heard) at a time. Header-only: static functions.
*/
#ifndef FAKE_BROKER_H_INCLUDED
#define FAKE_BROKER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>
#include "codec.h"

typedef struct {
    zsock_t *router;
    zframe_t *peer; // routing id of the last client heard
    char endpoint[64];
} fake_broker_t;

//  A message from the client: command and its body frame (NULL if none).
typedef struct {
    int command;
    zmsg_t *msg;     // [header][body...]
    zframe_t *body;  // first frame after the header, owned by msg
    zframe_t *event; // PUBLISH: the Event frame
} fake_msg_t;

static void
fake_broker_start (fake_broker_t *self)
{
    static int counter;
    memset (self, 0, sizeof *self);
    snprintf (self->endpoint, sizeof self->endpoint, "inproc://fake-broker-%d-%d", getpid (),
              ++counter);
    self->router = zsock_new (ZMQ_ROUTER);
    assert (self->router);
    zsock_set_linger (self->router, 0);
    int rc = zsock_bind (self->router, "%s", self->endpoint);
    assert (rc == 0);
    (void) rc;
}

static void
fake_broker_stop (fake_broker_t *self)
{
    zframe_destroy (&self->peer);
    zsock_destroy (&self->router);
}

static void
fake_msg_free (fake_msg_t *msg)
{
    zmsg_destroy (&msg->msg);
    msg->body = msg->event = NULL;
}

//  Next message from a client within timeout_ms; false on timeout.
static bool
fake_broker_recv (fake_broker_t *self, fake_msg_t *out, int timeout_ms)
{
    memset (out, 0, sizeof *out);
    zpoller_t *poller = zpoller_new (self->router, NULL);
    void *which = zpoller_wait (poller, timeout_ms);
    zpoller_destroy (&poller);
    if (!which)
        return false;
    zmsg_t *msg = zmsg_recv (self->router);
    if (!msg)
        return false;
    zframe_destroy (&self->peer);
    self->peer = zmsg_pop (msg);
    zframe_t *header = zmsg_first (msg);
    out->command = -1;
    if (header)
        hd_header_decode (zframe_data (header), zframe_size (header), &out->command);
    out->body = zmsg_next (msg);
    out->event = out->body ? zmsg_next (msg) : NULL;
    out->msg = msg;
    return true;
}

//  Wait for a message with command, dropping others (HEARTBEATs, ...).
static bool
fake_broker_expect (fake_broker_t *self, int command, fake_msg_t *out, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t remaining = deadline - zclock_mono ();
        if (remaining <= 0 || !fake_broker_recv (self, out, (int) remaining))
            return false;
        if (out->command == command)
            return true;
        fake_msg_free (out);
    }
}

//  Send raw frames (after the routing id) to the last client heard.
static void
fake_broker_send_frames (fake_broker_t *self, int count, const void **data, const size_t *sizes)
{
    assert (self->peer);
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &(zframe_t *){zframe_dup (self->peer)});
    for (int index = 0; index < count; index++)
        zmsg_addmem (msg, data[index], sizes[index]);
    zmsg_send (&msg, self->router);
}

//  Send [header][body][extra frames...] to the last client heard.
static void
fake_broker_send (fake_broker_t *self, int command, const ProtobufCMessage *body, int extra_count,
                  const void **extra, const size_t *extra_sizes)
{
    const void *data[8];
    size_t sizes[8];
    uint8_t header[HD_HEADER_SIZE];
    hd_header_encode (header, (hd_command_t) command);
    data[0] = header;
    sizes[0] = sizeof header;
    int count = 1;
    uint8_t *packed = NULL;
    if (body) {
        packed = hd_proto_pack (body, &sizes[count]);
        data[count++] = packed;
    }
    for (int index = 0; index < extra_count && count < 8; index++) {
        data[count] = extra[index];
        sizes[count++] = extra_sizes[index];
    }
    fake_broker_send_frames (self, count, data, sizes);
    free (packed);
}

#endif
