"""Test helpers shared by the test modules.

:func:`raise_if_dask_computes` follows flox's ``tests/__init__.py``: the library's lazy
functions must build a graph and never compute it themselves (``jobs/`` owns every compute
point), so tests wrap calls on dask input in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dask


class CountingScheduler:
    """A dask scheduler that counts the computes it is asked for and fails beyond a limit.

    It runs each graph with the synchronous scheduler (``dask.get``), so a compute that is
    allowed still returns the right values.
    """

    def __init__(self, max_computes: int) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk, keys, **kwargs):
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"too many dask computations: {self.total_computes} > {self.max_computes}"
            )
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[CountingScheduler]:
    """Fail if code inside the block computes a dask graph more than ``max_computes`` times.

    The counting scheduler replaces any default one (a ``distributed.Client`` included) inside
    the block only.

    Examples
    --------
    >>> import dask.array as dsa
    >>> with raise_if_dask_computes() as scheduler:
    ...     lazy = dsa.ones(4, chunks=2) + 1
    >>> scheduler.total_computes
    0
    >>> with raise_if_dask_computes(max_computes=1):
    ...     int(lazy.sum().compute())
    8
    """
    scheduler = CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler
