"""The library is lazy: on Dask input its functions build graphs and compute nothing.

Each test calls a library function on dask-backed input inside
:func:`tests.raise_if_dask_computes` (any compute raises), checks that the result is still
lazy, then computes it (the test plays the job, which owns every compute point) and compares
it with an independent plain numpy / pandas / shapely reference on small data.
"""

from __future__ import annotations

import datetime as dt

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr

from cpc_core.estimate import correlation, outages, profiles, rollup, uncertainty
from cpc_core.estimate.cpc import estimate_by_lag
from cpc_core.geo import crosswalk as xwalk
from cpc_core.geo import tiles as geo_tiles
from cpc_core.netmob.facts import GRID_CRS
from tests import raise_if_dask_computes

HOURS = pd.date_range("2019-03-25T00:00", periods=24 * 14, freq="h")  # UTC, two weeks


def _series(seed: int, n_areas: int = 5, nan_share: float = 0.05) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    values = rng.gamma(2.0, 50.0, size=(n_areas, HOURS.size))
    values[rng.random(values.shape) < nan_share] = np.nan
    return xr.DataArray(values, dims=("area", "hour"),
                        coords={"area": [f"a{i}" for i in range(n_areas)], "hour": HOURS})


def _is_lazy(obj) -> bool:
    return dask.is_dask_collection(obj)


@pytest.mark.parametrize("nparts", [3, 1])
def test_crosswalk_lazy_builds_a_graph_and_matches_point_in_polygon(nparts):
    # a 6 x 4 grid of 100 m tiles, areas: the west half, and two quarters of the east half
    # (one partition: a delayed kernel, no dask-geopandas graph; the same rows)
    ids = list(range(24))
    tiles = geo_tiles.tile_polygons((0.0, 0.0), ids, cols=6)
    boxes = {"w": shapely.box(0, 0, 300, 400), "ne": shapely.box(300, 200, 600, 400),
             "se": shapely.box(300, 0, 600, 120)}  # centroids at y = 150 east are in no area
    areas = gpd.GeoDataFrame({"area": list(boxes)}, geometry=list(boxes.values()), crs=GRID_CRS)
    with raise_if_dask_computes():
        plan = xwalk.crosswalk_lazy(tiles, areas, crs=GRID_CRS, npartitions=nparts)
    assert _is_lazy(plan.table) and plan.npartitions == nparts
    (table,) = dask.compute(plan.table, scheduler="sync")
    got = plan.finish(table)
    # reference: each tile's centroid tested against every box (closed sets, smallest code)
    expected = {}
    for tile_id, geom in zip(tiles["tile_id"], tiles.geometry, strict=True):
        hits = sorted(code for code, box in boxes.items() if shapely.intersects(box, geom.centroid))
        if hits:
            expected[int(tile_id)] = hits[0]
    assert dict(zip(got.table["tile_id"].tolist(), got.table["area"].tolist(), strict=True)) == expected
    assert sorted(got.unmatched.tolist()) == sorted(set(ids) - set(expected))
    assert set(got.unmatched.tolist()) != set()  # the gap is really there


