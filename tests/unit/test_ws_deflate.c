/* Unit tests for permessage-deflate (RFC 7692): the offer parser (every parameter
 * combination of the RFC's negotiation examples, malformed and repeated parameters,
 * then every prefix and single-byte mutation of offers), the answer, the codec
 * (deflate once, inflate with limits and UTF-8) and the frame parser with RSV1. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/ws_deflate.h"
#include "protocol/ws_frame.h"
#include "protocol/ws_handshake.h"

#define FULL "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

static bool offer(const char *s, ws_deflate_params_t *p) {
    return ws_deflate_parse_offer(s, strlen(s), p);
}

static const char *answer(const char *s) {
    static char out[WS_DEFLATE_RESPONSE_MAX];
    ws_deflate_params_t p;
    if (!offer(s, &p)) return NULL;
    size_t n = ws_deflate_response(&p, out);
    cr_assert_eq(n, strlen(out));
    return out;
}

static void expect_answer(const char *offered, const char *want) {
    const char *got = answer(offered);
    if (!want) {
        cr_assert_null(got, "offer <%s> should be declined, got <%s>", offered, got);
        return;
    }
    cr_assert_not_null(got, "offer <%s> should be accepted", offered);
    cr_assert_str_eq(got, want, "offer <%s>", offered);
}

Test(negotiate, rfc_examples_and_parameter_combinations) {
    /* Every combination of the four parameters (RFC 7692 7.1), with and without
     * values where they take one. */
    const char *sv[] = {NULL, "server_max_window_bits=10", "server_max_window_bits=15",
                        "server_max_window_bits=9"};
    const char *cv[] = {NULL, "client_max_window_bits", "client_max_window_bits=15",
                        "client_max_window_bits=8", "client_max_window_bits=12"};
    for (int snct = 0; snct < 2; snct++)
        for (int cnct = 0; cnct < 2; cnct++)
            for (size_t s = 0; s < 4; s++)
                for (size_t c = 0; c < 5; c++) {
                    char o[256], want[256];
                    int n = snprintf(o, sizeof o, "permessage-deflate");
                    if (snct) n += snprintf(o + n, sizeof o - n, "; server_no_context_takeover");
                    if (cnct) n += snprintf(o + n, sizeof o - n, "; client_no_context_takeover");
                    if (sv[s]) n += snprintf(o + n, sizeof o - n, "; %s", sv[s]);
                    if (cv[c]) snprintf(o + n, sizeof o - n, "; %s", cv[c]);
                    /* client_max_window_bits is never answered (the client keeps its own) */
                    n = snprintf(want, sizeof want, FULL);
                    if (sv[s]) snprintf(want + n, sizeof want - n, "; %s", sv[s]);
                    expect_answer(o, want);
                }
}

Test(negotiate, params) {
    ws_deflate_params_t p;
    cr_assert(offer("permessage-deflate", &p));
    cr_assert(p.enabled);
    cr_assert_eq(p.server_bits, 15);
    cr_assert_not(p.server_bits_offered);
    cr_assert_eq(p.client_bits, 15);
    cr_assert_not(p.client_bits_offered);
    cr_assert(offer("permessage-deflate; server_max_window_bits=11; client_max_window_bits=8", &p));
    cr_assert_eq(p.server_bits, 11);
    cr_assert(p.server_bits_offered);
    cr_assert_eq(p.client_bits, 8);
    cr_assert(p.client_bits_offered);
    cr_assert(offer("permessage-deflate; client_max_window_bits", &p));
    cr_assert_eq(p.client_bits, 15);
    cr_assert(p.client_bits_offered);
    cr_assert_not(offer("nope", &p));
    cr_assert_not(p.enabled);
}

Test(negotiate, fallback_and_other_extensions) {
    /* RFC 7692 5.1 example: the first offer (server window 10) and a fallback. */
    expect_answer("permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
                  "permessage-deflate; client_max_window_bits",
                  FULL "; server_max_window_bits=10");
    /* the first cannot be served (8 bits): the second is taken */
    expect_answer("permessage-deflate; server_max_window_bits=8, permessage-deflate", FULL);
    expect_answer("foo, bar; baz=\"a,b;c\", permessage-deflate", FULL);
    expect_answer("x-webkit-deflate-frame; no_context_takeover, permessage-deflate;"
                  "server_max_window_bits=12", FULL "; server_max_window_bits=12");
    expect_answer(", ,permessage-deflate ,", FULL);
    expect_answer("permessage-deflate ; server_max_window_bits = 12 ", FULL "; server_max_window_bits=12");
    expect_answer("Permessage-Deflate; Server_Max_Window_Bits=12", FULL "; server_max_window_bits=12");
    expect_answer("permessage-deflate\t;\tclient_no_context_takeover", FULL);
}

