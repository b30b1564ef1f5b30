/*  herald-example-sqlite-worker — exactly-once effects with SQLite.

    A pool member whose effect is a row in payments(order_id, amount). The
    event's (source, id) goes into processed_events IN THE SAME TRANSACTION
    as the effect:

        BEGIN IMMEDIATE
        SELECT 1 FROM processed_events WHERE source = ? AND id = ?
          found:    COMMIT; ACK                 (a redelivery: skip)
          missing:  INSERT INTO payments ...
                    INSERT INTO processed_events ...
                    COMMIT; ACK

    Herald delivers at least once. If the worker dies after COMMIT but
    before its ACK reaches the broker, the event is delivered again and the
    id row turns it into a no-op; if it dies before COMMIT, both rows roll
    back and the redelivery does the work once. Either way the effect
    happens exactly once. See examples/README.md.

    The payload is the amount in cents (a decimal integer); the order id is
    the event's subject, or its id when the subject is empty.

    Usage: herald-example-sqlite-worker [options] DATABASE
*/
#include "herald.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    sqlite3 *db;
    //  One transaction at a time on the one connection: handler threads
    //  take turns (the statements below are shared)
    pthread_mutex_t lock;
    sqlite3_stmt *seen;     // SELECT 1 FROM processed_events ...
    sqlite3_stmt *pay;      // INSERT INTO payments ...
    sqlite3_stmt *remember; // INSERT INTO processed_events ...
    unsigned pause_ms;      // after COMMIT, before the ACK (widens the crash window)
    bool verbose;
    atomic_uint_fast64_t applied;
    atomic_uint_fast64_t skipped;
} s_app_t;

static const char *s_schema = "CREATE TABLE IF NOT EXISTS payments ("
                              "    order_id TEXT NOT NULL,"
                              "    amount INTEGER NOT NULL);"
                              "CREATE TABLE IF NOT EXISTS processed_events ("
                              "    source TEXT NOT NULL,"
                              "    id TEXT NOT NULL,"
                              "    processed_at INTEGER NOT NULL,"
                              "    PRIMARY KEY (source, id)) WITHOUT ROWID;";

static void
s_sleep_ms (unsigned ms)
{
    struct timespec delay = {ms / 1000, (long) (ms % 1000) * 1000000L};
    while (nanosleep (&delay, &delay) == -1 && errno == EINTR)
        ;
}

static int
s_exec (s_app_t *app, const char *sql)
{
    return sqlite3_exec (app->db, sql, NULL, NULL, NULL);
}

//  Parse the payload as a whole number of cents.
static bool
s_amount (const hd_event_t *event, int64_t *amount)
{
    char text[32];
    size_t size = hd_event_payload_size (event);
    if (size == 0 || size >= sizeof text)
        return false;
    memcpy (text, hd_event_payload (event), size);
    text[size] = 0;
    char *end;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    while (*end == '\n' || *end == ' ')
        end++;
    if (errno || end == text || *end)
        return false;
    *amount = value;
    return true;
}

typedef enum { S_APPLIED, S_SKIPPED, S_FAILED } s_outcome_t;

