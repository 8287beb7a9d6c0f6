"""Redis outages: with Redis stopped or paused every call answers 503 with its ERROR_*
code within redis_timeout + 1 s; when Redis comes back (empty), everything works again
without restarting dsock, including clients that stayed connected through the outage.
Each test has its own redis-server and dsock processes."""
import time

import jwt as pyjwt
import pytest

import dsock_helpers as h

TIMEOUT_MS = 500
BOUND = TIMEOUT_MS / 1000 + 1.0
BIG = bytes(range(256)) * 4096  # 1 MiB


def fault_deployment(make_redis, make_deployment, **worker_opts):
    r = make_redis()
    opts = {"redis-timeout-ms": TIMEOUT_MS}
    dep = make_deployment(redis=r, api_opts=opts, worker_opts=dict(opts, **worker_opts))
    return r, dep


def timed(fn):
    t = time.monotonic()
    res = fn()
    return res, time.monotonic() - t


def check_all_calls_fail(dep, user, conn_id, paused=False):
    """paused: a /claim, /send or /disconnect handed to a frozen Redis may also answer
    ERROR_OUTCOME_UNKNOWN (it was received, and runs when Redis resumes); one that
    never reached it keeps its ERROR_* code."""
    api = dep.api()
    calls = [
        ("claim", lambda: api.claim(user=user), "ERROR_CHECKING_CLAIM"),
        ("send user", lambda: api.send(b"x", user=user, type="text"), "ERROR_GETTING_USER"),
        ("send session", lambda: api.send(b"x", user=user, session="s", type="text"),
         "ERROR_GETTING_USER"),
        ("send id", lambda: api.send(b"x", id=conn_id, type="text"), "ERROR_GETTING_CONNECTION"),
        # a big send resolves its targets first, then PUBLISHes (docs/redis.md, "Big
        # sends"): a lost resolution published nothing, so its plain code
        ("send user 1 MiB", lambda: api.send(BIG, user=user, type="binary"),
         "ERROR_GETTING_USER"),
        ("send id 1 MiB", lambda: api.send(BIG, id=conn_id, type="binary"),
         "ERROR_GETTING_CONNECTION"),
        ("disconnect user", lambda: api.disconnect(user=user), "ERROR_GETTING_USER"),
        ("disconnect id", lambda: api.disconnect(id=conn_id), "ERROR_GETTING_CONNECTION"),
        ("info user", lambda: api.info(user=user), "ERROR_GETTING_USER"),
        ("info id", lambda: api.info(id=conn_id), "ERROR_GETTING_CONNECTION"),
    ]
    for name, fn, code in calls:
        res, took = timed(fn)
        if paused and name.startswith(("send", "disconnect", "claim")):
            res.expect(503)
            assert res.json["errorCode"] in (code, "ERROR_OUTCOME_UNKNOWN"), (name, res.json)
        else:
            res.expect(503, code)
        assert took < BOUND, f"{name} took {took:.2f}s (bound {BOUND}s)"
    # token and parameters are still checked first
    api.claim().expect(400, "USER_ID_REQUIRED")
    api.request("GET", "/info", {"user": user}, auth=None).expect(401, "INVALID_AUTHORIZATION")

    res, took = timed(lambda: h.ws_handshake(dep.worker(0), f"claim={h.new_id()}"))
    assert res[1] is None, "connect with a claim was upgraded while Redis is down"
    res[0].response().expect(503, "ERROR_GETTING_CLAIM")
    assert took < BOUND, f"connect with claim took {took:.2f}s"

    tok = pyjwt.encode({"sub": h.new_id(), "exp": int(time.time()) + 60}, dep.jwt_secret,
                       algorithm="HS256")
    res, took = timed(lambda: h.ws_handshake(dep.worker(0), f"jwt={tok}"))
    assert res[1] is None, "connect with a JWT was upgraded while Redis is down"
    res[0].response().expect(503, "ERROR_SAVING_CONNECTION")
    assert took < BOUND, f"connect with JWT took {took:.2f}s"

    for p in dep.procs:
        assert p.alive(), f"{p.name} died during the Redis outage"


