"""Channels (issue 9, dSock 0.3-0.4 compatible): claim and JWT channels,
default_channels, the channel order in /info, channel targets on /send,
/disconnect and /info with their precedence, POST /channel/subscribe|unsubscribe
with ignoreClaims, subscribe-then-send ordering, a channel over two workers, and
in Redis a killed worker, FLUSHALL and a paused Redis. docs/api.md, "Channels"."""
import signal
import subprocess
import threading
import time
import urllib.parse

import jwt as pyjwt
import pytest

import dsock_helpers as h
from dsock_helpers import OP_BIN, OP_TEXT


def connect(dep, user, session=None, worker=0, **claim_params):
    """Claims (with extra claim parameters such as channels=) and connects."""
    c = dep.api().claim(user=user, session=session, **claim_params).expect(200)["claim"]
    return h.ws_connect(dep.workers[worker], f"claim={urllib.parse.quote(c['id'])}")


def sub(dep, name, join=True, api=0, **params):
    path = ("/channel/subscribe/" if join else "/channel/unsubscribe/") + urllib.parse.quote(
        name, safe="")
    return dep.api(api).request("POST", path, params)


def conn_channels(dep, **target):
    return [c["channels"] for c in dep.api().info(**target).expect(200)["connections"]]


def jwt_for(dep, payload):
    payload = dict({"exp": int(time.time()) + 600}, **payload)
    return pyjwt.encode(payload, dep.jwt_secret, algorithm="HS256")


# ---------------------------------------------------------------------------
# Claims, defaults, order


def test_claim_channels_and_order_with_defaults(make_deployment):
    dep = make_deployment(worker_opts={"default-channels": "g,,b"})
    user = h.new_id()
    r = dep.api().claim(user=user, channels="b,,a,b,").expect(200)
    assert r["claim"]["channels"] == ["b", "a"], r  # empty items and repeats dropped
    plain = dep.api().claim(user=user).expect(200)
    assert plain["claim"]["channels"] == []
    info = dep.api().info(user=user).expect(200)
    assert sorted(map(tuple, [c["channels"] for c in info["claims"]])) == [(), ("b", "a")]
    with h.ws_connect(dep.worker(0), f"claim={r['claim']['id']}") as ws:
        # claim's channels, then the defaults not already listed
        assert conn_channels(dep, user=user) == [["b", "a", "g"]]
        sub(dep, "z", user=user, ignoreClaims="true").expect(200)
        # already a member: unchanged
        sub(dep, "a", user=user, ignoreClaims="true").expect(200)
        assert conn_channels(dep, user=user) == [["b", "a", "g", "z"]]
        for ch in ("a", "b", "g", "z"):
            j = dep.api().send(ch.encode(), channel=ch, type="text").expect(200)
            assert j["connections"] == 1, (ch, j)
            assert ws.recv_data() == ch.encode()
        with h.ws_connect(dep.worker(0), f"claim={plain['claim']['id']}"):
            assert sorted(conn_channels(dep, user=user)) == [["b", "a", "g", "z"], ["g", "b"]]


def test_no_channels_is_an_empty_array(cluster):
    user = h.new_id()
    with cluster.connect(user):
        info = cluster.api().info(user=user).expect(200)
        assert info["connections"][0]["channels"] == []
        cluster.claim(user)
        assert cluster.api().info(user=user).expect(200)["claims"][0]["channels"] == []


@pytest.mark.parametrize("value", ["ok,bad\x01name", "x" * 257, "a,\x7f"])
def test_bad_default_channels_refuse_to_start(tmp_path, value):
    for how in (["--default-channels", value], []):
        env = {} if how else {"DSOCK_DEFAULT_CHANNELS": value}
        res = subprocess.run([h.DSOCK_BIN, "standalone", "--token", "t", "--address",
                              f"127.0.0.1:{h.free_port()}"] + how, cwd=tmp_path,
                             env=h._clean_env(env), capture_output=True, timeout=10)
        assert res.returncode != 0, res
        assert b"default_channels must be comma-delimited channel names" in res.stderr, res


# ---------------------------------------------------------------------------
# JWT


def test_jwt_channels(cluster):
    user = h.new_id()
    tok = jwt_for(cluster, {"sub": user, "channels": ["j1", "j2", "j1", "é x,y"]})
    with h.ws_connect(cluster.worker(0), f"jwt={tok}") as ws:
        assert conn_channels(cluster, user=user) == [["j1", "j2", "é x,y"]]
        cluster.api().send(b"hi", channel="é x,y", type="text").expect(200)
        assert ws.recv_data() == b"hi"


@pytest.mark.parametrize("bad", ["j1", 3, None, {"a": 1}, ["ok", 2], ["ok", ["x"]], [""],
                                 ["a\u0001"], ["x" * 257], ["ok", "a\u0000b"]])
def test_jwt_bad_channels(cluster, bad):
    tok = jwt_for(cluster, {"sub": h.new_id(), "channels": bad})
    res, ws = h.ws_handshake(cluster.worker(0), f"jwt={tok}")
    assert ws is None and res.status == 401, res
    assert h.json_error(res)["errorCode"] == "INVALID_JWT"


def test_jwt_256_byte_channel(cluster):
    user = h.new_id()
    name = "é" * 128  # 256 bytes
    tok = jwt_for(cluster, {"sub": user, "channels": [name]})
    with h.ws_connect(cluster.worker(0), f"jwt={tok}"):
        assert conn_channels(cluster, user=user) == [[name]]


# ---------------------------------------------------------------------------
# Targets and precedence


