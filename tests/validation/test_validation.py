"""Tests for cpc_core.validation.statistics.

References used:

* cocor's own test suite (Diedenhofen & Musch 2015, ``tests/testthat``), which checks
  ``cocor.dep.groups.overlap`` against published values: DEPCOR (Silver, Hittner & May 2006),
  May & Hittner (1997), Glass & Stanley (1984), Guilford & Fruchter (1978), Steiger (1980),
  Meng, Rosenthal & Rubin (1992), Zou (2007) and the stat-help.com spreadsheet.
* Independent scalar implementations written below from the papers: the Fisher-z methods go
  through the *general* Pearson-Filon asymptotic covariance of two correlations (Steiger
  1980, formula 2), specialised here to the overlapping case, rather than through the
  overlapping-case formulas that the module uses.
* Stata's HC0-HC3 standard errors for the Longley data as recorded in statsmodels'
  ``regression/tests/results/results_regression.py`` (class ``Longley``), and the NIST StRD
  certified Longley coefficients.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import statsmodels.api as sm
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cpc_core.validation import statistics as v
from cpc_core.validation.statistics import (
    DEPENDENT_CORRELATION_METHODS,
    STANDARD_METHODS,
    DependentCorrelationResult,
    OLSResult,
    compare_dependent_correlations,
    dependent_tests,
    fit_ols,
    log_per_1000,
    spearman_table,
    summary_table1,
)

# --------------------------------------------------------------------------------------------
# Published values
# --------------------------------------------------------------------------------------------

# (method, r_jk, r_jh, r_kh, n, alternative, statistic, stat_decimals, p_value, p_decimals)
PUBLISHED = [
    # DEPCOR (Silver, Hittner & May 2006) example, as in cocor's tests.
    ("williams", 0.3, 0.4, 0.5, 100, "two-sided", -1.0767, 4, 0.2843, 4),
    ("steiger", 0.3, 0.4, 0.5, 100, "two-sided", -1.0718, 4, 0.2838, 4),
    ("hittner", 0.3, 0.4, 0.5, 100, "two-sided", -1.0715, 4, 0.2839, 4),
    ("meng", 0.3, 0.4, 0.5, 100, "two-sided", -1.0707, 4, 0.2843, 4),
    ("dunn_clark", 0.3, 0.4, 0.5, 100, "two-sided", -1.0730, 4, 0.2833, 4),
    # Steiger (1980), case A, p. 249 (cocor's value; the paper rounds intermediate terms).
    ("steiger", 0.4, 0.5, 0.1, 103, "two-sided", -0.8887185, 7, None, None),
    # Meng, Rosenthal & Rubin (1992), worked example, one-sided.
    ("meng", 0.63, -0.03, -0.19, 15, "greater", 1.68, 2, 0.047, 3),
    # stat-help.com spreadsheet (via cocor's tests).
    ("dunn_clark", 0.5, 0.6, 0.7, 100, "two-sided", -1.5838851123, 10, 0.1132198659, 10),
    # Glass & Stanley (1984, p. 311); Guilford & Fruchter (1978, p. 164).
    ("hotelling", 0.612, 0.541, 0.466, 157, "two-sided", 1.158, 3, None, None),
    ("hotelling", 0.55, 0.45, 0.60, 200, "two-sided", 1.91, 2, None, None),
]

# May & Hittner (1997), Table 1: statistics at n = 50 for r_kh = 0, 0.1, ..., 0.8.
MAY_HITTNER = {
    ("hotelling", 0.5, 0.2): [1.73, 1.80, 1.89, 2.01, 2.17, 2.38, 2.68, 3.16, 4.07],
    ("hotelling", 0.7, 0.4): [2.46, 2.42, 2.45, 2.53, 2.67, 2.89, 3.22, 3.78, 4.91],
    ("meng", 0.5, 0.2): [1.62, 1.70, 1.80, 1.91, 2.06, 2.245, 2.50, 2.87, 3.50],
    ("meng", 0.7, 0.4): [2.03, 2.10, 2.20, 2.32, 2.47, 2.66, 2.94, 3.35, 4.05],
}


@pytest.mark.parametrize(
    ("method", "r_jk", "r_jh", "r_kh", "n", "alt", "stat", "sd", "p", "pd_"), PUBLISHED
)
def test_published_cocor_values(method, r_jk, r_jh, r_kh, n, alt, stat, sd, p, pd_):
    res = compare_dependent_correlations(r_jk, r_jh, r_kh, n, method=method, alternative=alt)
    assert round(res.statistic, sd) == pytest.approx(stat, abs=1e-12)
    if p is not None:
        assert round(res.p_value, pd_) == pytest.approx(p, abs=1e-12)


@pytest.mark.parametrize(("key", "expected"), list(MAY_HITTNER.items()))
def test_may_hittner_1997_table(key, expected):
    method, r_jk, r_jh = key
    for r_kh, want in zip(np.round(np.arange(0, 0.81, 0.1), 1), expected, strict=True):
        got = compare_dependent_correlations(r_jk, r_jh, float(r_kh), 50, method=method)
        decimals = 3 if want == 2.245 else 2  # cocor's one 3-decimal check
        assert round(got.statistic, decimals) == pytest.approx(want, abs=1e-12), r_kh


def test_published_zou_interval():
    # Zou (2007), p. 409: 95% interval for .396 - .179 with r_kh = .088, n = 66.
    res = compare_dependent_correlations(0.396, 0.179, 0.088, 66, method="zou")
    assert np.round(res.ci, 3).tolist() == [-0.093, 0.517]
    assert math.isnan(res.statistic) and math.isnan(res.p_value)
    assert res.df is None


def test_result_shape_per_method():
    for m in DEPENDENT_CORRELATION_METHODS:
        res = compare_dependent_correlations(0.3, 0.4, 0.5, 100, method=m)
        assert isinstance(res, DependentCorrelationResult)
        assert res.method == m and res.alternative == "two-sided"
        assert (res.ci is not None) == (m == "zou")
    assert compare_dependent_correlations(0.3, 0.4, 0.5, 100, "williams").df == 97
    assert compare_dependent_correlations(0.3, 0.4, 0.5, 100, "hotelling").df == 97
    assert compare_dependent_correlations(0.3, 0.4, 0.5, 100, "koebe2024").df == 98
    assert compare_dependent_correlations(0.3, 0.4, 0.5, 100, "steiger").df is None
    with pytest.raises(AttributeError):
        compare_dependent_correlations(0.3, 0.4, 0.5, 100).statistic = 0.0  # frozen


# --------------------------------------------------------------------------------------------
# Independent implementations, written from the papers
# --------------------------------------------------------------------------------------------


def _npf_cov(rho: np.ndarray, a: int, b: int, c: int, d: int) -> float:
    """n * asymptotic cov(r_ab, r_cd) for normal data (Pearson & Filon; Steiger 1980, eq. 2)."""
    p = rho
    return (
        0.5 * p[a, b] * p[c, d] * (p[a, c] ** 2 + p[a, d] ** 2 + p[b, c] ** 2 + p[b, d] ** 2)
        + p[a, c] * p[b, d]
        + p[a, d] * p[b, c]
        - p[a, b] * (p[a, c] * p[a, d] + p[b, c] * p[b, d])
        - p[c, d] * (p[a, c] * p[b, c] + p[a, d] * p[b, d])
    )


def _corr_of_rs(r_jk: float, r_jh: float, r_kh: float) -> float:
    """Asymptotic correlation of r_jk and r_jh (= of their Fisher z's), variables j=0,k=1,h=2."""
    rho = np.array([[1.0, r_jk, r_jh], [r_jk, 1.0, r_kh], [r_jh, r_kh, 1.0]])
    return _npf_cov(rho, 0, 1, 0, 2) / ((1 - r_jk**2) * (1 - r_jh**2))


def _z_test(r_jk, r_jh, n, c):
    return (math.atanh(r_jk) - math.atanh(r_jh)) / math.sqrt((2 - 2 * c) / (n - 3))


def ref_dunn_clark(r_jk, r_jh, r_kh, n):
    return _z_test(r_jk, r_jh, n, _corr_of_rs(r_jk, r_jh, r_kh)), None


def ref_steiger(r_jk, r_jh, r_kh, n):
    rbar = (r_jk + r_jh) / 2  # Steiger's pooled estimate under H0: rho_jk = rho_jh
    return _z_test(r_jk, r_jh, n, _corr_of_rs(rbar, rbar, r_kh)), None


def ref_hittner(r_jk, r_jh, r_kh, n):
    rbar = math.tanh((math.atanh(r_jk) + math.atanh(r_jh)) / 2)  # Silver & Dunlap (1987)
    return _z_test(r_jk, r_jh, n, _corr_of_rs(rbar, rbar, r_kh)), None


def ref_meng(r_jk, r_jh, r_kh, n):
    # Meng, Rosenthal & Rubin (1992), eqs. 1-3, in their notation (r_x = r_kh).
    r2bar = (r_jk**2 + r_jh**2) / 2
    f = min((1 - r_kh) / (2 * (1 - r2bar)), 1.0)
    h = (1 - f * r2bar) / (1 - r2bar)
    return (math.atanh(r_jk) - math.atanh(r_jh)) * math.sqrt((n - 3) / (2 * (1 - r_kh) * h)), None


def _det3(r_jk, r_jh, r_kh):
    return float(np.linalg.det([[1.0, r_jk, r_jh], [r_jk, 1.0, r_kh], [r_jh, r_kh, 1.0]]))


def ref_hotelling(r_jk, r_jh, r_kh, n):
    t = (r_jk - r_jh) * math.sqrt((n - 3) * (1 + r_kh) / (2 * _det3(r_jk, r_jh, r_kh)))
    return t, n - 3


def ref_williams(r_jk, r_jh, r_kh, n):
    # Steiger (1980), formula 7.
    rbar = (r_jk + r_jh) / 2
    det = _det3(r_jk, r_jh, r_kh)
    denom = 2 * (n - 1) / (n - 3) * det + rbar**2 * (1 - r_kh) ** 3
    return (r_jk - r_jh) * math.sqrt((n - 1) * (1 + r_kh) / denom), n - 3


def ref_koebe2024(r_jk, r_jh, r_kh, n):
    return (r_jk - r_jh) / math.sqrt((1 - r_kh**2) / (n - 3)), n - 2


def ref_zou(r_jk, r_jh, r_kh, n, conf_level=0.95):
    # Zou (2007): interval for each r via Fisher z, then the MOVER combination (p. 409).
    q = scipy.stats.norm.ppf(1 - (1 - conf_level) / 2) / math.sqrt(n - 3)
    l1, u1 = (math.tanh(math.atanh(r_jk) + s * q) for s in (-1, 1))
    l2, u2 = (math.tanh(math.atanh(r_jh) + s * q) for s in (-1, 1))
    c = _corr_of_rs(r_jk, r_jh, r_kh)
    d = r_jk - r_jh
    lower = d - math.sqrt((r_jk - l1) ** 2 + (u2 - r_jh) ** 2 - 2 * c * (r_jk - l1) * (u2 - r_jh))
    upper = d + math.sqrt((u1 - r_jk) ** 2 + (r_jh - l2) ** 2 - 2 * c * (u1 - r_jk) * (r_jh - l2))
    return lower, upper


REFERENCES = {
    "williams": ref_williams,
    "steiger": ref_steiger,
    "hittner": ref_hittner,
    "meng": ref_meng,
    "dunn_clark": ref_dunn_clark,
    "hotelling": ref_hotelling,
    "koebe2024": ref_koebe2024,
}


def ref_p(stat, df, alternative):
    dist = scipy.stats.norm if df is None else scipy.stats.t(df)
    if alternative == "two-sided":
        return 2 * dist.sf(abs(stat))
    return dist.sf(stat) if alternative == "greater" else dist.cdf(stat)


_r = st.floats(-0.95, 0.95, allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(
    r_jk=_r,
    r_jh=_r,
    r_kh=_r,
    n=st.integers(4, 5000),
    method=st.sampled_from(sorted(REFERENCES)),
    alternative=st.sampled_from(["two-sided", "greater", "less"]),
)
def test_methods_match_independent_implementation(r_jk, r_jh, r_kh, n, method, alternative):
    assume(_det3(r_jk, r_jh, r_kh) > 1e-3)
    want_stat, want_df = REFERENCES[method](r_jk, r_jh, r_kh, n)
    res = compare_dependent_correlations(r_jk, r_jh, r_kh, n, method, alternative)
    assert res.statistic == pytest.approx(want_stat, rel=1e-9, abs=1e-12)
    assert res.df == want_df
    assert res.p_value == pytest.approx(
        ref_p(want_stat, want_df, alternative), rel=1e-7, abs=1e-300
    )


@settings(max_examples=80, deadline=None)
@given(r_jk=_r, r_jh=_r, r_kh=_r, n=st.integers(4, 5000), conf=st.floats(0.5, 0.999))
def test_zou_matches_independent_implementation(r_jk, r_jh, r_kh, n, conf):
    assume(_det3(r_jk, r_jh, r_kh) > 1e-3)
    res = compare_dependent_correlations(r_jk, r_jh, r_kh, n, "zou", conf_level=conf)
    np.testing.assert_allclose(res.ci, ref_zou(r_jk, r_jh, r_kh, n, conf), rtol=1e-9, atol=1e-12)
    assert res.ci[0] <= r_jk - r_jh <= res.ci[1]


def test_meng_f_is_capped():
    # f = (1 - r_kh) / (2 (1 - mean r^2)) = 1.4 / 1.1 > 1 for this valid matrix, so f = 1.
    r_jk, r_jh, r_kh = 0.9, -0.3, -0.4
    assert _det3(r_jk, r_jh, r_kh) > 0
    assert (1 - r_kh) / (2 * (1 - (r_jk**2 + r_jh**2) / 2)) > 1
    res = compare_dependent_correlations(r_jk, r_jh, r_kh, 60, "meng")
    h = (1 - 0.45) / (1 - 0.45)  # f = 1 makes h = 1
    want = (math.atanh(0.9) - math.atanh(-0.3)) * math.sqrt(57 / (2 * 1.4 * h))
    assert res.statistic == pytest.approx(want, rel=1e-12)


def test_alternatives_are_consistent():
    for m in STANDARD_METHODS:
        if m == "zou":
            continue
        two = compare_dependent_correlations(0.2, 0.45, 0.6, 80, m, "two-sided")
        less = compare_dependent_correlations(0.2, 0.45, 0.6, 80, m, "less")
        greater = compare_dependent_correlations(0.2, 0.45, 0.6, 80, m, "greater")
        assert two.statistic < 0  # r_jk < r_jh
        assert less.p_value < 0.5 < greater.p_value
        assert less.p_value + greater.p_value == pytest.approx(1.0)
        assert two.p_value == pytest.approx(2 * less.p_value)


def test_equal_correlations_give_zero_statistic():
    for m in STANDARD_METHODS:
        if m == "zou":
            continue
        res = compare_dependent_correlations(0.35, 0.35, 0.4, 200, m)
        assert res.statistic == 0.0 and res.p_value == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"r_jk": 1.2}, "r_jk must lie in"),
        ({"r_jh": -1.01}, "r_jh must lie in"),
        ({"r_kh": float("nan")}, "r_kh must lie in"),
        ({"r_jk": "0.3"}, "r_jk must be a real number"),
        ({"n": 3}, "n must be greater than 3"),
        ({"n": 50.5}, "n must be an integer"),
        ({"n": True}, "n must be an integer"),
        ({"method": "fisher"}, "method must be one of"),
        ({"alternative": "two.sided"}, "alternative must be one of"),
        ({"conf_level": 1.0}, "conf_level must lie strictly between"),
        ({"r_jk": 0.9, "r_jh": -0.9, "r_kh": 0.9}, "negative determinant"),
    ],
)
def test_input_validation(kwargs, match):
    args = {"r_jk": 0.3, "r_jh": 0.4, "r_kh": 0.5, "n": 100} | kwargs
    with pytest.raises(ValueError, match=match):
        compare_dependent_correlations(**args)


