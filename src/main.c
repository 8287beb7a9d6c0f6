/* dsock's entry point: reads the configuration, wires a role (api, worker or
 * both) to a store (Redis or memory) on one libuv loop, and runs it until
 * SIGTERM/SIGINT, then shuts down in order: stop accepting, close clients,
 * flush the store, close the loop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api/api.h"
#include "common/config.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rand.h"
#include "net/http_server.h"
#include "store/store_memory.h"
#include "store/store_redis.h"
#include "worker/worker.h"

typedef struct app {
    uv_loop_t *loop;
    config_t cfg;
    store_t *store;
    http_server_t *server;
    api_t *api;
    worker_t *worker;
    uv_signal_t sigterm, sigint;
    bool stopping;
} app_t;

static void route(void *ud, http_conn_t *c, const http_request_t *req) {
    app_t *app = ud;
    if (app->api && api_handle(app->api, c, req)) return;
    if (app->worker && worker_handle(app->worker, c, req)) return;
    http_conn_respond_error(c, 404, "NOT_FOUND", "no such endpoint");
}

static void store_closed(void *ud) {
    app_t *app = ud;
    app->store = NULL;
}

static void worker_closed(void *ud) {
    app_t *app = ud;
    app->worker = NULL;
    /* The worker unregistered its connections: now the store may flush and go. */
    store_close(app->store, store_closed, app);
}

static void server_closed(void *ud) {
    app_t *app = ud;
    app->server = NULL;
    api_free(app->api);
    app->api = NULL;
    if (app->worker)
        worker_close(app->worker, worker_closed, app);
    else
        store_close(app->store, store_closed, app);
}

static void on_signal(uv_signal_t *h, int signum) {
    app_t *app = h->data;
    if (app->stopping) return;
    app->stopping = true;
    log_info("received %s, shutting down", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    http_server_close(app->server, server_closed, app);
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
    config_write_default_file(&app.cfg);
    log_set_debug(app.cfg.debug);
    signal(SIGPIPE, SIG_IGN);

    app.loop = uv_default_loop();
    if (role == CONFIG_ROLE_STANDALONE) {
        app.store = store_memory_new(app.loop);
    } else {
        store_redis_config_t rc_cfg = {
            .host = app.cfg.redis_host,
            .password = app.cfg.redis_password,
            .db = (int)app.cfg.redis_db,
            .timeout_ms = (unsigned)app.cfg.redis_timeout_ms,
            .worker_ttl_s = (unsigned)app.cfg.worker_ttl,
        };
        app.store = store_redis_new(app.loop, &rc_cfg);
    }

    http_server_config_t scfg = {
        .limits = {.max_header_bytes = (size_t)app.cfg.max_header_bytes,
                   .max_headers = 100,
                   .max_body_bytes = (size_t)app.cfg.max_body_bytes},
        .idle_timeout_ms = (unsigned)(app.cfg.idle_timeout * 1000),
        .max_connections = (size_t)app.cfg.max_connections,
    };
    app.server = http_server_new(app.loop, &scfg, route, &app);

    char worker_id[RAND_UUID_LEN + 1] = "-";
    if (role != CONFIG_ROLE_WORKER) {
        api_config_t acfg = {.token = app.cfg.token};
        app.api = api_new(app.store, &acfg);
    }
    if (role != CONFIG_ROLE_API) {
        rand_uuid4(worker_id);
        worker_config_t wcfg = {
            .id = worker_id,
            .jwt_secret = app.cfg.jwt_secret,
            .ping_interval_s = (unsigned)app.cfg.ping_interval,
            .ping_timeout_s = (unsigned)app.cfg.ping_timeout,
            .max_message_bytes = (uint64_t)app.cfg.max_message_bytes,
            .max_queued_bytes = (uint64_t)app.cfg.max_queued_bytes,
        };
        app.worker = worker_new(app.loop, app.store, &wcfg);
    }

    if (http_server_listen(app.server, app.cfg.address, err, sizeof err)) {
        log_error("%s", err);
        app.stopping = true;
        http_server_close(app.server, server_closed, &app);
        uv_run(app.loop, UV_RUN_DEFAULT);
        uv_loop_close(app.loop);
        config_free(&app.cfg);
        return 1;
    }

    uv_signal_init(app.loop, &app.sigterm);
    uv_signal_init(app.loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);

    log_info("dsock %s %s listening on %s, store %s, worker %s, config %s%s%s%s%s", DSOCK_VERSION,
             sub, app.cfg.address, store_describe(app.store), worker_id,
             app.cfg.source_file ? app.cfg.source_file : "none",
             app.cfg.wrote_default ? " (defaults written)" : "",
             app.cfg.jwt_secret ? ", JWT enabled" : "",
             generated_token[0] ? ", generated token " : "", generated_token);

    uv_run(app.loop, UV_RUN_DEFAULT);
    int close_rc = uv_loop_close(app.loop);
    if (close_rc) log_error("event loop closed with open handles: %s", uv_strerror(close_rc));
    config_free(&app.cfg);
    log_info("stopped");
    return close_rc ? 1 : 0;
}
