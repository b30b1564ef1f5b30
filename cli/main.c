/*  herald — command-line client for a Herald broker.

    herald COMMAND [options] [arguments]; every command documents itself
    with --help. Exit codes: 0 success, 1 runtime failure, 2 usage error.
*/
#include "cli.h"

#include <czmq.h>
#include <signal.h>
#include <string.h>

#ifndef HERALD_VERSION
#define HERALD_VERSION "unknown"
#endif

typedef struct {
    const char *name;
    int (*run) (int argc, char **argv);
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    {"pub", cli_pub, "publish events and wait until the broker confirms them"},
    {"sub", cli_sub, "print live events from the broker's fan-out, one line each"},
    {"stat", cli_stat, "show broker and worker-pool statistics"},
    {"dlq", cli_dlq, "list, show, replay or purge a worker pool's dead-letter queue"},
};

#define S_COMMAND_COUNT (sizeof s_commands / sizeof s_commands[0])

static void
s_usage (FILE *stream)
{
    fprintf (stream, "Usage: herald COMMAND [options] [arguments]\n"
                     "\n"
                     "Command-line client for the Herald event broker.\n"
                     "\n"
                     "Commands:\n");
    for (size_t index = 0; index < S_COMMAND_COUNT; index++)
        fprintf (stream, "  %-6s %s\n", s_commands[index].name, s_commands[index].summary);
    fprintf (stream, "\n"
                     "  herald dlq ls|show|replay|purge POOL ...   (herald dlq --help)\n"
                     "  herald sub --from SEQ|TIME                 history, then live\n"
                     "\n"
                     "Run 'herald COMMAND --help' for the options of a command.\n"
                     "Options also come from HERALD_* environment variables and from a\n"
                     "config file (--config FILE or HERALD_CONFIG); flags win.\n"
                     "\n"
                     "Exit codes: 0 success, 1 runtime failure (broker unreachable,\n"
                     "event rejected, timeout), 2 usage error.\n");
}

//  SIGINT / SIGTERM set zsys_interrupted, which the library and every
//  command loop watch. czmq installs the same kind of handler when the
//  library creates its first socket; this one covers the time before.
static void
s_signal_handler (int signal_value)
{
    zsys_interrupted = 1;
}

const char *
cli_duration_text (int64_t ms, char *buffer, size_t size)
{
    if (ms % 1000 == 0)
        snprintf (buffer, size, "%llds", (long long) (ms / 1000));
    else if (ms < 1000)
        snprintf (buffer, size, "%lldms", (long long) ms);
    else
        snprintf (buffer, size, "%.3gs", (double) ms / 1000.0);
    return buffer;
}

int
main (int argc, char **argv)
{
    if (argc < 2) {
        s_usage (stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp (name, "--help") || !strcmp (name, "-h")) {
        s_usage (stdout);
        return CLI_EXIT_OK;
    }
    if (!strcmp (name, "--version")) {
        printf ("herald %s\n", HERALD_VERSION);
        return CLI_EXIT_OK;
    }
    //  "herald help" and "herald help COMMAND"
    char *help_argv[4];
    if (!strcmp (name, "help")) {
        if (argc < 3) {
            s_usage (stdout);
            return CLI_EXIT_OK;
        }
        help_argv[0] = argv[0];
        help_argv[1] = argv[2];
        help_argv[2] = "--help";
        help_argv[3] = NULL;
        argv = help_argv;
        argc = 3;
        name = argv[1];
    }
    for (size_t index = 0; index < S_COMMAND_COUNT; index++)
        if (!strcmp (name, s_commands[index].name)) {
            //  A reader that went away (herald sub | head) is an end, not a crash.
            signal (SIGPIPE, SIG_IGN);
            zsys_handler_set (s_signal_handler);
            return s_commands[index].run (argc - 1, argv + 1);
        }
    if (name[0] == '-')
        fprintf (stderr, "herald: unknown option '%s' (see herald --help)\n", name);
    else
        fprintf (stderr, "herald: unknown command '%s' (see herald --help)\n", name);
    return CLI_EXIT_USAGE;
}
