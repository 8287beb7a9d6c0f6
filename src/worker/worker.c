/* The worker role: authenticates GET /connect (claim or JWT) before the upgrade,
 * registers the connection (locally first, then in the store) before its 101 is
 * sent, routes the store's messages to local connections through its own index,
 * and runs one sweep timer for pings, dead clients and closing deadlines.
 * Socket-level work for one connection lives in ws_conn.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/mem.h"
#include "common/rand.h"
#include "protocol/jwt.h"
#include "protocol/validate.h"
#include "protocol/ws_handshake.h"
#include "worker/worker_int.h"

#define SWEEP_MS 1000
#define CLOSING_SWEEP_MS 100 /* during worker_close: enforce the short deadlines promptly */
#define QPOOL_MAX 1024       /* queue nodes kept for reuse: 48 KiB at most */
#define TRIM_BYTES (1u << 20) /* queue memory released before the sweep trims the heap */
#define BIG_MESSAGE_BYTES (64u << 10) /* a delivery this big counts as released memory */

#define CONN_OF(node) ((worker_conn_t *)((char *)(node) - offsetof(worker_conn_t, ix)))

typedef struct claim_req {
    worker_t *w;
    http_conn_t *hc;
    char accept[WS_ACCEPT_LEN + 1];
    ws_deflate_params_t deflate;
} claim_req_t;

uint32_t worker_now(const worker_t *w) {
    return (uint32_t)((uv_now(w->loop) - w->t0_ms) / (1000 / WORKER_TICKS_PER_S));
}

size_t worker_connection_count(const worker_t *w) { return w->open; }

/* Takes a place for a connect; false at the limit. A shared counter is taken
 * atomically so workers on several threads cannot overshoot together. */
static bool slot_take(worker_t *w, size_t limit) {
    if (!w->shared_slots) return !limit || w->live + w->connecting < limit;
    size_t held = atomic_fetch_add(w->shared_slots, 1);
    if (!limit || held < limit) return true;
    atomic_fetch_sub(w->shared_slots, 1);
    return false;
}

void worker_slot_release(worker_t *w) {
    if (w->shared_slots) atomic_fetch_sub(w->shared_slots, 1);
}

void worker_get_stats(const worker_t *w, worker_stats_t *out) { *out = w->stats; }

/* Responses ---------------------------------------------------------------- */

static void json_escape(buf_t *b, const char *s) {
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            buf_printf(b, "\\%c", ch);
        else if (ch < 0x20)
            buf_printf(b, "\\u%04x", ch);
        else
            buf_append(b, s, 1);
    }
}

/* An error response with extra headers (http_conn_respond_error takes none). */
static void respond_error_hdr(http_conn_t *hc, int status, const char *headers, const char *code,
                              const char *message) {
    buf_t b = BUF_INIT;
    buf_append_str(&b, "{\"success\":false,\"error\":\"");
    json_escape(&b, message);
    buf_append_str(&b, "\",\"errorCode\":\"");
    json_escape(&b, code);
    buf_append_str(&b, "\"}");
    http_conn_respond(hc, status, headers, b.data, b.len);
    buf_free(&b);
}

static void respond_handshake_error(http_conn_t *hc, ws_handshake_status_t st, const char *why) {
    if (!why) why = "Invalid WebSocket handshake";
    switch (st) {
    case WS_HANDSHAKE_BAD_METHOD:
        respond_error_hdr(hc, 405, "Allow: GET\r\n", "METHOD_NOT_ALLOWED", why);
        break;
    case WS_HANDSHAKE_BAD_VERSION:
        respond_error_hdr(hc, 426, "Sec-WebSocket-Version: 13\r\n", "INVALID_HANDSHAKE", why);
        break;
    default:
        http_conn_respond_error(hc, 400, "INVALID_HANDSHAKE", why);
        break;
    }
}

/* Connection setup ----------------------------------------------------------- */

static void adopted_closed(uv_handle_t *h) { free(h); }

