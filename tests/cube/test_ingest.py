"""Ingest: text -> Zarr round trip against an independent parse, DST, missing files, bad input,
quarantine accounting, resume and extension. All on a real Dask cluster and real Zarr stores."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from cpc_core.cube import ingest, store
from cpc_core.netmob.parse import NetmobFormatError
from jobs.ingest import run_ingest


def local_slots_utc(day: dt.date, ncols: int) -> pd.DatetimeIndex:
    """Independent of cpc_core.netmob.facts: localise the 96 wall-clock slots, drop the ones that do
    not exist (spring DST), convert to UTC."""
    wall = pd.date_range(pd.Timestamp(day), periods=96, freq="15min")
    loc = wall.tz_localize("Europe/Paris", nonexistent="NaT", ambiguous="NaT").dropna()
    assert len(loc) == ncols
    return loc.tz_convert("UTC").tz_localize(None)


def read_text(path: Path):
    ids, rows = [], []
    for line in path.read_text().splitlines():
        tok = line.split()
        ids.append(int(tok[0]))
        rows.append([int(t) for t in tok[1:]])
    return np.array(ids), np.array(rows, dtype=np.float64)


def test_round_trip_every_file(synth_tree, cube):
    files = sorted((synth_tree / "netmob").glob("*/*/*/*.txt"))
    assert len(files) == 2 * 3 * 4
    for city in ("Lyon", "Nice"):
        ds = store.open_cube(cube, city).load()
        assert ds["DL"].dtype == np.float32
        assert list(ds["DL"].dims) == ["service", "tile", "time"]
        for f in [p for p in files if p.parts[-4] == city]:
            service, ymd = f.parts[-3], f.parts[-2]
            day = dt.datetime.strptime(ymd, "%Y%m%d").date()
            ids, vals = read_text(f)
            t = local_slots_utc(day, vals.shape[1])
            got = ds["DL"].sel(service=service, tile=ids, time=t).values
            np.testing.assert_array_equal(got, vals.astype(np.float32))
        # nothing outside the files: the axis is exactly the union of the days' slots
        all_t = np.concatenate([local_slots_utc(d, 92 if d == dt.date(2019, 3, 31) else 96)
                                for d in pd.date_range("2019-03-29", "2019-04-01").date])
        np.testing.assert_array_equal(ds["time"].values, all_t.astype("datetime64[ns]"))
        assert not np.isnan(ds["DL"].values).any()


def test_dst_day_is_aligned(synth_tree, cube):
    day_file = synth_tree / "netmob/Lyon/Tor/20190331/Lyon_Tor_20190331_DL.txt"
    ids, vals = read_text(day_file)
    assert vals.shape[1] == 92
    ds = store.open_cube(cube, "Lyon")
    # 9th value column is 03:00 local = 01:00 UTC on 2019-03-31; 02:00-02:45 local do not exist
    col9 = ds["DL"].sel(service="Tor", time=np.datetime64("2019-03-31T01:00")).sel(tile=ids).values
    np.testing.assert_array_equal(col9, vals[:, 8].astype(np.float32))
    # the last slot of the day, 23:45 local = 21:45 UTC, is the 92nd column
    last = ds["DL"].sel(service="Tor", time=np.datetime64("2019-03-31T21:45")).sel(tile=ids).values
    np.testing.assert_array_equal(last, vals[:, 91].astype(np.float32))
    n_day = ((ds.time >= np.datetime64("2019-03-30T23:00")) & (ds.time < np.datetime64("2019-03-31T22:00"))).sum()
    assert int(n_day) == 92


def test_hourly_array_sums_the_slots_of_each_local_day(synth_tree, cube):
    """DL_hourly against the text: each tile's slots summed per UTC hour (pandas, float64), one
    row of 23/24/25 hours per local day, NaN padding after; the DST day has 23 hours."""
    lay = store.read_layout(cube, "Lyon")
    g = store.open_city(cube, "Lyon")
    hourly = g["DL_hourly"][:]
    assert hourly.shape == (len(lay.services), len(lay.tiles), len(lay.days), 25)
    seen_hours = set()
    for si, service in enumerate(lay.services):
        for di, day in enumerate(lay.days):
            f = synth_tree / f"netmob/Lyon/{service}/{day:%Y%m%d}/Lyon_{service}_{day:%Y%m%d}_DL.txt"
            ids, vals = read_text(f)
            utc = local_slots_utc(day, vals.shape[1])
            ref = pd.DataFrame(vals.T, index=utc).groupby(utc.floor("h")).sum().T.to_numpy()
            nh = ref.shape[1]
            assert nh == (23 if day == dt.date(2019, 3, 31) else 24)
            pos = np.searchsorted(lay.tiles, ids)
            np.testing.assert_allclose(hourly[si, pos, di, :nh], ref, rtol=1e-6)
            assert np.isnan(hourly[si, :, di, nh:]).all()
            seen_hours.update(utc.floor("h"))
    assert len(seen_hours) == len(lay.time) // 4  # the days' hours tile the time axis exactly


def test_status_and_qc_of_clean_run(cube):
    g = store.open_city(cube, "Lyon")
    assert (g["DL_status"][:] == store.STATUS["ok"]).all()
    reports = sorted(Path(cube + ".reports").glob("ingest-*.json"))
    qc = json.loads(reports[-1].read_text())
    assert qc["values_read"] == qc["values_stored"] > 0 and qc["values_rejected"] == 0
    assert qc["files"]["ok"] == 24


def test_rerun_skips_complete_files(synth_tree, cube, client):
    p = ingest.plan(str(synth_tree / "netmob"), cube)
    assert p.tasks == [] and p.skipped == 24


def _ingest(tree, store_path, client, **kw):
    return run_ingest(str(tree), store_path, client, report_dir=Path(store_path).parent / "rep", **kw)


def test_missing_file_is_nan_and_reported(tree_copy, tmp_path, client):
    victim = tree_copy / "Nice/Web_Adult/20190330/Nice_Web_Adult_20190330_DL.txt"
    victim.unlink()
    s = str(tmp_path / "c.zarr")
    qc = _ingest(tree_copy, s, client)
    missing = qc["cities"]["Nice"]["missing"]
    assert [(m["service"], m["day"], m["state"]) for m in missing] == [("Web_Adult", "2019-03-30", "missing")]
    ds = store.open_cube(s, "Nice")
    day = ds["DL"].sel(service="Web_Adult", time=slice("2019-03-29T23:00", "2019-03-30T22:45")).values
    assert day.shape[1] == 96 and np.isnan(day).all()
    lay = store.read_layout(s, "Nice")
    hourly = store.open_city(s, "Nice")["DL_hourly"]
    si, di = lay.services.index("Web_Adult"), lay.days.index(dt.date(2019, 3, 30))
    assert np.isnan(hourly[si, :, di, :]).all()
    assert not np.isnan(hourly[lay.services.index("Tor"), :, di, :24]).any()
    other = ds["DL"].sel(service="Tor", time=slice("2019-03-29T23:00", "2019-03-30T22:45")).values
    assert not np.isnan(other).any()
    # the file appears later: a re-run ingests only it
    p = ingest.plan(str(tree_copy), s)
    assert [t.key.service for t in p.tasks] == ["Web_Adult"] and p.tasks[0].path is None


def _corrupt(path: Path, lineno: int, new: str):
    lines = path.read_text().splitlines(keepends=True)
    lines[lineno - 1] = new
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    "line,content,reason",
    [
        (3, "{id} 1 2 3\n", "too few value columns: expected 96, found 3"),
        (2, "{id} " + " ".join(["1"] * 95) + " -4\n", "negative value in value column 96"),
        (4, "{id} " + " ".join(["1"] * 95) + " abc\n", "non-numeric value in value column 96"),
        (5, "{id} nan" + " 1" * 95 + "\n", "NaN value in value column 1"),
        (2, "{first} " + " ".join(["1"] * 96) + "\n", "duplicate tile id"),
        (3, "99999999 " + " ".join(["1"] * 96) + "\n", "tile id outside the city's grid: 99999999"),
    ],
)
def test_fail_mode_names_file_line_reason_and_writes_nothing(tree_copy, tmp_path, client, line, content, reason):
    f = tree_copy / "Lyon/YouTube/20190330/Lyon_YouTube_20190330_DL.txt"
    ids, _ = read_text(f)
    _corrupt(f, line, content.format(id=ids[line - 1], first=ids[0]))
    s = str(tmp_path / "c.zarr")
    with pytest.raises(NetmobFormatError) as ei:
        _ingest(tree_copy, s, client, cities=["Lyon"])
    e = ei.value
    assert e.path.endswith("Lyon_YouTube_20190330_DL.txt") and e.line == line and reason in e.reason
    g = store.open_city(s, "Lyon")
    si = list(g["service"][:]).index("YouTube")
    assert g["DL_status"][si, 1] == store.STATUS["pending"]
    blk = g["DL"][si, :, 1, :]  # the file's day (layout 3: indexed by local day), all 100 slots
    assert np.isnan(blk).all()


def test_fail_mode_tile_list_differs_and_empty_file(tree_copy, tmp_path, client):
    f = tree_copy / "Lyon/Tor/20190401/Lyon_Tor_20190401_DL.txt"
    lines = f.read_text().splitlines(keepends=True)
    f.write_text("".join(lines[:-1]))  # one tile fewer than the city's list
    with pytest.raises(NetmobFormatError, match=r"Lyon_Tor_20190401_DL.txt: tile list differs from the city's: 1 of"):
        _ingest(tree_copy, str(tmp_path / "a.zarr"), client, cities=["Lyon"])
    f.write_text("")
    with pytest.raises(NetmobFormatError, match=r"Lyon_Tor_20190401_DL.txt: empty file"):
        _ingest(tree_copy, str(tmp_path / "b.zarr"), client, cities=["Lyon"])


def test_quarantine_keeps_good_lines_and_counts_add_up(tree_copy, tmp_path, client):
    f = tree_copy / "Lyon/YouTube/20190330/Lyon_YouTube_20190330_DL.txt"
    ids, vals = read_text(f)
    _corrupt(f, 2, f"{ids[1]} 1 2 3\n")  # 3 values read, rejected
    _corrupt(f, 4, f"{ids[3]} " + " ".join(["5"] * 95) + " -1\n")  # 96 read, rejected
    lines = f.read_text().splitlines(keepends=True)
    f.write_text("".join(lines) + "77777777 " + " ".join(["1"] * 96) + "\n")  # outside grid
    empty = tree_copy / "Lyon/Tor/20190329/Lyon_Tor_20190329_DL.txt"
    empty.write_text("")
    s = str(tmp_path / "q.zarr")
    qc = _ingest(tree_copy, s, client, cities=["Lyon"], on_error="quarantine")
    assert qc["values_read"] == qc["values_stored"] + qc["values_rejected"]
    assert qc["values_rejected"] == 3 + 96 + 96
    assert qc["files"]["partial"] == 1 and qc["files"]["rejected"] == 1
    rej = {(Path(r["path"]).name, r["line"]): r["reason"] for r in qc["rejected"]}
    assert rej[("Lyon_YouTube_20190330_DL.txt", 2)].startswith("too few value columns")
    assert rej[("Lyon_YouTube_20190330_DL.txt", 4)] == "negative value in value column 96"
    assert rej[("Lyon_YouTube_20190330_DL.txt", len(ids) + 1)] == "tile id outside the city's grid: 77777777"
    assert rej[("Lyon_Tor_20190329_DL.txt", None)] == "empty file"
    csv = pd.read_csv(next((tmp_path / "rep").glob("rejected-*.csv")))
    assert len(csv) == 4
    ds = store.open_cube(s, "Lyon")
    t = local_slots_utc(dt.date(2019, 3, 30), 96)
    got = ds["DL"].sel(service="YouTube", time=t).sel(tile=ids).values
    assert np.isnan(got[[1, 3]]).all()  # rejected lines stored as NaN, not zero
    keep = np.setdiff1d(np.arange(len(ids)), [1, 3])
    np.testing.assert_array_equal(got[keep], vals[keep].astype(np.float32))
    missing = {(m["service"], m["day"], m["state"]) for m in qc["cities"]["Lyon"]["missing"]}
    assert ("Tor", "2019-03-29", "rejected") in missing


def test_interrupted_file_is_redone(tree_copy, tmp_path, client):
    s = str(tmp_path / "r.zarr")
    _ingest(tree_copy, s, client, cities=["Nice"])
    g = store.open_city(s, "Nice", mode="r+")
    # simulate a task killed after writing data but before its status: garbage data, pending
    si = list(g["service"][:]).index("Tor")
    g["DL"][si, :, 0, :96] = np.full((g["DL"].shape[1], 96), 123.0, dtype=np.float32)
    g["DL_status"][si, 0] = store.STATUS["pending"]
    p = ingest.plan(str(tree_copy), s, cities=["Nice"])
    assert [(t.key.service, t.key.day) for t in p.tasks] == [("Tor", dt.date(2019, 3, 29))]
    _ingest(tree_copy, s, client, cities=["Nice"])
    ids, vals = read_text(tree_copy / "Nice/Tor/20190329/Nice_Tor_20190329_DL.txt")
    got = store.open_cube(s, "Nice")["DL"].sel(service="Tor", tile=ids).isel(time=slice(0, 96)).values
    np.testing.assert_array_equal(got, vals.astype(np.float32))


def test_extend_with_new_days_and_service(tree_copy, tmp_path, client):
    s = str(tmp_path / "e.zarr")
    # first only 2 days of Tor and Web_Adult
    sub = tmp_path / "sub"
    for f in tree_copy.glob("Nice/*/*/*.txt"):
        day = f.parts[-2]
        if f.parts[-3] != "YouTube" and day <= "20190330":
            dst = sub / f.relative_to(tree_copy)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(f.read_bytes())
    _ingest(sub, s, client)
    lay = store.read_layout(s, "Nice")
    assert lay.services == ("Tor", "Web_Adult") and lay.last_day == dt.date(2019, 3, 30)
    qc = _ingest(tree_copy, s, client, cities=["Nice"])
    lay = store.read_layout(s, "Nice")
    assert lay.services == ("Tor", "Web_Adult", "YouTube") and lay.last_day == dt.date(2019, 4, 1)
    assert qc["skipped_complete"] == 4 and qc["files"]["ok"] == 12 - 4
    ds = store.open_cube(s, "Nice").load()
    assert not np.isnan(ds["DL"].values).any()
    ids, vals = read_text(tree_copy / "Nice/YouTube/20190401/Nice_YouTube_20190401_DL.txt")
    got = ds["DL"].sel(service="YouTube", tile=ids, time=local_slots_utc(dt.date(2019, 4, 1), 96)).values
    np.testing.assert_array_equal(got, vals.astype(np.float32))


def test_outage_days_flagged(tmp_path, client):
    from cpc_core.synth.generator import SynthSpec
    from jobs.synth import run_synth

    spec = SynthSpec(cities=("Nice",), services=("Tor", "Web_Adult"), start=dt.date(2019, 4, 12), days=4,
                     scale=0.005, seed=3)
    run_synth(spec, tmp_path / "d", client)
    qc = _ingest(tmp_path / "d" / "netmob", str(tmp_path / "o.zarr"), client)
    flagged = {(o["service"], o["day"]) for o in qc["cities"]["Nice"]["outages"]}
    assert flagged == {("Tor", "2019-04-14"), ("Web_Adult", "2019-04-14")}


def test_ignored_and_absent_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ingest.discover(str(tmp_path / "nope"))
    (tmp_path / "Lyon/Tor/20190316").mkdir(parents=True)
    (tmp_path / "Lyon/Tor/20190316/notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no NetMob traffic files"):
        ingest.discover(str(tmp_path))


def test_store_tile_list_cannot_change(tree_copy, tmp_path, client):
    s = str(tmp_path / "t.zarr")
    _ingest(tree_copy, s, client, cities=["Nice"])
    lay = store.read_layout(s, "Nice")
    other = store.CityLayout("Nice", lay.first_day, lay.last_day, lay.services, lay.tiles[:-1], lay.directions)
    with pytest.raises(ValueError, match="tile list cannot change"):
        store.create_or_extend(s, other)
    assert zarr.open_group(s, mode="r")["Nice/DL"].shape[1] == len(lay.tiles)


def test_fsspec_urls_for_input_and_store(synth_tree, tmp_path, client):
    s = f"file://{tmp_path}/u.zarr"
    qc = run_ingest(f"file://{synth_tree / 'netmob'}", s, client, cities=["Nice"])
    assert qc["files"]["ok"] == 12 and Path(qc["report_dir"]) == Path(f"{tmp_path}/u.zarr.reports")
    ds = store.open_cube(s, "Nice")
    ids, vals = read_text(synth_tree / "netmob/Nice/Tor/20190329/Nice_Tor_20190329_DL.txt")
    got = ds["DL"].sel(service="Tor", tile=ids).isel(time=slice(0, 96)).values
    np.testing.assert_array_equal(got, vals.astype(np.float32))


def test_small_files_are_grouped_into_tasks(synth_tree, tmp_path):
    """Files smaller than the floor travel in groups that keep the plan's order, hold every
    task once and reach the floor (but the last); real-size files stay one per task."""
    p = ingest.plan(str(synth_tree / "netmob"), str(tmp_path / "s.zarr"))
    size = {id(t): len(p.layouts[t.key.city].tiles) * t.ncols for t in p.tasks}
    floor = 3 * max(size.values())
    groups = ingest.batches(p.tasks, p.layouts, min_values=floor)
    assert [t for g in groups for t in g] == p.tasks
    assert all(sum(size[id(t)] for t in g) >= floor for g in groups[:-1])
    assert 1 < len(groups) < len(p.tasks)
    assert len(ingest.batches(p.tasks, p.layouts, min_values=1)) == len(p.tasks)


# --- small hand-made trees, ingested without the cluster (plan + ingest_file, as a worker does) ---

TILES = np.array([66, 100, 200, 300])


def _write(root: Path, city: str, service: str, day: dt.date, direction: str, tiles=TILES, ncols=None,
           seed=0) -> Path:
    """One NetMob file with random integer values; returns its path."""
    from cpc_core.netmob import facts as netmob
    from cpc_core.netmob.textio import format_netmob

    ncols = ncols or netmob.slots_per_day(day)
    vals = np.random.default_rng(seed).integers(1, 50, size=(len(tiles), ncols))
    p = root / city / service / f"{day:%Y%m%d}" / f"{city}_{service}_{day:%Y%m%d}_{direction}.txt"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(format_netmob(np.asarray(tiles), vals))
    return p


def _run_local(root: Path, store_path: Path, **kw):
    p = ingest.plan(str(root), str(store_path), **kw)
    reps = [ingest.ingest_file(t) for t in p.tasks]
    qc = ingest.qc_report(str(store_path), reps, sorted(p.layouts), ignored=p.ignored, tile_refs=p.tile_refs)
    return p, reps, qc


@pytest.mark.parametrize("requested", [False, True])
def test_every_city_expects_the_same_window_services_and_directions(tmp_path, requested):
    """A: Nice lacks a whole service (Tor), its last day, and all UL files; Lyon lacks one file
    in the middle. Each absent file of (services x directions x common window) is missing."""
    days = [dt.date(2019, 3, 29) + dt.timedelta(days=i) for i in range(4)]
    svcs, dirs = ["Tor", "Web_Adult", "YouTube"], ["DL", "UL"]
    root = tmp_path / "netmob"
    written = set()
    for city in ("Lyon", "Nice"):
        for s in svcs:
            for day in days:
                for d in dirs:
                    if (city, s, day, d) == ("Lyon", "YouTube", days[2], "DL"):
                        continue
                    if city == "Nice" and (s == "Tor" or day == days[-1] or d == "UL"):
                        continue
                    _write(root, city, s, day, d)
                    written.add((city, s, day.isoformat(), d))
    kw = {"services": svcs, "directions": dirs} if requested else {}
    _, _, qc = _run_local(root, tmp_path / "c.zarr", **kw)
    # the reference: every combination not written (plain Python, not the ingest's logic)
    want = {(c, s, day.isoformat(), d) for c in ("Lyon", "Nice") for s in svcs for day in days for d in dirs} - written
    got = {(c, m["service"], m["day"], m["direction"]) for c, ci in qc["cities"].items() for m in ci["missing"]}
    assert got == want and len(want) == 1 + 3 * 4 * 2 - 2 * 3  # Lyon 1; Nice 24 expected, 6 written
    assert qc["files"]["missing"] == len(want) and qc["files"]["ok"] == len(written)
    for city in ("Lyon", "Nice"):
        assert qc["cities"][city]["days"] == ["2019-03-29", "2019-04-01"]
        assert qc["cities"][city]["services"] == svcs
    ds = store.open_cube(str(tmp_path / "c.zarr"), "Nice")
    assert set(ds.data_vars) >= {"DL", "UL"}
    last = ds["DL"].sel(service="Web_Adult", time=local_slots_utc(days[-1], 96)).values
    assert last.shape == (4, 96) and np.isnan(last).all()
    assert np.isnan(ds["UL"].values).all() and np.isnan(ds["DL"].sel(service="Tor").values).all()
    ok = ds["DL"].sel(service="YouTube", time=local_slots_utc(days[0], 96)).values
    assert not np.isnan(ok).any()


def _tile_tree(root: Path, deviant: tuple, deviant_tiles) -> list[tuple]:
    keys = [(s, day, d) for s in ("Tor", "YouTube") for day in (dt.date(2019, 3, 20), dt.date(2019, 3, 21))
            for d in ("DL", "UL")]
    for s, day, d in keys:
        _write(root, "Lyon", s, day, d, tiles=deviant_tiles if (s, day, d) == deviant else TILES)
    return keys


def test_tile_list_from_the_majority_when_the_first_file_lacks_a_tile(tmp_path):
    """B: the plan's first file lacks tile 300; the middle and last files agree on all four."""
    root = tmp_path / "netmob"
    first = ("Tor", dt.date(2019, 3, 20), "DL")
    _tile_tree(root, first, TILES[:-1])
    refs = ["Lyon_YouTube_20190320_DL.txt", "Lyon_YouTube_20190321_UL.txt"]  # middle and last of 8
    with pytest.raises(NetmobFormatError) as ei:
        _run_local(root, tmp_path / "f.zarr")
    assert ei.value.path.endswith("Lyon_Tor_20190320_DL.txt")
    assert "1 of 4 tiles absent (e.g. 300)" in ei.value.reason and all(r in ei.value.reason for r in refs)

    p, reps, qc = _run_local(root, tmp_path / "q.zarr", on_error="quarantine")
    np.testing.assert_array_equal(p.layouts["Lyon"].tiles, TILES)
    by = {(r.service, r.day, r.direction): r for r in reps}
    bad = by["Tor", "2019-03-20", "DL"]
    assert bad.status == "partial" and bad.tiles_missing == 1
    assert [e["code"] for e in bad.errors] == [ingest.TILES_ABSENT]
    assert "300" in bad.errors[0]["reason"] and all(r in bad.errors[0]["reason"] for r in refs)
    assert all(r.status == "ok" for k, r in by.items() if k != ("Tor", "2019-03-20", "DL"))
    assert qc["cities"]["Lyon"]["tile_list_from"]["deviant"].endswith("Lyon_Tor_20190320_DL.txt")
    assert any(r["path"] == bad.path and "300" in r["reason"] for r in qc["rejected"])
    assert qc["values_read"] == qc["values_stored"] + qc["values_rejected"]
    got = store.open_cube(str(tmp_path / "q.zarr"), "Lyon")["DL"].sel(
        service="Tor", tile=300, time=local_slots_utc(dt.date(2019, 3, 20), 96)).values
    assert np.isnan(got).all()


