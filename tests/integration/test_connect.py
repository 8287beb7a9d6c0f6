"""Worker GET /connect: claim and JWT authentication, the order of checks, handshake
errors. Every failure must be an HTTP error response with the JSON body, never a 101."""
import base64
import json
import socket
import time

import jwt as pyjwt
import pytest

import dsock_helpers as h


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(secret, payload, alg="HS256", header=None):
    return pyjwt.encode(payload, secret, algorithm=alg, headers=header)


def expect_http_error(addr, query, status, code, **kw):
    res, ws = h.ws_handshake(addr, query, **kw)
    assert ws is None, f"/connect?{query} was upgraded (101), expected {status} {code}"
    h.json_error(res)
    res.response().expect(status, code)
    return res


def connected_info(cluster, user):
    return cluster.api().info(user=user).expect(200)["connections"]


# ---------------------------------------------------------------------------
# Claims


def test_connect_with_claim(cluster):
    user = h.new_id()
    claim = cluster.claim(user, "sess")
    with h.ws_connect(cluster.worker(0), f"claim={claim}") as ws:
        conns = connected_info(cluster, user)
        assert len(conns) == 1 and conns[0]["session"] == "sess" and conns[0]["user"] == user
        assert ws.is_open()


def test_claim_single_use(cluster):
    user = h.new_id()
    claim = cluster.claim(user)
    with h.ws_connect(cluster.worker(0), f"claim={claim}"):
        expect_http_error(cluster.worker(-1), f"claim={claim}", 401, "MISSING_CLAIM")
        expect_http_error(cluster.worker(0), f"claim={claim}", 401, "MISSING_CLAIM")
        # the claim is gone from /info as soon as it was used
        assert cluster.api().info(user=user).expect(200)["claims"] == []


def test_unknown_claim(cluster):
    expect_http_error(cluster.worker(0), f"claim={h.new_id()}", 401, "MISSING_CLAIM")


def test_concurrent_connects_one_claim(cluster):
    """Of two connects racing for one claim, exactly one gets the 101."""
    for _ in range(10):
        user = h.new_id()
        claim = cluster.claim(user)
        addrs = [cluster.worker(0), cluster.worker(-1)]
        reqs = [h.handshake_request(a, f"claim={claim}") for a in addrs]
        socks = [socket.create_connection(a, timeout=5) for a in addrs]
        try:
            for s, (req, _) in zip(socks, reqs):
                s.sendall(req)
            results = [h.read_http_response(s)[0] for s in socks]
        finally:
            for s in socks:
                s.close()
        statuses = sorted(r.status for r in results)
        assert statuses == [101, 401], [(r.status, r.body) for r in results]
        loser = [r for r in results if r.status == 401][0]
        loser.response().expect(401, "MISSING_CLAIM")


def test_expired_claim(cluster):
    claim = cluster.claim(h.new_id(), duration=1)
    time.sleep(2.1)
    res, ws = h.ws_handshake(cluster.worker(0), f"claim={claim}")
    assert ws is None
    # Redis may or may not have dropped it already.
    assert res.status == 401 and res.response().json["errorCode"] in ("MISSING_CLAIM",
                                                                      "EXPIRED_CLAIM"), res


def test_claim_wins_over_jwt(cluster):
    user = h.new_id()
    claim = cluster.claim(user, "from-claim")
    with h.ws_connect(cluster.worker(0), f"claim={claim}&jwt=garbage") as ws:
        assert connected_info(cluster, user)[0]["session"] == "from-claim"
        assert ws.is_open()
    # a bad claim is not rescued by a good JWT
    good = make_jwt(cluster.jwt_secret, {"sub": user, "exp": int(time.time()) + 60})
    expect_http_error(cluster.worker(0), f"claim={h.new_id()}&jwt={good}", 401, "MISSING_CLAIM")


def test_missing_authentication(cluster):
    for q in ("", "claim=", "jwt=", "claim=&jwt=", "other=1"):
        expect_http_error(cluster.worker(0), q, 401, "MISSING_AUTHENTICATION")


