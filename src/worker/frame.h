/* Outgoing bytes of the worker, I/O-free: refcounted frames (header and payload
 * contiguous in one allocation) so one message is encoded once and the same bytes
 * are written to every connection it goes to, and the per-connection FIFO of
 * (frame, offset) nodes still to be written, with a small free list of nodes so
 * queuing a message allocates nothing on the hot path.
 *
 * Ownership: worker_frame_new* return a frame holding one reference, owned by the
 * caller. A queue node holds its own reference (worker_queue_push takes one) and
 * drops it when popped or cleared. Nodes come from and return to a worker_qpool_t. */
#ifndef DSOCK_WORKER_FRAME_H
#define DSOCK_WORKER_FRAME_H

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
    size_t bytes; /* unwritten bytes in the queue */
} worker_queue_t;

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

/* Frees the nodes kept for reuse. */
void worker_qpool_free(worker_qpool_t *pool);

#endif
