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
