"""The error contract of every ``cpc`` command: one exception family, one exit code each.

Library code raises these (or subclasses); ``jobs.cli`` maps them to exit codes and prints one
line, never a traceback unless ``-v``/``--debug``. The message names the file, key or address
and, where there is one, the remedy.

=========  ==========================================================================
exit code  meaning
=========  ==========================================================================
0          success
1          bad input data (:class:`InputDataError`): a file, its line and the reason;
           or a damaged store (:class:`StoreDamaged`): the city, array, chunk and the
           source file it came from, and how to repair it
2          usage or configuration (:class:`UsageError`): the key and what is allowed
3          environment unavailable (:class:`EnvironmentUnavailable`): cluster, storage,
           permissions, disk full; the address or path
4          internal error: any other exception, a bug (``--debug`` shows the traceback)
130        interrupted (Ctrl-C, SIGTERM): re-run the same command to resume
=========  ==========================================================================
"""

from __future__ import annotations

__all__ = [
    "EXIT_DATA",
    "EXIT_ENVIRONMENT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CpcError",
    "EnvironmentUnavailable",
    "InputDataError",
    "StoreDamaged",
    "UsageError",
    "clip",
]

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130

#: longest echo of a user-supplied value in any message
MAX_ECHO = 200


def clip(value: object, limit: int = MAX_ECHO) -> str:
    """``repr``-free text of ``value``, cut to ``limit`` characters with a marker.

    Every value a user supplied (a config value, a file line) is echoed through this, so that
    a hostile or huge input cannot flood a terminal or a log.

    Examples
    --------
    >>> clip("x" * 300)[-30:]
    'xxxxxxxxxx... (300 characters)'
    >>> clip("short")
    'short'
    """
    text = str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


class CpcError(Exception):
    """Base of cpc's own errors; ``exit_code`` is what the command line returns."""

    exit_code = EXIT_DATA


class InputDataError(CpcError, ValueError):
    """Bad input data: names the file (and line) and the reason. Exit code 1."""

    exit_code = EXIT_DATA


class UsageError(CpcError, ValueError):
    """A usage or configuration problem: names the key or argument and what is allowed. Exit 2."""

    exit_code = EXIT_USAGE


class EnvironmentUnavailable(CpcError, RuntimeError):
    """The environment failed, not the data: a cluster or gateway that cannot be reached or
    refuses the credentials, storage that cannot be read or written, a full disk. Exit 3.

    The message names the address or path; it never carries a secret.
    """

    exit_code = EXIT_ENVIRONMENT


class StoreDamaged(CpcError, RuntimeError):
    """The cube on disk is damaged: a chunk that does not match its checksum or size, cannot
    be decoded or is gone, or a ``zarr.json`` that is missing. Exit code 1 (bad data: the data
    at rest, not the input files and not the environment; retrying does not help, repairing
    does).

    The message starts with ``store damaged:``, names the city, array, chunk and the source
    file(s) the chunk came from, and says how to repair (``cpc ingest --repair``, which
    re-ingests only the affected files).
    """

    exit_code = EXIT_DATA
