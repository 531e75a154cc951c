"""Running at scale: the CLI's batch commands, bad configs, a killed worker, an interrupted
job that resumes, two runs on one store, and a whole run through a real Dask Gateway."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from distributed import Client, LocalCluster

from cluster import ClusterSpec, get_client
from cpc_core.config.core import parse_config
from cpc_core.cube import store
from jobs.cli import main
from jobs.pipeline import run_pipeline
from tests.gateway import running_gateway

# big enough that ingest takes a few seconds (so it can be interrupted), small enough for CI
SYNTH = {"cities": ["Lyon", "Nice", "Toulouse"], "start": "2019-03-16", "days": 24, "scale": 0.004, "seed": 21}
CPC = [sys.executable, "-m", "jobs.cli"]
ROOT = Path(__file__).resolve().parents[2]


def write_cfg(path: Path, out: Path, data: Path | None = None, **sections) -> Path:
    raw: dict = {"output": {"dir": str(out)}, "estimate": {"min_hours": 48}}
    if data is None:
        raw["synth"] = SYNTH
    else:  # reuse generated data: read it as a user would read real files
        raw["input"] = {"netmob": str(data / "netmob")}
        raw["areas"] = {"source": "file", "path": str(data / "geo/communes.gpkg")}
        raw["poi"] = {"path": str(data / "covariates/poi.csv")}
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory, client):
    """An undisturbed run: generated data plus its outputs."""
    out = tmp_path_factory.mktemp("ref")
    cfg = write_cfg(out / "cfg.yaml", out)
    run_pipeline(parse_config(yaml.safe_load(cfg.read_text())), client)
    return out


def same_outputs(a: Path, b: Path):
    for f in ("communes.csv", "rho_by_lag.csv", "estimates_by_lag.csv"):
        x = pd.read_csv(a / f).sort_values(list(pd.read_csv(a / f).columns[:2])).reset_index(drop=True)
        y = pd.read_csv(b / f).sort_values(list(pd.read_csv(b / f).columns[:2])).reset_index(drop=True)
        pd.testing.assert_frame_equal(x, y, check_exact=False, rtol=1e-6)


def run_env(extra: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    env.update(extra or {})
    return env


def test_help_and_config_errors_do_not_start_the_heavy_machinery(tmp_path):
    """`cpc --help` and a bad config answer without importing distributed, the statistics,
    matplotlib or numba (they cost ~2 s of start-up before)."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"estimate": {"lag": 2}}))
    probe = ("import sys; from jobs.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "heavy = ('distributed', 'statsmodels', 'scipy.stats', 'matplotlib', 'numba', 'jobs.validate')\n"
             "print(sorted(m for m in heavy if m in sys.modules))")
    for args in (["--help"], ["validate", "--help"], ["run", str(cfg)]):
        out = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[2], check=True)
        assert out.stdout.strip().splitlines()[-1] == "[]", (args, out.stdout[-300:], out.stderr[-300:])


def test_commands_keep_distributed_quiet_unless_asked(tmp_path):
    """distributed's start-up chatter (INFO) stays out of a command's log without -vv, also
    now that it is imported only when a command starts its cluster."""
    args = [*CPC, "synth", "--out", str(tmp_path / "d"), "--cities", "Nice", "--days", "1", "--scale", "0.002"]
    out = subprocess.run(args, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], check=True)
    assert "INFO jobs.synth" in out.stderr  # the command's own log is there
    assert "INFO distributed." not in out.stderr, out.stderr[-1500:]


