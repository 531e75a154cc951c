"""Outage rules: which area-hours of the hourly series are excluded (docs/method.md section 2.4).

Two rules (``estimate.outage_rule``): ``known_days`` excludes each city's known outage days
whole; ``authors`` follows the authors' notebook, dropping on given days the 15-minute rows whose
Web_Adult is 0 before the slots are summed to hours (:func:`area_slots` reads those slots,
:func:`authors_slot_hours` sums them). Masks come from coordinates only (numpy); the series stay
lazy where they come lazy: the caller computes.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from cpc_core.cube import store
from cpc_core.estimate.rollup import SLOTS_PER_HOUR
from cpc_core.netmob import facts as netmob

__all__ = [
    "area_day_mask",
    "area_slots",
    "authors_slot_hours",
    "exclude_outages",
    "exclusion_summary",
    "zero_hour_mask",
]

logger = logging.getLogger(__name__)


def _local_days(hours) -> np.ndarray:
    """Local (Europe/Paris) calendar day of each UTC hour."""
    return pd.DatetimeIndex(hours).tz_localize("UTC").tz_convert(netmob.LOCAL_TZ).date


def area_day_mask(hourly: xr.Dataset | xr.DataArray, area_city: pd.Series,
                  days_by_city: dict[str, Iterable[dt.date]],
                  every_area_days: Iterable[dt.date] = ()) -> xr.DataArray:
    """(area, hour) bool: True on the excluded local days of each area's city.

    ``days_by_city`` maps a city to its days (the area's city from ``area_city``): outage days
    differ by city (Bordeaux and Toulouse had their own), so the mask is per (area, hour).
    ``every_area_days`` are excluded for every area, whatever its city. Only coordinates are
    read, never the data: the mask is a small numpy array.
    """
    areas = hourly["area"].values
    local_day = _local_days(hourly["hour"].values)
    city_of = area_city.reindex(areas).to_numpy()
    drop = np.zeros((len(areas), len(local_day)), dtype=bool)
    for city, days in days_by_city.items():
        drop[np.ix_(city_of == city, np.isin(local_day, list(days)))] = True
    drop[:, np.isin(local_day, list(every_area_days))] = True
    return xr.DataArray(drop, dims=("area", "hour"), coords={"area": hourly["area"], "hour": hourly["hour"]},
                        name="whole_day")


def zero_hour_mask(series: xr.DataArray, days: Iterable[dt.date]) -> xr.DataArray:
    """(area, hour) bool: the hours of local ``days`` where ``series`` is exactly zero.

    The hourly approximation of the authors' outage rule, used by :func:`exclude_outages`
    only when the 15-minute values of those days are not given (the exact rule works on
    15-minute rows: :func:`authors_slot_hours`). Lazy on Dask input.

    Parameters
    ----------
    series
        (area, hour) hourly traffic, ``hour`` in UTC (usually Web_Adult).
    days
        Local (Europe/Paris) days the rule applies to.
    """
    on_day = xr.DataArray(np.isin(_local_days(series["hour"].values), list(days)), dims="hour",
                          coords={"hour": series["hour"]})
    # NaN (an hour already missing) compares unequal to 0
    return ((series == 0) & on_day).transpose(*series.dims).rename("zero_web_adult")


def area_slots(
    store_path: str,
    city: str,
    weights: sp.spmatrix,
    areas: Iterable[str],
    services: dict[str, str],
    days: Iterable[dt.date],
    direction: str = "DL",
) -> xr.Dataset:
    """15-minute area sums of a city's cube on a few local days (the authors' outage rule).

    Reads only the slots of ``days`` from the 15-minute array (two days at most in practice:
    ~100 slots x tiles per service), so it runs in one task per city.

    Parameters
    ----------
    store_path, city
        The cube and the city group.
    weights
        (areas, tiles) crosswalk weights in the order of the cube's tiles.
    areas
        Area codes, the rows of ``weights``.
    services
        Variable name -> service name in the cube (e.g. ``{"web_adult": "Web_Adult", ...}``).
    days
        Local (Europe/Paris) days.
    direction
        ``"DL"`` or ``"UL"``.

    Returns
    -------
    xarray.Dataset
        One (area, slot) float64 variable per service, ``slot`` the UTC start of each
        15-minute slot; no slot when no day is in the cube. NaN propagates (a missing file).
    """
    g = store.open_city(store_path, city)
    names = [str(s) for s in g["service"][:]]
    arr = g[direction]
    minutes = g["time"][:]
    times = (np.datetime64("1970-01-01T00:00", "m") + minutes.astype("timedelta64[m]")).astype("datetime64[ns]")
    on = np.isin(pd.DatetimeIndex(times).tz_localize("UTC").tz_convert(netmob.LOCAL_TZ).date, list(days))
    idx = np.flatnonzero(on)
    w = sp.csr_matrix(weights, dtype=np.float64)
    areas = np.asarray(list(areas), dtype=object)
    out = {}
    for var, service in services.items():
        si = names.index(service)
        vals = np.empty((len(areas), len(idx)), dtype=np.float64)
        # contiguous runs of slots (one per day): one read each
        runs = np.split(idx, np.flatnonzero(np.diff(idx) != 1) + 1) if len(idx) else []
        col = 0
        for run in runs:
            # checked against the chunks' records as read (a damaged chunk is never read as data)
            blk = store.read_slots(store_path, city, direction, si, int(run[0]), int(run[-1]) + 1, arr=arr)
            blk = blk.astype(np.float64)
            vals[:, col : col + len(run)] = w @ blk
            col += len(run)
        out[var] = (("area", "slot"), vals)
    return xr.Dataset(out, coords={"area": areas, "slot": times[idx]})


def authors_slot_hours(slots: xr.Dataset, key: str = "web_adult") -> tuple[xr.Dataset, xr.DataArray]:
    """The authors' outage rule on 15-minute rows: drop the slots with zero ``key``, sum to hours.

    The authors' notebook drops, on the two outage days, the (area, 15-minute) rows whose
    Web_Adult is 0, then sums the remaining rows to hours (docs/method.md section 2.4). A row holds
    every service, so a dropped slot is dropped for every service. An hour whose four slots
    are all dropped has no row left and is missing (NaN); a NaN slot that is kept (a missing
    file) makes its hour NaN, as everywhere in the rollup.

    Parameters
    ----------
    slots
        (area, slot) series per service, from :func:`area_slots` (summed over cities); the
        slots cover whole UTC hours (local days do).
    key
        The variable whose zero slots are dropped.

    Returns
    -------
    (xarray.Dataset, xarray.DataArray)
        The (area, hour) sums per service, and the (area, hour) int count of dropped slots;
        lazy on Dask input.

    Examples
    --------
    >>> t = pd.date_range("2019-03-31T00:00", periods=4, freq="15min")
    >>> s = xr.Dataset({"web_adult": (("area", "slot"), [[0.0, 2, 3, 0]]),
    ...                 "tor": (("area", "slot"), [[5.0, 1, 1, 5]])}, coords={"area": ["a"], "slot": t})
    >>> h, n = authors_slot_hours(s)
    >>> h["tor"].values.tolist(), n.values.tolist()
    ([[2.0]], [[2]])
    """
    n_slots = slots.sizes["slot"]
    if n_slots % SLOTS_PER_HOUR:
        raise ValueError(f"{n_slots} slots are not whole hours")
    t = pd.DatetimeIndex(slots["slot"].values)
    hours = t[::SLOTS_PER_HOUR]
    if len(t) and not (t.floor("h") == np.repeat(hours, SLOTS_PER_HOUR)).all():
        raise ValueError("slots do not form whole UTC hours of 4 consecutive slots")
    coords = {"area": slots["area"].values, "hour": hours.values}

    def by_hour(da: xr.DataArray) -> xr.DataArray:
        # (area, slot) -> (area, hour, quarter); a reshape, lazy on dask input
        da = xr.DataArray(da.transpose("area", "slot").data, dims=("area", "slot"))
        return da.coarsen(slot=SLOTS_PER_HOUR).construct(slot=("hour", "quarter"))

    dropped = by_hour(slots[key]) == 0  # NaN compares unequal: a missing slot is not an outage row
    gone = dropped.all("quarter")
    out = {}
    for var in slots.data_vars:
        v = by_hour(slots[var]).astype(np.float64)
        # skipna=False: a kept NaN slot (a missing file) makes its hour NaN
        out[var] = xr.where(dropped, 0.0, v).sum("quarter", skipna=False).where(~gone).assign_coords(coords)
    n = dropped.sum("quarter").astype(np.int64).assign_coords(coords).rename("zero_web_adult_slots")
    return xr.Dataset(out, coords=coords), n


def exclude_outages(
    hourly: xr.Dataset,
    area_city: pd.Series,
    rule: str = "known_days",
    known_days: dict[str, Iterable[dt.date]] | None = None,
    extra_days: Iterable[dt.date] = (),
    zero_days: Iterable[dt.date] = (),
    zero_slots: xr.Dataset | None = None,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Mark the excluded area-hours of every series with NaN, by one of two outage rules.

    Parameters
    ----------
    hourly
        (area, hour) series per service (``tor``, ``web_adult``, ...), ``hour`` in UTC.
    area_city
        City of each area (its known outage days come from there).
    rule
        ``"known_days"``: each area's city's whole ``known_days`` (local) are excluded.
        ``"authors"``: the authors' rule, no whole-day exclusion of ``known_days``; instead,
        on the local ``zero_days``, the 15-minute rows of an area with zero ``web_adult`` are
        dropped in every series before the slots are summed to hours (``zero_slots``, see
        :func:`authors_slot_hours`): an hour with every slot dropped is excluded, an hour with
        some dropped is the sum of the others.
    known_days
        Known outage days by city (``netmob.outage_days``); None or empty: none.
    extra_days
        Local days excluded for every area under either rule.
    zero_days
        Local days of the authors' rule (``estimate.zero_web_adult_days``).
    zero_slots
        (area, slot) 15-minute series per service on ``zero_days`` (:func:`area_slots`), for
        the authors' rule. Without it the rule is applied to hours (an hour is dropped when its
        Web_Adult sum is 0), an approximation logged as such.

    Returns
    -------
    (xarray.Dataset, xarray.Dataset)
        The series with NaN on excluded hours (lazy where ``hourly`` is; on the authors' hours
        the slot sums), and the (area, hour) masks ``whole_day`` and ``zero_web_adult`` (bool,
        all False when the rule does not apply) and ``zero_web_adult_slots`` (int, dropped
        15-minute rows), for :func:`exclusion_summary`.
    """
    if rule not in ("known_days", "authors"):
        raise ValueError(f"rule={rule!r}; allowed: known_days, authors")
    whole = area_day_mask(hourly, area_city, (known_days or {}) if rule == "known_days" else {}, extra_days)
    n_slots = xr.zeros_like(whole, dtype=np.int64).rename("zero_web_adult_slots")
    if rule == "authors" and zero_slots is not None:
        slot_hours, n = authors_slot_hours(zero_slots)
        missing = sorted(set(map(str, slot_hours["area"].values)) ^ set(map(str, hourly["area"].values)))
        if missing or not np.isin(slot_hours["hour"].values, hourly["hour"].values).all():
            raise ValueError(f"zero_slots do not match the hourly series (areas {missing[:5]} or hours differ)")
        on = xr.DataArray(np.isin(hourly["hour"].values, slot_hours["hour"].values), dims="hour",
                          coords={"hour": hourly["hour"]})
        slot_hours = slot_hours.reindex(area=hourly["area"], hour=hourly["hour"])
        replaced = xr.Dataset({
            v: xr.where(on, slot_hours[v], hourly[v]).astype(hourly[v].dtype).transpose(*hourly[v].dims)
            if v in slot_hours else hourly[v]
            for v in hourly.data_vars
        })  # fmt: skip
        hourly = replaced.assign_attrs(hourly.attrs)
        n = n.reindex(area=hourly["area"], hour=hourly["hour"], fill_value=0)
        n_slots = n.transpose(*whole.dims).rename("zero_web_adult_slots")
        zero = (n_slots == SLOTS_PER_HOUR).rename("zero_web_adult")
    elif rule == "authors":
        logger.warning("outage_rule authors without 15-minute values: hours with zero Web_Adult are "
                       "dropped (an approximation of the authors' 15-minute rule)")
        zero = zero_hour_mask(hourly["web_adult"], zero_days)
    else:
        zero = xr.zeros_like(whole).rename("zero_web_adult")
    drop = whole | zero
    excluded = hourly if rule == "known_days" and not whole.values.any() else hourly.where(~drop)
    return excluded, xr.Dataset({"whole_day": whole, "zero_web_adult": zero, "zero_web_adult_slots": n_slots})


