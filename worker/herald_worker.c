/*  herald-worker — a pool member that runs a command per event.

    The payload goes to the command's stdin and the envelope into HERALD_*
    environment variables; the exit status decides the outcome: 0 acks,
    75 (EX_TEMPFAIL) asks for a retry, anything else (or a signal) ends the
    event with TERM. Commands run in their own process group, so a Ctrl-C
    at the terminal reaches only herald-worker, which then lets running
    commands finish and settles them before leaving the pool.
*/
#include "herald.h"
#include "options.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define S_EXIT_RETRY 75 // EX_TEMPFAIL from sysexits.h
#define S_LAST_LINE  512

extern char **environ;

//  Commands running now, so that the ones still running when the worker
//  gives up waiting for them at stop can be killed (their events go to
//  other workers once we LEAVE).
static pthread_mutex_t s_children_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t s_children[1024]; // at most --concurrency entries are in use
static bool s_children_closed; // no new commands: we are exiting

//  Returns false when we are exiting and pid was killed at once.
static bool
s_child_add (pid_t pid)
{
    pthread_mutex_lock (&s_children_lock);
    bool added = false;
    for (size_t index = 0; !s_children_closed && index < 1024 && !added; index++)
        if (s_children[index] == 0) {
            s_children[index] = pid;
            added = true;
        }
    pthread_mutex_unlock (&s_children_lock);
    return added;
}

static void
s_child_remove (pid_t pid)
{
    pthread_mutex_lock (&s_children_lock);
    for (size_t index = 0; index < 1024; index++)
        if (s_children[index] == pid)
            s_children[index] = 0;
    pthread_mutex_unlock (&s_children_lock);
}

//  Returns how many were still running.
static int
s_children_kill (void)
{
    int killed = 0;
    pthread_mutex_lock (&s_children_lock);
    s_children_closed = true;
    for (size_t index = 0; index < 1024; index++)
        if (s_children[index] > 0) {
            kill (-s_children[index], SIGKILL);
            kill (s_children[index], SIGKILL);
            killed++;
        }
    pthread_mutex_unlock (&s_children_lock);
    return killed;
}

//  A descriptor that polls readable when the child exits (Linux 5.3+), or -1:
//  then exits are noticed by polling waitpid every 50 ms.
static int
s_pidfd_open (pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int) syscall (SYS_pidfd_open, pid, 0);
#else
    (void) pid;
    return -1;
#endif
}

typedef struct {
    char **command; // argv of the command, NULL-terminated
    int64_t timeout_ms;
    bool verbose;
} s_app_t;

//  A growable NULL-terminated array of malloc'ed "NAME=value" strings.
typedef struct {
    char **items;
    size_t count;
    size_t capacity;
} s_env_t;

static int
s_env_add (s_env_t *env, char *item)
{
    if (!item)
        return -1;
    if (env->count + 2 > env->capacity) {
        size_t capacity = env->capacity ? env->capacity * 2 : 64;
        char **grown = realloc (env->items, capacity * sizeof (char *));
        if (!grown) {
            free (item);
            return -1;
        }
        env->items = grown;
        env->capacity = capacity;
    }
    env->items[env->count++] = item;
    env->items[env->count] = NULL;
    return 0;
}

static int
s_env_set (s_env_t *env, const char *name, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *value = NULL;
    int rc = vasprintf (&value, format, args);
    va_end (args);
    if (rc < 0)
        return -1;
    char *item = NULL;
    rc = asprintf (&item, "%s=%s", name, value);
    free (value);
    return rc < 0 ? -1 : s_env_add (env, item);
}

static void
s_env_free (s_env_t *env)
{
    for (size_t index = 0; index < env->count; index++)
        free (env->items[index]);
    free (env->items);
}

//  Our own HERALD_* variables replace any inherited ones, so a command
//  never sees a value from another event or a parent worker.
static bool
s_env_inherited (const char *item)
{
    static const char *const names[] = {"HERALD_ID=",           "HERALD_SOURCE=",
                                        "HERALD_TYPE=",         "HERALD_SUBJECT=",
                                        "HERALD_SEQ=",          "HERALD_ATTEMPT=",
                                        "HERALD_KEY=",          "HERALD_CORRELATION_ID=",
                                        "HERALD_CAUSATION_ID=", "HERALD_POOL=",
                                        "HERALD_TIME_US=",      "HERALD_CONTENT_TYPE=",
                                        "HERALD_ATTR_",         NULL};
    for (int index = 0; names[index]; index++)
        if (strncmp (item, names[index], strlen (names[index])) == 0)
            return false;
    return true;
}

