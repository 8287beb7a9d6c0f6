/* libFuzzer target for the UTF-8 validator: compares utf8_valid with a plain
 * decode-then-check reference, and incremental feeding at input-derived split
 * points with the one-shot result. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "protocol/utf8.h"
#include "../tests/support/reference.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    bool expect = ref_utf8_valid(data, size);
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
            if ((st == UTF8_ACCEPT) != ref_utf8_valid(data, i + 1)) abort();
        }
    }
    return 0;
}
