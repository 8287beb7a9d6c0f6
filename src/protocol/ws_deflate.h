/* permessage-deflate (RFC 7692) codec, I/O-free: the deflater that compresses a
 * whole message at once for every recipient (no context takeover: each message
 * is a stream of its own, so the same bytes are valid for every connection that
 * negotiated the same server window), and the inflater that validates a
 * compressed client message while it is being read.
 *
 * Ownership: ws_deflater_new / ws_inflater_new return objects owned by the caller,
 * freed with ws_deflater_free / ws_inflater_free (NULL is a no-op). The worker keeps
 * one deflater per window size it has used (per thread); a connection owns an
 * inflater only while a compressed message is being read (ws_frame.c). */
#ifndef DSOCK_WS_DEFLATE_H
#define DSOCK_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Window sizes (log2) a deflater can be made for. zlib cannot deflate with an
 * 8-bit window (it silently uses 9), so an offer that demands 8 is declined. */
#define WS_DEFLATE_MIN_BITS 9
#define WS_DEFLATE_MAX_BITS 15

typedef struct ws_deflater ws_deflater_t;

/* A raw-deflate compressor with a 2^bits window (9..15), level 6, memLevel 8. */
ws_deflater_t *ws_deflater_new(unsigned bits);
void ws_deflater_free(ws_deflater_t *d);

/* An output size that ws_deflate_message never exceeds for n input bytes. */
size_t ws_deflate_bound(size_t n);

/* Compresses the whole message in[0..n) as one RFC 7692 payload (sync flush, the
 * trailing 00 00 ff ff removed; the deflater is reset first, so nothing of an
 * earlier message is referred to) into out (cap >= ws_deflate_bound(n)).
 * Returns the payload length, or 0 when zlib failed (out of memory). */
size_t ws_deflate_message(ws_deflater_t *d, const void *in, size_t n, uint8_t *out, size_t cap);

typedef struct ws_inflater ws_inflater_t;

/* What ws_inflater_feed found. */
typedef enum ws_inflate_status {
    WS_INFLATE_OK = 0,
    WS_INFLATE_CORRUPT = -1, /* not a valid deflate stream (close 1002) */
    WS_INFLATE_TOO_BIG = -2, /* inflated size over the limit (close 1009) */
    WS_INFLATE_UTF8 = -3,    /* text that is not UTF-8 (close 1007) */
} ws_inflate_status_t;

/* An inflater for one message: at most max_out inflated bytes, UTF-8 checked when
 * text. Returns NULL when zlib cannot allocate. Its window is always 32 KiB (15
 * bits), whatever window the client declared: zlib checks a distance against the
 * window only when it reaches back before the current output buffer, so with a
 * smaller window a client that overstepped it would be accepted or refused
 * depending on how its bytes were split; with the largest window every valid
 * deflate stream is accepted, however it arrives. The cost: ~7 KiB of state plus
 * the 32 KiB window (allocated at the first inflated byte), only while a compressed
 * message is being read. */
ws_inflater_t *ws_inflater_new(uint64_t max_out, bool text);
void ws_inflater_free(ws_inflater_t *z);

/* Inflates the next compressed bytes of the message (already unmasked); fin: they
 * are its last, so the 00 00 ff ff tail is appended and the text must end at a
 * code point boundary. The inflated bytes are counted and validated in a small
 * buffer and dropped (dsock discards client messages, docs/api.md); inflating stops
 * as soon as the limit is passed, so a zip bomb costs at most max_out bytes of work.
 * Bytes after the end of a stream that set BFINAL are ignored. Errors are sticky. */
ws_inflate_status_t ws_inflater_feed(ws_inflater_t *z, const uint8_t *in, size_t n, bool fin);

/* Inflated bytes so far. */
uint64_t ws_inflater_total(const ws_inflater_t *z);

#endif
