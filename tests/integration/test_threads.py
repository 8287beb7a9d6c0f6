"""Standalone on several loop threads (the harness starts it with --threads 2): the
kernel spreads connections over the threads (SO_REUSEPORT), and each /connect is
moved to the thread its user hashes to before its 101 (docs/architecture.md, "A
user's connections on one thread"), so the API call, the claim take and the
handshake land on different threads, and a channel's members (several users) sit
on both. Which thread holds which connection cannot be observed from outside;
with 20-50 connections or users both threads are involved with overwhelming
probability."""
import os
import threading
import time

import jwt as pyjwt

import pytest

import dsock_helpers as h
from dsock_helpers import OP_TEXT


@pytest.fixture
def standalone(cluster):
    if cluster.kind != "standalone":
        pytest.skip("standalone threads")
    return cluster


def thread_count(proc):
    return len(os.listdir(f"/proc/{proc.pid}/task"))


def open_many(dep, user, n):
    socks = []
    try:
        for _ in range(n):
            socks.append(dep.connect(user))
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def close_all(socks):
    for s in socks:
        s.close()


def test_fifty_connections_over_threads_all_receive(standalone):
    proc = standalone.api_procs[0]
    assert thread_count(proc) >= 2
    user = h.new_id()
    socks = open_many(standalone, user, 50)
    try:
        r = standalone.api().send(b"to all fifty", user=user, type="text").expect(200)
        assert r["connections"] == 50 and r["workers"] == 1
        for ws in socks:
            assert ws.recv_message() == (OP_TEXT, b"to all fifty")
        info = standalone.api().info(user=user).expect(200)
        assert len(info["connections"]) == 50
        # One worker id for the process, whatever thread holds the connection.
        assert len({c["worker"] for c in info["connections"]}) == 1
    finally:
        close_all(socks)


def test_thousand_sends_in_order_across_threads(standalone):
    user = h.new_id()
    socks = open_many(standalone, user, 10)
    try:
        api = h.KeepAliveApi(standalone.apis[0], standalone.token)
        try:
            for i in range(1000):
                r = api.send(f"m{i}".encode(), user=user, type="text")
                assert r.status == 200 and r.json["connections"] == 10, (i, r)
        finally:
            api.close()
        # A new API connection per send: the senders change threads too.
        for i in range(1000, 1100):
            standalone.api().send(f"m{i}".encode(), user=user, type="text").expect(200)
        for k, ws in enumerate(socks):
            got = [ws.recv_message(10) for _ in range(1100)]
            bad = [(i, m) for i, m in enumerate(got) if m != (OP_TEXT, f"m{i}".encode())]
            assert not bad, f"connection {k}: {len(bad)} out of order, first {bad[:3]}"
            ws.expect_no_message(0.1)
    finally:
        close_all(socks)


def test_disconnect_reaches_every_thread(standalone):
    user = h.new_id()
    socks = open_many(standalone, user, 20)
    try:
        r = standalone.api().disconnect(user=user).expect(200)
        assert r["connections"] == 20
        # The records go with the answer, whichever thread still has to close them.
        assert standalone.api().info(user=user).expect(200)["connections"] == []
        for ws in socks:
            code, _ = ws.expect_close()
            assert code == 1000
    finally:
        close_all(socks)


