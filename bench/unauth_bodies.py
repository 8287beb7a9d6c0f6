#!/usr/bin/python3
"""Memory held for unauthenticated request bodies (issue 7, item 2).

Opens N connections to a dsock API (or standalone) address, each sending the
headers of `POST /send` without a token and announcing a LENGTH-byte body, then
the first FRACTION of that body, paced over SECONDS, and never the rest; holds
the connections HOLD seconds more; it goes on sending after an answer, as an
attacker would, until its sends fail. Samples the VmRSS of the dsock process (PID)
every 100 ms and prints the baseline, the peak and the final value, plus what the
server did with the connections (answered, closed). The client side allocates
nothing per byte: every connection sends from one shared buffer.

    bench/unauth_bodies.py --addr 127.0.0.1:6241 --pid PID [--conns 100]
"""
import argparse
import selectors
import socket
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--length", type=int, default=16 * 1024 * 1024)
    ap.add_argument("--fraction", type=float, default=0.95)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--hold", type=float, default=5.0)
    a = ap.parse_args()
    host, port = a.addr.rsplit(":", 1)
    head = (f"POST /send?user=victim&type=binary HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Length: {a.length}\r\n\r\n").encode()
    target = int(a.length * a.fraction)
    chunk = b"x" * 65536
    sel = selectors.DefaultSelector()
    conns = []
    base = rss_kib(a.pid)
    for _ in range(a.conns):
        s = socket.create_connection((host, int(port)))
        s.sendall(head)
        s.setblocking(False)
        c = {"sock": s, "sent": 0, "answered": False, "eof": False, "closed": False}
        conns.append(c)
        sel.register(s, selectors.EVENT_READ, c)
    start = time.monotonic()
    end = start + a.seconds + a.hold
    peak = base
    next_sample = start
    while time.monotonic() < end:
        now = time.monotonic()
        # Paced: by now each connection may have sent this much of its body.
        allowed = min(target, int(target * min(1.0, (now - start) / a.seconds)))
        for c in conns:
            while not c["closed"] and c["sent"] < allowed:
                try:
                    n = c["sock"].send(chunk[:min(len(chunk), allowed - c["sent"])])
                except BlockingIOError:
                    break
                except OSError:
                    c["closed"] = True
                    break
                c["sent"] += n
        for key, _ in sel.select(timeout=0.01):
            c = key.data
            try:
                data = c["sock"].recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data.startswith(b"HTTP/1.1 4"):
                c["answered"] = True
            if not data:  # the server shut its side; like an attacker, keep sending
                c["eof"] = True
                sel.unregister(c["sock"])
        if now >= next_sample:
            peak = max(peak, rss_kib(a.pid))
            next_sample = now + 0.1
    final = rss_kib(a.pid)
    sent = sum(c["sent"] for c in conns)
    print(f"connections {a.conns}, body announced {a.length} B, body sent {sent / 2**20:.1f} MiB "
          f"in all over {a.seconds:.0f} s + {a.hold:.0f} s held")
    print(f"answered 4xx: {sum(c['answered'] for c in conns)}, "
          f"write side shut by the server: {sum(c['eof'] for c in conns)}, "
          f"closed by the server (sends fail): {sum(c['closed'] for c in conns)}")
    print(f"VmRSS KiB: baseline {base}, peak {peak} (+{peak - base}), at the end {final}")
    for c in conns:
        c["sock"].close()


if __name__ == "__main__":
    main()
