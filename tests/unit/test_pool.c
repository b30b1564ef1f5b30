/*  Unit tests for broker/pool: the consumer-group scheduler.

    A fake deliver callback records every (handle, seq, attempt) it accepts;
    a fake release callback records every seq the pool lets go. Time is
    passed explicitly, so nothing here sleeps.
*/
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "pool.h"

#define MAX_LOG 512

typedef struct {
    void *handle;
    uint64_t seq;
    uint32_t attempt;
} delivery_t;

typedef struct {
    delivery_t delivered[MAX_LOG];
    size_t delivered_count;
    void *refuse;   // deliveries to this handle return -1
    size_t refused; // how many were refused
    uint64_t released[MAX_LOG];
    size_t released_count;
} fake_t;

//  Worker handles: only their addresses matter
static int worker_a, worker_b, worker_c;
#define A (&worker_a)
#define B (&worker_b)
#define C (&worker_c)

static int
s_deliver (void *handle, uint64_t seq, uint32_t attempt, void *arg)
{
    fake_t *fake = arg;
    if (handle == fake->refuse) {
        fake->refused++;
        return -1;
    }
    assert_true (fake->delivered_count < MAX_LOG);
    fake->delivered[fake->delivered_count++] = (delivery_t){handle, seq, attempt};
    return 0;
}

static void
s_release (uint64_t seq, void *arg)
{
    fake_t *fake = arg;
    assert_true (fake->released_count < MAX_LOG);
    fake->released[fake->released_count++] = seq;
}

//  Deterministic configuration: no jitter, small round numbers
static hd_pool_config_t
s_config (void)
{
    hd_pool_config_t config;
    hd_pool_config_defaults (&config);
    config.ack_wait_ms = 1000;
    config.backoff_initial_ms = 100;
    config.backoff_max_ms = 1000;
    config.backoff_multiplier = 2.0;
    config.backoff_jitter = 0;
    config.max_pending = 1000;
    config.max_parked = 100;
    return config;
}

static hd_pool_t *
s_pool (fake_t *fake, const hd_pool_config_t *config)
{
    memset (fake, 0, sizeof *fake);
    hd_pool_t *pool = hd_pool_new ("jobs", "jobs.", config, s_deliver, s_release, fake);
    assert_non_null (pool);
    return pool;
}

static void
s_enqueue_range (hd_pool_t *pool, uint64_t first, uint64_t last, int64_t now)
{
    for (uint64_t seq = first; seq <= last; seq++)
        assert_int_equal (hd_pool_enqueue (pool, seq, now), 0);
}

static void
s_assert_delivery (fake_t *fake, size_t index, void *handle, uint64_t seq, uint32_t attempt)
{
    assert_true (index < fake->delivered_count);
    assert_ptr_equal (fake->delivered[index].handle, handle);
    assert_int_equal (fake->delivered[index].seq, seq);
    assert_int_equal (fake->delivered[index].attempt, attempt);
}

//  --------------------------------------------------------------------------

static void
test_config_defaults (void **state)
{
    hd_pool_config_t config;
    hd_pool_config_defaults (&config);
    assert_int_equal (config.ack_wait_ms, 30000);
    assert_int_equal (config.backoff_initial_ms, 1000);
    assert_int_equal (config.backoff_max_ms, 60000);
    assert_true (config.backoff_multiplier == 2.0);
    assert_true (config.backoff_jitter == 0.2);
    assert_true (config.max_pending > 0);
    assert_true (config.max_parked > 0);
}

