/*  pub — herald pub TOPIC [DATA|-]: publish events and wait for the
    broker to confirm them.
*/
#include "cli.h"
#include "codec.h"
#include "herald.h"
#include "options.h"

#include <czmq.h>
#include <errno.h>
#include <unistd.h>

#define S_MAX_STDIN      (256 * 1024 * 1024) // payload read from stdin
#define S_REJECTS_SHOWN  20                  // rejections printed one by one
#define S_FLUSH_SLICE_MS 200                 // confirm wait granularity

static const char *s_description =
    "Publish COUNT events of type TOPIC and wait until the broker confirms each one.\n"
    "\n"
    "The payload is DATA. With '-', or without DATA when standard input is not a\n"
    "terminal, it is read from standard input (all of it, byte for byte); without\n"
    "DATA on a terminal it is empty. Every event of one run gets the same payload.\n"
    "\n"
    "Event ids: with --id ID and --count 1 (the default) the id is exactly ID; with\n"
    "--count N > 1 the ids are ID-0, ID-1 ... ID-(N-1). Without --id every event gets\n"
    "a random id. The broker deduplicates on (source, id) within its window, so\n"
    "running the same command with --id twice publishes nothing new: the second run\n"
    "reports duplicates=N. Unconfirmed events are re-sent with the same id.\n"
    "\n"
    "Output: one line on stdout, 'confirmed=N duplicates=D rejected=R' (confirmed\n"
    "includes duplicates), with ' unconfirmed=U' appended when some events got no\n"
    "answer. Unless --quiet, stderr gets one line per confirmed event; rejections\n"
    "are always reported on stderr.\n"
    "\n"
    "Exit status: 0 when every event was confirmed; 1 when an event was rejected\n"
    "for good, or when events stayed unconfirmed for --timeout without any answer\n"
    "from the broker; 2 on a usage error.";

typedef struct {
    char *key;
    char *value;
} s_attribute_t;

typedef struct {
    //  Options (strings owned by the options object)
    char *broker;
    char *source;
    char *id;
    char *key;
    char *subject;
    char *content_type;
    char *correlation_id;
    char *causation_id;
    char *attr; // last --attr from the config file, if any
    int64_t count;
    int64_t rate;
    int64_t window;
    int64_t timeout;
    bool quiet;
    bool no_inherit;
    //  Arguments
    const char *topic;
    char *payload;
    size_t payload_size;
    const char **attr_texts; // "K=V" texts from the command line and config file
    size_t attr_text_count;
    s_attribute_t *attributes;
    size_t attribute_count;
    //  Results
    uint64_t rejects_shown;
} s_pub_t;

//  --attr may be repeated; the options table keeps one value per option, so
//  command-line --attr flags are taken out of argv before it is parsed.
//  Options that take a value are skipped with their value, so that a value
//  which happens to be "--attr" is left alone. Returns 0 or -1 (message printed).
static int
s_attributes_extract (s_pub_t *self, int argc, char **argv, int *argc_out, char **argv_out)
{
    int out = 0;
    argv_out[out++] = argv[0];
    bool options_ended = false;
    for (int index = 1; index < argc; index++) {
        const char *arg = argv[index];
        const char *value = NULL;
        if (options_ended || arg[0] != '-' || arg[1] != '-') {
            argv_out[out++] = argv[index];
            continue;
        }
        if (strcmp (arg, "--") == 0)
            options_ended = true;
        else if (strcmp (arg, "--attr") == 0) {
            if (index + 1 >= argc) {
                fprintf (stderr, "herald pub: option --attr needs a value\n");
                return -1;
            }
            value = argv[++index];
        } else if (strncmp (arg, "--attr=", 7) == 0)
            value = arg + 7;
        else if (!strchr (arg, '=') && strcmp (arg, "--quiet") != 0 &&
                 strcmp (arg, "--help") != 0 && index + 1 < argc) {
            argv_out[out++] = argv[index++]; // option and its value
        }
        if (value)
            self->attr_texts[self->attr_text_count++] = value;
        else
            argv_out[out++] = argv[index];
    }
    argv_out[out] = NULL;
    *argc_out = out;
    return 0;
}

