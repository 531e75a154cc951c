"""A real Dask Gateway server on localhost, for tests.

``running_gateway`` starts ``dask-gateway-server`` as a subprocess with the
``UnsafeLocalBackend`` (schedulers and workers are plain local processes of the
current user) and the ``SimpleAuthenticator`` (HTTP basic auth with one shared
password), waits until its HTTP API answers through the proxy, and on exit
stops it and checks that no scheduler, worker or proxy process outlived it.

It is a context manager, not a fixture, so that ``conftest.py`` files can wrap
it in whatever fixture scope they need::

    @pytest.fixture(scope="session")
    def gateway(tmp_path_factory):
        with running_gateway(tmp_path_factory.mktemp("gateway")) as info:
            yield info

Examples
--------
>>> with running_gateway(tmp_path) as info:  # doctest: +SKIP
...     with connect(info) as gw:
...         assert gw.list_clusters() == []
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
from dask_gateway import BasicAuth, Gateway

__all__ = ["GatewayInfo", "connect", "running_gateway"]

_LOOPBACK = "127.0.0.1"
# The venv's console scripts (dask-gateway-server, dask): the scheduler and
# worker commands are resolved through PATH by the gateway's local backend.
_SCRIPTS = Path(sysconfig.get_path("scripts"))


@dataclass(frozen=True)
class GatewayInfo:
    """How to reach a gateway started by :func:`running_gateway`.

    Attributes
    ----------
    address : str
        Public HTTP address (through the proxy), what ``Gateway(address=...)`` takes.
    proxy_address : str
        Scheduler proxy, ``gateway://127.0.0.1:PORT``.
    api_address : str
        The gateway's private HTTP API, bypassing the proxy.
    username, password : str
        Basic-auth credentials the server accepts.
    pid : int
        Process id of the ``dask-gateway-server`` process.
    log_path : pathlib.Path
        File receiving the server's stdout and stderr.
    """

    address: str
    proxy_address: str
    api_address: str
    username: str
    password: str
    pid: int
    log_path: Path

    def auth(self) -> BasicAuth:
        """Return the ``BasicAuth`` object the server accepts."""
        return BasicAuth(username=self.username, password=self.password)

    def env(self) -> dict[str, str]:
        """Return the ``DASK_GATEWAY__*`` variables that point dask-gateway here.

        Examples
        --------
        >>> for key, value in info.env().items():  # doctest: +SKIP
        ...     monkeypatch.setenv(key, value)
        >>> dask.config.refresh()  # doctest: +SKIP
        """
        return {
            "DASK_GATEWAY__ADDRESS": self.address,
            "DASK_GATEWAY__PROXY_ADDRESS": self.proxy_address,
            "DASK_GATEWAY__AUTH__TYPE": "basic",
            "DASK_GATEWAY__AUTH__KWARGS__USERNAME": self.username,
            "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": self.password,
        }

    def log_tail(self, n_lines: int = 40) -> str:
        """Return the last ``n_lines`` of the server log."""
        return _tail(self.log_path, n_lines)


@contextmanager
def running_gateway(
    tmp_path: Path,
    *,
    username: str = "cpc-test",
    password: str | None = None,
    startup_timeout: float = 60.0,
    stop_timeout: float = 30.0,
) -> Iterator[GatewayInfo]:
    """Run a Dask Gateway server on two free loopback ports.

    Parameters
    ----------
    tmp_path : pathlib.Path
        Directory for the config file, the server log and the clusters'
        working directories; must exist.
    username : str
        User name the client authenticates as (any name is accepted).
    password : str, optional
        Shared password; a random one by default.
    startup_timeout : float
        Seconds to wait for the HTTP API to answer before failing.
    stop_timeout : float
        Seconds to wait for a graceful shutdown before killing the server.

    Yields
    ------
    GatewayInfo

    Raises
    ------
    RuntimeError
        If the server exits or does not answer in time (the message carries the
        log tail), or if processes it started outlive it (they are killed first).

    Examples
    --------
    >>> with running_gateway(tmp_path) as info:  # doctest: +SKIP
    ...     spec = ClusterSpec(
    ...         kind="gateway", address=info.address, proxy_address=info.proxy_address,
    ...         auth="basic", username=info.username, password=info.password, workers=1,
    ...     )
    ...     with get_client(spec) as client:
    ...         ...
    """
    # A "pw-" prefix keeps dask's env parsing (ast.literal_eval) from turning an
    # all-digit token into an int when the password travels via DASK_GATEWAY__*.
    password = password if password is not None else f"pw-{secrets.token_hex(8)}"
    api_port, proxy_port = _free_ports(2)
    clusters_dir = tmp_path / "gateway-clusters"
    clusters_dir.mkdir(exist_ok=True)
    config_path = tmp_path / "gateway_config.py"
    config_path.write_text(_config_text(api_port, proxy_port, password, clusters_dir))
    log_path = tmp_path / "gateway.log"

    env = dict(os.environ)
    env["PATH"] = f"{_SCRIPTS}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(_SCRIPTS.parent)
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [str(_SCRIPTS / "dask-gateway-server"), "--config", str(config_path)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C in the test terminal must not race our teardown.
            start_new_session=True,
        )
        info = GatewayInfo(
            address=f"http://{_LOOPBACK}:{proxy_port}",
            proxy_address=f"gateway://{_LOOPBACK}:{proxy_port}",
            api_address=f"http://{_LOOPBACK}:{api_port}",
            username=username,
            password=password,
            pid=proc.pid,
            log_path=log_path,
        )
        try:
            _wait_until_healthy(proc, info, startup_timeout)
            yield info
        finally:
            leftovers = _stop(proc, stop_timeout)
        # Only reached when the body did not raise, so this cannot mask its error.
        if leftovers:
            raise RuntimeError(
                f"dask-gateway-server left processes behind (killed now): {leftovers}\n"
                f"--- server log tail ---\n{info.log_tail()}"
            )


@contextmanager
def connect(info: GatewayInfo) -> Iterator[Gateway]:
    """Yield a ``dask_gateway.Gateway`` client for ``info``, closed for good on exit.

    Prefer this to ``with Gateway(...)``: with distributed >= 2023.6 a closed
    ``Gateway`` raises again from ``__del__`` at a later garbage collection,
    which pytest reports as an unraisable exception and which can even break an
    unrelated ``compile()`` on CPython 3.11 (see ``cluster._gateway.close_gateway``).

    Examples
    --------
    >>> with connect(info) as gw:  # doctest: +SKIP
    ...     gw.list_clusters()
    []
    """
    gateway = Gateway(info.address, info.proxy_address, auth=info.auth())
    try:
        yield gateway
    finally:
        try:
            gateway.close()
        finally:
            # Gateway.__del__ skips objects without _loop_runner.
            gateway.__dict__.pop("_loop_runner", None)


def _config_text(api_port: int, proxy_port: int, password: str, clusters_dir: Path) -> str:
    # Sized for a 2-core / 24 GiB test machine: one core and 1 GiB per process,
    # at most two workers per cluster so a runaway adapt() cannot swamp it.
    return f"""\
