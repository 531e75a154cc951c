"""Tests for cpc_core.estimate.correlation: kernel against scipy / pandas, wrapper on numpy and dask."""

from __future__ import annotations

import dask.array as dsa
import hypothesis.extra.numpy as hnp
import numpy as np
import pandas as pd
import pytest
import scipy.stats
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from cpc_core.estimate.correlation import (
    CorrelationStatus,
    _lagged_pearson,
    best_lag,
    lagged_correlation,
    transform,
)
from tests import raise_if_dask_computes

LAGS = np.arange(-6, 7)


# ---------------------------------------------------------------------------------------------
# helpers and fixtures
# ---------------------------------------------------------------------------------------------


def _traffic(rng: np.random.Generator, shape: tuple[int, ...], p_zero: float, p_nan: float):
    values = rng.lognormal(mean=8.0, sigma=2.0, size=shape)
    values[rng.random(shape) < p_zero] = 0.0
    values[rng.random(shape) < p_nan] = np.nan
    return values


@pytest.fixture
def traffic_pair() -> tuple[np.ndarray, np.ndarray]:
    """(web_adult, tor) traffic, 7 areas x 240 hours, with zeros, NaN holes and an outage day."""
    rng = np.random.default_rng(42)
    web_adult = _traffic(rng, (7, 240), p_zero=0.05, p_nan=0.05)
    tor = _traffic(rng, (7, 240), p_zero=0.3, p_nan=0.05)
    # Tor partly follows Web_Adult one hour later, so the lags are not all ~0.
    tor[:, 1:] += 0.5 * np.nan_to_num(web_adult[:, :-1])
    web_adult[:, 100:124] = np.nan
    return web_adult, tor


@pytest.fixture
def traffic_da(traffic_pair) -> tuple[xr.DataArray, xr.DataArray]:
    web_adult, tor = traffic_pair
    coords = {
        "area": [f"a{i}" for i in range(web_adult.shape[0])],
        "hour": pd.date_range("2019-03-16", periods=web_adult.shape[1], freq="h"),
    }
    return (
        xr.DataArray(web_adult, dims=("area", "hour"), coords=coords, name="Web_Adult"),
        xr.DataArray(tor, dims=("area", "hour"), coords=coords, name="Tor"),
    )