def test_accepts_numpy_scalars_and_boundary_r():
    res = compare_dependent_correlations(np.float32(0.3), np.float64(0.4), 0.5, np.int64(100))
    assert res.statistic == pytest.approx(-1.0718, abs=1e-4)
    # r = 1 is a valid input; Fisher-z methods return a non-finite statistic, no warning.
    with np.errstate(all="raise"):
        res = compare_dependent_correlations(1.0, 0.4, 0.4, 50, "steiger")
    assert not math.isfinite(res.statistic)


# --------------------------------------------------------------------------------------------
# Monte Carlo: size under H0 (cheap: vectorised kernels, 4000 replicates)
# --------------------------------------------------------------------------------------------


def _simulate_correlations(rng, rho_jk, rho_jh, rho_kh, n, reps):
    cov = np.array([[1, rho_jk, rho_jh], [rho_jk, 1, rho_kh], [rho_jh, rho_kh, 1.0]])
    x = rng.standard_normal((reps, n, 3)) @ np.linalg.cholesky(cov).T
    x -= x.mean(axis=1, keepdims=True)
    x /= np.sqrt((x**2).sum(axis=1, keepdims=True))
    r = np.einsum("rni,rnj->rij", x, x)
    return r[:, 0, 1], r[:, 0, 2], r[:, 1, 2]


