/* Outgoing bytes of the worker, I/O-free: refcounted frames (header and payload
 * contiguous in one allocation) so one message is encoded once and the same bytes
 * are written to every connection it goes to, and the per-connection FIFO of
 * (frame, offset) nodes still to be written, with a small free list of nodes so
 * queuing a message allocates nothing on the hot path.
 *
 * Ownership: worker_frame_new* return a frame holding one reference, owned by the
 * caller. A queue node holds its own reference (worker_queue_push takes one) and
 * drops it when popped or cleared. Nodes come from and return to a worker_qpool_t.
 *
 * Accounting: a queue charges what its nodes really pin, not their wire bytes: each
 * node costs its own allocation plus the whole allocation of its frame, allocator
 * overhead included (WORKER_ALLOC_COST), however much of the frame was written
 * already and however many other queues share it (a shared frame is pinned by every
 * queue that holds it, so each is charged all of it: conservative, and it keeps the
 * charge of one connection independent of the others). max_queued_bytes is compared
 * with that cost (docs/architecture.md, "Memory per connection").
 *
 * Pongs: a queue keeps at most one pong that is waiting and untouched (not in a
 * write in flight, no byte of it written); a newer ping's pong replaces its payload
 * (RFC 6455 5.5.3 lets an endpoint answer only the most recent ping). */
#ifndef DSOCK_WORKER_FRAME_H
#define DSOCK_WORKER_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct worker_frame {
    uint32_t refs;
    size_t len;
    uint8_t data[];
} worker_frame_t;

/* A final, unmasked server frame with this opcode and payload (payload may be NULL
 * when len is 0). */
worker_frame_t *worker_frame_new(int opcode, const void *payload, size_t len);

struct ws_deflater;

/* The same message compressed for permessage-deflate (RFC 7692): RSV1 set, the
 * payload deflated on its own by d (no context takeover), so the frame is valid for
 * every connection that negotiated d's window. Allocated at its exact size, so
 * worker_frame_cost charges what it pins. NULL when compressing does not make the
 * payload smaller (or zlib failed): the plain frame is then sent instead, which the
 * RFC allows per message. */
worker_frame_t *worker_frame_deflate(struct ws_deflater *d, int opcode, const void *payload,
                                     size_t len);

/* Raw bytes (the 101 response). */
worker_frame_t *worker_frame_raw(const void *bytes, size_t len);

/* A close frame with code and a reason (may be NULL). */
worker_frame_t *worker_frame_close(uint16_t code, const char *reason);

static inline worker_frame_t *worker_frame_ref(worker_frame_t *f) {
    f->refs++;
    return f;
}

/* Drops one reference; frees at zero. NULL is a no-op. */
void worker_frame_unref(worker_frame_t *f);

typedef struct worker_qnode {
    struct worker_qnode *next;
    worker_frame_t *frame;
    size_t off; /* bytes of the frame already written */
} worker_qnode_t;

typedef struct worker_qpool {
    worker_qnode_t *free;
    size_t count;
    size_t max; /* nodes kept for reuse; the rest are freed */
} worker_qpool_t;

typedef struct worker_queue {
    worker_qnode_t *head;
    worker_qnode_t *tail;
    worker_qnode_t *pong; /* the pong waiting to be replaced by a newer one, or NULL */
    size_t bytes;         /* unwritten bytes in the queue (what the socket still has to take) */
    size_t cost;          /* memory its nodes pin: sum of worker_qnode_cost */
} worker_queue_t;

/* What a malloc of n bytes costs, at least: glibc (64-bit) adds an 8-byte header,
 * rounds up to 16 and never hands out less than 32; this charges a 16-byte header
 * and rounds up to 16, which is never less (and covers allocators with a 16-byte
 * header). */
#define WORKER_ALLOC_COST(n) (((size_t)(n) + 16 + 15) & ~(size_t)15)

/* What a frame's allocation costs. */
static inline size_t worker_frame_cost(const worker_frame_t *f) {
    return WORKER_ALLOC_COST(sizeof *f + f->len);
}

/* What one queued frame costs its queue: the node and the whole frame. */
static inline size_t worker_qnode_cost(const worker_frame_t *f) {
    return WORKER_ALLOC_COST(sizeof(worker_qnode_t)) + worker_frame_cost(f);
}

#define WORKER_QPOOL_INIT(max_nodes) {NULL, 0, (max_nodes)}

/* Appends the unwritten part f->data[off..len) (off < f->len); takes a new
 * reference on f. */
void worker_queue_push(worker_queue_t *q, worker_qpool_t *pool, worker_frame_t *f, size_t off);

/* Removes the head node (which must exist) and drops its reference. */
void worker_queue_pop(worker_queue_t *q, worker_qpool_t *pool);

/* Keeps the first `keep` nodes and drops the rest (unsent frames of a client that
 * is being closed; nodes in a write in flight must stay until it completes). */
void worker_queue_truncate(worker_queue_t *q, worker_qpool_t *pool, size_t keep);

/* Drops every node. */
void worker_queue_clear(worker_queue_t *q, worker_qpool_t *pool);

/* Queues a pong echoing payload (len <= 125), coalescing: when q->pong is waiting
 * untouched (off 0 and not one of the first `busy` nodes, those of a write in
 * flight), its payload is replaced (in place when the length is the same and the
 * frame is not shared: no allocation) and it keeps its place; otherwise a new pong
 * is appended and becomes q->pong. So a flood of pings leaves at most one untouched
 * pong in the queue, plus the pongs that were already being written when it came
 * (at most `busy` + 1). Returns true when a node was appended. */
bool worker_queue_pong(worker_queue_t *q, worker_qpool_t *pool, const void *payload, size_t len,
                       size_t busy);

/* Frees the nodes kept for reuse. */
void worker_qpool_free(worker_qpool_t *pool);

#endif
