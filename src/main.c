/* dsock's entry point: reads the configuration, wires a role (api, worker or
 * both) to a store (Redis or memory) on `threads` libuv loops, one per thread,
 * and runs them until SIGTERM/SIGINT (handled on the main thread only), then
 * drains and shuts down in order (docs/probes-and-drain.md): turn not-ready and
 * refuse new requests, let the requests in flight finish, close the clients with
 * 1001 over drain_seconds, remove the worker's entries from the store, close the
 * loops, join the threads, exit 0. A second signal exits at once. */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "api/api.h"
#include "common/config.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rand.h"
#include "net/http_server.h"
#include "ops/healthcheck.h"
#include "ops/metrics.h"
#include "ops/metrics_http.h"
#include "ops/probes.h"
#include "store/store_memory.h"
#include "store/store_redis.h"
#include "worker/worker.h"

/* One loop thread: its own loop, HTTP server (all listening on one address with
 * SO_REUSEPORT), API, worker and store (a view of the shared memory store, or
 * its own Redis connection). Only its thread touches these after startup. */
typedef struct shard {
    struct app *app;
    uv_loop_t loop;
    pthread_t thread;
    uv_async_t ctl;       /* main -> shard: run the next shutdown phase */
    atomic_int phase_req; /* the phase main asked for */
    int phase_run;        /* the last phase this shard started (its thread only) */
    uv_timer_t beat;      /* probes: this loop's heartbeat and its store's readiness */
    int probe_slot;
    store_t *store;
    http_server_t *server;
    http_server_t *mserver; /* metrics_address: shard 0 only, else NULL */
    metrics_shard_t *metrics;
    api_t *api;
    worker_t *worker;
} shard_t;

typedef struct app {
    uv_loop_t *loop; /* the main thread's: signals and shutdown only */
    config_t cfg;
    unsigned nshards;
    shard_t *shards;
    store_memory_shared_t *mem; /* standalone: the records every shard's view shares */
    metrics_http_t *metrics;    /* who may GET /metrics: shared, immutable */
    atomic_size_t http_slots;   /* max_connections: HTTP connections of all shards */
    atomic_size_t ws_slots;     /* max_connections: WebSocket connections of all shards */
    worker_t **workers;         /* standalone on several threads: every shard's worker */
    pthread_mutex_t phase_lock;
    uv_async_t phase_async;     /* shard -> main: a shard finished the current phase */
    unsigned phase_finished;    /* shards done with the current phase (under phase_lock) */
    int phase;                  /* the phase running (main thread only) */
    unsigned drain_ms;          /* phase 2's window: drain_seconds, 0 after a failed start */
    uv_timer_t beat;            /* probes: the main loop's heartbeat */
    int probe_slot;
    uv_signal_t sigterm, sigint;
    bool signals_on;
    bool stopping;
} app_t;

/* Shutdown runs in four phases over every shard, each started by main (from its
 * loop, which keeps turning, so a second signal is still heard) once every shard
 * finished the previous one (docs/architecture.md, "Drain"):
 *   1. quiesce: the process is draining (not ready; the precheck refuses every new
 *      request but the probes); the HTTP server closes idle keep-alive connections
 *      and answers with Connection: close; the phase ends when no request is in
 *      flight on the shard;
 *   2. drain: the worker closes its clients with 1001 spread over drain_ms (every
 *      shard over the same window) while messages still reach those not closed
 *      yet; a shard with no client left is done at once;
 *   3. close the HTTP server and free the API: no request, hence no send, is left
 *      anywhere (a send may hand messages to any shard's store view). Not before
 *      every shard drained: the listeners share the port (SO_REUSEPORT), and one
 *      closing early would reset the connections in its accept queue, probes
 *      included, while others still answer;
 *   4. close the worker (the last clients' closing handshakes, unregistrations),
 *      then the store (Redis: the worker's leftover entries and keys are removed);
 *      the shard's last handle goes and its loop ends. */
