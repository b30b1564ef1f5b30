/*  replay — the client side of REPLAY (docs/PROTOCOL.md section 9): a
    DEALER to the broker that asks for pages of past events, and the
    parsing of the --from argument of herald sub.
*/
#include "cli.h"
#include "codec.h"
#include "event.h"
#include "options.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <time.h>

struct _cli_replay_t {
    zsock_t *socket;
    void *handle;
    char *prefix;
    uint64_t corr;     // of the page asked for
    bool pending;      // a page was asked for and its REPLAY_END has not come
    uint64_t next_seq; // from the last REPLAY_END
    uint64_t end_seq;
    uint64_t first_seq;
    char error[512];
};

cli_replay_t *
cli_replay_new (const char *endpoint, const char *prefix)
{
    cli_replay_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->prefix = strdup (prefix ? prefix : "");
    self->socket = zsock_new (ZMQ_DEALER);
    if (!self->prefix || !self->socket) {
        cli_replay_destroy (&self);
        return NULL;
    }
    zsock_set_linger (self->socket, 0);
    //  Pages are bursts of up to a thousand events: let them queue
    zsock_set_rcvhwm (self->socket, 0);
    if (zsock_connect (self->socket, "%s", endpoint)) {
        cli_replay_destroy (&self);
        return NULL;
    }
    self->handle = zsock_resolve (self->socket);
    return self;
}

void
cli_replay_destroy (cli_replay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cli_replay_t *self = *self_p;
    zsock_destroy (&self->socket);
    free (self->prefix);
    free (self);
    *self_p = NULL;
}

int
cli_replay_request (cli_replay_t *self, uint64_t from_seq, uint64_t from_time_us, uint32_t limit)
{
    Herald__Replay replay = HERALD__REPLAY__INIT;
    replay.prefix = self->prefix;
    replay.from_seq = from_seq;
    replay.from_time_us = from_seq ? 0 : from_time_us;
    replay.limit = limit;
    replay.corr = ++self->corr;
    if (hd_send_command (self->handle, NULL, 0, HD_CMD_REPLAY, &replay.base, 0)) {
        snprintf (self->error, sizeof self->error, "cannot send REPLAY: %s", zmq_strerror (errno));
        return -1;
    }
    self->pending = true;
    return 0;
}