//  Split the collected "K=V" texts into key and value (copies).
//  Run by herald-worker, we are inside a handler: the event being handled
//  (HERALD_ID, HERALD_CORRELATION_ID) caused what we publish, so our events
//  carry it as causation id and share its correlation id, as events published
//  from a libherald handler do with hd_event_inherit.
static void
s_inherit_from_handler (s_pub_t *self)
{
    const char *parent_id = getenv ("HERALD_ID");
    if (self->no_inherit || !parent_id || !*parent_id || !getenv ("HERALD_POOL"))
        return;
    const char *parent_correlation = getenv ("HERALD_CORRELATION_ID");
    if (!self->causation_id || !*self->causation_id)
        self->causation_id = (char *) parent_id;
    if (!self->correlation_id || !*self->correlation_id)
        self->correlation_id =
            (char *) (parent_correlation && *parent_correlation ? parent_correlation : parent_id);
}

static int
s_attributes_split (s_pub_t *self)
{
    for (size_t index = 0; index < self->attr_text_count; index++) {
        const char *text = self->attr_texts[index];
        const char *equals = strchr (text, '=');
        if (!equals || equals == text) {
            fprintf (stderr, "herald pub: --attr needs KEY=VALUE, got '%s'\n", text);
            return -1;
        }
        s_attribute_t *attribute = &self->attributes[self->attribute_count++];
        attribute->key = strndup (text, (size_t) (equals - text));
        attribute->value = strdup (equals + 1);
        if (!attribute->key || !attribute->value) {
            fprintf (stderr, "herald pub: out of memory\n");
            return -1;
        }
    }
    return 0;
}

static void
s_attributes_free (s_pub_t *self)
{
    for (size_t index = 0; index < self->attribute_count; index++) {
        free (self->attributes[index].key);
        free (self->attributes[index].value);
    }
    free (self->attributes);
    self->attributes = NULL;
    self->attribute_count = 0;
    free (self->attr_texts);
    self->attr_texts = NULL;
    self->attr_text_count = 0;
}

//  Read all of standard input into self->payload. Returns 0 or -1.
static int
s_read_stdin (s_pub_t *self)
{
    size_t capacity = 64 * 1024;
    size_t size = 0;
    char *data = malloc (capacity);
    while (data) {
        if (size == capacity) {
            if (capacity >= S_MAX_STDIN) {
                fprintf (stderr, "herald pub: payload on stdin is larger than %d MiB\n",
                         S_MAX_STDIN / (1024 * 1024));
                free (data);
                return -1;
            }
            capacity *= 2;
            char *grown = realloc (data, capacity);
            if (!grown) {
                free (data);
                data = NULL;
                break;
            }
            data = grown;
        }
        ssize_t bytes = read (STDIN_FILENO, data + size, capacity - size);
        if (bytes == 0)
            break;
        if (bytes < 0) {
            if (errno == EINTR && !zsys_interrupted)
                continue;
            fprintf (stderr, "herald pub: cannot read stdin: %s\n",
                     zsys_interrupted ? "interrupted" : strerror (errno));
            free (data);
            return -1;
        }
        size += (size_t) bytes;
    }
    if (!data) {
        fprintf (stderr, "herald pub: out of memory reading stdin\n");
        return -1;
    }
    self->payload = data;
    self->payload_size = size;
    return 0;
}

static uint64_t
s_now_us (void)
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    return (uint64_t) now.tv_sec * 1000000 + (uint64_t) now.tv_nsec / 1000;
}

//  The event with the given index of this run, or NULL on no memory.
static hd_event_t *
s_event_new (s_pub_t *self, int64_t index)
{
    hd_event_t *event = hd_event_new (self->topic);
    if (!event)
        return NULL;
    int rc = 0;
    if (self->id && self->count == 1)
        rc |= hd_event_set_id (event, self->id);
    else if (self->id) {
        char id[1024];
        snprintf (id, sizeof id, "%s-%lld", self->id, (long long) index);
        rc |= hd_event_set_id (event, id);
    }
    rc |= hd_event_set_source (event, self->source);
    if (self->subject && *self->subject)
        rc |= hd_event_set_subject (event, self->subject);
    if (self->key && *self->key)
        rc |= hd_event_set_partition_key (event, self->key);
    if (self->content_type && *self->content_type)
        rc |= hd_event_set_content_type (event, self->content_type);
    if (self->correlation_id && *self->correlation_id)
        rc |= hd_event_set_correlation_id (event, self->correlation_id);
    if (self->causation_id && *self->causation_id)
        rc |= hd_event_set_causation_id (event, self->causation_id);
    for (size_t attribute = 0; attribute < self->attribute_count; attribute++)
        rc |= hd_event_set_attribute (event, self->attributes[attribute].key,
                                      self->attributes[attribute].value);
    hd_event_set_time_us (event, s_now_us ());
    rc |= hd_event_set_payload (event, self->payload, self->payload_size);
    if (rc)
        hd_event_destroy (&event);
    return event;
}