def _pairs(x: np.ndarray, y: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (x[t], y[t + lag]) with both finite, built the obvious way."""
    t = np.arange(x.size)
    t = t[(t + lag >= 0) & (t + lag < y.size)]
    a, b = x[t], y[t + lag]
    ok = np.isfinite(a) & np.isfinite(b)
    return a[ok], b[ok]


# ---------------------------------------------------------------------------------------------
# transform
# ---------------------------------------------------------------------------------------------


def test_transform_log_replaces_exact_zeros_and_keeps_nan():
    out = transform(np.array([0.0, 1.0, np.e, np.nan, 1e-9]))
    np.testing.assert_allclose(out[:3], [np.log(0.001), 0.0, 1.0])
    assert np.isnan(out[3])
    assert out[4] == pytest.approx(np.log(1e-9))  # only *exact* zeros are replaced


def test_transform_zero_value_and_identity():
    x = np.array([0.0, 2.0])
    np.testing.assert_allclose(transform(x, zero_value=0.5), np.log([0.5, 2.0]))
    assert transform(x, kind="none") is x


def test_transform_dtypes():
    assert transform(np.ones(3, np.float32)).dtype == np.float32
    assert transform(np.ones(3, np.int64)).dtype == np.float64


def test_transform_rejects_negative_and_bad_arguments():
    with pytest.raises(ValueError, match="negative"):
        transform(np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="kind"):
        transform(np.ones(2), kind="sqrt")
    with pytest.raises(ValueError, match="zero_value"):
        transform(np.ones(2), zero_value=0.0)


def test_transform_dask_is_lazy_and_raises_at_compute():
    x = xr.DataArray(dsa.from_array(np.array([1.0, -1.0, 0.0]), chunks=2), dims="hour")
    with raise_if_dask_computes():
        out = transform(x)
        raw = transform(x.data)
    assert isinstance(out.data, dsa.Array) and isinstance(raw, dsa.Array)
    with pytest.raises(ValueError, match="negative"):
        out.compute()


# ---------------------------------------------------------------------------------------------
# kernel
# ---------------------------------------------------------------------------------------------


def test_kernel_matches_scipy_pearsonr(traffic_pair):
    x, y = (transform(v) for v in traffic_pair)
    rho, n, reason = _lagged_pearson(x, y, LAGS, min_pairs=10)
    assert rho.shape == n.shape == reason.shape == (x.shape[0], LAGS.size)
    assert rho.dtype == np.float64 and n.dtype == np.int64 and reason.dtype == np.int8
    for i in range(x.shape[0]):
        for k, lag in enumerate(LAGS):
            a, b = _pairs(x[i], y[i], int(lag))
            assert n[i, k] == a.size
            expected = scipy.stats.pearsonr(a, b).statistic
            assert rho[i, k] == pytest.approx(expected, abs=1e-12)
    assert (reason == CorrelationStatus.OK).all()


def test_kernel_matches_pandas_series_corr(traffic_pair):
    x, y = (transform(v) for v in traffic_pair)
    rho, _, _ = _lagged_pearson(x, y, LAGS, min_pairs=10)
    for i in range(x.shape[0]):
        for k, lag in enumerate(LAGS):
            # shift(-lag) puts y[t + lag] at t; Series.corr drops pairs with a NaN.
            expected = pd.Series(x[i]).corr(pd.Series(y[i]).shift(-int(lag)))
            assert rho[i, k] == pytest.approx(expected, abs=1e-12)


def test_kernel_lag_convention():
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    y = np.roll(x, 3)  # y[t + 3] == x[t]: Tor three hours after Web_Adult
    rho, n, _ = _lagged_pearson(x, y, np.array([3, -3, 0]), min_pairs=2)
    assert rho[0] == pytest.approx(1.0)
    assert n.tolist() == [47, 47, 50]
    assert abs(rho[1]) < 0.5


def test_kernel_reason_codes():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(5, 30))
    x = noise.copy()
    y = noise[::-1].copy()
    x[0, 5:] = np.nan  # too few pairs
    x[1] = 2.0  # constant Web_Adult
    y[2] = -1.0  # constant Tor
    x[3] = 0.5  # both constant: the first reason wins
    y[3] = 0.5
    rho, n, reason = _lagged_pearson(x, y, np.array([0]), min_pairs=10)
    assert reason[:, 0].tolist() == [
        CorrelationStatus.TOO_FEW_PAIRS,
        CorrelationStatus.CONSTANT_X,
        CorrelationStatus.CONSTANT_Y,
        CorrelationStatus.CONSTANT_X,
        CorrelationStatus.OK,
    ]
    assert np.isnan(rho[:4, 0]).all() and np.isfinite(rho[4, 0])
    assert n[:, 0].tolist() == [5, 30, 30, 30, 30]


def test_kernel_constant_only_on_the_paired_hours():
    # x varies overall but is constant where y is finite: constant *over the pairs*.
    x = np.r_[np.full(20, 3.0), np.arange(5.0)]
    y = np.r_[np.arange(20.0), np.full(5, np.nan)]
    _, n, reason = _lagged_pearson(x, y, np.array([0]), min_pairs=2)
    assert n[0] == 20 and reason[0] == CorrelationStatus.CONSTANT_X


def test_kernel_lag_longer_than_series_and_empty_input():
    rho, n, reason = _lagged_pearson(np.ones((2, 4)), np.ones((2, 4)), np.array([5]), 2)
    assert (n == 0).all() and (reason == CorrelationStatus.TOO_FEW_PAIRS).all()
    assert np.isnan(rho).all()
    rho, n, reason = _lagged_pearson(np.empty((0, 3)), np.empty((0, 3)), LAGS, 2)
    assert rho.shape == (0, LAGS.size)


def test_kernel_float32_input_and_leading_dims(traffic_pair):
    x, y = (transform(v) for v in traffic_pair)
    rho64, _, _ = _lagged_pearson(x, y, LAGS, 10)
    rho32, _, _ = _lagged_pearson(x.astype(np.float32), y.astype(np.float32), LAGS, 10)
    assert rho32.dtype == np.float64
    np.testing.assert_allclose(rho32, rho64, atol=1e-5)
    rho3d, _, _ = _lagged_pearson(x.reshape(7, 1, -1), y.reshape(7, 1, -1), LAGS, 10)
    np.testing.assert_array_equal(rho3d[:, 0], rho64)


def test_kernel_is_stable_for_large_offsets():
    # Log traffic sits around 15-20 with a spread of ~1; the centred sums must not cancel.
    rng = np.random.default_rng(3)
    x = 1e6 + rng.normal(size=500)
    y = 1e6 + 0.6 * x + rng.normal(size=500)
    rho, _, _ = _lagged_pearson(x, y, np.array([0]), 2)
    assert rho[0] == pytest.approx(scipy.stats.pearsonr(x, y).statistic, abs=1e-10)


# ---------------------------------------------------------------------------------------------
# properties (hypothesis)
# ---------------------------------------------------------------------------------------------


@st.composite
def _series_pair(draw) -> tuple[np.ndarray, np.ndarray, int]:
    """Two short integer-valued series with NaN holes and a lag within the series."""
    n_hours = draw(st.integers(3, 40))
    xy = draw(hnp.arrays(np.int64, (2, n_hours), elements=st.integers(-20, 20))).astype(float)
    xy[draw(hnp.arrays(np.bool_, (2, n_hours)))] = np.nan
    lag = draw(st.integers(-n_hours + 1, n_hours - 1))
    return xy[0], xy[1], lag


_SWAP = {0: 0, 1: 1, 2: 3, 3: 2}


@settings(max_examples=300, deadline=None)
@given(_series_pair())
def test_property_symmetry(pair):
    x, y, lag = pair
    r1, n1, why1 = _lagged_pearson(x, y, np.array([lag]), 2)
    r2, n2, why2 = _lagged_pearson(y, x, np.array([-lag]), 2)
    assert n1[0] == n2[0]
    np.testing.assert_allclose(r1, r2, atol=1e-12)
    if why1[0] == CorrelationStatus.CONSTANT_X and why2[0] == CorrelationStatus.CONSTANT_X:
        return  # both constant: each call reports its own x first
    assert _SWAP[int(why1[0])] == int(why2[0])


@settings(max_examples=300, deadline=None)
@given(_series_pair(), st.integers(0, 12))
def test_property_time_shift(pair, shift):
    # Delay Tor by `shift` hours inside a longer window: the same pairs appear at lag + shift.
    x, y, lag = pair
    pad = np.full(shift, np.nan)
    r1, n1, why1 = _lagged_pearson(x, y, np.array([lag]), 2)
    r2, n2, why2 = _lagged_pearson(np.r_[x, pad], np.r_[pad, y], np.array([lag + shift]), 2)
    assert (n1[0], why1[0]) == (n2[0], why2[0])
    np.testing.assert_allclose(r1, r2, atol=1e-12)


@settings(max_examples=300, deadline=None)
@given(
    _series_pair(),
    st.sampled_from([-3.0, -0.5, 0.25, 2.0]),
    st.floats(-100, 100),
    st.sampled_from([-2.0, 0.5, 4.0]),
    st.floats(-100, 100),
)
def test_property_affine_invariance(pair, a, b, c, d):
    x, y, lag = pair
    r1, n1, why1 = _lagged_pearson(x, y, np.array([lag]), 2)
    r2, n2, why2 = _lagged_pearson(a * x + b, c * y + d, np.array([lag]), 2)
    assert (n1[0], why1[0]) == (n2[0], why2[0])
    np.testing.assert_allclose(r2, np.sign(a * c) * r1, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(_series_pair())
def test_property_matches_scipy(pair):
    x, y, lag = pair
    rho, n, why = _lagged_pearson(x, y, np.array([lag]), 2)
    a, b = _pairs(x, y, lag)
    assert n[0] == a.size
    if why[0] == CorrelationStatus.OK:
        assert -1.0 <= rho[0] <= 1.0
        assert rho[0] == pytest.approx(scipy.stats.pearsonr(a, b).statistic, abs=1e-9)
    else:
        assert np.isnan(rho[0])
        assert a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0


# ---------------------------------------------------------------------------------------------
# xarray wrapper
# ---------------------------------------------------------------------------------------------


def test_wrapper_matches_kernel(traffic_da):
    web_adult, tor = traffic_da
    ds = lagged_correlation(web_adult, tor, min_pairs=10)
    rho, n, reason = _lagged_pearson(
        transform(web_adult.values), transform(tor.values), LAGS, min_pairs=10
    )
    assert ds.rho.dims == ("area", "lag")
    assert ds.lag.values.tolist() == LAGS.tolist()
    assert ds.area.values.tolist() == web_adult.area.values.tolist()
    np.testing.assert_array_equal(ds.rho.values, rho)
    np.testing.assert_array_equal(ds.n_hours.values, n)
    np.testing.assert_array_equal(ds.reason.values, reason)
    assert ds.reason.attrs["flag_values"] == [0, 1, 2, 3]
    assert ds.attrs["min_pairs"] == 10


@pytest.mark.parametrize("min_pairs", [10, 200])
def test_wrapper_matches_plain_numpy_per_area_per_lag(traffic_da, min_pairs):
    """The public statistic against an independent computation, not against its kernel:
    log with exact zeros replaced by 0.001 (the paper), then per area and lag np.corrcoef of
    log WA(t) and log Tor(t + lag) over the hours where both are finite; fewer than
    ``min_pairs`` such hours give NaN."""
    web_adult, tor = traffic_da
    ds = lagged_correlation(web_adult, tor, min_pairs=min_pairs)
    lx = np.log(np.where(web_adult.values == 0, 0.001, web_adult.values))
    ly = np.log(np.where(tor.values == 0, 0.001, tor.values))
    n_hours = lx.shape[1]
    n_nan = 0
    for i, area in enumerate(ds.area.values):
        for lag in ds.lag.values:
            lag = int(lag)
            t = np.arange(max(0, -lag), min(n_hours, n_hours - lag))
            a, b = lx[i, t], ly[i, t + lag]
            ok = np.isfinite(a) & np.isfinite(b)
            got = ds.sel(area=area, lag=lag)
            assert int(got.n_hours) == ok.sum()
            if ok.sum() < min_pairs:
                assert np.isnan(float(got.rho))
                n_nan += 1
            else:
                assert float(got.rho) == pytest.approx(np.corrcoef(a[ok], b[ok])[0, 1], abs=1e-12)
    assert (n_nan > 0) == (min_pairs == 200)  # the rule was exercised where intended


def test_wrapper_numpy_and_dask_identical(traffic_da):
    web_adult, tor = traffic_da
    expected = lagged_correlation(web_adult, tor, min_pairs=10)
    # Chunked along hour too: the wrapper must merge hour into one chunk.
    chunks = {"area": 3, "hour": 50}
    with raise_if_dask_computes():
        lazy = lagged_correlation(web_adult.chunk(chunks), tor.chunk(chunks), min_pairs=10)
    assert isinstance(lazy.rho.data, dsa.Array)
    assert lazy.rho.chunks == ((3, 3, 1), (LAGS.size,))
    xr.testing.assert_identical(lazy.compute(), expected)


def test_wrapper_builds_graph_without_computing(traffic_da):
    web_adult, tor = traffic_da
    with raise_if_dask_computes() as scheduler:
        ds = lagged_correlation(web_adult.chunk(area=2), tor.chunk(area=2), lags=[0, 2])
        best = best_lag(ds.rho)
    assert scheduler.total_computes == 0
    assert isinstance(best.data, dsa.Array)


def test_raise_if_dask_computes_catches_a_compute():
    with pytest.raises(RuntimeError, match="too many dask computations"):
        with raise_if_dask_computes():
            dsa.ones(3, chunks=1).sum().compute()


def test_wrapper_area_dims_any_order_and_mixed_backends(traffic_da):
    web_adult, tor = traffic_da
    expected = lagged_correlation(web_adult, tor, min_pairs=10)
    got = lagged_correlation(web_adult.transpose("hour", "area"), tor.chunk(area=4), min_pairs=10)
    xr.testing.assert_identical(got.compute(), expected)


def test_wrapper_transform_none_on_pre_logged_input(traffic_da):
    web_adult, tor = traffic_da
    expected = lagged_correlation(web_adult, tor, min_pairs=10)
    got = lagged_correlation(transform(web_adult), transform(tor), transform="none", min_pairs=10)
    xr.testing.assert_allclose(got.rho, expected.rho)


def test_wrapper_rejects_bad_input(traffic_da):
    web_adult, tor = traffic_da
    with pytest.raises(ValueError, match="identical coordinates"):
        lagged_correlation(web_adult, tor.assign_coords(hour=tor.hour + pd.Timedelta("1h")))
    with pytest.raises(ValueError, match="regular"):
        keep = np.r_[0:50, 60:240]
        lagged_correlation(web_adult.isel(hour=keep), tor.isel(hour=keep))
    with pytest.raises(ValueError, match="no dimension"):
        lagged_correlation(web_adult.rename(hour="time"), tor.rename(hour="time"))
    with pytest.raises(ValueError, match="distinct"):
        lagged_correlation(web_adult, tor, lags=[0, 0])
    with pytest.raises(ValueError, match="integers"):
        lagged_correlation(web_adult, tor, lags=[0.5])
    with pytest.raises(ValueError, match="min_pairs"):
        lagged_correlation(web_adult, tor, min_pairs=1)
    with pytest.raises(TypeError):
        lagged_correlation(web_adult.values, tor)


def test_planted_correlation_is_recovered():
    """Tor follows Web_Adult two hours later with a known correlation of the logs."""
    rng = np.random.default_rng(7)
    n_areas, n_hours, true_rho = 40, 1848, 0.3
    log_wa = rng.normal(10.0, 1.0, size=(n_areas, n_hours))
    noise = rng.normal(size=(n_areas, n_hours)) * np.sqrt(1 - true_rho**2) / true_rho
    log_tor = 5.0 + np.roll(log_wa, 2, axis=-1) + noise  # log_tor[t + 2] ~ log_wa[t]
    dims = ("area", "hour")
    ds = lagged_correlation(
        xr.DataArray(np.exp(log_wa), dims=dims), xr.DataArray(np.exp(log_tor), dims=dims)
    )
    at_two = ds.rho.sel(lag=2)
    assert float(at_two.mean()) == pytest.approx(true_rho, abs=0.01)
    assert float(np.abs(ds.rho.drop_sel(lag=2)).max()) < 0.1  # iid hours: other lags ~0
    assert float(best_lag(ds.rho)) == 2.0
    assert float(best_lag(ds.rho.chunk(area=10), how="mean").compute()) == 2.0


# ---------------------------------------------------------------------------------------------
# best_lag
# ---------------------------------------------------------------------------------------------


def test_best_lag_summary_and_ties():
    rho = xr.DataArray(
        [[0.1, 0.3, 0.2], [0.0, 0.2, 0.4], [0.1, 0.1, -2.0]],
        dims=("area", "lag"),
        coords={"lag": [-1, 0, 1]},
    )
    assert float(best_lag(rho)) == 0.0  # medians 0.1, 0.2, 0.2: tie -> smallest |lag|
    assert float(best_lag(rho, how="mean")) == 0.0
    flat = xr.DataArray(np.ones((2, 5)), dims=("area", "lag"), coords={"lag": [-2, -1, 0, 1, 2]})
    assert float(best_lag(flat)) == 0.0
    edge = flat.sel(lag=[-2, -1, 1, 2])
    assert float(best_lag(edge)) == -1.0
    assert np.isnan(float(best_lag(xr.full_like(flat, np.nan))))
    with pytest.raises(ValueError, match="how"):
        best_lag(rho, how="max")
