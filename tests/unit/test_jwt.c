/* Unit tests for JWT verification: fixed vectors (RFC 7515 A.1, jwt.io, PyJWT
 * HS384/HS512), then tokens signed here with OpenSSL HMAC to walk every rule of
 * the contract: algorithms, encoding, structure, claims and time. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "protocol/jwt.h"
#include "../support/reference.h"

#define SECRET "dsock-test-secret"
#define NOW 1700000000LL

/* "<h>.<p>.<HMAC over h.p>" where h and p are already encoded. Caller frees. */
static char *sign_raw(const EVP_MD *md, const char *h, const char *p, const char *secret) {
    size_t n = strlen(h) + strlen(p) + 1;
    char *tok = malloc(n + 1 + 100);
    sprintf(tok, "%s.%s", h, p);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    HMAC(md, secret, (int)strlen(secret), (const uint8_t *)tok, n, mac, &mac_len);
    tok[n] = '.';
    ref_b64url(mac, mac_len, tok + n + 1);
    return tok;
}

/* Encodes the two JSON texts and signs them with md. */
static char *make(const EVP_MD *md, const char *header_json, const char *payload_json) {
    char *h = malloc(strlen(header_json) * 2 + 4), *p = malloc(strlen(payload_json) * 2 + 4);
    ref_b64url(header_json, strlen(header_json), h);
    ref_b64url(payload_json, strlen(payload_json), p);
    char *tok = sign_raw(md, h, p, SECRET);
    free(h);
    free(p);
    return tok;
}

