"""Batched sends (docs/redis.md, "Batched sends"): the API hands the sends of one
loop turn to Redis as one deliver_batch call, which PUBLISHes once per worker (a
BATCH WorkerMessage when the worker reads them). Order per sender, at-most-once
and exact answers must hold whatever the batching; a BATCH from the bus is checked
element by element; a worker whose alive key says '1' (an older worker) never gets
one."""
import threading

import pytest
import dsock_helpers as h
from test_input_validation import _channel, _varint, worker_message

TEXT, BINARY, CANARY, BATCH = 0, 1, 3, 7


def batch(*elements, **target):
    """A BATCH WorkerMessage: kind 7, each element an embedded message in field 7."""
    out = b"\x08\x07"
    for k, v in target.items():
        tag = {"user": 0x1A, "body": 0x2A}[k]
        v = v.encode() if isinstance(v, str) else v
        out += bytes([tag]) + _varint(len(v)) + v
    for e in elements:
        out += b"\x3a" + _varint(len(e)) + e
    return out


@pytest.mark.redis_only
def test_a_batch_from_the_bus_is_delivered_in_order_and_checked_per_element(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        channel, conn_id = _channel(cluster, user)
        r = cluster.redis.client()
        r.publish(channel, batch(worker_message(TEXT, user=user, body=b"b1"),
                                 worker_message(BINARY, connection=conn_id, body=b"b2"),
                                 worker_message(TEXT, user=user, body=b"bad\xff"),   # dropped alone
                                 worker_message(CANARY),                           # never in a batch
                                 batch(worker_message(TEXT, user=user, body=b"nested")),
                                 worker_message(TEXT, user=user, body=b"b3")))
        for bad in (batch(),                                                        # no element
                    batch(worker_message(TEXT, user=user, body=b"t"), user=user),   # a target
                    batch(worker_message(TEXT, user=user, body=b"t"), body=b"x"),   # a body
                    worker_message(TEXT, user=user, body=b"x")
                    + b"\x3a" + _varint(2) + b"\x08\x01"):                          # element outside
            r.publish(channel, bad)
        r.publish(channel, worker_message(TEXT, user=user, body=b"after"))
        got = [ws.recv_message() for _ in range(4)]
        assert got == [(1, b"b1"), (2, b"b2"), (1, b"b3"), (1, b"after")]
        assert ws.is_open()


def _burst(dep, users, senders, per_sender):
    """senders threads, each over its own keep-alive connection, send per_sender
    messages one after another, round-robin over users. Returns the answers'
    connection counts."""
    answers = []
    lock = threading.Lock()
    errors = []

    def run(i):
        api = h.KeepAliveApi(dep.apis[0], dep.token)
        try:
            for k in range(per_sender):
                u = users[k % len(users)]
                res = api.send(f"{i}:{k}".encode(), user=u, type="text")
                if res.status != 200:
                    errors.append(res.status)
                    return
                with lock:
                    answers.append(res.json["connections"])
        finally:
            api.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return answers


def test_concurrent_sends_keep_each_senders_order(cluster):
    """8 senders x 150 sends over two users with two connections each: every
    connection gets every message of its user once, each sender's in its order."""
    users = [h.new_id(), h.new_id()]
    senders, per_sender = 8, 150
    wss = [cluster.connect(u) for u in users for _ in range(2)]
    try:
        answers = _burst(cluster, users, senders, per_sender)
        assert answers == [2] * (senders * per_sender)
        for j, ws in enumerate(wss):
            expected = senders * per_sender // 2
            last = {}
            for _ in range(expected):
                op, body = ws.recv_message(timeout=20)
                assert op == 1
                i, k = map(int, body.decode().split(":"))
                assert users[k % 2] == users[j // 2], "another user's message"
                assert k > last.get(i, -1), f"sender {i}: {k} after {last.get(i)}"
                last[i] = k
            assert all(last[i] == per_sender - 2 + (j // 2) for i in range(senders)), last
            assert ws.is_open()
    finally:
        for ws in wss:
            ws.close()


@pytest.mark.redis_only
def test_an_older_worker_gets_no_batch(make_deployment):
    """A worker whose alive key holds '1' (one that does not read BATCH messages)
    gets each send in its own PUBLISH, batched or not; with '2' it may get BATCHes.
    The heartbeat writes '2' every worker_ttl/3 (1200 s here), so the test's '1'
    stays for its duration."""
    dep = make_deployment(worker_opts={"worker-ttl": "3600"})
    user = h.new_id()
    with dep.connect(user) as ws:
        channel, _ = _channel(dep, user)
        r = dep.redis.client()
        alive = "worker-alive:" + channel.split(":", 1)[1]
        assert r.get(alive) == b"2"
        r.set(alive, "1", ex=3600)
        ps = r.pubsub()
        ps.subscribe(channel)
        assert ps.get_message(timeout=5)["type"] == "subscribe"
        answers = _burst(dep, [user], 8, 50)
        assert answers == [1] * 400
        seen = []
        while len(seen) < 400:
            m = ps.get_message(timeout=10)
            assert m is not None, f"{len(seen)} messages seen"
            if m["type"] != "message":
                continue
            data = m["data"]
            assert not data.startswith(b"\x08\x07"), "a BATCH to a worker that reads none"
            if data.startswith(b"\x1a"):  # a TEXT to a user (no kind field); not a canary
                seen.append(data)
        ps.close()
        last = {}
        for _ in range(400):
            op, body = ws.recv_message(timeout=20)
            i, k = map(int, body.decode().split(":"))
            assert k > last.get(i, -1)
            last[i] = k
        assert r.get(alive) == b"1", "the heartbeat ran during the test"
