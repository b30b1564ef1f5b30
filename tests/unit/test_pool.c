/*  Unit tests for the pool scheduler (broker/pool.c) over a fake log. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "pool.h"

#define MAX_RECORDS    4096
#define MAX_DELIVERIES 8192
#define MAX_OPS        16384

//  A fake log: records with a type id and a key hash, and what the pool
//  did through its hooks.
typedef struct {
    const char *types[16];
    uint32_t type_count;
    uint32_t type_id[MAX_RECORDS];
    uint32_t key_hash[MAX_RECORDS];
    bool absent[MAX_RECORDS];
    uint64_t next_seq;
    struct {
        void *handle;
        uint64_t seq;
        uint32_t attempt;
    } delivered[MAX_DELIVERIES];
    size_t delivered_count;
    int refuse; // deliver returns -1 while > 0 (counts down)
    uint8_t *ops[MAX_OPS];
    size_t op_sizes[MAX_OPS];
    size_t op_count;
} fake_t;

static uint32_t
s_type (fake_t *fake, const char *type)
{
    for (uint32_t id = 0; id < fake->type_count; id++)
        if (strcmp (fake->types[id], type) == 0)
            return id;
    fake->types[fake->type_count] = type;
    return fake->type_count++;
}

static uint64_t
s_append (fake_t *fake, const char *type, uint32_t key_hash)
{
    uint64_t seq = fake->next_seq++;
    fake->type_id[seq] = s_type (fake, type);
    fake->key_hash[seq] = key_hash;
    return seq;
}

static bool
s_meta (void *arg, uint64_t seq, uint32_t *type_id, uint32_t *key_hash)
{
    fake_t *fake = arg;
    if (seq == 0 || seq >= fake->next_seq || fake->absent[seq])
        return false;
    *type_id = fake->type_id[seq];
    *key_hash = fake->key_hash[seq];
    return true;
}

static const char *
s_type_name (void *arg, uint32_t type_id)
{
    fake_t *fake = arg;
    return type_id < fake->type_count ? fake->types[type_id] : "";
}

static uint64_t
s_log_end (void *arg)
{
    return ((fake_t *) arg)->next_seq;
}

static int
s_deliver (void *handle, uint64_t seq, uint32_t attempt, void *arg)
{
    fake_t *fake = arg;
    if (fake->refuse > 0) {
        fake->refuse--;
        return -1;
    }
    assert_true (fake->delivered_count < MAX_DELIVERIES);
    fake->delivered[fake->delivered_count].handle = handle;
    fake->delivered[fake->delivered_count].seq = seq;
    fake->delivered[fake->delivered_count].attempt = attempt;
    fake->delivered_count++;
    return 0;
}

static void
s_record (void *arg, const Herald__StateOp *op)
{
    fake_t *fake = arg;
    assert_true (fake->op_count < MAX_OPS);
    size_t size = herald__state_op__get_packed_size (op);
    fake->ops[fake->op_count] = malloc (size + 1);
    herald__state_op__pack (op, fake->ops[fake->op_count]);
    fake->op_sizes[fake->op_count++] = size;
}

static void
s_describe (void *arg, uint64_t seq, char **id, char **type)
{
    fake_t *fake = arg;
    char text[32];
    snprintf (text, sizeof text, "id-%llu", (unsigned long long) seq);
    *id = strdup (text);
    *type = strdup (fake->types[fake->type_id[seq]]);
}

static fake_t *
s_fake_new (void)
{
    fake_t *fake = calloc (1, sizeof *fake);
    fake->next_seq = 1;
    return fake;
}

static void
s_fake_destroy (fake_t **fake_p)
{
    fake_t *fake = *fake_p;
    for (size_t index = 0; index < fake->op_count; index++)
        free (fake->ops[index]);
    free (fake);
    *fake_p = NULL;
}

static hd_pool_t *
s_pool (fake_t *fake, const char *filter, hd_pool_config_t *config, uint64_t start)
{
    hd_pool_hooks_t hooks = {s_meta, s_type_name, s_log_end, s_deliver, s_record, s_describe, fake};
    hd_pool_t *pool = hd_pool_new (1, "p", filter, config, start, &hooks);
    assert_non_null (pool);
    return pool;
}

static void
s_config (hd_pool_config_t *config)
{
    hd_pool_config_defaults (config);
    config->ack_wait_ms = 1000;
    config->backoff_initial_ms = 100;
    config->backoff_max_ms = 1000;
    config->backoff_jitter = 0;
    config->max_deliver = 0;
}

//  Publish n events of type into the fake log and tell the pool.
static void
s_publish (fake_t *fake, hd_pool_t *pool, const char *type, uint32_t key_hash, int n)
{
    for (int index = 0; index < n; index++) {
        uint64_t seq = s_append (fake, type, key_hash);
        if (hd_pool_matches (pool, type, strlen (type)))
            hd_pool_notify (pool, seq);
    }
}

//  --------------------------------------------------------------------------

static void
test_credit_and_lru (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    hd_pool_t *pool = s_pool (fake, "orders.", &config, 1);
    int a, b, c;
    hd_member_t *ma = hd_pool_join (pool, &a, 2);
    hd_pool_join (pool, &b, 2);
    hd_pool_join (pool, &c, 2);
    s_publish (fake, pool, "orders.placed", 0, 10);
    s_publish (fake, pool, "payments.x", 0, 3); // not for this pool
    assert_int_equal (hd_pool_pending (pool), 10);
    assert_int_equal (hd_pool_dispatch (pool, 0), 6); // 3 members × credit 2
    void *order[] = {&a, &b, &c, &a, &b, &c};
    for (int index = 0; index < 6; index++) {
        assert_ptr_equal (fake->delivered[index].handle, order[index]);
        assert_int_equal (fake->delivered[index].seq, (uint64_t) index + 1);
        assert_int_equal (fake->delivered[index].attempt, 1);
    }
    assert_int_equal (hd_pool_inflight (pool), 6);
    assert_int_equal (hd_pool_pending (pool), 4);
    //  An ACK frees one credit: that member gets the next event
    assert_int_equal (hd_pool_ack (pool, ma, 4, 1), 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    assert_ptr_equal (fake->delivered[6].handle, &a);
    assert_int_equal (fake->delivered[6].seq, 7);
    //  Raising credit lets more go; the cursor never stops at other types
    hd_pool_set_credit (pool, ma, 5);
    assert_int_equal (hd_pool_dispatch (pool, 0), 3);
    assert_int_equal (hd_pool_pending (pool), 0);
    //  The cursor moves lazily: it stops after the last event it handed out
    assert_int_equal (hd_pool_cursor (pool), 11);
    assert_int_equal (hd_member_inflight (ma), 5);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

static void
test_stale_tags_refused (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a, b;
    hd_member_t *ma = hd_pool_join (pool, &a, 1);
    hd_member_t *mb = hd_pool_join (pool, &b, 1);
    s_publish (fake, pool, "x", 0, 2);
    hd_pool_dispatch (pool, 0);
    assert_int_equal (hd_pool_ack (pool, ma, 1, 2), -1);  // wrong attempt
    assert_int_equal (hd_pool_ack (pool, mb, 1, 1), -1);  // not its lease
    assert_int_equal (hd_pool_ack (pool, ma, 99, 1), -1); // unknown seq
    assert_int_equal (hd_pool_ack (pool, ma, 1, 1), 0);
    assert_int_equal (hd_pool_ack (pool, ma, 1, 1), -1); // already acked
    assert_int_equal (hd_pool_progress (pool, ma, 1, 1, 0), -1);
    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 0);
    assert_int_equal (stats.stale, 5);
    assert_int_equal (stats.acked, 1);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

static void
test_nack_expiry_and_backoff (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a;
    hd_member_t *ma = hd_pool_join (pool, &a, 2);
    s_publish (fake, pool, "x", 0, 2);
    hd_pool_dispatch (pool, 0);
    //  NACK with a delay: not before it
    assert_int_equal (hd_pool_nack (pool, ma, 1, 1, 500, "busy", 0), 0);
    assert_int_equal (hd_pool_dispatch (pool, 499), 0);
    hd_pool_tick (pool, 499);
    assert_int_equal (hd_pool_dispatch (pool, 499), 0);
    hd_pool_tick (pool, 500);
    assert_int_equal (hd_pool_dispatch (pool, 500), 1);
    assert_int_equal (fake->delivered[2].seq, 1);
    assert_int_equal (fake->delivered[2].attempt, 2);
    //  A lease that runs out: backoff for attempt 1 (100 ms), then attempt 2
    assert_int_equal (hd_pool_next_wakeup (pool), 1000); // seq 2 leased at 0
    hd_pool_tick (pool, 1000);
    assert_int_equal (hd_pool_dispatch (pool, 1000), 0);
    hd_pool_tick (pool, 1100);
    assert_int_equal (hd_pool_dispatch (pool, 1100), 1);
    assert_int_equal (fake->delivered[3].seq, 2);
    assert_int_equal (fake->delivered[3].attempt, 2);
    //  PROGRESS moves the deadline: seq 2 survives 2200, seq 1 (not
    //  progressed, leased at 500) does not
    assert_int_equal (hd_pool_progress (pool, ma, 2, 2, 1900), 0);
    hd_pool_tick (pool, 2200);
    assert_int_equal (hd_pool_inflight (pool), 1);
    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 2200);
    assert_int_equal (stats.expired, 2);
    assert_int_equal (stats.nacked, 1);
    assert_int_equal (stats.redelivered, 2);
    //  Backoff grows and is capped; jitter stays within its spread
    assert_int_equal (hd_pool_backoff_ms (pool, 1), 100);
    assert_int_equal (hd_pool_backoff_ms (pool, 3), 400);
    assert_int_equal (hd_pool_backoff_ms (pool, 10), 1000);
    hd_pool_destroy (&pool);
    config.backoff_jitter = 0.2;
    pool = s_pool (fake, "", &config, 1);
    for (int sample = 0; sample < 1000; sample++) {
        int64_t delay = hd_pool_backoff_ms (pool, 2);
        assert_true (delay >= 160 && delay <= 240);
    }
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

static void
test_leave_releases_first_in_line (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a, b;
    hd_member_t *ma = hd_pool_join (pool, &a, 2);
    s_publish (fake, pool, "x", 0, 4);
    hd_pool_dispatch (pool, 0); // a holds 1 and 2
    hd_pool_leave (pool, &ma, 10);
    assert_null (ma);
    hd_pool_join (pool, &b, 2);
    assert_int_equal (hd_pool_dispatch (pool, 10), 2);
    assert_int_equal (fake->delivered[2].seq, 1);
    assert_int_equal (fake->delivered[2].attempt, 2);
    assert_int_equal (fake->delivered[3].seq, 2);
    assert_int_equal (hd_pool_workers (pool), 1);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

static void
test_refused_delivery_keeps_event (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a;
    hd_member_t *ma = hd_pool_join (pool, &a, 5);
    s_publish (fake, pool, "x", 0, 3);
    fake->refuse = 1;
    assert_int_equal (hd_pool_dispatch (pool, 0), 0); // stalled after the refusal
    assert_int_equal (hd_pool_pending (pool), 3);
    hd_pool_wake (pool, ma);
    assert_int_equal (hd_pool_dispatch (pool, 0), 3);
    assert_int_equal (fake->delivered[0].seq, 1);
    assert_int_equal (fake->delivered[0].attempt, 1);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

static void
test_max_deliver_and_term_to_dlq (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    config.max_deliver = 2;
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a;
    hd_member_t *ma = hd_pool_join (pool, &a, 3);
    s_publish (fake, pool, "orders.placed", 0, 3);
    hd_pool_dispatch (pool, 0);
    //  seq 1: two NACKs → DLQ with the last error
    hd_pool_nack (pool, ma, 1, 1, 1, "first", 0);
    hd_pool_tick (pool, 10);
    hd_pool_dispatch (pool, 10);
    assert_int_equal (hd_pool_nack (pool, ma, 1, 2, 1, "card declined", 10), 0);
    //  seq 2: TERM
    assert_int_equal (hd_pool_term (pool, ma, 2, 1, "poison", 10), 0);
    //  seq 3: expires twice
    hd_pool_tick (pool, 1000);
    hd_pool_tick (pool, 1200);
    hd_pool_dispatch (pool, 1200);
    hd_pool_tick (pool, 3000);
    assert_int_equal (hd_pool_dlq_size (pool), 3);
    const Herald__DlqEntry *entry = hd_pool_dlq_get (pool, 1);
    assert_non_null (entry);
    assert_int_equal (entry->reason, HERALD__DLQ_REASON__MAX_DELIVER);
    assert_int_equal (entry->attempts, 2);
    assert_string_equal (entry->error, "card declined");
    assert_string_equal (entry->id, "id-1");
    assert_string_equal (entry->type, "orders.placed");
    entry = hd_pool_dlq_get (pool, 2);
    assert_int_equal (entry->reason, HERALD__DLQ_REASON__TERMINATED);
    assert_string_equal (entry->error, "poison");
    entry = hd_pool_dlq_get (pool, 3);
    assert_int_equal (entry->reason, HERALD__DLQ_REASON__MAX_DELIVER);
    assert_non_null (strstr (entry->error, "lease expired"));
    //  List in seq order, from a seq, limited
    const Herald__DlqEntry *list[4];
    assert_int_equal (hd_pool_dlq_list (pool, 2, list, 4), 2);
    assert_int_equal (list[0]->seq, 2);
    assert_int_equal (list[1]->seq, 3);
    assert_int_equal (hd_pool_dlq_list (pool, 0, list, 1), 1);
    assert_int_equal (list[0]->seq, 1);
    //  Replay one by seq: attempts start again
    uint64_t seqs[] = {2};
    Herald__DlqRequest request = HERALD__DLQ_REQUEST__INIT;
    request.n_seqs = 1;
    request.seqs = seqs;
    assert_int_equal (hd_pool_dlq_replay (pool, &request, 3000), 1);
    assert_int_equal (hd_pool_dispatch (pool, 3000), 1);
    assert_int_equal (fake->delivered[fake->delivered_count - 1].seq, 2);
    assert_int_equal (fake->delivered[fake->delivered_count - 1].attempt, 1);
    //  Purge the rest
    Herald__DlqRequest all = HERALD__DLQ_REQUEST__INIT;
    all.all = true;
    assert_int_equal (hd_pool_dlq_purge (pool, &all), 2);
    assert_int_equal (hd_pool_dlq_size (pool), 0);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

static void
test_max_dlq_drops_oldest (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    config.max_dlq = 2;
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a;
    hd_member_t *ma = hd_pool_join (pool, &a, 3);
    s_publish (fake, pool, "x", 0, 3);
    hd_pool_dispatch (pool, 0);
    for (uint64_t seq = 1; seq <= 3; seq++)
        hd_pool_term (pool, ma, seq, 1, "bad", 0);
    assert_int_equal (hd_pool_dlq_size (pool), 2);
    assert_null (hd_pool_dlq_get (pool, 1));
    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 0);
    assert_int_equal (stats.dlq_dropped, 1);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

//  Is any key leased twice at once? Checked after every step.
static bool
s_key_doubly_leased (fake_t *fake, uint64_t *leased, size_t leased_count)
{
    for (size_t i = 0; i < leased_count; i++)
        for (size_t j = i + 1; j < leased_count; j++)
            if (fake->key_hash[leased[i]] && fake->key_hash[leased[i]] == fake->key_hash[leased[j]])
                return true;
    return false;
}

static void
test_ordered_keys (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    config.ordered = true;
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a, b;
    hd_member_t *ma = hd_pool_join (pool, &a, 4);
    hd_member_t *mb = hd_pool_join (pool, &b, 4);
    //  Keys 7 and 9 interleaved: seqs 1(7) 2(9) 3(7) 4(9) 5(7) 6(9); 7, 8 no key
    for (int index = 0; index < 6; index++)
        s_publish (fake, pool, "x", index % 2 ? 9 : 7, 1);
    s_publish (fake, pool, "x", 0, 2);
    hd_pool_dispatch (pool, 0);
    //  One event per key out, plus the keyless ones
    assert_int_equal (hd_pool_inflight (pool), 4);
    uint64_t leased[8];
    for (size_t index = 0; index < fake->delivered_count; index++)
        leased[index] = fake->delivered[index].seq;
    assert_false (s_key_doubly_leased (fake, leased, fake->delivered_count));
    assert_int_equal (leased[0], 1);
    assert_int_equal (leased[1], 2);
    //  Both workers got work
    assert_ptr_not_equal (fake->delivered[0].handle, fake->delivered[1].handle);
    //  NACK seq 1 (key 7): seq 3 stays back until seq 1 is acked
    hd_member_t *holder = fake->delivered[0].handle == &a ? ma : mb;
    hd_pool_nack (pool, holder, 1, 1, 50, "later", 0);
    hd_pool_dispatch (pool, 0);
    for (size_t index = 4; index < fake->delivered_count; index++)
        assert_int_not_equal (fake->key_hash[fake->delivered[index].seq], 7);
    hd_pool_tick (pool, 50);
    hd_pool_dispatch (pool, 50);
    size_t last = fake->delivered_count - 1;
    assert_int_equal (fake->delivered[last].seq, 1);
    assert_int_equal (fake->delivered[last].attempt, 2);
    holder = fake->delivered[last].handle == &a ? ma : mb;
    assert_int_equal (hd_pool_ack (pool, holder, 1, 2), 0);
    hd_pool_dispatch (pool, 50);
    assert_int_equal (fake->delivered[fake->delivered_count - 1].seq, 3);
    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 50);
    assert_int_equal (stats.blocked, 3); // 5 behind 3 (key 7), 4 and 6 behind 2 (key 9)
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

static void
test_full_floor_and_truncation (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    config.max_pending = 5;
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    s_publish (fake, pool, "x", 0, 4);
    assert_false (hd_pool_full (pool));
    s_publish (fake, pool, "x", 0, 1);
    assert_true (hd_pool_full (pool)); // the backlog ahead of the cursor counts
    hd_pool_forget (pool, 5);          // its append was rolled back: gone from the log
    fake->absent[5] = true;
    assert_false (hd_pool_full (pool));
    int a;
    hd_member_t *ma = hd_pool_join (pool, &a, 2);
    hd_pool_dispatch (pool, 0);
    hd_pool_ack (pool, ma, 2, 1);
    assert_int_equal (hd_pool_floor (pool), 1); // seq 1 still leased
    hd_pool_ack (pool, ma, 1, 1);
    assert_int_equal (hd_pool_floor (pool), 3);
    //  Retention took seqs below 5: seqs 3 and 4 are lost to this pool
    fake->absent[3] = fake->absent[4] = true;
    hd_pool_log_truncated (pool, 5);
    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 0);
    assert_int_equal (stats.lost, 2);
    assert_int_equal (hd_pool_cursor (pool), 5);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

//  Feed the ops the first pool journaled into a fresh one.
static hd_pool_t *
s_replay_ops (fake_t *fake, hd_pool_config_t *config, size_t from_op, hd_pool_t *pool)
{
    if (!pool)
        pool = s_pool (fake, "", config, 1);
    for (size_t index = from_op; index < fake->op_count; index++) {
        Herald__StateOp *op =
            herald__state_op__unpack (NULL, fake->op_sizes[index], fake->ops[index]);
        assert_non_null (op);
        hd_pool_apply (pool, op);
        herald__state_op__free_unpacked (op, NULL);
    }
    return pool;
}

static void
test_recovery_from_journal (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    config.max_deliver = 5;
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a;
    hd_member_t *ma = hd_pool_join (pool, &a, 4);
    s_publish (fake, pool, "x", 0, 6);
    hd_pool_dispatch (pool, 0);                   // 1..4 out
    hd_pool_ack (pool, ma, 1, 1);                 // acked
    hd_pool_nack (pool, ma, 2, 1, 10, "nope", 0); // back with attempt 1 used
    hd_pool_term (pool, ma, 3, 1, "poison", 0);   // DLQ
    hd_pool_tick (pool, 10);
    hd_pool_dispatch (pool, 10); // credit for 3 more: 2 (attempt 2), 5, 6
    size_t journaled = fake->op_count;
    hd_pool_destroy (&pool);

    //  The broker died: replay the journal into a new pool
    size_t before = fake->delivered_count;
    hd_pool_t *again = s_replay_ops (fake, &config, 0, NULL);
    assert_int_equal (fake->op_count, journaled); // replay journals nothing
    hd_pool_recovered (again, 100);
    assert_int_equal (hd_pool_dlq_size (again), 1);
    assert_string_equal (hd_pool_dlq_get (again, 3)->error, "poison");
    assert_int_equal (hd_pool_cursor (again), 7);
    int b;
    hd_pool_join (again, &b, 10);
    hd_pool_dispatch (again, 100);
    //  Everything un-acked comes back in seq order with its attempts
    //  counted: 2 (attempt 3), 4, 5, 6 (attempt 2); never 1 (acked) or 3 (DLQ)
    uint64_t want_seq[] = {2, 4, 5, 6};
    uint32_t want_attempt[] = {3, 2, 2, 2};
    assert_int_equal (fake->delivered_count - before, 4);
    for (int index = 0; index < 4; index++) {
        assert_int_equal (fake->delivered[before + index].seq, want_seq[index]);
        assert_int_equal (fake->delivered[before + index].attempt, want_attempt[index]);
    }
    Herald__PoolStats stats;
    hd_pool_stats (again, &stats, 100);
    assert_int_equal (stats.acked, 1);
    hd_pool_destroy (&again);
    s_fake_destroy (&fake);
}

static void
test_checkpoint_round_trip (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a;
    hd_member_t *ma = hd_pool_join (pool, &a, 2);
    s_publish (fake, pool, "x", 0, 4);
    hd_pool_dispatch (pool, 0);
    hd_pool_ack (pool, ma, 1, 1);
    hd_pool_term (pool, ma, 2, 1, "bad", 0);
    //  Checkpoint: export, pack, unpack, restore into a fresh pool
    Herald__PoolState exported;
    hd_pool_export (pool, &exported);
    size_t size = herald__pool_state__get_packed_size (&exported);
    uint8_t *blob = malloc (size);
    herald__pool_state__pack (&exported, blob);
    hd_pool_export_free (&exported);
    size_t checkpoint_ops = fake->op_count;
    hd_pool_dispatch (pool, 0); // 3 and 4 go out after the checkpoint
    hd_pool_destroy (&pool);

    Herald__PoolState *state_in = herald__pool_state__unpack (NULL, size, blob);
    assert_non_null (state_in);
    assert_int_equal (state_in->cursor, 3);
    hd_pool_t *again = s_pool (fake, "", &config, 1);
    hd_pool_restore (again, state_in);
    herald__pool_state__free_unpacked (state_in, NULL);
    free (blob);
    s_replay_ops (fake, &config, checkpoint_ops, again);
    hd_pool_recovered (again, 10);
    assert_int_equal (hd_pool_dlq_size (again), 1);
    size_t before = fake->delivered_count;
    int b;
    hd_pool_join (again, &b, 5);
    hd_pool_dispatch (again, 10);
    assert_int_equal (fake->delivered_count - before, 2);
    assert_int_equal (fake->delivered[before].seq, 3);
    assert_int_equal (fake->delivered[before].attempt, 2);
    assert_int_equal (fake->delivered[before + 1].seq, 4);
    hd_pool_destroy (&again);
    s_fake_destroy (&fake);
}

static void
test_start_seq_counts_backlog (void **state)
{
    fake_t *fake = s_fake_new ();
    for (int index = 0; index < 10; index++)
        s_append (fake, index % 2 ? "a.x" : "b.x", 0);
    hd_pool_config_t config;
    s_config (&config);
    hd_pool_t *pool = s_pool (fake, "a.", &config, 5);
    hd_pool_recovered (pool, 0);
    assert_int_equal (hd_pool_pending (pool), 3); // seqs 6, 8, 10
    int a;
    hd_pool_join (pool, &a, 10);
    assert_int_equal (hd_pool_dispatch (pool, 0), 3);
    assert_int_equal (fake->delivered[0].seq, 6);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

//  Who got each of the deliveries from first on, as 'a' / 'b' in a string
static void
s_takers (fake_t *fake, size_t first, int *a, char *out)
{
    size_t length = 0;
    for (size_t index = first; index < fake->delivered_count; index++)
        out[length++] = fake->delivered[index].handle == a ? 'a' : 'b';
    out[length] = 0;
}

//  Publish n events, dispatch them, and append who took them to takers
static void
s_dispatch_new (fake_t *fake, hd_pool_t *pool, int n, int *a, char *takers)
{
    size_t before = fake->delivered_count;
    s_publish (fake, pool, "x", 0, n);
    hd_pool_dispatch (pool, 0);
    s_takers (fake, before, a, takers + strlen (takers));
}

static void
s_ack_all (fake_t *fake, hd_pool_t *pool, int *a, hd_member_t *ma, hd_member_t *mb)
{
    for (size_t index = 0; index < fake->delivered_count; index++)
        hd_pool_ack (pool, fake->delivered[index].handle == a ? ma : mb, fake->delivered[index].seq,
                     fake->delivered[index].attempt);
    hd_pool_wake (pool, ma);
    hd_pool_wake (pool, mb);
}

static void
test_dispatch_runs (void **state)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    config.burst_us = 100;
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a, b;
    hd_member_t *ma = hd_pool_join (pool, &a, 6);
    hd_member_t *mb = hd_pool_join (pool, &b, 6);
    char takers[64] = "";
    //  Handler times not said: one event each, in turn
    assert_int_equal (hd_member_run_max (ma), 1);
    s_dispatch_new (fake, pool, 4, &a, takers);
    assert_string_equal (takers, "abab");
    s_ack_all (fake, pool, &a, ma, mb);
    //  Handlers of 40 µs: runs of 100 µs / 40 µs = 2
    hd_pool_set_handle_ns (pool, ma, 40000);
    hd_pool_set_handle_ns (pool, mb, 40000);
    assert_int_equal (hd_member_run_max (ma), 2);
    takers[0] = 0;
    s_dispatch_new (fake, pool, 6, &a, takers);
    assert_string_equal (takers, "aabbaa");
    //  A run goes on across passes: one event a pass still comes in twos
    //  (and a run ends early when the credit is full: a has 6 of 6 after it)
    takers[0] = 0;
    for (int pass = 0; pass < 4; pass++)
        s_dispatch_new (fake, pool, 1, &a, takers);
    assert_string_equal (takers, "bbaa");
    assert_int_equal (hd_member_inflight (ma), 6);
    //  "Not said" leaves the run length as it was
    hd_pool_set_handle_ns (pool, ma, 0);
    assert_int_equal (hd_member_run_max (ma), 2);
    //  Fast handlers: a run takes what credit is left
    s_ack_all (fake, pool, &a, ma, mb);
    hd_pool_set_handle_ns (pool, ma, 500);
    hd_pool_set_handle_ns (pool, mb, 500);
    assert_int_equal (hd_member_run_max (mb), 200);
    takers[0] = 0;
    s_dispatch_new (fake, pool, 8, &a, takers);
    assert_string_equal (takers, "bbbbbbaa");
    assert_int_equal (hd_member_inflight (mb), 6);
    //  Runs counted: abab (4), aa bb aa (3), bb aa (2), bbbbbb aa (2)
    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 0);
    assert_int_equal (stats.runs, 11);
    assert_int_equal (stats.run_events, 22);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

//  Two workers whose handlers take handle_ns, under burst_us: who takes
//  each of four events
static void
s_takers_of_four (uint32_t burst_us, uint32_t handle_ns, char *takers)
{
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    config.burst_us = burst_us;
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a, b;
    hd_member_t *ma = hd_pool_join (pool, &a, 10);
    hd_member_t *mb = hd_pool_join (pool, &b, 10);
    hd_pool_set_handle_ns (pool, ma, handle_ns);
    hd_pool_set_handle_ns (pool, mb, handle_ns);
    s_publish (fake, pool, "x", 0, 4);
    assert_int_equal (hd_pool_dispatch (pool, 0), 4);
    s_takers (fake, 0, &a, takers);
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

static void
test_dispatch_one_each (void **state)
{
    char takers[8];
    //  Handlers slower than the burst: one event each
    s_takers_of_four (100, 2000000, takers);
    assert_string_equal (takers, "abab");
    //  No burst: one each whatever the handlers take
    s_takers_of_four (0, 1, takers);
    assert_string_equal (takers, "abab");
    //  And the runs at all: fast handlers under a burst take all four
    s_takers_of_four (100, 1, takers);
    assert_string_equal (takers, "aaaa");
    //  One worker alone, whatever its runs, gets every event
    fake_t *fake = s_fake_new ();
    hd_pool_config_t config;
    s_config (&config);
    hd_pool_t *pool = s_pool (fake, "", &config, 1);
    int a;
    hd_member_t *ma = hd_pool_join (pool, &a, 10);
    hd_pool_set_handle_ns (pool, ma, 40000);
    takers[0] = 0;
    s_dispatch_new (fake, pool, 5, &a, takers);
    assert_string_equal (takers, "aaaaa");
    hd_pool_destroy (&pool);
    s_fake_destroy (&fake);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_credit_and_lru),
        cmocka_unit_test (test_stale_tags_refused),
        cmocka_unit_test (test_nack_expiry_and_backoff),
        cmocka_unit_test (test_leave_releases_first_in_line),
        cmocka_unit_test (test_refused_delivery_keeps_event),
        cmocka_unit_test (test_max_deliver_and_term_to_dlq),
        cmocka_unit_test (test_max_dlq_drops_oldest),
        cmocka_unit_test (test_ordered_keys),
        cmocka_unit_test (test_full_floor_and_truncation),
        cmocka_unit_test (test_recovery_from_journal),
        cmocka_unit_test (test_checkpoint_round_trip),
        cmocka_unit_test (test_start_seq_counts_backlog),
        cmocka_unit_test (test_dispatch_runs),
        cmocka_unit_test (test_dispatch_one_each),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