static char *make256(const char *payload_json) {
    return make(EVP_sha256(), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", payload_json);
}

static int verify_at(const char *tok, int64_t now, jwt_claims_t *c, const char **why) {
    return jwt_verify(tok, strlen(tok), (const uint8_t *)SECRET, strlen(SECRET), now, c, why);
}

/* Expects rejection; checks that nothing is left to free. */
static void expect_reject(const char *tok, int64_t now, const char *why_part) {
    jwt_claims_t c;
    const char *why = NULL;
    cr_assert_eq(verify_at(tok, now, &c, &why), -1, "token %s accepted", tok);
    cr_assert_not_null(why);
    cr_assert_null(c.sub);
    cr_assert_null(c.sid);
    if (why_part) cr_assert(strstr(why, why_part), "why '%s', expected '%s'", why, why_part);
}

static void expect_reject_payload(const char *payload_json, int64_t now, const char *why_part) {
    char *tok = make256(payload_json);
    expect_reject(tok, now, why_part);
    free(tok);
}

static void expect_accept_payload(const char *payload_json, int64_t now, jwt_claims_t *c) {
    char *tok = make256(payload_json);
    const char *why = NULL;
    cr_assert_eq(verify_at(tok, now, c, &why), 0, "%s: rejected (%s)", payload_json, why);
    free(tok);
}

/* ---- fixed vectors ---- */

Test(jwt, rfc7515_a1_signature) {
    /* RFC 7515 A.1: a correct HS256 signature over a payload without sub. */
    static const char tok[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    static const uint8_t key[64] = {
        0x03, 0x23, 0x35, 0x4b, 0x2b, 0x0f, 0xa5, 0xbc, 0x83, 0x7e, 0x06, 0x65, 0x77, 0x7b, 0xa6, 0x8f,
        0x5a, 0xb3, 0x28, 0xe6, 0xf0, 0x54, 0xc9, 0x28, 0xa9, 0x0f, 0x84, 0xb2, 0xd2, 0x50, 0x2e, 0xbf,
        0xd3, 0xfb, 0x5a, 0x92, 0xd2, 0x06, 0x47, 0xef, 0x96, 0x8a, 0xb4, 0xc3, 0x77, 0x62, 0x3d, 0x22,
        0x3d, 0x2e, 0x21, 0x72, 0x05, 0x2e, 0x4f, 0x08, 0xc0, 0xcd, 0x9a, 0xf5, 0x67, 0xd0, 0x80, 0xa3};
    const char *why = NULL;
    jwt_claims_t c;
    /* The signature verifies; the token then fails our rule that sub is required. */
    cr_assert_eq(jwt_verify(tok, strlen(tok), key, sizeof key, 1300819379, &c, &why), -1);
    cr_assert_str_eq(why, "missing sub");
    char bad[sizeof tok];
    memcpy(bad, tok, sizeof tok);
    bad[sizeof tok - 2] = bad[sizeof tok - 2] == 'k' ? 'l' : 'k';
    cr_assert_eq(jwt_verify(bad, strlen(bad), key, sizeof key, 1300819379, &c, &why), -1);
    cr_assert_str_eq(why, "bad signature");
}

Test(jwt, jwt_io_example) {
    static const char tok[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
        ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
        ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    static const char key[] = "your-256-bit-secret";
    jwt_claims_t c;
    const char *why = NULL;
    cr_assert_eq(jwt_verify(tok, strlen(tok), (const uint8_t *)key, strlen(key), 1516239022 + 30, &c, &why), 0,
                 "%s", why);
    cr_assert_str_eq(c.sub, "1234567890");
    cr_assert_null(c.sid);
    cr_assert_eq(c.expires_at, 1516239022 + 60);
    jwt_claims_free(&c);
    cr_assert_eq(jwt_verify(tok, strlen(tok), (const uint8_t *)key, strlen(key), 1516239022 + 60, &c, &why), -1);
    cr_assert_str_eq(why, "expired");
    cr_assert_eq(jwt_verify(tok, strlen(tok), (const uint8_t *)"wrong", 5, 1516239022, &c, &why), -1);
    cr_assert_str_eq(why, "bad signature");
}

Test(jwt, pyjwt_hs384_hs512) {
    static const char *toks[] = {
        "eyJhbGciOiJIUzM4NCIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJzaWQiOiJzMSIsImV4cCI6MjAwMDAwMDAwMH0"
        ".d0cPM4loDqd03Q_2wU3Wqa84caTQAke3wbVsApALUBz5UJCmA53LejVShyu5M7M8",
        "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJzaWQiOiJzMSIsImV4cCI6MjAwMDAwMDAwMH0"
        ".uGqIs0LvCGvdEnNUa2cIMOj7-hQTPbCeNkeXL1TrBUTVljPz4LUzZrsr8BEMVbjFQWHw-6qOPwRSmCHswobYGg",
    };
    for (size_t i = 0; i < 2; i++) {
        jwt_claims_t c;
        const char *why = NULL;
        cr_assert_eq(verify_at(toks[i], 1900000000, &c, &why), 0, "%s", why);
        cr_assert_str_eq(c.sub, "user-1");
        cr_assert_str_eq(c.sid, "s1");
        cr_assert_eq(c.expires_at, 2000000000);
        jwt_claims_free(&c);
        expect_reject(toks[i], 2000000000, "expired");
    }
}

/* ---- algorithms ---- */

Test(jwt, all_three_algorithms) {
    static const struct {
        const char *hdr;
        const EVP_MD *(*md)(void);
    } algs[] = {{"{\"alg\":\"HS256\"}", EVP_sha256}, {"{\"alg\":\"HS384\"}", EVP_sha384},
                {"{\"alg\":\"HS512\"}", EVP_sha512}};
    for (size_t i = 0; i < 3; i++) {
        char *tok = make(algs[i].md(), algs[i].hdr, "{\"sub\":\"u\",\"exp\":1700000100}");
        jwt_claims_t c;
        const char *why = NULL;
        cr_assert_eq(verify_at(tok, NOW, &c, &why), 0, "%s: %s", algs[i].hdr, why);
        jwt_claims_free(&c);
        free(tok);
        /* Header claims one algorithm, signature made with another. */
        tok = make(algs[(i + 1) % 3].md(), algs[i].hdr, "{\"sub\":\"u\",\"exp\":1700000100}");
        expect_reject(tok, NOW, "bad signature");
        free(tok);
    }
}

Test(jwt, rejected_algorithms) {
    static const char *hdrs[] = {
        "{\"alg\":\"none\"}",   "{\"alg\":\"None\"}",  "{\"alg\":\"RS256\"}", "{\"alg\":\"ES256\"}",
        "{\"alg\":\"hs256\"}",  "{\"alg\":\"HS256 \"}", "{\"alg\":\"HS\"}",   "{\"alg\":\"\"}",
        "{\"typ\":\"JWT\"}",    "{\"alg\":256}",        "{\"alg\":null}",     "{\"alg\":[\"HS256\"]}",
        "{\"ALG\":\"HS256\"}", "{}",
    };
    for (size_t i = 0; i < sizeof hdrs / sizeof *hdrs; i++) {
        char *tok = make(EVP_sha256(), hdrs[i], "{\"sub\":\"u\",\"exp\":1700000100}");
        expect_reject(tok, NOW, "alg");
        free(tok);
    }
}

Test(jwt, alg_none_unsigned) {
    char h[64], p[128], tok[256];
    const char *hj = "{\"alg\":\"none\",\"typ\":\"JWT\"}", *pj = "{\"sub\":\"u\",\"exp\":1700000100}";
    ref_b64url(hj, strlen(hj), h);
    ref_b64url(pj, strlen(pj), p);
    snprintf(tok, sizeof tok, "%s.%s.", h, p);
    expect_reject(tok, NOW, "alg");
}

Test(jwt, typ_ignored_crit_rejected) {
    jwt_claims_t c;
    const char *why;
    char *tok = make(EVP_sha256(), "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"1\"}", "{\"sub\":\"u\",\"exp\":1700000100}");
    cr_assert_eq(verify_at(tok, NOW, &c, &why), 0, "%s", why);
    jwt_claims_free(&c);
    free(tok);
    tok = make(EVP_sha256(), "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "{\"sub\":\"u\",\"exp\":1700000100}");
    expect_reject(tok, NOW, "crit");
    free(tok);
}

/* ---- structure and encoding ---- */

Test(jwt, part_count) {
    char *good = make256("{\"sub\":\"u\",\"exp\":1700000100}");
    char buf[512];
    snprintf(buf, sizeof buf, "%s.", good);
    expect_reject(buf, NOW, "three");
    snprintf(buf, sizeof buf, "%s.x", good);
    expect_reject(buf, NOW, "three");
    char *last = strrchr(good, '.');
    *last = 0;
    expect_reject(good, NOW, "three");
    expect_reject("", NOW, NULL);
    expect_reject("..", NOW, NULL);
    expect_reject("abc", NOW, "three");
    free(good);
}

Test(jwt, base64url_strictness) {
    char *good = make256("{\"sub\":\"u\",\"exp\":1700000100}");
    size_t n = strlen(good);
    jwt_claims_t c;
    const char *why;
    cr_assert_eq(verify_at(good, NOW, &c, &why), 0);
    jwt_claims_free(&c);
    /* Any invalid symbol anywhere is rejected. */
    static const char bad_chars[] = {'+', '/', '=', ' ', '\n', '*', '\0', (char)0xC3};
    for (size_t i = 0; i < n; i++) {
        if (good[i] == '.') continue;
        for (size_t k = 0; k < sizeof bad_chars; k++) {
            char *t = strdup(good);
            t[i] = bad_chars[k];
            cr_assert_eq(jwt_verify(t, n, (const uint8_t *)SECRET, strlen(SECRET), NOW, &c, &why), -1,
                         "pos %zu char %02x", i, (unsigned)(uint8_t)bad_chars[k]);
            free(t);
        }
    }
    free(good);
}

Test(jwt, padding_optional_but_exact) {
    /* "{\"sub\":\"u\",\"exp\":1700000100}" is 28 bytes: 38 symbols, 2 '=' when padded. */
    const char *pl = "{\"sub\":\"u\",\"exp\":1700000100}";
    char h[64], p[128], p_pad[160];
    ref_b64url("{\"alg\":\"HS256\"}", 15, h); /* 15 bytes: no padding needed */
    ref_b64url(pl, strlen(pl), p);
    snprintf(p_pad, sizeof p_pad, "%s==", p);
    jwt_claims_t c;
    const char *why;
    char *tok = sign_raw(EVP_sha256(), h, p_pad, SECRET);
    cr_assert_eq(verify_at(tok, NOW, &c, &why), 0, "%s", why);
    jwt_claims_free(&c);
    free(tok);
    snprintf(p_pad, sizeof p_pad, "%s=", p);
    tok = sign_raw(EVP_sha256(), h, p_pad, SECRET);
    expect_reject(tok, NOW, "encoding");
    free(tok);
    snprintf(p_pad, sizeof p_pad, "%s===", p);
    tok = sign_raw(EVP_sha256(), h, p_pad, SECRET);
    expect_reject(tok, NOW, "encoding");
    free(tok);
    char h_pad[80];
    snprintf(h_pad, sizeof h_pad, "%s==", h);
    tok = sign_raw(EVP_sha256(), h_pad, p, SECRET);
    expect_reject(tok, NOW, "encoding");
    free(tok);
}

Test(jwt, noncanonical_trailing_bits) {
    /* HS256 signatures are 32 bytes = 43 symbols; the last carries 2 unused bits. */
    char *tok = make256("{\"sub\":\"u\",\"exp\":1700000100}");
    size_t n = strlen(tok);
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(abc, tok[n - 1]) - abc);
    cr_assert_eq(v & 3, 0);
    tok[n - 1] = abc[v | 1];
    expect_reject(tok, NOW, "signature");
    free(tok);
}

Test(jwt, signature_length) {
    char *tok = make256("{\"sub\":\"u\",\"exp\":1700000100}");
    char buf[512];
    snprintf(buf, sizeof buf, "%sAAAA", tok);
    expect_reject(buf, NOW, "signature");
    *(strrchr(tok, '.') + 5) = 0;
    expect_reject(tok, NOW, "signature");
    free(tok);
}

Test(jwt, header_and_payload_must_be_objects) {
    static const char *bad_hdrs[] = {"[\"HS256\"]", "\"HS256\"", "{\"alg\":\"HS256\"} x", "{\"alg\":\"HS256\"",
                                     "{\"alg\":\"HS256\"}{}", "null", "{\"alg\":\"HS\\u0032\"}x"};
    for (size_t i = 0; i < sizeof bad_hdrs / sizeof *bad_hdrs; i++) {
        char *tok = make(EVP_sha256(), bad_hdrs[i], "{\"sub\":\"u\",\"exp\":1700000100}");
        expect_reject(tok, NOW, "header");
        free(tok);
    }
    static const char *bad_pls[] = {"[]", "123", "\"sub\"", "{\"sub\":\"u\",\"exp\":1700000100", "",
                                    "{\"sub\":\"u\",\"exp\":1700000100}garbage", "{\"sub\":\"\xFF\",\"exp\":1700000100}",
                                    "{\"sub\":\"a\x01\",\"exp\":1700000100}"};
    for (size_t i = 0; i < sizeof bad_pls / sizeof *bad_pls; i++) expect_reject_payload(bad_pls[i], NOW, "payload");
    /* Whitespace around the JSON is fine. */
    jwt_claims_t c;
    expect_accept_payload(" \r\n{\"sub\":\"u\", \"exp\":1700000100}\n\t", NOW, &c);
    jwt_claims_free(&c);
}

Test(jwt, too_long) {
    /* Build a valid token just under and just over the limit with a filler claim. */
    char *pl = malloc(JWT_MAX_LEN);
    for (size_t fill = 5800; fill < 6300; fill++) {
        int n = snprintf(pl, JWT_MAX_LEN, "{\"sub\":\"u\",\"exp\":1700000100,\"x\":\"%0*d\"}", (int)fill, 0);
        cr_assert_lt(n, JWT_MAX_LEN);
        char *tok = make256(pl);
        size_t len = strlen(tok);
        jwt_claims_t c;
        const char *why;
        int rc = verify_at(tok, NOW, &c, &why);
        if (len <= JWT_MAX_LEN) {
            cr_assert_eq(rc, 0, "len %zu: %s", len, why);
            jwt_claims_free(&c);
        } else {
            cr_assert_eq(rc, -1);
            cr_assert_str_eq(why, "token too long");
        }
        free(tok);
    }
    free(pl);
}

Test(jwt, secret_required) {
    char *tok = make256("{\"sub\":\"u\",\"exp\":1700000100}");
    jwt_claims_t c;
    const char *why;
    cr_assert_eq(jwt_verify(tok, strlen(tok), (const uint8_t *)"", 0, NOW, &c, &why), -1);
    cr_assert_eq(jwt_verify(tok, strlen(tok), NULL, 0, NOW, &c, &why), -1);
    free(tok);
}

Test(jwt, token_len_respected) {
    /* Only token_len bytes count: a valid token followed by junk in the buffer. */
    char *tok = make256("{\"sub\":\"u\",\"exp\":1700000100}");
    size_t n = strlen(tok);
    char *buf = malloc(n + 10);
    memcpy(buf, tok, n);
    memcpy(buf + n, ".junk!!!!", 10);
    jwt_claims_t c;
    const char *why;
    cr_assert_eq(jwt_verify(buf, n, (const uint8_t *)SECRET, strlen(SECRET), NOW, &c, &why), 0, "%s", why);
    jwt_claims_free(&c);
    cr_assert_eq(jwt_verify(buf, n - 1, (const uint8_t *)SECRET, strlen(SECRET), NOW, &c, &why), -1);
    free(buf);
    free(tok);
}

Test(jwt, null_out_and_why) {
    char *tok = make256("{\"sub\":\"u\",\"exp\":1700000100}");
    cr_assert_eq(jwt_verify(tok, strlen(tok), (const uint8_t *)SECRET, strlen(SECRET), NOW, NULL, NULL), 0);
    cr_assert_eq(jwt_verify(tok, strlen(tok), (const uint8_t *)SECRET, strlen(SECRET), NOW + 100, NULL, NULL), -1);
    free(tok);
    jwt_claims_free(NULL);
}

/* ---- claims ---- */

Test(jwt, sub_rules) {
    expect_reject_payload("{\"exp\":1700000100}", NOW, "sub");
    expect_reject_payload("{\"sub\":\"\",\"exp\":1700000100}", NOW, "sub");
    expect_reject_payload("{\"sub\":42,\"exp\":1700000100}", NOW, "sub");
    expect_reject_payload("{\"sub\":null,\"exp\":1700000100}", NOW, "sub");
    expect_reject_payload("{\"sub\":[\"u\"],\"exp\":1700000100}", NOW, "sub");
    expect_reject_payload("{\"Sub\":\"u\",\"exp\":1700000100}", NOW, "sub");
    jwt_claims_t c;
    expect_accept_payload("{\"sub\":\"\\u00e9l\\u00e8ve\",\"exp\":1700000100}", NOW, &c);
    cr_assert_str_eq(c.sub, "\xC3\xA9l\xC3\xA8ve");
    jwt_claims_free(&c);
}

Test(jwt, sid_rules) {
    jwt_claims_t c;
    expect_accept_payload("{\"sub\":\"u\",\"sid\":\"s-1\",\"exp\":1700000100}", NOW, &c);
    cr_assert_str_eq(c.sub, "u");
    cr_assert_str_eq(c.sid, "s-1");
    jwt_claims_free(&c);
    cr_assert_null(c.sub);
    expect_accept_payload("{\"sub\":\"u\",\"sid\":\"\",\"exp\":1700000100}", NOW, &c);
    cr_assert_null(c.sid, "empty sid means no session");
    jwt_claims_free(&c);
    expect_reject_payload("{\"sub\":\"u\",\"sid\":1,\"exp\":1700000100}", NOW, "sid");
    expect_reject_payload("{\"sub\":\"u\",\"sid\":null,\"exp\":1700000100}", NOW, "sid");
    expect_reject_payload("{\"sub\":\"u\",\"sid\":{},\"exp\":1700000100}", NOW, "sid");
}

Test(jwt, exp_rules) {
    jwt_claims_t c;
    expect_accept_payload("{\"sub\":\"u\",\"exp\":1700000001}", NOW, &c);
    cr_assert_eq(c.expires_at, 1700000001);
    jwt_claims_free(&c);
    expect_reject_payload("{\"sub\":\"u\",\"exp\":1700000000}", NOW, "expired");
    expect_reject_payload("{\"sub\":\"u\",\"exp\":0}", NOW, "expired");
    expect_reject_payload("{\"sub\":\"u\",\"exp\":-5}", NOW, "expired");
    expect_reject_payload("{\"sub\":\"u\",\"exp\":\"1800000000\"}", NOW, "exp");
    expect_reject_payload("{\"sub\":\"u\",\"exp\":true}", NOW, "exp");
    expect_reject_payload("{\"sub\":\"u\",\"exp\":null}", NOW, "exp");
    expect_reject_payload("{\"sub\":\"u\",\"exp\":1e999}", NOW, "exp");
    expect_reject_payload("{\"sub\":\"u\",\"exp\":-1e999}", NOW, "exp");
    /* Fractional NumericDate: valid while now < exp. */
    expect_accept_payload("{\"sub\":\"u\",\"exp\":1700000000.5}", NOW, &c);
    cr_assert_eq(c.expires_at, 1700000001);
    jwt_claims_free(&c);
    expect_reject_payload("{\"sub\":\"u\",\"exp\":1700000000.5}", NOW + 1, "expired");
    /* Far future saturates. */
    expect_accept_payload("{\"sub\":\"u\",\"exp\":1e300}", NOW, &c);
    cr_assert_eq(c.expires_at, INT64_MAX);
    jwt_claims_free(&c);
}

Test(jwt, iat_rules) {
    jwt_claims_t c;
    expect_accept_payload("{\"sub\":\"u\",\"iat\":1699999941}", NOW, &c); /* 59 s ago */
    cr_assert_eq(c.expires_at, 1700000001);
    jwt_claims_free(&c);
    expect_accept_payload("{\"sub\":\"u\",\"iat\":1700000000}", NOW, &c);
    cr_assert_eq(c.expires_at, NOW + JWT_IAT_LIFETIME);
    jwt_claims_free(&c);
    expect_reject_payload("{\"sub\":\"u\",\"iat\":1699999940}", NOW, "expired"); /* 60 s ago */
    expect_reject_payload("{\"sub\":\"u\",\"iat\":\"1700000000\"}", NOW, "iat");
    expect_reject_payload("{\"sub\":\"u\"}", NOW, "neither");
    expect_reject_payload("{\"sub\":\"u\",\"nbf\":1}", NOW, "neither");
}

Test(jwt, exp_wins_over_iat) {
    jwt_claims_t c;
    /* iat long ago but exp in the future: valid until exp. */
    expect_accept_payload("{\"sub\":\"u\",\"iat\":1000,\"exp\":1700003600}", NOW, &c);
    cr_assert_eq(c.expires_at, 1700003600);
    jwt_claims_free(&c);
    /* iat just now but exp passed: expired. */
    expect_reject_payload("{\"sub\":\"u\",\"iat\":1700000000,\"exp\":1699999999}", NOW, "expired");
    /* A bad iat is rejected even when exp decides. */
    expect_reject_payload("{\"sub\":\"u\",\"iat\":\"x\",\"exp\":1700003600}", NOW, "iat");
}

Test(jwt, nbf_rules) {
    jwt_claims_t c;
    expect_accept_payload("{\"sub\":\"u\",\"exp\":1700000100,\"nbf\":1700000000}", NOW, &c);
    jwt_claims_free(&c);
    expect_reject_payload("{\"sub\":\"u\",\"exp\":1700000100,\"nbf\":1700000001}", NOW, "not yet");
    expect_reject_payload("{\"sub\":\"u\",\"exp\":1700000100,\"nbf\":\"0\"}", NOW, "nbf");
}

/* ---- identifiers inside claims (sub, sid): exact lengths, no controls ---- */

Test(jwt, sub_with_nul_is_refused) {
    /* It used to come out as "victim", the connection then received victim's messages. */
    expect_reject_payload("{\"sub\":\"victim\\u0000-attacker\",\"exp\":1700000100}", NOW,
                          "sub is not a valid identifier");
    expect_reject_payload("{\"sub\":\"victim\\u0000\",\"exp\":1700000100}", NOW, NULL);
    expect_reject_payload("{\"sub\":\"\\u0000victim\",\"exp\":1700000100}", NOW, NULL);
}

Test(jwt, sub_and_sid_with_controls_are_refused) {
    static const char *bad[] = {"\\u0001", "\\n", "\\r", "\\t", "\\b", "\\f", "\\u001f",
                                "\\u007F", "\\u0080", "\\u0085", "\\u009f", "\x7f",
                                "\xc2\x85", "\xc2\x9b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char pl[200];
        snprintf(pl, sizeof pl, "{\"sub\":\"a%sb\",\"exp\":1700000100}", bad[i]);
        expect_reject_payload(pl, NOW, "sub is not a valid identifier");
        snprintf(pl, sizeof pl, "{\"sub\":\"u\",\"sid\":\"s%s\",\"exp\":1700000100}", bad[i]);
        expect_reject_payload(pl, NOW, "sid is not a valid identifier");
    }
}

Test(jwt, escaped_ids_are_decoded_exactly) {
    jwt_claims_t c;
    expect_accept_payload("{\"sub\":\"\\u0076ic\\/tim\\\\ \\\"q\\\"\",\"sid\":\"\\ud83d\\ude00\","
                          "\"exp\":1700000100}", NOW, &c);
    cr_assert_str_eq(c.sub, "vic/tim\\ \"q\"");
    cr_assert_str_eq(c.sid, "\xf0\x9f\x98\x80");
    jwt_claims_free(&c);
    expect_accept_payload("{\"sub\":\"\\u00a0caf\xc3\xa9\",\"sid\":\"\",\"exp\":1700000100}", NOW, &c);
    cr_assert_str_eq(c.sub, "\xc2\xa0" "caf\xc3\xa9");
    cr_assert_null(c.sid);
    jwt_claims_free(&c);
}

Test(jwt, other_claims_may_hold_anything) {
    /* Only what we read is checked; nested members and other claims are opaque. */
    jwt_claims_t c;
    expect_accept_payload("{\"note\":\"a\\u0000b\\n\",\"x\":{\"sub\":\"no\",\"sub\":\"dup\","
                          "\"k\\u0000\":[\"sub\"]},\"sub\":\"u\",\"exp\":1700000100}", NOW, &c);
    cr_assert_str_eq(c.sub, "u");
    jwt_claims_free(&c);
}

Test(jwt, member_names_with_nul_are_refused) {
    /* cJSON would answer a lookup of "sub" with this member. */
    expect_reject_payload("{\"sub\\u0000x\":\"victim\",\"exp\":1700000100}", NOW,
                          "duplicate or NUL member name");
    expect_reject_payload("{\"sub\\u0000\":\"victim\",\"sub\":\"attacker\",\"exp\":1700000100}",
                          NOW, "duplicate or NUL member name");
    expect_reject_payload("{\"sub\":\"u\",\"ex\\u0000\":1,\"exp\":1700000100}", NOW,
                          "duplicate or NUL member name");
    char *tok = make(EVP_sha256(), "{\"alg\\u0000\":\"HS256\"}", "{\"sub\":\"u\",\"exp\":1700000100}");
    expect_reject(tok, NOW, "duplicate or NUL member name");
    free(tok);
}

Test(jwt, duplicate_claims_are_refused) {
    /* RFC 7519 section 4: refuse, rather than pick one another library would not. */
    expect_reject_payload("{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1700000100}", NOW,
                          "duplicate or NUL member name");
    expect_reject_payload("{\"sub\":\"a\",\"s\\u0075b\":\"b\",\"exp\":1700000100}", NOW,
                          "duplicate or NUL member name");
    expect_reject_payload("{\"sub\":\"a\",\"exp\":1700000100,\"exp\":1}", NOW, NULL);
    expect_reject_payload("{\"sub\":\"a\",\"sid\":\"x\",\"sid\":\"y\",\"exp\":1700000100}", NOW, NULL);
    char *tok = make(EVP_sha256(), "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
                     "{\"sub\":\"u\",\"exp\":1700000100}");
    expect_reject(tok, NOW, "duplicate or NUL member name");
    free(tok);
}

Test(jwt, alg_with_nul_is_not_hs256) {
    char *tok = make(EVP_sha256(), "{\"alg\":\"HS256\\u0000x\"}", "{\"sub\":\"u\",\"exp\":1700000100}");
    expect_reject(tok, NOW, "unsupported alg");
    free(tok);
    tok = make(EVP_sha256(), "{\"alg\":\"\\u0048S256\"}", "{\"sub\":\"u\",\"exp\":1700000100}");
    jwt_claims_t c;
    cr_assert_eq(verify_at(tok, NOW, &c, NULL), 0);
    jwt_claims_free(&c);
    free(tok);
}

Test(jwt, channels_claim) {
    jwt_claims_t c;
    expect_accept_payload("{\"sub\":\"u\",\"exp\":2000,\"channels\":[\"a\",\"b\",\"a\",\"\\u00e9 x\"]}",
                          1000, &c);
    cr_assert_eq(c.channel_count, 3); /* the repeat is dropped */
    cr_assert_str_eq(c.channels[0], "a");
    cr_assert_str_eq(c.channels[1], "b");
    cr_assert_str_eq(c.channels[2], "\xc3\xa9 x");
    jwt_claims_free(&c);
    cr_assert_null(c.channels);
    expect_accept_payload("{\"sub\":\"u\",\"exp\":2000,\"channels\":[]}", 1000, &c);
    cr_assert_eq(c.channel_count, 0);
    jwt_claims_free(&c);
    expect_accept_payload("{\"sub\":\"u\",\"exp\":2000}", 1000, &c);
    cr_assert_null(c.channels);
    jwt_claims_free(&c);
}

Test(jwt, channels_claim_rejected) {
    const char *bad[] = {
        "\"a\"", "1", "null", "{}", "[1]", "[\"a\",null]", "[[\"a\"]]", "[\"\"]",
        "[\"a\\u0001\"]", "[\"a\\u0000b\"]", "[\"\\u0085\"]",
    };
    char payload[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(payload, sizeof payload, "{\"sub\":\"u\",\"exp\":2000,\"channels\":%s}", bad[i]);
        expect_reject_payload(payload, 1000, "channels");
    }
    char big[400];
    memset(big, 'x', 257);
    big[257] = '\0';
    snprintf(payload, sizeof payload, "{\"sub\":\"u\",\"exp\":2000,\"channels\":[\"%s\"]}", big);
    expect_reject_payload(payload, 1000, "channels");
    big[256] = '\0';
    jwt_claims_t c;
    snprintf(payload, sizeof payload, "{\"sub\":\"u\",\"exp\":2000,\"channels\":[\"%s\"]}", big);
    expect_accept_payload(payload, 1000, &c);
    jwt_claims_free(&c);
    expect_reject_payload("{\"sub\":\"u\",\"exp\":2000,\"channels\":[],\"channels\":[]}", 1000,
                          "duplicate");
}
