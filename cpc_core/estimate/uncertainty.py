"""Uncertainty of every per-area estimate: block bootstrap of rho_j, Monte Carlo of the shares.

The paper's estimates carry no uncertainty. Two sources dominate and are treated here:

1. **rho_j**, the Pearson correlation of an area's log Web_Adult and (lagged) log Tor hourly
   series, is estimated from ~1,800 strongly autocorrelated hours. Naive Fisher-z intervals
   (:func:`fisher_interval`) assume independent hours and undercover: on the generator's
   28-day data the Fisher-z errors of the recovered rho against the planted parameter have an
   sd of about 1.3, not 1. :func:`bootstrap_rho` instead runs a **moving-block bootstrap over
   days**: the hour axis is cut into days (``hours_per_day`` consecutive steps from the axis
   start), blocks of ``block_days`` consecutive days are drawn with replacement and glued
   until the window is full, and rho is recomputed exactly as :mod:`cpc_core.estimate.correlation`
   does (transform with the zero value, lag shift, ``min_pairs``) on the resampled series.
2. **The global shares** in ``c_j = onion_share x csam_share x rho_j`` come from finite web
   crawls and measurements. :func:`draw_shares` draws them from Beta distributions.

:func:`propagate` combines the two draw by draw into ``c_j``, ``cpc_j`` and cpc per 1000
(via :func:`cpc_core.estimate.cpc.estimate_by_lag`, the method's own formula) and summarises
them as percentile intervals and rank probabilities.

Bootstrap details
-----------------
* **Pairs are formed before resampling.** For lag ``L`` the pair ``(x[t], y[t + L])`` belongs
  to the day of ``t``; resampling days of pairs keeps both series aligned and never pairs
  hours that were not paired in the data, whatever the lag.
* **Sufficient statistics per day.** Pearson's rho of a resample is a function of the sums
  (n, Sx, Sy, Sxx, Syy, Sxy) over its pairs and of the extreme values (for the method's
  "constant series" rule), and a resample is a multiset of days. A numba kernel computes
  per-day sums once per area and lag; all draws of all areas are then one matrix product
  ``weights (draws x days) @ sums (days x areas.lags.6)``: ``O(hours + draws x days)`` per
  area instead of ``O(draws x hours)``. Timing on the shared 2-core dev box, 1,341 areas x
  77 days, 1,000 draws, one process: 1.2 s for one lag, 11 s for 13 lags. The sums are centred
  at the same means as the method's kernel, so the identity resample (every day once)
  reproduces :func:`cpc_core.estimate.correlation.lagged_correlation` to rounding (tested).
* **One resampling of days per draw, shared by all areas.** A draw resamples the *same* days
  in every area. This keeps the dependence between areas (a city-wide event on one day moves
  all of them), which the joint quantities need (the rank probabilities here, the bootstrap
  interval of a Spearman correlation across areas). It also makes the draws independent of
  how areas are chunked, by construction: the day weights depend on the seed and the draw
  only.
* **Block length (default two days).** Whole days keep the daily cycle intact, and the
  hourly dependence beyond that cycle (AR noise of Web_Adult and Tor) dies out within a few
  hours, so even one-day blocks carry it; two-day blocks also keep some day-to-day
  persistence (a user active on consecutive evenings) while leaving 14 blocks in a 28-day
  window. For long windows (the paper's 77 days) with multi-day persistence, 3-4 days (the
  ``n^(1/3)`` rule) is reasonable.
* **Expanded percentile interval (default).** With few independent blocks the bootstrap
  distribution is too narrow: its variance is biased by ``(n - 1) / n`` and the normal tails
  are too thin for ``n`` = 14-28 blocks. :func:`propagate` therefore reads the quantiles at
  the level of Hesterberg's (2015) expanded percentile interval, :func:`expanded_level`:
  ``1 - 2 Phi(-sqrt(n / (n - 1)) t_{n-1, (1 + level) / 2})`` with ``n`` the number of
  blocks (0.934 instead of 0.90 for 14 blocks); ``expand=False`` gives plain percentiles.
  Measured 90 % coverage of the planted rho (999 draws, 28 days):

  ============================  =======  =======  ========  =======
  data                          1 day    2 days   2 days    Fisher
                                plain    plain    expanded  naive
  ============================  =======  =======  ========  =======
  generator, 520 areas          0.888    0.871    0.904     0.821
  simulation A, 400 areas       0.863    0.840    0.905     0.795
  simulation B, 400 areas       0.895    0.860    0.903
  simulation C, 400 areas       0.928    0.908    0.933
  ============================  =======  =======  ========  =======

  (simulations: a daily cycle plus AR(1) noise with a known correlation, see
  ``tests/estimate/test_uncertainty.py``; 400 areas give a binomial sd of 0.015 per coverage.)
* Draws whose resample has fewer than ``min_pairs`` pairs, or a constant series, give NaN
  rho (as the method would); they are left out of the percentiles and counted
  (``n_draws``).

Default share distributions
---------------------------
* **CSAM share of pornographic onion sites**: 105 of 253 sites in the DUTA dataset
  (Al-Nabki et al. 2019; the paper's 41.5 %). Default ``Beta(105, 148)``, i.e. ``Beta(k, n -
  k)``: its mean is exactly 105 / 253 = 0.41502 (the method's constant) and its variance
  ``p(1 - p) / (n + 1)`` is the binomial sampling variance of a share of 253.
* **Onion share of Tor traffic**: 0.011, the Tor metrics estimate of onion-service traffic
  for 2019-03-16..05-31 (``metrics.torproject.org/hidserv-rend-relayed-cells.html``, the
  paper's Tor project 2023a). That figure is extrapolated from the relays that report
  onion-service statistics and is published without a sample size, so no count is behind
  it. Default ``Beta`` with mean 0.011 and concentration ``a + b = 2,500`` (sd 0.0021,
  about 19 % of the mean): an **assumption** of this module, configurable, chosen so that
  the 90 % range (0.0078-0.0146) spans the day-to-day wobble of such an extrapolation. The
  paper itself argues the French share is, if anything, higher (Jardine et al. 2020: 7.8 %
  vs 6.7 % of users reach onion services), which a wider or shifted Beta can express.
* The pornography share (2,267,628 / 5,437,248) does not enter ``c_j``: locally rho_j takes
  its place.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from cpc_core import _jit  # numba.njit at the first call: numba is not imported with the module
from cpc_core.errors import UsageError, clip
from cpc_core.estimate.constants import (
    CSAM_SITES,
    CSAM_SITES_LINKED,
    MIN_HOURS,
    ONION_SHARE_CONCENTRATION,
    ZERO_VALUE,
)
from cpc_core.estimate.correlation import (
    TransformKind,
    _as_lags,
    _single_hour_chunk,
    _transform,
    aligned_series,
    finite_mean,
)
from cpc_core.estimate.cpc import C_FLOOR, CSAM_SHARE, ONION_SHARE, estimate_by_lag

__all__ = [
    "BetaShare",
    "CSAM_SHARE_PRIOR",
    "ONION_SHARE_PRIOR",
    "INTERVAL_COLUMNS",
    "bootstrap_rho",
    "bootstrap_rho_np",
    "day_block_weights",
    "draw_shares",
    "expanded_level",
    "fisher_interval",
    "area_resample_indices",
    "median_overlap",
    "min_ranks",
    "percentile_interval",
    "empty_intervals",
    "intervals_by_lag",
    "propagate",
    "propagate_draws",
    "rank_probabilities",
    "spearman_interval",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# share distributions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BetaShare:
    """A Beta(alpha, beta) distribution of a share, with where its parameters come from.

    Attributes
    ----------
    alpha, beta : float
        Positive shape parameters.
    source : str
        One line: the count or assumption behind the parameters.
    """

    alpha: float
    beta: float
    source: str = ""

    def __post_init__(self) -> None:
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise UsageError(f"Beta {name} must be a positive finite number, got {clip(value)}")

    @property
    def mean(self) -> float:
        """``alpha / (alpha + beta)``."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def sd(self) -> float:
        """Standard deviation of the Beta distribution."""
        a, b = self.alpha, self.beta
        return math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))

    @classmethod
    def from_counts(cls, k: int, n: int, source: str = "") -> BetaShare:
        """``Beta(k, n - k)``: mean ``k / n``, variance ``p (1 - p) / (n + 1)``.

        Examples
        --------
        >>> BetaShare.from_counts(105, 253).mean == 105 / 253
        True
        """
        if not (0 < k < n):
            raise UsageError(f"counts must satisfy 0 < k < n, got k={clip(k)}, n={clip(n)}")
        return cls(float(k), float(n - k), source or f"{k} of {n}")

    @classmethod
    def from_mean(cls, mean: float, concentration: float, source: str = "") -> BetaShare:
        """Beta with the given mean and ``alpha + beta = concentration``.

        Examples
        --------
        >>> round(BetaShare.from_mean(0.011, 2500).sd, 5)
        0.00209
        """
        if not (0 < mean < 1):
            raise UsageError(f"mean must lie in (0, 1), got {clip(mean)}")
        if not (np.isfinite(concentration) and concentration > 0):
            raise UsageError(f"concentration must be positive, got {clip(concentration)}")
        return cls(mean * concentration, (1 - mean) * concentration,
                   source or f"mean {mean}, concentration {concentration}")


