"""A Dask client started only when a stage has work for it.

A re-run whose inputs are all cached (another lag, another grid over the same cube, only the
report) needs no cluster: the ingest finds nothing to do, the rollup is read back from its
cache, and the rest runs in the driver. Starting a local cluster of worker processes costs
1.9-2.5 s on 2 cores (issue #14), more than the whole cached re-run; a gateway's costs
minutes. :class:`OnDemandClient` stands in for the ``distributed.Client`` the jobs are given:
the first attribute a stage reads (``map``, ``persist``, ``scheduler_info``...) starts the
cluster; a run that never reads one never starts it, and says so in the log and run.json.
Only a private local cluster is deferred this way: the command line connects to a gateway or a
scheduler address at once (``jobs.cli._on_demand_client``), so that a wrong address, password
or closed port fails before any stage writes a file.

The decision is therefore made by the stages themselves, where the work is known, not guessed
in advance from the cache's keys: a stage with nothing to do (``map_with_progress`` of no
items, a cached rollup) never touches the client. Outputs do not depend on which path was
taken: the numbers come from the same kernels on the same chunks (tests/jobs/test_pipeline.py
compares a cached re-run without a cluster with one on a real ``LocalCluster``).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["OnDemandClient", "hint_input_bytes", "started"]


class OnDemandClient:
    """Proxy for a ``distributed.Client`` opened by ``opener()`` on first use.

    Parameters
    ----------
    opener : callable
        Returns a context manager yielding the client (``cluster.get_client(spec)``); entered
        at the first attribute access, exited by :meth:`close` (or leaving the ``with``).
    kind : str
        The cluster kind, for the log and run.json.

    Notes
    -----
    ``on_start`` callbacks (e.g. installing storage options on the workers) run once, right
    after the cluster starts. The proxy is registered with :mod:`cluster._workers` under the
    same state as the real client, so ``require_workers(proxy, ...)`` names the same
    scheduler and waits as long.
    """

    def __init__(self, opener: Callable[[], AbstractContextManager], kind: str = "local"):
        self._opener = opener
        self._kind = kind
        self._stack: ExitStack | None = None
        self._client = None
        self._on_start: list[Callable[[Any], None]] = []
        self.stage: str | None = None  # the stage running now (set by the pipeline's timer)
        self.started_by: str | None = None
        self.start_seconds: float | None = None
        #: bytes of input the run reads, when known before the cluster starts (set by the
        #: pipeline, :func:`hint_input_bytes`): a local cluster with ``processes: auto`` runs
        #: in threads for a small input (``cluster.in_threads``)
        self.input_bytes: int | None = None
        # require_workers(proxy) looks its state up by client object *before* touching the
        # client: registered now, it reads the real client's state once the cluster runs
        from cluster import _workers

        _workers._STATES[self] = _ProxyState(self)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> OnDemandClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and shut down what it started (nothing when it never started)."""
        stack, self._stack, self._client = self._stack, None, None
        if stack is not None:
            stack.close()

    @property
    def kind(self) -> str:
        """The cluster kind (``local``, ``gateway``, ``address``)."""
        return self._kind

    @property
    def started(self) -> bool:
        return self._client is not None

    def on_start(self, callback: Callable[[Any], None]) -> None:
        """Call ``callback(client)`` once the cluster runs (at once if it runs already)."""
        if self._client is not None:
            callback(self._client)
        else:
            self._on_start.append(callback)

    def get(self):
        """The real client, starting the cluster if needed."""
        if self._client is None:
            self._start()
        return self._client

    def _start(self) -> None:
        why = self.stage or "a stage"
        logger.info("cluster: starting (%s) for %s: it has work to run", self._kind, why)
        t0 = time.perf_counter()
        stack = ExitStack()
        try:
            client = stack.enter_context(self._opener())
        except BaseException:
            stack.close()
            raise
        self._stack, self._client = stack, client
        self.started_by = why
        self.start_seconds = round(time.perf_counter() - t0, 3)
        for cb in self._on_start:
            cb(client)
        self._on_start.clear()

    def __getattr__(self, name: str):
        # only reached for attributes the proxy does not have: the Client's
        if name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.get(), name)

    def __repr__(self) -> str:
        return f"<OnDemandClient {self._kind}: {'started' if self.started else 'not started'}>"


def _real_state(proxy: OnDemandClient):
    from cluster import _workers

    return _workers._state(proxy.get())


class _ProxyState:
    """``cluster._workers``' per-client state of an :class:`OnDemandClient`: the real client's
    (how its cluster is named in messages, how long to wait for workers, workers checked),
    read when first needed, which starts the cluster."""

    def __init__(self, proxy: OnDemandClient):
        self._proxy = weakref.ref(proxy)  # a value of a WeakKeyDictionary keyed by the proxy

    where = property(lambda self: _real_state(self._proxy()).where)
    worker_timeout = property(lambda self: _real_state(self._proxy()).worker_timeout)
    checked = property(lambda self: _real_state(self._proxy()).checked)


def hint_input_bytes(client: Any, n_bytes: int | None) -> None:
    """Tell an :class:`OnDemandClient` that has not started how many bytes of input the run
    reads (None: unknown, e.g. objects in a bucket); anything else is left alone."""
    if isinstance(client, OnDemandClient) and not client.started:
        client.input_bytes = None if n_bytes is None else int(n_bytes)


def started(client: Any) -> bool:
    """Whether ``client`` has a running cluster behind it (a plain Client always has)."""
    return bool(getattr(client, "started", True)) if isinstance(client, OnDemandClient) else True
