"""Weekday x hour profiles (docs/method.md section 3, Figure 3).

Small (areas x hours): the lazy wrapper :func:`weekday_hour_cells` maps the numpy kernel
:func:`_slot_means` over chunks of areas; the caller computes. The profiles are aggregates
(published); the top tiles and the POI table are in :mod:`cpc_core.estimate.poi`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from cpc_core.estimate import cpc as estimate
from cpc_core.estimate.areas import AREA_COLUMN
from cpc_core.netmob import facts as netmob

__all__ = [
    "profile_frame",
    "scope_profiles",
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


def _cell_of_hours(hours) -> np.ndarray:
    """The weekday x hour cell (0..167, Monday 0h first) of each UTC hour, in local time."""
    local = pd.DatetimeIndex(hours).tz_localize("UTC").tz_convert(netmob.LOCAL_TZ)
    return np.asarray(local.day_of_week * 24 + local.hour, dtype=np.int64)


def _normalised_total(means: np.ndarray) -> np.ndarray:
    """(n_slots,) sum over the rows of (rows, n_slots) cell means, NaN where no row has a value,
    divided by its maximum when that is positive (the normalised profile, flattened)."""
    total = np.where(np.isnan(means), 0.0, means).sum(axis=0)
    total = np.where(~np.isnan(means).all(axis=0), total, np.nan)
    with np.errstate(invalid="ignore"):
        peak = np.nanmax(total) if (~np.isnan(total)).any() else np.nan
    return total / peak if peak > 0 else total


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
    slot = _cell_of_hours(series["hour"].values)

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


def scope_profiles(
    series: xr.Dataset,
    communes: pd.DataFrame,
    measures: Sequence[str],
    *,
    top_n: int,
    area: str | None,
    min_population: int,
    min_tiles: int,
) -> pd.DataFrame:
    """``profiles.csv``: normalised weekday x hour profiles of every measure in three scopes.

    The scopes: ``all`` areas; ``top<n>_cpc``, the ``top_n`` areas of highest cpc per 1000
    that are not small; ``area:<code>``, one area (``area``, default the first of the top
    list). Each scope carries a disclosure flag: it is small when its areas together fall
    below the thresholds, counting the known populations only (a lower bound), so that a
    single-area scope gets that area's flag.

    Parameters
    ----------
    series
        In-memory (area, hour) hourly series, one variable per measure in ``measures``, after
        the outage exclusion. The hourly cpc (``tor`` x the area's c) is derived here.
    communes
        The per-area table (:func:`cpc_core.estimate.areas.area_tables`): ``area``, ``c``,
        ``cpc_per_1000``, ``population``, ``n_tiles``, ``small_area``.
    measures
        The service variables (``tor``, ``web_adult``, ...); ``cpc`` is added.
    top_n, area
        ``poi.profile_top_n`` and ``poi.profile_area``.
    min_population, min_tiles
        Disclosure thresholds.

    Returns
    -------
    pandas.DataFrame
        ``scope, measure, weekday, hour, value, small_area`` (long form).
    """
    c = communes.set_index(AREA_COLUMN)["c"]
    codes = series["area"].values
    ranked = communes.dropna(subset=["cpc_per_1000"]).sort_values("cpc_per_1000", ascending=False)
    top = ranked.loc[~ranked["small_area"], AREA_COLUMN].head(top_n).tolist()
    one = area or (top[0] if top else None)
    scopes = {"all": codes.tolist(), f"top{top_n}_cpc": top}
    if one is not None:
        scopes[f"area:{one}"] = [one]
    by_code = communes.set_index(AREA_COLUMN)
    # Every area's cell means, once per measure (one sparse product each): a scope's profile
    # is the sum of its members' rows, so the scopes share them (twelve profiles took 0.1 s of
    # each lag re-run when each selected and reduced its own areas). The same arithmetic as
    # weekday_hour_profile on the scope's areas: _slot_means works row by row.
    slot = _cell_of_hours(series["hour"].values)
    tor = np.asarray(series["tor"].transpose("area", "hour").values)
    values = {k: np.asarray(series[k].transpose("area", "hour").values) for k in measures}
    # the hourly cpc: tor x the area's c (NaN c: the area has no cpc hour)
    values["cpc"] = tor * c.reindex(codes).to_numpy()[:, None]
    means = {k: _slot_means(v, slot) for k, v in values.items()}
    row_of = pd.Index(codes)
    cells = pd.MultiIndex.from_product([list(WEEKDAYS), range(24)], names=["weekday", "hour"]).to_frame(index=False)
    rows = []
    for scope, members in scopes.items():
        if not members:
            continue
        pop = by_code["population"].reindex(members).sum()
        n_tiles = by_code["n_tiles"].reindex(members).fillna(0).sum()
        small = bool(estimate.small_area_flags(pd.Series([pop]), pd.Series([n_tiles]), min_population,
                                               min_tiles)["small_area"].iloc[0])
        idx = row_of.get_indexer(members)
        if (idx < 0).any():
            raise KeyError(f"scope {scope}: areas not in the hourly series: "
                           f"{[m for m, i in zip(members, idx, strict=True) if i < 0][:5]}")
        for measure, m in means.items():
            # Fortran order, as _slot_means returns it: numpy then sums the areas of each cell
            # pairwise along the contiguous axis, as weekday_hour_profile does (a C-ordered copy
            # would be summed in sequence and differ in the last bits)
            rows.append(cells.assign(value=_normalised_total(np.asfortranarray(m[idx])), scope=scope, measure=measure,
                                     small_area=small))
    return pd.concat(rows, ignore_index=True)[["scope", "measure", "weekday", "hour", "value", "small_area"]]
