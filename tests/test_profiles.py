"""Weekday x hour profiles, top tiles, the POI table and POI counts, checked by hand."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
import xarray as xr
from pyproj import Transformer

from cpc_core import profiles


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
    top = profiles.top_tiles(tv, ["a", "b"], share=0.001)
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
    t = profiles.poi_table(top, tiles, pois, min_n=3)
    assert t["category"].tolist() == ["bar"]  # school has n = 1 < 3
    assert t["n"].iloc[0] == 4
    assert t["mean_value_per_poi"].iloc[0] == pytest.approx((20 + 20 + 10 + 10) / 4)


def test_poi_counts_by_hand():
    areas = gpd.GeoDataFrame({"area": ["w", "e"]}, geometry=[shapely.box(0, 0, 200, 100), shapely.box(200, 0, 400, 100)],
                             crs="EPSG:2154")
    pois = _pois([(10, 10, "school"), (150, 50, "school"), (250, 50, "mosque"), (999, 999, "school"),
                  (50, 50, "restaurant")])
    c = profiles.poi_counts(areas, pois)
    assert c.loc["w", "poi_school"] == 2 and c.loc["e", "poi_mosque"] == 1 and c.loc["e", "poi_school"] == 0
    assert "poi_restaurant" not in c.columns and c.to_numpy().sum() == 3
