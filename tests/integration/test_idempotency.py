"""Idempotency-Key on /send, /disconnect and /channel/subscribe|unsubscribe, and the
outcome-unknown answer (docs/api.md, "Idempotency-Key"): a retry with the same key
neither does the work again nor fails; a key reused for another request is refused;
the key is remembered for idempotency_ttl; with Redis paused, a request that timed
out answers ERROR_OUTCOME_UNKNOWN and its retry, once Redis is back, gets the first
answer while the client got the message once."""
import threading
import time
import urllib.parse

import pytest

import dsock_helpers as h

REPLAYED = "idempotent-replayed"


def idem_header(key):
    # UTF-8 bytes: http.client would encode a str as Latin-1
    return {"Idempotency-Key": key.encode()} if key is not None else {}


def send(api, body, key=None, **params):
    params.setdefault("type", "text")
    headers = idem_header(key)
    return api.request("POST", "/send", params, body=body, headers=headers)


def channel_call(api, name, join=True, key=None, **params):
    path = ("/channel/subscribe/" if join else "/channel/unsubscribe/") + urllib.parse.quote(
        name, safe="")
    return api.request("POST", path, params, headers=idem_header(key))


def drain(ws, quiet=0.3):
    got = []
    while True:
        try:
            got.append(ws.recv_data(quiet))
        except TimeoutError:
            return got


def test_send_retry_is_answered_from_the_key(cluster):
    api = cluster.api()
    user, key = h.new_id(), h.new_id("k")
    with cluster.connect(user) as ws:
        first = send(api, b"once", key, user=user)
        j = first.expect(200)
        assert j["connections"] == 1 and REPLAYED not in first.headers
        for _ in range(3):
            again = send(api, b"once", key, user=user)
            assert again.expect(200) == j
            assert again.headers.get(REPLAYED) == "true"
        # through the other API process too (redis: 2 APIs on one Redis)
        again = send(cluster.api(len(cluster.apis) - 1), b"once", key, user=user)
        assert again.expect(200) == j and again.headers.get(REPLAYED) == "true"
        assert drain(ws) == [b"once"]
        # another key is another request
        send(api, b"once", h.new_id("k"), user=user).expect(200)
        assert drain(ws) == [b"once"]


def test_big_send_retry_is_answered_from_the_key(cluster):
    """A big send with a key stays one script call in Redis (docs/redis.md, "Big
    sends"): recorded with its publication, replayed, delivered once."""
    api = cluster.api()
    user, key = h.new_id(), h.new_id("k")
    body = bytes(range(256)) * 1024  # 256 KiB
    with cluster.connect(user) as ws:
        j = send(api, body, key, user=user, type="binary").expect(200)
        assert j["connections"] == 1
        again = send(api, body, key, user=user, type="binary")
        assert again.expect(200) == j and again.headers.get(REPLAYED) == "true"
        assert drain(ws, 1.0) == [body]


def test_key_reused_for_another_request_is_refused(cluster):
    api = cluster.api()
    user, key = h.new_id(), h.new_id("k")
    with cluster.connect(user) as ws:
        send(api, b"a", key, user=user).expect(200)
        for other in (lambda: send(api, b"b", key, user=user),           # body
                      lambda: send(api, b"a", key, user=h.new_id()),     # target
                      lambda: send(api, b"a", key, user=user, type="binary"),
                      lambda: api.request("POST", "/disconnect", {"user": user},
                                          headers={"Idempotency-Key": key})):
            other().expect(422, "IDEMPOTENCY_KEY_REUSED")
        assert drain(ws) == [b"a"]
        assert ws.is_open()


