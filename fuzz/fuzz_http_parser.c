/* libFuzzer target for the HTTP/1.1 request parser. The first input byte picks the
 * feed size, the rest is fed in pieces of that size; each complete request is
 * checked against the parser's promises (limits, decoding, NUL termination, Host,
 * keep-alive after CONNECT and HTTP/1.0 + Transfer-Encoding), then the parser is
 * reset and the remaining bytes go on as the next request. Every input runs twice,
 * without and with http_parser_stop_at_headers(): stopping at the headers must not
 * change what is parsed (same requests, same bytes consumed, same error). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/http_parser.h"

#define CHECK(cond)                                                                               \
    do {                                                                                          \
        if (!(cond)) abort();                                                                     \
    } while (0)

static const http_limits_t limits = {.max_header_bytes = 1024, .max_headers = 16, .max_body_bytes = 512};

static void check_kv(const http_kv_t *kv, size_t n, bool lower) {
    for (size_t i = 0; i < n; i++) {
        CHECK(strlen(kv[i].key) == kv[i].key_len);
        CHECK(kv[i].value[kv[i].value_len] == '\0');
        if (lower)
            for (size_t j = 0; j < kv[i].key_len; j++) CHECK(kv[i].key[j] < 'A' || kv[i].key[j] > 'Z');
        else
            CHECK(strlen(kv[i].value) == kv[i].value_len);
    }
}

static size_t count_header(const http_request_t *r, const char *name) {
    size_t n = 0;
    for (size_t i = 0; i < r->header_count; i++) n += strcmp(r->headers[i].key, name) == 0;
    return n;
}

/* What both DONE and HEADERS promise: a routable target and RFC 9112 3.2's Host. */
static void check_head(const http_request_t *r) {
    CHECK(r && r->path && r->path[0] == '/');
    CHECK(r->http_minor == 0 || r->http_minor == 1);
    size_t hosts = count_header(r, "host");
    CHECK(hosts <= 1);
    if (r->http_minor == 1) CHECK(hosts == 1);
    if (r->method == HTTP_METHOD_CONNECT) CHECK(!r->keep_alive);
    if (r->http_minor == 0 && count_header(r, "transfer-encoding") > 0) CHECK(!r->keep_alive);
}

static void check_request(const http_request_t *r) {
    check_head(r);
    if (!r->has_body) CHECK(r->body_len == 0);
    CHECK(r->method_name != NULL);
    CHECK(r->body_len <= limits.max_body_bytes);
    CHECK(r->body && r->body[r->body_len] == '\0');
    CHECK(r->header_count <= limits.max_headers);
    check_kv(r->headers, r->header_count, true);
    check_kv(r->query, r->query_count, false);
    for (size_t i = 0; i < r->query_count; i++) CHECK(http_request_query(r, r->query[i].key) != NULL);
    for (size_t i = 0; i < r->header_count; i++) {
        CHECK(http_request_header(r, r->headers[i].key) != NULL);
        (void)http_header_has_token(&r->headers[i], "upgrade");
    }
}

/* A running digest of what a run parsed, to compare the two runs. */
static void mix(uint64_t *h, const void *data, size_t len) {
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++) *h = (*h ^ b[i]) * 0x100000001b3ULL;
}

static void mix_request(uint64_t *h, const http_request_t *r, size_t off) {
    mix(h, &off, sizeof off);
    mix(h, r->path, strlen(r->path) + 1);
    mix(h, r->method_name, strlen(r->method_name) + 1);
    mix(h, r->body, r->body_len);
    unsigned char flags[] = {r->keep_alive, r->upgrade, r->expect_continue, r->has_body,
                             r->http_minor, (unsigned char)r->method};
    mix(h, flags, sizeof flags);
    mix(h, &r->header_count, sizeof r->header_count);
    mix(h, &r->query_count, sizeof r->query_count);
}

static uint64_t run(const char *in, size_t len, size_t step, bool stop) {
    uint64_t digest = 0xcbf29ce484222325ULL;
    size_t off = 0;
    http_parser_t *p = http_parser_new(&limits);
    http_parser_stop_at_headers(p, stop);
    int requests = 0;
    size_t piece_end = 0; /* pieces are cut at the same places in both runs */
    bool headers_seen = false;
    while (off < len) {
        if (off >= piece_end) piece_end = off + (len - off < step ? len - off : step);
        size_t n = piece_end - off;
        size_t used = (size_t)-1;
        bool had_headers = http_parser_headers_complete(p);
        http_parse_status_t st = http_parser_feed(p, in + off, n, &used);
        CHECK(used <= n);
        if (st == HTTP_PARSE_HEADERS) {
            CHECK(stop && !headers_seen); /* once per request, and only when asked */
            headers_seen = true;
            const http_request_t *r = http_parser_request(p);
            check_head(r);
            CHECK(r->body == NULL && r->body_len == 0);
            CHECK(http_parser_headers_complete(p));
            off += used;
            /* Feeding nothing goes on: a request without a body is DONE at once. */
            size_t none = 7;
            st = http_parser_feed(p, in + off, 0, &none);
            CHECK(none == 0);
            if (st == HTTP_PARSE_DONE) {
                CHECK(!r->has_body || r->method == HTTP_METHOD_CONNECT || r->upgrade);
                used = 0;
            } else {
                CHECK(st == HTTP_PARSE_NEED_MORE);
                continue;
            }
        }
        if (st == HTTP_PARSE_NEED_MORE) {
            CHECK(used == n);
            if (had_headers) CHECK(http_parser_headers_complete(p));
            if (http_parser_wants_continue(p)) http_parser_continue_sent(p);
            CHECK(!http_parser_wants_continue(p));
            off += used;
        } else if (st == HTTP_PARSE_DONE) {
            const http_request_t *r = http_parser_request(p);
            check_request(r);
            CHECK(headers_seen == stop);
            headers_seen = false;
            mix_request(&digest, r, off + used);
            CHECK(http_parser_in_progress(p));
            size_t again = 7;
            CHECK(http_parser_feed(p, in + off + used, len - off - used, &again) == HTTP_PARSE_DONE);
            CHECK(again == 0);
            off += used;
            requests++;
            if (r->upgrade) break; /* the rest belongs to another protocol */
            http_parser_reset(p);
            CHECK(http_parser_request(p) == NULL);
        } else {
            int status = http_parser_error_status(p);
            CHECK(status == 400 || status == 413 || status == 431 || status == 501 || status == 505);
            CHECK(http_parser_request(p) == NULL);
            size_t at = off + used;
            mix(&digest, &status, sizeof status);
            mix(&digest, &at, sizeof at);
            CHECK(http_parser_error_message(p)[0] != '\0');
            size_t again;
            CHECK(http_parser_feed(p, "GET / HTTP/1.1\r\n\r\n", 18, &again) == HTTP_PARSE_ERROR);
            CHECK(http_parser_finish(p) == HTTP_PARSE_ERROR);
            CHECK(http_parser_error_status(p) == status);
            break;
        }
        CHECK(requests < 100000);
    }
    int fin = (int)http_parser_finish(p);
    mix(&digest, &fin, sizeof fin);
    http_parser_free(p);
    return digest;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t step = (size_t)(data[0] % 32) + 1;
    if (data[0] >= 224) step = (size_t)-1; /* sometimes everything at once */
    const char *in = (const char *)data + 1;
    CHECK(run(in, size - 1, step, false) == run(in, size - 1, step, true));
    return 0;
}
