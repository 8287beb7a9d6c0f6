/* The in-memory store for standalone mode. Claims and connections are records in
 * two tables, each indexed by id, by user and by user and session (the key is the
 * record's "user\0session": both match exactly, no "$user-$session" keys). The tables live in a
 * shared core behind one mutex; each loop thread has its own view (store_t), and
 * every connection record remembers the view that registered it. A send resolves
 * its target under the lock to the views holding matching connections: the
 * caller's own view gets the message synchronously (a function call into its
 * worker), every other view gets a refcounted copy through its lock-free MPSC
 * inbox and a uv_async wake-up. A one-second sweep frees expired claims nobody
 * asks about.
 *
 * Channels: a shared map name -> channel, each with the list of its connections'
 * and claims' memberships and, per view, how many of its connections that view
 * holds. A send to a channel reads those counts (O(views), no per-member work
 * here) and each receiving worker fans out from its own index; /info and
 * /disconnect by channel walk the member lists. A record keeps its memberships
 * in its channel order, so /info lists them as the connection joined them. */
#include "store/store_memory.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/hmap.h"
#include "common/log.h"
#include "common/mem.h"
#include "ops/metrics.h"
#include "common/mpsc.h"
#include "protocol/validate.h"

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

typedef struct mship mship_t;

typedef struct worker_name worker_name_t;

/* A claim or a connection: one allocation, strings after the struct (id, then
 * user and session next to each other: "user\0session" is the by_session key).
 * `time` is the claim's expiration or the connection's last ping. The records of
 * one user (of one session) form a ring through by_user (by_session), and the
 * table's map points at the oldest: no allocation per user or session
 * (docs/benchmark.md, "Idle memory"). */
typedef struct record {
    link_t all;        /* table-wide list: sweep and close walk it */
    link_t by_user;
    link_t by_session; /* unused when session is NULL */
    const char *user;    /* the id is first after the struct: rec_id */
    const char *session; /* NULL when none */
    worker_name_t *worker; /* connections only: interned in the shared core */
    struct store_memory *view; /* connections only: the view (thread) that registered it */
    int64_t time;
    mship_t *chans;      /* memberships, in the record's channel order */
    uint32_t id_len, user_len, session_len; /* ids are short (validate.h) */
    uint32_t chan_count;
    bool is_conn;
} record_t;

/* A worker id, shared by the connection records that name it (a copy in each
 * cost ~40 bytes per connection). */
struct worker_name {
    size_t refs;
    size_t len;
    char name[];
};

/* A channel of the shared core; freed when it has no member left. Owns its name. */
typedef struct mchan {
    link_t conns;  /* mship_t.in_chan of connections */
    link_t claims; /* mship_t.in_chan of claims */
    size_t conn_count;
    uint32_t per_view[STORE_MEMORY_MAX_VIEWS]; /* connections held by each view */
    /* Subscriptions by channel to this one handed to each view and not yet
     * recorded by it (mem_conns_subscribed): a send must reach that view even
     * before its count exists. The channel lives while any is pending. */
    uint32_t pending[STORE_MEMORY_MAX_VIEWS];
    uint32_t pending_total;
    size_t name_len;
    char name[];
} mchan_t;

/* One record's membership of one channel. */
struct mship {
    link_t in_chan;
    mship_t *rec_next;
    mchan_t *ch;
    record_t *rec;
};

typedef struct table {
    hmap_t by_id;   /* id -> record_t */
    hmap_t by_user; /* user -> its oldest record_t, keyed by that record's user */
    hmap_t by_session; /* "user\0session" -> its oldest record_t, keyed likewise */
    link_t all;
    size_t count;
    hmap_t *channels; /* the shared channel map: removal drops memberships */
    hmap_t *workers;  /* the shared worker names: removal drops a reference */
} table_t;

typedef struct store_memory store_memory_t;

/* What several threads share: the records, behind one mutex (every operation
 * holds it for a few hash lookups), and the views, so a send can find the
 * thread that holds a connection. */
struct store_memory_shared {
    pthread_mutex_t lock;
    table_t claims;
    table_t conns;
    hmap_t channels;  /* name -> mchan_t */
    hmap_t workers;   /* worker id -> worker_name_t */
    store_memory_t *views[STORE_MEMORY_MAX_VIEWS]; /* by index; NULL once closed */
    size_t view_count;                             /* indexes handed out */
    /* Idempotency keys: key -> idem_entry_t, and the entries oldest first (one TTL
     * for all, so that is also their expiry order). */
    hmap_t idem;
    link_t idem_fifo;
    size_t idem_count, idem_max;
    unsigned idem_ttl_s;
};

/* A message on its way to other threads: one copy, one reference per receiving
 * view. The strings and the body follow the struct. */
typedef struct msg_copy {
    atomic_uint refs;
    worker_msg_t msg;
} msg_copy_t;

/* One per receiving view: queue nodes cannot be shared between queues. */
typedef struct hand_off {
    mpsc_node_t node; /* first: a popped node converts to hand_off_t */
    msg_copy_t *copy;
} hand_off_t;

/* A view: the store_t one loop thread uses. */
struct store_memory {
    store_t base; /* first: store_t * converts to store_memory_t * */
    store_memory_shared_t *sh;
    bool owns_shared; /* store_memory_new: the shared core goes with this view */
    unsigned index;
    uv_timer_t sweep; /* only the first view sweeps: one sweep per shared core */
    uv_async_t wake;  /* rung by other threads after pushing onto inbox */
    mpsc_t inbox;
    atomic_uint senders; /* other threads between resolving this view and ringing it */
    bool attached;
    char *worker_id;
    store_worker_handlers_t handlers;
    bool closing;
    int open_handles;
    void (*done)(void *ud);
    void *done_ud;
};

static int64_t now_s(void) { return (int64_t)time(NULL); }

/* NULL and "" both mean "none" for sessions and target ids. */
static const char *opt(const char *s) { return s && *s ? s : NULL; }

static record_t *record_of(link_t *l, size_t off) { return (record_t *)((char *)l - off); }

static const char *rec_id(const record_t *r) { return (const char *)(r + 1); }

