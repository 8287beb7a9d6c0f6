/* libFuzzer target for the WebSocket frame parser. The first two bytes choose the
 * message limit and the chunking; the rest is the client byte stream. It is parsed
 * all at once and in input-derived chunks, and the two event sequences (and, when
 * no error occurred, the unmasked buffers) must be identical. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/ws_frame.h"

#define MAX_EVENTS 4096

typedef struct rec {
    ws_event_type_t type;
    int opcode;
    uint64_t message_len;
    uint16_t close_code;
    const char *error;
    size_t payload_len;
    uint8_t payload[125];
} rec_t;

static rec_t run_a[MAX_EVENTS], run_b[MAX_EVENTS];

static void check(bool ok) {
    if (!ok) abort();
}

static void check_event(const ws_event_t *ev, uint64_t max) {
    switch (ev->type) {
    case WS_EVENT_MESSAGE:
        check(ev->opcode == WS_OP_TEXT || ev->opcode == WS_OP_BINARY);
        check(ev->message_len <= max);
        break;
    case WS_EVENT_PING:
    case WS_EVENT_PONG:
        check(ev->payload != NULL && ev->payload_len <= 125);
        break;
    case WS_EVENT_CLOSE:
        check(ev->payload != NULL && ev->payload_len <= 123);
        check(ev->close_code == WS_CLOSE_NO_STATUS ? ev->payload_len == 0 : ws_close_code_valid(ev->close_code));
        break;
    case WS_EVENT_ERROR:
        check(ev->error != NULL);
        check(ev->close_code == 1002 || ev->close_code == 1007 || ev->close_code == 1009);
        break;
    default:
        abort();
    }
}

/* chunk_src == NULL: all at once. Returns the number of events recorded. */
static size_t parse(uint8_t *buf, size_t len, uint64_t max, const uint8_t *chunk_src, size_t chunk_n,
                    rec_t *recs, bool *failed) {
    ws_parser_t p;
    ws_parser_init(&p, max);
    size_t nrec = 0, off = 0, k = 0;
    *failed = false;
    while (off < len && !*failed) {
        size_t n = len - off;
        if (chunk_src) {
            size_t c = 1 + chunk_src[k++ % chunk_n] % 17u;
            if (c < n) n = c;
        }
        size_t used = 0;
        while (used < n) {
            ws_event_t ev;
            size_t c = ws_parser_feed(&p, buf + off + used, n - used, &ev);
            check(c <= n - used);
            used += c;
            if (ev.type == WS_EVENT_NONE) {
                check(used == n);
                break;
            }
            check_event(&ev, max);
            if (nrec < MAX_EVENTS) {
                rec_t *r = &recs[nrec++];
                memset(r, 0, sizeof *r);
                r->type = ev.type;
                r->opcode = ev.opcode;
                r->message_len = ev.message_len;
                r->close_code = ev.close_code;
                r->error = ev.error;
                if (ev.type == WS_EVENT_PING || ev.type == WS_EVENT_PONG || ev.type == WS_EVENT_CLOSE) {
                    r->payload_len = ev.payload_len;
                    memcpy(r->payload, ev.payload, ev.payload_len);
                }
            }
            if (ev.type == WS_EVENT_ERROR) {
                *failed = true;
                /* Sticky. */
                ws_event_t again;
                check(ws_parser_feed(&p, buf, len, &again) == 0);
                check(again.type == WS_EVENT_ERROR && again.close_code == ev.close_code &&
                      again.error == ev.error);
                break;
            }
        }
        off += n;
    }
    return nrec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    uint64_t max = data[0] < 128 ? UINT64_MAX : (uint64_t)(data[0] - 127) * 3;
    const uint8_t *stream = data + 2;
    size_t len = size - 2;

    uint8_t *a = malloc(len + 1), *b = malloc(len + 1);
    memcpy(a, stream, len);
    memcpy(b, stream, len);
    bool fa, fb;
    size_t na = parse(a, len, max, NULL, 0, run_a, &fa);
    /* Chunk sizes come from the stream itself, offset by the second byte. */
    uint8_t salt = data[1];
    uint8_t chunks[64];
    for (size_t i = 0; i < sizeof chunks; i++) chunks[i] = (uint8_t)((len ? stream[i % len] : 0) + salt * i);
    size_t nb = parse(b, len, max, chunks, sizeof chunks, run_b, &fb);

    check(na == nb && fa == fb);
    for (size_t i = 0; i < na; i++) {
        const rec_t *x = &run_a[i], *y = &run_b[i];
        check(x->type == y->type && x->opcode == y->opcode && x->message_len == y->message_len &&
              x->close_code == y->close_code && x->error == y->error && x->payload_len == y->payload_len &&
              memcmp(x->payload, y->payload, x->payload_len) == 0);
    }
    if (!fa) check(memcmp(a, b, len) == 0);
    free(a);
    free(b);
    return 0;
}
