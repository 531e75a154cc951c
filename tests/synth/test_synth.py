"""The synthetic generator: exact NetMob layout, determinism, geometry, calibration, truth."""

from __future__ import annotations

import datetime as dt
import json

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from cpc_core.netmob import facts as netmob
from cpc_core.synth import generator as synth
from tests.conftest import SMALL_SPEC


def test_layout_and_dst_columns(synth_tree):
    files = sorted(p.relative_to(synth_tree / "netmob").as_posix() for p in (synth_tree / "netmob").glob("*/*/*/*.txt"))
    assert "Lyon/Web_Adult/20190331/Lyon_Web_Adult_20190331_DL.txt" in files
    assert len(files) == 2 * 3 * 4
    for f in files:
        text = (synth_tree / "netmob" / f).read_text()
        widths = {len(line.split(" ")) for line in text.splitlines()}
        expected = 93 if "20190331" in f else 97
        assert widths == {expected}, f
        assert text.endswith("\n") and "\t" not in text and "." not in text


def test_deterministic_for_a_seed(tmp_path):
    spec = synth.SynthSpec(cities=("Nice",), services=("Tor",), start=dt.date(2019, 3, 31), days=1, scale=0.005, seed=11)
    a = synth.build_city(spec, "Nice")
    b = synth.build_city(spec, "Nice")
    synth.write_file(tmp_path / "a", spec, a, "Tor", spec.start)
    synth.write_file(tmp_path / "b", spec, b, "Tor", spec.start)
    rel = "netmob/Nice/Tor/20190331/Nice_Tor_20190331_DL.txt"
    assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    other = synth.SynthSpec(cities=("Nice",), services=("Tor",), start=dt.date(2019, 3, 31), days=1, scale=0.005, seed=12)
    synth.write_file(tmp_path / "c", other, synth.build_city(other, "Nice"), "Tor", other.start)
    assert (tmp_path / "c" / rel).read_bytes() != (tmp_path / "a" / rel).read_bytes()


def test_tile_geojson_is_the_real_grid(synth_tree):
    tiles = gpd.read_file(synth_tree / "netmob/Lyon/Lyon.geojson")
    assert tiles.crs.to_epsg() == 4326 and tiles["tile_id"].is_unique
    t27572 = tiles.to_crs(netmob.GRID_CRS)
    rows, cols = netmob.CITY_DIMS["Lyon"]
    x0, y0 = netmob.CITY_ORIGINS["Lyon"]
    r, c = np.divmod(t27572["tile_id"].to_numpy(), cols)
    b = t27572.geometry.bounds
    np.testing.assert_allclose(b["minx"], x0 + c * 100, atol=0.01)
    np.testing.assert_allclose(b["miny"], y0 + r * 100, atol=0.01)
    np.testing.assert_allclose(b["maxx"] - b["minx"], 100, atol=0.01)
    assert (r < rows).all()
    # same tiles as the traffic files
    first = (synth_tree / "netmob/Lyon/Tor/20190329/Lyon_Tor_20190329_DL.txt").read_text().splitlines()
    assert sorted(int(x.split()[0]) for x in first) == sorted(tiles["tile_id"])


def test_communes_cover_tiles_as_the_generator_assigned(synth_tree):
    model = synth.build_city(SMALL_SPEC, "Lyon")
    com = gpd.read_file(synth_tree / "geo/communes.gpkg", layer="communes").to_crs(netmob.GRID_CRS)
    com = com[com["city"] == "Lyon"]
    cx, cy = synth.tile_centroids("Lyon", model.tiles)
    pts = shapely.points(cx, cy)
    # independent point-in-polygon loop
    assigned = []
    for p in pts:
        hits = [i for i, g in enumerate(com.geometry) if g.contains(p)]
        assert len(hits) == 1
        assigned.append(com["commune"].iloc[hits[0]])
    expected = model.communes["commune"].to_numpy()[model.commune_of_tile]
    assert list(assigned) == list(expected)
    assert (com["population"] >= 80).all()