def test_tile_list_extra_tile_in_the_middle_file_names_the_reference(tmp_path):
    """B: the middle file of the plan lists an extra tile; its rejected line names the files the
    city's list came from."""
    root = tmp_path / "netmob"
    middle = ("YouTube", dt.date(2019, 3, 20), "DL")
    _tile_tree(root, middle, np.append(TILES, 999))
    p, reps, qc = _run_local(root, tmp_path / "q.zarr", on_error="quarantine")
    np.testing.assert_array_equal(p.layouts["Lyon"].tiles, TILES)
    bad = next(r for r in reps if (r.service, r.day, r.direction) == ("YouTube", "2019-03-20", "DL"))
    assert bad.status == "partial" and [e["line"] for e in bad.errors] == [5]
    reason = bad.errors[0]["reason"]
    assert reason.startswith("tile id not in the city's tile list: 999")
    assert "Lyon_Tor_20190320_DL.txt" in reason and "Lyon_YouTube_20190321_UL.txt" in reason
    assert qc["cities"]["Lyon"]["tile_list_from"]["deviant"] == bad.path


def test_tile_list_fails_when_no_two_reference_files_agree(tmp_path):
    root = tmp_path / "netmob"
    keys = _tile_tree(root, ("YouTube", dt.date(2019, 3, 20), "DL"), TILES[1:])  # the middle file
    _write(root, "Lyon", "YouTube", dt.date(2019, 3, 21), "UL", tiles=TILES[:2])  # the last file
    assert len(keys) == 8
    with pytest.raises(NetmobFormatError, match="no two agree") as ei:
        ingest.plan(str(root), str(tmp_path / "s.zarr"), on_error="fail")
    for name in ("Lyon_Tor_20190320_DL.txt", "Lyon_YouTube_20190320_DL.txt", "Lyon_YouTube_20190321_UL.txt"):
        assert name in ei.value.reason
    assert store.read_layout(str(tmp_path / "s.zarr"), "Lyon") is None
    # quarantine keeps going on the first file's list (the one fully validated) and reports
    # the others against it: a one-day run of DL and UL that differ is not stopped
    pl = ingest.plan(str(root), str(tmp_path / "q.zarr"), on_error="quarantine")
    np.testing.assert_array_equal(store.read_layout(str(tmp_path / "q.zarr"), "Lyon").tiles, TILES)
    assert pl.tile_refs["Lyon"].sources == [str(root / "Lyon/Tor/20190320/Lyon_Tor_20190320_DL.txt")]


