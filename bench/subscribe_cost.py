#!/usr/bin/python3
"""Redis time of one POST /channel/subscribe/NAME?channel=SRC (and unsubscribe)
for a channel of N members on W workers (docs/benchmark.md, "Channels").
Starts its own redis-server and `dsock api`, writes N connection records of W
workers straight into Redis (the layout of docs/redis.md, all in SRC, the workers
alive), then reads INFO commandstats around each call. No worker process runs:
the PUBLISHes find no subscriber, which costs Redis the same.
Usage: bench/subscribe_cost.py [DSOCK_BIN] [N] [W]"""
import json, os, socket, subprocess, sys, tempfile, time, urllib.request

import redis

dsock = sys.argv[1] if len(sys.argv) > 1 else "build/dsock"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
nw = int(sys.argv[3]) if len(sys.argv) > 3 else 2


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


rport, aport = free_port(), free_port()
tmp = tempfile.mkdtemp()
rs = subprocess.Popen(["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no",
                       "--dir", tmp], stdout=subprocess.DEVNULL)
api = None
try:
    r = redis.Redis(port=rport)
    for _ in range(100):
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    populate = """
    local n, nw = tonumber(ARGV[1]), tonumber(ARGV[2])
    for w = 1, nw do redis.call('SET', 'worker-alive:w' .. w, '1', 'EX', 3600) end
    for i = 1, n do
      local id, w = 'c' .. i, 'w' .. (i % nw + 1)
      redis.call('HSET', 'conn:' .. id, 'user', 'u' .. (i % 1000), 'worker', w,
                 'lastPing', '0', 'channels', 'src')
      redis.call('SADD', 'user:u' .. (i % 1000), id)
      redis.call('SADD', 'channel:src', id)
      redis.call('HINCRBY', 'channel-workers:src', w, 1)
      redis.call('SADD', 'worker-conns:' .. w, id)
    end
    return n"""
    r.eval(populate, 0, n, nw)
    api = subprocess.Popen([dsock, "api", "--token", "t", "--address", f"127.0.0.1:{aport}",
                            "--redis-host", f"127.0.0.1:{rport}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", aport), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)

    def call(path):
        req = urllib.request.Request(f"http://127.0.0.1:{aport}{path}", data=b"", method="POST",
                                     headers={"Authorization": "Bearer t"})
        before = r.info("commandstats")
        t0 = time.monotonic()
        with urllib.request.urlopen(req, timeout=30) as res:
            body = json.loads(res.read())
        wall = time.monotonic() - t0
        after = r.info("commandstats")
        ev = {k: after.get("cmdstat_evalsha", {}).get(k, 0) - before.get("cmdstat_evalsha", {}).get(k, 0)
              for k in ("calls", "usec")}
        cmds = sum(v["calls"] for v in after.values()) - sum(v["calls"] for v in before.values())
        return body, ev, cmds, wall

    call("/send?channel=src&type=text")  # warm the script cache
    for path in ("/send?channel=src&type=text", "/channel/subscribe/dst?channel=src&ignoreClaims=true",
                 "/channel/unsubscribe/dst?channel=src&ignoreClaims=true"):
        body, ev, cmds, wall = call(path)
        print(f"N={n} W={nw} {path.split('?')[0]}: {body} EVALSHA {ev['calls']} call(s) "
              f"{ev['usec']} us, {cmds} commands (the INFO calls included), wall {wall * 1e3:.1f} ms")
finally:
    if api:
        api.terminate()
        api.wait()
    rs.terminate()
    rs.wait()
