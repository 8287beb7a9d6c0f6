/* Unit tests for the worker's refcounted frames and write queues (worker/frame.h):
 * encoding once, reference counting across queues, offsets, truncation and the
 * node free list. */
#include <criterion/criterion.h>
#include <string.h>

#include "protocol/ws_frame.h"
#include "worker/frame.h"

Test(worker_frame, text_frame_is_header_plus_payload) {
    worker_frame_t *f = worker_frame_new(WS_OP_TEXT, "hello", 5);
    cr_assert_eq(f->refs, 1);
    cr_assert_eq(f->len, 7);
    cr_assert_eq(f->data[0], 0x81);
    cr_assert_eq(f->data[1], 5);
    cr_assert(memcmp(f->data + 2, "hello", 5) == 0);
    worker_frame_unref(f);
}

Test(worker_frame, empty_and_large_payloads) {
    worker_frame_t *f = worker_frame_new(WS_OP_PING, NULL, 0);
    cr_assert_eq(f->len, 2);
    cr_assert_eq(f->data[0], 0x89);
    cr_assert_eq(f->data[1], 0);
    worker_frame_unref(f);

    static uint8_t big[70000];
    memset(big, 'x', sizeof big);
    f = worker_frame_new(WS_OP_BINARY, big, sizeof big);
    cr_assert_eq(f->len, 10 + sizeof big);
    cr_assert_eq(f->data[0], 0x82);
    cr_assert_eq(f->data[1], 127);
    cr_assert_eq(f->data[9], sizeof big & 0xff);
    worker_frame_unref(f);

    f = worker_frame_new(WS_OP_BINARY, big, 300);
    cr_assert_eq(f->len, 4 + 300);
    cr_assert_eq(f->data[1], 126);
    cr_assert_eq(f->data[2], 300 >> 8);
    cr_assert_eq(f->data[3], 300 & 0xff);
    worker_frame_unref(f);
}

Test(worker_frame, close_frame_carries_code) {
    worker_frame_t *f = worker_frame_close(1008, "slow");
    cr_assert_eq(f->data[0], 0x88);
    cr_assert_eq(f->data[1], 6);
    cr_assert_eq(f->data[2], 1008 >> 8);
    cr_assert_eq(f->data[3], 1008 & 0xff);
    cr_assert(memcmp(f->data + 4, "slow", 4) == 0);
    worker_frame_unref(f);
}

Test(worker_frame, raw_bytes) {
    worker_frame_t *f = worker_frame_raw("HTTP/1.1 101", 12);
    cr_assert_eq(f->len, 12);
    cr_assert(memcmp(f->data, "HTTP/1.1 101", 12) == 0);
    worker_frame_unref(f);
    worker_frame_unref(NULL);
}

Test(worker_queue, one_frame_shared_by_queues) {
    worker_qpool_t pool = WORKER_QPOOL_INIT(8);
    worker_queue_t a = {0}, b = {0};
    worker_frame_t *f = worker_frame_new(WS_OP_TEXT, "abc", 3);
    worker_queue_push(&a, &pool, f, 0);
    worker_queue_push(&b, &pool, f, 2);
    worker_frame_unref(f);
    cr_assert_eq(f->refs, 2);
    cr_assert_eq(a.bytes, 5);
    cr_assert_eq(b.bytes, 3);
    cr_assert_eq(b.head->off, 2);
    worker_queue_pop(&a, &pool);
    cr_assert_null(a.head);
    cr_assert_null(a.tail);
    cr_assert_eq(a.bytes, 0);
    cr_assert_eq(f->refs, 1);
    cr_assert_eq(pool.count, 1);
    worker_queue_clear(&b, &pool); /* frees the frame (ASan would see a leak otherwise) */
    cr_assert_eq(pool.count, 2);
    worker_qpool_free(&pool);
    cr_assert_null(pool.free);
}

