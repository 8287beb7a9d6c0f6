"""The Redis layout of the seed (inspected with redis-py), ids containing '-', and
worker death (a SIGKILLed worker stops being reported and routed to)."""
import time

import pytest

import dsock_helpers as h


def members(r, key):
    t = r.type(key).decode()
    if t == "set":
        return {m.decode() for m in r.smembers(key)}
    if t == "zset":
        return {m.decode() for m in r.zrange(key, 0, -1)}
    if t == "none":
        return set()
    if t == "hash":
        return {k.decode() for k in r.hkeys(key)}
    if t == "list":
        return {m.decode() for m in r.lrange(key, 0, -1)}
    raise AssertionError(f"unexpected type {t} for {key}")


def hash_fields(r, key):
    assert r.type(key) == b"hash", f"{key} is {r.type(key)!r}, expected a hash"
    return {k.decode(): v.decode() for k, v in r.hgetall(key).items()}


@pytest.mark.redis_only
def test_key_layout(cluster):
    r = cluster.redis.client()
    user, session = h.new_id(), "sess1"
    c = cluster.api().claim(user=user, session=session, duration=30).expect(200)["claim"]
    cid = c["id"]
    key = f"claim:{cid}"
    assert r.exists(key), f"{key} missing"
    ttl = r.ttl(key)
    assert 0 < ttl <= 30, f"TTL of {key} is {ttl}"
    if r.type(key) == b"hash":
        f = hash_fields(r, key)
        assert f.get("user") == user and f.get("session") == session, f
        assert int(f["expiration"]) == c["expiration"], f
    assert cid in members(r, f"claim-user:{user}")
    assert cid in members(r, f"claim-user-session:{user}-{session}")

    with h.ws_connect(cluster.worker(0), f"claim={cid}") as ws:
        info = cluster.api().info(user=user).expect(200)["connections"][0]
        conn_key = f"conn:{info['id']}"
        f = hash_fields(r, conn_key)
        assert f["user"] == user and f["session"] == session, f
        assert f["worker"] == info["worker"], (f, info)
        assert int(f["lastPing"]) == info["lastPing"], (f, info)
        assert info["id"] in members(r, f"user:{user}")
        assert info["id"] in members(r, f"user-session:{user}-{session}")
        # the claim was consumed and removed from its indexes
        assert not r.exists(key)
        h.wait_until(lambda: cid not in members(r, f"claim-user:{user}") and
                     cid not in members(r, f"claim-user-session:{user}-{session}"), 3,
                     what="used claim to leave claim-user sets")
        # the worker listens on its channel
        channels = {ch.decode() for ch in r.pubsub_channels("worker:*")}
        assert f"worker:{info['worker']}" in channels, channels
        ws.send_close(1000)
        ws.expect_close(reply=False)
    h.wait_until(lambda: not r.exists(conn_key) and
                 info["id"] not in members(r, f"user:{user}") and
                 info["id"] not in members(r, f"user-session:{user}-{session}"), 5,
                 what="closed connection's keys to be removed")


@pytest.mark.redis_only
def test_connection_without_session_layout(cluster):
    r = cluster.redis.client()
    user = h.new_id()
    with cluster.connect(user):
        info = cluster.api().info(user=user).expect(200)["connections"][0]
        f = hash_fields(r, f"conn:{info['id']}")
        assert f["user"] == user and f.get("session", "") == "", f
        assert info["id"] in members(r, f"user:{user}")


@pytest.mark.redis_only
def test_last_ping_written_to_redis(cluster):
    r = cluster.redis.client()
    user = h.new_id()
    with cluster.connect(user) as ws:
        cid = cluster.api().info(user=user).expect(200)["connections"][0]["id"]
        before = int(hash_fields(r, f"conn:{cid}")["lastPing"])
        time.sleep(max(0.0, before + 1.05 - time.time()))
        ws.ping(b"")
        h.wait_until(lambda: int(hash_fields(r, f"conn:{cid}")["lastPing"]) > before, 3,
                     what="lastPing in conn hash to move")


@pytest.mark.redis_only
def test_expired_claim_still_in_redis(cluster):
    """A claim whose key outlived its expiration is refused with EXPIRED_CLAIM."""
    r = cluster.redis.client()
    cid = cluster.claim(h.new_id(), duration=1)
    assert r.persist(f"claim:{cid}"), "claim key had no TTL"
    time.sleep(2.1)  # past the expiration (now + 1)
    res, ws = h.ws_handshake(cluster.worker(0), f"claim={cid}")
    assert ws is None, "expired claim was accepted"
    res.response().expect(401, "EXPIRED_CLAIM")


