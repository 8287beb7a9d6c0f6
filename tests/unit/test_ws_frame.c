/* Unit tests for the WebSocket frame parser and encoder. Every input is parsed
 * all at once, byte by byte and in several other splits, and the event sequences
 * must be identical; text payloads must end up unmasked in place. Covers the RFC
 * 6455 5.7 examples and each protocol violation with its close code. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/utf8.h"
#include "protocol/ws_frame.h"

/* ---- frame builder ---- */

static const uint8_t MASK[4] = {0x37, 0xfa, 0x21, 0x3d};

typedef struct frame_opts {
    int fin;        /* 1 or 0 */
    int rsv;        /* bits 0x70 */
    bool unmasked;
    int len_form;   /* 0 minimal, 2 force 16-bit, 8 force 64-bit */
    uint64_t fake_len; /* when non-zero, written as the length instead of the real one */
} frame_opts_t;

typedef struct stream {
    uint8_t *data;
    size_t len, cap;
    uint8_t *plain; /* what data should look like after text frames are unmasked */
} stream_t;

static void st_put(stream_t *s, const uint8_t *wire, const uint8_t *plain, size_t n) {
    if (s->len + n > s->cap) {
        s->cap = (s->len + n) * 2 + 64;
        s->data = realloc(s->data, s->cap);
        s->plain = realloc(s->plain, s->cap);
    }
    memcpy(s->data + s->len, wire, n);
    memcpy(s->plain + s->len, plain, n);
    s->len += n;
}

static void st_free(stream_t *s) {
    free(s->data);
    free(s->plain);
    memset(s, 0, sizeof *s);
}

/* Appends a client frame. unmask_expected: the parser is expected to unmask the
 * payload in place (text data frames), so "plain" holds the clear text there. */
static void frame_ex(stream_t *s, int opcode, const void *payload, size_t len, frame_opts_t o,
                     bool unmask_expected) {
    uint8_t h[14];
    size_t hl = 0;
    uint64_t wl = o.fake_len ? o.fake_len : len;
    h[hl++] = (uint8_t)((o.fin ? 0x80 : 0) | o.rsv | opcode);
    uint8_t mbit = o.unmasked ? 0 : 0x80;
    int form = o.len_form ? o.len_form : (wl < 126 ? 0 : wl <= 0xffff ? 2 : 8);
    if (form == 0) {
        h[hl++] = (uint8_t)(mbit | wl);
    } else if (form == 2) {
        h[hl++] = mbit | 126;
        h[hl++] = (uint8_t)(wl >> 8);
        h[hl++] = (uint8_t)wl;
    } else {
        h[hl++] = mbit | 127;
        for (int i = 0; i < 8; i++) h[hl++] = (uint8_t)(wl >> (56 - 8 * i));
    }
    if (!o.unmasked) {
        memcpy(h + hl, MASK, 4);
        hl += 4;
    }
    st_put(s, h, h, hl);
    uint8_t *w = malloc(len + 1), *p = malloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        uint8_t c = ((const uint8_t *)payload)[i];
        w[i] = o.unmasked ? c : (uint8_t)(c ^ MASK[i & 3]);
        p[i] = unmask_expected ? c : w[i];
    }
    st_put(s, w, p, len);
    free(w);
    free(p);
}

static void frame(stream_t *s, int fin, int opcode, const char *payload, bool text_msg) {
    frame_opts_t o = {.fin = fin};
    frame_ex(s, opcode, payload, strlen(payload), o, text_msg);
}

/* ---- event recorder ---- */

typedef struct rec {
    ws_event_type_t type;
    int opcode;
    uint64_t message_len;
    uint8_t payload[125];
    size_t payload_len;
    uint16_t close_code;
    const char *error;
} rec_t;

#define MAX_RECS 256

typedef struct run {
    rec_t recs[MAX_RECS];
    size_t n;
} run_t;

static void record(run_t *r, const ws_event_t *ev) {
    cr_assert_lt(r->n, MAX_RECS);
    rec_t *x = &r->recs[r->n++];
    memset(x, 0, sizeof *x);
    x->type = ev->type;
    x->opcode = ev->opcode;
    x->message_len = ev->message_len;
    x->close_code = ev->close_code;
    x->error = ev->error;
    if (ev->type == WS_EVENT_PING || ev->type == WS_EVENT_PONG || ev->type == WS_EVENT_CLOSE) {
        cr_assert_not_null(ev->payload);
        cr_assert_leq(ev->payload_len, 125);
        memcpy(x->payload, ev->payload, ev->payload_len);
        x->payload_len = ev->payload_len;
    }
    if (ev->type == WS_EVENT_ERROR) cr_assert_not_null(ev->error);
}

/* Parses buf (modified in place) with the given split: chunk 0 = all at once,
 * chunk SIZE_MAX = pseudo-random chunk sizes from seed. */
