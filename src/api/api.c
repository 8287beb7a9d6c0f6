/* The API role. Each handler: authenticate, validate parameters in the order of
 * docs/api.md, make exactly one store call, answer JSON. The request context is
 * the only allocation per request and lives until the store answers. */
#include "api/api.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"
#include "common/rand.h"
#include "ops/metrics.h"
#include "protocol/bearer_token.h"
#include "protocol/utf8.h"
#include "protocol/validate.h"

#define CLAIM_DEFAULT_DURATION 60
/* 9999-12-31T23:59:59Z. Later expirations are refused: they do not fit Redis's
 * millisecond EXPIREAT, nor a JavaScript client's exact integers (2^53). */
#define CLAIM_MAX_EXPIRATION INT64_C(253402300799)

struct api {
    store_t *store;
    bearer_token_t token;
};

typedef enum { TARGET_NONE, TARGET_ID, TARGET_CHANNEL, TARGET_USER } target_kind_t;

/* What a pending request needs when the store answers. */
typedef struct api_request {
    http_conn_t *conn;
    target_kind_t target_kind;
    bool is_send;        /* a /send: counted in dsock_api_messages_total when accepted */
    size_t send_bytes;
    /* /claim answers with what it stored */
    char claim_id[RAND_ID_LEN + 1];
    char *claim_id_given;
    char *user;
    char *session;
    int64_t expiration;
    char **channels;     /* /claim: its channels */
    size_t channel_count;
} api_request_t;

api_t *api_new(store_t *store, const api_config_t *cfg) {
    api_t *a = mem_calloc(1, sizeof *a);
    a->store = store;
    bearer_token_init(&a->token, cfg->token);
    return a;
}

void api_free(api_t *a) {
    if (!a) return;
    bearer_token_clear(&a->token);
    free(a);
}

/* A parameter's value, or NULL. When a key is repeated the first non-empty value
 * wins, and an empty value counts as absent (docs/api.md). Values never hold a
 * NUL (the parser refuses %00), so strlen is their length. */
static const char *param(const http_request_t *req, const char *key) {
    const http_kv_t *kv = http_request_param(req, key);
    return kv ? kv->value : NULL;
}

/* Optional sign and digits, nothing else (protocol/validate.h). */
static bool int_param(const char *s, int64_t *out) { return s && parse_int64(s, strlen(s), out); }

static ident_status_t ident(const char *s) { return s ? ident_check(s, strlen(s)) : IDENT_OK; }

/* The answer for an identifier parameter that /claim would store; true if refused. */
static bool refuse_ident(http_conn_t *c, const char *user, const char *session, const char *id) {
    ident_status_t st[] = {ident(user), ident(session), ident(id)};
    for (size_t i = 0; i < 3; i++)
        if (st[i] == IDENT_NOT_UTF8) {
            http_conn_respond_error(c, 400, "INVALID_UTF8",
                                    "user, session and id must be valid UTF-8");
            return true;
        }
    for (size_t i = 0; i < 3; i++)
        if (st[i] == IDENT_CONTROL) {
            http_conn_respond_error(c, 400, "INVALID_CHARACTERS",
                                    "user, session and id must not hold control characters");
            return true;
        }
    return false;
}

