/*  worker — pool membership: an I/O thread that owns the broker connection
    (JOIN, heartbeats, reconnects, settling) and handler threads that run
    the user's handler. hd_delivery_t is one event in the worker's hands.
    The public API is in herald.h; this header only names the module.
*/
#ifndef HD_WORKER_H_INCLUDED
#define HD_WORKER_H_INCLUDED

#include "herald.h"

#endif
