/* The worker's local index of its connections, I/O-free: by connection id, by
 * user (each user maps to an intrusive list of its connections, so a connection
 * costs no allocation here beyond the hash tables' slots), and by channel (each
 * channel maps to a list of memberships; a membership is one allocation holding
 * the link in both the channel's list and the connection's ordered list). This
 * index, not the store, decides which local connections a message reaches: a send
 * to a channel reaches a worker once and fans out here.
 *
 * Ownership: nodes are embedded in the caller's connection structs; their id, user
 * and session strings must stay valid and unchanged while the node is indexed.
 * The index owns its tables, the channels and the memberships (freed when the
 * node leaves the channel or the index). */
#ifndef DSOCK_WORKER_CONN_INDEX_H
#define DSOCK_WORKER_CONN_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/hmap.h"
#include "store/store.h"

typedef struct worker_channel worker_channel_t;

/* A node's membership of one channel. */
typedef struct worker_membership {
    struct worker_membership *node_next;           /* the node's channels, in order */
    struct worker_membership *chan_prev, *chan_next; /* the channel's members */
    worker_channel_t *channel;
    struct worker_index_node *node;
} worker_membership_t;

/* A channel with local members; freed with its last member. */
struct worker_channel {
    worker_membership_t *first;
    size_t count;
    size_t name_len;
    char name[];
};

typedef struct worker_index_node {
    const char *id;
    const char *user;
    const char *session; /* NULL or "" when none */
    struct worker_index_node *user_prev;
    struct worker_index_node *user_next;
    worker_membership_t *chans;      /* its channels, in join order */
    /* Registration ordering (worker.c, docs/architecture.md "Channels"): the
     * generation of the node's latest store registration, and whether the store's
     * WORKER_MSG_REGISTERED marker for it is still to come. Meanwhile subscription
     * messages leave the node alone: the store ran them before that registration,
     * which records the node's channels as they were when it was sent. The index
     * itself never reads these. */
    uint64_t reg_gen;
    uint32_t chan_count;             /* (next to reg_pending: 64 bytes, not 72) */
    bool reg_pending;
} worker_index_node_t;

typedef struct worker_index {
    hmap_t by_id;   /* id -> node */
    hmap_t by_user; /* user -> first node of the user's list (keyed by that node's user) */
    hmap_t by_channel; /* name -> worker_channel_t */
    size_t count;
    size_t memberships;
} worker_index_t;

#define WORKER_INDEX_INIT {HMAP_INIT, HMAP_INIT, HMAP_INIT, 0, 0}

/* Adds a node (its id must not be indexed yet). */
void worker_index_add(worker_index_t *ix, worker_index_node_t *n);

/* Removes an indexed node, and its memberships. */
void worker_index_remove(worker_index_t *ix, worker_index_node_t *n);

/* Appends the channel to an indexed node's channels; false (nothing done) when it
 * is a member already. name need not outlive the call. */
bool worker_index_join(worker_index_t *ix, worker_index_node_t *n, const char *name,
                       size_t len);

/* Removes the node from the channel; false when it was not a member. */
bool worker_index_leave(worker_index_t *ix, worker_index_node_t *n, const char *name,
                        size_t len);

/* The channel's local member count (0 when unknown). */
size_t worker_index_channel_size(const worker_index_t *ix, const char *name);

worker_index_node_t *worker_index_find_id(const worker_index_t *ix, const char *id);

/* Calls fn for every node matching the target (id wins; then channel; else user,
 * narrowed to session when non-empty) and returns how many matched. fn may remove
 * the node it is given from the index, or from the target channel, and may join
 * it to other channels, but must not remove any other node. */
size_t worker_index_match(worker_index_t *ix, const store_target_t *t,
                          void (*fn)(void *ud, worker_index_node_t *n), void *ud);

void worker_index_free(worker_index_t *ix); /* tables only */

#endif
