"""The validation stage: a commune table in, the paper's Tables 1-3 and 5-7 out.

This module only wires the tested statistics of :mod:`cpc_core.validation.statistics` (Spearman,
dependent-correlation tests, robust OLS) and :mod:`cpc_core.validation.search_interest` (PCA of the
Google Trends terms) to a commune table whose columns are named by *roles*
(:class:`~cpc_core.config.validation_options.ColumnsConfig`). It is pure: frames in, frames and
dataclasses out; reading files and writing outputs is ``jobs/validate.py``'s job.

Three steps, each a public function:

* :func:`prepare` joins the covariate files by commune code, resolves the roles, derives the
  analysis variables (docs/method.md section 6.2: log traffic per 1000, log cpc per 1000, log
  density, vote shares / 100, standardised POI counts, PC1/PC3 mapped region -> department
  -> commune, the lagged cpc of Table 7; the unlagged cpc is at lag 0 whatever lag the table
  was estimated at) and flags small areas (disclosure control). For every
  missing value it records *why* it is missing (no row in a joined file, a missing cell, a
  non-positive value under a log), so each table can say where its rows went.
* :func:`compute` runs Table 1, Table 2 (Spearman), the dependent-correlation tests and the
  regressions of Tables 3, 5, 6 and 7. A table whose variables are unavailable is skipped
  with a note rather than failing the stage.
* :func:`public_communes` is the per-commune table fit for publication: rates of small areas
  blanked (or flagged), nothing below the commune level.

Regression tables are data, not code paths (:data:`TABLES`): each lists its models as
(dependent variable, regressors added to the common controls, row filters).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd

from cpc_core.config.validation_options import (
    POI_ROLES,
    REQUIRED_ROLES,
    DisclosureThresholds,
    ValidationConfig,
)
from cpc_core.validation.covariates import lost_leading_zero
from cpc_core.errors import InputDataError, UsageError, clip
from cpc_core.estimate.cpc import correction_factor, integer_if_whole, small_area_flags
from cpc_core.validation.search_interest import (
    SearchPCA,
    regions_to_departments,
    score_rule_flips,
    search_interest_pca,
    select_terms,
)
from cpc_core.validation.statistics import (
    SPEARMAN_EXACT_MAX_N,
    STANDARD_METHODS,
    OLSResult,
    dependent_tests,
    fit_ols,
    spearman_intervals,
    spearman_table,
    summary_table1,
)

__all__ = [
    "COMPUTE_STEPS",
    "CONTROLS",
    "LABELS",
    "METHOD_LABELS",
    "TABLES",
    "CovariateInput",
    "ModelFit",
    "ModelSpec",
    "Note",
    "Prepared",
    "RoleError",
    "TableResult",
    "TableSpec",
    "Thresholds",
    "ValidationResult",
    "compute",
    "ols_frame",
    "prepare",
    "public_communes",
    "to_json",
    "top_communes",
    "variable_label",
]

logger = logging.getLogger(__name__)


class Thresholds(Protocol):
    """What the stage reads of a disclosure section (the run's ``DisclosureConfig`` fits)."""

    min_population: int
    min_tiles: int


class RoleError(InputDataError):
    """A required role has no column: names the role, the column looked for and those found.

    Bad input data (exit code 1): the table lacks a column the method needs.
    """

    def __init__(self, message: str, role: str | None = None):
        super().__init__(message)
        self.role = role


# --------------------------------------------------------------------------------------------
# Variables, labels and the tables as data
# --------------------------------------------------------------------------------------------

#: Traffic regressors (log per 1000 inhabitants).
TRAFFIC = ("log_youtube_per_1000", "log_web_adult_per_1000", "log_tor_per_1000")
#: Commune covariates, in the paper's row order (docs/method.md section 6).
COVARIATES = (
    "log_pop_density",
    "share_singles",
    "poverty_rate",
    "unemployment_rate",
    "turnout_2017",
    "share_le_pen",
    "share_macron",
    *POI_ROLES,
)
#: The controls common to every regression; the search-interest PCs are appended at run
#: time (their names come from the configuration, PC1 and PC3 by default).
CONTROLS = (*TRAFFIC, *COVARIATES)

#: Display labels (the paper's), by analysis variable.
LABELS: dict[str, str] = {
    "log_youtube_per_1000": "log_YouTube_per_1000",
    "log_web_adult_per_1000": "log_Web_Adult_per_1000",
    "log_tor_per_1000": "log_Tor_per_1000",
    "log_cpc_per_1000": "log_cpc_per_1000",
    "log_cpc_per_1000_lag": "log_cpc_per_1000_lagged",
    "log_pop_density": "log_pop_density",
    "share_singles": "Share_of_singles",
    "drug_abuse": "Drug_abuse_rate",
    "poverty_rate": "Poverty_rate",
    # The paper labels it "Employment_rate"; the variable is the unemployment rate.
    "unemployment_rate": "Unemployment_rate",
    "turnout_2017": "Electoral_turnout_2017",
    "share_le_pen": "Share_Le_Pen",
    "share_macron": "Share_Macron",
    "poi_adult_entertainment": "POI_adult_entertainment",
    "poi_amateur_sports_team": "POI_sports_teams",
    "poi_church_cathedral": "POI_church",
    "poi_mosque": "POI_mosque",
    "poi_religious_organization": "POI_religious_org",
    "poi_school": "POI_school",
    "const": "Constant",
}

#: Human names of the dependent-correlation methods for tables and the report.
METHOD_LABELS: dict[str, str] = {
    "williams": "Williams (1959) t",
    "steiger": "Steiger (1980) z",
    "hittner": "Hittner, May & Silver (2003) z",
    "meng": "Meng, Rosenthal & Rubin (1992) z",
    "dunn_clark": "Dunn & Clark (1969) z",
    "hotelling": "Hotelling (1940) t",
    "zou": "Zou (2007) interval",
    "koebe2024": "koebe2024: the authors' replication formula (non-standard)",
}

# Which role (or input) each analysis variable comes from, to explain a skipped table.
_SOURCES: dict[str, str] = {
    "log_cpc_per_1000": "roles 'c' or 'rho', 'tor', 'population'",
    "log_tor_per_1000": "roles 'tor', 'population'",
    "log_web_adult_per_1000": "roles 'web_adult', 'population'",
    "log_youtube_per_1000": "roles 'youtube', 'population'",
    "log_pop_density": "role 'density'",
    "share_le_pen": "role 'le_pen'",
    "share_macron": "role 'macron'",
    "drug_abuse": "role 'drug_abuse'",
    "outcome": "role 'outcome'",
    "log_cpc_per_1000_lag": "the lagged c (estimates_by_lag.csv or role 'c_lagged')",
}

#: The rate covariates (docs/method.md section 6.2): role -> analysis variable. They enter the
#: regressions as shares in [0, 1], as the paper's coefficients imply (decisions.md, "Units").
RATE_ROLES: dict[str, str] = {
    "share_singles": "share_singles",
    "poverty_rate": "poverty_rate",
    "unemployment_rate": "unemployment_rate",
    "turnout_2017": "turnout_2017",
    "le_pen": "share_le_pen",
    "macron": "share_macron",
}

# Optional roles whose absence is normal (c or rho suffices; the others have fallbacks).
_QUIET_ROLES = ("c", "rho", "c_lagged", "c_floored")

# Filters a model can apply to its rows: name -> (reason text, predicate on the frame).
_FILTERS = {
    "nonzero_outcome": "outcome is zero (dropped in this table)",
}


@dataclass(frozen=True)
class ModelSpec:
    """One regression: ``y`` on the controls plus ``extra`` (in this order).

    Attributes
    ----------
    name : str
        Column label in the table.
    y : str
        Dependent analysis variable (``"outcome"`` is the configured outcome).
    extra : tuple of str
        Regressors added after the controls.
    """

    name: str
    y: str
    extra: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    """A regression table: its models, row filters and whether they share one sample.

    Attributes
    ----------
    key, title : str
    models : tuple of ModelSpec
    filters : tuple of str
        Keys of row filters (``"nonzero_outcome"``).
    common_sample : bool
        Fit every model on the rows complete for all of them (the paper's Tables 5 and 7
        report the same N in both columns).
    """

    key: str
    title: str
    models: tuple[ModelSpec, ...]
    filters: tuple[str, ...] = ()
    common_sample: bool = False


_TO_CPC = ModelSpec("log_cpc", "log_cpc_per_1000", ("outcome",))
_TO_OUTCOME = ModelSpec("Sexual_violence", "outcome", ("log_cpc_per_1000",))

#: The regression tables of the paper (Tables 3, 5, 6, 7).
TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "table3",
        "Table 3: log cpc per 1000 and the outcome, each on the other and the controls",
        (_TO_CPC, _TO_OUTCOME),
    ),
    TableSpec(
        "table5",
        "Table 5: log cpc per 1000 without and with the drug-abuse rate",
        (
            ModelSpec("without drug abuse", "log_cpc_per_1000", ("outcome",)),
            ModelSpec("with drug abuse", "log_cpc_per_1000", ("drug_abuse", "outcome")),
        ),
        common_sample=True,
    ),  # fmt: skip
    TableSpec(
        "table6",
        "Table 6: as Table 3 without the communes with zero reported cases",
        (_TO_CPC, _TO_OUTCOME),
        filters=("nonzero_outcome",),
    ),
    TableSpec(
        "table7",
        "Table 7: log cpc per 1000 without and with the Tor lag",
        (
            ModelSpec("no lag", "log_cpc_per_1000", ("outcome",)),
            ModelSpec("lagged", "log_cpc_per_1000_lag", ("outcome",)),
        ),
        common_sample=True,
    ),  # fmt: skip
)
#: Steps :func:`compute` reports to its ``on_step`` callback: Spearman, the dependent tests,
#: one per regression table.
COMPUTE_STEPS = 2 + len(TABLES)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Note:
    """Something the reader of the outputs must know (a skipped table, lost rows...)."""

    scope: str
    text: str
    level: str = "info"

    def as_dict(self) -> dict:
        """Plain dict for JSON.

        Examples
        --------
        >>> Note("table5", "skipped").as_dict()
        {'scope': 'table5', 'text': 'skipped', 'level': 'info'}
        """
        return {"scope": self.scope, "text": self.text, "level": self.level}