static int
s_env_build (s_env_t *env, hd_delivery_t *delivery)
{
    const hd_event_t *event = hd_delivery_event (delivery);
    for (char **item = environ; *item; item++)
        if (s_env_inherited (*item) && s_env_add (env, strdup (*item)))
            return -1;
    int rc = 0;
    rc |= s_env_set (env, "HERALD_ID", "%s", hd_event_id (event));
    rc |= s_env_set (env, "HERALD_SOURCE", "%s", hd_event_source (event));
    rc |= s_env_set (env, "HERALD_TYPE", "%s", hd_event_type (event));
    rc |= s_env_set (env, "HERALD_SUBJECT", "%s", hd_event_subject (event));
    rc |= s_env_set (env, "HERALD_SEQ", "%" PRIu64, hd_delivery_seq (delivery));
    rc |= s_env_set (env, "HERALD_ATTEMPT", "%" PRIu32, hd_delivery_attempt (delivery));
    rc |= s_env_set (env, "HERALD_KEY", "%s", hd_event_partition_key (event));
    rc |= s_env_set (env, "HERALD_CORRELATION_ID", "%s", hd_event_correlation_id (event));
    rc |= s_env_set (env, "HERALD_CAUSATION_ID", "%s", hd_event_causation_id (event));
    rc |= s_env_set (env, "HERALD_POOL", "%s", hd_delivery_pool (delivery));
    rc |= s_env_set (env, "HERALD_TIME_US", "%" PRIu64, hd_event_time_us (event));
    rc |= s_env_set (env, "HERALD_CONTENT_TYPE", "%s", hd_event_content_type (event));
    for (size_t index = 0; index < hd_event_attribute_count (event); index++) {
        //  Environment names are portable only as [A-Z0-9_]
        const char *key = hd_event_attribute_key (event, index);
        char name[300];
        size_t length = (size_t) snprintf (name, sizeof name, "HERALD_ATTR_");
        for (const char *c = key; *c && length < sizeof name - 1; c++)
            name[length++] =
                isalnum ((unsigned char) *c) ? (char) toupper ((unsigned char) *c) : '_';
        name[length] = 0;
        rc |= s_env_set (env, name, "%s", hd_event_attribute_value (event, index));
    }
    return rc ? -1 : 0;
}

//  Keep the last non-empty line of the command's stderr for the error text.
typedef struct {
    char line[S_LAST_LINE];    // last complete line
    char current[S_LAST_LINE]; // line being read
    size_t current_size;
} s_tail_t;

static void
s_tail_feed (s_tail_t *tail, const char *data, size_t size)
{
    for (size_t index = 0; index < size; index++) {
        char c = data[index];
        if (c == '\n') {
            if (tail->current_size) {
                memcpy (tail->line, tail->current, tail->current_size);
                tail->line[tail->current_size] = 0;
            }
            tail->current_size = 0;
        } else if (tail->current_size < sizeof tail->current - 1)
            tail->current[tail->current_size++] = c;
    }
}

static const char *
s_tail_last (s_tail_t *tail)
{
    if (tail->current_size) {
        memcpy (tail->line, tail->current, tail->current_size);
        tail->line[tail->current_size] = 0;
        tail->current_size = 0;
    }
    return tail->line;
}

typedef struct {
    int status; // waitpid status, valid when !timed_out && !failed
    bool timed_out;
    bool failed; // could not start the command
    char error[S_LAST_LINE + 64];
} s_outcome_t;

