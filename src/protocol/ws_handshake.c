/* Server side of the RFC 6455 opening handshake (section 4.2.1): the checks on the
 * client's upgrade request and the Sec-WebSocket-Accept computation. Works on an
 * already parsed request; sending the response is the caller's business. */
#include "protocol/ws_handshake.h"

#include <string.h>

#include <openssl/evp.h>

#include "common/log.h"

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
