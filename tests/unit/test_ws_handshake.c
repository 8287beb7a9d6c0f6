/* Unit tests for the opening-handshake checks (RFC 6455 4.2.1) and the
 * Sec-WebSocket-Accept computation (RFC 6455 1.3 / 4.2.2 example). Requests are
 * built by hand, plus one end-to-end through the HTTP parser. */
#include <criterion/criterion.h>
#include <string.h>

#include "protocol/ws_handshake.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

typedef struct req_builder {
    http_request_t req;
    http_kv_t headers[8];
} req_builder_t;

static void add_header(req_builder_t *b, const char *key, const char *value) {
    http_kv_t *h = &b->headers[b->req.header_count++];
    h->key = (char *)key;
    h->key_len = strlen(key);
    h->value = (char *)value;
    h->value_len = strlen(value);
}

/* A valid upgrade request in which header `name` gets `value` instead (NULL: left out). */
static void build(req_builder_t *b, http_method_t method, const char *name, const char *value) {
    memset(b, 0, sizeof *b);
    b->req.method = method;
    b->req.method_name = method == HTTP_METHOD_GET ? "GET" : "POST";
    b->req.path = "/connect";
    b->req.http_minor = 1;
    b->req.headers = b->headers;
    static const char *defaults[][2] = {
        {"host", "server.example.com"},
        {"upgrade", "websocket"},
        {"connection", "Upgrade"},
        {"sec-websocket-key", RFC_KEY},
        {"sec-websocket-version", "13"},
    };
    for (size_t i = 0; i < sizeof defaults / sizeof *defaults; i++) {
        if (name && strcmp(name, defaults[i][0]) == 0) {
            if (value) add_header(b, name, value);
        } else {
            add_header(b, defaults[i][0], defaults[i][1]);
        }
    }
}

static ws_handshake_status_t check(http_method_t m, const char *name, const char *value, char *accept) {
    req_builder_t b;
    build(&b, m, name, value);
    const char *why = NULL;
    ws_handshake_status_t st = ws_handshake_check(&b.req, accept, &why);
    if (st != WS_HANDSHAKE_OK) cr_assert(why && *why, "a reason is given");
    return st;
}

Test(ws_handshake, rfc_example_accept) {
    char out[WS_ACCEPT_LEN + 1];
    ws_handshake_accept(RFC_KEY, strlen(RFC_KEY), out);
    cr_assert_str_eq(out, RFC_ACCEPT);
    cr_assert_eq(strlen(out), WS_ACCEPT_LEN);
}

Test(ws_handshake, valid_request) {
    char accept[WS_ACCEPT_LEN + 1] = {0};
    cr_assert_eq(check(HTTP_METHOD_GET, NULL, NULL, accept), WS_HANDSHAKE_OK);
    cr_assert_str_eq(accept, RFC_ACCEPT);
}

Test(ws_handshake, token_lists_and_case) {
    char accept[WS_ACCEPT_LEN + 1];
    cr_assert_eq(check(HTTP_METHOD_GET, "upgrade", "WebSocket", accept), WS_HANDSHAKE_OK);
    cr_assert_eq(check(HTTP_METHOD_GET, "upgrade", "h2c, websocket", accept), WS_HANDSHAKE_OK);
    cr_assert_eq(check(HTTP_METHOD_GET, "connection", "keep-alive, Upgrade", accept), WS_HANDSHAKE_OK);
    cr_assert_eq(check(HTTP_METHOD_GET, "connection", "UPGRADE", accept), WS_HANDSHAKE_OK);
    cr_assert_eq(check(HTTP_METHOD_GET, "upgrade", "websocketx", accept), WS_HANDSHAKE_NOT_UPGRADE);
    cr_assert_eq(check(HTTP_METHOD_GET, "connection", "keep-alive", accept), WS_HANDSHAKE_NOT_UPGRADE);
    cr_assert_eq(check(HTTP_METHOD_GET, "connection", "upgraded", accept), WS_HANDSHAKE_NOT_UPGRADE);
}

Test(ws_handshake, bad_method) {
    char accept[WS_ACCEPT_LEN + 1];
    cr_assert_eq(check(HTTP_METHOD_POST, NULL, NULL, accept), WS_HANDSHAKE_BAD_METHOD);
}

Test(ws_handshake, missing_upgrade_headers) {
    char accept[WS_ACCEPT_LEN + 1];
    cr_assert_eq(check(HTTP_METHOD_GET, "upgrade", NULL, accept), WS_HANDSHAKE_NOT_UPGRADE);
    cr_assert_eq(check(HTTP_METHOD_GET, "connection", NULL, accept), WS_HANDSHAKE_NOT_UPGRADE);
}