static void
s_run (s_app_t *app, hd_delivery_t *delivery, s_outcome_t *outcome)
{
    const hd_event_t *event = hd_delivery_event (delivery);
    s_env_t env = {0};
    int in_pipe[2] = {-1, -1};
    int err_pipe[2] = {-1, -1};
    if (s_env_build (&env, delivery) || pipe2 (in_pipe, O_CLOEXEC) || pipe2 (err_pipe, O_CLOEXEC)) {
        snprintf (outcome->error, sizeof outcome->error, "cannot prepare the command: %s",
                  strerror (errno));
        outcome->failed = true;
        goto cleanup;
    }

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init (&actions);
    posix_spawn_file_actions_adddup2 (&actions, in_pipe[0], STDIN_FILENO);
    posix_spawn_file_actions_adddup2 (&actions, err_pipe[1], STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init (&attr);
    sigset_t signals;
    sigemptyset (&signals);
    posix_spawnattr_setsigmask (&attr, &signals);
    //  We ignore SIGPIPE and czmq catches SIGINT/SIGTERM; the command must not inherit that
    sigaddset (&signals, SIGPIPE);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    posix_spawnattr_setsigdefault (&attr, &signals);
    posix_spawnattr_setpgroup (&attr, 0);
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                         POSIX_SPAWN_SETPGROUP);
    pid_t pid;
    int rc = posix_spawnp (&pid, app->command[0], &actions, &attr, app->command, env.items);
    posix_spawn_file_actions_destroy (&actions);
    posix_spawnattr_destroy (&attr);
    close (in_pipe[0]);
    close (err_pipe[1]);
    in_pipe[0] = err_pipe[1] = -1;
    if (rc) {
        snprintf (outcome->error, sizeof outcome->error, "cannot run %s: %s", app->command[0],
                  strerror (rc));
        outcome->failed = true;
        goto cleanup;
    }

    if (!s_child_add (pid)) {
        //  Exiting: s_children_kill may already have run, so kill it ourselves
        kill (-pid, SIGKILL);
        kill (pid, SIGKILL);
    }
    int exit_fd = s_pidfd_open (pid);
    fcntl (in_pipe[1], F_SETFL, O_NONBLOCK);
    const char *payload = hd_event_payload (event);
    size_t payload_size = hd_event_payload_size (event);
    size_t written = 0;
    if (payload_size == 0) {
        close (in_pipe[1]);
        in_pipe[1] = -1;
    }
    s_tail_t tail = {0};
    int64_t started = zclock_mono ();
    int64_t last_progress = started;
    uint32_t ack_wait_ms = hd_delivery_ack_wait_ms (delivery);
    bool exited = false;
    while (!exited) {
        //  Negative descriptors are ignored by poll
        struct pollfd fds[3] = {
            {err_pipe[0], POLLIN, 0}, {in_pipe[1], POLLOUT, 0}, {exit_fd, POLLIN, 0}};
        poll (fds, 3, 50);
        if (err_pipe[0] >= 0 && (fds[0].revents & (POLLIN | POLLHUP))) {
            char buffer[4096];
            ssize_t got = read (err_pipe[0], buffer, sizeof buffer);
            if (got > 0) {
                s_tail_feed (&tail, buffer, (size_t) got);
                //  The command's stderr stays visible, as if it were inherited
                ssize_t ignored = write (STDERR_FILENO, buffer, (size_t) got);
                (void) ignored;
            } else if (got == 0) {
                close (err_pipe[0]);
                err_pipe[0] = -1;
            }
        }
        if (in_pipe[1] >= 0 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t sent = write (in_pipe[1], payload + written, payload_size - written);
            if (sent > 0)
                written += (size_t) sent;
            //  EPIPE: the command does not read its input, which is its business
            if ((sent < 0 && errno != EAGAIN && errno != EINTR) || written == payload_size) {
                close (in_pipe[1]);
                in_pipe[1] = -1;
            }
        }
        pid_t done = waitpid (pid, &outcome->status, WNOHANG);
        if (done == pid) {
            exited = true;
            break;
        }
        if (done == -1 && errno == ECHILD) {
            //  Reaped elsewhere (SIGCHLD ignored?): the exit status is lost
            snprintf (outcome->error, sizeof outcome->error, "lost the exit status of %s",
                      app->command[0]);
            outcome->failed = true;
            break;
        }
        int64_t now = zclock_mono ();
        if (app->timeout_ms > 0 && now - started >= app->timeout_ms) {
            kill (-pid, SIGKILL);
            kill (pid, SIGKILL);
            while (waitpid (pid, &outcome->status, 0) == -1 && errno == EINTR)
                ;
            outcome->timed_out = true;
            break;
        }
        if (ack_wait_ms && now - last_progress >= ack_wait_ms / 2) {
            hd_delivery_progress (delivery);
            last_progress = now;
        }
    }
    s_child_remove (pid);
    if (exit_fd >= 0)
        close (exit_fd);
    //  Pick up what the command wrote just before it exited
    if (err_pipe[0] >= 0) {
        fcntl (err_pipe[0], F_SETFL, O_NONBLOCK);
        char buffer[4096];
        ssize_t got;
        while ((got = read (err_pipe[0], buffer, sizeof buffer)) > 0) {
            s_tail_feed (&tail, buffer, (size_t) got);
            ssize_t ignored = write (STDERR_FILENO, buffer, (size_t) got);
            (void) ignored;
        }
    }
    const char *last = s_tail_last (&tail);
    const char *separator = *last ? ": " : "";
    if (outcome->failed)
        ; // error already set
    else if (outcome->timed_out)
        snprintf (outcome->error, sizeof outcome->error, "timeout after %" PRId64 " ms%s%s",
                  app->timeout_ms, separator, last);
    else if (WIFEXITED (outcome->status))
        snprintf (outcome->error, sizeof outcome->error, "exit %d%s%s",
                  WEXITSTATUS (outcome->status), separator, last);
    else if (WIFSIGNALED (outcome->status))
        snprintf (outcome->error, sizeof outcome->error, "signal %d%s%s",
                  WTERMSIG (outcome->status), separator, last);

cleanup:
    for (int index = 0; index < 2; index++) {
        if (in_pipe[index] >= 0)
            close (in_pipe[index]);
        if (err_pipe[index] >= 0)
            close (err_pipe[index]);
    }
    s_env_free (&env);
}

