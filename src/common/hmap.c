#include "common/hmap.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

/* FNV-1a with a final avalanche; keys are ids chosen by clients, so the table
 * also stays below 50% load to keep probe runs short. */
uint64_t hmap_hash(const char *key, size_t len) {
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

static size_t find_slot(const hmap_t *m, const char *key, size_t len, uint64_t h) {
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;
    for (;;) {
        hmap_entry_t *e = &m->slots[i];
        if (!e->key) return i;
        if (e->hash == h && e->key_len == len && memcmp(e->key, key, len) == 0) return i;
        i = (i + 1) & mask;
    }
}

void *hmap_get(const hmap_t *m, const char *key, size_t len) {
    if (!m->count) return NULL;
    size_t i = find_slot(m, key, len, hmap_hash(key, len));
    return m->slots[i].key ? m->slots[i].value : NULL;
}

static void grow(hmap_t *m) {
    size_t ncap = m->cap ? m->cap * 2 : 16;
    hmap_entry_t *old = m->slots;
    size_t ocap = m->cap;
    m->slots = mem_calloc(ncap, sizeof *m->slots);
    m->cap = ncap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i].key) continue;
        size_t j = find_slot(m, old[i].key, old[i].key_len, old[i].hash);
        m->slots[j] = old[i];
    }
    free(old);
}

void *hmap_put(hmap_t *m, const char *key, size_t len, void *value) {
    if ((m->count + 1) * 2 > m->cap) grow(m);
    uint64_t h = hmap_hash(key, len);
    size_t i = find_slot(m, key, len, h);
    hmap_entry_t *e = &m->slots[i];
    if (e->key) {
        void *prev = e->value;
        e->key = key; /* the new value's key stays valid, the old one may not */
        e->value = value;
        return prev;
    }
    *e = (hmap_entry_t){key, len, h, value};
    m->count++;
    return NULL;
}

void *hmap_del(hmap_t *m, const char *key, size_t len) {
    if (!m->count) return NULL;
    size_t mask = m->cap - 1;
    size_t i = find_slot(m, key, len, hmap_hash(key, len));
    if (!m->slots[i].key) return NULL;
    void *value = m->slots[i].value;
    /* Backward-shift deletion: move later members of the probe run into the hole. */
    size_t hole = i;
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
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
}
