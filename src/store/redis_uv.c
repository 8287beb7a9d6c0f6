/* hiredis <-> libuv event glue; see redis_uv.h for why it is ours. */
#include "store/redis_uv.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdlib.h>

#include "common/mem.h"

typedef struct redis_uv {
    struct redisAsyncContext *ac; /* NULL once hiredis has let go of it */
    uv_poll_t poll;
    uv_idle_t flush;   /* a deferred write (below) */
    int events;        /* UV_READABLE | UV_WRITABLE, as hiredis asked */
    int polled;        /* what the poll handle watches */
    bool deferred;     /* hiredis asked to write; flush will, without the poll */
    bool flushing;     /* in on_flush */
    int handles;       /* open handles; p is freed when both have closed */
} redis_uv_t;

/* Watches what hiredis asked for, less a deferred write. libuv's uv_poll_start
 * removes the descriptor from epoll and adds it back, two system calls, so the
 * poll handle is touched only when that set changes. */
static void apply(redis_uv_t *p);

static void on_poll(uv_poll_t *h, int status, int events) {
    redis_uv_t *p = h->data;
    if (status < 0) {
        /* A socket error: libuv has stopped watching. Let hiredis try both
         * directions; the read fails with the error (or the connect check does)
         * and hiredis disconnects, which runs the cleanup below (p->ac = NULL). */
        events = UV_READABLE | UV_WRITABLE;
        p->polled = 0;
    }
    /* Each call may free the context: check before the next. p itself lives until
     * the handles' close callbacks, which run on a later loop iteration. */
    if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
    /* Still alive after an error (the error was transient): watch again what
     * hiredis expects, since libuv stopped. redis_conn's timeout stays the net. */
    if (status < 0 && p->ac) apply(p);
}

static void apply(redis_uv_t *p) {
    int want = p->deferred ? p->events & ~UV_WRITABLE : p->events;
    if (want == p->polled) return;
    p->polled = want;
    if (want)
        uv_poll_start(&p->poll, want, on_poll);
    else
        uv_poll_stop(&p->poll);
}

/* Commands added on a connected context are written from an idle callback at the
 * start of the next loop iteration, before it polls, instead of waiting for the
 * poll to report the socket writable: the commands of one turn still go in one
 * write, and a write that completes at once (the usual case) needs no change to
 * what epoll watches. A write that does not complete is watched as before. */
static void on_flush(uv_idle_t *h) {
    redis_uv_t *p = h->data;
    uv_idle_stop(h);
    if (!p->deferred || !p->ac) return;
    p->deferred = false;
    p->flushing = true;
    redisAsyncHandleWrite(p->ac); /* may free the context (p->ac = NULL) */
    p->flushing = false;
    if (p->ac) apply(p);
}

static void add_read(void *d) {
    redis_uv_t *p = d;
    p->events |= UV_READABLE;
    apply(p);
}

static void del_read(void *d) {
    redis_uv_t *p = d;
    p->events &= ~UV_READABLE;
    apply(p);
}

static void add_write(void *d) {
    redis_uv_t *p = d;
    p->events |= UV_WRITABLE;
    /* While connecting, writable is how hiredis learns the connect finished. */
    if (!p->flushing && (p->ac->c.flags & REDIS_CONNECTED)) {
        p->deferred = true;
        uv_idle_start(&p->flush, on_flush);
    } else {
        p->deferred = false;
    }
    apply(p);
}

static void del_write(void *d) {
    redis_uv_t *p = d;
    p->events &= ~UV_WRITABLE;
    p->deferred = false;
    uv_idle_stop(&p->flush);
    apply(p);
}

static void on_closed(uv_handle_t *h) {
    redis_uv_t *p = h->data;
    if (--p->handles == 0) free(p);
}

static void cleanup(void *d) {
    redis_uv_t *p = d;
    p->ac = NULL;
    p->deferred = false;
    uv_close((uv_handle_t *)&p->poll, on_closed);
    uv_close((uv_handle_t *)&p->flush, on_closed);
}

int redis_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop) {
    if (ac->ev.data) return -1;
    redis_uv_t *p = mem_calloc(1, sizeof *p);
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    uv_idle_init(loop, &p->flush);
    p->handles = 2;
    p->ac = ac;
    p->poll.data = p;
    p->flush.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
