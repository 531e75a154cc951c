"""The validation's data types: its inputs' wrappers, its notes and its results.

Plain frozen dataclasses, no logic beyond derived properties, so that every step of the
validation (:mod:`~cpc_core.validation.roles`, :mod:`~cpc_core.validation.derive`,
:mod:`~cpc_core.validation.fit`, :mod:`~cpc_core.validation.export`) can share them without
importing one another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Protocol

import pandas as pd

from cpc_core.errors import InputDataError
from cpc_core.estimate.cpc import C_FLOOR, CSAM_SHARE, ONION_SHARE
from cpc_core.validation.search_interest import SearchPCA
from cpc_core.validation.specs import ModelSpec, TableSpec
from cpc_core.validation.statistics import OLSResult

__all__ = [
    "CovariateInput",
    "EstimateConstants",
    "ModelFit",
    "Note",
    "Prepared",
    "RoleError",
    "TableResult",
    "Thresholds",
    "ValidationResult",
]


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


@dataclass(frozen=True)
class EstimateConstants:
    """The constants a commune table's c_j were estimated with (docs/method.md sections 1-3).

    Attributes
    ----------
    onion_share, csam_share : float
        ``c_j = onion_share x csam_share x rho_j``.
    c_floor : float
        Replacement of non-positive c_j.
    lag_h : int
        The Tor lag of the table's c_j and rho_j (the run's ``estimate.lag_h``; 0: unlagged).

    Examples
    --------
    >>> EstimateConstants.from_mapping({"lag_h": -2, "csam_share": 0.5, "zero_value": 0.001})
    EstimateConstants(onion_share=0.011, csam_share=0.5, c_floor=1e-05, lag_h=-2)
    """

    onion_share: float = ONION_SHARE
    csam_share: float = CSAM_SHARE
    c_floor: float = C_FLOOR
    lag_h: int = 0

    @classmethod
    def from_mapping(cls, values: Mapping) -> EstimateConstants:
        """From a run's ``estimate`` section (other keys ignored; absent or null keys: defaults)."""
        known = {f.name for f in fields(cls)}
        given = {k: v for k, v in values.items() if k in known and v is not None}
        if "lag_h" in given:
            given["lag_h"] = int(given["lag_h"])
        return cls(**given)


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
    estimate : EstimateConstants
        The constants the table's c_j were estimated with, its lag included (the one source
        of :attr:`table_lag_h`).
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
    estimate: EstimateConstants = field(default_factory=lambda: EstimateConstants())
    cpc_lag_h: int = 0
    invalid: tuple[dict, ...] = ()

    @property
    def table_lag_h(self) -> int:
        """The lag of the table's c and rho (the run's ``estimate.lag_h``; 0 when unknown)."""
        return self.estimate.lag_h

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
