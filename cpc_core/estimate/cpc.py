"""Correction factor and the cpc estimate (method, sections 1-3; the paper's Equation 1).

- :data:`GLOBAL_SHARE` -- the global estimate of CSAM in Tor download traffic (Figure 1).
- :func:`correction_factor` -- ``c_j = onion_share x csam_share x rho_j``, non-positive values
  floored as in the paper.
- :func:`estimate` -- the per-area table: ``cpc_j = c_j x Tor_j`` and per-1000 rates of every
  service (pandas in, pandas out).
- :func:`estimate_by_lag` -- the same for every swept lag, on xarray (lazy on dask input).

The disclosure rule (``small_area_flags``) lives in :mod:`cpc_core.disclosure`.

This module is the one home of the cpc formula, and offers the method's constants (defined in
:mod:`cpc_core.estimate.constants`, which imports nothing so that the configuration loads
without numpy): the configuration models, the synthetic truth and the validation use them.
Every constant is a keyword default, so a configuration can override it.
"""

from __future__ import annotations

import logging
from typing import TypeVar

import numpy as np
import pandas as pd
import xarray as xr

# moved to cpc_core.disclosure (its one home); still importable from here for old callers
from cpc_core.disclosure import small_area_flags  # noqa: F401
from cpc_core.estimate.constants import (
    C_FLOOR,
    CSAM_SHARE,
    GLOBAL_SHARE,
    MIN_HOURS,
    ONION_SHARE,
    PORN_SHARE,
    ZERO_VALUE,
)

__all__ = [
    "CSAM_SHARE",
    "ESTIMATE_COLUMNS",
    "GLOBAL_SHARE",
    "ONION_SHARE",
    "PORN_SHARE",
    "C_FLOOR",
    "MIN_HOURS",
    "ZERO_VALUE",
    "correction_factor",
    "cpc_per_1000",
    "estimate",
    "estimate_by_lag",
    "integer_if_whole",
    "per_1000",
]

logger = logging.getLogger(__name__)

#: Columns of :func:`estimate`'s table, in order (``c_floored`` is appended after them).
ESTIMATE_COLUMNS: tuple[str, ...] = (
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
)
_SERVICES = ("tor", "web_adult", "youtube")

RhoT = TypeVar("RhoT", float, np.ndarray, pd.Series, xr.DataArray)


def integer_if_whole(values: pd.Series) -> pd.Series:
    """``values`` as integers when every known value is a whole number.

    Counts (inhabitants, tiles) arrive as float64, because one missing value makes pandas
    store the whole column as floats; a CSV then says ``15818.0``. As integers they are
    written ``15818``: numpy ``int64`` when nothing is missing, else pandas' nullable
    ``Int64``, whose missing values stay empty fields (note: ``DataFrame.to_numpy()`` of a
    frame with an ``Int64`` column holding ``<NA>`` is an object array). A column with a
    fraction (tile counts under area weights), an infinite value or a value beyond 2^53 (not
    exact in a float) is returned unchanged, as is a column that is not float.

    Examples
    --------
    >>> integer_if_whole(pd.Series([15818.0, np.nan, 4561.0])).tolist()
    [15818, <NA>, 4561]
    >>> integer_if_whole(pd.Series([15818.0, 4561.0])).dtype
    dtype('int64')
    >>> integer_if_whole(pd.Series([2.5, 3.0])).dtype
    dtype('float64')
    """
    if not pd.api.types.is_float_dtype(values.dtype):
        return values
    known = values.dropna().to_numpy(dtype=np.float64)
    if not (np.isfinite(known).all() and (known == np.round(known)).all() and (np.abs(known) < 2**53).all()):
        return values
    return values.astype("Int64" if len(known) < len(values) else np.int64)


def _check_share(name: str, value: float, upper: float = 1.0) -> None:
    if not (np.isfinite(value) and 0 < value <= upper):
        raise ValueError(f"{name} must lie in (0, {upper}], got {value!r}")


