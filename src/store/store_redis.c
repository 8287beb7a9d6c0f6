/* The Redis store: each operation is one EVALSHA of a script from redis_scripts.c on
 * the command connection; the worker side adds a pub/sub connection subscribed to
 * worker:$id and a worker-alive:$id key refreshed every worker_ttl/3. Everything
 * runs on the caller's libuv loop through redis_conn.c, which owns reconnects and
 * timeouts. docs/redis.md explains the layout and the liveness/resync design. */
#include "store/store_redis.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/rand.h"
#include "dsock.pb-c.h"
#include "ops/metrics.h"
#include "protocol/utf8.h"
#include "protocol/validate.h"
#include "store/redis_conn.h"
#include "store/redis_scripts.h"
#include "store/redis_sentinel.h"

#define SHA_LEN 40
/* At most one warning about dropped bus messages per this many ms: a flood of bad
 * messages is counted, not logged one by one. */
#define BUS_DROP_LOG_MS 10000
/* Readiness (store_ready): a check every HEALTH_EVERY_MS, one at a time; it counts
 * when answered within HEALTH_BOUND_MS; the store is ready while the last check
 * that counted is at most HEALTH_STALE_MS old (a period, the bound and slack), so
 * a dead path turns not-ready within 2.5 s and a healed one ready within a period.
 * API side: PING on the command connection. Worker side: a CANARY message
 * PUBLISHed to its own channel must come back through its subscription, which
 * proves the whole path a /send takes (docs/probes-and-drain.md). */
#define HEALTH_EVERY_MS 1000
#define HEALTH_BOUND_MS 1000
#define HEALTH_STALE_MS 2500
/* A send at least this big PUBLISHes its payload itself ("Big sends"); below it,
 * hashing the payload in Lua (about 70 us per 64 KiB, measured at 1.15 ms per MiB)
 * costs no more than the extra round trip and the fence. */
#define BIG_SEND_BYTES (64u << 10)
/* Room for "*3 $7 PUBLISH $n worker:<id> $len" in front of its payload, for worker
 * ids up to about 280 bytes (longer ones take the slower argv path). */
#define BIG_HEAD_ROOM 320
/* Sends batched into one deliver_batch call (docs/redis.md, "Batched sends"): at
 * most BATCH_MAX sends and BATCH_MAX_BYTES of payload per call; a send whose
 * payload is over BATCH_ONE_MAX goes alone (its bytes dominate anyway). */
#define BATCH_MAX 64
#define BATCH_MAX_BYTES (256 * 1024)
#define BATCH_ONE_MAX (16 * 1024)

typedef struct store_redis store_redis_t;

/* Idempotency (docs/api.md, "Idempotency-Key"): the deliver and subscribe scripts,
 * each wrapped at startup in the same few lines of Lua (IDEM_HEAD/IDEM_TAIL), are
 * two more scripts. The wrapper takes three more ARGV after the script's own: the
 * key (idempotency:$key), the request's fingerprint and the TTL. A key already
 * there answers its stored result (a 4th element 1), or 2 when its fingerprint
 * differs, without running the script; otherwise the script runs and its answer is
 * stored with SET EX in the same atomic call. So a request whose answer was lost
 * (a paused Redis runs it later) and its retry can never both do the work, whatever
 * connections or API processes they came through. The scripts themselves are not
 * touched: they read fixed ARGV positions and return {connections, workers,
 * unreachable}. */
enum {
    SCRIPT_DELIVER_IDEM = REDIS_SCRIPT_COUNT,
    SCRIPT_SUBSCRIBE_IDEM,
    SCRIPT_ALL,
};
#define IDEM_HEAD                                                                          \
    "local ik, ifp, ittl = ARGV[#ARGV - 2], ARGV[#ARGV - 1], ARGV[#ARGV]\n"                \
    "local prev = redis.call('GET', ik)\n"                                                 \
    "if prev then\n"                                                                       \
    "  local fp, c, w, u = string.match(prev, '^(%x+) (%d+) (%d+) (%d+)$')\n"              \
    "  if fp ~= ifp then return {0, 0, 0, 2} end\n"                                        \
    "  return {tonumber(c), tonumber(w), tonumber(u), 1}\n"                                \
    "end\n"                                                                                \
    "local res = (function()\n"
#define IDEM_TAIL                                                                          \
    "\nend)()\n"                                                                            \
    "redis.call('SET', ik, ifp .. ' ' .. res[1] .. ' ' .. res[2] .. ' ' .. res[3], 'EX', ittl)\n" \
    "return res\n"
#define IDEM_KEY_PREFIX "idempotency:"

typedef enum op_kind {
    OP_CLAIM_CREATE,
    OP_CLAIM_TAKE,
    OP_DELIVER,
    OP_DELIVER_BATCH, /* several OP_DELIVER sends in one deliver_batch call */
    OP_INFO,
    OP_REGISTER,
    OP_UNREGISTER,
    OP_TOUCH,
    OP_SCRIPT_LOAD, /* handshake */
    OP_HEARTBEAT,
    OP_READY_PING,  /* handshake: its answer means every step before it succeeded */
    OP_FIRE,        /* answer ignored */
    OP_RESYNC_END,  /* repeated while it answers that stale entries are left */
    OP_SWEEP,       /* repeated while it used its whole budget */
    OP_HEALTH_PING, /* readiness check of the API side */
    OP_LEAVE,       /* at close: repeated while connections are left */
    OP_RESOLVE,     /* a big send's first step (big_send_resolved) */
} op_kind_t;

/* One in-flight command. The arguments are copied into the same allocation so that
 * a NOSCRIPT answer can be retried as EVAL after the caller's memory is gone. */
typedef struct op {
    redis_req_t req; /* first: the reply callback gets &op->req */
    store_redis_t *s;
    op_kind_t kind;
    int script;      /* redis_script_id_t, or -1 */
    bool handshake;
    bool sent;       /* handed to the connection (its effect may happen even if lost) */
    int8_t mop;      /* metrics_store_op_t of a store operation, or -1 */
    uint64_t t0_ns;  /* when it was asked for (metrics) */
    union {
        store_status_cb status;
        store_claim_cb claim;
        store_delivery_cb delivery;
        store_info_cb info;
    } cb;
    void *ud;
    int argc;
    const char **argv;
    size_t *lens;
    bool fenced;     /* OP_RESOLVE: counted in s->fence */
    uint8_t *payload; /* OP_RESOLVE: the packed message to PUBLISH (owned) */
    size_t payload_len;
    struct op **members; /* OP_DELIVER_BATCH: its sends, whose arguments argv points at */
    size_t n_members;
} op_t;

/* An unregistration that could not be sent: retried after the next reconnect. */
typedef struct unreg {
    struct unreg *next;
    char *id, *user, *session, *worker; /* in the same allocation */
} unreg_t;

struct store_redis {
    store_t base;
    uv_loop_t *loop;
    redis_conn_t *cmd;
    redis_conn_t *sub; /* NULL until worker_attach */
    redis_sentinel_t *sentinel; /* NULL without Sentinel */
    redis_conn_config_t conn_cfg;
    char *host;
    char *username;
    char *password;
    unsigned ttl_s;
    uint64_t refresh_ms; /* heartbeat and subscription probe period */
    char description[300];
    char sha[SCRIPT_ALL][SHA_LEN + 1];
    char *idem_src[SCRIPT_ALL - REDIS_SCRIPT_COUNT]; /* the wrapped scripts (above) */
    unsigned idem_ttl_s;

    bool attached;
    char *worker_id;
    char *channel;   /* worker:$id */
    char *alive_key; /* worker-alive:$id */
    store_worker_handlers_t handlers;
    bool heartbeat_pending;
    bool announced;      /* a heartbeat has succeeded since attach */
    bool sub_was_ready;  /* the subscription was up before: a new one may have missed messages */
    bool heartbeat_plain; /* Redis < 6.2: SET without GET */
    uint64_t next_heartbeat_ms;
    uint64_t next_probe_ms;
    uint64_t probe_late_ms;      /* a late probe seen with Redis answering elsewhere (0: no) */
    uint64_t max_body;           /* max_body_bytes: larger bus message bodies are dropped */
    store_redis_stats_t stats;
    /* Readiness checks (HEALTH_*): the check in flight and the last that counted. */
    bool check_pending;
    uint64_t check_seq;          /* canary: sequence number of the check in flight */
    uint64_t check_sent_ms;
    uint64_t next_check_ms;
    uint64_t last_ok_ms;         /* 0: never */
    char canary_token[RAND_ID_LEN + 1]; /* canaries not carrying it are not ours */
    uint64_t drops_unlogged;     /* dropped since the last warning */
    uint64_t next_drop_log_ms;   /* no drop warning before this loop time */

    unreg_t *retry_first, *retry_last;
    size_t retry_count;

    struct op *wait_first, *wait_last; /* requests waiting for a connection */
    unsigned fence; /* big sends resolved or resolving whose PUBLISHes are not written yet */

    /* Sends of this loop turn, not yet handed to the connection (batch_*). */
    uv_check_t batch_check;
    struct op *batch[BATCH_MAX];
    size_t batch_n, batch_bytes;

    bool closing, finalizing;
    uint64_t close_deadline_ms;
    int open_conns;
    void (*done)(void *ud);
    void *done_ud;
};

static const store_ops_t redis_ops;

static const char *script_source(const store_redis_t *s, int i) {
    return i < REDIS_SCRIPT_COUNT ? redis_scripts[i].source : s->idem_src[i - REDIS_SCRIPT_COUNT];
}

static const char *script_name(int i) {
    return i < REDIS_SCRIPT_COUNT      ? redis_scripts[i].name
           : i == SCRIPT_DELIVER_IDEM ? "deliver (idempotent)"
                                      : "subscribe (idempotent)";
}

/* NULL and "" both mean "absent" in the store interface. */
static const char *nz(const char *s) { return s ? s : ""; }
static const char *opt(const char *s) { return s && s[0] ? s : NULL; }

static bool cmd_ready(const store_redis_t *s) { return !s->closing && redis_conn_ready(s->cmd); }

/* Operations ---------------------------------------------------------------- */

static void op_reply(redis_req_t *req, redisReply *reply);

/* args[i] may be NULL: then lens[i] bytes are reserved for the caller to fill
 * through op->argv[...] before op_issue. Scripts get EVALSHA sha 0 in front. */
/* An op of argc arguments (EVALSHA sha 0 filled in for a script) and `extra`
 * bytes after its argv and lens, which the caller fills: *tail points there. Only
 * the head is zeroed: a send's payload, up to max_body_bytes, is written into the
 * extra bytes by the caller's pack, and zeroing them first was a pass over every
 * byte of a big message for nothing. */
