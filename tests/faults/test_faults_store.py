"""Fault corpus: a damaged store is found, named and repaired (issue #12, "The store").

Each case damages a copy of a cleanly ingested store the way a disk, a crash or a careless
hand would, runs a real ``cpc`` command in a fresh interpreter (on the session's real Dask
cluster) and checks

- the exit code and a message fragment naming the city, the array, the chunk and the source file;
- the data: the repaired cube equals the clean one array by array (``np.testing``), every
  status is ok, and only the affected files were parsed again (counted in the QC report);
- the clean cube itself against the input text files read by plain numpy (an independent
  reference), so that "equals the clean cube" means "holds the input's values".
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import zarr

from tests.faults.harness import expect, run_cpc

CITY = "Lyon"
SERVICES = ("Tor", "Web_Adult", "YouTube")
#: two days across the spring DST change (2019-03-31 has 92 slots: 23 hour chunks)
DAYS = (dt.date(2019, 3, 30), dt.date(2019, 3, 31))
N_FILES = len(SERVICES) * len(DAYS)
ARRAYS = ("DL", "DL_hourly", "DL_status", "DL_total", "DL_chunks", "tile", "service", "time", "day")


@pytest.fixture(scope="module")
def tree(tmp_path_factory, client) -> Path:
    from cpc_core.synth.generator import SynthSpec
    from jobs.synth import run_synth

    out = tmp_path_factory.mktemp("store-faults")
    run_synth(SynthSpec(cities=(CITY,), services=SERVICES, start=DAYS[0], days=len(DAYS), scale=0.002, seed=3),
              out, client)
    return out / "netmob"


def _ingest(tree: Path, store: Path, client, *extra: str, reports: Path | None = None):
    reports = reports or store.with_name(store.name + ".qc")
    return run_cpc("ingest", "--input", str(tree), "--store", str(store), "--report-dir", str(reports),
                   "--cluster", client.scheduler.address, *extra)


def _read(store: Path) -> dict[str, np.ndarray]:
    g = zarr.open_group(str(store), mode="r")[CITY]
    return {name: g[name][:] for name in ARRAYS}


def _qc(store: Path) -> dict:
    """The newest QC report of the store's runs."""
    reports = sorted(store.with_name(store.name + ".qc").glob("ingest-*.json"), key=os.path.getmtime)
    return json.loads(reports[-1].read_text())


