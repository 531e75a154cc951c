"""NetMob23 text tree -> Zarr cube: discovery, planning, the per-file task, and QC.

The stage has three parts, so that the job (``jobs/ingest.py``) only wires and computes:

1. :func:`discover` lists the NetMob files under a root (local path or fsspec URL) and
   :func:`plan` compares them with the store: it creates or extends the city groups and returns
   one :class:`FileTask` per (city, direction, service, day) that is not yet complete,
   including the files that are *missing* (stored as NaN and reported, never as zero).
2. :func:`ingest_file` is the task run on a worker: read, parse and validate one file, write
   its block into its own chunks, then mark it done. It returns a :class:`FileReport`.
3. :func:`qc_report` summarises a run: files per state, missing files, rejected lines with
   counts that add up (values read = values stored + values rejected), and outage days
   (a service's city total far below its median day).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import fsspec
import numpy as np
import pandas as pd

from cpc_core import netmob, parse, store

__all__ = [
    "FileReport",
    "FileTask",
    "IngestPlan",
    "TileReference",
    "batches",
    "discover",
    "ingest_file",
    "ingest_files",
    "plan",
    "qc_report",
]

logger = logging.getLogger(__name__)

ON_ERROR = ("fail", "quarantine")

#: Codes of the report entries that are not a parser line code (:data:`cpc_core.parse.REASONS`):
#: a whole file rejected, and tiles of the city's list that a file lacks (stored NaN).
FILE_REJECTED = -1
TILES_ABSENT = -2

UNKNOWN_CITY_NOTE = ("not one of the 20 NetMob23 cities: its tile ids are not checked against a grid "
                     "(only against the city's own tile list)")
#: Ignored files listed by name in the Markdown QC report (the JSON lists them all).
MD_IGNORED_LIST = 50
#: Rejected entries of one file listed in the Markdown QC report (all are in the JSON and CSV):
#: a file with the wrong column count on every line would otherwise add a row per line.
MD_REJECTED_PER_FILE = 20


@dataclass(frozen=True)
class FileTask:
    """One file's place in the store. ``path`` is None for a missing file."""

    store: str
    key: netmob.FileKey
    path: str | None
    service_index: int
    day_index: int
    start: int
    ncols: int
    on_error: str
    grid_size: int | None
    #: the files the city's tile list came from, as named in tile-list mismatch errors
    tiles_from: str = ""


@dataclass
class FileReport:
    """What one task did with one file."""

    path: str | None
    city: str
    service: str
    day: str
    direction: str
    status: str
    lines: int = 0
    values_read: int = 0
    values_stored: int = 0
    values_rejected: int = 0
    tiles_missing: int = 0
    total: float = float("nan")
    nbytes: int = 0
    errors: list[dict] = field(default_factory=list)


@dataclass
class IngestPlan:
    """Tasks to run, plus what was found complete already (skipped).

    ``ignored`` lists the files under the city folders that are not NetMob traffic files
    (:func:`discover`). ``states`` holds the per-file ``(status, total)`` arrays of every stored (city, direction)
    as the plan read them: the store's state after the ingest when there are no tasks (a
    re-run), so the QC report and the store fingerprint need not read them again.
    """

    tasks: list[FileTask]
    skipped: int
    layouts: dict[str, store.CityLayout]
    ignored: list[str]
    states: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: per city, where its tile list came from (:func:`_reference_tiles`, or the store)
    tile_refs: dict[str, TileReference] = field(default_factory=dict)
    #: damage found in the store and repaired by this plan (:func:`cpc_core.store.verify`)
    damage: list[store.Damage] = field(default_factory=list)


