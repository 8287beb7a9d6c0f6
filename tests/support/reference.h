/* Independent reference implementations shared by the unit tests and the fuzz
 * targets: written apart from the code under test, so that comparing the two
 * catches mistakes in either. Header-only (static functions) because the unit
 * tests and the fuzz targets are separate programs. */
#ifndef DSOCK_TEST_REFERENCE_H
#define DSOCK_TEST_REFERENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* UTF-8 validity: decode each sequence by its lead byte's bit pattern, then reject
 * overlongs, surrogates and out-of-range values by code point arithmetic. */
static inline bool ref_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) len = 1, cp = c, min = 0;
        else if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F, min = 0x80;
        else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F, min = 0x800;
        else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07, min = 0x10000;
        else return false;
        if (n - i < len) return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += len;
    }
    return true;
}

/* base64url without padding (RFC 4648 5), as JWTs use it. Writes the text plus a
 * NUL to out (room for 4 * ceil(n / 3) + 1 bytes) and returns its length. */
static inline size_t ref_b64url(const void *data, size_t n, char *out) {
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const uint8_t *d = data;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        out[o++] = abc[v >> 18], out[o++] = abc[(v >> 12) & 63];
        out[o++] = abc[(v >> 6) & 63], out[o++] = abc[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)d[i] << 16;
        out[o++] = abc[v >> 18], out[o++] = abc[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
        out[o++] = abc[v >> 18], out[o++] = abc[(v >> 12) & 63], out[o++] = abc[(v >> 6) & 63];
    }
    out[o] = '\0';
    return o;
}

static inline int ref_hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A logfmt value as docs/logging.md defines it, decoded into out (at least as long
 * as the value): bare up to a space or the line's end, or quoted with the escapes
 * \n \r \t \" \\ \xHH (a raw byte) and \u00HH..\uHHHH (a code point, written as
 * UTF-8). *p is advanced past the value. Returns the decoded length, or -1 when the
 * value is unterminated or holds an unknown or malformed escape. */
static inline long ref_logfmt_unescape(const char **p, char *out) {
    const char *v = *p;
    long o = 0;
    if (*v != '"') {
        while (*v && *v != ' ' && *v != '\n') out[o++] = *v++;
        *p = v;
        return o;
    }
    for (v++; *v != '"'; v++) {
        if (!*v || *v == '\n') return -1;
        if (*v != '\\') {
            out[o++] = *v;
            continue;
        }
        v++;
        if (*v == 'n') out[o++] = '\n';
        else if (*v == 'r') out[o++] = '\r';
        else if (*v == 't') out[o++] = '\t';
        else if (*v == '"' || *v == '\\') out[o++] = *v;
        else if (*v == 'x') {
            int hi = ref_hexval(v[1]), lo = hi < 0 ? -1 : ref_hexval(v[2]);
            if (lo < 0) return -1;
            out[o++] = (char)(hi << 4 | lo);
            v += 2;
        } else if (*v == 'u') {
            unsigned cp = 0;
            for (int i = 1; i <= 4; i++) {
                int d = ref_hexval(v[i]);
                if (d < 0) return -1;
                cp = cp << 4 | (unsigned)d;
            }
            v += 4;
            if (cp < 0x80) {
                out[o++] = (char)cp;
            } else if (cp < 0x800) {
                out[o++] = (char)(0xc0 | cp >> 6);
                out[o++] = (char)(0x80 | (cp & 0x3f));
            } else {
                out[o++] = (char)(0xe0 | cp >> 12);
                out[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                out[o++] = (char)(0x80 | (cp & 0x3f));
            }
        } else {
            return -1;
        }
    }
    *p = v + 1;
    return o;
}

#endif
