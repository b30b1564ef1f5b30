/*  options — flags, environment and config file in one table. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HD_OPTIONS_MAX 64

//  number × scale as an int64_t, or -1 when it is NaN, infinite, negative or
//  too large (the cast would be undefined and gave INT64_MIN).
static int
s_scaled (double number, double scale, int64_t *value)
{
    double result = number * scale;
    if (!(result >= 0 && result < 9223372036854775807.0))
        return -1;
    *value = (int64_t) result;
    return 0;
}

typedef struct {
    char *name;
    char *env_name;
    hd_option_type_t type;
    char *default_value;
    char *help;
    void *target;
    char *string_value; // owned storage behind HD_OPT_STRING targets
} s_option_t;

struct _hd_options_t {
    char *program;
    char *usage;
    char *description;
    s_option_t option[HD_OPTIONS_MAX];
    int option_count;
    char **positional;
    int positional_count;
    bool help_requested;
    char error[256];
};

hd_options_t *
hd_options_new (const char *program, const char *usage, const char *description)
{
    hd_options_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->program = strdup (program);
    self->usage = strdup (usage ? usage : "[options]");
    self->description = strdup (description ? description : "");
    return self;
}

void
hd_options_destroy (hd_options_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_options_t *self = *self_p;
    for (int index = 0; index < self->option_count; index++) {
        s_option_t *option = &self->option[index];
        free (option->name);
        free (option->env_name);
        free (option->default_value);
        free (option->help);
        free (option->string_value);
    }
    free (self->positional);
    free (self->program);
    free (self->usage);
    free (self->description);
    free (self);
    *self_p = NULL;
}

void
hd_options_add (hd_options_t *self, const char *name, hd_option_type_t type,
                const char *default_value, const char *env_name, const char *help, void *target)
{
    //  Programmer error: the table is static and small
    if (self->option_count >= HD_OPTIONS_MAX)
        abort ();
    s_option_t *option = &self->option[self->option_count++];
    option->name = strdup (name);
    option->type = type;
    option->default_value = default_value ? strdup (default_value) : NULL;
    option->help = strdup (help);
    option->target = target;
    if (env_name)
        option->env_name = strdup (env_name);
    else {
        option->env_name = malloc (strlen (name) + 8);
        char *cursor = option->env_name + sprintf (option->env_name, "HERALD_");
        for (const char *c = name; *c; c++)
            *cursor++ = *c == '-' ? '_' : (char) toupper ((unsigned char) *c);
        *cursor = 0;
    }
}

int
hd_parse_duration_ms (const char *text, int64_t *value)
{
    char *end;
    errno = 0;
    double number = strtod (text, &end);
    if (errno || end == text || number < 0)
        return -1;
    double scale = 1;
    if (*end == 0 || strcmp (end, "ms") == 0)
        scale = 1;
    else if (strcmp (end, "s") == 0)
        scale = 1000;
    else if (strcmp (end, "m") == 0)
        scale = 60000;
    else if (strcmp (end, "h") == 0)
        scale = 3600000;
    else
        return -1;
    return s_scaled (number, scale, value);
}

int
hd_parse_size (const char *text, int64_t *value)
{
    char *end;
    errno = 0;
    double number = strtod (text, &end);
    if (errno || end == text || number < 0)
        return -1;
    double scale = 1;
    switch (toupper ((unsigned char) *end)) {
        case 0: break;
        case 'K': scale = 1024.0; break;
        case 'M': scale = 1024.0 * 1024; break;
        case 'G': scale = 1024.0 * 1024 * 1024; break;
        default: return -1;
    }
    if (*end && end[1] && !(toupper ((unsigned char) end[1]) == 'B' && end[2] == 0) &&
        !(toupper ((unsigned char) end[1]) == 'I' && toupper ((unsigned char) end[2]) == 'B' &&
          end[3] == 0))
        return -1;
    return s_scaled (number, scale, value);
}

static int
s_parse_int (const char *text, int64_t *value)
{
    char *end;
    errno = 0;
    long long number = strtoll (text, &end, 10);
    if (errno || end == text || *end)
        return -1;
    *value = number;
    return 0;
}

static int
s_parse_bool (const char *text, bool *value)
{
    if (!strcmp (text, "1") || !strcasecmp (text, "true") || !strcasecmp (text, "yes") ||
        !strcasecmp (text, "on"))
        *value = true;
    else if (!strcmp (text, "0") || !strcasecmp (text, "false") || !strcasecmp (text, "no") ||
             !strcasecmp (text, "off"))
        *value = false;
    else
        return -1;
    return 0;
}

//  Store text into option's target; where says where it came from.
static int
s_option_set (hd_options_t *self, s_option_t *option, const char *text, const char *where)
{
    int rc = 0;
    switch (option->type) {
        case HD_OPT_STRING:
            free (option->string_value);
            option->string_value = strdup (text);
            *(char **) option->target = option->string_value;
            break;
        case HD_OPT_INT: rc = s_parse_int (text, option->target); break;
        case HD_OPT_DURATION: rc = hd_parse_duration_ms (text, option->target); break;
        case HD_OPT_SIZE: rc = hd_parse_size (text, option->target); break;
        case HD_OPT_BOOL: rc = s_parse_bool (text, option->target); break;
    }
    if (rc)
        snprintf (self->error, sizeof self->error, "invalid value '%s' for --%s (from %s)", text,
                  option->name, where);
    return rc;
}

static s_option_t *
s_option_find (hd_options_t *self, const char *name, size_t length)
{
    for (int index = 0; index < self->option_count; index++)
        if (strlen (self->option[index].name) == length &&
            memcmp (self->option[index].name, name, length) == 0)
            return &self->option[index];
    return NULL;
}

static char *
s_trim (char *text)
{
    while (isspace ((unsigned char) *text))
        text++;
    char *end = text + strlen (text);
    while (end > text && isspace ((unsigned char) end[-1]))
        *--end = 0;
    return text;
}

//  Config file lines: "name = value" or "name value"; '#' starts a comment.
//  A file named by HERALD_CONFIG is shared by every Herald program, so there
//  keys another program owns are skipped; a file given with --config belongs
//  to this program and an unknown key is an error.
static int
s_load_config (hd_options_t *self, const char *path, bool shared)
{
    FILE *file = fopen (path, "r");
    if (!file) {
        snprintf (self->error, sizeof self->error, "cannot open config file %s: %s", path,
                  strerror (errno));
        return -1;
    }
    char line[1024];
    int line_number = 0;
    int rc = 0;
    while (rc == 0 && fgets (line, sizeof line, file)) {
        line_number++;
        char *hash = strchr (line, '#');
        if (hash)
            *hash = 0;
        char *text = s_trim (line);
        if (*text == 0)
            continue;
        size_t name_length = strcspn (text, " \t=");
        char *value = text + name_length;
        while (*value == ' ' || *value == '\t' || *value == '=')
            value++;
        s_option_t *option = s_option_find (self, text, name_length);
        if (!option) {
            if (shared)
                continue;
            snprintf (self->error, sizeof self->error, "%s:%d: unknown option '%.*s'", path,
                      line_number, (int) name_length, text);
            rc = -1;
        } else if (option->type == HD_OPT_BOOL && *value == 0)
            *(bool *) option->target = true;
        else {
            char where[300];
            snprintf (where, sizeof where, "%s:%d", path, line_number);
            rc = s_option_set (self, option, s_trim (value), where);
        }
    }
    fclose (file);
    return rc;
}

//  Find --config in argv, else HERALD_CONFIG in the environment (shared).
static const char *
s_config_path (int argc, char **argv, bool *shared)
{
    *shared = false;
    for (int index = 1; index < argc; index++) {
        if (strcmp (argv[index], "--") == 0)
            break;
        if (strcmp (argv[index], "--config") == 0 && index + 1 < argc)
            return argv[index + 1];
        if (strncmp (argv[index], "--config=", 9) == 0)
            return argv[index] + 9;
    }
    *shared = true;
    return getenv ("HERALD_CONFIG");
}

static int
s_parse_flags (hd_options_t *self, int argc, char **argv)
{
    bool options_ended = false;
    for (int index = 1; index < argc; index++) {
        char *arg = argv[index];
        if (options_ended || arg[0] != '-' || strcmp (arg, "-") == 0) {
            self->positional[self->positional_count++] = arg;
            continue;
        }
        if (strcmp (arg, "--") == 0) {
            options_ended = true;
            continue;
        }
        if (strcmp (arg, "--help") == 0 || strcmp (arg, "-h") == 0) {
            self->help_requested = true;
            continue;
        }
        if (arg[1] != '-') {
            snprintf (self->error, sizeof self->error, "unknown option '%s' (see --help)", arg);
            return -1;
        }
        char *name = arg + 2;
        char *equals = strchr (name, '=');
        size_t name_length = equals ? (size_t) (equals - name) : strlen (name);
        if (name_length == 6 && memcmp (name, "config", 6) == 0) {
            if (!equals)
                index++;
            continue; // already loaded
        }
        s_option_t *option = s_option_find (self, name, name_length);
        if (!option) {
            snprintf (self->error, sizeof self->error, "unknown option '--%.*s' (see --help)",
                      (int) name_length, name);
            return -1;
        }
        const char *value = equals ? equals + 1 : NULL;
        if (!value && option->type == HD_OPT_BOOL) {
            *(bool *) option->target = true;
            continue;
        }
        if (!value) {
            if (index + 1 >= argc) {
                snprintf (self->error, sizeof self->error, "option --%s needs a value",
                          option->name);
                return -1;
            }
            value = argv[++index];
        }
        if (s_option_set (self, option, value, "command line"))
            return -1;
    }
    return 0;
}

int
hd_options_parse (hd_options_t *self, int argc, char **argv)
{
    free (self->positional);
    self->positional = calloc ((size_t) argc + 1, sizeof (char *));
    self->positional_count = 0;
    for (int index = 0; index < self->option_count; index++) {
        s_option_t *option = &self->option[index];
        if (option->type == HD_OPT_STRING)
            *(char **) option->target = NULL;
        if (option->default_value && s_option_set (self, option, option->default_value, "default"))
            return -1;
    }
    bool shared;
    const char *config = s_config_path (argc, argv, &shared);
    if (config && s_load_config (self, config, shared))
        return -1;
    for (int index = 0; index < self->option_count; index++) {
        s_option_t *option = &self->option[index];
        const char *value = *option->env_name ? getenv (option->env_name) : NULL;
        if (value && s_option_set (self, option, value, option->env_name))
            return -1;
    }
    return s_parse_flags (self, argc, argv);
}

const char *
hd_options_error (hd_options_t *self)
{
    return self->error;
}

bool
hd_options_help_requested (hd_options_t *self)
{
    return self->help_requested;
}

void
hd_options_print_help (hd_options_t *self, FILE *stream)
{
    fprintf (stream, "Usage: %s %s\n", self->program, self->usage);
    if (*self->description)
        fprintf (stream, "\n%s\n", self->description);
    fprintf (stream, "\nOptions (flag > environment > config file > default):\n");
    for (int index = 0; index < self->option_count; index++) {
        s_option_t *option = &self->option[index];
        const char *kind = option->type == HD_OPT_BOOL       ? ""
                           : option->type == HD_OPT_DURATION ? " DURATION"
                           : option->type == HD_OPT_SIZE     ? " SIZE"
                           : option->type == HD_OPT_INT      ? " N"
                                                             : " VALUE";
        char flag[64];
        snprintf (flag, sizeof flag, "--%s%s", option->name, kind);
        fprintf (stream, "  %-28s %s", flag, option->help);
        if (option->default_value)
            fprintf (stream, " (default %s)", option->default_value);
        if (*option->env_name)
            fprintf (stream, " [env %s]", option->env_name);
        fprintf (stream, "\n");
    }
    fprintf (stream, "  %-28s %s\n", "--config FILE",
             "read 'name = value' lines from FILE [env HERALD_CONFIG]");
    fprintf (stream, "  %-28s %s\n", "--help", "show this help");
}

int
hd_options_argc (hd_options_t *self)
{
    return self->positional_count;
}

char **
hd_options_argv (hd_options_t *self)
{
    return self->positional;
}