static void parse(uint8_t *buf, size_t len, uint64_t max, size_t chunk, unsigned seed, run_t *r) {
    ws_parser_t p;
    ws_parser_init(&p, max);
    r->n = 0;
    size_t off = 0;
    bool failed = false;
    while (off < len && !failed) {
        size_t n = chunk == 0 ? len - off : chunk;
        if (chunk == SIZE_MAX) {
            seed = seed * 1103515245u + 12345u;
            n = 1 + (seed >> 16) % 23;
        }
        if (n > len - off) n = len - off;
        size_t used = 0;
        while (used < n) {
            ws_event_t ev;
            size_t c = ws_parser_feed(&p, buf + off + used, n - used, &ev);
            cr_assert_leq(c, n - used);
            used += c;
            if (ev.type == WS_EVENT_NONE) {
                cr_assert_eq(used, n, "NONE must mean the input was exhausted");
                break;
            }
            record(r, &ev);
            if (ev.type == WS_EVENT_ERROR) {
                failed = true;
                break;
            }
        }
        off += n;
        /* Every split but the reference one (all at once) drops the parser whenever
         * it is at rest and goes on with a fresh one, as the worker does: the events
         * must not change (check_stream compares them). */
        if (chunk != 0 && !failed && ws_parser_at_rest(&p)) {
            ws_parser_free(&p);
            ws_parser_init(&p, max);
        }
    }
    if (failed) {
        /* Sticky: the same error, nothing consumed, whatever comes next. */
        uint8_t more[3] = {0x81, 0x80, 0};
        ws_event_t ev;
        cr_assert_eq(ws_parser_feed(&p, more, sizeof more, &ev), 0);
        cr_assert_eq(ev.type, WS_EVENT_ERROR);
        cr_assert_eq(ev.close_code, r->recs[r->n - 1].close_code);
        cr_assert_str_eq(ev.error, r->recs[r->n - 1].error);
    }
}

static void assert_same_runs(const run_t *a, const run_t *b, const char *what) {
    cr_assert_eq(a->n, b->n, "%s: event count %zu vs %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const rec_t *x = &a->recs[i], *y = &b->recs[i];
        cr_assert_eq(x->type, y->type, "%s: event %zu type", what, i);
        cr_assert_eq(x->opcode, y->opcode, "%s: event %zu", what, i);
        cr_assert_eq(x->message_len, y->message_len, "%s: event %zu", what, i);
        cr_assert_eq(x->close_code, y->close_code, "%s: event %zu", what, i);
        cr_assert_eq(x->payload_len, y->payload_len, "%s: event %zu", what, i);
        cr_assert_eq(memcmp(x->payload, y->payload, x->payload_len), 0, "%s: event %zu", what, i);
        cr_assert_eq(x->error == NULL, y->error == NULL);
        if (x->error) cr_assert_str_eq(x->error, y->error);
    }
}

/* Parses the stream in every split and checks they agree; returns the
 * all-at-once run. When the stream is fully valid, also checks that text
 * payloads were unmasked in place. */
static void check_stream(const stream_t *s, uint64_t max, run_t *out) {
    static const size_t chunks[] = {0, 1, 2, 3, 5, 7, 13, 64, SIZE_MAX};
    uint8_t *buf = malloc(s->len + 1);
    run_t *r = malloc(sizeof *r);
    for (size_t i = 0; i < sizeof chunks / sizeof *chunks; i++) {
        for (unsigned seed = 1; seed <= (chunks[i] == SIZE_MAX ? 8u : 1u); seed++) {
            memcpy(buf, s->data, s->len);
            parse(buf, s->len, max, chunks[i], seed, i == 0 ? out : r);
            if (i > 0) {
                char what[64];
                snprintf(what, sizeof what, "chunk %zu seed %u", chunks[i], seed);
                assert_same_runs(out, r, what);
            }
            bool ok = true; /* no error and no close, after which input is ignored */
            for (size_t k = 0; k < out->n; k++)
                if (out->recs[k].type == WS_EVENT_ERROR || out->recs[k].type == WS_EVENT_CLOSE) ok = false;
            if (ok) cr_assert_eq(memcmp(buf, s->plain, s->len), 0, "text unmasked in place");
        }
    }
    free(r);
    free(buf);
}

static void expect_error(const stream_t *s, uint64_t max, uint16_t code, const char *error_part) {
    run_t *r = malloc(sizeof *r);
    check_stream(s, max, r);
    cr_assert_geq(r->n, 1);
    const rec_t *last = &r->recs[r->n - 1];
    cr_assert_eq(last->type, WS_EVENT_ERROR, "expected an error");
    cr_assert_eq(last->close_code, code, "close code %u, expected %u (%s)", last->close_code, code,
                 last->error);
    if (error_part) cr_assert(strstr(last->error, error_part), "error '%s'", last->error);
    free(r);
}

/* ---- RFC 6455 5.7 examples ---- */

Test(ws_frame, rfc_single_frame_masked_hello) {
    uint8_t wire[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    stream_t s = {0};
    st_put(&s, wire, wire, 6);
    st_put(&s, wire + 6, (const uint8_t *)"Hello", 5);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.recs[0].type, WS_EVENT_MESSAGE);
    cr_assert_eq(r.recs[0].opcode, WS_OP_TEXT);
    cr_assert_eq(r.recs[0].message_len, 5);

    /* All consumed by one call. */
    ws_parser_t p;
    ws_parser_init(&p, UINT64_MAX);
    ws_event_t ev;
    cr_assert_eq(ws_parser_feed(&p, wire, sizeof wire, &ev), sizeof wire);
    cr_assert_eq(ev.type, WS_EVENT_MESSAGE);
    cr_assert_eq(memcmp(wire + 6, "Hello", 5), 0);
    st_free(&s);
}

