#!/usr/bin/python3
"""What one Redis carries for dsock (issue 11, docs/scaling.md): Redis's own cost per
operation, read from Redis itself, so that the load of the machine blurs it little.

    /usr/bin/python3 bench/redis_capacity.py --dsock build/dsock [-n 10000]

It starts its own redis-server (no persistence), one `dsock worker` and one `dsock
api` on free loopback ports, drives them with real clients (python3-websockets
connections, keep-alive HTTP/1.1 to the API) and measures one phase per operation.
Around each phase it reads `INFO commandstats` (after `CONFIG RESETSTAT`), `INFO
cpu` and `INFO memory`, and waits until Redis went quiet (no command for 0.5 s),
so every figure covers the whole operation, its asynchronous steps included (an
unregistration after a client closed). Per operation it prints:

- calls: Redis commands per operation, those run inside scripts included (the
  structural cost: no contention changes it), and EVALSHA calls per operation;
- script us: Redis's time inside EVALSHA per operation (commandstats `usec`, wall
  time around the script, so it includes being preempted on a busy machine);
- cpu us: the growth of used_cpu_user + used_cpu_sys per operation, minus the idle
  rate measured first (serverCron, the worker's canary and heartbeat): Redis's whole
  cost, reading the request, the script, the reply and the pub/sub output;
- bytes: the growth of used_memory per connection, claim or channel membership.

The worker runs with --worker-ttl 300 and --ping-interval 3600 so that heartbeats
and pings do not mix into the phases. Figures go to standard output as a table,
and with --json also as one JSON object.
"""
import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time

import jwt
import redis
import websockets


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, name, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited early (%d)" % (name, proc.returncode))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s did not listen on %d" % (name, port))


