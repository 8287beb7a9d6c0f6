"""Robustness of the worker role and the HTTP server under hostile or unlucky
clients: resets at every stage of a connection's life, clients that never read,
connection limits, slow requests, pipelining, and resource use over many
connect/close cycles (file descriptors and RSS must come back). Every test is
bounded in time; under the sanitizer build the teardown also checks that no
AddressSanitizer/LeakSanitizer report was written.
"""
import os
import socket
import struct
import threading
import time

import jwt as pyjwt
import pytest

import dsock_helpers as h

# ---------------------------------------------------------------------------
# Local helpers


def make_jwt(dep, user, session=None, ttl=600):
    claims = {"sub": user, "exp": int(time.time()) + ttl}
    if session:
        claims["sid"] = session
    return pyjwt.encode(claims, dep.jwt_secret, algorithm="HS256")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def is_sanitized(pid):
    with open(f"/proc/{pid}/maps") as f:
        return any("libasan" in line or "libclang_rt.asan" in line for line in f)


def reset_close(sock):
    """Closes with an RST (SO_LINGER 0): the abrupt exit of a crashed client, and no
    TIME_WAIT left on this side."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def wait_fds(pid, at_most, timeout=8.0, what="file descriptors to be released"):
    return h.wait_until(lambda: fd_count(pid) <= at_most, timeout, what=f"{what} "
                        f"(<= {at_most}, now {fd_count(pid)})")


def small_rcvbuf_ws(addr, query, rcvbuf=4096, timeout=5.0):
    """A WebSocket on a socket with a tiny receive buffer: once it stops reading,
    the server's writes back up after a little."""
    req, key = h.handshake_request(addr, query)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(addr)
    sock.sendall(req)
    res, rest = h.read_http_response(sock, timeout=timeout)
    assert res.status == 101, res
    return h.RawWS(sock, rest, res)


def conn_ids(dep, user, api=0):
    body = dep.api(api).info(user=user).expect(200)
    return [c["id"] for c in body["connections"]]


def http_get(path_query):
    return (f"GET {path_query} HTTP/1.1\r\nHost: t\r\n\r\n").encode()


# ---------------------------------------------------------------------------
# HTTP server


def test_pipelined_request_split_after_a_pending_one(cluster):
    """Request 1 complete plus the first half of request 2 in one segment: while
    request 1 is with the store, reading is paused; after its answer the server must
    read again to get the rest of request 2 (it used to wait for more bytes without
    reading, and the connection hung until the idle timeout)."""
    addr = cluster.apis[0]
    user = h.new_id()
    q = f"/info?token={cluster.token}&user={user}"
    second = http_get(q + "&session=s2")
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(http_get(q) + second[:10])
        r1, rest = h.read_http_response(s, timeout=3)
        assert r1.status == 200, r1
        time.sleep(0.1)
        s.sendall(second[10:])
        r2, rest = h.read_http_response(s, rest, timeout=3)
        assert r2.status == 200, r2
        assert r2.response().json["success"] is True