def test_tile_list_reference_files_use_the_parsers_rules(tmp_path):
    """A 20-digit tile id in a reference file is a rejected line (the tile-id reader crashed on
    it), and two empty reference files are no majority against the validated first file."""
    root = tmp_path / "netmob"
    _tile_tree(root, ("Tor", dt.date(2019, 3, 20), "DL"), TILES)
    middle = root / "Lyon/YouTube/20190320/Lyon_YouTube_20190320_DL.txt"
    middle.write_bytes(middle.read_bytes() + b"99999999999999999999 " + b"1 " * 95 + b"1\n")
    pl = ingest.plan(str(root), str(tmp_path / "a.zarr"), on_error="quarantine")
    np.testing.assert_array_equal(store.read_layout(str(tmp_path / "a.zarr"), "Lyon").tiles, TILES)
    assert pl.tile_refs["Lyon"].deviant is None
    for f in (middle, root / "Lyon/YouTube/20190321/Lyon_YouTube_20190321_UL.txt"):
        f.write_bytes(b"")
    ingest.plan(str(root), str(tmp_path / "b.zarr"), on_error="quarantine")
    np.testing.assert_array_equal(store.read_layout(str(tmp_path / "b.zarr"), "Lyon").tiles, TILES)


def test_quarantine_whole_file_reject_keeps_the_line_reasons(tmp_path):
    """C: a 92-column file on a 96-slot day: every line is bad, the file is rejected, and the
    report keeps each line's number and reason besides the whole-file entry."""
    root = tmp_path / "netmob"
    day = dt.date(2019, 3, 20)
    _write(root, "Lyon", "AAA", day, "DL")
    bad = _write(root, "Lyon", "YouTube", day, "DL", ncols=92)
    _, reps, qc = _run_local(root, tmp_path / "q.zarr", on_error="quarantine")
    r = next(x for x in reps if x.service == "YouTube")
    assert r.status == "rejected"
    lines = [(e["line"], e["reason"]) for e in r.errors]
    assert lines[:4] == [(i, "too few value columns: expected 96, found 92") for i in (1, 2, 3, 4)]
    assert lines[4][0] is None and lines[4][1].startswith("no valid line")
    assert r.values_read == 4 * 92 == r.values_rejected and r.values_stored == 0
    assert sum(e["values"] for e in r.errors) == r.values_rejected
    assert qc["values_read"] == qc["values_stored"] + qc["values_rejected"]
    rows = [x for x in qc["rejected"] if x["path"] == str(bad)]
    assert [x["line"] for x in rows] == [1, 2, 3, 4, None]
    md = ingest.qc_markdown(qc)
    assert f"| {bad} | 3 | too few value columns: expected 96, found 92 | 92 |" in md
    assert f"| {bad} |  | no valid line" in md
    assert any(m["state"] == "rejected" and m["service"] == "YouTube" for m in qc["cities"]["Lyon"]["missing"])


