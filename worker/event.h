/*  event — internal access to hd_event_t for the library's own modules:
    the wire envelope, decoding from received frames and sending as frames.
*/
#ifndef HD_EVENT_H_INCLUDED
#define HD_EVENT_H_INCLUDED

#include "herald.h"
#include "codec.h"

//  The protobuf envelope behind an event (owned by the event).
Herald__Event *hd_event_envelope (hd_event_t *self);

//  Build an event from an Event frame and an optional payload frame. The
//  payload's content is moved into the event (no copy); payload may be NULL.
//  Returns NULL when the envelope does not parse.
hd_event_t *hd_event_decode (const void *envelope, size_t size, zmq_msg_t *payload);

//  Pack the envelope into a new malloc'ed buffer. Returns NULL on no memory.
uint8_t *hd_event_encode (const hd_event_t *self, size_t *size_p);

//  Send the [Event][payload] frames. The payload frame gets flags (so pass
//  ZMQ_SNDMORE only if more frames follow); the payload is shared, not copied.
int hd_event_send (const hd_event_t *self, void *socket, int flags);

void hd_event_set_seq (hd_event_t *self, uint64_t seq);

#endif
