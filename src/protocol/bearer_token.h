/* The API token check, shared by every endpoint that needs the token (the API
 * role, /metrics): one rule, so the places cannot drift apart. I/O-free.
 *
 * A request presents the token as the first non-empty `?token=` query parameter
 * (docs/api.md: repeated parameters), else as `Authorization: Bearer <token>`
 * (scheme case-insensitive, spaces after it skipped). Only SHA-256 digests are
 * compared, with CRYPTO_memcmp, so the time taken does not depend on the presented
 * token's length or content. An empty configured token authorizes nobody.
 *
 * Ownership: a bearer_token_t is a value held by its user (no allocation); it
 * keeps only the digest, never the token, and bearer_token_clear wipes it. */
#ifndef DSOCK_BEARER_TOKEN_H
#define DSOCK_BEARER_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/http_parser.h"

typedef struct bearer_token {
    bool set;            /* a non-empty token was configured */
    uint8_t digest[32];  /* SHA-256 of the token */
} bearer_token_t;

/* token NULL or "": nobody is authorized. */
void bearer_token_init(bearer_token_t *t, const char *token);
void bearer_token_clear(bearer_token_t *t);

/* Does this presented token (len bytes) match? Never for an empty one. */
bool bearer_token_matches(const bearer_token_t *t, const char *token, size_t len);

/* Does the request present the token (query first, then the header)? */
bool bearer_token_authorizes(const bearer_token_t *t, const http_request_t *req);

#endif
