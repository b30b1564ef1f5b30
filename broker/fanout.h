/*  fanout — live delivery to subscribers over XPUB.

    Each event goes out as [type][Fanout{epoch, type_seq}][Event][payload];
    ZeroMQ filters by type prefix and drops for a subscriber past its HWM,
    so a slow subscriber never holds anyone up. type_seq lets subscribers
    see their losses.
*/
#ifndef HD_FANOUT_H_INCLUDED
#define HD_FANOUT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct _hd_fanout_t hd_fanout_t;

//  xpub is a bound XPUB socket (not owned). max_types bounds the per-type
//  counter table; when it fills, the table restarts under a new epoch.
hd_fanout_t *hd_fanout_new (void *xpub, uint64_t epoch, size_t max_types);
void hd_fanout_destroy (hd_fanout_t **self_p);

//  Send one event to subscribers. envelope and payload stay with the caller
//  (they are shared, not copied). Returns 0, -1 on a send error.
int hd_fanout_publish (hd_fanout_t *self, const char *type, size_t type_size, zmq_msg_t *envelope,
                       zmq_msg_t *payload);

//  Read pending (un)subscription messages from the XPUB socket.
void hd_fanout_read_subscriptions (hd_fanout_t *self);

size_t hd_fanout_subscriptions (hd_fanout_t *self);
uint64_t hd_fanout_sent (hd_fanout_t *self);
uint64_t hd_fanout_epoch (hd_fanout_t *self);

#endif