static void on_registered(void *ud, store_status_t status) {
    worker_conn_t *c = ud;
    worker_t *w = c->w;
    w->pending_ops--;
    if (status == STORE_OK) c->registered = true;
    if (!c->hc) {
        /* Adopted from another thread (adopt_one, which holds its socket during
         * the registration): its 101 is queued, nobody waits for an HTTP answer. */
        uv_tcp_t *tcp = w->adopt_tcp;
        w->adopt_tcp = NULL;
        if (!tcp || status != STORE_OK || w->closing) {
            worker_conn_unroute(c);
            worker_conn_free(c);
            if (tcp) uv_close((uv_handle_t *)tcp, adopted_closed);
            return;
        }
        log_debug("connect", LOG_S("id", c->ix.id), LOG_S("user", c->ix.user),
                  LOG_S("session", c->ix.session), LOG_S("peer", w->adopt_peer),
                  LOG_S("moved", "from another thread"));
        worker_conn_open(c, tcp, (char *)w->adopt_rest, w->adopt_rest_len);
        return;
    }
    if (status != STORE_OK || w->closing) {
        if (status != STORE_OK)
            log_warn("registering a connection failed (store)", LOG_S("id", c->ix.id),
                     LOG_S("request_id", http_conn_request_id(c->hc)));
        worker_conn_unroute(c);
        http_conn_respond_error(c->hc, 503, "ERROR_SAVING_CONNECTION",
                                w->closing ? "Worker is shutting down" : "Error saving connection");
        worker_conn_free(c);
        return;
    }
    log_debug("connect", LOG_S("id", c->ix.id), LOG_S("user", c->ix.user),
              LOG_S("session", c->ix.session), LOG_S("peer", http_conn_peer(c->hc)));
    char *rest = NULL;
    size_t rest_len = 0;
    uv_tcp_t *tcp = http_conn_detach(c->hc, &rest, &rest_len);
    if (!tcp) { /* the client left while we were registering it */
        log_debug("disconnect: gone before the upgrade", LOG_S("id", c->ix.id),
                  LOG_S("user", c->ix.user));
        worker_conn_unroute(c);
        worker_conn_free(c);
        return;
    }
    worker_conn_open(c, tcp, rest, rest_len);
    free(rest);
}

/* A registration records the node's channels as they are when it is sent. Until
 * the store's REGISTERED marker for it comes back through the message stream,
 * every (un)subscription message was run by the store before that registration
 * (the marker is ordered after them): the registration overwrote its effect on
 * this connection (or the subscription never saw it: its claim was taken and it
 * was not registered yet), so the index must not apply it either. That keeps a
 * connection's channels in the store and in the index equal whatever the
 * interleaving (docs/architecture.md, "Channels"). */
static uint64_t registration_begin(worker_index_node_t *n) {
    n->reg_pending = true;
    return ++n->reg_gen;
}

static void registration_seen(worker_t *w, const worker_msg_t *msg) {
    if (!msg->target.id || !msg->body_len || msg->body_len > 20) return;
    worker_index_node_t *n = worker_index_find_id(&w->index, msg->target.id);
    if (!n) return; /* closed meanwhile */
    uint64_t gen = 0;
    for (size_t i = 0; i < msg->body_len; i++) {
        unsigned char d = msg->body[i];
        if (d < '0' || d > '9') return;
        gen = gen * 10 + (d - '0');
    }
    /* An older registration's marker: the latest one is still to come. */
    if (gen == n->reg_gen) n->reg_pending = false;
}

/* Creates the connection, indexed and PENDING with its 101 queued, then registers
 * it. Everything is in place before the store call: its callback, and messages for
 * the new id, may come before store_conn_register returns. hc is the request, or
 * NULL for a socket adopted from another thread (w->adopt_tcp, on this loop). */
static void conn_create(worker_t *w, http_conn_t *hc, const char *reqid,
                        const char *accept, const ws_deflate_params_t *zp, const char *user,
                        const char *session, const char *const *channels,
                        size_t channel_count) {
    size_t ul = strlen(user);
    size_t sl = session ? strlen(session) : 0;
    worker_conn_t *c = mem_calloc(1, sizeof *c + RAND_UUID_LEN + 1 + ul + 1 + sl + 1);
    char *p = c->strings;
    rand_uuid4(p);
    c->ix.id = p;
    p += RAND_UUID_LEN + 1;
    memcpy(p, user, ul + 1);
    c->ix.user = p;
    p += ul + 1;
    if (sl) {
        memcpy(p, session, sl + 1);
        c->ix.session = p;
    }
    c->w = w;
    c->hc = hc;
    c->state = CONN_PENDING;
    char ext[WS_DEFLATE_RESPONSE_MAX + 32] = "";
    if (zp->enabled) {
        c->zbits = zp->server_bits; /* its parsers allow RSV1 (worker_parser_take) */
        char v[WS_DEFLATE_RESPONSE_MAX];
        ws_deflate_response(zp, v);
        snprintf(ext, sizeof ext, "Sec-WebSocket-Extensions: %s\r\n", v);
    }

    char resp[224 + sizeof ext];
    int n = snprintf(resp, sizeof resp,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "X-Request-ID: %s\r\n%s\r\n",
                     accept, reqid, ext);
    worker_frame_t *f = worker_frame_raw(resp, (size_t)n);
    worker_queue_push(&c->q, &w->pool, f, 0);
    worker_frame_unref(f);

    c->next = w->conns;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    w->live++;
    worker_index_add(&w->index, &c->ix);
    c->indexed = true;
    /* Its order (docs/api.md): the claim's or JWT's channels, then the defaults
     * not already listed (join skips a member's repeats). */
    for (size_t i = 0; i < channel_count; i++)
        worker_index_join(&w->index, &c->ix, channels[i], strlen(channels[i]));
    for (size_t i = 0; i < w->default_channel_count; i++)
        worker_index_join(&w->index, &c->ix, w->default_channels[i],
                          strlen(w->default_channels[i]));

    w->pending_ops++;
    const char **chans;
    store_conn_t sc = worker_conn_record(c, (int64_t)time(NULL), &chans);
    sc.generation = registration_begin(&c->ix);
    store_conn_register(w->store, &sc, on_registered, c);
    free(chans);
}

