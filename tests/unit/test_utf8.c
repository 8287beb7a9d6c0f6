/* Unit tests for the incremental UTF-8 validator: boundary code points, every
 * class of invalid input, split feeding, and exhaustive comparison with a plain
 * decode-then-check reference over all inputs of up to three bytes. */
#include <criterion/criterion.h>
#include <string.h>

#include "protocol/utf8.h"
#include "../support/reference.h"

static size_t encode(uint32_t cp, uint8_t *o) {
    if (cp < 0x80) return o[0] = (uint8_t)cp, 1;
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | cp >> 6);
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | cp >> 12);
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | cp >> 18);
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

#define V(lit) utf8_valid((const uint8_t *)(lit), sizeof(lit) - 1)

Test(utf8, ascii_and_empty) {
    cr_assert(utf8_valid(NULL, 0));
    cr_assert(V(""));
    cr_assert(V("hello, world"));
    cr_assert(V("a long ASCII string that exercises the word-at-a-time path!!"));
    cr_assert(V("\x00\x7f"));
}

Test(utf8, boundary_code_points) {
    cr_assert(V("\xC2\x80"));             /* U+0080 */
    cr_assert(V("\xDF\xBF"));             /* U+07FF */
    cr_assert(V("\xE0\xA0\x80"));         /* U+0800 */
    cr_assert(V("\xED\x9F\xBF"));         /* U+D7FF */
    cr_assert(V("\xEE\x80\x80"));         /* U+E000 */
    cr_assert(V("\xEF\xBF\xBF"));         /* U+FFFF */
    cr_assert(V("\xF0\x90\x80\x80"));     /* U+10000 */
    cr_assert(V("\xF4\x8F\xBF\xBF"));     /* U+10FFFF */
    cr_assert(V("\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5")); /* Autobahn 6.2 */
}

Test(utf8, overlongs) {
    cr_assert_not(V("\xC0\x80"));
    cr_assert_not(V("\xC1\xBF"));
    cr_assert_not(V("\xE0\x80\x80"));
    cr_assert_not(V("\xE0\x9F\xBF"));
    cr_assert_not(V("\xF0\x80\x80\x80"));
    cr_assert_not(V("\xF0\x8F\xBF\xBF"));
    cr_assert_not(V("\xF8\x88\x80\x80\x80"));
}

Test(utf8, surrogates) {
    cr_assert_not(V("\xED\xA0\x80"));
    cr_assert_not(V("\xED\xAD\xBF"));
    cr_assert_not(V("\xED\xB0\x80"));
    cr_assert_not(V("\xED\xBF\xBF"));
    cr_assert_not(V("\xED\xA0\x80\xED\xB0\x80")); /* CESU-8 pair */
}

Test(utf8, above_max) {
    cr_assert_not(V("\xF4\x90\x80\x80"));
    cr_assert_not(V("\xF5\x80\x80\x80"));
    cr_assert_not(V("\xF7\xBF\xBF\xBF"));
    cr_assert_not(V("\xFE"));
    cr_assert_not(V("\xFF"));
}

Test(utf8, stray_and_bad_continuations) {
    cr_assert_not(V("\x80"));
    cr_assert_not(V("\xBF"));
    cr_assert_not(V("abc\x80"));
    cr_assert_not(V("\xC2\x80\x80"));
    cr_assert_not(V("\xC2\x41"));
    cr_assert_not(V("\xE1\x80\x41"));
    cr_assert_not(V("\xF1\x80\x80\xC0"));
}

Test(utf8, truncated_sequences) {
    static const char *cases[] = {"\xC2", "\xE0\xA0", "\xE1", "\xF0\x90\x80", "\xF4", "ok\xF1\x80"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const uint8_t *s = (const uint8_t *)cases[i];
        size_t n = strlen(cases[i]);
        cr_assert_not(utf8_valid(s, n), "case %zu", i);
        uint32_t st = utf8_feed(UTF8_ACCEPT, s, n);
        cr_assert(st != UTF8_ACCEPT && st != UTF8_REJECT, "case %zu: pending, not rejected", i);
    }
}

Test(utf8, reject_is_sticky) {
    uint32_t st = utf8_feed(UTF8_ACCEPT, (const uint8_t *)"\xFF", 1);
    cr_assert_eq(st, UTF8_REJECT);
    cr_assert_eq(utf8_feed(st, (const uint8_t *)"abc", 3), UTF8_REJECT);
    cr_assert_eq(utf8_feed(st, NULL, 0), UTF8_REJECT);
}

Test(utf8, every_code_point_split_everywhere) {
    uint8_t b[4];
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        size_t n = encode(cp, b);
        bool expect = !(cp >= 0xD800 && cp <= 0xDFFF);
        cr_assert_eq(utf8_valid(b, n), expect, "U+%04X", cp);
        if (!expect || n == 1 || (cp & 0xFFF) != 0x123) continue;
        for (size_t cut = 1; cut < n; cut++) {
            uint32_t st = utf8_feed(UTF8_ACCEPT, b, cut);
            cr_assert(st != UTF8_ACCEPT && st != UTF8_REJECT);
            cr_assert_eq(utf8_feed(st, b + cut, n - cut), UTF8_ACCEPT, "U+%04X cut %zu", cp, cut);
        }
    }
}

Test(utf8, exhaustive_up_to_three_bytes) {
    uint8_t b[3];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        cr_assert_eq(utf8_valid(b, 1), ref_utf8_valid(b, 1));
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            cr_assert_eq(utf8_valid(b, 2), ref_utf8_valid(b, 2), "%02x %02x", x, y);
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (uint8_t)z;
                bool r = ref_utf8_valid(b, 3);
                if (utf8_valid(b, 3) != r) cr_assert_fail("%02x %02x %02x: expected %d", x, y, z, r);
                /* Also split after the first byte: the state must carry over. */
                uint32_t st = utf8_feed(utf8_feed(UTF8_ACCEPT, b, 1), b + 1, 2);
                if ((st == UTF8_ACCEPT) != r) cr_assert_fail("split %02x %02x %02x", x, y, z);
            }
        }
    }
}

Test(utf8, four_byte_leads_against_reference) {
    static const uint8_t tails[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xF4, 0xFF};
    uint8_t b[4];
    for (unsigned x = 0xF0; x <= 0xFF; x++)
        for (size_t i = 0; i < sizeof tails; i++)
            for (size_t j = 0; j < sizeof tails; j++)
                for (size_t k = 0; k < sizeof tails; k++) {
                    b[0] = (uint8_t)x, b[1] = tails[i], b[2] = tails[j], b[3] = tails[k];
                    cr_assert_eq(utf8_valid(b, 4), ref_utf8_valid(b, 4), "%02x %02x %02x %02x", b[0], b[1],
                                 b[2], b[3]);
                }
}

Test(utf8, long_mixed_text_chunked) {
    uint8_t text[4096];
    size_t n = 0;
    uint32_t cp = 0x20;
    while (n + 4 <= sizeof text) {
        n += encode(cp, text + n);
        cp = (cp * 7919 + 13) % 0x110000;
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x41;
    }
    cr_assert(utf8_valid(text, n));
    for (size_t chunk = 1; chunk < 40; chunk++) {
        uint32_t st = UTF8_ACCEPT;
        for (size_t i = 0; i < n; i += chunk) st = utf8_feed(st, text + i, n - i < chunk ? n - i : chunk);
        cr_assert_eq(st, UTF8_ACCEPT, "chunk %zu", chunk);
    }
    text[n / 2] = 0xFF;
    cr_assert_not(utf8_valid(text, n));
}