Test(ws_frame, rfc_unmasked_hello_rejected) {
    uint8_t wire[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    stream_t s = {0};
    st_put(&s, wire, wire, sizeof wire);
    expect_error(&s, UINT64_MAX, 1002, "unmasked");
    st_free(&s);
}

Test(ws_frame, rfc_fragmented_hello) {
    stream_t s = {0};
    frame(&s, 0, WS_OP_TEXT, "Hel", true);
    frame(&s, 1, WS_OP_CONT, "lo", true);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.recs[0].type, WS_EVENT_MESSAGE);
    cr_assert_eq(r.recs[0].opcode, WS_OP_TEXT);
    cr_assert_eq(r.recs[0].message_len, 5);
    st_free(&s);
}

Test(ws_frame, rfc_ping_and_pong) {
    stream_t s = {0};
    frame(&s, 1, WS_OP_PING, "Hello", false);
    frame(&s, 1, WS_OP_PONG, "Hello", false);
    frame(&s, 1, WS_OP_PING, "", false);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.n, 3);
    cr_assert_eq(r.recs[0].type, WS_EVENT_PING);
    cr_assert_eq(r.recs[0].payload_len, 5);
    cr_assert_eq(memcmp(r.recs[0].payload, "Hello", 5), 0);
    cr_assert_eq(r.recs[1].type, WS_EVENT_PONG);
    cr_assert_eq(memcmp(r.recs[1].payload, "Hello", 5), 0);
    cr_assert_eq(r.recs[2].type, WS_EVENT_PING);
    cr_assert_eq(r.recs[2].payload_len, 0);
    st_free(&s);
}

Test(ws_frame, binary_lengths_at_encoding_boundaries) {
    static const size_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    stream_t s = {0};
    uint8_t *payload = malloc(70000);
    for (size_t i = 0; i < 70000; i++) payload[i] = (uint8_t)(i * 31);
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++)
        frame_ex(&s, WS_OP_BINARY, payload, lens[i], (frame_opts_t){.fin = 1}, false);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.n, sizeof lens / sizeof *lens);
    for (size_t i = 0; i < r.n; i++) {
        cr_assert_eq(r.recs[i].type, WS_EVENT_MESSAGE);
        cr_assert_eq(r.recs[i].opcode, WS_OP_BINARY);
        cr_assert_eq(r.recs[i].message_len, lens[i]);
    }
    free(payload);
    st_free(&s);
}

Test(ws_frame, long_text_unmasked_and_validated) {
    /* Multi-byte characters across the word-at-a-time unmask and odd splits. */
    stream_t s = {0};
    char text[3000];
    size_t n = 0;
    while (n + 10 < sizeof text) {
        memcpy(text + n, "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80", 10);
        n += 10;
    }
    text[n] = 0;
    frame_ex(&s, WS_OP_TEXT, text, 1001, (frame_opts_t){.fin = 0}, true);
    frame_ex(&s, WS_OP_CONT, text + 1001, n - 1001, (frame_opts_t){.fin = 1}, true);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.recs[0].message_len, n);
    st_free(&s);
}

Test(ws_frame, empty_messages_and_fragments) {
    stream_t s = {0};
    frame(&s, 1, WS_OP_TEXT, "", true);
    frame(&s, 0, WS_OP_BINARY, "", false);
    frame(&s, 0, WS_OP_CONT, "", false);
    frame(&s, 1, WS_OP_CONT, "", false);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.n, 2);
    cr_assert_eq(r.recs[0].opcode, WS_OP_TEXT);
    cr_assert_eq(r.recs[0].message_len, 0);
    cr_assert_eq(r.recs[1].opcode, WS_OP_BINARY);
    cr_assert_eq(r.recs[1].message_len, 0);
    st_free(&s);
}

Test(ws_frame, one_event_per_call) {
    stream_t s = {0};
    frame(&s, 1, WS_OP_TEXT, "one", true);
    frame(&s, 1, WS_OP_PING, "p", false);
    frame(&s, 1, WS_OP_BINARY, "three", false);
    ws_parser_t p;
    ws_parser_init(&p, UINT64_MAX);
    ws_event_t ev;
    size_t c1 = ws_parser_feed(&p, s.data, s.len, &ev);
    cr_assert_eq(c1, 2 + 4 + 3);
    cr_assert_eq(ev.type, WS_EVENT_MESSAGE);
    size_t c2 = ws_parser_feed(&p, s.data + c1, s.len - c1, &ev);
    cr_assert_eq(c2, 2 + 4 + 1);
    cr_assert_eq(ev.type, WS_EVENT_PING);
    size_t c3 = ws_parser_feed(&p, s.data + c1 + c2, s.len - c1 - c2, &ev);
    cr_assert_eq(c1 + c2 + c3, s.len);
    cr_assert_eq(ev.type, WS_EVENT_MESSAGE);
    cr_assert_eq(ws_parser_feed(&p, s.data, 0, &ev), 0);
    cr_assert_eq(ev.type, WS_EVENT_NONE);
    st_free(&s);
}

/* ---- framing violations: 1002 ---- */

