"""Waiting for workers and checking what they run, for clients that may start with none.

A Dask Gateway cluster adapts from zero workers by default: the scheduler exists at once,
workers only once there is work to do. So nothing may wait for workers *before* submitting
(it would wait forever) and nothing may need a worker to accept data (``scatter`` raises "No
valid workers found" after its timeout). The stages submit their tasks, then call
:func:`require_workers`, which

- waits up to the client's worker timeout for a first worker, and stops the run with an
  :class:`~cpc_core.errors.EnvironmentUnavailable` naming the gateway or scheduler if none
  comes (a gateway without capacity, ``cluster_options`` it cannot satisfy, a worker image
  that crashes on start);
- checks every worker it has not seen before: a worker running another cpc version than the
  driver's stops the run (its functions may compute something else, or fail to unpickle);
  another Python, dask or distributed version is a warning (distributed itself tolerates
  patch differences, and its own handshake rejects what it cannot work with).

Versions are read from the installed distributions' metadata (``importlib.metadata``, through
distributed's own ``versions`` handler): the version ``pip install cpc==X`` in a worker image
gives. A worker without cpc at all answers "not installed" instead of failing to unpickle a
task. Checked: each worker once, when a stage that has work finds it (so on an adaptive cluster
the workers added later are checked by the next stage, not before their first tasks).
"""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cpc_core.errors import EnvironmentUnavailable

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_WORKER_TIMEOUT",
    "driver_versions",
    "register",
    "require_workers",
]

logger = logging.getLogger(__name__)

#: seconds to wait for a gateway's API or a scheduler to answer
DEFAULT_CONNECT_TIMEOUT = 20.0
#: seconds a stage waits for its first worker (a cloud node may need minutes to start)
DEFAULT_WORKER_TIMEOUT = 600.0
#: the distributions whose versions are compared between the driver and each worker
CHECKED = ("cpc", "dask", "distributed")


@dataclass
class _State:
    where: str
    worker_timeout: float
    checked: set[str] = field(default_factory=set)


_STATES: weakref.WeakKeyDictionary[Client, _State] = weakref.WeakKeyDictionary()


def register(client: Client, where: str, worker_timeout: float) -> None:
    """Remember how to name ``client``'s cluster in messages and how long to wait for workers.

    Called by :func:`cluster.get_client`; a client made elsewhere (a test's own ``Client``)
    gets the scheduler address and :data:`DEFAULT_WORKER_TIMEOUT`.
    """
    _STATES[client] = _State(where, float(worker_timeout))


def _state(client: Client) -> _State:
    st = _STATES.get(client)
    if st is None:
        st = _State(f"Dask scheduler {client.scheduler.address}", DEFAULT_WORKER_TIMEOUT)
        _STATES[client] = st
    return st


def _pick(packages: dict) -> dict[str, str]:
    return {"python": ".".join(str(packages.get("python", "?")).split(".")[:3]),
            **{n: packages.get(n) or "not installed" for n in CHECKED}}


def driver_versions() -> dict[str, str]:
    """This process's Python and :data:`CHECKED` versions (what every worker must match)."""
    from distributed.versions import get_versions

    return _pick(get_versions(["cpc"])["packages"])


def _worker_versions(client: Client, workers: list[str]) -> dict[str, dict[str, str]]:
    """Per worker address: its Python and :data:`CHECKED` versions.

    distributed's own ``versions`` handler (one broadcast, nothing unpickled on the worker,
    ``importlib.metadata`` there): a worker that is leaving (an adaptive cluster retires idle
    ones between stages) is left out rather than waited for or failed on.
    """
    answers = client.get_versions(packages=["cpc"])["workers"]
    return {w: _pick(a["packages"]) for w, a in answers.items()
            if w in workers and isinstance(a, dict) and isinstance(a.get("packages"), dict)}


def check_versions(client: Client, workers: list[str]) -> None:
    """Compare the driver's versions with ``workers``'; raise on another cpc version.

    Raises
    ------
    cpc_core.errors.EnvironmentUnavailable
        When a worker's cpc version differs from the driver's (or cpc is not installed
        there), naming both versions and the worker.
    """
    st = _state(client)
    mine = driver_versions()
    for w, theirs in sorted(_worker_versions(client, workers).items()):
        if theirs["cpc"] != mine["cpc"]:
            raise EnvironmentUnavailable(
                f"worker {w} of {st.where} runs cpc {theirs['cpc']}, this driver cpc {mine['cpc']}: "
                f"install cpc=={mine['cpc']} in the worker image (or run the driver's version)"
            )
        others = {k: (theirs[k], mine[k]) for k in ("python", "dask", "distributed") if theirs[k] != mine[k]}
        if others:
            logger.warning("worker %s of %s differs from this driver: %s", w, st.where,
                           ", ".join(f"{k} {a} there, {b} here" for k, (a, b) in others.items()))
        st.checked.add(w)


def _running(client: Client) -> list[str]:
    """Addresses of the workers that run (not those closing: adaptive retires idle ones)."""
    info = client.scheduler_info(n_workers=-1).get("workers", {})
    return [w for w, d in info.items() if d.get("status", "running") == "running"]


def require_workers(client: Client, stage: str, wait: bool = True) -> None:
    """Wait for a first worker (work must be submitted already), then check new workers.

    Parameters
    ----------
    client : distributed.Client
    stage : str
        The stage waiting, for the message.
    wait : bool
        ``False``: only check the workers there now (call it before submitting, so that no
        task runs on a worker with another cpc version).

    Raises
    ------
    cpc_core.errors.EnvironmentUnavailable
        When no worker has joined within the client's worker timeout (naming the gateway
        or scheduler, the stage and the remedy), or a worker runs another cpc version.
    """
    st = _state(client)
    t0 = time.monotonic()
    workers = _running(client)
    if not workers and wait:
        logger.info("%s: waiting for a first Dask worker on %s (up to %.0f s)", stage, st.where, st.worker_timeout)
        while not workers:
            if time.monotonic() - t0 > st.worker_timeout:
                raise EnvironmentUnavailable(
                    f"no Dask worker started within {st.worker_timeout:g} s on {st.where} ({stage} stage); "
                    "check cluster.cluster_options and the gateway's capacity, or raise "
                    "cluster.worker_timeout"
                )
            time.sleep(0.2)
            workers = _running(client)
        logger.info("%s: first worker after %.1f s", stage, time.monotonic() - t0)
    new = [w for w in workers if w not in st.checked]
    if new:
        check_versions(client, new)