static op_t *op_alloc(store_redis_t *s, op_kind_t kind, int script, int argc, size_t extra,
                      char **tail) {
    size_t head = sizeof(op_t) + (size_t)argc * (sizeof(char *) + sizeof(size_t));
    op_t *op = mem_alloc(head + extra);
    memset(op, 0, head);
    op->s = s;
    op->kind = kind;
    op->mop = -1;
    op->script = script;
    op->req.fn = op_reply;
    op->argc = argc;
    op->argv = (const char **)(op + 1);
    op->lens = (size_t *)(op->argv + argc);
    *tail = (char *)(op->lens + argc);
    if (script >= 0) {
        op->argv[0] = "EVALSHA";
        op->lens[0] = 7;
        op->argv[1] = s->sha[script];
        op->lens[1] = SHA_LEN;
        op->argv[2] = "0";
        op->lens[2] = 1;
    }
    return op;
}

static op_t *op_new(store_redis_t *s, op_kind_t kind, int script, int nargs, const char **args,
                    const size_t *lens) {
    int pre = script >= 0 ? 3 : 0;
    size_t bytes = 0;
    for (int i = 0; i < nargs; i++) bytes += lens[i] + 1;
    char *p;
    op_t *op = op_alloc(s, kind, script, pre + nargs, bytes, &p);
    for (int i = 0; i < nargs; i++) {
        if (args[i]) memcpy(p, args[i], lens[i]);
        p[lens[i]] = '\0'; /* op_arg's readers take the ids as C strings */
        op->argv[pre + i] = p;
        op->lens[pre + i] = lens[i];
        p += lens[i] + 1;
    }
    return op;
}

/* Argument i of the script (after EVALSHA sha 0), NUL-terminated. */
static const char *op_arg(const op_t *op, int i) { return op->argv[(op->script >= 0 ? 3 : 0) + i]; }

static op_t *script_op(store_redis_t *s, op_kind_t kind, redis_script_id_t script, int nargs,
                       const char **args) {
    size_t lens[8];
    for (int i = 0; i < nargs; i++) lens[i] = strlen(args[i]);
    return op_new(s, kind, (int)script, nargs, args, lens);
}

static void op_finish(op_t *op, redisReply *reply);

static void op_issue(op_t *op) {
    op->sent = true;
    if (redis_conn_send(op->s->cmd, &op->req, op->argc, op->argv, op->lens)) {
        op->sent = false;
        op_finish(op, NULL);
        return;
    }
    if (op->kind == OP_RESOLVE && !op->fenced) { /* not again for a NOSCRIPT retry */
        op->fenced = true;
        op->s->fence++;
    }
}

/* Requests made while the command connection is (re)connecting wait for it, in
 * order, at most timeout_ms: a process that has just started, or a Redis that is
 * coming back, is not an error yet. So do requests made while a big send is between
 * its resolution and its PUBLISHes (the fence, "Big sends"). The request's FIFO link
 * and send time are free until it is sent, so they hold its place here. */
static void batch_flush(store_redis_t *s);

static void op_submit(op_t *op) {
    store_redis_t *s = op->s;
    /* Sends batched earlier in this turn go first: one FIFO, call order. */
    if (op->kind != OP_DELIVER_BATCH && s->batch_n) batch_flush(s);
    if (redis_conn_ready(s->cmd) && !s->wait_first && !s->fence) {
        op_issue(op);
        return;
    }
    op->req.next = NULL;
    op->req.sent_ms = uv_now(s->loop);
    redis_conn_retry_soon(s->cmd); /* a request waits: no back-off longer than its wait */
    if (s->wait_last)
        s->wait_last->req.next = &op->req;
    else
        s->wait_first = op;
    s->wait_last = op;
}

/* Sends the waiting requests (ready), or fails those waiting since before
 * `deadline` (all of them with UINT64_MAX). Sending stops behind a big send's
 * resolution (the fence: see "Big sends"); its end drains again. */
static void waiting_drain(store_redis_t *s, bool ready, uint64_t deadline) {
    while (s->wait_first && (ready ? !s->fence && redis_conn_ready(s->cmd)
                                   : s->wait_first->req.sent_ms < deadline)) {
        op_t *op = s->wait_first;
        s->wait_first = (op_t *)op->req.next;
        if (!s->wait_first) s->wait_last = NULL;
        if (ready) {
            op_issue(op);
        } else {
            op->req.timed_out = deadline != UINT64_MAX; /* not the close */
            op_finish(op, NULL);
        }
    }
}

static void op_reply(redis_req_t *req, redisReply *reply) {
    op_t *op = (op_t *)req;
    /* Sentinel: the server we are connected to was demoted (a failover went by
     * without our noticing the event, or the event is on its way). Nothing was
     * written (a script stops at its first write), so the caller's 503 is true;
     * drop the connection so that the next one asks the sentinels. */
    if (reply && reply->type == REDIS_REPLY_ERROR && op->s->sentinel &&
        strstr(reply->str, "READONLY") && redis_conn_ready(op->s->cmd)) {
        METRICS_INC(store_not_primary);
        redis_conn_fail(op->s->cmd, "READONLY: the server is a replica now");
    }
    /* Scripts are loaded at every connect, so this only follows a SCRIPT FLUSH:
     * send the source instead (Redis caches it again). */
    if (reply && reply->type == REDIS_REPLY_ERROR && op->script >= 0 &&
        !strncmp(reply->str, "NOSCRIPT", 8) && !strcmp(op->argv[0], "EVALSHA")) {
        op->argv[0] = "EVAL";
        op->lens[0] = 4;
        op->argv[1] = script_source(op->s, op->script);
        op->lens[1] = strlen(op->argv[1]);
        op_issue(op);
        return;
    }
    op_finish(op, reply);
}

static void unregister_later(store_redis_t *s, const char *id, const char *user,
                             const char *session, const char *worker);
static void resync(store_redis_t *s);
static void send_budgeted(store_redis_t *s, op_kind_t kind);
static void send_heartbeat(store_redis_t *s, bool handshake);
static void health_answered(store_redis_t *s, uint64_t seq);
static void send_leave(store_redis_t *s);
static void bus_drop(store_redis_t *s, const char *why, size_t len);
static void big_send_resolved(op_t *op, redisReply *reply);

/* A store operation, timed into dsock_store_operation_duration_seconds. */
static op_t *op_timed(op_t *op, metrics_store_op_t mop) {
    op->mop = (int8_t)mop;
    op->t0_ns = metrics_now_ns();
    return op;
}

/* Logs an unexpected answer; a NULL one (connection lost) is not news. Counts a
 * failed store operation in dsock_store_errors_total. */
static store_status_t bad_reply(const op_t *op, const redisReply *reply) {
    if (op->mop >= 0)
        METRICS_INC(store_errors[!reply && op->req.timed_out ? METRICS_STORE_TIMEOUT
                                                             : METRICS_STORE_ERROR]);
    if (reply && reply->type == REDIS_REPLY_ERROR)
        log_warn("redis error",
                 LOG_S("op", op->script >= 0 ? script_name(op->script) : op->argv[0]),
                 LOG_B("error", reply->str, reply->len));
    else if (reply)
        log_warn("redis: unexpected answer",
                 LOG_S("op", op->script >= 0 ? script_name(op->script) : op->argv[0]),
                 LOG_I("type", reply->type));
    return STORE_UNAVAILABLE;
}

static int64_t to_i64(const redisReply *r) {
    if (r->type == REDIS_REPLY_INTEGER) return r->integer;
    if (r->type == REDIS_REPLY_STRING) return strtoll(r->str, NULL, 10);
    return 0;
}

static bool all_strings(const redisReply *r) {
    for (size_t i = 0; i < r->elements; i++)
        if (r->element[i]->type != REDIS_REPLY_STRING) return false;
    return true;
}

/* A stored channel list ("\n"-joined, docs/redis.md) as an array of pointers into
 * a copy; *buf and the array are freed by the caller. Names that fail the channel
 * rule (only another program can have written them) are skipped. */
static const char **split_channels(const char *joined, size_t *count, char **buf) {
    *count = 0;
    *buf = NULL;
    if (!joined || !*joined) return NULL;
    *buf = mem_strdup(joined);
    size_t n = 1;
    for (const char *p = joined; *p; p++) n += *p == '\n';
    const char **out = mem_alloc(n * sizeof *out);
    char *save = NULL;
    for (char *tok = strtok_r(*buf, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save))
        if (channel_name_valid(tok, strlen(tok))) out[(*count)++] = tok;
    return out;
}

static void finish_claim_take(op_t *op, redisReply *reply) {
    if (reply && reply->type == REDIS_REPLY_NIL) {
        op->cb.claim(op->ud, STORE_NOT_FOUND, NULL);
        return;
    }
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 || !all_strings(reply)) {
        op->cb.claim(op->ud, bad_reply(op, reply), NULL);
        return;
    }
    store_claim_t c = {
        .id = op_arg(op, 0),
        .user = reply->element[0]->str,
        .session = opt(reply->element[1]->str),
    };
    /* Only an operator (or another program) can have written an unreadable
     * expiration; the claim is consumed and reported as invalid. */
    char *end = NULL;
    const char *e = reply->element[2]->str;
    errno = 0;
    long long v = strtoll(e, &end, 10);
    if (errno || end == e || *end != '\0') {
        op->cb.claim(op->ud, STORE_INVALID, NULL);
        return;
    }
    c.expiration = (int64_t)v;
    char *buf;
    const char **chans = split_channels(reply->element[3]->str, &c.channel_count, &buf);
    c.channels = chans;
    op->cb.claim(op->ud, STORE_OK, &c);
    free(chans);
    free(buf);
}