def test_markdown_lists_at_most_a_few_rejected_lines_per_file():
    """A file bad on every line (81k lines on a real city) must not make the Markdown report a
    line per rejected line: the first MD_REJECTED_PER_FILE, then a count; the JSON keeps all."""
    n = ingest.MD_REJECTED_PER_FILE + 7
    qc = {"store": "s", "files": dict.fromkeys(("ok", "partial", "missing", "rejected"), 0), "values_read": 0,
          "values_stored": 0, "values_rejected": 0, "cities": {},
          "rejected": [{"path": "a.txt", "line": i, "reason": "too few", "values": 92} for i in range(1, n + 1)]
          + [{"path": "b.txt", "line": 4, "reason": "negative value", "values": 1}]}
    md = ingest.qc_markdown(qc)
    assert md.count("| a.txt |") == ingest.MD_REJECTED_PER_FILE + 1
    assert f"| a.txt | {ingest.MD_REJECTED_PER_FILE} | too few | 92 |" in md
    assert f"| a.txt | {ingest.MD_REJECTED_PER_FILE + 1} |" not in md
    assert "| a.txt | ... | 7 more entries of this file (JSON, CSV) | |" in md
    assert "| b.txt | 4 | negative value | 1 |" in md
    assert f"{n + 1} entries in 2 files, {92 * n + 1:,} values" in md