# ---------------------------------------------------------------------------
# JWT


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_jwt_algorithms(cluster, alg):
    user = h.new_id()
    tok = make_jwt(cluster.jwt_secret, {"sub": user, "sid": "s-" + alg,
                                        "exp": int(time.time()) + 60}, alg)
    with h.ws_connect(cluster.worker(0), f"jwt={tok}") as ws:
        conns = connected_info(cluster, user)
        assert len(conns) == 1 and conns[0]["session"] == "s-" + alg
        cluster.api().send(b"jwt-hello", user=user, type="text").expect(200)
        assert ws.recv_data() == b"jwt-hello"


def test_jwt_without_sid_has_no_session(cluster):
    user = h.new_id()
    tok = make_jwt(cluster.jwt_secret, {"sub": user, "exp": int(time.time()) + 60})
    with h.ws_connect(cluster.worker(0), f"jwt={tok}"):
        conns = connected_info(cluster, user)
        assert len(conns) == 1 and "session" not in conns[0], conns


def test_jwt_iat_only(cluster):
    user = h.new_id()
    tok = make_jwt(cluster.jwt_secret, {"sub": user, "iat": int(time.time())})
    with h.ws_connect(cluster.worker(0), f"jwt={tok}"):
        assert len(connected_info(cluster, user)) == 1
    old = make_jwt(cluster.jwt_secret, {"sub": user, "iat": int(time.time()) - 61})
    expect_http_error(cluster.worker(0), f"jwt={old}", 401, "INVALID_JWT")


def test_jwt_exp_wins_over_iat(cluster):
    user = h.new_id()
    t = int(time.time())
    tok = make_jwt(cluster.jwt_secret, {"sub": user, "iat": t - 600, "exp": t + 60})
    with h.ws_connect(cluster.worker(0), f"jwt={tok}"):
        pass
    tok = make_jwt(cluster.jwt_secret, {"sub": user, "iat": t, "exp": t - 5})
    expect_http_error(cluster.worker(0), f"jwt={tok}", 401, "INVALID_JWT")


def _invalid_jwts(secret, user):
    t = int(time.time())
    good = {"sub": user, "exp": t + 60}
    hs256 = make_jwt(secret, good)
    head, body, sig = hs256.split(".")
    from cryptography.hazmat.primitives.asymmetric import rsa
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alg_none = b64url(b'{"alg":"none","typ":"JWT"}') + "." + body + "."
    alg_none_sig = b64url(b'{"alg":"none","typ":"JWT"}') + "." + body + "." + sig
    # HS256 signature but the header claims HS512
    mismatch = b64url(json.dumps({"alg": "HS512", "typ": "JWT"}).encode()) + "." + body + "." + sig
    return {
        "expired": make_jwt(secret, {"sub": user, "exp": t - 10}),
        "alg_none": alg_none,
        "alg_none_with_sig": alg_none_sig,
        "rs256": pyjwt.encode(good, rsa_key, algorithm="RS256"),
        "rs256_header_hmac_sig": b64url(b'{"alg":"RS256","typ":"JWT"}') + "." + body + "." + sig,
        "es256_header": b64url(b'{"alg":"ES256","typ":"JWT"}') + "." + body + "." + sig,
        "alg_mismatch": mismatch,
        "wrong_key": make_jwt(secret + "x", good),
        "tampered_payload": head + "." + b64url(json.dumps({"sub": user + "x", "exp": t + 60})
                                                .encode()) + "." + sig,
        "bad_signature": head + "." + body + "." + b64url(b"\x00" * 32),
        "missing_sub": make_jwt(secret, {"exp": t + 60}),
        "empty_sub": make_jwt(secret, {"sub": "", "exp": t + 60}),
        "no_exp_no_iat": make_jwt(secret, {"sub": user}),
        "iat_61s_ago": make_jwt(secret, {"sub": user, "iat": t - 61}),
        "garbage": "not-a-jwt",
        "two_parts": head + "." + body,
        "four_parts": hs256 + ".x",
        "bad_base64": "!!!." + body + "." + sig,
        "bad_json": b64url(b"{not json") + "." + body + "." + sig,
    }


