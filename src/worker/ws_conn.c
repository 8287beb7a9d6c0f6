/* One WebSocket connection of the worker: the glue between its socket and the
 * I/O-free frame parser, its write queue (try_write first, then at most one
 * uv_write in flight, with a request lent by the worker), the closing
 * handshake, and its release in the close callback (never earlier: every path
 * that ends a connection goes through uv_close). */
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "common/log.h"
#include "common/mem.h"
#include "net/read_buffer.h"
#include "worker/worker_int.h"

#define CLOSE_GRACE_TICKS (3 * WORKER_TICKS_PER_S) /* wait for the peer's close reply */
#define WRITE_BATCH 4 /* uv_write keeps up to 4 buffers inline: no allocation */

static void start_write(worker_conn_t *c);
static void on_close(uv_handle_t *h);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

worker_req_t *worker_req_take(worker_t *w) {
    worker_req_t *r = w->req_free;
    if (!r) return mem_alloc(sizeof *r);
    w->req_free = r->next_free;
    w->req_free_count--;
    return r;
}

void worker_req_give(worker_t *w, worker_req_t *r) {
    if (w->req_free_count >= WORKER_SPARE_MAX) {
        free(r);
        return;
    }
    r->next_free = w->req_free;
    w->req_free = r;
    w->req_free_count++;
}

ws_parser_t *worker_parser_take(worker_t *w, bool deflate) {
    ws_parser_t *p = w->parser_free_count ? w->parser_free[--w->parser_free_count]
                                          : mem_alloc(sizeof *p);
    ws_parser_init(p, w->max_message);
    if (deflate) ws_parser_set_deflate(p);
    return p;
}

void worker_parser_give(worker_t *w, ws_parser_t *p) {
    ws_parser_free(p); /* an inflater, if it stopped inside a compressed message */
    if (w->parser_free_count < WORKER_SPARE_PARSERS)
        w->parser_free[w->parser_free_count++] = p;
    else
        free(p);
}

static const char *close_reason(uint16_t code) {
    switch (code) {
    case WS_CLOSE_GOING_AWAY: return "going away";
    case WS_CLOSE_POLICY: return "client too slow";
    default: return "";
    }
}

store_conn_t worker_conn_record(const worker_conn_t *c, int64_t last_ping,
                                const char ***channels) {
    const char **list = NULL;
    if (c->ix.chan_count) {
        list = mem_alloc(c->ix.chan_count * sizeof *list);
        size_t i = 0;
        for (const worker_membership_t *m = c->ix.chans; m; m = m->node_next)
            list[i++] = m->channel->name;
    }
    *channels = list;
    return (store_conn_t){c->ix.id,  c->ix.user, c->ix.session, c->w->id,
                          last_ping, list,       c->ix.chan_count, 0};
}

void worker_conn_unroute(worker_conn_t *c) {
    worker_t *w = c->w;
    if (c->indexed) {
        c->indexed = false;
        worker_index_remove(&w->index, &c->ix);
    }
    if (c->registered) {
        c->registered = false;
        store_conn_t sc = {c->ix.id, c->ix.user, c->ix.session, w->id, 0, NULL, 0, 0};
        store_conn_unregister(w->store, &sc);
    }
}

void worker_conn_free(worker_conn_t *c) {
    worker_t *w = c->w;
    w->released += c->q.cost;
    worker_queue_clear(&c->q, &w->pool);
    if (c->parser) worker_parser_give(w, c->parser);
    c->parser = NULL;
    if (w->drain_next == c) w->drain_next = c->next;
    if (c->prev)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    w->live--;
    worker_slot_release(w);
    free(c);
    worker_maybe_finish(w);
}

/* Counts the end of an open connection, once, as it stops being open. */
static void count_close(worker_conn_t *c, metrics_close_t fallback) {
    unsigned why = c->close_why ? c->close_why - 1u : (unsigned)fallback;
    METRICS_INC(conns_closed[why]);
}

