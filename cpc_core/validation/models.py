"""Outcome models that fit zero-inflated outcomes: hurdle, zero-inflated counts, comparison.

About half of the published outcome values (e.g. sexual violence per 1000) are zero; the
paper's OLS drops them (Table 6). This module fits, beside that OLS:

- :func:`fit_hurdle` -- a two-part (hurdle) model: a logit for ``P(y > 0)`` on all rows and
  a linear model for the positive part (``y`` itself, as the paper's OLS, or ``log y``), both
  with heteroscedasticity-robust standard errors.
- :func:`fit_count_models` -- Poisson, negative binomial (NB2) and their zero-inflated
  versions (ZIP, ZINB) from statsmodels, for counts (:func:`counts_from_rate` turns a rate
  per 1000 and the population back into counts), with the population as exposure so that
  coefficients stay on the rate scale.
- :func:`vuong_test` -- Vuong's (1989) test of two non-nested models from their
  per-observation log-likelihoods, written out from its formula, with the AIC and BIC
  corrections of R's ``pscl::vuong``.
- :func:`comparison_table` -- one row per model: sample, outcome scale, n, parameters,
  log-likelihood, AIC, BIC and the Vuong test of each zero-inflated model against its
  base model; :func:`coefficient_table` -- the coefficients in long form.

Comparability: AIC and BIC compare models of the *same* outcome on the *same* rows only.
The paper's OLS (positive rows, a rate), the hurdle (all rows, a rate) and the count models
(all rows, counts) are three such groups; the ``comparable`` column of
:func:`comparison_table` names the group, and only rows of one group should be ranked.
Caution on Vuong: ZIP vs Poisson (and ZINB vs NB) are nested at the boundary (zero
inflation -> 0), where Vuong's normal reference is not exact (Wilson 2015); the corrected
statistics are reported for that reason.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from cpc_core.errors import InputDataError, UsageError, clip
from cpc_core.validation.statistics import COV_TYPES, OLSResult, fit_ols

__all__ = [
    "COUNT_MODELS",
    "CountModelResult",
    "HurdleResult",
    "VuongResult",
    "coefficient_table",
    "comparison_table",
    "counts_from_rate",
    "fit_count_models",
    "fit_hurdle",
    "vuong_test",
]

logger = logging.getLogger(__name__)

#: Count models fitted by :func:`fit_count_models`, in order.
COUNT_MODELS: tuple[str, ...] = ("poisson", "negbin", "zip", "zinb")
#: Zero-inflated model -> its base model, for the Vuong test.
_VUONG_PAIRS = {"zip": "poisson", "zinb": "negbin"}


# ---------------------------------------------------------------------------------------------
# data preparation
# ---------------------------------------------------------------------------------------------


def _complete(df: pd.DataFrame, cols: Sequence[str], func: str) -> tuple[pd.DataFrame, int]:
    """Numeric copy of ``cols`` with incomplete rows dropped (counted and logged)."""
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise InputDataError(f"{func}: missing column(s) {missing}")
    data = pd.DataFrame(index=df.index)
    for c in dict.fromkeys(cols):
        try:
            data[c] = df[c].to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError) as err:
            raise InputDataError(f"{func}: column {clip(c)} is not numeric: {err}") from err
    infinite = [c for c in data.columns if np.isinf(data[c].to_numpy()).any()]
    if infinite:
        raise InputDataError(f"{func}: infinite values in column(s) {infinite} (a log of zero?)")
    complete = data.notna().all(axis=1)
    dropped = int((~complete).sum())
    if dropped:
        logger.info("%s: dropped %d row(s) with missing values", func, dropped)
    return data.loc[complete], dropped


def _design(data: pd.DataFrame, X: Sequence[str], func: str) -> pd.DataFrame:
    exog = data[list(X)].copy()
    exog.insert(0, "const", 1.0)
    rank = np.linalg.matrix_rank(exog.to_numpy())
    if rank < exog.shape[1]:
        raise InputDataError(f"{func}: design matrix has rank {rank} < {exog.shape[1]} columns")
    return exog


def counts_from_rate(rate: pd.Series, population: pd.Series, per: float = 1000.0,
                     tolerance: float = 0.05) -> pd.Series:
    """Counts behind a rate per ``per`` inhabitants: ``round(rate x population / per)``.

    Parameters
    ----------
    rate, population : pandas.Series
        Aligned on the same index; NaN stays NaN.
    per : float
        The rate's denominator (1000 for "per 1000").
    tolerance : float
        Largest accepted distance of ``rate x population / per`` from an integer; a larger
        one means the rate was not computed from this population (a warning is logged with
        the number of such rows, since rounding would then invent counts).

    Returns
    -------
    pandas.Series, float (integral values or NaN)

    Examples
    --------
    >>> counts_from_rate(pd.Series([2.5, 0.0, np.nan]), pd.Series([2000, 900, 100])).tolist()
    [5.0, 0.0, nan]
    """
    rate = pd.Series(rate, dtype=float)
    population = pd.Series(population, dtype=float).reindex(rate.index)
    if (rate < 0).any():
        raise InputDataError(f"counts_from_rate: {int((rate < 0).sum())} negative rate(s)")
    raw = rate * population / per
    off = (raw - raw.round()).abs() > tolerance
    if off.any():
        logger.warning("counts_from_rate: %d row(s) are more than %g from a whole count",
                       int(off.sum()), tolerance)
    return raw.round()


# ---------------------------------------------------------------------------------------------
# hurdle model
# ---------------------------------------------------------------------------------------------


class _InformationCriteria:
    """AIC and BIC of a fit with ``llf``, ``k`` parameters and ``nobs`` observations."""

    @property
    def aic(self) -> float:
        """``-2 llf + 2 k``."""
        return -2 * self.llf + 2 * self.k

    @property
    def bic(self) -> float:
        """``-2 llf + k log(n)``."""
        return -2 * self.llf + self.k * math.log(self.nobs)


@dataclass(frozen=True, eq=False)
class HurdleResult(_InformationCriteria):
    """A two-part model: logit for ``y > 0`` and a linear model of the positive part.

    Attributes
    ----------
    y : str
        The outcome.
    positive : {"linear", "log"}
        Scale of the positive part (``y`` or ``log y``).
    zero_part : OLSResult-like tables
        ``zero_params``, ``zero_bse``, ``zero_pvalues`` (pandas.Series by term) of the logit.
    zero_wald_stat, zero_wald_p : float
        Robust Wald test that every slope of the logit is zero (chi-square, df = slopes).
    positive_part : OLSResult
        The positive part (from :func:`cpc_core.validation.statistics.fit_ols`).
    nobs, n_positive, dropped : int
        Rows used, of them positive, rows dropped for missing values.
    llf : float
        Log-likelihood of the whole model (logit + Gaussian positive part; for ``"log"``
        including the Jacobian ``-sum(log y)``, so that it is a likelihood of ``y``).
    k : int
        Parameters, the positive part's error variance included.
    cov_type : str
        Covariance of the positive part.
    positive_llf : float
        Log-likelihood of the positive part alone (for ``"linear"`` that of the paper's OLS
        on the same rows).
    """

    y: str
    positive: str
    zero_params: pd.Series
    zero_bse: pd.Series
    zero_pvalues: pd.Series
    zero_wald_stat: float
    zero_wald_p: float
    positive_part: OLSResult
    nobs: int
    n_positive: int
    dropped: int
    llf: float
    k: int
    cov_type: str
    positive_llf: float



def fit_hurdle(
    df: pd.DataFrame,
    y: str,
    X: Sequence[str],
    positive: Literal["linear", "log"] = "linear",
    cov_type: str = "HC3",
    logit_cov_type: str = "HC0",
) -> HurdleResult:
    """Two-part (hurdle) model of a non-negative outcome with many zeros.

    Part 1: ``logit P(y > 0) = X b`` on all complete rows. Part 2: OLS of ``y`` (``"linear"``:
    the paper's model, fitted on the positive rows only) or of ``log y`` (``"log"``) on the
    positive rows.

    Parameters
    ----------
    df : pandas.DataFrame
    y : str
        Non-negative outcome (e.g. ``sexual_violence_per_1000``).
    X : sequence of str
        Regressors (an intercept is added to both parts).
    positive : {"linear", "log"}
        Scale of the positive part.
    cov_type : str
        Robust covariance of the positive part (HC3, as the paper's OLS).
    logit_cov_type : str
        Robust (sandwich) covariance of the logit; HC0 is the standard one for a
        likelihood model.

    Returns
    -------
    HurdleResult

    Raises
    ------
    KeyError, ValueError
        Missing or non-numeric columns, negative outcomes, no zeros or no positives, a
        rank-deficient design.
    """
    # the model's own module, not statsmodels.api (which imports every model: ~0.5 s)
    from statsmodels.discrete.discrete_model import Logit

    if positive not in ("linear", "log"):
        raise UsageError(f"positive must be 'linear' or 'log', got {clip(positive)}")
    if cov_type not in COV_TYPES or logit_cov_type not in COV_TYPES:
        raise UsageError(f"cov_type must be one of {COV_TYPES}")
    X = list(X)
    data, dropped = _complete(df, [y, *X], "fit_hurdle")
    if (data[y] < 0).any():
        raise InputDataError(f"fit_hurdle: {int((data[y] < 0).sum())} negative value(s) of {clip(y)}")
    pos = data[y] > 0
    if pos.all() or not pos.any():
        raise InputDataError(f"fit_hurdle: {clip(y)} needs both zero and positive values "
                         f"({int(pos.sum())} positive of {len(pos)})")
    exog = _design(data, X, "fit_hurdle")
    logit = Logit(pos.astype(float), exog).fit(disp=0, cov_type=logit_cov_type, maxiter=200)
    if not logit.mle_retvals.get("converged", True):
        logger.warning("fit_hurdle(%s): the logit did not converge", y)
    slopes = [t for t in exog.columns if t != "const"]
    if slopes:
        wald = logit.wald_test(np.eye(len(exog.columns))[1:], scalar=True)
        wald_stat, wald_p = float(wald.statistic), float(wald.pvalue)
    else:
        wald_stat = wald_p = math.nan

    positive_df = data.loc[pos].copy()
    target = y
    if positive == "log":
        target = f"log_{y}"
        positive_df[target] = np.log(positive_df[y])
    part2 = fit_ols(positive_df, target, X, cov_type=cov_type, name=f"{y} > 0 ({positive})")
    # Gaussian log-likelihood at the ML variance (as statsmodels' OLS llf).
    resid_ss = _ols_ssr(positive_df, target, X)
    n_pos = int(pos.sum())
    llf_pos = -n_pos / 2 * (math.log(2 * math.pi * resid_ss / n_pos) + 1)
    if positive == "log":
        llf_pos -= float(np.log(positive_df[y]).sum())
    return HurdleResult(
        y=y,
        positive=positive,
        zero_params=logit.params.rename("coef"),
        zero_bse=pd.Series(np.asarray(logit.bse), index=logit.params.index, name="se"),
        zero_pvalues=pd.Series(np.asarray(logit.pvalues), index=logit.params.index,
                               name="p_value"),
        zero_wald_stat=wald_stat,
        zero_wald_p=wald_p,
        positive_part=part2,
        nobs=len(data),
        n_positive=n_pos,
        dropped=dropped,
        llf=float(logit.llf) + llf_pos,
        k=2 * len(exog.columns) + 1,
        cov_type=cov_type,
        positive_llf=llf_pos,
    )


def _ols_ssr(data: pd.DataFrame, y: str, X: Sequence[str]) -> float:
    exog = _design(data, X, "fit_hurdle").to_numpy()
    beta, *_ = np.linalg.lstsq(exog, data[y].to_numpy(), rcond=None)
    resid = data[y].to_numpy() - exog @ beta
    return float(resid @ resid)


# ---------------------------------------------------------------------------------------------
# count models
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class CountModelResult(_InformationCriteria):
    """One fitted count model.

    Attributes
    ----------
    name : str
        ``"poisson"``, ``"negbin"``, ``"zip"`` or ``"zinb"``.
    params, bse, pvalues : pandas.Series
        By term; the zero-inflation part's terms are prefixed ``inflate_``, the NB
        dispersion is ``alpha``.
    llf : float
    k : int
        Parameters.
    nobs : int
    converged : bool
    llf_obs : numpy.ndarray
        Per-observation log-likelihood at the estimate (for :func:`vuong_test`).
    notes : list of str
        Fitting problems (non-convergence, singular Hessian).
    """

    name: str
    params: pd.Series
    bse: pd.Series
    pvalues: pd.Series
    llf: float
    k: int
    nobs: int
    converged: bool
    llf_obs: np.ndarray
    notes: list[str] = field(default_factory=list)



def _fit_mle(model, start, methods, cov_type: str, notes: list[str]):
    """Fit with the first method that converges to a finite likelihood; the best otherwise."""
    best = None
    for method in methods:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                res = model.fit(start_params=start, method=method, maxiter=5000, disp=0,
                                cov_type=cov_type)
            except (np.linalg.LinAlgError, ValueError) as err:
                notes.append(f"{method}: {err}")
                continue
        ok = bool(res.mle_retvals.get("converged", True)) and np.isfinite(res.llf)
        if best is None or (np.isfinite(res.llf) and not np.isfinite(best[0].llf)) or (
            np.isfinite(res.llf) and res.llf > best[0].llf + 1e-9
        ):
            best = (res, ok, [str(w.message).splitlines()[0] for w in caught])
        if ok:
            start = res.params
            break
        start = res.params if np.all(np.isfinite(res.params)) else start
    if best is None:
        raise ValueError(f"count model failed to fit: {'; '.join(notes)}")
    res, ok, messages = best
    notes.extend(sorted(set(messages)))
    return res, ok


def fit_count_models(
    df: pd.DataFrame,
    count: str,
    X: Sequence[str],
    exposure: str | None = None,
    inflate: Sequence[str] = (),
    models: Sequence[str] = COUNT_MODELS,
    cov_type: str = "HC0",
) -> dict[str, CountModelResult]:
    """Poisson, NB2, ZIP and ZINB of a count outcome (statsmodels), robust SEs.

    Parameters
    ----------
    df : pandas.DataFrame
    count : str
        Non-negative integer counts (e.g. from :func:`counts_from_rate`).
    X : sequence of str
        Regressors of the count mean (an intercept is added).
    exposure : str, optional
        Column of the exposure (e.g. population / 1000), entering as ``log`` offset, so that
        coefficients are on the rate scale.
    inflate : sequence of str
        Regressors of the zero-inflation logit beside its intercept (default: intercept only,
        i.e. zeros independent of the regressors).
    models : sequence of str
        Subset of :data:`COUNT_MODELS`.
    cov_type : str
        ``"HC0"`` (sandwich) or ``"nonrobust"``.

    Returns
    -------
    dict
        Model name -> :class:`CountModelResult`, in the order of ``models``.
    """
    from statsmodels.discrete.count_model import (
        ZeroInflatedNegativeBinomialP,
        ZeroInflatedPoisson,
    )
    from statsmodels.discrete.discrete_model import NegativeBinomial, Poisson

    unknown = [m for m in models if m not in COUNT_MODELS]
    if unknown:
        raise UsageError(f"unknown count model(s) {unknown}; allowed: {COUNT_MODELS}")
    X, inflate = list(X), list(inflate)
    cols = [count, *X, *inflate, *([exposure] if exposure else [])]
    data, dropped = _complete(df, cols, "fit_count_models")
    y = data[count].to_numpy()
    if (y < 0).any() or np.any(y != np.round(y)):
        raise InputDataError(f"fit_count_models: {clip(count)} must hold non-negative whole numbers")
    exog = _design(data, X, "fit_count_models")
    exog_infl = _design(data, inflate, "fit_count_models").add_prefix("inflate_")
    offset_kw = {}
    if exposure:
        if (data[exposure] <= 0).any():
            raise InputDataError(f"fit_count_models: exposure {clip(exposure)} must be positive")
        offset_kw = {"exposure": data[exposure].to_numpy()}

    fitted: dict[str, CountModelResult] = {}
    raw: dict[str, object] = {}

    names = {
        "poisson": list(exog.columns),
        "negbin": [*exog.columns, "alpha"],
        "zip": [*exog_infl.columns, *exog.columns],
        "zinb": [*exog_infl.columns, *exog.columns, "alpha"],
    }

    def record(name, res, ok, notes):
        # statsmodels orders zero-inflated parameters as inflation, mean, then alpha.
        params = pd.Series(np.asarray(res.params), index=names[name], name="coef")
        if not ok:
            logger.warning("fit_count_models: %s did not converge (%s)", name, "; ".join(notes))
        fitted[name] = CountModelResult(
            name=name,
            params=params,
            bse=pd.Series(np.asarray(res.bse), index=params.index, name="se"),
            pvalues=pd.Series(np.asarray(res.pvalues), index=params.index, name="p_value"),
            llf=float(res.llf),
            k=len(params),
            nobs=len(y),
            converged=ok,
            llf_obs=np.asarray(res.model.loglikeobs(np.asarray(res.params))),
            notes=notes,
        )
        raw[name] = res

    need = set(models) | {_VUONG_PAIRS[m] for m in models if m in _VUONG_PAIRS}
    if need & {"poisson", "zip", "negbin", "zinb"}:
        notes: list[str] = []
        res, ok = _fit_mle(Poisson(y, exog, **offset_kw), None, ("newton", "bfgs"),
                           cov_type, notes)
        record("poisson", res, ok, notes)
    if need & {"negbin", "zinb"}:
        notes = []
        start = np.r_[raw["poisson"].params, 0.5]
        res, ok = _fit_mle(NegativeBinomial(y, exog, loglike_method="nb2", **offset_kw),
                           start, ("newton", "bfgs", "nm"), cov_type, notes)
        record("negbin", res, ok, notes)
    infl_start = np.zeros(exog_infl.shape[1])
    infl_start[0] = math.log(max((y == 0).mean(), 0.01) / max(1 - (y == 0).mean(), 0.01))
    if "zip" in need:
        notes = []
        model = ZeroInflatedPoisson(y, exog, exog_infl=exog_infl, inflation="logit",
                                    **offset_kw)
        res, ok = _fit_mle(model, np.r_[infl_start, raw["poisson"].params],
                           ("bfgs", "newton", "nm"), cov_type, notes)
        record("zip", res, ok, notes)
    if "zinb" in need:
        notes = []
        model = ZeroInflatedNegativeBinomialP(y, exog, exog_infl=exog_infl, p=2,
                                              inflation="logit", **offset_kw)
        start = np.r_[np.asarray(fitted["zip"].params)[: exog_infl.shape[1]]
                      if "zip" in fitted else infl_start, raw["negbin"].params]
        # From the NB start BFGS can step to alpha < 0 and diverge; Nelder-Mead is slow but
        # safe and hands its optimum to BFGS.
        res, ok = _fit_mle(model, start, ("bfgs", "nm", "bfgs"), cov_type, notes)
        record("zinb", res, ok, notes)
    if dropped:
        for res in fitted.values():
            res.notes.append(f"{dropped} row(s) with missing values dropped")
    return {m: fitted[m] for m in models}


# ---------------------------------------------------------------------------------------------
# Vuong test
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VuongResult:
    """Vuong's statistic, raw and corrected, with one-sided p-values.

    ``p_*`` is the p-value for the model favoured by the sign of its statistic: ``P(Z >
    |V|)`` (as R's ``pscl::vuong``). ``V > 0`` favours model 1.
    """

    stat: float
    p: float
    stat_aic: float
    p_aic: float
    stat_bic: float
    p_bic: float
    n: int


def vuong_test(llf_obs_1: np.ndarray, llf_obs_2: np.ndarray, k1: int, k2: int) -> VuongResult:
    """Vuong (1989) test of model 1 against model 2 from per-observation log-likelihoods.

    ``m_i = l1_i - l2_i``; ``V = (sum m_i - c) / (sqrt(n) s)`` with ``s`` the standard
    deviation of ``m`` (denominator ``n - 1``, as ``pscl::vuong``) and the correction ``c``:
    0 (raw), ``k1 - k2`` (AIC) or ``(k1 - k2) log(n) / 2`` (BIC). Under the null of
    equivalent models V is standard normal.

    Parameters
    ----------
    llf_obs_1, llf_obs_2 : numpy.ndarray
        Per-observation log-likelihoods of the two models on the same rows.
    k1, k2 : int
        Numbers of parameters.

    Returns
    -------
    VuongResult

    Examples
    --------
    >>> v = vuong_test(np.array([-1.0, -2.0, -1.5]), np.array([-1.2, -2.5, -1.4]), 2, 1)
    >>> round(v.stat, 4)
    1.1547
    """
    import scipy.stats

    a = np.asarray(llf_obs_1, dtype=float)
    b = np.asarray(llf_obs_2, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError("vuong_test: log-likelihood vectors must be 1-d of the same length")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("vuong_test: non-finite per-observation log-likelihood")
    n = a.size
    m = a - b
    sd = float(np.std(m, ddof=1)) if n > 1 else math.nan

    def stat(correction: float) -> tuple[float, float]:
        if not (sd > 0):
            return math.nan, math.nan
        v = (float(m.sum()) - correction) / (math.sqrt(n) * sd)
        return v, float(scipy.stats.norm.sf(abs(v)))

    dk = k1 - k2
    raw, aic, bic = stat(0.0), stat(float(dk)), stat(dk * math.log(n) / 2)
    return VuongResult(raw[0], raw[1], aic[0], aic[1], bic[0], bic[1], n)


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------


def comparison_table(
    ols: OLSResult | None = None,
    ols_llf: float | None = None,
    hurdle: HurdleResult | None = None,
    counts: dict[str, CountModelResult] | None = None,
) -> pd.DataFrame:
    """Fit statistics of the paper's OLS, the hurdle and the count models, one row each.

    Parameters
    ----------
    ols : OLSResult, optional
        The paper's OLS (positive rows). ``OLSResult`` carries no likelihood: it is taken
        from ``hurdle`` when that has ``positive="linear"`` on as many rows (the same model
        on the same rows), else from ``ols_llf``; without either AIC/BIC are NaN.
    ols_llf : float, optional
        Gaussian log-likelihood of that OLS.
    hurdle : HurdleResult, optional
    counts : dict, optional
        From :func:`fit_count_models`.

    Returns
    -------
    pandas.DataFrame
        Columns ``model``, ``sample``, ``outcome``, ``comparable`` (rank AIC/BIC only within
        one group), ``nobs``, ``k``, ``llf``, ``aic``, ``bic``, ``vuong_vs``, ``vuong_stat``,
        ``vuong_p``, ``vuong_stat_aic``, ``vuong_p_aic``, ``vuong_stat_bic``,
        ``vuong_p_bic``, ``converged``.
    """
    rows = []
    if ols is not None:
        k = len(ols.params) + 1  # + the error variance
        if ols_llf is None and hurdle is not None and hurdle.positive == "linear" \
                and hurdle.n_positive == ols.nobs:
            ols_llf = hurdle.positive_llf  # the same model on the same rows
        llf = math.nan if ols_llf is None else float(ols_llf)
        rows.append({"model": "ols", "sample": "outcome > 0", "outcome": ols.y,
                     "comparable": "positive rows, rate", "nobs": ols.nobs, "k": k, "llf": llf,
                     "aic": -2 * llf + 2 * k, "bic": -2 * llf + k * math.log(ols.nobs),
                     "converged": True})
    if hurdle is not None:
        rows.append({"model": f"hurdle ({hurdle.positive})", "sample": "all rows",
                     "outcome": hurdle.y, "comparable": "all rows, rate", "nobs": hurdle.nobs,
                     "k": hurdle.k, "llf": hurdle.llf, "aic": hurdle.aic, "bic": hurdle.bic,
                     "converged": True})
    for name, res in (counts or {}).items():
        row = {"model": name, "sample": "all rows", "outcome": "count",
               "comparable": "all rows, count", "nobs": res.nobs, "k": res.k, "llf": res.llf,
               "aic": res.aic, "bic": res.bic, "converged": res.converged}
        base = _VUONG_PAIRS.get(name)
        if base and base in counts:
            v = vuong_test(res.llf_obs, counts[base].llf_obs, res.k, counts[base].k)
            row.update({"vuong_vs": base, "vuong_stat": v.stat, "vuong_p": v.p,
                        "vuong_stat_aic": v.stat_aic, "vuong_p_aic": v.p_aic,
                        "vuong_stat_bic": v.stat_bic, "vuong_p_bic": v.p_bic})
        rows.append(row)
    columns = ["model", "sample", "outcome", "comparable", "nobs", "k", "llf", "aic", "bic",
               "vuong_vs", "vuong_stat", "vuong_p", "vuong_stat_aic", "vuong_p_aic",
               "vuong_stat_bic", "vuong_p_bic", "converged"]
    return pd.DataFrame(rows).reindex(columns=columns)


def coefficient_table(
    ols: OLSResult | None = None,
    hurdle: HurdleResult | None = None,
    counts: dict[str, CountModelResult] | None = None,
) -> pd.DataFrame:
    """All coefficients in long form: ``model``, ``part``, ``term``, ``coef``, ``se``,
    ``p_value`` (parts: ``mean``, ``zero`` for the hurdle's logit, ``positive``,
    ``inflate`` for the zero-inflation logit, ``dispersion`` for NB's alpha)."""
    frames = []

    def add(model, part, params, bse, pvalues):
        frames.append(pd.DataFrame({"model": model, "part": part, "term": params.index,
                                    "coef": params.to_numpy(), "se": np.asarray(bse),
                                    "p_value": np.asarray(pvalues)}))

    if ols is not None:
        add("ols", "mean", ols.params, ols.bse, ols.pvalues)
    if hurdle is not None:
        name = f"hurdle ({hurdle.positive})"
        add(name, "zero", hurdle.zero_params, hurdle.zero_bse, hurdle.zero_pvalues)
        p = hurdle.positive_part
        add(name, "positive", p.params, p.bse, p.pvalues)
    for name, res in (counts or {}).items():
        part = np.where(res.params.index.str.startswith("inflate_"), "inflate",
                        np.where(res.params.index == "alpha", "dispersion", "mean"))
        for label in ("inflate", "mean", "dispersion"):
            sel = part == label
            if sel.any():
                add(name, label, res.params[sel], res.bse[sel], res.pvalues[sel])
    if not frames:
        return pd.DataFrame(columns=["model", "part", "term", "coef", "se", "p_value"])
    return pd.concat(frames, ignore_index=True)