def correction_factor(
    rho: RhoT,
    onion_share: float = ONION_SHARE,
    csam_share: float = CSAM_SHARE,
    floor: float = C_FLOOR,
) -> tuple[RhoT, RhoT]:
    """Local correction factor ``c = onion_share x csam_share x rho``, floored at ``floor``.

    The paper replaces the 14 negative c_j by 1e-5 so that later logs stay finite; ``c <= 0``
    (``rho <= 0``) is replaced here, which is the same plus the measure-zero case rho == 0.
    The floor corresponds to ``rho_j,0 = floor / (onion_share x csam_share)`` (0.00219).

    Parameters
    ----------
    rho : float, numpy.ndarray, pandas.Series or xarray.DataArray
        Per-area correlations in [-1, 1]; NaN (undefined correlation) stays NaN.
    onion_share, csam_share : float
        Shares in (0, 1], see :data:`ONION_SHARE`, :data:`CSAM_SHARE`.
    floor : float
        Positive replacement for non-positive c.

    Returns
    -------
    c : same type as ``rho``
        The correction factor (lazy for dask-backed input).
    floored : same type as ``rho``, bool
        True where c was replaced by ``floor``.

    Examples
    --------
    >>> c, floored = correction_factor(np.array([0.1649, -0.05, np.nan]))
    >>> print(c.round(6), floored)
    [7.53e-04 1.00e-05      nan] [False  True False]
    """
    _check_share("onion_share", onion_share)
    _check_share("csam_share", csam_share)
    if not (np.isfinite(floor) and floor > 0):
        raise ValueError(f"floor must be a positive number, got {floor!r}")
    raw = onion_share * csam_share * rho
    floored = raw <= 0  # False for NaN: an undefined rho is not silently floored
    if isinstance(raw, pd.Series | xr.DataArray):
        return raw.where(~floored, floor), floored
    c = np.where(floored, floor, raw)
    if np.ndim(rho) == 0:
        return float(c), bool(floored)
    return c, np.asarray(floored)


def per_1000(values, population):
    """A quantity per 1000 inhabitants: ``values / population x 1000``.

    The one home of the per-1000 formula (numpy, pandas or xarray, lazy or not). Missing or
    non-positive populations give NaN, never an infinite or negative rate.

    >>> per_1000(np.array([2.0, 2.0, 2.0]), np.array([500.0, 0.0, np.nan]))
    array([ 4., nan, nan])
    """
    if isinstance(population, (pd.Series, xr.DataArray)):
        population = population.where(population > 0)
    else:
        population = np.asarray(population, dtype=np.float64)
        population = np.where(population > 0, population, np.nan)
    return values / population * 1000.0


def cpc_per_1000(c, tor, population):
    """Equation 1 per 1000 inhabitants: ``cpc_j / pop_j x 1000`` with ``cpc_j = c_j x Tor_j``.

    >>> float(cpc_per_1000(0.5, 200.0, 1000.0))
    100.0
    """
    return per_1000(c * tor, population)


def estimate(
    totals: pd.DataFrame,
    rho: pd.Series,
    *,
    population: str = "population",
    onion_share: float = ONION_SHARE,
    csam_share: float = CSAM_SHARE,
    floor: float = C_FLOOR,
) -> pd.DataFrame:
    """The per-commune cpc estimate and per-1000 rates (Equation 1).

    ``cpc_j = c_j x Tor_j`` with ``c_j`` from :func:`correction_factor` and ``Tor_j`` the
    area's total Tor download traffic over the window; ``*_per_1000 = value / pop_j x 1000``.

    Parameters
    ----------
    totals : pandas.DataFrame
        One row per commune: the commune code as index (named ``commune``) or a ``commune``
        column, and columns ``city``, ``tor``, ``web_adult``, ``youtube`` (window totals,
        non-negative; NaN allowed) and the population column.
    rho : pandas.Series
        rho_j indexed by commune code (e.g. ``lagged_correlation(...).rho.sel(lag=0)``
        converted to a Series). Communes without rho get NaN; extra entries are ignored
        (both logged).
    population : str
        Name of the population column. Missing or non-positive population gives NaN rates
        (logged), never a division by zero.
    onion_share, csam_share, floor : float
        Passed to :func:`correction_factor`.

    Returns
    -------
    pandas.DataFrame
        :data:`ESTIMATE_COLUMNS` then ``c_floored`` (bool), one row per row of ``totals`` in
        its order, with a fresh RangeIndex. ``population`` is the input population column,
        as integers (``Int64``, missing values kept) when every known value is whole
        (:func:`integer_if_whole`).

    Examples
    --------
    >>> totals = pd.DataFrame({"commune": ["75056", "69123"], "city": ["Paris", "Lyon"],
    ...                        "population": [2_000_000, 0], "tor": [1e9, 5e8],
    ...                        "web_adult": [2e10, 1e10], "youtube": [1e12, 6e11]})
    >>> rho = pd.Series([0.1649, -0.02], index=["75056", "69123"])
    >>> out = estimate(totals, rho)
    >>> out[["commune", "c", "cpc", "cpc_per_1000"]]
      commune         c         cpc  cpc_per_1000
    0   75056  0.000753  752804.778    376.402389
    1   69123  0.000010    5000.000           NaN
    """
    table = _commune_table(totals, population)
    if not isinstance(rho, pd.Series):
        raise TypeError(f"rho must be a pandas Series indexed by commune, got {type(rho)}")
    if rho.index.has_duplicates:
        raise ValueError("rho has duplicate communes")
    communes = pd.Index(table["commune"])
    missing = communes.difference(rho.index)
    if len(missing):
        logger.warning("%d communes have no rho; their c and cpc are NaN", len(missing))
    extra = rho.index.difference(communes)
    if len(extra):
        logger.info("%d rho values belong to communes absent from totals; ignored", len(extra))

    out = table.reset_index(drop=True)
    out["rho"] = rho.reindex(communes).to_numpy(dtype=np.float64)
    c, floored = correction_factor(
        out["rho"], onion_share=onion_share, csam_share=csam_share, floor=floor
    )
    if floored.any():
        logger.info("%d communes with c <= 0 floored at %g", int(floored.sum()), floor)
    out["c"] = c
    out["cpc"] = c * out["tor"]

    pop = out["population"].astype(np.float64)
    valid_pop = pop > 0  # False for NaN as well
    if not valid_pop.all():
        logger.warning(
            "%d communes with missing or non-positive population: per-1000 rates are NaN",
            int((~valid_pop).sum()),
        )
    pop = pop.where(valid_pop)
    out["cpc_per_1000"] = per_1000(out["cpc"], pop)
    for service in _SERVICES:
        out[f"{service}_per_1000"] = per_1000(out[service], pop)
    out["c_floored"] = floored.to_numpy()
    # inhabitants are counted: written 15818, not 15818.0 (the rates above used the floats)
    out["population"] = integer_if_whole(out["population"])
    return out[[*ESTIMATE_COLUMNS, "c_floored"]]