def test_channel_target_on_send_info_disconnect(cluster):
    ch, other = h.new_id("ch"), h.new_id("ch")
    u1, u2, u3 = h.new_id(), h.new_id(), h.new_id()
    a = connect(cluster, u1, channels=ch, worker=0)
    b = connect(cluster, u2, "s", channels=f"{other},{ch}", worker=1 % len(cluster.workers))
    c = connect(cluster, u3, channels=other)
    with a, b, c:
        j = cluster.api().send(b"to-ch", channel=ch, type="binary").expect(200)
        assert j["connections"] == 2, j
        assert a.recv_message() == (OP_BIN, b"to-ch")
        assert b.recv_message() == (OP_BIN, b"to-ch")
        c.expect_no_message(0.2)
        # precedence: id, then channel, then user
        a_id = cluster.api().info(user=u1).expect(200)["connections"][0]["id"]
        j = cluster.api().send(b"id-wins", id=a_id, channel=other, user=u3,
                               type="text").expect(200)
        assert j["connections"] == 1
        assert a.recv_data() == b"id-wins"
        j = cluster.api().send(b"ch-wins", channel=other, user=u1, type="text").expect(200)
        assert j["connections"] == 2
        assert b.recv_data() == b"ch-wins" and c.recv_data() == b"ch-wins"
        a.expect_no_message(0.2)
        # info by channel: live connections and the claims carrying it
        pending = cluster.api().claim(user=h.new_id(), channels=ch).expect(200)["claim"]["id"]
        cluster.api().claim(user=h.new_id(), channels=other).expect(200)
        info = cluster.api().info(channel=ch).expect(200)
        assert sorted(x["user"] for x in info["connections"]) == sorted([u1, u2])
        assert [x["id"] for x in info["claims"]] == [pending]
        assert cluster.api().info(channel=ch, id=a_id).expect(200)["connections"][0]["id"] == a_id
        assert cluster.api().info(channel=ch, user=u3).expect(200)["claims"] == [info["claims"][0]]
        # disconnect by channel, keeping claims
        j = cluster.api().disconnect(channel=ch, keepClaims="true").expect(200)
        assert j["connections"] == 2, j
        assert a.expect_close()[0] == 1000 and b.expect_close()[0] == 1000
        assert c.is_open()
        h.wait_until(lambda: cluster.api().info(channel=ch).expect(200)["connections"] == [],
                     5, what="the channel's connections to leave /info")
        assert [x["id"] for x in cluster.api().info(channel=ch).expect(200)["claims"]] == [pending]
        cluster.api().disconnect(channel=ch).expect(200)
        assert cluster.api().info(channel=ch).expect(200)["claims"] == []
        assert cluster.api().info(channel=other).expect(200)["claims"] != []


def test_unknown_channel_matches_nothing(cluster):
    ch = h.new_id("nobody")
    assert cluster.api().send(b"x", channel=ch, type="text").expect(200) == {
        "success": True, "connections": 0, "workers": 0}
    assert cluster.api().info(channel=ch).expect(200) == {
        "success": True, "connections": [], "claims": []}
    j = sub(cluster, "x", channel=ch).expect(200)
    assert j["connections"] == 0


# ---------------------------------------------------------------------------
# Subscribe / unsubscribe


def test_subscribe_claims_and_ignore_claims(cluster):
    user, ch = h.new_id(), h.new_id("ch")
    k1 = cluster.api().claim(user=user, session="s1").expect(200)["claim"]["id"]
    k2 = cluster.api().claim(user=user, session="s2").expect(200)["claim"]["id"]
    with connect(cluster, user, "live") as live:
        j = sub(cluster, ch, user=user, session="s1").expect(200)
        assert j["connections"] == 0 and j["workers"] == 0, j
        j = sub(cluster, ch, user=user).expect(200)
        assert j == {"success": True, "connections": 1, "workers": 1}, j
        claims = {c["id"]: c["channels"] for c in cluster.api().info(user=user).expect(200)["claims"]}
        assert claims == {k1: [ch], k2: [ch]}
        # unsubscribe with ignoreClaims: the claims keep it, the connection leaves
        sub(cluster, ch, join=False, user=user, ignoreClaims="true").expect(200)
        assert conn_channels(cluster, user=user) == [[]]
        claims = {c["id"]: c["channels"] for c in cluster.api().info(user=user).expect(200)["claims"]}
        assert claims == {k1: [ch], k2: [ch]}
        sub(cluster, ch, join=False, user=user, session="s2").expect(200)
        claims = {c["id"]: c["channels"] for c in cluster.api().info(user=user).expect(200)["claims"]}
        assert claims == {k1: [ch], k2: []}
        # subscribe with ignoreClaims leaves claims alone
        other = h.new_id("ch")
        sub(cluster, other, user=user, ignoreClaims="1").expect(200)
        assert conn_channels(cluster, user=user) == [[other]]
        claims = {c["id"]: c["channels"] for c in cluster.api().info(user=user).expect(200)["claims"]}
        assert claims == {k1: [ch], k2: []}
        # a client connecting later with such a claim is already in the channel
        with h.ws_connect(cluster.worker(0), f"claim={k1}") as ws:
            j = cluster.api().send(b"c1", channel=ch, type="text").expect(200)
            assert j["connections"] == 1
            assert ws.recv_data() == b"c1"
            live.expect_no_message(0.2)
        with h.ws_connect(cluster.worker(0), f"claim={k2}") as ws2:
            assert conn_channels(cluster, user=user, session="s2") == [[]]


