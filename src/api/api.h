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

/* Handles the request if its path is an API path and returns true; returns false
 * without touching the connection otherwise. */
bool api_handle(api_t *a, http_conn_t *c, const http_request_t *req);

void api_free(api_t *a); /* NULL is a no-op; requests in flight must be done */

#endif