def test_discover_lists_every_unused_file_under_a_city(tmp_path):
    """D: every file under a city folder that is not a traffic file is listed, but the city's
    own GeoJSON."""
    root = tmp_path / "netmob"
    day = dt.date(2019, 3, 21)
    _write(root, "Lyon", "YouTube", day, "DL")
    d = root / "Lyon/YouTube/20190321"
    strays = [d / "Lyon_YouTube_20190321_DL.txt.bak", d / "lyon_youtube_20190321_DL.txt",
              d / "Lyon_YouTube_20190321_DL.TXT", d / "Lyon_YouTube_20190321_DL (copy).txt",
              root / "Lyon/YouTube/Lyon_YouTube_20190321_UL.txt", root / "Lyon/notes.md",
              root / "Lyon/YouTube/20190321/extra/Lyon_YouTube_20190321_UL.txt",
              root / "Lyon/YouTube/20190230/Lyon_YouTube_20190230_DL.txt",
              root / "Lyon/YouTube/20190322/Lyon_YouTube_20190321_DL.txt"]
    for s in strays:
        s.parent.mkdir(parents=True, exist_ok=True)
        s.write_text("66 1\n")
    (root / "Lyon/Lyon.geojson").write_text("{}")
    found, ignored = ingest.discover(str(root))
    assert list(found["Lyon"].values()) == [str(d / "Lyon_YouTube_20190321_DL.txt")]
    assert ignored == sorted(str(s) for s in strays)
    # a selection does not turn unselected traffic files into ignored ones
    _write(root, "Lyon", "Tor", day, "DL")
    assert ingest.discover(str(root), services=["YouTube"])[1] == ignored


