/* The server side of the RFC 6455 opening handshake, I/O-free: validates the
 * client's upgrade request headers and computes Sec-WebSocket-Accept. */
#ifndef DSOCK_WS_HANDSHAKE_H
#define DSOCK_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* permessage-deflate (RFC 7692) as negotiated for one connection. dsock always
 * answers with server_no_context_takeover (each message it sends is compressed once,
 * on its own, and the same bytes go to every recipient with the same window) and
 * client_no_context_takeover (each client message is a stream of its own, so no
 * inflater outlives a message; RFC 7692 7.1.1.2 lets the server ask for it even
 * when the client did not offer it). */
typedef struct ws_deflate_params {
    bool enabled;               /* an offer was accepted */
    uint8_t server_bits;        /* window dsock compresses with: 9..15 */
    bool server_bits_offered;   /* server_max_window_bits was in the offer: echoed */
    uint8_t client_bits;        /* client_max_window_bits offered (8..15; 15 when
                                   offered without a value or not at all) */
    bool client_bits_offered;   /* client_max_window_bits was in the offer */
} ws_deflate_params_t;

/* Parses one Sec-WebSocket-Extensions value (RFC 6455 9.1: a comma-separated list
 * of extensions, each a token with ";"-separated parameters, a value being a token
 * or a quoted-string) and takes the first acceptable permessage-deflate offer:
 * parameters limited to the four of RFC 7692 7.1, none repeated, no value on the
 * *_no_context_takeover ones, a value on server_max_window_bits, values (when
 * present) decimal 8..15 without leading zeros (quoted or not). An offer that breaks
 * a rule, or asks for server_max_window_bits=8 (zlib cannot produce it), is
 * declined and the next one considered; a syntax error declines only the element
 * it is in (up to the next comma outside a quoted string). Other extensions are
 * skipped. Returns true and fills *out for an accepted offer; false leaves *out
 * zeroed. Never fails otherwise: a handshake never fails because of an offer. */
bool ws_deflate_parse_offer(const char *value, size_t len, ws_deflate_params_t *out);

/* The same over every Sec-WebSocket-Extensions header of the request, in order. */
bool ws_deflate_negotiate(const http_request_t *req, ws_deflate_params_t *out);

/* Writes the Sec-WebSocket-Extensions value answering an accepted offer (no header
 * name, no CRLF) into out, NUL-terminated; returns its length (< WS_DEFLATE_RESPONSE_MAX).
 * client_max_window_bits is never answered (RFC 7692 7.1.2.2 makes it optional): a
 * smaller client window would not save dsock anything (its inflater uses 32 KiB
 * anyway, ws_deflate.h), so the client keeps the window it offered. */
#define WS_DEFLATE_RESPONSE_MAX 128
size_t ws_deflate_response(const ws_deflate_params_t *p, char out[WS_DEFLATE_RESPONSE_MAX]);

/* Sec-WebSocket-Accept for a key (RFC 6455 4.2.2); out gets 28 chars + NUL. */
void ws_handshake_accept(const char *key, size_t key_len, char out[WS_ACCEPT_LEN + 1]);

#endif