Test(negotiate, quoted_values) {
    expect_answer("permessage-deflate; server_max_window_bits=\"10\"", FULL "; server_max_window_bits=10");
    expect_answer("permessage-deflate; server_max_window_bits=\"1\\0\"", FULL "; server_max_window_bits=10");
    expect_answer("permessage-deflate; client_max_window_bits=\"8\"", FULL);
    expect_answer("permessage-deflate; server_max_window_bits=\"10", NULL);    /* unterminated */
    expect_answer("permessage-deflate; server_max_window_bits=\"\"", NULL);
    expect_answer("permessage-deflate; server_max_window_bits=\"10 \"", NULL);
    expect_answer("permessage-deflate; server_max_window_bits=\"0000010\"", NULL);
    /* a syntax error declines its element only */
    expect_answer("permessage-deflate; server_max_window_bits=\"1,0\", permessage-deflate", FULL);
    expect_answer("permessage-deflate; x=\"a\\\"b, c\", permessage-deflate", FULL);
}

Test(negotiate, declined) {
    static const char *bad[] = {
        "",
        "   ",
        ",",
        "permessage-deflate;",
        "permessage-deflate;;",
        "permessage-deflate; ",
        "permessage-deflate; =10",
        "permessage-deflate x",
        "permessage-deflate; server_max_window_bits",       /* needs a value */
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=8",     /* zlib cannot */
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; server_max_window_bits=1O",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=09",
        "permessage-deflate; client_max_window_bits=",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=\"\"",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
        "permessage-deflate; unknown",
        "permessage-deflate; mux",
        "permessage-deflate2",
        "permessage_deflate",
        "deflate-frame",
        "\"permessage-deflate\"",
        "permessage-deflate\x01",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) expect_answer(bad[i], NULL);
}

/* Whatever the bytes, the result is either a decline or parameters in range. */
static void check_sane(const char *s, size_t n) {
    ws_deflate_params_t p;
    if (ws_deflate_parse_offer(s, n, &p)) {
        cr_assert(p.enabled);
        cr_assert(p.server_bits >= 9 && p.server_bits <= 15);
        cr_assert(p.client_bits >= 8 && p.client_bits <= 15);
        char out[WS_DEFLATE_RESPONSE_MAX];
        cr_assert_lt(ws_deflate_response(&p, out), sizeof out);
    } else {
        cr_assert_not(p.enabled);
    }
}

Test(negotiate, byte_by_byte) {
    static const char *offers[] = {
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=\"12\"; client_max_window_bits=10",
        "x-foo; a=\"b,\\\"c\", permessage-deflate; client_max_window_bits, permessage-deflate",
    };
    for (size_t o = 0; o < sizeof offers / sizeof offers[0]; o++) {
        size_t len = strlen(offers[o]);
        /* every prefix (a header cut anywhere) */
        for (size_t n = 0; n <= len; n++) {
            char *copy = malloc(n ? n : 1); /* no NUL: the parser must keep to n */
            memcpy(copy, offers[o], n);
            check_sane(copy, n);
            free(copy);
        }
        /* every byte replaced by each separator and a few hostile bytes */
        static const char subst[] = {',', ';', '"', '=', ' ', '\\', '\t', '\0', '\x80', '\xff', '9'};
        char *buf = malloc(len);
        for (size_t i = 0; i < len; i++) {
            for (size_t k = 0; k < sizeof subst; k++) {
                memcpy(buf, offers[o], len);
                buf[i] = subst[k];
                check_sane(buf, len);
            }
        }
        free(buf);
    }
    /* the complete first offer: exactly these parameters */
    ws_deflate_params_t p;
    cr_assert(offer(offers[0], &p));
    cr_assert_eq(p.server_bits, 12);
    cr_assert_eq(p.client_bits, 10);
    /* one byte less of it (the closing value digit) still parses: "1" is out of range */
    cr_assert_not(ws_deflate_parse_offer(offers[0], strlen(offers[0]) - 1, &p));
}