/* Go's strconv.ParseBool set. */
static int parse_bool(const char *s, bool *out) {
    static const char *yes[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *no[] = {"0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < 6; i++) {
        if (!strcmp(s, yes[i])) return *out = true, 0;
        if (!strcmp(s, no[i])) return *out = false, 0;
    }
    return -1;
}

/* The answer for a channel name that fails channel_name_check; true if refused. */
static bool refuse_channel(http_conn_t *c, ident_status_t st) {
    if (st == IDENT_OK) return false;
    http_conn_respond_error(c, 400, "INVALID_CHANNEL",
                            st == IDENT_TOO_LONG ? "a channel name is at most 256 bytes"
                            : st == IDENT_NOT_UTF8
                                ? "a channel name must be valid UTF-8"
                                : "a channel name must be non-empty, without control characters");
    return true;
}

/* Precedence (docs/api.md): id, then channel, then user (+session). */
static target_kind_t read_target(const http_request_t *req, store_target_t *t) {
    memset(t, 0, sizeof *t);
    t->id = param(req, "id");
    if (t->id) return TARGET_ID;
    t->channel = param(req, "channel");
    if (t->channel) return TARGET_CHANNEL;
    t->user = param(req, "user");
    if (!t->user) return TARGET_NONE;
    t->session = param(req, "session");
    return TARGET_USER;
}

/* The target of /send, /disconnect, /info and /channel/...; answers 400 when
 * there is none, or when the channel target is not a channel name (then
 * TARGET_NONE too). */
static target_kind_t require_target(http_conn_t *c, const http_request_t *req,
                                    store_target_t *t) {
    target_kind_t kind = read_target(req, t);
    if (kind == TARGET_NONE)
        http_conn_respond_error(c, 400, "MISSING_CONNECTION_OR_USER",
                                "an id, channel or user parameter is required");
    if (kind == TARGET_CHANNEL &&
        refuse_channel(c, channel_name_check(t->channel, strlen(t->channel))))
        return TARGET_NONE;
    return kind;
}

/* Nothing the store holds was created with an id that fails the identifier rule
 * (claims and JWTs refuse them), so such a target matches nothing: it gets the
 * answer of an unknown target without asking the store, and never reaches the
 * bus, where workers would drop it. */
static bool target_can_match(const store_target_t *t) {
    return t->id        ? ident(t->id) == IDENT_OK
           : t->channel ? true /* checked by require_target */
                        : ident(t->user) == IDENT_OK && ident(t->session) == IDENT_OK;
}

/* cJSON stores numbers as doubles and prints large ones in exponent notation
 * (4.6116860184273879e+18): integers are written as raw decimal text instead. */
static void json_add_int(cJSON *o, const char *name, int64_t v) {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    cJSON_AddRawToObject(o, name, buf);
}

/* cJSON escapes quotes, backslashes and control characters but copies other bytes
 * as they are: a string that is not UTF-8 (a JWT subject or a key written by
 * another program) would make the whole answer invalid JSON. Such a string is
 * written with U+FFFD in place of each invalid byte. */
static cJSON *json_str(const char *v) {
    size_t n = strlen(v);
    if (utf8_valid((const uint8_t *)v, n)) return cJSON_CreateString(v);
    char *out = mem_alloc(n * 3 + 1);
    size_t j = 0;
    for (size_t i = 0; i < n;) {
        size_t len = 1;
        unsigned char b = (unsigned char)v[i];
        if (b >= 0xf0) len = 4;
        else if (b >= 0xe0) len = 3;
        else if (b >= 0xc0) len = 2;
        if (b < 0x80 || (i + len <= n && utf8_valid((const uint8_t *)v + i, len))) {
            memcpy(out + j, v + i, len);
            j += len;
            i += len;
        } else {
            memcpy(out + j, "\xEF\xBF\xBD", 3);
            j += 3;
            i++;
        }
    }
    out[j] = '\0';
    cJSON *item = cJSON_CreateString(out);
    free(out);
    return item;
}

static void json_add_str(cJSON *o, const char *name, const char *v) {
    cJSON_AddItemToObject(o, name, json_str(v));
}

/* "channels": always an array, [] when none. */
static void json_add_channels(cJSON *o, const char *const *names, size_t n) {
    cJSON *arr = cJSON_AddArrayToObject(o, "channels");
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(arr, json_str(names[i]));
}

static void respond_json(http_conn_t *c, int status, cJSON *root) {
    char *body = cJSON_PrintUnformatted(root);
    if (!body) log_fatal("out of memory printing JSON");
    http_conn_respond(c, status, NULL, body, strlen(body));
    free(body);
    cJSON_Delete(root);
}

static void respond_store_error(http_conn_t *c, target_kind_t kind) {
    if (kind == TARGET_ID)
        http_conn_respond_error(c, 503, "ERROR_GETTING_CONNECTION",
                                "could not fetch the connection (store unavailable)");
    else if (kind == TARGET_CHANNEL)
        http_conn_respond_error(c, 503, "ERROR_GETTING_CHANNEL",
                                "could not fetch the channel (store unavailable)");
    else
        http_conn_respond_error(c, 503, "ERROR_GETTING_USER",
                                "could not fetch the user's connections (store unavailable)");
}

/* Idempotency-Key ------------------------------------------------------------- */

#define IDEM_KEY_MAX 255
#define IDEM_FP_BYTES 16 /* of SHA-256: 128 bits tell requests apart */

/* An Idempotency-Key holds one request's first answer for idempotency_ttl
 * (docs/api.md). The store compares a fingerprint of the request with the one
 * stored with the key, so a key reused for another request is refused (422)
 * instead of answering it with someone else's outcome. */
typedef struct idem_req {
    store_idem_t idem;
    char key[IDEM_KEY_MAX + 1];
    char fp[IDEM_FP_BYTES * 2 + 1];
} idem_req_t;

static void fp_add(EVP_MD_CTX *ctx, const char *s, size_t n) {
    /* length-prefixed, with absent != empty: no two requests serialize alike */
    uint64_t len = s ? (uint64_t)n : UINT64_MAX;
    EVP_DigestUpdate(ctx, &len, sizeof len);
    if (s && n) EVP_DigestUpdate(ctx, s, n);
}

static void fp_str(EVP_MD_CTX *ctx, const char *s) { fp_add(ctx, s, s ? strlen(s) : 0); }

/* Reads and checks the header; false when it answered 400. *out is NULL without
 * a key. flags: the request's other settings (type, keepClaims, ignoreClaims). */
static bool read_idem(http_conn_t *c, const http_request_t *req, const store_target_t *t,
                      const char *flags, idem_req_t *ir, const store_idem_t **out) {
    *out = NULL;
    const http_kv_t *h = http_request_header(req, "idempotency-key");
    if (!h) return true;
    if (h->value_len == 0 || h->value_len > IDEM_KEY_MAX ||
        ident_check(h->value, h->value_len) != IDENT_OK) {
        http_conn_respond_error(c, 400, "INVALID_IDEMPOTENCY_KEY",
                                "Idempotency-Key must be 1 to 255 bytes of UTF-8 without "
                                "control characters");
        return false;
    }
    memcpy(ir->key, h->value, h->value_len);
    ir->key[h->value_len] = '\0';
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) log_fatal("out of memory (EVP)");
    fp_str(ctx, req->path);
    fp_str(ctx, t->id);
    fp_str(ctx, t->channel);
    fp_str(ctx, t->user);
    fp_str(ctx, t->session);
    fp_str(ctx, flags);
    fp_add(ctx, req->body, req->body_len);
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (size_t i = 0; i < IDEM_FP_BYTES; i++) snprintf(ir->fp + 2 * i, 3, "%02x", md[i]);
    ir->idem = (store_idem_t){.key = ir->key, .fingerprint = ir->fp};
    *out = &ir->idem;
    return true;
}

