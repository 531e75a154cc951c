"""NetMob23 tile grids: read a city's ``<City>.geojson`` (:func:`read_tile_grid`) or rebuild
cells from the grid facts in :mod:`cpc_core.netmob.facts` (:func:`tile_polygons`: synthetic grids,
tests)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cpc_core._lazy import geopandas as gpd
from cpc_core._lazy import pyproj, shapely
from cpc_core.errors import InputDataError
from cpc_core.geo._common import (
    _as_tile_ids,
    _check_polygons,
    _head,
    _read_vector,
    _vector_source,
    _with_crs,
)
from cpc_core.netmob.facts import CITY_DIMS, CITY_ORIGINS, GRID_CRS, TILE_SIZE_M

__all__ = [
    "TILE_GRID_VERSION",
    "read_tile_grid",
    "tile_polygons",
]

logger = logging.getLogger(__name__)


#: Bump when :func:`read_tile_grid` changes what it returns: cached copies keyed on it expire.
TILE_GRID_VERSION = 1


def read_tile_grid(path: str | Path, crs: Any = None) -> gpd.GeoDataFrame:
    """Read a NetMob23 tile grid ``<City>.geojson``.

    Parameters
    ----------
    path
        A vector file (in practice the GeoJSON FeatureCollection of the dataset) whose
        features are polygons with an integer property ``tile_id``.
    crs
        CRS of the coordinates in the file. ``None`` keeps the CRS the file states (a
        GeoJSON without a ``crs`` member is WGS84 by its specification). A given CRS wins
        over the file's, with a log message when they differ: it is how a user fixes a file
        that mislabels its coordinates.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``tile_id`` (int64) and ``geometry``, in file order, in the file's (or the
        given) CRS; nothing is reprojected.

    Raises
    ------
    ValueError
        Naming the file, when ``tile_id`` is missing, null, non-integer, negative or
        duplicated, when a geometry is missing or not a polygon, or when no CRS is known.

    Examples
    --------
    >>> tiles = read_tile_grid("/data/netmob23/Lyon.geojson")  # doctest: +SKIP
    >>> tiles.columns.tolist()  # doctest: +SKIP
    ['tile_id', 'geometry']
    """
    path, source = _vector_source(path)
    frame = _read_vector(path, source)
    if "tile_id" not in frame.columns:
        found = [c for c in frame.columns if c != frame.geometry.name]
        raise InputDataError(f"{path}: no 'tile_id' property; properties found: {found}")
    tile_ids = _as_tile_ids(frame["tile_id"], str(path))
    _check_polygons(frame.geometry, tile_ids, f"{path}: tile")
    out = gpd.GeoDataFrame({"tile_id": tile_ids}, geometry=frame.geometry.values)
    out = _with_crs(out, frame.crs, crs, str(path))
    logger.debug("%s: %d tiles, CRS %s", path, len(out), out.crs)
    return out


def tile_polygons(
    city_or_origin: str | tuple[float, float],
    tile_ids: Sequence[int] | np.ndarray,
    cols: int | None = None,
    crs: Any = GRID_CRS,
) -> gpd.GeoDataFrame:
    """Build the 100 m cells of NetMob tiles from the grid layout.

    ``tile_id = row * cols + col`` with row 0 the southern row and col 0 the western column;
    cell ``(row, col)`` spans ``x0 + 100 col .. x0 + 100 (col + 1)`` and likewise in y, in
    the grid CRS (EPSG:27572). Real tile geometry comes from the city's GeoJSON
    (:func:`read_tile_grid`); this rebuilds it for synthetic data and tests.

    Parameters
    ----------
    city_or_origin
        A NetMob city name (origin and dimensions from :mod:`cpc_core.netmob.facts`) or the
        south-west corner ``(x0, y0)`` of a grid in EPSG:27572 metres.
    tile_ids
        Tile ids to build, in the order wanted.
    cols
        Columns of the grid: taken from the city when a name is given (then it must agree),
        required with an origin.
    crs
        CRS of the result; cells are built in EPSG:27572 and reprojected if another is asked.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``tile_id`` (int64) and ``geometry``.

    Examples
    --------
    >>> tiles = tile_polygons("Lyon", [66])
    >>> tiles.total_bounds.tolist()
    [789700.0, 2064700.0, 789800.0, 2064800.0]
    """
    ids = np.asarray(tile_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"tile_ids must be a 1-d sequence of integers, got dtype {ids.dtype}")
    ids = ids.astype(np.int64)
    rows: int | None = None
    if isinstance(city_or_origin, str):
        if city_or_origin not in CITY_DIMS:
            raise ValueError(f"unknown city {city_or_origin!r}; known: {sorted(CITY_DIMS)}")
        rows, city_cols = CITY_DIMS[city_or_origin]
        if cols is not None and cols != city_cols:
            raise ValueError(f"{city_or_origin} has {city_cols} columns, not {cols}")
        cols = city_cols
        x0, y0 = CITY_ORIGINS[city_or_origin]
    else:
        if cols is None:
            raise ValueError("cols is required when an origin (x0, y0) is given")
        x0, y0 = (float(v) for v in city_or_origin)
    if cols <= 0:
        raise ValueError(f"cols must be positive, got {cols}")
    limit = rows * cols if rows is not None else None
    bad = ids[(ids < 0) | ((ids >= limit) if limit is not None else False)]
    if bad.size:
        raise ValueError(f"tile ids outside the grid (0 .. {limit}): {_head(bad)}")
    row, col = np.divmod(ids, cols)
    x = x0 + col * TILE_SIZE_M
    y = y0 + row * TILE_SIZE_M
    cells = shapely.box(x, y, x + TILE_SIZE_M, y + TILE_SIZE_M)
    out = gpd.GeoDataFrame({"tile_id": ids}, geometry=cells, crs=GRID_CRS)
    if pyproj.CRS.from_user_input(crs) != out.crs:
        out = out.to_crs(crs)
    return out

