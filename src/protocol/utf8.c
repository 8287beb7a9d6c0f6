/* Incremental UTF-8 validator. Instead of a DFA table the state packs what the
 * next byte may be: the number of continuation bytes still owed and the allowed
 * range of the next one. Narrowing that range after the lead byte is what rejects
 * overlongs (E0/F0), surrogates (ED) and code points above U+10FFFF (F4). */
#include "protocol/utf8.h"

#include <string.h>

/* A pending state is (need << 16) | (lo << 8) | hi with need in 1..3, so it can
 * never collide with UTF8_ACCEPT (0) or UTF8_REJECT (1). */
#define PACK(need, lo, hi) (((uint32_t)(need) << 16) | ((uint32_t)(lo) << 8) | (uint32_t)(hi))

uint32_t utf8_feed(uint32_t state, const uint8_t *s, size_t n) {
    if (state == UTF8_REJECT) return UTF8_REJECT;
    const uint8_t *end = s + n;
    unsigned need = state >> 16;
    unsigned lo = (state >> 8) & 0xff;
    unsigned hi = state & 0xff;

    while (s < end) {
        if (need == 0) {
            /* Most text is ASCII: skip it a word at a time. */
            while (end - s >= 8) {
                uint64_t w;
                memcpy(&w, s, 8);
                if (w & 0x8080808080808080ull) break;
                s += 8;
            }
            if (s == end) break;
            unsigned c = *s++;
            if (c < 0x80) continue;
            if (c < 0xC2) return UTF8_REJECT; /* stray continuation, or overlong C0/C1 */
            if (c < 0xE0) {
                need = 1, lo = 0x80, hi = 0xBF;
            } else if (c < 0xF0) {
                need = 2;
                lo = c == 0xE0 ? 0xA0 : 0x80; /* E0 80..9F would be overlong */
                hi = c == 0xED ? 0x9F : 0xBF; /* ED A0..BF are the surrogates */
            } else if (c < 0xF5) {
                need = 3;
                lo = c == 0xF0 ? 0x90 : 0x80; /* F0 80..8F would be overlong */
                hi = c == 0xF4 ? 0x8F : 0xBF; /* F4 90.. is above U+10FFFF */
            } else {
                return UTF8_REJECT;
            }
        } else {
            unsigned c = *s++;
            if (c < lo || c > hi) return UTF8_REJECT;
            need--;
            lo = 0x80, hi = 0xBF;
        }
    }
    return need ? PACK(need, lo, hi) : UTF8_ACCEPT;
}

bool utf8_valid(const uint8_t *s, size_t n) {
    return utf8_feed(UTF8_ACCEPT, s, n) == UTF8_ACCEPT;
}
