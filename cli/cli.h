/*  cli.h — internals of the herald command-line tool.

    Each subcommand is a function taking the arguments after "herald"
    (argv[0] is the subcommand name) and returning the process exit code.
*/
#ifndef HD_CLI_H_INCLUDED
#define HD_CLI_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "herald.h"

//  Process exit codes, the same for every subcommand.
#define CLI_EXIT_OK      0 // success
#define CLI_EXIT_FAILURE 1 // runtime failure: broker unreachable, rejection, ...
#define CLI_EXIT_USAGE   2 // unknown subcommand or option, bad value

int cli_pub (int argc, char **argv);
int cli_sub (int argc, char **argv);
int cli_stat (int argc, char **argv);
int cli_dlq (int argc, char **argv);

//  Write data as a JSON string, quotes included. Invalid UTF-8 bytes
//  become U+FFFD, so the output is always valid JSON.
void cli_json_string (FILE *out, const char *data, size_t size);
//  Same for a NUL-terminated string.
void cli_json_cstring (FILE *out, const char *text);
//  True when data is well-formed UTF-8 (no overlongs, no surrogates).
bool cli_utf8_valid (const void *data, size_t size);
//  Write data base64-encoded (RFC 4648, with padding), no quotes.
void cli_base64 (FILE *out, const void *data, size_t size);

//  True when payload is text that prints on one line as it is: UTF-8, no
//  control characters other than tab, except one final newline.
bool cli_printable (const char *data, size_t size);
//  One event as the line 'seq=SEQ id=ID type=TYPE PAYLOAD' (see herald sub --help).
void cli_event_print_line (FILE *out, const hd_event_t *event);
//  One event as a JSON object, without a line break.
void cli_event_print_json (FILE *out, const hd_event_t *event);
//  time_us as RFC 3339 UTC with milliseconds ("2026-11-22T10:00:00.123Z"); "-" for 0.
const char *cli_time_text (uint64_t time_us, char *buffer, size_t size);

//  History client (REPLAY, docs/PROTOCOL.md section 9): one page at a time.
typedef struct _cli_replay_t cli_replay_t;

typedef enum {
    CLI_REPLAY_EVENT, // *event_p holds the page's next event
    CLI_REPLAY_END,   // the page is complete: next_seq, end_seq and first_seq are set
    CLI_REPLAY_WAIT,  // nothing arrived within wait_ms
    CLI_REPLAY_ERROR  // the broker refused, or sent garbage: cli_replay_error()
} cli_replay_status_t;

//  A DEALER to the broker at endpoint asking for events whose type starts with prefix.
cli_replay_t *cli_replay_new (const char *endpoint, const char *prefix);
void cli_replay_destroy (cli_replay_t **self_p);
//  Ask for a page of up to limit events from from_seq, or, when from_seq is 0,
//  from the first event recorded at or after from_time_us.
int cli_replay_request (cli_replay_t *self, uint64_t from_seq, uint64_t from_time_us,
                        uint32_t limit);
//  Wait at most wait_ms for the next message of the page asked for.
cli_replay_status_t cli_replay_recv (cli_replay_t *self, int wait_ms, hd_event_t **event_p);
uint64_t cli_replay_next_seq (cli_replay_t *self);
uint64_t cli_replay_end_seq (cli_replay_t *self);
uint64_t cli_replay_first_seq (cli_replay_t *self);
const char *cli_replay_error (cli_replay_t *self);

//  Parse the start of history: a seq (digits, >= 1), an RFC 3339 time
//  ("2026-11-22T10:00:00Z", "...10:00:00.5+01:00") or a time relative to now
//  ("-10m", "-1h", "-2d"). Sets *seq, or *time_us (unix microseconds), and
//  returns 0; -1 on anything else.
int cli_parse_from (const char *text, uint64_t *seq, uint64_t *time_us);

//  Format a duration in ms as "1.5s", "250ms", "2m", for messages.
const char *cli_duration_text (int64_t ms, char *buffer, size_t size);

#endif
