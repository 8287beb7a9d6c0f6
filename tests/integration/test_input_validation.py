"""Input validation (issue 7, items 3, 8, 10 and 12): identifiers from outside
(JWT sub/sid, /claim ids, bus targets) hold no control character, integer
parameters are a sign and digits only, a repeated parameter's first non-empty value
wins, and a worker checks what arrives on its Redis channel as strictly as the API
checks a request. The rules are in docs/api.md and docs/redis.md."""
import time
import urllib.parse

import jwt as pyjwt
import pytest

import dsock_helpers as h


def raw_request(addr, method, path, query, body=b"", timeout=5.0):
    """One request with the query string written exactly as given (no re-encoding)."""
    req = (f"{method} {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
           f"Connection: close\r\n\r\n").encode() + body
    return h.raw_http(addr, req, timeout=timeout).response()


def make_jwt(secret, payload):
    return pyjwt.encode(payload, secret, algorithm="HS256")


def expect_refused(addr, query, status, code):
    res, ws = h.ws_handshake(addr, query)
    if ws is not None:
        ws.close()
    assert ws is None, f"/connect?{query} was upgraded (101), expected {status} {code}"
    res.response().expect(status, code)


# ---------------------------------------------------------------------------
# Item 3: control characters in identifiers


def test_jwt_sub_with_nul_cannot_become_another_user(cluster):
    """"victim\\u0000-attacker" used to connect as "victim" and get victim's messages."""
    victim = h.new_id("victim")
    exp = int(time.time()) + 60
    with cluster.connect(victim) as vws:
        tok = make_jwt(cluster.jwt_secret, {"sub": victim + "\x00-attacker", "exp": exp})
        res, ws = h.ws_handshake(cluster.worker(0), "jwt=" + tok)
        if ws is not None:  # the defect: show what the attacker would receive
            with ws:
                cluster.api().send(b"for-victim", user=victim, type="text").expect(200)
                got = ws.recv_data()
            pytest.fail(f"JWT with a NUL in sub was accepted; the attacker received {got!r}")
        res.response().expect(401, "INVALID_JWT")
        cluster.api().send(b"for-victim", user=victim, type="text").expect(200)
        assert vws.recv_data() == b"for-victim"
        assert len(cluster.api().info(user=victim).expect(200)["connections"]) == 1


@pytest.mark.parametrize("bad", ["\x00", "\n", "\r", "\t", "\x1b", "\x7f", "\x85", "\x9b"],
                         ids=["nul", "lf", "cr", "tab", "esc", "del", "nel", "csi"])
def test_jwt_ids_with_control_characters_are_refused(cluster, bad):
    exp = int(time.time()) + 60
    user = h.new_id()
    for payload in ({"sub": user + bad + "x", "exp": exp},
                    {"sub": bad + user, "exp": exp},
                    {"sub": user, "sid": "s" + bad, "exp": exp}):
        expect_refused(cluster.worker(0), "jwt=" + make_jwt(cluster.jwt_secret, payload),
                       401, "INVALID_JWT")
    # the same token without the control character is fine
    tok = make_jwt(cluster.jwt_secret, {"sub": user, "sid": "s\u00a0\u00e9", "exp": exp})
    with h.ws_connect(cluster.worker(0), "jwt=" + tok) as ws:
        assert ws.is_open()


def test_jwt_duplicate_or_nul_member_names_are_refused(cluster):
    """cJSON took the first "sub", or a member named "sub\\u0000x", as the sub."""
    exp = int(time.time()) + 60
    user = h.new_id()
    secret = cluster.jwt_secret.encode()
    for body in ('{"sub":"%s","sub":"other","exp":%d}' % (user, exp),
                 '{"sub\\u0000x":"%s","exp":%d}' % (user, exp)):
        tok = pyjwt.api_jws.encode(body.encode(), secret, algorithm="HS256")
        expect_refused(cluster.worker(0), "jwt=" + tok, 401, "INVALID_JWT")


@pytest.mark.parametrize("q", ["user=a%0Ab", "user=%01a", "user=a%09", "user=a%7F",
                               "user=a%C2%85", "user=a%C2%9F", "user=ok&session=s%0D",
                               "user=ok&id=c%1B%5B2J"])
def test_claim_refuses_control_characters(cluster, q):
    res = raw_request(cluster.apis[0], "POST", "/claim", f"token={cluster.token}&{q}")
    res.expect(400, "INVALID_CHARACTERS")


