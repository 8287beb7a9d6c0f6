"""permessage-deflate (RFC 7692): negotiation with real clients (python3-websockets
and hand-made offers), compressed delivery shared by every recipient with the same
parameters, mixed recipients, compressed client messages (fragmented, invalid, a zip
bomb), and compression = off. docs/api.md, "/connect: compression"."""
import asyncio
import json
import os
import struct
import time
import zlib

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

import dsock_helpers as h
from dsock_helpers import OP_BIN, OP_CONT, OP_PING, OP_TEXT

OFFER = "Sec-WebSocket-Extensions"
FULL_ANSWER = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def run(coro, timeout=60):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def json_message(size=10_000):
    """A typical JSON message of about `size` bytes (repetitive keys, varied values)."""
    items, n = [], 0
    while n < size:
        item = {"id": len(items), "user": f"user-{len(items) % 37}", "score": len(items) * 7.25,
                "tags": ["alpha", "beta", "gamma"][: len(items) % 3 + 1], "active": len(items) % 2 == 0}
        items.append(item)
        n += len(json.dumps(item)) + 1
    return json.dumps({"type": "update", "items": items}).encode()


async def lib_connect(dep, user, **kw):
    claim = dep.claim(user)
    return await websockets.connect(dep.ws_url(0, f"claim={claim}"), ping_interval=None,
                                    max_size=None, close_timeout=3, open_timeout=5, **kw)


def deflate_ws(dep, user, offer="permessage-deflate; client_max_window_bits"):
    """A raw client that offered `offer`; returns (response headers, RawWS)."""
    claim = dep.claim(user)
    res, ws = h.ws_handshake(dep.worker(0), f"claim={claim}", extra_headers={OFFER: offer})
    assert res.status == 101, res
    return res.headers, ws


def recv_frame(ws, timeout=5.0):
    """Next frame as (fin, rsv, opcode, payload), RSV bits allowed (RawWS.recv_frame
    refuses them)."""
    deadline = time.monotonic() + timeout
    ws._need(2, deadline)
    b0, b1 = ws.buf[0], ws.buf[1]
    assert not b1 & 0x80, "server sent a masked frame"
    n, pos = b1 & 0x7F, 2
    if n == 126:
        ws._need(4, deadline)
        n, pos = struct.unpack("!H", ws.buf[2:4])[0], 4
    elif n == 127:
        ws._need(10, deadline)
        n, pos = struct.unpack("!Q", ws.buf[2:10])[0], 10
    ws._need(pos + n, deadline)
    payload = ws.buf[pos:pos + n]
    ws.buf = ws.buf[pos + n:]
    return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload


def recv_data_frame(ws, timeout=5.0):
    while True:
        fin, rsv, op, payload = recv_frame(ws, timeout)
        if op == OP_PING:
            ws.pong(payload)
            continue
        assert op in (OP_TEXT, OP_BIN), (op, payload[:50])
        assert fin
        return rsv, op, payload


def inflate(payload, bits=15):
    d = zlib.decompressobj(-bits)
    return d.decompress(payload + b"\x00\x00\xff\xff") + d.flush()


