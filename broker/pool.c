/*  pool — scheduler of one consumer group over the event log.

    Events the pool has not looked at yet are the log between its cursor
    and the log's end; `ahead` counts the matching ones. An event becomes an
    entry when the cursor passes it, and stays one until it is acked or
    dead-lettered. Each entry is in exactly one place:
    - the retry list (ready to go out again; served before new events),
    - the delayed heap (waiting for its NACK delay or backoff),
    - the lease list (leased; ordered by deadline, because every lease has
      the same length and PROGRESS moves an entry to the tail),
    - an ordered pool's key queue (blocked behind the key's holder),
    - nowhere yet (S_IDLE), while recovery rebuilds the pool.
    Members with free credit wait in a FIFO ring, so the worker that has
    waited longest gets the next event.
*/
#include "pool.h"
#include "buffer.h"
#include "hashmap.h"

#include <czmq.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { S_IDLE, S_READY, S_DELAYED, S_LEASED, S_BLOCKED } s_state_t;

typedef struct s_entry {
    uint64_t seq;
    uint32_t attempt; // deliveries made so far
    uint32_t key_hash;
    uint8_t state;
    hd_member_t *member;
    int64_t deadline;
    int64_t enqueued;
    char *error; // last NACK error text
    struct s_entry *prev, *next;
    size_t heap_index;
} s_entry_t;

typedef struct {
    s_entry_t *head, *tail;
    size_t size;
} s_list_t;

//  Ordered pools: the event of a key now in play, and the ones behind it.
typedef struct {
    s_entry_t *holder;
    s_list_t blocked;
} s_key_t;

typedef struct {
    Herald__DlqEntry entry;
    void *handle; // in dlq_order
} s_dead_t;

struct _hd_member_t {
    void *handle;
    uint32_t credit;
    uint32_t inflight;
    uint32_t run_max; // events in a row it may be given: burst_us / its handler time
    uint32_t run;     // events given in the run under way (it is first in line)
    bool listed;
    bool stalled;
    hd_member_t *prev, *next;
    hd_member_t *all_prev, *all_next;
};