class Deployment:
    def __init__(self, dsock, redis_server):
        self.dir = tempfile.mkdtemp(prefix="redis-capacity-")
        self.procs = []
        cfg = os.path.join(self.dir, "config.toml")
        open(cfg, "w").close()
        self.token = "".join(random.choice(string.ascii_letters) for _ in range(32))
        self.secret = "".join(random.choice(string.ascii_letters) for _ in range(32))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DSOCK_") and k != "PORT"}
        self.args = (dsock, redis_server, cfg, env)

    def up(self):
        dsock, redis_server, cfg, env = self.args
        rport, wport, aport = free_port(), free_port(), free_port()
        self.redis_port = rport
        self.worker = "127.0.0.1:%d" % wport
        self.api = ("127.0.0.1", aport)
        self.start("redis", [redis_server, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", self.dir], env, rport)
        rhost = "127.0.0.1:%d" % rport
        self.start("worker", [dsock, "worker", "--config", cfg, "--address", self.worker,
                              "--redis-host", rhost, "--jwt-secret", self.secret,
                              "--max-connections", "60000", "--worker-ttl", "300",
                              "--ping-interval", "3600", "--ping-timeout", "7200"], env, wport)
        self.start("api", [dsock, "api", "--config", cfg, "--address", "127.0.0.1:%d" % aport,
                           "--redis-host", rhost, "--token", self.token], env, aport)
        self.r = redis.Redis(port=rport)

    def start(self, name, argv, env, port):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)
        self.procs.append((name, p))
        wait_port(port, p, name)

    def stop(self):
        clean = True
        for name, p in reversed(self.procs):
            p.send_signal(signal.SIGTERM)
            try:
                clean &= p.wait(30) == 0
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                clean = False
        if clean:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print("logs kept in %s" % self.dir, file=sys.stderr)
        return clean


# ---------------------------------------------------------------- Redis figures

def snapshot(r):
    stats = r.info("commandstats")
    cpu = r.info("cpu")
    mem = r.info("memory")["used_memory"]
    calls = sum(v["calls"] for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config"))
    ev = stats.get("cmdstat_evalsha", {"calls": 0, "usec": 0})
    return {"t": time.monotonic(), "cpu": cpu["used_cpu_user"] + cpu["used_cpu_sys"], "mem": mem,
            "calls": calls, "ev_calls": ev["calls"], "ev_usec": ev["usec"], "stats": stats}


def quiet(r, settle=0.5, timeout=60):
    """Waits until Redis ran no command other than INFO for `settle` seconds."""
    last, since, end = None, time.monotonic(), time.monotonic() + timeout
    while time.monotonic() < end:
        st = r.info("commandstats")
        n = sum(v["calls"] for k, v in st.items() if k not in ("cmdstat_info", "cmdstat_config"))
        # the worker's canary PUBLISHes once a second: not activity
        n -= st.get("cmdstat_publish", {"calls": 0})["calls"]
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= settle:
            return
        time.sleep(0.1)


class Phase:
    def __init__(self, r, idle_cpu_per_s):
        self.r, self.idle = r, idle_cpu_per_s

    def __enter__(self):
        quiet(self.r)
        self.r.config_resetstat()
        self.a = snapshot(self.r)
        return self

    def __exit__(self, *exc):
        if exc[0]:
            return False
        quiet(self.r)
        self.b = snapshot(self.r)
        return False

    def per(self, ops):
        a, b = self.a, self.b
        cpu = (b["cpu"] - a["cpu"]) - self.idle * (b["t"] - a["t"])
        return {"ops": ops, "calls": (b["calls"] - a["calls"]) / ops,
                "evalsha": (b["ev_calls"] - a["ev_calls"]) / ops,
                "script_us": (b["ev_usec"] - a["ev_usec"]) / ops,
                "cpu_us": max(cpu, 0) * 1e6 / ops, "bytes": (b["mem"] - a["mem"]) / ops,
                "commands": {k[8:]: v["calls"] for k, v in b["stats"].items()
                             if k not in ("cmdstat_info", "cmdstat_config")}}


# ---------------------------------------------------------------- clients

class Api:
    """C keep-alive HTTP/1.1 connections to the API, one request in flight each."""

    def __init__(self, dep, conns=8):
        self.dep, self.n, self.pool = dep, conns, None

    async def open(self):
        self.pool = asyncio.Queue()
        for _ in range(self.n):
            self.pool.put_nowait(await asyncio.open_connection(*self.dep.api))

    async def call(self, path, body=b""):
        rd, wr = await self.pool.get()
        try:
            wr.write(("POST %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                      "Content-Length: %d\r\n\r\n" % (path, self.dep.token, len(body))).encode() + body)
            head = await rd.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            data = await rd.readexactly(length)
        finally:
            self.pool.put_nowait((rd, wr))
        if status != 200:
            raise RuntimeError("%s: %d %s" % (path, status, data[:200]))
        return json.loads(data)

    async def many(self, paths, body=b""):
        it = iter(paths)
        out = []

        async def runner():
            for p in it:
                out.append(await self.call(p, body))
        await asyncio.gather(*(runner() for _ in range(self.n)))
        return out

    async def close(self):
        while not self.pool.empty():
            _, wr = self.pool.get_nowait()
            wr.close()


async def drain(ws, counter):
    try:
        async for _ in ws:
            counter[0] += 1
    except websockets.ConnectionClosed:
        pass


async def connect_all(dep, queries, counter, window=200):
    """Opens one WebSocket per query string, `window` handshakes at a time; each gets
    a reader that counts what it receives."""
    sem = asyncio.Semaphore(window)
    conns = [None] * len(queries)

    async def one(i, q):
        async with sem:
            ws = await websockets.connect("ws://%s/connect?%s" % (dep.worker, q), max_queue=None,
                                          ping_interval=None, compression=None, open_timeout=60)
            conns[i] = (ws, asyncio.ensure_future(drain(ws, counter)))
    await asyncio.gather(*(one(i, q) for i, q in enumerate(queries)))
    return conns


async def close_all(conns, window=500):
    sem = asyncio.Semaphore(window)

    async def one(c):
        async with sem:
            await c[0].close()
            await c[1]
    await asyncio.gather(*(one(c) for c in conns))


def token(dep, user, channels=()):
    claims = {"sub": user, "exp": int(time.time()) + 3600}
    if channels:
        claims["channels"] = list(channels)
    return jwt.encode(claims, dep.secret, algorithm="HS256")


async def wait_count(counter, want, timeout=60):
    end = time.monotonic() + timeout
    while counter[0] < want and time.monotonic() < end:
        await asyncio.sleep(0.05)
    return counter[0] >= want


# ---------------------------------------------------------------- the phases

async def measure(dep, n, sends, fan, ch_members, joins):
    r = dep.r
    res = {}
    api = Api(dep)
    await api.open()
    got = [0]
    # idle rate: serverCron, canaries
    quiet(r)
    a = snapshot(r)
    await asyncio.sleep(3)
    b = snapshot(r)
    idle = (b["cpu"] - a["cpu"]) / (b["t"] - a["t"])
    res["idle_cpu_us_per_s"] = idle * 1e6

    pre = "cap%04x-" % random.randrange(65536)
    # 1. JWT connect: conn_register
    with Phase(r, idle) as ph:
        conns = await connect_all(dep, ["jwt=" + token(dep, "%su%d" % (pre, i)) for i in range(n)], got)
    res["connect (JWT)"] = ph.per(n)
    # 2. send to a user with 1 connection
    ops = min(sends, n)
    with Phase(r, idle) as ph:
        out = await api.many(["/send?user=%su%d&type=binary" % (pre, i % n) for i in range(ops)], b"x" * 64)
        ok = await wait_count(got, ops)
    assert ok and all(o["connections"] == 1 for o in out), "send to 1 connection"
    res["send, user with 1 connection"] = ph.per(ops)
    # 3. disconnect (the client closes: conn_unregister)
    with Phase(r, idle) as ph:
        await close_all(conns)
    res["disconnect (client closes)"] = ph.per(n)
    # 4. claims
    with Phase(r, idle) as ph:
        claims = await api.many(["/claim?user=%sv%d&duration=3600" % (pre, i % (n // fan))
                                 for i in range(n)])
    res["claim (POST /claim)"] = ph.per(n)
    # 5. connect with a claim: claim_take + conn_register
    got[0] = 0
    with Phase(r, idle) as ph:
        conns = await connect_all(dep, ["claim=" + c["claim"]["id"] for c in claims], got)
    res["connect with the claim"] = ph.per(n)
    # 6. send to a user with `fan` connections
    ops = min(sends, n // fan) * 2
    got[0] = 0
    with Phase(r, idle) as ph:
        out = await api.many(["/send?user=%sv%d&type=binary" % (pre, i % (n // fan)) for i in range(ops)],
                             b"x" * 64)
        ok = await wait_count(got, ops * fan)
    assert ok and all(o["connections"] == fan for o in out), "send to %d connections" % fan
    res["send, user with %d connections" % fan] = ph.per(ops)
    await close_all(conns)
    # 7. channel memberships: n connections in `joins` channels each, against none (phase 1)
    got[0] = 0
    chans = ["%sch%d" % (pre, j) for j in range(joins)]
    with Phase(r, idle) as ph:
        conns = await connect_all(dep, ["jwt=" + token(dep, "%sw%d" % (pre, i), chans) for i in range(n)], got)
    mem = ph.per(n)
    res["connect (JWT) in %d channels" % joins] = mem
    res["channel membership"] = {"ops": n * joins, "bytes": (mem["bytes"] - res["connect (JWT)"]["bytes"]) / joins,
                                 "cpu_us": (mem["cpu_us"] - res["connect (JWT)"]["cpu_us"]) / joins,
                                 "calls": (mem["calls"] - res["connect (JWT)"]["calls"]) / joins}
    # 8. send to a channel: its first `ch_members` members are in chans[0] only... all n are;
    # the script is O(workers): measured on a smaller channel so the client keeps up.
    await close_all(conns)
    got[0] = 0
    small = "%scs" % pre
    conns = await connect_all(dep, ["jwt=" + token(dep, "%sx%d" % (pre, i), [small])
                                    for i in range(ch_members)], got)
    ops = sends // 4
    with Phase(r, idle) as ph:
        out = await api.many(["/send?channel=%s&type=binary" % small] * ops, b"x" * 64)
        ok = await wait_count(got, ops * ch_members)
    assert ok and all(o["connections"] == ch_members for o in out), "channel send"
    res["send, channel (%d members, 1 worker)" % ch_members] = ph.per(ops)
    await close_all(conns)
    await api.close()
    # 9. a 64-byte PUBLISH and SPUBLISH sent as commands, one subscriber
    # reading: what a publish costs when it leaves the scripts (docs/scaling.md).
    for cmd, sub in (("PUBLISH", "SUBSCRIBE"), ("SPUBLISH", "SSUBSCRIBE")):
        for batch in (1, 100):
            res["%s 64 B, %s" % (cmd, "one at a time" if batch == 1 else "pipelined by 100")] = \
                publish_cost(dep, r, idle, cmd, sub, sends, batch)
    return res


def publish_cost(dep, r, idle, cmd, sub, ops, batch):
    import threading
    chan = "worker:cap-%s" % cmd.lower()
    s = socket.create_connection(("127.0.0.1", dep.redis_port))
    s.sendall(("%s %s\r\n" % (sub, chan)).encode())
    stop = []

    def reader():
        s.settimeout(0.2)
        while not stop:
            try:
                if not s.recv(1 << 16):
                    return
            except socket.timeout:
                pass
    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    with Phase(r, idle) as ph:
        p = r.pipeline(transaction=False)
        for i in range(ops):
            p.execute_command(cmd, chan, b"x" * 64)
            if i % batch == batch - 1:
                p.execute()
        p.execute()
    stop.append(1)
    t.join()
    s.close()
    return ph.per(ops)


# The phases whose used_memory growth is a figure (elsewhere it is buffers in flight).
MEMORY = ("connect (JWT)", "claim (POST /claim)", "channel membership")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsock", required=True)
    ap.add_argument("--redis-server", default="/usr/bin/redis-server")
    ap.add_argument("-n", type=int, default=10000, help="connections and claims per phase (10000)")
    ap.add_argument("--sends", type=int, default=10000, help="sends per send phase (10000)")
    ap.add_argument("--fan", type=int, default=10, help="connections of a user in the fan-out phase (10)")
    ap.add_argument("--channel-members", type=int, default=100)
    ap.add_argument("--joins", type=int, default=10, help="channels per connection, memory phase (10)")
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    dep = Deployment(os.path.abspath(a.dsock), a.redis_server)
    try:
        dep.up()
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        ver = dep.r.info("server")["redis_version"]
        print("redis_capacity: redis %s, n=%d, %d CPUs, 1-minute load %s at start" % (ver, a.n, os.cpu_count(), load))
        res = asyncio.run(measure(dep, a.n, a.sends, a.fan, a.channel_members, a.joins))
    finally:
        clean = dep.stop()
    print("idle Redis: %.0f us of CPU per second" % res.pop("idle_cpu_us_per_s"))
    print("%-40s %8s %8s %9s %9s %8s %10s" % ("operation", "ops", "calls", "evalsha", "script us",
                                              "cpu us", "bytes"))
    for k, v in res.items():
        print("%-40s %8d %8.2f %9s %9s %8.1f %10s" % (
            k, v["ops"], v["calls"], "%.2f" % v["evalsha"] if "evalsha" in v else "-",
            "%.1f" % v["script_us"] if "script_us" in v else "-", v["cpu_us"],
            "%.0f" % v["bytes"] if k in MEMORY else "-"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    sys.exit(0 if clean else 1)


if __name__ == "__main__":
    main()
