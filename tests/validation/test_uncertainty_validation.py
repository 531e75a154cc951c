"""Bootstrap intervals of the validation's Spearman correlations (issue #15, Table 2).

The reference is an independent pairs bootstrap written here with a loop over
:func:`scipy.stats.spearmanr` and :func:`numpy.quantile`, using the documented resampling
convention (``default_rng(seed).integers(0, n, (draws, n))``).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from cpc_core.config.validation_options import ValidationConfig
from cpc_core.validation import stage as vs
from cpc_core.validation.statistics import spearman_bootstrap, spearman_intervals


def _reference(x, y, draws, level, seed):
    n = len(x)
    idx = np.random.default_rng(seed).integers(0, n, size=(draws, n))
    boot = []
    for row in idx:
        with np.errstate(invalid="ignore", divide="ignore"):
            r = scipy.stats.spearmanr(x[row], y[row]).statistic
        if np.isfinite(r):
            boot.append(r)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return lo, hi, len(boot)


@pytest.mark.parametrize("n, level, seed", [(40, 0.90, 0), (7, 0.8, 3), (250, 0.95, 11)])
def test_spearman_bootstrap_matches_an_independent_bootstrap(n, level, seed):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n)
    y = 0.5 * x + rng.normal(size=n)
    x[: n // 4] = np.round(x[: n // 4])  # ties: average ranks, as spearmanr
    y[: max(n // 5, 3)] = 0.0  # an outcome with many zeros, as the paper's
    got = spearman_bootstrap(x, y, draws=400, level=level, seed=seed)
    ref = _reference(x, y, 400, level, seed)
    np.testing.assert_allclose(got[:2], ref[:2], rtol=0, atol=1e-12)
    assert got[2] == ref[2]
    if n == 7:
        # P(a resample draws only the 3 zeros) = (3/7)^7: a few constant resamples, left out
        assert 0 < 400 - got[2] < 20
    # reproducible from the seed, and a different seed gives a different interval
    assert spearman_bootstrap(x, y, draws=400, level=level, seed=seed) == got
    assert spearman_bootstrap(x, y, draws=400, level=level, seed=seed + 1) != got
    with pytest.raises(ValueError, match="finite"):
        spearman_bootstrap(np.r_[x, np.nan], np.r_[y, 1.0])


def test_spearman_intervals_use_each_indicators_complete_rows():
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"y": rng.normal(size=60), "a": rng.normal(size=60),
                       "b": rng.normal(size=60)})  # fmt: skip
    df.loc[:9, "b"] = np.nan
    df.loc[50:, "y"] = np.nan
    out = spearman_intervals(df, "y", ["a", "b"], draws=300, level=0.9, seed=2).set_index("indicator")
    for col in ("a", "b"):
        d = df[["y", col]].dropna()
        lo, hi, k = _reference(d[col].to_numpy(), d["y"].to_numpy(), 300, 0.9, 2)
        assert out.loc[col, "ci_lower"] == pytest.approx(lo, abs=1e-12)
        assert out.loc[col, "ci_upper"] == pytest.approx(hi, abs=1e-12)
        assert out.loc[col, "ci_draws"] == k and out.loc[col, "ci_level"] == 0.9
    # an indicator's interval does not depend on the other indicators
    alone = spearman_intervals(df, "y", ["b"], draws=300, level=0.9, seed=2).iloc[0]
    assert alone["ci_lower"] == out.loc["b", "ci_lower"]


def test_spearman_bootstrap_covers_the_population_rho():
    """Bivariate normal pairs: the population Spearman rho is (6 / pi) asin(r / 2)."""
    r, n, reps, level = 0.4, 120, 300, 0.90
    truth = 6 / np.pi * np.arcsin(r / 2)
    rng = np.random.default_rng(21)
    cov = [[1, r], [r, 1]]
    hits = 0
    for s in range(reps):
        z = rng.multivariate_normal([0, 0], cov, size=n)
        lo, hi, _ = spearman_bootstrap(z[:, 0], z[:, 1], draws=400, level=level, seed=s)
        hits += lo <= truth <= hi
    sd = np.sqrt(level * (1 - level) / reps)
    assert abs(hits / reps - level) < 3 * sd + 0.02, hits / reps  # percentile bootstrap: ~nominal


def _toy(n=80, seed=0):
    rng = np.random.default_rng(seed)
    pop = rng.integers(600, 50_000, n).astype(float)
    tor = pop * np.exp(rng.normal(0, 0.5, n))
    out = np.where(rng.random(n) < 0.4, 0.0, np.exp(0.3 * np.log(tor / pop) + rng.normal(0, 0.5, n)))
    return pd.DataFrame({"commune": [f"{75000 + i}" for i in range(n)], "population": pop,
                         "tor": tor, "web_adult": pop * 50, "youtube": pop * 900,
                         "rho": rng.uniform(0.05, 0.4, n), "n_tiles": 5,
                         "sexual_violence_per_1000": out})  # fmt: skip


def test_stage_adds_the_intervals_to_table2_and_tables_json():
    cfg = ValidationConfig(spearman_ci={"draws": 300, "level": 0.8, "seed": 4})
    prepared = vs.prepare(_toy(), cfg)
    res = vs.compute(prepared, cfg)
    sp = res.spearman.set_index("variable")
    f = prepared.stats_frame
    d = f.loc[f["outcome"].notna()]
    for var in ("log_tor_per_1000", "log_cpc_per_1000"):
        lo, hi, k = _reference(d[var].to_numpy(), d["outcome"].to_numpy(), 300, 0.8, 4)
        assert sp.loc[var, "ci_lower"] == pytest.approx(lo, abs=1e-12)
        assert sp.loc[var, "ci_upper"] == pytest.approx(hi, abs=1e-12)
        assert sp.loc[var, "ci_lower"] < sp.loc[var, "rho"] < sp.loc[var, "ci_upper"]
        assert sp.loc[var, "ci_draws"] == k and sp.loc[var, "ci_level"] == 0.8
    doc = json.loads(json.dumps(vs.to_json(prepared, res, cfg), allow_nan=False))
    row = {r["variable"]: r for r in doc["spearman"]}["log_cpc_per_1000"]
    assert row["ci_lower"] == pytest.approx(sp.loc["log_cpc_per_1000", "ci_lower"])
    assert row["ci_level"] == 0.8 and row["ci_draws"] == sp.loc["log_cpc_per_1000", "ci_draws"]
    off = ValidationConfig(spearman_ci={"enabled": False})
    res_off = vs.compute(vs.prepare(_toy(), off), off)
    assert res_off.spearman["ci_lower"].isna().all() and (res_off.spearman["ci_draws"] == 0).all()
    pd.testing.assert_series_equal(res_off.spearman["rho"], res.spearman["rho"])
