"""Tests for ``cluster``: spec validation, and real local / address / gateway clusters."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dask
import dask.array as da
import dask_gateway
import numpy as np
import psutil
import pytest
import yaml
from distributed import Client, LocalCluster
from distributed.core import Status

import cluster as cluster_mod
import tests.gateway
from cluster import ClusterSpec, get_client
from cluster._gateway import close_gateway, gateway_auth
from tests.gateway import GatewayInfo, connect, running_gateway

GiB = 2**30

# ---------------------------------------------------------------------------
# helpers


@pytest.fixture
def cluster_log():
    """INFO records of the ``cluster`` loggers.

    Not caplog: pytest also attaches its capture handlers to the non-propagating
    ``distributed`` logger, and a LocalCluster (``silence_logs``) turns those very
    handlers down to WARNING while it runs, hiding every INFO record meanwhile.
    """
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("cluster")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _messages(records: list[logging.LogRecord]) -> str:
    return "\n".join(r.getMessage() for r in records)


def _small_array() -> tuple[da.Array, np.ndarray]:
    rng = np.random.default_rng(0)
    values = rng.random((400, 300))
    return da.from_array(values, chunks=(100, 100)), values


def _worker_pids(client: Client) -> list[int]:
    return list(client.run(os.getpid).values())


def _assert_dead(pids: list[int], timeout: float = 15.0) -> None:
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    assert not alive, f"processes still running after exit: {alive}"


# ---------------------------------------------------------------------------
# ClusterSpec validation


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kind": "cloud"}, ValueError, r"kind must be one of \('local', 'gateway', 'address'\)"),
        ({"kind": "local", "n_workers": 0}, ValueError, "n_workers must be >= 1"),
        ({"kind": "local", "n_workers": 2.0}, TypeError, "n_workers must be an int"),
        ({"kind": "local", "threads_per_worker": True}, TypeError, "threads_per_worker"),
        ({"kind": "local", "memory_limit": "lots"}, ValueError, "memory_limit must be 'auto'"),
        ({"kind": "local", "memory_limit": 4}, ValueError, "memory_limit"),
        ({"kind": "local", "address": "tcp://h:1"}, ValueError, r"address applies only to"),
        (
            {"kind": "local", "workers": 2},
            ValueError,
            r"workers applies only to kind in \['gateway'\]",
        ),
        ({"kind": "local", "dashboard": "yes"}, TypeError, "dashboard must be a bool or None"),
        (
            {"kind": "gateway", "n_workers": 2},
            ValueError,
            r"n_workers applies only to kind in \['local'\]",
        ),
        ({"kind": "gateway", "address": "tcp://h:1"}, ValueError, "http:// or https://"),
        ({"kind": "gateway", "auth": "oauth"}, ValueError, "auth must be one of"),
        ({"kind": "gateway", "username": "u"}, ValueError, "need auth='basic'"),
        ({"kind": "gateway", "auth": "kerberos", "password": "p"}, ValueError, "need auth='basic'"),
        ({"kind": "gateway", "workers": 2, "adapt_maximum": 4}, ValueError, "exclude each other"),
        ({"kind": "gateway", "adapt_minimum": 3, "adapt_maximum": 2}, ValueError, "adapt_minimum"),
        ({"kind": "gateway", "adapt_minimum": -1}, ValueError, "adapt_minimum must be >= 0"),
        ({"kind": "gateway", "cluster_options": [("a", 1)]}, TypeError, "cluster_options"),
        ({"kind": "gateway", "proxy_address": ""}, TypeError, "proxy_address must be a non-empty"),
        ({"kind": "gateway", "address": "http://127.0.0.1:99999"}, ValueError, "port in 1..65535"),
        ({"kind": "gateway", "address": "https://"}, ValueError, "URL with a host"),
        ({"kind": "address", "address": "tcp://h:70000"}, ValueError, "scheduler address"),
        ({"kind": "local", "connect_timeout": 0}, ValueError, r"connect_timeout must be a number of seconds"),
        ({"kind": "gateway", "worker_timeout": True}, ValueError, r"worker_timeout must be a number of seconds"),
        ({"kind": "gateway", "worker_timeout": 1e9}, ValueError, r"in \(0, 86400\]"),
        ({"kind": "address"}, ValueError, "'tcp://host:port' or 'tls://host:port'"),
        ({"kind": "address", "address": "http://h:1"}, ValueError, "kind='address'"),
        ({"kind": "address", "address": "tcp://h:1", "n_workers": 1}, ValueError, "n_workers"),
    ],
)
def test_spec_validation_names_field_and_allowed(kwargs, error, match):
    with pytest.raises(error, match=match):
        ClusterSpec(**kwargs)


def test_spec_is_frozen_and_owns_cluster_options():
    options = {"worker_cores": 2}
    spec = ClusterSpec(kind="gateway", cluster_options=options, adapt_maximum=3)
    options["worker_cores"] = 8
    assert spec.cluster_options == {"worker_cores": 2}
    with pytest.raises(TypeError):
        spec.cluster_options["worker_cores"] = 4  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.kind = "local"  # type: ignore[misc]
    assert "secret" not in repr(ClusterSpec(kind="gateway", auth="basic", password="secret"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("local", ClusterSpec(kind="local")),
        (" gateway ", ClusterSpec(kind="gateway")),
        ("tcp://10.0.0.5:8786", ClusterSpec(kind="address", address="tcp://10.0.0.5:8786")),
        (
            "tls://sched.example:8786",
            ClusterSpec(kind="address", address="tls://sched.example:8786"),
        ),
    ],
)
def test_from_cli(value, expected):
    assert ClusterSpec.from_cli(value) == expected


@pytest.mark.parametrize("value", ["", "Local", "http://gw:8000", "10.0.0.5:8786", "tcp://"])
def test_from_cli_rejects(value):
    # Either from_cli itself or the spec's address check; both list what is allowed.
    with pytest.raises(ValueError, match="'tcp://host:port'"):
        ClusterSpec.from_cli(value)


@pytest.mark.parametrize(
    ("spec_kwargs", "expected"),
    [
        ({}, (4, 1, 2 * GiB)),  # 8 cores, 8 GiB: memory caps at 2 GiB per worker
        ({"memory_limit": "auto"}, (4, 1, 2 * GiB)),
        ({"memory_limit": "1GiB"}, (8, 1, GiB)),  # smaller workers: cores cap
        ({"memory_limit": "3GiB"}, (2, 1, 3 * GiB)),
        ({"threads_per_worker": 4}, (2, 4, 4 * GiB)),
        ({"n_workers": 3}, (3, 1, 8 * GiB // 3)),  # told: no capping
        ({"n_workers": 16, "memory_limit": "1GiB"}, (16, 1, GiB)),
    ],
)
def test_local_default_size(monkeypatch, spec_kwargs, expected):
    monkeypatch.setattr(cluster_mod, "CPU_COUNT", 8)
    monkeypatch.setattr(cluster_mod, "MEMORY_LIMIT", 8 * GiB)
    assert cluster_mod._local_size(ClusterSpec(kind="local", **spec_kwargs)) == expected


def test_local_default_size_small_machine(monkeypatch):
    monkeypatch.setattr(cluster_mod, "CPU_COUNT", 4)
    monkeypatch.setattr(cluster_mod, "MEMORY_LIMIT", GiB)
    assert cluster_mod._local_size(ClusterSpec(kind="local")) == (1, 1, GiB)


def test_worker_environ_keeps_a_users_own_malloc_settings():
    from cluster import worker_environ

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 65536}):
        assert worker_environ() == {
            "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 32 * 2**20,
            "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 64 * 2**20,
        }
    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 0,
                          "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 4096}):
        assert worker_environ() == {}


def test_gateway_without_address_is_a_clear_error():
    with dask.config.set({"gateway.address": None}):
        with pytest.raises(ValueError, match="DASK_GATEWAY__ADDRESS"):
            with get_client(ClusterSpec(kind="gateway", workers=1)):
                pass


def test_gateway_auth_fills_unset_credentials_from_config():
    # A digits-only password from the environment arrives as an int in dask config.
    with dask.config.set({"gateway.auth.kwargs": {"username": "cfg-user", "password": 1234}}):
        auth = gateway_auth(ClusterSpec(kind="gateway", auth="basic", username="me"))
        assert (auth.username, auth.password) == ("me", "1234")
        assert gateway_auth(ClusterSpec(kind="gateway")) is None
        assert gateway_auth(ClusterSpec(kind="gateway", auth="kerberos")) == "kerberos"


# ---------------------------------------------------------------------------
# local and address kinds


def test_local_computes_logs_and_closes(cluster_log):
    x, values = _small_array()
    spec = ClusterSpec(kind="local", n_workers=2, memory_limit="1GiB")
    with get_client(spec) as client:
        assert len(client.nthreads()) == 2
        assert x.sum().compute() == pytest.approx(values.sum())
        pids = _worker_pids(client)
        local_cluster = client.cluster
        link = client.dashboard_link
        # the workers started with cpc's malloc settings, not distributed's eager trim
        env = client.run(lambda: (os.environ.get("MALLOC_MMAP_THRESHOLD_"), os.environ.get("MALLOC_TRIM_THRESHOLD_")))
        assert set(env.values()) == {(str(32 * 2**20), str(64 * 2**20))}
    assert client.status == "closed"
    assert local_cluster.status == Status.closed
    _assert_dead(pids)
    assert "local, 2 worker processes x 1 thread(s), 1.00 GiB memory each" in _messages(cluster_log)
    assert f"Dask dashboard: {link}" in _messages(cluster_log)
    assert link.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_local_closed_when_body_raises(exc_type):
    spec = ClusterSpec(kind="local", n_workers=1, memory_limit="1GiB", dashboard=False)
    with pytest.raises(exc_type):
        with get_client(spec) as client:
            pids = _worker_pids(client)
            local_cluster = client.cluster
            raise exc_type("stop")
    assert client.status == "closed"
    assert local_cluster.status == Status.closed
    _assert_dead(pids)


def test_address_kind_connects_without_owning_the_cluster():
    x, values = _small_array()
    with LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=":0",
    ) as running:
        spec = ClusterSpec.from_cli(running.scheduler_address)
        with get_client(spec) as client:
            assert x.mean().compute() == pytest.approx(values.mean())
        assert client.status == "closed"
        # Not ours to shut down: the scheduler keeps serving other clients.
        assert running.status == Status.running
        with Client(running) as other:
            assert len(other.nthreads()) == 1


def test_local_survives_worker_killed_mid_computation():
    rng = np.random.default_rng(1)
    values = rng.random((64, 1000))
    x = da.from_array(values, chunks=(1, 1000))  # 64 tasks per layer

    def slow(block: np.ndarray) -> np.ndarray:
        time.sleep(0.05)
        return block * 2.0

    spec = ClusterSpec(kind="local", n_workers=2, memory_limit="1GiB", dashboard=False)
    with get_client(spec) as client:
        victim_addr, victim_pid = next(iter(client.run(os.getpid).items()))
        future = client.compute(x.map_blocks(slow).sum())
        # Kill only once the victim holds intermediate results, so they are lost
        # and must be recomputed elsewhere.
        deadline = time.monotonic() + 30
        while not client.has_what().get(victim_addr):
            assert time.monotonic() < deadline, "victim worker never got any task"
            time.sleep(0.02)
        assert not future.done()
        os.kill(victim_pid, signal.SIGKILL)
        assert future.result(timeout=60) == pytest.approx(2.0 * values.sum())
        _assert_dead([victim_pid])


# ---------------------------------------------------------------------------
# gateway kind, against a real dask-gateway-server on localhost


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> GatewayInfo:
    with running_gateway(tmp_path_factory.mktemp("gateway")) as info:
        yield info


@pytest.fixture
def gateway_env(gateway, monkeypatch):
    """Point dask-gateway's config at the test server through DASK_GATEWAY__* only."""
    saved = copy.deepcopy(dask.config.config)
    for key, value in gateway.env().items():
        monkeypatch.setenv(key, value)
    dask.config.refresh()
    yield gateway
    # Restore in place: monkeypatch restores the environment only after this runs.
    dask.config.config.clear()
    dask.config.config.update(saved)


