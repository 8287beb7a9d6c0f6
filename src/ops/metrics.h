/* Metrics: counters and histograms every layer writes, summed and written out in
 * the Prometheus text exposition format (0.0.4) for GET /metrics (docs/metrics.md).
 * Depends on nothing but common/: the worker, the store, the API and the HTTP
 * server all write here, so it sits below them.
 *
 * Threads. Each loop thread (a shard, docs/architecture.md "Threads") counts into
 * its own metrics_shard_t, found through a thread-local pointer (metrics_bind), so
 * the hot path is a plain load, add and store to memory only its thread writes:
 * no lock, no locked instruction, no shared cache line. Those stores are relaxed
 * atomic stores and the scrape, on whatever thread serves /metrics, reads every
 * shard with relaxed atomic loads and sums: each value it reads is one the owner
 * wrote (no torn 64-bit value, no data race), and the sums are a consistent
 * picture of each counter, not of all counters at one instant (a request counted
 * in requests_total may not be in the histogram yet). Counters never go down.
 * A thread that was never bound (the main thread, unit tests) counts into shard 0.
 *
 * Ownership: shards live in a static array for the whole process; metrics_shard_new
 * is called on the main thread before the loop threads start (the thread start
 * orders its writes before their reads). */
#ifndef DSOCK_OPS_METRICS_H
#define DSOCK_OPS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

/* dsock_connections_closed_total{reason}: why an open WebSocket connection ended;
 * counted once, when it stops being open. */
typedef enum metrics_close {
    METRICS_CLOSE_CLIENT_CLOSE,   /* the client sent a close frame */
    METRICS_CLOSE_SERVER_CLOSE,   /* any other close the server started */
    METRICS_CLOSE_DISCONNECT_API, /* POST /disconnect */
    METRICS_CLOSE_SLOW_CLIENT,    /* 1008: over max_queued_bytes */
    METRICS_CLOSE_PING_TIMEOUT,   /* silent for ping_timeout */
    METRICS_CLOSE_PROTOCOL_ERROR, /* 1002/1007/1009 */
    METRICS_CLOSE_SHUTDOWN,       /* 1001: the process is stopping */
    METRICS_CLOSE_GONE,           /* EOF, reset or write error: the peer vanished */
    METRICS_CLOSE_REASONS
} metrics_close_t;

/* dsock_deliveries_dropped_total{reason}: a message for a connection that did
 * not reach it. */
typedef enum metrics_drop {
    METRICS_DROP_SLOW_CLIENT,         /* queued data frames dropped by a 1008 close */
    METRICS_DROP_INVALID_BUS_MESSAGE, /* a bus message refused before any match */
    METRICS_DROP_CONNECTION_CLOSING,  /* matched a connection that no longer takes frames */
    METRICS_DROP_REASONS
} metrics_drop_t;

/* The endpoint label of dsock_api_requests_total and its histogram. */
typedef enum metrics_endpoint {
    METRICS_EP_CLAIM,
    METRICS_EP_SEND,
    METRICS_EP_DISCONNECT,
    METRICS_EP_INFO,
    METRICS_EP_CONNECT,
    METRICS_EP_METRICS,
    METRICS_EP_CHANNEL, /* POST /channel/subscribe/NAME and /channel/unsubscribe/NAME */
    METRICS_EP_OTHER,
    METRICS_ENDPOINTS
} metrics_endpoint_t;

/* The op label of dsock_store_operation_duration_seconds. */
typedef enum metrics_store_op {
    METRICS_OP_CLAIM_CREATE,
    METRICS_OP_CLAIM_TAKE,
    METRICS_OP_SEND,
    METRICS_OP_DISCONNECT,
    METRICS_OP_INFO,
    METRICS_OP_CONN_REGISTER,
    METRICS_OP_CONN_UNREGISTER,
    METRICS_OP_CONN_TOUCH,
    METRICS_OP_SUBSCRIBE, /* channel subscribe and unsubscribe */
    METRICS_OP_CHANNEL_APPLY, /* a worker recording a subscription by channel */
    METRICS_STORE_OPS
} metrics_store_op_t;