def test_pipelined_requests_with_store_calls_answered_in_order(cluster):
    addr = cluster.apis[0]
    user = h.new_id()
    reqs = b""
    for i in range(20):
        body = f"m{i}".encode()
        reqs += (f"POST /send?token={cluster.token}&user={user}&type=text HTTP/1.1\r\n"
                 f"Host: t\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    reqs += http_get(f"/info?token={cluster.token}&user={user}")
    ws = cluster.connect(user)
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(reqs)
        rest = b""
        for i in range(20):
            r, rest = h.read_http_response(s, rest, timeout=5)
            assert r.status == 200, (i, r)
            assert r.response().json["connections"] == 1
        r, rest = h.read_http_response(s, rest, timeout=5)
        assert r.status == 200 and len(r.response().json["connections"]) == 1
    for i in range(20):
        assert ws.recv_data() == f"m{i}".encode()
    ws.close()


def test_slowloris_headers_are_cut_at_idle_timeout(make_deployment):
    """Header bytes trickling in do not extend the deadline: the request line and
    headers get idle_timeout in all."""
    dep = make_deployment(api_opts={"idle-timeout": 1})
    addr = dep.apis[0]
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(b"GET /info?token=x&user=u HTTP/1.1\r\nHost: t\r\n")
        start = time.monotonic()
        closed = False
        while time.monotonic() - start < 5:
            try:
                s.sendall(b"X-A: b\r\n")
            except OSError:
                closed = True
                break
            s.settimeout(0.1)
            try:
                if s.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except OSError:
                closed = True
                break
        elapsed = time.monotonic() - start
    assert closed, "a trickling client was never cut off"
    assert elapsed < 3.0, f"cut off only after {elapsed:.1f}s (idle_timeout 1s)"


def test_idle_keepalive_connections_beyond_max_connections(make_deployment):
    """At max_connections a new connection gets a 503 TOO_MANY_CONNECTIONS and is
    closed; the held connections keep working, and a slot freed is usable again."""
    dep = make_deployment(api_opts={"max-connections": 4})
    addr = dep.apis[0]
    q = http_get(f"/info?token={dep.token}&user={h.new_id()}")
    held = []
    try:
        for _ in range(4):
            s = socket.create_connection(addr, timeout=5)
            s.sendall(q)
            r, _ = h.read_http_response(s, timeout=3)
            assert r.status == 200
            held.append(s)
        extra = socket.create_connection(addr, timeout=5)
        r, _ = h.read_http_response(extra, timeout=3)
        assert r.status == 503, r
        assert h.json_error(r)["errorCode"] == "TOO_MANY_CONNECTIONS"
        assert h.wait_closed(extra, 3)
        extra.close()
        for s in held:  # still served
            s.sendall(q)
            assert h.read_http_response(s, timeout=3)[0].status == 200
        held.pop().close()

        def slot_free():
            with socket.create_connection(addr, timeout=3) as s2:
                s2.sendall(q)
                return h.read_http_response(s2, timeout=3)[0].status == 200
        h.wait_until(slot_free, 5, what="a freed slot to be usable")
    finally:
        for s in held:
            s.close()


@pytest.mark.redis_only
def test_client_leaving_while_its_request_is_pending(make_deployment, make_redis):
    """Redis paused: requests wait in the store; their clients reset and leave. When
    the store answers (here: times out), the answers are dropped and every
    connection is freed."""
    redis = make_redis()
    dep = make_deployment(redis=redis, api_opts={"redis-timeout-ms": 400})
    pid = dep.api_procs[0].pid
    base = fd_count(pid)
    redis.pause()
    try:
        socks = []
        for i in range(20):
            s = socket.create_connection(dep.apis[0], timeout=5)
            s.sendall(http_get(f"/info?token={dep.token}&user=u{i}"))
            socks.append(s)
        time.sleep(0.1)
        for i, s in enumerate(socks):
            if i % 2:
                reset_close(s)
            else:
                s.shutdown(socket.SHUT_WR)  # half-close: a FIN while pending
                s.close()
        time.sleep(0.6)
    finally:
        redis.resume()
    wait_fds(pid, base + 1)  # +1: the store may have reconnected
    assert dep.api().claim(user="u").status == 200


# ---------------------------------------------------------------------------
# WebSocket connection limit


def test_websocket_over_max_connections_refused_503(make_deployment):
    dep = make_deployment(worker_opts={"max-connections": 3})
    addr = dep.worker()
    held = [dep.connect(h.new_id()) for _ in range(3)]
    try:
        user = h.new_id()
        claim = dep.claim(user)
        res, ws = h.ws_handshake(addr, f"claim={claim}")
        assert ws is None and res.status == 503, res
        assert h.json_error(res)["errorCode"] == "TOO_MANY_CONNECTIONS"
        assert res.headers.get("retry-after") == "1"
        res, ws = h.ws_handshake(addr, f"jwt={make_jwt(dep, user)}")
        assert ws is None and res.status == 503, res
        assert h.json_error(res)["errorCode"] == "TOO_MANY_CONNECTIONS"
        # The open ones are untouched, and the refused claim was not consumed.
        assert all(w.is_open() for w in held)
        held[0].send_close(1000)
        held[0].expect_close()
        held.pop(0).close()

        def connects():
            r, w = h.ws_handshake(addr, f"claim={claim}")
            if w:
                held.append(w)
            return r.status == 101
        h.wait_until(connects, 5, what="a freed slot to take the refused claim")
        assert conn_ids(dep, user)
    finally:
        for w in held:
            w.close()


def test_concurrent_connects_never_exceed_max_connections(make_deployment):
    dep = make_deployment(worker_opts={"max-connections": 5})
    addr = dep.worker()
    claims = [dep.claim(h.new_id()) for _ in range(12)]
    results = [None] * len(claims)
    socks = []

    def go(i):
        req, _ = h.handshake_request(addr, f"claim={claims[i]}")
        s = socket.create_connection(addr, timeout=5)
        socks.append(s)
        s.sendall(req)
        results[i] = h.read_http_response(s, timeout=5)[0].status

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(claims))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    try:
        assert sorted(results) == [101] * 5 + [503] * 7, results
    finally:
        for s in socks:
            s.close()


