/*  herald-bench — W1 (fan-out) and W2 (work queue) against a Herald broker,
    measured the way ../shared/bench-peers measures its peers: every client
    is a separate process, open-loop latency from the scheduled send time,
    exact lost/duplicate accounting through a shared-memory control file.

    herald-bench [options]                      coordinator
    herald-bench --role R --ctl PATH --index I  one client (internal)
*/
#include "bench.h"
#include "herald.h"
#include "options.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define HB_MAX_RUNS     100
#define HB_MAX_CHILDREN (HB_MAX_RECV + HB_MAX_PUB)
#define HB_NPCT         7

static const double s_pct[HB_NPCT] = {0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999, 1.0};

typedef struct {
    bool ok;
    char error[512];
    double pub_rate;  // events sent / (last send incl. flush - first send)
    double recv_rate; // W1: slower subscriber; W2: processed
    double recv_avg;  // W1: mean over subscribers
    uint64_t sent, confirmed, rejected, resent;
    uint64_t received, lost, dupes, malformed, gaps;
    double lat_us[HB_NPCT]; // percentiles of first-receipt latency
    double seconds;
    //  CPU time (user + system) of the run's processes, clients and the
    //  broker herald-bench started, divided by the events: what an event
    //  costs the machine, steadier than a rate on a shared one
    double cpu_us_per_event;
    double broker_cpu_us_per_event; // the broker's share (0 with --broker: not ours)
    //  Share of the measured time the broker's loop thread was working
    //  (Stats.loop_busy_us), from the start until the last event was in:
    //  near 1 the broker is the bottleneck, well below it the clients or
    //  the round trips between them are. -1: unknown (no stats)
    double broker_busy;
} hb_result_t;

typedef struct {
    //  options
    char *duration, *role, *ctl_path, *workload, *fsync, *plot, *broker, *xpub, *broker_bin,
        *broker_args, *transport, *cpus;
    int64_t index, events, publishers, subscribers, workers, credit, window, payload_size, rate,
        duration_ms, runs, timeout_ms;
    bool json, quiet, inline_handler, threaded;
    //  state
    char self_exe[PATH_MAX];
    char tmpdir[PATH_MAX];
    sigset_t signals;
    bool interrupted;
    bool tty;
    pid_t broker_pid;
    char run_broker[HB_TEXT], run_xpub[HB_TEXT];
    pid_t children[HB_MAX_CHILDREN];
    int child_status[HB_MAX_CHILDREN];
    bool child_live[HB_MAX_CHILDREN];
    size_t nchildren;
    double cpu_us;        // of the processes reaped in this run
    double broker_cpu_us; // of those, the broker's
    hb_result_t results[2][HB_MAX_RUNS];
} hb_ctx_t;

//  snprintf that gcc does not second-guess: paths are checked where built,
//  messages may be cut.
static int s_fmt (char *buffer, size_t size, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static int
s_fmt (char *buffer, size_t size, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int length = vsnprintf (buffer, size, format, args);
    va_end (args);
    return length < 0 || (size_t) length >= size ? -1 : 0;
}

static const char *
s_wl_name (int workload)
{
    return workload == HB_W1 ? "W1" : "W2";
}

//  ---------------------------------------------------------------------
//  Processes

//  fork + exec argv; output to log_path when given (else inherited).
static pid_t
s_spawn (hb_ctx_t *ctx, char *const argv[], const char *log_path)
{
    pid_t parent = getpid ();
    fflush (NULL);
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        setpgid (0, 0); // Ctrl-C reaches the coordinator only; it cleans up
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        if (getppid () != parent)
            _exit (127);
        sigset_t none;
        sigemptyset (&none);
        sigprocmask (SIG_SETMASK, &none, NULL);
        if (log_path) {
            int fd = open (log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd >= 0) {
                dup2 (fd, 1);
                dup2 (fd, 2);
                close (fd);
            }
        }
        execv (argv[0], argv);
        _exit (127);
    }
    return pid;
}

//  waitpid that adds the process's CPU time to the run's
static pid_t
s_wait (hb_ctx_t *ctx, pid_t pid, int *status, int options)
{
    struct rusage usage;
    pid_t waited = wait4 (pid, status, options, &usage);
    if (waited == pid) {
        double cpu_us = (double) usage.ru_utime.tv_sec * 1e6 + (double) usage.ru_utime.tv_usec +
                        (double) usage.ru_stime.tv_sec * 1e6 + (double) usage.ru_stime.tv_usec;
        ctx->cpu_us += cpu_us;
        if (pid == ctx->broker_pid)
            ctx->broker_cpu_us += cpu_us;
    }
    return waited;
}

//  Reap whatever exited. Returns the number of children still alive.
static size_t
s_reap (hb_ctx_t *ctx)
{
    size_t live = 0;
    for (size_t index = 0; index < ctx->nchildren; index++) {
        if (!ctx->child_live[index])
            continue;
        int status;
        if (s_wait (ctx, ctx->children[index], &status, WNOHANG) == ctx->children[index]) {
            ctx->child_live[index] = false;
            ctx->child_status[index] = status;
        } else
            live++;
    }
    return live;
}

//  Sleep ms, or less when SIGINT/SIGTERM arrives (then ctx->interrupted).
static void
s_tick (hb_ctx_t *ctx, int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L};
    if (sigtimedwait (&ctx->signals, NULL, &ts) > 0)
        ctx->interrupted = true;
}

static void
s_kill_children (hb_ctx_t *ctx, int wait_ms)
{
    uint64_t until = hb_now_ns () + (uint64_t) wait_ms * 1000000ULL;
    while (s_reap (ctx) && hb_now_ns () < until)
        hb_sleep_ms (10);
    for (size_t index = 0; index < ctx->nchildren; index++)
        if (ctx->child_live[index])
            kill (ctx->children[index], SIGKILL);
    for (size_t index = 0; index < ctx->nchildren; index++)
        if (ctx->child_live[index]) {
            s_wait (ctx, ctx->children[index], &ctx->child_status[index], 0);
            ctx->child_live[index] = false;
        }
    ctx->nchildren = 0;
}

static void
s_stop_broker (hb_ctx_t *ctx)
{
    if (ctx->broker_pid <= 0)
        return;
    kill (ctx->broker_pid, SIGTERM);
    for (int tries = 0; tries < 1000; tries++) {
        if (s_wait (ctx, ctx->broker_pid, NULL, WNOHANG) == ctx->broker_pid) {
            ctx->broker_pid = 0;
            return;
        }
        hb_sleep_ms (10);
    }
    kill (ctx->broker_pid, SIGKILL);
    s_wait (ctx, ctx->broker_pid, NULL, 0);
    ctx->broker_pid = 0;
}

static int
s_rm_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove (path);
}

