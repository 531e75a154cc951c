"""Object storage end to end, against a real S3 API (moto's standalone server, tests/s3.py).

A whole ``cpc run`` with every path on the bucket gives the same results as a local run and
writes nothing locally; a run through the local Dask Gateway reads and writes only the bucket,
with the credentials given in ``storage.options`` (none in the environment of the workers).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cpc_core import storage
from tests.gateway import running_gateway
from tests.s3 import running_s3, upload_tree

ROOT = Path(__file__).resolve().parents[1]
CPC = [sys.executable, "-m", "jobs.cli"]
#: the outputs compared between a local and a cloud run, byte for byte
RESULTS = ("communes.csv", "rho_by_lag.csv", "estimates_by_lag.csv", "profiles.csv", "poi_counts.csv")


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with running_s3(tmp_path_factory.mktemp("moto")) as info:
        yield info


@pytest.fixture(scope="module")
def bucket_data(s3, synth_tree):
    """The small synthetic tree (NetMob files, tile grids, areas, POIs, covariates) on a bucket."""
    fs = s3.fs()
    fs.mkdir("cpc-in")
    upload_tree(fs, synth_tree, "s3://cpc-in/data")
    return "s3://cpc-in/data"


def config(base: str, out: str, store: str | None = None, **sections) -> dict:
    """A run configuration reading everything under ``base`` and writing to ``out``."""
    j = partial(storage.join, base)
    raw = {"input": {"netmob": j("netmob")},
           "areas": {"source": "file", "path": j("geo", "communes.gpkg"),
                     "tiles": "{netmob}/{city}/{city}.geojson"},
           "poi": {"path": j("covariates", "poi.csv")},
           "estimate": {"min_hours": 48},
           "validation": {"covariates": [j("covariates", "communes.csv")],
                          "search_interest": j("covariates", "search_interest.csv"),
                          "geo": {"path": j("geo", "communes.gpkg")},
                          "figures": {"formats": ["png"]}},
           "cluster": {"kind": "local", "n_workers": 2, "threads_per_worker": 1},
           "output": {"dir": out}}
    if store:
        raw["ingest"] = {"store": store}
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    return raw


def run(cfg: dict, cfg_dir: Path, env: dict, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    path = cfg_dir / f"cfg-{len(list(cfg_dir.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    full = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    full.update({"PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}, **env)
    return subprocess.run([*CPC, "run", str(path), *extra], env=full, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory, synth_tree):
    """The same run on local files: the results the cloud runs must reproduce."""
    d = tmp_path_factory.mktemp("local")
    proc = run(config(str(synth_tree), str(d / "out")), d, {}, d)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return d / "out"


def listing(*dirs: Path) -> dict[str, list[str]]:
    return {str(d): sorted(str(p.relative_to(d)) for p in d.rglob("*")) for d in dirs}


def read_object(s3, url: str) -> bytes:
    return s3.fs().cat_file(url.removeprefix("s3://"))


# --------------------------------------------------------------------------------------------
# The storage module on a real S3 API (fast)
# --------------------------------------------------------------------------------------------


def test_join_scheme_and_remote_path(s3, monkeypatch):
    assert storage.join("s3://b/results/", "cube.zarr") == "s3://b/results/cube.zarr"
    assert storage.join("/tmp/x", "a", "b") == str(Path("/tmp/x/a/b"))
    assert storage.join("file:///tmp/x", "a") == "/tmp/x/a"
    assert storage.is_remote("gs://b/x") and not storage.is_remote("file:///x") and not storage.is_remote("x")
    assert isinstance(storage.path("/tmp/x"), Path) and isinstance(storage.path("file:///tmp/x"), Path)
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    fs = s3.fs()
    fs.mkdir("unit")
    p = storage.path("s3://unit/folder") / "a.txt"
    assert not p.exists()
    p.parent.mkdir(parents=True, exist_ok=True)  # no folder, and no bucket created
    p.write_text("héllo")
    assert fs.cat_file("unit/folder/a.txt") == "héllo".encode()
    assert p.read_text() == "héllo" and p.exists() and p.name == "a.txt" and p.suffix == ".txt"
    pd.DataFrame({"x": [1, 2]}).to_csv(p.with_name("t.csv"), index=False)  # pandas through fsspec
    assert fs.cat_file("unit/folder/t.csv") == b"x\n1\n2\n"
    assert sorted(q.name for q in p.parent.iterdir()) == ["a.txt", "t.csv"]
    p.unlink()
    assert not fs.exists("unit/folder/a.txt")
    storage.path("s3://never-made/x").mkdir(parents=True, exist_ok=True)
    assert not fs.exists("never-made")


def test_fingerprint_of_an_object_follows_its_content(s3, monkeypatch):
    from jobs import _cache

    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    fs = s3.fs()
    fs.mkdir("fp-bucket")
    fs.pipe_file("fp-bucket/a.csv", b"1\n")
    first = _cache.file_fingerprint("s3://fp-bucket/a.csv")
    fs.pipe_file("fp-bucket/a.csv", b"2\n")
    assert _cache.file_fingerprint("s3://fp-bucket/a.csv") != first  # the stage cache is not fooled
    assert first["size"] == 2 and first["path"] == "s3://fp-bucket/a.csv"


# --------------------------------------------------------------------------------------------
# Whole runs
# --------------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_whole_run_on_the_bucket_matches_local_and_writes_nothing_locally(s3, bucket_data, local_reference,
                                                                          tmp_path):
    s3.fs().mkdir("cpc-out")
    cwd, home, tmp, scratch, cfg_dir = (tmp_path / n for n in ("cwd", "home", "tmp", "scratch", "cfg"))
    for d in (cwd, home, tmp, scratch, cfg_dir):
        d.mkdir()
    env = {**s3.env(), "HOME": str(home), "TMPDIR": str(tmp), "XDG_CACHE_HOME": str(home / ".cache"),
           # the Dask workers' spill space and matplotlib's font cache: put where checked apart
           "DASK_TEMPORARY_DIRECTORY": str(scratch), "MPLCONFIGDIR": str(scratch / "mpl")}
    env.pop("CPC_CACHE_DIR", None)
    before = listing(cwd, home, tmp)
    proc = run(config(bucket_data, "s3://cpc-out/results", store="s3://cpc-out/cube.zarr"), cfg_dir, env, cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert listing(cwd, home, tmp) == before  # nothing of the run written locally
    for name in RESULTS:
        assert read_object(s3, f"s3://cpc-out/results/{name}") == (local_reference / name).read_bytes(), name
    record = json.loads(read_object(s3, "s3://cpc-out/results/run.json"))
    assert record["status"] == "ok"
    fs = s3.fs()
    # the stage cache, the internal series, the report and the QC reports are on the bucket
    assert fs.find("cpc-out/results/internal/cache")
    assert fs.exists("cpc-out/results/internal/hourly.zarr/zarr.json")
    assert fs.exists("cpc-out/results/validation/report.html")
    assert fs.glob("cpc-out/results/reports/ingest-*.json")
    assert fs.exists("cpc-out/cube.zarr/zarr.json")
    # the lock markers are gone once the run is over
    assert not [p for p in fs.find("cpc-out") if p.endswith(".lock")]

    # a re-run takes every stage from the bucket's cache
    proc = run(config(bucket_data, "s3://cpc-out/results", store="s3://cpc-out/cube.zarr"), cfg_dir, env, cwd)
    assert proc.returncode == 0, proc.stderr[-4000:]
    stages = json.loads(read_object(s3, "s3://cpc-out/results/run.json"))["stages"]
    assert stages["rollup"]["cached"] and all(v["cached"] for k, v in stages.items() if k.startswith("crosswalk"))
    assert listing(cwd, home, tmp) == before
    got = pd.read_csv(io.BytesIO(read_object(s3, "s3://cpc-out/results/communes.csv")))
    assert len(got) == len(pd.read_csv(local_reference / "communes.csv"))


@pytest.mark.integration
@pytest.mark.slow
def test_run_through_the_gateway_reads_and_writes_only_the_bucket(s3, bucket_data, local_reference, tmp_path,
                                                                 monkeypatch):
    """Credentials in ``storage.options`` only: the gateway's workers have no AWS_* variables,
    so the bucket is reachable from them only through the options cpc installs on them."""
    s3.fs().mkdir("cpc-gw")
    cwd, cfg_dir = tmp_path / "cwd", tmp_path / "cfg"
    cwd.mkdir()
    cfg_dir.mkdir()
    opts = {"key": s3.key, "secret": s3.secret, "endpoint_url": s3.endpoint}
    cfg = config(bucket_data, "s3://cpc-gw/results", store="s3://cpc-gw/cube.zarr", storage={"options": opts},
                 cluster={"kind": "gateway", "workers": 2})
    del cfg["cluster"]["n_workers"], cfg["cluster"]["threads_per_worker"]
    for k in list(os.environ):  # the gateway (and so its workers) starts without any AWS setting
        if k.startswith("AWS_") and k != "AWS_CA_BUNDLE":
            monkeypatch.delenv(k)
    (tmp_path / "gw").mkdir()
    with running_gateway(tmp_path / "gw") as gw:
        before = listing(cwd)
        proc = run(cfg, cfg_dir, {**gw.env(), "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull},
                   cwd, "--cluster", "gateway")
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert listing(cwd) == before
    for name in RESULTS:
        assert read_object(s3, f"s3://cpc-gw/results/{name}") == (local_reference / name).read_bytes(), name
    record = json.loads(read_object(s3, "s3://cpc-gw/results/run.json"))
    assert record["status"] == "ok" and record["cluster"]["scheduler"].startswith("gateway://")
    assert s3.secret not in json.dumps(record)


@pytest.mark.slow
@pytest.mark.integration
def test_ingest_qc_report_goes_next_to_a_bucket_store(s3, synth_tree, tmp_path):
    """``cpc ingest`` into a store on the bucket: the QC report lands at ``<store>.reports/``
    on the bucket (it went to ./ingest-reports before), and the counts it gives are the files'."""
    s3.fs().mkdir("cpc-qc")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(s3.env(), PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    proc = subprocess.run([*CPC, "ingest", "--input", str(synth_tree / "netmob"), "--store", "s3://cpc-qc/cube.zarr",
                           "--cities", "Lyon", "--services", "Tor"], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list(cwd.iterdir()) == []
    fs = s3.fs()
    reports = fs.glob("cpc-qc/cube.zarr.reports/ingest-*.json")
    assert len(reports) == 1 and fs.glob("cpc-qc/cube.zarr.reports/rejected-*.csv")
    qc = json.loads(fs.cat_file(reports[0]))
    # independent count: the values of the Lyon Tor files (tile id + one value per slot)
    files = sorted((synth_tree / "netmob" / "Lyon" / "Tor").rglob("*.txt"))
    n_values = sum(len(line.split()) - 1 for f in files for line in f.read_text().splitlines() if line.strip())
    assert qc["values_stored"] + qc["values_rejected"] == n_values and qc["values_rejected"] == 0