# ---------------------------------------------------------------------------
# Slow readers, ordering under backpressure


def test_slow_reader_closed_1008_after_an_ordered_prefix(make_deployment):
    dep = make_deployment(worker_opts={"max-queued-bytes": 65536})
    user = h.new_id()
    ws = small_rcvbuf_ws(dep.worker(), f"jwt={make_jwt(dep, user)}")
    api = h.KeepAliveApi(dep.apis[0], dep.token)
    chunk = 16384
    sent = 0
    try:
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:
            body = struct.pack("!I", sent) + b"x" * (chunk - 4)
            r = api.send(body, user=user, type="binary").expect(200)
            if r["connections"] == 0:
                break
            sent += 1
        else:
            raise AssertionError(f"never closed as slow after {sent} messages")
    finally:
        api.close()
    # What it gets: messages 0..k-1 whole and in order, then the 1008 close.
    got = 0
    deadline = time.monotonic() + 8
    while True:
        f = ws.recv_frame(max(0.01, deadline - time.monotonic()))
        if f.opcode == h.OP_CLOSE:
            assert f.close_code == 1008, f
            break
        if f.opcode in (h.OP_PING, h.OP_PONG):
            continue
        assert f.opcode == h.OP_BIN and f.fin, f
        assert len(f.payload) == chunk and struct.unpack("!I", f.payload[:4])[0] == got
        got += 1
    assert 0 < got <= sent
    assert ws.wait_eof(3)
    ws.close()


def test_slow_reader_that_never_reads_is_released(make_deployment):
    """The 1008 close is bounded too: a client that never reads (so never gets the
    close frame) loses its socket after the closing grace period."""
    dep = make_deployment(worker_opts={"max-queued-bytes": 65536})
    pid = dep.worker_procs[0].pid
    user = h.new_id()
    ws0 = dep.connect(h.new_id())  # warm up the store connection and allocator
    ws0.close()
    time.sleep(0.3)
    base = fd_count(pid)
    ws = small_rcvbuf_ws(dep.worker(), f"jwt={make_jwt(dep, user)}")
    api = h.KeepAliveApi(dep.apis[0], dep.token)
    try:
        for i in range(2000):
            if api.send(b"y" * 16384, user=user, type="binary").expect(200)["connections"] == 0:
                break
        else:
            raise AssertionError("never closed as slow")
        api.close()
        wait_fds(pid, base, timeout=8, what="the never-reading client's socket to be closed")
    finally:
        api.close()
        ws.close()


