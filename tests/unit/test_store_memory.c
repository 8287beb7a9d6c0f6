/* Unit tests for the in-memory store (standalone mode): every operation through the
 * store.h interface on a real libuv loop, claim expiry and the sweep, exact
 * user/session matching with '-' in ids, delivery counting, and a clean close
 * (run under SAN=1 so LeakSanitizer checks that close frees everything). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "store/store_memory.h"

static uv_loop_t loop;
static store_t *st;

/* Recorders for the callbacks ------------------------------------------------ */

typedef struct rec {
    int calls;
    store_status_t status;
    /* claim_take */
    char id[64], user[64], session[64];
    bool has_session, has_claim;
    int64_t expiration;
    /* send / disconnect */
    store_delivery_t d;
} rec_t;

static void status_cb(void *ud, store_status_t status) {
    rec_t *r = ud;
    r->calls++;
    r->status = status;
}

static void claim_cb(void *ud, store_status_t status, const store_claim_t *c) {
    rec_t *r = ud;
    r->calls++;
    r->status = status;
    r->has_claim = c != NULL;
    if (!c) return;
    snprintf(r->id, sizeof r->id, "%s", c->id);
    snprintf(r->user, sizeof r->user, "%s", c->user);
    r->has_session = c->session != NULL;
    snprintf(r->session, sizeof r->session, "%s", c->session ? c->session : "");
    r->expiration = c->expiration;
}

static void delivery_cb(void *ud, store_status_t status, const store_delivery_t *d) {
    rec_t *r = ud;
    r->calls++;
    r->status = status;
    cr_assert_not_null(d);
    r->d = *d;
}

/* info: copies what it needs, since the arrays die with the callback */
typedef struct info_rec {
    int calls;
    store_status_t status;
    size_t conn_count, claim_count;
    char conn_ids[64][48];
    int64_t conn_ping[64];
    char conn_worker[48];
    bool conn_has_session[64];
    char claim_ids[64][48];
} info_rec_t;

static void info_cb(void *ud, store_status_t status, const store_info_t *info) {
    info_rec_t *r = ud;
    r->calls++;
    r->status = status;
    cr_assert_not_null(info);
    r->conn_count = info->conn_count;
    r->claim_count = info->claim_count;
    for (size_t i = 0; i < info->conn_count && i < 64; i++) {
        snprintf(r->conn_ids[i], sizeof r->conn_ids[i], "%s", info->conns[i].id);
        r->conn_ping[i] = info->conns[i].last_ping;
        r->conn_has_session[i] = info->conns[i].session != NULL;
        snprintf(r->conn_worker, sizeof r->conn_worker, "%s", info->conns[i].worker);
    }
    for (size_t i = 0; i < info->claim_count && i < 64; i++)
        snprintf(r->claim_ids[i], sizeof r->claim_ids[i], "%s", info->claims[i].id);
}

/* Worker handlers */
typedef struct wrec {
    int messages;
    int resyncs;
    worker_msg_kind_t kind;
    const worker_msg_t *last; /* pointer identity: the message is passed as given */
    char target_user[64], target_session[64], target_id[64];
    /* when set, the handler unregisters these connections, like a worker closing
     * them on a disconnect */
    const char **unregister_ids;
} wrec_t;

static void on_message(void *ud, const worker_msg_t *msg) {
    wrec_t *w = ud;
    w->messages++;
    w->kind = msg->kind;
    w->last = msg;
    snprintf(w->target_user, sizeof w->target_user, "%s", msg->target.user ? msg->target.user : "");
    snprintf(w->target_session, sizeof w->target_session, "%s",
             msg->target.session ? msg->target.session : "");
    snprintf(w->target_id, sizeof w->target_id, "%s", msg->target.id ? msg->target.id : "");
    for (const char **id = w->unregister_ids; id && *id; id++)
        store_conn_unregister(st, &(store_conn_t){.id = *id, .user = "ignored"});
}

static void on_resync(void *ud) { ((wrec_t *)ud)->resyncs++; }

/* Fixture and helpers -------------------------------------------------------- */

static void setup(void) {
    cr_assert_eq(uv_loop_init(&loop), 0);
    st = store_memory_new(&loop);
    cr_assert_not_null(st);
}

static void closed(void *ud) { (*(int *)ud)++; }

static void close_store(void) {
    int done = 0;
    store_close(st, closed, &done);
    cr_assert_eq(done, 0, "done runs from the close callback, not inline");
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(done, 1);
    st = NULL;
}

static void teardown(void) {
    if (st) close_store();
    cr_assert_eq(uv_loop_close(&loop), 0, "every handle closed");
}

TestSuite(store_memory, .init = setup, .fini = teardown);

static int64_t now_s(void) { return (int64_t)time(NULL); }

static store_status_t create_claim(const char *id, const char *user, const char *session,
                                   int64_t expiration) {
    rec_t r = {0};
    store_claim_create(st, &(store_claim_t){id, user, session, expiration}, status_cb, &r);
    cr_assert_eq(r.calls, 1, "callback ran before the call returned");
    return r.status;
}

static rec_t take_claim(const char *id) {
    rec_t r = {0};
    store_claim_take(st, id, claim_cb, &r);
    cr_assert_eq(r.calls, 1);
    return r;
}

static void reg(const char *id, const char *user, const char *session, int64_t ping) {
    rec_t r = {0};
    store_conn_register(st, &(store_conn_t){id, user, session, "w1", ping}, status_cb, &r);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, STORE_OK);
}

static info_rec_t info(const char *id, const char *user, const char *session) {
    info_rec_t r = {0};
    store_info(st, &(store_target_t){id, user, session}, info_cb, &r);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, STORE_OK);
    return r;
}

static bool has(char ids[][48], size_t n, const char *id) {
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0) return true;
    return false;
}

static rec_t send_to(const char *id, const char *user, const char *session) {
    rec_t r = {0};
    worker_msg_t msg = {WORKER_MSG_TEXT, {id, user, session}, (const uint8_t *)"hi", 2};
    store_send(st, &msg, delivery_cb, &r);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, STORE_OK);
    return r;
}

static rec_t disconnect(const char *id, const char *user, const char *session, bool keep) {
    rec_t r = {0};
    store_disconnect(st, &(store_target_t){id, user, session}, keep, delivery_cb, &r);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, STORE_OK);
    return r;
}