def _mc_p_values(method, r_jk, r_jh, r_kh, n, alternative):
    spec = v._METHODS[method]
    df = None if spec.df is None else spec.df(n)
    return v._p_value(spec.statistic(r_jk, r_jh, r_kh, n), df, alternative)


H0_CONFIGS = [(0.3, 0.3, 0.5, 50), (0.5, 0.5, 0.8, 40), (0.0, 0.0, 0.2, 30)]


@pytest.fixture(scope="module")
def h0_samples():
    rng = np.random.default_rng(20240607)
    return {cfg: _simulate_correlations(rng, *cfg[:3], cfg[3], 4000) for cfg in H0_CONFIGS}


@pytest.mark.parametrize("cfg", H0_CONFIGS)
@pytest.mark.parametrize("alternative", ["two-sided", "greater"])
def test_standard_methods_have_roughly_uniform_p_values_under_h0(h0_samples, cfg, alternative):
    r_jk, r_jh, r_kh = h0_samples[cfg]
    grid = np.linspace(0.01, 0.99, 99)
    for m in STANDARD_METHODS:
        if m == "zou":
            continue
        p = _mc_p_values(m, r_jk, r_jh, r_kh, cfg[3], alternative)
        ks = np.max(np.abs((p[:, None] <= grid).mean(axis=0) - grid))
        # 0.0215 is the 95% KS bound for 4000 draws; the rest allows for the tests being
        # large-sample approximations at n = 30-50 (observed: <= 0.02).
        assert ks < 0.035, (m, ks)
        assert abs(np.mean(p < 0.05) - 0.05) < 0.015, m


