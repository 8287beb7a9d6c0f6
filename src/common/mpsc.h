/* An intrusive multi-producer, single-consumer FIFO (Vyukov's node-based queue):
 * any thread pushes with one atomic exchange, never waiting for another; one
 * consumer thread pops. Items pushed by one producer are popped in push order.
 *
 * A pop may find the queue momentarily "empty" while a producer is between its
 * exchange and its link store; the item becomes visible when that producer's push
 * returns. Callers that wake the consumer after mpsc_push returns (uv_async_send)
 * never lose an item: the consumer is woken again after the item is linked.
 *
 * Ownership: the queue owns nothing; nodes are embedded in the caller's items and
 * must stay valid until popped. */
#ifndef DSOCK_MPSC_H
#define DSOCK_MPSC_H

#include <stdatomic.h>
#include <stddef.h>

typedef struct mpsc_node {
    _Atomic(struct mpsc_node *) next;
} mpsc_node_t;

typedef struct mpsc {
    _Atomic(mpsc_node_t *) tail; /* producers: the last node pushed */
    mpsc_node_t *head;           /* consumer only: the node before the next to pop */
    mpsc_node_t stub;
} mpsc_t;

/* The queue must not move after init (it points at its own stub). */
void mpsc_init(mpsc_t *q);

/* Any thread. n must not be in any queue. */
void mpsc_push(mpsc_t *q, mpsc_node_t *n);

/* Consumer thread only. The oldest node, or NULL when none is visible yet. */
mpsc_node_t *mpsc_pop(mpsc_t *q);

#endif