@dataclass(frozen=True)
class CovariateInput:
    """A covariate table to join on the commune code.

    Attributes
    ----------
    name : str
        How notes refer to it (usually the file name).
    frame : pandas.DataFrame
    commune : str
        Its commune code column.
    """

    name: str
    frame: pd.DataFrame
    commune: str = "commune"


@dataclass(frozen=True, eq=False)
class Prepared:
    """The analysis frame and everything known about its rows.

    Attributes
    ----------
    frame : pandas.DataFrame
        Index ``commune`` (str); the analysis variables (see the module docstring), plus
        ``small_area`` (bool) and ``small_area_reason``.
    why : pandas.DataFrame
        Same index, one column per analysis variable: why the value is missing ("" where it
        is present).
    roles : dict
        Role -> column actually used (None where absent).
    joins : list of dict
        Per covariate input: rows matched, rows without a match, columns ignored.
    pca : SearchPCA or None
    pcs : tuple of str
        Search-interest components used as covariates.
    disclosure : dict
        Thresholds, the suppression mode and how many areas each rule removed.
    notes : tuple of Note
    lag_h : int or None
        The lag of ``log_cpc_per_1000_lag`` when available.
    table_lag_h : int
        The lag of the table's ``c`` and ``rho`` (``validation.table_lag_h``; 0 when unset).
    cpc_lag_h : int
        The lag of the c_j in ``log_cpc_per_1000``, the "unlagged" variable of Tables 2, 3,
        5, 6 and of Table 7's first column: 0, unless the table is at another lag and lag 0
        was not available (then ``table_lag_h``, with a warning note).
    invalid : tuple of dict
        Values of numeric columns left out of the analysis, one entry per (column, reason):
        ``source`` (file), ``column``, ``role``, ``reason`` (``"not a number"``,
        ``"infinite"``, ``"not positive"``), ``n``, ``communes`` and ``values`` (the first
        few, clipped). Each also gives a warning note and a log line: nothing is dropped
        silently.
    """

    frame: pd.DataFrame
    why: pd.DataFrame
    roles: dict[str, str | None]
    joins: list[dict]
    pca: SearchPCA | None
    pcs: tuple[str, ...]
    disclosure: dict
    notes: tuple[Note, ...]
    lag_h: int | None
    table_lag_h: int = 0
    cpc_lag_h: int = 0
    invalid: tuple[dict, ...] = ()

    @property
    def stats_frame(self) -> pd.DataFrame:
        """Rows the statistics use (all, or without small areas)."""
        if self.disclosure["statistics_include_small_areas"]:
            return self.frame
        return self.frame.loc[~self.frame["small_area"]]


@dataclass(frozen=True, eq=False)
class ModelFit:
    """One fitted model with its sample accounting.

    Attributes
    ----------
    spec : ModelSpec
    result : OLSResult
    regressors : tuple of str
    sample : dict
        ``n_input`` (rows considered), ``n_used`` (= ``result.nobs``) and ``lost``: a list of
        ``{"reason", "n"}``, each dropped row counted once under its first reason.
    dropped_regressors : tuple of str
        Controls left out (constant in the sample, or missing with ``partial_controls``).
    """

    spec: ModelSpec
    result: OLSResult
    regressors: tuple[str, ...]
    sample: dict
    dropped_regressors: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class TableResult:
    """A regression table: fitted models, or why it was skipped."""

    spec: TableSpec
    status: str  # "ok" or "skipped"
    fits: tuple[ModelFit, ...] = ()
    reason: str = ""
    column_labels: tuple[str, ...] | None = None

    @property
    def omitted(self) -> tuple[str, ...]:
        """Controls of the paper's specification left out of any model (missing or constant)."""
        return tuple(dict.fromkeys(v for f in self.fits for v in f.dropped_regressors))

    @property
    def title(self) -> str:
        """The paper's title, marked partial when a control was left out (every format prints it)."""
        if not self.omitted:
            return self.spec.title
        return f"{self.spec.title} [PARTIAL: without {', '.join(self.omitted)}]"

    @property
    def omission_note(self) -> str:
        """The omission as a sentence for the table's own note ("" when none)."""
        if not self.omitted:
            return ""
        return (f"Partial table: fitted without {', '.join(self.omitted)} (unavailable, or constant "
                "in the sample); the paper's specification includes them, so this is not the "
                "paper's table.")  # fmt: skip


@dataclass(frozen=True, eq=False)
class ValidationResult:
    """Everything :func:`compute` produces.

    Attributes
    ----------
    table1 : pandas.DataFrame
        :func:`~cpc_core.validation.statistics.summary_table1` of rho_j and c_j.
    spearman : pandas.DataFrame
        ``indicator`` (label), ``variable``, ``rho``, ``p_value``, ``n``.
    dependent : pandas.DataFrame
        :func:`~cpc_core.validation.statistics.dependent_tests` plus ``label`` and ``standard``.
    tables : dict of str -> TableResult
    notes : tuple of Note
    """

    table1: pd.DataFrame
    spearman: pd.DataFrame
    dependent: pd.DataFrame
    tables: dict[str, TableResult]
    notes: tuple[Note, ...]


# --------------------------------------------------------------------------------------------
# prepare: joins, roles, derived variables, disclosure flags
# --------------------------------------------------------------------------------------------


def _codes(values: pd.Series) -> pd.Series:
    # Codes are text ("01004", "2A004"): integers read from Parquet become their decimal text.
    def one(v):
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()

    return values.map(one).astype(object)


def _lost_zeros(inputs: Sequence[tuple[str, pd.DataFrame, str]], pad: bool,
                notes: list[Note]) -> bool:  # fmt: skip
    """Find commune codes that lost their leading zero; return whether to pad them.

    A 4-digit code (:func:`cpc_core.validation.covariates.lost_leading_zero`) next to 5-character codes
    (in the same or another input) would silently fail to join: an error naming the file, the
    row and the fix, unless ``pad``. When every code has 4 digits the joins agree; a warning
    says what the codes may be.
    """
    found, cog = [], False
    for name, frame, code in inputs:
        if code not in frame.columns:
            continue
        codes = _codes(frame[code])
        cog = cog or bool(codes.str.fullmatch(r"\d{5}|2[AB]\d{3}").any())
        lost = lost_leading_zero(codes).to_numpy()
        if lost.any():
            i = int(np.flatnonzero(lost)[0])
            found.append(f"{name}: {int(lost.sum())} code(s) in column {code!r}, e.g. data row "
                         f"{i + 1}: {clip(codes.iloc[i], 20)!r} -> '0{clip(codes.iloc[i], 20)}'")  # fmt: skip
    if not found:
        return False
    what = "; ".join(found)
    if pad:
        text = (f"commune codes with 4 digits zero-padded (a department 01-09 code that lost its "
                f"leading zero): {what}")  # fmt: skip
        logger.warning("validation: %s", text)
        notes.append(Note("data", text, "warning"))
        return True
    if cog:
        raise InputDataError(
            f"{what}: commune codes with 4 digits, a department 01-09 code that lost its leading "
            "zero (a spreadsheet round trip), while other codes have 5 characters: they would "
            "not join. Re-export the file keeping the codes as text, or set "
            "validation.pad_codes: true to zero-pad them"
        )
    text = (f"every commune code has 4 digits or is not a French code ({what}): if they are "
            "French commune codes they lost their leading zero; set validation.pad_codes: true")  # fmt: skip
    logger.warning("validation: %s", text)
    notes.append(Note("data", text, "warning"))
    return False


def _index_by_code(frame: pd.DataFrame, code: str, what: str, pad: bool = False) -> pd.DataFrame:
    if code not in frame.columns:
        raise RoleError(
            f"{what}: no commune code column {code!r}; columns found: {list(frame.columns)}"
        )
    out = frame.copy()
    codes = _codes(out[code])
    if pad:
        codes = codes.where(~lost_leading_zero(codes), "0" + codes)
    out.index = pd.Index(codes, name="commune")
    out = out.drop(columns=[code])
    dup = out.index[out.index.duplicated()].unique()
    if len(dup):
        n_rows = int(out.index.isin(dup).sum())
        raise InputDataError(
            f"{what}: {len(dup)} duplicated commune code(s) in column {code!r} ({n_rows} rows), "
            f"e.g. {clip(list(dup[:5]))}; one row per commune is needed to join"
        )
    return out


# Roles read as text (codes, names, flags); every other role is numeric.
_TEXT_ROLES = ("commune", "name", "city", "department", "region", "c_floored")
# How many communes and values an invalid-value entry lists (the count is always complete).
_SHOW = 10


def _invalid_values(joined: pd.DataFrame, roles: Mapping[str, str | None],
                    source_of: Mapping[str, str]) -> list[dict]:  # fmt: skip
    """Values of the numeric role columns that the analysis cannot use, counted per column.

    A cell that is present but not a number (``"abc"``), an infinity (``inf``) or a
    population <= 0 becomes a missing value downstream; this says how many, where and why,
    so that it is reported rather than silently dropped.

    Raises
    ------
    InputDataError
        For a column whose type cannot hold numbers at all (dates, durations): converting
        them would give nonsense, not missing values.
    """
    out = []
    seen = set()
    for role, column in roles.items():
        if column is None or role in _TEXT_ROLES or column in seen or column not in joined:
            continue
        seen.add(column)
        raw = joined[column]
        src = source_of.get(column, "table")
        if (pd.api.types.is_datetime64_any_dtype(raw) or pd.api.types.is_timedelta64_dtype(raw)
                or isinstance(raw.dtype, pd.PeriodDtype)):  # fmt: skip
            raise InputDataError(
                f"{src}: column {column!r} (role {role!r}) has type {raw.dtype}; numbers are "
                "needed (convert the column, or map the role to another column with --set "
                f"validation.columns.{role}=COLUMN)"
            )
        values = _numeric(raw)
        checks = [("not a number", raw.notna() & values.isna()), ("infinite", np.isinf(values))]
        if role == "population":
            checks.append(("not positive", np.isfinite(values) & (values <= 0)))
        for reason, mask in checks:
            n = int(mask.sum())
            if not n:
                continue
            out.append({
                "source": src, "column": column, "role": role, "reason": reason, "n": n,
                "communes": [str(c) for c in joined.index[mask.to_numpy()][:_SHOW]],
                "values": [clip(v, 40) for v in raw[mask].iloc[:_SHOW]],
            })  # fmt: skip
    return out


