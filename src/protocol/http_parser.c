/* HTTP/1.1 request parser over llhttp. llhttp does the tokenizing; this file copies
 * the pieces it reports (possibly split across feeds) into buffers it owns, enforces
 * the size limits as early as the bytes allow, decodes the target into a path and
 * query parameters, and pauses llhttp at the end of the headers (where the caller
 * may stop and look) and at the end of each request, so exactly one request comes
 * out per DONE, with the unread remainder left to the caller.
 *
 * llhttp is compiled with LLHTTP_STRICT_MODE (see the Makefile): its loose mode
 * skips the two bytes after chunk data without checking they are CRLF, accepts a
 * CR not followed by LF, and lets control bytes into the URL. */
#include "protocol/http_parser.h"

#include <llhttp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/mem.h"

struct http_parser {
    llhttp_t ll;
    http_limits_t limits;
    http_request_t req;
    size_t header_cap;
    size_t query_cap;
    buf_t url;
    buf_t field;
    buf_t value;
    buf_t body;
    char version[8];
    size_t version_len;
    size_t header_bytes; /* request line + headers consumed so far */
    size_t extra_bytes;  /* chunk extensions and trailers, bounded like headers */
    uint64_t chunked_total;
    int chunked_codings; /* "chunked" tokens seen in Transfer-Encoding */
    int host_headers;    /* Host header lines seen */
    bool in_value;       /* a header value has started (field is complete) */
    bool begun;
    bool version_ok;     /* the version was read and is 1.0 or 1.1 */
    bool headers_done;
    bool done;
    bool continue_sent;
    bool upgrade_header;
    bool stop_at_headers;   /* return HEADERS at the end of the headers (option) */
    bool paused_at_headers; /* HEADERS was returned; llhttp resumes at the next feed */
    int err_status; /* 0 while healthy; sticky once set */
    char err_msg[112];
};

static void parser_fail(http_parser_t *p, int status, const char *msg) {
    if (p->err_status) return; /* the first cause is the one reported */
    p->err_status = status;
    snprintf(p->err_msg, sizeof p->err_msg, "%s", msg);
}

/* ---- request construction ---------------------------------------------- */

static void kv_push(http_kv_t **arr, size_t *count, size_t *cap, char *key, size_t key_len,
                    char *value, size_t value_len) {
    if (*count == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *arr = mem_realloc(*arr, *cap * sizeof **arr);
    }
    (*arr)[*count] = (http_kv_t){key, key_len, value, value_len};
    (*count)++;
}

