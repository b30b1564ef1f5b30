/*  hd_probe — speaks the raw Herald protocol to check a broker's answers.

    hd_probe errors  --broker EP          every error path answers as documented
    hd_probe leases  --broker EP --pool P stale tags, NACK, PROGRESS, lease expiry
                                           (broker needs --ack-wait 400ms --backoff-initial 100ms)
    hd_probe garbage --broker EP --count N a flood of malformed input; broker must still answer
    hd_probe mixed-batches --broker EP --xpub EP --count N
                                          batches of alternating types: each event reaches a
                                          subscriber with its own payload

    Prints one line per check and exits 1 if any check failed.
*/
#include <czmq.h>
#include "codec.h"

typedef struct {
    int failed;
    int passed;
} s_tally_t;

static void
s_check (s_tally_t *tally, bool ok, const char *what)
{
    printf ("%s %s\n", ok ? "PASS" : "FAIL", what);
    fflush (stdout);
    if (ok)
        tally->passed++;
    else
        tally->failed++;
}

static zsock_t *
s_connect (const char *endpoint)
{
    zsock_t *socket = zsock_new (ZMQ_DEALER);
    zsock_set_linger (socket, 0);
    zsock_set_rcvtimeo (socket, 3000);
    if (zsock_connect (socket, "%s", endpoint) != 0) {
        fprintf (stderr, "hd_probe: cannot connect %s\n", endpoint);
        exit (2);
    }
    return socket;
}

//  Receive one message; returns its command or -1 on timeout. Skips HEARTBEATs.
static int
s_recv (zsock_t *socket, hd_frames_t *frames, int timeout_ms)
{
    void *raw = zsock_resolve (socket);
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return -1;
        zmq_pollitem_t item = {raw, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, (long) left) <= 0)
            continue;
        if (hd_frames_recv (frames, raw, 0) != 0)
            return -1;
        int command = -1;
        if (frames->count < 1 ||
            hd_header_decode (hd_frames_data (frames, 0), hd_frames_size (frames, 0), &command)) {
            hd_frames_close (frames);
            return -1;
        }
        if (command != HD_CMD_HEARTBEAT)
            return command;
        hd_frames_close (frames);
    }
}

//  Expect an ERROR (or REJECT) with code; returns true on match.
static bool
s_expect_code (zsock_t *socket, int want_command, int want_code)
{
    hd_frames_t frames;
    int command = s_recv (socket, &frames, 3000);
    if (command < 0)
        return false;
    int code = -1;
    if (command == HD_CMD_ERROR && frames.count >= 2) {
        Herald__Error *error =
            herald__error__unpack (NULL, hd_frames_size (&frames, 1), hd_frames_data (&frames, 1));
        if (error) {
            code = error->code;
            herald__error__free_unpacked (error, NULL);
        }
    } else if (command == HD_CMD_REJECT && frames.count >= 2) {
        Herald__Reject *reject =
            herald__reject__unpack (NULL, hd_frames_size (&frames, 1), hd_frames_data (&frames, 1));
        if (reject) {
            code = reject->code;
            herald__reject__free_unpacked (reject, NULL);
        }
    }
    hd_frames_close (&frames);
    if (command != want_command || code != want_code)
        printf ("     got %s code %s\n", hd_command_name (command), hd_error_name (code));
    return command == want_command && code == want_code;
}

static void
s_publish (zsock_t *socket, const char *type, const char *id, const void *payload, size_t size,
           uint64_t corr)
{
    void *raw = zsock_resolve (socket);
    Herald__Publish publish = HERALD__PUBLISH__INIT;
    publish.corr = corr;
    Herald__Event event = HERALD__EVENT__INIT;
    event.id = (char *) id;
    event.source = "hd_probe";
    event.type = (char *) type;
    hd_send_header (raw, HD_CMD_PUBLISH, ZMQ_SNDMORE);
    hd_send_proto (raw, &publish.base, ZMQ_SNDMORE);
    hd_send_proto (raw, &event.base, ZMQ_SNDMORE);
    hd_send_bytes (raw, payload, size, 0);
}

//  Expect CONFIRM; returns the seq or 0.
static uint64_t
s_expect_confirm (zsock_t *socket)
{
    hd_frames_t frames;
    uint64_t seq = 0;
    if (s_recv (socket, &frames, 3000) == HD_CMD_CONFIRM) {
        Herald__Confirm *confirm = herald__confirm__unpack (NULL, hd_frames_size (&frames, 1),
                                                            hd_frames_data (&frames, 1));
        if (confirm) {
            seq = confirm->seq;
            herald__confirm__free_unpacked (confirm, NULL);
        }
        hd_frames_close (&frames);
    }
    return seq;
}

static void
s_send_raw (zsock_t *socket, const char *header, size_t header_size, const void *body,
            size_t body_size)
{
    void *raw = zsock_resolve (socket);
    hd_send_bytes (raw, header, header_size, body ? ZMQ_SNDMORE : 0);
    if (body)
        hd_send_bytes (raw, body, body_size, 0);
}

