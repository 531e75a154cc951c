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
covariate's regression coefficient changes. The authors used scikit-learn's ``PCA``: since
scikit-learn 1.5 it applies this same rule (``svd_flip`` on the components); before, it made
each component's largest absolute *score* (a region) positive. :func:`score_rule_flips` names
the components whose sign differs between the two rules, for the figure's caption.

Which columns are terms
-----------------------
A raw export carries more than terms (the authors' had a region code, ``code_reg``). With no
explicit ``terms``, :func:`select_terms` leaves out the region column, the ``exclude`` list,
columns named like codes or identifiers (``code_reg``, ``id``, ``insee``...) and columns
without a single number (region names), and says which, so that nothing enters the PCA
silently.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "SearchPCA",
    "regions_to_departments",
    "score_rule_flips",
    "search_interest_pca",
    "select_terms",
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
    excluded_columns : tuple of (str, str)
        Columns of the raw table left out as not being terms, with the reason
        (:func:`select_terms`; filled by the caller).
    """

    scores: pd.DataFrame
    loadings: pd.DataFrame
    explained_variance_ratio: pd.Series
    dropped_terms: tuple[str, ...]
    mean: pd.Series
    std: pd.Series
    ddof: int
    excluded_columns: tuple[tuple[str, str], ...] = ()


#: Name tokens of columns that hold codes or identifiers, never search terms.
ID_TOKENS = frozenset({"code", "codes", "id", "ids", "insee", "cog", "siren", "nuts", "iso"})


def _looks_like_id(name: str) -> bool:
    return any(tok in ID_TOKENS for tok in re.split(r"[^0-9a-z]+", str(name).lower()) if tok)


def select_terms(
    table: pd.DataFrame,
    region: str,
    terms: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
) -> tuple[list[str], dict[str, str]]:
    """The search-term columns of a raw region x term export, and what was left out, and why.

    Parameters
    ----------
    table : pandas.DataFrame
        The raw export, one row per region.
    region : str
        The region column (never a term).
    terms : sequence of str, optional
        The terms, explicitly: used as given (nothing is detected).
    exclude : sequence of str
        Columns that are not terms.

    Returns
    -------
    (list of str, dict)
        The term columns in file order, and ``{column: reason}`` for every other column
        except ``region``.

    Raises
    ------
    KeyError
        A column of ``terms`` or ``exclude`` is not in the table (the message lists them).

    Examples
    --------
    >>> t = pd.DataFrame({"region": ["A", "B"], "code_reg": [11, 24], "nom": ["x", "y"],
    ...                   "porn": [50, 20], "sexe mineur": [0, 3]})
    >>> select_terms(t, "region")
    (['porn', 'sexe mineur'], {'code_reg': 'named like a code or identifier', 'nom': 'no numeric value'})
    """
    cols = [c for c in table.columns if c != region]
    unknown = [c for c in (*(terms or ()), *exclude) if c not in cols]
    if unknown:
        raise KeyError(f"not in the table: {unknown}; columns found: {cols}")
    left: dict[str, str] = {c: "excluded by configuration" for c in exclude}
    if terms is not None:
        chosen = [c for c in cols if c in set(terms) and c not in left]
        left.update(
            {c: "not among the configured terms" for c in cols if c not in chosen and c not in left}
        )
        return chosen, left
    chosen = []
    for c in cols:
        if c in left:
            continue
        if _looks_like_id(c):
            left[c] = "named like a code or identifier"
        elif table[c].notna().any() and pd.to_numeric(table[c], errors="coerce").isna().all():
            left[c] = "no numeric value"
        else:
            chosen.append(c)
    return chosen, left


def score_rule_flips(pca: SearchPCA) -> list[str]:
    """Components whose sign differs under the largest-absolute-score rule.

    scikit-learn before 1.5 flipped each component so that the region with the largest
    absolute score scores positive; cpc (and scikit-learn >= 1.5) makes the largest absolute
    loading positive. Returns the components the two rules orient oppositely.

    Examples
    --------
    >>> table = pd.DataFrame({"a": [1.0, 2.0, 3.0, 9.0], "b": [2.0, 1.0, 4.0, 3.0]}, index=list("WXYZ"))
    >>> score_rule_flips(search_interest_pca(table, n_components=2, ddof=0))
    ['PC2']
    """
    out = []
    for pc in pca.scores.columns:
        s = pca.scores[pc].to_numpy()
        if s[np.argmax(np.abs(s))] < 0:
            out.append(str(pc))
    return out


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