void worker_conn_kill(worker_conn_t *c) {
    if (c->state == CONN_CLOSED || !c->tcp) return;
    if (c->state == CONN_OPEN) {
        c->w->open--;
        count_close(c, METRICS_CLOSE_GONE); /* no close frame: the peer vanished */
    }
    worker_conn_unroute(c);
    c->state = CONN_CLOSED;
    log_debug("disconnect", LOG_S("id", c->ix.id), LOG_S("user", c->ix.user));
    c->w->stats.disconnects++;
    uv_close((uv_handle_t *)c->tcp, on_close);
}

static void on_close(uv_handle_t *h) {
    worker_conn_t *c = h->data;
    free(h);
    worker_conn_free(c);
}

/* Reading pauses while a pong waits in the queue, i.e. while the client has not
 * read what we already owe it: whatever it sends meanwhile (more pings) stays in
 * the kernel's socket buffers, and TCP flow control holds it back, instead of
 * costing the worker memory (and CPU). Reading resumes once that pong is written.
 * Pongs are the only frames a client can make the worker queue, so this (with
 * pong coalescing) bounds what it can induce; frames the server pushes are bounded
 * by max_queued_bytes (close 1008). */
static void update_reading(worker_conn_t *c) {
    if (!c->tcp || (c->state != CONN_OPEN && c->state != CONN_CLOSING)) return;
    bool pause = c->q.pong != NULL;
    if (pause == c->read_paused) return;
    c->read_paused = pause;
    if (pause) {
        c->paused_unacked = UINT32_MAX; /* the first sweep counts as progress: one sweep of grace */
        uv_read_stop((uv_stream_t *)c->tcp);
    } else if (uv_read_start((uv_stream_t *)c->tcp, read_buffer_alloc, on_read) < 0) {
        worker_conn_kill(c);
    }
}

/* Bytes the client has yet to acknowledge: in the kernel's send queue (unsent and
 * unacknowledged) plus those libuv still holds for the write in flight. While a
 * write is in flight, libuv moving bytes into the kernel leaves the sum unchanged;
 * only the client's acknowledgements lower it, and once its receive buffer is full
 * it acknowledges only what its application reads. (The kernel's queue alone is no
 * measure: libuv refills it to the same size as the client drains it.) */
static int64_t unacked(worker_conn_t *c) {
    uv_os_fd_t fd;
    int outq = 0;
    if (uv_fileno((uv_handle_t *)c->tcp, &fd) < 0 || ioctl(fd, TIOCOUTQ, &outq) < 0) return -1;
    return (int64_t)outq + (int64_t)uv_stream_get_write_queue_size((uv_stream_t *)c->tcp);
}

void worker_conn_sweep_paused(worker_conn_t *c, uint32_t now) {
    if (!c->read_paused) return;
    int64_t n = unacked(c);
    if (n < 0) return;
    if ((uint32_t)n != c->paused_unacked) c->last_rx = now; /* it read some: alive */
    c->paused_unacked = (uint32_t)n;
}

/* The close frame is on the wire: when the peer has closed too we are done;
 * otherwise half-close so it sees EOF after our close frame (closing with unread
 * input would send an RST that can destroy the frame), and wait for its reply. */
static void on_shutdown(uv_shutdown_t *req, int status) {
    worker_conn_t *c = req->data;
    worker_req_give(c->w, c->req);
    c->req = NULL;
    if (status < 0 && c->state != CONN_CLOSED) worker_conn_kill(c);
}

static void close_written(worker_conn_t *c) {
    if (c->peer_closed) {
        worker_conn_kill(c);
        return;
    }
    c->req = worker_req_take(c->w);
    c->req->shutdown.data = c;
    if (uv_shutdown(&c->req->shutdown, (uv_stream_t *)c->tcp, on_shutdown) < 0) {
        worker_req_give(c->w, c->req);
        c->req = NULL;
        worker_conn_kill(c);
    }
}