static void phase_finished(shard_t *sh) {
    app_t *app = sh->app;
    /* The wake-up is sent under the lock: once main has counted every shard (under
     * the lock too) no shard touches phase_async any more, so main may close it. */
    pthread_mutex_lock(&app->phase_lock);
    app->phase_finished++;
    uv_async_send(&app->phase_async);
    pthread_mutex_unlock(&app->phase_lock);
}


/* On the request line and headers, before any body byte is read: each role the
 * shard runs (standalone runs both) routes, checks the method and authorizes what
 * it can; an unknown path is a 404. Only an accepted request gets its body read
 * (and a 100 Continue), then goes to route(). */
/* dSock 0.3's GET|POST /ping on every role, without token: "pong" as text, as its
 * gin handler answered (docs/api.md). Answered from the headers, so a POST body
 * is never read. A liveness check: it still answers while draining. */
static http_verdict_t ping_precheck(http_conn_t *c, const http_request_t *req) {
    if (!req->path || strcmp(req->path, "/ping")) return HTTP_NOT_MINE;
    if (req->method != HTTP_METHOD_GET && req->method != HTTP_METHOD_HEAD &&
        req->method != HTTP_METHOD_POST) {
        static const char body[] = "{\"success\":false,\"error\":\"method not allowed\","
                                   "\"errorCode\":\"METHOD_NOT_ALLOWED\"}";
        http_conn_respond(c, 405, "Allow: GET, HEAD, POST\r\n", body, sizeof body - 1);
        return HTTP_ANSWERED;
    }
    http_conn_respond_type(c, 200, "text/plain; charset=utf-8", "Cache-Control: no-store\r\n",
                           "pong", 4);
    return HTTP_ANSWERED;
}

static bool precheck(void *ud, http_conn_t *c, const http_request_t *req) {
    shard_t *sh = ud;
    /* The process's own endpoints first: the probes and /ping (no token, answered
     * here), then /metrics, which stays readable while draining. */
    if (probes_precheck(c, req) != HTTP_NOT_MINE) return false;
    if (ping_precheck(c, req) != HTTP_NOT_MINE) return false;
    http_verdict_t v = metrics_http_precheck(sh->app->metrics, c, req, false);
    if (v != HTTP_NOT_MINE) return v == HTTP_ACCEPTED;
    /* Draining: the roles take no new request (what was accepted before finishes). */
    if (probes_draining()) {
        http_conn_respond_error(c, 503, "SHUTTING_DOWN", "the server is shutting down");
        return false;
    }
    if (sh->api) v = api_precheck(sh->api, c, req);
    if (v == HTTP_NOT_MINE && sh->worker) v = worker_precheck(sh->worker, c, req);
    if (v == HTTP_NOT_MINE) {
        http_conn_respond_error(c, 404, "NOT_FOUND", "no such endpoint");
        return false;
    }
    return v == HTTP_ACCEPTED;
}

static void route(void *ud, http_conn_t *c, const http_request_t *req) {
    shard_t *sh = ud;
    if (metrics_http_handle(sh->app->metrics, c, req, false)) return;
    if (sh->api && api_handle(sh->api, c, req)) return;
    if (sh->worker && worker_handle(sh->worker, c, req)) return;
    http_conn_respond_error(c, 404, "NOT_FOUND", "no such endpoint");
}

/* The metrics_address listener: the probes and /metrics, everything else 404. */
static bool metrics_precheck(void *ud, http_conn_t *c, const http_request_t *req) {
    shard_t *sh = ud;
    if (probes_precheck(c, req) != HTTP_NOT_MINE) return false;
    http_verdict_t v = metrics_http_precheck(sh->app->metrics, c, req, true);
    if (v == HTTP_NOT_MINE) {
        http_conn_respond_error(c, 404, "NOT_FOUND", "no such endpoint");
        return false;
    }
    return v == HTTP_ACCEPTED;
}

static void metrics_route(void *ud, http_conn_t *c, const http_request_t *req) {
    shard_t *sh = ud;
    if (metrics_http_handle(sh->app->metrics, c, req, true)) return;
    http_conn_respond_error(c, 404, "NOT_FOUND", "no such endpoint");
}