static void request_free(api_request_t *r) {
    free(r->claim_id_given);
    free(r->user);
    free(r->session);
    channel_list_free(r->channels, r->channel_count);
    free(r);
}

static api_request_t *request_new(http_conn_t *c, target_kind_t kind) {
    api_request_t *r = mem_calloc(1, sizeof *r);
    r->conn = c;
    r->target_kind = kind;
    return r;
}

/* POST /claim --------------------------------------------------------------- */

static void claim_done(void *ud, store_status_t status) {
    api_request_t *r = ud;
    if (status == STORE_EXISTS) {
        http_conn_respond_error(r->conn, 409, "CLAIM_ID_ALREADY_USED", "claim id already used");
    } else if (status == STORE_UNKNOWN) {
        /* As for /send: a paused Redis creates it once it resumes. */
        http_conn_respond_error(r->conn, 503, "ERROR_OUTCOME_UNKNOWN",
                                "the store did not answer in time: the claim may have been "
                                "created; retry with the same id to find out (409 "
                                "CLAIM_ID_ALREADY_USED: it was)");
    } else if (status != STORE_OK) {
        http_conn_respond_error(r->conn, 503, "ERROR_CHECKING_CLAIM",
                                "could not create the claim (store unavailable)");
    } else {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddBoolToObject(root, "success", 1);
        cJSON *claim = cJSON_AddObjectToObject(root, "claim");
        json_add_str(claim, "id", r->claim_id_given ? r->claim_id_given : r->claim_id);
        json_add_int(claim, "expiration", r->expiration);
        json_add_str(claim, "user", r->user);
        if (r->session) json_add_str(claim, "session", r->session);
        json_add_channels(claim, (const char *const *)r->channels, r->channel_count);
        respond_json(r->conn, 200, root);
    }
    request_free(r);
}

