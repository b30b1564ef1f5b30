/*  bench.h — herald-bench: the shared-memory control file and the roles.

    The coordinator (herald-bench without --role) creates one control file
    per run, maps it, and fork+execs itself as publishers, subscribers and
    workers (--role publisher|subscriber|worker --ctl PATH --index I). Every
    process maps the same file. It carries the run parameters, readiness and
    stop flags, per-process counters and, per event, a receipt count (one
    byte) and the latency of the first receipt. None of it crosses the broker.
*/
#ifndef HERALD_BENCH_H_INCLUDED
#define HERALD_BENCH_H_INCLUDED

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HB_MAGIC         0x4842454e43483031ULL // "HBENCH01"
#define HB_PAYLOAD_MAGIC 0x48424556u           // "HBEV"
#define HB_PROBE_SEQ     0xFFFFFFFFu
#define HB_MAX_RECV      64
#define HB_MAX_PUB       16
#define HB_TEXT          256
#define HB_HDR_SPACE     65536
#define HB_MIN_PAYLOAD   16

typedef enum { HB_W1 = 1, HB_W2 = 2 } hb_workload_t;
//  Who calls a W2 worker's handler
typedef enum {
    HB_HANDLERS_DEFAULT = 0, // the library's choice (inline at concurrency 1)
    HB_HANDLERS_INLINE = 1,  // hd_worker_set_inline true
    HB_HANDLERS_THREADS = 2  // hd_worker_set_inline false
} hb_handlers_t;

//  Start of every payload; the rest is filler.
typedef struct {
    uint32_t magic;
    uint32_t seq;
    uint64_t sched_ns; // CLOCK_MONOTONIC: scheduled send time
} hb_payload_t;

//  One subscriber (W1) or worker (W2). Written by that process only.
typedef struct {
    _Atomic uint32_t ready;      // subscribed / joined
    _Atomic uint32_t probe_seen; // W1: saw a probe event
    _Atomic uint32_t exited;     // left its loop, counters final
    _Atomic uint32_t failed;     // could not connect / join
    _Atomic uint64_t count;      // receipts, duplicates included
    _Atomic uint64_t distinct;   // first receipts (W1: per subscriber; W2: of the run)
    _Atomic uint64_t first_ns;   // first receipt
    _Atomic uint64_t last_ns;    // last first-receipt
    _Atomic uint64_t malformed;  // payloads we could not read
    _Atomic uint64_t gaps;       // W1: hd_subscriber_gaps at exit
    char error[HB_TEXT];
} hb_recv_t;

//  One publisher. Written by that process only.
typedef struct {
    _Atomic uint64_t sent;
    _Atomic uint64_t confirmed;
    _Atomic uint64_t rejected;
    _Atomic uint64_t resent;
    _Atomic uint64_t end_ns; // last send, flush included
    _Atomic uint32_t done;
    _Atomic uint32_t failed;
    char error[HB_TEXT];
} hb_pub_t;

typedef struct {
    uint64_t magic;
    uint32_t workload; // hb_workload_t
    uint32_t events;
    uint32_t nrecv;
    uint32_t npub;
    uint32_t credit;
    uint32_t handlers; // W2 workers: hb_handlers_t
    uint32_t window;
    uint32_t payload_size;
    uint32_t arrays; // receipt arrays: nrecv for W1, 1 for W2
    double rate;     // events/s over all publishers, 0: as fast as possible
    uint64_t deadline_ns;
    char broker[HB_TEXT];
    char xpub[HB_TEXT];
    char type[HB_TEXT]; // event type (also the subscription prefix / pool filter)
    char pool[HB_TEXT]; // W2 pool name
    char id_prefix[64]; // unique per run

    _Atomic uint32_t go;        // coordinator: every receiver is ready
    _Atomic uint64_t start_ns;  // publisher 0: counted sending starts at
    _Atomic uint32_t stop;      // coordinator: receivers leave
    _Atomic uint64_t processed; // W2: distinct events processed
    _Atomic uint64_t done_ns;   // W2: when processed reached events
    hb_recv_t recv[HB_MAX_RECV];
    hb_pub_t pub[HB_MAX_PUB];
} hb_hdr_t;

_Static_assert(sizeof (hb_hdr_t) <= HB_HDR_SPACE, "control header too big");

//  A mapped control file.
typedef struct {
    hb_hdr_t *hdr;
    _Atomic uint8_t *cnt; // [arrays][events] receipts, saturating in practice at 255
    uint64_t *lat;        // [arrays][events] first-receipt latency, ns
    size_t size;
} hb_ctl_t;

uint64_t hb_now_ns (void);
void hb_sleep_until_ns (uint64_t when_ns);
void hb_sleep_ms (unsigned ms);

size_t hb_ctl_size (uint32_t arrays, uint32_t events);
//  Map an existing control file. Returns 0 / -1.
int hb_ctl_map (hb_ctl_t *ctl, const char *path, bool create, size_t size);
//  Set cnt and lat from the header (the creator calls it once arrays and
//  events are filled in).
void hb_ctl_arrays (hb_ctl_t *ctl);
void hb_ctl_unmap (hb_ctl_t *ctl);

//  Child roles; return the process exit code.
int hb_role_publisher (hb_ctl_t *ctl, uint32_t index);
int hb_role_subscriber (hb_ctl_t *ctl, uint32_t index);
int hb_role_worker (hb_ctl_t *ctl, uint32_t index);

#endif
