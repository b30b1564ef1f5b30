/*  dlq — herald dlq ls|show|replay|purge POOL: the worker pools' dead-letter
    queues (docs/PROTOCOL.md section 8).
*/
#include "admin.h"
#include "cli.h"
#include "herald.h"
#include "options.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>

#define S_DEFAULT_LIMIT 1000  // the broker's page when --limit is 0
#define S_MAX_LIMIT     10000 // the broker never sends more at once
#define S_HEX_LINE      16    // bytes per line of a binary payload's dump

static const char *s_usage_text =
    "Usage: herald dlq ls|show|replay|purge POOL [options] [arguments]\n"
    "\n"
    "Inspect and act on a worker pool's dead-letter queue: the events its workers\n"
    "terminated (TERM) or that failed max_deliver attempts.\n"
    "\n"
    "  ls POOL [--json] [--from SEQ] [--limit N]   list entries, by seq\n"
    "  show POOL SEQ [--json]                      one entry with its event and payload\n"
    "  replay POOL (SEQ... | --from SEQ [--to SEQ] | --all)\n"
    "                                              put entries back into the pool\n"
    "  purge POOL (SEQ... | --from SEQ [--to SEQ] | --all)\n"
    "                                              delete entries for good\n"
    "\n"
    "Every command takes --broker EP [env HERALD_BROKER], --timeout DURATION and\n"
    "--help. Exit status: 0 success; 1 the broker refused (no such pool or entry)\n"
    "or did not answer; 2 usage error.\n";

typedef enum { S_LS, S_SHOW, S_REPLAY, S_PURGE } s_action_t;

typedef struct {
    const char *name; // "ls", for messages: "herald dlq ls: ..."
    s_action_t action;
    char *broker;
    int64_t timeout;
    bool json;
    int64_t from;
    int64_t to;
    int64_t limit;
    bool all;
} s_dlq_t;

//  Print a string for a human: control characters as \xNN, so one value
//  stays on one line.
static void
s_print_text (const char *text)
{
    for (const unsigned char *c = (const unsigned char *) (text ? text : ""); *c; c++)
        if (*c < 0x20 || *c == 0x7F)
            printf ("\\x%02x", *c);
        else
            putchar (*c);
}

//  Same, into a buffer (for table cells); returns buffer.
static char *
s_cell_text (const char *text, char *buffer, size_t size)
{
    size_t used = 0;
    for (const unsigned char *c = (const unsigned char *) (text ? text : ""); *c; c++) {
        if (used + 5 >= size)
            break;
        if (*c < 0x20 || *c == 0x7F)
            used += (size_t) snprintf (buffer + used, size - used, "\\x%02x", *c);
        else
            buffer[used++] = (char) *c;
    }
    buffer[used] = 0;
    return buffer;
}

static void
s_report_failure (const s_dlq_t *self, const hd_admin_error_t *error)
{
    char duration[32];
    if (error->failure == HD_ADMIN_TIMEOUT)
        fprintf (stderr, "herald dlq %s: broker at %s did not answer within %s\n", self->name,
                 self->broker, cli_duration_text (self->timeout, duration, sizeof duration));
    else if (error->failure == HD_ADMIN_INTERRUPTED)
        fprintf (stderr, "herald: interrupted\n");
    else
        fprintf (stderr, "herald dlq %s: %s\n", self->name, error->text);
}

static void
s_entry_json (const Herald__DlqEntry *entry)
{
    printf ("{\"seq\":%" PRIu64 ",\"id\":", (uint64_t) entry->seq);
    cli_json_cstring (stdout, entry->id);
    printf (",\"type\":");
    cli_json_cstring (stdout, entry->type);
    printf (",\"reason\":\"%s\",\"attempts\":%" PRIu32 ",\"error\":",
            hd_admin_dlq_reason_name (entry->reason), (uint32_t) entry->attempts);
    cli_json_cstring (stdout, entry->error);
    char time_text[48];
    printf (",\"time_us\":%" PRIu64 ",\"time\":\"%s\"", (uint64_t) entry->time_us,
            cli_time_text (entry->time_us, time_text, sizeof time_text));
}

#define S_COLUMNS 7
#define S_CELL    512

static const char *s_headers[S_COLUMNS] = {"SEQ",      "ID",   "TYPE", "REASON",
                                           "ATTEMPTS", "TIME", "ERROR"};

