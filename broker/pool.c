/*  pool — scheduler of one consumer group.

    Every event the pool holds is an entry in exactly one place:
    - the retry list (ready, delivered before: goes first) or the fresh list,
    - the delayed heap (waiting for its NACK delay or backoff),
    - the lease list (leased to a member; ordered by deadline, because every
      lease has the same length and PROGRESS moves an entry to the tail),
    - the parked list (terminated, kept aside).
    Members with free credit wait in a FIFO ring, so the worker that has
    waited longest gets the next event.
*/
#include "pool.h"

#include <czmq.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_READY, S_DELAYED, S_LEASED, S_PARKED } s_state_t;

typedef struct s_entry {
    uint64_t seq;
    uint32_t attempt; // deliveries made so far
    uint8_t state;
    hd_member_t *member; // leaseholder
    int64_t deadline;    // lease expiry, or when a delayed entry is due
    int64_t enqueued;
    struct s_entry *prev, *next;
    size_t heap_index;
} s_entry_t;

typedef struct {
    s_entry_t *head, *tail;
    size_t size;
} s_list_t;

struct _hd_member_t {
    void *handle;
    uint32_t credit;
    uint32_t inflight;
    bool listed;                      // in the ready ring
    bool stalled;                     // a delivery to it failed; wait for a sign of life
    hd_member_t *prev, *next;         // ready ring
    hd_member_t *all_prev, *all_next; // every member
};

struct _hd_pool_t {
    char *name;
    char *filter;
    size_t filter_size;
    hd_pool_config_t config;
    hd_pool_deliver_fn *deliver;
    hd_pool_release_fn *release;
    void *arg;
    zhashx_t *entries; // seq -> s_entry_t
    s_list_t retry, fresh, leases, parked;
    s_entry_t **heap;
    size_t heap_size, heap_capacity;
    hd_member_t *ready_head, *ready_tail;
    hd_member_t *members;
    size_t member_count;
    uint64_t random_state;
    //  Counters
    uint64_t acked, delivered, redelivered, terminated, nacked, expired, stale;
};

//  --------------------------------------------------------------------------
//  Lists

static void
s_list_append (s_list_t *list, s_entry_t *entry)
{
    entry->next = NULL;
    entry->prev = list->tail;
    if (list->tail)
        list->tail->next = entry;
    else
        list->head = entry;
    list->tail = entry;
    list->size++;
}

static void
s_list_prepend (s_list_t *list, s_entry_t *entry)
{
    entry->prev = NULL;
    entry->next = list->head;
    if (list->head)
        list->head->prev = entry;
    else
        list->tail = entry;
    list->head = entry;
    list->size++;
}

static void
s_list_remove (s_list_t *list, s_entry_t *entry)
{
    if (entry->prev)
        entry->prev->next = entry->next;
    else
        list->head = entry->next;
    if (entry->next)
        entry->next->prev = entry->prev;
    else
        list->tail = entry->prev;
    entry->prev = entry->next = NULL;
    list->size--;
}

//  --------------------------------------------------------------------------
//  Delayed heap, ordered by deadline

static bool
s_heap_before (s_entry_t *a, s_entry_t *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void
s_heap_swap (hd_pool_t *self, size_t i, size_t j)
{
    s_entry_t *entry = self->heap[i];
    self->heap[i] = self->heap[j];
    self->heap[j] = entry;
    self->heap[i]->heap_index = i;
    self->heap[j]->heap_index = j;
}

static void
s_heap_up (hd_pool_t *self, size_t index)
{
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (!s_heap_before (self->heap[index], self->heap[parent]))
            break;
        s_heap_swap (self, index, parent);
        index = parent;
    }
}

static void
s_heap_down (hd_pool_t *self, size_t index)
{
    while (true) {
        size_t smallest = index, left = 2 * index + 1, right = left + 1;
        if (left < self->heap_size && s_heap_before (self->heap[left], self->heap[smallest]))
            smallest = left;
        if (right < self->heap_size && s_heap_before (self->heap[right], self->heap[smallest]))
            smallest = right;
        if (smallest == index)
            return;
        s_heap_swap (self, index, smallest);
        index = smallest;
    }
}

static int
s_heap_push (hd_pool_t *self, s_entry_t *entry)
{
    if (self->heap_size == self->heap_capacity) {
        size_t capacity = self->heap_capacity ? self->heap_capacity * 2 : 64;
        s_entry_t **heap = realloc (self->heap, capacity * sizeof *heap);
        if (!heap)
            return -1;
        self->heap = heap;
        self->heap_capacity = capacity;
    }
    entry->heap_index = self->heap_size;
    self->heap[self->heap_size++] = entry;
    s_heap_up (self, entry->heap_index);
    return 0;
}