@pytest.fixture(scope="module")
def clean(tree, tmp_path_factory, client) -> tuple[Path, dict[str, np.ndarray]]:
    """A cleanly ingested store and its arrays, checked against the text files by plain numpy."""
    store = tmp_path_factory.mktemp("clean") / "cube.zarr"
    expect(_ingest(tree, store, client), 0)
    arrays = _read(store)
    tiles = arrays["tile"]
    services = list(arrays["service"])
    off = 0
    for day in DAYS:
        n = None
        for s in SERVICES:
            text = np.loadtxt(tree / CITY / s / day.strftime("%Y%m%d") /
                              f"{CITY}_{s}_{day.strftime('%Y%m%d')}_DL.txt", dtype=np.float64)
            order = np.argsort(text[:, 0])
            assert np.array_equal(text[order, 0].astype(np.int64), tiles)
            n = text.shape[1] - 1
            # layout 3: one row of 100 slots per local day, NaN past the day's last slot
            got = arrays["DL"][services.index(s), :, DAYS.index(day)]
            np.testing.assert_array_equal(got[:, :n], text[order, 1:].astype(np.float32))
            assert np.isnan(got[:, n:]).all()
            hourly = text[order, 1:].reshape(len(tiles), n // 4, 4).sum(axis=2)
            np.testing.assert_allclose(arrays["DL_hourly"][services.index(s), :, DAYS.index(day), : n // 4],
                                       hourly, rtol=1e-6)
        off += n
    assert (arrays["DL_status"] == 1).all()
    # every file recorded each chunk it wrote: its one 15-minute chunk and its hourly chunk
    assert (arrays["DL_chunks"][..., 0] > 0).sum() == len(SERVICES) * 2 * len(DAYS)
    return store, arrays


@pytest.fixture
def damaged(clean, tmp_path) -> Path:
    """A private copy of the clean store, to be damaged."""
    dst = tmp_path / "cube.zarr"
    shutil.copytree(clean[0], dst)
    return dst


def _assert_repaired(store: Path, clean_arrays: dict, reparsed: int) -> None:
    """The cube equals the clean one, all files ok, and ``reparsed`` files were ingested again."""
    got = _read(store)
    for name in ARRAYS:
        np.testing.assert_array_equal(got[name], clean_arrays[name], err_msg=name)
    assert (got["DL_status"] == 1).all()
    qc = _qc(store)
    assert qc["files"]["ok"] == reparsed, qc["files"]
    assert qc["skipped_complete"] == N_FILES - reparsed


def _chunk(store: Path, array: str, service: str, day_index: int) -> Path:
    si = SERVICES.index(service)
    if array in ("DL", "DL_hourly"):  # one chunk per file, indexed by local day
        return store / CITY / array / "c" / str(si) / "0" / str(day_index) / "0"
    return store / CITY / array / "c" / str(si) / str(day_index) / ("0/0" if array == "DL_chunks" else "")


def _truncate(path: Path, keep: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if keep is None else keep])


def _source(service: str, day_index: int) -> str:
    d = DAYS[day_index].strftime("%Y%m%d")
    return f"{CITY}/{service}/{d}/{CITY}_{service}_{d}_DL.txt"


# ---------------------------------------------------------------- chunks (found by the plain re-run)


@pytest.mark.parametrize(("array", "service", "day", "damage", "reason"), [
    ("DL", "Web_Adult", 1, "truncate", "bytes, "),  # a file's 15-minute chunk cut in half
    ("DL_hourly", "Tor", 0, "truncate", "bytes, "),  # the hourly chunk cut in half
    ("DL_status", "YouTube", 1, "truncate", "cannot be decoded"),  # a status cell cut short
    ("DL", "Tor", 1, "empty", "0 bytes, "),  # a zero-byte chunk
    ("DL", "YouTube", 0, "delete", "chunk file missing"),  # a deleted chunk file
    ("DL_hourly", "Web_Adult", 1, "grow", "bytes, "),  # a chunk of the wrong size (bytes appended)
    ("DL_chunks", "Tor", 0, "truncate", "cannot be decoded"),  # the checksum record itself
])
def test_damaged_chunk_is_named_and_repaired_by_a_plain_rerun(tree, clean, damaged, client, array, service, day,
                                                               damage, reason):
    path = _chunk(damaged, array, service, day)
    if damage == "truncate":
        _truncate(path)
    elif damage == "empty":
        _truncate(path, keep=0)
    elif damage == "delete":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes() + b"\0" * 17)
    key = path.relative_to(damaged / CITY / array).as_posix()
    ans = expect(_ingest(tree, damaged, client), 0, "store damaged", f"{CITY}/{array} chunk {key}",
                 f"(from {_source(service, day)})", reason, "ingested again")
    assert ans.text.count("store damaged:") == 1
    _assert_repaired(damaged, clean[1], reparsed=1)
    assert _qc(damaged)["repaired"][0]["chunk"] == key
    md = sorted(damaged.with_name(damaged.name + ".qc").glob("ingest-*.md"), key=os.path.getmtime)[-1].read_text()
    assert f"| {CITY} | {array} | {key} |" in md and _source(service, day) in md


