"""Tests of cpc_core.estimate.uncertainty: block bootstrap of rho, share draws, propagation.

References are independent: planted correlations, np.corrcoef on explicitly resampled pairs,
scipy's Beta and normal distributions, and by-hand quantiles.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import xarray as xr

from cpc_core.estimate import uncertainty as U
from cpc_core.estimate.correlation import lagged_correlation, transform
from cpc_core.estimate.cpc import CSAM_SHARE, ONION_SHARE
from cpc_core.netmob import facts as netmob
from cpc_core.synth import generator as synth
from tests import raise_if_dask_computes


def _ar1(rng, shape, phi):
    e = rng.standard_normal(shape)
    out = np.empty(shape)
    out[:, 0] = e[:, 0]
    for t in range(1, shape[1]):
        out[:, t] = phi * out[:, t - 1] + np.sqrt(1 - phi**2) * e[:, t]
    return out


def _simulate(n_areas: int, days: int, seed: int):
    """Daily cycle + AR(1) noise; corr(log WA, log Tor) = rho by construction.

    z is log WA standardised by its *population* mean and sd (profile mean, profile variance
    + noise variance), so log Tor = 0.9 (rho z + sqrt(1 - rho^2) e), e independent of z,
    has correlation rho with log WA: rho is the true parameter, not a sample statistic.
    """
    rng = np.random.default_rng(seed)
    hour = np.arange(days * 24) % 24 + 0.5
    prof = np.log(0.15 + 0.85 * np.exp(-0.5 * ((hour - 21.5) / 3.2) ** 2)
                  + 0.45 * np.clip((hour - 6) / 14, 0, 1))
    rho = np.clip(rng.normal(0.165, 0.075, n_areas), -0.06, 0.55)
    lwa = prof[None, :] + 0.35 * _ar1(rng, (n_areas, days * 24), 0.6)
    z = (lwa - prof.mean()) / np.sqrt(prof.var() + 0.35**2)
    e = _ar1(rng, (n_areas, days * 24), 0.3)
    ltor = 0.9 * (rho[:, None] * z + np.sqrt(1 - rho[:, None] ** 2) * e)
    return rho, np.exp(lwa), np.exp(ltor)


def _coverage(rho_true, web_adult, tor, draws=999, seed=3):
    """90 % coverage of the default intervals (2-day blocks, expanded) and of Fisher's."""
    wa = xr.DataArray(web_adult, dims=("area", "hour"))
    tr = xr.DataArray(tor, dims=("area", "hour"))
    boot = U.bootstrap_rho(wa, tr, lags=[0], draws=draws, seed=seed).sel(lag=0)
    assert boot.attrs["n_blocks"] == 14  # 28 days in 2-day blocks
    table = U.propagate(boot, xr.ones_like(boot.isel(draw=0, drop=True)),
                        xr.ones_like(boot.isel(draw=0, drop=True)), level=0.90)
    lo, hi = table["rho_lo"].to_numpy(), table["rho_hi"].to_numpy()
    ds = lagged_correlation(wa, tr, lags=[0])
    flo, fhi = U.fisher_interval(ds.rho.sel(lag=0).values, ds.n_hours.sel(lag=0).values, 0.90)
    cov = np.mean((lo <= rho_true) & (rho_true <= hi))
    fcov = np.mean((flo <= rho_true) & (rho_true <= fhi))
    return cov, fcov


def test_block_bootstrap_covers_known_rho_and_fisher_undercovers():
    rho, wa, tor = _simulate(400, 28, seed=11)
    cov, fcov = _coverage(rho, wa, tor)
    # Measured: bootstrap 0.905, Fisher 0.795 (400 areas: binomial sd of a coverage ~0.015).
    assert 0.85 <= cov <= 0.95, (cov, fcov)
    assert fcov < 0.87, (cov, fcov)
    assert cov - fcov > 0.03, (cov, fcov)


