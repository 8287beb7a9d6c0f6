/* hiredis <-> libuv event glue; see redis_uv.h for why it is ours. */
#include "store/redis_uv.h"

#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/sds.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mem.h"

/* Output waiting to be written (redis_uv.h, "Writing"): one of hiredis's output
 * buffers (an sds: owner NULL), or a caller's command (redis_uv_send_owned). */
typedef struct out_chunk {
    struct out_chunk *next;
    const char *data;
    size_t len, off;  /* written from data + off up to data + len */
    void *owner;      /* freed with free() once written or dropped; NULL: data is an sds */
} out_chunk_t;

typedef struct redis_uv {
    struct redisAsyncContext *ac; /* NULL once hiredis has let go of it */
    uv_poll_t poll;
    uv_idle_t flush;   /* a deferred write ("Deferred writes" below) */
    int events;        /* UV_READABLE | UV_WRITABLE, as hiredis asked */
    int polled;        /* what the poll handle watches */
    bool deferred;     /* a write is due; flush does it, without the poll */
    bool flushing;     /* in on_flush */
    int handles;       /* open handles; p is freed when both have closed */
    out_chunk_t *out, *out_last; /* taken output not written yet, in order */
    size_t read_bytes;   /* read since the last idle check (redis_uv_idle) */
    uint64_t checked_ms; /* loop time of the last idle check */
} redis_uv_t;

/* Writing: an output buffer at least this big is taken from hiredis and written by
 * us; smaller ones hiredis writes itself (when nothing taken is waiting). */
#define TAKE_MIN (64u << 10)
#define IOV_CHUNKS 16

/* Reading (redis_uv.h, "Reading"): at least this much room before each read(). */
#define READ_MIN_ROOM (16u << 10)
#define READ_MAX (16u << 20) /* per read(): sdsIncrLen takes an int, and a bounded turn */

/* One read() straight into the reader's buffer, then redisAsyncHandleRead, which
 * parses and answers the callbacks (its own read, 16 KiB into a stack buffer, then
 * finds the socket drained, or takes what came since). Anything unusual (still
 * connecting, an error seen, EOF, a failed read) is left to redisAsyncHandleRead
 * alone, so hiredis keeps its own error handling and disconnect path. */
static void handle_read(redis_uv_t *p) {
    redisAsyncContext *ac = p->ac;
    redisContext *c = &ac->c;
    redisReader *r = c->reader;
    if ((c->flags & REDIS_CONNECTED) && !c->err && !r->err) {
        sds buf = sdsMakeRoomFor(r->buf, READ_MIN_ROOM);
        if (buf) { /* else out of memory: hiredis reports it its way, below */
            r->buf = buf;
            size_t room = sdsavail(buf);
            if (room > READ_MAX) room = READ_MAX;
            ssize_t n = read(c->fd, buf + sdslen(buf), room);
            if (n > 0) {
                sdsIncrLen(buf, (int)n);
                r->len = sdslen(buf);
                p->read_bytes += (size_t)n;
            }
            /* n <= 0: EAGAIN, EOF or an error, which hiredis's read meets again */
        }
    }
    redisAsyncHandleRead(ac);
}

static void chunk_free(out_chunk_t *ch) {
    if (ch->owner)
        free(ch->owner);
    else
        sdsfree((sds)ch->data);
    free(ch);
}

static void out_free(redis_uv_t *p) {
    while (p->out) {
        out_chunk_t *ch = p->out;
        p->out = ch->next;
        chunk_free(ch);
    }
    p->out_last = NULL;
}

static void out_push(redis_uv_t *p, const char *data, size_t len, void *owner) {
    out_chunk_t *ch = mem_alloc(sizeof *ch);
    *ch = (out_chunk_t){NULL, data, len, 0, owner};
    if (p->out_last)
        p->out_last->next = ch;
    else
        p->out = ch;
    p->out_last = ch;
}

/* hiredis's output buffer joins the queue (it gets a fresh empty one). */
static void take_obuf(redis_uv_t *p) {
    redisContext *c = &p->ac->c;
    sds fresh = sdsempty();
    if (!fresh) log_fatal("out of memory (sdsempty)");
    out_push(p, c->obuf, sdslen(c->obuf), NULL);
    c->obuf = fresh;
}

/* A write failed for good: hand hiredis the unwritten rest of the oldest chunk
 * as its output buffer, so that its own write meets the error and it disconnects
 * the usual way (the bytes formatted since are dropped with the connection). */
static void out_fail(redis_uv_t *p) {
    redisContext *c = &p->ac->c;
    out_chunk_t *ch = p->out;
    sds rest = sdsnewlen(ch->data + ch->off, ch->len - ch->off);
    if (!rest) log_fatal("out of memory (sdsnewlen)");
    sdsfree(c->obuf);
    c->obuf = rest;
    out_free(p);
    redisAsyncHandleWrite(p->ac);
}

/* Writable: what hiredis formatted goes out in order, everything taken first. A
 * big output buffer is taken (hiredis gets a new empty one) and written from an
 * offset: hiredis 0.14 would move the unwritten rest of its buffer to the front
 * after every partial write, a pass over up to the whole command each time. */
