"""A reviewer's pass over the Redis store and the API role: parameter and JSON edges,
large targets, keys that must not live forever in Redis, and Redis misbehaving
(killed mid-burst, refusing writes, wrong password, paused during a registration,
flushed under many connections). Each test is bounded (< 10 s)."""
import json
import signal
import threading
import time
import urllib.parse

import pytest

import dsock_helpers as h

TIMEOUT_MS = 500


def strict_json(res):
    """The body decoded as strict UTF-8 JSON (no NaN, no raw control characters)."""
    text = res.body.decode("utf-8")  # raises on invalid UTF-8

    def no_const(c):
        raise AssertionError(f"non-standard JSON constant {c}")
    return json.loads(text, parse_constant=no_const)


def raw_request(addr, method, path, query, body=b"", timeout=5.0):
    """One request with a query string written exactly as given (no re-encoding)."""
    req = (f"{method} {path}?{query} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
           f"Connection: close\r\n\r\n").encode() + body
    return h.raw_http(addr, req, timeout=timeout).response()


# ---------------------------------------------------------------------------
# API parameters and JSON


# Control characters are refused in ids since issue 7 (test_input_validation.py).
WEIRD_IDS = [
    'quote"back\\slash',
    "bidi\u202eover\u200bzero-width\u00a0nbsp",
    "uni-\u00e9\u4e2d\U0001F600",
    "dash-colon:percent%plus+amp&eq=",
    "</script><b>",
    "x" * 2000,
]


@pytest.mark.parametrize("user", WEIRD_IDS, ids=range(len(WEIRD_IDS)))
def test_weird_ids_round_trip_as_json(cluster, user):
    api = cluster.api()
    session = user[::-1]
    c = api.claim(user=user, session=session, id=user + "/claim")
    c.expect(200)
    claim = strict_json(c)["claim"]
    assert claim == {"id": user + "/claim", "expiration": claim["expiration"], "user": user,
                     "session": session, "channels": []}, claim
    res = api.info(user=user, session=session)
    res.expect(200)
    assert strict_json(res)["claims"] == [claim]
    with h.ws_connect(cluster.worker(0), "claim=" + urllib.parse.quote(claim["id"], safe="")) \
            as ws:
        res = api.info(user=user)
        res.expect(200)
        conns = strict_json(res)["connections"]
        assert [(x["user"], x["session"]) for x in conns] == [(user, session)], conns
        api.send(b"hi", user=user, session=session, type="text").expect(200)
        assert ws.recv_data() == b"hi"
        api.disconnect(user=user, session=session).expect(200)
        assert ws.expect_close()[0] == 1000


def test_claim_ids_must_be_utf8(cluster):
    """What a claim stores comes back in JSON: bytes that are not UTF-8 are refused."""
    for q in ("user=bad%FF%C3", f"user={h.new_id()}&session=s%80", f"user={h.new_id()}&id=c%C0%AF"):
        res = raw_request(cluster.apis[0], "POST", "/claim", f"token={cluster.token}&{q}")
        res.expect(400, "INVALID_UTF8")
    # a target that is not UTF-8 finds nothing, and the answer is still valid JSON
    res = raw_request(cluster.apis[0], "GET", "/info", f"token={cluster.token}&user=bad%FF")
    assert strict_json(res) == {"success": True, "connections": [], "claims": []}


@pytest.mark.parametrize("exp", [2**31 + 5, 4102444800, 253402300799])
def test_large_expiration_is_an_exact_json_integer(cluster, exp):
    """cJSON prints numbers from doubles: large ones must still be plain integers."""
    api = cluster.api()
    user = h.new_id()
    res = api.claim(user=user, expiration=exp)
    res.expect(200)
    assert b'"expiration":%d,' % exp in res.body, res.body
    res = api.info(user=user)
    res.expect(200)
    assert b'"expiration":%d,' % exp in res.body, res.body


