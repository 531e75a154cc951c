"""Fitting the validation: Table 1, Spearman (Table 2), the dependent tests, the regressions.

:func:`compute` runs the tested statistics of :mod:`cpc_core.validation.statistics` on a
:class:`~cpc_core.validation.results.Prepared` frame; each regression table is fitted from
its :class:`~cpc_core.validation.specs.TableSpec` by :func:`fit_table`. A table whose
variables are unavailable is skipped with a note rather than failing the stage.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import pandas as pd

from cpc_core.validation.derive import standardise_poi
from cpc_core.validation.options import ValidationOptions
from cpc_core.validation.results import ModelFit, Note, Prepared, TableResult, ValidationResult
from cpc_core.validation.specs import (
    CONTROLS,
    FILTERS,
    METHOD_LABELS,
    SOURCES,
    TABLES,
    TableSpec,
    variable_label,
)
from cpc_core.validation.statistics import (
    SPEARMAN_EXACT_MAX_N,
    STANDARD_METHODS,
    dependent_tests,
    fit_ols,
    spearman_intervals,
    spearman_table,
    summary_table1,
)

__all__ = ["account", "compute", "fit_table"]

logger = logging.getLogger(__name__)


def account(
    prepared: Prepared,
    rows: pd.Index,
    variables: Sequence[str],
    filters: Sequence[str],
) -> tuple[pd.Index, dict]:
    """Rows complete for ``variables`` after ``filters``, and the reason of every loss.

    Each lost row is counted once, under its first reason (the outcome's first).

    Returns
    -------
    used : pandas.Index
    sample : dict
        ``n_input``, ``n_used`` and ``lost`` (a list of ``{"reason", "n"}``).
    """
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
            first = first.where((first != "") | ~zero, FILTERS[f])
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
    source = "search-interest PCA" if var.startswith("PC") else SOURCES.get(var, f"role {var!r}")
    why = prepared.why.loc[prepared.stats_frame.index, var] if var in prepared.why else None
    if why is not None and (why != "").any():
        # the commonest reason says more than "missing" (a column of text, no join match...)
        source += f"; all missing, mostly: {why[why != ''].value_counts().index[0]}"
    return f"{var} ({source})"


def fit_table(prepared: Prepared, spec: TableSpec, config: ValidationOptions) -> TableResult:
    """Fit the models of one regression table, or say why it is skipped.

    Every model regresses its ``y`` on the common controls (:data:`CONTROLS` and the PCs)
    plus its ``extra`` regressors, over the statistics rows after the table's filters; the
    spec's own rules (``common_sample``, ``compares_lags``, ``column_labels``) are applied
    here, with no table named in the code. POI counts are standardised over each model's
    sample unless ``poi_scaling`` is ``statistics_rows``; a control constant in the sample
    is dropped (and reported).
    """
    if spec.compares_lags and prepared.lag_h is not None:
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
        used, sample = account(prepared, rows, variables, spec.filters)
        data = prepared.frame.loc[used]
        if config.standardise_poi and config.poi_scaling == "model_sample":
            data = standardise_poi(data)
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
    return TableResult(spec, "ok", tuple(fits), column_labels=spec.labels(prepared.lag_h))


def _spearman_ci(spear: pd.DataFrame, frame: pd.DataFrame, indicators: Sequence[str],
                 config: ValidationOptions) -> pd.DataFrame:
    """Table 2 with the bootstrap interval of each rho (``validation.spearman_ci``).

    Adds ``ci_lower``, ``ci_upper``, ``ci_level``, ``ci_draws`` (NaN/0 when switched off).
    """
    ci = config.spearman_ci
    if not ci.enabled:
        return spear.assign(ci_lower=math.nan, ci_upper=math.nan, ci_level=math.nan, ci_draws=0)
    iv = spearman_intervals(frame, "outcome", indicators, ci.draws, ci.level, ci.seed)
    return spear.merge(iv, on="indicator", how="left", validate="1:1")


def compute(prepared: Prepared, config: ValidationOptions,
            on_step: Callable[[str], None] | None = None) -> ValidationResult:
    """Tables 1, 2, the dependent-correlation tests and the regression tables.

    Parameters
    ----------
    prepared : Prepared
        From :func:`prepare`.
    config : ValidationOptions
    on_step : callable, optional
        Called with the name of each step once it is done (a progress bar's tick), in order:
        ``"spearman"``, ``"dependent tests"``, then the key of every table of :data:`TABLES`;
        :data:`COMPUTE_STEPS` steps in all.

    Returns
    -------
    ValidationResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> n = 60
    >>> t = pd.DataFrame({"commune": [f"c{i}" for i in range(n)], "population": 5000,
    ...                   "tor": rng.lognormal(10, 1, n), "web_adult": rng.lognormal(13, 1, n),
    ...                   "youtube": rng.lognormal(17, 1, n), "rho": rng.normal(0.16, 0.07, n),
    ...                   "n_tiles": 10, "sexual_violence_per_1000": rng.gamma(2, 0.5, n)})
    >>> from cpc_core.config.validation_options import ValidationConfig
    >>> from cpc_core.validation.stage import prepare
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
    spear.insert(0, "indicator", [variable_label(v, config.outcome_label, prepared.lag_h, prepared.cpc_lag_h)
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
        dep[col] = [variable_label(v, config.outcome_label, cpc_lag_h=prepared.cpc_lag_h) for v in dep[col]]
    if "koebe2024" in config.dependent_methods:
        notes.append(Note("dependent_tests", "koebe2024 is the authors' ad-hoc statistic, given "
                                             "only to replicate the paper; its type I error rate "
                                             "is not nominal. Use the standard methods."))  # fmt: skip
    notes.append(Note("dependent_tests", "the tests compare Spearman correlations (as the paper "
                                         "does); the Fisher-z methods assume Pearson's, so their "
                                         "p-values are mildly optimistic."))  # fmt: skip

    tables = {}
    for spec in TABLES:
        res = fit_table(prepared, spec, config)
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