static void
s_entry_cells (const Herald__DlqEntry *entry, char cell[S_COLUMNS][S_CELL])
{
    snprintf (cell[0], S_CELL, "%" PRIu64, (uint64_t) entry->seq);
    s_cell_text (entry->id, cell[1], S_CELL);
    s_cell_text (entry->type, cell[2], S_CELL);
    snprintf (cell[3], S_CELL, "%s", hd_admin_dlq_reason_name (entry->reason));
    snprintf (cell[4], S_CELL, "%" PRIu32, (uint32_t) entry->attempts);
    cli_time_text (entry->time_us, cell[5], S_CELL);
    s_cell_text (entry->error && *entry->error ? entry->error : "-", cell[6], S_CELL);
}

static int
s_ls (s_dlq_t *self, const char *pool)
{
    hd_admin_error_t error;
    Herald__DlqList *list = hd_admin_dlq_list (self->broker, pool, (uint64_t) self->from,
                                               (uint32_t) self->limit, (int) self->timeout, &error);
    if (!list) {
        s_report_failure (self, &error);
        return CLI_EXIT_FAILURE;
    }
    if (self->json) {
        putchar ('[');
        for (size_t index = 0; index < list->n_entries; index++) {
            if (index)
                putchar (',');
            s_entry_json (list->entries[index]);
            putchar ('}');
        }
        printf ("]\n");
    } else if (list->n_entries == 0)
        printf ("no entries%s in the DLQ of pool '%s' (%" PRIu64 " in all)\n",
                self->from > 1 ? " from that seq on" : "", pool, (uint64_t) list->total);
    else {
        static char cell[S_COLUMNS][S_CELL];
        size_t width[S_COLUMNS];
        for (int column = 0; column < S_COLUMNS; column++)
            width[column] = strlen (s_headers[column]);
        for (size_t index = 0; index < list->n_entries; index++) {
            s_entry_cells (list->entries[index], cell);
            for (int column = 0; column < S_COLUMNS; column++)
                if (strlen (cell[column]) > width[column])
                    width[column] = strlen (cell[column]);
        }
        //  Numbers right-aligned; the error, last, is not padded
        for (int column = 0; column < S_COLUMNS; column++) {
            bool right = column == 0 || column == 4;
            if (column == S_COLUMNS - 1)
                printf ("  %s", s_headers[column]);
            else
                printf ("%s%*s", column ? "  " : "",
                        right ? (int) width[column] : -(int) width[column], s_headers[column]);
        }
        putchar ('\n');
        for (size_t index = 0; index < list->n_entries; index++) {
            s_entry_cells (list->entries[index], cell);
            for (int column = 0; column < S_COLUMNS; column++) {
                bool right = column == 0 || column == 4;
                if (column == S_COLUMNS - 1)
                    printf ("  %s", cell[column]);
                else
                    printf ("%s%*s", column ? "  " : "",
                            right ? (int) width[column] : -(int) width[column], cell[column]);
            }
            putchar ('\n');
        }
        int64_t page = self->limit ? self->limit : S_DEFAULT_LIMIT;
        if (page > S_MAX_LIMIT)
            page = S_MAX_LIMIT;
        printf ("\n%zu shown, %" PRIu64 " in the DLQ of pool '%s'", list->n_entries,
                (uint64_t) list->total, pool);
        if ((int64_t) list->n_entries >= page)
            printf ("; more: --from %" PRIu64,
                    (uint64_t) list->entries[list->n_entries - 1]->seq + 1);
        putchar ('\n');
    }
    herald__dlq_list__free_unpacked (list, NULL);
    return CLI_EXIT_OK;
}

//  A binary payload as lines of offset, hex and ASCII.
static void
s_hex_dump (const unsigned char *data, size_t size)
{
    for (size_t line = 0; line < size; line += S_HEX_LINE) {
        printf ("  %08zx ", line);
        for (size_t index = line; index < line + S_HEX_LINE; index++)
            if (index < size)
                printf (" %02x", data[index]);
            else
                printf ("   ");
        printf ("  ");
        for (size_t index = line; index < line + S_HEX_LINE && index < size; index++)
            putchar (data[index] >= 0x20 && data[index] < 0x7F ? data[index] : '.');
        putchar ('\n');
    }
}

static void
s_field (const char *name, const char *value, bool always)
{
    if (!always && (!value || !*value))
        return;
    printf ("  %-16s", name);
    s_print_text (value && *value ? value : "-");
    putchar ('\n');
}

