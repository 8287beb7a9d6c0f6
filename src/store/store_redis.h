/* The Redis store: hiredis 0.14 async on the process's libuv loop. See store.h for
 * the contract and docs/redis.md for the key layout and scripts. */
#ifndef DSOCK_STORE_REDIS_H
#define DSOCK_STORE_REDIS_H

#include <uv.h>

#include "store/store.h"

typedef struct store_redis_config {
    const char *host;       /* "host:port" or "host" (port 6379); copied */
    const char *password;   /* NULL or "" for none; copied */
    int db;
    unsigned timeout_ms;    /* bound on every wait for a reply; also connect timeout
                               (0: 2000) */
    unsigned worker_ttl_s;  /* a worker not heard of for this long is dead (0: 10) */
} store_redis_config_t;

/* Never NULL: connects in the background and reconnects with back-off; until
 * connected, operations answer STORE_UNAVAILABLE. Freed by store_close(). */
store_t *store_redis_new(uv_loop_t *loop, const store_redis_config_t *cfg);

#endif