def test_subscribe_by_channel_and_id(cluster):
    src, dst = h.new_id("src"), h.new_id("dst")
    u1, u2 = h.new_id(), h.new_id()
    a = connect(cluster, u1, channels=src)
    b = connect(cluster, u2, channels=src, worker=1 % len(cluster.workers))
    pending = cluster.api().claim(user=h.new_id(), channels=src).expect(200)["claim"]["id"]
    with a, b:
        j = sub(cluster, dst, channel=src).expect(200)
        assert j["connections"] == 2, j
        # the claims change before the answer
        assert [x["id"] for x in cluster.api().info(channel=dst).expect(200)["claims"]] == [pending]
        # a send right after the answer reaches the new members
        cluster.api().send(b"d", channel=dst, type="text").expect(200)
        assert a.recv_data() == b"d" and b.recv_data() == b"d"
        # the workers record the members themselves (docs/redis.md, "Channels")
        h.wait_until(lambda: sorted(x["user"] for x in cluster.api().info(channel=dst).expect(200)[
            "connections"]) == sorted([u1, u2]), 5, what="/info to show the new members")
        a_id = cluster.api().info(user=u1).expect(200)["connections"][0]["id"]
        j = sub(cluster, dst, join=False, id=a_id).expect(200)
        assert j["connections"] == 1
        assert cluster.api().send(b"e", channel=dst, type="text").expect(200)["connections"] == 1
        assert b.recv_data() == b"e"
        a.expect_no_message(0.2)
        # a channel leaving itself: everyone out, claims included
        sub(cluster, dst, join=False, channel=dst).expect(200)
        assert cluster.api().send(b"f", channel=dst, type="text").expect(200)
        h.wait_until(lambda: cluster.api().info(channel=dst).expect(200) == {
            "success": True, "connections": [], "claims": []}, 5, what="/info to show no member")
        assert conn_channels(cluster, user=u2) == [[src]]
        # the unsubscription came before the send: nobody got it
        cluster.api().send(b"sync", channel=src, type="text").expect(200)
        assert a.recv_data() == b"sync" and b.recv_data() == b"sync"


def test_subscribe_then_send_ordering(cluster):
    """A send issued after a 200 subscribe reaches the new member, every time, on
    whichever API process and worker."""
    user = h.new_id()
    socks = [connect(cluster, user, f"s{w}", worker=w) for w in range(len(cluster.workers))]
    try:
        for i in range(40):
            ch = h.new_id("o")
            sub(cluster, ch, api=i % len(cluster.apis), user=user).expect(200)
            j = cluster.api(-1 - i % len(cluster.apis)).send(
                f"m{i}".encode(), channel=ch, type="text").expect(200)
            assert j["connections"] == len(socks), j
            for ws in socks:
                assert ws.recv_data() == f"m{i}".encode()
            sub(cluster, ch, join=False, api=i % len(cluster.apis), user=user).expect(200)
            assert cluster.api(-1).send(b"gone", channel=ch, type="text").expect(200)[
                "connections"] == 0
        for ws in socks:
            ws.expect_no_message(0.2)
    finally:
        for ws in socks:
            ws.close()


def _sends_in_order_while(dep, ch, change, steady, n=200):
    """Calls change() over and over on another thread while n numbered messages
    go to channel ch through one keep-alive API connection; then every steady
    member must have received all n, in order, and change() must never have
    failed."""
    stop = threading.Event()
    errors = []

    def loop():
        try:
            while not stop.is_set():
                change()
        except Exception as e:  # reported below
            errors.append(e)

    t = threading.Thread(target=loop)
    t.start()
    try:
        api = h.KeepAliveApi(dep.apis[0], dep.token)
        try:
            for i in range(n):
                assert api.send(f"{i}".encode(), channel=ch, type="text").status == 200
        finally:
            api.close()
    finally:
        stop.set()
        t.join(30)
    assert not errors, errors
    for ws in steady:
        got = [ws.recv_data(10) for _ in range(n)]
        assert got == [f"{i}".encode() for i in range(n)]


def test_concurrent_subscriptions_keep_steady_members(cluster):
    """Others join and leave the channel while messages flow: the steady members
    get every message, in order."""
    ch = h.new_id("busy")
    steady = [connect(cluster, h.new_id(), channels=ch, worker=w % len(cluster.workers))
              for w in range(2)]
    churn_user = h.new_id()
    churners = [connect(cluster, churn_user, f"c{w}", worker=w % len(cluster.workers))
                for w in range(2)]
    def churn():
        sub(cluster, ch, user=churn_user, api=1 % len(cluster.apis)).expect(200)
        sub(cluster, ch, join=False, user=churn_user, api=1 % len(cluster.apis)).expect(200)

    _sends_in_order_while(cluster, ch, churn, steady)
    for ws in steady + churners:
        ws.close()


def test_channel_spread_over_two_workers(make_deployment):
    dep = make_deployment(workers=2)
    ch = h.new_id("wide")
    socks = [connect(dep, h.new_id(), channels=ch, worker=i % len(dep.workers))
             for i in range(6)]
    try:
        j = dep.api().send(b"all", channel=ch, type="text").expect(200)
        assert j["connections"] == 6, j
        assert j["workers"] == (2 if dep.kind == "redis" else 1), j
        for ws in socks:
            assert ws.recv_data() == b"all"
        workers = {c["worker"] for c in dep.api().info(channel=ch).expect(200)["connections"]}
        assert len(workers) == j["workers"]
    finally:
        for ws in socks:
            ws.close()


def test_membership_leaves_with_the_connection(cluster):
    ch = h.new_id("ch")
    ws = connect(cluster, h.new_id(), channels=ch)
    ws.send_close()
    ws.expect_close()
    ws.close()
    h.wait_until(lambda: cluster.api().info(channel=ch).expect(200)["connections"] == [], 5,
                 what="a closed connection to leave its channel")
    assert cluster.api().send(b"x", channel=ch, type="text").expect(200)["connections"] == 0


