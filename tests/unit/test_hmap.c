/* The string hash map: its operations, and hash flooding. The flood test builds
 * 50,000 ids that all fall into a few probe runs under the hash dsock used before
 * (unkeyed FNV-1a with a final avalanche, kept below as legacy_hash), as an attacker
 * could offline, and checks that with the keyed hash they cost the map no more than
 * random ids. Cost is counted in probes (slots examined), not time, so the test is
 * deterministic; the times are printed for information only. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hmap.h"

#define NIDS 50000
#define ID_LEN 12 /* "flood-" + 6 characters */
/* The ids share the low FLOOD_BITS bits of legacy_hash: one probe run in every table
 * of up to 2^14 slots, and 8 runs of ~6,250 ids in the 2^17 slots that hold 50,000.
 * Finding them tries ~8e8 candidates (under a second). */
#define FLOOD_BITS 14

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/* The hash of src/common/hmap.c before it was keyed: FNV-1a 64 and a final
 * avalanche, the same for every process. */
static uint64_t legacy_hash(const char *key, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)key[i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

typedef char ident_t[ID_LEN + 1];

/* Brute force over "flood-" + 6 characters: the FNV state of the first 11 bytes is
 * computed once per 62 candidates that differ in the last one. */
static void colliding_ids(ident_t *ids) {
    const uint64_t mask = ((uint64_t)1 << FLOOD_BITS) - 1;
    size_t found = 0;
    char id[ID_LEN + 1] = "flood-";
    for (uint64_t n = 0; found < NIDS; n++) {
        uint64_t x = n;
        for (int i = 0; i < 5; i++, x /= 62) id[6 + i] = alphabet[x % 62];
        uint64_t s = 1469598103934665603ULL;
        for (int i = 0; i < ID_LEN - 1; i++) {
            s ^= (uint8_t)id[i];
            s *= 1099511628211ULL;
        }
        for (int c = 0; c < 62 && found < NIDS; c++) {
            uint64_t h = (s ^ (uint8_t)alphabet[c]) * 1099511628211ULL;
            h ^= h >> 33;
            h *= 0xff51afd7ed558ccdULL;
            h ^= h >> 33;
            if ((h & mask) == 0) {
                id[ID_LEN - 1] = alphabet[c];
                memcpy(ids[found++], id, ID_LEN + 1);
            }
        }
    }
}

/* Ids of the same shape from a fixed pseudo-random sequence (splitmix64); distinct
 * because the 6 characters encode a counter permuted by an odd multiplier mod 62^6. */
static void random_ids(ident_t *ids) {
    const uint64_t space = 56800235584ULL; /* 62^6 */
    for (uint64_t n = 0; n < NIDS; n++) {
        uint64_t x = (n * 0x9e3779b97f4a7c15ULL % space * 48271 + 12345) % space;
        char *id = ids[n];
        memcpy(id, "rand-", 5);
        id[5] = 'r';
        for (int i = 0; i < 6; i++, x /= 62) id[6 + i] = alphabet[x % 62];
        id[ID_LEN] = '\0';
    }
}

typedef struct cost {
    uint64_t insert, lookup, del; /* probes */
    double insert_ms;
} cost_t;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static cost_t measure(ident_t *ids) {
    cost_t c = {0};
    hmap_t m = HMAP_INIT;
    double t0 = now_ms();
    for (size_t i = 0; i < NIDS; i++) hmap_put(&m, ids[i], ID_LEN, ids[i]);
    c.insert_ms = now_ms() - t0;
    c.insert = m.probes;
    cr_assert_eq(m.count, NIDS, "ids must be distinct");
    for (size_t i = 0; i < NIDS; i++) {
        c.lookup += hmap_probes(&m, ids[i], ID_LEN);
        cr_assert_eq(hmap_get(&m, ids[i], ID_LEN), ids[i]);
    }
    m.probes = 0;
    for (size_t i = 0; i < NIDS; i++) cr_assert_eq(hmap_del(&m, ids[i], ID_LEN), ids[i]);
    c.del = m.probes;
    cr_assert_eq(m.count, 0);
    hmap_free(&m);
    return c;
}

static void flood(const char *what, double margin) {
    ident_t *bad = malloc(sizeof(ident_t) * NIDS);
    ident_t *good = malloc(sizeof(ident_t) * NIDS);
    cr_assert(bad && good);
    colliding_ids(bad);
    random_ids(good);
    /* They do collide under the old hash: all in one home slot of a 2^14 table. */
    for (size_t i = 0; i < NIDS; i++)
        cr_assert_eq(legacy_hash(bad[i], ID_LEN) & (((uint64_t)1 << FLOOD_BITS) - 1), 0);
    cost_t cb = measure(bad);
    cost_t cg = measure(good);
    fprintf(stderr,
            "hmap flood (%s): %d ids, probes insert/lookup/delete: colliding %llu/%llu/%llu, "
            "random %llu/%llu/%llu; insert time colliding %.1f ms, random %.1f ms\n",
            what, NIDS, (unsigned long long)cb.insert, (unsigned long long)cb.lookup,
            (unsigned long long)cb.del, (unsigned long long)cg.insert,
            (unsigned long long)cg.lookup, (unsigned long long)cg.del, cb.insert_ms, cg.insert_ms);
    cr_expect_leq(cb.insert, (uint64_t)(margin * (double)cg.insert), "insert: %llu probes vs %llu",
                  (unsigned long long)cb.insert, (unsigned long long)cg.insert);
    cr_expect_leq(cb.lookup, (uint64_t)(margin * (double)cg.lookup), "lookup: %llu probes vs %llu",
                  (unsigned long long)cb.lookup, (unsigned long long)cg.lookup);
    cr_expect_leq(cb.del, (uint64_t)(margin * (double)cg.del), "delete: %llu probes vs %llu",
                  (unsigned long long)cb.del, (unsigned long long)cg.del);
    /* And both are what a random hash gives below 3/4 load: a few probes per id. */
    cr_expect_leq(cg.lookup, 3 * (uint64_t)NIDS);
    free(bad);
    free(good);
}

/* A fixed key: the probe counts are the same on every run. */
Test(hmap, flood_fixed_key_costs_as_random) {
    uint8_t key[16];
    for (int i = 0; i < 16; i++) key[i] = (uint8_t)(0xa0 + i);
    hmap_seed_for_tests(key);
    flood("fixed key", 1.25);
}

/* The process's own key, from getrandom(2), as in dsock: counts vary by a few per
 * cent between runs, far inside the margin. */
Test(hmap, flood_process_key_costs_as_random) {
    hmap_seed();
    flood("process key", 1.5);
}

/* ---- operations --------------------------------------------------------------- */

Test(hmap, put_get_replace_delete) {
    static char keys[2000][16];
    hmap_t m = HMAP_INIT;
    cr_expect_null(hmap_get(&m, "x", 1));
    cr_expect_null(hmap_del(&m, "x", 1));
    cr_expect_eq(hmap_probes(&m, "x", 1), 0);
    for (int i = 0; i < 2000; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        cr_expect_null(hmap_put(&m, keys[i], strlen(keys[i]), keys[i]));
    }
    cr_expect_eq(m.count, 2000);
    cr_expect(m.count * 4 <= m.cap * 3, "load stays at most 3/4");
    for (int i = 0; i < 2000; i++) cr_expect_eq(hmap_get(&m, keys[i], strlen(keys[i])), keys[i]);
    /* A key is compared by length and bytes, not by prefix or pointer. */
    cr_expect_null(hmap_get(&m, "k1", 1));
    cr_expect_eq(hmap_get(&m, "k12x", 3), keys[12]);
    int v = 0;
    cr_expect_eq(hmap_put(&m, "k7", 2, &v), keys[7]);
    cr_expect_eq(hmap_get(&m, keys[7], 2), &v);
    cr_expect_eq(m.count, 2000);
    /* Delete every other key; the rest stay reachable (backward shift). */
    for (int i = 0; i < 2000; i += 2) cr_expect_not_null(hmap_del(&m, keys[i], strlen(keys[i])));
    for (int i = 0; i < 2000; i++) {
        void *want = i % 2 ? (i == 7 ? (void *)&v : keys[i]) : NULL;
        cr_expect_eq(hmap_get(&m, keys[i], strlen(keys[i])), want, "key %s", keys[i]);
    }
    cr_expect_eq(m.count, 1000);
    hmap_free(&m);
    cr_expect_eq(m.count, 0);
    cr_expect_null(hmap_get(&m, "k1", 2));
}

/* The key is per process: the same id hashes differently under another key. */
Test(hmap, hash_depends_on_the_key) {
    uint8_t key[16] = {0};
    hmap_seed_for_tests(key);
    uint64_t a = hmap_hash("user-1", 6);
    key[15] = 1;
    hmap_seed_for_tests(key);
    cr_expect_neq(hmap_hash("user-1", 6), a);
}