struct _hd_pool_t {
    uint32_t id;
    char *name;
    char *filter;
    size_t filter_size;
    hd_pool_config_t config;
    hd_pool_hooks_t hooks;
    uint64_t start_seq;
    uint64_t cursor;
    uint64_t ahead;   // matching events at or past the cursor
    uint8_t *matches; // per type id: 0 unknown, 1 matches, 2 does not
    size_t matches_size;
    hd_hashmap_t *entries; // seq -> s_entry_t
    hd_reuse_t spare;      // freed entries kept for reuse
    hd_hashmap_t *keys;    // key hash -> s_key_t (owned)
    size_t blocked;
    hd_hashmap_t *dead;   // seq -> s_dead_t (owned)
    zlistx_t *dead_order; // s_dead_t, oldest first
    s_list_t retry, leases;
    s_entry_t **heap;
    size_t heap_size, heap_capacity;
    hd_member_t *ready_head, *ready_tail;
    hd_member_t *members;
    size_t member_count;
    uint64_t random_state;
    uint64_t acked, delivered, redelivered, terminated, nacked, expired, stale;
    uint64_t dead_lettered, dlq_dropped, lost;
    uint64_t runs, run_events; // since start, not journaled: how dispatch ran
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

//  Insert keeping seq order (blocked queues; usually at the tail).
static void
s_list_insert_sorted (s_list_t *list, s_entry_t *entry)
{
    s_entry_t *after = list->tail;
    while (after && after->seq > entry->seq)
        after = after->prev;
    if (!after) {
        s_list_prepend (list, entry);
        return;
    }
    entry->prev = after;
    entry->next = after->next;
    if (after->next)
        after->next->prev = entry;
    else
        list->tail = entry;
    after->next = entry;
    list->size++;
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

static void
s_heap_remove (hd_pool_t *self, s_entry_t *entry)
{
    size_t index = entry->heap_index;
    self->heap_size--;
    if (index < self->heap_size) {
        self->heap[index] = self->heap[self->heap_size];
        self->heap[index]->heap_index = index;
        s_heap_up (self, index);
        s_heap_down (self, self->heap[index]->heap_index);
    }
}

//  --------------------------------------------------------------------------
//  Members

//  Into the line of members with free credit: at the back, or at the head
//  to go on with the run it is given
static void
s_ready_insert (hd_pool_t *self, hd_member_t *member, bool front)
{
    member->prev = front ? NULL : self->ready_tail;
    member->next = front ? self->ready_head : NULL;
    if (member->prev)
        member->prev->next = member;
    else
        self->ready_head = member;
    if (member->next)
        member->next->prev = member;
    else
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

static void
s_member_refresh (hd_pool_t *self, hd_member_t *member)
{
    if (!member->listed && !member->stalled && member->inflight < member->credit)
        s_ready_insert (self, member, false);
}

//  --------------------------------------------------------------------------
//  Journal records

static void
s_record (hd_pool_t *self, Herald__StateOp *op)
{
    op->pool = self->id;
    if (self->hooks.record)
        self->hooks.record (self->hooks.arg, op);
}

static void
s_record_seq (hd_pool_t *self, Herald__StateOp__OpCase which, uint64_t seq, uint32_t attempt,
              const char *error)
{
    Herald__StateOp op = HERALD__STATE_OP__INIT;
    op.op_case = which;
    switch (which) {
        case HERALD__STATE_OP__OP_DELIVER: op.deliver = seq; break;
        case HERALD__STATE_OP__OP_ACK: op.ack = seq; break;
        case HERALD__STATE_OP__OP_REVIVE: op.revive = seq; break;
        case HERALD__STATE_OP__OP_PURGE: op.purge = seq; break;
        case HERALD__STATE_OP__OP_SKIP: op.skip = seq; break;
        case HERALD__STATE_OP__OP_NACK: op.nack = seq; break;
        default: return;
    }
    op.attempt = attempt;
    op.error = (char *) (error ? error : "");
    s_record (self, &op);
}

//  --------------------------------------------------------------------------
//  Entries

//  Entries come and go once per event: a few thousand are kept for reuse
//  rather than handed back to malloc
#define S_SPARE_ENTRIES 4096

static s_entry_t *
s_entry_new (hd_pool_t *self, uint64_t seq, uint32_t attempt, int64_t now)
{
    s_entry_t *entry = hd_reuse_take (&self->spare, sizeof *entry);
    if (!entry)
        return NULL;
    entry->seq = seq;
    entry->attempt = attempt;
    entry->state = S_IDLE;
    entry->enqueued = now;
    if (hd_hashmap_insert (self->entries, seq, entry) != 0) {
        free (entry);
        return NULL;
    }
    return entry;
}

//  Take entry out of whatever list holds it (not out of the table).
static void
s_entry_unlink (hd_pool_t *self, s_entry_t *entry)
{
    switch (entry->state) {
        case S_READY: s_list_remove (&self->retry, entry); break;
        case S_DELAYED: s_heap_remove (self, entry); break;
        case S_LEASED: {
            hd_member_t *member = entry->member;
            s_list_remove (&self->leases, entry);
            entry->member = NULL;
            member->inflight--;
            s_member_refresh (self, member);
            break;
        }
        case S_BLOCKED: {
            s_key_t *key = hd_hashmap_find (self->keys, entry->key_hash, NULL, NULL);
            if (key)
                s_list_remove (&key->blocked, entry);
            self->blocked--;
            break;
        }
        default: break;
    }
    entry->state = S_IDLE;
}

static void
s_entry_ready (hd_pool_t *self, s_entry_t *entry, bool first)
{
    entry->state = S_READY;
    if (first)
        s_list_prepend (&self->retry, entry);
    else
        s_list_append (&self->retry, entry);
}

//  Ordered pools: entry is done with; the next event of its key may go.
static void
s_key_release (hd_pool_t *self, s_entry_t *entry)
{
    if (!self->config.ordered || entry->key_hash == 0)
        return;
    s_key_t *key = hd_hashmap_find (self->keys, entry->key_hash, NULL, NULL);
    if (!key || key->holder != entry)
        return;
    s_entry_t *next = key->blocked.head;
    if (next) {
        s_list_remove (&key->blocked, next);
        self->blocked--;
        key->holder = next;
        s_entry_ready (self, next, false);
    } else {
        hd_hashmap_remove (self->keys, entry->key_hash, key);
        free (key);
    }
}

//  Ordered pools: entry wants to go; it may only if its key is free.
//  Returns true when it was queued behind the key's holder instead.
static bool
s_key_block (hd_pool_t *self, s_entry_t *entry)
{
    if (!self->config.ordered || entry->key_hash == 0)
        return false;
    s_key_t *key = hd_hashmap_find (self->keys, entry->key_hash, NULL, NULL);
    if (!key) {
        key = calloc (1, sizeof *key);
        if (!key || hd_hashmap_insert (self->keys, entry->key_hash, key) != 0) {
            free (key);
            return false; // out of memory: deliver rather than lose it
        }
    }
    if (!key->holder || key->holder == entry) {
        key->holder = entry;
        return false;
    }
    if (key->holder->seq > entry->seq) {
        //  An older event (a DLQ replay) goes before the holder's followers,
        //  and the holder, not yet delivered, waits behind it
        s_entry_t *holder = key->holder;
        if (holder->state == S_READY) {
            s_list_remove (&self->retry, holder);
            holder->state = S_BLOCKED;
            s_list_insert_sorted (&key->blocked, holder);
            self->blocked++;
            key->holder = entry;
            return false;
        }
    }
    entry->state = S_BLOCKED;
    s_list_insert_sorted (&key->blocked, entry);
    self->blocked++;
    return true;
}

static void
s_entry_free (hd_pool_t *self, s_entry_t *entry)
{
    hd_hashmap_remove (self->entries, entry->seq, entry);
    if (entry->error)
        free (entry->error);
    hd_reuse_keep (&self->spare, entry);
}

//  --------------------------------------------------------------------------
//  Dead-letter queue

static void
s_dead_free (s_dead_t *dead)
{
    free (dead->entry.id);
    free (dead->entry.type);
    free (dead->entry.error);
    free (dead);
}

static void
s_dead_insert (hd_pool_t *self, s_dead_t *dead)
{
    s_dead_t *old = hd_hashmap_find (self->dead, dead->entry.seq, NULL, NULL);
    if (old) {
        zlistx_delete (self->dead_order, old->handle);
        hd_hashmap_remove (self->dead, old->entry.seq, old);
        s_dead_free (old);
    }
    if (hd_hashmap_insert (self->dead, dead->entry.seq, dead) != 0) {
        s_dead_free (dead); // out of memory: counted as dropped from the DLQ
        self->dlq_dropped++;
        return;
    }
    dead->handle = zlistx_add_end (self->dead_order, dead);
    while (self->config.max_dlq && hd_hashmap_size (self->dead) > self->config.max_dlq) {
        s_dead_t *oldest = zlistx_first (self->dead_order);
        zlistx_delete (self->dead_order, oldest->handle);
        hd_hashmap_remove (self->dead, oldest->entry.seq, oldest);
        s_record_seq (self, HERALD__STATE_OP__OP_PURGE, oldest->entry.seq, 0, NULL);
        s_dead_free (oldest);
        self->dlq_dropped++;
    }
}

static s_dead_t *
s_dead_copy (const Herald__DlqEntry *source)
{
    s_dead_t *dead = calloc (1, sizeof *dead);
    if (!dead)
        return NULL;
    herald__dlq_entry__init (&dead->entry);
    dead->entry.seq = source->seq;
    dead->entry.reason = source->reason;
    dead->entry.attempts = source->attempts;
    dead->entry.time_us = source->time_us;
    dead->entry.id = strdup (source->id ? source->id : "");
    dead->entry.type = strdup (source->type ? source->type : "");
    dead->entry.error = strdup (source->error ? source->error : "");
    return dead;
}

//  Move entry to the DLQ: it leaves the pool's flow for good.
static void
s_entry_bury (hd_pool_t *self, s_entry_t *entry, Herald__DlqReason reason, const char *error)
{
    Herald__DlqEntry record = HERALD__DLQ_ENTRY__INIT;
    char *id = NULL, *type = NULL;
    if (self->hooks.describe)
        self->hooks.describe (self->hooks.arg, entry->seq, &id, &type);
    record.seq = entry->seq;
    record.id = id ? id : "";
    record.type = type ? type : "";
    record.reason = reason;
    record.attempts = entry->attempt;
    record.error = (char *) (error && *error ? error : entry->error ? entry->error : "");
    record.time_us = (uint64_t) zclock_time () * 1000;
    Herald__StateOp op = HERALD__STATE_OP__INIT;
    op.op_case = HERALD__STATE_OP__OP_DEAD;
    op.dead = &record;
    s_record (self, &op);
    s_dead_t *dead = s_dead_copy (&record);
    free (id);
    free (type);
    if (dead)
        s_dead_insert (self, dead);
    self->dead_lettered++;
    s_entry_unlink (self, entry);
    s_key_release (self, entry);
    s_entry_free (self, entry);
}

//  Retention may remove a leased event (hd_pool_log_truncated keeps the
//  lease): once the lease ends without an ACK the event can never go out
//  again, so it is lost rather than retried (which would stall every worker).
static bool
s_entry_gone (hd_pool_t *self, s_entry_t *entry)
{
    uint32_t type_id, key_hash;
    if (self->hooks.meta (self->hooks.arg, entry->seq, &type_id, &key_hash))
        return false;
    s_entry_unlink (self, entry);
    s_key_release (self, entry);
    s_entry_free (self, entry);
    self->lost++;
    return true;
}

//  A delivery failed (NACK, lease expiry, worker lost): deliver again after
//  delay_ms, or bury it when it has used its last attempt.
static void
s_entry_fail (hd_pool_t *self, s_entry_t *entry, int64_t delay_ms, const char *error, int64_t now)
{
    if (s_entry_gone (self, entry))
        return;
    if (error && *error) {
        free (entry->error);
        entry->error = strdup (error);
    }
    if (self->config.max_deliver && entry->attempt >= self->config.max_deliver) {
        s_entry_bury (self, entry, HERALD__DLQ_REASON__MAX_DELIVER, error);
        return;
    }
    if (delay_ms <= 0) {
        s_entry_ready (self, entry, false);
        return;
    }
    entry->state = S_DELAYED;
    entry->deadline = now + delay_ms;
    if (s_heap_push (self, entry) != 0)
        s_entry_ready (self, entry, false); // no memory for the heap: go again now
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
    config->max_deliver = 5;
    config->ordered = false;
    config->max_pending = 1000000;
    config->max_dlq = 100000;
    config->max_blocked = 100000;
    config->burst_us = 100;
}

hd_pool_t *
hd_pool_new (uint32_t id, const char *name, const char *filter, const hd_pool_config_t *config,
             uint64_t start_seq, const hd_pool_hooks_t *hooks)
{
    hd_pool_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->id = id;
    self->name = strdup (name);
    self->filter = strdup (filter);
    self->filter_size = strlen (filter);
    self->config = *config;
    self->hooks = *hooks;
    self->start_seq = self->cursor = start_seq;
    hd_reuse_init (&self->spare, S_SPARE_ENTRIES);
    self->entries = hd_hashmap_new ();
    self->keys = hd_hashmap_new ();
    self->dead = hd_hashmap_new ();
    self->dead_order = zlistx_new ();
    if (!self->name || !self->filter || !self->entries || !self->keys || !self->dead ||
        !self->dead_order) {
        hd_pool_destroy (&self);
        return NULL;
    }
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
        size_t entry_cursor = 0;
        for (s_entry_t *entry; (entry = hd_hashmap_next (self->entries, &entry_cursor));) {
            free (entry->error);
            free (entry);
        }
        hd_hashmap_destroy (&self->entries);
    }
    hd_reuse_drain (&self->spare);
    if (self->keys) {
        size_t key_cursor = 0;
        for (s_key_t *key; (key = hd_hashmap_next (self->keys, &key_cursor));)
            free (key);
        hd_hashmap_destroy (&self->keys);
    }
    if (self->dead) {
        size_t dead_cursor = 0;
        for (s_dead_t *dead; (dead = hd_hashmap_next (self->dead, &dead_cursor));)
            s_dead_free (dead);
        hd_hashmap_destroy (&self->dead);
    }
    zlistx_destroy (&self->dead_order);
    while (self->members) {
        hd_member_t *member = self->members;
        self->members = member->all_next;
        free (member);
    }
    free (self->matches);
    free (self->heap);
    free (self->name);
    free (self->filter);
    free (self);
    *self_p = NULL;
}

uint32_t
hd_pool_id (hd_pool_t *self)
{
    return self->id;
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

const hd_pool_config_t *
hd_pool_config (hd_pool_t *self)
{
    return &self->config;
}

bool
hd_pool_matches (hd_pool_t *self, const char *type, size_t type_size)
{
    return type_size >= self->filter_size && memcmp (type, self->filter, self->filter_size) == 0;
}

static bool
s_type_matches (hd_pool_t *self, uint32_t type_id)
{
    if (type_id >= self->matches_size) {
        size_t size = (size_t) type_id * 2 + 16;
        uint8_t *matches = realloc (self->matches, size);
        if (!matches) {
            const char *type = self->hooks.type_name (self->hooks.arg, type_id);
            return hd_pool_matches (self, type, strlen (type));
        }
        memset (matches + self->matches_size, 0, size - self->matches_size);
        self->matches = matches;
        self->matches_size = size;
    }
    if (self->matches[type_id] == 0) {
        const char *type = self->hooks.type_name (self->hooks.arg, type_id);
        self->matches[type_id] = hd_pool_matches (self, type, strlen (type)) ? 1 : 2;
    }
    return self->matches[type_id] == 1;
}

size_t
hd_pool_pending (hd_pool_t *self)
{
    return self->retry.size + self->heap_size + self->blocked + (size_t) self->ahead;
}

bool
hd_pool_full (hd_pool_t *self)
{
    return hd_pool_pending (self) + self->leases.size >= self->config.max_pending;
}

void
hd_pool_notify (hd_pool_t *self, uint64_t seq)
{
    if (seq >= self->cursor)
        self->ahead++;
}

void
hd_pool_forget (hd_pool_t *self, uint64_t seq)
{
    if (seq >= self->cursor && self->ahead > 0)
        self->ahead--;
}

hd_member_t *
hd_pool_join (hd_pool_t *self, void *handle, uint32_t credit)
{
    hd_member_t *member = calloc (1, sizeof *member);
    if (!member)
        return NULL;
    member->handle = handle;
    member->credit = credit;
    member->run_max = 1;
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
    if (member->inflight >= credit) {
        s_ready_remove (self, member);
        member->run = 0;
    } else
        s_member_refresh (self, member);
}

void
hd_pool_set_handle_ns (hd_pool_t *self, hd_member_t *member, uint32_t handle_ns)
{
    if (handle_ns == 0)
        return; // not said: what it said before stands
    uint64_t run_max = (uint64_t) self->config.burst_us * 1000 / handle_ns;
    member->run_max = run_max < 1 ? 1 : run_max > UINT32_MAX ? UINT32_MAX : (uint32_t) run_max;
}

uint32_t
hd_member_run_max (hd_member_t *member)
{
    return member->run_max;
}

void
hd_pool_wake (hd_pool_t *self, hd_member_t *member)
{
    member->stalled = false;
    s_member_refresh (self, member);
}

void
hd_pool_leave (hd_pool_t *self, hd_member_t **member_p, int64_t now)
{
    hd_member_t *member = *member_p;
    if (!member)
        return;
    //  Its leases go back first in line, oldest first
    s_list_t released = {0};
    s_entry_t *entry = self->leases.head;
    while (entry) {
        s_entry_t *next = entry->next;
        if (entry->member == member) {
            s_list_remove (&self->leases, entry);
            entry->member = NULL;
            entry->state = S_IDLE;
            s_list_append (&released, entry);
        }
        entry = next;
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
    while (released.tail) {
        s_entry_t *last = released.tail;
        s_list_remove (&released, last);
        if (s_entry_gone (self, last))
            continue;
        if (self->config.max_deliver && last->attempt >= self->config.max_deliver)
            s_entry_bury (self, last, HERALD__DLQ_REASON__MAX_DELIVER,
                          "worker lost while holding the event");
        else
            s_entry_ready (self, last, true);
    }
}

static s_entry_t *
s_leased_entry (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt)
{
    s_entry_t *entry = hd_hashmap_find (self->entries, seq, NULL, NULL);
    if (!entry || entry->state != S_LEASED || entry->member != member ||
        entry->attempt != attempt) {
        self->stale++;
        return NULL;
    }
    return entry;
}

int
hd_pool_ack (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt)
{
    s_entry_t *entry = s_leased_entry (self, member, seq, attempt);
    if (!entry)
        return -1;
    s_entry_unlink (self, entry);
    self->acked++;
    s_record_seq (self, HERALD__STATE_OP__OP_ACK, seq, attempt, NULL);
    s_key_release (self, entry);
    s_entry_free (self, entry);
    return 0;
}

int
hd_pool_nack (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt,
              int64_t delay_ms, const char *error, int64_t now)
{
    s_entry_t *entry = s_leased_entry (self, member, seq, attempt);
    if (!entry)
        return -1;
    s_entry_unlink (self, entry);
    self->nacked++;
    if (error && *error)
        s_record_seq (self, HERALD__STATE_OP__OP_NACK, seq, attempt, error);
    s_entry_fail (self, entry, delay_ms > 0 ? delay_ms : hd_pool_backoff_ms (self, attempt), error,
                  now);
    return 0;
}

int
hd_pool_term (hd_pool_t *self, hd_member_t *member, uint64_t seq, uint32_t attempt,
              const char *error, int64_t now)
{
    s_entry_t *entry = s_leased_entry (self, member, seq, attempt);
    if (!entry)
        return -1;
    self->terminated++;
    s_entry_bury (self, entry, HERALD__DLQ_REASON__TERMINATED, error);
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

//  Next event from the log the pool has not looked at, as a new entry, or
//  NULL when there is none (or an ordered pool has too many blocked).
static s_entry_t *
s_take_fresh (hd_pool_t *self, int64_t now)
{
    uint64_t end = self->hooks.log_end (self->hooks.arg);
    while (self->cursor < end) {
        if (self->config.ordered && self->blocked >= self->config.max_blocked)
            return NULL;
        uint64_t seq = self->cursor;
        uint32_t type_id, key_hash;
        bool present = self->hooks.meta (self->hooks.arg, seq, &type_id, &key_hash);
        if (!present || !s_type_matches (self, type_id)) {
            self->cursor++;
            continue;
        }
        s_entry_t *entry = s_entry_new (self, seq, 0, now);
        if (!entry)
            return NULL; // out of memory: try again later
        self->cursor++;
        if (self->ahead)
            self->ahead--;
        entry->key_hash = key_hash;
        if (!s_key_block (self, entry))
            return entry;
        //  Blocked: the cursor is past it, so the journal must know it
        s_record_seq (self, HERALD__STATE_OP__OP_DELIVER, seq, 0, NULL);
    }
    return NULL;
}

//  Round robin, in runs: the worker first in line gets up to run_max
//  events in a row, over as many passes as they take to come, then goes to
//  the back. A DELIVERS and its ACK cost each side a wake-up or more
//  whatever they carry, so fast handlers get long runs; a run's last event
//  waits at most about burst_us longer than it would one at a time, so
//  slow handlers get one event each.
size_t
hd_pool_dispatch (hd_pool_t *self, int64_t now)
{
    size_t count = 0;
    while (self->ready_head) {
        s_entry_t *entry = self->retry.head;
        if (entry)
            s_list_remove (&self->retry, entry);
        else if (!(entry = s_take_fresh (self, now)))
            break;
        entry->state = S_IDLE;
        hd_member_t *member = self->ready_head;
        s_ready_remove (self, member);
        entry->attempt++;
        if (self->hooks.deliver (member->handle, entry->seq, entry->attempt, self->hooks.arg) !=
            0) {
            entry->attempt--;
            if (entry->attempt == 0) // the cursor is past it: journal it as taken
                s_record_seq (self, HERALD__STATE_OP__OP_DELIVER, entry->seq, 0, NULL);
            s_entry_ready (self, entry, true);
            member->stalled = true;
            member->run = 0;
            continue;
        }
        s_record_seq (self, HERALD__STATE_OP__OP_DELIVER, entry->seq, entry->attempt, NULL);
        entry->state = S_LEASED;
        entry->member = member;
        entry->deadline = now + self->config.ack_wait_ms;
        s_list_append (&self->leases, entry);
        member->inflight++;
        self->delivered++;
        if (entry->attempt > 1)
            self->redelivered++;
        if (member->run == 0)
            self->runs++;
        self->run_events++;
        if (++member->run < member->run_max && member->inflight < member->credit)
            s_ready_insert (self, member, true);
        else {
            member->run = 0;
            s_member_refresh (self, member);
        }
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
        s_entry_unlink (self, entry);
        self->expired++;
        s_entry_fail (self, entry, hd_pool_backoff_ms (self, entry->attempt),
                      "lease expired (no ACK within ack_wait)", now);
        ready++;
    }
    while (self->heap_size && self->heap[0]->deadline <= now) {
        s_entry_t *entry = s_heap_pop (self);
        s_entry_ready (self, entry, false);
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

//  --------------------------------------------------------------------------
//  Dead-letter queue

size_t
hd_pool_dlq_size (hd_pool_t *self)
{
    return hd_hashmap_size (self->dead);
}

const Herald__DlqEntry *
hd_pool_dlq_get (hd_pool_t *self, uint64_t seq)
{
    s_dead_t *dead = hd_hashmap_find (self->dead, seq, NULL, NULL);
    return dead ? &dead->entry : NULL;
}

static int
s_compare_dead (const void *a, const void *b)
{
    uint64_t x = (*(const Herald__DlqEntry *const *) a)->seq;
    uint64_t y = (*(const Herald__DlqEntry *const *) b)->seq;
    return x < y ? -1 : x > y;
}

size_t
hd_pool_dlq_list (hd_pool_t *self, uint64_t from_seq, const Herald__DlqEntry **entries,
                  size_t limit)
{
    size_t total = hd_hashmap_size (self->dead), count = 0;
    const Herald__DlqEntry **all = malloc ((total + 1) * sizeof *all);
    if (!all)
        return 0;
    size_t dead_cursor = 0;
    for (s_dead_t *dead; (dead = hd_hashmap_next (self->dead, &dead_cursor));)
        if (dead->entry.seq >= from_seq)
            all[count++] = &dead->entry;
    qsort (all, count, sizeof *all, s_compare_dead);
    if (count > limit)
        count = limit;
    memcpy (entries, all, count * sizeof *all);
    free (all);
    return count;
}

static bool
s_selected (const Herald__DlqRequest *request, uint64_t seq)
{
    if (request->all)
        return true;
    for (size_t index = 0; index < request->n_seqs; index++)
        if (request->seqs[index] == seq)
            return true;
    if (request->n_seqs == 0 && request->from_seq)
        return seq >= request->from_seq && (request->to_seq == 0 || seq <= request->to_seq);
    return false;
}

//  Collect the selected DLQ seqs first: the table changes as we act on them.
static size_t
s_dlq_select (hd_pool_t *self, const Herald__DlqRequest *request, uint64_t **seqs_p)
{
    size_t count = 0;
    uint64_t *seqs = malloc ((hd_hashmap_size (self->dead) + 1) * sizeof *seqs);
    if (!seqs)
        return 0;
    size_t dead_cursor = 0;
    for (s_dead_t *dead; (dead = hd_hashmap_next (self->dead, &dead_cursor));)
        if (s_selected (request, dead->entry.seq))
            seqs[count++] = dead->entry.seq;
    *seqs_p = seqs;
    return count;
}

static void
s_dead_remove (hd_pool_t *self, uint64_t seq)
{
    s_dead_t *dead = hd_hashmap_find (self->dead, seq, NULL, NULL);
    if (!dead)
        return;
    zlistx_delete (self->dead_order, dead->handle);
    hd_hashmap_remove (self->dead, seq, dead);
    s_dead_free (dead);
}

//  A DLQ entry comes back as a pool entry whose attempts start again.
static s_entry_t *
s_revive (hd_pool_t *self, uint64_t seq, int64_t now)
{
    s_dead_remove (self, seq);
    if (hd_hashmap_find (self->entries, seq, NULL, NULL))
        return NULL;
    return s_entry_new (self, seq, 0, now);
}

size_t
hd_pool_dlq_replay (hd_pool_t *self, const Herald__DlqRequest *request, int64_t now)
{
    uint64_t *seqs = NULL;
    size_t count = s_dlq_select (self, request, &seqs);
    for (size_t index = 0; index < count; index++) {
        s_record_seq (self, HERALD__STATE_OP__OP_REVIVE, seqs[index], 0, NULL);
        s_entry_t *entry = s_revive (self, seqs[index], now);
        if (!entry)
            continue;
        uint32_t type_id;
        if (!self->hooks.meta (self->hooks.arg, entry->seq, &type_id, &entry->key_hash)) {
            s_entry_free (self, entry); // no longer in the log
            self->lost++;
            continue;
        }
        if (!s_key_block (self, entry))
            s_entry_ready (self, entry, false);
    }
    free (seqs);
    return count;
}

size_t
hd_pool_dlq_purge (hd_pool_t *self, const Herald__DlqRequest *request)
{
    uint64_t *seqs = NULL;
    size_t count = s_dlq_select (self, request, &seqs);
    for (size_t index = 0; index < count; index++) {
        s_record_seq (self, HERALD__STATE_OP__OP_PURGE, seqs[index], 0, NULL);
        s_dead_remove (self, seqs[index]);
    }
    free (seqs);
    return count;
}

//  --------------------------------------------------------------------------
//  Retention

//  Matching events from the cursor to the end of the log, from its index
static uint64_t
s_count_ahead (hd_pool_t *self)
{
    uint64_t end = self->hooks.log_end (self->hooks.arg), ahead = 0;
    for (uint64_t seq = self->cursor; seq < end; seq++) {
        uint32_t type_id, key_hash;
        if (self->hooks.meta (self->hooks.arg, seq, &type_id, &key_hash) &&
            s_type_matches (self, type_id))
            ahead++;
    }
    return ahead;
}

uint64_t
hd_pool_delivery_floor (hd_pool_t *self)
{
    uint64_t floor = self->cursor;
    size_t entry_cursor = 0;
    for (s_entry_t *entry; (entry = hd_hashmap_next (self->entries, &entry_cursor));)
        if (entry->seq < floor)
            floor = entry->seq;
    return floor;
}

uint64_t
hd_pool_floor (hd_pool_t *self)
{
    uint64_t floor = hd_pool_delivery_floor (self);
    size_t dead_cursor = 0;
    for (s_dead_t *dead; (dead = hd_hashmap_next (self->dead, &dead_cursor));)
        if (dead->entry.seq < floor)
            floor = dead->entry.seq;
    return floor;
}

void
hd_pool_log_truncated (hd_pool_t *self, uint64_t first_seq)
{
    //  Entries and DLQ entries whose events are gone
    uint64_t *gone = malloc ((hd_hashmap_size (self->entries) + hd_hashmap_size (self->dead) + 1) *
                             sizeof *gone);
    size_t count = 0;
    if (gone) {
        size_t entry_cursor = 0;
        for (s_entry_t *entry; (entry = hd_hashmap_next (self->entries, &entry_cursor));)
            if (entry->seq < first_seq && entry->state != S_LEASED)
                gone[count++] = entry->seq;
        for (size_t index = 0; index < count; index++) {
            s_entry_t *entry = hd_hashmap_find (self->entries, gone[index], NULL, NULL);
            s_entry_unlink (self, entry);
            s_key_release (self, entry);
            s_entry_free (self, entry);
            self->lost++;
        }
        count = 0;
        size_t dead_cursor = 0;
        for (s_dead_t *dead; (dead = hd_hashmap_next (self->dead, &dead_cursor));)
            if (dead->entry.seq < first_seq)
                gone[count++] = dead->entry.seq;
        for (size_t index = 0; index < count; index++) {
            //  Journaled, or a restart would bring the entry back
            s_record_seq (self, HERALD__STATE_OP__OP_PURGE, gone[index], 0, NULL);
            s_dead_remove (self, gone[index]);
            self->lost++;
        }
        free (gone);
    }
    if (self->cursor < first_seq) {
        //  Matching events skipped over are lost too: what the backlog still
        //  in the log no longer counts (the skipped seqs may not all match)
        uint64_t before = self->ahead;
        self->cursor = first_seq;
        self->ahead = s_count_ahead (self);
        self->lost += before > self->ahead ? before - self->ahead : 0;
        s_record_seq (self, HERALD__STATE_OP__OP_SKIP, first_seq, 0, NULL);
    }
}

//  --------------------------------------------------------------------------
//  Recovery and checkpoints

void
hd_pool_apply (hd_pool_t *self, const Herald__StateOp *op)
{
    s_entry_t *entry;
    switch (op->op_case) {
        case HERALD__STATE_OP__OP_DELIVER:
            entry = hd_hashmap_find (self->entries, op->deliver, NULL, NULL);
            if (!entry)
                entry = s_entry_new (self, op->deliver, 0, 0);
            if (entry && op->attempt > 0) { // attempt 0: taken from the log, not sent
                entry->attempt = op->attempt;
                self->delivered++;
                if (op->attempt > 1)
                    self->redelivered++;
            }
            if (self->cursor <= op->deliver)
                self->cursor = op->deliver + 1;
            break;
        case HERALD__STATE_OP__OP_ACK:
            entry = hd_hashmap_find (self->entries, op->ack, NULL, NULL);
            if (entry) {
                s_entry_free (self, entry);
                self->acked++;
            }
            break;
        case HERALD__STATE_OP__OP_NACK:
            entry = hd_hashmap_find (self->entries, op->nack, NULL, NULL);
            if (entry && op->error && *op->error) {
                free (entry->error);
                entry->error = strdup (op->error);
            }
            break;
        case HERALD__STATE_OP__OP_DEAD:
            if (!op->dead)
                break;
            entry = hd_hashmap_find (self->entries, op->dead->seq, NULL, NULL);
            if (entry)
                s_entry_free (self, entry);
            s_dead_t *dead = s_dead_copy (op->dead);
            if (dead)
                s_dead_insert (self, dead);
            self->dead_lettered++;
            if (op->dead->reason == HERALD__DLQ_REASON__TERMINATED)
                self->terminated++;
            break;
        case HERALD__STATE_OP__OP_REVIVE: s_revive (self, op->revive, 0); break;
        case HERALD__STATE_OP__OP_PURGE: s_dead_remove (self, op->purge); break;
        case HERALD__STATE_OP__OP_SKIP:
            if (self->cursor < op->skip)
                self->cursor = op->skip;
            break;
        default: break;
    }
}

void
hd_pool_restore (hd_pool_t *self, const Herald__PoolState *state)
{
    self->cursor = state->cursor;
    for (size_t index = 0; index < state->n_entries; index++) {
        const Herald__EntryState *source = state->entries[index];
        s_entry_t *entry = s_entry_new (self, source->seq, source->attempt, 0);
        if (entry && source->error && *source->error)
            entry->error = strdup (source->error);
    }
    for (size_t index = 0; index < state->n_dlq; index++) {
        s_dead_t *dead = s_dead_copy (state->dlq[index]);
        if (dead)
            s_dead_insert (self, dead);
    }
    self->acked = state->acked;
    self->delivered = state->delivered;
    self->redelivered = state->redelivered;
    self->terminated = state->terminated;
    self->dead_lettered = state->dead_lettered;
    self->lost = state->lost;
}

static int
s_compare_entries (const void *a, const void *b)
{
    uint64_t x = (*(s_entry_t *const *) a)->seq, y = (*(s_entry_t *const *) b)->seq;
    return x < y ? -1 : x > y;
}

void
hd_pool_recovered (hd_pool_t *self, int64_t now)
{
    size_t count = 0;
    s_entry_t **entries = malloc ((hd_hashmap_size (self->entries) + 1) * sizeof *entries);
    if (entries) {
        size_t entry_cursor = 0;
        for (s_entry_t *entry; (entry = hd_hashmap_next (self->entries, &entry_cursor));)
            if (entry->state == S_IDLE)
                entries[count++] = entry;
        qsort (entries, count, sizeof *entries, s_compare_entries);
        for (size_t index = 0; index < count; index++) {
            s_entry_t *entry = entries[index];
            uint32_t type_id;
            entry->enqueued = now;
            if (!self->hooks.meta (self->hooks.arg, entry->seq, &type_id, &entry->key_hash)) {
                s_entry_free (self, entry);
                self->lost++;
                continue;
            }
            if (!s_key_block (self, entry))
                s_entry_ready (self, entry, false);
        }
        free (entries);
    }
    //  The backlog past the cursor, from the log's index
    self->ahead = s_count_ahead (self);
}

void
hd_pool_export (hd_pool_t *self, Herald__PoolState *state)
{
    herald__pool_state__init (state);
    Herald__PoolDef *def = calloc (1, sizeof *def);
    Herald__PoolOptions *options = calloc (1, sizeof *options);
    if (!def || !options) {
        free (def);
        free (options);
        return;
    }
    herald__pool_def__init (def);
    herald__pool_options__init (options);
    def->id = self->id;
    def->name = self->name;
    def->filter = self->filter;
    def->start_seq = self->start_seq;
    options->ordered = self->config.ordered;
    options->max_deliver = self->config.max_deliver;
    options->ack_wait_ms = (uint32_t) self->config.ack_wait_ms;
    options->backoff_initial_ms = (uint32_t) self->config.backoff_initial_ms;
    options->backoff_max_ms = (uint32_t) self->config.backoff_max_ms;
    options->backoff_multiplier = self->config.backoff_multiplier;
    options->backoff_jitter = self->config.backoff_jitter;
    def->options = options;
    state->def = def;
    state->cursor = self->cursor;
    size_t entry_count = hd_hashmap_size (self->entries);
    state->entries = calloc (entry_count + 1, sizeof *state->entries);
    Herald__EntryState *entry_states = calloc (entry_count + 1, sizeof *entry_states);
    if (state->entries && entry_states) {
        size_t entry_cursor = 0;
        for (s_entry_t *entry; (entry = hd_hashmap_next (self->entries, &entry_cursor));) {
            Herald__EntryState *out = &entry_states[state->n_entries];
            herald__entry_state__init (out);
            out->seq = entry->seq;
            out->attempt = entry->attempt;
            out->error = entry->error ? entry->error : "";
            state->entries[state->n_entries++] = out;
        }
        if (state->n_entries == 0)
            free (entry_states); // export_free finds the block through entries[0]
    } else
        free (entry_states);
    size_t dead_count = hd_hashmap_size (self->dead);
    state->dlq = calloc (dead_count + 1, sizeof *state->dlq);
    if (state->dlq)
        for (s_dead_t *dead = zlistx_first (self->dead_order); dead;
             dead = zlistx_next (self->dead_order))
            state->dlq[state->n_dlq++] = &dead->entry;
    state->acked = self->acked;
    state->delivered = self->delivered;
    state->redelivered = self->redelivered;
    state->terminated = self->terminated;
    state->dead_lettered = self->dead_lettered;
    state->lost = self->lost;
}

void
hd_pool_export_free (Herald__PoolState *state)
{
    if (state->def)
        free (state->def->options);
    free (state->def);
    if (state->entries && state->n_entries)
        free (state->entries[0]); // the EntryState array, allocated as one block
    free (state->entries);
    free (state->dlq);
    herald__pool_state__init (state);
}

//  --------------------------------------------------------------------------

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
    stats->dlq = hd_hashmap_size (self->dead);
    stats->ordered = self->config.ordered;
    stats->max_deliver = self->config.max_deliver;
    stats->cursor = self->cursor;
    stats->floor = hd_pool_floor (self);
    stats->lost = self->lost;
    stats->blocked = self->blocked;
    stats->dlq_dropped = self->dlq_dropped;
    stats->runs = self->runs;
    stats->run_events = self->run_events;
    int64_t oldest = now;
    size_t entry_cursor = 0;
    for (s_entry_t *entry; (entry = hd_hashmap_next (self->entries, &entry_cursor));)
        if (entry->enqueued < oldest)
            oldest = entry->enqueued;
    stats->oldest_pending_ms = (uint64_t) (now - oldest);
}

size_t
hd_pool_workers (hd_pool_t *self)
{
    return self->member_count;
}

size_t
hd_pool_floor_cost (hd_pool_t *self)
{
    return hd_hashmap_capacity (self->entries);
}

size_t
hd_pool_inflight (hd_pool_t *self)
{
    return self->leases.size;
}

uint64_t
hd_pool_cursor (hd_pool_t *self)
{
    return self->cursor;
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
