/*  options — one table of options per program, filled from (lowest first)
    defaults, a config file (--config PATH, or HERALD_CONFIG: a file shared by
    every Herald program, where keys this program lacks are skipped), environment
    variables HERALD_<NAME> and command-line flags --name VALUE / --name=VALUE.
    Arguments that are not options are collected as positionals; "--" ends
    option parsing (everything after it is positional).
*/
#ifndef HD_OPTIONS_H_INCLUDED
#define HD_OPTIONS_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    HD_OPT_STRING,   // char **target, string owned by the options object
    HD_OPT_INT,      // int64_t *target
    HD_OPT_DURATION, // int64_t *target in ms: "250ms", "30s", "2m", "1h"; a bare number is ms
    HD_OPT_SIZE,     // int64_t *target in bytes: "512", "64K", "1M", "2G"
    HD_OPT_BOOL      // bool *target; a flag without value means true
} hd_option_type_t;

typedef struct _hd_options_t hd_options_t;

//  usage is the synopsis after the program name, e.g. "[options] TOPIC [DATA|-]".
hd_options_t *hd_options_new (const char *program, const char *usage, const char *description);
void hd_options_destroy (hd_options_t **self_p);

//  Declare an option. default_value is text parsed like a flag value (NULL: none).
//  env_name may be NULL to derive HERALD_<NAME>; "" means no environment variable.
void hd_options_add (hd_options_t *self, const char *name, hd_option_type_t type,
                     const char *default_value, const char *env_name, const char *help,
                     void *target);

//  Parse everything. Returns 0, or -1 with hd_options_error() set.
//  After --help, returns 0 with hd_options_help_requested() true.
int hd_options_parse (hd_options_t *self, int argc, char **argv);

const char *hd_options_error (hd_options_t *self);
bool hd_options_help_requested (hd_options_t *self);
void hd_options_print_help (hd_options_t *self, FILE *stream);

//  Positional arguments in order.
int hd_options_argc (hd_options_t *self);
char **hd_options_argv (hd_options_t *self);

//  Parse a duration or size text on its own. Return 0 or -1.
int hd_parse_duration_ms (const char *text, int64_t *value);
int hd_parse_size (const char *text, int64_t *value);

#endif