def _numeric(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    return pd.to_numeric(values, errors="coerce").astype(float)


class _Builder:
    """Collects analysis variables with the reason of each missing value."""

    def __init__(self, index: pd.Index):
        self.index = index
        self.values: dict[str, pd.Series] = {}
        self.why: dict[str, pd.Series] = {}

    def put(self, name: str, values: pd.Series, reasons: pd.Series, fallback: str) -> None:
        values = values.astype(float)
        values = values.where(np.isfinite(values))
        r = reasons.where(reasons != "", "")
        # Every NaN gets a reason, so that the accounting of each table adds up exactly.
        r = r.where(~(values.isna() & (r == "")), fallback)
        r = r.where(values.isna(), "")
        self.values[name] = values
        self.why[name] = r


def _flags(values: pd.Series) -> pd.Series:
    """Boolean flags read from a table: bools, 0/1, or the text ``True``/``False``.

    Examples
    --------
    >>> _flags(pd.Series([True, "False", "true", 1, None, np.nan])).tolist()
    [True, False, True, True, False, False]
    """
    if pd.api.types.is_bool_dtype(values):
        return values.astype(bool)
    text = values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v))
                      else str(v).strip().lower())  # fmt: skip
    return text.isin(("true", "1", "1.0", "yes")).astype(bool)


def _floored_from(c: pd.Series, rho: pd.Series | None, c_floor: float) -> pd.Series:
    """Re-derive "c_j was floored" when the table has no ``c_floored`` column.

    The estimate floors a c_j whose raw value ``onion_share x csam_share x rho_j`` is ``<= 0``
    (:func:`cpc_core.estimate.cpc.correction_factor`), so with rho_j the flag is exactly
    ``rho_j <= 0``. A positive c_j below the floor (0 < rho_j < rho_j,0) is *not* floored.
    Without rho_j, a floored c_j can only be recognised by its value: ``c_j <= 0`` (a table
    that was not floored) or ``c_j`` equal to the floor.

    Examples
    --------
    >>> c = pd.Series([4.5e-6, 1e-5, 7e-4])
    >>> _floored_from(c, pd.Series([0.001, -0.01, 0.2]), 1e-5).tolist()
    [False, True, False]
    >>> _floored_from(c, None, 1e-5).tolist()
    [False, True, False]
    """
    if rho is not None:
        return rho.notna() & (rho <= 0)
    return c.notna() & ((c <= 0) | np.isclose(c, c_floor, rtol=1e-9, atol=0.0))


def _c_at_lag(
    estimates_by_lag: pd.DataFrame | None, lag: int, index: pd.Index
) -> tuple[tuple[pd.Series, pd.Series] | None, str]:
    """c_j at one lag from ``estimates_by_lag`` (values, reason of each missing), or why not."""
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
    at = _index_by_code(at[["commune", "c"]], "commune", "estimates_by_lag")
    values = _numeric(at["c"]).reindex(index)
    why = pd.Series("", index=index, dtype=object).where(
        index.isin(at.index), "no row in estimates_by_lag"
    )
    return (values, why), ""


def _first_reason(*reasons: pd.Series) -> pd.Series:
    out = reasons[0].copy()
    for r in reasons[1:]:
        out = out.where(out != "", r)
    return out


