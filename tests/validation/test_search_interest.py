"""Tests for cpc_core.validation.search_interest: PCA against an independent eigen-decomposition."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from cpc_core.validation.search_interest import (
    SearchPCA,
    regions_to_departments,
    score_rule_flips,
    search_interest_pca,
    select_terms,
)

REGIONS = [f"R{i:02d}" for i in range(22)]  # the 22 pre-2016 regions
TERMS = [f"term{i:02d}" for i in range(18)]


def _table(seed: int = 0, zero_terms: tuple[str, ...] = ("term03", "term11")) -> pd.DataFrame:
    """22 regions x 18 terms of Trends-like popularity (0-100), correlated, some all-zero."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(len(REGIONS), 3)) * [3.0, 2.0, 1.0]
    weights = rng.normal(size=(3, len(TERMS)))
    raw = 50 + 8 * (factors @ weights) + rng.normal(scale=4.0, size=(len(REGIONS), len(TERMS)))
    table = pd.DataFrame(np.clip(np.round(raw), 0, 100), index=REGIONS, columns=TERMS)
    table[list(zero_terms)] = 0.0
    return table


def _reference_pca(table: pd.DataFrame, n_components: int, ddof: int = 1):
    """Eigen-decomposition of the covariance matrix of the z-scores, written independently."""
    values = table.loc[:, (table != 0).any()].to_numpy(float)
    z = (values - values.mean(0)) / values.std(0, ddof=ddof)
    cov = np.cov(z, rowvar=False, ddof=ddof)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    vectors = eigvec[:, :n_components].copy()
    for j in range(n_components):
        if vectors[np.argmax(np.abs(vectors[:, j])), j] < 0:
            vectors[:, j] *= -1
    return z @ vectors, vectors, eigval[:n_components] / eigval.sum(), eigval[:n_components]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pca_matches_covariance_eigendecomposition(seed):
    table = _table(seed)
    pca = search_interest_pca(table)
    scores, loadings, ratio, eigval = _reference_pca(table, 3)
    assert isinstance(pca, SearchPCA)
    assert list(pca.scores.columns) == ["PC1", "PC2", "PC3"]
    assert pca.scores.index.tolist() == REGIONS
    assert pca.loadings.index.tolist() == [t for t in TERMS if t not in ("term03", "term11")]
    np.testing.assert_allclose(pca.loadings.to_numpy(), loadings, atol=1e-10)
    np.testing.assert_allclose(pca.scores.to_numpy(), scores, atol=1e-10)
    np.testing.assert_allclose(pca.explained_variance_ratio.to_numpy(), ratio, rtol=1e-10)
    # The score variances are the eigenvalues; the scores are uncorrelated.
    np.testing.assert_allclose(pca.scores.var(ddof=1).to_numpy(), eigval, rtol=1e-10)
    off_diagonal = np.corrcoef(pca.scores.to_numpy(), rowvar=False)[np.triu_indices(3, 1)]
    np.testing.assert_allclose(off_diagonal, 0.0, atol=1e-10)


def test_pca_sign_convention():
    pca = search_interest_pca(_table())
    loadings = pca.loadings.to_numpy()
    pivots = loadings[np.argmax(np.abs(loadings), axis=0), np.arange(3)]
    assert (pivots > 0).all()
    np.testing.assert_allclose(np.linalg.norm(loadings, axis=0), 1.0)


@pytest.mark.parametrize("seed", range(5))
def test_pca_stable_under_row_permutation(seed):
    table = _table()
    pca = search_interest_pca(table)
    order = np.random.default_rng(seed).permutation(len(REGIONS))
    shuffled = search_interest_pca(table.iloc[order])
    pd.testing.assert_frame_equal(shuffled.loadings, pca.loadings, atol=1e-12, rtol=0)
    pd.testing.assert_frame_equal(
        shuffled.scores.loc[REGIONS], pca.scores, check_exact=False, atol=1e-10, rtol=0
    )


def test_pca_drops_and_reports_all_zero_terms(caplog):
    with caplog.at_level(logging.INFO, logger="cpc_core.validation.search_interest"):
        pca = search_interest_pca(_table(zero_terms=("term00", "term17")))
    assert pca.dropped_terms == ("term00", "term17")
    assert "term00" not in pca.loadings.index and "term00" not in pca.mean.index
    assert "dropping 2 all-zero search terms: term00, term17" in caplog.text


def test_pca_standardisation_and_ddof():
    table = _table()
    pca1 = search_interest_pca(table)
    pca0 = search_interest_pca(table, ddof=0)
    kept = pca1.loadings.index
    np.testing.assert_allclose(pca1.mean, table[kept].mean())
    np.testing.assert_allclose(pca1.std, table[kept].std(ddof=1))
    np.testing.assert_allclose(pca0.std, table[kept].std(ddof=0))
    n = len(REGIONS)
    # Loadings, ratios and signs do not depend on ddof; the scores scale.
    pd.testing.assert_frame_equal(pca0.loadings, pca1.loadings, atol=1e-12, rtol=0)
    np.testing.assert_allclose(pca0.explained_variance_ratio, pca1.explained_variance_ratio)
    np.testing.assert_allclose(pca0.scores, pca1.scores * np.sqrt(n / (n - 1)))
    assert pca1.ddof == 1 and pca0.ddof == 0


def test_pca_is_pure():
    table = _table()
    before = table.copy()
    search_interest_pca(table)
    pd.testing.assert_frame_equal(table, before)


