/* Unit tests for the shared validators of outside input (protocol/validate.h):
 * the identifier rule (user, session, claim id, connection id, JWT sub/sid, bus
 * target ids) and the strict integer parser, walked byte by byte; and the rule
 * for repeated query parameters (http_request_param). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "protocol/http_parser.h"
#include "protocol/validate.h"

/* ---- identifiers ---- */

Test(ident, plain_ids_pass) {
    static const char *ok[] = {"u", "user-1", "a b", "x+y=z", "caf\xc3\xa9", "\xe2\x82\xac",
                               "\xf0\x9f\x98\x80", "\xc2\xa0nbsp", "\xe2\x80\xae" "bidi",
                               "~!@#$%^&*()"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        cr_assert_eq(ident_check(ok[i], strlen(ok[i])), IDENT_OK, "%s", ok[i]);
}

Test(ident, empty_is_empty) {
    cr_assert_eq(ident_check("", 0), IDENT_EMPTY);
    cr_assert_eq(ident_check(NULL, 0), IDENT_EMPTY);
}

/* Every single byte, alone and in the middle and at both ends of an id. */
Test(ident, every_byte) {
    for (int b = 0; b < 256; b++) {
        ident_status_t want = b < 0x20 || b == 0x7f ? IDENT_CONTROL
                              : b >= 0x80           ? IDENT_NOT_UTF8
                                                    : IDENT_OK;
        char s[8];
        size_t n;
        s[0] = (char)b;
        cr_assert_eq(ident_check(s, 1), want, "byte %02x alone", b);
        n = (size_t)snprintf(s, sizeof s, "ab");
        s[1] = (char)b;
        cr_assert_eq(ident_check(s, n), want, "byte %02x inside", b);
        memcpy(s, "ab", 2);
        s[2] = (char)b;
        cr_assert_eq(ident_check(s, 3), want, "byte %02x last", b);
        s[0] = (char)b;
        cr_assert_eq(ident_check(s, 3), want, "byte %02x first", b);
    }
}

/* The length is what counts: a NUL inside is seen, not taken as the end. */
Test(ident, nul_inside) {
    static const char s[] = "victim\0-attacker";
    cr_assert_eq(ident_check(s, sizeof s - 1), IDENT_CONTROL);
    cr_assert_eq(ident_check(s, 6), IDENT_OK); /* "victim" alone is fine */
}

/* Two-byte sequences C2 xx: U+0080..U+009F are C1 controls, U+00A0.. are not. */
Test(ident, c1_controls) {
    for (int b = 0x80; b <= 0xbf; b++) {
        char s[] = {'a', (char)0xc2, (char)b, 'z'};
        cr_assert_eq(ident_check(s, 4), b <= 0x9f ? IDENT_CONTROL : IDENT_OK, "U+00%02X", b);
    }
    /* Overlong encodings of controls are not UTF-8 at all. */
    cr_assert_eq(ident_check("\xc0\x80", 2), IDENT_NOT_UTF8);
    cr_assert_eq(ident_check("\xe0\x80\x8a", 3), IDENT_NOT_UTF8);
    /* Cut multi-byte sequences and surrogates. */
    cr_assert_eq(ident_check("a\xc3", 2), IDENT_NOT_UTF8);
    cr_assert_eq(ident_check("\xed\xa0\x80", 3), IDENT_NOT_UTF8);
}

/* ---- integers ---- */

static void int_ok(const char *s, int64_t want) {
    int64_t v = 12345;
    cr_assert(parse_int64(s, strlen(s), &v), "'%s' refused", s);
    cr_assert_eq(v, want, "'%s' -> %lld", s, (long long)v);
}

static void int_bad(const char *s, size_t n) {
    int64_t v = 12345;
    cr_assert(!parse_int64(s, n, &v), "'%.*s' accepted", (int)n, s);
    cr_assert_eq(v, 12345, "output touched on failure");
}

Test(int64, accepts_sign_and_digits) {
    int_ok("0", 0);
    int_ok("7", 7);
    int_ok("-7", -7);
    int_ok("+7", 7);
    int_ok("-0", 0);
    int_ok("007", 7);
    int_ok("1588473164", 1588473164);
    int_ok("9223372036854775807", INT64_MAX);
    int_ok("-9223372036854775808", INT64_MIN);
    int_ok("+9223372036854775807", INT64_MAX);
    int_ok("-9223372036854775807", -INT64_MAX);
    int_ok("000000000000000000000000000042", 42);
}

Test(int64, refuses_out_of_range) {
    static const char *bad[] = {"9223372036854775808", "-9223372036854775809",
                                "+9223372036854775808", "99999999999999999999",
                                "18446744073709551616", "-99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) int_bad(bad[i], strlen(bad[i]));
}

Test(int64, refuses_non_numbers) {
    static const char *bad[] = {"", "-", "+", "+-1", "-+1", "--1", "++1", "1-", "1+", "1.0",
                                "1e3", "0x10", " 1", "1 ", "\t1", "1\t", "\n1", "\v1",
                                "\f1", "\r1", "1\n", "\xef\xbc\x91" /* fullwidth 1 */, "- 1",
                                "one"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) int_bad(bad[i], strlen(bad[i]));
    int_bad(NULL, 0);
    int_bad("1\0" "2", 3); /* a NUL inside */
    int_bad("\0" "1", 2);
}

/* Every byte that is not a digit, before, inside and after digits and after a
 * sign, makes the text no integer. */
Test(int64, every_byte) {
    for (int b = 0; b < 256; b++) {
        if (b >= '0' && b <= '9') continue;
        char s[4];
        s[0] = (char)b, s[1] = '1', s[2] = '2';
        if (b != '+' && b != '-') int_bad(s, 3);
        s[0] = '1', s[1] = (char)b, s[2] = '2';
        int_bad(s, 3);
        s[0] = '1', s[1] = '2', s[2] = (char)b;
        int_bad(s, 3);
        s[0] = '-', s[1] = (char)b, s[2] = '2';
        int_bad(s, 3);
        s[0] = (char)b;
        int_bad(s, 1);
    }
    for (int d = 0; d <= 9; d++) {
        char s[2] = {(char)('0' + d), '\0'};
        int_ok(s, d);
    }
}

/* ---- repeated parameters ---- */

static const http_limits_t limits = {.max_header_bytes = 1024, .max_headers = 8,
                                     .max_body_bytes = 64};

static const char *param_of(const char *target, const char *key, char *out, size_t cap) {
    http_parser_t *p = http_parser_new(&limits);
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", target);
    size_t used;
    cr_assert_eq(http_parser_feed(p, req, (size_t)n, &used), HTTP_PARSE_DONE, "%s", target);
    const http_kv_t *kv = http_request_param(http_parser_request(p), key);
    const char *res = NULL;
    if (kv) {
        snprintf(out, cap, "%s", kv->value);
        res = out;
    }
    http_parser_free(p);
    return res;
}

Test(params, first_non_empty_wins) {
    char buf[64];
    cr_assert_str_eq(param_of("/x?token=&token=T", "token", buf, sizeof buf), "T");
    cr_assert_str_eq(param_of("/x?token=A&token=B", "token", buf, sizeof buf), "A");
    cr_assert_str_eq(param_of("/x?token&token=&token=C&token=D", "token", buf, sizeof buf), "C");
    cr_assert_str_eq(param_of("/x?a=1&token=%41&token=B", "token", buf, sizeof buf), "A");
    cr_assert_str_eq(param_of("/x?tok%65n=E", "token", buf, sizeof buf), "E");
    cr_assert_null(param_of("/x?token=&token=", "token", buf, sizeof buf));
    cr_assert_null(param_of("/x?token", "token", buf, sizeof buf));
    cr_assert_null(param_of("/x?tokens=1&Token=2", "token", buf, sizeof buf));
    cr_assert_null(param_of("/x", "token", buf, sizeof buf));
}
