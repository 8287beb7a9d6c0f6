/* GET /metrics over HTTP: who may read it, and the answer (docs/metrics.md).
 *
 * Rules, decided once at startup:
 * - metrics_address set: /metrics is served there only (a listener that only the
 *   scraper reaches), without a token; the main listener answers it 404 NOT_FOUND.
 * - else metrics_public = true: served on the main listener without a token.
 * - else, with a token configured (api and standalone always have one; a worker
 *   when `token` is set): the API's check, a Bearer header or the first non-empty
 *   ?token=, compared in constant time; 401 INVALID_AUTHORIZATION otherwise.
 * - else (a worker without token): 404 METRICS_DISABLED, which says what to set.
 * GET and HEAD; another method is a 405.
 *
 * Ownership: immutable after metrics_http_new, so every loop thread may share one. */
#ifndef DSOCK_OPS_METRICS_HTTP_H
#define DSOCK_OPS_METRICS_HTTP_H

#include <stdbool.h>

#include "net/http_server.h"

typedef struct metrics_http metrics_http_t;

typedef struct metrics_http_config {
    const char *token;   /* NULL: none; copied as a digest */
    bool public_;        /* metrics_public */
    bool separate;       /* metrics_address is set */
} metrics_http_config_t;

metrics_http_t *metrics_http_new(const metrics_http_config_t *cfg);
void metrics_http_free(metrics_http_t *m); /* NULL is a no-op */

/* For a precheck: HTTP_NOT_MINE unless the path is /metrics; then answered
 * (405/401/404) or HTTP_ACCEPTED. on_metrics_listener: the request came to
 * metrics_address. */
http_verdict_t metrics_http_precheck(const metrics_http_t *m, http_conn_t *c,
                                     const http_request_t *req, bool on_metrics_listener);

/* Serves /metrics (checked again) and returns true; false when not /metrics. */
bool metrics_http_handle(const metrics_http_t *m, http_conn_t *c, const http_request_t *req,
                         bool on_metrics_listener);

#endif