# ---------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("path", ["/channel/subscribe/", "/channel/unsubscribe/"])
def test_bad_channel_names(cluster, path):
    api = cluster.api()
    for name in ["", "%01", "a%7Fb", "%C2%85", "%FF", "x" * 257]:
        r = api.request("POST", path + name, {"user": "u"})
        assert r.expect(400, "INVALID_CHANNEL"), name
    assert api.request("POST", path + urllib.parse.quote("é" * 128),
                       {"user": h.new_id()}).status == 200
    assert api.request("POST", path + "ok", {}).expect(400, "MISSING_CONNECTION_OR_USER")
    assert api.request("POST", path + "ok", {"user": "u", "ignoreClaims": "maybe"}).expect(
        400, "INVALID_IGNORE_CLAIMS")
    assert api.request("GET", path + "ok", {"user": "u"}).status == 405


def test_bad_channel_targets_and_claim_channels(cluster):
    api = cluster.api()
    for bad in ["a\x01", "x" * 257, "a\u0085"]:
        api.send(b"x", channel=bad, type="text").expect(400, "INVALID_CHANNEL")
        api.info(channel=bad).expect(400, "INVALID_CHANNEL")
        api.disconnect(channel=bad).expect(400, "INVALID_CHANNEL")
        api.claim(user="u", channels=f"ok,{bad}").expect(400, "INVALID_CHANNEL")
    api.send(b"x", type="text").expect(400, "MISSING_CONNECTION_OR_USER")


# ---------------------------------------------------------------------------
# Redis: dead worker, lost data, outage


@pytest.mark.redis_only
def test_killed_worker_members_leave_the_channel(cluster, make_deployment):
    ttl = 3
    doomed = make_deployment(apis=0, workers=1, worker_opts={"worker-ttl": ttl})
    ch = h.new_id("ch")
    live = connect(cluster, h.new_id(), channels=ch)
    k = cluster.api().claim(user=h.new_id(), channels=ch).expect(200)["claim"]["id"]
    dead = h.ws_connect(doomed.worker(0), f"claim={k}")
    with live, dead:
        assert len(cluster.api().info(channel=ch).expect(200)["connections"]) == 2
        doomed.worker_procs[0].kill()
        h.wait_until(lambda: len(cluster.api().info(channel=ch).expect(200)["connections"]) == 1,
                     ttl + 2.5, interval=0.2, what="the killed worker's members to leave")
        j = cluster.api().send(b"after", channel=ch, type="text").expect(200)
        assert j["connections"] == 1 and j["workers"] == 1, j
        assert live.recv_data() == b"after"
        r = cluster.redis.client()
        # the sweep leaves the channel's keys exact
        h.wait_until(lambda: r.scard(f"channel:{ch}") == 1 and
                     list(r.hgetall(f"channel-workers:{ch}").values()) == [b"1"],
                     ttl * 3 + 5, interval=0.2, what="the sweep to fix the channel keys")


@pytest.mark.redis_only
def test_flushall_then_resync_restores_memberships(make_redis, make_deployment):
    ttl = 3
    r = make_redis()
    dep = make_deployment(redis=r, worker_opts={"worker-ttl": ttl, "default-channels": "all"})
    ch = h.new_id("ch")
    user = h.new_id()
    with connect(dep, user, channels=ch) as ws:
        sub(dep, "late", user=user).expect(200)
        before = conn_channels(dep, user=user)
        assert before == [[ch, "all", "late"]]
        r.client().flushall()
        h.wait_until(lambda: conn_channels(dep, user=user) == before, ttl + 5, interval=0.2,
                     what="the resync to restore memberships")
        for name in (ch, "all", "late"):
            j = dep.api().send(name.encode(), channel=name, type="text").expect(200)
            assert j["connections"] == 1, j
            assert ws.recv_data() == name.encode()
        c = r.client()
        assert c.smembers("channel:late") == {dep.api().info(user=user).expect(200)[
            "connections"][0]["id"].encode()}


@pytest.mark.redis_only
def test_redis_paused_during_subscribe(make_redis, make_deployment):
    r = make_redis()
    opts = {"redis-timeout-ms": 500}
    dep = make_deployment(redis=r, api_opts=opts, worker_opts=opts)
    user, ch = h.new_id(), h.new_id("ch")
    with connect(dep, user, channels=ch) as ws:
        def refused(res, code):
            # a call Redis had received answers ERROR_OUTCOME_UNKNOWN (docs/api.md)
            res.expect(503)
            assert res.json["errorCode"] in (code, "ERROR_OUTCOME_UNKNOWN"), res.json

        r.pause()
        try:
            for target, code in [({"user": user}, "ERROR_GETTING_USER"),
                                 ({"channel": ch}, "ERROR_GETTING_CHANNEL"),
                                 ({"id": "x"}, "ERROR_GETTING_CONNECTION")]:
                refused(sub(dep, "p", **target), code)
                refused(sub(dep, "p", join=False, **target), code)
            refused(dep.api().send(b"x", channel=ch, type="text"), "ERROR_GETTING_CHANNEL")
            dep.api().info(channel=ch).expect(503, "ERROR_GETTING_CHANNEL")
            # (a channel without members: the timed-out call may still run later)
            refused(dep.api().disconnect(channel=ch + "-none"), "ERROR_GETTING_CHANNEL")
        finally:
            r.resume()
        assert ws.is_open()
        # The timed-out calls may still run when Redis resumes (it reads the old
        # sockets late, possibly after newer requests), and the worker resyncs
        # after its subscription comes back: retry until settled. Whenever a
        # send counts the connection, the message must arrive.

        def joined():
            j = sub(dep, "p", user=user).expect(200)
            if j != {"success": True, "connections": 1, "workers": 1}:
                return False
            j = dep.api().send(b"p", channel="p", type="text").expect(200)
            if j.get("connections") != 1 or j.get("unreachable"):
                return False
            assert ws.recv_data() == b"p"
            return True

        h.wait_until(joined, 15, interval=0.3, what="a subscribe and send after the outage")


