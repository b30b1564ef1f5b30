/*  json — JSON string escaping, UTF-8 validation and base64 for the CLI. */
#include "cli.h"

#include <string.h>

//  Length of the well-formed UTF-8 sequence at data (1-4), or 0 if the
//  bytes there are not one (RFC 3629: no overlongs, no surrogates, <= U+10FFFF).
static size_t
s_utf8_sequence (const unsigned char *data, size_t size)
{
    unsigned char lead = data[0];
    if (lead < 0x80)
        return 1;
    size_t length;
    unsigned char low = 0x80, high = 0xBF; // allowed range of the second byte
    if (lead >= 0xC2 && lead <= 0xDF)
        length = 2;
    else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0)
            low = 0xA0;
        else if (lead == 0xED)
            high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0)
            low = 0x90;
        else if (lead == 0xF4)
            high = 0x8F;
    } else
        return 0;
    if (size < length)
        return 0;
    if (data[1] < low || data[1] > high)
        return 0;
    for (size_t index = 2; index < length; index++)
        if (data[index] < 0x80 || data[index] > 0xBF)
            return 0;
    return length;
}

bool
cli_utf8_valid (const void *data, size_t size)
{
    const unsigned char *cursor = data;
    while (size > 0) {
        size_t length = s_utf8_sequence (cursor, size);
        if (length == 0)
            return false;
        cursor += length;
        size -= length;
    }
    return true;
}

void
cli_json_string (FILE *out, const char *data, size_t size)
{
    const unsigned char *cursor = (const unsigned char *) data;
    fputc ('"', out);
    while (size > 0) {
        unsigned char byte = *cursor;
        size_t length = 1;
        if (byte == '"')
            fputs ("\\\"", out);
        else if (byte == '\\')
            fputs ("\\\\", out);
        else if (byte == '\n')
            fputs ("\\n", out);
        else if (byte == '\r')
            fputs ("\\r", out);
        else if (byte == '\t')
            fputs ("\\t", out);
        else if (byte < 0x20 || byte == 0x7F)
            fprintf (out, "\\u%04x", byte);
        else if (byte < 0x80)
            fputc (byte, out);
        else {
            length = s_utf8_sequence (cursor, size);
            if (length == 0) {
                fputs ("\\ufffd", out);
                length = 1;
            } else
                fwrite (cursor, 1, length, out);
        }
        cursor += length;
        size -= length;
    }
    fputc ('"', out);
}

void
cli_json_cstring (FILE *out, const char *text)
{
    cli_json_string (out, text ? text : "", text ? strlen (text) : 0);
}

void
cli_base64 (FILE *out, const void *data, size_t size)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *cursor = data;
    char quad[4];
    while (size >= 3) {
        quad[0] = alphabet[cursor[0] >> 2];
        quad[1] = alphabet[((cursor[0] & 0x03) << 4) | (cursor[1] >> 4)];
        quad[2] = alphabet[((cursor[1] & 0x0F) << 2) | (cursor[2] >> 6)];
        quad[3] = alphabet[cursor[2] & 0x3F];
        fwrite (quad, 1, 4, out);
        cursor += 3;
        size -= 3;
    }
    if (size > 0) {
        quad[0] = alphabet[cursor[0] >> 2];
        if (size == 1) {
            quad[1] = alphabet[(cursor[0] & 0x03) << 4];
            quad[2] = '=';
        } else {
            quad[1] = alphabet[((cursor[0] & 0x03) << 4) | (cursor[1] >> 4)];
            quad[2] = alphabet[(cursor[1] & 0x0F) << 2];
        }
        quad[3] = '=';
        fwrite (quad, 1, 4, out);
    }
}