def test_random_bytes_found_by_repair_and_never_read_as_data(tree, clean, damaged, client):
    """Same size, other bytes: the plain re-run's size check cannot see it, the rollup's CRC
    check refuses to read it (exit 1, named), and ``--repair`` finds it by its checksum."""
    from cpc_core.cube import store
    from cpc_core.estimate import rollup

    path = _chunk(damaged, "DL_hourly", "YouTube", 1)
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
    ans = expect(_ingest(tree, damaged, client), 0)
    assert "store damaged" not in ans.text and _qc(damaged)["files"]["ok"] == 0  # sizes only: not seen
    n = len(clean[1]["tile"])
    import scipy.sparse as sp

    h, _ = rollup.rollup_store(str(damaged), CITY, sp.identity(n, format="csr"), [str(i) for i in range(n)],
                               ["YouTube"])
    with pytest.raises(store.StoreDamaged, match=r"Lyon/DL_hourly chunk c/2/0/1/0 \(from "
                                                 rf"{_source('YouTube', 1)}\): checksum \(CRC-32\) mismatch"):
        h.compute(scheduler="sync")
    ans = expect(_ingest(tree, damaged, client, "--repair"), 0, "store damaged",
                 f"{CITY}/DL_hourly chunk c/2/0/1/0 (from {_source('YouTube', 1)}): checksum (CRC-32) mismatch")
    _assert_repaired(damaged, clean[1], reparsed=1)
    assert _qc(damaged)["verified"] == "checksums"


# ---------------------------------------------------------------- metadata


@pytest.mark.parametrize(("meta", "fragment", "reparsed"), [
    ("DL_hourly/zarr.json", "Lyon/DL_hourly metadata (zarr.json)", N_FILES),
    ("DL_status/zarr.json", "Lyon/DL_status metadata (zarr.json)", N_FILES),
    ("DL/zarr.json", "Lyon/DL metadata (zarr.json)", N_FILES),
    ("zarr.json", "Lyon metadata (zarr.json): the city group's metadata", 0),
    ("../zarr.json", "cube.zarr metadata (zarr.json): the root group's metadata", 0),
    ("tile/zarr.json", "Lyon/tile metadata (zarr.json)", N_FILES),
])
def test_lost_metadata_is_named_and_recreated(tree, clean, damaged, client, meta, fragment, reparsed):
    (damaged / CITY / meta).resolve().unlink()
    expect(_ingest(tree, damaged, client), 0, "store damaged", fragment)
    _assert_repaired(damaged, clean[1], reparsed=reparsed)


def test_readers_name_lost_metadata_instead_of_switching_path(clean, damaged):
    """Before any repair, a reader refuses a store whose hourly array's metadata is gone
    (it used to read the 15-minute array instead, silently)."""
    import scipy.sparse as sp

    from cpc_core.cube import store
    from cpc_core.estimate import rollup

    (damaged / CITY / "DL_hourly" / "zarr.json").unlink()
    n = len(clean[1]["tile"])
    with pytest.raises(store.StoreDamaged, match=r"Lyon/DL_hourly metadata \(zarr.json\): missing.*cpc ingest --repair"):
        rollup.rollup_store(str(damaged), CITY, sp.identity(n, format="csr"), [str(i) for i in range(n)], ["Tor"])
    (damaged / CITY / "DL_status" / "zarr.json").unlink()
    with pytest.raises(store.StoreDamaged, match=r"Lyon/DL_status metadata"):
        store.file_states(str(damaged), CITY, "DL")


def test_second_repair_is_a_no_op(tree, clean, damaged, client):
    _truncate(_chunk(damaged, "DL", "Tor", 0))
    expect(_ingest(tree, damaged, client, "--repair"), 0, "store damaged")
    before = {p: p.read_bytes() for p in damaged.rglob("*") if p.is_file()}
    ans = expect(_ingest(tree, damaged, client, "--repair"), 0)
    assert "store damaged" not in ans.text
    after = {p: p.read_bytes() for p in damaged.rglob("*") if p.is_file()}
    assert after == before  # not a byte of the store rewritten
    qc = _qc(damaged)
    assert qc["repaired"] == [] and qc["files"]["ok"] == 0 and qc["skipped_complete"] == N_FILES
    _assert_repaired(damaged, clean[1], reparsed=0)


