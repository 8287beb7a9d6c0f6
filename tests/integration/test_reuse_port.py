"""reuse_port (docs/configuration.md): several worker processes listen on one port
with SO_REUSEPORT and the kernel spreads new connections over them; without it a
second process cannot bind a port in use."""
import os
import signal

import pytest

import dsock_helpers as h


def _worker(name, port, redis, log_dir, extra=None, drain=1):
    argv = [h.DSOCK_BIN, "worker", "--address", f"{h.HOST}:{port}", "--redis-host", redis.host,
            "--jwt-secret", "jwt-secret-for-tests", "--drain-seconds", str(drain)] + (extra or [])
    return h.Proc(name, argv, log_dir, env=h._clean_env()).start()


@pytest.mark.redis_only
def test_two_workers_share_one_port(make_deployment, redis_server, log_root, request):
    dep = make_deployment(workers=0)  # the API only
    log_dir = os.path.join(log_root, request.node.name, "workers")
    os.makedirs(log_dir, exist_ok=True)
    port = h.free_port()
    procs = []
    try:
        for i in range(2):
            p = _worker(f"shared{i}", port, redis_server, log_dir, ["--reuse-port", "true"],
                        drain=5 if i else 1)
            procs.append(p)
            h._wait_listening(p, port, dsock=True)
        assert all(p.alive() for p in procs), "both workers bound the port"
        # Each new TCP connection goes to one of the two, by a hash of its addresses:
        # with up to 200 connections, all on one worker has probability 2^-199.
        user = h.new_id()
        api = dep.api()
        conns, workers = [], set()
        try:
            for _ in range(200):
                claim = api.claim(user=user).expect(200)["claim"]["id"]
                conns.append(h.ws_connect((h.HOST, port), f"claim={claim}"))
                if len(conns) % 10 == 0:
                    info = api.info(user=user).expect(200)["connections"]
                    workers = {c["worker"] for c in info}
                    if len(workers) == 2:
                        break
            assert len(workers) == 2, f"{len(conns)} connections, all on workers {workers}"
            # Both processes deliver: one send reaches every connection, on both.
            j = api.send(b"to-both", user=user, type="text").expect(200)
            assert j["connections"] == len(conns) and j["workers"] == 2, j
            for ws in conns:
                assert ws.recv_data() == b"to-both"
            # A draining worker stops listening first: while it drains its clients
            # (5 s here), every new connection goes to the other one, none gets 503.
            for ws in conns:
                ws.close()
            conns = []
            survivor = _worker("shared2", port, redis_server, log_dir,
                               ["--reuse-port", "true"])
            procs.append(survivor)
            h._wait_listening(survivor, port, dsock=True)
            procs[0].stop()  # now shared1 (which drains slowly) and shared2
            for i in range(40):  # at least one on shared1, to be drained
                claim = api.claim(user=user).expect(200)["claim"]["id"]
                conns.append(h.ws_connect((h.HOST, port), f"claim={claim}"))
            info = api.info(user=user).expect(200)["connections"]
            stays = {c["worker"] for c in info}
            assert len(stays) == 2, stays
            mark = procs[1].log_size()
            procs[1].signal(signal.SIGTERM)
            h.wait_until(lambda: "draining clients" in procs[1].log(since=mark), 15,
                         what="shared1 to start draining")
            for _ in range(20):
                claim = api.claim(user=user).expect(200)["claim"]["id"]
                res, ws = h.ws_handshake((h.HOST, port), f"claim={claim}")
                assert res.status == 101, (res.status, res.body)
                conns.append(ws)
            # Its drain ends on its own, cleanly.
            assert procs[1].popen.wait(30) == 0
            procs[1].expect_clean_exit = False  # exited already: stop() checks its log only
        finally:
            for ws in conns:
                ws.close()
    finally:
        problems = []
        for p in procs:
            problems += p.stop()
        assert not problems, problems


@pytest.mark.redis_only
def test_port_in_use_without_reuse_port(make_deployment, redis_server, log_root, request):
    dep = make_deployment()
    port = dep.worker(0)[1]
    log_dir = os.path.join(log_root, request.node.name, "second")
    os.makedirs(log_dir, exist_ok=True)
    # The first worker did not ask for SO_REUSEPORT: even one that does cannot join it.
    for extra in ([], ["--reuse-port", "true"]):
        p = _worker("second", port, redis_server, log_dir, extra)
        p.expect_clean_exit = False
        h.wait_until(lambda: not p.alive(), 15, what="the second worker to exit")
        assert "address already in use" in p.log().lower(), p.log()
        p.stop()
