"""``cpc ingest`` with nothing to do, answered from a record instead of a plan.

Planning an ingest (:func:`cpc_core.cube.ingest.plan`) needs numpy, pandas, zarr, xarray and the
numba parser (~1.5 s of imports per process) and, in ``cpc ingest``, a cluster; when every file
is already complete none of it is used. A run whose plan found nothing to do therefore leaves a
record next to the store, ``<store>.ingest-state.json`` (beside ``<store>.lock`` and
``<store>.reports/``; the store itself is never touched). It holds

* a *signature*: the run's options, the code version, and the path, type, size and
  modification time of every entry under the input root and under the store;
* what that run reported: its QC dictionary, the Markdown and the (empty) rejected-lines CSV.

The next run with the same options computes the signature again (a directory walk and a
``stat`` per entry, standard library only) and, when it is equal, writes the same QC report
under a new time stamp and returns without planning or starting a cluster. Anything different
(a file added, touched or truncated in the input or the store, another option, another cpc
version) falls back to the full plan, which checks the store as before; so does ``--force``,
``--repair``, and any store or input that is not a local path. A chunk rewritten in place with
the same size *and* modification time would go unseen, as it would by the plan's own size check
(``--repair`` compares checksums).

The signature is taken *before* the plan reads the input (a file changed during the run makes
the next run plan again) and after the plan under the store's lock (this process is then the
store's only writer).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from cpc_core import storage

logger = logging.getLogger(__name__)

#: bump when the record's layout changes: an older record is then simply not used
FORMAT = 1


def state_path(store: str) -> Path | None:
    """``<store>.ingest-state.json`` for a local store; None for an object store."""
    local = _local(store)
    return None if local is None else Path(local.rstrip("/") + ".ingest-state.json")


def _local(p: str | os.PathLike | None) -> str | None:
    if p is None:
        return None
    s = str(p)
    if s.startswith("file://"):
        s = s[len("file://"):]
    return None if "://" in s else s


def _tree(root: str) -> list[list]:
    """Every entry under ``root`` (relative path, kind, size, mtime_ns), in the survey's order
    (:func:`cpc_core.storage.local_tree`: linked folders entered, so a file changed inside one
    is a change); symlinks are recorded with their target's size and time too (a link
    re-pointed is a change). A folder that cannot be listed ends the walk with an error row:
    a signature that cannot match a complete one."""
    out: list[list] = []
    root = os.path.abspath(root)
    try:
        for e in storage.local_tree(root):
            rel = os.path.relpath(e.path, root)
            try:
                st = e.stat(follow_symlinks=False)
                row = [rel, stat.S_IFMT(st.st_mode), st.st_size, st.st_mtime_ns]
                if stat.S_ISLNK(st.st_mode):
                    t = os.stat(e.path)
                    row += [os.readlink(e.path), t.st_size, t.st_mtime_ns]
            except OSError as err:  # vanished or unreadable: a signature that cannot match
                row = [rel, "error", err.errno]
            out.append(row)
    except OSError as err:
        out.append([os.path.relpath(err.filename or root, root), "error", err.errno])
    return out


def _code_version() -> list:
    """The cpc version plus the size and time of the modules that shape an ingest's report."""
    from cpc_core import __version__

    here = Path(__file__).resolve().parents[1]
    files = ["cpc_core/cube/ingest.py", "cpc_core/cube/store.py", "jobs/ingest.py", "jobs/_ingest_state.py"]
    sig: list = [__version__]
    for f in files:
        try:
            st = os.stat(here / f)
            sig.append([f, st.st_size, st.st_mtime_ns])
        except OSError:
            sig.append([f, None])
    return sig


def signature(root: str, store: str, options: dict[str, Any], part: str) -> str | None:
    """Hash of ``part`` ("input" or "store") of a run, or None when it cannot be taken (an
    object store, a root that is not a folder)."""
    where = _local(root if part == "input" else store)
    if where is None or _local(store) is None or not os.path.isdir(where):
        return None
    blob = json.dumps([FORMAT, part, os.path.realpath(where), _code_version(), options, _tree(where)],
                      sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def load(store: str, input_sig: str | None, options: dict[str, Any]) -> dict | None:
    """The record of the last run with nothing to do, if it still describes the input and the
    store exactly; None otherwise (the reason logged at DEBUG)."""
    path = state_path(store)
    if path is None or input_sig is None or not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        logger.debug("ingest state %s unreadable (%s): planning", path, type(e).__name__)
        return None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT:
        return None
    if rec.get("input") != input_sig:
        logger.debug("ingest state %s: the input changed since %s: planning", path, rec.get("written"))
        return None
    store_sig = signature("", store, options, "store")
    if store_sig is None or rec.get("store") != store_sig:
        logger.debug("ingest state %s: the store changed since %s: planning", path, rec.get("written"))
        return None
    return rec


def save(store: str, input_sig: str | None, options: dict[str, Any], qc: dict, markdown: str,
         rejected_csv: str) -> None:
    """Record a run that found nothing to do (atomically; a failure only costs the next run
    its shortcut, so it is logged, not raised)."""
    path = state_path(store)
    if path is None or input_sig is None:
        return
    store_sig = signature("", store, options, "store")
    if store_sig is None:
        return
    rec = {"format": FORMAT, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "input": input_sig,
           "store": store_sig, "qc": qc, "markdown": markdown, "rejected_csv": rejected_csv}
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(rec, fh, default=str)
        os.replace(tmp, path)
    except OSError as e:
        logger.warning("could not record the ingest state %s (%s); the next run plans in full", path, e.strerror)


def forget(store: str) -> None:
    """Remove the record (a run that wrote to the store, or whose plan had work left)."""
    path = state_path(store)
    if path is not None:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