static int
s_errors (const char *endpoint)
{
    s_tally_t tally = {0};
    zsock_t *socket = s_connect (endpoint);
    void *raw = zsock_resolve (socket);

    s_send_raw (socket, "XY\x01\x01", 4, NULL, 0);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__MALFORMED),
             "bad magic -> ERROR(MALFORMED)");
    s_send_raw (socket, "HD\x07\x01", 4, NULL, 0);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__BAD_VERSION),
             "version 7 -> ERROR(BAD_VERSION)");
    s_send_raw (socket, "HD\x01\x55", 4, NULL, 0);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__UNKNOWN_COMMAND),
             "command 0x55 -> ERROR(UNKNOWN_COMMAND)");
    s_send_raw (socket, "HD\x01\x01", 4, "\xff\xff\xff", 3);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__MALFORMED),
             "PUBLISH with 1 frame -> ERROR(MALFORMED)");

    //  Garbage Event protobuf
    Herald__Publish publish = HERALD__PUBLISH__INIT;
    publish.corr = 7;
    hd_send_header (raw, HD_CMD_PUBLISH, ZMQ_SNDMORE);
    hd_send_proto (raw, &publish.base, ZMQ_SNDMORE);
    hd_send_bytes (raw, "\xff\xff\xff\xff\xff", 5, ZMQ_SNDMORE);
    hd_send_bytes (raw, "x", 1, 0);
    s_check (&tally, s_expect_code (socket, HD_CMD_REJECT, HERALD__ERROR_CODE__MALFORMED),
             "garbage Event -> REJECT(MALFORMED)");

    s_publish (socket, "orders.placed", "", "x", 1, 8);
    s_check (&tally, s_expect_code (socket, HD_CMD_REJECT, HERALD__ERROR_CODE__INVALID),
             "missing id -> REJECT(INVALID)");
    s_publish (socket, "orders placed", "id-1", "x", 1, 9);
    s_check (&tally, s_expect_code (socket, HD_CMD_REJECT, HERALD__ERROR_CODE__INVALID),
             "type with a space -> REJECT(INVALID)");
    //  The type check reads eight bytes at a time, then the rest one by one
    s_publish (socket,
               "ord\x7f"
               "ers.placed",
               "id-1", "x", 1, 9);
    s_check (&tally, s_expect_code (socket, HD_CMD_REJECT, HERALD__ERROR_CODE__INVALID),
             "type with DEL in its first eight bytes -> REJECT(INVALID)");
    s_publish (socket, "orders.placed\t", "id-1", "x", 1, 9);
    s_check (&tally, s_expect_code (socket, HD_CMD_REJECT, HERALD__ERROR_CODE__INVALID),
             "type ending in a tab -> REJECT(INVALID)");
    char long_type[400];
    memset (long_type, 'a', sizeof long_type - 1);
    long_type[sizeof long_type - 1] = 0;
    s_publish (socket, long_type, "id-2", "x", 1, 10);
    s_check (&tally, s_expect_code (socket, HD_CMD_REJECT, HERALD__ERROR_CODE__INVALID),
             "type longer than --max-topic -> REJECT(INVALID)");
    size_t big = 2 * 1024 * 1024;
    char *payload = calloc (1, big);
    s_publish (socket, "orders.placed", "id-3", payload, big, 11);
    free (payload);
    s_check (&tally, s_expect_code (socket, HD_CMD_REJECT, HERALD__ERROR_CODE__TOO_LARGE),
             "2 MiB payload -> REJECT(TOO_LARGE)");

    s_publish (socket, "orders.placed", "bad-\xff\xfe-utf8", "x", 1, 12);
    s_check (&tally, s_expect_code (socket, HD_CMD_REJECT, HERALD__ERROR_CODE__INVALID),
             "id that is not UTF-8 -> REJECT(INVALID)");
    //  A Publish body over 64 KiB (an unknown field the parser would skip)
    size_t body_size = 70 * 1024;
    uint8_t *body = calloc (1, body_size);
    body[0] = (15 << 3) | 2; // field 15, length-delimited
    size_t length = body_size - 4;
    body[1] = (uint8_t) (length | 0x80);
    body[2] = (uint8_t) ((length >> 7) | 0x80);
    body[3] = (uint8_t) (length >> 14);
    Herald__Event valid = HERALD__EVENT__INIT;
    valid.id = "id-4";
    valid.source = "hd_probe";
    valid.type = "orders.placed";
    hd_send_header (raw, HD_CMD_PUBLISH, ZMQ_SNDMORE);
    hd_send_bytes (raw, body, body_size, ZMQ_SNDMORE);
    hd_send_proto (raw, &valid.base, ZMQ_SNDMORE);
    hd_send_bytes (raw, "x", 1, 0);
    free (body);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__TOO_LARGE),
             "70 KiB Publish body -> ERROR(TOO_LARGE)");

    //  PUBLISHES: wrong frame count, a body that does not parse, a bad
    //  item answered by its corr, then garbage after it
    s_send_raw (socket, "HD\x01\x05", 4, NULL, 0);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__MALFORMED),
             "PUBLISHES without a body -> ERROR(MALFORMED)");
    s_send_raw (socket, "HD\x01\x05", 4, "\x0a\xff\xff", 3);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__MALFORMED),
             "PUBLISHES body that does not parse -> ERROR(MALFORMED)");
    Herald__Event no_id = HERALD__EVENT__INIT;
    no_id.source = "hd_probe";
    no_id.type = "orders.placed";
    Herald__PublishItem item = HERALD__PUBLISH_ITEM__INIT;
    item.corr = 21;
    item.event = &no_id;
    Herald__PublishItem *items[] = {&item};
    Herald__Publishes publishes = HERALD__PUBLISHES__INIT;
    publishes.n_items = 1;
    publishes.items = items;
    size_t packed_size;
    uint8_t *packed = hd_proto_pack (&publishes.base, &packed_size);
    uint8_t *with_garbage = malloc (packed_size + 2);
    memcpy (with_garbage, packed, packed_size);
    memcpy (with_garbage + packed_size, "\x0a\x7f", 2); // an item longer than the body
    s_send_raw (socket, "HD\x01\x05", 4, with_garbage, packed_size + 2);
    free (with_garbage);
    free (packed);
    s_check (&tally, s_expect_code (socket, HD_CMD_REJECT, HERALD__ERROR_CODE__INVALID),
             "PUBLISHES item without an id -> REJECT(INVALID) for its corr");
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__MALFORMED),
             "PUBLISHES item cut short -> ERROR(MALFORMED)");
    size_t oversized_size = 1024 * 1024 + 1; // --max-publish-batch is 1 MiB by default
    uint8_t *oversized = calloc (1, oversized_size);
    s_send_raw (socket, "HD\x01\x05", 4, oversized, oversized_size);
    free (oversized);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__TOO_LARGE),
             "PUBLISHES body over --max-publish-batch -> ERROR(TOO_LARGE)");

    Herald__Settle settle = HERALD__SETTLE__INIT;
    uint64_t seq = 1;
    uint32_t attempt = 1;
    settle.n_seq = settle.n_attempt = 1;
    settle.seq = &seq;
    settle.attempt = &attempt;
    hd_send_command (raw, NULL, 0, HD_CMD_ACK, &settle.base, 0);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__UNKNOWN_PEER),
             "ACK without a session -> ERROR(UNKNOWN_PEER)");
    hd_send_command (raw, NULL, 0, HD_CMD_HEARTBEAT, NULL, 0);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__UNKNOWN_PEER),
             "HEARTBEAT without a session -> ERROR(UNKNOWN_PEER)");

    Herald__Join join = HERALD__JOIN__INIT;
    join.pool = "bad pool name!";
    join.filter = "";
    join.credit = 1;
    hd_send_command (raw, NULL, 0, HD_CMD_JOIN, &join.base, 0);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__INVALID),
             "JOIN with a bad pool name -> ERROR(INVALID)");
    join.pool = "probe-errors";
    join.credit = 0;
    hd_send_command (raw, NULL, 0, HD_CMD_JOIN, &join.base, 0);
    s_check (&tally, s_expect_code (socket, HD_CMD_ERROR, HERALD__ERROR_CODE__INVALID),
             "JOIN with credit 0 -> ERROR(INVALID)");
    join.credit = 1;
    join.filter = "a.";
    hd_send_command (raw, NULL, 0, HD_CMD_JOIN, &join.base, 0);
    hd_frames_t frames;
    s_check (&tally, s_recv (socket, &frames, 3000) == HD_CMD_JOINED, "valid JOIN -> JOINED");
    hd_frames_close (&frames);
    zsock_t *other = s_connect (endpoint);
    join.filter = "b.";
    hd_send_command (zsock_resolve (other), NULL, 0, HD_CMD_JOIN, &join.base, 0);
    s_check (&tally, s_expect_code (other, HD_CMD_ERROR, HERALD__ERROR_CODE__CONFLICT),
             "JOIN existing pool with another filter -> ERROR(CONFLICT)");
    zsock_destroy (&other);

    //  Still serving after all that
    s_publish (socket, "probe.ok", "ok-1", "x", 1, 12);
    s_check (&tally, s_expect_confirm (socket) > 0, "valid PUBLISH still confirmed");
    zsock_destroy (&socket);
    printf ("errors: %d passed, %d failed\n", tally.passed, tally.failed);
    return tally.failed ? 1 : 0;
}

