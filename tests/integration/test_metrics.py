"""GET /metrics (docs/metrics.md): promtool accepts the output of every role, each
counter moves when its event happens, the auth rules (token, metrics_public,
metrics_address, a worker without token), and the log_requests access line
(docs/logging.md) with its X-Request-Id and no secret in it."""
import http.client
import re
import subprocess
import time
import uuid

import pytest

import dsock_helpers as h
from test_robustness import small_rcvbuf_ws

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def get(addr, path, headers=None, method="GET"):
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return h.Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def promtool_check(text):
    res = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                         capture_output=True, timeout=30)
    assert res.returncode == 0, f"promtool: {res.stdout!r} {res.stderr!r}\n{text}"


def parse(text):
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        assert m, f"bad sample line {line!r}"
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class Scraper:
    def __init__(self, addr, token):
        self.addr = addr
        self.token = token

    def text(self):
        res = get(self.addr, "/metrics", {"Authorization": f"Bearer {self.token}"})
        assert res.status == 200, res
        assert res.headers["content-type"].startswith("text/plain; version=0.0.4")
        return res.body.decode()

    def scrape(self):
        return parse(self.text())

    def value(self, name, **labels):
        return self.scrape().get((name, frozenset(labels.items())), 0.0)

    def wait_for(self, name, at_least, timeout=10, **labels):
        h.wait_until(lambda: self.value(name, **labels) >= at_least, timeout,
                     what=f"{name}{labels} >= {at_least}")


def metrics_dep(make_deployment, kind, worker_opts=None, api_opts=None, **kw):
    """A deployment whose worker has the token too (so its /metrics can be read)."""
    token = "tok-" + uuid.uuid4().hex
    wopts = dict(worker_opts or {})
    if kind == "redis":
        wopts["token"] = token
    return make_deployment(token=token, worker_opts=wopts, api_opts=api_opts, **kw)


def scrapers(dep):
    return Scraper(dep.apis[0], dep.token), Scraper(dep.workers[0], dep.token)


# ---------------------------------------------------------------------------
# promtool and families


def test_promtool_accepts_every_role(make_deployment, deployment_kind):
    dep = metrics_dep(make_deployment, deployment_kind)
    api, worker = scrapers(dep)
    if deployment_kind == "redis":
        worker.wait_for("dsock_store_subscribed", 1)
    user = h.new_id()
    with dep.connect(user):
        dep.api().send(b"hi", user=user, type="text").expect(200)
        dep.api().send(b"x", type="text").expect(400)
        for s in (api, worker):
            text = s.text()
            promtool_check(text)
            assert "process_resident_memory_bytes" in text and "dsock_threads" in text
    role = "standalone" if deployment_kind == "standalone" else None
    a, w = api.scrape(), worker.scrape()
    build = [k for k in a if k[0] == "dsock_build_info"]
    assert len(build) == 1 and dict(build[0][1])["role"] == (role or "api")
    assert ("dsock_connections", frozenset()) in w
    if deployment_kind == "redis":
        assert ("dsock_connections", frozenset()) not in a   # worker families on workers
        assert ("dsock_api_messages_total", frozenset()) not in w
        assert w[("dsock_store_subscribed", frozenset())] == 1
    else:
        assert ("dsock_store_claims", frozenset()) in a


# ---------------------------------------------------------------------------
# Counters move with their events


def closed(s, reason):
    return s.value("dsock_connections_closed_total", reason=reason)