def test_generator_acceptance_planted_rho_not_latent():
    """The issue's acceptance: >= 500 generated areas, coverage of the planted ``rho``."""
    spec = synth.SynthSpec(cities=("Paris", "Lille", "Lyon", "Saint-Etienne"), scale=1.0,
                           days=28, seed=0)
    was, tors, rhos = [], [], []
    for city in spec.cities:
        model = synth.build_city(spec, city)
        local = model.hours.tz_localize("UTC").tz_convert(netmob.LOCAL_TZ)
        out = np.isin(local.date, netmob.outage_days(city))
        for store, service in ((was, "Web_Adult"), (tors, "Tor")):
            series = model.hourly[service].copy()
            series[:, out] = np.nan  # the pipeline's outage exclusion
            store.append(series)
        rhos.append(model.communes["rho"].to_numpy())
    rho = np.concatenate(rhos)
    assert rho.size >= 500
    cov, fcov = _coverage(rho, np.vstack(was), np.vstack(tors))
    # Measured: bootstrap 0.904, Fisher 0.821.
    assert 0.85 <= cov <= 0.95, (cov, fcov)
    assert fcov < 0.87, (cov, fcov)


def _random_series(seed=0, n_areas=6, days=10):
    rng = np.random.default_rng(seed)
    wa = rng.lognormal(size=(n_areas, days * 24))
    tor = wa ** 0.3 * rng.lognormal(size=(n_areas, days * 24))
    tor[rng.random(tor.shape) < 0.2] = 0.0  # exact zeros -> zero_value
    wa[:, 30:40] = np.nan  # excluded hours
    tor[1, : 24 * 9] = np.nan  # too few pairs
    tor[2] = 0.0  # constant Tor
    return wa, tor


def test_identity_resample_equals_method():
    wa, tor = _random_series()
    lags = [-3, 0, 2]
    ds = lagged_correlation(xr.DataArray(wa, dims=("area", "hour")),
                            xr.DataArray(tor, dims=("area", "hour")), lags=lags, min_pairs=48)
    ones = np.ones((1, 10), dtype=np.int32)
    boot = U.bootstrap_rho_np(transform(wa), transform(tor), lags, ones, min_pairs=48)[..., 0]
    np.testing.assert_allclose(boot, ds.rho.values, rtol=0, atol=1e-12)
    assert np.isnan(boot[1]).all() and np.isnan(boot[2]).all()
    assert np.isfinite(boot[[0, 3, 4, 5]]).all()


