"""Fixtures for the dsock integration suite.

- `redis_server` (session): one private redis-server shared by the cluster.
- `deployment_kind` (session, parametrised): "redis" (api + worker processes on Redis);
  add "standalone" to DEPLOYMENT_KINDS once `dsock standalone` exists.
- `cluster` (function): the shared deployment (2 API + 2 workers for "redis"), checked
  alive after each test and restarted if a test killed or crashed it.
- `make_deployment` (function): factory for dedicated deployments with their own flags
  (short ping, small limits, ...), stopped and checked at the end of the test.
- `make_redis` (function): a private redis-server for tests that stop or pause it.
Tests marked `redis_only` are skipped for other deployment kinds.
"""
import os
import tempfile

import pytest

import dsock_helpers as h

# Deployments every test runs against. Add "standalone" here once `dsock standalone`
# is ready; DSOCK_IT_DEPLOYMENTS=redis,standalone overrides it for a run.
DEPLOYMENT_KINDS = os.environ.get("DSOCK_IT_DEPLOYMENTS", "redis,standalone").split(",")
_STATE = {"keep": False}


@pytest.fixture(scope="session")
def log_root():
    path = tempfile.mkdtemp(prefix="dsock-itest-")
    yield path
    # Logs are kept when something failed; otherwise removed.
    if not _STATE["keep"]:
        import shutil
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _watch_processes():
    h.WATCHED.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        _STATE["keep"] = True
        seen = set()
        for proc, offset in list(h.WATCHED):
            if proc.name in seen:
                continue
            seen.add(proc.name)
            rep.sections.append((f"{proc.name} output ({proc.log_path}) during the test",
                                 proc.log(since=offset, tail_lines=150)))


@pytest.fixture(scope="session")
def redis_server(log_root):
    r = h.RedisServer(log_root, "redis-shared").start()
    yield r
    r.shutdown()


@pytest.fixture(scope="session", params=DEPLOYMENT_KINDS)
def deployment_kind(request):
    return request.param


@pytest.fixture(autouse=True)
def _skip_by_kind(request):
    if request.node.get_closest_marker("redis_only") is None:
        return
    kind = request.getfixturevalue("deployment_kind")
    if kind != "redis":
        pytest.skip("needs the redis deployment")


class _Shared:
    """Holds the session deployment and restarts it when a test left it dead."""

    def __init__(self, kind, log_root, redis):
        self.kind = kind
        self.log_root = log_root
        self.redis = redis
        self.dep = None
        self.generation = 0
        self.problems = []

    def get(self):
        if self.dep is None or not self.dep.all_alive():
            if self.dep is not None:
                self.problems += self.dep.stop()
            self.generation += 1
            self.dep = h.start_deployment(
                self.kind, os.path.join(self.log_root, f"cluster-{self.kind}-{self.generation}"),
                redis=self.redis if self.kind == "redis" else None, apis=2, workers=2,
                name=f"cluster{self.generation}")
        return self.dep


@pytest.fixture(scope="session")
def _shared_cluster(deployment_kind, log_root, request):
    redis = request.getfixturevalue("redis_server") if deployment_kind == "redis" else None
    shared = _Shared(deployment_kind, log_root, redis)
    yield shared
    problems = shared.problems + (shared.dep.stop() if shared.dep else [])
    if problems:
        _STATE["keep"] = True
        pytest.fail("cluster processes at session end:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def cluster(_shared_cluster):
    dep = _shared_cluster.get()
    for p in dep.procs:
        h.WATCHED.append((p, p.log_size()))
    yield dep
    bad = []
    for p in dep.procs:
        if not p.alive():
            bad.append(f"{p.name} died during the test (exit {p.popen.returncode})")
        found = p.sanitizer_report()
        if found:
            bad.append(f"{p.name} log contains {found}")
    if bad:
        _STATE["keep"] = True
        for p in dep.procs:
            p.expect_clean_exit = False  # reported here; restart without double-reporting
        pytest.fail("\n".join(bad), pytrace=False)


@pytest.fixture
def make_redis(log_root, request):
    servers = []

    def make():
        r = h.RedisServer(os.path.join(log_root, request.node.name), f"redis{len(servers)}")
        os.makedirs(r.log_dir, exist_ok=True)
        servers.append(r)
        return r.start()

    yield make
    for r in servers:
        r.shutdown()


@pytest.fixture
def make_deployment(deployment_kind, log_root, request):
    """make_deployment(apis=1, workers=1, redis=None, api_opts=..., worker_opts=...,
    jwt_secret=...): a dedicated deployment for this test. redis=None uses the shared
    redis-server (redis kind)."""
    deps = []

    def make(redis=None, **kw):
        if deployment_kind == "redis" and redis is None:
            redis = request.getfixturevalue("redis_server")
        d = h.start_deployment(deployment_kind,
                               os.path.join(log_root, request.node.name, f"dep{len(deps)}"),
                               redis=redis, name=f"dedicated{len(deps)}", **kw)
        deps.append(d)
        return d

    yield make
    problems = []
    for d in deps:
        problems += d.stop()
    if problems:
        _STATE["keep"] = True
        pytest.fail("dedicated processes at teardown:\n" + "\n".join(problems), pytrace=False)
