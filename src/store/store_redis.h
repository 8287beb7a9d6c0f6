/* The Redis store: hiredis 0.14 async on the process's libuv loop. See store.h for
 * the contract and docs/redis.md for the key layout and scripts. */
#ifndef DSOCK_STORE_REDIS_H
#define DSOCK_STORE_REDIS_H

#include <uv.h>

#include "store/store.h"

typedef struct store_redis_config {
    const char *host;       /* "host:port", "host" (port 6379) or "unix:/path"; copied */
    const char *username;   /* Redis 6 ACL user; NULL or "" for the default user; copied */
    const char *password;   /* NULL or "" for none; copied */
    int db;
    unsigned timeout_ms;    /* bound on every wait for a reply; also connect timeout
                               (0: 2000) */
    unsigned worker_ttl_s;  /* a worker not heard of for this long is dead (0: 10) */
    uint64_t max_body_bytes;/* worker side: a bus message with a longer body is dropped
                               (the configuration refuses 0) */
    unsigned idempotency_ttl_s; /* how long an idempotency key is remembered (0: 300) */
    /* Redis Sentinel (docs/redis.md, "Sentinel"): when sentinels is not empty, host
     * is ignored and every connection goes to the primary the sentinels name. */
    const char *sentinels;  /* "host:port,host:port" (config_parse_sentinels) */
    const char *master_name;
    const char *sentinel_password;
} store_redis_config_t;

/* Never NULL: connects in the background and reconnects with back-off; until
 * connected, operations answer STORE_UNAVAILABLE. Freed by store_close(). */
store_t *store_redis_new(uv_loop_t *loop, const store_redis_config_t *cfg);

/* Counters since store_redis_new (for logs and, later, metrics). */
typedef struct store_redis_stats {
    /* Messages on this worker's channel that were dropped unprocessed: not a
     * WorkerMessage, unknown kind, no target, a target id that fails the
     * identifier rule, a TEXT body that is not UTF-8, a DISCONNECT with a body,
     * or a body over max_body_bytes. */
    uint64_t bus_dropped_invalid;
} store_redis_stats_t;

/* st must come from store_redis_new. */
void store_redis_get_stats(const store_t *st, store_redis_stats_t *out);

#endif
