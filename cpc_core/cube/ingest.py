"""NetMob23 text tree -> Zarr cube: discovery, planning, the per-file task, and QC.

The stage has three parts, so that the job (``jobs/ingest.py``) only wires and computes:

1. :func:`survey` lists the NetMob files under a root (local path or fsspec URL; plain or
   compressed), every other entry with the reason it is not used (a FIFO is never opened), and
   the files present but unusable (a directory, a broken link, a wrong-case name); then
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

import datetime as dt
import errno
import logging
import lzma
import os
import posixpath
import re
import stat
import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import fsspec
import numpy as np
import pandas as pd

from cpc_core import storage
from cpc_core._batching import MIN_TASK_VALUES, batched
from cpc_core.cube import store
from cpc_core.errors import EnvironmentUnavailable
from cpc_core.netmob import facts as netmob
from cpc_core.netmob import parse

__all__ = [
    "FileReport",
    "FileTask",
    "IngestPlan",
    "Survey",
    "TileReference",
    "Unusable",
    "batches",
    "discover",
    "ingest_file",
    "ingest_files",
    "plan",
    "qc_report",
    "survey",
]

logger = logging.getLogger(__name__)

ON_ERROR = ("fail", "quarantine")

#: Codes of the report entries that are not a parser line code (:data:`cpc_core.netmob.parse.REASONS`):
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
    #: why the file at ``path`` is present but unusable (quarantine: stored as rejected, never
    #: opened); "" for a file to read
    unusable: str = ""


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
    #: why each ignored file was not used (:func:`survey`)
    ignored_reasons: dict[str, str] = field(default_factory=dict)
    #: damage found in the store and repaired by this plan (:func:`cpc_core.cube.store.verify`)
    damage: list[store.Damage] = field(default_factory=list)


#: Why a file under a city folder was not used, when nothing more specific is known.
NOT_TRAFFIC = "not a NetMob traffic file (<City>/<Service>/<YYYYMMDD>/<City>_<Service>_<YYYYMMDD>_<DL|UL>.txt)"


@dataclass(frozen=True)
class Unusable:
    """A file that is present where a traffic file is expected but cannot be used.

    A directory or a broken symbolic link in its place, a name that differs from the layout
    only in case, two copies of one file (plain and compressed). ``fail`` mode stops on it
    ("present but unusable", not "missing"); ``quarantine`` mode stores the file's slot as
    ``rejected`` with the reason, without opening it. ``environment``: the file system, not the
    data, is at fault (a symbolic link loop): exit 3 instead of 1 in ``fail`` mode.
    """

    path: str
    reason: str
    key: netmob.FileKey | None
    environment: bool = False

    def error(self, more: int = 0) -> Exception:
        """The ``fail`` mode error naming the file (and how many more there are)."""
        tail = f" (and {more} more present but unusable files)" if more else ""
        remedy = "; fix or remove it, or run with --on-error quarantine to ingest the rest"
        if self.environment:
            return EnvironmentUnavailable(f"{self.path}: present but unusable: {self.reason}{tail}{remedy}")
        return parse.NetmobFormatError(self.path, f"present but unusable: {self.reason}{tail}{remedy}")


@dataclass
class Survey:
    """What :func:`survey` found under the city folders."""

    #: the traffic files to read, by city and key
    found: dict[str, dict[netmob.FileKey, str]]
    #: every other file under the city folders, with the reason it is not used
    ignored: dict[str, str]
    #: files present in a traffic file's place that cannot be used (:class:`Unusable`)
    unusable: list[Unusable]


def discover(
    root: str,
    cities: Sequence[str] | None = None,
    services: Sequence[str] | None = None,
    directions: Sequence[str] | None = None,
) -> tuple[dict[str, dict[netmob.FileKey, str]], list[str]]:
    """``(found, ignored paths)`` of :func:`survey` (the files to read, and the others, sorted).

    Files present but unusable (:class:`Unusable`) are in neither; :func:`plan` uses
    :func:`survey`, which keeps them.
    """
    sv = survey(root, cities, services, directions)
    return sv.found, sorted(sv.ignored)


def survey(
    root: str,
    cities: Sequence[str] | None = None,
    services: Sequence[str] | None = None,
    directions: Sequence[str] | None = None,
) -> Survey:
    """Find NetMob traffic files under ``root``, and say why every other file is not used.

    Every entry under a city folder (``<root>/<City>/...``, any depth) is examined. A regular
    file is used when its path follows
    ``<City>/<Service>/<YYYYMMDD>/<City>_<Service>_<YYYYMMDD>_<DL|UL>.txt``, also compressed
    (``.txt.gz``, ``.txt.bz2``, ``.txt.zst``, ``.txt.xz``, read transparently); the city's tile
    geometry ``<City>/<City>.geojson`` is expected there and not listed. Otherwise:

    - *ignored* (listed with the reason, never opened): wrong depth, other extension, a name
      or folder that does not match, an impossible date; a FIFO, socket or device (opening one
      would block a worker forever); a name that differs only in case from a traffic file that
      is present too;
    - *unusable* (:class:`Unusable`): in a traffic file's place, a directory, a broken or
      looping symbolic link, a name that differs only in case (and no correctly named file),
      or two copies of one file (``X.txt`` and ``X.txt.gz``: neither is used, never both).

    Files that follow the layout but lie outside the requested services/directions are not
    listed (they were not asked for); their number is logged.

    Parameters
    ----------
    root
        The NetMob folder (local path or fsspec URL) holding one folder per city.
    cities, services, directions
        Restrict to these (None: all found).

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist or holds no traffic file for the selection.
    """
    fs, _, (base,) = fsspec.get_fs_token_paths(root)
    if not fs.exists(base):
        raise FileNotFoundError(f"{root}: NetMob input folder does not exist")
    base = base.rstrip("/")
    local = _is_local(fs)
    if cities:
        city_dirs = [f"{base}/{c}" for c in cities]
    else:
        # a city folder may be a symbolic link (fsspec types a link "other"): followed
        city_dirs = sorted(e["name"].rstrip("/") for e in fs.ls(base, detail=True)
                           if e["type"] == "directory" or (local and e.get("islink") and os.path.isdir(e["name"])))
    copies: dict[netmob.FileKey, list[str]] = defaultdict(list)
    near: list[tuple[str, netmob.FileKey, str]] = []  # (path, key, expected path): wrong case
    ignored: dict[str, str] = {}
    unusable: list[Unusable] = []
    deselected = 0

    def selected(key: netmob.FileKey) -> bool:
        return not ((services and key.service not in services) or (directions and key.direction not in directions))

    for cdir in city_dirs:
        if not fs.isdir(cdir):
            continue
        city = cdir.rsplit("/", 1)[-1]
        entries = _listing(root, fs, cdir)
        for path, info in sorted(entries.items()):
            path = path.rstrip("/")
            if path == cdir:
                continue
            rel = path[len(cdir) + 1:].split("/")
            if rel == [f"{city}.geojson"]:
                continue  # the city's tile geometry, read by the crosswalk
            shown = _unstrip(root, fs, path)
            key = _layout_key(city, rel)
            kind = info.get("type")
            if kind == "directory":
                if key is not None and selected(key):
                    unusable.append(Unusable(shown, "a directory, not a file", key))
                continue  # other folders are walked, not listed
            if kind != "file":
                why, environment = _not_regular(path, info, local)
                if key is not None and why is not None and selected(key):
                    unusable.append(Unusable(shown, why, key, environment))
                elif why is not None:
                    ignored[shown] = why
                else:
                    ignored[shown] = (f"not a regular file ({_file_kind(path, local)}): never opened"
                                      + ("" if key is None else f", so {key.relpath} is missing"))
                continue
            if key is None:
                miss = _case_near_miss(city, rel)
                if miss is not None:
                    near.append((shown, miss, f"{cdir}/{miss.relpath}"))
                else:
                    ignored[shown] = NOT_TRAFFIC
                continue
            if not selected(key):
                deselected += 1
                continue
            copies[key].append(shown)
    found: dict[str, dict[netmob.FileKey, str]] = defaultdict(dict)
    for key, paths in copies.items():
        if len(paths) == 1:
            found[key.city][key] = paths[0]
        else:
            unusable.append(Unusable(paths[0], f"{len(paths)} copies of one file: {' and '.join(paths)} (each "
                                     "would be counted; keep one)", key))
    services_seen = {k.service.lower(): k.service for k in copies} | {s.lower(): s for s in services or ()}
    for shown, miss, expected in near:
        svc = services_seen.get(miss.service.lower(), miss.service)
        key = netmob.FileKey(miss.city, svc, miss.day, miss.direction)
        if key in copies:
            ignored[shown] = f"name differs only in case from {copies[key][0]}, which is used"
        elif selected(key):
            unusable.append(Unusable(shown, f"the name differs in case from the layout's {expected}", key))
    if ignored:
        logger.warning("ignored %d files under the city folders, e.g. %s: %s", len(ignored),
                       *next(iter(sorted(ignored.items()))))
        for path, why in sorted(ignored.items()):
            if why != NOT_TRAFFIC:
                logger.warning("ignored %s: %s", path, why)
    for u in unusable:
        logger.warning("%s: present but unusable: %s", u.path, u.reason)
    if deselected:
        logger.info("%d NetMob files outside the requested services/directions not planned", deselected)
    if not found:
        if unusable:
            raise unusable[0].error(len(unusable) - 1)
        raise FileNotFoundError(
            f"{root}: no NetMob traffic files (<City>/<Service>/<YYYYMMDD>/<City>_<Service>_"
            f"<YYYYMMDD>_<DL|UL>.txt) for cities={cities or 'all'} services={services or 'all'} "
            f"directions={directions or 'all'}"
        )
    if cities:
        absent = sorted(set(cities) - set(found))
        if absent:
            raise FileNotFoundError(f"{root}: no traffic files for cities {absent}")
    return Survey(dict(found), ignored, sorted(unusable, key=lambda u: u.path))


def _listing(root: str, fs, cdir: str) -> dict[str, dict]:
    """Every entry under a city folder, with its info; an unreadable folder is an error.

    fsspec's walk leaves an unreadable folder out silently (its ``on_error`` is not passed down
    the recursion), so that its files would read as missing: a folder that shows no entry is
    listed once more, which raises for an unreadable one (and costs nothing for the others).

    Raises
    ------
    EnvironmentUnavailable
        For a folder the ingest may not list (exit 3: permissions, not data).
    """
    try:
        if _is_local(fs):
            return _local_entries(cdir)
        entries = fs.find(cdir, withdirs=True, detail=True)
        parents = {p.rstrip("/").rsplit("/", 1)[0] for p in entries}
        for p, info in entries.items():
            if info.get("type") == "directory" and p.rstrip("/") not in parents:
                fs.ls(p, detail=False)
    except PermissionError as e:
        where = _unstrip(root, fs, e.filename) if isinstance(e.filename, str) else _unstrip(root, fs, cdir)
        raise EnvironmentUnavailable(f"{where}: cannot list the folder: permission denied (the environment, "
                                     "not the data: give the ingest read access)") from None
    return entries


def _local_entries(cdir: str) -> dict[str, dict]:
    """:func:`_listing` of a local folder: every entry under ``cdir`` with fsspec's info keys
    (``name``, ``type``, ``size``, ``islink``, ``destination``), symbolic links followed.

    NetMob trees are often assembled with links (a service's folder, or the files, on another
    disk); fsspec's local walk types every link "other" and does not enter linked folders, so
    their files read as "not a regular file" and missing. Here a link is typed by its target:
    a file, a folder (entered), else "other" (a FIFO, a device; a broken link or a loop, which
    :func:`_not_regular` names); the walk is :func:`cpc_core.storage.local_tree`. One
    ``scandir`` per folder and one ``stat`` per entry: on one city of the real layout (68
    services x 77 days, 15,776 entries) fsspec's ``find`` took 0.29 s and this 0.10 s, and a
    first run surveys the input three times.

    Raises
    ------
    PermissionError
        For a folder that cannot be listed (:func:`_listing` names it).
    """
    out: dict[str, dict] = {}
    for e in storage.local_tree(cdir):
        link = e.is_symlink()
        info: dict = {"name": e.path, "islink": link}
        if link:
            try:
                info["destination"] = os.readlink(e.path)
            except OSError:
                info["destination"] = "?"
        try:
            target = e.stat(follow_symlinks=True)
        except OSError:  # a broken link, a loop (ELOOP), or an entry gone meanwhile
            out[e.path] = {**info, "type": "other", "size": 0}
            continue
        kind = "directory" if stat.S_ISDIR(target.st_mode) else "file" if stat.S_ISREG(target.st_mode) else "other"
        out[e.path] = {**info, "type": kind, "size": target.st_size}
    return out


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def _layout_key(city: str, rel: list[str]) -> netmob.FileKey | None:
    """The key of a path (relative to its city folder) that follows the layout, else None."""
    if len(rel) != 3:
        return None
    try:
        key = netmob.parse_file_path("/".join([city, *rel]))
    except ValueError:
        return None
    return key if key.city == city else None


_FILE_RE_ANY_CASE = re.compile(r"^(?P<city>[^_/]+)_(?P<service>.+)_(?P<date>\d{8})_(?P<direction>DL|UL)\.txt$",
                               re.IGNORECASE)


def _case_near_miss(city: str, rel: list[str]) -> netmob.FileKey | None:
    """The key a path would have if its name and folders were spelt in the layout's case.

    ``Lyon/Tor/20190316/lyon_Tor_20190316_DL.txt`` (or ``..._dl.TXT``, or a ``tor`` folder)
    is present but unusable, not a stray file: the user meant the traffic file.
    """
    if len(rel) != 3:
        return None
    name = rel[2]
    lower = name.lower()
    for suffix in netmob.COMPRESSIONS:
        if lower.endswith(".txt" + suffix):
            name = name[: -len(suffix)]
            break
    m = _FILE_RE_ANY_CASE.match(name)
    if m is None or m["city"].lower() != city.lower() or m["service"].lower() != rel[0].lower() or m["date"] != rel[1]:
        return None
    try:
        day = dt.datetime.strptime(m["date"], "%Y%m%d").date()
    except ValueError:
        return None
    return netmob.FileKey(city, rel[0], day, m["direction"].upper())


def _file_kind(path: str, local: bool) -> str:
    if not local:
        return "not a file"
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "unreadable entry"
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _not_regular(path: str, info: dict, local: bool) -> tuple[str | None, bool]:
    """For an entry that is neither a file nor a folder: why it is unusable (a broken symbolic
    link, and whether the environment is at fault), or None when it is a FIFO, socket or device
    (ignored, never opened)."""
    if not (local and info.get("islink")):
        return None, False
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop (ELOOP): the file system, not the data", True
        return f"a symbolic link to a missing file ({info.get('destination', '?')})", False
    return None, False


def _unstrip(root: str, fs, path: str) -> str:
    """Give back a path the way the user addressed the root (URL protocol kept)."""
    if "://" in root:
        proto = root.split("://", 1)[0]
        return f"{proto}://{path}"
    return path


def relative_to_root(root: str, path: str) -> str:
    """``path`` relative to the input ``root`` (POSIX separators), as the cube records it.

    A local path is resolved against the working directory first; a URL (``s3://...``) loses
    the root's URL prefix. A path outside the root is reduced to its name, never recorded whole.
    """
    if "://" in root or "://" in path:
        base = root.rstrip("/") + "/"
        return path[len(base):] if path.startswith(base) else posixpath.basename(path)
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        return os.path.basename(path)
    return rel.replace(os.sep, "/")


def _under_root(root: str, rel: str) -> str:
    """Inverse of :func:`relative_to_root` for messages (an absolute path or URL is kept)."""
    if "://" in rel or os.path.isabs(rel):
        return rel
    return f"{root.rstrip('/')}/{rel}"


class _Unreadable(Exception):
    """A file that could not be read: why, and whether the environment is at fault."""

    def __init__(self, path: str, reason: str, environment: bool):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.environment = path, reason, environment

    def error(self) -> Exception:
        """The ``fail`` mode error: exit 3 for the environment (permissions), 1 for the data."""
        if self.environment:
            return EnvironmentUnavailable(
                f"{self.path}: {self.reason} (the environment, not the data: make the file readable, "
                "or run with --on-error quarantine to ingest the rest)")
        return parse.NetmobFormatError(self.path, self.reason)


def _read(path: str) -> bytes:
    """The file's bytes, decompressed when its name says so (``.gz``, ``.bz2``, ``.zst``, ``.xz``).

    Raises
    ------
    _Unreadable
        For a permission error or a symbolic link loop (the environment), or a damaged
        compressed file (the data).
    """
    codec = netmob.split_compression(path)[1]
    try:
        with fsspec.open(path, "rb", compression=codec) as f:
            return f.read()
    except PermissionError as e:
        raise _Unreadable(path, f"permission denied ({e.strerror or e})", True) from None
    except IsADirectoryError:
        raise _Unreadable(path, "present but unusable: a directory, not a file", False) from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise _Unreadable(path, "a symbolic link loop (ELOOP): the file system, not the data", True) from None
        if codec is None or e.errno is not None:
            raise
        raise _Unreadable(path, f"damaged {codec} file: {e}", False) from None
    except (EOFError, zlib.error, lzma.LZMAError) as e:
        raise _Unreadable(path, f"damaged {codec} file: {e or type(e).__name__}", False) from None
    except Exception as e:
        if codec == "zstd" and type(e).__name__ == "ZstdError":
            raise _Unreadable(path, f"damaged zstd file: {e}", False) from None
        raise


def _tile_ids_only(key: netmob.FileKey, path: str, grid_size: int | None, on_error: str = "fail"
                   ) -> np.ndarray | None:  # fmt: skip
    """Sorted tile ids of a file's lines that have a valid one (the parser's own rules).

    Lines whose values are bad still name their tile; lines without a valid tile id (and ids
    outside the grid) are left out, and an empty file has no tiles: the file's own ingest
    reports them. Costs one parse of the
    file (~0.1 s for a Paris-size file), once per city and new store. In ``fail`` mode a file
    with any problem (unreadable, empty, a bad line) fails here, naming its first problem; in
    ``quarantine`` mode an unreadable or truncated file gives None (its own ingest quarantines
    it; another file is compared instead).
    """
    try:
        pf = parse.parse_bytes(_read(path), netmob.slots_per_day(key.day), path)
    except parse.NetmobFormatError:  # an empty file: no tiles (its own ingest rejects it)
        if on_error == "fail":
            raise
        return np.empty(0, dtype=np.int64)
    except _Unreadable as e:
        if on_error == "fail":
            raise e.error() from None
        return None
    if on_error == "fail":
        # the file's own first problem (a line, a cut) is what fail mode names, not the tile
        # list it leads to (a bad tile id reads as an absent tile)
        errors = parse.check_file(pf, grid_size=grid_size)
        if errors:
            raise parse.NetmobFormatError(path, errors[0].reason, errors[0].line)
    elif pf.truncated:  # a damaged copy says nothing reliable about the tile list
        return None
    ids = np.unique(pf.tile_ids[pf.has_tile])
    return ids[ids < grid_size] if grid_size is not None else ids


@dataclass
class TileReference:
    """Where a city's tile list came from: the files compared and the one that disagreed."""

    sources: list[str]
    deviant: str | None = None
    #: the store group the list was read from, on a later run ("" when taken from files now)
    stored_in: str = ""
    #: how the list was taken when no file was fully clean (quarantine): "" or the rule
    rule: str = ""
    #: tiles on a valid line of some of the files but not of a majority: left out of the list
    left_out: list[int] = field(default_factory=list)

    @property
    def from_store(self) -> bool:
        return bool(self.stored_in)

    def describe(self) -> str:
        """The sources as named in error messages and reports."""
        if self.from_store:
            first = f" (first taken from {', '.join(self.sources)})" if self.sources else ""
            return f"the tile list stored in {self.stored_in}{first}"
        if self.rule:
            return f"{', '.join(self.sources)} ({self.rule})"
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


