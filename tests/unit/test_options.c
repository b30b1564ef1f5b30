/*  Unit tests for common/options: defaults < config file < environment < flags. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "options.h"

#define ARGC(argv) ((int) (sizeof (argv) / sizeof (argv)[0]))

//  Every environment variable a test may set; cleared around each test
static const char *s_env_names[] = {
    "HERALD_CONFIG",  "HERALD_UT_NAME",    "HERALD_UT_PORT", "HERALD_UT_WAIT",
    "HERALD_UT_SIZE", "HERALD_UT_VERBOSE", "UT_CUSTOM_PORT", "HERALD_UT_HIDDEN",
};

typedef struct {
    hd_options_t *options;
    char *name;
    int64_t port;
    int64_t wait;
    int64_t size;
    bool verbose;
    char config_path[64];
} fixture_t;

static void
s_clear_env (void)
{
    for (size_t index = 0; index < sizeof s_env_names / sizeof s_env_names[0]; index++)
        unsetenv (s_env_names[index]);
}

static int
s_setup (void **state)
{
    s_clear_env ();
    fixture_t *fixture = calloc (1, sizeof *fixture);
    assert_non_null (fixture);
    fixture->options = hd_options_new ("prog", "[options] ARGS", "A test program.");
    assert_non_null (fixture->options);
    hd_options_add (fixture->options, "ut-name", HD_OPT_STRING, "default-name", NULL, "a name",
                    &fixture->name);
    hd_options_add (fixture->options, "ut-port", HD_OPT_INT, "7100", NULL, "a port",
                    &fixture->port);
    hd_options_add (fixture->options, "ut-wait", HD_OPT_DURATION, "30s", NULL, "a duration",
                    &fixture->wait);
    hd_options_add (fixture->options, "ut-size", HD_OPT_SIZE, "64K", NULL, "a size",
                    &fixture->size);
    hd_options_add (fixture->options, "ut-verbose", HD_OPT_BOOL, NULL, NULL, "talk more",
                    &fixture->verbose);
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *fixture = *state;
    hd_options_destroy (&fixture->options);
    assert_null (fixture->options);
    if (fixture->config_path[0])
        unlink (fixture->config_path);
    free (fixture);
    s_clear_env ();
    return 0;
}

//  Write text to a fresh temporary file; its path goes into the fixture
static const char *
s_write_config (fixture_t *fixture, const char *text)
{
    if (fixture->config_path[0])
        unlink (fixture->config_path);
    strcpy (fixture->config_path, "/tmp/herald-test-options-XXXXXX");
    int fd = mkstemp (fixture->config_path);
    assert_true (fd >= 0);
    size_t size = strlen (text);
    assert_int_equal (write (fd, text, size), (ssize_t) size);
    close (fd);
    return fixture->config_path;
}

static void
s_assert_error_mentions (hd_options_t *options, const char *text)
{
    const char *error = hd_options_error (options);
    assert_non_null (error);
    if (!strstr (error, text))
        fail_msg ("error '%s' does not mention '%s'", error, text);
}

//  --------------------------------------------------------------------------

static void
test_defaults (void **state)
{
    fixture_t *fixture = *state;
    fixture->verbose = true; // no default: parse leaves it alone
    char *argv[] = {"prog"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_string_equal (fixture->name, "default-name");
    assert_int_equal (fixture->port, 7100);
    assert_int_equal (fixture->wait, 30000);
    assert_int_equal (fixture->size, 65536);
    assert_true (fixture->verbose);
    assert_false (hd_options_help_requested (fixture->options));
    assert_int_equal (hd_options_argc (fixture->options), 0);
    assert_null (hd_options_argv (fixture->options)[0]);
}

static void
test_string_without_default_is_null (void **state)
{
    hd_options_t *options = hd_options_new ("prog", NULL, NULL);
    char *value = (char *) "garbage";
    hd_options_add (options, "ut-hidden", HD_OPT_STRING, NULL, NULL, "x", &value);
    char *argv[] = {"prog"};
    assert_int_equal (hd_options_parse (options, 1, argv), 0);
    assert_null (value);
    char *argv2[] = {"prog", "--ut-hidden", "set"};
    assert_int_equal (hd_options_parse (options, 3, argv2), 0);
    assert_string_equal (value, "set");
    //  A later parse starts again from the defaults
    assert_int_equal (hd_options_parse (options, 1, argv), 0);
    assert_null (value);
    hd_options_destroy (&options);
}

static void
test_env_overrides_default (void **state)
{
    fixture_t *fixture = *state;
    setenv ("HERALD_UT_NAME", "from-env", 1);
    setenv ("HERALD_UT_PORT", "8000", 1);
    setenv ("HERALD_UT_WAIT", "2m", 1);
    setenv ("HERALD_UT_SIZE", "1M", 1);
    setenv ("HERALD_UT_VERBOSE", "yes", 1);
    char *argv[] = {"prog"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_string_equal (fixture->name, "from-env");
    assert_int_equal (fixture->port, 8000);
    assert_int_equal (fixture->wait, 120000);
    assert_int_equal (fixture->size, 1048576);
    assert_true (fixture->verbose);
}

static void
test_env_names (void **state)
{
    hd_options_t *options = hd_options_new ("prog", NULL, NULL);
    int64_t custom = 0, hidden = 0;
    hd_options_add (options, "ut-port", HD_OPT_INT, "1", "UT_CUSTOM_PORT", "x", &custom);
    hd_options_add (options, "ut-size", HD_OPT_INT, "2", "", "x", &hidden);
    setenv ("HERALD_UT_PORT", "10", 1); // not its variable
    setenv ("UT_CUSTOM_PORT", "11", 1);
    setenv ("HERALD_UT_SIZE", "12", 1); // "" means no variable
    char *argv[] = {"prog"};
    assert_int_equal (hd_options_parse (options, 1, argv), 0);
    assert_int_equal (custom, 11);
    assert_int_equal (hidden, 2);

    //  Help shows the variable names
    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    hd_options_print_help (options, stream);
    fclose (stream);
    assert_non_null (strstr (text, "UT_CUSTOM_PORT"));
    assert_null (strstr (text, "HERALD_UT_SIZE"));
    free (text);
    hd_options_destroy (&options);
}

static void
test_flag_overrides_env (void **state)
{
    fixture_t *fixture = *state;
    setenv ("HERALD_UT_NAME", "from-env", 1);
    setenv ("HERALD_UT_PORT", "8000", 1);
    setenv ("HERALD_UT_VERBOSE", "true", 1);
    char *argv[] = {"prog", "--ut-name", "from-flag", "--ut-port=9000", "--ut-verbose=off"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_string_equal (fixture->name, "from-flag");
    assert_int_equal (fixture->port, 9000);
    assert_false (fixture->verbose);
}

static void
test_flag_forms (void **state)
{
    fixture_t *fixture = *state;
    char *argv[] = {"prog",      "--ut-name=a=b", "--ut-port",   "-5",
                    "--ut-wait", "250ms",         "--ut-size=1G"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_string_equal (fixture->name, "a=b");
    assert_int_equal (fixture->port, -5);
    assert_int_equal (fixture->wait, 250);
    assert_int_equal (fixture->size, 1073741824);
    assert_int_equal (hd_options_argc (fixture->options), 0);

    //  The last one wins; an empty value is a value
    char *argv2[] = {"prog", "--ut-name", "first", "--ut-name=second", "--ut-name="};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv2), argv2), 0);
    assert_string_equal (fixture->name, "");
}

static void
test_missing_value (void **state)
{
    fixture_t *fixture = *state;
    char *argv[] = {"prog", "--ut-port"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), -1);
    s_assert_error_mentions (fixture->options, "ut-port");
}

static void
test_config_file (void **state)
{
    fixture_t *fixture = *state;
    const char *path = s_write_config (fixture, "# a comment line\n"
                                                "\n"
                                                "   \t\n"
                                                "ut-name = from file # trailing comment\n"
                                                "ut-port 7200\n"
                                                "ut-wait=1h\n"
                                                "  ut-size   =   2KiB  \n"
                                                "ut-verbose\n");
    char option[128];
    snprintf (option, sizeof option, "--config=%s", path);
    char *argv[] = {"prog", option};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_string_equal (fixture->name, "from file");
    assert_int_equal (fixture->port, 7200);
    assert_int_equal (fixture->wait, 3600000);
    assert_int_equal (fixture->size, 2048);
    assert_true (fixture->verbose);
    assert_int_equal (hd_options_argc (fixture->options), 0);

    //  --config PATH form; environment and flags still win over the file
    setenv ("HERALD_UT_PORT", "7300", 1);
    char *argv2[] = {"prog", "--config", (char *) path, "--ut-wait", "5s", "pos"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv2), argv2), 0);
    assert_string_equal (fixture->name, "from file");
    assert_int_equal (fixture->port, 7300);
    assert_int_equal (fixture->wait, 5000);
    assert_int_equal (hd_options_argc (fixture->options), 1);
    assert_string_equal (hd_options_argv (fixture->options)[0], "pos");
    unsetenv ("HERALD_UT_PORT");

    //  HERALD_CONFIG names the file too
    setenv ("HERALD_CONFIG", path, 1);
    char *argv3[] = {"prog"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv3), argv3), 0);
    assert_int_equal (fixture->port, 7200);
    assert_string_equal (fixture->name, "from file");
}

static void
test_config_file_errors (void **state)
{
    fixture_t *fixture = *state;
    const char *path = s_write_config (fixture, "ut-port = 1\n"
                                                "# fine so far\n"
                                                "ut-bogus = 3\n");
    char option[128];
    snprintf (option, sizeof option, "--config=%s", path);
    char *argv[] = {"prog", option};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), -1);
    s_assert_error_mentions (fixture->options, "ut-bogus");
    s_assert_error_mentions (fixture->options, ":3");

    path = s_write_config (fixture, "ut-wait = soon\n");
    snprintf (option, sizeof option, "--config=%s", path);
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), -1);
    s_assert_error_mentions (fixture->options, "ut-wait");
    s_assert_error_mentions (fixture->options, "soon");

    char *argv2[] = {"prog", "--config", "/nonexistent/herald.conf"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv2), argv2), -1);
    s_assert_error_mentions (fixture->options, "/nonexistent/herald.conf");

    //  A file shared through HERALD_CONFIG may hold other programs' keys:
    //  they are skipped, while bad values for our own keys are still errors
    path = s_write_config (fixture, "router = tcp://*:7100\nut-port = 9\n");
    setenv ("HERALD_CONFIG", path, 1);
    char *argv3[] = {"prog"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv3), argv3), 0);
    assert_int_equal (fixture->port, 9);
    path = s_write_config (fixture, "router = x\nut-port = nine\n");
    setenv ("HERALD_CONFIG", path, 1);
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv3), argv3), -1);
    s_assert_error_mentions (fixture->options, "ut-port");
    unsetenv ("HERALD_CONFIG");
}

static void
test_bool_flags (void **state)
{
    fixture_t *fixture = *state;
    char *argv[] = {"prog", "--ut-verbose", "positional"};
    fixture->verbose = false;
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_true (fixture->verbose);
    //  A bool flag does not swallow the next argument
    assert_int_equal (hd_options_argc (fixture->options), 1);
    assert_string_equal (hd_options_argv (fixture->options)[0], "positional");

    const char *truths[] = {"1", "true", "TRUE", "yes", "on"};
    const char *lies[] = {"0", "false", "No", "off"};
    char option[64];
    for (size_t index = 0; index < sizeof truths / sizeof truths[0]; index++) {
        fixture->verbose = false;
        snprintf (option, sizeof option, "--ut-verbose=%s", truths[index]);
        char *argv2[] = {"prog", option};
        assert_int_equal (hd_options_parse (fixture->options, 2, argv2), 0);
        assert_true (fixture->verbose);
    }
    for (size_t index = 0; index < sizeof lies / sizeof lies[0]; index++) {
        fixture->verbose = true;
        snprintf (option, sizeof option, "--ut-verbose=%s", lies[index]);
        char *argv2[] = {"prog", option};
        assert_int_equal (hd_options_parse (fixture->options, 2, argv2), 0);
        assert_false (fixture->verbose);
    }
    char *argv3[] = {"prog", "--ut-verbose=maybe"};
    assert_int_equal (hd_options_parse (fixture->options, 2, argv3), -1);
    s_assert_error_mentions (fixture->options, "ut-verbose");
    s_assert_error_mentions (fixture->options, "maybe");
}

static void
test_durations (void **state)
{
    const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"250ms", 250},  {"30s", 30000},    {"2m", 120000}, {"1h", 3600000},
        {"1500", 1500},  {"0", 0},          {"0s", 0},      {"1.5s", 1500},
        {"0.5m", 30000}, {"24h", 86400000}, {"10ms", 10},
    };
    for (size_t index = 0; index < sizeof good / sizeof good[0]; index++) {
        int64_t value = -1;
        if (hd_parse_duration_ms (good[index].text, &value) != 0)
            fail_msg ("duration '%s' refused", good[index].text);
        assert_int_equal (value, good[index].ms);
    }
    const char *bad[] = {"",   "abc", "10x", "-5s", "5 s", "s",     "1hh",  "1d",
                         "ms", "1S",  "nan", "inf", "-1",  "1e300", "1e30h"};
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        int64_t value = 12345;
        if (hd_parse_duration_ms (bad[index], &value) != -1)
            fail_msg ("duration '%s' accepted", bad[index]);
        assert_int_equal (value, 12345);
    }

    fixture_t *fixture = *state;
    char *argv[] = {"prog", "--ut-wait", "2m"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_int_equal (fixture->wait, 120000);
    char *argv2[] = {"prog", "--ut-wait=10 years"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv2), argv2), -1);
    s_assert_error_mentions (fixture->options, "ut-wait");
    s_assert_error_mentions (fixture->options, "10 years");
}

static void
test_sizes (void **state)
{
    const struct {
        const char *text;
        int64_t bytes;
    } good[] = {
        {"512", 512},       {"64K", 65536},       {"64k", 65536},   {"1M", 1048576},
        {"1G", 1073741824}, {"1MiB", 1048576},    {"1MB", 1048576}, {"2KiB", 2048},
        {"1.5K", 1536},     {"4g", 4294967296LL}, {"0", 0},         {"1gib", 1073741824},
    };
    for (size_t index = 0; index < sizeof good / sizeof good[0]; index++) {
        int64_t value = -1;
        if (hd_parse_size (good[index].text, &value) != 0)
            fail_msg ("size '%s' refused", good[index].text);
        assert_int_equal (value, good[index].bytes);
    }
    const char *bad[] = {"",    "K",   "1X",  "1Mi", "1MBx", "1MiBs", "-1K",
                         "1 K", "nan", "inf", "1T",  "abc",  "1e30G"};
    for (size_t index = 0; index < sizeof bad / sizeof bad[0]; index++) {
        int64_t value = 12345;
        if (hd_parse_size (bad[index], &value) != -1)
            fail_msg ("size '%s' accepted", bad[index]);
        assert_int_equal (value, 12345);
    }

    fixture_t *fixture = *state;
    char *argv[] = {"prog", "--ut-size=1M"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_int_equal (fixture->size, 1048576);
    char *argv2[] = {"prog", "--ut-size", "lots"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv2), argv2), -1);
    s_assert_error_mentions (fixture->options, "ut-size");
    s_assert_error_mentions (fixture->options, "lots");
}

static void
test_invalid_values (void **state)
{
    fixture_t *fixture = *state;
    char *argv[] = {"prog", "--ut-port=12ab"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), -1);
    s_assert_error_mentions (fixture->options, "ut-port");
    s_assert_error_mentions (fixture->options, "12ab");

    char *argv2[] = {"prog", "--ut-port", ""};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv2), argv2), -1);
    s_assert_error_mentions (fixture->options, "ut-port");

    char *argv3[] = {"prog", "--ut-port", "99999999999999999999"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv3), argv3), -1);
    s_assert_error_mentions (fixture->options, "ut-port");

    //  A bad environment value is an error too, naming the variable
    setenv ("HERALD_UT_WAIT", "forever", 1);
    char *argv4[] = {"prog"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv4), argv4), -1);
    s_assert_error_mentions (fixture->options, "ut-wait");
    s_assert_error_mentions (fixture->options, "HERALD_UT_WAIT");
    unsetenv ("HERALD_UT_WAIT");

    //  And a bad default
    hd_options_t *options = hd_options_new ("prog", NULL, NULL);
    int64_t value;
    hd_options_add (options, "ut-port", HD_OPT_INT, "seven", NULL, "x", &value);
    assert_int_equal (hd_options_parse (options, ARGC (argv4), argv4), -1);
    s_assert_error_mentions (options, "ut-port");
    hd_options_destroy (&options);
}

static void
test_positionals (void **state)
{
    fixture_t *fixture = *state;
    char *argv[] = {"prog", "first",       "--ut-port", "1",      "-",    "second",
                    "--",   "--ut-port=2", "-x",        "--help", "third"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_int_equal (fixture->port, 1);
    assert_false (hd_options_help_requested (fixture->options));
    const char *expected[] = {"first", "-", "second", "--ut-port=2", "-x", "--help", "third"};
    int count = hd_options_argc (fixture->options);
    assert_int_equal (count, 7);
    char **positional = hd_options_argv (fixture->options);
    for (int index = 0; index < count; index++)
        assert_string_equal (positional[index], expected[index]);
    assert_null (positional[count]);

    //  A later parse starts a fresh list
    char *argv2[] = {"prog", "only"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv2), argv2), 0);
    assert_int_equal (hd_options_argc (fixture->options), 1);
    assert_string_equal (hd_options_argv (fixture->options)[0], "only");
}

static void
test_help (void **state)
{
    fixture_t *fixture = *state;
    char *argv[] = {"prog", "a", "--help", "b"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_true (hd_options_help_requested (fixture->options));
    assert_int_equal (hd_options_argc (fixture->options), 2);

    char *text = NULL;
    size_t size = 0;
    FILE *stream = open_memstream (&text, &size);
    hd_options_print_help (fixture->options, stream);
    fclose (stream);
    assert_non_null (strstr (text, "Usage: prog [options] ARGS"));
    assert_non_null (strstr (text, "A test program."));
    assert_non_null (strstr (text, "--ut-port"));
    assert_non_null (strstr (text, "(default 7100)"));
    assert_non_null (strstr (text, "HERALD_UT_PORT"));
    assert_non_null (strstr (text, "--ut-wait DURATION"));
    assert_non_null (strstr (text, "--config"));
    free (text);
}

static void
test_help_short (void **state)
{
    fixture_t *fixture = *state;
    char *argv[] = {"prog", "-h"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), 0);
    assert_true (hd_options_help_requested (fixture->options));
}

static void
test_unknown_option (void **state)
{
    fixture_t *fixture = *state;
    char *argv[] = {"prog", "--nope"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv), argv), -1);
    s_assert_error_mentions (fixture->options, "--nope");

    char *argv2[] = {"prog", "--nope=3"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv2), argv2), -1);
    s_assert_error_mentions (fixture->options, "--nope");

    char *argv3[] = {"prog", "-x"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv3), argv3), -1);
    s_assert_error_mentions (fixture->options, "-x");

    //  A prefix of a real name is not that option
    char *argv4[] = {"prog", "--ut-por=3"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv4), argv4), -1);
    s_assert_error_mentions (fixture->options, "--ut-por");
    char *argv5[] = {"prog", "--ut-portx", "3"};
    assert_int_equal (hd_options_parse (fixture->options, ARGC (argv5), argv5), -1);
    s_assert_error_mentions (fixture->options, "--ut-portx");
}

int
main (void)
{
#define T(name) cmocka_unit_test_setup_teardown (name, s_setup, s_teardown)
    const struct CMUnitTest tests[] = {
        T (test_defaults),
        T (test_string_without_default_is_null),
        T (test_env_overrides_default),
        T (test_env_names),
        T (test_flag_overrides_env),
        T (test_flag_forms),
        T (test_missing_value),
        T (test_config_file),
        T (test_config_file_errors),
        T (test_bool_flags),
        T (test_durations),
        T (test_sizes),
        T (test_invalid_values),
        T (test_positionals),
        T (test_help),
        T (test_help_short),
        T (test_unknown_option),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