def test_claim_codes_stay_stable(cluster):
    """Not UTF-8 stays INVALID_UTF8 (also when a control character comes too),
    %00 stays a malformed request, and non-control characters are fine."""
    tok = cluster.token
    raw_request(cluster.apis[0], "POST", "/claim", f"token={tok}&user=a%FF").expect(
        400, "INVALID_UTF8")
    raw_request(cluster.apis[0], "POST", "/claim", f"token={tok}&user=a%0A&session=%FF").expect(
        400, "INVALID_UTF8")
    raw_request(cluster.apis[0], "POST", "/claim", f"token={tok}&user=a%00b").expect(
        400, "MALFORMED_REQUEST")
    user = h.new_id() + " \u00a0\u200b\u202e"
    c = cluster.api().claim(user=user).expect(200)["claim"]
    assert c["user"] == user


def test_targets_with_control_characters_match_nothing(cluster):
    api = cluster.apis[0]
    tok = cluster.token
    res = raw_request(api, "GET", "/info", f"token={tok}&user=a%0Ab")
    assert res.expect(200) == {"success": True, "connections": [], "claims": []}
    res = raw_request(api, "POST", "/send", f"token={tok}&id=c%01&type=text", b"x")
    assert res.expect(200) == {"success": True, "connections": 0, "workers": 0}
    res = raw_request(api, "POST", "/disconnect", f"token={tok}&user=u&session=%7F")
    assert res.expect(200) == {"success": True, "connections": 0, "workers": 0}
    expect_refused(cluster.worker(0), "claim=c%0A", 401, "MISSING_CLAIM")


# ---------------------------------------------------------------------------
# Item 8: integer parameters


@pytest.mark.parametrize("ws", ["%0A", "%0B", "%0C", "%0D", "%09", "%20", "+"],
                         ids=["lf", "vt", "ff", "cr", "tab", "space", "plus-is-space"])
def test_integer_parameters_refuse_leading_whitespace(cluster, ws):
    api, tok = cluster.apis[0], cluster.token
    raw_request(api, "POST", "/claim", f"token={tok}&user=u&duration={ws}30").expect(
        400, "INVALID_DURATION")
    exp = int(time.time()) + 600
    raw_request(api, "POST", "/claim", f"token={tok}&user=u&expiration={ws}{exp}").expect(
        400, "INVALID_EXPIRATION")


@pytest.mark.parametrize("v", ["30%0A", "30%20", "3%200", "0x1e", "30.0", "3e1", "--30",
                               "%2B-30", "%EF%BC%93"])
def test_integer_parameters_are_sign_and_digits_only(cluster, v):
    raw_request(cluster.apis[0], "POST", "/claim",
                f"token={cluster.token}&user=u&duration={v}").expect(400, "INVALID_DURATION")


def test_integer_parameters_accept_sign_and_leading_zeros(cluster):
    api, tok = cluster.apis[0], cluster.token
    before = int(time.time())
    c = raw_request(api, "POST", "/claim", f"token={tok}&user=u&duration=%2B0030").expect(200)
    assert before + 30 <= c["claim"]["expiration"] <= int(time.time()) + 30
    raw_request(api, "POST", "/claim", f"token={tok}&user=u&duration=-5").expect(
        400, "NEGATIVE_DURATION")
    exp = int(time.time()) + 600
    c = raw_request(api, "POST", "/claim", f"token={tok}&user=u&expiration=%2B{exp}").expect(200)
    assert c["claim"]["expiration"] == exp


# ---------------------------------------------------------------------------
# Item 10: repeated parameters: the first non-empty value wins


def test_repeated_token_first_non_empty_wins(cluster):
    api, tok = cluster.apis[0], cluster.token
    user = h.new_id()
    raw_request(api, "GET", "/info", f"token=&token={tok}&user={user}").expect(200)
    raw_request(api, "GET", "/info", f"token={tok}&token=wrong&user={user}").expect(200)
    raw_request(api, "GET", "/info", f"token=wrong&token={tok}&user={user}").expect(
        401, "INVALID_AUTHORIZATION")
    raw_request(api, "GET", "/info", f"token=&token=&user={user}").expect(
        401, "INVALID_AUTHORIZATION")


def test_repeated_api_parameters_first_non_empty_wins(cluster):
    api, tok = cluster.apis[0], cluster.token
    a, b = h.new_id(), h.new_id()
    c = raw_request(api, "POST", "/claim",
                    f"token={tok}&user=&user={a}&user={b}&session=&session=s1&session=s2"
                    f"&duration=&duration=120&duration=x").expect(200)["claim"]
    assert (c["user"], c["session"]) == (a, "s1")
    assert c["expiration"] >= int(time.time()) + 100
    with h.ws_connect(cluster.worker(0), "claim=" + urllib.parse.quote(c["id"], safe="")) as ws:
        res = raw_request(api, "POST", "/send", f"token={tok}&user=&user={a}&user={b}"
                          "&type=&type=text&type=binary", b"first")
        assert res.expect(200)["connections"] == 1
        assert ws.recv_message() == (1, b"first")  # text, as the first non-empty type


