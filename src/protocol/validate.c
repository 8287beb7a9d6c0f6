/* See validate.h for the rules and why. */
#include "protocol/validate.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
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

void channel_list_free(char **list, size_t count) {
    for (size_t i = 0; i < count; i++) free(list[i]);
    free(list);
}

ident_status_t channel_list_parse(const char *s, size_t len, char ***out, size_t *count) {
    char **list = NULL;
    size_t n = 0, cap = 0;
    *out = NULL;
    *count = 0;
    for (size_t i = 0; i <= len;) {
        const char *comma = i < len ? memchr(s + i, ',', len - i) : NULL;
        size_t end = comma ? (size_t)(comma - s) : len;
        size_t item = end - i;
        if (item) {
            ident_status_t st = channel_name_check(s + i, item);
            if (st != IDENT_OK) {
                channel_list_free(list, n);
                return st;
            }
            bool dup = false;
            for (size_t k = 0; k < n && !dup; k++)
                dup = strlen(list[k]) == item && !memcmp(list[k], s + i, item);
            if (!dup) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 4;
                    list = mem_realloc(list, cap * sizeof *list);
                }
                list[n++] = mem_strndup(s + i, item);
            }
        }
        i = end + 1;
    }
    *out = list;
    *count = n;
    return IDENT_OK;
}
