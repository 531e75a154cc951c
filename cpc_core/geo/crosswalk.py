"""The tile -> area crosswalk.

:func:`crosswalk` assigns tiles to areas, either by the paper's rule (the area containing the
tile centroid) or by area-weighted shares, and returns a :class:`Crosswalk` whose
:meth:`Crosswalk.matrix` is the float32 sparse weight matrix the aggregation stage multiplies
tile traffic with. Nothing here computes a Dask graph: :func:`crosswalk` runs the kernels in
this process on plain (geo)pandas, :func:`crosswalk_lazy` maps the same kernels over Dask
partitions and leaves the compute to the caller (``jobs/``), as flox separates its kernels
from their Dask wrappers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import dask
import numpy as np
import pandas as pd
import scipy.sparse

from cpc_core._lazy import geopandas as gpd
from cpc_core._lazy import pyproj, shapely
from cpc_core.errors import InputDataError, clip
from cpc_core.geo._common import (
    METRIC_CRS,
    _as_codes,
    _as_tile_ids,
    _check_polygons,
    _head,
    _repair,
    _require_crs,
)
from cpc_core.geo.tiles import tile_polygons  # noqa: F401 - used by the doctests
from cpc_core.netmob.facts import GRID_CRS  # noqa: F401 - used by the doctests

if TYPE_CHECKING:
    from pyproj import CRS

__all__ = [
    "Crosswalk",
    "CrosswalkPlan",
    "METRIC_CRS",
    "check_tile_ids",
    "crosswalk",
    "crosswalk_lazy",
]

logger = logging.getLogger(__name__)


#: Tiles per partition of the parallel crosswalk. A partition of 20k tiles takes a few tenths
#: of a second (well above dask's ~2 ms per-task overhead) and a NetMob city gives 1-5 of them.
_TILES_PER_PARTITION = 20_000


@dataclass(frozen=True, eq=False)
class Crosswalk:
    """Tile -> area assignment with weights.

    Attributes
    ----------
    table
        DataFrame ``tile_id`` (int64), ``area`` (str), ``weight`` (float32), sorted by tile
        and area; only positive weights. ``centroid``: one row of weight 1 per matched tile.
        ``area``: one row per (tile, area) overlap, weight = overlap / tile area, so a tile's
        weights sum to the fraction of it that the areas cover.
    unmatched
        Sorted tile ids (int64) assigned to no area; their traffic is in no area total.
    tiles
        Sorted ids (int64) of every tile the crosswalk was built from (matched or not).
    method
        ``"centroid"`` or ``"area"``.
    crs
        The metric CRS the geometry was compared in.
    """

    table: pd.DataFrame = field(repr=False)
    unmatched: np.ndarray = field(repr=False)
    tiles: np.ndarray = field(repr=False)
    method: str
    crs: str

    @property
    def areas(self) -> np.ndarray:
        """Sorted codes of the areas that received at least one tile."""
        return np.unique(self.table["area"].to_numpy(dtype=object)).astype(str)

    def coverage(self) -> pd.Series:
        """Fraction of each tile assigned to some area (0 for unmatched), indexed by tile."""
        covered = self.table.groupby("tile_id")["weight"].sum()
        return covered.reindex(self.tiles, fill_value=0).rename("coverage")

    def matrix(
        self,
        tile_ids: Sequence[int] | np.ndarray | None = None,
        area_codes: Sequence[str] | np.ndarray | None = None,
    ) -> scipy.sparse.csr_matrix:
        """Sparse weight matrix ``W`` with ``area_totals = W @ tile_values``.

        Parameters
        ----------
        tile_ids
            Column order: the tile axis of the traffic data (default: :attr:`tiles`). It
            must list every tile the table assigns, and only tiles of this crosswalk.
        area_codes
            Row order (default: :attr:`areas`). Areas of the table left out of it are
            dropped from the matrix (their tiles then count nowhere); codes with no tile
            give empty rows.

        Returns
        -------
        scipy.sparse.csr_matrix
            float32, shape ``(len(area_codes), len(tile_ids))``.

        Raises
        ------
        ValueError
            Naming the assigned tiles missing from ``tile_ids``, or the ids that are not
            tiles of this crosswalk, or duplicates in either order.

        Examples
        --------
        >>> tiles = tile_polygons((0.0, 0.0), [0, 1], cols=2)
        >>> areas = gpd.GeoDataFrame({"area": ["a"]}, geometry=[shapely.box(0, 0, 100, 100)],
        ...                          crs=GRID_CRS)
        >>> cw = crosswalk(tiles, areas, crs=GRID_CRS)
        >>> cw.matrix([1, 0], ["a"]).toarray().tolist()
        [[0.0, 1.0]]
        """
        tile_index = pd.Index(self.tiles if tile_ids is None else np.asarray(tile_ids))
        area_index = pd.Index(
            self.areas if area_codes is None else np.asarray(area_codes, dtype=str)
        )
        for label, index in (("tile_ids", tile_index), ("area_codes", area_index)):
            if index.has_duplicates:
                raise ValueError(f"{label} has duplicates: {_head(index[index.duplicated()])}")
        foreign = tile_index.difference(pd.Index(self.tiles))
        if len(foreign):
            raise ValueError(
                f"{len(foreign)} tile ids are not tiles of this crosswalk: {_head(foreign)}"
            )
        cols = tile_index.get_indexer(self.table["tile_id"])
        absent = cols < 0
        if absent.any():
            lost = np.unique(self.table["tile_id"].to_numpy()[absent])
            raise ValueError(
                f"{lost.size} tiles assigned to areas are not in tile_ids: {_head(lost)}"
            )
        rows = area_index.get_indexer(self.table["area"])
        keep = rows >= 0
        if not keep.all():
            logger.debug("matrix: %d table rows belong to areas not asked for", (~keep).sum())
        weights = self.table["weight"].to_numpy(np.float32)[keep]
        return scipy.sparse.csr_matrix(
            (weights, (rows[keep], cols[keep])),
            shape=(len(area_index), len(tile_index)),
            dtype=np.float32,
        )


@dataclass(frozen=True)
class CrosswalkPlan:
    """A crosswalk not yet computed: the lazy table and what :meth:`finish` needs.

    Built by :func:`crosswalk_lazy`; the caller (a job) computes :attr:`table` on the
    scheduler of its choice and hands the result to :meth:`finish`.

    Attributes
    ----------
    table
        ``dask.dataframe`` of the kernel rows (``tile_id``, ``area``, ``weight``, and
        ``overlap`` under the centroid rule), one partition per partition of the tiles; for
        one partition, a ``dask.delayed`` of the kernel (computes to the same frame).
    tiles
        Every tile id passed in, sorted.
    method, crs
        As in :func:`crosswalk`.
    npartitions
        Partitions of the tiles.
    """

    table: Any
    tiles: np.ndarray
    method: str
    crs: str
    npartitions: int

    def finish(self, table: pd.DataFrame) -> Crosswalk:
        """The :class:`Crosswalk` from the computed :attr:`table` (concrete, pandas)."""
        return _finish_crosswalk(table, self.tiles, self.method, self.crs, self.npartitions)


def _prepare(tiles: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, method: str, crs: Any,
             npartitions: int | None) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, CRS, int]:
    """Checked inputs, the metric CRS and the number of tile partitions of a crosswalk."""
    if method not in ("centroid", "area"):
        raise ValueError(f"method must be 'centroid' or 'area', got {method!r}")
    target = pyproj.CRS.from_user_input(crs)
    if not target.is_projected:
        raise ValueError(f"crosswalk needs a projected (metric) CRS, got {crs}")
    tiles = _check_tiles(tiles)
    areas = _check_areas(areas, target)
    n = len(tiles)
    nparts = npartitions or max(1, math.ceil(n / _TILES_PER_PARTITION))
    return tiles, areas, target, max(1, min(nparts, n))


def crosswalk(
    tiles: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    method: Literal["centroid", "area"] = "centroid",
    crs: Any = METRIC_CRS,
    npartitions: int | None = None,
) -> Crosswalk:
    """Assign tiles to areas (in this process, without Dask).

    Both inputs are reprojected to the metric ``crs`` (Lambert-93 by default, as in the seed
    study). The tiles are processed in ``npartitions`` slices, one after the other, by the
    same kernels that :func:`crosswalk_lazy` maps over Dask partitions; both give the same
    table.

    Parameters
    ----------
    tiles
        ``tile_id`` and polygon geometry, with a CRS (:func:`read_tile_grid`).
    areas
        ``area`` codes and polygon geometry, with a CRS (:func:`read_areas`,
        :func:`france_communes`, :func:`square_grid` ...). Areas should not overlap.
    method
        ``"centroid"``: the paper's rule; a tile goes wholly (weight 1) to the area that
        contains its centroid (a spatial join of the centroids).
        **Tie rule**: areas are taken as closed sets, so a centroid on a boundary shared by
        several areas touches all of them; it goes to the one with the smallest code
        (string order). The same rule settles a centroid inside overlapping areas.
        ``"area"``: area-weighted shares; weight = area(tile & area) / area(tile), one row
        per overlapping area (an STRtree per partition).
    crs
        Metric CRS in which centroids and areas are computed.
    npartitions
        Slices of the tiles; default one per ~20,000 tiles.

    Returns
    -------
    Crosswalk
        Tiles assigned to no area are in ``unmatched`` and logged with a warning.

    Examples
    --------
    Tile 1's centroid (x = 150) lies on the boundary of both areas: the tie goes to "e".

    >>> tiles = tile_polygons((0.0, 0.0), [0, 1, 2], cols=3)
    >>> areas = gpd.GeoDataFrame(
    ...     {"area": ["w", "e"]},
    ...     geometry=[shapely.box(0, 0, 150, 100), shapely.box(150, 0, 300, 100)],
    ...     crs=GRID_CRS,
    ... )
    >>> crosswalk(tiles, areas, crs=GRID_CRS).table["area"].tolist()
    ['w', 'e', 'e']
    >>> crosswalk(tiles, areas, "area", crs=GRID_CRS).table["weight"].tolist()
    [1.0, 0.5, 0.5, 1.0]
    """
    tiles, areas, target, nparts = _prepare(tiles, areas, method, crs, npartitions)
    kernel = _centroid_partition if method == "centroid" else _area_partition
    bounds = np.linspace(0, len(tiles), nparts + 1).astype(int)
    parts = [kernel(tiles.iloc[a:b], areas, target) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    table = pd.concat(parts, ignore_index=True) if parts else _table_meta(method)
    return _finish_crosswalk(table, np.sort(tiles["tile_id"].to_numpy(np.int64)), method,
                             target.to_string(), nparts)


def crosswalk_lazy(
    tiles: gpd.GeoDataFrame,
    areas: gpd.GeoDataFrame,
    method: Literal["centroid", "area"] = "centroid",
    crs: Any = METRIC_CRS,
    npartitions: int | None = None,
) -> CrosswalkPlan:
    """The Dask wrapper of :func:`crosswalk`: the same kernels mapped over tile partitions.

    Nothing is computed: the caller computes ``plan.table`` (on local threads, say: shapely
    releases the GIL) and calls ``plan.finish(table)``.

    Parameters
    ----------
    tiles, areas, method, crs, npartitions
        As in :func:`crosswalk`.

    Returns
    -------
    CrosswalkPlan

    Examples
    --------
    >>> tiles = tile_polygons((0.0, 0.0), [0, 1, 2], cols=3)
    >>> areas = gpd.GeoDataFrame({"area": ["a"]}, geometry=[shapely.box(0, 0, 300, 100)],
    ...                          crs=GRID_CRS)
    >>> plan = crosswalk_lazy(tiles, areas, crs=GRID_CRS, npartitions=2)
    >>> import dask
    >>> (table,) = dask.compute(plan.table, scheduler="sync")
    >>> plan.finish(table).table["tile_id"].tolist()
    [0, 1, 2]
    """
    tiles, areas, target, nparts = _prepare(tiles, areas, method, crs, npartitions)
    # One graph key for the areas, shared by every partition's task (not one copy per task).
    shared = dask.delayed(areas[["area", "geometry"]], pure=True)
    kernel = _centroid_partition if method == "centroid" else _area_partition
    if nparts == 1:
        # one task: the kernel itself, without dask-geopandas and dask.dataframe (~0.5 s of
        # imports for a small city, beside the ingest's threads)
        graph = dask.delayed(kernel, pure=True)(tiles, shared, target)
    else:
        import dask_geopandas  # only where a crosswalk is built: a re-run from cache never pays its import

        dtiles = dask_geopandas.from_geopandas(tiles, npartitions=nparts)
        graph = dtiles.map_partitions(kernel, shared, target, meta=_table_meta(method))
    return CrosswalkPlan(graph, np.sort(tiles["tile_id"].to_numpy(np.int64)), method,
                         target.to_string(), nparts)


def _finish_crosswalk(table: pd.DataFrame, all_tiles: np.ndarray, method: str, crs: str,
                      nparts: int) -> Crosswalk:
    """Checks, warnings and the frozen :class:`Crosswalk` from the kernels' concrete rows."""
    if method == "centroid":
        overlapping = table.loc[table["overlap"], "tile_id"].to_numpy()
    else:
        # Rounding makes sums of a tile split between areas exceed 1 by ~1e-7 at most.
        sums = table.groupby("tile_id")["weight"].sum()
        overlapping = sums.index[sums > 1 + 1e-4].to_numpy()
        partial = int((sums < 1 - 1e-4).sum())
        if partial:
            logger.info("crosswalk (area): %d tiles lie partly outside every area", partial)
    if overlapping.size:
        logger.warning(
            "crosswalk (%s): %d tiles lie in more than one area (the areas overlap); %s "
            "(first ids: %s)",
            method,
            overlapping.size,
            "each went to the smallest code"
            if method == "centroid"
            else "their traffic counts in each area",
            _head(np.sort(overlapping)),
        )
    table = _finish_table(table)
    all_tiles = np.array(all_tiles, dtype=np.int64)
    unmatched = np.setdiff1d(all_tiles, table["tile_id"].to_numpy(), assume_unique=False)
    if unmatched.size:
        logger.warning(
            "crosswalk (%s): %d of %d tiles lie in no area; their traffic is in no area total "
            "(first ids: %s)",
            method,
            unmatched.size,
            all_tiles.size,
            _head(unmatched),
        )
    logger.info(
        "crosswalk (%s): %d tiles -> %d areas in %s, %d partitions",
        method,
        all_tiles.size - unmatched.size,
        table["area"].nunique(),
        crs,
        nparts,
    )
    for array in (unmatched, all_tiles):
        array.flags.writeable = False  # the crosswalk is frozen, its arrays too
    return Crosswalk(
        table=table,
        unmatched=unmatched,
        tiles=all_tiles,
        method=method,
        crs=crs,
    )