typedef enum metrics_store_error {
    METRICS_STORE_ERROR,   /* an error answer, or lost with its connection */
    METRICS_STORE_TIMEOUT, /* no answer (or no connection) within redis_timeout_ms */
    METRICS_STORE_ERROR_KINDS
} metrics_store_error_t;

/* Histogram bucket upper bounds, in seconds: 0.0005 .. 10 (+Inf is implicit). */
#define METRICS_BUCKETS 14
extern const double metrics_bucket_bounds[METRICS_BUCKETS];

/* counts[i]: observations in bucket i alone (not cumulative; the writer adds them
 * up); counts[METRICS_BUCKETS]: above the last bound. */
typedef struct metrics_hist {
    uint64_t counts[METRICS_BUCKETS + 1];
    uint64_t sum_ns;
} metrics_hist_t;

/* Only uint64_t members: the scrape sums shards word by word. */
typedef struct metrics_counts {
    uint64_t conns_opened;
    uint64_t conns_closed[METRICS_CLOSE_REASONS];
    uint64_t api_messages, api_message_bytes;
    uint64_t api_idem_replays;  /* answered from an Idempotency-Key */
    uint64_t idem_evicted;      /* memory store: keys forgotten before their TTL (full) */
    uint64_t messages_written, message_bytes_written;
    uint64_t messages_compressed; /* permessage-deflate: compressions (per message x window) */
    uint64_t dropped[METRICS_DROP_REASONS];
    uint64_t store_errors[METRICS_STORE_ERROR_KINDS];
    uint64_t store_reconnects, store_resyncs;
    uint64_t store_primary_changes; /* Sentinel: a new primary address learnt */
    uint64_t store_not_primary;     /* Sentinel: a server refused as not the primary */
    metrics_hist_t api_duration[METRICS_ENDPOINTS];
    metrics_hist_t store_duration[METRICS_STORE_OPS];
} metrics_counts_t;

/* Label sets known only at run time (a status and an errorCode): a small
 * append-only table per shard. */
typedef enum { METRICS_SERIES_REQUEST, METRICS_SERIES_REFUSED } metrics_series_kind_t;
#define METRICS_SERIES_MAX 128
#define METRICS_CODE_MAX 40
typedef struct metrics_series {
    uint8_t kind;     /* metrics_series_kind_t */
    uint8_t endpoint; /* METRICS_SERIES_REQUEST */
    uint16_t status;  /* METRICS_SERIES_REQUEST */
    char code[METRICS_CODE_MAX]; /* errorCode, "" for none */
    uint64_t count;
} metrics_series_t;

typedef struct metrics_shard {
    _Alignas(64) metrics_counts_t c;
    int64_t subscribed;  /* dsock_store_subscribed of this shard: -1 when it has none */
    size_t nseries;      /* published with a release store after the entry is written */
    metrics_series_t series[METRICS_SERIES_MAX];
} metrics_shard_t;

#define METRICS_MAX_SHARDS 33 /* the main thread's, and up to 32 loop threads */

extern _Thread_local metrics_shard_t *metrics_self;

/* ---- writing (any thread, into its own shard) ------------------------------ */

static inline void metrics_add_(uint64_t *p, uint64_t n) {
    /* Only this thread writes *p, so the plain read is not a race. */
    __atomic_store_n(p, *p + n, __ATOMIC_RELAXED);
}
#define METRICS_ADD(field, n) metrics_add_(&metrics_self->c.field, (uint64_t)(n))
#define METRICS_INC(field) METRICS_ADD(field, 1)

void metrics_observe(metrics_hist_t *h, uint64_t ns);
static inline void metrics_observe_api(metrics_endpoint_t ep, uint64_t ns) {
    metrics_observe(&metrics_self->c.api_duration[ep], ns);
}
static inline void metrics_observe_store(metrics_store_op_t op, uint64_t ns) {
    metrics_observe(&metrics_self->c.store_duration[op], ns);
}

/* Monotonic nanoseconds (for durations). */
uint64_t metrics_now_ns(void);

/* An HTTP answer: dsock_api_requests_total{endpoint,status,code}, the request
 * duration histogram and, for a refused /connect (status >= 400),
 * dsock_handshakes_refused_total{code}. code may be NULL or "". */