#: Files a city's tile list is looked for in (quarantine) before the majority rule applies.
REFERENCE_TRIES = 9


def _majority_tiles(valid: Sequence[tuple[str, np.ndarray]], tried: Sequence[str]
                    ) -> tuple[np.ndarray, TileReference]:  # fmt: skip
    """Quarantine, when none of the first files is fully clean: the tiles named by a valid line
    in a strict majority of the files tried that have a valid line (docs/decisions.md, "Tile
    list without a clean file"). Tiles seen in fewer are left out of the list (their lines are
    rejected as unknown tiles by each file's ingest, and counted) and listed in the reference.

    Raises
    ------
    NetmobFormatError
        If no file tried has a valid line, or no tile is in a majority.
    """
    if not valid:
        raise parse.NetmobFormatError(
            tried[0] if tried else "?",
            f"no file with a valid line to take the city's tile list from (tried {len(tried)}: "
            f"{', '.join(tried[:3])}{' ...' if len(tried) > 3 else ''})")
    n = len(valid)
    ids, counts = np.unique(np.concatenate([v for _, v in valid]), return_counts=True)
    keep = counts * 2 > n
    tiles, left = ids[keep], ids[~keep]
    sources = [p for p, _ in valid]
    if not tiles.size:
        raise parse.NetmobFormatError(sources[0], f"no tile is on a valid line in a majority of the {n} files "
                                      f"tried for the city's tile list ({', '.join(sources)})")
    rule = (f"no file fully clean: the tiles on a valid line in more than half of these {n} files; "
            f"{left.size} tiles left out")
    logger.warning("%s: none of the first %d files of the city is fully clean; quarantine takes the tile list "
                   "from the majority of their valid lines: %d tiles, %d tiles left out (e.g. %s)",
                   sources[0], len(tried), tiles.size, left.size, ", ".join(map(str, left[:5])) or "none")
    return tiles, TileReference(sources, rule=rule, left_out=[int(t) for t in left])


