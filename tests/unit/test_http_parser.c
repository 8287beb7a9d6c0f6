/* Unit tests for the I/O-free HTTP/1.1 request parser: split feeds, pipelining,
 * query decoding, every limit and error status, chunked bodies, upgrades,
 * keep-alive rules and 100-continue. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "protocol/http_parser.h"

static const http_limits_t limits = {.max_header_bytes = 512, .max_headers = 8, .max_body_bytes = 64};

/* Feeds in pieces of `step` bytes (0: all at once) until DONE or ERROR. Returns the
 * status; *used is the total consumed. */
static http_parse_status_t feed_steps(http_parser_t *p, const char *s, size_t len, size_t step,
                                      size_t *used) {
    size_t off = 0;
    http_parse_status_t st = HTTP_PARSE_NEED_MORE;
    while (off < len) {
        size_t n = step ? step : len - off;
        if (n > len - off) n = len - off;
        size_t c = 0;
        st = http_parser_feed(p, s + off, n, &c);
        off += c;
        if (st != HTTP_PARSE_NEED_MORE) break;
        cr_assert_eq(c, n, "NEED_MORE must consume everything");
    }
    *used = off;
    return st;
}

static http_parser_t *parse_ok(const char *s, size_t step) {
    http_parser_t *p = http_parser_new(&limits);
    size_t used;
    http_parse_status_t st = feed_steps(p, s, strlen(s), step, &used);
    cr_assert_eq(st, HTTP_PARSE_DONE, "status %d: %s", st, http_parser_error_message(p));
    cr_assert_eq(used, strlen(s));
    return p;
}

static int parse_error(const char *s, size_t step) {
    http_parser_t *p = http_parser_new(&limits);
    size_t used;
    http_parse_status_t st = feed_steps(p, s, strlen(s), step, &used);
    int status = st == HTTP_PARSE_ERROR ? http_parser_error_status(p) : 0;
    if (st == HTTP_PARSE_ERROR) cr_assert_neq(http_parser_error_message(p)[0], '\0');
    http_parser_free(p);
    return status;
}

static void assert_same_request(const http_request_t *a, const http_request_t *b) {
    cr_assert_eq(a->method, b->method);
    cr_assert_str_eq(a->method_name, b->method_name);
    cr_assert_str_eq(a->path, b->path);
    cr_assert_eq(a->query_count, b->query_count);
    for (size_t i = 0; i < a->query_count; i++) {
        cr_assert_str_eq(a->query[i].key, b->query[i].key);
        cr_assert_str_eq(a->query[i].value, b->query[i].value);
    }
    cr_assert_eq(a->header_count, b->header_count);
    for (size_t i = 0; i < a->header_count; i++) {
        cr_assert_str_eq(a->headers[i].key, b->headers[i].key);
        cr_assert_str_eq(a->headers[i].value, b->headers[i].value);
    }
    cr_assert_eq(a->body_len, b->body_len);
    cr_assert(memcmp(a->body, b->body, a->body_len) == 0);
    cr_assert_eq(a->keep_alive, b->keep_alive);
    cr_assert_eq(a->upgrade, b->upgrade);
}

static const char *const samples[] = {
    "GET /a%20b/c?x=1&y=%41+b&z HTTP/1.1\r\nHost: example\r\nX-Long:   v a l  \r\n\r\n",
    "POST /send?user=u&type=text HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    "POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n",
    "GET /connect?claim=abc HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
    "\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
};

Test(http_parser, bytewise_equals_single_feed) {
    for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
        http_parser_t *whole = parse_ok(samples[i], 0);
        for (size_t step = 1; step < 8; step++) {
            http_parser_t *split = parse_ok(samples[i], step);
            assert_same_request(http_parser_request(whole), http_parser_request(split));
            http_parser_free(split);
        }
        http_parser_free(whole);
    }
}

