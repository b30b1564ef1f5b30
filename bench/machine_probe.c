/*  herald-machine-probe — what this machine charges for the two things
    that dominate Herald's benchmarks once its own code is lean: waking a
    thread, and touching memory for the first time (docs/PERFORMANCE.md,
    twelfth pass). Neither is Herald's; both explain its ratios to raw
    ZeroMQ on a given host.

    herald-machine-probe [ROUND_TRIPS [MIB]]     (defaults 100000, 256)

    - wake-up: two threads bounce a byte over two pipes, ROUND_TRIPS times,
      first pinned to two different CPUs, then both to one CPU; prints the
      microseconds per round trip (two wake-ups each).
    - memory: maps MIB MiB, writes one byte per 4 KiB page, unmaps; three
      rounds, with huge pages asked for (MADV_HUGEPAGE) and without. The
      first round takes memory the kernel may have given back to a
      hypervisor; the later ones reuse what the first faulted in.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    int ping[2], pong[2];
    long round_trips;
    int cpu;        // the echo thread's
    bool pin_error; // it could not be pinned there
} s_bounce_t;

static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec + (double) now.tv_nsec * 1e-9;
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
    double started = s_now ();
    long trip = 0;
    for (; trip < round_trips; trip++)
        if (write (bounce.ping[1], &byte, 1) != 1 || read (bounce.pong[0], &byte, 1) != 1)
            break;
    double elapsed = s_now () - started;
    pthread_join (echo, NULL);
    close (bounce.ping[0]);
    close (bounce.ping[1]);
    close (bounce.pong[0]);
    close (bounce.pong[1]);
    if (trip < round_trips || bounce.pin_error)
        return -1;
    return elapsed * 1e6 / (double) round_trips;
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
    double started = s_now ();
    for (size_t offset = 0; offset < bytes; offset += 4096)
        memory[offset] = 1;
    double elapsed = s_now () - started;
    munmap (memory, bytes);
    return (double) bytes / 1e6 / elapsed;
}

int
main (int argc, char *argv[])
{
    long round_trips = argc > 1 ? atol (argv[1]) : 100000;
    long mib = argc > 2 ? atol (argv[2]) : 256;
    if (round_trips < 1 || mib < 1 || argc > 3) {
        fprintf (stderr, "usage: herald-machine-probe [ROUND_TRIPS [MIB]]\n");
        return 2;
    }
    //  The first two CPUs this process may run on
    cpu_set_t allowed;
    int cpu[2] = {-1, -1}, found = 0;
    if (sched_getaffinity (0, sizeof allowed, &allowed) == 0)
        for (int index = 0; index < CPU_SETSIZE && found < 2; index++)
            if (CPU_ISSET (index, &allowed))
                cpu[found++] = index;
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
    return 0;
}