def _commune_table(totals: pd.DataFrame, population: str) -> pd.DataFrame:
    """Validated copy of ``totals`` with columns commune, city, population and the services."""
    if not isinstance(totals, pd.DataFrame):
        raise TypeError(f"totals must be a pandas DataFrame, got {type(totals)}")
    table = totals
    if "commune" not in table.columns:
        if table.index.name != "commune":
            raise ValueError("totals needs a 'commune' column or an index named 'commune'")
        table = table.reset_index()
    needed = ["commune", "city", population, *_SERVICES]
    absent = [col for col in needed if col not in table.columns]
    if absent:
        raise ValueError(f"totals lacks the columns {absent}")
    table = table[needed].rename(columns={population: "population"})
    if table["commune"].duplicated().any():
        raise ValueError("totals has duplicate communes")
    for service in _SERVICES:
        values = table[service].astype(np.float64)
        if (values < 0).any():
            raise ValueError(f"{service} has negative totals: traffic cannot be negative")
        table[service] = values
    return table


def estimate_by_lag(
    tor: xr.DataArray,
    rho: xr.DataArray,
    population: xr.DataArray,
    *,
    onion_share: float = ONION_SHARE,
    csam_share: float = CSAM_SHARE,
    floor: float = C_FLOOR,
) -> xr.Dataset:
    """Correction factor and cpc for every swept lag (and any other dimension), on xarray.

    Parameters
    ----------
    tor : xarray.DataArray
        Window total of Tor download traffic per area (dims: area dims).
    rho : xarray.DataArray
        rho per area and lag, e.g. ``lagged_correlation(...).rho``.
    population : xarray.DataArray
        Population per area; missing or non-positive gives NaN rates.
    onion_share, csam_share, floor : float
        Passed to :func:`correction_factor`.

    Returns
    -------
    xarray.Dataset
        ``c``, ``c_floored``, ``cpc`` and ``cpc_per_1000``, broadcast over the inputs (e.g.
        area x lag); lazy if any input is dask-backed (no count of bad populations is
        logged then, since that would compute).

    Examples
    --------
    >>> rho = xr.DataArray([[0.1, 0.2]], dims=("area", "lag"), coords={"lag": [0, 2]})
    >>> ds = estimate_by_lag(xr.DataArray([1e6], dims="area"), rho,
    ...                      xr.DataArray([1000], dims="area"))
    >>> ds.cpc.values.round(1)
    array([[456.5, 913. ]])
    """
    for name, da in (("tor", tor), ("rho", rho), ("population", population)):
        if not isinstance(da, xr.DataArray):
            raise TypeError(f"{name} must be an xarray.DataArray, got {type(da).__name__}")
    try:
        tor, rho, population = xr.align(tor, rho, population, join="exact")
    except ValueError as err:
        raise ValueError(
            f"tor, rho and population must share their area coordinates: {err}"
        ) from err
    c, floored = correction_factor(rho, onion_share=onion_share, csam_share=csam_share, floor=floor)
    if population.chunks is None:
        n_bad = int((~(population > 0)).sum())
        if n_bad:
            logger.warning("%d areas with missing or non-positive population", n_bad)
    cpc = c * tor
    rate = per_1000(cpc, population)
    ds = xr.Dataset(
        {
            "c": c.assign_attrs(long_name="correction factor"),
            "c_floored": floored.assign_attrs(long_name=f"c <= 0 replaced by {floor}"),
            "cpc": cpc.assign_attrs(long_name="estimated CSAM-linked Tor download traffic"),
            "cpc_per_1000": rate.assign_attrs(long_name="cpc per 1000 inhabitants"),
        }
    )
    ds.attrs = {"onion_share": onion_share, "csam_share": csam_share, "floor": floor}
    return ds
