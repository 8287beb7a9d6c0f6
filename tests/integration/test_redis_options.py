"""How dsock reaches Redis (docs/redis.md, "Reaching Redis: ACL user, Unix socket,
TLS"): a Redis 6 ACL user limited by the rule docs/redis.md gives operators (read
from the page itself, so page and code cannot drift apart), and a Unix socket.
Each test has its own redis-server and dsock processes."""
import os
import re
import shutil
import tempfile
import time
import urllib.parse

import pytest

import dsock_helpers as h

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASSWORD = "acl-secret-for-tests"


def acl_rule():
    """The `ACL SETUSER dsock ...` line of docs/redis.md, as an argument list."""
    with open(os.path.join(REPO, "docs", "redis.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"^ACL SETUSER dsock .*$", text, re.M)
    assert m, "docs/redis.md lost its ACL rule"
    return m.group(0).replace(">PASSWORD", ">" + PASSWORD).split()


def wait_for_delivery(dep, user, ws, what):
    """Sends numbered messages to user until one reaches ws (at most 15 s): the
    way back after dsock lost Redis, for a client that stayed connected."""
    api, n = dep.api(), [0]

    def receives():
        n[0] += 1
        res = api.send(f"p{n[0]}".encode(), user=user, type="text")
        if res.status != 200 or res.json["connections"] < 1:
            return False
        try:
            return ws.recv_data(1.0).startswith(b"p")
        except TimeoutError:
            return False

    h.wait_until(receives, 15, interval=0.2, what=what)


def exercise(dep):
    """Every API call and a client's whole life through one deployment."""
    api = dep.api()
    user, chan = h.new_id(), h.new_id("ch")
    claim = api.claim(user=user, session="s", channels=chan).expect(200)["claim"]["id"]
    with h.ws_connect(dep.worker(0), f"claim={claim}") as ws:
        res = api.send(b"hello", user=user, type="text").expect(200)
        assert res["connections"] == 1, res
        assert ws.recv_data() == b"hello"
        api.send(b"to-channel", channel=chan, type="text").expect(200)
        assert ws.recv_data() == b"to-channel"
        other = h.new_id("ch")
        path = "/channel/subscribe/" + urllib.parse.quote(other, safe="")
        api.request("POST", path, {"user": user}).expect(200)
        api.send(b"joined", channel=other, type="text").expect(200)
        assert ws.recv_data() == b"joined"
        path = "/channel/unsubscribe/" + urllib.parse.quote(other, safe="")
        api.request("POST", path, {"user": user}).expect(200)
        # by channel: the worker writes the membership back (chan_apply)
        path = "/channel/subscribe/" + urllib.parse.quote(other, safe="")
        api.request("POST", path, {"channel": chan}).expect(200)
        api.send(b"by-channel", channel=other, type="text").expect(200)
        assert ws.recv_data() == b"by-channel"
        h.wait_until(lambda: api.info(user=user).expect(200)["connections"][0]["channels"] ==
                     [chan, other], 5, what="the worker to write the membership back")
        path = "/channel/unsubscribe/" + urllib.parse.quote(other, safe="")
        api.request("POST", path, {"channel": chan}).expect(200)
        h.wait_until(lambda: api.info(user=user).expect(200)["connections"][0]["channels"] ==
                     [chan], 5, what="the worker to write the membership back")
        conns = api.info(user=user).expect(200)["connections"]
        assert len(conns) == 1 and conns[0]["channels"] == [chan], conns
        api.info(channel=chan).expect(200)
        # an idempotent send and its replay
        key = {"Idempotency-Key": h.new_id("k")}
        api.request("POST", "/send", {"user": user, "type": "text"}, body=b"idem",
                    headers=key).expect(200)
        res = api.request("POST", "/send", {"user": user, "type": "text"}, body=b"idem",
                          headers=key)
        assert res.expect(200)["connections"] == 1
        assert res.headers.get("idempotent-replayed") == "true"
        assert ws.recv_data() == b"idem"
        api.disconnect(user=user).expect(200)
        assert ws.expect_close()[0] == 1000
    # a JWT connection (registration without a claim) and its unregistration
    import jwt as pyjwt
    tok = pyjwt.encode({"sub": h.new_id(), "exp": int(time.time()) + 60}, dep.jwt_secret,
                       algorithm="HS256")
    h.ws_connect(dep.worker(0), f"jwt={tok}").close()
    # readiness: the API's PING and the worker's canary
    for addr in (dep.apis[0], dep.workers[0]):
        h.wait_until(lambda a=addr: h.raw_http(a, b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n")
                     .response().status == 200, 10, what=f"{addr} ready")


@pytest.mark.redis_only
def test_acl_user_with_least_privilege(make_redis, make_deployment):
    r = make_redis()
    rc = r.client()
    rc.execute_command(*acl_rule())
    rc.execute_command("ACL", "LOG", "RESET")
    opts = {"redis-username": "dsock", "redis-password": PASSWORD, "redis-db": 3,
            "worker-ttl": 2}
    dep = make_deployment(redis=r, api_opts=opts, worker_opts=opts)
    exercise(dep)
    # reconnects (AUTH again, a resync, a new subscription), then EVAL after a
    # SCRIPT FLUSH, with a client that stays connected throughout
    user = h.new_id()
    with dep.connect(user) as ws:
        rc.execute_command("CLIENT", "KILL", "USER", "dsock")
        rc.execute_command("SCRIPT", "FLUSH")
        wait_for_delivery(dep, user, ws, "delivery after the reconnect")
    time.sleep(1.0)  # a heartbeat and a sweep, a subscription probe
    assert rc.execute_command("ACL", "LOG") == [], "Redis refused dsock something"
    # a clean shutdown (worker_leave) needs nothing more either
    problems = dep.stop()
    assert not problems, problems
    assert rc.execute_command("ACL", "LOG") == [], "Redis refused dsock something at shutdown"
    # it did use the user, and the database
    r3 = h.redis_py.Redis(host=h.HOST, port=r.port, db=3)
    assert r3.exists("workers") == 0 and not list(r3.scan_iter("conn:*"))
    assert not list(rc.scan_iter("*")), "dsock wrote to database 0"


@pytest.mark.redis_only
def test_acl_user_with_a_wrong_password_is_refused(make_redis, make_deployment):
    r = make_redis()
    r.client().execute_command(*acl_rule())
    wrong = "not-the-password-4f1d"
    opts = {"redis-username": "dsock", "redis-password": wrong, "redis-timeout-ms": 500}
    dep = make_deployment(redis=r, api_opts=opts, worker_opts=opts)
    dep.api().claim(user=h.new_id()).expect(503, "ERROR_CHECKING_CLAIM")
    h.wait_until(lambda: "handshake refused" in dep.api_procs[0].log(), 5,
                 what="the refused AUTH in the log")
    assert wrong not in dep.api_procs[0].log(), "the password was logged"


class UnixRedis(h.RedisServer):
    """A redis-server listening on a Unix socket only (port 0)."""

    def __init__(self, log_dir):
        super().__init__(log_dir, "redis-unix")
        # sun_path holds 107 bytes: the socket lives in a short directory of its own
        self.sock_dir = tempfile.mkdtemp(prefix="dsock-sock-")
        self.sock = os.path.join(self.sock_dir, "redis.sock")

    @property
    def host(self):
        return f"unix:{self.sock}"

    def client(self, timeout=5):
        return h.redis_py.Redis(unix_socket_path=self.sock, socket_timeout=timeout)

    def start(self):
        argv = [h.REDIS_BIN, "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
                "--save", "", "--appendonly", "no", "--dir", self.log_dir]
        self.proc = h.Proc(self.name, argv, self.log_dir).start()
        h.wait_until(lambda: os.path.exists(self.sock) and self._pings(), 10,
                     what="redis on its Unix socket")
        self.paused = False
        return self

    def stop(self, sig=h.signal.SIGTERM):
        self._kill(sig)
        if os.path.exists(self.sock):
            os.unlink(self.sock)

    def shutdown(self):
        super().shutdown()
        shutil.rmtree(self.sock_dir, ignore_errors=True)


@pytest.fixture
def unix_redis(log_root, request):
    d = os.path.join(log_root, request.node.name)
    os.makedirs(d, exist_ok=True)
    r = UnixRedis(d).start()
    yield r
    r.shutdown()


@pytest.mark.redis_only
def test_unix_socket(unix_redis, make_deployment):
    r = unix_redis
    dep = make_deployment(redis=r, api_opts={"redis-timeout-ms": 1000},
                          worker_opts={"redis-timeout-ms": 1000})
    exercise(dep)
    assert "unix:" + r.sock in dep.api_procs[0].log()
    # a restart on the same socket: clients stay, and are reachable again
    user = h.new_id()
    with dep.connect(user) as ws:
        r.stop(h.signal.SIGKILL)
        r.start()
        wait_for_delivery(dep, user, ws, "delivery after the restart")
