"""Standalone on several loop threads (the harness starts it with --threads 2): the
kernel spreads connections over the threads (SO_REUSEPORT), so one user's
connections, the API call and the claim take land on different threads. Which
thread holds which connection cannot be observed from outside; with 20-50
connections both threads hold some with overwhelming probability."""
import os
import threading

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
