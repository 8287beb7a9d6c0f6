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
#include "protocol/validate.h"

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

/* cJSON hands out member names and string values as C strings, without their
 * length: a "\u0000" escape cuts them short, so "sub":"victim\u0000-attacker"
 * would read as "victim" and a member named "sub\u0000x" would answer a lookup of
 * "sub". The helpers below walk the JSON text themselves (it was already accepted
 * by cJSON as one object) to see the top-level members with their exact lengths:
 * a member name holding a NUL, or a member we read that appears twice (RFC 7519
 * section 4 allows refusing duplicate claim names), rejects the token; the
 * values of sub and sid are decoded here, with their lengths, and checked by the
 * shared identifier validator. */

typedef struct member {
    const char *name;   /* NUL-free name we read */
    int count;          /* occurrences at the top level */
    const char *raw;    /* body of its value when a string literal (between quotes) */
    size_t raw_len;
} member_t;

static int hex4(const char *s) {
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Decodes the body s[0..n) of a JSON string literal into out (room for n bytes is
 * enough: no escape decodes longer than itself). Returns the decoded length, or
 * -1 for a bad escape or a lone surrogate. */
static long json_unescape(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        if (++i >= n) return -1;
        switch (s[i]) {
        case '"': case '\\': case '/': out[o++] = s[i]; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            if (n - i < 5) return -1;
            long cp = hex4(s + i + 1);
            if (cp < 0) return -1;
            i += 4;
            if (cp >= 0xdc00 && cp <= 0xdfff) return -1;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (n - i < 7 || s[i + 1] != '\\' || s[i + 2] != 'u') return -1;
                long lo = hex4(s + i + 3);
                if (lo < 0xdc00 || lo > 0xdfff) return -1;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
            if (cp < 0x80) {
                out[o++] = (char)cp;
            } else if (cp < 0x800) {
                out[o++] = (char)(0xc0 | (cp >> 6));
                out[o++] = (char)(0x80 | (cp & 0x3f));
            } else if (cp < 0x10000) {
                out[o++] = (char)(0xe0 | (cp >> 12));
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[o++] = (char)(0x80 | (cp & 0x3f));
            } else {
                out[o++] = (char)(0xf0 | (cp >> 18));
                out[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[o++] = (char)(0x80 | (cp & 0x3f));
            }
            break;
        }
        default: return -1;
        }
    }
    return (long)o;
}

/* Walks the top-level members of the object text s[0..n): counts the members
 * named in m[] and remembers their string values. Strings are delimited as cJSON
 * does (a backslash escapes the next byte), brackets outside strings give the
 * depth. Returns -1 when a top-level member name does not decode or holds a NUL. */
static int scan_members(const uint8_t *buf, size_t n, member_t *m, size_t nm) {
    const char *s = (const char *)buf;
    char name[JWT_DECODED_MAX + 1];
    int depth = 0;
    bool want_name = false;
    member_t *last = NULL; /* the member whose value comes next, if we read it */
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '"') {
            size_t e = i + 1;
            while (e < n && s[e] != '"') e += s[e] == '\\' ? 2 : 1;
            if (e >= n) return -1;
            if (depth == 1 && want_name) {
                long len = json_unescape(s + i + 1, e - i - 1, name);
                if (len < 0 || memchr(name, '\0', (size_t)len)) return -1;
                last = NULL;
                for (size_t k = 0; k < nm; k++)
                    if (strlen(m[k].name) == (size_t)len && !memcmp(m[k].name, name, (size_t)len)) {
                        m[k].count++;
                        last = &m[k];
                    }
                want_name = false;
            } else if (depth == 1 && last) {
                last->raw = s + i + 1;
                last->raw_len = e - i - 1;
                last = NULL;
            }
            i = e;
        } else if (c == '{' || c == '[') {
            if (depth == 0) want_name = true;
            if (depth == 1) last = NULL;
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',' && depth == 1) {
            want_name = true;
            last = NULL;
        }
    }
    return 0;
}

static bool duplicated(const member_t *m, size_t nm) {
    for (size_t k = 0; k < nm; k++)
        if (m[k].count > 1) return true;
    return false;
}

/* The value of a string member as a checked identifier, or NULL (with *why). */
static char *ident_value(const member_t *m, const char **why, const char *bad) {
    char *out = mem_alloc(m->raw_len + 1);
    long len = json_unescape(m->raw, m->raw_len, out);
    if (len < 0 || !ident_valid(out, (size_t)len)) {
        free(out);
        *why = bad;
        return NULL;
    }
    out[len] = '\0';
    return out;
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

enum { M_SUB, M_SID, M_EXP, M_IAT, M_NBF, M_CHANNELS, M_COUNT };

/* Whether the JSON text holds a \u0000 escape (backslashes only occur in strings,
 * each starting a two-byte or \uXXXX escape). */
static bool has_nul_escape(const uint8_t *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4)) return true;
        i++;
    }
    return false;
}