cli_replay_status_t
cli_replay_recv (cli_replay_t *self, int wait_ms, hd_event_t **event_p)
{
    *event_p = NULL;
    int64_t deadline = zclock_mono () + (wait_ms > 0 ? wait_ms : 0);
    while (!zsys_interrupted) {
        int64_t wait = deadline - zclock_mono ();
        zmq_pollitem_t item = {self->handle, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll (&item, 1, (long) (wait > 0 ? wait : 0));
        if (rc == -1 && errno != EINTR) {
            snprintf (self->error, sizeof self->error, "poll failed: %s", zmq_strerror (errno));
            return CLI_REPLAY_ERROR;
        }
        if (rc <= 0) {
            if (wait <= 0)
                return CLI_REPLAY_WAIT;
            continue;
        }
        hd_frames_t frames;
        if (hd_frames_recv (&frames, self->handle, ZMQ_DONTWAIT))
            continue;
        int command = 0;
        if (frames.count < 1 || frames.truncated ||
            hd_header_decode (hd_frames_data (&frames, 0), hd_frames_size (&frames, 0), &command)) {
            hd_frames_close (&frames);
            continue;
        }
        if (command == HD_CMD_REPLAY_EVENT) {
            hd_event_t *event =
                frames.count == 3 ? hd_event_decode (hd_frames_data (&frames, 1),
                                                     hd_frames_size (&frames, 1), &frames.frame[2])
                                  : NULL;
            hd_frames_close (&frames);
            if (!event) {
                snprintf (self->error, sizeof self->error,
                          "broker sent a REPLAY_EVENT that does not parse");
                return CLI_REPLAY_ERROR;
            }
            *event_p = event;
            return CLI_REPLAY_EVENT;
        }
        if (command == HD_CMD_REPLAY_END) {
            Herald__ReplayEnd *end =
                frames.count == 2 ? herald__replay_end__unpack (NULL, hd_frames_size (&frames, 1),
                                                                hd_frames_data (&frames, 1))
                                  : NULL;
            hd_frames_close (&frames);
            if (!end) {
                snprintf (self->error, sizeof self->error,
                          "broker sent a REPLAY_END that does not parse");
                return CLI_REPLAY_ERROR;
            }
            bool ours = end->corr == self->corr;
            if (ours) {
                self->next_seq = end->next_seq;
                self->end_seq = end->end_seq;
                self->first_seq = end->first_seq;
                self->pending = false;
            }
            herald__replay_end__free_unpacked (end, NULL);
            if (ours)
                return CLI_REPLAY_END;
            continue; // the end of a page we no longer wait for
        }
        if (command == HD_CMD_ERROR) {
            Herald__Error *refusal = frames.count == 2
                                         ? herald__error__unpack (NULL, hd_frames_size (&frames, 1),
                                                                  hd_frames_data (&frames, 1))
                                         : NULL;
            hd_frames_close (&frames);
            if (!refusal)
                snprintf (self->error, sizeof self->error,
                          "broker sent an ERROR that does not parse");
            else if (refusal->code == HERALD__ERROR_CODE__UNKNOWN_COMMAND)
                snprintf (self->error, sizeof self->error,
                          "the broker does not support REPLAY (older version?)");
            else
                snprintf (self->error, sizeof self->error, "broker refused REPLAY: %s%s%.400s",
                          hd_error_name (refusal->code),
                          refusal->reason && *refusal->reason ? ": " : "",
                          refusal->reason ? refusal->reason : "");
            if (refusal)
                herald__error__free_unpacked (refusal, NULL);
            return CLI_REPLAY_ERROR;
        }
        hd_frames_close (&frames); // anything else is not for us
    }
    snprintf (self->error, sizeof self->error, "interrupted");
    return CLI_REPLAY_ERROR;
}

uint64_t
cli_replay_next_seq (cli_replay_t *self)
{
    return self->next_seq;
}

uint64_t
cli_replay_end_seq (cli_replay_t *self)
{
    return self->end_seq;
}

uint64_t
cli_replay_first_seq (cli_replay_t *self)
{
    return self->first_seq;
}

const char *
cli_replay_error (cli_replay_t *self)
{
    return self->error;
}

//  Read exactly digits decimal digits at *cursor; -1 if they are not there.
static int
s_digits (const char **cursor, int digits)
{
    int value = 0;
    for (int index = 0; index < digits; index++) {
        char c = (*cursor)[index];
        if (!isdigit ((unsigned char) c))
            return -1;
        value = value * 10 + (c - '0');
    }
    *cursor += digits;
    return value;
}

//  RFC 3339: YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)
static int
s_parse_rfc3339 (const char *text, uint64_t *time_us)
{
    const char *cursor = text;
    int year = s_digits (&cursor, 4);
    if (year < 1970 || *cursor++ != '-')
        return -1;
    int month = s_digits (&cursor, 2);
    if (month < 1 || month > 12 || *cursor++ != '-')
        return -1;
    int day = s_digits (&cursor, 2);
    if (day < 1 || day > 31 || (*cursor != 'T' && *cursor != 't' && *cursor != ' '))
        return -1;
    cursor++;
    int hour = s_digits (&cursor, 2);
    if (hour < 0 || hour > 23 || *cursor++ != ':')
        return -1;
    int minute = s_digits (&cursor, 2);
    if (minute < 0 || minute > 59 || *cursor++ != ':')
        return -1;
    int second = s_digits (&cursor, 2);
    if (second < 0 || second > 60) // 60: a leap second
        return -1;
    uint64_t micros = 0;
    if (*cursor == '.') {
        cursor++;
        if (!isdigit ((unsigned char) *cursor))
            return -1;
        uint64_t scale = 100000;
        while (isdigit ((unsigned char) *cursor)) {
            micros += (uint64_t) (*cursor - '0') * scale;
            scale /= 10;
            cursor++;
        }
    }
    int64_t offset = 0; // seconds east of UTC
    if (*cursor == 'Z' || *cursor == 'z')
        cursor++;
    else if (*cursor == '+' || *cursor == '-') {
        int sign = *cursor++ == '-' ? -1 : 1;
        int offset_hours = s_digits (&cursor, 2);
        if (offset_hours < 0 || offset_hours > 23 || *cursor++ != ':')
            return -1;
        int offset_minutes = s_digits (&cursor, 2);
        if (offset_minutes < 0 || offset_minutes > 59)
            return -1;
        offset = sign * (offset_hours * 3600 + offset_minutes * 60);
    } else
        return -1;
    if (*cursor)
        return -1;
    struct tm tm = {0};
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    tm.tm_sec = second;
    time_t seconds = timegm (&tm);
    //  timegm normalises 31 February into March: refuse dates that moved
    if (seconds == (time_t) -1 || tm.tm_mday != day || tm.tm_mon != month - 1)
        return -1;
    int64_t utc = (int64_t) seconds - offset;
    if (utc < 0)
        return -1;
    *time_us = (uint64_t) utc * 1000000 + micros;
    return 0;
}

int
cli_parse_from (const char *text, uint64_t *seq, uint64_t *time_us)
{
    *seq = 0;
    *time_us = 0;
    if (!text || !*text)
        return -1;
    //  A seq: digits only
    const char *cursor = text;
    while (isdigit ((unsigned char) *cursor))
        cursor++;
    if (*cursor == 0) {
        errno = 0;
        char *end;
        unsigned long long value = strtoull (text, &end, 10);
        if (errno || value == 0)
            return -1;
        *seq = value;
        return 0;
    }
    //  Relative: -DURATION ago ("-10m", "-1h", "-2d")
    if (text[0] == '-') {
        int64_t ago_ms;
        size_t length = strlen (text + 1);
        if (length > 1 && text[length] == 'd' && isdigit ((unsigned char) text[length - 1])) {
            char *end;
            errno = 0;
            double days = strtod (text + 1, &end);
            if (errno || end != text + length || days < 0 || days > 100000)
                return -1;
            ago_ms = (int64_t) (days * 86400000.0);
        } else if (hd_parse_duration_ms (text + 1, &ago_ms))
            return -1;
        struct timespec now;
        clock_gettime (CLOCK_REALTIME, &now);
        int64_t now_us = (int64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
        int64_t from_us = now_us - ago_ms * 1000;
        *time_us = from_us > 0 ? (uint64_t) from_us : 1;
        return 0;
    }
    return s_parse_rfc3339 (text, time_us);
}
