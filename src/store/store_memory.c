/* The in-memory store for standalone mode. Claims and connections are records in
 * two tables, each indexed by id and by user, with a per-user map of sessions, so
 * user and session match exactly (no "$user-$session" keys). Everything answers
 * synchronously: one process, one loop, one worker, so a send is a function call
 * into the worker. A one-second sweep frees expired claims nobody asks about. */
#include "store/store_memory.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hmap.h"
#include "common/mem.h"

#define SWEEP_MS 1000

/* Circular doubly linked list with a sentinel head: O(1) unlink of a record from
 * each index it is in. */
typedef struct link {
    struct link *prev, *next;
} link_t;

static void list_init(link_t *h) { h->prev = h->next = h; }
static bool list_empty(const link_t *h) { return h->next == h; }

static void list_push(link_t *h, link_t *n) {
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static void list_unlink(link_t *n) {
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* A claim or a connection: one allocation, strings after the struct. `time` is
 * the claim's expiration or the connection's last ping. */
typedef struct record {
    link_t all;        /* table-wide list: sweep and close walk it */
    link_t by_user;
    link_t by_session; /* unused when session is NULL */
    const char *id;
    const char *user;
    const char *session; /* NULL when none */
    const char *worker;  /* connections only */
    size_t id_len, user_len, session_len;
    int64_t time;
} record_t;

/* Records of one user (then `sessions` maps session -> group of that session), or
 * of one user's session (then `sessions` stays empty). Owns its key. */
typedef struct group {
    link_t head;
    hmap_t sessions;
    size_t key_len;
    char key[];
} group_t;

typedef struct table {
    hmap_t by_id;   /* id -> record_t */
    hmap_t by_user; /* user -> group_t */
    link_t all;
    size_t count;
} table_t;

/* The arrays handed to an info callback. */
typedef struct info_buf {
    store_conn_t *conns;
    size_t conn_cap;
    store_claim_t *claims;
    size_t claim_cap;
} info_buf_t;

typedef struct store_memory {
    store_t base; /* first: store_t * converts to store_memory_t * */
    uv_timer_t sweep;
    table_t claims;
    table_t conns;
    bool attached;
    char *worker_id;
    store_worker_handlers_t handlers;
    info_buf_t info; /* reused across calls; a nested info call gets its own */
    bool info_busy;
    bool closing;
    void (*done)(void *ud);
    void *done_ud;
} store_memory_t;

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* NULL and "" both mean "none" for sessions and target ids. */
static const char *opt(const char *s) { return s && *s ? s : NULL; }

static record_t *record_of(link_t *l, size_t off) { return (record_t *)((char *)l - off); }

static record_t *record_new(const char *id, const char *user, const char *session,
                            const char *worker, int64_t t) {
    size_t id_len = strlen(id), user_len = strlen(user);
    size_t session_len = session ? strlen(session) : 0;
    size_t worker_len = worker ? strlen(worker) : 0;
    size_t size = sizeof(record_t) + id_len + 1 + user_len + 1 + (session ? session_len + 1 : 0) +
                  (worker ? worker_len + 1 : 0);
    record_t *r = mem_alloc(size);
    char *p = (char *)(r + 1);
    *r = (record_t){.id_len = id_len, .user_len = user_len, .session_len = session_len, .time = t};
    list_init(&r->all);
    list_init(&r->by_user);
    list_init(&r->by_session);
    r->id = memcpy(p, id, id_len + 1);
    p += id_len + 1;
    r->user = memcpy(p, user, user_len + 1);
    p += user_len + 1;
    if (session) {
        r->session = memcpy(p, session, session_len + 1);
        p += session_len + 1;
    }
    if (worker) r->worker = memcpy(p, worker, worker_len + 1);
    return r;
}

static group_t *group_get_or_add(hmap_t *m, const char *key, size_t len) {
    group_t *g = hmap_get(m, key, len);
    if (g) return g;
    g = mem_alloc(sizeof *g + len + 1);
    list_init(&g->head);
    g->sessions = (hmap_t)HMAP_INIT;
    g->key_len = len;
    memcpy(g->key, key, len + 1);
    hmap_put(m, g->key, g->key_len, g);
    return g;
}

static void group_free(group_t *g) {
    for (size_t i = 0; i < g->sessions.cap; i++)
        if (g->sessions.slots[i].key) group_free(g->sessions.slots[i].value);
    hmap_free(&g->sessions);
    free(g);
}

static void table_init(table_t *t) {
    t->by_id = (hmap_t)HMAP_INIT;
    t->by_user = (hmap_t)HMAP_INIT;
    list_init(&t->all);
    t->count = 0;
}

static record_t *table_get(const table_t *t, const char *id) {
    return hmap_get(&t->by_id, id, strlen(id));
}

/* The id must not be in the table. */
static void table_insert(table_t *t, record_t *r) {
    hmap_put(&t->by_id, r->id, r->id_len, r);
    group_t *g = group_get_or_add(&t->by_user, r->user, r->user_len);
    list_push(&g->head, &r->by_user);
    if (r->session) {
        group_t *sg = group_get_or_add(&g->sessions, r->session, r->session_len);
        list_push(&sg->head, &r->by_session);
    }
    list_push(&t->all, &r->all);
    t->count++;
}

/* Unlinks r from every index, dropping groups it leaves empty; r is not freed. */
static void table_remove(table_t *t, record_t *r) {
    hmap_del(&t->by_id, r->id, r->id_len);
    group_t *g = hmap_get(&t->by_user, r->user, r->user_len);
    assert(g);
    list_unlink(&r->by_user);
    if (r->session) {
        group_t *sg = hmap_get(&g->sessions, r->session, r->session_len);
        assert(sg);
        list_unlink(&r->by_session);
        if (list_empty(&sg->head)) {
            hmap_del(&g->sessions, sg->key, sg->key_len);
            group_free(sg);
        }
    }
    if (list_empty(&g->head)) {
        hmap_del(&t->by_user, g->key, g->key_len);
        group_free(g);
    }
    list_unlink(&r->all);
    t->count--;
}

static void table_clear(table_t *t) {
    for (link_t *l = t->all.next; l != &t->all;) {
        link_t *next = l->next;
        free(record_of(l, offsetof(record_t, all)));
        l = next;
    }
    for (size_t i = 0; i < t->by_user.cap; i++)
        if (t->by_user.slots[i].key) group_free(t->by_user.slots[i].value);
    hmap_free(&t->by_user);
    hmap_free(&t->by_id);
    table_init(t);
}

/* Calls fn on each record of the user target (narrowed to its session). fn may
 * remove the record it is given, and no other. Id targets are the caller's job. */
static void table_each_of_user(table_t *t, const store_target_t *tg,
                               void (*fn)(store_memory_t *, table_t *, record_t *, void *),
                               store_memory_t *s, void *arg) {
    const char *user = tg->user, *session = opt(tg->session);
    if (!user) return;
    group_t *g = hmap_get(&t->by_user, user, strlen(user));
    if (!g) return;
    link_t *head = &g->head;
    size_t off = offsetof(record_t, by_user);
    if (session) {
        g = hmap_get(&g->sessions, session, strlen(session));
        if (!g) return;
        head = &g->head;
        off = offsetof(record_t, by_session);
    }
    for (link_t *l = head->next; l != head;) {
        link_t *next = l->next;
        /* Removing the last record frees the group and its head: stop before
         * touching it again. */
        bool last = next == head;
        fn(s, t, record_of(l, off), arg);
        if (last) break;
        l = next;
    }
}

static void claim_delete(table_t *t, record_t *r) {
    table_remove(t, r);
    free(r);
}

static bool claim_live(const record_t *r, int64_t now) { return now < r->time; }

static store_claim_t claim_view(const record_t *r) {
    return (store_claim_t){r->id, r->user, r->session, r->time};
}

static store_conn_t conn_view(const record_t *r) {
    return (store_conn_t){r->id, r->user, r->session, r->worker, r->time};
}

/* Timer ------------------------------------------------------------------- */

static void on_sweep(uv_timer_t *timer) {
    store_memory_t *s = timer->data;
    int64_t now = now_s();
    for (link_t *l = s->claims.all.next; l != &s->claims.all;) {
        link_t *next = l->next;
        record_t *r = record_of(l, offsetof(record_t, all));
        if (!claim_live(r, now)) claim_delete(&s->claims, r);
        l = next;
    }
}

/* API side ---------------------------------------------------------------- */

static void mem_claim_create(store_t *base, const store_claim_t *c, store_status_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE);
        return;
    }
    assert(c->id && c->user);
    int64_t now = now_s();
    record_t *old = table_get(&s->claims, c->id);
    if (old) {
        if (claim_live(old, now)) {
            cb(ud, STORE_EXISTS);
            return;
        }
        claim_delete(&s->claims, old);
    }
    /* A claim born expired would be invisible and swept at once: keep nothing. */
    if (c->expiration > now)
        table_insert(&s->claims, record_new(c->id, c->user, opt(c->session), NULL, c->expiration));
    cb(ud, STORE_OK);
}