static void handle_claim(api_t *a, http_conn_t *c, const http_request_t *req) {
    const char *user = param(req, "user");
    if (!user) {
        http_conn_respond_error(c, 400, "USER_ID_REQUIRED", "the user parameter is required");
        return;
    }
    int64_t now = (int64_t)time(NULL);
    int64_t expiration;
    const char *exp_s = param(req, "expiration");
    const char *dur_s = param(req, "duration");
    if (exp_s) {
        if (!int_param(exp_s, &expiration)) {
            http_conn_respond_error(c, 400, "INVALID_EXPIRATION", "expiration is not an integer");
            return;
        }
        if (expiration < 0) {
            http_conn_respond_error(c, 400, "NEGATIVE_EXPIRATION", "expiration is negative");
            return;
        }
        if (expiration <= now) {
            http_conn_respond_error(c, 400, "INVALID_EXPIRATION", "expiration is in the past");
            return;
        }
        if (expiration > CLAIM_MAX_EXPIRATION) {
            http_conn_respond_error(c, 400, "INVALID_EXPIRATION",
                                    "expiration is after the year 9999");
            return;
        }
    } else {
        int64_t duration = CLAIM_DEFAULT_DURATION;
        if (dur_s && !int_param(dur_s, &duration)) {
            http_conn_respond_error(c, 400, "INVALID_DURATION", "duration is not an integer");
            return;
        }
        if (duration < 0) {
            http_conn_respond_error(c, 400, "NEGATIVE_DURATION", "duration is negative");
            return;
        }
        if (duration == 0 || duration > CLAIM_MAX_EXPIRATION - now) {
            http_conn_respond_error(c, 400, "INVALID_DURATION",
                                    duration == 0 ? "duration must be positive"
                                                  : "duration ends after the year 9999");
            return;
        }
        expiration = now + duration;
    }
    const char *id = param(req, "id");
    const char *session = param(req, "session");
    /* What a claim stores comes back in JSON answers and becomes the identity of a
     * connection: it must be an identifier (protocol/validate.h). */
    if (refuse_ident(c, user, session, id)) return;
    char **channels = NULL;
    size_t channel_count = 0;
    const char *ch_s = param(req, "channels");
    if (ch_s && refuse_channel(c, channel_list_parse(ch_s, strlen(ch_s), &channels,
                                                     &channel_count)))
        return;
    api_request_t *r = request_new(c, TARGET_USER);
    r->channels = channels;
    r->channel_count = channel_count;
    if (id) {
        r->claim_id_given = mem_strdup(id);
    } else {
        rand_id(r->claim_id);
    }
    r->user = mem_strdup(user);
    r->session = session ? mem_strdup(session) : NULL;
    r->expiration = expiration;
    store_claim_t claim = {
        .id = r->claim_id_given ? r->claim_id_given : r->claim_id,
        .user = r->user,
        .session = r->session,
        .expiration = expiration,
        .channels = (const char *const *)channels,
        .channel_count = channel_count,
    };
    store_claim_create(a->store, &claim, claim_done, r);
}

/* POST /send and POST /disconnect ------------------------------------------ */

static void delivery_done(void *ud, store_status_t status, const store_delivery_t *d) {
    api_request_t *r = ud;
    if (status == STORE_UNKNOWN) {
        /* Not a failure: the store got the request and did not answer in time. It
         * may have been carried out, or be carried out later (a paused Redis runs
         * what it had received once it resumes). */
        http_conn_respond_error(r->conn, 503, "ERROR_OUTCOME_UNKNOWN",
                                "the store did not answer in time: the request may have been "
                                "carried out; retry with the same Idempotency-Key to find out");
    } else if (status == STORE_IDEM_REUSED) {
        http_conn_respond_error(r->conn, 422, "IDEMPOTENCY_KEY_REUSED",
                                "this Idempotency-Key was used for a different request");
    } else if (status == STORE_IDEM_BUSY) {
        http_conn_respond_error(r->conn, 409, "IDEMPOTENCY_KEY_IN_PROGRESS",
                                "a request with this Idempotency-Key is still being processed");
    } else if (status != STORE_OK) {
        respond_store_error(r->conn, r->target_kind);
    } else {
        if (d->replayed) {
            METRICS_INC(api_idem_replays);
        } else if (r->is_send) {
            METRICS_INC(api_messages);
            METRICS_ADD(api_message_bytes, r->send_bytes);
        }
        char body[160];
        int n;
        if (d->unreachable)
            n = snprintf(body, sizeof body,
                         "{\"success\":true,\"connections\":%zu,\"workers\":%zu,"
                         "\"unreachable\":%zu}",
                         d->connections, d->workers, d->unreachable);
        else
            n = snprintf(body, sizeof body, "{\"success\":true,\"connections\":%zu,\"workers\":%zu}",
                         d->connections, d->workers);
        http_conn_respond(r->conn, 200, d->replayed ? "Idempotent-Replayed: true\r\n" : NULL, body,
                          (size_t)n);
    }
    request_free(r);
}

