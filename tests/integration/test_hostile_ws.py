"""Hostile WebSocket clients against the worker's memory (docs/architecture.md,
"Memory per connection"): a client that floods pings and never reads must not make
the worker queue one pong per ping; reading pauses instead (TCP pushes back on the
client), the worker's RSS stays within max_queued_bytes plus a constant, and comes
back once the client is gone. Also: a paused client that still reads is not taken
for a dead one, and one that reads nothing is released at the ping timeout.

RSS bounds are checked on the plain build only (ASan's quarantine and shadow memory
make RSS meaningless); the floods still run under ASan, and LeakSanitizer checks at
exit.
"""
import socket
import struct
import threading
import time

import dsock_helpers as h
from test_robustness import (fd_count, is_sanitized, make_jwt, reset_close, rss_kb,
                             small_rcvbuf_ws, wait_fds)

MAX_QUEUED = 1 << 20
# What the worker may hold beyond max_queued_bytes while one hostile client floods
# it and is then pushed data until it is closed: its connection record, one pong,
# the message being delivered, allocator slack. The documented bound per
# connection is max_queued_bytes + about 1 KiB; the rest is measurement margin.
SLACK_KB = 4096
# After the client is gone: back to the start, within allocator noise.
RETURN_KB = 1024


class Flood:
    """Sends empty masked pings in 64 KiB batches on a thread, never reading, until
    a send blocks for `block_s` (the server stopped reading), the socket fails, or
    `seconds` pass."""

    def __init__(self, sock, seconds=6.0, block_s=1.0):
        self.sock = sock
        self.seconds = seconds
        self.block_s = block_s
        self.pings = 0
        self.ended = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        ping = bytes([0x89, 0x80]) + b"\x11\x22\x33\x44"
        batch = ping * 10923
        self.sock.settimeout(self.block_s)
        end = time.monotonic() + self.seconds
        try:
            while time.monotonic() < end:
                try:
                    n = self.sock.send(batch)
                except socket.timeout:
                    self.ended = "blocked"
                    return
                except OSError as e:
                    self.ended = f"error {e}"
                    return
                self.pings += n // len(ping)
            self.ended = "time cap"
        finally:
            if self.ended is None:
                self.ended = "exception"

    def start(self):
        self.thread.start()
        return self

    def running(self):
        return self.thread.is_alive()


def peak_rss_while(pid, cond, timeout):
    peak = rss_kb(pid)
    deadline = time.monotonic() + timeout
    while cond() and time.monotonic() < deadline:
        peak = max(peak, rss_kb(pid))
        time.sleep(0.02)
    return max(peak, rss_kb(pid))


def warm_up(dep, user):
    """Store connection, allocator arenas, one delivery through a backed-up queue:
    the start figure then includes what any first client costs."""
    ws = small_rcvbuf_ws(dep.worker(), f"jwt={make_jwt(dep, user)}")
    api = h.KeepAliveApi(dep.apis[0], dep.token)
    try:
        for _ in range(8):
            api.send(b"w" * 16384, user=user, type="binary").expect(200)
    finally:
        api.close()
    assert ws.is_open()
    ws.close()