static void finish_info(op_t *op, redisReply *reply) {
    store_info_t info = {0};
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[1]->type != REDIS_REPLY_ARRAY || reply->element[0]->elements % 6 ||
        reply->element[1]->elements % 5 || !all_strings(reply->element[0]) ||
        !all_strings(reply->element[1])) {
        op->cb.info(op->ud, bad_reply(op, reply), &info);
        return;
    }
    redisReply *cr = reply->element[0], *kr = reply->element[1];
    size_t nc = cr->elements / 6, nk = kr->elements / 5;
    store_conn_t *conns = nc ? mem_calloc(nc, sizeof *conns) : NULL;
    store_claim_t *claims = nk ? mem_calloc(nk, sizeof *claims) : NULL;
    /* Per record: its channel array and the copy it points into. */
    void **owned = nc + nk ? mem_calloc(2 * (nc + nk), sizeof *owned) : NULL;
    for (size_t i = 0; i < nc; i++) {
        redisReply **f = cr->element + i * 6;
        conns[i] = (store_conn_t){.id = f[0]->str,
                                  .worker = f[1]->str,
                                  .last_ping = to_i64(f[2]),
                                  .user = f[3]->str,
                                  .session = opt(f[4]->str)};
        char *buf;
        conns[i].channels = split_channels(f[5]->str, &conns[i].channel_count, &buf);
        owned[2 * i] = (void *)conns[i].channels;
        owned[2 * i + 1] = buf;
    }
    for (size_t i = 0; i < nk; i++) {
        redisReply **f = kr->element + i * 5;
        claims[i] = (store_claim_t){.id = f[0]->str,
                                    .expiration = to_i64(f[1]),
                                    .user = f[2]->str,
                                    .session = opt(f[3]->str)};
        char *buf;
        claims[i].channels = split_channels(f[4]->str, &claims[i].channel_count, &buf);
        owned[2 * (nc + i)] = (void *)claims[i].channels;
        owned[2 * (nc + i) + 1] = buf;
    }
    info = (store_info_t){conns, nc, claims, nk};
    op->cb.info(op->ud, STORE_OK, &info);
    for (size_t i = 0; i < 2 * (nc + nk); i++) free(owned[i]);
    free(owned);
    free(conns);
    free(claims);
}

static void finish_handshake(op_t *op, redisReply *reply) {
    store_redis_t *s = op->s;
    if (!reply) return; /* the connection is already gone */
    if (op->kind == OP_SCRIPT_LOAD && reply->type == REDIS_REPLY_STRING && reply->len == SHA_LEN) {
        memcpy(s->sha[(intptr_t)op->ud], reply->str, SHA_LEN);
        return;
    }
    if (op->kind == OP_READY_PING && reply->type == REDIS_REPLY_STATUS) {
        redis_conn_set_ready(s->cmd);
        return;
    }
    char why[300];
    snprintf(why, sizeof why, "handshake step %s failed: %s", op->argv[0],
             reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected answer");
    redis_conn_fail(s->cmd, why);
}

/* Each send of a batch gets its own {connections, workers, unreachable}; when the
 * call failed, every send gets the failure (unknown outcome once it was sent). */
static void finish_batch(op_t *op, redisReply *reply) {
    size_t n = op->n_members;
    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 3 * n) {
        for (size_t i = 0; i < n; i++) {
            redisReply one = {.type = REDIS_REPLY_ARRAY, .elements = 3,
                              .element = reply->element + 3 * i};
            op_finish(op->members[i], &one);
        }
        return;
    }
    /* Logged once (the batch op counts nothing); counted once per send. */
    bad_reply(op, reply);
    store_status_t st = !reply && op->sent ? STORE_UNKNOWN : STORE_UNAVAILABLE;
    for (size_t i = 0; i < n; i++) {
        op_t *m = op->members[i];
        if (m->mop >= 0) {
            METRICS_INC(store_errors[!reply && op->req.timed_out ? METRICS_STORE_TIMEOUT
                                                                 : METRICS_STORE_ERROR]);
            metrics_observe_store((metrics_store_op_t)m->mop, metrics_now_ns() - m->t0_ns);
        }
        m->cb.delivery(m->ud, st, &(store_delivery_t){0});
        free(m);
    }
}

