/*  dedup_store — processed event identities in LMDB.

    Two databases in one environment:
    - "ids":     key → processed time (int64 ms, native order)
    - "by_time": big-endian time (8 bytes) . key → "" — the same entries in
                 time order, so a purge deletes from the front and stops at
                 the first live one.
    A key is source '\0' id. Keys too long for LMDB (511 bytes with the
    time prefix) are stored as '\0' '\0' SHA-1 (source '\0' id) instead: a
    plain key never holds two NULs, so the forms cannot meet.
*/
#include "dedup_store.h"

#include <czmq.h>
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TIME_SIZE 8
//  Longest plain key; longer ones are hashed (LMDB's limit is 511 bytes
//  for the time-prefixed key)
#define S_PLAIN_MAX  400
#define S_DIGEST_MAX 20
//  Entries per transaction when purging everything
#define S_FULL_PURGE_BATCH 10000

struct _hd_dedup_store_t {
    MDB_env *env;
    MDB_dbi ids;
    MDB_dbi by_time;
    char *path;
    int64_t ttl_ms;
    size_t map_size;
    pthread_mutex_t lock; // guards what follows
    uint64_t inserts_since_purge;
    uint64_t purged;
    char error[512];
};

typedef struct {
    size_t size;
    unsigned char data[S_TIME_SIZE + S_PLAIN_MAX]; // room for the time prefix
} s_key_t;

static void
s_fail (hd_dedup_store_t *self, const char *what, int rc)
{
    pthread_mutex_lock (&self->lock);
    if (rc == MDB_MAP_FULL)
        snprintf (self->error, sizeof self->error,
                  "dedup store %s is full (map size %zu %s): %s; raise its map size or lower "
                  "the TTL",
                  self->path, self->map_size >> (self->map_size >> 20 ? 20 : 10),
                  self->map_size >> 20 ? "MiB" : "KiB", what);
    else
        snprintf (self->error, sizeof self->error, "dedup store %s: %s: %s", self->path, what,
                  mdb_strerror (rc));
    pthread_mutex_unlock (&self->lock);
}

//  key = source '\0' id, or the hashed form for long ones
static int
s_key_build (s_key_t *key, const char *source, const char *id)
{
    size_t source_size = strlen (source);
    size_t id_size = strlen (id);
    size_t size = source_size + 1 + id_size;
    if (size <= S_PLAIN_MAX) {
        memcpy (key->data, source, source_size);
        key->data[source_size] = 0;
        memcpy (key->data + source_size + 1, id, id_size);
        key->size = size;
        return 0;
    }
    zdigest_t *digest = zdigest_new ();
    if (!digest)
        return -1;
    zdigest_update (digest, (const byte *) source, source_size + 1); // with its NUL
    zdigest_update (digest, (const byte *) id, id_size);
    size_t digest_size = zdigest_size (digest);
    if (digest_size > S_DIGEST_MAX)
        digest_size = S_DIGEST_MAX;
    key->data[0] = key->data[1] = 0;
    memcpy (key->data + 2, zdigest_data (digest), digest_size);
    key->size = 2 + digest_size;
    zdigest_destroy (&digest);
    return 0;
}

//  time_key = big-endian time . key
static void
s_time_key_build (s_key_t *time_key, int64_t time_ms, const unsigned char *key, size_t key_size)
{
    uint64_t value = time_ms < 0 ? 0 : (uint64_t) time_ms;
    for (int index = S_TIME_SIZE - 1; index >= 0; index--) {
        time_key->data[index] = (unsigned char) (value & 0xFF);
        value >>= 8;
    }
    memcpy (time_key->data + S_TIME_SIZE, key, key_size);
    time_key->size = S_TIME_SIZE + key_size;
}

static int64_t
s_time_key_time (const MDB_val *time_key)
{
    const unsigned char *data = time_key->mv_data;
    uint64_t value = 0;
    for (int index = 0; index < S_TIME_SIZE; index++)
        value = (value << 8) | data[index];
    return (int64_t) value;
}