static void count_conn(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    (*(size_t *)arg)++;
}

/* Registered connections of the target. */
static size_t target_conn_count(store_memory_t *s, const store_target_t *tg) {
    if (opt(tg->id)) return table_get(&s->conns, tg->id) ? 1 : 0;
    size_t n = 0;
    table_each_of_user(&s->conns, tg, count_conn, s, &n);
    return n;
}

/* Hands msg to the worker when the target has connections. Counted before the
 * hand-off: the worker may unregister connections while handling it (a disconnect
 * does exactly that). */
static store_delivery_t deliver(store_memory_t *s, const worker_msg_t *msg) {
    size_t n = target_conn_count(s, &msg->target);
    if (!n || !s->attached) return (store_delivery_t){0, 0, 0};
    s->handlers.on_message(s->handlers.ud, msg);
    return (store_delivery_t){n, 1, 0};
}

static void mem_send(store_t *base, const worker_msg_t *msg, store_delivery_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    store_delivery_t d = {0, 0, 0};
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, &d);
        return;
    }
    d = deliver(s, msg);
    cb(ud, STORE_OK, &d);
}

static void delete_claim_cb(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    claim_delete(t, r);
}

static void mem_disconnect(store_t *base, const store_target_t *t, bool keep_claims,
                           store_delivery_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    store_delivery_t d = {0, 0, 0};
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, &d);
        return;
    }
    /* Claims first, so nothing can connect with one once the connections are told
     * to close. Claims belong to users: an id target deletes none. */
    if (!keep_claims && !opt(t->id)) table_each_of_user(&s->claims, t, delete_claim_cb, s, NULL);
    worker_msg_t msg = {.kind = WORKER_MSG_DISCONNECT, .target = *t, .body = NULL, .body_len = 0};
    d = deliver(s, &msg);
    cb(ud, STORE_OK, &d);
}