Test(ws_handshake, version) {
    char accept[WS_ACCEPT_LEN + 1];
    cr_assert_eq(check(HTTP_METHOD_GET, "sec-websocket-version", "8", accept), WS_HANDSHAKE_BAD_VERSION);
    cr_assert_eq(check(HTTP_METHOD_GET, "sec-websocket-version", "13, 8", accept), WS_HANDSHAKE_BAD_VERSION);
    cr_assert_eq(check(HTTP_METHOD_GET, "sec-websocket-version", "", accept), WS_HANDSHAKE_BAD_VERSION);
    cr_assert_eq(check(HTTP_METHOD_GET, "sec-websocket-version", NULL, accept), WS_HANDSHAKE_BAD_VERSION);
}

Test(ws_handshake, keys) {
    char accept[WS_ACCEPT_LEN + 1];
    static const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ",     /* unpadded */
        "dGhlIHNhbXBsZSBub25jZQ=",    /* wrong padding */
        "dGhlIHNhbXBsZSBub25jZQ===",  /* too long */
        "dGhlIHNhbXBsZSBub25j",       /* 15 bytes */
        "dGhlIHNhbXBsZSBub25jZSE=",   /* 17 bytes */
        "dGhlIHNhbXBsZSBub25jZ*==",   /* bad symbol */
        "dGhlIHNhbXBsZSBub2 jZQ==",   /* space */
        "dGhlIHNhbXBsZSBub25jZQ-_",   /* base64url alphabet */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(check(HTTP_METHOD_GET, "sec-websocket-key", bad[i], accept), WS_HANDSHAKE_BAD_KEY,
                     "key '%s'", bad[i]);
    cr_assert_eq(check(HTTP_METHOD_GET, "sec-websocket-key", NULL, accept), WS_HANDSHAKE_BAD_KEY);
    cr_assert_eq(check(HTTP_METHOD_GET, "sec-websocket-key", "AAAAAAAAAAAAAAAAAAAAAA==", accept),
                 WS_HANDSHAKE_OK);
    cr_assert_eq(check(HTTP_METHOD_GET, "sec-websocket-key", "+/+/+/+/+/+/+/+/+/+/+w==", accept),
                 WS_HANDSHAKE_OK);
}

Test(ws_handshake, null_why_allowed) {
    req_builder_t b;
    build(&b, HTTP_METHOD_POST, NULL, NULL);
    char accept[WS_ACCEPT_LEN + 1];
    cr_assert_eq(ws_handshake_check(&b.req, accept, NULL), WS_HANDSHAKE_BAD_METHOD);
}

Test(ws_handshake, through_http_parser) {
    static const char raw[] = "GET /connect?jwt=x HTTP/1.1\r\n"
                              "Host: server.example.com\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: keep-alive, Upgrade\r\n"
                              "Sec-WebSocket-Key:  " RFC_KEY "  \r\n"
                              "Origin: http://example.com\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";
    http_limits_t lim = {.max_header_bytes = 8192, .max_headers = 64, .max_body_bytes = 1024};
    http_parser_t *p = http_parser_new(&lim);
    size_t used = 0;
    cr_assert_eq(http_parser_feed(p, raw, sizeof raw - 1, &used), HTTP_PARSE_DONE);
    char accept[WS_ACCEPT_LEN + 1];
    const char *why = NULL;
    cr_assert_eq(ws_handshake_check(http_parser_request(p), accept, &why), WS_HANDSHAKE_OK, "%s", why);
    cr_assert_str_eq(accept, RFC_ACCEPT);
    http_parser_free(p);
}

Test(ws_handshake, http10_refused) {
    /* RFC 6455 4.1: the handshake is an HTTP/1.1 (or higher) GET request. */
    static const char raw[] = "GET /connect HTTP/1.0\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "\r\n";
    http_limits_t lim = {.max_header_bytes = 8192, .max_headers = 64, .max_body_bytes = 1024};
    http_parser_t *p = http_parser_new(&lim);
    size_t used = 0;
    cr_assert_eq(http_parser_feed(p, raw, sizeof raw - 1, &used), HTTP_PARSE_DONE);
    char accept[WS_ACCEPT_LEN + 1];
    const char *why = NULL;
    cr_assert_eq(ws_handshake_check(http_parser_request(p), accept, &why), WS_HANDSHAKE_NOT_UPGRADE);
    cr_assert_str_eq(why, "WebSocket upgrade requires HTTP/1.1");
    http_parser_free(p);
}
