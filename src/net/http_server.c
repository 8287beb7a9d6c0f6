/* HTTP/1.1 server on libuv. Each connection reads into the loop's shared buffer and
 * feeds its parser, which stops at the end of every request's headers: the role's
 * precheck then routes and authorizes it, so a refused request never gets its body
 * buffered (nor a 100 Continue). Once a request is complete, at most one more
 * read is kept (and reading stopped) until its response is written, so requests
 * are answered in order and a pipelining client cannot queue unbounded work. Timeouts come from one sweep timer over an intrusive
 * list of connections. Bad input, and a refused request whose body is still on
 * the wire, are answered with a JSON error, then the connection lingers briefly
 * (write side shut down, discarding what the client still sends, bounded in time),
 * so the client reads the answer instead of a reset. */
#include "net/http_server.h"

#include <fcntl.h>

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/mem.h"
#include "net/read_buffer.h"
#include "ops/metrics.h"

#define SWEEP_MAX_MS 1000
#define LINGER_MAX_MS 2000

struct http_server {
    uv_loop_t *loop;
    http_server_config_t cfg;
    http_precheck_fn precheck;
    http_handler_fn handler;
    void *ud;
    uv_tcp_t listener;
    uv_timer_t sweep;
    http_conn_t *conns; /* intrusive doubly-linked list of live connections */
    size_t conn_count;
    size_t open_handles; /* handles whose close callback is still to come */
    bool listening;
    bool closing;
    bool draining;          /* http_server_drain: every answer closes its connection */
    void (*quiet)(void *ud); /* to call once nothing is in flight (then NULL) */
    void *quiet_ud;
    void (*done)(void *ud);
    void *done_ud;
};

typedef enum conn_state {
    CONN_READING,  /* waiting for (more of) a request */
    CONN_HANDLER,  /* a request is with the handler; not reading */
    CONN_WRITING,  /* the response is being written; not reading */
    CONN_LINGER,   /* error sent, discarding input until EOF or the deadline */
    CONN_CLOSING,  /* uv_close called */
} conn_state_t;

struct http_conn {
    http_server_t *server; /* NULL once the server has let go of a handler-held conn */
    uv_tcp_t *tcp;         /* heap-allocated so it can be handed over; NULL once closed */
    http_conn_t *prev, *next;
    http_parser_t *parser; /* created on the first bytes */
    buf_t pending;         /* received bytes not yet given to the parser */
    uint64_t deadline;     /* loop time (ms) after which the sweep closes it; 0: none */
    conn_state_t state;
    bool in_handler;       /* the handler owes an answer (or a detach) */
    bool in_precheck;      /* in_handler, from the precheck: headers only, body unread */
    bool close_after_write;
    bool headers_seen;     /* deadline already extended for the body */
    bool answered;         /* a response was written: idle now means kept alive */
    bool timing;           /* req_start_ns holds the current request's first byte */
    bool reading;          /* uv_read_start'ed (conn_read_start/conn_read_stop) */
    bool has_reqid;        /* reqid holds the current request's id */
    uint64_t req_start_ns; /* metrics_now_ns() at the request's first byte */
    char reqid[METRICS_REQID_MAX + 1]; /* X-Request-ID: the client's, if valid, or made */
    char peer[64];
};

typedef struct write_req {
    uv_write_t req;
    http_conn_t *conn;
    char data[];
} write_req_t;

static void conn_close(http_conn_t *c);
static bool conn_process(http_conn_t *c, const char *data, size_t len);

/* Reading is started and stopped through these, which know whether it is on: a
 * keep-alive connection stays read-enabled while its request is handled and
 * answered, and is stopped only when bytes arrive meanwhile (conn_read), since
 * each stop and restart costs epoll_ctl calls (up to 3 per request). */
static int conn_read_start(http_conn_t *c, uv_read_cb cb) {
    uv_stream_t *st = (uv_stream_t *)c->tcp;
    if (c->reading && st->read_cb == cb) return 0;
    if (c->reading) uv_read_stop(st);
    c->reading = uv_read_start(st, read_buffer_alloc, cb) == 0;
    return c->reading ? 0 : -1;
}

static void conn_read_stop(http_conn_t *c) {
    if (!c->reading) return;
    c->reading = false;
    uv_read_stop((uv_stream_t *)c->tcp);
}
static void drain_check(http_server_t *s);

