/* The store: where connections and claims live, and the API -> worker message bus.
 * One interface, a table of operations, with two implementations chosen at
 * startup: Redis (store_redis.c, for `dsock api` / `dsock worker`) and an embedded
 * in-memory store (standalone). The API and worker roles only ever see store_t.
 *
 * Rules for every operation:
 * - Strings passed in are copied if kept; the caller may free them on return.
 * - Each callback is called exactly once. It may run before the call returns
 *   (the memory store answers synchronously), so callers set up their state first.
 * - Pointers handed to a callback (claims, info arrays, messages) are valid only
 *   during the callback.
 * - STORE_UNAVAILABLE means the backend could not be reached, timed out, or answered
 *   an error: the API turns it into a 503 with an ERROR_* code. Every wait on the
 *   backend is bounded by the store's own timeout. A claim_create, send, disconnect
 *   or subscribe that timed out after it was handed to the backend answers
 *   STORE_UNKNOWN instead: it was not refused, and may take effect later. */
#ifndef DSOCK_STORE_H
#define DSOCK_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum store_status {
    STORE_OK = 0,
    STORE_UNAVAILABLE = -1, /* backend down, timed out or failed */
    STORE_EXISTS = -2,      /* claim id already used */
    STORE_NOT_FOUND = -3,   /* claim missing (never created, taken, or expired) */
    STORE_INVALID = -4,     /* claim_take: the stored claim is unreadable (bad expiration);
                               it is consumed all the same */
    /* claim_create, send, disconnect, subscribe only: */
    STORE_UNKNOWN = -5,     /* the request reached the backend and no answer came in
                               time: it may have been carried out (or may still be) */
    STORE_IDEM_REUSED = -6, /* the idempotency key was used for a different request */
    STORE_IDEM_BUSY = -7,   /* a request with this idempotency key is still running */
} store_status_t;

/* An idempotency key (docs/api.md, "Idempotency-Key"): the store remembers the key
 * with the first answer for ttl, atomically with the work, and answers a later
 * request with the same key from memory (store_delivery_t.replayed) without doing
 * the work again; STORE_IDEM_REUSED when its fingerprint differs. */
typedef struct store_idem {
    const char *key;         /* identifier, at most 255 bytes (checked by the API) */
    const char *fingerprint; /* hex digest of the request: method, target, flags, body */
} store_idem_t;

/* A connection id wins; then a channel (its member connections, and for claims
 * the claims carrying it); otherwise user, narrowed to session when session is
 * non-NULL and non-empty. */
typedef struct store_target {
    const char *id;
    const char *user;
    const char *session;
    const char *channel;
    /* Honoured by send, disconnect and subscribe; NULL: none. Not part of what a
     * worker receives. */
    const store_idem_t *idem;
} store_target_t;

/* Channel names (protocol/validate.h channel_name_check) in a connection's order
 * (docs/api.md): a list without duplicates. */
typedef struct store_claim {
    const char *id;
    const char *user;
    const char *session;  /* NULL when none */
    int64_t expiration;   /* seconds since epoch */
    const char *const *channels; /* its own channels (no defaults); may be NULL if 0 */
    size_t channel_count;
} store_claim_t;

typedef struct store_conn {
    const char *id;       /* UUIDv4 */
    const char *user;
    const char *session;  /* NULL when none */
    const char *worker;   /* worker id */
    int64_t last_ping;    /* seconds since epoch */
    const char *const *channels; /* in order; may be NULL if 0 */
    size_t channel_count;
    /* conn_register only: when non-zero, the store hands this worker a
     * WORKER_MSG_REGISTERED marker (target id, body = this number in decimal)
     * ordered after every message of an operation that ran before the
     * registration and before every message of one that ran after it. */
    uint64_t generation;
} store_conn_t;

typedef struct store_info {
    const store_conn_t *conns;
    size_t conn_count;
    const store_claim_t *claims;
    size_t claim_count;
} store_info_t;

typedef enum worker_msg_kind {
    WORKER_MSG_TEXT = 0,
    WORKER_MSG_BINARY = 1,
    WORKER_MSG_DISCONNECT = 2,
    WORKER_MSG_SUBSCRIBE = 3,   /* matching connections join body (a channel name) */
    WORKER_MSG_UNSUBSCRIBE = 4, /* matching connections leave body */
    WORKER_MSG_REGISTERED = 5,  /* store_conn_t.generation: the registration of target.id
                                   with generation body (decimal) is in the store */
} worker_msg_kind_t;