def test_ping_flood_from_a_client_that_never_reads(make_deployment):
    dep = make_deployment(worker_opts={"max-queued-bytes": MAX_QUEUED})
    pid = dep.worker_procs[0].pid
    sanitized = is_sanitized(pid)
    warm_up(dep, h.new_id())
    time.sleep(1.5)  # the sweep trims what the warm-up released
    wait_fds(pid, fd_count(pid))
    base_fds = fd_count(pid)
    base = rss_kb(pid)

    user = h.new_id()
    ws = small_rcvbuf_ws(dep.worker(), f"jwt={make_jwt(dep, user)}")
    try:
        # 1. The flood: the worker stops reading once a pong has to wait, so the
        # client's sends block after the kernel buffers fill, and nothing grows.
        flood = Flood(ws.sock).start()
        peak = peak_rss_while(pid, flood.running, 15)
        flood.thread.join(10)
        grown = peak - base
        print(f"ping flood: {flood.pings} pings, ended: {flood.ended}; RSS {base} kB -> "
              f"peak {peak} kB (+{grown} kB)")
        if not sanitized:
            assert grown <= MAX_QUEUED // 1024 + SLACK_KB, \
                f"RSS grew by {grown} kB under a ping flood ({flood.pings} pings, {flood.ended})"
        assert flood.ended == "blocked", \
            f"the worker kept reading a client it owes a pong ({flood.pings} pings, {flood.ended})"

        # 2. Server data on top: the queue is charged what it pins and the client,
        # which still reads nothing, is closed 1008 at max_queued_bytes.
        api = h.KeepAliveApi(dep.apis[0], dep.token)
        try:
            for i in range(2000):
                r = api.send(struct.pack("!I", i) + b"d" * 16380, user=user, type="binary")
                if r.expect(200)["connections"] == 0:
                    break
                if not sanitized:
                    peak = max(peak, rss_kb(pid))
            else:
                raise AssertionError("never closed as slow")
        finally:
            api.close()
        grown = peak - base
        print(f"then data until the 1008 close: peak {peak} kB (+{grown} kB)")
        if not sanitized:
            assert grown <= MAX_QUEUED // 1024 + SLACK_KB, f"RSS grew by {grown} kB"
    finally:
        reset_close(ws.sock)

    # 3. Gone: file descriptors and memory come back (the sweep trims the heap).
    wait_fds(pid, base_fds, timeout=10, what="the hostile client's socket to be closed")
    if not sanitized:
        h.wait_until(lambda: rss_kb(pid) - base <= RETURN_KB, 5,
                     what=f"RSS to come back near {base} kB (now {rss_kb(pid)} kB)")
        print(f"after the client left: {rss_kb(pid)} kB (+{rss_kb(pid) - base} kB)")
    # The worker still serves.
    ok = h.ws_connect(dep.worker(), f"jwt={make_jwt(dep, h.new_id())}")
    assert ok.is_open()
    ok.close()


def test_flooding_client_that_reads_again_gets_the_latest_pong(make_deployment):
    """Pongs are coalesced, not lost: after a flood the client reads everything and
    the last pong echoes its last ping (RFC 6455 5.5.3); the connection still works."""
    dep = make_deployment(worker_opts={"max-queued-bytes": MAX_QUEUED})
    user = h.new_id()
    ws = small_rcvbuf_ws(dep.worker(), f"jwt={make_jwt(dep, user)}", rcvbuf=65536)
    try:
        ws.sock.settimeout(1.0)
        n = 0
        blocked = False
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and not blocked:
            batch = b"".join(h.encode_frame(h.OP_PING, struct.pack("!Q", n + i))
                             for i in range(4096))
            try:
                ws.sock.sendall(batch)
                n += 4096
            except socket.timeout:
                blocked = True  # part of the batch may be out: the last ping is unknown
        assert blocked, "the worker never stopped reading"
        # Read everything; then one more ping with a known payload.
        last = None
        count = 0
        quiet = time.monotonic() + 15
        while time.monotonic() < quiet:
            try:
                f = ws.recv_frame(1.0)
            except TimeoutError:
                break
            if f.opcode == h.OP_PONG:
                last = f.payload
                count += 1
            elif f.opcode == h.OP_CLOSE:
                raise AssertionError(f"closed: {f.close_code}")
        # Every ping reached the worker once it read again (a partly sent last
        # batch included); the last pong answers the last ping it got, so it is no
        # older than the last whole batch.
        assert last is not None
        print(f"{n} to {n + 4096} pings, {count} pongs, last pong for ping "
              f"{struct.unpack('!Q', last)[0]}")
        assert struct.unpack("!Q", last)[0] >= n - 1, (struct.unpack("!Q", last)[0], n)
        ws.sock.settimeout(5)
        assert ws.is_open()
        api = h.KeepAliveApi(dep.apis[0], dep.token)
        try:
            assert api.send(b"after", user=user, type="text").expect(200)["connections"] == 1
        finally:
            api.close()
        assert ws.recv_data() == b"after"
    finally:
        ws.close()