def _running_clusters(info: GatewayInfo) -> list:
    with connect(info) as gw:
        return gw.list_clusters()


@pytest.mark.integration
def test_gateway_computes_and_shuts_down(gateway, cluster_log):
    x, values = _small_array()
    spec = ClusterSpec(
        kind="gateway",
        address=gateway.address,
        proxy_address=gateway.proxy_address,
        auth="basic",
        username=gateway.username,
        password=gateway.password,
        workers=1,
    )
    with get_client(spec) as client:
        assert x.sum().compute() == pytest.approx(values.sum())
        name = client.cluster.name
        assert [c.name for c in _running_clusters(gateway)] == [name]
    assert _running_clusters(gateway) == []
    assert f"cluster {name}, 1 workers" in _messages(cluster_log)
    assert f"Dask dashboard: {gateway.address}/clusters/{name}/status" in _messages(cluster_log)


@pytest.mark.integration
def test_gateway_from_env_vars_only(gateway_env):
    x, values = _small_array()
    # Adaptive within the gateway's own limits: the spec names nothing but the kind.
    with get_client(ClusterSpec.from_cli("gateway")) as client:
        assert client.cluster.gateway.address == gateway_env.address
        assert client.cluster.gateway.proxy_address == gateway_env.proxy_address
        assert client.cluster.gateway.auth.username == gateway_env.username
        assert (x**2).sum().compute() == pytest.approx((values**2).sum())
    assert _running_clusters(gateway_env) == []


