"""The store's own chunk writes against zarr's public API, byte for byte, and the version gate.

The store encodes and stores whole chunks itself (``cpc_core/cube/_zarr.py``). Here the same
values are written with zarr's public API (``zarr.open_array`` and slice assignment) into a
second store with the same array metadata, and every file or object of the two stores must be
byte-identical: the 15-minute hour chunks, the hourly day chunks, the per-file status, total
and chunk-record cells, for every compressor cpc offers, on a local store and on a store that
is not local (the other branch of the one write path). The reference values (hourly sums,
totals, chunk records) are computed here with numpy and zlib from the reference store itself.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
import shutil
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pytest
import zarr

from cpc_core.cube import _zarr, store
from cpc_core.errors import EnvironmentUnavailable

ROOT = Path(__file__).resolve().parents[2]
COMPRESSORS = ["lz4", "zstd", "blosc-zstd", "none"]


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _open(path: Path, name: str):
    # write_empty_chunks: the store's arrays are configured so (a missing file's NaN chunks
    # are written, replacing what an interrupted run left); the config is not in zarr.json
    # (zarr.open_array ignores a ``config`` argument in zarr 3.1: with_config applies it)
    return zarr.open_array(str(path), path=f"Nice/{name}", mode="r+").with_config({"write_empty_chunks": True})


@pytest.mark.parametrize(("compressor", "tile_chunk", "version"),
                         [(c, 131_072, 3) for c in COMPRESSORS] + [("lz4", 5, 3), ("lz4", 131_072, 2), ("lz4", 5, 2)])
def test_every_chunk_the_store_writes_equals_zarrs_public_write(tmp_path, compressor, tile_chunk, version,
                                                                monkeypatch):  # fmt: skip
    """A city of 13 tiles, two services, two directions, three days (the spring DST day has 92
    slots): files ok, partial (holes) and missing written by the store, the same values by
    zarr; every file of the two stores is byte-identical (metadata included). Also with tiles
    in chunks of 5 (the last one padded): the hour and day chunks cut as zarr cuts them. In
    layout 3 (the 15-minute array indexed by local day, NaN-padded to 100 slots) and layout 2
    (indexed by UTC time, one chunk per hour: stores written before)."""
    lay = store.CityLayout("Nice", dt.date(2019, 3, 30), dt.date(2019, 4, 1), ("Tor", "YouTube"),
                           np.arange(13, dtype=np.int64), ("DL", "UL"))
    hand, ref = tmp_path / "hand.zarr", tmp_path / "zarr.zarr"
    monkeypatch.setattr(store, "LAYOUT_VERSION", version)
    store.create_or_extend(str(hand), lay, compressor=compressor, tile_chunk=tile_chunk)
    n_tc = 1 if tile_chunk >= 13 else 3
    shutil.copytree(hand, ref)  # the same metadata and coordinates (both written by zarr)
    rng = np.random.default_rng(7)
    offsets = {di: lay.day_slice(day) for di, day in enumerate(lay.days)}
    for d in lay.directions:
        for si in range(2):
            for di, sl in offsets.items():
                n = sl.stop - sl.start
                # integers below 2**24 / 4: every sum is exact in float32 and float64 alike
                block = rng.integers(0, 9000, (13, n)).astype(np.float32)
                state = "ok"
                if (si, di) == (1, 1):
                    block[rng.random(block.shape) < 0.05] = np.nan
                    state = "partial"
                if (si, di) == (0, 2):
                    block, state = None, "missing"
                store.write_file_block(str(hand), "Nice", d, si, di, sl, block, store.STATUS[state])
                # the reference: zarr's public write of the same values
                values = np.full((13, n), np.nan, np.float32) if block is None else block
                if version >= 3:
                    padded = np.full((13, store.SLOTS_PAD), np.nan, np.float32)
                    padded[:, :n] = values
                    _open(ref, d)[si, :, di, :] = padded
                else:
                    _open(ref, d)[si, :, sl] = values
                hourly = np.full((13, store.HOURS_PAD), np.nan)
                hourly[:, : n // 4] = values.astype(np.float64).reshape(13, n // 4, 4).sum(axis=2)
                _open(ref, f"{d}_hourly")[si, :, di, :] = hourly.astype(np.float32)
                rec = np.zeros((store.CHUNK_RECORDS, 2), np.uint32)  # recorded with one tile chunk only
                for k in range(n // 4 if n_tc == 1 and version < 3 else 0):
                    raw = (ref / "Nice" / d / f"c/{si}/0/{sl.start // 4 + k}").read_bytes()
                    rec[k] = len(raw), zlib.crc32(raw)
                if n_tc == 1 and version >= 3:
                    raw = (ref / "Nice" / d / f"c/{si}/0/{di}/0").read_bytes()
                    rec[store.DAY_RECORD] = len(raw), zlib.crc32(raw)
                if n_tc == 1:
                    raw = (ref / "Nice" / f"{d}_hourly" / f"c/{si}/0/{di}/0").read_bytes()
                    rec[store.HOURS_PAD] = len(raw), zlib.crc32(raw)
                _open(ref, f"{d}_chunks")[si, di] = rec
                _open(ref, f"{d}_total")[si, di] = np.nansum(values, dtype=np.float64) if block is not None else np.nan
                _open(ref, f"{d}_status")[si, di] = store.STATUS[state]
    got, want = _files(hand), _files(ref)
    assert sorted(got) == sorted(want)
    kinds = {re.sub(r"/c/.*", "", k) for k in want if "/c/" in k}
    assert kinds == {f"Nice/{d}{x}" for d in ("DL", "UL") for x in ("", "_hourly", "_status", "_total", "_chunks")} | {
        "Nice/tile", "Nice/service", "Nice/time", "Nice/day"}
    # one chunk per file (layout 3), one per hour (layout 2)
    assert len([k for k in want if k.startswith("Nice/DL/c/")]) == 2 * n_tc * (3 if version >= 3 else 24 + 23 + 24)
    differ = [k for k in want if got[k] != want[k]]
    assert differ == []
    # and zarr reads the store's chunks as the values written
    np.testing.assert_array_equal(zarr.open_group(str(hand))["Nice/DL"][:], zarr.open_group(str(ref))["Nice/DL"][:])
    # and the store's own read of a day chunk gives zarr's values
    hourly = store.open_city(str(hand), "Nice")["DL_hourly"]
    for di in range(3):
        np.testing.assert_array_equal(store.read_day_chunk(hourly, 1, di),
                                      zarr.open_group(str(ref))["Nice/DL_hourly"][1, :, di])
    assert store.verify(str(hand), lay, full=True) == []


@pytest.mark.parametrize("compressor", COMPRESSORS)
def test_chunks_through_a_store_that_is_not_local_equal_zarrs(compressor):
    """The write path's other branch (the store's own ``set``: object stores) and the read
    path's (its ``get``), on zarr's in-memory store: the same bytes as zarr's public write,
    and the same values as zarr's public read."""
    dicts = {"hand": {}, "zarr": {}}
    arrays = {}
    for name, d in dicts.items():
        g = zarr.open_group(zarr.storage.MemoryStore(store_dict=d), mode="w", zarr_format=3)
        arrays[name] = (
            g.create_array("DL", shape=(2, 13, 24), chunks=(1, 13, 4), dtype="float32", fill_value=np.nan,
                           compressors=store.codec(compressor), config={"write_empty_chunks": True}),
            g.create_array("DL_hourly", shape=(2, 13, 3, 25), chunks=(1, 13, 1, 25), dtype="float32",
                           fill_value=np.nan, compressors=store.codec(compressor, "hourly"),
                           config={"write_empty_chunks": True}),
            g.create_array("DL_status", shape=(2, 3), chunks=(1, 1), dtype="int8", fill_value=0),
        )
    rng = np.random.default_rng(3)
    block = rng.integers(0, 9000, (13, 8)).astype(np.float32)
    block[2, 5] = np.nan
    day = rng.integers(0, 9000, (13, 25)).astype(np.float32)
    cube, hourly, status = arrays["hand"]
    assert _zarr.local_dir(cube) is None
    assert store._write_whole_chunks(cube, 1, 4, block) is not None
    assert store._put_chunks(hourly, [((1, 0, 2, 0), day)]) is not None
    store._put_cell(status, 1, 2, store.STATUS["partial"])
    cube, hourly, status = arrays["zarr"]
    cube[1, :, 4:12] = block
    hourly[1, :, 2, :] = day
    status[1, 2] = store.STATUS["partial"]
    got = {k: v.to_bytes() for k, v in dicts["hand"].items()}
    want = {k: v.to_bytes() for k, v in dicts["zarr"].items()}
    assert sorted(got) == sorted(want) and "DL/c/1/0/2" in want and "DL_hourly/c/1/0/2/0" in want
    assert [k for k in want if got[k] != want[k]] == []
    hourly = arrays["hand"][1]
    np.testing.assert_array_equal(store.read_day_chunk(hourly, 1, 2), day)
    assert np.isnan(store.read_day_chunk(hourly, 0, 2)).all()  # never written: the fill value
    np.testing.assert_array_equal(store._read_per_file_array(arrays["hand"][2]), arrays["zarr"][2][:])