static void op_finish(op_t *op, redisReply *reply) {
    store_redis_t *s = op->s;
    if (op->mop >= 0)
        metrics_observe_store((metrics_store_op_t)op->mop, metrics_now_ns() - op->t0_ns);
    switch (op->kind) {
    case OP_CLAIM_CREATE:
        if (reply && reply->type == REDIS_REPLY_INTEGER) {
            op->cb.status(op->ud, reply->integer == 0 ? STORE_EXISTS : STORE_OK);
        } else if (!reply && op->sent) {
            /* As for deliver: Redis may have created it, or create it later. */
            bad_reply(op, reply);
            op->cb.status(op->ud, STORE_UNKNOWN);
        } else {
            op->cb.status(op->ud, bad_reply(op, reply));
        }
        break;
    case OP_CLAIM_TAKE:
        finish_claim_take(op, reply);
        break;
    case OP_DELIVER: {
        store_delivery_t d = {0};
        /* 3 elements; the idempotent wrapper adds a 4th when it answered from the
         * key: 1 the stored answer, 2 the key is another request's. */
        if (reply && reply->type == REDIS_REPLY_ARRAY &&
            (reply->elements == 3 || reply->elements == 4)) {
            d.connections = (size_t)to_i64(reply->element[0]);
            d.workers = (size_t)to_i64(reply->element[1]);
            d.unreachable = (size_t)to_i64(reply->element[2]);
            int64_t idem = reply->elements == 4 ? to_i64(reply->element[3]) : 0;
            d.replayed = idem == 1;
            op->cb.delivery(op->ud, idem == 2 ? STORE_IDEM_REUSED : STORE_OK, &d);
        } else if (!reply && op->sent) {
            /* Handed to Redis and no answer (timed out, or the connection went):
             * Redis may have run it, or run it once it reads the socket again. */
            bad_reply(op, reply);
            op->cb.delivery(op->ud, STORE_UNKNOWN, &d);
        } else {
            op->cb.delivery(op->ud, bad_reply(op, reply), &d);
        }
        break;
    }
    case OP_DELIVER_BATCH:
        finish_batch(op, reply);
        break;
    case OP_INFO:
        finish_info(op, reply);
        break;
    case OP_REGISTER: {
        bool ok = reply && reply->type == REDIS_REPLY_INTEGER;
        /* Lost in flight: Redis may still run it (a paused Redis reads the closed
         * socket when it resumes), leaving a connection the worker has dropped.
         * Undo it after the reconnect; if the worker re-registers the connection,
         * its resync comes after this. */
        if (!reply && op->sent)
            unregister_later(s, op_arg(op, 0), op_arg(op, 1), op_arg(op, 2), op_arg(op, 3));
        op->cb.status(op->ud, ok ? STORE_OK : bad_reply(op, reply));
        if (ok && reply->integer == 2 && s->attached && !s->closing) {
            log_warn("redis lost this worker's registrations; registering them again");
            resync(s);
        }
        break;
    }
    case OP_UNREGISTER:
        if (!reply)
            unregister_later(s, op_arg(op, 0), op_arg(op, 1), op_arg(op, 2), op_arg(op, 3));
        else if (reply->type == REDIS_REPLY_ERROR)
            bad_reply(op, reply);
        break;
    case OP_HEARTBEAT:
        s->heartbeat_pending = false;
        if (reply && reply->type == REDIS_REPLY_NIL && !op->handshake && !s->closing) {
            /* The first heartbeat of a new worker finds no key, as it should. */
            if (s->announced)
                log_warn("redis lost this worker's registrations; registering them again");
            resync(s);
        } else if (reply && reply->type == REDIS_REPLY_ERROR && !s->heartbeat_plain &&
                   op->argc == 6 && !s->closing) {
            /* Redis before 6.2 has no SET ... GET: refresh without it; data loss is
             * then noticed by registrations and reconnects only. */
            log_warn("redis refused SET ... GET: Redis 6.2+ is recommended",
                     LOG_B("error", reply->str, reply->len));
            s->heartbeat_plain = true;
            send_heartbeat(s, op->handshake);
        } else if (reply && reply->type == REDIS_REPLY_ERROR) {
            bad_reply(op, reply);
        }
        if (reply && reply->type != REDIS_REPLY_ERROR) {
            s->announced = true;
            if (!s->closing) send_budgeted(s, OP_SWEEP);
        }
        break;
    case OP_RESYNC_END:
    case OP_SWEEP:
        if (reply && reply->type == REDIS_REPLY_INTEGER && !s->closing &&
            (op->kind == OP_RESYNC_END ? reply->integer == 1 : reply->integer <= 0))
            send_budgeted(s, op->kind); /* more to do: another bounded step */
        else if (reply && reply->type == REDIS_REPLY_ERROR)
            bad_reply(op, reply);
        break;
    case OP_SCRIPT_LOAD:
    case OP_READY_PING:
        finish_handshake(op, reply);
        break;
    case OP_TOUCH:
    case OP_FIRE:
        if (reply && reply->type == REDIS_REPLY_ERROR) bad_reply(op, reply);
        break;
    case OP_HEALTH_PING:
        if (reply && reply->type == REDIS_REPLY_STATUS) health_answered(s, (uint64_t)(uintptr_t)op->ud);
        else if (reply) bad_reply(op, reply);
        break;
    case OP_LEAVE:
        if (reply && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
            send_leave(s); /* more connections left: another bounded step */
        else if (reply && reply->type == REDIS_REPLY_ERROR)
            bad_reply(op, reply);
        break;
    case OP_RESOLVE:
        big_send_resolved(op, reply);
        break;
    }
    free(op->payload);
    free(op);
}

/* Worker liveness ----------------------------------------------------------- */

/* SET ... GET answers nil when the key was missing: Redis restarted empty, was
 * flushed, or this worker was silent past its TTL. (Needs Redis 6.2.) */
static void send_heartbeat(store_redis_t *s, bool handshake) {
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", s->ttl_s);
    /* '2': this worker reads BATCH messages (deliver_batch); '1' is an older one. */
    const char *args[] = {"SET", s->alive_key, "2", "EX", ttl, "GET"};
    int n = s->heartbeat_plain ? 5 : 6;
    size_t lens[6];
    for (int i = 0; i < n; i++) lens[i] = strlen(args[i]);
    op_t *op = op_new(s, OP_HEARTBEAT, -1, n, args, lens);
    op->handshake = handshake;
    s->heartbeat_pending = true;
    s->next_heartbeat_ms = uv_now(s->loop) + s->refresh_ms;
    op_issue(op);
}

/* Each step of a clean-up script touches at most this many connections, so that
 * Redis is never blocked for long by a dead worker's thousands of entries. */
#define CLEANUP_BUDGET "1000"

static void send_leave(store_redis_t *s) {
    op_issue(script_op(s, OP_LEAVE, REDIS_SCRIPT_WORKER_LEAVE, 2,
                       (const char *[]){s->worker_id, CLEANUP_BUDGET}));
}

static void send_budgeted(store_redis_t *s, op_kind_t kind) {
    op_t *op = kind == OP_SWEEP
                   ? script_op(s, OP_SWEEP, REDIS_SCRIPT_SWEEP, 1, (const char *[]){CLEANUP_BUDGET})
                   : script_op(s, OP_RESYNC_END, REDIS_SCRIPT_RESYNC_END, 2,
                               (const char *[]){s->worker_id, CLEANUP_BUDGET});
    op_submit(op);
}

/* The worker registers every live connection again between two steps that drop
 * what it did not register (stale entries of a restored snapshot or of a lost
 * unregistration). One FIFO carries all of it, so the steps see the registrations
 * in between; the registrations are pipelined, not one round trip each. */
static void resync(store_redis_t *s) {
    if (!s->handlers.on_resync) return;
    /* The ones before the first heartbeat answered are a new worker's start. */
    if (s->announced) METRICS_INC(store_resyncs);
    op_submit(script_op(s, OP_FIRE, REDIS_SCRIPT_RESYNC_BEGIN, 2,
                        (const char *[]){s->worker_id, "3600"}));
    s->handlers.on_resync(s->handlers.ud);
    send_budgeted(s, OP_RESYNC_END);
}

/* Unregistrations that failed are sent again once connected, before the resync,
 * so a connection closed during an outage is not reported for long. */
static void unregister_send(store_redis_t *s, const char *id, const char *user,
                            const char *session, const char *worker) {
    op_t *op = script_op(s, OP_UNREGISTER, REDIS_SCRIPT_CONN_UNREGISTER, 4,
                         (const char *[]){id, user, session, worker});
    op_timed(op, METRICS_OP_CONN_UNREGISTER);
    op_issue(op);
}

static void unregister_later(store_redis_t *s, const char *id, const char *user,
                             const char *session, const char *worker) {
    size_t a = strlen(id) + 1, b = strlen(user) + 1, c = strlen(session) + 1;
    size_t d = strlen(worker) + 1;
    unreg_t *u = mem_alloc(sizeof *u + a + b + c + d);
    u->next = NULL;
    u->id = memcpy((char *)(u + 1), id, a);
    u->user = memcpy(u->id + a, user, b);
    u->session = memcpy(u->user + b, session, c);
    u->worker = memcpy(u->session + c, worker, d);
    if (s->retry_last)
        s->retry_last->next = u;
    else
        s->retry_first = u;
    s->retry_last = u;
    s->retry_count++;
}

static void retry_flush(store_redis_t *s) {
    if (s->retry_count)
        log_info("redis: sending postponed unregistrations", LOG_U("count", s->retry_count));
    /* Detach the list first: a send that fails at once re-queues its entry. */
    unreg_t *u = s->retry_first;
    s->retry_first = s->retry_last = NULL;
    s->retry_count = 0;
    while (u) {
        unreg_t *next = u->next;
        unregister_send(s, u->id, u->user, u->session, u->worker);
        free(u);
        u = next;
    }
}

/* Readiness ------------------------------------------------------------------ */

/* The check in flight came back (seq: the canary's; the PING in flight's). Late answers
 * (past HEALTH_BOUND_MS) and canaries of earlier checks do not count. */
static void health_answered(store_redis_t *s, uint64_t seq) {
    if (!s->check_pending || seq != s->check_seq) return;
    s->check_pending = false;
    uint64_t now = uv_now(s->loop);
    if (now - s->check_sent_ms <= HEALTH_BOUND_MS) s->last_ok_ms = now ? now : 1;
}

static void send_canary(store_redis_t *s) {
    char body[RAND_ID_LEN + 24];
    int n = snprintf(body, sizeof body, "%s:%llu", s->canary_token,
                     (unsigned long long)s->check_seq);
    Dsock__WorkerMessage m = DSOCK__WORKER_MESSAGE__INIT;
    m.kind = DSOCK__WORKER_MESSAGE__KIND__CANARY;
    m.body = (ProtobufCBinaryData){(size_t)n, (uint8_t *)body};
    size_t packed = dsock__worker_message__get_packed_size(&m);
    const char *args[] = {"PUBLISH", s->channel, NULL};
    size_t lens[] = {7, strlen(s->channel), packed};
    op_t *op = op_new(s, OP_FIRE, -1, 3, args, lens);
    dsock__worker_message__pack(&m, (uint8_t *)op_arg(op, 2));
    op_issue(op);
}

/* From the command connection's tick: one check at a time, every HEALTH_EVERY_MS,
 * only on a working connection (a broken one is not ready anyway). */
static void health_tick(store_redis_t *s, uint64_t now) {
    if (s->check_pending && now - s->check_sent_ms > HEALTH_BOUND_MS)
        s->check_pending = false; /* lost or late: it will not count */
    if (s->check_pending || now < s->next_check_ms || !cmd_ready(s)) return;
    if (s->attached && !redis_conn_ready(s->sub)) return;
    s->check_pending = true;
    s->check_sent_ms = now;
    s->next_check_ms = now + HEALTH_EVERY_MS;
    s->check_seq++;
    if (s->attached) {
        send_canary(s);
    } else {
        const char *args[] = {"PING"};
        size_t lens[] = {4};
        op_t *op = op_new(s, OP_HEALTH_PING, -1, 1, args, lens);
        op->ud = (void *)(uintptr_t)s->check_seq; /* a late answer must not count for a newer PING */
        op_issue(op);
    }
}

/* A canary on our channel: ours only if it carries our token. */
static void canary_received(store_redis_t *s, const ProtobufCBinaryData *body) {
    size_t tl = strlen(s->canary_token);
    if (body->len <= tl + 1 || body->len > tl + 21 || memcmp(body->data, s->canary_token, tl) ||
        body->data[tl] != ':') {
        bus_drop(s, "a canary that is not ours", body->len);
        return;
    }
    uint64_t seq = 0;
    for (size_t i = tl + 1; i < body->len; i++) {
        if (body->data[i] < '0' || body->data[i] > '9') {
            bus_drop(s, "a canary that is not ours", body->len);
            return;
        }
        seq = seq * 10 + (uint64_t)(body->data[i] - '0');
    }
    health_answered(s, seq);
}

static bool r_ready(store_t *st, const char **reason) {
    store_redis_t *s = (store_redis_t *)st;
    uint64_t now = uv_now(s->loop);
    const char *lost = s->attached ? "subscription_lost" : "store_unavailable";
    if (!cmd_ready(s))
        *reason = "store_unavailable";
    else if (s->attached && !redis_conn_ready(s->sub))
        *reason = "subscription_lost";
    else if (!s->last_ok_ms)
        *reason = "starting";
    else if (now - s->last_ok_ms > HEALTH_STALE_MS)
        *reason = lost;
    else
        *reason = NULL;
    return *reason == NULL;
}

/* Connection hooks ---------------------------------------------------------- */

static void cmd_on_connect(redis_conn_t *c, void *ud) {
    store_redis_t *s = ud;
    /* SCRIPT LOAD at every connect: a restarted Redis has forgotten them. */
    for (int i = 0; i < SCRIPT_ALL; i++) {
        const char *args[] = {"SCRIPT", "LOAD", script_source(s, i)};
        size_t lens[] = {6, 4, strlen(args[2])};
        op_t *op = op_new(s, OP_SCRIPT_LOAD, -1, 3, args, lens);
        op->handshake = true;
        op->ud = (void *)(intptr_t)i; /* which sha[] slot the answer fills */
        if (redis_conn_send(c, &op->req, op->argc, op->argv, op->lens)) {
            free(op);
            return;
        }
    }
    if (s->attached) send_heartbeat(s, true);
    const char *ping[] = {"PING"};
    size_t plen[] = {4};
    op_t *op = op_new(s, OP_READY_PING, -1, 1, ping, plen);
    op->handshake = true;
    if (redis_conn_send(c, &op->req, op->argc, op->argv, op->lens)) free(op);
}

static void cmd_on_ready(redis_conn_t *c, void *ud) {
    store_redis_t *s = ud;
    (void)c;
    retry_flush(s);
    waiting_drain(s, true, 0);
    if (s->attached && !s->closing) resync(s);
}

static void finalize(store_redis_t *s);

static void cmd_on_tick(redis_conn_t *c, void *ud, uint64_t now) {
    store_redis_t *s = ud;
    if (s->closing) {
        bool flushed = !redis_conn_busy(c) && (!s->retry_first || !redis_conn_ready(c));
        if (flushed || now >= s->close_deadline_ms) finalize(s);
        return;
    }
    if (s->attached && redis_conn_ready(c) && !s->heartbeat_pending && now >= s->next_heartbeat_ms)
        send_heartbeat(s, false);
    health_tick(s, now);
    if (now > s->conn_cfg.timeout_ms) waiting_drain(s, false, now - s->conn_cfg.timeout_ms);
}

static void sub_on_connect(redis_conn_t *c, void *ud) {
    store_redis_t *s = ud;
    s->next_probe_ms = uv_now(s->loop) + s->refresh_ms;
    if (redis_conn_subscribe(c, s->channel)) redis_conn_fail(c, "cannot send SUBSCRIBE");
}

/* Subscribed (the SUBSCRIBE was confirmed): dsock_store_subscribed is 1 at once;
 * it goes back to 0 on the first tick after the connection is lost. */
static void sub_on_ready(redis_conn_t *c, void *ud) {
    (void)c;
    store_redis_t *s = ud;
    metrics_set_subscribed(1);
    /* Messages published while the subscription was down are lost, and with them
     * (un)subscriptions that Redis recorded but this worker's index never saw:
     * registering every connection again makes Redis agree with the index. (A
     * command connection that came back resyncs by itself.) */
    if (s->sub_was_ready && !s->closing && redis_conn_ready(s->cmd)) resync(s);
    s->sub_was_ready = true;
}

/* A late probe (below) costs the subscription only when the connection, not Redis,
 * is at fault: Redis has answered the command connection since the probe was sent,
 * and the confirmation is still missing a whole timeout after that was first seen.
 * A paused or slow Redis answers nobody: the subscription is kept, since dropping
 * it would lose every message published until it is back, and the confirmation
 * comes with the rest once Redis moves again. A reset or a close is noticed at once
 * anyway (redis_uv.c), and /readyz follows the whole path through the canary. */
static void probe_judge(store_redis_t *s, redis_conn_t *c, uint64_t sent, uint64_t now) {
    uint64_t t = s->conn_cfg.timeout_ms;
    if (now - sent < t) return;
    if (!s->probe_late_ms) {
        if (redis_conn_last_reply_ms(s->cmd) > sent) s->probe_late_ms = now;
        return;
    }
    if (now - s->probe_late_ms < t) return;
    char why[96];
    snprintf(why, sizeof why, "no subscription confirmation within %llu ms while Redis answered",
             (unsigned long long)(now - sent));
    s->probe_late_ms = 0;
    redis_conn_fail(c, why);
}

/* A subscribed connection carries no replies to time, so re-SUBSCRIBE now and
 * then: its confirmation proves the connection still works. */
static void sub_on_tick(redis_conn_t *c, void *ud, uint64_t now) {
    store_redis_t *s = ud;
    /* dsock_store_subscribed: 0 at most one tick (100 ms) after a loss. */
    metrics_set_subscribed(!s->closing && redis_conn_ready(c));
    uint64_t sent = redis_conn_subscribe_sent_ms(c);
    if (!sent || !redis_conn_ready(c)) s->probe_late_ms = 0;
    if (s->closing || !redis_conn_ready(c)) return;
    if (sent) {
        probe_judge(s, c, sent, now);
        return;
    }
    if (now < s->next_probe_ms) return;
    s->next_probe_ms = now + s->refresh_ms;
    redis_conn_subscribe(c, s->channel);
}

/* Counts a dropped bus message and warns, at most once per BUS_DROP_LOG_MS; the
 * warning after a quiet spell reports how many were dropped since the last one. */
static void bus_drop(store_redis_t *s, const char *why, size_t len) {
    s->stats.bus_dropped_invalid++;
    METRICS_INC(dropped[METRICS_DROP_INVALID_BUS_MESSAGE]);
    s->drops_unlogged++;
    uint64_t now = uv_now(s->loop);
    if (now < s->next_drop_log_ms) return;
    s->next_drop_log_ms = now + BUS_DROP_LOG_MS;
    log_warn("redis: dropped invalid bus messages since the last warning",
             LOG_U("dropped", s->drops_unlogged), LOG_S("channel", s->channel),
             LOG_S("latest", why), LOG_U("latest_bytes", len),
             LOG_U("dropped_total", s->stats.bus_dropped_invalid));
    s->drops_unlogged = 0;
}

/* A target id from the bus: absent when empty, else it must be an identifier. */
static bool bus_id_ok(const ProtobufCBinaryData *b) {
    return b->len == 0 || ident_valid((const char *)b->data, b->len);
}

/* A registration generation: 1 to 20 decimal digits, at most UINT64_MAX (the
 * worker's counter; a larger number would wrap in its parser and could match a
 * live generation). */
static bool gen_valid(const ProtobufCBinaryData *b) {
    if (!b->len || b->len > 20) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < b->len; i++) {
        if (b->data[i] < '0' || b->data[i] > '9') return false;
        unsigned d = (unsigned)(b->data[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    return true;
}

/* Anyone who can PUBLISH on Redis can write to this channel, so a message is
 * checked as strictly as the API checks a request before any connection sees it
 * (docs/redis.md): what fails is dropped and counted in bus_dropped_invalid. A
 * BATCH is checked and handed over element by element, in order, exactly as if
 * each element had been published alone (`len`, for the logs, is the whole
 * message's). */
static void bus_handle(store_redis_t *s, const Dsock__WorkerMessage *m, size_t len, bool nested) {
    worker_msg_t msg = {.body = m->body.data, .body_len = m->body.len};
    const char *why = NULL;
    switch (m->kind) {
    case DSOCK__WORKER_MESSAGE__KIND__TEXT: msg.kind = WORKER_MSG_TEXT; break;
    case DSOCK__WORKER_MESSAGE__KIND__BINARY: msg.kind = WORKER_MSG_BINARY; break;
    case DSOCK__WORKER_MESSAGE__KIND__DISCONNECT: msg.kind = WORKER_MSG_DISCONNECT; break;
    case DSOCK__WORKER_MESSAGE__KIND__SUBSCRIBE: msg.kind = WORKER_MSG_SUBSCRIBE; break;
    case DSOCK__WORKER_MESSAGE__KIND__UNSUBSCRIBE: msg.kind = WORKER_MSG_UNSUBSCRIBE; break;
    case DSOCK__WORKER_MESSAGE__KIND__REGISTERED: msg.kind = WORKER_MSG_REGISTERED; break;
    case DSOCK__WORKER_MESSAGE__KIND__CANARY: break;
    case DSOCK__WORKER_MESSAGE__KIND__BATCH: break;
    default: why = "unknown kind"; break;
    }
    if (!why && m->n_batch && m->kind != DSOCK__WORKER_MESSAGE__KIND__BATCH)
        why = "a batch element outside a BATCH";
    if (why)
        ;
    else if (m->kind == DSOCK__WORKER_MESSAGE__KIND__BATCH) {
        if (nested)
            why = "a BATCH inside a BATCH";
        else if (!m->n_batch || m->connection.len || m->user.len || m->session.len ||
                 m->channel.len || m->body.len)
            why = "a BATCH with a target, a body or no element";
        if (why) {
            bus_drop(s, why, len);
            return;
        }
        for (size_t i = 0; i < m->n_batch && !s->closing; i++) bus_handle(s, m->batch[i], len, true);
        return;
    }
    else if (m->kind == DSOCK__WORKER_MESSAGE__KIND__CANARY) {
        /* Consumed here, never handed to the worker: no client ever sees one. */
        if (nested)
            bus_drop(s, "a canary inside a BATCH", len);
        else if (m->connection.len || m->user.len || m->session.len || m->channel.len)
            bus_drop(s, "a canary with a target", len);
        else
            canary_received(s, &m->body);
        return;
    }
    else if (!bus_id_ok(&m->connection) || !bus_id_ok(&m->user) || !bus_id_ok(&m->session))
        why = "a target id is not a valid identifier";
    else if (m->channel.len && !channel_name_valid((const char *)m->channel.data, m->channel.len))
        why = "the target channel is not a valid channel name";
    else if (!m->connection.len && !m->channel.len && !m->user.len)
        why = "no target";
    else if (msg.kind == WORKER_MSG_DISCONNECT && m->body.len)
        why = "a disconnect with a body";
    else if (msg.kind == WORKER_MSG_REGISTERED &&
             (!m->connection.len || m->user.len || m->session.len || m->channel.len ||
              !gen_valid(&m->body)))
        why = "a registration marker without a connection id and a generation";
    else if ((msg.kind == WORKER_MSG_SUBSCRIBE || msg.kind == WORKER_MSG_UNSUBSCRIBE) &&
             !channel_name_valid((const char *)m->body.data, m->body.len))
        why = "a subscription without a valid channel name";
    else if (m->body.len > s->max_body)
        why = "body over max_body_bytes";
    else if (msg.kind == WORKER_MSG_TEXT && !utf8_valid(m->body.data, m->body.len))
        why = "text body is not UTF-8";
    if (why) {
        bus_drop(s, why, len);
        return;
    }
    /* The checked ids hold no NUL: C strings of all four, on the stack when short
     * (one allocation otherwise). */
    size_t need = m->connection.len + m->user.len + m->session.len + m->channel.len + 4;
    char stack[512];
    char *ids = need <= sizeof stack ? stack : mem_alloc(need);
    char *p = ids;
    const ProtobufCBinaryData *src[] = {&m->connection, &m->user, &m->session, &m->channel};
    const char **dst[] = {&msg.target.id, &msg.target.user, &msg.target.session,
                          &msg.target.channel};
    for (size_t i = 0; i < 4; i++) {
        if (src[i]->len) memcpy(p, src[i]->data, src[i]->len);
        p[src[i]->len] = '\0';
        *dst[i] = src[i]->len ? p : NULL;
        p += src[i]->len + 1;
    }
    if (s->handlers.on_message) s->handlers.on_message(s->handlers.ud, &msg);
    if (ids != stack) free(ids);
}

static void sub_on_message(void *ud, const char *data, size_t len) {
    store_redis_t *s = ud;
    if (s->closing) return;
    Dsock__WorkerMessage *m = dsock__worker_message__unpack(NULL, len, (const uint8_t *)data);
    if (!m) {
        bus_drop(s, "not a WorkerMessage", len);
        return;
    }
    bus_handle(s, m, len, false);
    dsock__worker_message__free_unpacked(m, NULL);
}

void store_redis_get_stats(const store_t *st, store_redis_stats_t *out) {
    *out = ((const store_redis_t *)st)->stats;
}

static void free_store(store_redis_t *s) {
    unreg_t *u = s->retry_first;
    while (u) {
        unreg_t *next = u->next;
        free(u);
        u = next;
    }
    void (*done)(void *) = s->done;
    void *done_ud = s->done_ud;
    for (int i = 0; i < SCRIPT_ALL - REDIS_SCRIPT_COUNT; i++) free(s->idem_src[i]);
    free(s->host);
    free(s->username);
    free(s->password);
    free(s->worker_id);
    free(s->channel);
    free(s->alive_key);
    free(s);
    if (done) done(done_ud);
}

static void conn_on_closed(void *ud) {
    store_redis_t *s = ud;
    if (--s->open_conns == 0) free_store(s);
}

static void batch_check_closed(uv_handle_t *h) { conn_on_closed(h->data); }

static void finalize(store_redis_t *s) {
    if (s->finalizing) return;
    s->finalizing = true;
    batch_flush(s); /* empty since r_close; an op submitted now fails below */
    uv_close((uv_handle_t *)&s->batch_check, batch_check_closed);
    if (s->retry_count)
        log_warn("redis: unregistrations could not be sent before closing",
                 LOG_U("count", s->retry_count));
    /* Pending callbacks run now, with NULL -> STORE_UNAVAILABLE. */
    waiting_drain(s, false, UINT64_MAX);
    /* First: it stops telling the connections below about addresses. */
    if (s->sentinel) redis_sentinel_close(s->sentinel, conn_on_closed, s);
    redis_conn_close(s->cmd);
    if (s->sub) redis_conn_close(s->sub);
}

/* API side ------------------------------------------------------------------ */

/* Channel names joined by "\n" (docs/redis.md), malloc'd; "" when none. */
static char *join_channels(const char *const *names, size_t n) {
    size_t len = 1;
    for (size_t i = 0; i < n; i++) len += strlen(names[i]) + 1;
    char *out = mem_alloc(len), *p = out;
    for (size_t i = 0; i < n; i++) {
        if (i) *p++ = '\n';
        size_t l = strlen(names[i]);
        memcpy(p, names[i], l);
        p += l;
    }
    *p = '\0';
    return out;
}

static void r_claim_create(store_t *st, const store_claim_t *c, store_status_cb cb, void *ud) {
    store_redis_t *s = (store_redis_t *)st;
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE);
        return;
    }
    char exp[24];
    snprintf(exp, sizeof exp, "%lld", (long long)c->expiration);
    char *chans = join_channels(c->channels, c->channel_count);
    op_t *op = script_op(s, OP_CLAIM_CREATE, REDIS_SCRIPT_CLAIM_CREATE, 5,
                         (const char *[]){c->id, nz(c->user), nz(c->session), exp, chans});
    free(chans);
    op_timed(op, METRICS_OP_CLAIM_CREATE);
    op->cb.status = cb;
    op->ud = ud;
    op_submit(op);
}

/* The target's precedence (store.h): an id wins, then a channel, else the user
 * and its session. False when there is no target at all. */
static bool resolve_target(const store_target_t *t, const char **id, const char **channel,
                           const char **user, const char **session) {
    *id = opt(t->id);
    *channel = *id ? NULL : opt(t->channel);
    *user = *id || *channel ? NULL : opt(t->user);
    *session = *user ? opt(t->session) : NULL;
    return *id || *channel || *user;
}

static ProtobufCBinaryData pb_bytes(const char *s) {
    return (ProtobufCBinaryData){strlen(nz(s)), (uint8_t *)nz(s)};
}

/* Big sends ------------------------------------------------------------------
 *
 * Redis 7 hashes every byte of a Lua string when it makes one (redis/redis#9449),
 * so a payload given to the deliver script as an ARGV costs Redis a byte-serial
 * pass over the whole message before the script even starts: two thirds of Redis's
 * CPU for 1 MiB messages (docs/benchmark.md, "Large messages over Redis"). A send of
 * at least BIG_SEND_BYTES without an Idempotency-Key therefore takes two steps on
 * the command connection: the resolve script (the deliver script's resolution,
 * without the payload) answers the live workers holding target connections, and
 * the API PUBLISHes the packed message to each of them itself; PUBLISH copies it
 * into the subscribers' buffers and nothing hashes it. The answer waits for every
 * PUBLISH, and counts like the script: a PUBLISH reaching no subscriber is an
 * unreachable worker.
 *
 * Ordering: while a big send is between its resolution and its PUBLISHes, the
 * store sends nothing else (the fence: later requests wait in the queue of requests
 * waiting for a connection, op_submit), so the messages of one API thread still
 * reach Redis's channels in the order their requests reached the store, as when one
 * script call did both; a send answered before another started is published before
 * it, whatever process sends it. The fence costs one round trip per big send.
 *
 * Failures: a lost resolution published nothing (503 STORE_UNAVAILABLE, safe to
 * retry); a lost PUBLISH may have happened (ERROR_OUTCOME_UNKNOWN, as for a lost
 * script call). With an Idempotency-Key the send stays one script call, the payload
 * in Lua: the key must be recorded in the same atomic step as the publication. */

typedef struct big_pub {
    redis_req_t req; /* first: the reply callback gets &pub->req */
    struct big_state *b;
    size_t conns;    /* target connections on this worker */
} big_pub_t;

typedef struct big_state {
    store_redis_t *s;
    store_delivery_cb cb;
    void *ud;
    uint64_t t0_ns;
    size_t pending;  /* PUBLISH answers still to come */
    bool lost, failed;
    store_delivery_t d;
    big_pub_t pubs[]; /* one per worker */
} big_state_t;

static void big_send(store_redis_t *s, const Dsock__WorkerMessage *m, size_t packed,
                     const char *id, const char *user, const char *session,
                     const char *channel, store_delivery_cb cb, void *ud) {
    op_t *op = script_op(s, OP_RESOLVE, REDIS_SCRIPT_RESOLVE, 4,
                         (const char *[]){nz(id), nz(user), nz(session), nz(channel)});
    /* Packed once, with room around it for each PUBLISH's protocol framing, so the
     * command is written in place (big_send_resolved) rather than formatted into
     * another copy. */
    op->payload = mem_alloc(BIG_HEAD_ROOM + packed + 2);
    op->payload_len = packed;
    dsock__worker_message__pack(m, op->payload + BIG_HEAD_ROOM);
    op->t0_ns = metrics_now_ns(); /* observed when the last PUBLISH answers */
    op->cb.delivery = cb;
    op->ud = ud;
    op_submit(op);
}

static void big_finish(big_state_t *b) {
    store_status_t st = STORE_OK;
    if (b->lost || b->failed) {
        METRICS_INC(store_errors[METRICS_STORE_ERROR]);
        /* Some PUBLISH may have reached its worker: not an error the caller may
         * simply retry. */
        st = b->lost || b->d.workers ? STORE_UNKNOWN : STORE_UNAVAILABLE;
    }
    metrics_observe_store(METRICS_OP_SEND, metrics_now_ns() - b->t0_ns);
    b->cb(b->ud, st, &b->d);
    free(b);
}

static void big_pub_reply(redis_req_t *req, redisReply *reply) {
    big_pub_t *p = (big_pub_t *)req;
    big_state_t *b = p->b;
    if (!reply) {
        b->lost = true;
    } else if (reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer > 0) {
            b->d.connections += p->conns;
            b->d.workers++;
        } else {
            b->d.unreachable++;
        }
    } else {
        b->failed = true;
        log_warn("redis: unexpected answer to PUBLISH", LOG_I("type", reply->type),
                 LOG_B("error", reply->type == REDIS_REPLY_ERROR ? reply->str : "",
                       reply->type == REDIS_REPLY_ERROR ? reply->len : 0));
    }
    if (--b->pending == 0) big_finish(b);
}

