"""Validation statistics: correlations with the outcome, dependent-correlation tests, robust OLS.

This module is the statistics behind the paper's Tables 1, 2, 3 and 5-7 (see
``docs/method.md`` sections 6-7). It is built in two layers:

* numpy kernels (``_williams_t``, ``_zou_ci``, ``_p_value``, ``_describe``, ...) that take
  arrays and broadcast, so a Monte Carlo check can evaluate thousands of replicates at once;
* pandas-facing wrappers (:func:`compare_dependent_correlations`, :func:`spearman_table`,
  :func:`dependent_tests`, :func:`fit_ols`, ...) that validate, select rows and name things.

Dependent correlations
----------------------
:func:`compare_dependent_correlations` compares two *overlapping* correlations measured on
the same units, ``r_jk`` and ``r_jh`` (``j`` is the shared variable), given their
intercorrelation ``r_kh``. The formulas are those of the R package cocor (Diedenhofen &
Musch 2015, ``cocor.dep.groups.overlap``); cocor test names map to ours as
``williams1959 -> williams``, ``steiger1980 -> steiger``, ``hittner2003 -> hittner``,
``meng1992 -> meng``, ``dunn1969 -> dunn_clark``, ``hotelling1940 -> hotelling``,
``zou2007 -> zou``. ``koebe2024`` is the authors' ad-hoc statistic, offered only so that the
paper's numbers can be replicated: its variance of ``r_jk - r_jh`` ignores the two
correlations being compared, so its size is wrong in either direction (about 0.10 at a
nominal 0.05 for rho_jk = rho_jh = 0, rho_kh = 0.2, n = 30; about 0.02 for rho_jk = rho_jh =
0.5, rho_kh = 0.8, n = 40; see the Monte Carlo checks in ``tests/validation/test_validation.py``).

Caution: the paper feeds *Spearman* correlations into these tests. The Fisher-z based
tests assume Pearson correlations of normal data; for Spearman's rho the sampling variance
of ``atanh(rho)`` is somewhat larger (about ``1.06 / (n - 3)``, Fieller et al. 1957), so the
p-values are mildly optimistic. :func:`dependent_tests` follows the paper and says so here.
"""

from __future__ import annotations

import functools
import logging
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
import scipy.special

# the accepted names live in a module without numpy/pandas/scipy: the configuration checks them
from cpc_core.validation.choices import COV_TYPES, DEPENDENT_CORRELATION_METHODS, STANDARD_METHODS

# scipy.stats and statsmodels are imported where used: together ~0.8 s, which every `cpc`
# command (its configuration imports this module's method names) paid at start-up.

__all__ = [
    "COV_TYPES",
    "DEPENDENT_CORRELATION_METHODS",
    "SPEARMAN_EXACT_MAX_N",
    "STANDARD_METHODS",
    "DependentCorrelationResult",
    "OLSResult",
    "compare_dependent_correlations",
    "dependent_tests",
    "fit_ols",
    "log_per_1000",
    "spearman_bootstrap",
    "spearman_intervals",
    "spearman_rows",
    "spearman_table",
    "summary_table1",
]

logger = logging.getLogger(__name__)

Alternative = Literal["two-sided", "greater", "less"]
_ALTERNATIVES = ("two-sided", "greater", "less")

# Tolerance for the determinant of the 3x3 correlation matrix: correlations rounded to a few
# digits (as published) can give a slightly negative determinant for a valid matrix.
_DET_TOL = 1e-10


# --------------------------------------------------------------------------------------------
# numpy kernels: dependent overlapping correlations (all broadcast over array inputs)
# --------------------------------------------------------------------------------------------


def _det_r(r_jk, r_jh, r_kh):
    """Determinant of the 3x3 correlation matrix of (j, k, h)."""
    return 1.0 + 2.0 * r_jk * r_jh * r_kh - r_jk**2 - r_jh**2 - r_kh**2


def _z_diff(r_jk, r_jh):
    return np.arctanh(r_jk) - np.arctanh(r_jh)


def _pooled_z_test(r_jk, r_jh, r_kh, n, r_pool):
    """Steiger-type z: Dunn & Clark's covariance of the two z's evaluated at a pooled r.

    Steiger (1980, formula 10) and Hittner et al. (2003) differ only in how the two
    correlations are pooled, so both share this kernel.
    """
    rp2 = r_pool**2
    cov = (r_kh * (1.0 - 2.0 * rp2) - 0.5 * rp2 * (1.0 - 2.0 * rp2 - r_kh**2)) / (1.0 - rp2) ** 2
    return np.sqrt(n - 3.0) * _z_diff(r_jk, r_jh) / np.sqrt(2.0 - 2.0 * cov)


def _williams_t(r_jk, r_jh, r_kh, n):
    """Williams' (1959) t, the "standard" form of Hittner et al. (2003), df = n - 3."""
    r_mean = (r_jk + r_jh) / 2.0
    denom = 2.0 * ((n - 1.0) / (n - 3.0)) * _det_r(r_jk, r_jh, r_kh) + r_mean**2 * (1.0 - r_kh) ** 3
    return (r_jk - r_jh) * np.sqrt((n - 1.0) * (1.0 + r_kh) / denom)


def _steiger_z(r_jk, r_jh, r_kh, n):
    """Steiger's (1980) z with the arithmetic mean of the two correlations pooled."""
    return _pooled_z_test(r_jk, r_jh, r_kh, n, (r_jk + r_jh) / 2.0)