//  Wait for DELIVER; fills seq and attempt. Returns true on success.
static bool
s_expect_deliver (zsock_t *socket, uint64_t *seq, uint32_t *attempt, int timeout_ms)
{
    hd_frames_t frames;
    int command = s_recv (socket, &frames, timeout_ms);
    if (command != HD_CMD_DELIVER) {
        if (command >= 0)
            hd_frames_close (&frames);
        return false;
    }
    bool ok = false;
    Herald__Deliver *deliver =
        herald__deliver__unpack (NULL, hd_frames_size (&frames, 1), hd_frames_data (&frames, 1));
    if (deliver && frames.count == 4) {
        *seq = deliver->seq;
        *attempt = deliver->attempt;
        ok = true;
    }
    if (deliver)
        herald__deliver__free_unpacked (deliver, NULL);
    hd_frames_close (&frames);
    return ok;
}

static void
s_settle (zsock_t *socket, int command, uint64_t seq, uint32_t attempt)
{
    Herald__Settle settle = HERALD__SETTLE__INIT;
    settle.n_seq = settle.n_attempt = 1;
    settle.seq = &seq;
    settle.attempt = &attempt;
    hd_send_command (zsock_resolve (socket), NULL, 0, command, &settle.base, 0);
}

//  Nothing but heartbeats for timeout_ms?
static bool
s_quiet (zsock_t *socket, int timeout_ms)
{
    hd_frames_t frames;
    int command = s_recv (socket, &frames, timeout_ms);
    if (command >= 0) {
        printf ("     unexpected %s\n", hd_command_name (command));
        hd_frames_close (&frames);
    }
    return command < 0;
}