Test(ws_frame, reserved_bits) {
    for (int rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        stream_t s = {0};
        frame_ex(&s, WS_OP_TEXT, "x", 1, (frame_opts_t){.fin = 1, .rsv = rsv}, true);
        expect_error(&s, UINT64_MAX, 1002, "reserved");
        st_free(&s);
    }
    stream_t s = {0};
    frame_ex(&s, WS_OP_PING, "", 0, (frame_opts_t){.fin = 1, .rsv = 0x70}, false);
    expect_error(&s, UINT64_MAX, 1002, "reserved");
    st_free(&s);
}

Test(ws_frame, unknown_opcodes) {
    static const int ops[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        stream_t s = {0};
        frame_ex(&s, ops[i], "", 0, (frame_opts_t){.fin = 1}, false);
        expect_error(&s, UINT64_MAX, 1002, "opcode");
        st_free(&s);
    }
}

Test(ws_frame, unmasked_frames) {
    static const int ops[] = {WS_OP_TEXT, WS_OP_BINARY, WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE};
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        stream_t s = {0};
        frame_ex(&s, ops[i], "", 0, (frame_opts_t){.fin = 1, .unmasked = true}, false);
        expect_error(&s, UINT64_MAX, 1002, "unmasked");
        st_free(&s);
    }
    /* Unmasked continuation inside a message. */
    stream_t s = {0};
    frame(&s, 0, WS_OP_BINARY, "a", false);
    frame_ex(&s, WS_OP_CONT, "b", 1, (frame_opts_t){.fin = 1, .unmasked = true}, false);
    expect_error(&s, UINT64_MAX, 1002, "unmasked");
    st_free(&s);
}

Test(ws_frame, control_frame_too_long) {
    static const int ops[] = {WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE};
    uint8_t payload[126];
    memset(payload, 'a', sizeof payload);
    payload[0] = 0x03, payload[1] = 0xe8;
    for (size_t i = 0; i < 3; i++) {
        stream_t s = {0};
        frame_ex(&s, ops[i], payload, 126, (frame_opts_t){.fin = 1}, false);
        expect_error(&s, UINT64_MAX, 1002, "125");
        st_free(&s);
        /* 125 bytes is fine. */
        stream_t ok = {0};
        frame_ex(&ok, ops[i], payload, 125, (frame_opts_t){.fin = 1}, false);
        run_t r;
        check_stream(&ok, UINT64_MAX, &r);
        cr_assert_eq(r.n, 1);
        cr_assert_neq(r.recs[0].type, WS_EVENT_ERROR);
        cr_assert_eq(r.recs[0].payload_len, ops[i] == WS_OP_CLOSE ? 123 : 125);
        st_free(&ok);
    }
    /* Even a small length in the 16-bit form is too long for a control frame. */
    stream_t s = {0};
    frame_ex(&s, WS_OP_PING, "hi", 2, (frame_opts_t){.fin = 1, .len_form = 2}, false);
    expect_error(&s, UINT64_MAX, 1002, NULL);
    st_free(&s);
}

Test(ws_frame, fragmented_control_frames) {
    static const int ops[] = {WS_OP_PING, WS_OP_PONG, WS_OP_CLOSE};
    for (size_t i = 0; i < 3; i++) {
        stream_t s = {0};
        frame_ex(&s, ops[i], "", 0, (frame_opts_t){.fin = 0}, false);
        expect_error(&s, UINT64_MAX, 1002, "fragmented control");
        st_free(&s);
    }
}

Test(ws_frame, continuation_without_message) {
    stream_t s = {0};
    frame(&s, 1, WS_OP_CONT, "x", false);
    expect_error(&s, UINT64_MAX, 1002, "continuation");
    st_free(&s);
    /* ... also right after a completed message. */
    stream_t t = {0};
    frame(&t, 0, WS_OP_TEXT, "a", true);
    frame(&t, 1, WS_OP_CONT, "b", true);
    frame(&t, 0, WS_OP_CONT, "c", false);
    expect_error(&t, UINT64_MAX, 1002, "continuation");
    st_free(&t);
}

Test(ws_frame, new_message_while_fragmented) {
    static const int ops[] = {WS_OP_TEXT, WS_OP_BINARY};
    for (size_t i = 0; i < 2; i++) {
        stream_t s = {0};
        frame(&s, 0, WS_OP_BINARY, "a", false);
        frame(&s, 1, ops[i], "b", ops[i] == WS_OP_TEXT);
        expect_error(&s, UINT64_MAX, 1002, "inside a fragmented");
        st_free(&s);
    }
}

Test(ws_frame, control_frames_interleaved_in_fragmented_message) {
    stream_t s = {0};
    frame(&s, 0, WS_OP_TEXT, "frag\xE2\x82", true); /* a code point split across frames */
    frame(&s, 1, WS_OP_PING, "ping", false);
    frame(&s, 0, WS_OP_CONT, "\xAC", true);
    frame(&s, 1, WS_OP_PONG, "pong", false);
    frame(&s, 1, WS_OP_CONT, "end", true);
    frame(&s, 1, WS_OP_BINARY, "next", false);
    frame(&s, 1, WS_OP_CLOSE, "\x03\xe8", false);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.n, 5);
    cr_assert_eq(r.recs[0].type, WS_EVENT_PING);
    cr_assert_eq(r.recs[1].type, WS_EVENT_PONG);
    cr_assert_eq(r.recs[2].type, WS_EVENT_MESSAGE);
    cr_assert_eq(r.recs[2].opcode, WS_OP_TEXT);
    cr_assert_eq(r.recs[2].message_len, 6 + 1 + 3);
    cr_assert_eq(r.recs[3].opcode, WS_OP_BINARY);
    cr_assert_eq(r.recs[4].type, WS_EVENT_CLOSE);
    cr_assert_eq(r.recs[4].close_code, 1000);
    st_free(&s);
}