static record_t *record_new(const char *id, const char *user, const char *session, int64_t t) {
    size_t id_len = strlen(id), user_len = strlen(user);
    size_t session_len = session ? strlen(session) : 0;
    size_t size = sizeof(record_t) + id_len + 1 + user_len + 1 + (session ? session_len + 1 : 0);
    if (id_len > UINT32_MAX || user_len > UINT32_MAX || session_len > UINT32_MAX) abort();
    record_t *r = mem_alloc(size);
    char *p = (char *)(r + 1);
    *r = (record_t){.id_len = (uint32_t)id_len, .user_len = (uint32_t)user_len,
                    .session_len = (uint32_t)session_len, .time = t};
    list_init(&r->all);
    list_init(&r->by_user);
    list_init(&r->by_session);
    memcpy(p, id, id_len + 1); /* rec_id */
    p += id_len + 1;
    r->user = memcpy(p, user, user_len + 1);
    p += user_len + 1;
    if (session) r->session = memcpy(p, session, session_len + 1);
    return r;
}

/* The shared core's copy of a worker id, one more reference (under the lock). */
static worker_name_t *worker_name_ref(hmap_t *workers, const char *name) {
    size_t len = strlen(name);
    worker_name_t *n = hmap_get(workers, name, len);
    if (!n) {
        n = mem_alloc(sizeof *n + len + 1);
        n->refs = 0;
        n->len = len;
        memcpy(n->name, name, len + 1);
        hmap_put(workers, n->name, len, n);
    }
    n->refs++;
    return n;
}

static void worker_name_unref(hmap_t *workers, worker_name_t *n) {
    if (!n || --n->refs) return;
    hmap_del(workers, n->name, n->len);
    free(n);
}

static const char *worker_of(const record_t *r) { return r->worker ? r->worker->name : NULL; }

/* The "user\0session" key of a record with a session. */
static size_t session_key_len(const record_t *r) { return r->user_len + 1 + r->session_len; }

/* Adds r at the end of the ring of key in m (m maps key to the ring's oldest). */
static void ring_add(hmap_t *m, const char *key, size_t len, link_t *l, size_t off) {
    record_t *first = hmap_get(m, key, len);
    list_init(l);
    if (first)
        list_push((link_t *)((char *)first + off), l); /* before the oldest: at the end */
    else
        hmap_put(m, key, len, record_of(l, off));
}

/* Takes r out of its ring; the map then points at the next oldest, keyed by that
 * record's own copy of the key, or loses the key with the last record. */
static void ring_remove(hmap_t *m, const char *key, size_t len, link_t *l, size_t off,
                        size_t key_off) {
    record_t *r = record_of(l, off);
    if (l->next == l) {
        hmap_del(m, key, len);
        return;
    }
    record_t *next = record_of(l->next, off);
    if (hmap_get(m, key, len) == r) hmap_put(m, *(const char **)((char *)next + key_off), len, next);
    list_unlink(l);
}

static record_t *record_of(link_t *l, size_t off);

static mchan_t *chan_get_or_add(hmap_t *channels, const char *name, size_t len) {
    mchan_t *ch = hmap_get(channels, name, len);
    if (!ch) {
        ch = mem_calloc(1, sizeof *ch + len + 1);
        list_init(&ch->conns);
        list_init(&ch->claims);
        ch->name_len = len;
        memcpy(ch->name, name, len);
        hmap_put(channels, ch->name, len, ch);
    }
    return ch;
}

/* Frees a channel nobody is in and nothing is pending on. */
static void chan_maybe_free(hmap_t *channels, mchan_t *ch) {
    if (list_empty(&ch->conns) && list_empty(&ch->claims) && !ch->pending_total) {
        hmap_del(channels, ch->name, ch->name_len);
        free(ch);
    }
}

/* Inserts the channel into r's channels (the caller holds the lock): right after
 * the channel named `before` ("": first; not found, or NULL: last). False when r
 * is a member already. */
static bool rec_join_after(hmap_t *channels, record_t *r, const char *name, size_t len,
                           const char *before) {
    mship_t **tail = &r->chans, **at = NULL;
    if (before && !*before) at = &r->chans;
    size_t blen = before ? strlen(before) : 0;
    for (mship_t *m = r->chans; m; m = m->rec_next) {
        if (m->ch->name_len == len && !memcmp(m->ch->name, name, len)) return false;
        if (!at && blen && m->ch->name_len == blen && !memcmp(m->ch->name, before, blen))
            at = &m->rec_next;
        tail = &m->rec_next;
    }
    if (at) tail = at;
    mchan_t *ch = chan_get_or_add(channels, name, len);
    mship_t *m = mem_alloc(sizeof *m);
    *m = (mship_t){.rec_next = NULL, .ch = ch, .rec = r};
    list_init(&m->in_chan);
    if (r->is_conn) {
        list_push(&ch->conns, &m->in_chan);
        ch->conn_count++;
        if (r->view) ch->per_view[r->view->index]++;
    } else {
        list_push(&ch->claims, &m->in_chan);
    }
    m->rec_next = *tail;
    *tail = m;
    r->chan_count++;
    return true;
}

/* Appends the channel to r's channels; false when r is a member already. */
static bool rec_join(hmap_t *channels, record_t *r, const char *name, size_t len) {
    return rec_join_after(channels, r, name, len, NULL);
}

static void mship_free(hmap_t *channels, mship_t *m) {
    mchan_t *ch = m->ch;
    list_unlink(&m->in_chan);
    if (m->rec->is_conn) {
        ch->conn_count--;
        if (m->rec->view) ch->per_view[m->rec->view->index]--;
    }
    chan_maybe_free(channels, ch);
    free(m);
}

static bool rec_leave(hmap_t *channels, record_t *r, const char *name, size_t len) {
    for (mship_t **pm = &r->chans; *pm; pm = &(*pm)->rec_next) {
        mship_t *m = *pm;
        if (m->ch->name_len != len || memcmp(m->ch->name, name, len)) continue;
        *pm = m->rec_next;
        mship_free(channels, m);
        r->chan_count--;
        return true;
    }
    return false;
}

static void rec_leave_all(hmap_t *channels, record_t *r) {
    for (mship_t *m = r->chans; m;) {
        mship_t *next = m->rec_next;
        mship_free(channels, m);
        m = next;
    }
    r->chans = NULL;
    r->chan_count = 0;
}

/* The records of a channel's connections (or claims): a malloc'd array, so the
 * caller may change memberships while walking it. */
static record_t **chan_records(mchan_t *ch, bool conns, size_t *n) {
    link_t *head = conns ? &ch->conns : &ch->claims;
    size_t cap = 0, k = 0;
    for (link_t *l = head->next; l != head; l = l->next) cap++;
    record_t **out = cap ? mem_alloc(cap * sizeof *out) : NULL;
    for (link_t *l = head->next; l != head; l = l->next)
        out[k++] = ((mship_t *)((char *)l - offsetof(mship_t, in_chan)))->rec;
    *n = k;
    return out;
}

