/*  session — what the broker knows about one peer connection that
    registered: a pool worker (JOIN) or a reporting subscriber (SUBSCRIBER).
    Publishers and admin clients need no session.
*/
#ifndef HD_SESSION_H_INCLUDED
#define HD_SESSION_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include "pool.h"

#define HD_ROUTING_ID_MAX   255
#define HD_SESSION_NAME_MAX 64

typedef enum { HD_SESSION_WORKER = 1, HD_SESSION_SUBSCRIBER = 2 } hd_session_kind_t;

typedef struct {
    hd_session_kind_t kind;
    uint8_t routing_id[HD_ROUTING_ID_MAX];
    size_t routing_id_size;
    uint64_t hash; // of routing_id: the session table key
    uint64_t number;
    int fd;             // transport connection, -1 when unknown
    int64_t last_heard; // monotonic ms of the last message from the peer
    bool dead;          // ended; the broker removes it at the end of the turn
    bool doomed;        // found unreachable; ends at the end of the turn
    bool disconnected;  // its connection closed; ends once its messages are read
    char name[HD_SESSION_NAME_MAX];
    //  Workers
    hd_pool_t *pool;
    hd_member_t *member;
    uint32_t max_batch; // most events per DELIVERS (JOIN, capped by --max-batch); <= 1: none
    //  Deliveries of this dispatch pass, encoded as a Delivers body
    uint8_t *batch;
    size_t batch_size;
    size_t batch_capacity;
    uint32_t batch_count;
    size_t batch_hint; // size recent batches reached: what a growing one jumps to
    bool batch_listed; // on the broker's list of sessions to flush
    //  Subscribers: their latest report
    uint64_t received;
    uint64_t gaps;
} hd_session_t;

//  Returns NULL when out of memory or routing_id is too long.
hd_session_t *hd_session_new (hd_session_kind_t kind, const void *routing_id,
                              size_t routing_id_size, uint64_t number, int fd, int64_t now);
void hd_session_destroy (hd_session_t **self_p);

void hd_session_set_name (hd_session_t *self, const char *name);

//  Appends one delivery to the session's DELIVERS batch. Returns 0, or -1
//  when out of memory (nothing appended).
int hd_session_batch_add (hd_session_t *self, uint64_t seq, uint32_t attempt, uint32_t ack_wait_ms,
                          const void *envelope, size_t envelope_size, const void *payload,
                          size_t payload_size);

//  Moves the batch into body (initialised here; the caller sends or closes
//  it) and empties it. Returns the number of deliveries in it (0: body is
//  untouched), or -1 when out of memory: the batch is dropped, and the
//  caller must end the session so its leases go back to the pool.
int hd_session_batch_take (hd_session_t *self, zmq_msg_t *body);

//  Drops the batch (the session ended; its leases went back to the pool).
void hd_session_batch_drop (hd_session_t *self);

#endif
