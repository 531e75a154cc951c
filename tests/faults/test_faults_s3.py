"""Fault corpus: object storage and the geometry files (helper s3).

Each case runs a real ``cpc run`` (tests/faults/harness.py) against a real S3 API (moto's
standalone server with IAM enforced, tests/s3.py) or local files, and states the exit code, a
fragment of the one-line message and a data check: nothing written where it must not be, the
record of the run says what failed, no secret echoed.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import partial
from pathlib import Path

import pytest
import yaml

from cpc_core import storage
from tests.faults.harness import expect, run_cpc
from tests.s3 import running_s3, upload_tree

SENTINEL = "SeNtInEl-s3cr3t-7f3a"


@pytest.fixture(autouse=True)
def _no_aws_settings_of_the_user(monkeypatch):
    """Each case gives its own AWS_* settings: none of the environment's leak in."""
    for k in list(os.environ):
        if k.startswith("AWS_") and k != "AWS_CA_BUNDLE":
            monkeypatch.delenv(k)


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with running_s3(tmp_path_factory.mktemp("moto")) as info:
        fs = info.fs()
        fs.mkdir("cpc-in")
        fs.mkdir("cpc-out")
        yield info


@pytest.fixture(scope="module")
def bucket_data(s3, synth_tree):
    upload_tree(s3.fs(), synth_tree, "s3://cpc-in/data")
    return "s3://cpc-in/data"


def cfg_for(base: str, out: str, **sections) -> dict:
    j = partial(storage.join, base)
    raw = {"input": {"netmob": j("netmob")},
           "areas": {"source": "file", "path": j("geo", "communes.gpkg")},
           "poi": {"path": j("covariates", "poi.csv")},
           "estimate": {"min_hours": 48},
           "validation": {"figures": {"enabled": False}, "report": False},
           "cluster": {"kind": "local", "n_workers": 1, "threads_per_worker": 2},
           "output": {"dir": out}}
    for k, v in sections.items():
        if isinstance(v, dict):
            raw.setdefault(k, {}).update(v)
        else:
            raw[k] = v
    return raw


def cpc_run(tmp_path: Path, cfg: dict, env: dict | None = None, aws: dict | None = None):
    """``cpc run`` with ``cfg`` from an empty working directory; only ``aws`` as AWS_* variables."""
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    full = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}
    full.update(aws or {})
    full.update(env or {})
    return run_cpc("run", str(path), env=full, cwd=cwd, timeout=400), cwd


def objects(s3, prefix: str) -> list[str]:
    fs = s3.fs()
    return sorted(fs.find(prefix)) if fs.exists(prefix) else []


# --------------------------------------------------------------------------------------------
# Storage: environment (exit 3) and configuration (exit 2)
# --------------------------------------------------------------------------------------------


def test_missing_bucket_is_environment_naming_the_url(s3, bucket_data, tmp_path):
    ans, cwd = cpc_run(tmp_path, cfg_for(bucket_data, "s3://no-such-bucket/results"), aws=s3.env())
    expect(ans, 3, "s3://no-such-bucket/results", "bucket s3://no-such-bucket does not exist")
    assert not s3.fs().exists("no-such-bucket")  # never created behind the user's back
    assert list(cwd.iterdir()) == []  # and no local folder named 's3:'


@pytest.mark.parametrize("where", ["environment", "storage.options"])
def test_wrong_credentials_are_environment_and_never_echoed(s3, bucket_data, tmp_path, where):
    before = objects(s3, "cpc-out")
    if where == "environment":
        aws = {**s3.env(), "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG0", "AWS_SECRET_ACCESS_KEY": SENTINEL}
        cfg = cfg_for(bucket_data, "s3://cpc-out/wrong")
    else:
        aws = {"AWS_ENDPOINT_URL": s3.endpoint}
        cfg = cfg_for(bucket_data, "s3://cpc-out/wrong",
                      storage={"options": {"key": "AKIAWRONGWRONGWRONG0", "secret": SENTINEL}})
    ans, _ = cpc_run(tmp_path, cfg, aws=aws)
    expect(ans, 3, "access denied", "check the credentials")
    assert SENTINEL not in ans.text
    assert objects(s3, "cpc-out") == before  # nothing written


