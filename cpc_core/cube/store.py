"""The tile traffic cube: one Zarr v3 store, one group per city.

Layout of ``STORE.zarr/<City>/``::

    tile        (tile,)               int64    tile ids, sorted ascending
    service     (service,)            str      service names in the order they were added
    time        (time,)               int64    UTC instants, CF "minutes since 1970-01-01"
    day         (day,)                int64    local days, CF "days since 1970-01-01"
    DL, UL      (service, tile, day, slot[100]) float32
                                               traffic, one row of slots per local day (92, 96
                                               or 100 of them; the rest is NaN padding); NaN =
                                               missing (never zero-filled)
    DL_hourly   (service, tile, day, local_hour[25]) float32
                                               the same traffic summed to UTC hours, one row of
                                               hours per local day (23, 24 or 25 of them; the
                                               rest of the 25 columns is NaN padding)
    DL_status   (service, day)        int8     per-file state, see ``STATUS``
    DL_total    (service, day)        float64  per-file sum of stored values (for QC)
    DL_chunks   (service, day, 26, 2) uint32   per-file record of the chunks it wrote: byte size
                                               and CRC-32 of its DL chunk (entry 0) and of its
                                               DL_hourly chunk (entry 25); 0, 0 = not recorded

This is layout version 3. Chunking (decided by the write pattern, see ``docs/decisions.md``):
``(1, min(tiles, 131072), 1, 100)``, i.e. one service, all tiles of a city, one local day: one
chunk per NetMob file, so each ingest task owns whole chunks, writes never race, and a file's
chunks are complete the moment its status chunk says so. A chunk is ~33 MB before compression
for Paris. :func:`open_cube` gives the (service, tile, time) view (slot k of day d is the UTC
instant ``time[offset of d + k]``), one Dask chunk per file.

Layouts 1 and 2 (stores written before) index ``DL``/``UL`` by UTC time, ``(service, tile,
time)`` in chunks of one UTC hour ``(1, tiles, 4)`` (Paris offsets are whole hours, so every
UTC hour lies in one local day and one file; a longer chunk would straddle a DST day), and
record a file's hour chunks in entries 0..24 of ``DL_chunks``. They are read, verified,
repaired and extended as they are: a city keeps the layout it was created with, and every
reader branches on the traffic array's shape.

The hourly array exists because every estimate uses hourly sums only: a rollup reading it
reads 4x fewer values, in chunks of a whole day (``(1, tiles, 1, 25)``, ~8 MB for Paris), and
skips the slot sums (``docs/benchmarks-history.md``, problem 4). The same ingest task writes
it from the block it has just parsed, so it costs a fraction of the 15-minute write and no
extra read; a file's hourly chunk is its own (one file = one local day), so writes never race.
Stores written before it existed (layout version 1) have no ``<DIR>_hourly``; readers then
use the 15-minute arrays, and extending such a store never adds the hourly array (its old
days would read as missing).

The status array is written *after* the data of a file, one ``(1, 1)`` chunk per file, so an
interrupted run never leaves data that a later run mistakes for complete.

Damage (a chunk truncated, overwritten, deleted; a ``zarr.json`` gone) is found, named and
repaired (``docs/decisions.md``, "a damaged store is found, named and repaired"): every
file's chunk record (``<DIR>_chunks``, written after its data and before its status) holds
the size and CRC-32 of each chunk as written.
:func:`verify` compares the chunk files with it (sizes only, one directory listing per array,
on every ingest; CRCs too with ``cpc ingest --repair``), :func:`repair_metadata` recreates
lost metadata, and the rollup checks the CRC of every chunk it reads, so a damaged chunk is
never read as data: it raises :class:`cpc_core.errors.StoreDamaged` naming the city, array,
chunk and source file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import json
import logging
import os
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from cpc_core import _jit  # numba.njit at the first call: numba is not imported with the module
from cpc_core.cube import _zarr
from cpc_core.errors import EnvironmentUnavailable, StoreDamaged
from cpc_core.netmob import facts as netmob

__all__ = [
    "STATUS",
    "CityLayout",
    "Damage",
    "chunks_name",
    "create_or_extend",
    "file_arrays",
    "file_states",
    "has_hourly",
    "hourly_name",
    "open_city",
    "open_cube",
    "read_layout",
    "repair_metadata",
    "verify",
    "write_file_block",
]

logger = logging.getLogger(__name__)

LAYOUT_VERSION = 3  # 2: adds <DIR>_hourly; 3: <DIR> indexed by local day (one chunk per file)
TIME_CHUNK = 4  # slots of a layout-2 store's <DIR> chunk: one UTC hour, see module docstring
HOURS_PAD = 25  # columns of a local day in <DIR>_hourly: the longest day (autumn DST) has 25 hours
SLOTS_PAD = 4 * HOURS_PAD  # columns of a local day in a layout-3 <DIR>: the autumn DST day has 100 slots
MAX_TILE_CHUNK = 131_072
#: entries of a file's chunk record: its DL chunk (layout 3: entry 0; layouts 1-2: its hour chunks, at
#: most 25, the autumn DST day) + its hourly chunk
CHUNK_RECORDS = HOURS_PAD + 1
HOURLY_RECORD = HOURS_PAD  # the entry of the hourly chunk
DAY_RECORD = 0  # the entry of a layout-3 file's one <DIR> chunk

#: the remedy every StoreDamaged message ends with (a plain re-run repairs lost metadata and
#: chunks of the wrong size too, but only --repair compares checksums: this one always works)
REPAIR_HINT = "run `cpc ingest --repair` with the same --input and --store to re-ingest the affected files"

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
    ``"hourly"`` (the hourly tile array: read by every rollup). With ``lz4`` the cube uses bit
    shuffle at level 1, which encodes faster (its cost is paid by every file written), and the
    hourly array byte shuffle at level 5, which decodes faster (its cost is paid by every
    rollup). ``zstd`` compresses the float32 traffic a little better for about the CPU of the
    parse; ``blosc-zstd`` is the archival choice. The measurements behind these choices are in
    ``docs/benchmarks-history.md`` (problems 8 and 18).
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
    if mode != "r":
        _LAYOUTS.clear()  # this process writes: the layouts read so far are not trusted
    return zarr.open_group(_location(store), mode=mode, zarr_format=3)


#: :func:`read_layout`'s answers for local stores: (store, city, check) -> (stamp, layout).
#: A run reads a city's layout ~12 times (plan, checks, rollup tasks...), each through zarr
#: (~10 ms: three coordinate arrays and the metadata checks); 4 cities made 0.4 s of a demo.
_LAYOUTS: dict[tuple[str, str, bool], tuple[tuple, CityLayout]] = {}
_LAYOUTS_MAX = 64
#: Files changed this recently are not trusted by their time stamps (the file system's clock
#: ticks coarsely: a second write in the same tick, of the same size, would look unchanged).
_RACY_NS = 50_000_000


def _layout_stamp(store: str, city: str) -> tuple | None:
    """(path, size, mtime_ns, inode) of every file :func:`read_layout` and
    :func:`lost_metadata` read for ``city`` (the root and city ``zarr.json``, each array's
    ``zarr.json``, the coordinates' chunk files) and the city folder's entries. None for an
    object store, a missing folder, or a file changed (or its inode, ctime) within the last
    :data:`_RACY_NS` (not cached then)."""
    if "://" in _location(store):
        return None
    root = os.path.abspath(_location(store))
    cdir = os.path.join(root, city)
    rows: list[tuple] = []
    newest = 0

    def add(path: str) -> None:
        nonlocal newest
        st = os.stat(path)
        rows.append((path, st.st_size, st.st_mtime_ns, st.st_ino))
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)

    try:
        add(os.path.join(root, "zarr.json"))
        add(os.path.join(cdir, "zarr.json"))
        with os.scandir(cdir) as it:
            names = sorted(e.name for e in it if e.name != "zarr.json")
        rows.append(tuple(names))
        for name in names:
            add(os.path.join(cdir, name, "zarr.json"))
            if name in COORDINATES:
                for dirpath, dirs, files in os.walk(os.path.join(cdir, name, "c")):
                    dirs.sort()
                    for f in sorted(files):
                        add(os.path.join(dirpath, f))
    except OSError:
        return None
    if time.time_ns() - newest < _RACY_NS:
        return None
    return tuple(rows)


def read_layout(store: str, city: str, check: bool = True) -> CityLayout | None:
    """Layout of ``city`` in ``store``, or None when the store or the group does not exist.

    ``check``: first look for lost metadata (:func:`lost_metadata`, a few file checks).

    A local store's answer is kept and given again while none of the files it was read from
    has changed (their size, time stamps and inode: :func:`_layout_stamp`); opening the store
    for writing in this process forgets every answer.

    Raises
    ------
    cpc_core.errors.StoreDamaged
        When the store or the city is there but metadata is lost (a ``zarr.json`` missing or
        unreadable, a coordinate array that cannot be read), naming it and the remedy.
    """
    key = (_location(store), city, check)
    stamp = _layout_stamp(store, city)
    if stamp is not None:
        hit = _LAYOUTS.get(key)
        if hit is not None and hit[0] == stamp:
            return dataclasses.replace(hit[1], tiles=hit[1].tiles.copy())
    layout = _read_layout(store, city, check)
    if stamp is not None and layout is not None and stamp == _layout_stamp(store, city):
        if len(_LAYOUTS) >= _LAYOUTS_MAX:
            _LAYOUTS.clear()
        _LAYOUTS[key] = (stamp, dataclasses.replace(layout, tiles=layout.tiles.copy()))
    return layout


def _read_layout(store: str, city: str, check: bool) -> CityLayout | None:
    lost = lost_metadata(store, city) if check else []
    if lost:
        raise StoreDamaged(damage_message(store, lost))
    try:
        g = _group(store)[city]
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return None
    try:
        days = g["day"][:]
        services = tuple(str(s) for s in g["service"][:])
        tiles = g["tile"][:]
    except Exception as e:  # a coordinate chunk that cannot be decoded
        raise StoreDamaged(f"store damaged: {store}/{city}: its coordinates (day, service, tile) cannot be read "
                           f"({type(e).__name__}: {e}); {REPAIR_HINT}") from e
    dirs = tuple(d for d in netmob.DIRECTIONS if d in g)
    return CityLayout(
        city=city,
        first_day=(_EPOCH + pd.Timedelta(days=int(days[0]))).date(),
        last_day=(_EPOCH + pd.Timedelta(days=int(days[-1]))).date(),
        services=services,
        tiles=tiles,
        directions=dirs,
    )


COORDINATES = ("tile", "service", "time", "day")

#: Version of the CF-style attributes (``units``, ``long_name``, ``description``) the arrays
#: carry; a city group records it as ``cf_attributes``, and :func:`create_or_extend` adds the
#: attributes to the arrays of a store written before (one metadata write per array, once).
CF_ATTRIBUTES = 1

#: The unit of the traffic values (docs/outputs.md, "Units"): NetMob23 gives the operator's
#: normalised volumes no physical unit, so the unit is named, not a udunits string.
TRAFFIC_UNITS = "NetMob23 traffic units"

#: CF-style attributes of the coordinates. ``time`` and ``day`` keep their CF encoding
#: (``units`` "minutes/days since 1970-01-01"), which xarray decodes to datetimes.
COORDINATE_ATTRS: dict[str, dict] = {
    "tile": {"units": "1", "long_name": "NetMob23 tile id",
             "description": "id of the tile on the city's NetMob23 100 m grid (row-major), ascending; "
                            "the tile geometries are in the city's NetMob23 GeoJSON"},
    "service": {"units": "1", "long_name": "NetMob23 service",
                "description": "name of the mobile service, as in the NetMob23 file names (e.g. Tor, "
                               "Web_Adult, YouTube)"},
    "time": {"units": "minutes since 1970-01-01", "calendar": "proleptic_gregorian",
             "standard_name": "time", "long_name": "start of the 15-minute slot (UTC)",
             "description": "UTC instant at which each 15-minute slot of the local (Europe/Paris) "
                            "NetMob23 days starts; a DST day has 92 or 100 slots"},
    "day": {"units": "days since 1970-01-01", "calendar": "proleptic_gregorian",
            "long_name": "local (Europe/Paris) day of the NetMob file",
            "description": "the date in the NetMob23 file name; one file per city, service, day and "
                           "direction"},
}


def _city_attrs(city: str, version: int | None = None) -> dict:
    """The attributes :func:`_create` gives a city group (``tiles_from`` is added by the ingest);
    ``version``: the layout's, :data:`LAYOUT_VERSION` by default."""
    return {
        "city": city,
        "layout_version": LAYOUT_VERSION if version is None else version,
        "grid_dims": list(netmob.CITY_DIMS.get(city, ())),
        "grid_crs": netmob.GRID_CRS,
        "time_rule": "UTC instants of the 15-minute slots of local Europe/Paris days",
        "chunk_records": True,
        "cf_attributes": CF_ATTRIBUTES,
        "description": f"NetMob23 mobile traffic of {city} per tile, service and 15-minute slot, as "
                       "ingested by cpc (docs/outputs.md, cube.zarr); NaN = missing, never zero-filled",
    }


@dataclass(frozen=True)
class Damage:
    """One piece of damage: where it is, why, and the source files whose data it held."""

    city: str
    array: str
    chunk: str  # the chunk key (``c/0/0/5``), or ``zarr.json`` for lost metadata
    reason: str
    direction: str | None = None
    #: (service index, day index) of the files whose data the chunk held (re-ingested by a repair)
    cells: tuple[tuple[int, int], ...] = ()
    sources: tuple[str, ...] = ()

    def describe(self, store: str) -> str:
        """``STORE/City/ARRAY chunk KEY (from SOURCE): REASON``."""
        where = "/".join(x for x in (str(store).rstrip("/"), self.city, self.array) if x)
        what = "metadata (zarr.json)" if self.chunk == "zarr.json" else f"chunk {self.chunk}"
        src = f" (from {', '.join(self.sources)})" if self.sources else ""
        return f"{where} {what}{src}: {self.reason}"


def damage_message(store: str, found: Sequence[Damage], shown: int = 3) -> str:
    """The one-line ``store damaged: ...`` message for ``found`` (the first few named)."""
    head = "; ".join(d.describe(store) for d in found[:shown])
    more = f"; and {len(found) - shown} more" if len(found) > shown else ""
    return f"store damaged: {head}{more}; {REPAIR_HINT}"


def _fs(store: str):
    import fsspec

    return fsspec.core.url_to_fs(_location(store))


def _json_doc(fs, path: str) -> dict | None:
    """A zarr v3 metadata document (group or array), or None when missing or unreadable."""
    try:
        meta = json.loads(fs.cat_file(path))
    except (FileNotFoundError, ValueError, UnicodeDecodeError):
        return None
    ok = isinstance(meta, dict) and meta.get("zarr_format") == 3 and meta.get("node_type") in ("group", "array")
    return meta if ok else None


def _json_ok(fs, path: str) -> bool:
    return _json_doc(fs, path) is not None


def _expected_arrays(fs, cdir: str, attrs: dict | None) -> dict[str, str | None]:
    """Arrays a city folder should hold, each with its direction (None for the coordinates).

    A direction is expected when any of its arrays' folders is there; its hourly array when the
    group says layout version >= 2 (or its folder is there); its chunk records when the group
    says it keeps them (or their folder is there): so that a store written before either is
    not taken for a damaged one.
    """
    names = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(cdir, detail=False)}
    want: dict[str, str | None] = {c: None for c in COORDINATES}
    attrs = attrs or {}
    for d in netmob.DIRECTIONS:
        if not any(n in names for n in direction_arrays(d)):
            continue
        for n in direction_arrays(d):
            if n == hourly_name(d) and attrs.get("layout_version", 1) < 2 and n not in names:
                continue
            if n == chunks_name(d) and not attrs.get("chunk_records") and n not in names:
                continue
            want[n] = d
    return want


