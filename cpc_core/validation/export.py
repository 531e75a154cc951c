"""The validation's outputs as data: the public per-commune table, long coefficients, JSON.

- :func:`public_communes` -- per-commune estimates fit for publication (disclosure control);
- :func:`top_communes` -- the communes a figure may single out (never a small area);
- :func:`ols_frame` and :func:`to_json` -- every fitted coefficient, from one loop
  (:func:`coefficient_rows`);
- :func:`finite`, :func:`records` -- strict-JSON values.

Writing files is ``jobs/validate.py``'s job.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cpc_core.estimate.cpc import integer_if_whole
from cpc_core.validation.options import ValidationOptions
from cpc_core.validation.results import ModelFit, Prepared, ValidationResult
from cpc_core.validation.search_interest import score_rule_flips
from cpc_core.validation.specs import variable_label

__all__ = [
    "PUBLIC_INTERVALS",
    "PUBLIC_RATES",
    "FittedModel",
    "finite",
    "fitted_models",
    "ols_frame",
    "public_communes",
    "records",
    "to_json",
    "top_communes",
]

#: Rate columns of the public table (blanked with the small areas in ``suppress`` mode).
PUBLIC_RATES = (
    "cpc_per_1000", "tor_per_1000", "web_adult_per_1000", "youtube_per_1000", "c", "rho",
)  # fmt: skip
#: Interval columns of the uncertainty stage (published where present, blanked like the rates).
PUBLIC_INTERVALS = (
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
    >>> from cpc_core.config.validation_options import ValidationConfig
    >>> from cpc_core.validation.stage import prepare
    >>> public_communes(prepare(t, ValidationConfig()))["cpc_per_1000"].isna().tolist()
    [False, True]
    """
    f = prepared.frame
    keep = [c for c in ("name", "city") if c in f]
    out = f[keep + ["population", "small_area", "small_area_reason"]].copy()
    suppress = prepared.disclosure["mode"] == "suppress"
    out["suppressed"] = f["small_area"] & suppress
    for col in PUBLIC_RATES:
        out[col] = f[col].where(~out["suppressed"])
    # the uncertainty of a rate discloses as much as the rate: blanked with it
    for col in PUBLIC_INTERVALS:
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
    >>> from cpc_core.config.validation_options import ValidationConfig
    >>> from cpc_core.validation.stage import prepare
    >>> top_communes(prepare(t, ValidationConfig()), 2)
    ['a', 'c']
    """
    f = prepared.frame
    ok = f.loc[~f["small_area"] & f[by].notna(), by]
    return ok.sort_values(ascending=False, kind="stable").head(n).index.tolist()


def finite(x) -> float | None:
    """JSON-safe float (NaN and infinities become None).

    >>> finite(float("nan")), finite(2)
    (None, 2.0)
    """
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def records(df: pd.DataFrame) -> list[dict]:
    """Rows of ``df`` as JSON-safe dicts (numpy scalars as Python, NaN and NA as None)."""
    out = []
    for row in df.to_dict(orient="records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, bool | np.bool_):
                clean[str(k)] = bool(v)
            elif isinstance(v, int | np.integer):
                clean[str(k)] = int(v)
            elif isinstance(v, float | np.floating):
                clean[str(k)] = finite(v)
            elif v is None or v is pd.NA:
                clean[str(k)] = None
            else:
                clean[str(k)] = str(v)
        out.append(clean)
    return out


@dataclass(frozen=True, eq=False)
class FittedModel:
    """One fitted model of a regression table, its coefficients as plain records.

    Attributes
    ----------
    table : str
        The table's key.
    column : int
        1-based column of the model in its table.
    fit : ModelFit
    dependent_label : str
    coefficients : list of dict
        One per term: ``term``, ``label``, ``coef``, ``se``, ``statistic``, ``p_value``,
        ``ci_lower``, ``ci_upper``.
    note : str
        The table's omission note (:attr:`TableResult.omission_note`).
    """

    table: str
    column: int
    fit: ModelFit
    dependent_label: str
    coefficients: list[dict]
    note: str


def fitted_models(result: ValidationResult, conf_level: float, outcome_label: str,
                  lag_h: int | None = None, cpc_lag_h: int | None = None) -> Iterator[FittedModel]:  # fmt: skip
    """Every fitted model of every regression table with its coefficients, in table order.

    The one coefficient loop behind :func:`ols_frame` (long CSV) and :func:`to_json`.
    """
    for key, tab in result.tables.items():
        for i, fit in enumerate(tab.fits, start=1):
            r = fit.result
            coef = r.to_frame()
            ci = r.conf_int(alpha=1 - conf_level)
            terms = [
                {"term": t, "label": variable_label(t, outcome_label, lag_h, cpc_lag_h),
                 "coef": coef.at[t, "coef"], "se": coef.at[t, "se"],
                 "statistic": coef.at[t, "statistic"], "p_value": coef.at[t, "p_value"],
                 "ci_lower": ci.at[t, "lower"], "ci_upper": ci.at[t, "upper"]}
                for t in coef.index
            ]  # fmt: skip
            yield FittedModel(key, i, fit, variable_label(r.y, outcome_label, lag_h, cpc_lag_h),
                              terms, tab.omission_note)  # fmt: skip


def ols_frame(
    result: ValidationResult,
    config: ValidationOptions,
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
    >>> from cpc_core.config.validation_options import ValidationConfig
    >>> ols_frame(ValidationResult(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), {}, ()),
    ...           ValidationConfig()).empty
    True
    """
    rows = [
        {"table": m.table, "column": m.column, "model": m.fit.result.name,
         "dependent": m.dependent_label, **c, "nobs": m.fit.result.nobs,
         "rsquared": m.fit.result.rsquared, "rsquared_adj": m.fit.result.rsquared_adj,
         "cov_type": m.fit.result.cov_type, "note": m.note}
        for m in fitted_models(result, config.conf_level, config.outcome_label, lag_h, cpc_lag_h)
        for c in m.coefficients
    ]  # fmt: skip
    cols = ["table", "column", "model", "dependent", "term", "label", "coef", "se", "statistic",
            "p_value", "ci_lower", "ci_upper", "nobs", "rsquared", "rsquared_adj", "cov_type",
            "note"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def to_json(prepared: Prepared, result: ValidationResult, config: ValidationOptions) -> dict:
    """The machine-readable results (``tables.json``; schema in docs/outputs-validation.md).

    NaN and infinities become ``null``, so the output is strict JSON.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> t = pd.DataFrame({"commune": list("abcdefgh"), "population": 5000,
    ...                   "tor": rng.lognormal(9, 1, 8), "web_adult": rng.lognormal(12, 1, 8),
    ...                   "youtube": rng.lognormal(16, 1, 8), "rho": rng.normal(0.2, 0.05, 8),
    ...                   "n_tiles": 5, "sexual_violence_per_1000": rng.gamma(2, 1, 8)})
    >>> from cpc_core.config.validation_options import ValidationConfig
    >>> from cpc_core.validation.stage import compute, prepare
    >>> cfg = ValidationConfig()
    >>> p = prepare(t, cfg)
    >>> sorted(to_json(p, compute(p, cfg), cfg))[:4]
    ['cpc_lag_h', 'dependent_tests', 'disclosure', 'invalid_values']
    """
    lag = prepared.lag_h
    table1 = {
        q: {k: (int(v) if k in ("n", "n_missing") else finite(v)) for k, v in row.items()}
        for q, row in result.table1.to_dict(orient="index").items()
    }
    ols = []
    for m in fitted_models(result, config.conf_level, config.outcome_label, lag, prepared.cpc_lag_h):
        r = m.fit.result
        ols.append({
            "table": m.table, "column": m.column, "model": r.name, "dependent": r.y,
            "dependent_label": m.dependent_label, "cov_type": r.cov_type, "use_t": r.use_t,
            "nobs": r.nobs, "rsquared": finite(r.rsquared), "rsquared_adj": finite(r.rsquared_adj),
            "df_resid": finite(r.df_resid), "sample": m.fit.sample,
            "dropped_regressors": list(m.fit.dropped_regressors),
            "coefficients": [{k: v if k in ("term", "label") else finite(v) for k, v in c.items()}
                             for c in m.coefficients],
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
                k: finite(v) for k, v in prepared.pca.explained_variance_ratio.items()
            },
            "loadings": {
                term: {k: finite(v) for k, v in row.items()}
                for term, row in prepared.pca.loadings.to_dict(orient="index").items()
            },
            "covariates": list(prepared.pcs),
            "ddof": int(prepared.pca.ddof),
            "terms": [str(t) for t in (*prepared.pca.loadings.index, *prepared.pca.dropped_terms)],
            "excluded_columns": {str(c): str(why) for c, why in prepared.pca.excluded_columns},
            "sign_convention": "largest absolute loading positive",
            "opposite_under_score_rule": score_rule_flips(prepared.pca),
            "scores": {str(r): {k: finite(v) for k, v in row.items()}
                       for r, row in prepared.pca.scores.to_dict(orient="index").items()},
        }
    return {
        "schema": "cpc.validation/1",
        "table1": table1,
        "spearman": records(result.spearman),
        "dependent_tests": records(result.dependent),
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