def check_recovered(dep, user, survivor, bound=15):
    api = dep.api()
    # new claims and connections
    h.wait_until(lambda: api.claim(user=h.new_id()).status == 200, bound, interval=0.2,
                 what="claims to work again after Redis returned")
    # the connection that lived through the outage receives again
    n = [0]

    def survivor_receives():
        n[0] += 1
        r = api.send(f"probe{n[0]}".encode(), user=user, type="text")
        if r.status != 200 or r.json.get("connections", 0) < 1:
            return False
        try:
            data = survivor.recv_data(1.0)
        except TimeoutError:
            return False
        return data.startswith(b"probe")

    h.wait_until(survivor_receives, bound, interval=0.2,
                 what="the connection that stayed open through the outage to receive again "
                      "(worker re-registration and resubscription)")
    conns = api.info(user=user).expect(200)["connections"]
    assert len(conns) == 1 and conns[0]["user"] == user, conns
    # drain late probes, then check exact delivery
    while True:
        try:
            survivor.recv_data(0.3)
        except TimeoutError:
            break
    api.send(b"exact", user=user, type="text").expect(200)
    assert survivor.recv_data() == b"exact"
    api.send(BIG, user=user, type="binary").expect(200)
    assert survivor.recv_data(10) == BIG
    # new connections work and are routable
    user2 = h.new_id()
    with dep.connect(user2) as ws:
        api.send(b"new-conn", user=user2, type="text").expect(200)
        assert ws.recv_data() == b"new-conn"
    # disconnect works again too
    api.disconnect(user=user).expect(200)
    assert survivor.expect_close()[0] == 1000


@pytest.mark.redis_only
def test_redis_stopped_then_restarted_empty(make_redis, make_deployment):
    r, dep = fault_deployment(make_redis, make_deployment)
    user = h.new_id()
    with dep.connect(user, "s") as survivor:
        conn_id = dep.api().info(user=user).expect(200)["connections"][0]["id"]
        r.stop()
        check_all_calls_fail(dep, user, conn_id)
        assert survivor.is_open(), "a client was dropped because Redis went away"
        r.start()
        check_recovered(dep, user, survivor)


@pytest.mark.redis_only
def test_redis_killed_then_restarted_empty(make_redis, make_deployment):
    import signal
    r, dep = fault_deployment(make_redis, make_deployment)
    user = h.new_id()
    with dep.connect(user) as survivor:
        r.stop(signal.SIGKILL)
        time.sleep(0.2)
        r.start()
        check_recovered(dep, user, survivor)


@pytest.mark.redis_only
def test_redis_paused_then_resumed(make_redis, make_deployment):
    r, dep = fault_deployment(make_redis, make_deployment)
    user = h.new_id()
    with dep.connect(user, "s") as survivor:
        conn_id = dep.api().info(user=user).expect(200)["connections"][0]["id"]
        r.pause()
        try:
            check_all_calls_fail(dep, user, conn_id, paused=True)
            assert survivor.is_open()
        finally:
            r.resume()
        check_recovered(dep, user, survivor)


@pytest.mark.redis_only
def test_redis_loses_data(make_redis, make_deployment):
    """FLUSHALL without a restart: the worker notices and registers its live
    connections again (bounded by worker_ttl)."""
    ttl = 3
    r, dep = fault_deployment(make_redis, make_deployment, **{"worker-ttl": ttl})
    user = h.new_id()
    with dep.connect(user) as survivor:
        r.client().flushall()
        check_recovered(dep, user, survivor, bound=ttl + 5)


@pytest.mark.redis_only
def test_first_request_after_a_long_pause_is_served(make_redis, make_deployment):
    """After a pause long enough for the reconnect back-off to grow past
    redis_timeout_ms, the first request once Redis is back must not fail: a waiting
    request makes the next attempt happen at once instead of at the end of the
    back-off (up to 2 s, longer than the request may wait). One API thread, so the
    request surely lands on the connection that was backing off."""
    r = make_redis()
    opts = {"redis-timeout-ms": TIMEOUT_MS, "threads": 1}
    dep = make_deployment(redis=r, api_opts=opts, worker_opts={"redis-timeout-ms": TIMEOUT_MS})
    api = dep.api()
    api.claim(user=h.new_id()).expect(200)
    r.pause()
    try:
        # requests time out, the connection is dropped, and the attempts that
        # follow time out too: the back-off doubles up to its 2 s ceiling
        end = time.monotonic() + 5
        while time.monotonic() < end:
            api.claim(user=h.new_id()).expect(503)
    finally:
        r.resume()
    api.claim(user=h.new_id()).expect(200)


def _jwt(dep, user):
    return pyjwt.encode({"sub": user, "exp": int(time.time()) + 600}, dep.jwt_secret,
                        algorithm="HS256")