/* ---- bookkeeping --------------------------------------------------------- */

static uint64_t deadline_in(http_server_t *s, uint64_t ms) {
    if (ms == 0) return 0;
    return uv_now(s->loop) + ms;
}

static uint64_t idle_deadline(http_server_t *s) { return deadline_in(s, s->cfg.idle_timeout_ms); }

static void server_maybe_done(http_server_t *s) {
    if (!s->closing || s->open_handles > 0) return;
    void (*done)(void *) = s->done;
    void *ud = s->done_ud;
    free(s);
    if (done) done(ud);
}

static void handle_closed(uv_handle_t *h) {
    http_server_t *s = h->data;
    s->open_handles--;
    server_maybe_done(s);
}

static void list_remove(http_server_t *s, http_conn_t *c) {
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->conn_count--;
    if (s->cfg.shared_count) atomic_fetch_sub(s->cfg.shared_count, 1);
}

/* Takes a place for a new connection; false at max_connections. With a shared
 * counter the place is taken atomically, so threads accepting at once cannot
 * overshoot together. */
static bool conn_slot_take(http_server_t *s) {
    size_t max = s->cfg.max_connections;
    if (!s->cfg.shared_count) return !max || s->conn_count < max;
    size_t held = atomic_fetch_add(s->cfg.shared_count, 1);
    if (!max || held < max) return true;
    atomic_fetch_sub(s->cfg.shared_count, 1);
    return false;
}

static void conn_free(http_conn_t *c) {
    http_parser_free(c->parser);
    buf_free(&c->pending);
    free(c->tcp);
    free(c);
}

static void conn_closed(uv_handle_t *h) {
    http_conn_t *c = h->data;
    http_server_t *s = c->server;
    free(c->tcp);
    c->tcp = NULL;
    list_remove(s, c);
    if (c->in_handler) {
        c->server = NULL; /* lingers until the handler answers; the server may go */
    } else {
        conn_free(c);
    }
    s->open_handles--;
    drain_check(s);
    server_maybe_done(s);
}

static void conn_close(http_conn_t *c) {
    if (c->state == CONN_CLOSING) return;
    c->state = CONN_CLOSING;
    conn_read_stop(c);
    uv_close((uv_handle_t *)c->tcp, conn_closed);
}

/* ---- writing ------------------------------------------------------------- */

static void continue_written(uv_write_t *req, int status) {
    (void)status; /* a failed write shows up on the next read; the conn may be gone */
    free(req);
}

static void send_continue(http_conn_t *c) {
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_write_t *req = mem_alloc(sizeof *req);
    uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
    if (uv_write(req, (uv_stream_t *)c->tcp, &b, 1, continue_written) < 0) free(req);
}

static void linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    (void)buf;
    if (nread < 0) conn_close(st->data); /* EOF or error: the client is done */
}

static void shutdown_done(uv_shutdown_t *req, int status) {
    (void)status;
    free(req);
}

static void start_linger(http_conn_t *c) {
    http_server_t *s = c->server;
    c->state = CONN_LINGER;
    uint64_t ms = s->cfg.idle_timeout_ms && s->cfg.idle_timeout_ms < LINGER_MAX_MS
                      ? s->cfg.idle_timeout_ms
                      : LINGER_MAX_MS;
    c->deadline = deadline_in(s, ms);
    uv_shutdown_t *req = mem_alloc(sizeof *req);
    if (uv_shutdown(req, (uv_stream_t *)c->tcp, shutdown_done) < 0) {
        free(req);
        conn_close(c);
        return;
    }
    if (conn_read_start(c, linger_read) < 0) conn_close(c);
}

static void conn_resume(http_conn_t *c);
static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void response_done(http_conn_t *c, int status) {
    if (c->state == CONN_CLOSING) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write) {
        start_linger(c);
        drain_check(c->server);
        return;
    }
    c->state = CONN_READING;
    c->headers_seen = false;
    c->answered = true;
    c->deadline = idle_deadline(c->server);
    conn_resume(c);
}

static void response_written(uv_write_t *req, int status) {
    write_req_t *w = (write_req_t *)req;
    http_conn_t *c = w->conn;
    free(w);
    response_done(c, status);
}

