"""Google Trends search interest as regional covariates (method, section 5; Figure 2).

A region x term table of popularity values is reduced to principal components: all-zero terms
are dropped (reported), the rest standardised to z-scores, and a PCA with three components is
computed from the singular value decomposition of the standardised table. The region scores
are then copied to the departments of each region; the study keeps PC1 and PC3.

Sign convention
---------------
A principal component is defined only up to its sign. Here each component's loading vector is
flipped so that its entry of largest absolute value is positive (the first such term, in column
order, on an exact tie). The loadings depend on the regions only through the covariance
matrix, so the convention -- and every score -- is unchanged when the regions are reordered.
The published figure may use the opposite sign for some component; only the sign of that
covariate's regression coefficient changes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "SearchPCA",
    "regions_to_departments",
    "search_interest_pca",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchPCA:
    """Result of :func:`search_interest_pca`.

    Attributes
    ----------
    scores : pandas.DataFrame
        Region x component (``PC1``...), the standardised table projected on the loadings.
    loadings : pandas.DataFrame
        Term x component, unit-length columns (eigenvectors of the correlation matrix).
    explained_variance_ratio : pandas.Series
        Per component, its eigenvalue over the sum of all eigenvalues (the number of kept
        terms, for z-scores).
    dropped_terms : tuple of str
        All-zero terms removed before standardising.
    mean, std : pandas.Series
        Per kept term, the centre and scale used for the z-scores.
    ddof : int
        Delta degrees of freedom of ``std`` (and of the eigenvalues).
    """

    scores: pd.DataFrame
    loadings: pd.DataFrame
    explained_variance_ratio: pd.Series
    dropped_terms: tuple[str, ...]
    mean: pd.Series
    std: pd.Series
    ddof: int


def _fix_signs(vectors: np.ndarray) -> np.ndarray:
    """Flip each column so that its entry of largest absolute value is positive."""
    pivot = np.argmax(np.abs(vectors), axis=0)  # first maximum on exact ties
    signs = np.sign(vectors[pivot, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


def search_interest_pca(table: pd.DataFrame, n_components: int = 3, ddof: int = 1) -> SearchPCA:
    """PCA of standardised search-term popularity per region.

    Parameters
    ----------
    table : pandas.DataFrame
        Regions as rows (the index names them), search terms as columns, finite non-negative
        popularity values (e.g. Google Trends' 0-100 scale pooled over 2017-2021).
    n_components : int
        Components to keep (the study: 3); at most the number of kept terms and of regions.
    ddof : int
        Delta degrees of freedom for the standard deviation; 1 (the default) matches R's
        ``scale()`` and ``prcomp(scale. = TRUE)``. The loadings, the ratios and the signs do
        not depend on it; the scores scale with ``sqrt((n - 1) / (n - ddof))``.

    Returns
    -------
    SearchPCA

    Raises
    ------
    ValueError
        On missing or negative values, on a constant term that is not all zero (it cannot be
        standardised), or on too many components.

    Examples
    --------
    >>> table = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [2.0, 1.0, 4.0, 3.0],
    ...                       "c": [0.0, 0.0, 0.0, 0.0]}, index=list("WXYZ"))
    >>> pca = search_interest_pca(table, n_components=2)
    >>> pca.dropped_terms
    ('c',)
    >>> pca.explained_variance_ratio.round(2).tolist()
    [0.8, 0.2]
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
    if table.index.has_duplicates or table.columns.has_duplicates:
        raise ValueError("regions (index) and terms (columns) must be unique")
    values = table.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError("the popularity table has missing or infinite values")
    if (values < 0).any():
        raise ValueError("popularity values cannot be negative")

    all_zero = (values == 0).all(axis=0)
    dropped = tuple(str(term) for term in table.columns[all_zero])
    if dropped:
        logger.info("dropping %d all-zero search terms: %s", len(dropped), ", ".join(dropped))
    kept = table.columns[~all_zero]
    values = values[:, ~all_zero]

    n_regions, n_terms = values.shape
    if not 1 <= n_components <= min(n_terms, n_regions - 1):
        raise ValueError(
            f"n_components must lie in [1, {min(n_terms, n_regions - 1)}] for {n_regions} "
            f"regions and {n_terms} non-zero terms, got {n_components}"
        )
    if not 0 <= ddof < n_regions:
        raise ValueError(f"ddof must lie in [0, {n_regions - 1}], got {ddof}")
    mean = values.mean(axis=0)
    std = values.std(axis=0, ddof=ddof)
    constant = std == 0
    if constant.any():
        raise ValueError(f"constant terms cannot be standardised: {list(kept[constant])}")
    z = (values - mean) / std

    # z = U S Vt: the rows of Vt are the eigenvectors of the covariance matrix z'z / (n - ddof)
    # with eigenvalues S**2 / (n - ddof); the SVD avoids forming z'z (squared condition).
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    variances = singular**2
    loadings = _fix_signs(vt[:n_components].T)
    scores = z @ loadings
    names = [f"PC{i + 1}" for i in range(n_components)]
    ratio = variances[:n_components] / variances.sum()
    logger.info(
        "search-interest PCA: %s explain %s of the variance",
        ", ".join(names),
        ", ".join(f"{r:.1%}" for r in ratio),
    )
    return SearchPCA(
        scores=pd.DataFrame(scores, index=table.index.copy(), columns=names),
        loadings=pd.DataFrame(loadings, index=kept.copy(), columns=names),
        explained_variance_ratio=pd.Series(ratio, index=names, name="explained_variance_ratio"),
        dropped_terms=dropped,
        mean=pd.Series(mean, index=kept.copy(), name="mean"),
        std=pd.Series(std, index=kept.copy(), name="std"),
        ddof=ddof,
    )


