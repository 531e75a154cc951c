"""The outcome models of the validation stage (issue #15 sections 2-3) against statsmodels/PySAL.

A small validation run (four cities, commune polygons) is checked against an independent
computation on a design matrix built straight from the raw files (``_hand_frame``): the hurdle
(statsmodels Logit and OLS by hand), the count models (statsmodels Poisson, NB2, ZIP; the
Vuong statistic from its formula), Moran's I of Table 3's OLS residuals (esda.Moran with
queen weights built here) and the spatial error model (spreg). The generator's spatial-error
option is detected by the stage's Moran test and its absence is not.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from cpc_core.config.validation_options import ModelsConfig, ValidationConfig
from cpc_core.netmob import facts as netmob
from jobs import validate
from tests.validation.test_validation_stage import POI, _hand_frame, build_run_dir


@pytest.fixture(scope="module")
def run_dir(four_city_run_dir) -> Path:
    return four_city_run_dir  # Paris, Lyon, Toulouse, Nice at 5 %, 7 days (tests/conftest.py)


@pytest.fixture(scope="module")
def validated(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("validation")
    validate.run_validation(run_dir / "communes.csv", out, ValidationConfig(models=ModelsConfig(count_models=True)),
                            run_dir=run_dir)
    return out, json.loads((out / "tables.json").read_text())


@pytest.fixture(scope="module")
def hand(run_dir, validated):
    """Table 3's outcome-model sample and design, built here from the raw files."""
    _, doc = validated
    table = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    cov = pd.read_csv(run_dir / "data/covariates/communes.csv", dtype={"commune": str})
    search = pd.read_csv(run_dir / "data/covariates/search_interest.csv")
    h = _hand_frame(table, cov, search)
    h["population"] = table.set_index("commune")["population"].reindex(h.index).to_numpy(float)
    X = doc["outcome_models"]["regressors"]
    assert "log_cpc_per_1000" in X and len(X) > 10
    d = h[["outcome", "population", *X]].dropna()
    for col in POI:  # z-scores over the model's sample (the authors' scale())
        if col in X:
            d[col] = (d[col] - d[col].mean()) / d[col].std(ddof=1)
    return d, X


def _coefs(doc, model, part):
    rows = [r for r in doc["outcome_models"]["coefficients"]
            if r["model"] == model and r["part"] == part]
    return pd.DataFrame(rows).set_index("term")


def _fit_row(doc, model):
    return {r["model"]: r for r in doc["outcome_models"]["comparison"]}[model]


def test_sample_is_table3s(validated, hand):
    _, doc = validated
    d, _ = hand
    t3 = [o for o in doc["ols"] if o["table"] == "table3" and o["dependent"] == "outcome"][0]
    assert doc["outcome_models"]["nobs"] == t3["nobs"] == len(d)
    assert (d["outcome"] == 0).any() and (d["outcome"] > 0).any()
    assert doc["outcome_models"]["status"] == {"hurdle": "ok", "counts": _fit_status(doc),
                                               "spatial": "ok"}


def _fit_status(doc):
    s = doc["outcome_models"]["status"]["counts"]
    assert s.startswith("ok")
    return s


def test_hurdle_matches_statsmodels(validated, hand):
    _, doc = validated
    d, X = hand
    exog = sm.add_constant(d[X])
    logit = sm.Logit((d["outcome"] > 0).astype(float), exog).fit(disp=0, cov_type="HC0")
    got = _coefs(doc, "hurdle (linear)", "zero")
    np.testing.assert_allclose(got.loc[logit.params.index, "coef"], logit.params, rtol=1e-5)
    np.testing.assert_allclose(got.loc[logit.params.index, "se"], logit.bse, rtol=1e-4)
    pos = d.loc[d["outcome"] > 0]
    ols = sm.OLS(pos["outcome"], sm.add_constant(pos[X])).fit(cov_type="HC3", use_t=True)
    got = _coefs(doc, "hurdle (linear)", "positive")
    np.testing.assert_allclose(got.loc[ols.params.index, "coef"], ols.params, rtol=1e-7)
    np.testing.assert_allclose(got.loc[ols.params.index, "se"], ols.bse, rtol=1e-7)
    np.testing.assert_allclose(got.loc[ols.params.index, "p_value"], ols.pvalues, rtol=1e-6)
    # the whole model's likelihood: logit + Gaussian positive part (the same as OLS's llf)
    row = _fit_row(doc, "hurdle (linear)")
    assert row["llf"] == pytest.approx(logit.llf + ols.llf, rel=1e-8)
    k = 2 * (len(X) + 1) + 1
    assert row["k"] == k and row["aic"] == pytest.approx(-2 * (logit.llf + ols.llf) + 2 * k)
    # Table 6's OLS is the same model on the same rows: the same likelihood
    assert _fit_row(doc, "ols (Table 6)")["llf"] == pytest.approx(ols.llf, rel=1e-8)
    # the joint robust Wald test of the logit's slopes
    wald = logit.wald_test(np.eye(len(X) + 1)[1:], scalar=True)
    assert doc["outcome_models"]["hurdle"]["zero_wald_p"] == pytest.approx(float(wald.pvalue), rel=1e-6)