//  The recipe: one transaction holds the check, the effect and the record.
static s_outcome_t
s_apply (s_app_t *app, const hd_event_t *event, int64_t amount)
{
    const char *source = hd_event_source (event);
    const char *id = hd_event_id (event);
    const char *order_id = *hd_event_subject (event) ? hd_event_subject (event) : id;
    //  IMMEDIATE takes the write lock now, so the check cannot go stale
    if (s_exec (app, "BEGIN IMMEDIATE") != SQLITE_OK)
        return S_FAILED;
    s_outcome_t outcome = S_FAILED;
    sqlite3_bind_text (app->seen, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text (app->seen, 2, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step (app->seen);
    if (rc == SQLITE_ROW)
        outcome = S_SKIPPED; // done before: a redelivery after a crash
    else if (rc == SQLITE_DONE) {
        sqlite3_bind_text (app->pay, 1, order_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (app->pay, 2, amount);
        sqlite3_bind_text (app->remember, 1, source, -1, SQLITE_STATIC);
        sqlite3_bind_text (app->remember, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (app->remember, 3, (sqlite3_int64) time (NULL));
        if (sqlite3_step (app->pay) == SQLITE_DONE && sqlite3_step (app->remember) == SQLITE_DONE)
            outcome = S_APPLIED;
    }
    sqlite3_reset (app->seen);
    sqlite3_reset (app->pay);
    sqlite3_reset (app->remember);
    sqlite3_clear_bindings (app->seen);
    sqlite3_clear_bindings (app->pay);
    sqlite3_clear_bindings (app->remember);
    if (outcome != S_FAILED && s_exec (app, "COMMIT") == SQLITE_OK)
        return outcome;
    s_exec (app, "ROLLBACK"); // nothing of this event is kept
    return S_FAILED;
}

static hd_verdict_t
s_handler (hd_delivery_t *delivery, void *arg)
{
    s_app_t *app = arg;
    const hd_event_t *event = hd_delivery_event (delivery);
    int64_t amount;
    if (!s_amount (event, &amount)) {
        hd_delivery_set_error (delivery, "payload is not an amount in cents");
        return HD_FAIL; // no retry will fix it
    }
    pthread_mutex_lock (&app->lock);
    s_outcome_t outcome = s_apply (app, event, amount);
    char error[256] = "";
    if (outcome == S_FAILED)
        snprintf (error, sizeof error, "sqlite: %s", sqlite3_errmsg (app->db));
    pthread_mutex_unlock (&app->lock);

    if (outcome == S_FAILED) {
        //  Busy or I/O trouble: the transaction rolled back, try again later
        hd_delivery_set_error (delivery, error);
        hd_delivery_retry_after (delivery, 1000);
        return HD_RETRY;
    }
    if (outcome == S_APPLIED) {
        atomic_fetch_add (&app->applied, 1);
        if (app->pause_ms)
            s_sleep_ms (app->pause_ms); // committed, not yet acked
    } else
        atomic_fetch_add (&app->skipped, 1);
    if (app->verbose)
        fprintf (stderr, "herald-example-sqlite-worker: %s/%s %s\n", hd_event_source (event),
                 hd_event_id (event), outcome == S_APPLIED ? "applied" : "skipped");
    return HD_ACK;
}

static int
s_open (s_app_t *app, const char *path)
{
    if (sqlite3_open_v2 (path, &app->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                         NULL) != SQLITE_OK)
        return -1;
    //  Wait for other connections (a reader in WAL mode never blocks us for
    //  long); FULL: a COMMIT is on disk before we ACK
    sqlite3_busy_timeout (app->db, 5000);
    if (s_exec (app, "PRAGMA journal_mode = WAL") != SQLITE_OK ||
        s_exec (app, "PRAGMA synchronous = FULL") != SQLITE_OK ||
        s_exec (app, s_schema) != SQLITE_OK)
        return -1;
    const char *seen = "SELECT 1 FROM processed_events WHERE source = ?1 AND id = ?2";
    const char *pay = "INSERT INTO payments (order_id, amount) VALUES (?1, ?2)";
    const char *remember =
        "INSERT INTO processed_events (source, id, processed_at) VALUES (?1, ?2, ?3)";
    if (sqlite3_prepare_v2 (app->db, seen, -1, &app->seen, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2 (app->db, pay, -1, &app->pay, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2 (app->db, remember, -1, &app->remember, NULL) != SQLITE_OK)
        return -1;
    return 0;
}

static void
s_close (s_app_t *app)
{
    sqlite3_finalize (app->seen);
    sqlite3_finalize (app->pay);
    sqlite3_finalize (app->remember);
    sqlite3_close (app->db);
}

static void
s_usage (FILE *stream)
{
    fprintf (stream,
             "Usage: herald-example-sqlite-worker [options] DATABASE\n"
             "\n"
             "Join a pool and, per event, add a row to payments(order_id, amount) in the\n"
             "SQLite file DATABASE, recording the event id in processed_events in the same\n"
             "transaction, so that a redelivered event changes nothing. The payload is the\n"
             "amount in cents; the order id is the subject, or the event id.\n"
             "\n"
             "  --broker EP               broker endpoint (default %s)\n"
             "  --pool NAME               pool to join (default payments)\n"
             "  --filter PREFIX           event types the pool takes (default payment.)\n"
             "  --concurrency N           handler threads (default 1)\n"
             "  --pause-after-commit MS   wait between COMMIT and ACK (a test aid: widens the\n"
             "                            window in which a crash leaves a committed event\n"
             "                            unacked; default 0)\n"
             "  --verbose                 one line per event on stderr\n",
             HERALD_DEFAULT_BROKER);
}

int
main (int argc, char **argv)
{
    const char *broker = HERALD_DEFAULT_BROKER;
    const char *pool = "payments";
    const char *filter = "payment.";
    unsigned long concurrency = 1;
    s_app_t app = {0};
    const struct option options[] = {{"broker", required_argument, NULL, 'b'},
                                     {"pool", required_argument, NULL, 'p'},
                                     {"filter", required_argument, NULL, 'f'},
                                     {"concurrency", required_argument, NULL, 'c'},
                                     {"pause-after-commit", required_argument, NULL, 'w'},
                                     {"verbose", no_argument, NULL, 'v'},
                                     {"help", no_argument, NULL, 'h'},
                                     {NULL, 0, NULL, 0}};
    int option;
    while ((option = getopt_long (argc, argv, "", options, NULL)) != -1) {
        switch (option) {
            case 'b': broker = optarg; break;
            case 'p': pool = optarg; break;
            case 'f': filter = optarg; break;
            case 'c': concurrency = strtoul (optarg, NULL, 10); break;
            case 'w': app.pause_ms = (unsigned) strtoul (optarg, NULL, 10); break;
            case 'v': app.verbose = true; break;
            case 'h': s_usage (stdout); return 0;
            default: s_usage (stderr); return 2;
        }
    }
    if (optind != argc - 1 || concurrency < 1 || concurrency > 64) {
        s_usage (stderr);
        return 2;
    }
    const char *path = argv[optind];
    pthread_mutex_init (&app.lock, NULL);
    if (s_open (&app, path)) {
        fprintf (stderr, "herald-example-sqlite-worker: %s: %s\n", path,
                 app.db ? sqlite3_errmsg (app.db) : "cannot open");
        s_close (&app);
        return 1;
    }
    hd_worker_t *worker = hd_worker_new (broker, pool, filter);
    if (!worker) {
        fprintf (stderr, "herald-example-sqlite-worker: cannot create the worker\n");
        s_close (&app);
        return 1;
    }
    hd_worker_set_concurrency (worker, (uint32_t) concurrency);
    //  Handlers use app, so stop waits for them however long they take
    hd_worker_set_stop_grace_ms (worker, -1);
    //  Until SIGINT/SIGTERM: running handlers finish and are acked first
    int rc = hd_worker_run (worker, s_handler, &app);
    if (rc)
        fprintf (stderr, "herald-example-sqlite-worker: %s\n", hd_worker_error (worker));
    if (app.verbose)
        fprintf (stderr,
                 "herald-example-sqlite-worker: stopped: applied=%" PRIuFAST64
                 " skipped=%" PRIuFAST64 " (library skips: %" PRIu64 ")\n",
                 atomic_load (&app.applied), atomic_load (&app.skipped),
                 hd_worker_skipped (worker));
    hd_worker_destroy (&worker);
    s_close (&app);
    pthread_mutex_destroy (&app.lock);
    return rc ? 1 : 0;
}
