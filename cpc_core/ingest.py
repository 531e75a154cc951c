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
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import fsspec
import numpy as np
import pandas as pd

from cpc_core import netmob, parse, store

__all__ = [
    "FileReport",
    "FileTask",
    "IngestPlan",
    "batches",
    "discover",
    "ingest_file",
    "ingest_files",
    "plan",
    "qc_report",
]

logger = logging.getLogger(__name__)

ON_ERROR = ("fail", "quarantine")


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

    ``states`` holds the per-file ``(status, total)`` arrays of every stored (city, direction)
    as the plan read them: the store's state after the ingest when there are no tasks (a
    re-run), so the QC report and the store fingerprint need not read them again.
    """

    tasks: list[FileTask]
    skipped: int
    layouts: dict[str, store.CityLayout]
    ignored: list[str]
    states: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def discover(
    root: str,
    cities: Sequence[str] | None = None,
    services: Sequence[str] | None = None,
    directions: Sequence[str] | None = None,
) -> tuple[dict[str, dict[netmob.FileKey, str]], list[str]]:
    """Find NetMob traffic files under ``root``.

    Returns ``({city: {FileKey: path}}, ignored)`` where ``ignored`` lists ``.txt`` files whose
    path does not follow the NetMob layout (they are reported, not silently skipped).

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist or holds no traffic file for the selection.
    """
    fs, _, (base,) = fsspec.get_fs_token_paths(root)
    if not fs.exists(base):
        raise FileNotFoundError(f"{root}: NetMob input folder does not exist")
    base = base.rstrip("/")
    pattern_cities = list(cities) if cities else ["*"]
    found: dict[str, dict[netmob.FileKey, str]] = defaultdict(dict)
    ignored: list[str] = []
    for c in pattern_cities:
        for path in sorted(fs.glob(f"{base}/{c}/*/*/*.txt")):
            try:
                key = netmob.parse_file_path(path)
            except ValueError:
                ignored.append(path)
                continue
            if services and key.service not in services:
                continue
            if directions and key.direction not in directions:
                continue
            found[key.city][key] = _unstrip(root, fs, path)
    if ignored:
        logger.warning("ignored %d .txt files outside the NetMob layout, e.g. %s", len(ignored), ignored[0])
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
    return dict(found), ignored


def _unstrip(root: str, fs, path: str) -> str:
    """Give back a path the way the user addressed the root (URL protocol kept)."""
    if "://" in root:
        proto = root.split("://", 1)[0]
        return f"{proto}://{path}"
    return path


def _read(path: str) -> bytes:
    with fsspec.open(path, "rb") as f:
        return f.read()


def _reference_tiles(paths: Iterable[tuple[netmob.FileKey, str]], grid_size: int | None, on_error: str):
    """The city's tile list, from its first file (sorted by service, day, direction).

    In ``fail`` mode any problem in that file fails the run; in ``quarantine`` mode the first
    file without errors among the first few is used.
    """
    tried = []
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
            return np.sort(pf.tile_ids)
        tried.append(path)
        if i >= 8:
            break
    raise parse.NetmobFormatError(
        tried[0] if tried else "?", f"no clean file to take the city's tile list from (tried {len(tried)})"
    )


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
) -> IngestPlan:
    """Create or extend the store for the files found and list the work left to do.

    A (city, direction, service, day) is skipped when its status in the store is complete
    (``ok`` or ``partial``) unless ``force``. Days between a city's first and last day that
    have no file for some service/direction become tasks with ``path=None`` (stored NaN,
    reported as missing).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error={on_error!r}; allowed: {', '.join(ON_ERROR)}")
    found, ignored = discover(root, cities, services, directions)
    tasks: list[FileTask] = []
    skipped = 0
    layouts = {}
    states: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    for city in sorted(found):
        files = found[city]
        grid = netmob.CITY_DIMS.get(city)
        grid_size = grid[0] * grid[1] if grid else None
        if grid is None:
            logger.warning("%s is not a NetMob23 city: tile ids are not checked against a grid", city)
        have = store.read_layout(store_path, city)
        tiles = have.tiles if have is not None else _reference_tiles(sorted(files.items()), grid_size, on_error)
        days = sorted({k.day for k in files})
        svcs = tuple(sorted({k.service for k in files}))
        dirs = tuple(d for d in netmob.DIRECTIONS if any(k.direction == d for k in files))
        want = store.CityLayout(city, days[0], days[-1], svcs, tiles, dirs)
        layout = store.create_or_extend(store_path, want, compressor=compressor, tile_chunk=tile_chunk)
        layouts[city] = layout
        all_days = layout.days
        offsets = netmob.day_offsets(layout.first_day, all_days)
        # only the span of the files found now is planned; other stored days are left alone
        span = [d for d in all_days if days[0] <= d <= days[-1]]
        states.update(read_states(store_path, {city: layout}))
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
                    tasks.append(
                        FileTask(
                            store=store_path,
                            key=key,
                            path=files.get(key),
                            service_index=si,
                            day_index=di,
                            start=int(offsets[di]),
                            ncols=netmob.slots_per_day(day),
                            on_error=on_error,
                            grid_size=grid_size,
                        )
                    )
    # biggest work first keeps workers busy to the end; missing files are cheap
    tasks.sort(key=lambda t: (t.path is None, t.key))
    return IngestPlan(tasks, skipped, layouts, ignored, states)


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
        return _reject_file(task, rep, sl, e.reason, data)
    errors = parse.check_file(pf, grid_size=task.grid_size, tiles=tiles)
    rep.lines = pf.n_lines
    rep.values_read = pf.values_read
    ok = pf.ok
    n_missing = len(tiles) - int(ok.sum())
    if task.on_error == "fail":
        if errors:
            e = errors[0]
            raise parse.NetmobFormatError(task.path, e.reason, e.line)
        if n_missing:
            have = np.isin(tiles, pf.tile_ids)
            ex = ", ".join(str(t) for t in tiles[~have][:5])
            raise parse.NetmobFormatError(
                task.path, f"tile list differs from the city's: {n_missing} of {len(tiles)} tiles absent (e.g. {ex})"
            )
    ids = pf.tile_ids[ok]
    if ok.all() and np.array_equal(ids, tiles):
        block = pf.values  # the usual case: the file lists exactly the city's tiles, sorted
    else:
        block = np.full((len(tiles), task.ncols), np.nan, dtype=np.float32)
        block[np.searchsorted(tiles, ids)] = pf.values[ok]
    rep.values_stored = int(ok.sum()) * task.ncols
    rep.values_rejected = int(sum(e.values for e in errors))
    rep.tiles_missing = n_missing
    rep.errors = [asdict(e) for e in errors]
    state = "ok" if not errors and not n_missing else "partial"
    if state == "partial" and not ok.any():
        return _reject_file(task, rep, sl, "no valid line", data)
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