def _centroids(part: gpd.GeoDataFrame, crs: CRS) -> gpd.GeoDataFrame:
    """Centroids of one partition of tiles, taken after reprojection to the metric CRS."""
    metric = part.to_crs(crs)
    return gpd.GeoDataFrame(
        {"tile_id": metric["tile_id"].to_numpy()},
        geometry=shapely.centroid(metric.geometry.values),
        crs=crs,
        index=part.index,
    )


def _resolve_ties(joined: gpd.GeoDataFrame, area_geoms: np.ndarray) -> pd.DataFrame:
    """One area per tile: the smallest code among the areas its centroid touches.

    ``joined`` is one partition of the spatial join (centroid geometry, ``tile_id``,
    ``index_right`` = position in ``area_geoms``, ``area``); a partition holds whole tiles,
    so every candidate of a tile is in it. Also flags (``overlap``) the tiles whose centroid
    is inside more than one area, which only overlapping areas produce.
    """
    tile_ids = joined["tile_id"].to_numpy(np.int64)
    order = np.lexsort((joined["area"].to_numpy(str), tile_ids))
    sorted_ids = tile_ids[order]
    first = np.ones(sorted_ids.size, dtype=bool)
    first[1:] = sorted_ids[1:] != sorted_ids[:-1]
    overlap = np.zeros(sorted_ids.size, dtype=bool)
    if not first.all():
        # Only tiles with several candidates need the interior test.
        multi = np.isin(tile_ids, np.unique(sorted_ids[~first]))
        interior = shapely.within(
            np.asarray(joined.geometry.values)[multi],
            area_geoms[joined["index_right"].to_numpy()[multi]],
        )
        inside_count = pd.Series(interior).groupby(tile_ids[multi]).sum()
        overlap = np.isin(sorted_ids, inside_count.index[inside_count > 1])
    keep = order[first]
    return pd.DataFrame(
        {
            "tile_id": tile_ids[keep],
            "area": joined["area"].to_numpy(str)[keep],
            "weight": np.ones(keep.size, dtype=np.float32),
            "overlap": overlap[first],
        }
    )