def test_expiration_beyond_year_9999(cluster):
    """An expiration no store can keep is a 400, never a 503 or a float."""
    api = cluster.api()
    for exp in (253402300800, 10**15, 2**62, 2**63 - 1):
        api.claim(user=h.new_id(), expiration=exp).expect(400, "INVALID_EXPIRATION")
    for dur in (253402300799, 2**62, 2**63 - 1):
        api.claim(user=h.new_id(), duration=dur).expect(400, "INVALID_DURATION")
    api.claim(user=h.new_id(), duration=86400 * 365 * 100).expect(200)


def test_last_ping_is_an_integer(cluster):
    user = h.new_id()
    with cluster.connect(user):
        res = cluster.api().info(user=user)
        res.expect(200)
        conn = strict_json(res)["connections"][0]
        assert isinstance(conn["lastPing"], int) and conn["lastPing"] > 1.6e9, conn


def test_repeated_parameters_first_wins(cluster):
    a, b = h.new_id(), h.new_id()
    res = raw_request(cluster.apis[0], "POST", "/claim",
                      f"token={cluster.token}&user={a}&user={b}&session=s1&session=s2")
    claim = res.expect(200)["claim"]
    assert claim["user"] == a and claim["session"] == "s1", claim
    # a wrong second token does not matter, a wrong first one does
    res = raw_request(cluster.apis[0], "GET", "/info", f"token={cluster.token}&token=x&user={a}")
    assert res.expect(200)["claims"] == [claim]
    res = raw_request(cluster.apis[0], "GET", "/info", f"token=x&token={cluster.token}&user={a}")
    res.expect(401, "INVALID_AUTHORIZATION")


def test_token_compare_is_exact(cluster):
    api = cluster.api()
    t = cluster.token
    for bad in (t[:-1], t + "x", t.upper(), t + " ", " " + t, "\u00e9" + t[1:]):
        res = api.request("GET", "/info", {"user": "u"}, token=bad)
        assert res.status == 401, (bad, res)
        res.expect(401, "INVALID_AUTHORIZATION")
        if bad.strip() == t:
            continue  # optional whitespace around a header value is not part of it
        res = api.request("GET", "/info", {"user": "u"}, token=bad, auth="bearer")
        assert res.status == 401, ("bearer", bad, res)
    api.info(user="u").expect(200)


# ---------------------------------------------------------------------------
# Redis misbehaving


def fault_deployment(make_redis, make_deployment, workers=1, **worker_opts):
    r = make_redis()
    opts = {"redis-timeout-ms": TIMEOUT_MS}
    dep = make_deployment(redis=r, workers=workers, api_opts=opts,
                          worker_opts=dict(opts, **worker_opts))
    return r, dep


def jwt_for(dep, user, session=None):
    import jwt as pyjwt
    claims = {"sub": user, "exp": int(time.time()) + 60}
    if session:
        claims["sid"] = session
    return pyjwt.encode(claims, dep.jwt_secret, algorithm="HS256")


def user_keys(r, user):
    """Every key of the seed's layout that mentions user."""
    return sorted(k.decode() for k in r.keys(f"*{user}*"))


def conn_keys_of(r, worker):
    out = []
    for k in r.scan_iter("conn:*"):
        if r.hget(k, "worker") == worker.encode():
            out.append(k.decode())
    return out


@pytest.mark.redis_only
def test_paused_redis_during_registration_leaves_nothing(make_redis, make_deployment):
    """The registration times out (503), but the paused Redis still runs it when it
    resumes: the store must undo it, or /info reports a connection nobody holds."""
    r, dep = fault_deployment(make_redis, make_deployment)
    user = h.new_id()
    rc = r.client()
    r.pause()
    try:
        res, ws = h.ws_handshake(dep.worker(0), "jwt=" + jwt_for(dep, user, "s"))
        assert ws is None, "upgraded while Redis was paused"
        res.response().expect(503, "ERROR_SAVING_CONNECTION")
    finally:
        r.resume()
    api = dep.api()
    h.wait_until(lambda: api.claim(user=h.new_id()).status == 200, 5, interval=0.1,
                 what="the API to reach Redis again")
    h.wait_until(lambda: not [k for k in user_keys(rc, user)], 5, interval=0.1,
                 what="the lost registration to be undone in Redis")
    assert api.info(user=user).expect(200)["connections"] == []
    time.sleep(0.5)
    assert user_keys(rc, user) == []
    assert api.info(user=user).expect(200)["connections"] == []