static void on_write(uv_write_t *req, int status) {
    worker_conn_t *c = req->data;
    worker_t *w = c->w;
    size_t cost = c->q.cost;
    worker_req_give(w, c->req);
    c->req = NULL;
    c->writing = false;
    for (uint8_t i = 0; i < c->inflight && c->q.head; i++) worker_queue_pop(&c->q, &w->pool);
    c->inflight = 0;
    w->released += cost - c->q.cost;
    if (c->state == CONN_CLOSED) return;
    if (status < 0) {
        worker_conn_kill(c);
        return;
    }
    if (c->read_paused) {
        c->last_rx = worker_now(w); /* it reads: alive (see worker_conn_sweep_paused) */
        update_reading(c);
        if (c->state == CONN_CLOSED) return;
    }
    if (c->q.head)
        start_write(c);
    else if (c->state == CONN_CLOSING)
        close_written(c);
}

static void start_write(worker_conn_t *c) {
    if (c->writing || !c->q.head || !c->tcp || c->state == CONN_CLOSED) return;
    uv_buf_t bufs[WRITE_BATCH];
    unsigned n = 0;
    for (worker_qnode_t *q = c->q.head; q && n < WRITE_BATCH; q = q->next, n++)
        bufs[n] = uv_buf_init((char *)q->frame->data + q->off, (unsigned)(q->frame->len - q->off));
    c->req = worker_req_take(c->w);
    c->req->write.data = c;
    if (uv_write(&c->req->write, (uv_stream_t *)c->tcp, bufs, n, on_write) < 0) {
        worker_req_give(c->w, c->req);
        c->req = NULL;
        worker_conn_kill(c);
        return;
    }
    c->writing = true;
    c->inflight = (uint8_t)n;
}

static void slow_close(worker_conn_t *c) {
    worker_t *w = c->w;
    w->stats.slow_closes++;
    if (!c->close_why) c->close_why = METRICS_CLOSE_SLOW_CLIENT + 1;
    log_warn("closing slow client: queued bytes over max_queued_bytes", LOG_S("id", c->ix.id),
             LOG_S("user", c->ix.user), LOG_U("queued", c->q.cost),
             LOG_U("max_queued_bytes", w->max_queued));
    worker_conn_start_close(c, WS_CLOSE_POLICY, close_reason(WS_CLOSE_POLICY));
}

/* May the connection take a frame now? */
static bool can_send(const worker_conn_t *c) {
    return c->state == CONN_OPEN || (c->state == CONN_PENDING && !c->close_after_open);
}

/* The common case costs no allocation: nothing queued, the socket takes the bytes
 * at once. Returns how many were written (len: all), or -1 when the connection was
 * killed. Only when OPEN with an empty queue may bytes bypass the queue. */
static ssize_t write_direct(worker_conn_t *c, const uint8_t *data, size_t len) {
    if (c->state != CONN_OPEN || c->q.head) return 0;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int r = uv_try_write((uv_stream_t *)c->tcp, &b, 1);
    if (r >= 0) return r;
    if (r == UV_EAGAIN) return 0;
    worker_conn_kill(c);
    return -1;
}

/* Queues the unwritten part of f (from off) behind everything else. */
static void enqueue(worker_conn_t *c, worker_frame_t *f, size_t off) {
    worker_t *w = c->w;
    /* Queue first: a partly written frame must be finished before a close frame. */
    worker_queue_push(&c->q, &w->pool, f, off);
    if (c->q.cost > w->max_queued) {
        slow_close(c);
        return;
    }
    if (c->state == CONN_OPEN) start_write(c);
}

bool worker_conn_send(worker_conn_t *c, worker_frame_t *f) {
    if (!can_send(c)) return false;
    ssize_t n = write_direct(c, f->data, f->len);
    if (n < 0 || (size_t)n == f->len) return true;
    enqueue(c, f, (size_t)n);
    return true;
}

/* A final TEXT or BINARY frame (what a message becomes), compressed (RSV1) or not,
 * not a control frame nor the raw 101. */
static bool is_data_frame(const worker_frame_t *f) {
    unsigned b0 = f->len ? f->data[0] & ~0x40u : 0;
    return b0 == 0x81 || b0 == 0x82;
}

