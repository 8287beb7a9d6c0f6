/* The worker's local index of its connections, I/O-free: by connection id, and by
 * user (each user maps to an intrusive list of its connections, so a connection
 * costs no allocation here beyond the hash tables' slots). This index, not the
 * store, decides which local connections a message reaches.
 *
 * Ownership: nodes are embedded in the caller's connection structs; their id, user
 * and session strings must stay valid and unchanged while the node is indexed.
 * The index owns only its tables. */
#ifndef DSOCK_WORKER_CONN_INDEX_H
#define DSOCK_WORKER_CONN_INDEX_H

#include <stdbool.h>
#include <stddef.h>

#include "common/hmap.h"
#include "store/store.h"

typedef struct worker_index_node {
    const char *id;
    const char *user;
    const char *session; /* NULL or "" when none */
    struct worker_index_node *user_prev;
    struct worker_index_node *user_next;
} worker_index_node_t;

typedef struct worker_index {
    hmap_t by_id;   /* id -> node */
    hmap_t by_user; /* user -> first node of the user's list (keyed by that node's user) */
    size_t count;
} worker_index_t;

#define WORKER_INDEX_INIT {HMAP_INIT, HMAP_INIT, 0}

/* Adds a node (its id must not be indexed yet). */
void worker_index_add(worker_index_t *ix, worker_index_node_t *n);

/* Removes an indexed node. */
void worker_index_remove(worker_index_t *ix, worker_index_node_t *n);

worker_index_node_t *worker_index_find_id(const worker_index_t *ix, const char *id);

/* Calls fn for every node matching the target (id wins; else user, narrowed to
 * session when non-empty) and returns how many matched. fn may remove the node it
 * is given from the index, but no other node. */
size_t worker_index_match(worker_index_t *ix, const store_target_t *t,
                          void (*fn)(void *ud, worker_index_node_t *n), void *ud);

void worker_index_free(worker_index_t *ix); /* tables only */

#endif
