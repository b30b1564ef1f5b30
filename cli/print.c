/*  print — one event as a text line or a JSON object, shared by herald sub
    (live and replayed events) and herald dlq show.
*/
#include "cli.h"

#include <string.h>
#include <time.h>

#define S_HEX_MAX 64 // binary payloads up to this size are shown in hex

bool
cli_printable (const char *data, size_t size)
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

void
cli_event_print_line (FILE *out, const hd_event_t *event)
{
    const char *payload = hd_event_payload (event);
    size_t size = hd_event_payload_size (event);
    fprintf (out, "seq=%llu id=%s type=%s", (unsigned long long) hd_event_seq (event),
             hd_event_id (event), hd_event_type (event));
    if (size == 0 || !payload) {
        fputc ('\n', out);
        return;
    }
    fputc (' ', out);
    if (cli_printable (payload, size)) {
        while (size > 0 && (payload[size - 1] == '\n' || payload[size - 1] == '\r'))
            size--;
        fwrite (payload, 1, size, out);
    } else if (size <= S_HEX_MAX) {
        fputs ("hex:", out);
        for (size_t index = 0; index < size; index++)
            fprintf (out, "%02x", (unsigned char) payload[index]);
    } else
        fprintf (out, "<%zu bytes binary>", size);
    fputc ('\n', out);
}

static void
s_json_field (FILE *out, const char *name, const char *value)
{
    fprintf (out, ",\"%s\":", name);
    cli_json_cstring (out, value);
}

void
cli_event_print_json (FILE *out, const hd_event_t *event)
{
    fprintf (out, "{\"seq\":%llu", (unsigned long long) hd_event_seq (event));
    s_json_field (out, "id", hd_event_id (event));
    s_json_field (out, "source", hd_event_source (event));
    s_json_field (out, "type", hd_event_type (event));
    s_json_field (out, "subject", hd_event_subject (event));
    s_json_field (out, "key", hd_event_partition_key (event));
    s_json_field (out, "correlation_id", hd_event_correlation_id (event));
    s_json_field (out, "causation_id", hd_event_causation_id (event));
    s_json_field (out, "content_type", hd_event_content_type (event));
    s_json_field (out, "schema_version", hd_event_schema_version (event));
    s_json_field (out, "traceparent", hd_event_traceparent (event));
    fprintf (out, ",\"time_us\":%llu,\"recorded_time_us\":%llu",
             (unsigned long long) hd_event_time_us (event),
             (unsigned long long) hd_event_recorded_time_us (event));
    fputs (",\"attributes\":{", out);
    size_t attributes = hd_event_attribute_count (event);
    for (size_t index = 0; index < attributes; index++) {
        if (index > 0)
            fputc (',', out);
        cli_json_cstring (out, hd_event_attribute_key (event, index));
        fputc (':', out);
        cli_json_cstring (out, hd_event_attribute_value (event, index));
    }
    fputc ('}', out);
    const char *payload = hd_event_payload (event);
    size_t size = hd_event_payload_size (event);
    if (!payload)
        size = 0;
    if (cli_utf8_valid (payload, size)) {
        fputs (",\"payload\":", out);
        cli_json_string (out, payload, size);
    } else {
        fputs (",\"payload_b64\":\"", out);
        cli_base64 (out, payload, size);
        fputc ('"', out);
    }
    fputc ('}', out);
}

const char *
cli_time_text (uint64_t time_us, char *buffer, size_t size)
{
    if (time_us == 0) {
        snprintf (buffer, size, "-");
        return buffer;
    }
    time_t seconds = (time_t) (time_us / 1000000);
    struct tm tm;
    if (!gmtime_r (&seconds, &tm)) {
        snprintf (buffer, size, "%llu", (unsigned long long) time_us);
        return buffer;
    }
    snprintf (buffer, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1,
              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned) (time_us % 1000000 / 1000));
    return buffer;
}