def test_traffic_shape_and_calibration(synth_tree):
    def load(service, ymd="20190330"):
        text = (synth_tree / f"netmob/Lyon/{service}/{ymd}/Lyon_{service}_{ymd}_DL.txt").read_text()
        return np.array([[int(v) for v in line.split()[1:]] for line in text.splitlines()])

    tor, yt, wa = load("Tor"), load("YouTube"), load("Web_Adult")
    assert (tor == 0).mean() > 0.8  # Tor: most tile-slots zero, concentrated on few tiles
    assert (yt == 0).mean() < 0.05
    # evening peak: 20-23h local exceeds 3-5h local by far (local 30 March = UTC+1)
    hourly = yt.sum(axis=0).reshape(24, 4).sum(axis=1)
    assert hourly[20:23].mean() > 2 * hourly[3:5].mean()
    truth = pd.read_csv(synth_tree / "truth/communes.csv")
    r_yt_tor = np.median(truth["youtube_expected"] / truth["tor_expected"])
    r_wa_tor = np.median(truth["web_adult_expected"] / truth["tor_expected"])
    assert 500 < r_yt_tor < 4000 and 8 < r_wa_tor < 45
    # files sum to the model's expectation (stochastic rounding is unbiased)
    model = synth.build_city(SMALL_SPEC, "Lyon")
    day = dt.date(2019, 3, 30)
    off = int(netmob.day_offsets(SMALL_SPEC.start, [day])[0]) // 4
    for name, arr in (("YouTube", yt), ("Web_Adult", wa)):
        expected = model.hourly[name][:, off : off + 24].sum()
        assert arr.sum() == pytest.approx(expected, rel=1e-3)


def test_truth_files(synth_tree):
    truth = json.loads((synth_tree / "truth/truth.json").read_text())
    assert truth["lag_h"] == 2
    assert set(truth["validation"]["coefficients"]) >= {"const", "log_cpc_per_1000"}
    t = pd.read_csv(synth_tree / "truth/communes.csv")
    assert {"commune", "city", "population", "rho"} <= set(t.columns)
    assert t["commune"].is_unique
    cov = pd.read_csv(synth_tree / "covariates/communes.csv")
    assert set(cov["commune"]) == set(t["commune"])
    assert cov["sexual_violence_per_1000"].isna().any()
    search = pd.read_csv(synth_tree / "covariates/search_interest.csv")
    assert (search[list(synth.ZERO_TERMS)] == 0).all().all() and len(search.columns) == 19
    poi = pd.read_csv(synth_tree / "covariates/poi.csv")
    assert list(poi.columns) == ["id", "category", "lon", "lat"] and poi["id"].is_unique


def test_planted_rho_distribution_like_table1():
    spec = synth.SynthSpec(cities=netmob.CITIES, days=7, scale=0.002, seed=1)
    rho = np.concatenate([synth.build_city(spec, c).communes["rho"] for c in spec.cities])
    assert len(rho) > 250
    assert abs(rho.mean() - 0.1649) < 0.015 and abs(rho.std() - 0.075) < 0.012
    assert abs(np.median(rho) - 0.1684) < 0.02


def test_spec_validation():
    with pytest.raises(ValueError, match="unknown cities"):
        synth.SynthSpec(cities=("Atlantis",))
    with pytest.raises(ValueError, match="scale"):
        synth.SynthSpec(scale=0)


def _xcorr(wa: np.ndarray, tor: np.ndarray, ok: np.ndarray, lag: int) -> np.ndarray:
    """Plain numpy: per commune, Pearson of log WA(t) and log Tor(t + lag) over the hours t
    where both are outside an outage (np.corrcoef on the shifted arrays)."""
    n = wa.shape[1]
    t = np.arange(max(0, -lag), min(n, n - lag))
    t = t[ok[t] & ok[t + lag]]
    return np.array([np.corrcoef(np.log(a[t]), np.log(b[t + lag]))[0, 1] for a, b in zip(wa, tor, strict=True)])


@pytest.mark.parametrize("lag", [3, -2])
def test_planted_lag_is_where_the_cross_correlation_peaks(lag):
    """Tor follows Web_Adult by ``lag_h`` hours: corr(WA(t), Tor(t + L)) peaks at L = lag_h
    (the sign convention of cpc_core.estimate.correlation). A generator whose lag has the wrong sign
    peaks at -lag_h and fails here in about a second."""
    spec = synth.SynthSpec(cities=("Nice",), days=7, scale=0.005, seed=5, lag_h=lag)
    m = synth.build_city(spec, "Nice")
    wa, tor = m.hourly["Web_Adult"], m.hourly["Tor"]
    local_day = m.hours.tz_localize("UTC").tz_convert(netmob.LOCAL_TZ).date
    ok = ~np.isin(local_day, list(netmob.outage_days("Nice")))
    lags = range(-6, 7)
    mean_rho = {L: float(np.mean(_xcorr(wa, tor, ok, L))) for L in lags}
    assert max(mean_rho, key=mean_rho.get) == lag, mean_rho
    assert mean_rho[lag] > mean_rho[-lag] + 0.05
    # and every commune's realised correlation at the planted lag is the generator's record
    np.testing.assert_allclose(_xcorr(wa, tor, ok, lag), m.communes["rho_latent"], rtol=0, atol=1e-9)