static int
s_leases (const char *endpoint, const char *pool)
{
    s_tally_t tally = {0};
    zsock_t *worker = s_connect (endpoint);
    zsock_t *publisher = s_connect (endpoint);
    Herald__Join join = HERALD__JOIN__INIT;
    join.pool = (char *) pool;
    join.filter = "lease.";
    join.credit = 1;
    join.name = "probe";
    hd_send_command (zsock_resolve (worker), NULL, 0, HD_CMD_JOIN, &join.base, 0);
    hd_frames_t frames;
    s_check (&tally, s_recv (worker, &frames, 3000) == HD_CMD_JOINED, "JOIN -> JOINED");
    hd_frames_close (&frames);

    s_publish (publisher, "lease.test", "lease-1", "x", 1, 1);
    uint64_t published = s_expect_confirm (publisher);
    s_check (&tally, published > 0, "publish confirmed");
    uint64_t seq = 0;
    uint32_t attempt = 0;
    s_check (&tally,
             s_expect_deliver (worker, &seq, &attempt, 3000) && seq == published && attempt == 1,
             "DELIVER with attempt 1");

    s_settle (worker, HD_CMD_ACK, seq, attempt + 1);
    s_check (&tally, s_expect_code (worker, HD_CMD_ERROR, HERALD__ERROR_CODE__STALE_TAG),
             "ACK with a wrong attempt -> ERROR(STALE_TAG)");

    //  NACK with a delay: redelivered with attempt 2 after it
    Herald__Nack nack = HERALD__NACK__INIT;
    nack.seq = seq;
    nack.attempt = attempt;
    nack.delay_ms = 300;
    nack.error = "probe says later";
    int64_t nacked_at = zclock_mono ();
    hd_send_command (zsock_resolve (worker), NULL, 0, HD_CMD_NACK, &nack.base, 0);
    s_check (&tally,
             s_expect_deliver (worker, &seq, &attempt, 3000) && attempt == 2 &&
                 zclock_mono () - nacked_at >= 250,
             "NACK(300ms) -> redelivered after the delay with attempt 2");

    //  PROGRESS keeps the lease alive past ack_wait (400 ms)
    for (int round = 0; round < 4; round++) {
        zclock_sleep (150);
        s_settle (worker, HD_CMD_PROGRESS, seq, attempt);
    }
    s_check (&tally, s_quiet (worker, 100), "PROGRESS every 150ms keeps a 400ms lease");
    //  Then let it expire: redelivered with attempt 3, old tag refused
    s_check (&tally, s_expect_deliver (worker, &seq, &attempt, 3000) && attempt == 3,
             "expired lease -> redelivered with attempt 3");
    s_settle (worker, HD_CMD_ACK, seq, 2);
    s_check (&tally, s_expect_code (worker, HD_CMD_ERROR, HERALD__ERROR_CODE__STALE_TAG),
             "ACK of the expired lease -> ERROR(STALE_TAG)");
    s_settle (worker, HD_CMD_ACK, seq, 3);
    s_check (&tally, s_quiet (worker, 700),
             "ACK of the current lease accepted, nothing redelivered");
    s_settle (worker, HD_CMD_ACK, seq, 3);
    s_check (&tally, s_expect_code (worker, HD_CMD_ERROR, HERALD__ERROR_CODE__STALE_TAG),
             "second ACK of the same tag -> ERROR(STALE_TAG)");

    //  TERM: never redelivered
    s_publish (publisher, "lease.test", "lease-2", "x", 1, 2);
    s_expect_confirm (publisher);
    s_check (&tally, s_expect_deliver (worker, &seq, &attempt, 3000), "second event delivered");
    Herald__Term term = HERALD__TERM__INIT;
    term.seq = seq;
    term.attempt = attempt;
    term.error = "poison";
    hd_send_command (zsock_resolve (worker), NULL, 0, HD_CMD_TERM, &term.base, 0);
    s_check (&tally, s_quiet (worker, 1000), "TERM -> not redelivered");

    zsock_destroy (&worker);
    zsock_destroy (&publisher);
    printf ("leases: %d passed, %d failed\n", tally.passed, tally.failed);
    return tally.failed ? 1 : 0;
}