def _reject_file(task: FileTask, rep: FileReport, sl: slice, reason: str, data: bytes) -> FileReport:
    k = task.key
    store.write_file_block(task.store, k.city, k.direction, task.service_index, task.day_index, sl, None,
                           store.STATUS["rejected"])
    rep.status = "rejected"
    rep.values_stored = 0
    if not rep.values_read:
        # count the value tokens so that read = stored + rejected holds for whole-file rejects
        rep.values_read = max(len(data.split()) - data.count(b"\n"), 0) if data.strip() else 0
    rep.values_rejected = rep.values_read
    rep.errors = [{"line": None, "code": -1, "reason": reason, "values": rep.values_rejected}]
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
) -> dict:
    """Summarise a run and the store's state.

    Outage days are the (service, day) whose stored city total is below ``outage_ratio`` times
    that service's median daily total (missing days excluded from the median). ``states``:
    per-file ``(status, total)`` by (city, direction) already read after the run's last write
    (:func:`read_states`); any (city, direction) not in it is read from the store.
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
        "cities": {},
    }
    for city in cities:
        layout = store.read_layout(store_path, city)
        if layout is None:
            continue
        days = [d.isoformat() for d in layout.days]
        cinfo: dict = {"tiles": int(len(layout.tiles)), "days": [days[0], days[-1]], "services": list(layout.services),
                       "missing": [], "pending": [], "outages": []}
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
    for city, c in qc["cities"].items():
        lines += [f"## {city}", "", f"{c['tiles']:,} tiles, days {c['days'][0]} .. {c['days'][1]}, "
                  f"services {', '.join(c['services'])}", ""]
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
        lines += ["## Rejected", "", "| file | line | reason | values |", "|---|---|---|---|"]
        lines += [f"| {r['path']} | {r['line'] or ''} | {r['reason']} | {r['values']} |" for r in qc["rejected"]]
    return "\n".join(lines) + "\n"


def rejected_frame(reports: Sequence[FileReport]) -> pd.DataFrame:
    """Every rejected file or line of a run as a table."""
    rows = [{"path": r.path, "city": r.city, "service": r.service, "day": r.day, "direction": r.direction,
             **e} for r in reports for e in r.errors]
    return pd.DataFrame(rows, columns=["path", "city", "service", "day", "direction", "line", "code", "reason", "values"])

