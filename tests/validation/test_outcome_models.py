"""Tests of cpc_core.validation.models against planted coefficients and by-hand likelihoods."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from cpc_core.errors import InputDataError, UsageError
from cpc_core.synth.generator import OUTCOME_ZERO_SHARE, VALIDATION_COEFS, VALIDATION_NOISE_SD
from cpc_core.validation import models as om
from cpc_core.validation.statistics import fit_ols

X = ["log_cpc_per_1000", "poverty_rate", "unemployment_rate", "turnout_2017", "share_singles"]


def _planted(n: int, seed: int, zero_depends: bool = False) -> pd.DataFrame:
    """The generator's outcome model: linear positive part, zeros independent of X."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "log_cpc_per_1000": rng.normal(2.0, 0.8, n),
        "poverty_rate": np.clip(rng.normal(14, 6, n), 1, 50) / 100,
        "unemployment_rate": np.clip(rng.normal(11, 4, n), 2, 40) / 100,
        "turnout_2017": np.clip(rng.normal(78, 6, n), 40, 95) / 100,
        "share_singles": np.clip(rng.normal(38, 8, n), 10, 80) / 100,
    })
    lin = VALIDATION_COEFS["const"] + sum(VALIDATION_COEFS[k] * df[k] for k in X)
    y = np.clip(lin + rng.normal(0, VALIDATION_NOISE_SD, n), 0.01, None)
    p_zero = OUTCOME_ZERO_SHARE
    if zero_depends:
        p_zero = 1 / (1 + np.exp(-(df["log_cpc_per_1000"] - 2.0) * 1.5))
    df["y"] = np.where(rng.random(n) < p_zero, 0.0, y)
    return df


def test_hurdle_recovers_planted_coefficient_and_finds_no_zero_association():
    df = _planted(6000, seed=1)
    res = om.fit_hurdle(df, "y", X)
    ci = res.positive_part.conf_int(0.05).loc["log_cpc_per_1000"]
    assert ci["lower"] <= 0.12 <= ci["upper"], ci
    assert ci["upper"] - ci["lower"] < 0.04  # decisive: far from 0 and from 2x the value
    assert res.zero_wald_p > 0.01
    assert (res.zero_pvalues.drop("const") > 0.01).all(), res.zero_pvalues
    assert res.n_positive == int((df["y"] > 0).sum()) and res.nobs == 6000


def test_hurdle_logit_size_and_power():
    rejections = sum(om.fit_hurdle(_planted(600, seed=s), "y", X).zero_wald_p < 0.01
                     for s in range(100))
    assert rejections <= 4  # nominal 1 %: 1 expected, P(>4) < 0.4 % under Binomial(100, .01)
    dep = om.fit_hurdle(_planted(600, seed=7, zero_depends=True), "y", X)
    assert dep.zero_wald_p < 1e-6
    assert dep.zero_params["log_cpc_per_1000"] < 0  # planted: P(y > 0) falls as cpc rises


def test_hurdle_likelihood_by_hand():
    df = _planted(300, seed=3)
    for positive in ("linear", "log"):
        res = om.fit_hurdle(df, "y", X, positive=positive)
        exog = np.column_stack([np.ones(len(df)), df[X].to_numpy()])
        p = 1 / (1 + np.exp(-exog @ res.zero_params.to_numpy()))
        pos = df["y"].to_numpy() > 0
        ll_zero = np.sum(np.where(pos, np.log(p), np.log1p(-p)))
        yy = df["y"].to_numpy()[pos]
        target = yy if positive == "linear" else np.log(yy)
        beta = np.linalg.lstsq(exog[pos], target, rcond=None)[0]
        resid = target - exog[pos] @ beta
        sigma = np.sqrt(resid @ resid / pos.sum())
        ll_pos = scipy.stats.norm.logpdf(resid, scale=sigma).sum()
        if positive == "log":
            ll_pos -= np.log(yy).sum()
        assert res.llf == pytest.approx(ll_zero + ll_pos, rel=1e-9)
        assert res.aic == pytest.approx(-2 * (ll_zero + ll_pos) + 2 * (2 * 6 + 1))
        np.testing.assert_allclose(res.positive_part.params.to_numpy(), beta, rtol=1e-8)


def test_hurdle_rejects_bad_input():
    df = _planted(50, seed=0)
    with pytest.raises(ValueError, match="negative"):
        om.fit_hurdle(df.assign(y=-df["y"] - 1), "y", X)
    with pytest.raises(ValueError, match="both zero and positive"):
        om.fit_hurdle(df.assign(y=df["y"] + 1), "y", X)
    with pytest.raises(InputDataError, match="nope"):
        om.fit_hurdle(df, "y", ["nope"])


