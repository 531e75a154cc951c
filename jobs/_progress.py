"""The jobs' progress bars: one look and one rule for every stage.

Separate from :mod:`jobs._compute` so that a stage without a cluster (``cpc validate``) gets
its bar without importing distributed.
"""

from __future__ import annotations

import os
import sys


def progress(total: int, desc: str, unit: str = "file"):
    """A progress bar on stderr (off when stderr is not a terminal, or TQDM_DISABLE is set)."""
    from tqdm.auto import tqdm

    disable = True if os.environ.get("TQDM_DISABLE") else None
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=sys.stderr, dynamic_ncols=True)