def test_ignored_files_in_the_qc_reports(tree_copy, tmp_path, client):
    """D: the job's JSON lists every ignored file, the Markdown counts them and lists 50."""
    strays = [tree_copy / "Nice/Tor" / f"stray_{i:02d}.txt" for i in range(55)]
    for s in strays:
        s.write_text("1 2\n")
    qc = _ingest(tree_copy, str(tmp_path / "c.zarr"), client, cities=["Nice"])
    assert qc["ignored_paths"] == [str(s) for s in strays] and qc["ignored_files"] == 55
    js = json.loads(next((tmp_path / "rep").glob("ingest-*.json")).read_text())
    assert js["ignored_paths"] == qc["ignored_paths"]
    md = next((tmp_path / "rep").glob("ingest-*.md")).read_text()
    assert "Ignored files (under the city folders, not NetMob traffic files): 55" in md
    assert f"- {strays[49]}" in md and f"- {strays[50]}" not in md and "and 5 more" in md
    assert "Nice.geojson" not in md and (tree_copy / "Nice/Nice.geojson").exists()


def test_unknown_city_is_ingested_and_flagged_in_the_qc_report(tmp_path):
    """E: a folder that is not a NetMob23 city (here a typo) is kept, its QC entry says that
    its tile ids were not checked against a grid."""
    root = tmp_path / "netmob"
    day = dt.date(2019, 3, 20)
    _write(root, "Marseilles", "YouTube", day, "DL", tiles=[5, 10**9])
    _write(root, "Lyon", "YouTube", day, "DL")
    _, reps, qc = _run_local(root, tmp_path / "c.zarr")
    assert sorted(r.status for r in reps) == ["ok", "ok"]
    assert qc["unknown_cities"] == ["Marseilles"]
    assert qc["cities"]["Marseilles"]["grid"] is None and "not checked against a grid" in qc["cities"]["Marseilles"]["note"]
    assert qc["cities"]["Lyon"]["grid"] == [426, 287] and "note" not in qc["cities"]["Lyon"]
    md = ingest.qc_markdown(qc)
    assert "not NetMob23 cities (tile ids not checked against a grid): Marseilles" in md
    section = md.split("## Marseilles")[1]
    assert "not checked against a grid" in section


def test_parse_file_path_names_the_path_on_an_impossible_date():
    """F."""
    from cpc_core.netmob import facts as netmob

    p = "/x/Lyon/YouTube/20190230/Lyon_YouTube_20190230_DL.txt"
    with pytest.raises(ValueError, match=r"^/x/Lyon/YouTube/20190230/Lyon_YouTube_20190230_DL.txt: 20190230 is not"):
        netmob.parse_file_path(p)


def test_tile_list_mismatch_on_a_later_run_names_the_store_and_the_files(tmp_path):
    """B: on a re-run the reference is the stored list; the error names it and its files."""
    root = tmp_path / "netmob"
    _tile_tree(root, (), TILES)
    s = tmp_path / "s.zarr"
    _run_local(root, s)
    f = _write(root, "Lyon", "Tor", dt.date(2019, 3, 21), "UL", tiles=TILES[:-1])
    p = ingest.plan(str(root), str(s), force=True)
    assert p.tile_refs["Lyon"].stored_in == f"{s}/Lyon"
    task = next(t for t in p.tasks if t.path == str(f))
    with pytest.raises(NetmobFormatError) as ei:
        ingest.ingest_file(task)
    assert ei.value.path == str(f) and "1 of 4 tiles absent (e.g. 300)" in ei.value.reason
    assert f"the tile list stored in {s}/Lyon (first taken from {root}/Lyon/Tor/20190320/" in ei.value.reason