def lost_metadata(store: str, city: str | None = None) -> list[Damage]:
    """Metadata the store (and ``city``) should have and has not: a ``zarr.json`` missing or
    unreadable at the root, the city group or one of its arrays. Empty for a store or city
    that does not exist (yet)."""
    fs, root = _fs(store)
    root = root.rstrip("/")
    try:
        if not fs.isdir(root) or not fs.ls(root, detail=False):
            return []
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    if not _json_ok(fs, f"{root}/zarr.json"):
        out.append(Damage("", "", "zarr.json", "the root group's metadata is missing or unreadable"))
    if city is None or not fs.isdir(f"{root}/{city}"):
        return out
    cdir = f"{root}/{city}"
    attrs = None
    group = _json_doc(fs, f"{cdir}/zarr.json")
    if group is not None:
        attrs = group.get("attributes", {})
    else:
        out.append(Damage(city, "", "zarr.json", "the city group's metadata is missing or unreadable"))
    for name, d in _expected_arrays(fs, cdir, attrs).items():
        if not _json_ok(fs, f"{cdir}/{name}/zarr.json"):
            out.append(Damage(city, name, "zarr.json", "missing or unreadable", direction=d))
    return out


def _day_numbers(days: Sequence[dt.date]) -> np.ndarray:
    return np.array([(pd.Timestamp(d) - _EPOCH).days for d in days], dtype=np.int64)