/* A pong, built on the stack and written at once when nothing is queued, so it
 * allocates only when it has to wait. A waiting pong is coalesced with the next
 * (frame.h), pauses reading until it is written (update_reading), and is not held
 * to max_queued_bytes: what a client makes us queue is bounded by those two, and a
 * 1008 close is for clients that cannot keep up with what the server sends. */
static void send_pong(worker_conn_t *c, const uint8_t *payload, size_t len) {
    worker_t *w = c->w;
    if (c->state != CONN_OPEN || len > 125) return;
    if (!c->q.head) {
        uint8_t frame[WS_FRAME_HEADER_MAX + 125];
        size_t hlen = ws_frame_header(frame, WS_OP_PONG, len);
        if (len) memcpy(frame + hlen, payload, len);
        ssize_t n = write_direct(c, frame, hlen + len);
        if (n < 0 || (size_t)n == hlen + len) return;
        if (n > 0) { /* the rest, partly written: not a pong a newer one may replace */
            worker_frame_t *f = worker_frame_raw(frame, hlen + len);
            worker_queue_push(&c->q, &w->pool, f, (size_t)n);
            worker_frame_unref(f);
            start_write(c);
            return;
        }
    }
    worker_queue_pong(&c->q, &w->pool, payload, len, c->writing ? c->inflight : 0);
    update_reading(c);
    start_write(c);
}

void worker_conn_start_close(worker_conn_t *c, uint16_t code, const char *reason) {
    worker_t *w = c->w;
    if (c->state == CONN_PENDING) {
        if (!c->close_after_open) c->close_after_open = code;
        return;
    }
    if (c->state != CONN_OPEN) return;
    c->state = CONN_CLOSING;
    w->open--;
    count_close(c, w->closing ? METRICS_CLOSE_SHUTDOWN : METRICS_CLOSE_SERVER_CLOSE);
    worker_conn_unroute(c);
    c->close_deadline = worker_now(w) + (w->closing ? WORKER_TICKS_PER_S : CLOSE_GRACE_TICKS);
    log_debug("closing", LOG_S("id", c->ix.id), LOG_S("user", c->ix.user), LOG_U("code", code));
    /* Unsent data frames of a slow client are dropped; those in flight must finish. */
    if (code == WS_CLOSE_POLICY) {
        size_t keep = c->writing ? c->inflight : 0;
        if (!keep && c->q.head && c->q.head->off) keep = 1; /* partly written by try_write */
        size_t dropped = 0, i = 0;
        for (worker_qnode_t *q = c->q.head; q; q = q->next, i++)
            if (i >= keep && is_data_frame(q->frame)) dropped++;
        METRICS_ADD(dropped[METRICS_DROP_SLOW_CLIENT], dropped);
        size_t cost = c->q.cost;
        worker_queue_truncate(&c->q, &w->pool, keep);
        w->released += cost - c->q.cost;
        update_reading(c); /* a dropped pong no longer holds reading back */
        if (c->state == CONN_CLOSED) return;
    }
    worker_frame_t *f = worker_frame_close(code, reason);
    worker_queue_push(&c->q, &w->pool, f, 0);
    worker_frame_unref(f);
    start_write(c);
}

void worker_conn_close_for(worker_conn_t *c, metrics_close_t why, uint16_t code,
                           const char *reason) {
    if (!c->close_why && (c->state == CONN_OPEN || c->state == CONN_PENDING))
        c->close_why = (uint8_t)(why + 1);
    worker_conn_start_close(c, code, reason);
}

static void store_touch(worker_conn_t *c, uint32_t now) {
    c->touch_due = false;
    c->last_touch = now;
    store_conn_touch(c->w->store, c->ix.id, (int64_t)c->last_client_ping);
}

/* lastPing: at most one store write per connection per second; a ping inside that
 * second is not lost but written by the sweep (worker_conn_flush_touch). */
static void touch(worker_conn_t *c, uint32_t now) {
    c->last_client_ping = (uint32_t)time(NULL);
    if (now - c->last_touch < WORKER_TICKS_PER_S) {
        c->touch_due = true;
        return;
    }
    store_touch(c, now);
}