def test_disconnect_and_channel_calls_are_not_done_twice(cluster):
    api = cluster.api()
    user, chan = h.new_id(), h.new_id("ch")
    with cluster.connect(user) as ws:
        k_sub, k_unsub = h.new_id("k"), h.new_id("k")
        j = channel_call(api, chan, True, k_sub, user=user).expect(200)
        assert j["connections"] == 1
        channel_call(api, chan, False, k_unsub, user=user).expect(200)
        # the retried subscribe answers as the first time and does not join again
        res = channel_call(api, chan, True, k_sub, user=user)
        assert res.expect(200) == j and res.headers.get(REPLAYED) == "true"
        conns = api.info(user=user).expect(200)["connections"]
        assert conns[0]["channels"] == [], conns
        send(api, b"to-chan", channel=chan).expect(200)
        ws.expect_no_message(0.3)

        k_disc = h.new_id("k")
        res = api.request("POST", "/disconnect", {"user": user},
                          headers={"Idempotency-Key": k_disc})
        j = res.expect(200)
        assert j["connections"] == 1
        assert ws.expect_close()[0] == 1000
    # a new connection of the user is not closed by the retry
    with cluster.connect(user) as ws2:
        res = api.request("POST", "/disconnect", {"user": user},
                          headers={"Idempotency-Key": k_disc})
        assert res.expect(200) == j and res.headers.get(REPLAYED) == "true"
        assert ws2.is_open(1.0)
        send(api, b"still", user=user).expect(200)
        assert ws2.recv_data() == b"still"


@pytest.mark.parametrize("key", [b"k" * 256, b"", b"\xff\xfe", b" ", b"\xc2\x85"])
def test_invalid_key(cluster, key):
    """Too long, empty, not UTF-8 or holding a control character (C1 NEL; the HTTP
    parser already refuses C0 controls and DEL in any header value)."""
    res = h.raw_http(cluster.apis[0],
                     b"POST /send?user=u&type=text&token=" + cluster.token.encode() +
                     b" HTTP/1.1\r\nHost: x\r\nIdempotency-Key: " + key +
                     b"\r\nContent-Length: 1\r\n\r\nx").response()
    res.expect(400, "INVALID_IDEMPOTENCY_KEY")


def test_longest_key_and_any_identifier(cluster):
    api = cluster.api()
    user = h.new_id()
    with cluster.connect(user) as ws:
        for key in ("k" * 255, "ключ 🔑 with spaces/and:colons"):
            send(api, b"x", key, user=user).expect(200)
            res = send(api, b"x", key, user=user)
            res.expect(200)
            assert res.headers.get(REPLAYED) == "true"
        assert drain(ws) == [b"x", b"x"]


def test_concurrent_requests_with_one_key_deliver_once(cluster):
    """Requests racing with one key: one does the work; the others get its answer
    (Redis runs them one after the other) or, in the memory store, 409 while the
    first is still running. Never a second delivery."""
    user, key = h.new_id(), h.new_id("k")
    with cluster.connect(user) as ws:
        answers = []
        lock = threading.Lock()
        go = threading.Event()

        def fire(i):
            api = cluster.api(i % len(cluster.apis))
            go.wait(5)
            res = send(api, b"race", key, user=user)
            with lock:
                answers.append(res)

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        go.set()
        for t in threads:
            t.join(30)
        fresh = [r for r in answers if r.status == 200 and REPLAYED not in r.headers]
        assert len(fresh) == 1, [(r.status, r.headers.get(REPLAYED)) for r in answers]
        for r in answers:
            if r.status == 409:
                r.expect(409, "IDEMPOTENCY_KEY_IN_PROGRESS")
            else:
                assert r.expect(200) == fresh[0].json
        assert drain(ws) == [b"race"]


def test_key_is_forgotten_after_its_ttl(make_deployment):
    dep = make_deployment(api_opts={"idempotency-ttl": 3})
    api = dep.api()
    user, key = h.new_id(), h.new_id("k")
    with dep.connect(user) as ws:
        t0 = time.monotonic()
        send(api, b"x", key, user=user).expect(200)
        res = send(api, b"x", key, user=user)
        if time.monotonic() - t0 < 2.5:  # (a machine stalled for seconds proves nothing)
            assert res.headers.get(REPLAYED) == "true"
        time.sleep(max(0.0, t0 + 3.6 - time.monotonic()))
        res = send(api, b"x", key, user=user)
        res.expect(200)
        assert REPLAYED not in res.headers
        got = drain(ws)
        assert got in ([b"x", b"x"], [b"x", b"x", b"x"]), got


