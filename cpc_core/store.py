"""The tile traffic cube: one Zarr v3 store, one group per city.

Layout of ``STORE.zarr/<City>/``::

    tile        (tile,)               int64    tile ids, sorted ascending
    service     (service,)            str      service names in the order they were added
    time        (time,)               int64    UTC instants, CF "minutes since 1970-01-01"
    day         (day,)                int64    local days, CF "days since 1970-01-01"
    DL, UL      (service, tile, time) float32  traffic; NaN = missing (never zero-filled)
    DL_hourly   (service, tile, day, local_hour[25]) float32
                                               the same traffic summed to UTC hours, one row of
                                               hours per local day (23, 24 or 25 of them; the
                                               rest of the 25 columns is NaN padding)
    DL_status   (service, day)        int8     per-file state, see ``STATUS``
    DL_total    (service, day)        float64  per-file sum of stored values (for QC)

Chunking (decided by the write pattern, see ``docs/decisions.md``): ``(1, min(tiles, 131072),
4)``, i.e. one service, all tiles of a city, one UTC hour. Paris offsets are whole hours, so
every UTC hour lies in exactly one local day and therefore in exactly one NetMob file: each
ingest task owns whole chunks, writes never race, and a file's chunks are complete the moment
its status chunk says so. A chunk is ~1.3 MB for Paris. Readers use larger Dask chunks (a day
or a week of hours) spanning many Zarr chunks; hourly rollups line up with chunk edges.

The hourly array exists because every estimate uses hourly sums only: a rollup reading it
reads 4x fewer values, in chunks of a whole day (``(1, tiles, 1, 25)``, ~8 MB for Paris), and
skips the slot sums (BENCHMARKS.md, "the hourly tile cube"). The same ingest task writes
it from the block it has just parsed, so it costs a fraction of the 15-minute write and no
extra read; a file's hourly chunk is its own (one file = one local day), so writes never race.
Stores written before it existed (layout version 1) have no ``<DIR>_hourly``; readers then
use the 15-minute arrays, and extending such a store never adds the hourly array (its old
days would read as missing).

The status array is written *after* the data of a file, one ``(1, 1)`` chunk per file, so an
interrupted run never leaves data that a later run mistakes for complete.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.storage import LocalStore

from cpc_core import netmob

__all__ = [
    "STATUS",
    "CityLayout",
    "create_or_extend",
    "file_arrays",
    "file_states",
    "has_hourly",
    "hourly_name",
    "open_city",
    "open_cube",
    "read_layout",
    "write_file_block",
]

logger = logging.getLogger(__name__)

LAYOUT_VERSION = 2  # 2: adds <DIR>_hourly
TIME_CHUNK = 4  # slots: one UTC hour, see module docstring
HOURS_PAD = 25  # columns of a local day in <DIR>_hourly: the longest day (autumn DST) has 25 hours
MAX_TILE_CHUNK = 131_072

#: Values of ``<DIR>_status``.
STATUS = {
    "pending": 0,  # fill value: never ingested or interrupted
    "ok": 1,
    "partial": 2,  # quarantine: some lines rejected (stored as NaN)
    "missing": 3,  # no file: stored as NaN
    "rejected": 4,  # quarantine: whole file rejected (stored as NaN)
}
DONE_STATES = (STATUS["ok"], STATUS["partial"])

_EPOCH = pd.Timestamp("1970-01-01")


def codec(name: str, array: str = "cube"):
    """Compressor for the traffic arrays by name (``lz4`` default, ``zstd``, ``none``).

    ``array``: ``"cube"`` (the 15-minute array: written for every file, read rarely) or
    ``"hourly"`` (the hourly tile array: read by every rollup). With ``lz4`` the hourly array
    keeps byte shuffle at level 5, which decodes 1.3-2.8x faster than bit shuffle (the
    rollup's reads); the cube uses bit shuffle at level 1, which encodes up to 2x faster.

    Chosen by measurement (``BENCHMARKS.md``, problems 8 and 18): zstd compresses the
    float32 traffic better but costs about as much CPU as parsing; against lz4 level 5 with
    byte shuffle (the cube's setting before), bit shuffle at level 1 encodes YouTube and
    Web_Adult chunks 1.1-1.7x and decimal-valued ones ~2x faster (one thread, as in a
    worker), Tor's mostly-zero ones 1.4x slower, and compresses as well or better (Tor
    excepted: ~70x instead of ~135x smaller than raw).
    """
    if array not in ("cube", "hourly"):
        raise ValueError(f"array={array!r}; allowed: cube, hourly")
    if name == "lz4":
        if array == "hourly":
            return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
        return BloscCodec(cname="lz4", clevel=1, shuffle="bitshuffle")
    if name == "zstd":
        return ZstdCodec(level=1)
    if name == "blosc-zstd":
        return BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")
    if name == "none":
        return None
    raise ValueError(f"unknown codec {name!r}; allowed: lz4, zstd, blosc-zstd, none")


@dataclass(frozen=True)
class CityLayout:
    """What a city group holds: its days, services, tiles and directions."""

    city: str
    first_day: dt.date
    last_day: dt.date
    services: tuple[str, ...]
    tiles: np.ndarray
    directions: tuple[str, ...]

    @property
    def days(self) -> list[dt.date]:
        n = (self.last_day - self.first_day).days + 1
        return [self.first_day + dt.timedelta(days=i) for i in range(n)]

    @property
    def time(self) -> pd.DatetimeIndex:
        return netmob.time_axis(self.first_day, self.last_day)

    def day_slice(self, day: dt.date) -> slice:
        """Slots of local ``day`` on this city's time axis."""
        off = int(netmob.day_offsets(self.first_day, [day])[0])
        return slice(off, off + netmob.slots_per_day(day))


def _location(store: str) -> str:
    """Local paths (also ``file://`` URLs) go to zarr's LocalStore, which creates folders;
    other URLs (``s3://``, ``gs://`` ...) to its fsspec store."""
    return store.removeprefix("file://")


def _group(store: str, mode: str = "r"):
    return zarr.open_group(_location(store), mode=mode, zarr_format=3)


def read_layout(store: str, city: str) -> CityLayout | None:
    """Layout of ``city`` in ``store``, or None when the store or the group does not exist."""
    try:
        g = _group(store)[city]
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return None
    days = g["day"][:]
    dirs = tuple(d for d in netmob.DIRECTIONS if d in g)
    return CityLayout(
        city=city,
        first_day=(_EPOCH + pd.Timedelta(days=int(days[0]))).date(),
        last_day=(_EPOCH + pd.Timedelta(days=int(days[-1]))).date(),
        services=tuple(str(s) for s in g["service"][:]),
        tiles=g["tile"][:],
        directions=dirs,
    )


def _day_numbers(days: Sequence[dt.date]) -> np.ndarray:
    return np.array([(pd.Timestamp(d) - _EPOCH).days for d in days], dtype=np.int64)


def _time_minutes(index: pd.DatetimeIndex) -> np.ndarray:
    return ((index - _EPOCH) // pd.Timedelta(minutes=1)).to_numpy().astype(np.int64)


def create_or_extend(
    store: str,
    want: CityLayout,
    compressor: str = "lz4",
    tile_chunk: int = MAX_TILE_CHUNK,
) -> CityLayout:
    """Create the city group, or extend it to cover ``want``; return the resulting layout.

    Extending appends services and later days; the tile list never changes. Runs on the
    client before any write task, so that tasks only ever write into existing arrays.

    Raises
    ------
    ValueError
        If the tiles differ from the stored ones, or days would have to be prepended.
    """
    have = read_layout(store, want.city)
    root = _group(store, mode="a")
    if have is None:
        return _create(root, want, compressor, tile_chunk)
    if not np.array_equal(have.tiles, want.tiles):
        raise ValueError(
            f"{store}/{want.city}: the files list {len(want.tiles)} tiles, the store holds "
            f"{len(have.tiles)}; a city's tile list cannot change (write a new store)"
        )
    if want.first_day < have.first_day:
        raise ValueError(
            f"{store}/{want.city}: the store starts on {have.first_day}; days before it "
            f"({want.first_day}) cannot be prepended (write a new store)"
        )
    services = have.services + tuple(s for s in want.services if s not in have.services)
    directions = have.directions + tuple(d for d in want.directions if d not in have.directions)
    last_day = max(have.last_day, want.last_day)
    out = CityLayout(want.city, have.first_day, last_day, services, have.tiles, directions)
    g = root[want.city]
    n_s, n_t, n_d = len(services), len(out.time), len(out.days)
    if n_s != len(have.services):
        g["service"].resize((n_s,))
        g["service"][:] = np.array(services, dtype=object)
    if n_t != len(have.time):
        g["time"].resize((n_t,))
        g["time"][:] = _time_minutes(out.time)
        g["day"].resize((n_d,))
        g["day"][:] = _day_numbers(out.days)
    # only arrays whose shape changes: zarr rewrites the metadata of every resize (0.2 s per
    # re-run for the four arrays of one direction, when nothing had changed)
    shapes = {d: (n_s, len(out.tiles), n_t) for d in have.directions}
    for d in have.directions:
        shapes.update({hourly_name(d): (n_s, len(out.tiles), n_d, HOURS_PAD), f"{d}_status": (n_s, n_d),
                       f"{d}_total": (n_s, n_d)})
    for name, shape in shapes.items():
        if name in g and g[name].shape != shape:
            g[name].resize(shape)
    for d in directions:
        if d not in have.directions:
            # a new direction of a version-1 store stays version 1: readers pick one layout per city
            hourly = all(hourly_name(x) in g for x in have.directions)
            _create_direction(g, d, out, compressor, tile_chunk, hourly=hourly)
    if (n_s, n_t, directions) != (len(have.services), len(have.time), have.directions):
        logger.info("extended %s/%s to %d services, %s..%s", store, want.city, n_s, out.first_day, last_day)
    return out


def _create(root, want: CityLayout, compressor: str, tile_chunk: int) -> CityLayout:
    g = root.create_group(want.city)
    g.attrs.update(
        {
            "city": want.city,
            "layout_version": LAYOUT_VERSION,
            "grid_dims": list(netmob.CITY_DIMS.get(want.city, ())),
            "grid_crs": netmob.GRID_CRS,
            "time_rule": "UTC instants of the 15-minute slots of local Europe/Paris days",
        }
    )
    tiles = np.asarray(want.tiles, dtype=np.int64)
    g.create_array("tile", shape=tiles.shape, dtype="int64", dimension_names=["tile"])[:] = tiles
    svc = g.create_array("service", shape=(len(want.services),), dtype=str, dimension_names=["service"])
    svc[:] = np.array(want.services, dtype=object)
    time = g.create_array(
        "time",
        shape=(len(want.time),),
        dtype="int64",
        chunks=(1 << 16,),
        dimension_names=["time"],
        attributes={"units": "minutes since 1970-01-01", "calendar": "proleptic_gregorian"},
    )
    time[:] = _time_minutes(want.time)
    day = g.create_array(
        "day",
        shape=(len(want.days),),
        dtype="int64",
        dimension_names=["day"],
        attributes={"units": "days since 1970-01-01", "calendar": "proleptic_gregorian",
                    "long_name": "local (Europe/Paris) day of the NetMob file"},
    )
    day[:] = _day_numbers(want.days)
    for d in want.directions:
        _create_direction(g, d, want, compressor, tile_chunk)
    logger.info(
        "created %s: %d tiles, %d services, %s..%s",
        want.city, len(tiles), len(want.services), want.first_day, want.last_day,
    )
    return want


def hourly_name(direction: str) -> str:
    """Name of the hourly array of ``direction`` (``DL`` -> ``DL_hourly``)."""
    return f"{direction}_hourly"


def has_hourly(store: str, city: str, direction: str) -> bool:
    """Whether ``city`` holds the hourly array of ``direction`` (stores of layout version >= 2)."""
    return hourly_name(direction) in open_city(store, city)


def _create_direction(g, direction: str, layout: CityLayout, compressor: str, tile_chunk: int,
                      hourly: bool = True):
    n_s, n_tiles, n_t, n_d = len(layout.services), len(layout.tiles), len(layout.time), len(layout.days)
    if hourly:
        g.create_array(
            hourly_name(direction),
            shape=(n_s, n_tiles, n_d, HOURS_PAD),
            chunks=(1, max(1, min(n_tiles, tile_chunk)), 1, HOURS_PAD),
            dtype="float32",
            fill_value=np.nan,
            compressors=codec(compressor, "hourly"),
            config={"write_empty_chunks": True},
            dimension_names=["service", "tile", "day", "local_hour"],
            attributes={"long_name": f"{direction} traffic per tile and UTC hour, one row per local day",
                        "units": "1 (normalised by the operator)", "direction": direction,
                        "comment": "column k of day d is the k-th UTC hour of local day d (the sum of "
                                   "its 4 slots; NaN if any is); columns past the day's 23/24/25 "
                                   "hours are NaN padding"},
        )
    g.create_array(
        direction,
        shape=(n_s, n_tiles, n_t),
        chunks=(1, max(1, min(n_tiles, tile_chunk)), TIME_CHUNK),
        dtype="float32",
        fill_value=np.nan,
        compressors=codec(compressor),
        # every write covers whole chunks; skipping the all-NaN check saves ~15 % of a write
        config={"write_empty_chunks": True},
        dimension_names=["service", "tile", "time"],
        attributes={"long_name": f"{direction} traffic per tile and 15-minute slot",
                    "units": "1 (normalised by the operator)", "direction": direction},
    )
    g.create_array(
        f"{direction}_status",
        shape=(n_s, n_d),
        chunks=(1, 1),
        dtype="int8",
        fill_value=0,
        dimension_names=["service", "day"],
        attributes={"flag_values": list(STATUS.values()), "flag_meanings": " ".join(STATUS)},
    )
    g.create_array(
        f"{direction}_total",
        shape=(n_s, n_d),
        chunks=(1, 1),
        dtype="float64",
        fill_value=np.nan,
        dimension_names=["service", "day"],
        attributes={"long_name": f"sum of stored {direction} values of the file"},
    )


def open_city(store: str, city: str, mode: str = "r"):
    """The zarr group of ``city`` (for writers)."""
    return _group(store, mode=mode)[city]


def write_file_block(
    store: str,
    city: str,
    direction: str,
    service_index: int,
    day_index: int,
    time_slice: slice,
    block: np.ndarray | None,
    status: int,
) -> float:
    """Write one file's (tiles, slots) block and its hourly sums, then its status; return the total.

    ``block=None`` writes NaN (a missing or rejected file), replacing any chunk a previous
    interrupted run may have left. The total is the float64 sum of the stored (non-NaN)
    values, NaN unless ``status`` is a done state.
    """
    fa = file_arrays(store, city, direction)
    arr = fa.data
    n_tiles, n_slots = arr.shape[1], time_slice.stop - time_slice.start
    if block is None:
        block = np.full((n_tiles, n_slots), np.nan, dtype=np.float32)
    block = np.ascontiguousarray(block, dtype=np.float32)
    if block.shape != (n_tiles, n_slots) or n_slots % TIME_CHUNK:
        raise ValueError(f"{city}/{direction}: block {block.shape} does not fill ({n_tiles} tiles, {n_slots} slots)")
    hours = np.empty((n_slots // TIME_CHUNK, n_tiles, TIME_CHUNK), dtype=np.float32)
    hourly = np.empty((n_tiles, HOURS_PAD), dtype=np.float32)
    total = _split_hours(block, hours, hourly)
    if not _write_whole_chunks(arr, service_index, time_slice.start, block, hours=hours):
        arr[service_index, :, time_slice] = block
    harr = fa.hourly
    if harr is not None:
        if harr.chunks[1] != n_tiles or not _put_chunks(harr, [((service_index, 0, day_index, 0), hourly)]):
            harr[service_index, :, day_index, :] = hourly
    if status not in DONE_STATES:
        total = np.nan
    _put_cell(fa.total, service_index, day_index, total)
    # status last: it is what marks the file complete
    _put_cell(fa.status, service_index, day_index, status)
    return float(total)


def _put_cell(arr, i: int, j: int, value) -> None:
    """``arr[i, j] = value`` for the per-file arrays (one chunk per cell), written directly.

    Atomically (temp file + rename, as zarr does): a status or total cut short by a killed
    worker would otherwise be an empty chunk that no later run could decode.
    """
    if arr.chunks != (1, 1) or not _put_chunks(arr, [((i, j), np.full((1, 1), value, dtype=arr.dtype))],
                                               atomic=True):
        arr[i, j] = value


@dataclass(frozen=True)
class FileArrays:
    """The arrays an ingest task writes for one (city, direction), and the city's tiles."""

    data: zarr.Array
    hourly: zarr.Array | None
    total: zarr.Array
    status: zarr.Array
    tiles: np.ndarray


_OPENED: dict[tuple, FileArrays] = {}


def _stat_key(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def file_arrays(store: str, city: str, direction: str) -> FileArrays:
    """The arrays :func:`write_file_block` writes and the city's tile list, opened once per process.

    Opening them through zarr took ~13 round trips to its event loop per file (~9 ms: 70 % of
    a small file's ingest, ~5 % of a Paris file's; BENCHMARKS.md, problem 22). On a local store
    the handles are kept while the metadata files they were opened from are unchanged (same
    inode, size and modification time: a resize, an extension or a new store at the same path
    rewrites them); other stores open them afresh every time.
    """
    loc = _location(store)
    names = (direction, hourly_name(direction), f"{direction}_total", f"{direction}_status", "tile")
    key = None
    if "://" not in loc:
        base = Path(loc).resolve() / city
        key = (str(base), direction, tuple(_stat_key(base / n / "zarr.json") for n in names))
        hit = _OPENED.get(key)
        if hit is not None:
            return hit
    g = open_city(store, city, mode="r+")
    tiles = g["tile"][:]
    tiles.flags.writeable = False
    fa = FileArrays(g[direction], g[names[1]] if names[1] in g else None, g[names[2]], g[names[3]], tiles)
    if key is not None:
        if len(_OPENED) >= 64:
            _OPENED.clear()
        _OPENED[key] = fa
    return fa


@numba.njit(cache=True, nogil=True)
def _split_hours(block, hours, hourly):  # pragma: no cover - numba
    """One pass over a file's (tiles, slots) block.

    Fills ``hours`` (slots // 4, tiles, 4): the block cut into its hour chunks, each
    contiguous; ``hourly`` (tiles, HOURS_PAD): the sum of each hour's 4 slots (float64
    accumulation, NaN when any slot is NaN), NaN-padded past the day's last hour. Returns the
    float64 sum of the non-NaN values (the file total).

    The total adds the float64 hour sums, slot by slot only for an hour with a NaN: a
    NaN-skipping test on every value kept the loop from vectorising and cost 2.7x the whole
    split (17 against 6.4 ms for a Paris file; BENCHMARKS.md, problem 17).
    """
    n_tiles, n_slots = block.shape
    n_hours = n_slots // 4
    total = 0.0
    for t in range(n_tiles):
        row = 0.0
        for h in range(n_hours):
            v0 = block[t, 4 * h]
            v1 = block[t, 4 * h + 1]
            v2 = block[t, 4 * h + 2]
            v3 = block[t, 4 * h + 3]
            hours[h, t, 0] = v0
            hours[h, t, 1] = v1
            hours[h, t, 2] = v2
            hours[h, t, 3] = v3
            acc = (np.float64(v0) + v1) + (np.float64(v2) + v3)
            hourly[t, h] = acc
            if acc == acc:
                row += acc
            else:
                for v in (v0, v1, v2, v3):
                    if v == v:
                        row += v
        for h in range(n_hours, hourly.shape[1]):
            hourly[t, h] = np.nan
        total += row
    return total


def file_states(store: str, city: str, direction: str, known: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(<DIR>_status, <DIR>_total)`` of a city, both (service, day), read whole.

    ``known``: states already read since the store's last write, by (city, direction)
    (:func:`cpc_core.ingest.read_states`); returned from there when present.

    These arrays have one chunk per file (so that parallel ingest tasks never share a chunk),
    and zarr reads each chunk through its async pipeline at ~0.35 ms apiece: 80 ms per array
    for Paris's 231 files, ~2 s for a city ingested with all 68 NetMob services, read several
    times per run. On a local store the chunk files are read and decoded directly (Paris's two
    arrays: 17 ms against 150-160 ms through zarr, ~9x); any other store or layout goes
    through zarr. Chunks never written read as the
    fill value, as in zarr.
    """
    if known and (city, direction) in known:
        return known[city, direction]
    g = open_city(store, city)
    return _read_per_file_array(g[f"{direction}_status"]), _read_per_file_array(g[f"{direction}_total"])


def _read_per_file_array(arr) -> np.ndarray:
    """The whole of a (service, day) array of (1, 1) chunks; see :func:`file_states`."""
    import os

    from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding

    sp = arr.store_path
    enc = arr.metadata.chunk_key_encoding
    decode = _chunk_decoder(arr) if isinstance(sp.store, LocalStore) and arr.chunks == (1, 1) else None
    if decode is None or not (isinstance(enc, DefaultChunkKeyEncoding) and enc.separator == "/"):
        return arr[:]
    out = np.full(arr.shape, arr.metadata.fill_value, dtype=np.dtype(arr.dtype))
    root = Path(sp.store.root) / sp.path / "c"
    if not root.is_dir():
        return out
    cell_value = np.empty((1, 1), dtype=out.dtype)
    for row in os.scandir(root):
        if not row.name.isdigit() or int(row.name) >= arr.shape[0]:
            continue
        for cell in os.scandir(row.path):
            if not cell.name.isdigit() or int(cell.name) >= arr.shape[1]:
                continue
            with open(cell.path, "rb") as fh:
                decode(fh.read(), cell_value)
            out[int(row.name), int(cell.name)] = cell_value[0, 0]
    return out


def _little_endian_bytes(arr) -> bool:
    """Whether the array's first codec stores its values as little-endian bytes (cpc's layout)."""
    from zarr.codecs import BytesCodec

    codecs = list(arr.metadata.codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec) or np.dtype(arr.dtype).byteorder == ">":
        return False
    return np.dtype(arr.dtype).itemsize == 1 or codecs[0].endian is None or codecs[0].endian.value == "little"


def _chunk_decoder(arr):
    """A function decoding one stored chunk's bytes into a given C-contiguous array, or None.

    The counterpart of :func:`_chunk_encoder`, for the layouts cpc creates: little-endian
    bytes, then blosc (the traffic arrays), zstd (zarr's default, the per-file arrays) or
    nothing.
    """
    from numcodecs import Blosc, Zstd
    from zarr.codecs import BloscCodec as ZBlosc
    from zarr.codecs import ZstdCodec as ZZstd

    if not _little_endian_bytes(arr):
        return None
    codecs = list(arr.metadata.codecs)

    def raw(data, out):
        out.view(np.uint8).reshape(-1)[:] = np.frombuffer(data, dtype=np.uint8)

    if len(codecs) == 1:
        return raw
    if len(codecs) == 2 and isinstance(codecs[1], ZBlosc):
        blosc = Blosc()
        return lambda data, out: blosc.decode(data, out=out.view(np.uint8).reshape(-1))
    if len(codecs) == 2 and isinstance(codecs[1], ZZstd):
        zstd = Zstd()
        return lambda data, out: raw(zstd.decode(data), out)
    return None


def read_day_chunk(arr, service_index: int, day_index: int, out: np.ndarray | None = None) -> np.ndarray:
    """One whole (tiles, 25) chunk of an hourly array, decoded straight into ``out``.

    zarr decodes a chunk into its own buffer and then copies it into the selection's output
    (~2x the decode for these 8 MB chunks); on a local store with the layout cpc writes, the
    chunk file is read and decoded in place. A chunk never written reads as NaN (the fill
    value), as through zarr; any other store or layout goes through zarr.
    """
    n_tiles, pad = arr.shape[1], arr.shape[3]
    if out is None:
        out = np.empty((n_tiles, pad), dtype=np.float32)
    sp = arr.store_path
    decode = _chunk_decoder(arr) if isinstance(sp.store, LocalStore) and arr.chunks == (1, n_tiles, 1, pad) else None
    if decode is None:
        out[:] = arr[service_index, :, day_index, :]
        return out
    path = Path(sp.store.root) / f"{sp.path}/{arr.metadata.encode_chunk_key((service_index, 0, day_index, 0))}"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        out.fill(np.nan)
        return out
    decode(data, out)
    return out


def _chunk_encoder(arr):
    """A function encoding one chunk exactly as the array's codecs would, or None.

    Only for the layouts cpc creates: little-endian bytes, then blosc, zstd or nothing.
    """
    from numcodecs import Blosc, Zstd
    from zarr.codecs import BloscCodec as ZBlosc
    from zarr.codecs import ZstdCodec as ZZstd

    codecs = list(arr.metadata.codecs)
    if not _little_endian_bytes(arr):
        return None
    if len(codecs) == 1:
        return lambda chunk: chunk.tobytes()
    if len(codecs) == 2 and isinstance(codecs[1], ZBlosc):
        c = codecs[1]
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[c.shuffle.name]
        blosc = Blosc.from_config({"cname": c.cname.name, "clevel": c.clevel, "shuffle": shuffle,
                                   "blocksize": c.blocksize, "typesize": c.typesize})
        return lambda chunk: blosc.encode(chunk.view(np.uint8).reshape(-1))
    if len(codecs) == 2 and isinstance(codecs[1], ZZstd):
        zstd = Zstd(level=codecs[1].level, checksum=codecs[1].checksum)
        return lambda chunk: zstd.encode(chunk.view(np.uint8).reshape(-1))
    return None


def _write_whole_chunks(arr, service_index: int, start: int, block: np.ndarray,
                        hours: np.ndarray | None = None) -> bool:
    """Write a (tiles, slots) block that covers whole hour chunks, encoding them directly.

    zarr's generic write path allocates each chunk, fills it, gathers the strided hour out of
    the block, compares it with the fill value and only then encodes (BENCHMARKS.md: ~60 % of
    a file's write time). Here each hour is made contiguous in one copy (or taken from
    ``hours``, the same cut made by :func:`_split_hours`), encoded with the array's own codec
    settings and stored under the array's own chunk keys, all in one batch.
    Returns False (caller uses ``arr[...] = block``) for any layout this does not cover.
    """
    n_tiles, n_slots = block.shape
    if arr.chunks[1] != n_tiles or arr.chunks[2] != TIME_CHUNK or start % TIME_CHUNK or n_slots % TIME_CHUNK:
        return False
    if hours is None:
        hours = np.ascontiguousarray(
            block.astype(np.float32, copy=False).reshape(n_tiles, n_slots // TIME_CHUNK, TIME_CHUNK).transpose(1, 0, 2)
        )
    h0 = start // TIME_CHUNK
    return _put_chunks(arr, [((service_index, 0, h0 + k), hours[k]) for k in range(hours.shape[0])])


def _put_chunks(arr, chunks: list[tuple[tuple[int, ...], np.ndarray]], atomic: bool = False) -> bool:
    """Encode whole chunks (C-contiguous arrays of the chunk's shape) and store them.

    Returns False, writing nothing, when the array's codecs have no direct encoder.
    ``atomic``: on a local store, write each chunk to a temp file and rename it into place.
    """
    import asyncio

    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    encode = _chunk_encoder(arr)
    if encode is None:
        return False
    sp = arr.store_path
    items = [(f"{sp.path}/{arr.metadata.encode_chunk_key(coords)}", encode(np.ascontiguousarray(c)))
             for coords, c in chunks]
    if isinstance(sp.store, LocalStore):
        # plain file writes: zarr's LocalStore makes the folders and a temp file per chunk
        # (~40 % of a write). A data chunk cut short by a crash is harmless: its file's
        # status stays `pending` and the next run rewrites every chunk of that file; the
        # status and total cells themselves are written atomically (`atomic`).
        root = Path(sp.store.root)
        made: set[Path] = set()
        for key, data in items:
            path = root / key
            if path.parent not in made:
                path.parent.mkdir(parents=True, exist_ok=True)
                made.add(path.parent)
            target, path = path, (path.with_name(f".{path.name}.{os.getpid()}.tmp") if atomic else path)
            with open(path, "wb") as fh:
                fh.write(data)
            if atomic:
                os.replace(path, target)
        return True
    proto = default_buffer_prototype()

    async def put():
        await asyncio.gather(*(sp.store.set(key, proto.buffer.from_bytes(data)) for key, data in items))

    sync(put())
    return True


def open_cube(store: str, city: str, chunks: dict | None = None) -> xr.Dataset:
    """Lazy xarray view of a city group (Dask-backed), time decoded to UTC datetimes.

    Parameters
    ----------
    chunks
        Dask chunks; default one service, all tiles, one local-day's worth of hours (96 slots).

    Examples
    --------
    >>> ds = open_cube("cube.zarr", "Lyon")  # doctest: +SKIP
    >>> ds["DL"].sel(service="Tor")  # doctest: +SKIP
    """
    if chunks is None:
        chunks = {"service": 1, "tile": -1, "time": 96}
    return xr.open_zarr(_location(store), group=city, chunks=chunks, consolidated=False)
