/*  sub — herald sub [PREFIX ...]: print live events from the fan-out. */
#include "cli.h"
#include "herald.h"
#include "options.h"

#include <czmq.h>
#include <errno.h>
#include <unistd.h>

#define S_RECV_SLICE_MS 200 // how often the loop looks at signals and the clock
#define S_HEX_MAX       64  // binary payloads up to this size are shown in hex

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
    "On exit 'received=N gaps=G' goes to stderr. Exit status: 0 after --count\n"
    "events, on SIGINT/SIGTERM, or when --timeout ends a run without --count;\n"
    "1 when --timeout ends a run before --count events arrived, or on an error;\n"
    "2 on a usage error.";

typedef struct {
    char *xpub;
    char *broker;
    char *name;
    int64_t count;
    int64_t timeout;
    bool json;
} s_sub_t;

//  True when payload is text we can print on one line as it is: UTF-8,
//  no control characters other than tab, except one final newline.
static bool
s_printable (const char *data, size_t size)
{
    if (size > 0 && data[size - 1] == '\n')
        size--;
    if (size > 0 && data[size - 1] == '\r')
        size--;
    for (size_t index = 0; index < size; index++) {
        unsigned char byte = (unsigned char) data[index];
        if ((byte < 0x20 && byte != '\t') || byte == 0x7F)
            return false;
    }
    return cli_utf8_valid (data, size);
}

static void
s_print_line (const hd_event_t *event)
{
    const char *payload = hd_event_payload (event);
    size_t size = hd_event_payload_size (event);
    printf ("seq=%llu id=%s type=%s", (unsigned long long) hd_event_seq (event),
            hd_event_id (event), hd_event_type (event));
    if (size == 0 || !payload) {
        putchar ('\n');
        return;
    }
    putchar (' ');
    if (s_printable (payload, size)) {
        while (size > 0 && (payload[size - 1] == '\n' || payload[size - 1] == '\r'))
            size--;
        fwrite (payload, 1, size, stdout);
    } else if (size <= S_HEX_MAX) {
        fputs ("hex:", stdout);
        for (size_t index = 0; index < size; index++)
            printf ("%02x", (unsigned char) payload[index]);
    } else
        printf ("<%zu bytes binary>", size);
    putchar ('\n');
}

static void
s_json_field (const char *name, const char *value)
{
    printf (",\"%s\":", name);
    cli_json_cstring (stdout, value);
}

static void
s_print_json (const hd_event_t *event)
{
    printf ("{\"seq\":%llu", (unsigned long long) hd_event_seq (event));
    s_json_field ("id", hd_event_id (event));
    s_json_field ("source", hd_event_source (event));
    s_json_field ("type", hd_event_type (event));
    s_json_field ("subject", hd_event_subject (event));
    s_json_field ("key", hd_event_partition_key (event));
    s_json_field ("correlation_id", hd_event_correlation_id (event));
    s_json_field ("causation_id", hd_event_causation_id (event));
    s_json_field ("content_type", hd_event_content_type (event));
    s_json_field ("schema_version", hd_event_schema_version (event));
    s_json_field ("traceparent", hd_event_traceparent (event));
    printf (",\"time_us\":%llu,\"recorded_time_us\":%llu",
            (unsigned long long) hd_event_time_us (event),
            (unsigned long long) hd_event_recorded_time_us (event));
    printf (",\"attributes\":{");
    size_t attributes = hd_event_attribute_count (event);
    for (size_t index = 0; index < attributes; index++) {
        if (index > 0)
            putchar (',');
        cli_json_cstring (stdout, hd_event_attribute_key (event, index));
        putchar (':');
        cli_json_cstring (stdout, hd_event_attribute_value (event, index));
    }
    putchar ('}');
    const char *payload = hd_event_payload (event);
    size_t size = hd_event_payload_size (event);
    if (!payload)
        size = 0;
    if (cli_utf8_valid (payload, size)) {
        printf (",\"payload\":");
        cli_json_string (stdout, payload, size);
    } else {
        printf (",\"payload_b64\":\"");
        cli_base64 (stdout, payload, size);
        putchar ('"');
    }
    printf ("}\n");
}

//  Receive and print until done; returns the exit code.
static int
s_run (s_sub_t *self, char **prefixes, int prefix_count)
{
    const char *broker = self->broker && *self->broker ? self->broker : NULL;
    hd_subscriber_t *subscriber = hd_subscriber_new (self->xpub, broker);
    if (!subscriber) {
        fprintf (stderr, "herald: cannot subscribe at %s\n", self->xpub);
        return CLI_EXIT_FAILURE;
    }
    char name[64];
    if (!self->name || !*self->name) {
        snprintf (name, sizeof name, "herald-sub-%d", (int) getpid ());
        self->name = name;
    }
    hd_subscriber_set_name (subscriber, self->name);
    static char *everything[] = {""};
    if (prefix_count == 0) {
        prefixes = everything;
        prefix_count = 1;
    }
    for (int index = 0; index < prefix_count; index++)
        if (hd_subscriber_subscribe (subscriber, prefixes[index])) {
            fprintf (stderr, "herald: cannot subscribe to '%s': %s\n", prefixes[index],
                     hd_subscriber_error (subscriber));
            hd_subscriber_destroy (&subscriber);
            return CLI_EXIT_FAILURE;
        }

    int exit_code = CLI_EXIT_OK;
    uint64_t received = 0;
    int64_t deadline = self->timeout > 0 ? zclock_mono () + self->timeout : 0;
    while (!zsys_interrupted) {
        int64_t wait = S_RECV_SLICE_MS;
        if (deadline) {
            int64_t remaining = deadline - zclock_mono ();
            if (remaining <= 0) {
                if (self->count > 0)
                    exit_code = CLI_EXIT_FAILURE;
                break;
            }
            if (remaining < wait)
                wait = remaining;
        }
        hd_event_t *event = hd_subscriber_recv (subscriber, (int) wait);
        //  Print what has arrived, then flush before waiting again: no line
        //  ever sits in the buffer while we wait, and a burst costs one write.
        bool done = false;
        while (event) {
            received++;
            if (self->json)
                s_print_json (event);
            else
                s_print_line (event);
            hd_event_destroy (&event);
            done = self->count > 0 && received >= (uint64_t) self->count;
            if (done || ferror (stdout) || zsys_interrupted)
                break;
            event = hd_subscriber_recv (subscriber, 0);
        }
        if (fflush (stdout) != 0 || ferror (stdout)) {
            //  The reader went away (herald sub | head): a normal end.
            if (errno != EPIPE) {
                fprintf (stderr, "herald: cannot write output: %s\n", strerror (errno));
                exit_code = CLI_EXIT_FAILURE;
            }
            break;
        }
        if (done)
            break;
    }
    if (exit_code == CLI_EXIT_FAILURE && self->count > 0 && received < (uint64_t) self->count) {
        char duration[32];
        fprintf (stderr, "herald: %llu of %lld events arrived within %s\n",
                 (unsigned long long) received, (long long) self->count,
                 cli_duration_text (self->timeout, duration, sizeof duration));
    }
    fprintf (stderr, "received=%llu gaps=%llu\n", (unsigned long long) received,
             (unsigned long long) hd_subscriber_gaps (subscriber));
    hd_subscriber_destroy (&subscriber);
    return exit_code;
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
                    "broker command endpoint, for subscriber reports ('' for none)", &self.broker);
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
    exit_code = s_run (&self, hd_options_argv (options), hd_options_argc (options));
done:
    hd_options_destroy (&options);
    return exit_code;
}
