"""Synthetic NetMob23 data with planted, known truth.

The real NetMob23 files are licensed and never available to the project, so every stage is
built and tested on data written in exactly their layout (``cpc_core.netmob.facts``) by this module.

The model (documented in ``docs/synthetic-data.md``)
----------------------------------------------------
Per city, a compact blob of ``scale x`` the real tile count is taken from the real grid
(``tile_id = row * cols + col``). Communes are Voronoi cells of seeds placed inside tiles, so
each has at least one tile and the centroid rule is unambiguous. For commune ``j`` and UTC
hour ``t``:

* ``log WA_j(t) = m_wa_j + log profile(t) + s_wa * eta_j(t)`` with a weekday x hour profile
  (evening peak, small 8:00 and 13:00 weekday bumps) and AR(1) noise ``eta``;
* ``log YT_j(t)`` the same shape with its own level and noise;
* ``log Tor_j(t) = m_tor_j + s_tor * (rho_j * Z_j(t - L) + sqrt(1 - rho_j^2) * e_j(t))`` where
  ``Z_j`` is the standardised ``log WA_j`` and ``e_j`` independent noise. Hence the planted
  correlation of hourly log Web_Adult with log Tor ``L`` hours later is ``rho_j``, drawn like the
  paper's Table 1 (normal, mean 0.165, sd 0.075).

Hourly commune values are split over tiles (heavy-tailed weights; Tor onto a few "hot" tiles
per commune and hour, so most tile-hours are zero) and over the four 15-minute slots, then
rounded stochastically to integers (unbiased). Known outage days carry 1/1000 of the traffic.
Levels are calibrated on the published commune aggregates (``docs/method.md`` section 8): per
commune Tor is ~1,500 times less than YouTube and ~20 times less than Web_Adult (medians).

Everything is deterministic for a seed: each file draws from its own
``SeedSequence([seed, city, service, day, direction])``, so files can be written in any order,
in parallel, and re-written identically.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cpc_core._batching import MIN_TASK_VALUES, batched
from cpc_core.estimate.cpc import C_FLOOR, CSAM_SHARE, ONION_SHARE, correction_factor, cpc_per_1000
from cpc_core.netmob import facts as netmob
from cpc_core.netmob.textio import format_netmob
from cpc_core.synth.spec import DEMO_CITIES, SynthSpec, check_cities  # noqa: F401 - re-exported

__all__ = [
    "CityModel",
    "SynthSpec",
    "build_city",
    "check_cities",
    "file_batches",
    "planted_cpc_per_1000",
    "write_city_geography",
    "write_communes",
    "write_covariates",
    "write_file",
    "file_jobs",
]

logger = logging.getLogger(__name__)


# Calibration (docs/method.md section 8), per commune over the 77-day window.
_YT_MEDIAN_77D = 9.7e9
_YT_PER_WA = 74.0  # median YouTube / Web_Adult
_WA_PER_TOR = 19.0  # median Web_Adult / Tor
_SD_LOG_YT_PER_WA = 0.35
_SD_LOG_WA_PER_TOR = 0.78
_POP_MEDIAN, _POP_SIGMA = 4143.0, 1.45
#: Planted rho_j ~ N(mean, sd), clipped, like the paper's Table 1.
RHO_MEAN, RHO_SD, RHO_MIN, RHO_MAX = 0.165, 0.075, -0.06, 0.55
#: Traffic on known outage days, as a fraction of normal.
OUTAGE_FACTOR = 1e-3
#: Upload as a fraction of download, per service (a plausible shape; no study uses UL).
_UL_RATIO = {"Tor": 0.25, "Web_Adult": 0.05, "YouTube": 0.03}

POI_CATEGORIES = (
    "adult_entertainment",
    "amateur_sports_team",
    "church_cathedral",
    "mosque",
    "religious_organization",
    "school",
    "restaurant",
    "hotel",
    "bar",
    "supermarket",
)
SEARCH_TERMS = (
    "pedo-porno", "porno mineur", "porno enfant", "site pedoporno", "pre-teen hardcore",
    "zoo preteen", "zoo pre-teen", "pedomom", "pedodad", "pthc", "boylove", "girllove",
    "porno jeune ado", "video porno ado", "ado porno", "porno jeune fille", "omegle", "hurtcore",
)
#: Terms that are all zero in the synthetic search table (the paper dropped 7 of 18).
ZERO_TERMS = ("zoo preteen", "zoo pre-teen", "pedomom", "pedodad", "site pedoporno", "hurtcore", "girllove")
N_REGIONS = 21

#: Coefficients planted into the validation outcome (see ``validation_truth``). The rates are
#: written in percent (as INSEE publishes them) and enter the model as shares in [0, 1], the
#: unit of the paper's regressions: 3.0 per unit share is 0.03 per percentage point.
VALIDATION_COEFS = {
    "const": 1.2,
    "log_cpc_per_1000": 0.12,
    "poverty_rate": 3.0,
    "unemployment_rate": 2.0,
    "turnout_2017": -1.5,
    "share_singles": 1.0,
}
VALIDATION_NOISE_SD = 0.25
OUTCOME_ZERO_SHARE = 0.447


@dataclass
class CityModel:
    """Everything needed to write any file of one city, built once on the client."""

    city: str
    city_index: int
    tiles: np.ndarray  # (n_tiles,) sorted tile ids
    commune_of_tile: np.ndarray  # (n_tiles,) index into communes
    communes: pd.DataFrame  # commune, name, city, population, rho, seed_x, seed_y
    hours: pd.DatetimeIndex  # UTC hours of the window
    hourly: dict[str, np.ndarray] = field(default_factory=dict)  # service -> (communes, hours)
    tile_weight: dict[str, np.ndarray] = field(default_factory=dict)  # service -> (n_tiles,)
    hot: np.ndarray | None = None  # (communes, k) tile positions that carry Tor


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def _select_tiles(city: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A compact, slightly ragged blob of ``n`` cells around the grid's centre."""
    rows, cols = netmob.CITY_DIMS[city]
    r, c = np.mgrid[0:rows, 0:cols]
    d = np.hypot((r - rows / 2) / rows, (c - cols / 2) / cols)
    d = d + rng.normal(0, 0.03, d.shape)  # ragged edge, like a real study area
    pick = np.argsort(d, axis=None, kind="stable")[:n]
    return np.sort((r.ravel()[pick] * cols + c.ravel()[pick]).astype(np.int64))


