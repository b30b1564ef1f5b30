/*  session — what the broker knows about one peer connection that
    registered: a pool worker (JOIN) or a reporting subscriber (SUBSCRIBER).
    Publishers and admin clients need no session.
*/
#ifndef HD_SESSION_H_INCLUDED
#define HD_SESSION_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pool.h"

#define HD_ROUTING_ID_MAX   255
#define HD_SESSION_KEY_MAX  (2 * HD_ROUTING_ID_MAX + 1)
#define HD_SESSION_NAME_MAX 64

typedef enum { HD_SESSION_WORKER = 1, HD_SESSION_SUBSCRIBER = 2 } hd_session_kind_t;

typedef struct {
    hd_session_kind_t kind;
    uint8_t routing_id[HD_ROUTING_ID_MAX];
    size_t routing_id_size;
    char key[HD_SESSION_KEY_MAX]; // hex of routing_id: the session table key
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
    //  Subscribers: their latest report
    uint64_t received;
    uint64_t gaps;
} hd_session_t;

//  Returns NULL when out of memory or routing_id is too long.
hd_session_t *hd_session_new (hd_session_kind_t kind, const void *routing_id,
                              size_t routing_id_size, uint64_t number, int fd, int64_t now);
void hd_session_destroy (hd_session_t **self_p);

//  Writes the table key of a routing id into key (HD_SESSION_KEY_MAX bytes).
//  Returns 0, -1 when routing_id is too long.
int hd_session_key (const void *routing_id, size_t routing_id_size, char *key);

void hd_session_set_name (hd_session_t *self, const char *name);

#endif