static void
test_delivers_only_with_credit (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);

    //  No worker: events wait
    s_enqueue_range (pool, 1, 3, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (hd_pool_pending (pool), 3);
    assert_int_equal (fake.delivered_count, 0);

    //  A has no credit, B has one
    hd_member_t *a = hd_pool_join (pool, A, 0);
    hd_member_t *b = hd_pool_join (pool, B, 1);
    assert_non_null (a);
    assert_non_null (b);
    assert_int_equal (hd_pool_workers (pool), 2);
    assert_int_equal (hd_member_credit (a), 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    assert_int_equal (fake.delivered_count, 1);
    s_assert_delivery (&fake, 0, B, 1, 1);
    assert_int_equal (hd_member_inflight (a), 0);
    assert_int_equal (hd_member_inflight (b), 1);
    assert_int_equal (hd_pool_pending (pool), 2);
    assert_int_equal (hd_pool_inflight (pool), 1);

    //  Nobody has free credit: nothing moves
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (fake.delivered_count, 1);

    //  A gets credit: it takes the rest
    hd_pool_set_credit (pool, a, 2);
    assert_int_equal (hd_member_credit (a), 2);
    assert_int_equal (hd_pool_dispatch (pool, 0), 2);
    s_assert_delivery (&fake, 1, A, 2, 1);
    s_assert_delivery (&fake, 2, A, 3, 1);
    assert_int_equal (hd_pool_pending (pool), 0);
    assert_int_equal (hd_pool_inflight (pool), 3);
    assert_int_equal (fake.released_count, 0);

    hd_pool_destroy (&pool);
    assert_null (pool);
    //  destroy does not call back
    assert_int_equal (fake.released_count, 0);
}

static void
test_round_robin_order (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 2);
    hd_member_t *b = hd_pool_join (pool, B, 2);
    hd_member_t *c = hd_pool_join (pool, C, 2);

    //  Members with credit take turns, in the order they have waited
    s_enqueue_range (pool, 1, 6, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 6);
    s_assert_delivery (&fake, 0, A, 1, 1);
    s_assert_delivery (&fake, 1, B, 2, 1);
    s_assert_delivery (&fake, 2, C, 3, 1);
    s_assert_delivery (&fake, 3, A, 4, 1);
    s_assert_delivery (&fake, 4, B, 5, 1);
    s_assert_delivery (&fake, 5, C, 6, 1);

    //  All full; they free up in the order C, A, B and are served in that order
    assert_int_equal (hd_pool_ack (pool, c, 3, 1), 0);
    assert_int_equal (hd_pool_ack (pool, a, 1, 1), 0);
    assert_int_equal (hd_pool_ack (pool, b, 5, 1), 0);
    s_enqueue_range (pool, 7, 9, 10);
    assert_int_equal (hd_pool_dispatch (pool, 10), 3);
    s_assert_delivery (&fake, 6, C, 7, 1);
    s_assert_delivery (&fake, 7, A, 8, 1);
    s_assert_delivery (&fake, 8, B, 9, 1);

    //  One event at a time also rotates: after A frees, then B, then A again
    assert_int_equal (hd_pool_ack (pool, a, 4, 1), 0);
    assert_int_equal (hd_pool_ack (pool, b, 2, 1), 0);
    assert_int_equal (hd_pool_ack (pool, c, 6, 1), 0);
    s_enqueue_range (pool, 10, 10, 20);
    assert_int_equal (hd_pool_dispatch (pool, 20), 1);
    s_assert_delivery (&fake, 9, A, 10, 1);
    s_enqueue_range (pool, 11, 11, 21);
    assert_int_equal (hd_pool_dispatch (pool, 21), 1);
    s_assert_delivery (&fake, 10, B, 11, 1);
    s_enqueue_range (pool, 12, 12, 22);
    assert_int_equal (hd_pool_dispatch (pool, 22), 1);
    s_assert_delivery (&fake, 11, C, 12, 1);

    hd_pool_destroy (&pool);
}

static void
test_credit_limits (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 3);
    s_enqueue_range (pool, 1, 10, 0);

    assert_int_equal (hd_pool_dispatch (pool, 0), 3);
    assert_int_equal (hd_member_inflight (a), 3);
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (hd_member_inflight (a), 3);

    //  Lower credit below what is in flight: no more until it drains below 1
    hd_pool_set_credit (pool, a, 1);
    assert_int_equal (hd_pool_ack (pool, a, 1, 1), 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (hd_pool_ack (pool, a, 2, 1), 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (hd_member_inflight (a), 1);
    assert_int_equal (hd_pool_ack (pool, a, 3, 1), 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    assert_int_equal (hd_member_inflight (a), 1);
    s_assert_delivery (&fake, 3, A, 4, 1);

    //  Raise credit: fills up to the new limit, not beyond
    hd_pool_set_credit (pool, a, 5);
    assert_int_equal (hd_pool_dispatch (pool, 0), 4);
    assert_int_equal (hd_member_inflight (a), 5);
    assert_int_equal (hd_pool_pending (pool), 2);
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);

    //  Credit 0 stops deliveries entirely
    hd_pool_set_credit (pool, a, 0);
    for (uint64_t seq = 4; seq <= 8; seq++)
        assert_int_equal (hd_pool_ack (pool, a, seq, 1), 0);
    assert_int_equal (hd_member_inflight (a), 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (hd_pool_pending (pool), 2);
    assert_int_equal (fake.delivered_count, 8);

    hd_pool_destroy (&pool);
}

static void
test_ack_frees_credit_and_releases_once (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 1);
    s_enqueue_range (pool, 1, 2, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    s_assert_delivery (&fake, 0, A, 1, 1);

    assert_int_equal (hd_pool_ack (pool, a, 1, 1), 0);
    assert_int_equal (fake.released_count, 1);
    assert_int_equal (fake.released[0], 1);
    assert_int_equal (hd_member_inflight (a), 0);
    assert_int_equal (hd_pool_inflight (pool), 0);

    //  A second ack of the same tag is stale and releases nothing
    assert_int_equal (hd_pool_ack (pool, a, 1, 1), -1);
    assert_int_equal (fake.released_count, 1);

    //  The credit came back
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    s_assert_delivery (&fake, 1, A, 2, 1);
    assert_int_equal (hd_pool_ack (pool, a, 2, 1), 0);
    assert_int_equal (fake.released_count, 2);
    assert_int_equal (fake.released[1], 2);

    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 0);
    assert_int_equal (stats.acked, 2);
    assert_int_equal (stats.stale, 1);
    assert_int_equal (stats.pending, 0);
    assert_int_equal (stats.inflight, 0);

    //  An acked seq is forgotten: it could even be enqueued again
    assert_int_equal (hd_pool_enqueue (pool, 1, 0), 0);
    //  but a seq that is still held cannot
    assert_int_equal (hd_pool_enqueue (pool, 1, 0), -1);
    assert_int_equal (hd_pool_pending (pool), 1);
    hd_pool_destroy (&pool);
}

static void
test_stale_tags (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 1);
    hd_member_t *b = hd_pool_join (pool, B, 1);
    s_enqueue_range (pool, 1, 3, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 2);
    s_assert_delivery (&fake, 0, A, 1, 1);
    s_assert_delivery (&fake, 1, B, 2, 1);

    //  Wrong attempt, wrong member, unknown seq, waiting (not leased) seq
    assert_int_equal (hd_pool_ack (pool, a, 1, 2), -1);
    assert_int_equal (hd_pool_ack (pool, a, 1, 0), -1);
    assert_int_equal (hd_pool_ack (pool, b, 1, 1), -1);
    assert_int_equal (hd_pool_ack (pool, a, 99, 1), -1);
    assert_int_equal (hd_pool_ack (pool, a, 3, 1), -1);
    assert_int_equal (hd_pool_nack (pool, b, 1, 1, 0, 0), -1);
    assert_int_equal (hd_pool_nack (pool, a, 1, 7, 0, 0), -1);
    assert_int_equal (hd_pool_term (pool, b, 1, 1), -1);
    assert_int_equal (hd_pool_term (pool, a, 42, 1), -1);
    assert_int_equal (hd_pool_progress (pool, b, 1, 1, 500), -1);
    assert_int_equal (hd_pool_progress (pool, a, 2, 1, 500), -1);

    //  Nothing changed
    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 0);
    assert_int_equal (stats.stale, 11);
    assert_int_equal (stats.acked, 0);
    assert_int_equal (stats.nacked, 0);
    assert_int_equal (stats.terminated, 0);
    assert_int_equal (stats.inflight, 2);
    assert_int_equal (stats.pending, 1);
    assert_int_equal (hd_pool_parked (pool), 0);
    assert_int_equal (fake.released_count, 0);
    assert_int_equal (hd_member_inflight (a), 1);
    assert_int_equal (hd_member_inflight (b), 1);
    //  The refused progress did not extend anything
    assert_int_equal (hd_pool_next_wakeup (pool), 1000);

    //  The real tags still work, once
    assert_int_equal (hd_pool_ack (pool, a, 1, 1), 0);
    assert_int_equal (hd_pool_ack (pool, a, 1, 1), -1);
    assert_int_equal (hd_pool_term (pool, b, 2, 1), 0);
    assert_int_equal (hd_pool_ack (pool, b, 2, 1), -1);

    //  An expired lease's tag is stale even for its former holder
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    s_assert_delivery (&fake, 2, A, 3, 1);
    hd_pool_tick (pool, 1000);
    assert_int_equal (hd_pool_ack (pool, a, 3, 1), -1);
    hd_pool_tick (pool, 1100);
    assert_int_equal (hd_pool_dispatch (pool, 1100), 1);
    s_assert_delivery (&fake, 3, B, 3, 2);
    assert_int_equal (hd_pool_ack (pool, b, 3, 1), -1);
    assert_int_equal (hd_pool_ack (pool, b, 3, 2), 0);

    hd_pool_stats (pool, &stats, 1100);
    assert_int_equal (stats.stale, 15);
    assert_int_equal (stats.acked, 2);
    assert_int_equal (stats.terminated, 1);
    hd_pool_destroy (&pool);
}