Test(worker_queue, order_and_truncate) {
    worker_qpool_t pool = WORKER_QPOOL_INIT(2);
    worker_queue_t q = {0};
    worker_frame_t *f[5];
    for (int i = 0; i < 5; i++) {
        char c = (char)('0' + i);
        f[i] = worker_frame_new(WS_OP_TEXT, &c, 1);
        worker_queue_push(&q, &pool, f[i], 0);
        worker_frame_unref(f[i]);
    }
    cr_assert_eq(q.bytes, 15);
    worker_queue_truncate(&q, &pool, 2);
    cr_assert_eq(q.bytes, 6);
    cr_assert_eq(q.head->frame, f[0]);
    cr_assert_eq(q.tail->frame, f[1]);
    cr_assert_null(q.tail->next);
    cr_assert_eq(pool.count, 2); /* capped at max; the third node was freed */
    worker_frame_t *c = worker_frame_close(1000, NULL);
    worker_queue_push(&q, &pool, c, 0);
    worker_frame_unref(c);
    cr_assert_eq(q.tail->frame, c);
    cr_assert_eq(pool.count, 1); /* reused */
    worker_queue_truncate(&q, &pool, 10); /* keeps everything */
    cr_assert_eq(q.bytes, 6 + 4);
    worker_queue_truncate(&q, &pool, 0);
    cr_assert_null(q.head);
    cr_assert_null(q.tail);
    cr_assert_eq(q.bytes, 0);
    worker_qpool_free(&pool);
}

/* Queued bytes are charged what they pin: node and whole frame, allocator overhead
 * included, whatever the offset and however many queues share the frame. */
Test(worker_queue, cost_counts_node_frame_and_allocator) {
    cr_assert_eq(WORKER_ALLOC_COST(1), 32);
    cr_assert_eq(WORKER_ALLOC_COST(16), 32);
    cr_assert_eq(WORKER_ALLOC_COST(17), 48);
    for (size_t n = 1; n < 4096; n++) { /* never less than glibc's chunk: n + 8, 16-aligned, >= 32 */
        size_t glibc = (n + 8 + 15) & ~(size_t)15;
        if (glibc < 32) glibc = 32;
        cr_assert_geq(WORKER_ALLOC_COST(n), glibc, "n=%zu", n);
    }
    worker_qpool_t pool = WORKER_QPOOL_INIT(8);
    worker_queue_t a = {0}, b = {0};
    worker_frame_t *pong = worker_frame_new(WS_OP_PONG, NULL, 0); /* 2 wire bytes */
    size_t node = WORKER_ALLOC_COST(sizeof(worker_qnode_t));
    cr_assert_eq(worker_frame_cost(pong), WORKER_ALLOC_COST(sizeof *pong + 2));
    cr_assert_eq(worker_qnode_cost(pong), node + worker_frame_cost(pong));
    cr_assert_geq(worker_qnode_cost(pong), 64, "an empty pong pins at least 64 bytes, not 2");
    worker_queue_push(&a, &pool, pong, 0);
    cr_assert_eq(a.bytes, 2);
    cr_assert_eq(a.cost, worker_qnode_cost(pong));

    static uint8_t big[70000];
    worker_frame_t *f = worker_frame_new(WS_OP_BINARY, big, sizeof big);
    worker_queue_push(&a, &pool, f, 0);
    worker_queue_push(&b, &pool, f, 60000); /* partly written: still pins all of it */
    worker_frame_unref(f);
    cr_assert_eq(b.bytes, f->len - 60000);
    cr_assert_eq(b.cost, node + worker_frame_cost(f));
    cr_assert_eq(a.cost, 2 * node + worker_frame_cost(pong) + worker_frame_cost(f));
    cr_assert_geq(b.cost, sizeof big + 10 + 16);

    worker_queue_pop(&a, &pool);
    cr_assert_eq(a.cost, node + worker_frame_cost(f));
    worker_queue_truncate(&a, &pool, 0);
    cr_assert_eq(a.cost, 0);
    cr_assert_eq(a.bytes, 0);
    worker_queue_clear(&b, &pool);
    cr_assert_eq(b.cost, 0);
    worker_frame_unref(pong);
    worker_qpool_free(&pool);
}

