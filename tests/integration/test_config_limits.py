"""Limits at startup (docs/configuration.md, "Limits"): every size or count limit
refuses 0, whether it comes from a flag, a variable or the config file, with exit 1
and one line naming where the value came from. Before, max_message_bytes = 0 meant
"unlimited" and max_body_bytes = 0 "nothing allowed"; a process that starts instead
of refusing is killed after a bound and fails the test."""
import subprocess

import pytest

import dsock_helpers as h

# key, its minimum (the range message starts there)
LIMITS = [
    ("max_header_bytes", 1024),
    ("max_body_bytes", 1),
    ("max_message_bytes", 1),
    ("max_queued_bytes", 1024),
    ("max_connections", 1),
]


def run_refused(args, cwd, env=None):
    """Runs dsock expecting it to refuse to start; returns its stderr."""
    try:
        r = subprocess.run([h.DSOCK_BIN] + args, cwd=cwd, env=h._clean_env(env),
                           capture_output=True, timeout=20, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"dsock {' '.join(args)} started instead of refusing the value")
    err = r.stderr.decode()
    assert r.returncode == 1, (r.returncode, err)
    assert len(err.strip().splitlines()) == 1, f"expected one line, got: {err}"
    return err


@pytest.mark.parametrize("key,minimum", LIMITS)
@pytest.mark.parametrize("source", ["flag", "env", "file"])
def test_zero_limit_refused_at_startup(tmp_path, key, minimum, source):
    addr = ["--address", f"127.0.0.1:{h.free_port()}"]
    flag = "--" + key.replace("_", "-")
    env_name = "DSOCK_" + key.upper()
    if source == "flag":
        err = run_refused(["standalone"] + addr + [flag, "0"], str(tmp_path))
        origin = flag
    elif source == "env":
        err = run_refused(["standalone"] + addr, str(tmp_path), env={env_name: "0"})
        origin = env_name
    else:
        (tmp_path / "config.toml").write_text(f'# limits\n{key} = 0\n')
        err = run_refused(["standalone"] + addr, str(tmp_path))
        origin = "config.toml:2"
    assert f"{origin}: {key} must be between {minimum} and " in err, err
    assert err.rstrip().endswith("got 0"), err


@pytest.mark.parametrize("role", ["api", "worker"])
def test_zero_message_limit_refused_by_every_role(tmp_path, role):
    err = run_refused([role, "--token", "t", "--max-message-bytes", "0",
                       "--address", f"127.0.0.1:{h.free_port()}"], str(tmp_path))
    assert "--max-message-bytes: max_message_bytes must be between 1 and" in err, err


def test_smallest_limits_are_accepted(tmp_path):
    """The minimum of a limit is a valid value: the broker starts and applies it. (Each
    minimum is accepted in tests/unit/test_config.c; max_connections = 1 is left out
    here, since the readiness probe's own connection could still hold the place.)"""
    port = h.free_port()
    args = ["standalone", "--address", f"127.0.0.1:{port}", "--token", "tok",
            "--max-body-bytes", "1", "--max-message-bytes", "1",
            "--max-header-bytes", "1024",
            "--max-queued-bytes", "1024"]
    proc = h.Proc("dsock-min-limits", [h.DSOCK_BIN] + args, str(tmp_path),
                  env=h._clean_env(), cwd=str(tmp_path)).start()
    try:
        h.wait_until(lambda: h.port_open(port), 10, what="standalone listening")
        h.ApiClient(h.HOST, port, "tok").send(b"ab", user="u").expect(413)
    finally:
        problems = proc.stop()
        assert not problems, "\n".join(problems)