static void table_init(table_t *t) {
    t->by_id = (hmap_t)HMAP_INIT;
    t->by_user = (hmap_t)HMAP_INIT;
    t->by_session = (hmap_t)HMAP_INIT;
    list_init(&t->all);
    t->count = 0;
}

static record_t *table_get(const table_t *t, const char *id) {
    return hmap_get(&t->by_id, id, strlen(id));
}

/* The id must not be in the table. */
static void table_insert(table_t *t, record_t *r) {
    hmap_put(&t->by_id, rec_id(r), r->id_len, r);
    ring_add(&t->by_user, r->user, r->user_len, &r->by_user, offsetof(record_t, by_user));
    if (r->session)
        ring_add(&t->by_session, r->user, session_key_len(r), &r->by_session,
                 offsetof(record_t, by_session));
    list_push(&t->all, &r->all);
    t->count++;
}

/* Unlinks r from every index (and drops its worker name); r is not freed. */
static void table_remove(table_t *t, record_t *r) {
    rec_leave_all(t->channels, r);
    hmap_del(&t->by_id, rec_id(r), r->id_len);
    ring_remove(&t->by_user, r->user, r->user_len, &r->by_user, offsetof(record_t, by_user),
                offsetof(record_t, user));
    if (r->session)
        ring_remove(&t->by_session, r->user, session_key_len(r), &r->by_session,
                    offsetof(record_t, by_session), offsetof(record_t, user));
    worker_name_unref(t->workers, r->worker);
    r->worker = NULL;
    list_unlink(&r->all);
    t->count--;
}

static void table_clear(table_t *t) {
    for (link_t *l = t->all.next; l != &t->all;) {
        link_t *next = l->next;
        record_t *r = record_of(l, offsetof(record_t, all));
        rec_leave_all(t->channels, r);
        worker_name_unref(t->workers, r->worker);
        free(r);
        l = next;
    }
    hmap_free(&t->by_session);
    hmap_free(&t->by_user);
    hmap_free(&t->by_id);
    hmap_t *channels = t->channels, *workers = t->workers;
    table_init(t);
    t->channels = channels;
    t->workers = workers;
}

/* Calls fn on each record of the user target (narrowed to its session), oldest
 * first. fn may remove the record it is given, and no other: the ring is counted
 * first and the next record taken before fn runs. Id targets are the caller's job. */
static void table_each_of_user(table_t *t, const store_target_t *tg,
                               void (*fn)(store_memory_t *, table_t *, record_t *, void *),
                               store_memory_t *s, void *arg) {
    const char *user = tg->user, *session = opt(tg->session);
    if (!user) return;
    record_t *first;
    size_t off;
    if (session) {
        size_t ul = strlen(user), sl = strlen(session);
        char stack[256];
        char *key = ul + sl + 2 <= sizeof stack ? stack : mem_alloc(ul + sl + 2);
        memcpy(key, user, ul + 1);
        memcpy(key + ul + 1, session, sl + 1);
        first = hmap_get(&t->by_session, key, ul + 1 + sl);
        if (key != stack) free(key);
        off = offsetof(record_t, by_session);
    } else {
        first = hmap_get(&t->by_user, user, strlen(user));
        off = offsetof(record_t, by_user);
    }
    if (!first) return;
    link_t *head = (link_t *)((char *)first + off);
    size_t n = 1;
    for (link_t *l = head->next; l != head; l = l->next) n++;
    link_t *l = head;
    for (size_t i = 0; i < n; i++) {
        link_t *next = l->next;
        fn(s, t, record_of(l, off), arg);
        l = next;
    }
}

static void claim_delete(table_t *t, record_t *r) {
    table_remove(t, r);
    free(r);
}

static bool claim_live(const record_t *r, int64_t now) { return now < r->time; }

static void sh_lock(store_memory_t *s) { pthread_mutex_lock(&s->sh->lock); }
static void sh_unlock(store_memory_t *s) { pthread_mutex_unlock(&s->sh->lock); }

/* Idempotency -------------------------------------------------------------- */

/* A key and the first answer to it. The first request inserts it as not done,
 * under the lock, before doing the work, and fills it in afterwards: a request
 * with the same key on another thread meanwhile gets STORE_IDEM_BUSY instead of
 * doing the work twice (the work itself takes the lock again, so the entry cannot
 * be filled in atomically with it as in Redis). Owns its key. */
typedef struct idem_entry {
    link_t fifo;
    uint64_t expires_ms; /* CLOCK_MONOTONIC: a wall-clock jump does not expire keys */
    bool done;
    store_delivery_t d;
    char fp[65];
    size_t key_len;
    char key[];
} idem_entry_t;

static uint64_t mono_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void idem_drop(store_memory_shared_t *sh, idem_entry_t *e) {
    hmap_del(&sh->idem, e->key, e->key_len);
    list_unlink(&e->fifo);
    sh->idem_count--;
    free(e);
}

/* Forgets expired keys, and the oldest ones while more than `keep` are held. */
static void idem_prune(store_memory_shared_t *sh, uint64_t now, size_t keep) {
    while (!list_empty(&sh->idem_fifo)) {
        idem_entry_t *e = (idem_entry_t *)((char *)sh->idem_fifo.next - offsetof(idem_entry_t, fifo));
        if (e->expires_ms > now && sh->idem_count <= keep) break;
        if (e->expires_ms > now) METRICS_INC(idem_evicted);
        idem_drop(sh, e);
    }
}

/* 0: go ahead (the key is now held, not done); 1: *d is the stored answer; or
 * STORE_IDEM_REUSED / STORE_IDEM_BUSY. */
static int idem_begin(store_memory_t *s, const store_idem_t *idem, store_delivery_t *d) {
    store_memory_shared_t *sh = s->sh;
    size_t kl = strlen(idem->key);
    uint64_t now = mono_ms();
    int rc = 0;
    sh_lock(s);
    idem_prune(sh, now, sh->idem_max);
    idem_entry_t *e = hmap_get(&sh->idem, idem->key, kl);
    if (e) {
        if (strcmp(e->fp, idem->fingerprint) != 0) {
            rc = STORE_IDEM_REUSED;
        } else if (!e->done) {
            rc = STORE_IDEM_BUSY;
        } else {
            *d = e->d;
            d->replayed = true;
            rc = 1;
        }
    } else {
        idem_prune(sh, now, sh->idem_max - 1); /* room for one more */
        e = mem_calloc(1, sizeof *e + kl + 1);
        memcpy(e->key, idem->key, kl);
        e->key_len = kl;
        snprintf(e->fp, sizeof e->fp, "%s", idem->fingerprint);
        e->expires_ms = now + (uint64_t)sh->idem_ttl_s * 1000u;
        list_push(&sh->idem_fifo, &e->fifo);
        hmap_put(&sh->idem, e->key, kl, e);
        sh->idem_count++;
    }
    sh_unlock(s);
    return rc;
}

