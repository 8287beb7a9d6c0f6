/* GET /metrics: authorization (metrics_http.h) and the scrape. */
#include "ops/metrics_http.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "ops/metrics.h"

struct metrics_http {
    bool has_token;
    bool public_;
    bool separate;
    uint8_t token_digest[SHA256_DIGEST_LENGTH];
};

metrics_http_t *metrics_http_new(const metrics_http_config_t *cfg) {
    metrics_http_t *m = mem_calloc(1, sizeof *m);
    m->public_ = cfg->public_;
    m->separate = cfg->separate;
    if (cfg->token && *cfg->token) {
        m->has_token = true;
        SHA256((const unsigned char *)cfg->token, strlen(cfg->token), m->token_digest);
    }
    return m;
}

void metrics_http_free(metrics_http_t *m) {
    if (!m) return;
    OPENSSL_cleanse(m->token_digest, sizeof m->token_digest);
    free(m);
}

/* The API's rule (api.c): digests make the comparison constant-time whatever the
 * presented length; the first non-empty ?token= wins over the header. */
static bool token_matches(const metrics_http_t *m, const char *token, size_t len) {
    if (!len) return false;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, len, digest);
    return CRYPTO_memcmp(digest, m->token_digest, sizeof digest) == 0;
}

static bool authorized(const metrics_http_t *m, const http_request_t *req) {
    const http_kv_t *q = http_request_param(req, "token");
    if (q) return token_matches(m, q->value, strlen(q->value));
    const http_kv_t *h = http_request_header(req, "authorization");
    if (!h || h->value_len < 7 || strncasecmp(h->value, "bearer ", 7) != 0) return false;
    const char *t = h->value + 7;
    while (*t == ' ') t++;
    return token_matches(m, t, h->value_len - (size_t)(t - h->value));
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
    if (!m->has_token) {
        http_conn_respond_error(c, 404, "METRICS_DISABLED",
                                "set token, metrics_public or metrics_address to serve /metrics");
        return HTTP_ANSWERED;
    }
    if (!authorized(m, req)) {
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
