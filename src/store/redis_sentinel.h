/* Redis Sentinel discovery for one store (one event loop): where the primary named
 * redis_master_name is, as the sentinels say, and a subscription to their
 * +switch-master events so that a failover is followed within a round trip of the
 * event, not at the next timeout. docs/redis.md, "Sentinel".
 *
 * Two connections to sentinels (redis_conn, so with the same reconnects and
 * timeouts as the data connections): one asks `SENTINEL get-master-addr-by-name`,
 * the other is subscribed to +switch-master. Each goes to the sentinels in turn:
 * one that is down, times out, or does not know the master sends the next attempt
 * to the next one.
 *
 * The data connections (command, pub/sub) get redis_sentinel_resolver() as their
 * resolver: before every attempt they take the known address, or wait for the
 * answer to a question that their asking starts. Any failure of theirs marks that
 * address stale, so the next attempt asks again; a changed address makes every
 * watched connection follow it at once (redis_conn_follow).
 *
 * Ownership: the sentinel copies its configuration. Watched connections belong to
 * the caller, who must call redis_sentinel_close before freeing them. */
#ifndef DSOCK_REDIS_SENTINEL_H
#define DSOCK_REDIS_SENTINEL_H

#include <stddef.h>
#include <uv.h>

#include "store/redis_conn.h"

typedef struct redis_sentinel redis_sentinel_t;

typedef struct redis_sentinel_config {
    const char *sentinels;   /* "host:port,host:port" (config_parse_sentinels; already valid) */
    const char *master_name;
    const char *password;    /* the sentinels' requirepass; NULL or "" for none */
    unsigned timeout_ms;
} redis_sentinel_config_t;

/* NULL when the list does not parse (config_validate has checked it). */
redis_sentinel_t *redis_sentinel_new(uv_loop_t *loop, const redis_sentinel_config_t *cfg);

/* For redis_conn_config_t.resolver of the data connections. */
redis_conn_resolver_t redis_sentinel_resolver(redis_sentinel_t *s);

/* Connections told when the address changes (follow) or becomes known (kick). At
 * most 4. */
void redis_sentinel_watch(redis_sentinel_t *s, redis_conn_t *c);

/* "sentinel mymaster via 127.0.0.1:26379,..." for the store's description. */
const char *redis_sentinel_describe(const redis_sentinel_t *s);

/* A +switch-master message, "<master name> <old ip> <old port> <new ip> <new port>":
 * 0 with the new address when it is about master_name, else -1 (another master's,
 * or malformed). I/O-free, for the unit tests. */
int redis_sentinel_parse_switch(const char *data, size_t len, const char *master_name,
                                char *host, size_t hostlen, int *port);

/* Stops notifying at once, closes both connections, frees itself, then done(ud). */
void redis_sentinel_close(redis_sentinel_t *s, void (*done)(void *ud), void *ud);

#endif