static void
test_nack_with_delay (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 1);
    s_enqueue_range (pool, 1, 1, 1000);
    assert_int_equal (hd_pool_dispatch (pool, 1000), 1);

    assert_int_equal (hd_pool_nack (pool, a, 1, 1, 500, 1200), 0);
    assert_int_equal (hd_pool_pending (pool), 1);
    assert_int_equal (hd_pool_inflight (pool), 0);
    assert_int_equal (hd_member_inflight (a), 0);
    assert_int_equal (fake.released_count, 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 1700);

    //  Not before its time, even with a free worker
    assert_int_equal (hd_pool_dispatch (pool, 1300), 0);
    assert_int_equal (hd_pool_tick (pool, 1699), 0);
    assert_int_equal (hd_pool_dispatch (pool, 1699), 0);

    //  A fresh event is not held up by the delayed one
    s_enqueue_range (pool, 2, 2, 1699);
    assert_int_equal (hd_pool_dispatch (pool, 1699), 1);
    s_assert_delivery (&fake, 1, A, 2, 1);
    assert_int_equal (hd_pool_ack (pool, a, 2, 1), 0);

    assert_int_equal (hd_pool_tick (pool, 1700), 1);
    assert_int_equal (hd_pool_dispatch (pool, 1700), 1);
    s_assert_delivery (&fake, 2, A, 1, 2);

    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 1700);
    assert_int_equal (stats.nacked, 1);
    assert_int_equal (stats.delivered, 3);
    assert_int_equal (stats.redelivered, 1);
    assert_int_equal (stats.expired, 0);
    hd_pool_destroy (&pool);
}

static void
test_nack_zero_uses_backoff (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config (); // 100 ms × 2^(attempt-1), max 1000, no jitter
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 1);
    s_enqueue_range (pool, 1, 1, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);

    assert_int_equal (hd_pool_nack (pool, a, 1, 1, 0, 0), 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 100);
    assert_int_equal (hd_pool_tick (pool, 99), 0);
    assert_int_equal (hd_pool_tick (pool, 100), 1);
    assert_int_equal (hd_pool_dispatch (pool, 100), 1);
    s_assert_delivery (&fake, 1, A, 1, 2);

    //  Second failure: twice the delay
    assert_int_equal (hd_pool_nack (pool, a, 1, 2, 0, 200), 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 400);
    assert_int_equal (hd_pool_tick (pool, 399), 0);
    assert_int_equal (hd_pool_dispatch (pool, 399), 0);
    assert_int_equal (hd_pool_tick (pool, 400), 1);
    assert_int_equal (hd_pool_dispatch (pool, 400), 1);
    s_assert_delivery (&fake, 2, A, 1, 3);

    //  A negative delay also means backoff
    assert_int_equal (hd_pool_nack (pool, a, 1, 3, -5, 1000), 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 1400);
    hd_pool_destroy (&pool);
}

