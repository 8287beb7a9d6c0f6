"""HTTP hardening (issue 7): requests are routed, method-checked and authorized
from their headers, before any body byte is read or a 100 Continue is sent; a
refused request with a body is answered and the connection closed without reading
the body; CONNECT and HTTP/1.0 chunked requests end the connection; strict
framing (chunk CRLF, Host, bare CR) and no WebSocket upgrade over HTTP/1.0.
Raw sockets throughout: the point is what goes over the wire."""
import socket
import time

import pytest

import dsock_helpers as h

BIG = 16 * 1024 * 1024  # the default max_body_bytes: accepted as a length, never sent


def head(method, target, *headers):
    lines = [f"{method} {target} HTTP/1.1", "Host: x", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def peer_end(sock, timeout=5.0):
    """How the server ends the connection after its answer: "eof" (an orderly
    close: the answer could not be lost), "reset", or "open" (nothing within
    timeout). Data still arriving is discarded."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "open"
            sock.settimeout(left)
            if not sock.recv(65536):
                return "eof"
    except (ConnectionResetError, BrokenPipeError):
        return "reset"
    except (TimeoutError, socket.timeout):
        return "open"


def refused_cases(dep):
    """(address, request head announcing a body, status, errorCode) for requests
    refused on their headers, on every role."""
    api, worker = dep.apis[0], dep.workers[0]
    tok = dep.token
    return [
        (api, head("POST", "/nope"), 404, "NOT_FOUND"),
        (api, head("POST", "/send?user=u&type=text"), 401, "INVALID_AUTHORIZATION"),
        (api, head("POST", "/send?user=u&type=text", "Authorization: Bearer wrong"),
         401, "INVALID_AUTHORIZATION"),
        (api, head("POST", "/claim?token=wrong&user=u"), 401, "INVALID_AUTHORIZATION"),
        (api, head("PUT", f"/send?token={tok}&user=u&type=text"), 405, "METHOD_NOT_ALLOWED"),
        (api, head("POST", f"/info?token={tok}&user=u"), 405, "METHOD_NOT_ALLOWED"),
        (worker, head("POST", "/nope"), 404, "NOT_FOUND"),
        (worker, head("POST", "/connect"), 405, "METHOD_NOT_ALLOWED"),
        (worker, head("GET", "/connect?claim=x"), 400, "INVALID_HANDSHAKE"),
    ]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_refused_on_headers_without_reading_the_body(cluster, framing):
    """Headers announcing 16 MiB (or a chunked body) and no body byte: the answer
    comes at once, says Connection: close, and the server ends the connection in
    order (EOF, not a reset)."""
    body_header = (f"Content-Length: {BIG}" if framing == "content-length"
                   else "Transfer-Encoding: chunked")
    for addr, req, status, code in refused_cases(cluster):
        req = req[:-2] + body_header.encode() + b"\r\n\r\n"
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(req)
            res, rest = h.read_http_response(s, timeout=5)
            assert res.status == status, f"{req!r} -> {res}"
            res.response().expect(status, code)
            assert res.headers.get("connection", "").lower() == "close", (req, res.headers)
            assert rest == b""
            assert peer_end(s) == "eof", f"{req!r}: connection not closed in order"


def test_refused_with_body_in_flight_answer_arrives(cluster):
    """A client that keeps sending its (unauthenticated) body still reads the 401,
    and the server stops discarding after a bounded time (min(idle_timeout, 2 s))."""
    req = head("POST", "/send?user=u&type=binary", f"Content-Length: {BIG}")
    with socket.create_connection(cluster.apis[0], timeout=5) as s:
        s.sendall(req + b"x" * 65536)
        res, _ = h.read_http_response(s, timeout=5)
        res.response().expect(401, "INVALID_AUTHORIZATION")
        assert res.headers.get("connection", "").lower() == "close"
        # Its write side is shut down at once (EOF after the answer)...
        assert s.recv(1) == b""
        # ...and, while we keep sending, it discards for a while, then closes (our
        # sends then fail with a reset).
        s.setblocking(False)
        deadline = time.monotonic() + 15
        closed = False
        while time.monotonic() < deadline and not closed:
            try:
                s.send(b"y" * 4096)
            except BlockingIOError:
                pass
            except (ConnectionResetError, BrokenPipeError):
                closed = True
            time.sleep(0.02)
        assert closed, "server still reading a refused body after 15 s"


def test_no_100_continue_for_refused_request(cluster):
    """Expect: 100-continue: the refusal is the first (and only) answer."""
    for addr, req, status, code in refused_cases(cluster):
        req = req[:-2] + f"Expect: 100-continue\r\nContent-Length: {BIG}\r\n\r\n".encode()
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(req)
            res, _ = h.read_http_response(s, timeout=5)
            assert res.status == status, f"{req!r}: first answer {res}"
            assert peer_end(s) == "eof"


def test_100_continue_for_served_request(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        req = head("POST", f"/send?token={cluster.token}&user={user}&type=text",
                   "Expect: 100-continue", "Content-Length: 5")
        with socket.create_connection(cluster.apis[0], timeout=5) as s:
            s.sendall(req)
            res, rest = h.read_http_response(s, timeout=5)
            assert res.status == 100, res
            s.sendall(b"hello")
            res, _ = h.read_http_response(s, rest, timeout=5)
            assert res.response().expect(200)["connections"] == 1
        assert ws.recv_data() == b"hello"


def test_refused_without_body_keeps_the_connection(cluster):
    """Nothing to skip: a 401/404/405 on a bodiless request keeps keep-alive, and a
    pipelined request after it is served."""
    user = h.new_id()
    good = head("GET", f"/info?token={cluster.token}&user={user}")
    for bad, status in ((head("GET", f"/info?user={user}"), 401), (head("GET", "/nope"), 404),
                        (head("DELETE", f"/info?token={cluster.token}&user={user}"), 405),
                        (head("POST", "/send", "Content-Length: 0"), 401)):
        with socket.create_connection(cluster.apis[0], timeout=5) as s:
            s.sendall(bad + good)
            res, rest = h.read_http_response(s, timeout=5)
            assert res.status == status, (bad, res)
            assert res.headers.get("connection", "").lower() == "keep-alive", res.headers
            res, _ = h.read_http_response(s, rest, timeout=5)
            res.response().expect(200)


def test_connect_method_closes_the_connection(cluster):
    """What follows a CONNECT is not read as another request: the request smuggled
    as its 'body' is never answered."""
    smuggled = head("GET", f"/info?token={cluster.token}&user={h.new_id()}")
    for addr, target, status in ((cluster.apis[0], "/claim", 405), (cluster.apis[0], "/info", 405),
                                 (cluster.workers[0], "/connect", 405),
                                 (cluster.apis[0], "/nope", 404)):
        req = head("CONNECT", target, f"Content-Length: {len(smuggled)}") + smuggled
        with socket.create_connection(addr, timeout=5) as s:
            s.sendall(req)
            res, rest = h.read_http_response(s, timeout=5)
            assert res.status == status, (target, res)
            assert res.headers.get("connection", "").lower() == "close", res.headers
            assert rest == b""
            assert peer_end(s) == "eof", f"CONNECT {target}: second answer or open"


def test_http10_transfer_encoding_closes(cluster):
    """RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding is served, then the
    connection is closed, even with Connection: keep-alive."""
    user = h.new_id()
    with cluster.connect(user) as ws:
        req = (f"POST /send?token={cluster.token}&user={user}&type=text HTTP/1.0\r\n"
               "Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n0\r\n\r\n").encode()
        with socket.create_connection(cluster.apis[0], timeout=5) as s:
            s.sendall(req)
            res, _ = h.read_http_response(s, timeout=5)
            assert res.response().expect(200)["connections"] == 1
            assert res.headers.get("connection", "").lower() == "close", res.headers
            assert peer_end(s) == "eof"
        assert ws.recv_data() == b"hello"
    # HTTP/1.0 keep-alive without Transfer-Encoding still keeps the connection.
    req = (f"GET /info?token={cluster.token}&user={user} HTTP/1.0\r\n"
           "Connection: keep-alive\r\n\r\n").encode()
    res, s = h.raw_http(cluster.apis[0], req, keep=True)
    with s:
        res.response().expect(200)
        assert res.headers.get("connection", "").lower() == "keep-alive"


def test_chunk_data_without_crlf_is_400(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        req = (f"POST /send?token={cluster.token}&user={user}&type=text HTTP/1.1\r\nHost: x\r\n"
               "Transfer-Encoding: chunked\r\n\r\n3\r\nabcXY5\r\nhello\r\n0\r\n\r\n").encode()
        res, s = h.raw_http(cluster.apis[0], req, keep=True)
        with s:
            res.response().expect(400, "MALFORMED_REQUEST")
            assert h.wait_closed(s, 3)
        ws.expect_no_message(0.3)


def expect_malformed(cluster, cases):
    for req, role in cases:
        addr = cluster.apis[0] if role == "api" else cluster.workers[0]
        res, s = h.raw_http(addr, req.encode(), keep=True)
        with s:
            assert res.status == 400, f"{req!r} -> {res}"
            res.response().expect(400, "MALFORMED_REQUEST")
            assert h.wait_closed(s, 3)


def test_host_required(cluster):
    """RFC 9112 3.2: an HTTP/1.1 request without Host, or any with two, is a 400."""
    tok = cluster.token
    expect_malformed(cluster, [
        (f"GET /info?token={tok}&user=u HTTP/1.1\r\n\r\n", "api"),
        (f"GET /info?token={tok}&user=u HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "api"),
        (f"GET /info?token={tok}&user=u HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "api"),
        ("GET /connect?claim=x HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
         "worker"),
    ])
    # HTTP/1.0 needs no Host.
    res = h.raw_http(cluster.apis[0], f"GET /info?token={tok}&user=u HTTP/1.0\r\n\r\n".encode())
    res.response().expect(200)


def test_bare_cr_after_version_is_400(cluster):
    """A CR not followed by LF after a valid version is malformed (400), not 505."""
    tok = cluster.token
    expect_malformed(cluster, [
        (f"GET /info?token={tok}&user=u HTTP/1.1\rX\r\nHost: x\r\n\r\n", "api"),
        (f"GET /info?token={tok}&user=u HTTP/1.1\r\r\nHost: x\r\n\r\n", "api"),
        ("GET /connect HTTP/1.1\rHost: x\r\n\r\n", "worker"),
    ])


def test_websocket_upgrade_over_http10_refused(cluster):
    """RFC 6455 4.1 requires HTTP/1.1: 400 INVALID_HANDSHAKE, never a 101; the claim
    is not consumed (the handshake is checked before the claim is taken)."""
    claim = cluster.claim(h.new_id())
    req, _ = h.handshake_request(cluster.worker(0), f"claim={claim}")
    req = req.replace(b" HTTP/1.1\r\n", b" HTTP/1.0\r\n", 1)
    res, s = h.raw_http(cluster.worker(0), req, keep=True)
    with s:
        assert res.status == 400, res
        res.response().expect(400, "INVALID_HANDSHAKE")
        assert h.wait_closed(s, 3)
    with h.ws_connect(cluster.worker(0), f"claim={claim}") as ws:
        assert ws.is_open()
