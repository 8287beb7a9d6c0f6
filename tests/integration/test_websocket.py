"""RFC 6455 conformance of the worker, on raw sockets: close codes for protocol
violations, the closing handshake, ping/pong, fragmentation, keepalive."""
import struct
import time

import pytest

import dsock_helpers as h
from dsock_helpers import OP_BIN, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT


def open_ws(dep, user=None, worker=0):
    return dep.connect(user or h.new_id(), worker=worker)


def assert_closed_with(ws, code):
    got, _ = ws.expect_close()
    assert got == code, f"expected close code {code}, got {got}"
    assert ws.wait_eof(5), "server did not close the TCP connection after the close handshake"


VIOLATIONS = {
    "unmasked_frame": lambda ws: ws.send_frame(OP_TEXT, b"hello", mask=False),
    "rsv1": lambda ws: ws.send_frame(OP_TEXT, b"hello", rsv=4),
    "rsv2": lambda ws: ws.send_frame(OP_BIN, b"hello", rsv=2),
    "rsv3_on_ping": lambda ws: ws.send_frame(OP_PING, b"", rsv=1),
    "opcode_3": lambda ws: ws.send_frame(3, b"x"),
    "opcode_7": lambda ws: ws.send_frame(7, b""),
    "opcode_0xB": lambda ws: ws.send_frame(0xB, b"x"),
    "opcode_0xF": lambda ws: ws.send_frame(0xF, b""),
    "fragmented_ping": lambda ws: ws.send_frame(OP_PING, b"a", fin=False),
    "fragmented_close": lambda ws: ws.send_frame(OP_CLOSE, struct.pack("!H", 1000), fin=False),
    "ping_over_125": lambda ws: ws.send_frame(OP_PING, b"x" * 126),
    "continuation_without_start": lambda ws: ws.send_frame(OP_CONT, b"x"),
    "continuation_fin_without_start": lambda ws: ws.send_frame(OP_CONT, b"x", fin=False),
    "new_message_inside_fragmented": lambda ws: (ws.send_frame(OP_TEXT, b"a", fin=False),
                                                 ws.send_frame(OP_TEXT, b"b")),
    "binary_inside_fragmented_text": lambda ws: (ws.send_frame(OP_TEXT, b"a", fin=False),
                                                 ws.send_frame(OP_BIN, b"b")),
    "close_payload_one_byte": lambda ws: ws.send_frame(OP_CLOSE, b"\x03"),
    "close_code_1005": lambda ws: ws.send_frame(OP_CLOSE, struct.pack("!H", 1005)),
    "close_code_999": lambda ws: ws.send_frame(OP_CLOSE, struct.pack("!H", 999)),
    "close_code_1015": lambda ws: ws.send_frame(OP_CLOSE, struct.pack("!H", 1015)),
}


@pytest.mark.parametrize("name", list(VIOLATIONS))
def test_protocol_violation_1002(cluster, name):
    with open_ws(cluster) as ws:
        VIOLATIONS[name](ws)
        assert_closed_with(ws, 1002)


INVALID_UTF8 = {
    "lone_ff": [b"\xff"],
    "overlong": [b"\xc0\xaf"],
    "surrogate": [b"a\xed\xa0\x80b"],
    "over_max": [b"\xf4\x90\x80\x80"],
    "truncated_at_end": [b"abc\xe2\x82"],
    "split_invalid": [b"abc\xe2", b"\x28\xa1"],          # bad continuation in 2nd fragment
    "split_truncated": [b"abc", b"\xf0\x9f\x98"],          # message ends mid-character
    "split_then_invalid": [b"\xce", b"\xbaok", b"\xff"],   # valid split, then invalid byte
}


@pytest.mark.parametrize("name", list(INVALID_UTF8))
def test_invalid_utf8_text_1007(cluster, name):
    parts = INVALID_UTF8[name]
    with open_ws(cluster) as ws:
        for i, part in enumerate(parts):
            ws.send_frame(OP_TEXT if i == 0 else OP_CONT, part, fin=(i == len(parts) - 1))
        assert_closed_with(ws, 1007)


