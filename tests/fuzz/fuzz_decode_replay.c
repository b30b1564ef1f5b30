/*  fuzz_decode_replay — runs the fuzz target over seeds (a full Event with
    attributes and an unknown field, a bare one, PUBLISHES, DELIVERS and
    FanoutBatch bodies) and 300 000 deterministic mutations of them, plus
    every file named on the command line (findings of a libFuzzer run).
    Exit 0 when nothing aborted. With --write-seeds DIR it only writes the
    seeds there, as a starting corpus for libFuzzer. */
#include "fuzz_decode.h"

#include "codec.h"
#include "event.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SEEDS_MAX 8
#define S_MUTANTS   300000

typedef struct {
    uint8_t *data;
    size_t size;
} s_seed_t;

static uint64_t
s_next (uint64_t *state)
{
    //  xorshift64*: the same mutations on every machine
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1DULL;
}

static s_seed_t
s_event_seed (bool full)
{
    hd_event_t *event = hd_event_new ("orders.placed");
    hd_event_set_id (event, "order-42");
    hd_event_set_source (event, "shop");
    if (full) {
        hd_event_set_subject (event, "customer/7 \xc3\xa9");
        hd_event_set_partition_key (event, "customer-7");
        hd_event_set_traceparent (event, "00-abc-def-01");
        hd_event_set_attribute (event, "region", "eu");
        hd_event_set_attribute (event, "tier", "");
        hd_event_set_time_us (event, 1700000000000000ULL);
        hd_event_set_seq (event, 300);
    }
    s_seed_t seed;
    uint8_t *packed = hd_event_encode (event, &seed.size);
    hd_event_destroy (&event);
    //  A field this version does not know: number 30, bytes "xyz"
    const uint8_t unknown[] = {0xF2, 0x01, 0x03, 'x', 'y', 'z'};
    seed.data = malloc (seed.size + sizeof unknown);
    memcpy (seed.data, packed, seed.size);
    if (full) {
        memcpy (seed.data + seed.size, unknown, sizeof unknown);
        seed.size += sizeof unknown;
    }
    free (packed);
    return seed;
}

//  A batch body of three items around the event, of the given kind.
static s_seed_t
s_batch_seed (const s_seed_t *event, int kind)
{
    s_seed_t seed;
    seed.data = malloc (3 * (event->size + 64 + HD_DELIVERY_OVERHEAD));
    seed.size = 0;
    const char payload[] = "payload bytes";
    for (int index = 0; index < 3; index++) {
        uint8_t *out = seed.data + seed.size;
        size_t payload_size = index == 1 ? 0 : sizeof payload;
        if (kind == 0) {
            uint8_t *event_at;
            seed.size += hd_encode_publish_item (out, (uint64_t) index + 1, event->size, payload,
                                                 payload_size, &event_at);
            memcpy (event_at, event->data, event->size);
        } else if (kind == 1)
            seed.size += hd_encode_delivery (out, (uint64_t) index + 7, 1, 30000, event->data,
                                             event->size, payload, payload_size);
        else
            seed.size += hd_encode_fanout_item (out, 5, (uint64_t) index + 1, event->data,
                                                event->size, payload, payload_size);
    }
    return seed;
}

static void
s_mutate (const s_seed_t *seed, const s_seed_t *other, uint64_t *state, uint8_t *out, size_t *size)
{
    size_t length = seed->size;
    memcpy (out, seed->data, length);
    int edits = 1 + (int) (s_next (state) % 4);
    for (int edit = 0; edit < edits; edit++) {
        uint64_t roll = s_next (state);
        size_t at = length ? (size_t) (s_next (state) % length) : 0;
        switch (roll % 5) {
            case 0: // flip a byte
                if (length)
                    out[at] ^= (uint8_t) (1 + s_next (state) % 255);
                break;
            case 1: // a boundary value
                if (length)
                    out[at] = (uint8_t[]){0x00, 0x7F, 0x80, 0xFF, 0x0A, 0x12}[s_next (state) % 6];
                break;
            case 2: // cut
                length = at;
                break;
            case 3: // drop a byte
                if (length) {
                    memmove (out + at, out + at + 1, length - at - 1);
                    length--;
                }
                break;
            default: { // splice in part of another seed
                size_t take = other->size ? (size_t) (s_next (state) % other->size) : 0;
                if (length + take <= 4096) {
                    memmove (out + at + take, out + at, length - at);
                    memcpy (out + at, other->data, take);
                    length += take;
                }
            }
        }
    }
    *size = length;
}

static int
s_replay_file (const char *path)
{
    FILE *file = fopen (path, "rb");
    if (!file) {
        perror (path);
        return -1;
    }
    static uint8_t data[1 << 20];
    size_t size = fread (data, 1, sizeof data, file);
    fclose (file);
    LLVMFuzzerTestOneInput (data, size);
    return 0;
}

static int
s_write_seeds (const char *directory, const s_seed_t *seeds, size_t count)
{
    for (size_t index = 0; index < count; index++) {
        char path[4096];
        snprintf (path, sizeof path, "%s/seed-%zu", directory, index);
        FILE *file = fopen (path, "wb");
        if (!file || fwrite (seeds[index].data, 1, seeds[index].size, file) != seeds[index].size) {
            perror (path);
            if (file)
                fclose (file);
            return 1;
        }
        fclose (file);
    }
    return 0;
}

int
main (int argc, char *argv[])
{
    s_seed_t seeds[S_SEEDS_MAX];
    size_t count = 0;
    seeds[count++] = s_event_seed (true);
    seeds[count++] = s_event_seed (false);
    for (int kind = 0; kind < 3; kind++)
        seeds[count++] = s_batch_seed (&seeds[0], kind);
    seeds[count++] = (s_seed_t){calloc (1, 1), 0};
    int rc = 0;
    if (argc == 3 && strcmp (argv[1], "--write-seeds") == 0)
        rc = s_write_seeds (argv[2], seeds, count) ? 1 : 2;
    for (int index = 1; index < argc && rc == 0; index++)
        if (s_replay_file (argv[index]))
            rc = 1;
    if (rc) {
        for (size_t index = 0; index < count; index++)
            free (seeds[index].data);
        return rc == 2 ? 0 : rc;
    }
    uint8_t *mutant = malloc (8192);
    uint64_t state = 0x9E3779B97F4A7C15ULL;
    for (size_t index = 0; index < count; index++)
        LLVMFuzzerTestOneInput (seeds[index].data, seeds[index].size);
    int events = 0;
    for (int round = 0; round < S_MUTANTS; round++) {
        const s_seed_t *seed = &seeds[s_next (&state) % count];
        const s_seed_t *other = &seeds[s_next (&state) % count];
        size_t size;
        s_mutate (seed, other, &state, mutant, &size);
        LLVMFuzzerTestOneInput (mutant, size);
        //  How many mutants were still events: the deep paths got exercised
        hd_event_t *event = hd_event_decode (mutant, size, NULL);
        events += event != NULL;
        hd_event_destroy (&event);
    }
    printf ("fuzz_decode_replay: %zu seeds and %d mutations (%d of them still Events) decoded "
            "without a finding\n",
            count, S_MUTANTS, events);
    free (mutant);
    for (size_t index = 0; index < count; index++)
        free (seeds[index].data);
    return 0;
}