def test_connection_and_message_counters(make_deployment, deployment_kind):
    dep = metrics_dep(make_deployment, deployment_kind)
    api, worker = scrapers(dep)
    before_a, before_w = api.scrape(), worker.scrape()

    def delta(scrape, before, name, **labels):
        k = (name, frozenset(labels.items()))
        return scrape.get(k, 0) - before.get(k, 0)

    user = h.new_id()
    # connect; a message of 5 bytes; the client closes
    ws = dep.connect(user)
    dep.api().send(b"hello", user=user, type="text").expect(200)
    assert ws.recv_data() == b"hello"
    w = worker.scrape()
    assert delta(w, before_w, "dsock_connections_opened_total") == 1
    assert delta(w, before_w, "dsock_connections") == 1
    assert delta(w, before_w, "dsock_messages_written_total") == 1
    assert delta(w, before_w, "dsock_message_bytes_written_total") == 5
    a = api.scrape()
    assert delta(a, before_a, "dsock_api_messages_total") == 1
    assert delta(a, before_a, "dsock_api_message_bytes_total") == 5
    assert delta(a, before_a, "dsock_api_requests_total", endpoint="send", status="200",
                 code="") == 1
    assert delta(a, before_a, "dsock_api_requests_total", endpoint="claim", status="200",
                 code="") == 1
    assert delta(a, before_a, "dsock_api_request_duration_seconds_count", endpoint="send") == 1
    assert delta(a, before_a, "dsock_store_operation_duration_seconds_count", op="send") >= 1
    ws.send_close(1000)
    ws.expect_close()
    ws.close()
    worker.wait_for("dsock_connections_closed_total",
                    before_w.get(("dsock_connections_closed_total",
                                  frozenset({("reason", "client_close")})), 0) + 1,
                    reason="client_close")

    # /disconnect closes it
    ws = dep.connect(user)
    dep.api().disconnect(user=user).expect(200)
    ws.expect_close()
    ws.close()
    worker.wait_for("dsock_connections_closed_total", 1, reason="disconnect_api")

    # a protocol error: an unmasked client frame (1002)
    ws = dep.connect(user)
    ws.send_frame(0x1, b"x", mask=False)
    ws.expect_close()
    ws.close()
    worker.wait_for("dsock_connections_closed_total", 1, reason="protocol_error")

    # the peer vanishes (no close frame)
    ws = dep.connect(user)
    ws.sock.close()
    worker.wait_for("dsock_connections_closed_total", 1, reason="gone")
    h.wait_until(lambda: worker.value("dsock_connections") == before_w.get(
        ("dsock_connections", frozenset()), 0), 10, what="no connection left")

    # a refused handshake, by errorCode, and API errors by endpoint/status/code
    res, ws = h.ws_handshake(dep.worker(), "claim=nosuchclaim")
    assert ws is None and res.status == 401
    worker.wait_for("dsock_handshakes_refused_total", 1, code="MISSING_CLAIM")
    worker.wait_for("dsock_api_requests_total", 1, endpoint="connect", status="401",
                    code="MISSING_CLAIM")
    worker.wait_for("dsock_api_requests_total", 4, endpoint="connect", status="101", code="")
    dep.api(token="wrong").send(b"x", user=user, type="text").expect(401)
    dep.api().info().expect(400, "MISSING_CONNECTION_OR_USER")
    a = api.scrape()
    assert delta(a, before_a, "dsock_api_requests_total", endpoint="send", status="401",
                 code="INVALID_AUTHORIZATION") == 1
    assert delta(a, before_a, "dsock_api_requests_total", endpoint="info", status="400",
                 code="MISSING_CONNECTION_OR_USER") == 1
    get(dep.apis[0], "/nowhere").expect(404)
    api.wait_for("dsock_api_requests_total", 1, endpoint="other", status="404", code="NOT_FOUND")
    promtool_check(api.text())
    promtool_check(worker.text())


def test_slow_client_and_ping_timeout(make_deployment, deployment_kind):
    dep = metrics_dep(make_deployment, deployment_kind,
                      worker_opts={"max-queued-bytes": 65536, "ping-interval": 1,
                                   "ping-timeout": 2})
    api, worker = scrapers(dep)
    user = h.new_id()
    slow = small_rcvbuf_ws(dep.worker(), f"claim={dep.claim(user)}")
    try:
        body = b"x" * 16384
        for _ in range(200):  # bounded: far beyond 64 KiB plus the socket buffers
            dep.api().send(body, user=user, type="binary").expect(200)
            if worker.value("dsock_connections_closed_total", reason="slow_client") >= 1:
                break
        worker.wait_for("dsock_connections_closed_total", 1, reason="slow_client")
        worker.wait_for("dsock_deliveries_dropped_total", 1, reason="slow_client")
    finally:
        slow.close()
    # a client that says nothing for ping_timeout
    silent = dep.connect(h.new_id())
    try:
        worker.wait_for("dsock_connections_closed_total", 1, reason="ping_timeout", timeout=15)
    finally:
        silent.close()


