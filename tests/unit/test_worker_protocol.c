/*  Worker against a scripted broker (fake_broker.h): what the library puts
    on the wire for settles, credit, re-JOIN, stop, redeliveries and bad
    input. Every wait polls with a deadline. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "fake_broker.h"
#include "herald.h"
#include "seen.h"
#include "worker.h"

#define WAIT_MS 5000

//  ---------------------------------------------------------------------
//  A handler the tests steer: it records calls and can be held at a gate.

typedef struct {
    atomic_int calls;
    atomic_int returned;
    atomic_bool gate_closed; // handler waits while true
    atomic_bool inside;      // handler is running
    hd_verdict_t verdict;
    const char *error; // set with hd_delivery_set_error when not NULL
    char last_id[64];
    hd_worker_t *worker;  // for the calls below
    atomic_bool progress; // call hd_delivery_progress before the gate
    atomic_bool stop;     // call hd_worker_stop before returning
    pthread_t thread;     // the thread of the last call
    char thread_name[16]; // its name
    const char *hold_id;  // the gate holds only this id's calls (NULL: all)
    int sleep_ms;         // each call takes this long
    int progress_flood;   // calls hd_delivery_progress this often, from two threads
    bool progress_helper; // calls hd_delivery_progress once from another thread
    bool record;          // appends "id/payload/attribute k;" of each call to recorded
    char recorded[2048];
} s_handler_t;

static void *
s_progress_caller (void *arg)
{
    hd_delivery_t *delivery = arg;
    for (int call = 0; call < 1000; call++)
        hd_delivery_progress (delivery);
    return NULL;
}

static void *
s_progress_once (void *arg)
{
    hd_delivery_progress (arg);
    return NULL;
}

static hd_verdict_t
s_handler (hd_delivery_t *delivery, void *arg)
{
    s_handler_t *self = arg;
    atomic_fetch_add (&self->calls, 1);
    snprintf (self->last_id, sizeof self->last_id, "%s",
              hd_event_id (hd_delivery_event (delivery)));
    self->thread = pthread_self ();
    pthread_getname_np (self->thread, self->thread_name, sizeof self->thread_name);
    if (self->record) {
        const hd_event_t *event = hd_delivery_event (delivery);
        const char *attribute = hd_event_attribute (event, "k");
        size_t used = strlen (self->recorded);
        snprintf (self->recorded + used, sizeof self->recorded - used, "%s/%.*s/%s;",
                  hd_event_id (event), (int) hd_event_payload_size (event),
                  (const char *) hd_event_payload (event), attribute ? attribute : "-");
    }
    bool held = !self->hold_id || strcmp (self->hold_id, self->last_id) == 0;
    if (atomic_load (&self->progress))
        hd_delivery_progress (delivery);
    if (self->progress_helper) {
        pthread_t helper;
        assert_int_equal (pthread_create (&helper, NULL, s_progress_once, delivery), 0);
        pthread_join (helper, NULL);
    }
    if (self->sleep_ms)
        zclock_sleep (self->sleep_ms);
    if (self->progress_flood) {
        pthread_t other;
        assert_int_equal (pthread_create (&other, NULL, s_progress_caller, delivery), 0);
        for (int call = 0; call < self->progress_flood; call++)
            hd_delivery_progress (delivery);
        pthread_join (other, NULL);
    }
    atomic_store (&self->inside, true);
    while (held && atomic_load (&self->gate_closed))
        zclock_sleep (1);
    if (self->error)
        hd_delivery_set_error (delivery, self->error);
    atomic_store (&self->inside, false);
    if (atomic_load (&self->stop))
        hd_worker_stop (self->worker);
    //  Read before returned counts it: a test may be gone once it has
    hd_verdict_t verdict = self->verdict;
    atomic_fetch_add (&self->returned, 1);
    return verdict;
}

static bool
s_wait_flag (atomic_bool *flag, bool value)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (atomic_load (flag) != value)
        if (zclock_mono () > deadline)
            return false;
        else
            zclock_sleep (1);
    return true;
}

static bool
s_wait_int (atomic_int *counter, int value)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (atomic_load (counter) < value)
        if (zclock_mono () > deadline)
            return false;
        else
            zclock_sleep (1);
    return true;
}

//  ---------------------------------------------------------------------
//  Protocol helpers

static void
s_send_joined (fake_broker_t *broker, uint32_t heartbeat_ms)
{
    Herald__Joined joined = HERALD__JOINED__INIT;
    joined.pool = (char *) "p";
    joined.heartbeat_ms = heartbeat_ms;
    joined.liveness = 3;
    joined.ack_wait_ms = 30000;
    joined.session = 1;
    fake_broker_send (broker, HD_CMD_JOINED, &joined.base, 0, NULL, NULL);
}

//  A worker for broker, not started (options may be set on it).
static hd_worker_t *
s_worker_created (fake_broker_t *broker)
{
    hd_worker_t *worker = hd_worker_new (broker->endpoint, "p", "");
    assert_non_null (worker);
    hd_worker_set_stop_grace_ms (worker, 2000);
    return worker;
}

//  Start worker and complete its JOIN, with this heartbeat.
static void
s_worker_start_joined (fake_broker_t *broker, hd_worker_t *worker, s_handler_t *handler,
                       uint32_t heartbeat_ms)
{
    assert_int_equal (hd_worker_start (worker, s_handler, handler), 0);
    fake_msg_t msg;
    assert_true (fake_broker_expect (broker, HD_CMD_JOIN, &msg, WAIT_MS));
    fake_msg_free (&msg);
    s_send_joined (broker, heartbeat_ms);
    assert_int_equal (hd_worker_wait_joined (worker, WAIT_MS), 0);
}

//  Start a worker on broker and complete its JOIN.
static hd_worker_t *
s_worker_joined (fake_broker_t *broker, s_handler_t *handler)
{
    hd_worker_t *worker = s_worker_created (broker);
    s_worker_start_joined (broker, worker, handler, 1000);
    return worker;
}

static void
s_deliver (fake_broker_t *broker, uint64_t seq, uint32_t attempt, const char *id)
{
    Herald__Deliver deliver = HERALD__DELIVER__INIT;
    deliver.seq = seq;
    deliver.attempt = attempt;
    deliver.ack_wait_ms = 30000;
    Herald__Event event = HERALD__EVENT__INIT;
    event.id = (char *) id;
    event.source = (char *) "test";
    event.type = (char *) "t.x";
    size_t event_size;
    uint8_t *packed = hd_proto_pack (&event.base, &event_size);
    const void *extra[2] = {packed, "payload"};
    size_t sizes[2] = {event_size, 7};
    fake_broker_send (broker, HD_CMD_DELIVER, &deliver.base, 2, extra, sizes);
    free (packed);
}

//  A DELIVERS of count events, seqs first_seq.., attempt 1, ids from ids[].
static void
s_deliver_batch (fake_broker_t *broker, uint64_t first_seq, size_t count, const char **ids)
{
    Herald__Event *events = calloc (count, sizeof *events);
    Herald__Delivery *deliveries = calloc (count, sizeof *deliveries);
    Herald__Delivery **pointers = calloc (count, sizeof *pointers);
    assert_true (events && deliveries && pointers);
    for (size_t index = 0; index < count; index++) {
        herald__event__init (&events[index]);
        events[index].id = (char *) ids[index];
        events[index].source = (char *) "test";
        events[index].type = (char *) "t.x";
        herald__delivery__init (&deliveries[index]);
        deliveries[index].seq = first_seq + index;
        deliveries[index].attempt = 1;
        deliveries[index].event = &events[index];
        deliveries[index].payload.data = (uint8_t *) "payload";
        deliveries[index].payload.len = 7;
        pointers[index] = &deliveries[index];
    }
    Herald__Delivers delivers = HERALD__DELIVERS__INIT;
    delivers.n_deliveries = count;
    delivers.deliveries = pointers;
    fake_broker_send (broker, HD_CMD_DELIVERS, &delivers.base, 0, NULL, NULL);
    free (events);
    free (deliveries);
    free (pointers);
}

//  Collects ACKs until count tags came or nothing more does within the
//  wait; marks acked[seq] (seq < size). Returns the tags, and the size of
//  the first ACK in *first (if not NULL).
static size_t
s_collect_acks (fake_broker_t *broker, bool *acked, size_t size, size_t count, size_t *first)
{
    size_t tags = 0;
    int64_t deadline = zclock_mono () + WAIT_MS;
    fake_msg_t msg;
    while (tags < count && zclock_mono () < deadline &&
           fake_broker_expect (broker, HD_CMD_ACK, &msg, (int) (deadline - zclock_mono ()))) {
        Herald__Settle *settle =
            herald__settle__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
        assert_non_null (settle);
        if (first && tags == 0)
            *first = settle->n_seq;
        for (size_t index = 0; index < settle->n_seq; index++) {
            assert_true (settle->seq[index] < size && !acked[settle->seq[index]]);
            acked[settle->seq[index]] = true;
            tags++;
        }
        herald__settle__free_unpacked (settle, NULL);
        fake_msg_free (&msg);
    }
    return tags;
}

//  Wait for an ACK carrying tag (seq, attempt); false if another tag of
//  seq came first or nothing did.
static bool
s_expect_ack (fake_broker_t *broker, uint64_t seq, uint32_t attempt)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    fake_msg_t msg;
    while (zclock_mono () < deadline &&
           fake_broker_expect (broker, HD_CMD_ACK, &msg, (int) (deadline - zclock_mono ()))) {
        Herald__Settle *settle =
            herald__settle__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
        assert_non_null (settle);
        int found = 0; // 1: right tag, -1: wrong attempt
        for (size_t index = 0; index < settle->n_seq; index++)
            if (settle->seq[index] == seq)
                found = settle->attempt[index] == attempt ? 1 : -1;
        herald__settle__free_unpacked (settle, NULL);
        fake_msg_free (&msg);
        if (found)
            return found == 1;
    }
    return false;
}

//  The body of the next command (ACK or PROGRESS), or NULL if none came
//  or it does not parse; free with herald__settle__free_unpacked.
static Herald__Settle *
s_next_settle (fake_broker_t *broker, hd_command_t command)
{
    fake_msg_t msg;
    if (!fake_broker_expect (broker, command, &msg, WAIT_MS))
        return NULL;
    Herald__Settle *settle =
        herald__settle__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
    fake_msg_free (&msg);
    return settle;
}

//  The next PROGRESS carries exactly seq.
static bool
s_expect_progress (fake_broker_t *broker, uint64_t seq)
{
    Herald__Settle *settle = s_next_settle (broker, HD_CMD_PROGRESS);
    bool only_seq = settle && settle->n_seq == 1 && settle->seq[0] == seq;
    if (settle)
        herald__settle__free_unpacked (settle, NULL);
    return only_seq;
}

//  ---------------------------------------------------------------------
//  Tests

//  A big ACK batch must be split: the broker refuses a body over 64 KiB
//  whole (TOO_LARGE), which would lose every tag in it.
static void
test_settle_batches_fit_body_limit (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    zsock_t *dealer = zsock_new_dealer (broker.endpoint);
    assert_non_null (dealer);
    enum { COUNT = 10000 };
    uint64_t *seq = malloc (COUNT * sizeof *seq);
    uint32_t *attempt = malloc (COUNT * sizeof *attempt);
    for (size_t index = 0; index < COUNT; index++) {
        seq[index] = UINT64_MAX - index; // the longest varints
        attempt[index] = UINT32_MAX;
    }
    int messages =
        hd_worker_send_settles (zsock_resolve (dealer), HD_CMD_ACK, seq, attempt, COUNT, 0, 0);
    assert_true (messages > 1);
    size_t total = 0;
    for (int index = 0; index < messages; index++) {
        fake_msg_t msg;
        assert_true (fake_broker_expect (&broker, HD_CMD_ACK, &msg, WAIT_MS));
        assert_true (zframe_size (msg.body) <= 64 * 1024);
        Herald__Settle *settle =
            herald__settle__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
        assert_non_null (settle);
        assert_int_equal (settle->n_seq, settle->n_attempt);
        for (size_t tag = 0; tag < settle->n_seq; tag++)
            assert_true (settle->seq[tag] == seq[total + tag]);
        total += settle->n_seq;
        herald__settle__free_unpacked (settle, NULL);
        fake_msg_free (&msg);
    }
    assert_int_equal (total, COUNT);
    free (seq);
    free (attempt);
    zsock_destroy (&dealer);
    fake_broker_stop (&broker);
}

//  hd_worker_set_credit after start reaches the broker as CREDIT.
static void
test_credit_after_start (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    hd_worker_t *worker = s_worker_joined (&broker, &handler);
    hd_worker_set_credit (worker, 42);
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_CREDIT, &msg, WAIT_MS));
    Herald__Credit *credit =
        herald__credit__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
    assert_non_null (credit);
    assert_int_equal (credit->credit, 42);
    herald__credit__free_unpacked (credit, NULL);
    fake_msg_free (&msg);
    //  A later JOIN (after UNKNOWN_PEER) carries the new credit
    Herald__Error error = HERALD__ERROR__INIT;
    error.code = HERALD__ERROR_CODE__UNKNOWN_PEER;
    error.command = HD_CMD_HEARTBEAT;
    fake_broker_send (&broker, HD_CMD_ERROR, &error.base, 0, NULL, NULL);
    assert_true (fake_broker_expect (&broker, HD_CMD_JOIN, &msg, WAIT_MS));
    Herald__Join *join =
        herald__join__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
    assert_non_null (join);
    assert_int_equal (join->credit, 42);
    herald__join__free_unpacked (join, NULL);
    fake_msg_free (&msg);
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  UNKNOWN_PEER: JOIN again; old results are not sent under the old session.
static void
test_unknown_peer_rejoins (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    hd_worker_t *worker = s_worker_joined (&broker, &handler);
    Herald__Error error = HERALD__ERROR__INIT;
    error.code = HERALD__ERROR_CODE__UNKNOWN_PEER;
    error.command = HD_CMD_ACK;
    fake_broker_send (&broker, HD_CMD_ERROR, &error.base, 0, NULL, NULL);
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_JOIN, &msg, WAIT_MS));
    fake_msg_free (&msg);
    s_send_joined (&broker, 1000);
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (hd_worker_joins (worker) < 2 && zclock_mono () < deadline)
        zclock_sleep (1);
    assert_int_equal (hd_worker_joins (worker), 2);
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  Processed-id memory: a redelivered, processed event is acked without
//  the handler; one redelivered while its handler runs is not run twice
//  and is settled under the newest tag. A handler thread, so the I/O
//  thread reads on while the handler runs.
static void
test_redelivery_runs_handler_once (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    hd_worker_t *worker = s_worker_created (&broker);
    hd_worker_set_inline (worker, false);
    s_worker_start_joined (&broker, worker, &handler, 1000);

    s_deliver (&broker, 1, 1, "a");
    assert_true (s_expect_ack (&broker, 1, 1));
    s_deliver (&broker, 1, 2, "a");
    assert_true (s_expect_ack (&broker, 1, 2));
    assert_int_equal (atomic_load (&handler.calls), 1);
    assert_int_equal (hd_worker_skipped (worker), 1);

    atomic_store (&handler.gate_closed, true);
    s_deliver (&broker, 2, 1, "b");
    assert_true (s_wait_flag (&handler.inside, true));
    s_deliver (&broker, 2, 2, "b");
    //  Replies come in order: once "a" is acked again, "b"'s redelivery was seen
    s_deliver (&broker, 1, 3, "a");
    assert_true (s_expect_ack (&broker, 1, 3));
    atomic_store (&handler.gate_closed, false);
    assert_true (s_expect_ack (&broker, 2, 2));
    assert_int_equal (atomic_load (&handler.calls), 2);
    assert_int_equal (hd_worker_handled (worker), 2);

    //  The same for an id too long for a key kept in the job itself (its
    //  key is allocated): in hand, then processed
    char long_id[HD_KEY_ROOM + 100];
    memset (long_id, 'L', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    assert_true (s_wait_flag (&handler.inside, false));
    atomic_store (&handler.gate_closed, true);
    s_deliver (&broker, 3, 1, long_id);
    assert_true (s_wait_flag (&handler.inside, true));
    s_deliver (&broker, 3, 2, long_id);
    s_deliver (&broker, 1, 4, "a");
    assert_true (s_expect_ack (&broker, 1, 4));
    atomic_store (&handler.gate_closed, false);
    assert_true (s_expect_ack (&broker, 3, 2));
    s_deliver (&broker, 3, 3, long_id);
    assert_true (s_expect_ack (&broker, 3, 3));
    assert_int_equal (atomic_load (&handler.calls), 3);
    assert_int_equal (hd_worker_skipped (worker), 4); // "a" three times, the long id once
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  The worker asks for batches in its JOIN, runs every event of a DELIVERS
//  (packed here by protobuf-c, not by the broker's encoder), acks each tag,
//  skips an id it already processed, and survives a malformed batch.
static void
test_delivers_batch (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    hd_worker_t *worker = hd_worker_new (broker.endpoint, "p", "");
    assert_non_null (worker);
    hd_worker_set_stop_grace_ms (worker, 2000);
    assert_int_equal (hd_worker_start (worker, s_handler, &handler), 0);
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_JOIN, &msg, WAIT_MS));
    Herald__Join *join =
        herald__join__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
    assert_non_null (join);
    assert_true (join->max_batch > 1);
    herald__join__free_unpacked (join, NULL);
    fake_msg_free (&msg);
    s_send_joined (&broker, 1000);
    assert_int_equal (hd_worker_wait_joined (worker, WAIT_MS), 0);

    s_deliver (&broker, 1, 1, "e1"); // processed before the batch: skipped in it
    assert_true (s_expect_ack (&broker, 1, 1));
    enum { COUNT = 4 };
    const char *ids[COUNT] = {"e1", "e2", "e3", "e4"};
    Herald__Event events[COUNT];
    Herald__Delivery deliveries[COUNT];
    Herald__Delivery *pointers[COUNT];
    for (size_t index = 0; index < COUNT; index++) {
        herald__event__init (&events[index]);
        events[index].id = (char *) ids[index];
        events[index].source = (char *) "test";
        events[index].type = (char *) "t.x";
        herald__delivery__init (&deliveries[index]);
        deliveries[index].seq = 1 + index;
        deliveries[index].attempt = index == 0 ? 2 : 1;
        deliveries[index].event = &events[index];
        deliveries[index].payload.data = (uint8_t *) "payload";
        deliveries[index].payload.len = index == 3 ? 0 : 7;
        pointers[index] = &deliveries[index];
    }
    Herald__Delivers delivers = HERALD__DELIVERS__INIT;
    delivers.n_deliveries = COUNT;
    delivers.deliveries = pointers;
    fake_broker_send (&broker, HD_CMD_DELIVERS, &delivers.base, 0, NULL, NULL);
    //  The tags may come in one ACK or several
    bool acked[COUNT + 1] = {false};
    int64_t deadline = zclock_mono () + WAIT_MS;
    size_t acked_count = 0;
    while (acked_count < COUNT && zclock_mono () < deadline &&
           fake_broker_expect (&broker, HD_CMD_ACK, &msg, (int) (deadline - zclock_mono ()))) {
        Herald__Settle *settle =
            herald__settle__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
        assert_non_null (settle);
        for (size_t index = 0; index < settle->n_seq; index++) {
            uint64_t seq = settle->seq[index];
            assert_true (seq >= 1 && seq <= COUNT && !acked[seq]);
            assert_int_equal (settle->attempt[index], seq == 1 ? 2 : 1);
            acked[seq] = true;
            acked_count++;
        }
        herald__settle__free_unpacked (settle, NULL);
        fake_msg_free (&msg);
    }
    assert_int_equal (acked_count, COUNT);
    assert_int_equal (atomic_load (&handler.calls), COUNT);
    assert_int_equal (hd_worker_skipped (worker), 1);

    //  A batch cut short: what parses is run, the rest is dropped, no crash
    size_t size;
    uint8_t *packed = hd_proto_pack (&delivers.base, &size);
    for (size_t index = 0; index < COUNT; index++)
        events[index].id = (char *) (index ? "later" : "x");
    uint8_t header[4];
    hd_header_encode (header, HD_CMD_DELIVERS);
    const void *frames[2] = {header, packed};
    const size_t sizes[2] = {4, size - 3};
    fake_broker_send_frames (&broker, 2, frames, sizes);
    free (packed);
    s_deliver (&broker, 9, 1, "after");
    assert_true (s_expect_ack (&broker, 9, 1));
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  Nothing a broker sends may crash the worker; it keeps working after.
static void
test_malformed_input_is_survived (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    hd_worker_t *worker = s_worker_joined (&broker, &handler);

    uint8_t deliver_header[4], joined_header[4], error_header[4], bad_version[4];
    hd_header_encode (deliver_header, HD_CMD_DELIVER);
    hd_header_encode (joined_header, HD_CMD_JOINED);
    hd_header_encode (error_header, HD_CMD_ERROR);
    hd_header_encode (bad_version, HD_CMD_DELIVER);
    bad_version[2] = 9;
    const char garbage[] = "\xff\xff\xff\xff\x0f\x80";
    Herald__Deliver deliver = HERALD__DELIVER__INIT;
    deliver.seq = 7;
    deliver.attempt = 1;
    size_t deliver_size;
    uint8_t *deliver_packed = hd_proto_pack (&deliver.base, &deliver_size);
    struct {
        int count;
        const void *data[10];
        size_t sizes[10];
    } cases[] = {
        {1, {""}, {0}},
        {1, {"HD"}, {2}},
        {1, {deliver_header}, {4}},
        {2, {deliver_header, garbage}, {4, sizeof garbage}},
        {4, {deliver_header, garbage, garbage, ""}, {4, sizeof garbage, sizeof garbage, 0}},
        {4, {deliver_header, "", "", ""}, {4, 0, 0, 0}},
        {4, {bad_version, deliver_packed, "", ""}, {4, deliver_size, 0, 0}},
        {10,
         {deliver_header, deliver_packed, "", "", "", "", "", "", "", ""},
         {4, deliver_size, 0, 0, 0, 0, 0, 0, 0, 0}},
        {1, {joined_header}, {4}},
        {2, {joined_header, garbage}, {4, sizeof garbage}},
        {3, {joined_header, "", ""}, {4, 0, 0}},
        {1, {error_header}, {4}},
        {2, {error_header, garbage}, {4, sizeof garbage}},
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases[0]; index++)
        fake_broker_send_frames (&broker, cases[index].count, cases[index].data,
                                 cases[index].sizes);
    //  A DELIVER whose Event does not parse is terminated, not retried forever
    const void *bad_event[2] = {garbage, "x"};
    size_t bad_sizes[2] = {sizeof garbage, 1};
    fake_broker_send (&broker, HD_CMD_DELIVER, &deliver.base, 2, bad_event, bad_sizes);
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_TERM, &msg, WAIT_MS));
    Herald__Term *term =
        herald__term__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
    assert_non_null (term);
    assert_int_equal (term->seq, 7);
    herald__term__free_unpacked (term, NULL);
    fake_msg_free (&msg);
    free (deliver_packed);

    s_deliver (&broker, 8, 1, "good");
    assert_true (s_expect_ack (&broker, 8, 1));
    assert_string_equal (handler.last_id, "good");
    assert_int_equal (atomic_load (&handler.calls), 1);
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  A handler's long error text must not push the NACK over 64 KiB (the
//  broker would refuse it and the retry request would be lost).
static void
test_long_error_text_fits (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    size_t size = 200 * 1024;
    char *text = malloc (size + 1);
    memset (text, 'e', size);
    text[size] = 0;
    s_handler_t handler = {.verdict = HD_RETRY, .error = text};
    hd_worker_t *worker = s_worker_joined (&broker, &handler);
    s_deliver (&broker, 3, 1, "n");
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_NACK, &msg, WAIT_MS));
    assert_true (zframe_size (msg.body) <= 64 * 1024);
    Herald__Nack *nack =
        herald__nack__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
    assert_non_null (nack);
    assert_int_equal (nack->seq, 3);
    assert_true (strlen (nack->error) > 0 && strlen (nack->error) <= HD_WORKER_ERROR_MAX);
    herald__nack__free_unpacked (nack, NULL);
    fake_msg_free (&msg);
    hd_worker_destroy (&worker);
    free (text);
    fake_broker_stop (&broker);
}

//  A call into the worker on a thread of its own: hd_worker_run with
//  run_handler when set, else hd_worker_stop.
typedef struct {
    hd_worker_t *worker;
    s_handler_t *run_handler;
    atomic_bool done;
} s_worker_call_t;

static void *
s_worker_call (void *arg)
{
    s_worker_call_t *self = arg;
    if (self->run_handler)
        hd_worker_run (self->worker, s_handler, self->run_handler);
    else
        hd_worker_stop (self->worker);
    atomic_store (&self->done, true);
    return NULL;
}

//  A handler that never returns must not hold hd_worker_stop forever:
//  after the grace period the worker LEAVEs and stop returns; the handler,
//  when it finally returns, finds its worker still valid (ASan checks).
static void
test_stop_grace_with_hung_handler (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    atomic_store (&handler.gate_closed, true);
    hd_worker_t *worker = s_worker_joined (&broker, &handler);
    hd_worker_set_stop_grace_ms (worker, 200);
    s_deliver (&broker, 5, 1, "hung");
    assert_true (s_wait_flag (&handler.inside, true));

    s_worker_call_t stopper = {.worker = worker};
    pthread_t thread;
    int64_t started = zclock_mono ();
    assert_int_equal (pthread_create (&thread, NULL, s_worker_call, &stopper), 0);
    bool returned = s_wait_flag (&stopper.done, true);
    if (!returned) {
        //  Unblock it so the test can end, then fail
        atomic_store (&handler.gate_closed, false);
        pthread_join (thread, NULL);
        fail_msg ("hd_worker_stop still waiting for a hung handler after %d ms", WAIT_MS);
    }
    pthread_join (thread, NULL);
    assert_true (zclock_mono () - started < 2000);
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_LEAVE, &msg, WAIT_MS));
    fake_msg_free (&msg);
    assert_non_null (strstr (hd_worker_error (worker), "grace"));
    hd_worker_destroy (&worker);
    //  The handler returns after its worker was destroyed
    atomic_store (&handler.gate_closed, false);
    assert_true (s_wait_int (&handler.returned, 1));
    fake_broker_stop (&broker);
}

//  Threads of this process, from /proc.
static int
s_thread_count (void)
{
    FILE *file = fopen ("/proc/self/status", "r");
    assert_non_null (file);
    char line[256];
    int threads = -1;
    while (fgets (line, sizeof line, file))
        if (sscanf (line, "Threads: %d", &threads) == 1)
            break;
    fclose (file);
    return threads;
}

//  Inline handlers: no handler threads (concurrency is ignored), one
//  thread calls the handler and it is not the caller's; a PROGRESS goes out
//  while the handler is still inside; a redelivery of a processed id is
//  acked without the handler; a RETRY is a NACK; hd_worker_stop from the
//  handler settles that event, LEAVEs and lets hd_worker_stop/destroy from
//  another thread finish.
static void
test_inline_handlers (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    hd_worker_t *worker = s_worker_created (&broker);
    handler.worker = worker;
    hd_worker_set_concurrency (worker, 4);
    hd_worker_set_inline (worker, true);
    int threads_before = s_thread_count ();
    s_worker_start_joined (&broker, worker, &handler, 1000);
    //  The I/O thread and its guard only (threaded, concurrency 4 would
    //  add four handler threads instead of the guard)
    assert_int_equal (s_thread_count () - threads_before, 2);

    s_deliver (&broker, 1, 1, "a");
    assert_true (s_expect_ack (&broker, 1, 1));
    pthread_t first = handler.thread;
    assert_false (pthread_equal (first, pthread_self ()));
    s_deliver (&broker, 1, 2, "a");
    assert_true (s_expect_ack (&broker, 1, 2));
    assert_int_equal (atomic_load (&handler.calls), 1);
    assert_int_equal (hd_worker_skipped (worker), 1);

    //  PROGRESS while the handler holds the I/O thread
    atomic_store (&handler.progress, true);
    atomic_store (&handler.gate_closed, true);
    s_deliver (&broker, 2, 1, "b");
    assert_true (s_wait_flag (&handler.inside, true));
    assert_true (s_expect_progress (&broker, 2));
    atomic_store (&handler.gate_closed, false);
    assert_true (s_expect_ack (&broker, 2, 1));
    assert_true (pthread_equal (handler.thread, first));
    atomic_store (&handler.progress, false);

    handler.verdict = HD_RETRY;
    s_deliver (&broker, 3, 1, "c");
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_NACK, &msg, WAIT_MS));
    fake_msg_free (&msg);

    handler.verdict = HD_ACK;
    atomic_store (&handler.stop, true);
    s_deliver (&broker, 4, 1, "d");
    assert_true (s_expect_ack (&broker, 4, 1));
    assert_true (fake_broker_expect (&broker, HD_CMD_LEAVE, &msg, WAIT_MS));
    fake_msg_free (&msg);
    assert_int_equal (hd_worker_handled (worker), 4);
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  The handle_ns of the next ACK (0 if none came).
static uint32_t
s_ack_handle_ns (fake_broker_t *broker)
{
    Herald__Settle *settle = s_next_settle (broker, HD_CMD_ACK);
    assert_non_null (settle);
    uint32_t handle_ns = settle->handle_ns;
    herald__settle__free_unpacked (settle, NULL);
    return handle_ns;
}

//  ACKs say how long the handler takes an event, inline and on handler
//  threads, so the broker can size its runs.
static void
s_acks_carry_handle_ns (bool on_io_thread)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_RETRY, .sleep_ms = 20};
    hd_worker_t *worker = s_worker_created (&broker);
    hd_worker_set_inline (worker, on_io_thread);
    s_worker_start_joined (&broker, worker, &handler, 1000);
    //  A slow call that fails is not timed: the first ACK says the fast one
    s_deliver (&broker, 1, 1, "fails");
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_NACK, &msg, WAIT_MS));
    fake_msg_free (&msg);
    handler.verdict = HD_ACK;
    handler.sleep_ms = 0;
    s_deliver (&broker, 2, 1, "fast");
    uint32_t fast = s_ack_handle_ns (&broker);
    assert_true (fast > 0 && fast < 10000000);
    //  A 20 ms call moves the average an eighth of the way to it
    handler.sleep_ms = 20;
    s_deliver (&broker, 3, 1, "slow");
    uint32_t slow = s_ack_handle_ns (&broker);
    assert_true (slow >= fast + (20000000 - fast) / 8);
    assert_true (slow < 20000000);
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

static void
test_acks_carry_handle_ns (void **state)
{
    s_acks_carry_handle_ns (true);
    s_acks_carry_handle_ns (false);
    //  The average: the first call as it is, then an eighth of each change
    assert_int_equal (hd_worker_handle_ns_next (0, 1000), 1000);
    assert_int_equal (hd_worker_handle_ns_next (1000, 9000), 2000);
    assert_int_equal (hd_worker_handle_ns_next (8000, 0), 7001);
    assert_int_equal (hd_worker_handle_ns_next (0, 0), 1);
    assert_int_equal (hd_worker_handle_ns_next (1, 0), 1);
    assert_int_equal (hd_worker_handle_ns_next (0, 1ULL << 40), UINT32_MAX);
}

//  Which thread runs the handler: the I/O thread itself by default at
//  concurrency 1 (inline), a handler thread at higher concurrency or when
//  asked for.
static void
s_handler_thread_is (int concurrency, int set_inline, const char *expected)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    hd_worker_t *worker = s_worker_created (&broker);
    hd_worker_set_concurrency (worker, (uint32_t) concurrency);
    if (set_inline >= 0)
        hd_worker_set_inline (worker, set_inline == 1);
    s_worker_start_joined (&broker, worker, &handler, 1000);
    s_deliver (&broker, 1, 1, "which");
    assert_true (s_expect_ack (&broker, 1, 1));
    assert_string_equal (handler.thread_name, expected);
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

static void
test_inline_by_default (void **state)
{
    s_handler_thread_is (1, -1, "herald-io");
    s_handler_thread_is (2, -1, "herald-handler");
    s_handler_thread_is (1, 0, "herald-handler");
    s_handler_thread_is (2, 1, "herald-io");
}

typedef struct {
    s_handler_t *handler;
    atomic_bool stop_returned;
} s_gate_keeper_t;

//  Opens the gate if hd_worker_stop has not returned in time: a stop that
//  waits for the call then fails the test instead of hanging it.
static void *
s_gate_keeper (void *arg)
{
    s_gate_keeper_t *self = arg;
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (!atomic_load (&self->stop_returned) && zclock_mono () < deadline)
        zclock_sleep (1);
    if (!atomic_load (&self->stop_returned))
        atomic_store (&self->handler->gate_closed, false);
    return NULL;
}

//  Inline, hd_worker_stop from another thread while a call outlasts the
//  stop grace period: stop returns with the call still running. What the
//  batch ran before it is acked, the worker LEAVEs (the broker hands the
//  held event and the one after it to other workers), and neither is
//  acked or run here. The worker can be destroyed while the call runs;
//  when it returns the I/O thread exits and frees the worker (a leak or a
//  use after free shows under HERALD_SANITIZE).
static void
test_inline_stop_abandons_a_long_call (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK, .hold_id = "held"};
    atomic_store (&handler.gate_closed, true);
    int threads_before = s_thread_count ();
    hd_worker_t *worker = s_worker_created (&broker);
    hd_worker_set_stop_grace_ms (worker, 200);
    s_worker_start_joined (&broker, worker, &handler, 1000);
    const char *ids[3] = {"quick", "held", "after"};
    s_deliver_batch (&broker, 1, 3, ids);
    assert_true (s_wait_flag (&handler.inside, true));
    assert_string_equal (handler.last_id, "held");

    s_gate_keeper_t keeper = {.handler = &handler};
    pthread_t keeper_thread;
    assert_int_equal (pthread_create (&keeper_thread, NULL, s_gate_keeper, &keeper), 0);
    hd_worker_stop (worker);
    atomic_store (&keeper.stop_returned, true);
    bool still_inside = atomic_load (&handler.inside);
    pthread_join (keeper_thread, NULL);
    assert_true (still_inside);
    assert_non_null (strstr (hd_worker_error (worker), "left behind"));
    fake_msg_t msg;
    bool acked[4] = {false};
    bool left = false;
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (!left && fake_broker_recv (&broker, &msg, (int) (deadline - zclock_mono ()))) {
        left = msg.command == HD_CMD_LEAVE;
        if (msg.command == HD_CMD_ACK) {
            Herald__Settle *settle =
                herald__settle__unpack (NULL, zframe_size (msg.body), zframe_data (msg.body));
            assert_non_null (settle);
            for (size_t index = 0; index < settle->n_seq; index++)
                if (settle->seq[index] < 4)
                    acked[settle->seq[index]] = true;
            herald__settle__free_unpacked (settle, NULL);
        }
        fake_msg_free (&msg);
    }
    assert_true (left);
    assert_true (acked[1]);
    assert_false (acked[2]);
    assert_false (acked[3]);

    hd_worker_destroy (&worker);
    atomic_store (&handler.gate_closed, false);
    assert_true (s_wait_int (&handler.returned, 2));
    int64_t until = zclock_mono () + WAIT_MS;
    while (s_thread_count () > threads_before && zclock_mono () < until)
        zclock_sleep (1);
    assert_int_equal (s_thread_count (), threads_before);
    assert_int_equal (atomic_load (&handler.calls), 2);
    assert_false (fake_broker_recv (&broker, &msg, 100));
    fake_broker_stop (&broker);
}

//  Inline, a batch whose second call runs long: the first event's ACK goes
//  out during that call (the guard settles what has run once half a
//  heartbeat passed), not when the batch is done; and a PROGRESS asked for
//  from a thread of the handler's own is sent during the call too.
static void
test_inline_settles_during_a_long_call (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK, .hold_id = "slow"};
    atomic_store (&handler.gate_closed, true);
    hd_worker_t *worker = s_worker_created (&broker);
    s_worker_start_joined (&broker, worker, &handler, 200);
    const char *ids[2] = {"fast", "slow"};
    s_deliver_batch (&broker, 1, 2, ids);
    assert_true (s_wait_flag (&handler.inside, true));
    assert_true (s_expect_ack (&broker, 1, 1));
    assert_true (atomic_load (&handler.inside));
    atomic_store (&handler.gate_closed, false);
    assert_true (s_expect_ack (&broker, 2, 1));

    handler.progress_helper = true;
    handler.hold_id = "helped";
    atomic_store (&handler.gate_closed, true);
    s_deliver (&broker, 3, 1, "helped");
    assert_true (s_wait_flag (&handler.inside, true));
    assert_true (s_expect_progress (&broker, 3));
    assert_true (atomic_load (&handler.inside));
    atomic_store (&handler.gate_closed, false);
    assert_true (s_expect_ack (&broker, 3, 1));
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  hd_worker_run returns once hd_worker_stop from another thread has left
//  an inline call behind, not when the call returns.
static void
test_run_returns_when_a_call_is_abandoned (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    atomic_store (&handler.gate_closed, true);
    hd_worker_t *worker = s_worker_created (&broker);
    hd_worker_set_stop_grace_ms (worker, 100);
    s_worker_call_t runner = {.worker = worker, .run_handler = &handler};
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_worker_call, &runner), 0);
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_JOIN, &msg, WAIT_MS));
    fake_msg_free (&msg);
    s_send_joined (&broker, 1000);
    assert_int_equal (hd_worker_wait_joined (worker, WAIT_MS), 0);
    s_deliver (&broker, 1, 1, "stuck");
    assert_true (s_wait_flag (&handler.inside, true));
    hd_worker_stop (worker);
    assert_true (s_wait_flag (&runner.done, true));
    assert_true (atomic_load (&handler.inside));
    pthread_join (thread, NULL);
    hd_worker_destroy (&worker);
    atomic_store (&handler.gate_closed, false);
    assert_true (s_wait_int (&handler.returned, 1));
    fake_broker_stop (&broker);
}

//  A DELIVERS longer than the worker's look-ahead (32 items) with one id
//  twice, 32 items apart: the handler runs once for it and the newer lease
//  is the one acked; every other event runs once and is acked. Both modes.
static void
s_long_batch_with_repeat (bool inline_handler)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    hd_worker_t *worker = s_worker_created (&broker);
    hd_worker_set_inline (worker, inline_handler);
    s_worker_start_joined (&broker, worker, &handler, 1000);

    enum { COUNT = 40 };
    char names[COUNT][16];
    const char *ids[COUNT];
    for (size_t index = 0; index < COUNT; index++) {
        snprintf (names[index], sizeof names[index], "long-%zu", index == 35 ? (size_t) 3 : index);
        ids[index] = names[index];
    }
    s_deliver_batch (&broker, 1, COUNT, ids); // seqs 1..40: ids[3] is seq 4, ids[35] seq 36
    bool acked[COUNT + 1] = {false};
    assert_int_equal (s_collect_acks (&broker, acked, COUNT + 1, COUNT - 1, NULL), COUNT - 1);
    assert_false (acked[4]);
    assert_true (acked[36]);
    assert_true (s_wait_int (&handler.returned, COUNT - 1));
    assert_int_equal (atomic_load (&handler.calls), COUNT - 1);
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

static void
test_long_batch_with_repeat (void **state)
{
    s_long_batch_with_repeat (false);
    s_long_batch_with_repeat (true);
}

//  Inline, slow handlers: a batch never keeps the worker silent for more
//  than about half a heartbeat. With a heartbeat of 200 ms and 60 ms per
//  event, the first ACK of an 8-event DELIVERS carries only part of it.
//  Then a stop asked from inside a handler: the rest of the batch is not
//  run (LEAVE hands it back) and only the event that asked is acked.
static void
test_inline_batches_keep_the_worker_heard (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK, .sleep_ms = 60};
    hd_worker_t *worker = s_worker_created (&broker);
    handler.worker = worker;
    hd_worker_set_inline (worker, true);
    hd_worker_set_credit (worker, 100);
    s_worker_start_joined (&broker, worker, &handler, 200);

    const char *slow[8] = {"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"};
    s_deliver_batch (&broker, 1, 8, slow);
    bool acked[20] = {false};
    size_t first = 0;
    assert_int_equal (s_collect_acks (&broker, acked, 20, 8, &first), 8);
    assert_true (first > 0 && first < 8);

    handler.sleep_ms = 0;
    atomic_store (&handler.stop, true);
    const char *rest[4] = {"t0", "t1", "t2", "t3"};
    s_deliver_batch (&broker, 10, 4, rest);
    assert_true (s_expect_ack (&broker, 10, 1));
    fake_msg_t msg;
    assert_true (fake_broker_expect (&broker, HD_CMD_LEAVE, &msg, WAIT_MS));
    fake_msg_free (&msg);
    assert_int_equal (atomic_load (&handler.calls), 9);
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  Inline, one handler call that lasts many heartbeats: the guard thread
//  sends HEARTBEATs for the worker while the call runs (without it the
//  worker says nothing until the call returns), and the event is still
//  acked once it does.
static void
test_inline_long_call_keeps_heartbeating (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK};
    atomic_store (&handler.gate_closed, true);
    hd_worker_t *worker = s_worker_created (&broker);
    handler.worker = worker;
    hd_worker_set_inline (worker, true);
    s_worker_start_joined (&broker, worker, &handler, 100);
    s_deliver (&broker, 7, 1, "long");
    assert_true (s_wait_flag (&handler.inside, true));
    //  The I/O thread itself may have sent one just before the call; the
    //  others can only come from the guard
    fake_msg_t msg;
    for (int heartbeat = 0; heartbeat < 4; heartbeat++) {
        assert_true (fake_broker_expect (&broker, HD_CMD_HEARTBEAT, &msg, 1000));
        fake_msg_free (&msg);
        assert_true (atomic_load (&handler.inside));
    }
    atomic_store (&handler.gate_closed, false);
    assert_true (s_expect_ack (&broker, 7, 1));
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  Inline, a handler that calls hd_delivery_progress in a loop, and from a
//  thread of its own at the same time: the calls are safe, a few PROGRESS
//  messages go out (not one per call), and the event is acked.
static void
test_inline_progress_flood (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK, .progress_flood = 5000};
    hd_worker_t *worker = s_worker_created (&broker);
    hd_worker_set_inline (worker, true);
    s_worker_start_joined (&broker, worker, &handler, 1000);

    s_deliver (&broker, 7, 1, "flood");
    int progress = 0;
    bool acked = false;
    fake_msg_t msg;
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (!acked && zclock_mono () < deadline &&
           fake_broker_recv (&broker, &msg, (int) (deadline - zclock_mono ()))) {
        progress += msg.command == HD_CMD_PROGRESS;
        acked = msg.command == HD_CMD_ACK;
        fake_msg_free (&msg);
    }
    assert_true (acked);
    assert_true (progress >= 1 && progress < 100);
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

//  Inline handlers with a dedup store: an id acked by one worker is in the
//  store, so a second worker on the same store (a restart) acks the same
//  event without running the handler.
static void
test_inline_with_dedup_store (void **state)
{
    char dir[] = "/tmp/hd-inline-store-XXXXXX";
    assert_non_null (mkdtemp (dir));
    for (int round = 0; round < 2; round++) {
        fake_broker_t broker;
        fake_broker_start (&broker);
        s_handler_t handler = {.verdict = HD_ACK};
        hd_worker_t *worker = s_worker_created (&broker);
        hd_worker_set_inline (worker, true);
        assert_int_equal (hd_worker_set_dedup_store (worker, dir), 0);
        s_worker_start_joined (&broker, worker, &handler, 1000);
        s_deliver (&broker, 1, (uint32_t) round + 1, "stored");
        assert_true (s_expect_ack (&broker, 1, (uint32_t) round + 1));
        assert_int_equal (atomic_load (&handler.calls), round == 0 ? 1 : 0);
        assert_int_equal (hd_worker_skipped (worker), round == 0 ? 0 : 1);
        hd_worker_destroy (&worker);
        fake_broker_stop (&broker);
    }
    char command[128];
    snprintf (command, sizeof command, "rm -rf %s", dir);
    assert_int_equal (system (command), 0);
}

//  Sends one DELIVERS of count events: ids, payloads, attribute k (NULL: none)
static void
s_deliver_events (fake_broker_t *broker, uint64_t first_seq, size_t count, const char **ids,
                  const char **payloads, const char **attributes)
{
    Herald__Event events[8];
    Herald__Delivery deliveries[8];
    Herald__Delivery *pointers[8];
    Herald__Event__AttributesEntry entries[8];
    Herald__Event__AttributesEntry *entry_pointers[8];
    assert_true (count <= 8);
    for (size_t index = 0; index < count; index++) {
        herald__event__init (&events[index]);
        events[index].id = (char *) ids[index];
        events[index].source = (char *) "test";
        events[index].type = (char *) "t.x";
        if (attributes[index]) {
            herald__event__attributes_entry__init (&entries[index]);
            entries[index].key = (char *) "k";
            entries[index].value = (char *) attributes[index];
            entry_pointers[index] = &entries[index];
            events[index].n_attributes = 1;
            events[index].attributes = &entry_pointers[index];
        }
        herald__delivery__init (&deliveries[index]);
        deliveries[index].seq = first_seq + index;
        deliveries[index].attempt = 1;
        deliveries[index].event = &events[index];
        deliveries[index].payload.data = (uint8_t *) payloads[index];
        deliveries[index].payload.len = strlen (payloads[index]);
        pointers[index] = &deliveries[index];
    }
    Herald__Delivers delivers = HERALD__DELIVERS__INIT;
    delivers.n_deliveries = count;
    delivers.deliveries = pointers;
    fake_broker_send (broker, HD_CMD_DELIVERS, &delivers.base, 0, NULL, NULL);
}

//  A batch's items are decoded into the events of jobs already finished:
//  the handler sees each event whole, nothing of the one whose memory it
//  took (longer and shorter ids, payloads and attributes both ways).
static void
test_batches_reuse_finished_events (void **state)
{
    fake_broker_t broker;
    fake_broker_start (&broker);
    s_handler_t handler = {.verdict = HD_ACK, .record = true};
    hd_worker_t *worker = s_worker_joined (&broker, &handler);
    const char *ids_a[] = {"a1", "a2-with-a-long-id-to-leave-room", "a3"};
    const char *payloads_a[] = {"pa1-long-payload", "", "pa3"};
    const char *attributes_a[] = {"x1", NULL, "x3-long-attribute"};
    s_deliver_events (&broker, 1, 3, ids_a, payloads_a, attributes_a);
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (atomic_load (&handler.returned) < 3 && zclock_mono () < deadline)
        zclock_sleep (1);
    const char *ids_b[] = {"b1-longer-than-a1", "b2", "b3", "b4"};
    const char *payloads_b[] = {"p", "pb2-payload", "", "pb4"};
    const char *attributes_b[] = {NULL, "y2", "y3", NULL};
    s_deliver_events (&broker, 4, 4, ids_b, payloads_b, attributes_b);
    deadline = zclock_mono () + WAIT_MS;
    while (atomic_load (&handler.returned) < 7 && zclock_mono () < deadline)
        zclock_sleep (1);
    assert_int_equal (atomic_load (&handler.returned), 7);
    assert_string_equal (handler.recorded,
                         "a1/pa1-long-payload/x1;a2-with-a-long-id-to-leave-room//-;a3/pa3/"
                         "x3-long-attribute;b1-longer-than-a1/p/-;b2/pb2-payload/y2;b3//y3;"
                         "b4/pb4/-;");
    hd_worker_destroy (&worker);
    fake_broker_stop (&broker);
}

int
main (void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test (test_settle_batches_fit_body_limit),
        cmocka_unit_test (test_credit_after_start),
        cmocka_unit_test (test_unknown_peer_rejoins),
        cmocka_unit_test (test_redelivery_runs_handler_once),
        cmocka_unit_test (test_delivers_batch),
        cmocka_unit_test (test_batches_reuse_finished_events),
        cmocka_unit_test (test_malformed_input_is_survived),
        cmocka_unit_test (test_long_error_text_fits),
        cmocka_unit_test (test_stop_grace_with_hung_handler),
        cmocka_unit_test (test_inline_handlers),
        cmocka_unit_test (test_acks_carry_handle_ns),
        cmocka_unit_test (test_inline_by_default),
        cmocka_unit_test (test_inline_stop_abandons_a_long_call),
        cmocka_unit_test (test_inline_settles_during_a_long_call),
        cmocka_unit_test (test_run_returns_when_a_call_is_abandoned),
        cmocka_unit_test (test_long_batch_with_repeat),
        cmocka_unit_test (test_inline_batches_keep_the_worker_heard),
        cmocka_unit_test (test_inline_long_call_keeps_heartbeating),
        cmocka_unit_test (test_inline_progress_flood),
        cmocka_unit_test (test_inline_with_dedup_store),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
