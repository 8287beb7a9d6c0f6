/* libFuzzer target for permessage-deflate. The first byte picks what is fuzzed:
 *   even: the rest is a Sec-WebSocket-Extensions value: the parser either declines it
 *         or returns parameters in range, and its answer fits its buffer;
 *   odd:  byte 1 gives the message limit and text or binary, the rest is a
 *         client byte stream on a connection that negotiated compression, parsed all at
 *         once and one byte at a time: the two event sequences must be the same, no
 *         message may be over the limit, and no inflater may outlive the parser's
 *         ws_parser_free (LeakSanitizer). Then the same bytes are fed straight to an
 *         inflater as one compressed payload, whole and in two parts, which must agree. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/ws_deflate.h"
#include "protocol/ws_frame.h"
#include "protocol/ws_handshake.h"

#define MAX_EVENTS 2048

typedef struct rec {
    ws_event_type_t type;
    int opcode;
    uint64_t message_len;
    uint16_t close_code;
} rec_t;

static rec_t run_a[MAX_EVENTS], run_b[MAX_EVENTS];

/* A macro, so that a failure names its line. */
#define check(ok) do { if (!(ok)) { fprintf(stderr, "check failed line %d\n", __LINE__); abort(); } } while (0)

static void fuzz_offer(const uint8_t *data, size_t len) {
    ws_deflate_params_t p;
    if (ws_deflate_parse_offer((const char *)data, len, &p)) {
        check(p.enabled);
        check(p.server_bits >= WS_DEFLATE_MIN_BITS && p.server_bits <= WS_DEFLATE_MAX_BITS);
        check(p.client_bits >= 8 && p.client_bits <= 15);
        char out[WS_DEFLATE_RESPONSE_MAX];
        size_t n = ws_deflate_response(&p, out);
        check(n < sizeof out && strlen(out) == n);
        /* the answer is itself an acceptable offer with the same parameters */
        ws_deflate_params_t q;
        check(ws_deflate_parse_offer(out, n, &q));
        check(q.server_bits == p.server_bits);
    } else {
        check(!p.enabled);
    }
}

static size_t parse(uint8_t *buf, size_t len, uint64_t max, bool bytewise,
                    rec_t *recs) {
    ws_parser_t p;
    ws_parser_init(&p, max);
    ws_parser_set_deflate(&p);
    size_t nrec = 0, off = 0;
    bool failed = false;
    while (off < len && !failed && nrec < MAX_EVENTS) {
        size_t n = bytewise ? 1 : len - off;
        size_t used = 0;
        while (used < n && nrec < MAX_EVENTS) {
            ws_event_t ev;
            size_t c = ws_parser_feed(&p, buf + off + used, n - used, &ev);
            check(c <= n - used);
            used += c;
            if (ev.type == WS_EVENT_NONE) break;
            if (ev.type == WS_EVENT_MESSAGE) check(ev.message_len <= max);
            if (ev.type == WS_EVENT_ERROR) {
                check(ev.close_code == 1002 || ev.close_code == 1007 || ev.close_code == 1009 ||
                      ev.close_code == 1011);
                check(p.inflater == NULL);
                failed = true;
            }
            recs[nrec++] = (rec_t){ev.type, ev.opcode, ev.message_len, ev.close_code};
            if (failed) break;
        }
        off += n;
    }
    ws_parser_free(&p);
    return nrec;
}

static void fuzz_frames(const uint8_t *data, size_t len) {
    if (len < 1) return;
    static const uint64_t limits[] = {0, 1, 16, 125, 1000, 65536, 1 << 20, UINT64_MAX};
    uint64_t max = limits[(data[0] >> 3) & 7];
    bool text = data[0] >> 7;
    data++;
    len--;
    uint8_t *a = malloc(len ? len : 1), *b = malloc(len ? len : 1);
    memcpy(a, data, len);
    memcpy(b, data, len);
    size_t na = parse(a, len, max, false, run_a);
    size_t nb = parse(b, len, max, true, run_b);
    check(na == nb);
    for (size_t i = 0; i < na; i++)
        check(run_a[i].type == run_b[i].type && run_a[i].opcode == run_b[i].opcode &&
              run_a[i].message_len == run_b[i].message_len &&
              run_a[i].close_code == run_b[i].close_code);
    free(a);
    free(b);

    /* The raw bytes as one compressed payload, split at a data-chosen point. */
    size_t cut = len ? data[len - 1] % (len + 1) : 0;
    ws_inflater_t *x = ws_inflater_new(1 << 16, text);
    ws_inflater_t *y = ws_inflater_new(1 << 16, text);
    if (x && y) {
        ws_inflate_status_t sx = ws_inflater_feed(x, data, len, true);
        ws_inflate_status_t sy = ws_inflater_feed(y, data, cut, false);
        if (sy == WS_INFLATE_OK) sy = ws_inflater_feed(y, data + cut, len - cut, true);
        /* The first fault in the inflated stream wins, however the input is cut. */
        check(sx == sy);
        if (sx == WS_INFLATE_OK) check(ws_inflater_total(x) == ws_inflater_total(y));
        check(ws_inflater_total(x) <= (1 << 16) + 1);
    }
    ws_inflater_free(x);
    ws_inflater_free(y);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1)
        fuzz_frames(data + 1, size - 1);
    else
        fuzz_offer(data + 1, size - 1);
    return 0;
}
