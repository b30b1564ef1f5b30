/*  worker — pool membership: an I/O thread that owns the broker connection
    (JOIN, heartbeats, reconnects, settling) and handler threads that run
    the user's handler. hd_delivery_t is one event in the worker's hands.
    The public API is in herald.h; this header names the module and the
    few internals its tests reach.
*/
#ifndef HD_WORKER_H_INCLUDED
#define HD_WORKER_H_INCLUDED

#include "herald.h"

#include <stddef.h>
#include <stdint.h>

//  Tags per ACK / PROGRESS message: 4096 tags of the largest varints
//  (10 + 5 bytes) pack into 60 KiB, under the broker's 64 KiB body limit.
#define HD_WORKER_SETTLE_BATCH 4096
//  Longest error text sent in a NACK or TERM (hd_delivery_set_error cuts).
#define HD_WORKER_ERROR_MAX 4096

//  Send count tags as [header][Settle] messages of at most
//  HD_WORKER_SETTLE_BATCH tags each. command is HD_CMD_ACK or
//  HD_CMD_PROGRESS; handle_ns (0: not said) is the worker's handler time
//  per event, which the broker sizes its dispatch runs by; flags as for
//  zmq_send. Returns messages sent, or -1.
int hd_worker_send_settles (void *socket, int command, const uint64_t *seq, const uint32_t *attempt,
                            size_t count, uint32_t handle_ns, int flags);

//  The handler time per event to report next, from the last one and a
//  call that took took_ns: a moving average over ~8 calls, at least 1 ns
//  once anything was measured (0 says nothing was).
uint32_t hd_worker_handle_ns_next (uint32_t handle_ns, uint64_t took_ns);

#endif
