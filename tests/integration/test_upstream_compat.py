"""What dSock 0.3-0.4 added besides channels (docs/compatibility.md): GET|POST /ping
on every role without token; the port key (DSOCK_PORT, PORT); every key of the 0.4
config accepted, so a 0.4 config file (TOML, JSON, YAML) starts and behaves;
redis_tls = true refused at startup; messaging_method = direct warned about; and
X-Request-ID echoed or generated on every answer, with requestId in error bodies.
default_channels, the one 0.4 key not here, belongs to the channels work."""
import json
import re
import subprocess

import pytest

import dsock_helpers as h

BIN = h.DSOCK_BIN
REQID_RE = re.compile(r"^[0-9a-f]{16}$")

_started = [0]


def start(args, cwd, env=None):
    _started[0] += 1
    return h.Proc(f"compat{_started[0]}", [BIN] + args, str(cwd), env=h._clean_env(env),
                  cwd=str(cwd)).start()


def wait_listening(proc, port):
    h._wait_listening(proc, port, dsock=True)


def stop_all(procs):
    problems = []
    for p in procs:
        problems += p.stop()
    assert not problems, "\n".join(problems)


def get(addr, path, method="GET", headers=None, body=None):
    return h.ApiClient(addr[0], addr[1], "").request(method, path, body=body, headers=headers,
                                                     auth="none")


# ---- /ping ------------------------------------------------------------------------------


def test_ping_on_every_role_without_token(cluster):
    """dSock 0.3.3's /ping: 200, "pong" as text/plain (gin's c.String), no token."""
    addrs = {tuple(a) for a in cluster.apis + cluster.workers}
    for addr in addrs:
        for method in ("GET", "POST"):
            res = get(addr, "/ping", method=method)
            assert res.status == 200, (addr, method, res)
            assert res.body == b"pong"
            assert res.headers["content-type"] == "text/plain; charset=utf-8"
            assert REQID_RE.match(res.headers["x-request-id"]), res.headers
        # A POST body is never read, and the answer still comes.
        res = get(addr, "/ping", method="POST", body=b"x" * 100000)
        assert res.status == 200 and res.body == b"pong"
        res = get(addr, "/ping", method="HEAD")
        assert res.status == 200 and res.body == b""
        res = get(addr, "/ping", method="PUT")
        assert res.status == 405, res
        assert res.headers["allow"] == "GET, HEAD, POST"
        assert res.json["requestId"] == res.headers["x-request-id"]
        # A token changes nothing, right or wrong.
        res = h.ApiClient(addr[0], addr[1], "wrong").request("GET", "/ping")
        assert res.status == 200 and res.body == b"pong"


