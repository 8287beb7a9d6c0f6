"""HTTP/1.1 input handling on both roles: malformed requests, size limits,
transfer codings, keep-alive, chunked bodies."""
import socket

import pytest

import dsock_helpers as h


def both_roles(dep):
    return [("api", dep.apis[0]), ("worker", dep.workers[0])]


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /info HTTP/1.1\r\nNo colon here\r\n\r\n",
    b"GET /info HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /send HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"\x00\x01\x02\x03\r\n\r\n",
    b"GET /in fo HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.parametrize("idx", range(len(MALFORMED)))
def test_malformed_request_400_and_close(cluster, idx):
    for role, addr in both_roles(cluster):
        res, sock = h.raw_http(addr, MALFORMED[idx], keep=True)
        with sock:
            assert res.status == 400, f"{role}: {MALFORMED[idx]!r} -> {res}"
            res.response().expect(400, "MALFORMED_REQUEST")
            assert h.wait_closed(sock, 3), f"{role}: connection left open after 400"


def test_http_version_not_supported(cluster):
    for role, addr in both_roles(cluster):
        res, sock = h.raw_http(addr, b"GET /info HTTP/2.0\r\nHost: x\r\n\r\n", keep=True)
        with sock:
            assert res.status == 505, f"{role}: {res}"
            res.response().expect(505, "HTTP_VERSION_NOT_SUPPORTED")


def test_unsupported_transfer_coding(cluster):
    req = (f"POST /send?token={cluster.token}&user=u&type=text HTTP/1.1\r\nHost: x\r\n"
           "Transfer-Encoding: gzip\r\n\r\n").encode()
    res = h.raw_http(cluster.apis[0], req)
    res.response().expect(501, "NOT_IMPLEMENTED")


def test_chunked_body_send(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        req = (f"POST /send?token={cluster.token}&user={user}&type=binary HTTP/1.1\r\n"
               "Host: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").encode()
        res = h.raw_http(cluster.apis[0], req)
        assert res.response().expect(200)["connections"] == 1
        assert ws.recv_data() == b"hello world"


def test_keep_alive_and_pipelining(cluster):
    user = h.new_id()
    one = f"GET /info?token={cluster.token}&user={user} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with socket.create_connection(cluster.apis[0], timeout=5) as sock:
        sock.sendall(one)
        res, rest = h.read_http_response(sock)
        res.response().expect(200)
        sock.sendall(one * 3)  # pipelined
        for _ in range(3):
            res, rest = h.read_http_response(sock, rest)
            res.response().expect(200)


def test_http10_and_connection_close(cluster):
    user = h.new_id()
    for req in (f"GET /info?token={cluster.token}&user={user} HTTP/1.0\r\n\r\n",
                f"GET /info?token={cluster.token}&user={user} HTTP/1.1\r\nHost: x\r\n"
                "Connection: close\r\n\r\n"):
        res, sock = h.raw_http(cluster.apis[0], req.encode(), keep=True)
        with sock:
            res.response().expect(200)
            assert h.wait_closed(sock, 3), "connection not closed after Connection: close"


def test_split_request_bytes(cluster):
    """A request arriving a few bytes at a time is parsed the same."""
    user = h.new_id()
    req = f"GET /info?token={cluster.token}&user={user} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    with socket.create_connection(cluster.apis[0], timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(req), 7):
            sock.sendall(req[i:i + 7])
        res, _ = h.read_http_response(sock)
        res.response().expect(200)


def test_header_and_body_limits(make_deployment):
    dep = make_deployment(api_opts={"max-header-bytes": 1024, "max-body-bytes": 1000},
                          worker_opts={"max-header-bytes": 1024})
    user = h.new_id()
    tok = dep.token
    # headers over the limit: 431 on both roles, connection closed
    for role, addr in both_roles(dep):
        req = (f"GET /info?token={tok}&user={user} HTTP/1.1\r\nHost: x\r\n"
               f"X-Big: {'a' * 2000}\r\n\r\n").encode()
        res, sock = h.raw_http(addr, req, keep=True)
        with sock:
            assert res.status == 431, f"{role}: {res}"
            res.response().expect(431, "HEADERS_TOO_LARGE")
            assert h.wait_closed(sock, 3), f"{role}: connection left open after 431"
    # a long request line counts too
    res = h.raw_http(dep.apis[0], f"GET /info?token={tok}&user={'u' * 1500} HTTP/1.1\r\n"
                                  "Host: x\r\n\r\n".encode())
    res.response().expect(431, "HEADERS_TOO_LARGE")
    # headers under the limit are fine
    res = h.raw_http(dep.apis[0], f"GET /info?token={tok}&user={user} HTTP/1.1\r\nHost: x\r\n"
                                  f"X-Small: {'a' * 500}\r\n\r\n".encode())
    res.response().expect(200)

    with dep.connect(user) as ws:
        # a body at the limit is delivered
        assert dep.api().send(b"b" * 1000, user=user, type="binary").expect(200)["connections"] == 1
        assert ws.recv_data() == b"b" * 1000
        # over the limit with Content-Length: 413, connection closed, nothing delivered
        req = (f"POST /send?token={tok}&user={user}&type=binary HTTP/1.1\r\nHost: x\r\n"
               "Content-Length: 1001\r\n\r\n").encode() + b"c" * 1001
        res, sock = h.raw_http(dep.apis[0], req, keep=True)
        with sock:
            res.response().expect(413, "REQUEST_TOO_LARGE")
            assert h.wait_closed(sock, 3), "connection left open after 413"
        # a declared length far over the limit is refused without the body
        req = (f"POST /send?token={tok}&user={user}&type=binary HTTP/1.1\r\nHost: x\r\n"
               "Content-Length: 100000000\r\n\r\n").encode()
        res = h.raw_http(dep.apis[0], req)
        res.response().expect(413, "REQUEST_TOO_LARGE")
        # chunked over the limit
        req = (f"POST /send?token={tok}&user={user}&type=binary HTTP/1.1\r\nHost: x\r\n"
               "Transfer-Encoding: chunked\r\n\r\n" + "258\r\n" + "d" * 600 + "\r\n" +
               "258\r\n" + "d" * 600 + "\r\n0\r\n\r\n").encode()
        res = h.raw_http(dep.apis[0], req)
        res.response().expect(413, "REQUEST_TOO_LARGE")
        ws.expect_no_message(0.3)
        assert ws.is_open()