//  Another process grew the map beyond ours: adopt its size and retry.
//  (Allowed only with no transaction active in this process: the worker
//  uses its store from one thread.)
static int
s_txn_begin (hd_dedup_store_t *self, unsigned int flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin (self->env, NULL, flags, txn);
    if (rc == MDB_MAP_RESIZED && mdb_env_set_mapsize (self->env, 0) == 0) {
        MDB_envinfo info;
        if (mdb_env_info (self->env, &info) == 0)
            self->map_size = info.me_mapsize;
        rc = mdb_txn_begin (self->env, NULL, flags, txn);
    }
    return rc;
}

static bool
s_is_expired (hd_dedup_store_t *self, int64_t time_ms, int64_t now_ms)
{
    return self->ttl_ms > 0 && now_ms - time_ms >= self->ttl_ms;
}

hd_dedup_store_t *
hd_dedup_store_open (const char *path, int64_t ttl_ms, size_t map_size, char *error,
                     size_t error_size)
{
    char scratch[1];
    if (!error) {
        error = scratch;
        error_size = sizeof scratch;
    }
    if (error_size)
        *error = 0;
    if (!path || !*path) {
        snprintf (error, error_size, "dedup store: no path");
        return NULL;
    }
    hd_dedup_store_t *self = calloc (1, sizeof *self);
    if (!self || !(self->path = strdup (path))) {
        free (self);
        snprintf (error, error_size, "dedup store %s: out of memory", path);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->ttl_ms = ttl_ms > 0 ? ttl_ms : 0;
    //  map_size 0: an existing store keeps the size it has
    char *data_file = zsys_sprintf ("%s/data.mdb", path);
    bool exists = data_file && zsys_file_exists (data_file);
    zstr_free (&data_file);
    self->map_size = map_size ? map_size : exists ? 0 : HD_DEDUP_STORE_MAP_SIZE_DEFAULT;

    const char *what = "cannot create the directory";
    int rc = 0;
    MDB_txn *txn = NULL;
    if (zsys_dir_create ("%s", path)) {
        snprintf (error, error_size, "dedup store %s: %s: %s", path, what, strerror (errno));
        hd_dedup_store_destroy (&self);
        return NULL;
    }
    if ((rc = mdb_env_create (&self->env))) {
        what = "cannot create the environment";
        goto failed;
    }
    mdb_env_set_maxdbs (self->env, 2);
    if (self->map_size && (rc = mdb_env_set_mapsize (self->env, self->map_size))) {
        what = "cannot set the map size";
        goto failed;
    }
    //  NOTLS: read transactions are not tied to the thread that began them
    if ((rc = mdb_env_open (self->env, path, MDB_NOTLS, 0644))) {
        what = "cannot open";
        goto failed;
    }
    //  Free the reader slots of processes that died (kill -9) holding them
    int dead = 0;
    mdb_reader_check (self->env, &dead);
    if ((rc = s_txn_begin (self, 0, &txn))) {
        what = "cannot begin a transaction";
        goto failed;
    }
    if ((rc = mdb_dbi_open (txn, "ids", MDB_CREATE, &self->ids)) ||
        (rc = mdb_dbi_open (txn, "by_time", MDB_CREATE, &self->by_time))) {
        what = "cannot open its databases";
        mdb_txn_abort (txn);
        goto failed;
    }
    if ((rc = mdb_txn_commit (txn))) {
        what = "cannot commit";
        goto failed;
    }
    //  An existing, larger store keeps its size
    MDB_envinfo info;
    if (mdb_env_info (self->env, &info) == 0)
        self->map_size = info.me_mapsize;
    return self;

failed:
    snprintf (error, error_size, "dedup store %s: %s: %s", path, what, mdb_strerror (rc));
    hd_dedup_store_destroy (&self);
    return NULL;
}

void
hd_dedup_store_destroy (hd_dedup_store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    hd_dedup_store_t *self = *self_p;
    if (self->env)
        mdb_env_close (self->env); // also closes the databases
    pthread_mutex_destroy (&self->lock);
    free (self->path);
    free (self);
    *self_p = NULL;
}

int
hd_dedup_store_contains (hd_dedup_store_t *self, const char *source, const char *id, int64_t now_ms)
{
    s_key_t key;
    if (s_key_build (&key, source, id)) {
        s_fail (self, "lookup", ENOMEM);
        return -1;
    }
    MDB_txn *txn;
    int rc = s_txn_begin (self, MDB_RDONLY, &txn);
    if (rc) {
        s_fail (self, "cannot begin a read transaction", rc);
        return -1;
    }
    MDB_val key_value = {key.size, key.data};
    MDB_val time_value;
    rc = mdb_get (txn, self->ids, &key_value, &time_value);
    int64_t time_ms = 0;
    if (rc == 0 && time_value.mv_size == sizeof time_ms)
        memcpy (&time_ms, time_value.mv_data, sizeof time_ms);
    mdb_txn_abort (txn);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc) {
        s_fail (self, "lookup", rc);
        return -1;
    }
    return s_is_expired (self, time_ms, now_ms) ? 0 : 1;
}