def bus_message(kind=0, user=b"", body=b"", channel=b""):
    """protos/dsock.proto WorkerMessage with the channel field (6)."""
    from test_input_validation import worker_message, _varint
    out = worker_message(kind, user=user, body=body)
    if isinstance(channel, str):
        channel = channel.encode()
    if channel:
        out += b"\x32" + _varint(len(channel)) + channel
    return out


@pytest.mark.redis_only
def test_bus_channel_fields_are_validated(cluster):
    """The worker checks a message's channel target, and a subscription's channel
    name, as strictly as the API does: what fails is dropped."""
    ch = h.new_id("ch")
    user = h.new_id()
    with connect(cluster, user, channels=ch) as ws:
        worker = cluster.api().info(user=user).expect(200)["connections"][0]["worker"]
        r = cluster.redis.client()
        SUB, UNSUB = 4, 5
        bad = [
            bus_message(0, channel=ch + "\x00x", body=b"nul-channel"),
            bus_message(0, channel=ch + "\n", body=b"lf-channel"),
            bus_message(0, channel=b"\xff" + ch.encode(), body=b"not-utf8"),
            bus_message(0, channel="x" * 257, body=b"long"),
            bus_message(UNSUB, channel=ch, body=ch + "\x01"),  # bad name to leave
            bus_message(UNSUB, channel=ch),                    # no name
            bus_message(SUB, user=user, body="y" * 257),
        ]
        for m in bad:
            r.publish(f"worker:{worker}", m)
        r.publish(f"worker:{worker}", bus_message(0, channel=ch, body=b"ok"))
        assert ws.recv_data() == b"ok"
        # the local index still has the membership: the bad UNSUBSCRIBEs were dropped
        cluster.api().send(b"after", channel=ch, type="text").expect(200)
        assert ws.recv_data() == b"after"


def test_subscriptions_are_counted_in_metrics(cluster):
    from test_metrics import Scraper
    api = Scraper(cluster.apis[0], cluster.token)
    user = h.new_id()
    before = api.value("dsock_store_operation_duration_seconds_count", op="subscribe")
    sub(cluster, "m", user=user).expect(200)
    sub(cluster, "m", join=False, user=user).expect(200)
    sub(cluster, "m", user=user, ignoreClaims="x").expect(400)
    api.wait_for("dsock_api_requests_total", 2, endpoint="channel", status="200", code="")
    api.wait_for("dsock_api_requests_total", 1, endpoint="channel", status="400",
                 code="INVALID_IGNORE_CLAIMS")
    assert api.value("dsock_store_operation_duration_seconds_count", op="subscribe") >= before + 2


# ---------------------------------------------------------------------------
# A subscription racing a connect (docs/architecture.md, "Channels")


def _blocked(rc):
    """CLIENT LIST entries Redis holds back under CLIENT PAUSE WRITE (flag b)."""
    return [c for c in rc.client_list() if "b" in c["flags"] and c["cmd"] != "client"]


def _received_before(ws, conn_id, dep, channel):
    """Sends a message to the channel, then one to the connection itself, and says
    whether the channel's arrived first: no timing, the connection's FIFO decides."""
    dep.api().send(b"chan", channel=channel, type="text").expect(200)
    dep.api().send(b"sync", id=conn_id, type="text").expect(200)
    seen = []
    while True:
        data = ws.recv_data(timeout=10)
        if data == b"sync":
            return b"chan" in seen
        seen.append(data)


@pytest.mark.redis_only
@pytest.mark.parametrize("join", [True, False])
def test_subscription_racing_a_registration(make_redis, make_deployment, join):
    """A subscription by user that Redis runs after a connection was authenticated
    (and indexed by its worker, which holds another connection of the user) but
    before its registration: the worker's index and Redis must agree on the new
    connection's channels. CLIENT PAUSE WRITE holds both scripts back, and Redis
    resumes held-back clients in the order they were held, so the subscription
    runs first. Before the fix, the worker applied the subscription to the new
    connection while its registration wrote the channels without it."""
    r = make_redis()
    opts = {"redis-timeout-ms": 8000}
    dep = make_deployment(redis=r, api_opts=opts, worker_opts=opts)
    rc = r.client()
    for attempt in range(5):
        user, ch = h.new_id(), h.new_id("race")
        chans = [] if join else [ch]  # an unsubscription: the new one starts in ch
        tok = jwt_for(dep, {"sub": user, "channels": chans})
        with h.ws_connect(dep.worker(0), f"jwt={tok}"):
            before = {c["id"] for c in dep.api().info(user=user).expect(200)["connections"]}
            out = {}
            rc.execute_command("CLIENT", "PAUSE", 6000, "WRITE")
            try:
                t_sub = threading.Thread(
                    target=lambda: out.update(sub=sub(dep, ch, join=join, user=user)))
                t_sub.start()
                held = h.wait_until(lambda: _blocked(rc), 5,
                                    what="the subscription to be held back")
                # The worker's own writes (canaries, heartbeats) may have been
                # held back before it: its registration would then run first.
                clean = [c["cmd"] for c in held] == ["evalsha"]
                first = held[0]["id"]
                t_conn = threading.Thread(target=lambda: out.update(
                    ws=h.ws_connect(dep.worker(0), f"jwt={tok}", timeout=15)))
                t_conn.start()
                h.wait_until(lambda: any(
                    c["id"] != first and (c["cmd"] == "evalsha" or int(c["qbuf"]))
                    for c in _blocked(rc)), 5, what="the registration to be held back")
            finally:
                rc.execute_command("CLIENT", "UNPAUSE")
            t_sub.join(15)
            t_conn.join(15)
            out["sub"].expect(200)
            with out["ws"] as ws:
                if not clean:
                    continue
                conns = dep.api().info(user=user).expect(200)["connections"]
                new = [c for c in conns if c["id"] not in before]
                assert len(new) == 1, conns
                in_store = ch in new[0]["channels"]
                # Before the registration: it does not see the subscription.
                assert in_store == (not join), new
                assert _received_before(ws, new[0]["id"], dep, ch) == in_store
                return
    pytest.fail("the worker's own writes were held back before the subscription 5 times")


