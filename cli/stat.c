/*  stat — herald stat: broker and pool statistics, as a table or JSON. */
#include "admin.h"
#include "cli.h"
#include "herald.h"
#include "options.h"

#include <czmq.h>

static const char *s_description =
    "Ask the broker for its statistics and print them: a summary of the broker\n"
    "(uptime, epoch, event counters, rates, sessions, subscribers) and one row per\n"
    "worker pool. Pool columns: PENDING waiting for a worker (including delayed\n"
    "retries), INFLIGHT leased to a worker, REDELIVERED deliveries after the first,\n"
    "TERMINATED ended by a worker (TERM), EXPIRED leases that ran out,\n"
    "DLQ entries in the dead-letter queue, LOST events retention deleted before\n"
    "the pool settled them, OLDEST_MS age of the oldest event the pool has in play,\n"
    "RUN events a worker got in a row, on average since the broker started (runs\n"
    "grow with fast handlers: --dispatch-burst-us; \"-\" before any delivery).\n"
    "\n"
    "With --json prints exactly one JSON object on one line (the Stats message of\n"
    "docs/PROTOCOL.md, field names as in proto/herald.proto).\n"
    "\n"
    "Exit status: 0 on success; 1 when the broker did not answer within\n"
    "--timeout; 2 on a usage error.";

typedef struct {
    char *broker;
    int64_t timeout;
    bool json;
} s_stat_t;

//  "3d04h05m", "1h02m03s", "4m05s", "12.3s"
static const char *
s_uptime_text (uint64_t ms, char *buffer, size_t size)
{
    uint64_t seconds = ms / 1000;
    if (seconds >= 86400)
        snprintf (buffer, size, "%llud%02lluh%02llum", (unsigned long long) (seconds / 86400),
                  (unsigned long long) (seconds % 86400 / 3600),
                  (unsigned long long) (seconds % 3600 / 60));
    else if (seconds >= 3600)
        snprintf (buffer, size, "%lluh%02llum%02llus", (unsigned long long) (seconds / 3600),
                  (unsigned long long) (seconds % 3600 / 60), (unsigned long long) (seconds % 60));
    else if (seconds >= 60)
        snprintf (buffer, size, "%llum%02llus", (unsigned long long) (seconds / 60),
                  (unsigned long long) (seconds % 60));
    else
        snprintf (buffer, size, "%.1fs", (double) ms / 1000.0);
    return buffer;
}

static const char *
s_bytes_text (uint64_t bytes, char *buffer, size_t size)
{
    if (bytes < 1024)
        snprintf (buffer, size, "%llu B", (unsigned long long) bytes);
    else if (bytes < 1024 * 1024)
        snprintf (buffer, size, "%.1f KiB", (double) bytes / 1024.0);
    else if (bytes < 1024ULL * 1024 * 1024)
        snprintf (buffer, size, "%.1f MiB", (double) bytes / (1024.0 * 1024));
    else
        snprintf (buffer, size, "%.1f GiB", (double) bytes / (1024.0 * 1024 * 1024));
    return buffer;
}

#define S_COLUMNS 14

static const char *s_headers[S_COLUMNS] = {
    "POOL",        "FILTER",     "WORKERS", "PENDING", "INFLIGHT", "ACKED",     "DELIVERED",
    "REDELIVERED", "TERMINATED", "EXPIRED", "DLQ",     "LOST",     "OLDEST_MS", "RUN"};

//  The cells of one pool row, written into cell[] (each 32 bytes, except the
//  name and filter which point into the message).
static void
s_pool_cells (const Herald__PoolStats *pool, const char *cell[S_COLUMNS], char text[][32])
{
    cell[0] = pool->name && *pool->name ? pool->name : "-";
    cell[1] = pool->filter && *pool->filter ? pool->filter : "\"\"";
    uint64_t numbers[S_COLUMNS - 3] = {pool->workers,    pool->pending,          pool->inflight,
                                       pool->acked,      pool->delivered,        pool->redelivered,
                                       pool->terminated, pool->expired,          pool->dlq,
                                       pool->lost,       pool->oldest_pending_ms};
    for (int column = 2; column < S_COLUMNS - 1; column++) {
        snprintf (text[column], 32, "%llu", (unsigned long long) numbers[column - 2]);
        cell[column] = text[column];
    }
    //  The mean run: events a worker got in a row (--dispatch-burst-us)
    int last = S_COLUMNS - 1;
    if (pool->runs)
        snprintf (text[last], 32, "%.1f", (double) pool->run_events / (double) pool->runs);
    else
        snprintf (text[last], 32, "-");
    cell[last] = text[last];
}