static int
s_garbage (const char *endpoint, int count)
{
    zsock_t *socket = s_connect (endpoint);
    void *raw = zsock_resolve (socket);
    uint64_t state = 0x2545F4914F6CDD1DULL ^ (uint64_t) getpid ();
    uint8_t buffer[4096];
    for (int index = 0; index < count; index++) {
        int frames = 1 + (int) (state % 12);
        for (int frame = 0; frame < frames; frame++) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            size_t size = state % sizeof buffer;
            for (size_t byte = 0; byte < size; byte++)
                buffer[byte] = (uint8_t) (state >> (byte % 56));
            //  Half the messages carry a valid header so the body parsers get exercised
            if (frame == 0 && (index & 1)) {
                static const uint8_t commands[] = {0x01, 0x10, 0x13, 0x14, 0x15, 0x16,
                                                   0x17, 0x18, 0x20, 0x21, 0x30};
                hd_header_encode (buffer, commands[state % sizeof commands]);
                size = HD_HEADER_SIZE;
            }
            zmq_send (raw, buffer, size, frame + 1 < frames ? ZMQ_SNDMORE : 0);
        }
        //  Drain replies now and then so our own queue does not fill
        hd_frames_t reply;
        while (hd_frames_recv (&reply, raw, ZMQ_DONTWAIT) == 0)
            hd_frames_close (&reply);
    }
    zsock_destroy (&socket);
    socket = s_connect (endpoint);
    s_publish (socket, "probe.after-garbage", "after-garbage", "x", 1, 1);
    bool ok = s_expect_confirm (socket) > 0;
    zsock_destroy (&socket);
    printf ("%s broker still confirms after %d garbage messages\n", ok ? "PASS" : "FAIL", count);
    return ok ? 0 : 1;
}

//  Create a pool with options (the first JOIN creates it), then LEAVE.
static int
s_create_pool (const char *endpoint, const char *pool, const char *filter, bool ordered,
               uint32_t max_deliver, const char *from, uint32_t ack_wait_ms)
{
    zsock_t *socket = s_connect (endpoint);
    Herald__StartPosition start = HERALD__START_POSITION__INIT;
    Herald__PoolOptions options = HERALD__POOL_OPTIONS__INIT;
    options.ordered = ordered;
    options.max_deliver = max_deliver;
    options.ack_wait_ms = ack_wait_ms;
    if (from) {
        if (strcmp (from, "earliest") == 0) {
            start.from_case = HERALD__START_POSITION__FROM_EARLIEST;
            start.earliest = true;
        } else if (strcmp (from, "latest") == 0) {
            start.from_case = HERALD__START_POSITION__FROM_LATEST;
            start.latest = true;
        } else if (from[0] == '@') {
            start.from_case = HERALD__START_POSITION__FROM_TIME_US;
            start.time_us = strtoull (from + 1, NULL, 10);
        } else {
            start.from_case = HERALD__START_POSITION__FROM_SEQ;
            start.seq = strtoull (from, NULL, 10);
        }
        options.start = &start;
    }
    Herald__Join join = HERALD__JOIN__INIT;
    join.pool = (char *) pool;
    join.filter = (char *) filter;
    join.credit = 1;
    join.name = "hd_probe";
    join.options = &options;
    hd_send_command (zsock_resolve (socket), NULL, 0, HD_CMD_JOIN, &join.base, 0);
    hd_frames_t frames;
    int command = s_recv (socket, &frames, 3000);
    if (command >= 0)
        hd_frames_close (&frames);
    if (command != HD_CMD_JOINED) {
        fprintf (stderr, "hd_probe: JOIN answered %s\n", hd_command_name (command));
        zsock_destroy (&socket);
        return 1;
    }
    hd_send_command (zsock_resolve (socket), NULL, 0, HD_CMD_LEAVE, NULL, 0);
    zsock_destroy (&socket);
    printf ("created pool %s\n", pool);
    return 0;
}

//  The same event count times in one burst (the broker reads them in one
//  turn): either every copy is confirmed with one seq (the first as new,
//  the rest as duplicates) or every copy is refused. A duplicate confirmed
//  for an original that is then refused would be a confirm of nothing.
static int
s_dup_burst (const char *endpoint, const char *id, int count)
{
    zsock_t *socket = s_connect (endpoint);
    char payload[1000];
    memset (payload, 'd', sizeof payload);
    for (int index = 0; index < count; index++)
        s_publish (socket, "f.dup", id, payload, sizeof payload, (uint64_t) index + 1);
    int confirmed = 0, duplicates = 0, rejected = 0, answered = 0;
    uint64_t seq = 0;
    bool one_seq = true;
    while (answered < count) {
        hd_frames_t frames;
        int command = s_recv (socket, &frames, 5000);
        if (command < 0)
            break;
        if (command == HD_CMD_CONFIRM || command == HD_CMD_CONFIRMS) {
            Herald__Confirms *many = NULL;
            Herald__Confirm *one = NULL;
            if (command == HD_CMD_CONFIRMS)
                many = herald__confirms__unpack (NULL, hd_frames_size (&frames, 1),
                                                 hd_frames_data (&frames, 1));
            else
                one = herald__confirm__unpack (NULL, hd_frames_size (&frames, 1),
                                               hd_frames_data (&frames, 1));
            size_t n = many ? many->n_seq : one ? 1 : 0;
            for (size_t index = 0; index < n; index++) {
                uint64_t got = many ? many->seq[index] : one->seq;
                bool duplicate = many ? many->duplicate[index] : one->duplicate;
                one_seq = one_seq && (seq == 0 || got == seq);
                seq = got;
                confirmed++;
                duplicates += duplicate;
                answered++;
            }
            if (many)
                herald__confirms__free_unpacked (many, NULL);
            if (one)
                herald__confirm__free_unpacked (one, NULL);
        } else if (command == HD_CMD_REJECT) {
            rejected++;
            answered++;
        }
        hd_frames_close (&frames);
    }
    zsock_destroy (&socket);
    printf ("confirmed=%d duplicates=%d rejected=%d one_seq=%d\n", confirmed, duplicates, rejected,
            one_seq);
    bool all_confirmed = confirmed == count && one_seq && duplicates >= count - 1;
    bool all_refused = rejected == count;
    return all_confirmed || all_refused ? 0 : 1;
}