static s_entry_t *
s_heap_pop (hd_pool_t *self)
{
    s_entry_t *top = self->heap[0];
    self->heap_size--;
    if (self->heap_size > 0) {
        self->heap[0] = self->heap[self->heap_size];
        self->heap[0]->heap_index = 0;
        s_heap_down (self, 0);
    }
    return top;
}

//  --------------------------------------------------------------------------
//  Seq-keyed table: keys are the seq values themselves

static size_t
s_seq_hash (const void *key)
{
    uint64_t value = (uint64_t) (uintptr_t) key;
    value ^= value >> 33;
    value *= 0xff51afd7ed558ccdULL;
    value ^= value >> 33;
    return (size_t) value;
}

static int
s_seq_compare (const void *a, const void *b)
{
    uintptr_t x = (uintptr_t) a, y = (uintptr_t) b;
    return x < y ? -1 : x > y;
}

#define S_KEY(seq) ((void *) (uintptr_t) (seq))

//  --------------------------------------------------------------------------
//  Members

static void
s_ready_push (hd_pool_t *self, hd_member_t *member)
{
    member->next = NULL;
    member->prev = self->ready_tail;
    if (self->ready_tail)
        self->ready_tail->next = member;
    else
        self->ready_head = member;
    self->ready_tail = member;
    member->listed = true;
}

static void
s_ready_remove (hd_pool_t *self, hd_member_t *member)
{
    if (!member->listed)
        return;
    if (member->prev)
        member->prev->next = member->next;
    else
        self->ready_head = member->next;
    if (member->next)
        member->next->prev = member->prev;
    else
        self->ready_tail = member->prev;
    member->prev = member->next = NULL;
    member->listed = false;
}

//  Put member back in the ring if it may take more.
static void
s_member_refresh (hd_pool_t *self, hd_member_t *member)
{
    if (!member->listed && !member->stalled && member->inflight < member->credit)
        s_ready_push (self, member);
}

//  --------------------------------------------------------------------------

void
hd_pool_config_defaults (hd_pool_config_t *config)
{
    config->ack_wait_ms = 30000;
    config->backoff_initial_ms = 1000;
    config->backoff_max_ms = 60000;
    config->backoff_multiplier = 2.0;
    config->backoff_jitter = 0.2;
    config->max_pending = 100000;
    config->max_parked = 10000;
}

hd_pool_t *
hd_pool_new (const char *name, const char *filter, const hd_pool_config_t *config,
             hd_pool_deliver_fn *deliver, hd_pool_release_fn *release, void *arg)
{
    hd_pool_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->name = strdup (name);
    self->filter = strdup (filter);
    self->filter_size = strlen (filter);
    self->config = *config;
    self->deliver = deliver;
    self->release = release;
    self->arg = arg;
    self->entries = zhashx_new ();
    if (!self->name || !self->filter || !self->entries) {
        hd_pool_destroy (&self);
        return NULL;
    }
    zhashx_set_key_hasher (self->entries, s_seq_hash);
    zhashx_set_key_comparator (self->entries, s_seq_compare);
    zhashx_set_key_duplicator (self->entries, NULL);
    zhashx_set_key_destructor (self->entries, NULL);
    self->random_state =
        ((uint64_t) (uintptr_t) self) ^ (uint64_t) zclock_usecs () ^ 0x9E3779B97F4A7C15ULL;
    if (self->random_state == 0)
        self->random_state = 1;
    return self;
}

void
hd_pool_destroy (hd_pool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_pool_t *self = *self_p;
    if (self->entries) {
        for (s_entry_t *entry = zhashx_first (self->entries); entry;
             entry = zhashx_next (self->entries))
            free (entry);
        zhashx_destroy (&self->entries);
    }
    while (self->members) {
        hd_member_t *member = self->members;
        self->members = member->all_next;
        free (member);
    }
    free (self->heap);
    free (self->name);
    free (self->filter);
    free (self);
    *self_p = NULL;
}

const char *
hd_pool_name (hd_pool_t *self)
{
    return self->name;
}

const char *
hd_pool_filter (hd_pool_t *self)
{
    return self->filter;
}

bool
hd_pool_matches (hd_pool_t *self, const char *type, size_t type_size)
{
    return type_size >= self->filter_size && memcmp (type, self->filter, self->filter_size) == 0;
}

bool
hd_pool_full (hd_pool_t *self)
{
    return zhashx_size (self->entries) - self->parked.size >= self->config.max_pending;
}

int
hd_pool_enqueue (hd_pool_t *self, uint64_t seq, int64_t now)
{
    s_entry_t *entry = calloc (1, sizeof *entry);
    if (!entry)
        return -1;
    entry->seq = seq;
    entry->state = S_READY;
    entry->enqueued = now;
    if (zhashx_insert (self->entries, S_KEY (seq), entry) != 0) {
        free (entry); // already held: a programmer error upstream, but harmless
        return -1;
    }
    s_list_append (&self->fresh, entry);
    return 0;
}

