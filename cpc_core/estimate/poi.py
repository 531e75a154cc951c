"""Top tiles and points of interest (docs/method.md section 4, the paper's Table 4).

Small tables on the client after the Dask stages. The top tiles name tiles and stay internal
(disclosure control); the POI table and the POI counts per area are aggregates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cpc_core._lazy import geopandas as gpd
from cpc_core.estimate.constants import TOP_SHARE

__all__ = [
    "poi_counts",
    "locate_pois",
    "poi_points",
    "poi_table",
    "poi_table_located",
    "top_tiles",
]

logger = logging.getLogger(__name__)


def top_tiles(tile_values: pd.DataFrame, columns: Sequence[str], share: float = TOP_SHARE) -> pd.DataFrame:
    """The ``share`` of tiles with the highest value, per column (at least one tile each).

    Parameters
    ----------
    tile_values
        One row per tile with ``city``, ``tile_id`` and the value columns.
    columns
        Value columns, e.g. ``["tor_total", "web_adult_total", "youtube_total", "cpc"]``.
    share
        0.001 = the top 0.1 % (the paper).

    Returns
    -------
    pandas.DataFrame
        ``measure, rank, city, tile_id, value``. Internal: names tiles.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share={share}: must be in (0, 1]")
    out = []
    n = max(1, int(np.ceil(share * len(tile_values))))
    for col in columns:
        v = tile_values[["city", "tile_id", col]].dropna().sort_values(col, ascending=False, kind="stable")
        top = v.head(n).rename(columns={col: "value"})
        top.insert(0, "rank", np.arange(1, len(top) + 1))
        top.insert(0, "measure", col)
        out.append(top)
    return pd.concat(out, ignore_index=True)


def poi_points(pois: pd.DataFrame, crs=None) -> gpd.GeoDataFrame:
    """POIs as points (``id``, ``category``, geometry), optionally reprojected to ``crs``.

    ``pois`` is a table with ``id``, ``category``, ``lon``, ``lat`` (WGS84), or already a
    GeoDataFrame of points with ``id`` and ``category`` (returned as is, or reprojected). A
    run reprojects the POI file once and caches the points (jobs/pipeline.py): reprojecting
    them again in every POI table and count cost ~0.1 s per run.
    """
    if isinstance(pois, gpd.GeoDataFrame):
        missing = {"id", "category"} - set(pois.columns)
        if missing:
            raise ValueError(f"POI points lack columns {sorted(missing)}; columns found: {list(pois.columns)}")
        pts = pois[["id", "category", pois.geometry.name]]
    else:
        missing = {"id", "category", "lon", "lat"} - set(pois.columns)
        if missing:
            raise ValueError(f"POI table lacks columns {sorted(missing)}; columns found: {list(pois.columns)}")
        pts = gpd.GeoDataFrame(pois[["id", "category"]], geometry=gpd.points_from_xy(pois["lon"], pois["lat"]),
                               crs="EPSG:4326")
    return pts if crs is None else pts.to_crs(crs)


def poi_table(
    top: pd.DataFrame,
    tiles: gpd.GeoDataFrame,
    pois: pd.DataFrame,
    min_n: int = 3,
) -> pd.DataFrame:
    """Mean traffic per POI category in the top tiles (the paper's Table 4).

    POIs inside each top tile are found by point-in-polygon, de-duplicated by place id within a
    measure; per tile, the tile's value is divided by its POI count; per category, the mean of
    that over the category's POIs. Categories with fewer than ``min_n`` POIs are dropped.
    :func:`locate_pois` then :func:`poi_table_located`.

    Parameters
    ----------
    top
        :func:`top_tiles` output.
    tiles
        ``city``, ``tile_id`` and polygon geometry (any CRS): the top tiles, or more.
    pois
        ``id``, ``category``, ``lon``, ``lat`` (WGS84), or the points of :func:`poi_points`.

    Returns
    -------
    pandas.DataFrame
        ``measure, category, n, mean_value_per_poi`` sorted by measure and value.
    """
    return poi_table_located(top, locate_pois(tiles, pois), min_n=min_n)