/* A connection handed to its user's thread: everything conn_create needs, in one
 * allocation (the strings follow). */
typedef struct adopt {
    mpsc_node_t node; /* first */
    int fd;
    char accept[WS_ACCEPT_LEN + 1];
    ws_deflate_params_t deflate;
    const char *reqid, *peer, *user, *session;
    const char **channels;
    size_t channel_count;
    char *rest;
    size_t rest_len;
} adopt_t;

static char *put_str(char **p, const char *str) {
    size_t n = strlen(str) + 1;
    char *out = memcpy(*p, str, n);
    *p += n;
    return out;
}

/* Moves the request's socket to `to`'s loop (http_conn_take_fd), where adopt_one
 * goes on as conn_begin would. False when it could not (no descriptor): the
 * connection then stays here. */
static bool hand_over(worker_t *w, worker_t *to, http_conn_t *hc, const char *accept,
                      const ws_deflate_params_t *zp, const char *user, const char *session,
                      const char *const *channels, size_t channel_count) {
    const char *reqid = http_conn_request_id(hc), *peer = http_conn_peer(hc);
    size_t strs = strlen(reqid) + strlen(peer) + strlen(user) + (session ? strlen(session) : 0) + 4;
    for (size_t i = 0; i < channel_count; i++) strs += strlen(channels[i]) + 1;
    adopt_t *a = mem_calloc(1, sizeof *a + channel_count * sizeof(char *) + strs);
    a->channels = (const char **)(a + 1);
    char *p = (char *)(a->channels + channel_count);
    a->reqid = put_str(&p, reqid);
    a->peer = put_str(&p, peer);
    a->user = put_str(&p, user);
    a->session = session ? put_str(&p, session) : NULL;
    for (size_t i = 0; i < channel_count; i++) a->channels[i] = put_str(&p, channels[i]);
    a->channel_count = channel_count;
    memcpy(a->accept, accept, sizeof a->accept);
    a->deflate = *zp;
    a->fd = http_conn_take_fd(hc, &a->rest, &a->rest_len);
    if (a->fd == -1) {
        free(a);
        return false;
    }
    if (a->fd == -2) { /* the client left meanwhile */
        worker_slot_release(w);
        free(a);
        return true;
    }
    /* The max_connections slot goes with it (a counter shared by the threads). */
    mpsc_push(&to->adopt, &a->node);
    uv_async_send(&to->adopt_wake);
    return true;
}

static void adopt_free(worker_t *w, adopt_t *a, bool close_fd) {
    if (close_fd) {
        close(a->fd);
        worker_slot_release(w);
    }
    free(a->rest);
    free(a);
}

static void adopt_one(worker_t *w, adopt_t *a) {
    if (w->closing || w->draining) { /* shutting down: like a refused connect */
        adopt_free(w, a, true);
        return;
    }
    uv_tcp_t *tcp = mem_alloc(sizeof *tcp);
    uv_tcp_init(w->loop, tcp);
    if (uv_tcp_open(tcp, a->fd) < 0) {
        uv_close((uv_handle_t *)tcp, adopted_closed); /* not ours: the fd is closed below */
        adopt_free(w, a, true);
        return;
    }
    /* The registration is synchronous in the memory store, the only store whose
     * workers run on several threads: on_registered takes the socket and the
     * rest bytes from here. (Were it not, on_registered would find no socket and
     * drop the connection, and the socket would be closed below.) */
    w->adopt_tcp = tcp;
    w->adopt_peer = a->peer;
    w->adopt_rest = a->rest;
    w->adopt_rest_len = a->rest_len;
    conn_create(w, NULL, a->reqid, a->accept, &a->deflate, a->user, a->session, a->channels,
                a->channel_count);
    if (w->adopt_tcp) uv_close((uv_handle_t *)w->adopt_tcp, adopted_closed);
    w->adopt_tcp = NULL;
    w->adopt_peer = NULL;
    w->adopt_rest = NULL;
    w->adopt_rest_len = 0;
    adopt_free(w, a, false);
}

static void on_adopt(uv_async_t *h) {
    worker_t *w = h->data;
    mpsc_node_t *n;
    while ((n = mpsc_pop(&w->adopt))) adopt_one(w, (adopt_t *)n);
}

