"""The binary as a newcomer and an operator meet it: `dsock` with no subcommand runs
standalone and generates a token; --help/--version; exit codes for bad command lines;
config files (TOML, JSON, YAML) found in the working directory with the precedence
flag > environment > file > default; the default config.toml written without secrets."""
import json
import os
import re
import subprocess

import pytest

import dsock_helpers as h

BIN = h.DSOCK_BIN


def run(args, cwd, env=None, timeout=15):
    return subprocess.run([BIN] + args, cwd=cwd, env=h._clean_env(env), capture_output=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


_started = [0]


def start(args, cwd, env=None):
    # One log file per process: a later process must not match an earlier one's lines.
    _started[0] += 1
    return h.Proc(f"dsock{_started[0]}", [BIN] + args, cwd, env=h._clean_env(env),
                  cwd=cwd).start()


def wait_log(proc, pattern, timeout=10):
    found = {}

    def check():
        m = re.search(pattern, proc.log())
        if m:
            found["m"] = m
        return bool(m)

    h.wait_until(check, timeout, what=f"log line matching {pattern!r}")
    return found["m"]


def stop(proc):
    problems = proc.stop()
    assert not problems, "\n".join(problems)


def test_no_subcommand_is_standalone_with_generated_token(tmp_path):
    port = h.free_port()
    proc = start(["--address", f"127.0.0.1:{port}"], str(tmp_path))
    try:
        m = wait_log(proc, r"role=standalone .*msg=listening .*address=127\.0\.0\.1:%d "
                           r"store=memory .*generated_token=([A-Za-z0-9]{32})" % port)
        token = m.group(1)
        h.wait_until(lambda: h.port_open(port), 10, what="standalone listening")
        api = h.ApiClient(h.HOST, port, token)
        user = h.new_id()
        claim = api.claim(user=user).expect(200)["claim"]["id"]
        # The generated token is the only one: the API is never open.
        h.ApiClient(h.HOST, port, "x" * 32).info(user=user).expect(401, "INVALID_AUTHORIZATION")
        with h.ws_connect((h.HOST, port), f"claim={claim}") as ws:
            r = api.send(b"hello", user=user, type="text").expect(200)
            assert r["connections"] == 1
            assert ws.recv_message(timeout=5) == (1, b"hello")
        # Printed once: the token appears in exactly one log line.
        assert proc.log().count(token) == 1
    finally:
        stop(proc)


def test_configured_token_is_not_printed(tmp_path):
    port = h.free_port()
    proc = start(["standalone", "--address", f"127.0.0.1:{port}", "--token", "s3cret-token"],
                 str(tmp_path))
    try:
        wait_log(proc, r"msg=listening ")
        assert "s3cret-token" not in proc.log()
        assert "generated_token" not in proc.log()
    finally:
        stop(proc)


def test_help_and_version(tmp_path):
    r = run(["--help"], str(tmp_path))
    assert r.returncode == 0 and b"standalone" in r.stdout
    for sub in ("api", "worker", "standalone"):
        r = run([sub, "--help"], str(tmp_path))
        assert r.returncode == 0, r
        out = r.stdout.decode()
        for flag, var in (("--redis-host", "DSOCK_REDIS_HOST"), ("--address", "DSOCK_ADDRESS"),
                          ("--token", "DSOCK_TOKEN"), ("--jwt-secret", "DSOCK_JWT_SECRET")):
            assert flag in out and var in out, out
    r = run(["--version"], str(tmp_path))
    assert r.returncode == 0 and re.match(rb"dsock \d+\.\d+\.\d+", r.stdout), r
    assert not os.listdir(tmp_path), "help/version must not write a config file"


@pytest.mark.parametrize("args,code,needle", [
    (["serve"], 2, "unknown subcommand"),
    (["apx"], 2, "did you mean api"),
    (["api", "--bogus"], 2, "--bogus"),
    (["api", "--redis-hots", "x"], 2, "redis-host"),
    (["api", "--address"], 2, "--address"),
    (["api"], 1, "token"),
    (["worker", "--redis-db", "abc"], 1, "redis_db"),
    (["worker", "--ping-interval", "-5"], 1, "ping_interval"),
])
def test_bad_command_lines(tmp_path, args, code, needle):
    r = run(args, str(tmp_path))
    assert r.returncode == code, r
    err = r.stderr.decode()
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1, f"expected one line, got: {err}"


def test_address_in_use_is_a_clear_error(tmp_path):
    import socket
    s = socket.socket()
    s.bind((h.HOST, 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        r = run(["standalone", "--address", f"127.0.0.1:{port}"], str(tmp_path))
        assert r.returncode == 1, r
        assert b"address already in use" in r.stderr.lower() or b"in use" in r.stderr, r.stderr
    finally:
        s.close()


def _serve_and_read_info(tmp_path, args, env=None):
    """Starts standalone with args/env in tmp_path, returns its startup line."""
    proc = start(["standalone"] + args, str(tmp_path), env=env)
    try:
        return wait_log(proc, r"msg=listening .*").group(0)
    finally:
        stop(proc)


@pytest.mark.parametrize("fmt", ["toml", "json", "yaml", "yml"])
def test_config_file_in_working_directory(tmp_path, fmt):
    port = h.free_port()
    if fmt == "toml":
        text = f'address = "127.0.0.1:{port}"\ntoken = "filetoken"\n'
    elif fmt == "json":
        text = json.dumps({"address": f"127.0.0.1:{port}", "token": "filetoken"})
    else:
        text = f'address: "127.0.0.1:{port}"\ntoken: filetoken\n'
    (tmp_path / f"config.{fmt}").write_text(text)
    line = _serve_and_read_info(tmp_path, [])
    assert f"127.0.0.1:{port}" in line and f"config.{fmt}" in line, line


def test_precedence_flag_over_env_over_file(tmp_path):
    p_file, p_env, p_flag = h.free_port(), h.free_port(), h.free_port()
    (tmp_path / "config.toml").write_text(f'address = "127.0.0.1:{p_file}"\n')
    line = _serve_and_read_info(tmp_path, [])
    assert f":{p_file}" in line
    line = _serve_and_read_info(tmp_path, [], env={"DSOCK_ADDRESS": f"127.0.0.1:{p_env}"})
    assert f":{p_env}" in line
    line = _serve_and_read_info(tmp_path, ["--address", f"127.0.0.1:{p_flag}"],
                                env={"DSOCK_ADDRESS": f"127.0.0.1:{p_env}"})
    assert f":{p_flag}" in line


def test_port_variable(tmp_path):
    port = h.free_port()
    (tmp_path / "config.toml").write_text('address = ""\n')
    line = _serve_and_read_info(tmp_path, [], env={"PORT": str(port)})
    assert f":{port}" in line, line


def test_bad_config_file_names_file_and_line(tmp_path):
    (tmp_path / "config.toml").write_text('token = "a"\nredis_hots = "x"\n')
    r = run(["standalone"], str(tmp_path))
    assert r.returncode == 1, r
    err = r.stderr.decode()
    assert "config.toml:2" in err and "redis_host" in err, err
    (tmp_path / "config.toml").write_text('redis_db = "zero"\n')
    r = run(["standalone"], str(tmp_path))
    assert r.returncode == 1 and "config.toml:1" in r.stderr.decode(), r


def test_default_config_written_without_secrets(tmp_path):
    port = h.free_port()
    proc = start(["standalone", "--address", f"127.0.0.1:{port}", "--token", "tok",
                  "--jwt-secret", "jwtsecret", "--redis-password", "pw"], str(tmp_path))
    try:
        wait_log(proc, r"msg=listening ")
    finally:
        stop(proc)
    text = (tmp_path / "config.toml").read_text()
    for secret in ("tok\"", "jwtsecret", "\"pw\""):
        assert secret not in text, text
    for key in ("address", "redis_host", "redis_password", "redis_db", "token", "jwt_secret",
                "debug"):
        assert re.search(r"^#\s*%s\s*=" % key, text, re.M), f"{key} not commented in:\n{text}"
    assert "wrote" in proc.log() and "config.toml" in proc.log()
