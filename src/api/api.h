/* The API role: POST /claim, POST /send, POST /disconnect, GET /info. Each
 * handler checks the token, validates parameters, makes one store call and
 * answers JSON. Error codes and status codes follow docs/api.md.
 *
 * Ownership: keeps the store pointer; the caller keeps the store alive. */
#ifndef DSOCK_API_H
#define DSOCK_API_H

#include <stdbool.h>

#include "net/http_server.h"
#include "store/store.h"

typedef struct api api_t;

typedef struct api_config {
    const char *token; /* required, non-empty; copied */
} api_config_t;

api_t *api_new(store_t *store, const api_config_t *cfg);

/* For the server's precheck, on the request line and headers (no body yet): not an
 * API path (HTTP_NOT_MINE, nothing done); a wrong method (405) or a missing or
 * wrong token (401, compared in constant time), answered (HTTP_ANSWERED); or
 * HTTP_ACCEPTED: the body may be read and the request handed to api_handle. */
http_verdict_t api_precheck(api_t *a, http_conn_t *c, const http_request_t *req);

/* Handles the request if its path is an API path and returns true; returns false
 * without touching the connection otherwise. Checks method and token again, so
 * it is safe without api_precheck. */
bool api_handle(api_t *a, http_conn_t *c, const http_request_t *req);

void api_free(api_t *a); /* NULL is a no-op; requests in flight must be done */

#endif
