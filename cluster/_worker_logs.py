"""One-line log records in the local worker processes cpc starts.

A local cluster's worker processes write their log records to the terminal the command runs
in. distributed logs some races of a cluster's shutdown with a traceback: when the scheduler
closes while a worker's heartbeat is in flight, ``distributed.worker`` logs "Failed to
communicate with scheduler during heartbeat." with a dozen lines of tornado's traceback after a
command that has already said, in one line, why it stopped. A command of cpc never shows a
traceback (``--debug`` aside), so each worker process gets :class:`OneLineRecords` on its log
handlers: a record's exception becomes one line ("... (StreamClosedError: Stream is closed)"),
its level and message stay. With ``--debug`` (the root logger at DEBUG when the cluster starts)
the tracebacks are left in.

Gateway and remote workers log where their cluster keeps logs, not to this terminal: untouched.
"""

from __future__ import annotations

import logging
from typing import Any

#: The name the plugin is registered under (one per cluster).
PLUGIN_NAME = "cpc-one-line-worker-logs"


class OneLineRecords(logging.Filter):
    """A handler filter: the record's exception, if any, folded into its message (one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            text = str(exc).strip().splitlines()
            record.msg = f"{record.getMessage()} ({type(exc).__name__}{': ' + text[0] if text else ''})"
            record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


def _install() -> None:
    """Add :class:`OneLineRecords` to every handler of the root and ``distributed`` loggers
    (once each)."""
    for log in (logging.getLogger(), logging.getLogger("distributed")):
        for handler in log.handlers:
            if not any(isinstance(f, OneLineRecords) for f in handler.filters):
                handler.addFilter(OneLineRecords())


def plugin() -> Any:
    """The worker plugin that installs :class:`OneLineRecords` in each worker process, present
    and future (a restarted worker gets it too)."""
    from distributed import WorkerPlugin

    class OneLineWorkerLogs(WorkerPlugin):
        name = PLUGIN_NAME

        def setup(self, worker) -> None:
            _install()

    return OneLineWorkerLogs()


def install_on_local_workers(client: Any) -> None:
    """Register the plugin on ``client``'s local worker processes, unless this process logs at
    DEBUG (``--debug``: tracebacks wanted)."""
    if logging.getLogger().getEffectiveLevel() <= logging.DEBUG:
        return
    client.register_plugin(plugin(), name=PLUGIN_NAME)