static void
s_show_text (const Herald__DlqEntry *entry, const hd_event_t *event)
{
    char text[64];
    printf ("DLQ entry\n");
    printf ("  %-16s%" PRIu64 "\n", "seq", (uint64_t) entry->seq);
    printf ("  %-16s%s\n", "reason", hd_admin_dlq_reason_name (entry->reason));
    printf ("  %-16s%" PRIu32 "\n", "attempts", (uint32_t) entry->attempts);
    s_field ("error", entry->error, true);
    printf ("  %-16s%s\n", "dead since", cli_time_text (entry->time_us, text, sizeof text));
    printf ("Event\n");
    s_field ("id", hd_event_id (event), true);
    s_field ("source", hd_event_source (event), true);
    s_field ("type", hd_event_type (event), true);
    s_field ("subject", hd_event_subject (event), false);
    s_field ("key", hd_event_partition_key (event), false);
    s_field ("correlation_id", hd_event_correlation_id (event), false);
    s_field ("causation_id", hd_event_causation_id (event), false);
    s_field ("content_type", hd_event_content_type (event), false);
    s_field ("schema_version", hd_event_schema_version (event), false);
    s_field ("traceparent", hd_event_traceparent (event), false);
    if (hd_event_time_us (event))
        printf ("  %-16s%s\n", "time", cli_time_text (hd_event_time_us (event), text, sizeof text));
    printf ("  %-16s%s\n", "recorded",
            cli_time_text (hd_event_recorded_time_us (event), text, sizeof text));
    size_t attributes = hd_event_attribute_count (event);
    for (size_t index = 0; index < attributes; index++) {
        printf ("  attribute       ");
        s_print_text (hd_event_attribute_key (event, index));
        printf (" = ");
        s_print_text (hd_event_attribute_value (event, index));
        putchar ('\n');
    }
    const char *payload = hd_event_payload (event);
    size_t size = payload ? hd_event_payload_size (event) : 0;
    if (size == 0) {
        printf ("Payload: empty\n");
        return;
    }
    if (cli_printable (payload, size)) {
        printf ("Payload (%zu bytes, text)\n", size);
        fwrite (payload, 1, size, stdout);
        if (payload[size - 1] != '\n')
            putchar ('\n');
    } else {
        printf ("Payload (%zu bytes, binary)\n", size);
        s_hex_dump ((const unsigned char *) payload, size);
    }
}

static int
s_show (s_dlq_t *self, const char *pool, uint64_t seq)
{
    hd_admin_error_t error;
    hd_event_t *event = NULL;
    Herald__DlqEntry *entry =
        hd_admin_dlq_show (self->broker, pool, seq, &event, (int) self->timeout, &error);
    if (!entry) {
        s_report_failure (self, &error);
        return CLI_EXIT_FAILURE;
    }
    if (self->json) {
        s_entry_json (entry);
        printf (",\"event\":");
        cli_event_print_json (stdout, event);
        printf ("}\n");
    } else
        s_show_text (entry, event);
    hd_event_destroy (&event);
    herald__dlq_entry__free_unpacked (entry, NULL);
    return CLI_EXIT_OK;
}

//  SEQ: a whole number >= 1
static bool
s_parse_seq (const char *text, uint64_t *seq)
{
    if (!text || *text < '0' || *text > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || *end || value == 0)
        return false;
    *seq = value;
    return true;
}

static int
s_act (s_dlq_t *self, const char *pool, char **seq_texts, int seq_count)
{
    hd_admin_selection_t selection = {0};
    uint64_t *seqs = NULL;
    if (seq_count > 0) {
        seqs = calloc ((size_t) seq_count, sizeof *seqs);
        if (!seqs) {
            fprintf (stderr, "herald dlq %s: out of memory\n", self->name);
            return CLI_EXIT_FAILURE;
        }
        for (int index = 0; index < seq_count; index++)
            if (!s_parse_seq (seq_texts[index], &seqs[index])) {
                fprintf (stderr, "herald dlq %s: '%s' is not a seq (a whole number >= 1)\n",
                         self->name, seq_texts[index]);
                free (seqs);
                return CLI_EXIT_USAGE;
            }
        selection.seqs = seqs;
        selection.seq_count = (size_t) seq_count;
    } else if (self->all)
        selection.all = true;
    else {
        selection.from_seq = (uint64_t) self->from;
        selection.to_seq = (uint64_t) self->to;
    }
    hd_admin_error_t error;
    int64_t count =
        self->action == S_REPLAY
            ? hd_admin_dlq_replay (self->broker, pool, &selection, (int) self->timeout, &error)
            : hd_admin_dlq_purge (self->broker, pool, &selection, (int) self->timeout, &error);
    free (seqs);
    if (count < 0) {
        s_report_failure (self, &error);
        return CLI_EXIT_FAILURE;
    }
    printf ("%s=%" PRId64 "\n", self->action == S_REPLAY ? "replayed" : "purged", count);
    return CLI_EXIT_OK;
}