static void kv_free_all(http_kv_t *arr, size_t count) {
    for (size_t i = 0; i < count; i++) {
        free(arr[i].key);
        free(arr[i].value);
    }
    free(arr);
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into a new NUL-terminated string. A NUL byte (literal or
 * %00) is refused too: every consumer treats these values as C strings, and a
 * silently truncated user id or path is worse than a 400. */
static char *percent_decode(const char *s, size_t len, bool plus_is_space, size_t *out_len) {
    char *out = mem_alloc(len + 1);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (len - i < 3) goto bad;
            int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
            if (hi < 0 || lo < 0) goto bad;
            c = (char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0') goto bad;
        out[o++] = c;
    }
    out[o] = '\0';
    *out_len = o;
    return out;
bad:
    free(out);
    return NULL;
}

static int parse_query(http_parser_t *p, const char *q, size_t len) {
    size_t i = 0;
    while (i <= len) {
        const char *seg = q + i;
        const char *amp = memchr(seg, '&', len - i);
        size_t seg_len = amp ? (size_t)(amp - seg) : len - i;
        if (seg_len > 0) {
            const char *eq = memchr(seg, '=', seg_len);
            size_t klen = eq ? (size_t)(eq - seg) : seg_len;
            size_t vlen = eq ? seg_len - klen - 1 : 0;
            size_t kout, vout;
            char *k = percent_decode(seg, klen, true, &kout);
            char *v = k ? percent_decode(eq ? eq + 1 : seg + seg_len, vlen, true, &vout) : NULL;
            if (!k || !v) {
                free(k);
                return -1;
            }
            kv_push(&p->req.query, &p->req.query_count, &p->query_cap, k, kout, v, vout);
        }
        i += seg_len + 1;
    }
    return 0;
}

static int parse_target(http_parser_t *p) {
    const char *u = p->url.data ? p->url.data : "";
    size_t len = p->url.len;
    if (len == 0 || u[0] != '/') {
        parser_fail(p, 400, "request target must start with '/'");
        return -1;
    }
    const char *qm = memchr(u, '?', len);
    size_t path_len = qm ? (size_t)(qm - u) : len;
    size_t out;
    p->req.path = percent_decode(u, path_len, false, &out);
    if (!p->req.path) {
        parser_fail(p, 400, "invalid percent-encoding in path");
        return -1;
    }
    if (qm && parse_query(p, qm + 1, len - path_len - 1) < 0) {
        parser_fail(p, 400, "invalid percent-encoding in query string");
        return -1;
    }
    return 0;
}

static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* Walks a comma-separated header value list (RFC 9110 5.6.1): returns false at
 * the end, else sets the next element, trimmed of optional whitespace (possibly
 * empty), and advances *pos. */
static bool list_next(const char *v, size_t len, size_t *pos, const char **item,
                      size_t *item_len) {
    size_t i = *pos;
    if (i >= len) return false;
    size_t a = i;
    while (i < len && v[i] != ',') i++;
    size_t b = i;
    while (a < b && is_ows(v[a])) a++;
    while (b > a && is_ows(v[b - 1])) b--;
    *item = v + a;
    *item_len = b - a;
    *pos = i + 1;
    return true;
}

/* Checks one Transfer-Encoding value: only "chunked" is implemented, and only once. */
static void check_transfer_encoding(http_parser_t *p, const char *v, size_t len) {
    size_t pos = 0, n, codings = 0;
    const char *item;
    while (list_next(v, len, &pos, &item, &n)) {
        if (n) codings++;
        if (n == 7 && strncasecmp(item, "chunked", 7) == 0) {
            if (++p->chunked_codings > 1) parser_fail(p, 400, "chunked applied more than once");
        } else if (n > 0) {
            parser_fail(p, 501, "transfer coding not implemented (only chunked is)");
        }
    }
    /* RFC 9112 6.1: the field is a list of at least one coding. An empty one (which
     * llhttp lets through as if absent) would leave the framing to guesswork, and an
     * HTTP/1.0 keep-alive request with it would not be closed after its answer. */
    if (!codings) parser_fail(p, 400, "Transfer-Encoding names no coding");
}

static int finish_header(http_parser_t *p) {
    if (p->req.header_count >= p->limits.max_headers) {
        parser_fail(p, 431, "too many request headers");
        return -1;
    }
    char *name = mem_strndup(p->field.data ? p->field.data : "", p->field.len);
    for (char *c = name; *c; c++)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    const char *v = p->value.data ? p->value.data : "";
    size_t a = 0, b = p->value.len;
    while (a < b && is_ows(v[a])) a++;
    while (b > a && is_ows(v[b - 1])) b--;
    char *value = mem_strndup(v + a, b - a);
    kv_push(&p->req.headers, &p->req.header_count, &p->header_cap, name, p->field.len, value,
            b - a);
    buf_reset(&p->field);
    buf_reset(&p->value);
    p->in_value = false;
    if (strcmp(name, "transfer-encoding") == 0) check_transfer_encoding(p, value, b - a);
    if (strcmp(name, "upgrade") == 0) p->upgrade_header = true;
    if (strcmp(name, "host") == 0) p->host_headers++;
    return p->err_status ? -1 : 0;
}

static http_method_t map_method(uint8_t m) {
    switch (m) {
    case HTTP_GET: return HTTP_METHOD_GET;
    case HTTP_HEAD: return HTTP_METHOD_HEAD;
    case HTTP_POST: return HTTP_METHOD_POST;
    case HTTP_PUT: return HTTP_METHOD_PUT;
    case HTTP_DELETE: return HTTP_METHOD_DELETE;
    case HTTP_OPTIONS: return HTTP_METHOD_OPTIONS;
    case HTTP_CONNECT: return HTTP_METHOD_CONNECT;
    default: return HTTP_METHOD_OTHER;
    }
}

/* ---- llhttp callbacks --------------------------------------------------- */

static http_parser_t *of(llhttp_t *ll) { return ll->data; }

static int on_message_begin(llhttp_t *ll) {
    of(ll)->begun = true;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len) {
    buf_append(&of(ll)->url, at, len);
    return 0;
}

static int on_version(llhttp_t *ll, const char *at, size_t len) {
    http_parser_t *p = of(ll);
    for (size_t i = 0; i < len && p->version_len < sizeof p->version - 1; i++)
        p->version[p->version_len++] = at[i];
    return 0;
}

static int on_version_complete(llhttp_t *ll) {
    if (ll->http_major == 1 && (ll->http_minor == 0 || ll->http_minor == 1)) {
        of(ll)->version_ok = true; /* a later error on this line is malformed, not 505 */
        return 0;
    }
    parser_fail(of(ll), 505, "HTTP version not supported (only 1.0 and 1.1)");
    return -1;
}

/* Trailers and chunk extensions are read and dropped, but bounded like headers. */
static int count_extra(http_parser_t *p, size_t len) {
    p->extra_bytes += len;
    if (p->extra_bytes > p->limits.max_header_bytes) {
        parser_fail(p, 431, "chunk extensions or trailers too large");
        return HPE_USER;
    }
    return 0;
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len) {
    http_parser_t *p = of(ll);
    if (p->headers_done) return count_extra(p, len);
    buf_append(&p->field, at, len);
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len) {
    http_parser_t *p = of(ll);
    if (p->headers_done) return count_extra(p, len);
    buf_append(&p->value, at, len);
    return 0;
}

static int on_header_field_complete(llhttp_t *ll) {
    of(ll)->in_value = true;
    return 0;
}

static int on_header_value_complete(llhttp_t *ll) {
    http_parser_t *p = of(ll);
    if (p->headers_done) return 0;
    return finish_header(p);
}

static int on_chunk_extension(llhttp_t *ll, const char *at, size_t len) {
    return count_extra(of(ll), len);
}

/* Whether the connection may carry another request after this one. Beyond llhttp's
 * rule (version and Connection), two cases end it: after a CONNECT llhttp stops
 * parsing HTTP, so whatever follows (a body, a tunnel) would be read as the next
 * request; and an HTTP/1.0 message with Transfer-Encoding has faulty framing for
 * a 1.0 peer or intermediary, so RFC 9112 6.1 requires closing after it. */
static bool keep_alive(const llhttp_t *ll) {
    if (ll->method == HTTP_CONNECT) return false;
    if (ll->http_minor == 0 && (ll->flags & F_TRANSFER_ENCODING)) return false;
    return llhttp_should_keep_alive(ll) != 0;
}

static int on_headers_complete(llhttp_t *ll) {
    http_parser_t *p = of(ll);
    if (p->in_value && finish_header(p) < 0) return -1;
    p->headers_done = true;
    if (p->version_len == 0) { /* an HTTP/0.9 request line, without a version */
        parser_fail(p, 505, "HTTP version not supported (only 1.0 and 1.1)");
        return -1;
    }
    /* RFC 9112 3.2: Host is required in HTTP/1.1, and never allowed twice. */
    if (p->host_headers > 1) {
        parser_fail(p, 400, "more than one Host header");
        return -1;
    }
    if (p->host_headers == 0 && ll->http_minor == 1) {
        parser_fail(p, 400, "missing Host header (required in HTTP/1.1)");
        return -1;
    }
    http_request_t *r = &p->req;
    r->method = map_method(ll->method);
    r->method_name = llhttp_method_name((llhttp_method_t)ll->method);
    r->http_minor = (unsigned char)ll->http_minor;
    if (parse_target(p) < 0) return -1;
    /* llhttp refuses this too, but only after this callback: refused here, a request
     * reaching HEADERS is always well framed (RFC 9112 6.3: 400). */
    if ((ll->flags & F_TRANSFER_ENCODING) && !(ll->flags & F_CHUNKED)) {
        parser_fail(p, 400, "Transfer-Encoding without chunked");
        return -1;
    }
    if ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > p->limits.max_body_bytes) {
        parser_fail(p, 413, "request body too large");
        return -1;
    }
    const http_kv_t *expect = http_request_header(r, "expect");
    r->expect_continue = expect && ll->http_minor == 1 && strcasecmp(expect->value, "100-continue") == 0;
    r->upgrade = p->upgrade_header && http_header_has_token(http_request_header(r, "connection"), "upgrade");
    r->has_body = (ll->flags & F_CHUNKED) ||
                  ((ll->flags & F_CONTENT_LENGTH) && ll->content_length > 0);
    r->keep_alive = keep_alive(ll); /* final at the end of the message */
    /* Pausing here tells feed() where the headers end (for the header budget), lets
     * the caller route the request before its body and answer 100-continue before
     * any body byte is expected. */
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t len) {
    http_parser_t *p = of(ll);
    if (len > p->limits.max_body_bytes - p->body.len) {
        parser_fail(p, 413, "request body too large");
        return HPE_USER;
    }
    /* A Content-Length body (checked against max_body_bytes at the headers) gets
     * its whole size at its first bytes, not by doublings that copy it over and
     * over: llhttp has already counted this span off content_length. Not before the
     * first byte: a request that announces a body and sends none holds nothing. */
    if (!p->body.cap && (ll->flags & F_CONTENT_LENGTH) && !(ll->flags & F_CHUNKED))
        buf_reserve_exact(&p->body, len + ll->content_length);
    buf_append(&p->body, at, len);
    return 0;
}