def test_count_models_match_statsmodels(validated, hand):
    from statsmodels.discrete.count_model import ZeroInflatedPoisson

    _, doc = validated
    d, X = hand
    y = (d["outcome"] * d["population"] / 1000).round().to_numpy()
    exog = sm.add_constant(d[X])
    expo = d["population"].to_numpy() / 1000
    pois = sm.Poisson(y, exog, exposure=expo).fit(disp=0, cov_type="HC0", maxiter=200)
    got = _coefs(doc, "poisson", "mean")
    np.testing.assert_allclose(got["coef"].to_numpy(), pois.params, rtol=1e-5, atol=1e-7)
    row = _fit_row(doc, "poisson")
    assert row["llf"] == pytest.approx(pois.llf, rel=1e-8)
    assert row["bic"] == pytest.approx(-2 * pois.llf + len(X + ["c"]) * math.log(len(y)), rel=1e-8)
    nb = sm.NegativeBinomial(y, exog, loglike_method="nb2", exposure=expo).fit(
        start_params=np.r_[pois.params, 0.5], disp=0, maxiter=500)
    assert _fit_row(doc, "negbin")["llf"] == pytest.approx(nb.llf, rel=1e-5)
    infl = np.ones((len(y), 1))
    zip_ = ZeroInflatedPoisson(y, exog, exog_infl=infl, inflation="logit", exposure=expo).fit(
        start_params=np.r_[0.0, pois.params], disp=0, maxiter=2000, method="bfgs")
    zr = _fit_row(doc, "zip")
    assert zr["llf"] == pytest.approx(zip_.llf, rel=1e-4)
    # Vuong's statistic from its formula (pscl's convention: sd with n - 1)
    m = zip_.model.loglikeobs(zip_.params) - pois.model.loglikeobs(pois.params)
    v = m.sum() / (math.sqrt(len(m)) * m.std(ddof=1))
    assert zr["vuong_vs"] == "poisson" and zr["vuong_stat"] == pytest.approx(v, rel=1e-3)


def test_moran_and_spatial_error_match_pysal(validated, hand, run_dir):
    import esda
    import geopandas as gpd
    import libpysal
    import spreg

    _, doc = validated
    d, X = hand
    g = gpd.read_file(run_dir / "data/geo/communes.gpkg", layer="communes").set_index("commune")
    g = g.loc[d.index]
    w = libpysal.weights.Queen.from_dataframe(g, use_index=True, silence_warnings=True)
    islands = sorted(w.islands)
    if islands:
        cent = gpd.GeoDataFrame(index=g.index, geometry=g.centroid, crs=g.crs)
        w = libpysal.weights.attach_islands(w, libpysal.weights.KNN.from_dataframe(cent, k=1, use_index=True))
    w.transform = "r"
    sp = doc["outcome_models"]["spatial"]
    assert sorted(sp["weights"]["islands"]) == islands and sp["weights"]["n"] == len(d)
    resid = sm.OLS(d["outcome"], sm.add_constant(d[X])).fit().resid.reindex(w.id_order)
    np.random.seed(0)  # noqa: NPY002 - esda draws from the global RNG
    mi = esda.Moran(resid.to_numpy(), w, permutations=999)
    assert sp["moran"]["I"] == pytest.approx(mi.I, rel=1e-9)
    assert sp["moran"]["p_sim"] == pytest.approx(mi.p_sim)
    assert sp["moran"]["p_upper"] == pytest.approx(((mi.sim >= mi.I).sum() + 1) / 1000)
    err = spreg.ML_Error(d.loc[w.id_order, ["outcome"]].to_numpy(),
                         d.loc[w.id_order, X].to_numpy(), w)
    fit = {r["model"]: r for r in sp["fit"]}
    # spreg's bounded scalar search for lambda stops at an absolute tolerance (~1e-5): the
    # stage's rows come in the polygon file's order, so the two searches end a step apart
    assert fit["error"]["spatial_param"] == pytest.approx(float(np.ravel(err.betas)[-1]), abs=1e-4)
    got = _coefs(doc, "spatial error", "mean")
    assert got.loc["log_cpc_per_1000", "coef"] == pytest.approx(
        float(np.ravel(err.betas)[1 + X.index("log_cpc_per_1000")]), rel=1e-4)