/* The resolution of a big send (op_finish): PUBLISH to each worker, then lift the
 * fence and send what waited behind it. */
static void big_send_resolved(op_t *op, redisReply *reply) {
    store_redis_t *s = op->s;
    size_t n = reply && reply->type == REDIS_REPLY_ARRAY ? reply->elements / 2 : 0;
    bool ok = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements % 2 == 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = reply->element[2 * i]->type == REDIS_REPLY_STRING &&
             reply->element[2 * i + 1]->type == REDIS_REPLY_INTEGER;
    if (!ok) {
        /* Nothing was published: a lost or refused resolution can be retried. */
        op->mop = METRICS_OP_SEND;
        metrics_observe_store(METRICS_OP_SEND, metrics_now_ns() - op->t0_ns);
        store_delivery_t none = {0};
        op->cb.delivery(op->ud, bad_reply(op, reply), &none);
    } else if (n == 0) {
        metrics_observe_store(METRICS_OP_SEND, metrics_now_ns() - op->t0_ns);
        op->cb.delivery(op->ud, STORE_OK, &(store_delivery_t){0});
    } else {
        big_state_t *b = mem_calloc(1, sizeof *b + n * sizeof b->pubs[0]);
        b->s = s;
        b->cb = op->cb.delivery;
        b->ud = op->ud;
        b->t0_ns = op->t0_ns;
        b->pending = n;
        /* Each PUBLISH is answered later (big_pub_reply), never during this loop,
         * so b outlives it. The command is framed around the packed message in
         * place (the head just before it, CRLF after it); hiredis copies it into its
         * output buffer, so the next worker's head may overwrite this one, except
         * for the last, which the connection writes from this buffer itself. */
        uint8_t *payload = op->payload + BIG_HEAD_ROOM;
        memcpy(payload + op->payload_len, "\r\n", 2);
        for (size_t i = 0; i < n; i++) {
            big_pub_t *p = &b->pubs[i];
            p->b = b;
            p->conns = (size_t)reply->element[2 * i + 1]->integer;
            p->req.fn = big_pub_reply;
            const redisReply *w = reply->element[2 * i];
            char head[BIG_HEAD_ROOM + 32];
            int hl = snprintf(head, sizeof head, "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\nworker:",
                              w->len + 7);
            if (hl > 0 && (size_t)hl + w->len <= BIG_HEAD_ROOM) { /* the id's exact bytes */
                memcpy(head + hl, w->str, w->len);
                hl += (int)w->len;
                hl += snprintf(head + hl, sizeof head - (size_t)hl, "\r\n$%zu\r\n",
                               op->payload_len);
            } else {
                hl = -1;
            }
            int rc;
            if (hl > 0 && (size_t)hl <= BIG_HEAD_ROOM && i == n - 1) {
                /* The last (usually the only) one: the connection writes it from
                 * here and frees the buffer once written. */
                memcpy(payload - hl, head, (size_t)hl);
                rc = redis_conn_send_owned(s->cmd, &p->req, op->payload,
                                           (const char *)payload - hl,
                                           (size_t)hl + op->payload_len + 2);
                op->payload = NULL;
            } else if (hl > 0 && (size_t)hl <= BIG_HEAD_ROOM) {
                memcpy(payload - hl, head, (size_t)hl);
                rc = redis_conn_send_formatted(s->cmd, &p->req, (const char *)payload - hl,
                                               (size_t)hl + op->payload_len + 2);
            } else { /* a worker id too long for the room: hiredis formats it */
                char *chan = mem_alloc(w->len + 8);
                memcpy(chan, "worker:", 7);
                memcpy(chan + 7, w->str, w->len);
                const char *argv[] = {"PUBLISH", chan, (const char *)payload};
                size_t lens[] = {7, w->len + 7, op->payload_len};
                rc = redis_conn_send(s->cmd, &p->req, 3, argv, lens);
                free(chan);
            }
            if (rc) {
                b->failed = true; /* no connection */
                if (--b->pending == 0) big_finish(b);
            }
        }
    }
    if (op->fenced) {
        op->fenced = false;
        if (--s->fence == 0 && !s->closing) waiting_drain(s, true, 0);
    }
}

