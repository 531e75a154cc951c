"""Fault corpus: the cluster environment (Dask Gateway, scheduler address, workers).

Each case runs a real ``cpc`` command in a fresh interpreter and states its exit code
(3: environment unavailable, 2: usage/configuration, 130: interrupted), a message fragment
(the address) and a data check: ``cpc submit`` always leaves a run.json with the status and
the reason, and nothing else is written (no data, no cube, no results, no ``runs/LATEST``).
The cases that start a gateway cluster or a worker take 10-30 s each: marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from distributed import Client, LocalCluster

from tests.faults.harness import CPC, ROOT, expect, run_cpc
from tests.gateway import connect, running_gateway

TINY = {"cities": ["Nice"], "start": "2019-03-16", "days": 2, "scale": 0.002, "seed": 1}


def _cfg(tmp_path: Path, **cluster) -> tuple[Path, Path]:
    out = tmp_path / "out"
    raw = {"synth": TINY, "estimate": {"min_hours": 24}, "output": {"dir": str(out)}}
    if cluster:
        raw["cluster"] = cluster
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def only_the_record(out: Path, status: str = "failed") -> dict:
    """The data check: run.json (top level and under runs/<id>/, the same) and nothing else."""
    written = sorted(p.name for p in out.iterdir())
    assert written == [".cpc-run.lock", "run.json", "runs"], written
    (rid,) = [p.name for p in (out / "runs").iterdir()]  # one record, no LATEST: nothing completed
    assert sorted(p.name for p in (out / "runs" / rid).iterdir()) == ["run.json"]
    run = json.loads((out / "run.json").read_text())
    assert run == json.loads((out / "runs" / rid / "run.json").read_text())
    assert run["run_id"] == rid and run["status"] == status, run.get("error")
    return run


def _no_gateway_env() -> dict:
    return {k: "" for k in os.environ if k.startswith("DASK_GATEWAY__")}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("gw-faults")) as info:
        yield info


def _clusters(info) -> list:
    with connect(info) as gw:
        return gw.list_clusters()


@pytest.fixture
def no_worker_scheduler():
    """A real scheduler with no worker (as an adaptive cluster that never scales up)."""
    with LocalCluster(n_workers=0, processes=True, host="127.0.0.1", dashboard_address=":0") as lc:
        yield lc


# -- unreachable or refusing ---------------------------------------------------------------

def test_unreachable_gateway(tmp_path):
    port = _closed_port()
    cfg, out = _cfg(tmp_path)
    env = {**_no_gateway_env(), "DASK_GATEWAY__ADDRESS": f"http://127.0.0.1:{port}"}
    t0 = time.monotonic()
    a = expect(run_cpc("submit", cfg, "--cluster", "gateway", env=env), 3,
               f"cannot reach Dask Gateway http://127.0.0.1:{port}", "Connection refused")
    assert time.monotonic() - t0 < 60
    assert len(a.err.strip().splitlines()[-1]) < 400
    run = only_the_record(out)
    assert f"http://127.0.0.1:{port}" in run["error"] and run["cluster"]["kind"] == "gateway"


@pytest.mark.slow
@pytest.mark.parametrize("through", ["environment", "config"])
def test_wrong_gateway_password(tmp_path, gateway, through):
    sentinel = "pw-WRONG-sentinel-7361"
    if through == "environment":
        env = {**gateway.env(), "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": sentinel}
        cfg, out = _cfg(tmp_path)
    else:
        env = {**_no_gateway_env(), "DASK_GATEWAY__PROXY_ADDRESS": gateway.proxy_address}
        cfg, out = _cfg(tmp_path, kind="gateway", address=gateway.address, auth="basic",
                        username=gateway.username, password=sentinel)
    a = expect(run_cpc("submit", cfg, "--cluster", "gateway", env=env), 3,
               f"Dask Gateway {gateway.address} refused the credentials (HTTP 401)")
    assert sentinel not in a.text
    run = only_the_record(out)
    assert "HTTP 401" in run["error"] and sentinel not in run["error"]
    if through == "environment":  # (the config's own dump is redacted by the secrets work)
        assert not [p for p in out.rglob("*") if p.is_file() and sentinel in p.read_text()]
    assert _clusters(gateway) == []


def test_closed_scheduler_port_fails_within_the_connect_timeout(tmp_path):
    port = _closed_port()
    cfg, out = _cfg(tmp_path, connect_timeout=2)
    t0 = time.monotonic()
    expect(run_cpc("submit", cfg, "--cluster", f"tcp://127.0.0.1:{port}"), 3,
           f"cannot reach the Dask scheduler at tcp://127.0.0.1:{port} within 2 s")
    assert time.monotonic() - t0 < 25  # interpreter start + 2 s, not distributed's 30 s default
    assert "within 2 s" in only_the_record(out)["error"]


@pytest.mark.parametrize("address", ["gateway.example.org:8000", "http://127.0.0.1:99999", "http://[::1",
                                     "https://user:pw-in-url@"])
def test_bad_gateway_address_syntax(tmp_path, address):
    cfg, out = _cfg(tmp_path, kind="gateway", address=address)
    a = expect(run_cpc("submit", cfg, env=_no_gateway_env()), 2, "cluster.address", "must be an http:// or https:// URL")
    assert "pw-in-url" not in a.text
    run = only_the_record(out)
    assert "pw-in-url" not in run["error"] and "must be an http://" in run["error"]


def test_bad_gateway_address_from_the_environment(tmp_path):
    cfg, out = _cfg(tmp_path)
    env = {**_no_gateway_env(), "DASK_GATEWAY__ADDRESS": "gateway-without-scheme:8000"}
    expect(run_cpc("submit", cfg, "--cluster", "gateway", env=env), 2, "DASK_GATEWAY__ADDRESS",
           "gateway-without-scheme:8000")
    only_the_record(out)


@pytest.mark.slow
def test_gateway_rejects_cluster_options(tmp_path, gateway):
    cfg, out = _cfg(tmp_path, kind="gateway", cluster_options={"no_such_option": 3})
    expect(run_cpc("submit", cfg, env=gateway.env()), 2, f"Dask Gateway {gateway.address} rejected",
           "cluster.cluster_options")
    only_the_record(out)
    assert _clusters(gateway) == []


# -- no worker ----------------------------------------------------------------------------

def test_no_worker_within_the_worker_timeout(tmp_path, no_worker_scheduler):
    addr = no_worker_scheduler.scheduler_address
    cfg, out = _cfg(tmp_path, worker_timeout=1)
    expect(run_cpc("submit", cfg, "--cluster", addr), 3,
           f"no Dask worker started within 1 s on Dask scheduler {addr} (synth stage)", "worker_timeout")
    # the synthetic geography is written on the driver before the first task: no traffic
    # file, no cube, no results, the record failed
    assert sorted(p.name for p in out.iterdir()) == [".cpc-run.lock", "data", "run.json", "runs"]
    assert not list((out / "data").rglob("*.txt")) and not (out / "runs/LATEST").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and "no Dask worker started" in run["error"]


@pytest.mark.slow
def test_gateway_worker_timeout_stops_the_cluster(tmp_path, gateway):
    """The gateway's adaptive cluster needs a few seconds to start a worker: a tiny timeout
    fails the run with the gateway's address, and the gateway cluster is stopped."""
    cfg, out = _cfg(tmp_path, worker_timeout=0.05)
    expect(run_cpc("submit", cfg, "--cluster", "gateway", env=gateway.env()), 3,
           f"no Dask worker started within 0.05 s on Dask Gateway {gateway.address}", "cluster_options")
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and not (out / "runs/LATEST").exists() and not (out / "communes.csv").exists()
    assert _clusters(gateway) == []


