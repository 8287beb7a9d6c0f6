#!/usr/bin/python3
"""Redis time of one POST /channel/subscribe/NAME?channel=SRC (and unsubscribe)
for a channel of N members on W workers (docs/benchmark.md, "Channels").

Default: starts its own redis-server and `dsock api`, writes N connection records
of W workers straight into Redis (the layout of docs/redis.md, all in SRC, the
workers alive), then reads INFO commandstats around each call. No worker process
runs: the PUBLISHes find no subscriber, which costs Redis the same. This measures
the API's own script.

--live: starts W real `dsock worker`s too and opens N WebSocket connections (JWTs
naming SRC, spread over the workers), then, for each call, the API's script and
the workers' write-back (chan_apply batches) separately, from SLOWLOG (every
command logged, slowlog-log-slower-than 0), and how long until Redis holds the
result (channel:dst complete or empty, no pending mark).
Usage: bench/subscribe_cost.py [--live] [DSOCK_BIN] [N] [W]"""
import base64, hashlib, hmac, json, os, socket, subprocess, sys, tempfile, time, urllib.request

from benchlib import free_port, start_redis

args = [a for a in sys.argv[1:] if a != "--live"]
live = "--live" in sys.argv[1:]
dsock = args[0] if len(args) > 0 else "build/dsock"
n = int(args[1]) if len(args) > 1 else 10000
nw = int(args[2]) if len(args) > 2 else 2
SECRET = b"bench-secret"


def jwt(user):
    enc = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
    head = enc(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = enc(json.dumps({"sub": user, "exp": int(time.time()) + 3600,
                           "channels": ["src"]}).encode())
    sig = enc(hmac.new(SECRET, head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


def open_members(ports):
    """N WebSocket connections (raw sockets: handshake only), 200 at a time."""
    socks = []
    for start in range(0, n, 200):
        batch = []
        for i in range(start, min(n, start + 200)):
            port = ports[i % len(ports)]
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall((f"GET /connect?jwt={jwt(f'u{i % 1000}')} HTTP/1.1\r\nHost: x\r\n"
                       "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       "Sec-WebSocket-Version: 13\r\n\r\n").encode())
            batch.append(s)
        for s in batch:
            buf = b""
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit("a worker closed a connection: " + repr(buf))
                buf += chunk
            if not buf.startswith(b"HTTP/1.1 101"):
                raise SystemExit("handshake refused: " + buf.decode(errors="replace"))
        socks += batch
    return socks


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)


rport, aport = free_port(), free_port()
tmp = tempfile.mkdtemp()
workers, socks = [], []
rs, r = start_redis(rport, tmp)
api = None
try:
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
    if not live:
        r.eval(populate, 0, n, nw)
    api = subprocess.Popen([dsock, "api", "--token", "t", "--address", f"127.0.0.1:{aport}",
                            "--redis-host", f"127.0.0.1:{rport}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(aport)
    if live:
        wports = [free_port() for _ in range(nw)]
        for p in wports:
            workers.append(subprocess.Popen(
                [dsock, "worker", "--address", f"127.0.0.1:{p}", "--redis-host",
                 f"127.0.0.1:{rport}", "--jwt-secret", SECRET.decode(), "--drain-seconds", "1"],
                stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, f"worker{p}.log"), "w")))
        for p in wports:
            wait_port(p)
        t0 = time.monotonic()
        socks = open_members(wports)
        while r.scard("channel:src") < n:
            time.sleep(0.05)
        print(f"live: {n} members of src on {nw} workers, opened and registered in "
              f"{time.monotonic() - t0:.1f} s")

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

    def counts():
        """Calls per command, without this script's own (polling, INFO, SLOWLOG)."""
        mine = ("cmdstat_scard", "cmdstat_exists", "cmdstat_info", "cmdstat_slowlog",
                "cmdstat_slowlog|reset", "cmdstat_slowlog|get", "cmdstat_config|set")
        return {k: v["calls"] for k, v in r.info("commandstats").items() if k not in mine}

    if live:
        r.config_set("slowlog-max-len", 1000000)
        for path, want in (("/channel/subscribe/dst?channel=src&ignoreClaims=true", n),
                           ("/channel/unsubscribe/dst?channel=src&ignoreClaims=true", 0)):
            r.config_set("slowlog-log-slower-than", 0)
            r.slowlog_reset()
            c0 = counts()
            body, ev, cmds, wall = call(path)
            t0 = time.monotonic()
            while r.scard("channel:dst") != want or r.exists("channel-pending:dst"):
                time.sleep(0.001)
            settled = time.monotonic() - t0 + wall
            c1 = counts()
            cmds = sum(c1.values()) - sum(c0.values())
            r.config_set("slowlog-log-slower-than", 10000)
            log = r.slowlog_get(1000000)
            api_us, batches = 0, []
            for e in log:
                a = e["command"].split(b" ") if isinstance(e["command"], bytes) else e["command"]
                if not a or a[0].upper() != b"EVALSHA" or len(a) < 5:
                    continue
                if a[3] == b"" or a[3] == b"''" or a[3] == b'""':
                    api_us += e["duration"]
                elif a[4] == b"dst":
                    batches.append(e["duration"])
            print(f"N={n} W={nw} {path.split('?')[0]}: {body} wall {wall * 1e3:.1f} ms; "
                  f"API script {api_us} us; workers' chan_apply {len(batches)} call(s), "
                  f"{sum(batches)} us in all, longest {max(batches, default=0)} us; "
                  f"{cmds} commands in all (the workers' included); Redis complete {settled * 1e3:.0f} ms after the call")
    for path in ("/send?channel=src&type=text", "/channel/subscribe/dst?channel=src&ignoreClaims=true",
                 "/channel/unsubscribe/dst?channel=src&ignoreClaims=true"):
        body, ev, cmds, wall = call(path)
        print(f"N={n} W={nw} {path.split('?')[0]}: {body} EVALSHA {ev['calls']} call(s) "
              f"{ev['usec']} us, {cmds} commands (the INFO calls included), wall {wall * 1e3:.1f} ms")
finally:
    for sk in socks:
        sk.close()
    for w in workers:
        w.terminate()
        w.wait()
    if api:
        api.terminate()
        api.wait()
    rs.terminate()
    rs.wait()