@pytest.mark.redis_only
def test_restart_under_load_is_noticed_at_once(make_redis, make_deployment):
    """Issue 11, item 1: a Redis SIGKILLed and started again while commands are in
    flight. The reset must be noticed when it happens, not when the oldest command
    times out: with a 5 s redis_timeout_ms, /send works again, and the worker has
    registered its clients again, well within it. (Before the fix hiredis's libuv
    adapter dropped the poll error and both took the whole timeout.)"""
    import signal
    import threading
    timeout_ms = 5000
    r = make_redis()
    opts = {"redis-timeout-ms": timeout_ms}
    dep = make_deployment(redis=r, api_opts=dict(opts, threads=1), worker_opts=opts)
    user = h.new_id()
    stop = threading.Event()
    errors = []

    def sender():
        # Commands always in flight on the API's command connection.
        api = h.KeepAliveApi(dep.apis[0], dep.token)
        try:
            while not stop.is_set():
                api.send(b"load", user=h.new_id(), type="text")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            api.close()

    def churn():
        # ... and on the worker's: connections come and go (register/unregister).
        while not stop.is_set():
            try:
                ws = h.ws_connect(dep.worker(0), "jwt=" + _jwt(dep, h.new_id()), timeout=10)
                ws.close()
            except Exception:  # noqa: BLE001 - refused while Redis is away
                time.sleep(0.01)

    with h.ws_connect(dep.worker(0), "jwt=" + _jwt(dep, user)) as survivor:
        threads = [threading.Thread(target=sender) for _ in range(3)] + \
                  [threading.Thread(target=churn) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.5)
            r.stop(signal.SIGKILL)
            r.start()
            t_up = time.monotonic()
            rc = r.client()
            api = dep.api()
            t_send = t_reg = None
            deadline = t_up + 3 * timeout_ms / 1000
            # The worker's registrations, read in Redis itself (not through an API
            # that may be blind too), and the first /send answered 200.
            while time.monotonic() < deadline and (t_reg is None or t_send is None):
                if t_reg is None and rc.scard(f"user:{user}") >= 1:
                    t_reg = time.monotonic()
                if t_send is None:
                    res = api.send(b"probe", user=user, type="text")
                    if res.status == 200:
                        t_send = time.monotonic()
                time.sleep(0.02)
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert not errors, errors
        assert t_send is not None and t_reg is not None, "never recovered"
        send_s, reg_s = t_send - t_up, t_reg - t_up
        print(f"after the restart: /send ok after {send_s:.2f} s, "
              f"worker re-registered after {reg_s:.2f} s (redis_timeout_ms {timeout_ms})")
        # generous for a loaded machine, and still far below the 5 s timeout
        assert send_s < 2.0, f"/send failed for {send_s:.2f} s after Redis was back"
        assert reg_s < 2.5, f"the worker re-registered {reg_s:.2f} s after Redis was back"
        assert survivor.is_open()


@pytest.mark.redis_only
def test_pause_over_the_subscription_check_keeps_the_subscription(make_redis, make_deployment):
    """Issue 11, item 3: a worker's periodic subscription check that falls inside a
    Redis pause must not cost the subscription: once Redis resumes, every message
    published is delivered, none reported unreachable. (Before, the late confirmation
    dropped the pub/sub connection, its reconnects timed out during the pause with a
    growing back-off, and what was published after the resume until it was back was
    lost.) The check runs every worker_ttl/3 = 3 s after the subscription (made
    within a second before make_deployment returns): the 4 s pause from +2 s to +6 s
    holds the first check, early; the alive key (9 s) outlives it."""
    r = make_redis()
    opts = {"redis-timeout-ms": TIMEOUT_MS}
    dep = make_deployment(redis=r, api_opts=opts, worker_opts=dict(opts, **{"worker-ttl": 9}))
    t0 = time.monotonic()
    user = h.new_id()
    with dep.connect(user) as ws:
        api = dep.api()
        api.send(b"before", user=user, type="text").expect(200)
        assert ws.recv_data() == b"before"
        time.sleep(max(0.0, t0 + 2.0 - time.monotonic()))
        r.pause()
        try:
            time.sleep(4.0)
        finally:
            r.resume()
        sent = []
        end = time.monotonic() + 15
        for i in range(40):
            body = f"m{i}".encode()
            while True:  # a 503 (the API's own connection coming back) is retried
                assert time.monotonic() < end, "the API did not recover"
                res = api.send(body, user=user, type="text")
                if res.status == 200:
                    break
                res.expect(503)
                time.sleep(0.05)
            assert res.json["connections"] == 1 and res.json.get("unreachable", 0) == 0, \
                f"message {i} after the resume: {res.json}"
            sent.append(body)
            time.sleep(0.02)
        got = [ws.recv_data() for _ in sent]
        assert got == sent
        ws.expect_no_message(0.3)


