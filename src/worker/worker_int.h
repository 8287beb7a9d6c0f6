/* Internals shared by the worker's files: the worker and connection structs and
 * the connection operations (ws_conn.c) used by the role logic (worker.c).
 * Not for use outside src/worker/.
 *
 * Connection life cycle:
 *   PENDING  authenticated, indexed, store registration in flight; no socket yet
 *            (the HTTP server still holds it); deliveries are queued behind the 101.
 *   OPEN     101 sent (or queued first); reading frames, writing the queue.
 *   CLOSING  a close frame is queued: no longer indexed nor registered; once the
 *            close frame is written, TCP is shut down (or closed when the peer's
 *            close already arrived); closed for good at close_deadline anyway.
 *   CLOSED   uv_close called; freed in the close callback.
 * Time is kept in ticks of 100 ms since the worker started (uint32: 13 years). */
#ifndef DSOCK_WORKER_INT_H
#define DSOCK_WORKER_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "common/mpsc.h"
#include "net/http_server.h"
#include "ops/metrics.h"
#include "protocol/ws_deflate.h"
#include "protocol/ws_frame.h"
#include "store/store.h"
#include "worker/conn_index.h"
#include "worker/frame.h"
#include "worker/worker.h"

#define WORKER_TICKS_PER_S 10u

enum { CONN_PENDING = 0, CONN_OPEN, CONN_CLOSING, CONN_CLOSED };

#define WORKER_SPARE_MAX 256u    /* write requests kept for reuse */
#define WORKER_SPARE_PARSERS 16u /* parsers kept for reuse (one is in use at a time,
                                    but for connections stopped mid-frame) */

/* A write or shutdown request: never both at once (shutdown waits for the queue). */
typedef union worker_req {
    uv_write_t write;
    uv_shutdown_t shutdown;
    union worker_req *next_free;   /* in the worker's pool */
} worker_req_t;

typedef struct worker_conn {
    worker_index_node_t ix;        /* id/user/session point into strings[] */
    struct worker_conn *prev, *next; /* every allocated connection of the worker */
    worker_t *w;
    http_conn_t *hc;               /* PENDING only */
    uv_tcp_t *tcp;                 /* from http_conn_detach; freed in the close callback */
    worker_queue_t q;
    /* An idle connection holds neither a request nor a parser (docs/benchmark.md,
     * "Idle memory"): they cost 192 and 200 bytes, more than the rest of the
     * struct. Both are lent by the worker (worker_req_take, worker_parser_take)
     * while in use and given back after. */
    worker_req_t *req;             /* the uv_write or uv_shutdown in flight, or NULL */
    ws_parser_t *parser;           /* NULL while at rest between messages (and before
                                      the first bytes) */
    uint32_t last_rx;              /* last bytes from the client */
    uint32_t last_ping_tx;         /* last server ping */
    uint32_t last_client_ping;     /* lastPing: wall clock seconds of the last client
                                      ping/pong (or of the 101); uint32 lasts to 2106 */
    uint32_t last_touch;           /* tick of the last store_conn_touch */
    uint32_t close_deadline;       /* CLOSING: hard close at this tick */
    uint32_t paused_unacked;       /* read_paused: bytes the client had not acknowledged at
                                      the last sweep (low 32 bits: only compared) */
    uint16_t close_after_open;     /* PENDING: close with this code once open */
    uint8_t close_why;             /* metrics_close_t + 1 of the close asked for; 0: none */
    uint8_t state;
    uint8_t inflight;              /* queue nodes in the uv_write in flight */
    uint8_t zbits;                 /* permessage-deflate: the window (9..15) messages to it
                                      are compressed with; 0: not negotiated. (Its
                                      inflater lives in parser, only mid-message.) */
    bool writing;
    bool peer_closed;              /* the client's close frame arrived */
    bool rx_done;                  /* protocol error or close seen: input is discarded */
    bool read_paused;              /* uv_read_stop: a pong waits for the client to read */
    bool touch_due;                /* lastPing changed since the last store_conn_touch */
    bool registered;               /* store registration to undo */
    bool indexed;                  /* in w->index */
    char strings[];                /* id \0 user \0 session \0 */
} worker_conn_t;