def test_repeated_connect_parameters_first_non_empty_wins(cluster):
    user = h.new_id()
    claim = cluster.claim(user)
    with h.ws_connect(cluster.worker(0), f"claim=&claim={claim}&claim=other") as ws:
        assert ws.is_open()
    tok = make_jwt(cluster.jwt_secret, {"sub": user, "exp": int(time.time()) + 60})
    with h.ws_connect(cluster.worker(0), f"jwt=&jwt={tok}&jwt=garbage") as ws:
        assert ws.is_open()
    expect_refused(cluster.worker(0), f"jwt=garbage&jwt={tok}", 401, "INVALID_JWT")


# ---------------------------------------------------------------------------
# Item 12: messages from the bus (Redis deployment only)


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def worker_message(kind=0, connection=b"", user=b"", session=b"", body=b""):
    """protos/dsock.proto WorkerMessage, encoded by hand (fields 1..5)."""
    out = b""
    if kind:
        out += b"\x08" + _varint(kind)
    for tag, v in ((0x12, connection), (0x1A, user), (0x22, session), (0x2A, body)):
        if isinstance(v, str):
            v = v.encode()
        if v:
            out += bytes([tag]) + _varint(len(v)) + v
    return out


TEXT, BINARY, DISCONNECT = 0, 1, 2


def _channel(dep, user):
    conns = dep.api().info(user=user).expect(200)["connections"]
    assert len(conns) == 1, conns
    return "worker:" + conns[0]["worker"], conns[0]["id"]


@pytest.mark.redis_only
def test_bus_messages_are_validated(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        channel, conn_id = _channel(cluster, user)
        r = cluster.redis.client()
        bad = [
            worker_message(TEXT, user=user, body=b"bad\xff\xfe"),          # text not UTF-8
            worker_message(TEXT, user=user, body=b"\xed\xa0\x80"),         # a surrogate
            worker_message(TEXT, user=user + "\x00junk", body=b"nul-user"),  # used to reach user
            worker_message(BINARY, connection=conn_id + "\x00x", body=b"nul-conn"),
            worker_message(TEXT, user=user, session="s\x00", body=b"nul-session"),
            worker_message(TEXT, user=user + "\n", body=b"lf-user"),
            worker_message(TEXT, user=(user + "\xc2\x85").encode("latin-1"), body=b"c1"),
            worker_message(TEXT, user=b"\xff" + user.encode(), body=b"not-utf8-user"),
            worker_message(DISCONNECT, user=user + "\x00x"),               # used to close it
            worker_message(DISCONNECT, user=user, body=b"body"),
            worker_message(99, user=user, body=b"kind"),
            worker_message(TEXT, body=b"no-target"),
            b"\xff\xff\xff",                                                # not protobuf
        ]
        for m in bad:
            r.publish(channel, m)
        r.publish(channel, worker_message(TEXT, user=user, body="ok-\u00e9".encode()))
        r.publish(channel, worker_message(BINARY, connection=conn_id, body=b"\x00\xff"))
        assert ws.recv_message() == (1, "ok-\u00e9".encode())
        assert ws.recv_message() == (2, b"\x00\xff")
        cluster.api().send(b"after", user=user, type="text").expect(200)
        assert ws.recv_message() == (1, b"after")
        assert ws.is_open()


@pytest.mark.redis_only
def test_bus_drops_are_counted_and_the_warning_rate_limited(make_deployment):
    dep = make_deployment(worker_opts={"max-body-bytes": 64})
    user = h.new_id()
    with dep.connect(user) as ws:
        channel, _ = _channel(dep, user)
        r = dep.redis.client()
        for i in range(300):
            r.publish(channel, worker_message(TEXT, user=user, body=b"\xff%d" % i))
        r.publish(channel, worker_message(BINARY, user=user, body=b"x" * 65))  # over the limit
        r.publish(channel, worker_message(BINARY, user=user, body=b"y" * 64))
        assert ws.recv_message() == (2, b"y" * 64)
        assert ws.is_open()
    log = dep.worker_procs[0].log(tail_lines=100000)
    warnings = [ln for ln in log.splitlines() if "invalid bus messages" in ln]
    # one warning at the first drop; the rest of the burst is counted, not logged
    assert 1 <= len(warnings) <= 2, warnings
    assert "dropped_total=1 " in warnings[0] or warnings[0].endswith("dropped_total=1"), warnings