# ---------------------------------------------------------------- disk full


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 4 MiB tmpfs (needs root: the CI container and the development machines run as root)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=True)


def test_disk_full_while_writing_chunks_then_resume(tree, clean, tiny_tmpfs, client, tmp_path):
    filler = tiny_tmpfs / "filler"
    store = tiny_tmpfs / "cube.zarr"
    # leave room for half the clean store, in tmpfs's 4 KiB pages: its metadata (~60 KiB) and a
    # few files' chunks (the clean store takes ~320 KiB in layout 3, one chunk per file)
    need = sum(-(-p.stat().st_size // 4096) * 4096 for p in clean[0].rglob("*") if p.is_file())
    filler.write_bytes(b"\0" * (4 * 1024 * 1024 - need // 2))
    ans = expect(_ingest(tree, store, client, reports=tmp_path / "qc"), 3, "disk full writing",
                 str(store), "re-run the same command to resume")
    assert len([ln for ln in ans.err.splitlines() if ln.startswith("cpc ingest:")]) == 1  # one line
    assert not list(tiny_tmpfs.rglob("*.tmp"))  # no temp file left behind
    status = zarr.open_group(str(store), mode="r")[CITY]["DL_status"][:]
    assert (status != 1).any()  # the files cut short are not marked complete
    filler.unlink()
    expect(_ingest(tree, store, client, reports=tmp_path / "qc"), 0)
    got = _read(store)
    for name in ARRAYS:
        np.testing.assert_array_equal(got[name], clean[1][name], err_msg=name)


# ---------------------------------------------------------------- a whole run


@pytest.mark.slow
def test_run_stops_on_a_damaged_chunk_and_repair_restores_the_results(tmp_path, client):
    """``cpc demo`` (ingest + rollup + estimates) on a store whose hourly chunk was overwritten
    with random bytes of the same size: exit 1 naming the chunk, its source file and the
    remedy; ``cpc ingest --repair`` re-ingests that one file; the next run's communes.csv is
    identical to the undamaged run's."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--set", "synth.cities=[Lyon]", "--set", "synth.days=2",
            "--set", "synth.scale=0.002", "--cluster", client.scheduler.address]
    expect(run_cpc(*args), 0)
    before = (out / "communes.csv").read_bytes()
    chunk = out / "cube.zarr" / CITY / "DL_hourly" / "c" / "1" / "0" / "1" / "0"  # Web_Adult, 2nd day
    chunk.write_bytes(np.random.default_rng(5).bytes(chunk.stat().st_size))
    for cached in (out / "internal" / "cache").glob("*"):  # make the rollup read the cube again
        if cached.name.startswith(("hourly-", "tiles-")):
            shutil.rmtree(cached)
    src = "Lyon/Web_Adult/20190317/Lyon_Web_Adult_20190317_DL.txt"
    expect(run_cpc(*args), 1, f"store damaged: {out}/cube.zarr/{CITY}/DL_hourly chunk c/1/0/1/0 (from {src}): "
                              "checksum (CRC-32) mismatch", "cpc ingest --repair")
    qc_dir = tmp_path / "qc"
    expect(run_cpc("ingest", "--repair", "--input", str(out / "data" / "netmob"), "--store", str(out / "cube.zarr"),
                   "--report-dir", str(qc_dir), "--cluster", client.scheduler.address), 0, f"(from {src})")
    qc = json.loads(next(qc_dir.glob("ingest-*.json")).read_text())
    assert qc["files"]["ok"] == 1 and [r["chunk"] for r in qc["repaired"]] == ["c/1/0/1/0"]
    expect(run_cpc(*args), 0)
    assert (out / "communes.csv").read_bytes() == before
