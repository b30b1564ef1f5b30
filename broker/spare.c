/*  spare — a zero-filled segment file made ahead by a thread. See spare.h.

    The thread and the caller share the state under one mutex; the thread
    does its writing without it, so hd_spare_take never waits for a write.
    Only hd_spare_release and destroy wait, for the chunk being written.
*/
#include "spare.h"
#include "file.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define S_CHUNK    (256u << 10) // bytes per write, each sent to the disk at once
#define S_PACE     2            // zeros per byte the log wrote since the last take that got a file
#define S_LEAD_DIV 4            // past a take the log writes size / this before zeros are paced in
#define S_PACE_NAP 5            // ms between looks at the log's progress when ahead
#define S_IDLE_MS  20           // a log that wrote nothing for this long is idle: no pacing
#define S_NICE     10           // the thread's CPU priority (nice value)

typedef enum {
    S_WANTED, // the thread should make a file (once retry_at_ms has passed)
    S_MAKING, // the thread is writing it
    S_READY,  // whole and synced, waiting to be taken
    S_PAUSED  // released: nothing until the next take
} s_state_t;

struct _hd_spare_t {
    int dir_fd;
    char *name;
    uint64_t size;
    uint64_t min_free;
    int64_t retry_ms;
    uint8_t *zeros;

    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;  // state, stopping or cancel changed
    _Atomic s_state_t state; // changed under lock; hd_spare_ready looks without it
    bool stopping;
    int64_t retry_at_ms;
    atomic_bool cancel;               // the file being made is not wanted any more
    atomic_uint_fast64_t bytes;       // on disk now
    atomic_uint_fast64_t log_written; // bytes the log wrote since the last take that got a file
    atomic_bool leading;              // that take's segment is in its lead (see s_make)
    _Atomic int64_t idle_ms;          // S_IDLE_MS, or what a test set
    hd_spare_stats_t stats;
};

//  Waits on changed until deadline_ms (zclock_mono, CLOCK_MONOTONIC on
//  Linux like the condition's clock), or without one when < 0.
static void
s_wait (hd_spare_t *self, int64_t deadline_ms)
{
    if (deadline_ms < 0) {
        pthread_cond_wait (&self->changed, &self->lock);
        return;
    }
    struct timespec until = {.tv_sec = deadline_ms / 1000,
                             .tv_nsec = (long) (deadline_ms % 1000) * 1000000};
    pthread_cond_timedwait (&self->changed, &self->lock, &until);
}

static int
s_write_zeros (hd_spare_t *self, int fd, uint64_t offset, size_t size)
{
    if (hd_file_write_at (fd, self->zeros, size, offset) != 0)
        return -1;
    atomic_fetch_add (&self->bytes, (uint64_t) size);
    return 0;
}