static void
test_backoff_growth_and_cap (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    config.backoff_initial_ms = 100;
    config.backoff_multiplier = 3.0;
    config.backoff_max_ms = 5000;
    hd_pool_t *pool = s_pool (&fake, &config);
    //  Without jitter the values are exact
    assert_int_equal (hd_pool_backoff_ms (pool, 1), 100);
    assert_int_equal (hd_pool_backoff_ms (pool, 2), 300);
    assert_int_equal (hd_pool_backoff_ms (pool, 3), 900);
    assert_int_equal (hd_pool_backoff_ms (pool, 4), 2700);
    assert_int_equal (hd_pool_backoff_ms (pool, 5), 5000);
    assert_int_equal (hd_pool_backoff_ms (pool, 6), 5000);
    assert_int_equal (hd_pool_backoff_ms (pool, 1000), 5000);
    assert_int_equal (hd_pool_backoff_ms (pool, UINT32_MAX), 5000);
    hd_pool_destroy (&pool);

    //  With jitter every sample stays within base × [1 - j, 1 + j] and they spread
    config.backoff_jitter = 0.25;
    pool = s_pool (&fake, &config);
    const double base[] = {100, 300, 900, 2700, 5000, 5000, 5000};
    for (uint32_t attempt = 1; attempt <= 7; attempt++) {
        double expected = base[attempt - 1];
        int64_t low = (int64_t) (expected * 0.75);
        int64_t high = (int64_t) (expected * 1.25);
        int64_t min = INT64_MAX, max = 0;
        double sum = 0;
        for (int sample = 0; sample < 2000; sample++) {
            int64_t delay = hd_pool_backoff_ms (pool, attempt);
            assert_in_range (delay, low, high);
            if (delay < min)
                min = delay;
            if (delay > max)
                max = delay;
            sum += (double) delay;
        }
        //  Uniform over the range: both ends are reached and the mean is central
        assert_true (min < expected * 0.80);
        assert_true (max > expected * 1.20);
        double mean = sum / 2000;
        assert_true (mean > expected * 0.96 && mean < expected * 1.04);
    }
    hd_pool_destroy (&pool);

    //  Never less than 1 ms
    config.backoff_initial_ms = 0;
    config.backoff_jitter = 0;
    pool = s_pool (&fake, &config);
    assert_int_equal (hd_pool_backoff_ms (pool, 1), 1);
    hd_pool_destroy (&pool);
}

static void
test_lease_expiry (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config (); // ack_wait 1000, backoff 100 × 2^(attempt-1)
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 1);
    s_enqueue_range (pool, 1, 1, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    assert_int_equal (hd_pool_next_wakeup (pool), 1000);

    assert_int_equal (hd_pool_tick (pool, 999), 0);
    assert_int_equal (hd_pool_inflight (pool), 1);

    //  Expired: the credit comes back, the event waits for its backoff
    assert_int_equal (hd_pool_tick (pool, 1000), 0);
    assert_int_equal (hd_pool_inflight (pool), 0);
    assert_int_equal (hd_member_inflight (a), 0);
    assert_int_equal (hd_pool_pending (pool), 1);
    assert_int_equal (hd_pool_next_wakeup (pool), 1100);
    assert_int_equal (hd_pool_dispatch (pool, 1000), 0);
    assert_int_equal (hd_pool_tick (pool, 1099), 0);
    assert_int_equal (fake.released_count, 0);

    assert_int_equal (hd_pool_tick (pool, 1100), 1);
    assert_int_equal (hd_pool_dispatch (pool, 1100), 1);
    s_assert_delivery (&fake, 1, A, 1, 2);

    //  Second expiry: backoff doubles
    assert_int_equal (hd_pool_tick (pool, 2100), 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 2300);
    assert_int_equal (hd_pool_tick (pool, 2299), 0);
    assert_int_equal (hd_pool_tick (pool, 2300), 1);
    assert_int_equal (hd_pool_dispatch (pool, 2300), 1);
    s_assert_delivery (&fake, 2, A, 1, 3);

    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 2300);
    assert_int_equal (stats.expired, 2);
    assert_int_equal (stats.redelivered, 2);
    assert_int_equal (stats.delivered, 3);
    assert_int_equal (stats.nacked, 0);

    assert_int_equal (hd_pool_ack (pool, a, 1, 3), 0);
    assert_int_equal (fake.released_count, 1);
    assert_int_equal (hd_pool_next_wakeup (pool), INT64_MAX);
    hd_pool_destroy (&pool);
}