static void conn_begin(worker_t *w, http_conn_t *hc, const char *accept,
                       const ws_deflate_params_t *zp, const char *user, const char *session,
                       const char *const *channels, size_t channel_count) {
    if (w->peers) {
        unsigned owner = (unsigned)(hmap_hash(user, strlen(user)) % w->n_peers);
        if (owner != w->self && hand_over(w, w->peers[owner], hc, accept, zp, user, session,
                                          channels, channel_count))
            return;
    }
    conn_create(w, hc, http_conn_request_id(hc), accept, zp, user, session, channels,
                channel_count);
}

void worker_set_peers(worker_t *w, worker_t *const *peers, unsigned n, unsigned self) {
    w->peers = n > 1 ? peers : NULL;
    w->n_peers = n;
    w->self = self;
}

static void on_claim(void *ud, store_status_t status, const store_claim_t *claim) {
    claim_req_t *r = ud;
    worker_t *w = r->w;
    w->pending_ops--;
    w->connecting--; /* the slot it reserved becomes the connection, or nothing */
    bool begun = false;
    if (w->closing) {
        http_conn_respond_error(r->hc, 503, "ERROR_GETTING_CLAIM", "Worker is shutting down");
    } else if (status == STORE_OK && claim) {
        if (claim->expiration <= (int64_t)time(NULL))
            http_conn_respond_error(r->hc, 401, "EXPIRED_CLAIM", "Expired claim");
        else
            begun = true;
    } else if (status == STORE_NOT_FOUND) {
        http_conn_respond_error(r->hc, 401, "MISSING_CLAIM", "Missing claim");
    } else if (status == STORE_INVALID) {
        http_conn_respond_error(r->hc, 401, "INVALID_EXPIRATION", "The claim's expiration is invalid");
    } else {
        http_conn_respond_error(r->hc, 503, "ERROR_GETTING_CLAIM", "Error getting claim");
    }
    if (begun)
        conn_begin(w, r->hc, r->accept, &r->deflate, claim->user, claim->session,
                   claim->channels, claim->channel_count);
    else worker_slot_release(w);
    free(r);
    worker_maybe_finish(w);
}

/* First non-empty value; empty is the same as absent (docs/api.md). */
static const char *query_value(const http_request_t *req, const char *key) {
    const http_kv_t *kv = http_request_param(req, key);
    return kv ? kv->value : NULL;
}

http_verdict_t worker_precheck(worker_t *w, http_conn_t *hc, const http_request_t *req) {
    (void)w;
    if (!req->path || strcmp(req->path, "/connect") != 0) return HTTP_NOT_MINE;
    if (req->method != HTTP_METHOD_GET) {
        respond_error_hdr(hc, 405, "Allow: GET\r\n", "METHOD_NOT_ALLOWED", "method not allowed");
        return HTTP_ANSWERED;
    }
    /* A handshake has no body; one would be buffered (up to max_body_bytes) before
     * authentication. Refused from the headers, so it is never read. */
    if (req->has_body) {
        http_conn_respond_error(hc, 400, "INVALID_HANDSHAKE", "a WebSocket handshake has no body");
        return HTTP_ANSWERED;
    }
    return HTTP_ACCEPTED;
}

bool worker_handle(worker_t *w, http_conn_t *hc, const http_request_t *req) {
    if (!req->path || strcmp(req->path, "/connect") != 0) return false;
    /* Routing comes before authentication (docs/api.md), as on the API's paths. */
    if (req->method != HTTP_METHOD_GET) {
        respond_error_hdr(hc, 405, "Allow: GET\r\n", "METHOD_NOT_ALLOWED", "method not allowed");
        return true;
    }
    if (w->closing || w->draining) {
        http_conn_respond_error(hc, 503, "ERROR_SAVING_CONNECTION", "Worker is shutting down");
        return true;
    }
    /* Every socket the worker keeps (opening, open or closing) and every claim being
     * taken counts, so concurrent connects cannot overshoot; refused before the
     * claim is touched, so the client can retry with it. */
    if (!slot_take(w, http_conn_max_connections(hc))) {
        w->stats.refused++;
        respond_error_hdr(hc, 503, "Retry-After: 1\r\n", "TOO_MANY_CONNECTIONS",
                          "Too many connections on this worker");
        return true;
    }
    const char *claim = query_value(req, "claim");
    const char *jwt = query_value(req, "jwt");
    if (!claim && !jwt) {
        worker_slot_release(w);
        http_conn_respond_error(hc, 401, "MISSING_AUTHENTICATION", "Missing authentication");
        return true;
    }
    jwt_claims_t jc = {0};
    if (!claim) {
        const char *why = "JWT authentication is not enabled";
        if (!w->secret || jwt_verify(jwt, strlen(jwt), w->secret, w->secret_len,
                                     (int64_t)time(NULL), &jc, &why) != 0) {
            worker_slot_release(w);
            http_conn_respond_error(hc, 401, "INVALID_JWT", why ? why : "Invalid JWT");
            return true;
        }
    }
    char accept[WS_ACCEPT_LEN + 1];
    const char *why = NULL;
    ws_handshake_status_t st = ws_handshake_check(req, accept, &why);
    if (st != WS_HANDSHAKE_OK) {
        if (!claim) jwt_claims_free(&jc);
        worker_slot_release(w);
        respond_handshake_error(hc, st, why);
        return true;
    }
    /* permessage-deflate: accepted when offered unless compression is off; an offer
     * never fails the handshake (ws_deflate_parse_offer). */
    ws_deflate_params_t zp = {0};
    if (w->compression) ws_deflate_negotiate(req, &zp);
    /* No claim can have an id that fails the identifier rule: refused like an
     * unknown claim, without a store round trip. */
    if (claim && !ident_valid(claim, strlen(claim))) {
        worker_slot_release(w);
        http_conn_respond_error(hc, 401, "MISSING_CLAIM", "Missing claim");
        return true;
    }
    if (claim) {
        claim_req_t *r = mem_calloc(1, sizeof *r);
        r->w = w;
        r->hc = hc;
        memcpy(r->accept, accept, sizeof accept);
        r->deflate = zp;
        w->pending_ops++;
        w->connecting++;
        store_claim_take(w->store, claim, on_claim, r);
    } else {
        conn_begin(w, hc, accept, &zp, jc.sub, jc.sid, (const char *const *)jc.channels,
                   jc.channel_count);
        jwt_claims_free(&jc);
    }
    return true;
}

