/* libFuzzer target for the UTF-8 validator: compares utf8_valid with a plain
 * decode-then-check reference, and incremental feeding at input-derived split
 * points with the one-shot result. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "protocol/utf8.h"

/* Reference written independently of utf8.c: classify the lead byte by its bit
 * pattern, gather the continuation bits, then judge the code point value. */
static bool ref_valid(const uint8_t *s, size_t n) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bool expect = ref_valid(data, size);
    if (utf8_valid(data, size) != expect) abort();

    /* Split points from the bytes themselves, so the fuzzer controls them too. */
    uint32_t st = UTF8_ACCEPT;
    size_t off = 0, k = 0;
    while (off < size) {
        size_t n = 1 + (size_t)(data[k++ % size] % 11);
        if (n > size - off) n = size - off;
        st = utf8_feed(st, data + off, n);
        off += n;
        if (expect && st == UTF8_REJECT) abort();
    }
    if ((st == UTF8_ACCEPT) != expect) abort();

    /* For short inputs every prefix must agree too: a prefix ends in ACCEPT exactly
     * when it is valid on its own. */
    if (size <= 64) {
        st = UTF8_ACCEPT;
        for (size_t i = 0; i < size; i++) {
            st = utf8_feed(st, data + i, 1);
            if ((st == UTF8_ACCEPT) != ref_valid(data, i + 1)) abort();
        }
    }
    return 0;
}