def _area_weights(
    tile_ids: np.ndarray, tile_geoms: np.ndarray, area_codes: np.ndarray, area_geoms: np.ndarray
) -> pd.DataFrame:
    """Area-weighted shares of tiles in areas (both in the same metric CRS).

    Returns one row per (tile, area) pair with a positive overlap: ``tile_id``, ``area``,
    ``weight`` = overlap area / tile area (float32).
    """
    tree = shapely.STRtree(tile_geoms)
    # The tree holds the (many, simple) tiles and is queried with each area: each complex
    # area polygon is then prepared once for its predicate tests, the fast direction.
    a_all, t_all = tree.query(area_geoms, predicate="intersects")
    a_in, t_in = tree.query(area_geoms, predicate="contains")
    # Most tiles lie wholly inside one area (weight 1): overlay only the boundary pairs.
    key_all = a_all.astype(np.int64) * len(tile_geoms) + t_all
    key_in = a_in.astype(np.int64) * len(tile_geoms) + t_in
    edge = ~np.isin(key_all, key_in)
    a_edge, t_edge = a_all[edge], t_all[edge]
    tile_area = shapely.area(tile_geoms)
    overlap = shapely.area(shapely.intersection(tile_geoms[t_edge], area_geoms[a_edge]))
    share = np.clip(overlap / tile_area[t_edge], 0.0, 1.0)
    a_idx = np.concatenate([a_in, a_edge])
    t_idx = np.concatenate([t_in, t_edge])
    weight = np.concatenate([np.ones(a_in.size), share]).astype(np.float32)
    positive = weight > 0
    return pd.DataFrame(
        {
            "tile_id": tile_ids[t_idx[positive]].astype(np.int64),
            "area": area_codes[a_idx[positive]].astype(str),
            "weight": weight[positive],
        }
    )