/* n in decimal into out (at least 21 bytes, not terminated); its length. */
static size_t format_decimal(char *out, uint64_t n) {
    char tmp[20];
    size_t len = 0;
    do {
        tmp[len++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    for (size_t i = 0; i < len; i++) out[i] = tmp[len - 1 - i];
    return len;
}

/* Queues one response as a single write. The connection must be writable. */
static void conn_write_response(http_conn_t *c, int status, const char *content_type,
                                const char *extra_headers, const char *body, size_t body_len,
                                bool keep_alive, bool head_only) {
    /* Put together by hand: a printf of it was the largest user-space cost of an
     * API answer (issue 10). */
    buf_t h = BUF_INIT;
    char num[24];
    buf_append(&h, "HTTP/1.1 ", 9);
    buf_append(&h, num, format_decimal(num, (uint64_t)(status > 0 ? status : 0)));
    buf_append(&h, " ", 1);
    buf_append_str(&h, http_status_reason(status));
    buf_append(&h, "\r\nContent-Type: ", 16);
    buf_append_str(&h, content_type);
    buf_append(&h, "\r\nContent-Length: ", 18);
    buf_append(&h, num, format_decimal(num, body_len));
    buf_append_str(&h, keep_alive ? "\r\nConnection: keep-alive\r\n" : "\r\nConnection: close\r\n");
    if (extra_headers) buf_append_str(&h, extra_headers);
    buf_append(&h, "\r\n", 2);
    size_t blen = head_only ? 0 : body_len;
    write_req_t *w = mem_alloc(sizeof *w + h.len + blen);
    memcpy(w->data, h.data, h.len);
    if (blen) memcpy(w->data + h.len, body, blen);
    w->conn = c;
    uv_buf_t b = uv_buf_init(w->data, (unsigned)(h.len + blen));
    buf_free(&h);
    c->close_after_write = !keep_alive;
    c->state = CONN_WRITING;
    c->deadline = idle_deadline(c->server);
    if (keep_alive && c->pending.len == 0 && !c->in_precheck) {
        /* Usually the socket takes the whole answer at once: then no write request
         * (libuv's completion of one also re-arms epoll, a system call per answer),
         * and the connection is ready for the next request right away. Not with
         * pipelined bytes waiting, whose handling would nest in this call, nor from
         * the precheck, whose caller still stops reading and keeps the rest. */
        int n = uv_try_write((uv_stream_t *)c->tcp, &b, 1);
        if (n == (int)b.len) {
            free(w);
            response_done(c, 0);
            return;
        }
        if (n > 0) {
            b.base += n;
            b.len -= (size_t)n;
        }
    }
    if (uv_write(&w->req, (uv_stream_t *)c->tcp, &b, 1, response_written) < 0) {
        free(w);
        conn_close(c);
    }
}

static void json_escape(buf_t *b, const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            buf_append(b, "\\", 1);
            buf_append(b, s, 1);
        } else if (ch < 0x20) {
            buf_printf(b, "\\u%04x", ch);
        } else {
            buf_append(b, s, 1);
        }
    }
}

static void error_body(buf_t *b, const char *code, const char *message) {
    buf_append_str(b, "{\"success\":false,\"error\":\"");
    json_escape(b, message);
    buf_append_str(b, "\",\"errorCode\":\"");
    json_escape(b, code);
    buf_append_str(b, "\"}");
}

/* The current request's id, made once: the client's X-Request-ID when it is valid
 * (bounded, [A-Za-z0-9._:-], metrics_request_id), else a new one. req may be NULL
 * (an unparsable request). */
static const char *conn_reqid(http_conn_t *c, const http_request_t *req) {
    if (!c->has_reqid) {
        const http_kv_t *given = req ? http_request_header(req, "x-request-id") : NULL;
        metrics_request_id(given ? given->value : NULL, given ? given->value_len : 0, c->reqid);
        c->has_reqid = true;
    }
    return c->reqid;
}

/* dSock 0.4 put the request id into its error answers: an error object
 * ({"success":false,...}, docs/api.md) gets "requestId" as its last member, wherever
 * it was built (here, the roles, the 405s), so no error answer can miss it; a
 * probe's {"status":"not_ready"} is not an error object and stays as documented.
 * The id needs no escaping. Returns false (out untouched) when body is not such an
 * object or already names a requestId. */