def client_deflate(data, bits=15):
    c = zlib.compressobj(6, zlib.DEFLATED, -bits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def expect_close(ws, code):
    got, reason = ws.expect_close()
    assert got == code, (got, reason)


# ---------------------------------------------------------------------------
# Negotiation


def test_websockets_library_negotiates_and_receives(cluster):
    """python3-websockets' default offer ("permessage-deflate; client_max_window_bits")
    is accepted with both no_context_takeover parameters, and text and binary come
    through, compressed or not (under compression_min_bytes)."""
    user = h.new_id()
    big = json_message()
    binary = os.urandom(3000) + bytes(20000)  # part random, part compressible

    async def main():
        ws = await lib_connect(cluster, user)
        try:
            assert ws.response_headers[OFFER] == FULL_ANSWER
            (ext,) = ws.extensions
            assert ext.name == "permessage-deflate"
            assert ext.remote_no_context_takeover and ext.local_no_context_takeover
            assert ext.local_max_window_bits == 15 and ext.remote_max_window_bits == 15
            api = cluster.api()
            api.send(big, user=user, type="text").expect(200)
            api.send(binary, user=user, type="binary").expect(200)
            api.send(b"tiny", user=user, type="text").expect(200)
            api.send("é€😀".encode() * 500, user=user, type="text").expect(200)
            assert await asyncio.wait_for(ws.recv(), 5) == big.decode()
            assert await asyncio.wait_for(ws.recv(), 5) == binary
            assert await asyncio.wait_for(ws.recv(), 5) == "tiny"
            assert await asyncio.wait_for(ws.recv(), 5) == "é€😀" * 500
            # and what it sends compressed (text and binary) is accepted
            await ws.send(big.decode())
            await ws.send(binary)
            await asyncio.wait_for(await ws.ping(b"alive"), 5)
        finally:
            await ws.close()

    run(main())


@pytest.mark.parametrize("offer,answer", [
    # RFC 7692 examples (5, 7.1.1, 7.1.2) and their combinations
    ("permessage-deflate", FULL_ANSWER),
    ("permessage-deflate; client_no_context_takeover", FULL_ANSWER),
    ("permessage-deflate; server_no_context_takeover", FULL_ANSWER),
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover", FULL_ANSWER),
    ("permessage-deflate; client_max_window_bits", FULL_ANSWER),
    ("permessage-deflate; client_max_window_bits=10", FULL_ANSWER),
    ("permessage-deflate; client_max_window_bits=8", FULL_ANSWER),
    ("permessage-deflate; server_max_window_bits=10", FULL_ANSWER + "; server_max_window_bits=10"),
    ('permessage-deflate; server_max_window_bits="12"; client_max_window_bits',
     FULL_ANSWER + "; server_max_window_bits=12"),
    # the RFC's example of a fallback: the first offer cannot be served (8 bits)
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate",
     FULL_ANSWER),
    ("permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
     "permessage-deflate; client_max_window_bits",
     FULL_ANSWER + "; server_max_window_bits=10"),
    ("x-webkit-deflate-frame, permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=11",
     FULL_ANSWER + "; server_max_window_bits=11"),
    # declined: nothing acceptable (never a failed handshake)
    ("permessage-deflate; server_max_window_bits", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("permessage-deflate; server_max_window_bits=010", None),
    ("permessage-deflate; client_max_window_bits=7", None),
    ("permessage-deflate; server_no_context_takeover; server_no_context_takeover", None),
    ("permessage-deflate; client_no_context_takeover=1", None),
    ("permessage-deflate; unknown", None),
    ("permessage-deflate;;", None),
    ('permessage-deflate; server_max_window_bits="10', None),
    ("x-webkit-deflate-frame", None),
    ("", None),
])
def test_offers(cluster, offer, answer):
    user = h.new_id()
    headers, ws = deflate_ws(cluster, user, offer)
    with ws:
        assert headers.get("sec-websocket-extensions") == answer
        assert ws.is_open()


def test_offers_over_several_headers(cluster):
    """Two Sec-WebSocket-Extensions headers: the first acceptable offer in order."""
    user = h.new_id()
    claim = cluster.claim(user)
    req, _ = h.handshake_request(cluster.worker(0), f"claim={claim}")
    req = req[:-2] + (b"Sec-WebSocket-Extensions: permessage-deflate; bogus\r\n"
                      b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=13\r\n\r\n")
    import socket
    with socket.create_connection(cluster.worker(0), timeout=5) as s:
        s.sendall(req)
        res, _ = h.read_http_response(s)
    assert res.status == 101
    assert res.headers["sec-websocket-extensions"] == FULL_ANSWER + "; server_max_window_bits=13"


# ---------------------------------------------------------------------------
# Sending


def test_compressed_frames_and_min_bytes(cluster):
    """A message of at least compression_min_bytes (256) goes with RSV1, deflated on its
    own; a smaller one and an incompressible one go plain (RSV1 clear)."""
    user = h.new_id()
    headers, ws = deflate_ws(cluster, user, "permessage-deflate")
    big = json_message()
    noise = os.urandom(5000)
    with ws:
        api = cluster.api()
        for body, t in ((big, "text"), (b"x" * 255, "text"), (b"y" * 256, "binary"), (noise, "binary")):
            api.send(body, user=user, type=t).expect(200)
        rsv, op, p = recv_data_frame(ws)
        assert (rsv, op) == (4, OP_TEXT) and inflate(p) == big
        assert len(p) * 3 < len(big), (len(p), len(big))
        assert recv_data_frame(ws) == (0, OP_TEXT, b"x" * 255)
        rsv, op, p = recv_data_frame(ws)
        assert (rsv, op) == (4, OP_BIN) and inflate(p) == b"y" * 256
        assert recv_data_frame(ws) == (0, OP_BIN, noise)


def test_mixed_recipients_one_send(cluster):
    """One send to a user with six connections: the library with and without
    compression, raw clients with two different server windows and none. Everyone
    receives the same message; clients with the same parameters get the same bytes."""
    user = h.new_id()
    big = json_message(20000)

    async def main():
        a = await lib_connect(cluster, user)
        b = await lib_connect(cluster, user, compression=None)
        c = await lib_connect(cluster, user, extensions=[
            ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=True)])
        raws = [deflate_ws(cluster, user, "permessage-deflate")[1] for _ in range(2)]
        raws.append(deflate_ws(cluster, user, "permessage-deflate; server_max_window_bits=10")[1])
        plain = h.ws_connect(cluster.worker(0), f"claim={cluster.claim(user)}")
        try:
            assert b.response_headers.get(OFFER) is None and not b.extensions
            assert c.response_headers[OFFER] == FULL_ANSWER + "; server_max_window_bits=10"
            r = cluster.api().send(big, user=user, type="text").expect(200)
            assert r["connections"] == 7
            for ws in (a, b, c):
                assert await asyncio.wait_for(ws.recv(), 5) == big.decode()
            frames = [recv_data_frame(ws) for ws in raws]
            assert frames[0] == frames[1]  # the same compressed frame
            assert frames[0][0] == 4 and frames[2][0] == 4
            assert inflate(frames[0][2]) == big and inflate(frames[2][2], 10) == big
            assert plain.recv_message() == (OP_TEXT, big)
        finally:
            for ws in raws + [plain]:
                ws.close()
            for ws in (a, b, c):
                await ws.close()

    run(main())


# ---------------------------------------------------------------------------
# Receiving


def test_compressed_client_messages(cluster):
    """Compressed client messages, whole and fragmented (RSV1 on the first frame
    only), text and binary, even empty: accepted (and discarded)."""
    user = h.new_id()
    headers, ws = deflate_ws(cluster, user)
    big = json_message(50000)
    with ws:
        ws.send_frame(OP_TEXT, client_deflate(big), rsv=4)
        ws.send_frame(OP_BIN, client_deflate(os.urandom(1000)), rsv=4)
        ws.send_frame(OP_TEXT, client_deflate(b""), rsv=4)
        ws.send_frame(OP_TEXT, b"", rsv=4)  # an empty payload: an empty message
        ws.send_frame(OP_TEXT, b"plain, not compressed")
        z = client_deflate(big)
        parts = [z[i:i + 700] for i in range(0, len(z), 700)]
        ws.send_frame(OP_TEXT, parts[0], rsv=4, fin=False)
        for p in parts[1:-1]:
            ws.send_frame(OP_CONT, p, fin=False)
            ws.ping(b"between")  # control frames may come between fragments
        ws.send_frame(OP_CONT, parts[-1])
        # a multi-byte character split across two fragments of a compressed text
        text = "€" * 1000
        z = client_deflate(text.encode())
        ws.send_frame(OP_TEXT, z[:5], rsv=4, fin=False)
        ws.send_frame(OP_CONT, z[5:])
        # the BFINAL form (Z_FINISH) is valid too
        c = zlib.compressobj(6, zlib.DEFLATED, -12)
        ws.send_frame(OP_TEXT, c.compress(big) + c.flush(), rsv=4)
        assert ws.is_open()


@pytest.mark.parametrize("name,send,code", [
    ("rsv1_on_continuation", lambda ws: (ws.send_frame(OP_TEXT, client_deflate(b"ab"), fin=False),
                                         ws.send_frame(OP_CONT, b"", rsv=4)), 1002),
    ("rsv1_on_ping", lambda ws: ws.send_frame(OP_PING, b"", rsv=4), 1002),
    ("rsv2", lambda ws: ws.send_frame(OP_TEXT, b"x", rsv=2), 1002),
    ("corrupt_stream", lambda ws: ws.send_frame(OP_BIN, b"\xff\xff\xff\xff\xff", rsv=4), 1002),
    ("invalid_utf8", lambda ws: ws.send_frame(OP_TEXT, client_deflate(b"ok \xc3\x28"), rsv=4), 1007),
    ("truncated_utf8", lambda ws: ws.send_frame(OP_TEXT, client_deflate("€".encode()[:2]), rsv=4), 1007),
])
def test_invalid_compressed_messages(cluster, name, send, code):
    user = h.new_id()
    headers, ws = deflate_ws(cluster, user)
    with ws:
        send(ws)
        expect_close(ws, code)


def test_rsv1_without_negotiation_is_1002(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        ws.send_frame(OP_TEXT, client_deflate(b"hello"), rsv=4)
        expect_close(ws, 1002)


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_zip_bomb_closed_with_1009(make_deployment):
    """1 MiB of zeros compressed (about 1 KiB on the wire) against a 64 KiB limit:
    1009, whole or fragmented, and inflating stops at the limit, so the worker's
    memory does not move however many bombs come."""
    dep = make_deployment(worker_opts={"max-message-bytes": 65536})
    user = h.new_id()
    bomb = client_deflate(bytes(1 << 20))
    assert len(bomb) < 2048
    # within the limit: fine
    headers, ws = deflate_ws(dep, user)
    with ws:
        ws.send_frame(OP_BIN, client_deflate(bytes(65536)), rsv=4)
        assert ws.is_open()
    pid = dep.worker_procs[0].pid

    def one(fragmented):
        headers, ws = deflate_ws(dep, user)
        with ws:
            if fragmented:
                ws.send_frame(OP_BIN, bomb[:10], rsv=4, fin=False)
                for i in range(10, len(bomb), 100):
                    ws.send_frame(OP_CONT, bomb[i:i + 100], fin=i + 100 >= len(bomb))
            else:
                ws.send_frame(OP_TEXT, bomb, rsv=4)
            expect_close(ws, 1009)

    for i in range(5):  # warm up: allocator arenas, connection structures
        one(i % 2 == 1)
    before = rss_kib(pid)
    for i in range(40):
        one(i % 2 == 1)
    after = rss_kib(pid)
    # Each bomb would be 1 MiB inflated: 40 MiB if anything kept it. The margin
    # covers allocator noise on a loaded machine.
    assert after - before < 4096, (before, after)


# ---------------------------------------------------------------------------
# compression = off


def test_compression_off_declines(make_deployment):
    dep = make_deployment(worker_opts={"compression": "off"})
    user = h.new_id()

    async def main():
        ws = await lib_connect(dep, user)
        try:
            assert ws.response_headers.get(OFFER) is None and not ws.extensions
            big = json_message()
            dep.api().send(big, user=user, type="text").expect(200)
            assert await asyncio.wait_for(ws.recv(), 5) == big.decode()
        finally:
            await ws.close()

    run(main())
    headers, ws = deflate_ws(dep, user)
    with ws:
        assert "sec-websocket-extensions" not in headers
        ws.send_frame(OP_TEXT, client_deflate(b"hello"), rsv=4)
        expect_close(ws, 1002)


# ---------------------------------------------------------------------------
# Compressed once per message and window


def test_compressed_once_per_window(make_deployment, deployment_kind):
    """dsock_messages_compressed_total: one send to 4 compressing connections with
    the default window and 2 with a 10-bit window is 2 compressions, not 6; a
    message under compression_min_bytes or one that does not shrink is none. (Each
    loop thread delivers to its own connections, so standalone runs one thread
    here: with more, a message is compressed once per window and thread.)"""
    import uuid
    from test_metrics import Scraper

    token = "tok-" + uuid.uuid4().hex
    wopts = {"token": token} if deployment_kind == "redis" else {"threads": 1}
    dep = make_deployment(token=token, worker_opts=wopts)
    metrics = Scraper(dep.workers[0], dep.token)
    name = "dsock_messages_compressed_total"
    user = h.new_id()
    conns = [deflate_ws(dep, user, "permessage-deflate")[1] for _ in range(4)]
    conns += [deflate_ws(dep, user, "permessage-deflate; server_max_window_bits=10")[1]
              for _ in range(2)]
    try:
        before = metrics.value(name)
        big = json_message()
        assert dep.api().send(big, user=user, type="text").expect(200)["connections"] == 6
        for ws in conns:
            rsv, op, p = recv_data_frame(ws)
            assert rsv == 4 and inflate(p) == big
        assert metrics.value(name) - before == 2
        dep.api().send(b"s" * 100, user=user, type="text").expect(200)
        dep.api().send(os.urandom(4000), user=user, type="binary").expect(200)
        for ws in conns:
            assert recv_data_frame(ws)[0] == 0
            assert recv_data_frame(ws)[0] == 0
        assert metrics.value(name) - before == 2
    finally:
        for ws in conns:
            ws.close()


def test_compression_value_is_checked(tmp_path):
    """compression takes auto or off; anything else refuses to start (exit 1)."""
    import subprocess
    for role in ("standalone", "worker"):
        argv = [h.DSOCK_BIN, role, "--address", f"127.0.0.1:{h.free_port()}", "--token", "t",
                "--compression", "gzip"]
        p = subprocess.run(argv, cwd=tmp_path, env=h._clean_env(), capture_output=True, timeout=20)
        out = (p.stdout + p.stderr).decode(errors="replace")
        assert p.returncode == 1, out
        assert 'compression must be auto or off, got \\"gzip\\"' in out or \
            'compression must be auto or off, got "gzip"' in out, out