/* Messages from the store --------------------------------------------------- */

/* One delivery: the message is encoded at most once per form and the same frame is
 * written to (or queued for) every target that takes that form: the plain frame for
 * connections without compression (and for every target when the message is under
 * compression_min_bytes), one compressed frame per server window in use for the
 * others. Each is made lazily, at the first target that needs it, and this context
 * drops its reference at the end of the delivery: from then on the queues that
 * still hold the frame keep it alive (each charged its whole allocation, frame.h).
 * A message that does not shrink is sent plain to compressing targets too. */
typedef struct deliver_ctx {
    worker_t *w;
    const worker_msg_t *msg;
    worker_frame_t *frame; /* plain, built at the first match, shared by all */
    /* compressed, by window bits - WS_DEFLATE_MIN_BITS; z_tried: attempted (NULL
     * then means "did not shrink": use the plain frame) */
    worker_frame_t *z[WS_DEFLATE_MAX_BITS - WS_DEFLATE_MIN_BITS + 1];
    uint8_t z_tried[WS_DEFLATE_MAX_BITS - WS_DEFLATE_MIN_BITS + 1];
} deliver_ctx_t;

static int msg_opcode(const worker_msg_t *m) {
    return m->kind == WORKER_MSG_BINARY ? WS_OP_BINARY : WS_OP_TEXT;
}

static worker_frame_t *plain_frame(deliver_ctx_t *d) {
    if (!d->frame) d->frame = worker_frame_new(msg_opcode(d->msg), d->msg->body, d->msg->body_len);
    return d->frame;
}

/* The frame for a connection that compresses with a window of 2^bits. */
static worker_frame_t *deflated_frame(deliver_ctx_t *d, unsigned bits) {
    worker_t *w = d->w;
    unsigned i = bits - WS_DEFLATE_MIN_BITS;
    if (!d->z_tried[i]) {
        d->z_tried[i] = 1;
        if (!w->deflaters[i]) w->deflaters[i] = ws_deflater_new(bits);
        if (w->deflaters[i]) {
            d->z[i] = worker_frame_deflate(w->deflaters[i], msg_opcode(d->msg), d->msg->body,
                                           d->msg->body_len);
            if (d->z[i]) METRICS_INC(messages_compressed);
        }
    }
    return d->z[i] ? d->z[i] : plain_frame(d);
}

static void deliver_one(void *ud, worker_index_node_t *n) {
    deliver_ctx_t *d = ud;
    worker_conn_t *c = CONN_OF(n);
    worker_frame_t *f = c->zbits && d->msg->body_len >= d->w->compression_min
                            ? deflated_frame(d, c->zbits)
                            : plain_frame(d);
    d->w->stats.deliveries++;
    if (worker_conn_send(c, f)) {
        METRICS_INC(messages_written);
        METRICS_ADD(message_bytes_written, d->msg->body_len);
    } else {
        METRICS_INC(dropped[METRICS_DROP_CONNECTION_CLOSING]);
    }
}

static void disconnect_one(void *ud, worker_index_node_t *n) {
    (void)ud;
    worker_conn_close_for(CONN_OF(n), METRICS_CLOSE_DISCONNECT_API, WS_CLOSE_NORMAL, "");
}

/* The store recorded the change already: only the local index moves. Not for a
 * connection whose registration marker is still to come (registration_begin). */
static void join_one(void *ud, worker_index_node_t *n) {
    const worker_msg_t *msg = ud;
    if (n->reg_pending) return;
    worker_index_join(&CONN_OF(n)->w->index, n, (const char *)msg->body, msg->body_len);
}