# ---------------------------------------------------------------------------
# Only the subscription fails (issue 11): the worker must not stay deaf. Its command
# connection is fine, so nothing but the subscription's own checks can notice.


def conn_ids_of(api, user):
    return [c["id"] for c in api.info(user=user).expect(200)["connections"]]


@pytest.mark.redis_only
def test_killed_subscription_resubscribes_and_resyncs(make_redis, make_deployment):
    """CLIENT KILL TYPE pubsub: the worker resubscribes and registers its connections
    again (what was published meanwhile is lost, so Redis may disagree with it): a
    connection record deleted behind its back is back, and delivery resumes on the
    same client socket."""
    r, dep = fault_deployment(make_redis, make_deployment, **{"worker-ttl": 3})
    api = dep.api()
    user = h.new_id()
    with dep.connect(user) as ws:
        api.send(b"before", user=user, type="text").expect(200)
        assert ws.recv_data() == b"before"
        (cid,) = conn_ids_of(api, user)
        rc = r.client()
        rc.delete(f"conn:{cid}")  # Redis now disagrees with the worker
        assert conn_ids_of(api, user) == []
        assert rc.execute_command("CLIENT", "KILL", "TYPE", "pubsub") == 1
        h.wait_until(lambda: conn_ids_of(api, user) == [cid], 10, interval=0.1,
                     what="the resync after the resubscription")
        h.wait_until(lambda: api.send(b"after", user=user, type="text").json.get("unreachable", 0)
                     == 0, 10, interval=0.1, what="a delivery")
        while ws.recv_data(5) != b"after":
            pass
        assert "Server closed the connection" in dep.worker_procs[0].log() or \
            "connection lost" in dep.worker_procs[0].log()


class FreezingProxy:
    """A TCP proxy to Redis that can freeze the next connection that sends SUBSCRIBE:
    from then on it swallows that connection's bytes both ways and keeps it open, as
    a dead NAT entry or a half-broken link would. Other connections pass."""

    def __init__(self, target_port):
        import socket
        import threading
        self.target = target_port
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((h.HOST, 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.freeze_next = False
        self.frozen = 0
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def host(self):
        return f"{h.HOST}:{self.port}"

    def _accept(self):
        import socket
        import threading
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            s = socket.create_connection((h.HOST, self.target))
            state = {"frozen": False}
            with self.lock:
                self.socks += [c, s]
            threading.Thread(target=self._pump, args=(c, s, state, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, state, False), daemon=True).start()

    def _pump(self, src, dst, state, upstream):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                if not state["frozen"]:
                    try:
                        dst.shutdown(1)
                    except OSError:
                        pass
                return
            with self.lock:
                if upstream and self.freeze_next and b"SUBSCRIBE" in data.upper():
                    self.freeze_next = False
                    state["frozen"] = True
                    self.frozen += 1
            if state["frozen"]:
                continue  # swallowed
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self):
        self.lsock.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass


@pytest.mark.redis_only
def test_silent_subscription_is_redone(make_redis, make_deployment):
    """The subscription's connection goes silent (its probe, a re-SUBSCRIBE every
    worker_ttl/3, is never confirmed) while Redis and the command connection answer:
    the worker drops it within about twice redis_timeout_ms, subscribes again,
    resyncs, and delivery resumes without the client reconnecting."""
    r = make_redis()
    proxy = FreezingProxy(r.port)
    try:
        opts = {"redis-timeout-ms": TIMEOUT_MS}
        dep = make_deployment(redis=proxy, api_opts=opts,
                              worker_opts=dict(opts, **{"worker-ttl": 3}))
        api = dep.api()
        user = h.new_id()
        with dep.connect(user) as ws:
            api.send(b"before", user=user, type="text").expect(200)
            assert ws.recv_data() == b"before"
            proxy.freeze_next = True  # the next probe freezes the subscription
            h.wait_until(lambda: proxy.frozen == 1, 10, interval=0.05, what="a probe")
            # Redis still counts the subscriber: a send reports success while the
            # frozen connection swallows it, until the worker redoes its subscription.
            h.wait_until(lambda: "no subscription confirmation" in dep.worker_procs[0].log(),
                         15, interval=0.1, what="the worker to drop the silent subscription")

            def delivered():
                api.send(b"after", user=user, type="text").expect(200)
                try:
                    while True:
                        if ws.recv_data(0.5) == b"after":
                            return True
                except TimeoutError:
                    return False
            h.wait_until(delivered, 10, interval=0.1, what="delivery after the resubscription")
            assert ws.is_open()
    finally:
        proxy.close()