Test(negotiate, several_headers) {
    http_kv_t hs[4] = {
        {"host", 4, "x", 0},
        {"sec-websocket-extensions", 24, "permessage-deflate; bogus", 0},
        {"upgrade", 7, "websocket", 0},
        {"sec-websocket-extensions", 24, "permessage-deflate; server_max_window_bits=13", 0},
    };
    for (size_t i = 0; i < 4; i++) hs[i].value_len = strlen(hs[i].value);
    http_request_t req;
    memset(&req, 0, sizeof req);
    req.headers = hs;
    req.header_count = 4;
    ws_deflate_params_t p;
    cr_assert(ws_deflate_negotiate(&req, &p));
    cr_assert_eq(p.server_bits, 13);
    req.header_count = 3;
    cr_assert_not(ws_deflate_negotiate(&req, &p));
    cr_assert_not(p.enabled);
}

/* Codec ------------------------------------------------------------------------ */

static size_t deflate_buf(unsigned bits, const void *in, size_t n, uint8_t **out) {
    ws_deflater_t *d = ws_deflater_new(bits);
    cr_assert_not_null(d);
    size_t cap = ws_deflate_bound(n);
    *out = malloc(cap);
    size_t len = ws_deflate_message(d, in, n, *out, cap);
    ws_deflater_free(d);
    return len;
}

Test(codec, roundtrip_every_window_and_split) {
    char text[20000];
    for (size_t i = 0; i < sizeof text; i++) text[i] = "{\"key\": \"value\", \"n\": 12345}\n"[i % 30];
    for (unsigned bits = 9; bits <= 15; bits++) {
        uint8_t *z;
        size_t n = deflate_buf(bits, text, sizeof text, &z);
        cr_assert_gt(n, 0);
        cr_assert_lt(n, sizeof text / 5);
        size_t chunks[] = {n, 1, 7, 100};
        for (size_t c = 0; c < 4; c++) {
            ws_inflater_t *in = ws_inflater_new(sizeof text, true);
            size_t off = 0;
            while (off < n) {
                size_t k = chunks[c] < n - off ? chunks[c] : n - off;
                cr_assert_eq(ws_inflater_feed(in, z + off, k, false), WS_INFLATE_OK);
                off += k;
            }
            cr_assert_eq(ws_inflater_feed(in, NULL, 0, true), WS_INFLATE_OK);
            cr_assert_eq(ws_inflater_total(in), sizeof text);
            ws_inflater_free(in);
        }
        free(z);
    }
    cr_assert_null(ws_deflater_new(8));
    cr_assert_null(ws_deflater_new(16));
}

Test(codec, empty_message) {
    uint8_t *z;
    size_t n = deflate_buf(15, "", 0, &z);
    ws_inflater_t *in = ws_inflater_new(10, true);
    cr_assert_eq(ws_inflater_feed(in, z, n, true), WS_INFLATE_OK);
    cr_assert_eq(ws_inflater_total(in), 0);
    ws_inflater_free(in);
    free(z);
    /* no payload at all is an empty message too */
    in = ws_inflater_new(10, false);
    cr_assert_eq(ws_inflater_feed(in, NULL, 0, true), WS_INFLATE_OK);
    ws_inflater_free(in);
}

Test(codec, limit_stops_early) {
    size_t big = 1 << 20;
    uint8_t *zeros = calloc(1, big), *z;
    size_t n = deflate_buf(15, zeros, big, &z);
    cr_assert_lt(n, 2048);
    ws_inflater_t *in = ws_inflater_new(65536, false);
    cr_assert_eq(ws_inflater_feed(in, z, n, true), WS_INFLATE_TOO_BIG);
    cr_assert_eq(ws_inflater_total(in), 65537, "at most one byte past the limit is inflated");
    cr_assert_eq(ws_inflater_feed(in, z, n, true), WS_INFLATE_TOO_BIG, "sticky");
    ws_inflater_free(in);
    /* exactly at the limit: fine */
    in = ws_inflater_new(big, false);
    cr_assert_eq(ws_inflater_feed(in, z, n, true), WS_INFLATE_OK);
    ws_inflater_free(in);
    /* no limit */
    in = ws_inflater_new(UINT64_MAX, false);
    cr_assert_eq(ws_inflater_feed(in, z, n, true), WS_INFLATE_OK);
    cr_assert_eq(ws_inflater_total(in), big);
    ws_inflater_free(in);
    free(z);
    free(zeros);
}