@pytest.mark.parametrize("cfg", H0_CONFIGS)
def test_zou_interval_covers_zero_under_h0(h0_samples, cfg):
    r_jk, r_jh, r_kh = h0_samples[cfg]
    lo, hi = v._zou_ci(r_jk, r_jh, r_kh, cfg[3], 0.95)
    assert abs(np.mean((lo <= 0) & (hi >= 0)) - 0.95) < 0.015


def test_koebe2024_size_is_off_in_both_directions(h0_samples):
    # Documents why the authors' formula is a replication option only.
    r = h0_samples[(0.0, 0.0, 0.2, 30)]
    assert np.mean(_mc_p_values("koebe2024", *r, 30, "two-sided") < 0.05) > 0.08
    r = h0_samples[(0.5, 0.5, 0.8, 40)]
    assert np.mean(_mc_p_values("koebe2024", *r, 40, "two-sided") < 0.05) < 0.03


def test_kernels_match_public_function(h0_samples):
    """Plumbing and reference at once: the vectorised kernels (which the Monte Carlo checks
    above use) and the public function both against the formulas written out independently
    in this file (REFERENCES, ref_zou), not against each other."""
    triples = list(zip(*(a[:5] for a in h0_samples[(0.3, 0.3, 0.5, 50)]), strict=True))
    r_jk, r_jh, r_kh = (np.array(a) for a in zip(*triples, strict=True))
    for m in DEPENDENT_CORRELATION_METHODS:
        if m == "zou":
            want = np.array([ref_zou(*t, 50) for t in triples])
            np.testing.assert_allclose(np.column_stack(v._zou_ci(r_jk, r_jh, r_kh, 50, 0.95)),
                                       want, rtol=1e-10)  # fmt: skip
            got = [compare_dependent_correlations(*t, 50, m).ci for t in triples]
            np.testing.assert_allclose(got, want, rtol=1e-10)
            continue
        want = [ref_p(*REFERENCES[m](*t, 50), "less") for t in triples]
        np.testing.assert_allclose(_mc_p_values(m, r_jk, r_jh, r_kh, 50, "less"), want, rtol=1e-9)
        got = [compare_dependent_correlations(*t, 50, m, "less").p_value for t in triples]
        np.testing.assert_allclose(got, want, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# Descriptive tables
# --------------------------------------------------------------------------------------------


def test_summary_table1_matches_pandas_describe():
    rng = np.random.default_rng(1)
    rho = rng.normal(0.165, 0.075, 200)
    rho[[3, 50]] = np.nan
    c = 0.011 * 0.41502 * np.clip(rho, 0.00219, None)
    t = summary_table1(pd.Series(rho), c)
    assert t.index.tolist() == ["rho_j", "c_j"]
    assert t.columns.tolist() == [
        "mean",
        "std",
        "min",
        "25%",
        "50%",
        "75%",
        "max",
        "n",
        "n_missing",
    ]
    for row, x in (("rho_j", rho), ("c_j", c)):
        d = pd.Series(x).describe()
        for col in ["mean", "std", "min", "25%", "50%", "75%", "max"]:
            assert t.loc[row, col] == pytest.approx(d[col], rel=1e-12)
        assert t.loc[row, "n"] == d["count"] == 198
        assert t.loc[row, "n_missing"] == 2


def test_summary_table1_edge_cases():
    t = summary_table1([np.nan, np.nan], [0.5])
    assert t.loc["rho_j"].drop(["n", "n_missing"]).isna().all()
    assert t.loc["rho_j", "n_missing"] == 2
    assert math.isnan(t.loc["c_j", "std"]) and t.loc["c_j", "mean"] == 0.5
    with pytest.raises(ValueError, match="c contains 1 infinite"):
        summary_table1([0.1], [np.inf])


def test_log_per_1000():
    df = pd.DataFrame({"a": [1.0, 10.0, np.nan], "b": [np.e, 1.0, 2.0], "z": [0, 0, 0]})
    out = log_per_1000(df, ["a", "b"])
    assert out.columns.tolist() == ["log_a", "log_b"]
    np.testing.assert_allclose(out["log_a"], [0.0, math.log(10), np.nan])
    np.testing.assert_allclose(out["log_b"], [1.0, 0.0, math.log(2)])
    assert df.columns.tolist() == ["a", "b", "z"]  # caller's frame untouched
    bad = pd.DataFrame({"Tor_per_1000": [0.0, -1.0, 3.0], "ok": [1.0, 2, 3], "YT": [0.0, 1, 1]})
    with pytest.raises(ValueError, match=r"'Tor_per_1000': 2 value\(s\) <= 0; 'YT': 1 value"):
        log_per_1000(bad, ["Tor_per_1000", "ok", "YT"])
    with pytest.raises(KeyError, match="'nope'"):
        log_per_1000(df, ["nope"])


def test_spearman_table_matches_scipy_on_finite_rows():
    rng = np.random.default_rng(2)
    n = 120
    y = rng.normal(size=n)
    df = pd.DataFrame({"y": y, "a": y + rng.normal(size=n), "b": -y + 2 * rng.normal(size=n)})
    df.loc[[0, 5], "a"] = np.nan
    df.loc[7, "b"] = np.inf
    df.loc[9, "y"] = np.nan
    out = spearman_table(df, "y", ["a", "b"])
    assert out.columns.tolist() == ["indicator", "rho", "p_value", "n"]
    for _, row in out.iterrows():
        sub = df[["y", row["indicator"]]].replace([np.inf, -np.inf], np.nan).dropna()
        want = scipy.stats.spearmanr(sub["y"], sub[row["indicator"]])
        assert row["rho"] == pytest.approx(want.statistic, rel=1e-12)
        assert row["p_value"] == pytest.approx(want.pvalue, rel=1e-10)
        assert row["n"] == len(sub)
    assert out["n"].tolist() == [117, 118]


def _enumerated_spearman_p(x, y) -> float:
    """Two-sided permutation p-value of Spearman's rho by hand: every ordering of y's ranks
    (mid-ranks for ties) against x's, counted with itertools; the observed one included."""
    import itertools

    rx = pd.Series(x).rank().to_numpy()
    ry = pd.Series(y).rank().to_numpy()
    obs = abs(np.corrcoef(rx, ry)[0, 1])
    hits = sum(abs(np.corrcoef(rx, ry[list(p)])[0, 1]) >= obs - 1e-12
               for p in itertools.permutations(range(len(x))))  # fmt: skip
    return hits / math.factorial(len(x))


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 1.0, 4.0, 3.0, 5.0]),  # rho = 0.8
        ([0.3, 1.2, -0.5, 2.2, 0.9], [5.0, 4.0, 3.0, 2.0, 1.0]),
        ([1.0, 2.0, 2.0, 3.0, 4.0, 5.0], [1.0, 3.0, 2.0, 2.0, 6.0, 5.0]),  # ties, n = 6
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]),  # n = 3, rho = 1: t says p = 0
    ],
)
def test_spearman_small_n_p_value_is_exact(x, y):
    out = spearman_table(pd.DataFrame({"y": y, "x": x}), "y", ["x"]).iloc[0]
    assert out["rho"] == pytest.approx(scipy.stats.spearmanr(x, y).statistic, rel=1e-12)
    assert out["p_value"] == pytest.approx(_enumerated_spearman_p(y, x), rel=1e-12)
    assert out["p_value"] > 0