def test_bad_config_names_key_before_any_work(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"input": {"netmob": str(tmp_path)}, "estimate": {"lag": 2},
                                   "ingest": {"on_error": "skip"}}))
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "estimate.lag: unknown key" in err
    assert "ingest.on_error" in err and "'fail' or 'quarantine'" in err
    assert not (tmp_path / "cpc-output").exists()  # nothing started
    assert main(["run", str(cfg), "--set", "estimate"]) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_submit_writes_run_json(reference, tmp_path, client, capsys):
    cfg = write_cfg(tmp_path / "c.yaml", tmp_path / "out", data=reference / "data")
    assert main(["submit", str(cfg), "--cluster", client.scheduler.address, "--run-id", "ci-42"]) == 0
    run = json.loads((tmp_path / "out/run.json").read_text())
    assert run["run_id"] == "ci-42" and run["status"] == "ok"
    assert run["package_versions"]["dask"] and run["cluster"]["workers"] == 2
    assert set(run["inputs"]) >= {"store", "areas"} and run["config_hash"]
    assert all("seconds" in s and "cached" in s for s in run["stages"].values())
    same_outputs(reference, tmp_path / "out")


def test_submit_failure_is_nonzero_and_recorded(tmp_path, client):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"input": {"netmob": str(tmp_path / "absent")},
                                   "areas": {"source": "file", "path": str(tmp_path / "a.gpkg")},
                                   "output": {"dir": str(tmp_path / "out")}}))
    assert main(["submit", str(cfg), "--cluster", client.scheduler.address]) == 2
    run = json.loads((tmp_path / "out/run.json").read_text())
    assert run["status"] == "failed" and "does not exist" in run["error"]