static void
test_progress_extends_lease (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 2);
    s_enqueue_range (pool, 1, 1, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1); // seq 1, deadline 1000
    s_enqueue_range (pool, 2, 2, 500);
    assert_int_equal (hd_pool_dispatch (pool, 500), 1); // seq 2, deadline 1500
    assert_int_equal (hd_pool_next_wakeup (pool), 1000);

    assert_int_equal (hd_pool_progress (pool, a, 1, 1, 800), 0); // seq 1 now until 1800
    assert_int_equal (hd_pool_next_wakeup (pool), 1500);
    assert_int_equal (hd_pool_tick (pool, 1000), 0);
    assert_int_equal (hd_pool_inflight (pool), 2);

    //  seq 2 runs out first, seq 1 stays leased until its new deadline
    hd_pool_tick (pool, 1500);
    assert_int_equal (hd_pool_inflight (pool), 1);
    assert_int_equal (hd_pool_ack (pool, a, 2, 1), -1);
    assert_int_equal (hd_pool_next_wakeup (pool), 1600); // seq 2 backoff 100
    hd_pool_tick (pool, 1799);
    assert_int_equal (hd_pool_inflight (pool), 1);

    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 1799);
    assert_int_equal (stats.expired, 1);

    hd_pool_tick (pool, 1800);
    assert_int_equal (hd_pool_inflight (pool), 0);
    hd_pool_stats (pool, &stats, 1800);
    assert_int_equal (stats.expired, 2);
    assert_int_equal (hd_pool_ack (pool, a, 1, 1), -1);
    hd_pool_destroy (&pool);
}

static void
test_leave_releases_leases_at_once (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 2);
    hd_member_t *b = hd_pool_join (pool, B, 1);
    s_enqueue_range (pool, 1, 3, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 3);
    s_assert_delivery (&fake, 0, A, 1, 1);
    s_assert_delivery (&fake, 1, B, 2, 1);
    s_assert_delivery (&fake, 2, A, 3, 1);
    s_enqueue_range (pool, 4, 5, 10);

    hd_pool_leave (pool, &a);
    assert_null (a);
    assert_int_equal (hd_pool_workers (pool), 1);
    assert_int_equal (hd_pool_inflight (pool), 1);
    assert_int_equal (hd_pool_pending (pool), 4);
    assert_int_equal (fake.released_count, 0);
    //  No lease of A is left to expire
    assert_int_equal (hd_pool_next_wakeup (pool), 1000);

    //  A new worker gets A's events at once (no tick), ahead of fresh ones
    hd_member_t *c = hd_pool_join (pool, C, 3);
    assert_int_equal (hd_pool_dispatch (pool, 20), 3);
    s_assert_delivery (&fake, 3, C, 1, 2);
    s_assert_delivery (&fake, 4, C, 3, 2);
    s_assert_delivery (&fake, 5, C, 4, 1);

    //  B's lease is untouched; B then takes the last fresh event
    assert_int_equal (hd_pool_ack (pool, b, 2, 1), 0);
    assert_int_equal (hd_pool_dispatch (pool, 30), 1);
    s_assert_delivery (&fake, 6, B, 5, 1);

    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 30);
    assert_int_equal (stats.redelivered, 2);
    assert_int_equal (stats.workers, 2);
    assert_int_equal (stats.expired, 0);

    //  C leaves with three leases: they wait again; leaving twice is harmless
    hd_pool_leave (pool, &c);
    assert_null (c);
    hd_pool_leave (pool, &c);
    assert_int_equal (hd_pool_workers (pool), 1);
    assert_int_equal (hd_pool_pending (pool), 3);
    hd_pool_destroy (&pool);
}

static void
test_redelivered_before_fresh (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 1);
    s_enqueue_range (pool, 1, 1, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    s_enqueue_range (pool, 2, 4, 0);

    assert_int_equal (hd_pool_nack (pool, a, 1, 1, 50, 0), 0);
    //  While seq 1 waits its delay, fresh seq 2 goes
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    s_assert_delivery (&fake, 1, A, 2, 1);
    assert_int_equal (hd_pool_tick (pool, 50), 1);
    assert_int_equal (hd_pool_ack (pool, a, 2, 1), 0);
    //  Now seq 1 is ready again and goes before fresh seq 3 and 4
    assert_int_equal (hd_pool_dispatch (pool, 50), 1);
    s_assert_delivery (&fake, 2, A, 1, 2);
    assert_int_equal (hd_pool_ack (pool, a, 1, 2), 0);
    assert_int_equal (hd_pool_dispatch (pool, 60), 1);
    s_assert_delivery (&fake, 3, A, 3, 1);
    hd_pool_destroy (&pool);
}

static void
test_redelivered_in_ready_order (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 3);
    s_enqueue_range (pool, 1, 3, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 3);
    //  Delays due in the order 3, 1, 2
    assert_int_equal (hd_pool_nack (pool, a, 1, 1, 20, 0), 0);
    assert_int_equal (hd_pool_nack (pool, a, 2, 1, 30, 0), 0);
    assert_int_equal (hd_pool_nack (pool, a, 3, 1, 10, 0), 0);
    hd_pool_set_credit (pool, a, 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 10);
    assert_int_equal (hd_pool_tick (pool, 10), 1);
    assert_int_equal (hd_pool_next_wakeup (pool), 20);
    assert_int_equal (hd_pool_tick (pool, 100), 2);
    assert_int_equal (hd_pool_next_wakeup (pool), INT64_MAX);
    hd_pool_set_credit (pool, a, 3);
    assert_int_equal (hd_pool_dispatch (pool, 100), 3);
    s_assert_delivery (&fake, 3, A, 3, 2);
    s_assert_delivery (&fake, 4, A, 1, 2);
    s_assert_delivery (&fake, 5, A, 2, 2);
    hd_pool_destroy (&pool);
}