static void handle_write(redis_uv_t *p) {
    redisAsyncContext *ac = p->ac;
    redisContext *c = &ac->c;
    if (!(c->flags & REDIS_CONNECTED) || c->err) {
        redisAsyncHandleWrite(ac); /* the connect completes here; hiredis's own path */
        return;
    }
    if (sdslen(c->obuf) && (p->out || sdslen(c->obuf) >= TAKE_MIN)) take_obuf(p);
    while (p->out) {
        struct iovec iov[IOV_CHUNKS];
        int n = 0;
        size_t want = 0;
        for (out_chunk_t *ch = p->out; ch && n < IOV_CHUNKS; ch = ch->next, n++) {
            iov[n].iov_base = (void *)(ch->data + ch->off);
            iov[n].iov_len = ch->len - ch->off;
            want += iov[n].iov_len;
        }
        ssize_t w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            out_fail(p);
            return;
        }
        size_t left = (size_t)w;
        while (p->out && left >= p->out->len - p->out->off) {
            out_chunk_t *ch = p->out;
            left -= ch->len - ch->off;
            p->out = ch->next;
            chunk_free(ch);
        }
        if (!p->out) p->out_last = NULL;
        if (p->out) p->out->off += left;
        if ((size_t)w < want) return; /* the socket is full: wait for writable */
    }
    /* Nothing taken is left: hiredis writes what it has, or stops watching. */
    redisAsyncHandleWrite(ac);
}

static void on_poll(uv_poll_t *h, int status, int events);

/* Watches what hiredis asked for, and writable while taken output waits, less a
 * deferred write. libuv's uv_poll_start removes the descriptor from epoll and adds
 * it back, two system calls, so the poll handle is touched only when that set
 * changes. */
static void apply(redis_uv_t *p) {
    int want = p->events | (p->out ? UV_WRITABLE : 0);
    if (p->deferred) want &= ~UV_WRITABLE;
    if (want == p->polled) return;
    p->polled = want;
    if (want)
        uv_poll_start(&p->poll, want, on_poll);
    else
        uv_poll_stop(&p->poll);
}

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
    if (p->ac && (events & UV_READABLE)) handle_read(p);
    if (p->ac && (events & UV_WRITABLE)) handle_write(p);
    /* Still alive after an error (the error was transient): watch again what
     * hiredis expects, since libuv stopped. redis_conn's timeout stays the net. */
    if (status < 0 && p->ac) apply(p);
}

/* Deferred writes: commands added on a connected context are written from an idle
 * callback at the start of the next loop iteration, before it polls, instead of
 * waiting for the poll to report the socket writable: the commands of one turn
 * still go in one write, and a write that completes at once (the usual case) needs
 * no change to what epoll watches. A write that does not complete is watched as
 * before. */
static void on_flush(uv_idle_t *h) {
    redis_uv_t *p = h->data;
    uv_idle_stop(h);
    if (!p->deferred || !p->ac) return;
    p->deferred = false;
    p->flushing = true;
    handle_write(p); /* may free the context (p->ac = NULL) */
    p->flushing = false;
    if (p->ac) apply(p);
}

static void defer_write(redis_uv_t *p) {
    /* While connecting, writable is how hiredis learns the connect finished. */
    if (!p->flushing && (p->ac->c.flags & REDIS_CONNECTED)) {
        p->deferred = true;
        uv_idle_start(&p->flush, on_flush);
    } else {
        p->deferred = false;
    }
    apply(p);
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
    defer_write(p);
}

static void del_write(void *d) {
    redis_uv_t *p = d;
    p->events &= ~UV_WRITABLE;
    if (!p->out) { /* taken output still waiting keeps its write due */
        p->deferred = false;
        uv_idle_stop(&p->flush);
    }
    apply(p);
}

static void on_closed(uv_handle_t *h) {
    redis_uv_t *p = h->data;
    if (--p->handles == 0) free(p);
}

static void cleanup(void *d) {
    redis_uv_t *p = d;
    out_free(p);
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
    /* Never drop the reader's buffer when it empties (hiredis would, above 16 KiB, at
     * the next read: so every big reply grew a fresh buffer from nothing);
     * redis_uv_idle shrinks it once it stays idle instead. */
    ac->c.reader->maxbuf = 0;
    ac->ev.data = p;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}

void redis_uv_idle(struct redisAsyncContext *ac, uint64_t now_ms) {
    redis_uv_t *p = ac->ev.data;
    if (!p || !p->ac || now_ms - p->checked_ms < REDIS_UV_IDLE_MS) return;
    p->checked_ms = now_ms;
    size_t read_bytes = p->read_bytes;
    p->read_bytes = 0;
    redisReader *r = ac->c.reader;
    /* Only between replies (every byte parsed, no reply under construction): then
     * nothing points into the buffer. */
    if (r->err || !r->buf || r->pos != r->len || r->ridx != -1) return;
    size_t alloc = sdsalloc(r->buf);
    if (alloc <= REDIS_UV_KEEP_BYTES || read_bytes >= alloc) return;
    sds fresh = sdsempty();
    if (!fresh) log_fatal("out of memory (sdsempty)");
    sdsfree(r->buf);
    r->buf = fresh;
    r->pos = r->len = 0;
    mem_note_released(alloc); /* for the worker's next trim (mem.h) */
}

int redis_uv_send_owned(struct redisAsyncContext *ac, void (*fn)(struct redisAsyncContext *,
                                                                 void *, void *),
                        void *privdata, void *owner, const char *cmd, size_t len) {
    redis_uv_t *p = ac->ev.data;
    redisContext *c = &ac->c;
    if (!p || !p->ac || !(c->flags & REDIS_CONNECTED) || c->err) {
        free(owner);
        return -1;
    }
    /* Its reply callback queued like any command's, with no byte appended: hiredis
     * only reads the command's name from cmd (to tell SUBSCRIBE and MONITOR apart)
     * before appending len = 0 bytes of it. */
    if (redisAsyncFormattedCommand(ac, fn, privdata, cmd, 0) != REDIS_OK) {
        free(owner);
        return -1;
    }
    if (sdslen(c->obuf)) take_obuf(p); /* what came before goes first */
    out_push(p, cmd, len, owner);
    defer_write(p);
    return 0;
}