def locate_pois(tiles: gpd.GeoDataFrame, pois: pd.DataFrame) -> pd.DataFrame:
    """The tile each POI lies within: ``poi`` (its row in ``pois``), ``id, category, city,
    tile_id``, in the POIs' order.

    The geometric half of :func:`poi_table`: it depends on the POIs and the tile grid only, so
    a run stores it and every re-run (another lag changes the top tiles' values, perhaps the
    tiles) computes its table with pandas (:func:`poi_table_located`). A point on the border
    of two tiles is within neither (shapely's ``within``); on a grid, a point is in one tile.

    Parameters
    ----------
    tiles
        ``city``, ``tile_id`` and polygon geometry (any CRS).
    pois
        ``id``, ``category``, ``lon``, ``lat`` (WGS84), or the points of :func:`poi_points`.
    """
    pts = poi_points(pois, tiles.crs).reset_index(drop=True)
    joined = gpd.sjoin(pts, tiles[["city", "tile_id", tiles.geometry.name]], predicate="within", how="inner")
    joined = joined.sort_index(kind="stable")  # the POIs' order (ties: the tiles' order)
    out = pd.DataFrame({c: joined[c].to_numpy() for c in ("id", "category", "city", "tile_id")})
    out.insert(0, "poi", joined.index.to_numpy())
    return out


def poi_table_located(top: pd.DataFrame, located: pd.DataFrame, min_n: int = 3) -> pd.DataFrame:
    """:func:`poi_table` from the POIs already located in tiles (:func:`locate_pois`).

    Examples
    --------
    >>> top = pd.DataFrame({"measure": ["tor_total"] * 2, "rank": [1, 2], "city": ["Nice"] * 2,
    ...                     "tile_id": [7, 8], "value": [10.0, 4.0]})
    >>> located = pd.DataFrame({"id": [1, 2, 3, 4], "category": ["school", "school", "mosque", "school"],
    ...                         "city": ["Nice"] * 4, "tile_id": [7, 7, 8, 9]})
    >>> poi_table_located(top, located, min_n=1)
         measure category  n  mean_value_per_poi
    0  tor_total   school  2                 5.0
    1  tor_total   mosque  1                 4.0
    """
    joined = located.merge(top[["measure", "city", "tile_id", "value"]], on=["city", "tile_id"])
    if joined.empty:
        return pd.DataFrame(columns=["measure", "category", "n", "mean_value_per_poi"])
    joined = joined.drop_duplicates(["measure", "id"])
    per_tile = joined.groupby(["measure", "city", "tile_id"])["id"].transform("count")
    joined = joined.assign(value_per_poi=joined["value"] / per_tile)
    t = joined.groupby(["measure", "category"]).agg(n=("id", "count"), mean_value_per_poi=("value_per_poi", "mean"))
    t = t[t["n"] >= min_n].reset_index()
    return t.sort_values(["measure", "mean_value_per_poi"], ascending=[True, False], ignore_index=True)


def poi_counts(
    areas: gpd.GeoDataFrame,
    pois: pd.DataFrame,
    categories: Sequence[str],
) -> pd.DataFrame:
    """Count POIs of each category per area (area covariates), zero where none.

    ``pois``: ``id``, ``category``, ``lon``, ``lat`` (WGS84), or the points of
    :func:`poi_points`. ``categories``: the categories to count (``poi.categories``; the
    paper's six are its default).

    Returns
    -------
    pandas.DataFrame
        Index ``area``; one column ``poi_<category>`` per category; POIs in no area are counted
        and logged.
    """
    pts = poi_points(pois, areas.crs)
    pts = pts[pts["category"].isin(categories)].drop_duplicates("id")
    joined = gpd.sjoin(pts, areas[["area", "geometry"]], predicate="within", how="left")
    outside = int(joined["area"].isna().sum())
    if outside:
        logger.info("%d POIs of the selected categories lie in no area", outside)
    counts = joined.dropna(subset=["area"]).groupby(["area", "category"]).size().unstack("category")
    counts = counts.reindex(index=areas["area"], columns=list(categories)).fillna(0).astype(np.int64)
    counts.columns = [f"poi_{c}" for c in counts.columns]
    counts.index.name = "area"
    return counts
