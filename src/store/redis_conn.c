/* Connection machinery for the Redis store: background connect, AUTH + SELECT,
 * reconnect with back-off, and timeouts. hiredis async has no timeouts of its own,
 * so one repeating timer per connection looks at the oldest in-flight command (the
 * head of a FIFO, since Redis answers in order) and drops the connection when it is
 * older than timeout_ms; hiredis then calls every pending callback with NULL.
 * A reset is noticed sooner: redis_uv.c hands socket errors to hiredis at once. */
#include "store/redis_conn.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/mem.h"
#include "ops/metrics.h"
#include "store/redis_uv.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

typedef enum conn_state { C_DOWN, C_CONNECTING, C_READY } conn_state_t;

struct redis_conn {
    uv_loop_t *loop;
    uv_timer_t timer;
    redisAsyncContext *ac; /* NULL while down: the only test of "is there a socket" */
    conn_state_t state;
    bool closing;
    const char *name;
    char *host;
    int port;
    char *username;
    char *password;
    int db;
    unsigned timeout_ms;
    unsigned tick_ms;
    redis_conn_resolver_t resolver;
    bool check_role;
    bool awaiting_address;    /* down because the resolver had no address */
    redis_conn_hooks_t hooks;
    uint64_t attempt_ms;      /* start of the current connect attempt */
    uint64_t next_attempt_ms; /* while down */
    unsigned backoff_ms;
    unsigned failures;        /* consecutive failed attempts, to log only the first */
    redis_req_t *first, *last;
    bool sub_pending;         /* a SUBSCRIBE awaits its confirmation */
    bool ever_ready;          /* a later ready is a reconnect (metrics) */
    bool timing_out;          /* dropping for a late answer: what is lost timed out */
    uint64_t sub_sent_ms;
    uint64_t last_reply_ms;   /* when anything last came back (0: never) */
};

static void fifo_push(redis_conn_t *c, redis_req_t *r) {
    r->next = NULL;
    r->prev = c->last;
    if (c->last)
        c->last->next = r;
    else
        c->first = r;
    c->last = r;
}

static void fifo_unlink(redis_conn_t *c, redis_req_t *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        c->first = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        c->last = r->prev;
    r->prev = r->next = NULL;
}

/* Every failure comes through here: in Sentinel mode the address may be stale. */
static void schedule_retry(redis_conn_t *c) {
    if (c->resolver.stale && !c->closing) c->resolver.stale(c->resolver.ud, c->host, c->port);
    c->next_attempt_ms = uv_now(c->loop) + c->backoff_ms;
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

void redis_conn_retry_soon(redis_conn_t *c) {
    if (c->closing || c->state != C_DOWN) return;
    uint64_t soonest = c->attempt_ms + BACKOFF_MIN_MS;
    if (c->next_attempt_ms > soonest) c->next_attempt_ms = soonest;
}

/* A failed attempt is logged once per outage; the retries that follow only at
 * debug level, so a long outage does not flood the log. */
static void note_failure(redis_conn_t *c, const char *what, const char *why) {
    c->failures++;
    if (c->failures == 1)
        log_warn("redis connection failed; retrying", LOG_S("conn", c->name),
                 LOG_S("host", c->host), LOG_I("port", c->port), LOG_S("what", what),
                 LOG_S("error", why ? why : "unknown error"));
    else
        log_debug("redis connection failed again", LOG_S("conn", c->name),
                  LOG_S("host", c->host), LOG_I("port", c->port), LOG_S("what", what),
                  LOG_S("error", why ? why : "unknown error"), LOG_U("attempt", c->failures));
}

/* Forgets the context first, so that callbacks run while hiredis frees it see
 * the connection as down and do not send on it. */
static void drop(redis_conn_t *c) {
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    c->state = C_DOWN;
    c->sub_pending = false;
    if (ac) redisAsyncFree(ac);
}

static void on_reply(redisAsyncContext *ac, void *r, void *priv) {
    (void)ac;
    redis_req_t *req = priv;
    if (r) req->conn->last_reply_ms = uv_now(req->conn->loop);
    if (!r && req->conn->timing_out) req->timed_out = true;
    fifo_unlink(req->conn, req);
    req->fn(req, r);
}

int redis_conn_send(redis_conn_t *c, redis_req_t *req, int argc, const char **argv,
                    const size_t *lens) {
    if (!c->ac || c->closing) return -1;
    req->conn = c;
    if (redisAsyncCommandArgv(c->ac, on_reply, req, argc, argv, lens) != REDIS_OK) return -1;
    req->sent_ms = uv_now(c->loop);
    fifo_push(c, req);
    return 0;
}

int redis_conn_send_formatted(redis_conn_t *c, redis_req_t *req, const char *cmd, size_t len) {
    if (!c->ac || c->closing) return -1;
    req->conn = c;
    if (redisAsyncFormattedCommand(c->ac, on_reply, req, cmd, len) != REDIS_OK) return -1;
    req->sent_ms = uv_now(c->loop);
    fifo_push(c, req);
    return 0;
}

int redis_conn_send_owned(redis_conn_t *c, redis_req_t *req, void *owner, const char *cmd,
                          size_t len) {
    if (!c->ac || c->closing) {
        free(owner);
        return -1;
    }
    req->conn = c;
    if (redis_uv_send_owned(c->ac, on_reply, req, owner, cmd, len)) return -1;
    req->sent_ms = uv_now(c->loop);
    fifo_push(c, req);
    return 0;
}

/* AUTH and SELECT: an error answer means a misconfiguration (wrong password,
 * db out of range) that a retry will not fix soon, but the operator may fix it
 * without restarting us, so keep retrying with the back-off. */
static void on_handshake_reply(redis_req_t *req, struct redisReply *reply) {
    redis_conn_t *c = req->conn;
    free(req);
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        char why[256];
        snprintf(why, sizeof why, "handshake refused: %s", reply->str);
        redis_conn_fail(c, why);
    }
}