static hd_verdict_t
s_handler (hd_delivery_t *delivery, void *arg)
{
    s_app_t *app = arg;
    int64_t started = zclock_mono ();
    s_outcome_t outcome = {0};
    s_run (app, delivery, &outcome);
    hd_verdict_t verdict;
    const char *word;
    if (outcome.failed || outcome.timed_out) {
        verdict = HD_RETRY;
        word = "retry";
    } else if (WIFEXITED (outcome.status) && WEXITSTATUS (outcome.status) == 0) {
        verdict = HD_ACK;
        word = "ack";
    } else if (WIFEXITED (outcome.status) && WEXITSTATUS (outcome.status) == S_EXIT_RETRY) {
        verdict = HD_RETRY;
        word = "retry";
    } else {
        verdict = HD_FAIL;
        word = "fail";
    }
    if (verdict != HD_ACK)
        hd_delivery_set_error (delivery, outcome.error);
    if (app->verbose) {
        const hd_event_t *event = hd_delivery_event (delivery);
        fprintf (stderr,
                 "herald-worker: seq=%" PRIu64 " attempt=%" PRIu32
                 " type=%s id=%s -> %s (%s, %" PRId64 " ms)\n",
                 hd_delivery_seq (delivery), hd_delivery_attempt (delivery), hd_event_type (event),
                 hd_event_id (event), word, *outcome.error ? outcome.error : "exit 0",
                 zclock_mono () - started);
    }
    return verdict;
}

//  The command must exist now, not fail on every event later.
static bool
s_command_found (const char *command)
{
    if (strchr (command, '/'))
        return access (command, X_OK) == 0;
    const char *path = getenv ("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t length = strcspn (path, ":");
        char candidate[4096];
        snprintf (candidate, sizeof candidate, "%.*s/%s", (int) length, length ? path : ".",
                  command);
        struct stat info;
        if (stat (candidate, &info) == 0 && S_ISREG (info.st_mode) && access (candidate, X_OK) == 0)
            return true;
        path += length;
        if (*path == ':')
            path++;
    }
    return false;
}

