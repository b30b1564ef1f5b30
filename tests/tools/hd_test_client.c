/*  hd_test_client — a scriptable publisher and worker for integration tests.

    hd_test_client publish --type T --count N --id-prefix X [...]
        publishes N events with ids X0 .. X(N-1), waits for every confirm and
        prints "confirmed=N duplicates=N rejected=N resent=N".
    hd_test_client work --pool P --log FILE [...]
        joins pool P and appends one line per handler call to FILE:
        "<ack|retry|fail> <id> <seq> <attempt> <pid> <key|->". Lines are written with
        O_APPEND in one write, so several workers may share one file.
    hd_test_client subscribe [--xpub EP] [--broker EP] [--prefix P] [...]
        receives live events and prints "received=N gaps=N malformed=N".
*/
#include "herald.h"
#include "options.h"

#include <czmq.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void
s_usage (FILE *stream)
{
    fprintf (stream,
             "Usage: hd_test_client publish|work|subscribe [options]   (--help after the mode for "
             "its options)\n");
}

static int
s_publish (int argc, char **argv)
{
    char *broker = NULL, *type = NULL, *prefix = NULL, *source = NULL, *payload = NULL;
    int64_t count = 0, window = 0, timeout_ms = 0, retry_ms = 0, keys = 0;
    hd_options_t *options = hd_options_new (
        "hd_test_client publish", "--type T --count N --id-prefix X [options]",
        "Publish COUNT events with ids <id-prefix>0 .. <id-prefix>COUNT-1, wait for every\n"
        "confirm, print \"confirmed=N duplicates=N rejected=N resent=N\". Exit 0 when\n"
        "every event was confirmed or finally rejected, 1 on timeout.");
    hd_options_add (options, "broker", HD_OPT_STRING, HERALD_DEFAULT_BROKER, NULL,
                    "broker command endpoint", &broker);
    hd_options_add (options, "type", HD_OPT_STRING, "test.event", "", "event type", &type);
    hd_options_add (options, "count", HD_OPT_INT, "1", "", "events to publish", &count);
    hd_options_add (options, "id-prefix", HD_OPT_STRING, "e", "", "event id prefix", &prefix);
    hd_options_add (options, "source", HD_OPT_STRING, "hd_test_client", "", "event source",
                    &source);
    hd_options_add (options, "payload", HD_OPT_STRING, "", "", "payload text", &payload);
    hd_options_add (options, "keys", HD_OPT_INT, "0", "",
                    "partition keys k0..k(N-1), event i gets key k(i mod N) (0: no key)", &keys);
    hd_options_add (options, "window", HD_OPT_INT, "1000", "", "unconfirmed events at most",
                    &window);
    hd_options_add (options, "retry", HD_OPT_DURATION, "3s", "", "resend unconfirmed after",
                    &retry_ms);
    hd_options_add (options, "timeout", HD_OPT_DURATION, "60s", "", "give up after", &timeout_ms);
    int rc = 0;
    if (hd_options_parse (options, argc, argv)) {
        fprintf (stderr, "hd_test_client: %s\n", hd_options_error (options));
        rc = 2;
        goto done;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        goto done;
    }
    hd_publisher_t *publisher = hd_publisher_new (broker, source);
    if (!publisher) {
        fprintf (stderr, "hd_test_client: cannot create publisher\n");
        rc = 1;
        goto done;
    }
    hd_publisher_set_window (publisher, (uint32_t) window);
    hd_publisher_set_retry_ms (publisher, (uint32_t) retry_ms);
    int64_t deadline = zclock_mono () + timeout_ms;
    for (int64_t index = 0; index < count && rc == 0; index++) {
        hd_event_t *event = hd_event_new (type);
        char id[256];
        snprintf (id, sizeof id, "%s%" PRId64, prefix, index);
        hd_event_set_id (event, id);
        hd_event_set_payload (event, payload, strlen (payload));
        if (keys > 0) {
            char key[32];
            snprintf (key, sizeof key, "k%" PRId64, index % keys);
            hd_event_set_partition_key (event, key);
        }
        int64_t remaining = deadline - zclock_mono ();
        if (remaining < 0 || hd_publisher_publish (publisher, &event, (int) remaining)) {
            fprintf (stderr, "hd_test_client: publish: %s\n", hd_publisher_error (publisher));
            hd_event_destroy (&event);
            rc = 1;
        }
    }
    int64_t remaining = deadline - zclock_mono ();
    if (rc == 0 && hd_publisher_flush (publisher, remaining > 0 ? (int) remaining : 0)) {
        fprintf (stderr, "hd_test_client: flush: %s\n", hd_publisher_error (publisher));
        rc = 1;
    }
    printf ("confirmed=%" PRIu64 " duplicates=%" PRIu64 " rejected=%" PRIu64 " resent=%" PRIu64
            "\n",
            hd_publisher_confirmed (publisher), hd_publisher_duplicates (publisher),
            hd_publisher_rejected (publisher), hd_publisher_resent (publisher));
    hd_publisher_destroy (&publisher);
done:
    hd_options_destroy (&options);
    return rc;
}

