"""Validation stage: every statistic against an independent computation, planted truth.

The data come from the real synthetic generator (``cpc_core.synth.generator``) without the NetMob files:
the commune table is the paper's Equation 1 applied to the generator's expected traffic and
planted rho_j, so the planted cpc per 1000 is known exactly and the validation regressions can
be checked against the planted coefficients (``truth.json``). The independent computations
use numpy, scipy and statsmodels directly on the raw files, never the stage's own columns.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import statsmodels.api as sm
import xarray as xr

from cpc_core.config.core import ConfigError, DisclosureConfig, load_validation_config
from cpc_core.config.validation_options import (
    SearchInterestConfig,
    ValidationConfig,
    parse_validation_config,
)
from cpc_core.errors import InputDataError
from cpc_core.estimate.cpc import correction_factor, estimate
from cpc_core.netmob import facts as netmob
from cpc_core.synth.generator import (
    SynthSpec,
    build_city,
    write_city_geography,
    write_communes,
    write_covariates,
)
from cpc_core.validation import stage as vs

K = 0.011 * 0.41502
POI = [
    "poi_adult_entertainment", "poi_amateur_sports_team", "poi_church_cathedral", "poi_mosque",
    "poi_religious_organization", "poi_school",
]  # fmt: skip


# --------------------------------------------------------------------------------------------
# Data: a "run directory" written from the real generator (shared with test_report.py)
# --------------------------------------------------------------------------------------------


def _lagged_rho(wa: np.ndarray, tor: np.ndarray, lag: int) -> np.ndarray:
    """corr(log WA(t), log Tor(t + lag)) per row, zeros replaced by 0.001 as in the method."""
    n = wa.shape[1]
    t = np.arange(max(0, -lag), min(n, n - lag))
    a = np.log(np.where(wa[:, t] > 0, wa[:, t], 1e-3))
    b = np.log(np.where(tor[:, t + lag] > 0, tor[:, t + lag], 1e-3))
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def build_run_dir(
    out: Path,
    cities: tuple[str, ...],
    scale: float,
    days: int = 7,
    seed: int = 0,
    geography: bool = True,
    lags: tuple[int, ...] = (-2, -1, 0, 1, 2),
    spatial_errors: float = 0.0,
) -> Path:
    """Write what the pipeline would: communes.csv, *_by_lag.csv, internal/hourly.zarr, data/.

    ``communes.csv`` is Equation 1 on the generator's expected window totals and planted
    rho_j (so its cpc per 1000 is the planted one); the lagged tables are computed from the
    generator's hourly commune series.
    """
    spec = SynthSpec(cities=cities, days=days, scale=scale, seed=seed, spatial_errors=spatial_errors)
    models = [build_city(spec, c) for c in spec.cities]
    data = out / "data"
    polygons = None
    if geography or spatial_errors:
        polygons = [write_city_geography(data, m) for m in models]
        write_communes(data, polygons)
        polygons = pd.concat(polygons, ignore_index=True)
    write_covariates(data, spec, models, polygons)
    truth = pd.read_csv(data / "truth" / "communes.csv", dtype={"commune": str})
    totals = truth.rename(columns={f"{s}_expected": s for s in ("tor", "web_adult", "youtube")})
    com = estimate(totals[["commune", "city", "population", "tor", "web_adult", "youtube"]],
                   truth.set_index("commune")["rho"])  # fmt: skip
    com["name"] = truth["name"].to_numpy()
    com["n_tiles"] = truth["n_tiles"].to_numpy()
    com.to_csv(out / "communes.csv", index=False)

    codes = np.concatenate([m.communes["commune"].to_numpy() for m in models]).astype(object)
    series = {
        k: np.concatenate([m.hourly[s] for m in models]).astype(np.float32)
        for k, s in (("tor", "Tor"), ("web_adult", "Web_Adult"), ("youtube", "YouTube"))
    }
    hours = pd.DatetimeIndex(models[0].hours)
    ds = xr.Dataset({k: (("area", "hour"), v) for k, v in series.items()},
                    coords={"area": codes, "hour": hours.to_numpy()})  # fmt: skip
    (out / "internal").mkdir(parents=True, exist_ok=True)
    ds.to_zarr(out / "internal" / "hourly.zarr", mode="w", consolidated=False)

    pop = com.set_index("commune")["population"].reindex(codes).to_numpy(dtype=float)
    tor_total = series["tor"].sum(axis=1).astype(float)
    rbl, ebl = [], []
    for lag in lags:
        rho = _lagged_rho(series["web_adult"], series["tor"], lag)
        c, floored = correction_factor(rho)
        rbl.append(pd.DataFrame({"commune": codes, "lag_h": lag, "rho": rho,
                                 "n_hours": days * 24 - abs(lag), "reason": "OK"}))  # fmt: skip
        ebl.append(pd.DataFrame({"commune": codes, "lag_h": lag, "c": c, "c_floored": floored,
                                 "cpc": c * tor_total,
                                 "cpc_per_1000": c * tor_total / pop * 1000}))  # fmt: skip
    pd.concat(rbl).to_csv(out / "rho_by_lag.csv", index=False)
    pd.concat(ebl).to_csv(out / "estimates_by_lag.csv", index=False)
    run = {"config": {"estimate": {"lag_h": 0}, "disclosure": {"min_population": 500}},
           "config_hash": "test-run", "areas": len(com)}  # fmt: skip
    (out / "run.json").write_text(json.dumps(run))
    return out


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """All 20 metropoles at their real commune counts (1,341 communes), no geography."""
    return build_run_dir(tmp_path_factory.mktemp("big"), netmob.CITIES, 1.0, geography=False)


@pytest.fixture(scope="module")
def big_inputs(big):
    table = pd.read_csv(big / "communes.csv", dtype={"commune": str})
    cov = pd.read_csv(big / "data/covariates/communes.csv", dtype={"commune": str})
    search = pd.read_csv(big / "data/covariates/search_interest.csv")
    ebl = pd.read_csv(big / "estimates_by_lag.csv", dtype={"commune": str})
    return table, cov, search, ebl


@pytest.fixture(scope="module")
def big_cfg() -> ValidationConfig:
    return ValidationConfig(search_interest=SearchInterestConfig(path="unused"))


@pytest.fixture(scope="module")
def big_result(big_inputs, big_cfg):
    table, cov, search, ebl = big_inputs
    p = vs.prepare(table, big_cfg, covariates=[vs.CovariateInput("covariates.csv", cov)],
                   search_interest=search, estimates_by_lag=ebl)  # fmt: skip
    return p, vs.compute(p, big_cfg)


# --------------------------------------------------------------------------------------------
# Independent design matrix: straight from the raw files with numpy
# --------------------------------------------------------------------------------------------


def _hand_frame(table: pd.DataFrame, cov: pd.DataFrame, search: pd.DataFrame,
                ebl: pd.DataFrame | None = None, lag: int = -2) -> pd.DataFrame:  # fmt: skip
    d = table.merge(cov.drop(columns=["city", "population"]), on="commune", how="left")
    pop = d["population"].to_numpy(float)
    h = pd.DataFrame(index=d["commune"].to_numpy())
    for s in ("youtube", "web_adult", "tor"):
        h[f"log_{s}_per_1000"] = np.log(d[s].to_numpy(float) / pop * 1000)
    h["log_cpc_per_1000"] = np.log(d["c"].to_numpy(float) * d["tor"].to_numpy(float) / pop * 1000)
    h["log_pop_density"] = np.log(d["density"].to_numpy(float))
    for col in ("share_singles", "poverty_rate", "unemployment_rate", "turnout_2017"):
        h[col] = d[col].to_numpy(float) / 100  # written in percent, modelled as shares
    h["share_le_pen"] = d["le_pen_2017"].to_numpy(float) / 100
    h["share_macron"] = d["macron_2017"].to_numpy(float) / 100
    for col in POI:  # raw counts: _sm_fit takes the z-scores over each model's sample
        h[col] = d[col].to_numpy(float)
    # PCA by eigen-decomposition of the correlation matrix of the non-zero terms.
    terms = search.drop(columns="region").loc[:, lambda s: (s != 0).any()]
    z = (terms - terms.mean()) / terms.std(ddof=0)  # the authors' StandardScaler (the default)
    w, v = np.linalg.eigh(np.corrcoef(z.to_numpy().T))
    v = v[:, np.argsort(w)[::-1][:3]]
    v = v * np.sign(v[np.argmax(np.abs(v), axis=0), range(3)])
    scores = pd.DataFrame(z.to_numpy() @ v, index=search["region"], columns=["PC1", "PC2", "PC3"])
    h["PC1"] = scores["PC1"].reindex(d["region"]).to_numpy()
    h["PC3"] = scores["PC3"].reindex(d["region"]).to_numpy()
    h["drug_abuse"] = d["drug_abuse_per_1000"].to_numpy(float)
    h["outcome"] = d["sexual_violence_per_1000"].to_numpy(float)
    if ebl is not None:
        at = ebl.loc[ebl["lag_h"] == lag].set_index("commune")["c"].reindex(d["commune"])
        h["log_cpc_per_1000_lag"] = np.log(at.to_numpy() * d["tor"].to_numpy(float) / pop * 1000)
    return h


CONTROLS = [
    "log_youtube_per_1000", "log_web_adult_per_1000", "log_tor_per_1000", "log_pop_density",
    "share_singles", "poverty_rate", "unemployment_rate", "turnout_2017", "share_le_pen",
    "share_macron", *POI, "PC1", "PC3",
]  # fmt: skip


def _sm_fit(h: pd.DataFrame, y: str, X: list[str], cov_type: str = "HC3", poi_over: str = "sample"):
    """statsmodels on the complete rows; POI counts as z-scores (ddof 1) over those rows (the
    authors' R: ``scale()`` after dropping incomplete rows), or over all of ``h``."""
    base = h.copy()
    d = base[[y, *X]].dropna()
    scale_rows = d if poi_over == "sample" else base
    for col in POI:
        if col in d:
            x = scale_rows[col].to_numpy(float)
            x = x[np.isfinite(x)]
            d[col] = (d[col] - x.mean()) / x.std(ddof=1)
    return sm.OLS(d[y], sm.add_constant(d[X])).fit(cov_type=cov_type, use_t=True)


# --------------------------------------------------------------------------------------------
# Statistics against independent computations
# --------------------------------------------------------------------------------------------


def test_table1_matches_pandas_describe(big_inputs, big_result):
    table = big_inputs[0]
    t1 = big_result[1].table1
    for name, col in (("rho_j", "rho"), ("c_j", "c")):
        ref = table[col].describe()
        for stat in ("mean", "std", "min", "25%", "50%", "75%", "max"):
            assert t1.loc[name, stat] == pytest.approx(ref[stat], rel=1e-12)
        assert t1.loc[name, "n"] == len(table)
    c, _ = correction_factor(table["rho"].to_numpy())
    assert t1.loc["c_j", "min"] == pytest.approx(c.min())


def test_spearman_matches_scipy(big_inputs, big_result):
    h = _hand_frame(*big_inputs)
    sp = big_result[1].spearman.set_index("variable")
    for var in ("log_youtube_per_1000", "log_web_adult_per_1000", "log_tor_per_1000",
                "log_cpc_per_1000"):  # fmt: skip
        d = h[["outcome", var]].dropna()
        ref = scipy.stats.spearmanr(d["outcome"], d[var])
        assert sp.loc[var, "rho"] == pytest.approx(ref.statistic, abs=1e-12)
        assert sp.loc[var, "p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
        assert sp.loc[var, "n"] == len(d)
    assert sp.loc["log_cpc_per_1000", "indicator"] == "log_cpc_per_1000"
    assert "log_cpc_per_1000_lag" in sp.index  # the Table 7 lag is added to Table 2


def test_dependent_tests_match_hand_formulas(big_inputs, big_result):
    h = _hand_frame(*big_inputs)
    dep = big_result[1].dependent
    d = h[["outcome", "log_cpc_per_1000", "log_tor_per_1000"]].dropna()
    r = scipy.stats.spearmanr(d.to_numpy()).statistic
    r_jk, r_jh, r_kh, n = r[0, 1], r[0, 2], r[1, 2], len(d)
    rows = dep.loc[dep["other"] == "log_Tor_per_1000"].set_index("method")
    # the authors' formula: t = (r_ab - r_ac) / sqrt((1 - r_bc^2) / (n - 3)), df n - 2
    t = (r_jk - r_jh) / np.sqrt((1 - r_kh**2) / (n - 3))
    assert rows.loc["koebe2024", "statistic"] == pytest.approx(t, rel=1e-10)
    assert rows.loc["koebe2024", "p_value"] == pytest.approx(2 * scipy.stats.t.sf(abs(t), n - 2))
    assert not rows.loc["koebe2024", "standard"] and rows.loc["williams", "standard"]
    assert "replication" in rows.loc["koebe2024", "label"]
    # Williams' t (Steiger 1980, eq. 7)
    det = 1 - r_jk**2 - r_jh**2 - r_kh**2 + 2 * r_jk * r_jh * r_kh
    rbar = (r_jk + r_jh) / 2
    tw = (r_jk - r_jh) * np.sqrt(
        (n - 1) * (1 + r_kh) / (2 * (n - 1) / (n - 3) * det + rbar**2 * (1 - r_kh) ** 3)
    )
    assert rows.loc["williams", "statistic"] == pytest.approx(tw, rel=1e-10)
    assert rows.loc["williams", "p_value"] == pytest.approx(2 * scipy.stats.t.sf(abs(tw), n - 3))
    assert rows.loc["williams", "n"] == n
    assert set(dep["other"]) == {"log_YouTube_per_1000", "log_Web_Adult_per_1000",
                                 "log_Tor_per_1000"}  # fmt: skip


@pytest.mark.parametrize(
    ("table", "column", "y", "extra", "nonzero"),
    [
        ("table3", 0, "log_cpc_per_1000", ["outcome"], False),
        ("table3", 1, "outcome", ["log_cpc_per_1000"], False),
        ("table6", 0, "log_cpc_per_1000", ["outcome"], True),
        ("table6", 1, "outcome", ["log_cpc_per_1000"], True),
    ],
)
def test_ols_matches_statsmodels(big_inputs, big_result, table, column, y, extra, nonzero):
    h = _hand_frame(*big_inputs)
    if nonzero:
        h = h.loc[h["outcome"] != 0]
    ref = _sm_fit(h, y, CONTROLS + extra)
    fit = big_result[1].tables[table].fits[column]
    res = fit.result
    assert res.nobs == int(ref.nobs) and res.cov_type == "HC3" and res.use_t
    pd.testing.assert_series_equal(res.params.sort_index(), ref.params.sort_index(),
                                   check_names=False, rtol=1e-7)  # fmt: skip
    pd.testing.assert_series_equal(res.bse.sort_index(), ref.bse.sort_index(),
                                   check_names=False, rtol=1e-7)  # fmt: skip
    pd.testing.assert_series_equal(res.pvalues.sort_index(), ref.pvalues.sort_index(),
                                   check_names=False, rtol=1e-6)  # fmt: skip
    assert res.rsquared == pytest.approx(ref.rsquared, rel=1e-10)
    assert res.rsquared_adj == pytest.approx(ref.rsquared_adj, rel=1e-10)
    # the accounting adds up and names the dropped rows
    s = fit.sample
    assert s["n_input"] - sum(x["n"] for x in s["lost"]) == s["n_used"] == res.nobs
    lost = {x["reason"]: x["n"] for x in s["lost"]}
    outcome = big_inputs[1]["sexual_violence_per_1000"]
    assert lost["sexual_violence_per_1000 missing"] == int(outcome.isna().sum())
    if nonzero:
        assert lost["outcome is zero (dropped in this table)"] == int((outcome == 0).sum())


def test_poi_standardised_over_the_model_sample(big_inputs, big_result):
    """The default (poi_scaling: model_sample) takes the POI z-scores over each model's own
    sample; statistics_rows keeps the former scaling over every commune. Checked against
    pandas z-scores and statsmodels; the two scalings give different POI coefficients (the
    test could fail) but the same t-statistics and the same other coefficients."""
    table, cov, search, _ = big_inputs
    h = _hand_frame(table, cov, search)
    fit = big_result[1].tables["table3"].fits[1].result
    sample = h[["outcome", *CONTROLS, "log_cpc_per_1000"]].dropna()
    assert len(sample) < len(h)  # the sample is a strict subset: the scalings differ
    z = (sample[POI] - sample[POI].mean()) / sample[POI].std(ddof=1)
    X = sm.add_constant(pd.concat([sample.drop(columns=POI), z], axis=1)[[*CONTROLS, "log_cpc_per_1000"]])
    ref = sm.OLS(sample["outcome"], X).fit(cov_type="HC3", use_t=True)
    pd.testing.assert_series_equal(fit.params.sort_index(), ref.params.sort_index(), check_names=False, rtol=1e-7)
    cfg = ValidationConfig(poi_scaling="statistics_rows", search_interest=SearchInterestConfig(path="x"))
    p = vs.prepare(table, cfg, covariates=[vs.CovariateInput("c", cov)], search_interest=search)
    old = vs.compute(p, cfg).tables["table3"].fits[1].result
    ref_all = _sm_fit(h, "outcome", CONTROLS + ["log_cpc_per_1000"], poi_over="all")
    pd.testing.assert_series_equal(old.params.sort_index(), ref_all.params.sort_index(), check_names=False,
                                   rtol=1e-7)
    ratio = fit.params[POI] / old.params[POI]
    assert (abs(ratio - 1) > 1e-3).all()  # each POI coefficient rescaled by its sd ratio
    np.testing.assert_allclose(ratio, sample[POI].std(ddof=1) / h[POI].std(ddof=1), rtol=1e-6)
    np.testing.assert_allclose(fit.params[POI] / fit.bse[POI], old.params[POI] / old.bse[POI], rtol=1e-6)
    assert fit.params["log_cpc_per_1000"] == pytest.approx(old.params["log_cpc_per_1000"], rel=1e-8)


def test_tables5_and_7_use_a_common_sample(big_inputs, big_result):
    table, cov, search, ebl = big_inputs
    h = _hand_frame(table, cov, search, ebl, lag=-2)
    t5 = big_result[1].tables["table5"]
    d5 = h.dropna(subset=["log_cpc_per_1000", "outcome", "drug_abuse", *CONTROLS])
    ref = _sm_fit(d5, "log_cpc_per_1000", CONTROLS + ["drug_abuse", "outcome"])
    assert t5.fits[1].result.params["drug_abuse"] == pytest.approx(ref.params["drug_abuse"])
    assert t5.fits[0].result.nobs == t5.fits[1].result.nobs == int(ref.nobs)
    t7 = big_result[1].tables["table7"]
    ref7 = _sm_fit(h, "log_cpc_per_1000_lag", CONTROLS + ["outcome"])
    assert t7.fits[1].result.params["outcome"] == pytest.approx(ref7.params["outcome"])
    assert t7.fits[1].result.bse["outcome"] == pytest.approx(ref7.bse["outcome"])
    assert t7.column_labels == ("no lag (Tor lag 0 h)", "Tor lag -2 h")


@pytest.mark.parametrize("cov_type", ["HC0", "HC1", "HC2", "nonrobust"])
def test_covariance_choice(big_inputs, cov_type):
    table, cov, search, _ = big_inputs
    cfg = ValidationConfig(cov_type=cov_type, search_interest=SearchInterestConfig(path="x"))
    p = vs.prepare(table, cfg, covariates=[vs.CovariateInput("c", cov)], search_interest=search)
    res = vs.compute(p, cfg).tables["table3"].fits[1].result
    ref = _sm_fit(_hand_frame(table, cov, search), "outcome", CONTROLS + ["log_cpc_per_1000"],
                  cov_type=cov_type)  # fmt: skip
    assert res.bse["log_cpc_per_1000"] == pytest.approx(ref.bse["log_cpc_per_1000"], rel=1e-8)


# --------------------------------------------------------------------------------------------
# Planted truth
# --------------------------------------------------------------------------------------------


def test_planted_coefficients_recovered(big, big_result):
    """Table 6 (zeros dropped) recovers the planted model; Table 3 has the right signs.

    The generator draws zeros independently of the regressors, so the planted coefficients
    hold for the non-zero outcomes (Table 6) and are scaled by 1 - zero_share in Table 3.
    """
    planted = json.loads((big / "data/truth/truth.json").read_text())["validation"]
    coefs = planted["coefficients"]
    prepared, result = big_result
    t6 = {f.spec.y: f.result for f in result.tables["table6"].fits}["outcome"]
    ci = t6.conf_int(alpha=0.05)
    lines = []
    for term, value in coefs.items():
        est, lo, hi = t6.params[term], ci.loc[term, "lower"], ci.loc[term, "upper"]
        lines.append(f"{term}: planted {value:+.4f}, estimate {est:+.4f} [{lo:+.4f}, {hi:+.4f}]")
        assert lo <= value <= hi, lines[-1]
        if term != "const":
            assert np.sign(est) == np.sign(value), lines[-1]
            assert t6.pvalues[term] < 0.01, lines[-1]
    logging.getLogger(__name__).info("recovery (Table 6, n=%d):\n%s", t6.nobs, "\n".join(lines))
    t3 = {f.spec.y: f.result for f in result.tables["table3"].fits}["outcome"]
    share = 1 - planted["zero_share"]
    for term, value in coefs.items():
        if term != "const":
            assert np.sign(t3.params[term]) == np.sign(value), term
        lo, hi = t3.conf_int().loc[term]
        assert lo <= share * value <= hi, term
    # and cpc responds to the outcome with the right sign in the other direction
    t6_cpc = {f.spec.y: f.result for f in result.tables["table6"].fits}["log_cpc_per_1000"]
    assert t6_cpc.params["outcome"] > 0


# --------------------------------------------------------------------------------------------
# Roles, joins, missing covariates
# --------------------------------------------------------------------------------------------


def test_missing_required_role_names_role_and_columns(big_inputs):
    table = big_inputs[0].drop(columns=["youtube"])
    with pytest.raises(vs.RoleError, match=r"role 'youtube' -> column 'youtube' not found.*"
                                           r"Columns found: \['commune'"):  # fmt: skip
        vs.prepare(table, ValidationConfig())
    with pytest.raises(vs.RoleError, match="neither role 'c'"):
        vs.prepare(big_inputs[0].drop(columns=["c", "rho"]).assign(
            sexual_violence_per_1000=1.0), ValidationConfig())  # fmt: skip


def test_c_or_rho_and_the_other_derived(big_inputs, big_result):
    table, cov, search, _ = big_inputs
    ref = big_result[0].frame
    only_rho = vs.prepare(table.drop(columns=["c"]), ValidationConfig(),
                          covariates=[vs.CovariateInput("c", cov)])  # fmt: skip
    np.testing.assert_allclose(only_rho.frame["log_cpc_per_1000"], ref["log_cpc_per_1000"])
    assert only_rho.frame["c_floored"].sum() == (table["rho"] <= 0).sum() > 0
    only_c = vs.prepare(table.drop(columns=["rho"]), ValidationConfig(),
                        covariates=[vs.CovariateInput("c", cov)])  # fmt: skip
    np.testing.assert_allclose(only_c.frame["rho"], table["c"] / K)
    assert any("rho derived from c" in n.text for n in only_c.notes)


def test_external_table_with_renamed_columns(big_inputs, big_result):
    """The issue's example: code_com, pop, Tor, Web_Adult, YouTube, c, sv_com_17_21."""
    table, cov, search, _ = big_inputs
    ext = table.merge(cov[["commune", "sexual_violence_per_1000"]], on="commune").rename(columns={
        "commune": "code_com", "population": "pop", "tor": "Tor", "web_adult": "Web_Adult",
        "youtube": "YouTube", "sexual_violence_per_1000": "sv_com_17_21"})[
        ["code_com", "pop", "Tor", "Web_Adult", "YouTube", "c", "sv_com_17_21"]]  # fmt: skip
    cfg = parse_validation_config({"columns": {
        "commune": "code_com", "population": "pop", "tor": "Tor", "web_adult": "Web_Adult",
        "youtube": "YouTube", "c": "c", "outcome": "sv_com_17_21"}})  # fmt: skip
    p = vs.prepare(ext, cfg)
    r = vs.compute(p, cfg)
    pd.testing.assert_frame_equal(r.spearman.iloc[:4, :4].reset_index(drop=True),
                                  big_result[1].spearman.iloc[:4, :4])  # fmt: skip
    assert {k: t.status for k, t in r.tables.items()} == dict.fromkeys(r.tables, "skipped")
    assert "controls unavailable" in r.tables["table3"].reason
    assert any("tile counts" in n.text for n in p.notes)  # only the population rule applies


def test_lost_join_rows_and_missing_cells_are_counted(big_inputs, big_cfg):
    table, cov, search, ebl = big_inputs
    cov = cov.copy()
    cov.loc[cov.index[:5], "poverty_rate"] = np.nan
    published = cov["sexual_violence_per_1000"].notna()
    gone = cov.loc[published & cov["poverty_rate"].notna(), "commune"].iloc[:7]
    cov2 = cov.loc[~cov["commune"].isin(gone)]
    p = vs.prepare(table, big_cfg, covariates=[vs.CovariateInput("cov.csv", cov2)],
                   search_interest=search)  # fmt: skip
    assert p.joins[0]["unmatched_table_rows"] == 7
    fit = vs.compute(p, big_cfg).tables["table3"].fits[0]
    lost = {x["reason"]: x["n"] for x in fit.sample["lost"]}
    assert lost["no row in cov.csv"] == 7
    assert lost["poverty_rate missing"] == int(published[:5].sum())
    assert fit.sample["n_input"] - sum(lost.values()) == fit.result.nobs


def test_rates_are_shares_and_out_of_range_rates_are_counted(big_inputs, big_cfg):
    """The six rate roles enter as shares (percent / 100 by default, as the paper's coefficients
    imply); a rate outside 0-100 % is missing with its reason, never used; a role read as
    percent whose values are all <= 1 (shares already) is warned about."""
    table, cov, search, _ = big_inputs
    cov = cov.copy()
    p = vs.prepare(table, big_cfg, covariates=[vs.CovariateInput("cov.csv", cov)], search_interest=search)
    got = p.frame.set_index(p.frame.index.astype(str))
    ref = cov.set_index("commune")
    for col in ("poverty_rate", "turnout_2017"):
        np.testing.assert_allclose(got[col], ref.loc[got.index, col] / 100)
    np.testing.assert_allclose(got["share_macron"], ref.loc[got.index, "macron_2017"] / 100)
    assert not any("every value is <= 1" in n.text for n in p.notes)

    published = cov["sexual_violence_per_1000"].notna().to_numpy()
    bad = np.flatnonzero(published)[:4]
    cov.loc[cov.index[bad[:3]], "poverty_rate"] = 130.0  # above 100 %
    cov.loc[cov.index[bad[3]], "poverty_rate"] = -2.0
    cov["turnout_2017"] = cov["turnout_2017"] / 100  # a share, yet read as percent
    p = vs.prepare(table, big_cfg, covariates=[vs.CovariateInput("cov.csv", cov)], search_interest=search)
    assert any(n.level == "warning" and "turnout_2017: every value is <= 1" in n.text for n in p.notes)
    lost = {x["reason"]: x["n"] for x in vs.compute(p, big_cfg).tables["table3"].fits[0].sample["lost"]}
    assert lost["poverty_rate outside 0-100 %"] == 4

    # a role not read as percent must hold shares: percentages are then out of range
    cfg = big_cfg.model_copy(update={"percent_roles": ("le_pen", "macron")})
    p = vs.prepare(table, cfg, covariates=[vs.CovariateInput("cov.csv", cov)], search_interest=search)
    assert p.frame["share_singles"].isna().all()
    assert p.frame["turnout_2017"].notna().any()


def test_missing_optional_covariates_skip_tables_or_fit_partially(big_inputs):
    table, cov, search, _ = big_inputs
    cov = cov.drop(columns=["drug_abuse_per_1000", "poi_mosque"])
    cfg = ValidationConfig(search_interest=SearchInterestConfig(path="x"))
    p = vs.prepare(table, cfg, covariates=[vs.CovariateInput("c", cov)], search_interest=search)
    r = vs.compute(p, cfg)
    assert r.tables["table5"].status == "skipped" and "drug_abuse" in r.tables["table5"].reason
    assert r.tables["table3"].status == "skipped" and "poi_mosque" in r.tables["table3"].reason
    assert r.tables["table7"].status == "skipped"  # no estimates_by_lag given
    assert any(n.scope == "table5" and "skipped" in n.text for n in r.notes)
    partial = cfg.model_copy(update={"partial_controls": True})
    r2 = vs.compute(vs.prepare(table, partial, covariates=[vs.CovariateInput("c", cov)],
                               search_interest=search), partial)  # fmt: skip
    fit = r2.tables["table3"].fits[0]
    assert r2.tables["table3"].status == "ok" and "poi_mosque" in fit.dropped_regressors
    assert "poi_mosque" not in fit.result.params.index


def test_table7_needs_the_configured_lag(big_inputs):
    table, cov, search, ebl = big_inputs
    cfg = ValidationConfig(lag_h=5, search_interest=SearchInterestConfig(path="x"))
    p = vs.prepare(table, cfg, covariates=[vs.CovariateInput("c", cov)], search_interest=search,
                   estimates_by_lag=ebl)  # fmt: skip
    assert p.lag_h is None and any("lag 5 h is not in estimates_by_lag" in n.text for n in p.notes)


# --------------------------------------------------------------------------------------------
# Disclosure control
# --------------------------------------------------------------------------------------------


def test_small_areas_suppressed_in_public_outputs(big_inputs, big_result):
    table = big_inputs[0].merge(big_inputs[1][["commune", "sexual_violence_per_1000"]])
    p = big_result[0]
    small = (table["population"] < 500) | (table["n_tiles"] < 3)
    assert p.frame["small_area"].to_numpy().tolist() == small.tolist()
    assert p.disclosure["n_small_areas"] == int(small.sum()) > 0
    pub = vs.public_communes(p)
    assert (
        pub.loc[small.to_numpy(), ["cpc_per_1000", "tor_per_1000", "c", "rho"]].isna().all().all()
    )
    assert pub.loc[~small.to_numpy(), "cpc_per_1000"].notna().all()
    assert not {"tile_id", "x", "y", "lon", "lat", "geometry"} & set(pub.columns)
    top = vs.top_communes(p, 10)
    assert not p.frame.loc[top, "small_area"].any()
    expected = table.loc[~small].sort_values("cpc_per_1000", ascending=False)["commune"][:10]
    assert top == expected.tolist()
    # stricter thresholds from the run's disclosure section; flag mode keeps the values
    strict = vs.prepare(table, ValidationConfig(small_areas="flag"),
                        disclosure=DisclosureConfig(min_population=5000, min_tiles=3))  # fmt: skip
    assert strict.disclosure["n_small_areas"] > p.disclosure["n_small_areas"]
    assert vs.public_communes(strict)["cpc_per_1000"].notna().all()
    # statistics without the small areas, when asked
    excl = ValidationConfig(include_small_areas=False)
    r = vs.compute(vs.prepare(table, excl), excl)
    assert r.table1.loc["rho_j", "n"] == int((~small).sum())


# --------------------------------------------------------------------------------------------
# JSON and configuration
# --------------------------------------------------------------------------------------------


def test_to_json_is_strict_and_complete(big_result, big_cfg):
    p, r = big_result
    doc = vs.to_json(p, r, big_cfg)
    text = json.dumps(doc, allow_nan=False)
    back = json.loads(text)
    assert set(back["table1"]) == {"rho_j", "c_j"}
    assert {"indicator", "rho", "p_value", "n"} <= set(back["spearman"][0])
    assert {"method", "statistic", "p_value", "standard"} <= set(back["dependent_tests"][0])
    ols = {(m["table"], m["column"]): m for m in back["ols"]}
    assert set(ols) == {(t, c) for t in ("table3", "table5", "table6", "table7") for c in (1, 2)}
    m = ols[("table6", 2)]
    assert m["dependent"] == "outcome" and m["nobs"] == m["sample"]["n_used"]
    terms = {c["term"]: c for c in m["coefficients"]}
    assert terms["log_cpc_per_1000"]["ci_lower"] < terms["log_cpc_per_1000"]["coef"]
    assert back["search_interest_pca"]["covariates"] == ["PC1", "PC3"]
    assert len(back["search_interest_pca"]["dropped_terms"]) == 7


def test_config_is_strict_and_loads_sections(tmp_path):
    with pytest.raises(ConfigError, match="validation.columns.outcom: unknown key"):
        parse_validation_config({"columns": {"outcom": "x"}})
    with pytest.raises(ConfigError, match="unknown"):
        parse_validation_config({"dependent_methods": ["fisher"]})
    cfg = tmp_path / "v.yaml"
    cfg.write_text("validation:\n  columns: {outcome: sv}\n  covariates: [a.csv]\n"
                   "disclosure: {min_population: 1000}\nestimate: {lag_h: 0}\n")  # fmt: skip
    v = load_validation_config(cfg, ["validation.cov_type=HC1"])
    assert v.columns.outcome == "sv" and v.cov_type == "HC1"
    assert v.covariates[0].path == "a.csv" and v.covariates[0].commune == "commune"
    assert v.disclosure.min_population == 1000 and v.disclosure.min_tiles == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("validaton: {}\n")
    with pytest.raises(ConfigError, match="unknown top-level"):
        load_validation_config(bad)
    with pytest.raises(Exception, match="frozen"):
        v.cov_type = "HC0"


# --------------------------------------------------------------------------------------------
# Lags: the unlagged statistics are at lag 0 whatever lag the table was estimated at
# --------------------------------------------------------------------------------------------


def _table_at_lag(table: pd.DataFrame, ebl: pd.DataFrame, lag: int) -> pd.DataFrame:
    """The commune table as the pipeline writes it with ``estimate.lag_h = lag``."""
    at = ebl.loc[ebl["lag_h"] == lag].set_index("commune").reindex(table["commune"])
    return table.assign(c=at["c"].to_numpy(), c_floored=at["c_floored"].to_numpy(),
                        rho=np.nan)  # fmt: skip


def test_unlagged_statistics_use_lag0_whatever_the_tables_lag(big_inputs):
    table, cov, search, ebl = big_inputs
    covs = [vs.CovariateInput("covariates.csv", cov)]
    t0, t2 = _table_at_lag(table, ebl, 0), _table_at_lag(table, ebl, -2)
    res = {}
    for lag, t in ((0, t0), (-2, t2)):
        cfg = ValidationConfig(table_lag_h=lag, search_interest=SearchInterestConfig(path="x"))
        p = vs.prepare(t, cfg, covariates=covs, search_interest=search, estimates_by_lag=ebl)
        res[lag] = (p, vs.compute(p, cfg))
    (p0, r0), (p2, r2) = res[0], res[-2]
    assert p2.table_lag_h == -2 and p2.cpc_lag_h == 0 == p0.cpc_lag_h and p2.lag_h == -2
    # Table 7: the "no lag" column is the same model for both tables, and not the lagged one
    f0, f2 = r0.tables["table7"].fits, r2.tables["table7"].fits
    pd.testing.assert_series_equal(f2[0].result.params, f0[0].result.params, rtol=1e-12)
    assert f2[0].result.params["outcome"] != pytest.approx(f2[1].result.params["outcome"])
    # ... and it is the statsmodels fit on lag-0 c (independent design matrix)
    h0 = _hand_frame(t0, cov, search, ebl, lag=-2)
    ref = _sm_fit(h0.dropna(subset=["log_cpc_per_1000_lag"]), "log_cpc_per_1000",
                  CONTROLS + ["outcome"])  # fmt: skip
    assert f2[0].result.params["outcome"] == pytest.approx(ref.params["outcome"], rel=1e-9)
    assert r2.tables["table7"].column_labels == ("no lag (Tor lag 0 h)", "Tor lag -2 h")
    # Table 2's unlagged row: lag 0 (scipy on the lag-0 table), labelled without a lag
    sp = r2.spearman.set_index("variable")
    d = h0[["outcome", "log_cpc_per_1000"]].dropna()
    assert sp.loc["log_cpc_per_1000", "rho"] == pytest.approx(
        scipy.stats.spearmanr(d["outcome"], d["log_cpc_per_1000"]).statistic, abs=1e-12)
    assert sp.loc["log_cpc_per_1000", "indicator"] == "log_cpc_per_1000"
    assert sp.loc["log_cpc_per_1000", "rho"] != pytest.approx(sp.loc["log_cpc_per_1000_lag", "rho"])
    # Tables 3 and 6 too; Table 1 and the public outputs stay the table's (lag -2) c_j
    for key in ("table3", "table6"):
        pd.testing.assert_series_equal(r2.tables[key].fits[0].result.params,
                                       r0.tables[key].fits[0].result.params, rtol=1e-12)  # fmt: skip
    assert r2.table1.loc["c_j", "mean"] == pytest.approx(t2["c"].mean(), rel=1e-12)
    assert any("at Tor lag -2 h" in n.text and "lag 0 from estimates_by_lag" in n.text
               for n in p2.notes)  # fmt: skip


def test_lag0_unavailable_is_said_and_labelled(big_inputs):
    table, cov, search, ebl = big_inputs
    t2 = _table_at_lag(table, ebl, -2)
    cfg = ValidationConfig(table_lag_h=-2, search_interest=SearchInterestConfig(path="x"))
    p = vs.prepare(t2, cfg, covariates=[vs.CovariateInput("c", cov)], search_interest=search,
                   estimates_by_lag=ebl.loc[ebl["lag_h"] != 0])  # fmt: skip
    r = vs.compute(p, cfg)
    assert p.cpc_lag_h == -2
    assert any(n.level == "warning" and "c_j at lag 0 is not available" in n.text for n in p.notes)
    assert "log_cpc_per_1000_lag-2h" in r.spearman["indicator"].tolist()
    assert "log_cpc_per_1000" not in r.spearman["indicator"].tolist()  # no row claims lag 0
    assert r.tables["table7"].status == "skipped" and "lag 0" in r.tables["table7"].reason
    assert set(r.dependent["target"]) == {"log_cpc_per_1000_lag-2h"}


# --------------------------------------------------------------------------------------------
# c_floored: the estimate's flag, re-derived only without it
# --------------------------------------------------------------------------------------------


def test_c_floored_is_the_estimates_flag(big_inputs):
    t = big_inputs[0].assign(sexual_violence_per_1000=1.0)
    # small positive rho_j: 0 < c_j < c_floor, *not* floored by the estimate
    t.loc[t.index[:6], "rho"] = [0.001, 0.002, -0.01, -0.2, 0.0005, 0.3]
    raw = K * t["rho"].to_numpy()
    t["c"] = np.where(raw <= 0, 1e-5, raw)
    floored = raw <= 0  # independent: the estimate's rule, c <= 0 before flooring
    assert ((t["c"] < 1e-5) & ~floored).sum() >= 3  # the case the old rule miscounted
    t["c_floored"] = floored
    p = vs.prepare(t, ValidationConfig())
    np.testing.assert_array_equal(p.frame["c_floored"].to_numpy(), floored)
    # written and read back as text (CSV) it is the same flag
    p_txt = vs.prepare(t.assign(c_floored=t["c_floored"].astype(str)), ValidationConfig())
    np.testing.assert_array_equal(p_txt.frame["c_floored"].to_numpy(), floored)
    # an estimate made with another floor: the table's flag wins over validation.c_floor
    est = estimate(t[["commune", "city", "population", "tor", "web_adult", "youtube"]],
                   t.set_index("commune")["rho"], csam_share=0.5, floor=1e-6)  # fmt: skip
    est = est.assign(n_tiles=5, sexual_violence_per_1000=1.0)
    p_est = vs.prepare(est, ValidationConfig())
    np.testing.assert_array_equal(p_est.frame["c_floored"].to_numpy(), est["rho"] <= 0)
    # without the column: re-derived from rho_j (rho_j <= 0), or from c_j alone
    p_rho = vs.prepare(t.drop(columns=["c_floored"]), ValidationConfig())
    np.testing.assert_array_equal(p_rho.frame["c_floored"].to_numpy(), floored)
    assert any("re-derived" in n.text for n in p_rho.notes)
    p_c = vs.prepare(t.drop(columns=["c_floored", "rho"]), ValidationConfig())
    np.testing.assert_array_equal(p_c.frame["c_floored"].to_numpy(), floored)


# --------------------------------------------------------------------------------------------
# Search interest: ddof, non-term columns, the region scores written out
# --------------------------------------------------------------------------------------------


def test_search_interest_ids_left_out_and_scores_written(tmp_path):
    """A raw export with an ID column (code_reg) and a text column: both are left out of the
    PCA with a warning note naming them (the PCs equal those of the clean table), the default
    ddof is the authors' 0, and search_interest_scores.csv holds the region scores, checked
    against a hand SVD of ddof-0 z-scores."""
    from cpc_core.config.validation_options import FiguresConfig
    from jobs.validate import run_validation

    run_dir = build_run_dir(tmp_path / "run", ("Lyon", "Nice"), 0.05, days=7, seed=3, geography=False)
    clean = pd.read_csv(run_dir / "data/covariates/search_interest.csv")
    raw = clean.copy()
    raw.insert(1, "code_reg", np.arange(11, 11 + len(raw)))
    raw["nom"] = "Region " + raw["region"].astype(str)
    raw.to_csv(tmp_path / "raw.csv", index=False)
    outs = {}
    for key, path in (("raw", tmp_path / "raw.csv"), ("clean", run_dir / "data/covariates/search_interest.csv")):
        cfg = ValidationConfig(figures=FiguresConfig(enabled=False), report=False,
                               search_interest=SearchInterestConfig(path=str(path)))
        outs[key] = run_validation(run_dir / "communes.csv", tmp_path / key, cfg, run_dir=run_dir)
    doc = json.loads((tmp_path / "raw" / "tables.json").read_text())
    pca = doc["search_interest_pca"]
    assert pca["ddof"] == 0 and pca["excluded_columns"] == {"code_reg": "named like a code or identifier",
                                                            "nom": "no numeric value"}
    assert any("code_reg" in n["text"] and n["level"] == "warning" for n in doc["notes"])
    got = pd.read_csv(tmp_path / "raw" / "search_interest_scores.csv")
    same = pd.read_csv(tmp_path / "clean" / "search_interest_scores.csv")
    pd.testing.assert_frame_equal(got, same)
    terms = clean.drop(columns="region").loc[:, lambda d: (d != 0).any()].to_numpy(float)
    z = (terms - terms.mean(0)) / terms.std(0)  # numpy's default ddof = 0
    u, sv, vt = np.linalg.svd(z, full_matrices=False)
    flip = np.sign(vt[np.arange(3), np.argmax(np.abs(vt[:3]), axis=1)])
    np.testing.assert_allclose(got[["PC1", "PC2", "PC3"]].to_numpy(), u[:, :3] * sv[:3] * flip, atol=1e-9)
    assert got["region"].astype(str).tolist() == clean["region"].astype(str).tolist()


def test_partial_tables_say_so_in_every_format(tmp_path):
    """With a control missing and partial_controls, Tables 3 and 6 keep the paper's title
    marked PARTIAL and carry the omission in the table itself: Markdown, LaTeX, HTML and CSV,
    and tables.json. A complete fit carries neither (the check could fail)."""
    from cpc_core.config.validation_options import CovariateFile, FiguresConfig
    from jobs.validate import run_validation

    run_dir = build_run_dir(tmp_path / "run", ("Paris", "Lyon", "Toulouse", "Nice"), 0.05, days=7, seed=4,
                            geography=False)
    cov = pd.read_csv(run_dir / "data/covariates/communes.csv", dtype={"commune": str})
    cov.drop(columns=["poi_mosque"]).to_csv(tmp_path / "cov.csv", index=False)
    base = dict(figures=FiguresConfig(enabled=False), report=False)
    for key, cfg in (
        ("partial", ValidationConfig(partial_controls=True, covariates=[CovariateFile(path=str(tmp_path / "cov.csv"))],
                                     **base)),
        ("full", ValidationConfig(**base)),
    ):
        run_validation(run_dir / "communes.csv", tmp_path / key, cfg, run_dir=run_dir)
    for key in ("table3", "table6"):
        tdir = tmp_path / "partial" / "tables"
        md, tex, html = ((tdir / f"{key}.{e}").read_text() for e in ("md", "tex", "html"))
        assert "[PARTIAL: without poi_mosque]" in md.splitlines()[0]  # then the synthetic-data note
        assert "Partial table: fitted without poi_mosque" in md
        assert "\\caption{" in tex and "PARTIAL: without poi\\_mosque" in tex
        assert "Partial table: fitted without poi\\_mosque" in tex
        # the standalone page's heading is the caption (the table itself carries none)
        assert "[PARTIAL: without poi_mosque]" in html.split("<table")[0]
        assert "Partial table: fitted without poi_mosque" in html.split("<tfoot>")[1]
        csv = pd.read_csv(tdir / f"{key}.csv")
        assert csv["note"].str.startswith("Partial table: fitted without poi_mosque").all()
        full = tmp_path / "full" / "tables"
        assert "PARTIAL" not in (full / f"{key}.md").read_text() + (full / f"{key}.html").read_text()
        assert pd.read_csv(full / f"{key}.csv")["note"].isna().all()
    doc = json.loads((tmp_path / "partial" / "tables.json").read_text())["tables"]["table3"]
    assert doc["omitted_controls"] == ["poi_mosque"] and doc["title"].endswith("[PARTIAL: without poi_mosque]")
    assert doc["paper_title"].startswith("Table 3:")
    # the partial table's LaTeX (caption and note row) compiles (last: skips without pdflatex)
    from tests.render.test_tables import _compile

    tex = (tmp_path / "partial" / "tables" / "table3.tex").read_text()
    _compile(tmp_path, "partial3", "\\documentclass{article}\n\\begin{document}\n" + tex + "\\end{document}\n")


def test_pipeline_poi_counts_are_the_one_source(tmp_path):
    """A run directory with poi_counts.csv (the counts cpc computed from the POI file) and a
    covariates file with other POI counts: the regressions use poi_counts.csv (statsmodels on
    its counts, z-scored over the model's sample), the covariates' POI columns are ignored and
    a note names the source; use_poi_counts: false takes the covariates' counts instead."""
    from cpc_core.config.validation_options import FiguresConfig
    from jobs.validate import run_validation

    run_dir = build_run_dir(tmp_path / "run", ("Paris", "Lyon", "Toulouse", "Nice"), 0.05, days=7, seed=5,
                            geography=False)
    table = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    cov = pd.read_csv(run_dir / "data/covariates/communes.csv", dtype={"commune": str})
    search = pd.read_csv(run_dir / "data/covariates/search_interest.csv")
    rng = np.random.default_rng(0)
    counts = pd.DataFrame({"commune": cov["commune"], **{c: rng.poisson(3.0, len(cov)) for c in POI},
                           "small_area": False})
    counts.to_csv(run_dir / "poi_counts.csv", index=False)
    assert (counts[POI].to_numpy() != cov[POI].to_numpy()).any()
    base = dict(figures=FiguresConfig(enabled=False), report=False)
    got = {}
    for key, cfg in (("pipeline", ValidationConfig(**base)), ("cov", ValidationConfig(use_poi_counts=False, **base))):
        run_validation(run_dir / "communes.csv", tmp_path / key, cfg, run_dir=run_dir)
        got[key] = json.loads((tmp_path / key / "tables.json").read_text())
    doc = got["pipeline"]
    assert doc["joins"][0]["name"] == "poi_counts.csv" and doc["joins"][0]["columns_joined"] == POI
    assert set(POI) <= set(doc["joins"][1]["columns_ignored"])
    assert any("from" in n["text"] and "poi_counts.csv" in n["text"] and "ignored" in n["text"]
               for n in doc["notes"])  # fmt: skip
    for key, source in (("pipeline", counts), ("cov", cov)):
        mixed = cov.drop(columns=POI).merge(source[["commune", *POI]], on="commune")
        ref = _sm_fit(_hand_frame(table, mixed, search), "outcome", CONTROLS + ["log_cpc_per_1000"])
        fit = next(o for o in got[key]["ols"] if o["table"] == "table3" and o["dependent"] == "outcome")
        coef = {c["term"]: c["coef"] for c in fit["coefficients"]}
        for term in (*POI, "log_cpc_per_1000"):
            assert coef[term] == pytest.approx(ref.params[term], rel=1e-7), (key, term)


def _coded_inputs(n: int = 40):
    """A commune table with real-looking codes of departments 01-09 and 69, and covariates."""
    rng = np.random.default_rng(2)
    codes = [f"0{1 + i % 9}{i:03d}" if i % 2 else f"69{i:03d}" for i in range(n)]
    table = pd.DataFrame({"commune": codes, "population": 5000, "tor": rng.lognormal(9, 1, n),
                          "web_adult": rng.lognormal(12, 1, n), "youtube": rng.lognormal(16, 1, n),
                          "rho": rng.normal(0.2, 0.05, n), "n_tiles": 5,
                          "sexual_violence_per_1000": rng.gamma(2, 1, n)})  # fmt: skip
    cov = pd.DataFrame({"commune": codes, "density": rng.lognormal(6, 1, n)})
    return table, cov


def test_lost_leading_zeros_refused_with_the_fix_or_padded():
    """Covariate codes that lost their leading zero (a spreadsheet round trip: '01004' ->
    '1004') would silently miss the join: refused naming the file, the row and the fix;
    validation.pad_codes zero-pads them and every row joins, with the same values."""
    table, cov = _coded_inputs()
    lost = cov.assign(commune=cov["commune"].str.lstrip("0"))
    n_lost = int((lost["commune"].str.len() == 4).sum())
    assert n_lost == 20
    cfg = ValidationConfig()
    with pytest.raises(InputDataError) as err:
        vs.prepare(table, cfg, covariates=[vs.CovariateInput("cov.csv", lost)])
    msg = str(err.value)
    first = lost["commune"].str.len().eq(4).idxmax()
    for frag in ("cov.csv", "20 code(s)", f"data row {first + 1}", f"-> '0{lost['commune'][first]}'",
                 "lost its leading zero", "validation.pad_codes"):
        assert frag in msg, (frag, msg)
    padded = vs.prepare(table, ValidationConfig(pad_codes=True), covariates=[vs.CovariateInput("cov.csv", lost)])
    assert padded.joins[0]["matched"] == len(table) and padded.joins[0]["unmatched_table_rows"] == 0
    np.testing.assert_allclose(padded.frame["log_pop_density"].to_numpy(), np.log(cov["density"].to_numpy()))
    assert any("zero-padded" in n.text and "cov.csv: 20 code(s)" in n.text for n in padded.notes)
    # the table itself with lost zeros (an Excel export of communes.csv), the covariates intact
    t_lost = table.assign(commune=table["commune"].str.lstrip("0"))
    with pytest.raises(InputDataError, match="table: 20 code"):
        vs.prepare(t_lost, cfg, covariates=[vs.CovariateInput("cov.csv", cov)])
    p = vs.prepare(t_lost, ValidationConfig(pad_codes=True), covariates=[vs.CovariateInput("cov.csv", cov)])
    assert sorted(p.frame.index) == sorted(table["commune"])


def test_four_digit_codes_everywhere_join_and_are_flagged():
    """Codes of 4 digits in every input (no 5-character code anywhere) join with each other:
    not an error, but a warning note says what they may be and names the setting."""
    table, cov = _coded_inputs()
    keep = [c for c in table["commune"] if c.startswith("0")]
    t4 = table[table["commune"].isin(keep)].assign(commune=lambda d: d["commune"].str[1:])
    c4 = cov[cov["commune"].isin(keep)].assign(commune=lambda d: d["commune"].str[1:])
    p = vs.prepare(t4, ValidationConfig(), covariates=[vs.CovariateInput("cov.csv", c4)])
    assert p.joins[0]["matched"] == len(t4)
    assert any(n.level == "warning" and "validation.pad_codes" in n.text for n in p.notes)


# --------------------------------------------------------------------------------------------
# The split library: plain options, the estimate's constants, table specs as data
# --------------------------------------------------------------------------------------------


def test_statistics_run_on_plain_options_without_pydantic(big_inputs, big_cfg):
    """prepare/compute/to_json take the plain ValidationOptions (jobs/ converts the model)."""
    import dataclasses

    import pydantic

    from jobs.validate import validation_options

    table, cov, search, ebl = big_inputs
    opts = validation_options(big_cfg)
    # nothing pydantic left anywhere in the options
    stack = [opts]
    while stack:
        obj = stack.pop()
        assert not isinstance(obj, pydantic.BaseModel), obj
        if dataclasses.is_dataclass(obj):
            stack.extend(getattr(obj, f.name) for f in dataclasses.fields(obj))
    p = vs.prepare(table, opts, covariates=[vs.CovariateInput("covariates.csv", cov)],
                   search_interest=search, estimates_by_lag=ebl)  # fmt: skip
    res = vs.compute(p, opts)
    h = _hand_frame(*big_inputs)
    d = h[["outcome", "log_cpc_per_1000"]].dropna()
    ref = scipy.stats.spearmanr(d["outcome"], d["log_cpc_per_1000"])
    sp = res.spearman.set_index("variable")
    assert sp.loc["log_cpc_per_1000", "rho"] == pytest.approx(ref.statistic, abs=1e-12)
    fit = res.tables["table3"].fits[1].result
    ref_fit = _sm_fit(h, "outcome", [*CONTROLS, "log_cpc_per_1000"])
    assert fit.params["log_cpc_per_1000"] == pytest.approx(ref_fit.params["log_cpc_per_1000"], rel=1e-9)
    json.dumps(vs.to_json(p, res, opts), allow_nan=False)


def test_the_estimates_constants_override_the_validations(big_inputs):
    """EstimateConstants (the run's) win over the validation's copies, which only an external
    table uses; c is recomputed from rho with the given shares and floor."""
    table, cov, search, ebl = big_inputs
    rho_only = table.drop(columns=["c", "c_floored"])
    cfg = ValidationConfig(c_floor=3e-5, search_interest=SearchInterestConfig(path="x"))
    k = vs.EstimateConstants(onion_share=0.02, csam_share=0.5, c_floor=2e-6, lag_h=0)
    p = vs.prepare(rho_only, cfg, covariates=[vs.CovariateInput("c", cov)], search_interest=search,
                   estimates_by_lag=ebl, estimate=k)  # fmt: skip
    rho = table.set_index("commune")["rho"].reindex(p.frame.index)
    expected = np.where(rho <= 0, 2e-6, 0.02 * 0.5 * rho)
    np.testing.assert_allclose(p.frame["c"], expected, rtol=1e-12)
    assert p.table_lag_h == 0 and p.estimate == k
    own = vs.EstimateConstants(c_floor=3e-5)
    used, notes = vs.effective_constants(own, ["c_floor"], k)
    assert used == k and "validation.c_floor = 3e-05 ignored" in notes[0]["text"]
    assert vs.effective_constants(own, ["c_floor"], None) == (own, [])


def test_table_rules_come_from_the_spec_not_its_key(big_inputs, big_result, big_cfg):
    """A spec under any key with compares_lags is skipped at lag 0 and labelled from its own
    templates: the fitting code names no table."""
    import dataclasses

    from cpc_core.validation.fit import fit_table

    p = big_result[0]
    t7 = next(t for t in vs.TABLES if t.key == "table7")
    renamed = dataclasses.replace(t7, key="mine", column_labels=("a", "b {lag_h:+d}"))
    res = fit_table(p, renamed, big_cfg)
    assert res.status == "ok" and res.column_labels == ("a", f"b {p.lag_h:+d}")
    at0 = dataclasses.replace(p, lag_h=0)
    assert "validation.lag_h is 0" in fit_table(at0, renamed, big_cfg).reason
    plain = dataclasses.replace(renamed, compares_lags=False, column_labels=None)
    assert fit_table(at0, plain, big_cfg).status == "ok"