def test_frames_never_interleave_under_backpressure_with_pings(make_deployment):
    """Large and small messages, server pings, client pings answered by pongs, while
    the client reads slowly: every frame arrives whole and messages in order."""
    dep = make_deployment(worker_opts={"ping-interval": 1, "ping-timeout": 5})
    user = h.new_id()
    ws = small_rcvbuf_ws(dep.worker(), f"jwt={make_jwt(dep, user)}", rcvbuf=8192)
    sizes = [10, 70000, 125, 300000, 1, 65536, 200000, 3]
    n = 40
    stop = threading.Event()
    errors = []

    def sender():
        api = h.KeepAliveApi(dep.apis[0], dep.token)
        try:
            for i in range(n):
                body = struct.pack("!I", i) + bytes([i % 251]) * sizes[i % len(sizes)]
                api.send(body, user=user, type="binary").expect(200)
        except Exception as e:  # reported by the main thread
            errors.append(e)
        finally:
            api.close()
            stop.set()

    t = threading.Thread(target=sender)
    t.start()
    expected, pings_sent, pongs_seen, server_pings = 0, 0, 0, 0
    deadline = time.monotonic() + 9
    try:
        while expected < n:
            assert time.monotonic() < deadline, f"only {expected} of {n} messages"
            if expected % 5 == 0 and pings_sent <= expected // 5:
                ws.ping(struct.pack("!I", pings_sent))
                pings_sent += 1
            f = ws.recv_frame(max(0.01, deadline - time.monotonic()))
            if f.opcode == h.OP_PING:
                server_pings += 1
                ws.pong(f.payload)
                continue
            if f.opcode == h.OP_PONG:
                assert f.payload == struct.pack("!I", pongs_seen), f
                pongs_seen += 1
                continue
            assert f.opcode == h.OP_BIN and f.fin, f
            i = struct.unpack("!I", f.payload[:4])[0]
            assert i == expected, (i, expected)
            assert f.payload[4:] == bytes([i % 251]) * sizes[i % len(sizes)]
            expected += 1
            time.sleep(0.02)  # a slow reader
    finally:
        t.join(10)
    assert not errors, errors
    assert pongs_seen >= 1
    assert ws.is_open()
    ws.close()


# ---------------------------------------------------------------------------
# lastPing


def test_last_ping_inside_the_rate_limit_is_not_lost(cluster):
    """lastPing is written at most once per second per connection; a ping inside
    that second is written a little later, not dropped (it used to be: two pings
    0.5 s apart across a second boundary left the first one's second)."""
    user = h.new_id()
    ws = cluster.connect(user)
    cid = conn_ids(cluster, user)[0]

    def sleep_to_fraction(frac):
        now = time.time()
        target = int(now) + frac
        if target <= now:
            target += 1
        time.sleep(target - now)

    time.sleep(1.1)  # past the rate limit of the registration itself
    for _ in range(3):  # a loaded machine may push a ping past its second: retry
        sleep_to_fraction(0.7)
        ws.ping(b"a")
        assert ws.recv_frame().opcode == h.OP_PONG
        first = int(time.time())
        sleep_to_fraction(0.25)
        ws.ping(b"b")
        assert ws.recv_frame().opcode == h.OP_PONG
        second = int(time.time())
        if second == first + 1:
            break
        time.sleep(1.1)
    else:
        pytest.skip("could not place two pings 0.5 s apart across a second boundary")

    def recorded():
        conns = cluster.api().info(id=cid).expect(200)["connections"]
        return conns and conns[0]["lastPing"] >= second and conns[0]["lastPing"]
    last = h.wait_until(recorded, 3, what="the second ping's lastPing")
    assert last <= int(time.time())
    ws.close()


# ---------------------------------------------------------------------------
# Teardown paths: resets at every stage, shutdown, connect/close cycles


def _cycles(addr, jwt_q, n):
    """n connections ending in every way a client can end."""
    req, _ = h.handshake_request(addr, jwt_q)
    for i in range(n):
        kind = i % 6
        s = socket.create_connection(addr, timeout=5)
        try:
            if kind == 0:  # clean: 101, then FIN
                s.sendall(req)
                assert h.read_http_response(s, timeout=5)[0].status == 101
                s.close()
            elif kind == 1:  # RST right after the request: during registration / 101
                s.sendall(req)
                reset_close(s)
            elif kind == 2:  # RST after the 101
                s.sendall(req)
                assert h.read_http_response(s, timeout=5)[0].status == 101
                reset_close(s)
            elif kind == 3:  # closing handshake then RST
                s.sendall(req + h.encode_frame(h.OP_CLOSE, struct.pack("!H", 1000)))
                reset_close(s)
            elif kind == 4:  # TCP only
                reset_close(s)
            else:  # half a request
                s.sendall(req[:30])
                reset_close(s)
        except BaseException:
            s.close()
            raise