static int on_chunk_header(llhttp_t *ll) {
    http_parser_t *p = of(ll);
    /* llhttp holds the announced chunk size in content_length: refuse before reading it. */
    if (ll->content_length > p->limits.max_body_bytes - p->chunked_total) {
        parser_fail(p, 413, "request body too large");
        return -1;
    }
    p->chunked_total += ll->content_length;
    return 0;
}

static int on_message_complete(llhttp_t *ll) {
    http_parser_t *p = of(ll);
    http_request_t *r = &p->req;
    if (!p->body.data) buf_append(&p->body, "", 0); /* a NUL-terminated empty body */
    r->body = p->body.data;
    r->body_len = p->body.len;
    r->keep_alive = keep_alive(ll);
    p->done = true;
    return HPE_PAUSED; /* one request per DONE; the rest stays with the caller */
}

static const llhttp_settings_t parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_version = on_version,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_chunk_extension_name = on_chunk_extension,
    .on_chunk_extension_value = on_chunk_extension,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_version_complete = on_version_complete,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_chunk_header = on_chunk_header,
};

/* ---- public API --------------------------------------------------------- */

static void request_clear(http_parser_t *p) {
    http_request_t *r = &p->req;
    free(r->path);
    kv_free_all(r->query, r->query_count);
    kv_free_all(r->headers, r->header_count);
    memset(r, 0, sizeof *r);
    r->method_name = "";
    p->header_cap = p->query_cap = 0;
    buf_free(&p->url);
    buf_free(&p->field);
    buf_free(&p->value);
    buf_free(&p->body);
    p->version_len = 0;
    p->header_bytes = p->extra_bytes = 0;
    p->chunked_total = 0;
    p->chunked_codings = 0;
    p->host_headers = 0;
    p->in_value = p->begun = p->version_ok = p->headers_done = p->done = false;
    p->continue_sent = p->upgrade_header = p->paused_at_headers = false;
}

