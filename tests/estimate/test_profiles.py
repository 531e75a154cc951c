"""Weekday x hour profiles, top tiles, the POI table and POI counts, checked by hand."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from pyproj import Transformer

from cpc_core.config.core import PoiConfig
from cpc_core.estimate import poi, profiles


def test_weekday_hour_profile_by_hand():
    hours = pd.date_range("2019-04-01T00:00", periods=24 * 14, freq="h")  # UTC, local = UTC+2
    rng = np.random.default_rng(0)
    v = rng.random((3, len(hours)))
    v[1, 5] = np.nan
    da = xr.DataArray(v, dims=("area", "hour"), coords={"hour": hours})
    prof = profiles.weekday_hour_profile(da, normalise=False)
    total = np.nansum(v, axis=0)
    total[5] = np.nansum(v[:, 5])  # min_count=1: a partly missing hour keeps the other areas
    local = hours + pd.Timedelta(hours=2)
    for wd, h in [(0, 2), (6, 23), (3, 7)]:
        sel = (local.day_of_week == wd) & (local.hour == h)
        assert prof.iloc[wd, h] == pytest.approx(total[sel].mean())
    assert profiles.weekday_hour_profile(da).to_numpy().max() == pytest.approx(1.0)


def test_top_tiles_share():
    tv = pd.DataFrame({"city": "X", "tile_id": np.arange(2000), "a": np.arange(2000.0), "b": -np.arange(2000.0)})
    top = poi.top_tiles(tv, ["a", "b"], share=0.001)
    assert top[top.measure == "a"]["tile_id"].tolist() == [1999, 1998]
    assert top[top.measure == "b"]["tile_id"].tolist() == [0, 1]


def _grid():
    boxes = [shapely.box(i * 100, 0, i * 100 + 100, 100) for i in range(4)]
    return gpd.GeoDataFrame({"city": "X", "tile_id": [0, 1, 2, 3]}, geometry=boxes, crs="EPSG:2154")


def _pois(xy_cat):
    to_wgs = Transformer.from_crs("EPSG:2154", "EPSG:4326", always_xy=True)
    x, y = to_wgs.transform([p[0] for p in xy_cat], [p[1] for p in xy_cat])
    return pd.DataFrame({"id": [f"p{i}" for i in range(len(xy_cat))], "category": [p[2] for p in xy_cat],
                         "lon": x, "lat": y})


def test_poi_table_by_hand():
    tiles = _grid()
    top = pd.DataFrame({"measure": "cpc", "rank": [1, 2], "city": "X", "tile_id": [0, 1], "value": [60.0, 20.0]})
    pois = _pois([
        (10, 10, "bar"), (20, 20, "bar"), (30, 30, "school"),  # tile 0: 3 POIs -> 20 each
        (110, 10, "bar"), (120, 20, "bar"),  # tile 1: 2 POIs -> 10 each
        (210, 10, "bar"),  # tile 2: not a top tile
    ])
    pois = pd.concat([pois, pois.iloc[[0]]], ignore_index=True)  # a duplicate place id
    t = poi.poi_table(top, tiles, pois, min_n=3)
    assert t["category"].tolist() == ["bar"]  # school has n = 1 < 3
    assert t["n"].iloc[0] == 4
    assert t["mean_value_per_poi"].iloc[0] == pytest.approx((20 + 20 + 10 + 10) / 4)


def test_poi_counts_by_hand():
    areas = gpd.GeoDataFrame({"area": ["w", "e"]}, geometry=[shapely.box(0, 0, 200, 100), shapely.box(200, 0, 400, 100)],
                             crs="EPSG:2154")
    pois = _pois([(10, 10, "school"), (150, 50, "school"), (250, 50, "mosque"), (999, 999, "school"),
                  (50, 50, "restaurant")])
    c = poi.poi_counts(areas, pois, categories=PoiConfig().categories)
    assert c.loc["w", "poi_school"] == 2 and c.loc["e", "poi_mosque"] == 1 and c.loc["e", "poi_school"] == 0
    assert "poi_restaurant" not in c.columns and c.to_numpy().sum() == 3
    assert list(c.columns) == [f"poi_{k}" for k in PoiConfig().categories]
    # other categories (poi.categories): other columns, in the configured order
    other = poi.poi_counts(areas, pois, categories=("restaurant", "school"))
    assert list(other.columns) == ["poi_restaurant", "poi_school"]
    assert other.loc["w"].tolist() == [1, 2] and other.loc["e"].tolist() == [0, 0]


def test_weekday_hour_profile_one_area_day_excluded_against_pandas():
    """One area's local day excluded (a city's own outage): the all-area profile is the sum of
    per-area weekday x hour means, so the other weeks of that area fill its cell; a mean of
    area sums (the old definition) would pull the whole weekday down."""
    hours = pd.date_range("2019-04-01T00:00", periods=24 * 21, freq="h")  # UTC; Paris = UTC+2
    rng = np.random.default_rng(1)
    v = 100 + 50 * rng.random((3, len(hours)))
    local = hours.tz_localize("UTC").tz_convert("Europe/Paris")
    out_day = (local.date == pd.Timestamp("2019-04-12").date())  # a Friday
    v[2, out_day] = np.nan
    da = xr.DataArray(v, dims=("area", "hour"), coords={"area": ["a", "b", "c"], "hour": hours})
    prof = profiles.weekday_hour_profile(da, normalise=False)
    # independent: pandas groupby per area (NaN skipped), then the sum over areas
    df = pd.DataFrame(v.T, index=local, columns=["a", "b", "c"])
    per_area = df.groupby([df.index.day_of_week, df.index.hour]).mean()
    expect = per_area.sum(axis=1, min_count=1).unstack()
    np.testing.assert_allclose(prof.to_numpy(), expect.to_numpy(), rtol=1e-12)
    # the naive mean of area sums differs on Fridays only, and is lower there
    naive = df.sum(axis=1, min_count=1).groupby([df.index.day_of_week, df.index.hour]).mean().unstack()
    diff = prof.to_numpy() - naive.to_numpy()
    assert (diff[4] > 10).all() and np.allclose(np.delete(diff, 4, axis=0), 0)
    # an area without any valid hour in a cell is left out of that cell's sum
    v2 = v.copy()
    v2[2, (local.day_of_week == 0) & (local.hour == 3)] = np.nan
    p2 = profiles.weekday_hour_profile(da.copy(data=v2), normalise=False)
    assert p2.loc["Mon", 3] == pytest.approx(per_area.loc[(0, 3), ["a", "b"]].sum())
    assert profiles.weekday_hour_profile(da).to_numpy().max() == pytest.approx(1.0)


def test_scope_profiles_equal_each_scopes_own_profile_to_the_last_bit():
    """profiles.csv shares each area's cell means across the scopes: every value must still be
    weekday_hour_profile of that scope's areas exactly (NaN hours, an area without c, a subset
    large enough for numpy's pairwise sums)."""
    hours = pd.date_range("2019-03-25T00:00", periods=24 * 21, freq="h")  # the DST week inside
    rng = np.random.default_rng(3)
    n = 40
    codes = [f"A{i:02d}" for i in range(n)]
    data = {k: rng.gamma(2.0, 50.0, (n, len(hours))).astype(np.float32) for k in ("tor", "web_adult", "youtube")}
    data["tor"][4, 30:60] = np.nan  # an excluded day of one area
    data["web_adult"][:, 100] = np.nan  # an hour missing everywhere
    ds = xr.Dataset({k: (("area", "hour"), v) for k, v in data.items()},
                    coords={"area": np.array(codes, dtype=object), "hour": hours})
    c = rng.uniform(0.01, 0.5, n)
    c[7] = np.nan  # no estimate: no cpc hour
    communes = pd.DataFrame({"area": codes, "c": c, "cpc_per_1000": rng.uniform(0, 10, n),
                             "population": rng.integers(100, 50_000, n), "n_tiles": rng.integers(1, 40, n)})
    communes.loc[7, "cpc_per_1000"] = np.nan
    communes["small_area"] = communes["population"] < 5_000
    got = profiles.scope_profiles(ds, communes, ["tor", "web_adult", "youtube"], top_n=12, area=None,
                                  min_population=5_000, min_tiles=3)
    assert list(got.columns) == ["scope", "measure", "weekday", "hour", "value", "small_area"]
    ranked = communes.dropna(subset=["cpc_per_1000"]).sort_values("cpc_per_1000", ascending=False)
    top = ranked.loc[~ranked["small_area"], "area"].head(12).tolist()
    scopes = {"all": codes, "top12_cpc": top, f"area:{top[0]}": [top[0]]}
    assert got["scope"].unique().tolist() == list(scopes)
    cpc = ds["tor"] * xr.DataArray(c, dims="area", coords={"area": ds["area"]})
    for scope, members in scopes.items():
        for measure in ("tor", "web_adult", "youtube", "cpc"):
            da = (cpc if measure == "cpc" else ds[measure]).sel(area=members)
            want = profiles.weekday_hour_profile(da).to_numpy().ravel()
            rows = got[(got["scope"] == scope) & (got["measure"] == measure)]
            assert rows["weekday"].tolist() == [d for d in profiles.WEEKDAYS for _ in range(24)]
            assert rows["hour"].tolist() == list(range(24)) * 7
            assert np.array_equal(rows["value"].to_numpy(), want, equal_nan=True), (scope, measure)
        pop = communes.set_index("area").loc[members, "population"].sum()
        assert rows["small_area"].iloc[0] == bool(pop < 5_000), scope
