"""A writable cache for the numba kernels, so that a second process loads them compiled.

The kernels (``cpc_core.netmob.parse``, ``cube.store``, ``estimate``) are compiled with
``cache=True``: numba writes the machine code beside the module (``__pycache__``), else in the
user's cache (``~/.cache/numba``), and a later process, a Dask worker included, loads it instead
of compiling again. Where neither is writable (a read-only install and home, some containers)
numba refuses to *import* the module ("cannot cache function ...: no locator available").
:func:`ensure_numba_cache` then points ``NUMBA_CACHE_DIR`` at a private folder under the system's
temporary directory, before numba is imported; worker processes started from this one inherit it.
A ``NUMBA_CACHE_DIR`` the user set is left alone.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

#: the folders whose modules hold cached kernels
_KERNEL_DIRS = ("netmob", "cube", "estimate")


def _writable(d: Path) -> bool:
    """Whether numba could create ``d`` (or write into it): the nearest existing folder decides."""
    p = d
    while not p.exists():
        if p.parent == p:
            return False
        p = p.parent
    return p.is_dir() and os.access(p, os.W_OK | os.X_OK)


def ensure_numba_cache() -> str | None:
    """Set ``NUMBA_CACHE_DIR`` to a private temporary folder when numba would find no writable
    cache; return the folder set, or None when nothing was changed."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    pkg = Path(__file__).resolve().parents[1] / "cpc_core"
    if all(_writable(pkg / d / "__pycache__") for d in _KERNEL_DIRS):
        return None
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if _writable(Path(xdg) / "numba"):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    d = Path(tempfile.gettempdir()) / f"cpc-numba-cache-{uid}"
    try:
        d.mkdir(mode=0o700, exist_ok=True)
    except OSError:
        return None  # numba's own error will name the problem
    if not _writable(d):
        return None
    os.environ["NUMBA_CACHE_DIR"] = str(d)
    logger.info("numba kernels cached in %s (the package folders and the user cache are read-only)", d)
    return str(d)
