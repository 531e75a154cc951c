"""A long-lived local cluster for an interactive day: ``cpc cluster up|down|status``.

Dask's own convention is ``dask scheduler`` plus an address. ``cpc cluster up`` starts a
``LocalCluster`` (loopback only, the sizing of :func:`cluster.get_client`'s local clusters) in a
detached background process and writes its scheduler address to a *state file*; later commands
whose configuration says ``cluster.kind: local`` (the default) and that are not given
``--cluster`` connect to that address instead of starting a cluster of their own, and say so in
their log. ``cpc cluster down`` stops it and removes the file; ``cpc cluster status`` prints it.

The state file is ``$CPC_CACHE_DIR/local-cluster.json``, else
``$XDG_CACHE_HOME/cpc/local-cluster.json``, else ``~/.cache/cpc/local-cluster.json``: one per
user, like the scheduler it names. It holds the address, the background process's id, the sizing
and the start time: nothing secret (the scheduler listens on 127.0.0.1 only).

A file whose scheduler is gone (the machine rebooted, the process was killed) is *stale*: it is
detected by checking the process id and connecting to the address (standard library, a
1-second bound, never a hang), named in a warning and ignored; ``up`` and ``down`` remove it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

STATE_NAME = "local-cluster.json"
#: seconds ``up`` waits for the background cluster to write its address
START_TIMEOUT = 120.0
#: seconds ``down`` waits for it to close before killing its process group
STOP_TIMEOUT = 30.0
#: marker in the background process's command line, checked before signalling a process id
_MODULE = "cluster._daemon"


def state_dir() -> Path:
    """``$CPC_CACHE_DIR``, else ``$XDG_CACHE_HOME/cpc``, else ``~/.cache/cpc``."""
    base = os.environ.get("CPC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "cpc")
    return Path(base)


def state_file() -> Path:
    """Where ``cpc cluster up`` writes the address of its scheduler."""
    return state_dir() / STATE_NAME


@dataclass(frozen=True)
class Found:
    """What the state file says, and whether its scheduler answers."""

    path: Path
    record: dict | None
    live: bool
    reason: str = ""

    @property
    def address(self) -> str | None:
        return (self.record or {}).get("address")


def _pid_alive(pid: object) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's: not ours
        return False
    return _is_ours(pid)


def _is_ours(pid: int) -> bool:
    """Whether process ``pid`` is a cluster started by ``cpc cluster up`` (a reused pid is not)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (macOS): the address check below decides
    return _MODULE.encode() in cmd


def _answers(address: str, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``address`` (``tcp://host:port``)."""
    try:
        u = urlsplit(address)
        with socket.create_connection((u.hostname, u.port), timeout=timeout):
            return True
    except (OSError, ValueError, TypeError):
        return False


def find(path: Path | None = None) -> Found:
    """Read the state file and check its scheduler (process alive and address answering)."""
    path = path or state_file()
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Found(path, None, False, "no state file")
    except (OSError, ValueError) as e:
        return Found(path, None, False, f"unreadable ({type(e).__name__})")
    if not isinstance(record, dict) or not isinstance(record.get("address"), str):
        return Found(path, None, False, "not a cluster record")
    if not _pid_alive(record.get("pid")):
        return Found(path, record, False, f"its process {record.get('pid')} is gone")
    if not _answers(record["address"]):
        return Found(path, record, False, f"nothing answers at {record['address']}")
    return Found(path, record, True)


def live_address() -> tuple[str, Path] | None:
    """The address of the live cluster of ``cpc cluster up``, with its state file; None when
    there is none (a stale file is named in a WARNING and ignored)."""
    f = find()
    if f.live:
        return f.address, f.path
    if f.record is not None or f.reason not in ("no state file",):
        logger.warning("ignoring the stale local-cluster file %s (%s); `cpc cluster down` removes it",
                       f.path, f.reason)
    return None


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=2)
    os.replace(tmp, path)


def up(n_workers: int | None = None, threads_per_worker: int | None = None, memory_limit: str | None = None,
       dashboard: bool = True) -> dict:
    """Start the background cluster (or find the running one) and return its record.

    Raises
    ------
    cpc_core.errors.EnvironmentUnavailable
        When the background process exits or writes no address within :data:`START_TIMEOUT`
        (its log, ``local-cluster.log`` beside the state file, names why).
    """
    from cpc_core.errors import EnvironmentUnavailable

    f = find()
    if f.live:
        logger.info("a local cluster is already running at %s (%s)", f.address, f.path)
        return f.record
    if f.record is not None or f.reason not in ("no state file",):
        logger.warning("removing the stale local-cluster file %s (%s)", f.path, f.reason)
        f.path.unlink(missing_ok=True)
    f.path.parent.mkdir(parents=True, exist_ok=True)
    log = f.path.with_suffix(".log")
    cmd = [sys.executable, "-m", _MODULE, "--state", str(f.path)]
    for flag, v in (("--n-workers", n_workers), ("--threads-per-worker", threads_per_worker),
                    ("--memory-limit", memory_limit)):
        if v is not None:
            cmd += [flag, str(v)]
    if not dashboard:
        cmd.append("--no-dashboard")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])])}
    with open(log, "ab") as fh:
        # its own session: not stopped by the terminal's Ctrl-C or hang-up, outlives this command
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh, env=env,
                                start_new_session=True, close_fds=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EnvironmentUnavailable(f"the local cluster did not start (exit {proc.returncode}); see {log}")
        f = find()
        if f.live and f.record.get("pid") == proc.pid:
            return f.record
        time.sleep(0.2)
    _stop_pid(proc.pid)
    raise EnvironmentUnavailable(f"the local cluster wrote no address within {START_TIMEOUT:g} s; see {log}")


