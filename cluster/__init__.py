"""Hand out a ``distributed.Client``: local processes, a Dask Gateway, or an address.

The runtime is always chosen explicitly through a :class:`ClusterSpec` (from a
config file or the ``--cluster`` command-line value), never guessed from the
environment. Only the *details* of a gateway the spec leaves unset (address,
proxy, credentials) come from dask-gateway's own dask config, so the usual
``DASK_GATEWAY__*`` variables or ``~/.config/dask/gateway.yaml`` keep working.

:func:`get_client` is a context manager: whatever it started is shut down on
exit, also when the body raises or is interrupted.

Examples
--------
>>> import dask.array as da
>>> with get_client(ClusterSpec(kind="local", n_workers=2)) as client:  # doctest: +SKIP
...     total = da.ones((1000, 1000), chunks=100).sum().compute()
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urlsplit

import dask.config
from dask.system import CPU_COUNT
from dask.utils import format_bytes, parse_bytes

from cluster._gateway import _is_url, gateway_client, public_address
from cluster._workers import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_WORKER_TIMEOUT,
    register,
    require_workers,
)
from cpc_core.errors import EnvironmentUnavailable, clip

if TYPE_CHECKING:
    from distributed import Client

# distributed (~0.15-0.3 s of import) is imported where a cluster is opened, not here: a command
# that builds a ClusterSpec and then finds nothing to run (a cached re-run) never pays it.


def __getattr__(name: str) -> Any:
    """``MEMORY_LIMIT``: distributed's view of this machine's memory (cgroups included), read
    from distributed on first use (PEP 562)."""
    if name == "MEMORY_LIMIT":
        from distributed.system import MEMORY_LIMIT

        globals()["MEMORY_LIMIT"] = MEMORY_LIMIT
        return MEMORY_LIMIT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "ClusterKind",
    "GatewayAuthKind",
    "ClusterSpec",
    "dashboard_link",
    "get_client",
    "in_process",
    "in_threads",
    "require_workers",
    "WORKER_MALLOC_ENV",
    "local_worker_env",
    "worker_environ",
]

logger = logging.getLogger(__name__)

ClusterKind = Literal["local", "gateway", "address"]
GatewayAuthKind = Literal["basic", "kerberos", "jupyterhub"]

_KINDS: tuple[str, ...] = get_args(ClusterKind)
_AUTHS: tuple[str, ...] = get_args(GatewayAuthKind)
_ADDRESS_SCHEMES = ("tcp", "tls")
# Default local sizing runs fewer workers than cores rather than give one less than this.
_MIN_LOCAL_WORKER_MEMORY = 2 * 2**30

#: ``processes: auto``: a local run whose input files total at most this many bytes gets one
#: worker of threads in the driver's process instead of worker processes. Measured on 2 cores
#: (BENCHMARKS.md, "Whole commands"): the processes' start (1.4-2.5 s) and their own imports
#: and kernel loads are most of a small run's wait, while the kernels (numba ``nogil``,
#: blosc/zstd, file reads) release the GIL, so threads ingest a 0.7 GB city at the same rate.
#: Above it, processes: each worker's memory is bounded and a crashed one is restarted.
SMALL_INPUT_BYTES = 2 * 2**30

#: glibc malloc settings for local worker processes (set before they start). distributed's
#: default ``MALLOC_TRIM_THRESHOLD_=65536`` returns freed memory to the OS eagerly and, as any
#: explicit malloc setting does, freezes the mmap threshold at 128 KiB: every array of a task
#: (a Paris file is ~25 MB of text, 31 MB of float32 values, 31 MB of hour chunks) is then
#: mmapped and page-faulted afresh. Measured on the ingest of 40 Paris files, 2 workers: 61
#: -> 77-80 M values/s per worker (BENCHMARKS.md, "worker malloc settings"). 32 MiB is glibc's
#: largest mmap threshold on 64-bit; a worker keeps at most 64 MiB of freed heap.
WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": 32 * 2**20, "MALLOC_TRIM_THRESHOLD_": 64 * 2**20}


def worker_environ() -> dict[str, Any]:
    """Dask config that starts local worker processes with :data:`WORKER_MALLOC_ENV`.

    Use as ``with dask.config.set(worker_environ()): LocalCluster(...)``. A value the user set
    in their own dask config under ``distributed.nanny.pre-spawn-environ`` (other than
    distributed's default trim threshold) is kept.
    """
    current = dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}
    out = {}
    for name, value in WORKER_MALLOC_ENV.items():
        mine = current.get(name)
        if mine is None or (name == "MALLOC_TRIM_THRESHOLD_" and int(mine) == 65536):
            out[f"distributed.nanny.pre-spawn-environ.{name}"] = value
    return out


@contextmanager
def local_worker_env() -> Iterator[None]:
    """Start local worker processes inside this block with :data:`WORKER_MALLOC_ENV`.

    :func:`worker_environ` in the Dask config, and the same values in ``os.environ`` for the
    block: distributed's nanny copies its pre-spawn variables into the *parent's*
    ``os.environ`` when it starts a worker, and later reads ``os.environ`` before the config,
    so after any earlier cluster in this process (a notebook, a test session) its default
    trim threshold (65536) would win over ours. A value the user exported is kept, as in
    :func:`worker_environ`; the parent's environment is restored on leaving.
    """
    import os

    config = worker_environ()
    names = {key.rsplit(".", 1)[1]: value for key, value in config.items()}
    saved = {name: os.environ.get(name) for name in names}
    default_trim = "65536"  # distributed's own pre-spawn default, leaked by an earlier nanny
    for name, value in names.items():
        if saved[name] is None or (name == "MALLOC_TRIM_THRESHOLD_" and saved[name] == default_trim):
            os.environ[name] = str(value)
    try:
        with dask.config.set(config):
            yield
    finally:
        for name, old in saved.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


# Which optional fields make sense for which kind; any other field set is an error,
# so that e.g. `n_workers` on a gateway spec fails loudly instead of being ignored.
_FIELDS_BY_KIND: dict[str, frozenset[str]] = {
    "local": frozenset({"n_workers", "threads_per_worker", "memory_limit", "processes"}),
    "gateway": frozenset(
        {
            "address",
            "proxy_address",
            "auth",
            "username",
            "password",
            "cluster_options",
            "workers",
            "adapt_minimum",
            "adapt_maximum",
        }
    ),
    "address": frozenset({"address"}),
}


@dataclass(frozen=True)
class ClusterSpec:
    """Which Dask runtime to use, validated on creation.

    Parameters
    ----------
    kind : {"local", "gateway", "address"}
        ``local``: a ``LocalCluster`` of worker processes on this machine.
        ``gateway``: a new cluster from a Dask Gateway server.
        ``address``: connect to an already running scheduler (not shut down on exit).
    processes : bool or "auto", optional
        ``local`` only. True: worker processes. False: one worker of threads inside this
        process (no process start, no worker imports; one memory limit for all, and no
        restart of a crashed worker). ``"auto"`` or unset: threads when the caller says the
        input is small (:data:`SMALL_INPUT_BYTES`, see :func:`get_client`), else processes.
    n_workers, threads_per_worker, memory_limit : optional
        ``local`` only. Defaults: one worker per core, capped so that each gets
        ``memory_limit`` (or at least 2 GiB) of this machine's memory; one thread
        per worker; ``memory_limit`` ``"auto"``: machine memory / ``n_workers``.
        ``memory_limit`` is a size per worker such as ``"4GiB"``, or ``"auto"``.
    address : str, optional
        ``gateway``: the gateway's ``http(s)://`` URL (default: dask config
        ``gateway.address``). ``address``: the scheduler's ``tcp://`` or ``tls://``
        address (required).
    proxy_address : str, optional
        ``gateway`` only: scheduler proxy, e.g. ``"gateway://host:8786"``
        (default: dask config ``gateway.proxy-address``, else derived by dask-gateway).
    auth : {"basic", "kerberos", "jupyterhub"}, optional
        ``gateway`` only (default: dask config ``gateway.auth.type``).
    username, password : str, optional
        ``gateway`` with ``auth="basic"`` only; whichever is unset comes from
        dask config ``gateway.auth.kwargs``.
    cluster_options : Mapping, optional
        ``gateway`` only: keyword options for the new cluster (server-specific,
        e.g. ``{"worker_memory": 4}``).
    workers : int, optional
        ``gateway`` only: fixed number of workers. Excludes ``adapt_*``.
    adapt_minimum, adapt_maximum : int, optional
        ``gateway`` only: adaptive scaling bounds. With neither ``workers`` nor
        ``adapt_*`` the cluster adapts within the gateway's own limits.
    dashboard : bool, optional
        ``local``: serve the dashboard (on a free loopback port). None (the default):
        served by worker processes, not by one worker of threads in this process (a
        small input, :func:`in_threads`): importing and starting the dashboards took
        ~0.45 s of a ~0.5 s cluster start, for runs of a few seconds. All kinds: log
        its link when there is one.
    connect_timeout : float, optional
        All kinds: seconds to wait for the gateway's API or the scheduler to answer
        (default 20). Past it the run stops with an
        :class:`~cpc_core.errors.EnvironmentUnavailable` naming the address.
    worker_timeout : float, optional
        All kinds: seconds a stage with work to do waits for its first worker (default
        600: a cloud gateway may pull an image and add a node first). An adaptive
        cluster starts with no worker and adds them when work is submitted, so the wait
        starts at the first stage's submission, never before.

    Raises
    ------
    ValueError, TypeError
        Naming the field, the value and what is allowed.

    Examples
    --------
    >>> ClusterSpec(kind="local", n_workers=2).n_workers
    2
    >>> ClusterSpec(kind="gateway", workers=4, cluster_options={"worker_cores": 2}).workers
    4
    >>> ClusterSpec.from_cli("tcp://10.0.0.5:8786").kind
    'address'
    """

    kind: ClusterKind
    n_workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | None = None
    processes: bool | Literal["auto"] | None = None
    address: str | None = None
    proxy_address: str | None = None
    auth: GatewayAuthKind | None = None
    username: str | None = None
    password: Any = field(default=None, repr=False)  # str or pydantic SecretStr
    cluster_options: Mapping[str, Any] | None = None
    workers: int | None = None
    adapt_minimum: int | None = None
    adapt_maximum: int | None = None
    dashboard: bool | None = None
    connect_timeout: float | None = None
    worker_timeout: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"ClusterSpec.kind must be one of {_KINDS}, got {self.kind!r}")
        allowed = _FIELDS_BY_KIND[self.kind]
        for name in sorted(set().union(*_FIELDS_BY_KIND.values()) - allowed):
            if getattr(self, name) is not None:
                kinds = [k for k, names in _FIELDS_BY_KIND.items() if name in names]
                raise ValueError(
                    f"ClusterSpec.{name} applies only to kind in {kinds}, "
                    f"not to kind={self.kind!r}; leave it unset"
                )
        _check_int("n_workers", self.n_workers, minimum=1)
        _check_int("threads_per_worker", self.threads_per_worker, minimum=1)
        _check_int("workers", self.workers, minimum=1)
        _check_int("adapt_minimum", self.adapt_minimum, minimum=0)
        _check_int("adapt_maximum", self.adapt_maximum, minimum=1)
        for name in ("connect_timeout", "worker_timeout"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 86400
            ):
                raise ValueError(f"ClusterSpec.{name} must be a number of seconds in (0, 86400], got {value!r}")
        if self.processes is not None and self.processes not in (True, False, "auto"):
            raise ValueError(f"ClusterSpec.processes must be true, false or 'auto', got {self.processes!r}")
        if self.dashboard is not None and not isinstance(self.dashboard, bool):
            raise TypeError(f"ClusterSpec.dashboard must be a bool or None, got {self.dashboard!r}")
        if self.memory_limit is not None:
            _check_memory_limit(self.memory_limit)
        for name in ("address", "proxy_address", "username", "password"):
            value = getattr(self, name)
            if name == "password" and hasattr(value, "get_secret_value"):
                # a pydantic SecretStr from the run config: unwrapped only in gateway_auth
                value = value.get_secret_value()
            if value is not None and (not isinstance(value, str) or not value):
                shown = "a hidden value" if name == "password" else repr(value)  # never echo a secret
                raise TypeError(f"ClusterSpec.{name} must be a non-empty str, got {shown}")
        if self.kind == "address":
            _check_scheduler_address(self.address)
        if self.kind == "gateway":
            self._check_gateway()

    def _check_gateway(self) -> None:
        if self.address is not None and not _is_url(self.address, ("http", "https")):
            raise ValueError(
                f"ClusterSpec.address for kind='gateway' must be an http:// or https:// "
                f"URL with a host (and a port in 1..65535), got {public_address(self.address)!r}"
            )
        if self.auth is not None and self.auth not in _AUTHS:
            raise ValueError(f"ClusterSpec.auth must be one of {_AUTHS} or None, got {self.auth!r}")
        if (self.username is not None or self.password is not None) and self.auth != "basic":
            raise ValueError(
                f"ClusterSpec.username/password need auth='basic', got auth={self.auth!r}"
            )
        if self.workers is not None and (
            self.adapt_minimum is not None or self.adapt_maximum is not None
        ):
            raise ValueError(
                "ClusterSpec.workers (fixed size) and adapt_minimum/adapt_maximum "
                "(adaptive) exclude each other; set one or the other"
            )
        if (
            self.adapt_minimum is not None
            and self.adapt_maximum is not None
            and self.adapt_minimum > self.adapt_maximum
        ):
            raise ValueError(
                f"ClusterSpec.adapt_minimum ({self.adapt_minimum}) must be <= "
                f"adapt_maximum ({self.adapt_maximum})"
            )
        if self.cluster_options is not None:
            if not isinstance(self.cluster_options, Mapping) or not all(
                isinstance(k, str) for k in self.cluster_options
            ):
                raise TypeError(
                    "ClusterSpec.cluster_options must be a mapping with str keys, "
                    f"got {self.cluster_options!r}"
                )
            # Own a read-only copy: the spec is frozen, the caller's dict is not.
            object.__setattr__(
                self, "cluster_options", MappingProxyType(dict(self.cluster_options))
            )

    @classmethod
    def from_cli(cls, value: str) -> ClusterSpec:
        """Map a ``--cluster`` command-line value to a spec with default sizing.

        Parameters
        ----------
        value : str
            ``"local"``, ``"gateway"`` (details from dask config / ``DASK_GATEWAY__*``)
            or a scheduler address ``"tcp://host:port"`` / ``"tls://host:port"``.

        Returns
        -------
        ClusterSpec

        Examples
        --------
        >>> ClusterSpec.from_cli("local").kind
        'local'
        >>> ClusterSpec.from_cli("tls://scheduler:8786").address
        'tls://scheduler:8786'
        """
        text = value.strip() if isinstance(value, str) else value
        if text in ("local", "gateway"):
            return cls(kind=text)
        if isinstance(text, str) and urlsplit(text).scheme in _ADDRESS_SCHEMES:
            return cls(kind="address", address=text)
        raise ValueError(
            f"--cluster must be 'local', 'gateway' or a scheduler address "
            f"'tcp://host:port' / 'tls://host:port', got {value!r}"
        )


@contextmanager
def get_client(spec: ClusterSpec, *, input_bytes: int | None = None) -> Iterator[Client]:
    """Start (or connect to) the runtime described by ``spec`` and yield a client.

    The client is the default for ``dask.compute`` inside the block. On exit the
    client is closed and a cluster started here (``local``, ``gateway``) is shut
    down, also when the block raises or is interrupted (``KeyboardInterrupt``).
    With ``kind="address"`` only the client is closed: the cluster is not ours.

    Parameters
    ----------
    spec : ClusterSpec
    input_bytes : int, optional
        Size of the run's input, when known: with ``processes`` ``"auto"`` or unset, a local
        cluster is one worker of threads in this process for at most :data:`SMALL_INPUT_BYTES`
        (:func:`in_threads`).

    Yields
    ------
    distributed.Client

    Raises
    ------
    ValueError
        For ``kind="gateway"`` when neither the spec nor dask config name a gateway.
    cpc_core.errors.EnvironmentUnavailable
        When the gateway or scheduler cannot be reached within ``connect_timeout``, refuses
        the credentials or fails to start a cluster. One line naming the address (never a
        credential); raised only while opening, never for an error of the block.

    Notes
    -----
    No worker is waited for here: an adaptive gateway cluster (from 0 workers) adds them
    only once work is submitted. Each stage calls :func:`require_workers` after submitting
    its tasks; it waits up to ``worker_timeout`` for a first worker and checks that every
    worker runs the driver's cpc version.

    Examples
    --------
    >>> import dask.array as da
    >>> spec = ClusterSpec(kind="local", n_workers=2, memory_limit="2GiB")
    >>> with get_client(spec) as client:  # doctest: +SKIP
    ...     da.arange(10, chunks=5).sum().compute()
    np.int64(45)
    """
    openers = {"local": functools.partial(_local_client, input_bytes=input_bytes), "gateway": gateway_client,
               "address": _address_client}
    connect = spec.connect_timeout or DEFAULT_CONNECT_TIMEOUT
    # distributed's own connect timeout (default 30 s, retried) bounds the scheduler
    # connection of every kind; the gateway's HTTP API gets the same bound (_gateway).
    with (
        dask.config.set({"distributed.comm.timeouts.connect": f"{connect}s"}),
        openers[spec.kind](spec) as client,
    ):
        link = dashboard_link(client) if spec.dashboard is not False else None
        if link:
            logger.info("Dask dashboard: %s", link)
        where = (
            f"Dask Gateway {public_address(spec.address or dask.config.get('gateway.address', None))}"
            if spec.kind == "gateway"
            else f"Dask scheduler {client.scheduler.address}"
        )
        register(client, where, spec.worker_timeout or DEFAULT_WORKER_TIMEOUT)
        yield client


def in_threads(spec: ClusterSpec, input_bytes: int | None) -> bool:
    """Whether a local cluster of ``spec`` runs as one worker of threads in this process:
    ``processes`` false, or auto/unset and an input of known size up to :data:`SMALL_INPUT_BYTES`.

    Examples
    --------
    >>> in_threads(ClusterSpec(kind="local"), 10 * 2**20), in_threads(ClusterSpec(kind="local"), None)
    (True, False)
    """
    if spec.processes in (True, False):
        return not spec.processes
    return input_bytes is not None and input_bytes <= SMALL_INPUT_BYTES


def in_process(client: Client) -> bool:
    """Whether ``client``'s scheduler runs in this process (in-process transport)."""
    return str(client.scheduler.address).startswith("inproc://")


