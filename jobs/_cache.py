"""Stage outputs stored under a key of their inputs and parameters.

A stage whose key exists is not recomputed: a re-run with another lag reuses the crosswalk and
the hourly rollup; a re-run with another grid reuses the cube (ingest is itself resumable).
Keys hash the parameters and *fingerprints* of the inputs (file sizes and times, the store's
per-file status and totals), never their paths alone.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from cpc_core import storage
from cpc_core.cube import store


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


def cache_dir(out: str | Path) -> Path | storage.RemotePath:
    """``<output.dir>/internal/cache`` (a local folder, created, or an object-storage prefix)."""
    d = storage.path(out) / "internal" / "cache"
    d.mkdir(parents=True, exist_ok=True)
    return d