def test_ping_keep_alive(cluster):
    """Answered from the headers: a bodiless /ping keeps its connection."""
    data = b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
    res, sock = h.raw_http(cluster.apis[0], data, keep=True)
    try:
        assert res.status == 200 and res.body == b"pong"
        sock.sendall(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        res2, _ = h.read_http_response(sock)
        assert res2.status == 200 and res2.body == b"pong"
    finally:
        sock.close()


# ---- X-Request-ID ---------------------------------------------------------------------------


def test_request_id_echoed_or_generated(cluster):
    api = cluster.api()
    user = h.new_id()
    # Echoed, on a success and on an error.
    res = api.request("GET", "/info", {"user": user}, headers={"X-Request-ID": "abc-42.x:y_Z"})
    res.expect(200)
    assert res.headers["x-request-id"] == "abc-42.x:y_Z"
    assert "requestId" not in res.json, "only error answers carry requestId"
    res = api.request("GET", "/info", {}, headers={"X-Request-ID": "trace-1"})
    res.expect(400, "MISSING_CONNECTION_OR_USER")
    assert res.headers["x-request-id"] == "trace-1"
    assert res.json["requestId"] == "trace-1"
    # Generated: when absent, too long, or with characters a log line should not hold.
    for given in (None, "a" * 65, "bad id", 'q"uote', "semi;colon", "é"):
        hdrs = {} if given is None else {"X-Request-ID": given}
        res = h.ApiClient(*cluster.apis[0], "wrong").request("GET", "/info", {"user": user},
                                                            headers=hdrs)
        res.expect(401, "INVALID_AUTHORIZATION")
        rid = res.headers["x-request-id"]
        assert REQID_RE.match(rid), (given, rid)
        assert res.json["requestId"] == rid
    # The longest accepted id is 64 bytes.
    res = api.request("GET", "/info", {"user": user}, headers={"x-request-id": "b" * 64})
    assert res.headers["x-request-id"] == "b" * 64
    # Two requests without one get different ids.
    a = api.info(user=user).headers["x-request-id"]
    b = api.info(user=user).headers["x-request-id"]
    assert a != b


def test_request_id_on_every_kind_of_answer(cluster):
    api_addr, worker_addr = cluster.apis[0], cluster.workers[0]
    # 404 from the router, probes, an unparsable request.
    res = get(api_addr, "/nowhere", headers={"X-Request-ID": "r404"})
    assert res.status == 404 and res.json["requestId"] == "r404"
    assert res.headers["x-request-id"] == "r404"
    res = get(api_addr, "/healthz", headers={"X-Request-ID": "probe"})
    assert res.status == 200 and res.headers["x-request-id"] == "probe"
    res = h.raw_http(api_addr, b"GARBAGE\r\n\r\n")
    assert res.status == 400
    body = json.loads(res.body)
    assert REQID_RE.match(body["requestId"]) and res.headers["x-request-id"] == body["requestId"]
    # The worker: a refused handshake and a 101.
    res, _ = h.ws_handshake(worker_addr, "", extra_headers={"X-Request-ID": "ws-refused"})
    assert res.status == 401
    assert json.loads(res.body)["requestId"] == "ws-refused"
    claim = cluster.claim(h.new_id())
    res, ws = h.ws_handshake(worker_addr, f"claim={claim}", extra_headers={"X-Request-ID": "ws-ok"})
    assert res.status == 101 and res.headers["x-request-id"] == "ws-ok"
    ws.close()


def test_request_id_names_the_access_line(make_deployment):
    dep = make_deployment(api_opts={"log-requests": "true"})
    proc = dep.api_procs[0]
    since = proc.log_size()
    dep.api().request("GET", "/info", {}, headers={"X-Request-ID": "line-7"}).expect(400)

    def found():
        return any("request_id=line-7" in line and "status=400" in line
                   for line in proc.log(since=since).splitlines())

    h.wait_until(found, 10, what="access line naming the request id")


# ---- port, and the configuration of dSock 0.4 ------------------------------------------------


def _startup(proc, port):
    wait_listening(proc, port)
    return proc.log()


def test_port_key_and_variables(tmp_path):
    p_file, p_dsock, p_env = h.free_port(), h.free_port(), h.free_port()
    (tmp_path / "config.toml").write_text(f'token = "t"\nport = {p_file}\n')
    procs = []
    try:
        procs.append(start(["standalone"], tmp_path))
        _startup(procs[-1], p_file)
        assert get(("127.0.0.1", p_file), "/ping").body == b"pong"
        stop_all([procs.pop()])
        procs.append(start(["standalone"], tmp_path, env={"DSOCK_PORT": str(p_dsock)}))
        _startup(procs[-1], p_dsock)
        stop_all([procs.pop()])
        procs.append(start(["standalone"], tmp_path,
                           env={"DSOCK_PORT": str(p_dsock), "PORT": str(p_env)}))
        _startup(procs[-1], p_env)  # PORT wins over DSOCK_PORT, as in dSock 0.4
        stop_all([procs.pop()])
    finally:
        stop_all(procs)


# Every key of dSock 0.4's README but default_channels, as its users wrote them.
_KEYS_04 = {
    "redis_password": "", "redis_db": 0, "redis_max_retries": 10, "redis_tls": False,
    "token": "abc123", "jwt_secret": "jwt-04", "debug": False, "log_requests": True,
    "messaging_method": "redis", "direct_message_hostname": "", "direct_message_port": "",
    "ttl_duration": "60s", "default_channels": "global,news",
}


def _write_config(directory, fmt, keys):
    directory.mkdir()
    if fmt == "toml":
        lines = []
        for k, v in keys.items():
            lines.append(f"{k} = " + (json.dumps(v) if not isinstance(v, bool)
                                      else str(v).lower()))
        text = "\n".join(lines) + "\n"
    elif fmt == "json":
        text = json.dumps(keys, indent=2)
    else:
        text = "".join(f"{k}: {json.dumps(v)}\n" for k, v in keys.items())
    (directory / f"config.{fmt}").write_text(text)


@pytest.mark.parametrize("fmt", ["toml", "json", "yaml"])
def test_dsock04_config_file_starts_and_behaves(tmp_path, redis_server, fmt):
    """An API and a worker, each started with nothing but a 0.4 config file in its
    working directory: they listen on `port`, authenticate with its token and JWT
    secret, and deliver."""
    api_port, worker_port = h.free_port(), h.free_port()
    keys = dict(_KEYS_04, redis_host=redis_server.host)
    _write_config(tmp_path / "api", fmt, dict(keys, port=api_port))
    _write_config(tmp_path / "worker", fmt, dict(keys, port=worker_port,
                                                 direct_message_port=worker_port))
    api = start(["api"], tmp_path / "api")
    worker = start(["worker"], tmp_path / "worker")
    procs = [worker, api]
    try:
        wait_listening(api, api_port)
        wait_listening(worker, worker_port)
        for p in procs:
            assert f"config.{fmt}" in p.log(), p.log()
            assert "redis_max_retries is accepted" in p.log(), p.log()
        client = h.ApiClient("127.0.0.1", api_port, "abc123")
        user = h.new_id()
        claim = client.claim(user=user).expect(200)["claim"]["id"]
        with h.ws_connect(("127.0.0.1", worker_port), f"claim={claim}") as ws:
            h.wait_until(lambda: client.send(b"hi", user=user, type="text")
                         .expect(200)["connections"] == 1, 10, what="delivery")
            assert ws.recv_message(timeout=5) == (1, b"hi")
            # default_channels: every new connection joined them
            client.send(b"to-all", channel="global", type="text").expect(200)
            assert ws.recv_message(timeout=5) == (1, b"to-all")
        for addr in (("127.0.0.1", api_port), ("127.0.0.1", worker_port)):
            assert get(addr, "/ping").body == b"pong"
        # log_requests = true: access lines.
        h.wait_until(lambda: "msg=request " in api.log(), 10, what="an access line")
    finally:
        stop_all(procs)


def test_messaging_method_direct_warns_and_still_delivers(tmp_path, redis_server):
    api_port, worker_port = h.free_port(), h.free_port()
    keys = dict(_KEYS_04, redis_host=redis_server.host, messaging_method="direct",
                direct_message_hostname="127.0.0.1")
    _write_config(tmp_path / "api", "toml", dict(keys, port=api_port))
    _write_config(tmp_path / "worker", "toml", dict(keys, port=worker_port,
                                                    direct_message_port=worker_port))
    api = start(["api"], tmp_path / "api")
    worker = start(["worker"], tmp_path / "worker")
    procs = [worker, api]
    try:
        wait_listening(api, api_port)
        wait_listening(worker, worker_port)
        for p in procs:
            log = p.log()
            assert "level=warn" in log and "messaging_method = direct is not implemented" in log
            assert "still travel over Redis" in log and "config.toml:" in log, log
        client = h.ApiClient("127.0.0.1", api_port, "abc123")
        user = h.new_id()
        claim = client.claim(user=user).expect(200)["claim"]["id"]
        with h.ws_connect(("127.0.0.1", worker_port), f"claim={claim}") as ws:
            h.wait_until(lambda: client.send(b"direct?", user=user, type="text")
                         .expect(200)["connections"] == 1, 10, what="delivery")
            assert ws.recv_message(timeout=5) == (1, b"direct?")
    finally:
        stop_all(procs)


def test_redis_tls_refused_at_startup(tmp_path):
    (tmp_path / "config.toml").write_text('token = "t"\nredis_tls = true\n')
    for role in ("api", "worker"):
        r = subprocess.run([BIN, role], cwd=str(tmp_path), env=h._clean_env(),
                             capture_output=True, timeout=15, stdin=subprocess.DEVNULL)
        err = r.stderr.decode()
        assert r.returncode == 1, (role, r)
        assert "config.toml:2: redis_tls = true is not supported" in err, err
        assert "hiredis" in err and "TLS" in err, err
        assert err.count("\n") == 1, err


def test_unknown_messaging_method_refused(tmp_path):
    r = subprocess.run([BIN, "worker", "--messaging-method", "kafka"], cwd=str(tmp_path),
                         env=h._clean_env(), capture_output=True, timeout=15,
                         stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert "messaging_method must be redis or direct" in r.stderr.decode(), r