#: Default distribution of the CSAM share: 105 of 253 pornographic onion sites (DUTA).
CSAM_SHARE_PRIOR = BetaShare.from_counts(
    CSAM_SITES_LINKED, CSAM_SITES, "105 of 253 pornographic onion sites linked to CSAM (DUTA, Al-Nabki et al. 2019)"
)
#: Default distribution of the onion share: mean 0.011 (Tor metrics); the spread is assumed.
ONION_SHARE_PRIOR = BetaShare.from_mean(
    ONION_SHARE, ONION_SHARE_CONCENTRATION,
    "Tor metrics onion-service share 2019-03-16..05-31 (mean 0.011); concentration 2500 assumed",
)


def draw_shares(
    draws: int,
    seed: int | np.random.SeedSequence = 0,
    onion: BetaShare = ONION_SHARE_PRIOR,
    csam: BetaShare = CSAM_SHARE_PRIOR,
) -> pd.DataFrame:
    """Monte Carlo draws of the onion and CSAM shares.

    Parameters
    ----------
    draws : int
        Number of draws.
    seed : int or numpy.random.SeedSequence
        Reproducible stream (an int is turned into ``SeedSequence([seed, 1])`` so that it
        does not coincide with the day resampling's stream of the same seed).
    onion, csam : BetaShare
        Distributions; see the module docstring for the defaults and their sources.

    Returns
    -------
    pandas.DataFrame
        Columns ``onion_share``, ``csam_share``; index ``draw``.
    """
    draws = _check_draws(draws)
    rng = np.random.default_rng(_stream(seed, 1))
    out = pd.DataFrame(
        {
            "onion_share": rng.beta(onion.alpha, onion.beta, draws),
            "csam_share": rng.beta(csam.alpha, csam.beta, draws),
        }
    )
    out.index.name = "draw"
    return out


def _stream(seed: int | np.random.SeedSequence, key: int) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise UsageError(f"seed must be a non-negative integer, got {clip(seed)}")
    return np.random.SeedSequence([int(seed), key])


def _check_draws(draws: int) -> int:
    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise UsageError(f"draws must be a positive integer, got {clip(draws)}")
    return int(draws)


# ---------------------------------------------------------------------------------------------
# day resampling
# ---------------------------------------------------------------------------------------------


