"""Lagged Pearson correlation of Web_Adult and Tor hourly series, per area.

This is the local correction factor's first half (method, section 2): per area *j*, Pearson's
rho_j between the log-transformed hourly ``Web_Adult`` and ``Tor`` download series over the
whole window, and the lagged variant of section 4.2 for a sweep of lags.

Layers, as in flox / xskillscore:

- :func:`transform` -- the authors' ``log`` transform (exact zeros -> ``zero_value``, then the
  natural log); works on numpy, dask and xarray input, lazily for the latter two.
- :func:`_lagged_pearson` -- the numpy kernel: all lags of all areas in one pass over the data,
  compiled with numba.
- :func:`lagged_correlation` -- the xarray wrapper, one ``xr.apply_ufunc(...,
  dask="parallelized")``; lazy on dask input.
- :func:`best_lag` -- the lag whose across-area summary of rho is largest.

Lag convention
--------------
For lag ``L`` the pairs are ``(web_adult[t], tor[t + L])`` for every hour ``t`` where both
values are finite (and ``t + L`` lies inside the window). ``L > 0`` therefore correlates Tor
``L`` hours *after* Web_Adult; ``L < 0`` correlates Tor ``|L|`` hours *before* Web_Adult. The
paper's "Tor lagged by two hours" (Section 4.2), read as R's ``dplyr::lag(tor, 2)`` -- row
``t`` holds ``tor[t - 2]`` -- is ``L = -2`` here; the paper does not spell out the sign, which is
one reason to sweep both signs. Lags count steps of the hour axis, which must therefore be
regular: excluded hours are marked with NaN, never dropped.

Kernel timing (1,300 areas x 1,848 hours x 13 lags, float64, one core of the 2-core dev box):
the one-pass numba kernel ~70 ms; branch-free numba sums of masked, centred arrays ~95 ms;
vectorised numpy on shifted views ~360 ms; a per-lag two-pass numpy loop ~850 ms; ``xr.corr``
per lag 1.3-2.1 s (the box is shared, so times drift). The numba kernel is the one kept.
"""

from __future__ import annotations

import enum
import logging
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np
import pandas as pd
import xarray as xr

from cpc_core import _jit  # numba.njit at the first call: numba is not imported with the module
from cpc_core.estimate.constants import MIN_HOURS, ZERO_VALUE

if TYPE_CHECKING:
    import dask.array

__all__ = [
    "CorrelationStatus",
    "TRANSFORMS",
    "best_lag",
    "lagged_correlation",
    "transform",
]

logger = logging.getLogger(__name__)

TransformKind = Literal["log", "none"]
#: Names accepted by :func:`transform`.
TRANSFORMS: tuple[str, ...] = ("log", "none")

# "dask.array.Array" as a forward reference: dask.array (0.2-0.3 s) is imported by what uses it,
# not by every command that imports this module (issue #14)
ArrayT = TypeVar("ArrayT", np.ndarray, "dask.array.Array", xr.DataArray)


class CorrelationStatus(enum.IntEnum):
    """Why a (area, lag) correlation is or is not defined; the ``reason`` output.

    When several apply, the first in this order is reported.
    """

    OK = 0
    #: Fewer than ``min_pairs`` hours where both series are finite.
    TOO_FEW_PAIRS = 1
    #: Web_Adult (x) is constant over the paired hours: zero variance, rho undefined.
    CONSTANT_X = 2
    #: Tor (y) is constant over the paired hours.
    CONSTANT_Y = 3


# ---------------------------------------------------------------------------------------------
# transform
# ---------------------------------------------------------------------------------------------


def _transform_np(x: np.ndarray, kind: str, zero_value: float) -> np.ndarray:
    """Numpy transform; raises on negative input for ``log`` (checked here, at compute time)."""
    x = np.asarray(x)
    if kind == "none":
        return x
    # NaN < 0 is False: NaN (excluded hour) passes through unchanged.
    if np.any(x < 0):
        raise ValueError(
            f"log transform of negative traffic ({int(np.sum(x < 0))} values < 0); "
            "traffic volumes cannot be negative"
        )
    # A Python float is a "weak" scalar (NEP 50): float32 stays float32, integers -> float64.
    return np.log(np.where(x == 0, zero_value, x))


