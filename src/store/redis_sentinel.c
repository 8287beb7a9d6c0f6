/* Redis Sentinel discovery; see redis_sentinel.h and docs/redis.md, "Sentinel". */
#include "store/redis_sentinel.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "common/mem.h"
#include "ops/metrics.h"

#define SWITCH_CHANNEL "+switch-master"
/* A subscribed connection carries no replies to time: re-SUBSCRIBE this often, and
 * drop it when the confirmation is later than the timeout (a silent sentinel). */
#define SUB_PROBE_MS 5000
#define MAX_WATCHED 4

/* Which sentinel a connection tries: the next one after each failure. */
typedef struct rotation {
    redis_sentinel_t *s;
    size_t at;
} rotation_t;

struct redis_sentinel {
    uv_loop_t *loop;
    config_hostport_t list[CONFIG_SENTINELS_MAX];
    size_t n;
    char *master_name;
    char *password;
    unsigned timeout_ms;
    redis_conn_t *ask_conn; /* SENTINEL get-master-addr-by-name */
    redis_conn_t *sub_conn; /* SUBSCRIBE +switch-master */
    rotation_t ask_rot, sub_rot;
    int open;
    bool closing;
    /* The primary: the last address learnt (kept while stale, to tell a change). */
    char host[256];
    int port;
    bool have_addr;
    bool known;   /* have_addr and not reported stale since */
    bool want;    /* a question must be asked (asked once the connection is ready) */
    bool asking;  /* a question is in flight */
    redis_req_t ask_req;
    uint64_t next_probe_ms;
    redis_conn_t *watched[MAX_WATCHED];
    size_t nwatched;
    char description[256];
    void (*done)(void *ud);
    void *done_ud;
};

static void ask(redis_sentinel_t *s);

/* A new answer. A changed address makes every watched connection follow it (they
 * drop a connection to the old one); an unchanged one wakes those waiting. */
static void set_master(redis_sentinel_t *s, const char *host, int port, const char *how) {
    bool changed = !s->have_addr || strcmp(s->host, host) || s->port != port;
    if (changed) {
        if (s->have_addr) {
            log_warn("redis primary changed", LOG_S("master", s->master_name),
                     LOG_S("from", s->host), LOG_I("from_port", s->port), LOG_S("to", host),
                     LOG_I("to_port", port), LOG_S("source", how));
            METRICS_INC(store_primary_changes);
        } else {
            log_info("redis primary found", LOG_S("master", s->master_name), LOG_S("host", host),
                     LOG_I("port", port), LOG_S("source", how));
        }
        snprintf(s->host, sizeof s->host, "%s", host);
        s->port = port;
        s->have_addr = true;
    }
    s->known = true;
    s->want = false;
    for (size_t i = 0; i < s->nwatched; i++) {
        if (changed)
            redis_conn_follow(s->watched[i]);
        else
            redis_conn_kick(s->watched[i]);
    }
}

/* Resolvers ------------------------------------------------------------------ */

static int rot_resolve(void *ud, const char **host, int *port) {
    rotation_t *r = ud;
    *host = r->s->list[r->at].host;
    *port = r->s->list[r->at].port;
    return 0;
}

static void rot_stale(void *ud, const char *host, int port) {
    rotation_t *r = ud;
    const config_hostport_t *cur = &r->s->list[r->at];
    if (!strcmp(cur->host, host) && cur->port == port) r->at = (r->at + 1) % r->s->n;
}

static int master_resolve(void *ud, const char **host, int *port) {
    redis_sentinel_t *s = ud;
    if (!s->known) {
        ask(s);
        return -1;
    }
    *host = s->host;
    *port = s->port;
    return 0;
}

/* Only the address in use can go stale: a connection to an old primary failing
 * after the switch says nothing about the new one. */
static void master_stale(void *ud, const char *host, int port) {
    redis_sentinel_t *s = ud;
    if (s->closing) return;
    if (s->known && !strcmp(s->host, host) && s->port == port) s->known = false;
    if (!s->known) ask(s);
}

redis_conn_resolver_t redis_sentinel_resolver(redis_sentinel_t *s) {
    return (redis_conn_resolver_t){.resolve = master_resolve, .stale = master_stale, .ud = s};
}