def _reference_tiles(paths: Sequence[tuple[netmob.FileKey, str]], grid_size: int | None, on_error: str
                     ) -> tuple[np.ndarray, TileReference]:  # fmt: skip
    """The city's tile list, cross-checked on up to three of its files.

    ``paths`` are the city's files in the plan's order (service, day, direction). The *primary*
    file is the first one, fully parsed and validated (in ``fail`` mode any problem in it fails
    the run; in ``quarantine`` mode the first file without errors among the first few is used,
    and when none of them is clean the list is the majority of their valid lines,
    :func:`_majority_tiles`).
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
    valid: list[tuple[str, np.ndarray]] = []  # files with errors: the tile ids of their valid lines
    for i, (key, path) in enumerate(paths):
        if len(tried) >= REFERENCE_TRIES:
            break
        try:
            pf = parse.parse_bytes(_read(path), netmob.slots_per_day(key.day), path)
        except _Unreadable as e:
            if on_error == "fail":
                raise e.error() from None
            tried.append(path)
            continue
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
        if pf.ok.any():  # a file without a valid line is no voter (like an empty one)
            valid.append((path, np.unique(pf.tile_ids[pf.ok])))
    if primary is None:
        return _majority_tiles(valid, tried)
    n = len(paths)
    picks = [primary[0]]
    lists = [primary[1]]
    for j in (n // 2, n - 1, 0, 1, 2, 3, 4):
        if len(picks) == 3:
            break
        if 0 <= j < n and j not in picks:
            ids = _tile_ids_only(*paths[j], grid_size, on_error)
            if ids is not None:  # an unreadable file (quarantine) is not compared
                picks.append(j)
                lists.append(ids)
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

    The store is checked first (``docs/decisions.md``, "a damaged store"): lost metadata is
    recreated (:func:`cpc_core.cube.store.repair_metadata`) and every stored file's chunks are compared with
    its record (:func:`cpc_core.cube.store.verify`: their sizes, and with ``repair`` their CRCs
    too); the files of damaged chunks are set to ``pending`` and planned again, each named in
    a WARNING.

    Raises
    ------
    ValueError
        For an unknown ``on_error`` or direction, or (from :func:`cpc_core.cube.store.create_or_extend`)
        a window that would have to be prepended to a stored city.
    NetmobFormatError
        When a city's tile list cannot be established (:func:`_reference_tiles`).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error={on_error!r}; allowed: {', '.join(ON_ERROR)}")
    bad_dirs = sorted(set(directions or ()) - set(netmob.DIRECTIONS))
    if bad_dirs:
        raise ValueError(f"directions {bad_dirs} are not NetMob directions; allowed: {', '.join(netmob.DIRECTIONS)}")
    sv = survey(root, cities, services, directions)
    if sv.unusable and on_error == "fail":
        raise sv.unusable[0].error(len(sv.unusable) - 1)
    found, ignored = sv.found, dict(sv.ignored)
    # quarantine: a file present but unusable takes its key's place and is stored as rejected
    unusable = {u.key: u for u in sv.unusable if u.key is not None and u.key.city in found}
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
            # recorded relative to the input root (older stores: absolute); named in full in messages
            ref = TileReference([_under_root(root, p) for p in src], stored_in=f"{store_path}/{city}")
        else:
            tiles, ref = _reference_tiles(sorted(files.items()), grid_size, on_error)
        refs[city] = ref
        want = store.CityLayout(city, first, last, svcs, tiles, dirs)
        layout = store.create_or_extend(store_path, want, compressor=compressor, tile_chunk=tile_chunk)
        if have is None:
            # relative to the input root: the cube may be shared, the machine's paths are not its data
            store.open_city(store_path, city, mode="r+").attrs["tiles_from"] = [
                relative_to_root(root, p) for p in ref.sources]
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
                    bad = unusable.pop(key, None)
                    if bad is not None:
                        path = bad.path
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
                            unusable=bad.reason if bad is not None else "",
                        )
                    )
        if absent:
            logger.warning("%s: %d expected files are absent (stored as NaN, reported as missing)", city, absent)
    for u in list(unusable.values()) + [u for u in sv.unusable if u.key is None]:
        # outside this run's window or already complete in the store: listed, not stored
        ignored[u.path] = f"present but unusable: {u.reason} (not planned in this run)"
    # biggest work first keeps workers busy to the end; missing files are cheap
    tasks.sort(key=lambda t: (t.path is None, t.key))
    return IngestPlan(tasks, skipped, layouts, sorted(ignored), states, refs, ignored, damage)


#: damaged chunks named one by one in the log; the rest are counted
LOGGED_DAMAGE = 20


def _repair_chunks(store_path: str, layout: store.CityLayout, full: bool,
                   states: dict | None = None) -> list[store.Damage]:  # fmt: skip
    """Verify a city's chunks; set the files of damaged ones to ``pending`` (so they are planned
    again) and name each at WARNING. ``states``: see :func:`cpc_core.cube.store.verify`."""
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
    if task.unusable:  # never opened (a directory, a broken link, a wrong-case name, two copies)
        if task.on_error == "fail":
            raise parse.NetmobFormatError(task.path, f"present but unusable: {task.unusable}")
        return _reject_file(task, rep, sl, f"present but unusable: {task.unusable}", b"")
    tiles = store.file_arrays(task.store, k.city, k.direction).tiles
    try:
        data = _read(task.path)
    except _Unreadable as e:
        if task.on_error == "fail":
            raise e.error() from None
        return _reject_file(task, rep, sl, e.reason, b"")
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
    if pf.truncated:
        # a damaged copy (every real file ends with a newline): where it was cut must not decide
        # what is stored, so the whole file is quarantined; its line entries are kept
        return _reject_file(task, rep, sl, f"truncated: the file does not end with a newline (cut in or after "
                                           f"line {pf.n_lines}); copy it again", data, line=pf.n_lines)
    if state == "partial" and not ok.any():
        return _reject_file(task, rep, sl, f"no valid line: all {pf.n_lines} lines rejected", data)
    if diff:
        # absent tiles lose no value that was read (values 0) but are stored NaN: say which
        rep.errors.append({"line": None, "code": TILES_ABSENT, "reason": diff, "values": 0})
    rep.status = state
    # the file's text is not needed past here: freed before the write's buffers (a city-size
    # file is ~16 MB of text beside its ~21 MB day chunk being encoded)
    del data
    rep.total = store.write_file_block(
        task.store, k.city, k.direction, task.service_index, task.day_index, sl, block, store.STATUS[state]
    )
    return rep


def batches(tasks: Sequence[FileTask], layouts: dict[str, store.CityLayout],
            min_values: int = MIN_TASK_VALUES) -> list[list[FileTask]]:  # fmt: skip
    """Consecutive tasks grouped so that each group holds at least ``min_values`` values.

    A file's size is taken as its city's tiles x its slots (what it stores, also when missing).
    Order is kept (the plan puts big work first); a file never straddles two groups.
    """
    return batched(tasks, lambda t: len(layouts[t.key.city].tiles) * t.ncols, min_values)


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
    ignored_reasons: dict[str, str] | None = None,
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
        "ignored_reasons": {p: (ignored_reasons or {}).get(p, NOT_TRAFFIC) for p in ignored},
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
                                       "deviant": ref.deviant, "rule": ref.rule or None,
                                       "left_out_tiles": len(ref.left_out), "left_out": list(ref.left_out)}
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
    why = qc.get("ignored_reasons", {})
    lines += [f"- {p}" + (f" ({why[p]})" if why.get(p, NOT_TRAFFIC) != NOT_TRAFFIC else "")
              for p in ignored[:MD_IGNORED_LIST]]
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
            if ref.get("rule"):
                shown = ", ".join(map(str, ref["left_out"][:10])) + (" ..." if ref["left_out_tiles"] > 10 else "")
                lines.append(f"- {ref['rule']}" + (f": {shown}" if shown else ""))
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