struct worker {
    uv_loop_t *loop;
    store_t *store;
    char *id;
    uint8_t *secret;               /* NULL: JWTs refused */
    size_t secret_len;
    unsigned ping_interval_s;
    unsigned ping_timeout_s;
    uint64_t max_message;
    uint64_t max_queued;
    bool compression;              /* accept permessage-deflate offers */
    uint64_t compression_min;      /* smaller messages are sent uncompressed */
    /* One compressor per window size in use, made on first use and kept (zlib's
     * deflate state is ~256 KiB at 15 bits: per worker, never per connection). */
    struct ws_deflater *deflaters[WS_DEFLATE_MAX_BITS - WS_DEFLATE_MIN_BITS + 1];
    uint64_t t0_ms;                /* uv_now at start */
    char **default_channels;       /* default_channels, parsed */
    size_t default_channel_count;
    worker_index_t index;
    worker_conn_t *conns;          /* list of all allocated connections */
    size_t live;                   /* allocated connections */
    size_t open;                   /* OPEN connections */
    size_t pending_ops;            /* store callbacks still to come */
    size_t connecting;             /* claim takes in flight (each may become a connection) */
    atomic_size_t *shared_slots;   /* NULL, or live + connecting of every worker sharing
                                      max_connections (threads of one process) */
    worker_qpool_t pool;
    /* Lent to connections while they write or parse a frame; kept for reuse up to
     * WORKER_SPARE_MAX, the rest freed (a burst to many connections allocates,
     * then settles back). */
    worker_req_t *req_free;
    size_t req_free_count;
    ws_parser_t *parser_free[WORKER_SPARE_PARSERS];
    size_t parser_free_count;
    size_t released;               /* queue cost freed since the sweep last looked */
    uv_timer_t sweep;
    /* worker_drain: closes OPEN connections in list order from drain_next, as many
     * by now as drain_total * elapsed / drain_ms. */
    uv_timer_t drain_timer;
    bool draining;
    uint64_t drain_start_ms;
    uint64_t drain_ms;
    size_t drain_total;            /* OPEN connections when the drain started */
    size_t drain_closed;           /* closed by the drain so far */
    struct worker_conn *drain_next; /* next to look at; moved on when it is freed */
    void (*drain_done)(void *ud);
    void *drain_ud;
    /* Threads of one process (worker_set_peers): a connection is placed on the
     * thread its user hashes to, so that a user's connections share one loop
     * (docs/architecture.md, "A user's connections on one thread"). Sockets
     * handed over by the other threads wait in `adopt` (adopt_t items). */
    worker_t *const *peers;        /* NULL: one thread */
    unsigned n_peers, self;
    mpsc_t adopt;
    uv_async_t adopt_wake;
    uv_tcp_t *adopt_tcp;           /* during an adopted connection's registration: */
    const char *adopt_peer;        /* its socket, its client's address and the bytes */
    const char *adopt_rest;        /* that followed its request */
    size_t adopt_rest_len;
    int timers_open;               /* sweep, drain_timer, adopt_wake, until their close callbacks */
    bool closing;
    bool timer_closing;
    void (*done)(void *ud);
    void *done_ud;
    worker_stats_t stats;
};

uint32_t worker_now(const worker_t *w);

/* Gives back the max_connections place of a connection (or connect) that ends. */
void worker_slot_release(worker_t *w);

/* Queues a frame for the connection (it takes its own reference): written at once
 * when nothing is queued, else after the rest. When the queue's cost (frame.h) goes
 * over max_queued the client is closed with 1008 instead. Ignored unless PENDING or
 * OPEN: returns false then. */
bool worker_conn_send(worker_conn_t *c, worker_frame_t *f);

/* Starts the closing handshake with code (PENDING: once open). Counted in
 * dsock_connections_closed_total as server_close, or shutdown while the worker is
 * closing, unless worker_conn_close_for gave the reason. */
void worker_conn_start_close(worker_conn_t *c, uint16_t code, const char *reason);

/* The same, counted with this reason (the first one given wins). */
void worker_conn_close_for(worker_conn_t *c, metrics_close_t why, uint16_t code,
                           const char *reason);

/* Writes a lastPing that the rate limit held back (at most one store write per
 * connection per second). Called by the sweep for every open connection. */
void worker_conn_flush_touch(worker_conn_t *c, uint32_t now);

/* Called by the sweep for every open connection before its ping timeout is
 * judged: while reading is paused, last_rx cannot move by reading, so the client's
 * reading stands in for it: when it acknowledged bytes since the last sweep (or a
 * write completed, see on_write), last_rx becomes now. */
void worker_conn_sweep_paused(worker_conn_t *c, uint32_t now);

/* Closes the socket now, without a close frame. */
void worker_conn_kill(worker_conn_t *c);

/* PENDING -> OPEN with the detached socket: writes the queue (101 first), starts
 * reading and parses rest (bytes that followed the request). */
void worker_conn_open(worker_conn_t *c, uv_tcp_t *tcp, char *rest, size_t rest_len);

/* The store's view of the connection: its channels in order in a malloc'd array
 * (*channels, to free; NULL when none). */
store_conn_t worker_conn_record(const worker_conn_t *c, int64_t last_ping,
                                const char ***channels);

/* Removes it from the index and the store (idempotent). */
void worker_conn_unroute(worker_conn_t *c);

/* A write/shutdown request from the worker's pool (or malloc); give it back with
 * worker_req_give once its callback ran. */
worker_req_t *worker_req_take(worker_t *w);
void worker_req_give(worker_t *w, worker_req_t *r);

/* A fresh parser (max_message, deflate when negotiated) for c; and back. */
ws_parser_t *worker_parser_take(worker_t *w, bool deflate);
void worker_parser_give(worker_t *w, ws_parser_t *p);

/* Unlinks and frees a connection that has no socket. */
void worker_conn_free(worker_conn_t *c);

/* Called when a connection or a store callback is gone; finishes worker_close. */
void worker_maybe_finish(worker_t *w);

#endif