Test(codec, utf8_and_corruption) {
    uint8_t *z;
    size_t n = deflate_buf(15, "ok \xc3\x28", 5, &z);
    ws_inflater_t *in = ws_inflater_new(100, true);
    cr_assert_eq(ws_inflater_feed(in, z, n, true), WS_INFLATE_UTF8);
    ws_inflater_free(in);
    free(z);
    n = deflate_buf(15, "\xe2\x82", 2, &z); /* truncated euro sign */
    in = ws_inflater_new(100, true);
    cr_assert_eq(ws_inflater_feed(in, z, n, false), WS_INFLATE_OK);
    cr_assert_eq(ws_inflater_feed(in, NULL, 0, true), WS_INFLATE_UTF8);
    ws_inflater_free(in);
    in = ws_inflater_new(100, false); /* binary: no UTF-8 rule */
    cr_assert_eq(ws_inflater_feed(in, z, n, true), WS_INFLATE_OK);
    ws_inflater_free(in);
    free(z);
    in = ws_inflater_new(100, false);
    cr_assert_eq(ws_inflater_feed(in, (const uint8_t *)"\xff\xff\xff\xff", 4, true), WS_INFLATE_CORRUPT);
    ws_inflater_free(in);
}

/* Frame parser with RSV1 ----------------------------------------------------------- */

static size_t frame(uint8_t *out, unsigned b0, const uint8_t *payload, size_t n) {
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t h = 0;
    out[h++] = (uint8_t)b0;
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else {
        cr_assert_lt(n, 65536);
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) out[h + i] = payload[i] ^ mask[i & 3];
    return h + n;
}

/* Feeds buf byte by byte (or all at once); returns the last event that is not NONE. */
static ws_event_t feed(ws_parser_t *p, uint8_t *buf, size_t len, bool bytewise) {
    ws_event_t last = {0}, ev;
    size_t off = 0;
    while (off < len) {
        size_t n = bytewise ? 1 : len - off;
        size_t used = 0;
        while (used < n) {
            size_t c = ws_parser_feed(p, buf + off + used, n - used, &ev);
            used += c;
            if (ev.type == WS_EVENT_NONE) break;
            last = ev;
            if (ev.type == WS_EVENT_ERROR) return last;
        }
        off += n;
    }
    return last;
}

Test(parser, compressed_messages_whole_and_fragmented) {
    const char *text = "{\"hello\": \"world\", \"hello2\": \"world\", \"hello3\": \"world\"}";
    uint8_t *z;
    size_t n = deflate_buf(9, text, strlen(text), &z);
    for (int bytewise = 0; bytewise < 2; bytewise++) {
        uint8_t buf[1024];
        ws_parser_t p;
        ws_parser_init(&p, 1000);
        ws_parser_set_deflate(&p);
        size_t len = frame(buf, 0xC1, z, n); /* FIN + RSV1 + TEXT */
        ws_event_t ev = feed(&p, buf, len, bytewise);
        cr_assert_eq(ev.type, WS_EVENT_MESSAGE);
        cr_assert_eq(ev.opcode, WS_OP_TEXT);
        cr_assert_eq(ev.message_len, strlen(text));
        cr_assert_null(p.inflater, "no inflater once the message is done");
        /* fragmented: RSV1 on the first frame only, a ping in between */
        len = frame(buf, 0x42, z, 3);
        len += frame(buf + len, 0x89, (const uint8_t *)"p", 1);
        len += frame(buf + len, 0x00, z + 3, 4);
        ev = feed(&p, buf, len, bytewise);
        cr_assert_eq(ev.type, WS_EVENT_PING);
        cr_assert_not_null(p.inflater, "held while the message is read");
        len = frame(buf, 0x80, z + 7, n - 7);
        ev = feed(&p, buf, len, bytewise);
        cr_assert_eq(ev.type, WS_EVENT_MESSAGE);
        cr_assert_eq(ev.opcode, WS_OP_BINARY);
        cr_assert_eq(ev.message_len, strlen(text));
        cr_assert_null(p.inflater);
        /* an uncompressed message on the same connection */
        len = frame(buf, 0x81, (const uint8_t *)"plain", 5);
        ev = feed(&p, buf, len, bytewise);
        cr_assert_eq(ev.type, WS_EVENT_MESSAGE);
        cr_assert_eq(ev.message_len, 5);
        ws_parser_free(&p);
    }
    free(z);
}