static void attach(wrec_t *w) {
    store_worker_handlers_t h = {on_message, on_resync, w};
    cr_assert_eq(store_worker_attach(st, "w1", &h), 0);
}

/* Lifecycle ------------------------------------------------------------------ */

Test(store_memory, describe_and_close) {
    cr_assert_str_eq(store_describe(st), "memory");
    close_store();
}

Test(store_memory, close_with_null_done) {
    store_close(st, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    st = NULL;
}

Test(store_memory, sweep_timer_does_not_keep_loop_alive) {
    /* With only the store on it, the loop has nothing to wait for. */
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
}

Test(store_memory, close_frees_everything) {
    wrec_t w = {0};
    attach(&w);
    char id[32], user[32], session[32];
    for (int i = 0; i < 500; i++) {
        snprintf(id, sizeof id, "claim-%d", i);
        snprintf(user, sizeof user, "u-%d", i % 7);
        snprintf(session, sizeof session, "s-%d", i % 3);
        cr_assert_eq(create_claim(id, user, i % 2 ? session : NULL, now_s() + 100), STORE_OK);
        snprintf(id, sizeof id, "conn-%d", i);
        reg(id, user, i % 2 ? session : NULL, 1);
    }
    cr_assert_eq(create_claim("dead", "u", NULL, now_s() + 1000), STORE_OK);
    /* an info buffer allocated and kept for reuse */
    info_rec_t r = info(NULL, "u-1", NULL);
    cr_assert_gt(r.conn_count, 0);
    cr_assert_eq(store_memory_claim_count(st), 501);
    cr_assert_eq(store_memory_conn_count(st), 500);
    close_store(); /* LeakSanitizer (SAN=1) checks the rest */
}

Test(store_memory, calls_after_close_started_are_unavailable) {
    int done = 0;
    store_close(st, closed, &done);
    rec_t r = {0};
    store_claim_create(st, &(store_claim_t){"c", "u", NULL, now_s() + 10}, status_cb, &r);
    cr_assert_eq(r.status, STORE_UNAVAILABLE);
    r = (rec_t){0};
    store_claim_take(st, "c", claim_cb, &r);
    cr_assert_eq(r.status, STORE_UNAVAILABLE);
    cr_assert_not(r.has_claim);
    r = (rec_t){0};
    store_send(st, &(worker_msg_t){.kind = WORKER_MSG_TEXT, .target = {.user = "u"}}, delivery_cb, &r);
    cr_assert_eq(r.status, STORE_UNAVAILABLE);
    info_rec_t i = {0};
    store_info(st, &(store_target_t){.user = "u"}, info_cb, &i);
    cr_assert_eq(i.status, STORE_UNAVAILABLE);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(done, 1);
    st = NULL;
}

/* Claims --------------------------------------------------------------------- */

Test(store_memory, claim_create_take_single_use) {
    int64_t exp = now_s() + 60;
    cr_assert_eq(create_claim("abc", "1", "a", exp), STORE_OK);
    cr_assert_eq(create_claim("abc", "2", NULL, exp), STORE_EXISTS);

    rec_t r = take_claim("abc");
    cr_assert_eq(r.status, STORE_OK);
    cr_assert(r.has_claim);
    cr_assert_str_eq(r.id, "abc");
    cr_assert_str_eq(r.user, "1", "the first claim is untouched by the refused create");
    cr_assert(r.has_session);
    cr_assert_str_eq(r.session, "a");
    cr_assert_eq(r.expiration, exp);

    r = take_claim("abc");
    cr_assert_eq(r.status, STORE_NOT_FOUND);
    cr_assert_not(r.has_claim);
    cr_assert_eq(take_claim("never").status, STORE_NOT_FOUND);
    cr_assert_eq(store_memory_claim_count(st), 0);

    /* once taken, the id is free again */
    cr_assert_eq(create_claim("abc", "3", NULL, exp), STORE_OK);
}

Test(store_memory, claim_strings_are_copied) {
    char id[] = "id-1", user[] = "user-1", session[] = "sess-1";
    cr_assert_eq(create_claim(id, user, session, now_s() + 60), STORE_OK);
    memset(id, 'x', sizeof id - 1);
    memset(user, 'x', sizeof user - 1);
    memset(session, 'x', sizeof session - 1);
    rec_t r = take_claim("id-1");
    cr_assert_eq(r.status, STORE_OK);
    cr_assert_str_eq(r.user, "user-1");
    cr_assert_str_eq(r.session, "sess-1");
}

Test(store_memory, claim_empty_session_is_none) {
    cr_assert_eq(create_claim("c", "u", "", now_s() + 60), STORE_OK);
    rec_t r = take_claim("c");
    cr_assert_eq(r.status, STORE_OK);
    cr_assert_not(r.has_session);
}

static void retake_in_callback(void *ud, store_status_t status, const store_claim_t *c) {
    rec_t *r = ud;
    r->calls++;
    r->status = status;
    cr_assert_eq(status, STORE_OK);
    /* already gone while the taker looks at it */
    rec_t again = {0};
    store_claim_take(st, c->id, claim_cb, &again);
    cr_assert_eq(again.status, STORE_NOT_FOUND);
    cr_assert_str_eq(c->user, "u");
}

Test(store_memory, claim_take_is_single_use_even_from_its_callback) {
    cr_assert_eq(create_claim("c", "u", NULL, now_s() + 60), STORE_OK);
    rec_t r = {0};
    store_claim_take(st, "c", retake_in_callback, &r);
    cr_assert_eq(r.calls, 1);
}

Test(store_memory, claim_expired_in_the_past) {
    cr_assert_eq(create_claim("old", "u", NULL, now_s() - 1), STORE_OK);
    cr_assert_eq(store_memory_claim_count(st), 0, "born expired: nothing kept");
    cr_assert_eq(info(NULL, "u", NULL).claim_count, 0);
    cr_assert_eq(take_claim("old").status, STORE_NOT_FOUND);
    cr_assert_eq(create_claim("old", "u", NULL, now_s() + 60), STORE_OK);
    cr_assert_eq(take_claim("old").status, STORE_OK);
}

static void wait_until(int64_t t) {
    while (now_s() < t) usleep(20 * 1000);
}

Test(store_memory, claim_expires_at_access) {
    int64_t exp = now_s() + 1;
    cr_assert_eq(create_claim("soon", "u", "s", exp), STORE_OK);
    cr_assert_eq(create_claim("later", "u", "s", exp + 100), STORE_OK);
    cr_assert_eq(create_claim("soon2", "u", NULL, exp), STORE_OK);
    info_rec_t r = info(NULL, "u", NULL);
    cr_assert_eq(r.claim_count, 3);
    cr_assert_eq(create_claim("soon", "u", NULL, exp + 10), STORE_EXISTS);

    wait_until(exp); /* now >= expiration: gone, with no loop run in between */
    cr_assert_eq(take_claim("soon").status, STORE_NOT_FOUND);
    r = info(NULL, "u", "s");
    cr_assert_eq(r.claim_count, 1);
    cr_assert_str_eq(r.claim_ids[0], "later");
    /* an expired id can be created again */
    cr_assert_eq(create_claim("soon2", "v", NULL, exp + 60), STORE_OK);
    rec_t t = take_claim("soon2");
    cr_assert_eq(t.status, STORE_OK);
    cr_assert_str_eq(t.user, "v");
    cr_assert_eq(store_memory_claim_count(st), 1);
}

static void on_guard(uv_timer_t *t) { (void)t; }

Test(store_memory, sweep_frees_expired_claims, .timeout = 10) {
    int64_t exp = now_s() + 1;
    cr_assert_eq(create_claim("soon", "u", "s", exp), STORE_OK);
    cr_assert_eq(create_claim("later", "u", "s", exp + 100), STORE_OK);
    cr_assert_eq(store_memory_claim_count(st), 2);
    /* The sweep timer is unreferenced: keep the loop alive with one of ours. */
    uv_timer_t guard;
    uv_timer_init(&loop, &guard);
    uv_timer_start(&guard, on_guard, 50, 50);
    uint64_t deadline = uv_now(&loop) + 4000;
    while (store_memory_claim_count(st) == 2 && uv_now(&loop) < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(store_memory_claim_count(st), 1, "the sweep freed the expired claim");
    cr_assert_geq(now_s(), exp);
    cr_assert_eq(take_claim("later").status, STORE_OK);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* Connections and info ------------------------------------------------------- */

Test(store_memory, conn_register_info_touch_unregister) {
    reg("c1", "u", NULL, 100);
    info_rec_t r = info("c1", NULL, NULL);
    cr_assert_eq(r.conn_count, 1);
    cr_assert_str_eq(r.conn_ids[0], "c1");
    cr_assert_eq(r.conn_ping[0], 100);
    cr_assert_str_eq(r.conn_worker, "w1");
    cr_assert_not(r.conn_has_session[0]);

    store_conn_touch(st, "c1", 250);
    store_conn_touch(st, "unknown", 1); /* ignored */
    cr_assert_eq(info("c1", NULL, NULL).conn_ping[0], 250);
    cr_assert_eq(info(NULL, "u", NULL).conn_ping[0], 250);

    store_conn_unregister(st, &(store_conn_t){"c1", "u", NULL, "w1", 0});
    store_conn_unregister(st, &(store_conn_t){"c1", "u", NULL, "w1", 0}); /* twice: no-op */
    cr_assert_eq(info("c1", NULL, NULL).conn_count, 0);
    cr_assert_eq(info(NULL, "u", NULL).conn_count, 0);
    cr_assert_eq(store_memory_conn_count(st), 0);
}

/* A user's (a session's) records form a ring the map points into at its oldest:
 * taking out the oldest, a middle one or the last must keep the rest findable,
 * in registration order, and the worker name shared by them alive. */
Test(store_memory, user_and_session_rings_survive_removals) {
    wrec_t w = {0};
    attach(&w);
    reg("c1", "u", "s1", 1);
    reg("c2", "u", "s2", 2);
    reg("c3", "u", "s1", 3);
    reg("c4", "u", NULL, 4);
    reg("c5", "u", "s1", 5);
    info_rec_t r = info(NULL, "u", NULL);
    cr_assert_eq(r.conn_count, 5);
    for (int i = 0; i < 5; i++) cr_expect_eq(r.conn_ping[i], i + 1, "oldest first");
    store_conn_unregister(st, &(store_conn_t){"c1", "u", "s1", "w1", 0}); /* oldest of both */
    r = info(NULL, "u", "s1");
    cr_assert_eq(r.conn_count, 2);
    cr_expect_str_eq(r.conn_ids[0], "c3");
    cr_expect_str_eq(r.conn_ids[1], "c5");
    cr_expect_str_eq(r.conn_worker, "w1");
    cr_expect_eq(send_to(NULL, "u", "s1").d.connections, 2);
    cr_expect_eq(send_to(NULL, "u", NULL).d.connections, 4);
    store_conn_unregister(st, &(store_conn_t){"c5", "u", "s1", "w1", 0}); /* the newest */
    cr_expect_eq(info(NULL, "u", "s1").conn_count, 1);
    cr_expect_eq(info(NULL, "u", "s2").conn_count, 1);
    const char *ids[] = {"c2", "c3", "c4"};
    for (int i = 0; i < 3; i++) store_conn_unregister(st, &(store_conn_t){ids[i], "u", NULL, "w1", 0});
    cr_expect_eq(info(NULL, "u", NULL).conn_count, 0);
    cr_expect_eq(info(NULL, "u", "s1").conn_count, 0);
    cr_expect_eq(store_memory_conn_count(st), 0);
    reg("c6", "u", "s1", 6); /* the keys and the worker name can be made again */
    cr_expect_eq(info(NULL, "u", "s1").conn_count, 1);
    cr_expect_str_eq(info(NULL, "u", "s1").conn_worker, "w1");
    /* A disconnect deletes the claims it visits, the ring's oldest first. */
    int64_t exp = now_s() + 60;
    cr_assert_eq(create_claim("k1", "u", "s1", exp), STORE_OK);
    cr_assert_eq(create_claim("k2", "u", "s1", exp), STORE_OK);
    cr_assert_eq(create_claim("k3", "u", NULL, exp), STORE_OK);
    cr_assert_eq(create_claim("k4", "u", "s1", exp), STORE_OK);
    disconnect(NULL, "u", "s1", false);
    cr_expect_eq(info(NULL, "u", "s1").claim_count, 0);
    cr_expect_eq(info(NULL, "u", NULL).claim_count, 1);
    disconnect(NULL, "u", NULL, false);
    cr_expect_eq(info(NULL, "u", NULL).claim_count, 0);
    cr_expect_eq(store_memory_claim_count(st), 0);
}

Test(store_memory, conn_reregister_replaces) {
    reg("c1", "u", "s", 1);
    reg("c1", "v", NULL, 2);
    cr_assert_eq(store_memory_conn_count(st), 1);
    cr_assert_eq(info(NULL, "u", NULL).conn_count, 0);
    cr_assert_eq(info(NULL, "u", "s").conn_count, 0);
    info_rec_t r = info(NULL, "v", NULL);
    cr_assert_eq(r.conn_count, 1);
    cr_assert_eq(r.conn_ping[0], 2);
}

Test(store_memory, info_filters_exactly_with_dashes) {
    /* "$user-$session" would make all of these one key */
    reg("c1", "a", "b-c", 1);
    reg("c2", "a-b", "c", 2);
    reg("c3", "a-b-c", NULL, 3);
    reg("c4", "a-b", NULL, 4);
    reg("c5", "a", NULL, 5);
    reg("c6", "a", "b", 6);
    int64_t exp = now_s() + 60;
    cr_assert_eq(create_claim("k1", "a", "b-c", exp), STORE_OK);
    cr_assert_eq(create_claim("k2", "a-b", "c", exp), STORE_OK);
    cr_assert_eq(create_claim("k3", "a-b-c", NULL, exp), STORE_OK);
    cr_assert_eq(create_claim("k4", "a", NULL, exp), STORE_OK);

    info_rec_t r = info(NULL, "a", "b-c");
    cr_assert_eq(r.conn_count, 1);
    cr_assert_str_eq(r.conn_ids[0], "c1");
    cr_assert_eq(r.claim_count, 1);
    cr_assert_str_eq(r.claim_ids[0], "k1");

    r = info(NULL, "a-b", "c");
    cr_assert_eq(r.conn_count, 1);
    cr_assert_str_eq(r.conn_ids[0], "c2");
    cr_assert_eq(r.claim_count, 1);
    cr_assert_str_eq(r.claim_ids[0], "k2");

    r = info(NULL, "a-b-c", NULL);
    cr_assert_eq(r.conn_count, 1);
    cr_assert_str_eq(r.conn_ids[0], "c3");
    cr_assert_eq(r.claim_count, 1);

    r = info(NULL, "a", NULL); /* the whole user, every session and none */
    cr_assert_eq(r.conn_count, 3);
    cr_assert(has(r.conn_ids, 3, "c1") && has(r.conn_ids, 3, "c5") && has(r.conn_ids, 3, "c6"));
    cr_assert_eq(r.claim_count, 2);
    cr_assert(has(r.claim_ids, 2, "k1") && has(r.claim_ids, 2, "k4"));

    r = info(NULL, "a", ""); /* empty session: no narrowing */
    cr_assert_eq(r.conn_count, 3);

    r = info(NULL, "a-b", NULL);
    cr_assert_eq(r.conn_count, 2);
    cr_assert(has(r.conn_ids, 2, "c2") && has(r.conn_ids, 2, "c4"));

    cr_assert_eq(info(NULL, "a", "b").conn_count, 1);
    cr_assert_eq(info(NULL, "a", "c").conn_count, 0);
    cr_assert_eq(info(NULL, "b", NULL).conn_count, 0);
    cr_assert_eq(info(NULL, "a-", NULL).conn_count, 0);
}

Test(store_memory, info_id_target) {
    reg("c1", "u", "s", 1);
    cr_assert_eq(create_claim("k", "u", "s", now_s() + 60), STORE_OK);
    info_rec_t r = info("c1", "other", NULL); /* id wins over user */
    cr_assert_eq(r.conn_count, 1);
    cr_assert_eq(r.claim_count, 0, "claims are empty for an id target");
    r = info("nope", "u", NULL);
    cr_assert_eq(r.conn_count, 0);
    cr_assert_eq(r.claim_count, 0);
    r = info("", "u", NULL); /* empty id: the user target */
    cr_assert_eq(r.conn_count, 1);
    cr_assert_eq(r.claim_count, 1);
    r = info(NULL, NULL, NULL);
    cr_assert_eq(r.conn_count + r.claim_count, 0);
}

Test(store_memory, info_many) {
    char id[32], session[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof id, "c%d", i);
        snprintf(session, sizeof session, "s%d", i % 10);
        reg(id, "u", session, i);
        snprintf(id, sizeof id, "k%d", i);
        cr_assert_eq(create_claim(id, "u", session, now_s() + 60), STORE_OK);
    }
    info_rec_t r = info(NULL, "u", NULL);
    cr_assert_eq(r.conn_count, 1000);
    cr_assert_eq(r.claim_count, 1000);
    r = info(NULL, "u", "s3");
    cr_assert_eq(r.conn_count, 100);
    cr_assert_eq(r.claim_count, 100);
    for (int i = 0; i < 1000; i += 2) {
        snprintf(id, sizeof id, "c%d", i);
        store_conn_unregister(st, &(store_conn_t){.id = id});
    }
    cr_assert_eq(info(NULL, "u", NULL).conn_count, 500);
    cr_assert_eq(info(NULL, "u", "s3").conn_count, 100); /* odd i only */
    cr_assert_eq(info(NULL, "u", "s4").conn_count, 0);
}

/* The outer arrays must survive an info call made from inside the callback. */
typedef struct nested {
    int calls;
    info_rec_t inner;
} nested_t;

static void outer_info_cb(void *ud, store_status_t status, const store_info_t *i) {
    nested_t *n = ud;
    n->calls++;
    cr_assert_eq(i->conn_count, 2);
    const store_conn_t *before = i->conns;
    char id0[16], id1[16];
    snprintf(id0, sizeof id0, "%s", i->conns[0].id);
    snprintf(id1, sizeof id1, "%s", i->conns[1].id);
    store_info(st, &(store_target_t){.user = "v"}, info_cb, &n->inner);
    cr_assert_eq(i->conns, before);
    cr_assert_str_eq(i->conns[0].id, id0);
    cr_assert_str_eq(i->conns[1].id, id1);
}

Test(store_memory, info_nested_call) {
    reg("c1", "u", NULL, 1);
    reg("c2", "u", NULL, 2);
    reg("c3", "v", NULL, 3);
    nested_t n = {0};
    store_info(st, &(store_target_t){.user = "u"}, outer_info_cb, &n);
    cr_assert_eq(n.calls, 1);
    cr_assert_eq(n.inner.conn_count, 1);
    cr_assert_str_eq(n.inner.conn_ids[0], "c3");
    /* and the shared buffer is usable again afterwards */
    cr_assert_eq(info(NULL, "u", NULL).conn_count, 2);
}

/* Worker attach, send, disconnect ------------------------------------------ */

Test(store_memory, worker_attach_once) {
    wrec_t w = {0};
    attach(&w);
    store_worker_handlers_t h = {on_message, on_resync, &w};
    cr_assert_eq(store_worker_attach(st, "w2", &h), -EBUSY);
}

Test(store_memory, worker_attach_needs_on_message) {
    store_worker_handlers_t h = {NULL, NULL, NULL};
    cr_assert_eq(store_worker_attach(st, "w1", &h), -EINVAL);
    wrec_t w = {0};
    attach(&w); /* the refused attach did not count */
}

Test(store_memory, send_counts_and_hands_over_once) {
    wrec_t w = {0};
    attach(&w);
    reg("c1", "u", "s", 1);
    reg("c2", "u", "s", 1);
    reg("c3", "u", NULL, 1);
    reg("c4", "u-s", NULL, 1);

    rec_t r = {0};
    worker_msg_t msg = {WORKER_MSG_BINARY, {NULL, "u", NULL}, (const uint8_t *)"\0\1", 2};
    store_send(st, &msg, delivery_cb, &r);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(w.messages, 1, "one hand-off for all the connections");
    cr_assert_eq(w.last, &msg, "the message as given");
    cr_assert_eq(w.kind, WORKER_MSG_BINARY);
    cr_assert_eq(r.d.connections, 3);
    cr_assert_eq(r.d.workers, 1);
    cr_assert_eq(r.d.unreachable, 0);

    r = send_to(NULL, "u", "s");
    cr_assert_eq(w.messages, 2);
    cr_assert_eq(r.d.connections, 2);
    cr_assert_eq(r.d.workers, 1);

    r = send_to("c4", "u", "s"); /* id wins */
    cr_assert_eq(w.messages, 3);
    cr_assert_eq(r.d.connections, 1);
    cr_assert_str_eq(w.target_id, "c4");

    r = send_to(NULL, "nobody", NULL);
    cr_assert_eq(w.messages, 3, "no connections: the worker is not bothered");
    cr_assert_eq(r.d.connections, 0);
    cr_assert_eq(r.d.workers, 0);
    cr_assert_eq(r.d.unreachable, 0);

    r = send_to("missing", NULL, NULL);
    cr_assert_eq(w.messages, 3);
    cr_assert_eq(r.d.connections + r.d.workers, 0);

    r = send_to(NULL, "u", "t");
    cr_assert_eq(r.d.connections, 0);
    cr_assert_eq(w.resyncs, 0);
}

Test(store_memory, send_without_worker) {
    reg("c1", "u", NULL, 1);
    rec_t r = send_to(NULL, "u", NULL);
    cr_assert_eq(r.d.connections, 0);
    cr_assert_eq(r.d.workers, 0);
}

static void claims_of(const char *user, const char *session, size_t expect) {
    info_rec_t r = info(NULL, user, session);
    cr_assert_eq(r.claim_count, expect, "claims of %s/%s: %zu, expected %zu", user,
                 session ? session : "-", r.claim_count, expect);
}

static void make_claims(void) {
    int64_t exp = now_s() + 60;
    cr_assert_eq(create_claim("k-ax", "a", "x", exp), STORE_OK);
    cr_assert_eq(create_claim("k-ax2", "a", "x", exp), STORE_OK);
    cr_assert_eq(create_claim("k-ay", "a", "y", exp), STORE_OK);
    cr_assert_eq(create_claim("k-a", "a", NULL, exp), STORE_OK);
    cr_assert_eq(create_claim("k-abx", "a-x", NULL, exp), STORE_OK);
    cr_assert_eq(create_claim("k-ab-x", "a", "x-y", exp), STORE_OK);
}

Test(store_memory, disconnect_session_deletes_only_its_claims) {
    wrec_t w = {0};
    attach(&w);
    reg("c1", "a", "x", 1);
    reg("c2", "a", "y", 1);
    make_claims();
    rec_t r = disconnect(NULL, "a", "x", false);
    cr_assert_eq(w.messages, 1);
    cr_assert_eq(w.kind, WORKER_MSG_DISCONNECT);
    cr_assert_str_eq(w.target_user, "a");
    cr_assert_str_eq(w.target_session, "x");
    cr_assert_eq(r.d.connections, 1);
    cr_assert_eq(r.d.workers, 1);
    claims_of("a", "x", 0);
    claims_of("a", "y", 1);
    claims_of("a", "x-y", 1);
    claims_of("a-x", NULL, 1);
    claims_of("a", NULL, 3);
    cr_assert_eq(take_claim("k-ax").status, STORE_NOT_FOUND);
    cr_assert_eq(store_memory_claim_count(st), 4);
}

Test(store_memory, disconnect_user_deletes_all_its_claims) {
    make_claims();
    rec_t r = disconnect(NULL, "a", NULL, false);
    cr_assert_eq(r.d.connections, 0, "no connections: still deletes claims");
    cr_assert_eq(r.d.workers, 0);
    claims_of("a", NULL, 0);
    claims_of("a-x", NULL, 1);
    cr_assert_eq(store_memory_claim_count(st), 1);
}

Test(store_memory, disconnect_keep_claims) {
    wrec_t w = {0};
    attach(&w);
    reg("c1", "a", "x", 1);
    make_claims();
    rec_t r = disconnect(NULL, "a", NULL, true);
    cr_assert_eq(r.d.connections, 1);
    cr_assert_eq(w.messages, 1);
    cr_assert_eq(store_memory_claim_count(st), 6);
    r = disconnect(NULL, "a", "x", true);
    cr_assert_eq(store_memory_claim_count(st), 6);
}

Test(store_memory, disconnect_id_deletes_no_claims) {
    wrec_t w = {0};
    attach(&w);
    reg("c1", "a", "x", 1);
    make_claims();
    rec_t r = disconnect("c1", "a", NULL, false);
    cr_assert_eq(r.d.connections, 1);
    cr_assert_eq(w.messages, 1);
    cr_assert_str_eq(w.target_id, "c1");
    cr_assert_eq(store_memory_claim_count(st), 6);
}

Test(store_memory, disconnect_while_worker_unregisters) {
    /* The worker closes the connections (and unregisters them) inside on_message:
     * the count is the one before the hand-off. */
    const char *ids[] = {"c1", "c2", "c3", NULL};
    wrec_t w = {.unregister_ids = ids};
    attach(&w);
    reg("c1", "a", "x", 1);
    reg("c2", "a", "x", 1);
    reg("c3", "a", NULL, 1);
    reg("c4", "b", NULL, 1);
    rec_t r = disconnect(NULL, "a", NULL, false);
    cr_assert_eq(r.d.connections, 3);
    cr_assert_eq(r.d.workers, 1);
    cr_assert_eq(store_memory_conn_count(st), 1);
    cr_assert_eq(info(NULL, "a", NULL).conn_count, 0);
    cr_assert_eq(info(NULL, "a", "x").conn_count, 0);
    cr_assert_eq(info(NULL, "b", NULL).conn_count, 1);
}

/* Channels ------------------------------------------------------------------- */

typedef struct chan_info {
    int calls;
    size_t conn_count, claim_count;
    char conn_chans[8][128];  /* "a,b,c" per connection */
    char claim_chans[8][128];
    char conn_ids[8][48], claim_ids[8][48];
} chan_info_t;

static void join_names(char *out, size_t n, const char *const *names, size_t count) {
    out[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        if (i) strncat(out, ",", n - strlen(out) - 1);
        strncat(out, names[i], n - strlen(out) - 1);
    }
}

static void chan_info_cb(void *ud, store_status_t status, const store_info_t *info) {
    chan_info_t *r = ud;
    r->calls++;
    cr_assert_eq(status, STORE_OK);
    r->conn_count = info->conn_count;
    r->claim_count = info->claim_count;
    for (size_t i = 0; i < info->conn_count && i < 8; i++) {
        join_names(r->conn_chans[i], 128, info->conns[i].channels, info->conns[i].channel_count);
        snprintf(r->conn_ids[i], 48, "%s", info->conns[i].id);
    }
    for (size_t i = 0; i < info->claim_count && i < 8; i++) {
        join_names(r->claim_chans[i], 128, info->claims[i].channels,
                   info->claims[i].channel_count);
        snprintf(r->claim_ids[i], 48, "%s", info->claims[i].id);
    }
}

static chan_info_t info_t(store_target_t t) {
    chan_info_t r = {0};
    store_info(st, &t, chan_info_cb, &r);
    cr_assert_eq(r.calls, 1);
    return r;
}

static void reg_ch(const char *id, const char *user, const char *const *chans, size_t n) {
    rec_t r = {0};
    store_conn_register(st, &(store_conn_t){id, user, NULL, "w1", 1, chans, n}, status_cb, &r);
    cr_assert_eq(r.status, STORE_OK);
}

static rec_t subscribe(store_target_t t, const char *ch, bool join, bool ignore) {
    rec_t r = {0};
    store_subscribe(st, &t, ch, join, ignore, delivery_cb, &r);
    cr_assert_eq(r.calls, 1);
    cr_assert_eq(r.status, STORE_OK);
    return r;
}

static rec_t send_channel(const char *ch) {
    rec_t r = {0};
    worker_msg_t msg = {WORKER_MSG_TEXT, {.channel = ch}, (const uint8_t *)"hi", 2};
    store_send(st, &msg, delivery_cb, &r);
    cr_assert_eq(r.status, STORE_OK);
    return r;
}

Test(store_memory, channels_register_info_send) {
    wrec_t w = {0};
    attach(&w);
    reg_ch("c1", "u", (const char *[]){"b", "a"}, 2);
    reg_ch("c2", "v", (const char *[]){"a"}, 1);
    reg("c3", "v", NULL, 1);
    chan_info_t i = info_t((store_target_t){.channel = "a"});
    cr_assert_eq(i.conn_count, 2);
    i = info_t((store_target_t){.id = "c1"});
    cr_assert_str_eq(i.conn_chans[0], "b,a");
    i = info_t((store_target_t){.id = "c3"});
    cr_assert_str_eq(i.conn_chans[0], "");
    rec_t r = send_channel("a");
    cr_assert_eq(r.d.connections, 2);
    cr_assert_eq(r.d.workers, 1);
    cr_assert_eq(w.messages, 1); /* once per worker, not per member */
    cr_assert_eq(send_channel("none").d.connections, 0);
    cr_assert_eq(w.messages, 1);
    /* channel before user */
    i = info_t((store_target_t){.channel = "b", .user = "v"});
    cr_assert_eq(i.conn_count, 1);
    cr_assert_str_eq(i.conn_ids[0], "c1");
    /* unregistering and re-registering keep the channel exact */
    store_conn_unregister(st, &(store_conn_t){.id = "c1", .user = "u"});
    cr_assert_eq(send_channel("b").d.connections, 0);
    reg_ch("c2", "v", (const char *[]){"z"}, 1);
    cr_assert_eq(send_channel("a").d.connections, 0);
    cr_assert_eq(send_channel("z").d.connections, 1);
}

/* A subscription by channel: the store hands it to the views holding members of
 * the source, marks them pending on the destination (a send reaches them before
 * they recorded anything), and records what each worker reports, in its order. */
Test(store_memory, subscribe_by_channel_is_recorded_by_the_workers) {
    wrec_t w = {0};
    attach(&w);
    reg_ch("c1", "u", (const char *[]){"src", "a"}, 2);
    reg_ch("c2", "v", (const char *[]){"src"}, 1);
    reg_ch("c3", "v", (const char *[]){"dst"}, 1);
    rec_t r = subscribe((store_target_t){.channel = "src"}, "dst", true, true);
    cr_assert_eq(r.d.connections, 2);
    cr_assert_eq(w.messages, 1);
    cr_assert_eq(w.kind, WORKER_MSG_SUBSCRIBE);
    cr_assert_eq(info_t((store_target_t){.channel = "dst"}).conn_count, 1); /* c3 only, yet */
    w.messages = 0;
    send_channel("dst");
    cr_assert_eq(w.messages, 1);
    /* a subscription by user recorded before the worker reported: kept after it */
    subscribe((store_target_t){.user = "u"}, "late", true, true);
    store_conns_subscribed(st, "dst", true, (const char *[]){"c1", "c2"},
                           (const char *[]){"a", ""}, 2);
    chan_info_t i = info_t((store_target_t){.id = "c1"});
    cr_assert_str_eq(i.conn_chans[0], "src,a,dst,late");
    i = info_t((store_target_t){.id = "c2"});
    cr_assert_str_eq(i.conn_chans[0], "dst,src");
    cr_assert_eq(send_channel("dst").d.connections, 3);
    /* the pending mark went with the report: a channel nobody is in is freed,
     * and sends to it reach no view */
    subscribe((store_target_t){.channel = "src"}, "empty", true, true);
    store_conns_subscribed(st, "empty", true, NULL, NULL, 0);
    w.messages = 0;
    cr_assert_eq(send_channel("empty").d.connections, 0);
    cr_assert_eq(w.messages, 0);
    /* an unknown source: nothing to hand over */
    r = subscribe((store_target_t){.channel = "nobody"}, "dst", true, true);
    cr_assert_eq(r.d.connections + r.d.workers, 0);
    cr_assert_eq(w.messages, 0);
}

typedef struct take {
    int calls;
    char chans[64];
} take_t;

static void take_cb(void *ud, store_status_t status, const store_claim_t *c) {
    take_t *t = ud;
    t->calls++;
    cr_assert_eq(status, STORE_OK);
    join_names(t->chans, sizeof t->chans, c->channels, c->channel_count);
}

Test(store_memory, channels_claims_subscribe_take) {
    wrec_t w = {0};
    attach(&w);
    int64_t exp = now_s() + 100;
    rec_t r = {0};
    store_claim_create(st, &(store_claim_t){"k1", "u", NULL, exp, (const char *[]){"x"}, 1},
                       status_cb, &r);
    cr_assert_eq(r.status, STORE_OK);
    cr_assert_eq(create_claim("k2", "u", "s", exp), STORE_OK);
    reg("c1", "u", NULL, 1);
    /* subscribe by user: connections and claims */
    r = subscribe((store_target_t){.user = "u"}, "y", true, false);
    cr_assert_eq(r.d.connections, 1);
    cr_assert_eq(w.messages, 1);
    cr_assert_eq(w.kind, WORKER_MSG_SUBSCRIBE);
    r = subscribe((store_target_t){.user = "u"}, "y", true, false); /* idempotent */
    cr_assert_eq(r.d.connections, 1);
    chan_info_t i = info_t((store_target_t){.channel = "y"});
    cr_assert_eq(i.conn_count, 1);
    cr_assert_eq(i.claim_count, 2);
    cr_assert_str_eq(i.conn_chans[0], "y");
    i = info_t((store_target_t){.id = "c1"});
    cr_assert_str_eq(i.conn_chans[0], "y");
    /* ignore_claims */
    subscribe((store_target_t){.user = "u"}, "z", true, true);
    cr_assert_eq(info_t((store_target_t){.channel = "z"}).claim_count, 0);
    /* unsubscribe by channel: everyone in y leaves y; the claims at once, the
     * connections once their worker recorded what it applied (no work per member
     * in the store's call) */
    w.messages = 0;
    r = subscribe((store_target_t){.channel = "y"}, "y", false, false);
    cr_assert_eq(r.d.connections, 1);
    cr_assert_eq(w.messages, 1);
    cr_assert_eq(w.kind, WORKER_MSG_UNSUBSCRIBE);
    i = info_t((store_target_t){.channel = "y"});
    cr_assert_eq(i.conn_count, 1);
    cr_assert_eq(i.claim_count, 0);
    store_conns_subscribed(st, "y", false, (const char *[]){"c1"}, NULL, 1);
    i = info_t((store_target_t){.channel = "y"});
    cr_assert_eq(i.conn_count + i.claim_count, 0);
    /* take hands the claim's channels over */
    take_t t = {0};
    store_claim_take(st, "k1", take_cb, &t);
    cr_assert_eq(t.calls, 1);
    cr_assert_str_eq(t.chans, "x");
    cr_assert_eq(info_t((store_target_t){.channel = "x"}).claim_count, 0);
}


Test(store_memory, channels_disconnect) {
    wrec_t w = {0};
    attach(&w);
    int64_t exp = now_s() + 100;
    rec_t r = {0};
    store_claim_create(st, &(store_claim_t){"k1", "u", NULL, exp, (const char *[]){"x"}, 1},
                       status_cb, &r);
    reg_ch("c1", "u", (const char *[]){"x"}, 1);
    reg_ch("c2", "v", (const char *[]){"x", "y"}, 2);
    r = (rec_t){0};
    store_disconnect(st, &(store_target_t){.channel = "x"}, true, delivery_cb, &r);
    cr_assert_eq(r.d.connections, 2);
    cr_assert_eq(w.kind, WORKER_MSG_DISCONNECT);
    chan_info_t i = info_t((store_target_t){.channel = "x"});
    cr_assert_eq(i.conn_count, 0);
    cr_assert_eq(i.claim_count, 1); /* keepClaims */
    cr_assert_eq(send_channel("y").d.connections, 0);
    r = (rec_t){0};
    store_disconnect(st, &(store_target_t){.channel = "x"}, false, delivery_cb, &r);
    cr_assert_eq(info_t((store_target_t){.channel = "x"}).claim_count, 0);
}

/* Registration markers (store.h store_conn_t.generation): a worker view gets a
 * WORKER_MSG_REGISTERED for a registration with a generation, ordered after the
 * (un)subscriptions recorded before it and before those recorded after it, so
 * the worker can tell which of them the registration overwrote. */
typedef struct seq {
    int n;
    char log[8][80];
} seq_t;

static void seq_on_message(void *ud, const worker_msg_t *m) {
    seq_t *q = ud;
    cr_assert_lt(q->n, 8);
    snprintf(q->log[q->n++], 80, "%d %s %.*s", (int)m->kind,
             m->target.id ? m->target.id : m->target.user ? m->target.user : "",
             (int)m->body_len, m->body ? (const char *)m->body : "");
}

static void view_closed(void *ud) { (*(int *)ud)++; }

static void keep_cb(uv_timer_t *t) { (void)t; cr_assert_fail("no marker within 10 s"); }

Test(store_memory, registration_marker_orders_subscriptions) {
    store_memory_shared_t *sh = store_memory_shared_new();
    store_t *api = store_memory_view_new(sh, &loop);    /* another thread's view */
    store_t *worker = store_memory_view_new(sh, &loop); /* the worker's */
    seq_t q = {0};
    store_worker_handlers_t hw = {seq_on_message, NULL, &q};
    cr_assert_eq(store_worker_attach(worker, "w", &hw), 0);
    rec_t r = {0};
    /* c1: registered long ago (no generation: no marker) */
    store_conn_register(worker, &(store_conn_t){.id = "c1", .user = "u", .worker = "w"},
                        status_cb, &r);
    /* a subscription by user recorded while c2 is between its claim and its
     * registration: it reaches the worker (c1) but not c2's record */
    rec_t d = {0};
    store_subscribe(api, &(store_target_t){.user = "u"}, "x", true, true, delivery_cb, &d);
    cr_assert_eq(d.d.connections, 1);
    store_conn_register(worker,
                        &(store_conn_t){.id = "c2", .user = "u", .worker = "w", .generation = 7},
                        status_cb, &r);
    /* and one recorded after the registration: it reaches c2's record */
    store_subscribe(api, &(store_target_t){.user = "u"}, "y", true, true, delivery_cb, &d);
    cr_assert_eq(d.d.connections, 2);
    /* The views' handles do not keep a loop alive: a timer does, meanwhile. */
    uv_timer_t keep;
    uv_timer_init(&loop, &keep);
    cr_assert_eq(uv_timer_start(&keep, keep_cb, 10000, 0), 0);
    while (q.n < 3) uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&keep, NULL);
    cr_assert_str_eq(q.log[0], "3 u x");
    cr_assert_str_eq(q.log[1], "5 c2 7");
    cr_assert_str_eq(q.log[2], "3 u y");
    chan_info_t i = {0};
    store_info(api, &(store_target_t){.id = "c2"}, chan_info_cb, &i);
    cr_assert_str_eq(i.conn_chans[0], "y");
    int done = 0;
    store_close(api, view_closed, &done);
    store_close(worker, view_closed, &done);
    while (done < 2) uv_run(&loop, UV_RUN_ONCE);
    store_memory_shared_free(sh);
}

/* Idempotency keys (store.h, store_idem_t) ------------------------------------ */

static rec_t send_idem(store_t *s, const char *user, const char *key, const char *fp) {
    rec_t r = {0};
    store_idem_t idem = {key, fp};
    worker_msg_t msg = {WORKER_MSG_TEXT, {.user = user, .idem = &idem}, (const uint8_t *)"hi", 2};
    store_send(s, &msg, delivery_cb, &r);
    cr_assert_eq(r.calls, 1);
    return r;
}

Test(store_memory, idempotency_key_replays_the_first_answer) {
    wrec_t w = {0};
    attach(&w);
    reg("c1", "u", NULL, 1);
    rec_t r = send_idem(st, "u", "k1", "fp-a");
    cr_assert_eq(r.status, STORE_OK);
    cr_assert_eq(r.d.connections, 1);
    cr_assert_not(r.d.replayed);
    cr_assert_eq(w.messages, 1);
    /* the same request again: the first answer, nothing delivered */
    reg("c2", "u", NULL, 1);
    r = send_idem(st, "u", "k1", "fp-a");
    cr_assert_eq(r.status, STORE_OK);
    cr_assert_eq(r.d.connections, 1, "the stored answer, not a new count");
    cr_assert(r.d.replayed);
    cr_assert_eq(w.messages, 1);
    /* another request with the key: refused, nothing done */
    r = send_idem(st, "u", "k1", "fp-b");
    cr_assert_eq(r.status, STORE_IDEM_REUSED);
    cr_assert_eq(w.messages, 1);
    /* a disconnect and a subscription share the key space */
    rec_t d = {0};
    store_idem_t idem = {"k1", "fp-c"};
    store_disconnect(st, &(store_target_t){.user = "u", .idem = &idem}, true, delivery_cb, &d);
    cr_assert_eq(d.status, STORE_IDEM_REUSED);
    cr_assert_eq(store_memory_conn_count(st), 2);
    idem = (store_idem_t){"k2", "fp-c"};
    d = (rec_t){0};
    store_subscribe(st, &(store_target_t){.user = "u", .idem = &idem}, "news", true, true,
                    delivery_cb, &d);
    cr_assert_eq(d.status, STORE_OK);
    cr_assert_eq(d.d.connections, 2);
    d = (rec_t){0};
    store_subscribe(st, &(store_target_t){.user = "u", .idem = &idem}, "news", true, true,
                    delivery_cb, &d);
    cr_assert(d.d.replayed);
    cr_assert_eq(w.messages, 2);
}

Test(store_memory, idempotency_keys_are_bounded) {
    store_memory_shared_t *sh = store_memory_shared_new();
    store_memory_shared_set_idempotency(sh, 300, 2);
    store_t *v = store_memory_view_new(sh, &loop);
    rec_t r;
    const char *keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) cr_assert_not(send_idem(v, "u", keys[i], "f").d.replayed);
    cr_assert(send_idem(v, "u", "c", "f").d.replayed);
    cr_assert(send_idem(v, "u", "b", "f").d.replayed);
    r = send_idem(v, "u", "a", "f"); /* the oldest was forgotten: a new request */
    cr_assert_eq(r.status, STORE_OK);
    cr_assert_not(r.d.replayed);
    int done = 0;
    store_close(v, closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(done, 1);
    store_memory_shared_free(sh); /* LeakSanitizer (SAN=1): the keys go with it */
}

Test(store_memory, idempotency_keys_expire) {
    store_memory_shared_t *sh = store_memory_shared_new();
    store_memory_shared_set_idempotency(sh, 1, 10);
    store_t *v = store_memory_view_new(sh, &loop);
    cr_assert_not(send_idem(v, "u", "k", "f").d.replayed);
    cr_assert(send_idem(v, "u", "k", "f").d.replayed);
    usleep(1100 * 1000);
    cr_assert_not(send_idem(v, "u", "k", "f").d.replayed);
    int done = 0;
    store_close(v, closed, &done);
    uv_run(&loop, UV_RUN_DEFAULT);
    store_memory_shared_free(sh);
}
