/* GET /metrics: authorization (metrics_http.h) and the scrape. */
#include "ops/metrics_http.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "ops/metrics.h"
#include "protocol/bearer_token.h"

struct metrics_http {
    bool public_;
    bool separate;
    bearer_token_t token;
};

metrics_http_t *metrics_http_new(const metrics_http_config_t *cfg) {
    metrics_http_t *m = mem_calloc(1, sizeof *m);
    m->public_ = cfg->public_;
    m->separate = cfg->separate;
    bearer_token_init(&m->token, cfg->token);
    return m;
}

void metrics_http_free(metrics_http_t *m) {
    if (!m) return;
    bearer_token_clear(&m->token);
    free(m);
}

http_verdict_t metrics_http_precheck(const metrics_http_t *m, http_conn_t *c,
                                     const http_request_t *req, bool on_metrics_listener) {
    if (!req->path || strcmp(req->path, "/metrics") != 0) return HTTP_NOT_MINE;
    if (m->separate && !on_metrics_listener) {
        /* Not here: only the scraper's port serves it. */
        http_conn_respond_error(c, 404, "NOT_FOUND", "no such endpoint");
        return HTTP_ANSWERED;
    }
    if (req->method != HTTP_METHOD_GET && req->method != HTTP_METHOD_HEAD) {
        static const char body[] = "{\"success\":false,\"error\":\"method not allowed\","
                                   "\"errorCode\":\"METHOD_NOT_ALLOWED\"}";
        http_conn_respond(c, 405, "Allow: GET, HEAD\r\n", body, sizeof body - 1);
        return HTTP_ANSWERED;
    }
    if (on_metrics_listener || m->public_) return HTTP_ACCEPTED;
    if (!m->token.set) {
        http_conn_respond_error(c, 404, "METRICS_DISABLED",
                                "set token, metrics_public or metrics_address to serve /metrics");
        return HTTP_ANSWERED;
    }
    if (!bearer_token_authorizes(&m->token, req)) {
        http_conn_respond_error(c, 401, "INVALID_AUTHORIZATION", "invalid or missing token");
        return HTTP_ANSWERED;
    }
    return HTTP_ACCEPTED;
}

bool metrics_http_handle(const metrics_http_t *m, http_conn_t *c, const http_request_t *req,
                         bool on_metrics_listener) {
    if (!req->path || strcmp(req->path, "/metrics") != 0) return false;
    if (metrics_http_precheck(m, c, req, on_metrics_listener) != HTTP_ACCEPTED) return true;
    metrics_snapshot_t *snap = mem_alloc(sizeof *snap); /* ~20 KiB: not on the stack */
    metrics_collect(snap);
    buf_t b = BUF_INIT;
    metrics_render(&b, snap);
    free(snap);
    http_conn_respond_type(c, 200, "text/plain; version=0.0.4; charset=utf-8", NULL, b.data,
                           b.len);
    buf_free(&b);
    return true;
}
