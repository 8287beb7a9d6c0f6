/* Unit tests for the MPSC queue (common/mpsc.h): FIFO on one thread, and several
 * producer threads pushing while one consumer pops, checking that every item
 * arrives exactly once and each producer's items arrive in push order. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/mpsc.h"

typedef struct item {
    mpsc_node_t node; /* first */
    unsigned producer;
    uint32_t seq;
} item_t;

Test(mpsc, empty_then_fifo_on_one_thread) {
    mpsc_t q;
    mpsc_init(&q);
    cr_assert_null(mpsc_pop(&q));
    item_t items[5];
    for (uint32_t i = 0; i < 5; i++) {
        items[i].seq = i;
        mpsc_push(&q, &items[i].node);
    }
    for (uint32_t i = 0; i < 5; i++) {
        item_t *it = (item_t *)mpsc_pop(&q);
        cr_assert_not_null(it);
        cr_assert_eq(it->seq, i);
    }
    cr_assert_null(mpsc_pop(&q));
    /* Reusable once drained, including a single item (the stub path). */
    mpsc_push(&q, &items[0].node);
    cr_assert_eq(mpsc_pop(&q), &items[0].node);
    cr_assert_null(mpsc_pop(&q));
    mpsc_push(&q, &items[1].node);
    mpsc_push(&q, &items[2].node);
    cr_assert_eq(mpsc_pop(&q), &items[1].node);
    mpsc_push(&q, &items[3].node);
    cr_assert_eq(mpsc_pop(&q), &items[2].node);
    cr_assert_eq(mpsc_pop(&q), &items[3].node);
    cr_assert_null(mpsc_pop(&q));
}

#define PRODUCERS 4
#define PER_PRODUCER 100000

typedef struct producer {
    mpsc_t *q;
    unsigned id;
    item_t *items;
    atomic_int *start;
} producer_t;

static void *produce(void *arg) {
    producer_t *p = arg;
    while (!atomic_load(p->start)) {
    }
    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        p->items[i].producer = p->id;
        p->items[i].seq = i;
        mpsc_push(p->q, &p->items[i].node);
    }
    return NULL;
}

Test(mpsc, producers_in_order_each, .timeout = 60) {
    mpsc_t q;
    mpsc_init(&q);
    atomic_int start = 0;
    pthread_t th[PRODUCERS];
    producer_t ps[PRODUCERS];
    for (unsigned p = 0; p < PRODUCERS; p++) {
        ps[p] = (producer_t){&q, p, calloc(PER_PRODUCER, sizeof(item_t)), &start};
        cr_assert_not_null(ps[p].items);
        cr_assert_eq(pthread_create(&th[p], NULL, produce, &ps[p]), 0);
    }
    atomic_store(&start, 1);
    uint32_t next[PRODUCERS] = {0};
    size_t total = 0;
    while (total < (size_t)PRODUCERS * PER_PRODUCER) {
        item_t *it = (item_t *)mpsc_pop(&q);
        if (!it) continue; /* empty, or a push between its two steps */
        cr_assert_lt(it->producer, PRODUCERS);
        cr_assert_eq(it->seq, next[it->producer], "producer %u: got %u, expected %u",
                     it->producer, it->seq, next[it->producer]);
        next[it->producer]++;
        total++;
    }
    for (unsigned p = 0; p < PRODUCERS; p++) {
        pthread_join(th[p], NULL);
        cr_assert_eq(next[p], PER_PRODUCER);
        free(ps[p].items);
    }
    cr_assert_null(mpsc_pop(&q));
}
