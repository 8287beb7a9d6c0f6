/* Refcounted outgoing frames and per-connection write queues of the worker.
 * A message to N connections costs one allocation for the frame; queue nodes are
 * recycled through a per-worker free list (bounded by pool->max: what a burst of
 * queued frames leaves behind goes back to malloc). */
#include "worker/frame.h"

#include <stdlib.h>
#include <string.h>

#include "common/mem.h"
#include "protocol/ws_deflate.h"
#include "protocol/ws_frame.h"

static worker_frame_t *frame_alloc(size_t len) {
    worker_frame_t *f = mem_alloc(sizeof *f + len);
    f->refs = 1;
    f->len = len;
    return f;
}

worker_frame_t *worker_frame_new(int opcode, const void *payload, size_t len) {
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t hlen = ws_frame_header(hdr, opcode, len);
    worker_frame_t *f = frame_alloc(hlen + len);
    memcpy(f->data, hdr, hlen);
    if (len) memcpy(f->data + hlen, payload, len);
    return f;
}

worker_frame_t *worker_frame_deflate(struct ws_deflater *d, int opcode, const void *payload,
                                     size_t len) {
    /* Deflated behind room for the longest header, then moved down behind the real
     * one and the allocation shrunk to fit (in place: no copy of the payload). */
    size_t cap = ws_deflate_bound(len);
    worker_frame_t *f = frame_alloc(WS_FRAME_HEADER_MAX + cap);
    size_t n = ws_deflate_message(d, payload, len, f->data + WS_FRAME_HEADER_MAX, cap);
    if (!n || n >= len) {
        free(f);
        return NULL;
    }
    uint8_t hdr[WS_FRAME_HEADER_MAX];
    size_t hlen = ws_frame_header(hdr, opcode, n);
    hdr[0] |= 0x40; /* RSV1: compressed */
    memmove(f->data + hlen, f->data + WS_FRAME_HEADER_MAX, n);
    memcpy(f->data, hdr, hlen);
    f->len = hlen + n;
    return mem_realloc(f, sizeof *f + f->len);
}

worker_frame_t *worker_frame_raw(const void *bytes, size_t len) {
    worker_frame_t *f = frame_alloc(len);
    if (len) memcpy(f->data, bytes, len);
    return f;
}

worker_frame_t *worker_frame_close(uint16_t code, const char *reason) {
    uint8_t payload[125];
    size_t n = ws_close_payload(payload, code, reason ? reason : "");
    return worker_frame_new(WS_OP_CLOSE, payload, n);
}

void worker_frame_unref(worker_frame_t *f) {
    if (f && --f->refs == 0) free(f);
}

static worker_qnode_t *node_get(worker_qpool_t *pool) {
    worker_qnode_t *n = pool->free;
    if (n) {
        pool->free = n->next;
        pool->count--;
        return n;
    }
    return mem_alloc(sizeof *n);
}

static void node_put(worker_qpool_t *pool, worker_qnode_t *n) {
    worker_frame_unref(n->frame);
    if (pool->count < pool->max) {
        n->next = pool->free;
        n->frame = NULL;
        pool->free = n;
        pool->count++;
    } else {
        free(n);
    }
}

void worker_queue_push(worker_queue_t *q, worker_qpool_t *pool, worker_frame_t *f, size_t off) {
    worker_qnode_t *n = node_get(pool);
    n->next = NULL;
    n->frame = worker_frame_ref(f);
    n->off = off;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->bytes += f->len - off;
    q->cost += worker_qnode_cost(f);
}

/* Accounts for a node that has left the queue (already unlinked) and recycles it. */
static void node_drop(worker_queue_t *q, worker_qpool_t *pool, worker_qnode_t *n) {
    if (q->pong == n) q->pong = NULL;
    q->bytes -= n->frame->len - n->off;
    q->cost -= worker_qnode_cost(n->frame);
    node_put(pool, n);
}

void worker_queue_pop(worker_queue_t *q, worker_qpool_t *pool) {
    worker_qnode_t *n = q->head;
    q->head = n->next;
    if (!q->head) q->tail = NULL;
    node_drop(q, pool, n);
}

void worker_queue_truncate(worker_queue_t *q, worker_qpool_t *pool, size_t keep) {
    if (keep == 0) {
        worker_queue_clear(q, pool);
        return;
    }
    worker_qnode_t *last = q->head;
    for (size_t i = 1; last && i < keep; i++) last = last->next;
    if (!last) return;
    worker_qnode_t *n = last->next;
    last->next = NULL;
    q->tail = last;
    while (n) {
        worker_qnode_t *next = n->next;
        node_drop(q, pool, n);
        n = next;
    }
}

void worker_queue_clear(worker_queue_t *q, worker_qpool_t *pool) {
    while (q->head) worker_queue_pop(q, pool);
}

/* Is n one of the first `busy` nodes (those a write in flight is reading)? */
static bool node_busy(const worker_queue_t *q, const worker_qnode_t *n, size_t busy) {
    for (const worker_qnode_t *m = q->head; m && busy; m = m->next, busy--)
        if (m == n) return true;
    return false;
}

bool worker_queue_pong(worker_queue_t *q, worker_qpool_t *pool, const void *payload, size_t len,
                       size_t busy) {
    worker_qnode_t *p = q->pong;
    if (p && p->off == 0 && !node_busy(q, p, busy)) {
        worker_frame_t *old = p->frame;
        uint8_t hdr[WS_FRAME_HEADER_MAX];
        size_t hlen = ws_frame_header(hdr, WS_OP_PONG, len);
        if (old->refs == 1 && old->len == hlen + len) {
            if (len) memcpy(old->data + hlen, payload, len); /* same header */
            return false;
        }
        worker_frame_t *f = worker_frame_new(WS_OP_PONG, payload, len);
        q->bytes = q->bytes - old->len + f->len;
        q->cost = q->cost - worker_qnode_cost(old) + worker_qnode_cost(f);
        p->frame = f; /* the node's reference moves to the new frame */
        worker_frame_unref(old);
        return false;
    }
    worker_frame_t *f = worker_frame_new(WS_OP_PONG, payload, len);
    worker_queue_push(q, pool, f, 0);
    worker_frame_unref(f);
    q->pong = q->tail;
    return true;
}

void worker_qpool_free(worker_qpool_t *pool) {
    while (pool->free) {
        worker_qnode_t *n = pool->free;
        pool->free = n->next;
        free(n);
    }
    pool->count = 0;
}
