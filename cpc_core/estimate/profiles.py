"""Tile-level results, weekday x hour profiles and points of interest (docs/method.md sections 3-4).

Everything here is small (areas x hours, tiles x services) and runs on the client after the
Dask stages. Outputs that name tiles stay internal (disclosure control); the POI table and the
profiles are aggregates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from cpc_core.netmob import facts as netmob

__all__ = [
    "poi_counts",
    "profile_frame",
    "poi_points",
    "poi_table",
    "top_tiles",
    "weekday_hour_cells",
    "weekday_hour_profile",
]

logger = logging.getLogger(__name__)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Cells of the weekday x hour grid.
_N_SLOTS = len(WEEKDAYS) * 24


def _slot_means(values: np.ndarray, slot: np.ndarray, n_slots: int = _N_SLOTS) -> np.ndarray:
    """Kernel of :func:`weekday_hour_cells`: per row, the mean of its finite values per slot.

    ``values`` (area, hour), ``slot`` (hour,) the weekday x hour cell of each hour. Returns
    (area, n_slots) float64, NaN where a row has no finite value in a cell. Sums and counts are
    one sparse product each (hours x cells indicator), never a copy per cell.
    """
    ok = np.isfinite(values)
    ind_t = sp.csr_matrix((np.ones(len(slot)), (slot, np.arange(len(slot)))), shape=(n_slots, len(slot)))
    sums = (ind_t @ np.where(ok, values, 0.0).astype(np.float64).T).T
    counts = (ind_t @ ok.T.astype(np.float64)).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def weekday_hour_cells(series: xr.DataArray, normalise: bool = True) -> xr.DataArray:
    """Typical traffic per local (Europe/Paris) weekday and hour, summed over areas; lazy.

    Definition: for each area, the mean of its valid (finite) hours in each weekday x hour
    cell; then the sum of these means over the areas that have one. An excluded or missing
    hour of one area (a city's own outage day, a rejected file) therefore leaves that area's
    cell to its other weeks and does not pull the whole cell down, as a mean of area sums
    would (the other areas' traffic of that hour would be averaged against weeks where all
    areas count). Without missing hours both definitions agree. A cell where an area has no
    valid hour at all leaves that area out of the cell's sum.

    The Dask wrapper of :func:`_slot_means`: on dask input it builds a graph (one task per
    chunk of areas, the hours whole) and computes nothing; only coordinates are read.

    Parameters
    ----------
    series
        (area, hour) hourly traffic, ``hour`` in UTC; NaN hours (excluded, missing) are skipped.
    normalise
        Divide by the overall maximum so profiles of different services compare (Figure 3).

    Returns
    -------
    xarray.DataArray
        (weekday, hour) float64, ``weekday`` Mon..Sun, ``hour`` local 0..23; NaN where no
        area has a valid hour. Dask-backed where ``series`` is.

    Examples
    --------
    >>> hours = pd.date_range("2019-03-18T00:00", periods=48, freq="h")  # Mon 01:00 local on
    >>> s = xr.DataArray(np.ones((2, 48)), dims=("area", "hour"), coords={"hour": hours})
    >>> cells = weekday_hour_cells(s, normalise=False)
    >>> float(cells.sel(weekday="Mon", hour=1)), int(cells.notnull().sum())
    (2.0, 48)
    """
    series = series.transpose("area", "hour")
    if series.chunks is not None:
        series = series.chunk({"hour": -1})  # the kernel needs every hour of an area
    # coordinates only (numpy): the weekday x hour cell of each UTC hour
    local = pd.DatetimeIndex(series["hour"].values).tz_localize("UTC").tz_convert(netmob.LOCAL_TZ)
    slot = np.asarray(local.day_of_week * 24 + local.hour, dtype=np.int64)

    def kernel(values: np.ndarray) -> np.ndarray:
        means = _slot_means(np.asarray(values), slot)
        return means.reshape(*means.shape[:-1], len(WEEKDAYS), 24)

    means = xr.apply_ufunc(
        kernel, xr.DataArray(series.data, dims=series.dims), input_core_dims=[["hour"]], output_core_dims=[["weekday", "local_hour"]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"weekday": len(WEEKDAYS), "local_hour": 24}},
    )
    # the UTC hour axis is gone: the local hour takes its name
    means = means.rename(local_hour="hour").assign_coords(weekday=list(WEEKDAYS), hour=np.arange(24))
    # NaN-free sum (a plain numpy sum over areas, as np.nansum does), NaN where no area has one
    total = means.fillna(0.0).sum("area", skipna=False).where(means.notnull().any("area"))
    if normalise:
        peak = total.max(skipna=True)
        total = xr.where(peak > 0, total / peak, total)
    return total.rename("profile")


def weekday_hour_profile(series: xr.DataArray, normalise: bool = True) -> pd.DataFrame:
    """:func:`weekday_hour_cells` of in-memory data, as a 7 x 24 table.

    Parameters
    ----------
    series
        (area, hour) hourly traffic held in memory (numpy); for Dask-backed series call
        :func:`weekday_hour_cells` and compute it (the caller owns the compute point).
    normalise
        See :func:`weekday_hour_cells`.

    Returns
    -------
    pandas.DataFrame
        7 x 24, index weekday (Mon..Sun), columns local hour 0..23; NaN where no area has a
        valid hour.

    Raises
    ------
    TypeError
        On Dask-backed ``series`` (this function would have to compute it).

    Examples
    --------
    >>> prof = weekday_hour_profile(hourly["tor"])  # doctest: +SKIP
    """
    if series.chunks is not None:
        raise TypeError("weekday_hour_profile needs in-memory data; on Dask input use weekday_hour_cells "
                        "and compute its result")
    return profile_frame(weekday_hour_cells(series, normalise))


def profile_frame(cells: xr.DataArray) -> pd.DataFrame:
    """The 7 x 24 table (index Mon..Sun, columns 0..23) of computed :func:`weekday_hour_cells`."""
    return pd.DataFrame(np.asarray(cells.transpose("weekday", "hour").data, dtype=np.float64),
                        index=list(WEEKDAYS), columns=range(24))


def top_tiles(tile_values: pd.DataFrame, columns: Sequence[str], share: float = 0.001) -> pd.DataFrame:
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

    Parameters
    ----------
    top
        :func:`top_tiles` output.
    tiles
        ``city``, ``tile_id`` and polygon geometry (any CRS).
    pois
        ``id``, ``category``, ``lon``, ``lat`` (WGS84), or the points of :func:`poi_points`.

    Returns
    -------
    pandas.DataFrame
        ``measure, category, n, mean_value_per_poi`` sorted by measure and value.
    """
    pts = poi_points(pois, tiles.crs)
    sel = tiles.merge(top[["measure", "city", "tile_id", "value"]], on=["city", "tile_id"])
    joined = gpd.sjoin(pts, sel, predicate="within", how="inner")
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
    """Count POIs of each category per area (commune covariates), zero where none.

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
