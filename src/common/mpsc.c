/* Vyukov's intrusive MPSC queue. The stub node keeps the list non-empty so a push
 * is a single exchange on tail plus a store into the previous node's next; the
 * consumer walks from head and re-pushes the stub when it is about to take the
 * last node, so that node's next can still be linked safely. */
#include "common/mpsc.h"

void mpsc_init(mpsc_t *q) {
    atomic_store_explicit(&q->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&q->tail, &q->stub, memory_order_relaxed);
    q->head = &q->stub;
}

void mpsc_push(mpsc_t *q, mpsc_node_t *n) {
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    /* acq_rel: the exchange orders producers; the release on the link below
     * publishes the node's contents to the consumer. */
    mpsc_node_t *prev = atomic_exchange_explicit(&q->tail, n, memory_order_acq_rel);
    atomic_store_explicit(&prev->next, n, memory_order_release);
}

mpsc_node_t *mpsc_pop(mpsc_t *q) {
    mpsc_node_t *head = q->head;
    mpsc_node_t *next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (head == &q->stub) {
        if (!next) return NULL; /* empty */
        q->head = next;         /* skip the stub */
        head = next;
        next = atomic_load_explicit(&head->next, memory_order_acquire);
    }
    if (next) {
        q->head = next;
        return head;
    }
    /* head is the last linked node. If a producer already swapped tail past it,
     * its link is on the way: report empty for now. */
    if (head != atomic_load_explicit(&q->tail, memory_order_acquire)) return NULL;
    mpsc_push(q, &q->stub); /* so head gets a successor and can be handed out */
    next = atomic_load_explicit(&head->next, memory_order_acquire);
    if (next) {
        q->head = next;
        return head;
    }
    return NULL; /* another producer raced in between: its link is on the way */
}
