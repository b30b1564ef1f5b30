/*  session — one registered peer. */
#include "session.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

int
hd_session_key (const void *routing_id, size_t routing_id_size, char *key)
{
    static const char hex[] = "0123456789abcdef";
    if (routing_id_size == 0 || routing_id_size > HD_ROUTING_ID_MAX)
        return -1;
    const uint8_t *bytes = routing_id;
    for (size_t index = 0; index < routing_id_size; index++) {
        key[2 * index] = hex[bytes[index] >> 4];
        key[2 * index + 1] = hex[bytes[index] & 15];
    }
    key[2 * routing_id_size] = 0;
    return 0;
}

hd_session_t *
hd_session_new (hd_session_kind_t kind, const void *routing_id, size_t routing_id_size,
                uint64_t number, int fd, int64_t now)
{
    hd_session_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    if (hd_session_key (routing_id, routing_id_size, self->key) != 0) {
        free (self);
        return NULL;
    }
    self->kind = kind;
    memcpy (self->routing_id, routing_id, routing_id_size);
    self->routing_id_size = routing_id_size;
    self->number = number;
    self->fd = fd;
    self->last_heard = now;
    return self;
}

void
hd_session_destroy (hd_session_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free (*self_p);
    *self_p = NULL;
}

void
hd_session_set_name (hd_session_t *self, const char *name)
{
    snprintf (self->name, sizeof self->name, "%s", name ? name : "");
}