def test_survey_names_what_is_present_but_unusable_and_never_lists_a_fifo_as_data(tmp_path):
    """Issue #12: each entry in a traffic file's place is used, ignored with its reason, or
    present but unusable (with its key, so that quarantine stores its slot as rejected)."""
    import gzip
    import os

    from cpc_core.netmob import facts as netmob

    root = tmp_path / "netmob"
    days = [dt.date(2019, 3, 20) + dt.timedelta(days=i) for i in range(6)]
    paths = [_write(root, "Lyon", "Tor", d, "DL") for d in days]
    paths[0].unlink()
    os.mkfifo(paths[0])  # a FIFO: ignored, never opened
    paths[1].unlink()
    paths[1].mkdir()  # a directory in its place
    paths[2].rename(paths[2].with_name(paths[2].name.replace("Lyon_Tor", "lyon_tor")))  # wrong case
    paths[3].with_name(paths[3].name + ".gz").write_bytes(gzip.compress(paths[3].read_bytes()))  # two copies
    paths[4].with_name(paths[4].name + ".zst").write_bytes(b"x")
    paths[4].unlink()  # a compressed file only: used
    stray = paths[5].with_name(paths[5].name.upper())  # wrong case beside the right file: ignored
    stray.write_bytes(b"1 2\n")
    sv = ingest.survey(str(root))
    assert sv.found["Lyon"] == {netmob.FileKey("Lyon", "Tor", days[4], "DL"): str(paths[4]) + ".zst",
                                netmob.FileKey("Lyon", "Tor", days[5], "DL"): str(paths[5])}
    assert "a FIFO" in sv.ignored[str(paths[0])] and "never opened" in sv.ignored[str(paths[0])]
    assert sv.ignored[str(stray)] == f"name differs only in case from {paths[5]}, which is used"
    why = {u.path: (u.key.day, u.reason) for u in sv.unusable}
    assert why[str(paths[1])] == (days[1], "a directory, not a file")
    wrong = str(paths[2].with_name(paths[2].name.replace("Lyon_Tor", "lyon_tor")))
    assert why[wrong][0] == days[2] and why[wrong][1].startswith("the name differs in case from the layout's")
    assert why[str(paths[3])] == (days[3], f"2 copies of one file: {paths[3]} and {paths[3]}.gz (each would be "
                                           "counted; keep one)")
    assert len(sv.unusable) == 3
    # fail mode stops while planning, naming the first and counting the others
    with pytest.raises(NetmobFormatError, match=r"present but unusable: a directory, not a file \(and 2 more"):
        ingest.plan(str(root), str(tmp_path / "s.zarr"))
    assert store.read_layout(str(tmp_path / "s.zarr"), "Lyon") is None


def test_a_tree_assembled_with_symbolic_links_is_ingested_like_the_real_one(tmp_path):
    """NetMob trees are often assembled with links (a city's or a service's folder, or single
    files, on another disk): each is followed to its target, the values stored are those of the
    real tree, a link cycle is entered once, and a file changed inside a linked folder changes
    the no-op ingest's input signature (jobs._ingest_state)."""
    from jobs import _ingest_state

    real = tmp_path / "disk" / "netmob"
    days = [dt.date(2019, 3, 20) + dt.timedelta(days=i) for i in range(3)]
    files = [_write(real, "Lyon", svc, d, "DL", seed=i + 3 * j)
             for j, svc in enumerate(("Tor", "Web_Adult")) for i, d in enumerate(days)]
    _write(real, "Nice", "Tor", days[0], "DL", seed=9)
    linked = tmp_path / "work" / "netmob"
    (linked / "Lyon" / "Web_Adult").mkdir(parents=True)
    (linked / "Lyon" / "Tor").symlink_to(real / "Lyon" / "Tor", target_is_directory=True)  # a folder
    for f in files[3:]:  # single files, each in a folder of its own
        d = linked / "Lyon" / "Web_Adult" / f.parent.name
        d.mkdir()
        (d / f.name).symlink_to(f)
    (linked / "Nice").symlink_to(real / "Nice", target_is_directory=True)  # a whole city
    (real / "Lyon" / "Tor" / f"{days[0]:%Y%m%d}" / "back").symlink_to("..", target_is_directory=True)  # a cycle
    # one walk for the survey and the signature: names in order, links entered, the cycle's
    # entry listed but not entered (nothing under it twice)
    from cpc_core import storage

    seen = [os.path.relpath(e.path, real) for e in storage.local_tree(str(real))]
    assert len(seen) == len(set(seen)) and f"Lyon/Tor/{days[0]:%Y%m%d}/back" in seen
    assert not any(p.startswith(f"Lyon/Tor/{days[0]:%Y%m%d}/back/") for p in seen)
    assert seen == sorted(seen, key=lambda p: p.split("/"))  # depth first, names sorted
    walked = [os.path.relpath(e.path, linked) for e in storage.local_tree(str(linked))]
    assert sum(p.endswith(".txt") for p in walked) == 7  # every file, through the links
    sv_real, sv_link = ingest.survey(str(real)), ingest.survey(str(linked))
    assert sv_link.ignored == {} and sv_link.unusable == []
    assert {c: sorted(k) for c, k in sv_link.found.items()} == {c: sorted(k) for c, k in sv_real.found.items()}
    assert len(sv_link.found["Lyon"]) == 6 and len(sv_link.found["Nice"]) == 1
    _, _, qc_real = _run_local(real, tmp_path / "real.zarr")
    _, _, qc_link = _run_local(linked, tmp_path / "link.zarr")
    assert qc_link["values_stored"] == qc_real["values_stored"] > 0 and qc_link["files"] == qc_real["files"]
    assert qc_link["ignored_files"] == qc_real["ignored_files"]
    for city in ("Lyon", "Nice"):
        a, b = store.open_city(str(tmp_path / "real.zarr"), city), store.open_city(str(tmp_path / "link.zarr"), city)
        np.testing.assert_array_equal(a["DL"][:], b["DL"][:])
    before = _ingest_state.signature(str(linked), str(tmp_path / "link.zarr"), {}, "input")
    files[0].write_bytes(files[0].read_bytes()[:-2] + b"7\n")  # inside the linked Tor folder
    assert _ingest_state.signature(str(linked), str(tmp_path / "link.zarr"), {}, "input") != before