void metrics_http_answered(metrics_endpoint_t ep, int status, const char *code, uint64_t ns);
metrics_endpoint_t metrics_endpoint_of(const char *path);
const char *metrics_endpoint_name(metrics_endpoint_t ep);

/* Copies the "errorCode" string of a JSON error body into out (at most cap - 1
 * bytes; "" when there is none). I/O-free. */
void metrics_error_code_of(const char *body, size_t len, char *out, size_t cap);

void metrics_set_subscribed(int v); /* this thread's shard: 0, 1, or -1 (none) */

/* ---- shards (main thread, before the loop threads start) ------------------- */

metrics_shard_t *metrics_shard_new(void); /* NULL past METRICS_MAX_SHARDS */
void metrics_bind(metrics_shard_t *s);    /* from the thread that writes into s */

/* ---- reading ------------------------------------------------------------- */

/* A gauge whose value is asked for at each scrape (fn runs on the scraping
 * thread: it must be thread-safe). name and help are literals, not copied. */
typedef double (*metrics_gauge_fn)(void *ud);
#define METRICS_MAX_GAUGES 8
/* Main thread, before the loop threads start. Returns 0 or -1 when full. */
int metrics_gauge_register(const char *name, const char *help, metrics_gauge_fn fn, void *ud);

/* What the process is (dsock_build_info) and which families apply to it. */
typedef struct metrics_identity {
    const char *version, *revision, *role; /* literals */
    bool api;      /* serves the API (api, standalone) */
    bool worker;   /* serves WebSockets (worker, standalone) */
    bool redis;    /* the store is Redis */
} metrics_identity_t;
void metrics_set_identity(const metrics_identity_t *id); /* main thread, at startup */

/* The memory store's sizes, asked for at each scrape (standalone). */
void metrics_set_store_sizes(void (*fn)(void *ud, uint64_t *claims, uint64_t *records),
                             void *ud);

typedef struct metrics_process {
    bool ok;                  /* false: /proc could not be read; process_* left out */
    double cpu_seconds, start_time_seconds;
    uint64_t resident_bytes, virtual_bytes, threads;
    uint64_t open_fds, max_fds;
} metrics_process_t;

typedef struct metrics_gauge_value {
    const char *name, *help;
    double value;
} metrics_gauge_value_t;

/* Everything one scrape writes. */
typedef struct metrics_snapshot {
    metrics_identity_t id;
    metrics_counts_t c;
    metrics_series_t series[2 * METRICS_SERIES_MAX]; /* merged over the shards */
    size_t nseries;
    int64_t subscribed;       /* -1: not applicable */
    bool has_store_sizes;
    uint64_t store_claims, store_records;
    metrics_gauge_value_t gauges[METRICS_MAX_GAUGES];
    size_t ngauges;
    metrics_process_t process;
} metrics_snapshot_t;

/* Sums every shard, asks the gauges, reads /proc/self. */
void metrics_collect(metrics_snapshot_t *out);

/* Writes the exposition text. I/O-free. */
void metrics_render(buf_t *out, const metrics_snapshot_t *s);

/* Merges one series into a snapshot's table (adds its count to an equal one). */
void metrics_series_merge(metrics_snapshot_t *s, const metrics_series_t *e);

/* /proc parsers, I/O-free (exposed for tests). Each returns 0, or -1 when the
 * text is not what Linux writes. clk_tck: sysconf(_SC_CLK_TCK); page: page size;
 * boot_time: btime of /proc/stat. */
int metrics_parse_proc_stat(const char *text, long clk_tck, long page, uint64_t boot_time,
                            metrics_process_t *out);
int metrics_parse_btime(const char *text, uint64_t *out);
int metrics_parse_max_fds(const char *limits_text, uint64_t *out);

/* Request ids for the access log: reuses what the client sent when it is 1 to
 * METRICS_REQID_MAX bytes of [A-Za-z0-9._:-] (NULL: none), else makes one of 16
 * random hex digits. out has METRICS_REQID_MAX + 1 bytes. */
#define METRICS_REQID_MAX 64
void metrics_request_id(const char *given, size_t given_len, char *out);
bool metrics_request_id_valid(const char *s, size_t len);

#endif