def test_pca_rejects_bad_tables():
    table = _table()
    holed = table.copy()
    holed.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="missing"):
        search_interest_pca(holed)
    with pytest.raises(ValueError, match="negative"):
        search_interest_pca(table.assign(term00=-1.0))
    with pytest.raises(ValueError, match="constant"):
        search_interest_pca(table.assign(term00=7.0))
    with pytest.raises(ValueError, match="n_components"):
        search_interest_pca(table.iloc[:3])
    with pytest.raises(ValueError, match="n_components"):
        search_interest_pca(table, n_components=0)
    with pytest.raises(TypeError):
        search_interest_pca(table.to_numpy())


# ---------------------------------------------------------------------------------------------
# regions -> departments
# ---------------------------------------------------------------------------------------------

MAPPING = {
    "Bretagne": ["22", "29", "35", "56"],
    "Corse": ["2A", "2B"],
    "Alsace": ["67", "68"],
}


@pytest.fixture
def scores() -> pd.DataFrame:
    return pd.DataFrame(
        {"PC1": [1.0, -2.0, 0.5], "PC3": [0.1, 0.2, 0.3]}, index=["Bretagne", "Corse", "Alsace"]
    )


def test_regions_to_departments(scores):
    out = regions_to_departments(scores, MAPPING)
    assert out.index.name == "department"
    assert out.index.tolist() == ["22", "29", "2A", "2B", "35", "56", "67", "68"]
    assert out.loc["2A", "PC1"] == -2.0 and out.loc["68", "PC3"] == 0.3
    pd.testing.assert_series_equal(
        out.groupby("region")["PC1"].first(), scores["PC1"].sort_index(), check_names=False
    )
    assert len(out) == sum(len(v) for v in MAPPING.values())


def test_regions_to_departments_errors(scores, caplog):
    with pytest.raises(ValueError, match="without departments"):
        regions_to_departments(scores, {k: v for k, v in MAPPING.items() if k != "Corse"})
    with pytest.raises(ValueError, match="without departments"):
        regions_to_departments(scores, {**MAPPING, "Corse": []})
    with pytest.raises(ValueError, match="listed under"):
        regions_to_departments(scores, {**MAPPING, "Alsace": ["67", "22"]})
    with pytest.raises(TypeError, match="strings"):
        regions_to_departments(scores, {**MAPPING, "Alsace": "67"})
    bigger = {**MAPPING, "Lorraine": ["54", "55", "57", "88"]}
    with pytest.raises(ValueError, match="missing from scores"):
        regions_to_departments(scores, bigger)
    with caplog.at_level(logging.WARNING, logger="cpc_core.validation.search_interest"):
        out = regions_to_departments(scores, bigger, allow_missing_regions=True)
    assert "54" not in out.index and "Lorraine" in caplog.text


@pytest.mark.parametrize("ddof", [0, 1])
def test_pca_scores_against_a_hand_svd(ddof):
    """Scores, loadings and ratios against numpy's SVD of z-scores written out by hand, for the
    authors' ddof = 0 (scikit-learn's StandardScaler) and R's ddof = 1; the score columns
    are the left singular vectors times the singular values, sign-oriented by the loadings."""
    table = _table(4)
    nz = table.loc[:, (table != 0).any()]
    x = nz.to_numpy(float)
    n = x.shape[0]
    sd = np.sqrt(((x - x.mean(0)) ** 2).sum(0) / (n - ddof))
    z = (x - x.mean(0)) / sd
    u, sv, vt = np.linalg.svd(z, full_matrices=False)
    flip = np.sign(vt[np.arange(3), np.argmax(np.abs(vt[:3]), axis=1)])
    scores = u[:, :3] * sv[:3] * flip
    pca = search_interest_pca(table, ddof=ddof)
    np.testing.assert_allclose(pca.scores.to_numpy(), scores, atol=1e-10)
    np.testing.assert_allclose(pca.loadings.to_numpy(), (vt[:3] * flip[:, None]).T, atol=1e-12)
    np.testing.assert_allclose(pca.explained_variance_ratio, sv[:3] ** 2 / (sv**2).sum())
    # the score variance (ddof of the scaling) is the eigenvalue of the correlation matrix
    np.testing.assert_allclose(
        pca.scores.to_numpy().var(axis=0, ddof=ddof), sv[:3] ** 2 / (n - ddof)
    )
    # the two choices differ in scale only
    other = search_interest_pca(table, ddof=1 - ddof)
    assert not np.allclose(other.scores, pca.scores)
    # the sign comparison with the largest-absolute-score rule, by hand
    by_score = [f"PC{j + 1}" for j in range(3) if scores[np.argmax(np.abs(scores[:, j])), j] < 0]
    assert score_rule_flips(pca) == by_score


def test_select_terms_leaves_out_ids_and_text_and_says_why():
    raw = _table(0).reset_index(names="region")
    raw.insert(1, "code_reg", np.arange(11, 33))  # numeric, but an identifier
    raw["nom_region"] = [f"Region {i}" for i in range(22)]  # text
    raw["id"] = range(22)
    terms, left = select_terms(raw, "region")
    assert terms == TERMS
    assert left == {
        "code_reg": "named like a code or identifier",
        "nom_region": "no numeric value",
        "id": "named like a code or identifier",
    }
    # explicit terms win; exclude removes; unknown names are an error naming them
    terms, left = select_terms(raw, "region", terms=["term01", "term02"])
    assert terms == ["term01", "term02"] and left["code_reg"] == "not among the configured terms"
    terms, left = select_terms(raw, "region", exclude=["term05"])
    assert "term05" not in terms and left["term05"] == "excluded by configuration"
    with pytest.raises(KeyError, match="term99"):
        select_terms(raw, "region", terms=["term99"])