void worker_conn_flush_touch(worker_conn_t *c, uint32_t now) {
    if (c->touch_due && c->state == CONN_OPEN && now - c->last_touch >= WORKER_TICKS_PER_S)
        store_touch(c, now);
}

static void handle_event(worker_conn_t *c, const ws_event_t *ev, uint32_t now) {
    worker_t *w = c->w;
    switch (ev->type) {
    case WS_EVENT_PING:
        if (c->state == CONN_OPEN) {
            touch(c, now); /* first: writing the pong may end the connection */
            send_pong(c, ev->payload, ev->payload_len);
        }
        break;
    case WS_EVENT_PONG:
        if (c->state == CONN_OPEN) touch(c, now);
        break;
    case WS_EVENT_MESSAGE: /* discarded by contract: there is no upstream path */
        break;
    case WS_EVENT_CLOSE:
        c->peer_closed = true;
        c->rx_done = true;
        if (c->state == CONN_OPEN) {
            uint16_t code = ev->close_code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : ev->close_code;
            worker_conn_close_for(c, METRICS_CLOSE_CLIENT_CLOSE, code, "");
        } else if (c->state == CONN_CLOSING && !c->q.head) {
            worker_conn_kill(c); /* our close frame is already out */
        }
        break;
    case WS_EVENT_ERROR:
        c->rx_done = true;
        log_debug("protocol error", LOG_S("id", c->ix.id), LOG_S("error", ev->error),
                  LOG_U("code", ev->close_code));
        if (c->state == CONN_OPEN) {
            w->stats.protocol_closes++;
            worker_conn_close_for(c, METRICS_CLOSE_PROTOCOL_ERROR, ev->close_code, ev->error);
        } else {
            worker_conn_kill(c);
        }
        break;
    case WS_EVENT_NONE:
        break;
    }
}

/* The parser is taken for the bytes and given back once it is at rest again (or
 * input is over for good), so only a connection that stopped mid-frame keeps one.
 * An event's payload points into the parser: it is handled before the parser goes. */
static void feed(worker_conn_t *c, uint8_t *data, size_t len) {
    worker_t *w = c->w;
    uint32_t now = worker_now(w);
    c->last_rx = now;
    size_t off = 0;
    while (off < len && !c->rx_done && (c->state == CONN_OPEN || c->state == CONN_CLOSING)) {
        if (!c->parser) c->parser = worker_parser_take(w, c->zbits != 0);
        ws_event_t ev;
        memset(&ev, 0, sizeof ev);
        off += ws_parser_feed(c->parser, data + off, len - off, &ev);
        if (ev.type == WS_EVENT_NONE) break;
        handle_event(c, &ev, now);
    }
    if (c->parser && (c->rx_done || c->state == CONN_CLOSED || ws_parser_at_rest(c->parser))) {
        worker_parser_give(w, c->parser);
        c->parser = NULL;
    }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    worker_conn_t *c = s->data;
    if (nread > 0) {
        feed(c, (uint8_t *)buf->base, (size_t)nread);
    } else if (nread < 0) {
        /* EOF or reset: nothing more will be read, so nothing more can be said. */
        worker_conn_kill(c);
    }
}

void worker_conn_open(worker_conn_t *c, uv_tcp_t *tcp, char *rest, size_t rest_len) {
    worker_t *w = c->w;
    uint32_t now = worker_now(w);
    c->tcp = tcp;
    tcp->data = c;
    c->hc = NULL;
    c->state = CONN_OPEN;
    c->last_rx = c->last_ping_tx = c->last_touch = now; /* registered with lastPing now */
    c->last_client_ping = (uint32_t)time(NULL);
    w->open++;
    w->stats.connects++;
    METRICS_INC(conns_opened);
    int r = uv_read_start((uv_stream_t *)tcp, read_buffer_alloc, on_read);
    if (r < 0) {
        worker_conn_kill(c);
        return;
    }
    start_write(c);
    if (c->close_after_open) worker_conn_start_close(c, c->close_after_open, close_reason(c->close_after_open));
    if (rest_len && c->state != CONN_CLOSED) feed(c, (uint8_t *)rest, rest_len);
}
