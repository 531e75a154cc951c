"""The validation's figures drawn in a second process, beside its statistics.

The validation is the chain's single-node stage: one Python thread computes the statistics
and models while the figures (Figures 1-5, the lag sweep, the uncertainty plot; PNG and SVG)
would wait their turn on the same core. Rendering is matplotlib's pure-Python layout and
Agg drawing under the GIL, so threads cannot share it; a second process can. This module
keeps one helper process for a validation:

- started with ``subprocess`` (``python -c``), not ``multiprocessing``: no fork of a process
  that holds an in-process Dask cluster's threads, and no re-import of the caller's
  ``__main__`` (a user's script without a ``__main__`` guard would run again);
- fed :class:`~cpc_core.render.figures.FigureSpec` s (a figure function's name and its data)
  over a pipe, answering with each figure's bytes per format, its log records and warnings,
  which the parent re-emits under its own logging and warning filters;
- drained by a reader thread and fed by a writer thread, so the parent never blocks on a
  full pipe while it computes;
- ignoring Ctrl-C (the parent decides) and ending when its input closes.

The bytes are those :func:`~cpc_core.render.figures.draw` returns in the parent (same
functions, same matplotlib; tested). If the helper cannot start or ends early, the figures
not yet received are drawn in the parent, with one warning saying so: never a missing figure.
"""

from __future__ import annotations

import logging
import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import warnings
from collections import deque
from concurrent.futures import Future
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["FigureProcess", "FigureProcessError", "use_process"]

_BOOT = ("import sys, pickle; path, level = pickle.load(sys.stdin.buffer); sys.path[:] = path; "
         "from jobs._figure_process import _serve; _serve(level)")  # fmt: skip


class FigureProcessError(RuntimeError):
    """The helper process ended (or never started) before answering."""


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return os.cpu_count() or 1


#: Memory the machine must have available for the helper to start by default: the helper
#: holds ~100-150 MiB (a Python with pandas and matplotlib), so with less it is not worth it.
MIN_AVAILABLE_BYTES = 1 << 30


