"""The demo's check of its own estimates against the generator's planted truth.

``cpc synth`` writes the parameters it planted under ``<data>/truth/`` (docs/synthetic-data.md):
per commune the planted ``rho``, the correlation realised on the latent series
(``rho_latent``, what a perfect estimator recovers up to integer rounding) and the planted
``cpc_per_1000``. :func:`truth_check` compares a commune table with them and returns the rows,
the verdict and the figure that the report shows under "Check against the planted truth".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from cpc_core.render.report import ReportFigure, TruthCheck

__all__ = ["MAX_MEDIAN_ERROR", "MIN_RANK_CORRELATION", "find_truth", "truth_check"]

logger = logging.getLogger(__name__)

#: Tolerances of the verdict. The pipeline's test recovers rho_latent to a median error under
#: 0.005 on its data; the demo's shorter, smaller data get twice that. The ranking of the
#: communes by cpc per 1000 must agree with the planted one to a Spearman correlation of 0.9.
MAX_MEDIAN_ERROR = 0.01
MIN_RANK_CORRELATION = 0.9


def find_truth(*roots: Path | str | None) -> Path | None:
    """The generator's ``truth/communes.csv`` under one of ``roots`` (or their ``data/``)."""
    for root in roots:
        if root is None:
            continue
        for base in (Path(root), Path(root) / "data"):
            p = base / "truth" / "communes.csv"
            if p.is_file():
                return p
    return None


def truth_check(estimated: pd.DataFrame, truth: pd.DataFrame, *, table_lag_h: int | None = None,
                planted_lag_h: int | None = None, dpi: int = 110) -> TruthCheck:  # fmt: skip
    """Compare estimated rho_j and cpc per 1000 with the planted values.

    Parameters
    ----------
    estimated : pandas.DataFrame
        Indexed by commune code, with ``rho`` and ``cpc_per_1000``.
    truth : pandas.DataFrame
        ``truth/communes.csv``: ``commune, rho, rho_latent, cpc_per_1000``.
    table_lag_h, planted_lag_h : int, optional
        The lag the table was estimated at and the generator's lag; a difference is said.
    dpi : int
        Of the figure.

    Returns
    -------
    TruthCheck

    Examples
    --------
    >>> t = pd.DataFrame({"commune": list("abcd"), "rho": [0.1, 0.2, 0.3, 0.4],
    ...                   "rho_latent": [0.1, 0.2, 0.3, 0.4], "cpc_per_1000": [1.0, 2, 3, 4]})
    >>> e = pd.DataFrame({"rho": [0.11, 0.19, 0.3, 0.41], "cpc_per_1000": [1.1, 2, 2.9, 5]},
    ...                  index=list("abcd"))
    >>> check = truth_check(e, t, dpi=30)
    >>> check.verdict.startswith("Recovered"), dict(check.rows)["communes compared"]
    (True, '4')
    """
    from cpc_core.render import figures
    from cpc_core.render.tables import format_sig

    t = truth.assign(commune=truth["commune"].astype(str)).set_index("commune")
    e = estimated.copy()
    e.index = e.index.astype(str)
    both = e[["rho", "cpc_per_1000"]].merge(
        t[["rho", "rho_latent", "cpc_per_1000"]], left_index=True, right_index=True,
        how="inner", suffixes=("_est", "_true"),
    )
    ok_rho = both[["rho_est", "rho_true", "rho_latent"]].notna().all(axis=1)
    ok_cpc = both[["cpc_per_1000_est", "cpc_per_1000_true"]].notna().all(axis=1)
    d = both.loc[ok_rho]
    err = (d["rho_est"] - d["rho_latent"]).abs()
    med = float(err.median()) if len(d) else float("nan")
    r = float(np.corrcoef(d["rho_est"], d["rho_true"])[0, 1]) if len(d) > 2 else float("nan")
    bias = float((d["rho_est"] - d["rho_true"]).mean()) if len(d) else float("nan")
    c = both.loc[ok_cpc]
    import scipy.stats  # only where a truth check runs: the report's import stays light

    rank = (float(scipy.stats.spearmanr(c["cpc_per_1000_est"], c["cpc_per_1000_true"]).statistic)
            if len(c) > 2 else float("nan"))  # fmt: skip
    rows = [
        ("communes compared", str(len(both))),
        ("  with an estimated and a planted rho_j", str(int(ok_rho.sum()))),
        ("correlation of estimated and planted rho_j (Pearson)", format_sig(r)),
        ("mean error of rho_j against the planted value", format_sig(bias)),
        ("median |error| against the realised rho_j (rho_latent)", format_sig(med)),
        ("rank correlation of cpc per 1000, estimated vs planted (Spearman)", format_sig(rank)),
    ]
    if planted_lag_h is not None:
        rows.append(("planted lag / the table's lag", f"{planted_lag_h:+d} h / "
                     + (f"{table_lag_h:+d} h" if table_lag_h is not None else "unknown")))  # fmt: skip
    good = med <= MAX_MEDIAN_ERROR and rank >= MIN_RANK_CORRELATION
    tol = (f"(tolerances: median |error| <= {MAX_MEDIAN_ERROR:g}, rank correlation >= "
           f"{MIN_RANK_CORRELATION:g})")  # fmt: skip
    if good:
        verdict = f"Recovered: the estimates reproduce the planted truth {tol}."
    else:
        verdict = f"NOT recovered: the estimates miss the planted truth {tol}."
        logger.warning("truth check failed: median error %.4g, rank correlation %.4g", med, rank)
    if planted_lag_h is not None and table_lag_h is not None and planted_lag_h != table_lag_h:
        verdict += (f" The table was estimated at lag {table_lag_h:+d} h, the data were "
                    f"generated with lag {planted_lag_h:+d} h.")  # fmt: skip
    fig = figures.truth_scatter(d["rho_true"], d["rho_est"], c["cpc_per_1000_true"],
                                c["cpc_per_1000_est"])  # fmt: skip
    png = figures.render(fig, "png", dpi=dpi)
    caption = (f"Left: estimated against planted rho_j for {len(d)} communes (the line is "
               f"y = x). Right: cpc per 1000, estimated against planted, log scales (Spearman "
               f"{format_sig(rank)}). Synthetic data only.")  # fmt: skip
    return TruthCheck(tuple(rows), verdict, ReportFigure("truth_check", "Check: recovered vs planted",
                                                         caption, png))  # fmt: skip