static void idem_end(store_memory_t *s, const store_idem_t *idem, const store_delivery_t *d) {
    sh_lock(s);
    idem_entry_t *e = hmap_get(&s->sh->idem, idem->key, strlen(idem->key));
    if (e && !e->done && !strcmp(e->fp, idem->fingerprint)) {
        e->d = *d;
        e->done = true;
    }
    sh_unlock(s);
}

/* Answers a request whose key is known (true); otherwise holds the key for it. */
static bool idem_answered(store_memory_t *s, const store_target_t *t, store_delivery_cb cb,
                          void *ud) {
    if (!t->idem || !t->idem->key) return false;
    store_delivery_t d = {0, 0, 0, false};
    int rc = idem_begin(s, t->idem, &d);
    if (rc == 0) return false;
    cb(ud, rc == 1 ? STORE_OK : (store_status_t)rc, &d);
    return true;
}

static void idem_done(store_memory_t *s, const store_target_t *t, const store_delivery_t *d) {
    if (t->idem && t->idem->key) idem_end(s, t->idem, d);
}

void store_memory_shared_set_idempotency(store_memory_shared_t *sh, unsigned ttl_s,
                                         size_t max_keys) {
    sh->idem_ttl_s = ttl_s ? ttl_s : 300;
    sh->idem_max = max_keys ? max_keys : 100000;
}

/* Timer ------------------------------------------------------------------- */

static void on_sweep(uv_timer_t *timer) {
    store_memory_t *s = timer->data;
    int64_t now = now_s();
    sh_lock(s);
    table_t *claims = &s->sh->claims;
    for (link_t *l = claims->all.next; l != &claims->all;) {
        link_t *next = l->next;
        record_t *r = record_of(l, offsetof(record_t, all));
        if (!claim_live(r, now)) claim_delete(claims, r);
        l = next;
    }
    idem_prune(s->sh, mono_ms(), s->sh->idem_max);
    sh_unlock(s);
}

/* Hand-off between threads ---------------------------------------------------- */

static char *copy_str(char **p, const char *str) {
    if (!str) return NULL;
    size_t n = strlen(str) + 1;
    char *out = memcpy(*p, str, n);
    *p += n;
    return out;
}

/* One allocation: the copy, then one queue node per receiving view, then the
 * target strings and the body. */
static msg_copy_t *copy_new(const worker_msg_t *m, unsigned views, hand_off_t **nodes) {
    const store_target_t *t = &m->target;
    size_t strs = (t->id ? strlen(t->id) + 1 : 0) + (t->user ? strlen(t->user) + 1 : 0) +
                  (t->session ? strlen(t->session) + 1 : 0) +
                  (t->channel ? strlen(t->channel) + 1 : 0);
    size_t head = sizeof(msg_copy_t) + views * sizeof(hand_off_t);
    msg_copy_t *c = mem_alloc(head + strs + m->body_len);
    atomic_init(&c->refs, views);
    *nodes = (hand_off_t *)(c + 1);
    char *p = (char *)c + head;
    c->msg = (worker_msg_t){.kind = m->kind, .body_len = m->body_len};
    c->msg.target.id = copy_str(&p, t->id);
    c->msg.target.user = copy_str(&p, t->user);
    c->msg.target.session = copy_str(&p, t->session);
    c->msg.target.channel = copy_str(&p, t->channel);
    if (m->body_len) c->msg.body = memcpy(p, m->body, m->body_len);
    for (unsigned i = 0; i < views; i++) (*nodes)[i].copy = c;
    return c;
}

static void copy_unref(msg_copy_t *c) {
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) free(c);
}

/* Hands every message in the inbox to the worker (or drops it once closing). */
static void inbox_drain(store_memory_t *s) {
    mpsc_node_t *n;
    while ((n = mpsc_pop(&s->inbox))) {
        msg_copy_t *c = ((hand_off_t *)n)->copy;
        if (s->attached && !s->closing) s->handlers.on_message(s->handlers.ud, &c->msg);
        copy_unref(c);
    }
}

static void on_wake(uv_async_t *h) { inbox_drain(h->data); }

/* API side ---------------------------------------------------------------- */

static void mem_claim_create(store_t *base, const store_claim_t *c, store_status_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE);
        return;
    }
    assert(c->id && c->user);
    uint64_t t0 = metrics_now_ns();
    int64_t now = now_s();
    store_status_t st = STORE_OK;
    sh_lock(s);
    table_t *claims = &s->sh->claims;
    record_t *old = table_get(claims, c->id);
    if (old && claim_live(old, now)) {
        st = STORE_EXISTS;
    } else {
        if (old) claim_delete(claims, old);
        /* A claim born expired would be invisible and swept at once: keep nothing. */
        if (c->expiration > now) {
            record_t *r = record_new(c->id, c->user, opt(c->session), c->expiration);
            table_insert(claims, r);
            for (size_t i = 0; i < c->channel_count; i++)
                rec_join(&s->sh->channels, r, c->channels[i], strlen(c->channels[i]));
        }
    }
    sh_unlock(s);
    metrics_observe_store(METRICS_OP_CLAIM_CREATE, metrics_now_ns() - t0);
    cb(ud, st);
}

/* Where a target's connections are: how many, and the bit of each view holding
 * some. With `drop`, the records are removed as well (a disconnect). */
typedef struct resolve {
    size_t n;
    uint64_t views;
    bool drop;
} resolve_t;

static void resolve_conn(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    resolve_t *rs = arg;
    rs->n++;
    rs->views |= UINT64_C(1) << r->view->index;
    if (rs->drop) {
        table_remove(t, r);
        free(r);
    }
}

/* Hands msg to every attached view holding target connections: other views
 * through their inboxes, this one synchronously (after what its inbox already
 * holds, so sends that completed earlier on other threads stay ahead). Counted
 * under the lock, before any hand-off. */