Test(ws_frame, length_top_bit) {
    stream_t s = {0};
    frame_ex(&s, WS_OP_BINARY, "", 0, (frame_opts_t){.fin = 1, .fake_len = 0x8000000000000000ull}, false);
    expect_error(&s, UINT64_MAX, 1002, "top bit");
    st_free(&s);
    stream_t t = {0};
    frame_ex(&t, WS_OP_BINARY, "", 0, (frame_opts_t){.fin = 1, .fake_len = UINT64_MAX}, false);
    expect_error(&t, UINT64_MAX, 1002, "top bit");
    st_free(&t);
}

Test(ws_frame, non_minimal_lengths) {
    stream_t a = {0};
    frame_ex(&a, WS_OP_BINARY, "hello", 5, (frame_opts_t){.fin = 1, .len_form = 2}, false);
    expect_error(&a, UINT64_MAX, 1002, "minimal");
    st_free(&a);
    stream_t b = {0};
    uint8_t big[300] = {0};
    frame_ex(&b, WS_OP_BINARY, big, 125, (frame_opts_t){.fin = 1, .len_form = 2}, false);
    expect_error(&b, UINT64_MAX, 1002, "minimal");
    st_free(&b);
    stream_t c = {0};
    frame_ex(&c, WS_OP_BINARY, big, 300, (frame_opts_t){.fin = 1, .len_form = 8}, false);
    expect_error(&c, UINT64_MAX, 1002, "minimal");
    st_free(&c);
    stream_t d = {0};
    frame_ex(&d, WS_OP_BINARY, "", 0, (frame_opts_t){.fin = 1, .len_form = 8, .fake_len = 65535}, false);
    expect_error(&d, UINT64_MAX, 1002, "minimal");
    st_free(&d);
}

/* ---- UTF-8: 1007 ---- */

Test(ws_frame, invalid_utf8_in_text) {
    static const char *bad[] = {"\xFF", "abc\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "ok\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        stream_t s = {0};
        frame(&s, 1, WS_OP_TEXT, bad[i], true);
        expect_error(&s, UINT64_MAX, 1007, "UTF-8");
        st_free(&s);
    }
    /* The same bytes in a binary message are fine. */
    stream_t b = {0};
    frame(&b, 1, WS_OP_BINARY, "\xFF\xFE", false);
    run_t r;
    check_stream(&b, UINT64_MAX, &r);
    cr_assert_eq(r.recs[0].type, WS_EVENT_MESSAGE);
    st_free(&b);
}

Test(ws_frame, invalid_utf8_fails_fast) {
    /* The frame announces 1000 bytes; the error must come on the bad byte, without
     * waiting for the rest of the frame. */
    uint8_t payload[1000];
    memset(payload, 'a', sizeof payload);
    payload[3] = 0xFF;
    stream_t s = {0};
    frame_ex(&s, WS_OP_TEXT, payload, sizeof payload, (frame_opts_t){.fin = 1}, true);
    ws_parser_t p;
    ws_parser_init(&p, UINT64_MAX);
    ws_event_t ev;
    size_t hdr = 2 + 2 + 4;
    size_t c = ws_parser_feed(&p, s.data, hdr + 3, &ev);
    cr_assert_eq(c, hdr + 3);
    cr_assert_eq(ev.type, WS_EVENT_NONE);
    ws_parser_feed(&p, s.data + c, 1, &ev);
    cr_assert_eq(ev.type, WS_EVENT_ERROR);
    cr_assert_eq(ev.close_code, 1007);
    st_free(&s);

    /* Across frames: the continuation breaks a sequence begun in the first frame. */
    stream_t t = {0};
    frame(&t, 0, WS_OP_TEXT, "abc\xE2\x82", true);
    frame(&t, 0, WS_OP_CONT, "A", true);
    frame(&t, 1, WS_OP_CONT, "rest", true);
    expect_error(&t, UINT64_MAX, 1007, "invalid UTF-8");
    st_free(&t);
}

Test(ws_frame, truncated_utf8_at_message_end) {
    stream_t s = {0};
    frame(&s, 1, WS_OP_TEXT, "abc\xE2\x82", true);
    expect_error(&s, UINT64_MAX, 1007, "ends inside");
    st_free(&s);
    stream_t t = {0};
    frame(&t, 0, WS_OP_TEXT, "abc\xF0\x9F", true);
    frame(&t, 1, WS_OP_PING, "", false);
    frame(&t, 1, WS_OP_CONT, "", true);
    expect_error(&t, UINT64_MAX, 1007, "ends inside");
    st_free(&t);
}

/* ---- size limit: 1009 ---- */