def test_spearman_p_value_is_never_zero_beyond_the_exact_range():
    """n = 12 perfectly ordered: the t approximation gives ~1e-64 or 0; no permutation
    p-value can be below 2 / 12!, the share of the two perfect orderings."""
    x = np.arange(12.0)
    out = spearman_table(pd.DataFrame({"y": x, "x": x ** 3}), "y", ["x"]).iloc[0]
    assert out["rho"] == 1.0 and out["p_value"] == pytest.approx(2 / math.factorial(12))
    n = 400  # 2 / 400! underflows: the smallest positive double, never 0
    big = spearman_table(pd.DataFrame({"y": np.arange(n), "x": np.arange(n)}), "y", ["x"])
    assert big["p_value"].iloc[0] > 0


def test_dependent_tests_constant_outcome_is_nan_not_an_error():
    rng = np.random.default_rng(9)
    df = pd.DataFrame(rng.normal(size=(20, 2)), columns=["t", "o"])
    df["y"] = 2.0
    out = dependent_tests(df, "y", "t", ["o"], methods=["williams", "zou"])
    assert out["statistic"].isna().all() and out["ci_lower"].isna().all()
    assert math.isnan(out["r_target"].iloc[0]) and math.isnan(out["r_other"].iloc[0])
    # the pair that is defined is still reported, as pandas computes it
    assert out["r_target_other"].iloc[0] == pytest.approx(df["t"].corr(df["o"], method="spearman"))