def _area_partition(part: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, crs: CRS) -> pd.DataFrame:
    metric = part.to_crs(crs)
    return _area_weights(
        metric["tile_id"].to_numpy(np.int64),
        np.asarray(metric.geometry.values),
        areas["area"].to_numpy(str),
        np.asarray(areas.geometry.values),
    )


_TABLE_META = pd.DataFrame(
    {
        "tile_id": pd.Series([], dtype=np.int64),
        "area": pd.Series([], dtype=object),
        "weight": pd.Series([], dtype=np.float32),
    }
)


def _table_meta(method: str) -> pd.DataFrame:
    """Empty frame with the kernel's columns (Dask's ``meta``, and the table of no tiles)."""
    return _TABLE_META.assign(overlap=pd.Series([], dtype=bool)) if method == "centroid" else _TABLE_META


def _centroid_partition(part: gpd.GeoDataFrame, areas: gpd.GeoDataFrame, crs: CRS) -> pd.DataFrame:
    """Kernel of the centroid rule on one partition of tiles (areas already in ``crs``)."""
    points = _centroids(part, crs)
    # Closed-set test ("intersects"): "within" would drop centroids lying exactly on a
    # boundary, which then belong to no area; _resolve_ties picks one of the areas touched.
    joined = gpd.sjoin(points, areas[["area", "geometry"]], predicate="intersects")
    return _resolve_ties(joined, np.asarray(areas.geometry.values))


