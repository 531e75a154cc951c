"""Exclusive locks between runs that share a store or an output folder.

Two runs on the same store at once must not corrupt it: the second waits for the first's
ingest to finish, then finds every file complete and skips it. Locks are ``flock`` on a file
next to the store, released by the OS even if the holder is killed. Object-store URLs have
no such lock; concurrent runs there are refused by documentation, not by code.
"""

from __future__ import annotations

import fcntl
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)


@contextmanager
def exclusive(target: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<target>.lock`` (local paths only) for the block."""
    t = str(target)
    if "://" in t and not t.startswith("file://"):
        logger.debug("no lock for %s (not a local path)", t)
        yield
        return
    path = Path(t.removeprefix("file://").rstrip("/") + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.warning("%s is in use by another run; waiting for it to finish (%s)", what, path)
            t0 = time.perf_counter()
            fcntl.flock(fh, fcntl.LOCK_EX)
            logger.info("got %s after %.1f s", what, time.perf_counter() - t0)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
