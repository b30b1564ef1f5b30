/*  herald-machine-probe — what this machine charges for the things that
    dominate Herald's benchmarks once its own code is lean: waking a
    thread, touching memory for the first time (docs/PERFORMANCE-HISTORY.md,
    twelfth pass), and whether the whole machine stops now and then under
    load (twenty-third pass). None of it is Herald's; all of it explains
    its ratios to raw ZeroMQ and its tail latency on a given host.

    herald-machine-probe [--stalls SECONDS] [--dir DIR] [ROUND_TRIPS [MIB]]
    herald-machine-probe --watch SECONDS
    herald-machine-probe --sync-floor RATE SECONDS [--wakeups RATE] [--dir DIR]

    - wake-up: two threads bounce a byte over two pipes, ROUND_TRIPS times
      (default 100000), first pinned to two different CPUs, then both to
      one CPU; prints the microseconds per round trip (two wake-ups each).
    - memory: maps MIB MiB (default 256), writes one byte per 4 KiB page,
      unmaps; three rounds, with huge pages asked for (MADV_HUGEPAGE) and
      without. The first round takes memory the kernel may have given back
      to a hypervisor; the later ones reuse what the first faulted in.
    - stalls: a watcher sleeps 1 ms at a time and counts the sleeps
      that end over 3 ms late (a stall: nothing on the machine ran it). It
      watches for SECONDS (default 2; 0 skips the test) in each of five
      conditions: quiet; one CPU kept busy; two CPUs kept busy; a process
      writing 512 bytes and calling fdatasync in a loop (a file in DIR,
      default "."); one CPU busy and that process together. The loads are
      processes of their own, as a broker and its clients are. A virtual
      machine whose host holds it to a CPU quota stalls in the last one,
      all its CPUs at once, once a quota period.
    - --watch: only the watcher, for SECONDS, one line a second
      ("HH:MM:SS stalls N stalled_ms X"), for bench/compare.sh to lay over
      the rows it runs meanwhile.
    - --sync-floor: only the disk. Events arrive evenly at RATE for
      SECONDS; commits run back to back, each writing what arrived before
      it began (a file in DIR) and calling fdatasync. Prints the commits'
      rate and times and each event's wait from arrival to the end of its
      commit (p50, p99, p99.9): what a broker that cost nothing but its
      syncs would show in the --fsync always latency row, on this disk.
      With --wakeups, a thread on one CPU wakes a thread on another and
      waits for its answer, that many times a second, beside the commits:
      the wake-ups a broker and its clients cause, without their work
      (thirty-second pass: a host that stops the machine under syncs and
      wake-ups together shows it here, with no broker running).
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int ping[2], pong[2];
    long round_trips;
    int cpu;        // the echo thread's
    bool pin_error; // it could not be pinned there
} s_bounce_t;

static int64_t
s_mono_ns (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) now.tv_sec * 1000000000LL + now.tv_nsec;
}

static int
s_pin (int cpu)
{
    cpu_set_t set;
    CPU_ZERO (&set);
    CPU_SET (cpu, &set);
    return pthread_setaffinity_np (pthread_self (), sizeof set, &set);
}

static void *
s_echo (void *arg)
{
    s_bounce_t *self = arg;
    self->pin_error = s_pin (self->cpu) != 0;
    char byte;
    for (long trip = 0; trip < self->round_trips; trip++)
        if (read (self->ping[0], &byte, 1) != 1 || write (self->pong[1], &byte, 1) != 1)
            break;
    return NULL;
}

//  Microseconds per round trip between a thread on cpu_a and one on
//  cpu_b, or -1 when the pipes, the thread or the pinning cannot be had.
static double
s_round_trip_us (long round_trips, int cpu_a, int cpu_b)
{
    s_bounce_t bounce = {.round_trips = round_trips, .cpu = cpu_b};
    if (s_pin (cpu_a) || pipe (bounce.ping) || pipe (bounce.pong))
        return -1;
    pthread_t echo;
    if (pthread_create (&echo, NULL, s_echo, &bounce))
        return -1;
    char byte = 'x';
    int64_t started = s_mono_ns ();
    long trip = 0;
    for (; trip < round_trips; trip++)
        if (write (bounce.ping[1], &byte, 1) != 1 || read (bounce.pong[0], &byte, 1) != 1)
            break;
    double elapsed_us = (double) (s_mono_ns () - started) / 1e3;
    pthread_join (echo, NULL);
    close (bounce.ping[0]);
    close (bounce.ping[1]);
    close (bounce.pong[0]);
    close (bounce.pong[1]);
    if (trip < round_trips || bounce.pin_error)
        return -1;
    return elapsed_us / (double) round_trips;
}

//  The first two CPUs this process may run on, into cpu; how many (0-2).
static int
s_first_cpus (int cpu[2], cpu_set_t *allowed)
{
    int found = 0;
    cpu[0] = cpu[1] = -1;
    if (sched_getaffinity (0, sizeof *allowed, allowed) == 0)
        for (int index = 0; index < CPU_SETSIZE && found < 2; index++)
            if (CPU_ISSET (index, allowed))
                cpu[found++] = index;
    return found;
}

static void
s_sleep_until_ns (int64_t when)
{
    struct timespec wake = {.tv_sec = when / 1000000000LL, .tv_nsec = when % 1000000000LL};
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &wake, NULL) == EINTR)
        ;
}

//  Wake-ups at a steady rate beside other work: a thread on one CPU wakes
//  the echo thread on another and waits for its answer, rate times a
//  second, until stopped. A round trip the machine could not run on time
//  is skipped, not made up in a burst.
typedef struct {
    s_bounce_t bounce;
    double rate;
    int cpu; // the waking thread's
    atomic_bool stop;
    long trips;     // round trips made
    double seconds; // from the waker's start until it saw stop
    bool failed;
    pthread_t echo, waker;
} s_wakeups_t;

static void *
s_waker (void *arg)
{
    s_wakeups_t *self = arg;
    self->failed = s_pin (self->cpu) != 0;
    double gap_ns = 1e9 / self->rate;
    int64_t start = s_mono_ns ();
    long slot = 0;
    char byte = 'w';
    int64_t now = start;
    while (!self->failed) {
        if (now > start + (int64_t) ((double) (slot + 1) * gap_ns))
            slot = (long) ((double) (now - start) / gap_ns);
        s_sleep_until_ns (start + (int64_t) ((double) slot++ * gap_ns));
        now = s_mono_ns ();
        //  Stop is looked at after the nap: a trip made after it would
        //  count against a time that has ended (the rate is at least 1/s,
        //  so the nap is at most a second)
        if (atomic_load_explicit (&self->stop, memory_order_relaxed))
            break;
        if (write (self->bounce.ping[1], &byte, 1) != 1 ||
            read (self->bounce.pong[0], &byte, 1) != 1)
            self->failed = true;
        else
            self->trips++;
    }
    self->seconds = (double) (now - start) / 1e9;
    close (self->bounce.ping[1]); // the echo reads the end of the pipe and returns
    self->bounce.ping[1] = -1;
    return NULL;
}

static void
s_wakeups_close (s_wakeups_t *self)
{
    int *fds[] = {&self->bounce.ping[0], &self->bounce.ping[1], &self->bounce.pong[0],
                  &self->bounce.pong[1]};
    for (size_t index = 0; index < sizeof fds / sizeof fds[0]; index++)
        if (*fds[index] != -1) {
            close (*fds[index]);
            *fds[index] = -1;
        }
}

//  Starts the waking thread on cpu[0] and the echo thread on cpu[1]; -1
//  with a reason on stderr when there are no pipes or threads.
static int
s_wakeups_start (s_wakeups_t *self, double rate, const int cpu[2])
{
    *self = (s_wakeups_t){
        .bounce = {.ping = {-1, -1}, .pong = {-1, -1}, .round_trips = LONG_MAX, .cpu = cpu[1]},
        .rate = rate,
        .cpu = cpu[0]};
    atomic_init (&self->stop, false);
    int error = 0;
    if (pipe (self->bounce.ping) || pipe (self->bounce.pong))
        error = errno;
    else
        error = pthread_create (&self->echo, NULL, s_echo, &self->bounce);
    if (error) {
        fprintf (stderr, "herald-machine-probe: cannot start the wake-up threads: %s\n",
                 strerror (error));
        s_wakeups_close (self);
        return -1;
    }
    error = pthread_create (&self->waker, NULL, s_waker, self);
    if (error) {
        fprintf (stderr, "herald-machine-probe: cannot start the wake-up threads: %s\n",
                 strerror (error));
        close (self->bounce.ping[1]); // the echo reads the end of the pipe and returns
        self->bounce.ping[1] = -1;
        pthread_join (self->echo, NULL);
        s_wakeups_close (self);
        return -1;
    }
    return 0;
}

//  Stops and joins the threads; -1 with a reason on stderr when they
//  could not be pinned or a round trip failed.
static int
s_wakeups_stop (s_wakeups_t *self)
{
    atomic_store (&self->stop, true);
    pthread_join (self->waker, NULL);
    pthread_join (self->echo, NULL);
    s_wakeups_close (self);
    if (self->failed || self->bounce.pin_error) {
        fprintf (stderr,
                 "herald-machine-probe: the wake-up threads could not run on CPUs %d and %d\n",
                 self->cpu, self->bounce.cpu);
        return -1;
    }
    return 0;
}

//  MB/s of first writes to mib fresh MiB, or -1 when it cannot be mapped.
static double
s_touch_rate (size_t mib, bool huge)
{
    size_t bytes = mib << 20;
    uint8_t *memory =
        mmap (NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED)
        return -1;
#ifdef MADV_HUGEPAGE
    madvise (memory, bytes, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
#endif
    int64_t started = s_mono_ns ();
    for (size_t offset = 0; offset < bytes; offset += 4096)
        memory[offset] = 1;
    double elapsed = (double) (s_mono_ns () - started) / 1e9;
    munmap (memory, bytes);
    return (double) bytes / 1e6 / elapsed;
}

//  ---------------------------------------------------------------------
//  Stalls

#define S_WATCH_SLEEP_NS 1000000LL // the watcher's nap
#define S_STALL_NS       3000000LL // a nap this much too long is a stall

#define S_STALLS_KEPT 1024 // stall times kept for their spacing

typedef struct {
    long stalls;
    double stalled_ms, longest_ms;
    int64_t at_ns[S_STALLS_KEPT]; // when the first ones began
} s_stalls_t;

//  One nap of the watcher, counted into tally when it overran.
static void
s_nap (s_stalls_t *tally)
{
    struct timespec nap = {0, S_WATCH_SLEEP_NS};
    int64_t before = s_mono_ns ();
    nanosleep (&nap, NULL);
    int64_t late = s_mono_ns () - before - S_WATCH_SLEEP_NS;
    if (late > S_STALL_NS) {
        double late_ms = (double) late / 1e6;
        if (tally->stalls < S_STALLS_KEPT)
            tally->at_ns[tally->stalls] = before;
        tally->stalls++;
        tally->stalled_ms += late_ms;
        if (late_ms > tally->longest_ms)
            tally->longest_ms = late_ms;
    }
}

static int
s_compare_ns (const void *a, const void *b)
{
    int64_t left = *(const int64_t *) a, right = *(const int64_t *) b;
    return (left > right) - (left < right);
}

//  The median time between one stall's start and the next one's, in ms
//  (0 with fewer than two): a hypervisor's quota period shows here.
static double
s_stall_spacing_ms (s_stalls_t *tally)
{
    long kept = tally->stalls < S_STALLS_KEPT ? tally->stalls : S_STALLS_KEPT;
    if (kept < 2)
        return 0;
    for (long index = 0; index + 1 < kept; index++)
        tally->at_ns[index] = tally->at_ns[index + 1] - tally->at_ns[index];
    qsort (tally->at_ns, (size_t) kept - 1, sizeof tally->at_ns[0], s_compare_ns);
    return (double) tally->at_ns[(kept - 1) / 2] / 1e6;
}

//  Shared with the load processes: a broker and its clients are
//  processes, and on some hypervisors switching between processes costs
//  the host far more than switching between threads of one.
typedef struct {
    atomic_bool stop;
    atomic_long flushes; // the flusher's count
    atomic_int error;    // the flusher's errno when it failed
} s_load_t;

static void
s_spin (s_load_t *load)
{
    volatile uint64_t counter = 0;
    while (!atomic_load_explicit (&load->stop, memory_order_relaxed))
        counter++;
}

//  A new file in dir, already unlinked (gone when closed); -1 with errno.
static int
s_scratch_file (const char *dir)
{
    char path[4096];
    snprintf (path, sizeof path, "%s/herald-machine-probe.XXXXXX", dir);
    int fd = mkstemp (path);
    if (fd != -1)
        unlink (path);
    return fd;
}

//  Overwrites the start of a file of its own and makes it durable, again
//  and again: what a broker's commit asks of the disk.
static void
s_flush (s_load_t *load, const char *dir)
{
    int fd = s_scratch_file (dir);
    if (fd == -1) {
        atomic_store (&load->error, errno);
        return;
    }
    char block[512];
    memset (block, 'h', sizeof block);
    while (!atomic_load_explicit (&load->stop, memory_order_relaxed)) {
        if (pwrite (fd, block, sizeof block, 0) != (ssize_t) sizeof block || fdatasync (fd)) {
            atomic_store (&load->error, errno ? errno : EIO);
            break;
        }
        atomic_fetch_add_explicit (&load->flushes, 1, memory_order_relaxed);
    }
    close (fd);
}

//  Watches for seconds with spinners processes keeping CPUs busy and,
//  when flush, a flushing process; prints one line. Nothing is pinned:
//  the scheduler places the processes as it would a broker's.
static int
s_stall_case (const char *label, double seconds, int spinners, bool flush, const char *dir)
{
    s_load_t *load =
        mmap (NULL, sizeof *load, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (load == MAP_FAILED) {
        fprintf (stderr, "herald-machine-probe: cannot map shared memory: %s\n", strerror (errno));
        return -1;
    }
    atomic_init (&load->stop, false);
    atomic_init (&load->flushes, 0);
    atomic_init (&load->error, 0);
    int wanted = spinners + (flush ? 1 : 0), started = 0, fork_error = 0;
    pid_t children[3];
    fflush (stdout);
    for (; started < wanted; started++) {
        pid_t child = fork ();
        if (child == -1) {
            fork_error = errno;
            break;
        }
        if (child == 0) {
            if (started < spinners)
                s_spin (load);
            else
                s_flush (load, dir);
            _exit (0);
        }
        children[started] = child;
    }
    s_stalls_t tally = {0};
    int64_t end = s_mono_ns () + (int64_t) (seconds * 1e9);
    while (started == wanted && s_mono_ns () < end && !atomic_load (&load->error))
        s_nap (&tally);
    atomic_store (&load->stop, true);
    for (int index = 0; index < started; index++)
        waitpid (children[index], NULL, 0);
    int error = atomic_load (&load->error);
    long flushes = atomic_load (&load->flushes);
    munmap (load, sizeof *load);
    if (started < wanted) {
        fprintf (stderr, "herald-machine-probe: cannot start a load process: %s\n",
                 strerror (fork_error));
        return -1;
    }
    if (error) {
        fprintf (stderr, "herald-machine-probe: cannot write and sync a file in %s: %s\n", dir,
                 strerror (error));
        return -1;
    }
    printf ("  %-30s %6ld stalls, %7.1f ms stalled a second, longest %6.1f ms", label, tally.stalls,
            tally.stalled_ms / seconds, tally.longest_ms);
    double spacing_ms = s_stall_spacing_ms (&tally);
    if (spacing_ms > 0)
        printf (", every %6.1f ms", spacing_ms);
    else
        printf (", every      - ms");
    if (flush)
        printf (", %6.0f fdatasync/s", (double) flushes / seconds);
    printf ("\n");
    return 0;
}

static int
s_stall_test (double seconds, const char *dir)
{
    printf ("stalls (a 1 ms sleep that ends over 3 ms late), %.1f s each:\n", seconds);
    if (s_stall_case ("quiet", seconds, 0, false, dir) ||
        s_stall_case ("one CPU busy", seconds, 1, false, dir) ||
        s_stall_case ("two CPUs busy", seconds, 2, false, dir) ||
        s_stall_case ("fdatasync loop", seconds, 0, true, dir) ||
        s_stall_case ("one CPU busy + fdatasync loop", seconds, 1, true, dir))
        return -1;
    return 0;
}

//  ---------------------------------------------------------------------
//  Sync floor

#define S_FLOOR_RECORD_BYTES 200        // about a W2 event's record in the log
#define S_FLOOR_FILE_BYTES   (64 << 20) // written once, then overwritten
#define S_FLOOR_CHUNK_BYTES  (1 << 20)
#define S_FLOOR_EVENTS_MAX   10000000 // RATE x SECONDS: 320 MB of timestamps
#define S_FLOOR_SECONDS_MAX  86400
#define S_WAKEUPS_MAX        1000000 // round trips a second: past any machine's

//  The value at quantile q of sorted values (count > 0)
static int64_t
s_quantile (const int64_t *sorted, long count, double q)
{
    long index = (long) (q * (double) count);
    return sorted[index < count ? index : count - 1];
}

//  One commit: bytes written at *offset in chunks (wrapping at the end of
//  the file), then fdatasync. Returns 0, or the errno of the failure.
static int
s_floor_commit (int fd, const char *chunk, size_t bytes, off_t *offset)
{
    while (bytes > 0) {
        size_t piece = bytes < S_FLOOR_CHUNK_BYTES ? bytes : S_FLOOR_CHUNK_BYTES;
        if (*offset + (off_t) piece > S_FLOOR_FILE_BYTES)
            *offset = 0;
        errno = 0;
        if (pwrite (fd, chunk, piece, *offset) != (ssize_t) piece)
            return errno ? errno : ENOSPC; // a short write: the disk is full
        *offset += (off_t) piece;
        bytes -= piece;
    }
    return fdatasync (fd) ? errno : 0;
}

//  A scratch file in dir, filled with zeros and synced, so that commits
//  overwrite blocks as Herald's do in its prepared segments; -1 with
//  errno on failure.
static int
s_floor_file (const char *dir, char *chunk)
{
    int fd = s_scratch_file (dir);
    if (fd == -1)
        return -1;
    memset (chunk, 0, S_FLOOR_CHUNK_BYTES);
    off_t offset = 0;
    int error = s_floor_commit (fd, chunk, S_FLOOR_FILE_BYTES, &offset);
    if (error) {
        close (fd);
        errno = error;
        return -1;
    }
    return fd;
}

//  --sync-floor RATE SECONDS: the latency of a broker that costs nothing
//  but its commits. Events "arrive" evenly at rate; commits run back to
//  back, each writing the records that arrived before it began and
//  calling fdatasync; when none has arrived, the committer sleeps until one
//  does. An event is on disk when the first commit that began after it
//  ends. Every delivery Herald makes with --fsync always waits for that,
//  so these percentiles bound its latency row from below on this disk.
static int
s_sync_floor (double rate, double seconds, double wake_rate, const char *dir)
{
    long events = (long) (rate * seconds);
    int64_t *begun = malloc ((size_t) events * sizeof *begun);
    int64_t *ended = malloc ((size_t) events * sizeof *ended);
    long *upto = malloc ((size_t) events * sizeof *upto); // events on disk after each commit
    int64_t *latency = malloc ((size_t) events * sizeof *latency);
    char *chunk = malloc (S_FLOOR_CHUNK_BYTES);
    int error = 0, fd = -1;
    //  Before the file is written: on one CPU there is nothing to measure
    cpu_set_t allowed;
    int cpu[2];
    if (wake_rate > 0 && s_first_cpus (cpu, &allowed) < 2) {
        fprintf (stderr, "herald-machine-probe: --wakeups needs two CPUs to run on\n");
        error = EINVAL;
    } else if (!begun || !ended || !upto || !latency || !chunk) {
        fprintf (stderr, "herald-machine-probe: no memory for %ld events\n", events);
        error = ENOMEM;
    } else if ((fd = s_floor_file (dir, chunk)) == -1) {
        error = errno;
        fprintf (stderr, "herald-machine-probe: cannot write and sync a file in %s: %s\n", dir,
                 strerror (error));
    }
    s_wakeups_t wakeups;
    bool waking = false;
    if (!error && wake_rate > 0) {
        if (s_wakeups_start (&wakeups, wake_rate, cpu))
            error = EAGAIN;
        else
            waking = true;
    }
    double gap_ns = 1e9 / rate;
    int64_t start = s_mono_ns ();
    long commits = 0, committed = 0;
    off_t offset = 0;
    while (!error && committed < events) {
        int64_t now = s_mono_ns ();
        long arrived = (long) ((double) (now - start) / gap_ns) + 1;
        if (arrived > events)
            arrived = events;
        if (arrived <= committed) {
            s_sleep_until_ns (start + (int64_t) ((double) committed * gap_ns) + 1);
            continue;
        }
        begun[commits] = now;
        error = s_floor_commit (fd, chunk, (size_t) (arrived - committed) * S_FLOOR_RECORD_BYTES,
                                &offset);
        if (error)
            fprintf (stderr, "herald-machine-probe: cannot write and sync a file in %s: %s\n", dir,
                     strerror (error));
        ended[commits] = s_mono_ns ();
        upto[commits++] = committed = arrived;
    }
    if (waking && s_wakeups_stop (&wakeups) && !error)
        error = EAGAIN;
    if (fd != -1)
        close (fd);
    if (!error) {
        //  Each event waits for the commit that took it, as the committer
        //  counted it in (no second reading of the clock's arithmetic)
        long event = 0;
        for (long index = 0; index < commits; index++)
            for (; event < upto[index]; event++)
                latency[event] = ended[index] - (start + (int64_t) ((double) event * gap_ns));
        for (long index = 0; index < commits; index++)
            ended[index] -= begun[index]; // now each commit's own time
        qsort (latency, (size_t) events, sizeof *latency, s_compare_ns);
        qsort (ended, (size_t) commits, sizeof *ended, s_compare_ns);
        printf ("sync floor: %.0f events/s for %.1f s, %.0f commits/s of %.1f events; commit p50 "
                "%.0f p99 %.0f us; event p50 %.0f p99 %.0f p99.9 %.0f us",
                rate, seconds, (double) commits / seconds, (double) events / (double) commits,
                (double) s_quantile (ended, commits, 0.5) / 1e3,
                (double) s_quantile (ended, commits, 0.99) / 1e3,
                (double) s_quantile (latency, events, 0.5) / 1e3,
                (double) s_quantile (latency, events, 0.99) / 1e3,
                (double) s_quantile (latency, events, 0.999) / 1e3);
        if (waking)
            printf ("; beside %.0f wake-up round trips/s between CPUs %d and %d",
                    wakeups.seconds > 0 ? (double) wakeups.trips / wakeups.seconds : 0, wakeups.cpu,
                    wakeups.bounce.cpu);
        printf ("\n");
    }
    free (begun), free (ended), free (upto), free (latency), free (chunk);
    return error ? -1 : 0;
}

//  --watch: one line a second, wall-clock stamped, until seconds pass.
static void
s_watch (double seconds)
{
    setvbuf (stdout, NULL, _IOLBF, 0);
    int64_t end = s_mono_ns () + (int64_t) (seconds * 1e9);
    time_t second = time (NULL);
    s_stalls_t tally = {0};
    while (s_mono_ns () < end) {
        s_nap (&tally);
        time_t now = time (NULL);
        if (now != second) {
            struct tm local;
            localtime_r (&second, &local);
            printf ("%02d:%02d:%02d stalls %ld stalled_ms %.1f\n", local.tm_hour, local.tm_min,
                    local.tm_sec, tally.stalls, tally.stalled_ms);
            tally = (s_stalls_t){0};
            second = now;
        }
    }
}

int
main (int argc, char *argv[])
{
    double stall_seconds = 2, watch_seconds = 0, floor_rate = 0, floor_seconds = 0, wake_rate = 0;
    bool stalls_given = false;
    const char *dir = ".";
    long numbers[2] = {100000, 256}; // ROUND_TRIPS, MIB
    int positional = 0;
    bool usage_error = false;
    for (int arg = 1; arg < argc && !usage_error; arg++) {
        char *end = NULL;
        if (strcmp (argv[arg], "--stalls") == 0 && arg + 1 < argc) {
            stall_seconds = strtod (argv[++arg], &end);
            stalls_given = true;
        } else if (strcmp (argv[arg], "--watch") == 0 && arg + 1 < argc)
            watch_seconds = strtod (argv[++arg], &end);
        else if (strcmp (argv[arg], "--sync-floor") == 0 && arg + 2 < argc) {
            floor_rate = strtod (argv[++arg], &end);
            if (*end || end == argv[arg])
                usage_error = true;
            floor_seconds = strtod (argv[++arg], &end);
        } else if (strcmp (argv[arg], "--wakeups") == 0 && arg + 1 < argc)
            wake_rate = strtod (argv[++arg], &end);
        else if (strcmp (argv[arg], "--dir") == 0 && arg + 1 < argc)
            dir = argv[++arg];
        else if (argv[arg][0] != '-' && positional < 2)
            numbers[positional++] = strtol (argv[arg], &end, 10);
        else
            usage_error = true;
        if (end && (*end || end == argv[arg]))
            usage_error = true;
    }
    long round_trips = numbers[0], mib = numbers[1];
    if (usage_error || round_trips < 1 || mib < 1 || !(stall_seconds >= 0) ||
        !(watch_seconds >= 0) || !(floor_rate >= 0) || !(floor_seconds >= 0) ||
        (floor_rate > 0) != (floor_seconds > 0) ||
        (floor_rate > 0 && (floor_rate * floor_seconds < 1 || floor_seconds > S_FLOOR_SECONDS_MAX ||
                            stalls_given || watch_seconds > 0 || positional > 0)) ||
        floor_rate * floor_seconds > S_FLOOR_EVENTS_MAX || !(wake_rate >= 0) ||
        (wake_rate > 0 && wake_rate < 1) || wake_rate > S_WAKEUPS_MAX ||
        (wake_rate > 0 && floor_rate == 0)) {
        fprintf (stderr, "usage: herald-machine-probe [--stalls SECONDS] [--dir DIR] "
                         "[ROUND_TRIPS [MIB]]\n"
                         "       herald-machine-probe --watch SECONDS\n"
                         "       herald-machine-probe --sync-floor RATE SECONDS [--wakeups RATE] "
                         "[--dir DIR]\n");
        return 2;
    }
    if (floor_rate > 0)
        return s_sync_floor (floor_rate, floor_seconds, wake_rate, dir) ? 1 : 0;
    if (watch_seconds > 0) {
        s_watch (watch_seconds);
        return 0;
    }
    cpu_set_t allowed;
    int cpu[2];
    int found = s_first_cpus (cpu, &allowed);
    if (found == 0) {
        fprintf (stderr, "herald-machine-probe: no CPU to run on: %s\n", strerror (errno));
        return 1;
    }
    printf ("wake-up round trip (two wake-ups), %ld trips:\n", round_trips);
    if (found == 2)
        printf ("  threads on CPUs %d and %d: %8.2f us\n", cpu[0], cpu[1],
                s_round_trip_us (round_trips, cpu[0], cpu[1]));
    printf ("  both threads on CPU %d: %8.2f us\n", cpu[0],
            s_round_trip_us (round_trips, cpu[0], cpu[0]));
    for (int huge = 1; huge >= 0; huge--) {
        printf ("first touch of %ld MiB, %s pages, MB/s per round:", mib, huge ? "huge" : "4 KiB");
        for (int round = 0; round < 3; round++)
            printf (" %8.0f", s_touch_rate ((size_t) mib, huge));
        printf ("\n");
    }
    //  The round trips pinned this thread; the stall test runs unpinned
    if (stall_seconds > 0 &&
        (sched_setaffinity (0, sizeof allowed, &allowed) || s_stall_test (stall_seconds, dir)))
        return 1;
    return 0;
}