def _zip_data(n, seed, pi=0.4, alpha=0.0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    pop = rng.integers(500, 20000, n).astype(float)
    mu = pop / 1000 * np.exp(0.3 + 0.5 * x)
    if alpha > 0:
        mu = rng.gamma(1 / alpha, mu * alpha)
    y = np.where(rng.random(n) < pi, 0, rng.poisson(mu))
    return pd.DataFrame({"count": y.astype(float), "x": x, "exposure": pop / 1000,
                         "rate": y / pop * 1000, "population": pop})


def test_count_models_recover_planted_rate_coefficient():
    df = _zip_data(2000, seed=5, pi=0.4, alpha=0.3)
    fits = om.fit_count_models(df, "count", ["x"], exposure="exposure")
    assert list(fits) == list(om.COUNT_MODELS)
    zinb = fits["zinb"]
    assert zinb.converged, zinb.notes
    lo = zinb.params["x"] - 1.96 * zinb.bse["x"]
    hi = zinb.params["x"] + 1.96 * zinb.bse["x"]
    assert lo <= 0.5 <= hi
    pi_hat = 1 / (1 + np.exp(-zinb.params["inflate_const"]))
    assert pi_hat == pytest.approx(0.4, abs=0.05)
    assert zinb.params["alpha"] == pytest.approx(0.3, abs=0.1)
    table = om.comparison_table(counts=fits)
    z = table.set_index("model")
    assert z.loc["zip", "vuong_vs"] == "poisson" and z.loc["zip", "vuong_stat"] > 3
    assert z.loc["zinb", "aic"] < z.loc["negbin", "aic"]
    assert z.loc["zinb", "aic"] < z.loc["zip", "aic"]  # overdispersion planted


def test_counts_from_rate():
    df = _zip_data(100, seed=1)
    counts = om.counts_from_rate(df["rate"], df["population"])
    np.testing.assert_array_equal(counts.to_numpy(), df["count"].to_numpy())
    with pytest.raises(ValueError, match="negative"):
        om.counts_from_rate(pd.Series([-1.0]), pd.Series([100.0]))


def test_vuong_by_hand_on_small_data():
    df = _zip_data(40, seed=2, pi=0.3)
    fits = om.fit_count_models(df, "count", ["x"], exposure="exposure",
                               models=("poisson", "zip"))
    y, x, e = df["count"].to_numpy(), df["x"].to_numpy(), df["exposure"].to_numpy()
    b = fits["poisson"].params
    ll_p = scipy.stats.poisson.logpmf(y, e * np.exp(b["const"] + b["x"] * x))
    z = fits["zip"].params
    pi = 1 / (1 + np.exp(-z["inflate_const"]))
    mu = e * np.exp(z["const"] + z["x"] * x)
    ll_z = np.where(y == 0, np.log(pi + (1 - pi) * np.exp(-mu)),
                    np.log(1 - pi) + scipy.stats.poisson.logpmf(y, mu))
    np.testing.assert_allclose(fits["poisson"].llf_obs, ll_p, rtol=1e-10)
    np.testing.assert_allclose(fits["zip"].llf_obs, ll_z, rtol=1e-10)
    m = ll_z - ll_p
    n = len(m)
    s = math.sqrt(sum((mi - m.mean()) ** 2 for mi in m) / (n - 1))
    v_raw = m.sum() / (math.sqrt(n) * s)
    v_aic = (m.sum() - 1) / (math.sqrt(n) * s)  # ZIP has one parameter more
    v_bic = (m.sum() - math.log(n) / 2) / (math.sqrt(n) * s)
    row = om.comparison_table(counts=fits).set_index("model").loc["zip"]
    assert row["vuong_stat"] == pytest.approx(v_raw, rel=1e-9)
    assert row["vuong_stat_aic"] == pytest.approx(v_aic, rel=1e-9)
    assert row["vuong_stat_bic"] == pytest.approx(v_bic, rel=1e-9)
    assert row["vuong_p"] == pytest.approx(1 - scipy.stats.norm.cdf(abs(v_raw)), rel=1e-9)


def test_comparison_table_with_paper_ols():
    df = _planted(800, seed=4)
    hurdle = om.fit_hurdle(df, "y", X)
    ols = fit_ols(df[df["y"] > 0], "y", X)
    import statsmodels.api as sm

    pos = df[df["y"] > 0]
    ref = sm.OLS(pos["y"], sm.add_constant(pos[X])).fit()
    table = om.comparison_table(ols=ols, hurdle=hurdle).set_index("model")
    assert table.loc["ols", "llf"] == pytest.approx(ref.llf, rel=1e-10)
    assert table.loc["ols", "aic"] == pytest.approx(ref.aic + 2, rel=1e-10)  # + sigma
    assert table.loc["ols", "comparable"] != table.loc["hurdle (linear)", "comparable"]
    coefs = om.coefficient_table(ols=ols, hurdle=hurdle)
    assert set(coefs["part"]) == {"mean", "zero", "positive"}
    pos_rows = coefs[(coefs["part"] == "positive")].set_index("term")
    assert pos_rows.loc["log_cpc_per_1000", "coef"] == pytest.approx(
        ols.params["log_cpc_per_1000"])


def test_error_classes():
    df = _planted(50, seed=0)
    with pytest.raises(UsageError, match="positive must be"):
        om.fit_hurdle(df, "y", X, positive="sqrt")
    with pytest.raises(UsageError, match="unknown count model"):
        om.fit_count_models(df.assign(c=1.0), "c", X, models=("tobit",))
    with pytest.raises(InputDataError, match="whole numbers"):
        om.fit_count_models(df, "y", X)