/* What the API sends to workers. */
typedef struct worker_msg {
    worker_msg_kind_t kind;
    store_target_t target;
    const uint8_t *body;  /* TEXT/BINARY: the message; (UN)SUBSCRIBE: the channel name;
                             may be NULL when body_len is 0 */
    size_t body_len;
} worker_msg_t;

/* Outcome of a send or disconnect. */
typedef struct store_delivery {
    size_t connections;   /* target connections on workers that received the message */
    size_t workers;       /* workers that received it */
    size_t unreachable;   /* live workers holding target connections that did not */
    bool replayed;        /* the answer of an earlier request with the same idempotency
                             key; nothing was done this time */
} store_delivery_t;

typedef void (*store_status_cb)(void *ud, store_status_t status);
typedef void (*store_claim_cb)(void *ud, store_status_t status, const store_claim_t *claim);
typedef void (*store_delivery_cb)(void *ud, store_status_t status, const store_delivery_t *d);
typedef void (*store_info_cb)(void *ud, store_status_t status, const store_info_t *info);

/* Worker-side notifications. on_message: a message for this worker's connections.
 * on_resync: the store lost this worker's registrations (backend restarted empty,
 * or reconnected after an outage): the worker must call store_conn_register again
 * for every live connection. */
typedef struct store_worker_handlers {
    void (*on_message)(void *ud, const worker_msg_t *msg);
    void (*on_resync)(void *ud);
    void *ud;
} store_worker_handlers_t;

typedef struct store store_t;

typedef struct store_ops {
    /* API side */
    void (*claim_create)(store_t *s, const store_claim_t *claim, store_status_cb cb, void *ud);
    void (*send)(store_t *s, const worker_msg_t *msg, store_delivery_cb cb, void *ud);
    void (*disconnect)(store_t *s, const store_target_t *t, bool keep_claims,
                       store_delivery_cb cb, void *ud);
    void (*info)(store_t *s, const store_target_t *t, store_info_cb cb, void *ud);
    void (*subscribe)(store_t *s, const store_target_t *t, const char *channel, bool join,
                      bool ignore_claims, store_delivery_cb cb, void *ud);
    /* Worker side */
    int (*worker_attach)(store_t *s, const char *worker_id, const store_worker_handlers_t *h);
    void (*claim_take)(store_t *s, const char *claim_id, store_claim_cb cb, void *ud);
    void (*conn_register)(store_t *s, const store_conn_t *conn, store_status_cb cb, void *ud);
    void (*conn_unregister)(store_t *s, const store_conn_t *conn);
    void (*conn_touch)(store_t *s, const char *conn_id, int64_t last_ping);
    void (*conns_subscribed)(store_t *s, const char *channel, bool join,
                             const char *const *ids, const char *const *before, size_t n);
    /* Lifecycle */
    void (*close)(store_t *s, void (*done)(void *ud), void *ud);
    const char *(*describe)(store_t *s);
    bool (*ready)(store_t *s, const char **reason);
} store_ops_t;

struct store {
    const store_ops_t *ops;
};

/* API side ---------------------------------------------------------------- */

/* Creates a claim; STORE_EXISTS if the id is taken. The claim disappears at its
 * expiration by itself. */
static inline void store_claim_create(store_t *s, const store_claim_t *c, store_status_cb cb,
                                      void *ud) {
    s->ops->claim_create(s, c, cb, ud);
}

/* Resolves msg->target to the workers holding its connections and hands each the
 * message, in one round trip where the backend allows. Ordering: two sends from
 * one API process to one target are delivered in call order. */
static inline void store_send(store_t *s, const worker_msg_t *msg, store_delivery_cb cb,
                              void *ud) {
    s->ops->send(s, msg, cb, ud);
}

/* Closes the target's connections (WORKER_MSG_DISCONNECT to their workers) and,
 * unless keep_claims, deletes the user's (or user session's) pending claims. */
static inline void store_disconnect(store_t *s, const store_target_t *t, bool keep_claims,
                                    store_delivery_cb cb, void *ud) {
    s->ops->disconnect(s, t, keep_claims, cb, ud);
}

/* Live connections and unexpired claims of the target. Connections of dead workers
 * are never reported. For an id target, claims are empty. */
static inline void store_info(store_t *s, const store_target_t *t, store_info_cb cb, void *ud) {
    s->ops->info(s, t, cb, ud);
}

