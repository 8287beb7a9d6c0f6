/* hiredis <-> libuv event glue; see redis_uv.h for why it is ours. */
#include "store/redis_uv.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>

#include "common/mem.h"

typedef struct redis_uv {
    struct redisAsyncContext *ac; /* NULL once hiredis has let go of it */
    uv_poll_t poll;
    int events; /* UV_READABLE | UV_WRITABLE, as hiredis asked */
} redis_uv_t;

static void on_poll(uv_poll_t *h, int status, int events) {
    redis_uv_t *p = h->data;
    if (status < 0) {
        /* A socket error: libuv has stopped watching. Let hiredis try both
         * directions; the read fails with the error (or the connect check does)
         * and hiredis disconnects, which runs the cleanup below (p->ac = NULL). */
        events = UV_READABLE | UV_WRITABLE;
    }
    /* Each call may free the context: check before the next. p itself lives until
     * the poll handle's close callback, which runs on a later loop iteration. */
    if (p->ac && (events & UV_READABLE)) redisAsyncHandleRead(p->ac);
    if (p->ac && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->ac);
    /* Still alive after an error (the error was transient): watch again what
     * hiredis expects, since libuv stopped. redis_conn's timeout stays the net. */
    if (status < 0 && p->ac && p->events) uv_poll_start(&p->poll, p->events, on_poll);
}

static void update(redis_uv_t *p, int add, int del) {
    p->events = (p->events | add) & ~del;
    if (p->events)
        uv_poll_start(&p->poll, p->events, on_poll);
    else
        uv_poll_stop(&p->poll);
}

static void add_read(void *d) { update(d, UV_READABLE, 0); }
static void del_read(void *d) { update(d, 0, UV_READABLE); }
static void add_write(void *d) { update(d, UV_WRITABLE, 0); }
static void del_write(void *d) { update(d, 0, UV_WRITABLE); }

static void on_closed(uv_handle_t *h) { free(h->data); }

static void cleanup(void *d) {
    redis_uv_t *p = d;
    p->ac = NULL;
    uv_close((uv_handle_t *)&p->poll, on_closed);
}

int redis_uv_attach(struct redisAsyncContext *ac, uv_loop_t *loop) {
    if (ac->ev.data) return -1;
    redis_uv_t *p = mem_calloc(1, sizeof *p);
    if (uv_poll_init(loop, &p->poll, ac->c.fd) != 0) {
        free(p);
        return -1;
    }
    p->ac = ac;
    p->poll.data = p;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
