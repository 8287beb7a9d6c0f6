#include "common/hmap.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "common/rand.h"
#include "common/siphash.h"

/* The process's hash key. Written once, under pthread_once (whose completion
 * orders the write before every later reader), normally by main before the loop
 * threads exist; only read afterwards, by every thread. */
static siphash_key_t hash_key;
static pthread_once_t hash_key_once = PTHREAD_ONCE_INIT;

static void draw_key(void) {
    uint8_t b[SIPHASH_KEY_LEN];
    rand_bytes(b, sizeof b);
    hash_key = siphash_key(b);
}

void hmap_seed(void) { pthread_once(&hash_key_once, draw_key); }

void hmap_seed_for_tests(const uint8_t key[16]) {
    hmap_seed(); /* so that a later hmap_seed cannot overwrite the fixed key */
    hash_key = siphash_key(key);
}

/* A keyed PRF, not FNV-1a: ids are chosen by clients, and with an unkeyed hash
 * anyone can compute offline thousands of ids that share a probe run. The table
 * also stays at most 3/4 full: with a random hash, linear probing then examines
 * 2.5 slots per hit and 8.5 per miss at worst (1.5 and 2.5 at half load, which the
 * table is just after doubling); below that, the slots cost more memory than the
 * connections' own records (docs/benchmark.md, "Idle memory"). */
uint64_t hmap_hash(const char *key, size_t len) {
    hmap_seed();
    return siphash24(&hash_key, key, len);
}

/* The slot holding key, or the empty slot ending its probe run; *probes grows by
 * the number of slots examined. */
static size_t find_slot(const hmap_t *m, const char *key, size_t len, uint32_t h,
                        uint64_t *probes) {
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    for (size_t n = 1;; n++) {
        hmap_entry_t *e = &m->slots[i];
        if (!e->key || (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0)) {
            *probes += n;
            return i;
        }
        i = (i + 1) & mask;
    }
}

void *hmap_get(const hmap_t *m, const char *key, size_t len) {
    if (!m->count) return NULL;
    uint64_t probes = 0;
    size_t i = find_slot(m, key, len, (uint32_t)hmap_hash(key, len), &probes);
    return m->slots[i].key ? m->slots[i].value : NULL;
}

size_t hmap_probes(const hmap_t *m, const char *key, size_t len) {
    if (!m->cap) return 0;
    uint64_t probes = 0;
    find_slot(m, key, len, (uint32_t)hmap_hash(key, len), &probes);
    return (size_t)probes;
}

static void grow(hmap_t *m) {
    size_t ncap = m->cap ? m->cap * 2 : 16;
    hmap_entry_t *old = m->slots;
    size_t ocap = m->cap;
    m->slots = mem_calloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].key) continue;
        size_t j = find_slot(m, old[i].key, old[i].key_len, old[i].hash, &m->probes);
        m->slots[j] = old[i];
    }
    free(old);
}

void *hmap_put(hmap_t *m, const char *key, size_t len, void *value) {
    if (len > UINT32_MAX) abort(); /* ids are short: never reached */
    if ((m->count + 1) * 4 > m->cap * 3) grow(m);
    uint32_t h = (uint32_t)hmap_hash(key, len);
    size_t i = find_slot(m, key, len, h, &m->probes);
    hmap_entry_t *e = &m->slots[i];
    if (e->key) {
        void *prev = e->value;
        e->key = key; /* the new value's key stays valid, the old one may not */
        e->value = value;
        return prev;
    }
    *e = (hmap_entry_t){key, value, (uint32_t)len, h};
    m->count++;
    return NULL;
}

void *hmap_del(hmap_t *m, const char *key, size_t len) {
    if (!m->count) return NULL;
    size_t mask = m->cap - 1;
    if (len > UINT32_MAX) return NULL;
    size_t i = find_slot(m, key, len, (uint32_t)hmap_hash(key, len), &m->probes);
    if (!m->slots[i].key) return NULL;
    void *value = m->slots[i].value;
    /* Backward-shift deletion: move later members of the probe run into the hole. */
    size_t hole = i;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        m->probes++;
        hmap_entry_t *e = &m->slots[j];
        if (!e->key) break;
        size_t home = (size_t)e->hash & mask;
        /* e may move into the hole only if its home is not in (hole, j]. */
        int between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!between) {
            m->slots[hole] = *e;
            hole = j;
        }
    }
    m->slots[hole] = (hmap_entry_t){0};
    m->count--;
    return value;
}

void hmap_free(hmap_t *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
    m->probes = 0;
}