static const char *
s_description (s_action_t action)
{
    switch (action) {
        case S_LS:
            return "List the entries of POOL's dead-letter queue, by seq: SEQ, ID, TYPE,\n"
                   "REASON (terminated: a worker sent TERM; max_deliver: out of attempts),\n"
                   "ATTEMPTS, TIME it was dead-lettered (UTC) and the worker's last ERROR.\n"
                   "At most --limit entries (0: the broker's default, 1000; at most 10000)\n"
                   "from --from SEQ on.\n"
                   "\n"
                   "With --json prints ONE JSON array of objects: seq, id, type, reason,\n"
                   "attempts, error, time_us, time.\n"
                   "\n"
                   "Exit status: 0 success; 1 no such pool, or no answer within --timeout;\n"
                   "2 usage error.";
        case S_SHOW:
            return "Show the DLQ entry at SEQ in POOL: reason, attempts, last error, time,\n"
                   "the event's envelope and its payload (text as it is, binary as a hex\n"
                   "dump).\n"
                   "\n"
                   "With --json prints one JSON object: the entry's fields as in\n"
                   "'herald dlq ls --json', and 'event' as in 'herald sub --json'.\n"
                   "\n"
                   "Exit status: 0 success; 1 no such pool or entry, or no answer within\n"
                   "--timeout; 2 usage error.";
        case S_REPLAY:
            return "Put the selected DLQ entries back into POOL: they are delivered again,\n"
                   "with their attempts counted from 0. Select the SEQs listed, the range\n"
                   "--from SEQ [--to SEQ] (inclusive; no --to: to the end), or --all.\n"
                   "Prints 'replayed=N'.\n"
                   "\n"
                   "Exit status: 0 success; 1 no such pool or entry, or no answer within\n"
                   "--timeout; 2 usage error (including an empty selection).";
        default:
            return "Delete the selected DLQ entries of POOL for good. Select the SEQs\n"
                   "listed, the range --from SEQ [--to SEQ] (inclusive; no --to: to the\n"
                   "end), or --all. Prints 'purged=N'.\n"
                   "\n"
                   "Exit status: 0 success; 1 no such pool or entry, or no answer within\n"
                   "--timeout; 2 usage error (including an empty selection).";
    }
}

static const char *
s_synopsis (s_action_t action)
{
    switch (action) {
        case S_LS: return "POOL [--json] [--from SEQ] [--limit N] [options]";
        case S_SHOW: return "POOL SEQ [--json] [options]";
        default: return "POOL (SEQ... | --from SEQ [--to SEQ] | --all) [options]";
    }
}

