/*  store — the event store behind a narrow interface: append, read by seq,
    release. This implementation keeps events in memory for as long as some
    pool still needs them; the durable log (next) replaces it behind the same
    functions.

    Frames are zmq_msg_t so the broker can send them with zmq_msg_copy
    (reference-counted, no payload copy).
*/
#ifndef HD_STORE_H_INCLUDED
#define HD_STORE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct _hd_store_t hd_store_t;

typedef struct {
    uint64_t seq;
    zmq_msg_t envelope; // encoded Event, seq and recorded_time_us included
    zmq_msg_t payload;
    uint32_t holders; // pools that still need it
} hd_record_t;

//  max_bytes bounds what the store holds (envelopes + payloads).
hd_store_t *hd_store_new (size_t max_bytes);
void hd_store_destroy (hd_store_t **self_p);

//  The seq the next append gets.
uint64_t hd_store_next_seq (hd_store_t *self);

//  True when size more bytes would pass max_bytes.
bool hd_store_full (hd_store_t *self, size_t size);

//  Append the next event, taking the content of envelope and payload (they
//  are left empty). holders is how many pools need the event; with 0 the
//  event is not kept, only its seq is used. Returns the seq, or 0 with
//  errno set (ENOMEM).
uint64_t hd_store_append (hd_store_t *self, zmq_msg_t *envelope, zmq_msg_t *payload,
                          uint32_t holders);

//  The record for seq, or NULL when no pool holds it any more.
hd_record_t *hd_store_get (hd_store_t *self, uint64_t seq);

//  One holder is done with seq; the record goes when none is left.
void hd_store_release (hd_store_t *self, uint64_t seq);

size_t hd_store_events (hd_store_t *self);
size_t hd_store_bytes (hd_store_t *self);

#endif