def down() -> Found:
    """Stop the background cluster and remove the state file (a stale one too)."""
    f = find()
    pid = (f.record or {}).get("pid")
    if isinstance(pid, int) and _pid_alive(pid):
        _stop_pid(pid)
    f.path.unlink(missing_ok=True)
    return f


def _stop_pid(pid: int) -> None:
    """SIGTERM the background process (it closes its cluster); past :data:`STOP_TIMEOUT`, kill
    its process group (its own session: the cluster's worker processes and nothing else)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)  # our child when `up` gave up on it; harmless otherwise
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    logger.warning("the local cluster (process %d) did not close within %g s: killing its process group",
                   pid, STOP_TIMEOUT)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def serve(state: Path, n_workers: int | None, threads_per_worker: int | None, memory_limit: str | None,
          dashboard: bool) -> int:
    """The background process: run a LocalCluster until SIGTERM/SIGINT or its scheduler closes."""
    import threading

    from distributed import LocalCluster

    from cluster import ClusterSpec, _local_size, local_worker_env
    from cpc_core import __version__

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    spec = ClusterSpec(kind="local", n_workers=n_workers, threads_per_worker=threads_per_worker,
                       memory_limit=memory_limit, dashboard=dashboard)
    n, threads, memory = _local_size(spec)
    with (
        local_worker_env(),
        LocalCluster(n_workers=n, threads_per_worker=threads, memory_limit=memory, processes=True,
                     host="127.0.0.1", dashboard_address="127.0.0.1:0",
                     scheduler_kwargs={"dashboard": dashboard}) as cluster,
    ):
        record = {"address": cluster.scheduler_address, "pid": os.getpid(), "n_workers": n,
                  "threads_per_worker": threads, "memory_limit": memory,
                  "dashboard": cluster.dashboard_link if dashboard else None, "cpc_version": __version__,
                  "python": sys.executable, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        _write(state, record)
        logger.warning("local cluster up at %s (state %s)", record["address"], state)
        try:
            while not stop.wait(1.0):
                if cluster.status.name in ("closing", "closed", "failed"):
                    break
        finally:
            try:  # only our own record: a newer `up` may have replaced it
                if json.loads(state.read_text(encoding="utf-8")).get("pid") == os.getpid():
                    state.unlink()
            except (OSError, ValueError):
                pass
    return 0


def _main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"python -m {_MODULE}")
    p.add_argument("--state", required=True)
    p.add_argument("--n-workers", type=int, default=None)
    p.add_argument("--threads-per-worker", type=int, default=None)
    p.add_argument("--memory-limit", default=None)
    p.add_argument("--no-dashboard", action="store_true")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # NUMBA_CACHE_DIR, where `cpc` set one, came with the environment: the workers inherit it
    return serve(Path(a.state), a.n_workers, a.threads_per_worker, a.memory_limit, not a.no_dashboard)


if __name__ == "__main__":
    sys.exit(_main())