def test_resample_equals_corrcoef_of_explicit_pairs():
    """A resample's rho is Pearson's r of the pairs of the chosen days, repeated."""
    wa, tor = _random_series(seed=4)
    x, y = transform(wa), transform(tor)
    lag = 2
    weights = U.day_block_weights(10, 5, block_days=3, seed=9)
    boot = U.bootstrap_rho_np(x, y, [lag], weights, min_pairs=24)[:, 0, :]
    t = np.arange(0, 240 - lag)
    for b in range(5):
        idx = np.concatenate([t[t // 24 == d] for d in range(10) for _ in range(weights[b, d])])
        for a in (0, 3, 5):
            u, v = x[a, idx], y[a, idx + lag]
            keep = np.isfinite(u) & np.isfinite(v)
            ref = np.corrcoef(u[keep], v[keep])[0, 1]
            assert boot[a, b] == pytest.approx(ref, abs=1e-12)
        assert np.isnan(boot[2, b])  # constant Tor stays undefined


def test_too_few_pairs_in_a_resample_is_nan():
    wa, tor = _random_series()
    x, y = transform(wa), transform(tor)
    # Area 1 has Tor only on day 9 (24 hours): resamples without day 9 have no pairs.
    weights = np.zeros((2, 10), dtype=np.int32)
    weights[0, 0] = 10
    weights[1, 9] = 10
    boot = U.bootstrap_rho_np(x, y, [0], weights, min_pairs=48)[1, 0]
    assert np.isnan(boot[0])
    assert np.isfinite(boot[1])  # 240 pairs from day 9 repeated


def _constant_by_definition(nonempty, ext, used):
    """The method's rule read literally, one resample at a time: constant in x (or y) when
    the smallest x over the non-empty days it uses equals the largest."""
    n_areas, n_lags, _ = nonempty.shape
    out = np.zeros((n_areas, n_lags, used.shape[0]), dtype=bool)
    for a in range(n_areas):
        for k in range(n_lags):
            for b in range(used.shape[0]):
                days = [d for d in range(used.shape[1]) if used[b, d] and nonempty[a, k, d]]
                if not days:
                    continue  # no pairs: inf against -inf, not constant
                for lo, hi in ((0, 1), (2, 3)):
                    if min(ext[a, k, d, lo] for d in days) == max(ext[a, k, d, hi] for d in days):
                        out[a, k, b] = True
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_constant_resamples_match_the_rule_day_by_day(seed):
    """The constant-series check (varying days counted by a matrix product, constant days
    compared among themselves) against the rule read literally: constant days at one value,
    at several values, at -0.0 and 0.0, varying days, empty days, resamples with no pairs."""
    rng = np.random.default_rng(seed)
    n_areas, n_lags, n_days, n_draws = 12, 2, 9, 40
    lo = rng.normal(size=(n_areas, n_lags, n_days, 2))
    hi = lo + rng.random((n_areas, n_lags, n_days, 2)) + 0.1
    # 0: the day varies; 1: constant at 0.0 (-0.0 in its min); 2: at -6.9; 3: at 2.5
    kind = rng.integers(0, 4, size=(n_areas, n_lags, n_days, 2))
    kind[:4] = np.where(kind[:4] == 0, 0, 2)  # one constant level
    kind[4:8] = np.where(kind[4:8] == 0, 0, 1)  # 0.0 and -0.0: one level too
    nonempty = rng.random((n_areas, n_lags, n_days)) < 0.8  # areas 8-11: several levels
    nonempty[3] = nonempty[9] = False  # pairs on one or two days: resamples without any
    nonempty[3, :, 4] = nonempty[9, :, 1:3] = True
    kind[3, :, 4] = kind[9, :, 1] = 2
    level = np.array([0.0, 0.0, -6.9, 2.5])
    for v in (1, 2, 3):
        lo = np.where(kind == v, level[v], lo)
        hi = np.where(kind == v, level[v], hi)
    lo = np.where(kind == 1, -0.0, lo)
    ext = np.stack([lo[..., 0], hi[..., 0], lo[..., 1], hi[..., 1]], axis=-1)
    ext[~nonempty] = [np.inf, -np.inf, np.inf, -np.inf]
    used = U.day_block_weights(n_days, n_draws, block_days=2, seed=seed) > 0
    got = U._constant_in_resample(nonempty, ext, used)
    want = _constant_by_definition(nonempty, ext, used)
    assert want.any() and not want.all()  # both outcomes occur
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_nanquantile_equals_numpy_bit_for_bit(axis):
    """The grouped nanquantile against numpy's own, slice by slice: NaN in varying numbers,
    all-NaN slices, ties, infinities, 3-d input along each axis."""
    rng = np.random.default_rng(5)
    a = rng.normal(size=(40, 7, 50))
    a[rng.random(a.shape) < 0.3] = np.nan  # a different count of values per slice
    a[:, :, :3] = np.round(a[:, :, :3])  # ties
    a[0, 0, :] = np.nan  # all-NaN slices (for axis=-1)
    a[:, 0, 0] = np.nan  # (for axis=0)
    a[5, 2, 7], a[6, 3, 8] = np.inf, -np.inf
    q = [0.05, 0.5, 0.95]
    with warnings.catch_warnings():
        # numpy's all-NaN-slice warning; inf - inf in the interpolation, in both
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanquantile(a, q, axis=axis)
        got = U._nanquantile(a, q, axis=axis)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # NaN where numpy has NaN, equal bits elsewhere
    assert np.isnan(want).any() and np.isfinite(want).any()


def test_draws_reproducible_and_independent_of_chunking():
    wa, tor = _random_series(seed=2, n_areas=23, days=14)
    a = xr.DataArray(wa, dims=("area", "hour"))
    b = xr.DataArray(tor, dims=("area", "hour"))
    kw = {"lags": [0, 1], "draws": 50, "block_days": 2, "seed": 5, "min_pairs": 48}
    eager = U.bootstrap_rho(a, b, **kw)
    with raise_if_dask_computes():  # builds the graph only; the caller computes
        lazy7 = U.bootstrap_rho(a.chunk({"area": 7}), b.chunk({"area": 7}), **kw)
        lazy5 = U.bootstrap_rho(a.chunk({"area": 5, "hour": 100}), b.chunk({"area": 5}), **kw)
    assert lazy7.chunks is not None and lazy5.chunks is not None
    np.testing.assert_array_equal(eager.values, lazy7.compute().values)
    np.testing.assert_array_equal(eager.values, lazy5.compute().values)
    np.testing.assert_array_equal(eager.values, U.bootstrap_rho(a, b, **kw).values)
    other = U.bootstrap_rho(a, b, **{**kw, "seed": 6})
    assert not np.array_equal(np.nan_to_num(eager.values), np.nan_to_num(other.values))
    assert eager.dims == ("area", "lag", "draw")


def test_day_block_weights_structure():
    w = U.day_block_weights(28, 2000, block_days=1, seed=0)
    assert (w.sum(axis=1) == 28).all()
    # One-day blocks: multinomial(28, 1/28) per draw, mean 1 per day.
    assert np.abs(w.mean(axis=0) - 1).max() < 0.1
    full = U.day_block_weights(5, 10, block_days=5, seed=0)
    assert (full == 1).all()  # one possible block: the data itself
    w3 = U.day_block_weights(9, 200, block_days=3, seed=1)
    # Moving blocks never wrap: the first day occurs only as the start of a block.
    assert (w3[:, 0] <= 3).all() and (w3.sum(axis=1) == 9).all()
    c3 = U.day_block_weights(9, 4000, block_days=3, seed=1, circular=True)
    assert np.abs(c3.mean(axis=0) - 1).max() < 0.06  # circular: every day equally likely
    with pytest.raises(ValueError, match="block_days"):
        U.day_block_weights(5, 10, block_days=6)


def test_beta_defaults_reproduce_documented_means():
    assert U.CSAM_SHARE_PRIOR.mean == 105 / 253
    assert U.CSAM_SHARE_PRIOR.mean == pytest.approx(CSAM_SHARE, abs=1e-5)
    assert (U.CSAM_SHARE_PRIOR.alpha, U.CSAM_SHARE_PRIOR.beta) == (105.0, 148.0)
    assert U.ONION_SHARE_PRIOR.mean == pytest.approx(ONION_SHARE, rel=1e-12)
    ref = scipy.stats.beta(U.ONION_SHARE_PRIOR.alpha, U.ONION_SHARE_PRIOR.beta)
    assert U.ONION_SHARE_PRIOR.sd == pytest.approx(ref.std(), rel=1e-12)
    draws = U.draw_shares(20000, seed=1)
    assert draws["csam_share"].mean() == pytest.approx(105 / 253, abs=3 * 0.031 / np.sqrt(2e4))
    assert draws["onion_share"].mean() == pytest.approx(0.011, abs=3 * 0.0021 / np.sqrt(2e4))
    assert draws["csam_share"].std() == pytest.approx(
        scipy.stats.beta(105, 148).std(), rel=0.03)
    pd.testing.assert_frame_equal(draws, U.draw_shares(20000, seed=1))


def test_fisher_interval_by_hand():
    r, n = 0.3, 500
    q = scipy.stats.norm.ppf(0.95)
    lo, hi = U.fisher_interval(r, n, 0.90)
    assert float(lo) == pytest.approx(np.tanh(np.arctanh(r) - q / np.sqrt(n - 3)))
    assert float(hi) == pytest.approx(np.tanh(np.arctanh(r) + q / np.sqrt(n - 3)))
    lo, hi = U.fisher_interval([0.1], [3])
    assert np.isnan(lo).all() and np.isnan(hi).all()


def test_rank_probabilities_by_hand():
    # 3 draws x 12 areas: area 0 tops draws 0 and 1 only; area 11 is NaN in draw 2.
    base = np.arange(12, dtype=float)
    vals = np.vstack([base, base, base])
    vals[0, 0] = vals[1, 0] = 100.0
    vals[2, 11] = np.nan
    p10, pdec = U.rank_probabilities(vals, top_n=10, top_fraction=0.1)
    # draws 0, 1: top 10 = area 0 and areas 3..11; draw 2 (11 ranked): areas 1..10.
    assert p10[0] == pytest.approx(2 / 3)
    assert p10[1] == pytest.approx(1 / 3)
    assert p10[2] == pytest.approx(1 / 3)
    assert p10[5] == 1.0
    assert p10[11] == 1.0  # ranked in 2 draws, top 10 in both
    # top decile: ceil(1.2) = 2 areas in draws 0, 1; ceil(1.1) = 2 in draw 2.
    assert pdec[0] == pytest.approx(2 / 3)
    assert pdec[11] == pytest.approx(1.0)
    # draws 0, 1: top 2 = areas 0 and 11; draw 2 (area 11 unranked): areas 10 and 9.
    assert pdec[10] == pytest.approx(1 / 3)
    assert pdec[9] == pytest.approx(1 / 3)
    assert pdec[5] == 0.0


def test_propagate_by_hand():
    rng = np.random.default_rng(0)
    n_areas, n_draws = 15, 200
    rho = rng.normal(0.15, 0.1, (n_areas, n_draws))
    rho[3, :5] = np.nan
    tor = rng.lognormal(20, 1, n_areas)
    pop = rng.integers(500, 5000, n_areas).astype(float)
    shares = U.draw_shares(n_draws, seed=2)
    areas = [f"A{i:02d}" for i in range(n_areas)]
    table = U.propagate(
        xr.DataArray(rho, dims=("area", "draw"), coords={"area": areas}),
        xr.DataArray(tor, dims="area", coords={"area": areas}),
        xr.DataArray(pop, dims="area", coords={"area": areas}),
        shares, level=0.8,
    )
    prod = (shares["onion_share"] * shares["csam_share"]).to_numpy()
    c = np.where(rho > 0, rho * prod[None, :], 1e-5)
    c[np.isnan(rho)] = np.nan
    per_1000 = c * tor[:, None] / pop[:, None] * 1000
    for a in (0, 3, 7):
        ok = np.isfinite(rho[a])
        assert table.loc[areas[a], "rho_lo"] == pytest.approx(np.quantile(rho[a, ok], 0.1))
        assert table.loc[areas[a], "c_hi"] == pytest.approx(np.quantile(c[a, ok], 0.9))
        assert table.loc[areas[a], "cpc_lo"] == pytest.approx(
            np.quantile(c[a, ok] * tor[a], 0.1))
        assert table.loc[areas[a], "cpc_per_1000_hi"] == pytest.approx(
            np.quantile(per_1000[a, ok], 0.9))
    assert table.loc[areas[3], "n_draws"] == n_draws - 5
    assert list(table.columns) == list(U.INTERVAL_COLUMNS)
    top = np.argsort(-np.nan_to_num(per_1000, nan=-1), axis=0)[:10]
    expected = np.array([(top == a).any(axis=0).sum() for a in range(n_areas)], float)
    expected[3] = (top[:, 5:] == 3).any(axis=0).sum() / (n_draws - 5) * n_draws
    np.testing.assert_allclose(table["p_top10"].to_numpy(), expected / n_draws)


def test_bootstrap_on_real_cluster_equals_eager(client):
    wa, tor = _random_series(seed=8, n_areas=30, days=14)
    a = xr.DataArray(wa, dims=("area", "hour"))
    b = xr.DataArray(tor, dims=("area", "hour"))
    kw = {"lags": [-2, 0], "draws": 40, "seed": 1, "min_pairs": 48}
    lazy = U.bootstrap_rho(a.chunk({"area": 8}), b.chunk({"area": 8}), **kw)
    got = client.compute(lazy).result()
    np.testing.assert_array_equal(got.values, U.bootstrap_rho(a, b, **kw).values)


def test_spearman_interval_by_hand_and_with_estimate_draws():
    rng = np.random.default_rng(4)
    x = rng.normal(size=40)
    y = 0.5 * x + rng.normal(size=40)
    x[3] = np.nan
    res = U.spearman_interval(x, y, draws=200, seed=9, level=0.8)
    keep = np.isfinite(x)
    idx = U.area_resample_indices(39, 200, seed=9)
    ref = [scipy.stats.spearmanr(x[keep][i], y[keep][i]).statistic for i in idx]
    assert res["lo"] == pytest.approx(np.quantile(ref, 0.1), rel=1e-12)
    assert res["hi"] == pytest.approx(np.quantile(ref, 0.9), rel=1e-12)
    assert res["rho"] == pytest.approx(scipy.stats.spearmanr(x[keep], y[keep]).statistic)
    assert (res["n"], res["left_out"], res["draws"]) == (39, 1, 200)
    same = U.spearman_interval(x, y, draws=200, seed=9, level=0.8,
                               x_draws=np.tile(x, (200, 1)))
    assert (same["lo"], same["hi"]) == (res["lo"], res["hi"])
    noisy = U.spearman_interval(x, y, draws=200, seed=9, level=0.8,
                                x_draws=x + rng.normal(0, 1.0, (200, 40)))
    assert noisy["hi"] - noisy["lo"] > res["hi"] - res["lo"]


def test_spearman_interval_coverage():
    rng = np.random.default_rng(12)
    true = 6 / np.pi * np.arcsin(0.5 / 2)  # Spearman's rho of a bivariate normal, rho = 0.5
    cover = []
    for s in range(400):
        z = rng.multivariate_normal([0, 0], [[1, 0.5], [0.5, 1]], size=150)
        res = U.spearman_interval(z[:, 0], z[:, 1], draws=300, seed=s, level=0.9)
        cover.append(res["lo"] <= true <= res["hi"])
    # Measured 0.87 (400 samples, binomial sd 0.015): the percentile bootstrap of a rank
    # correlation is slightly narrow at n = 150, but far from the naive size.
    assert 0.85 <= np.mean(cover) <= 0.95, np.mean(cover)


def test_expanded_level_by_hand_and_used_by_propagate():
    n = 14
    q = np.sqrt(n / (n - 1)) * scipy.stats.t.ppf(0.95, n - 1)
    assert U.expanded_level(0.90, n) == pytest.approx(1 - 2 * scipy.stats.norm.cdf(-q))
    assert U.expanded_level(0.90, 10_000) == pytest.approx(0.90, abs=1e-3)
    rng = np.random.default_rng(1)
    rho = xr.DataArray(rng.normal(0.2, 0.05, (5, 300)), dims=("area", "draw"),
                       attrs={"n_blocks": n})
    one = xr.DataArray(np.ones(5), dims="area")
    table = U.propagate(rho, one, one)
    lvl = U.expanded_level(0.90, n)
    assert table.attrs["quantile_level"] == lvl
    assert table["rho_hi"].iloc[0] == pytest.approx(np.quantile(rho.values[0], 0.5 + lvl / 2))
    plain = U.propagate(rho, one, one, expand=False)
    assert plain["rho_hi"].iloc[0] == pytest.approx(np.quantile(rho.values[0], 0.95))


def test_intervals_by_lag_ranks_only_areas_that_are_not_small():
    rng = np.random.default_rng(11)
    n_areas, n_draws = 14, 60
    areas = [f"A{i:02d}" for i in range(n_areas)]
    rho = xr.DataArray(rng.uniform(0.05, 0.5, (n_areas, 2, n_draws)), dims=("area", "lag", "draw"),
                       coords={"area": areas, "lag": [0, 3]})
    tor = xr.DataArray(rng.lognormal(20, 1, n_areas), dims="area", coords={"area": areas})
    pop = xr.DataArray(rng.integers(500, 5000, n_areas).astype(float), dims="area", coords={"area": areas})
    small = pd.Series(False, index=areas)
    small[["A01", "A05"]] = True  # and A13 is missing from the flags: small too
    small = small.drop("A13")
    table = U.intervals_by_lag(rho, tor, pop, small, level=0.8, expand=False)
    assert table.columns[:2].tolist() == ["area", "lag_h"] and table["lag_h"].tolist() == [0] * 14 + [3] * 14
    assert (table["quantile_level"] == 0.8).all()
    at3 = table[table["lag_h"] == 3].set_index("area")
    assert at3.loc[["A01", "A05", "A13"], "p_top10"].isna().all()
    # by hand: cpc per 1000 per draw (c = ONION_SHARE x CSAM_SHARE x rho, rho > 0 here), top 10 of the 11 ranked
    keep = [a for a in areas if a not in ("A01", "A05", "A13")]
    r = rho.sel(lag=3, area=keep).values
    per_1000 = U.ONION_SHARE * U.CSAM_SHARE * r * tor.sel(area=keep).values[:, None] / pop.sel(area=keep).values[:, None] * 1000
    assert (r > 0).all()
    top = np.argsort(-per_1000, axis=0)[:10]
    expected = [(top == i).any(axis=0).mean() for i in range(len(keep))]
    np.testing.assert_allclose(at3.loc[keep, "p_top10"].to_numpy(), expected)
    # the intervals themselves cover every area, small or not
    assert at3["rho_lo"].notna().all()
    assert at3.loc["A01", "rho_lo"] == pytest.approx(np.quantile(rho.sel(lag=3, area="A01").values, 0.1))
    empty = U.empty_intervals(areas[:2], [0, 3])
    assert len(empty) == 4 and (empty["n_draws"] == 0).all() and empty["rho_lo"].isna().all()


def test_min_ranks_match_scipy_rankdata_min():
    """The numpy ranks of the rank probabilities against scipy's ``rankdata(method="min")``:
    ties (many, and whole rows), infinities (the undefined draws), one column, 1-D."""
    import scipy.stats

    from cpc_core.estimate.uncertainty import min_ranks

    rng = np.random.default_rng(7)
    cases = [np.array([[2.0, 2.0, 2.0]]), np.array([[np.inf, 1.0, np.inf, -np.inf]]), np.zeros((3, 1)),
             rng.normal(size=(50, 40))]
    for _ in range(50):
        a = rng.integers(0, 5, size=(rng.integers(1, 9), rng.integers(1, 30))).astype(float)
        a[rng.random(a.shape) < 0.2] = np.inf
        cases.append(a)
    for a in cases:
        np.testing.assert_array_equal(min_ranks(a), scipy.stats.rankdata(a, method="min", axis=1))
    np.testing.assert_array_equal(min_ranks(np.array([5.0, 1.0, 5.0])), [2, 1, 2])