def prepare(
    table: pd.DataFrame,
    config: ValidationConfig,
    *,
    covariates: Sequence[CovariateInput] = (),
    search_interest: pd.DataFrame | None = None,
    estimates_by_lag: pd.DataFrame | None = None,
    disclosure: Thresholds | None = None,
    table_name: str = "table",
) -> Prepared:
    """Join, resolve roles and derive the analysis variables of the validation.

    Parameters
    ----------
    table : pandas.DataFrame
        The commune table (the pipeline's ``communes.csv`` or any other); not modified.
    config : ValidationConfig
    covariates : sequence of CovariateInput
        Left-joined on the commune code in this order; columns already present are ignored
        (the commune table wins) and listed in :attr:`Prepared.joins`.
    search_interest : pandas.DataFrame, optional
        Region x term popularity with the region column named in
        ``config.search_interest.region`` (default ``region``).
    estimates_by_lag : pandas.DataFrame, optional
        The pipeline's ``estimates_by_lag.csv`` (``commune, lag_h, c, ...``): c at
        ``config.lag_h`` for Table 7, and c at lag 0 for the unlagged statistics when the
        table's c is at another lag (``config.table_lag_h``, see :attr:`Prepared.cpc_lag_h`).
    disclosure : DisclosureThresholds or the run's DisclosureConfig, optional
        Thresholds; ``config.disclosure`` wins, the defaults (500 inhabitants, 3 tiles) last.
    table_name : str
        How notes refer to the commune table.

    Returns
    -------
    Prepared

    Raises
    ------
    RoleError
        If a required role (commune, population, tor, web_adult, youtube, outcome, and c or
        rho) has no column; the message names the role and the columns found.
    ValueError
        On duplicated commune codes.

    Examples
    --------
    >>> t = pd.DataFrame({"commune": ["a", "b", "c", "d"], "population": [1000, 200, 5e3, 9e3],
    ...                   "tor": [1e4, 2e4, 3e4, 0], "web_adult": 1e5, "youtube": 1e7,
    ...                   "rho": [0.1, 0.2, -0.1, 0.3], "n_tiles": [5, 5, 1, 5],
    ...                   "sexual_violence_per_1000": [0.5, 0.0, 1.0, None]})
    >>> p = prepare(t, ValidationConfig())
    >>> p.frame["small_area"].tolist()
    [False, True, True, False]
    >>> p.why.loc["d", "log_cpc_per_1000"]
    'tor <= 0 (no log)'
    """
    cols = config.columns
    notes: list[Note] = []
    if cols.commune in table.columns and len(table) == 0:
        raise InputDataError(f"{table_name}: no rows, only a header: nothing to validate")
    pad = _lost_zeros([(table_name, table, cols.commune),
                       *((c.name, c.frame, c.commune) for c in covariates)], config.pad_codes, notes)  # fmt: skip
    base = _index_by_code(table, cols.commune, table_name, pad)
    source_of = dict.fromkeys(base.columns, table_name)
    matched: dict[str, pd.Series] = {table_name: pd.Series(True, index=base.index)}
    joined = base
    joins = []
    for cov in covariates:
        right = _index_by_code(cov.frame, cov.commune, cov.name, pad)
        ignored = [c for c in right.columns if c in joined.columns]
        new = [c for c in right.columns if c not in joined.columns]
        if ignored:
            logger.info("%s: columns already in the table, ignored: %s", cov.name, ignored)
        hit = pd.Series(joined.index.isin(right.index), index=joined.index)
        joined = joined.join(right[new], how="left")
        matched[cov.name] = hit
        source_of.update(dict.fromkeys(new, cov.name))
        n_extra = int((~right.index.isin(base.index)).sum())
        joins.append({
            "name": cov.name, "rows": int(len(right)), "matched": int(hit.sum()),
            "unmatched_table_rows": int((~hit).sum()), "rows_not_in_table": n_extra,
            "columns_joined": new, "columns_ignored": ignored,
        })  # fmt: skip
        if (~hit).any():
            notes.append(Note("data", f"{int((~hit).sum())} of {len(hit)} communes have no row in "
                                      f"{cov.name}; their values from it are missing", "warning"))  # fmt: skip

    found = list(table.columns) + [c for j in joins for c in j["columns_joined"]]
    roles: dict[str, str | None] = {}
    for role, column in cols.model_dump().items():
        roles[role] = column if column is not None and column in joined.columns else None
    missing_required = [r for r in REQUIRED_ROLES if roles[r] is None]
    if roles["commune"] is None:  # consumed as the index above
        roles["commune"] = cols.commune
        missing_required.remove("commune")
    if missing_required:
        detail = "; ".join(
            f"role {r!r} -> column {getattr(cols, r)!r} not found" for r in missing_required
        )
        raise RoleError(f"{table_name}: {detail}. Columns found: {clip(found)}",
                        role=missing_required[0])  # fmt: skip
    if roles["c"] is None and roles["rho"] is None:
        raise RoleError(
            f"{table_name}: neither role 'c' (column {cols.c!r}) nor role 'rho' (column "
            f"{cols.rho!r}) was found; one is needed. Columns found: {clip(found)}"
        )
    for role, column in cols.model_dump().items():
        if column is not None and roles[role] is None and role not in _QUIET_ROLES:
            notes.append(Note("data", f"optional role {role!r}: column {column!r} not found"))

    invalid = _invalid_values(joined, roles, source_of)
    for item in invalid:
        text = (f"{item['source']}: column {item['column']!r} (role {item['role']!r}): "
                f"{item['n']} value(s) {item['reason']}, left out of the statistics; communes "
                f"{', '.join(item['communes'])}{' ...' if item['n'] > _SHOW else ''} (values "
                f"{', '.join(item['values'])})")  # fmt: skip
        notes.append(Note("data", text, "warning"))
        logger.warning("validation: %s", text)

    # Nothing to validate without one numeric outcome (decisions: an error, not empty tables).
    outcome_col = roles["outcome"]
    outcome_values = _numeric(joined[outcome_col])
    if not np.isfinite(outcome_values).any():
        # a RoleError of the outcome: `cpc validate` exits 1; the pipeline skips the stage
        # loudly, as for a missing outcome column (a grid without an outcome, e.g. squares)
        raise RoleError(
            f"{source_of.get(outcome_col, table_name)}: outcome column {outcome_col!r} (role "
            f"'outcome') has no numeric value in its {len(joined)} row(s): nothing to validate",
            role="outcome",
        )

    b = _Builder(joined.index)

    def raw(role: str) -> tuple[pd.Series, pd.Series]:
        """Numeric values of a role and the reason of each missing one."""
        column = roles[role]
        if column is None:
            return pd.Series(np.nan, index=joined.index), pd.Series(
                f"role {role!r} has no column", index=joined.index, dtype=object
            )
        src = source_of[column]
        values = _numeric(joined[column])
        reason = pd.Series("", index=joined.index, dtype=object)
        reason = reason.where(matched[src], f"no row in {src}")
        reason = reason.where(~((reason == "") & joined[column].isna()), f"{column} missing")
        reason = reason.where(~((reason == "") & values.isna()), f"{column} not a number")
        infinite = np.isinf(values)
        reason = reason.where(~((reason == "") & infinite), f"{column} infinite")
        return values.where(~infinite), reason

    def positive(values: pd.Series, reason: pd.Series, column: str) -> tuple[pd.Series, pd.Series]:
        bad = values.notna() & (values <= 0)
        return values.where(~bad), reason.where(~bad, f"{column} <= 0 (no log)")

    def share(role: str) -> tuple[pd.Series, pd.Series]:
        """A rate role as a share in [0, 1] (``percent_roles`` divided by 100), checked."""
        v, r = raw(role)
        column = roles[role] or role
        if role in config.percent_roles:
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
        return v.where(~bad), r.where(~bad, f"{column} outside {unit}")

    pop, why_pop = positive(*raw("population"), roles["population"] or "population")
    for service in ("tor", "web_adult", "youtube"):
        v, r = raw(service)
        b.put(service, v, r, f"{service} missing")
        rate = v / pop * 1000.0
        rr = _first_reason(why_pop, r)
        lv, lr = positive(rate, rr, roles[service] or service)
        b.put(f"{service}_per_1000", rate, rr, f"{service} per 1000 missing")
        b.put(f"log_{service}_per_1000", np.log(lv), lr, f"log {service} per 1000 missing")
    b.put("population", pop, why_pop, "population missing")

    # c and rho: either may be derived from the other (docs/method.md section 2.8).
    k = config.onion_share * config.csam_share
    if roles["c"] is not None:
        c, why_c = raw("c")
        if roles["c_floored"] is not None:
            # the estimate's own flag: it knows which c_j it replaced
            floored = _flags(joined[roles["c_floored"]])
        else:
            floored = _floored_from(c, raw("rho")[0] if roles["rho"] is not None else None,
                                    config.c_floor)  # fmt: skip
            notes.append(Note("table1", "no c_floored column: floored c_j re-derived as rho_j "
                                        "<= 0 (the estimate floors c_j <= 0 before flooring), or "
                                        f"without rho_j as c_j <= 0 or c_j = {config.c_floor:g}"))  # fmt: skip
    else:
        rho_only, why_c = raw("rho")
        c, floored = correction_factor(
            rho_only, onion_share=config.onion_share, csam_share=config.csam_share,
            floor=config.c_floor,
        )  # fmt: skip
        notes.append(Note("data", f"c derived from rho: c = {config.onion_share} x "
                                  f"{config.csam_share} x rho, floored at {config.c_floor:g}"))  # fmt: skip
    if roles["rho"] is not None:
        rho, why_rho = raw("rho")
    else:
        rho, why_rho = c / k, why_c
        notes.append(Note("table1", "rho derived from c as c / (onion_share x csam_share); "
                                    "floored c_j give rho_j,0, not the negative correlation"))  # fmt: skip
    b.put("rho", rho, why_rho, "rho missing")
    b.put("c", c, why_c, "c missing")
    tor, why_tor = b.values["tor"], b.why["tor"]
    cpc_rate = c * tor / pop * 1000.0
    why_cpc = _first_reason(why_c, why_pop, why_tor)
    b.put("cpc_per_1000", cpc_rate, why_cpc, "cpc missing")

    v, r = raw("outcome")
    b.put("outcome", v, r, "outcome missing")

    v, r = raw("density")
    v, r = positive(v, r, roles["density"] or "density")
    b.put("log_pop_density", np.log(v), r, "density missing")
    for role, name in RATE_ROLES.items():
        v, r = share(role)
        b.put(name, v, r, f"{role} missing")
    v, r = raw("drug_abuse")
    b.put("drug_abuse", v, r, "drug abuse missing")
    for role in POI_ROLES:
        v, r = raw(role)
        b.put(role, v, r, f"{role} missing")
    v, r = raw("n_tiles")
    b.put("n_tiles", v, r, "n_tiles missing")

    # The lags (decisions.md, "Lags of the validation"): the table's c_j is at `table_lag`
    # (the run's estimate.lag_h); the unlagged statistics (Tables 2, 3, 5, 6 and Table 7's
    # "no lag" column) need c at lag 0, taken from estimates_by_lag when the table is at
    # another lag; Table 7's lagged column uses validation.lag_h.
    table_lag = 0 if config.table_lag_h is None else int(config.table_lag_h)
    cpc_lag_h = table_lag
    c0, why_c0 = c, why_c
    if table_lag != 0:
        at0, problem = _c_at_lag(estimates_by_lag, 0, joined.index)
        if at0 is not None:
            c0, why_c0 = at0
            cpc_lag_h = 0
            notes.append(Note("data", f"the commune table's c_j is at Tor lag {table_lag:+d} h "
                                      "(Table 1, public outputs); the unlagged statistics "
                                      "(Tables 2, 3, 5, 6 and Table 7's first column) use c_j "
                                      "at lag 0 from estimates_by_lag"))  # fmt: skip
        else:
            notes.append(Note("data", f"c_j at lag 0 is not available ({problem}): the "
                                      "statistics labelled unlagged use the table's c_j at Tor "
                                      f"lag {table_lag:+d} h instead (labelled so), and Table 7 "
                                      "is skipped", "warning"))  # fmt: skip
    cpc_rate0 = c0 * tor / pop * 1000.0
    why_cpc0 = _first_reason(why_c0, why_pop, why_tor)
    lv, lr = positive(cpc_rate0, why_cpc0, "tor")
    b.put("log_cpc_per_1000", np.log(lv), lr, "log cpc per 1000 missing")

    # Table 7: the cpc at the configured lag, from a column or from estimates_by_lag.
    lag_h, c_lag = None, None
    if roles["c_lagged"] is not None:
        c_lag, why_lag = raw("c_lagged")
        lag_h = config.lag_h
    elif estimates_by_lag is not None:
        at, problem = _c_at_lag(estimates_by_lag, config.lag_h, joined.index)
        if at is None:
            notes.append(Note("table7", f"{problem}; no lagged cpc", "warning"))
        else:
            (c_lag, why_lag), lag_h = at, config.lag_h
    if lag_h is not None and c_lag is not None:
        rate = c_lag * tor / pop * 1000.0
        rr = _first_reason(why_lag, why_pop, why_tor)
        lv, lr = positive(rate, rr, "lagged cpc")
        b.put("log_cpc_per_1000_lag", np.log(lv), lr, "lagged cpc missing")
        b.put("c_lagged", c_lag, why_lag, "lagged c missing")

    frame = pd.DataFrame(b.values, index=joined.index)
    why = pd.DataFrame(b.why, index=joined.index)
    frame["c_floored"] = floored.reindex(joined.index).fillna(False).astype(bool)
    for role in ("name", "city", "department", "region"):
        if roles[role] is not None:
            frame[role] = joined[roles[role]].where(joined[roles[role]].notna(), None)
    # the estimate's intervals (estimate.uncertainty) ride along to the public table, which
    # blanks them with the rates; they enter no statistic here
    for col in _PUBLIC_INTERVALS:
        if col in joined.columns:
            frame[col] = joined[col]

    # Disclosure flags: population below the threshold (or unknown), too few tiles.
    d = config.disclosure or disclosure or DisclosureThresholds()
    if roles["n_tiles"] is not None:
        tiles = frame["n_tiles"]
    else:  # unknown tile counts flag nothing (small_area_flags): only the population rule
        tiles = pd.Series(np.nan, index=frame.index)
        notes.append(Note("disclosure", f"no tile counts (role 'n_tiles'): only the population "
                                        f"threshold ({d.min_population}) is applied", "warning"))  # fmt: skip
    flags = small_area_flags(frame["population"], tiles, d.min_population, d.min_tiles)
    frame["small_area"], frame["small_area_reason"] = flags["small_area"], flags["small_area_reason"]
    disclosure_info = {
        "min_population": int(d.min_population),
        "min_tiles": int(d.min_tiles),
        "mode": config.small_areas,
        "statistics_include_small_areas": bool(config.include_small_areas),
        "n_areas": int(len(frame)),
        "n_small_areas": int(frame["small_area"].sum()),
        "n_below_population": int((~(frame["population"] >= d.min_population)).sum()),
        "n_below_tiles": int((tiles < d.min_tiles).sum()),
        "population_in_small_areas": float(frame.loc[frame["small_area"], "population"].sum()),
        "tile_counts_known": roles["n_tiles"] is not None,
    }

    # Standardised POI counts. By default (poi_scaling: model_sample) each model standardises
    # over its own sample in _fit_table, as the authors' R script did; statistics_rows takes
    # the z-scores once here, over the rows the statistics use.
    stats_rows = frame.index if config.include_small_areas else frame.index[~frame["small_area"]]
    if config.standardise_poi and config.poi_scaling == "statistics_rows":
        for role in POI_ROLES:
            x = frame.loc[stats_rows, role]
            sd = x.std(ddof=1)
            if x.notna().sum() > 1 and sd > 0:
                frame[role] = (frame[role] - x.mean()) / sd
            elif x.notna().any():
                notes.append(Note("ols", f"{role} is constant: not standardised", "warning"))

    pca, pcs = None, ()
    if config.search_interest is not None and search_interest is not None:
        pca, pc_frame, pc_why, pc_notes = _search_covariates(search_interest, config, frame, roles)
        notes.extend(pc_notes)
        pcs = tuple(pc_frame.columns)
        for pc in pcs:
            frame[pc] = pc_frame[pc]
            why[pc] = pc_why.where(frame[pc].isna(), "")
    else:
        notes.append(Note("ols", "no search-interest table: PC covariates unavailable", "warning"))
        pcs = tuple(config.search_interest.keep) if config.search_interest else ("PC1", "PC3")
        for pc in pcs:
            frame[pc] = np.nan
            why[pc] = "no search-interest table"

    return Prepared(
        frame=frame,
        why=why,
        roles=roles,
        joins=joins,
        pca=pca,
        pcs=pcs,
        disclosure=disclosure_info,
        notes=tuple(notes),
        lag_h=lag_h,
        table_lag_h=table_lag,
        cpc_lag_h=cpc_lag_h,
        invalid=tuple(invalid),
    )


