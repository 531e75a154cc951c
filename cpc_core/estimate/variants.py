"""Comparison of runs over grids and lags (``cpc sweep``): one summary row per grid and lag.

Plain pandas / scipy on the per-area tables of each run; the job reads them and writes the
comparison.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from scipy import stats

from cpc_core.estimate.areas import AREA_COLUMN

__all__ = ["MIN_OUTCOME_AREAS", "lag_summary"]

logger = logging.getLogger(__name__)

#: Fewest areas with an outcome and a positive rate for a Spearman correlation (else NaN).
MIN_OUTCOME_AREAS = 4


def lag_summary(grid: str, rho_by_lag: pd.DataFrame, estimates_by_lag: pd.DataFrame,
                communes: pd.DataFrame, outcome: pd.Series | None = None) -> pd.DataFrame:
    """One row per lag: areas, the distribution of rho_j, and Spearman correlations with an outcome.

    Parameters
    ----------
    grid
        The variant's name (first column).
    rho_by_lag, estimates_by_lag
        The run's ``rho_by_lag`` and ``estimates_by_lag`` tables (``area``, ``lag_h``; ``rho``,
        ``cpc_per_1000``).
    communes
        The run's per-area table, indexed by area code, with ``tor_per_1000``,
        ``web_adult_per_1000`` and ``youtube_per_1000``.
    outcome
        The validation outcome per area code, or None (no Spearman columns).

    Returns
    -------
    pandas.DataFrame
        ``grid, lag_h, n_areas, n_rho, rho_mean, rho_sd, rho_min, rho_q25, rho_median,
        rho_q75, rho_max``; with an outcome also ``spearman_<x>``, ``p_<x>`` for
        x = cpc, tor, web_adult, youtube (Spearman of log x and the outcome over the areas
        with both and x > 0; NaN below :data:`MIN_OUTCOME_AREAS` areas) and ``n_outcome``.

    Examples
    --------
    >>> rbl = pd.DataFrame({"area": ["a", "b"], "lag_h": [0, 0], "rho": [0.2, 0.4]})
    >>> lag_summary("g", rbl, rbl, pd.DataFrame())[["n_rho", "rho_mean"]].to_dict("records")
    [{'n_rho': 2, 'rho_mean': 0.30000000000000004}]
    """
    rows = []
    for lag, g in rho_by_lag.groupby("lag_h"):
        r = g["rho"].dropna()
        row = {"grid": grid, "lag_h": int(lag), "n_areas": int(len(g)), "n_rho": int(len(r)),
               "rho_mean": r.mean(), "rho_sd": r.std(), "rho_min": r.min(), "rho_q25": r.quantile(0.25),
               "rho_median": r.median(), "rho_q75": r.quantile(0.75), "rho_max": r.max()}
        if outcome is not None:
            e = estimates_by_lag[estimates_by_lag["lag_h"] == lag].set_index(AREA_COLUMN)
            y = outcome.reindex(e.index)
            xs = {"cpc": e["cpc_per_1000"], "tor": communes["tor_per_1000"].reindex(e.index),
                  "web_adult": communes["web_adult_per_1000"].reindex(e.index),
                  "youtube": communes["youtube_per_1000"].reindex(e.index)}
            for name, x in xs.items():
                ok = np.isfinite(y) & np.isfinite(x) & (x > 0)
                if ok.sum() >= MIN_OUTCOME_AREAS:
                    res = stats.spearmanr(np.log(x[ok]), y[ok])
                    row[f"spearman_{name}"], row[f"p_{name}"] = float(res.statistic), float(res.pvalue)
                else:
                    row[f"spearman_{name}"], row[f"p_{name}"] = np.nan, np.nan
                row["n_outcome"] = int(ok.sum())
        rows.append(row)
    return pd.DataFrame(rows)
