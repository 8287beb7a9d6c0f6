/* Local connection index: two string maps over intrusive nodes. The user map's
 * key points into the user string of the list's first node; when that node goes,
 * the entry is re-keyed to the next node so the key never dangles. */
#include "worker/conn_index.h"

#include <string.h>

static bool str_empty(const char *s) { return !s || !*s; }

void worker_index_add(worker_index_t *ix, worker_index_node_t *n) {
    hmap_put(&ix->by_id, n->id, strlen(n->id), n);
    size_t ulen = strlen(n->user);
    worker_index_node_t *head = hmap_get(&ix->by_user, n->user, ulen);
    n->user_prev = NULL;
    n->user_next = head;
    if (head) head->user_prev = n;
    /* Replacing the value also re-keys the entry to n->user. */
    hmap_put(&ix->by_user, n->user, ulen, n);
    ix->count++;
}

void worker_index_remove(worker_index_t *ix, worker_index_node_t *n) {
    hmap_del(&ix->by_id, n->id, strlen(n->id));
    size_t ulen = strlen(n->user);
    if (n->user_prev) {
        n->user_prev->user_next = n->user_next;
    } else if (n->user_next) {
        hmap_put(&ix->by_user, n->user_next->user, ulen, n->user_next);
    } else {
        hmap_del(&ix->by_user, n->user, ulen);
    }
    if (n->user_next) n->user_next->user_prev = n->user_prev;
    n->user_prev = n->user_next = NULL;
    ix->count--;
}

worker_index_node_t *worker_index_find_id(const worker_index_t *ix, const char *id) {
    return hmap_get(&ix->by_id, id, strlen(id));
}

size_t worker_index_match(worker_index_t *ix, const store_target_t *t,
                          void (*fn)(void *ud, worker_index_node_t *n), void *ud) {
    if (!str_empty(t->id)) {
        worker_index_node_t *n = worker_index_find_id(ix, t->id);
        if (!n) return 0;
        fn(ud, n);
        return 1;
    }
    if (str_empty(t->user)) return 0;
    size_t matched = 0;
    worker_index_node_t *n = hmap_get(&ix->by_user, t->user, strlen(t->user));
    bool any_session = str_empty(t->session);
    while (n) {
        worker_index_node_t *next = n->user_next; /* fn may unlink n */
        if (any_session || (!str_empty(n->session) && strcmp(n->session, t->session) == 0)) {
            matched++;
            fn(ud, n);
        }
        n = next;
    }
    return matched;
}

void worker_index_free(worker_index_t *ix) {
    hmap_free(&ix->by_id);
    hmap_free(&ix->by_user);
    ix->count = 0;
}
