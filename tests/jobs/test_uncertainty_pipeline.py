"""The uncertainty stage of the pipeline (estimate.uncertainty): interval columns against a
plain-numpy day-block bootstrap written here, disclosure of the public table, stage caching,
and the disabled stage leaving the old table untouched."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import xarray as xr

from jobs.pipeline import run_pipeline
from tests.jobs.test_pipeline import make_cfg

DRAWS, SEED, BLOCK_DAYS, LEVEL = 200, 7, 2, 0.90
INTERVALS = ["rho_lo", "rho_hi", "c_lo", "c_hi", "cpc_lo", "cpc_hi", "cpc_per_1000_lo", "cpc_per_1000_hi",
             "p_top10", "p_top_decile"]
FILES = ("communes.csv", "validation/communes_public.csv", "run.json", "intervals_by_lag.csv")


def _unc(**over):
    return {"uncertainty": {"draws": DRAWS, "seed": SEED, "block_days": BLOCK_DAYS, "level": LEVEL, **over}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, client):
    """Five runs in one output folder: the first, the level changed, the draws changed,
    disabled, every lag.
    Each run's tables are copied aside before the next one overwrites them."""
    out = tmp_path_factory.mktemp("unc")
    snaps = {}
    for name, est in (("first", _unc()), ("level", _unc(level=0.8)), ("draws", _unc(level=0.8, draws=120)),
                      ("off", _unc(enabled=False)),
                      ("all_lags", _unc(level=0.8, all_lags=True))):
        res = run_pipeline(make_cfg(out, estimate=est), client)
        snap = out.parent / f"{out.name}-{name}"
        for f in FILES:
            if (out / f).exists():
                (snap / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(out / f, snap / f)
        snaps[name] = (snap, res["run"])
    return out, snaps


def _expanded(level: float, n_blocks: int) -> float:
    # Hesterberg (2015), written from the formula
    q = math.sqrt(n_blocks / (n_blocks - 1)) * scipy.stats.t.ppf((1 + level) / 2, n_blocks - 1)
    return 1 - 2 * scipy.stats.norm.sf(q)


def _resampled_days(n_days: int) -> np.ndarray:
    """(draws, n_days) day indices of moving-block resamples, the documented seed convention:
    SeedSequence([seed, 0]), block starts uniform in [0, n_days - block_days]."""
    rng = np.random.default_rng(np.random.SeedSequence([SEED, 0]))
    n_blocks = -(-n_days // BLOCK_DAYS)
    starts = rng.integers(0, n_days - BLOCK_DAYS + 1, size=(DRAWS, n_blocks))
    return np.stack([np.concatenate([np.arange(s, s + BLOCK_DAYS) for s in row])[:n_days] for row in starts])


def test_interval_columns_against_plain_numpy_bootstrap(runs):
    out, snaps = runs
    snap, run = snaps["first"]
    com = pd.read_csv(snap / "communes.csv").set_index("commune")
    assert all(c in com.columns for c in INTERVALS)
    ok = com[com["rho_reason"] == "OK"]
    assert len(ok) >= 10 and ok[INTERVALS[:8]].notna().all().all()
    for q in ("rho", "c", "cpc", "cpc_per_1000"):
        assert (ok[f"{q}_lo"] <= ok[f"{q}_hi"]).all(), q
    # the estimate lies inside its interval for nearly all areas (a percentile interval is not
    # centred on it, so not by construction)
    inside = (ok["rho_lo"] <= ok["rho"]) & (ok["rho"] <= ok["rho_hi"])
    assert inside.mean() >= 0.95
    # the Tor total and population are fixed, so the per-1000 interval is c's interval scaled
    scale = ok["tor"] / ok["population"] * 1000
    np.testing.assert_allclose(ok["cpc_per_1000_lo"], ok["c_lo"] * scale, rtol=1e-9)
    np.testing.assert_allclose(ok["cpc_hi"], ok["c_hi"] * ok["tor"], rtol=1e-9)

    # independent recomputation for three areas: explicit resampled series, np.corrcoef,
    # explicit Beta share draws, the floor, np.nanquantile at the expanded level
    hourly = xr.open_dataset(out / "internal/hourly.zarr", engine="zarr", consolidated=False).load()
    n_hours = hourly.sizes["hour"]
    n_days = -(-n_hours // 24)
    n_blocks = -(-n_days // BLOCK_DAYS)
    assert run["uncertainty"]["n_blocks"] == n_blocks
    ql = _expanded(LEVEL, n_blocks)
    assert run["uncertainty"]["quantile_level"] == pytest.approx(ql, abs=1e-12)
    days = _resampled_days(n_days)
    rng = np.random.default_rng(np.random.SeedSequence([SEED, 1]))
    onion = rng.beta(0.011 * 2500, (1 - 0.011) * 2500, DRAWS)
    csam = rng.beta(0.41502 * 253, (1 - 0.41502) * 253, DRAWS)
    picks = ok.sort_values("rho").index[[0, len(ok) // 2, -1]]
    for area in picks:
        # the log in the series' stored precision (float32), as section 2.6 does; pairs in float64
        wa, tor = (hourly[v].sel(area=area).values for v in ("web_adult", "tor"))
        x = np.log(np.where(wa == 0, wa.dtype.type(0.001), wa)).astype(np.float64)
        y = np.log(np.where(tor == 0, tor.dtype.type(0.001), tor)).astype(np.float64)
        rho_b = np.full(DRAWS, np.nan)
        for b in range(DRAWS):
            idx = np.concatenate([np.arange(d * 24, min((d + 1) * 24, n_hours)) for d in days[b]])
            xs, ys = x[idx], y[idx]
            keep = np.isfinite(xs) & np.isfinite(ys)
            if keep.sum() >= 168:
                rho_b[b] = np.corrcoef(xs[keep], ys[keep])[0, 1]
        lo, hi = np.nanquantile(rho_b, [(1 - ql) / 2, (1 + ql) / 2])
        assert com.loc[area, "rho_lo"] == pytest.approx(lo, abs=1e-9)
        assert com.loc[area, "rho_hi"] == pytest.approx(hi, abs=1e-9)
        raw = onion * csam * rho_b
        c_b = np.where(raw <= 0, 1e-5, raw)
        clo, chi = np.nanquantile(c_b, [(1 - ql) / 2, (1 + ql) / 2])
        assert com.loc[area, "c_lo"] == pytest.approx(clo, rel=1e-9)
        assert com.loc[area, "c_hi"] == pytest.approx(chi, rel=1e-9)


def test_rank_probabilities_and_small_areas(runs):
    _, snaps = runs
    com = pd.read_csv(snaps["first"][0] / "communes.csv")
    small, big = com[com["small_area"]], com[~com["small_area"]]
    assert small["p_top10"].isna().all() and small["p_top_decile"].isna().all()
    assert big["p_top10"].between(0, 1).all() and big["p_top_decile"].between(0, 1).all()
    # each draw puts exactly min(10, n) areas in the top 10 (ties aside): the probabilities sum to it
    assert big["p_top10"].sum() == pytest.approx(min(10, len(big)), abs=0.05)
    assert big["p_top_decile"].sum() == pytest.approx(math.ceil(0.1 * len(big)), abs=0.05)
    # the area with the highest cpc per 1000 is the likeliest top one
    assert big.loc[big["cpc_per_1000"].idxmax(), "p_top_decile"] == big["p_top_decile"].max()


def test_public_table_blanks_intervals_of_suppressed_areas(runs):
    _, snaps = runs
    snap = snaps["first"][0]
    pub = pd.read_csv(snap / "validation/communes_public.csv").set_index("commune")
    com = pd.read_csv(snap / "communes.csv").set_index("commune")
    cols = [c for c in INTERVALS if c not in ("cpc_lo", "cpc_hi")]  # counts are never published
    assert set(cols) <= set(pub.columns) and not {"cpc_lo", "cpc_hi"} & set(pub.columns)
    sup = pub["suppressed"]
    assert sup.any() and (~sup).any()
    assert pub.loc[sup, cols].isna().all().all()
    np.testing.assert_allclose(pub.loc[~sup, cols].to_numpy(float),
                               com.loc[pub.index[~sup], cols].to_numpy(float), rtol=1e-12)


def test_changing_the_level_reruns_only_the_propagation(runs):
    _, snaps = runs
    st = snaps["level"][1]["stages"]
    assert st["rollup"]["cached"] and st["uncertainty_bootstrap"]["cached"]
    assert not st["uncertainty"]["cached"]
    assert not snaps["first"][1]["stages"]["uncertainty_bootstrap"]["cached"]
    a = pd.read_csv(snaps["first"][0] / "communes.csv").set_index("commune")
    b = pd.read_csv(snaps["level"][0] / "communes.csv").set_index("commune")
    ok = a["rho_reason"] == "OK"
    width = lambda t: (t["rho_hi"] - t["rho_lo"])[ok]  # noqa: E731
    assert (width(b) <= width(a) + 1e-12).all() and (width(b) < width(a)).mean() > 0.9
    assert snaps["level"][1]["uncertainty"]["level"] == 0.8
    # the same draws: the rank probabilities do not depend on the level
    np.testing.assert_array_equal(a["p_top10"].to_numpy(), b["p_top10"].to_numpy())


def test_changing_the_draws_reruns_only_the_uncertainty_stage(runs):
    """More or fewer draws: the bootstrap and the propagation run again, nothing before them."""
    _, snaps = runs
    st = snaps["draws"][1]["stages"]
    assert not st["uncertainty_bootstrap"]["cached"] and not st["uncertainty"]["cached"]
    cached = [k for k, v in st.items() if isinstance(v, dict) and v.get("cached")]
    assert {"synth", "rollup"} <= set(cached), st
    assert snaps["draws"][1]["uncertainty"]["draws"] == 120
    b = pd.read_csv(snaps["level"][0] / "communes.csv").set_index("commune")
    c = pd.read_csv(snaps["draws"][0] / "communes.csv").set_index("commune")
    ok = b["rho_reason"] == "OK"
    assert not np.allclose(b.loc[ok, "rho_lo"], c.loc[ok, "rho_lo"])  # new draws, new ends
    pd.testing.assert_series_equal(b["rho"], c["rho"])  # the estimate itself is untouched


def test_disabled_gives_the_old_table_unchanged(runs):
    _, snaps = runs
    snap, run = snaps["off"]
    off = pd.read_csv(snap / "communes.csv", dtype=str, keep_default_na=False)
    on = pd.read_csv(snaps["first"][0] / "communes.csv", dtype=str, keep_default_na=False)
    assert not set(INTERVALS) & set(off.columns)
    assert list(off.columns) == [c for c in on.columns if c not in INTERVALS]
    pd.testing.assert_frame_equal(off, on[list(off.columns)])  # every cell, as written
    pub = pd.read_csv(snap / "validation/communes_public.csv", nrows=1)
    assert not set(INTERVALS) & set(pub.columns)
    assert run["uncertainty"] == {"enabled": False}
    assert "uncertainty" not in run["stages"] and "uncertainty_bootstrap" not in run["stages"]


def test_all_lags_table(runs):
    _, snaps = runs
    snap, run = snaps["all_lags"]
    assert not (snaps["off"][0] / "intervals_by_lag.csv").exists()
    ibl = pd.read_csv(snap / "intervals_by_lag.csv")
    lags = run["config"]["estimate"]["lags"]
    assert sorted(ibl["lag_h"].unique().tolist()) == sorted(lags)
    # the day resampling depends on the seed only: lag 0 of the sweep is the level run's table
    at0 = ibl[ibl["lag_h"] == 0].set_index("commune")
    lvl = pd.read_csv(snaps["level"][0] / "communes.csv").set_index("commune")
    np.testing.assert_allclose(at0.loc[lvl.index, INTERVALS].to_numpy(float), lvl[INTERVALS].to_numpy(float),
                               rtol=1e-12, equal_nan=True)
    # the planted lag (SYNTH lag_h=2) has the highest median interval centre
    centre = ((ibl["rho_lo"] + ibl["rho_hi"]) / 2).groupby(ibl["lag_h"]).median()
    assert centre.idxmax() == 2


def test_too_short_window_leaves_the_columns_empty_and_says_why(tmp_path, client):
    synth = {"cities": ["Nice"], "start": "2019-04-01", "days": 3, "scale": 0.005, "seed": 1, "lag_h": 0}
    from cpc_core.config.core import parse_config

    cfg = parse_config({"synth": synth, "output": {"dir": str(tmp_path)},
                        "estimate": {"lags": [0], "min_hours": 24, "uncertainty": {"draws": 50}}})
    res = run_pipeline(cfg, client)
    com = pd.read_csv(tmp_path / "communes.csv")
    assert set(INTERVALS) <= set(com.columns) and com[INTERVALS].isna().all().all()
    assert com["rho"].notna().any()  # the estimate itself is there
    unc = res["run"]["uncertainty"]
    assert unc["n_blocks"] == 2 and "at least 4" in unc["skipped"]
    assert "uncertainty_bootstrap" not in res["run"]["stages"]
    # every column of the table (the interval columns included) is in the data dictionary
    from tests.test_outputs_doc import DOC, documented_columns, sections

    doc = sections(DOC.read_text(encoding="utf-8"))
    assert set(com.columns) <= set(documented_columns(doc["communes.csv"]))
    pub = pd.read_csv(tmp_path / "validation/communes_public.csv", nrows=1)
    assert set(pub.columns) <= set(documented_columns(doc["validation/communes_public.csv"]))
