"""Grouping of small work items into Dask tasks of a useful size (ingest and synth)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["MIN_TASK_VALUES", "batched"]

#: Least values per Dask task of the ingest and the synth: smaller files are grouped, so that a
#: task's fixed cost does not dominate small cities (``docs/benchmarks-history.md``, problem
#: 22). A NetMob file of a real city holds 1.4-7.8 M values: one file per task.
MIN_TASK_VALUES = 1_000_000


def batched(items: Iterable[T], weight: Callable[[T], int], min_total: int) -> list[list[T]]:
    """Consecutive ``items`` grouped so that each group weighs at least ``min_total``.

    Order is kept; the last group may weigh less. An item at least ``min_total`` heavy is a
    group of its own when it starts one.

    Examples
    --------
    >>> batched([5, 1, 1, 3, 9, 1], weight=int, min_total=4)
    [[5], [1, 1, 3], [9], [1]]
    """
    out: list[list[T]] = []
    cur: list[T] = []
    acc = 0
    for item in items:
        cur.append(item)
        acc += weight(item)
        if acc >= min_total:
            out.append(cur)
            cur, acc = [], 0
    if cur:
        out.append(cur)
    return out