@pytest.mark.integration
@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_gateway_shut_down_when_body_raises(gateway_env, exc_type):
    with pytest.raises(exc_type):
        with get_client(ClusterSpec(kind="gateway", adapt_minimum=0, adapt_maximum=1)):
            assert len(_running_clusters(gateway_env)) == 1
            raise exc_type("stop")
    assert _running_clusters(gateway_env) == []


@pytest.mark.integration
def test_gateway_cluster_stopped_when_startup_interrupted(gateway_env, monkeypatch):
    # Ctrl-C while waiting for the scheduler: the submitted cluster must not linger.
    def interrupted(self, cluster_name, shutdown_on_close=False):
        raise KeyboardInterrupt

    monkeypatch.setattr(dask_gateway.Gateway, "connect", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with get_client(ClusterSpec(kind="gateway", workers=1)):
            pytest.fail("the body must not run")
    assert _running_clusters(gateway_env) == []


@pytest.mark.integration
def test_running_gateway_startup_failure_shows_log(tmp_path, monkeypatch):
    monkeypatch.setattr(
        tests.gateway,
        "_config_text",
        lambda *args: 'c.DaskGateway.backend_class = "no.such.Backend"\n',
    )
    with pytest.raises(RuntimeError, match=r"(?s)exited with code \d+ during startup.*no\.such"):
        with running_gateway(tmp_path):
            pytest.fail("the body must not run")


@pytest.mark.integration
def test_running_gateway_leaves_no_processes(tmp_path):
    # A cluster deliberately left running: stopping the server must take its
    # scheduler, worker and proxy processes down with it.
    with running_gateway(tmp_path) as info:
        with connect(info) as gw:
            leaked = gw.connect(gw.submit(), shutdown_on_close=False)
            leaked.scale(1)
            with leaked.get_client(set_as_default=False) as client:
                client.wait_for_workers(1, timeout=60)
            leaked.close(shutdown=False)
            close_gateway(leaked.gateway)
            assert len(gw.list_clusters()) == 1
        children = psutil.Process(info.pid).children(recursive=True)
        # proxy + scheduler + worker at least
        assert len(children) >= 3, [c.cmdline() for c in children]
    assert not psutil.pid_exists(info.pid)
    _assert_dead([c.pid for c in children], timeout=1)


# ---------------------------------------------------------------------------
# workers: a first one waited for after submitting, every one's cpc version checked


def test_public_address_drops_credentials():
    from cluster._gateway import public_address

    assert public_address("https://me:s3cret@gw.example.org:8000/x") == "https://gw.example.org:8000/x"
    assert public_address("http://u:pw@h:99999") == "http://h:99999"  # unparsable port, still stripped
    assert public_address("http://h:1/a@b") == "http://h:1/a@b"  # an @ in the path is no credential
    assert public_address(None) == "(no address)"


def test_require_workers_waits_for_a_worker_added_after_submission():
    """As an adaptive cluster does: no worker until work is submitted. The wait ends when the
    worker arrives, and the worker's versions are checked (the same installation: passes)."""
    from cluster._workers import _state, register, require_workers

    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=":0") as lc, \
            Client(lc) as client:
        register(client, "test cluster", worker_timeout=60)
        fut = client.submit(sum, [1, 2, 3])
        require_workers(client, "t", wait=False)  # no worker: nothing to check, no wait
        assert client.scheduler_info()["workers"] == {}
        lc.scale(1)
        t0 = time.monotonic()
        require_workers(client, "t")
        assert time.monotonic() - t0 < 60
        (worker,) = client.scheduler_info()["workers"]
        assert _state(client).checked == {worker}
        assert fut.result() == 6


def test_require_workers_times_out_naming_the_cluster():
    from cluster._workers import register, require_workers
    from cpc_core.errors import EnvironmentUnavailable

    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=":0") as lc, \
            Client(lc) as client:
        register(client, "Dask Gateway http://gw.example.org", worker_timeout=0.5)
        client.submit(sum, [1])
        t0 = time.monotonic()
        with pytest.raises(EnvironmentUnavailable, match=r"no Dask worker started within 0.5 s on Dask "
                                                         r"Gateway http://gw.example.org \(ingest stage\)"):
            require_workers(client, "ingest")
        assert time.monotonic() - t0 < 5


def test_version_mismatch_names_both_versions(monkeypatch):
    """The driver's cpc differs from the worker's (here the driver's reading is changed: the
    worker-side reading is tested with a real worker in tests/faults/test_faults_gateway.py)."""
    from cluster import _workers
    from cpc_core.errors import EnvironmentUnavailable

    real = _workers.driver_versions()
    monkeypatch.setattr(_workers, "driver_versions", lambda: {**real, "cpc": "0.0.1-driver"})
    with LocalCluster(n_workers=1, processes=True, host="127.0.0.1", dashboard_address=":0") as lc, \
            Client(lc) as client:
        with pytest.raises(EnvironmentUnavailable, match=rf"runs cpc {real['cpc']}, this driver cpc 0.0.1-driver"):
            _workers.require_workers(client, "synth")