def test_spearman_table_degenerate_inputs():
    df = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "c": [1.0] * 4, "s": [1.0, np.nan, np.nan, 2]})
    out = spearman_table(df, "y", ["c", "s"])
    assert out["rho"].isna().all() and out["n"].tolist() == [4, 2]
    with pytest.raises(KeyError, match="'missing'"):
        spearman_table(df, "y", ["missing"])


def test_dependent_tests_uses_spearman_on_common_rows():
    rng = np.random.default_rng(3)
    n = 300
    z = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "sv": z + rng.normal(size=n),
            "cpc": np.exp(z + 0.5 * rng.normal(size=n)),
            "tor": z + rng.normal(size=n),
            "yt": rng.normal(size=n),
        }
    )
    df.loc[:9, "yt"] = np.nan
    out = dependent_tests(df, "sv", "cpc", ["tor", "yt"], methods=["williams", "zou", "koebe2024"])
    assert len(out) == 6
    assert out[["other", "method"]].values.tolist() == [
        ["tor", "williams"], ["tor", "zou"], ["tor", "koebe2024"],
        ["yt", "williams"], ["yt", "zou"], ["yt", "koebe2024"],
    ]  # fmt: skip
    assert out.loc[out.other == "yt", "n"].unique().tolist() == [290]
    sub = df[["sv", "cpc", "yt"]].dropna()
    r = sub.corr(method="spearman")
    row = out[(out.other == "yt") & (out.method == "williams")].iloc[0]
    assert row["r_target"] == pytest.approx(r.loc["sv", "cpc"])
    assert row["r_other"] == pytest.approx(r.loc["sv", "yt"])
    assert row["r_target_other"] == pytest.approx(r.loc["cpc", "yt"])
    # Williams' t written out independently (Steiger 1980, formula 7), on pandas' Spearman r
    want_t, want_df = ref_williams(r.loc["sv", "cpc"], r.loc["sv", "yt"], r.loc["cpc", "yt"], 290)
    assert row["statistic"] == pytest.approx(want_t, rel=1e-10)
    assert row["p_value"] == pytest.approx(ref_p(want_t, want_df, "two-sided"), rel=1e-9)
    assert row["df"] == 287
    zou = out[(out.other == "tor") & (out.method == "zou")].iloc[0]
    assert zou["ci_lower"] < zou["ci_upper"] and pd.isna(zou["df"])
    assert math.isnan(out.loc[0, "ci_lower"])
    with pytest.raises(ValueError, match="methods entry must be one of"):
        dependent_tests(df, "sv", "cpc", ["tor"], methods=["pearson1898"])


def test_dependent_tests_reports_undefined_comparisons_as_nan(caplog):
    rng = np.random.default_rng(8)
    df = pd.DataFrame(rng.normal(size=(30, 2)), columns=["y", "t"])
    df["const"] = 1.0
    df["sparse"] = np.r_[rng.normal(size=3), np.full(27, np.nan)]
    df["ok"] = rng.normal(size=30)
    with caplog.at_level("WARNING", logger="cpc_core.validation.statistics"):
        out = dependent_tests(df, "y", "t", ["const", "sparse", "ok"], methods=["williams", "zou"])
    assert out.loc[out.other != "ok", ["statistic", "p_value"]].isna().all().all()
    assert out.loc[out.other == "ok", "p_value"].notna().iloc[0]
    assert out.loc[(out.other == "const") & (out.method == "williams"), "df"].item() == 27
    assert out.loc[out.other == "sparse", "n"].unique().tolist() == [3]
    assert sum("undefined" in r.message for r in caplog.records) == 2