def discover(
    root: str,
    cities: Sequence[str] | None = None,
    services: Sequence[str] | None = None,
    directions: Sequence[str] | None = None,
) -> tuple[dict[str, dict[netmob.FileKey, str]], list[str]]:
    """Find NetMob traffic files under ``root``.

    Every file under a city folder (``<root>/<City>/...``, any depth) is examined. A file is used
    when its path follows ``<City>/<Service>/<YYYYMMDD>/<City>_<Service>_<YYYYMMDD>_<DL|UL>.txt``;
    the city's tile geometry ``<City>/<City>.geojson`` is expected there and not listed; every
    other file (wrong depth, other extension, a name or folder that does not match, an
    impossible date) is listed in ``ignored``, so that nothing is skipped silently. Files that
    follow the layout but lie outside the requested services/directions are not listed (they
    were not asked for); their number is logged.

    Parameters
    ----------
    root
        The NetMob folder (local path or fsspec URL) holding one folder per city.
    cities, services, directions
        Restrict to these (None: all found).

    Returns
    -------
    tuple
        ``({city: {FileKey: path}}, ignored)``, ``ignored`` sorted.

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist or holds no traffic file for the selection.
    """
    fs, _, (base,) = fsspec.get_fs_token_paths(root)
    if not fs.exists(base):
        raise FileNotFoundError(f"{root}: NetMob input folder does not exist")
    base = base.rstrip("/")
    if cities:
        city_dirs = [f"{base}/{c}" for c in cities]
    else:
        city_dirs = sorted(e["name"].rstrip("/") for e in fs.ls(base, detail=True) if e["type"] == "directory")
    found: dict[str, dict[netmob.FileKey, str]] = defaultdict(dict)
    ignored: list[str] = []
    deselected = 0
    for cdir in city_dirs:
        if not fs.isdir(cdir):
            continue
        city = cdir.rsplit("/", 1)[-1]
        for path in sorted(fs.find(cdir)):
            rel = path[len(cdir) + 1:].split("/")
            if rel == [f"{city}.geojson"]:
                continue  # the city's tile geometry, read by the crosswalk
            if len(rel) != 3 or not path.endswith(".txt"):
                ignored.append(_unstrip(root, fs, path))
                continue
            try:
                key = netmob.parse_file_path(path)
            except ValueError:
                ignored.append(_unstrip(root, fs, path))
                continue
            if (services and key.service not in services) or (directions and key.direction not in directions):
                deselected += 1
                continue
            found[key.city][key] = _unstrip(root, fs, path)
    if ignored:
        logger.warning("ignored %d files under the city folders that are not NetMob traffic files "
                       "(<City>/<Service>/<YYYYMMDD>/<City>_<Service>_<YYYYMMDD>_<DL|UL>.txt), e.g. %s",
                       len(ignored), ignored[0])
    if deselected:
        logger.info("%d NetMob files outside the requested services/directions not planned", deselected)
    if not found:
        raise FileNotFoundError(
            f"{root}: no NetMob traffic files (<City>/<Service>/<YYYYMMDD>/<City>_<Service>_"
            f"<YYYYMMDD>_<DL|UL>.txt) for cities={cities or 'all'} services={services or 'all'} "
            f"directions={directions or 'all'}"
        )
    if cities:
        absent = sorted(set(cities) - set(found))
        if absent:
            raise FileNotFoundError(f"{root}: no traffic files for cities {absent}")
    return dict(found), sorted(ignored)


def _unstrip(root: str, fs, path: str) -> str:
    """Give back a path the way the user addressed the root (URL protocol kept)."""
    if "://" in root:
        proto = root.split("://", 1)[0]
        return f"{proto}://{path}"
    return path


def _read(path: str) -> bytes:
    with fsspec.open(path, "rb") as f:
        return f.read()


def _tile_ids_only(key: netmob.FileKey, path: str, grid_size: int | None) -> np.ndarray:
    """Sorted tile ids of a file's lines that have a valid one (the parser's own rules).

    Lines whose values are bad still name their tile; lines without a valid tile id (and ids
    outside the grid) are left out, and an empty file has no tiles: the file's own ingest
    reports them. Costs one parse of the
    file (~0.1 s for a Paris-size file), once per city and new store.
    """
    try:
        pf = parse.parse_bytes(_read(path), netmob.slots_per_day(key.day), path)
    except parse.NetmobFormatError:  # an empty file: no tiles (its own ingest rejects it)
        return np.empty(0, dtype=np.int64)
    ids = np.unique(pf.tile_ids[pf.has_tile])
    return ids[ids < grid_size] if grid_size is not None else ids