//  One write transaction for all pairs. Returns 0 or an LMDB error code.
static int
s_insert_txn (hd_dedup_store_t *self, const char *const *sources, const char *const *ids,
              size_t count, int64_t now_ms, const char **what)
{
    MDB_txn *txn;
    *what = "cannot begin a transaction";
    int rc = s_txn_begin (self, 0, &txn);
    if (rc)
        return rc;
    *what = "insert";
    for (size_t index = 0; index < count; index++) {
        s_key_t key, time_key;
        if (s_key_build (&key, sources[index], ids[index])) {
            rc = ENOMEM;
            break;
        }
        MDB_val key_value = {key.size, key.data};
        MDB_val old_value;
        rc = mdb_get (txn, self->ids, &key_value, &old_value);
        if (rc == 0 && old_value.mv_size == sizeof (int64_t)) {
            //  Refresh: the entry moves to its new place in time order
            int64_t old_time;
            memcpy (&old_time, old_value.mv_data, sizeof old_time);
            s_time_key_build (&time_key, old_time, key.data, key.size);
            MDB_val old_time_value = {time_key.size, time_key.data};
            rc = mdb_del (txn, self->by_time, &old_time_value, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        } else if (rc == MDB_NOTFOUND)
            rc = 0;
        if (rc)
            break;
        MDB_val time_value = {sizeof now_ms, &now_ms};
        if ((rc = mdb_put (txn, self->ids, &key_value, &time_value, 0)))
            break;
        s_time_key_build (&time_key, now_ms, key.data, key.size);
        MDB_val time_key_value = {time_key.size, time_key.data};
        MDB_val empty = {0, NULL};
        if ((rc = mdb_put (txn, self->by_time, &time_key_value, &empty, 0)))
            break;
    }
    if (rc) {
        mdb_txn_abort (txn);
        return rc;
    }
    *what = "commit";
    return mdb_txn_commit (txn); // frees txn whatever it returns
}

int
hd_dedup_store_insert_many (hd_dedup_store_t *self, const char *const *sources,
                            const char *const *ids, size_t count, int64_t now_ms)
{
    if (count == 0)
        return 0;
    const char *what = "";
    int rc = s_insert_txn (self, sources, ids, count, now_ms, &what);
    if (rc == MDB_MAP_FULL && self->ttl_ms > 0) {
        //  Make room from what has expired, then try once more
        if (hd_dedup_store_purge (self, now_ms, 0) > 0)
            rc = s_insert_txn (self, sources, ids, count, now_ms, &what);
    }
    if (rc) {
        s_fail (self, what, rc);
        return rc == MDB_MAP_FULL ? HD_DEDUP_STORE_FULL : -1;
    }
    pthread_mutex_lock (&self->lock);
    self->inserts_since_purge += count;
    bool purge_due = self->inserts_since_purge >= HD_DEDUP_STORE_PURGE_EVERY;
    if (purge_due)
        self->inserts_since_purge = 0;
    pthread_mutex_unlock (&self->lock);
    if (purge_due && self->ttl_ms > 0)
        hd_dedup_store_purge (self, now_ms, HD_DEDUP_STORE_PURGE_BATCH); // error kept in error
    return 0;
}

int
hd_dedup_store_insert (hd_dedup_store_t *self, const char *source, const char *id, int64_t now_ms)
{
    return hd_dedup_store_insert_many (self, &source, &id, 1, now_ms);
}

//  Delete up to batch expired entries, oldest first, in one transaction.
//  Returns how many, -1 on error, HD_DEDUP_STORE_FULL when the map has no
//  room for the copies of the pages the deletes touch.
static int64_t
s_purge_batch (hd_dedup_store_t *self, int64_t now_ms, size_t batch)
{
    MDB_txn *txn;
    int rc = s_txn_begin (self, 0, &txn);
    if (rc) {
        s_fail (self, "purge: cannot begin a transaction", rc);
        return -1;
    }
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->by_time, &cursor))) {
        mdb_txn_abort (txn);
        s_fail (self, "purge", rc);
        return -1;
    }
    int64_t deleted = 0;
    MDB_val time_key, empty;
    //  Deleting from the front: the next candidate is always the first entry
    while ((size_t) deleted < batch &&
           (rc = mdb_cursor_get (cursor, &time_key, &empty, MDB_FIRST)) == 0) {
        if (time_key.mv_size < S_TIME_SIZE) {
            rc = MDB_CORRUPTED;
            break;
        }
        int64_t time_ms = s_time_key_time (&time_key);
        if (!s_is_expired (self, time_ms, now_ms))
            break;
        MDB_val key = {time_key.mv_size - S_TIME_SIZE, (char *) time_key.mv_data + S_TIME_SIZE};
        MDB_val time_value;
        rc = mdb_get (txn, self->ids, &key, &time_value);
        int64_t stored = -1;
        if (rc == 0 && time_value.mv_size == sizeof stored)
            memcpy (&stored, time_value.mv_data, sizeof stored);
        //  An index entry left behind by a refresh must not take the live entry with it
        if (rc == 0 && (stored < 0 ? 0 : stored) == time_ms)
            rc = mdb_del (txn, self->ids, &key, NULL);
        else if (rc == 0 || rc == MDB_NOTFOUND)
            rc = 0;
        if (rc || (rc = mdb_cursor_del (cursor, 0)))
            break;
        deleted++;
    }
    mdb_cursor_close (cursor);
    if (rc && rc != MDB_NOTFOUND) {
        mdb_txn_abort (txn);
        s_fail (self, "purge", rc);
        return rc == MDB_MAP_FULL ? HD_DEDUP_STORE_FULL : -1;
    }
    if (deleted == 0) {
        mdb_txn_abort (txn);
        return 0;
    }
    if ((rc = mdb_txn_commit (txn))) {
        s_fail (self, "purge: commit", rc);
        return rc == MDB_MAP_FULL ? HD_DEDUP_STORE_FULL : -1;
    }
    pthread_mutex_lock (&self->lock);
    self->purged += (uint64_t) deleted;
    pthread_mutex_unlock (&self->lock);
    return deleted;
}