def test_paused_client_that_reads_slowly_is_not_taken_for_dead(make_deployment):
    """A live client that reads slowly and pings now and then: its pongs wait behind
    data it has not read yet, so reading pauses, for longer than ping_timeout; we
    then see none of its pings, but it reads (it acknowledges our bytes), so the
    ping timeout must not close it."""
    dep = make_deployment(worker_opts={"max-queued-bytes": 16 << 20, "ping-interval": 1,
                                       "ping-timeout": 2})
    user = h.new_id()
    ws = small_rcvbuf_ws(dep.worker(), f"jwt={make_jwt(dep, user)}")
    api = h.KeepAliveApi(dep.apis[0], dep.token)
    try:
        # More than the kernel's socket buffers hold (tcp_wmem tops at 4 MiB), well
        # under max_queued_bytes; then a ping: its pong waits behind the data in the
        # queue, and reading pauses.
        for i in range(8):
            api.send(b"s" * (1 << 20), user=user, type="binary").expect(200)
        time.sleep(0.3)
        ws.ping(b"first")
        # Read slowly, a message every 0.7 s (over 5 s, more than twice ping_timeout),
        # and ping after each.
        got = 0
        start = time.monotonic()
        while got < 8:
            assert time.monotonic() - start < 30, f"only {got} messages"
            f = ws.recv_frame(10)
            if f.opcode == h.OP_CLOSE:
                raise AssertionError(f"closed while reading (code {f.close_code}) after "
                                     f"{time.monotonic() - start:.1f} s, {got} messages")
            if f.opcode == h.OP_PING:
                ws.pong(f.payload)
            elif f.opcode == h.OP_BIN:
                got += 1
                time.sleep(0.7)
                ws.ping(struct.pack("!I", got))
        assert time.monotonic() - start > 4
        assert ws.is_open()
    finally:
        api.close()
        ws.close()


def test_paused_client_that_reads_nothing_is_released(make_deployment):
    """A client that floods pings and reads nothing at all is not kept forever: with
    reading paused, its liveness is its reading, and after ping_timeout without it
    the worker closes the connection (and its socket after the closing grace)."""
    dep = make_deployment(worker_opts={"ping-interval": 1, "ping-timeout": 2})
    pid = dep.worker_procs[0].pid
    ws0 = h.ws_connect(dep.worker(), f"jwt={make_jwt(dep, h.new_id())}")
    ws0.close()
    time.sleep(0.3)
    base = fd_count(pid)
    ws = small_rcvbuf_ws(dep.worker(), f"jwt={make_jwt(dep, h.new_id())}")
    try:
        flood = Flood(ws.sock, seconds=4).start()
        flood.thread.join(10)
        assert flood.ended == "blocked", flood.ended
        wait_fds(pid, base, timeout=12, what="the non-reading client's socket to be closed")
    finally:
        reset_close(ws.sock)


def test_memory_of_released_queues_goes_back(make_deployment):
    """Many small queued deliveries (a user's 20 connections that read nothing get
    8000 messages of 1000 bytes: beyond what the kernel's socket buffers absorb, about
    100 000 queue nodes and 8000 frames), then the clients reset: the worker
    gives the memory back to the kernel (malloc_trim after large releases), instead
    of keeping it in malloc's free lists."""
    dep = make_deployment()
    pid = dep.worker_procs[0].pid
    user = h.new_id()
    q = f"jwt={make_jwt(dep, user)}"
    warm = [small_rcvbuf_ws(dep.worker(), q) for _ in range(20)]
    for ws in warm:
        reset_close(ws.sock)
    time.sleep(1.5)
    base_fds = fd_count(pid)
    base = rss_kb(pid)
    socks = [small_rcvbuf_ws(dep.worker(), q) for _ in range(20)]
    try:
        api = h.KeepAliveApi(dep.apis[0], dep.token)
        try:
            for i in range(8000):
                assert api.send(b"m" * 1000, user=user, type="text").expect(200)["connections"] \
                    == 20
        finally:
            api.close()
        # Over Redis the worker queues a message after the API answered it (the
        # PUBLISH is read asynchronously): give the last ones time to arrive.
        deadline = time.monotonic() + 5
        while rss_kb(pid) - base <= 8 * 1024 and time.monotonic() < deadline:
            time.sleep(0.05)
        grown = rss_kb(pid) - base
        print(f"20 non-reading connections, 8000 messages: RSS +{grown} kB")
    finally:
        for ws in socks:
            reset_close(ws.sock)
    wait_fds(pid, base_fds, timeout=10)
    if not is_sanitized(pid):
        assert grown > 8 * 1024, f"the queues did not grow ({grown} kB): the test tests nothing"
        h.wait_until(lambda: rss_kb(pid) - base <= RETURN_KB * 2, 5,
                     what=f"RSS to come back near {base} kB (now {rss_kb(pid)} kB)")
        print(f"after they left: +{rss_kb(pid) - base} kB")