@pytest.mark.redis_only
def test_killed_worker_leaves_no_keys(make_redis, make_deployment):
    """A SIGKILLed worker's connections disappear from Redis by themselves (swept by
    the live workers), even for a user nobody ever looks up again."""
    ttl = 2
    r, dep = fault_deployment(make_redis, make_deployment, workers=2, **{"worker-ttl": ttl})
    rc = r.client()
    users = [h.new_id() for _ in range(3)]
    socks = [h.ws_connect(dep.worker(1), "jwt=" + jwt_for(dep, u, "sess")) for u in users]
    try:
        doomed = dep.api().info(user=users[0]).expect(200)["connections"][0]["worker"]
        assert all(user_keys(rc, u) for u in users)
        dep.worker_procs[1].kill()
        h.wait_until(lambda: not any(user_keys(rc, u) for u in users), ttl + 4, interval=0.2,
                     what="the killed worker's keys to be swept")
        h.wait_until(lambda: not rc.exists(f"worker-conns:{doomed}") and
                     not rc.sismember("workers", doomed), 3, interval=0.2,
                     what="the killed worker's own index to go")
    finally:
        for s in socks:
            s.close()


@pytest.mark.redis_only
def test_redis_restored_from_old_snapshot(make_redis, make_deployment):
    """Redis comes back with older data: a connection closed since the snapshot is
    still in it, under a worker that is alive. The worker's resync removes it."""
    r, dep = fault_deployment(make_redis, make_deployment)
    rc = r.client()
    user = h.new_id()
    keep = h.ws_connect(dep.worker(0), "jwt=" + jwt_for(dep, user, "keep"))
    gone = h.ws_connect(dep.worker(0), "jwt=" + jwt_for(dep, user, "gone"))
    with keep:
        conns = dep.api().info(user=user).expect(200)["connections"]
        assert len(conns) == 2
        gone_id = [c["id"] for c in conns if c["session"] == "gone"][0]
        rc.save()
        gone.send_close(1000)
        gone.expect_close(reply=False)
        gone.close()
        h.wait_until(lambda: not rc.exists(f"conn:{gone_id}"), 3, what="unregistration")
        r.stop(signal.SIGKILL)
        r.start()  # loads dump.rdb from its directory
        assert r.client().exists(f"conn:{gone_id}"), "snapshot not restored"
        api = dep.api()

        def only_keep():
            res = api.info(user=user)
            if res.status != 200:
                return False
            return [c["session"] for c in res.json["connections"]] == ["keep"]
        h.wait_until(only_keep, 5, interval=0.1, what="the stale connection to go")
        rc = r.client()
        assert not rc.exists(f"conn:{gone_id}")
        assert gone_id not in {m.decode() for m in rc.smembers(f"user:{user}")}
        assert not rc.exists(f"user-session:{user}-gone")
        api.send(b"still", user=user, type="text").expect(200)
        assert keep.recv_data() == b"still"


@pytest.mark.redis_only
def test_oom_redis_refuses_claims_with_503(make_redis, make_deployment):
    r, dep = fault_deployment(make_redis, make_deployment)
    rc = r.client()
    api = dep.api()
    api.claim(user=h.new_id()).expect(200)
    rc.config_set("maxmemory-policy", "noeviction")
    rc.config_set("maxmemory", 1)
    try:
        for _ in range(3):
            user = h.new_id()
            api.claim(user=user).expect(503, "ERROR_CHECKING_CLAIM")
            api.claim(user=user, session="s", id=h.new_id()).expect(503, "ERROR_CHECKING_CLAIM")
            assert user_keys(rc, user) == [], "a refused claim left keys behind"
        # reads still work
        api.info(user=h.new_id()).expect(200)
        for p in dep.procs:
            assert p.alive()
    finally:
        rc.config_set("maxmemory", 0)
    api.claim(user=h.new_id()).expect(200)