/* The question ----------------------------------------------------------------- */

static void on_answer(redis_req_t *req, redisReply *reply) {
    redis_sentinel_t *s = (redis_sentinel_t *)((char *)req - offsetof(redis_sentinel_t, ask_req));
    s->asking = false;
    if (!reply || s->closing) return; /* lost: asked again once reconnected (want) */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_STRING &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        int port = atoi(reply->element[1]->str);
        if (port > 0 && port <= 65535 && reply->element[0]->len > 0 &&
            reply->element[0]->len < sizeof s->host) {
            set_master(s, reply->element[0]->str, port, "sentinel");
            return;
        }
    }
    /* nil: this sentinel does not monitor the master (yet); an error: it refuses.
     * Either way the next sentinel may know: the failure moves the connection on. */
    char why[300];
    if (reply->type == REDIS_REPLY_ERROR)
        snprintf(why, sizeof why, "sentinel refused get-master-addr-by-name: %s", reply->str);
    else
        snprintf(why, sizeof why, "sentinel does not know master \"%s\"", s->master_name);
    redis_conn_fail(s->ask_conn, why);
}

static void ask(redis_sentinel_t *s) {
    if (s->closing) return;
    s->want = true;
    if (s->asking) return;
    if (!redis_conn_ready(s->ask_conn)) {
        redis_conn_retry_soon(s->ask_conn);
        return;
    }
    s->ask_req.fn = on_answer;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", s->master_name};
    size_t lens[] = {8, 23, strlen(s->master_name)};
    if (redis_conn_send(s->ask_conn, &s->ask_req, 3, argv, lens) == 0) s->asking = true;
}

/* Connection hooks --------------------------------------------------------------- */

static void on_ping(redis_req_t *req, redisReply *reply) {
    redis_conn_t *c = req->conn;
    free(req);
    if (reply && reply->type == REDIS_REPLY_STATUS) redis_conn_set_ready(c);
    else if (reply) redis_conn_fail(c, "sentinel did not answer PING");
}

/* AUTH (when set) is queued already; its refusal fails the connection first. */
static void ask_on_connect(redis_conn_t *c, void *ud) {
    (void)ud;
    redis_req_t *req = mem_calloc(1, sizeof *req);
    req->fn = on_ping;
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    if (redis_conn_send(c, req, 1, argv, lens)) free(req);
}

static void ask_on_ready(redis_conn_t *c, void *ud) {
    (void)c;
    redis_sentinel_t *s = ud;
    if (s->want) ask(s);
}

static void sub_on_connect(redis_conn_t *c, void *ud) {
    redis_sentinel_t *s = ud;
    s->next_probe_ms = uv_now(s->loop) + SUB_PROBE_MS;
    if (redis_conn_subscribe(c, SWITCH_CHANNEL)) redis_conn_fail(c, "cannot send SUBSCRIBE");
}

/* Subscribed: a switch may have happened while we were not; ask. */
static void sub_on_ready(redis_conn_t *c, void *ud) {
    (void)c;
    ask(ud);
}

static void sub_on_tick(redis_conn_t *c, void *ud, uint64_t now) {
    redis_sentinel_t *s = ud;
    if (s->closing || !redis_conn_ready(c)) return;
    uint64_t sent = redis_conn_subscribe_sent_ms(c);
    if (sent) {
        if (now - sent >= s->timeout_ms) redis_conn_fail(c, "no subscription confirmation");
        return;
    }
    if (now < s->next_probe_ms) return;
    s->next_probe_ms = now + SUB_PROBE_MS;
    redis_conn_subscribe(c, SWITCH_CHANNEL);
}

int redis_sentinel_parse_switch(const char *data, size_t len, const char *master_name,
                                char *host, size_t hostlen, int *port) {
    if (len > 600) return -1;
    char buf[601], *save = NULL, *f[6];
    memcpy(buf, data, len);
    buf[len] = '\0';
    if (memchr(data, '\0', len)) return -1;
    int n = 0;
    for (char *t = strtok_r(buf, " ", &save); t && n < 6; t = strtok_r(NULL, " ", &save))
        f[n++] = t;
    if (n != 5 || strcmp(f[0], master_name)) return -1; /* malformed, or another master's */
    size_t pl = strlen(f[4]);
    for (size_t i = 0; i < pl; i++)
        if (f[4][i] < '0' || f[4][i] > '9') return -1;
    int p = pl >= 1 && pl <= 5 ? atoi(f[4]) : 0;
    if (p <= 0 || p > 65535 || strlen(f[3]) >= hostlen) return -1;
    memcpy(host, f[3], strlen(f[3]) + 1);
    *port = p;
    return 0;
}

