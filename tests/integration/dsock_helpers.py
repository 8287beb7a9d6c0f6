"""Helpers for the dsock integration suite: real processes (redis-server, dsock api /
worker / standalone), a plain HTTP client for the API, a raw-socket WebSocket client
for protocol tests, and bounded polling. No mocks: everything talks to real sockets.
"""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.parse
import uuid

import redis as redis_py

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DSOCK_BIN = os.environ.get("DSOCK_BIN", os.path.join(REPO, "build", "dsock"))
REDIS_BIN = shutil.which("redis-server") or "/usr/bin/redis-server"
HOST = "127.0.0.1"
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# Processes started for the running test (and the session processes it uses), with
# the log offset at which the test started; conftest prints their stderr on failure.
WATCHED = []


# ---------------------------------------------------------------------------
# Generic utilities


def free_port():
    """A port that was free a moment ago (bind to port 0 and release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value (returned) or timeout seconds pass
    (AssertionError naming `what` and the last value / exception)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except AssertionError as e:  # a failed check inside pred: keep polling
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def new_id(prefix="u"):
    return f"{prefix}{uuid.uuid4().hex}"


def port_open(port, host=HOST):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------
# Processes


_LOGFMT_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord('"'): b'"',
                   ord("\\"): b"\\"}


def parse_logfmt(line):
    """One dsock log line in logfmt (docs/logging.md), without its newline, as a dict of
    str (bytes written as \\xHH come back as surrogate escapes). Strict: keys are
    [A-Za-z0-9_.-]+, items are separated by one space, an unquoted value has no space,
    '=' or '"'. Raises ValueError for anything else, e.g. a forged or split line."""
    if isinstance(line, str):
        line = line.encode("utf-8", "surrogateescape")
    out, i, n = {}, 0, len(line)
    while i < n:
        if out:
            if line[i:i + 1] != b" ":
                raise ValueError(f"expected a space at {i}: {line!r}")
            i += 1
        j = i
        while j < n and (chr(line[j]).isalnum() and line[j] < 128 or line[j] in b"_.-"):
            j += 1
        if j == i or line[j:j + 1] != b"=":
            raise ValueError(f"expected key= at {i}: {line!r}")
        key = line[i:j].decode()
        i = j + 1
        val = bytearray()
        if line[i:i + 1] == b'"':
            i += 1
            while True:
                if i >= n:
                    raise ValueError(f"unterminated quoted value: {line!r}")
                c = line[i]
                if c == ord('"'):
                    i += 1
                    break
                if c < 0x20 or c == 0x7f:
                    raise ValueError(f"raw control byte in a value: {line!r}")
                if c != ord("\\"):
                    val.append(c)
                    i += 1
                    continue
                e = line[i + 1] if i + 1 < n else -1
                if e in _LOGFMT_ESCAPES:
                    val += _LOGFMT_ESCAPES[e]
                    i += 2
                elif e == ord("x"):
                    val.append(int(line[i + 2:i + 4], 16))
                    i += 4
                elif e == ord("u"):
                    val += chr(int(line[i + 2:i + 6], 16)).encode()
                    i += 6
                else:
                    raise ValueError(f"bad escape at {i}: {line!r}")
        else:
            while i < n and line[i] != ord(" "):
                if line[i] in b'="' or line[i] < 0x20 or line[i] == 0x7f:
                    raise ValueError(f"bad byte in an unquoted value at {i}: {line!r}")
                val.append(line[i])
                i += 1
            if not val:
                raise ValueError(f"empty unquoted value: {line!r}")
        if key in out:
            raise ValueError(f"key {key} twice: {line!r}")
        out[key] = bytes(val).decode("utf-8", "surrogateescape")
    return out


class Proc:
    """A child process whose stderr (and stdout) go to a log file."""

    def __init__(self, name, argv, log_dir, env=None, cwd=None):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.env = env
        self.cwd = cwd or log_dir
        self.popen = None
        self.stopped = False
        self.expect_clean_exit = True

    def start(self):
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                      stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd)
        self.stopped = False
        WATCHED.append((self, self.log_size()))
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def log_size(self):
        try:
            return os.path.getsize(self.log_path)
        except OSError:
            return 0

    def log(self, since=0, tail_lines=200):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                data = f.read().decode("utf-8", "replace")
        except OSError:
            return "(no log)"
        lines = data.splitlines()
        if len(lines) > tail_lines:
            lines = [f"... ({len(lines) - tail_lines} earlier lines)"] + lines[-tail_lines:]
        return "\n".join(lines)

    def log_bytes(self, since=0):
        """The raw log, for checks that must not depend on how text is decoded or split."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(since)
                return f.read()
        except OSError:
            return b""

    def sanitizer_report(self):
        text = self.log(tail_lines=10 ** 9)
        return [m for m in SANITIZER_MARKERS if m in text]

    def signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def kill(self):
        """SIGKILL, no checks (the test meant it)."""
        self.expect_clean_exit = False
        if self.alive():
            self.popen.kill()
        if self.popen is not None:
            self.popen.wait(10)
        self.stopped = True

    def stop(self, timeout=15):
        """SIGTERM and wait. Returns a list of problems (empty when the process exited 0
        and its log has no sanitizer report)."""
        problems = []
        if self.popen is None or self.stopped:
            return problems
        self.stopped = True
        if self.popen.poll() is not None:
            if self.expect_clean_exit:
                problems.append(f"{self.name} had already exited with {self.popen.returncode} "
                                f"before teardown")
        else:
            self.popen.send_signal(signal.SIGCONT)
            self.popen.send_signal(signal.SIGTERM)
            try:
                rc = self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
                problems.append(f"{self.name} did not exit within {timeout}s of SIGTERM (killed)")
            else:
                if rc != 0 and self.expect_clean_exit:
                    problems.append(f"{self.name} exited with {rc} after SIGTERM")
        found = self.sanitizer_report()
        if found:
            problems.append(f"{self.name} log contains {found}")
        self._log.close()
        if problems:
            problems.append(f"--- log of {self.name} ---\n{self.log(tail_lines=120)}")
        return problems


