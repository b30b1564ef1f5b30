/*  broker — the Herald broker: one zloop thread owning every socket and all
    state (sessions, pools, store, dedup window, fan-out).
*/
#ifndef HD_BROKER_H_INCLUDED
#define HD_BROKER_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include "log.h"
#include "pool.h"

typedef struct {
    const char *router_endpoint;
    const char *xpub_endpoint;
    int64_t heartbeat_ms;
    int64_t liveness;
    int64_t dedup_window_ms;
    int64_t dedup_max;
    bool dedup_reserve; // dedup index sized for dedup_max and touched at start
    int64_t max_payload;
    int64_t max_envelope;
    int64_t max_topic;
    int64_t max_id;
    int64_t max_pools;
    int64_t max_sessions;
    int64_t max_credit;
    int64_t max_batch;         // most events per DELIVERS (1: always DELIVER)
    int64_t batch_payload_max; // larger payloads go as DELIVER, never copied
    int64_t max_publish_batch; // largest PUBLISHES body
    int64_t max_types;
    int64_t sub_hwm;
    int64_t retry_after_ms;
    int64_t tick_ms;
    bool verbose;
    hd_pool_config_t pool; // defaults for new pools
    //  Storage
    const char *data_dir;
    hd_fsync_t fsync;
    int64_t fsync_interval_ms;
    int64_t segment_size;
    int64_t cache_bytes;
    int64_t log_page_cache; // newest log bytes left in the OS page cache (0: all)
    bool skip_corrupt;
    bool prepare_segments;    // next log segment written ahead (log.h), unless fsync never
    int64_t retention_age_ms; // 0: keep by age forever
    int64_t retention_bytes;  // 0: no size bound
    bool retention_hard;      // delete even what pools still need (counted as lost)
    int64_t max_disk;         // log bytes before PUBLISH gets STORAGE (0: no quota)
    int64_t checkpoint_bytes; // journal size that triggers a checkpoint
    int64_t journal_sync_ms;  // longest a journaled ACK waits for fdatasync
    int64_t turn_events;      // a turn commits once it holds this many events (0: no bound);
                              // not with fsync always, where a turn is one group commit
} hd_broker_config_t;

typedef struct _hd_broker_t hd_broker_t;

void hd_broker_config_defaults (hd_broker_config_t *config);

//  Recovers the data directory, then binds the endpoints. Returns NULL and
//  writes why into error.
hd_broker_t *hd_broker_new (const hd_broker_config_t *config, char *error, size_t error_size);
void hd_broker_destroy (hd_broker_t **self_p);

//  Serve until SIGINT/SIGTERM. Returns 0.
int hd_broker_run (hd_broker_t *self);

#endif