http_parser_t *http_parser_new(const http_limits_t *limits) {
    http_parser_t *p = mem_calloc(1, sizeof *p);
    p->limits = *limits;
    llhttp_init(&p->ll, HTTP_REQUEST, &parser_settings);
    p->ll.data = p;
    request_clear(p);
    return p;
}

void http_parser_free(http_parser_t *p) {
    if (!p) return;
    request_clear(p);
    free(p);
}

void http_parser_stop_at_headers(http_parser_t *p, bool on) { p->stop_at_headers = on; }

void http_parser_reset(http_parser_t *p) {
    bool was_upgrade = p->done && (p->req.upgrade || llhttp_get_upgrade(&p->ll));
    bool mid_request = p->begun && !p->done;
    request_clear(p);
    if (p->err_status) return; /* failed stays failed */
    if (mid_request) {
        /* Reset after HEADERS without the body: the bytes that follow are that
         * body, not a request; start over as if the connection were new. */
        llhttp_init(&p->ll, HTTP_REQUEST, &parser_settings);
        p->ll.data = p;
    } else if (llhttp_get_errno(&p->ll) == HPE_PAUSED && !was_upgrade) {
        llhttp_resume(&p->ll);
    } else if (llhttp_get_errno(&p->ll) != HPE_OK) {
        /* After an upgrade llhttp expects the new protocol; a refused upgrade that
         * keeps the connection in HTTP starts over from a clean state. */
        llhttp_init(&p->ll, HTTP_REQUEST, &parser_settings);
        p->ll.data = p;
    }
}