@pytest.mark.redis_only
def test_store_errors_reconnects_resyncs(make_redis, make_deployment):
    r = make_redis()
    opts = {"redis-timeout-ms": 500}
    dep = metrics_dep(make_deployment, "redis", redis=r, api_opts=opts,
                      worker_opts=dict(opts, **{"worker-ttl": 3}))
    api, worker = scrapers(dep)
    user = h.new_id()
    with dep.connect(user) as survivor:
        worker.wait_for("dsock_store_subscribed", 1)
        r.pause()
        try:
            dep.api().send(b"x", user=user, type="text").expect(503)
            api.wait_for("dsock_store_errors_total", 1, kind="timeout")
        finally:
            r.resume()
        # the timed-out connection was dropped: it comes back
        api.wait_for("dsock_store_reconnects_total", 1)
        # an error answer: Redis out of memory refuses the claim script's write
        errors = api.value("dsock_store_errors_total", kind="error")
        h.wait_until(lambda: dep.api().info(user=user).status == 200, 10, what="api back")
        r.client().config_set("maxmemory-policy", "noeviction")
        r.client().config_set("maxmemory", "1")
        try:
            dep.api().claim(user=user).expect(503, "ERROR_CHECKING_CLAIM")
        finally:
            r.client().config_set("maxmemory", "0")
        api.wait_for("dsock_store_errors_total", errors + 1, kind="error")
        # Redis restarts empty: the worker reconnects and registers its connections again
        timeouts = api.value("dsock_store_errors_total", kind="timeout")
        r.stop()
        h.wait_until(lambda: worker.value("dsock_store_subscribed") == 0, 10,
                     what="subscription down")
        # no connection within redis_timeout_ms counts as a timeout
        dep.api().send(b"x", user=user, type="text").expect(503)
        api.wait_for("dsock_store_errors_total", timeouts + 1, kind="timeout")
        r.start()
        worker.wait_for("dsock_store_reconnects_total", 1)
        worker.wait_for("dsock_store_resyncs_total", 1)
        worker.wait_for("dsock_store_subscribed", 1)
        h.wait_until(lambda: dep.api().send(b"back", user=user, type="text").status == 200
                     and dep.api().info(user=user).json["connections"], 10,
                     what="recovered")
        assert survivor.is_open()
        promtool_check(worker.text())
        promtool_check(api.text())


@pytest.mark.redis_only
def test_invalid_bus_message_is_counted(make_redis, make_deployment):
    r = make_redis()  # private: its only worker channel is this worker's
    dep = metrics_dep(make_deployment, "redis", redis=r)
    _, worker = scrapers(dep)
    worker.wait_for("dsock_store_subscribed", 1)
    channels = r.client().pubsub_channels("worker:*")
    assert len(channels) == 1, channels
    r.client().publish(channels[0].decode(), b"\xff\xffnot protobuf")
    worker.wait_for("dsock_deliveries_dropped_total", 1, reason="invalid_bus_message")


# ---------------------------------------------------------------------------
# Who may read /metrics


def test_metrics_needs_the_token(make_deployment, deployment_kind):
    dep = metrics_dep(make_deployment, deployment_kind)
    addr = dep.apis[0]
    get(addr, "/metrics").expect(401, "INVALID_AUTHORIZATION")
    get(addr, "/metrics?token=wrong").expect(401, "INVALID_AUTHORIZATION")
    get(addr, "/metrics", {"Authorization": "Bearer wrong"}).expect(401, "INVALID_AUTHORIZATION")
    assert get(addr, f"/metrics?token={dep.token}").status == 200
    assert get(addr, "/metrics", {"Authorization": f"Bearer {dep.token}"}).status == 200
    res = get(addr, f"/metrics?token={dep.token}", method="HEAD")
    assert res.status == 200 and res.body == b""
    get(addr, f"/metrics?token={dep.token}", method="POST").expect(405, "METHOD_NOT_ALLOWED")


@pytest.mark.redis_only
def test_worker_without_token_says_how_to_enable(cluster):
    get(cluster.worker(), "/metrics").expect(404, "METRICS_DISABLED")


def test_metrics_public(make_deployment, deployment_kind):
    dep = make_deployment(api_opts={"metrics-public": "true"},
                          worker_opts={"metrics-public": "true"})
    for addr in {dep.apis[0], dep.workers[0]}:
        res = get(addr, "/metrics")
        assert res.status == 200, res
        promtool_check(res.body.decode())
    # the API itself still needs its token
    dep.api(token="wrong").info(user="u").expect(401)


def test_metrics_address(make_deployment, deployment_kind):
    ports = [h.free_port(), h.free_port()]
    if deployment_kind == "redis":
        dep = make_deployment(api_opts={"metrics-address": f"{h.HOST}:{ports[0]}"},
                              worker_opts={"metrics-address": f"{h.HOST}:{ports[1]}"})
        pairs = [(dep.apis[0], ports[0]), (dep.workers[0], ports[1])]
    else:
        dep = make_deployment(api_opts={"metrics-address": f"{h.HOST}:{ports[0]}"})
        pairs = [(dep.apis[0], ports[0])]
    for main, mport in pairs:
        maddr = (h.HOST, mport)
        res = get(maddr, "/metrics")  # no token there
        assert res.status == 200, res
        promtool_check(res.body.decode())
        get(maddr, "/claim").expect(404, "NOT_FOUND")  # only /metrics on that port
        # not on the main port, even with the token
        get(main, f"/metrics?token={dep.token}").expect(404, "NOT_FOUND")
    dep.api().claim(user="u").expect(200)


