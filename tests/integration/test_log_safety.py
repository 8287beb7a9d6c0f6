"""Log safety (docs/logging.md): user-controlled text cannot forge a log line or a
field, every line of every process is well-formed logfmt (or JSON with
log_format = json) carrying the fixed keys, values come back exactly, and no
token, JWT, claim id or secret is ever written, debug lines included."""
import json
import re
import time

import jwt as pyjwt
import pytest

import dsock_helpers as h

FORGED = "2026-01-01T00:00:00.000Z ERROR [worker] forged"
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"debug", "info", "warn", "error", "fatal"}

# User ids an attacker may choose: a whole forged line after a newline (the old
# "TIME LEVEL [role] text" format and a logfmt one), forged fields (quotes, spaces,
# '='), and valid UTF-8 that breaks lines for many readers (U+2028, NEL) or
# reorders them (U+202E).
EVIL_USERS = [
    "x\n" + FORGED,
    "x\r\ntime=2026-01-01T00:00:00.000Z level=error role=worker msg=forged",
    'y" level=error msg="forged',
    "z\u2028" + FORGED + "\u0085\u202e\t\\",
]


def debug_deployment(make_deployment, **opts):
    flags = {"debug": "true"}
    flags.update(opts)
    return make_deployment(api_opts=flags, worker_opts=flags)


def log_lines(proc):
    data = proc.log_bytes()
    assert data.endswith(b"\n"), f"{proc.name}: log does not end with a newline"
    return data[:-1].split(b"\n")


def records(dep, fmt="logfmt"):
    """Every line of every process, parsed; asserts the fixed keys on each."""
    out = []
    for p in dep.procs:
        for raw in log_lines(p):
            assert not raw.startswith(FORGED.encode()), f"forged line in {p.name}: {raw!r}"
            if fmt == "json":
                rec = json.loads(raw.decode("utf-8"))
                assert isinstance(rec, dict), raw
            else:
                rec = h.parse_logfmt(raw)
            assert TIME_RE.match(rec.get("time", "")), f"{p.name}: bad time in {raw!r}"
            assert rec.get("level") in LEVELS, f"{p.name}: bad level in {raw!r}"
            assert rec.get("role") in ("api", "worker", "standalone"), raw
            assert isinstance(rec.get("msg"), str) and rec["msg"], raw
            out.append(rec)
    return out


def connect_lines(dep, fmt="logfmt"):
    return [r for r in records(dep, fmt) if r["msg"] == "connect"]


@pytest.mark.parametrize("user", EVIL_USERS, ids=["lf", "crlf-logfmt", "quotes", "unicode"])
def test_user_id_cannot_forge_a_line(make_deployment, user):
    dep = debug_deployment(make_deployment)
    r = dep.api().claim(user=user, session="s 1")
    if r.status == 400:
        # A stricter /claim may refuse control characters outright: the id then never
        # reaches a log, which is as safe. Only ids with a control character may be.
        assert any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in user), r.body
        records(dep)
        return
    claim = r.expect(200)["claim"]["id"]
    with h.ws_connect(dep.worker(), f"claim={claim}"):
        h.wait_until(lambda: any(b"connect" in p.log_bytes() for p in dep.worker_procs), 10,
                     what="the connect debug line")
    # First, whatever the format: no line begins with the attacker's text.
    for p in dep.procs:
        for raw in log_lines(p):
            assert not raw.startswith(FORGED.encode()), f"forged line in {p.name}: {raw!r}"
            assert not raw.startswith(b"time=2026-01-01"), f"forged line in {p.name}: {raw!r}"
    (line,) = connect_lines(dep)
    # The whole id comes back as one value: nothing was cut, nothing spilled over.
    assert line["user"] == user
    assert line["session"] == "s 1"
    assert line["level"] == "debug" and line["role"] in ("worker", "standalone")
    assert re.match(r"^[0-9a-f-]{36}$", line["worker"]), line
    assert re.match(r"^[0-9a-f-]{36}$", line["id"]), line
    assert "peer" in line
    # No line but the startup lines and this one carry the forged words as a message.
    assert all(r["msg"] != "forged" for r in records(dep))


def test_json_format(make_deployment):
    user = EVIL_USERS[0] + '"}{"level":"error'
    dep = debug_deployment(make_deployment, **{"log-format": "json"})
    r = dep.api().claim(user=user)
    if r.status == 400:  # see above
        user = 'y"}{"level":"error'
        r = dep.api().claim(user=user)
    claim = r.expect(200)["claim"]["id"]
    with h.ws_connect(dep.worker(), f"claim={claim}"):
        h.wait_until(lambda: connect_lines(dep, "json"), 10, what="the connect debug line")
    (line,) = connect_lines(dep, "json")
    assert line["user"] == user
    assert "session" not in line  # no session: the field is left out
    starts = [r for r in records(dep, "json") if r["msg"] == "listening"]
    assert len(starts) == len(dep.procs)
    for s in starts:
        assert isinstance(s["threads"], int) and isinstance(s["jwt"], bool)


def test_bad_log_format_is_refused(tmp_path):
    import subprocess
    r = subprocess.run([h.DSOCK_BIN, "standalone", "--log-format", "xml", "--token", "t"],
                       cwd=str(tmp_path), env=h._clean_env(), capture_output=True, timeout=30)
    assert r.returncode == 1, r
    assert b"log_format" in r.stderr and b"--log-format" in r.stderr, r.stderr


def test_no_secret_in_debug_logs(make_deployment):
    """A claim, connect, send, info and disconnect round trip with every debug line
    on, plus a JWT connection and refused attempts: the API token, the JWT, its
    secret and the claim ids appear in no log."""
    dep = debug_deployment(make_deployment)
    api = dep.api()
    user = h.new_id()
    claim = dep.claim(user, "sess")
    unused_claim = dep.claim(user, "other")
    token_jwt = pyjwt.encode({"sub": user, "sid": "j", "exp": int(time.time()) + 600},
                           dep.jwt_secret, algorithm="HS256")
    with h.ws_connect(dep.worker(), f"claim={claim}") as ws, \
            h.ws_connect(dep.worker(), f"jwt={token_jwt}") as ws2:
        assert api.send(b"hello", user=user, type="text").expect(200)["connections"] == 2
        assert ws.recv_message(timeout=5) == (1, b"hello")
        assert ws2.recv_message(timeout=5) == (1, b"hello")
        api.request("GET", "/info", {"user": user}, auth="bearer").expect(200)
        # Refused attempts: a used claim, a bad JWT, a wrong token.
        res, _ = h.ws_handshake(dep.worker(), f"claim={claim}")
        assert res.status == 401
        res, _ = h.ws_handshake(dep.worker(), f"jwt={token_jwt}x")
        assert res.status == 401
        api.request("GET", "/info", {"user": user}, token=dep.token + "x").expect(401)
        api.disconnect(user=user).expect(200)
        h.wait_until(lambda: sum(r["msg"] == "disconnect" for r in records(dep)) >= 2, 10,
                     what="the disconnect debug lines")
    recs = records(dep)
    assert any(r["msg"] == "connect" and r["user"] == user for r in recs)
    secrets = [dep.token, token_jwt, token_jwt.split(".")[2], dep.jwt_secret, claim,
               unused_claim]
    for p in dep.procs:
        data = p.log_bytes()
        for s in secrets:
            assert s.encode() not in data, f"{p.name} logged a secret ({s[:8]}...)"