def day_block_weights(
    n_days: int,
    draws: int,
    block_days: int = 2,
    seed: int | np.random.SeedSequence = 0,
    circular: bool = False,
) -> np.ndarray:
    """How often each day occurs in each moving-block resample of the days.

    Each resample glues ``ceil(n_days / block_days)`` blocks of ``block_days`` consecutive
    days, with starts drawn uniformly, and keeps the first ``n_days`` days (Kuensch 1989).
    ``circular=True`` wraps blocks around the end (Politis & Romano 1992), so that every day
    is equally likely to be drawn.

    Parameters
    ----------
    n_days : int
        Days in the window (a partial last day counts as a day).
    draws : int
        Number of resamples.
    block_days : int
        Block length in days; at most ``n_days``.
    seed : int or numpy.random.SeedSequence
        An int is turned into ``SeedSequence([seed, 0])``.
    circular : bool
        Circular instead of moving blocks.

    Returns
    -------
    numpy.ndarray, int32, shape (draws, n_days)
        Multiplicities; each row sums to ``n_days``.

    Examples
    --------
    >>> w = day_block_weights(10, 4, block_days=3, seed=1)
    >>> w.shape, w.sum(axis=1).tolist()
    ((4, 10), [10, 10, 10, 10])
    """
    draws = _check_draws(draws)
    if int(n_days) < 1:
        raise UsageError(f"n_days must be at least 1, got {clip(n_days)}")
    if not (1 <= int(block_days) <= int(n_days)):
        raise UsageError(f"block_days must lie in [1, n_days={n_days}], got {clip(block_days)}")
    n_days, block_days = int(n_days), int(block_days)
    rng = np.random.default_rng(_stream(seed, 0))
    n_blocks = -(-n_days // block_days)
    n_starts = n_days if circular else n_days - block_days + 1
    starts = rng.integers(0, n_starts, size=(draws, n_blocks))
    days = (starts[:, :, None] + np.arange(block_days)).reshape(draws, -1)[:, :n_days]
    if circular:
        days %= n_days
    weights = np.zeros((draws, n_days), dtype=np.int32)
    np.add.at(weights, (np.repeat(np.arange(draws), n_days), days.ravel()), 1)
    return weights


# ---------------------------------------------------------------------------------------------
# kernel
# ---------------------------------------------------------------------------------------------


@_jit.njit(nogil=True, cache=True)
def _day_stats(x, y, lags, hours_per_day, sums, ext):  # pragma: no cover - numba
    """Per area, lag and day: the sums of the pairs and their extremes.

    ``sums[a, k, d]`` = (n, Sx, Sy, Sxx, Syy, Sxy) of the pairs ``(x[t], y[t + lag])`` with
    ``t`` in day ``d`` and both values finite, centred at the mean of each series' finite
    values (as ``correlation._lagged_pearson_2d``, so the identity resample reproduces it);
    ``ext[a, k, d]`` = (min x, max x, min y, max y) of those pairs.
    """
    n_areas, n_hours = x.shape
    n_lags = lags.shape[0]
    for a in range(n_areas):
        mean_x = finite_mean(x[a])
        mean_y = finite_mean(y[a])
        for k in range(n_lags):
            lag = lags[k]
            sums[a, k, :, :] = 0.0
            ext[a, k, :, 0] = np.inf
            ext[a, k, :, 1] = -np.inf
            ext[a, k, :, 2] = np.inf
            ext[a, k, :, 3] = -np.inf
            for t in range(max(0, -lag), min(n_hours, n_hours - lag)):
                u = x[a, t]
                v = y[a, t + lag]
                if np.isfinite(u) and np.isfinite(v):
                    d = t // hours_per_day
                    ext[a, k, d, 0] = min(ext[a, k, d, 0], u)
                    ext[a, k, d, 1] = max(ext[a, k, d, 1], u)
                    ext[a, k, d, 2] = min(ext[a, k, d, 2], v)
                    ext[a, k, d, 3] = max(ext[a, k, d, 3], v)
                    u = u - mean_x
                    v = v - mean_y
                    sums[a, k, d, 0] += 1.0
                    sums[a, k, d, 1] += u
                    sums[a, k, d, 2] += v
                    sums[a, k, d, 3] += u * u
                    sums[a, k, d, 4] += v * v
                    sums[a, k, d, 5] += u * v


def _resample_rho(sums: np.ndarray, ext: np.ndarray, weights: np.ndarray,
                  min_pairs: int) -> np.ndarray:
    """rho (area, lag, draw) of every resample from the per-day sums (one matrix product).

    A resample's sums are ``weights @ sums`` over days. The method's "constant series" rule
    compares the extremes of the pairs used (:func:`_constant_in_resample`).
    """
    n_areas, n_lags, n_days, _ = sums.shape
    n_draws = weights.shape[0]
    flat = sums.transpose(2, 0, 1, 3).reshape(n_days, -1)
    tot = (weights @ flat).reshape(n_draws, n_areas, n_lags, 6).transpose(1, 2, 0, 3)
    m, sx, sy, sxx, syy, sxy = (tot[..., i] for i in range(6))
    with np.errstate(divide="ignore", invalid="ignore"):
        var_x = sxx - sx * sx / m
        var_y = syy - sy * sy / m
        r = (sxy - sx * sy / m) / np.sqrt(var_x * var_y)
    ok = (m >= min_pairs) & (var_x > 0) & (var_y > 0)
    ok &= ~_constant_in_resample(sums[..., 0] > 0, ext, weights > 0)
    return np.where(ok, np.clip(r, -1.0, 1.0), np.nan)


def _constant_in_resample(nonempty: np.ndarray, ext: np.ndarray, used: np.ndarray) -> np.ndarray:
    """Whether each resample (area, lag, draw) is constant in x or in y over the pairs it uses.

    ``nonempty`` (area, lag, day): the day has pairs; ``ext`` (area, lag, day, 4): their
    extremes (min x, max x, min y, max y); ``used`` (draw, day): the day is in the resample.
    The rule: a resample is constant in x when the smallest x of the days it uses equals the
    largest. So it is when it uses no day that varies in x (a matrix product counts them, for
    every area and draw at once) and the constant days it uses share one value (compared over
    those days only: a day is constant when its pairs are, e.g. a day with one pair).

    Only the (area, lag) with a constant day can be constant. Before, each of them was compared
    over every day of every draw (~2 ms each): on full-size Paris, whose 1,137 squares of 1 km
    all have constant days, the bootstrap of a grid re-run took 1.0-1.2 s; 0.2-0.4 s since
    (BENCHMARKS.md).
    """
    n_areas, n_lags, _ = nonempty.shape
    out = np.zeros((n_areas, n_lags, used.shape[0]), dtype=bool)
    const = [nonempty & (ext[..., lo] == ext[..., hi]) for lo, hi in ((0, 1), (2, 3))]
    aa, kk = np.nonzero((const[0] | const[1]).any(axis=2))
    if not aa.size:
        return out
    used_t = used.T.astype(np.float64)  # (day, draw); day counts are exact in float64
    ne = nonempty[aa, kk]
    for lo, c in zip((0, 2), const, strict=True):
        cst = c[aa, kk]
        pair, day = np.nonzero(cst)
        if not pair.size:  # no constant day in this coordinate: never constant in it
            continue
        still = ((ne & ~cst).astype(np.float64) @ used_t) == 0  # (pair, draw): no varying day
        # the constant days of each pair grouped by their value (min = max): one row per
        # (pair, value), the days that have it
        value = ext[aa[pair], kk[pair], day, lo]
        order = np.lexsort((value, pair))
        pair, day, value = pair[order], day[order], value[order]
        new = np.ones(pair.size, dtype=bool)
        new[1:] = (pair[1:] != pair[:-1]) | (value[1:] != value[:-1])
        group = np.cumsum(new) - 1
        rows = np.zeros((int(new.sum()), used.shape[1]))
        rows[group, day] = 1.0
        seen = (rows @ used_t) > 0  # (pair value, draw): a day with that value is used
        firsts = np.flatnonzero(new)
        starts = firsts[np.r_[True, pair[firsts][1:] != pair[firsts][:-1]]]
        with_const = pair[starts]
        values_used = np.add.reduceat(seen.astype(np.int64), np.searchsorted(firsts, starts), axis=0)
        one = np.zeros_like(still)
        one[with_const] = values_used == 1
        out[aa, kk] |= still & one
    return out


def bootstrap_rho_np(
    x: np.ndarray,
    y: np.ndarray,
    lags: Iterable[int] | np.ndarray,
    weights: np.ndarray,
    min_pairs: int = MIN_HOURS,
    hours_per_day: int = 24,
) -> np.ndarray:
    """Block-bootstrap rho of already transformed series, numpy kernel.

    Parameters
    ----------
    x, y : numpy.ndarray, shape (..., hour)
        Transformed Web_Adult (``x``) and Tor (``y``) on a regular hour axis; NaN marks
        excluded hours.
    lags : sequence of int
        Lags as in :func:`cpc_core.estimate.correlation.lagged_correlation` (pairs ``x[t], y[t+L]``).
    weights : numpy.ndarray of int, shape (draw, day)
        Multiplicity of each day in each resample (:func:`day_block_weights`); a row of ones
        is the data itself. ``day = ceil(hours / hours_per_day)``.
    min_pairs : int
        Fewer paired finite hours in a resample gives NaN.
    hours_per_day : int
        Steps of the hour axis per day.

    Returns
    -------
    numpy.ndarray, float64, shape (..., lag, draw)
    """
    x, y = np.broadcast_arrays(np.asarray(x), np.asarray(y))
    lag_values = _as_lags(lags)
    lead, n_hours = x.shape[:-1], x.shape[-1]
    weights = np.asarray(weights)
    n_days = -(-n_hours // int(hours_per_day))
    if weights.ndim != 2 or weights.shape[1] != n_days:
        raise ValueError(
            f"weights must have shape (draws, {n_days}) for {n_hours} hours of "
            f"{hours_per_day} per day, got {weights.shape}"
        )
    if x.dtype not in (np.float32, np.float64) or x.dtype != y.dtype:
        x = x.astype(np.float64)
        y = y.astype(np.float64)
    x2 = np.ascontiguousarray(x).reshape(-1, n_hours)
    y2 = np.ascontiguousarray(y).reshape(-1, n_hours)
    n_draws = weights.shape[0]
    w = np.ascontiguousarray(weights, dtype=np.float64)
    out = np.empty((x2.shape[0], lag_values.size, n_draws), dtype=np.float64)
    # Areas in blocks so that the resampled sums (block x lags x draws x 6 floats) stay
    # below ~128 MB.
    block = max(1, int(16e6 // max(1, lag_values.size * n_draws * 6)))
    for a0 in range(0, x2.shape[0], block):
        a1 = min(a0 + block, x2.shape[0])
        sums = np.empty((a1 - a0, lag_values.size, n_days, 6))
        ext = np.empty((a1 - a0, lag_values.size, n_days, 4))
        _day_stats(x2[a0:a1], y2[a0:a1], lag_values, int(hours_per_day), sums, ext)
        out[a0:a1] = _resample_rho(sums, ext, w, int(min_pairs))
    return out.reshape(*lead, lag_values.size, weights.shape[0])


# ---------------------------------------------------------------------------------------------
# xarray / dask wrapper
# ---------------------------------------------------------------------------------------------


def bootstrap_rho(
    web_adult: xr.DataArray,
    tor: xr.DataArray,
    lags: Iterable[int] = (0,),
    draws: int = 1000,
    block_days: int = 2,
    seed: int = 0,
    transform: TransformKind = "log",
    zero_value: float = ZERO_VALUE,
    min_pairs: int = MIN_HOURS,
    hour_dim: str = "hour",
    hours_per_day: int = 24,
    circular: bool = False,
) -> xr.DataArray:
    """Moving-block bootstrap over days of the per-area lagged Pearson rho (lazy on dask).

    Same inputs and rules as :func:`cpc_core.estimate.correlation.lagged_correlation`; see the module
    docstring for the resampling scheme.

    Parameters
    ----------
    web_adult, tor : xarray.DataArray
        Hourly traffic with dimension ``hour_dim`` plus area dimensions, aligned exactly. The
        hour axis must start at the start of a day (days are ``hours_per_day`` consecutive
        steps from its first step).
    lags : iterable of int
        The configured lag, or every swept lag.
    draws : int
        Bootstrap resamples.
    block_days : int
        Block length in days.
    seed : int
        Reproducible day resampling, identical for every area and every chunking.
    transform, zero_value, min_pairs, hour_dim
        As in :func:`cpc_core.estimate.correlation.lagged_correlation`.
    hours_per_day : int
        Steps per day (24 for hourly data).
    circular : bool
        Circular instead of moving blocks (:func:`day_block_weights`).

    Returns
    -------
    xarray.DataArray
        float64 rho with dims (area dims..., ``lag``, ``draw``); lazy when an input is
        dask-backed, with the input's area chunks and one chunk along lag and draw.
    """
    lag_values = _as_lags(lags)
    if int(min_pairs) < 2:
        raise UsageError(f"min_pairs must be at least 2, got {min_pairs}")
    if int(hours_per_day) < 1:
        raise UsageError(f"hours_per_day must be positive, got {hours_per_day}")
    x, y = aligned_series(web_adult, tor, hour_dim)
    n_days = -(-x.sizes[hour_dim] // int(hours_per_day))
    weights = day_block_weights(n_days, draws, block_days, seed, circular)
    x = _single_hour_chunk(_transform(x, transform, zero_value), hour_dim)
    y = _single_hour_chunk(_transform(y, transform, zero_value), hour_dim)
    rho = xr.apply_ufunc(
        bootstrap_rho_np,
        x,
        y,
        input_core_dims=[[hour_dim], [hour_dim]],
        output_core_dims=[["lag", "draw"]],
        kwargs={"lags": lag_values, "weights": weights, "min_pairs": int(min_pairs),
                "hours_per_day": int(hours_per_day)},
        dask="parallelized",
        output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"lag": lag_values.size, "draw": weights.shape[0]}},
        keep_attrs=False,
    )
    rho = rho.assign_coords(lag=lag_values, draw=np.arange(weights.shape[0]))
    rho.attrs = {
        "long_name": "block-bootstrap Pearson correlation of Web_Adult and lagged Tor",
        "block_days": int(block_days),
        "n_blocks": int(-(-n_days // int(block_days))),
        "circular": int(bool(circular)),
        "seed": int(seed),
        "transform": transform,
        "zero_value": zero_value,
        "min_pairs": int(min_pairs),
    }
    return rho


# ---------------------------------------------------------------------------------------------
# intervals and propagation
# ---------------------------------------------------------------------------------------------


def _check_level(level: float) -> float:
    if not (0 < level < 1):
        raise UsageError(f"level must lie in (0, 1), got {clip(level)}")
    return float(level)


def fisher_interval(rho, n, level: float = 0.90):
    """Naive Fisher-z interval ``tanh(atanh(rho) +- z / sqrt(n - 3))``, for comparison.

    Assumes independent hours; with autocorrelated series it is too narrow.

    Parameters
    ----------
    rho : array_like
        Correlations.
    n : array_like
        Pairs used (e.g. ``lagged_correlation(...).n_hours``); ``n <= 3`` gives NaN.
    level : float
        Two-sided level.

    Returns
    -------
    lo, hi : numpy.ndarray

    Examples
    --------
    >>> lo, hi = fisher_interval(0.0, 103, 0.95)
    >>> round(float(hi), 4)
    0.1935
    """
    from scipy.special import ndtri  # scipy.stats costs ~0.5 s of import; the same numbers

    level = _check_level(level)
    rho = np.asarray(rho, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    q = ndtri(0.5 + level / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.where(n > 3, 1.0 / np.sqrt(n - 3), np.nan)
        z = np.arctanh(np.clip(rho, -1.0, 1.0))
    return np.tanh(z - q * se), np.tanh(z + q * se)


def expanded_level(level: float, n_blocks: int) -> float:
    """Quantile level of Hesterberg's (2015) expanded percentile interval.

    ``1 - 2 Phi(-sqrt(n / (n - 1)) t_{n - 1, (1 + level) / 2})``: corrects the percentile
    interval of a bootstrap over ``n`` independent units (here blocks of days) for the
    ``(n - 1) / n`` bias of the bootstrap variance and for using normal instead of t tails.

    Examples
    --------
    >>> round(expanded_level(0.90, 14), 4)
    0.9339
    """
    # scipy.special, not scipy.stats: the same quantiles (stdtrit is what t.ppf calls) without
    # the ~0.5-1 s import of scipy.stats on every re-run (issue #14).
    from scipy.special import ndtr, stdtrit

    level = _check_level(level)
    n = int(n_blocks)
    if n < 2:
        raise UsageError(f"n_blocks must be at least 2, got {clip(n_blocks)}")
    q = math.sqrt(n / (n - 1)) * stdtrit(n - 1, 0.5 + level / 2)
    return float(1 - 2 * ndtr(-q))


def percentile_interval(draws: np.ndarray, level: float = 0.90, axis: int = 0):
    """Percentile interval of ``draws`` along ``axis``, NaN draws left out.

    Returns
    -------
    lo, hi : numpy.ndarray
        The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles (linear interpolation);
        NaN where every draw is NaN.
    """
    level = _check_level(level)
    draws = np.asarray(draws, dtype=np.float64)
    valid = np.isfinite(draws).any(axis=axis)
    lo, hi = _nanquantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=axis)  # all-NaN: NaN
    return np.where(valid, lo, np.nan), np.where(valid, hi, np.nan)


def _nanquantile(a: np.ndarray, q: Sequence[float], axis: int) -> np.ndarray:
    """``np.nanquantile(a, q, axis=axis)`` (linear interpolation), the same numbers, faster.

    numpy computes a multi-dimensional nanquantile one slice at a time (``apply_along_axis``
    over its 1-d routine: ~60 us a slice, 0.3 s for the four intervals of 1,137 areas). A
    slice's quantile depends only on its non-NaN values in order, so the slices are sorted
    (NaN last) and those with the same count of values go through ``np.quantile`` together,
    whose interpolation is the 1-d routine's, element by element (tested equal bit for bit).
    """
    moved = np.moveaxis(a, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    ordered = np.sort(flat, axis=1)
    count = (~np.isnan(flat)).sum(axis=1)
    out = np.full((len(q), flat.shape[0]), np.nan)
    for n in np.unique(count[count > 0]):
        rows = count == n
        out[:, rows] = np.quantile(ordered[rows, :n], q, axis=1)
    return out.reshape(len(q), *moved.shape[:-1])


def min_ranks(a: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, ties given their lowest rank: ``scipy.stats.rankdata(a,
    method="min", axis=-1)`` for arrays without NaN, in numpy (scipy.stats costs ~0.5 s of
    import on every re-run that propagates draws, issue #14).

    Examples
    --------
    >>> min_ranks(np.array([[3.0, 1.0, 3.0, np.inf, 2.0]]))
    array([[3, 1, 3, 5, 2]])
    """
    a = np.asarray(a)
    order = np.argsort(a, axis=-1, kind="stable")
    s = np.take_along_axis(a, order, axis=-1)
    n = a.shape[-1]
    pos = np.broadcast_to(np.arange(n), a.shape)
    starts = np.ones(a.shape, dtype=bool)
    starts[..., 1:] = s[..., 1:] != s[..., :-1]
    # each element's rank is the position where its run of equal values starts, plus one
    first = np.maximum.accumulate(np.where(starts, pos, 0), axis=-1) + 1
    ranks = np.empty(a.shape, dtype=np.int64)
    np.put_along_axis(ranks, order, first, axis=-1)
    return ranks


def rank_probabilities(values: np.ndarray, top_n: int = 10, top_fraction: float = 0.1):
    """Per area, the share of draws in which it ranks in the top ``top_n`` and top fraction.

    Parameters
    ----------
    values : numpy.ndarray, shape (draw, area)
        E.g. cpc per 1000 per draw. NaN areas of a draw are not ranked in that draw (they
        count neither as in nor as out of the top).
    top_n : int
        Size of the top group (the paper's top 10).
    top_fraction : float
        The top decile is the ``ceil(top_fraction x ranked areas)`` largest values.

    Returns
    -------
    p_top_n, p_top_fraction : numpy.ndarray, shape (area,)
        Over the draws where the area has a value; NaN if it never has one. Ties at the
        boundary are all counted in (rank method ``"min"``).
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be (draw, area), got shape {values.shape}")
    if not (0 < top_fraction <= 1):
        raise UsageError(f"top_fraction must lie in (0, 1], got {clip(top_fraction)}")
    finite = np.isfinite(values)
    # rank 1 = largest; NaN -> -inf so it sorts last, then masked out.
    ranks = min_ranks(-np.where(finite, values, -np.inf))
    n_ranked = finite.sum(axis=1, keepdims=True)
    in_top_n = (ranks <= top_n) & finite
    in_top_f = (ranks <= np.ceil(top_fraction * n_ranked)) & finite
    n_valid = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(n_valid > 0, in_top_n.sum(axis=0) / n_valid, np.nan),
                np.where(n_valid > 0, in_top_f.sum(axis=0) / n_valid, np.nan))


#: Columns of :func:`propagate`'s table, in order.
INTERVAL_COLUMNS: tuple[str, ...] = (
    "rho_lo", "rho_hi", "c_lo", "c_hi", "cpc_lo", "cpc_hi", "cpc_per_1000_lo",
    "cpc_per_1000_hi", "p_top10", "p_top_decile", "n_draws",
)


def propagate_draws(
    rho_draws: xr.DataArray,
    tor: xr.DataArray,
    population: xr.DataArray,
    shares: pd.DataFrame | None = None,
    *,
    floor: float = C_FLOOR,
    area_dim: str = "area",
) -> xr.Dataset:
    """Per-draw c, cpc and cpc per 1000 from bootstrap rho and share draws.

    Draw ``b`` combines ``rho_draws[b]`` with row ``b`` of ``shares`` through
    :func:`cpc_core.estimate.cpc.estimate_by_lag` (the method's formula, including its floor of
    non-positive c).

    Parameters
    ----------
    rho_draws : xarray.DataArray
        Dims (``area_dim``, ``draw``) (select one lag of :func:`bootstrap_rho` first).
        Dask-backed input gives a lazy result (nothing is computed here).
    tor, population : xarray.DataArray
        Window Tor total and population per area (dim ``area_dim``), aligned exactly.
    shares : pandas.DataFrame, optional
        ``onion_share``, ``csam_share`` per draw (:func:`draw_shares`), at least as many rows
        as draws. ``None`` keeps the method's fixed shares (rho uncertainty only).
    floor : float
        The method's floor of c.
    area_dim : str
        The area dimension.

    Returns
    -------
    xarray.Dataset
        ``rho``, ``c``, ``cpc``, ``cpc_per_1000`` with dims (``draw``, ``area_dim``).
    """
    if set(rho_draws.dims) != {area_dim, "draw"}:
        raise ValueError(f"rho_draws must have dims ({area_dim!r}, 'draw'), got {rho_draws.dims}")
    rho_draws = rho_draws.transpose("draw", area_dim)
    n_draws = rho_draws.sizes["draw"]
    try:
        tor, population, _ = xr.align(tor, population, rho_draws.isel(draw=0), join="exact")
    except ValueError as err:
        raise ValueError(f"tor, population and rho_draws must share their areas: {err}") from err
    if shares is None:
        shares = pd.DataFrame({"onion_share": np.full(n_draws, ONION_SHARE),
                               "csam_share": np.full(n_draws, CSAM_SHARE)})
    if len(shares) < n_draws:
        raise ValueError(f"shares has {len(shares)} rows for {n_draws} draws")
    onion = shares["onion_share"].to_numpy(dtype=np.float64)[:n_draws]
    csam = shares["csam_share"].to_numpy(dtype=np.float64)[:n_draws]
    if not (np.all((onion > 0) & (onion <= 1)) and np.all((csam > 0) & (csam <= 1))):
        raise UsageError("shares must lie in (0, 1]")
    # One vectorised call of the method's formula: draw b's shares enter as the positive
    # factor (onion_b x csam_b) / (ONION_SHARE x CSAM_SHARE) on rho_b, so that
    # c = ONION_SHARE x CSAM_SHARE x rho_b x factor = onion_b x csam_b x rho_b (to one
    # rounding) and the floor rule, which depends only on the sign of rho, is unchanged.
    # (A call per draw costs ~18 ms of xarray overhead: 18 s for 1,000 draws.)
    factor = xr.DataArray(onion * csam / (ONION_SHARE * CSAM_SHARE), dims="draw")
    ds = estimate_by_lag(tor, rho_draws * factor, population,
                         onion_share=ONION_SHARE, csam_share=CSAM_SHARE, floor=floor)
    out = ds[["c", "cpc", "cpc_per_1000"]].transpose("draw", area_dim)
    out["rho"] = rho_draws
    out.attrs = {"floor": floor}
    return out


def propagate(
    rho_draws: xr.DataArray,
    tor: xr.DataArray,
    population: xr.DataArray,
    shares: pd.DataFrame | None = None,
    *,
    level: float = 0.90,
    floor: float = C_FLOOR,
    top_n: int = 10,
    top_fraction: float = 0.1,
    area_dim: str = "area",
    expand: bool = True,
) -> pd.DataFrame:
    """Percentile intervals of rho, c, cpc and cpc per 1000, and rank probabilities.

    Parameters
    ----------
    rho_draws, tor, population, shares, floor, area_dim
        See :func:`propagate_draws`.
    level : float
        Interval level (``estimate.uncertainty.level``, default 0.90).
    top_n, top_fraction : int, float
        See :func:`rank_probabilities`; ranks are over all areas passed in (pass one city's
        areas for ranks within a city).
    expand : bool
        Read the quantiles at :func:`expanded_level` for the number of day blocks
        (``rho_draws.attrs["n_blocks"]``, set by :func:`bootstrap_rho`); without that
        attribute, or with ``expand=False``, plain percentiles at ``level``.

    Returns
    -------
    pandas.DataFrame
        :data:`INTERVAL_COLUMNS`, indexed by the area coordinate. ``n_draws`` counts the
        draws with a defined rho. ``attrs``: ``level``, ``quantile_level`` (the level whose
        quantiles were read), ``draws``.
    """
    level = _check_level(level)
    quantile_level = level
    if expand and int(rho_draws.attrs.get("n_blocks", 0)) >= 2:
        quantile_level = expanded_level(level, int(rho_draws.attrs["n_blocks"]))
    elif expand:
        logger.debug("propagate: rho_draws has no n_blocks attribute; plain percentiles")
    if any(da.chunks is not None for da in (rho_draws, tor, population)):
        raise TypeError("propagate summarises draws held in memory; compute the Dask-backed input first "
                        "(or call propagate_draws, which stays lazy)")
    ds = propagate_draws(rho_draws, tor, population, shares, floor=floor, area_dim=area_dim)
    n_draws = ds.sizes["draw"]
    rho = ds["rho"].values
    per_1000 = ds["cpc_per_1000"].values
    out = {}
    for name in ("rho", "c", "cpc", "cpc_per_1000"):
        out[f"{name}_lo"], out[f"{name}_hi"] = percentile_interval(ds[name].values,
                                                                   quantile_level, axis=0)
    out["p_top10"], out["p_top_decile"] = rank_probabilities(per_1000, top_n, top_fraction)
    out["n_draws"] = np.isfinite(rho).sum(axis=0)
    index = pd.Index(ds[area_dim].values, name=area_dim)
    table = pd.DataFrame(out, index=index)[list(INTERVAL_COLUMNS)]
    table.attrs = {"level": level, "quantile_level": quantile_level, "draws": n_draws}
    n_short = int((table["n_draws"] < n_draws).sum())
    if n_short:
        logger.info("%d areas have undefined rho in some bootstrap draws (left out)", n_short)
    return table


def intervals_by_lag(
    rho_draws: xr.DataArray,
    tor: xr.DataArray,
    population: xr.DataArray,
    small: pd.Series,
    shares: pd.DataFrame | None = None,
    *,
    level: float = 0.90,
    floor: float = C_FLOOR,
    expand: bool = True,
    area_dim: str = "area",
) -> pd.DataFrame:
    """:func:`propagate` for every lag of ``rho_draws``, with ranks among the areas not small.

    The intervals are per area; the rank probabilities (``p_top10``, ``p_top_decile``) are
    over the areas that are not small (disclosure control: the report's top lists leave the
    small areas out), NaN for the small ones.

    Parameters
    ----------
    rho_draws : xarray.DataArray
        In-memory (``area_dim``, ``lag``, ``draw``) draws of :func:`bootstrap_rho`, with its
        ``n_blocks`` attribute.
    tor, population : xarray.DataArray
        Window Tor total and population per area.
    small : pandas.Series
        The disclosure flag per area code; areas not in it count as small.
    shares, level, floor, expand, area_dim
        As in :func:`propagate`.

    Returns
    -------
    pandas.DataFrame
        ``area_dim``, ``lag_h``, then :data:`INTERVAL_COLUMNS`, and ``quantile_level`` (the
        level whose quantiles were read).
    """
    ranked = [a for a in rho_draws[area_dim].values if not bool(small.get(a, True))]
    kw = {"shares": shares, "level": level, "floor": floor, "expand": expand, "area_dim": area_dim}
    parts = []
    for lag in rho_draws["lag"].values:
        r = rho_draws.sel(lag=lag, drop=True)
        r.attrs = dict(rho_draws.attrs)
        t = propagate(r, tor, population, **kw)
        if ranked:
            sel = {area_dim: ranked}
            tr = propagate(r.sel(sel), tor.sel(sel), population.sel(sel), **kw)
            for col in ("p_top10", "p_top_decile"):
                t[col] = tr[col].reindex(t.index)
        else:
            t[["p_top10", "p_top_decile"]] = np.nan
        quantile_level = t.attrs["quantile_level"]
        t = t.reset_index()
        t.insert(1, "lag_h", lag)
        parts.append(t)
    table = pd.concat(parts, ignore_index=True)
    table.attrs = {}
    table["quantile_level"] = quantile_level
    return table


def empty_intervals(areas: Sequence[str], lags: Sequence[int], area_dim: str = "area") -> pd.DataFrame:
    """The interval table with its columns empty (``n_draws`` 0), for a window too short to
    bootstrap: the table's schema does not depend on the window.

    Examples
    --------
    >>> empty_intervals(["a"], [0, 1])[["area", "lag_h", "n_draws"]].to_dict("records")
    [{'area': 'a', 'lag_h': 0, 'n_draws': 0}, {'area': 'a', 'lag_h': 1, 'n_draws': 0}]
    """
    table = pd.DataFrame([(a, lag) for lag in lags for a in areas], columns=[area_dim, "lag_h"])
    for col in INTERVAL_COLUMNS:
        table[col] = 0 if col == "n_draws" else np.nan
    return table


def median_overlap(value, lo, hi) -> dict[str, float | int]:
    """How many areas' intervals contain the median of the point estimates.

    An area whose interval contains the median of all areas' estimates cannot be placed
    above or below the typical area with the stated confidence: the count is the report's
    plain-language measure of how much of the ranking the data support.

    Parameters
    ----------
    value, lo, hi : array_like, shape (n,)
        Point estimate and interval bounds per area (e.g. ``cpc_per_1000``,
        ``cpc_per_1000_lo``, ``cpc_per_1000_hi``). Areas with a NaN in any of the three are
        left out (suppressed areas, undefined rho) and counted in ``left_out``.

    Returns
    -------
    dict
        ``n`` (areas with all three values), ``n_overlap`` (``lo <= median <= hi``),
        ``median`` (of ``value`` over those ``n`` areas; NaN if ``n == 0``), ``left_out``.

    Examples
    --------
    >>> median_overlap([1.0, 2.0, 3.0], [0.5, 1.5, 2.9], [1.5, 2.5, 3.5])
    {'n': 3, 'n_overlap': 1, 'median': 2.0, 'left_out': 0}
    """
    value, lo, hi = (np.asarray(a, dtype=np.float64).ravel() for a in (value, lo, hi))
    if not (value.shape == lo.shape == hi.shape):
        raise ValueError(f"value, lo and hi differ in length: {value.size}, {lo.size}, {hi.size}")
    keep = np.isfinite(value) & np.isfinite(lo) & np.isfinite(hi)
    n = int(keep.sum())
    median = float(np.median(value[keep])) if n else float("nan")
    overlap = int(((lo[keep] <= median) & (median <= hi[keep])).sum()) if n else 0
    return {"n": n, "n_overlap": overlap, "median": median, "left_out": int((~keep).sum())}


# ---------------------------------------------------------------------------------------------
# Spearman correlations across areas (validation)
# ---------------------------------------------------------------------------------------------


def area_resample_indices(n: int, draws: int, seed: int | np.random.SeedSequence = 0
                          ) -> np.ndarray:
    """Indices of ``draws`` resamples of ``n`` areas with replacement, shape (draws, n).

    An int seed is turned into ``SeedSequence([seed, 2])`` (its own stream beside the day
    resampling and the share draws of the same seed).
    """
    draws = _check_draws(draws)
    return np.random.default_rng(_stream(seed, 2)).integers(0, int(n), size=(draws, int(n)))


def spearman_interval(
    x,
    y,
    draws: int = 1000,
    seed: int | np.random.SeedSequence = 0,
    level: float = 0.90,
    x_draws: np.ndarray | None = None,
) -> dict[str, float]:
    """Percentile bootstrap interval of Spearman's rho between two per-area variables.

    Each draw resamples areas with replacement (pairs bootstrap) and, when ``x_draws`` is
    given, takes ``x`` from the matching draw of the estimate (e.g. cpc per 1000 of
    :func:`propagate_draws`), so that the interval carries both the sampling of areas and
    the uncertainty of the estimate.

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Pairs with a NaN on either side are left out (their number is returned).
    draws : int
    seed : int or numpy.random.SeedSequence
        See :func:`area_resample_indices`.
    level : float
    x_draws : numpy.ndarray, shape (draws, n), optional
        Per-draw values of ``x`` (same areas and order as ``x``).

    Returns
    -------
    dict
        ``rho`` (on the data), ``lo``, ``hi``, ``n`` (pairs used), ``left_out`` (pairs with a
        NaN), ``draws`` (draws with a defined rho).
    """
    import scipy.stats

    from cpc_core.validation.statistics import spearman_rows

    level = _check_level(level)
    x = np.asarray(x, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    keep = np.isfinite(x) & np.isfinite(y)
    n = int(keep.sum())
    if n < 3:
        raise ValueError(f"spearman_interval: {n} complete pair(s), at least 3 needed")
    idx = area_resample_indices(n, draws, seed)
    ys = y[keep][idx]
    if x_draws is None:
        xs = x[keep][idx]
    else:
        xd = np.asarray(x_draws, dtype=float)
        if xd.shape != (idx.shape[0], x.size):
            raise ValueError(f"x_draws must have shape ({idx.shape[0]}, {x.size}), got {xd.shape}")
        xs = np.take_along_axis(xd[:, keep], idx, axis=1)
    boot = spearman_rows(xs, ys)  # average ranks for ties, as spearmanr
    # a draw with a NaN x (an area whose rho is undefined in that draw) is left out
    if x_draws is not None:
        boot[~np.isfinite(xs).all(axis=1)] = np.nan
    lo, hi = percentile_interval(boot, level, axis=0)
    rho = float(scipy.stats.spearmanr(x[keep], y[keep]).statistic)
    return {"rho": rho, "lo": float(lo), "hi": float(hi), "n": n,
            "left_out": int((~keep).sum()), "draws": int(np.isfinite(boot).sum())}
