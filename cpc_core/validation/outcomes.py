"""Outcome models beside the paper's OLS (issue #15: zero inflation, spatial dependence).

The hurdle, count and spatial models of the outcome, fitted on Table 3's outcome model
(:func:`fit_outcome_models`), and their ``tables.json`` section (:func:`outcome_models_json`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from cpc_core.validation.derive import standardise_poi
from cpc_core.validation.export import finite, records
from cpc_core.validation.fit import account
from cpc_core.validation.options import ValidationOptions
from cpc_core.validation.results import Note, Prepared, ValidationResult

__all__ = [
    "OUTCOME_TABLE",
    "POSITIVE_TABLE",
    "OutcomeModels",
    "fit_outcome_models",
    "outcome_model_frame",
    "outcome_models_json",
]

logger = logging.getLogger(__name__)

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
                        config: ValidationOptions) -> tuple[pd.DataFrame, tuple[str, ...]] | None:
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
    used, _ = account(prepared, prepared.stats_frame.index, ["outcome", *fit.regressors],
                       tab.spec.filters)
    data = prepared.frame.loc[used]
    if config.standardise_poi and config.poi_scaling == "model_sample":
        data = standardise_poi(data)
    if len(data) != fit.result.nobs:  # pragma: no cover - the same accounting as fit_table
        raise RuntimeError(f"outcome model frame: {len(data)} rows, Table 3 used {fit.result.nobs}")
    return data, fit.regressors


def fit_outcome_models(prepared: Prepared, result: ValidationResult, config: ValidationOptions,
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
        "comparison": records(models.comparison),
        "coefficients": records(models.coefficients),
        "hurdle": None,
        "spatial": None,
        "notes": [n.as_dict() for n in models.notes],
    }
    if h is not None:
        out["hurdle"] = {"positive": h.positive, "nobs": h.nobs, "n_positive": h.n_positive,
                         "zero_wald_stat": finite(h.zero_wald_stat),
                         "zero_wald_p": finite(h.zero_wald_p), "llf": finite(h.llf),
                         "aic": finite(h.aic), "bic": finite(h.bic), "k": h.k,
                         "cov_type": h.cov_type, "logit_cov_type": "HC0"}
    if sp is not None:
        m, w = sp.moran, sp.weights
        out["spatial"] = {
            "moran": {"I": finite(m.I), "expected_I": finite(m.expected_I),
                      "p_upper": finite(m.p_upper), "p_two_sided": finite(m.p_two_sided),
                      "p_sim": finite(m.p_sim), "z_norm": finite(m.z_norm),
                      "p_norm": finite(m.p_norm), "permutations": m.permutations,
                      "seed": m.seed},
            "moran_analytic": {"I": finite(sp.moran_analytic[0]),
                               "z": finite(sp.moran_analytic[1]),
                               "p": finite(sp.moran_analytic[2])},
            "weights": {"kind": w.kind, "n": w.n, "islands": [str(i) for i in w.islands],
                        "attached": w.attached, "mean_neighbours": finite(w.mean_neighbours),
                        "min_neighbours": w.min_neighbours, "max_neighbours": w.max_neighbours},
            "dropped": sp.dropped,
            "fit": records(sp.fit),
        }
    return out