# ---------------------------------------------------------------------------
# A subscription by channel does no work per member in the store: each worker
# applies it to its own members and records them (docs/redis.md, "Channels")


def _member_ids(dep, ch):
    return sorted(c["id"] for c in dep.api().info(channel=ch).expect(200)["connections"])


def _redis_exact(dep, ch, ids):
    """Redis holds exactly `ids` in ch, counted per worker, with no pending mark
    left; True in standalone (nothing to look at)."""
    if dep.kind != "redis":
        return True
    r = dep.redis.client()
    members = sorted(m.decode() for m in r.smembers(f"channel:{ch}"))
    counts = sum(int(v) for v in r.hgetall(f"channel-workers:{ch}").values())
    return members == sorted(ids) and counts == len(ids) and not r.exists(f"channel-pending:{ch}")


def test_subscribe_by_channel_then_send_reaches_every_member(make_deployment):
    """On 2 workers, a send issued right after a subscription by channel reaches
    every member of the source (some of them members already), and one right after
    an unsubscription by channel reaches none of them; /info and Redis converge."""
    dep = make_deployment(apis=2, workers=2)
    src, base = h.new_id("src"), h.new_id("base")
    socks = [h.ws_connect(dep.worker(i % len(dep.workers)), "jwt=" + jwt_for(dep, {
        "sub": h.new_id(), "channels": [src] + ([base] if i % 3 == 0 else [])}))
        for i in range(12)]
    try:
        ids = h.wait_until(lambda: len(_member_ids(dep, src)) == 12 and _member_ids(dep, src),
                           5, what="the members to register")
        for i in range(15):
            dst = base if i == 0 else h.new_id("dst")
            j = sub(dep, dst, api=i % len(dep.apis), channel=src).expect(200)
            assert j["connections"] == 12 and j.get("unreachable", 0) == 0, j
            assert j["workers"] == (2 if dep.kind == "redis" else 1), j
            j = dep.api((i + 1) % len(dep.apis)).send(f"in{i}".encode(), channel=dst, type="text").expect(200)
            assert j["workers"] == (2 if dep.kind == "redis" else 1), j
            for ws in socks:
                assert ws.recv_data() == f"in{i}".encode()
            if i % 5 == 0:
                h.wait_until(lambda: _member_ids(dep, dst) == ids and _redis_exact(dep, dst, ids),
                             5, what="/info and Redis to show the members")
                info = dep.api().info(id=ids[0]).expect(200)["connections"][0]
                assert info["channels"][-1] == dst and info["channels"][0] == src, info
            j = sub(dep, dst, join=False, api=(i + 1) % len(dep.apis), channel=src).expect(200)
            assert j["connections"] == 12, j
            dep.api(i % len(dep.apis)).send(b"gone", channel=dst, type="text").expect(200)
            dep.api(i % len(dep.apis)).send(f"sync{i}".encode(), channel=src, type="text").expect(200)
            for ws in socks:
                assert ws.recv_data() == f"sync{i}".encode()  # and not b"gone"
            if i % 5 == 0:
                h.wait_until(lambda: _member_ids(dep, dst) == [] and _redis_exact(dep, dst, []),
                             5, what="/info and Redis to show no member")
        assert dep.api().send(b"x", channel=base, type="text").expect(200)["connections"] == 0
    finally:
        for ws in socks:
            ws.close()


def test_subscribe_by_channel_keeps_other_subscriptions(cluster):
    """The workers edit a connection's channel list rather than overwrite it: a
    subscription by user that the API records meanwhile is kept."""
    src, user = h.new_id("src"), h.new_id()
    with connect(cluster, user, channels=src) as ws:
        names = [h.new_id("k") for _ in range(20)]
        for i, name in enumerate(names):
            if i % 2:
                sub(cluster, name, channel=src).expect(200)
            else:
                sub(cluster, name, user=user).expect(200)
        want = [src] + names
        h.wait_until(lambda: conn_channels(cluster, user=user) == [want], 5,
                     what="the connection's channels to converge")
        for name in names:
            cluster.api().send(name.encode(), channel=name, type="text").expect(200)
            assert ws.recv_data() == name.encode()


