"""Exclusive locks between runs that share a store or an output folder.

Two runs on the same store at once must not corrupt it: the second waits for the first's
ingest to finish, then finds every file complete and skips it. Locks are ``flock`` on a file
next to the store, released by the OS even if the holder is killed.

Object stores have no locks (docs/cloud.md): there the "lock" is a best-effort marker object
``<target>.lock`` holding the holder's host, process and start time. A run that finds one
warns (naming it) and goes on; the marker is deleted when the holder finishes. Writing it is
also the run's first write, so a read-only bucket or prefix fails here, before any work.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cpc_core import storage

logger = logging.getLogger(__name__)


@contextmanager
def _marker(url: str, what: str) -> Iterator[None]:
    """The best-effort lock of an object store: a marker object, warned about when found."""
    with storage.guard(url, f"writing the lock marker of {what}"):
        if storage.exists(url):
            try:
                other = json.loads(storage.read_bytes(url))
            except (ValueError, OSError):
                other = {}
            logger.warning("%s may be in use by another run (marker %s from host %s, pid %s, since %s); "
                           "object storage has no locks: going on. Delete the marker if that run is gone.",
                           what, url, other.get("host"), other.get("pid"), other.get("since"))
        mine = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime())}
        storage.write_bytes(url, json.dumps(mine).encode())
    try:
        yield
    finally:
        try:
            storage.path(url).unlink(missing_ok=True)
        except Exception as e:  # noqa: BLE001 - a leftover marker only warns the next run
            logger.warning("could not delete the lock marker %s: %s", url, type(e).__name__)


@contextmanager
def exclusive(target: str | Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on ``<target>.lock`` (local paths only) for the block."""
    t = str(target)
    if storage.is_remote(t):
        with _marker(t.rstrip("/") + ".lock", what):
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
