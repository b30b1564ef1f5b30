/*  fanout — live delivery to subscribers over XPUB.

    Each event goes out as [type][Fanout{epoch, type_seq}][Event][payload],
    or a run of events of one type as [type][FanoutBatch];
    ZeroMQ filters by type prefix and drops for a subscriber past its HWM,
    so a slow subscriber never holds anyone up. type_seq lets subscribers
    see their losses.
*/
#ifndef HD_FANOUT_H_INCLUDED
#define HD_FANOUT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "record.h"

typedef struct _hd_fanout_t hd_fanout_t;

//  xpub is a bound XPUB socket (not owned). max_types bounds the per-type
//  counter table; when it fills, the table restarts under a new epoch.
hd_fanout_t *hd_fanout_new (void *xpub, uint64_t epoch, size_t max_types);
void hd_fanout_destroy (hd_fanout_t **self_p);

//  Send one event to subscribers. Events of one type that follow each
//  other wait and go as one FanoutBatch message at the next
//  hd_fanout_flush (or when the run is full or another type comes); a
//  payload over 4 KiB goes alone, uncopied. The record's frames stay with
//  the caller (they are shared, not copied). A part without a frame is
//  borrowed: its bytes must stay good until the caller's next
//  hd_fanout_flush returns, and if it goes out as a frame of its own it is
//  copied first. Returns 0, -1 when out of memory.
int hd_fanout_publish (hd_fanout_t *self, const char *type, size_t type_size,
                       const hd_record_t *record);

//  Send the waiting run. Call at the end of every commit.
void hd_fanout_flush (hd_fanout_t *self);

//  FanoutBatch messages sent (Stats.fanout_batches).
uint64_t hd_fanout_batches (hd_fanout_t *self);

//  Read pending (un)subscription messages from the XPUB socket.
void hd_fanout_read_subscriptions (hd_fanout_t *self);

size_t hd_fanout_subscriptions (hd_fanout_t *self);
uint64_t hd_fanout_sent (hd_fanout_t *self);
uint64_t hd_fanout_epoch (hd_fanout_t *self);

#endif
