/*  admin — broker statistics over the command channel (STATS / STATS_REPLY).
    Internal to Herald's own tools (the CLI's `herald stat`).
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

#endif