def _transform_dtype(dtype: np.dtype, kind: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if kind == "none" or np.issubdtype(dtype, np.floating):
        return dtype
    return np.dtype(np.float64)


def _check_transform_args(kind: str, zero_value: float) -> None:
    if kind not in TRANSFORMS:
        raise ValueError(f"transform kind must be one of {TRANSFORMS}, got {kind!r}")
    if kind == "log" and not (np.isfinite(zero_value) and zero_value > 0):
        raise ValueError(f"zero_value must be a positive finite number, got {zero_value!r}")


def transform(x: ArrayT, kind: TransformKind = "log", zero_value: float = ZERO_VALUE) -> ArrayT:
    """Transform traffic before correlating it (lazy on dask-backed input).

    Parameters
    ----------
    x : numpy.ndarray, dask.array.Array or xarray.DataArray
        Non-negative traffic volumes; NaN marks excluded or missing hours and stays NaN.
    kind : {"log", "none"}
        ``"log"``: exact zeros are replaced by ``zero_value``, then the natural log is taken
        (the authors' choice). ``"none"``: identity (e.g. for already transformed input; no
        sign check).
    zero_value : float
        Positive stand-in for zero traffic before the log.

    Returns
    -------
    Same type as ``x``; lazy for dask-backed input. Floating dtypes are kept (float32 stays
    float32), integers become float64.

    Raises
    ------
    ValueError
        For ``kind="log"`` and a negative value: immediately for numpy input, when computed for
        dask-backed input (the wrapper never computes).

    Examples
    --------
    >>> transform(np.array([0.0, 1.0, np.e, np.nan]))
    array([-6.90775528,  0.        ,  1.        ,         nan])
    """
    return _transform(x, kind, zero_value)


def _transform(x, kind: str, zero_value: float):
    # The wrapper's `transform` argument shadows the public function, hence this private name.
    _check_transform_args(kind, zero_value)
    if not hasattr(x, "dtype"):
        x = np.asarray(x)
    out_dtype = _transform_dtype(x.dtype, kind)
    if isinstance(x, xr.DataArray):
        out = xr.apply_ufunc(
            _transform_np,
            x,
            kwargs={"kind": kind, "zero_value": zero_value},
            dask="parallelized",
            output_dtypes=[out_dtype],
            keep_attrs=True,
        )
        if kind == "log":
            out.attrs = {**x.attrs, "transform": f"log(x), x == 0 -> {zero_value}"}
        return out
    if _is_dask_array(x):
        return x.map_blocks(_transform_np, kind=kind, zero_value=zero_value, dtype=out_dtype)
    return _transform_np(x, kind, zero_value)


def _is_dask_array(x) -> bool:
    """Whether ``x`` is a ``dask.array.Array``, without importing dask.array (a dask array can
    only exist once it has been imported)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(x, da.Array)


# ---------------------------------------------------------------------------------------------
# kernel
# ---------------------------------------------------------------------------------------------


@_jit.njit(nogil=True, cache=True)
def finite_mean(row):  # pragma: no cover - numba
    """Mean of the finite values of a 1-d array (0.0 when there is none).

    The centre of the one-pass sums of :func:`_lagged_pearson_2d` and of the bootstrap's day
    sums (``uncertainty._day_stats``), one definition so that the identity resample reproduces
    the correlation exactly.
    """
    total = 0.0
    count = 0
    for u in row:
        if np.isfinite(u):
            total += u
            count += 1
    return total / count if count > 0 else 0.0


@_jit.njit(nogil=True, cache=True)
def _lagged_pearson_2d(x, y, lags, min_pairs, rho, n, reason):  # pragma: no cover - numba
    """Fill ``rho``, ``n``, ``reason`` (areas, lags) from ``x``, ``y`` (areas, hours).

    Per area the data (two series of a few thousand values) stay in L1 cache while all lags
    are summed, so memory is read once. Serial on purpose: parallelism comes from dask
    chunks, and numba's default threading layer aborts when called from several threads.
    """
    n_areas, n_hours = x.shape
    n_lags = lags.shape[0]
    for a in range(n_areas):
        # Centre each series by the mean of its finite values: the one-pass formula
        # sxx - sx**2 / m then subtracts numbers of similar size to the variance, which keeps
        # float64 exact to ~1e-15 even for log traffic around 20 with a variance near 1.
        mean_x = finite_mean(x[a])
        mean_y = finite_mean(y[a])
        for k in range(n_lags):
            lag = lags[k]
            t0 = max(0, -lag)
            t1 = min(n_hours, n_hours - lag)
            m = 0
            sx = 0.0
            sy = 0.0
            sxx = 0.0
            syy = 0.0
            sxy = 0.0
            # Exact min/max rather than a variance tolerance: "constant" is then a fact about
            # the data, not about rounding (costs ~10 % of the kernel).
            x_lo = np.inf
            x_hi = -np.inf
            y_lo = np.inf
            y_hi = -np.inf
            for t in range(t0, t1):
                u = x[a, t]
                v = y[a, t + lag]
                if np.isfinite(u) and np.isfinite(v):
                    m += 1
                    x_lo = min(x_lo, u)
                    x_hi = max(x_hi, u)
                    y_lo = min(y_lo, v)
                    y_hi = max(y_hi, v)
                    u = u - mean_x
                    v = v - mean_y
                    sx += u
                    sy += v
                    sxx += u * u
                    syy += v * v
                    sxy += u * v
            n[a, k] = m
            rho[a, k] = np.nan
            if m < min_pairs:
                reason[a, k] = 1
                continue
            var_x = sxx - sx * sx / m
            var_y = syy - sy * sy / m
            # <= 0 also catches series that differ only in the last bits and cancel to zero.
            if x_lo == x_hi or var_x <= 0.0:
                reason[a, k] = 2
                continue
            if y_lo == y_hi or var_y <= 0.0:
                reason[a, k] = 3
                continue
            r = (sxy - sx * sy / m) / np.sqrt(var_x * var_y)
            rho[a, k] = min(1.0, max(-1.0, r))
            reason[a, k] = 0


def _as_lags(lags: Iterable[int] | np.ndarray) -> np.ndarray:
    arr = np.asarray(list(lags) if not isinstance(lags, np.ndarray) else lags)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError("lags must be a non-empty 1-d sequence of integers")
    if not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError(f"lags must be integers (steps of the hour axis), got {arr!r}")
    arr = arr.astype(np.int64)
    if np.unique(arr).size != arr.size:
        raise ValueError(f"lags must be distinct, got {arr.tolist()}")
    return arr


def _lagged_pearson(
    x: np.ndarray, y: np.ndarray, lags: np.ndarray, min_pairs: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pearson's rho of ``x[..., t]`` and ``y[..., t + lag]`` for every lag, numpy kernel.

    Parameters
    ----------
    x, y : numpy.ndarray, shape (..., hour)
        Transformed Web_Adult (``x``) and Tor (``y``); broadcast against each other. Pairs
        with a non-finite value on either side are skipped.
    lags : numpy.ndarray of int, shape (lag,)
    min_pairs : int
        Fewer finite pairs than this gives NaN and reason 1.

    Returns
    -------
    rho : float64 (..., lag)
    n : int64 (..., lag), the number of pairs used
    reason : int8 (..., lag), :class:`CorrelationStatus` codes
    """
    x, y = np.broadcast_arrays(np.asarray(x), np.asarray(y))
    lead, n_hours = x.shape[:-1], x.shape[-1]
    # float32 input is read as is (sums are float64 inside the kernel); anything else is
    # converted once here.
    if x.dtype not in (np.float32, np.float64) or x.dtype != y.dtype:
        x = x.astype(np.float64)
        y = y.astype(np.float64)
    x2 = np.ascontiguousarray(x).reshape(-1, n_hours)
    y2 = np.ascontiguousarray(y).reshape(-1, n_hours)
    n_lags = lags.shape[0]
    rho = np.empty((x2.shape[0], n_lags), dtype=np.float64)
    n = np.empty((x2.shape[0], n_lags), dtype=np.int64)
    reason = np.empty((x2.shape[0], n_lags), dtype=np.int8)
    if x2.shape[0] > 0:
        _lagged_pearson_2d(x2, y2, np.asarray(lags, dtype=np.int64), int(min_pairs), rho, n, reason)
    shape = (*lead, n_lags)
    return rho.reshape(shape), n.reshape(shape), reason.reshape(shape)


# ---------------------------------------------------------------------------------------------
# xarray wrapper
# ---------------------------------------------------------------------------------------------


def _check_regular_axis(da: xr.DataArray, hour_dim: str) -> None:
    """Lags count steps, so a datetime hour axis must be regular (index only, no compute)."""
    if hour_dim not in da.indexes:
        return
    index = da.indexes[hour_dim]
    if isinstance(index, pd.DatetimeIndex) and index.size > 2:
        steps = np.unique(np.diff(index.asi8))
        if steps.size != 1:
            raise ValueError(
                f"{hour_dim!r} is not a regular axis ({steps.size} different steps): lags "
                "count steps, so mark excluded hours with NaN instead of dropping them"
            )


def aligned_series(web_adult: xr.DataArray, tor: xr.DataArray, hour_dim: str = "hour"
                   ) -> tuple[xr.DataArray, xr.DataArray]:
    """The two hourly series checked (DataArrays on a regular ``hour_dim``) and aligned exactly.

    Shared by :func:`lagged_correlation` and the bootstrap (``uncertainty.bootstrap_rho``), which
    must see the same pairs.

    Raises
    ------
    TypeError
        An input is not an ``xarray.DataArray``.
    ValueError
        No ``hour_dim``, an irregular hour axis, or coordinates that differ (a shifted hour axis
        would silently change every lag).
    """
    for name, da in (("web_adult", web_adult), ("tor", tor)):
        if not isinstance(da, xr.DataArray):
            raise TypeError(f"{name} must be an xarray.DataArray, got {type(da).__name__}")
        if hour_dim not in da.dims:
            raise ValueError(f"{name} has no dimension {hour_dim!r} (dims {da.dims})")
        _check_regular_axis(da, hour_dim)
    try:
        return xr.align(web_adult, tor, join="exact")
    except ValueError as err:
        raise ValueError(
            "web_adult and tor must share identical coordinates (a shifted hour axis would "
            f"silently change every lag): {err}"
        ) from err


def lagged_correlation(
    web_adult: xr.DataArray,
    tor: xr.DataArray,
    lags: Iterable[int] = range(-6, 7),
    transform: TransformKind = "log",
    zero_value: float = ZERO_VALUE,
    min_pairs: int = MIN_HOURS,
    hour_dim: str = "hour",
) -> xr.Dataset:
    """Per-area Pearson correlation of Web_Adult and lagged Tor hourly traffic.

    For every lag ``L`` and every area, Pearson's rho over the hours ``t`` where both
    ``web_adult[t]`` and ``tor[t + L]`` are finite after :func:`transform`. ``L > 0``: Tor
    ``L`` hours after Web_Adult (see the module docstring for the paper's lag).

    Parameters
    ----------
    web_adult, tor : xarray.DataArray
        Hourly traffic with dimension ``hour_dim`` plus any area dimensions; aligned exactly
        (no silent reindexing). NaN marks excluded hours (e.g. known outages).
    lags : iterable of int
        Distinct lags in steps of ``hour_dim``.
    transform : {"log", "none"}
        See :func:`transform`.
    zero_value : float
        Stand-in for zero traffic before the log.
    min_pairs : int
        Minimum number of paired finite hours; default one week.
    hour_dim : str
        The time dimension, in regular hourly steps.

    Returns
    -------
    xarray.Dataset
        ``rho`` (float64), ``n_hours`` (int64, the pairs used) and ``reason`` (int8,
        :class:`CorrelationStatus`), each with dims (area dims..., ``lag``). Lazy when either
        input is dask-backed: chunks follow the area chunks, ``hour_dim`` is merged into one
        chunk.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> wa = xr.DataArray(rng.lognormal(size=(2, 200)), dims=("area", "hour"))
    >>> tor = wa.shift(hour=1).fillna(1.0)
    >>> ds = lagged_correlation(wa, tor, lags=[0, 1], min_pairs=24)
    >>> ds.rho.sel(lag=1).values
    array([1., 1.])
    """
    lag_values = _as_lags(lags)
    _check_transform_args(transform, zero_value)
    if int(min_pairs) < 2:
        raise ValueError(f"min_pairs must be at least 2, got {min_pairs}")
    x, y = aligned_series(web_adult, tor, hour_dim)

    x = _transform(x, transform, zero_value)
    y = _transform(y, transform, zero_value)
    # Every area needs its whole series (pairs cross any hour boundary), so hour is one chunk;
    # areas stay chunked as they come. A 1,848-hour float32 series is 7 kB per area.
    x = _single_hour_chunk(x, hour_dim)
    y = _single_hour_chunk(y, hour_dim)

    rho, n, reason = xr.apply_ufunc(
        _lagged_pearson,
        x,
        y,
        input_core_dims=[[hour_dim], [hour_dim]],
        output_core_dims=[["lag"], ["lag"], ["lag"]],
        kwargs={"lags": lag_values, "min_pairs": int(min_pairs)},
        dask="parallelized",
        output_dtypes=[np.float64, np.int64, np.int8],
        dask_gufunc_kwargs={"output_sizes": {"lag": lag_values.size}},
        # The inputs' attrs (units of traffic) do not describe a correlation.
        keep_attrs=False,
    )
    lag_coord = xr.Variable(
        "lag",
        lag_values,
        attrs={
            "units": f"steps of {hour_dim}",
            "long_name": "lag of Tor after Web_Adult",
            "description": "pairs (web_adult[t], tor[t + lag])",
        },
    )
    statuses = list(CorrelationStatus)
    ds = xr.Dataset(
        {
            "rho": rho.assign_attrs(long_name="Pearson correlation of Web_Adult and lagged Tor"),
            "n_hours": n.assign_attrs(long_name="number of paired finite hours"),
            "reason": reason.assign_attrs(
                long_name="status of rho",
                flag_values=[int(s) for s in statuses],
                flag_meanings=" ".join(s.name.lower() for s in statuses),
            ),
        }
    ).assign_coords(lag=lag_coord)
    ds.attrs = {"transform": transform, "zero_value": zero_value, "min_pairs": int(min_pairs)}
    return ds


def _single_hour_chunk(da: xr.DataArray, hour_dim: str) -> xr.DataArray:
    if da.chunks is None:
        return da
    if len(da.chunksizes[hour_dim]) > 1:
        logger.debug("rechunking %r to a single chunk for the lagged correlation", hour_dim)
        return da.chunk({hour_dim: -1})
    return da


def best_lag(
    rho: xr.DataArray,
    how: Literal["median", "mean"] = "median",
    lag_dim: str = "lag",
) -> xr.DataArray:
    """The lag whose summary of rho over all areas is largest.

    Parameters
    ----------
    rho : xarray.DataArray
        Correlations with dimension ``lag_dim`` (e.g. ``lagged_correlation(...).rho``).
    how : {"median", "mean"}
        Summary over every other dimension, skipping NaN.
    lag_dim : str
        The lag dimension.

    Returns
    -------
    xarray.DataArray
        0-d float64, the best lag (lazy for dask input; NaN when every summary is NaN), with
        ``attrs["summary"] = how``. Ties go to the smallest ``|lag|`` (then the negative one),
        so a flat curve picks no lag rather than the sweep's edge.

    Examples
    --------
    >>> rho = xr.DataArray([[0.1, 0.3, 0.2], [0.0, 0.2, 0.4]], dims=("area", "lag"),
    ...                    coords={"lag": [-1, 0, 1]})
    >>> int(best_lag(rho))  # medians over areas: 0.05, 0.25, 0.3
    1
    """
    if how not in ("median", "mean"):
        raise ValueError(f"how must be 'median' or 'mean', got {how!r}")
    if lag_dim not in rho.dims:
        raise ValueError(f"rho has no dimension {lag_dim!r}")
    if lag_dim not in rho.coords:
        rho = rho.assign_coords({lag_dim: np.arange(rho.sizes[lag_dim])})
    others = [d for d in rho.dims if d != lag_dim]
    summary = getattr(rho, how)(dim=others, skipna=True)
    lag_values = np.asarray(rho[lag_dim].values)
    order = np.lexsort((lag_values, np.abs(lag_values)))
    best = summary.isel({lag_dim: order}).idxmax(lag_dim, skipna=True).astype(np.float64)
    best.attrs = {"summary": how, "long_name": f"lag with the largest {how} rho"}
    return best