/* Calls fn on each connection record of the target (id, then channel, then user).
 * fn may remove the record or change its memberships. */
static void each_conn_of(store_memory_t *s, const store_target_t *t,
                         void (*fn)(store_memory_t *, table_t *, record_t *, void *), void *arg) {
    store_memory_shared_t *sh = s->sh;
    if (opt(t->id)) {
        record_t *r = table_get(&sh->conns, t->id);
        if (r) fn(s, &sh->conns, r, arg);
    } else if (opt(t->channel)) {
        mchan_t *ch = hmap_get(&sh->channels, t->channel, strlen(t->channel));
        if (!ch) return;
        size_t n;
        record_t **recs = chan_records(ch, true, &n);
        for (size_t i = 0; i < n; i++) fn(s, &sh->conns, recs[i], arg);
        free(recs);
    } else {
        table_each_of_user(&sh->conns, t, fn, s, arg);
    }
}

/* The same for the target's claims: none for an id target. */
static void each_claim_of(store_memory_t *s, const store_target_t *t,
                          void (*fn)(store_memory_t *, table_t *, record_t *, void *), void *arg) {
    store_memory_shared_t *sh = s->sh;
    if (opt(t->id)) return;
    if (opt(t->channel)) {
        mchan_t *ch = hmap_get(&sh->channels, t->channel, strlen(t->channel));
        if (!ch) return;
        size_t n;
        record_t **recs = chan_records(ch, false, &n);
        for (size_t i = 0; i < n; i++) fn(s, &sh->claims, recs[i], arg);
        free(recs);
    } else {
        table_each_of_user(&sh->claims, t, fn, s, arg);
    }
}

static bool hand_off(store_memory_t *s, const worker_msg_t *msg, uint64_t views);

static store_delivery_t deliver(store_memory_t *s, const worker_msg_t *msg, bool drop) {
    store_memory_shared_t *sh = s->sh;
    resolve_t rs = {0, 0, drop};
    sh_lock(s);
    mchan_t *ch;
    if (!drop && !opt(msg->target.id) && opt(msg->target.channel)) {
        /* A send to a channel: its per-view counts, never its members. */
        ch = hmap_get(&sh->channels, msg->target.channel, strlen(msg->target.channel));
        if (ch) {
            rs.n = ch->conn_count;
            for (unsigned i = 0; i < STORE_MEMORY_MAX_VIEWS; i++)
                if (ch->per_view[i] || ch->pending[i]) rs.views |= UINT64_C(1) << i;
        }
    } else {
        each_conn_of(s, &msg->target, resolve_conn, &rs);
    }
    if (!hand_off(s, msg, rs.views)) return (store_delivery_t){0, 0, 0, false}; /* unlocks */
    /* One process, one worker id: the views are threads of one worker. */
    return (store_delivery_t){rs.n, 1, 0, false};
}

/* Called with the lock held; releases it. False when no attached view was among
 * `views`: nobody got the message. */
static bool hand_off(store_memory_t *s, const worker_msg_t *msg, uint64_t views) {
    store_memory_shared_t *sh = s->sh;
    store_memory_t *others[STORE_MEMORY_MAX_VIEWS];
    unsigned n_others = 0;
    bool self = false;
    resolve_t rs = {0, views, false};
    for (unsigned i = 0; i < STORE_MEMORY_MAX_VIEWS && rs.views >> i; i++) {
        store_memory_t *v = (rs.views >> i) & 1 ? sh->views[i] : NULL;
        if (!v || !v->attached) continue;
        if (v == s) {
            self = true;
        } else {
            /* Keeps v (its inbox and wake handle) open until we have rung it. */
            atomic_fetch_add_explicit(&v->senders, 1, memory_order_relaxed);
            others[n_others++] = v;
        }
    }
    /* (Un)subscriptions enter the inboxes under the lock, so each inbox holds
     * them in the order the lock recorded them, relative to the registration
     * markers (mem_conn_register); their bodies are channel names. Sends are
     * copied and pushed outside it. */
    bool ordered = msg->kind == WORKER_MSG_SUBSCRIBE || msg->kind == WORKER_MSG_UNSUBSCRIBE;
    hand_off_t *nodes = NULL;
    if (n_others && ordered) {
        copy_new(msg, n_others, &nodes);
        for (unsigned i = 0; i < n_others; i++) mpsc_push(&others[i]->inbox, &nodes[i].node);
    }
    sh_unlock(s);
    if (n_others) {
        if (!ordered) copy_new(msg, n_others, &nodes);
        for (unsigned i = 0; i < n_others; i++) {
            if (!ordered) mpsc_push(&others[i]->inbox, &nodes[i].node);
            uv_async_send(&others[i]->wake);
            atomic_fetch_sub_explicit(&others[i]->senders, 1, memory_order_release);
        }
    }
    if (self) {
        inbox_drain(s);
        s->handlers.on_message(s->handlers.ud, msg);
    }
    return self || n_others;
}

static void mem_send(store_t *base, const worker_msg_t *msg, store_delivery_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    store_delivery_t d = {0, 0, 0, false};
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, &d);
        return;
    }
    if (idem_answered(s, &msg->target, cb, ud)) return;
    uint64_t t0 = metrics_now_ns();
    d = deliver(s, msg, false);
    metrics_observe_store(METRICS_OP_SEND, metrics_now_ns() - t0);
    idem_done(s, &msg->target, &d);
    cb(ud, STORE_OK, &d);
}

static void delete_claim_cb(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    claim_delete(t, r);
}

static void mem_disconnect(store_t *base, const store_target_t *t, bool keep_claims,
                           store_delivery_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    store_delivery_t d = {0, 0, 0, false};
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, &d);
        return;
    }
    if (idem_answered(s, t, cb, ud)) return;
    uint64_t t0 = metrics_now_ns();
    /* Claims first, so nothing can connect with one once the connections are told
     * to close. Claims belong to users: an id target deletes none. */
    if (!keep_claims && !opt(t->id)) {
        sh_lock(s);
        each_claim_of(s, t, delete_claim_cb, NULL);
        sh_unlock(s);
    }
    /* The records go at once, as when the worker closes them on this thread, so an
     * /info right after the answer no longer reports connections that another
     * thread has yet to close. */
    worker_msg_t msg = {.kind = WORKER_MSG_DISCONNECT, .target = *t, .body = NULL, .body_len = 0};
    d = deliver(s, &msg, true);
    metrics_observe_store(METRICS_OP_DISCONNECT, metrics_now_ns() - t0);
    idem_done(s, t, &d);
    cb(ud, STORE_OK, &d);
}

