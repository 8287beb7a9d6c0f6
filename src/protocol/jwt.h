/* JWT verification for client authentication: HS256/HS384/HS512 only, strict.
 * I/O-free; uses OpenSSL libcrypto for HMAC and a constant-time compare, cJSON for
 * the header and payload. Rules (contract): alg must be one of the three (none and
 * anything else are rejected), sub is a required string, sid an optional string,
 * exp wins over iat, with only iat the token lives 60 s after it, one of the two
 * is required; nbf, when present, must have passed.
 *
 * Ownership: on success the caller owns out->sub/out->sid and frees them with
 * jwt_claims_free(). On failure nothing needs freeing. */
#ifndef DSOCK_JWT_H
#define DSOCK_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_LEN 8192      /* longer tokens are rejected unparsed */
#define JWT_IAT_LIFETIME 60   /* seconds a token with only iat stays valid */

typedef struct jwt_claims {
    char *sub;          /* user id, never NULL on success */
    char *sid;          /* session id or NULL */
    int64_t expires_at; /* seconds since epoch: exp, or iat + 60 */
} jwt_claims_t;

/* Returns 0 when the token is valid at time `now` (seconds since epoch), else -1
 * with *why set to a short static reason ("expired", "bad signature", ...). */
int jwt_verify(const char *token, size_t token_len, const uint8_t *secret, size_t secret_len,
               int64_t now, jwt_claims_t *out, const char **why);

void jwt_claims_free(jwt_claims_t *c);

#endif
