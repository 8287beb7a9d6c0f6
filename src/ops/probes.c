/* Probe state in atomics (see probes.h): each slot is written by its own loop only
 * and read by any thread answering a probe. Relaxed ordering is enough: each field
 * is read on its own (a heartbeat or a reason pointer to a static string), and a
 * probe that sees a value one beat old answers what was true 250 ms ago. */
#include "ops/probes.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    atomic_uint_fast64_t beat_ms;      /* CLOCK_MONOTONIC ms of the last beat */
    _Atomic(const char *) not_ready;   /* NULL: ready; else a static reason */
    atomic_bool retired;
} slot_t;

static slot_t slots[PROBES_MAX_SLOTS];
static atomic_int nslots;
static atomic_bool draining;

uint64_t probes_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int probes_slot_new(void) {
    int i = atomic_load(&nslots);
    if (i >= PROBES_MAX_SLOTS) return -1;
    atomic_store(&slots[i].beat_ms, probes_now_ms());
    atomic_store(&slots[i].not_ready, PROBES_STARTING);
    atomic_store(&slots[i].retired, false);
    atomic_store(&nslots, i + 1); /* the slot is complete before it counts */
    return i;
}

static bool valid(int slot) { return slot >= 0 && slot < atomic_load(&nslots); }

void probes_slot_beat(int slot) {
    if (valid(slot)) atomic_store_explicit(&slots[slot].beat_ms, probes_now_ms(), memory_order_relaxed);
}

void probes_slot_set_ready(int slot, const char *reason) {
    if (valid(slot)) atomic_store_explicit(&slots[slot].not_ready, reason, memory_order_relaxed);
}

void probes_slot_retire(int slot) {
    if (valid(slot)) atomic_store(&slots[slot].retired, true);
}

void probes_set_draining(void) { atomic_store(&draining, true); }
bool probes_draining(void) { return atomic_load(&draining); }

bool probes_healthy_at(uint64_t now_ms, const char **reason) {
    int n = atomic_load(&nslots);
    for (int i = 0; i < n; i++) {
        if (atomic_load_explicit(&slots[i].retired, memory_order_relaxed)) continue;
        uint64_t beat = atomic_load_explicit(&slots[i].beat_ms, memory_order_relaxed);
        /* A beat after now (another thread's clock read came later) is fresh. */
        if (now_ms > beat && now_ms - beat > PROBES_STALL_MS) {
            if (reason) *reason = PROBES_LOOP_STALLED;
            return false;
        }
    }
    if (reason) *reason = NULL;
    return true;
}

bool probes_ready_at(uint64_t now_ms, const char **reason) {
    if (probes_draining()) {
        if (reason) *reason = PROBES_DRAINING;
        return false;
    }
    if (!probes_healthy_at(now_ms, reason)) return false;
    int n = atomic_load(&nslots);
    for (int i = 0; i < n; i++) {
        if (atomic_load_explicit(&slots[i].retired, memory_order_relaxed)) continue;
        const char *why = atomic_load_explicit(&slots[i].not_ready, memory_order_relaxed);
        if (why) {
            if (reason) *reason = why;
            return false;
        }
    }
    if (reason) *reason = NULL;
    return true;
}

bool probes_healthy(const char **reason) { return probes_healthy_at(probes_now_ms(), reason); }
bool probes_ready(const char **reason) { return probes_ready_at(probes_now_ms(), reason); }

void probes_reset(void) {
    atomic_store(&nslots, 0);
    atomic_store(&draining, false);
}

/* Answers with the status and, when failing, the reason: nothing else (no
 * version, no counts, no store address), since probes need no token. */
static void respond(http_conn_t *c, bool ok, const char *reason) {
    char body[128];
    int n = ok ? (int)strlen(strcpy(body, "{\"status\":\"ok\"}"))
               : snprintf(body, sizeof body, "{\"status\":\"not_ready\",\"reason\":\"%s\"}", reason);
    /* Never cached by a proxy: each answer is the state of this moment. */
    http_conn_respond(c, ok ? 200 : 503, "Cache-Control: no-store\r\n", body, (size_t)n);
}

http_verdict_t probes_precheck(http_conn_t *c, const http_request_t *req) {
    if (!req->path) return HTTP_NOT_MINE;
    bool health = !strcmp(req->path, "/healthz");
    if (!health && strcmp(req->path, "/readyz") != 0) return HTTP_NOT_MINE;
    if (req->method != HTTP_METHOD_GET && req->method != HTTP_METHOD_HEAD) {
        static const char body[] = "{\"success\":false,\"error\":\"method not allowed\","
                                   "\"errorCode\":\"METHOD_NOT_ALLOWED\"}";
        http_conn_respond(c, 405, "Allow: GET, HEAD\r\n", body, sizeof body - 1);
        return HTTP_ANSWERED;
    }
    const char *reason = NULL;
    bool ok = health ? probes_healthy(&reason) : probes_ready(&reason);
    respond(c, ok, reason);
    return HTTP_ANSWERED;
}