def tile_centroids(city: str, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroids of tiles in the grid CRS (EPSG:27572)."""
    _, cols = netmob.CITY_DIMS[city]
    x0, y0 = netmob.CITY_ORIGINS[city]
    row, col = np.divmod(tiles, cols)
    return x0 + (col + 0.5) * netmob.TILE_SIZE_M, y0 + (row + 0.5) * netmob.TILE_SIZE_M


def _profile(hours_utc: pd.DatetimeIndex) -> np.ndarray:
    """Weekday x hour shape of YouTube / Web_Adult (local time): evening peak, 8/13h bumps."""
    local = hours_utc.tz_localize("UTC").tz_convert(netmob.LOCAL_TZ)
    h = local.hour.to_numpy() + 0.5
    weekday = local.day_of_week.to_numpy() < 5
    base = 0.15 + 0.85 * np.exp(-0.5 * ((h - 21.5) / 3.2) ** 2)  # evening peak
    base += 0.45 * np.clip((h - 6) / 14, 0, 1)  # daytime rise
    bumps = 0.18 * np.exp(-0.5 * ((h - 8.3) / 0.7) ** 2) + 0.22 * np.exp(-0.5 * ((h - 13.2) / 0.8) ** 2)
    return base + np.where(weekday, bumps, 0.0)


def _ar1(rng: np.random.Generator, shape: tuple[int, int], phi: float) -> np.ndarray:
    """Unit-variance AR(1) along the last axis."""
    e = rng.standard_normal(shape)
    out = np.empty(shape)
    out[:, 0] = e[:, 0]
    s = np.sqrt(1 - phi**2)
    for t in range(1, shape[1]):
        out[:, t] = phi * out[:, t - 1] + s * e[:, t]
    return out


def build_city(spec: SynthSpec, city: str) -> CityModel:
    """Lay out one city: tiles, communes, populations, planted rho and hourly commune series."""
    ci = netmob.CITIES.index(city)
    rng = _rng(spec.seed, ci, 9001)
    n_tiles = max(1, int(round(spec.scale * netmob.CITY_TILE_COUNTS[city])))
    tiles = _select_tiles(city, n_tiles, rng)
    n_com = min(spec.n_communes(city), n_tiles)
    cx, cy = tile_centroids(city, tiles)
    seed_pos = rng.choice(n_tiles, size=n_com, replace=False)
    # jitter seeds inside their tile so no tile centroid is equidistant from two seeds
    sx = cx[seed_pos] + rng.uniform(-35, 35, n_com)
    sy = cy[seed_pos] + rng.uniform(-35, 35, n_com)
    d2 = (cx[:, None] - sx[None, :]) ** 2 + (cy[:, None] - sy[None, :]) ** 2
    commune_of_tile = np.argmin(d2, axis=1)

    pop = np.clip(np.exp(np.log(_POP_MEDIAN) + _POP_SIGMA * rng.standard_normal(n_com)), 80, 500_000).round()
    rho = np.clip(rng.normal(RHO_MEAN, RHO_SD, n_com), RHO_MIN, RHO_MAX)
    codes = [f"S{ci:02d}{j:03d}" for j in range(n_com)]
    communes = pd.DataFrame(
        {
            "commune": codes,
            "name": [f"{city} synthetic {j:03d}" for j in range(n_com)],
            "city": city,
            "population": pop.astype(np.int64),
            "rho": rho,
            "n_tiles": np.bincount(commune_of_tile, minlength=n_com),
            "seed_x": sx,
            "seed_y": sy,
        }
    )

    first, last = spec.day_list[0], spec.day_list[-1]
    slots = netmob.time_axis(first, last)
    hours = slots[::4]
    n_h = len(hours)
    L = spec.lag_h
    prof = np.log(_profile(hours))
    # window totals scale with the number of days; levels vary with population
    days_factor = spec.days / 77.0
    lpop = np.log(pop / _POP_MEDIAN)
    log_yt_tot = np.log(_YT_MEDIAN_77D * days_factor) + 0.9 * lpop + rng.normal(0, 1.0, n_com)
    log_wa_tot = log_yt_tot - np.log(_YT_PER_WA) + rng.normal(0, _SD_LOG_YT_PER_WA, n_com)
    log_tor_tot = log_wa_tot - np.log(_WA_PER_TOR) + rng.normal(0, _SD_LOG_WA_PER_TOR, n_com)

    s_wa, s_yt, s_tor = 0.35, 0.3, 0.9
    # the window is extended by |L| hours so that the lagged Tor exists at both ends
    pad = abs(L)
    eta_wa = _ar1(rng, (n_com, n_h + 2 * pad), 0.6)
    prof_pad = np.concatenate([prof[:1].repeat(pad), prof, prof[-1:].repeat(pad)]) if pad else prof
    lwa_pad = prof_pad[None, :] + s_wa * eta_wa
    z = (lwa_pad - lwa_pad.mean(axis=1, keepdims=True)) / lwa_pad.std(axis=1, keepdims=True)
    e = _ar1(rng, (n_com, n_h), 0.3)
    # Tor(t) follows WA(t - L): take z shifted by L inside the padded window
    z_lag = z[:, pad - L : pad - L + n_h]
    ltor = s_tor * (rho[:, None] * z_lag + np.sqrt(1 - rho[:, None] ** 2) * e)
    lwa = lwa_pad[:, pad : pad + n_h]
    lyt = prof[None, :] + s_yt * _ar1(rng, (n_com, n_h), 0.7)

    outage = np.ones(n_h)
    local_day = hours.tz_localize("UTC").tz_convert(netmob.LOCAL_TZ).date
    outage_days = set(netmob.outage_days(city))
    is_out = np.array([d in outage_days for d in local_day])
    outage[is_out] = OUTAGE_FACTOR

    def to_level(logs: np.ndarray, log_total: np.ndarray) -> np.ndarray:
        v = np.exp(logs)
        return v * (np.exp(log_total) / v.sum(axis=1))[:, None] * outage[None, :]

    hourly = {
        "Web_Adult": to_level(lwa, log_wa_tot),
        "Tor": to_level(ltor, log_tor_tot),
        "YouTube": to_level(lyt, log_yt_tot),
    }
    # services outside the study get a YouTube-like shape at their own level
    for s in spec.services:
        if s not in hourly:
            k = _rng(spec.seed, ci, _service_key(s))
            hourly[s] = to_level(prof[None, :] + 0.3 * _ar1(k, (n_com, n_h), 0.7), log_yt_tot - 1.0)
    communes["rho_latent"] = _lagged_corr(lwa, ltor, ~is_out, L)
    for s in ("Tor", "Web_Adult", "YouTube"):
        communes[f"{s.lower()}_expected"] = hourly[s].sum(axis=1)

    model = CityModel(city, ci, tiles, commune_of_tile, communes, hours, hourly)
    for s in spec.services:
        w = np.exp(rng.normal(0, 1.0, n_tiles))
        model.tile_weight[s] = w / np.bincount(commune_of_tile, weights=w, minlength=n_com)[commune_of_tile]
    # Tor lives on up to 3 hot tiles per commune (positions into tiles)
    k_hot = 3
    hot = np.empty((n_com, k_hot), dtype=np.int64)
    for j in range(n_com):
        members = np.flatnonzero(commune_of_tile == j)
        hot[j] = rng.choice(members, size=k_hot, replace=len(members) < k_hot)
    model.hot = hot
    return model


def _lagged_corr(lwa: np.ndarray, ltor: np.ndarray, ok: np.ndarray, lag: int) -> np.ndarray:
    """Realised corr(log WA(t), log Tor(t + lag)) on the latent series, outage hours excluded."""
    n_h = ltor.shape[1]
    t = np.arange(max(0, -lag), min(n_h, n_h - lag))
    keep = ok[t] & ok[t + lag]
    a, b = lwa[:, t[keep]], ltor[:, t[keep] + lag]
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def _service_key(service: str) -> int:
    return int.from_bytes(service.encode()[:8].ljust(8, b"\0"), "little") % (2**31)


def file_jobs(spec: SynthSpec) -> list[tuple[str, str, dt.date]]:
    """(city, service, day) of every file group to write; one group yields all directions."""
    return [(c, s, d) for c in spec.cities for s in spec.services for d in spec.day_list]


def file_batches(jobs: Sequence[tuple[str, str, dt.date]], models: Mapping[str, CityModel],
                 spec: SynthSpec, min_values: int = MIN_TASK_VALUES) -> list[list]:  # fmt: skip
    """Consecutive ``jobs`` (:func:`file_jobs`) batched to at least ``min_values`` values each.

    One batch is one Dask task. A demo-sized file (hundreds of tiles) takes ~5 ms to write,
    less than a task's own cost on a local cluster of threads: one task per file made the
    demo's synth 1.6x slower than a loop over the files. A real-size file (millions of
    values) stays alone. Order is kept; a batch never splits a file group.

    Examples
    --------
    >>> import types
    >>> spec = types.SimpleNamespace(directions=("DL",))
    >>> models = {"A": types.SimpleNamespace(tiles=range(6000)), "B": types.SimpleNamespace(tiles=range(50))}
    >>> day = dt.date(2019, 4, 1)
    >>> jobs = [("A", "Tor", day), ("A", "YouTube", day)] + [("B", "Tor", day)] * 300
    >>> [len(b) for b in file_batches(jobs, models, spec)]
    [2, 209, 91]
    """
    return batched(jobs, lambda j: len(models[j[0]].tiles) * netmob.slots_per_day(j[2]) * len(spec.directions),
                   min_values)  # fmt: skip


def write_file(out: str | Path, spec: SynthSpec, model: CityModel, service: str, day: dt.date) -> int:
    """Write the DL (and UL) files of one (city, service, day); return bytes written."""
    out = Path(out)
    first = spec.day_list[0]
    off = int(netmob.day_offsets(first, [day])[0])
    n_slots = netmob.slots_per_day(day)
    h0, nh = off // 4, n_slots // 4
    n_tiles = len(model.tiles)
    si = spec.services.index(service) if service in spec.services else 0
    written = 0
    for di, direction in enumerate(spec.directions):
        rng = _rng(spec.seed, model.city_index, si, day.toordinal(), di)
        V = model.hourly[service][:, h0 : h0 + nh]  # (communes, hours)
        if direction == "UL":
            V = V * _UL_RATIO.get(service, 0.1) * np.exp(rng.normal(0, 0.2, V.shape))
        if service == "Tor":
            # each commune-hour goes to one of its hot tiles: spatially concentrated, bursty
            tile_hour = np.zeros((n_tiles, nh))
            pick = rng.integers(0, model.hot.shape[1], size=V.shape)
            pos = model.hot[np.arange(V.shape[0])[:, None], pick]
            np.add.at(tile_hour, (pos.ravel(), np.tile(np.arange(nh), V.shape[0])), V.ravel())
        else:
            tile_hour = V[model.commune_of_tile] * model.tile_weight[service][:, None]
        # split each tile-hour over its four slots with random shares summing to one
        q = np.exp(0.4 * rng.standard_normal((n_tiles, nh, 4)))
        q /= q.sum(axis=2, keepdims=True)
        x = (tile_hour[:, :, None] * q).reshape(n_tiles, n_slots)
        # stochastic rounding keeps every sum unbiased
        vals = np.floor(x + rng.random(x.shape)).astype(np.int64)
        path = out / "netmob" / netmob.file_path(model.city, service, day, direction)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = format_netmob(model.tiles, vals)
        path.write_bytes(data)
        written += len(data)
    return written


def write_city_geography(out: str | Path, model: CityModel):
    """Write ``netmob/<City>/<City>.geojson`` (WGS84 tiles); return the commune polygons."""
    import geopandas as gpd
    import shapely

    out = Path(out)
    city = model.city
    cx, cy = tile_centroids(city, model.tiles)
    h = netmob.TILE_SIZE_M / 2
    boxes = shapely.box(cx - h, cy - h, cx + h, cy + h)
    tiles = gpd.GeoDataFrame({"tile_id": model.tiles}, geometry=boxes, crs=netmob.GRID_CRS).to_crs("EPSG:4326")
    p = out / "netmob" / city / f"{city}.geojson"
    p.parent.mkdir(parents=True, exist_ok=True)
    tiles.to_file(p, driver="GeoJSON")
    # communes: Voronoi cells of the seeds, clipped to the grid's extent (so every tile's
    # centroid lies in the cell of its nearest seed, the generator's assignment)
    rows, cols = netmob.CITY_DIMS[city]
    x0, y0 = netmob.CITY_ORIGINS[city]
    extent = shapely.box(x0, y0, x0 + cols * 100, y0 + rows * 100)
    c = model.communes
    seeds = shapely.points(c["seed_x"], c["seed_y"])
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds), extend_to=extent))
    # voronoi_polygons does not keep input order: match cells to seeds
    order = np.array([int(np.flatnonzero(shapely.contains(cells, s))[0]) for s in seeds])
    geom = shapely.intersection(cells[order], extent)
    gdf = gpd.GeoDataFrame(c[["commune", "name", "city", "population"]].copy(), geometry=geom, crs=netmob.GRID_CRS)
    gdf["department"] = f"D{model.city_index:02d}"  # one synthetic department per city
    return gdf.to_crs("EPSG:2154")


def write_communes(out: str | Path, communes: Sequence) -> Path:
    """All cities' synthetic communes as one GeoPackage layer ``communes`` (Lambert-93)."""
    import geopandas as gpd

    gp = Path(out) / "geo" / "communes.gpkg"
    gp.parent.mkdir(parents=True, exist_ok=True)
    gdf = gpd.GeoDataFrame(pd.concat(list(communes), ignore_index=True), crs="EPSG:2154")
    gdf.to_file(gp, layer="communes", driver="GPKG")
    return gp


