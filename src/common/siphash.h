/* SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012): a
 * keyed pseudo-random function from byte strings to 64 bits. Keyed with a secret,
 * its outputs cannot be predicted, so an outsider cannot prepare strings that
 * collide in a hash table (hash flooding). Written from the paper; checked against
 * its 64 reference vectors in tests/unit/test_siphash.c.
 *
 * Two compressions per 8-byte word and four finalization rounds, the paper's
 * recommended, conservative parameters (see docs/architecture.md for why not 1-3). */
#ifndef DSOCK_SIPHASH_H
#define DSOCK_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* The 128-bit key as the two little-endian 64-bit halves the rounds use. */
typedef struct siphash_key {
    uint64_t k0, k1;
} siphash_key_t;

siphash_key_t siphash_key(const uint8_t bytes[SIPHASH_KEY_LEN]);

uint64_t siphash24(const siphash_key_t *key, const void *msg, size_t len);

#endif