typedef struct info_fill {
    info_buf_t *buf;
    size_t n;
    int64_t now;
} info_fill_t;

static void add_conn(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    info_fill_t *f = arg;
    if (f->n == f->buf->conn_cap) {
        f->buf->conn_cap = f->buf->conn_cap ? f->buf->conn_cap * 2 : 16;
        f->buf->conns = mem_realloc(f->buf->conns, f->buf->conn_cap * sizeof *f->buf->conns);
    }
    f->buf->conns[f->n++] = conn_view(r);
}

/* Expired claims met here are freed on the way, as a take would. */
static void add_claim(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    info_fill_t *f = arg;
    if (!claim_live(r, f->now)) {
        claim_delete(t, r);
        return;
    }
    if (f->n == f->buf->claim_cap) {
        f->buf->claim_cap = f->buf->claim_cap ? f->buf->claim_cap * 2 : 16;
        f->buf->claims = mem_realloc(f->buf->claims, f->buf->claim_cap * sizeof *f->buf->claims);
    }
    f->buf->claims[f->n++] = claim_view(r);
}

static void mem_info(store_t *base, const store_target_t *t, store_info_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    store_info_t info = {NULL, 0, NULL, 0};
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, &info);
        return;
    }
    /* The shared buffer is in use if this call comes from inside another info
     * callback: that caller's arrays must stay intact, so take a private one. */
    info_buf_t local = {NULL, 0, NULL, 0};
    bool nested = s->info_busy;
    info_buf_t *buf = nested ? &local : &s->info;
    info_fill_t f = {buf, 0, now_s()};
    if (opt(t->id)) {
        record_t *r = table_get(&s->conns, t->id);
        if (r) add_conn(s, &s->conns, r, &f);
        info.conn_count = f.n;
    } else {
        table_each_of_user(&s->conns, t, add_conn, s, &f);
        info.conn_count = f.n;
        f.n = 0;
        table_each_of_user(&s->claims, t, add_claim, s, &f);
        info.claim_count = f.n;
    }
    info.conns = info.conn_count ? buf->conns : NULL;
    info.claims = info.claim_count ? buf->claims : NULL;
    s->info_busy = true;
    cb(ud, STORE_OK, &info);
    s->info_busy = nested;
    if (nested) {
        free(local.conns);
        free(local.claims);
    }
}