def test_lost_group_documents_are_rewritten_as_zarr_writes_them(tmp_path):
    """The root's and a city's ``zarr.json``, lost, are written again through zarr: the root's
    byte-identical to the one zarr wrote first; the city's equal as parsed JSON to the first
    one but for the two attributes a repair cannot know (its tile source, and whether the
    arrays carry their CF attributes, which the next ingest adds again). Compared as JSON
    because the attributes differ by design; the members stay readable."""
    lay = store.CityLayout("Nice", dt.date(2019, 3, 30), dt.date(2019, 3, 31), ("Tor",),
                           np.arange(5, dtype=np.int64), ("DL",))
    s = tmp_path / "c.zarr"
    store.create_or_extend(str(s), lay)
    root_doc, city_doc = (s / "zarr.json").read_bytes(), json.loads((s / "Nice" / "zarr.json").read_bytes())
    (s / "zarr.json").unlink()
    (s / "Nice" / "zarr.json").write_text("{not json")
    lost = store.repair_metadata(str(s), ["Nice"])
    assert {(d.city, d.array, d.chunk) for d in lost} == {("", "", "zarr.json"), ("Nice", "", "zarr.json")}
    assert (s / "zarr.json").read_bytes() == root_doc
    repaired = json.loads((s / "Nice" / "zarr.json").read_bytes())
    city_doc["attributes"].update({"tiles_from": [], "cf_attributes": 0})
    assert repaired == city_doc
    assert store.read_layout(str(s), "Nice").tiles.tolist() == list(range(5))


