"""What the bench's Python tools share: a free loopback port, and a private
redis-server (no persistence) that answers PING before it is handed out.
Imported by bench/*.py (their own folder is on sys.path when run as a script)."""
import socket
import subprocess
import time

import redis


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_redis(port, workdir, prefix=(), wait_s=60):
    """Starts redis-server on 127.0.0.1:port (prefix: a wrapper such as valgrind
    and its options) and waits until it answers PING. -> (process, client). The
    caller terminates the process."""
    proc = subprocess.Popen([*prefix, "redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", workdir],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            r.ping()
            return proc, r
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"redis-server on port {port} did not start")
            time.sleep(0.05)
