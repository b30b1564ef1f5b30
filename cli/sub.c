/*  sub — herald sub [PREFIX ...]: print live events from the fan-out, and
    with --from the history before them (docs/PROTOCOL.md section 9).
*/
#include "cli.h"
#include "herald.h"
#include "options.h"

#include <czmq.h>
#include <errno.h>
#include <unistd.h>

#define S_RECV_SLICE_MS   200 // how often the loop looks at signals and the clock
#define S_DRAIN_EVERY     64  // replayed events between two looks at the live feed
#define S_MAX_REPLAY_PAGE 10000

static const char *s_description =
    "Subscribe to events whose type starts with one of the PREFIXes (none: every\n"
    "event) and print each one as it arrives, one line per event, flushed at once.\n"
    "\n"
    "Line format: 'seq=SEQ id=ID type=TYPE PAYLOAD'. PAYLOAD is the text itself\n"
    "when it is UTF-8 without control characters (a final newline is not shown),\n"
    "'hex:0a1b...' for other payloads up to 64 bytes, '<N bytes binary>' for\n"
    "longer ones, and nothing for an empty payload.\n"
    "With --json each line is one JSON object: seq, id, source, type, subject,\n"
    "key, correlation_id, causation_id, content_type, schema_version, traceparent,\n"
    "time_us, recorded_time_us, attributes (object), and 'payload' (string) when\n"
    "the payload is valid UTF-8, else 'payload_b64' (base64).\n"
    "\n"
    "Delivery is live and at-most-once: events published before the subscription\n"
    "reached the broker are not seen. Lost events show as gaps in each type's\n"
    "sequence; the subscriber reports its counts to the broker at --broker (give\n"
    "--broker '' to send no reports).\n"
    "\n"
    "History: with --from SEQ (a seq number), --from TIME (RFC 3339, e.g.\n"
    "2026-11-22T10:00:00Z) or --from -DURATION (e.g. -10m: ten minutes ago) the\n"
    "events still in the broker's log from there on are printed first, in seq\n"
    "order and in the same format, fetched from the broker at --broker; then the\n"
    "live ones. Live events are subscribed to first and kept while the history is\n"
    "read, so no event between history and live is missed or printed twice.\n"
    "\n"
    "On exit 'received=N gaps=G' goes to stderr (with --from also 'replayed=R':\n"
    "how many of the N came from the history). Exit status: 0 after --count\n"
    "events, on SIGINT/SIGTERM, or when --timeout ends a run without --count;\n"
    "1 when --timeout ends a run before --count events arrived, or on an error;\n"
    "2 on a usage error.";

typedef struct {
    char *xpub;
    char *broker;
    char *name;
    char *from;
    int64_t count;
    int64_t timeout;
    int64_t replay_page;
    int64_t replay_timeout;
    bool json;
} s_sub_t;

//  One run: what has been printed, and the live events kept meanwhile.
typedef struct {
    s_sub_t *options;
    hd_subscriber_t *subscriber;
    char **prefixes;
    int prefix_count;
    uint64_t from_seq;     // --from SEQ
    uint64_t from_time_us; // --from TIME: events recorded before are not shown
    bool history;          // --from: seqs below next_print are not printed
    uint64_t next_print;   // every seq below was printed, or is not to be
    uint64_t printed;      // events printed, history and live
    uint64_t replayed;     // of which from the history
    zlistx_t *held;        // live events received while the history is printed
    int64_t deadline;      // --timeout, 0: none
    bool done;             // --count reached, or stop: exit_code says how
    int exit_code;
} s_run_t;

static bool
s_matches (s_run_t *self, const char *type)
{
    if (self->prefix_count == 0)
        return true;
    for (int index = 0; index < self->prefix_count; index++)
        if (strncmp (type, self->prefixes[index], strlen (self->prefixes[index])) == 0)
            return true;
    return false;
}

//  Print event unless it was printed already (or is before --from).
static void
s_emit (s_run_t *self, const hd_event_t *event, bool history)
{
    uint64_t seq = hd_event_seq (event);
    if ((self->history && seq < self->next_print) || self->done)
        return;
    if (history && !s_matches (self, hd_event_type (event)))
        return;
    if (self->from_time_us && hd_event_recorded_time_us (event) < self->from_time_us)
        return;
    if (self->options->json) {
        cli_event_print_json (stdout, event);
        putchar ('\n');
    } else
        cli_event_print_line (stdout, event);
    self->next_print = seq + 1;
    self->printed++;
    if (history)
        self->replayed++;
    if (self->options->count > 0 && self->printed >= (uint64_t) self->options->count)
        self->done = true;
}