int
main (int argc, char **argv)
{
    char *broker = NULL;
    char *pool = NULL;
    char *filter = NULL;
    char *name = NULL;
    int64_t credit = 0;
    int64_t concurrency = 0;
    int64_t timeout_ms = 0;
    int64_t seen_capacity = 0;
    int64_t seen_ttl_ms = 0;
    int64_t stop_grace_ms = 0;
    char *dedup_store = NULL;
    int64_t dedup_map_size = 0;
    bool verbose = false;
    bool ordered = false;
    int64_t max_deliver = 0, ack_wait = 0, backoff_initial = 0, backoff_max = 0;
    char *from = NULL;
    hd_options_t *options = hd_options_new (
        "herald-worker", "--pool NAME [options] -- COMMAND [ARGS...]",
        "Join a Herald worker pool and run COMMAND once per event. The payload is the\n"
        "command's stdin; HERALD_ID, HERALD_SOURCE, HERALD_TYPE, HERALD_SUBJECT, HERALD_SEQ,\n"
        "HERALD_ATTEMPT, HERALD_KEY (partition key), HERALD_CORRELATION_ID,\n"
        "HERALD_CAUSATION_ID, HERALD_POOL, HERALD_TIME_US, HERALD_CONTENT_TYPE and\n"
        "HERALD_ATTR_<KEY> (one per attribute, key upper-cased, other characters '_')\n"
        "describe the event. Exit 0 acks the event, exit 75 retries it later (NACK),\n"
        "any other exit or a signal ends it (TERM, to the pool's dead-letter queue) with\n"
        "\"exit N\" / \"signal N\" and the command's last stderr line as the error.\n"
        "Long commands extend their lease automatically. SIGINT/SIGTERM: finish\n"
        "running commands, settle them, leave the pool; commands still running after\n"
        "--stop-grace are killed (their events go back to the pool).\n"
        "Processed event ids are remembered for --seen-ttl, so a redelivered event that\n"
        "was already processed is acked without running COMMAND again; with\n"
        "--dedup-store DIR they are kept on disk too (LMDB), and a worker restarted on the\n"
        "same DIR does not redo work either. An id is recorded after COMMAND exited 0 and\n"
        "before the ACK is sent: a crash in between makes a skip, never a redo.");
    hd_options_add (options, "broker", HD_OPT_STRING, HERALD_DEFAULT_BROKER, NULL,
                    "broker command endpoint", &broker);
    hd_options_add (options, "pool", HD_OPT_STRING, NULL, NULL, "pool to join (required)", &pool);
    hd_options_add (options, "filter", HD_OPT_STRING, "", NULL,
                    "event type prefix the pool takes (\"\" = all)", &filter);
    hd_options_add (options, "credit", HD_OPT_INT, "10", NULL,
                    "events held at once (in flight to this worker)", &credit);
    hd_options_add (options, "concurrency", HD_OPT_INT, "1", NULL, "commands run in parallel",
                    &concurrency);
    hd_options_add (options, "name", HD_OPT_STRING, NULL, NULL,
                    "worker name shown in broker stats (default: host name)", &name);
    hd_options_add (options, "timeout", HD_OPT_DURATION, "0", NULL,
                    "kill a command running longer than this and retry the event (0 = never)",
                    &timeout_ms);
    hd_options_add (options, "seen-capacity", HD_OPT_INT, "100000", NULL,
                    "processed event ids remembered to skip redeliveries", &seen_capacity);
    hd_options_add (options, "seen-ttl", HD_OPT_DURATION, "10m", NULL,
                    "how long a processed event id is remembered", &seen_ttl_ms);
    hd_options_add (options, "dedup-store", HD_OPT_STRING, NULL, NULL,
                    "directory of an on-disk processed-id set (LMDB) that survives restarts",
                    &dedup_store);
    hd_options_add (options, "dedup-map-size", HD_OPT_SIZE, "256M", NULL,
                    "largest size of the dedup store; when full, ids are not recorded (logged)",
                    &dedup_map_size);
    hd_options_add (options, "stop-grace", HD_OPT_DURATION, "30s", NULL,
                    "at stop, how long running commands may take to finish", &stop_grace_ms);
    hd_options_add (options, "ordered", HD_OPT_BOOL, NULL, NULL,
                    "pool policy when this worker creates the pool: one event per partition key "
                    "in flight, in seq order",
                    &ordered);
    hd_options_add (options, "max-deliver", HD_OPT_INT, "0", NULL,
                    "pool policy: attempts before the DLQ (0: the broker's default)", &max_deliver);
    hd_options_add (options, "ack-wait", HD_OPT_DURATION, "0", NULL,
                    "pool policy: lease length (0: the broker's default)", &ack_wait);
    hd_options_add (options, "backoff-initial", HD_OPT_DURATION, "0", NULL,
                    "pool policy: first redelivery delay (0: the broker's default)",
                    &backoff_initial);
    hd_options_add (options, "backoff-max", HD_OPT_DURATION, "0", NULL,
                    "pool policy: longest redelivery delay (0: the broker's default)",
                    &backoff_max);
    hd_options_add (options, "from", HD_OPT_STRING, "latest", NULL,
                    "where a new pool starts: latest, earliest, a seq, an RFC 3339 UTC time, "
                    "or an age like -10m",
                    &from);
    hd_options_add (options, "verbose", HD_OPT_BOOL, "false", NULL,
                    "log one line per event to stderr", &verbose);
    int exit_code = 0;
    if (hd_options_parse (options, argc, argv)) {
        fprintf (stderr, "herald-worker: %s\n", hd_options_error (options));
        exit_code = 2;
        goto done;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        goto done;
    }
    const char *usage_error = NULL;
    if (!pool || !*pool)
        usage_error = "--pool is required";
    else if (hd_options_argc (options) == 0)
        usage_error = "no command given (herald-worker --pool NAME -- COMMAND [ARGS...])";
    else if (credit < 1 || credit > UINT32_MAX)
        usage_error = "--credit must be at least 1";
    else if (concurrency < 1 || concurrency > 1024)
        usage_error = "--concurrency must be 1 to 1024";
    else if (seen_capacity < 1 || (uint64_t) seen_capacity > HD_SEEN_CAPACITY_MAX ||
             seen_ttl_ms > UINT32_MAX)
        usage_error = "--seen-capacity must be 1 to 2147483648 and --seen-ttl under 49 days";
    else if (stop_grace_ms < 0 || stop_grace_ms > INT32_MAX)
        usage_error = "--stop-grace must be under 24 days";
    else if (dedup_map_size < 65536 || (uint64_t) dedup_map_size > SIZE_MAX)
        usage_error = "--dedup-map-size must be at least 64K";
    if (usage_error) {
        fprintf (stderr, "herald-worker: %s (see --help)\n", usage_error);
        exit_code = 2;
        goto done;
    }
    s_app_t app = {
        .command = hd_options_argv (options), .timeout_ms = timeout_ms, .verbose = verbose};
    if (!s_command_found (app.command[0])) {
        fprintf (stderr, "herald-worker: command not found or not executable: %s\n",
                 app.command[0]);
        exit_code = 2;
        goto done;
    }
    //  A command that closes its stdin early must not kill us
    signal (SIGPIPE, SIG_IGN);

    hd_worker_t *worker = hd_worker_new (broker, pool, filter);
    if (!worker) {
        fprintf (stderr, "herald-worker: cannot create the worker\n");
        exit_code = 1;
        goto done;
    }
    if (name)
        hd_worker_set_name (worker, name);
    hd_worker_set_credit (worker, (uint32_t) credit);
    hd_worker_set_concurrency (worker, (uint32_t) concurrency);
    hd_worker_set_seen_capacity (worker, (size_t) seen_capacity);
    hd_worker_set_seen_ttl_ms (worker, (uint32_t) seen_ttl_ms);
    hd_worker_set_stop_grace_ms (worker, (int) stop_grace_ms);
    hd_worker_set_dedup_map_size (worker, (size_t) dedup_map_size);
    hd_pool_options_t pool_options = {0};
    pool_options.ordered = ordered;
    pool_options.max_deliver = (uint32_t) max_deliver;
    pool_options.ack_wait_ms = (uint32_t) ack_wait;
    pool_options.backoff_initial_ms = (uint32_t) backoff_initial;
    pool_options.backoff_max_ms = (uint32_t) backoff_max;
    if (hd_pool_options_parse_start (&pool_options, from) != 0) {
        fprintf (stderr,
                 "herald-worker: --from '%s' is not latest, earliest, a seq, a time "
                 "(2026-11-22T10:00:00Z) or an age (-10m)\n",
                 from);
        hd_worker_destroy (&worker);
        exit_code = 2;
        goto done;
    }
    hd_worker_set_pool_options (worker, &pool_options);
    if (dedup_store && hd_worker_set_dedup_store (worker, dedup_store)) {
        fprintf (stderr, "herald-worker: cannot set the dedup store\n");
        hd_worker_destroy (&worker);
        exit_code = 1;
        goto done;
    }
    if (verbose)
        fprintf (stderr, "herald-worker: pool %s filter '%s' at %s, running %s%s%s\n", pool, filter,
                 broker, app.command[0], dedup_store ? ", dedup store " : "",
                 dedup_store ? dedup_store : "");
    if (hd_worker_run (worker, s_handler, &app)) {
        fprintf (stderr, "herald-worker: %s\n", hd_worker_error (worker));
        exit_code = 1;
    } else if (verbose)
        fprintf (stderr,
                 "herald-worker: stopped after %" PRIu64 " events (%" PRIu64 " skipped)%s\n",
                 hd_worker_handled (worker), hd_worker_skipped (worker),
                 hd_worker_dedup_errors (worker) ? ", with dedup store errors (see above)" : "");
    //  Commands past the grace period: the pool has their events back
    int left_behind = s_children_kill ();
    if (left_behind)
        fprintf (stderr, "herald-worker: killed %d command(s) still running at stop\n",
                 left_behind);
    hd_worker_destroy (&worker);
    if (left_behind)
        return exit_code; // their threads still read app (the options' argv): keep it
done:
    hd_options_destroy (&options);
    return exit_code;
}