static void handle_send(api_t *a, http_conn_t *c, const http_request_t *req) {
    store_target_t t;
    target_kind_t kind = require_target(c, req, &t);
    if (kind == TARGET_NONE) return;
    const char *type = param(req, "type");
    worker_msg_kind_t mk;
    if (type && !strcmp(type, "text")) {
        mk = WORKER_MSG_TEXT;
    } else if (type && !strcmp(type, "binary")) {
        mk = WORKER_MSG_BINARY;
    } else {
        http_conn_respond_error(c, 400, "INVALID_MESSAGE_TYPE",
                                "type must be text or binary");
        return;
    }
    if (mk == WORKER_MSG_TEXT && !utf8_valid((const uint8_t *)req->body, req->body_len)) {
        http_conn_respond_error(c, 400, "INVALID_UTF8", "a text message must be valid UTF-8");
        return;
    }
    idem_req_t ir;
    if (!read_idem(c, req, &t, mk == WORKER_MSG_TEXT ? "text" : "binary", &ir, &t.idem)) return;
    api_request_t *r = request_new(c, kind);
    r->is_send = true;
    r->send_bytes = req->body_len;
    if (!target_can_match(&t)) {
        delivery_done(r, STORE_OK, &(store_delivery_t){0});
        return;
    }
    worker_msg_t msg = {
        .kind = mk,
        .target = t,
        .body = (const uint8_t *)req->body,
        .body_len = req->body_len,
    };
    store_send(a->store, &msg, delivery_done, r);
}

static void handle_disconnect(api_t *a, http_conn_t *c, const http_request_t *req) {
    store_target_t t;
    target_kind_t kind = require_target(c, req, &t);
    if (kind == TARGET_NONE) return;
    bool keep_claims = false;
    const char *keep = param(req, "keepClaims");
    if (keep && parse_bool(keep, &keep_claims)) {
        http_conn_respond_error(c, 400, "INVALID_KEEP_CLAIMS", "keepClaims must be true or false");
        return;
    }
    idem_req_t ir;
    if (!read_idem(c, req, &t, keep_claims ? "keep" : "drop", &ir, &t.idem)) return;
    if (!target_can_match(&t)) {
        delivery_done(request_new(c, kind), STORE_OK, &(store_delivery_t){0});
        return;
    }
    store_disconnect(a->store, &t, keep_claims, delivery_done, request_new(c, kind));
}

/* GET /info ------------------------------------------------------------------ */

static void info_done(void *ud, store_status_t status, const store_info_t *info) {
    api_request_t *r = ud;
    if (status != STORE_OK) {
        respond_store_error(r->conn, r->target_kind);
        request_free(r);
        return;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddBoolToObject(root, "success", 1);
    cJSON *conns = cJSON_AddArrayToObject(root, "connections");
    for (size_t i = 0; i < info->conn_count; i++) {
        const store_conn_t *sc = &info->conns[i];
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, "id", sc->id);
        json_add_str(o, "worker", sc->worker);
        json_add_int(o, "lastPing", sc->last_ping);
        json_add_str(o, "user", sc->user);
        if (sc->session && *sc->session) json_add_str(o, "session", sc->session);
        json_add_channels(o, sc->channels, sc->channel_count);
        cJSON_AddItemToArray(conns, o);
    }
    cJSON *claims = cJSON_AddArrayToObject(root, "claims");
    for (size_t i = 0; i < info->claim_count; i++) {
        const store_claim_t *cl = &info->claims[i];
        cJSON *o = cJSON_CreateObject();
        json_add_str(o, "id", cl->id);
        json_add_int(o, "expiration", cl->expiration);
        json_add_str(o, "user", cl->user);
        if (cl->session && *cl->session) json_add_str(o, "session", cl->session);
        json_add_channels(o, cl->channels, cl->channel_count);
        cJSON_AddItemToArray(claims, o);
    }
    respond_json(r->conn, 200, root);
    request_free(r);
}

static void handle_info(api_t *a, http_conn_t *c, const http_request_t *req) {
    store_target_t t;
    target_kind_t kind = require_target(c, req, &t);
    if (kind == TARGET_NONE) return;
    if (!target_can_match(&t)) {
        info_done(request_new(c, kind), STORE_OK, &(store_info_t){0});
        return;
    }
    store_info(a->store, &t, info_done, request_new(c, kind));
}

/* POST /channel/subscribe/NAME and /channel/unsubscribe/NAME ------------------ */