def _kill_one_worker_when(client: Client, ready, done: threading.Event, killed: list):
    while not done.is_set():
        if ready():
            pids = client.run(os.getpid)
            addr, pid = sorted(pids.items())[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(addr)
            return
        time.sleep(0.05)


def _n_done(store_path: str) -> int:
    try:
        import zarr

        g = zarr.open_group(store_path, mode="r")
        return int(sum((g[f"{c}/DL_status"][:] == 1).sum() for c in g.group_keys()))
    except Exception:
        return 0


@pytest.mark.integration
def test_worker_killed_mid_run_gives_identical_outputs(reference, tmp_path):
    cfg_path = write_cfg(tmp_path / "c.yaml", tmp_path / "out", data=reference / "data")
    cfg = parse_config(yaml.safe_load(cfg_path.read_text()))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            Client(lc) as c:
        done, killed = threading.Event(), []
        t = threading.Thread(target=_kill_one_worker_when,
                             args=(c, lambda: _n_done(cfg.store_path) >= 20, done, killed))
        t.start()
        try:
            run_pipeline(cfg, c)
        finally:
            done.set()
            t.join()
    assert killed, "the worker was not killed during the run"
    same_outputs(reference, tmp_path / "out")


def _interrupt_when_ingesting(cmd, env, store_path, min_done=15) -> int:
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and _n_done(store_path) < min_done:
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    return _n_done(store_path)


@pytest.mark.integration
def test_sigterm_mid_stage_then_resume(reference, tmp_path, client):
    cfg_path = write_cfg(tmp_path / "c.yaml", tmp_path / "out", data=reference / "data")
    store_path = str(tmp_path / "out/cube.zarr")
    n_before = _interrupt_when_ingesting([*CPC, "run", str(cfg_path), "--cluster", "local"], run_env(), store_path)
    run = json.loads((tmp_path / "out/run.json").read_text())
    assert run["status"] == "interrupted"
    total = 3 * 3 * 24
    assert 0 < n_before < total
    res = run_pipeline(parse_config(yaml.safe_load(cfg_path.read_text())), client)
    st = res["run"]["stages"]["ingest"]
    assert st["skipped_complete"] >= n_before and st["skipped_complete"] + st["files_done"] == total
    same_outputs(reference, tmp_path / "out")


@pytest.mark.integration
def test_two_ingests_on_one_store_at_once(reference, tmp_path):
    store_path = str(tmp_path / "cube.zarr")
    cmd = [*CPC, "ingest", "--input", str(reference / "data/netmob"), "--store", store_path,
           "--cluster", "local"]
    procs = [subprocess.Popen(cmd, env=run_env(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1500:] for o in outs]
    ref = str(reference / "cube.zarr")
    for city in SYNTH["cities"]:
        a = store.open_cube(store_path, city).load()
        b = store.open_cube(ref, city).load()
        np.testing.assert_array_equal(a["DL"].values, b["DL"].values)
        assert (a["DL_status"].values == 1).all()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    with running_gateway(tmp_path_factory.mktemp("gw")) as info:
        yield info


@pytest.mark.integration
def test_whole_run_through_gateway_matches_local(reference, tmp_path, gateway):
    cfg_path = write_cfg(tmp_path / "c.yaml", tmp_path / "out", data=reference / "data")
    spec = ClusterSpec(kind="gateway", address=gateway.address, proxy_address=gateway.proxy_address,
                       auth="basic", username=gateway.username, password=gateway.password, workers=2)
    with get_client(spec) as c:
        done, killed = threading.Event(), []
        t = threading.Thread(target=_kill_one_worker_when,
                             args=(c, lambda: _n_done(str(tmp_path / "out/cube.zarr")) >= 20, done, killed))
        t.start()  # a worker killed mid-run on the gateway as well
        try:
            run_pipeline(parse_config(yaml.safe_load(cfg_path.read_text())), c)
        finally:
            done.set()  # a kill after the run has finished would prove nothing: stop looking
            t.join()
    assert killed, "the worker was not killed during the run"
    same_outputs(reference, tmp_path / "out")


@pytest.mark.slow
@pytest.mark.integration
def test_interrupted_gateway_run_resumes(reference, tmp_path, gateway):
    cfg_path = write_cfg(tmp_path / "c.yaml", tmp_path / "out", data=reference / "data")
    store_path = str(tmp_path / "out/cube.zarr")
    env = run_env(gateway.env())
    n_before = _interrupt_when_ingesting([*CPC, "run", str(cfg_path), "--cluster", "gateway"], env, store_path)
    assert n_before > 0
    proc = subprocess.run([*CPC, "submit", str(cfg_path), "--cluster", "gateway"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads((tmp_path / "out/run.json").read_text())
    assert run["stages"]["ingest"]["skipped_complete"] >= n_before
    same_outputs(reference, tmp_path / "out")


def test_sweep_compares_grids_and_lags(reference, tmp_path, client):
    cfg = write_cfg(tmp_path / "c.yaml", tmp_path / "out", data=reference / "data",
                    ingest={"store": str(reference / "cube.zarr")})
    outcome = reference / "data/covariates/communes.csv"
    assert main(["sweep", str(cfg), "--lags", "0", "2", "--grids", "communes", "square:2000",
                 "--outcome", str(outcome), "--cluster", client.scheduler.address]) == 0
    comp = pd.read_csv(tmp_path / "out/sweep/comparison.csv")
    assert sorted(zip(comp["grid"], comp["lag_h"], strict=True)) == [
        ("communes", 0), ("communes", 2), ("square:2000", 0), ("square:2000", 2)]
    ref = pd.read_csv(reference / "rho_by_lag.csv")
    row = comp[(comp["grid"] == "communes") & (comp["lag_h"] == 2)].iloc[0]
    r2 = ref.loc[ref["lag_h"] == 2, "rho"]
    assert row["n_areas"] == len(r2) and row["rho_median"] == pytest.approx(r2.median())
    # Spearman of the outcome with log cpc per 1000, recomputed by hand
    est = pd.read_csv(reference / "estimates_by_lag.csv")
    e = est[est["lag_h"] == 2].set_index("commune")["cpc_per_1000"]
    y = pd.read_csv(outcome).set_index("commune")["sexual_violence_per_1000"].reindex(e.index)
    ok = y.notna() & (e > 0)
    from scipy.stats import spearmanr

    assert row["spearman_cpc"] == pytest.approx(spearmanr(np.log(e[ok]), y[ok]).statistic)
    sq = comp[comp["grid"] == "square:2000"]
    assert sq["spearman_cpc"].isna().all()  # no outcome for square cells
    assert (tmp_path / "out/sweep/comparison.png").stat().st_size > 1000
    # the sweep never re-ingested: the shared cube was complete
    run = json.loads((tmp_path / "out/sweep/square_2000/run.json").read_text())
    assert run["stages"]["ingest"]["files_done"] == 0


# -- from zero workers: the gateway's default adaptive cluster, and adapt_minimum 0 ----------

TINY = {"cities": ["Nice"], "start": "2019-03-16", "days": 3, "scale": 0.002, "seed": 5, "lag_h": 1}


def _tiny_cfg(path: Path, out: Path, **cluster) -> Path:
    raw = {"synth": TINY, "estimate": {"min_hours": 24}, "output": {"dir": str(out)}}
    if cluster:
        raw["cluster"] = cluster
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def tiny_local(tmp_path_factory, client):
    """The tiny configuration run on the local test cluster: the reference of the gateway runs."""
    out = tmp_path_factory.mktemp("tiny-local")
    run_pipeline(parse_config(yaml.safe_load(_tiny_cfg(out / "c.yaml", out).read_text())), client)
    return out


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("cluster", [{}, {"adapt_minimum": 0}], ids=["gateway-defaults", "adapt-minimum-0"])
def test_run_through_gateway_from_zero_workers(tiny_local, tmp_path, gateway, cluster):
    """`cpc run --cluster gateway` on a cluster that starts with no worker (adaptive from 0, the
    gateway's default; and adapt_minimum 0): every stage submits first, the scaler adds
    workers, the results equal a local run's. Before: synth's broadcast scatter raised "No
    valid workers found" after 30 s."""
    cfg = _tiny_cfg(tmp_path / "c.yaml", tmp_path / "out", kind="gateway", **cluster)
    proc = subprocess.run([*CPC, "run", str(cfg), "--cluster", "gateway"], env=run_env(gateway.env()), cwd=ROOT,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "waiting for a first Dask worker on Dask Gateway" in proc.stderr  # it did start from zero
    run = json.loads((tmp_path / "out/run.json").read_text())
    assert run["status"] == "ok" and run["cluster"]["kind"] == "gateway"
    assert run["cluster"]["workers"] == 0  # what the record saw when the run started
    a = pd.read_csv(tiny_local / "communes.csv").sort_values("commune").reset_index(drop=True)
    b = pd.read_csv(tmp_path / "out/communes.csv").sort_values("commune").reset_index(drop=True)
    assert len(a) >= 3
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9)


# -- run records: results are never silently overwritten -----------------------------------

def _stage_facts(run: dict) -> dict:
    return {k: (v["cached"], v.get("files_done")) for k, v in run["stages"].items() if k in ("synth", "ingest", "rollup")}


def test_runs_keep_every_record_and_the_top_level_holds_the_latest(tiny_local, tmp_path, client, caplog):
    """Two runs with different lags on one output folder: both records and results are kept
    under runs/<id>/, the top level and runs/LATEST are the second's, the log names the run
    replaced and where it is kept; a re-run of the same configuration redoes no work."""
    out = tmp_path / "out"
    raw = yaml.safe_load(_tiny_cfg(tmp_path / "c.yaml", out).read_text())
    first = run_pipeline(parse_config(raw), client, run_id="lag-a")
    raw["estimate"]["lag_h"] = 3
    caplog.set_level("INFO", logger="jobs.pipeline")
    second = run_pipeline(parse_config(raw), client, run_id="lag-b")
    assert first["run"]["config_hash"] != second["run"]["config_hash"]
    assert "differs from run lag-a's" in caplog.text and str(out / "runs/lag-a") in caplog.text
    runs = out / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["LATEST", "lag-a", "lag-b"]
    assert (runs / "LATEST").read_text().strip() == "lag-b"
    for rid, lag in (("lag-a", 0), ("lag-b", 3)):
        rec = json.loads((runs / rid / "run.json").read_text())
        assert rec["run_id"] == rid and rec["status"] == "ok" and rec["config"]["estimate"]["lag_h"] == lag
        for name in ("communes.csv", "rho_by_lag.csv", "estimates_by_lag.csv", "validation/report.html"):
            assert (runs / rid / name).is_file(), (rid, name)
    # the kept results are each run's own: lag-a's equal the local reference run (same config)
    pd.testing.assert_frame_equal(pd.read_csv(runs / "lag-a/communes.csv"), pd.read_csv(tiny_local / "communes.csv"))
    a, b = pd.read_csv(runs / "lag-a/communes.csv"), pd.read_csv(runs / "lag-b/communes.csv")
    assert not np.allclose(a["rho"], b["rho"], equal_nan=True)  # another lag, other correlations
    # the top level is the second run, byte for byte
    for name in ("communes.csv", "rho_by_lag.csv", "estimates_by_lag.csv", "run.json"):
        assert (out / name).read_bytes() == (runs / "lag-b" / name).read_bytes(), name
    top = json.loads((out / "run.json").read_text())
    assert top["run_id"] == "lag-b" and top["kept"] and "communes.csv" in top["kept"]

    caplog.clear()
    third = run_pipeline(parse_config(raw), client, run_id="lag-b-again")
    assert "same configuration as run lag-b" in caplog.text
    assert _stage_facts(third["run"]) == {"synth": (True, None), "ingest": (False, 0), "rollup": (True, None)}
    assert (runs / "LATEST").read_text().strip() == "lag-b-again"
    pd.testing.assert_frame_equal(pd.read_csv(out / "communes.csv"), b)


def test_run_ids_are_checked_and_never_reused(tmp_path, client, capsys):
    out = tmp_path / "out"
    cfg = _tiny_cfg(tmp_path / "c.yaml", out)
    (out / "runs/taken").mkdir(parents=True)
    (out / "runs/taken/run.json").write_text('{"run_id": "taken"}')
    for bad in ("../escape", "a/b", "", "x" * 101):
        assert main(["submit", str(cfg), "--run-id", bad, "--cluster", client.scheduler.address]) == 2
        assert "--run-id" in capsys.readouterr().err
    assert main(["submit", str(cfg), "--run-id", "taken", "--cluster", client.scheduler.address]) == 2
    assert "already has a record" in capsys.readouterr().err
    assert (out / "runs/taken/run.json").read_text() == '{"run_id": "taken"}'
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["taken"] and not (tmp_path / "escape").exists()


def test_results_written_before_run_records_are_kept(tiny_local, tmp_path, client, caplog):
    """A folder from before run records existed (top-level results and run.json only): a
    new run with another configuration first copies them under runs/<their id>/."""
    out = tmp_path / "out"
    shutil.copytree(tiny_local, out, ignore=shutil.ignore_patterns("runs", "data", "cube.zarr*", "internal"))
    old_id = json.loads((out / "run.json").read_text())["run_id"]
    old = pd.read_csv(out / "communes.csv")
    raw = yaml.safe_load(_tiny_cfg(tmp_path / "c.yaml", out).read_text())
    raw["estimate"]["lag_h"] = 2
    caplog.set_level("INFO", logger="jobs.pipeline")
    run_pipeline(parse_config(raw), client, run_id="new")
    assert f"results of run {old_id}" in caplog.text
    pd.testing.assert_frame_equal(pd.read_csv(out / f"runs/{old_id}/communes.csv"), old)
    assert json.loads((out / f"runs/{old_id}/run.json").read_text())["run_id"] == old_id
    assert (out / "runs/LATEST").read_text().strip() == "new"
