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

//  Process exit codes, the same for every subcommand.
#define CLI_EXIT_OK      0 // success
#define CLI_EXIT_FAILURE 1 // runtime failure: broker unreachable, rejection, ...
#define CLI_EXIT_USAGE   2 // unknown subcommand or option, bad value

int cli_pub (int argc, char **argv);
int cli_sub (int argc, char **argv);
int cli_stat (int argc, char **argv);

//  Write data as a JSON string, quotes included. Invalid UTF-8 bytes
//  become U+FFFD, so the output is always valid JSON.
void cli_json_string (FILE *out, const char *data, size_t size);
//  Same for a NUL-terminated string.
void cli_json_cstring (FILE *out, const char *text);
//  True when data is well-formed UTF-8 (no overlongs, no surrogates).
bool cli_utf8_valid (const void *data, size_t size);
//  Write data base64-encoded (RFC 4648, with padding), no quotes.
void cli_base64 (FILE *out, const void *data, size_t size);

//  Format a duration in ms as "1.5s", "250ms", "2m", for messages.
const char *cli_duration_text (int64_t ms, char *buffer, size_t size);

#endif