//  count idle workers spread over pools pools: each a connection that
//  JOINs and then only heartbeats, for seconds seconds (what a worker with
//  nothing to do sends). For the idle-scale figure in bench/scale_idle.sh.
static int
s_idle_workers (const char *endpoint, int count, int pools, int seconds)
{
    zsys_set_max_sockets ((size_t) count + 16);
    zsock_t **sockets = calloc ((size_t) count, sizeof *sockets);
    zmq_pollitem_t *items = calloc ((size_t) count, sizeof *items);
    if (!sockets || !items)
        return 1;
    for (int index = 0; index < count; index++) {
        sockets[index] = s_connect (endpoint);
        if (!sockets[index]) {
            fprintf (stderr, "hd_probe: socket %d: %s\n", index, zmq_strerror (zmq_errno ()));
            return 1;
        }
        char pool[32], name[32];
        snprintf (pool, sizeof pool, "idle-%d", index % pools);
        snprintf (name, sizeof name, "idle-%d", index);
        Herald__Join join = HERALD__JOIN__INIT;
        join.pool = pool;
        join.filter = pool; // no events of ours match: the pools stay idle
        join.credit = 10;
        join.name = name;
        hd_send_command (zsock_resolve (sockets[index]), NULL, 0, HD_CMD_JOIN, &join.base, 0);
        items[index].socket = zsock_resolve (sockets[index]);
        items[index].events = ZMQ_POLLIN;
    }
    int joined = 0;
    int64_t end = zclock_mono () + (int64_t) seconds * 1000, next_beat = 0;
    while (!zsys_interrupted && zclock_mono () < end) {
        int64_t now = zclock_mono ();
        if (now >= next_beat) {
            for (int index = 0; index < count; index++)
                hd_send_command (items[index].socket, NULL, 0, HD_CMD_HEARTBEAT, NULL,
                                 ZMQ_DONTWAIT);
            next_beat = now + 1000;
        }
        if (zmq_poll (items, count, 100) <= 0)
            continue;
        for (int index = 0; index < count; index++) {
            if (!(items[index].revents & ZMQ_POLLIN))
                continue;
            hd_frames_t frames;
            while (hd_frames_recv (&frames, items[index].socket, ZMQ_DONTWAIT) == 0) {
                int command;
                if (frames.count >= 1 &&
                    hd_header_decode (hd_frames_data (&frames, 0), hd_frames_size (&frames, 0),
                                      &command) == 0 &&
                    command == HD_CMD_JOINED && ++joined == count)
                    printf ("joined=%d\n", joined), fflush (stdout);
                hd_frames_close (&frames);
            }
        }
    }
    for (int index = 0; index < count; index++) {
        hd_send_command (items[index].socket, NULL, 0, HD_CMD_LEAVE, NULL, ZMQ_DONTWAIT);
        zsock_destroy (&sockets[index]);
    }
    free (sockets);
    free (items);
    return joined == count ? 0 : 1;
}

//  Checks one received event of mixed-batches: its id is m-N or r-N, not seen
//  before, and every byte of its payload is N & 0xFF. Returns 1 for a right
//  one, 0 for a probe (ignored), -1 for a wrong one.
static int
s_mixed_check (const void *envelope, size_t envelope_size, const uint8_t *payload,
               size_t payload_size, char *seen, int count)
{
    Herald__Event *event = herald__event__unpack (NULL, envelope_size, envelope);
    if (!event)
        return -1;
    int number = -1;
    bool probe = strncmp (event->id, "probe-", 6) == 0;
    if (!probe)
        sscanf (event->id, "%*c-%d", &number); // m-N, or r-N with repeats
    herald__event__free_unpacked (event, NULL);
    if (probe)
        return 0;
    if (number < 0 || number >= count || seen[number]++ || payload_size != 100)
        return -1;
    for (size_t index = 0; index < payload_size; index++)
        if (payload[index] != (uint8_t) number)
            return -1;
    return 1;
}

