/* Growable byte buffer. The buffer owns `data`; buf_free releases it and leaves
 * an empty buffer that may be reused. `data` is always NUL-terminated past `len`
 * (when non-NULL) so text can be passed to C string functions. */
#ifndef DSOCK_BUF_H
#define DSOCK_BUF_H

#include <stddef.h>

typedef struct buf {
    char *data;
    size_t len;
    size_t cap;
} buf_t;

#define BUF_INIT {NULL, 0, 0}

void buf_reserve(buf_t *b, size_t extra);
/* Room for extra more bytes (and the NUL) at exactly that size, not the next power
 * of two: for a total known in advance (an HTTP body's Content-Length). */
void buf_reserve_exact(buf_t *b, size_t extra);
void buf_append(buf_t *b, const void *data, size_t len);
void buf_append_str(buf_t *b, const char *s);
void buf_printf(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes (n <= len). */
void buf_consume(buf_t *b, size_t n);
void buf_reset(buf_t *b); /* len = 0, keeps memory */
void buf_free(buf_t *b);  /* releases memory */

#endif
