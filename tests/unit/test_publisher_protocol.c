/*  Publisher against a scripted broker (fake_broker.h): resend timing after
    BACKLOG_FULL, same corr and id on resend, final rejections, and
    publish / flush with a zero timeout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "buffer.h"
#include "fake_broker.h"
#include "herald.h"

#define WAIT_MS 5000

typedef struct {
    uint64_t corr;
    char id[64];
} s_publish_t;

//  Decode a PUBLISH the fake broker received.
static s_publish_t
s_parse_publish (fake_msg_t *msg)
{
    s_publish_t out = {0};
    assert_int_equal (msg->command, HD_CMD_PUBLISH);
    assert_non_null (msg->event);
    Herald__Publish *publish =
        herald__publish__unpack (NULL, zframe_size (msg->body), zframe_data (msg->body));
    Herald__Event *event =
        herald__event__unpack (NULL, zframe_size (msg->event), zframe_data (msg->event));
    assert_non_null (publish);
    assert_non_null (event);
    out.corr = publish->corr;
    snprintf (out.id, sizeof out.id, "%s", event->id);
    herald__publish__free_unpacked (publish, NULL);
    herald__event__free_unpacked (event, NULL);
    return out;
}

static s_publish_t
s_expect_publish (fake_broker_t *broker)
{
    fake_msg_t msg;
    assert_true (fake_broker_expect (broker, HD_CMD_PUBLISH, &msg, WAIT_MS));
    s_publish_t out = s_parse_publish (&msg);
    fake_msg_free (&msg);
    return out;
}

static void
s_publish (hd_publisher_t *publisher, const char *id)
{
    hd_event_t *event = hd_event_new ("t.x");
    hd_event_set_id (event, id);
    assert_int_equal (hd_publisher_publish (publisher, &event, 0), 0);
    assert_null (event);
}

static void
s_confirm (fake_broker_t *broker, uint64_t corr, uint64_t seq)
{
    Herald__Confirm confirm = HERALD__CONFIRM__INIT;
    confirm.corr = corr;
    confirm.seq = seq;
    fake_broker_send (broker, HD_CMD_CONFIRM, &confirm.base, 0, NULL, NULL);
}

static void
s_reject (fake_broker_t *broker, uint64_t corr, int code, uint32_t retry_after_ms)
{
    Herald__Reject reject = HERALD__REJECT__INIT;
    reject.corr = corr;
    reject.code = code;
    reject.reason = (char *) "test";
    reject.retry_after_ms = retry_after_ms;
    fake_broker_send (broker, HD_CMD_REJECT, &reject.base, 0, NULL, NULL);
}

//  Drive the publisher until the fake broker gets a PUBLISH; returns it
//  and how long it took, or fails at the deadline.
static s_publish_t
s_pump_until_publish (hd_publisher_t *publisher, fake_broker_t *broker, int64_t *elapsed_ms)
{
    int64_t started = zclock_mono ();
    while (zclock_mono () - started < WAIT_MS) {
        hd_publisher_flush (publisher, 10);
        fake_msg_t msg;
        if (fake_broker_recv (broker, &msg, 0)) {
            if (msg.command == HD_CMD_PUBLISH) {
                s_publish_t out = s_parse_publish (&msg);
                fake_msg_free (&msg);
                *elapsed_ms = zclock_mono () - started;
                return out;
            }
            fake_msg_free (&msg);
        }
    }
    fail_msg ("no PUBLISH within %d ms", WAIT_MS);
    return (s_publish_t){0};
}

typedef struct {
    int calls;
    bool confirmed;
    int code;
    char id[64];
} s_outcome_t;

static void
s_on_confirm (const hd_event_t *event, const hd_confirm_t *confirm, void *arg)
{
    s_outcome_t *outcome = arg;
    outcome->calls++;
    outcome->confirmed = confirm->confirmed;
    outcome->code = confirm->code;
    snprintf (outcome->id, sizeof outcome->id, "%s", hd_event_id (event));
}

//  An event waiting a long BACKLOG_FULL retry-after must not hold back the
//  resend of events sent after it (the waiting list must stay ordered).
static void
test_backlog_retry_does_not_delay_others (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    hd_publisher_t *publisher = hd_publisher_new (broker.endpoint, "src");
    assert_non_null (publisher);
    hd_publisher_set_retry_ms (publisher, 200);
    s_outcome_t outcome = {0};
    hd_publisher_set_confirm_fn (publisher, s_on_confirm, &outcome);

    s_publish (publisher, "first");
    s_publish (publisher, "slow");
    s_publish_t first = s_expect_publish (&broker);
    s_publish_t slow = s_expect_publish (&broker);
    assert_string_equal (slow.id, "slow");
    s_reject (&broker, slow.corr, HERALD__ERROR_CODE__BACKLOG_FULL, 3000);
    s_confirm (&broker, first.corr, 1);
    //  Replies come in order: once "first" is confirmed, the reject was read
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (outcome.calls < 1 && zclock_mono () < deadline)
        hd_publisher_flush (publisher, 10);
    assert_int_equal (outcome.calls, 1);

    s_publish (publisher, "next");
    s_publish_t next = s_expect_publish (&broker);
    assert_string_equal (next.id, "next");
    int64_t elapsed;
    s_publish_t resend = s_pump_until_publish (publisher, &broker, &elapsed);
    //  "next" is resent after retry_ms (200 ms), long before "slow" (3 s)
    assert_string_equal (resend.id, "next");
    assert_true (resend.corr == next.corr); // same corr, so a late reply still matches
    assert_true (elapsed < 1500);
    assert_int_equal (hd_publisher_resent (publisher), 1);

    s_confirm (&broker, next.corr, 2);
    s_confirm (&broker, next.corr, 2); // the reply to the copy finds nothing
    deadline = zclock_mono () + WAIT_MS;
    while (outcome.calls < 2 && zclock_mono () < deadline)
        hd_publisher_flush (publisher, 10);
    assert_int_equal (outcome.calls, 2);
    assert_string_equal (outcome.id, "next");
    assert_int_equal (hd_publisher_unconfirmed (publisher), 1);
    assert_int_equal (hd_publisher_confirmed (publisher), 2);
    hd_publisher_destroy (&publisher);
    fake_broker_stop (&broker);
}

//  Timeout 0 still takes replies that already arrived: publish into a full
//  window succeeds once its confirm is in, and flush (0) reports done.
static void
test_zero_timeout_processes_replies (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    hd_publisher_t *publisher = hd_publisher_new (broker.endpoint, "src");
    hd_publisher_set_window (publisher, 1);
    s_publish (publisher, "one");
    s_publish_t one = s_expect_publish (&broker);
    s_confirm (&broker, one.corr, 1);

    hd_event_t *event = hd_event_new ("t.x");
    hd_event_set_id (event, "two");
    int64_t deadline = zclock_mono () + WAIT_MS;
    int rc = -1;
    while (rc && zclock_mono () < deadline)
        if ((rc = hd_publisher_publish (publisher, &event, 0)) != 0)
            zclock_sleep (1);
    assert_int_equal (rc, 0);
    assert_null (event);

    s_publish_t two = s_expect_publish (&broker);
    assert_string_equal (two.id, "two");
    s_confirm (&broker, two.corr, 2);
    deadline = zclock_mono () + WAIT_MS;
    rc = -1;
    while (rc && zclock_mono () < deadline)
        if ((rc = hd_publisher_flush (publisher, 0)) != 0)
            zclock_sleep (1);
    assert_int_equal (rc, 0);
    assert_int_equal (hd_publisher_confirmed (publisher), 2);
    hd_publisher_destroy (&publisher);
    fake_broker_stop (&broker);
}

//  A rejection other than BACKLOG_FULL is final and reported once.
static void
test_final_rejection (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    hd_publisher_t *publisher = hd_publisher_new (broker.endpoint, "src");
    s_outcome_t outcome = {0};
    hd_publisher_set_confirm_fn (publisher, s_on_confirm, &outcome);
    s_publish (publisher, "bad");
    s_publish_t bad = s_expect_publish (&broker);
    s_reject (&broker, bad.corr, HERALD__ERROR_CODE__INVALID, 0);
    assert_int_equal (hd_publisher_flush (publisher, WAIT_MS), 0);
    assert_int_equal (outcome.calls, 1);
    assert_false (outcome.confirmed);
    assert_int_equal (outcome.code, HERALD__ERROR_CODE__INVALID);
    assert_int_equal (hd_publisher_rejected (publisher), 1);
    assert_int_equal (hd_publisher_unconfirmed (publisher), 0);
    hd_publisher_destroy (&publisher);
    fake_broker_stop (&broker);
}

//  One CONFIRMS settles several events at once; a duplicate flag is kept.
static void
test_confirms_batch (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    hd_publisher_t *publisher = hd_publisher_new (broker.endpoint, "src");
    s_publish (publisher, "a");
    s_publish (publisher, "b");
    s_publish (publisher, "c");
    s_publish_t a = s_expect_publish (&broker);
    s_publish_t b = s_expect_publish (&broker);
    s_publish_t c = s_expect_publish (&broker);
    uint64_t corr[] = {c.corr, a.corr, b.corr};
    uint64_t seq[] = {3, 1, 2};
    protobuf_c_boolean duplicate[] = {0, 1, 0};
    Herald__Confirms confirms = HERALD__CONFIRMS__INIT;
    confirms.n_corr = confirms.n_seq = confirms.n_duplicate = 3;
    confirms.corr = corr;
    confirms.seq = seq;
    confirms.duplicate = duplicate;
    fake_broker_send (&broker, HD_CMD_CONFIRMS, &confirms.base, 0, NULL, NULL);
    assert_int_equal (hd_publisher_flush (publisher, WAIT_MS), 0);
    assert_int_equal (hd_publisher_confirmed (publisher), 3);
    assert_int_equal (hd_publisher_duplicates (publisher), 1);
    assert_int_equal (hd_publisher_unconfirmed (publisher), 0);
    hd_publisher_destroy (&publisher);
    fake_broker_stop (&broker);
}

//  Reads PUBLISHES messages until count events arrived; their corrs go to
//  corrs (in order), and the number of messages is returned.
static int
s_expect_publishes (fake_broker_t *broker, size_t count, uint64_t *corrs, const char *first_id)
{
    size_t got = 0;
    int messages = 0;
    while (got < count) {
        fake_msg_t msg;
        assert_true (fake_broker_expect (broker, HD_CMD_PUBLISHES, &msg, WAIT_MS));
        Herald__Publishes *publishes =
            herald__publishes__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
        assert_non_null (publishes);
        for (size_t index = 0; index < publishes->n_items; index++) {
            assert_true (got < count);
            assert_non_null (publishes->items[index]->event);
            if (got == 0 && first_id)
                assert_string_equal (publishes->items[index]->event->id, first_id);
            corrs[got++] = publishes->items[index]->corr;
        }
        herald__publishes__free_unpacked (publishes, NULL);
        fake_msg_free (&msg);
        messages++;
    }
    return messages;
}

//  Nagle-like batching: while enough events are unconfirmed, new ones wait
//  and go together as PUBLISHES (a full batch at once, the rest when the
//  caller polls); an event with a large payload goes alone as PUBLISH,
//  after the batch it followed; a lone event on a quiet connection is not
//  held at all.
static void
test_burst_goes_as_publishes (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    hd_publisher_t *publisher = hd_publisher_new (broker.endpoint, "src");
    hd_publisher_set_window (publisher, 64); // holds past 8 unconfirmed, batches of 16
    enum { FIRST = 8, BURST = 20 };
    uint64_t corrs[FIRST + BURST + 1];
    char id[32];
    for (int index = 0; index < FIRST; index++) {
        snprintf (id, sizeof id, "e%d", index);
        s_publish (publisher, id);
        corrs[index] = s_expect_publish (&broker).corr; // sent at once, alone
    }
    for (int index = FIRST; index < FIRST + BURST; index++) {
        snprintf (id, sizeof id, "e%d", index);
        s_publish (publisher, id);
    }
    //  16 went as one batch when the 16th was queued; 4 are held
    assert_int_equal (s_expect_publishes (&broker, 16, corrs + FIRST, "e8"), 1);
    fake_msg_t msg;
    hd_event_t *big = hd_event_new ("t.x");
    hd_event_set_id (big, "big");
    char payload[5000];
    memset (payload, 'x', sizeof payload);
    assert_int_equal (hd_event_set_payload (big, payload, sizeof payload), 0);
    assert_int_equal (hd_publisher_publish (publisher, &big, 0), 0);
    hd_publisher_poll (publisher); // sends everything held
    assert_int_equal (s_expect_publishes (&broker, 4, corrs + FIRST + 16, "e24"), 1);
    assert_true (fake_broker_expect (&broker, HD_CMD_PUBLISH, &msg, WAIT_MS));
    assert_int_equal (zframe_size (zmsg_last (msg.msg)), sizeof payload);
    corrs[FIRST + BURST] = s_parse_publish (&msg).corr;
    fake_msg_free (&msg);

    //  Every corr is distinct and all confirm
    uint64_t seqs[FIRST + BURST + 1];
    protobuf_c_boolean duplicate[FIRST + BURST + 1] = {0};
    for (size_t index = 0; index < FIRST + BURST + 1; index++)
        seqs[index] = index + 1;
    Herald__Confirms confirms = HERALD__CONFIRMS__INIT;
    confirms.n_corr = confirms.n_seq = confirms.n_duplicate = FIRST + BURST + 1;
    confirms.corr = corrs;
    confirms.seq = seqs;
    confirms.duplicate = duplicate;
    fake_broker_send (&broker, HD_CMD_CONFIRMS, &confirms.base, 0, NULL, NULL);
    assert_int_equal (hd_publisher_flush (publisher, WAIT_MS), 0);
    assert_int_equal (hd_publisher_confirmed (publisher), FIRST + BURST + 1);

    //  Quiet again: the next event goes at once
    s_publish (publisher, "alone");
    assert_string_equal (s_expect_publish (&broker).id, "alone");
    hd_publisher_destroy (&publisher);
    fake_broker_stop (&broker);
}

//  Drives the publisher until its confirm callback ran calls times.
static void
s_wait_outcomes (hd_publisher_t *publisher, s_outcome_t *outcome, int calls)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (outcome->calls < calls && zclock_mono () < deadline)
        hd_publisher_flush (publisher, 10);
    assert_int_equal (outcome->calls, calls);
}

//  Replies find their events by corr in an index on the corr's low bits
//  (64 slots at the smallest): an event held back by BACKLOG_FULL while
//  hundreds are confirmed after it shares its slot with every 64th of
//  them. Each reply settles its own event wherever it is in its slot, a
//  reply to one already settled is ignored, and the index grows with the
//  window.
static void
test_straggler_shares_its_slot (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    hd_publisher_t *publisher = hd_publisher_new (broker.endpoint, "src");
    hd_publisher_set_window (publisher, 4);
    s_outcome_t outcome = {0};
    hd_publisher_set_confirm_fn (publisher, s_on_confirm, &outcome);
    s_publish (publisher, "straggler");
    s_publish_t straggler = s_expect_publish (&broker);
    s_reject (&broker, straggler.corr, HERALD__ERROR_CODE__BACKLOG_FULL, 600000);
    enum { OTHERS = 300 };
    uint64_t corrs[OTHERS];
    char id[32];
    for (int index = 0; index < OTHERS; index++) {
        snprintf (id, sizeof id, "e%d", index);
        s_publish (publisher, id);
        s_publish_t sent = s_expect_publish (&broker);
        assert_string_equal (sent.id, id);
        corrs[index] = sent.corr;
        if (index % 3 == 2) {
            //  Three at a time, the last first
            for (int back = 0; back < 3; back++)
                s_confirm (&broker, corrs[index - back], (uint64_t) (index - back + 2));
            s_wait_outcomes (publisher, &outcome, index + 1);
            snprintf (id, sizeof id, "e%d", index - 2);
            assert_string_equal (outcome.id, id); // the last settled was sent first
        }
    }
    assert_int_equal (hd_publisher_unconfirmed (publisher), 1);
    //  A reply to a settled event in the straggler's slot finds nothing
    assert_true ((corrs[OTHERS - 1] - straggler.corr) >= 64);
    for (int index = 0; index < OTHERS; index++)
        if (((corrs[index] - straggler.corr) & 63) == 0)
            s_confirm (&broker, corrs[index], 999);
    //  An event that lands in the straggler's slot stays unconfirmed: the
    //  straggler is behind it there
    int settled = OTHERS;
    s_publish_t front;
    for (int index = 0;; index++) {
        snprintf (id, sizeof id, "f%d", index);
        s_publish (publisher, id);
        front = s_expect_publish (&broker);
        if (((front.corr - straggler.corr) & 63) == 0)
            break;
        s_confirm (&broker, front.corr, 1000 + (uint64_t) index);
        s_wait_outcomes (publisher, &outcome, ++settled);
    }
    s_confirm (&broker, straggler.corr, 1);
    s_wait_outcomes (publisher, &outcome, ++settled);
    assert_string_equal (outcome.id, "straggler");
    assert_true (outcome.confirmed);
    hd_publisher_set_window (publisher, 1000); // the index grows, what it holds moves over
    s_confirm (&broker, front.corr, 2000);
    s_wait_outcomes (publisher, &outcome, ++settled);
    assert_string_equal (outcome.id, front.id);
    assert_int_equal (hd_publisher_unconfirmed (publisher), 0);
    assert_int_equal (hd_publisher_confirmed (publisher), (uint64_t) settled);
    hd_publisher_destroy (&publisher);
    fake_broker_stop (&broker);
}

//  hd_publisher_event_new hands out the memory of a settled event, cleared:
//  nothing of the event it was goes on the wire again.
static void
test_event_new_reuses_settled (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    hd_publisher_t *publisher = hd_publisher_new (broker.endpoint, "src");
    hd_event_t *event = hd_publisher_event_new (publisher, "t.x"); // none kept yet: a new one
    assert_non_null (event);
    const hd_event_t *first = event;
    hd_event_set_id (event, "a");
    hd_event_set_subject (event, "first-subject");
    hd_event_set_attribute (event, "k", "v");
    assert_int_equal (hd_publisher_publish (publisher, &event, 0), 0);
    s_confirm (&broker, s_expect_publish (&broker).corr, 1);
    assert_int_equal (hd_publisher_flush (publisher, WAIT_MS), 0);

    event = hd_publisher_event_new (publisher, "t.y");
    if (HD_SPARE_MAX (1)) // a sanitizer build keeps nothing, to see every use after free
        assert_ptr_equal (event, first);
    assert_string_equal (hd_event_type (event), "t.y");
    assert_string_equal (hd_event_id (event), "");
    assert_string_equal (hd_event_subject (event), "");
    assert_int_equal (hd_event_attribute_count (event), 0);
    hd_event_set_id (event, "b");
    assert_int_equal (hd_publisher_publish (publisher, &event, 0), 0);
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_PUBLISH, &msg, WAIT_MS));
    Herald__Event *sent =
        herald__event__unpack (NULL, zframe_size (msg.event), zframe_data (msg.event));
    assert_non_null (sent);
    assert_string_equal (sent->id, "b");
    assert_string_equal (sent->type, "t.y");
    assert_string_equal (sent->subject, "");
    assert_int_equal (sent->n_attributes, 0);
    assert_string_equal (sent->source, "src");
    herald__event__free_unpacked (sent, NULL);
    fake_msg_free (&msg);
    //  Unsettled events stay with the publisher; a new event is new memory
    hd_event_t *other = hd_publisher_event_new (publisher, "t.z");
    assert_non_null (other);
    hd_event_destroy (&other);
    hd_publisher_destroy (&publisher);
    fake_broker_stop (&broker);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_backlog_retry_does_not_delay_others),
        cmocka_unit_test (test_zero_timeout_processes_replies),
        cmocka_unit_test (test_confirms_batch),
        cmocka_unit_test (test_final_rejection),
        cmocka_unit_test (test_burst_goes_as_publishes),
        cmocka_unit_test (test_straggler_shares_its_slot),
        cmocka_unit_test (test_event_new_reuses_settled),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