def test_memory_store_holds_at_most_max_keys(deployment_kind, make_deployment):
    if deployment_kind != "standalone":
        pytest.skip("the memory store's bound (Redis keeps every key for its TTL)")
    dep = make_deployment(api_opts={"idempotency-max-keys": 2})
    api = dep.api()
    user = h.new_id()
    with dep.connect(user) as ws:
        keys = [h.new_id("k") for _ in range(3)]
        for k in keys:
            send(api, b"x", k, user=user).expect(200)
        # the newest two are remembered, the oldest was forgotten
        assert send(api, b"x", keys[2], user=user).headers.get(REPLAYED) == "true"
        assert send(api, b"x", keys[1], user=user).headers.get(REPLAYED) == "true"
        assert REPLAYED not in send(api, b"x", keys[0], user=user).headers
        assert drain(ws) == [b"x"] * 4
        metrics = api.request("GET", "/metrics").body.decode()
        assert "dsock_store_idempotency_evicted_total 2" in metrics, metrics[-2000:]


@pytest.mark.redis_only
def test_paused_redis_outcome_unknown_then_retry(make_redis, make_deployment):
    """Issue 11, item 2: with Redis paused, a /send in flight answers 503
    ERROR_OUTCOME_UNKNOWN after redis_timeout_ms, and Redis runs it when it resumes:
    the message arrives once. A retry with the same key while Redis is still paused
    is refused without being sent (ERROR_GETTING_USER: nothing done), and after the
    resume answers the first request's outcome without delivering again."""
    r = make_redis()
    opts = {"redis-timeout-ms": 500}
    dep = make_deployment(redis=r, api_opts=dict(opts, threads=1), worker_opts=opts)
    api = dep.api()
    user, key = h.new_id(), h.new_id("k")
    with dep.connect(user) as ws:
        send(api, b"warm", user=user).expect(200)
        assert ws.recv_data() == b"warm"
        r.pause()
        try:
            send(api, b"once", key, user=user).expect(503, "ERROR_OUTCOME_UNKNOWN")
            retry = send(api, b"once", key, user=user)
            retry.expect(503)
            assert retry.json["errorCode"] in ("ERROR_GETTING_USER", "ERROR_OUTCOME_UNKNOWN")
            # without a key a timeout says the same: unknown, not failed
            send(api, b"nokey", user=user).expect(503)
        finally:
            r.resume()
        # Redis ran what it had received: each message once
        got = drain(ws, 1.5)
        assert got.count(b"once") == 1, got
        # the retry after the resume: the first answer, nothing delivered again
        def replayed():
            res = send(api, b"once", key, user=user)
            return res.status == 200 and res

        res = h.wait_until(replayed, 10, interval=0.1, what="the API back after the resume")
        assert res.headers.get(REPLAYED) == "true", res.headers
        assert res.json["connections"] == 1
        assert drain(ws) == []



@pytest.mark.redis_only
def test_paused_redis_claim_outcome_unknown(make_redis, make_deployment):
    """A /claim in flight when Redis is paused answers 503 ERROR_OUTCOME_UNKNOWN
    after redis_timeout_ms, not ERROR_CHECKING_CLAIM: Redis creates the claim when it
    resumes. Retrying with the same id then answers 409 CLAIM_ID_ALREADY_USED (it
    was created), and the claim works for a connect. A claim that never reached
    Redis (refused while the connection is down) keeps ERROR_CHECKING_CLAIM."""
    r = make_redis()
    opts = {"redis-timeout-ms": 500}
    dep = make_deployment(redis=r, api_opts=dict(opts, threads=1), worker_opts=opts)
    api = dep.api()
    user, cid = h.new_id(), h.new_id("c")
    api.claim(user=h.new_id()).expect(200)  # connected
    r.pause()
    try:
        api.claim(user=user, id=cid, duration=600).expect(503, "ERROR_OUTCOME_UNKNOWN")
        # the timed-out connection was dropped: the next one waits and fails as
        # never sent
        again = api.claim(user=user, id=h.new_id("c"))
        again.expect(503)
        assert again.json["errorCode"] in ("ERROR_CHECKING_CLAIM", "ERROR_OUTCOME_UNKNOWN")
    finally:
        r.resume()
    res = h.wait_until(lambda: (lambda x: x.status != 503 and x)(api.claim(user=user, id=cid)),
                       10, interval=0.1, what="the API back after the resume")
    res.expect(409, "CLAIM_ID_ALREADY_USED")
    assert cid in [c["id"] for c in api.info(user=user).expect(200)["claims"]]
    with h.ws_connect(dep.worker(0), f"claim={cid}") as ws:
        assert ws.is_open()
