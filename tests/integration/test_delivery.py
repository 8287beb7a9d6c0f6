"""Message delivery (order, byte-for-byte text and binary), forced disconnects, and
scale-out across several API and worker processes."""
import asyncio
import functools
import os
import time

import pytest
import websockets

import dsock_helpers as h
from dsock_helpers import OP_BIN, OP_TEXT


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def lib_connect(dep, user, session=None, worker=0):
    claim = dep.claim(user, session)
    return await websockets.connect(dep.ws_url(worker, f"claim={claim}"), ping_interval=None,
                                    max_size=None, close_timeout=3, open_timeout=5)


# ---------------------------------------------------------------------------
# Delivery


def test_thousand_messages_in_order(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        api = h.KeepAliveApi(cluster.apis[0], cluster.token)
        try:
            for i in range(1000):
                r = api.send(f"m{i}".encode(), user=user, type="text")
                assert r.status == 200 and r.json["connections"] == 1, (i, r)
        finally:
            api.close()
        got = [ws.recv_message(10) for _ in range(1000)]
        bad = [(i, m) for i, m in enumerate(got) if m != (OP_TEXT, f"m{i}".encode())]
        assert not bad, f"{len(bad)} messages out of order or wrong, first: {bad[:3]}"
        ws.expect_no_message(0.2)


def test_order_across_alternating_types(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        for i in range(100):
            t = "text" if i % 2 else "binary"
            cluster.api().send(str(i).encode(), user=user, type=t).expect(200)
        for i in range(100):
            assert ws.recv_message() == (OP_TEXT if i % 2 else OP_BIN, str(i).encode())


def utf8_text(limit):
    """Valid UTF-8 of up to `limit` bytes, with 1- to 4-byte characters, cut on a
    character boundary."""
    text = ("0123456789abcdé€😀" * (limit // 20 + 1)).encode()[:limit]
    while True:
        try:
            text.decode()
            return text
        except UnicodeDecodeError:
            text = text[:-1]


def test_binary_and_text_byte_for_byte(cluster):
    user = h.new_id()
    all_bytes = bytes(range(256))
    big_bin = os.urandom(1 << 20)
    big_text = utf8_text(1 << 20)
    unicode_text = "héllo wörld — 你好 — 😀 \u0000 end".encode()

    async def main():
        ws = await lib_connect(cluster, user)
        try:
            cases = [
                ("binary", all_bytes, all_bytes),
                ("binary", b"", b""),
                ("text", b"", ""),
                ("text", unicode_text, unicode_text.decode()),
                ("binary", big_bin, big_bin),
                ("text", big_text, big_text.decode()),
                ("binary", all_bytes * 300, all_bytes * 300),
            ]
            for typ, body, want in cases:
                j = cluster.api().send(body, user=user, type=typ).expect(200)
                assert j["connections"] == 1, j
                got = await asyncio.wait_for(ws.recv(), 10)
                assert type(got) is type(want), f"{typ}: got {type(got).__name__}"
                assert got == want, f"{typ} message of {len(body)} bytes differs"
        finally:
            await ws.close()

    run(main())


def test_raw_client_sees_single_unmasked_frames(cluster):
    """Each API message is one WebSocket message; frames from the server are unmasked
    (checked by RawWS) and carry the exact payload."""
    user = h.new_id()
    with cluster.connect(user) as ws:
        payload = bytes(range(256)) * 4
        cluster.api().send(payload, user=user, type="binary").expect(200)
        assert ws.recv_message() == (OP_BIN, payload)
        cluster.api().send(b"", user=user, type="text").expect(200)
        assert ws.recv_message() == (OP_TEXT, b"")


def test_message_visible_right_after_101(cluster):
    """A connection is routable before its 101: a send right after the handshake
    reaches it (repeat to catch a race)."""
    for i in range(20):
        user = h.new_id()
        with cluster.connect(user, worker=i % len(cluster.workers)) as ws:
            j = cluster.api(i % len(cluster.apis)).send(b"now", user=user, type="text").expect(200)
            assert j["connections"] == 1, (i, j)
            assert ws.recv_data() == b"now"


def test_delivery_to_many_connections_of_one_user(cluster):
    user = h.new_id()
    conns = [cluster.connect(user, f"s{i}", worker=i % len(cluster.workers)) for i in range(10)]
    try:
        j = cluster.api().send(b"fanout", user=user, type="text").expect(200)
        assert j["connections"] == 10, j
        for ws in conns:
            assert ws.recv_data() == b"fanout"
    finally:
        for ws in conns:
            ws.close()


# ---------------------------------------------------------------------------
# Forced disconnect


def test_disconnect_user_closes_with_1000(cluster):
    user = h.new_id()
    a = cluster.connect(user, "a")
    b = cluster.connect(user, None, worker=-1)
    with a, b:
        j = cluster.api().disconnect(user=user).expect(200)
        assert j["connections"] == 2, j
        for ws in (a, b):
            code, _ = ws.expect_close()
            assert code == 1000
            assert ws.wait_eof(5), "TCP connection not closed after forced disconnect"
    h.wait_until(lambda: cluster.api().info(user=user).expect(200)["connections"] == [], 5,
                 what="disconnected connections to leave /info")


def test_disconnect_session_only(cluster):
    user = h.new_id()
    a = cluster.connect(user, "a")
    b = cluster.connect(user, "b")
    with a, b:
        j = cluster.api().disconnect(user=user, session="a").expect(200)
        assert j["connections"] == 1, j
        assert a.expect_close()[0] == 1000
        assert a.wait_eof(5)
        assert b.is_open()
        cluster.api().send(b"b-still", user=user, type="text").expect(200)
        assert b.recv_data() == b"b-still"
        conns = cluster.api().info(user=user).expect(200)["connections"]
        assert [c["session"] for c in conns] == ["b"], conns


def test_disconnect_with_websockets_library(cluster):
    user = h.new_id()

    async def main():
        ws = await lib_connect(cluster, user)
        cluster.api().disconnect(user=user).expect(200)
        with pytest.raises(websockets.ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1000
        await asyncio.wait_for(ws.wait_closed(), 5)

    run(main())


def test_disconnect_keep_claims(cluster):
    user = h.new_id()
    with cluster.connect(user, "s"):
        keep = cluster.api().claim(user=user, session="s").expect(200)["claim"]
        cluster.api().disconnect(user=user, keepClaims="true").expect(200)
        assert cluster.api().info(user=user).expect(200)["claims"] == [keep]
        # the kept claim still connects
        with h.ws_connect(cluster.worker(0), f"claim={keep['id']}") as ws2:
            assert ws2.is_open()
    user2 = h.new_id()
    with cluster.connect(user2, "s") as ws:
        gone = cluster.api().claim(user=user2, session="s").expect(200)["claim"]
        cluster.api().disconnect(user=user2).expect(200)
        assert ws.expect_close()[0] == 1000
        assert cluster.api().info(user=user2).expect(200)["claims"] == []
        res, ws3 = h.ws_handshake(cluster.worker(0), f"claim={gone['id']}")
        assert ws3 is None and res.status == 401, res


def test_disconnect_then_reconnect(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        cluster.api().disconnect(user=user).expect(200)
        assert ws.expect_close()[0] == 1000
    with cluster.connect(user) as ws:
        cluster.api().send(b"again", user=user, type="text").expect(200)
        assert ws.recv_data() == b"again"


# ---------------------------------------------------------------------------
# Scale-out (needs two workers and two API processes)


@pytest.mark.redis_only
def test_user_on_two_workers(cluster):
    user = h.new_id()
    w0 = cluster.connect(user, "x", worker=0)
    w1 = cluster.connect(user, "y", worker=1)
    with w0, w1:
        conns = cluster.api(1).info(user=user).expect(200)["connections"]
        assert len(conns) == 2, conns
        workers = {c["session"]: c["worker"] for c in conns}
        assert workers["x"] != workers["y"], f"both connections report worker {workers}"
        for api in (0, 1):
            j = cluster.api(api).send(f"via-api{api}".encode(), user=user, type="text").expect(200)
            assert j["connections"] == 2 and j["workers"] == 2, j
            assert w0.recv_data() == f"via-api{api}".encode()
            assert w1.recv_data() == f"via-api{api}".encode()
        # a session on one worker only
        j = cluster.api(1).send(b"y-only", user=user, session="y", type="binary").expect(200)
        assert j["connections"] == 1 and j["workers"] == 1, j
        assert w1.recv_message() == (OP_BIN, b"y-only")
        w0.expect_no_message()
        # disconnect reaches both workers
        j = cluster.api(1).disconnect(user=user).expect(200)
        assert j["connections"] == 2 and j["workers"] == 2, j
        for ws in (w0, w1):
            assert ws.expect_close()[0] == 1000
            assert ws.wait_eof(5)


@pytest.mark.redis_only
def test_claim_from_one_api_used_on_other_worker(cluster):
    user = h.new_id()
    claim = cluster.claim(user, api=1)
    with h.ws_connect(cluster.worker(0), f"claim={claim}") as ws:
        conns = cluster.api(0).info(user=user).expect(200)["connections"]
        cluster.api(1).send(b"cross", id=conns[0]["id"], type="text").expect(200)
        assert ws.recv_data() == b"cross"


@pytest.mark.redis_only
def test_interleaved_sends_from_two_apis_keep_per_api_order(cluster):
    user = h.new_id()
    with cluster.connect(user, worker=1) as ws:
        for i in range(200):
            cluster.api(i % 2).send(f"{i % 2}:{i}".encode(), user=user, type="text").expect(200)
        got = [ws.recv_data(10).decode() for _ in range(200)]
        # one sender waits for each answer, so the global order holds too
        assert got == [f"{i % 2}:{i}" for i in range(200)], got[:10]


# ---------------------------------------------------------------------------
# Large messages (docs/architecture.md, "Large messages"; docs/redis.md, "Big sends")

MIB = 1 << 20


def test_large_messages_arrive_intact_and_in_order(cluster):
    """1 MiB and 16 MiB (max_body_bytes) messages, several in a row and between small
    ones, arrive byte for byte and in order. Over Redis a send of at least 64 KiB
    resolves its targets first and PUBLISHes the payload itself, a smaller one is
    one script call: the sizes straddle that line and the order holds across it."""
    user = h.new_id()
    sizes = [MIB, 10, MIB, MIB, 16 * MIB, (64 << 10) - 1, 64 << 10, 16 * MIB, MIB, 0,
             16 * MIB - 1, MIB, MIB, 3]
    bodies = [os.urandom(n) for n in sizes]

    async def main():
        ws = await lib_connect(cluster, user)
        api = h.KeepAliveApi(cluster.apis[0], cluster.token, timeout=60)
        loop = asyncio.get_running_loop()
        got = []

        async def reader():
            for _ in bodies:
                got.append(await ws.recv())

        task = asyncio.create_task(reader())
        try:
            # one after another, each answered before the next, the client reading
            for i, b in enumerate(bodies):
                r = await loop.run_in_executor(
                    None, functools.partial(api.send, b, user=user, type="binary"))
                assert r.status == 200 and r.json["connections"] == 1, (i, len(b), r.status)
                if len(b) >= 4 * MIB:
                    # Redis's default client-output-buffer-limit for pub/sub (32 MB)
                    # drops a subscriber that falls further behind: let the worker
                    # take a 16 MiB message before the next (docs/redis.md).
                    while len(got) <= i and not task.done():
                        await asyncio.sleep(0.01)
            await asyncio.wait_for(task, 60)
        finally:
            api.close()
            task.cancel()
            await ws.close()
        assert len(got) == len(bodies)
        for i, want in enumerate(bodies):
            assert isinstance(got[i], bytes), i
            assert got[i] == want, f"message {i} ({len(want)} bytes) differs or is out of order"

    run(main(), timeout=120)


def test_large_text_message_to_a_channel_and_a_connection_id(cluster):
    """The other targets take the same path: a channel and a connection id, text."""
    user = h.new_id()
    body = utf8_text(2 * MIB)
    chan = h.new_id("ch")

    async def main():
        claim = cluster.claim(user, channels=chan)
        ws = await websockets.connect(cluster.ws_url(0, f"claim={claim}"), ping_interval=None,
                                      max_size=None, close_timeout=3, open_timeout=5)
        try:
            conn_id = cluster.api().info(user=user).expect(200)["connections"][0]["id"]
            for target in ({"id": conn_id}, {"channel": chan}):
                j = cluster.api().send(body, type="text", **target).expect(200)
                assert j["connections"] == 1, (target, j)
                assert await asyncio.wait_for(ws.recv(), 30) == body.decode(), target
        finally:
            await ws.close()

    run(main())


@pytest.mark.redis_only
def test_worker_memory_goes_back_after_large_messages(make_deployment):
    """`dsock worker` keeps big buffers warm while big messages flow
    (docs/architecture.md, "Large messages"), and gives them back once they stop: its
    RSS returns near where it started within a few seconds (the sweep trims a second
    after the last big delivery, and again once the Redis reader's buffer was freed,
    a second idle). Not standalone: its loop threads each have a malloc arena, and
    glibc trims a thread's arena top only at a free in that thread beyond its dynamic
    threshold, which 16 MiB frees raise to 32 MiB: the body's arena keeps up to that
    (as before this change)."""
    from test_robustness import is_sanitized, rss_kb
    dep = make_deployment()
    pid = dep.worker_procs[0].pid
    user = h.new_id()
    body = os.urandom(16 * MIB)
    with dep.connect(user) as warm:  # one big message first: code, arenas, buffers
        dep.api().send(body[:MIB], user=user, type="binary").expect(200)
        assert warm.recv_data(30) == body[:MIB]
    time.sleep(2.5)
    base = rss_kb(pid)

    async def main():
        ws = await lib_connect(dep, user)
        try:
            for i in range(3):
                j = dep.api().send(body, user=user, type="binary").expect(200)
                assert j["connections"] == 1, j
                assert await asyncio.wait_for(ws.recv(), 60) == body, i
        finally:
            await ws.close()

    run(main(), timeout=120)
    peak = rss_kb(pid)
    print(f"worker RSS {base} kB, after 3 x 16 MiB {peak} kB")
    if is_sanitized(pid):
        return  # ASan's quarantine and shadow memory make RSS meaningless
    h.wait_until(lambda: rss_kb(pid) - base <= 4096, 10,
                 what=f"the worker's RSS to come back near {base} kB (now {rss_kb(pid)} kB)")