typedef struct {
    int log_fd;
    int64_t fail_every;
    int64_t nack_every;
    int64_t sleep_ms;
    int64_t block_first_ms;
    int64_t crash_after;
    atomic_llong calls;
    atomic_llong completed;
    int64_t exit_after;
    atomic_bool finished;
    hd_worker_t *worker;
} s_work_t;

//  Handlers cannot stop their own worker (stop waits for them): a helper does
static void *
s_watcher (void *arg)
{
    s_work_t *work = arg;
    while (!atomic_load (&work->finished)) {
        if (atomic_load (&work->completed) >= work->exit_after) {
            hd_worker_stop (work->worker);
            break;
        }
        zclock_sleep (20);
    }
    return NULL;
}

//  One byte into a POSIX cksum CRC (polynomial 0x04C11DB7, MSB first)
static uint32_t
s_cksum_byte (uint32_t crc, uint8_t byte)
{
    crc ^= (uint32_t) byte << 24;
    for (int bit = 0; bit < 8; bit++)
        crc = crc & 0x80000000u ? (crc << 1) ^ 0x04C11DB7u : crc << 1;
    return crc;
}

//  POSIX cksum (CRC-32, length appended): tests compare it with cksum(1)
static uint32_t
s_cksum (const void *data, size_t size)
{
    uint32_t crc = 0;
    const uint8_t *bytes = data;
    for (size_t index = 0; index < size; index++)
        crc = s_cksum_byte (crc, bytes[index]);
    for (size_t length = size; length; length >>= 8)
        crc = s_cksum_byte (crc, (uint8_t) (length & 0xFF));
    return ~crc;
}

static hd_verdict_t
s_work_handler (hd_delivery_t *delivery, void *arg)
{
    s_work_t *work = arg;
    long long call = atomic_fetch_add (&work->calls, 1) + 1;
    if (work->crash_after > 0 && call > work->crash_after)
        _exit (3); // a crash: no settle, no LEAVE
    if (work->sleep_ms > 0)
        zclock_sleep ((int) work->sleep_ms);
    if (call == 1 && work->block_first_ms > 0)
        zclock_sleep ((int) work->block_first_ms);
    hd_verdict_t verdict = HD_ACK;
    const char *word = "ack";
    if (work->fail_every > 0 && call % work->fail_every == 0) {
        verdict = HD_FAIL;
        word = "fail";
        hd_delivery_set_error (delivery, "failed by --fail-every");
    } else if (work->nack_every > 0 && call % work->nack_every == 0) {
        verdict = HD_RETRY;
        word = "retry";
        hd_delivery_retry_after (delivery, 100);
        hd_delivery_set_error (delivery, "retried by --nack-every");
    }
    const hd_event_t *event = hd_delivery_event (delivery);
    char line[600];
    const char *key = hd_event_partition_key (event);
    size_t payload_size = hd_event_payload_size (event);
    int length =
        snprintf (line, sizeof line, "%s %s %" PRIu64 " %" PRIu32 " %d %s %zu %" PRIu32 "\n", word,
                  hd_event_id (event), hd_delivery_seq (delivery), hd_delivery_attempt (delivery),
                  (int) getpid (), *key ? key : "-", payload_size,
                  s_cksum (hd_event_payload (event), payload_size));
    if (length > 0 && write (work->log_fd, line, (size_t) length) < 0)
        perror ("hd_test_client: log");
    atomic_fetch_add (&work->completed, 1);
    return verdict;
}