/* The "channels" claim: absent, or an array of channel names. */
static int read_channels(const cJSON *pl, const uint8_t *text, size_t text_len,
                         jwt_claims_t *out, const char **why) {
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive(pl, "channels");
    if (!ch) return 0;
    if (!cJSON_IsArray(ch)) return reject(why, "channels is not an array");
    if (has_nul_escape(text, text_len)) return reject(why, "channels: a string holds a NUL");
    int n = cJSON_GetArraySize(ch);
    char **list = n ? mem_calloc((size_t)n, sizeof *list) : NULL;
    size_t count = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, ch) {
        if (!cJSON_IsString(item) || !item->valuestring ||
            !channel_name_valid(item->valuestring, strlen(item->valuestring))) {
            for (size_t i = 0; i < count; i++) free(list[i]);
            free(list);
            return reject(why, "channels holds something that is not a channel name");
        }
        bool dup = false;
        for (size_t i = 0; i < count && !dup; i++) dup = !strcmp(list[i], item->valuestring);
        if (!dup) list[count++] = mem_strdup(item->valuestring);
    }
    if (out) {
        out->channels = list;
        out->channel_count = count;
    } else {
        for (size_t i = 0; i < count; i++) free(list[i]);
        free(list);
    }
    return 0;
}

static int check_claims(const cJSON *pl, const member_t *m, const uint8_t *text,
                        size_t text_len, int64_t now, jwt_claims_t *out, const char **why) {
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

    /* cJSON's strings stop at a NUL: the exact values come from the JSON text. An
     * empty sid means no session, as an empty session parameter does. */
    char *sub_s = ident_value(&m[M_SUB], why, "sub is not a valid identifier");
    if (!sub_s) return -1;
    char *sid_s = NULL;
    if (sid && m[M_SID].raw_len) {
        sid_s = ident_value(&m[M_SID], why, "sid is not a valid identifier");
        if (!sid_s) {
            free(sub_s);
            return -1;
        }
    }
    if (read_channels(pl, text, text_len, out, why) < 0) {
        free(sub_s);
        free(sid_s);
        return -1;
    }
    if (out) {
        out->sub = sub_s;
        out->sid = sid_s;
        out->expires_at = expires_at;
    } else {
        free(sub_s);
        free(sid_s);
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
    member_t hm[] = {{.name = "alg"}, {.name = "crit"}};
    if (scan_members(buf, (size_t)n, hm, 2) < 0 || duplicated(hm, 2)) {
        cJSON_Delete(hdr);
        return reject(why, "header has a duplicate or NUL member name");
    }
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
    const EVP_MD *md = NULL;
    /* The exact alg: "HS256\u0000x" is not HS256. */
    char *alg_s = NULL;
    long alg_len = -1;
    if (cJSON_IsString(alg) && alg->valuestring && hm[0].raw) {
        alg_s = mem_alloc(hm[0].raw_len + 1);
        alg_len = json_unescape(hm[0].raw, hm[0].raw_len, alg_s);
    }
    if (alg_len >= 0 && (size_t)alg_len == strlen(alg->valuestring)) {
        if (strcmp(alg->valuestring, "HS256") == 0) md = EVP_sha256();
        else if (strcmp(alg->valuestring, "HS384") == 0) md = EVP_sha384();
        else if (strcmp(alg->valuestring, "HS512") == 0) md = EVP_sha512();
    }
    free(alg_s);
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
    member_t pm[M_COUNT] = {[M_SUB] = {.name = "sub"}, [M_SID] = {.name = "sid"},
                            [M_EXP] = {.name = "exp"}, [M_IAT] = {.name = "iat"},
                            [M_NBF] = {.name = "nbf"}, [M_CHANNELS] = {.name = "channels"}};
    if (scan_members(buf, (size_t)n, pm, M_COUNT) < 0 || duplicated(pm, M_COUNT)) {
        cJSON_Delete(pl);
        return reject(why, "payload has a duplicate or NUL member name");
    }
    int rc = check_claims(pl, pm, buf, (size_t)n, now, out, why);
    cJSON_Delete(pl);
    return rc;
}

void jwt_claims_free(jwt_claims_t *c) {
    if (!c) return;
    free(c->sub);
    free(c->sid);
    for (size_t i = 0; i < c->channel_count; i++) free(c->channels[i]);
    free(c->channels);
    c->sub = NULL;
    c->sid = NULL;
    c->channels = NULL;
    c->channel_count = 0;
}
