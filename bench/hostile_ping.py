#!/usr/bin/python3
"""Worker memory under a hostile ping flood (issue 7, item 1).

Starts `dsock standalone` (one loop thread, so one worker), opens one WebSocket
whose receive buffer is small, then floods empty masked ping frames and never reads
a byte. Samples the process's VmRSS while it does, and after the client is gone.
Prints: RSS at start, peak RSS during the flood, RSS 3 s after the client left, the
pings sent and how the flood ended (the server stopped reading: the client's send
blocked; the server closed the socket; or the time cap).

    bench/hostile_ping.py [--dsock build/dsock] [--max-queued-bytes N] [--seconds S]
                          [--connections C]

Needs only the Python standard library (the JWT is signed here with hmac).
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def make_jwt(secret, user):
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": user, "exp": int(time.time()) + 3600}).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect_ws(port, jwt, rcvbuf):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(5)
    s.connect((HOST, port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /connect?jwt={jwt} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    resp = b""
    while b"\r\n\r\n" not in resp:
        chunk = s.recv(4096)
        if not chunk:
            raise SystemExit("connection closed during the handshake")
        resp += chunk
    if not resp.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"handshake refused: {resp[:200]!r}")
    return s


def flood(s, seconds):
    """Empty masked pings, 64 KiB of them per send, never reading. Returns (pings,
    how it ended)."""
    ping = bytes([0x89, 0x80]) + os.urandom(4)
    batch = ping * 10923
    s.settimeout(2.0)
    sent = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            n = s.send(batch)
        except socket.timeout:
            return sent, "send blocked 2 s (the server stopped reading)"
        except OSError as e:
            return sent, f"socket error {e.errno} (the server closed it)"
        sent += n // len(ping)
    return sent, "time cap"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsock", default="build/dsock")
    ap.add_argument("--max-queued-bytes", type=int, default=None,
                    help="default: the broker's default (64 MiB)")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--connections", type=int, default=1,
                    help="hostile connections, one after the other")
    ap.add_argument("--rcvbuf", type=int, default=4096)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="dsock-hostile-")
    secret = "bench-secret"
    port = free_port()
    argv = [a.dsock, "standalone", "--address", f"{HOST}:{port}", "--token", "t",
            "--jwt-secret", secret, "--threads", "1", "--config", os.path.join(tmp, "c.toml")]
    if a.max_queued_bytes:
        argv += ["--max-queued-bytes", str(a.max_queued_bytes)]
    open(os.path.join(tmp, "c.toml"), "w").close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSOCK_") and k != "PORT"}
    log = open(os.path.join(tmp, "dsock.log"), "w")
    p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        for _ in range(100):
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        jwt = make_jwt(secret, "hostile")
        # Warm up: one ordinary connection, so the start figure includes the
        # allocator's and the store's first allocations.
        connect_ws(port, jwt, 65536).close()
        time.sleep(0.3)
        start = rss_kb(p.pid)
        print(f"argv: {' '.join(argv[1:])}")
        print(f"RSS at start: {start} kB")
        for i in range(a.connections):
            peak = [start]
            stop = threading.Event()

            def sample():
                while not stop.is_set():
                    peak[0] = max(peak[0], rss_kb(p.pid))
                    time.sleep(0.02)

            t = threading.Thread(target=sample)
            t.start()
            s = connect_ws(port, jwt, a.rcvbuf)
            t0 = time.monotonic()
            pings, how = flood(s, a.seconds)
            took = time.monotonic() - t0
            time.sleep(0.5)
            stop.set()
            t.join()
            s.close()
            time.sleep(3)
            after = rss_kb(p.pid)
            print(f"connection {i + 1}: {pings} pings in {took:.1f} s, {how}; peak RSS "
                  f"{peak[0]} kB (+{peak[0] - start} kB); 3 s after it left {after} kB "
                  f"(+{after - start} kB)")
    finally:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        log.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