@pytest.mark.slow
def test_interrupted_while_waiting_for_a_worker(tmp_path, no_worker_scheduler):
    cfg, out = _cfg(tmp_path, worker_timeout=300)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([*CPC, "submit", str(cfg), "--cluster", no_worker_scheduler.scheduler_address],
                            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    err = ""
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / "data/geo").exists() and (out / "runs").exists():
            time.sleep(1.0)  # now waiting for a worker
            break
        time.sleep(0.1)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and not (out / "runs/LATEST").exists()


# -- a worker with another cpc ---------------------------------------------------------------

@pytest.mark.slow
def test_worker_with_another_cpc_version(tmp_path, no_worker_scheduler):
    """A real worker whose installed cpc is 9.9.9 (a distribution's metadata first on its
    PYTHONPATH, as an outdated worker image would have): the run stops at its first stage,
    naming both versions."""
    fake = tmp_path / "site"
    (fake / "cpc-9.9.9.dist-info").mkdir(parents=True)
    (fake / "cpc-9.9.9.dist-info/METADATA").write_text("Metadata-Version: 2.1\nName: cpc\nVersion: 9.9.9\n")
    addr = no_worker_scheduler.scheduler_address
    env = {**os.environ, "PYTHONPATH": f"{fake}{os.pathsep}{ROOT}"}
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", addr, "--nthreads", "1",
                               "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client(addr) as c:
            c.wait_for_workers(1, timeout=60)
        from importlib.metadata import version

        cfg, out = _cfg(tmp_path)
        expect(run_cpc("submit", cfg, "--cluster", addr), 3, "runs cpc 9.9.9",
               f"this driver cpc {version('cpc')}", f"install cpc=={version('cpc')}")
        run = json.loads((out / "run.json").read_text())
        assert run["status"] == "failed" and "cpc 9.9.9" in run["error"]
        assert not (out / "communes.csv").exists() and not (out / "runs/LATEST").exists()
        assert not list((out / "data").rglob("*.txt"))  # no task ran before the check
    finally:
        worker.terminate()
        worker.wait(30)


# -- the run id ------------------------------------------------------------------------------

@pytest.mark.parametrize("run_id", ["../outside", "a/b", "-starts-with-dash"])
def test_bad_run_id(tmp_path, run_id):
    cfg, out = _cfg(tmp_path)
    expect(run_cpc("submit", cfg, f"--run-id={run_id}", "--cluster", "tcp://127.0.0.1:9"), 2, "--run-id",
           "is not a run id")
    assert not out.exists() and not (tmp_path / "outside").exists()
