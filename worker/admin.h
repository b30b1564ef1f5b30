/*  admin — requests on the command channel that need no session: broker
    statistics (STATS) and the pools' dead-letter queues (DLQ_LIST, DLQ_SHOW,
    DLQ_REPLAY, DLQ_PURGE). See docs/PROTOCOL.md section 8.
    Internal to Herald's own tools (the CLI's `herald stat` and `herald dlq`).

    Each call opens a DEALER to the broker, sends one request (or a few, for a
    long list of seqs), waits for the answer at most timeout_ms (-1: forever)
    and closes the socket.
*/
#ifndef HD_ADMIN_H_INCLUDED
#define HD_ADMIN_H_INCLUDED

#include "herald.h"
#include "codec.h"

//  Ask the broker at endpoint for its Stats. Returns the decoded message
//  (free with herald__stats__free_unpacked (stats, NULL)), or NULL with
//  *error set to a static reason.
Herald__Stats *hd_admin_stats (const char *endpoint, int timeout_ms, const char **error);

//  Render stats as one JSON object (malloc'ed; caller frees), or NULL on no memory.
char *hd_admin_stats_to_json (const Herald__Stats *stats);

//  Why an admin request failed.
typedef enum {
    HD_ADMIN_OK = 0,
    HD_ADMIN_LOCAL,       // cannot create the socket, bad endpoint, cannot send, no memory
    HD_ADMIN_TIMEOUT,     // no answer within timeout_ms
    HD_ADMIN_INTERRUPTED, // SIGINT / SIGTERM while waiting
    HD_ADMIN_REFUSED,     // the broker answered ERROR; code holds its ErrorCode
    HD_ADMIN_BAD_REPLY    // the answer does not parse
} hd_admin_failure_t;

typedef struct {
    hd_admin_failure_t failure;
    int code;       // HD_ADMIN_REFUSED: the broker's ErrorCode (HERALD__ERROR_CODE__NOT_FOUND, ...)
    char text[512]; // one line for a human: "no such pool 'orders'", "timed out after 5s", ...
} hd_admin_error_t;

//  Which DLQ entries DLQ_REPLAY and DLQ_PURGE act on: the seqs listed when
//  seq_count > 0, else everything when all, else the range from_seq..to_seq
//  (to_seq 0: no upper end).
typedef struct {
    const uint64_t *seqs;
    size_t seq_count;
    uint64_t from_seq;
    uint64_t to_seq;
    bool all;
} hd_admin_selection_t;

//  DLQ_LIST: up to limit entries (0: the broker's default, 1000) of pool's
//  DLQ from from_seq on, by seq. Returns the list (free with
//  herald__dlq_list__free_unpacked (list, NULL)), or NULL with *error filled.
Herald__DlqList *hd_admin_dlq_list (const char *endpoint, const char *pool, uint64_t from_seq,
                                    uint32_t limit, int timeout_ms, hd_admin_error_t *error);

//  DLQ_SHOW: the entry at seq in pool's DLQ (free with
//  herald__dlq_entry__free_unpacked (entry, NULL)) and, in *event_p when
//  event_p is not NULL, the dead event itself with its payload (destroy with
//  hd_event_destroy). NULL with *error filled on failure.
Herald__DlqEntry *hd_admin_dlq_show (const char *endpoint, const char *pool, uint64_t seq,
                                     hd_event_t **event_p, int timeout_ms, hd_admin_error_t *error);

//  DLQ_REPLAY: put the selected entries back into pool (attempts from 0).
//  Returns how many were replayed, or -1 with *error filled. A selection of
//  more seqs than fit one request goes in several; a failure then says how
//  many were already replayed.
int64_t hd_admin_dlq_replay (const char *endpoint, const char *pool,
                             const hd_admin_selection_t *selection, int timeout_ms,
                             hd_admin_error_t *error);

//  DLQ_PURGE: delete the selected entries. As for hd_admin_dlq_replay.
int64_t hd_admin_dlq_purge (const char *endpoint, const char *pool,
                            const hd_admin_selection_t *selection, int timeout_ms,
                            hd_admin_error_t *error);

//  "terminated", "max_deliver", or "none" for anything else.
const char *hd_admin_dlq_reason_name (int reason);

#endif
