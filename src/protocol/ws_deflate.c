/* permessage-deflate codec on zlib's raw deflate format (RFC 7692 7.2). */
#include "protocol/ws_deflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "protocol/utf8.h"

struct ws_deflater {
    z_stream s;
};

ws_deflater_t *ws_deflater_new(unsigned bits) {
    if (bits < WS_DEFLATE_MIN_BITS || bits > WS_DEFLATE_MAX_BITS) return NULL;
    ws_deflater_t *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    /* Negative window bits: raw deflate, no zlib header or checksum. */
    if (deflateInit2(&d->s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -(int)bits, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
        free(d);
        return NULL;
    }
    return d;
}

void ws_deflater_free(ws_deflater_t *d) {
    if (!d) return;
    deflateEnd(&d->s);
    free(d);
}

/* deflateBound's bound holds for Z_FINISH; a sync flush adds an empty stored block
 * (5 bytes) and at most a byte of bit padding. */
size_t ws_deflate_bound(size_t n) {
    return n + (n >> 12) + (n >> 14) + (n >> 25) + 13 + 6 + 16;
}

size_t ws_deflate_message(ws_deflater_t *d, const void *in, size_t n, uint8_t *out, size_t cap) {
    z_stream *s = &d->s;
    if (deflateReset(s) != Z_OK) return 0;
    s->next_in = (Bytef *)(uintptr_t)in;
    s->next_out = out;
    size_t in_left = n, out_left = cap;
    /* zlib counts in uInt: feed and drain in chunks a uInt holds. */
    for (;;) {
        uInt ci = in_left > 0x40000000u ? 0x40000000u : (uInt)in_left;
        uInt co = out_left > 0x40000000u ? 0x40000000u : (uInt)out_left;
        s->avail_in = ci;
        s->avail_out = co;
        int flush = ci == in_left ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        int r = deflate(s, flush);
        in_left -= ci - s->avail_in;
        out_left -= co - s->avail_out;
        if (r != Z_OK && r != Z_BUF_ERROR) return 0;
        if (flush == Z_SYNC_FLUSH && in_left == 0 && s->avail_out != 0) break;
        if (out_left == 0) return 0; /* cannot happen with cap >= ws_deflate_bound(n) */
    }
    size_t len = cap - out_left;
    /* A sync flush ends with an empty stored block: 00 00 ff ff, which the receiver
     * appends back (RFC 7692 7.2.1). */
    if (len < 4 || memcmp(out + len - 4, "\x00\x00\xff\xff", 4) != 0) return 0;
    return len - 4;
}

struct ws_inflater {
    z_stream s;
    uint64_t total;
    uint64_t max_out;
    uint32_t utf8;
    bool text;
    bool ended;      /* the stream set BFINAL and reached its end */
    int8_t failed;   /* a ws_inflate_status_t, sticky */
};

ws_inflater_t *ws_inflater_new(uint64_t max_out, bool text) {
    ws_inflater_t *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    if (inflateInit2(&z->s, -15) != Z_OK) {
        free(z);
        return NULL;
    }
    z->max_out = max_out;
    z->text = text;
    z->utf8 = UTF8_ACCEPT;
    return z;
}

void ws_inflater_free(ws_inflater_t *z) {
    if (!z) return;
    inflateEnd(&z->s);
    free(z);
}

uint64_t ws_inflater_total(const ws_inflater_t *z) { return z->total; }

static ws_inflate_status_t run(ws_inflater_t *z, const uint8_t *in, size_t n) {
    /* The inflated bytes are only looked at: a small buffer, reused. */
    uint8_t out[8192];
    z_stream *s = &z->s;
    while (n && !z->ended) {
        uInt ci = n > 0x40000000u ? 0x40000000u : (uInt)n;
        s->next_in = (Bytef *)(uintptr_t)in;
        s->avail_in = ci;
        do {
            /* One byte more than the limit allows: enough to prove it passed, so
             * no more than max_out + 1 bytes are ever inflated. */
            uint64_t room = z->max_out - z->total; /* total <= max_out here */
            uInt co = room < sizeof out - 1 ? (uInt)room + 1 : (uInt)sizeof out;
            s->next_out = out;
            s->avail_out = co;
            int r = inflate(s, Z_SYNC_FLUSH);
            size_t got = co - s->avail_out;
            /* The first fault in the inflated bytes wins, wherever the output was
             * cut: the bytes within the limit are validated before the limit is
             * judged, so the verdict does not depend on how the input was split. */
            size_t within = got > room ? (size_t)room : got;
            if (z->text && within) {
                z->utf8 = utf8_feed(z->utf8, out, within);
                if (z->utf8 == UTF8_REJECT) return WS_INFLATE_UTF8;
            }
            z->total += got;
            if (z->total > z->max_out) return WS_INFLATE_TOO_BIG;
            if (r == Z_STREAM_END) {
                z->ended = true;
                break;
            }
            if (r == Z_BUF_ERROR && got == 0) break; /* no progress: needs more input */
            if (r != Z_OK && r != Z_BUF_ERROR) return WS_INFLATE_CORRUPT;
        } while (s->avail_in || s->avail_out == 0);
        size_t used = ci - s->avail_in;
        in += used;
        n -= used;
        if (!z->ended && used < ci) return WS_INFLATE_CORRUPT; /* stuck: cannot happen */
    }
    return WS_INFLATE_OK;
}

ws_inflate_status_t ws_inflater_feed(ws_inflater_t *z, const uint8_t *in, size_t n, bool fin) {
    if (z->failed) return (ws_inflate_status_t)z->failed;
    ws_inflate_status_t st = run(z, in, n);
    if (st == WS_INFLATE_OK && fin) {
        static const uint8_t tail[4] = {0x00, 0x00, 0xff, 0xff};
        st = run(z, tail, sizeof tail);
        if (st == WS_INFLATE_OK && z->text && z->utf8 != UTF8_ACCEPT) st = WS_INFLATE_UTF8;
    }
    z->failed = (int8_t)st;
    return st;
}