Test(ws_frame, message_too_big_single_frame) {
    stream_t ok = {0};
    frame(&ok, 1, WS_OP_BINARY, "0123456789", false);
    run_t r;
    check_stream(&ok, 10, &r);
    cr_assert_eq(r.recs[0].type, WS_EVENT_MESSAGE);
    st_free(&ok);

    stream_t s = {0};
    frame(&s, 1, WS_OP_BINARY, "0123456789A", false);
    expect_error(&s, 10, 1009, "too big");
    /* Detected from the two header bytes alone. */
    ws_parser_t p;
    ws_parser_init(&p, 10);
    ws_event_t ev;
    cr_assert_eq(ws_parser_feed(&p, s.data, 2, &ev), 2);
    cr_assert_eq(ev.type, WS_EVENT_ERROR);
    cr_assert_eq(ev.close_code, 1009);
    st_free(&s);

    /* 16-bit length: detected before the mask arrives. */
    uint8_t big[300] = {0};
    stream_t t = {0};
    frame_ex(&t, WS_OP_TEXT, big, 300, (frame_opts_t){.fin = 1}, true);
    ws_parser_init(&p, 200);
    cr_assert_eq(ws_parser_feed(&p, t.data, 4, &ev), 4);
    cr_assert_eq(ev.type, WS_EVENT_ERROR);
    cr_assert_eq(ev.close_code, 1009);
    expect_error(&t, 200, 1009, NULL);
    st_free(&t);
}

Test(ws_frame, message_too_big_fragmented) {
    stream_t s = {0};
    frame(&s, 0, WS_OP_TEXT, "012345", true);
    frame(&s, 1, WS_OP_PING, "control frames do not count", false);
    frame(&s, 1, WS_OP_CONT, "6789", true);
    frame(&s, 0, WS_OP_BINARY, "012345", false);
    frame(&s, 1, WS_OP_CONT, "67890", false);
    run_t *r = malloc(sizeof *r);
    check_stream(&s, 10, r);
    cr_assert_eq(r->n, 3);
    cr_assert_eq(r->recs[0].type, WS_EVENT_PING);
    cr_assert_eq(r->recs[1].type, WS_EVENT_MESSAGE);
    cr_assert_eq(r->recs[1].message_len, 10);
    cr_assert_eq(r->recs[2].type, WS_EVENT_ERROR);
    cr_assert_eq(r->recs[2].close_code, 1009);
    free(r);
    st_free(&s);
}

Test(ws_frame, no_limit_when_zero) {
    stream_t s = {0};
    frame_ex(&s, WS_OP_BINARY, "", 0, (frame_opts_t){.fin = 0, .fake_len = 0x7fffffffffffffffull}, false);
    ws_parser_t p;
    ws_parser_init(&p, UINT64_MAX);
    ws_event_t ev;
    cr_assert_eq(ws_parser_feed(&p, s.data, s.len, &ev), s.len);
    cr_assert_eq(ev.type, WS_EVENT_NONE);
    st_free(&s);
}

/* ---- close frames ---- */

Test(ws_frame, close_empty_reports_1005) {
    stream_t s = {0};
    frame(&s, 1, WS_OP_CLOSE, "", false);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.recs[0].type, WS_EVENT_CLOSE);
    cr_assert_eq(r.recs[0].close_code, WS_CLOSE_NO_STATUS);
    cr_assert_eq(r.recs[0].payload_len, 0);
    st_free(&s);
}

Test(ws_frame, close_with_code_and_reason) {
    stream_t s = {0};
    frame_ex(&s, WS_OP_CLOSE, "\x03\xe9going \xC3\xA9", 10, (frame_opts_t){.fin = 1}, false);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.recs[0].type, WS_EVENT_CLOSE);
    cr_assert_eq(r.recs[0].close_code, 1001);
    cr_assert_eq(r.recs[0].payload_len, 8);
    cr_assert_eq(memcmp(r.recs[0].payload, "going \xC3\xA9", 8), 0);
    st_free(&s);
}

Test(ws_frame, close_one_byte_payload) {
    stream_t s = {0};
    frame_ex(&s, WS_OP_CLOSE, "\x03", 1, (frame_opts_t){.fin = 1}, false);
    expect_error(&s, UINT64_MAX, 1002, "one byte");
    st_free(&s);
}

Test(ws_frame, close_codes) {
    static const uint16_t bad[] = {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    static const uint16_t good[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                    1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        uint8_t pl[2] = {(uint8_t)(bad[i] >> 8), (uint8_t)bad[i]};
        stream_t s = {0};
        frame_ex(&s, WS_OP_CLOSE, pl, 2, (frame_opts_t){.fin = 1}, false);
        expect_error(&s, UINT64_MAX, 1002, "close code");
        st_free(&s);
        cr_assert_not(ws_close_code_valid(bad[i]), "%u", bad[i]);
    }
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        uint8_t pl[2] = {(uint8_t)(good[i] >> 8), (uint8_t)good[i]};
        stream_t s = {0};
        frame_ex(&s, WS_OP_CLOSE, pl, 2, (frame_opts_t){.fin = 1}, false);
        run_t r;
        check_stream(&s, UINT64_MAX, &r);
        cr_assert_eq(r.recs[0].type, WS_EVENT_CLOSE);
        cr_assert_eq(r.recs[0].close_code, good[i]);
        st_free(&s);
        cr_assert(ws_close_code_valid(good[i]), "%u", good[i]);
    }
}