//  count events in PUBLISHES batches of 48 whose types alternate (mixed.a,
//  mixed.b), each with a payload of its own, watched live on the XPUB.
//  Every run of one type is one event long, so the broker sends each event
//  as a message of its own while the batch that holds its payload is only
//  the broker's until the end of the turn: every event must arrive with its
//  own bytes. With repeats, ten items of each batch repeat an earlier one
//  of the same batch, 1 to 5 items back, two of them across the broker's
//  runs of 32 items checked ahead (32 repeats 30, 33 repeats 31): each must
//  be confirmed as a duplicate and arrive nowhere, every other event exactly
//  once (runs of one type are then longer: the single-message path is the
//  plain mode's).
static int
s_mixed_batches (const char *endpoint, const char *xpub, int count, bool with_repeats)
{
    zsock_t *sub = zsock_new_sub (xpub, "mixed.");
    zsock_t *socket = s_connect (endpoint);
    if (!sub) {
        fprintf (stderr, "hd_probe: cannot connect %s\n", xpub);
        return 2;
    }
    //  The subscription has reached the broker once a probe comes back
    bool subscribed = false;
    for (int probe = 0; probe < 100 && !subscribed; probe++) {
        char id[32];
        snprintf (id, sizeof id, "probe-%d", probe);
        s_publish (socket, "mixed.probe", id, "p", 1, (uint64_t) probe + 1);
        zmq_pollitem_t item = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
        subscribed = zmq_poll (&item, 1, 100) == 1;
    }
    if (!subscribed) {
        fprintf (stderr, "hd_probe: no probe came back on %s\n", xpub);
        return 1;
    }
    enum { BATCH = 48 };
    //  The item each one repeats, or -1
    int repeats[BATCH];
    for (int index = 0; index < BATCH; index++)
        repeats[index] = -1;
    static const int pairs[][2] = {{1, 0},   {4, 2},   {8, 5},   {11, 7},  {15, 10},
                                   {32, 30}, {33, 31}, {37, 35}, {44, 40}, {47, 46}};
    for (size_t pair = 0; pair < sizeof pairs / sizeof pairs[0]; pair++)
        repeats[pairs[pair][0]] = pairs[pair][1];
    int expected_duplicates = 0;
    uint8_t payloads[BATCH][100];
    char ids[BATCH][16];
    Herald__Event events[BATCH];
    Herald__PublishItem items[BATCH];
    Herald__PublishItem *list[BATCH];
    for (int first = 0; first < count; first += BATCH) {
        int size = count - first < BATCH ? count - first : BATCH;
        for (int index = 0; index < size; index++) {
            int original = with_repeats && repeats[index] >= 0 ? repeats[index] : index;
            int number = first + original;
            expected_duplicates += original != index;
            //  Ids of their own per mode: one broker sees both modes
            snprintf (ids[index], sizeof ids[index], "%c-%d", with_repeats ? 'r' : 'm', number);
            memset (payloads[index], (uint8_t) number, sizeof payloads[index]);
            herald__event__init (&events[index]);
            events[index].id = ids[index];
            events[index].source = "hd_probe";
            events[index].type = number % 2 ? "mixed.b" : "mixed.a";
            herald__publish_item__init (&items[index]);
            items[index].corr = 1000 + (uint64_t) (first + index);
            items[index].event = &events[index];
            items[index].payload.data = payloads[index];
            items[index].payload.len = sizeof payloads[index];
            list[index] = &items[index];
        }
        Herald__Publishes publishes = HERALD__PUBLISHES__INIT;
        publishes.n_items = (size_t) size;
        publishes.items = list;
        size_t packed_size;
        uint8_t *packed = hd_proto_pack (&publishes.base, &packed_size);
        s_send_raw (socket, "HD\x01\x05", 4, packed, packed_size);
        free (packed);
    }
    int distinct = count - expected_duplicates;
    char *seen = count > 0 ? calloc ((size_t) count, 1) : NULL;
    int right = 0, wrong = 0;
    while (seen && right + wrong < distinct) {
        hd_frames_t frames;
        zmq_pollitem_t item = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 10000) != 1 ||
            hd_frames_recv (&frames, zsock_resolve (sub), 0) != 0)
            break;
        if (frames.count == 4) {
            int checked = s_mixed_check (hd_frames_data (&frames, 2), hd_frames_size (&frames, 2),
                                         hd_frames_data (&frames, 3), hd_frames_size (&frames, 3),
                                         seen, count);
            right += checked > 0;
            wrong += checked < 0;
        } else if (frames.count == 2) {
            const uint8_t *cursor = hd_frames_data (&frames, 1);
            const uint8_t *end = cursor + hd_frames_size (&frames, 1);
            hd_fanout_view_t view;
            while (hd_decode_fanout_item (&cursor, end, &view) == 1) {
                int checked = s_mixed_check (view.envelope, view.envelope_size, view.payload,
                                             view.payload_size, seen, count);
                right += checked > 0;
                wrong += checked < 0;
            }
        } else
            wrong++;
        hd_frames_close (&frames);
    }
    //  Anything more on the XPUB is a duplicate that got through: it would
    //  come with the last turns' fan-out, well within the wait
    for (zmq_pollitem_t item = {zsock_resolve (sub), 0, ZMQ_POLLIN, 0};
         wrong == 0 && zmq_poll (&item, 1, 200) == 1;) {
        hd_frames_t frames;
        if (hd_frames_recv (&frames, zsock_resolve (sub), 0) != 0)
            break;
        wrong++;
        hd_frames_close (&frames);
    }
    free (seen);
    int confirmed = 0, duplicates = 0;
    while (confirmed < count + 100) {
        hd_frames_t frames;
        //  Past count, a short wait for a confirm too many
        int command = s_recv (socket, &frames, confirmed >= count ? 200 : 5000);
        if (command < 0)
            break;
        Herald__Confirms *many = NULL;
        Herald__Confirm *one = NULL;
        if (command == HD_CMD_CONFIRMS)
            many = herald__confirms__unpack (NULL, hd_frames_size (&frames, 1),
                                             hd_frames_data (&frames, 1));
        else if (command == HD_CMD_CONFIRM)
            one = herald__confirm__unpack (NULL, hd_frames_size (&frames, 1),
                                           hd_frames_data (&frames, 1));
        for (size_t index = 0; index < (many ? many->n_seq : one ? 1 : 0); index++) {
            uint64_t corr = many ? many->corr[index] : one->corr;
            bool duplicate = many ? many->duplicate[index] : one->duplicate;
            //  Probes (corr 1..100) are not counted
            confirmed += corr >= 1000;
            duplicates += corr >= 1000 && duplicate;
        }
        if (many)
            herald__confirms__free_unpacked (many, NULL);
        if (one)
            herald__confirm__free_unpacked (one, NULL);
        hd_frames_close (&frames);
    }
    printf ("right=%d wrong=%d of %d distinct; confirmed=%d duplicates=%d of %d\n", right, wrong,
            distinct, confirmed, duplicates, expected_duplicates);
    zsock_destroy (&socket);
    zsock_destroy (&sub);
    return right == distinct && wrong == 0 && confirmed == count &&
                   duplicates == expected_duplicates
               ? 0
               : 1;
}

