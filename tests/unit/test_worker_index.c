/* Unit tests for the worker's local connection index (worker/conn_index.h):
 * lookups by id, by user and session, removal of list heads and middles, and
 * removal from inside a match callback. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "worker/conn_index.h"

typedef struct seen {
    worker_index_node_t *nodes[16];
    size_t n;
    worker_index_t *remove_from; /* remove each node as it is seen */
} seen_t;

static void collect(void *ud, worker_index_node_t *n) {
    seen_t *s = ud;
    s->nodes[s->n++] = n;
    if (s->remove_from) worker_index_remove(s->remove_from, n);
}

static size_t match(worker_index_t *ix, const char *id, const char *user, const char *session,
                    seen_t *s) {
    store_target_t t = {id, user, session};
    s->n = 0;
    return worker_index_match(ix, &t, collect, s);
}

static bool has(const seen_t *s, const worker_index_node_t *n) {
    for (size_t i = 0; i < s->n; i++)
        if (s->nodes[i] == n) return true;
    return false;
}

Test(worker_index, by_id_user_session) {
    worker_index_t ix = WORKER_INDEX_INIT;
    /* Separate copies of the user string: the map must not depend on one node's. */
    char u1[] = "alice", u2[] = "alice", u3[] = "bob";
    worker_index_node_t a = {"id-a", u1, "s1", NULL, NULL};
    worker_index_node_t b = {"id-b", u2, NULL, NULL, NULL};
    worker_index_node_t c = {"id-c", u3, "s1", NULL, NULL};
    worker_index_add(&ix, &a);
    worker_index_add(&ix, &b);
    worker_index_add(&ix, &c);
    cr_assert_eq(ix.count, 3);
    cr_assert_eq(worker_index_find_id(&ix, "id-b"), &b);
    cr_assert_null(worker_index_find_id(&ix, "id-x"));

    seen_t s = {0};
    cr_assert_eq(match(&ix, NULL, "alice", NULL, &s), 2);
    cr_assert(has(&s, &a) && has(&s, &b));
    cr_assert_eq(match(&ix, NULL, "alice", "", &s), 2);
    cr_assert_eq(match(&ix, NULL, "alice", "s1", &s), 1);
    cr_assert(has(&s, &a));
    cr_assert_eq(match(&ix, NULL, "alice", "s2", &s), 0);
    /* id wins over user */
    cr_assert_eq(match(&ix, "id-c", "alice", NULL, &s), 1);
    cr_assert(has(&s, &c));
    cr_assert_eq(match(&ix, "id-x", "alice", NULL, &s), 0);
    cr_assert_eq(match(&ix, "", "bob", NULL, &s), 1);
    cr_assert_eq(match(&ix, NULL, NULL, NULL, &s), 0);
    cr_assert_eq(match(&ix, NULL, "nobody", NULL, &s), 0);

    /* Removing the head (b, added last) re-keys alice to a's string. */
    worker_index_remove(&ix, &b);
    memset(u2, 'z', 5); /* b's string is no longer referenced */
    cr_assert_eq(match(&ix, NULL, "alice", NULL, &s), 1);
    cr_assert(has(&s, &a));
    cr_assert_null(worker_index_find_id(&ix, "id-b"));
    worker_index_remove(&ix, &a);
    cr_assert_eq(match(&ix, NULL, "alice", NULL, &s), 0);
    cr_assert_eq(ix.by_user.count, 1);
    worker_index_remove(&ix, &c);
    cr_assert_eq(ix.count, 0);
    cr_assert_eq(ix.by_id.count, 0);
    cr_assert_eq(ix.by_user.count, 0);
    worker_index_free(&ix);
}

Test(worker_index, remove_middle_and_during_match) {
    worker_index_t ix = WORKER_INDEX_INIT;
    char ids[6][16];
    worker_index_node_t n[6];
    for (int i = 0; i < 6; i++) {
        snprintf(ids[i], sizeof ids[i], "id-%d", i);
        n[i] = (worker_index_node_t){ids[i], "u", i % 2 ? "odd" : "even", NULL, NULL};
        worker_index_add(&ix, &n[i]);
    }
    worker_index_remove(&ix, &n[3]); /* middle of the list */
    seen_t s = {0};
    cr_assert_eq(match(&ix, NULL, "u", NULL, &s), 5);
    cr_assert_not(has(&s, &n[3]));
    cr_assert_eq(match(&ix, NULL, "u", "odd", &s), 2);

    s.remove_from = &ix; /* a disconnect removes each match as it goes */
    cr_assert_eq(match(&ix, NULL, "u", "even", &s), 3);
    s.remove_from = NULL;
    cr_assert_eq(match(&ix, NULL, "u", NULL, &s), 2);
    cr_assert(has(&s, &n[1]) && has(&s, &n[5]));
    s.remove_from = &ix;
    cr_assert_eq(match(&ix, NULL, "u", NULL, &s), 2);
    cr_assert_eq(ix.count, 0);
    cr_assert_eq(ix.by_user.count, 0);
    worker_index_free(&ix);
}

/* Channels ------------------------------------------------------------------- */

