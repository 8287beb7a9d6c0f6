"""HTTP API: /claim, /send, /disconnect, /info parameters, defaults, precedence, JSON
shapes and error codes (docs/api.md), token handling, 404/405."""
import re
import time
import uuid

import pytest

import dsock_helpers as h


def now():
    return int(time.time())


# ---------------------------------------------------------------------------
# Token


def test_token_in_query_and_bearer(cluster):
    api = cluster.api()
    user = h.new_id()
    api.request("GET", "/info", {"user": user}, auth="query").expect(200)
    api.request("GET", "/info", {"user": user}, auth="bearer").expect(200)
    for scheme in ("bearer", "BEARER", "BeArEr"):
        r = api.request("GET", "/info", {"user": user}, auth=None,
                        headers={"Authorization": f"{scheme} {cluster.token}"})
        r.expect(200)


@pytest.mark.parametrize("case", ["missing", "empty_query", "wrong_query", "wrong_bearer",
                                  "basic", "no_scheme", "bearer_only", "empty_bearer",
                                  "query_wrong_header_right"])
def test_token_rejected(cluster, case):
    api = cluster.api()
    p = {"user": h.new_id()}
    tok = cluster.token
    kw = {
        "missing": dict(auth=None),
        "empty_query": dict(auth="query", token=""),
        "wrong_query": dict(auth="query", token=tok + "x"),
        "wrong_bearer": dict(auth="bearer", token="x" + tok),
        "basic": dict(auth=None, headers={"Authorization": f"Basic {tok}"}),
        "no_scheme": dict(auth=None, headers={"Authorization": tok}),
        "bearer_only": dict(auth=None, headers={"Authorization": "Bearer"}),
        "empty_bearer": dict(auth=None, headers={"Authorization": "Bearer "}),
        # When ?token= is present it is the one checked.
        "query_wrong_header_right": dict(auth="query", token="nope",
                                         headers={"Authorization": f"Bearer {tok}"}),
    }[case]
    for method, path in (("GET", "/info"), ("POST", "/claim"), ("POST", "/send"),
                         ("POST", "/disconnect")):
        r = api.request(method, path, dict(p, type="text"), **kw)
        r.expect(401, "INVALID_AUTHORIZATION")


def test_query_token_wins_over_wrong_header(cluster):
    api = cluster.api()
    r = api.request("GET", "/info", {"user": h.new_id()}, auth="query",
                    headers={"Authorization": "Bearer wrong"})
    r.expect(200)


def test_empty_query_token_is_absent(cluster):
    # An empty ?token= counts as absent, like every empty parameter: the header decides.
    api = cluster.api()
    r = api.request("GET", "/info", {"user": h.new_id()}, auth="query", token="",
                    headers={"Authorization": f"Bearer {cluster.token}"})
    r.expect(200)


def test_auth_checked_before_parameters(cluster):
    # Token first: a request with no parameters and a bad token is 401, not 400.
    cluster.api().request("POST", "/claim", {}, auth=None).expect(401, "INVALID_AUTHORIZATION")
    cluster.api().request("POST", "/send", {}, auth=None).expect(401, "INVALID_AUTHORIZATION")


# ---------------------------------------------------------------------------
# Routing


@pytest.mark.parametrize("path", ["/", "/nope", "/claims", "/claim/x", "/infox"])
def test_unknown_path_404(cluster, path):
    api = cluster.api()
    api.request("GET", path, auth=None).expect(404, "NOT_FOUND")
    api.request("POST", path, auth="query").expect(404, "NOT_FOUND")


@pytest.mark.parametrize("method,path,allowed", [
    ("GET", "/claim", "POST"), ("PUT", "/claim", "POST"), ("GET", "/send", "POST"),
    ("DELETE", "/send", "POST"), ("GET", "/disconnect", "POST"), ("POST", "/info", "GET"),
])
def test_wrong_method_405(cluster, method, path, allowed):
    api = cluster.api()
    for auth in (None, "query"):  # routing comes before authentication
        r = api.request(method, path, {"user": "x", "type": "text"}, auth=auth)
        r.expect(405, "METHOD_NOT_ALLOWED")
        assert allowed in r.headers.get("allow", ""), r.headers


# ---------------------------------------------------------------------------
# POST /claim