static void
s_on_confirm (const hd_event_t *event, const hd_confirm_t *confirm, void *arg)
{
    s_pub_t *self = arg;
    if (!confirm->confirmed) {
        if (self->rejects_shown < S_REJECTS_SHOWN)
            fprintf (stderr, "herald: event %s rejected: %s%s%s\n", hd_event_id (event),
                     hd_error_name (confirm->code), *confirm->reason ? ": " : "", confirm->reason);
        else if (self->rejects_shown == S_REJECTS_SHOWN)
            fprintf (stderr, "herald: (further rejections not shown)\n");
        self->rejects_shown++;
    } else if (!self->quiet)
        fprintf (stderr, "%s id=%s seq=%llu\n", confirm->duplicate ? "duplicate" : "confirmed",
                 hd_event_id (event), (unsigned long long) confirm->seq);
}

static uint64_t
s_settled (hd_publisher_t *publisher)
{
    return hd_publisher_confirmed (publisher) + hd_publisher_rejected (publisher);
}

//  Wait for every outstanding confirm, giving up after timeout_ms (0: never)
//  without any confirm or rejection arriving. Returns 0, or -1 on timeout or
//  interrupt.
static int
s_flush (hd_publisher_t *publisher, int64_t timeout_ms)
{
    uint64_t settled = s_settled (publisher);
    int64_t last_progress = zclock_mono ();
    while (hd_publisher_unconfirmed (publisher) > 0) {
        if (zsys_interrupted)
            return -1;
        int64_t slice = S_FLUSH_SLICE_MS;
        if (timeout_ms > 0) {
            int64_t remaining = last_progress + timeout_ms - zclock_mono ();
            if (remaining <= 0)
                return -1;
            if (remaining < slice)
                slice = remaining;
        }
        hd_publisher_flush (publisher, (int) slice);
        if (s_settled (publisher) != settled) {
            settled = s_settled (publisher);
            last_progress = zclock_mono ();
        }
    }
    return 0;
}

//  Wait until event index is due under --rate, processing confirms.
static void
s_pace (s_pub_t *self, hd_publisher_t *publisher, int64_t start_us, int64_t index)
{
    if (self->rate <= 0)
        return;
    int64_t due = start_us + (int64_t) ((double) index * 1e6 / (double) self->rate);
    while (!zsys_interrupted) {
        int64_t now = zclock_usecs ();
        if (now >= due)
            break;
        hd_publisher_poll (publisher);
        int64_t wait = due - now;
        usleep ((useconds_t) (wait < 10000 ? wait : 10000));
    }
}