def planted_cpc_per_1000(communes: pd.DataFrame, onion_share: float = ONION_SHARE, csam_share: float = CSAM_SHARE,
                         floor: float = C_FLOOR) -> pd.Series:
    """cpc per 1000 implied by the planted rho and the expected Tor totals (paper's Eq. 1).

    The estimate's own formula (:func:`cpc_core.estimate.cpc.correction_factor` and
    :func:`~cpc_core.estimate.cpc.cpc_per_1000`) applied to the planted values, so that the
    truth and the estimate cannot drift apart.
    """
    c, _ = correction_factor(communes["rho"], onion_share=onion_share, csam_share=csam_share, floor=floor)
    return cpc_per_1000(c, communes["tor_expected"], communes["population"])


def spatial_outcome_errors(spec: SynthSpec, communes: pd.Series, geography) -> np.ndarray:
    """SAR errors ``(I - lambda W)^-1 eps`` of the validation outcome, one per commune.

    ``W`` is the row-standardised queen contiguity of the commune polygons (islands attached
    to their nearest neighbour, :func:`cpc_core.validation.spatial.build_weights`); ``eps ~ N(0,
    VALIDATION_NOISE_SD^2)`` from its own stream of the seed, so the other draws of the
    generator do not change with ``spatial_errors``.

    Parameters
    ----------
    spec : SynthSpec
    communes : pandas.Series
        Commune codes, in the order of the returned errors.
    geography : geopandas.GeoDataFrame
        Commune polygons with a ``commune`` column (:func:`write_city_geography`).
    """
    from cpc_core.validation.spatial import build_weights, sar_errors

    g = geography.set_index("commune").loc[list(communes)]
    w, _ = build_weights(g, kind="queen")
    u = sar_errors(w, spec.spatial_errors, sd=VALIDATION_NOISE_SD, seed=_rng(spec.seed, 779))
    return pd.Series(u, index=w.id_order).reindex(list(communes)).to_numpy()


