/* Strict HMAC JWT (RFC 7519 / RFC 7515 compact form) verification. The header is
 * checked first only to learn the algorithm; the signature is verified before the
 * payload is even decoded, so unauthenticated input never reaches the claim rules.
 * "typ" is ignored (RFC 7519 5.1 makes it advisory and backends set varied values);
 * a "crit" header is rejected because we understand no extension. */
#include "protocol/jwt.h"

#include <math.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/mem.h"
#include "protocol/utf8.h"

/* Decoded size bound for any part of a token that passed the length check. */
#define JWT_DECODED_MAX (JWT_MAX_LEN / 4 * 3 + 3)

static int b64url_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Base64url without line breaks. Padding is optional but, when present, must be
 * exactly right; the unused low bits of the last symbol must be zero so every
 * value has one encoding. Returns the decoded length or -1. */
static long b64url_decode(const char *s, size_t n, uint8_t *out) {
    size_t pad = 0;
    while (n > 0 && s[n - 1] == '=' && pad < 2) n--, pad++;
    if (pad && (n + pad) % 4 != 0) return -1;
    if (n % 4 == 1) return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) return -1;
    return (long)o;
}

/* A JSON object spanning exactly buf[0..n), or NULL. JSON text must be UTF-8 and
 * holds no raw control characters outside whitespace; checking that up front
 * keeps odd bytes out of user ids that end up in store keys and API replies. */
static cJSON *parse_object(const uint8_t *buf, size_t n) {
    if (!utf8_valid(buf, n)) return NULL;
    for (size_t i = 0; i < n; i++)
        if (buf[i] < 0x20 && buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r')
            return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts((const char *)buf, n, &end, 0);
    if (!j) return NULL;
    const char *stop = (const char *)buf + n;
    while (end && end < stop && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) end++;
    if (end != stop || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* A NumericDate claim: absent is fine, anything but a finite number is not. */
static bool time_claim(const cJSON *obj, const char *name, bool *present, double *value) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, name);
    *present = it != NULL;
    if (!it) return true;
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) return false;
    *value = it->valuedouble;
    return true;
}

/* ceil, so that "now < t" and "now < result" agree for every integer now. */
static int64_t to_seconds(double t) {
    t = ceil(t);
    if (t >= 9.2e18) return INT64_MAX;
    if (t <= -9.2e18) return INT64_MIN;
    return (int64_t)t;
}

static int reject(const char **why, const char *msg) {
    *why = msg;
    return -1;
}

static int check_claims(const cJSON *pl, int64_t now, jwt_claims_t *out, const char **why) {
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(pl, "sub");
    if (!cJSON_IsString(sub) || !sub->valuestring || !sub->valuestring[0])
        return reject(why, "missing sub");
    const cJSON *sid = cJSON_GetObjectItemCaseSensitive(pl, "sid");
    if (sid && (!cJSON_IsString(sid) || !sid->valuestring)) return reject(why, "sid is not a string");

    bool has_exp, has_iat, has_nbf;
    double exp = 0, iat = 0, nbf = 0;
    if (!time_claim(pl, "exp", &has_exp, &exp)) return reject(why, "exp is not a number");
    if (!time_claim(pl, "iat", &has_iat, &iat)) return reject(why, "iat is not a number");
    if (!time_claim(pl, "nbf", &has_nbf, &nbf)) return reject(why, "nbf is not a number");

    double t = (double)now;
    int64_t expires_at;
    if (has_exp) {
        if (!(t < exp)) return reject(why, "expired");
        expires_at = to_seconds(exp);
    } else if (has_iat) {
        if (!(t < iat + JWT_IAT_LIFETIME)) return reject(why, "expired");
        expires_at = to_seconds(iat + JWT_IAT_LIFETIME);
    } else {
        return reject(why, "neither exp nor iat");
    }
    if (has_nbf && t < nbf) return reject(why, "not yet valid");

    if (out) {
        out->sub = mem_strdup(sub->valuestring);
        /* An empty sid means no session, as an empty session parameter does. */
        out->sid = sid && sid->valuestring[0] ? mem_strdup(sid->valuestring) : NULL;
        out->expires_at = expires_at;
    }
    return 0;
}

int jwt_verify(const char *token, size_t token_len, const uint8_t *secret, size_t secret_len,
               int64_t now, jwt_claims_t *out, const char **why) {
    const char *dummy;
    if (!why) why = &dummy;
    if (out) memset(out, 0, sizeof *out);
    if (!secret || secret_len == 0 || secret_len > INT_MAX) return reject(why, "no usable JWT secret");
    if (!token || token_len == 0) return reject(why, "empty token");
    if (token_len > JWT_MAX_LEN) return reject(why, "token too long");

    const char *end = token + token_len;
    const char *dot1 = memchr(token, '.', token_len);
    const char *dot2 = dot1 ? memchr(dot1 + 1, '.', (size_t)(end - dot1 - 1)) : NULL;
    if (!dot2 || memchr(dot2 + 1, '.', (size_t)(end - dot2 - 1)))
        return reject(why, "not three dot-separated parts");

    uint8_t buf[JWT_DECODED_MAX + 1];
    long n = b64url_decode(token, (size_t)(dot1 - token), buf);
    if (n <= 0) return reject(why, "bad header encoding");
    cJSON *hdr = parse_object(buf, (size_t)n);
    if (!hdr) return reject(why, "header is not a JSON object");
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    const EVP_MD *md = NULL;
    if (cJSON_IsString(alg) && alg->valuestring) {
        if (strcmp(alg->valuestring, "HS256") == 0) md = EVP_sha256();
        else if (strcmp(alg->valuestring, "HS384") == 0) md = EVP_sha384();
        else if (strcmp(alg->valuestring, "HS512") == 0) md = EVP_sha512();
    }
    bool crit = cJSON_GetObjectItemCaseSensitive(hdr, "crit") != NULL;
    cJSON_Delete(hdr);
    if (!md) return reject(why, "unsupported alg");
    if (crit) return reject(why, "unsupported crit header");

    n = b64url_decode(dot2 + 1, (size_t)(end - dot2 - 1), buf);
    size_t md_size = (size_t)EVP_MD_get_size(md);
    if (n < 0 || (size_t)n != md_size) return reject(why, "bad signature");
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(md, secret, (int)secret_len, (const unsigned char *)token, (size_t)(dot2 - token), mac,
              &mac_len) ||
        mac_len != md_size)
        return reject(why, "HMAC failed");
    if (CRYPTO_memcmp(mac, buf, md_size) != 0) return reject(why, "bad signature");

    n = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), buf);
    if (n <= 0) return reject(why, "bad payload encoding");
    cJSON *pl = parse_object(buf, (size_t)n);
    if (!pl) return reject(why, "payload is not a JSON object");
    int rc = check_claims(pl, now, out, why);
    cJSON_Delete(pl);
    return rc;
}

void jwt_claims_free(jwt_claims_t *c) {
    if (!c) return;
    free(c->sub);
    free(c->sid);
    c->sub = NULL;
    c->sid = NULL;
}
