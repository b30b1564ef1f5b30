/*  herald-broker — parse options, run the broker until SIGINT/SIGTERM. */
#include <czmq.h>
#include <stdio.h>
#include <string.h>
#include "broker.h"
#include "dedup.h"
#include "options.h"

typedef struct {
    char *router;
    char *xpub;
    int64_t heartbeat, liveness, dedup_window, dedup_max, max_payload, max_envelope, max_topic;
    int64_t max_id, max_pending, max_pools, max_sessions, max_credit, max_types;
    int64_t max_batch, batch_payload_max, max_publish_batch;
    int64_t sub_hwm, ack_wait, backoff_initial, backoff_max, retry_after;
    char *backoff_multiplier, *backoff_jitter;
    bool verbose;
    char *data_dir, *fsync;
    int64_t segment_size, cache_size, log_page_cache, retention_age, retention_bytes, max_disk,
        max_deliver;
    int64_t max_dlq, checkpoint_bytes, journal_sync, turn_events, dispatch_burst_us;
    bool skip_corrupt, retention_hard, prepare_segments, dedup_reserve;
} s_settings_t;

static hd_options_t *
s_options_new (s_settings_t *s)
{
    hd_options_t *options = hd_options_new (
        "herald-broker", "[options]",
        "Herald event broker: publishers, workers and admin clients on the ROUTER endpoint,\n"
        "live subscribers on the XPUB endpoint. See docs/PROTOCOL.md and docs/OPERATIONS.md.");
    hd_options_add (options, "router", HD_OPT_STRING, "tcp://127.0.0.1:7100", NULL,
                    "endpoint for publishers, workers and admin (ROUTER)", &s->router);
    hd_options_add (options, "xpub", HD_OPT_STRING, "tcp://127.0.0.1:7101", NULL,
                    "endpoint for live subscribers (XPUB)", &s->xpub);
    hd_options_add (options, "heartbeat", HD_OPT_DURATION, "1s", NULL,
                    "heartbeat interval, both ways", &s->heartbeat);
    hd_options_add (options, "liveness", HD_OPT_INT, "3", NULL,
                    "missed heartbeats before a peer is dead", &s->liveness);
    hd_options_add (options, "ack-wait", HD_OPT_DURATION, "30s", NULL,
                    "lease length: unsettled deliveries are redelivered after it", &s->ack_wait);
    hd_options_add (options, "backoff-initial", HD_OPT_DURATION, "1s", NULL,
                    "first redelivery delay after a lease expiry or NACK without delay",
                    &s->backoff_initial);
    hd_options_add (options, "backoff-max", HD_OPT_DURATION, "60s", NULL,
                    "longest redelivery delay", &s->backoff_max);
    hd_options_add (options, "backoff-multiplier", HD_OPT_STRING, "2", NULL,
                    "delay growth per attempt", &s->backoff_multiplier);
    hd_options_add (options, "backoff-jitter", HD_OPT_STRING, "0.2", NULL,
                    "random spread of each delay, as a fraction", &s->backoff_jitter);
    hd_options_add (options, "dedup-window", HD_OPT_DURATION, "2m", NULL,
                    "how long a (source, id) is remembered for duplicate suppression",
                    &s->dedup_window);
    hd_options_add (options, "dedup-max", HD_OPT_INT, "1000000", NULL,
                    "most identities remembered (at most 2147483648); the oldest go first",
                    &s->dedup_max);
    hd_options_add (options, "dedup-reserve", HD_OPT_BOOL, "true", NULL,
                    "size the dedup window's index for --dedup-max and touch its memory at start "
                    "(~19 MiB at the default --dedup-max), so a fresh broker "
                    "does not grow it under traffic (false: it grows as identities arrive)",
                    &s->dedup_reserve);
    hd_options_add (options, "max-payload", HD_OPT_SIZE, "1M", NULL, "largest payload accepted",
                    &s->max_payload);
    hd_options_add (options, "max-envelope", HD_OPT_SIZE, "64K", NULL,
                    "largest encoded event envelope accepted", &s->max_envelope);
    hd_options_add (options, "max-topic", HD_OPT_INT, "255", NULL,
                    "longest event type (topic) in bytes", &s->max_topic);
    hd_options_add (options, "max-id", HD_OPT_INT, "256", NULL,
                    "longest id, source and partition key in bytes", &s->max_id);
    hd_options_add (options, "max-pending", HD_OPT_INT, "1000000", NULL,
                    "events a pool may hold before PUBLISH is refused (BACKLOG_FULL)",
                    &s->max_pending);
    hd_options_add (options, "data-dir", HD_OPT_STRING, "./herald-data", NULL,
                    "directory of the event log (log/) and the pools' state (state/)",
                    &s->data_dir);
    hd_options_add (options, "fsync", HD_OPT_STRING, "always", NULL,
                    "always: CONFIRM only after fdatasync; interval=MS: sync at most every MS, "
                    "confirm before; never: leave it to the OS (see docs/OPERATIONS.md)",
                    &s->fsync);
    hd_options_add (options, "segment-size", HD_OPT_SIZE, "64M", NULL,
                    "size of one log segment file", &s->segment_size);
    hd_options_add (options, "prepare-segments", HD_OPT_BOOL, "true", NULL,
                    "write the next segment file ahead with zeros, so commits overwrite instead "
                    "of append (faster fdatasync; holds up to two segments of extra disk)",
                    &s->prepare_segments);
    hd_options_add (options, "cache-size", HD_OPT_SIZE, "64M", NULL,
                    "recent events kept in memory for delivery", &s->cache_size);
    hd_options_add (options, "log-page-cache", HD_OPT_SIZE, "256M", NULL,
                    "newest log bytes left in the OS page cache; older ones are written back "
                    "and dropped from it, so a long log does not fill memory (0: leave it to "
                    "the OS)",
                    &s->log_page_cache);
    hd_options_add (options, "skip-corrupt", HD_OPT_BOOL, NULL, NULL,
                    "start even when the log is corrupt before its end (the loss is reported)",
                    &s->skip_corrupt);
    hd_options_add (options, "retention-age", HD_OPT_DURATION, "0", NULL,
                    "delete log segments older than this once every pool passed them (0: keep)",
                    &s->retention_age);
    hd_options_add (options, "retention-bytes", HD_OPT_SIZE, "0", NULL,
                    "delete the oldest segments past this size once every pool passed them (0: "
                    "no bound)",
                    &s->retention_bytes);
    hd_options_add (options, "retention-hard", HD_OPT_BOOL, NULL, NULL,
                    "apply retention even to events pools have not settled (counted as lost)",
                    &s->retention_hard);
    hd_options_add (options, "max-disk", HD_OPT_SIZE, "0", NULL,
                    "log size at which PUBLISH is refused with STORAGE (0: until the disk is full)",
                    &s->max_disk);
    hd_options_add (options, "max-deliver", HD_OPT_INT, "5", NULL,
                    "default attempts before an event goes to its pool's DLQ", &s->max_deliver);
    hd_options_add (options, "max-dlq", HD_OPT_INT, "100000", NULL,
                    "DLQ entries kept per pool; the oldest are dropped past it", &s->max_dlq);
    hd_options_add (options, "journal-sync", HD_OPT_DURATION, "100ms", NULL,
                    "longest a journaled ACK or delivery waits for fdatasync (a power loss can "
                    "redeliver the last ones, never lose an event)",
                    &s->journal_sync);
    hd_options_add (options, "checkpoint-bytes", HD_OPT_SIZE, "64M", NULL,
                    "journal size that triggers a checkpoint of the pools' state",
                    &s->checkpoint_bytes);
    hd_options_add (options, "turn-events", HD_OPT_INT, "512", NULL,
                    "with --fsync never or interval: commit (write and CONFIRM) once a turn has "
                    "read this many events, so publishers' windows reopen sooner (0: no bound; "
                    "--fsync always ignores it: a turn is one group commit)",
                    &s->turn_events);
    hd_options_add (options, "dispatch-burst-us", HD_OPT_INT, "100", NULL,
                    "a worker whose handlers take H µs an event (its ACKs say) gets up to this / H "
                    "events in a row before the next worker, as fewer messages (0: one each)",
                    &s->dispatch_burst_us);
    hd_options_add (options, "max-pools", HD_OPT_INT, "1000", NULL, "most pools", &s->max_pools);
    hd_options_add (options, "max-sessions", HD_OPT_INT, "100000", NULL,
                    "most worker and subscriber sessions", &s->max_sessions);
    hd_options_add (options, "max-credit", HD_OPT_INT, "10000", NULL,
                    "largest credit one worker may ask for", &s->max_credit);
    hd_options_add (options, "max-batch", HD_OPT_INT, "256", NULL,
                    "most events in one DELIVERS to a worker that accepts batches (1: none)",
                    &s->max_batch);
    hd_options_add (options, "batch-payload-max", HD_OPT_SIZE, "4K", NULL,
                    "largest payload put into a DELIVERS batch; larger ones go alone (as shared "
                    "frames when the event is over 16 KiB, else copied from the hot cache)",
                    &s->batch_payload_max);
    hd_options_add (options, "max-publish-batch", HD_OPT_SIZE, "1M", NULL,
                    "largest PUBLISHES body (a batch of events) accepted", &s->max_publish_batch);
    hd_options_add (options, "max-types", HD_OPT_INT, "100000", NULL,
                    "distinct event types tracked for subscriber gap detection", &s->max_types);
    hd_options_add (options, "sub-hwm", HD_OPT_INT, "10000", NULL,
                    "messages queued per subscriber before it loses events", &s->sub_hwm);
    hd_options_add (options, "retry-after", HD_OPT_DURATION, "500ms", NULL,
                    "retry hint sent with BACKLOG_FULL", &s->retry_after);
    hd_options_add (options, "verbose", HD_OPT_BOOL, NULL, NULL, "log every session and error",
                    &s->verbose);
    return options;
}

