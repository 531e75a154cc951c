"""The search-interest covariates: PCA of the Google Trends table, mapped to communes.

docs/method.md section 5: the region x term popularity is reduced by
:func:`~cpc_core.validation.search_interest.search_interest_pca`; the kept components (PC1 and
PC3 by default) are mapped region -> department -> commune and enter the regressions.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from cpc_core.errors import InputDataError, UsageError, clip
from cpc_core.validation.results import Note, RoleError
from cpc_core.validation.search_interest import (
    SearchPCA,
    regions_to_departments,
    search_interest_pca,
    select_terms,
)

if TYPE_CHECKING:
    from cpc_core.config.validation_options import SearchInterestConfig

__all__ = ["search_covariates"]

logger = logging.getLogger(__name__)


def search_covariates(
    search: pd.DataFrame, sc: SearchInterestConfig, frame: pd.DataFrame
) -> tuple[SearchPCA, pd.DataFrame, pd.Series, list[Note]]:
    """PCA of the region x term table, mapped region -> department -> commune.

    Parameters
    ----------
    search : pandas.DataFrame
        Region x term popularity, the region in column ``sc.region``.
    sc : SearchInterestConfig
        Or any object with its attributes (``path``, ``region``, ``terms``, ``exclude``,
        ``n_components``, ``ddof``, ``keep``, ``departments``).
    frame : pandas.DataFrame
        The analysis frame, indexed by commune, with ``department`` and/or ``region``.

    Returns
    -------
    pca : SearchPCA
    covariates : pandas.DataFrame
        The kept components per commune (``sc.keep``), NaN where unmapped.
    why : pandas.Series
        Why a commune has no component ("" where it has).
    notes : list of Note

    Raises
    ------
    RoleError
        No region column.
    InputDataError
        No search-term column, or a missing, non-numeric or infinite value.
    UsageError
        ``terms``/``exclude`` name columns that do not exist.
    """
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