def _time_minutes(index: pd.DatetimeIndex) -> np.ndarray:
    return ((index - _EPOCH) // pd.Timedelta(minutes=1)).to_numpy().astype(np.int64)


def create_or_extend(store: str, want: CityLayout, compressor: str = "lz4",
                     tile_chunk: int = MAX_TILE_CHUNK) -> CityLayout:
    """Create the city group, or extend it to cover ``want``; return the resulting layout.

    Extending appends services and later days; the tile list never changes. Runs on the
    client before any write task, so that tasks only ever write into existing arrays.

    Raises
    ------
    ValueError
        If the tiles differ from the stored ones, or days would have to be prepended.
    cpc_core.errors.EnvironmentUnavailable
        When the store cannot be written (disk full, read-only, permissions), naming the path.
    """
    try:
        return _create_or_extend_impl(store, want, compressor, tile_chunk)
    except OSError as e:
        raise _environment_error(e, f"{store}/{want.city}") from e


def _create_or_extend_impl(
    store: str,
    want: CityLayout,
    compressor: str = "lz4",
    tile_chunk: int = MAX_TILE_CHUNK,
) -> CityLayout:
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
    # only arrays whose shape changes: zarr rewrites the metadata of every resize, a fixed cost
    # a re-run that changes nothing must not pay
    version = layout_version(g)
    by_day = (n_s, len(out.tiles), n_d, SLOTS_PAD)
    shapes = {d: by_day if version >= 3 else (n_s, len(out.tiles), n_t) for d in have.directions}
    for d in have.directions:
        shapes.update({hourly_name(d): (n_s, len(out.tiles), n_d, HOURS_PAD), f"{d}_status": (n_s, n_d),
                       f"{d}_total": (n_s, n_d), chunks_name(d): (n_s, n_d, CHUNK_RECORDS, 2)})
    for name, shape in shapes.items():
        if name in g and g[name].shape != shape:
            g[name].resize(shape)
    for d in have.directions:
        if chunks_name(d) not in g:
            # a store written before the chunk records: files ingested from now on are recorded;
            # the older ones are checked for presence only
            _create_direction(g, d, out, compressor, tile_chunk, version=version, names=[chunks_name(d)])
            logger.info("%s/%s: added %s (chunk sizes and checksums of files ingested from now on)",
                        store, want.city, chunks_name(d))
    if not g.attrs.get("chunk_records"):
        g.attrs["chunk_records"] = True
    if g.attrs.get("cf_attributes", 0) < CF_ATTRIBUTES:
        _add_cf_attributes(g, out, compressor, tile_chunk)
        logger.info("%s/%s: added units, long_name and description to the arrays", store, want.city)
    for d in directions:
        if d not in have.directions:
            # a new direction gets the city's layout version: readers pick one layout per city
            _create_direction(g, d, out, compressor, tile_chunk, version=version)
    if (n_s, n_t, directions) != (len(have.services), len(have.time), have.directions):
        logger.info("extended %s/%s to %d services, %s..%s", store, want.city, n_s, out.first_day, last_day)
    return out


def _add_cf_attributes(g, layout: CityLayout, compressor: str, tile_chunk: int) -> None:
    """Give the arrays of a store written before :data:`CF_ATTRIBUTES` their attributes.

    Only attributes change (each array's ``zarr.json``); the chunks are not touched.
    """
    names = set(g.array_keys())
    for name, attrs in COORDINATE_ATTRS.items():
        if name in names:
            g[name].attrs.update(attrs)
    for d in layout.directions:
        for name, spec in _direction_specs(d, layout, compressor, tile_chunk, layout_version(g)).items():
            if name in names:
                g[name].attrs.update(spec["attributes"])
    g.attrs.update({"cf_attributes": CF_ATTRIBUTES, "description": _city_attrs(layout.city)["description"]})


def _create(root, want: CityLayout, compressor: str, tile_chunk: int) -> CityLayout:
    g = root.create_group(want.city)
    g.attrs.update(_city_attrs(want.city, LAYOUT_VERSION))
    tiles = np.asarray(want.tiles, dtype=np.int64)
    g.create_array("tile", shape=tiles.shape, dtype="int64", dimension_names=["tile"],
                   attributes=COORDINATE_ATTRS["tile"])[:] = tiles
    svc = g.create_array("service", shape=(len(want.services),), dtype=str, dimension_names=["service"],
                         attributes=COORDINATE_ATTRS["service"])
    svc[:] = np.array(want.services, dtype=object)
    time = g.create_array(
        "time",
        shape=(len(want.time),),
        dtype="int64",
        chunks=(1 << 16,),
        dimension_names=["time"],
        attributes=COORDINATE_ATTRS["time"],
    )
    time[:] = _time_minutes(want.time)
    day = g.create_array(
        "day",
        shape=(len(want.days),),
        dtype="int64",
        dimension_names=["day"],
        attributes=COORDINATE_ATTRS["day"],
    )
    day[:] = _day_numbers(want.days)
    for d in want.directions:
        _create_direction(g, d, want, compressor, tile_chunk, LAYOUT_VERSION)
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


def chunks_name(direction: str) -> str:
    """Name of the per-file chunk record array of ``direction`` (``DL`` -> ``DL_chunks``)."""
    return f"{direction}_chunks"


def direction_arrays(direction: str, hourly: bool = True) -> tuple[str, ...]:
    """Names of the arrays a direction has (the hourly one only in layout version >= 2)."""
    names = (direction, f"{direction}_status", f"{direction}_total", chunks_name(direction))
    return (hourly_name(direction), *names) if hourly else names


def _traffic_spec(direction: str, layout: CityLayout, compressor: str, tile_chunk: int, version: int) -> dict:
    """``create_array`` arguments of the 15-minute array of ``direction``: indexed by local day
    (layout version 3, one chunk per file) or by UTC time (versions 1 and 2, one chunk per hour)."""
    n_s, n_tiles, n_t, n_d = len(layout.services), len(layout.tiles), len(layout.time), len(layout.days)
    tc = max(1, min(n_tiles, tile_chunk))
    common = dict(
        dtype="float32",
        fill_value=np.nan,
        compressors=codec(compressor),
        # every write covers whole chunks: the all-NaN check would cost and skip nothing
        config={"write_empty_chunks": True},
    )
    attrs = {"long_name": f"{direction} traffic per tile and 15-minute slot",
             "units": f"{TRAFFIC_UNITS} per 15-minute slot", "direction": direction,
             "description": f"the {direction} values of the NetMob23 files (volumes normalised "
                            "by the operator, no physical unit); NaN = missing or rejected, "
                            "never zero-filled"}  # fmt: skip
    if version < 3:
        return dict(shape=(n_s, n_tiles, n_t), chunks=(1, tc, TIME_CHUNK), dimension_names=["service", "tile", "time"],
                    attributes=attrs, **common)  # fmt: skip
    attrs["comment"] = ("column k of day d is the k-th 15-minute slot of local day d, which starts at the "
                        "UTC instant time[offset of day d + k]; columns past the day's 92/96/100 slots "
                        "are NaN padding (cpc_core.cube.store.open_cube gives the (service, tile, time) "
                        "view)")  # fmt: skip
    return dict(shape=(n_s, n_tiles, n_d, SLOTS_PAD), chunks=(1, tc, 1, SLOTS_PAD),
                dimension_names=["service", "tile", "day", "slot"], attributes=attrs, **common)  # fmt: skip


def _direction_specs(direction: str, layout: CityLayout, compressor: str, tile_chunk: int,
                     version: int | None = None) -> dict[str, dict]:  # fmt: skip
    """``create_array`` arguments of each array of ``direction``, by name (the expected layout of
    a city of layout ``version``, :data:`LAYOUT_VERSION` by default; also what
    :func:`repair_metadata` recreates)."""
    version = LAYOUT_VERSION if version is None else version
    n_s, n_tiles, n_d = len(layout.services), len(layout.tiles), len(layout.days)
    return {
        hourly_name(direction): dict(
            shape=(n_s, n_tiles, n_d, HOURS_PAD),
            chunks=(1, max(1, min(n_tiles, tile_chunk)), 1, HOURS_PAD),
            dtype="float32",
            fill_value=np.nan,
            compressors=codec(compressor, "hourly"),
            config={"write_empty_chunks": True},
            dimension_names=["service", "tile", "day", "local_hour"],
            attributes={"long_name": f"{direction} traffic per tile and UTC hour, one row per local day",
                        "units": f"{TRAFFIC_UNITS} per hour", "direction": direction,
                        "description": f"the {direction} values of the files summed to UTC hours (the "
                                       "4 slots of each hour); NaN if any slot is missing",
                        "comment": "column k of day d is the k-th UTC hour of local day d (the sum of "
                                   "its 4 slots; NaN if any is); columns past the day's 23/24/25 "
                                   "hours are NaN padding"},
        ),
        direction: _traffic_spec(direction, layout, compressor, tile_chunk, version),
        f"{direction}_status": dict(
            shape=(n_s, n_d),
            chunks=(1, 1),
            dtype="int8",
            fill_value=0,
            dimension_names=["service", "day"],
            attributes={"flag_values": list(STATUS.values()), "flag_meanings": " ".join(STATUS),
                        "units": "1", "long_name": f"ingest state of each {direction} file",
                        "description": "per (service, day) file: 0 pending (never ingested or "
                                       "interrupted), 1 ok, 2 partial (some lines rejected, stored as "
                                       "NaN), 3 missing (no file, NaN), 4 rejected (whole file, NaN)"},
        ),
        f"{direction}_total": dict(
            shape=(n_s, n_d),
            chunks=(1, 1),
            dtype="float64",
            fill_value=np.nan,
            dimension_names=["service", "day"],
            attributes={"long_name": f"sum of stored {direction} values of the file",
                        "units": TRAFFIC_UNITS,
                        "description": f"per (service, day) file, the sum over tiles and slots of the "
                                       f"{direction} values stored (NaN ignored), for quality checks"},
        ),
        chunks_name(direction): dict(
            shape=(n_s, n_d, CHUNK_RECORDS, 2),
            chunks=(1, 1, CHUNK_RECORDS, 2),
            dtype="uint32",
            fill_value=0,
            # 208 bytes a cell: uncompressed, so that verify reads them at memcpy cost (zstd's
            # per-call overhead was ~2/3 of a re-run's verification)
            compressors=None,
            dimension_names=["service", "day", "file_chunk", "size_crc32"],
            attributes={"long_name": f"byte size and CRC-32 of each chunk a {direction} file wrote, as written",
                        "units": "1",
                        "description": "[..., 0]: the chunk's size in bytes, [..., 1]: its CRC-32, "
                                       "compared by cpc ingest to find damaged chunks",
                        "comment": (f"entry 0: the file's chunk of {direction}" if version >= 3 else
                                    f"entries 0..24: the file's hour chunks of {direction} in time order")
                                   + f"; entry 25: its {hourly_name(direction)} chunk; 0, 0: not recorded"},
        ),
    }


def _create_direction(g, direction: str, layout: CityLayout, compressor: str, tile_chunk: int,
                      version: int | None = None, names: Sequence[str] | None = None):
    """Create the arrays of ``direction`` in a city of layout ``version`` (:data:`LAYOUT_VERSION`
    by default; only ``names`` when given, replacing what is there)."""
    version = LAYOUT_VERSION if version is None else version
    specs = _direction_specs(direction, layout, compressor, tile_chunk, version)
    for name, spec in specs.items():
        if names is None:
            if name == hourly_name(direction) and version < 2:
                continue
            g.create_array(name, **spec)
        elif name in names:
            g.create_array(name, overwrite=True, **spec)


def open_city(store: str, city: str, mode: str = "r"):
    """The zarr group of ``city`` (for writers).

    Raises
    ------
    cpc_core.errors.StoreDamaged
        When the store or the city group is there but its metadata is lost.
    """
    try:
        return _group(store, mode=mode)[city]
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        lost = lost_metadata(store, city)
        if lost:
            raise StoreDamaged(damage_message(store, lost)) from None
        raise


def _member(g, name: str, store: str, city: str):
    """``g[name]``, or :class:`StoreDamaged` naming the array when its metadata is lost."""
    try:
        return g[name]
    except KeyError:
        raise StoreDamaged(damage_message(store, [Damage(city, name, "zarr.json", "missing or unreadable")])) from None


def source_file(layout: CityLayout | None, direction: str, si: int, di: int) -> str:
    """The NetMob file (relative path) whose data cell (service ``si``, day ``di``) holds."""
    if layout is None or si >= len(layout.services) or di >= len(layout.days):
        return f"service #{si}, day #{di}"
    return netmob.file_path(layout.city, layout.services[si], layout.days[di], direction)


def repair_metadata(store: str, cities: Sequence[str], compressor: str = "lz4",
                    tile_chunk: int = MAX_TILE_CHUNK) -> list[Damage]:
    """Recreate lost metadata of ``store`` and of each city in ``cities``; return what was lost.

    What can be trusted is kept, what cannot is set up to be ingested again:

    - the root or a city group's ``zarr.json``: written again (a group holds only attributes;
      a city's ``tiles_from``, where its tile list was first taken from, is lost);
    - a coordinate array (tile, service, time, day): the city's layout is unknown, so its
      folder is removed and the next ingest builds it from the input files;
    - an array of a direction: recreated empty from the expected layout (the store's own
      tiles, services and days), and the direction's per-file arrays reset, so that every file
      of that direction is ingested again (the other direction is kept).

    Each repair is logged at WARNING. Storage errors are :class:`EnvironmentUnavailable`.
    """
    try:
        return _repair_metadata_impl(store, cities, compressor, tile_chunk)
    except OSError as e:
        raise _environment_error(e, str(store)) from e


def _repair_metadata_impl(store: str, cities: Sequence[str], compressor: str = "lz4",
                    tile_chunk: int = MAX_TILE_CHUNK) -> list[Damage]:
    lost = lost_metadata(store)
    for city in cities:
        lost += [d for d in lost_metadata(store, city) if d.city]
    if not lost:
        return []
    fs, root = _fs(store)
    root = root.rstrip("/")
    for d in lost:
        logger.warning("store damaged: %s; repairing", d.describe(store))
    if any(not d.city for d in lost):
        _recreate_group(fs, store, root, "")
    for city in cities:
        mine = [d for d in lost if d.city == city]
        if not mine:
            continue
        cdir = f"{root}/{city}"
        if any(d.array in COORDINATES for d in mine):
            logger.warning("%s/%s: a coordinate array is lost, so the city's layout is unknown: its folder is "
                           "removed and the city ingested again", store, city)
            fs.rm(cdir, recursive=True)
            continue
        if any(not d.array for d in mine):
            names = {p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(cdir, detail=False)}
            # cf_attributes 0: the arrays may predate them; create_or_extend adds them if so
            attrs = {**_city_attrs(city, _version_from_arrays(fs, cdir, names)), "tiles_from": [],
                     "cf_attributes": 0}
            attrs["chunk_records"] = all(chunks_name(x) in names for x in netmob.DIRECTIONS if x in names)
            _recreate_group(fs, store, root, city, attrs)
        by_dir: dict[str, set[str]] = {}
        for d in mine:
            if d.array and d.direction:
                by_dir.setdefault(d.direction, set()).add(d.array)
        if not by_dir:
            continue
        layout = read_layout(store, city, check=False)
        g = open_city(store, city, mode="r+")
        for direction, names in sorted(by_dir.items()):
            reset = set(names) | {f"{direction}_status", f"{direction}_total", chunks_name(direction)}
            _create_direction(g, direction, layout, compressor, tile_chunk, version=layout_version(g),
                              names=sorted(reset))  # fmt: skip
            logger.warning("%s/%s: recreated %s; every %s file of the city is ingested again", store, city,
                           ", ".join(sorted(names)), direction)
    _OPENED.clear()
    return lost


def layout_version(g) -> int:
    """A city group's layout version (1 when it predates the attribute)."""
    return int(g.attrs.get("layout_version", 1))


def _version_from_arrays(fs, cdir: str, names: set[str]) -> int:
    """The layout version of a city whose group metadata is lost, told from its arrays: 3 when
    a direction's traffic array is indexed by day (4 dimensions), 2 when it is indexed by time
    and the hourly array is there, 1 without it; the current version when no traffic array's
    metadata is left (its arrays are then recreated, and every file ingested again)."""
    hourly = any(hourly_name(x) in names for x in netmob.DIRECTIONS)
    for d in netmob.DIRECTIONS:
        meta = _json_doc(fs, f"{cdir}/{d}/zarr.json") if d in names else None
        if meta is not None:
            return 3 if len(meta.get("shape", ())) == 4 else (2 if hourly else 1)
    return LAYOUT_VERSION if hourly else 1


def _recreate_group(fs, store: str, root: str, path: str, attributes: dict | None = None) -> None:
    """Write a lost group's ``zarr.json`` through zarr (its members are kept).

    An unreadable document is removed first: zarr refuses to create a group over one, and
    ``overwrite=True`` would delete the group's members.
    """
    doc = f"{root}/{path}/zarr.json" if path else f"{root}/zarr.json"
    if fs.exists(doc):
        fs.rm_file(doc)
    zarr.create_group(_location(store), path=path or None, attributes=attributes, zarr_format=3)


def verify(store: str, layout: CityLayout, full: bool = False, states: dict | None = None) -> list[Damage]:
    """Compare a city's chunk files with what its files recorded; return the damage found.

    For every file whose status is not ``pending`` (so all its chunks were written): each of
    its 15-minute chunk (layout 3; its hour chunks in layouts 1-2) and its hourly chunk must be
    there with the recorded byte size; with
    ``full``, also the recorded CRC-32 (this reads every chunk: ``cpc ingest --repair``).
    Chunks written before the records existed are checked for presence (and, with ``full``,
    decoded). Per-file cells (status, total, chunk record) that cannot be decoded, or a status
    that is no known state, are damage too. Cheap without ``full``: one directory listing per
    array and the per-file arrays.

    ``states``: when given and nothing is damaged, the ``(status, total)`` read here are put
    there by (city, direction), as :func:`file_states` returns them (a re-run reads them once).
    """
    g = open_city(store, layout.city)
    out: list[Damage] = []
    offsets = netmob.day_offsets(layout.first_day, layout.days)
    for d in layout.directions:
        status_arr = _member(g, f"{d}_status", store, layout.city)
        bad: list[tuple[int, int, str]] = []
        status = _read_per_file_array(status_arr, damaged=bad)
        known = np.isin(status, list(STATUS.values()))
        for i, j in zip(*np.nonzero(~known), strict=True):
            bad.append((int(i), int(j), f"status {int(status[i, j])} is no known state"))
        per_file = [(status_arr, bad)]
        total_bad: list = []
        total = _read_per_file_array(_member(g, f"{d}_total", store, layout.city), damaged=total_bad)
        per_file.append((g[f"{d}_total"], total_bad))
        records = None
        if chunks_name(d) in g:
            rec_bad: list = []
            records = _read_per_file_array(g[chunks_name(d)], damaged=rec_bad)
            per_file.append((g[chunks_name(d)], rec_bad))
        seen: set[tuple[int, int]] = set()
        for arr, cells in per_file:
            for i, j, reason in cells:
                key = _zarr.chunk_key(arr, (i, j, *(0,) * (arr.ndim - 2)))
                out.append(Damage(layout.city, arr.basename, key, reason, d, ((i, j),),
                                  (source_file(layout, d, i, j),)))
                seen.add((i, j))
        data = [(_member(g, d, store, layout.city), False)]
        if hourly_name(d) in g:
            data.append((g[hourly_name(d)], True))
        done = status != STATUS["pending"]
        clean_cells = not seen
        if states is not None and clean_cells:
            states[layout.city, d] = (status, total)
        for arr, is_hourly in data:
            n_tc = -(-arr.shape[1] // arr.chunks[1])
            decode = _zarr.decoder(arr) if full else None
            # one chunk per file (the hourly array; layout 3's 15-minute array) or per hour
            by_day = arr.ndim == 4
            entry = HOURLY_RECORD if is_hourly else DAY_RECORD
            check = done
            if not full and n_tc == 1 and "://" not in _location(store):
                # one listing, compared with the records as arrays: only suspect files are
                # looked at one chunk at a time (for their messages) below
                check = done & _suspect_files(arr, by_day, entry, layout, offsets, records)
                if not check.any():
                    continue
            sizes = _chunk_sizes(store, arr)
            for i, j in zip(*np.nonzero(check), strict=True):
                i, j = int(i), int(j)
                if (i, j) in seen:
                    continue
                if by_day:
                    keys = [((i, tc, j, 0), entry) for tc in range(n_tc)]
                else:
                    h0 = int(offsets[j]) // TIME_CHUNK
                    nh = netmob.slots_per_day(layout.days[j]) // TIME_CHUNK
                    keys = [((i, tc, h0 + k), k) for k in range(nh) for tc in range(n_tc)]
                for coords, entry in keys:
                    key = _zarr.chunk_key(arr, coords)
                    size = sizes.get(key)
                    rec = records[i, j, entry] if records is not None and n_tc == 1 else (0, 0)
                    reason = None
                    if size is None:
                        reason = "chunk file missing"
                    elif rec[0] and size != rec[0]:
                        reason = f"{size} bytes, {int(rec[0])} written"
                    elif full:
                        raw = _zarr.read_chunk(arr, key)
                        if rec[0]:
                            if zlib.crc32(raw) != rec[1]:
                                reason = "checksum (CRC-32) mismatch"
                        elif decode is not None:
                            try:
                                decode(raw, np.empty(arr.chunks, dtype=np.dtype(arr.dtype)))
                            except Exception as e:
                                reason = f"cannot be decoded ({type(e).__name__}: {e})"
                    if reason:
                        out.append(Damage(layout.city, arr.basename, key, reason, d, ((i, j),),
                                          (source_file(layout, d, i, j),)))
                        seen.add((i, j))
                        break
    return out


def _suspect_files(arr, by_day: bool, entry: int, layout: CityLayout, offsets: np.ndarray,
                   records: np.ndarray | None) -> np.ndarray:
    """(service, day) bool: files with a chunk missing or of another size than recorded.

    ``by_day``: the array has one chunk per file (indexed by day: the hourly array, layout 3's
    15-minute array), whose size is the record's ``entry``; else one chunk per hour.
    One ``scandir`` per service (and a stat per day for a day-indexed array), sizes compared
    with the records as arrays: ~1 us per chunk instead of ~30 us chunk by chunk in Python.
    """
    n_s, n_d = len(layout.services), len(layout.days)
    base = str(_zarr.local_dir(arr) / "c")
    n_x = n_d if by_day else arr.shape[2] // TIME_CHUNK
    sizes = np.full((n_s, n_x), -1, dtype=np.int64)
    for si in range(n_s):
        try:
            it = os.scandir(os.path.join(base, str(si), "0"))
        except (FileNotFoundError, NotADirectoryError):
            continue
        with it:
            for e in it:
                if not e.name.isdigit() or int(e.name) >= n_x:
                    continue
                try:
                    st = os.stat(os.path.join(e.path, "0")) if by_day else e.stat()
                except (FileNotFoundError, NotADirectoryError):
                    continue
                sizes[si, int(e.name)] = st.st_size
    if by_day:
        exp = records[:, :, entry, 0].astype(np.int64) if records is not None else np.zeros((n_s, n_d), np.int64)
        return (sizes < 0) | ((exp > 0) & (sizes != exp))
    hour_day = np.empty(n_x, dtype=np.int64)
    hour_k = np.empty(n_x, dtype=np.int64)
    for j, day in enumerate(layout.days):
        h0, nh = int(offsets[j]) // TIME_CHUNK, netmob.slots_per_day(day) // TIME_CHUNK
        hour_day[h0:h0 + nh] = j
        hour_k[h0:h0 + nh] = np.arange(nh)
    exp = records[:, hour_day, hour_k, 0].astype(np.int64) if records is not None else np.zeros_like(sizes)
    bad_hour = (sizes < 0) | ((exp > 0) & (sizes != exp))
    out = np.zeros((n_s, n_d), dtype=bool)
    si, h = np.nonzero(bad_hour)
    out[si, hour_day[h]] = True
    return out


def mark_pending(store: str, city: str, direction: str, cells: Sequence[tuple[int, int]]) -> None:
    """Set the status of the files at ``cells`` (service index, day index) to ``pending``, so that
    the next ingest writes them again (a damaged file is never taken for complete, even if the
    repair is interrupted)."""
    try:
        _mark_pending_impl(store, city, direction, cells)
    except OSError as e:
        raise _environment_error(e, f"{store}/{city}/{direction}_status") from e


def _mark_pending_impl(store: str, city: str, direction: str, cells: Sequence[tuple[int, int]]) -> None:
    g = open_city(store, city, mode="r+")
    arr = g[f"{direction}_status"]
    for i, j in sorted(set(cells)):
        _put_cell(arr, i, j, STATUS["pending"])
    _OPENED.clear()


def _records(store: str, city: str, direction: str, si: int, d0: int, d1: int) -> np.ndarray | None:
    """Chunk records ``(d1 - d0, 26, 2)`` of service ``si``'s files of days ``d0:d1`` (zeros where
    not recorded), or None when the city keeps none."""
    g = open_city(store, city)
    if chunks_name(direction) not in g:
        return None
    arr = g[chunks_name(direction)]
    out = np.zeros((d1 - d0, CHUNK_RECORDS, 2), dtype=np.uint32)
    cell_shape = (1, 1, CHUNK_RECORDS, 2)
    if not _direct(arr, cell_shape):
        what = f" (the chunk records of service #{si}, days #{d0}..#{d1 - 1})"
        out[:] = _zarr_read(arr, (si, slice(d0, d1)), what)
        return out
    decode = _zarr.decoder(arr)
    cell = np.empty(cell_shape, dtype=np.uint32)
    keys = [_zarr.chunk_key(arr, (si, d, 0, 0)) for d in range(d0, d1)]
    for d, key, data in zip(range(d0, d1), keys, _zarr.read_chunks(arr, keys), strict=True):
        reason = _decode(arr, data, cell, decode=decode)
        if reason is not None:
            raise StoreDamaged(f"store damaged: {_where(arr)} chunk {key} (the chunk record of service #{si}, "
                               f"day #{d}): {reason}; {REPAIR_HINT}")
        out[d - d0] = cell[0, 0]
    return out


def hourly_records(store: str, city: str, direction: str, si: int, d0: int, d1: int
                   ) -> tuple[np.ndarray | None, list[str]]:  # fmt: skip
    """``(byte size, CRC-32)`` of the hourly chunks of service ``si``, days ``d0:d1``, as
    written (``(d1 - d0, 2)``, zeros where not recorded; None when the city keeps no records),
    and the source file of each day (for messages)."""
    rec = _records(store, city, direction, si, d0, d1)
    layout = read_layout(store, city, check=False)  # the rollup checked the metadata on the client
    sources = [source_file(layout, direction, si, d) for d in range(d0, d1)]
    return (None if rec is None else rec[:, HOURLY_RECORD]), sources


def check_hour_chunks(store: str, city: str, direction: str, si: int, h0: int, h1: int) -> None:
    """Check a layout-1/2 15-minute array's hour chunks ``h0:h1`` of service ``si`` against
    their records (layout 3 is checked as it is read, :func:`read_slots`).

    For the rollup's 15-minute path, which reads through zarr: the chunk files are read and
    compared with the size and CRC-32 their file recorded (local stores with one tile chunk;
    others are not checked here).

    Raises
    ------
    cpc_core.errors.StoreDamaged
        Naming the first chunk that differs, its source file and the remedy.
    """
    if "://" in _location(store):
        return
    layout = read_layout(store, city, check=False)  # the rollup checked the metadata on the client
    arr = open_city(store, city)[direction]
    if arr.ndim != 3 or arr.chunks[1] != arr.shape[1]:  # layout 3: read_day_chunk checks as it reads
        return
    offsets = netmob.day_offsets(layout.first_day, layout.days) // TIME_CHUNK
    d0 = max(int(np.searchsorted(offsets, h0, side="right")) - 1, 0)
    d1 = int(np.searchsorted(offsets, h1, side="left"))
    rec = _records(store, city, direction, si, d0, d1)
    if rec is None:
        return
    for d in range(d0, d1):
        for h in range(max(h0, int(offsets[d])), min(h1, int(offsets[d]) + netmob.slots_per_day(layout.days[d]) // 4)):
            size, crc = rec[d - d0, h - int(offsets[d])]
            if not size:
                continue
            key = _zarr.chunk_key(arr, (si, 0, h))
            reason = _unlike_record(_zarr.read_chunk(arr, key), (size, crc))
            if reason:
                dmg = Damage(city, direction, key, reason, direction, ((si, d),), (source_file(layout, direction, si, d),))
                raise StoreDamaged(damage_message(store, [dmg]))


def read_slots(store: str, city: str, direction: str, si: int, start: int, stop: int, arr=None,
               checked: bool = False) -> np.ndarray:  # fmt: skip
    """Slots ``start:stop`` of service ``si`` on the city's time axis, as (tiles, slots) float32,
    in any layout: the one reader of the 15-minute array's values.

    Layout 3 (indexed by local day): each day's chunk is read whole (:func:`read_day_chunk`),
    checked against its file's record, and cut to the slots asked for. Layouts 1-2 (indexed by
    time): the hour chunks are checked against their records (:func:`check_hour_chunks`), then
    read through zarr. A day never ingested reads as NaN.

    ``arr``: the traffic array, when the caller has it open (a loop of reads); ``checked``: the
    caller has checked these hour chunks already (layouts 1-2, :func:`check_hour_chunks` over
    a longer span).

    Raises
    ------
    cpc_core.errors.StoreDamaged
        A chunk that differs from its record or cannot be decoded, naming it.
    """
    if arr is None:
        arr = _member(open_city(store, city), direction, store, city)
    n_tiles = arr.shape[1]
    if stop <= start:
        return np.empty((n_tiles, 0), dtype=np.float32)
    if arr.ndim == 3:
        h0, h1 = start // TIME_CHUNK, -(-stop // TIME_CHUNK)
        if not checked:
            check_hour_chunks(store, city, direction, si, h0, h1)
        try:
            return np.asarray(arr[si, :, start:stop], dtype=np.float32)
        except Exception as e:  # a chunk zarr cannot decode (not recorded, so not checked)
            raise StoreDamaged(
                f"store damaged: {store}/{city}/{direction} chunks c/{si}/0/{h0}..c/{si}/0/{h1 - 1} "
                f"(service #{si}, hours {h0}..{h1 - 1}): cannot be decoded ({type(e).__name__}: {e}); "
                f"{REPAIR_HINT}") from e
    layout = read_layout(store, city, check=False)
    offsets = netmob.day_offsets(layout.first_day, layout.days)
    out = np.empty((n_tiles, stop - start), dtype=np.float32)
    d0 = max(int(np.searchsorted(offsets, start, side="right")) - 1, 0)
    d1 = int(np.searchsorted(offsets, stop, side="left"))
    rec = _records(store, city, direction, si, d0, d1) if arr.chunks[1] == n_tiles else None
    buf = np.empty((n_tiles, arr.shape[3]), dtype=np.float32)
    for d in range(d0, d1):
        off, n = int(offsets[d]), netmob.slots_per_day(layout.days[d])
        lo, hi = max(start, off), min(stop, off + n)
        if hi <= lo:
            continue
        record = None if rec is None else tuple(int(x) for x in rec[d - d0, DAY_RECORD])
        read_day_chunk(arr, si, d, out=buf, record=record, describe=source_file(layout, direction, si, d))
        out[:, lo - start:hi - start] = buf[:, lo - off:hi - off]
    return out


def _chunk_sizes(store: str, arr) -> dict[str, int]:
    """Byte size of every stored chunk of ``arr`` by chunk key, from one listing."""
    fs, root = _fs(store)
    base = f"{root.rstrip('/')}/{arr.path}"
    if "://" not in _location(store):
        out = {}
        cdir = os.path.join(base, "c")
        for dirpath, _, files in os.walk(cdir):
            rel = os.path.relpath(dirpath, base).replace(os.sep, "/")
            for f in files:
                if not f.startswith("."):
                    out[f"{rel}/{f}"] = os.stat(os.path.join(dirpath, f)).st_size
        return out
    try:
        found = fs.find(f"{base}/c", detail=True)
    except FileNotFoundError:
        return {}
    return {k[len(base) + 1:]: int(v["size"]) for k, v in found.items()}


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

    Order: the data chunks, the hourly chunk, the file's chunk record (their sizes and CRCs),
    the total, the status last.

    Raises
    ------
    cpc_core.errors.EnvironmentUnavailable
        When the store cannot be written (disk full, read-only, no permission), naming the
        path; the file's status is then not ``ok`` and a re-run rewrites it.
    """
    try:
        return _write_file_block(store, city, direction, service_index, day_index, time_slice, block, status)
    except OSError as e:
        raise _environment_error(e, f"{store}/{city}/{direction}") from e


#: errno values that mean "this storage cannot take the write", not "cpc did something wrong"
_ENV_ERRNOS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
               errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}


def _environment_error(e: OSError, where: str) -> Exception:
    """An :class:`EnvironmentUnavailable` naming the path for a storage failure; ``e`` itself otherwise."""
    what = _ENV_ERRNOS.get(e.errno or -1)
    if what is None:
        return e
    path = e.filename or where
    return EnvironmentUnavailable(
        f"{what} writing {path}: free space or fix the storage, then re-run the same command to resume "
        "(files not marked complete are ingested again)")


def _write_file_block(store, city, direction, service_index, day_index, time_slice, block, status) -> float:
    fa = file_arrays(store, city, direction)
    arr = fa.data
    n_tiles, n_slots = arr.shape[1], time_slice.stop - time_slice.start
    if block is None:
        block = np.full((n_tiles, n_slots), np.nan, dtype=np.float32)
    block = np.ascontiguousarray(block, dtype=np.float32)
    if block.shape != (n_tiles, n_slots) or n_slots % TIME_CHUNK:
        raise ValueError(f"{city}/{direction}: block {block.shape} does not fill ({n_tiles} tiles, {n_slots} slots)")
    hourly = np.empty((n_tiles, HOURS_PAD), dtype=np.float32)
    # 0, 0: not recorded (several tile chunks per hour, or a layout zarr wrote)
    record = np.zeros((1, 1, CHUNK_RECORDS, 2), dtype=np.uint32)
    if arr.ndim == 4:  # layout 3: the file's day is one chunk (per tile chunk), NaN-padded to 100 slots
        day = np.empty((n_tiles, SLOTS_PAD), dtype=np.float32)
        # the kernel's (hours, tiles, 4) cut, written straight into the padded day
        total = _split_hours(block, day.reshape(n_tiles, HOURS_PAD, TIME_CHUNK).transpose(1, 0, 2), hourly)
        record[0, 0, DAY_RECORD] = _put_day(arr, service_index, day_index, day)
    else:  # layouts 1 and 2: one chunk per UTC hour
        hours = np.empty((n_slots // TIME_CHUNK, n_tiles, TIME_CHUNK), dtype=np.float32)
        total = _split_hours(block, hours, hourly)
        written = _write_whole_chunks(arr, service_index, time_slice.start, block, hours=hours)
        if written is None:
            arr[service_index, :, time_slice] = block
        elif arr.chunks[1] == n_tiles:
            record[0, 0, : len(written)] = written
    if fa.hourly is not None:
        record[0, 0, HOURLY_RECORD] = _put_day(fa.hourly, service_index, day_index, hourly)
    if fa.chunks is not None:
        _put_cell(fa.chunks, service_index, day_index, record)
    if status not in DONE_STATES:
        total = np.nan
    _put_cell(fa.total, service_index, day_index, total)
    # status last: it is what marks the file complete
    _put_cell(fa.status, service_index, day_index, status)
    return float(total)


def _put_day(arr, si: int, di: int, rows: np.ndarray) -> tuple[int, int]:
    """Write day ``di`` of service ``si`` of a day-indexed array (the hourly array, layout 3's
    15-minute array): ``rows`` (tiles, columns) as whole chunks, encoded directly (through zarr
    for codecs cpc does not create). Returns the chunk's ``(byte size, CRC-32)`` as written when
    one chunk holds the day, else ``(0, 0)``: not recorded."""
    written = _put_chunks(arr, [((si, t, di, 0), piece) for t, piece in enumerate(_tile_pieces(rows, arr.chunks[1]))])
    if written is None:
        arr[si, :, di, :] = rows
        return (0, 0)
    return written[0] if arr.chunks[1] == arr.shape[1] else (0, 0)


def _put_cell(arr, i: int, j: int, value) -> None:
    """``arr[i, j] = value`` for the per-file arrays (one chunk per cell), written directly.

    Atomically (temp file + rename, as zarr does): a status or total cut short by a killed
    worker would otherwise be an empty chunk that no later run could decode. ``value``: a
    scalar for the (service, day) arrays, the whole (1, 1, ...) cell for the chunk records.
    """
    cell = (1, 1, *arr.shape[2:])
    if arr.chunks != cell or _put_chunks(arr, [((i, j, *(0,) * (len(cell) - 2)),
                                                np.broadcast_to(np.asarray(value, dtype=arr.dtype), cell))],
                                         atomic=True) is None:
        arr[i, j] = np.asarray(value).reshape(arr.shape[2:]) if len(cell) > 2 else value


@dataclass(frozen=True)
class FileArrays:
    """The arrays an ingest task writes for one (city, direction), and the city's tiles."""

    data: zarr.Array
    hourly: zarr.Array | None
    total: zarr.Array
    status: zarr.Array
    tiles: np.ndarray
    chunks: zarr.Array | None = None


_OPENED: dict[tuple, FileArrays] = {}


def _stat_key(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def file_arrays(store: str, city: str, direction: str) -> FileArrays:
    """The arrays :func:`write_file_block` writes and the city's tile list, opened once per process.

    Opening them through zarr costs a dozen round trips to its event loop per file, a fixed
    cost that dominates small files (``docs/benchmarks-history.md``, problem 22). On a local store
    the handles are kept while the metadata files they were opened from are unchanged (same
    inode, size and modification time: a resize, an extension or a new store at the same path
    rewrites them); other stores open them afresh every time.
    """
    loc = _location(store)
    names = (direction, hourly_name(direction), f"{direction}_total", f"{direction}_status", "tile",
             chunks_name(direction))
    key = None
    if "://" not in loc:
        base = Path(loc).resolve() / city
        key = (str(base), direction, tuple(_stat_key(base / n / "zarr.json") for n in names))
        hit = _OPENED.get(key)
        if hit is not None:
            return hit
    g = open_city(store, city, mode="r+")
    tiles = _member(g, "tile", store, city)[:]
    tiles.flags.writeable = False
    fa = FileArrays(_member(g, direction, store, city), g[names[1]] if names[1] in g else None,
                    _member(g, names[2], store, city), _member(g, names[3], store, city), tiles,
                    g[names[5]] if names[5] in g else None)
    if key is not None:
        if len(_OPENED) >= 64:
            _OPENED.clear()
        _OPENED[key] = fa
    return fa


@_jit.njit(cache=True, nogil=True)
def _split_hours(block, hours, hourly):  # pragma: no cover - numba
    """One pass over a file's (tiles, slots) block.

    Fills ``hours`` (at least slots // 4, tiles, 4): the block cut into hours, NaN past the
    day's last hour (layouts 1-2: its hour chunks, each contiguous; layout 3: a (25, tiles, 4)
    view of the file's (tiles, 100) day chunk); ``hourly`` (tiles, HOURS_PAD): the sum of each
    hour's 4 slots (float64 accumulation, NaN when any slot is NaN), NaN-padded past the day's
    last hour. Returns the float64 sum of the non-NaN values (the file total).

    The total adds the float64 hour sums, slot by slot only for an hour with a NaN: a
    NaN-skipping test on every value would keep the loop from vectorising
    (``docs/benchmarks-history.md``, problem 17).
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
        for h in range(n_hours, hours.shape[0]):
            for k in range(4):
                hours[h, t, k] = np.nan
        for h in range(n_hours, hourly.shape[1]):
            hourly[t, h] = np.nan
        total += row
    return total


def file_states(store: str, city: str, direction: str, known: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(<DIR>_status, <DIR>_total)`` of a city, both (service, day), read whole.

    ``known``: states already read since the store's last write, by (city, direction)
    (:func:`cpc_core.cube.ingest.read_states`); returned from there when present.

    These arrays have one chunk per file (so that parallel ingest tasks never share a chunk)
    and are read several times per run; zarr reads each chunk through its async pipeline, a
    fixed cost per chunk that grows with the services and days. The cells are read and decoded
    directly (:func:`_read_per_file_array`; on a local store after one directory listing,
    ``docs/benchmarks-history.md``, problem 14). Chunks never written read as the fill value,
    as in zarr.
    """
    if known and (city, direction) in known:
        return known[city, direction]
    g = open_city(store, city)
    status, total = (_member(g, f"{direction}_{x}", store, city) for x in ("status", "total"))
    return _read_per_file_array(status), _read_per_file_array(total)


def _read_per_file_array(arr, damaged: list | None = None) -> np.ndarray:
    """The whole of a (service, day, ...) array of one-cell chunks; see :func:`file_states`.

    A cell that cannot be decoded raises :class:`StoreDamaged` naming it, or, with
    ``damaged``, is appended there as ``(service index, day index, reason)`` and read as the
    fill value (what :func:`verify` does).
    """
    cell_shape = (1, 1, *arr.shape[2:])
    if not _direct(arr, cell_shape):
        return _zarr_read(arr, (slice(None),))
    out = np.full(arr.shape, arr.fill_value, dtype=np.dtype(arr.dtype))
    tail = (0,) * (len(cell_shape) - 2)
    base = _zarr.local_dir(arr)
    if base is not None and _zarr.slash_keys(arr):
        # one listing instead of one failed open per cell never written
        cells = []
        root = base / "c"
        rows = os.scandir(root) if root.is_dir() else ()
        for row in rows:
            if row.name.isdigit() and int(row.name) < arr.shape[0]:
                cells += [(int(row.name), int(c.name)) for c in os.scandir(row.path)
                          if c.name.isdigit() and int(c.name) < arr.shape[1]]
    else:
        cells = [(i, j) for i in range(arr.shape[0]) for j in range(arr.shape[1])]
    keys = [_zarr.chunk_key(arr, (i, j, *tail)) for i, j in cells]
    cell_value = np.empty(cell_shape, dtype=out.dtype)
    decode = _zarr.decoder(arr)
    for (i, j), key, data in zip(cells, keys, _zarr.read_chunks(arr, keys), strict=True):
        reason = _decode(arr, data, cell_value, decode=decode)
        if reason is not None:  # truncated, empty, overwritten: never read as a state
            if damaged is None:
                raise StoreDamaged(f"store damaged: {_where(arr)} chunk {key} (the per-file cell of "
                                   f"service #{i}, day #{j}): {reason}; {REPAIR_HINT}")
            damaged.append((i, j, reason))
            continue
        out[i, j] = cell_value[0, 0]
    return out


def _zarr_read(arr, selection: tuple, what: str = ""):
    """``arr[selection]`` through zarr, for layouts cpc does not create (see :func:`_direct`),
    with a failure named as damage."""
    try:
        return arr[selection]
    except Exception as e:
        raise StoreDamaged(f"store damaged: {_where(arr)}{what}: cannot be read ({type(e).__name__}: {e}); "
                           f"{REPAIR_HINT}") from e


def _where(arr) -> str:
    """An array's place for messages: its folder on a local store, else ``store/path``."""
    base = _zarr.local_dir(arr)
    return str(base) if base is not None else f"{arr.store}/{arr.path}"


def _direct(arr, chunk_shape: tuple[int, ...]) -> bool:
    """Whether whole chunks of ``arr`` of ``chunk_shape`` can be read and written directly:
    its chunks have that shape and its codecs are ones cpc creates (:mod:`._zarr`)."""
    return tuple(arr.chunks) == tuple(chunk_shape) and _zarr.decoder(arr) is not None


def _unlike_record(data: bytes | None, record: tuple[int, int] | None) -> str | None:
    """Why a chunk's stored bytes (None: not there) differ from its record ``(byte size,
    CRC-32)`` as written, or None when they match or nothing was recorded (0, 0)."""
    if record is None or not record[0]:
        return None
    if data is None:
        return "chunk file missing"
    if len(data) != record[0]:
        return f"{len(data)} bytes, {int(record[0])} written"
    if zlib.crc32(data) != record[1]:
        return "checksum (CRC-32) mismatch"
    return None


def _decode(arr, data: bytes | None, out: np.ndarray, record: tuple[int, int] | None = None,
            decode=None) -> str | None:
    """Decode a whole chunk's stored bytes (None: never written) into ``out``.

    ``out``: C-contiguous, of the chunk's shape; a chunk never written reads as the fill
    value, as in zarr. ``record``: the chunk's ``(byte size, CRC-32)`` as written (0, 0 = not
    recorded); the bytes are checked against it before decoding, so a damaged chunk is never
    read as data. ``decode``: the array's :func:`._zarr.decoder`, when the caller decodes many.

    Returns None, or the reason the chunk is damaged (``out`` is then undefined).
    """
    reason = _unlike_record(data, record)
    if reason is not None:
        return reason
    if data is None:
        out.fill(arr.fill_value)
        return None
    try:
        (decode or _zarr.decoder(arr))(data, out)
    except Exception as e:
        return f"cannot be decoded ({type(e).__name__}: {e})"
    return None


def _read_chunk(arr, coords: tuple[int, ...], out: np.ndarray, record: tuple[int, int] | None = None,
                decode=None) -> tuple[str, str | None]:
    """Read the whole chunk at ``coords`` into ``out``: the chunk's key, and None or the reason
    it is damaged (:func:`_decode`).

    With :func:`_zarr.read_chunks` and :func:`_decode`, the one read path of the store's own
    chunk reads, on every store, for arrays with :func:`_direct` chunks.
    """
    key = _zarr.chunk_key(arr, coords)
    return key, _decode(arr, _zarr.read_chunk(arr, key), out, record, decode)


def read_day_chunk(arr, service_index: int, day_index: int, out: np.ndarray | None = None,
                   record: tuple[int, int] | None = None, describe: str = "") -> np.ndarray:
    """One whole (tiles, 25) chunk of an hourly array (or (tiles, 100) of a layout-3 15-minute
    array), decoded straight into ``out``.

    zarr decodes a chunk into its own buffer and then copies it into the selection's output
    (``docs/benchmarks-history.md``, problem 15); with the layout cpc writes, the chunk is read and
    decoded in place (:func:`_read_chunk`). A chunk never written reads as NaN (the fill
    value), as through zarr; any other layout goes through zarr.

    ``record``: the chunk's ``(byte size, CRC-32)`` as written (its file's chunk record; 0, 0 =
    not recorded). The bytes read are checked against it before decoding, so a damaged chunk
    is never read as data; ``describe`` names the chunk's source file in the error.

    Raises
    ------
    cpc_core.errors.StoreDamaged
        A chunk that differs from its record, cannot be decoded, or is missing while recorded.
    """
    n_tiles, pad = arr.shape[1], arr.shape[3]
    if out is None:
        out = np.empty((n_tiles, pad), dtype=np.float32)
    src = f" (from {describe})" if describe else ""
    tc = arr.chunks[1]
    if not _direct(arr, (1, tc, 1, pad)):
        try:
            out[:] = arr[service_index, :, day_index, :]
        except Exception as e:
            key = _zarr.chunk_key(arr, (service_index, 0, day_index, 0))
            raise StoreDamaged(f"store damaged: {_where(arr)} chunk {key}{src}: cannot be decoded "
                               f"({type(e).__name__}: {e}); {REPAIR_HINT}") from e
        return out
    if tc == n_tiles:  # cpc's default layout: decoded in place
        key, reason = _read_chunk(arr, (service_index, 0, day_index, 0), out.reshape(1, n_tiles, 1, pad), record)
        if reason is not None:
            raise StoreDamaged(f"store damaged: {_where(arr)} chunk {key}{src}: {reason}; {REPAIR_HINT}")
        return out
    # several tile chunks (recorded never: a file's record holds one hourly chunk)
    piece = np.empty((1, tc, 1, pad), dtype=np.float32)
    decode = _zarr.decoder(arr)
    for t in range(0, n_tiles, tc):
        key, reason = _read_chunk(arr, (service_index, t // tc, day_index, 0), piece, decode=decode)
        if reason is not None:
            raise StoreDamaged(f"store damaged: {_where(arr)} chunk {key}{src}: {reason}; {REPAIR_HINT}")
        out[t:t + tc] = piece[0, : min(tc, n_tiles - t), 0]
    return out


def _write_whole_chunks(arr, service_index: int, start: int, block: np.ndarray,
                        hours: np.ndarray | None = None) -> list[tuple[int, int]] | None:
    """Write a (tiles, slots) block that covers whole hour chunks, encoding them directly.

    zarr's generic write path allocates each chunk, fills it, gathers the strided hour out of
    the block, compares it with the fill value and only then encodes: most of a file's write
    time (``docs/benchmarks-history.md``, problem 1). Here each hour is made contiguous in one
    copy (or taken from ``hours``, the same cut made by :func:`_split_hours`), encoded with the
    array's own codec settings and stored under the array's own chunk keys, all in one batch.
    With several tile chunks, each hour is cut into them (the last one padded with the fill
    value, as zarr stores an edge chunk).
    Returns each chunk's ``(byte size, CRC-32)`` as written, in time order (then tile chunk
    order), or None (caller uses ``arr[...] = block``) for a block that does not cover whole
    hours or an array whose codecs cpc does not create.
    """
    n_tiles, n_slots = block.shape
    if arr.shape[1] != n_tiles or arr.chunks[2] != TIME_CHUNK or start % TIME_CHUNK or n_slots % TIME_CHUNK:
        return None
    if hours is None:
        hours = np.ascontiguousarray(
            block.astype(np.float32, copy=False).reshape(n_tiles, n_slots // TIME_CHUNK, TIME_CHUNK).transpose(1, 0, 2)
        )
    h0 = start // TIME_CHUNK
    return _put_chunks(arr, [((service_index, t, h0 + k), piece) for k in range(hours.shape[0])
                             for t, piece in enumerate(_tile_pieces(hours[k], arr.chunks[1]))])


def _tile_pieces(rows: np.ndarray, tile_chunk: int) -> list[np.ndarray]:
    """``rows`` (tiles, ...) cut into tile chunks of ``tile_chunk`` rows, the last one padded
    with NaN (the traffic arrays' fill value) to a whole chunk."""
    n = rows.shape[0]
    if tile_chunk >= n:
        return [rows]
    out = [rows[t:t + tile_chunk] for t in range(0, n, tile_chunk)]
    if out[-1].shape[0] < tile_chunk:
        pad = np.full((tile_chunk, *rows.shape[1:]), np.nan, dtype=rows.dtype)
        pad[: out[-1].shape[0]] = out[-1]
        out[-1] = pad
    return out


def _put_chunks(arr, chunks: list[tuple[tuple[int, ...], np.ndarray]],
                atomic: bool = False) -> list[tuple[int, int]] | None:
    """Encode whole chunks (C-contiguous arrays of the chunk's shape) and store them.

    The one write path of the store's own chunk writes (any store, :func:`._zarr.write_chunks`).
    Returns each chunk's ``(byte size, CRC-32)`` as written (what :func:`verify` and the
    readers check), or None, writing nothing, when the array's codecs have no direct encoder.
    ``atomic``: on a local store, write each chunk to a temp file and rename it into place.
    """
    encode = _zarr.encoder(arr)
    if encode is None:
        return None
    items = [(_zarr.chunk_key(arr, coords), encode(np.ascontiguousarray(c))) for coords, c in chunks]
    _zarr.write_chunks(arr, items, atomic=atomic)
    return [(len(data), zlib.crc32(data)) for _, data in items]


def open_cube(store: str, city: str, chunks: dict | None = None) -> xr.Dataset:
    """Lazy xarray view of a city group (Dask-backed), time decoded to UTC datetimes.

    ``DL`` and ``UL`` are (service, tile, time) in every layout: a layout-3 store keeps them
    indexed by local day (one chunk per file, NaN-padded to 100 slots), and this view puts each
    day's slots on the time axis, one Dask chunk per day, each chunk checked against its file's
    record as it is read (:func:`read_slots`).

    Parameters
    ----------
    chunks
        Dask chunks; default one service, all tiles, one local day (96 slots; 92 or 100 on a
        DST day in a layout-3 store).

    Examples
    --------
    >>> ds = open_cube("cube.zarr", "Lyon")  # doctest: +SKIP
    >>> ds["DL"].sel(service="Tor")  # doctest: +SKIP
    """
    given = chunks
    if chunks is None:
        chunks = {"service": 1, "tile": -1, "time": 96}
    ds = xr.open_zarr(_location(store), group=city, chunks=chunks, consolidated=False)
    by_day = [d for d in netmob.DIRECTIONS if d in ds and ds[d].ndim == 4]
    if not by_day:
        return ds
    layout = read_layout(store, city)
    for d in by_day:
        view = _time_view(store, city, d, layout, ds)
        if given is not None:
            view = view.chunk({k: v for k, v in given.items() if k in view.dims})
        ds = ds.drop_vars(d).assign({d: view})
    return ds.drop_dims("slot", errors="ignore")


def _day_slots(store: str, city: str, direction: str, si: int, start: int, stop: int) -> np.ndarray:
    """:func:`read_slots` as a (1, tiles, slots) block (one task of :func:`_time_view`)."""
    return read_slots(store, city, direction, si, start, stop)[None]


def _time_view(store: str, city: str, direction: str, layout: CityLayout, ds: xr.Dataset) -> xr.DataArray:
    """A layout-3 traffic array as a lazy (service, tile, time) DataArray, one task per file."""
    import dask
    import dask.array as da

    offsets = netmob.day_offsets(layout.first_day, layout.days)
    n_tiles = len(layout.tiles)
    rows = []
    for si in range(len(layout.services)):
        days = []
        for j, day in enumerate(layout.days):
            a, n = int(offsets[j]), netmob.slots_per_day(day)
            task = dask.delayed(_day_slots, pure=True)(store, city, direction, si, a, a + n)
            days.append(da.from_delayed(task, (1, n_tiles, n), dtype=np.float32))
        rows.append(da.concatenate(days, axis=2))
    attrs = {k: v for k, v in ds[direction].attrs.items() if k != "comment"}
    return xr.DataArray(da.concatenate(rows, axis=0), dims=("service", "tile", "time"),
                        coords={"service": ds["service"], "tile": ds["tile"], "time": ds["time"]},
                        attrs=attrs)  # fmt: skip
