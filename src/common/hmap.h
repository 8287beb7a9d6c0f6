/* String-keyed hash map (open addressing, linear probing, backward-shift delete,
 * at most 3/4 full).
 * The map stores pointers only: keys and values are owned by the caller, and a key
 * must stay valid and unchanged while its entry is in the map (typically the key
 * points into the value). Lookups never allocate.
 *
 * Keys come from outside (user, session, claim and connection ids), so the hash is
 * SipHash-2-4 under a per-process secret key drawn from getrandom(2): nobody can
 * prepare ids that collide (hash flooding), and linear probing keeps the short runs
 * of a random hash. See docs/architecture.md, "Hash maps". */
#ifndef DSOCK_HMAP_H
#define DSOCK_HMAP_H

#include <stddef.h>
#include <stdint.h>

/* 24 bytes: a slot is paid for every entry at up to 4/3 x 2 (the table doubles
 * at 3/4 load), so with one user per connection it is a good part of a
 * connection's memory (docs/benchmark.md, "Idle memory"). The low 32 bits of the
 * hash suffice: they pick the home slot of any table of up to 2^32 slots and
 * screen key comparisons. Keys are at most UINT32_MAX bytes. */
typedef struct hmap_entry {
    const char *key;
    void *value;
    uint32_t key_len;
    uint32_t hash;
} hmap_entry_t;

typedef struct hmap {
    hmap_entry_t *slots;
    size_t cap;      /* power of two, or 0 */
    size_t count;
    uint64_t probes; /* statistic: slots examined by put, del and growth, for tests */
} hmap_t;

#define HMAP_INIT {NULL, 0, 0, 0}

/* Draws the process's hash key from getrandom(2), once; later calls do nothing.
 * main calls it at startup, before any thread starts, so a CSPRNG failure stops the
 * start; the hash also calls it (pthread_once), so no map can run unkeyed. */
void hmap_seed(void);
/* Tests only: replaces the key with a fixed one, for reproducible probe counts.
 * Call while no map holds an entry and no other thread runs. */
void hmap_seed_for_tests(const uint8_t key[16]);

uint64_t hmap_hash(const char *key, size_t len);
void *hmap_get(const hmap_t *m, const char *key, size_t len);
/* Inserts or replaces; returns the previous value or NULL. */
void *hmap_put(hmap_t *m, const char *key, size_t len, void *value);
/* Removes; returns the removed value or NULL. */
void *hmap_del(hmap_t *m, const char *key, size_t len);
void hmap_free(hmap_t *m); /* frees the table, not keys or values */

/* The number of slots a lookup of key examines (at least 1: the home slot), found
 * or not. With m->probes, the cost measure of tests: deterministic, unlike time. */
size_t hmap_probes(const hmap_t *m, const char *key, size_t len);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ...
 * Do not insert or delete while iterating. */

#endif