@pytest.mark.redis_only
def test_subscribe_by_channel_with_a_worker_unreachable(make_redis, make_deployment):
    """A worker whose subscription is down gets no message: the answer says
    unreachable, no pending mark is left for it, and after its resync Redis agrees
    with its index (its members did not join)."""
    r = make_redis()
    dep = make_deployment(redis=r, workers=2, worker_opts={"worker-ttl": 30})
    rc = r.client()
    src, dst = h.new_id("src"), h.new_id("dst")
    socks = [h.ws_connect(dep.worker(i % len(dep.workers)), "jwt=" + jwt_for(dep, {
        "sub": f"u{i}-" + h.new_id(), "channels": [src]})) for i in range(6)]
    try:
        conns = h.wait_until(lambda: len(dep.api().info(channel=src).expect(200)[
            "connections"]) == 6 and dep.api().info(channel=src).expect(200)["connections"],
            5, what="the members to register")
        by_worker = {}
        for c in conns:
            by_worker.setdefault(c["worker"], []).append(c["id"])
        assert len(by_worker) == 2
        # which worker id is process 1: its members' ids
        ids1 = {c["id"] for c in conns if c["user"].split("-")[0] in ("u1", "u3", "u5")}
        w1 = next(w for w, ids in by_worker.items() if set(ids) == ids1)
        w0 = next(w for w in by_worker if w != w1)
        dep.worker_procs[1].signal(signal.SIGSTOP)
        try:
            assert rc.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 2
            h.wait_until(lambda: rc.pubsub_numsub(f"worker:{w0}")[0][1] == 1, 5,
                         what="worker 0 to subscribe again")
            assert rc.pubsub_numsub(f"worker:{w1}")[0][1] == 0
            j = sub(dep, dst, channel=src).expect(200)
            assert j == {"success": True, "connections": 3, "workers": 1, "unreachable": 1}, j
            assert rc.hgetall(f"channel-pending:{dst}") in ({}, {w0.encode(): b"1"})
        finally:
            dep.worker_procs[1].signal(signal.SIGCONT)
        # worker 1 subscribes again and resyncs: Redis matches its index
        h.wait_until(lambda: rc.pubsub_numsub(f"worker:{w1}")[0][1] == 1, 10,
                     what="worker 1 to subscribe again")
        want = sorted(by_worker[w0])
        h.wait_until(lambda: _member_ids(dep, dst) == want and _redis_exact(dep, dst, want), 10,
                     what="Redis to hold worker 0's members only")
        j = dep.api().send(b"d", channel=dst, type="text").expect(200)
        assert j["connections"] == 3 and j["workers"] == 1, j
        for i, ws in enumerate(socks):
            if i % 2 == 0:
                assert ws.recv_data() == b"d"
        dep.api().send(b"s", channel=src, type="text").expect(200)
        for i, ws in enumerate(socks):
            assert ws.recv_data() == b"s"  # worker 1's members never got b"d"
    finally:
        for ws in socks:
            ws.close()


def test_concurrent_subscriptions_by_channel_keep_steady_members(make_deployment):
    """A source channel joins and leaves the busy channel (by channel, on the second
    API) while messages flow: the steady members get every message in order, and
    afterwards the store holds exactly the steady members."""
    dep = make_deployment(apis=2, workers=2)
    ch, churn = h.new_id("busy"), h.new_id("churn")
    steady = [h.ws_connect(dep.worker(w % len(dep.workers)), "jwt=" + jwt_for(dep, {
        "sub": h.new_id(), "channels": [ch]})) for w in range(2)]
    churners = [h.ws_connect(dep.worker(w % len(dep.workers)), "jwt=" + jwt_for(dep, {
        "sub": h.new_id(), "channels": [churn]})) for w in range(4)]
    def churn_once():
        sub(dep, ch, api=1 % len(dep.apis), channel=churn).expect(200)
        sub(dep, ch, join=False, api=1 % len(dep.apis), channel=churn).expect(200)

    try:
        h.wait_until(lambda: len(_member_ids(dep, churn)) == 4, 5, what="the churners to register")
        steady_ids = h.wait_until(lambda: len(_member_ids(dep, ch)) == 2 and _member_ids(dep, ch),
                                  5, what="the steady members to register")
        _sends_in_order_while(dep, ch, churn_once, steady)
        h.wait_until(lambda: _member_ids(dep, ch) == steady_ids and
                     _redis_exact(dep, ch, steady_ids), 5, what="the store to converge")
        # the churners got an in-order subsequence, each message at most once, and
        # are out now (b"end" never reaches them)
        for ws in churners:
            got = []
            try:
                while True:
                    got.append(ws.recv_data(0.3))
            except TimeoutError:
                pass
            nums = [int(x) for x in got]
            assert nums == sorted(set(nums)) and all(0 <= x < 200 for x in nums), got
    finally:
        for ws in steady + churners:
            ws.close()