static void sub_on_message(void *ud, const char *data, size_t len) {
    redis_sentinel_t *s = ud;
    if (s->closing) return;
    char host[sizeof s->host];
    int port;
    if (redis_sentinel_parse_switch(data, len, s->master_name, host, sizeof host, &port)) return;
    log_info("sentinel: +switch-master", LOG_S("master", s->master_name), LOG_S("to", host),
             LOG_I("to_port", port));
    set_master(s, host, port, "+switch-master");
}

static void on_conn_closed(void *ud) {
    redis_sentinel_t *s = ud;
    if (--s->open) return;
    void (*done)(void *) = s->done;
    void *done_ud = s->done_ud;
    free(s->master_name);
    free(s->password);
    free(s);
    if (done) done(done_ud);
}

/* Lifecycle ------------------------------------------------------------------------ */

redis_sentinel_t *redis_sentinel_new(uv_loop_t *loop, const redis_sentinel_config_t *cfg) {
    redis_sentinel_t *s = mem_calloc(1, sizeof *s);
    char why[200];
    int n = config_parse_sentinels(cfg->sentinels, s->list, CONFIG_SENTINELS_MAX, why, sizeof why);
    if (n < 1) {
        free(s);
        return NULL;
    }
    s->n = (size_t)n;
    s->loop = loop;
    s->master_name = mem_strdup(cfg->master_name && cfg->master_name[0] ? cfg->master_name
                                                                        : "mymaster");
    s->password = cfg->password && cfg->password[0] ? mem_strdup(cfg->password) : NULL;
    s->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 2000;
    s->ask_rot = (rotation_t){s, 0};
    s->sub_rot = (rotation_t){s, 0};
    int w = snprintf(s->description, sizeof s->description, "redis sentinel %s via ",
                     s->master_name);
    for (size_t i = 0; i < s->n && w > 0 && (size_t)w < sizeof s->description; i++)
        w += snprintf(s->description + w, sizeof s->description - (size_t)w, "%s%s:%d",
                      i ? "," : "", s->list[i].host, s->list[i].port);
    redis_conn_config_t cc = {
        .name = "sentinel",
        .host = s->list[0].host,
        .port = s->list[0].port,
        .password = s->password,
        .timeout_ms = s->timeout_ms,
        .resolver = {.resolve = rot_resolve, .stale = rot_stale, .ud = &s->ask_rot},
    };
    redis_conn_hooks_t ah = {.on_connect = ask_on_connect, .on_ready = ask_on_ready,
                             .on_closed = on_conn_closed, .ud = s};
    s->want = true; /* the first question, as soon as connected */
    s->open = 2;
    s->ask_conn = redis_conn_new(loop, &cc, &ah);
    cc.name = "sentinel pub/sub";
    cc.resolver.ud = &s->sub_rot;
    redis_conn_hooks_t sh = {.on_connect = sub_on_connect, .on_ready = sub_on_ready,
                             .on_tick = sub_on_tick, .on_message = sub_on_message,
                             .on_closed = on_conn_closed, .ud = s};
    s->sub_conn = redis_conn_new(loop, &cc, &sh);
    return s;
}

void redis_sentinel_watch(redis_sentinel_t *s, redis_conn_t *c) {
    if (s->nwatched < MAX_WATCHED) s->watched[s->nwatched++] = c;
}

const char *redis_sentinel_describe(const redis_sentinel_t *s) { return s->description; }

void redis_sentinel_close(redis_sentinel_t *s, void (*done)(void *ud), void *ud) {
    if (s->closing) return;
    s->closing = true;
    s->nwatched = 0;
    s->done = done;
    s->done_ud = ud;
    redis_conn_close(s->ask_conn);
    redis_conn_close(s->sub_conn);
}