Test(http_parser, fields) {
    http_parser_t *p = parse_ok(samples[0], 0);
    const http_request_t *r = http_parser_request(p);
    cr_assert_eq(r->method, HTTP_METHOD_GET);
    cr_assert_str_eq(r->method_name, "GET");
    cr_assert_str_eq(r->path, "/a b/c");
    cr_assert_str_eq(http_request_header(r, "host")->value, "example");
    cr_assert_str_eq(http_request_header(r, "x-long")->value, "v a l");
    cr_assert_eq(http_request_header(r, "x-long")->value_len, 5);
    cr_assert_str_eq(r->headers[0].key, "host");
    cr_assert_null(http_request_header(r, "missing"));
    cr_assert_eq(r->body_len, 0);
    cr_assert_str_eq(r->body, "");
    cr_assert(r->keep_alive);
    cr_assert_not(r->upgrade);
    http_parser_free(p);
}

Test(http_parser, query_decoding) {
    http_parser_t *p = parse_ok("GET /?a=1&b=%41%2f+x&c&&d=&e=x=y&%6B=v&a=2&=z HTTP/1.1\r\nHost: h\r\n\r\n", 0);
    const http_request_t *r = http_parser_request(p);
    cr_assert_str_eq(http_request_query(r, "a")->value, "1"); /* first wins */
    cr_assert_str_eq(http_request_query(r, "b")->value, "A/ x");
    cr_assert_str_eq(http_request_query(r, "c")->value, "");
    cr_assert_str_eq(http_request_query(r, "d")->value, "");
    cr_assert_str_eq(http_request_query(r, "e")->value, "x=y");
    cr_assert_str_eq(http_request_query(r, "k")->value, "v");
    cr_assert_str_eq(http_request_query(r, "")->value, "z");
    cr_assert_null(http_request_query(r, "zz"));
    cr_assert_eq(r->query_count, 8);
    cr_assert_str_eq(r->path, "/");
    http_parser_free(p);

    cr_assert_eq(parse_error("GET /?a=%4 HTTP/1.1\r\nHost: h\r\n\r\n", 0), 400);
    cr_assert_eq(parse_error("GET /?a=%zz HTTP/1.1\r\nHost: h\r\n\r\n", 0), 400);
    cr_assert_eq(parse_error("GET /?a%=1 HTTP/1.1\r\nHost: h\r\n\r\n", 0), 400);
    cr_assert_eq(parse_error("GET /?a=%00 HTTP/1.1\r\nHost: h\r\n\r\n", 0), 400);
    cr_assert_eq(parse_error("GET /%0 HTTP/1.1\r\nHost: h\r\n\r\n", 0), 400);
    cr_assert_eq(parse_error("GET /%00 HTTP/1.1\r\nHost: h\r\n\r\n", 0), 400);
    cr_assert_eq(parse_error("GET x HTTP/1.1\r\nHost: h\r\n\r\n", 0), 400);
    cr_assert_eq(parse_error("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 0), 400);

    /* '+' is a space in the query only, not in the path. */
    p = parse_ok("GET /a+b%2B HTTP/1.1\r\nHost: h\r\n\r\n", 0);
    cr_assert_str_eq(http_parser_request(p)->path, "/a+b+");
    http_parser_free(p);
}

Test(http_parser, pipelined_in_one_buffer) {
    const char *in = "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
                     "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
                     "GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    const char *paths[] = {"/1", "/2", "/3"};
    http_parser_t *p = http_parser_new(&limits);
    size_t off = 0, len = strlen(in);
    for (int i = 0; i < 3; i++) {
        size_t used;
        cr_assert_eq(http_parser_feed(p, in + off, len - off, &used), HTTP_PARSE_DONE);
        const http_request_t *r = http_parser_request(p);
        cr_assert_str_eq(r->path, paths[i]);
        cr_assert_eq(r->keep_alive, i < 2);
        if (i == 1) cr_assert_str_eq(r->body, "abc");
        /* DONE again without reset consumes nothing. */
        size_t again = 99;
        cr_assert_eq(http_parser_feed(p, in + off + used, len - off - used, &again), HTTP_PARSE_DONE);
        cr_assert_eq(again, 0);
        off += used;
        http_parser_reset(p);
    }
    cr_assert_eq(off, len);
    http_parser_free(p);
}

Test(http_parser, chunked_body) {
    for (size_t step = 0; step < 4; step++) {
        http_parser_t *p = parse_ok(samples[2], step);
        const http_request_t *r = http_parser_request(p);
        cr_assert_eq(r->body_len, 5);
        cr_assert_str_eq(r->body, "abcde");
        cr_assert_eq(r->header_count, 2); /* Host and Transfer-Encoding: trailers are dropped */
        http_parser_free(p);
    }
    /* Chunk sizes are checked against the limit before the data arrives. */
    http_parser_t *p = http_parser_new(&limits);
    const char *in = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n20\r\n";
    size_t used;
    cr_assert_eq(http_parser_feed(p, in, strlen(in), &used), HTTP_PARSE_NEED_MORE);
    const char *more = "0123456789abcdef0123456789abcdef\r\n21\r\n";
    cr_assert_eq(http_parser_feed(p, more, strlen(more), &used), HTTP_PARSE_ERROR);
    cr_assert_eq(http_parser_error_status(p), 413);
    http_parser_free(p);
    /* A body of exactly the limit is fine. */
    char big[256];
    snprintf(big, sizeof big, "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n%064d\r\n0\r\n\r\n", 0);
    p = parse_ok(big, 0);
    cr_assert_eq(http_parser_request(p)->body_len, 64);
    http_parser_free(p);
    cr_assert_eq(parse_error("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 0), 400);
}

Test(http_parser, body_limit_from_content_length) {
    /* Refused at the end of the headers, before any body byte. */
    http_parser_t *p = http_parser_new(&limits);
    const char *in = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n";
    size_t used;
    cr_assert_eq(http_parser_feed(p, in, strlen(in), &used), HTTP_PARSE_ERROR);
    cr_assert_eq(http_parser_error_status(p), 413);
    /* Sticky. */
    cr_assert_eq(http_parser_feed(p, "x", 1, &used), HTTP_PARSE_ERROR);
    cr_assert_eq(http_parser_finish(p), HTTP_PARSE_ERROR);
    cr_assert_eq(http_parser_error_status(p), 413);
    http_parser_free(p);

    char ok[256];
    snprintf(ok, sizeof ok, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 64\r\n\r\n%064d", 7);
    p = parse_ok(ok, 3);
    cr_assert_eq(http_parser_request(p)->body_len, 64);
    http_parser_free(p);
    cr_assert_eq(parse_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0), 400);
    cr_assert_eq(parse_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0), 400);
    cr_assert_eq(parse_error("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n", 0), 400);
}

Test(http_parser, content_length_bodies_in_pieces_and_in_a_row) {
    /* A Content-Length body is reserved at its full size at its first byte: fed a
     * byte, a few bytes or all at once, and with keep-alive requests of different
     * sizes on one parser (each reset frees the previous body), every body is whole,
     * NUL-terminated, and nothing else. */
    const size_t sizes[] = {64, 1, 30, 0, 63, 7};
    const size_t steps[] = {1, 5, 0};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        http_parser_t *p = http_parser_new(&limits);
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char body[65], req[256];
            for (size_t j = 0; j < sizes[i]; j++) body[j] = (char)('a' + (i + j) % 26);
            body[sizes[i]] = '\0';
            int n = snprintf(req, sizeof req,
                             "POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n%s",
                             sizes[i], body);
            size_t used;
            cr_assert_eq(feed_steps(p, req, (size_t)n, steps[k], &used), HTTP_PARSE_DONE,
                         "request %zu, step %zu", i, steps[k]);
            cr_assert_eq(used, (size_t)n);
            const http_request_t *r = http_parser_request(p);
            cr_assert_eq(r->body_len, sizes[i]);
            cr_assert(memcmp(r->body, body, sizes[i] + 1) == 0, "request %zu, step %zu", i,
                      steps[k]);
            http_parser_reset(p);
        }
        http_parser_free(p);
    }
}

Test(http_parser, body_with_nul_bytes) {
    http_parser_t *p = http_parser_new(&limits);
    const char in[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na\0b";
    size_t used;
    cr_assert_eq(http_parser_feed(p, in, sizeof in - 1, &used), HTTP_PARSE_DONE);
    const http_request_t *r = http_parser_request(p);
    cr_assert_eq(r->body_len, 3);
    cr_assert(memcmp(r->body, "a\0b", 4) == 0);
    http_parser_free(p);
}

Test(http_parser, header_limits) {
    /* Exactly at the byte limit passes; one byte more is 431. */
    char in[1024];
    const char *head = "GET / HTTP/1.1\r\nHost: h\r\nX: ";
    size_t fill = limits.max_header_bytes - strlen(head) - 4;
    snprintf(in, sizeof in, "%s%0*d\r\n\r\n", head, (int)fill, 0);
    cr_assert_eq(strlen(in), limits.max_header_bytes);
    for (size_t step = 0; step < 3; step++) http_parser_free(parse_ok(in, step));
    snprintf(in, sizeof in, "%s%0*d\r\n\r\n", head, (int)fill + 1, 0);
    cr_assert_eq(parse_error(in, 0), 431);
    cr_assert_eq(parse_error(in, 1), 431);

    /* An endless header section is refused without waiting for its end. */
    http_parser_t *p = http_parser_new(&limits);
    size_t used;
    http_parse_status_t st = http_parser_feed(p, "GET / HTTP/1.1\r\n", 16, &used);
    for (int i = 0; i < 100 && st == HTTP_PARSE_NEED_MORE; i++)
        st = http_parser_feed(p, "X-Header: value\r\n", 17, &used);
    cr_assert_eq(st, HTTP_PARSE_ERROR);
    cr_assert_eq(http_parser_error_status(p), 431);
    http_parser_free(p);

    /* Too many headers. */
    cr_assert_eq(parse_error("GET / HTTP/1.1\r\nHost: h\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\n\r\n", 0), 0);
    cr_assert_eq(parse_error("GET / HTTP/1.1\r\nHost: h\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\nh: 1\r\n\r\n", 0), 431);
    cr_assert_eq(parse_error("GET / HTTP/1.1\r\nHost: h\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\nh: 1\r\n\r\n", 1), 431);

    /* A long URL counts too. */
    char url[1024];
    snprintf(url, sizeof url, "GET /%0600d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
    cr_assert_eq(parse_error(url, 0), 431);

    /* Endless trailers are bounded as well. */
    p = http_parser_new(&limits);
    const char *chunked = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n";
    st = http_parser_feed(p, chunked, strlen(chunked), &used);
    for (int i = 0; i < 100 && st == HTTP_PARSE_NEED_MORE; i++)
        st = http_parser_feed(p, "X-Trailer: value\r\n", 18, &used);
    cr_assert_eq(st, HTTP_PARSE_ERROR);
    cr_assert_eq(http_parser_error_status(p), 431);
    http_parser_free(p);
}

Test(http_parser, error_statuses) {
    const char *malformed[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nBad Header\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
        "GET / HTTP/x.1\r\n\r\n",
        "GET  HTTP/1.1\r\nHost: h\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: ,,\r\n\r\n", /* names no coding */
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \r\n\r\n",   /* empty (fuzz) */
        "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: \r\n\r\nGET\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof *malformed; i++) {
        cr_assert_eq(parse_error(malformed[i], 0), 400, "sample %zu", i);
        cr_assert_eq(parse_error(malformed[i], 1), 400, "sample %zu bytewise", i);
    }
    const char *unsupported[] = {
        "GET / HTTP/1.2\r\n\r\n", "GET / HTTP/2.0\r\n\r\n", "GET / HTTP/0.9\r\n\r\n",
        "GET / HTTP/3.0\r\n\r\n", "GET /\r\n\r\n", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
        cr_assert_eq(parse_error(unsupported[i], 0), 505, "sample %zu", i);
        cr_assert_eq(parse_error(unsupported[i], 1), 505, "sample %zu bytewise", i);
    }
    const char *te[] = {
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof te / sizeof *te; i++) {
        cr_assert_eq(parse_error(te[i], 0), 501, "sample %zu", i);
        cr_assert_eq(parse_error(te[i], 1), 501, "sample %zu bytewise", i);
    }
}

Test(http_parser, finish_at_eof) {
    http_parser_t *p = http_parser_new(&limits);
    cr_assert_eq(http_parser_finish(p), HTTP_PARSE_NEED_MORE); /* nothing started */
    cr_assert_not(http_parser_in_progress(p));
    size_t used;
    cr_assert_eq(http_parser_feed(p, "GET / HT", 8, &used), HTTP_PARSE_NEED_MORE);
    cr_assert(http_parser_in_progress(p));
    cr_assert_eq(http_parser_finish(p), HTTP_PARSE_ERROR);
    cr_assert_eq(http_parser_error_status(p), 400);
    http_parser_free(p);
}

Test(http_parser, upgrade_leftover_bytes) {
    const char in[] = "GET /connect HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n\x81\x85\x01\x02\x03\x04hello";
    size_t head = strlen("GET /connect HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                         "Sec-WebSocket-Version: 13\r\n\r\n");
    for (size_t step = 0; step < 3; step++) {
        http_parser_t *p = http_parser_new(&limits);
        size_t used;
        cr_assert_eq(feed_steps(p, in, sizeof in - 1, step, &used), HTTP_PARSE_DONE);
        cr_assert_eq(used, head);
        const http_request_t *r = http_parser_request(p);
        cr_assert(r->upgrade);
        cr_assert_str_eq(r->path, "/connect");
        http_parser_free(p);
    }
    /* Upgrade header without Connection: upgrade is not an upgrade. */
    http_parser_t *p = parse_ok("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", 0);
    cr_assert_not(http_parser_request(p)->upgrade);
    http_parser_free(p);

    /* A refused upgrade answered in HTTP: the parser can go on with HTTP. */
    p = http_parser_new(&limits);
    const char *two = "GET /connect HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    size_t used;
    cr_assert_eq(http_parser_feed(p, two, strlen(two), &used), HTTP_PARSE_DONE);
    http_parser_reset(p);
    const char *next = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    cr_assert_eq(http_parser_feed(p, next, strlen(next), &used), HTTP_PARSE_DONE);
    cr_assert_str_eq(http_parser_request(p)->path, "/b");
    http_parser_free(p);
}

Test(http_parser, keep_alive_rules) {
    struct {
        const char *in;
        bool keep_alive;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", false},
        {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n", false},
        {"GET / HTTP/1.0\r\n\r\n", false},
        {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
        {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        http_parser_t *p = parse_ok(cases[i].in, 0);
        cr_assert_eq(http_parser_request(p)->keep_alive, cases[i].keep_alive, "case %zu", i);
        http_parser_free(p);
    }
}

Test(http_parser, expect_continue) {
    http_parser_t *p = http_parser_new(&limits);
    const char *head = "POST /send HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    size_t used;
    cr_assert_not(http_parser_headers_complete(p));
    cr_assert_eq(http_parser_feed(p, head, strlen(head), &used), HTTP_PARSE_NEED_MORE);
    cr_assert_eq(used, strlen(head));
    cr_assert(http_parser_headers_complete(p));
    cr_assert(http_parser_wants_continue(p));
    http_parser_continue_sent(p);
    cr_assert_not(http_parser_wants_continue(p));
    cr_assert_eq(http_parser_feed(p, "body", 4, &used), HTTP_PARSE_DONE);
    cr_assert(http_parser_request(p)->expect_continue);
    cr_assert_str_eq(http_parser_request(p)->body, "body");
    http_parser_reset(p);
    cr_assert_not(http_parser_headers_complete(p));

    /* Over the body limit: 413 instead of 100. */
    const char *big = "POST /send HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 100\r\n\r\n";
    cr_assert_eq(http_parser_feed(p, big, strlen(big), &used), HTTP_PARSE_ERROR);
    cr_assert_eq(http_parser_error_status(p), 413);
    cr_assert_not(http_parser_wants_continue(p));
    http_parser_free(p);

    /* HTTP/1.0 clients get no 100 (RFC 9110, 10.1.1); a body already there: no 100. */
    p = http_parser_new(&limits);
    const char *old = "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n";
    cr_assert_eq(http_parser_feed(p, old, strlen(old), &used), HTTP_PARSE_NEED_MORE);
    cr_assert_not(http_parser_wants_continue(p));
    http_parser_free(p);
    p = http_parser_new(&limits);
    const char *part = "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\na";
    cr_assert_eq(http_parser_feed(p, part, strlen(part), &used), HTTP_PARSE_NEED_MORE);
    cr_assert_not(http_parser_wants_continue(p));
    http_parser_free(p);
}

Test(http_parser, helpers) {
    http_kv_t h = {"connection", 10, "keep-alive,  Upgrade ,x", 23};
    cr_assert(http_header_has_token(&h, "upgrade"));
    cr_assert(http_header_has_token(&h, "KEEP-ALIVE"));
    cr_assert(http_header_has_token(&h, "x"));
    cr_assert_not(http_header_has_token(&h, "upgrad"));
    cr_assert_not(http_header_has_token(NULL, "x"));
    cr_assert_str_eq(http_status_reason(404), "Not Found");
    cr_assert_str_eq(http_status_reason(431), "Request Header Fields Too Large");
    cr_assert_str_eq(http_status_reason(799), "Unknown");
    http_parser_free(NULL);
}

Test(http_parser, methods) {
    const char *names[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    http_method_t ids[] = {HTTP_METHOD_GET, HTTP_METHOD_HEAD, HTTP_METHOD_POST, HTTP_METHOD_PUT,
                           HTTP_METHOD_DELETE, HTTP_METHOD_OPTIONS, HTTP_METHOD_OTHER};
    for (size_t i = 0; i < 7; i++) {
        char in[64];
        snprintf(in, sizeof in, "%s / HTTP/1.1\r\nHost: h\r\n\r\n", names[i]);
        http_parser_t *p = parse_ok(in, 0);
        cr_assert_eq(http_parser_request(p)->method, ids[i]);
        cr_assert_str_eq(http_parser_request(p)->method_name, names[i]);
        http_parser_free(p);
    }
}

/* ---- hardening (issue 7): strict framing, Host, CONNECT, HTTP/1.0 + TE ---- */

Test(http_parser, chunk_data_must_end_with_crlf) {
    /* llhttp's loose mode skipped the two bytes after chunk data unchecked. */
    const char *bad[] = {
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY5\r\nhello\r\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\rX0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n\n0\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\rX",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(parse_error(bad[i], 0), 400, "sample %zu", i);
        cr_assert_eq(parse_error(bad[i], 1), 400, "sample %zu bytewise", i);
    }
    http_parser_t *p = parse_ok(
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 1);
    cr_assert_str_eq(http_parser_request(p)->body, "abc");
    http_parser_free(p);
}

Test(http_parser, host_header_rules) {
    /* RFC 9112 3.2: required in HTTP/1.1, never twice; optional in HTTP/1.0. */
    const char *bad[] = {
        "GET / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nX: y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(parse_error(bad[i], 0), 400, "sample %zu", i);
        cr_assert_eq(parse_error(bad[i], 1), 400, "sample %zu bytewise", i);
    }
    const char *good[] = {"GET / HTTP/1.0\r\n\r\n", "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                          "GET / HTTP/1.1\r\nHOST:\r\n\r\n"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) http_parser_free(parse_ok(good[i], 1));
}

Test(http_parser, bare_cr_after_version_is_400) {
    const char *bad[] = {"GET / HTTP/1.1\rX\r\n\r\n", "GET / HTTP/1.1\r\r\n\r\n",
                         "GET / HTTP/1.0\rHost: h\r\n\r\n", "GET / HTTP/1.1 \r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(parse_error(bad[i], 0), 400, "sample %zu", i);
        cr_assert_eq(parse_error(bad[i], 1), 400, "sample %zu bytewise", i);
    }
    /* A CR without LF elsewhere is malformed too. */
    cr_assert_eq(parse_error("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 1), 400);
    cr_assert_eq(parse_error("GET / HTTP/1.1\r\nHost: h\r\n\rX", 1), 400);
    /* An unsupported version is still 505. */
    cr_assert_eq(parse_error("GET / HTTP/1.2\rX\r\n\r\n", 1), 505);
}

Test(http_parser, http10_transfer_encoding_closes) {
    /* RFC 9112 6.1: processed, then the connection must close, keep-alive or not. */
    const char *in = "POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n0\r\n\r\n";
    for (size_t step = 0; step < 3; step++) {
        http_parser_t *p = parse_ok(in, step);
        const http_request_t *r = http_parser_request(p);
        cr_assert_str_eq(r->body, "abc");
        cr_assert_eq(r->http_minor, 0);
        cr_assert_not(r->keep_alive);
        http_parser_free(p);
    }
    /* HTTP/1.0 keep-alive without it, and HTTP/1.1 with it, still keep the connection. */
    http_parser_t *p = parse_ok("POST / HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx", 1);
    cr_assert(http_parser_request(p)->keep_alive);
    http_parser_free(p);
    p = parse_ok("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 1);
    cr_assert(http_parser_request(p)->keep_alive);
    cr_assert_eq(http_parser_request(p)->http_minor, 1);
    http_parser_free(p);
}

Test(http_parser, connect_ends_the_connection) {
    /* What follows a CONNECT is never parsed as its body nor as a next request: the
     * request says keep_alive false and the rest is left to the caller. */
    const char *head = "CONNECT /claim HTTP/1.1\r\nHost: h\r\nContent-Length: 19\r\n\r\n";
    char in[256];
    snprintf(in, sizeof in, "%sGET /x HTTP/1.1\r\n\r\n", head);
    for (size_t step = 0; step < 3; step++) {
        http_parser_t *p = http_parser_new(&limits);
        size_t used;
        cr_assert_eq(feed_steps(p, in, strlen(in), step, &used), HTTP_PARSE_DONE);
        cr_assert_eq(used, strlen(head));
        const http_request_t *r = http_parser_request(p);
        cr_assert_eq(r->method, HTTP_METHOD_CONNECT);
        cr_assert_str_eq(r->method_name, "CONNECT");
        cr_assert_not(r->keep_alive);
        cr_assert_eq(r->body_len, 0);
        http_parser_free(p);
    }
}

/* With stop_at_headers, feeds `step` bytes at a time (0: all at once): returns the
 * number of bytes consumed when HEADERS came (or (size_t)-1), then goes on to DONE. */
static size_t feed_stopping(http_parser_t *p, const char *s, size_t len, size_t step,
                            size_t *total) {
    size_t off = 0, at = (size_t)-1;
    http_parse_status_t st = HTTP_PARSE_NEED_MORE;
    while (st != HTTP_PARSE_DONE) {
        size_t n = step ? step : len - off;
        if (n > len - off) n = len - off;
        size_t c = 0;
        st = http_parser_feed(p, s + off, n, &c);
        off += c;
        cr_assert_neq(st, HTTP_PARSE_ERROR, "%s", http_parser_error_message(p));
        if (st == HTTP_PARSE_HEADERS) {
            cr_assert_eq(at, (size_t)-1, "HEADERS once per request");
            at = off;
            const http_request_t *r = http_parser_request(p);
            cr_assert_not_null(r);
            cr_assert_null(r->body);
            cr_assert(http_parser_headers_complete(p));
        } else if (st == HTTP_PARSE_NEED_MORE) {
            cr_assert_eq(c, n);
            cr_assert(off < len, "NEED_MORE with every byte in");
        }
    }
    *total = off;
    return at;
}

Test(http_parser, stop_at_headers) {
    const char *head = "POST /send?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    char in[256];
    snprintf(in, sizeof in, "%shelloGET / HTTP/1.1\r\nHost: h\r\n\r\n", head);
    for (size_t step = 0; step < 4; step++) {
        http_parser_t *p = http_parser_new(&limits);
        http_parser_stop_at_headers(p, true);
        size_t total;
        cr_assert_eq(feed_stopping(p, in, strlen(in), step, &total), strlen(head));
        cr_assert_eq(total, strlen(head) + 5);
        const http_request_t *r = http_parser_request(p);
        cr_assert_str_eq(r->body, "hello");
        cr_assert(r->has_body);
        cr_assert(r->keep_alive);
        http_parser_reset(p);
        /* A request without a body: HEADERS, then DONE at once on a feed of nothing. */
        size_t used;
        const char *next = in + total;
        cr_assert_eq(http_parser_feed(p, next, strlen(next), &used), HTTP_PARSE_HEADERS);
        cr_assert_eq(used, strlen(next));
        cr_assert_not(http_parser_request(p)->has_body);
        cr_assert_eq(http_parser_feed(p, "", 0, &used), HTTP_PARSE_DONE);
        cr_assert_eq(used, 0);
        http_parser_free(p);
    }
    /* The body waits: after HEADERS a feed of nothing is NEED_MORE, and 100-continue
     * is only wanted from then on, when the caller chose to go on. */
    http_parser_t *p = http_parser_new(&limits);
    http_parser_stop_at_headers(p, true);
    const char *exp = "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n";
    size_t used;
    cr_assert_eq(http_parser_feed(p, exp, strlen(exp), &used), HTTP_PARSE_HEADERS);
    cr_assert(http_parser_request(p)->has_body);
    cr_assert_eq(http_parser_feed(p, "", 0, &used), HTTP_PARSE_NEED_MORE);
    cr_assert(http_parser_wants_continue(p));
    /* A reset before the body (the request was refused): the parser starts over and
     * never reads the body as a request... */
    http_parser_reset(p);
    cr_assert_null(http_parser_request(p));
    const char *fresh = "GET /n HTTP/1.1\r\nHost: h\r\n\r\n";
    cr_assert_eq(http_parser_feed(p, fresh, strlen(fresh), &used), HTTP_PARSE_HEADERS);
    cr_assert_eq(http_parser_feed(p, "", 0, &used), HTTP_PARSE_DONE);
    cr_assert_str_eq(http_parser_request(p)->path, "/n");
    http_parser_free(p);

    /* CONNECT: DONE right after HEADERS, consuming nothing that follows. */
    p = http_parser_new(&limits);
    http_parser_stop_at_headers(p, true);
    const char *conn = "CONNECT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody";
    cr_assert_eq(http_parser_feed(p, conn, strlen(conn), &used), HTTP_PARSE_HEADERS);
    cr_assert_eq(used, strlen(conn) - 4);
    cr_assert_eq(http_parser_feed(p, conn + used, 4, &used), HTTP_PARSE_DONE);
    cr_assert_eq(used, 0);
    cr_assert_not(http_parser_request(p)->keep_alive);
    http_parser_free(p);

    /* Limits and errors come before HEADERS. */
    p = http_parser_new(&limits);
    http_parser_stop_at_headers(p, true);
    const char *big = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 65\r\n\r\n";
    cr_assert_eq(http_parser_feed(p, big, strlen(big), &used), HTTP_PARSE_ERROR);
    cr_assert_eq(http_parser_error_status(p), 413);
    cr_assert_null(http_parser_request(p));
    http_parser_free(p);
}