static bool error_with_reqid(buf_t *out, int status, const char *content_type,
                             const char *body, size_t len, const char *id) {
    static const char head[] = "{\"success\":false";
    if (status < 400 || strcmp(content_type, "application/json") || len < sizeof head ||
        memcmp(body, head, sizeof head - 1) || body[len - 1] != '}' ||
        memmem(body, len, "\"requestId\"", 11))
        return false;
    size_t inner = len - 1;
    while (inner > 1 && (body[inner - 1] == ' ' || body[inner - 1] == '\n')) inner--;
    buf_append(out, body, inner);
    buf_printf(out, "%s\"requestId\":\"%s\"}", inner > 1 ? "," : "", id);
    return true;
}

static const char *parse_error_code(int status) {
    switch (status) {
    case 413: return "REQUEST_TOO_LARGE";
    case 431: return "HEADERS_TOO_LARGE";
    case 501: return "NOT_IMPLEMENTED";
    case 505: return "HTTP_VERSION_NOT_SUPPORTED";
    default: return "MALFORMED_REQUEST";
    }
}

/* Counts an answer (metrics.h), adds the X-Request-ID header to *headers (the
 * caller frees it; NULL: the caller writes its own answer, a 101) and, with
 * log_requests, writes its access line. req is NULL when the request could not be
 * parsed. The line never holds the query (it may carry the token, a claim id or a
 * JWT): only the method, the decoded path, the status, the errorCode of an error
 * body, the duration and the request id. The request is done: its id is forgotten. */
static void conn_account(http_conn_t *c, const http_request_t *req, int status,
                         const char *body, size_t len, buf_t *headers) {
    uint64_t ns = c->timing ? metrics_now_ns() - c->req_start_ns : 0;
    c->timing = false;
    char code[METRICS_CODE_MAX] = "";
    if (status >= 400) metrics_error_code_of(body, len, code, sizeof code);
    metrics_endpoint_t ep = metrics_endpoint_of(req ? req->path : NULL);
    metrics_http_answered(ep, status, code, ns);
    const char *id = conn_reqid(c, req);
    c->has_reqid = false; /* the buffer stays valid until the next request's headers */
    if (headers) buf_printf(headers, "X-Request-ID: %s\r\n", id);
    if (!c->server || !c->server->cfg.log_requests) return;
    log_info("request", LOG_S("method", req ? req->method_name : NULL),
             LOG_S("path", req ? req->path : NULL), LOG_I("status", status),
             LOG_S("error_code", code[0] ? code : NULL), LOG_U("duration_us", ns / 1000),
             LOG_S("request_id", id), LOG_S("peer", c->peer));
}

static void conn_parse_error(http_conn_t *c) {
    int status = http_parser_error_status(c->parser);
    log_debug("http parse error", LOG_I("status", status), LOG_S("peer", c->peer),
              LOG_S("error", http_parser_error_message(c->parser)));
    buf_t e = BUF_INIT, b = BUF_INIT;
    error_body(&e, parse_error_code(status), http_parser_error_message(c->parser));
    if (!error_with_reqid(&b, status, "application/json", e.data, e.len, conn_reqid(c, NULL)))
        buf_append(&b, e.data, e.len);
    buf_free(&e);
    buf_t h = BUF_INIT;
    conn_account(c, NULL, status, b.data, b.len, &h);
    conn_read_stop(c);
    buf_free(&c->pending);
    conn_write_response(c, status, "application/json", h.data, b.data, b.len, false, false);
    buf_free(&h);
    buf_free(&b);
}

/* ---- reading and dispatch ----------------------------------------------- */

/* Keeps data[0..len) (the bytes after a request) in c->pending, replacing what was
 * there (the caller may be processing c->pending's old buffer: it owns that). */
static void keep_rest(http_conn_t *c, const char *data, size_t len) {
    buf_t rest = BUF_INIT;
    if (len > 0) buf_append(&rest, data, len);
    buf_free(&c->pending);
    c->pending = rest;
}

/* Asks the precheck about a request whose headers just completed. True: serve it
 * (go on reading its body). False: it was answered; c may be closing. */
static bool conn_precheck(http_conn_t *c) {
    http_server_t *s = c->server;
    if (!s->precheck) return true;
    c->in_handler = true;
    c->in_precheck = true;
    bool serve = s->precheck(s->ud, c, http_parser_request(c->parser));
    c->in_precheck = false;
    if (serve == !c->in_handler)
        log_fatal("http precheck: must answer exactly when it refuses a request");
    c->in_handler = false;
    return serve;
}