static int
s_work (int argc, char **argv)
{
    char *broker = NULL, *pool = NULL, *filter = NULL, *log = NULL, *name = NULL;
    int64_t credit = 0, concurrency = 0, exit_after = 0;
    bool inline_handler = false, threaded = false;
    s_work_t work = {.log_fd = -1};
    hd_options_t *options = hd_options_new (
        "hd_test_client work", "--pool P --log FILE [options]",
        "Join pool P and handle events until SIGINT/SIGTERM (or --exit-after), appending\n"
        "\"<ack|retry|fail> <id> <seq> <attempt> <pid> <key|-> <payload bytes> <payload cksum>\"\n"
        "per handler call to FILE (cksum as cksum(1) prints it). On exit\n"
        "prints \"handled=N skipped=N joins=N stale=N\".");
    hd_options_add (options, "broker", HD_OPT_STRING, HERALD_DEFAULT_BROKER, NULL,
                    "broker command endpoint", &broker);
    hd_options_add (options, "pool", HD_OPT_STRING, NULL, "", "pool to join (required)", &pool);
    hd_options_add (options, "filter", HD_OPT_STRING, "", "", "type prefix", &filter);
    hd_options_add (options, "log", HD_OPT_STRING, NULL, "", "log file (required)", &log);
    hd_options_add (options, "name", HD_OPT_STRING, NULL, "", "worker name", &name);
    hd_options_add (options, "credit", HD_OPT_INT, "10", "", "credit", &credit);
    hd_options_add (options, "concurrency", HD_OPT_INT, "1", "", "handler threads", &concurrency);
    hd_options_add (options, "fail-every", HD_OPT_INT, "0", "",
                    "every Nth handler call fails (TERM)", &work.fail_every);
    hd_options_add (options, "nack-every", HD_OPT_INT, "0", "",
                    "every Nth handler call retries (NACK, 100 ms)", &work.nack_every);
    hd_options_add (options, "sleep-ms", HD_OPT_INT, "0", "", "handler sleeps this long",
                    &work.sleep_ms);
    hd_options_add (options, "block-first-ms", HD_OPT_INT, "0", "",
                    "the first handler call sleeps this long", &work.block_first_ms);
    hd_options_add (options, "inline", HD_OPT_BOOL, "false", "",
                    "handlers run on the I/O thread (the default at concurrency 1)",
                    &inline_handler);
    hd_options_add (options, "threaded", HD_OPT_BOOL, "false", "",
                    "handlers run on handler threads (hd_worker_set_inline false)", &threaded);
    hd_options_add (options, "crash-after", HD_OPT_INT, "0", "",
                    "_exit(3) at handler call N+1, without settling", &work.crash_after);
    hd_options_add (options, "exit-after", HD_OPT_INT, "0", "",
                    "stop cleanly once N handler calls have returned", &exit_after);
    int rc = 0;
    if (hd_options_parse (options, argc, argv)) {
        fprintf (stderr, "hd_test_client: %s\n", hd_options_error (options));
        rc = 2;
        goto done;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        goto done;
    }
    if (!pool || !log) {
        fprintf (stderr, "hd_test_client: work needs --pool and --log\n");
        rc = 2;
        goto done;
    }
    if (inline_handler && threaded) {
        fprintf (stderr, "hd_test_client: --inline and --threaded exclude each other\n");
        rc = 2;
        goto done;
    }
    work.log_fd = open (log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (work.log_fd < 0) {
        perror (log);
        rc = 1;
        goto done;
    }
    hd_worker_t *worker = hd_worker_new (broker, pool, filter);
    if (name)
        hd_worker_set_name (worker, name);
    hd_worker_set_credit (worker, (uint32_t) credit);
    hd_worker_set_concurrency (worker, (uint32_t) concurrency);
    if (inline_handler || threaded)
        hd_worker_set_inline (worker, inline_handler);
    work.worker = worker;
    work.exit_after = exit_after;
    pthread_t watcher;
    bool watching = exit_after > 0 && pthread_create (&watcher, NULL, s_watcher, &work) == 0;
    if (hd_worker_run (worker, s_work_handler, &work)) {
        fprintf (stderr, "hd_test_client: %s\n", hd_worker_error (worker));
        rc = 1;
    }
    atomic_store (&work.finished, true);
    if (watching)
        pthread_join (watcher, NULL);
    printf ("handled=%" PRIu64 " skipped=%" PRIu64 " joins=%" PRIu64 " stale=%" PRIu64 "\n",
            hd_worker_handled (worker), hd_worker_skipped (worker), hd_worker_joins (worker),
            hd_worker_stale (worker));
    hd_worker_destroy (&worker);
    close (work.log_fd);
done:
    hd_options_destroy (&options);
    return rc;
}

static int
s_subscribe (int argc, char **argv)
{
    char *xpub = NULL, *broker = NULL, *prefix = NULL, *name = NULL;
    int64_t count = 0, sleep_ms = 0, timeout_ms = 0;
    hd_options_t *options = hd_options_new (
        "hd_test_client subscribe", "[options]",
        "Receive live events until COUNT arrived, TIMEOUT passed without one, or SIGINT;\n"
        "print \"received=N gaps=N malformed=N\". With --broker, report to the broker.");
    hd_options_add (options, "xpub", HD_OPT_STRING, HERALD_DEFAULT_XPUB, NULL,
                    "broker fan-out endpoint", &xpub);
    hd_options_add (options, "broker", HD_OPT_STRING, NULL, "",
                    "broker command endpoint for reports (default: none)", &broker);
    hd_options_add (options, "prefix", HD_OPT_STRING, "", "", "type prefix", &prefix);
    hd_options_add (options, "name", HD_OPT_STRING, "hd_test_client", "", "subscriber name", &name);
    hd_options_add (options, "count", HD_OPT_INT, "0", "", "stop after N events (0: no limit)",
                    &count);
    hd_options_add (options, "sleep-ms", HD_OPT_INT, "0", "",
                    "sleep after each event (to fall behind)", &sleep_ms);
    hd_options_add (options, "timeout", HD_OPT_DURATION, "5s", "",
                    "stop after this long without an event", &timeout_ms);
    int rc = 0;
    if (hd_options_parse (options, argc, argv)) {
        fprintf (stderr, "hd_test_client: %s\n", hd_options_error (options));
        rc = 2;
        goto done;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        goto done;
    }
    hd_subscriber_t *subscriber = hd_subscriber_new (xpub, broker);
    if (!subscriber) {
        fprintf (stderr, "hd_test_client: cannot create subscriber\n");
        rc = 1;
        goto done;
    }
    hd_subscriber_set_name (subscriber, name);
    hd_subscriber_subscribe (subscriber, prefix);
    while (count <= 0 || hd_subscriber_received (subscriber) < (uint64_t) count) {
        hd_event_t *event = hd_subscriber_recv (subscriber, (int) timeout_ms);
        if (!event)
            break;
        hd_event_destroy (&event);
        if (sleep_ms > 0)
            zclock_sleep ((int) sleep_ms);
    }
    printf ("received=%" PRIu64 " gaps=%" PRIu64 " malformed=%" PRIu64 "\n",
            hd_subscriber_received (subscriber), hd_subscriber_gaps (subscriber),
            hd_subscriber_malformed (subscriber));
    hd_subscriber_destroy (&subscriber);
done:
    hd_options_destroy (&options);
    return rc;
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        s_usage (stderr);
        return 2;
    }
    if (strcmp (argv[1], "publish") == 0)
        return s_publish (argc - 1, argv + 1);
    if (strcmp (argv[1], "work") == 0)
        return s_work (argc - 1, argv + 1);
    if (strcmp (argv[1], "subscribe") == 0)
        return s_subscribe (argc - 1, argv + 1);
    if (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0) {
        s_usage (stdout);
        return 0;
    }
    s_usage (stderr);
    return 2;
}