def test_dependent_tests_default_methods_exclude_koebe2024():
    rng = np.random.default_rng(4)
    df = pd.DataFrame(rng.normal(size=(40, 3)), columns=["y", "t", "o"])
    out = dependent_tests(df, "y", "t", ["o"])
    assert out["method"].tolist() == list(STANDARD_METHODS)
    assert "koebe2024" not in STANDARD_METHODS


# --------------------------------------------------------------------------------------------
# OLS with robust standard errors
# --------------------------------------------------------------------------------------------

LONGLEY_X = ["GNPDEFL", "GNP", "UNEMP", "ARMED", "POP", "YEAR"]
# Stata, as recorded in statsmodels' results_regression.Longley (order: LONGLEY_X, const).
LONGLEY_STATA_SE = {
    "HC0": (51.22035, 0.02458, 0.38324, 0.14625, 0.15821, 428.38438, 832212),
    "HC1": (68.29380, 0.03277, 0.51099, 0.19499, 0.21094, 571.17917, 1109615),
    "HC2": (67.49208, 0.03653, 0.55334, 0.20522, 0.22324, 617.59295, 1202370),
    "HC3": (91.11939, 0.05562, 0.82213, 0.29879, 0.32491, 922.80784, 1799477),
}
# NIST StRD certified values for Longley.
LONGLEY_NIST_PARAMS = (
    15.0618722713733, -0.358191792925910e-01, -2.02022980381683, -1.03322686717359,
    -0.511041056535807e-01, 1829.15146461355, -3482258.63459582,
)  # fmt: skip
LONGLEY_NIST_BSE = (
    84.9149257747669, 0.334910077722432e-01, 0.488399681651699, 0.214274163161675,
    0.226073200069370, 455.478499142212, 890420.383607373,
)  # fmt: skip


@pytest.fixture(scope="module")
def longley():
    return sm.datasets.longley.load_pandas().data


@pytest.mark.parametrize("cov_type", ["HC0", "HC1", "HC2", "HC3"])
def test_longley_robust_se_match_stata(longley, cov_type):
    res = fit_ols(longley, "TOTEMP", LONGLEY_X, cov_type=cov_type)
    got = res.bse[[*LONGLEY_X, "const"]].to_numpy()
    # Stata figures are printed to 5 decimals, the constant's to the unit; Longley's design
    # is ill-conditioned (condition number ~1e9), so a last-digit tie may round either way:
    # allow half a printed unit plus 1e-7 relative.
    want = np.asarray(LONGLEY_STATA_SE[cov_type])
    np.testing.assert_allclose(got[:-1], want[:-1], rtol=1e-7, atol=0.5e-5)
    assert abs(got[-1] - want[-1]) <= 0.5
    assert res.cov_type == cov_type


def test_longley_matches_nist_certified_values(longley):
    res = fit_ols(longley, "TOTEMP", LONGLEY_X, cov_type="nonrobust")
    order = [*LONGLEY_X, "const"]
    np.testing.assert_allclose(res.params[order], LONGLEY_NIST_PARAMS, rtol=1e-7)
    np.testing.assert_allclose(res.bse[order], LONGLEY_NIST_BSE, rtol=1e-7)
    assert res.rsquared == pytest.approx(0.995479004577296, rel=1e-9)
    assert res.nobs == 16 and res.dropped == 0 and res.df_resid == 9


def _hand_sandwich(X: np.ndarray, y: np.ndarray, kind: str):
    """White/MacKinnon-White sandwich estimators, written out in numpy."""
    n, k = X.shape
    bread = np.linalg.inv(X.T @ X)
    beta = bread @ X.T @ y
    e = y - X @ beta
    h = np.einsum("ij,jk,ik->i", X, bread, X)  # leverages
    omega = {
        "HC0": e**2,
        "HC1": e**2 * n / (n - k),
        "HC2": e**2 / (1 - h),
        "HC3": e**2 / (1 - h) ** 2,
    }[kind]
    cov = bread @ (X.T * omega) @ X @ bread
    return beta, np.sqrt(np.diag(cov))


@pytest.fixture(scope="module")
def hetero_data():
    rng = np.random.default_rng(5)
    n = 80
    df = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.exponential(size=n)})
    df["y"] = 1 + 2 * df.x1 - 0.5 * df.x2 + rng.normal(size=n) * (0.2 + df.x2)
    return df


@pytest.mark.parametrize("cov_type", ["HC0", "HC1", "HC2", "HC3"])
def test_robust_se_match_hand_sandwich(hetero_data, cov_type):
    res = fit_ols(hetero_data, "y", ["x1", "x2"], cov_type=cov_type)
    X = np.column_stack([np.ones(len(hetero_data)), hetero_data[["x1", "x2"]]])
    beta, se = _hand_sandwich(X, hetero_data["y"].to_numpy(), cov_type)
    np.testing.assert_allclose(res.params[["const", "x1", "x2"]], beta, rtol=1e-10)
    np.testing.assert_allclose(res.bse[["const", "x1", "x2"]], se, rtol=1e-10)
    # use_t=True: p-values from Student t with n - k df.
    t = beta / se
    np.testing.assert_allclose(
        res.pvalues[["const", "x1", "x2"]], 2 * scipy.stats.t.sf(np.abs(t), 77), rtol=1e-8
    )
    z = fit_ols(hetero_data, "y", ["x1", "x2"], cov_type=cov_type, use_t=False)
    np.testing.assert_allclose(z.pvalues[["const", "x1", "x2"]], 2 * scipy.stats.norm.sf(np.abs(t)))