/* Feeds bytes to the parser; at the end of the headers asks the precheck; on a
 * complete request keeps what follows in c->pending and calls the handler, which
 * must be the last thing done with c (it may detach and free it). Returns true
 * only when the parser wants more bytes: then c is still valid and reading. */
static bool conn_process(http_conn_t *c, const char *data, size_t len) {
    http_server_t *s = c->server;
    if (!c->parser) {
        c->parser = http_parser_new(&s->cfg.limits);
        http_parser_stop_at_headers(c->parser, true);
    }
    if (!c->timing) { /* the first byte of a request: its duration starts */
        c->timing = true;
        c->req_start_ns = metrics_now_ns();
    }
    size_t off = 0;
    http_parse_status_t st;
    for (;;) {
        bool was_in_progress = http_parser_in_progress(c->parser);
        size_t used = 0;
        st = http_parser_feed(c->parser, data + off, len - off, &used);
        off += used;
        if (!was_in_progress && http_parser_in_progress(c->parser))
            c->deadline = idle_deadline(s); /* the idle wait is over; the request gets its own */
        if (!c->headers_seen && http_parser_headers_complete(c->parser)) {
            c->headers_seen = true;
            c->deadline = idle_deadline(s); /* and the body gets its own */
        }
        if (st != HTTP_PARSE_HEADERS) break;
        /* The id exists from the headers on, for whatever logs about the request. */
        c->has_reqid = false;
        conn_reqid(c, http_parser_request(c->parser));
        if (!conn_precheck(c)) {
            /* Answered: stop reading. The bytes after the headers are the next
             * request when the answer keeps the connection (no body), else unread
             * body the linger discards. */
            if (c->state != CONN_CLOSING) conn_read_stop(c);
            if (c->close_after_write || c->state == CONN_CLOSING) keep_rest(c, NULL, 0);
            else keep_rest(c, data + off, len - off);
            return false;
        }
        /* Served: go on with the body (feeding nothing completes a bodiless one). */
    }
    if (st == HTTP_PARSE_ERROR) {
        conn_parse_error(c);
        return false;
    }
    if (st == HTTP_PARSE_NEED_MORE) {
        if (http_parser_wants_continue(c->parser)) {
            send_continue(c);
            http_parser_continue_sent(c->parser);
        }
        return true;
    }
    /* DONE: keep the bytes that follow, hand the request over. Reading stays on
     * (conn_read stops it if more bytes come before the answer is written). */
    keep_rest(c, data + off, len - off);
    c->state = CONN_HANDLER;
    c->in_handler = true;
    s->handler(s->ud, c, http_parser_request(c->parser));
    return false;
}

/* After a response: parse what was already received, else read again. */
static void conn_resume(http_conn_t *c) {
    if (c->pending.len > 0) {
        /* conn_process may keep a new remainder in c->pending: take the buffer. */
        buf_t in = c->pending;
        c->pending = (buf_t)BUF_INIT;
        bool wants_more = conn_process(c, in.data, in.len);
        buf_free(&in);
        /* A pipelined request cut short: its rest is still on the socket. */
        if (!wants_more) return;
    }
    buf_free(&c->pending);
    if (conn_read_start(c, conn_read) < 0) conn_close(c);
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    http_conn_t *c = st->data;
    if (nread == 0) return;
    if (c->state == CONN_HANDLER || c->state == CONN_WRITING) {
        /* The next request (or an EOF, an error) before this one's answer is
         * written: keep the bytes for conn_resume, which parses them after the
         * answer, and stop reading until then (so at most one read is held). An
         * EOF or error is read again then. */
        if (nread > 0) buf_append(&c->pending, buf->base, (size_t)nread);
        conn_read_stop(c);
        return;
    }
    if (c->state != CONN_READING) return;
    if (nread < 0) {
        /* EOF mid-request is not worth an answer: the client stopped talking. */
        conn_close(c);
        return;
    }
    conn_process(c, buf->base, (size_t)nread);
}

static void reject_closed(uv_handle_t *h) {
    http_server_t *s = h->data;
    free(h);
    s->open_handles--;
    server_maybe_done(s);
}

static void format_peer(http_conn_t *c) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            uv_ip4_name(a, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            uv_ip6_name(a, host, sizeof host);
            port = ntohs(a->sin6_port);
        }
    }
    bool v6 = strchr(host, ':') != NULL;
    snprintf(c->peer, sizeof c->peer, v6 ? "[%s]:%d" : "%s:%d", host, port);
}

