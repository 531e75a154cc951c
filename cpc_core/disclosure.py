"""Statistical disclosure control: which areas are too small to publish (method, section 9).

An area is *small* when its population is below :data:`MIN_POPULATION` (or unknown), or when
it has fewer than :data:`MIN_TILES` tiles (an unknown tile count does not flag). Every
published per-area table carries the flag; the validation stage blanks or marks the rates of
small areas. The rule and its thresholds live here only:

- :data:`MIN_POPULATION`, :data:`MIN_TILES` -- the paper's thresholds (500 inhabitants, 3 tiles).
- :class:`Thresholds` -- the plain option object the library takes (the configuration's
  ``disclosure:`` section converts into it with ``DisclosureConfig.to_thresholds()``).
- :func:`small_area_flags` -- the flag and its reason, per area.

The module imports numpy and pandas only inside :func:`small_area_flags`: the configuration
imports it for the thresholds and loads without them. No published output carries tile
coordinates: tile-level intermediates stay under
``internal/`` (the configuration's ``disclosure.publish_tile_coordinates`` is reserved).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MIN_POPULATION", "MIN_TILES", "Thresholds", "small_area_flags"]

#: Areas with fewer inhabitants (or an unknown population) are small areas.
MIN_POPULATION = 500
#: Areas with fewer (weighted) tiles are small areas.
MIN_TILES = 3
#: Upper bounds accepted for the thresholds (a larger value is a typo, not a policy).
MAX_MIN_POPULATION = 100_000_000
MAX_MIN_TILES = 1_000_000


@dataclass(frozen=True)
class Thresholds:
    """Small-area thresholds, validated on creation.

    Parameters
    ----------
    min_population : int
        Areas below it (or of unknown population) are small; 0 .. 1e8.
    min_tiles : int
        Areas with fewer tiles are small; 1 .. 1e6.

    Raises
    ------
    ValueError
        Naming the field and what is allowed.

    Examples
    --------
    >>> import pandas as pd
    >>> Thresholds()
    Thresholds(min_population=500, min_tiles=3)
    >>> Thresholds(min_population=1000).flags(pd.Series([999, 1000]), pd.Series([3, 3]))["small_area"].tolist()
    [True, False]
    """

    min_population: int = MIN_POPULATION
    min_tiles: int = MIN_TILES

    def __post_init__(self) -> None:
        for name, low, high in (("min_population", 0, MAX_MIN_POPULATION), ("min_tiles", 1, MAX_MIN_TILES)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not low <= value <= high:
                raise ValueError(f"disclosure.{name} must be an integer in {low} .. {high:,}, got {value!r}")

    def flags(self, population: pd.Series, n_tiles: pd.Series) -> pd.DataFrame:
        """:func:`small_area_flags` with these thresholds."""
        return small_area_flags(population, n_tiles, self.min_population, self.min_tiles)


def small_area_flags(population: pd.Series, n_tiles: pd.Series, min_population: int = MIN_POPULATION,
                     min_tiles: int = MIN_TILES) -> pd.DataFrame:
    """Disclosure flags of areas: population below ``min_population`` (or unknown), or fewer tiles.

    Parameters
    ----------
    population
        Population per area (the index); NaN (unknown) counts as small.
    n_tiles
        (Weighted) tile count per area, aligned on ``population``'s index; NaN is not flagged
        (pass 0 for an area without tiles).
    min_population, min_tiles
        The thresholds (``disclosure.min_population``, ``disclosure.min_tiles``).

    Returns
    -------
    pandas.DataFrame
        ``small_area`` (bool) and ``small_area_reason`` (empty when not small), same index.

    Examples
    --------
    >>> import pandas as pd
    >>> f = small_area_flags(pd.Series([100, 900]), pd.Series([5, 1]), 500, 3)
    >>> f["small_area"].tolist(), f["small_area_reason"].tolist()
    ([True, True], ['population < 500', 'tiles < 3'])
    """
    # imported here: the configuration imports this module for the thresholds alone and must
    # load without numpy and pandas (a configuration error answers at once)
    import numpy as np
    import pandas as pd

    pop = pd.Series(population, dtype=np.float64)
    tiles = pd.Series(n_tiles, dtype=np.float64).reindex(pop.index)
    small_pop = ~(pop >= min_population)
    few_tiles = tiles < min_tiles
    reason = np.select([small_pop & few_tiles, small_pop, few_tiles],
                       [f"population < {min_population} and tiles < {min_tiles}", f"population < {min_population}",
                        f"tiles < {min_tiles}"], default="")
    return pd.DataFrame({"small_area": (small_pop | few_tiles).to_numpy(dtype=bool), "small_area_reason": reason},
                        index=pop.index)
