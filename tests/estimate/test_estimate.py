"""Tests for cpc_core.estimate.cpc: hand computations and the paper's published numbers."""

from __future__ import annotations

import logging

import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from cpc_core.estimate.cpc import (
    C_FLOOR,
    CSAM_SHARE,
    ESTIMATE_COLUMNS,
    GLOBAL_SHARE,
    ONION_SHARE,
    correction_factor,
    estimate,
    estimate_by_lag,
)
from tests import raise_if_dask_computes


@pytest.fixture
def totals() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "commune": ["75056", "69123", "13055", "38185", "59350"],
            "city": ["Paris", "Lyon", "Marseille", "Grenoble", "Lille"],
            "population": [2_100_000, 0, 870_000, np.nan, 230_000],
            "tor": [4.0e9, 2.0e8, 1.0e8, 5.0e6, 0.0],
            "web_adult": [9.0e10, 3.0e9, 2.0e9, 1.0e8, 4.0e9],
            "youtube": [5.0e12, 3.0e11, 1.5e11, 8.0e9, 2.0e11],
        }
    )


@pytest.fixture
def rho() -> pd.Series:
    # Lille has rho but Paris' neighbour "92012" is not in totals; Grenoble has no rho.
    return pd.Series(
        [0.1649, -0.0493, 0.4971, 0.2, 0.0],
        index=["75056", "69123", "13055", "92012", "59350"],
    )


# ---------------------------------------------------------------------------------------------
# constants and correction factor
# ---------------------------------------------------------------------------------------------


def test_global_share_is_the_papers_019_percent():
    assert GLOBAL_SHARE == pytest.approx(0.011 * 0.41705 * 0.41502)
    assert round(GLOBAL_SHARE * 100, 2) == 0.19


def test_correction_factor_paper_numbers():
    # Table 1: mean rho 0.1649 -> mean c 0.0008 (c is linear in rho); max rho 0.4971 -> 0.002.
    c, floored = correction_factor(0.1649)
    assert c == pytest.approx(0.011 * 0.41502 * 0.1649)
    assert c == pytest.approx(0.00075, abs=5e-6) and round(c, 4) == 0.0008
    assert not floored
    assert round(correction_factor(0.4971)[0], 3) == 0.002
    # rho_j,0: the correlation the floor stands for.
    assert C_FLOOR / (ONION_SHARE * CSAM_SHARE) == pytest.approx(0.00219, abs=5e-6)


def test_correction_factor_floor_and_nan_numpy():
    rho = np.array([-0.0493, 0.0, 1e-9, np.nan, 0.3])
    c, floored = correction_factor(rho)
    np.testing.assert_array_equal(floored, [True, True, False, False, False])
    np.testing.assert_allclose(
        c, [1e-5, 1e-5, 0.011 * 0.41502 * 1e-9, np.nan, 0.011 * 0.41502 * 0.3], rtol=1e-15
    )
    c, _ = correction_factor(rho, onion_share=0.02, csam_share=0.5, floor=1e-4)
    np.testing.assert_allclose(c, [1e-4, 1e-4, 1e-11, np.nan, 0.003], rtol=1e-12)


def test_correction_factor_keeps_pandas_and_xarray_types():
    series = pd.Series([0.2, -0.1, np.nan], index=["a", "b", "c"])
    c, floored = correction_factor(series)
    assert isinstance(c, pd.Series) and c.index.equals(series.index)
    assert floored.tolist() == [False, True, False]
    da = xr.DataArray([[0.2, -0.1]], dims=("area", "lag")).chunk()
    with raise_if_dask_computes():
        c_da, floored_da = correction_factor(da)
    assert isinstance(c_da.data, dsa.Array)
    np.testing.assert_allclose(c_da.values, [[0.011 * 0.41502 * 0.2, 1e-5]])
    assert floored_da.values.tolist() == [[False, True]]


@pytest.mark.parametrize(
    "kwargs", [{"onion_share": 0.0}, {"csam_share": 1.5}, {"floor": 0.0}, {"floor": np.nan}]
)
def test_correction_factor_rejects_bad_constants(kwargs):
    with pytest.raises(ValueError):
        correction_factor(0.1, **kwargs)