def test_claim_single_use_under_concurrent_connects(standalone):
    user = h.new_id()
    claim = standalone.claim(user)
    barrier = threading.Barrier(20)
    results = [None] * 20

    def connect(i):
        barrier.wait(5)
        res, ws = h.ws_handshake(standalone.worker(), f"claim={claim}")
        results[i] = (res.status, ws)

    threads = [threading.Thread(target=connect, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    try:
        statuses = sorted(r[0] for r in results if r)
        assert len(statuses) == 20
        assert statuses.count(101) == 1, statuses
        assert statuses.count(401) == 19, statuses
    finally:
        for r in results:
            if r and r[1]:
                r[1].close()


def test_max_connections_counts_every_thread(make_deployment, deployment_kind):
    if deployment_kind != "standalone":
        pytest.skip("standalone threads")
    dep = make_deployment(worker_opts={"max-connections": 6, "threads": 2})
    user = h.new_id()
    socks = open_many(dep, user, 6)
    try:
        claim = dep.claim(user)
        res, ws = h.ws_handshake(dep.worker(), f"claim={claim}")
        assert ws is None and res.status == 503, res
        assert h.json_error(res)["errorCode"] == "TOO_MANY_CONNECTIONS"
    finally:
        close_all(socks)


def test_bytes_sent_with_the_handshake_reach_a_moved_connection(standalone):
    """A client may send frames right behind its upgrade request, before the 101:
    when its connection moves to its user's thread, those bytes go with it. 40
    users: about half of the connections move."""
    socks = []
    try:
        for i in range(40):
            user = h.new_id()
            claim = standalone.claim(user)
            addr = standalone.workers[0]
            req, key = h.handshake_request(addr, f"claim={claim}")
            sock = h.socket.create_connection(addr, timeout=5)
            ping = h.encode_frame(h.OP_PING, f"p{i}".encode())
            sock.sendall(req + ping)  # one write: the ping follows the request
            res, rest = h.read_http_response(sock)
            assert res.status == 101, res.status
            ws = h.RawWS(sock, rest, res)
            socks.append(ws)
            f = ws.recv_frame()
            assert (f.opcode, f.payload) == (h.OP_PONG, f"p{i}".encode())
            standalone.api().send(b"after", user=user, type="text").expect(200)
            assert ws.recv_message() == (OP_TEXT, b"after")
    finally:
        close_all(socks)


def test_channel_members_on_both_threads_get_every_message_in_order(standalone):
    """30 users (so both threads hold members), 300 sends to their channel from
    two keep-alive connections and new connections: every member gets all, each
    sender's in order."""
    channel = "ch" + h.new_id()
    users = [h.new_id() for _ in range(30)]
    socks = []
    try:
        for u in users:
            claim = standalone.claim(u, channels=channel)
            socks.append(h.ws_connect(standalone.workers[0], f"claim={claim}"))
        apis = [h.KeepAliveApi(standalone.apis[0], standalone.token) for _ in range(2)]
        try:
            for i in range(300):
                if i % 3 == 2:
                    r = standalone.api().send(f"m{i}".encode(), channel=channel, type="text")
                    r = r.expect(200)
                else:
                    r = apis[i % 3].send(f"m{i}".encode(), channel=channel, type="text").json
                assert r["connections"] == 30, (i, r)
        finally:
            for a in apis:
                a.close()
        for k, ws in enumerate(socks):
            got = [ws.recv_message(10) for _ in range(300)]
            assert got == [(OP_TEXT, f"m{i}".encode()) for i in range(300)], f"member {k}"
            ws.expect_no_message(0.1)
    finally:
        close_all(socks)


def test_a_users_connections_share_a_thread_for_every_target(standalone):
    """20 connections of one user (half of them in a session) opened with claims
    and JWTs, with and without compression: after the move, sends by user,
    session and connection id, a subscription and a disconnect all reach them."""
    user = h.new_id()
    socks = []
    try:
        for i in range(20):
            session = "s1" if i % 2 else None
            if i % 4 < 2:
                claim = standalone.claim(user, session)
                query = f"claim={claim}"
            else:
                claims = {"sub": user, "exp": int(time.time()) + 600}
                if session:
                    claims["sid"] = session
                query = "jwt=" + pyjwt.encode(claims, standalone.jwt_secret, algorithm="HS256")
            extra = {"Sec-WebSocket-Extensions": "permessage-deflate"} if i % 3 == 0 else None
            res, ws = h.ws_handshake(standalone.workers[0], query, extra_headers=extra)
            assert res.status == 101, res.status
            socks.append(ws)
        api = standalone.api()
        assert api.send(b"all", user=user, type="text").expect(200)["connections"] == 20
        assert api.send(b"session", user=user, session="s1",
                        type="text").expect(200)["connections"] == 10
        for ws in socks:
            assert ws.recv_message() == (OP_TEXT, b"all")
        for i, ws in enumerate(socks):
            if i % 2:
                assert ws.recv_message() == (OP_TEXT, b"session")
        conns = api.info(user=user).expect(200)["connections"]
        assert len(conns) == 20
        for c in conns:
            api.send(c["id"].encode(), id=c["id"], type="text").expect(200)
        got = sorted(ws.recv_message()[1].decode() for ws in socks)
        assert got == sorted(c["id"] for c in conns)
        channel = "ch" + h.new_id()
        r = api.request("POST", f"/channel/subscribe/{channel}", {"user": user}).expect(200)
        assert r["connections"] == 20
        assert api.send(b"chan", channel=channel, type="text").expect(200)["connections"] == 20
        for ws in socks:
            assert ws.recv_message() == (OP_TEXT, b"chan")
        assert api.disconnect(user=user).expect(200)["connections"] == 20
        for ws in socks:
            assert ws.expect_close()[0] == 1000
    finally:
        close_all(socks)