//  Flush what was printed. False when output is over (the reader went away,
//  or a write failed: then exit_code says so).
static bool
s_flush (s_run_t *self)
{
    if (fflush (stdout) == 0 && !ferror (stdout))
        return true;
    //  The reader went away (herald sub | head): a normal end.
    if (errno != EPIPE) {
        fprintf (stderr, "herald: cannot write output: %s\n", strerror (errno));
        self->exit_code = CLI_EXIT_FAILURE;
    }
    self->done = true;
    return false;
}

//  True when --timeout has run out (and sets the exit code for it).
static bool
s_expired (s_run_t *self)
{
    if (!self->deadline || zclock_mono () < self->deadline)
        return false;
    if (self->options->count > 0)
        self->exit_code = CLI_EXIT_FAILURE;
    self->done = true;
    return true;
}

//  Wait at most this long, within --timeout.
static int
s_slice (s_run_t *self, int wait)
{
    if (self->deadline) {
        int64_t remaining = self->deadline - zclock_mono ();
        if (remaining < wait)
            wait = remaining > 0 ? (int) remaining : 0;
    }
    return wait;
}

//  Keep the live events that have arrived; those already printed go.
static void
s_hold_live (s_run_t *self, int timeout_ms)
{
    hd_event_t *event = hd_subscriber_recv (self->subscriber, timeout_ms);
    while (event) {
        if (hd_event_seq (event) < self->next_print)
            hd_event_destroy (&event);
        else
            zlistx_add_end (self->held, event);
        event = hd_subscriber_recv (self->subscriber, 0);
    }
}

static uint64_t
s_first_held (s_run_t *self)
{
    hd_event_t *event = zlistx_first (self->held);
    return event ? hd_event_seq (event) : 0;
}

//  The longest prefix common to every PREFIX: what the broker can filter
//  on; the rest is filtered here.
static char *
s_common_prefix (s_run_t *self)
{
    if (self->prefix_count == 0)
        return strdup ("");
    size_t length = strlen (self->prefixes[0]);
    for (int index = 1; index < self->prefix_count; index++) {
        size_t same = 0;
        while (same < length && self->prefixes[index][same] == self->prefixes[0][same])
            same++;
        length = same;
    }
    return strndup (self->prefixes[0], length);
}

//  Print the history from --from until it meets the live feed: until the
//  pages have covered every seq below the first live event kept. Returns
//  0, or -1 on an error (reported).
static int
s_history (s_run_t *self)
{
    char *prefix = s_common_prefix (self);
    cli_replay_t *replay = prefix ? cli_replay_new (self->options->broker, prefix) : NULL;
    free (prefix);
    if (!replay) {
        fprintf (stderr, "herald: cannot connect to the broker at %s\n", self->options->broker);
        return -1;
    }
    //  History has been read for every seq below covered (unknown before
    //  the first page with --from TIME)
    uint64_t covered = self->from_seq;
    bool paged = false, caught_up = false, warned = false;
    int rc = 0;
    char duration[32];
    while (!self->done && !zsys_interrupted) {
        s_hold_live (self, 0);
        uint64_t live = s_first_held (self);
        if (live && (paged || self->from_seq) && covered >= live)
            break; // history reached the live feed
        if (s_expired (self))
            break;
        if (caught_up && !live) {
            //  Up to the log's end and nothing live yet: the first live event
            //  says whether anything came in between
            s_hold_live (self, s_slice (self, S_RECV_SLICE_MS));
            continue;
        }
        if (cli_replay_request (replay, paged ? covered : self->from_seq, self->from_time_us,
                                (uint32_t) self->options->replay_page)) {
            fprintf (stderr, "herald: %s\n", cli_replay_error (replay));
            rc = -1;
            break;
        }
        int64_t quiet_since = zclock_mono ();
        uint64_t events = 0;
        cli_replay_status_t status = CLI_REPLAY_WAIT;
        while (!self->done) {
            hd_event_t *event;
            status = cli_replay_recv (replay, s_slice (self, S_RECV_SLICE_MS), &event);
            if (status == CLI_REPLAY_EVENT) {
                s_emit (self, event, true);
                hd_event_destroy (&event);
                quiet_since = zclock_mono ();
                if (++events % S_DRAIN_EVERY == 0) {
                    s_hold_live (self, 0);
                    s_flush (self);
                }
            } else if (status == CLI_REPLAY_WAIT) {
                s_hold_live (self, 0);
                if (zsys_interrupted || s_expired (self))
                    break;
                if (zclock_mono () - quiet_since >= self->options->replay_timeout) {
                    fprintf (stderr, "herald: the broker at %s sent no history for %s\n",
                             self->options->broker,
                             cli_duration_text (self->options->replay_timeout, duration,
                                                sizeof duration));
                    status = CLI_REPLAY_ERROR;
                    rc = -1;
                    break;
                }
            } else
                break;
        }
        if (status == CLI_REPLAY_ERROR && rc == 0) {
            if (!zsys_interrupted) {
                fprintf (stderr, "herald: %s\n", cli_replay_error (replay));
                rc = -1;
            }
            break;
        }
        if (status != CLI_REPLAY_END || !s_flush (self))
            break; // done, interrupted or out of time
        uint64_t next = cli_replay_next_seq (replay);
        uint64_t end = cli_replay_end_seq (replay);
        uint64_t first = cli_replay_first_seq (replay);
        if (!warned && self->from_seq && !paged && first > self->from_seq) {
            fprintf (stderr, "herald: history before seq %llu is no longer in the log\n",
                     (unsigned long long) first);
            warned = true;
        }
        if (paged && next <= covered && next < end) {
            fprintf (stderr,
                     "herald: the broker's history stopped at seq %llu before the "
                     "log's end (%llu)\n",
                     (unsigned long long) next, (unsigned long long) end);
            rc = -1;
            break;
        }
        if (next > covered || !paged)
            covered = next;
        paged = true;
        caught_up = covered >= end;
        //  Every seq below covered has been printed or did not match
        if (covered > self->next_print)
            self->next_print = covered;
    }
    cli_replay_destroy (&replay);
    return rc;
}

