"""The validation stage: a commune table in, the paper's Tables 1-3 and 5-7 out.

This module is the stage's front door. Each concept lives in its own module of
:mod:`cpc_core.validation`, and every public name is re-exported here:

* :mod:`~cpc_core.validation.specs` -- the variables, labels and regression tables as data;
* :mod:`~cpc_core.validation.results` -- the data types (:class:`Prepared`,
  :class:`ValidationResult`, :class:`Note`...);
* :mod:`~cpc_core.validation.roles` -- commune codes, covariate joins, role resolution;
* :mod:`~cpc_core.validation.derive` -- the analysis variables as plain functions (docs/method.md
  section 6.2: log traffic per 1000, log cpc per 1000, log density, vote shares / 100,
  standardised POI counts, the lagged cpc of Table 7), the lags, the disclosure flags;
* :mod:`~cpc_core.validation.search_covariates` -- PC1/PC3 mapped region -> department ->
  commune;
* :mod:`~cpc_core.validation.fit` -- :func:`compute`: Table 1, Table 2 (Spearman), the
  dependent-correlation tests and the regressions of Tables 3, 5, 6 and 7;
* :mod:`~cpc_core.validation.export` -- :func:`public_communes`, :func:`ols_frame`,
  :func:`to_json`;
* :mod:`~cpc_core.validation.outcomes` -- the hurdle, count and spatial models.

:func:`prepare` composes the first steps: it joins the covariate files by commune code,
resolves the roles, derives the analysis variables and flags small areas (disclosure
control). For every missing value it records *why* it is missing (no row in a joined file, a
missing cell, a non-positive value under a log), so each table can say where its rows went.
It is pure: frames in, frames and dataclasses out; reading files and writing outputs is
``jobs/validate.py``'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cpc_core.disclosure import Thresholds as DefaultThresholds
from cpc_core.errors import InputDataError
from cpc_core.estimate.cpc import cpc_per_1000
from cpc_core.validation.derive import (
    Variables,
    c_and_rho,
    covariate_variables,
    disclosure_flags,
    first_reason,
    lagged_c,
    positive,
    standardise_poi,
    traffic_variables,
    unlagged_c,
)
from cpc_core.validation.export import (
    PUBLIC_INTERVALS,
    ols_frame,
    public_communes,
    to_json,
    top_communes,
)
from cpc_core.validation.fit import compute
from cpc_core.validation.inputs import EstimateConstants, ValidationInputs, effective_constants
from cpc_core.validation.options import ValidationOptions
from cpc_core.validation.outcomes import (
    OutcomeModels,
    fit_outcome_models,
    outcome_model_frame,
    outcome_models_json,
)
from cpc_core.validation.results import (
    CovariateInput,
    ModelFit,
    Note,
    Prepared,
    RoleError,
    TableResult,
    Thresholds,
    ValidationResult,
)
from cpc_core.validation.roles import (
    check_lost_zeros,
    check_outcome,
    invalid_values,
    join_inputs,
    report_invalid,
    resolve_roles,
)
from cpc_core.validation.search_covariates import search_covariates
from cpc_core.validation.search_interest import score_rule_flips
from cpc_core.validation.specs import (
    COMPUTE_STEPS,
    CONTROLS,
    LABELS,
    METHOD_LABELS,
    TABLES,
    TRAFFIC,
    ModelSpec,
    TableSpec,
    variable_label,
)

__all__ = [
    "COMPUTE_STEPS",
    "CONTROLS",
    "LABELS",
    "METHOD_LABELS",
    "TABLES",
    "TRAFFIC",
    "CovariateInput",
    "EstimateConstants",
    "ModelFit",
    "ModelSpec",
    "Note",
    "OutcomeModels",
    "Prepared",
    "RoleError",
    "TableResult",
    "TableSpec",
    "Thresholds",
    "ValidationInputs",
    "ValidationOptions",
    "ValidationResult",
    "compute",
    "effective_constants",
    "fit_outcome_models",
    "ols_frame",
    "outcome_model_frame",
    "outcome_models_json",
    "prepare",
    "public_communes",
    "score_rule_flips",
    "to_json",
    "top_communes",
    "variable_label",
]

logger = logging.getLogger(__name__)


def prepare(
    table: pd.DataFrame,
    config: ValidationOptions,
    *,
    covariates: Sequence[CovariateInput] = (),
    search_interest: pd.DataFrame | None = None,
    estimates_by_lag: pd.DataFrame | None = None,
    disclosure: Thresholds | None = None,
    table_name: str = "table",
    estimate: EstimateConstants | None = None,
) -> Prepared:
    """Join, resolve roles and derive the analysis variables of the validation.

    Parameters
    ----------
    table : pandas.DataFrame
        The commune table (the pipeline's ``communes.csv`` or any other); not modified.
    config : ValidationOptions
        Plain options (``jobs.validate.validation_options``); a ``ValidationConfig`` has the
        same attributes and is accepted too.
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
    disclosure : cpc_core.disclosure.Thresholds or the run's DisclosureConfig, optional
        Thresholds; ``config.disclosure`` wins, the defaults (500 inhabitants, 3 tiles) last.
    table_name : str
        How notes refer to the commune table.
    estimate : EstimateConstants, optional
        The constants the table's c_j were estimated with (the run's, from
        :class:`~cpc_core.validation.inputs.ValidationInputs`); default: ``config``'s
        ``onion_share``, ``csam_share``, ``c_floor`` and ``table_lag_h`` (0 when unset).

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
    >>> from cpc_core.config.validation_options import ValidationConfig
    >>> p = prepare(t, ValidationConfig())
    >>> p.frame["small_area"].tolist()
    [False, True, True, False]
    >>> p.why.loc["d", "log_cpc_per_1000"]
    'tor <= 0 (no log)'
    """
    columns = dict(config.columns)  # role -> column (a mapping, or the config's ColumnsConfig)
    commune = columns["commune"]
    notes: list[Note] = []
    if commune in table.columns and len(table) == 0:
        raise InputDataError(f"{table_name}: no rows, only a header: nothing to validate")
    pad = check_lost_zeros([(table_name, table, commune),
                            *((c.name, c.frame, c.commune) for c in covariates)],
                           config.pad_codes, notes)  # fmt: skip
    joined = join_inputs(table, covariates, commune, table_name, pad, notes)
    found = list(table.columns) + [c for j in joined.joins for c in j["columns_joined"]]
    roles = resolve_roles(joined, columns, table_name, found, notes)
    invalid = invalid_values(joined.frame, roles, joined.source_of)
    report_invalid(invalid, notes)
    check_outcome(joined, roles["outcome"], table_name)

    index = joined.frame.index
    v = Variables(index)
    pop, why_pop = traffic_variables(v, joined, roles)
    tor, why_tor = v.values["tor"], v.why["tor"]
    k = estimate or EstimateConstants(config.onion_share, config.csam_share, config.c_floor,
                                      0 if config.table_lag_h is None else int(config.table_lag_h))
    cf = c_and_rho(joined, roles, k.onion_share, k.csam_share, k.c_floor, notes)
    v.put("rho", cf.rho, cf.why_rho, "rho missing")
    v.put("c", cf.c, cf.why_c, "c missing")
    cpc_rate = cpc_per_1000(cf.c, tor, pop)
    v.put("cpc_per_1000", cpc_rate, first_reason(cf.why_c, why_pop, why_tor), "cpc missing")
    covariate_variables(v, joined, roles, config.percent_roles, notes)

    # The lags (decisions.md, "Lags of the validation"): the table's c_j is at `k.lag_h`
    # (the run's estimate.lag_h); the unlagged statistics use c at lag 0; Table 7's lagged
    # column uses validation.lag_h.
    c0, why_c0, cpc_lag_h = unlagged_c(cf.c, cf.why_c, k.lag_h, estimates_by_lag, notes)
    cpc_rate0 = cpc_per_1000(c0, tor, pop)
    lv, lr = positive(cpc_rate0, first_reason(why_c0, why_pop, why_tor), "tor")
    v.put("log_cpc_per_1000", np.log(lv), lr, "log cpc per 1000 missing")
    lagged = lagged_c(joined, roles, config.lag_h, estimates_by_lag, notes)
    lag_h = None
    if lagged is not None:
        c_lag, why_lag, lag_h = lagged
        rate = cpc_per_1000(c_lag, tor, pop)
        lv, lr = positive(rate, first_reason(why_lag, why_pop, why_tor), "lagged cpc")
        v.put("log_cpc_per_1000_lag", np.log(lv), lr, "lagged cpc missing")
        v.put("c_lagged", c_lag, why_lag, "lagged c missing")

    frame = pd.DataFrame(v.values, index=index)
    why = pd.DataFrame(v.why, index=index)
    frame["c_floored"] = cf.floored.reindex(index).fillna(False).astype(bool)
    for role in ("name", "city", "department", "region"):
        if roles[role] is not None:
            column = joined.frame[roles[role]]
            frame[role] = column.where(column.notna(), None)
    # the estimate's intervals (estimate.uncertainty) ride along to the public table, which
    # blanks them with the rates; they enter no statistic here
    for col in PUBLIC_INTERVALS:
        if col in joined.frame.columns:
            frame[col] = joined.frame[col]

    d = config.disclosure or disclosure or DefaultThresholds()
    disclosure_info = disclosure_flags(frame, roles["n_tiles"] is not None, d, config.small_areas,
                                       config.include_small_areas, notes)  # fmt: skip

    # Standardised POI counts. By default (poi_scaling: model_sample) each model standardises
    # over its own sample (fit.fit_table), as the authors' R script did; statistics_rows takes
    # the z-scores once here, over the rows the statistics use.
    if config.standardise_poi and config.poi_scaling == "statistics_rows":
        stats_rows = frame.index if config.include_small_areas else frame.index[~frame["small_area"]]
        frame = standardise_poi(frame, stats_rows, notes)

    pca, pcs = None, ()
    if config.search_interest is not None and search_interest is not None:
        pca, pc_frame, pc_why, pc_notes = search_covariates(search_interest, config.search_interest, frame)
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
        joins=joined.joins,
        pca=pca,
        pcs=pcs,
        disclosure=disclosure_info,
        notes=tuple(notes),
        lag_h=lag_h,
        estimate=k,
        cpc_lag_h=cpc_lag_h,
        invalid=tuple(invalid),
    )
