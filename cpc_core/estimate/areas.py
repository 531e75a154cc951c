"""The per-area tables of a run: ``communes.csv``, ``rho_by_lag.csv``, ``estimates_by_lag.csv``.

One row per area (a commune, a department or a square cell), built from the window totals,
the lagged correlations and the area facts, with the disclosure flag of every per-area table.
Also the tile-level cpc (internal: it names tiles) and each area's city.

The library says ``area`` everywhere (column ``area`` in these frames, as in :mod:`cpc_core.geo`);
the published files keep their historical column name ``commune`` for every kind of area, so
that outputs stay byte-identical: :func:`published` renames at the file edge, in ``jobs/``.

Everything here is pandas / in-memory xarray, after the Dask stages: the job computes the
inputs (its compute points) and hands them over.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd
import xarray as xr

from cpc_core.estimate import correlation
from cpc_core.estimate import cpc as estimate

__all__ = [
    "AreaTables",
    "area_city",
    "area_tables",
    "flag_small",
    "published",
    "tile_cpc",
    "with_intervals",
]

logger = logging.getLogger(__name__)

#: The area column of the library's per-area frames.
AREA_COLUMN = "area"
#: The area column of the published per-area files (kept for byte-identical outputs).
PUBLISHED_AREA_COLUMN = "commune"


@dataclass(frozen=True)
class AreaTables:
    """The per-area results of one run (see :func:`area_tables`).

    Attributes
    ----------
    communes
        One row per area: the columns of ``communes.csv`` (without uncertainty intervals;
        ``area`` for the file's ``commune``, see :func:`published`).
    rho_by_lag, estimates_by_lag
        One row per area and lag: ``rho_by_lag.csv`` and ``estimates_by_lag.csv``.
    tor_total, population
        (area) window Tor total and population, aligned with the correlation's areas.
    small
        The disclosure flag per area code (index), the flag of every per-area table.
    """

    communes: pd.DataFrame
    rho_by_lag: pd.DataFrame
    estimates_by_lag: pd.DataFrame
    tor_total: xr.DataArray
    population: xr.DataArray
    small: pd.Series


def area_city(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per area: the city contributing most of its tiles and its (weighted) tile count.

    Parameters
    ----------
    tables
        City -> crosswalk table (``tile_id``, ``area``, ``weight``: ``Crosswalk.table``).

    Returns
    -------
    pandas.DataFrame
        Indexed by area: ``city`` and ``n_tiles`` (integers when every weight sum is whole,
        as under the centroid rule).

    Examples
    --------
    >>> t = pd.DataFrame({"tile_id": [1, 2, 3], "area": ["a", "a", "b"], "weight": [1.0, 1.0, 1.0]})
    >>> area_city({"Lyon": t, "Nice": t.iloc[[2]]}).to_dict("index")
    {'a': {'city': 'Lyon', 'n_tiles': 2}, 'b': {'city': 'Lyon', 'n_tiles': 2}}
    """
    rows = [table.assign(city=c) for c, table in tables.items()]
    t = pd.concat(rows, ignore_index=True)
    per = t.groupby(["area", "city"])["weight"].sum().reset_index()
    best = per.sort_values(["area", "weight"], ascending=[True, False]).drop_duplicates("area")
    n = per.groupby("area")["weight"].sum()
    # whole tiles under the centroid rule are integers in the outputs; area weights stay fractional
    return pd.DataFrame({"city": best.set_index("area")["city"], "n_tiles": estimate.integer_if_whole(n)})


def flag_small(frame: pd.DataFrame, small: pd.Series, key: str = AREA_COLUMN) -> pd.DataFrame:
    """``frame`` with its ``small_area`` column from ``small`` (areas not in it count as small)."""
    frame["small_area"] = frame[key].map(small).fillna(True).astype(bool)
    return frame


def area_tables(
    totals: pd.DataFrame,
    cities: pd.DataFrame,
    facts: pd.DataFrame,
    corr: xr.Dataset,
    *,
    lag_h: int,
    onion_share: float = estimate.ONION_SHARE,
    csam_share: float = estimate.CSAM_SHARE,
    floor: float = estimate.C_FLOOR,
    min_population: int,
    min_tiles: int,
) -> AreaTables:
    """The per-area tables from window totals, area facts and the lagged correlations.

    Parameters
    ----------
    totals
        Window totals per area (index: area code; one column per service variable, e.g.
        ``tor``, ``web_adult``, ``youtube``), e.g. ``rollup.window_totals(...).to_pandas().T``.
    cities
        Per area: ``city`` and ``n_tiles`` (:func:`area_city`), indexed by area code.
    facts
        Per area: ``name`` and ``population`` (the area file), indexed by area code. Areas
        without totals are left out; areas with totals but no facts get NaN.
    corr
        In-memory :func:`cpc_core.estimate.correlation.lagged_correlation` result (``rho``,
        ``n_hours``, ``reason`` by area and lag).
    lag_h
        The lag of ``communes.csv``.
    onion_share, csam_share, floor
        The method's constants (:func:`cpc_core.estimate.cpc.estimate`).
    min_population, min_tiles
        Disclosure thresholds (:func:`cpc_core.estimate.cpc.small_area_flags`).

    Returns
    -------
    AreaTables
    """
    table = totals.join(cities).join(facts[["name", "population"]], how="left")
    # cpc.estimate takes and returns the published column name: the only crossing of the two
    table.index.name = PUBLISHED_AREA_COLUMN
    rho_l = corr["rho"].sel(lag=lag_h).to_pandas()
    communes = estimate.estimate(table.reset_index(), rho_l, onion_share=onion_share, csam_share=csam_share,
                                 floor=floor).rename(columns={PUBLISHED_AREA_COLUMN: AREA_COLUMN})
    table.index.name = AREA_COLUMN
    communes = communes.merge(table[["name", "n_tiles"]].reset_index(), on=AREA_COLUMN, how="left")
    communes["n_hours"] = corr["n_hours"].sel(lag=lag_h).to_pandas().reindex(communes[AREA_COLUMN]).to_numpy()
    communes["rho_reason"] = [correlation.CorrelationStatus(int(r)).name for r in
                              corr["reason"].sel(lag=lag_h).to_pandas().reindex(communes[AREA_COLUMN])]
    flags = estimate.small_area_flags(communes["population"], communes["n_tiles"], min_population, min_tiles)
    communes["small_area"], communes["small_area_reason"] = flags["small_area"], flags["small_area_reason"]
    small = communes.set_index(AREA_COLUMN)["small_area"]
    rbl = corr.to_dataframe().reset_index().rename(columns={"lag": "lag_h"})
    rbl = flag_small(rbl, small)
    rbl["reason"] = [correlation.CorrelationStatus(int(r)).name for r in rbl["reason"]]
    pop = xr.DataArray(table["population"].reindex(corr["area"].values).to_numpy(dtype=float), dims="area",
                       coords={"area": corr["area"]})
    tor_total = xr.DataArray(table["tor"].reindex(corr["area"].values).to_numpy(dtype=float), dims="area",
                             coords={"area": corr["area"]})
    by_lag = estimate.estimate_by_lag(tor_total, corr["rho"], pop, onion_share=onion_share, csam_share=csam_share,
                                      floor=floor)
    by_lag_df = by_lag.to_dataframe().reset_index().rename(columns={"lag": "lag_h"})
    by_lag_df = flag_small(by_lag_df, small)
    return AreaTables(communes, rbl, by_lag_df, tor_total, pop, small)


def published(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` as written to the published files: column ``area`` named ``commune``.

    Examples
    --------
    >>> published(pd.DataFrame({"area": ["69123"], "c": [0.1]})).columns.tolist()
    ['commune', 'c']
    """
    return frame.rename(columns={AREA_COLUMN: PUBLISHED_AREA_COLUMN})


def with_intervals(communes: pd.DataFrame, intervals: pd.DataFrame, lag_h: int,
                   columns: Sequence[str]) -> pd.DataFrame:
    """``communes`` with the interval ``columns`` of ``intervals`` at ``lag_h``, by area."""
    at = intervals[intervals["lag_h"] == lag_h].set_index(AREA_COLUMN)
    for col in columns:
        communes[col] = at[col].reindex(communes[AREA_COLUMN]).to_numpy()
    return communes


def tile_cpc(tables: Mapping[str, pd.DataFrame], c: pd.Series, tile_totals: xr.Dataset,
             services: Sequence[str]) -> xr.Dataset:
    """Tile-level c and cpc: each tile gets the c of its areas, weighted by its crosswalk weights.

    Parameters
    ----------
    tables
        City -> crosswalk table (``tile_id``, ``area``, ``weight``).
    c
        The correction factor per area code.
    tile_totals
        (tile_pos) ``<service>_total`` per service, ``tile_id`` and ``city`` (the rollup's tile
        totals).
    services
        The service variables (``tor``, ``web_adult``, ...); ``tor`` must be one.

    Returns
    -------
    xarray.Dataset
        The totals, ``c``, ``cpc`` = c x Tor total, ``tile_id`` and ``city``. Internal: it
        names tiles (disclosure control), and says so in its ``warning`` attribute.
    """
    tile_area = pd.concat([t.assign(city=city) for city, t in tables.items()], ignore_index=True)
    tile_area["c"] = tile_area["area"].map(c).to_numpy() * tile_area["weight"].to_numpy()
    tc = tile_area.groupby(["city", "tile_id"])["c"].sum()
    idx = pd.MultiIndex.from_arrays([tile_totals["city"].values, tile_totals["tile_id"].values])
    tile_c = tc.reindex(idx).to_numpy()
    return xr.Dataset({**{f"{k}_total": tile_totals[f"{k}_total"] for k in services}, "c": ("tile_pos", tile_c),
                       "cpc": ("tile_pos", tile_c * tile_totals["tor_total"].values),
                       "tile_id": tile_totals["tile_id"], "city": tile_totals["city"]},
                      attrs={"warning": "tile-level results: internal, never publish (disclosure control)"})