c.DaskGateway.address = "{_LOOPBACK}:{api_port}"
c.Proxy.address = "{_LOOPBACK}:{proxy_port}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
c.DaskGateway.log_level = "INFO"
c.LocalBackend.clusters_directory = {str(clusters_dir)!r}
c.LocalBackend.sigint_timeout = 5
c.LocalBackend.sigterm_timeout = 3
c.ClusterConfig.scheduler_cmd = ["dask", "scheduler"]
c.ClusterConfig.worker_cmd = ["dask", "worker"]
c.ClusterConfig.scheduler_cores = 1
c.ClusterConfig.scheduler_memory = "1 G"
c.ClusterConfig.worker_cores = 1
c.ClusterConfig.worker_memory = "1 G"
c.ClusterConfig.cluster_max_workers = 2
# Adaptive decisions every second (default 3 s) keep adaptive tests short.
c.ClusterConfig.adaptive_period = 1.0
"""


def _free_ports(n: int) -> list[int]:
    # Hold all sockets open until every port is chosen so the n ports differ;
    # the server binds them right after (a small race we accept in tests).
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((_LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _wait_until_healthy(proc: subprocess.Popen, info: GatewayInfo, timeout: float) -> None:
    # Ask through the proxy: a 200 there means both the API server and the
    # proxy (which clients and schedulers go through) are up.
    url = f"{info.address}/api/health"
    deadline = time.monotonic() + timeout
    # No HTTP proxy from the environment for a loopback health check.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"dask-gateway-server exited with code {proc.returncode} during startup\n"
                f"--- server log tail ---\n{info.log_tail()}"
            )
        try:
            with opener.open(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"dask-gateway-server did not answer {url} within {timeout:.0f} s\n"
                f"--- server log tail ---\n{info.log_tail()}"
            )
        time.sleep(0.2)


def _stop(proc: subprocess.Popen, timeout: float) -> list[str]:
    """Stop the server and everything it started; return what had to be killed."""
    # Every scheduler, worker and the proxy is a child of the server (each in
    # its own session, so a process-group kill would miss them): note them now,
    # before they get re-parented on the server's exit.
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    if proc.poll() is None:
        # SIGTERM makes the server stop all clusters (in-memory DB implies
        # stop_clusters_on_shutdown) and its proxy before exiting.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(children, timeout=5)
    leftovers = []
    for p in alive:
        try:
            leftovers.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
            p.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=5)
    return leftovers


def _tail(path: Path, n_lines: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as err:
        return f"<no log: {err}>"
    return "\n".join(lines[-n_lines:])