static void
test_deliver_refused_stalls_member (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    fake.refuse = A;
    hd_member_t *a = hd_pool_join (pool, A, 5);
    s_enqueue_range (pool, 1, 2, 0);

    //  A cannot take it: the events stay, in order, and A is not asked again
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (fake.refused, 1);
    assert_int_equal (hd_pool_pending (pool), 2);
    assert_int_equal (hd_pool_inflight (pool), 0);
    assert_int_equal (hd_member_inflight (a), 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (fake.refused, 1);
    //  Credit changes do not wake a stalled member
    hd_pool_set_credit (pool, a, 6);
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (fake.refused, 1);

    //  Another member takes the kept event, first in line, attempt 1
    hd_member_t *b = hd_pool_join (pool, B, 1);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    s_assert_delivery (&fake, 0, B, 1, 1);
    assert_int_equal (fake.refused, 1);

    //  A sign of life: A takes deliveries again, attempt not consumed
    fake.refuse = NULL;
    hd_pool_wake (pool, a);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    s_assert_delivery (&fake, 1, A, 2, 1);

    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 0);
    assert_int_equal (stats.delivered, 2);
    assert_int_equal (stats.redelivered, 0);
    assert_int_equal (stats.inflight, 2);

    //  Refused by the first in line: the next one gets it in the same dispatch
    fake.refuse = B;
    assert_int_equal (hd_pool_ack (pool, b, 1, 1), 0); // ring: A, B
    hd_pool_set_credit (pool, a, 1);                   // A full: ring B
    hd_pool_set_credit (pool, a, 2);                   // A back, behind B
    s_enqueue_range (pool, 3, 3, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    assert_int_equal (fake.refused, 2);
    s_assert_delivery (&fake, 2, A, 3, 1);
    assert_int_equal (hd_member_inflight (b), 0);
    assert_int_equal (hd_member_inflight (a), 2);
    hd_pool_destroy (&pool);

    //  A refused event keeps its place ahead of other redeliveries
    pool = s_pool (&fake, &config);
    hd_member_t *gone = hd_pool_join (pool, C, 2);
    s_enqueue_range (pool, 1, 3, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 2);
    hd_pool_leave (pool, &gone); // retry line: 1, 2; fresh: 3
    fake.refuse = A;
    a = hd_pool_join (pool, A, 5);
    assert_int_equal (hd_pool_dispatch (pool, 0), 0);
    assert_int_equal (fake.refused, 1);
    b = hd_pool_join (pool, B, 3);
    assert_int_equal (hd_pool_dispatch (pool, 0), 3);
    s_assert_delivery (&fake, 2, B, 1, 2);
    s_assert_delivery (&fake, 3, B, 2, 2);
    s_assert_delivery (&fake, 4, B, 3, 1);
    hd_pool_destroy (&pool);
}

static void
test_full_at_max_pending (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    config.max_pending = 3;
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 3);
    assert_false (hd_pool_full (pool));
    s_enqueue_range (pool, 1, 2, 0);
    assert_false (hd_pool_full (pool));
    s_enqueue_range (pool, 3, 3, 0);
    assert_true (hd_pool_full (pool));

    //  In-flight events still count
    assert_int_equal (hd_pool_dispatch (pool, 0), 3);
    assert_true (hd_pool_full (pool));
    //  A delayed one too
    assert_int_equal (hd_pool_nack (pool, a, 3, 1, 100, 0), 0);
    assert_true (hd_pool_full (pool));
    //  Acked ones do not
    assert_int_equal (hd_pool_ack (pool, a, 1, 1), 0);
    assert_false (hd_pool_full (pool));
    s_enqueue_range (pool, 4, 4, 0);
    assert_true (hd_pool_full (pool));
    //  Nor parked ones
    assert_int_equal (hd_pool_term (pool, a, 2, 1), 0);
    assert_false (hd_pool_full (pool));
    hd_pool_destroy (&pool);
}

static void
test_term_parks (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    config.max_parked = 2;
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 10);
    s_enqueue_range (pool, 1, 4, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 4);

    assert_int_equal (hd_pool_term (pool, a, 1, 1), 0);
    assert_int_equal (hd_pool_parked (pool), 1);
    assert_int_equal (fake.released_count, 0);
    assert_int_equal (hd_member_inflight (a), 3);
    assert_int_equal (hd_pool_pending (pool), 0);
    //  Never redelivered, however long we wait
    hd_pool_tick (pool, 1000000);
    hd_pool_set_credit (pool, a, 100);
    assert_int_equal (hd_pool_dispatch (pool, 1000000), 0);
    assert_int_equal (fake.delivered_count, 4);
    //  ... but the three others did expire and come back in the meantime
    hd_pool_tick (pool, 2000000);
    assert_int_equal (hd_pool_dispatch (pool, 2000000), 3);
    s_assert_delivery (&fake, 4, A, 2, 2);
    s_assert_delivery (&fake, 5, A, 3, 2);
    s_assert_delivery (&fake, 6, A, 4, 2);

    assert_int_equal (hd_pool_term (pool, a, 2, 2), 0);
    assert_int_equal (hd_pool_parked (pool), 2);
    assert_int_equal (fake.released_count, 0);

    //  Past max_parked the oldest parked event is let go
    assert_int_equal (hd_pool_term (pool, a, 3, 2), 0);
    assert_int_equal (hd_pool_parked (pool), 2);
    assert_int_equal (fake.released_count, 1);
    assert_int_equal (fake.released[0], 1);
    assert_int_equal (hd_pool_term (pool, a, 4, 2), 0);
    assert_int_equal (fake.released_count, 2);
    assert_int_equal (fake.released[1], 2);
    assert_int_equal (hd_pool_parked (pool), 2);
    assert_int_equal (hd_member_inflight (a), 0);

    //  A parked event's tag is no longer valid
    assert_int_equal (hd_pool_term (pool, a, 4, 2), -1);
    assert_int_equal (hd_pool_ack (pool, a, 3, 2), -1);

    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 2000000);
    assert_int_equal (stats.terminated, 4);
    assert_int_equal (stats.acked, 0);
    assert_int_equal (stats.pending, 0);
    assert_int_equal (stats.inflight, 0);
    assert_int_equal (stats.oldest_pending_ms, 0); // parked events are not pending
    hd_pool_destroy (&pool);
}

