#!/usr/bin/python3
"""Time from a SIGKILL of the Redis primary until POST /send reaches a client again,
with Redis Sentinel (docs/redis.md, "Sentinel"). Per run: a primary, a replica and
three sentinels on loopback (quorum 2, down-after-milliseconds DOWN_MS,
failover-timeout 3000), one `dsock api` and two `dsock worker` with redis_sentinels,
one client on each worker. The primary is SIGKILLed; /send to the client of worker
0 is retried every 20 ms until it answers 200 reaching one connection with no
unreachable worker (the resync is done then). Prints each run's time and the
median; also how long Sentinel itself took (until a sentinel names the new primary).
Usage: bench/failover_time.py [DSOCK_BIN] [RUNS] [DOWN_MS]"""
import os
import signal
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "integration"))
import dsock_helpers as h  # noqa: E402

dsock = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/dsock")
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
down_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
h.DSOCK_BIN = dsock


def one_run(root, i):
    setup = h.SentinelSetup(os.path.join(root, f"run{i}"), down_after_ms=down_ms).start()
    dep = None
    try:
        dep = h.start_deployment("redis", os.path.join(root, f"run{i}", "dsock"), redis=setup,
                                 apis=1, workers=2)
        api = dep.api(0)
        users = [h.new_id(), h.new_id()]
        clients = [dep.connect(u, worker=w) for w, u in enumerate(users)]
        for u, c in zip(users, clients):
            api.send(b"before", user=u, type="text").expect(200)
            assert c.recv_data(5) == b"before"
        old = setup.master_addr()
        t0 = time.monotonic()
        setup.server_on(old).stop(signal.SIGKILL)
        sentinel_s = None
        while True:
            now = time.monotonic() - t0
            if now > 60:
                raise SystemExit("no recovery within 60 s")
            if sentinel_s is None and setup.master_addr() not in (None, old):
                sentinel_s = now
            r = api.send(b"after", user=users[0], type="text")
            if r.status == 200 and r.json["connections"] == 1 and r.json.get("unreachable", 0) == 0:
                took = time.monotonic() - t0
                break
            time.sleep(0.02)
        while clients[0].recv_data(10) != b"after":  # earlier 200s may have arrived too
            pass
        return took, sentinel_s if sentinel_s is not None else took
    finally:
        if dep:
            dep.stop()
        setup.shutdown()


def main():
    root = tempfile.mkdtemp(prefix="dsock-failover-")
    times, sent = [], []
    for i in range(runs):
        took, s = one_run(root, i)
        times.append(took)
        sent.append(s)
        print(f"run {i + 1}: /send reaches the client again {took:.2f} s after the SIGKILL "
              f"(a sentinel named the new primary at {s:.2f} s)", flush=True)
    print(f"median over {runs} runs: {statistics.median(times):.2f} s "
          f"(min {min(times):.2f}, max {max(times):.2f}); Sentinel alone: median "
          f"{statistics.median(sent):.2f} s; down-after-milliseconds {down_ms}")


if __name__ == "__main__":
    main()