static double gauge_ready(void *ud) {
    const char *reason;
    return probes_ready(&reason) ? 1 : 0;
}

static double gauge_draining(void *ud) { return probes_draining() ? 1 : 0; }

static void memory_sizes(void *ud, uint64_t *claims, uint64_t *records) {
    size_t c, r;
    store_memory_shared_sizes(ud, &c, &r);
    *claims = c;
    *records = r;
}

static void store_closed(void *ud) {
    shard_t *sh = ud;
    sh->store = NULL;
    uv_close((uv_handle_t *)&sh->ctl, NULL); /* the loop's last handle */
    phase_finished(sh);
}

static void worker_closed(void *ud) {
    shard_t *sh = ud;
    sh->worker = NULL;
    /* The worker unregistered its connections: now the store may flush and go. */
    store_close(sh->store, store_closed, sh);
}

static void server_closed(void *ud) {
    shard_t *sh = ud;
    sh->server = NULL;
    api_free(sh->api);
    sh->api = NULL;
    phase_finished(sh);
}

static void quiesced(void *ud) { phase_finished(ud); }

static void drained(void *ud) { phase_finished(ud); }

/* Every PROBES_BEAT_MS on the shard's loop: "this loop turns", and whether its
 * store can do its job (the store keeps that state up to date by itself). */
static void on_beat(uv_timer_t *t) {
    shard_t *sh = t->data;
    const char *reason = NULL;
    probes_slot_beat(sh->probe_slot);
    store_ready(sh->store, &reason);
    probes_slot_set_ready(sh->probe_slot, reason);
}

static void on_ctl(uv_async_t *h) {
    shard_t *sh = h->data;
    int want = atomic_load(&sh->phase_req);
    if (want >= 1 && sh->phase_run < 1) {
        sh->phase_run = 1;
        /* Other processes share the port: let them take the new connections. */
        if (sh->app->cfg.reuse_port) http_server_stop_listening(sh->server);
        http_server_drain(sh->server, quiesced, sh);
    }
    if (want >= 2 && sh->phase_run < 2) {
        sh->phase_run = 2;
        if (sh->worker)
            worker_drain(sh->worker, sh->app->drain_ms, drained, sh);
        else
            drained(sh);
    }
    if (want >= 3 && sh->phase_run < 3) {
        sh->phase_run = 3;
        /* The metrics listener lives as long as the main one: a drain can be watched. */
        if (sh->mserver) http_server_close(sh->mserver, NULL, NULL);
        sh->mserver = NULL;
        http_server_close(sh->server, server_closed, sh);
    }
    if (want >= 4 && sh->phase_run < 4) {
        sh->phase_run = 4;
        /* No probe can reach this shard any more (its server is closed). */
        probes_slot_retire(sh->probe_slot);
        uv_close((uv_handle_t *)&sh->beat, NULL);
        if (sh->worker)
            worker_close(sh->worker, worker_closed, sh);
        else
            store_close(sh->store, store_closed, sh);
    }
}

static void request_phase(app_t *app, int phase) {
    app->phase = phase;
    for (unsigned i = 0; i < app->nshards; i++) {
        atomic_store(&app->shards[i].phase_req, phase);
        uv_async_send(&app->shards[i].ctl);
    }
}

static void on_main_beat(uv_timer_t *t) {
    app_t *app = t->data;
    probes_slot_beat(app->probe_slot);
}

/* On the main loop: the next phase once every shard finished this one; after the
 * last, the main loop's own handles close, its loop ends and main joins the
 * threads (each ends when its loop has no handle left). */