/* The info callback gets a snapshot (one allocation: arrays, channel pointer
 * arrays, then strings), so it runs without the lock and may call the store
 * again. */
typedef struct info_fill {
    record_t **conns, **claims;
    size_t n_conns, n_claims, cap_conns, cap_claims;
    size_t str_bytes, chan_ptrs;
    int64_t now;
} info_fill_t;

static size_t record_str_bytes(const record_t *r) {
    size_t n = r->id_len + 1 + r->user_len + 1 + (r->session ? r->session_len + 1 : 0) +
               (r->worker ? r->worker->len + 1 : 0);
    for (const mship_t *m = r->chans; m; m = m->rec_next) n += m->ch->name_len + 1;
    return n;
}

static void add_rec(info_fill_t *f, record_t ***arr, size_t *n, size_t *cap, record_t *r) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *arr = mem_realloc(*arr, *cap * sizeof **arr);
    }
    (*arr)[(*n)++] = r;
    f->str_bytes += record_str_bytes(r);
    f->chan_ptrs += r->chan_count;
}

static void add_conn(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    info_fill_t *f = arg;
    add_rec(f, &f->conns, &f->n_conns, &f->cap_conns, r);
}

/* Expired claims met here are freed on the way, as a take would. */
static void add_claim(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    info_fill_t *f = arg;
    if (!claim_live(r, f->now)) {
        claim_delete(t, r);
        return;
    }
    add_rec(f, &f->claims, &f->n_claims, &f->cap_claims, r);
}

static const char *const *copy_chans(char **p, const char ***ptrs, const record_t *r) {
    if (!r->chan_count) return NULL;
    const char **out = *ptrs;
    size_t i = 0;
    for (const mship_t *m = r->chans; m; m = m->rec_next) out[i++] = copy_str(p, m->ch->name);
    *ptrs += r->chan_count;
    return out;
}

static void mem_info(store_t *base, const store_target_t *t, store_info_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    store_info_t info = {NULL, 0, NULL, 0};
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, &info);
        return;
    }
    uint64_t t0 = metrics_now_ns();
    info_fill_t f = {.now = now_s()};
    sh_lock(s);
    each_conn_of(s, t, add_conn, &f);
    each_claim_of(s, t, add_claim, &f);
    size_t arrays = f.n_conns * sizeof(store_conn_t) + f.n_claims * sizeof(store_claim_t) +
                    f.chan_ptrs * sizeof(char *);
    char *block = (arrays || f.str_bytes) ? mem_alloc(arrays + f.str_bytes) : NULL;
    store_conn_t *conns = (store_conn_t *)block;
    store_claim_t *claims = (store_claim_t *)(block + f.n_conns * sizeof(store_conn_t));
    const char **ptrs = (const char **)(block + f.n_conns * sizeof(store_conn_t) +
                                        f.n_claims * sizeof(store_claim_t));
    char *p = block + arrays;
    for (size_t i = 0; i < f.n_conns; i++) {
        const record_t *r = f.conns[i];
        conns[i] = (store_conn_t){copy_str(&p, rec_id(r)),      copy_str(&p, r->user),
                                  copy_str(&p, r->session), copy_str(&p, worker_of(r)),
                                  r->time,                  NULL,
                                  r->chan_count,            0};
        conns[i].channels = copy_chans(&p, &ptrs, r);
    }
    for (size_t i = 0; i < f.n_claims; i++) {
        const record_t *r = f.claims[i];
        claims[i] = (store_claim_t){copy_str(&p, rec_id(r)), copy_str(&p, r->user),
                                    copy_str(&p, r->session), r->time, NULL, r->chan_count};
        claims[i].channels = copy_chans(&p, &ptrs, r);
    }
    sh_unlock(s);
    free(f.conns);
    free(f.claims);
    info = (store_info_t){f.n_conns ? conns : NULL, f.n_conns, f.n_claims ? claims : NULL,
                          f.n_claims};
    metrics_observe_store(METRICS_OP_INFO, metrics_now_ns() - t0);
    cb(ud, STORE_OK, &info);
    free(block);
}

/* (Un)subscribe: the memberships of the target's connections and claims change
 * under the lock, then the workers holding the connections are told, through the
 * same hand-off as a send (so a later send stays behind it). */
typedef struct sub_ctx {
    const char *name;
    size_t len;
    bool join;
    int64_t now;
    size_t n;
    uint64_t views;
} sub_ctx_t;

static void sub_conn(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    sub_ctx_t *x = arg;
    x->n++;
    x->views |= UINT64_C(1) << r->view->index;
    if (x->join)
        rec_join(t->channels, r, x->name, x->len);
    else
        rec_leave(t->channels, r, x->name, x->len);
}

static void sub_claim(store_memory_t *s, table_t *t, record_t *r, void *arg) {
    sub_ctx_t *x = arg;
    if (!claim_live(r, x->now)) {
        claim_delete(t, r);
        return;
    }
    if (x->join)
        rec_join(t->channels, r, x->name, x->len);
    else
        rec_leave(t->channels, r, x->name, x->len);
}

/* By channel: no work per member here. The views holding members of the source
 * get the message (as for a send, from its per-view counts) and each records the
 * memberships it changed (mem_conns_subscribed); for a join, each is marked
 * pending on the destination until then, so a send to it that follows is handed
 * to that view, behind the message. */
static void sub_by_channel(store_memory_t *s, const char *src_name, sub_ctx_t *x) {
    store_memory_shared_t *sh = s->sh;
    mchan_t *src = hmap_get(&sh->channels, src_name, strlen(src_name));
    if (!src) return;
    x->n = src->conn_count;
    for (unsigned i = 0; i < STORE_MEMORY_MAX_VIEWS; i++)
        if (src->per_view[i]) x->views |= UINT64_C(1) << i;
    if (!x->join) return;
    mchan_t *dst = NULL;
    for (unsigned i = 0; i < STORE_MEMORY_MAX_VIEWS; i++) {
        /* the views hand_off reaches */
        if (!((x->views >> i) & 1) || !sh->views[i] || !sh->views[i]->attached) continue;
        if (!dst) dst = chan_get_or_add(&sh->channels, x->name, x->len);
        dst->pending[i]++;
        dst->pending_total++;
    }
}

