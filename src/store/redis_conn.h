/* One hiredis async connection that never gives up: connects in the background,
 * authenticates and selects the database, reconnects with back-off (100 ms doubling
 * to 2 s) after any failure, and bounds every wait with one repeating timer that
 * watches the oldest in-flight command (replies come back in order, so the FIFO
 * head is the one that is late). The store (store_redis.c) owns two of these.
 *
 * Ownership: the connection copies nothing it is given in its config except what
 * it keeps (host, username, password). A redis_req_t is the caller's memory; it is linked
 * into the connection while in flight, and its fn is called exactly once: with the
 * reply (valid only during the call), or with NULL when the command was lost
 * (timeout, disconnect, close). */
#ifndef DSOCK_REDIS_CONN_H
#define DSOCK_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct redisReply;

/* A host of "unix:/path/to/redis.sock" names a Unix socket. */
#define REDIS_UNIX_PREFIX "unix:"

typedef struct redis_conn redis_conn_t;
typedef struct redis_req redis_req_t;

/* reply is NULL when the command was lost; never keep it past the call. */
typedef void (*redis_reply_fn)(redis_req_t *req, struct redisReply *reply);

struct redis_req {
    redis_req_t *prev, *next; /* the connection's in-flight FIFO */
    redis_conn_t *conn;       /* set by redis_conn_send */
    uint64_t sent_ms;
    bool timed_out;           /* lost because an answer was late (reply NULL) */
    redis_reply_fn fn;        /* set by the caller */
};

typedef struct redis_conn_hooks {
    /* The TCP connect has started and AUTH/SELECT are queued: queue the rest of the
     * handshake with redis_conn_send. The connection is ready once the caller calls
     * redis_conn_set_ready (or, with redis_conn_subscribe, at the first subscribe
     * confirmation). */
    void (*on_connect)(redis_conn_t *c, void *ud);
    void (*on_ready)(redis_conn_t *c, void *ud);
    /* Every tick (a fraction of timeout_ms) while not closed. */
    void (*on_tick)(redis_conn_t *c, void *ud, uint64_t now_ms);
    /* A pub/sub message; data is binary, valid only during the call. */
    void (*on_message)(void *ud, const char *data, size_t len);
    /* After redis_conn_close: every handle is closed and the connection freed. */
    void (*on_closed)(void *ud);
    void *ud;
} redis_conn_hooks_t;

/* Sentinel mode (redis_sentinel.h): where to connect is asked before every attempt
 * instead of being fixed. */
typedef struct redis_conn_resolver {
    /* 0 with the address to try (host valid during the call; copied), or -1 when it
     * is not known yet: the connection stays down and asks again when
     * redis_conn_kick is called, or at its next tick. */
    int (*resolve)(void *ud, const char **host, int *port);
    /* An attempt at host:port failed, or the connection to it was lost or refused
     * (not a primary, READONLY, no answer): the address may be stale. */
    void (*stale)(void *ud, const char *host, int port);
    void *ud;
} redis_conn_resolver_t;

typedef struct redis_conn_config {
    const char *name;     /* "command" or "pub/sub", for logs: a literal, not copied */
    const char *host;     /* copied; "unix:/path" is a Unix socket (port unused) */
    int port;
    const char *username; /* Redis 6 ACL user; NULL or "" for the default user; copied */
    const char *password; /* NULL or "" for none; copied */
    int db;
    unsigned timeout_ms;
    redis_conn_resolver_t resolver; /* resolve NULL: host and port, fixed */
    bool check_role;      /* handshake: ROLE must answer "master", else the connection
                             fails (a replica that a stale answer pointed at) */
} redis_conn_config_t;

/* Starts connecting at once. Never NULL. */
redis_conn_t *redis_conn_new(uv_loop_t *loop, const redis_conn_config_t *cfg,
                             const redis_conn_hooks_t *hooks);

/* Sends a command (argv as in redisAsyncCommandArgv; copied by hiredis). Returns 0
 * and later calls req->fn once, or -1 without calling it (no connection). Allowed
 * during the handshake; callers gate their own traffic on redis_conn_ready. */
int redis_conn_send(redis_conn_t *c, redis_req_t *req, int argc, const char **argv,
                    const size_t *lens);

/* The same with a command already in the Redis protocol (one "*N\r\n$len\r\n..."
 * array), which hiredis appends to its output buffer as it is: for a caller that
 * built it around a big argument, saving the copy that formatting argv makes. */
int redis_conn_send_formatted(redis_conn_t *c, redis_req_t *req, const char *cmd, size_t len);

/* The same without even that copy: cmd is written from where it is, and owner,
 * the allocation holding it, is the connection's from the call on (success or not),
 * freed with free() once written or when the connection goes. */
int redis_conn_send_owned(redis_conn_t *c, redis_req_t *req, void *owner, const char *cmd,
                          size_t len);

/* SUBSCRIBE to channel (copied per call): messages go to hooks.on_message. The
 * first confirmation must come back within timeout_ms or the connection is dropped.
 * Calling it again on a subscribed connection is a liveness probe whose lateness
 * the caller judges (redis_conn_subscribe_sent_ms; redis_conn_fail to drop it): a
 * slow Redis is no reason to lose a working subscription. Returns 0 or -1. */
int redis_conn_subscribe(redis_conn_t *c, const char *channel);
bool redis_conn_subscribe_pending(const redis_conn_t *c);
/* When the unconfirmed SUBSCRIBE was sent (loop time), 0 when none is pending. */
uint64_t redis_conn_subscribe_sent_ms(const redis_conn_t *c);
/* Loop time of the last answer of any kind on this connection (0: never). */
uint64_t redis_conn_last_reply_ms(const redis_conn_t *c);

void redis_conn_set_ready(redis_conn_t *c);
bool redis_conn_ready(const redis_conn_t *c);
/* True while commands are in flight. */
bool redis_conn_busy(const redis_conn_t *c);

/* Someone is waiting for the connection: while it is down, make the next attempt
 * at the next tick instead of at the end of the back-off (which grows to 2 s, longer
 * than a request may wait), but never sooner than 100 ms after the previous attempt
 * started, so a burst of requests against a dead Redis is not a connect storm. */
void redis_conn_retry_soon(redis_conn_t *c);

/* Drops the current connection (pending commands get NULL) and reconnects after
 * the back-off. reason is logged. */
void redis_conn_fail(redis_conn_t *c, const char *reason);

/* Sentinel mode: the resolver's answer may have changed. A connection (or attempt)
 * to another address than the resolver's is dropped (pending commands get NULL) and
 * the new address tried at once, with the back-off reset; a connection waiting for
 * an address tries at once. Does nothing when the address is the same. */
void redis_conn_follow(redis_conn_t *c);

/* Sentinel mode: an address is known again; a connection that was waiting for one
 * tries at once (its back-off is kept). */
void redis_conn_kick(redis_conn_t *c);

/* Drops the connection for good (pending commands get NULL, synchronously unless
 * called from inside a reply), closes the timer, then calls hooks.on_closed. */
void redis_conn_close(redis_conn_t *c);

#endif