//  Check ranges; returns a reason or NULL.
static const char *
s_check (const s_settings_t *s, double multiplier, double jitter)
{
    if (s->heartbeat < 10)
        return "--heartbeat must be at least 10ms";
    if (s->liveness < 1)
        return "--liveness must be at least 1";
    if (s->ack_wait < 10)
        return "--ack-wait must be at least 10ms";
    if (multiplier < 1.0 || jitter < 0.0 || jitter >= 1.0)
        return "--backoff-multiplier must be >= 1 and --backoff-jitter in [0, 1)";
    if (s->max_pending < 1 || s->max_pools < 1 || s->max_sessions < 1 || s->max_credit < 1 ||
        s->max_batch < 1 || s->max_topic < 1 || s->max_id < 1 || s->dedup_max < 1 ||
        s->max_types < 1)
        return "limits must be at least 1";
    if (s->turn_events < 0)
        return "--turn-events must be >= 0 (0: no bound)";
    if (s->dispatch_burst_us < 0 || s->dispatch_burst_us > 60000000)
        return "--dispatch-burst-us must be in [0, 60000000] (0: one event each)";
    if (s->max_deliver < 0 || s->segment_size < 4096)
        return "--max-deliver must be >= 0 (0: unlimited) and --segment-size at least 4K";
    if (s->max_topic > 255)
        return "--max-topic is at most 255";
    if ((uint64_t) s->dedup_max > HD_DEDUP_MAX_ENTRIES)
        return "--dedup-max is at most 2147483648";
    return NULL;
}