def test_unreachable_endpoint_is_environment(bucket_data, s3, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    aws = {**s3.env(), "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    ans, cwd = cpc_run(tmp_path, cfg_for(bucket_data, "s3://cpc-out/unreachable"), aws=aws)
    expect(ans, 3, "cannot be reached", "AWS_ENDPOINT_URL")
    assert list(cwd.iterdir()) == []
    assert objects(s3, "cpc-out/unreachable") == []


def test_read_only_output_prefix_is_environment(s3, bucket_data, tmp_path):
    before = objects(s3, "cpc-out")
    ans, _ = cpc_run(tmp_path, cfg_for(bucket_data, "s3://cpc-out/readonly"), aws=s3.env(read_only=True))
    expect(ans, 3, "s3://cpc-out/readonly", "access denied")
    assert objects(s3, "cpc-out") == before


@pytest.mark.parametrize("key", ["areas.path", "input.netmob"])
def test_missing_configured_object_is_usage_naming_the_key(s3, bucket_data, tmp_path, key):
    section, name = key.split(".")
    missing = f"{bucket_data}/nothing-here/{'communes.gpkg' if name == 'path' else 'netmob'}"
    cfg = cfg_for(bucket_data, "s3://cpc-out/missing", **{section: {name: missing}})
    ans, _ = cpc_run(tmp_path, cfg, aws=s3.env())
    expect(ans, 2, key, missing, "not found")
    assert objects(s3, "cpc-out/missing") == []  # refused before anything was written


def test_missing_tile_grid_object_is_usage_naming_the_key_and_city(s3, bucket_data, tmp_path):
    # the store and outputs local: the grid is looked for beside a (quick) local ingest
    cfg = cfg_for(bucket_data, str(tmp_path / "out"), areas={"tiles": bucket_data + "/grids/{city}.geojson"})
    ans, _ = cpc_run(tmp_path, cfg, aws=s3.env())
    expect(ans, 2, "areas.tiles", "Lyon", f"{bucket_data}/grids/Lyon.geojson")
    assert not (tmp_path / "out" / "communes.csv").exists()
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("url", ["foo://bucket/results", "hdfs://namenode/results"])
def test_unknown_url_scheme_is_usage(bucket_data, s3, tmp_path, url):
    ans, cwd = cpc_run(tmp_path, cfg_for(bucket_data, url), aws=s3.env())
    expect(ans, 2, "output.dir", f"unknown URL scheme '{url.split('://')[0]}://'", "s3://")
    assert list(cwd.iterdir()) == []  # no local folder 'foo:'


def test_scheme_without_its_package_is_environment(bucket_data, s3, tmp_path):
    pytest.importorskip("s3fs")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - the case needs gcsfs absent
        pytest.skip("gcsfs is installed")
    ans, cwd = cpc_run(tmp_path, cfg_for(bucket_data, "gs://some-bucket/results"), aws=s3.env())
    expect(ans, 3, "gs://some-bucket/results", "pip install gcsfs")
    assert list(cwd.iterdir()) == []


# --------------------------------------------------------------------------------------------
# Geometry files: bad data (exit 1), local and on the bucket
# --------------------------------------------------------------------------------------------


def _truncate(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _shift_ids(data: bytes) -> bytes:
    doc = json.loads(data)
    for f in doc["features"]:
        f["properties"]["tile_id"] += 7  # overlaps the data's ids, but not all of them
    return json.dumps(doc).encode()


def _setup(where: str, s3, synth_tree: Path, tmp_path: Path, tag: str, change) -> tuple[dict, str, dict]:
    """The small tree with Lyon's tile grid changed by ``change``; local or on the bucket."""
    if where == "local":
        base = tmp_path / "data"
        shutil.copytree(synth_tree, base)
        grid = base / "netmob" / "Lyon" / "Lyon.geojson"
        grid.write_bytes(change(grid.read_bytes()))
        return cfg_for(str(base), str(tmp_path / "out")), str(grid), {}
    base = f"s3://cpc-in/{tag}"
    fs = s3.fs()
    upload_tree(fs, synth_tree, base)
    key = f"cpc-in/{tag}/netmob/Lyon/Lyon.geojson"
    fs.pipe_file(key, change(fs.cat_file(key)))
    # the store and outputs local: this case is about reading the geometry on the bucket
    return cfg_for(base, str(tmp_path / "out")), f"s3://{key}", s3.env()


@pytest.mark.parametrize("where", ["local", "bucket"])
def test_truncated_tile_grid_is_bad_data_naming_file_and_city(s3, synth_tree, tmp_path, where):
    cfg, grid, aws = _setup(where, s3, synth_tree, tmp_path, "trunc", _truncate)
    ans, _ = cpc_run(tmp_path, cfg, aws=aws)
    expect(ans, 1, "Lyon", grid, "cannot be read as a vector file")
    out = tmp_path / "out"
    assert not (out / "communes.csv").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and grid in run["error"]


@pytest.mark.parametrize("where", ["local", "bucket"])
def test_tile_ids_differing_from_the_data_are_bad_data_naming_city_and_both_files(s3, synth_tree, tmp_path,
                                                                                 where):
    cfg, grid, aws = _setup(where, s3, synth_tree, tmp_path, "shift", _shift_ids)
    data = storage.join(cfg["input"]["netmob"], "Lyon")
    ans, _ = cpc_run(tmp_path, cfg, aws=aws)
    expect(ans, 1, "Lyon", grid, data, "disagree", "not in the grid")
    out = tmp_path / "out"
    assert not (out / "communes.csv").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "failed"


def test_truncated_areas_file_on_the_bucket_is_bad_data_naming_it(s3, bucket_data, synth_tree, tmp_path):
    fs = s3.fs()
    key = "cpc-in/broken-areas/communes.gpkg"
    fs.pipe_file(key, _truncate((synth_tree / "geo" / "communes.gpkg").read_bytes()))
    cfg = cfg_for(bucket_data, str(tmp_path / "out"), areas={"path": f"s3://{key}"})
    ans, _ = cpc_run(tmp_path, cfg, aws=s3.env())
    expect(ans, 1, f"s3://{key}")
    assert not (tmp_path / "out" / "communes.csv").exists()


def test_ingest_into_a_missing_bucket_is_environment(s3, synth_tree, tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    ans = run_cpc("ingest", "--input", str(synth_tree / "netmob"), "--store", "s3://no-such-store/cube.zarr",
                  env={**s3.env(), "AWS_CONFIG_FILE": os.devnull}, cwd=cwd, timeout=200)
    expect(ans, 3, "--store", "bucket s3://no-such-store does not exist")
    assert not s3.fs().exists("no-such-store")
    assert list(cwd.iterdir()) == []  # no ./ingest-reports, no 's3:' folder