static void leave_one(void *ud, worker_index_node_t *n) {
    const worker_msg_t *msg = ud;
    if (n->reg_pending) return;
    worker_index_leave(&CONN_OF(n)->w->index, n, (const char *)msg->body, msg->body_len);
}

/* A subscription by channel (the store did no work per member: store.h): applied
 * to every local member of the source channel, including one whose registration
 * marker is still to come, since this worker records the change itself, on the
 * store's ordered command path, after that registration (which wrote the channels
 * the node had when it was sent). The ids of the nodes it changed are collected
 * for store_conns_subscribed. */
typedef struct by_channel_ctx {
    worker_t *w;
    const char *name;
    size_t len;
    bool join;
    const char **ids, **before; /* before: for a join (store_conns_subscribed) */
    size_t n, cap;
} by_channel_ctx_t;

static void by_channel_one(void *ud, worker_index_node_t *n) {
    by_channel_ctx_t *x = ud;
    bool changed = x->join ? worker_index_join(&x->w->index, n, x->name, x->len)
                           : worker_index_leave(&x->w->index, n, x->name, x->len);
    if (!changed) return;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 64;
        x->ids = mem_realloc(x->ids, x->cap * sizeof *x->ids);
        x->before = mem_realloc(x->before, x->cap * sizeof *x->before);
    }
    /* Strings of the index and the node: valid until this message is done. */
    const char *prev = "";
    if (x->join) /* joined last: the channel before it is the one before the tail */
        for (worker_membership_t *m = n->chans; m && m->node_next; m = m->node_next)
            prev = m->channel->name;
    x->before[x->n] = prev;
    x->ids[x->n++] = n->id;
}

static void subscribe_by_channel(worker_t *w, const worker_msg_t *msg) {
    char name[CHANNEL_NAME_MAX + 1];
    memcpy(name, msg->body, msg->body_len); /* checked by the store: a channel name */
    name[msg->body_len] = '\0';
    by_channel_ctx_t x = {w, name, msg->body_len, msg->kind == WORKER_MSG_SUBSCRIBE,
                          NULL, NULL, 0, 0};
    worker_index_match(&w->index, &msg->target, by_channel_one, &x);
    store_conns_subscribed(w->store, name, x.join, x.ids, x.join ? x.before : NULL, x.n);
    free(x.ids);
    free(x.before);
}

static void on_message(void *ud, const worker_msg_t *msg) {
    worker_t *w = ud;
    switch (msg->kind) {
    case WORKER_MSG_TEXT:
    case WORKER_MSG_BINARY: {
        deliver_ctx_t d = {.w = w, .msg = msg};
        w->stats.messages++;
        worker_index_match(&w->index, &msg->target, deliver_one, &d);
        worker_frame_unref(d.frame);
        for (size_t i = 0; i < sizeof d.z / sizeof d.z[0]; i++) worker_frame_unref(d.z[i]);
        /* Its buffers (store decode, frame) are free now or once written: the sweep
         * gives them back (release_memory). */
        if (msg->body_len >= BIG_MESSAGE_BYTES) w->released += msg->body_len;
        break;
    }
    case WORKER_MSG_DISCONNECT:
        worker_index_match(&w->index, &msg->target, disconnect_one, NULL);
        break;
    case WORKER_MSG_SUBSCRIBE:
    case WORKER_MSG_UNSUBSCRIBE:
        if (!msg->body_len || msg->body_len > CHANNEL_NAME_MAX) break;
        if ((!msg->target.id || !*msg->target.id) && msg->target.channel &&
            *msg->target.channel) {
            subscribe_by_channel(w, msg);
            break;
        }
        worker_index_match(&w->index, &msg->target,
                           msg->kind == WORKER_MSG_SUBSCRIBE ? join_one : leave_one,
                           (void *)msg);
        break;
    case WORKER_MSG_REGISTERED:
        registration_seen(w, msg);
        break;
    }
}

static void on_resync_registered(void *ud, store_status_t status) {
    worker_t *w = ud;
    w->pending_ops--;
    if (status != STORE_OK) log_warn("re-registering a connection failed (store)");
    worker_maybe_finish(w);
}

/* The store lost our registrations: give it every live connection again. */
static void on_resync(void *ud) {
    worker_t *w = ud;
    int64_t wall = (int64_t)time(NULL);
    size_t n = 0;
    for (worker_conn_t *c = w->conns; c; c = c->next) {
        if (!c->indexed) continue;
        /* A PENDING connection has no lastPing yet: it registers as of now. */
        int64_t last = c->state == CONN_OPEN ? (int64_t)c->last_client_ping : wall;
        c->touch_due = false;
        const char **chans;
        store_conn_t sc = worker_conn_record(c, last, &chans);
        sc.generation = registration_begin(&c->ix);
        c->registered = true; /* undo it on close even if it was PENDING */
        w->pending_ops++;
        n++;
        store_conn_register(w->store, &sc, on_resync_registered, w);
        free(chans);
    }
    log_info("store resync: registering connections again", LOG_U("connections", n));
}