#define TOO_MANY_BODY \
    "{\"success\":false,\"error\":\"Too many connections\",\"errorCode\":\"TOO_MANY_CONNECTIONS\"}"
static const char too_many_response[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    "Content-Length: 83\r\nConnection: close\r\n\r\n" TOO_MANY_BODY;
_Static_assert(sizeof TOO_MANY_BODY - 1 == 83, "Content-Length of the 503 body");

static void on_connection(uv_stream_t *listener, int status) {
    http_server_t *s = listener->data;
    if (status < 0) {
        log_warn("accept failed", LOG_S("error", uv_strerror(status)));
        return;
    }
    uv_tcp_t *tcp = mem_alloc(sizeof *tcp);
    uv_tcp_init(s->loop, tcp);
    s->open_handles++;
    tcp->data = s;
    if (uv_accept(listener, (uv_stream_t *)tcp) < 0) {
        uv_close((uv_handle_t *)tcp, reject_closed);
        return;
    }
    if (!conn_slot_take(s)) {
        /* Over the limit: one best-effort answer from static bytes, no state kept.
         * A fresh socket's send buffer takes it whole; a client that already sent
         * its request may see a reset instead. */
        uv_buf_t b = uv_buf_init((char *)too_many_response, sizeof too_many_response - 1);
        (void)uv_try_write((uv_stream_t *)tcp, &b, 1);
        uv_close((uv_handle_t *)tcp, reject_closed);
        return;
    }
    http_conn_t *c = mem_calloc(1, sizeof *c);
    c->server = s;
    c->tcp = tcp;
    tcp->data = c;
    c->state = CONN_READING;
    c->deadline = idle_deadline(s);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->conn_count++;
    uv_tcp_nodelay(tcp, 1);
    format_peer(c);
    if (conn_read_start(c, conn_read) < 0) conn_close(c);
}

static void sweep(uv_timer_t *t) {
    http_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    for (http_conn_t *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->state == CONN_HANDLER || c->state == CONN_CLOSING || c->deadline == 0) continue;
        if (now >= c->deadline) conn_close(c);
    }
}

/* ---- public API ---------------------------------------------------------- */

http_server_t *http_server_new(uv_loop_t *loop, const http_server_config_t *cfg,
                               http_precheck_fn precheck, http_handler_fn handler, void *ud) {
    /* libuv writes with write(2): a peer that went away must be an EPIPE for that
     * one connection, not a signal that ends the process (main does this too; tests
     * embedding a server may not). */
    signal(SIGPIPE, SIG_IGN);
    http_server_t *s = mem_calloc(1, sizeof *s);
    s->loop = loop;
    s->cfg = *cfg;
    s->precheck = precheck;
    s->handler = handler;
    s->ud = ud;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    s->open_handles = 2;
    /* Fine enough to honour short timeouts in tests, coarse enough to cost nothing. */
    uint64_t every = cfg->idle_timeout_ms ? cfg->idle_timeout_ms / 4 : SWEEP_MAX_MS;
    if (every > SWEEP_MAX_MS) every = SWEEP_MAX_MS;
    if (every < 10) every = 10;
    uv_timer_start(&s->sweep, sweep, every, every);
    return s;
}

/* Splits "host:port", ":port" or "[v6]:port". Returns 0 or -1. */
static int split_address(const char *address, char *host, size_t hostlen, int *port) {
    const char *colon;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (!close || close[1] != ':') return -1;
        size_t n = (size_t)(close - address - 1);
        if (n == 0 || n >= hostlen) return -1;
        memcpy(host, address + 1, n);
        host[n] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (!colon) return -1;
        size_t n = (size_t)(colon - address);
        if (n >= hostlen || memchr(address, ':', n)) return -1; /* bare IPv6 needs [] */
        memcpy(host, address, n);
        host[n] = '\0';
        if (n == 0) snprintf(host, hostlen, "0.0.0.0");
    }
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5) return -1;
    long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535) return -1;
    *port = (int)v;
    return 0;
}

/* libuv 1.44 cannot set SO_REUSEPORT: make the socket here and hand it over. */
static int bind_reuse_port(uv_tcp_t *listener, const struct sockaddr_storage *ss) {
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int one = 1;
    socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                              : sizeof(struct sockaddr_in);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
        bind(fd, (const struct sockaddr *)ss, len) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int rc = uv_tcp_open(listener, fd);
    if (rc < 0) close(fd);
    return rc;
}