def test_jwt_invalid(cluster):
    user = h.new_id()
    for name, tok in _invalid_jwts(cluster.jwt_secret, user).items():
        res, ws = h.ws_handshake(cluster.worker(0), f"jwt={tok}")
        if ws is not None:
            ws.close()
        assert res.status == 401, f"{name}: expected 401 INVALID_JWT, got {res.status} {res.body!r}"
        res.response().expect(401, "INVALID_JWT")
    assert connected_info(cluster, user) == []


def test_jwt_disabled_without_secret(make_deployment):
    dep = make_deployment(jwt_secret=None)
    user = h.new_id()
    tok = make_jwt("whatever", {"sub": user, "exp": int(time.time()) + 60})
    expect_http_error(dep.worker(0), f"jwt={tok}", 401, "INVALID_JWT")
    # claims still work
    with dep.connect(user) as ws:
        assert ws.is_open()


# ---------------------------------------------------------------------------
# Handshake errors (checked after authentication is present, before the claim is taken)


@pytest.mark.parametrize("case", ["no_upgrade", "no_connection", "no_key", "bad_key",
                                  "upgrade_not_websocket"])
def test_invalid_handshake_keeps_claim(cluster, case):
    user = h.new_id()
    claim = cluster.claim(user)
    kw = {
        "no_upgrade": dict(omit=("Upgrade",)),
        "no_connection": dict(omit=("Connection",)),
        "no_key": dict(omit=("Sec-WebSocket-Key",)),
        "bad_key": dict(key="c2hvcnQ="),  # base64 of 5 bytes, not 16
        "upgrade_not_websocket": dict(extra_headers={"Upgrade": "h2c"}),
    }[case]
    expect_http_error(cluster.worker(0), f"claim={claim}", 400, "INVALID_HANDSHAKE", **kw)
    # the failed handshake did not consume the claim
    with h.ws_connect(cluster.worker(0), f"claim={claim}") as ws:
        assert ws.is_open()


def test_plain_get_without_auth(cluster):
    res = h.raw_http(cluster.worker(0), b"GET /connect HTTP/1.1\r\nHost: x\r\n\r\n")
    res.response().expect(401, "MISSING_AUTHENTICATION")


def test_wrong_websocket_version(cluster):
    claim = cluster.claim(h.new_id())
    res, ws = h.ws_handshake(cluster.worker(0), f"claim={claim}", version="8")
    assert ws is None
    assert res.status == 426, res
    assert "13" in res.headers.get("sec-websocket-version", ""), res.headers
    res.response().expect(426)
    with h.ws_connect(cluster.worker(0), f"claim={claim}"):
        pass


def test_connect_wrong_method(cluster):
    tok = make_jwt(cluster.jwt_secret, {"sub": h.new_id(), "exp": int(time.time()) + 60})
    res, ws = h.ws_handshake(cluster.worker(0), f"jwt={tok}", method="POST")
    assert ws is None
    res.response().expect(405, "METHOD_NOT_ALLOWED")


def test_connect_wrong_method_before_auth(cluster):
    # Routing before authentication: a POST without credentials is 405, not 401.
    res, ws = h.ws_handshake(cluster.worker(0), "", method="POST")
    assert ws is None
    res.response().expect(405, "METHOD_NOT_ALLOWED")


def test_worker_unknown_path(cluster):
    res = h.raw_http(cluster.worker(0), b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
    res.response().expect(404, "NOT_FOUND")


def test_websockets_library_client(cluster):
    """The websockets library (with its permessage-deflate offer) connects and
    receives; its offer is accepted (test_compression.py has the details)."""
    import asyncio
    import websockets

    user = h.new_id()
    claim = cluster.claim(user)

    async def main():
        async with websockets.connect(cluster.ws_url(0, f"claim={claim}"), ping_interval=None,
                                      max_size=None, close_timeout=3, open_timeout=5) as ws:
            assert ws.response_headers.get("Sec-WebSocket-Extensions", "").startswith(
                "permessage-deflate; server_no_context_takeover")
            cluster.api().send(b"lib", user=user, type="text").expect(200)
            assert await asyncio.wait_for(ws.recv(), 5) == "lib"

    asyncio.run(asyncio.wait_for(main(), 20))