@pytest.mark.redis_only
def test_wrong_password(make_redis, make_deployment):
    r = make_redis()
    r.client().config_set("requirepass", "right-pass")
    opts = {"redis-timeout-ms": TIMEOUT_MS, "redis-password": "wrong-pass"}
    dep = make_deployment(redis=r, workers=0, api_opts=opts)
    api = dep.api()
    t = time.monotonic()
    api.claim(user=h.new_id()).expect(503, "ERROR_CHECKING_CLAIM")
    api.send(b"x", user="u", type="text").expect(503, "ERROR_GETTING_USER")
    api.info(id="x").expect(503, "ERROR_GETTING_CONNECTION")
    assert time.monotonic() - t < 3 * (TIMEOUT_MS / 1000 + 0.5)
    log = dep.api_procs[0].log()
    assert "WRONGPASS" in log or "invalid password" in log, log[-2000:]
    assert log.count("WRONGPASS") + log.count("invalid password") <= 3, "the failure floods the log"


@pytest.mark.redis_only
def test_redis_killed_during_burst(make_redis, make_deployment):
    """Requests in flight (sent, unanswered) and waiting when Redis dies all answer 503
    with their code, none 200, none hangs; afterwards everything works again."""
    r, dep = fault_deployment(make_redis, make_deployment, workers=0)
    api = dep.api()
    api.info(user="warm").expect(200)
    results = []
    lock = threading.Lock()

    def call(i):
        kind = i % 3
        if kind == 0:
            res = api.send(b"x", user=f"u{i}", type="text")
            code = "ERROR_GETTING_USER"
        elif kind == 1:
            res = api.info(id=f"c{i}")
            code = "ERROR_GETTING_CONNECTION"
        else:
            res = api.claim(user=f"u{i}")
            code = "ERROR_CHECKING_CLAIM"
        with lock:
            results.append((res, code))

    r.pause()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(90)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(0.2)
    r.proc.popen.send_signal(signal.SIGKILL)  # while stopped: dies without answering
    r.proc.popen.wait(5)
    r.proc.expect_clean_exit = False
    r.paused = False
    for t in threads:
        t.join(5)
    took = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "a request hung"
    assert len(results) == 90
    for res, code in results:
        if code in ("ERROR_GETTING_USER", "ERROR_CHECKING_CLAIM"):
            # a /send or /claim in flight cannot know whether Redis ran it (docs/api.md)
            res.expect(503)
            assert res.json["errorCode"] in (code, "ERROR_OUTCOME_UNKNOWN"), res.json
        else:
            res.expect(503, code)
    assert took < TIMEOUT_MS / 1000 + 1.5, took
    r.start()
    h.wait_until(lambda: api.claim(user=h.new_id()).status == 200, 5, interval=0.1,
                 what="recovery")


# ---------------------------------------------------------------------------
# Large targets and resync


def open_many(dep, user, n, worker, session=None):
    tok = jwt_for(dep, user, session)
    return [h.ws_connect(dep.worker(worker), "jwt=" + tok) for _ in range(n)]


