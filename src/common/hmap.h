/* String-keyed hash map (open addressing, linear probing, backward-shift delete).
 * The map stores pointers only: keys and values are owned by the caller, and a key
 * must stay valid and unchanged while its entry is in the map (typically the key
 * points into the value). Lookups never allocate. */
#ifndef DSOCK_HMAP_H
#define DSOCK_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct hmap_entry {
    const char *key;
    size_t key_len;
    uint64_t hash;
    void *value;
} hmap_entry_t;

typedef struct hmap {
    hmap_entry_t *slots;
    size_t cap;   /* power of two, or 0 */
    size_t count;
} hmap_t;

#define HMAP_INIT {NULL, 0, 0}

uint64_t hmap_hash(const char *key, size_t len);
void *hmap_get(const hmap_t *m, const char *key, size_t len);
/* Inserts or replaces; returns the previous value or NULL. */
void *hmap_put(hmap_t *m, const char *key, size_t len, void *value);
/* Removes; returns the removed value or NULL. */
void *hmap_del(hmap_t *m, const char *key, size_t len);
void hmap_free(hmap_t *m); /* frees the table, not keys or values */

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->slots[i].key) ...
 * Do not insert or delete while iterating. */

#endif
