/* See validate.h for the rules and why. */
#include "protocol/validate.h"

#include "protocol/utf8.h"

ident_status_t ident_check(const char *s, size_t len) {
    if (!s || len == 0) return IDENT_EMPTY;
    const uint8_t *u = (const uint8_t *)s;
    if (!utf8_valid(u, len)) return IDENT_NOT_UTF8;
    for (size_t i = 0; i < len; i++) {
        if (u[i] < 0x20 || u[i] == 0x7f) return IDENT_CONTROL;
        /* In valid UTF-8, U+0080..U+009F is exactly C2 80..C2 9F. */
        if (u[i] == 0xc2 && i + 1 < len && u[i + 1] <= 0x9f) return IDENT_CONTROL;
    }
    return IDENT_OK;
}

bool parse_int64(const char *s, size_t len, int64_t *out) {
    if (!s || len == 0) return false;
    size_t i = 0;
    bool neg = false;
    if (s[0] == '+' || s[0] == '-') {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len) return false;
    /* Accumulate as a negative number: its range holds INT64_MIN. */
    int64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        int d = s[i] - '0';
        if (v < (INT64_MIN + d) / 10) return false;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN) return false;
        v = -v;
    }
    *out = v;
    return true;
}