static void on_phase_async(uv_async_t *h) {
    app_t *app = h->data;
    pthread_mutex_lock(&app->phase_lock);
    bool all = app->phase_finished == app->nshards;
    if (all) app->phase_finished = 0;
    pthread_mutex_unlock(&app->phase_lock);
    if (!all) return;
    if (app->phase < 4) {
        if (app->phase == 1) log_info("requests in flight finished");
        request_phase(app, app->phase + 1);
        return;
    }
    uv_close((uv_handle_t *)&app->phase_async, NULL);
    uv_close((uv_handle_t *)&app->beat, NULL);
    if (app->signals_on) {
        uv_close((uv_handle_t *)&app->sigterm, NULL);
        uv_close((uv_handle_t *)&app->sigint, NULL);
    }
}

static void start_shutdown(app_t *app) {
    app->stopping = true;
    probes_set_draining();
    request_phase(app, 1);
}

/* The first signal starts the drain; a second one ends the process at once, with
 * 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), the code of a
 * process killed by it: the drain was cut short, clients see their connections
 * drop, and the worker's Redis entries are left for the other workers' sweep
 * (after worker_ttl). Nothing is closed or flushed on the way out. */
static void on_signal(uv_signal_t *h, int signum) {
    app_t *app = h->data;
    const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
    if (app->stopping) {
        log_warn("second signal: exiting at once", LOG_S("signal", name),
                 LOG_I("exit_code", 128 + signum));
        _exit(128 + signum);
    }
    log_info("shutting down", LOG_S("signal", name), LOG_U("drain_seconds", app->drain_ms / 1000));
    start_shutdown(app);
}

static void *shard_main(void *arg) {
    shard_t *sh = arg;
    metrics_bind(sh->metrics); /* this thread's counters (ops/metrics.h) */
    uv_run(&sh->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&sh->loop);
    if (rc) log_error("event loop closed with open handles", LOG_S("error", uv_strerror(rc)));
    return NULL;
}

/* threads = 0: one per online CPU, at most 16. A worker on Redis always runs one:
 * the Redis store resyncs per worker id, so one id must not span threads (run a
 * worker process per core instead). */
static unsigned shard_count(const config_t *cfg, config_role_t role) {
    if (role == CONFIG_ROLE_WORKER) return 1;
    long n = cfg->threads;
    if (n <= 0) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 16) n = 16;
    return (unsigned)n;
}

/* The address every shard after the first listens on: the first one's, with the
 * port it actually got (the configured port may be 0). */