//  Publish and wait; returns the exit code.
static int
s_run (s_pub_t *self)
{
    char duration[32];
    cli_duration_text (self->timeout, duration, sizeof duration);
    hd_publisher_t *publisher = hd_publisher_new (self->broker, self->source);
    if (!publisher) {
        fprintf (stderr, "herald: cannot connect to broker at %s\n", self->broker);
        return CLI_EXIT_FAILURE;
    }
    hd_publisher_set_window (publisher, (uint32_t) self->window);
    hd_publisher_set_confirm_fn (publisher, s_on_confirm, self);

    int64_t timeout_ms = self->timeout > 0 ? self->timeout : -1;
    int64_t start_us = zclock_usecs ();
    int64_t sent = 0;
    bool failed = false;
    while (sent < self->count && !zsys_interrupted) {
        s_pace (self, publisher, start_us, sent);
        if (zsys_interrupted)
            break;
        hd_event_t *event = s_event_new (self, sent);
        if (!event) {
            fprintf (stderr, "herald: out of memory\n");
            failed = true;
            break;
        }
        int rc = hd_publisher_publish (publisher, &event, (int) timeout_ms);
        hd_event_destroy (&event); // still ours if it was not taken
        if (rc) {
            const char *error = hd_publisher_error (publisher);
            bool window_timeout = strncmp (error, "timed out", 9) == 0;
            if (zsys_interrupted)
                break; // reported below
            if (window_timeout)
                fprintf (stderr,
                         "herald: could not publish event %lld of %lld: broker at %s confirmed "
                         "nothing within %s (%s)\n",
                         (long long) sent + 1, (long long) self->count, self->broker, duration,
                         error);
            else
                fprintf (stderr, "herald: could not publish event %lld of %lld: %s\n",
                         (long long) sent + 1, (long long) self->count, error);
            failed = true;
            break;
        }
        sent++;
    }
    bool timed_out = false;
    if (!failed && !zsys_interrupted)
        timed_out = s_flush (publisher, self->timeout) != 0 && !zsys_interrupted;
    else
        hd_publisher_poll (publisher); // count what has arrived

    uint64_t confirmed = hd_publisher_confirmed (publisher);
    uint64_t duplicates = hd_publisher_duplicates (publisher);
    uint64_t rejected = hd_publisher_rejected (publisher);
    uint64_t resent = hd_publisher_resent (publisher);
    uint64_t settled = confirmed + rejected;
    uint64_t unconfirmed = settled < (uint64_t) self->count ? (uint64_t) self->count - settled : 0;
    printf ("confirmed=%llu duplicates=%llu rejected=%llu", (unsigned long long) confirmed,
            (unsigned long long) duplicates, (unsigned long long) rejected);
    if (unconfirmed)
        printf (" unconfirmed=%llu", (unsigned long long) unconfirmed);
    printf ("\n");
    fflush (stdout);
    if (resent && !self->quiet)
        fprintf (stderr, "herald: %llu publishes were re-sent\n", (unsigned long long) resent);
    if (rejected)
        fprintf (stderr, "herald: %llu of %lld events rejected\n", (unsigned long long) rejected,
                 (long long) self->count);
    if (zsys_interrupted && unconfirmed)
        fprintf (stderr, "herald: interrupted with %llu events unconfirmed\n",
                 (unsigned long long) unconfirmed);
    else if (timed_out)
        fprintf (stderr,
                 "herald: %llu of %lld events unconfirmed: broker at %s confirmed nothing "
                 "within %s (unreachable, or a pool's backlog is full)\n",
                 (unsigned long long) unconfirmed, (long long) self->count, self->broker, duration);
    hd_publisher_destroy (&publisher);
    return rejected || unconfirmed ? CLI_EXIT_FAILURE : CLI_EXIT_OK;
}