def regions_to_departments(
    scores: pd.DataFrame,
    mapping: Mapping[str, Iterable[str]],
    allow_missing_regions: bool = False,
) -> pd.DataFrame:
    """Copy each region's values to its departments.

    Parameters
    ----------
    scores : pandas.DataFrame
        Values indexed by region (e.g. :attr:`SearchPCA.scores`).
    mapping : mapping of region -> department codes
        E.g. ``{"Bretagne": ["22", "29", "35", "56"], ...}``; codes are strings (``"01"``,
        ``"2A"``) and a department may belong to one region only.
    allow_missing_regions : bool
        Regions of ``mapping`` absent from ``scores`` raise by default; if True their
        departments are left out (and logged).

    Returns
    -------
    pandas.DataFrame
        One row per department (index ``department``, sorted), the region's values and a
        ``region`` column.

    Raises
    ------
    ValueError
        For a region of ``scores`` without departments in ``mapping``, a department listed
        under two regions, or (by default) a mapped region missing from ``scores``.

    Examples
    --------
    >>> scores = pd.DataFrame({"PC1": [1.5, -0.5]}, index=["Bretagne", "Corse"])
    >>> out = regions_to_departments(scores, {"Bretagne": ["22", "29"], "Corse": ["2A", "2B"]})
    >>> out["PC1"].to_dict()
    {'22': 1.5, '29': 1.5, '2A': -0.5, '2B': -0.5}
    """
    if scores.index.has_duplicates:
        raise ValueError("scores has duplicate regions")
    bare = [r for r, codes in mapping.items() if isinstance(codes, str)]
    if bare:
        raise TypeError(f"mapping values must be collections of codes, not strings: {bare}")
    unmapped = [r for r in scores.index if not list(mapping.get(r, ()))]
    if unmapped:
        raise ValueError(f"regions without departments in the mapping: {unmapped}")
    absent = [r for r in mapping if r not in scores.index]
    if absent:
        if not allow_missing_regions:
            raise ValueError(f"mapped regions missing from scores: {absent}")
        logger.warning("regions missing from scores, departments left out: %s", absent)

    rows: dict[str, str] = {}
    for region in scores.index:
        for department in mapping[region]:
            department = str(department)
            if department in rows:
                raise ValueError(
                    f"department {department!r} listed under {rows[department]!r} and {region!r}"
                )
            rows[department] = region
    departments = pd.Index(sorted(rows), name="department")
    regions = [rows[d] for d in departments]
    out = scores.loc[regions].set_axis(departments, axis=0)
    out["region"] = regions
    return out