def exclusion_summary(masks: xr.Dataset) -> xr.Dataset:
    """Counts of excluded area-hours by :func:`exclude_outages`, as 0-d variables (lazy where
    the masks are: the caller computes).

    ``whole_day_area_hours`` and ``zero_web_adult_area_hours`` count the mask's area-hours
    (an hour in both counts in both), ``area_hours`` their union, ``areas_with_zero_web_adult_hours``
    the areas with at least one hour excluded by the authors' rule; ``zero_web_adult_area_slots``
    the 15-minute rows the authors' rule dropped and ``zero_web_adult_partial_area_hours`` the
    area-hours kept as the sum of their other slots (0 under the hourly approximation).
    """
    whole, zero = masks["whole_day"], masks["zero_web_adult"]
    out = {
        "area_hours": (whole | zero).sum(),
        "whole_day_area_hours": whole.sum(),
        "zero_web_adult_area_hours": zero.sum(),
        "areas_with_zero_web_adult_hours": zero.any("hour").sum(),
    }
    if "zero_web_adult_slots" in masks:
        n = masks["zero_web_adult_slots"]
        out["zero_web_adult_area_slots"] = n.sum()
        out["zero_web_adult_partial_area_hours"] = ((n > 0) & (n < SLOTS_PER_HOUR)).sum()
    return xr.Dataset(out)