//  Writes the whole file. Returns 0, or -1 with errno (ECANCELED when
//  cancel was set); the caller removes what was written.
static int
s_make (hd_spare_t *self)
{
    struct statvfs space;
    if (fstatvfs (self->dir_fd, &space) != 0)
        return -1;
    uint64_t free_bytes = (uint64_t) space.f_bavail * space.f_frsize;
    if (free_bytes < self->size + self->min_free) {
        errno = ENOSPC;
        return -1;
    }
    int fd = openat (self->dir_fd, self->name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    atomic_store (&self->bytes, 0);
    int rc = 0;
    //  The log is busy until it has written nothing for idle_ms
    uint64_t log_written = atomic_load (&self->log_written);
    int64_t log_wrote_ms = zclock_mono ();
    for (uint64_t offset = 0; offset < self->size && rc == 0;) {
        if (atomic_load (&self->cancel)) {
            errno = ECANCELED;
            rc = -1;
            break;
        }
        //  Every write here delays the log's next fdatasync (the device
        //  flush waits for it), so while the log is busy zeros go out in
        //  step with its own writes rather than in one burst. They start
        //  late, once the segment being filled is a quarter full, and are
        //  done when it is three quarters full: a burst of traffic shorter
        //  than that runs with no zeros beside it, and the ones an idle
        //  spell writes first need not be paced in at all. A file that is
        //  late (the log began a segment by appending) has no lead, and
        //  its count runs on from the last take that got a file, so it
        //  usually goes out at once.
        int64_t now = zclock_mono ();
        if (atomic_load (&self->log_written) != log_written) {
            log_written = atomic_load (&self->log_written);
            log_wrote_ms = now;
        }
        bool idle = now - log_wrote_ms >= atomic_load (&self->idle_ms);
        uint64_t lead = atomic_load (&self->leading) ? self->size / S_LEAD_DIV : 0;
        uint64_t paced = log_written > lead ? log_written - lead : 0;
        if (!idle && (log_written < lead || offset > S_PACE * paced)) {
            struct timespec nap = {0, S_PACE_NAP * 1000000L};
            nanosleep (&nap, NULL);
            continue;
        }
        size_t chunk = self->size - offset < S_CHUNK ? (size_t) (self->size - offset) : S_CHUNK;
        rc = s_write_zeros (self, fd, offset, chunk);
        //  Written back now, and the chunk before it waited for, so that at
        //  most two chunks are ever on their way to the disk ahead of one
        //  of the log's fdatasyncs (an fdatasync here would also commit the
        //  file system's journal each time)
        if (rc == 0)
            sync_file_range (fd, (off_t) offset, (off_t) chunk, SYNC_FILE_RANGE_WRITE);
        if (rc == 0 && offset >= S_CHUNK)
            sync_file_range (fd, (off_t) (offset - S_CHUNK), S_CHUNK,
                             SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                 SYNC_FILE_RANGE_WAIT_AFTER);
        offset += chunk;
    }
    //  Once, at the end: the blocks and the file's size are durable before
    //  the log writes into it, so its fdatasyncs need not commit them
    if (rc == 0)
        rc = fdatasync (fd);
    int saved = errno;
    close (fd);
    errno = saved;
    return rc;
}

static void
s_remove_file (hd_spare_t *self)
{
    unlinkat (self->dir_fd, self->name, 0);
    atomic_store (&self->bytes, 0);
}

static void *
s_run (void *arg)
{
    hd_spare_t *self = arg;
    //  Zeros can wait; the broker's own thread and its clients cannot
    //  (Linux: a thread's nice value is its own). Failure changes nothing.
    if (setpriority (PRIO_PROCESS, (id_t) syscall (SYS_gettid), S_NICE) != 0) {
    }
    pthread_mutex_lock (&self->lock);
    while (!self->stopping) {
        if (self->state != S_WANTED) {
            s_wait (self, -1);
            continue;
        }
        if (zclock_mono () < self->retry_at_ms) {
            s_wait (self, self->retry_at_ms);
            continue;
        }
        self->state = S_MAKING;
        pthread_mutex_unlock (&self->lock);
        int rc = s_make (self);
        int error = errno;
        pthread_mutex_lock (&self->lock);
        self->stats.bytes_written += atomic_load (&self->bytes);
        if (rc == 0) {
            self->state = S_READY;
            self->stats.prepared++;
        } else {
            s_remove_file (self);
            if (error == ECANCELED)
                self->state = S_PAUSED;
            else {
                self->stats.failed++;
                self->state = S_WANTED;
                self->retry_at_ms = zclock_mono () + self->retry_ms;
            }
        }
        atomic_store (&self->cancel, false);
        pthread_cond_broadcast (&self->changed);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

hd_spare_t *
hd_spare_new (int dir_fd, const char *name, uint64_t size, uint64_t min_free, int64_t retry_ms,
              char *error, size_t error_size)
{
    hd_spare_t *self = calloc (1, sizeof *self);
    if (!self || !(self->name = strdup (name)) || !(self->zeros = calloc (1, S_CHUNK))) {
        snprintf (error, error_size, "out of memory");
        if (self)
            free (self->name);
        free (self);
        return NULL;
    }
    self->dir_fd = dir_fd;
    self->size = size;
    self->min_free = min_free;
    self->retry_ms = retry_ms;
    self->state = S_WANTED;
    atomic_init (&self->cancel, false);
    atomic_init (&self->bytes, 0);
    atomic_init (&self->log_written, 0);
    atomic_init (&self->leading, false);
    atomic_init (&self->idle_ms, S_IDLE_MS);
    pthread_condattr_t attributes;
    pthread_condattr_init (&attributes);
    pthread_condattr_setclock (&attributes, CLOCK_MONOTONIC);
    pthread_cond_init (&self->changed, &attributes);
    pthread_condattr_destroy (&attributes);
    pthread_mutex_init (&self->lock, NULL);
    int rc = pthread_create (&self->thread, NULL, s_run, self);
    if (rc != 0) {
        snprintf (error, error_size, "cannot start the segment preparer: %s", strerror (rc));
        pthread_cond_destroy (&self->changed);
        pthread_mutex_destroy (&self->lock);
        free (self->zeros);
        free (self->name);
        free (self);
        return NULL;
    }
    return self;
}

void
hd_spare_destroy (hd_spare_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_spare_t *self = *self_p;
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    atomic_store (&self->cancel, true);
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->thread, NULL);
    s_remove_file (self);
    pthread_cond_destroy (&self->changed);
    pthread_mutex_destroy (&self->lock);
    free (self->zeros);
    free (self->name);
    free (self);
    *self_p = NULL;
}

uint64_t
hd_spare_take (hd_spare_t *self, const char *segment_name)
{
    uint64_t taken = 0;
    pthread_mutex_lock (&self->lock);
    if (self->state == S_READY) {
        if (renameat (self->dir_fd, self->name, self->dir_fd, segment_name) == 0) {
            taken = self->size;
            self->stats.taken++;
            atomic_store (&self->bytes, 0);
            atomic_store (&self->log_written, 0);
            atomic_store (&self->leading, true);
        } else {
            //  Whatever is wrong with it, make a new one, after a pause
            s_remove_file (self);
            self->stats.failed++;
            self->retry_at_ms = zclock_mono () + self->retry_ms;
            atomic_store (&self->leading, false);
        }
        self->state = S_WANTED;
    } else {
        //  The log appends to a segment of its own until a file is ready,
        //  and each fdatasync there costs more: the file must not wait
        atomic_store (&self->leading, false);
        if (self->state == S_PAUSED)
            self->state = S_WANTED;
    }
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    return taken;
}

uint64_t
hd_spare_release (hd_spare_t *self)
{
    uint64_t held = 0;
    pthread_mutex_lock (&self->lock);
    if (self->state == S_MAKING) {
        //  What it holds now; the thread removes it after its current chunk
        held = atomic_load (&self->bytes);
        atomic_store (&self->cancel, true);
        while (self->state == S_MAKING)
            s_wait (self, -1);
    }
    if (self->state == S_READY) {
        held = atomic_load (&self->bytes);
        s_remove_file (self);
    }
    if (held)
        self->stats.released++;
    self->state = S_PAUSED;
    pthread_mutex_unlock (&self->lock);
    return held;
}

void
hd_spare_note_written (hd_spare_t *self, uint64_t bytes)
{
    atomic_fetch_add_explicit (&self->log_written, bytes, memory_order_relaxed);
}

void
hd_spare_set_idle_ms (hd_spare_t *self, int64_t idle_ms)
{
    atomic_store (&self->idle_ms, idle_ms);
}

bool
hd_spare_ready (hd_spare_t *self)
{
    return atomic_load_explicit (&self->state, memory_order_relaxed) == S_READY;
}

uint64_t
hd_spare_bytes (hd_spare_t *self)
{
    return atomic_load (&self->bytes);
}

void
hd_spare_stats (hd_spare_t *self, hd_spare_stats_t *stats)
{
    pthread_mutex_lock (&self->lock);
    *stats = self->stats;
    pthread_mutex_unlock (&self->lock);
}

bool
hd_spare_wait_ready (hd_spare_t *self, int64_t timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    pthread_mutex_lock (&self->lock);
    while (self->state != S_READY && zclock_mono () < deadline)
        s_wait (self, deadline);
    bool ready = self->state == S_READY;
    pthread_mutex_unlock (&self->lock);
    return ready;
}
