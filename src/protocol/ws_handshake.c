/* Server side of the RFC 6455 opening handshake (section 4.2.1): the checks on the
 * client's upgrade request and the Sec-WebSocket-Accept computation. Works on an
 * already parsed request; sending the response is the caller's business. */
#include "protocol/ws_handshake.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "protocol/ws_deflate.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* A 16-byte value in padded base64 is exactly 22 symbols plus "==". The unused
 * low bits of the last symbol are not checked, as common servers do not. */
static bool key_valid(const char *k, size_t n) {
    if (n != 24 || k[22] != '=' || k[23] != '=') return false;
    for (size_t i = 0; i < 22; i++)
        if (b64_value((unsigned char)k[i]) < 0) return false;
    return true;
}

void ws_handshake_accept(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) || !EVP_DigestUpdate(ctx, key, key_len) ||
        !EVP_DigestUpdate(ctx, WS_GUID, sizeof WS_GUID - 1) || !EVP_DigestFinal_ex(ctx, md, &md_len) ||
        md_len != 20) {
        /* Only possible when libcrypto itself is broken or out of memory. */
        log_fatal("SHA-1 digest failed in the WebSocket handshake");
    }
    EVP_MD_CTX_free(ctx);
    EVP_EncodeBlock((unsigned char *)out, md, 20); /* 28 chars + NUL */
}

ws_handshake_status_t ws_handshake_check(const http_request_t *req,
                                         char accept_out[WS_ACCEPT_LEN + 1], const char **why) {
    const char *dummy;
    if (!why) why = &dummy;

    if (req->method != HTTP_METHOD_GET) {
        *why = "WebSocket upgrade requires GET";
        return WS_HANDSHAKE_BAD_METHOD;
    }
    /* RFC 6455 4.1/4.2.1: "an HTTP/1.1 or higher GET request". An HTTP/1.0 peer
     * or proxy knows no Upgrade, so a 101 could not be relied on: a plain 400,
     * like any other request that is not a valid handshake. */
    if (req->http_minor < 1) {
        *why = "WebSocket upgrade requires HTTP/1.1";
        return WS_HANDSHAKE_NOT_UPGRADE;
    }
    const http_kv_t *upgrade = http_request_header(req, "upgrade");
    if (!upgrade || !http_header_has_token(upgrade, "websocket")) {
        *why = "missing Upgrade: websocket";
        return WS_HANDSHAKE_NOT_UPGRADE;
    }
    const http_kv_t *connection = http_request_header(req, "connection");
    if (!connection || !http_header_has_token(connection, "upgrade")) {
        *why = "missing Connection: upgrade";
        return WS_HANDSHAKE_NOT_UPGRADE;
    }
    /* A missing version is answered like a wrong one: the 426 tells the client
     * which version to use. */
    const http_kv_t *version = http_request_header(req, "sec-websocket-version");
    if (!version || strcmp(version->value, "13") != 0) {
        *why = "unsupported Sec-WebSocket-Version (13 required)";
        return WS_HANDSHAKE_BAD_VERSION;
    }
    const http_kv_t *key = http_request_header(req, "sec-websocket-key");
    if (!key || !key_valid(key->value, key->value_len)) {
        *why = "missing or malformed Sec-WebSocket-Key";
        return WS_HANDSHAKE_BAD_KEY;
    }
    ws_handshake_accept(key->value, key->value_len, accept_out);
    return WS_HANDSHAKE_OK;
}

/* permessage-deflate negotiation (RFC 7692 5 and 7.1) ------------------------- */

/* RFC 7230 3.2.6 tchar. */
static bool is_tchar(unsigned char c) {
    if (c >= '0' && c <= '9') return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

typedef struct cursor {
    const char *s;
    size_t n, i;
} cursor_t;

static void skip_ows(cursor_t *c) {
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t')) c->i++;
}

/* A token at the cursor: its start and length (0: none). */
static size_t take_token(cursor_t *c, const char **start) {
    *start = c->s + c->i;
    size_t b = c->i;
    while (c->i < c->n && is_tchar((unsigned char)c->s[c->i])) c->i++;
    return c->i - b;
}

/* A quoted-string at the cursor (which is on the opening quote), unescaped into
 * out[0..cap) when it fits; returns its unescaped length, or -1 when it is not
 * terminated or holds a byte a quoted-string may not (RFC 7230 3.2.6). A longer
 * value than cap is still consumed and its length returned. */
static long take_quoted(cursor_t *c, char *out, size_t cap) {
    size_t len = 0;
    c->i++; /* opening quote */
    while (c->i < c->n) {
        unsigned char ch = (unsigned char)c->s[c->i++];
        if (ch == '"') return (long)len;
        if (ch == '\\') {
            if (c->i == c->n) return -1;
            ch = (unsigned char)c->s[c->i++];
            if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) return -1;
        } else if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
            return -1;
        }
        if (len < cap) out[len] = (char)ch;
        len++;
    }
    return -1;
}

/* Moves past the rest of the element the cursor is in, to just after the next
 * comma that is not inside a quoted string (or to the end). */
static void skip_element(cursor_t *c) {
    bool quoted = false;
    while (c->i < c->n) {
        char ch = c->s[c->i++];
        if (quoted) {
            if (ch == '\\' && c->i < c->n) c->i++;
            else if (ch == '"') quoted = false;
        } else if (ch == '"') {
            quoted = true;
        } else if (ch == ',') {
            return;
        }
    }
}

