"""Tiles -> areas and 15-minute slots -> hours, inside the task that reads a chunk.

Kernel and wrapper are separate (flox / xskillscore style): :func:`_rollup_block` is plain
numpy/scipy on one block; :func:`rollup_store` builds the Dask graph so that each task reads
one (service, all tiles, some hours) block of the cube and returns the much smaller
(areas, hours) block. Raw tile data never moves between workers: measured here at
~0.35 GiB/s against ~25 GB/s for memory (``performance.md``).

The weights are one float32 scipy sparse matrix (areas x tiles), shipped once to the workers as
a single graph key rather than embedded in every task: CSR for the matmul of the 15-minute
path, CSC for the hourly path's one-pass kernel (:func:`_reduce_day`, which walks it tile by
tile). float32 on purpose: float64 weights were 4.7x slower in scipy's matmul and silently
promoted the output.

Missing values propagate: an area-hour is NaN when any of its tile-slots is NaN (a missing
file, a rejected line). Nothing is zero-filled; the correlation stage excludes NaN hours.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import dask
import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from cpc_core import _jit  # numba.njit at the first call: numba is not imported with the module
from cpc_core.cube import store
from cpc_core.netmob import facts as netmob

__all__ = [
    "combine_cities",
    "rollup_store",
    "window_totals",
]

logger = logging.getLogger(__name__)

SLOTS_PER_HOUR = 4
#: Version of the rollup's arithmetic, part of the key of cached hourly series: 2 = area sums
#: in float64 by the one-pass kernel (1: float32 inside scipy's matmul).
ROLLUP_VERSION = 2
#: Values read per Zarr call in :func:`rollup_store` when a city is small (see there).
_READ_VALUES = 1 << 16
#: Least tile values per rollup task: a small city's tasks cover more days (a task's fixed
#: cost, ~10 ms here, was most of the rollup of the 20 metropoles at 0.1 % of their tiles).
#: A real city's day chunk alone holds 0.35-2 M values, so its tasks keep ``hours_per_task``.
_MIN_TASK_VALUES = 1 << 21


def _row_sums(x: np.ndarray) -> np.ndarray:
    """Per-tile float64 sums of a (tiles, time) block, NaN skipped.

    A plain sum is 3x cheaper than ``nansum`` and NaN is rare, so ``nansum`` runs only when the
    plain sum comes out non-finite.
    """
    part = x.sum(axis=1, dtype=np.float64)
    return part if np.isfinite(part).all() else np.nansum(x, axis=1, dtype=np.float64)


@_jit.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _reduce_day(x, nh, indptr, indices, data, out, tiles):  # pragma: no cover - numba
    """One pass over a (tiles, >= nh) day block: area sums and NaN-skipping tile sums at once.

    ``indptr, indices, data``: the weights in CSC form (column = tile, rows = areas). Adds
    ``w * x[t, :nh]`` to ``out[area, :]`` (products and sums in float64; NaN propagates, as in
    the sparse matmul)
    and the float64 sum of the non-NaN values of ``x[t, :nh]`` to ``tiles[t]``. Reading the
    block once instead of twice (scipy's matmul, then numpy's float64 row sums) halves the
    rollup's compute per day chunk (BENCHMARKS.md, problem 16). ``fastmath={"reassoc"}`` lets
    the NaN-skipping sum vectorise (1.74 -> 0.92 ms per Paris day chunk) and changes only the
    order of float64 additions; NaN tests stay exact (no ``nnan`` flag).
    """
    for t in range(x.shape[0]):
        rs = 0.0
        for h in range(nh):
            v = x[t, h]
            rs += v if v == v else 0.0
        tiles[t] += rs
        for j in range(indptr[t], indptr[t + 1]):
            a = indices[j]
            w = np.float64(data[j])
            for h in range(nh):
                out[a, h] += w * x[t, h]


def _rollup_block(block: np.ndarray, weights: sp.csr_matrix) -> np.ndarray:
    """(service=1, tiles, slots) block -> (1, areas, slots // 4) hourly area sums."""
    b = block[0]
    if b.shape[1] % SLOTS_PER_HOUR:
        raise ValueError(f"block of {b.shape[1]} slots is not whole hours")
    a = weights @ b  # (areas, slots), float32, NaN propagates through the product
    return a.reshape(a.shape[0], -1, SLOTS_PER_HOUR).sum(axis=2)[None]


def hours_per_read(arr, span: int) -> int:
    """Hours of the 15-minute array ``arr`` each read of a ``span`` of hours takes.

    Layouts 1-2: one hour (one whole chunk, copied contiguously) for large cities; for small
    tile counts zarr's ~0.5 ms per call dominates, so several chunks are read at once (their
    strided assembly is cheap while the block stays small). Layout 3: a read decodes whole day
    chunks, so a day's worth of hours at least.
    """
    step = int(np.clip(_READ_VALUES // max(arr.shape[1] * SLOTS_PER_HOUR, 1), 1, span))
    return min(max(step, 24), span) if arr.ndim == 4 else step


def _rollup_store_task(store_path: str, city: str, direction: str, services: tuple[int, ...], h0: int, h1: int,
                       weights: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Read hours ``h0:h1`` of the cube chunk by chunk and reduce them at once.

    Returns ``(hourly (services, areas, hours) float32, tile sums (services, tiles) float64)``.
    Layout 3 reads whole day chunks (:func:`cpc_core.cube.store.read_slots`, checked against
    their records). Layouts 1-2: each read is one whole Zarr chunk (all tiles x one hour) copied
    contiguously: assembling a
    (tiles, hours) array from hour chunks first would cost strided copies several times the
    read itself (measured in BENCHMARKS.md).
    """
    g = store.open_city(store_path, city)
    arr = store._member(g, direction, store_path, city)
    n_tiles = arr.shape[1]
    step = hours_per_read(arr, h1 - h0)
    hourly = np.empty((len(services), weights.shape[0], h1 - h0), dtype=np.float32)
    tiles = np.zeros((len(services), n_tiles), dtype=np.float64)
    for k, si in enumerate(services):
        # the chunks' bytes are checked against their records before they are decoded (a
        # damaged chunk is never read as data): layouts 1-2 here, once for the task's hours;
        # layout 3 as each day chunk is read
        store.check_hour_chunks(store_path, city, direction, si, h0, h1)
        for a in range(h0, h1, step):
            b = min(a + step, h1)
            blk = store.read_slots(store_path, city, direction, si, a * SLOTS_PER_HOUR, b * SLOTS_PER_HOUR,
                                   arr=arr, checked=True)  # fmt: skip
            hourly[k, :, a - h0 : b - h0] = _rollup_block(blk[None], weights)[0]
            tiles[k] += _row_sums(blk)
    return hourly, tiles


def day_blocks(arr, si: int, d0: int, d1: int, n_hours: tuple[int, ...], records: np.ndarray | None = None,
               sources: list[str] | None = None):
    """Yield ``(tiles, 25)`` blocks of local days ``d0:d1`` of an hourly array, with their hours.

    The read pattern of the hourly rollup (also the benchmark's floor of it): large cities read
    one day chunk per call, decoded in place (:func:`cpc_core.cube.store.read_day_chunk`; the yielded
    block is reused, so use it before the next one); small ones read several days per call,
    where zarr's ~0.5 ms per call would otherwise dominate. ``n_hours[i]`` hours of day
    ``d0 + i`` are data, the rest of the 25 columns is padding.

    ``records``: ``(d1 - d0, 2)`` byte size and CRC-32 of each day's chunk as written (its
    file's chunk record): when given, every chunk is read by
    :func:`cpc_core.cube.store.read_day_chunk`, which checks it before decoding (one day per call
    also for small cities: the direct read has no zarr call overhead); ``sources`` names each
    day's source file in the error.
    """
    n_tiles = arr.shape[1]
    step = int(np.clip(_READ_VALUES // max(n_tiles * store.HOURS_PAD, 1), 1, d1 - d0))
    if records is not None:
        step = 1
    buf = np.empty((n_tiles, store.HOURS_PAD), dtype=np.float32) if step == 1 else None
    for a in range(d0, d1, step):
        b = min(a + step, d1)
        if step == 1:
            rec = None if records is None else tuple(records[a - d0])
            src = sources[a - d0] if sources else ""
            blk = store.read_day_chunk(arr, si, a, buf, record=rec, describe=src)[:, None, :]
        else:
            try:
                blk = arr[si, :, a:b, :]
            except Exception as e:
                raise store.StoreDamaged(
                    f"store damaged: {store._where(arr)} chunks c/{si}/0/{a}/0..c/{si}/0/{b - 1}/0 (service #{si}, "
                    f"days #{a}..#{b - 1}): cannot be decoded ({type(e).__name__}: {e}); {store.REPAIR_HINT}") from e
        for k in range(b - a):
            yield blk[:, k, :], n_hours[a - d0 + k]


def _rollup_hourly_task(store_path: str, city: str, direction: str, si: int, d0: int, d1: int,
                        n_hours: tuple[int, ...], weights: sp.spmatrix) -> tuple[np.ndarray, np.ndarray]:
    """Read local days ``d0:d1`` of the hourly tile array and reduce them to areas at once.

    ``n_hours[i]`` is the number of hours of day ``d0 + i`` (23, 24 or 25); ``weights``
    (areas x tiles), best in CSC form. Returns ``(hourly (1, areas, sum(n_hours)) float32,
    tile sums (1, tiles) float64)``; the tile sums skip NaN hours.
    """
    g = store.open_city(store_path, city)
    arr = store._member(g, store.hourly_name(direction), store_path, city)
    records, sources = store.hourly_records(store_path, city, direction, si, d0, d1)
    w = weights if sp.isspmatrix_csc(weights) else sp.csc_matrix(weights)
    if w.shape[1] != arr.shape[1]:  # the numba kernel does not check bounds
        raise ValueError(f"{store_path}/{city}: weights for {w.shape[1]} tiles, the array has {arr.shape[1]}")
    out = np.empty((1, w.shape[0], sum(n_hours)), dtype=np.float32)
    tiles = np.zeros((1, arr.shape[1]), dtype=np.float64)
    day_sums = np.empty((w.shape[0], store.HOURS_PAD), dtype=np.float64)
    col = 0
    for full, nh in day_blocks(arr, si, d0, d1, n_hours, records=records, sources=sources):
        day_sums.fill(0.0)
        _reduce_day(full, nh, w.indptr, w.indices, w.data, day_sums, tiles[0])
        out[0, :, col : col + nh] = day_sums[:, :nh]
        col += nh
    return out, tiles


def task_spans(n_tiles: int, n_hours: int, hours_per_task: int, days: int | None = None,
               min_task_values: int = _MIN_TASK_VALUES) -> list[tuple[int, int]]:
    """The ``(start, stop)`` blocks of :func:`rollup_store`'s tasks for one service.

    With ``days`` (the hourly array's local days): blocks of ``hours_per_task // 24`` days;
    without: blocks of ``hours_per_task`` hours of the 15-minute array. Either way a task holds
    at least ``min_task_values`` tile values (a small city's tasks cover more). The
    benchmark's read floors use the same blocks, so they read what the rollup's tasks read.
    """
    if days is not None:
        step = max(1, hours_per_task // 24, -(-min_task_values // max(1, n_tiles * store.HOURS_PAD)))
        return [(d0, min(d0 + step, days)) for d0 in range(0, days, step)]
    step = max(1, hours_per_task, -(-min_task_values // max(1, n_tiles * SLOTS_PER_HOUR)))
    return [(h0, min(h0 + step, n_hours)) for h0 in range(0, n_hours, step)]


def rollup_store(
    store_path: str,
    city: str,
    weights: sp.csr_matrix,
    areas: Iterable[str],
    services: Iterable[str],
    direction: str = "DL",
    hours_per_task: int = 168,
    source: str = "auto",
    min_task_values: int = _MIN_TASK_VALUES,
) -> tuple[xr.DataArray, xr.DataArray]:
    """Hourly area traffic and tile window totals straight from a city's cube, in one pass.

    The graph has one task per service and block of about ``hours_per_task`` hours (more for a
    small city, so that a task holds at least ~2 M tile values): it reads
    the store chunk by chunk and immediately reduces each chunk to areas, so raw tile data
    never leaves the task. Same results as the ``blockwise`` rollup over
    :func:`cpc_core.cube.store.open_cube` (``scripts/_benchlib.py``, the benchmarks' earlier
    path), several times faster (no strided re-assembly).

    Parameters
    ----------
    source
        ``"hourly"``: the hourly tile array (``<DIR>_hourly``, one chunk per local day; tasks
        of ``hours_per_task // 24`` days): 4x fewer values and no slot sums, the fast path;
        ``"slots"``: the 15-minute array (a day or an hour chunk per read); ``"auto"`` (default):
        hourly when the store has it (layout version >= 2), else slots. Both give the same
        series up to float32 rounding (the hourly path sums a tile's 4 slots before weighting).
        Tile totals skip NaN at the path's own unit: a NaN hour on the hourly path, a NaN slot
        on the 15-minute one. The same for ingested data, where NaN always covers a tile's whole
        file (a missing file, a rejected line).

    min_task_values
        Least tile values per task (default ~2 M): a small city's tasks cover more hours.

    Returns
    -------
    (xarray.DataArray, xarray.DataArray)
        ``(service, area, hour)`` float32 and ``(service, tile)`` float64, both lazy.
    """
    if source not in ("auto", "hourly", "slots"):
        raise ValueError(f"source={source!r}; allowed: auto, hourly, slots")
    lost = store.lost_metadata(store_path, city)  # a few stats: never read another array in a lost one's place
    if lost:
        raise store.StoreDamaged(store.damage_message(store_path, lost))
    g = store.open_city(store_path, city)
    names = [str(s) for s in g["service"][:]]
    services = list(services)
    missing = [s for s in services if s not in names]
    if missing:
        raise ValueError(f"{store_path}/{city}: services {missing} are not in the cube (found {names})")
    if direction not in g:
        raise ValueError(f"{store_path}/{city}: no {direction} traffic in the cube")
    has_hourly = store.hourly_name(direction) in g
    if not has_hourly and g.attrs.get("layout_version", 1) >= 2:
        # the store was written with the hourly array: it is lost, not absent by design (never
        # read another array in its place without a word)
        raise store.StoreDamaged(store.damage_message(store_path, [store.Damage(
            city, store.hourly_name(direction), "zarr.json", "missing or unreadable (the store was written "
            "with it, layout version 2)")]))
    if source == "hourly" and not has_hourly:
        raise ValueError(f"{store_path}/{city}: no {store.hourly_name(direction)} array "
                         f"(a layout-version-1 store); use source='slots' or re-ingest")
    use_hourly = has_hourly and source != "slots"
    if not has_hourly and source == "auto":
        logger.warning("%s/%s: no %s array (a layout-version-1 store): the rollup reads the 15-minute array "
                       "(same series, ~4x more values read); ingest into a new store for the hourly one",
                       store_path, city, store.hourly_name(direction))
    areas = np.asarray(list(areas), dtype=object)
    w = sp.csr_matrix(weights, dtype=np.float32)
    tiles = g["tile"][:]
    if w.shape != (len(areas), len(tiles)):
        raise ValueError(f"weights are {w.shape}, expected (areas={len(areas)}, tiles={len(tiles)})")
    n_time = g["time"].shape[0]
    n_hours = n_time // SLOTS_PER_HOUR
    sidx = tuple(names.index(s) for s in services)
    import dask.array as da  # here: a cached re-run never builds this graph (issue #14)

    # the hourly kernel walks the weights tile by tile (CSC); the 15-minute path multiplies (CSR)
    wd = dask.delayed(w.tocsc() if use_hourly else w, pure=True)
    day_hours: list[int] = []  # hours of each local day (hourly path)
    if use_hourly:
        day_hours = [netmob.slots_per_day(d) // SLOTS_PER_HOUR for d in store.read_layout(store_path, city).days]
        if sum(day_hours) != n_hours:
            raise ValueError(f"{store_path}/{city}: {sum(day_hours)} hours in the local days, {n_hours} on the time axis")
    spans = task_spans(len(tiles), n_hours, hours_per_task, days=len(day_hours) if use_hourly else None,
                       min_task_values=min_task_values)
    per_service, totals = [], []
    for si in sidx:
        blocks, parts = [], []
        for a, b in spans:
            if use_hourly:
                nh = tuple(day_hours[a:b])
                task = dask.delayed(_rollup_hourly_task, pure=True, nout=2)(store_path, city, direction, si, a, b,
                                                                            nh, wd)
                width = sum(nh)
            else:
                task = dask.delayed(_rollup_store_task, pure=True, nout=2)(store_path, city, direction, (si,), a, b,
                                                                           wd)
                width = b - a
            blocks.append(da.from_delayed(task[0], (1, len(areas), width), dtype=np.float32))
            parts.append(da.from_delayed(task[1], (1, len(tiles)), dtype=np.float64))
        per_service.append(da.concatenate(blocks, axis=2))
        totals.append(da.stack(parts).sum(axis=0))
    hourly = da.concatenate(per_service, axis=0)
    tot = da.concatenate(totals, axis=0)
    minutes = g["time"][0 : n_hours * SLOTS_PER_HOUR : SLOTS_PER_HOUR]
    hours = (np.datetime64("1970-01-01T00:00", "m") + minutes.astype("timedelta64[m]")).astype("datetime64[ns]")
    h = xr.DataArray(hourly, dims=("service", "area", "hour"),
                     coords={"service": services, "area": areas, "hour": hours}, name="traffic",
                     attrs={"long_name": "hourly traffic per area (sum of tile-slots x crosswalk weights)"})
    t = xr.DataArray(tot, dims=("service", "tile"), coords={"service": services, "tile": tiles}, name="total")
    return h, t


def window_totals(hourly: xr.DataArray) -> xr.DataArray:
    """Traffic per (service, area) over the window, in float64 (NaN hours skipped)."""
    if isinstance(hourly.data, np.ndarray):
        # numpy's nansum with float64 accumulation: ~10x cheaper than xarray's masked float64 copy
        return hourly.reduce(np.nansum, dim="hour", dtype=np.float64)
    return hourly.astype(np.float64).sum("hour", skipna=True)


def combine_cities(parts: dict[str, xr.DataArray]) -> xr.DataArray:
    """Stack per-city (service, area, hour) rollups into one, summing an area's parts.

    An area covered by several cities' grids gets the sum of their traffic; hours missing in
    one city's part count as missing for that part only (``min_count=1``).
    """
    if len(parts) == 1:
        return next(iter(parts.values()))
    stacked = xr.concat(list(parts.values()), dim=pd.Index(list(parts), name="city"), join="outer")
    return stacked.sum("city", min_count=1).astype(np.float32)