static int
s_run (s_dlq_t *self, int argc, char **argv)
{
    char program[32];
    snprintf (program, sizeof program, "herald dlq %s", self->name);
    hd_options_t *options =
        hd_options_new (program, s_synopsis (self->action), s_description (self->action));
    if (!options) {
        fprintf (stderr, "%s: out of memory\n", program);
        return CLI_EXIT_FAILURE;
    }
    int exit_code = CLI_EXIT_USAGE;
    hd_options_add (options, "broker", HD_OPT_STRING, HERALD_DEFAULT_BROKER, NULL,
                    "broker command endpoint", &self->broker);
    hd_options_add (options, "timeout", HD_OPT_DURATION, "5s", "",
                    "how long to wait for the broker's answer", &self->timeout);
    if (self->action == S_LS || self->action == S_SHOW)
        hd_options_add (options, "json", HD_OPT_BOOL, "false", "", "print JSON", &self->json);
    if (self->action == S_LS) {
        hd_options_add (options, "from", HD_OPT_INT, "0", "", "list entries from this seq on",
                        &self->from);
        hd_options_add (options, "limit", HD_OPT_INT, "0", "",
                        "most entries listed (0: the broker's default, 1000)", &self->limit);
    }
    if (self->action == S_REPLAY || self->action == S_PURGE) {
        hd_options_add (options, "from", HD_OPT_INT, "0", "", "select entries from this seq on",
                        &self->from);
        hd_options_add (options, "to", HD_OPT_INT, "0", "",
                        "with --from: up to this seq, inclusive (0: no end)", &self->to);
        hd_options_add (options, "all", HD_OPT_BOOL, "false", "", "select every entry", &self->all);
    }
    if (hd_options_parse (options, argc, argv)) {
        fprintf (stderr, "%s: %s\n", program, hd_options_error (options));
        goto done;
    }
    if (hd_options_help_requested (options)) {
        hd_options_print_help (options, stdout);
        exit_code = CLI_EXIT_OK;
        goto done;
    }
    int count = hd_options_argc (options);
    char **args = hd_options_argv (options);
    if (count < 1) {
        fprintf (stderr, "%s: missing POOL (see %s --help)\n", program, program);
        goto done;
    }
    const char *pool = args[0];
    if (!*pool) {
        fprintf (stderr, "%s: POOL must not be empty\n", program);
        goto done;
    }
    if (!self->broker || !*self->broker) {
        fprintf (stderr, "%s: --broker must not be empty\n", program);
        goto done;
    }
    if (self->timeout < 1 || self->timeout > INT32_MAX) {
        fprintf (stderr, "%s: --timeout must be between 1ms and 24 days\n", program);
        goto done;
    }
    if (self->from < 0 || self->to < 0) {
        fprintf (stderr, "%s: --from and --to must not be negative\n", program);
        goto done;
    }
    switch (self->action) {
        case S_LS:
            if (count > 1) {
                fprintf (stderr, "%s: unexpected argument '%s' (see %s --help)\n", program, args[1],
                         program);
                goto done;
            }
            if (self->limit < 0 || self->limit > S_MAX_LIMIT) {
                fprintf (stderr, "%s: --limit must be between 0 and %d\n", program, S_MAX_LIMIT);
                goto done;
            }
            exit_code = s_ls (self, pool);
            break;
        case S_SHOW: {
            uint64_t seq;
            if (count != 2) {
                fprintf (stderr, "%s: %s (see %s --help)\n", program,
                         count < 2 ? "missing SEQ" : "only one SEQ at a time", program);
                goto done;
            }
            if (!s_parse_seq (args[1], &seq)) {
                fprintf (stderr, "%s: '%s' is not a seq (a whole number >= 1)\n", program, args[1]);
                goto done;
            }
            exit_code = s_show (self, pool, seq);
            break;
        }
        default: {
            bool listed = count > 1, range = self->from > 0;
            if (self->to > 0 && self->from == 0) {
                fprintf (stderr, "%s: --to needs --from\n", program);
                goto done;
            }
            if (listed + range + self->all > 1) {
                fprintf (stderr, "%s: select with SEQs, --from/--to or --all, not several\n",
                         program);
                goto done;
            }
            if (!listed && !range && !self->all) {
                fprintf (stderr,
                         "%s: nothing selected: give SEQs, --from SEQ [--to SEQ] or --all "
                         "(see %s --help)\n",
                         program, program);
                goto done;
            }
            if (range && self->to > 0 && self->to < self->from) {
                fprintf (stderr, "%s: --to %lld is before --from %lld\n", program,
                         (long long) self->to, (long long) self->from);
                goto done;
            }
            exit_code = s_act (self, pool, args + 1, count - 1);
        }
    }
    if (exit_code == CLI_EXIT_OK && fflush (stdout) != 0)
        exit_code = CLI_EXIT_FAILURE;
done:
    hd_options_destroy (&options);
    return exit_code;
}

int
cli_dlq (int argc, char **argv)
{
    if (argc < 2) {
        fputs (s_usage_text, stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp (name, "--help") || !strcmp (name, "-h") || !strcmp (name, "help")) {
        fputs (s_usage_text, stdout);
        return CLI_EXIT_OK;
    }
    s_dlq_t self = {.name = name};
    if (!strcmp (name, "ls") || !strcmp (name, "list"))
        self.action = S_LS;
    else if (!strcmp (name, "show"))
        self.action = S_SHOW;
    else if (!strcmp (name, "replay"))
        self.action = S_REPLAY;
    else if (!strcmp (name, "purge"))
        self.action = S_PURGE;
    else {
        fprintf (stderr, "herald dlq: unknown command '%s' (see herald dlq --help)\n", name);
        return CLI_EXIT_USAGE;
    }
    //  argv[1] becomes the program name the options parser skips
    return s_run (&self, argc - 1, argv + 1);
}