@contextmanager
def _local_client(spec: ClusterSpec, input_bytes: int | None = None) -> Iterator[Client]:
    """A ``LocalCluster``: worker processes, or one worker of threads in this process (the same
    scheduler and client API, started in ~0.5 s, reusing this process's imports and compiled
    kernels) when :func:`in_threads`."""
    from distributed import Client, LocalCluster

    n_workers, threads, memory_limit = _local_size(spec)
    threaded = in_threads(spec, input_bytes)
    dashboard = spec.dashboard if spec.dashboard is not None else not threaded
    if threaded:
        why = "processes: false" if spec.processes is False else (
            f"processes: auto, the input is at most {format_bytes(SMALL_INPUT_BYTES)}")
        logger.info("Dask cluster: local, 1 worker of %d threads in this process (%s), %s memory%s",
                    n_workers * threads, why, format_bytes(n_workers * memory_limit),
                    "" if dashboard else "; no dashboard (cluster.dashboard: true serves one)")
        # in-process transport ("inproc://"); the worker's HTTP server (/health ...) on loopback
        # too, else it listens on every interface; its dashboard only if asked (bokeh: ~0.4 s
        # of the cluster's start)
        env, kwargs = contextlib.nullcontext(), {
            "n_workers": 1, "threads_per_worker": n_workers * threads, "memory_limit": n_workers * memory_limit,
            "processes": False, "worker_dashboard_address": "127.0.0.1:0"}
        if not dashboard:
            kwargs["worker_class"] = _worker_without_dashboard()
    else:
        logger.info("Dask cluster: local, %d worker processes x %d thread(s), %s memory each",
                    n_workers, threads, format_bytes(memory_limit))
        env, kwargs = local_worker_env(), {
            "n_workers": n_workers, "threads_per_worker": threads, "memory_limit": memory_limit,
            "processes": True, "host": "127.0.0.1"}
    # Loopback only: nothing of a local run should be reachable from the network. With
    # dashboard=False the scheduler still serves /health etc., on a free port rather than
    # 8787, so parallel runs never collide.
    with (
        env,
        LocalCluster(dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": dashboard}, **kwargs)
        as cluster,
        Client(cluster) as client,
    ):
        if not dashboard:
            _NO_DASHBOARD.add(client)
        if not threaded:  # their records reach this terminal: one line each, as cpc's own
            from cluster._worker_logs import install_on_local_workers

            install_on_local_workers(client)
        yield client


@functools.cache
def _worker_without_dashboard() -> type:
    """A ``distributed.Worker`` whose HTTP server has no dashboard. ``LocalCluster`` ties the
    worker's dashboard to its HTTP address (``worker_dashboard_address``); without an address the
    server listens on every interface."""
    from distributed import Worker

    class WorkerWithoutDashboard(Worker):
        def __init__(self, *args, **kwargs):
            # nor the statistical profiler, which feeds only the dashboard's Profile page: every
            # 10 ms it walks the task threads' stacks on the worker's event loop, in this
            # process, under the GIL the driver and the tasks share (cpc demo: ~0.2 s)
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                super().__init__(*args, **{**kwargs, "dashboard": False})

    return WorkerWithoutDashboard


#: Clients of local clusters started without the dashboard: their scheduler still serves an
#: HTTP endpoint (/health ...), whose link is not a dashboard (:func:`dashboard_link`).
_NO_DASHBOARD: weakref.WeakSet = weakref.WeakSet()


def dashboard_link(client: Client) -> str | None:
    """The link of ``client``'s dashboard, or None when there is none (a local cluster
    started without it, :class:`ClusterSpec` ``dashboard``)."""
    if client in _NO_DASHBOARD or not getattr(client, "dashboard_link", None):
        return None
    return _dashboard_link(client)


def _dashboard_link(client: Client) -> str:
    """The dashboard's link; an in-process cluster's names the machine's address, but its
    server listens on loopback only (:func:`_local_client`): say so."""
    link = client.dashboard_link
    if in_process(client):
        parts = urlsplit(link)
        link = parts._replace(netloc=f"127.0.0.1:{parts.port}").geturl() if parts.port else link
    return link


def _machine_memory() -> int:
    return sys.modules[__name__].MEMORY_LIMIT  # through __getattr__ until read (or patched)


def _local_size(spec: ClusterSpec) -> tuple[int, int, int]:
    """Return (n_workers, threads_per_worker, memory_limit in bytes) for a local cluster."""
    threads = spec.threads_per_worker or 1
    explicit = spec.memory_limit not in (None, "auto")
    if spec.n_workers is not None:
        n_workers = spec.n_workers
    else:
        per_worker = parse_bytes(spec.memory_limit) if explicit else _MIN_LOCAL_WORKER_MEMORY
        # MEMORY_LIMIT and CPU_COUNT honour cgroup limits and CPU affinity (containers, Slurm).
        n_workers = max(1, min(CPU_COUNT // threads, _machine_memory() // per_worker))
    # Not distributed's own "auto": that gives each worker its *thread* share of the
    # machine, so workers capped by memory would get less than the 2 GiB they were sized for.
    memory_limit = parse_bytes(spec.memory_limit) if explicit else _machine_memory() // n_workers
    return n_workers, threads, memory_limit


@contextmanager
def _address_client(spec: ClusterSpec) -> Iterator[Client]:
    from distributed import Client

    timeout = spec.connect_timeout or DEFAULT_CONNECT_TIMEOUT
    try:
        client = Client(spec.address, set_as_default=True, timeout=timeout)
    except (OSError, TimeoutError) as e:
        # distributed retries refused connections until the timeout, then raises OSError
        # ("Timed out trying to connect to ...") with the address and the last reason.
        raise EnvironmentUnavailable(
            f"cannot reach the Dask scheduler at {clip(spec.address)} within {timeout:g} s "
            f"({type(e).__name__}); check that it is running and reachable from here "
            "(cluster.connect_timeout to wait longer)"
        ) from None
    with client:
        nthreads = client.nthreads()
        logger.info(
            "Dask cluster: existing scheduler %s, %d workers / %d threads now",
            spec.address,
            len(nthreads),
            sum(nthreads.values()),
        )
        yield client


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if value is None:
        return
    # bool is an int subclass; `workers: true` in YAML is a mistake, not 1.
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"ClusterSpec.{name} must be an int >= {minimum} or None, got {value!r}")
    if value < minimum:
        raise ValueError(f"ClusterSpec.{name} must be >= {minimum}, got {value}")


def _check_memory_limit(value: object) -> None:
    if value == "auto":
        return
    try:
        nbytes = parse_bytes(value) if isinstance(value, str) else None
    except ValueError:
        nbytes = None
    if nbytes is None or nbytes <= 0:
        raise ValueError(
            f"ClusterSpec.memory_limit must be 'auto' or a positive size such as '4GiB', "
            f"got {value!r}"
        )


def _check_scheduler_address(value: str | None) -> None:
    if not _is_url(value or "", _ADDRESS_SCHEMES):
        raise ValueError(
            "ClusterSpec.address for kind='address' must be a scheduler address "
            f"'tcp://host:port' or 'tls://host:port', got {clip(value)!r}"
        )