int64_t
hd_dedup_store_purge (hd_dedup_store_t *self, int64_t now_ms, size_t limit)
{
    if (self->ttl_ms <= 0)
        return 0;
    int64_t total = 0;
    size_t most = limit == 0 ? S_FULL_PURGE_BATCH : HD_DEDUP_STORE_PURGE_BATCH;
    while (limit == 0 || (size_t) total < limit) {
        size_t batch = limit == 0 ? most : limit - (size_t) total;
        if (batch > most)
            batch = most;
        int64_t deleted = s_purge_batch (self, now_ms, batch);
        if (deleted == HD_DEDUP_STORE_FULL && most > 1) {
            //  A full map has room for few page copies: delete fewer at a
            //  time; each commit frees pages for the next one
            most = most / 10 ? most / 10 : 1;
            continue;
        }
        if (deleted < 0)
            return total ? total : -1;
        total += deleted;
        if ((size_t) deleted < batch)
            break; // reached a live entry or the end
    }
    return total;
}

size_t
hd_dedup_store_size (hd_dedup_store_t *self)
{
    MDB_txn *txn;
    if (s_txn_begin (self, MDB_RDONLY, &txn))
        return 0;
    MDB_stat stat;
    size_t size = mdb_stat (txn, self->ids, &stat) == 0 ? stat.ms_entries : 0;
    mdb_txn_abort (txn);
    return size;
}

