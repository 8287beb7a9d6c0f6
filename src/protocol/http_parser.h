/* HTTP/1.1 request parser: an I/O-free engine over llhttp (built in its strict
 * mode). Bytes go in with http_parser_feed(); a complete request comes out, with
 * its query string decoded into parameters and its headers and body bounded by
 * configurable limits. On request, it also stops once at the end of the headers
 * (http_parser_stop_at_headers), so a server can route and authorize a request
 * before reading its body. Once it fails it stays failed (sticky error), like
 * hiredis' reader.
 *
 * Conformance beyond llhttp (RFC 9112): an HTTP/1.1 request without Host, or any
 * request with more than one, is a 400; an error after a valid version (a bare CR)
 * is a 400, 505 is only for a version other than 1.0 and 1.1; a request after
 * which the connection cannot carry another one has keep_alive false: CONNECT
 * (what follows it is never read as a body) and HTTP/1.0 with Transfer-Encoding
 * (RFC 9112 6.1).
 *
 * Ownership: the parser owns every string in the request it exposes; they stay
 * valid until http_parser_reset() or http_parser_free(). */
#ifndef DSOCK_HTTP_PARSER_H
#define DSOCK_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum http_method {
    HTTP_METHOD_OTHER = 0,
    HTTP_METHOD_GET,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_POST,
    HTTP_METHOD_PUT,
    HTTP_METHOD_DELETE,
    HTTP_METHOD_OPTIONS,
    HTTP_METHOD_CONNECT, /* never served; what follows its headers is not read */
} http_method_t;

typedef struct http_limits {
    size_t max_header_bytes; /* request line + all headers; over it: 431 */
    size_t max_headers;      /* header count; over it: 431 */
    size_t max_body_bytes;   /* body (Content-Length or chunked total); over it: 413 */
} http_limits_t;

typedef struct http_kv {
    char *key;     /* NUL-terminated; header names are lower-cased */
    size_t key_len;
    char *value;   /* NUL-terminated, percent-decoded for query parameters */
    size_t value_len;
} http_kv_t;

typedef struct http_request {
    http_method_t method;
    const char *method_name; /* e.g. "GET", static storage */
    char *path;              /* percent-decoded path without the query, NUL-terminated */
    http_kv_t *query;        /* decoded query parameters, in order of appearance */
    size_t query_count;
    http_kv_t *headers;      /* names lower-cased, values with surrounding spaces trimmed */
    size_t header_count;
    char *body;              /* NUL-terminated for convenience; may contain NULs */
    size_t body_len;
    bool keep_alive;         /* the connection may carry another request */
    bool upgrade;            /* Connection: upgrade with an Upgrade header */
    bool expect_continue;    /* HTTP/1.1 with "Expect: 100-continue" */
    bool has_body;           /* Content-Length > 0 or chunked: a body follows the headers */
    unsigned char http_minor; /* 0 for HTTP/1.0, 1 for HTTP/1.1 */
} http_request_t;

typedef enum http_parse_status {
    HTTP_PARSE_NEED_MORE = 0, /* all bytes consumed, request not complete yet */
    HTTP_PARSE_DONE = 1,      /* a request is complete: see http_parser_request() */
    HTTP_PARSE_HEADERS = 2,   /* only with http_parser_stop_at_headers(): the request
                               * line and headers are complete and accepted, no body
                               * byte was read; see http_parser_request() */
    HTTP_PARSE_ERROR = -1,    /* see http_parser_error_status()/_error_message() */
} http_parse_status_t;

typedef struct http_parser http_parser_t;

/* Limits are copied. Never returns NULL (aborts on OOM). */
http_parser_t *http_parser_new(const http_limits_t *limits);
void http_parser_free(http_parser_t *p); /* NULL is a no-op */

/* Makes feed() return HTTP_PARSE_HEADERS once per request, at the end of its
 * headers, with *consumed up to there: the caller can look at the request before
 * any body byte is read. Feeding again (even 0 bytes) goes on with the body: a
 * request without a body (and a CONNECT, whose following bytes are never read)
 * is then DONE at once, consuming nothing. Off by default. */
void http_parser_stop_at_headers(http_parser_t *p, bool on);

/* Feeds bytes. *consumed is set to how many were used: on DONE the rest belong to the
 * next request (or, for an upgrade, to the new protocol); on HEADERS the rest is the
 * body, to be fed next; on NEED_MORE it equals len. After DONE, feeding again
 * without reset returns DONE with *consumed = 0. */
http_parse_status_t http_parser_feed(http_parser_t *p, const char *data, size_t len,
                                     size_t *consumed);

/* The peer closed its side: DONE if a request was already complete, NEED_MORE when
 * no request had begun (a clean close), ERROR (400) for a request cut short. */
http_parse_status_t http_parser_finish(http_parser_t *p);

/* Valid after HEADERS and DONE (NULL before), until reset/free; after HEADERS the
 * body is NULL with body_len 0 until DONE. Query keys and values and the path
 * never contain NUL bytes (a %00 is refused with 400). */
const http_request_t *http_parser_request(const http_parser_t *p);

/* After ERROR: the HTTP status to answer with (400, 413, 431, 501, 505) and a short
 * human-readable reason. */
int http_parser_error_status(const http_parser_t *p);
const char *http_parser_error_message(const http_parser_t *p);

/* True once the request line and headers have started arriving (used to tell an
 * idle keep-alive connection from a slow request). */
bool http_parser_in_progress(const http_parser_t *p);

/* True once the request line and headers are complete (the body may still be
 * arriving), until reset. Lets a server give the body its own time budget. */
bool http_parser_headers_complete(const http_parser_t *p);

/* True after a NEED_MORE when the client sent "Expect: 100-continue", the headers
 * are complete and accepted (limits included), no body byte has arrived yet and
 * http_parser_continue_sent() was not called for this request: the caller should
 * write "HTTP/1.1 100 Continue\r\n\r\n" now, then call http_parser_continue_sent().
 * Callers that never ask still work; such clients merely wait a moment. */
bool http_parser_wants_continue(const http_parser_t *p);
void http_parser_continue_sent(http_parser_t *p);

/* Ready for the next request on the same connection; frees the previous one. */
void http_parser_reset(http_parser_t *p);

/* Lookups on a parsed request. Return NULL when absent; the first occurrence wins. */
const http_kv_t *http_request_query(const http_request_t *r, const char *key);
const http_kv_t *http_request_header(const http_request_t *r, const char *lower_name);

/* The rule for every parameter of the API and of /connect (docs/api.md): the first
 * occurrence of key with a non-empty value, or NULL. An empty value counts as
 * absent, so "?token=&token=T" means T, as a single "?token=T" does. */
const http_kv_t *http_request_param(const http_request_t *r, const char *key);

/* Does the comma-separated header value list contain token (case-insensitive)? */
bool http_header_has_token(const http_kv_t *h, const char *token);

/* The standard reason phrase for a status code ("Not Found"), or "Unknown". */
const char *http_status_reason(int status);

#endif