def test_invalid_utf8_close_reason_1007(cluster):
    with open_ws(cluster) as ws:
        ws.send_frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff\xfe")
        assert_closed_with(ws, 1007)


def test_valid_utf8_split_across_fragments(cluster):
    text = "κόσμε 😀 ok".encode()
    with open_ws(cluster) as ws:
        # every split point, including in the middle of multi-byte characters
        for cut in range(1, len(text)):
            ws.send_frame(OP_TEXT, text[:cut], fin=False)
            ws.send_frame(OP_CONT, text[cut:])
        # byte by byte
        ws.send_frame(OP_TEXT, text[:1], fin=False)
        for i in range(1, len(text) - 1):
            ws.send_frame(OP_CONT, text[i:i + 1], fin=False)
        ws.send_frame(OP_CONT, text[-1:])
        assert ws.is_open(), "valid fragmented UTF-8 was refused"


def test_binary_not_utf8_checked(cluster):
    with open_ws(cluster) as ws:
        ws.send_binary(bytes(range(256)))
        ws.send_frame(OP_BIN, b"\xff", fin=False)
        ws.send_frame(OP_CONT, b"\xfe")
        ws.send_text("")  # empty text message is valid
        assert ws.is_open()


def test_control_frames_interleaved_in_fragmented_message(cluster):
    user = h.new_id()
    with open_ws(cluster, user) as ws:
        ws.send_frame(OP_TEXT, b"part1-", fin=False)
        ws.send_frame(OP_PING, b"mid")
        ws.send_frame(OP_CONT, b"part2-", fin=False)
        ws.send_frame(OP_PONG, b"unsolicited")
        ws.send_frame(OP_CONT, b"part3")
        f = ws.recv_frame()
        assert (f.opcode, f.payload) == (OP_PONG, b"mid"), f
        assert ws.is_open()
        cluster.api().send(b"still-here", user=user, type="text").expect(200)
        assert ws.recv_message() == (OP_TEXT, b"still-here")


@pytest.mark.parametrize("payload", [b"", b"p", bytes(range(125))], ids=["empty", "one", "max125"])
def test_ping_pong_same_payload(cluster, payload):
    with open_ws(cluster) as ws:
        ws.ping(payload)
        f = ws.recv_frame()
        assert f.opcode == OP_PONG and f.fin and f.payload == payload, f


def test_client_messages_are_discarded(cluster):
    user = h.new_id()
    with open_ws(cluster, user) as ws:
        ws.send_text("hello server")
        ws.send_binary(b"\x00\x01" * 5000)
        ws.expect_no_message(0.3)
        assert ws.is_open()


@pytest.mark.parametrize("code,reason", [(1000, b""), (1000, b"bye"), (1001, b""), (4000, b"app"),
                                         (None, b"")])
def test_client_close_is_answered(cluster, code, reason):
    user = h.new_id()
    with open_ws(cluster, user) as ws:
        ws.send_close(code, reason)
        got, _ = ws.expect_close(reply=False)
        # api.md: 1000 answers a client close; echoing the client's code is RFC-typical.
        expected = {1000, 1005} if code is None else {1000, code}
        assert got in expected, f"client closed with {code}, server answered {got}"
        assert ws.wait_eof(5), "server did not close TCP after the closing handshake"
    h.wait_until(lambda: cluster.api().info(user=user).expect(200)["connections"] == [], 5,
                 what="closed connection to leave /info")