def _wait_listening(proc, port, timeout=15, dsock=False):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited with {proc.popen.returncode} before "
                                 f"listening on {port}:\n{proc.log()}")
        # dsock's startup line is written once its signal handlers are in place: a
        # test that stops the process right away must not find SIGTERM still fatal.
        if port_open(port) and (not dsock or _STARTED_RE.search(proc.log_bytes())):
            return
        time.sleep(0.02)
    raise AssertionError(f"{proc.name} not listening on {port} after {timeout}s:\n{proc.log()}")


_STARTED_RE = re.compile(rb'( msg=listening |"msg":"listening")')


class RedisServer:
    """A private redis-server on 127.0.0.1, no persistence. Can be stopped, started
    again (empty) on the same port, paused and resumed."""

    def __init__(self, log_dir, name="redis"):
        self.log_dir = log_dir
        self.name = name
        self.port = free_port()
        self.proc = None
        self.paused = False

    @property
    def host(self):
        return f"{HOST}:{self.port}"

    def start(self):
        argv = [REDIS_BIN, "--port", str(self.port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--dir", self.log_dir]
        self.proc = Proc(self.name, argv, self.log_dir).start()
        _wait_listening(self.proc, self.port)
        wait_until(self._pings, 10, what=f"{self.name} to answer PING")
        self.paused = False
        return self

    def _pings(self):
        try:
            return self.client(timeout=0.5).ping()
        except redis_py.RedisError:
            return False

    def client(self, timeout=5):
        return redis_py.Redis(host=HOST, port=self.port, socket_timeout=timeout,
                              socket_connect_timeout=timeout)

    def stop(self, sig=signal.SIGTERM):
        """Stops the server (SIGTERM or SIGKILL) and waits until it is gone."""
        self._kill(sig)
        wait_until(lambda: not port_open(self.port), 5, what=f"{self.name} port to close")

    def _kill(self, sig):
        """Sends sig (resuming a paused server first) and waits for the process."""
        if self.proc and self.proc.alive():
            self.resume()
            self.proc.expect_clean_exit = False
            self.proc.popen.send_signal(sig)
            self.proc.popen.wait(10)
            self.proc.stopped = True

    def restart(self):
        """Starts again, empty, on the same port."""
        self.stop()
        return self.start()

    def pause(self):
        self.proc.signal(signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.proc and self.paused:
            self.proc.signal(signal.SIGCONT)
        self.paused = False

    def shutdown(self):
        self.resume()
        if self.proc:
            self.proc.expect_clean_exit = False
            self.proc.stop()


SENTINEL_BIN = shutil.which("redis-sentinel") or "/usr/bin/redis-sentinel"


class SentinelSetup:
    """Redis with Sentinel on loopback (docs/redis.md, "Sentinel"): one primary, one
    replica and three sentinels monitoring it as `master_name` with quorum 2,
    down-after-milliseconds `down_after_ms` and a short failover-timeout. A dsock
    deployment started with it (start_deployment(redis=setup)) gets redis_sentinels
    instead of redis_host."""

    def __init__(self, log_dir, down_after_ms=1000, failover_timeout_ms=3000,
                 master_name="mymaster", sentinels=3):
        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.servers = [RedisServer(log_dir, "redis-a"), RedisServer(log_dir, "redis-b")]
        # Chosen when each starts (a port picked earlier may meanwhile be the local
        # end of the replica's link).
        self.sentinel_ports = [None] * sentinels
        self.sentinel_procs = [None] * sentinels

    def start(self):
        primary, replica = self.servers
        primary.start()
        replica.start()
        replica.client().execute_command("REPLICAOF", HOST, primary.port)
        wait_until(lambda: self._link_up(replica), 15, what="the replica to sync")
        for i in range(len(self.sentinel_ports)):
            self.start_sentinel(i)
        # Each sentinel must know the replica and the other sentinels (hello
        # messages every 2 s) before a failover can be agreed on.
        n = len(self.sentinel_ports)
        for i in range(n):
            wait_until(lambda: self._knows_all(i, n), 20, interval=0.1,
                       what=f"sentinel {i} to know its peers and the replica")
        return self

    # A loaded machine may time out a connect: such a check just fails this round.
    def _knows_all(self, i, n):
        try:
            c = self.sentinel(i)
            return (len(c.execute_command("SENTINEL", "SENTINELS", self.master_name)) >= n - 1
                    and len(c.execute_command("SENTINEL", "REPLICAS", self.master_name)) >= 1)
        except redis_py.RedisError:
            return False

    @staticmethod
    def _link_up(r):
        try:
            info = r.client(timeout=2).info("replication")
        except redis_py.RedisError:
            return False
        return info.get("master_link_status") == "up"

    def start_sentinel(self, i):
        for attempt in range(5):
            try:
                return self._start_sentinel(i)
            except AssertionError:
                if attempt == 4 or os.path.exists(os.path.join(self.log_dir, f"sentinel{i}.ok")):
                    raise
                os.unlink(os.path.join(self.log_dir, f"sentinel{i}.conf"))
                self.sentinel_ports[i] = None

    def _start_sentinel(self, i):
        if self.sentinel_ports[i] is None:
            self.sentinel_ports[i] = free_port()
        port = self.sentinel_ports[i]
        conf = os.path.join(self.log_dir, f"sentinel{i}.conf")
        if not os.path.exists(conf):  # a restart keeps what the sentinel learnt
            with open(conf, "w") as f:
                f.write(f"port {port}\nbind {HOST}\ndir {self.log_dir}\n"
                        f"sentinel monitor {self.master_name} {HOST} {self.servers[0].port} 2\n"
                        f"sentinel down-after-milliseconds {self.master_name} "
                        f"{self.down_after_ms}\n"
                        f"sentinel failover-timeout {self.master_name} "
                        f"{self.failover_timeout_ms}\n"
                        f"sentinel parallel-syncs {self.master_name} 1\n")
        p = Proc(f"sentinel{i}", [SENTINEL_BIN, conf], self.log_dir).start()
        p.expect_clean_exit = False
        self.sentinel_procs[i] = p
        _wait_listening(p, port)
        open(os.path.join(self.log_dir, f"sentinel{i}.ok"), "w").close()
        return p

    def stop_sentinel(self, i):
        p = self.sentinel_procs[i]
        if p and p.alive():
            p.kill()
        wait_until(lambda: not port_open(self.sentinel_ports[i]), 5, what="sentinel to stop")

    def sentinel(self, i, timeout=2):
        return redis_py.Redis(host=HOST, port=self.sentinel_ports[i], socket_timeout=timeout,
                              socket_connect_timeout=timeout, decode_responses=True)

    def master_addr(self, i=None):
        """The primary's port as a live sentinel says (first that answers)."""
        for j in ([i] if i is not None else range(len(self.sentinel_ports))):
            try:
                host, port = self.sentinel(j).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name)
                return int(port)
            except (redis_py.RedisError, TypeError, ValueError):
                continue
        return None

    def server_on(self, port):
        return next(r for r in self.servers if r.port == port)

    @property
    def sentinels_spec(self):
        return ",".join(f"{HOST}:{p}" for p in self.sentinel_ports)

    def dsock_flags(self):
        return ["--redis-sentinels", self.sentinels_spec, "--redis-master-name", self.master_name]

    def shutdown(self):
        for p in self.sentinel_procs:
            if p:
                p.stop()
        for r in self.servers:
            r.shutdown()


def _clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DSOCK_") and k != "PORT"}
    env.update(extra or {})
    return env


def _flags(opts):
    out = []
    for k, v in (opts or {}).items():
        out += [f"--{k}", str(v)]
    return out


class Deployment:
    """A running dsock deployment: `apis` and `workers` are (host, port) addresses;
    in standalone both are the same single address."""

    def __init__(self, kind, token, jwt_secret, redis):
        self.kind = kind
        self.token = token
        self.jwt_secret = jwt_secret
        self.redis = redis
        self.apis = []
        self.workers = []
        self.api_procs = []
        self.worker_procs = []
        self.procs = []

    def api(self, i=0, token=None):
        host, port = self.apis[i]
        return ApiClient(host, port, self.token if token is None else token)

    def worker(self, i=0):
        return self.workers[i]

    def all_alive(self):
        return all(p.alive() for p in self.procs)

    def claim(self, user, session=None, api=0, **params):
        r = self.api(api).claim(user=user, session=session, **params)
        return r.expect(200)["claim"]["id"]

    def connect(self, user, session=None, worker=0, api=0, timeout=5):
        """Claims for user/session and opens a raw WebSocket on worker `worker`."""
        claim = self.claim(user, session, api=api)
        return ws_connect(self.workers[worker], f"claim={claim}", timeout=timeout)

    def ws_url(self, worker=0, query=""):
        host, port = self.workers[worker]
        return f"ws://{host}:{port}/connect" + (f"?{query}" if query else "")

    def stop(self):
        problems = []
        for p in reversed(self.procs):
            problems += p.stop()
        return problems


def _redis_flags(redis):
    """A RedisServer's address, or a SentinelSetup's sentinels."""
    if hasattr(redis, "dsock_flags"):
        return redis.dsock_flags()
    return ["--redis-host", redis.host]


def start_deployment(kind, log_dir, redis=None, apis=1, workers=1, token=None,
                     jwt_secret="jwt-secret-for-tests", api_opts=None, worker_opts=None,
                     name="d"):
    """Starts a deployment of `kind` ("redis": `apis` API + `workers` worker processes
    on `redis`; "standalone": one process serving both). api_opts/worker_opts are
    extra flags {name: value}; in standalone both sets apply to the one process."""
    token = token or "tok-" + uuid.uuid4().hex
    # A stopping worker closes its clients over drain_seconds (default 10): tests
    # stop theirs with clients still open, so they drain over 1 s unless they say.
    worker_opts = {"drain-seconds": 1, **(worker_opts or {})}
    dep = Deployment(kind, token, jwt_secret, redis)
    env = _clean_env()
    os.makedirs(log_dir, exist_ok=True)
    started = []
    try:
        if kind == "redis":
            assert redis is not None
            for i in range(apis):
                port = free_port()
                argv = [DSOCK_BIN, "api", "--address", f"{HOST}:{port}", "--token", token
                        ] + _redis_flags(redis) + _flags(api_opts)
                p = Proc(f"{name}-api{i}", argv, log_dir, env=env).start()
                started.append((p, port))
                dep.api_procs.append(p)
                dep.apis.append((HOST, port))
            for i in range(workers):
                port = free_port()
                argv = [DSOCK_BIN, "worker", "--address", f"{HOST}:{port}"
                        ] + _redis_flags(redis) + _flags(worker_opts)
                if jwt_secret is not None:
                    argv += ["--jwt-secret", jwt_secret]
                p = Proc(f"{name}-worker{i}", argv, log_dir, env=env).start()
                started.append((p, port))
                dep.worker_procs.append(p)
                dep.workers.append((HOST, port))
        elif kind == "standalone":
            port = free_port()
            # Two loop threads, explicitly (the default follows the CPU count): every
            # test then also covers connections and API calls on different threads.
            opts = {"threads": 2}
            opts.update(api_opts or {})
            opts.update(worker_opts or {})
            argv = [DSOCK_BIN, "standalone", "--address", f"{HOST}:{port}", "--token", token]
            if jwt_secret is not None:
                argv += ["--jwt-secret", jwt_secret]
            p = Proc(f"{name}-standalone", argv + _flags(opts), log_dir, env=env).start()
            started.append((p, port))
            dep.api_procs.append(p)
            dep.worker_procs.append(p)
            dep.apis.append((HOST, port))
            dep.workers.append((HOST, port))
        else:
            raise ValueError(kind)
        dep.procs = [p for p, _ in started]
        for p, port in started:
            _wait_listening(p, port, dsock=True)
    except BaseException:
        for p, _ in started:
            p.expect_clean_exit = False
            p.stop()
        raise
    return dep


# ---------------------------------------------------------------------------
# HTTP


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # dict, lower-case names
        self.body = body

    @property
    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError(f"body is not JSON (status {self.status}): {self.body[:300]!r}")

    def expect(self, status, code=None):
        """Asserts the status, the JSON content type and the success/error shape;
        returns the parsed body."""
        assert self.status == status, (f"expected HTTP {status}"
                                       f"{' ' + code if code else ''}, got {self.status}: "
                                       f"{self.body[:300]!r}")
        ctype = self.headers.get("content-type", "")
        assert ctype.split(";")[0].strip().lower() == "application/json", \
            f"Content-Type is {ctype!r}, body {self.body[:200]!r}"
        j = self.json
        assert isinstance(j, dict), j
        if 200 <= status < 300:
            assert j.get("success") is True, j
        else:
            assert j.get("success") is False, j
            assert isinstance(j.get("error"), str) and j["error"], f"no error message: {j}"
            if code is not None:
                assert j.get("errorCode") == code, f"expected errorCode {code}, got {j}"
        return j

    def __repr__(self):
        return f"<Response {self.status} {self.body[:200]!r}>"


def query_string(params):
    return urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})