/* Sentinel mode: a sentinel's answer may be stale (the failover is under way, or the
 * old primary came back as a replica), so the server must say it is the primary
 * before anything else is sent to it. */
static void on_role_reply(redis_req_t *req, struct redisReply *reply) {
    redis_conn_t *c = req->conn;
    free(req);
    if (!reply) return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
        reply->element[0]->type == REDIS_REPLY_STRING && !strcmp(reply->element[0]->str, "master"))
        return;
    char why[256];
    if (reply->type == REDIS_REPLY_ERROR)
        snprintf(why, sizeof why, "ROLE refused: %s", reply->str);
    else if (reply->type == REDIS_REPLY_ARRAY && reply->elements >= 1 &&
             reply->element[0]->type == REDIS_REPLY_STRING)
        snprintf(why, sizeof why, "not the primary (role %s)", reply->element[0]->str);
    else
        snprintf(why, sizeof why, "not the primary (unexpected ROLE answer)");
    METRICS_INC(store_not_primary);
    redis_conn_fail(c, why);
}

static void send_internal_fn(redis_conn_t *c, int argc, const char **argv, redis_reply_fn fn) {
    redis_req_t *req = mem_calloc(1, sizeof *req);
    req->fn = fn;
    size_t lens[3];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    if (redis_conn_send(c, req, argc, argv, lens)) free(req);
}