int http_server_listen(http_server_t *s, const char *address, char *err, size_t errlen) {
    char host[256];
    int port;
    if (!address || split_address(address, host, sizeof host, &port) < 0) {
        snprintf(err, errlen,
                 "invalid listen address \"%s\": expected host:port, :port or [ipv6]:port",
                 address ? address : "");
        return UV_EINVAL;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
        /* A name such as "localhost": resolve it once, at startup. */
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_PASSIVE};
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(host, NULL, &hints, &res);
        if (rc != 0 || !res) {
            snprintf(err, errlen, "cannot listen on %s: cannot resolve \"%s\": %s", address, host,
                     gai_strerror(rc));
            if (res) freeaddrinfo(res);
            return UV_EINVAL;
        }
        memcpy(&ss, res->ai_addr, res->ai_addrlen);
        if (ss.ss_family == AF_INET) ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        else ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        freeaddrinfo(res);
    }
    int rc = s->cfg.reuse_port ? bind_reuse_port(&s->listener, &ss)
                               : uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 511, on_connection);
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", address, uv_strerror(rc));
        return rc;
    }
    s->listening = true;
    return 0;
}

int http_server_port(const http_server_t *s) {
    if (!s->listening) return -1;
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6) return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* In flight: a request past its headers (accepted by the precheck, its body
 * being read), with the handler, or its answer being written. */
static bool conn_busy(const http_conn_t *c) {
    switch (c->state) {
    case CONN_HANDLER:
    case CONN_WRITING:
        return true;
    case CONN_READING:
        return c->parser && http_parser_in_progress(c->parser);
    default:
        return false;
    }
}

static void drain_check(http_server_t *s) {
    if (!s->quiet) return;
    for (const http_conn_t *c = s->conns; c; c = c->next)
        if (conn_busy(c)) return;
    void (*quiet)(void *) = s->quiet;
    s->quiet = NULL;
    quiet(s->quiet_ud);
}

void http_server_drain(http_server_t *s, void (*quiet)(void *ud), void *ud) {
    s->draining = true;
    /* Idle keep-alive connections are closed now rather than after their next
     * request's 503; a request that is arriving (partly read) is let finish, and so
     * is a connection just accepted, whose first request (a probe?) is on its way. */
    for (http_conn_t *c = s->conns; c; c = c->next)
        if (c->state == CONN_READING && c->answered && !conn_busy(c) && c->pending.len == 0)
            conn_close(c);
    if (!quiet) return;
    s->quiet = quiet;
    s->quiet_ud = ud;
    drain_check(s);
}

void http_server_stop_listening(http_server_t *s) {
    if (uv_is_closing((uv_handle_t *)&s->listener)) return;
    s->listening = false;
    uv_close((uv_handle_t *)&s->listener, handle_closed);
}

void http_server_close(http_server_t *s, void (*done)(void *ud), void *ud) {
    s->quiet = NULL;
    s->closing = true;
    s->done = done;
    s->done_ud = ud;
    s->listening = false;
    if (!uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, handle_closed);
    uv_timer_stop(&s->sweep);
    uv_close((uv_handle_t *)&s->sweep, handle_closed);
    for (http_conn_t *c = s->conns; c; c = c->next) conn_close(c);
}

void http_conn_respond(http_conn_t *c, int status, const char *extra_headers, const char *body,
                       size_t body_len) {
    http_conn_respond_type(c, status, "application/json", extra_headers, body, body_len);
}