def test_claim_defaults(cluster):
    user = h.new_id()
    t0 = now()
    j = cluster.api().claim(user=user).expect(200)
    c = j["claim"]
    assert set(c) == {"id", "expiration", "user", "channels"}, c
    assert c["user"] == user
    assert isinstance(c["expiration"], int)
    assert t0 + 60 - 1 <= c["expiration"] <= now() + 60 + 1, c
    assert len(c["id"]) >= 32 and re.fullmatch(r"[A-Za-z0-9]+", c["id"]), c["id"]
    c2 = cluster.api().claim(user=user).expect(200)["claim"]
    assert c2["id"] != c["id"]


def test_claim_all_parameters(cluster):
    user, cid = h.new_id(), h.new_id("claim")
    exp = now() + 500
    c = cluster.api().claim(user=user, session="s1", expiration=exp, id=cid).expect(200)["claim"]
    assert c == {"id": cid, "expiration": exp, "user": user, "session": "s1",
                 "channels": []}


def test_claim_bearer_token(cluster):
    r = cluster.api().request("POST", "/claim", {"user": h.new_id()}, auth="bearer")
    r.expect(200)


def test_claim_duration(cluster):
    t0 = now()
    c = cluster.api().claim(user=h.new_id(), duration=10).expect(200)["claim"]
    assert t0 + 10 - 1 <= c["expiration"] <= now() + 10 + 1, c


def test_claim_expiration_wins_over_duration(cluster):
    exp = now() + 1000
    c = cluster.api().claim(user=h.new_id(), duration=10, expiration=exp).expect(200)["claim"]
    assert c["expiration"] == exp
    # and an invalid expiration is reported even with a valid duration
    cluster.api().claim(user=h.new_id(), duration=10, expiration=-5).expect(
        400, "NEGATIVE_EXPIRATION")


def test_claim_empty_session_is_absent(cluster):
    c = cluster.api().claim(user=h.new_id(), session="").expect(200)["claim"]
    assert "session" not in c, c


@pytest.mark.parametrize("params,status,code", [
    ({}, 400, "USER_ID_REQUIRED"),
    ({"user": ""}, 400, "USER_ID_REQUIRED"),
    ({"session": "s"}, 400, "USER_ID_REQUIRED"),
    ({"duration": "abc"}, 400, "USER_ID_REQUIRED"),  # parameters checked in order
    ({"user": "U", "expiration": "abc"}, 400, "INVALID_EXPIRATION"),
    ({"user": "U", "expiration": "12.5"}, 400, "INVALID_EXPIRATION"),
    ({"user": "U", "expiration": "100"}, 400, "INVALID_EXPIRATION"),  # in the past
    ({"user": "U", "expiration": "-5"}, 400, "NEGATIVE_EXPIRATION"),
    ({"user": "U", "duration": "abc"}, 400, "INVALID_DURATION"),
    ({"user": "U", "duration": "1.5"}, 400, "INVALID_DURATION"),
    ({"user": "U", "duration": "0"}, 400, "INVALID_DURATION"),
    ({"user": "U", "duration": "-1"}, 400, "NEGATIVE_DURATION"),
])
def test_claim_errors(cluster, params, status, code):
    params = {k: (h.new_id() if v == "U" else v) for k, v in params.items()}
    cluster.api().claim(**params).expect(status, code)


def test_claim_past_expiration_now(cluster):
    cluster.api().claim(user=h.new_id(), expiration=now() - 1).expect(400, "INVALID_EXPIRATION")


def test_claim_id_already_used(cluster):
    cid = h.new_id("c")
    cluster.api(0).claim(user=h.new_id(), id=cid).expect(200)
    cluster.api(-1).claim(user=h.new_id(), id=cid).expect(409, "CLAIM_ID_ALREADY_USED")


def test_claim_visible_in_info(cluster):
    user = h.new_id()
    c = cluster.api().claim(user=user, session="s", duration=30).expect(200)["claim"]
    j = cluster.api(-1).info(user=user).expect(200)
    assert j["connections"] == []
    assert j["claims"] == [c], j


# ---------------------------------------------------------------------------
# POST /send


@pytest.mark.parametrize("params,code", [
    ({"type": "text"}, "MISSING_CONNECTION_OR_USER"),
    ({"type": "text", "session": "s"}, "MISSING_CONNECTION_OR_USER"),
    ({"type": "text", "user": "", "id": ""}, "MISSING_CONNECTION_OR_USER"),
    ({}, "MISSING_CONNECTION_OR_USER"),  # target checked before type
    ({"user": "U"}, "INVALID_MESSAGE_TYPE"),
    ({"user": "U", "type": ""}, "INVALID_MESSAGE_TYPE"),
    ({"user": "U", "type": "json"}, "INVALID_MESSAGE_TYPE"),
    ({"user": "U", "type": "TEXTX"}, "INVALID_MESSAGE_TYPE"),
    ({"id": "U", "type": "bin"}, "INVALID_MESSAGE_TYPE"),
])
def test_send_errors(cluster, params, code):
    params = {k: (h.new_id() if v == "U" else v) for k, v in params.items()}
    cluster.api().send(b"x", **params).expect(400, code)


