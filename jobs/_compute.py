"""The jobs' compute points: run tasks on a Dask client with a progress bar.

Everything that executes work lives in ``jobs/``; the library only builds it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from jobs._progress import progress

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["map_with_progress", "progress"]

logger = logging.getLogger(__name__)


def map_with_progress(
    client: Client,
    func: Callable,
    items: Sequence[Any],
    desc: str,
    *args: Any,
    on_result: Callable[[Any], None] | None = None,
    unit: str = "file",
    counts: Sequence[int] | None = None,
) -> list[Any]:
    """Run ``func(item, *args)`` for every item on the cluster; results in completion order.

    The first task error cancels what is still pending and is re-raised, so a failing run
    stops promptly and names the problem. ``counts``: how many ``unit`` each item stands for
    (an item that is a batch of files), for the progress bar; one each by default.
    """
    if not items:
        return []
    # imported here: a command with nothing to run never imports distributed (issue #14)
    from distributed import as_completed

    from cluster import require_workers

    # the workers there now are checked (cpc version) before any task can run on them; then,
    # after submitting: an adaptive cluster (a gateway's default, from 0 workers) adds workers
    # for pending work only, so the bounded wait for a first one comes after the submission
    require_workers(client, desc, wait=False)
    futures = client.map(func, items, *[[a] * len(items) for a in args], pure=False)
    require_workers(client, desc)
    weight = dict(zip((f.key for f in futures), counts if counts is not None else [1] * len(items), strict=True))
    results = []
    with progress(sum(weight.values()), desc, unit) as bar:
        ac = as_completed(futures, with_results=False)
        for fut in ac:
            try:
                res = fut.result()
            except BaseException:
                client.cancel(futures)
                raise
            if on_result is not None:
                on_result(res)
            results.append(res)
            bar.update(weight[fut.key])
    return results