static void
test_term_max_parked_zero (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    config.max_parked = 0;
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 1);
    s_enqueue_range (pool, 1, 1, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 1);
    assert_int_equal (hd_pool_term (pool, a, 1, 1), 0);
    assert_int_equal (hd_pool_parked (pool), 0);
    assert_int_equal (fake.released_count, 1);
    assert_int_equal (fake.released[0], 1);
    hd_pool_destroy (&pool);
}

static void
test_matches (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    assert_string_equal (hd_pool_name (pool), "jobs");
    assert_string_equal (hd_pool_filter (pool), "jobs.");
    assert_true (hd_pool_matches (pool, "jobs.run", 8));
    assert_true (hd_pool_matches (pool, "jobs.", 5));
    assert_true (hd_pool_matches (pool, "jobs.a.b.c", 10));
    assert_false (hd_pool_matches (pool, "jobs", 4));
    assert_false (hd_pool_matches (pool, "jobsX", 5));
    assert_false (hd_pool_matches (pool, "job", 3));
    assert_false (hd_pool_matches (pool, "orders.placed", 13));
    assert_false (hd_pool_matches (pool, "", 0));
    //  The size counts, not a terminator
    assert_false (hd_pool_matches (pool, "jobs.run", 4));
    assert_true (hd_pool_matches (pool, "jobs.runXXXX", 8));
    hd_pool_destroy (&pool);

    //  "" matches every type, the empty one included
    pool = hd_pool_new ("all", "", &config, s_deliver, s_release, &fake);
    assert_string_equal (hd_pool_filter (pool), "");
    assert_true (hd_pool_matches (pool, "", 0));
    assert_true (hd_pool_matches (pool, "x", 1));
    assert_true (hd_pool_matches (pool, "orders.placed", 13));
    hd_pool_destroy (&pool);

    //  A filter without a dot is a plain prefix
    pool = hd_pool_new ("orders", "orders", &config, s_deliver, s_release, &fake);
    assert_true (hd_pool_matches (pool, "orders", 6));
    assert_true (hd_pool_matches (pool, "orders.placed", 13));
    assert_true (hd_pool_matches (pool, "ordersX", 7));
    assert_false (hd_pool_matches (pool, "order", 5));
    assert_false (hd_pool_matches (pool, "Orders", 6));
    hd_pool_destroy (&pool);
}

static void
test_next_wakeup (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);
    assert_int_equal (hd_pool_next_wakeup (pool), INT64_MAX);
    s_enqueue_range (pool, 1, 2, 0);
    //  Waiting events need no timer
    assert_int_equal (hd_pool_next_wakeup (pool), INT64_MAX);
    hd_member_t *a = hd_pool_join (pool, A, 2);
    assert_int_equal (hd_pool_dispatch (pool, 100), 2);
    assert_int_equal (hd_pool_next_wakeup (pool), 1100);
    //  A delayed event due sooner than the lease
    assert_int_equal (hd_pool_nack (pool, a, 2, 1, 50, 200), 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 250);
    //  Due later than the lease
    assert_int_equal (hd_pool_tick (pool, 250), 1);
    assert_int_equal (hd_pool_next_wakeup (pool), 1100);
    assert_int_equal (hd_pool_dispatch (pool, 250), 1);
    assert_int_equal (hd_pool_nack (pool, a, 2, 2, 5000, 300), 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 1100);
    assert_int_equal (hd_pool_ack (pool, a, 1, 1), 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 5300);
    assert_int_equal (hd_pool_tick (pool, 5300), 1);
    assert_int_equal (hd_pool_next_wakeup (pool), INT64_MAX);
    hd_pool_destroy (&pool);
}

