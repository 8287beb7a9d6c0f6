"""reuse_port (docs/configuration.md): several worker processes listen on one port
with SO_REUSEPORT and the kernel spreads new connections over them; without it a
second process cannot bind a port in use."""
import os

import pytest

import dsock_helpers as h


def _worker(name, port, redis, log_dir, extra=None):
    argv = [h.DSOCK_BIN, "worker", "--address", f"{h.HOST}:{port}", "--redis-host", redis.host,
            "--jwt-secret", "jwt-secret-for-tests", "--drain-seconds", "1"] + (extra or [])
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
            p = _worker(f"shared{i}", port, redis_server, log_dir, ["--reuse-port", "true"])
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