static void fail_from_llhttp(http_parser_t *p, llhttp_errno_t e) {
    if (p->err_status) return;
    int status = 400;
    if (e == HPE_INVALID_VERSION && !p->version_ok && p->version_len == 3 && p->version[0] >= '0' &&
        p->version[0] <= '9' && p->version[1] == '.' && p->version[2] >= '0' &&
        p->version[2] <= '9')
        status = 505; /* well-formed but unknown, e.g. HTTP/1.2 */
    else if (e == HPE_PAUSED_H2_UPGRADE)
        status = 505;
    else if (e == HPE_INVALID_TRANSFER_ENCODING && p->in_value &&
             strcasecmp(p->field.data ? p->field.data : "", "transfer-encoding") == 0) {
        /* llhttp refused the value before it was complete: a coding we do not
         * implement is 501, a repeated or misplaced "chunked" stays 400. */
        check_transfer_encoding(p, p->value.data ? p->value.data : "", p->value.len);
        if (p->err_status) return;
    }
    char msg[sizeof p->err_msg];
    const char *why = llhttp_get_error_reason(&p->ll);
    if (status == 505)
        snprintf(msg, sizeof msg, "HTTP version not supported (only 1.0 and 1.1)");
    else
        snprintf(msg, sizeof msg, "malformed request: %s", why ? why : llhttp_errno_name(e));
    parser_fail(p, status, msg);
}