def test_send_invalid_utf8_text(cluster):
    user = h.new_id()
    for body in (b"\xff", b"abc\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80"):
        cluster.api().send(body, user=user, type="text").expect(400, "INVALID_UTF8")
    # the same bytes are fine as binary
    j = cluster.api().send(b"\xff", user=user, type="binary").expect(200)
    assert j["connections"] == 0


def test_send_to_nobody_succeeds(cluster):
    j = cluster.api().send(b"hello", user=h.new_id(), type="text").expect(200)
    assert j["connections"] == 0 and j["workers"] == 0, j
    j = cluster.api().send(b"hello", id=str(uuid.uuid4()), type="binary").expect(200)
    assert j["connections"] == 0, j


def test_send_targets_and_counts(cluster):
    user = h.new_id()
    a = cluster.connect(user, "a", worker=0)
    b = cluster.connect(user, "b", worker=-1)
    other = cluster.connect(h.new_id(), "a", worker=0)
    with a, b, other:
        j = cluster.api().send(b"all", user=user, type="text").expect(200)
        assert j["connections"] == 2, j
        assert j["workers"] == (2 if len(cluster.workers) > 1 else 1), j
        assert a.recv_data() == b"all" and b.recv_data() == b"all"

        j = cluster.api().send(b"only-b", user=user, session="b", type="text").expect(200)
        assert j["connections"] == 1 and j["workers"] == 1, j
        assert b.recv_data() == b"only-b"

        conns = cluster.api().info(user=user, session="a").expect(200)["connections"]
        assert len(conns) == 1
        a_id = conns[0]["id"]
        # id wins over user/session
        j = cluster.api().send(b"by-id", id=a_id, user=user, session="b", type="text").expect(200)
        assert j["connections"] == 1, j
        assert a.recv_data() == b"by-id"
        a.expect_no_message()
        b.expect_no_message()
        other.expect_no_message(0.05)


def test_send_bearer_and_empty_session(cluster):
    user = h.new_id()
    with cluster.connect(user, "s") as ws:
        r = cluster.api().request("POST", "/send", {"user": user, "session": "", "type": "text"},
                                  body=b"hi", auth="bearer")
        assert r.expect(200)["connections"] == 1
        assert ws.recv_data() == b"hi"


# ---------------------------------------------------------------------------
# POST /disconnect


@pytest.mark.parametrize("params,code", [
    ({}, "MISSING_CONNECTION_OR_USER"),
    ({"session": "s"}, "MISSING_CONNECTION_OR_USER"),
    ({"user": "U", "keepClaims": "maybe"}, "INVALID_KEEP_CLAIMS"),
    ({"user": "U", "keepClaims": "2"}, "INVALID_KEEP_CLAIMS"),
])
def test_disconnect_errors(cluster, params, code):
    params = {k: (h.new_id() if v == "U" else v) for k, v in params.items()}
    cluster.api().disconnect(**params).expect(400, code)


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "t", "T", "True"])
def test_disconnect_keep_claims_true_values(cluster, value):
    user = h.new_id()
    c = cluster.api().claim(user=user).expect(200)["claim"]
    j = cluster.api().disconnect(user=user, keepClaims=value).expect(200)
    assert j["connections"] == 0
    assert [x["id"] for x in cluster.api().info(user=user).expect(200)["claims"]] == [c["id"]]


@pytest.mark.parametrize("value", [None, "false", "FALSE", "0", "f", "F", ""])
def test_disconnect_deletes_claims(cluster, value):
    user = h.new_id()
    cluster.api().claim(user=user).expect(200)
    cluster.api().claim(user=user, session="s").expect(200)
    cluster.api().disconnect(user=user, keepClaims=value).expect(200)
    assert cluster.api().info(user=user).expect(200)["claims"] == []


def test_disconnect_session_deletes_only_session_claims(cluster):
    user = h.new_id()
    ca = cluster.api().claim(user=user, session="a").expect(200)["claim"]
    cluster.api().claim(user=user, session="b").expect(200)
    cluster.api().disconnect(user=user, session="b").expect(200)
    assert cluster.api().info(user=user).expect(200)["claims"] == [ca]