def test_message_size_limit_1009(make_deployment):
    dep = make_deployment(worker_opts={"max-message-bytes": 1000})
    with open_ws(dep) as ws:  # exactly at the limit is fine
        ws.send_binary(b"x" * 1000)
        ws.send_frame(OP_TEXT, b"y" * 600, fin=False)
        ws.send_frame(OP_CONT, b"y" * 400)
        assert ws.is_open()
    with open_ws(dep) as ws:
        ws.send_binary(b"x" * 1001)
        assert_closed_with(ws, 1009)
    with open_ws(dep) as ws:  # over the limit only when fragments add up
        ws.send_frame(OP_TEXT, b"y" * 600, fin=False)
        ws.send_frame(OP_CONT, b"y" * 401)
        assert_closed_with(ws, 1009)
    with open_ws(dep) as ws:  # a huge declared length is refused from the header alone
        ws.send_raw(h.encode_frame(OP_BIN, b"", length=1 << 40))
        assert_closed_with(ws, 1009)


def test_server_pings_and_last_ping(make_deployment):
    dep = make_deployment(worker_opts={"ping-interval": 1, "ping-timeout": 4})
    user = h.new_id()
    with open_ws(dep, user) as ws:
        deadline = time.monotonic() + 3
        while True:
            f = ws.recv_frame(max(0.01, deadline - time.monotonic()))
            if f.opcode == OP_PING:
                break
        assert len(f.payload) <= 125
        # answering the server's ping moves lastPing
        before = dep.api().info(user=user).expect(200)["connections"][0]["lastPing"]
        time.sleep(max(0.0, before + 1.05 - time.time()))
        ws.pong(f.payload)
        h.wait_until(lambda: dep.api().info(user=user).expect(200)["connections"][0]["lastPing"]
                     > before, 3, what="lastPing to move after a pong")


def test_last_ping_updates_after_client_ping(cluster):
    user = h.new_id()
    with open_ws(cluster, user) as ws:
        before = cluster.api().info(user=user).expect(200)["connections"][0]["lastPing"]
        time.sleep(max(0.0, before + 1.05 - time.time()))
        ws.ping(b"x")
        assert ws.recv_frame().opcode == OP_PONG
        after = h.wait_until(
            lambda: (lambda lp: lp if lp > before else None)(
                cluster.api().info(user=user).expect(200)["connections"][0]["lastPing"]),
            3, what="lastPing to move after a client ping")
        assert after <= int(time.time()) + 1


def test_last_ping_updates_after_unsolicited_pong(cluster):
    user = h.new_id()
    with open_ws(cluster, user) as ws:
        before = cluster.api().info(user=user).expect(200)["connections"][0]["lastPing"]
        time.sleep(max(0.0, before + 1.05 - time.time()))
        ws.pong(b"")
        h.wait_until(lambda: cluster.api().info(user=user).expect(200)["connections"][0]
                     ["lastPing"] > before, 3, what="lastPing to move after a pong")


def test_silent_client_closed_after_ping_timeout(make_deployment):
    dep = make_deployment(worker_opts={"ping-interval": 1, "ping-timeout": 2})
    silent_user, live_user = h.new_id(), h.new_id()
    silent = open_ws(dep, silent_user)
    live = open_ws(dep, live_user)
    t0 = time.monotonic()
    closed_at = None
    with silent, live:
        # The live client answers pings; the silent one never sends anything.
        while time.monotonic() - t0 < 6:
            if closed_at is not None and time.monotonic() - t0 >= 4:
                break  # the live client outlived ping-timeout by 2 s
            try:
                f = live.recv_frame(0.1)
                assert f.opcode in (OP_PING, OP_PONG), f"live client got {f}"
                if f.opcode == OP_PING:
                    live.pong(f.payload)
            except TimeoutError:
                pass
            if closed_at is None and silent.wait_eof(0.01):
                closed_at = time.monotonic() - t0
        assert closed_at is not None, "silent client still connected 6 s after ping-timeout 2"
        assert closed_at >= 1.5, f"silent client closed too early ({closed_at:.1f}s)"
        assert live.is_open(), "a client answering pings was closed"
    h.wait_until(lambda: dep.api().info(user=silent_user).expect(200)["connections"] == [], 3,
                 what="dead client to leave /info")