static uint16_t error_code(unsigned bits, const uint8_t *frames, size_t len, uint64_t max) {
    uint8_t *buf = malloc(len);
    memcpy(buf, frames, len);
    ws_parser_t p;
    ws_parser_init(&p, max);
    if (bits) ws_parser_set_deflate(&p);
    ws_event_t ev = feed(&p, buf, len, false);
    cr_assert_null(p.inflater, "no inflater after an error");
    ws_parser_free(&p);
    free(buf);
    return ev.type == WS_EVENT_ERROR ? ev.close_code : 0;
}

Test(parser, rsv_rules) {
    uint8_t buf[64];
    size_t len = frame(buf, 0xC1, (const uint8_t *)"\x03\x00", 2); /* empty, compressed */
    cr_assert_eq(error_code(0, buf, len, 100), 1002, "RSV1 without negotiation");
    cr_assert_eq(error_code(15, buf, len, 100), 0);
    len = frame(buf, 0xC9, NULL, 0); /* RSV1 on a ping */
    cr_assert_eq(error_code(15, buf, len, 100), 1002);
    len = frame(buf, 0xA1, NULL, 0); /* RSV2 */
    cr_assert_eq(error_code(15, buf, len, 100), 1002);
    len = frame(buf, 0x91, NULL, 0); /* RSV3 */
    cr_assert_eq(error_code(15, buf, len, 100), 1002);
    len = frame(buf, 0x01, (const uint8_t *)"a", 1); /* RSV1 on a continuation */
    len += frame(buf + len, 0xC0, (const uint8_t *)"b", 1);
    cr_assert_eq(error_code(15, buf, len, 100), 1002);
}

Test(parser, compressed_errors) {
    size_t big = 1 << 20;
    uint8_t *zeros = calloc(1, big), *z;
    size_t n = deflate_buf(15, zeros, big, &z);
    uint8_t buf[4096];
    size_t len = frame(buf, 0xC2, z, n);
    cr_assert_eq(error_code(15, buf, len, 65536), 1009, "zip bomb");
    cr_assert_eq(error_code(15, buf, len, big), 0);
    free(z);
    n = deflate_buf(15, "\xc3\x28", 2, &z);
    len = frame(buf, 0xC1, z, n);
    cr_assert_eq(error_code(15, buf, len, 100), 1007);
    len = frame(buf, 0xC2, z, n); /* binary: no UTF-8 rule */
    cr_assert_eq(error_code(15, buf, len, 100), 0);
    free(z);
    len = frame(buf, 0xC2, (const uint8_t *)"\xff\xff\xff", 3);
    cr_assert_eq(error_code(15, buf, len, 100), 1002, "corrupt stream");
    /* wire size: empty stored blocks inflate to nothing but are bounded */
    uint8_t empty[3000];
    for (size_t i = 0; i + 5 <= sizeof empty; i += 5) memcpy(empty + i, "\x00\x00\x00\xff\xff", 5);
    len = frame(buf, 0xC2, empty, 3000);
    cr_assert_eq(error_code(15, buf, len, 100), 1009);
    cr_assert_eq(ws_parser_wire_limit(100), 100 + 12 + 1024);
    cr_assert_eq(ws_parser_wire_limit(UINT64_MAX), UINT64_MAX);
    free(zeros);
}

Test(parser, free_mid_message) {
    uint8_t buf[64];
    size_t len = frame(buf, 0x41, (const uint8_t *)"\x4a", 1);
    ws_parser_t p;
    ws_parser_init(&p, 100);
    ws_parser_set_deflate(&p);
    ws_event_t ev = feed(&p, buf, len, false);
    cr_assert_eq(ev.type, WS_EVENT_NONE);
    cr_assert_not_null(p.inflater);
    ws_parser_free(&p); /* LeakSanitizer (SAN=1) checks it is gone */
    cr_assert_null(p.inflater);
    ws_parser_free(&p);
}