# ---------------------------------------------------------------------------------------------
# estimate (pandas)
# ---------------------------------------------------------------------------------------------


def test_estimate_by_hand(totals, rho, caplog):
    with caplog.at_level(logging.INFO, logger="cpc_core.estimate.cpc"):
        out = estimate(totals, rho)
    assert list(out.columns) == [*ESTIMATE_COLUMNS, "c_floored"]
    assert out["commune"].tolist() == totals["commune"].tolist()
    k = 0.011 * 0.41502
    paris = out.iloc[0]
    assert paris["c"] == pytest.approx(k * 0.1649)
    assert paris["cpc"] == pytest.approx(k * 0.1649 * 4.0e9)
    assert paris["cpc_per_1000"] == pytest.approx(k * 0.1649 * 4.0e9 / 2_100_000 * 1000)
    assert paris["tor_per_1000"] == pytest.approx(4.0e9 / 2_100_000 * 1000)
    assert paris["web_adult_per_1000"] == pytest.approx(9.0e10 / 2_100_000 * 1000)
    assert paris["youtube_per_1000"] == pytest.approx(5.0e12 / 2_100_000 * 1000)
    # Lyon: negative rho floored; population 0 -> NaN rates, no inf.
    lyon = out.iloc[1]
    assert lyon["c"] == 1e-5 and lyon["c_floored"] and lyon["cpc"] == pytest.approx(2000.0)
    assert np.isnan(lyon[["cpc_per_1000", "tor_per_1000", "youtube_per_1000"]].astype(float)).all()
    # Grenoble: no rho -> NaN c and cpc, not floored; NaN population -> NaN rates.
    grenoble = out.iloc[3]
    assert np.isnan(grenoble["rho"]) and np.isnan(grenoble["cpc"]) and not grenoble["c_floored"]
    assert np.isnan(grenoble["tor_per_1000"])
    # Lille: rho == 0 floored too; zero Tor gives zero cpc.
    assert out.iloc[4]["c_floored"] and out.iloc[4]["cpc"] == 0.0
    # population is Int64 here (a missing one): <NA> becomes NaN, never inf
    assert not np.isinf(out.select_dtypes("number").astype(np.float64).to_numpy()).any()
    messages = caplog.text
    assert "1 communes have no rho" in messages
    assert "2 communes with missing or non-positive population" in messages
    assert "2 communes with c <= 0 floored" in messages
    assert "1 rho values belong to communes absent" in messages


def test_estimate_accepts_commune_index_and_population_name(totals, rho):
    expected = estimate(totals, rho)
    other = totals.rename(columns={"population": "pop_legal"}).set_index("commune")
    got = estimate(other, rho, population="pop_legal")
    pd.testing.assert_frame_equal(got, expected)


def test_estimate_is_pure(totals, rho):
    before_totals, before_rho = totals.copy(), rho.copy()
    estimate(totals, rho)
    pd.testing.assert_frame_equal(totals, before_totals)
    pd.testing.assert_series_equal(rho, before_rho)


def test_estimate_constants_are_parameters(totals, rho):
    out = estimate(totals, rho, onion_share=0.02, csam_share=0.5, floor=1e-3)
    assert out["c"].iloc[0] == pytest.approx(0.01 * 0.1649)
    assert out["c"].iloc[1] == 1e-3


def test_estimate_rejects_bad_input(totals, rho):
    with pytest.raises(ValueError, match="lacks the columns"):
        estimate(totals.drop(columns="youtube"), rho)
    with pytest.raises(ValueError, match="duplicate communes"):
        estimate(pd.concat([totals, totals.iloc[:1]]), rho)
    with pytest.raises(ValueError, match="duplicate communes"):
        estimate(totals, pd.concat([rho, rho.iloc[:1]]))
    with pytest.raises(ValueError, match="negative"):
        estimate(totals.assign(tor=-totals["tor"]), rho)
    with pytest.raises(ValueError, match="commune"):
        estimate(totals.drop(columns="commune"), rho)
    with pytest.raises(TypeError):
        estimate(totals, rho.to_numpy())