/* Worker side ------------------------------------------------------------- */

static int mem_worker_attach(store_t *base, const char *worker_id, const store_worker_handlers_t *h) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->attached) return -EBUSY;
    if (!h || !h->on_message) return -EINVAL;
    s->handlers = *h;
    s->worker_id = mem_strdup(worker_id ? worker_id : "");
    s->attached = true;
    return 0;
}

static void mem_claim_take(store_t *base, const char *claim_id, store_claim_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, NULL);
        return;
    }
    record_t *r = claim_id ? table_get(&s->claims, claim_id) : NULL;
    if (!r) {
        cb(ud, STORE_NOT_FOUND, NULL);
        return;
    }
    /* Out of the indexes before the callback: whatever it does, the claim is used. */
    table_remove(&s->claims, r);
    if (claim_live(r, now_s())) {
        store_claim_t c = claim_view(r);
        cb(ud, STORE_OK, &c);
    } else {
        cb(ud, STORE_NOT_FOUND, NULL);
    }
    free(r);
}

static void mem_conn_register(store_t *base, const store_conn_t *conn, store_status_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE);
        return;
    }
    assert(conn->id && conn->user);
    record_t *old = table_get(&s->conns, conn->id);
    if (old) {
        table_remove(&s->conns, old);
        free(old);
    }
    const char *worker = conn->worker ? conn->worker : s->worker_id ? s->worker_id : "";
    table_insert(&s->conns,
                 record_new(conn->id, conn->user, opt(conn->session), worker, conn->last_ping));
    cb(ud, STORE_OK);
}

static void mem_conn_unregister(store_t *base, const store_conn_t *conn) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing || !conn->id) return;
    record_t *r = table_get(&s->conns, conn->id);
    if (!r) return;
    table_remove(&s->conns, r);
    free(r);
}

static void mem_conn_touch(store_t *base, const char *conn_id, int64_t last_ping) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing || !conn_id) return;
    record_t *r = table_get(&s->conns, conn_id);
    if (r) r->time = last_ping;
}

/* Lifecycle --------------------------------------------------------------- */

/* Memory is released only here, once libuv is done with the timer handle. */
static void on_timer_closed(uv_handle_t *h) {
    store_memory_t *s = h->data;
    void (*done)(void *) = s->done;
    void *done_ud = s->done_ud;
    table_clear(&s->claims);
    table_clear(&s->conns);
    free(s->info.conns);
    free(s->info.claims);
    free(s->worker_id);
    free(s);
    if (done) done(done_ud);
}

static void mem_close(store_t *base, void (*done)(void *ud), void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    assert(!s->closing);
    s->closing = true;
    s->done = done;
    s->done_ud = ud;
    uv_timer_stop(&s->sweep);
    uv_close((uv_handle_t *)&s->sweep, on_timer_closed);
}

static const char *mem_describe(store_t *base) { return "memory"; }

static const store_ops_t memory_ops = {
    .claim_create = mem_claim_create,
    .send = mem_send,
    .disconnect = mem_disconnect,
    .info = mem_info,
    .worker_attach = mem_worker_attach,
    .claim_take = mem_claim_take,
    .conn_register = mem_conn_register,
    .conn_unregister = mem_conn_unregister,
    .conn_touch = mem_conn_touch,
    .close = mem_close,
    .describe = mem_describe,
};

store_t *store_memory_new(uv_loop_t *loop) {
    store_memory_t *s = mem_calloc(1, sizeof *s);
    s->base.ops = &memory_ops;
    table_init(&s->claims);
    table_init(&s->conns);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    /* Housekeeping only: the store alone must not keep the loop running. */
    uv_unref((uv_handle_t *)&s->sweep);
    return &s->base;
}

size_t store_memory_claim_count(const store_t *s) {
    return ((const store_memory_t *)s)->claims.count;
}

size_t store_memory_conn_count(const store_t *s) {
    return ((const store_memory_t *)s)->conns.count;
}