def test_connect_close_cycles_release_everything(make_deployment):
    """5000 connections ending in every way: file descriptors come back to where
    they were and RSS does not grow (checked on the plain build; under ASan its
    quarantine makes RSS meaningless, and LeakSanitizer checks at exit instead)."""
    dep = make_deployment()
    addr = dep.worker()
    pid = dep.worker_procs[0].pid
    jwt_q = f"jwt={make_jwt(dep, h.new_id())}"
    _cycles(addr, jwt_q, 600)  # warm up allocator pools and tables
    time.sleep(0.3)
    wait_fds(pid, fd_count(pid))
    base_fds = fd_count(pid)
    base_rss = rss_kb(pid)
    start = time.monotonic()
    _cycles(addr, jwt_q, 5000)
    assert time.monotonic() - start < 8
    wait_fds(pid, base_fds, timeout=5)
    grown = rss_kb(pid) - base_rss
    if not is_sanitized(pid):
        assert grown < 1024, f"RSS grew by {grown} kB over 5000 connections"
    ws = h.ws_connect(addr, jwt_q)
    assert ws.is_open()
    ws.close()


def test_idle_websocket_connections_cost_little_memory(make_deployment):
    """No read buffer, timer or queue per idle connection: 1000 idle clients (and
    messages delivered to them) cost a few kB each at most, store record included."""
    dep = make_deployment()
    pid = dep.worker_procs[0].pid
    user = h.new_id()
    q = f"jwt={make_jwt(dep, user)}"
    warm = [h.ws_connect(dep.worker(), q) for _ in range(200)]
    for ws in warm:
        ws.close()
    time.sleep(0.3)
    base = rss_kb(pid)
    socks = [h.ws_connect(dep.worker(), q) for _ in range(1000)]
    try:
        api = h.KeepAliveApi(dep.apis[0], dep.token)
        for i in range(20):
            assert api.send(b"m" * 200, user=user, type="text").expect(200)["connections"] == 1000
        api.close()
        per_conn = (rss_kb(pid) - base) * 1024 / 1000
        if not is_sanitized(pid):
            assert per_conn < 4096, f"{per_conn:.0f} bytes per idle connection"
        assert socks[0].recv_data() == b"m" * 200 and socks[-1].recv_data() == b"m" * 200
    finally:
        for ws in socks:
            reset_close(ws.sock)


def test_shutdown_during_connection_churn(make_deployment):
    """SIGTERM lands while clients connect, reset, close and receive: every
    connection state meets the shutdown; the process exits 0 (and, under ASan,
    without a report)."""
    dep = make_deployment()
    proc = dep.worker_procs[0]
    addr = dep.worker()
    user = h.new_id()
    q = f"jwt={make_jwt(dep, user)}"
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            try:
                _cycles(addr, q, 6)
            except (OSError, EOFError, AssertionError, TimeoutError):
                pass

    def sends():
        api = h.KeepAliveApi(dep.apis[0], dep.token, timeout=2)
        while not stop.is_set():
            try:
                api.send(b"s" * 3000, user=user, type="binary")
            except Exception:
                time.sleep(0.01)
        api.close()

    readers = [h.ws_connect(addr, q) for _ in range(5)]
    threads = [threading.Thread(target=churn) for _ in range(2)]
    threads.append(threading.Thread(target=sends))
    for t in threads:
        t.start()
    try:
        time.sleep(0.7)
        start = time.monotonic()
        problems = proc.stop(timeout=10)
        assert not problems, problems
        assert time.monotonic() - start < 5
    finally:
        stop.set()
        for t in threads:
            t.join(10)
        for ws in readers:
            ws.close()