hd_member_t *
hd_pool_join (hd_pool_t *self, void *handle, uint32_t credit)
{
    hd_member_t *member = calloc (1, sizeof *member);
    if (!member)
        return NULL;
    member->handle = handle;
    member->credit = credit;
    member->all_next = self->members;
    if (self->members)
        self->members->all_prev = member;
    self->members = member;
    self->member_count++;
    s_member_refresh (self, member);
    return member;
}

void
hd_pool_set_credit (hd_pool_t *self, hd_member_t *member, uint32_t credit)
{
    member->credit = credit;
    if (member->inflight >= credit)
        s_ready_remove (self, member);
    else
        s_member_refresh (self, member);
}

void
hd_pool_wake (hd_pool_t *self, hd_member_t *member)
{
    member->stalled = false;
    s_member_refresh (self, member);
}

//  Take entry off its lease and give the member's credit back.
static void
s_lease_end (hd_pool_t *self, s_entry_t *entry)
{
    hd_member_t *member = entry->member;
    s_list_remove (&self->leases, entry);
    entry->member = NULL;
    member->inflight--;
    s_member_refresh (self, member);
}

void
hd_pool_leave (hd_pool_t *self, hd_member_t **member_p)
{
    hd_member_t *member = *member_p;
    if (!member)
        return;
    //  Its leases go back first in line, oldest first
    s_entry_t *entry = self->leases.head;
    s_list_t released = {0};
    while (entry) {
        s_entry_t *next = entry->next;
        if (entry->member == member) {
            s_list_remove (&self->leases, entry);
            entry->member = NULL;
            entry->state = S_READY;
            s_list_append (&released, entry);
        }
        entry = next;
    }
    while (released.tail) {
        s_entry_t *last = released.tail;
        s_list_remove (&released, last);
        s_list_prepend (&self->retry, last);
    }
    s_ready_remove (self, member);
    if (member->all_prev)
        member->all_prev->all_next = member->all_next;
    else
        self->members = member->all_next;
    if (member->all_next)
        member->all_next->all_prev = member->all_prev;
    self->member_count--;
    free (member);
    *member_p = NULL;
}

static s_entry_t *
s_leased_entry (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt)
{
    s_entry_t *entry = zhashx_lookup (self->entries, S_KEY (seq));
    if (!entry || entry->state != S_LEASED || entry->member != member ||
        entry->attempt != attempt) {
        self->stale++;
        return NULL;
    }
    return entry;
}

static void
s_entry_forget (hd_pool_t *self, s_entry_t *entry)
{
    uint64_t seq = entry->seq;
    zhashx_delete (self->entries, S_KEY (seq));
    free (entry);
    self->release (seq, self->arg);
}

int
hd_pool_ack (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt)
{
    s_entry_t *entry = s_leased_entry (self, member, seq, attempt);
    if (!entry)
        return -1;
    s_lease_end (self, entry);
    self->acked++;
    s_entry_forget (self, entry);
    return 0;
}

//  Put entry in the delayed heap, or straight back in line when delay <= 0.
static void
s_entry_delay (hd_pool_t *self, s_entry_t *entry, int64_t delay_ms, int64_t now)
{
    if (delay_ms <= 0) {
        entry->state = S_READY;
        s_list_append (&self->retry, entry);
        return;
    }
    entry->state = S_DELAYED;
    entry->deadline = now + delay_ms;
    if (s_heap_push (self, entry) != 0) {
        //  No memory for the heap: deliver again now rather than lose it
        entry->state = S_READY;
        s_list_append (&self->retry, entry);
    }
}

int
hd_pool_nack (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt,
              int64_t delay_ms, int64_t now)
{
    s_entry_t *entry = s_leased_entry (self, member, seq, attempt);
    if (!entry)
        return -1;
    s_lease_end (self, entry);
    self->nacked++;
    s_entry_delay (self, entry, delay_ms > 0 ? delay_ms : hd_pool_backoff_ms (self, attempt), now);
    return 0;
}

int
hd_pool_term (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt)
{
    s_entry_t *entry = s_leased_entry (self, member, seq, attempt);
    if (!entry)
        return -1;
    s_lease_end (self, entry);
    self->terminated++;
    entry->state = S_PARKED;
    s_list_append (&self->parked, entry);
    if (self->parked.size > self->config.max_parked) {
        s_entry_t *oldest = self->parked.head;
        s_list_remove (&self->parked, oldest);
        s_entry_forget (self, oldest);
    }
    return 0;
}

