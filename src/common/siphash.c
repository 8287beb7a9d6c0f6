/* SipHash-2-4 as specified in sections 2 and 3 of the SipHash paper. The message is
 * read as little-endian 64-bit words; the last word carries the 0-7 trailing bytes
 * and, in its top byte, the message length mod 256. */
#include "common/siphash.h"

#include <endian.h>
#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* One SipRound: the ARX network of the paper's figure 2.1. */
#define SIPROUND(v0, v1, v2, v3) \
    do {                         \
        v0 += v1;                \
        v2 += v3;                \
        v1 = ROTL(v1, 13);       \
        v3 = ROTL(v3, 16);       \
        v1 ^= v0;                \
        v3 ^= v2;                \
        v0 = ROTL(v0, 32);       \
        v2 += v1;                \
        v0 += v3;                \
        v1 = ROTL(v1, 17);       \
        v3 = ROTL(v3, 21);       \
        v1 ^= v2;                \
        v3 ^= v0;                \
        v2 = ROTL(v2, 32);       \
    } while (0)

static uint64_t load_le64(const uint8_t *p) {
    uint64_t w;
    memcpy(&w, p, sizeof w); /* no alignment assumed */
    return le64toh(w);
}

siphash_key_t siphash_key(const uint8_t bytes[SIPHASH_KEY_LEN]) {
    return (siphash_key_t){load_le64(bytes), load_le64(bytes + 8)};
}

uint64_t siphash24(const siphash_key_t *key, const void *msg, size_t len) {
    const uint8_t *p = msg;
    /* Initialization: the key xored with "somepseudorandomlygeneratedbytes". */
    uint64_t v0 = key->k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = key->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = key->k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = key->k1 ^ 0x7465646279746573ULL;

    /* Compression: each full word, then the padded last one. */
    size_t full = len & ~(size_t)7;
    for (size_t off = 0; off < full; off += 8) {
        uint64_t m = load_le64(p + off);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    uint64_t last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < (len & 7); i++) last |= (uint64_t)p[full + i] << (8 * i);
    v3 ^= last;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= last;

    /* Finalization. */
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}