def test_majority_tile_list_when_no_first_file_is_clean(tmp_path):
    """Issue #12: quarantine takes the tiles on a valid line in more than half of the files
    tried; what is left out is listed and each of its lines is rejected and counted."""
    root = tmp_path / "netmob"
    keys = [("Tor", dt.date(2019, 3, 20) + dt.timedelta(days=i), "DL") for i in range(3)]
    files = [_write(root, "Lyon", s, d, r, seed=i) for i, (s, d, r) in enumerate(keys)]
    for i, f in enumerate(files):  # one negative value per file, on a different tile each
        _corrupt_bytes(f, i + 1)
    files[0].write_bytes(files[0].read_bytes() + b"500 " + b"1 " * 95 + b"1\n")  # in one file only
    with pytest.raises(NetmobFormatError, match="negative value"):
        ingest.plan(str(root), str(tmp_path / "f.zarr"))
    p, reps, qc = _run_local(root, tmp_path / "q.zarr", on_error="quarantine")
    np.testing.assert_array_equal(p.layouts["Lyon"].tiles, TILES)  # each tile valid in 2 of 3
    ref = qc["cities"]["Lyon"]["tile_list_from"]
    assert ref["left_out"] == [500] and ref["left_out_tiles"] == 1 and "more than half of these 3" in ref["rule"]
    first = next(r for r in reps if r.path == str(files[0]))
    assert [(e["line"], e["values"]) for e in first.errors] == [(1, 96), (5, 96)]
    assert first.errors[1]["reason"].startswith("tile id not in the city's tile list: 500")
    assert qc["values_rejected"] == 4 * 96 and qc["values_read"] == qc["values_stored"] + qc["values_rejected"]
    # every file bad on every line: no list, an error naming the files tried
    for f in files:
        f.write_bytes(b"x 1\n")
    with pytest.raises(NetmobFormatError, match="no file with a valid line to take the city's tile list from"):
        ingest.plan(str(root), str(tmp_path / "e.zarr"), on_error="quarantine")


def _corrupt_bytes(path: Path, lineno: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    toks = lines[lineno - 1].split()
    toks[3] = b"-1"
    lines[lineno - 1] = b" ".join(toks) + b"\n"
    path.write_bytes(b"".join(lines))


def test_layout2_store_reads_verifies_and_extends_as_before(synth_tree, cube, cube_v2, tmp_path, client):
    """A store written before layout 3 (15-minute arrays indexed by UTC time, one chunk per
    hour) against the same files in a layout-3 store: the same (service, tile, time) cube
    through ``open_cube`` (its time axis read by zarr alone: the independent reference), the
    same hourly rollup, nothing damaged, nothing to ingest again; extended by a later day, it
    stays layout 2 (readers pick one layout per city) and reads the new day back."""
    import shutil

    from cpc_core.estimate import rollup

    for city in ("Lyon", "Nice"):
        g2, g3 = store.open_city(cube_v2, city), store.open_city(cube, city)
        assert (g2.attrs["layout_version"], g2["DL"].ndim) == (2, 3)
        assert (g3.attrs["layout_version"], g3["DL"].ndim) == (3, 4)
        a, b = store.open_cube(cube_v2, city).load(), store.open_cube(cube, city).load()
        assert a["DL"].dims == b["DL"].dims == ("service", "tile", "time")
        np.testing.assert_array_equal(a["time"].values, b["time"].values)
        np.testing.assert_array_equal(a["DL"].values, b["DL"].values)
        assert "slot" not in b.dims and b["DL"].attrs["units"] == a["DL"].attrs["units"]
        n = g3["tile"].shape[0]
        w = np.zeros((2, n), np.float32)
        w[np.arange(n) % 2, np.arange(n)] = 1
        h2, t2 = rollup.rollup_store(cube_v2, city, w, ["a", "b"], ["Tor", "Web_Adult"])
        h3, t3 = rollup.rollup_store(cube, city, w, ["a", "b"], ["Tor", "Web_Adult"])
        np.testing.assert_array_equal(h2.values, h3.values)
        np.testing.assert_array_equal(t2.values, t3.values)
        s3, _ = rollup.rollup_store(cube, city, w, ["a", "b"], ["Tor", "Web_Adult"], source="slots")
        np.testing.assert_allclose(s3.values, h3.values, rtol=1e-6)  # the 15-minute path, day chunks
        assert store.verify(cube_v2, store.read_layout(cube_v2, city), full=True) == []
    assert ingest.plan(str(synth_tree / "netmob"), cube_v2).tasks == []
    # a later day: the store stays layout 2
    old = str(tmp_path / "v2.zarr")
    shutil.copytree(cube_v2, old)
    more = tmp_path / "more"
    shutil.copytree(synth_tree / "netmob", more)
    days = sorted(p.name for p in (more / "Nice" / "Tor").iterdir())
    nxt = (pd.Timestamp(days[-1]) + pd.Timedelta(days=1)).strftime("%Y%m%d")
    for service in ("Tor", "Web_Adult", "YouTube"):
        src = more / "Nice" / service / days[0] / f"Nice_{service}_{days[0]}_DL.txt"
        dst = more / "Nice" / service / nxt / f"Nice_{service}_{nxt}_DL.txt"
        dst.parent.mkdir()
        shutil.copyfile(src, dst)
    _ingest(more, old, client, cities=["Nice"])
    g = store.open_city(old, "Nice")
    assert (g.attrs["layout_version"], g["DL"].ndim) == (2, 3)
    ds = store.open_cube(old, "Nice")
    ids, vals = read_text(more / "Nice" / "Tor" / nxt / f"Nice_Tor_{nxt}_DL.txt")  # the independent parse
    got = ds["DL"].sel(service="Tor", tile=ids, time=local_slots_utc(pd.Timestamp(nxt).date(), 96)).values
    np.testing.assert_array_equal(got, vals.astype(np.float32))
    assert store.verify(old, store.read_layout(old, "Nice"), full=True) == []
