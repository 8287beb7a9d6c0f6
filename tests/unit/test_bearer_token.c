/* Unit tests for the API token check (protocol/bearer_token.h), on requests made
 * by the real HTTP parser: query before header, first non-empty ?token=, the
 * Bearer scheme's spelling, an empty configured token, and every one-byte change
 * of a good token refused. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "protocol/bearer_token.h"
#include "protocol/http_parser.h"

static const http_limits_t limits = {.max_header_bytes = 4096, .max_headers = 16, .max_body_bytes = 0};

/* Whether the request (line + headers, "\r\n" added) presents the token "s3cret". */
static bool authorizes_with(const char *token, const char *target, const char *headers) {
    char req[2048];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: h\r\n%s\r\n", target, headers);
    http_parser_t *p = http_parser_new(&limits);
    size_t used = 0;
    http_parse_status_t st = http_parser_feed(p, req, strlen(req), &used);
    cr_assert_eq(st, HTTP_PARSE_DONE, "%s: %s", req, http_parser_error_message(p));
    bearer_token_t t;
    bearer_token_init(&t, token);
    bool ok = bearer_token_authorizes(&t, http_parser_request(p));
    bearer_token_clear(&t);
    http_parser_free(p);
    return ok;
}

static bool authorizes(const char *target, const char *headers) {
    return authorizes_with("s3cret", target, headers);
}

Test(bearer_token, header_forms) {
    cr_assert(authorizes("/send", "Authorization: Bearer s3cret\r\n"));
    cr_assert(authorizes("/send", "Authorization: bearer s3cret\r\n"));
    cr_assert(authorizes("/send", "authorization: BEARER   s3cret\r\n"));
    cr_assert(!authorizes("/send", "Authorization: Bearer s3cre\r\n"));
    cr_assert(!authorizes("/send", "Authorization: Bearer s3cretX\r\n"));
    cr_assert(!authorizes("/send", "Authorization: Basic s3cret\r\n"));
    cr_assert(!authorizes("/send", "Authorization: Bearers3cret\r\n"));
    cr_assert(!authorizes("/send", "Authorization: Bearer\r\n"));
    cr_assert(!authorizes("/send", "Authorization: Bearer \r\n"));
    cr_assert(!authorizes("/send", "Authorization: s3cret\r\n"));
    cr_assert(!authorizes("/send", ""));
}

Test(bearer_token, query_first_non_empty_wins_over_header) {
    cr_assert(authorizes("/send?token=s3cret", ""));
    cr_assert(authorizes("/send?token=&token=s3cret", ""));
    cr_assert(!authorizes("/send?token=wrong&token=s3cret", ""));
    /* a query token decides, even when the header holds the right one */
    cr_assert(!authorizes("/send?token=wrong", "Authorization: Bearer s3cret\r\n"));
    /* an empty ?token= counts as absent: the header decides */
    cr_assert(authorizes("/send?token=", "Authorization: Bearer s3cret\r\n"));
    cr_assert(authorizes("/send?token=s%33cret", ""));
}

Test(bearer_token, empty_configured_token_authorizes_nobody) {
    cr_assert(!authorizes_with("", "/send?token=", ""));
    cr_assert(!authorizes_with("", "/send", "Authorization: Bearer \r\n"));
    cr_assert(!authorizes_with(NULL, "/send?token=x", ""));
    bearer_token_t t;
    bearer_token_init(&t, "");
    cr_assert(!t.set);
    cr_assert(!bearer_token_matches(&t, "", 0));
}

Test(bearer_token, every_one_byte_change_is_refused) {
    const char good[] = "s3cret";
    bearer_token_t t;
    bearer_token_init(&t, good);
    cr_assert(bearer_token_matches(&t, good, strlen(good)));
    char v[sizeof good];
    for (size_t i = 0; i < strlen(good); i++)
        for (int b = 0; b < 256; b++) {
            memcpy(v, good, sizeof good);
            if ((unsigned char)v[i] == b) continue;
            v[i] = (char)b;
            cr_assert(!bearer_token_matches(&t, v, strlen(good)), "byte %zu = %d", i, b);
        }
    for (size_t n = 0; n < strlen(good); n++) cr_assert(!bearer_token_matches(&t, good, n));
    bearer_token_clear(&t);
    cr_assert(!t.set);
}
