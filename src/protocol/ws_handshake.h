/* The server side of the RFC 6455 opening handshake, I/O-free: validates the
 * client's upgrade request headers and computes Sec-WebSocket-Accept. */
#ifndef DSOCK_WS_HANDSHAKE_H
#define DSOCK_WS_HANDSHAKE_H

#include <stddef.h>

#include "protocol/http_parser.h"

#define WS_ACCEPT_LEN 28 /* base64 of a SHA-1 digest */

typedef enum ws_handshake_status {
    WS_HANDSHAKE_OK = 0,
    WS_HANDSHAKE_NOT_UPGRADE = -1,   /* not a WebSocket upgrade (or over HTTP/1.0): 400 */
    WS_HANDSHAKE_BAD_METHOD = -2,    /* not GET: 405 */
    WS_HANDSHAKE_BAD_VERSION = -3,   /* Sec-WebSocket-Version is not 13: 426 + "Sec-WebSocket-Version: 13" */
    WS_HANDSHAKE_BAD_KEY = -4,       /* missing or not base64 of 16 bytes: 400 */
} ws_handshake_status_t;

/* Checks, in this order: method, HTTP/1.1 (not 1.0), Upgrade: websocket,
 * Connection: upgrade, version 13
 * (a missing Sec-WebSocket-Version is BAD_VERSION too, so the client learns which
 * one to use) and the key (24 chars of padded base64 encoding 16 bytes). On OK
 * writes the Sec-WebSocket-Accept value plus NUL into accept_out. On error *why
 * gets a static message; why may be NULL and is left alone on OK. */
ws_handshake_status_t ws_handshake_check(const http_request_t *req,
                                         char accept_out[WS_ACCEPT_LEN + 1], const char **why);

/* Sec-WebSocket-Accept for a key (RFC 6455 4.2.2); out gets 28 chars + NUL. */
void ws_handshake_accept(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

#endif
