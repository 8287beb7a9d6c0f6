/* The Lua scripts of the Redis store: one per store operation, so each API call is
 * one atomic round trip. docs/redis.md describes what each reads and writes.
 *
 * Every script takes no KEYS (it derives key names itself, which standalone Redis
 * allows) and the ARGV listed on its enum value; strings never contain NULs except
 * the protobuf payload. Sources are static and never freed. */
#ifndef DSOCK_REDIS_SCRIPTS_H
#define DSOCK_REDIS_SCRIPTS_H

typedef enum redis_script_id {
    /* ARGV id, user, session ('' = none), expiration.
     * -> 1 created (or born expired: nothing stored), 0 id taken. */
    REDIS_SCRIPT_CLAIM_CREATE,
    /* ARGV id. -> nil when missing, else {user, session or '', expiration}. */
    REDIS_SCRIPT_CLAIM_TAKE,
    /* ARGV id ('' for a user target), user, session, payload, drop_claims ('1' or '0').
     * PUBLISHes payload once per live worker holding target connections.
     * -> {connections reached, workers reached, workers that had no subscriber}. */
    REDIS_SCRIPT_DELIVER,
    /* ARGV id, user, session, channel: the deliver script's resolution alone, for a
     * big send whose payload the caller PUBLISHes itself.
     * -> {worker, connections on it, ...} for each live worker holding targets. */
    REDIS_SCRIPT_RESOLVE,
    /* ARGV count, then id, user, session, channel, payload per send. Each send as
     * by DELIVER (no claims dropped), one PUBLISH per worker for them all.
     * -> {connections, workers, unreachable} per send, flattened. */
    REDIS_SCRIPT_DELIVER_BATCH,
    /* ARGV id, user, session. -> {{id, worker, lastPing, user, session}..., flattened,
     * {id, expiration, user, session}..., flattened}. */
    REDIS_SCRIPT_INFO,
    /* ARGV id, user, session, channel, name, join, ignore claims, payload.
     * -> {connections, workers reached, workers that had no subscriber}. */
    REDIS_SCRIPT_SUBSCRIBE,
    /* ARGV worker, name, join, last, ids... (a worker writing back a subscription
     * by channel it applied). -> memberships changed. */
    REDIS_SCRIPT_CHAN_APPLY,
    /* ARGV id, user, session, worker, lastPing, ttl (0: leave the worker key alone).
     * -> 1, or 2 when the worker key was missing and has been recreated. */
    REDIS_SCRIPT_CONN_REGISTER,
    /* ARGV id, user, session, worker. -> 1. */
    REDIS_SCRIPT_CONN_UNREGISTER,
    /* ARGV id, lastPing. -> 1, or 0 when the connection is unknown. */
    REDIS_SCRIPT_CONN_TOUCH,
    /* ARGV worker, seconds to keep the set-aside index. -> 1. */
    REDIS_SCRIPT_RESYNC_BEGIN,
    /* ARGV worker, budget. -> 1 when stale entries are left (call again), else 0. */
    REDIS_SCRIPT_RESYNC_END,
    /* ARGV budget. -> what is left of the budget. */
    REDIS_SCRIPT_SWEEP,
    /* ARGV worker, budget. A worker leaving cleanly: drops what is left of its
     * connections (at most budget per call), then its worker-alive key and its
     * member of `workers`. -> 1 when connections are left (call again), else 0. */
    REDIS_SCRIPT_WORKER_LEAVE,
    REDIS_SCRIPT_COUNT
} redis_script_id_t;

typedef struct redis_script {
    const char *name;   /* for logs */
    const char *source;
} redis_script_t;

extern const redis_script_t redis_scripts[REDIS_SCRIPT_COUNT];

#endif