@pytest.mark.redis_only
def test_claim_with_unreadable_expiration(cluster):
    r = cluster.redis.client()
    cid = cluster.claim(h.new_id())
    if r.type(f"claim:{cid}") != b"hash" or not r.hexists(f"claim:{cid}", "expiration"):
        pytest.skip("claim:$id is not a hash with an expiration field")
    r.hset(f"claim:{cid}", "expiration", "not-a-number")
    res, ws = h.ws_handshake(cluster.worker(0), f"claim={cid}")
    assert ws is None
    res.response().expect(401, "INVALID_EXPIRATION")


def test_dash_ids_do_not_collide(cluster):
    """user "a-b" session "c" and user "a" session "b-c" share the key suffix
    "a-b-c"; lookups must filter by the stored user and session."""
    p = h.new_id("p")
    u1, s1 = f"{p}a-b", "c"
    u2, s2 = f"{p}a", "b-c"
    claim1 = cluster.api().claim(user=u1, session=s1).expect(200)["claim"]
    claim2 = cluster.api().claim(user=u2, session=s2).expect(200)["claim"]
    assert cluster.api().info(user=u1, session=s1).expect(200)["claims"] == [claim1]
    assert cluster.api().info(user=u2, session=s2).expect(200)["claims"] == [claim2]
    ws1 = h.ws_connect(cluster.worker(0), f"claim={claim1['id']}")
    ws2 = h.ws_connect(cluster.worker(-1), f"claim={claim2['id']}")
    with ws1, ws2:
        i1 = cluster.api().info(user=u1, session=s1).expect(200)["connections"]
        i2 = cluster.api().info(user=u2, session=s2).expect(200)["connections"]
        assert [(c["user"], c["session"]) for c in i1] == [(u1, s1)], i1
        assert [(c["user"], c["session"]) for c in i2] == [(u2, s2)], i2

        j = cluster.api().send(b"one", user=u1, session=s1, type="text").expect(200)
        assert j["connections"] == 1, j
        assert ws1.recv_data() == b"one"
        j = cluster.api().send(b"two", user=u2, session=s2, type="text").expect(200)
        assert j["connections"] == 1, j
        assert ws2.recv_data() == b"two"
        ws1.expect_no_message(0.2)
        ws2.expect_no_message(0.2)

        # claims: disconnecting one session deletes only its own claims
        cluster.api().claim(user=u1, session=s1).expect(200)
        k2 = cluster.api().claim(user=u2, session=s2).expect(200)["claim"]
        j = cluster.api().disconnect(user=u1, session=s1).expect(200)
        assert j["connections"] == 1, j
        assert ws1.expect_close()[0] == 1000
        assert ws2.is_open()
        assert cluster.api().info(user=u1, session=s1).expect(200)["claims"] == []
        assert cluster.api().info(user=u2, session=s2).expect(200)["claims"] == [k2]


@pytest.mark.redis_only
def test_killed_worker_disappears(cluster, make_deployment):
    ttl = 3
    doomed = make_deployment(apis=0, workers=1, worker_opts={"worker-ttl": ttl})
    user = h.new_id()
    live = cluster.connect(user, "live", worker=0)
    claim = cluster.claim(user, "doomed")
    dead = h.ws_connect(doomed.worker(0), f"claim={claim}")
    with live, dead:
        conns = cluster.api().info(user=user).expect(200)["connections"]
        assert len(conns) == 2, conns
        doomed_worker = [c["worker"] for c in conns if c["session"] == "doomed"][0]
        doomed.worker_procs[0].kill()
        t_kill = time.monotonic()

        def gone():
            c = cluster.api().info(user=user).expect(200)["connections"]
            return [x["session"] for x in c] == ["live"]

        h.wait_until(gone, ttl + 2.5, interval=0.2,
                     what=f"connections of the killed worker to leave /info (worker_ttl {ttl})")
        j = cluster.api(-1).send(b"after-kill", user=user, type="text").expect(200)
        assert j["connections"] == 1 and j["workers"] == 1, j
        assert time.monotonic() - t_kill <= ttl + 3
        assert live.recv_data() == b"after-kill"
        info_all = cluster.api().info(user=user).expect(200)["connections"]
        assert doomed_worker not in [c["worker"] for c in info_all]