def test_fit_ols_drops_and_counts_missing(hetero_data):
    df = hetero_data.copy()
    df.loc[[1, 2], "y"] = np.nan
    df.loc[[2, 3], "x1"] = np.nan
    df["x2"] = df["x2"].astype("Float64")
    df.loc[10, "x2"] = pd.NA
    df["unused"] = np.nan  # columns not in the model never cause drops
    res = fit_ols(df, "y", ["x1", "x2"])
    assert res.dropped == 4 and res.nobs == 76
    full = fit_ols(hetero_data.drop(index=[1, 2, 3, 10]), "y", ["x1", "x2"])
    pd.testing.assert_series_equal(res.params, full.params)
    assert hetero_data["y"].notna().all()  # fit_ols does not mutate its input


def test_fit_ols_result_object(hetero_data):
    res = fit_ols(hetero_data, "y", ["x1", "x2"], name="model A")
    assert isinstance(res, OLSResult)
    assert res.name == "model A" and res.y == "y" and res.cov_type == "HC3" and res.use_t
    assert res.params.index.tolist() == ["const", "x1", "x2"]
    frame = res.to_frame()
    assert frame.index.name == "term"
    assert frame.columns.tolist() == ["coef", "se", "statistic", "p_value"]
    np.testing.assert_allclose(frame["statistic"], res.params / res.bse)
    assert 0 < res.rsquared_adj < res.rsquared < 1
    with pytest.raises(AttributeError):
        res.nobs = 3
    no_const = fit_ols(hetero_data, "y", ["x1", "x2"], add_constant=False)
    assert no_const.params.index.tolist() == ["x1", "x2"]


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"cov_type": "HC4"}, ValueError, "cov_type must be one of"),
        ({"cov_type": "hc3"}, ValueError, "cov_type must be one of"),
        ({"X": ["x1", "nope"]}, KeyError, "'nope'"),
        ({"X": ["x1", "x1x"]}, ValueError, "rank 2 < 3"),
        ({"X": ["x1", "const"]}, ValueError, "already has a column named 'const'"),
        ({"X": ["x1", "bad"]}, ValueError, "infinite values in column\\(s\\) 'bad'"),
        ({"X": ["x1", "txt"]}, ValueError, "column 'txt' is not numeric"),
    ],
)
def test_fit_ols_errors(hetero_data, kwargs, exc, match):
    df = hetero_data.assign(
        x1x=2 * hetero_data.x1, const=1.0, bad=np.r_[np.inf, np.ones(79)], txt="a"
    )
    args = {"df": df, "y": "y", "X": ["x1", "x2"]} | kwargs
    with pytest.raises(exc, match=match):
        fit_ols(**args)


def test_fit_ols_needs_more_rows_than_parameters():
    df = pd.DataFrame({"y": [1.0, 2.0, np.nan], "x": [0.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match="2 complete row\\(s\\) for 2 parameter"):
        fit_ols(df, "y", ["x"])


def test_planted_coefficients_are_recovered():
    rng = np.random.default_rng(6)
    n = 2000
    beta = {"const": 1.0, "a": 2.0, "b": -0.5, "c": 0.25}
    df = pd.DataFrame(rng.normal(size=(n, 3)), columns=["a", "b", "c"])
    noise = rng.normal(size=n) * np.exp(0.5 * df["a"])  # heteroscedastic
    df["y"] = beta["const"] + df[["a", "b", "c"]] @ np.array([2.0, -0.5, 0.25]) + noise
    res = fit_ols(df, "y", ["a", "b", "c"])
    ci = res.conf_int()
    for term, b in beta.items():
        assert ci.loc[term, "lower"] < b < ci.loc[term, "upper"], term
    np.testing.assert_allclose(res.params[list(beta)], list(beta.values()), atol=0.15)


def test_hc3_interval_coverage_monte_carlo():
    # 200 small heteroscedastic samples: HC3 t-intervals should cover near 95%, while the
    # classical (nonrobust) interval for the slope whose variance drives the noise does not.
    rng = np.random.default_rng(7)
    reps, n = 200, 60
    hits = {"HC3": 0, "nonrobust": 0}
    for _ in range(reps):
        x = rng.normal(size=n)
        y = 1 + 0.5 * x + rng.normal(size=n) * np.abs(x) * 1.5
        df = pd.DataFrame({"x": x, "y": y})
        for cov in hits:
            ci = fit_ols(df, "y", ["x"], cov_type=cov).conf_int().loc["x"]
            hits[cov] += ci["lower"] < 0.5 < ci["upper"]
    assert 0.90 <= hits["HC3"] / reps <= 0.99
    assert hits["nonrobust"] / reps < hits["HC3"] / reps


@pytest.mark.parametrize("method", ["williams", "steiger", "hittner", "meng", "dunn_clark", "hotelling", "koebe2024"])
def test_degenerate_correlations_give_nan_or_inf_not_an_exception(method):
    # perfectly correlated variables: no finite test statistic exists; before the fix, Python
    # float division raised ZeroDivisionError here instead of returning NaN/inf
    res = v.compare_dependent_correlations(1.0, 1.0, 1.0, 4, method=method)
    assert isinstance(res.statistic, float) and isinstance(res.p_value, float)
    assert not np.isfinite(res.statistic) or res.statistic == 0.0
