/* libFuzzer target for the HTTP/1.1 request parser. The first input byte picks the
 * feed size, the rest is fed in pieces of that size; each complete request is
 * checked against the parser's promises (limits, decoding, NUL termination), then
 * the parser is reset and the remaining bytes go on as the next request. */
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

static void check_request(const http_request_t *r) {
    CHECK(r && r->path && r->path[0] == '/');
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t step = (size_t)(data[0] % 32) + 1;
    if (data[0] >= 224) step = (size_t)-1; /* sometimes everything at once */
    const char *in = (const char *)data + 1;
    size_t len = size - 1, off = 0;
    http_parser_t *p = http_parser_new(&limits);
    int requests = 0;
    while (off < len) {
        size_t n = len - off < step ? len - off : step;
        size_t used = (size_t)-1;
        bool had_headers = http_parser_headers_complete(p);
        http_parse_status_t st = http_parser_feed(p, in + off, n, &used);
        CHECK(used <= n);
        if (st == HTTP_PARSE_NEED_MORE) {
            CHECK(used == n);
            if (had_headers) CHECK(http_parser_headers_complete(p));
            if (http_parser_wants_continue(p)) http_parser_continue_sent(p);
            CHECK(!http_parser_wants_continue(p));
            off += used;
        } else if (st == HTTP_PARSE_DONE) {
            const http_request_t *r = http_parser_request(p);
            check_request(r);
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
            CHECK(http_parser_error_message(p)[0] != '\0');
            size_t again;
            CHECK(http_parser_feed(p, "GET / HTTP/1.1\r\n\r\n", 18, &again) == HTTP_PARSE_ERROR);
            CHECK(http_parser_finish(p) == HTTP_PARSE_ERROR);
            CHECK(http_parser_error_status(p) == status);
            break;
        }
        CHECK(requests < 100000);
    }
    (void)http_parser_finish(p);
    http_parser_free(p);
    return 0;
}