int
hd_pool_progress (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt, int64_t now)
{
    s_entry_t *entry = s_leased_entry (self, member, seq, attempt);
    if (!entry)
        return -1;
    entry->deadline = now + self->config.ack_wait_ms;
    s_list_remove (&self->leases, entry);
    s_list_append (&self->leases, entry);
    return 0;
}

size_t
hd_pool_dispatch (hd_pool_t *self, int64_t now)
{
    size_t count = 0;
    while (self->ready_head && (self->retry.size || self->fresh.size)) {
        hd_member_t *member = self->ready_head;
        s_ready_remove (self, member);
        s_list_t *line = self->retry.size ? &self->retry : &self->fresh;
        s_entry_t *entry = line->head;
        s_list_remove (line, entry);
        entry->attempt++;
        if (self->deliver (member->handle, entry->seq, entry->attempt, self->arg) != 0) {
            //  The worker can't take it: keep the event first in line
            entry->attempt--;
            s_list_prepend (&self->retry, entry);
            member->stalled = true;
            continue;
        }
        entry->state = S_LEASED;
        entry->member = member;
        entry->deadline = now + self->config.ack_wait_ms;
        s_list_append (&self->leases, entry);
        member->inflight++;
        self->delivered++;
        if (entry->attempt > 1)
            self->redelivered++;
        s_member_refresh (self, member);
        count++;
    }
    return count;
}

size_t
hd_pool_tick (hd_pool_t *self, int64_t now)
{
    size_t ready = 0;
    while (self->leases.head && self->leases.head->deadline <= now) {
        s_entry_t *entry = self->leases.head;
        s_lease_end (self, entry);
        self->expired++;
        s_entry_delay (self, entry, hd_pool_backoff_ms (self, entry->attempt), now);
        ready += entry->state == S_READY;
    }
    while (self->heap_size && self->heap[0]->deadline <= now) {
        s_entry_t *entry = s_heap_pop (self);
        entry->state = S_READY;
        s_list_append (&self->retry, entry);
        ready++;
    }
    return ready;
}

int64_t
hd_pool_next_wakeup (hd_pool_t *self)
{
    int64_t wakeup = INT64_MAX;
    if (self->leases.head)
        wakeup = self->leases.head->deadline;
    if (self->heap_size && self->heap[0]->deadline < wakeup)
        wakeup = self->heap[0]->deadline;
    return wakeup;
}

//  xorshift64*: jitter needs speed and spread, not secrecy
static double
s_random_unit (hd_pool_t *self)
{
    uint64_t x = self->random_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    self->random_state = x;
    return (double) ((x * 0x2545F4914F6CDD1DULL) >> 11) / (double) (1ULL << 53);
}

int64_t
hd_pool_backoff_ms (hd_pool_t *self, uint32_t attempt)
{
    const hd_pool_config_t *config = &self->config;
    double delay = (double) config->backoff_initial_ms *
                   pow (config->backoff_multiplier, attempt > 0 ? attempt - 1 : 0);
    if (delay > (double) config->backoff_max_ms)
        delay = (double) config->backoff_max_ms;
    delay *= 1.0 + config->backoff_jitter * (2.0 * s_random_unit (self) - 1.0);
    return delay < 1 ? 1 : (int64_t) delay;
}

void
hd_pool_stats (hd_pool_t *self, Herald__PoolStats *stats, int64_t now)
{
    herald__pool_stats__init (stats);
    stats->name = self->name;
    stats->filter = self->filter;
    stats->workers = (uint32_t) self->member_count;
    stats->pending = hd_pool_pending (self);
    stats->inflight = self->leases.size;
    stats->acked = self->acked;
    stats->delivered = self->delivered;
    stats->redelivered = self->redelivered;
    stats->terminated = self->terminated;
    stats->nacked = self->nacked;
    stats->expired = self->expired;
    stats->stale = self->stale;
    int64_t oldest = now;
    for (s_entry_t *entry = zhashx_first (self->entries); entry;
         entry = zhashx_next (self->entries))
        if (entry->state != S_PARKED && entry->enqueued < oldest)
            oldest = entry->enqueued;
    stats->oldest_pending_ms = (uint64_t) (now - oldest);
}

size_t
hd_pool_workers (hd_pool_t *self)
{
    return self->member_count;
}

size_t
hd_pool_pending (hd_pool_t *self)
{
    return self->retry.size + self->fresh.size + self->heap_size;
}

size_t
hd_pool_inflight (hd_pool_t *self)
{
    return self->leases.size;
}

size_t
hd_pool_parked (hd_pool_t *self)
{
    return self->parked.size;
}

uint32_t
hd_member_inflight (hd_member_t *member)
{
    return member->inflight;
}

uint32_t
hd_member_credit (hd_member_t *member)
{
    return member->credit;
}
