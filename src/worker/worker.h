/* The worker role: accepts WebSocket clients on GET /connect (claim or JWT,
 * checked before the 101), keeps them in a local index by id and by user, and
 * delivers the messages the store hands it: each message is encoded into one
 * WebSocket frame, once, and the same bytes are written to every matching
 * connection. Pings every ping_interval from one sweep timer per loop (no timer
 * per connection); closes clients silent for ping_timeout.
 *
 * Ownership: the worker owns its connections and their sockets. It keeps the
 * store pointer (the caller keeps the store alive until worker_close is done). */
#ifndef DSOCK_WORKER_H
#define DSOCK_WORKER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/http_server.h"
#include "store/store.h"

typedef struct worker worker_t;

typedef struct worker_config {
    const char *id;               /* worker id (UUIDv4); copied */
    const char *jwt_secret;       /* NULL: JWTs are refused; copied */
    unsigned ping_interval_s;
    unsigned ping_timeout_s;
    uint64_t max_message_bytes;   /* client message limit: close 1009 above */
    uint64_t max_queued_bytes;    /* per connection unsent bytes: close 1008 above */
    bool compression;             /* accept permessage-deflate offers (config "auto") */
    uint64_t compression_min_bytes; /* smaller messages go uncompressed */
    const char *default_channels; /* comma-delimited, checked by the caller (NULL: none);
                                   * every new connection joins them */
    atomic_size_t *shared_slots;  /* NULL, or a counter (starting at 0) that several
                                   * workers of one process share, so max_connections
                                   * bounds their sum; kept alive by the caller */
} worker_config_t;

/* Attaches to the store (store_worker_attach) and starts the sweep timer.
 * Never NULL. */
worker_t *worker_new(uv_loop_t *loop, store_t *store, const worker_config_t *cfg);

/* The workers of one process's loop threads (standalone: they share the memory
 * store), all of them, this one at `self`: a connection is then placed on the
 * thread its user hashes to, its socket moved there before its 101, so that all
 * of a user's connections are on one loop and a send to the user reaches them
 * with at most one hand-off between threads. Called before the threads start,
 * on every worker, with the same array (which must outlive them). n <= 1: no
 * placement. */
void worker_set_peers(worker_t *w, worker_t *const *peers, unsigned n, unsigned self);

/* For the server's precheck, on the request line and headers: not /connect
 * (HTTP_NOT_MINE); not GET (405) or with a body (400 INVALID_HANDSHAKE), answered
 * (HTTP_ANSWERED); else HTTP_ACCEPTED, for worker_handle. */
http_verdict_t worker_precheck(worker_t *w, http_conn_t *c, const http_request_t *req);

/* Handles the request if it is for the worker (path /connect) and returns true;
 * returns false without touching the connection otherwise. The worker keeps at
 * most the HTTP server's max_connections sockets (http_conn_max_connections);
 * past that a connect is refused with 503 TOO_MANY_CONNECTIONS before the
 * upgrade and before authentication. */
bool worker_handle(worker_t *w, http_conn_t *c, const http_request_t *req);

/* Number of open WebSocket connections. */
size_t worker_connection_count(const worker_t *w);

/* Counters since worker_new, for logs and metrics. */
typedef struct worker_stats {
    uint64_t connects;        /* 101s sent */
    uint64_t disconnects;     /* sockets closed after a 101 */
    uint64_t messages;        /* TEXT/BINARY messages from the store */
    uint64_t deliveries;      /* message x connection pairs queued or written */
    uint64_t slow_closes;     /* closed with 1008: over max_queued_bytes */
    uint64_t dead_closes;     /* closed after ping_timeout of silence */
    uint64_t protocol_closes; /* closed for a protocol violation (1002/1007/1009) */
    uint64_t refused;         /* 503 TOO_MANY_CONNECTIONS: at max_connections */
} worker_stats_t;

void worker_get_stats(const worker_t *w, worker_stats_t *out);

/* Graceful shutdown (docs/probes-and-drain.md): from now on connects are refused
 * (503), and the open connections are closed with 1001 (going away) spread evenly
 * over drain_ms: the k-th of n at about k * drain_ms / n, so that clients do not
 * all reconnect at once. Workers of several threads draining over the same window
 * each spread their own share, so their closes together are spread as evenly.
 * Until its close, a connection keeps getting its messages. done (may be NULL) is
 * called once every connection was asked to close: at drain_ms, or earlier when
 * none is left open. The worker stays attached to the store: worker_close follows.
 * Call it at most once, before worker_close. */
void worker_drain(worker_t *w, unsigned drain_ms, void (*done)(void *ud), void *ud);

/* Closes every connection with 1001 (going away), unregisters them, stops the
 * timer, frees the worker, then calls done (may be NULL). */
void worker_close(worker_t *w, void (*done)(void *ud), void *ud);

#endif