def test_disconnect_races_client_close_and_reset(make_deployment):
    """A /disconnect meets clients closing, resetting, and sending close frames at
    the same moment."""
    dep = make_deployment()
    pid = dep.worker_procs[0].pid
    user = h.new_id()
    q = f"jwt={make_jwt(dep, user)}"
    time.sleep(0.2)
    base = fd_count(pid)
    for _ in range(3):
        socks = [h.ws_connect(dep.worker(), q) for _ in range(30)]
        done = threading.Event()

        def disconnect():
            dep.api().disconnect(user=user).expect(200)
            done.set()
        t = threading.Thread(target=disconnect)
        t.start()
        for i, ws in enumerate(socks):
            if i % 3 == 0:
                reset_close(ws.sock)
            elif i % 3 == 1:
                try:
                    ws.send_close(1000)
                except OSError:
                    pass
            else:
                try:
                    ws.send_text("bye")
                except OSError:
                    pass
        t.join(10)
        assert done.is_set()
        for i, ws in enumerate(socks):
            if i % 3:
                assert ws.wait_eof(5), f"client {i} never closed"
                ws.close()
    wait_fds(pid, base, timeout=6)
    assert not conn_ids(dep, user)


@pytest.mark.redis_only
def test_reset_while_registration_is_pending(make_deployment, make_redis):
    """The store is slow (paused): clients send their upgrade and leave (RST or FIN)
    while their registration is in flight. Once the store answers, nothing is left:
    no socket, no connection in the store."""
    redis = make_redis()
    dep = make_deployment(redis=redis, worker_opts={"redis-timeout-ms": 3000})
    pid = dep.worker_procs[0].pid
    user = h.new_id()
    q = f"jwt={make_jwt(dep, user)}"
    ws = h.ws_connect(dep.worker(), q)
    ws.close()
    time.sleep(0.3)
    base = fd_count(pid)
    redis.pause()
    try:
        socks = []
        for i in range(10):
            req, _ = h.handshake_request(dep.worker(), q)
            s = socket.create_connection(dep.worker(), timeout=5)
            s.sendall(req + h.encode_frame(h.OP_PING, b"early"))
            socks.append(s)
        time.sleep(0.3)
        for i, s in enumerate(socks):
            if i % 2:
                reset_close(s)
            else:
                s.shutdown(socket.SHUT_WR)
                s.close()
        time.sleep(0.2)
    finally:
        redis.resume()
    wait_fds(pid, base + 1)  # +1: a store reconnect may be in progress
    h.wait_until(lambda: not conn_ids(dep, user), 5, what="no connection left in the store")
    assert h.ws_connect(dep.worker(), q).is_open()


@pytest.mark.redis_only
def test_shutdown_while_registration_is_pending(make_deployment, make_redis):
    redis = make_redis()
    dep = make_deployment(redis=redis, worker_opts={"redis-timeout-ms": 500})
    proc = dep.worker_procs[0]
    user = h.new_id()
    q = f"jwt={make_jwt(dep, user)}"
    open_ws = h.ws_connect(dep.worker(), q)
    redis.pause()
    try:
        socks = []
        for _ in range(5):
            req, _ = h.handshake_request(dep.worker(), q)
            s = socket.create_connection(dep.worker(), timeout=5)
            s.sendall(req)
            socks.append(s)
        time.sleep(0.2)
        start = time.monotonic()
        problems = proc.stop(timeout=10)
        assert not problems, problems
        assert time.monotonic() - start < 5
    finally:
        redis.resume()
    for s in socks:  # a 503 or just the end: never a 101
        try:
            r, _ = h.read_http_response(s, timeout=2)
            assert r.status == 503, r
        except (EOFError, ConnectionResetError):
            pass
        s.close()
    open_ws.close()


def test_shutdown_with_clients_that_do_not_read_is_bounded(make_deployment):
    dep = make_deployment(worker_opts={"max-queued-bytes": 64 * 1024 * 1024})
    proc = dep.worker_procs[0]
    user = h.new_id()
    socks = [small_rcvbuf_ws(dep.worker(), f"jwt={make_jwt(dep, user)}") for _ in range(3)]
    api = h.KeepAliveApi(dep.apis[0], dep.token)
    for _ in range(40):
        api.send(b"z" * 100000, user=user, type="binary").expect(200)
    api.close()
    start = time.monotonic()
    problems = proc.stop(timeout=10)
    assert not problems, problems
    assert time.monotonic() - start < 5, "shutdown waited for clients that never read"
    for ws in socks:
        ws.close()