def write_covariates(out: str | Path, spec: SynthSpec, models: Sequence[CityModel],
                     geography=None) -> pd.DataFrame:
    """Validation inputs under ``covariates/`` and the truth under ``truth/``; returns communes.

    ``geography`` (the commune polygons, from :func:`write_city_geography`) is needed when
    ``spec.spatial_errors`` is not 0: the outcome's errors are then spatially autocorrelated
    over their contiguity (:func:`spatial_outcome_errors`).
    """
    out = Path(out)
    rng = _rng(spec.seed, 777)
    com = pd.concat([m.communes for m in models], ignore_index=True)
    n = len(com)
    area_km2 = com["n_tiles"] * 0.01  # tiles are 1 ha
    cov = pd.DataFrame({"commune": com["commune"], "city": com["city"], "population": com["population"]})
    cov["density"] = com["population"] / area_km2.clip(lower=0.01)
    cov["share_singles"] = np.clip(rng.normal(38, 8, n), 10, 80)
    cov["poverty_rate"] = np.clip(rng.normal(14, 6, n), 1, 50)
    cov["unemployment_rate"] = np.clip(rng.normal(11, 4, n), 2, 40)
    cov["turnout_2017"] = np.clip(rng.normal(78, 6, n), 40, 95)
    cov["le_pen_2017"] = np.clip(rng.normal(18, 7, n), 2, 60)
    cov["macron_2017"] = np.clip(rng.normal(27, 6, n), 5, 60)
    for cat in POI_CATEGORIES[:6]:
        lam = np.clip(com["population"] / 5000, 0.05, 50)
        cov[f"poi_{cat}"] = rng.poisson(lam)
    # departments and regions: synthetic codes, one department per city, regions over cities
    ci = com["city"].map({c: i for i, c in enumerate(netmob.CITIES)})
    cov["department"] = [f"D{i:02d}" for i in ci]
    cov["region"] = [f"R{i % N_REGIONS:02d}" for i in ci]

    log_cpc = np.log(planted_cpc_per_1000(com))
    cov["drug_abuse_per_1000"] = np.clip(0.5 + 0.05 * log_cpc + rng.normal(0, 0.3, n), 0, None)
    lin = VALIDATION_COEFS["const"] + VALIDATION_COEFS["log_cpc_per_1000"] * log_cpc
    for k in ("poverty_rate", "unemployment_rate", "turnout_2017", "share_singles"):
        lin = lin + VALIDATION_COEFS[k] * cov[k] / 100.0  # percent -> share
    noise = rng.normal(0, VALIDATION_NOISE_SD, n)  # drawn always: the later draws stay the same
    if spec.spatial_errors != 0:
        if geography is None:
            raise ValueError("spatial_errors needs the commune polygons (geography)")
        noise = spatial_outcome_errors(spec, com["commune"], geography)
    sv = lin + noise
    n_clipped = int((sv <= 0).sum())
    sv = np.clip(sv, 0.01, None)
    zero = rng.random(n) < OUTCOME_ZERO_SHARE
    sv = np.where(zero, 0.0, sv)
    # published only for communes with enough cases: larger ones far more often (731 of 1,341)
    p_pub = 1 / (1 + np.exp(-(np.log(com["population"]) - np.log(5000)) * 1.5))
    published = rng.random(n) < p_pub
    cov["sexual_violence_per_1000"] = np.where(published, sv, np.nan)
    cdir = out / "covariates"
    cdir.mkdir(parents=True, exist_ok=True)
    cov.to_csv(cdir / "communes.csv", index=False)

    # search interest: region x term, a few latent factors, 7 terms all zero
    f = rng.normal(0, 1, (N_REGIONS, 3))
    load = rng.normal(0, 1, (3, len(SEARCH_TERMS)))
    pop = np.clip(50 + 15 * (f @ load) + rng.normal(0, 5, (N_REGIONS, len(SEARCH_TERMS))), 0, 100).round()
    search = pd.DataFrame(pop, columns=SEARCH_TERMS)
    for t in ZERO_TERMS:
        search[t] = 0.0
    search.insert(0, "region", [f"R{i:02d}" for i in range(N_REGIONS)])
    search.to_csv(cdir / "search_interest.csv", index=False)

    # points of interest (id, category, lon, lat), more of them where Tor is concentrated
    rows = []
    for m in models:
        cx, cy = tile_centroids(m.city, m.tiles)
        hot = np.unique(m.hot.ravel())
        k = max(5, len(m.tiles) // 4)
        pos = np.concatenate([rng.integers(0, len(m.tiles), k), rng.choice(hot, size=max(1, k // 5))])
        cats = rng.choice(POI_CATEGORIES, size=len(pos))
        rows.append(pd.DataFrame({"x": cx[pos] + rng.uniform(-50, 50, len(pos)),
                                  "y": cy[pos] + rng.uniform(-50, 50, len(pos)), "category": cats}))
    poi = pd.concat(rows, ignore_index=True)
    from pyproj import Transformer

    lon, lat = Transformer.from_crs(netmob.GRID_CRS, "EPSG:4326", always_xy=True).transform(poi["x"], poi["y"])
    poi = pd.DataFrame({"id": [f"poi{i:07d}" for i in range(len(poi))], "category": poi["category"],
                        "lon": lon, "lat": lat})
    poi.to_csv(cdir / "poi.csv", index=False)

    tdir = out / "truth"
    tdir.mkdir(parents=True, exist_ok=True)
    truth_cols = ["commune", "name", "city", "population", "n_tiles", "rho", "rho_latent",
                  "tor_expected", "web_adult_expected", "youtube_expected"]
    t = com[truth_cols].copy()
    t["cpc_per_1000"] = np.exp(log_cpc)
    t.to_csv(tdir / "communes.csv", index=False)
    truth = {
        "generator": "cpc.synth",
        "spec": {**asdict(spec), "start": spec.start.isoformat()},
        "lag_h": spec.lag_h,
        "lag_convention": "rho(L) = corr(log Web_Adult(t), log Tor(t + L)); L > 0: Tor follows Web_Adult",
        "rho": {"distribution": "normal", "mean": RHO_MEAN, "sd": RHO_SD, "clip": [RHO_MIN, RHO_MAX]},
        "outage_factor": OUTAGE_FACTOR,
        "validation": {
            "outcome": "sexual_violence_per_1000",
            "model": "for communes with a non-zero published outcome: outcome = const + sum(coef * x) + N(0, sd), the rates x as shares (their percent / 100); "
                     "zeros are independent of the regressors with probability zero_share; values below 0.01 clipped",
            "coefficients": VALIDATION_COEFS,
            "noise_sd": VALIDATION_NOISE_SD,
            "spatial_errors": {"lambda": spec.spatial_errors, "weights": "queen contiguity of the "
                               "commune polygons, row-standardised, islands attached to their "
                               "nearest neighbour", "model": "u = (I - lambda W)^-1 eps, eps ~ "
                               "N(0, noise_sd^2); lambda 0: independent errors"},
            "zero_share": OUTCOME_ZERO_SHARE,
            "clipped": n_clipped,
            "regressor_log_cpc_per_1000": "log of the planted cpc per 1000 (truth/communes.csv)",
        },
        "search_zero_terms": list(ZERO_TERMS),
    }
    (tdir / "truth.json").write_text(json.dumps(truth, indent=2))
    return com
