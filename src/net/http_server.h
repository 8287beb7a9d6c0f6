/* HTTP/1.1 server on libuv: accepts connections, feeds bytes to the I/O-free
 * parser (protocol/http_parser.h), asks the role's precheck about each request as
 * soon as its headers are complete (route, method, authorization: before any
 * body byte is read), hands each complete request to the role's handler and
 * writes its response. Keep-alive; requests on one connection are answered in
 * order (reading pauses while one is being handled). Malformed input is answered
 * here with a JSON error and the connection is closed: 400, 413, 431, 501, 505.
 * Expect: 100-continue is answered here, only for a request the precheck
 * accepted. A request refused by the precheck is answered without reading its
 * body; when it had one, the answer says Connection: close, the write side is
 * shut down and what the client still sends is discarded for at most
 * min(idle_timeout_ms, 2 s), so the client reads the answer rather than a reset.
 * Connections idle (or too slow to send a request) for idle_timeout_ms are
 * closed: the idle wait, the request line and headers, the body, and the writing
 * of the response each get idle_timeout_ms (0: no timeout). A handler holding a
 * request has no deadline.
 *
 * Ownership: the server owns its connections. A request handed to the handler
 * stays valid until the handler answers it (http_conn_respond) or takes the socket
 * (http_conn_detach); the handler must do exactly one, possibly later. If the peer
 * goes away meanwhile, the connection lingers until then and the answer is dropped. */
#ifndef DSOCK_HTTP_SERVER_H
#define DSOCK_HTTP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "protocol/http_parser.h"

typedef struct http_server http_server_t;
typedef struct http_conn http_conn_t;

typedef struct http_server_config {
    http_limits_t limits;
    unsigned idle_timeout_ms;  /* keep-alive idle and slow-request bound */
    size_t max_connections;    /* HTTP connections held (detached ones not counted). Over
                                * it a new connection is answered 503 TOO_MANY_CONNECTIONS
                                * (best effort, from static bytes) and closed at once;
                                * 0: no limit. */
    atomic_size_t *shared_count; /* NULL, or a counter several servers (threads) share:
                                  * then max_connections bounds their sum. The caller
                                  * keeps it alive while any of them exists. */
    bool log_requests;         /* one access line per answered request (docs/logging.md) */
    bool reuse_port;           /* SO_REUSEPORT: several servers (one per thread) listen on
                                * one address and the kernel spreads connections */
} http_server_config_t;

typedef void (*http_handler_fn)(void *ud, http_conn_t *c, const http_request_t *req);

/* Called once per request when its request line and headers are complete and
 * accepted by the parser, before any body byte is read and before 100 Continue.
 * req has no body yet (body NULL, body_len 0; req->has_body says whether one
 * follows). Returns true to serve the request: its body is read and the handler
 * gets it. Or answers it now, synchronously, with http_conn_respond() or
 * http_conn_respond_error() (never http_conn_detach()), and returns false: the
 * handler is not called, the body is not read and, if there was one (or the
 * method was CONNECT), the connection is closed after the answer. */
typedef bool (*http_precheck_fn)(void *ud, http_conn_t *c, const http_request_t *req);

/* What a role's precheck says about a request (a building block for the
 * http_precheck_fn of a process serving several roles). */
typedef enum http_verdict {
    HTTP_NOT_MINE,  /* not one of the role's paths; nothing was done */
    HTTP_ANSWERED,  /* refused; the role answered (404/405/401/...) */
    HTTP_ACCEPTED,  /* the role will serve it once complete */
} http_verdict_t;

/* Never NULL. The config is copied. precheck may be NULL: every request is read
 * whole and handed to the handler. */
http_server_t *http_server_new(uv_loop_t *loop, const http_server_config_t *cfg,
                               http_precheck_fn precheck, http_handler_fn handler, void *ud);

/* Binds and listens on "host:port", ":port" (0.0.0.0) or "[ipv6]:port"; a host
 * name is resolved once, here. Returns 0, or a negative libuv error with a message
 * for a person in err ("cannot listen on 127.0.0.1:80: permission denied"). Call it
 * once; after a failure, close the server. */
int http_server_listen(http_server_t *s, const char *address, char *err, size_t errlen);

/* The bound port (useful with port 0), or -1. */
int http_server_port(const http_server_t *s);