def _check_tiles(tiles: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    tiles = _require_crs(tiles, "tiles")
    if "tile_id" not in tiles.columns:
        raise ValueError(f"tiles have no 'tile_id' column; columns found: {list(tiles.columns)}")
    ids = _as_tile_ids(tiles["tile_id"], "tiles")
    _check_polygons(tiles.geometry, ids, "tiles: tile")
    # A fresh frame: the caller's is never modified, and partitions carry only what is used.
    return gpd.GeoDataFrame(
        {"tile_id": ids}, geometry=np.asarray(tiles.geometry.values), crs=tiles.crs
    )


def _check_areas(areas: gpd.GeoDataFrame, crs: CRS) -> gpd.GeoDataFrame:
    areas = _require_crs(areas, "areas")
    if "area" not in areas.columns:
        raise ValueError(f"areas have no 'area' column; columns found: {list(areas.columns)}")
    codes = _as_codes(areas["area"], "areas")
    _check_polygons(areas.geometry, codes, "areas: area")
    # A fresh RangeIndex: the spatial join's ``index_right`` is then a position in ``out``.
    out = gpd.GeoDataFrame(
        {"area": codes}, geometry=np.asarray(areas.geometry.values), crs=areas.crs
    ).to_crs(crs)
    # Reprojection can make a valid polygon slightly invalid, which breaks the overlay.
    out["geometry"] = _repair(out.geometry, "areas")
    return out


def _finish_table(table: pd.DataFrame) -> pd.DataFrame:
    table = table.sort_values(["tile_id", "area"], kind="stable", ignore_index=True)
    return pd.DataFrame(
        {
            "tile_id": table["tile_id"].to_numpy(np.int64),
            "area": table["area"].to_numpy(dtype=object).astype(str),
            "weight": table["weight"].to_numpy(np.float32),
        }
    )


def check_tile_ids(city: str, grid: Crosswalk, data_tiles: Any, grid_file: str, data_source: str) -> None:
    """Check that a city's traffic data and its tile grid describe the same tiles.

    Every tile of the data must be a tile of the grid, and every tile the crosswalk assigns
    to an area must be in the data (grid tiles outside every area may be absent from it).

    Raises
    ------
    cpc_core.errors.InputDataError
        Naming the city, both files and a few of the ids that differ (bad input data, exit 1).
    """
    data = pd.Index(np.asarray(data_tiles))
    only_data = data.difference(pd.Index(grid.tiles))
    assigned = pd.Index(np.unique(grid.table["tile_id"].to_numpy()))
    only_grid = assigned.difference(data)
    if len(only_data) or len(only_grid):
        parts = []
        if len(only_data):
            parts.append(f"{len(only_data)} tile ids of the data are not in the grid ({_head(only_data)})")
        if len(only_grid):
            parts.append(f"{len(only_grid)} tiles of the grid are not in the data ({_head(only_grid)})")
        raise InputDataError(
            f"{city}: the tile grid {clip(grid_file)} and the traffic data {clip(data_source)} disagree: "
            f"{'; '.join(parts)}. Use the grid file that belongs to this city's data (areas.tiles)")