#define SUBSCRIBE_PREFIX "/channel/subscribe/"
#define UNSUBSCRIBE_PREFIX "/channel/unsubscribe/"

static void handle_channel(api_t *a, http_conn_t *c, const http_request_t *req, bool join) {
    /* The path is percent-decoded: a name may hold '/' or ',' as %2F, %2C. */
    const char *name = req->path + strlen(join ? SUBSCRIBE_PREFIX : UNSUBSCRIBE_PREFIX);
    if (refuse_channel(c, channel_name_check(name, strlen(name)))) return;
    store_target_t t;
    target_kind_t kind = require_target(c, req, &t);
    if (kind == TARGET_NONE) return;
    bool ignore_claims = false;
    const char *ign = param(req, "ignoreClaims");
    if (ign && parse_bool(ign, &ignore_claims)) {
        http_conn_respond_error(c, 400, "INVALID_IGNORE_CLAIMS",
                                "ignoreClaims must be true or false");
        return;
    }
    idem_req_t ir;
    if (!read_idem(c, req, &t, ignore_claims ? "ignore" : "claims", &ir, &t.idem)) return;
    if (!target_can_match(&t)) {
        delivery_done(request_new(c, kind), STORE_OK, &(store_delivery_t){0});
        return;
    }
    store_subscribe(a->store, &t, name, join, ignore_claims, delivery_done, request_new(c, kind));
}

static void handle_subscribe(api_t *a, http_conn_t *c, const http_request_t *req) {
    handle_channel(a, c, req, true);
}

static void handle_unsubscribe(api_t *a, http_conn_t *c, const http_request_t *req) {
    handle_channel(a, c, req, false);
}

/* Routing ---------------------------------------------------------------------- */

typedef struct route {
    const char *path;
    http_method_t method;
    const char *allow;
    void (*handler)(api_t *, http_conn_t *, const http_request_t *);
    bool prefix; /* path is a prefix: the rest is the channel name */
} route_t;

static const route_t routes[] = {
    {"/claim", HTTP_METHOD_POST, "Allow: POST\r\n", handle_claim, false},
    {"/send", HTTP_METHOD_POST, "Allow: POST\r\n", handle_send, false},
    {"/disconnect", HTTP_METHOD_POST, "Allow: POST\r\n", handle_disconnect, false},
    {"/info", HTTP_METHOD_GET, "Allow: GET\r\n", handle_info, false},
    {SUBSCRIBE_PREFIX, HTTP_METHOD_POST, "Allow: POST\r\n", handle_subscribe, true},
    {UNSUBSCRIBE_PREFIX, HTTP_METHOD_POST, "Allow: POST\r\n", handle_unsubscribe, true},
};

/* Routing before authentication (docs/api.md): path (404 is the caller's), method
 * (405), token (401). Sets *route when the request is to be served. Needs only the
 * request line and headers. */
static http_verdict_t route_check(const api_t *a, http_conn_t *c, const http_request_t *req,
                                  const route_t **route) {
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const route_t *rt = &routes[i];
        if (rt->prefix ? strncmp(req->path, rt->path, strlen(rt->path)) != 0
                       : strcmp(req->path, rt->path) != 0)
            continue;
        if (req->method != rt->method) {
            static const char body[] =
                "{\"success\":false,\"error\":\"method not allowed\","
                "\"errorCode\":\"METHOD_NOT_ALLOWED\"}";
            http_conn_respond(c, 405, rt->allow, body, sizeof body - 1);
            return HTTP_ANSWERED;
        }
        if (!bearer_token_authorizes(&a->token, req)) {
            http_conn_respond_error(c, 401, "INVALID_AUTHORIZATION",
                                    "invalid or missing token");
            return HTTP_ANSWERED;
        }
        *route = rt;
        return HTTP_ACCEPTED;
    }
    return HTTP_NOT_MINE;
}

http_verdict_t api_precheck(api_t *a, http_conn_t *c, const http_request_t *req) {
    const route_t *rt;
    return route_check(a, c, req, &rt);
}

bool api_handle(api_t *a, http_conn_t *c, const http_request_t *req) {
    /* Checked again on the whole request: cheap, and the handlers never depend on
     * the server having been given api_precheck. */
    const route_t *rt = NULL;
    http_verdict_t v = route_check(a, c, req, &rt);
    if (v == HTTP_ACCEPTED) rt->handler(a, c, req);
    return v != HTTP_NOT_MINE;
}