class ApiClient:
    """Plain http.client requests to one API address, a new connection per request."""

    def __init__(self, host, port, token):
        self.host = host
        self.port = port
        self.token = token

    def request(self, method, path, params=None, body=None, headers=None, auth="query",
                token=None, timeout=10):
        params = dict(params or {})
        headers = dict(headers or {})
        tok = self.token if token is None else token
        if auth == "query":
            params["token"] = tok
        elif auth == "bearer":
            headers["Authorization"] = f"Bearer {tok}"
        qs = query_string(params)
        url = path + ("?" + qs if qs else "")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, url, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            hdrs = {k.lower(): v for k, v in resp.getheaders()}
            return Response(resp.status, hdrs, data)
        finally:
            conn.close()

    def claim(self, **params):
        return self.request("POST", "/claim", params)

    def send(self, body=b"", **params):
        if isinstance(body, str):
            body = body.encode()
        return self.request("POST", "/send", params, body=body)

    def disconnect(self, **params):
        return self.request("POST", "/disconnect", params)

    def info(self, **params):
        return self.request("GET", "/info", params)


class KeepAliveApi:
    """One persistent HTTP/1.1 connection (http.client reopens it when the server
    answers Connection: close)."""

    def __init__(self, addr, token, timeout=10):
        self.conn = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
        self.token = token

    def send(self, body, **params):
        params["token"] = self.token
        self.conn.request("POST", "/send?" + query_string(params), body=body)
        resp = self.conn.getresponse()
        return Response(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())

    def close(self):
        self.conn.close()