def available_bytes() -> int | None:
    """Memory available to new processes (psutil), None when it cannot be told."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or the OS not telling
        return None


def use_process(setting: bool | None) -> bool:
    """Whether to draw in a helper process: ``setting``; when None, with 2 or more usable CPUs
    and at least :data:`MIN_AVAILABLE_BYTES` of memory available.

    On one CPU the helper would only add its start-up (~1 s of imports) to the same core; on a
    machine short of memory its ~100-150 MiB are better left to the rest.
    """
    if setting is not None:
        return bool(setting)
    if usable_cpus() < 2:
        return False
    avail = available_bytes()
    return avail is None or avail >= MIN_AVAILABLE_BYTES


class FigureProcess:
    """One helper process drawing figures; started at the first :meth:`submit`.

    Jobs wait in a queue; the helper takes the first whenever it is free, and the caller may
    :meth:`take_last` one to draw it itself (both ends of the queue work on it at once, as in
    work stealing: the caller draws while the helper draws, when the statistics are done).
    Use as a context manager (or call :meth:`close`): the process ends with it.
    """

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._futures: dict[int, Future] = {}  # sent to the helper, not answered yet
        self._queue: deque = deque()  # (job id, message, future) not sent yet
        self._lock = threading.Lock()
        self._outbox: queue.Queue = queue.Queue()
        self._idle = False  # the helper waits for a job
        self._ended: str | None = None  # why the helper stopped answering
        self._next = 0
        self._threads: list[threading.Thread] = []
        self._stderr = None

    def __enter__(self) -> FigureProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def started(self) -> bool:
        """Whether the helper process was started."""
        return self._proc is not None

    @property
    def ended(self) -> str | None:
        """Why the helper stopped answering (None while it answers or was never needed)."""
        return self._ended

    def _start(self) -> None:
        if not sys.executable:  # an embedded interpreter: no Python to start
            self._ended = "could not start (no Python executable: sys.executable is empty)"
            return
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE,
                                          stdout=subprocess.PIPE, stderr=self._stderr,
                                          close_fds=True)  # fmt: skip
        except OSError as e:
            self._stderr.close()
            self._ended = f"could not start ({e})"
            return
        level = logging.getLogger("cpc_core").getEffectiveLevel()
        self._outbox.put((list(sys.path), level))
        for target, name in ((self._write, "cpc-figures-writer"), (self._read, "cpc-figures-reader")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        logger.debug("figures: helper process %d started", self._proc.pid)

    def start(self) -> None:
        """Start the helper now, before the first job (its ~1 s boot, matplotlib's import,
        overlaps the caller's work); :meth:`submit` starts it otherwise."""
        with self._lock:
            if self._proc is None and self._ended is None:
                self._start()

    def submit(self, spec: Any, formats: list[str], dpi: int) -> Future:
        """Queue ``spec`` to be drawn in ``formats``; a future of ``{format: bytes}``.

        The future fails with :class:`FigureProcessError` if the helper cannot answer (the
        caller then draws the figure itself), or with the drawing's own exception.
        """
        fut: Future = Future()
        with self._lock:
            if self._proc is None and self._ended is None:
                self._start()
            if self._ended is not None:
                fut.set_exception(FigureProcessError(self._ended))
                return fut
            job = self._next
            self._next += 1
            self._queue.append((job, (job, spec, list(formats), int(dpi)), fut))
            if self._idle:
                self._send_next()
        return fut

    def take_last(self) -> tuple[Any, Future] | None:
        """The last job not yet sent to the helper, taken off the queue (``(spec, future)``),
        for the caller to draw; None when the helper has them all."""
        with self._lock:
            if not self._queue:
                return None
            _, (_, spec, _, _), fut = self._queue.pop()
            return spec, fut

    def _send_next(self) -> None:
        # under self._lock
        if self._queue and self._ended is None:
            job, msg, fut = self._queue.popleft()
            self._futures[job] = fut
            self._outbox.put(msg)
            self._idle = False
        else:
            self._idle = True

    def _write(self) -> None:
        stream = self._proc.stdin
        try:
            while (item := self._outbox.get()) is not None:
                pickle.dump(item, stream, protocol=pickle.HIGHEST_PROTOCOL)
                stream.flush()
        except (OSError, ValueError):  # the helper ended; the reader reports it
            pass
        finally:
            try:
                stream.close()
            except OSError:
                pass

    def _read(self) -> None:
        stream = self._proc.stdout
        while True:
            try:
                job, ok, payload, records, caught = pickle.load(stream)
            except EOFError:  # the helper ended
                break
            except Exception:  # an answer that does not read back: stop the helper, draw here
                self._proc.kill()
                break
            for rec in records:
                _emit(rec)
            for message, category, filename, lineno in caught:
                warnings.warn_explicit(message, category, filename, lineno)
            with self._lock:
                fut = self._futures.pop(job, None)
                self._send_next()  # the helper is free: its next job goes now
            if fut is None:  # the first message: the helper is ready
                continue
            if ok:
                fut.set_result(payload)
            else:
                fut.set_exception(payload)
        rc = self._proc.wait()
        why = f"ended with exit code {rc}"
        last = self._last_error_line()
        if last:
            why += f" ({last})"
        with self._lock:
            self._ended = why
            sent, self._futures = self._futures, {}
        for fut in sent.values():
            fut.set_exception(FigureProcessError(why))

    def _last_error_line(self) -> str:
        try:
            self._stderr.seek(0)
            lines = [ln.strip() for ln in self._stderr.read().decode(errors="replace").splitlines()]
        except (OSError, ValueError):
            return ""
        return next((ln for ln in reversed(lines) if ln), "")[:300]

    def close(self, timeout: float = 5.0) -> None:
        """End the helper: its input closes, it exits; killed after ``timeout`` seconds."""
        if self._proc is None:
            return
        if self._next == 0:  # started early but given nothing (the caller stopped): no wait
            self._proc.kill()
        self._outbox.put(None)
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for t in self._threads:
            t.join(timeout=timeout)
        self._proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()


def _emit(rec: dict) -> None:
    """Re-emit a helper's log record under this process's logging configuration."""
    record = logging.makeLogRecord(rec)
    log = logging.getLogger(record.name)
    if log.isEnabledFor(record.levelno):
        log.handle(record)


class _Collect(logging.Handler):
    """Log records of the job being drawn, as plain dicts (picklable, message formatted)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        d = dict(record.__dict__)
        d.update(msg=record.getMessage(), args=None, exc_info=None, exc_text=None, stack_info=None)
        d["processName"] = "cpc-figures"
        self.records.append(d)


def _serve(level: int) -> None:
    """The helper's loop: read a job, draw it, answer; end when the input closes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, never into the answers
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer  # after the boot line's first message (sys.path, log level)
    collect = _Collect()
    root = logging.getLogger()
    root.addHandler(collect)
    root.setLevel(level)
    from cpc_core.render import figures

    out.write(pickle.dumps((None, True, None, [], []), protocol=pickle.HIGHEST_PROTOCOL))  # ready
    out.flush()
    while True:
        try:
            job = pickle.load(inp)
        except EOFError:
            break
        jid, spec, formats, dpi = job
        collect.records = []
        with warnings.catch_warnings(record=True) as caught:
            try:
                ok, payload = True, figures.draw(spec, formats, dpi=dpi)
            except Exception as e:  # answered, re-raised in the parent
                ok, payload = False, e
        answer = (jid, ok, payload, collect.records,
                  [(str(w.message), w.category, w.filename, w.lineno) for w in caught])  # fmt: skip
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an exception or warning category that does not pickle
            err = payload if ok else RuntimeError(f"{type(payload).__name__}: {payload}")
            data = pickle.dumps((jid, ok, payload if ok else err, collect.records, []),
                                protocol=pickle.HIGHEST_PROTOCOL)  # fmt: skip
        out.write(data)
        out.flush()
    out.close()
    # All answered: end now, without tearing matplotlib and the rest down (~0.3 s the caller's
    # close() waited for at the end of every first validation).
    sys.stderr.flush()
    os._exit(0)