int
cli_pub (int argc, char **argv)
{
    s_pub_t self = {0};
    int exit_code = CLI_EXIT_USAGE;
    char **args = calloc ((size_t) argc + 1, sizeof (char *));
    self.attr_texts = calloc ((size_t) argc + 2, sizeof (char *));
    self.attributes = calloc ((size_t) argc + 2, sizeof (s_attribute_t));
    hd_options_t *options =
        hd_options_new ("herald pub", "[options] TOPIC [DATA|-]", s_description);
    if (!args || !self.attr_texts || !self.attributes || !options) {
        fprintf (stderr, "herald pub: out of memory\n");
        goto done;
    }
    hd_options_add (options, "broker", HD_OPT_STRING, HERALD_DEFAULT_BROKER, NULL,
                    "broker command endpoint", &self.broker);
    //  No HERALD_SOURCE: herald-worker sets it to the source of the event being
    //  handled, and an event published from a handler is not from that source.
    hd_options_add (options, "source", HD_OPT_STRING, "herald-cli", "",
                    "event source; with --id it makes the dedup key", &self.source);
    hd_options_add (options, "id", HD_OPT_STRING, NULL, "",
                    "event id; with --count N > 1 the ids are ID-0 ... ID-(N-1)", &self.id);
    hd_options_add (options, "key", HD_OPT_STRING, NULL, "",
                    "partition key (key-ordered pools keep one key in order)", &self.key);
    hd_options_add (options, "subject", HD_OPT_STRING, NULL, "", "event subject", &self.subject);
    hd_options_add (options, "attr", HD_OPT_STRING, NULL, "",
                    "set attribute KEY=VALUE; repeat for more", &self.attr);
    hd_options_add (options, "content-type", HD_OPT_STRING, NULL, "",
                    "payload content type, e.g. application/json", &self.content_type);
    hd_options_add (options, "correlation-id", HD_OPT_STRING, NULL, "", "correlation id",
                    &self.correlation_id);
    hd_options_add (options, "causation-id", HD_OPT_STRING, NULL, "",
                    "causation id (the id of the event that caused this one)", &self.causation_id);
    hd_options_add (options, "count", HD_OPT_INT, "1", "", "number of events to publish",
                    &self.count);
    hd_options_add (options, "rate", HD_OPT_INT, "0", "",
                    "events per second (0: as fast as the window allows)", &self.rate);
    hd_options_add (options, "window", HD_OPT_INT, "1000", "",
                    "events sent but not yet confirmed, at most", &self.window);
    hd_options_add (options, "timeout", HD_OPT_DURATION, "30s", "",
                    "give up when the broker has not answered for this long while events "
                    "are unconfirmed (0: never)",
                    &self.timeout);
    hd_options_add (options, "quiet", HD_OPT_BOOL, "false", "",
                    "no per-event lines on stderr (rejections are still shown)", &self.quiet);
    hd_options_add (options, "no-inherit", HD_OPT_BOOL, "false", "",
                    "inside a herald-worker handler, do not take the handled event's ids as "
                    "causation and correlation ids",
                    &self.no_inherit);

    int args_count = 0;
    if (s_attributes_extract (&self, argc, argv, &args_count, args))
        goto done;
    if (hd_options_parse (options, args_count, args)) {
        fprintf (stderr, "herald pub: %s\n", hd_options_error (options));
        goto done;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        exit_code = CLI_EXIT_OK;
        goto done;
    }
    //  An attr from the config file comes first; flags may override its key.
    if (self.attr) {
        memmove (self.attr_texts + 1, self.attr_texts, self.attr_text_count * sizeof (char *));
        self.attr_texts[0] = self.attr;
        self.attr_text_count++;
    }
    if (s_attributes_split (&self))
        goto done;
    s_inherit_from_handler (&self);

    int positional = hd_options_argc (options);
    char **positionals = hd_options_argv (options);
    if (positional < 1) {
        fprintf (stderr, "herald pub: missing TOPIC (see herald pub --help)\n");
        goto done;
    }
    if (positional > 2) {
        fprintf (stderr, "herald pub: unexpected argument '%s' (see herald pub --help)\n",
                 positionals[2]);
        goto done;
    }
    self.topic = positionals[0];
    if (!*self.topic) {
        fprintf (stderr, "herald pub: TOPIC must not be empty\n");
        goto done;
    }
    for (const unsigned char *c = (const unsigned char *) self.topic; *c; c++)
        if (*c <= 0x20 || *c == 0x7F) {
            fprintf (stderr, "herald pub: TOPIC must not contain spaces or control characters\n");
            goto done;
        }
    if (!self.broker || !*self.broker) {
        fprintf (stderr, "herald pub: --broker must not be empty\n");
        goto done;
    }
    if (!self.source || !*self.source) {
        fprintf (stderr, "herald pub: --source must not be empty\n");
        goto done;
    }
    if (self.id && !*self.id)
        self.id = NULL; // --id '' means a random id
    if (self.count < 1) {
        fprintf (stderr, "herald pub: --count must be at least 1\n");
        goto done;
    }
    if (self.rate < 0) {
        fprintf (stderr, "herald pub: --rate must not be negative\n");
        goto done;
    }
    if (self.window < 1 || self.window > UINT32_MAX) {
        fprintf (stderr, "herald pub: --window must be at least 1\n");
        goto done;
    }
    if (self.timeout > INT32_MAX) {
        fprintf (stderr, "herald pub: --timeout is too long\n");
        goto done;
    }

    exit_code = CLI_EXIT_FAILURE;
    if (positional == 2 && strcmp (positionals[1], "-") != 0) {
        self.payload = strdup (positionals[1]);
        self.payload_size = strlen (positionals[1]);
        if (!self.payload)
            goto done;
    } else if (positional == 2 || !isatty (STDIN_FILENO)) {
        if (s_read_stdin (&self))
            goto done;
    }
    exit_code = s_run (&self);

done:
    s_attributes_free (&self);
    free (self.payload);
    free (args);
    hd_options_destroy (&options);
    return exit_code;
}