@dataclass
class TileReference:
    """Where a city's tile list came from: the files compared and the one that disagreed."""

    sources: list[str]
    deviant: str | None = None
    #: the store group the list was read from, on a later run ("" when taken from files now)
    stored_in: str = ""

    @property
    def from_store(self) -> bool:
        return bool(self.stored_in)

    def describe(self) -> str:
        """The sources as named in error messages and reports."""
        if self.from_store:
            first = f" (first taken from {', '.join(self.sources)})" if self.sources else ""
            return f"the tile list stored in {self.stored_in}{first}"
        return ", ".join(self.sources)


def _tile_diff(have: np.ndarray, ref: np.ndarray) -> str:
    absent = np.setdiff1d(ref, have)
    extra = np.setdiff1d(have, ref)
    parts = []
    if absent.size:
        parts.append(f"{absent.size} of {ref.size} tiles absent (e.g. {', '.join(map(str, absent[:5]))})")
    if extra.size:
        parts.append(f"{extra.size} tiles not in the city's list (e.g. {', '.join(map(str, extra[:5]))})")
    return "; ".join(parts)


def _reference_tiles(paths: Sequence[tuple[netmob.FileKey, str]], grid_size: int | None, on_error: str
                     ) -> tuple[np.ndarray, TileReference]:  # fmt: skip
    """The city's tile list, cross-checked on up to three of its files.

    ``paths`` are the city's files in the plan's order (service, day, direction). The *primary*
    file is the first one, fully parsed and validated (in ``fail`` mode any problem in it fails
    the run; in ``quarantine`` mode the first file without errors among the first few is used).
    Two more files, the middle and the last of the plan's order (or others when those are the
    primary), give their tile ids (:func:`_tile_ids_only`). If the files agree, that is the
    list; if two of three agree on a non-empty list, theirs is the list and the third is the
    *deviant* (in ``fail`` mode an error naming it; in ``quarantine`` mode it is ingested and
    reported against the majority's list like any file whose tiles differ). With no such
    majority, ``fail`` mode stops naming the files; ``quarantine`` mode keeps the primary
    file's list (the one fully validated) and every other file is reported against it.

    Raises
    ------
    NetmobFormatError
        As above; every message names the files the reference was taken from.
    """
    tried = []
    primary = None
    for i, (key, path) in enumerate(paths):
        try:
            pf = parse.parse_bytes(_read(path), netmob.slots_per_day(key.day), path)
        except parse.NetmobFormatError:
            if on_error == "fail":
                raise
            tried.append(path)
            continue
        errors = parse.check_file(pf, grid_size=grid_size)
        if errors and on_error == "fail":
            e = errors[0]
            raise parse.NetmobFormatError(path, e.reason, e.line)
        if not errors:
            primary = (i, np.sort(pf.tile_ids))
            break
        tried.append(path)
        if i >= 8:
            break
    if primary is None:
        raise parse.NetmobFormatError(
            tried[0] if tried else "?", f"no clean file to take the city's tile list from (tried {len(tried)})"
        )
    n = len(paths)
    picks = [primary[0]]
    for j in (n // 2, n - 1, 0, 1, 2):
        if len(picks) == 3:
            break
        if 0 <= j < n and j not in picks:
            picks.append(j)
    lists = [primary[1]] + [_tile_ids_only(*paths[j], grid_size) for j in picks[1:]]
    names = [paths[j][1] for j in picks]
    groups: list[list[int]] = []
    for k, ids in enumerate(lists):
        for g in groups:
            if np.array_equal(lists[g[0]], ids):
                g.append(k)
                break
        else:
            groups.append([k])
    if len(groups) == 1:
        return lists[0], TileReference(names)
    major = max(groups, key=len)
    if len(lists) == 3 and len(groups) == 2 and lists[major[0]].size:
        odd = next(k for k in range(3) if k not in major)
        ref = lists[major[0]]
        srcs = [names[k] for k in major]
        reason = (f"tile list differs from the city's: {_tile_diff(lists[odd], ref)}; the city's tile list "
                  f"comes from {', '.join(srcs)}, which agree")
        if on_error == "fail":
            raise parse.NetmobFormatError(names[odd], reason)
        logger.warning("%s: %s (the file is ingested against that list and reported)", names[odd], reason)
        return ref, TileReference(srcs, deviant=names[odd])
    desc = "; ".join(f"{nm} ({len(ids)} tiles)" for nm, ids in zip(names, lists, strict=True))
    if on_error == "fail":
        raise parse.NetmobFormatError(
            names[0], f"the files the city's tile list is taken from disagree and no two agree on a "
                      f"non-empty list: {desc} (all files of a city share one tile list; fix or remove "
                      "the wrong ones)")  # fmt: skip
    logger.warning("%s: the files the tile list is taken from disagree (%s); quarantine: the first, "
                   "fully validated file's list is used and every file is reported against it", names[0], desc)
    return lists[0], TileReference([names[0]])


def plan(
    root: str,
    store_path: str,
    cities: Sequence[str] | None = None,
    services: Sequence[str] | None = None,
    directions: Sequence[str] | None = None,
    on_error: str = "fail",
    compressor: str = "lz4",
    tile_chunk: int = store.MAX_TILE_CHUNK,
    force: bool = False,
    repair: bool = False,
) -> IngestPlan:
    """Create or extend the store for the files found and list the work left to do.

    The expected files are the same for every city found (docs/decisions.md, "Expected
    files"): the requested services (else the union found over all cities) x the requested
    directions (else the union found) x every day from the earliest to the latest day found
    over all cities. Each expected file that is absent becomes a task with ``path=None``
    (stored NaN, reported as missing), also at the edges of the window and when a city lacks a
    whole service or direction. A (city, direction, service, day) is skipped when its status in
    the store is complete (``ok`` or ``partial``) unless ``force``.

    The store is checked first (``docs/_decisions_store.md``): lost metadata is recreated
    (:func:`cpc_core.store.repair_metadata`) and every stored file's chunks are compared with
    its record (:func:`cpc_core.store.verify`: their sizes, and with ``repair`` their CRCs
    too); the files of damaged chunks are set to ``pending`` and planned again, each named in
    a WARNING.

    Raises
    ------
    ValueError
        For an unknown ``on_error`` or direction, or (from :func:`cpc_core.store.create_or_extend`)
        a window that would have to be prepended to a stored city.
    NetmobFormatError
        When a city's tile list cannot be established (:func:`_reference_tiles`).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error={on_error!r}; allowed: {', '.join(ON_ERROR)}")
    bad_dirs = sorted(set(directions or ()) - set(netmob.DIRECTIONS))
    if bad_dirs:
        raise ValueError(f"directions {bad_dirs} are not NetMob directions; allowed: {', '.join(netmob.DIRECTIONS)}")
    found, ignored = discover(root, cities, services, directions)
    keys = [k for files in found.values() for k in files]
    svcs = tuple(sorted(set(services))) if services else tuple(sorted({k.service for k in keys}))
    dirs = tuple(d for d in netmob.DIRECTIONS if (d in directions if directions else any(k.direction == d for k in keys)))
    first, last = min(k.day for k in keys), max(k.day for k in keys)
    nowhere = [s for s in svcs if not any(k.service == s for k in keys)]
    if nowhere:
        logger.warning("services %s were requested but no city has a file of them: all their files are missing",
                       nowhere)
    damage = store.repair_metadata(store_path, sorted(found), compressor=compressor, tile_chunk=tile_chunk)
    tasks: list[FileTask] = []
    skipped = 0
    layouts = {}
    refs: dict[str, TileReference] = {}
    states: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for city in sorted(found):
        files = found[city]
        grid = netmob.CITY_DIMS.get(city)
        grid_size = grid[0] * grid[1] if grid else None
        if grid is None:
            logger.warning("%s is not a NetMob23 city: tile ids are not checked against a grid", city)
        have = store.read_layout(store_path, city)
        if have is not None:
            tiles = have.tiles
            src = store.open_city(store_path, city).attrs.get("tiles_from", [])
            ref = TileReference(list(src), stored_in=f"{store_path}/{city}")
        else:
            tiles, ref = _reference_tiles(sorted(files.items()), grid_size, on_error)
        refs[city] = ref
        want = store.CityLayout(city, first, last, svcs, tiles, dirs)
        layout = store.create_or_extend(store_path, want, compressor=compressor, tile_chunk=tile_chunk)
        if have is None:
            store.open_city(store_path, city, mode="r+").attrs["tiles_from"] = ref.sources
        layouts[city] = layout
        all_days = layout.days
        offsets = netmob.day_offsets(layout.first_day, all_days)
        # only the run's window is planned; other stored days are left alone
        span = [d for d in all_days if first <= d <= last]
        verified: dict = {}
        found_here = _repair_chunks(store_path, layout, full=repair, states=verified)
        damage += found_here
        # the per-file arrays verify read, unless it changed them
        states.update(verified if not found_here and len(verified) == len(layout.directions)
                      else read_states(store_path, {city: layout}))
        absent = 0
        for direction in dirs:
            status = states[city, direction][0]
            for s_name in svcs:
                si = layout.services.index(s_name)
                for day in span:
                    di = all_days.index(day)
                    if not force and status[si, di] in store.DONE_STATES:
                        skipped += 1
                        continue
                    key = netmob.FileKey(city, s_name, day, direction)
                    path = files.get(key)
                    absent += path is None
                    tasks.append(
                        FileTask(
                            store=store_path,
                            key=key,
                            path=path,
                            service_index=si,
                            day_index=di,
                            start=int(offsets[di]),
                            ncols=netmob.slots_per_day(day),
                            on_error=on_error,
                            grid_size=grid_size,
                            tiles_from=ref.describe(),
                        )
                    )
        if absent:
            logger.warning("%s: %d expected files are absent (stored as NaN, reported as missing)", city, absent)
    # biggest work first keeps workers busy to the end; missing files are cheap
    tasks.sort(key=lambda t: (t.path is None, t.key))
    return IngestPlan(tasks, skipped, layouts, ignored, states, refs, damage)


#: damaged chunks named one by one in the log; the rest are counted
LOGGED_DAMAGE = 20


def _repair_chunks(store_path: str, layout: store.CityLayout, full: bool,
                   states: dict | None = None) -> list[store.Damage]:  # fmt: skip
    """Verify a city's chunks; set the files of damaged ones to ``pending`` (so they are planned
    again) and name each at WARNING. ``states``: see :func:`cpc_core.store.verify`."""
    found = store.verify(store_path, layout, full=full, states=states)
    for k, d in enumerate(found):
        if k < LOGGED_DAMAGE:
            logger.warning("store damaged: %s; the file is ingested again", d.describe(store_path))
    if len(found) > LOGGED_DAMAGE:
        logger.warning("store damaged: %d more damaged chunks of %s (all in the QC report)", len(found) - LOGGED_DAMAGE,
                       layout.city)
    for direction in {d.direction for d in found}:
        store.mark_pending(store_path, layout.city, direction,
                           [c for d in found if d.direction == direction for c in d.cells])
    return found


def ingest_file(task: FileTask) -> FileReport:
    """Parse, validate and store one file (the unit of parallel work).

    Raises
    ------
    NetmobFormatError
        In ``fail`` mode, at the first problem, naming the file, line and reason; nothing is
        written for that file.
    """
    k = task.key
    rep = FileReport(task.path, k.city, k.service, k.day.isoformat(), k.direction, "missing")
    sl = slice(task.start, task.start + task.ncols)
    if task.path is None:
        store.write_file_block(task.store, k.city, k.direction, task.service_index, task.day_index, sl, None,
                               store.STATUS["missing"])
        return rep
    tiles = store.file_arrays(task.store, k.city, k.direction).tiles
    data = _read(task.path)
    rep.nbytes = len(data)
    try:
        pf = parse.parse_bytes(data, task.ncols, task.path)
    except parse.NetmobFormatError as e:
        if task.on_error == "fail":
            raise
        return _reject_file(task, rep, sl, e.reason, data, line=e.line)
    errors = [asdict(e) for e in parse.check_file(pf, grid_size=task.grid_size, tiles=tiles)]
    ref = f"the city's tile list comes from {task.tiles_from}" if task.tiles_from else ""
    if ref:  # said once per file, not on each of a wrong grid's ~80k lines
        first = next((e for e in errors if e["code"] == parse.UNKNOWN_TILE), None)
        if first is not None:
            first["reason"] = f"{first['reason']} ({ref})"
    rep.lines = pf.n_lines
    rep.values_read = pf.values_read
    ok = pf.ok
    n_missing = len(tiles) - int(ok.sum())
    # tiles with no line at all (not those whose line was rejected): the file's list differs
    usual = bool(ok.all()) and np.array_equal(pf.tile_ids, tiles)  # the city's tiles, sorted
    diff = ""
    if not usual:
        # the city's tiles named by a line, whatever its values (extra tiles are rejected lines)
        absent = _tile_diff(np.intersect1d(pf.tile_ids[pf.has_tile], tiles), tiles)
        if absent:
            diff = f"tile list differs from the city's: {absent}" + (f"; {ref}" if ref else "")
    if task.on_error == "fail":
        if errors:
            e = errors[0]
            raise parse.NetmobFormatError(task.path, e["reason"], e["line"])
        if n_missing:
            raise parse.NetmobFormatError(task.path, diff)
    ids = pf.tile_ids[ok]
    if usual:
        block = pf.values
    else:
        block = np.full((len(tiles), task.ncols), np.nan, dtype=np.float32)
        block[np.searchsorted(tiles, ids)] = pf.values[ok]
    rep.values_stored = int(ok.sum()) * task.ncols
    rep.values_rejected = int(sum(e["values"] for e in errors))
    rep.tiles_missing = n_missing
    rep.errors = errors
    state = "ok" if not errors and not n_missing else "partial"
    if state == "partial" and not ok.any():
        return _reject_file(task, rep, sl, f"no valid line: all {pf.n_lines} lines rejected", data)
    if diff:
        # absent tiles lose no value that was read (values 0) but are stored NaN: say which
        rep.errors.append({"line": None, "code": TILES_ABSENT, "reason": diff, "values": 0})
    rep.status = state
    rep.total = store.write_file_block(
        task.store, k.city, k.direction, task.service_index, task.day_index, sl, block, store.STATUS[state]
    )
    return rep


#: Least values per Dask task of the ingest: files smaller than this are grouped (a task's
#: fixed cost, ~10-15 ms here, was most of the time for the 20 metropoles at 0.1 % of their
#: tiles). A NetMob file of a real city holds 1.4-7.8 M values: one file per task.
MIN_TASK_VALUES = 1_000_000


def batches(tasks: Sequence[FileTask], layouts: dict[str, store.CityLayout],
            min_values: int = MIN_TASK_VALUES) -> list[list[FileTask]]:  # fmt: skip
    """Consecutive tasks grouped so that each group holds at least ``min_values`` values.

    A file's size is taken as its city's tiles x its slots (what it stores, also when missing).
    Order is kept (the plan puts big work first); a file never straddles two groups.
    """
    out: list[list[FileTask]] = []
    cur: list[FileTask] = []
    acc = 0
    for t in tasks:
        cur.append(t)
        acc += len(layouts[t.key.city].tiles) * t.ncols
        if acc >= min_values:
            out.append(cur)
            cur, acc = [], 0
    if cur:
        out.append(cur)
    return out


def ingest_files(tasks: Sequence[FileTask]) -> list[FileReport]:
    """:func:`ingest_file` for each task in turn (one Dask task for several small files)."""
    return [ingest_file(t) for t in tasks]


def _reject_file(task: FileTask, rep: FileReport, sl: slice, reason: str, data: bytes,
                 line: int | None = None) -> FileReport:  # fmt: skip
    """Store the file as NaN with status ``rejected`` and report why.

    Line errors already in ``rep.errors`` are kept (a file whose every line is bad keeps each
    line's number and reason); the whole-file entry is added after them, with the values no
    line entry counted, so that the entries' values add up to ``values_rejected``.
    """
    k = task.key
    store.write_file_block(task.store, k.city, k.direction, task.service_index, task.day_index, sl, None,
                           store.STATUS["rejected"])
    rep.status = "rejected"
    rep.values_stored = 0
    if not rep.values_read:
        # count the value tokens so that read = stored + rejected holds for whole-file rejects
        rep.values_read = max(len(data.split()) - data.count(b"\n"), 0) if data.strip() else 0
    rep.values_rejected = rep.values_read
    counted = sum(e["values"] for e in rep.errors)
    rep.errors = [*rep.errors, {"line": line, "code": FILE_REJECTED, "reason": reason,
                                "values": rep.values_rejected - counted}]
    return rep


def read_states(store_path: str, layouts: dict[str, store.CityLayout]
                ) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:  # fmt: skip
    """Per-file ``(status, total)`` of every stored direction of each city, by (city, direction)."""
    return {(city, d): store.file_states(store_path, city, d) for city, lay in layouts.items() for d in lay.directions}


def qc_report(
    store_path: str,
    reports: Sequence[FileReport],
    cities: Sequence[str],
    outage_ratio: float = 0.1,
    states: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] | None = None,
    ignored: Sequence[str] = (),
    tile_refs: dict[str, TileReference] | None = None,
) -> dict:
    """Summarise a run and the store's state.

    Outage days are the (service, day) whose stored city total is below ``outage_ratio`` times
    that service's median daily total (missing days excluded from the median). ``states``:
    per-file ``(status, total)`` by (city, direction) already read after the run's last write
    (:func:`read_states`); any (city, direction) not in it is read from the store.
    ``ignored``: the files :func:`discover` did not use (``ignored_paths``, ``ignored_files``).
    ``tile_refs``: where each city's tile list came from (:attr:`IngestPlan.tile_refs`).
    A city folder that is not one of the 20 NetMob23 cities is listed in ``unknown_cities``
    and its entry says that its tile ids were not checked against a grid.
    """
    run = pd.DataFrame([{k: v for k, v in asdict(r).items() if k != "errors"} for r in reports])
    out: dict = {
        "store": store_path,
        "files": {s: int((run["status"] == s).sum()) if len(run) else 0 for s in store.STATUS if s != "pending"},
        "values_read": int(run["values_read"].sum()) if len(run) else 0,
        "values_stored": int(run["values_stored"].sum()) if len(run) else 0,
        "values_rejected": int(run["values_rejected"].sum()) if len(run) else 0,
        "bytes_read": int(run["nbytes"].sum()) if len(run) else 0,
        "rejected": [
            {"path": r.path, **e} for r in reports for e in r.errors
        ],
        "ignored_files": len(ignored),
        "ignored_paths": list(ignored),
        "unknown_cities": [c for c in cities if c not in netmob.CITY_DIMS],
        "cities": {},
    }
    for city in cities:
        layout = store.read_layout(store_path, city)
        if layout is None:
            continue
        days = [d.isoformat() for d in layout.days]
        cinfo: dict = {"tiles": int(len(layout.tiles)), "days": [days[0], days[-1]], "services": list(layout.services),
                       "missing": [], "pending": [], "outages": []}
        if city not in netmob.CITY_DIMS:
            cinfo["grid"] = None
            cinfo["note"] = UNKNOWN_CITY_NOTE
        else:
            cinfo["grid"] = list(netmob.CITY_DIMS[city])
        ref = (tile_refs or {}).get(city)
        if ref is not None:
            cinfo["tile_list_from"] = {"files": list(ref.sources), "stored_in": ref.stored_in or None,
                                       "deviant": ref.deviant}
        inv = {v: k for k, v in store.STATUS.items()}
        for d in layout.directions:
            st, tot = store.file_states(store_path, city, d, known=states)
            for si, s in enumerate(layout.services):
                for di, day in enumerate(days):
                    name = inv[int(st[si, di])]
                    if name in ("missing", "rejected"):
                        cinfo["missing"].append({"service": s, "day": day, "direction": d, "state": name,
                                                 "path": netmob.file_path(city, s, layout.days[di], d)})
                    elif name == "pending":
                        cinfo["pending"].append({"service": s, "day": day, "direction": d})
                row = tot[si]
                med = np.nanmedian(row) if np.isfinite(row).any() else np.nan
                for di in np.flatnonzero(np.isfinite(row) & (row < outage_ratio * med)):
                    cinfo["outages"].append({"service": s, "day": days[di], "direction": d,
                                             "total": float(row[di]), "median": float(med),
                                             "ratio": float(row[di] / med) if med else 0.0})
        out["cities"][city] = cinfo
    return out


def qc_markdown(qc: dict) -> str:
    """Human-readable rendering of :func:`qc_report`."""
    lines = [f"# Ingest QC report: `{qc['store']}`", ""]
    f = qc["files"]
    lines += [
        "| files ok | partial | missing | rejected | values read | stored | rejected |",
        "|---|---|---|---|---|---|---|",
        f"| {f['ok']} | {f['partial']} | {f['missing']} | {f['rejected']} | {qc['values_read']:,} | "
        f"{qc['values_stored']:,} | {qc['values_rejected']:,} |",
        "",
    ]
    ignored = qc.get("ignored_paths", [])
    lines.append(f"Ignored files (under the city folders, not NetMob traffic files): {len(ignored)}")
    lines += [f"- {p}" for p in ignored[:MD_IGNORED_LIST]]
    if len(ignored) > MD_IGNORED_LIST:
        lines.append(f"- ... and {len(ignored) - MD_IGNORED_LIST} more (all in the JSON report, `ignored_paths`)")
    lines.append("")
    if qc.get("unknown_cities"):
        lines += [f"Cities that are not NetMob23 cities (tile ids not checked against a grid): "
                  f"{', '.join(qc['unknown_cities'])}", ""]
    for city, c in qc["cities"].items():
        lines += [f"## {city}", "", f"{c['tiles']:,} tiles, days {c['days'][0]} .. {c['days'][1]}, "
                  f"services {', '.join(c['services'])}", ""]
        if c.get("note"):
            lines += [f"**{city} is {c['note']}.**", ""]
        ref = c.get("tile_list_from")
        if ref:
            files = ", ".join(ref["files"]) or "?"
            lines.append(f"Tile list stored in {ref['stored_in']} (first taken from {files})" if ref["stored_in"]
                         else f"Tile list from {files}")
            if ref["deviant"]:
                lines.append(f"- {ref['deviant']} lists other tiles: reported against this list")
            lines.append("")
        if c["missing"]:
            lines.append(f"Missing or rejected files (stored as NaN): {len(c['missing'])}")
            lines += [f"- {m['path']} ({m['state']})" for m in c["missing"]]
            lines.append("")
        if c["pending"]:
            lines.append(f"Not ingested (interrupted or outside this run): {len(c['pending'])}")
        if c["outages"]:
            lines.append("Outage days (city total below the ratio of the service's median day):")
            lines += [f"- {o['day']} {o['service']} {o['direction']}: {o['ratio']:.4f} x median" for o in c["outages"]]
            lines.append("")
    if qc["rejected"]:
        rej = qc["rejected"]
        per_file = pd.Series([r["path"] for r in rej]).value_counts(sort=False)
        lines += ["## Rejected", "", f"{len(rej):,} entries in {len(per_file):,} files, "
                  f"{sum(r['values'] for r in rej):,} values. Every entry is in the JSON report "
                  f"(`rejected`) and the run's `rejected-*.csv`; at most {MD_REJECTED_PER_FILE} lines "
                  "of a file are listed here.", "",
                  "| file | line | reason | values |", "|---|---|---|---|"]  # fmt: skip
        shown: dict[str, int] = {}
        for r in rej:
            k = shown[r["path"]] = shown.get(r["path"], 0) + 1
            if k <= MD_REJECTED_PER_FILE:
                lines.append(f"| {r['path']} | {r['line'] or ''} | {r['reason']} | {r['values']} |")
            elif k == MD_REJECTED_PER_FILE + 1:
                more = per_file[r["path"]] - MD_REJECTED_PER_FILE
                lines.append(f"| {r['path']} | ... | {more:,} more entries of this file (JSON, CSV) | |")
    return "\n".join(lines) + "\n"


def rejected_frame(reports: Sequence[FileReport]) -> pd.DataFrame:
    """Every rejected file or line of a run as a table."""
    rows = [{"path": r.path, "city": r.city, "service": r.service, "day": r.day, "direction": r.direction,
             **e} for r in reports for e in r.errors]
    return pd.DataFrame(rows, columns=["path", "city", "service", "day", "direction", "line", "code", "reason", "values"])