@pytest.mark.redis_only
def test_channel_send_racing_a_registration(make_redis, make_deployment):
    """A connection is indexed by its worker, with its channels, before its
    registration runs. A send to one of them that Redis runs in between does not
    count it (its record is not written yet), but its worker (which holds another
    member) fans out from its index, so it gets the message, once: it was a member
    when the send was issued (docs/redis.md, "A send racing a registration").
    CLIENT PAUSE WRITE holds the send and then the registration back, and Redis
    resumes them in that order."""
    r = make_redis()
    opts = {"redis-timeout-ms": 8000}
    dep = make_deployment(redis=r, api_opts=opts, worker_opts=opts)
    rc = r.client()
    ch = h.new_id("race")
    with h.ws_connect(dep.worker(0), "jwt=" + jwt_for(dep, {"sub": h.new_id(),
                                                            "channels": [ch]})) as first:
        h.wait_until(lambda: dep.api().info(channel=ch).expect(200)["connections"], 5,
                     what="the first member to register")
        for attempt in range(5):
            user = h.new_id()
            tok = jwt_for(dep, {"sub": user, "channels": [ch]})
            out = {}
            rc.execute_command("CLIENT", "PAUSE", 6000, "WRITE")
            try:
                t_send = threading.Thread(target=lambda: out.update(
                    send=dep.api().send(f"early{attempt}".encode(), channel=ch, type="text")))
                t_send.start()
                held = h.wait_until(lambda: _blocked(rc), 5, what="the send to be held back")
                clean = [c["cmd"] for c in held] == ["evalsha"]
                held_first = held[0]["id"]
                t_conn = threading.Thread(target=lambda: out.update(
                    ws=h.ws_connect(dep.worker(0), f"jwt={tok}", timeout=15)))
                t_conn.start()
                h.wait_until(lambda: any(
                    c["id"] != held_first and (c["cmd"] == "evalsha" or int(c["qbuf"]))
                    for c in _blocked(rc)), 5, what="the registration to be held back")
            finally:
                rc.execute_command("CLIENT", "UNPAUSE")
            t_send.join(15)
            t_conn.join(15)
            j = out["send"].expect(200)
            assert first.recv_data() == f"early{attempt}".encode()
            with out["ws"] as ws:
                if not clean:
                    continue
                assert j["connections"] == 1, j  # the new connection was not counted
                assert ws.recv_data() == f"early{attempt}".encode()
                dep.api().send(b"sync", user=user, type="text").expect(200)
                assert ws.recv_data() == b"sync"  # and it came once
                return
    pytest.fail("the worker's own writes were held back before the send 5 times")
# REGISTERED markers from the bus (docs/redis.md, "Messages on worker:$id are checked")


@pytest.mark.redis_only
def test_bad_registration_markers_are_dropped(make_redis, make_deployment):
    """A REGISTERED WorkerMessage that anyone with PUBLISH rights could forge on
    `worker:$id`: without a generation, with a generation that is not 1 to 20
    digits or is over 2^64-1, without a connection id, with another target field
    or a bad id, is dropped and counted as an invalid bus message. A well-formed
    one for an unknown connection (the normal fate of a marker whose connection
    closed first) or with a stale or future generation is dropped without being
    counted. Either way the worker keeps working and no connection's channels or
    delivery change."""
    from test_input_validation import worker_message
    from test_metrics import metrics_dep, scrapers
    REG = 6
    dep = metrics_dep(make_deployment, "redis", redis=make_redis())
    _, worker = scrapers(dep)
    worker.wait_for("dsock_store_subscribed", 1, timeout=30)
    ch, user, other = h.new_id("ch"), h.new_id(), h.new_id()
    with connect(dep, user, channels=ch) as ws, connect(dep, other, channels=ch) as ws2:
        conns = dep.api().info(user=user).expect(200)["connections"]
        conn_id, wid = conns[0]["id"], conns[0]["worker"]
        r = dep.redis.client()
        bad = [
            worker_message(REG, connection=conn_id),                         # no generation
            worker_message(REG, connection=conn_id, body=b"1x"),
            worker_message(REG, connection=conn_id, body=b"-1"),
            worker_message(REG, connection=conn_id, body=b" 1"),
            worker_message(REG, connection=conn_id, body=b"1" * 21),         # 21 digits
            worker_message(REG, connection=conn_id, body=b"18446744073709551616"),  # 2^64
            worker_message(REG, body=b"1"),                                  # no connection id
            worker_message(REG, user=user, body=b"1"),                       # a user target
            worker_message(REG, connection=conn_id, user=user, body=b"1"),   # two targets
            worker_message(REG, connection=conn_id, session="s", body=b"1"),
            bus_message(REG, channel=ch, body=b"1"),                         # a channel target
            worker_message(REG, connection=conn_id + "\x00x", body=b"1"),    # NUL in the id
            worker_message(REG, connection=b"\xff" + conn_id.encode(), body=b"1"),
        ]
        harmless = [
            worker_message(REG, connection="no-such-connection", body=b"1"),
            worker_message(REG, connection=conn_id, body=b"0"),              # stale
            worker_message(REG, connection=conn_id, body=b"18446744073709551615"),  # future
        ]
        before = worker.value("dsock_deliveries_dropped_total", reason="invalid_bus_message")
        for m in bad + harmless:
            r.publish(f"worker:{wid}", m)
        # The bus is one FIFO: once this arrives, every marker above was handled.
        r.publish(f"worker:{wid}", worker_message(0, connection=conn_id, body=b"sync"))
        assert ws.recv_data(timeout=30) == b"sync"
        worker.wait_for("dsock_deliveries_dropped_total", before + len(bad), timeout=30,
                        reason="invalid_bus_message")
        assert worker.value("dsock_deliveries_dropped_total",
                            reason="invalid_bus_message") == before + len(bad)
        # Nothing changed: both connections are in the channel, in Redis and in the
        # worker's index, and (un)subscriptions still apply to them.
        assert conn_channels(dep, user=user) == [[ch]]
        assert conn_channels(dep, user=other) == [[ch]]
        assert dep.api().send(b"c1", channel=ch, type="text").expect(200)["connections"] == 2
        assert ws.recv_data(timeout=30) == b"c1" and ws2.recv_data(timeout=30) == b"c1"
        z = h.new_id("z")
        sub(dep, z, user=user).expect(200)
        sub(dep, ch, join=False, user=user).expect(200)
        assert conn_channels(dep, user=user) == [[z]]
        assert dep.api().send(b"c2", channel=ch, type="text").expect(200)["connections"] == 1
        assert dep.api().send(b"z1", channel=z, type="text").expect(200)["connections"] == 1
        assert ws2.recv_data(timeout=30) == b"c2"
        assert ws.recv_data(timeout=30) == b"z1"  # not c2: the unsubscription was applied
        assert ws.is_open() and ws2.is_open()