def _hittner_z(r_jk, r_jh, r_kh, n):
    """Hittner, May & Silver (2003): pool by back-transforming the mean Fisher z."""
    r_bt = np.tanh((np.arctanh(r_jk) + np.arctanh(r_jh)) / 2.0)
    return _pooled_z_test(r_jk, r_jh, r_kh, n, r_bt)


def _meng_z(r_jk, r_jh, r_kh, n):
    """Meng, Rosenthal & Rubin (1992), formulas 1-3 (f capped at 1)."""
    r2_mean = (r_jk**2 + r_jh**2) / 2.0
    # np.minimum propagates NaN, as cocor's `if (!is.nan(f) && f > 1)` does.
    f = np.minimum((1.0 - r_kh) / (2.0 * (1.0 - r2_mean)), 1.0)
    h = (1.0 - f * r2_mean) / (1.0 - r2_mean)
    return _z_diff(r_jk, r_jh) * np.sqrt((n - 3.0) / (2.0 * (1.0 - r_kh) * h))


def _dunn_clark_z(r_jk, r_jh, r_kh, n):
    """Dunn & Clark (1969), formulas 8 and 15."""
    cov = (
        r_kh * (1.0 - r_jk**2 - r_jh**2) - 0.5 * r_jk * r_jh * (1.0 - r_jk**2 - r_jh**2 - r_kh**2)
    ) / ((1.0 - r_jk**2) * (1.0 - r_jh**2))
    return np.sqrt(n - 3.0) * _z_diff(r_jk, r_jh) / np.sqrt(2.0 - 2.0 * cov)


def _hotelling_t(r_jk, r_jh, r_kh, n):
    """Hotelling's (1940) t, formula 7, df = n - 3."""
    return (
        (r_jk - r_jh) * np.sqrt((n - 3.0) * (1.0 + r_kh)) / np.sqrt(2.0 * _det_r(r_jk, r_jh, r_kh))
    )


def _koebe2024_t(r_jk, r_jh, r_kh, n):
    """The authors' ad-hoc t (replication only), referred to Student t with df = n - 2."""
    return (r_jk - r_jh) / np.sqrt((1.0 - r_kh**2) / (n - 3.0))


def _zou_ci(r_jk, r_jh, r_kh, n, conf_level):
    """Zou's (2007) interval for r_jk - r_jh (two-sided, as in cocor)."""
    x = scipy.special.ndtri(1.0 - (1.0 - conf_level) / 2.0) * np.sqrt(1.0 / (n - 3.0))
    c = ((r_kh - 0.5 * r_jk * r_jh) * (1.0 - r_jk**2 - r_jh**2 - r_kh**2) + r_kh**3) / (
        (1.0 - r_jk**2) * (1.0 - r_jh**2)
    )
    z_jk, z_jh = np.arctanh(r_jk), np.arctanh(r_jh)
    l1, u1 = np.tanh(z_jk - x), np.tanh(z_jk + x)
    l2, u2 = np.tanh(z_jh - x), np.tanh(z_jh + x)
    diff = r_jk - r_jh
    lower = diff - np.sqrt(
        (r_jk - l1) ** 2 + (u2 - r_jh) ** 2 - 2.0 * c * (r_jk - l1) * (u2 - r_jh)
    )
    upper = diff + np.sqrt(
        (u1 - r_jk) ** 2 + (r_jh - l2) ** 2 - 2.0 * c * (u1 - r_jk) * (r_jh - l2)
    )
    return lower, upper


def _p_value(statistic, df, alternative: str):
    """p-value of a z (``df is None``) or Student t statistic; greater means r_jk > r_jh."""
    cdf = scipy.special.ndtr if df is None else functools.partial(scipy.special.stdtr, df)
    if alternative == "two-sided":
        return 2.0 * cdf(-np.abs(statistic))
    if alternative == "greater":
        return cdf(-statistic)
    return cdf(statistic)


@dataclass(frozen=True)
class _Method:
    """How one dependent-correlation method is computed: data, not code paths."""

    statistic: Callable | None
    df: Callable[[float], float] | None  # None for z statistics


_METHODS: dict[str, _Method] = {
    "williams": _Method(_williams_t, lambda n: n - 3),
    "steiger": _Method(_steiger_z, None),
    "hittner": _Method(_hittner_z, None),
    "meng": _Method(_meng_z, None),
    "dunn_clark": _Method(_dunn_clark_z, None),
    "hotelling": _Method(_hotelling_t, lambda n: n - 3),
    "zou": _Method(None, None),
    "koebe2024": _Method(_koebe2024_t, lambda n: n - 2),
}


# --------------------------------------------------------------------------------------------
# Public: dependent overlapping correlations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DependentCorrelationResult:
    """Outcome of one test comparing two overlapping dependent correlations.

    Attributes
    ----------
    method : str
        One of :data:`DEPENDENT_CORRELATION_METHODS`.
    statistic : float
        z or t statistic; NaN for ``zou`` (an interval, not a test statistic).
    p_value : float
        p-value for ``alternative``; NaN for ``zou``.
    df : int or None
        Degrees of freedom for t-based methods (``williams``, ``hotelling``: n - 3;
        ``koebe2024``: n - 2), None for z-based ones.
    ci : tuple of float or None
        ``(lower, upper)`` interval for ``r_jk - r_jh``, only for ``zou``.
    alternative : str
        ``"two-sided"``, ``"greater"`` (r_jk > r_jh) or ``"less"``.
    """

    method: str
    statistic: float
    p_value: float
    df: int | None
    ci: tuple[float, float] | None
    alternative: str