/* Graceful shutdown, first step (docs/probes-and-drain.md): from now on every
 * answer closes its connection (Connection: close) and idle keep-alive
 * connections are closed at once; the listener stays open (the precheck decides
 * what a draining process still serves, e.g. probes). quiet (may be NULL) is
 * called once, possibly before this returns, as soon as no request is in flight:
 * none being read after its headers, with a handler, or being answered. Call it
 * at most once, before http_server_close. */
void http_server_drain(http_server_t *s, void (*quiet)(void *ud), void *ud);

/* Closes the listening socket now; connections already accepted go on. For a
 * drain with reuse_port: the kernel then gives new connections to the other
 * processes on the port instead of to one that answers 503 (connections it had
 * queued here and not accepted yet are reset). http_server_close still closes
 * everything else. */
void http_server_stop_listening(http_server_t *s);

/* Stops listening, closes every connection (pending handlers still must answer;
 * their answers are dropped), frees the server and calls done (may be NULL) once
 * every handle is closed. Call it once. */
void http_server_close(http_server_t *s, void (*done)(void *ud), void *ud);

/* Answers the current request (from the handler, or from the precheck). Adds
 * Content-Type: application/json, Content-Length, Connection and X-Request-ID
 * headers (and "requestId" to a JSON error body, see http_conn_request_id);
 * extra_headers (NULL or lines each ending in "\r\n") are added as given. The
 * body is copied. The request (and its strings) is freed here. A HEAD request gets
 * the headers only. An answered upgrade request (a refused WebSocket handshake),
 * a CONNECT, an HTTP/1.0 request with Transfer-Encoding and a request whose body
 * was not read close the connection afterwards. Calling it when no request is
 * pending is a broken invariant and aborts. */
void http_conn_respond(http_conn_t *c, int status, const char *extra_headers, const char *body,
                       size_t body_len);

/* The same with another Content-Type (e.g. the Prometheus text format). */
void http_conn_respond_type(http_conn_t *c, int status, const char *content_type,
                            const char *extra_headers, const char *body, size_t body_len);

/* Answers {"success":false,"error":message,"errorCode":code} with status. */
void http_conn_respond_error(http_conn_t *c, int status, const char *code, const char *message);

/* True when the connection was closed while its request is pending (server
 * shutdown). Reading is paused while a handler holds a request, so a peer that
 * leaves then is noticed only by whoever writes to it next. */
bool http_conn_is_gone(const http_conn_t *c);

/* Takes the socket out of the server for another protocol (WebSocket). The server
 * stops reading from it and forgets it; the caller owns the returned handle (its
 * data field is free to use) and must uv_close() it and free() it in the close
 * callback. Bytes that followed the request are copied to *rest (caller frees,
 * NULL when none). Returns NULL when the peer is already gone (the server then
 * cleans up itself). Either way the request and c are freed: read what you need
 * from them (and http_conn_peer) before calling. */
uv_tcp_t *http_conn_detach(http_conn_t *c, char **rest, size_t *rest_len);

/* Like http_conn_detach, for a socket that moves to another loop thread: returns
 * a duplicate of the socket's descriptor (close-on-exec), which the caller owns
 * (uv_tcp_open it on the other loop), and closes this loop's handle. The request
 * is accounted as answered with 101 (the new owner writes it). -2 when the peer is
 * already gone (c freed, as with detach); -1 when no descriptor could be made:
 * then nothing changed and the handler still owes an answer. */
int http_conn_take_fd(http_conn_t *c, char **rest, size_t *rest_len);

/* The pending request's id (docs/api.md, "Request ids"): its X-Request-ID header
 * when that is at most 64 bytes of [A-Za-z0-9._:-], else one made here (16 hex
 * digits). Every answer carries it in an X-Request-ID header, an error answer
 * (a JSON object, status >= 400) also as "requestId", and the access line names
 * it; a role names it in what it logs about the request. Valid until the request
 * is answered or detached; a role writing its own 101 adds the header itself. */
const char *http_conn_request_id(http_conn_t *c);

/* Peer address as text ("127.0.0.1:5555"), for logs. */
const char *http_conn_peer(const http_conn_t *c);

/* The max_connections of the server that holds c (0: no limit, or the server is
 * gone). A role that detaches sockets applies the same limit to what it keeps. */
size_t http_conn_max_connections(const http_conn_t *c);

#endif