/* One waiting pong per queue: a newer ping's payload replaces it, in place. */
Test(worker_queue, pongs_coalesce_into_the_waiting_one) {
    worker_qpool_t pool = WORKER_QPOOL_INIT(8);
    worker_queue_t q = {0};
    worker_frame_t *d = worker_frame_new(WS_OP_TEXT, "data", 4);
    worker_queue_push(&q, &pool, d, 0);
    worker_frame_unref(d);
    cr_assert(worker_queue_pong(&q, &pool, "a1", 2, 0));
    worker_qnode_t *p = q.pong;
    cr_assert_eq(p, q.tail);
    size_t cost = q.cost, bytes = q.bytes;
    worker_frame_t *pf = p->frame;
    for (int i = 0; i < 100000; i++) /* a flood: nothing grows, nothing is allocated */
        cr_assert_not(worker_queue_pong(&q, &pool, i & 1 ? "c3" : "b2", 2, 0));
    cr_assert_eq(q.pong, p);
    cr_assert_eq(p->frame, pf);
    cr_assert_eq(q.cost, cost);
    cr_assert_eq(q.bytes, bytes);
    cr_assert_eq(q.head->next, p);
    cr_assert_null(p->next);
    cr_assert_eq(pf->data[0], 0x8a);
    cr_assert_eq(pf->data[1], 2);
    cr_assert(memcmp(pf->data + 2, "c3", 2) == 0, "answers the most recent ping");

    /* Another length: a new frame in the same node, the accounting follows. */
    uint8_t long_payload[125];
    memset(long_payload, 'z', sizeof long_payload);
    cr_assert_not(worker_queue_pong(&q, &pool, long_payload, sizeof long_payload, 0));
    cr_assert_eq(q.pong, p);
    cr_assert_eq(p->frame->len, 2 + 125);
    cr_assert_eq(q.bytes, 6 + 127);
    cr_assert_eq(q.cost, worker_qnode_cost(q.head->frame) + worker_qnode_cost(p->frame));
    cr_assert_not(worker_queue_pong(&q, &pool, NULL, 0, 0));
    cr_assert_eq(p->frame->len, 2);
    cr_assert_eq(q.bytes, 6 + 2);
    cr_assert_eq(q.cost, worker_qnode_cost(q.head->frame) + worker_qnode_cost(p->frame));

    /* Written and popped: the next pong is a new one. */
    worker_queue_pop(&q, &pool);
    worker_queue_pop(&q, &pool);
    cr_assert_null(q.pong);
    cr_assert_eq(q.cost, 0);
    cr_assert(worker_queue_pong(&q, &pool, "x", 1, 0));
    cr_assert_not_null(q.pong);
    worker_queue_truncate(&q, &pool, 0); /* dropped (a 1008 close): forgotten */
    cr_assert_null(q.pong);
    worker_qpool_free(&pool);
}

/* A pong that a write in flight is reading, or that try_write wrote in part, is
 * never modified: a new pong goes behind it. */
Test(worker_queue, pong_being_written_is_left_alone) {
    worker_qpool_t pool = WORKER_QPOOL_INIT(8);
    worker_queue_t q = {0};
    cr_assert(worker_queue_pong(&q, &pool, "p1", 2, 0));
    worker_frame_t *first = q.head->frame;
    /* The pong is the only node and a uv_write holds it (busy = 1). */
    cr_assert(worker_queue_pong(&q, &pool, "p2", 2, 1));
    cr_assert_eq(q.head->frame, first);
    cr_assert(memcmp(first->data + 2, "p1", 2) == 0);
    cr_assert_eq(q.pong, q.tail);
    cr_assert_neq(q.pong, q.head);
    /* Later pings replace only the second one. */
    cr_assert_not(worker_queue_pong(&q, &pool, "p3", 2, 1));
    cr_assert(memcmp(first->data + 2, "p1", 2) == 0);
    cr_assert(memcmp(q.tail->frame->data + 2, "p3", 2) == 0);
    /* Now the write in flight covers both (busy = 2): a third node. */
    cr_assert(worker_queue_pong(&q, &pool, "p4", 2, 2));
    cr_assert(memcmp(q.head->next->frame->data + 2, "p3", 2) == 0);
    worker_queue_clear(&q, &pool);
    cr_assert_null(q.pong);

    /* Partly written (off > 0), not in flight: still left alone. */
    cr_assert(worker_queue_pong(&q, &pool, "q1", 2, 0));
    q.head->off = 1;
    q.bytes -= 1;
    cr_assert(worker_queue_pong(&q, &pool, "q2", 2, 0));
    cr_assert(memcmp(q.head->frame->data + 2, "q1", 2) == 0);
    cr_assert_eq(q.bytes, 3 + 4);
    worker_queue_clear(&q, &pool);
    cr_assert_eq(q.bytes, 0);
    cr_assert_eq(q.cost, 0);

    /* A shared pong frame (refs > 1) is never written in place. */
    cr_assert(worker_queue_pong(&q, &pool, "s1", 2, 0));
    worker_frame_t *shared = worker_frame_ref(q.head->frame);
    cr_assert_not(worker_queue_pong(&q, &pool, "s2", 2, 0));
    cr_assert(memcmp(shared->data + 2, "s1", 2) == 0);
    cr_assert(memcmp(q.head->frame->data + 2, "s2", 2) == 0);
    cr_assert_eq(shared->refs, 1);
    worker_frame_unref(shared);
    worker_queue_clear(&q, &pool);
    worker_qpool_free(&pool);
}
