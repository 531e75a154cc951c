"""The analysis variables of the validation, each with the reason of every missing value.

Plain functions of the joined table (:class:`~cpc_core.validation.roles.Joined`) and the
resolved roles, used by :func:`cpc_core.validation.stage.prepare` in this order:

- :func:`role_values`, :func:`positive`, :func:`as_share` -- one role's numbers, the reason of
  each missing one, a log's domain, a rate as a share in [0, 1];
- :func:`traffic_variables` -- the services per 1000 inhabitants and their logs;
- :func:`c_and_rho` -- the correction factor and the correlation, either derived from the
  other (docs/method.md section 2.8), and which c_j were floored;
- :func:`unlagged_c`, :func:`lagged_c` -- c_j at lag 0 and at Table 7's lag (the lags);
- :func:`covariate_variables` -- density, the rate covariates, drug abuse, POI counts, tiles;
- :func:`disclosure_flags` -- the small areas (disclosure control);
- :func:`standardise_poi` -- POI counts as z-scores.

Every value that is missing gets a reason (``Variables.why``), so each table can say where
its rows went.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cpc_core.estimate.cpc import correction_factor, per_1000, small_area_flags
from cpc_core.validation.choices import POI_ROLES
from cpc_core.validation.results import Note, Thresholds
from cpc_core.validation.roles import Joined, index_by_code, numeric
from cpc_core.validation.specs import RATE_ROLES

__all__ = [
    "CFactor",
    "Variables",
    "as_share",
    "c_and_rho",
    "c_at_lag",
    "covariate_variables",
    "disclosure_flags",
    "first_reason",
    "floored_from",
    "lagged_c",
    "positive",
    "read_flags",
    "role_values",
    "standardise_poi",
    "traffic_variables",
    "unlagged_c",
]


class Variables:
    """Collects analysis variables with the reason of each missing value.

    Examples
    --------
    >>> v = Variables(pd.Index(["a", "b"]))
    >>> v.put("x", pd.Series([1.0, np.inf], index=v.index), pd.Series(["", ""], index=v.index), "x missing")
    >>> v.values["x"].tolist(), v.why["x"].tolist()
    ([1.0, nan], ['', 'x missing'])
    """

    def __init__(self, index: pd.Index):
        self.index = index
        self.values: dict[str, pd.Series] = {}
        self.why: dict[str, pd.Series] = {}

    def put(self, name: str, values: pd.Series, reasons: pd.Series, fallback: str) -> None:
        """Store ``values`` (non-finite -> NaN) and the reason of each NaN (``fallback`` if none)."""
        values = values.astype(float)
        values = values.where(np.isfinite(values))
        r = reasons.where(reasons != "", "")
        # Every NaN gets a reason, so that the accounting of each table adds up exactly.
        r = r.where(~(values.isna() & (r == "")), fallback)
        r = r.where(values.isna(), "")
        self.values[name] = values
        self.why[name] = r


def first_reason(*reasons: pd.Series) -> pd.Series:
    """Element-wise the first non-empty reason.

    >>> first_reason(pd.Series(["", "a", ""]), pd.Series(["b", "c", ""])).tolist()
    ['b', 'a', '']
    """
    out = reasons[0].copy()
    for r in reasons[1:]:
        out = out.where(out != "", r)
    return out


def role_values(joined: Joined, roles: dict[str, str | None], role: str) -> tuple[pd.Series, pd.Series]:
    """Numeric values of a role and the reason of each missing one.

    The reasons, first match wins: no row in the input the column came from, a missing
    cell, a cell that is not a number, an infinite value.

    Examples
    --------
    >>> from cpc_core.validation.roles import join_inputs
    >>> j = join_inputs(pd.DataFrame({"commune": ["a", "b", "c"], "x": ["1", "abc", None]}),
    ...                 [], "commune", "t", False, [])
    >>> v, why = role_values(j, {"x": "x"}, "x")
    >>> v.tolist(), why.tolist()
    ([1.0, nan, nan], ['', 'x not a number', 'x missing'])
    """
    frame = joined.frame
    column = roles[role]
    if column is None:
        return pd.Series(np.nan, index=frame.index), pd.Series(
            f"role {role!r} has no column", index=frame.index, dtype=object
        )
    src = joined.source_of[column]
    values = numeric(frame[column])
    reason = pd.Series("", index=frame.index, dtype=object)
    reason = reason.where(joined.matched[src], f"no row in {src}")
    reason = reason.where(~((reason == "") & frame[column].isna()), f"{column} missing")
    reason = reason.where(~((reason == "") & values.isna()), f"{column} not a number")
    infinite = np.isinf(values)
    reason = reason.where(~((reason == "") & infinite), f"{column} infinite")
    return values.where(~infinite), reason


def positive(values: pd.Series, reason: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
    """Values <= 0 become missing, "``column`` <= 0 (no log)".

    >>> v, r = positive(pd.Series([2.0, 0.0]), pd.Series(["", ""]), "tor")
    >>> v.tolist(), r.tolist()
    ([2.0, nan], ['', 'tor <= 0 (no log)'])
    """
    bad = values.notna() & (values <= 0)
    return values.where(~bad), reason.where(~bad, f"{column} <= 0 (no log)")


def as_share(values: pd.Series, reason: pd.Series, column: str, percent: bool,
             notes: list[Note]) -> tuple[pd.Series, pd.Series]:  # fmt: skip
    """A rate as a share in [0, 1]: divided by 100 when ``percent``; values outside are missing.

    A percent column whose every value (10 or more) is <= 1 gives a warning note: it probably
    holds shares.

    >>> v, r = as_share(pd.Series([50.0, 120.0]), pd.Series(["", ""]), "rate", True, [])
    >>> v.tolist(), r.tolist()
    ([0.5, nan], ['', 'rate outside 0-100 %'])
    """
    v = values
    if percent:
        n = int(v.notna().sum())
        if n >= 10 and float(v.max()) <= 1.0:
            notes.append(Note("data", f"{column}: every value is <= 1 ({n} values), yet the "
                                      "role is read as percent and divided by 100; if the "
                                      "column holds shares, remove it from "
                                      "validation.percent_roles", "warning"))  # fmt: skip
        v, unit = v / 100.0, "0-100 %"
    else:
        unit = "[0, 1] (a share; list the role in validation.percent_roles if in percent)"
    bad = v.notna() & ((v < 0) | (v > 1))
    return v.where(~bad), reason.where(~bad, f"{column} outside {unit}")


def traffic_variables(out: Variables, joined: Joined, roles: dict[str, str | None]) -> tuple[pd.Series, pd.Series]:
    """The services, their rates per 1000 inhabitants and the logs; returns (population, why).

    Stores ``tor``, ``web_adult``, ``youtube``, ``<service>_per_1000``,
    ``log_<service>_per_1000`` and ``population`` (non-positive populations missing).
    """
    pop, why_pop = positive(*role_values(joined, roles, "population"), roles["population"] or "population")
    for service in ("tor", "web_adult", "youtube"):
        v, r = role_values(joined, roles, service)
        out.put(service, v, r, f"{service} missing")
        rate = per_1000(v, pop)
        rr = first_reason(why_pop, r)
        lv, lr = positive(rate, rr, roles[service] or service)
        out.put(f"{service}_per_1000", rate, rr, f"{service} per 1000 missing")
        out.put(f"log_{service}_per_1000", np.log(lv), lr, f"log {service} per 1000 missing")
    out.put("population", pop, why_pop, "population missing")
    return pop, why_pop


def read_flags(values: pd.Series) -> pd.Series:
    """Boolean flags read from a table: bools, 0/1, or the text ``True``/``False``.

    Examples
    --------
    >>> read_flags(pd.Series([True, "False", "true", 1, None, np.nan])).tolist()
    [True, False, True, True, False, False]
    """
    if pd.api.types.is_bool_dtype(values):
        return values.astype(bool)
    text = values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v))
                      else str(v).strip().lower())  # fmt: skip
    return text.isin(("true", "1", "1.0", "yes")).astype(bool)


def floored_from(c: pd.Series, rho: pd.Series | None, c_floor: float) -> pd.Series:
    """Re-derive "c_j was floored" when the table has no ``c_floored`` column.

    The estimate floors a c_j whose raw value ``onion_share x csam_share x rho_j`` is ``<= 0``
    (:func:`cpc_core.estimate.cpc.correction_factor`), so with rho_j the flag is exactly
    ``rho_j <= 0``. A positive c_j below the floor (0 < rho_j < rho_j,0) is *not* floored.
    Without rho_j, a floored c_j can only be recognised by its value: ``c_j <= 0`` (a table
    that was not floored) or ``c_j`` equal to the floor.

    Examples
    --------
    >>> c = pd.Series([4.5e-6, 1e-5, 7e-4])
    >>> floored_from(c, pd.Series([0.001, -0.01, 0.2]), 1e-5).tolist()
    [False, True, False]
    >>> floored_from(c, None, 1e-5).tolist()
    [False, True, False]
    """
    if rho is not None:
        return rho.notna() & (rho <= 0)
    return c.notna() & ((c <= 0) | np.isclose(c, c_floor, rtol=1e-9, atol=0.0))


@dataclass(frozen=True, eq=False)
class CFactor:
    """c_j and rho_j of the commune table, the reasons of their missing values, the floor flags."""

    c: pd.Series
    why_c: pd.Series
    rho: pd.Series
    why_rho: pd.Series
    floored: pd.Series


def c_and_rho(joined: Joined, roles: dict[str, str | None], onion_share: float, csam_share: float,
              c_floor: float, notes: list[Note]) -> CFactor:  # fmt: skip
    """c_j and rho_j: either may be derived from the other (docs/method.md section 2.8).

    With a ``c`` column, the floor flags come from ``c_floored`` (the estimate's own flag) or
    are re-derived (:func:`floored_from`); with ``rho`` only, c is
    :func:`~cpc_core.estimate.cpc.correction_factor` of it. Without ``rho``, rho is
    ``c / (onion_share x csam_share)``. Each derivation gives a note.
    """
    if roles["c"] is not None:
        c, why_c = role_values(joined, roles, "c")
        if roles["c_floored"] is not None:
            # the estimate's own flag: it knows which c_j it replaced
            floored = read_flags(joined.frame[roles["c_floored"]])
        else:
            rho_given = role_values(joined, roles, "rho")[0] if roles["rho"] is not None else None
            floored = floored_from(c, rho_given, c_floor)
            notes.append(Note("table1", "no c_floored column: floored c_j re-derived as rho_j "
                                        "<= 0 (the estimate floors c_j <= 0 before flooring), or "
                                        f"without rho_j as c_j <= 0 or c_j = {c_floor:g}"))  # fmt: skip
    else:
        rho_only, why_c = role_values(joined, roles, "rho")
        c, floored = correction_factor(rho_only, onion_share=onion_share, csam_share=csam_share,
                                       floor=c_floor)  # fmt: skip
        notes.append(Note("data", f"c derived from rho: c = {onion_share} x "
                                  f"{csam_share} x rho, floored at {c_floor:g}"))  # fmt: skip
    if roles["rho"] is not None:
        rho, why_rho = role_values(joined, roles, "rho")
    else:
        rho, why_rho = c / (onion_share * csam_share), why_c
        notes.append(Note("table1", "rho derived from c as c / (onion_share x csam_share); "
                                    "floored c_j give rho_j,0, not the negative correlation"))  # fmt: skip
    return CFactor(c, why_c, rho, why_rho, floored)


def c_at_lag(
    estimates_by_lag: pd.DataFrame | None, lag: int, index: pd.Index
) -> tuple[tuple[pd.Series, pd.Series] | None, str]:
    """c_j at one lag from ``estimates_by_lag`` (values, reason of each missing), or why not.

    Examples
    --------
    >>> ebl = pd.DataFrame({"commune": ["a", "a"], "lag_h": [0, -2], "c": [1e-4, 2e-4]})
    >>> (c, why), _ = c_at_lag(ebl, -2, pd.Index(["a", "b"]))
    >>> c.tolist(), why.tolist()
    ([0.0002, nan], ['', 'no row in estimates_by_lag'])
    >>> c_at_lag(ebl, 3, pd.Index(["a"]))
    (None, 'lag 3 h is not in estimates_by_lag (lags [-2, 0])')
    """
    e = estimates_by_lag
    if e is None:
        return None, "no estimates_by_lag"
    need = {"commune", "lag_h", "c"}
    if not need <= set(e.columns):
        return None, f"estimates_by_lag lacks {sorted(need - set(e.columns))}"
    lags_col = pd.to_numeric(e["lag_h"], errors="coerce")
    at = e.loc[lags_col == lag]
    if at.empty:
        lags = sorted(lags_col.dropna().astype(int).unique().tolist())
        return None, f"lag {lag} h is not in estimates_by_lag (lags {lags})"
    at = index_by_code(at[["commune", "c"]], "commune", "estimates_by_lag")
    values = numeric(at["c"]).reindex(index)
    why = pd.Series("", index=index, dtype=object).where(
        index.isin(at.index), "no row in estimates_by_lag"
    )
    return (values, why), ""


def unlagged_c(c: pd.Series, why_c: pd.Series, table_lag_h: int,
               estimates_by_lag: pd.DataFrame | None,
               notes: list[Note]) -> tuple[pd.Series, pd.Series, int]:  # fmt: skip
    """c_j at lag 0 for the unlagged statistics, and the lag it is actually at.

    The table's c_j is at ``table_lag_h`` (the run's estimate lag); the unlagged statistics
    (Tables 2, 3, 5, 6 and Table 7's "no lag" column) need c at lag 0, taken from
    ``estimates_by_lag`` when the table is at another lag (decisions.md, "Lags of the
    validation"). When lag 0 is not available the table's c_j is used, labelled with its lag,
    and a warning note says so.

    Returns
    -------
    c0, why_c0 : pandas.Series
    cpc_lag_h : int
        0, or ``table_lag_h`` when lag 0 was not available.
    """
    if table_lag_h == 0:
        return c, why_c, 0
    at0, problem = c_at_lag(estimates_by_lag, 0, c.index)
    if at0 is not None:
        notes.append(Note("data", f"the commune table's c_j is at Tor lag {table_lag_h:+d} h "
                                  "(Table 1, public outputs); the unlagged statistics "
                                  "(Tables 2, 3, 5, 6 and Table 7's first column) use c_j "
                                  "at lag 0 from estimates_by_lag"))  # fmt: skip
        return *at0, 0
    notes.append(Note("data", f"c_j at lag 0 is not available ({problem}): the "
                              "statistics labelled unlagged use the table's c_j at Tor "
                              f"lag {table_lag_h:+d} h instead (labelled so), and Table 7 "
                              "is skipped", "warning"))  # fmt: skip
    return c, why_c, table_lag_h


def lagged_c(joined: Joined, roles: dict[str, str | None], lag_h: int,
             estimates_by_lag: pd.DataFrame | None,
             notes: list[Note]) -> tuple[pd.Series, pd.Series, int] | None:  # fmt: skip
    """c_j at Table 7's lag: the ``c_lagged`` column, else from ``estimates_by_lag``; None if neither."""
    if roles["c_lagged"] is not None:
        return *role_values(joined, roles, "c_lagged"), lag_h
    if estimates_by_lag is None:
        return None
    at, problem = c_at_lag(estimates_by_lag, lag_h, joined.frame.index)
    if at is None:
        notes.append(Note("table7", f"{problem}; no lagged cpc", "warning"))
        return None
    return *at, lag_h


def covariate_variables(out: Variables, joined: Joined, roles: dict[str, str | None],
                        percent_roles: Sequence[str], notes: list[Note]) -> None:  # fmt: skip
    """The outcome and the commune covariates: log density, rate shares, drug abuse, POI, tiles."""
    v, r = role_values(joined, roles, "outcome")
    out.put("outcome", v, r, "outcome missing")
    v, r = role_values(joined, roles, "density")
    v, r = positive(v, r, roles["density"] or "density")
    out.put("log_pop_density", np.log(v), r, "density missing")
    for role, name in RATE_ROLES.items():
        v, r = as_share(*role_values(joined, roles, role), roles[role] or role,
                        role in percent_roles, notes)  # fmt: skip
        out.put(name, v, r, f"{role} missing")
    v, r = role_values(joined, roles, "drug_abuse")
    out.put("drug_abuse", v, r, "drug abuse missing")
    for role in POI_ROLES:
        v, r = role_values(joined, roles, role)
        out.put(role, v, r, f"{role} missing")
    v, r = role_values(joined, roles, "n_tiles")
    out.put("n_tiles", v, r, "n_tiles missing")


def disclosure_flags(frame: pd.DataFrame, tiles_known: bool, thresholds: Thresholds, mode: str,
                     include_small_areas: bool, notes: list[Note]) -> dict:  # fmt: skip
    """Flag the small areas of ``frame`` in place; return the disclosure record.

    Population below ``thresholds.min_population`` (or unknown) or fewer than
    ``thresholds.min_tiles`` tiles (:func:`~cpc_core.estimate.cpc.small_area_flags`). Unknown
    tile counts flag nothing: only the population rule applies, with a warning note.

    Returns
    -------
    dict
        Thresholds, ``mode``, whether the statistics include small areas and how many areas
        each rule flags (:attr:`~cpc_core.validation.results.Prepared.disclosure`).

    Examples
    --------
    >>> f = pd.DataFrame({"population": [100.0, 900.0], "n_tiles": [5.0, 1.0]})
    >>> from types import SimpleNamespace
    >>> d = disclosure_flags(f, True, SimpleNamespace(min_population=500, min_tiles=3), "suppress",
    ...                      True, [])
    >>> f["small_area"].tolist(), d["n_below_population"], d["n_below_tiles"]
    ([True, True], 1, 1)
    """
    d = thresholds
    if tiles_known:
        tiles = frame["n_tiles"]
    else:  # unknown tile counts flag nothing (small_area_flags): only the population rule
        tiles = pd.Series(np.nan, index=frame.index)
        notes.append(Note("disclosure", f"no tile counts (role 'n_tiles'): only the population "
                                        f"threshold ({d.min_population}) is applied", "warning"))  # fmt: skip
    flags = small_area_flags(frame["population"], tiles, d.min_population, d.min_tiles)
    frame["small_area"], frame["small_area_reason"] = flags["small_area"], flags["small_area_reason"]
    return {
        "min_population": int(d.min_population),
        "min_tiles": int(d.min_tiles),
        "mode": mode,
        "statistics_include_small_areas": bool(include_small_areas),
        "n_areas": int(len(frame)),
        "n_small_areas": int(frame["small_area"].sum()),
        "n_below_population": int((~(frame["population"] >= d.min_population)).sum()),
        "n_below_tiles": int((tiles < d.min_tiles).sum()),
        "population_in_small_areas": float(frame.loc[frame["small_area"], "population"].sum()),
        "tile_counts_known": bool(tiles_known),
    }


def standardise_poi(data: pd.DataFrame, rows: pd.Index | None = None,
                    notes: list[Note] | None = None) -> pd.DataFrame:  # fmt: skip
    """POI counts as z-scores (ddof = 1), taken over ``rows`` (default: all) of ``data``.

    R's ``scale()``: over a model's own sample this is the authors' way. A constant column
    is left as it is (the model drops it as a constant regressor); with ``notes``, a warning
    says so.

    Examples
    --------
    >>> standardise_poi(pd.DataFrame({"poi_mosque": [1.0, 2.0, 3.0]}))["poi_mosque"].tolist()
    [-1.0, 0.0, 1.0]
    """
    data = data.copy()
    for role in POI_ROLES:
        if role not in data:
            continue
        x = data[role] if rows is None else data.loc[rows, role]
        sd = x.std(ddof=1)
        if x.notna().sum() > 1 and sd > 0:
            data[role] = (data[role] - x.mean()) / sd
        elif notes is not None and x.notna().any():
            notes.append(Note("ols", f"{role} is constant: not standardised", "warning"))
    return data