int
main (int argc, char **argv)
{
    if (argc < 2 || !strcmp (argv[1], "--help")) {
        printf ("usage: hd_probe errors|leases|garbage --broker EP [--pool P] [--count N]\n"
                "       hd_probe idle-workers --broker EP --count N [--pools P] [--seconds S]\n"
                "       hd_probe dup-burst --broker EP --pool ID --count N\n"
                "       hd_probe mixed-batches --broker EP --xpub EP --count N [--repeats 1]\n"
                "       hd_probe create-pool --broker EP --pool P [--filter F] [--ordered 1]\n"
                "                [--max-deliver N] [--ack-wait-ms N] [--from "
                "earliest|latest|SEQ|@TIME_US]\n");
        return argc < 2 ? 2 : 0;
    }
    const char *endpoint = "tcp://127.0.0.1:7100";
    const char *xpub = "tcp://127.0.0.1:7101";
    const char *pool = "probe";
    int count = 10000;
    const char *filter = "", *from = NULL;
    bool ordered = false;
    uint32_t max_deliver = 0, ack_wait_ms = 0;
    int pools = 100, seconds = 30;
    bool repeats = false;
    for (int index = 2; index + 1 < argc; index += 2) {
        if (!strcmp (argv[index], "--broker"))
            endpoint = argv[index + 1];
        else if (!strcmp (argv[index], "--xpub"))
            xpub = argv[index + 1];
        else if (!strcmp (argv[index], "--pool"))
            pool = argv[index + 1];
        else if (!strcmp (argv[index], "--count"))
            count = atoi (argv[index + 1]);
        else if (!strcmp (argv[index], "--filter"))
            filter = argv[index + 1];
        else if (!strcmp (argv[index], "--ordered"))
            ordered = atoi (argv[index + 1]) != 0;
        else if (!strcmp (argv[index], "--max-deliver"))
            max_deliver = (uint32_t) atoi (argv[index + 1]);
        else if (!strcmp (argv[index], "--ack-wait-ms"))
            ack_wait_ms = (uint32_t) atoi (argv[index + 1]);
        else if (!strcmp (argv[index], "--from"))
            from = argv[index + 1];
        else if (!strcmp (argv[index], "--pools"))
            pools = atoi (argv[index + 1]) > 0 ? atoi (argv[index + 1]) : 1;
        else if (!strcmp (argv[index], "--seconds"))
            seconds = atoi (argv[index + 1]);
        else if (!strcmp (argv[index], "--repeats"))
            repeats = atoi (argv[index + 1]) != 0;
    }
    if (!strcmp (argv[1], "errors"))
        return s_errors (endpoint);
    if (!strcmp (argv[1], "leases"))
        return s_leases (endpoint, pool);
    if (!strcmp (argv[1], "garbage"))
        return s_garbage (endpoint, count);
    if (!strcmp (argv[1], "dup-burst"))
        return s_dup_burst (endpoint, pool, count);
    if (!strcmp (argv[1], "mixed-batches"))
        return s_mixed_batches (endpoint, xpub, count, repeats);
    if (!strcmp (argv[1], "idle-workers"))
        return s_idle_workers (endpoint, count, pools, seconds);
    if (!strcmp (argv[1], "create-pool"))
        return s_create_pool (endpoint, pool, filter, ordered, max_deliver, from, ack_wait_ms);
    fprintf (stderr, "hd_probe: unknown mode %s\n", argv[1]);
    return 2;
}