static size_t match_channel(worker_index_t *ix, const char *ch, seen_t *s) {
    store_target_t t = {.channel = ch};
    s->n = 0;
    return worker_index_match(ix, &t, collect, s);
}

static void chans_of(const worker_index_node_t *n, const char *expect[], size_t count) {
    cr_assert_eq(n->chan_count, count);
    size_t i = 0;
    for (const worker_membership_t *m = n->chans; m; m = m->node_next, i++)
        cr_assert_str_eq(m->channel->name, expect[i]);
    cr_assert_eq(i, count);
}

Test(worker_index, channels_order_and_match) {
    worker_index_t ix = WORKER_INDEX_INIT;
    worker_index_node_t a = {.id = "a", .user = "u"}, b = {.id = "b", .user = "v"};
    worker_index_add(&ix, &a);
    worker_index_add(&ix, &b);
    cr_assert(worker_index_join(&ix, &a, "x", 1));
    cr_assert(worker_index_join(&ix, &a, "y", 1));
    cr_assert_not(worker_index_join(&ix, &a, "x", 1)); /* a member already */
    cr_assert(worker_index_join(&ix, &a, "zz", 2));
    cr_assert(worker_index_join(&ix, &b, "y", 1));
    chans_of(&a, (const char *[]){"x", "y", "zz"}, 3);
    cr_assert_eq(worker_index_channel_size(&ix, "y"), 2);
    cr_assert_eq(ix.memberships, 4);
    seen_t s = {0};
    cr_assert_eq(match_channel(&ix, "y", &s), 2);
    cr_assert(has(&s, &a) && has(&s, &b));
    cr_assert_eq(match_channel(&ix, "nope", &s), 0);
    /* id wins over channel, channel over user */
    store_target_t t = {.id = "b", .user = "u", .channel = "x"};
    s.n = 0;
    cr_assert_eq(worker_index_match(&ix, &t, collect, &s), 1);
    cr_assert_eq(s.nodes[0], &b);
    t = (store_target_t){.user = "v", .channel = "x"};
    s.n = 0;
    cr_assert_eq(worker_index_match(&ix, &t, collect, &s), 1);
    cr_assert_eq(s.nodes[0], &a);
    cr_assert(worker_index_leave(&ix, &a, "y", 1));
    cr_assert_not(worker_index_leave(&ix, &a, "y", 1));
    chans_of(&a, (const char *[]){"x", "zz"}, 2);
    /* removal drops every membership; empty channels go */
    worker_index_remove(&ix, &a);
    cr_assert_eq(worker_index_channel_size(&ix, "x"), 0);
    cr_assert_eq(ix.by_channel.count, 1);
    cr_assert_eq(ix.memberships, 1);
    worker_index_remove(&ix, &b);
    cr_assert_eq(ix.by_channel.count, 0);
    worker_index_free(&ix);
}

typedef struct leaving {
    worker_index_t *ix;
    const char *name;
    size_t calls;
} leaving_t;

static void leave_cb(void *ud, worker_index_node_t *n) {
    leaving_t *l = ud;
    l->calls++;
    cr_assert(worker_index_leave(l->ix, n, l->name, strlen(l->name)));
}

static void remove_cb(void *ud, worker_index_node_t *n) {
    leaving_t *l = ud;
    l->calls++;
    worker_index_remove(l->ix, n);
}

Test(worker_index, leave_or_remove_during_channel_match) {
    worker_index_t ix = WORKER_INDEX_INIT;
    worker_index_node_t n[5];
    char ids[5][16];
    for (int i = 0; i < 5; i++) {
        snprintf(ids[i], sizeof ids[i], "n%d", i);
        n[i] = (worker_index_node_t){.id = ids[i], .user = "u"};
        worker_index_add(&ix, &n[i]);
        worker_index_join(&ix, &n[i], "c", 1);
        worker_index_join(&ix, &n[i], "d", 1);
    }
    leaving_t l = {&ix, "c", 0};
    /* a channel leaving itself frees the channel with its last member */
    cr_assert_eq(worker_index_match(&ix, &(store_target_t){.channel = "c"}, leave_cb, &l), 5);
    cr_assert_eq(l.calls, 5);
    cr_assert_eq(worker_index_channel_size(&ix, "c"), 0);
    cr_assert_eq(worker_index_channel_size(&ix, "d"), 5);
    l.calls = 0;
    cr_assert_eq(worker_index_match(&ix, &(store_target_t){.channel = "d"}, remove_cb, &l), 5);
    cr_assert_eq(ix.count, 0);
    cr_assert_eq(ix.memberships, 0);
    cr_assert_eq(ix.by_channel.count, 0);
    worker_index_free(&ix);
}

Test(worker_index, free_with_memberships) {
    /* run under SAN=1: the memberships and channels are freed with the index */
    worker_index_t ix = WORKER_INDEX_INIT;
    worker_index_node_t a = {.id = "a", .user = "u"};
    worker_index_add(&ix, &a);
    worker_index_join(&ix, &a, "x", 1);
    worker_index_join(&ix, &a, "y", 1);
    worker_index_free(&ix);
    cr_assert_null(a.chans);
    cr_assert_eq(a.chan_count, 0);
}