/* Sweep ------------------------------------------------------------------------ */

/* Queued frames and nodes are many small allocations, freed in an order malloc
 * cannot coalesce by itself (small chunks wait in its fast lists, and the nodes kept
 * for reuse are scattered over the pages the backlog used), so the memory of a big
 * backlog stays resident after it was written or dropped (a slow client closed with
 * 1008, clients gone with full queues). After at least TRIM_BYTES of queue memory
 * were released: the node free list is emptied (it refills on demand, and only
 * backlogs use it), and malloc_trim(0) consolidates every arena and gives the free
 * pages inside them back to the kernel, with the top of this thread's heap, where
 * its frames and nodes were allocated (mem_release). Big messages count too (at
 * their delivery, on_message): in `dsock worker` their buffers stay in the heap
 * between messages (mem_configure_worker), so the next message reuses warm pages,
 * and go back here at most a second after the last one. At most once per sweep (a
 * second), and only after such releases: it walks the free lists, which costs far
 * less than what it returns, and never runs on the idle path. So a stream of big
 * messages faults its working set in once a second, not once per message. */
static void release_memory(worker_t *w) {
    w->released += mem_take_released(); /* the store's idle Redis reader buffer, say */
    if (w->released < TRIM_BYTES) return;
    w->released = 0;
    worker_qpool_free(&w->pool);
    mem_release();
}

static void on_sweep(uv_timer_t *t) {
    worker_t *w = t->data;
    uint32_t now = worker_now(w);
    uint32_t interval = w->ping_interval_s * WORKER_TICKS_PER_S;
    uint32_t timeout = w->ping_timeout_s * WORKER_TICKS_PER_S;
    worker_frame_t *ping = NULL;
    worker_conn_t *next;
    for (worker_conn_t *c = w->conns; c; c = next) {
        next = c->next;
        if (c->state == CONN_OPEN) {
            worker_conn_sweep_paused(c, now);
            if (timeout && now - c->last_rx >= timeout) {
                w->stats.dead_closes++;
                log_debug("client silent: closing", LOG_S("id", c->ix.id),
                          LOG_U("silent_s", w->ping_timeout_s));
                worker_conn_close_for(c, METRICS_CLOSE_PING_TIMEOUT, WS_CLOSE_GOING_AWAY,
                                      "ping timeout");
            } else {
                worker_conn_flush_touch(c, now);
                if (!w->closing && interval && now - c->last_ping_tx >= interval) {
                    if (!ping) ping = worker_frame_new(WS_OP_PING, NULL, 0);
                    c->last_ping_tx = now;
                    worker_conn_send(c, ping);
                }
            }
        } else if (c->state == CONN_CLOSING && (int32_t)(now - c->close_deadline) >= 0) {
            worker_conn_kill(c);
        }
    }
    worker_frame_unref(ping);
    release_memory(w);
}

/* Lifecycle ------------------------------------------------------------------- */