# ---------------------------------------------------------------------------------------------
# estimate_by_lag (xarray)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def lagged(totals, rho):
    communes = totals["commune"].to_numpy()
    rho0 = rho.reindex(communes).to_numpy()
    rho_lag = xr.DataArray(
        np.stack([rho0, rho0 / 2, -np.abs(rho0)], axis=-1),
        dims=("commune", "lag"),
        coords={"commune": communes, "lag": [0, 2, -2]},
    )
    tor = xr.DataArray(totals["tor"].to_numpy(), dims="commune", coords={"commune": communes})
    pop = xr.DataArray(
        totals["population"].to_numpy(), dims="commune", coords={"commune": communes}
    )
    return tor, rho_lag, pop


def test_estimate_by_lag_matches_pandas_per_lag(totals, lagged):
    tor, rho_lag, pop = lagged
    ds = estimate_by_lag(tor, rho_lag, pop)
    assert ds.cpc.dims == ("commune", "lag")
    for lag in rho_lag.lag.values:
        rho_series = rho_lag.sel(lag=lag).to_series()
        table = estimate(totals, rho_series)
        at = ds.sel(lag=lag)
        np.testing.assert_allclose(at.c.values, table["c"], rtol=1e-15)
        np.testing.assert_allclose(at.cpc.values, table["cpc"], rtol=1e-15)
        np.testing.assert_allclose(at.cpc_per_1000.values, table["cpc_per_1000"], rtol=1e-15)
        np.testing.assert_array_equal(at.c_floored.values, table["c_floored"])


def test_estimate_by_lag_by_hand(totals, lagged):
    """c_j, cpc and cpc per 1000 at every lag from the paper's formulas written out here:
    c = 0.011 x 0.41502 x rho, replaced by 1e-5 where <= 0, NaN where rho is NaN;
    cpc = c x Tor; per 1000 = cpc / population x 1000, NaN for a population <= 0 or NaN."""
    tor, rho_lag, pop = lagged
    ds = estimate_by_lag(tor, rho_lag, pop)
    for lag in rho_lag.lag.values:
        r = rho_lag.sel(lag=lag).values
        raw = 0.011 * 0.41502 * r
        floored = np.isfinite(raw) & (raw <= 0)
        c = np.where(floored, 1e-5, raw)
        cpc = c * totals["tor"].to_numpy()
        p = totals["population"].to_numpy(dtype=float)
        per_1000 = np.where(p > 0, cpc / np.where(p > 0, p, 1.0) * 1000.0, np.nan)
        at = ds.sel(lag=lag)
        np.testing.assert_allclose(at.c.values, c, rtol=1e-14)
        np.testing.assert_allclose(at.cpc.values, cpc, rtol=1e-14)
        np.testing.assert_allclose(at.cpc_per_1000.values, per_1000, rtol=1e-14)
        np.testing.assert_array_equal(at.c_floored.values, floored)
    assert ds.c_floored.values.any() and np.isnan(ds.cpc_per_1000.values).any()


def test_estimate_by_lag_numpy_and_dask_identical_and_lazy(lagged):
    tor, rho_lag, pop = lagged
    expected = estimate_by_lag(tor, rho_lag, pop)
    with raise_if_dask_computes():
        lazy = estimate_by_lag(tor.chunk(commune=2), rho_lag.chunk(commune=2), pop.chunk())
    assert isinstance(lazy.cpc.data, dsa.Array)
    xr.testing.assert_identical(lazy.compute(), expected)


def test_estimate_by_lag_rejects_misaligned(lagged):
    tor, rho_lag, pop = lagged
    with pytest.raises(ValueError, match="area coordinates"):
        estimate_by_lag(tor.isel(commune=slice(1, None)), rho_lag, pop)
    with pytest.raises(TypeError):
        estimate_by_lag(tor.values, rho_lag, pop)
