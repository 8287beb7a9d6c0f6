/* Incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, max U+10FFFF),
 * usable across fragment boundaries. I/O-free. */
#ifndef DSOCK_UTF8_H
#define DSOCK_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u  /* at a code point boundary, everything valid so far */
#define UTF8_REJECT 1u  /* invalid; sticky */

/* Feeds bytes; returns the new state. Start from UTF8_ACCEPT. Any other value
 * than UTF8_ACCEPT/UTF8_REJECT means "inside a multi-byte sequence". */
uint32_t utf8_feed(uint32_t state, const uint8_t *s, size_t n);

/* Whole-buffer check. */
bool utf8_valid(const uint8_t *s, size_t n);

#endif