def _search_covariates(
    search: pd.DataFrame,
    config: ValidationConfig,
    frame: pd.DataFrame,
    roles: Mapping[str, str | None],
) -> tuple[SearchPCA, pd.DataFrame, pd.Series, list[Note]]:
    """PCA of the region x term table, mapped region -> department -> commune."""
    sc = config.search_interest
    assert sc is not None
    notes: list[Note] = []
    if sc.region not in search.columns:
        raise RoleError(
            f"search interest: no region column {sc.region!r}; columns found: {list(search.columns)}"
        )
    try:
        chosen, left_out = select_terms(search, sc.region, sc.terms, sc.exclude)
    except KeyError as err:
        raise UsageError(f"validation.search_interest.terms/exclude: {clip(sc.path)}: "
                         f"{clip(err.args[0])}") from None  # fmt: skip
    if left_out:
        text = "; ".join(f"{c} ({why})" for c, why in left_out.items())
        logger.warning("search interest: columns that are not terms, left out of the PCA: %s", text)
        notes.append(Note("figure2", f"{clip(sc.path)}: columns left out of the PCA (not search "
                                     f"terms): {clip(text)}. List the terms in "
                                     "validation.search_interest.terms (or the others in exclude) "
                                     "to state it explicitly", "warning"))  # fmt: skip
    if not chosen:
        raise InputDataError(f"{clip(sc.path)}: no search-term column left (columns "
                             f"{clip(list(search.columns))})")  # fmt: skip
    raw_terms = search[chosen]
    terms = raw_terms.apply(pd.to_numeric, errors="coerce")
    terms.index = pd.Index(search[sc.region].astype(str).str.strip(), name="region")
    bad = ~np.isfinite(terms.to_numpy(dtype=float))
    if bad.any():
        # The PCA needs every region x term: a gap cannot be left out, only reported.
        rows, cols = np.nonzero(bad)
        shown = ", ".join(f"{terms.index[r]} / {terms.columns[c]} = "
                          f"{clip(raw_terms.iat[r, c], 40)}" for r, c in zip(rows[:5], cols[:5], strict=True))  # fmt: skip
        raise InputDataError(
            f"{clip(sc.path)}: {int(bad.sum())} search-interest value(s) missing, not a number "
            f"or infinite (the PCA needs every region x term), e.g. {shown}"
        )
    pca = search_interest_pca(terms, n_components=sc.n_components, ddof=sc.ddof)
    pca = dataclasses.replace(pca, excluded_columns=tuple(left_out.items()))
    if pca.dropped_terms:
        notes.append(Note("figure2", f"{len(pca.dropped_terms)} all-zero search terms dropped "
                                     f"before the PCA: {', '.join(pca.dropped_terms)}"))  # fmt: skip
    scores = pca.scores[list(sc.keep)]
    reason = pd.Series("", index=frame.index, dtype=object)
    dep = frame["department"].astype(str) if "department" in frame else None
    reg = frame["region"].astype(str) if "region" in frame else None
    if dep is not None and (sc.departments is not None or reg is not None):
        if sc.departments is not None:
            mapping = {r: list(d) for r, d in sc.departments.items()}
        else:
            pairs = pd.DataFrame({"region": reg, "department": dep}).dropna().drop_duplicates()
            mapping = pairs.groupby("region")["department"].apply(sorted).to_dict()
        absent = sorted(r for r in mapping if r not in scores.index)
        if absent:
            notes.append(
                Note("ols", f"regions without search-interest values: {absent}", "warning")
            )
        usable = {r: d for r, d in mapping.items() if r in scores.index}
        by_dep = regions_to_departments(scores.loc[list(usable)], usable)
        out = by_dep[list(sc.keep)].reindex(dep.to_numpy())
        out.index = frame.index
        reason = reason.where(dep.isin(by_dep.index), "no search-interest value for the department")
    elif reg is not None:
        out = scores.reindex(reg.to_numpy())
        out.index = frame.index
        reason = reason.where(reg.isin(scores.index), "no search-interest value for the region")
        notes.append(Note("ols", "no department column: search interest mapped by region directly"))
    else:
        out = pd.DataFrame(np.nan, index=frame.index, columns=list(sc.keep))
        reason[:] = "no region or department column to map search interest"
        notes.append(Note("ols", "neither role 'department' nor 'region' found: PC covariates "
                                 "cannot be mapped to communes", "warning"))  # fmt: skip
    return pca, out, reason, notes


# --------------------------------------------------------------------------------------------
# compute: Table 1, Spearman, dependent tests, regressions
# --------------------------------------------------------------------------------------------


def variable_label(
    var: str, config: ValidationConfig, lag_h: int | None = None, cpc_lag_h: int | None = None
) -> str:
    """Display label of an analysis variable, with the lag of each cpc variable.

    Parameters
    ----------
    var : str
        Analysis variable (``"outcome"`` is the configured outcome).
    config : ValidationConfig
    lag_h : int, optional
        Lag of ``log_cpc_per_1000_lag`` (Table 7's second column).
    cpc_lag_h : int, optional
        Lag of ``log_cpc_per_1000``; a label states it unless it is 0 (or unknown).

    Examples
    --------
    >>> cfg = ValidationConfig()
    >>> variable_label("log_cpc_per_1000_lag", cfg, -2), variable_label("log_cpc_per_1000", cfg, -2, 0)
    ('log_cpc_per_1000_lag-2h', 'log_cpc_per_1000')
    >>> variable_label("log_cpc_per_1000", cfg, cpc_lag_h=-2)
    'log_cpc_per_1000_lag-2h'
    """
    if var == "outcome":
        return config.outcome_label
    if var == "log_cpc_per_1000_lag" and lag_h is not None:
        return f"log_cpc_per_1000_lag{lag_h:+d}h"
    if var == "log_cpc_per_1000" and cpc_lag_h:
        return f"log_cpc_per_1000_lag{cpc_lag_h:+d}h"
    return LABELS.get(var, var)


def _account(
    prepared: Prepared,
    rows: pd.Index,
    variables: Sequence[str],
    filters: Sequence[str],
) -> tuple[pd.Index, dict]:
    """Rows complete for ``variables`` after ``filters``, and the reason of every loss."""
    why = prepared.why.loc[rows]
    first = pd.Series("", index=rows, dtype=object)
    # The outcome first: a commune without a published outcome is "not published", whatever
    # else it lacks, so each table's losses read the same way.
    ordered = sorted(dict.fromkeys(variables), key=lambda v: v != "outcome")
    for var in ordered:
        first = first.where(first != "", why[var] if var in why else "")
    for f in filters:
        if f == "nonzero_outcome":
            zero = prepared.frame.loc[rows, "outcome"] == 0
            first = first.where((first != "") | ~zero, _FILTERS[f])
    lost = first[first != ""].value_counts()
    sample = {
        "n_input": int(len(rows)),
        "n_used": int((first == "").sum()),
        "lost": [{"reason": str(r), "n": int(n)} for r, n in lost.items()],
    }
    return rows[(first == "").to_numpy()], sample


def _controls(prepared: Prepared) -> tuple[str, ...]:
    return (*CONTROLS, *prepared.pcs)


def _unavailable(prepared: Prepared, variables: Sequence[str]) -> list[str]:
    """Variables with no value at all in the statistics rows."""
    f = prepared.stats_frame
    return [v for v in variables if v not in f or f[v].notna().sum() == 0]


def _explain(prepared: Prepared, var: str) -> str:
    source = "search-interest PCA" if var.startswith("PC") else _SOURCES.get(var, f"role {var!r}")
    why = prepared.why.loc[prepared.stats_frame.index, var] if var in prepared.why else None
    if why is not None and (why != "").any():
        # the commonest reason says more than "missing" (a column of text, no join match...)
        source += f"; all missing, mostly: {why[why != ''].value_counts().index[0]}"
    return f"{var} ({source})"


def _standardise_poi(data: pd.DataFrame) -> pd.DataFrame:
    """POI counts as z-scores (ddof = 1) over ``data``, the model's sample (R's ``scale()``).

    A constant column is left as it is: the model drops it as a constant regressor.
    """
    data = data.copy()
    for role in POI_ROLES:
        if role not in data:
            continue
        x = data[role]
        sd = x.std(ddof=1)
        if x.notna().sum() > 1 and sd > 0:
            data[role] = (x - x.mean()) / sd
    return data