http_parse_status_t http_parser_feed(http_parser_t *p, const char *data, size_t len,
                                     size_t *consumed) {
    *consumed = 0;
    if (p->err_status) return HTTP_PARSE_ERROR;
    if (p->done) return HTTP_PARSE_DONE;
    size_t off = 0;
    bool resumed = false;
    if (p->paused_at_headers) { /* the caller saw HEADERS: go on with the body */
        p->paused_at_headers = false;
        llhttp_resume(&p->ll);
        resumed = true;
    }
    while (off < len || resumed) {
        resumed = false;
        size_t n = len - off;
        bool headers_before = p->headers_done;
        if (!headers_before) {
            /* Hand llhttp no more than the header budget allows, so an endless
             * header section is refused at the first byte past the limit. */
            size_t budget = p->limits.max_header_bytes - p->header_bytes;
            if (budget == 0) {
                parser_fail(p, 431, "request line and headers too large");
                *consumed = off;
                return HTTP_PARSE_ERROR;
            }
            if (n > budget) n = budget;
        }
        const char *start = data + off;
        llhttp_errno_t e = llhttp_execute(&p->ll, start, n);
        size_t used = n;
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE)
            used = (size_t)(llhttp_get_error_pos(&p->ll) - start);
        if (!headers_before) p->header_bytes += used;
        off += used;
        if (p->err_status) {
            *consumed = off;
            return HTTP_PARSE_ERROR;
        }
        if (e == HPE_OK) continue;
        if (e == HPE_PAUSED && !p->done) { /* paused at the end of the headers */
            if (p->stop_at_headers) {
                p->paused_at_headers = true;
                *consumed = off;
                return HTTP_PARSE_HEADERS;
            }
            llhttp_resume(&p->ll);
            resumed = true;
            continue;
        }
        if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
            if (!p->done) { /* upgrade paused without on_message_complete (CONNECT) */
                on_message_complete(&p->ll);
            }
            *consumed = off;
            return HTTP_PARSE_DONE;
        }
        fail_from_llhttp(p, e);
        *consumed = off;
        return HTTP_PARSE_ERROR;
    }
    *consumed = off;
    return HTTP_PARSE_NEED_MORE;
}

http_parse_status_t http_parser_finish(http_parser_t *p) {
    if (p->err_status) return HTTP_PARSE_ERROR;
    if (p->done) return HTTP_PARSE_DONE;
    if (!p->begun) return HTTP_PARSE_NEED_MORE; /* a clean close between requests */
    parser_fail(p, 400, "connection closed before the request was complete");
    return HTTP_PARSE_ERROR;
}

const http_request_t *http_parser_request(const http_parser_t *p) {
    return p->done || (p->headers_done && !p->err_status) ? &p->req : NULL;
}

int http_parser_error_status(const http_parser_t *p) { return p->err_status; }

const char *http_parser_error_message(const http_parser_t *p) {
    return p->err_status ? p->err_msg : "";
}

bool http_parser_in_progress(const http_parser_t *p) { return p->begun; }

bool http_parser_headers_complete(const http_parser_t *p) {
    return p->headers_done && !p->err_status;
}

bool http_parser_wants_continue(const http_parser_t *p) {
    return p->headers_done && !p->done && !p->err_status && p->req.expect_continue &&
           !p->continue_sent && p->body.len == 0;
}

void http_parser_continue_sent(http_parser_t *p) { p->continue_sent = true; }

const http_kv_t *http_request_query(const http_request_t *r, const char *key) {
    for (size_t i = 0; i < r->query_count; i++)
        if (strcmp(r->query[i].key, key) == 0) return &r->query[i];
    return NULL;
}

const http_kv_t *http_request_param(const http_request_t *r, const char *key) {
    for (size_t i = 0; i < r->query_count; i++)
        if (r->query[i].value_len && strcmp(r->query[i].key, key) == 0) return &r->query[i];
    return NULL;
}

const http_kv_t *http_request_header(const http_request_t *r, const char *lower_name) {
    for (size_t i = 0; i < r->header_count; i++)
        if (strcasecmp(r->headers[i].key, lower_name) == 0) return &r->headers[i];
    return NULL;
}

bool http_header_has_token(const http_kv_t *h, const char *token) {
    if (!h) return false;
    size_t tlen = strlen(token), pos = 0, n;
    const char *item;
    while (list_next(h->value, h->value_len, &pos, &item, &n))
        if (n == tlen && strncasecmp(item, token, tlen) == 0) return true;
    return false;
}

const char *http_status_reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
    }
}