def test_one_partition_crosswalk_needs_no_dask_geopandas():
    """A small city's crosswalk (one partition) is one delayed kernel: computing it in a fresh
    process imports neither dask-geopandas nor dask.dataframe (~0.5 s beside the ingest)."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, dask, geopandas as gpd, shapely\n"
            "from cpc_core.geo import crosswalk as xw, tiles as gt\n"
            "t = gt.tile_polygons((0.0, 0.0), list(range(6)), cols=3)\n"
            "a = gpd.GeoDataFrame({'area': ['a']}, geometry=[shapely.box(0, 0, 300, 200)], crs='EPSG:27572')\n"
            "p = xw.crosswalk_lazy(t, a, crs='EPSG:27572')\n"
            "(tb,) = dask.compute(p.table, scheduler='sync')\n"
            "print(p.npartitions, len(p.finish(tb).table), [m for m in ('dask_geopandas', 'dask.dataframe') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "6", "[]"], out.stdout


def test_weekday_hour_cells_lazy_matches_pandas_groupby():
    s = _series(1)
    with raise_if_dask_computes():
        lazy = profiles.weekday_hour_cells(s.chunk({"area": 2, "hour": 100}))
        raw = profiles.weekday_hour_cells(s.chunk({"area": 2}), normalise=False)
    assert _is_lazy(lazy) and _is_lazy(raw)
    # reference: per area, the mean per local weekday x hour; summed over areas; / max
    local = HOURS.tz_localize("UTC").tz_convert("Europe/Paris")
    frame = s.to_pandas().T  # hours x areas
    means = frame.groupby([local.day_of_week, local.hour]).mean()  # skips NaN
    total = means.sum(axis=1, min_count=1).unstack()
    got_raw = profiles.profile_frame(raw.compute())
    np.testing.assert_allclose(got_raw.to_numpy(), total.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(profiles.profile_frame(lazy.compute()).to_numpy(),
                               total.to_numpy() / np.nanmax(total.to_numpy()), rtol=1e-12)
    assert list(got_raw.index) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    # the eager table refuses dask input rather than computing it behind the caller's back
    with raise_if_dask_computes(), pytest.raises(TypeError, match="in-memory"):
        profiles.weekday_hour_profile(s.chunk({"area": 2}))


def test_authors_slot_hours_lazy_matches_a_loop():
    rng = np.random.default_rng(2)
    slots = pd.date_range("2019-03-31T00:00", periods=4 * 6, freq="15min")
    wa = rng.integers(0, 3, size=(3, slots.size)).astype(float)  # many exact zeros
    wa[0, :4] = 0.0  # a whole hour of zeros: missing
    tor = rng.gamma(2.0, 5.0, size=wa.shape)
    tor[1, 5] = np.nan  # a kept NaN slot (when its Web_Adult is not 0) makes its hour NaN
    wa[1, 5] = 1.0
    ds = xr.Dataset({"web_adult": (("area", "slot"), wa), "tor": (("area", "slot"), tor)},
                    coords={"area": ["x", "y", "z"], "slot": slots})
    with raise_if_dask_computes():
        hours, n = outages.authors_slot_hours(ds.chunk({"slot": 8}))
    assert _is_lazy(hours["tor"]) and _is_lazy(n)
    hours, n = dask.compute(hours, n)
    for a in range(3):
        for h in range(6):
            q = slice(4 * h, 4 * h + 4)
            keep = wa[a, q] != 0
            assert n.values[a, h] == (~keep).sum()
            for name, v in (("tor", tor), ("web_adult", wa)):
                want = np.nan if not keep.any() else v[a, q][keep].sum()
                np.testing.assert_equal(hours[name].values[a, h], want)
    assert np.isnan(hours["tor"].values[0, 0]) and np.isnan(hours["tor"].values[1, 1])


def test_exclude_outages_and_summary_lazy_match_numpy_masks():
    s = _series(3, n_areas=4, nan_share=0.0)
    ds = xr.Dataset({"tor": s, "web_adult": s * 2})
    city = pd.Series(["Lyon", "Lyon", "Nice", "Nice"], index=s["area"].values)
    known = {"Lyon": [dt.date(2019, 3, 27)], "Nice": [dt.date(2019, 4, 2)]}
    extra = [dt.date(2019, 3, 30)]
    with raise_if_dask_computes():
        lazy, masks = outages.exclude_outages(ds.chunk({"hour": 50}), city, known_days=known, extra_days=extra)
        summary = outages.exclusion_summary(masks)
    assert _is_lazy(lazy["tor"])  # the masks come from coordinates only: numpy, no compute needed
    day = HOURS.tz_localize("UTC").tz_convert("Europe/Paris").date
    drop = np.zeros(s.shape, dtype=bool)
    for i, c in enumerate(city):
        drop[i] = np.isin(day, known[c] + extra)
    np.testing.assert_array_equal(np.isnan(lazy["tor"].values), drop)
    np.testing.assert_array_equal(lazy["tor"].values[~drop], s.values[~drop])
    assert int(summary["area_hours"].compute()) == drop.sum() == 4 * 24 * 2  # 2 local days per area


def test_window_totals_and_combine_cities_lazy_match_numpy():
    rng = np.random.default_rng(4)
    a = rng.random((2, 3, 10)).astype(np.float32)
    a[0, 1, 2] = np.nan
    coords = {"service": ["Tor", "YouTube"], "area": ["p", "q", "r"], "hour": HOURS[:10]}
    da = xr.DataArray(a, dims=("service", "area", "hour"), coords=coords)
    other = da.isel(area=[1, 2]).assign_coords(area=["r", "s"]) * 2
    with raise_if_dask_computes():
        tot = rollup.window_totals(da.chunk({"hour": 4}))
        both = rollup.combine_cities({"A": da.chunk({"hour": 4}), "B": other.chunk({"hour": 4})})
    assert _is_lazy(tot) and _is_lazy(both)
    np.testing.assert_allclose(tot.values, np.nansum(a.astype(np.float64), axis=2), rtol=1e-12)
    both = both.compute()
    np.testing.assert_allclose(both.sel(area="p").values, a[:, 0], rtol=1e-6)
    r = np.where(np.isnan(a[:, 2]) & np.isnan(2 * a[:, 1]), np.nan, np.nan_to_num(a[:, 2]) + np.nan_to_num(2 * a[:, 1]))
    np.testing.assert_allclose(both.sel(area="r").values, r, rtol=1e-6)
    np.testing.assert_allclose(both.sel(area="s").values, 2 * a[:, 2], rtol=1e-6)


def test_lagged_correlation_lazy_matches_corrcoef():
    wa, tor = _series(5, nan_share=0.0), _series(6, nan_share=0.0) + _series(5, nan_share=0.0)
    with raise_if_dask_computes():
        ds = correlation.lagged_correlation(wa.chunk({"area": 2}), tor.chunk({"area": 2}), lags=[0, 1],
                                            transform="none", min_pairs=24)
    assert _is_lazy(ds["rho"])
    ds = ds.compute()
    for i in range(wa.sizes["area"]):
        x, y = wa.values[i], tor.values[i]
        assert ds["rho"].sel(lag=0).values[i] == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-9)
        assert ds["rho"].sel(lag=1).values[i] == pytest.approx(np.corrcoef(x[:-1], y[1:])[0, 1], rel=1e-9)


def test_estimate_by_lag_and_propagate_draws_lazy_match_the_formula():
    rng = np.random.default_rng(7)
    areas = ["a", "b", "c", "d"]
    rho = xr.DataArray(rng.uniform(-0.3, 0.6, size=(4, 5)), dims=("area", "draw"), coords={"area": areas})
    tor = xr.DataArray(rng.uniform(1e5, 1e6, size=4), dims="area", coords={"area": areas})
    pop = xr.DataArray([1000.0, 2500.0, np.nan, 400.0], dims="area", coords={"area": areas})
    shares = pd.DataFrame({"onion_share": rng.uniform(0.05, 0.1, 5), "csam_share": rng.uniform(0.05, 0.1, 5)})
    floor = 1e-5
    with raise_if_dask_computes():
        draws = uncertainty.propagate_draws(rho.chunk({"area": 2}), tor.chunk(), pop.chunk(), shares, floor=floor)
        by_lag = estimate_by_lag(tor.chunk(), rho.rename(draw="lag").chunk({"area": 2}), pop.chunk(),
                                 onion_share=0.08, csam_share=0.07, floor=floor)
    assert _is_lazy(draws["cpc"]) and _is_lazy(by_lag["cpc"])
    draws, by_lag = draws.compute(), by_lag.compute()
    r = rho.values.T  # (draw, area)
    raw = shares["onion_share"].to_numpy()[:, None] * shares["csam_share"].to_numpy()[:, None] * r
    c = np.where(raw <= 0, floor, raw)
    cpc = c * tor.values[None, :]
    np.testing.assert_allclose(draws["c"].transpose("draw", "area").values, c, rtol=1e-12)
    np.testing.assert_allclose(draws["cpc_per_1000"].values, cpc / pop.values * 1000, rtol=1e-12)
    c2 = np.where(0.08 * 0.07 * rho.values <= 0, floor, 0.08 * 0.07 * rho.values)
    np.testing.assert_allclose(by_lag["cpc"].transpose("area", "lag").values, c2 * tor.values[:, None], rtol=1e-12)
    # the summary needs the draws in memory and says so instead of computing them
    with raise_if_dask_computes(), pytest.raises(TypeError, match="in memory"):
        uncertainty.propagate(rho.chunk({"area": 2}), tor, pop)


def test_zero_hour_mask_lazy_matches_numpy():
    s = _series(8, n_areas=3, nan_share=0.1)
    s = s.where(np.random.default_rng(8).random(s.shape) > 0.2, 0.0)
    days = [dt.date(2019, 3, 31)]
    with raise_if_dask_computes():
        mask = outages.zero_hour_mask(s.chunk({"hour": 30}), days)
    assert _is_lazy(mask)
    on = np.isin(HOURS.tz_localize("UTC").tz_convert("Europe/Paris").date, days)
    np.testing.assert_array_equal(mask.values, (s.values == 0) & on[None, :])