static void send_internal(redis_conn_t *c, int argc, const char **argv) {
    redis_req_t *req = mem_calloc(1, sizeof *req);
    req->fn = on_handshake_reply;
    size_t lens[3];
    for (int i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    if (redis_conn_send(c, req, argc, argv, lens)) free(req);
}

static void on_connect_cb(const redisAsyncContext *ac, int status) {
    redis_conn_t *c = ac->data;
    if (status == REDIS_OK || c->ac != ac) return;
    /* hiredis frees the context itself after this returns. */
    c->ac = NULL;
    c->state = C_DOWN;
    c->sub_pending = false;
    note_failure(c, "failed", ac->errstr);
    schedule_retry(c);
}

static void on_disconnect_cb(const redisAsyncContext *ac, int status) {
    (void)status;
    redis_conn_t *c = ac->data;
    if (c->ac != ac) return; /* we dropped it ourselves */
    c->ac = NULL;
    bool was_ready = c->state == C_READY;
    c->state = C_DOWN;
    c->sub_pending = false;
    if (was_ready)
        log_warn("redis connection lost; reconnecting", LOG_S("conn", c->name),
                 LOG_S("host", c->host), LOG_I("port", c->port),
                 LOG_S("error", ac->errstr[0] ? ac->errstr : "closed"));
    else
        note_failure(c, "closed during handshake", ac->errstr);
    schedule_retry(c);
}

static void conn_start(redis_conn_t *c) {
    c->attempt_ms = uv_now(c->loop);
    if (c->resolver.resolve) {
        const char *host;
        int port;
        if (c->resolver.resolve(c->resolver.ud, &host, &port)) {
            /* Asked for; redis_conn_kick (or the next tick) tries again. A request
             * waiting meanwhile is bounded by its own timeout. */
            c->awaiting_address = true;
            c->next_attempt_ms = c->attempt_ms;
            return;
        }
        c->awaiting_address = false;
        if (strcmp(host, c->host)) {
            free(c->host);
            c->host = mem_strdup(host);
        }
        c->port = port;
    }
    redisAsyncContext *ac = !strncmp(c->host, REDIS_UNIX_PREFIX, strlen(REDIS_UNIX_PREFIX))
                                ? redisAsyncConnectUnix(c->host + strlen(REDIS_UNIX_PREFIX))
                                : redisAsyncConnect(c->host, c->port);
    if (!ac) log_fatal("out of memory (redisAsyncConnect)");
    if (ac->err) {
        note_failure(c, "failed", ac->errstr);
        redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    if (redis_uv_attach(ac, c->loop)) {
        note_failure(c, "failed", "cannot watch the socket");
        redisAsyncFree(ac);
        schedule_retry(c);
        return;
    }
    ac->data = c;
    redisAsyncSetConnectCallback(ac, on_connect_cb);
    redisAsyncSetDisconnectCallback(ac, on_disconnect_cb);
    c->ac = ac;
    c->state = C_CONNECTING;
    /* hiredis buffers these until the socket is writable, so the handshake costs
     * no extra round trip and its timeout also bounds the TCP connect. */
    /* AUTH user password (Redis 6 ACL) or AUTH password (the default user). A user
     * without a password gets "": Redis accepts any password for a nopass user. */
    if (c->username)
        send_internal(c, 3, (const char *[]){"AUTH", c->username, c->password ? c->password : ""});
    else if (c->password)
        send_internal(c, 2, (const char *[]){"AUTH", c->password});
    if (c->db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->db);
        send_internal(c, 2, (const char *[]){"SELECT", db});
    }
    if (c->check_role) send_internal_fn(c, 1, (const char *[]){"ROLE"}, on_role_reply);
    if (c->ac && c->hooks.on_connect) c->hooks.on_connect(c, c->hooks.ud);
}

static bool timed_out(const redis_conn_t *c, uint64_t now) {
    uint64_t t = c->timeout_ms;
    if (c->first && now - c->first->sent_ms >= t) return true;
    /* A re-SUBSCRIBE on a subscribed connection (a liveness probe) is the owner's
     * to judge (redis_conn_subscribe_late): Redis may just be slow or paused, and
     * dropping a working subscription loses what is published until it is back. */
    if (c->sub_pending && c->state != C_READY && now - c->sub_sent_ms >= t) return true;
    return c->state == C_CONNECTING && now - c->attempt_ms >= t && !c->first && !c->sub_pending;
}

static void on_tick(uv_timer_t *t) {
    redis_conn_t *c = t->data;
    if (c->closing) return;
    uint64_t now = uv_now(c->loop);
    if (c->state == C_DOWN) {
        if (now >= c->next_attempt_ms) conn_start(c);
    } else if (timed_out(c, now)) {
        /* The loop may have stalled with the answers already in the socket: read
         * them before calling the connection dead. (Not while connecting: hiredis
         * would take a pending connect for a completed one.) */
        redisAsyncContext *ac = c->ac;
        if (c->state == C_READY) redisAsyncHandleRead(ac);
        if (c->closing) return;
        if (c->ac == ac && timed_out(c, uv_now(c->loop))) {
            char why[64];
            snprintf(why, sizeof why, "no answer within %u ms", c->timeout_ms);
            c->timing_out = true;
            redis_conn_fail(c, why);
            c->timing_out = false;
        }
    }
    if (!c->closing && c->ac && c->state == C_READY) redis_uv_idle(c->ac, uv_now(c->loop));
    if (!c->closing && c->hooks.on_tick) c->hooks.on_tick(c, c->hooks.ud, uv_now(c->loop));
}

redis_conn_t *redis_conn_new(uv_loop_t *loop, const redis_conn_config_t *cfg,
                             const redis_conn_hooks_t *hooks) {
    redis_conn_t *c = mem_calloc(1, sizeof *c);
    c->loop = loop;
    c->name = cfg->name;
    c->host = mem_strdup(cfg->host);
    c->port = cfg->port;
    c->username = cfg->username && cfg->username[0] ? mem_strdup(cfg->username) : NULL;
    c->password = cfg->password && cfg->password[0] ? mem_strdup(cfg->password) : NULL;
    c->db = cfg->db;
    c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
    c->resolver = cfg->resolver;
    c->check_role = cfg->check_role;
    c->hooks = *hooks;
    c->backoff_ms = BACKOFF_MIN_MS;
    /* A tick of a fifth of the timeout (10..100 ms): a late answer is noticed within
     * timeout_ms + one tick, and an idle connection costs 10 wake-ups a second. */
    unsigned tick = c->timeout_ms / 5;
    if (tick < 10) tick = 10;
    if (tick > 100) tick = 100;
    c->tick_ms = tick;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    /* The first attempt is made on the first tick, at the next loop iteration, so no
     * hook runs before the caller has the connection in hand. */
    uv_timer_start(&c->timer, on_tick, 0, tick);
    return c;
}

/* The next tick at the next loop iteration, not up to a tick later. */
static void tick_now(redis_conn_t *c) {
    uv_timer_start(&c->timer, on_tick, 0, c->tick_ms);
}

void redis_conn_kick(redis_conn_t *c) {
    if (c->closing || c->state != C_DOWN || !c->awaiting_address) return;
    c->next_attempt_ms = uv_now(c->loop);
    tick_now(c);
}

void redis_conn_follow(redis_conn_t *c) {
    if (c->closing || !c->resolver.resolve) return;
    const char *host;
    int port;
    bool known = !c->resolver.resolve(c->resolver.ud, &host, &port);
    if (c->ac) {
        if (!known || (!strcmp(host, c->host) && port == c->port)) return;
        log_warn("redis primary changed; reconnecting", LOG_S("conn", c->name),
                 LOG_S("from", c->host), LOG_I("from_port", c->port), LOG_S("to", host),
                 LOG_I("to_port", port));
        drop(c); /* not the address's fault: no staleness report */
    } else if (!known) {
        return;
    }
    c->backoff_ms = BACKOFF_MIN_MS;
    c->next_attempt_ms = uv_now(c->loop);
    tick_now(c);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv) {
    redis_conn_t *c = priv;
    redisReply *reply = r;
    if (reply && c->ac == ac) c->last_reply_ms = uv_now(c->loop);
    if (!reply || c->ac != ac || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) return;
    redisReply *kind = reply->element[0];
    if (kind->type != REDIS_REPLY_STRING) return;
    if (!strcasecmp(kind->str, "subscribe")) {
        c->sub_pending = false;
        if (c->state == C_CONNECTING) redis_conn_set_ready(c);
    } else if (!strcasecmp(kind->str, "message")) {
        redisReply *data = reply->element[2];
        if (data->type == REDIS_REPLY_STRING && c->hooks.on_message)
            c->hooks.on_message(c->hooks.ud, data->str, data->len);
    }
}

int redis_conn_subscribe(redis_conn_t *c, const char *channel) {
    if (!c->ac || c->closing) return -1;
    const char *argv[] = {"SUBSCRIBE", channel};
    size_t lens[] = {9, strlen(channel)};
    if (redisAsyncCommandArgv(c->ac, on_sub_reply, c, 2, argv, lens) != REDIS_OK) return -1;
    if (!c->sub_pending) {
        c->sub_pending = true;
        c->sub_sent_ms = uv_now(c->loop);
    }
    return 0;
}

bool redis_conn_subscribe_pending(const redis_conn_t *c) { return c->sub_pending; }

uint64_t redis_conn_subscribe_sent_ms(const redis_conn_t *c) {
    return c->sub_pending ? c->sub_sent_ms : 0;
}

uint64_t redis_conn_last_reply_ms(const redis_conn_t *c) { return c->last_reply_ms; }

void redis_conn_set_ready(redis_conn_t *c) {
    if (c->state != C_CONNECTING) return;
    c->state = C_READY;
    c->backoff_ms = BACKOFF_MIN_MS;
    if (c->ever_ready) METRICS_INC(store_reconnects);
    c->ever_ready = true;
    if (c->failures)
        log_info("redis connection ready again", LOG_S("conn", c->name), LOG_S("host", c->host),
                 LOG_I("port", c->port), LOG_U("failed_attempts", c->failures));
    else
        log_info("redis connection ready", LOG_S("conn", c->name), LOG_S("host", c->host),
                 LOG_I("port", c->port));
    c->failures = 0;
    if (c->hooks.on_ready) c->hooks.on_ready(c, c->hooks.ud);
}

bool redis_conn_ready(const redis_conn_t *c) { return c->state == C_READY && !c->closing; }

bool redis_conn_busy(const redis_conn_t *c) { return c->first != NULL; }

void redis_conn_fail(redis_conn_t *c, const char *reason) {
    if (!c->ac) return;
    if (c->state == C_READY)
        log_warn("redis connection dropped; reconnecting", LOG_S("conn", c->name),
                 LOG_S("host", c->host), LOG_I("port", c->port), LOG_S("error", reason));
    else
        note_failure(c, "failed", reason);
    schedule_retry(c);
    drop(c);
}

static void on_timer_closed(uv_handle_t *h) {
    redis_conn_t *c = h->data;
    void (*done)(void *) = c->hooks.on_closed;
    void *ud = c->hooks.ud;
    free(c->host);
    free(c->username);
    free(c->password);
    free(c);
    if (done) done(ud);
}

void redis_conn_close(redis_conn_t *c) {
    if (c->closing) return;
    c->closing = true;
    drop(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}