//  Receive and print until done; returns the exit code.
static int
s_run (s_sub_t *options, char **prefixes, int prefix_count)
{
    s_run_t self = {.options = options, .exit_code = CLI_EXIT_OK};
    bool history = options->from && *options->from;
    self.history = history;
    if (history)
        cli_parse_from (options->from, &self.from_seq, &self.from_time_us);
    self.next_print = self.from_seq;
    self.held = zlistx_new ();
    const char *broker = options->broker && *options->broker ? options->broker : NULL;
    self.subscriber = self.held ? hd_subscriber_new (options->xpub, broker) : NULL;
    if (!self.subscriber) {
        fprintf (stderr, "herald: cannot subscribe at %s\n", options->xpub);
        zlistx_destroy (&self.held);
        return CLI_EXIT_FAILURE;
    }
    zlistx_set_destructor (self.held, (zlistx_destructor_fn *) hd_event_destroy);
    char name[64];
    if (!options->name || !*options->name) {
        snprintf (name, sizeof name, "herald-sub-%d", (int) getpid ());
        options->name = name;
    }
    hd_subscriber_set_name (self.subscriber, options->name);
    self.prefixes = prefixes;
    self.prefix_count = prefix_count;
    static char *everything[] = {""};
    for (int index = 0; index < (prefix_count ? prefix_count : 1); index++) {
        const char *prefix = prefix_count ? prefixes[index] : everything[0];
        if (hd_subscriber_subscribe (self.subscriber, prefix)) {
            fprintf (stderr, "herald: cannot subscribe to '%s': %s\n", prefix,
                     hd_subscriber_error (self.subscriber));
            hd_subscriber_destroy (&self.subscriber);
            zlistx_destroy (&self.held);
            return CLI_EXIT_FAILURE;
        }
    }
    self.deadline = options->timeout > 0 ? zclock_mono () + options->timeout : 0;

    //  History first, while the live events are kept; then the kept ones
    if (history && s_history (&self))
        self.exit_code = CLI_EXIT_FAILURE;
    else {
        hd_event_t *event;
        while ((event = zlistx_first (self.held)) && !self.done && !zsys_interrupted) {
            s_emit (&self, event, false);
            zlistx_delete (self.held, zlistx_cursor (self.held));
        }
        s_flush (&self);
    }
    while (!self.done && !zsys_interrupted && self.exit_code == CLI_EXIT_OK) {
        if (s_expired (&self))
            break;
        hd_event_t *event = hd_subscriber_recv (self.subscriber, s_slice (&self, S_RECV_SLICE_MS));
        //  Print what has arrived, then flush before waiting again: no line
        //  ever sits in the buffer while we wait, and a burst costs one write.
        while (event) {
            s_emit (&self, event, false);
            hd_event_destroy (&event);
            if (self.done || ferror (stdout) || zsys_interrupted)
                break;
            event = hd_subscriber_recv (self.subscriber, 0);
        }
        if (!s_flush (&self))
            break;
    }
    if (self.exit_code == CLI_EXIT_FAILURE && options->count > 0 &&
        self.printed < (uint64_t) options->count && self.deadline &&
        zclock_mono () >= self.deadline) {
        char duration[32];
        fprintf (stderr, "herald: %llu of %lld events arrived within %s\n",
                 (unsigned long long) self.printed, (long long) options->count,
                 cli_duration_text (options->timeout, duration, sizeof duration));
    }
    if (history)
        fprintf (stderr, "received=%llu gaps=%llu replayed=%llu\n",
                 (unsigned long long) self.printed,
                 (unsigned long long) hd_subscriber_gaps (self.subscriber),
                 (unsigned long long) self.replayed);
    else
        fprintf (stderr, "received=%llu gaps=%llu\n", (unsigned long long) self.printed,
                 (unsigned long long) hd_subscriber_gaps (self.subscriber));
    zlistx_destroy (&self.held);
    hd_subscriber_destroy (&self.subscriber);
    return self.exit_code;
}

