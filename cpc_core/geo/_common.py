"""Private helpers shared by the geo modules: reading vector files, checking ids, codes and polygons."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cpc_core import storage
from cpc_core._lazy import geopandas as gpd
from cpc_core._lazy import pyogrio, pyproj, shapely
from cpc_core.errors import InputDataError, clip

logger = logging.getLogger(__name__)


#: Lambert-93, the metric CRS the seed study reprojected tiles and communes to.
METRIC_CRS = "EPSG:2154"


_POLYGONAL = ("Polygon", "MultiPolygon")


_PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")


def _vector_source(path: str | Path) -> tuple[str, Any]:
    """``(label, source)`` of a vector file: a local path as is (``file://`` removed), an
    object-storage URL as its bytes, read through fsspec (:mod:`cpc_core.storage`) so that it
    uses the run's credentials and endpoint rather than GDAL's own network drivers.

    Raises
    ------
    FileNotFoundError
        Naming the path, when there is no such file or object.
    """
    if not storage.is_remote(path):
        local = Path(storage.local_path(path))
        if not local.exists():
            raise FileNotFoundError(f"{local}: no such file")
        return str(local), local
    label = str(path)
    try:
        return label, storage.read_bytes(label)
    except FileNotFoundError:
        raise FileNotFoundError(f"{label}: no such object") from None


def _read_vector(label: str, source: Any, layer: str | int | None = None, parquet: bool = False,
                 ) -> gpd.GeoDataFrame:  # fmt: skip
    """Read a vector file (or its bytes); a file GDAL/Arrow cannot read is bad input data,
    named, not a library traceback."""
    import io

    data = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        if parquet:
            return gpd.read_parquet(data)
        return gpd.read_file(data, layer=layer, engine="pyogrio")
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, pyogrio.errors.FieldError,
            pyogrio.errors.GeometryError, OSError, ValueError) as e:
        if isinstance(e, FileNotFoundError | PermissionError | InputDataError):
            raise
        reason = clip(str(e).replace(str(source) if not isinstance(source, bytes) else label, "").strip(" :"))
        raise InputDataError(f"{label}: cannot be read as a vector file (truncated or corrupt?): "
                             f"{reason}") from None


def _head(values: Any, n: int = 10) -> str:
    """The first ``n`` values, for error messages, with a count of the rest."""
    values = list(np.asarray(values).tolist())
    more = f" ... (+{len(values) - n} more)" if len(values) > n else ""
    return ", ".join(map(str, values[:n])) + more


def _as_tile_ids(values: pd.Series, source: str) -> np.ndarray:
    """Validate tile ids: non-null, integral, non-negative, unique."""
    if values.isna().any():
        raise InputDataError(f"{source}: {int(values.isna().sum())} features have no tile_id")
    if pd.api.types.is_integer_dtype(values.dtype):
        ids = values.to_numpy(np.int64)
    elif pd.api.types.is_float_dtype(values.dtype):
        # Some writers store integers as doubles: accept them when they are whole.
        fractional = np.mod(values.to_numpy(), 1) != 0
        if fractional.any():
            raise InputDataError(
                f"{source}: tile_id must be integers; found {_head(values[fractional], 5)}"
            )
        ids = values.to_numpy().astype(np.int64)
    else:
        # Strings (GDAL turns a column of mixed numbers and text into text) or objects.
        raise InputDataError(
            f"{source}: tile_id must be integers; found {values.dtype} values such as "
            f"{_head(values.head(5).map(repr))}"
        )
    if (ids < 0).any():
        raise InputDataError(f"{source}: negative tile_id: {_head(ids[ids < 0])}")
    dup = pd.Index(ids).duplicated()
    if dup.any():
        raise InputDataError(f"{source}: duplicate tile_id: {_head(np.unique(ids[dup]))}")
    return ids


def _as_codes(values: pd.Series, source: str) -> np.ndarray:
    """Area codes as strings; integral floats (codes read as numbers) lose their ``.0``."""
    if values.isna().any():
        raise InputDataError(f"{source}: {int(values.isna().sum())} areas have no code")
    if pd.api.types.is_float_dtype(values.dtype) and np.all(np.mod(values.to_numpy(), 1) == 0):
        values = values.astype(np.int64)
    codes = values.astype(str).to_numpy(dtype=object).astype(str)
    dup = pd.Index(codes).duplicated()
    if dup.any():
        raise InputDataError(f"{source}: duplicate area codes: {_head(np.unique(codes[dup]))}")
    return codes


def _check_polygons(geoms: gpd.GeoSeries, ids: np.ndarray, source: str) -> None:
    """Raise naming the features whose geometry is missing, empty or not polygonal."""
    kinds = geoms.geom_type.to_numpy()
    missing = geoms.isna().to_numpy() | geoms.is_empty.to_numpy()
    wrong = ~missing & ~np.isin(kinds, _POLYGONAL)
    if missing.any():
        raise InputDataError(f"{source}s without geometry: {_head(ids[missing])}")
    if wrong.any():
        found = sorted(set(kinds[wrong]))
        raise InputDataError(f"{source}s with non-polygon geometry ({found}): {_head(ids[wrong])}")


def _repair(geoms: gpd.GeoSeries, source: str) -> gpd.GeoSeries:
    """Make invalid polygons valid (keeping polygonal parts), with a warning."""
    invalid = ~geoms.is_valid.to_numpy()
    if not invalid.any():
        return geoms
    logger.warning("%s: %d invalid polygons repaired with make_valid", source, invalid.sum())
    fixed = np.asarray(geoms.values).copy()
    fixed[invalid] = shapely.make_valid(fixed[invalid], method="structure", keep_collapsed=False)
    return gpd.GeoSeries(fixed, index=geoms.index, crs=geoms.crs)


def _with_crs(frame: gpd.GeoDataFrame, stated: Any, given: Any, source: str) -> gpd.GeoDataFrame:
    """Attach the CRS: the given one wins over the file's; one of them must exist."""
    if given is not None:
        given_crs = pyproj.CRS.from_user_input(given)
        if stated is not None and pyproj.CRS.from_user_input(stated) != given_crs:
            logger.info(
                "%s: file states %s, using the given %s",
                source,
                pyproj.CRS.from_user_input(stated).to_string(),
                given_crs.to_string(),
            )
        return frame.set_crs(given_crs, allow_override=True)
    if stated is None:
        raise InputDataError(f"{source}: the file states no CRS; pass crs=")
    return frame.set_crs(stated, allow_override=True)


def _require_crs(frame: gpd.GeoDataFrame, label: str) -> gpd.GeoDataFrame:
    if not isinstance(frame, gpd.GeoDataFrame):
        raise TypeError(f"{label} must be a geopandas.GeoDataFrame, got {type(frame).__name__}")
    if frame.crs is None:
        raise ValueError(f"{label} have no CRS; set one (GeoDataFrame.set_crs) first")
    return frame

