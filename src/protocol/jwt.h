/* JWT verification for client authentication: HS256/HS384/HS512 only, strict.
 * I/O-free; uses OpenSSL libcrypto for HMAC and a constant-time compare, cJSON for
 * the header and payload. Rules (contract): alg must be one of the three (none and
 * anything else are rejected), sub is a required string, sid an optional string,
 * exp wins over iat, with only iat the token lives 60 s after it, one of the two
 * is required; nbf, when present, must have passed.
 * Details settled here: base64url parts may carry exact '=' padding but nothing
 * else outside the alphabet, and unused trailing bits must be zero; "typ" is
 * ignored, "crit" is rejected; header and payload must be UTF-8 JSON objects;
 * exp/iat/nbf must be finite numbers (fractions allowed); sub must be a non-empty
 * string; sid must be a string when present, and "" counts as no session. The
 * signature is checked before the payload is looked at. An empty secret rejects
 * every token. sub and sid are decoded with their exact length and must be
 * identifiers (protocol/validate.h: UTF-8, no C0/DEL/C1 control, so no NUL); a
 * top-level member name holding a NUL, or a member we read (alg, crit; sub, sid,
 * exp, iat, nbf, channels) given twice, rejects the token. "channels", when
 * present, must be an array of strings, each a channel name (validate.h
 * channel_name_check); because cJSON cuts a string at an escaped NUL, a payload
 * with channels and a \u0000 escape anywhere is rejected.
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
    char **channels;    /* the optional "channels" claim, duplicates dropped; NULL if none */
    size_t channel_count;
} jwt_claims_t;

/* Returns 0 when the token is valid at time `now` (seconds since epoch), else -1
 * with *why set to a short static reason ("expired", "bad signature", ...). out may
 * be NULL (verify only); on failure *out is zeroed. why may be NULL. */
int jwt_verify(const char *token, size_t token_len, const uint8_t *secret, size_t secret_len,
               int64_t now, jwt_claims_t *out, const char **why);

/* Frees sub, sid and channels and sets them to NULL; NULL is a no-op. */
void jwt_claims_free(jwt_claims_t *c);

#endif