def _fit_table(prepared: Prepared, spec: TableSpec, config: ValidationConfig) -> TableResult:
    if spec.key == "table7" and prepared.lag_h is not None:
        # "no lag" must be lag 0, and the lagged column another lag (else one model twice)
        if prepared.cpc_lag_h != 0:
            return TableResult(spec, "skipped", reason=(
                f"c_j at lag 0 is not available (the table's c_j is at Tor lag "
                f"{prepared.cpc_lag_h:+d} h): no 'no lag' column"))  # fmt: skip
        if prepared.lag_h == 0:
            return TableResult(spec, "skipped", reason="validation.lag_h is 0: its two columns "
                                                       "would be the same model")  # fmt: skip
    controls = list(_controls(prepared))
    needed = {v for m in spec.models for v in (m.y, *m.extra)}
    missing_core = _unavailable(prepared, sorted(needed))
    if missing_core:
        why = ", ".join(_explain(prepared, v) for v in missing_core)
        return TableResult(spec, "skipped", reason=f"needs {why}")
    missing_controls = _unavailable(prepared, controls)
    if missing_controls and not config.partial_controls:
        why = ", ".join(_explain(prepared, v) for v in missing_controls)
        return TableResult(
            spec,
            "skipped",
            reason=f"controls unavailable: {why} (set validation.partial_controls to fit "
            "without them)",
        )
    controls = [c for c in controls if c not in missing_controls]
    rows = prepared.stats_frame.index
    all_vars = [v for m in spec.models for v in (m.y, *controls, *m.extra)]
    fits = []
    for m in spec.models:
        # A common sample is accounted against every model's variables, so that all columns
        # report the same rows and the same reasons.
        variables = all_vars if spec.common_sample else [m.y, *controls, *m.extra]
        used, sample = _account(prepared, rows, variables, spec.filters)
        data = prepared.frame.loc[used]
        if config.standardise_poi and config.poi_scaling == "model_sample":
            data = _standardise_poi(data)
        regressors = [*controls, *m.extra]
        constant = [v for v in regressors if data[v].nunique(dropna=True) <= 1]
        regressors = [v for v in regressors if v not in constant]
        try:
            res = fit_ols(data, m.y, regressors, cov_type=config.cov_type, use_t=config.use_t,
                          name=m.name)  # fmt: skip
        except ValueError as err:
            return TableResult(spec, "skipped", reason=f"model {m.name!r} not estimable: {err}")
        sample["n_used"] = res.nobs
        fits.append(ModelFit(m, res, tuple(regressors), sample,
                             tuple(constant) + tuple(missing_controls)))  # fmt: skip
    labels = None
    if spec.key == "table7":
        labels = ("no lag (Tor lag 0 h)", f"Tor lag {prepared.lag_h:+d} h")
    elif spec.key == "table5":
        labels = ("(without)", "(with drug abuse)")
    return TableResult(spec, "ok", tuple(fits), column_labels=labels)


def _spearman_ci(spear: pd.DataFrame, frame: pd.DataFrame, indicators: Sequence[str],
                 config: ValidationConfig) -> pd.DataFrame:
    """Table 2 with the bootstrap interval of each rho (``validation.spearman_ci``).

    Adds ``ci_lower``, ``ci_upper``, ``ci_level``, ``ci_draws`` (null/0 when switched off).
    """
    ci = config.spearman_ci
    if not ci.enabled:
        return spear.assign(ci_lower=math.nan, ci_upper=math.nan, ci_level=math.nan, ci_draws=0)
    iv = spearman_intervals(frame, "outcome", indicators, ci.draws, ci.level, ci.seed)
    return spear.merge(iv, on="indicator", how="left", validate="1:1")


def compute(prepared: Prepared, config: ValidationConfig,
            on_step: Callable[[str], None] | None = None) -> ValidationResult:
    """Tables 1, 2, the dependent-correlation tests and the regression tables.

    Parameters
    ----------
    prepared : Prepared
        From :func:`prepare`.
    config : ValidationConfig
    on_step : callable, optional
        Called with the name of each step once it is done (a progress bar's tick), in order:
        ``"spearman"``, ``"dependent tests"``, then the key of every table of :data:`TABLES`;
        :data:`COMPUTE_STEPS` steps in all.

    Returns
    -------
    ValidationResult

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> n = 60
    >>> t = pd.DataFrame({"commune": [f"c{i}" for i in range(n)], "population": 5000,
    ...                   "tor": rng.lognormal(10, 1, n), "web_adult": rng.lognormal(13, 1, n),
    ...                   "youtube": rng.lognormal(17, 1, n), "rho": rng.normal(0.16, 0.07, n),
    ...                   "n_tiles": 10, "sexual_violence_per_1000": rng.gamma(2, 0.5, n)})
    >>> res = compute(prepare(t, ValidationConfig()), ValidationConfig())
    >>> res.spearman["indicator"].tolist()[-1], res.tables["table3"].status
    ('log_cpc_per_1000', 'skipped')
    """
    notes: list[Note] = []
    f = prepared.stats_frame
    table1 = summary_table1(f["rho"], f["c"])

    indicators = ["log_youtube_per_1000", "log_web_adult_per_1000", "log_tor_per_1000",
                  "log_cpc_per_1000"]  # fmt: skip
    if prepared.lag_h is not None:
        indicators.append("log_cpc_per_1000_lag")
    with_outcome = f.loc[f["outcome"].notna()]
    step = on_step if on_step is not None else (lambda name: None)
    spear = spearman_table(with_outcome, "outcome", indicators)
    spear = _spearman_ci(spear, with_outcome, indicators, config)
    step("spearman")
    spear.insert(0, "variable", spear.pop("indicator"))
    spear.insert(0, "indicator", [variable_label(v, config, prepared.lag_h, prepared.cpc_lag_h)
                                  for v in spear["variable"]])  # fmt: skip
    published = with_outcome["outcome"]
    if len(published) > 1 and published.nunique() == 1:
        notes.append(Note("spearman", f"the outcome is constant (all {len(published)} published "
                                      f"values are {published.iloc[0]:g}): every correlation "
                                      "with it is undefined and reported as NaN", "warning"))  # fmt: skip
    for row in spear.itertuples():
        if not math.isfinite(row.rho):
            notes.append(Note("spearman", f"Spearman correlation of the outcome with "
                                          f"{row.indicator} is undefined (n = {row.n}: fewer "
                                          "than 3 rows, or a constant column): NaN", "warning"))  # fmt: skip
        elif row.n <= SPEARMAN_EXACT_MAX_N:
            notes.append(Note("spearman", f"{row.indicator}: n = {row.n}, so the p-value is the "
                                          "exact permutation p-value (all n! pairings)"))  # fmt: skip

    others = ["log_youtube_per_1000", "log_web_adult_per_1000", "log_tor_per_1000"]
    try:
        dep = dependent_tests(
            with_outcome, "outcome", "log_cpc_per_1000", others,
            methods=list(config.dependent_methods), alternative=config.alternative,
            conf_level=config.conf_level,
        )  # fmt: skip
    except (ValueError, ZeroDivisionError) as err:
        # Degenerate input (a perfect correlation on a handful of rows) must not stop the
        # stage: the tests are reported as unavailable.
        notes.append(Note("dependent_tests", f"dependent-correlation tests undefined: {err}",
                          "warning"))  # fmt: skip
        dep = pd.DataFrame(columns=["outcome", "target", "other", "method", "n", "r_target",
                                    "r_other", "r_target_other", "statistic", "df", "p_value",
                                    "ci_lower", "ci_upper", "alternative"])  # fmt: skip
    step("dependent tests")
    undefined = dep.loc[dep["method"].ne("zou") & dep["statistic"].isna(), ["other", "n"]]
    for other, n in undefined.drop_duplicates("other").itertuples(index=False):
        notes.append(Note("dependent_tests", f"log_cpc_per_1000 vs {other}: the test is undefined "
                                             f"(n = {n}: 3 rows or fewer, or a constant column): "
                                             "NaN", "warning"))  # fmt: skip
    dep.insert(4, "label", dep["method"].map(METHOD_LABELS))
    dep.insert(5, "standard", dep["method"].isin(STANDARD_METHODS))
    for col in ("outcome", "target", "other"):
        dep[col] = [variable_label(v, config, cpc_lag_h=prepared.cpc_lag_h) for v in dep[col]]
    if "koebe2024" in config.dependent_methods:
        notes.append(Note("dependent_tests", "koebe2024 is the authors' ad-hoc statistic, given "
                                             "only to replicate the paper; its type I error rate "
                                             "is not nominal. Use the standard methods."))  # fmt: skip
    notes.append(Note("dependent_tests", "the tests compare Spearman correlations (as the paper "
                                         "does); the Fisher-z methods assume Pearson's, so their "
                                         "p-values are mildly optimistic."))  # fmt: skip

    tables = {}
    for spec in TABLES:
        res = _fit_table(prepared, spec, config)
        tables[spec.key] = res
        step(spec.key)
        if res.status == "skipped":
            notes.append(Note(spec.key, f"{spec.title.split(':')[0]} skipped: {res.reason}",
                              "warning"))  # fmt: skip
            logger.warning("%s skipped: %s", spec.key, res.reason)
        else:
            for fit in res.fits:
                if fit.dropped_regressors:
                    notes.append(Note(spec.key, f"model {fit.spec.name!r} fitted without "
                                                f"{list(fit.dropped_regressors)}", "warning"))  # fmt: skip
    return ValidationResult(table1, spear, dep, tables, tuple(notes))


# --------------------------------------------------------------------------------------------
# Per-commune public outputs
# --------------------------------------------------------------------------------------------

_PUBLIC_RATES = (
    "cpc_per_1000", "tor_per_1000", "web_adult_per_1000", "youtube_per_1000", "c", "rho",
)  # fmt: skip
#: Interval columns of the uncertainty stage (published where present, blanked like the rates).
_PUBLIC_INTERVALS = (
    "rho_lo", "rho_hi", "c_lo", "c_hi", "cpc_per_1000_lo", "cpc_per_1000_hi", "p_top10", "p_top_decile",
)  # fmt: skip


def public_communes(prepared: Prepared) -> pd.DataFrame:
    """Per-commune estimates fit for publication (disclosure control applied).

    Small areas (population or tile count under the thresholds) have their rates blanked in
    ``suppress`` mode and kept but flagged in ``flag`` mode. There is nothing below the
    commune level: no tiles, no coordinates.

    Parameters
    ----------
    prepared : Prepared

    Returns
    -------
    pandas.DataFrame
        ``commune``, ``name``, ``city`` (where known), ``population``, ``small_area``,
        ``small_area_reason``, ``suppressed``, then the rates.

    Examples
    --------
    >>> t = pd.DataFrame({"commune": ["a", "b"], "population": [1000, 200], "tor": 1e4,
    ...                   "web_adult": 1e5, "youtube": 1e7, "rho": 0.2, "n_tiles": 5,
    ...                   "sexual_violence_per_1000": 1.0})
    >>> public_communes(prepare(t, ValidationConfig()))["cpc_per_1000"].isna().tolist()
    [False, True]
    """
    f = prepared.frame
    keep = [c for c in ("name", "city") if c in f]
    out = f[keep + ["population", "small_area", "small_area_reason"]].copy()
    suppress = prepared.disclosure["mode"] == "suppress"
    out["suppressed"] = f["small_area"] & suppress
    for col in _PUBLIC_RATES:
        out[col] = f[col].where(~out["suppressed"])
    # the uncertainty of a rate discloses as much as the rate: blanked with it
    for col in _PUBLIC_INTERVALS:
        if col in f:
            out[col] = f[col].where(~out["suppressed"])
    out["population"] = integer_if_whole(out["population"])  # written 15818, not 15818.0
    return out.reset_index()


