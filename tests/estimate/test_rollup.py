"""Rollup kernel and wrappers against plain numpy, on numpy, dask and store input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import xarray as xr

from cpc_core.cube import store
from cpc_core.estimate import outages, rollup
from scripts._benchlib import tile_totals, xarray_rollup
from tests import raise_if_dask_computes


def reference(values: np.ndarray, assign: np.ndarray, n_areas: int) -> np.ndarray:
    """(service, tile, time) -> (service, area, hour) with a plain loop over areas."""
    out = np.zeros((values.shape[0], n_areas, values.shape[2] // 4))
    for a in range(n_areas):
        sel = values[:, assign == a, :].astype(np.float64).sum(axis=1)
        out[:, a] = sel.reshape(values.shape[0], -1, 4).sum(axis=2)
    return out


def _weights(assign, n_areas):
    n = len(assign)
    return sp.csr_matrix((np.ones(n, np.float32), (assign, np.arange(n))), shape=(n_areas, n))


def test_rollup_numpy_and_dask_match_reference():
    rng = np.random.default_rng(1)
    vals = rng.integers(0, 1000, (2, 50, 96 * 3)).astype(np.float32)
    vals[1, 7, 10] = np.nan  # a missing tile-slot makes its area-hour missing, nothing else
    assign = rng.integers(0, 6, 50)
    time = pd.date_range("2019-04-01T22:00", periods=vals.shape[2], freq="15min")
    da_ = xr.DataArray(vals, dims=("service", "tile", "time"),
                       coords={"service": ["a", "b"], "tile": np.arange(50), "time": time})
    ref = reference(vals, assign, 6)
    for arr in (da_, da_.chunk({"time": 96})):
        with raise_if_dask_computes():  # lazy on either input: the caller computes
            lazy = xarray_rollup(arr, _weights(assign, 6), [f"z{i}" for i in range(6)], hours_per_chunk=5)
        got = lazy.values
        np.testing.assert_allclose(got, ref, rtol=1e-6)
    assert np.isnan(got[1, assign[7], 2]) and np.isnan(got).sum() == 1
    tot = tile_totals(da_).values
    np.testing.assert_allclose(tot, np.nansum(vals.astype(np.float64), axis=2))
    with raise_if_dask_computes():
        lazy_tot = tile_totals(da_.chunk({"time": 96}))
    np.testing.assert_allclose(lazy_tot.values, np.nansum(vals.astype(np.float64), axis=2))


def test_rollup_store_equals_open_cube_path(cube):
    for city in ("Lyon", "Nice"):
        with raise_if_dask_computes():  # opening and building the graphs compute nothing
            ds = store.open_cube(cube, city)
            n = ds.sizes["tile"]
            assign = np.arange(n) % 5
            w = _weights(assign, 5)
            codes = [f"c{i}" for i in range(5)]
            h1 = xarray_rollup(ds["DL"], w, codes)
            t1 = tile_totals(ds["DL"])
        h1, t1 = h1.compute(), t1.compute()
        ref = reference(ds["DL"].values, assign, 5)
        svc = list(ds["service"].values)
        # the 15-minute path does the same float32 arithmetic as xarray_rollup(): identical
        h2, t2 = rollup.rollup_store(cube, city, w, codes, svc, hours_per_task=7, source="slots", min_task_values=1)
        assert len(h2.data.chunks[2]) > 1
        h2, t2 = h2.compute(), t2.compute()
        np.testing.assert_array_equal(h1.values, h2.values)
        np.testing.assert_allclose(t1.values, t2.values)
        np.testing.assert_array_equal(h1["hour"].values, h2["hour"].values)
        np.testing.assert_allclose(h2.values, ref, rtol=1e-6)
        # the hourly path (the default on this store) sums slots first: equal up to rounding,
        # with tasks of 1 and of 2 days (the DST day's 23 hours inside a task and at its edge)
        for hours_per_task in (24, 48, 168):
            h3, t3 = rollup.rollup_store(cube, city, w, codes, svc, hours_per_task=hours_per_task, min_task_values=1)
            assert len(h3.data.chunks[2]) == -(-len(store.read_layout(cube, city).days) // (hours_per_task // 24))
            h3, t3 = h3.compute(), t3.compute()
            np.testing.assert_array_equal(h1["hour"].values, h3["hour"].values)
            np.testing.assert_allclose(h3.values, ref, rtol=1e-6)
            np.testing.assert_allclose(t3.values, t1.values, rtol=1e-7)  # hours rounded to float32


def test_hourly_kernel_fractional_weights_and_missing_values(cube, tmp_path):
    """The hourly path's one-pass kernel (area sums and tile sums together) against plain
    numpy on the 15-minute values: tiles split between two areas with fractional weights, a
    missing file (a NaN day) and one NaN tile-slot on a tile with traffic; NaN propagates to
    exactly the area-hours that contain it, and the tile totals skip the NaN hours."""
    import shutil

    from cpc_core.netmob import facts as netmob

    s = tmp_path / "holes.zarr"
    shutil.copytree(cube, s)
    city = "Lyon"
    lay = store.read_layout(str(s), city)
    starts = netmob.day_offsets(lay.first_day, lay.days)
    si = lay.services.index("Tor")

    def day_slice(di):
        return slice(int(starts[di]), int(starts[di]) + netmob.slots_per_day(lay.days[di]))

    n = len(lay.tiles)
    store.write_file_block(str(s), city, "DL", si, 1, day_slice(1), None, store.STATUS["missing"])
    vals = store.open_cube(str(s), city)["DL"].sel(service="Tor").values  # (tiles, slots)
    block = vals[:, day_slice(2)].copy()
    busy = int(np.argmax(block[:, 8:12].sum(axis=1)))  # a tile with traffic in that hour
    assert block[busy, 8:12].sum() > 0
    block[busy, 9] = np.nan
    store.write_file_block(str(s), city, "DL", si, 2, day_slice(2), block, store.STATUS["partial"])
    vals = store.open_cube(str(s), city)["DL"].sel(service="Tor").values.astype(np.float64)

    rng = np.random.default_rng(7)
    first = np.arange(n) % 4
    share = rng.uniform(0.1, 0.9, n)
    rows = np.concatenate([first, (first + 1) % 4])
    w = sp.csr_matrix((np.concatenate([share, 1 - share]).astype(np.float32),
                       (rows, np.concatenate([np.arange(n), np.arange(n)]))), shape=(4, n))
    hourly = vals.reshape(n, -1, 4).sum(axis=2)  # NaN when any slot is NaN
    dense = w.toarray().astype(np.float64)
    ref = np.stack([dense[a, dense[a] != 0] @ hourly[dense[a] != 0] for a in range(4)])  # an area's own tiles
    h, t = rollup.rollup_store(str(s), city, w, list("abcd"), ["Tor"], hours_per_task=48, source="hourly",
                               min_task_values=1)
    got, tot = h.values[0], t.values[0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    assert np.isnan(ref).any(axis=0).sum() == netmob.slots_per_day(lay.days[1]) // 4 + 1
    np.testing.assert_allclose(got, ref, rtol=1e-5)
    # tile totals skip NaN hours (the hourly array's unit): the NaN slot drops its whole hour
    np.testing.assert_allclose(tot, np.nansum(hourly, axis=1), rtol=1e-6)
    assert tot[busy] < np.nansum(vals[busy]) - 0.5


def test_small_city_tasks_cover_more_days(cube):
    """A small city's rollup tasks hold at least ``min_task_values`` tile values: the test
    cube's ~100-300 tiles make one task per service by default, a week per task without the
    floor, and the series are the same either way."""
    ds = store.open_cube(cube, "Nice")
    n = ds.sizes["tile"]
    w = _weights(np.arange(n) % 3, 3)
    n_days = len(store.read_layout(cube, "Nice").days)
    grouped = rollup.rollup_store(cube, "Nice", w, ["a", "b", "c"], ["Tor", "YouTube"])
    weekly = rollup.rollup_store(cube, "Nice", w, ["a", "b", "c"], ["Tor", "YouTube"], min_task_values=1)
    assert grouped[0].data.chunks[2] == (grouped[0].sizes["hour"],)  # one task per service
    assert len(weekly[0].data.chunks[2]) == -(-n_days // 7)
    np.testing.assert_array_equal(grouped[0].values, weekly[0].values)
    np.testing.assert_allclose(grouped[1].values, weekly[1].values, rtol=1e-12)


def test_version1_store_without_hourly_array(cube, cube_v2, tmp_path, caplog):
    """A store written before the hourly array existed: rollup reads the 15-minute array
    (saying so at WARNING), asking for the hourly one fails by name, and extending the store
    never adds it (its old days would read as missing). The same store marked version 2 is
    damaged: its lost hourly array is named, never replaced by the 15-minute one in silence."""
    import datetime as dt
    import logging
    import shutil

    import zarr

    from cpc_core.errors import StoreDamaged

    old = tmp_path / "v1.zarr"
    shutil.copytree(cube_v2, old)  # layout 1 indexed its 15-minute arrays by UTC time, as layout 2
    g = zarr.open_group(old / "Nice", mode="r+")
    del g["DL_hourly"]
    n = g["tile"].shape[0]
    w = _weights(np.arange(n) % 3, 3)
    codes = ["a", "b", "c"]
    with pytest.raises(StoreDamaged, match=r"Nice/DL_hourly metadata \(zarr.json\): missing"):
        rollup.rollup_store(str(old), "Nice", w, codes, ["Tor"])
    # what a store written before the hourly array (and the chunk records) looks like
    del g["DL_chunks"]
    g.attrs["layout_version"] = 1
    del g.attrs["chunk_records"]
    with caplog.at_level(logging.WARNING, logger="cpc_core.estimate.rollup"):
        h_old, t_old = rollup.rollup_store(str(old), "Nice", w, codes, ["Tor"])
    assert "no DL_hourly array (a layout-version-1 store): the rollup reads the 15-minute array" in caplog.text
    h_ref, t_ref = rollup.rollup_store(cube, "Nice", w, codes, ["Tor"], source="slots")
    np.testing.assert_array_equal(h_old.values, h_ref.values)
    np.testing.assert_array_equal(t_old.values, t_ref.values)
    with pytest.raises(ValueError, match="no DL_hourly array"):
        rollup.rollup_store(str(old), "Nice", w, codes, ["Tor"], source="hourly")
    lay = store.read_layout(str(old), "Nice")
    later = store.CityLayout("Nice", lay.first_day, lay.last_day + dt.timedelta(days=2), lay.services,
                             lay.tiles, ("DL", "UL"))
    store.create_or_extend(str(old), later)
    g = zarr.open_group(old / "Nice", mode="r")
    assert "DL_hourly" not in g and "UL_hourly" not in g and "UL" in g
    assert "DL_chunks" in g and "UL_chunks" in g and g.attrs["chunk_records"]  # records kept from now on
    assert g["DL"].shape[2] == len(later.time)


def test_known_outage_days_per_city():
    import datetime as dt

    hours = pd.date_range("2019-04-11T20:00", periods=60, freq="h")  # UTC; Paris = UTC+2
    h = xr.DataArray(np.ones((3, 60)), dims=("area", "hour"), coords={"area": ["a", "b", "c"], "hour": hours})
    city = pd.Series({"a": "Bordeaux", "b": "Lyon", "c": "Bordeaux"})
    out, _ = outages.exclude_outages(xr.Dataset({"web_adult": h}), city,
                                    known_days={"Bordeaux": [dt.date(2019, 4, 12)], "Lyon": []})
    out = out["web_adult"]
    local = (hours + pd.Timedelta(hours=2)).date
    on_day = local == dt.date(2019, 4, 12)
    np.testing.assert_array_equal(np.isnan(out.values[0]), on_day)
    np.testing.assert_array_equal(np.isnan(out.values[2]), on_day)
    assert not np.isnan(out.values[1]).any()


@pytest.mark.parametrize("n_tiles", [50, 20_000, 81_731])
def test_task_spans_cover_the_window_once(n_tiles):
    """Spans tile the window without gap or overlap; each (but the last) holds a week, or
    at least the floor of tile values for a small city."""
    for days in (None, 77):
        spans = rollup.task_spans(n_tiles, 77 * 24, 168, days=days)
        n = 77 * 24 if days is None else days
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
        per = store.HOURS_PAD if days is not None else 4
        width = 7 if days is not None else 168
        for a, b in spans[:-1]:
            assert (b - a) >= width and ((b - a) == width or (b - a - 1) * n_tiles * per < rollup._MIN_TASK_VALUES)
            assert (b - a) * n_tiles * per >= rollup._MIN_TASK_VALUES or (b - a) == width


def _outage_series(seed=2):
    """(area, hour) Web_Adult and Tor around the DST day and 2019-05-12, with planted zero
    Web_Adult hours (and high Tor there, so that excluding them moves rho)."""
    hours = pd.date_range("2019-03-29T00:00", "2019-05-14T00:00", freq="h", inclusive="left")  # UTC
    rng = np.random.default_rng(seed)
    n = len(hours)
    base = rng.lognormal(3, 1, (3, n))
    wa = np.round(base * rng.lognormal(0, 0.3, (3, n))) + 1  # zeros only where planted
    tor = np.round(0.05 * base * rng.lognormal(0, 0.5, (3, n))) + 1
    t = pd.DatetimeIndex(hours)
    zeros = {
        0: ["2019-03-30T23:00", "2019-03-31T05:00", "2019-03-31T21:00",  # local 03-31 00:00, 07:00, 23:00
            "2019-03-30T22:00", "2019-04-02T03:00"],  # local 03-30 23:00 and 04-02: kept
        1: ["2019-05-11T22:00", "2019-05-12T10:00", "2019-04-14T10:00"],  # 05-12 (UTC+2); 04-14 kept
        2: [],
    }
    for a, ts in zeros.items():
        idx = t.get_indexer(pd.DatetimeIndex(ts))
        wa[a, idx] = 0.0
        tor[a, idx] = 500.0
    wa[2, t.get_indexer(pd.DatetimeIndex(["2019-03-31T12:00"]))] = np.nan  # missing: stays NaN, not counted
    coords = {"area": ["a", "b", "c"], "hour": hours}
    return xr.Dataset({"web_adult": (("area", "hour"), wa.astype(np.float32)),
                       "tor": (("area", "hour"), tor.astype(np.float32))}, coords=coords)


def test_authors_outage_rule_against_pandas():
    """outage_rule 'authors': per area, hours of 2019-03-31 and 2019-05-12 (local) with zero
    Web_Adult are NaN in both series; known outage days are not excluded whole; extra days are.
    Checked against an independent pandas computation of the mask and of rho."""
    import datetime as dt

    from cpc_core.config.core import EstimateConfig
    from cpc_core.estimate import correlation
    from cpc_core.netmob import facts as netmob

    ds = _outage_series()
    city = pd.Series({"a": "Toulouse", "b": "Lyon", "c": "Lyon"})
    e = EstimateConfig(outage_rule="authors", exclude_days=["2019-04-20"])
    known = {c: netmob.outage_days(c) for c in ("Toulouse", "Lyon")}
    got, masks = outages.exclude_outages(ds, city, rule=e.outage_rule, known_days=known, extra_days=e.exclude_days,
                                        zero_days=e.zero_web_adult_days)
    # independent: pandas, local day by tz_convert, per area
    local = pd.DatetimeIndex(ds["hour"].values).tz_localize("UTC").tz_convert("Europe/Paris")
    day = pd.Series(local.date)
    zero_days = day.isin([dt.date(2019, 3, 31), dt.date(2019, 5, 12)]).to_numpy()
    extra = day.isin([dt.date(2019, 4, 20)]).to_numpy()
    n_zero = 0
    for i, a in enumerate(["a", "b", "c"]):
        wa = pd.Series(ds["web_adult"].values[i].astype(float))
        tor = pd.Series(ds["tor"].values[i].astype(float))
        drop = (zero_days & (wa == 0).to_numpy()) | extra
        n_zero += int((zero_days & (wa == 0).to_numpy()).sum())
        wa[drop], tor[drop] = np.nan, np.nan
        np.testing.assert_array_equal(np.isnan(got["web_adult"].values[i]), wa.isna().to_numpy())
        np.testing.assert_array_equal(np.isnan(got["tor"].values[i]), tor.isna().to_numpy())
        lw, lt = np.log(wa.where(wa != 0, 0.001)), np.log(tor.where(tor != 0, 0.001))
        for lag in (0, 2):
            rho = correlation.lagged_correlation(got["web_adult"], got["tor"], lags=[lag], min_pairs=24)
            assert rho["rho"].sel(area=a, lag=lag).item() == pytest.approx(lw.corr(lt.shift(-lag)), abs=1e-6)
    assert n_zero == 5  # the planted zeros on the two local days, none of the others
    # the known outage days are not excluded whole: 04-14 (all cities) and 04-12 (Toulouse) kept
    on_known = day.isin([dt.date(2019, 4, 14), dt.date(2019, 4, 12)]).to_numpy()
    assert np.isfinite(got["tor"].values[:, on_known]).all()
    s = {k: int(v) for k, v in outages.exclusion_summary(masks).compute().items()}
    assert s == {"area_hours": 3 * 24 + 5, "whole_day_area_hours": 3 * 24, "zero_web_adult_area_hours": 5,
                 "areas_with_zero_web_adult_hours": 2, "zero_web_adult_area_slots": 0,
                 "zero_web_adult_partial_area_hours": 0}
    # the excluded hours move rho (the test could fail if the rule did nothing)
    before = correlation.lagged_correlation(ds["web_adult"], ds["tor"], lags=[0], min_pairs=24)["rho"]
    after = correlation.lagged_correlation(got["web_adult"], got["tor"], lags=[0], min_pairs=24)["rho"]
    assert (abs(after - before).sel(area=["a", "b"], lag=0) > 0.01).all()
    # lazy on dask input, same result
    with raise_if_dask_computes():  # builds the graph only, masks and summary included
        lazy, lmasks = outages.exclude_outages(ds.chunk({"hour": 200}), city, rule="authors", known_days=known,
                                              extra_days=e.exclude_days, zero_days=e.zero_web_adult_days)
        lazy_summary = outages.exclusion_summary(lmasks)
    assert {k: int(v) for k, v in lazy_summary.compute().items()} == s
    assert lazy["tor"].chunks is not None and lmasks["zero_web_adult"].chunks is not None
    xr.testing.assert_identical(lazy.compute(), got)


def test_default_outage_rule_unchanged():
    """The default (known_days) excludes each city's whole known outage days (computed here from
    the local days) and nothing else; 'authors' cannot be combined with no outage handling."""
    from cpc_core.config.core import ConfigError, EstimateConfig, parse_config
    from cpc_core.netmob import facts as netmob

    e = EstimateConfig()
    assert (e.exclude_known_outages, e.outage_rule, e.exclude_days) == (True, "known_days", ())
    assert [str(d) for d in e.zero_web_adult_days] == ["2019-03-31", "2019-05-12"]
    ds = _outage_series()
    city = pd.Series({"a": "Toulouse", "b": "Lyon", "c": "Lyon"})
    known = {c: netmob.outage_days(c) for c in ("Toulouse", "Lyon")}
    got, masks = outages.exclude_outages(ds, city, rule=e.outage_rule, known_days=known, extra_days=e.exclude_days,
                                        zero_days=e.zero_web_adult_days)
    local = pd.DatetimeIndex(ds["hour"].values).tz_localize("UTC").tz_convert("Europe/Paris").date
    for i, c in enumerate(city):
        expect = np.isin(local, list(known[c])) | np.isnan(ds["web_adult"].values[i])
        np.testing.assert_array_equal(np.isnan(got["web_adult"].values[i]), expect)
    # zero Web_Adult hours on 03-31 are kept under the default rule
    assert got["web_adult"].sel(area="a", hour="2019-03-31T05:00").item() == 0
    s = {k: int(v) for k, v in outages.exclusion_summary(masks).compute().items()}
    # Toulouse: 04-12, 04-14, 05-12 in the window; Lyon: 04-14, 05-12 (all 24-hour days)
    assert s["whole_day_area_hours"] == 24 * (3 + 2 + 2) and s["zero_web_adult_area_hours"] == 0
    with pytest.raises(ConfigError, match="outage_rule"):
        parse_config({"synth": {}, "estimate": {"outage_rule": "authors", "exclude_known_outages": False}})
    with pytest.raises(ConfigError, match="outage_rule"):
        parse_config({"synth": {}, "estimate": {"outage_rule": "author"}})


def test_authors_rule_drops_15_minute_rows_before_the_hour_sums(tmp_path):
    """The authors' rule at their level: on the two outage days, the (area, 15-minute) rows with
    zero Web_Adult are dropped in every service, the rest summed to hours (an hour with all four
    slots dropped is excluded). A tiny real store; the reference is plain pandas on the tile
    values, grouped by area and slot, filtered, then by hour."""
    import datetime as dt

    from cpc_core.netmob import facts as netmob

    path = str(tmp_path / "cube.zarr")
    services = ("Tor", "Web_Adult", "YouTube")
    lay = store.CityLayout("Lyon", dt.date(2019, 3, 30), dt.date(2019, 4, 1), services, np.arange(6), ("DL",))
    store.create_or_extend(path, lay)
    rng = np.random.default_rng(3)
    assign = np.array([0, 0, 1, 1, 2, 2])  # two tiles per area
    n_slots = len(lay.time)
    vals = rng.integers(1, 50, (3, 6, n_slots)).astype(np.float32)
    t = pd.DatetimeIndex(lay.time)  # UTC slot starts
    local = t.tz_localize("UTC").tz_convert("Europe/Paris")
    on_day = np.flatnonzero(local.date == dt.date(2019, 3, 31))
    wa = services.index("Web_Adult")
    # area 0: one slot of an hour zero (partial hour), area 1: a whole hour zero, area 2: a zero
    # slot on 03-30 (not an outage day: kept) and one on 03-31
    for area, slots in ((0, on_day[[9]]), (1, on_day[40:44]), (2, on_day[[3]]),
                        (2, np.flatnonzero(local.date == dt.date(2019, 3, 30))[[5]])):
        vals[wa][np.ix_(assign == area, slots)] = 0.0
    for si in range(3):
        for di, day in enumerate(lay.days):
            sl = lay.day_slice(day)
            store.write_file_block(path, "Lyon", "DL", si, di, sl, vals[si][:, sl], store.STATUS["ok"])
    w = _weights(assign, 3)
    codes = ["a", "b", "c"]
    names = {"tor": "Tor", "web_adult": "Web_Adult", "youtube": "YouTube"}
    h, _ = rollup.rollup_store(path, "Lyon", w, codes, list(services))
    hourly = xr.Dataset({k: h.sel(service=s, drop=True) for k, s in names.items()}).compute()
    days = (dt.date(2019, 3, 31), dt.date(2019, 5, 12))
    slots = outages.area_slots(path, "Lyon", w, codes, names, days)
    got, masks = outages.exclude_outages(hourly, pd.Series("Lyon", index=codes), rule="authors",
                                        known_days={"Lyon": netmob.outage_days("Lyon")}, zero_days=days,
                                        zero_slots=slots)

    # independent: long table of (service, tile, slot), area sums per slot, the authors' filter
    long = pd.DataFrame({
        "service": np.repeat(list(names), 6 * n_slots),
        "area": np.tile(np.repeat(np.array(codes)[assign], n_slots), 3),
        "slot": np.tile(t, 18), "value": vals.astype(np.float64).ravel(),
    })  # fmt: skip
    rows = long.pivot_table(index=["area", "slot"], columns="service", values="value", aggfunc="sum")
    slot_day = pd.DatetimeIndex(rows.index.get_level_values("slot")).tz_localize("UTC").tz_convert("Europe/Paris").date
    drop = np.isin(slot_day, days) & (rows["web_adult"] == 0).to_numpy()
    kept = rows[~drop].reset_index()
    assert drop.sum() == 1 + 4 + 1  # the 03-30 zero slot is not dropped
    kept["hour"] = kept["slot"].dt.floor("h")
    ref = kept.groupby(["area", "hour"])[list(names)].sum()
    for var in names:
        r = ref[var].unstack("hour").reindex(index=codes, columns=hourly["hour"].values)
        np.testing.assert_allclose(got[var].values, r.to_numpy(), rtol=1e-6)  # NaN where no row is left
    # the planted cases, for every service: a partial hour is the sum of the three other slots
    hour0 = t[on_day[9]].floor("h")
    part = rows.loc[("a", slice(hour0, hour0 + pd.Timedelta("45min"))), :]
    for var in names:
        assert got[var].sel(area="a", hour=hour0).item() == pytest.approx(part[var].sum() - part[var].iloc[1])
        assert np.isnan(got[var].sel(area="b", hour=t[on_day[40]]).item())
    assert got["tor"].sel(area="a", hour=hour0).item() < hourly["tor"].sel(area="a", hour=hour0).item()
    s = {k: int(v) for k, v in outages.exclusion_summary(masks).items()}
    assert s == {"area_hours": 1, "whole_day_area_hours": 0, "zero_web_adult_area_hours": 1,
                 "areas_with_zero_web_adult_hours": 1, "zero_web_adult_area_slots": 6,
                 "zero_web_adult_partial_area_hours": 2}