/* "8".."15", no leading zero, no sign: the window bits value (RFC 7692 7.1.2). */
static int window_bits(const char *v, size_t n) {
    if (n == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
    if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
    return -1;
}

enum {
    P_SERVER_NCT = 1,
    P_CLIENT_NCT = 2,
    P_SERVER_BITS = 4,
    P_CLIENT_BITS = 8,
};

/* One parameter of a permessage-deflate offer; false declines the offer. */
static bool offer_param(const char *name, size_t nlen, bool has_value, const char *v, size_t vlen,
                        unsigned *seen, ws_deflate_params_t *p) {
    static const struct {
        const char *name;
        unsigned bit;
    } known[] = {
        {"server_no_context_takeover", P_SERVER_NCT},
        {"client_no_context_takeover", P_CLIENT_NCT},
        {"server_max_window_bits", P_SERVER_BITS},
        {"client_max_window_bits", P_CLIENT_BITS},
    };
    unsigned bit = 0;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].name) == nlen && strncasecmp(known[i].name, name, nlen) == 0)
            bit = known[i].bit;
    if (!bit || (*seen & bit)) return false; /* unknown or repeated: decline (7.1) */
    *seen |= bit;
    switch (bit) {
    case P_SERVER_NCT:
    case P_CLIENT_NCT:
        return !has_value;
    case P_SERVER_BITS: {
        int b = has_value ? window_bits(v, vlen) : -1;
        /* 8 is valid, but zlib cannot keep to it: an offer that cannot be served */
        if (b < WS_DEFLATE_MIN_BITS) return false;
        p->server_bits = (uint8_t)b;
        p->server_bits_offered = true;
        return true;
    }
    default: { /* P_CLIENT_BITS: the value is optional (7.1.2.2) */
        int b = has_value ? window_bits(v, vlen) : 15;
        if (b < 0) return false;
        p->client_bits = (uint8_t)b;
        p->client_bits_offered = true;
        return true;
    }
    }
}

bool ws_deflate_parse_offer(const char *value, size_t len, ws_deflate_params_t *out) {
    memset(out, 0, sizeof *out);
    cursor_t c = {value, len, 0};
    while (c.i < c.n) {
        skip_ows(&c);
        if (c.i < c.n && c.s[c.i] == ',') { /* empty list element (RFC 7230 7) */
            c.i++;
            continue;
        }
        if (c.i == c.n) break;
        const char *name;
        size_t nlen = take_token(&c, &name);
        if (!nlen) {
            skip_element(&c);
            continue;
        }
        bool ours = nlen == 18 && strncasecmp(name, "permessage-deflate", 18) == 0;
        ws_deflate_params_t p = {0};
        p.server_bits = WS_DEFLATE_MAX_BITS;
        p.client_bits = 15;
        unsigned seen = 0;
        bool ok = true, syntax = false;
        for (;;) {
            skip_ows(&c);
            if (c.i == c.n || c.s[c.i] == ',') break;
            if (c.s[c.i] != ';') {
                syntax = true;
                break;
            }
            c.i++;
            skip_ows(&c);
            const char *pname;
            size_t plen = take_token(&c, &pname);
            if (!plen) {
                syntax = true;
                break;
            }
            skip_ows(&c);
            bool has_value = false;
            char vbuf[4];
            const char *v = NULL;
            size_t vlen = 0;
            if (c.i < c.n && c.s[c.i] == '=') {
                c.i++;
                skip_ows(&c);
                has_value = true;
                if (c.i < c.n && c.s[c.i] == '"') {
                    long q = take_quoted(&c, vbuf, sizeof vbuf);
                    if (q < 0) {
                        syntax = true;
                        break;
                    }
                    v = vbuf;
                    vlen = (size_t)q; /* > sizeof vbuf: never a valid value anyway */
                } else {
                    vlen = take_token(&c, &v);
                    if (!vlen) {
                        syntax = true;
                        break;
                    }
                }
            }
            if (ours && ok) ok = offer_param(pname, plen, has_value, v, vlen, &seen, &p);
        }
        if (syntax) {
            skip_element(&c);
            continue;
        }
        if (c.i < c.n) c.i++; /* the comma */
        if (ours && ok) {
            p.enabled = true;
            *out = p;
            return true;
        }
    }
    return false;
}

bool ws_deflate_negotiate(const http_request_t *req, ws_deflate_params_t *out) {
    for (size_t i = 0; i < req->header_count; i++) {
        const http_kv_t *h = &req->headers[i];
        if (strcasecmp(h->key, "sec-websocket-extensions") != 0) continue;
        if (ws_deflate_parse_offer(h->value, h->value_len, out)) return true;
    }
    memset(out, 0, sizeof *out);
    return false;
}

size_t ws_deflate_response(const ws_deflate_params_t *p, char out[WS_DEFLATE_RESPONSE_MAX]) {
    int n = snprintf(out, WS_DEFLATE_RESPONSE_MAX,
                     "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    /* Echoed with the value dsock compresses with (the offered one): 7.1.2.1. */
    if (p->server_bits_offered)
        n += snprintf(out + n, WS_DEFLATE_RESPONSE_MAX - (size_t)n, "; server_max_window_bits=%u",
                      (unsigned)p->server_bits);
    return (size_t)n;
}
