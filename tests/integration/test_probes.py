"""GET /healthz and GET /readyz (docs/api.md, "Probes"; docs/probes-and-drain.md):
no token, nothing revealed beyond ok / not ok and a reason code; the worker's
readiness follows a canary through its own Redis subscription, the API's a PING."""
import time

import pytest

import dsock_helpers as h


def get(addr, path, method="GET", extra=""):
    return h.raw_http(addr, f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode(),
                      timeout=5)


def ready(addr):
    return get(addr, "/readyz").response().status == 200


def all_addrs(dep):
    return list(dict.fromkeys(dep.apis + dep.workers))


def test_probes_answer_ok_without_token(cluster):
    for addr in all_addrs(cluster):
        h.wait_until(lambda: ready(addr), 10, what=f"{addr} ready")
        for path in ("/healthz", "/readyz"):
            res = get(addr, path)
            assert res.status == 200
            assert res.body == b'{"status":"ok"}'  # nothing else: no version, no counts
            assert res.headers["content-type"] == "application/json"
            assert res.headers["cache-control"] == "no-store"
            status, raw = h.head_request(addr, path)
            assert status == 200 and raw.endswith(b"\r\n\r\n")
            # A wrong token changes nothing: probes do not look at it.
            assert get(addr, path + "?token=wrong").status == 200
            res = get(addr, path, "POST", "Content-Length: 0\r\n")
            res.response().expect(405, "METHOD_NOT_ALLOWED")
            assert res.headers["allow"] == "GET, HEAD"


def bus_message(kind, body=b"", user=b""):
    """A WorkerMessage by hand (protos/dsock.proto): kind = field 1, user = 3, body = 5."""
    out = bytes([0x08, kind]) if kind else b""
    if user:
        out += bytes([0x1a, len(user)]) + user
    if body:
        out += bytes([0x2a, len(body)]) + body
    return out


def worker_channel(dep, r):
    ids = [k.decode().split(":", 1)[1] for k in r.keys("worker-alive:*")]
    for wid in ids:
        if wid in dep.worker_procs[0].log():
            return f"worker:{wid}"
    raise AssertionError("worker id not found")


@pytest.mark.redis_only
def test_canary_never_reaches_a_client_and_forged_ones_are_dropped(make_deployment, make_redis):
    redis = make_redis()
    dep = make_deployment(redis=redis)
    h.wait_until(lambda: ready(dep.worker()), 10, what="worker ready")
    user = h.new_id()
    ws = dep.connect(user)
    try:
        # Canaries go round every second: none reaches the client.
        ws.expect_no_message(timeout=2.5)
        r = redis.client()
        ch = worker_channel(dep, r)
        # Forged: another token, a target, garbage sequence. Dropped, not delivered.
        for m in (bus_message(3, b"x" * 32 + b":1"), bus_message(3, b"abc", user=user.encode()),
                  bus_message(3, b"")):
            assert r.publish(ch, m) == 1
        ws.expect_no_message(timeout=0.5)
        assert ready(dep.worker())
        dep.api().send(b"after", user=user, type="text").expect(200)
        assert ws.recv_data() == b"after"
    finally:
        ws.close()


def wait_not_ready(addr, reasons, timeout):
    seen = []

    def check():
        res = get(addr, "/readyz").response()
        seen.append(res.json)
        return res.status == 503 and res.json["status"] == "not_ready" and \
            res.json["reason"] in reasons
    h.wait_until(check, timeout, interval=0.2, what=f"not ready with {reasons}: {seen[-3:]}")


@pytest.mark.redis_only
@pytest.mark.parametrize("how", ["sigstop", "client_pause"])
def test_not_ready_while_redis_stalls_then_ready_again(make_deployment, make_redis, how):
    """Redis stops answering (SIGSTOP, or CLIENT PAUSE: connections stay up, nothing
    comes back): the worker's canary and the API's PING stop returning, both turn
    not-ready within seconds while staying healthy, and ready again by themselves."""
    redis = make_redis()
    dep = make_deployment(redis=redis, api_opts={"redis-timeout-ms": 5000},
                          worker_opts={"redis-timeout-ms": 5000})
    api, worker = dep.apis[0], dep.worker()
    h.wait_until(lambda: ready(api) and ready(worker), 10, what="ready")
    user = h.new_id()
    ws = dep.connect(user)
    try:
        if how == "sigstop":
            redis.pause()
        else:
            redis.client().execute_command("CLIENT", "PAUSE", "4000", "ALL")
        start = time.monotonic()
        wait_not_ready(worker, ("subscription_lost", "store_unavailable"), 6)
        wait_not_ready(api, ("store_unavailable",), 6)
        assert time.monotonic() - start < 6
        assert get(worker, "/healthz").status == 200
        assert get(api, "/healthz").status == 200
        if how == "sigstop":
            time.sleep(1)
            redis.resume()
        h.wait_until(lambda: ready(api) and ready(worker), 15, what="ready again")
        dep.api().send(b"back", user=user, type="text").expect(200)
        assert ws.recv_data() == b"back"
    finally:
        ws.close()


@pytest.mark.redis_only
def test_worker_ready_again_after_its_subscription_is_killed(make_deployment, make_redis):
    """CLIENT KILL TYPE pubsub: the worker notices, resubscribes, and its canary
    proves the path again: ready, and messages flow."""
    redis = make_redis()
    dep = make_deployment(redis=redis)
    worker = dep.worker()
    h.wait_until(lambda: ready(worker), 10, what="ready")
    user = h.new_id()
    ws = dep.connect(user)
    try:
        r = redis.client()
        for _ in range(3):
            assert r.execute_command("CLIENT", "KILL", "TYPE", "pubsub") >= 1
            time.sleep(0.3)
        h.wait_until(lambda: ready(worker), 10, what="ready again")
        # Ready means a canary came back within the last seconds: since the kill.
        time.sleep(1.2)
        assert ready(worker)
        h.wait_until(lambda: dep.api().send(b"x", user=user, type="text").json["connections"] == 1,
                     10, what="delivery")
        assert ws.recv_data() == b"x"
    finally:
        ws.close()


def test_standalone_probes(make_deployment, deployment_kind):
    if deployment_kind != "standalone":
        pytest.skip("standalone only")
    dep = make_deployment(api_opts={"threads": 3})
    h.wait_until(lambda: ready(dep.apis[0]), 5, what="ready")
    assert get(dep.apis[0], "/healthz").body == b'{"status":"ok"}'