class HttpResult:
    def __init__(self, status, reason, headers, body, version):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.version = version

    def response(self):
        return Response(self.status, self.headers, self.body)

    def __repr__(self):
        return f"<HttpResult {self.status} {self.headers} {self.body[:200]!r}>"


def _recv_some(sock, deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("timed out reading from socket")
    sock.settimeout(remaining)
    try:
        return sock.recv(65536)
    except socket.timeout:
        raise TimeoutError("timed out reading from socket")


def read_http_response(sock, buf=b"", timeout=5.0):
    """Reads one HTTP response from sock. Returns (HttpResult, leftover bytes)."""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in buf:
        data = _recv_some(sock, deadline)
        if not data:
            raise EOFError(f"connection closed before a full response head: {buf!r}")
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    version, status, *reason = lines[0].split(" ", 2)
    status = int(status)
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        headers[k] = (headers[k] + ", " + v.strip()) if k in headers else v.strip()
    body = b""
    if status == 101 or status == 204 or status == 304 or 100 <= status < 200:
        pass
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            data = _recv_some(sock, deadline)
            if not data:
                raise EOFError("connection closed inside a response body")
            rest += data
        body, rest = rest[:n], rest[n:]
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            while b"\r\n" not in rest:
                rest += _recv_some(sock, deadline)
            size_line, rest = rest.split(b"\r\n", 1)
            n = int(size_line.split(b";")[0], 16)
            while len(rest) < n + 2:
                rest += _recv_some(sock, deadline)
            body += rest[:n]
            rest = rest[n + 2:]
            if n == 0:
                break
    else:
        while True:
            data = _recv_some(sock, deadline)
            if not data:
                break
            rest += data
        body, rest = rest, b""
    return HttpResult(status, reason[0] if reason else "", headers, body, version), rest


def wait_closed(sock, timeout=3.0):
    """True when the peer closes (EOF or reset) within timeout; data is discarded."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not _recv_some(sock, deadline):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def raw_http(addr, data, timeout=5.0, keep=False):
    """Sends raw bytes, reads one response. With keep=True returns (result, sock)."""
    sock = socket.create_connection(addr, timeout=timeout)
    try:
        sock.sendall(data)
        res, _ = read_http_response(sock, timeout=timeout)
    except BaseException:
        sock.close()
        raise
    if keep:
        return res, sock
    sock.close()
    return res


# ---------------------------------------------------------------------------
# WebSocket (raw sockets)

OP_CONT, OP_TEXT, OP_BIN, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class Frame:
    def __init__(self, fin, rsv, opcode, payload, masked):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.payload = payload
        self.masked = masked

    @property
    def close_code(self):
        if self.opcode != OP_CLOSE:
            return None
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return 1005

    def __repr__(self):
        return f"<Frame op={self.opcode} fin={self.fin} len={len(self.payload)} {self.payload[:40]!r}>"


class WSClosed(Exception):
    def __init__(self, code, reason=b""):
        super().__init__(f"closed by server with code {code} {reason!r}")
        self.code = code
        self.reason = reason


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask=True, mask_key=None,
                 length=None):
    payload = bytes(payload)
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0xF)
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload)) if len(payload) < 4096 \
            else _xor_fast(payload, key)
        head += key
    return head + payload


def _xor_fast(data, key):
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


class RawWS:
    """A WebSocket client on a plain socket: frames are built and checked by hand so
    tests can break the protocol on purpose."""

    def __init__(self, sock, buf=b"", response=None):
        self.sock = sock
        self.buf = buf
        self.response = response

    # sending
    def send_raw(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode() if isinstance(text, str) else text)

    def send_binary(self, data):
        self.send_frame(OP_BIN, data)

    def ping(self, payload=b""):
        self.send_frame(OP_PING, payload)

    def pong(self, payload=b""):
        self.send_frame(OP_PONG, payload)

    def send_close(self, code=1000, reason=b""):
        payload = b"" if code is None else struct.pack("!H", code) + reason
        self.send_frame(OP_CLOSE, payload)

    # receiving
    def _need(self, n, deadline):
        while len(self.buf) < n:
            data = _recv_some(self.sock, deadline)
            if not data:
                raise EOFError(f"connection closed (have {len(self.buf)} of {n} bytes)")
            self.buf += data

    def recv_frame(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            self._need(pos + 4, deadline)
            key = self.buf[pos:pos + 4]
            pos += 4
        self._need(pos + n, deadline)
        payload = self.buf[pos:pos + n]
        self.buf = self.buf[pos + n:]
        if masked:
            payload = _xor_fast(payload, key)
        f = Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, payload, masked)
        assert not f.masked, "server sent a masked frame"
        assert f.rsv == 0, f"server sent RSV bits {f.rsv}"
        return f

    def recv_message(self, timeout=5.0):
        """Next data message as (opcode, payload); answers pings, skips pongs; a close
        frame raises WSClosed."""
        deadline = time.monotonic() + timeout
        opcode, parts = None, []
        while True:
            f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if f.opcode == OP_PING:
                self.pong(f.payload)
                continue
            if f.opcode == OP_PONG:
                continue
            if f.opcode == OP_CLOSE:
                raise WSClosed(f.close_code, f.payload[2:])
            if f.opcode == OP_CONT:
                assert opcode is not None, "server sent a continuation without a start"
            else:
                assert opcode is None, "server started a message inside another"
                assert f.opcode in (OP_TEXT, OP_BIN), f"server sent opcode {f.opcode}"
                opcode = f.opcode
            parts.append(f.payload)
            if f.fin:
                return opcode, b"".join(parts)

    def recv_data(self, timeout=5.0):
        return self.recv_message(timeout)[1]

    def expect_no_message(self, timeout=0.3):
        try:
            m = self.recv_message(timeout)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected message {m!r}")

    def expect_close(self, timeout=5.0, reply=True):
        """Reads until the server's close frame (skipping data and pings); returns
        (code, reason). With reply, answers with a close frame as RFC 6455 asks."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
            except TimeoutError:
                raise AssertionError(f"no close frame within {timeout}s")
            except (EOFError, ConnectionResetError):
                raise AssertionError("connection ended without a close frame")
            if f.opcode == OP_CLOSE:
                if reply:
                    try:
                        self.send_close(f.close_code if f.close_code != 1005 else None)
                    except OSError:
                        pass
                return f.close_code, f.payload[2:]

    def wait_eof(self, timeout=5.0):
        return wait_closed(self.sock, timeout)

    def is_open(self, timeout=3.0):
        """Ping round trip: True when a pong with our payload comes back."""
        token = os.urandom(8)
        try:
            self.ping(token)
            deadline = time.monotonic() + timeout
            while True:
                f = self.recv_frame(max(0.001, deadline - time.monotonic()))
                if f.opcode == OP_PONG and f.payload == token:
                    return True
                if f.opcode == OP_PING:
                    self.pong(f.payload)
                if f.opcode == OP_CLOSE:
                    return False
        except (OSError, EOFError, TimeoutError):
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def handshake_request(addr, query, key=None, extra_headers=None, method="GET", version="13",
                      omit=()):
    key = key or base64.b64encode(os.urandom(16)).decode()
    headers = {
        "Host": f"{addr[0]}:{addr[1]}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": version,
    }
    for h in omit:
        headers.pop(h, None)
    headers.update(extra_headers or {})
    target = "/connect" + (f"?{query}" if query else "")
    lines = [f"{method} {target} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def accept_key(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


def ws_handshake(addr, query, timeout=5.0, **kw):
    """Sends an upgrade request; returns (HttpResult, RawWS or None). The socket is
    closed when the answer is not 101."""
    req, key = handshake_request(addr, query, **kw)
    sock = socket.create_connection(addr, timeout=timeout)
    try:
        sock.sendall(req)
        res, rest = read_http_response(sock, timeout=timeout)
    except BaseException:
        sock.close()
        raise
    if res.status != 101:
        sock.close()
        return res, None
    assert res.headers.get("upgrade", "").lower() == "websocket", res.headers
    assert "upgrade" in res.headers.get("connection", "").lower(), res.headers
    assert res.headers.get("sec-websocket-accept") == accept_key(key), res.headers
    return res, RawWS(sock, rest, res)


def ws_connect(addr, query, timeout=5.0):
    res, ws = ws_handshake(addr, query, timeout=timeout)
    assert res.status == 101, f"expected 101 for /connect?{query}, got {res.status} {res.body!r}"
    return ws


def json_error(res):
    """For an HttpResult: the parsed JSON error (asserting the shape)."""
    return res.response().expect(res.status)


def head_request(addr, path):
    """A HEAD request on a fresh connection: (status, the raw head), read up to the
    blank line (no body follows a HEAD answer)."""
    with socket.create_connection(addr, timeout=5) as sock:
        sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = sock.recv(4096)
            assert data, buf
            buf += data
    return int(buf.split(b" ", 2)[1]), buf