int
cli_sub (int argc, char **argv)
{
    s_sub_t self = {0};
    int exit_code = CLI_EXIT_USAGE;
    hd_options_t *options = hd_options_new ("herald sub", "[options] [PREFIX ...]", s_description);
    if (!options) {
        fprintf (stderr, "herald sub: out of memory\n");
        return CLI_EXIT_FAILURE;
    }
    hd_options_add (options, "xpub", HD_OPT_STRING, HERALD_DEFAULT_XPUB, NULL,
                    "broker fan-out (XPUB) endpoint", &self.xpub);
    hd_options_add (options, "broker", HD_OPT_STRING, HERALD_DEFAULT_BROKER, NULL,
                    "broker command endpoint, for subscriber reports and history ('' for none)",
                    &self.broker);
    hd_options_add (options, "json", HD_OPT_BOOL, "false", "", "print one JSON object per event",
                    &self.json);
    hd_options_add (options, "count", HD_OPT_INT, "0", "",
                    "exit after this many events (0: no limit)", &self.count);
    hd_options_add (options, "timeout", HD_OPT_DURATION, "0", "",
                    "stop after running this long (0: no limit); exit 1 if --count "
                    "events had not arrived by then",
                    &self.timeout);
    hd_options_add (options, "name", HD_OPT_STRING, NULL, "",
                    "subscriber name in the broker's reports (default herald-sub-PID)", &self.name);
    hd_options_add (options, "from", HD_OPT_STRING, NULL, "",
                    "print the history first: from seq SEQ, from an RFC 3339 TIME, or from "
                    "-DURATION ago (-10m)",
                    &self.from);
    hd_options_add (options, "replay-page", HD_OPT_INT, "1000", "",
                    "history events asked for at once", &self.replay_page);
    hd_options_add (options, "replay-timeout", HD_OPT_DURATION, "10s", "",
                    "give up when the broker sends no history for this long", &self.replay_timeout);
    if (hd_options_parse (options, argc, argv)) {
        fprintf (stderr, "herald sub: %s\n", hd_options_error (options));
        goto done;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        exit_code = CLI_EXIT_OK;
        goto done;
    }
    if (!self.xpub || !*self.xpub) {
        fprintf (stderr, "herald sub: --xpub must not be empty\n");
        goto done;
    }
    if (self.count < 0) {
        fprintf (stderr, "herald sub: --count must not be negative\n");
        goto done;
    }
    if (self.from && *self.from) {
        uint64_t seq, time_us;
        if (cli_parse_from (self.from, &seq, &time_us)) {
            fprintf (stderr,
                     "herald sub: invalid --from '%s': give a seq (>= 1), an RFC 3339 time "
                     "(2026-11-22T10:00:00Z) or -DURATION (-10m)\n",
                     self.from);
            goto done;
        }
        if (!self.broker || !*self.broker) {
            fprintf (stderr, "herald sub: --from needs --broker (the history comes from it)\n");
            goto done;
        }
        if (self.replay_page < 1 || self.replay_page > S_MAX_REPLAY_PAGE) {
            fprintf (stderr, "herald sub: --replay-page must be between 1 and %d\n",
                     S_MAX_REPLAY_PAGE);
            goto done;
        }
        if (self.replay_timeout < 1) {
            fprintf (stderr, "herald sub: --replay-timeout must be at least 1ms\n");
            goto done;
        }
    }
    exit_code = s_run (&self, hd_options_argv (options), hd_options_argc (options));
done:
    hd_options_destroy (&options);
    return exit_code;
}