static void
s_print_table (const Herald__Stats *stats)
{
    char uptime[32], store[32];
    printf ("broker   uptime %s  epoch %llu  published %llu  duplicates %llu  rejected %llu  "
            "malformed %llu\n",
            s_uptime_text (stats->uptime_ms, uptime, sizeof uptime),
            (unsigned long long) stats->epoch, (unsigned long long) stats->published,
            (unsigned long long) stats->duplicates, (unsigned long long) stats->rejected,
            (unsigned long long) stats->malformed);
    printf ("         publish %.1f/s  deliver %.1f/s  sessions %u  subscribers %u  "
            "subscriptions %u  gaps reported %llu\n",
            stats->publish_rate, stats->deliver_rate, stats->sessions, stats->subscribers,
            stats->subscriptions, (unsigned long long) stats->subscriber_gaps);
    printf ("         store %llu events, %s  dedup entries %llu  fanout sent %llu  "
            "expired sessions %llu\n",
            (unsigned long long) stats->store_events,
            s_bytes_text (stats->store_bytes, store, sizeof store),
            (unsigned long long) stats->dedup_entries, (unsigned long long) stats->fanout_sent,
            (unsigned long long) stats->expired_sessions);
    char released[32];
    printf ("         log page cache given back %s\n",
            s_bytes_text (stats->log_page_cache_released, released, sizeof released));
    //  Since start: two snapshots give the share over an interval (--json)
    double uptime_us = (double) stats->uptime_ms * 1000.0;
    printf ("         loop busy %.1f%% of uptime  turns %llu  commits %llu  "
            "CPU user %.1fs system %.1fs\n",
            uptime_us > 0 ? 100.0 * (double) stats->loop_busy_us / uptime_us : 0.0,
            (unsigned long long) stats->turns, (unsigned long long) stats->commits,
            (double) stats->cpu_user_us / 1e6, (double) stats->cpu_system_us / 1e6);
    printf ("\n");
    if (stats->n_pools == 0) {
        printf ("no pools\n");
        return;
    }
    //  Column widths: the widest of header and cells
    size_t width[S_COLUMNS];
    for (int column = 0; column < S_COLUMNS; column++)
        width[column] = strlen (s_headers[column]);
    const char *cell[S_COLUMNS];
    char text[S_COLUMNS][32];
    for (size_t index = 0; index < stats->n_pools; index++) {
        s_pool_cells (stats->pools[index], cell, text);
        for (int column = 0; column < S_COLUMNS; column++)
            if (strlen (cell[column]) > width[column])
                width[column] = strlen (cell[column]);
    }
    //  Name and filter left-aligned, numbers right-aligned
    for (int column = 0; column < S_COLUMNS; column++)
        printf ("%s%*s", column ? "  " : "",
                column < 2 ? -(int) width[column] : (int) width[column], s_headers[column]);
    printf ("\n");
    for (size_t index = 0; index < stats->n_pools; index++) {
        s_pool_cells (stats->pools[index], cell, text);
        for (int column = 0; column < S_COLUMNS; column++)
            printf ("%s%*s", column ? "  " : "",
                    column < 2 ? -(int) width[column] : (int) width[column], cell[column]);
        printf ("\n");
    }
}

//  Print the library's JSON on one line. JSON strings cannot hold raw line
//  breaks, so dropping every CR and LF keeps the document intact.
static void
s_print_json (const char *json)
{
    for (const char *cursor = json; *cursor; cursor++)
        if (*cursor != '\n' && *cursor != '\r')
            putchar (*cursor);
    putchar ('\n');
}

int
cli_stat (int argc, char **argv)
{
    s_stat_t self = {0};
    int exit_code = CLI_EXIT_USAGE;
    hd_options_t *options = hd_options_new ("herald stat", "[options]", s_description);
    if (!options) {
        fprintf (stderr, "herald stat: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    hd_options_add (options, "broker", HD_OPT_STRING, HERALD_DEFAULT_BROKER, NULL,
                    "broker command endpoint", &self.broker);
    hd_options_add (options, "json", HD_OPT_BOOL, "false", "", "print one JSON object on one line",
                    &self.json);
    hd_options_add (options, "timeout", HD_OPT_DURATION, "5s", "",
                    "how long to wait for the broker's answer", &self.timeout);
    if (hd_options_parse (options, argc, argv)) {
        fprintf (stderr, "herald stat: %s\n", hd_options_error (options));
        goto done;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        exit_code = CLI_EXIT_OK;
        goto done;
    }
    if (hd_options_argc (options) > 0) {
        fprintf (stderr, "herald stat: unexpected argument '%s' (see herald stat --help)\n",
                 hd_options_argv (options)[0]);
        goto done;
    }
    if (!self.broker || !*self.broker) {
        fprintf (stderr, "herald stat: --broker must not be empty\n");
        goto done;
    }
    if (self.timeout < 1 || self.timeout > INT32_MAX) {
        fprintf (stderr, "herald stat: --timeout must be between 1ms and 24 days\n");
        goto done;
    }

    exit_code = CLI_EXIT_FAILURE;
    const char *error = NULL;
    Herald__Stats *stats = hd_admin_stats (self.broker, (int) self.timeout, &error);
    if (!stats) {
        char duration[32];
        if (zsys_interrupted)
            fprintf (stderr, "herald: interrupted\n");
        else if (!error || strstr (error, "timed out"))
            fprintf (stderr, "herald: broker at %s did not answer within %s\n", self.broker,
                     cli_duration_text (self.timeout, duration, sizeof duration));
        else
            fprintf (stderr, "herald: cannot get stats from broker at %s: %s\n", self.broker,
                     error);
        goto done;
    }
    if (self.json) {
        char *json = hd_admin_stats_to_json (stats);
        if (json) {
            s_print_json (json);
            free (json);
            exit_code = CLI_EXIT_OK;
        } else
            fprintf (stderr, "herald: out of memory\n");
    } else {
        s_print_table (stats);
        exit_code = CLI_EXIT_OK;
    }
    herald__stats__free_unpacked (stats, NULL);
    if (fflush (stdout) != 0)
        exit_code = CLI_EXIT_FAILURE;
done:
    hd_options_destroy (&options);
    return exit_code;
}