static int
s_parse_fsync (const char *text, hd_fsync_t *fsync, int64_t *interval_ms)
{
    if (strcmp (text, "always") == 0)
        *fsync = HD_FSYNC_ALWAYS;
    else if (strcmp (text, "never") == 0)
        *fsync = HD_FSYNC_NEVER;
    else if (strncmp (text, "interval=", 9) == 0 &&
             hd_parse_duration_ms (text + 9, interval_ms) == 0 && *interval_ms > 0)
        *fsync = HD_FSYNC_INTERVAL;
    else
        return -1;
    return 0;
}

int
main (int argc, char **argv)
{
    s_settings_t settings = {0};
    hd_options_t *options = s_options_new (&settings);
    if (hd_options_parse (options, argc, argv) != 0) {
        fprintf (stderr, "herald-broker: %s\n", hd_options_error (options));
        hd_options_destroy (&options);
        return 2;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        hd_options_destroy (&options);
        return 0;
    }
    if (hd_options_argc (options) > 0) {
        fprintf (stderr, "herald-broker: unexpected argument '%s' (see --help)\n",
                 hd_options_argv (options)[0]);
        hd_options_destroy (&options);
        return 2;
    }
    double multiplier = atof (settings.backoff_multiplier);
    double jitter = atof (settings.backoff_jitter);
    const char *problem = s_check (&settings, multiplier, jitter);
    if (problem) {
        fprintf (stderr, "herald-broker: %s\n", problem);
        hd_options_destroy (&options);
        return 2;
    }
    hd_broker_config_t config;
    hd_broker_config_defaults (&config);
    config.router_endpoint = settings.router;
    config.xpub_endpoint = settings.xpub;
    config.heartbeat_ms = settings.heartbeat;
    config.liveness = settings.liveness;
    config.dedup_window_ms = settings.dedup_window;
    config.dedup_max = settings.dedup_max;
    config.dedup_reserve = settings.dedup_reserve;
    config.max_payload = settings.max_payload;
    config.max_envelope = settings.max_envelope;
    config.max_topic = settings.max_topic;
    config.max_id = settings.max_id;
    config.max_pools = settings.max_pools;
    config.max_sessions = settings.max_sessions;
    config.max_credit = settings.max_credit;
    config.max_batch = settings.max_batch;
    config.batch_payload_max = settings.batch_payload_max;
    config.max_publish_batch = settings.max_publish_batch;
    config.max_types = settings.max_types;
    config.sub_hwm = settings.sub_hwm;
    config.retry_after_ms = settings.retry_after;
    config.verbose = settings.verbose;
    config.pool.ack_wait_ms = settings.ack_wait;
    config.pool.backoff_initial_ms = settings.backoff_initial;
    config.pool.backoff_max_ms = settings.backoff_max;
    config.pool.backoff_multiplier = multiplier;
    config.pool.backoff_jitter = jitter;
    config.pool.max_pending = (size_t) settings.max_pending;
    config.pool.max_deliver = (uint32_t) settings.max_deliver;
    config.pool.max_dlq = (size_t) settings.max_dlq;
    config.pool.burst_us = (uint32_t) settings.dispatch_burst_us;
    config.data_dir = settings.data_dir;
    config.segment_size = settings.segment_size;
    config.cache_bytes = settings.cache_size;
    config.log_page_cache = settings.log_page_cache;
    config.skip_corrupt = settings.skip_corrupt;
    config.prepare_segments = settings.prepare_segments;
    config.retention_age_ms = settings.retention_age;
    config.retention_bytes = settings.retention_bytes;
    config.retention_hard = settings.retention_hard;
    config.max_disk = settings.max_disk;
    config.checkpoint_bytes = settings.checkpoint_bytes;
    config.journal_sync_ms = settings.journal_sync > 0 ? settings.journal_sync : 1;
    config.turn_events = settings.turn_events;
    if (s_parse_fsync (settings.fsync, &config.fsync, &config.fsync_interval_ms) != 0) {
        fprintf (stderr, "herald-broker: --fsync must be always, never or interval=MS\n");
        hd_options_destroy (&options);
        return 2;
    }

    //  zsys_init installs czmq's SIGINT/SIGTERM handler; zloop ends on it
    zsys_init ();
    zsys_set_logident ("herald-broker");
    char error[256] = "";
    hd_broker_t *broker = hd_broker_new (&config, error, sizeof error);
    if (!broker) {
        fprintf (stderr, "herald-broker: %s\n", error);
        hd_options_destroy (&options);
        return 1;
    }
    int rc = hd_broker_run (broker);
    hd_broker_destroy (&broker);
    hd_options_destroy (&options);
    return rc == 0 ? 0 : 1;
}
