/*  event — internal access to hd_event_t for the library's own modules:
    the wire encoding, decoding from received frames and sending as frames.
*/
#ifndef HD_EVENT_H_INCLUDED
#define HD_EVENT_H_INCLUDED

#include "herald.h"
#include "codec.h"

//  Build an event from an Event frame and an optional payload frame. The
//  payload's content is moved into the event (no copy); payload may be NULL.
//  Returns NULL when the envelope does not parse (errno EPROTO; strings are
//  not checked for UTF-8, which the broker did) or on no memory.
hd_event_t *hd_event_decode (const void *envelope, size_t size, zmq_msg_t *payload);

//  hd_event_decode for an event whose payload lies inside a larger body (a
//  batch): the payload bytes are copied.
hd_event_t *hd_event_decode_bytes (const void *envelope, size_t size, const void *payload,
                                   size_t payload_size);
//  hd_event_decode_bytes in the memory of *spare_p, an event the caller is
//  done with, when it has the room (it is taken either way: reused, or
//  destroyed; spare_p may be NULL or point to NULL). Saves an allocation
//  and a free an event where events are decoded one after another.
hd_event_t *hd_event_decode_bytes_into (hd_event_t **spare_p, const void *envelope, size_t size,
                                        const void *payload, size_t payload_size);

//  The size of the encoded Event, and the encoding written at out (which
//  has hd_event_encoded_size bytes); returns the bytes written.
size_t hd_event_encoded_size (const hd_event_t *self);
size_t hd_event_encode_into (const hd_event_t *self, uint8_t *out);

//  Encode into a new malloc'ed buffer. Returns NULL on no memory.
uint8_t *hd_event_encode (const hd_event_t *self, size_t *size_p);

//  Send the [Event][payload] frames. The payload frame gets flags (so pass
//  ZMQ_SNDMORE only if more frames follow); a large payload is shared, not
//  copied.
int hd_event_send (const hd_event_t *self, void *socket, int flags);

void hd_event_set_seq (hd_event_t *self, uint64_t seq);

//  Whether the event is worth keeping for hd_event_decode_bytes_into: it
//  holds nothing but its own memory (no payload frame, no text grown out
//  of it, no unknown fields), and that is at most HD_EVENT_KEEP_MAX bytes
//  of text, so a stack of kept events stays small.
#define HD_EVENT_KEEP_MAX (8 * 1024)
bool hd_event_keepable (const hd_event_t *self);
//  Whether hd_event_renew can reuse the event's memory: keepable, with
//  at least the room hd_event_new gives.
bool hd_event_renewable (const hd_event_t *self);
//  Makes a renewable event what hd_event_new (type) makes, in its own
//  memory. Returns 0, or -1 when it is not renewable or type cannot be set
//  (destroy it then).
int hd_event_renew (hd_event_t *self, const char *type);

//  Finished events kept for their memory (hd_event_decode_bytes_into,
//  hd_event_renew), at most max of them, each keepable. Zeroed is empty;
//  the owner sets max.
typedef struct {
    hd_event_t **events;
    size_t count, capacity, max;
} hd_event_spares_t;
//  Keeps *event_p (nulling it) when it is keepable and fewer than max are
//  kept, else destroys it. event_p may point to NULL.
void hd_event_spares_keep (hd_event_spares_t *self, hd_event_t **event_p);
//  The most recently kept event, now the caller's, or NULL.
static inline hd_event_t *
hd_event_spares_take (hd_event_spares_t *self)
{
    return self->count ? self->events[--self->count] : NULL;
}
//  Destroys every kept event and frees the array.
void hd_event_spares_drain (hd_event_spares_t *self);

#endif