def test_version_gate_refuses_an_untested_zarr(monkeypatch):
    """At import, ``_zarr`` checks the installed zarr against the range it was written for and
    names both in an EnvironmentUnavailable (exit 3)."""
    lo, hi = _zarr.SUPPORTED
    assert lo <= tuple(int(x) for x in zarr.__version__.split(".")[:2]) < hi  # the installed one passes
    for bad in ("3.2.0", "4.0.0", "3.0.8", "2.18.7", "unknown"):
        with pytest.raises(EnvironmentUnavailable, match=rf"zarr {re.escape(bad)} is installed; cpc's store "
                                                         r"supports zarr >=3\.1,<3\.2"):
            _zarr.check_version(bad)
    for good in ("3.1.0", "3.1.6", "3.1.10rc1"):
        _zarr.check_version(good)
    monkeypatch.setattr(zarr, "__version__", "3.2.0")
    try:
        with pytest.raises(EnvironmentUnavailable, match=r"zarr 3\.2\.0 is installed"):
            importlib.reload(_zarr)
    finally:
        monkeypatch.undo()
        importlib.reload(_zarr)
    assert _zarr.check_version is not None


def test_pin_and_lock_match_the_gate():
    """pyproject's zarr pin is the range the gate admits, and the locked zarr lies in it."""
    lo, hi = _zarr.SUPPORTED
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [d for d in deps if re.match(r"zarr\b", d)]
    assert pins == [f"zarr>={lo[0]}.{lo[1]},<{hi[0]}.{hi[1]}"]
    locked = re.search(r"^zarr==(\d+)\.(\d+)\.\S+", (ROOT / "requirements.lock").read_text(), re.M)
    assert locked and lo <= (int(locked[1]), int(locked[2])) < hi


def test_cli_names_an_untested_zarr_in_one_line_exit_3(tmp_path):
    """The gate through the command line: exit 3 (EnvironmentUnavailable), one line on stderr
    naming the installed and the supported versions, no traceback, nothing written."""
    import os
    import subprocess
    import sys

    code = ("import sys, zarr; zarr.__version__ = '3.2.0'\n"
            "from jobs.cli import main\n"
            f"sys.exit(main(['ingest', '--input', {str(tmp_path / 'in')!r}, '--store', {str(tmp_path / 's.zarr')!r}]))")
    (tmp_path / "in").mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert re.fullmatch(r"cpc ingest: zarr 3\.2\.0 is installed; cpc's store supports zarr >=3\.1,<3\.2 .*", lines[0])
    assert not (tmp_path / "s.zarr").exists()
