/* Local connection index: string maps over intrusive nodes. The user map's key
 * points into the user string of the list's first node; when that node goes, the
 * entry is re-keyed to the next node so the key never dangles. The channel map's
 * key points into the channel, which the index owns. */
#include "worker/conn_index.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"

static bool str_empty(const char *s) { return !s || !*s; }

void worker_index_add(worker_index_t *ix, worker_index_node_t *n) {
    n->chans = NULL;
    n->chan_count = 0;
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

static void membership_unlink(worker_index_t *ix, worker_membership_t *m) {
    worker_channel_t *ch = m->channel;
    if (m->chan_prev)
        m->chan_prev->chan_next = m->chan_next;
    else
        ch->first = m->chan_next;
    if (m->chan_next) m->chan_next->chan_prev = m->chan_prev;
    if (--ch->count == 0) {
        hmap_del(&ix->by_channel, ch->name, ch->name_len);
        free(ch);
    }
    ix->memberships--;
}

bool worker_index_join(worker_index_t *ix, worker_index_node_t *n, const char *name,
                       size_t len) {
    worker_membership_t **tail = &n->chans;
    for (worker_membership_t *m = n->chans; m; m = m->node_next) {
        if (m->channel->name_len == len && !memcmp(m->channel->name, name, len)) return false;
        tail = &m->node_next;
    }
    worker_channel_t *ch = hmap_get(&ix->by_channel, name, len);
    if (!ch) {
        ch = mem_alloc(sizeof *ch + len + 1);
        ch->first = NULL;
        ch->count = 0;
        ch->name_len = len;
        memcpy(ch->name, name, len);
        ch->name[len] = '\0';
        hmap_put(&ix->by_channel, ch->name, len, ch);
    }
    worker_membership_t *m = mem_alloc(sizeof *m);
    *m = (worker_membership_t){NULL, NULL, ch->first, ch, n};
    if (ch->first) ch->first->chan_prev = m;
    ch->first = m;
    ch->count++;
    *tail = m;
    n->chan_count++;
    ix->memberships++;
    return true;
}

bool worker_index_leave(worker_index_t *ix, worker_index_node_t *n, const char *name,
                        size_t len) {
    for (worker_membership_t **pm = &n->chans; *pm; pm = &(*pm)->node_next) {
        worker_membership_t *m = *pm;
        if (m->channel->name_len != len || memcmp(m->channel->name, name, len)) continue;
        *pm = m->node_next;
        membership_unlink(ix, m);
        free(m);
        n->chan_count--;
        return true;
    }
    return false;
}

size_t worker_index_channel_size(const worker_index_t *ix, const char *name) {
    worker_channel_t *ch = hmap_get(&ix->by_channel, name, strlen(name));
    return ch ? ch->count : 0;
}

void worker_index_remove(worker_index_t *ix, worker_index_node_t *n) {
    for (worker_membership_t *m = n->chans; m;) {
        worker_membership_t *next = m->node_next;
        membership_unlink(ix, m);
        free(m);
        m = next;
    }
    n->chans = NULL;
    n->chan_count = 0;
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
    if (!str_empty(t->channel)) {
        worker_channel_t *ch = hmap_get(&ix->by_channel, t->channel, strlen(t->channel));
        if (!ch) return 0;
        size_t matched = 0;
        for (worker_membership_t *m = ch->first; m;) {
            /* fn may free m (and the channel with its last member) */
            worker_membership_t *next = m->chan_next;
            matched++;
            fn(ud, m->node);
            m = next;
        }
        return matched;
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
    /* Nodes still indexed lose their memberships with the channels. */
    for (size_t i = 0; i < ix->by_channel.cap; i++) {
        worker_channel_t *ch = ix->by_channel.slots[i].value;
        if (!ix->by_channel.slots[i].key) continue;
        for (worker_membership_t *m = ch->first; m;) {
            worker_membership_t *next = m->chan_next;
            m->node->chans = NULL;
            m->node->chan_count = 0;
            free(m);
            m = next;
        }
        free(ch);
    }
    hmap_free(&ix->by_channel);
    ix->count = 0;
    ix->memberships = 0;
}