def top_communes(prepared: Prepared, n: int, by: str = "cpc_per_1000") -> list[str]:
    """Codes of the ``n`` communes with the highest ``by``, small areas never among them.

    Small areas are excluded whatever the suppression mode: a "top" commune is singled out
    by name in figures, which is exactly what the thresholds exist to prevent.

    Examples
    --------
    >>> t = pd.DataFrame({"commune": ["a", "b", "c"], "population": [1000, 200, 3000],
    ...                   "tor": [1e4, 1e6, 2e4], "web_adult": 1e5, "youtube": 1e7, "rho": 0.2,
    ...                   "n_tiles": 5, "sexual_violence_per_1000": 1.0})
    >>> top_communes(prepare(t, ValidationConfig()), 2)
    ['a', 'c']
    """
    f = prepared.frame
    ok = f.loc[~f["small_area"] & f[by].notna(), by]
    return ok.sort_values(ascending=False, kind="stable").head(n).index.tolist()


def _finite(x) -> float | None:
    """JSON-safe float (NaN and infinities become None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _records(df: pd.DataFrame) -> list[dict]:
    out = []
    for row in df.to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, bool | np.bool_):
                clean[str(k)] = bool(v)
            elif isinstance(v, int | np.integer):
                clean[str(k)] = int(v)
            elif isinstance(v, float | np.floating):
                clean[str(k)] = _finite(v)
            elif v is None or v is pd.NA:
                clean[str(k)] = None
            else:
                clean[str(k)] = str(v)
        out.append(clean)
    return out


def ols_frame(
    result: ValidationResult,
    config: ValidationConfig,
    lag_h: int | None = None,
    cpc_lag_h: int | None = None,
) -> pd.DataFrame:
    """All fitted coefficients in long form (one row per table, model and term).

    ``lag_h`` and ``cpc_lag_h`` (:attr:`Prepared.lag_h`, :attr:`Prepared.cpc_lag_h`) put the
    lag of each cpc variable into its labels (:func:`variable_label`).

    Columns: ``table``, ``column`` (1-based), ``model``, ``dependent``, ``term``, ``label``,
    ``coef``, ``se``, ``statistic``, ``p_value``, ``ci_lower``, ``ci_upper``, ``nobs``,
    ``rsquared``, ``rsquared_adj``, ``cov_type``, ``note`` (the omission of a partial table,
    :attr:`TableResult.omission_note`, on each of its rows; else empty).

    Examples
    --------
    >>> ols_frame(ValidationResult(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}, ()),
    ...           ValidationConfig()).empty
    True
    """
    rows = []
    for key, tab in result.tables.items():
        for i, fit in enumerate(tab.fits, start=1):
            r = fit.result
            coef = r.to_frame()
            ci = r.conf_int(alpha=1 - config.conf_level)
            for term in coef.index:
                rows.append({
                    "table": key, "column": i, "model": r.name,
                    "dependent": variable_label(r.y, config, lag_h, cpc_lag_h), "term": term,
                    "label": variable_label(term, config, lag_h, cpc_lag_h),
                    "coef": coef.at[term, "coef"],
                    "se": coef.at[term, "se"], "statistic": coef.at[term, "statistic"],
                    "p_value": coef.at[term, "p_value"], "ci_lower": ci.at[term, "lower"],
                    "ci_upper": ci.at[term, "upper"], "nobs": r.nobs, "rsquared": r.rsquared,
                    "rsquared_adj": r.rsquared_adj, "cov_type": r.cov_type,
                    "note": tab.omission_note,
                })  # fmt: skip
    cols = ["table", "column", "model", "dependent", "term", "label", "coef", "se", "statistic",
            "p_value", "ci_lower", "ci_upper", "nobs", "rsquared", "rsquared_adj", "cov_type",
            "note"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def to_json(prepared: Prepared, result: ValidationResult, config: ValidationConfig) -> dict:
    """The machine-readable results (``tables.json``; schema in docs/outputs-validation.md).

    NaN and infinities become ``null``, so the output is strict JSON.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> t = pd.DataFrame({"commune": list("abcdefgh"), "population": 5000,
    ...                   "tor": rng.lognormal(9, 1, 8), "web_adult": rng.lognormal(12, 1, 8),
    ...                   "youtube": rng.lognormal(16, 1, 8), "rho": rng.normal(0.2, 0.05, 8),
    ...                   "n_tiles": 5, "sexual_violence_per_1000": rng.gamma(2, 1, 8)})
    >>> cfg = ValidationConfig()
    >>> p = prepare(t, cfg)
    >>> sorted(to_json(p, compute(p, cfg), cfg))[:4]
    ['cpc_lag_h', 'dependent_tests', 'disclosure', 'invalid_values']
    """
    lag = prepared.lag_h
    table1 = {
        q: {k: (int(v) if k in ("n", "n_missing") else _finite(v)) for k, v in row.items()}
        for q, row in result.table1.to_dict(orient="index").items()
    }
    ols = []
    for key, tab in result.tables.items():
        for i, fit in enumerate(tab.fits, start=1):
            r = fit.result
            coef = r.to_frame()
            ci = r.conf_int(alpha=1 - config.conf_level)
            ols.append({
                "table": key,
                "column": i,
                "model": r.name,
                "dependent": r.y,
                "dependent_label": variable_label(r.y, config, lag, prepared.cpc_lag_h),
                "cov_type": r.cov_type,
                "use_t": r.use_t,
                "nobs": r.nobs,
                "rsquared": _finite(r.rsquared),
                "rsquared_adj": _finite(r.rsquared_adj),
                "df_resid": _finite(r.df_resid),
                "sample": fit.sample,
                "dropped_regressors": list(fit.dropped_regressors),
                "coefficients": [
                    {"term": t, "label": variable_label(t, config, lag, prepared.cpc_lag_h),
                     "coef": _finite(coef.at[t, "coef"]), "se": _finite(coef.at[t, "se"]),
                     "statistic": _finite(coef.at[t, "statistic"]),
                     "p_value": _finite(coef.at[t, "p_value"]),
                     "ci_lower": _finite(ci.at[t, "lower"]), "ci_upper": _finite(ci.at[t, "upper"])}
                    for t in coef.index
                ],
            })  # fmt: skip
    tables = {
        key: {"title": tab.title, "paper_title": tab.spec.title, "status": tab.status,
              "reason": tab.reason, "models": [f.result.name for f in tab.fits],
              "omitted_controls": list(tab.omitted), "note": tab.omission_note}
        for key, tab in result.tables.items()
    }  # fmt: skip
    pca = None
    if prepared.pca is not None:
        pca = {
            "dropped_terms": list(prepared.pca.dropped_terms),
            "explained_variance_ratio": {
                k: _finite(v) for k, v in prepared.pca.explained_variance_ratio.items()
            },
            "loadings": {
                term: {k: _finite(v) for k, v in row.items()}
                for term, row in prepared.pca.loadings.to_dict(orient="index").items()
            },
            "covariates": list(prepared.pcs),
            "ddof": int(prepared.pca.ddof),
            "terms": [str(t) for t in (*prepared.pca.loadings.index, *prepared.pca.dropped_terms)],
            "excluded_columns": {str(c): str(why) for c, why in prepared.pca.excluded_columns},
            "sign_convention": "largest absolute loading positive",
            "opposite_under_score_rule": score_rule_flips(prepared.pca),
            "scores": {str(r): {k: _finite(v) for k, v in row.items()}
                       for r, row in prepared.pca.scores.to_dict(orient="index").items()},
        }
    return {
        "schema": "cpc.validation/1",
        "table1": table1,
        "spearman": _records(result.spearman),
        "dependent_tests": _records(result.dependent),
        "ols": ols,
        "tables": tables,
        "search_interest_pca": pca,
        "lag_h": lag,
        "table_lag_h": prepared.table_lag_h,
        "cpc_lag_h": prepared.cpc_lag_h,
        "roles": dict(prepared.roles),
        "joins": prepared.joins,
        "disclosure": prepared.disclosure,
        "invalid_values": [dict(x) for x in prepared.invalid],
        "notes": [n.as_dict() for n in (*prepared.notes, *result.notes)],
    }


# --------------------------------------------------------------------------------------------
# Outcome models beside the paper's OLS (issue #15: zero inflation, spatial dependence)
# --------------------------------------------------------------------------------------------

#: The table whose OLS regresses the outcome on log cpc per 1000 on all rows (zeros kept);
#: Table 6 is the same model on the positive rows (the hurdle's positive part).
OUTCOME_TABLE = "table3"
POSITIVE_TABLE = "table6"


@dataclass(frozen=True, eq=False)
class OutcomeModels:
    """The hurdle, count and spatial models of the outcome (:func:`fit_outcome_models`).

    Attributes
    ----------
    status : dict
        ``hurdle``, ``counts``, ``spatial`` -> ``"ok"``, ``"disabled"`` or ``"skipped: why"``.
    regressors : tuple of str
        Regressors of Table 3's outcome model (the same in every model here).
    nobs : int
        Rows of Table 3's outcome model (all published values, zeros included).
    comparison : pandas.DataFrame
        :func:`~cpc_core.validation.models.comparison_table` (OLS of Table 6, hurdle, counts).
    coefficients : pandas.DataFrame
        :func:`~cpc_core.validation.models.coefficient_table` plus the spatial models' rows.
    hurdle, counts, spatial
        The raw results (None where not fitted).
    notes : tuple of Note
    """

    status: dict
    regressors: tuple[str, ...]
    nobs: int
    comparison: pd.DataFrame
    coefficients: pd.DataFrame
    hurdle: object | None = None
    counts: dict | None = None
    spatial: object | None = None
    notes: tuple[Note, ...] = ()


def outcome_model_frame(prepared: Prepared, result: ValidationResult,
                        config: ValidationConfig) -> tuple[pd.DataFrame, tuple[str, ...]] | None:
    """The rows and regressors of Table 3's outcome model (None when it was not fitted).

    The rows are those Table 3's OLS used (every published value, zeros included), with the
    POI counts standardised as there; the regressors are the ones it kept.
    """
    tab = result.tables.get(OUTCOME_TABLE)
    if tab is None or tab.status != "ok":
        return None
    fit = next((f for f in tab.fits if f.spec.y == "outcome"), None)
    if fit is None:
        return None
    used, _ = _account(prepared, prepared.stats_frame.index, ["outcome", *fit.regressors],
                       tab.spec.filters)
    data = prepared.frame.loc[used]
    if config.standardise_poi and config.poi_scaling == "model_sample":
        data = _standardise_poi(data)
    if len(data) != fit.result.nobs:  # pragma: no cover - the same accounting as _fit_table
        raise RuntimeError(f"outcome model frame: {len(data)} rows, Table 3 used {fit.result.nobs}")
    return data, fit.regressors


def fit_outcome_models(prepared: Prepared, result: ValidationResult, config: ValidationConfig,
                       geo=None) -> OutcomeModels:
    """Hurdle, count and spatial models of the outcome beside the paper's OLS.

    All are fitted on Table 3's outcome model: its rows (all published values, zeros
    included) and its regressors (log cpc per 1000 and the controls).

    - hurdle (:func:`~cpc_core.validation.models.fit_hurdle`): a logit of ``outcome > 0`` and an
      OLS of the positive part (``validation.models.hurdle_positive``; linear is Table 6's
      model), HC0 / the configured covariance;
    - counts (:func:`~cpc_core.validation.models.fit_count_models`): Poisson, NB2, ZIP, ZINB of
      ``round(outcome x population / 1000)`` with the population / 1000 as exposure;
    - spatial (:func:`~cpc_core.validation.spatial.spatial_models`): Moran's I of the OLS residuals
      (permutations), spatial error and lag models (ML), over the polygons in ``geo``.

    A model that cannot be fitted (no zeros, no polygons...) is reported as skipped with its
    reason (``status`` and a note); nothing is dropped silently.

    Parameters
    ----------
    prepared, result, config
        From :func:`prepare` and :func:`compute`.
    geo : geopandas.GeoDataFrame, optional
        Commune polygons indexed by the commune code.

    Returns
    -------
    OutcomeModels
    """
    from cpc_core.validation import models as om

    mc = config.models
    notes: list[Note] = []
    status = {"hurdle": "disabled", "counts": "disabled", "spatial": "disabled"}
    framed = outcome_model_frame(prepared, result, config)
    empty = OutcomeModels(status, (), 0, om.comparison_table(), om.coefficient_table())
    if framed is None:
        why = result.tables.get(OUTCOME_TABLE)
        reason = f"skipped: Table 3 was not fitted ({why.reason if why else 'absent'})"
        enabled = {"hurdle": mc.hurdle, "counts": mc.count_models, "spatial": mc.spatial}
        status = {k: reason if on else "disabled" for k, on in enabled.items()}
        notes.append(Note("outcome_models", f"outcome models {reason}", "warning"))
        return OutcomeModels(status, (), 0, empty.comparison, empty.coefficients,
                             notes=tuple(notes))
    data, regressors = framed
    X = list(regressors)
    hurdle = counts = spatial = None

    def skip(key: str, why: str) -> None:
        status[key] = f"skipped: {why}"
        notes.append(Note("outcome_models", f"{key} model(s) skipped: {why}", "warning"))
        logger.warning("outcome models: %s skipped: %s", key, why)

    if mc.hurdle:
        try:
            hurdle = om.fit_hurdle(data, "outcome", X, positive=mc.hurdle_positive,
                                   cov_type=config.cov_type)
            status["hurdle"] = "ok"
        except (ValueError, np.linalg.LinAlgError) as err:
            skip("hurdle", str(err))
    if mc.count_models:
        frame = data.assign(count=om.counts_from_rate(data["outcome"], data["population"]),
                            exposure=data["population"] / 1000.0)
        off = ((data["outcome"] * data["population"] / 1000.0 - frame["count"]).abs() > 0.05)
        if off.any():
            notes.append(Note("outcome_models", f"count models: {int(off.sum())} of {len(frame)} "
                              "outcome x population / 1000 values are not whole numbers (the "
                              "rate was not computed from this population); rounded to counts",
                              "warning"))
        try:
            counts = om.fit_count_models(frame, "count", X, exposure="exposure")
            status["counts"] = "ok"
            for name, res in counts.items():
                if not res.converged:
                    notes.append(Note("outcome_models", f"count model {name} did not converge: "
                                      f"{'; '.join(res.notes)}", "warning"))
        except (ValueError, np.linalg.LinAlgError) as err:
            skip("counts", str(err))
    if mc.spatial:
        if geo is None:
            skip("spatial", "no commune polygons (validation.geo)")
        else:
            from cpc_core.validation import spatial as sp

            missing = data.index.difference(geo.index)
            if len(missing):
                notes.append(Note("outcome_models", f"spatial models: {len(missing)} commune(s) of "
                                  "Table 3's sample have no polygon and are left out, e.g. "
                                  f"{list(missing[:5])}", "warning"))
            gdf = geo.loc[geo.index.intersection(data.index), ["geometry"]].join(data[["outcome", *X]])
            try:
                spatial = sp.spatial_models(gdf, "outcome", X, kind=mc.weights, k=mc.k,
                                            permutations=mc.permutations, seed=mc.seed)
                status["spatial"] = "ok"
                if spatial.weights.islands:
                    notes.append(Note("outcome_models", f"spatial weights: "
                                      f"{len(spatial.weights.islands)} island(s) without a "
                                      "contiguous neighbour, attached to their nearest one: "
                                      f"{spatial.weights.islands[:10]}", "warning"))
            except (ValueError, np.linalg.LinAlgError) as err:
                skip("spatial", str(err))
    ols6 = result.tables.get(POSITIVE_TABLE)
    ols = None
    if ols6 is not None and ols6.status == "ok":
        ols = next((f.result for f in ols6.fits if f.spec.y == "outcome"), None)
    if counts:
        # A failed optimum (non-finite per-row likelihood) has no AIC/BIC or Vuong test: it
        # is left out of the tables and said so, never compared.
        bad = [n for n, c in counts.items() if not np.isfinite(c.llf_obs).all()]
        for name in bad:
            notes.append(Note("outcome_models", f"count model {name}: no finite likelihood at its "
                              "optimum (failed fit); left out of the comparison", "warning"))
        counts = {n: c for n, c in counts.items() if n not in bad}
        if any(c for c in counts.values()):
            status["counts"] = "ok" + (f" (without {', '.join(bad)})" if bad else "")
    # which paper table each OLS is: Table 6 (positive rows), Table 3 (all rows, spreg's OLS)
    names = {"ols": "ols (Table 6)"}
    spatial_names = {"ols": "ols (Table 3)", "error": "spatial error", "lag": "spatial lag"}
    comparison = om.comparison_table(ols=ols, hurdle=hurdle, counts=counts).replace(
        {"model": names})
    coefs = om.coefficient_table(ols=ols, hurdle=hurdle, counts=counts).replace({"model": names})
    if spatial is not None:
        sc = spatial.coefficients.assign(model=lambda d: d["model"].map(spatial_names),
                                         part="mean")
        coefs = pd.concat([coefs, sc[["model", "part", "term", "coef", "se", "p_value"]]],
                          ignore_index=True)
        fit = spatial.fit.assign(model=lambda d: d["model"].map(spatial_names), sample="all rows",
                                 outcome="outcome", comparable="all rows with a polygon, rate",
                                 converged=True)
        comparison = pd.concat([comparison, fit.drop(columns=["method", "spatial_param"])
                                .reindex(columns=comparison.columns)], ignore_index=True)
    return OutcomeModels(status, tuple(X), len(data), comparison, coefs, hurdle, counts,
                         spatial, tuple(notes))


def outcome_models_json(models: OutcomeModels) -> dict:
    """``tables.json``'s ``outcome_models`` section (docs/outputs-validation.md)."""
    h = models.hurdle
    sp = models.spatial
    out = {
        "table": OUTCOME_TABLE,
        "status": dict(models.status),
        "regressors": list(models.regressors),
        "nobs": models.nobs,
        "comparison": _records(models.comparison),
        "coefficients": _records(models.coefficients),
        "hurdle": None,
        "spatial": None,
        "notes": [n.as_dict() for n in models.notes],
    }
    if h is not None:
        out["hurdle"] = {"positive": h.positive, "nobs": h.nobs, "n_positive": h.n_positive,
                         "zero_wald_stat": _finite(h.zero_wald_stat),
                         "zero_wald_p": _finite(h.zero_wald_p), "llf": _finite(h.llf),
                         "aic": _finite(h.aic), "bic": _finite(h.bic), "k": h.k,
                         "cov_type": h.cov_type, "logit_cov_type": "HC0"}
    if sp is not None:
        m, w = sp.moran, sp.weights
        out["spatial"] = {
            "moran": {"I": _finite(m.I), "expected_I": _finite(m.expected_I),
                      "p_upper": _finite(m.p_upper), "p_two_sided": _finite(m.p_two_sided),
                      "p_sim": _finite(m.p_sim), "z_norm": _finite(m.z_norm),
                      "p_norm": _finite(m.p_norm), "permutations": m.permutations,
                      "seed": m.seed},
            "moran_analytic": {"I": _finite(sp.moran_analytic[0]),
                               "z": _finite(sp.moran_analytic[1]),
                               "p": _finite(sp.moran_analytic[2])},
            "weights": {"kind": w.kind, "n": w.n, "islands": [str(i) for i in w.islands],
                        "attached": w.attached, "mean_neighbours": _finite(w.mean_neighbours),
                        "min_neighbours": w.min_neighbours, "max_neighbours": w.max_neighbours},
            "dropped": sp.dropped,
            "fit": _records(sp.fit),
        }
    return out