Test(ws_frame, close_reason_invalid_utf8) {
    stream_t s = {0};
    frame_ex(&s, WS_OP_CLOSE, "\x03\xe8\xFF", 3, (frame_opts_t){.fin = 1}, false);
    expect_error(&s, UINT64_MAX, 1007, "close reason");
    st_free(&s);
    stream_t t = {0};
    frame_ex(&t, WS_OP_CLOSE, "\x03\xe8\xC3", 3, (frame_opts_t){.fin = 1}, false);
    expect_error(&t, UINT64_MAX, 1007, "close reason");
    st_free(&t);
}

Test(ws_frame, input_after_close_is_ignored) {
    stream_t s = {0};
    frame(&s, 1, WS_OP_CLOSE, "\x03\xe8", false);
    size_t close_len = s.len;
    frame(&s, 1, WS_OP_TEXT, "after", true);
    st_put(&s, (const uint8_t *)"\xFF\xFF", (const uint8_t *)"\xFF\xFF", 2);
    ws_parser_t p;
    ws_parser_init(&p, UINT64_MAX);
    ws_event_t ev;
    cr_assert_eq(ws_parser_feed(&p, s.data, s.len, &ev), close_len);
    cr_assert_eq(ev.type, WS_EVENT_CLOSE);
    cr_assert_eq(ws_parser_feed(&p, s.data + close_len, s.len - close_len, &ev), s.len - close_len);
    cr_assert_eq(ev.type, WS_EVENT_NONE);
    st_free(&s);
}

Test(ws_frame, close_inside_fragmented_message) {
    stream_t s = {0};
    frame(&s, 0, WS_OP_TEXT, "part", true);
    frame(&s, 1, WS_OP_CLOSE, "\x03\xe8", false);
    run_t r;
    check_stream(&s, UINT64_MAX, &r);
    cr_assert_eq(r.n, 1);
    cr_assert_eq(r.recs[0].type, WS_EVENT_CLOSE);
    st_free(&s);
}

/* ---- systematic split invariance over random valid and invalid streams ---- */

static unsigned rnd(unsigned *seed) {
    *seed = *seed * 1664525u + 1013904223u;
    return *seed >> 8;
}