def _check_r(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not -1.0 <= value <= 1.0:  # also rejects NaN
        raise ValueError(f"{name} must lie in [-1, 1], got {value!r}")
    # numpy scalars: degenerate inputs (|r| = 1) give inf/NaN under np.errstate instead of the
    # ZeroDivisionError that Python float division raises
    return np.float64(value)


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not float(n).is_integer():
        raise ValueError(f"n must be an integer, got {n!r}")
    if n <= 3:
        raise ValueError(f"n must be greater than 3 (the tests divide by n - 3), got {n!r}")
    return int(n)


def _check_choice(value: str, allowed: Sequence[str], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def compare_dependent_correlations(
    r_jk: float,
    r_jh: float,
    r_kh: float,
    n: int,
    method: str = "steiger",
    alternative: Alternative = "two-sided",
    conf_level: float = 0.95,
) -> DependentCorrelationResult:
    """Test whether two overlapping correlations from the same sample differ.

    Compares ``r_jk`` with ``r_jh`` (``j`` is the variable they share) given the
    intercorrelation ``r_kh`` of the other two variables, with the formulas of the R package
    cocor (``cocor.dep.groups.overlap``).

    Parameters
    ----------
    r_jk, r_jh : float
        The two correlations being compared, in [-1, 1].
    r_kh : float
        Correlation between ``k`` and ``h``, in [-1, 1].
    n : int
        Sample size the three correlations are computed on; must exceed 3.
    method : str, default "steiger"
        ``"williams"`` (Williams 1959 t, df n - 3), ``"steiger"`` (Steiger 1980 z, pooled r),
        ``"hittner"`` (Hittner, May & Silver 2003 z), ``"meng"`` (Meng, Rosenthal & Rubin
        1992 z), ``"dunn_clark"`` (Dunn & Clark 1969 z), ``"hotelling"`` (Hotelling 1940 t,
        df n - 3), ``"zou"`` (Zou 2007 confidence interval only) or ``"koebe2024"``: the
        authors' ad-hoc ``t = (r_jk - r_jh) / sqrt((1 - r_kh**2) / (n - 3))`` with df n - 2,
        provided to replicate the paper, **not** a recommended test (its type I error rate
        can be far from nominal, in either direction).
    alternative : {"two-sided", "greater", "less"}, default "two-sided"
        As in scipy; ``"greater"`` means the alternative ``r_jk > r_jh``. Zou's interval is
        always the two-sided interval at ``conf_level``, as in cocor.
    conf_level : float, default 0.95
        Confidence level of Zou's interval, in (0, 1).

    Returns
    -------
    DependentCorrelationResult

    Raises
    ------
    ValueError
        For correlations outside [-1, 1], ``n <= 3`` or non-integer, an unknown ``method`` or
        ``alternative``, ``conf_level`` outside (0, 1), or three correlations that cannot
        come from one correlation matrix (negative determinant).

    Notes
    -----
    Correlations of exactly +-1 are accepted but give infinite or NaN statistics for the
    methods that use Fisher's z.

    Examples
    --------
    >>> res = compare_dependent_correlations(0.3, 0.4, 0.5, 100, method="williams")
    >>> round(res.statistic, 4), round(res.p_value, 4), res.df
    (-1.0767, 0.2843, 97)
    """
    r_jk = _check_r(r_jk, "r_jk")
    r_jh = _check_r(r_jh, "r_jh")
    r_kh = _check_r(r_kh, "r_kh")
    n = _check_n(n)
    _check_choice(method, DEPENDENT_CORRELATION_METHODS, "method")
    _check_choice(alternative, _ALTERNATIVES, "alternative")
    if (
        isinstance(conf_level, bool)
        or not isinstance(conf_level, numbers.Real)
        or not 0.0 < conf_level < 1.0
    ):
        raise ValueError(f"conf_level must lie strictly between 0 and 1, got {conf_level!r}")
    det = _det_r(r_jk, r_jh, r_kh)
    if det < -_DET_TOL:
        raise ValueError(
            f"r_jk={r_jk}, r_jh={r_jh}, r_kh={r_kh} are not the correlations of one sample: "
            f"their correlation matrix has a negative determinant ({det:.3g})"
        )

    spec = _METHODS[method]
    # |r| = 1 makes Fisher's z infinite; the result is then +-inf or NaN, which is the honest
    # answer, so the floating-point warnings are silenced rather than raised.
    with np.errstate(divide="ignore", invalid="ignore"):
        if spec.statistic is None:
            lower, upper = _zou_ci(r_jk, r_jh, r_kh, n, float(conf_level))
            return DependentCorrelationResult(
                method, math.nan, math.nan, None, (float(lower), float(upper)), alternative
            )
        df = None if spec.df is None else int(spec.df(n))
        statistic = float(spec.statistic(r_jk, r_jh, r_kh, n))
        p_value = float(_p_value(statistic, df, alternative))
    return DependentCorrelationResult(method, statistic, p_value, df, None, alternative)


# --------------------------------------------------------------------------------------------
# Descriptive tables (Table 1, Table 2)
# --------------------------------------------------------------------------------------------

# (row, column) of r_jk, r_jh, r_kh in the Spearman matrix of (outcome, target, other).
_PAIRS = ((0, 1), (0, 2), (1, 2))

_DESCRIBE_COLUMNS = ("mean", "std", "min", "25%", "50%", "75%", "max", "n", "n_missing")


def _describe(x: np.ndarray) -> np.ndarray:
    """mean, std (ddof=1), min, quartiles, max, n used, n missing of a 1-d float array."""
    missing = np.isnan(x)
    v = x[~missing]
    n = v.size
    if n == 0:
        stats = np.full(7, np.nan)
    else:
        # Linear interpolation of quantiles: the pandas ``describe`` convention.
        q = np.quantile(v, [0.25, 0.5, 0.75])
        std = v.std(ddof=1) if n > 1 else np.nan
        stats = np.array([v.mean(), std, v.min(), *q, v.max()])
    return np.concatenate([stats, [n, missing.sum()]])


def _as_float_vector(x, name: str) -> np.ndarray:
    if isinstance(x, pd.Series | pd.Index):
        arr = x.to_numpy(dtype=float, na_value=np.nan)
    else:
        arr = np.asarray(x, dtype=float)
    arr = arr.ravel()
    if np.isinf(arr).any():
        raise ValueError(f"{name} contains {int(np.isinf(arr).sum())} infinite value(s)")
    return arr


def summary_table1(rho, c) -> pd.DataFrame:
    """Summary of the correlations rho_j and correction factors c_j (the paper's Table 1).

    Parameters
    ----------
    rho, c : array-like
        Per-commune Pearson correlations rho_j and correction factors c_j. NaN values are
        excluded from the statistics and counted.

    Returns
    -------
    pandas.DataFrame
        Rows ``rho_j`` and ``c_j``; columns ``mean``, ``std`` (ddof=1, as
        :meth:`pandas.Series.describe`), ``min``, ``25%``, ``50%``, ``75%``, ``max``, then
        ``n`` (values used) and ``n_missing`` (NaNs excluded).

    Raises
    ------
    ValueError
        If either input contains infinite values (a sign of an upstream bug, not a gap).

    Examples
    --------
    >>> t = summary_table1([0.1, 0.2, float("nan")], [0.001, 0.002, 0.003])
    >>> t.loc["rho_j", ["mean", "n", "n_missing"]].tolist()
    [0.15000000000000002, 2.0, 1.0]
    """
    rows = {"rho_j": _as_float_vector(rho, "rho"), "c_j": _as_float_vector(c, "c")}
    table = pd.DataFrame(
        np.vstack([_describe(v) for v in rows.values()]),
        index=pd.Index(list(rows), name="quantity"),
        columns=list(_DESCRIBE_COLUMNS),
    )
    return table.astype({"n": "int64", "n_missing": "int64"})


def _require_columns(df: pd.DataFrame, cols: Sequence[str], func: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"{func}: column(s) not in the frame: {', '.join(map(repr, missing))}")


def _column(df: pd.DataFrame, col: str) -> np.ndarray:
    try:
        return df[col].to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError(f"column {col!r} is not numeric: {err}") from err


def log_per_1000(df: pd.DataFrame, cols: Sequence[str], prefix: str = "log_") -> pd.DataFrame:
    """Natural log of rate columns (e.g. traffic per 1000 inhabitants), named ``prefix + col``.

    Parameters
    ----------
    df : pandas.DataFrame
        Input frame; not modified.
    cols : sequence of str
        Columns to transform; all values must be positive (NaN is passed through).
    prefix : str, default "log_"
        Prefix of the output column names.

    Returns
    -------
    pandas.DataFrame
        Same index as ``df``, one column per input column.

    Raises
    ------
    ValueError
        If a column holds zero or negative values; the message names every such column and
        how many values are affected, because silently dropping them (log 0 = -inf) would
        change the sample.

    Examples
    --------
    >>> df = pd.DataFrame({"Tor_per_1000": [1.0, np.e]})
    >>> log_per_1000(df, ["Tor_per_1000"])["log_Tor_per_1000"].tolist()
    [0.0, 1.0]
    """
    cols = list(cols)
    _require_columns(df, cols, "log_per_1000")
    values = {c: _column(df, c) for c in cols}
    bad = {c: int((v <= 0).sum()) for c, v in values.items() if (v <= 0).any()}
    if bad:
        detail = "; ".join(f"{c!r}: {k} value(s) <= 0" for c, k in bad.items())
        raise ValueError(f"log_per_1000: cannot take the log of non-positive values ({detail})")
    return pd.DataFrame({prefix + c: np.log(v) for c, v in values.items()}, index=df.index)


#: Largest n for which Spearman's p-value is exact (all n! pairings enumerated; 8! = 40 320
#: take about 0.1 s, 9! over 1 s). Beyond it the t approximation of :func:`scipy.stats.spearmanr` is used;
#: below ~10 that approximation is poor (n = 3 with rho = 1 gives t = inf and p = 0).
SPEARMAN_EXACT_MAX_N = 8


def _spearman_exact_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided exact permutation p-value of Spearman's rho, P(|rho| >= |rho_obs|), over
    every pairing of x with y.

    The ranks (mid-ranks for ties) are computed once; permuting them is permuting the data.
    The p-value counts the observed pairing itself, so it is never 0: at least 2 / n! without
    ties.
    """
    import scipy.stats

    rx = scipy.stats.rankdata(x)
    ry = scipy.stats.rankdata(y)
    ry = ry - ry.mean()
    ssy = float((ry * ry).sum())

    def stat(a, axis=-1):
        a = a - a.mean(axis=axis, keepdims=True)
        return np.abs((a * ry).sum(axis=axis) / np.sqrt((a * a).sum(axis=axis) * ssy))

    # P(|rho| >= |rho_obs|): with ties the null is not symmetric, and scipy's default
    # two-sided rule (twice the smaller tail) would then differ from it
    res = scipy.stats.permutation_test((rx,), stat, permutation_type="pairings",
                                       n_resamples=np.inf, vectorized=True,
                                       alternative="greater")  # fmt: skip
    return float(res.pvalue)


def _perfect_tail(x: np.ndarray) -> float:
    """P(|rho| = 1) under the permutation null: the smallest possible permutation p-value.

    Only the pairings that keep x's order (and the reverse one) reach |rho| = 1: with tie
    groups of sizes g_i that is ``2 prod(g_i!) / n!``. Computed in logs; clamped to the
    smallest positive double, so that it is never reported as 0.
    """
    _, counts = np.unique(x, return_counts=True)
    log_p = math.log(2.0) + sum(math.lgamma(g + 1) for g in counts) - math.lgamma(x.size + 1)
    return min(1.0, max(math.exp(log_p), float(np.finfo(float).tiny)))


def _spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value; exact for n <= SPEARMAN_EXACT_MAX_N.

    Fewer than 3 pairs or a constant input give NaN (the table reports it, with a note).
    """
    import scipy.stats

    if x.size < 3:
        return math.nan, math.nan
    with warnings.catch_warnings():
        # A constant column gives NaN; that is reported in the table, not as a warning.
        warnings.simplefilter("ignore", scipy.stats.ConstantInputWarning)
        res = scipy.stats.spearmanr(x, y)
    rho, p = float(res.statistic), float(res.pvalue)
    if not math.isfinite(rho):
        return math.nan, math.nan
    if x.size <= SPEARMAN_EXACT_MAX_N:
        p = _spearman_exact_p(x, y)
    else:
        # No pairing can be more extreme than a perfect one, so its probability bounds every
        # permutation p-value from below; the t approximation ignores that near |rho| = 1
        # (it says p = 0 at |rho| = 1, since it divides by zero).
        p = max(p, _perfect_tail(x)) if math.isfinite(p) else _perfect_tail(x)
    return rho, p


def spearman_table(df: pd.DataFrame, outcome: str, indicators: Sequence[str]) -> pd.DataFrame:
    """Spearman's rho of an outcome with each indicator (the paper's Table 2).

    Each correlation uses the rows where the outcome and that indicator are both finite, so
    ``n`` may differ between indicators. Log transforms are the caller's job (see
    :func:`log_per_1000`); Spearman's rho is invariant to them anyway.

    Parameters
    ----------
    df : pandas.DataFrame
    outcome : str
        Outcome column (e.g. victims of sexual violence per 1000).
    indicators : sequence of str
        Indicator columns.

    Returns
    -------
    pandas.DataFrame
        Columns ``indicator``, ``rho``, ``p_value`` (two-sided) and ``n``, one row per
        indicator. The p-value is exact (every pairing enumerated) for ``n <=``
        :data:`SPEARMAN_EXACT_MAX_N`, else the t approximation of
        :func:`scipy.stats.spearmanr`; it is never 0. Fewer than 3 usable rows or a
        constant column give NaN.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1, 2, 3, 4], "a": [1, 3, 2, 4], "b": [4, 3, 2, np.nan]})
    >>> spearman_table(df, "y", ["a", "b"]).round(3)[["indicator", "rho", "n"]].values.tolist()
    [['a', 0.8, 4], ['b', -1.0, 3]]
    """
    indicators = list(indicators)
    _require_columns(df, [outcome, *indicators], "spearman_table")
    y = _column(df, outcome)
    rows = []
    for col in indicators:
        x = _column(df, col)
        keep = np.isfinite(y) & np.isfinite(x)
        rho, p = _spearman(y[keep], x[keep])
        rows.append((col, rho, p, int(keep.sum())))
    logger.debug("spearman_table: %s vs %d indicators", outcome, len(indicators))
    return pd.DataFrame(rows, columns=["indicator", "rho", "p_value", "n"])


def spearman_rows(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of two (draws, n) arrays: Pearson's correlation of the
    average ranks, as :func:`scipy.stats.spearmanr`; NaN for a row constant on one side.

    The kernel of every bootstrap of a Spearman rho (:func:`spearman_bootstrap`,
    :func:`cpc_core.estimate.uncertainty.spearman_interval`).

    Examples
    --------
    >>> spearman_rows(np.array([[1.0, 2, 3], [1, 1, 1]]), np.array([[3.0, 2, 1], [1, 2, 3]]))
    array([-1., nan])
    """
    import scipy.stats

    rx = scipy.stats.rankdata(xs, axis=1)
    ry = scipy.stats.rankdata(ys, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rx * ry).sum(axis=1) / np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))


def spearman_bootstrap(x, y, draws: int = 1000, level: float = 0.90, seed: int = 0
                       ) -> tuple[float, float, int]:  # fmt: skip
    """Percentile pairs-bootstrap interval of Spearman's rho between ``x`` and ``y``.

    Draw ``b`` resamples the ``n`` pairs with replacement, with the indices
    ``numpy.random.default_rng(seed).integers(0, n, size=(draws, n))[b]``, and recomputes
    Spearman's rho (Pearson's correlation of the average ranks, as
    :func:`scipy.stats.spearmanr`). The interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles (linear interpolation) of the defined draws; a draw whose
    resample is constant on one side (possible for small ``n``) is undefined and left out.

    Resampling areas treats them as independent draws from a population of areas; the
    interval carries no uncertainty of the per-area estimates themselves (see
    :func:`cpc_core.estimate.uncertainty.spearman_interval` for that).

    Parameters
    ----------
    x, y : array_like, shape (n,)
        Finite values (the caller drops incomplete pairs, as :func:`spearman_table` does).
    draws : int
        Bootstrap resamples (at least 1).
    level : float
        In (0, 1).
    seed : int
        Seed of the resampling: the same seed gives the same interval.

    Returns
    -------
    lo, hi : float
        NaN when fewer than 3 pairs or no draw is defined.
    defined : int
        The draws with a defined rho.

    Examples
    --------
    >>> x = np.arange(30.0)
    >>> lo, hi, k = spearman_bootstrap(x, x ** 3, draws=200, seed=1)
    >>> (lo, hi, k)
    (1.0, 1.0, 200)
    """

    if not (isinstance(draws, numbers.Integral) and draws >= 1):
        raise ValueError(f"draws must be a positive integer, got {draws!r}")
    if not (0 < level < 1):
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.size} vs {y.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise ValueError("spearman_bootstrap: x and y must be finite (drop incomplete pairs first)")
    n = x.size
    if n < 3:
        return math.nan, math.nan, 0
    idx = np.random.default_rng(seed).integers(0, n, size=(int(draws), n))
    boot = np.empty(int(draws))
    # In blocks of rows: (draws x n) rank matrices of a few thousand areas stay small.
    block = max(1, 2_000_000 // n)
    for start in range(0, int(draws), block):
        sl = idx[start:start + block]
        boot[start:start + block] = spearman_rows(x[sl], y[sl])
    ok = np.isfinite(boot)
    if not ok.any():
        return math.nan, math.nan, 0
    lo, hi = np.quantile(boot[ok], [(1 - level) / 2, (1 + level) / 2])
    # rank correlations are bounded by 1; the arithmetic may overshoot by an ulp
    return float(np.clip(lo, -1, 1)), float(np.clip(hi, -1, 1)), int(ok.sum())


def spearman_intervals(df: pd.DataFrame, outcome: str, indicators: Sequence[str],
                       draws: int = 1000, level: float = 0.90, seed: int = 0
                       ) -> pd.DataFrame:  # fmt: skip
    """Bootstrap intervals of the rows of :func:`spearman_table`.

    Each indicator uses the rows where it and the outcome are finite (the same rows as its
    rho) and :func:`spearman_bootstrap` with the same ``seed``, so an indicator's interval
    does not depend on which other indicators are in the table.

    Returns
    -------
    pandas.DataFrame
        ``indicator``, ``ci_lower``, ``ci_upper``, ``ci_level``, ``ci_draws`` (defined draws),
        one row per indicator, in order.

    Examples
    --------
    >>> df = pd.DataFrame({"y": np.arange(20.0), "a": np.arange(20.0) ** 2})
    >>> spearman_intervals(df, "y", ["a"], draws=50).to_dict("records")
    [{'indicator': 'a', 'ci_lower': 1.0, 'ci_upper': 1.0, 'ci_level': 0.9, 'ci_draws': 50}]
    """
    indicators = list(indicators)
    _require_columns(df, [outcome, *indicators], "spearman_intervals")
    y = _column(df, outcome)
    rows = []
    for col in indicators:
        x = _column(df, col)
        keep = np.isfinite(y) & np.isfinite(x)
        lo, hi, k = spearman_bootstrap(x[keep], y[keep], draws, level, seed)
        rows.append((col, lo, hi, float(level), k))
    return pd.DataFrame(rows, columns=["indicator", "ci_lower", "ci_upper", "ci_level", "ci_draws"])


def _spearman_matrix(data: np.ndarray) -> np.ndarray:
    """Spearman correlation matrix of the columns of ``data`` (rows = units), always k x k.

    :func:`scipy.stats.spearmanr` collapses its matrix to a single NaN when a column is
    constant; here such a column gets NaN in its row and column only, and fewer than 2 rows
    give an all-NaN matrix (NaN plus a note, never an error).

    Examples
    --------
    >>> m = _spearman_matrix(np.array([[1.0, 5.0, 2.0], [2.0, 5.0, 1.0], [3.0, 5.0, 3.0]]))
    >>> np.isnan(m[1]).all(), round(float(m[0, 2]), 2)
    (np.True_, 0.5)
    """
    import scipy.stats

    k = data.shape[1]
    if data.shape[0] < 2:
        return np.full((k, k), np.nan)
    ranks = scipy.stats.rankdata(data, axis=0)
    ranks = ranks - ranks.mean(axis=0)
    ss = (ranks * ranks).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ranks.T @ ranks) / np.sqrt(np.outer(ss, ss))


def dependent_tests(
    df: pd.DataFrame,
    outcome: str,
    target: str,
    others: Sequence[str],
    methods: Sequence[str] = STANDARD_METHODS,
    alternative: Alternative = "two-sided",
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Does the outcome correlate more with ``target`` than with each of ``others``?

    For every ``other``, takes the rows where ``outcome``, ``target`` and ``other`` are all
    finite, computes the three Spearman correlations there (as the paper does) and runs
    :func:`compare_dependent_correlations` with ``j = outcome``, ``k = target``,
    ``h = other``.

    Parameters
    ----------
    df : pandas.DataFrame
    outcome, target : str
        The shared variable and the indicator of interest (e.g. log cpc per 1000).
    others : sequence of str
        Competing indicators.
    methods : sequence of str, default :data:`STANDARD_METHODS`
        Methods of :func:`compare_dependent_correlations`; add ``"koebe2024"`` to replicate
        the paper's own (non-standard) test.
    alternative : {"two-sided", "greater", "less"}, default "two-sided"
        ``"greater"``: corr(outcome, target) > corr(outcome, other).
    conf_level : float, default 0.95
        For Zou's interval.

    Returns
    -------
    pandas.DataFrame
        One row per (other, method): ``outcome``, ``target``, ``other``, ``method``, ``n``,
        ``r_target`` (r_jk), ``r_other`` (r_jh), ``r_target_other`` (r_kh), ``statistic``,
        ``df``, ``p_value``, ``ci_lower``, ``ci_upper``, ``alternative``.

    Notes
    -----
    The Fisher-z based tests assume Pearson correlations; see the module docstring for why
    their p-values are mildly optimistic with Spearman's rho.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame(rng.normal(size=(50, 3)), columns=["y", "cpc", "tor"])
    >>> out = dependent_tests(df, "y", "cpc", ["tor"], methods=["steiger", "zou"])
    >>> out[["other", "method", "n"]].values.tolist()
    [['tor', 'steiger', 50], ['tor', 'zou', 50]]
    """

    others = list(others)
    methods = list(methods)
    for m in methods:
        _check_choice(m, DEPENDENT_CORRELATION_METHODS, "methods entry")
    _require_columns(df, [outcome, target, *others], "dependent_tests")
    y, t = _column(df, outcome), _column(df, target)
    rows = []
    for other in others:
        o = _column(df, other)
        keep = np.isfinite(y) & np.isfinite(t) & np.isfinite(o)
        n = int(keep.sum())
        rmat = _spearman_matrix(np.column_stack([y[keep], t[keep], o[keep]]))
        r_jk, r_jh, r_kh = (float(rmat[i, j]) for i, j in _PAIRS)
        # A table over many indicators should not stop at one undefined comparison (a
        # constant column, too few rows): that row gets NaN and a warning instead.
        defined = n > 3 and all(math.isfinite(r) for r in (r_jk, r_jh, r_kh))
        if not defined:
            logger.warning(
                "dependent_tests: %s vs %s is undefined (n=%d, r=%s); reporting NaN",
                target, other, n, (r_jk, r_jh, r_kh),
            )  # fmt: skip
        for m in methods:
            if defined:
                res = compare_dependent_correlations(
                    r_jk, r_jh, r_kh, n, m, alternative, conf_level
                )
            else:
                df_ = None if _METHODS[m].df is None else int(_METHODS[m].df(n))
                res = DependentCorrelationResult(m, math.nan, math.nan, df_, None, alternative)
            lo, hi = res.ci if res.ci is not None else (math.nan, math.nan)
            rows.append(
                (outcome, target, other, m, n, r_jk, r_jh, r_kh, res.statistic, res.df,
                 res.p_value, lo, hi, alternative)
            )  # fmt: skip
    cols = [
        "outcome", "target", "other", "method", "n", "r_target", "r_other", "r_target_other",
        "statistic", "df", "p_value", "ci_lower", "ci_upper", "alternative",
    ]  # fmt: skip
    out = pd.DataFrame(rows, columns=cols)
    out["df"] = out["df"].astype("Int64")
    return out


# --------------------------------------------------------------------------------------------
# OLS with heteroscedasticity-robust standard errors (Tables 3, 5, 6, 7)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class OLSResult:
    """The parts of a fitted OLS model that the tables need, detached from statsmodels.

    ``eq=False`` because the fields hold pandas objects, whose ``==`` is element-wise.

    Attributes
    ----------
    name : str
        Model name (column title in regression tables).
    y : str
        Dependent variable.
    params, bse, pvalues : pandas.Series
        Coefficients, standard errors under ``cov_type`` and their p-values, indexed by term
        (``"const"`` for the intercept).
    nobs : int
        Observations used.
    rsquared, rsquared_adj : float
    cov_type : str
        ``"nonrobust"`` or ``"HC0"``..``"HC3"``.
    dropped : int
        Rows dropped because ``y`` or a regressor was missing.
    df_resid : float
        Residual degrees of freedom (for t-based intervals).
    use_t : bool
        Whether p-values and intervals use Student t (else normal).
    """

    name: str
    y: str
    params: pd.Series
    bse: pd.Series
    pvalues: pd.Series
    nobs: int
    rsquared: float
    rsquared_adj: float
    cov_type: str
    dropped: int
    df_resid: float
    use_t: bool

    def conf_int(self, alpha: float = 0.05) -> pd.DataFrame:
        """Wald interval ``params +- q * bse`` with the model's t or normal quantile.

        Examples
        --------
        >>> df = pd.DataFrame({"y": [1.0, 2.1, 2.9, 4.2], "x": [0.0, 1.0, 2.0, 3.0]})
        >>> fit_ols(df, "y", ["x"]).conf_int().columns.tolist()
        ['lower', 'upper']
        """
        import scipy.stats

        q = (
            scipy.stats.t.ppf(1 - alpha / 2, self.df_resid)
            if self.use_t
            else scipy.stats.norm.ppf(1 - alpha / 2)
        )
        return pd.DataFrame(
            {"lower": self.params - q * self.bse, "upper": self.params + q * self.bse}
        )

    def to_frame(self) -> pd.DataFrame:
        """Coefficient table: ``coef``, ``se``, ``statistic``, ``p_value`` by term.

        Examples
        --------
        >>> df = pd.DataFrame({"y": [1.0, 2.1, 2.9, 4.2], "x": [0.0, 1.0, 2.0, 3.0]})
        >>> fit_ols(df, "y", ["x"]).to_frame().columns.tolist()
        ['coef', 'se', 'statistic', 'p_value']
        """
        out = pd.DataFrame(
            {
                "coef": self.params,
                "se": self.bse,
                "statistic": self.params / self.bse,
                "p_value": self.pvalues,
            }
        )
        out.index.name = "term"
        return out


def fit_ols(
    df: pd.DataFrame,
    y: str,
    X: Sequence[str],
    cov_type: str = "HC3",
    use_t: bool = True,
    name: str | None = None,
    add_constant: bool = True,
) -> OLSResult:
    """OLS of ``y`` on ``X`` with heteroscedasticity-robust standard errors.

    The paper's setting is R's ``sandwich`` default, HC3, with t-based p-values
    (``sm.OLS(...).fit(cov_type="HC3", use_t=True)``), which is the default here.

    Parameters
    ----------
    df : pandas.DataFrame
    y : str
        Dependent variable.
    X : sequence of str
        Regressors; an intercept ``"const"`` is added unless ``add_constant=False``.
    cov_type : {"HC3", "HC0", "HC1", "HC2", "nonrobust"}, default "HC3"
        HC1 is Stata's ``robust``; HC3 is R sandwich's ``vcovHC`` default.
    use_t : bool, default True
        Student t (df = n - k) rather than normal p-values.
    name : str, optional
        Model name; defaults to ``y``.
    add_constant : bool, default True

    Returns
    -------
    OLSResult

    Raises
    ------
    KeyError
        If a column is missing.
    ValueError
        For an unknown ``cov_type``, infinite values, too few complete rows, or a
        rank-deficient design (collinear regressors would otherwise be fitted silently by
        a pseudo-inverse).

    Notes
    -----
    Rows with a missing value in ``y`` or any regressor are dropped; their number is
    returned as ``dropped`` and logged.

    Examples
    --------
    >>> df = pd.DataFrame({"y": [1.0, 2.1, 2.9, 4.2, np.nan], "x": [0.0, 1.0, 2.0, 3.0, 4.0]})
    >>> res = fit_ols(df, "y", ["x"], cov_type="HC1")
    >>> res.nobs, res.dropped, round(float(res.params["x"]), 2)
    (4, 1, 1.04)
    """
    # the model's own module, not statsmodels.api (which imports every model: ~0.5 s)
    from statsmodels.regression.linear_model import OLS

    _check_choice(cov_type, COV_TYPES, "cov_type")
    X = list(X)
    if not X and not add_constant:
        raise ValueError("X is empty and add_constant=False: nothing to regress on")
    if add_constant and "const" in X:
        raise ValueError("X already has a column named 'const'; pass add_constant=False")
    _require_columns(df, [y, *X], "fit_ols")
    data = pd.DataFrame({c: _column(df, c) for c in dict.fromkeys([y, *X])}, index=df.index)
    infinite = [c for c in data.columns if np.isinf(data[c].to_numpy()).any()]
    if infinite:
        raise ValueError(
            f"fit_ols: infinite values in column(s) {', '.join(map(repr, infinite))} "
            "(a log of zero?); fix them rather than have them dropped silently"
        )
    complete = data.notna().all(axis=1).to_numpy()
    dropped = int((~complete).sum())
    data = data.loc[complete]
    if dropped:
        logger.info("fit_ols(%s): dropped %d row(s) with missing values", y, dropped)

    exog = data[X].copy()
    if add_constant:
        exog.insert(0, "const", 1.0)
    nobs, k = exog.shape
    if nobs <= k:
        raise ValueError(f"fit_ols: {nobs} complete row(s) for {k} parameter(s)")
    rank = np.linalg.matrix_rank(exog.to_numpy())
    if rank < k:
        raise ValueError(
            f"fit_ols: design matrix has rank {rank} < {k} columns; regressors are collinear"
        )

    res = OLS(data[y], exog).fit(cov_type=cov_type, use_t=use_t)
    return OLSResult(
        name=y if name is None else name,
        y=y,
        params=res.params.rename("coef"),
        bse=pd.Series(np.asarray(res.bse), index=res.params.index, name="se"),
        pvalues=pd.Series(np.asarray(res.pvalues), index=res.params.index, name="p_value"),
        nobs=int(res.nobs),
        rsquared=float(res.rsquared),
        rsquared_adj=float(res.rsquared_adj),
        cov_type=cov_type,
        dropped=dropped,
        df_resid=float(res.df_resid),
        use_t=bool(use_t),
    )