/* Batched sends ------------------------------------------------------------ */

/* The sends a turn of the loop produced (the API's requests read in one poll
 * phase) wait in s->batch until the loop's check phase, right after that poll
 * phase, or until anything else is submitted (op_submit flushes first, so every
 * operation still reaches Redis in call order), or until the batch is full.
 * Alone, a send goes as before (deliver); together, as one deliver_batch call,
 * which PUBLISHes once per worker (docs/redis.md, "Batched sends"). hiredis
 * writes its buffer when the socket is next writable, on a later poll phase,
 * so waiting for the check phase costs a send no time. */
static void batch_flush(store_redis_t *s) {
    size_t n = s->batch_n;
    if (!n) return;
    s->batch_n = 0;
    s->batch_bytes = 0;
    uv_check_stop(&s->batch_check);
    if (n == 1) {
        op_submit(s->batch[0]);
        return;
    }
    /* EVALSHA sha 0 count, then the 5 arguments of each send, pointing into the
     * sends' own copies (alive until the batch is answered). */
    char *tail;
    op_t *op = op_alloc(s, OP_DELIVER_BATCH, REDIS_SCRIPT_DELIVER_BATCH, 4 + 5 * (int)n,
                        n * sizeof(op_t *) + 24, &tail);
    op->members = (op_t **)tail;
    op->n_members = n;
    char *count = (char *)(op->members + n);
    snprintf(count, 24, "%zu", n);
    op->argv[3] = count;
    op->lens[3] = strlen(count);
    for (size_t i = 0; i < n; i++) {
        op_t *m = s->batch[i];
        op->members[i] = m;
        for (int j = 0; j < 5; j++) {
            op->argv[4 + 5 * i + (size_t)j] = m->argv[3 + j];
            op->lens[4 + 5 * i + (size_t)j] = m->lens[3 + j];
        }
    }
    op_submit(op);
}