static void
s_rmtree (const char *path)
{
    if (*path)
        nftw (path, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
s_tail_file (const char *path, int lines)
{
    char command[PATH_MAX + 32];
    s_fmt (command, sizeof (command), "tail -n %d '%s' >&2", lines, path);
    fprintf (stderr, "---- %s (last %d lines)\n", path, lines);
    if (system (command) != 0)
        fprintf (stderr, "(cannot show %s)\n", path);
}

//  A free TCP port on 127.0.0.1 (released again: the broker binds it next).
static int
s_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t length = sizeof (address);
    int port = -1;
    if (bind (fd, (struct sockaddr *) &address, sizeof (address)) == 0 &&
        getsockname (fd, (struct sockaddr *) &address, &length) == 0)
        port = ntohs (address.sin_port);
    close (fd);
    return port;
}

static int
s_start_broker (hb_ctx_t *ctx, const char *rundir)
{
    if (strcmp (ctx->transport, "ipc") == 0) {
        s_fmt (ctx->run_broker, sizeof (ctx->run_broker), "ipc://%s/router", rundir);
        s_fmt (ctx->run_xpub, sizeof (ctx->run_xpub), "ipc://%s/xpub", rundir);
    } else {
        int router = s_free_port (), xpub = s_free_port ();
        while (xpub == router && router > 0)
            xpub = s_free_port ();
        if (router < 0 || xpub < 0) {
            fprintf (stderr, "herald-bench: no free TCP port on 127.0.0.1\n");
            return -1;
        }
        snprintf (ctx->run_broker, sizeof (ctx->run_broker), "tcp://127.0.0.1:%d", router);
        snprintf (ctx->run_xpub, sizeof (ctx->run_xpub), "tcp://127.0.0.1:%d", xpub);
    }
    char datadir[PATH_MAX], logpath[PATH_MAX], fsync[300];
    s_fmt (datadir, sizeof (datadir), "%s/data", rundir);
    s_fmt (logpath, sizeof (logpath), "%s/broker.log", rundir);
    snprintf (fsync, sizeof (fsync), "--fsync=%s", ctx->fsync);
    char *argv[64];
    size_t argc = 0;
    char *extra = strdup (ctx->broker_args ? ctx->broker_args : "");
    argv[argc++] = ctx->broker_bin;
    argv[argc++] = "--router";
    argv[argc++] = ctx->run_broker;
    argv[argc++] = "--xpub";
    argv[argc++] = ctx->run_xpub;
    argv[argc++] = "--data-dir";
    argv[argc++] = datadir;
    argv[argc++] = fsync;
    for (char *save = NULL, *word = strtok_r (extra, " \t", &save); word && argc < 63;
         word = strtok_r (NULL, " \t", &save))
        argv[argc++] = word;
    argv[argc] = NULL;
    ctx->broker_pid = s_spawn (ctx, argv, logpath);
    free (extra);
    if (ctx->broker_pid < 0) {
        fprintf (stderr, "herald-bench: cannot start %s: %s\n", ctx->broker_bin, strerror (errno));
        return -1;
    }
    uint64_t until = hb_now_ns () + 15000000000ULL;
    while (hb_now_ns () < until && !ctx->interrupted) {
        if (waitpid (ctx->broker_pid, NULL, WNOHANG) == ctx->broker_pid) {
            ctx->broker_pid = 0;
            fprintf (stderr, "herald-bench: broker %s exited at start\n", ctx->broker_bin);
            s_tail_file (logpath, 20);
            return -1;
        }
        const char *error = NULL;
        char *json = hd_admin_stats_json (ctx->run_broker, 300, &error);
        if (json) {
            free (json);
            return 0;
        }
        s_tick (ctx, 20);
    }
    fprintf (stderr, "herald-bench: broker did not answer STATS within 15 s\n");
    s_tail_file (logpath, 20);
    return -1;
}

//  Workers the broker counts in pool, or -1.
static int
s_pool_workers (const char *broker, const char *pool)
{
    const char *error = NULL;
    char *json = hd_admin_stats_json (broker, 1000, &error);
    if (!json)
        return -1;
    char key[HB_TEXT + 16];
    snprintf (key, sizeof (key), "{\"name\":\"%s\"", pool);
    int workers = -1;
    const char *at = strstr (json, key);
    if (at && (at = strstr (at, "\"workers\":")))
        workers = atoi (at + strlen ("\"workers\":"));
    free (json);
    return workers;
}

//  The broker's Stats.loop_busy_us and when it was read; -1 on failure.
typedef struct {
    int64_t busy_us;
    uint64_t at_ns;
} hb_busy_t;

static hb_busy_t
s_broker_busy (const char *broker)
{
    hb_busy_t busy = {-1, hb_now_ns ()};
    const char *error = NULL;
    char *json = hd_admin_stats_json (broker, 1000, &error);
    if (!json)
        return busy;
    const char *at = strstr (json, "\"loop_busy_us\":");
    if (at)
        busy.busy_us = strtoll (at + strlen ("\"loop_busy_us\":"), NULL, 10);
    free (json);
    return busy;
}

//  The loop's share of the time between two readings, or -1.
static double
s_busy_share (hb_busy_t from, hb_busy_t to)
{
    if (from.busy_us < 0 || to.busy_us < from.busy_us || to.at_ns <= from.at_ns)
        return -1;
    return (double) (to.busy_us - from.busy_us) * 1000.0 / (double) (to.at_ns - from.at_ns);
}

//  ---------------------------------------------------------------------
//  One run

static int
s_cmp_u64 (const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

static void
s_compute (hb_ctx_t *ctx, hb_ctl_t *ctl, hb_result_t *result)
{
    hb_hdr_t *hdr = ctl->hdr;
    uint64_t start = atomic_load (&hdr->start_ns);
    uint64_t end = 0;
    for (uint32_t p = 0; p < hdr->npub; p++) {
        hb_pub_t *pub = &hdr->pub[p];
        result->sent += atomic_load (&pub->sent);
        result->confirmed += atomic_load (&pub->confirmed);
        result->rejected += atomic_load (&pub->rejected);
        result->resent += atomic_load (&pub->resent);
        uint64_t e = atomic_load (&pub->end_ns);
        end = e > end ? e : end;
    }
    if (start && end > start)
        result->pub_rate = (double) result->sent * 1e9 / (double) (end - start);
    uint64_t count = 0, distinct = 0, last = 0;
    double min_rate = -1, sum_rate = 0;
    for (uint32_t r = 0; r < hdr->nrecv; r++) {
        hb_recv_t *recv = &hdr->recv[r];
        uint64_t d = atomic_load (&recv->distinct), l = atomic_load (&recv->last_ns);
        count += atomic_load (&recv->count);
        distinct += d;
        result->malformed += atomic_load (&recv->malformed);
        result->gaps += atomic_load (&recv->gaps);
        last = l > last ? l : last;
        double rate = (start && l > start) ? (double) d * 1e9 / (double) (l - start) : 0;
        min_rate = (min_rate < 0 || rate < min_rate) ? rate : min_rate;
        sum_rate += rate;
    }
    result->received = distinct;
    result->dupes = count - distinct;
    if (hdr->workload == HB_W1) {
        result->lost = (uint64_t) hdr->events * hdr->nrecv - distinct;
        result->recv_rate = min_rate < 0 ? 0 : min_rate;
        result->recv_avg = sum_rate / hdr->nrecv;
    } else {
        result->lost = hdr->events - distinct;
        uint64_t done = atomic_load (&hdr->done_ns);
        uint64_t t = done ? done : last;
        result->recv_rate =
            (start && t > start) ? (double) distinct * 1e9 / (double) (t - start) : 0;
        result->recv_avg = result->recv_rate;
    }
    size_t cells = (size_t) hdr->arrays * hdr->events, samples = 0;
    uint64_t *sorted = malloc ((cells ? cells : 1) * sizeof (uint64_t));
    if (sorted) {
        for (size_t cell = 0; cell < cells; cell++)
            if (atomic_load_explicit (&ctl->cnt[cell], memory_order_relaxed))
                sorted[samples++] = ctl->lat[cell];
        qsort (sorted, samples, sizeof (uint64_t), s_cmp_u64);
        for (int q = 0; q < HB_NPCT && samples; q++) {
            size_t rank = (size_t) ceil (s_pct[q] * (double) samples);
            rank = rank ? rank - 1 : 0;
            result->lat_us[q] = (double) sorted[rank < samples ? rank : samples - 1] / 1000.0;
        }
        free (sorted);
    }
}

static void
s_progress (hb_ctx_t *ctx, hb_ctl_t *ctl, const char *label, uint64_t started, bool final)
{
    if (ctx->quiet)
        return;
    hb_hdr_t *hdr = ctl->hdr;
    uint64_t sent = 0, recv = UINT64_MAX;
    for (uint32_t p = 0; p < hdr->npub; p++)
        sent += atomic_load (&hdr->pub[p].sent);
    if (hdr->workload == HB_W2)
        recv = atomic_load (&hdr->processed);
    else
        for (uint32_t r = 0; r < hdr->nrecv; r++) {
            uint64_t d = atomic_load (&hdr->recv[r].distinct);
            recv = d < recv ? d : recv;
        }
    fprintf (stderr, "%s%s sent %" PRIu64 "/%u, %s %" PRIu64 ", elapsed %.1f s%s",
             ctx->tty ? "\r" : "", label, sent, hdr->events,
             hdr->workload == HB_W2 ? "processed" : "received (slowest sub)", recv,
             (double) (hb_now_ns () - started) / 1e9, ctx->tty && !final ? "   " : "\n");
}

static bool
s_all_exited (hb_hdr_t *hdr)
{
    for (uint32_t r = 0; r < hdr->nrecv; r++)
        if (!atomic_load (&hdr->recv[r].exited))
            return false;
    return true;
}

static int
s_spawn_role (hb_ctx_t *ctx, const char *role, const char *ctl_path, uint32_t index)
{
    char number[16];
    snprintf (number, sizeof (number), "%u", index);
    char *argv[] = {ctx->self_exe,     "--role",  (char *) role, "--ctl",
                    (char *) ctl_path, "--index", number,        NULL};
    pid_t pid = s_spawn (ctx, argv, NULL);
    if (pid < 0)
        return -1;
    ctx->children[ctx->nchildren] = pid;
    ctx->child_live[ctx->nchildren] = true;
    ctx->child_status[ctx->nchildren] = 0;
    ctx->nchildren++;
    return 0;
}

//  Run one workload once. Fills result; returns 0, or -1 when the run failed.
static int
s_run (hb_ctx_t *ctx, int workload, int run, hb_result_t *result)
{
    memset (result, 0, sizeof (*result));
    result->broker_busy = -1;
    ctx->cpu_us = 0;
    ctx->broker_cpu_us = 0;
    char label[64];
    snprintf (label, sizeof (label), "[%s run %d/%" PRId64 "]", s_wl_name (workload), run,
              ctx->runs);
    uint32_t events = (uint32_t) ctx->events;
    if (ctx->rate > 0)
        events = (uint32_t) ((double) ctx->rate * (double) ctx->duration_ms / 1000.0);
    else if (events == 0)
        events = workload == HB_W1 ? 200000 : 100000;
    uint32_t nrecv = (uint32_t) (workload == HB_W1 ? ctx->subscribers : ctx->workers);
    uint32_t arrays = workload == HB_W1 ? nrecv : 1;

    char rundir[PATH_MAX], ctl_path[PATH_MAX];
    s_fmt (rundir, sizeof (rundir), "%s/run-%s-%d", ctx->tmpdir, s_wl_name (workload), run);
    if (mkdir (rundir, 0700)) {
        s_fmt (result->error, sizeof (result->error), "mkdir %s: %s", rundir, strerror (errno));
        return -1;
    }
    struct stat st;
    if (stat ("/dev/shm", &st) == 0 && S_ISDIR (st.st_mode) && access ("/dev/shm", W_OK) == 0)
        s_fmt (ctl_path, sizeof (ctl_path), "/dev/shm/herald-bench-%d-%s-%d.ctl", (int) getpid (),
               s_wl_name (workload), run);
    else
        s_fmt (ctl_path, sizeof (ctl_path), "%s/control", rundir);

    int rc = -1;
    hb_ctl_t ctl = {0};
    if (*ctx->broker) {
        snprintf (ctx->run_broker, sizeof (ctx->run_broker), "%s", ctx->broker);
        snprintf (ctx->run_xpub, sizeof (ctx->run_xpub), "%s", ctx->xpub);
    } else if (s_start_broker (ctx, rundir)) {
        s_fmt (result->error, sizeof (result->error), "broker did not start");
        goto done;
    }
    if (hb_ctl_map (&ctl, ctl_path, true, hb_ctl_size (arrays, events))) {
        s_fmt (result->error, sizeof (result->error), "control file %s: %s", ctl_path,
               strerror (errno));
        goto done;
    }
    hb_hdr_t *hdr = ctl.hdr;
    hdr->magic = HB_MAGIC;
    hdr->workload = (uint32_t) workload;
    hdr->events = events;
    hdr->nrecv = nrecv;
    hdr->npub = (uint32_t) ctx->publishers;
    hdr->credit = (uint32_t) ctx->credit;
    hdr->handlers = ctx->inline_handler ? HB_HANDLERS_INLINE
                    : ctx->threaded     ? HB_HANDLERS_THREADS
                                        : HB_HANDLERS_DEFAULT;
    hdr->window = (uint32_t) ctx->window;
    hdr->payload_size = (uint32_t) ctx->payload_size;
    hdr->arrays = arrays;
    hdr->rate = (double) ctx->rate;
    hb_ctl_arrays (&ctl);
    uint64_t started = hb_now_ns ();
    hdr->deadline_ns = started + (uint64_t) ctx->timeout_ms * 1000000ULL;
    snprintf (hdr->broker, sizeof (hdr->broker), "%s", ctx->run_broker);
    snprintf (hdr->xpub, sizeof (hdr->xpub), "%s", ctx->run_xpub);
    //  Unique names: a shared --broker keeps old pools and dedup entries.
    snprintf (hdr->id_prefix, sizeof (hdr->id_prefix), "hb%d-%lx-%s%d", (int) getpid (),
              (unsigned long) (started / 1000), s_wl_name (workload), run);
    snprintf (hdr->type, sizeof (hdr->type), "bench.%s.", hdr->id_prefix);
    snprintf (hdr->pool, sizeof (hdr->pool), "bench-%s", hdr->id_prefix);

    //  Receivers first; publishers once every receiver is ready.
    const char *role = workload == HB_W1 ? "subscriber" : "worker";
    for (uint32_t r = 0; r < nrecv; r++)
        if (s_spawn_role (ctx, role, ctl_path, r)) {
            s_fmt (result->error, sizeof (result->error), "fork: %s", strerror (errno));
            goto done;
        }
    uint64_t ready_by = started + 30000000000ULL;
    while (true) {
        uint32_t ready = 0, failed = 0;
        for (uint32_t r = 0; r < nrecv; r++) {
            ready += atomic_load (&hdr->recv[r].ready) ? 1 : 0;
            failed += atomic_load (&hdr->recv[r].failed) ? 1 : 0;
        }
        if (ready == nrecv)
            break;
        if (failed || s_reap (ctx) < nrecv || ctx->interrupted || hb_now_ns () > ready_by ||
            hb_now_ns () > hdr->deadline_ns) {
            s_fmt (result->error, sizeof (result->error), "%s: only %u of %u %ss became ready%s",
                   label, ready, nrecv, role, ctx->interrupted ? " (interrupted)" : "");
            goto done;
        }
        s_tick (ctx, 10);
    }
    if (workload == HB_W2) {
        int seen = -1;
        while ((seen = s_pool_workers (hdr->broker, hdr->pool)) != (int) nrecv) {
            if (ctx->interrupted || hb_now_ns () > ready_by) {
                s_fmt (result->error, sizeof (result->error),
                       "%s: the broker counts %d of %u workers in pool %s", label, seen, nrecv,
                       hdr->pool);
                goto done;
            }
            s_tick (ctx, 20);
        }
    }
    for (uint32_t p = 0; p < hdr->npub; p++)
        if (s_spawn_role (ctx, "publisher", ctl_path, p)) {
            s_fmt (result->error, sizeof (result->error), "fork: %s", strerror (errno));
            goto done;
        }
    //  From the first publisher's start (after W1's probes), to the tick
    //  that saw the last event in: ticks are 1 ms until the start
    hb_busy_t busy_from = {-1, 0}, busy_to = {-1, 0};
    bool started_seen = false;
    atomic_store (&hdr->go, 1);

    uint64_t last_progress = hb_now_ns (), drain_from = 0, last_change = hb_now_ns ();
    uint64_t last_processed = 0;
    const char *failure = NULL;
    while (true) {
        s_tick (ctx, started_seen ? 20 : 1);
        if (!started_seen && atomic_load (&hdr->start_ns)) {
            started_seen = true;
            busy_from = s_broker_busy (hdr->broker);
        }
        s_reap (ctx);
        uint64_t now = hb_now_ns ();
        if (ctx->interrupted) {
            failure = "interrupted";
            break;
        }
        if (now > hdr->deadline_ns) {
            failure = "timed out (--timeout)";
            break;
        }
        bool pubs_done = true;
        for (uint32_t p = 0; p < hdr->npub; p++) {
            if (atomic_load (&hdr->pub[p].failed)) {
                failure = hdr->pub[p].error[0] ? hdr->pub[p].error : "a publisher failed";
                break;
            }
            pubs_done = pubs_done && atomic_load (&hdr->pub[p].done);
        }
        if (failure)
            break;
        for (size_t child = 0; child < ctx->nchildren && !failure; child++)
            if (!ctx->child_live[child] && ctx->child_status[child] != 0)
                failure = "a client process failed or died";
        if (failure)
            break;
        if (workload == HB_W1) {
            if (pubs_done && s_all_exited (hdr)) {
                busy_to = s_broker_busy (hdr->broker);
                break;
            }
        } else {
            uint64_t processed = atomic_load (&hdr->processed);
            if (processed != last_processed) {
                last_processed = processed;
                last_change = now;
            }
            //  Keep draining 300 ms after the last event, to catch late duplicates.
            if (processed >= events && !drain_from) {
                drain_from = now;
                busy_to = s_broker_busy (hdr->broker);
            }
            if (drain_from && pubs_done && now > drain_from + 300000000ULL)
                break;
            if (pubs_done && now > last_change + 10000000000ULL)
                break; // lost events: nothing for 10 s
        }
        if (now > last_progress + 1000000000ULL) {
            s_progress (ctx, &ctl, label, started, false);
            last_progress = now;
        }
    }
    s_progress (ctx, &ctl, label, started, true);
    atomic_store (&hdr->stop, 1);
    s_kill_children (ctx, failure ? 2000 : 10000);
    s_compute (ctx, &ctl, result);
    result->broker_busy = s_busy_share (busy_from, busy_to);
    result->seconds = (double) (hb_now_ns () - started) / 1e9;
    if (failure) {
        s_fmt (result->error, sizeof (result->error),
               "%s: %s (sent %" PRIu64 ", received %" PRIu64 " distinct)", label, failure,
               result->sent, result->received);
        goto done;
    }
    rc = 0;
    result->ok = true;
done:
    if (rc && !result->error[0])
        s_fmt (result->error, sizeof (result->error), "%s failed", label);
    if (rc)
        fprintf (stderr, "herald-bench: %s\n", result->error);
    s_kill_children (ctx, 0);
    if (rc && ctx->broker_pid > 0) {
        char logpath[PATH_MAX];
        s_fmt (logpath, sizeof (logpath), "%s/broker.log", rundir);
        s_tail_file (logpath, 10);
    }
    s_stop_broker (ctx);
    if (events) {
        result->cpu_us_per_event = ctx->cpu_us / events;
        result->broker_cpu_us_per_event = ctx->broker_cpu_us / events;
    }
    hb_ctl_unmap (&ctl);
    unlink (ctl_path);
    s_rmtree (rundir);
    return rc;
}

//  ---------------------------------------------------------------------
//  Reporting

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  Median over the successful runs of the field at offset (a double);
//  with known_only, over the runs where it is not negative (-1 if none).
static double
s_median_of (hb_result_t *results, int runs, size_t offset, bool known_only)
{
    double values[HB_MAX_RUNS];
    int n = 0;
    for (int run = 0; run < runs; run++) {
        double value = *(double *) ((char *) &results[run] + offset);
        if (results[run].ok && !(known_only && value < 0))
            values[n++] = value;
    }
    if (!n)
        return known_only ? -1 : 0;
    qsort (values, (size_t) n, sizeof (double), s_cmp_double);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static double
s_median (hb_result_t *results, int runs, size_t offset)
{
    return s_median_of (results, runs, offset, false);
}

typedef struct {
    int ok, failed;
    double pub_rate, recv_rate, recv_avg, lat_us[HB_NPCT], cpu_us_per_event,
        broker_cpu_us_per_event, broker_busy;
    uint64_t lost, dupes, gaps, rejected, resent, malformed;
} hb_summary_t;

static hb_summary_t
s_summarise (hb_result_t *results, int runs)
{
    hb_summary_t summary = {0};
    for (int run = 0; run < runs; run++) {
        summary.ok += results[run].ok;
        summary.failed += !results[run].ok;
        if (!results[run].ok)
            continue; // its counters are in the per-run JSON
        summary.lost += results[run].lost;
        summary.dupes += results[run].dupes;
        summary.gaps += results[run].gaps;
        summary.rejected += results[run].rejected;
        summary.resent += results[run].resent;
        summary.malformed += results[run].malformed;
    }
    summary.pub_rate = s_median (results, runs, offsetof (hb_result_t, pub_rate));
    summary.recv_rate = s_median (results, runs, offsetof (hb_result_t, recv_rate));
    summary.recv_avg = s_median (results, runs, offsetof (hb_result_t, recv_avg));
    summary.cpu_us_per_event = s_median (results, runs, offsetof (hb_result_t, cpu_us_per_event));
    summary.broker_cpu_us_per_event =
        s_median (results, runs, offsetof (hb_result_t, broker_cpu_us_per_event));
    summary.broker_busy = s_median_of (results, runs, offsetof (hb_result_t, broker_busy), true);
    for (int q = 0; q < HB_NPCT; q++)
        summary.lat_us[q] =
            s_median (results, runs, offsetof (hb_result_t, lat_us) + (size_t) q * sizeof (double));
    return summary;
}

static void
s_print_table (hb_ctx_t *ctx, const int *workloads, int nwl, FILE *out)
{
    fprintf (out,
             "\nHerald %s, fsync %s, payload %" PRId64 " B, credit %" PRId64 ", window %" PRId64
             ", %s%s; median of %" PRId64 " run(s), lost/dupes summed over completed runs\n",
             *ctx->broker ? ctx->broker : "own broker", *ctx->broker ? "(external)" : ctx->fsync,
             ctx->payload_size, ctx->credit, ctx->window,
             ctx->rate > 0 ? "paced" : "max throughput", ctx->threaded ? ", handler threads" : "",
             ctx->runs);
    if (ctx->rate > 0)
        fprintf (out, "offered rate %" PRId64 " events/s for %.1f s\n", ctx->rate,
                 (double) ctx->duration_ms / 1000.0);
    fprintf (out, "| workload | pub msg/s | recv msg/s | lost | dupes | p50 us | p99 us | p99.9 us "
                  "| max us | CPU us/event | broker busy | failed runs |\n");
    fprintf (out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int w = 0; w < nwl; w++) {
        int workload = workloads[w];
        hb_summary_t s = s_summarise (ctx->results[workload - 1], (int) ctx->runs);
        char name[128];
        if (workload == HB_W1)
            snprintf (name, sizeof (name),
                      "W1 fan-out %" PRId64 "p->%" PRId64 "s (recv: slower sub)", ctx->publishers,
                      ctx->subscribers);
        else
            snprintf (name, sizeof (name), "W2 queue %" PRId64 "p->%" PRId64 "w (processed)",
                      ctx->publishers, ctx->workers);
        char busy[16] = "-";
        if (s.broker_busy >= 0)
            snprintf (busy, sizeof (busy), "%.0f %%", 100.0 * s.broker_busy);
        fprintf (out,
                 "| %s | %.0f | %.0f | %" PRIu64 " | %" PRIu64
                 " | %.0f | %.0f | %.0f | %.0f | %.2f | %s | %d |\n",
                 name, s.pub_rate, s.recv_rate, s.lost, s.dupes, s.lat_us[0], s.lat_us[2],
                 s.lat_us[3], s.lat_us[HB_NPCT - 1], s.cpu_us_per_event, busy, s.failed);
        if (s.rejected || s.resent || s.malformed || s.gaps)
            fprintf (out,
                     "  (%s: rejected %" PRIu64 ", resent %" PRIu64 ", malformed %" PRIu64
                     ", subscriber gaps %" PRIu64 ")\n",
                     s_wl_name (workload), s.rejected, s.resent, s.malformed, s.gaps);
    }
}

//  The broker's busy share for the JSON: null when unknown.
static const char *
s_busy_json (double value, char *text, size_t size)
{
    if (value < 0)
        return "null";
    s_fmt (text, size, "%.3f", value);
    return text;
}

//  A broker CPU figure for the JSON: null when the broker is not ours.
static const char *
s_broker_cpu_json (hb_ctx_t *ctx, double value, char *text, size_t size)
{
    if (*ctx->broker)
        return "null";
    s_fmt (text, size, "%.3f", value);
    return text;
}

static void
s_print_json (hb_ctx_t *ctx, const int *workloads, int nwl, FILE *out)
{
    fprintf (out,
             "{\"config\":{\"broker\":\"%s\",\"fsync\":\"%s\",\"payload_size\":%" PRId64
             ",\"publishers\":%" PRId64 ",\"subscribers\":%" PRId64 ",\"workers\":%" PRId64
             ",\"credit\":%" PRId64 ",\"inline\":%s,\"window\":%" PRId64 ",\"rate\":%" PRId64
             ",\"duration_s\":%.3f,\"events\":%" PRId64 ",\"runs\":%" PRId64 ",\"cpus\":\"%s\"}",
             *ctx->broker ? ctx->broker : "own", ctx->fsync, ctx->payload_size, ctx->publishers,
             ctx->subscribers, ctx->workers, ctx->credit, ctx->threaded ? "false" : "true",
             ctx->window, ctx->rate, (double) ctx->duration_ms / 1000.0, ctx->events, ctx->runs,
             *ctx->cpus ? ctx->cpus : "any");
    for (int w = 0; w < nwl; w++) {
        int workload = workloads[w];
        hb_result_t *results = ctx->results[workload - 1];
        hb_summary_t s = s_summarise (results, (int) ctx->runs);
        char broker_cpu[32], busy[32];
        fprintf (out,
                 ",\"%s\":{\"ok_runs\":%d,\"failed_runs\":%d,\"pub_rate\":%.0f,\"%s\":%.0f,"
                 "\"lost\":%" PRIu64 ",\"dupes\":%" PRIu64 ",\"rejected\":%" PRIu64
                 ",\"resent\":%" PRIu64 ",\"malformed\":%" PRIu64 ",\"gaps\":%" PRIu64
                 ",\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
                 "\"max_us\":%.1f,\"cpu_us_per_event\":%.3f,\"cpu_scope\":\"%s\","
                 "\"broker_cpu_us_per_event\":%s,\"broker_busy\":%s,\"runs\":[",
                 workload == HB_W1 ? "w1" : "w2", s.ok, s.failed, s.pub_rate,
                 workload == HB_W1 ? "sub_rate" : "proc_rate", s.recv_rate, s.lost, s.dupes,
                 s.rejected, s.resent, s.malformed, s.gaps, s.lat_us[0], s.lat_us[1], s.lat_us[2],
                 s.lat_us[3], s.lat_us[HB_NPCT - 1], s.cpu_us_per_event,
                 *ctx->broker ? "clients" : "clients and broker",
                 s_broker_cpu_json (ctx, s.broker_cpu_us_per_event, broker_cpu, sizeof broker_cpu),
                 s_busy_json (s.broker_busy, busy, sizeof busy));
        for (int run = 0; run < ctx->runs; run++) {
            hb_result_t *r = &results[run];
            fprintf (
                out,
                "%s{\"ok\":%s,\"pub_rate\":%.0f,\"recv_rate\":%.0f,\"recv_avg\":%.0f,"
                "\"sent\":%" PRIu64 ",\"confirmed\":%" PRIu64 ",\"received\":%" PRIu64
                ",\"lost\":%" PRIu64 ",\"dupes\":%" PRIu64
                ",\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"seconds\":%.2f,"
                "\"cpu_us_per_event\":%.3f,\"broker_cpu_us_per_event\":%s,\"broker_busy\":%s}",
                run ? "," : "", r->ok ? "true" : "false", r->pub_rate, r->recv_rate, r->recv_avg,
                r->sent, r->confirmed, r->received, r->lost, r->dupes, r->lat_us[0], r->lat_us[2],
                r->lat_us[3], r->seconds, r->cpu_us_per_event,
                s_broker_cpu_json (ctx, r->broker_cpu_us_per_event, broker_cpu, sizeof broker_cpu),
                s_busy_json (r->broker_busy, busy, sizeof busy));
        }
        fprintf (out, "]}");
    }
    fprintf (out, "}\n");
}

static void
s_plot (hb_ctx_t *ctx)
{
    if (system ("command -v gnuplot >/dev/null 2>&1") != 0) {
        fprintf (stderr,
                 "herald-bench: gnuplot is not installed; no plot written to %s "
                 "(apt-get install gnuplot-nox)\n",
                 ctx->plot);
        return;
    }
    char tput[PATH_MAX], lat[PATH_MAX], script[PATH_MAX];
    s_fmt (tput, sizeof (tput), "%s/throughput.dat", ctx->tmpdir);
    s_fmt (lat, sizeof (lat), "%s/latency.dat", ctx->tmpdir);
    s_fmt (script, sizeof (script), "%s/plot.gp", ctx->tmpdir);
    FILE *file = fopen (tput, "w");
    if (!file)
        return;
    fprintf (file, "# run w1_pub w1_sub w2_pub w2_proc\n");
    for (int run = 0; run < ctx->runs; run++) {
        hb_result_t *w1 = &ctx->results[0][run], *w2 = &ctx->results[1][run];
        fprintf (file, "%d %.0f %.0f %.0f %.0f\n", run + 1, w1->ok ? w1->pub_rate : NAN,
                 w1->ok ? w1->recv_rate : NAN, w2->ok ? w2->pub_rate : NAN,
                 w2->ok ? w2->recv_rate : NAN);
    }
    fclose (file);
    file = fopen (lat, "w");
    if (!file)
        return;
    fprintf (file, "# 1/(1-q) q w1_us w2_us (medians over runs)\n");
    hb_summary_t s1 = s_summarise (ctx->results[0], (int) ctx->runs);
    hb_summary_t s2 = s_summarise (ctx->results[1], (int) ctx->runs);
    for (int q = 0; q < HB_NPCT - 1; q++)
        fprintf (file, "%g %g %.1f %.1f\n", 1.0 / (1.0 - s_pct[q]), s_pct[q] * 100,
                 s1.ok ? s1.lat_us[q] : NAN, s2.ok ? s2.lat_us[q] : NAN);
    fclose (file);
    bool w1 = s1.ok > 0, w2 = s2.ok > 0;
    char series_tput[3 * PATH_MAX], series_lat[3 * PATH_MAX];
    s_fmt (series_tput, sizeof (series_tput), "%s%s%s%s%s%s%s", w1 ? "'" : "", w1 ? tput : "",
           w1 ? "' u 1:2 t 'W1 pub', '' u 1:3 t 'W1 slower sub'" : "", w1 && w2 ? ", " : "",
           w2 ? "'" : "", w2 ? tput : "",
           w2 ? "' u 1:4 t 'W2 pub', '' u 1:5 t 'W2 processed'" : "");
    s_fmt (series_lat, sizeof (series_lat), "%s%s%s%s%s%s%s", w1 ? "'" : "", w1 ? lat : "",
           w1 ? "' u 1:3 t 'W1'" : "", w1 && w2 ? ", " : "", w2 ? "'" : "", w2 ? lat : "",
           w2 ? "' u 1:4 t 'W2'" : "");
    if (!w1 && !w2) {
        fprintf (stderr, "herald-bench: no successful run to plot\n");
        return;
    }
    file = fopen (script, "w");
    if (!file)
        return;
    fprintf (file,
             "set terminal png size 1200,500\nset output '%s'\nset datafile missing 'nan'\n"
             "set multiplot layout 1,2 title 'herald-bench: fsync %s, payload %" PRId64 " B%s'\n"
             "set title 'throughput per run'\nset xlabel 'run'\nset ylabel 'events/s'\n"
             "set yrange [0:*]\nset xrange [0.5:%" PRId64
             ".5]\nset xtics 1\nset key bottom right\nset style data linespoints\n"
             "plot %s\n"
             "set title 'latency of first delivery (scheduled send -> receipt)'\n"
             "set logscale x\nset logscale y\nset xlabel 'percentile'\n"
             "set ylabel 'microseconds'\nset yrange [*:*]\nset xrange [*:*]\n"
             "set xtics ('p50' 2, 'p90' 10, 'p99' 100, 'p99.9' 1000, 'p99.99' 10000, "
             "'p99.999' 100000)\n"
             "plot %s\nunset multiplot\n",
             ctx->plot, ctx->fsync, ctx->payload_size,
             ctx->rate > 0 ? ", paced" : ", max throughput (latency includes queueing)", ctx->runs,
             series_tput, series_lat);
    fclose (file);
    char command[PATH_MAX + 64];
    s_fmt (command, sizeof (command), "gnuplot '%s'", script);
    if (system (command) == 0)
        fprintf (stderr, "herald-bench: plot written to %s\n", ctx->plot);
    else
        fprintf (stderr, "herald-bench: gnuplot failed; no plot\n");
}

//  ---------------------------------------------------------------------

static int
s_child_main (hb_ctx_t *ctx)
{
    hb_ctl_t ctl;
    if (!ctx->ctl_path || hb_ctl_map (&ctl, ctx->ctl_path, false, 0)) {
        fprintf (stderr, "herald-bench: --role needs a valid --ctl file\n");
        return 2;
    }
    uint32_t index = (uint32_t) ctx->index;
    int rc = 2;
    if (strcmp (ctx->role, "publisher") == 0 && index < ctl.hdr->npub)
        rc = hb_role_publisher (&ctl, index);
    else if (strcmp (ctx->role, "subscriber") == 0 && index < ctl.hdr->nrecv)
        rc = hb_role_subscriber (&ctl, index);
    else if (strcmp (ctx->role, "worker") == 0 && index < ctl.hdr->nrecv)
        rc = hb_role_worker (&ctl, index);
    else
        fprintf (stderr, "herald-bench: bad --role %s / --index %u\n", ctx->role, index);
    hb_ctl_unmap (&ctl);
    return rc;
}

static int
s_check_options (hb_ctx_t *ctx, int *workloads, int *nwl)
{
    *nwl = 0;
    if (strcmp (ctx->workload, "w1") == 0 || strcmp (ctx->workload, "both") == 0)
        workloads[(*nwl)++] = HB_W1;
    if (strcmp (ctx->workload, "w2") == 0 || strcmp (ctx->workload, "both") == 0)
        workloads[(*nwl)++] = HB_W2;
    const char *bad = NULL;
    if (*nwl == 0)
        bad = "--workload must be w1, w2 or both";
    else if (ctx->publishers < 1 || ctx->publishers > HB_MAX_PUB)
        bad = "--publishers must be 1..16";
    else if (ctx->subscribers < 1 || ctx->subscribers > HB_MAX_RECV)
        bad = "--subscribers must be 1..64";
    else if (ctx->workers < 1 || ctx->workers > HB_MAX_RECV)
        bad = "--workers must be 1..64";
    else if (ctx->credit < 1 || ctx->window < 1)
        bad = "--credit and --window must be at least 1";
    else if (ctx->inline_handler && ctx->threaded)
        bad = "--inline and --threaded exclude each other";
    else if (ctx->payload_size < HB_MIN_PAYLOAD || ctx->payload_size > 64 * 1024 * 1024)
        bad = "--payload-size must be 16 B .. 64 MiB";
    else if (ctx->events < 0 || ctx->events >= (int64_t) HB_PROBE_SEQ)
        bad = "--events out of range";
    else if (ctx->rate < 0 || (ctx->rate > 0 && ctx->duration_ms <= 0))
        bad = "--rate needs a positive --duration";
    else if (ctx->rate > 0 && (double) ctx->rate * (double) ctx->duration_ms / 1000.0 < 1)
        bad = "--rate x --duration is less than one event";
    else if (ctx->runs < 1 || ctx->runs > HB_MAX_RUNS)
        bad = "--runs must be 1..100";
    else if (ctx->timeout_ms < 1000)
        bad = "--timeout must be at least 1s";
    else if (*ctx->broker && !*ctx->xpub && workloads[0] == HB_W1)
        bad = "--broker with W1 needs --xpub";
    else if (strcmp (ctx->transport, "tcp") && strcmp (ctx->transport, "ipc"))
        bad = "--transport must be tcp or ipc";
    else if (strcmp (ctx->fsync, "always") && strcmp (ctx->fsync, "never") &&
             strncmp (ctx->fsync, "interval=", 9))
        bad = "--fsync must be always, never or interval=MS";
    if (bad) {
        fprintf (stderr, "herald-bench: %s\n", bad);
        return -1;
    }
    return 0;
}

//  CPUs from a list such as "0", "0-1" or "0,2-3" into set; -1 with a
//  reason when the list is not one.
static int
s_parse_cpus (const char *text, cpu_set_t *set, const char **reason)
{
    CPU_ZERO (set);
    const char *at = text;
    do {
        char *end = NULL;
        errno = 0;
        long first = strtol (at, &end, 10), last = first;
        if (end == at || errno || first < 0 || first >= CPU_SETSIZE ||
            !isdigit ((unsigned char) *at))
            break;
        at = end;
        if (*at == '-') {
            const char *from = ++at;
            last = strtol (from, &end, 10);
            if (end == from || errno || last < first || last >= CPU_SETSIZE ||
                !isdigit ((unsigned char) *from))
                break;
            at = end;
        }
        for (long cpu = first; cpu <= last; cpu++)
            CPU_SET ((int) cpu, set);
        if (*at == 0)
            return 0;
    } while (*at++ == ',');
    *reason = "--cpus must be a list of CPU numbers and ranges, such as 0 or 0-1,3";
    return -1;
}

//  Puts this process, and so every process it starts, on the --cpus;
//  -1 with a message when the list is bad or names no CPU we may use.
static int
s_pin_to_cpus (hb_ctx_t *ctx)
{
    if (!*ctx->cpus)
        return 0;
    cpu_set_t set;
    const char *reason = NULL;
    if (s_parse_cpus (ctx->cpus, &set, &reason)) {
        fprintf (stderr, "herald-bench: %s\n", reason);
        return -1;
    }
    if (sched_setaffinity (0, sizeof set, &set)) {
        fprintf (stderr, "herald-bench: cannot run on CPUs %s: %s\n", ctx->cpus, strerror (errno));
        return -1;
    }
    //  The kernel takes a list of which only some CPUs can be had, and
    //  drops the rest: the runs would not be where the results say
    cpu_set_t applied;
    if (sched_getaffinity (0, sizeof applied, &applied) || !CPU_EQUAL (&applied, &set)) {
        fprintf (stderr, "herald-bench: only some of CPUs %s can be had here\n", ctx->cpus);
        return -1;
    }
    return 0;
}

int
main (int argc, char **argv)
{
    hb_ctx_t *ctx = calloc (1, sizeof (hb_ctx_t));
    if (!ctx)
        return 2;
    hd_options_t *options = hd_options_new (
        "herald-bench", "[options]",
        "Benchmark a Herald broker with the workloads of ../shared/bench-peers:\n"
        "  W1 fan-out: publishers -> broker -> subscribers (hd_subscriber), every subscriber\n"
        "     gets every event; pub msg/s = events / (last send incl. flush - first send);\n"
        "     recv msg/s = distinct events / (last receipt - first send), slower subscriber.\n"
        "  W2 work queue: publishers -> broker -> competing workers (hd_worker) in one pool,\n"
        "     one ACK per event; processed msg/s = distinct events handled /\n"
        "     (last distinct event handled - first send); an event counts as processed when\n"
        "     the handler returns HD_ACK (the library sends the ACK right after).\n"
        "Every client is a separate process (this program re-executed with --role). Latency\n"
        "is receipt - scheduled send time (CLOCK_MONOTONIC, open loop), first delivery of\n"
        "every event; use --rate/--duration for latency figures, since at full speed it\n"
        "measures queueing. lost = deliveries that never happened, dupes = receipts beyond\n"
        "the first. CPU us/event = user + system time of the run's processes (clients, and\n"
        "the broker when herald-bench started it) / events: what an event costs the\n"
        "machine, steadier than a rate on a shared one (setup is in it: use large --events);\n"
        "--json also gives the broker's own part (broker_cpu_us_per_event, null with --broker).\n"
        "broker busy = the share of the run (first send to last event in) the broker's loop\n"
        "thread was working (Stats.loop_busy_us): near 100 % the broker is the limit.\n"
        "Without --broker a fresh herald-broker runs per run (TCP on 127.0.0.1,\n"
        "ephemeral ports, data dir in a temp dir that is removed). Exit status: 0 when every\n"
        "run completed, 1 when a run failed or timed out, 2 on bad usage.");
    hd_options_add (options, "workload", HD_OPT_STRING, "both", "", "w1, w2 or both",
                    &ctx->workload);
    hd_options_add (options, "events", HD_OPT_INT, "0", "",
                    "events per run (0: 200000 for W1, 100000 for W2)", &ctx->events);
    hd_options_add (options, "publishers", HD_OPT_INT, "1", "", "publisher processes",
                    &ctx->publishers);
    hd_options_add (options, "subscribers", HD_OPT_INT, "2", "", "W1 subscriber processes",
                    &ctx->subscribers);
    hd_options_add (options, "workers", HD_OPT_INT, "4", "", "W2 worker processes", &ctx->workers);
    hd_options_add (options, "credit", HD_OPT_INT, "100", "", "W2 credit per worker", &ctx->credit);
    hd_options_add (options, "inline", HD_OPT_BOOL, "false", "",
                    "W2 workers call the handler on their I/O thread (the library's default)",
                    &ctx->inline_handler);
    hd_options_add (options, "threaded", HD_OPT_BOOL, "false", "",
                    "W2 workers call the handler on a handler thread (hd_worker_set_inline false)",
                    &ctx->threaded);
    hd_options_add (options, "window", HD_OPT_INT, "256", "", "unconfirmed events per publisher",
                    &ctx->window);
    hd_options_add (options, "payload-size", HD_OPT_SIZE, "128", "",
                    "payload bytes (at least 16: seq and send time)", &ctx->payload_size);
    hd_options_add (options, "fsync", HD_OPT_STRING, "always", "",
                    "always|never|interval=MS, passed to the broker herald-bench starts",
                    &ctx->fsync);
    hd_options_add (options, "rate", HD_OPT_INT, "0", "",
                    "latency mode: offered events/s over all publishers (0: as fast as the "
                    "window allows)",
                    &ctx->rate);
    hd_options_add (options, "duration", HD_OPT_STRING, "10", "",
                    "latency mode: how long to offer --rate, seconds or \"500ms\", \"2m\" "
                    "(events = rate x duration)",
                    &ctx->duration);
    hd_options_add (options, "runs", HD_OPT_INT, "1", "",
                    "runs per workload; the report shows medians", &ctx->runs);
    hd_options_add (options, "json", HD_OPT_BOOL, "false", "",
                    "print one JSON object on stdout (the table goes to stderr)", &ctx->json);
    hd_options_add (options, "plot", HD_OPT_STRING, "", "",
                    "draw throughput per run and latency percentiles into this PNG (gnuplot)",
                    &ctx->plot);
    hd_options_add (options, "broker", HD_OPT_STRING, "", "",
                    "use this running broker (ROUTER endpoint) instead of starting one",
                    &ctx->broker);
    hd_options_add (options, "xpub", HD_OPT_STRING, "", "",
                    "XPUB endpoint of the --broker (needed for W1)", &ctx->xpub);
    hd_options_add (options, "broker-bin", HD_OPT_STRING, "", "",
                    "herald-broker to start (default: next to herald-bench)", &ctx->broker_bin);
    hd_options_add (options, "broker-args", HD_OPT_STRING, "", "",
                    "extra broker flags, space-separated (e.g. \"--sub-hwm 0\")",
                    &ctx->broker_args);
    hd_options_add (options, "transport", HD_OPT_STRING, "tcp", "",
                    "tcp (127.0.0.1) or ipc (temp dir) for the broker herald-bench starts",
                    &ctx->transport);
    hd_options_add (options, "cpus", HD_OPT_STRING, "", "",
                    "run herald-bench and every process it starts (broker, clients) on these "
                    "CPUs, e.g. 0 or 0-1,3 (default: where the scheduler puts them)",
                    &ctx->cpus);
    hd_options_add (options, "timeout", HD_OPT_DURATION, "120s", "",
                    "longest a run may take; then its processes are killed", &ctx->timeout_ms);
    hd_options_add (options, "quiet", HD_OPT_BOOL, "false", "", "no progress line", &ctx->quiet);
    hd_options_add (options, "role", HD_OPT_STRING, "", "",
                    "internal: publisher|subscriber|worker (a client process)", &ctx->role);
    hd_options_add (options, "ctl", HD_OPT_STRING, "", "", "internal: control file",
                    &ctx->ctl_path);
    hd_options_add (options, "index", HD_OPT_INT, "0", "", "internal: client index", &ctx->index);
    if (hd_options_parse (options, argc, argv)) {
        fprintf (stderr, "herald-bench: %s (see --help)\n", hd_options_error (options));
        hd_options_destroy (&options);
        free (ctx);
        return 2;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        hd_options_destroy (&options);
        free (ctx);
        return 0;
    }
    if (*ctx->role) {
        int rc = s_child_main (ctx);
        hd_options_destroy (&options);
        free (ctx);
        return rc;
    }

    int workloads[2], nwl = 0, rc = 0;
    char *end = NULL;
    double seconds = strtod (ctx->duration, &end);
    if (end != ctx->duration && *end == 0)
        ctx->duration_ms = (int64_t) (seconds * 1000.0);
    else if (hd_parse_duration_ms (ctx->duration, &ctx->duration_ms)) {
        fprintf (stderr, "herald-bench: bad --duration %s\n", ctx->duration);
        return 2;
    }
    if (s_check_options (ctx, workloads, &nwl) || s_pin_to_cpus (ctx)) {
        hd_options_destroy (&options);
        free (ctx);
        return 2;
    }
    //  SIGINT/SIGTERM are taken with sigtimedwait: blocked before any thread exists.
    sigemptyset (&ctx->signals);
    sigaddset (&ctx->signals, SIGINT);
    sigaddset (&ctx->signals, SIGTERM);
    sigaddset (&ctx->signals, SIGHUP);
    sigprocmask (SIG_BLOCK, &ctx->signals, NULL);
    ctx->tty = isatty (2);

    ssize_t length = readlink ("/proc/self/exe", ctx->self_exe, sizeof (ctx->self_exe) - 1);
    if (length <= 0) {
        fprintf (stderr, "herald-bench: cannot find my own executable\n");
        return 2;
    }
    ctx->self_exe[length] = 0;
    char default_broker[PATH_MAX];
    if (!*ctx->broker_bin) {
        char dir[PATH_MAX];
        snprintf (dir, sizeof (dir), "%s", ctx->self_exe);
        char *slash = strrchr (dir, '/');
        if (slash)
            *slash = 0;
        s_fmt (default_broker, sizeof (default_broker), "%s/herald-broker", dir);
        ctx->broker_bin = default_broker;
    }
    if (!*ctx->broker && access (ctx->broker_bin, X_OK)) {
        fprintf (stderr, "herald-bench: no broker at %s (--broker-bin, or --broker EP)\n",
                 ctx->broker_bin);
        return 2;
    }
    const char *tmp = getenv ("TMPDIR");
    snprintf (ctx->tmpdir, sizeof (ctx->tmpdir), "%s/herald-bench.XXXXXX",
              tmp && *tmp ? tmp : "/tmp");
    if (strlen (ctx->tmpdir) > 200) {
        fprintf (stderr, "herald-bench: TMPDIR path too long\n");
        return 2;
    }
    if (!mkdtemp (ctx->tmpdir)) {
        fprintf (stderr, "herald-bench: mkdtemp: %s\n", strerror (errno));
        return 2;
    }

    for (int run = 1; run <= ctx->runs && !ctx->interrupted; run++)
        for (int w = 0; w < nwl && !ctx->interrupted; w++) {
            hb_result_t *result = &ctx->results[workloads[w] - 1][run - 1];
            if (s_run (ctx, workloads[w], run, result))
                rc = 1;
            else if (!ctx->quiet)
                fprintf (stderr,
                         "[%s run %d] pub %.0f/s, recv %.0f/s, lost %" PRIu64 ", dupes %" PRIu64
                         ", p50 %.0f us, p99 %.0f us, p99.9 %.0f us\n",
                         s_wl_name (workloads[w]), run, result->pub_rate, result->recv_rate,
                         result->lost, result->dupes, result->lat_us[0], result->lat_us[2],
                         result->lat_us[3]);
        }
    if (ctx->interrupted) {
        fprintf (stderr, "herald-bench: interrupted\n");
        rc = 130;
    }
    s_print_table (ctx, workloads, nwl, ctx->json ? stderr : stdout);
    if (ctx->json)
        s_print_json (ctx, workloads, nwl, stdout);
    if (*ctx->plot && !ctx->interrupted)
        s_plot (ctx);
    s_rmtree (ctx->tmpdir);
    hd_options_destroy (&options);
    free (ctx);
    return rc;
}