static void mem_subscribe(store_t *base, const store_target_t *t, const char *channel, bool join,
                          bool ignore_claims, store_delivery_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    store_delivery_t d = {0, 0, 0, false};
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, &d);
        return;
    }
    if (idem_answered(s, t, cb, ud)) return;
    uint64_t t0 = metrics_now_ns();
    sub_ctx_t x = {channel, strlen(channel), join, now_s(), 0, 0};
    sh_lock(s);
    if (!ignore_claims) each_claim_of(s, t, sub_claim, &x);
    if (!opt(t->id) && opt(t->channel))
        sub_by_channel(s, t->channel, &x);
    else
        each_conn_of(s, t, sub_conn, &x);
    worker_msg_t msg = {.kind = join ? WORKER_MSG_SUBSCRIBE : WORKER_MSG_UNSUBSCRIBE,
                        .target = *t,
                        .body = (const uint8_t *)channel,
                        .body_len = x.len};
    if (hand_off(s, &msg, x.views)) d = (store_delivery_t){x.n, 1, 0, false}; /* unlocks */
    metrics_observe_store(METRICS_OP_SUBSCRIBE, metrics_now_ns() - t0);
    idem_done(s, t, &d);
    cb(ud, STORE_OK, &d);
}

/* Worker side ------------------------------------------------------------- */

static int mem_worker_attach(store_t *base, const char *worker_id, const store_worker_handlers_t *h) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->attached) return -EBUSY;
    if (!h || !h->on_message) return -EINVAL;
    s->handlers = *h;
    s->worker_id = mem_strdup(worker_id ? worker_id : "");
    sh_lock(s); /* other threads read `attached` under the lock */
    s->attached = true;
    sh_unlock(s);
    return 0;
}

static void mem_claim_take(store_t *base, const char *claim_id, store_claim_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, NULL);
        return;
    }
    uint64_t t0 = metrics_now_ns();
    sh_lock(s);
    record_t *r = claim_id ? table_get(&s->sh->claims, claim_id) : NULL;
    /* Its channel names outlive the memberships (and channels) it leaves. */
    char **names = NULL;
    size_t n_names = r ? r->chan_count : 0;
    if (r && n_names) {
        names = mem_alloc(n_names * sizeof *names);
        size_t i = 0;
        for (const mship_t *m = r->chans; m; m = m->rec_next) names[i++] = mem_strdup(m->ch->name);
    }
    /* Out of the indexes before the callback: whatever it does, the claim is used,
     * and of concurrent takes on several threads exactly one finds it. */
    if (r) table_remove(&s->sh->claims, r);
    sh_unlock(s);
    metrics_observe_store(METRICS_OP_CLAIM_TAKE, metrics_now_ns() - t0);
    if (!r) {
        cb(ud, STORE_NOT_FOUND, NULL);
        return;
    }
    if (claim_live(r, now_s())) {
        store_claim_t c = {rec_id(r), r->user, r->session, r->time,
                           (const char *const *)names, n_names};
        cb(ud, STORE_OK, &c);
    } else {
        cb(ud, STORE_NOT_FOUND, NULL);
    }
    channel_list_free(names, n_names);
    free(r);
}

static void mem_conn_register(store_t *base, const store_conn_t *conn, store_status_cb cb, void *ud) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE);
        return;
    }
    assert(conn->id && conn->user);
    uint64_t t0 = metrics_now_ns();
    const char *worker = conn->worker ? conn->worker : s->worker_id ? s->worker_id : "";
    record_t *r = record_new(conn->id, conn->user, opt(conn->session), conn->last_ping);
    r->view = s;
    r->is_conn = true;
    sh_lock(s);
    r->worker = worker_name_ref(&s->sh->workers, worker);
    record_t *old = table_get(&s->sh->conns, conn->id);
    if (old) table_remove(&s->sh->conns, old);
    table_insert(&s->sh->conns, r);
    for (size_t i = 0; i < conn->channel_count; i++)
        rec_join(&s->sh->channels, r, conn->channels[i], strlen(conn->channels[i]));
    /* The ordering marker (store.h): into this view's own inbox under the lock,
     * behind every (un)subscription recorded before this registration (hand_off
     * pushes those under the lock too) and ahead of every later one. It is
     * handed to the worker from its loop, like a message of another thread. */
    bool marker = conn->generation && s->attached;
    if (marker) {
        char gen[24];
        int glen = snprintf(gen, sizeof gen, "%llu", (unsigned long long)conn->generation);
        worker_msg_t m = {.kind = WORKER_MSG_REGISTERED,
                          .target = {.id = conn->id},
                          .body = (const uint8_t *)gen,
                          .body_len = (size_t)glen};
        hand_off_t *node;
        copy_new(&m, 1, &node);
        mpsc_push(&s->inbox, &node->node);
    }
    sh_unlock(s);
    if (marker) uv_async_send(&s->wake);
    free(old);
    metrics_observe_store(METRICS_OP_CONN_REGISTER, metrics_now_ns() - t0);
    cb(ud, STORE_OK);
}

static void mem_conn_unregister(store_t *base, const store_conn_t *conn) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing || !conn->id) return;
    uint64_t t0 = metrics_now_ns();
    sh_lock(s);
    record_t *r = table_get(&s->sh->conns, conn->id);
    if (r) table_remove(&s->sh->conns, r);
    sh_unlock(s);
    free(r);
    metrics_observe_store(METRICS_OP_CONN_UNREGISTER, metrics_now_ns() - t0);
}

static void mem_conn_touch(store_t *base, const char *conn_id, int64_t last_ping) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing || !conn_id) return;
    uint64_t t0 = metrics_now_ns();
    sh_lock(s);
    record_t *r = table_get(&s->sh->conns, conn_id);
    if (r) r->time = last_ping;
    sh_unlock(s);
    metrics_observe_store(METRICS_OP_CONN_TOUCH, metrics_now_ns() - t0);
}

/* A view records the memberships a subscription by channel changed on it
 * (store.h), a batch at a time so the lock is never held long, then clears its
 * pending mark (sub_by_channel). Runs on the view's own thread. */
#define CONNS_SUBSCRIBED_BATCH 1000