Test(ws_frame, random_streams_split_invariance) {
    static const char *texts[] = {"", "a", "h\xC3\xA9llo", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xFF"};
    for (unsigned iter = 0; iter < 200; iter++) {
        unsigned seed = iter * 7919 + 1;
        stream_t s = {0};
        bool in_msg = false;
        int nframes = 1 + (int)(rnd(&seed) % 12);
        for (int f = 0; f < nframes; f++) {
            unsigned k = rnd(&seed) % 10;
            /* Mostly valid, sometimes a corruption to exercise the error paths. */
            const char *t = texts[rnd(&seed) % (iter % 3 ? 5 : 6)];
            if (k < 2) {
                frame(&s, 1, WS_OP_PING, t, false);
            } else if (k == 2 && iter % 5 == 0) {
                frame_ex(&s, WS_OP_CLOSE, "\x03\xe8", 2, (frame_opts_t){.fin = 1}, false);
            } else if (k == 3 && iter % 7 == 0) {
                frame_ex(&s, 1 + (int)(rnd(&seed) % 15), "", 0, (frame_opts_t){.fin = 1, .rsv = 0}, false);
            } else if (!in_msg) {
                int fin = rnd(&seed) & 1;
                frame(&s, fin, WS_OP_TEXT, t, true);
                in_msg = !fin;
            } else {
                int fin = rnd(&seed) & 1;
                frame(&s, fin, WS_OP_CONT, t, true);
                in_msg = !fin;
            }
        }
        run_t *r = malloc(sizeof *r);
        check_stream(&s, iter % 4 == 0 ? 8 : UINT64_MAX, r);
        free(r);
        st_free(&s);
    }
}

Test(ws_frame, at_rest_only_between_messages) {
    ws_parser_t p;
    ws_parser_init(&p, UINT64_MAX);
    cr_expect(ws_parser_at_rest(&p));
    stream_t s = {0};
    frame(&s, 0, WS_OP_TEXT, "hel", true); /* a fragmented message ... */
    frame(&s, 1, WS_OP_PING, "p", false);  /* ... with a ping inside ... */
    frame(&s, 1, WS_OP_CONT, "lo", true);  /* ... and its end */
    size_t first = 2 + 4 + 3, ping = 2 + 4 + 1;
    ws_event_t ev;
    /* Half a header, then the rest of the first frame: a message is in progress. */
    cr_expect_eq(ws_parser_feed(&p, s.data, 1, &ev), 1);
    cr_expect_not(ws_parser_at_rest(&p));
    cr_expect_eq(ws_parser_feed(&p, s.data + 1, first - 1, &ev), first - 1);
    cr_expect_eq(ev.type, WS_EVENT_NONE);
    cr_expect_not(ws_parser_at_rest(&p));
    cr_expect_eq(ws_parser_feed(&p, s.data + first, ping, &ev), ping);
    cr_expect_eq(ev.type, WS_EVENT_PING);
    cr_expect_not(ws_parser_at_rest(&p), "the ping came inside a message");
    /* Mid-payload of the last frame, then its end. */
    cr_expect_eq(ws_parser_feed(&p, s.data + first + ping, 7, &ev), 7);
    cr_expect_not(ws_parser_at_rest(&p));
    size_t rest = s.len - first - ping - 7;
    cr_expect_eq(ws_parser_feed(&p, s.data + first + ping + 7, rest, &ev), rest);
    cr_expect_eq(ev.type, WS_EVENT_MESSAGE);
    cr_expect_eq(ev.message_len, 5);
    cr_expect(ws_parser_at_rest(&p));
    st_free(&s);
    /* A close or an error is final: not at rest. */
    frame_ex(&s, WS_OP_CLOSE, "\x03\xe8", 2, (frame_opts_t){.fin = 1}, false);
    cr_expect_eq(ws_parser_feed(&p, s.data, s.len, &ev), s.len);
    cr_expect_eq(ev.type, WS_EVENT_CLOSE);
    cr_expect_not(ws_parser_at_rest(&p));
    st_free(&s);
    ws_parser_init(&p, UINT64_MAX);
    frame_ex(&s, WS_OP_TEXT, "x", 1, (frame_opts_t){.fin = 1, .unmasked = true}, false);
    ws_parser_feed(&p, s.data, s.len, &ev);
    cr_expect_eq(ev.type, WS_EVENT_ERROR);
    cr_expect_not(ws_parser_at_rest(&p));
    st_free(&s);
    ws_parser_free(&p);
}

/* ---- encoder ---- */

Test(ws_frame, frame_header_encoding) {
    uint8_t h[WS_FRAME_HEADER_MAX];
    cr_assert_eq(ws_frame_header(h, WS_OP_TEXT, 0), 2);
    cr_assert_eq(h[0], 0x81);
    cr_assert_eq(h[1], 0);
    cr_assert_eq(ws_frame_header(h, WS_OP_BINARY, 125), 2);
    cr_assert_eq(h[0], 0x82);
    cr_assert_eq(h[1], 125);
    cr_assert_eq(ws_frame_header(h, WS_OP_TEXT, 126), 4);
    cr_assert_eq(h[1], 126);
    cr_assert_eq(h[2], 0);
    cr_assert_eq(h[3], 126);
    cr_assert_eq(ws_frame_header(h, WS_OP_TEXT, 65535), 4);
    cr_assert_eq(h[2], 0xff);
    cr_assert_eq(h[3], 0xff);
    cr_assert_eq(ws_frame_header(h, WS_OP_TEXT, 65536), 10);
    cr_assert_eq(h[1], 127);
    static const uint8_t l65536[8] = {0, 0, 0, 0, 0, 1, 0, 0};
    cr_assert_eq(memcmp(h + 2, l65536, 8), 0);
    cr_assert_eq(ws_frame_header(h, WS_OP_CLOSE, 0x0102030405ull), 10);
    static const uint8_t lbig[8] = {0, 0, 0, 1, 2, 3, 4, 5};
    cr_assert_eq(h[0], 0x88);
    cr_assert_eq(memcmp(h + 2, lbig, 8), 0);
}

Test(ws_frame, close_payload_encoding) {
    uint8_t out[125];
    cr_assert_eq(ws_close_payload(out, 1000, NULL), 2);
    cr_assert_eq(out[0], 0x03);
    cr_assert_eq(out[1], 0xe8);
    cr_assert_eq(ws_close_payload(out, 1009, "too big"), 9);
    cr_assert_eq(out[0], 0x03);
    cr_assert_eq(out[1], 0xf1);
    cr_assert_eq(memcmp(out + 2, "too big", 7), 0);

    char reason[200];
    memset(reason, 'x', 122);
    strcpy(reason + 122, "\xC3\xA9tail"); /* é straddles the 123-byte cut */
    size_t n = ws_close_payload(out, 1000, reason);
    cr_assert_eq(n, 2 + 122);
    cr_assert(utf8_valid(out + 2, n - 2));

    memset(reason, 'y', 150);
    reason[150] = 0;
    cr_assert_eq(ws_close_payload(out, 1000, reason), 125);

    memset(reason, 'z', 123);
    reason[123] = 0;
    cr_assert_eq(ws_close_payload(out, 1000, reason), 125);

    cr_assert_eq(ws_close_payload(out, 1000, "bad \xFF"), 2, "invalid UTF-8 reason dropped");

    /* The encoded close parses back. */
    uint8_t wire[2 + 4 + 125];
    n = ws_close_payload(out, 1001, "bye");
    wire[0] = 0x88;
    wire[1] = (uint8_t)(0x80 | n);
    memcpy(wire + 2, MASK, 4);
    for (size_t i = 0; i < n; i++) wire[6 + i] = out[i] ^ MASK[i & 3];
    ws_parser_t p;
    ws_parser_init(&p, UINT64_MAX);
    ws_event_t ev;
    ws_parser_feed(&p, wire, 6 + n, &ev);
    cr_assert_eq(ev.type, WS_EVENT_CLOSE);
    cr_assert_eq(ev.close_code, 1001);
    cr_assert_eq(ev.payload_len, 3);
}