worker_t *worker_new(uv_loop_t *loop, store_t *store, const worker_config_t *cfg) {
    worker_t *w = mem_calloc(1, sizeof *w);
    w->loop = loop;
    w->store = store;
    w->id = mem_strdup(cfg->id ? cfg->id : "");
    if (cfg->jwt_secret && *cfg->jwt_secret) {
        w->secret_len = strlen(cfg->jwt_secret);
        w->secret = (uint8_t *)mem_strdup(cfg->jwt_secret);
    }
    w->ping_interval_s = cfg->ping_interval_s;
    w->ping_timeout_s = cfg->ping_timeout_s;
    w->max_message = cfg->max_message_bytes;
    w->max_queued = cfg->max_queued_bytes;
    w->compression = cfg->compression;
    w->compression_min = cfg->compression_min_bytes;
    w->shared_slots = cfg->shared_slots;
    w->t0_ms = uv_now(loop);
    if (cfg->default_channels &&
        channel_list_parse(cfg->default_channels, strlen(cfg->default_channels),
                           &w->default_channels, &w->default_channel_count) != IDENT_OK)
        log_error("default_channels: not a list of channel names; ignored");
    w->index = (worker_index_t)WORKER_INDEX_INIT;
    w->pool = (worker_qpool_t)WORKER_QPOOL_INIT(QPOOL_MAX);
    uv_timer_init(loop, &w->sweep);
    w->sweep.data = w;
    uv_timer_init(loop, &w->drain_timer);
    w->drain_timer.data = w;
    mpsc_init(&w->adopt);
    uv_async_init(loop, &w->adopt_wake, on_adopt);
    w->adopt_wake.data = w;
    w->timers_open = 3;
    uv_timer_start(&w->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    store_worker_handlers_t h = {on_message, on_resync, w};
    int r = store_worker_attach(store, w->id, &h);
    if (r < 0) log_error("attaching to the store failed", LOG_I("rc", r));
    return w;
}

static void on_timer_closed(uv_handle_t *h) {
    worker_t *w = h->data;
    if (--w->timers_open) return;
    /* Sockets handed over too late to be adopted (none after the servers closed). */
    mpsc_node_t *n;
    while ((n = mpsc_pop(&w->adopt))) adopt_free(w, (adopt_t *)n, true);
    void (*done)(void *) = w->done;
    void *ud = w->done_ud;
    worker_index_free(&w->index);
    channel_list_free(w->default_channels, w->default_channel_count);
    worker_qpool_free(&w->pool);
    while (w->req_free) {
        worker_req_t *r = w->req_free;
        w->req_free = r->next_free;
        free(r);
    }
    for (size_t i = 0; i < w->parser_free_count; i++) free(w->parser_free[i]);
    for (size_t i = 0; i < sizeof w->deflaters / sizeof w->deflaters[0]; i++)
        ws_deflater_free(w->deflaters[i]);
    free(w->secret);
    free(w->id);
    free(w);
    if (done) done(ud);
}

void worker_maybe_finish(worker_t *w) {
    if (!w->closing || w->timer_closing || w->live || w->pending_ops) return;
    w->timer_closing = true;
    uv_close((uv_handle_t *)&w->sweep, on_timer_closed);
    uv_close((uv_handle_t *)&w->drain_timer, on_timer_closed);
    uv_close((uv_handle_t *)&w->adopt_wake, on_timer_closed);
}

/* Drain ------------------------------------------------------------------------ */

static void drain_finish(worker_t *w) {
    uv_timer_stop(&w->drain_timer);
    void (*done)(void *) = w->drain_done;
    w->drain_done = NULL;
    if (done) done(w->drain_ud);
}

static void on_drain_tick(uv_timer_t *t) {
    worker_t *w = t->data;
    uint64_t elapsed = uv_now(w->loop) - w->drain_start_ms;
    if (elapsed >= w->drain_ms) {
        /* The window is over: whatever is open now (including connections that
         * were still registering when the cursor passed them) goes. */
        for (worker_conn_t *c = w->conns; c; c = c->next)
            if (c->state == CONN_OPEN)
                worker_conn_close_for(c, METRICS_CLOSE_SHUTDOWN, WS_CLOSE_GOING_AWAY, "going away");
        w->drain_next = NULL;
        drain_finish(w);
        return;
    }
    size_t due = (size_t)((uint64_t)w->drain_total * elapsed / w->drain_ms);
    while (w->drain_closed < due && w->drain_next) {
        worker_conn_t *c = w->drain_next;
        w->drain_next = c->next;
        if (c->state != CONN_OPEN) continue; /* gone meanwhile, or still registering */
        w->drain_closed++;
        worker_conn_close_for(c, METRICS_CLOSE_SHUTDOWN, WS_CLOSE_GOING_AWAY, "going away");
    }
    if (!w->open && !w->connecting) drain_finish(w);
}

void worker_drain(worker_t *w, unsigned drain_ms, void (*done)(void *ud), void *ud) {
    w->draining = true;
    w->drain_done = done;
    w->drain_ud = ud;
    w->drain_start_ms = uv_now(w->loop);
    w->drain_ms = drain_ms;
    w->drain_total = w->open;
    w->drain_closed = 0;
    w->drain_next = w->conns;
    log_info("draining clients", LOG_U("connections", w->open), LOG_U("drain_ms", drain_ms));
    /* A close every drain_ms / n, in ticks of 5..100 ms (several closes per tick
     * when they are denser than that). */
    uint64_t every = w->drain_total ? drain_ms / w->drain_total : drain_ms;
    if (every < 5) every = 5;
    if (every > 100) every = 100;
    uv_timer_start(&w->drain_timer, on_drain_tick, drain_ms ? every : 0, every);
}

void worker_close(worker_t *w, void (*done)(void *ud), void *ud) {
    w->drain_done = NULL; /* a drain cut short: its done is not waited for */
    uv_timer_stop(&w->drain_timer);
    w->closing = true;
    w->done = done;
    w->done_ud = ud;
    log_debug("worker closing", LOG_U("connections", w->open));
    worker_conn_t *next;
    for (worker_conn_t *c = w->conns; c; c = next) {
        next = c->next;
        if (c->state == CONN_OPEN) {
            worker_conn_close_for(c, METRICS_CLOSE_SHUTDOWN, WS_CLOSE_GOING_AWAY, "going away");
        } else if (c->state == CONN_CLOSING) { /* do not wait the usual grace period */
            uint32_t soon = worker_now(w) + WORKER_TICKS_PER_S;
            if ((int32_t)(c->close_deadline - soon) > 0) c->close_deadline = soon;
        }
    }
    uv_timer_start(&w->sweep, on_sweep, CLOSING_SWEEP_MS, CLOSING_SWEEP_MS);
    worker_maybe_finish(w);
}
