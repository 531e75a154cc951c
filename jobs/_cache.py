"""Stage outputs stored under a key of their inputs and parameters.

A stage whose key exists is not recomputed: a re-run with another lag reuses the crosswalk and
the hourly rollup; a re-run with another grid reuses the cube (ingest is itself resumable).
Keys hash the parameters and *fingerprints* of the inputs (file sizes and times, the store's
per-file status and totals), never their paths alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path

import numpy as np

from cpc_core import storage
from cpc_core.cube import store

logger = logging.getLogger(__name__)


def key(**parts) -> str:
    """Stable short hash of JSON-able parts."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def file_fingerprint(path: str | Path) -> dict:
    """Path (symlinks resolved), size and modification time of a local file; of an object:
    its URL, size and ETag (or modification time), as the store reports them."""
    p = str(path)
    if storage.is_remote(p):
        return _object_fingerprint(p)
    p = storage.local_path(p)
    if "://" in p:
        return {"path": p}
    st = os.stat(p)
    return {"path": os.path.realpath(p), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _object_fingerprint(url: str) -> dict:
    """URL, size and version tag of an object (the URL only when it cannot be read: the
    reader names the problem)."""
    fs, q = storage._fs(url)
    try:
        info = fs.info(q)
    except (FileNotFoundError, PermissionError, OSError):
        return {"path": url}
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("content_md5")
    mtime = info.get("LastModified") or info.get("mtime") or info.get("updated") or info.get("last_modified")
    return {"path": url, "size": info.get("size"), "tag": str(tag) if tag else None,
            "mtime": str(mtime) if mtime else None}


def store_fingerprint(store_path: str, cities: list[str], states: dict | None = None) -> str:
    """Hash of what the cube holds: layouts plus every file's status and stored total.

    ``states``: the per-file ``(status, total)`` arrays by (city, direction) when the caller
    has just read them (:func:`cpc_core.cube.ingest.read_states`); the rest is read here.
    """
    h = hashlib.sha256()
    for city in sorted(cities):
        lay = store.read_layout(store_path, city)
        h.update(json.dumps([city, str(lay.first_day), str(lay.last_day), lay.services, lay.directions]).encode())
        h.update(np.ascontiguousarray(lay.tiles).tobytes())
        for d in lay.directions:
            status, total = store.file_states(store_path, city, d, known=states)
            h.update(np.ascontiguousarray(status).tobytes())
            h.update(np.ascontiguousarray(total).tobytes())
    return h.hexdigest()[:16]


def shared_dir() -> Path | None:
    """A cache shared by every run of this user: ``$CPC_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/cpc`` or ``~/.cache/cpc``; None when it cannot be created.

    Only for derived copies of *local input files* keyed by their fingerprint (the parsed
    tile grids and POI points, reprojected), never for results: those stay in each run's own folder.
    """
    base = os.environ.get("CPC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "cpc")
    try:
        d = Path(base)
        d.mkdir(parents=True, exist_ok=True)
        return d if os.access(d, os.W_OK) else None
    except OSError:
        return None


#: Bounds of the shared cache (:func:`prune_shared`): an entry unused for this long is removed.
SHARED_MAX_AGE_S = 30 * 86_400
#: Above this total, the least recently used entries are removed (a soft bound: see the grace).
SHARED_MAX_BYTES = 2 * 2**30
#: An entry used (or a temporary file written) this recently is never removed: a concurrent run
#: may be reading or writing it.
SHARED_GRACE_S = 3_600
#: What the shared cache's own entries look like (``<name>-<16 hex key>.parquet``) and their
#: temporary files while written; nothing else in the folder (``local-cluster.json``) is touched.
_ENTRY = re.compile(r"^[A-Za-z0-9_.-]+-[0-9a-f]{16}\.parquet$")
_TEMP = re.compile(r"^\.[A-Za-z0-9_.-]+-[0-9a-f]{16}\.parquet\.\d+\.tmp$")


def mark_used(path: Path) -> bool:
    """Whether ``path`` exists; if so its modification time becomes now, the entry's last use
    (:func:`prune_shared` removes the least recently used). A cache that may be read and not
    written is used as it is."""
    try:
        os.utime(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:  # read-only: usable, not marked
        return path.exists()


def prune_shared(folder: Path, keep: tuple[Path, ...] = (), now: float | None = None,
                 max_age_s: float = SHARED_MAX_AGE_S, max_bytes: int = SHARED_MAX_BYTES,
                 grace_s: float = SHARED_GRACE_S) -> list[Path]:
    """Remove the shared cache's stale entries; return what was removed.

    Every run that reads an entry marks it used (:func:`mark_used`), every new entry is
    followed by this call. Removed: entries unused for ``max_age_s`` (a tile grid whose file
    changed, or synthetic data generated again, leaves its old copy behind for good: each
    ``cpc demo`` wrote five); then, while the entries total more than ``max_bytes``, the least
    recently used; and temporary files of writes that died. Never ``keep``, nor anything used
    within ``grace_s`` (a concurrent run may be reading it; a reader that still loses its entry
    rebuilds it). Files the folder holds for other purposes are not looked at. Failures to
    remove are skipped: the cache is an optimisation.
    """
    now = time.time() if now is None else now
    kept = {Path(k).name for k in keep}
    entries, removed = [], []
    try:
        listing = list(os.scandir(folder))
    except OSError:
        return removed

    def remove(e: os.DirEntry) -> bool:
        try:
            os.unlink(e.path)
        except FileNotFoundError:  # another run's pruning was first
            return False
        except OSError as err:
            logger.debug("shared cache: could not remove %s: %s", e.path, err)
            return False
        removed.append(Path(e.path))
        return True

    for e in listing:
        if e.name in kept:
            continue
        try:
            st = e.stat(follow_symlinks=False)
        except OSError:
            continue
        age = now - st.st_mtime
        if _TEMP.match(e.name):
            if age > grace_s:
                remove(e)
        elif _ENTRY.match(e.name) and e.is_file(follow_symlinks=False):
            if age > max_age_s:
                remove(e)
            else:
                entries.append((st.st_mtime, st.st_size, e))
    total = sum(size for _, size, _ in entries) + sum(
        (folder / k).stat().st_size for k in kept if (folder / k).exists())
    for mtime, size, e in sorted(entries, key=lambda t: (t[0], t[2].name)):
        if total <= max_bytes:
            break
        if now - mtime < grace_s:
            continue
        if remove(e):
            total -= size
    if removed:
        logger.info("shared cache %s: removed %d copies unused for %d days or beyond %.1f GiB", folder,
                    len(removed), round(max_age_s / 86_400), max_bytes / 2**30)
    return removed


def cache_dir(out: str | Path) -> Path | storage.RemotePath:
    """``<output.dir>/internal/cache`` (a local folder, created, or an object-storage prefix)."""
    d = storage.path(out) / "internal" / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d
