"""The per-area tables (cpc_core.estimate.areas) against hand-computed references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cpc_core.estimate import areas as area_tables


def _tables():
    lyon = pd.DataFrame({"tile_id": [1, 2, 3, 4], "area": ["a", "a", "b", "c"], "weight": [1.0, 1.0, 1.0, 0.5]})
    nice = pd.DataFrame({"tile_id": [7, 8, 9], "area": ["b", "b", "c"], "weight": [1.0, 1.0, 0.25]})
    return {"Lyon": lyon, "Nice": nice}


def test_area_city_takes_the_city_with_most_weight():
    got = area_tables.area_city(_tables())
    # a: Lyon 2; b: Lyon 1, Nice 2 -> Nice; c: Lyon 0.5, Nice 0.25 -> Lyon, 0.75 tiles
    assert got["city"].to_dict() == {"a": "Lyon", "b": "Nice", "c": "Lyon"}
    np.testing.assert_allclose(got["n_tiles"].to_numpy(dtype=float), [2.0, 3.0, 0.75])


def test_tile_cpc_weights_c_by_the_crosswalk():
    c = pd.Series({"a": 0.1, "b": 0.2, "c": 0.4})
    tot = xr.Dataset({"tor_total": ("tile_pos", [10.0, 20.0, 30.0, 40.0, 50.0]),
                      "web_adult_total": ("tile_pos", [1.0, 2.0, 3.0, 4.0, 5.0]),
                      "tile_id": ("tile_pos", [1, 4, 7, 9, 5]),
                      "city": ("tile_pos", ["Lyon", "Lyon", "Nice", "Nice", "Lyon"])})
    got = area_tables.tile_cpc(_tables(), c, tot, ["tor", "web_adult"])
    # tile 5 of Lyon is in no area: no c
    want_c = np.array([0.1, 0.5 * 0.4, 0.2, 0.25 * 0.4, np.nan])
    np.testing.assert_allclose(got["c"].values, want_c)
    np.testing.assert_allclose(got["cpc"].values, want_c * tot["tor_total"].values)
    assert "never publish" in got.attrs["warning"]


def test_published_renames_only_the_area_column_and_keeps_order():
    frame = pd.DataFrame({"x": [1], "area": ["a"], "c": [0.5]})
    out = area_tables.published(frame)
    assert out.columns.tolist() == ["x", "commune", "c"]
    assert frame.columns.tolist() == ["x", "area", "c"]  # the caller's frame is untouched


def test_with_intervals_and_flag_small():
    communes = pd.DataFrame({"area": ["a", "b", "c"]})
    unc = pd.DataFrame({"area": ["b", "a", "a"], "lag_h": [0, 0, 1], "rho_lo": [0.2, 0.1, 9.0]})
    got = area_tables.with_intervals(communes, unc, 0, ["rho_lo"])
    np.testing.assert_allclose(got["rho_lo"].to_numpy(), [0.1, 0.2, np.nan])
    flagged = area_tables.flag_small(pd.DataFrame({"area": ["a", "b", "z"]}), pd.Series({"a": False, "b": True}))
    assert flagged["small_area"].tolist() == [False, True, True]  # unknown areas count as small


def test_area_tables_columns_against_the_formula():
    rho = xr.DataArray([[0.5, 0.4], [-0.2, 0.1]], dims=("area", "lag"), coords={"area": ["a", "b"], "lag": [0, 1]})
    corr = xr.Dataset({"rho": rho, "n_hours": xr.full_like(rho, 3, dtype=np.int64),
                       "reason": xr.zeros_like(rho, dtype=np.int8)})
    totals = pd.DataFrame({"tor": [1000.0, 2000.0], "web_adult": [10.0, 20.0], "youtube": [5.0, 5.0]},
                          index=pd.Index(["a", "b"], name="area"))
    cities = pd.DataFrame({"city": ["Lyon", "Lyon"], "n_tiles": [40, 2]}, index=["a", "b"])
    facts = pd.DataFrame({"name": ["A", "B"], "population": [20000.0, 300.0]}, index=["a", "b"])
    t = area_tables.area_tables(totals, cities, facts, corr, lag_h=0, onion_share=0.5, csam_share=0.1,
                                floor=1e-5, min_population=5000, min_tiles=10)
    com = t.communes.set_index("area")
    assert com.loc["a", "c"] == pytest.approx(0.5 * 0.1 * 0.5)
    assert com.loc["b", "c"] == pytest.approx(1e-5)  # non-positive c floored
    assert com.loc["a", "cpc_per_1000"] == pytest.approx(0.025 * 1000 / 20000 * 1000)
    assert com["small_area"].to_dict() == {"a": False, "b": True}
    assert t.rho_by_lag.columns[0] == "area" and len(t.rho_by_lag) == 4
    by = t.estimates_by_lag.set_index(["area", "lag_h"])
    assert by.loc[("a", 1), "cpc"] == pytest.approx(0.5 * 0.1 * 0.4 * 1000)
    assert t.estimates_by_lag["small_area"].tolist() == [False, False, True, True]


def test_lag_summary_against_pandas_ranks():
    from cpc_core.estimate import variants

    rng = np.random.default_rng(3)
    codes = [f"a{i}" for i in range(12)]
    rbl = pd.DataFrame({"area": codes * 2, "lag_h": [0] * 12 + [1] * 12, "rho": rng.uniform(-0.5, 0.8, 24)})
    rbl.loc[3, "rho"] = np.nan
    est = rbl.assign(cpc_per_1000=rng.gamma(2.0, 1.0, 24))
    est.loc[5, "cpc_per_1000"] = 0.0  # left out: no log of 0
    com = pd.DataFrame({f"{k}_per_1000": rng.gamma(2.0, 1.0, 12) for k in ("tor", "web_adult", "youtube")},
                       index=codes)
    outcome = pd.Series(rng.normal(size=12), index=codes)
    got = variants.lag_summary("g", rbl, est, com, outcome).set_index("lag_h")
    r0 = rbl.loc[rbl["lag_h"] == 0, "rho"].dropna()
    assert got.loc[0, "n_rho"] == 11 and got.loc[0, "n_areas"] == 12
    assert got.loc[0, "rho_median"] == pytest.approx(np.median(r0))
    assert got.loc[0, "rho_sd"] == pytest.approx(np.std(r0, ddof=1))
    e0 = est[est["lag_h"] == 0].set_index("area")
    ok = e0["cpc_per_1000"] > 0
    x, y = np.log(e0.loc[ok, "cpc_per_1000"]), outcome[e0.index[ok]]
    want = np.corrcoef(x.rank(), y.rank())[0, 1]  # Spearman = Pearson of the ranks
    assert got.loc[0, "spearman_cpc"] == pytest.approx(want)
    assert got.loc[0, "n_outcome"] == 12  # the last measure (youtube): every area
    assert got.loc[1, "spearman_tor"] == pytest.approx(
        np.corrcoef(np.log(com["tor_per_1000"]).rank(), outcome.rank())[0, 1])