def test_tables_render_in_every_format_and_the_report_has_the_section(validated):
    out, doc = validated
    for key in ("outcome_models", "outcome_models_coefficients"):
        for ext in ("csv", "md", "tex", "html"):
            assert (out / "tables" / f"{key}.{ext}").stat().st_size > 0, (key, ext)
    csv = pd.read_csv(out / "tables" / "outcome_models.csv")
    assert list(csv["model"]) == [r["model"] for r in doc["outcome_models"]["comparison"]]
    assert "\\begin{tabular}" in (out / "tables" / "outcome_models.tex").read_text()
    md = (out / "tables" / "outcome_models.md").read_text()
    assert "hurdle (linear)" in md and "SYNTHETIC DATA" in md and "Moran's I" in md
    page = (out / "report.html").read_text()
    assert 'id="outcome_models"' in page and "Outcome models beside the paper&#39;s OLS" in page
    assert re.search(r'<p class="reading">Fitted on Table 3&#39;s outcome model .*Moran&#39;s I '
                     r'of the OLS residuals is', page)
    # the cautions point to the models and keep their warnings
    lower = page.lower()
    assert "no zero-inflated or hurdle model" in lower and "outcome models beside the paper" in lower
    assert "no spatial or multilevel model" in lower and "moran&#39;s i of table 3" in lower


def test_models_can_be_switched_off_and_missing_polygons_are_said(run_dir, tmp_path):
    cfg = ValidationConfig(models=ModelsConfig(count_models=False, hurdle=False))
    (tmp_path / "t").mkdir()
    table = pd.read_csv(run_dir / "communes.csv", dtype={"commune": str})
    table.to_csv(tmp_path / "t" / "communes.csv", index=False)  # no run folder: no polygons
    cov = run_dir / "data/covariates/communes.csv"
    search = run_dir / "data/covariates/search_interest.csv"
    cfg = cfg.model_copy(update={"covariates": ValidationConfig.model_validate(
        {"covariates": str(cov), "search_interest": str(search)}).covariates,
        "search_interest": ValidationConfig.model_validate({"search_interest": str(search)}).search_interest,
        "figures": ValidationConfig().figures.model_copy(update={"enabled": False})})
    validate.run_validation(tmp_path / "t" / "communes.csv", tmp_path / "o", cfg)
    doc = json.loads((tmp_path / "o" / "tables.json").read_text())
    om = doc["outcome_models"]
    assert om["status"]["hurdle"] == om["status"]["counts"] == "disabled"
    assert om["status"]["spatial"] == "skipped: no commune polygons (validation.geo)"
    assert any("no commune polygons" in n["text"] for n in doc["notes"])
    assert om["spatial"] is None and om["hurdle"] is None


@pytest.mark.slow
@pytest.mark.parametrize(("lam", "detected"), [(0.9, True), (0.0, False)])
def test_moran_detects_planted_spatial_errors(tmp_path, lam, detected):
    # 20 cities, ~900 communes, ~390 with a published value: the stage's Moran test of Table
    # 3's OLS residuals, seeded (generator seed 0, permutation seed 0)
    run = build_run_dir(tmp_path / "run", netmob.CITIES, 0.2, days=1, seed=0, lags=(0,),
                        spatial_errors=lam)
    cfg = ValidationConfig(models=ModelsConfig(count_models=False, hurdle=False),
                           figures=ValidationConfig().figures.model_copy(update={"enabled": False}),
                           report=False, partial_controls=True)
    validate.run_validation(run / "communes.csv", tmp_path / "out", cfg, run_dir=run)
    doc = json.loads((tmp_path / "out" / "tables.json").read_text())
    moran = doc["outcome_models"]["spatial"]["moran"]
    assert (moran["p_upper"] < 0.01) == detected, moran
    truth = json.loads((run / "data/truth/truth.json").read_text())
    assert truth["validation"]["spatial_errors"]["lambda"] == lam
