#!/usr/bin/python3
"""Redis CPU of a /send, as instructions executed by redis-server (callgrind:
repeatable on a loaded machine, unlike wall time), per send, for the deliver
script alone and for deliver_batch in batches of B (docs/benchmark.md, "Sends per
core over Redis").

Starts its own redis-server under `valgrind --tool=callgrind`, registers U users
with 2 connections each on one worker through the conn_register script (the
layout of docs/redis.md; a subscriber on the worker's channel so the PUBLISHes
reach someone), runs N sends once to warm up, then N more between a zeroing and a
dump of callgrind's counters. The scripts are the broker's own, printed by
`build/bench/script-source` (`make -C bench script-source`); give another build's
helper to compare two revisions.

Usage: bench/script_cost.py [--source BIN] [--batch B] [--sends N] [--users U]
  --batch 1: the deliver script, one call per send (what an API sends alone);
  --batch B > 1: deliver_batch with B sends per call.
Needs valgrind, redis-server and python3-redis."""
import argparse, glob, shutil, subprocess, tempfile

import redis

from benchlib import free_port, start_redis

ap = argparse.ArgumentParser()
ap.add_argument("--source", default="build/bench/script-source")
ap.add_argument("--batch", type=int, default=1)
ap.add_argument("--sends", type=int, default=2000)
ap.add_argument("--users", type=int, default=4000)
ap.add_argument("--alive", default="2", help="the worker-alive value ('1': an older worker)")
a = ap.parse_args()


def source(name):
    return subprocess.check_output([a.source, name]).decode()


tmp = tempfile.mkdtemp(prefix="script-cost-")
port = free_port()
rs, r = start_redis(port, tmp, prefix=("valgrind", "--tool=callgrind",
                                        f"--callgrind-out-file={tmp}/cg.%p"))
try:
    register = r.script_load(source("conn_register"))
    pipe = r.pipeline(transaction=False)
    for i in range(2 * a.users):
        pipe.evalsha(register, 0, f"conn-{i:08d}-0000-4000-8000-000000000000",
                     f"benchuser{i % a.users}", "", "w1", "1", "3600", "", "")
    pipe.execute()
    r.set("worker-alive:w1", a.alive, ex=3600)
    sub = redis.Redis(port=port).pubsub()
    sub.subscribe("worker:w1")
    # a 64-byte BINARY WorkerMessage, as the API encodes it
    payload = b"\x08\x01\x1a\x0cbenchuser123\x2a\x40" + b"x" * 64
    if a.batch == 1:
        deliver = r.script_load(source("deliver"))

        def sends():
            for i in range(a.sends):
                r.evalsha(deliver, 0, "", f"benchuser{i % a.users}", "", "", payload, "0")
    else:
        batch = r.script_load(source("deliver_batch"))

        def sends():
            for j in range(a.sends // a.batch):
                args = [str(a.batch)]
                for i in range(j * a.batch, (j + 1) * a.batch):
                    args += ["", f"benchuser{i % a.users}", "", "", payload]
                r.evalsha(batch, 0, *args)

    sends()
    c0 = r.info("commandstats")
    subprocess.run(["callgrind_control", "-z", str(rs.pid)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    sends()
    subprocess.run(["callgrind_control", "-d", str(rs.pid)], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=True)
    c1 = r.info("commandstats")
    dumps = [f for f in glob.glob(f"{tmp}/cg.*") if f.endswith(".1")]
    total = None
    with open(dumps[0]) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    n = a.sends // a.batch * a.batch
    calls = {k[8:]: c1[k]["calls"] - c0.get(k, {"calls": 0})["calls"] for k in c1}
    calls.pop("info", None)
    print(f"{'deliver' if a.batch == 1 else f'deliver_batch x{a.batch}'}: "
          f"{total / n:,.0f} instructions per send in redis-server; per send: "
          + ", ".join(f"{k} {v / n:.2f}" for k, v in sorted(calls.items()) if v))
finally:
    rs.terminate()
    rs.wait()
    shutil.rmtree(tmp, ignore_errors=True)