static void mem_conns_subscribed(store_t *base, const char *channel, bool join,
                                 const char *const *ids, const char *const *before, size_t n) {
    store_memory_t *s = (store_memory_t *)base;
    if (s->closing) return;
    uint64_t t0 = metrics_now_ns();
    size_t len = strlen(channel);
    hmap_t *channels = &s->sh->channels;
    size_t at = 0;
    do {
        size_t end = n - at < CONNS_SUBSCRIBED_BATCH ? n : at + CONNS_SUBSCRIBED_BATCH;
        sh_lock(s);
        for (; at < end; at++) {
            record_t *r = table_get(&s->sh->conns, ids[at]);
            if (!r || r->view != s) continue;
            if (join)
                rec_join_after(channels, r, channel, len, before[at]);
            else
                rec_leave(channels, r, channel, len);
        }
        if (at == n && join) {
            mchan_t *ch = hmap_get(channels, channel, len);
            if (ch && ch->pending[s->index]) {
                ch->pending[s->index]--;
                ch->pending_total--;
                chan_maybe_free(channels, ch);
            }
        }
        sh_unlock(s);
    } while (at < n);
    metrics_observe_store(METRICS_OP_CHANNEL_APPLY, metrics_now_ns() - t0);
}

/* Lifecycle --------------------------------------------------------------- */

/* Memory is released only here, once libuv is done with both handles. */
static void on_handle_closed(uv_handle_t *h) {
    store_memory_t *s = h->data;
    if (--s->open_handles) return;
    void (*done)(void *) = s->done;
    void *done_ud = s->done_ud;
    inbox_drain(s); /* closing: frees what is left undelivered */
    if (s->owns_shared) store_memory_shared_free(s->sh);
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
    /* Out of the shared core: no send can resolve to this view any more, and
     * records it left behind no longer point at it. */
    sh_lock(s);
    s->sh->views[s->index] = NULL;
    table_t *conns = &s->sh->conns;
    for (link_t *l = conns->all.next; l != &conns->all;) {
        link_t *next = l->next;
        record_t *r = record_of(l, offsetof(record_t, all));
        if (r->view == s) {
            table_remove(conns, r);
            free(r);
        }
        l = next;
    }
    sh_unlock(s);
    /* A sender that resolved this view before is about to ring it: a few
     * instructions away, so waiting here is short. */
    while (atomic_load_explicit(&s->senders, memory_order_acquire)) sched_yield();
    uv_timer_stop(&s->sweep);
    s->open_handles = 2;
    uv_close((uv_handle_t *)&s->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&s->wake, on_handle_closed);
}

static const char *mem_describe(store_t *base) { return "memory"; }

/* In the process and synchronous: nothing to wait for. */
static bool mem_ready(store_t *base, const char **reason) {
    (void)base;
    *reason = NULL;
    return true;
}

static const store_ops_t memory_ops = {
    .claim_create = mem_claim_create,
    .send = mem_send,
    .disconnect = mem_disconnect,
    .info = mem_info,
    .subscribe = mem_subscribe,
    .worker_attach = mem_worker_attach,
    .claim_take = mem_claim_take,
    .conn_register = mem_conn_register,
    .conn_unregister = mem_conn_unregister,
    .conn_touch = mem_conn_touch,
    .conns_subscribed = mem_conns_subscribed,
    .close = mem_close,
    .describe = mem_describe,
    .ready = mem_ready,
};

store_memory_shared_t *store_memory_shared_new(void) {
    store_memory_shared_t *sh = mem_calloc(1, sizeof *sh);
    pthread_mutex_init(&sh->lock, NULL);
    table_init(&sh->claims);
    table_init(&sh->conns);
    sh->channels = (hmap_t)HMAP_INIT;
    sh->claims.channels = sh->conns.channels = &sh->channels;
    sh->workers = (hmap_t)HMAP_INIT;
    sh->claims.workers = sh->conns.workers = &sh->workers;
    sh->idem = (hmap_t)HMAP_INIT;
    list_init(&sh->idem_fifo);
    store_memory_shared_set_idempotency(sh, 0, 0);
    return sh;
}

void store_memory_shared_free(store_memory_shared_t *sh) {
    if (!sh) return;
    for (size_t i = 0; i < sh->view_count; i++) assert(!sh->views[i]);
    table_clear(&sh->claims);
    table_clear(&sh->conns);
    /* Channels go with their last member; what is left holds only the pending
     * marks of messages the closed views never handled. */
    for (size_t i = 0; i < sh->channels.cap; i++)
        if (sh->channels.slots[i].key) free(sh->channels.slots[i].value);
    hmap_free(&sh->channels);
    hmap_free(&sh->workers); /* empty: names go with their last record */
    while (!list_empty(&sh->idem_fifo))
        idem_drop(sh, (idem_entry_t *)((char *)sh->idem_fifo.next - offsetof(idem_entry_t, fifo)));
    hmap_free(&sh->idem);
    pthread_mutex_destroy(&sh->lock);
    free(sh);
}

store_t *store_memory_view_new(store_memory_shared_t *sh, uv_loop_t *loop) {
    store_memory_t *s = mem_calloc(1, sizeof *s);
    s->base.ops = &memory_ops;
    s->sh = sh;
    mpsc_init(&s->inbox);
    atomic_init(&s->senders, 0);
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_async_init(loop, &s->wake, on_wake);
    s->wake.data = s;
    /* Housekeeping and wake-ups only: the store alone must not keep the loop running. */
    uv_unref((uv_handle_t *)&s->sweep);
    uv_unref((uv_handle_t *)&s->wake);
    pthread_mutex_lock(&sh->lock);
    if (sh->view_count == STORE_MEMORY_MAX_VIEWS)
        log_fatal("store_memory_view_new: too many views", LOG_I("max", STORE_MEMORY_MAX_VIEWS));
    s->index = (unsigned)sh->view_count++;
    sh->views[s->index] = s;
    pthread_mutex_unlock(&sh->lock);
    if (s->index == 0) uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    return &s->base;
}

store_t *store_memory_new(uv_loop_t *loop) {
    store_t *base = store_memory_view_new(store_memory_shared_new(), loop);
    ((store_memory_t *)base)->owns_shared = true;
    return base;
}

size_t store_memory_claim_count(const store_t *base) {
    store_memory_t *s = (store_memory_t *)base;
    sh_lock(s);
    size_t n = s->sh->claims.count;
    sh_unlock(s);
    return n;
}

void store_memory_shared_sizes(store_memory_shared_t *sh, size_t *claims, size_t *conns) {
    pthread_mutex_lock(&sh->lock);
    *claims = sh->claims.count;
    *conns = sh->conns.count;
    pthread_mutex_unlock(&sh->lock);
}

size_t store_memory_conn_count(const store_t *base) {
    store_memory_t *s = (store_memory_t *)base;
    sh_lock(s);
    size_t n = s->sh->conns.count;
    sh_unlock(s);
    return n;
}