/* Adds the channel to (join) or removes it from the target's live connections
 * and, unless ignore_claims, the target's pending claims (a user target: the
 * user's (session's) claims; a channel target: the claims carrying it; an id
 * target: none). Idempotent. The store hands a WORKER_MSG_(UN)SUBSCRIBE to the
 * workers holding the connections before any later send from any API process, so
 * a send issued after the answer sees the new membership. d->connections counts
 * the target's connections. By id or user, the store records the connections'
 * change before answering. By channel, it does no work per member: each worker
 * applies the message to its own members of the channel and records them with
 * store_conns_subscribed, so /info shows them once the workers have done so
 * (docs/redis.md, "Channels"); the target's claims are changed before the answer. */
static inline void store_subscribe(store_t *s, const store_target_t *t, const char *channel,
                                   bool join, bool ignore_claims, store_delivery_cb cb,
                                   void *ud) {
    s->ops->subscribe(s, t, channel, join, ignore_claims, cb, ud);
}

/* Worker side ------------------------------------------------------------- */

/* Starts receiving messages for worker_id and keeps the worker known as alive.
 * Handlers are copied. Returns 0, or a negative errno-style code. At most once per store. */
static inline int store_worker_attach(store_t *s, const char *worker_id,
                                      const store_worker_handlers_t *h) {
    return s->ops->worker_attach(s, worker_id, h);
}

/* Atomically takes (reads and deletes) a claim: of concurrent takes of one id,
 * exactly one gets STORE_OK. STORE_NOT_FOUND when missing, STORE_INVALID when its
 * stored expiration is unreadable. The caller checks the expiration (a backend may
 * keep an expired claim briefly). */
static inline void store_claim_take(store_t *s, const char *claim_id, store_claim_cb cb,
                                    void *ud) {
    s->ops->claim_take(s, claim_id, cb, ud);
}

/* Makes a connection routable: after STORE_OK, sends to its target (and to each
 * of conn->channels) reach this worker. Registering an id again replaces its
 * record, channels included. With conn->generation, a WORKER_MSG_REGISTERED
 * marker follows in the worker's message stream (store_conn_t): a subscription
 * message that comes before it was recorded before the registration, which
 * overwrote its effect on this connection's record. */
static inline void store_conn_register(store_t *s, const store_conn_t *conn,
                                       store_status_cb cb, void *ud) {
    s->ops->conn_register(s, conn, cb, ud);
}

/* Forgets a connection. Fire and forget: when the backend is unavailable the store
 * retries after it returns, so a closed connection is never reported for long. */
static inline void store_conn_unregister(store_t *s, const store_conn_t *conn) {
    s->ops->conn_unregister(s, conn);
}

/* Records a client ping/pong time. Fire and forget. */
static inline void store_conn_touch(store_t *s, const char *conn_id, int64_t last_ping) {
    s->ops->conn_touch(s, conn_id, last_ping);
}

/* The worker applied a WORKER_MSG_(UN)SUBSCRIBE whose target was a channel to its
 * index: `ids` are its connections whose membership of `channel` it changed
 * (n may be 0). Called once per such message, in the order received, for the
 * store to record them (no per-member work was done on the API side). For a join,
 * before[i] names the channel that precedes it in ids[i]'s list ("" when first):
 * the store inserts it there, so a subscription by id or user the store recorded
 * meanwhile (the worker has yet to apply it) stays after it, as in the worker's
 * list. NULL for a leave. Fire and forget: a worker whose store lost it registers
 * its connections again (resync), which records their channels. */
static inline void store_conns_subscribed(store_t *s, const char *channel, bool join,
                                          const char *const *ids, const char *const *before,
                                          size_t n) {
    s->ops->conns_subscribed(s, channel, join, ids, before, n);
}

/* Lifecycle --------------------------------------------------------------- */

/* Flushes what it can within its timeout, calls every pending callback with
 * STORE_UNAVAILABLE, frees the store, then calls done (if not NULL). */
static inline void store_close(store_t *s, void (*done)(void *ud), void *ud) {
    s->ops->close(s, done, ud);
}

/* Whether the store can do its job right now, for GET /readyz: answered from
 * state the store keeps up to date in the background (never a round trip per
 * call, so a probe storm costs the backend nothing). False sets *reason to a
 * static lower_snake_case code: "starting", "store_unavailable" or (a worker)
 * "subscription_lost". Redis: the API side PINGs every second and is ready while
 * the last PING was answered within a second; the worker side publishes a canary
 * to its own channel every second and is ready while one came back through its
 * subscription within a second (docs/probes-and-drain.md). Memory: always ready.
 * Call it on the store's loop thread. */
static inline bool store_ready(store_t *s, const char **reason) {
    return s->ops->ready(s, reason);
}

/* "redis 127.0.0.1:6379 db 0" or "memory": for the startup line. */
static inline const char *store_describe(store_t *s) { return s->ops->describe(s); }

#endif