static void on_batch_check(uv_check_t *h) { batch_flush(h->data); }

/* A plain send (deliver's op, not yet submitted) joins this turn's batch. */
static void batch_add(store_redis_t *s, op_t *op) {
    size_t bytes = op->lens[3 + 4];
    if (s->batch_n && s->batch_bytes + bytes > BATCH_MAX_BYTES) batch_flush(s);
    if (!s->batch_n) uv_check_start(&s->batch_check, on_batch_check);
    s->batch[s->batch_n++] = op;
    s->batch_bytes += bytes;
    if (s->batch_n == BATCH_MAX) batch_flush(s);
}

/* The payload is encoded once here; the script PUBLISHes the same bytes to every
 * worker. Sends, disconnects and (un)subscriptions (join: "1"/"0", with the
 * channel name as the body). */
static void deliver(store_redis_t *s, worker_msg_kind_t kind, const store_target_t *t,
                    const uint8_t *body, size_t body_len, bool drop_claims, store_delivery_cb cb,
                    void *ud) {
    store_delivery_t none = {0};
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, &none);
        return;
    }
    const char *id, *channel, *user, *session;
    if (!resolve_target(t, &id, &channel, &user, &session)) {
        cb(ud, STORE_OK, &none); /* no target: nothing to reach */
        return;
    }
    bool sub = kind == WORKER_MSG_SUBSCRIBE || kind == WORKER_MSG_UNSUBSCRIBE;
    Dsock__WorkerMessage m = DSOCK__WORKER_MESSAGE__INIT;
    m.kind = kind == WORKER_MSG_BINARY        ? DSOCK__WORKER_MESSAGE__KIND__BINARY
             : kind == WORKER_MSG_DISCONNECT  ? DSOCK__WORKER_MESSAGE__KIND__DISCONNECT
             : kind == WORKER_MSG_SUBSCRIBE   ? DSOCK__WORKER_MESSAGE__KIND__SUBSCRIBE
             : kind == WORKER_MSG_UNSUBSCRIBE ? DSOCK__WORKER_MESSAGE__KIND__UNSUBSCRIBE
                                              : DSOCK__WORKER_MESSAGE__KIND__TEXT;
    m.connection = pb_bytes(id);
    m.user = pb_bytes(user);
    m.session = pb_bytes(session);
    m.channel = pb_bytes(channel);
    m.body.data = (uint8_t *)body;
    m.body.len = body ? body_len : 0;
    size_t packed = dsock__worker_message__get_packed_size(&m);
    op_t *op;
    int at;
    /* The idempotent wrapper's three arguments go after the script's own. */
    const store_idem_t *idem = t->idem && t->idem->key ? t->idem : NULL;
    if (!sub && kind != WORKER_MSG_DISCONNECT && !idem && m.body.len >= BIG_SEND_BYTES) {
        big_send(s, &m, packed, id, user, session, channel, cb, ud);
        return;
    }
    char ikey[sizeof IDEM_KEY_PREFIX + 256], ittl[16];
    const char *iargs[3] = {NULL, NULL, NULL};
    if (idem) {
        snprintf(ikey, sizeof ikey, "%s%s", IDEM_KEY_PREFIX, idem->key);
        snprintf(ittl, sizeof ittl, "%u", s->idem_ttl_s);
        iargs[0] = ikey;
        iargs[1] = idem->fingerprint;
        iargs[2] = ittl;
    }
    int extra = idem ? 3 : 0;
    if (sub) {
        /* drop_claims carries "not ignoreClaims" here */
        char name[CHANNEL_NAME_MAX + 1];
        memcpy(name, body, body_len);
        name[body_len] = '\0';
        const char *args[] = {nz(id),    nz(user), nz(session),
                              nz(channel), name,   kind == WORKER_MSG_SUBSCRIBE ? "1" : "0",
                              drop_claims ? "0" : "1", NULL, iargs[0], iargs[1], iargs[2]};
        size_t lens[11];
        for (int i = 0; i < 11; i++) lens[i] = i == 7 ? packed : args[i] ? strlen(args[i]) : 0;
        op = op_new(s, OP_DELIVER, idem ? SCRIPT_SUBSCRIBE_IDEM : REDIS_SCRIPT_SUBSCRIBE,
                    8 + extra, args, lens);
        at = 7;
    } else {
        const char *args[] = {nz(id), nz(user), nz(session), nz(channel), NULL,
                              drop_claims ? "1" : "0", iargs[0], iargs[1], iargs[2]};
        size_t lens[9];
        for (int i = 0; i < 9; i++) lens[i] = i == 4 ? packed : args[i] ? strlen(args[i]) : 0;
        op = op_new(s, OP_DELIVER, idem ? SCRIPT_DELIVER_IDEM : REDIS_SCRIPT_DELIVER, 6 + extra,
                    args, lens);
        at = 4;
    }
    dsock__worker_message__pack(&m, (uint8_t *)op_arg(op, at));
    op_timed(op, kind == WORKER_MSG_DISCONNECT ? METRICS_OP_DISCONNECT
                 : sub                         ? METRICS_OP_SUBSCRIBE
                                               : METRICS_OP_SEND);
    op->cb.delivery = cb;
    op->ud = ud;
    /* A plain send, without an Idempotency-Key (whose wrapper is per call), joins
     * the turn's batch; the rest goes at once (after the batch). */
    if ((kind == WORKER_MSG_TEXT || kind == WORKER_MSG_BINARY) && !idem && !drop_claims &&
        packed <= BATCH_ONE_MAX)
        batch_add(s, op);
    else
        op_submit(op);
}

static void r_send(store_t *st, const worker_msg_t *msg, store_delivery_cb cb, void *ud) {
    deliver((store_redis_t *)st, msg->kind, &msg->target, msg->body, msg->body_len, false, cb, ud);
}

static void r_disconnect(store_t *st, const store_target_t *t, bool keep_claims,
                         store_delivery_cb cb, void *ud) {
    deliver((store_redis_t *)st, WORKER_MSG_DISCONNECT, t, NULL, 0, !keep_claims, cb, ud);
}

static void r_subscribe(store_t *st, const store_target_t *t, const char *channel, bool join,
                        bool ignore_claims, store_delivery_cb cb, void *ud) {
    size_t len = strlen(channel);
    if (!channel_name_valid(channel, len)) { /* the API checked it: a caller's bug */
        cb(ud, STORE_UNAVAILABLE, &(store_delivery_t){0});
        return;
    }
    deliver((store_redis_t *)st, join ? WORKER_MSG_SUBSCRIBE : WORKER_MSG_UNSUBSCRIBE, t,
            (const uint8_t *)channel, len, !ignore_claims, cb, ud);
}

static void r_info(store_t *st, const store_target_t *t, store_info_cb cb, void *ud) {
    store_redis_t *s = (store_redis_t *)st;
    store_info_t none = {0};
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, &none);
        return;
    }
    const char *id, *channel, *user, *session;
    if (!resolve_target(t, &id, &channel, &user, &session)) {
        cb(ud, STORE_OK, &none);
        return;
    }
    op_t *op = script_op(s, OP_INFO, REDIS_SCRIPT_INFO, 4,
                         (const char *[]){nz(id), nz(user), nz(session), nz(channel)});
    op_timed(op, METRICS_OP_INFO);
    op->cb.info = cb;
    op->ud = ud;
    op_submit(op);
}

/* Worker side --------------------------------------------------------------- */

static int r_worker_attach(store_t *st, const char *worker_id, const store_worker_handlers_t *h) {
    store_redis_t *s = (store_redis_t *)st;
    if (s->attached) return -EALREADY;
    if (!worker_id || !worker_id[0]) return -EINVAL;
    if (s->closing) return -ESHUTDOWN;
    s->attached = true;
    s->worker_id = mem_strdup(worker_id);
    size_t n = strlen(worker_id);
    s->channel = mem_alloc(n + 8);
    snprintf(s->channel, n + 8, "worker:%s", worker_id);
    s->alive_key = mem_alloc(n + 14);
    snprintf(s->alive_key, n + 14, "worker-alive:%s", worker_id);
    s->handlers = *h;
    redis_conn_config_t cfg = s->conn_cfg;
    cfg.name = "pub/sub";
    redis_conn_hooks_t hooks = {
        .on_connect = sub_on_connect,
        .on_ready = sub_on_ready,
        .on_tick = sub_on_tick,
        .on_message = sub_on_message,
        .on_closed = conn_on_closed,
        .ud = s,
    };
    s->open_conns++;
    s->sub = redis_conn_new(s->loop, &cfg, &hooks);
    if (s->sentinel) redis_sentinel_watch(s->sentinel, s->sub);
    /* Connected already: announce the worker now; a nil answer asks for a resync,
     * which is harmless on a fresh worker. */
    if (redis_conn_ready(s->cmd)) send_heartbeat(s, false);
    return 0;
}

static void r_claim_take(store_t *st, const char *claim_id, store_claim_cb cb, void *ud) {
    store_redis_t *s = (store_redis_t *)st;
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE, NULL);
        return;
    }
    op_t *op = script_op(s, OP_CLAIM_TAKE, REDIS_SCRIPT_CLAIM_TAKE, 1, (const char *[]){claim_id});
    op_timed(op, METRICS_OP_CLAIM_TAKE);
    op->cb.claim = cb;
    op->ud = ud;
    op_submit(op);
}