# ---------------------------------------------------------------------------
# `cpc cluster up|down|status`: a long-lived local cluster (cluster._daemon)

CPC_CMD = [sys.executable, "-m", "jobs.cli"]
REPO = Path(__file__).resolve().parents[2]


def _cpc(*args: str, cache: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CPC_CACHE_DIR": str(cache), "TQDM_DISABLE": "1"}
    return subprocess.run([*CPC_CMD, *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout)


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("pid", ["dead", "foreign"])
def test_stale_cluster_file_is_named_and_ignored_never_waited_for(tmp_path, monkeypatch, caplog, pid):
    """A state file whose process is gone, or whose pid now belongs to another program (this
    test's own process), is stale: named in a warning, ignored by the commands, removed by down."""
    from cluster import _daemon
    from cpc_core.config.core import ClusterConfig
    from jobs.cli import _make_cluster_spec

    monkeypatch.setenv("CPC_CACHE_DIR", str(tmp_path))
    state = tmp_path / "local-cluster.json"
    state.write_text(json.dumps({"address": f"tcp://127.0.0.1:{_closed_port()}",
                                 "pid": _dead_pid() if pid == "dead" else os.getpid()}))
    found = _daemon.find()
    assert not found.live and found.path == state and "process" in found.reason
    with caplog.at_level(logging.WARNING, logger="cluster._daemon"):
        spec = _make_cluster_spec(ClusterConfig(), None)
    assert spec.kind == "local" and spec.address is None
    assert str(state) in caplog.text and "stale" in caplog.text

    t0 = time.monotonic()
    out = _cpc("cluster", "status", cache=tmp_path, timeout=60)
    assert out.returncode == 0 and "stale state file" in out.stdout and str(state) in out.stderr, out
    assert state.exists()  # status only reports
    out = _cpc("cluster", "down", cache=tmp_path, timeout=60)
    assert out.returncode == 0 and "removed the stale state file" in out.stdout, out
    assert not state.exists() and time.monotonic() - t0 < 60


def test_cluster_file_with_a_live_pid_but_no_scheduler_is_stale(tmp_path, monkeypatch):
    """The process is a cpc cluster daemon by its command line, but nothing answers at the
    address (a scheduler that died inside it): stale, found within the 1-second bound."""
    from cluster import _daemon

    monkeypatch.setenv("CPC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_daemon, "_is_ours", lambda pid: True)
    (tmp_path / "local-cluster.json").write_text(json.dumps({"address": f"tcp://127.0.0.1:{_closed_port()}",
                                                             "pid": os.getpid()}))
    t0 = time.monotonic()
    found = _daemon.find()
    assert not found.live and "nothing answers" in found.reason and time.monotonic() - t0 < 5


def _stop(cache: Path) -> None:
    """Tear down whatever `cpc cluster up` left under ``cache``: down, then its process group."""
    state = cache / "local-cluster.json"
    pid = None
    if state.exists():
        with contextlib.suppress(ValueError, OSError):
            pid = json.loads(state.read_text()).get("pid")
    with contextlib.suppress(Exception):
        _cpc("cluster", "down", cache=cache, timeout=90)
    if isinstance(pid, int) and psutil.pid_exists(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


def test_cluster_up_is_used_by_later_commands_and_down_stops_it(tmp_path, monkeypatch, caplog):
    from cluster import _daemon
    from cpc_core.config.core import ClusterConfig
    from jobs.cli import _make_cluster_spec

    monkeypatch.setenv("CPC_CACHE_DIR", str(tmp_path))
    try:
        out = _cpc("cluster", "up", "--n-workers", "1", "--no-dashboard", cache=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        rec = json.loads((tmp_path / "local-cluster.json").read_text())
        assert rec["address"].startswith("tcp://127.0.0.1:") and rec["address"] in out.stdout
        assert psutil.Process(rec["pid"]).is_running()
        # idempotent: a second `up` finds it
        again = _cpc("cluster", "up", cache=tmp_path)
        assert again.returncode == 0 and rec["address"] in again.stdout
        assert json.loads((tmp_path / "local-cluster.json").read_text())["pid"] == rec["pid"]
        status = _cpc("cluster", "status", cache=tmp_path)
        assert status.stdout.startswith(f"running: {rec['address']}")

        # a command whose config says kind local uses it, and says so; --cluster local does not
        with caplog.at_level(logging.INFO, logger="cpc"):
            spec = _make_cluster_spec(ClusterConfig(n_workers=3), None)
        assert spec.kind == "address" and spec.address == rec["address"]
        assert rec["address"] in caplog.text and "cluster.n_workers not applied" in caplog.text
        assert _make_cluster_spec(ClusterConfig(), "local").kind == "local"
        with get_client(spec) as c:
            assert len(c.nthreads()) == 1
            assert da.arange(100, chunks=10).sum().compute() == 4950
        assert psutil.Process(rec["pid"]).is_running()  # a client leaving does not stop it

        down = _cpc("cluster", "down", cache=tmp_path)
        assert down.returncode == 0 and f"stopped the local cluster at {rec['address']}" in down.stdout
        assert not (tmp_path / "local-cluster.json").exists()
        deadline = time.monotonic() + 30
        while psutil.pid_exists(rec["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not psutil.pid_exists(rec["pid"]) or psutil.Process(rec["pid"]).status() == psutil.STATUS_ZOMBIE
        assert not _daemon.find().live
    finally:
        _stop(tmp_path)


def test_cluster_up_refuses_a_bad_size_before_starting(tmp_path):
    out = _cpc("cluster", "up", "--memory-limit", "lots", cache=tmp_path, timeout=60)
    assert out.returncode == 2 and "--memory-limit" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "local-cluster.json").exists()


@pytest.mark.slow
def test_cpc_run_of_a_tiny_synth_uses_the_cluster_of_cpc_cluster_up(tmp_path):
    """Whole commands, as a user types them: up, a run of a tiny synthetic data set, down."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({
        "output": {"dir": str(tmp_path / "out")}, "estimate": {"min_hours": 48},
        "synth": {"cities": ["Lyon", "Nice"], "start": "2019-03-16", "days": 4, "scale": 0.004, "seed": 3}}))
    try:
        up_ = _cpc("cluster", "up", "--n-workers", "1", "--no-dashboard", cache=tmp_path)
        assert up_.returncode == 0, up_.stderr[-2000:]
        address = json.loads((tmp_path / "local-cluster.json").read_text())["address"]
        run = _cpc("run", str(cfg), cache=tmp_path, timeout=900)
        assert run.returncode == 0, run.stderr[-3000:]
        assert f"the local cluster of `cpc cluster up` at {address}" in run.stderr
        assert "Dask cluster: local," not in run.stderr  # no private cluster was started
        assert (tmp_path / "out" / "communes.csv").is_file()
        down = _cpc("cluster", "down", cache=tmp_path)
        assert down.returncode == 0 and not (tmp_path / "local-cluster.json").exists()
    finally:
        _stop(tmp_path)


def test_malloc_settings_win_after_a_default_cluster_leaked_its_own(monkeypatch):
    """distributed's nanny copies its pre-spawn defaults (MALLOC_TRIM_THRESHOLD_=65536) into the
    parent's os.environ and reads os.environ first: a second cluster in the same process (a
    notebook, a test session) must still start its workers with cpc's settings."""
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # what an earlier default cluster leaves
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    spec = ClusterSpec(kind="local", n_workers=1, memory_limit="1GiB")
    with get_client(spec) as client:
        env = client.run(lambda: (os.environ.get("MALLOC_MMAP_THRESHOLD_"), os.environ.get("MALLOC_TRIM_THRESHOLD_")))
        assert set(env.values()) == {(str(32 * 2**20), str(64 * 2**20))}
    # the parent's own environment is left as it was
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536" and "MALLOC_MMAP_THRESHOLD_" not in os.environ


# ---------------------------------------------------------------------------
# processes: worker processes, or one worker of threads in this process
# ---------------------------------------------------------------------------


def _listening() -> set[tuple[str, int]]:
    """The TCP addresses this process listens on."""
    return {(c.laddr.ip, c.laddr.port) for c in psutil.Process().net_connections(kind="tcp")
            if c.status == psutil.CONN_LISTEN}


SMALL = cluster_mod.SMALL_INPUT_BYTES


@pytest.mark.parametrize(("processes", "input_bytes", "threads"), [
    (None, 10, True), ("auto", SMALL, True), ("auto", SMALL + 1, False), (None, None, False),
    (True, 10, False), (False, None, True)])
def test_local_processes_or_threads(processes, input_bytes, threads, cluster_log):
    """``processes`` unset or ``auto`` runs a small input in this process; true and false are
    obeyed whatever the input; either way the same numbers, and nothing listens beyond loopback."""
    x, values = _small_array()
    before = _listening()
    spec = ClusterSpec(kind="local", n_workers=2, threads_per_worker=1, memory_limit="2GiB", processes=processes)
    assert cluster_mod.in_threads(spec, input_bytes) is threads
    with get_client(spec, input_bytes=input_bytes) as client:
        opened = _listening() - before
        info = client.scheduler_info()["workers"]
        assert x.sum().compute() == pytest.approx(values.sum())
        assert cluster_mod.in_process(client) is threads
        if threads:
            assert client.scheduler.address.startswith("inproc://")
            assert [w["nthreads"] for w in info.values()] == [2]  # the workers' threads, in one
            assert "in this process" in _messages(cluster_log) and _worker_pids(client) == [os.getpid()]
        else:
            assert client.scheduler.address.startswith("tcp://127.0.0.1:")
            assert sorted(w["nthreads"] for w in info.values()) == [1, 1]
            assert os.getpid() not in _worker_pids(client)
    assert opened and all(ip in ("127.0.0.1", "::1") for ip, _ in opened), opened
    # the dashboard link that is logged is the one that answers (loopback); a cluster of
    # threads in this process serves none by default (cluster.dashboard), and says so
    links = [m for m in _messages(cluster_log).splitlines() if m.startswith("Dask dashboard:")]
    if threads:
        assert not links and "no dashboard (cluster.dashboard: true serves one)" in _messages(cluster_log)
    else:
        assert links and all("//127.0.0.1:" in m for m in links), links


@pytest.mark.parametrize(("dashboard", "served"), [(None, False), (True, True), (False, False)])
def test_threads_dashboard_only_when_asked(dashboard, served, cluster_log):
    """One worker of threads serves the dashboard only with ``dashboard: true``: its link then
    answers the dashboard's page, and is logged and returned by :func:`dashboard_link`; the
    worker's statistical profiler runs only with it."""
    import urllib.request

    spec = ClusterSpec(kind="local", n_workers=1, memory_limit="1GiB", processes=False, dashboard=dashboard)
    with get_client(spec) as client:
        link = cluster_mod.dashboard_link(client)
        assert (link is not None) is served
        # the statistical profiler (it feeds the dashboard's Profile page) runs with it only
        worker = next(iter(client.cluster.workers.values()))
        assert ("profile" in worker.periodic_callbacks) is served
        assert client.submit(sum, [1, 2]).result() == 3
        if served:
            with urllib.request.urlopen(link, timeout=10) as r:
                assert r.status == 200 and b"Dask" in r.read()
            assert f"Dask dashboard: {link}" in _messages(cluster_log)
        else:
            assert "Dask dashboard:" not in _messages(cluster_log)


def test_small_local_cluster_does_not_import_the_dashboard():
    """The default cluster of a small input starts without bokeh (the dashboards' ~0.4 s)."""
    code = ("import sys; from cluster import ClusterSpec, get_client\n"
            "with get_client(ClusterSpec(kind='local', n_workers=1, memory_limit='1GiB'), input_bytes=10) as c:\n"
            "    assert c.submit(sum, [1, 2]).result() == 3\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'bokeh' or m.startswith('distributed.dashboard')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


@pytest.mark.parametrize(("kw", "match"), [
    ({"kind": "local", "processes": "yes"}, "processes must be true, false or 'auto'"),
    ({"kind": "local", "processes": 1.5}, "processes must be true, false or 'auto'"),
    ({"kind": "address", "address": "tcp://127.0.0.1:8786", "processes": False}, "applies only to kind"),
])
def test_processes_option_is_validated(kw, match):
    with pytest.raises(ValueError, match=match):
        ClusterSpec(**kw)


def _log_an_exception() -> None:
    import logging as lg

    try:
        raise OSError("Stream is closed")
    except OSError:
        lg.getLogger("distributed.worker").exception("Failed to communicate with scheduler during heartbeat.")


@pytest.mark.parametrize("debug", [False, True])
def test_local_worker_processes_log_exceptions_in_one_line(debug, capfd):
    """A worker process's record with an exception (distributed's heartbeat race at shutdown)
    reaches the terminal as one line, the exception's type and message folded in; with --debug
    (the root logger at DEBUG) the traceback is kept. Independent reference: the text the worker
    process wrote to the inherited stderr."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        spec = ClusterSpec(kind="local", n_workers=1, memory_limit="1GiB", processes=True, dashboard=False)
        with get_client(spec) as client:
            client.run(_log_an_exception)
            time.sleep(0.5)  # the worker's stderr is unbuffered, but let it reach the file
            err = capfd.readouterr().err
    finally:
        root.setLevel(old)
    line = [ln for ln in err.splitlines() if "during heartbeat" in ln]
    assert len(line) == 1, err[-2000:]
    if debug:
        assert "Traceback (most recent call last)" in err and line[0].endswith("during heartbeat.")
    else:
        assert "Traceback" not in err, err[-2000:]
        assert line[0].endswith("Failed to communicate with scheduler during heartbeat. (OSError: Stream is closed)")