static void
test_stats (void **state)
{
    fake_t fake;
    hd_pool_config_t config = s_config ();
    hd_pool_t *pool = s_pool (&fake, &config);

    Herald__PoolStats stats;
    hd_pool_stats (pool, &stats, 50);
    assert_string_equal (stats.name, "jobs");
    assert_string_equal (stats.filter, "jobs.");
    assert_int_equal (stats.workers, 0);
    assert_int_equal (stats.pending, 0);
    assert_int_equal (stats.oldest_pending_ms, 0);

    hd_member_t *a = hd_pool_join (pool, A, 2);
    hd_member_t *b = hd_pool_join (pool, B, 1);
    s_enqueue_range (pool, 1, 1, 100);
    s_enqueue_range (pool, 2, 2, 200);
    s_enqueue_range (pool, 3, 3, 300);
    s_enqueue_range (pool, 4, 4, 400);
    assert_int_equal (hd_pool_dispatch (pool, 500), 3); // A:1, B:2, A:3
    assert_int_equal (hd_pool_term (pool, a, 1, 1), 0);
    assert_int_equal (hd_pool_ack (pool, a, 3, 1), 0);
    assert_int_equal (hd_pool_ack (pool, a, 3, 1), -1); // stale
    assert_int_equal (hd_pool_nack (pool, b, 2, 1, 100, 600), 0);
    assert_int_equal (hd_pool_dispatch (pool, 650), 1); // A:4 until 1650
    assert_int_equal (hd_pool_tick (pool, 700), 1);
    assert_int_equal (hd_pool_dispatch (pool, 700), 1); // B:2 attempt 2 until 1700
    assert_int_equal (hd_pool_tick (pool, 1650), 0);    // A:4 expires, back at 1750

    hd_pool_stats (pool, &stats, 1700);
    assert_string_equal (stats.name, "jobs");
    assert_string_equal (stats.filter, "jobs.");
    assert_int_equal (stats.workers, 2);
    assert_int_equal (stats.pending, 1);
    assert_int_equal (stats.inflight, 1);
    assert_int_equal (stats.acked, 1);
    assert_int_equal (stats.delivered, 5);
    assert_int_equal (stats.redelivered, 1);
    assert_int_equal (stats.terminated, 1);
    assert_int_equal (stats.nacked, 1);
    assert_int_equal (stats.expired, 1);
    assert_int_equal (stats.stale, 1);
    //  Oldest held and not parked: seq 2, enqueued at 200 (parked seq 1 is older)
    assert_int_equal (stats.oldest_pending_ms, 1500);

    assert_int_equal (hd_pool_workers (pool), 2);
    assert_int_equal (hd_pool_pending (pool), 1);
    assert_int_equal (hd_pool_inflight (pool), 1);
    assert_int_equal (hd_pool_parked (pool), 1);
    assert_int_equal (hd_member_inflight (a), 0);
    assert_int_equal (hd_member_inflight (b), 1);
    assert_int_equal (hd_member_credit (a), 2);
    assert_int_equal (hd_member_credit (b), 1);

    //  The stats message packs (strings point into the pool)
    size_t size = herald__pool_stats__get_packed_size (&stats);
    assert_true (size > 0);
    hd_pool_destroy (&pool);
}

static void
test_many_events (void **state)
{
    //  Exercise the heap and the table with more than a handful of entries
    fake_t fake;
    hd_pool_config_t config = s_config ();
    config.max_pending = 100000;
    hd_pool_t *pool = s_pool (&fake, &config);
    hd_member_t *a = hd_pool_join (pool, A, 300);
    s_enqueue_range (pool, 1, 300, 0);
    assert_int_equal (hd_pool_dispatch (pool, 0), 300);
    fake.delivered_count = 0;
    //  Nack in seq order with delays in reverse order: they come back reversed
    for (uint64_t seq = 1; seq <= 300; seq++)
        assert_int_equal (hd_pool_nack (pool, a, seq, 1, (int64_t) (1000 - seq), 0), 0);
    assert_int_equal (hd_pool_next_wakeup (pool), 700);
    assert_int_equal (hd_pool_tick (pool, 999), 300);
    assert_int_equal (hd_pool_dispatch (pool, 999), 300);
    for (size_t index = 0; index < 300; index++)
        s_assert_delivery (&fake, index, A, 300 - index, 2);
    for (uint64_t seq = 1; seq <= 300; seq++)
        assert_int_equal (hd_pool_ack (pool, a, seq, 2), 0);
    assert_int_equal (fake.released_count, 300);
    assert_int_equal (hd_pool_pending (pool) + hd_pool_inflight (pool), 0);
    hd_pool_destroy (&pool);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_config_defaults),
        cmocka_unit_test (test_delivers_only_with_credit),
        cmocka_unit_test (test_round_robin_order),
        cmocka_unit_test (test_credit_limits),
        cmocka_unit_test (test_ack_frees_credit_and_releases_once),
        cmocka_unit_test (test_stale_tags),
        cmocka_unit_test (test_nack_with_delay),
        cmocka_unit_test (test_nack_zero_uses_backoff),
        cmocka_unit_test (test_backoff_growth_and_cap),
        cmocka_unit_test (test_lease_expiry),
        cmocka_unit_test (test_progress_extends_lease),
        cmocka_unit_test (test_leave_releases_leases_at_once),
        cmocka_unit_test (test_redelivered_before_fresh),
        cmocka_unit_test (test_redelivered_in_ready_order),
        cmocka_unit_test (test_deliver_refused_stalls_member),
        cmocka_unit_test (test_full_at_max_pending),
        cmocka_unit_test (test_term_parks),
        cmocka_unit_test (test_term_max_parked_zero),
        cmocka_unit_test (test_matches),
        cmocka_unit_test (test_next_wakeup),
        cmocka_unit_test (test_stats),
        cmocka_unit_test (test_many_events),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