static void r_conn_register(store_t *st, const store_conn_t *c, store_status_cb cb, void *ud) {
    store_redis_t *s = (store_redis_t *)st;
    if (s->closing) {
        cb(ud, STORE_UNAVAILABLE);
        return;
    }
    char ping[24], ttl[16];
    snprintf(ping, sizeof ping, "%lld", (long long)c->last_ping);
    /* Only our own worker key may be recreated, and only while we heartbeat it. */
    bool own = s->attached && c->worker && !strcmp(c->worker, s->worker_id);
    snprintf(ttl, sizeof ttl, "%u", own ? s->ttl_s : 0);
    char *chans = join_channels(c->channels, c->channel_count);
    /* The ordering marker (store.h conn_register), packed here like a send. */
    char gen[24] = "";
    Dsock__WorkerMessage m = DSOCK__WORKER_MESSAGE__INIT;
    size_t packed = 0;
    if (c->generation && s->attached) {
        snprintf(gen, sizeof gen, "%llu", (unsigned long long)c->generation);
        m.kind = DSOCK__WORKER_MESSAGE__KIND__REGISTERED;
        m.connection = pb_bytes(c->id);
        m.body = (ProtobufCBinaryData){strlen(gen), (uint8_t *)gen};
        packed = dsock__worker_message__get_packed_size(&m);
    }
    const char *args[] = {c->id, nz(c->user), nz(opt(c->session)),
                          nz(c->worker ? c->worker : s->worker_id), ping, ttl, chans, NULL};
    size_t lens[8];
    for (int i = 0; i < 7; i++) lens[i] = strlen(args[i]);
    lens[7] = packed;
    op_t *op = op_new(s, OP_REGISTER, REDIS_SCRIPT_CONN_REGISTER, 8, args, lens);
    if (packed) dsock__worker_message__pack(&m, (uint8_t *)op_arg(op, 7));
    free(chans);
    op_timed(op, METRICS_OP_CONN_REGISTER);
    op->cb.status = cb;
    op->ud = ud;
    op_submit(op);
}

static void r_conn_unregister(store_t *st, const store_conn_t *c) {
    store_redis_t *s = (store_redis_t *)st;
    if (s->finalizing) return;
    const char *user = nz(c->user), *session = nz(opt(c->session));
    const char *worker = c->worker ? c->worker : nz(s->worker_id);
    /* While closing, still send what we can: store_close waits for it. */
    if (redis_conn_ready(s->cmd))
        unregister_send(s, c->id, user, session, worker);
    else
        unregister_later(s, c->id, user, session, worker);
}

static void r_conn_touch(store_t *st, const char *conn_id, int64_t last_ping) {
    store_redis_t *s = (store_redis_t *)st;
    if (!cmd_ready(s)) return; /* the next ping will do */
    char ping[24];
    snprintf(ping, sizeof ping, "%lld", (long long)last_ping);
    op_issue(op_timed(script_op(s, OP_TOUCH, REDIS_SCRIPT_CONN_TOUCH, 2,
                                (const char *[]){conn_id, ping}),
                      METRICS_OP_CONN_TOUCH));
}

/* At most this many connections per chan_apply call: Redis is never held for
 * long by one worker's write-back (about 3 commands, a few us, per connection). */
#define CHAN_APPLY_BATCH 1000

/* The worker's write-back of a subscription by channel (store.h): one chan_apply
 * per batch, pipelined on the command connection, which orders it after every
 * registration this worker sent before (so it edits records they wrote) and before
 * every later one. Queued like a registration while the connection is not ready;
 * lost with it, it is made good by the resync that follows a reconnect. The last
 * batch (or an empty one) clears this worker's pending mark (docs/redis.md). */
static void r_conns_subscribed(store_t *st, const char *channel, bool join,
                               const char *const *ids, const char *const *before, size_t n) {
    store_redis_t *s = (store_redis_t *)st;
    if (s->closing || !s->attached) return;
    size_t per = join ? 2 : 1; /* a join: (id, channel before it) pairs */
    size_t at = 0;
    do {
        size_t k = n - at < CHAN_APPLY_BATCH ? n - at : CHAN_APPLY_BATCH;
        size_t argc = 4 + per * k;
        const char **args = mem_alloc(argc * sizeof *args);
        size_t *lens = mem_alloc(argc * sizeof *lens);
        args[0] = s->worker_id;
        args[1] = channel;
        args[2] = join ? "1" : "0";
        args[3] = at + k == n ? "1" : "0";
        for (size_t i = 0; i < k; i++) {
            args[4 + per * i] = ids[at + i];
            if (join) args[5 + per * i] = before[at + i];
        }
        for (size_t i = 0; i < argc; i++) lens[i] = strlen(args[i]);
        op_t *op = op_new(s, OP_FIRE, REDIS_SCRIPT_CHAN_APPLY, (int)argc, args, lens);
        free(args);
        free(lens);
        op_submit(op_timed(op, METRICS_OP_CHANNEL_APPLY));
        at += k;
    } while (at < n);
}

/* Lifecycle ----------------------------------------------------------------- */

static void r_close(store_t *st, void (*done)(void *ud), void *ud) {
    store_redis_t *s = (store_redis_t *)st;
    if (s->closing) return;
    batch_flush(s);
    s->done = done;
    s->done_ud = ud;
    if (redis_conn_ready(s->cmd)) {
        retry_flush(s);
        /* A worker leaving cleanly removes what is left of its entries and its
         * own keys, after the unregistrations already queued (one FIFO). */
        if (s->attached) send_leave(s);
    }
    s->closing = true;
    s->close_deadline_ms = uv_now(s->loop) + s->conn_cfg.timeout_ms;
    /* The command connection's next tick finalizes once the answers are in. */
}

static const char *r_describe(store_t *st) { return ((store_redis_t *)st)->description; }

static const store_ops_t redis_ops = {
    .claim_create = r_claim_create,
    .send = r_send,
    .disconnect = r_disconnect,
    .info = r_info,
    .subscribe = r_subscribe,
    .worker_attach = r_worker_attach,
    .claim_take = r_claim_take,
    .conn_register = r_conn_register,
    .conn_unregister = r_conn_unregister,
    .conn_touch = r_conn_touch,
    .conns_subscribed = r_conns_subscribed,
    .close = r_close,
    .describe = r_describe,
    .ready = r_ready,
};

/* "host:port", "host", "[v6]:port", "[v6]", or "unix:/path" (kept whole: redis_conn
 * connects to the path, and logs say what it is). */
static void parse_host(const char *spec, char **host, int *port) {
    *port = 6379;
    if (!spec || !spec[0]) spec = "localhost";
    if (!strncmp(spec, REDIS_UNIX_PREFIX, strlen(REDIS_UNIX_PREFIX))) {
        *host = mem_strdup(spec);
        *port = 0;
        return;
    }
    const char *colon = NULL;
    if (spec[0] == '[') {
        const char *end = strchr(spec, ']');
        if (end) {
            *host = mem_strndup(spec + 1, (size_t)(end - spec - 1));
            if (end[1] == ':') *port = atoi(end + 2);
            if (*port <= 0 || *port > 65535) *port = 6379;
            return;
        }
    } else {
        colon = strrchr(spec, ':');
        if (colon && strchr(spec, ':') != colon) colon = NULL; /* bare IPv6 */
    }
    if (colon) {
        *host = mem_strndup(spec, (size_t)(colon - spec));
        *port = atoi(colon + 1);
        if (*port <= 0 || *port > 65535) *port = 6379;
    } else {
        *host = mem_strdup(spec);
    }
}

store_t *store_redis_new(uv_loop_t *loop, const store_redis_config_t *cfg) {
    store_redis_t *s = mem_calloc(1, sizeof *s);
    s->base.ops = &redis_ops;
    s->loop = loop;
    int port;
    parse_host(cfg->host, &s->host, &port);
    s->username = cfg->username && cfg->username[0] ? mem_strdup(cfg->username) : NULL;
    s->password = cfg->password && cfg->password[0] ? mem_strdup(cfg->password) : NULL;
    s->ttl_s = cfg->worker_ttl_s ? cfg->worker_ttl_s : 10;
    s->max_body = cfg->max_body_bytes;
    s->idem_ttl_s = cfg->idempotency_ttl_s ? cfg->idempotency_ttl_s : 300;
    const int wrapped[] = {REDIS_SCRIPT_DELIVER, REDIS_SCRIPT_SUBSCRIBE};
    for (int i = 0; i < SCRIPT_ALL - REDIS_SCRIPT_COUNT; i++) {
        const char *src = redis_scripts[wrapped[i]].source;
        size_t n = strlen(IDEM_HEAD) + strlen(src) + strlen(IDEM_TAIL) + 1;
        s->idem_src[i] = mem_alloc(n);
        snprintf(s->idem_src[i], n, "%s%s%s", IDEM_HEAD, src, IDEM_TAIL);
    }
    rand_id(s->canary_token);
    s->refresh_ms = s->ttl_s * 1000u / 3;
    if (s->refresh_ms == 0) s->refresh_ms = 1;
    s->conn_cfg = (redis_conn_config_t){
        .name = "command",
        .host = s->host,
        .port = port,
        .username = s->username,
        .password = s->password,
        .db = cfg->db,
        .timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000,
    };
    if (cfg->sentinels && cfg->sentinels[0]) {
        redis_sentinel_config_t sc = {.sentinels = cfg->sentinels,
                                      .master_name = cfg->master_name,
                                      .password = cfg->sentinel_password,
                                      .timeout_ms = s->conn_cfg.timeout_ms};
        s->sentinel = redis_sentinel_new(loop, &sc);
        if (!s->sentinel) log_fatal("redis_sentinels does not parse"); /* validated before */
        s->conn_cfg.resolver = redis_sentinel_resolver(s->sentinel);
        s->conn_cfg.check_role = true;
        snprintf(s->description, sizeof s->description, "%s db %d",
                 redis_sentinel_describe(s->sentinel), cfg->db);
    } else if (port)
        snprintf(s->description, sizeof s->description, "redis %s:%d db %d", s->host, port,
                 cfg->db);
    else
        snprintf(s->description, sizeof s->description, "redis %s db %d", s->host, cfg->db);
    redis_conn_hooks_t hooks = {
        .on_connect = cmd_on_connect,
        .on_ready = cmd_on_ready,
        .on_tick = cmd_on_tick,
        .on_closed = conn_on_closed,
        .ud = s,
    };
    uv_check_init(loop, &s->batch_check);
    s->batch_check.data = s;
    /* the command connection, batch_check, and the sentinel watcher if any */
    s->open_conns = s->sentinel ? 3 : 2;
    s->cmd = redis_conn_new(loop, &s->conn_cfg, &hooks);
    if (s->sentinel) redis_sentinel_watch(s->sentinel, s->cmd);
    return &s->base;
}