uint64_t
hd_dedup_store_purged (hd_dedup_store_t *self)
{
    pthread_mutex_lock (&self->lock);
    uint64_t purged = self->purged;
    pthread_mutex_unlock (&self->lock);
    return purged;
}

size_t
hd_dedup_store_map_size (hd_dedup_store_t *self)
{
    return self->map_size;
}

const char *
hd_dedup_store_path (hd_dedup_store_t *self)
{
    return self->path;
}

void
hd_dedup_store_error (hd_dedup_store_t *self, char *buffer, size_t size)
{
    if (!size)
        return;
    pthread_mutex_lock (&self->lock);
    snprintf (buffer, size, "%s", self->error);
    pthread_mutex_unlock (&self->lock);
}

int
hd_dedup_store_each (hd_dedup_store_t *self, hd_dedup_store_fn *fn, void *arg)
{
    MDB_txn *txn;
    int rc = s_txn_begin (self, MDB_RDONLY, &txn);
    if (rc) {
        s_fail (self, "cannot begin a read transaction", rc);
        return -1;
    }
    MDB_cursor *cursor;
    if ((rc = mdb_cursor_open (txn, self->by_time, &cursor))) {
        mdb_txn_abort (txn);
        s_fail (self, "scan", rc);
        return -1;
    }
    MDB_val time_key, empty;
    MDB_cursor_op op = MDB_FIRST;
    while ((rc = mdb_cursor_get (cursor, &time_key, &empty, op)) == 0) {
        op = MDB_NEXT;
        if (time_key.mv_size < S_TIME_SIZE + 1)
            continue;
        const char *key = (const char *) time_key.mv_data + S_TIME_SIZE;
        size_t key_size = time_key.mv_size - S_TIME_SIZE;
        char text[2 * S_PLAIN_MAX + 2];
        const char *source = "";
        const char *id = text;
        if (key_size >= 2 && key[0] == 0 && key[1] == 0) {
            //  Hashed: only the digest is known
            size_t length = 0;
            text[length++] = '#';
            for (size_t index = 2; index < key_size && length + 3 < sizeof text; index++)
                length += (size_t) snprintf (text + length, sizeof text - length, "%02x",
                                             (unsigned char) key[index]);
            text[length] = 0;
        } else {
            memcpy (text, key, key_size);
            text[key_size] = 0;
            source = text;
            id = text + strlen (text) + 1;
            if (id > text + key_size)
                id = text + key_size; // no NUL: not one of ours
        }
        fn (source, id, s_time_key_time (&time_key), arg);
    }
    mdb_cursor_close (cursor);
    mdb_txn_abort (txn);
    if (rc != MDB_NOTFOUND) {
        s_fail (self, "scan", rc);
        return -1;
    }
    return 0;
}