@pytest.mark.redis_only
def test_user_with_5000_connections(make_redis, make_deployment):
    """/send to a user with 5000 connections on 2 workers: one script, two PUBLISHes,
    fast; /info lists them all; the scripts' cost shows in Redis's SLOWLOG."""
    r, dep = fault_deployment(make_redis, make_deployment, workers=2)
    rc = r.client()
    user = h.new_id()
    socks = []
    try:
        t = time.monotonic()
        for w in (0, 1):
            socks += open_many(dep, user, 2500, w, session=f"s{w}")
        opened = time.monotonic() - t
        # the workers' heartbeats may run in between: counted apart
        rc.config_resetstat()
        reset_at = time.monotonic()
        api = h.KeepAliveApi(dep.apis[0], dep.token)
        times = []
        for i in range(5):
            t = time.monotonic()
            j = api.send(b"m%d" % i, user=user, type="text").expect(200)
            times.append(time.monotonic() - t)
            assert j == {"success": True, "connections": 5000, "workers": 2}, j
        api.close()
        stats = rc.info("commandstats")
        # each worker also publishes its /readyz canary to itself once a second
        canaries = 2 * (int(time.monotonic() - reset_at) + 2)
        evalsha = stats["cmdstat_evalsha"]
        publish = stats["cmdstat_publish"]
        assert evalsha["calls"] <= 5 + 4, ("one script per /send", stats.keys())
        assert 10 <= publish["calls"] <= 10 + canaries, "one PUBLISH per worker per /send"
        script_us = evalsha["usec_per_call"]
        t = time.monotonic()
        res = dep.api().info(user=user)
        info_s = time.monotonic() - t
        conns = res.expect(200)["connections"]
        assert len(conns) == 5000 and len({c["id"] for c in conns}) == 5000
        for s in socks[::250]:
            assert [s.recv_data() for _ in range(5)] == [b"m%d" % i for i in range(5)]
        print(f"\nopened 5000 in {opened:.2f}s; /send {[round(x * 1000, 1) for x in times]} ms; "
              f"scripts {script_us:.0f} us per call; /info {info_s * 1000:.0f} ms, "
              f"{len(res.body)} bytes")
        assert sorted(times)[2] < 0.2, times
        assert info_s < 1.0
    finally:
        for s in socks:
            s.close()


@pytest.mark.redis_only
def test_resync_2000_connections_after_flushall(make_redis, make_deployment):
    ttl = 3
    r, dep = fault_deployment(make_redis, make_deployment, **{"worker-ttl": ttl})
    rc = r.client()
    user = h.new_id()
    socks = open_many(dep, user, 2000, 0)
    try:
        api = dep.api()
        assert api.send(b"before", user=user, type="text").expect(200)["connections"] == 2000
        rc.slowlog_reset()
        rc.flushall()
        t = time.monotonic()

        def all_back():
            return api.send(b"probe", user=user, type="text").expect(200)["connections"] == 2000
        h.wait_until(all_back, ttl / 3 + 3, interval=0.05, what="2000 connections back")
        took = time.monotonic() - t
        log = dep.worker_procs[0].log()
        assert 'msg="store resync: registering connections again" connections=2000' in log
        print(f"\n2000 connections reachable again {took:.2f}s after FLUSHALL")
        # clean afterwards: nothing stale, index complete
        assert rc.scard(f"user:{user}") == 2000
        wid = rc.hget(f"conn:{next(iter(rc.smembers(f'user:{user}'))).decode()}", "worker")
        assert rc.scard(f"worker-conns:{wid.decode()}") == 2000
    finally:
        for s in socks:
            s.close()


@pytest.mark.redis_only
def test_order_kept_when_command_connection_reconnects(make_redis, make_deployment):
    """1000 sends on one API keep-alive connection while Redis drops every client
    connection twice: messages may be lost across the outage (503), never reordered,
    and every acknowledged one arrives."""
    r, dep = fault_deployment(make_redis, make_deployment)
    rc = r.client()
    user = h.new_id()
    ws = h.ws_connect(dep.worker(0), "jwt=" + jwt_for(dep, user))
    acked = []
    with ws:
        api = h.KeepAliveApi(dep.apis[0], dep.token)

        def burst():
            for i in range(1000):
                res = api.send(b"%d" % i, user=user, type="text")
                if res.status == 200 and res.json["connections"] == 1:
                    acked.append(i)
                else:
                    assert res.status in (200, 503), res

        th = threading.Thread(target=burst)
        th.start()
        for _ in range(2):
            time.sleep(0.15)
            rc.client_kill_filter(_type="normal", skipme=True)
        th.join(30)
        api.close()
        got = []
        while True:
            try:
                got.append(int(ws.recv_data(1.0)))
            except TimeoutError:
                break
    assert got == sorted(got) and len(set(got)) == len(got), "reordered or duplicated"
    assert set(acked) <= set(got), f"acknowledged but lost: {sorted(set(acked) - set(got))[:10]}"
    assert len(got) > 500