def test_disconnect_by_id_keeps_claims(cluster):
    user = h.new_id()
    with cluster.connect(user) as ws:
        c = cluster.api().claim(user=user).expect(200)["claim"]
        conn_id = cluster.api().info(user=user).expect(200)["connections"][0]["id"]
        j = cluster.api().disconnect(id=conn_id).expect(200)
        assert j["connections"] == 1
        assert ws.expect_close()[0] == 1000
        assert cluster.api().info(user=user).expect(200)["claims"] == [c]


# ---------------------------------------------------------------------------
# GET /info


def test_info_errors(cluster):
    cluster.api().info().expect(400, "MISSING_CONNECTION_OR_USER")
    cluster.api().info(session="x").expect(400, "MISSING_CONNECTION_OR_USER")
    cluster.api().info(user="", id="").expect(400, "MISSING_CONNECTION_OR_USER")


def test_info_empty(cluster):
    j = cluster.api().info(user=h.new_id()).expect(200)
    assert j == {"success": True, "connections": [], "claims": []}, j
    j = cluster.api().info(id=str(uuid.uuid4())).expect(200)
    assert j["connections"] == [] and j["claims"] == [], j


def test_info_shapes_and_targets(cluster):
    user = h.new_id()
    t0 = now()
    ws_a = cluster.connect(user, "a", worker=0)
    ws_n = cluster.connect(user, None, worker=-1)
    claim_b = cluster.api().claim(user=user, session="b").expect(200)["claim"]
    claim_n = cluster.api().claim(user=user).expect(200)["claim"]
    with ws_a, ws_n:
        j = cluster.api().info(user=user).expect(200)
        assert set(j) == {"success", "connections", "claims"}, j
        conns = j["connections"]
        assert len(conns) == 2, j
        by_session = {c.get("session"): c for c in conns}
        assert set(by_session) == {"a", None}, conns
        for c in conns:
            assert set(c) <= {"id", "worker", "lastPing", "user", "session", "channels"}, c
            assert {"id", "worker", "lastPing", "user"} <= set(c), c
            assert c["user"] == user
            assert uuid.UUID(c["id"]).version == 4, c["id"]
            assert isinstance(c["worker"], str) and c["worker"], c
            assert isinstance(c["lastPing"], int) and t0 - 1 <= c["lastPing"] <= now() + 1, c
        assert "session" not in by_session[None]
        assert sorted(j["claims"], key=lambda c: c["id"]) == \
            sorted([claim_b, claim_n], key=lambda c: c["id"])

        # session narrows connections and claims
        j = cluster.api().info(user=user, session="a").expect(200)
        assert [c["id"] for c in j["connections"]] == [by_session["a"]["id"]]
        assert j["claims"] == []
        j = cluster.api().info(user=user, session="b").expect(200)
        assert j["connections"] == [] and j["claims"] == [claim_b]

        # id target: that connection only, claims always []
        j = cluster.api().info(id=by_session[None]["id"]).expect(200)
        assert j["connections"] == [by_session[None]] and j["claims"] == []
        # id wins over user
        j = cluster.api().info(id=by_session["a"]["id"], user=h.new_id()).expect(200)
        assert j["connections"] == [by_session["a"]], j
        # bearer token works for info too
        r = cluster.api().request("GET", "/info", {"id": by_session["a"]["id"]}, auth="bearer")
        assert r.expect(200)["connections"] == [by_session["a"]]


def test_info_drops_closed_connection(cluster):
    user = h.new_id()
    ws = cluster.connect(user)
    assert len(cluster.api().info(user=user).expect(200)["connections"]) == 1
    ws.send_close(1000)
    assert ws.expect_close(reply=False)[0] is not None
    ws.close()
    h.wait_until(lambda: cluster.api().info(user=user).expect(200)["connections"] == [], 5,
                 what="closed connection to leave /info")
    # an abrupt TCP close is noticed too
    ws = cluster.connect(user)
    ws.close()
    h.wait_until(lambda: cluster.api().info(user=user).expect(200)["connections"] == [], 5,
                 what="reset connection to leave /info")


def test_expired_claim_not_in_info(cluster):
    user = h.new_id()
    cluster.api().claim(user=user, duration=1).expect(200)
    assert len(cluster.api().info(user=user).expect(200)["claims"]) == 1
    h.wait_until(lambda: cluster.api().info(user=user).expect(200)["claims"] == [], 4,
                 interval=0.2, what="expired claim to leave /info")