static void bound_address(const char *address, int port, char *out, size_t outlen) {
    char host[256];
    int ignored;
    if (config_split_address(address, host, sizeof host, &ignored) < 0) {
        snprintf(out, outlen, "%s", address);
        return;
    }
    snprintf(out, outlen, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

static void print_version(void) {
    printf("dsock %s (revision %s, built %s, libuv %s)\n", DSOCK_VERSION, DSOCK_REVISION,
           __DATE__, uv_version_string());
}

int main(int argc, char **argv) {
    const char *sub = "standalone";
    int first_opt = 1;
    if (argc > 1 && argv[1][0] != '-') {
        sub = argv[1];
        first_opt = 2;
    } else if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("dsock %s, a distributed WebSocket broker\n\n", DSOCK_VERSION);
        config_usage(NULL);
        return 0;
    } else if (argc > 1 && !strcmp(argv[1], "--version")) {
        print_version();
        return 0;
    }
    /* A client, not a role: no configuration, no loop (src/ops/healthcheck.c). */
    if (!strcmp(sub, "healthcheck")) return healthcheck_main(argc - 1, argv + 1);
    config_role_t role;
    if (!strcmp(sub, "api")) {
        role = CONFIG_ROLE_API;
    } else if (!strcmp(sub, "worker")) {
        role = CONFIG_ROLE_WORKER;
    } else if (!strcmp(sub, "standalone")) {
        role = CONFIG_ROLE_STANDALONE;
    } else {
        static const char *const subcommands[] = {"standalone", "api", "worker"};
        const char *hint = config_suggest(sub, subcommands, 3);
        fprintf(stderr, "dsock: unknown subcommand \"%s\"%s%s%s (expected standalone, api or "
                        "worker; see dsock --help)\n",
                sub, hint ? " (did you mean " : "", hint ? hint : "", hint ? "?)" : "");
        return 2;
    }
    log_set_role(sub);
    /* Before any thread starts (common/mem.h: the worker's allocator policy). */
    if (role == CONFIG_ROLE_WORKER) mem_configure_worker();

    static app_t app;
    char err[512];
    int rc = config_load(&app.cfg, argc - first_opt, argv + first_opt, err, sizeof err);
    switch (rc) {
    case CONFIG_OK:
        break;
    case CONFIG_HELP:
        config_usage(sub);
        return 0;
    case CONFIG_VERSION:
        print_version();
        return 0;
    case CONFIG_USAGE:
        fprintf(stderr, "dsock: %s\n", err);
        return 2;
    default:
        fprintf(stderr, "dsock: %s\n", err);
        return 1;
    }
    char generated_token[RAND_ID_LEN + 1] = "";
    if (role == CONFIG_ROLE_STANDALONE && !app.cfg.token) {
        /* The first run must work and must never be open: make a token up. */
        rand_id(generated_token);
        app.cfg.token = mem_strdup(generated_token);
    }
    if (config_validate(&app.cfg, role, err, sizeof err)) {
        fprintf(stderr, "dsock: %s\n", err);
        config_free(&app.cfg);
        return 1;
    }
    log_format_t log_format;
    if (log_format_parse(app.cfg.log_format, &log_format)) {
        fprintf(stderr, "dsock: log_format (%s) must be logfmt or json\n",
                config_origin(&app.cfg, "log_format"));
        config_free(&app.cfg);
        return 1;
    }
    log_set_format(log_format);
    log_set_debug(app.cfg.debug);
    config_log_compat(&app.cfg, role);
    config_write_default_file(&app.cfg);
    signal(SIGPIPE, SIG_IGN);

    /* The hash maps' secret key, drawn before any map or thread exists (ids from
     * clients must not be able to collide on purpose: docs/architecture.md). */
    hmap_seed();
    app.loop = uv_default_loop();
    app.nshards = shard_count(&app.cfg, role);
    app.shards = mem_calloc(app.nshards, sizeof *app.shards);
    bool threaded = app.nshards > 1;
    if (role == CONFIG_ROLE_STANDALONE) {
        app.mem = store_memory_shared_new();
        store_memory_shared_set_idempotency(app.mem, (unsigned)app.cfg.idempotency_ttl,
                                            (size_t)app.cfg.idempotency_max_keys);
    }
    metrics_set_identity(&(metrics_identity_t){
        .version = DSOCK_VERSION, .revision = DSOCK_REVISION, .role = sub,
        .api = role != CONFIG_ROLE_WORKER, .worker = role != CONFIG_ROLE_API, .redis = !app.mem});
    if (app.mem) metrics_set_store_sizes(memory_sizes, app.mem);
    metrics_gauge_register("dsock_ready", "1 when /readyz answers ok, else 0.", gauge_ready, NULL);
    metrics_gauge_register("dsock_draining", "1 once a drain (SIGTERM/SIGINT) has begun.",
                           gauge_draining, NULL);
    bool metrics_separate = app.cfg.metrics_address && *app.cfg.metrics_address;
    app.metrics = metrics_http_new(&(metrics_http_config_t){
        .token = app.cfg.token, .public_ = app.cfg.metrics_public, .separate = metrics_separate});
    atomic_init(&app.http_slots, 0);
    atomic_init(&app.ws_slots, 0);
    pthread_mutex_init(&app.phase_lock, NULL);
    app.drain_ms = (unsigned)app.cfg.drain_seconds * 1000u;
    /* Probes: the main loop and every shard's loop each beat their own slot. */
    uv_async_init(app.loop, &app.phase_async, on_phase_async);
    app.phase_async.data = &app;
    app.probe_slot = probes_slot_new();
    probes_slot_set_ready(app.probe_slot, NULL); /* the main loop has no store */
    uv_timer_init(app.loop, &app.beat);
    app.beat.data = &app;
    uv_timer_start(&app.beat, on_main_beat, PROBES_BEAT_MS, PROBES_BEAT_MS);

    http_server_config_t scfg = {
        .limits = {.max_header_bytes = (size_t)app.cfg.max_header_bytes,
                   .max_headers = 100,
                   .max_body_bytes = (size_t)app.cfg.max_body_bytes},
        .idle_timeout_ms = (unsigned)(app.cfg.idle_timeout * 1000),
        .max_connections = (size_t)app.cfg.max_connections,
        .shared_count = threaded ? &app.http_slots : NULL,
        .log_requests = app.cfg.log_requests,
        /* Threads share the port among themselves anyway; reuse_port lets other
         * processes join it too (docs/configuration.md, "reuse_port"). */
        .reuse_port = threaded || app.cfg.reuse_port,
    };
    store_redis_config_t rc_cfg = {
        .host = app.cfg.redis_host,
        .username = app.cfg.redis_username,
        .password = app.cfg.redis_password,
        .db = (int)app.cfg.redis_db,
        .timeout_ms = (unsigned)app.cfg.redis_timeout_ms,
        .worker_ttl_s = (unsigned)app.cfg.worker_ttl,
        .max_body_bytes = (uint64_t)app.cfg.max_body_bytes,
        .idempotency_ttl_s = (unsigned)app.cfg.idempotency_ttl,
        .sentinels = app.cfg.redis_sentinels,
        .master_name = app.cfg.redis_master_name,
        .sentinel_password = app.cfg.redis_sentinel_password,
    };
    /* One worker id for the process, whatever the number of threads. */
    char worker_id[RAND_UUID_LEN + 1] = "-";
    if (role != CONFIG_ROLE_API) {
        rand_uuid4(worker_id);
        log_set_worker(worker_id); /* on every line from now on */
    }

    /* Signals reach the main thread only: the shards' threads block them. They are
     * blocked from before the first listen until the handlers are installed, so a
     * SIGTERM that arrives as soon as the port answers is held, then handled as a
     * clean shutdown (not the default action, which would kill the process). */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    pthread_sigmask(SIG_BLOCK, &block, &old);

    /* Everything is built and bound here, on the main thread; a shard's thread
     * starts only once its objects exist (pthread_create orders the writes). */
    int exit_code = 0;
    char listen_addr[300];
    snprintf(listen_addr, sizeof listen_addr, "%s", app.cfg.address);
    unsigned built = 0;
    for (unsigned i = 0; i < app.nshards; i++) {
        shard_t *sh = &app.shards[i];
        sh->app = &app;
        uv_loop_init(&sh->loop);
        atomic_init(&sh->phase_req, 0);
        uv_async_init(&sh->loop, &sh->ctl, on_ctl);
        sh->ctl.data = sh;
        sh->probe_slot = probes_slot_new();
        sh->metrics = metrics_shard_new();
        sh->store = app.mem ? store_memory_view_new(app.mem, &sh->loop)
                            : store_redis_new(&sh->loop, &rc_cfg);
        sh->server = http_server_new(&sh->loop, &scfg, precheck, route, sh);
        if (role != CONFIG_ROLE_WORKER) {
            api_config_t acfg = {.token = app.cfg.token};
            sh->api = api_new(sh->store, &acfg);
        }
        if (role != CONFIG_ROLE_API) {
            worker_config_t wcfg = {
                .id = worker_id,
                .jwt_secret = app.cfg.jwt_secret,
                .ping_interval_s = (unsigned)app.cfg.ping_interval,
                .ping_timeout_s = (unsigned)app.cfg.ping_timeout,
                .max_message_bytes = (uint64_t)app.cfg.max_message_bytes,
                .max_queued_bytes = (uint64_t)app.cfg.max_queued_bytes,
                .compression = !app.cfg.compression || strcmp(app.cfg.compression, "off") != 0,
                .compression_min_bytes = (uint64_t)app.cfg.compression_min_bytes,
                .default_channels = app.cfg.default_channels,
                .shared_slots = threaded ? &app.ws_slots : NULL,
            };
            sh->worker = worker_new(&sh->loop, sh->store, &wcfg);
        }
        uv_timer_init(&sh->loop, &sh->beat);
        sh->beat.data = sh;
        uv_timer_start(&sh->beat, on_beat, 0, PROBES_BEAT_MS);
        built++;
        if (http_server_listen(sh->server, listen_addr, err, sizeof err)) {
            log_error("listening failed", LOG_S("error", err));
            exit_code = 1;
            break;
        }
        if (i == 0)
            bound_address(app.cfg.address, http_server_port(sh->server), listen_addr,
                          sizeof listen_addr);
        if (i == 0 && metrics_separate) {
            /* The scraper's port, on the first loop: a few connections, no sharing. */
            http_server_config_t mcfg = scfg;
            mcfg.max_connections = 64;
            mcfg.shared_count = NULL;
            mcfg.reuse_port = false;
            sh->mserver = http_server_new(&sh->loop, &mcfg, metrics_precheck, metrics_route, sh);
            if (http_server_listen(sh->mserver, app.cfg.metrics_address, err, sizeof err)) {
                log_error("listening failed", LOG_S("error", err));
                exit_code = 1;
                break;
            }
        }
    }

    /* Standalone: a user's connections are placed on one thread (worker_set_peers). */
    if (app.mem && !exit_code && built > 1) {
        app.workers = mem_calloc(built, sizeof *app.workers);
        for (unsigned i = 0; i < built; i++) app.workers[i] = app.shards[i].worker;
        for (unsigned i = 0; i < built; i++) worker_set_peers(app.workers[i], app.workers, built, i);
    }

    for (unsigned i = 0; i < built; i++) {
        shard_t *sh = &app.shards[i];
        int prc = pthread_create(&sh->thread, NULL, shard_main, sh);
        if (prc) log_fatal("cannot start a thread", LOG_S("error", strerror(prc)));
    }
    app.nshards = built;

    if (exit_code) {
        /* Listening failed: close what was built, in the usual order, at once. */
        app.drain_ms = 0;
        start_shutdown(&app);
        uv_run(app.loop, UV_RUN_DEFAULT);
        for (unsigned i = 0; i < app.nshards; i++) pthread_join(app.shards[i].thread, NULL);
        uv_loop_close(app.loop);
        pthread_mutex_destroy(&app.phase_lock);
        store_memory_shared_free(app.mem);
        metrics_http_free(app.metrics);
        free(app.shards);
        free(app.workers);
        config_free(&app.cfg);
        return exit_code;
    }

    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    app.signals_on = true;
    pthread_sigmask(SIG_SETMASK, &old, NULL); /* a signal held meanwhile is handled now */

    /* The generated token is the one secret ever logged, on purpose and once: the
     * operator has no other way to learn it (docs/logging.md). */
    log_info("listening", LOG_S("version", DSOCK_VERSION), LOG_S("address", listen_addr),
             LOG_S("store", store_describe(app.shards[0].store)), LOG_U("threads", app.nshards),
             LOG_S("config", app.cfg.source_file),
             LOG_S("metrics_address", metrics_separate ? app.cfg.metrics_address : NULL),
             LOG_BOOL("defaults_written", app.cfg.wrote_default),
             LOG_BOOL("jwt", app.cfg.jwt_secret != NULL),
             LOG_S("generated_token", generated_token[0] ? generated_token : NULL));

    uv_run(app.loop, UV_RUN_DEFAULT); /* until the last shutdown phase is over */
    for (unsigned i = 0; i < app.nshards; i++) pthread_join(app.shards[i].thread, NULL);
    int close_rc = uv_loop_close(app.loop);
    if (close_rc)
        log_error("event loop closed with open handles", LOG_S("error", uv_strerror(close_rc)));
    store_memory_shared_free(app.mem);
    metrics_http_free(app.metrics);
    pthread_mutex_destroy(&app.phase_lock);
    free(app.shards);
    free(app.workers);
    config_free(&app.cfg);
    log_info("stopped");
    return close_rc ? 1 : 0;
}