void http_conn_respond_type(http_conn_t *c, int status, const char *content_type,
                            const char *extra_headers, const char *body, size_t body_len) {
    if (!c->in_handler) log_fatal("http_conn_respond: no request pending on this connection");
    c->in_handler = false;
    if (!c->tcp || c->state == CONN_CLOSING) {
        if (!c->tcp) conn_free(c); /* the peer or the server went away meanwhile */
        return;
    }
    bool body_done = true;
    if (c->in_precheck) {
        /* Answered from the headers: the connection can go on only when nothing
         * follows them as part of this request. Feeding nothing tells: a bodiless
         * request (or a CONNECT) completes at once, one with a body waits for it. */
        size_t used;
        body_done = http_parser_feed(c->parser, "", 0, &used) == HTTP_PARSE_DONE;
    }
    const http_request_t *req = http_parser_request(c->parser);
    /* After a refused upgrade the bytes that follow may be another protocol; after
     * a CONNECT or an HTTP/1.0 chunked request keep_alive is false already. */
    bool keep_alive = body_done && req->keep_alive && !req->upgrade && !c->server->closing &&
                      !c->server->draining;
    bool head_only = req->method == HTTP_METHOD_HEAD;
    buf_t h = BUF_INIT, with_id = BUF_INIT;
    if (error_with_reqid(&with_id, status, content_type, body, body_len, conn_reqid(c, req))) {
        body = with_id.data;
        body_len = with_id.len;
    }
    if (extra_headers) buf_append_str(&h, extra_headers);
    conn_account(c, req, status, body, body_len, &h);
    http_parser_reset(c->parser); /* the request is answered; free it before the write */
    conn_write_response(c, status, content_type, h.data, body, body_len, keep_alive, head_only);
    buf_free(&h);
    buf_free(&with_id);
}

void http_conn_respond_error(http_conn_t *c, int status, const char *code, const char *message) {
    buf_t b = BUF_INIT;
    error_body(&b, code, message);
    http_conn_respond(c, status, NULL, b.data, b.len);
    buf_free(&b);
}

bool http_conn_is_gone(const http_conn_t *c) { return !c->tcp || c->state == CONN_CLOSING; }

/* The end of an upgraded connection's life here (http_conn_detach, and
 * http_conn_take_fd): its 101 counted and logged as answered, reading stopped,
 * the bytes that came after the request handed over (*rest), and the connection
 * freed without its socket, which is returned (tcp->data cleared) and no longer
 * counted among the server's open handles. The caller runs drain_check. */
static uv_tcp_t *conn_hand_off(http_conn_t *c, char **rest, size_t *rest_len) {
    http_server_t *s = c->server;
    uv_tcp_t *tcp = c->tcp;
    conn_account(c, http_parser_request(c->parser), 101, NULL, 0, NULL);
    conn_read_stop(c);
    tcp->data = NULL;
    if (c->pending.len > 0) {
        *rest = mem_strndup(c->pending.data, c->pending.len);
        *rest_len = c->pending.len;
    }
    list_remove(s, c);
    s->open_handles--;
    c->tcp = NULL;
    conn_free(c);
    return tcp;
}

uv_tcp_t *http_conn_detach(http_conn_t *c, char **rest, size_t *rest_len) {
    if (!c->in_handler) log_fatal("http_conn_detach: no request pending on this connection");
    if (c->in_precheck) log_fatal("http_conn_detach: not from the precheck (no body read yet)");
    c->in_handler = false;
    *rest = NULL;
    *rest_len = 0;
    if (!c->tcp || c->state == CONN_CLOSING) {
        if (!c->tcp) conn_free(c);
        return NULL;
    }
    http_server_t *s = c->server;
    uv_tcp_t *tcp = conn_hand_off(c, rest, rest_len);
    drain_check(s);
    return tcp;
}

static void taken_closed(uv_handle_t *h) { free(h); }

int http_conn_take_fd(http_conn_t *c, char **rest, size_t *rest_len) {
    if (!c->in_handler) log_fatal("http_conn_take_fd: no request pending on this connection");
    if (c->in_precheck) log_fatal("http_conn_take_fd: not from the precheck (no body read yet)");
    *rest = NULL;
    *rest_len = 0;
    if (!c->tcp || c->state == CONN_CLOSING) {
        c->in_handler = false;
        if (!c->tcp) conn_free(c);
        return -2;
    }
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)c->tcp, &fd) < 0) return -1;
    int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return -1;
    c->in_handler = false;
    http_server_t *s = c->server;
    uv_tcp_t *tcp = conn_hand_off(c, rest, rest_len); /* taken_closed touches nothing of the server */
    /* Closes this loop's descriptor (and its epoll entry); the duplicate keeps the
     * connection open. */
    uv_close((uv_handle_t *)tcp, taken_closed);
    drain_check(s);
    return dup_fd;
}

const char *http_conn_peer(const http_conn_t *c) { return c->peer; }

const char *http_conn_request_id(http_conn_t *c) {
    return conn_reqid(c, c->parser ? http_parser_request(c->parser) : NULL);
}

size_t http_conn_max_connections(const http_conn_t *c) {
    return c->server ? c->server->cfg.max_connections : 0;
}