# ---------------------------------------------------------------------------
# log_requests


def access_lines(proc, since):
    return [h.parse_logfmt(l) for l in proc.log(since=since, tail_lines=100000).splitlines()
            if "msg=request" in l]


def test_log_requests_access_line(make_deployment, deployment_kind):
    dep = make_deployment(api_opts={"log-requests": "true"},
                          worker_opts={"log-requests": "true"})
    api_proc, worker_proc = dep.api_procs[0], dep.worker_procs[0]
    since_a, since_w = api_proc.log_size(), worker_proc.log_size()
    user = "user-" + h.new_id()
    claim = dep.claim(user)  # the token is in the query
    res = dep.api().request("GET", "/info", {"user": user}, headers={"X-Request-Id": "abc-42"})
    res.expect(200)
    assert res.headers["x-request-id"] == "abc-42"
    res = dep.api().request("GET", "/info", {"user": user},
                            headers={"X-Request-Id": "bad id\"with quote"})
    generated = res.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", generated), generated
    dep.api(token="wrong").send(b"x", user=user, type="text").expect(401)
    ws = h.ws_connect(dep.worker(), f"claim={claim}")
    ws.close()
    h.wait_until(lambda: len([l for l in access_lines(api_proc, since_a)
                              if l.get("path") in ("/claim", "/info", "/send")]) >= 4, 10,
                 what="API access lines")
    h.wait_until(lambda: any(l.get("path") == "/connect" for l in access_lines(worker_proc,
                                                                              since_w)),
                 10, what="/connect access line")
    lines = access_lines(api_proc, since_a)
    info = [l for l in lines if l.get("request_id") == "abc-42"]
    assert len(info) == 1, lines
    line = info[0]
    assert line["method"] == "GET" and line["path"] == "/info" and line["status"] == "200"
    assert int(line["duration_us"]) >= 0 and "error_code" not in line
    assert any(l.get("request_id") == generated for l in lines)
    refused = [l for l in lines if l.get("path") == "/send"]
    assert refused and refused[0]["status"] == "401"
    assert refused[0]["error_code"] == "INVALID_AUTHORIZATION"
    connect = [l for l in access_lines(worker_proc, since_w) if l.get("path") == "/connect"]
    assert connect[0]["status"] == "101"
    # no query, hence no token, claim or user from it, in any line
    for p, since in ((api_proc, since_a), (worker_proc, since_w)):
        text = p.log(since=since, tail_lines=100000)
        assert dep.token not in text
        assert claim not in text
        assert "token=" not in text and "claim=" not in text


def test_no_access_line_by_default(cluster):
    proc = cluster.api_procs[0]
    since = proc.log_size()
    res = cluster.api().info(user="u")
    res.expect(200)
    assert "x-request-id" in res.headers, "every answer names its request (docs/api.md)"
    time.sleep(0.2)
    assert not access_lines(proc, since)


def test_drain_is_visible_in_the_metrics(make_deployment, deployment_kind):
    """dsock_ready and dsock_draining follow /readyz, /metrics stays readable during
    a drain, and connections closed by the drain count as reason="shutdown"."""
    import signal
    dep = metrics_dep(make_deployment, deployment_kind, worker_opts={"drain-seconds": 30})
    _, worker = scrapers(dep)
    h.wait_until(lambda: worker.value("dsock_ready") == 1, 10, what="dsock_ready 1")
    assert worker.value("dsock_draining") == 0
    proc = dep.worker_procs[0]
    clients = [dep.connect(h.new_id()) for _ in range(3)]
    try:
        proc.signal(signal.SIGTERM)
        h.wait_until(lambda: worker.value("dsock_draining") == 1, 5, what="dsock_draining 1")
        assert worker.value("dsock_ready") == 0
        # 3 clients over 30 s: the first is closed within about 10 s
        worker.wait_for("dsock_connections_closed_total", 1, timeout=20, reason="shutdown")
        assert sum(1 for c in clients if not c.is_open()) >= 1
    finally:
        for c in clients:
            c.close()
    # with its last client gone the drain ends by itself: exit 0
    from test_drain import wait_exit
    assert wait_exit(proc, 15) == 0, proc.log()
