"""Spatial dependence of the outcome models: weights, Moran's I of residuals, SAR models.

Neighbouring communes share traffic and commuters, so the OLS residuals of the validation
models need not be independent. With PySAL (``libpysal``, ``esda``, ``spreg``):

- :func:`build_weights` -- spatial weights from the area polygons: queen contiguity (default)
  or k nearest neighbours of the centroids; islands (areas without a contiguous neighbour)
  are reported and, by default, attached to their nearest neighbour.
- :func:`moran_test` -- Moran's I with a seeded permutation test (esda) and the normal
  approximation.
- :func:`spatial_models` -- OLS, the spatial error model and the spatial lag model (spreg,
  maximum likelihood or GMM) side by side, plus Moran's I of the OLS residuals, both by
  permutation and by spreg's analytical test for regression residuals.
- :func:`polygon_grid`, :func:`sar_errors` -- a lattice of square polygons and errors from a
  simultaneous autoregressive process ``u = (I - lambda W)^-1 eps``, to plant spatial
  dependence in generated data.

Conventions
-----------
* Weights are row-standardised (``transform = "r"``) before any statistic, as is standard
  for Moran's I and the SAR models.
* AIC and BIC count every estimated parameter: the coefficients, the spatial parameter and
  the error variance (spreg's own ``aic`` leaves out lambda for the error model but keeps
  rho for the lag model; ours are comparable across the three models).
* esda's ``p_sim`` is *folded* (the smaller tail), so rejecting at ``p_sim < 0.05`` has a
  size of about 10 %. :func:`moran_test` reports it, but its tests are ``p_upper`` (one-sided,
  positive autocorrelation, the alternative of interest for neighbouring communes) and
  ``p_two_sided``, both from the same permutations.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from cpc_core.errors import InputDataError, UsageError, clip

__all__ = [
    "MoranResult",
    "SpatialResult",
    "WeightsInfo",
    "build_weights",
    "moran_test",
    "polygon_grid",
    "sar_errors",
    "spatial_models",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WeightsInfo:
    """What the weights are made of (for the report).

    Attributes
    ----------
    kind : str
        ``"queen"`` or ``"knn"``.
    n : int
        Areas.
    islands : list
        Ids of areas without a contiguous neighbour (queen only), before any attachment.
    attached : bool
        Whether islands were given their nearest neighbour.
    mean_neighbours, min_neighbours, max_neighbours : float, int, int
    """

    kind: str
    n: int
    islands: list = field(default_factory=list)
    attached: bool = False
    mean_neighbours: float = math.nan
    min_neighbours: int = 0
    max_neighbours: int = 0


def build_weights(
    gdf,
    kind: Literal["queen", "knn"] = "queen",
    k: int = 5,
    islands: Literal["attach", "keep"] = "attach",
):
    """Row-standardised spatial weights of the areas of ``gdf``, in the order of its index.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        One polygon per area; the index identifies the areas (must be unique).
    kind : {"queen", "knn"}
        Queen contiguity (a shared edge or corner) or ``k`` nearest centroids.
    k : int
        Neighbours for ``"knn"``.
    islands : {"attach", "keep"}
        Queen islands get their nearest neighbour (``"attach"``, the usual remedy, since an
        area without neighbours has no spatial lag) or stay without (``"keep"``; esda and
        spreg then treat their lag as zero). Either way they are reported and logged.

    Returns
    -------
    w : libpysal.weights.W
        Row-standardised.
    info : WeightsInfo
    """
    import libpysal

    if kind not in ("queen", "knn"):
        raise UsageError(f"kind must be 'queen' or 'knn', got {clip(kind)}")
    if islands not in ("attach", "keep"):
        raise UsageError(f"islands must be 'attach' or 'keep', got {clip(islands)}")
    if gdf.index.has_duplicates:
        raise InputDataError("gdf has duplicate area ids in its index")
    if len(gdf) < 3:
        raise InputDataError(f"spatial weights need at least 3 areas, got {len(gdf)}")
    if gdf.geometry.isna().any() or gdf.geometry.is_empty.any():
        bad = gdf.index[gdf.geometry.isna() | gdf.geometry.is_empty]
        raise InputDataError(f"{len(bad)} area(s) without a geometry, e.g. {list(bad[:5])}")
    found: list = []
    attached = False
    if kind == "knn":
        if not (1 <= int(k) < len(gdf)):
            raise UsageError(f"k must lie in [1, {len(gdf) - 1}], got {clip(k)}")
        w = libpysal.weights.KNN.from_dataframe(_centroids(gdf), k=int(k), use_index=True)
    else:
        w = libpysal.weights.Queen.from_dataframe(gdf, use_index=True, silence_warnings=True)
        found = list(w.islands)
        if found:
            logger.warning("%d island(s) without a contiguous neighbour: %s%s", len(found),
                           found[:10], " ..." if len(found) > 10 else "")
            if islands == "attach":
                with warnings.catch_warnings():
                    # libpysal warns on stderr that these graphs are "not fully connected": the
                    # one-neighbour graph always is, and the result's components are logged below
                    warnings.filterwarnings("ignore", message="The weights matrix is not fully connected")
                    knn1 = libpysal.weights.KNN.from_dataframe(_centroids(gdf), k=1, use_index=True)
                    w = libpysal.weights.attach_islands(w, knn1)
                attached = True
                if w.n_components > 1:
                    logger.info("spatial weights: islands attached to their nearest neighbour; %d areas in %d "
                                "disconnected groups (the models treat them as one map)", w.n, w.n_components)
    w.transform = "r"
    card = np.array(list(w.cardinalities.values()))
    info = WeightsInfo(kind=kind, n=w.n, islands=found, attached=attached,
                       mean_neighbours=float(card.mean()), min_neighbours=int(card.min()),
                       max_neighbours=int(card.max()))
    return w, info


def _centroids(gdf):
    import geopandas as gpd

    # Centroids of projected polygons; a geographic CRS would distort distances, but the
    # ranking of nearest neighbours (all that KNN uses) barely changes at commune scale.
    return gpd.GeoDataFrame(index=gdf.index, geometry=gdf.geometry.centroid, crs=gdf.crs)


# ---------------------------------------------------------------------------------------------
# Moran's I
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoranResult:
    """Moran's I and its tests.

    Attributes
    ----------
    I, expected_I : float
        The statistic and its expectation ``-1 / (n - 1)`` under randomness.
    p_upper : float
        Permutation p-value for positive autocorrelation ``(#{I_perm >= I} + 1) / (P + 1)``.
    p_two_sided : float
        ``min(1, 2 x min(p_upper, p_lower))`` from the same permutations.
    p_sim : float
        esda's folded pseudo p-value (the smaller tail), for reference.
    z_norm, p_norm : float
        Normal approximation under the normality assumption (two-sided).
    permutations : int
    seed : int or None
    """

    I: float  # noqa: E741 - the statistic's name
    expected_I: float
    p_upper: float
    p_two_sided: float
    p_sim: float
    z_norm: float
    p_norm: float
    permutations: int
    seed: int | None


@contextlib.contextmanager
def _seeded_global_rng(seed: int | None) -> Iterator[None]:
    """esda draws permutations from numpy's global RNG: seed it and restore it afterwards."""
    if seed is None:
        yield
        return
    state = np.random.get_state()  # noqa: NPY002 - esda uses the global RNG
    np.random.seed(seed)  # noqa: NPY002
    try:
        yield
    finally:
        np.random.set_state(state)  # noqa: NPY002


def moran_test(values, w, permutations: int = 999, seed: int | None = 0) -> MoranResult:
    """Moran's I of ``values`` under weights ``w`` with a seeded permutation test.

    Parameters
    ----------
    values : array_like
        One value per area, in the order of ``w.id_order``; no NaN.
    w : libpysal.weights.W
        Row-standardised here if it is not.
    permutations : int
        Random permutations (at least 99 for a 1 % test).
    seed : int or None
        Seed of the permutations (``None``: numpy's global state, not reproducible).

    Returns
    -------
    MoranResult
    """
    import esda

    y = np.asarray(values, dtype=float).ravel()
    if y.size != w.n:
        raise ValueError(f"{y.size} values for {w.n} areas")
    if not np.isfinite(y).all():
        raise ValueError("moran_test: values must be finite (drop or fill missing areas first)")
    if int(permutations) < 1:
        raise UsageError(f"permutations must be positive, got {clip(permutations)}")
    with _seeded_global_rng(seed):
        mi = esda.Moran(y, w, transformation="r", permutations=int(permutations))
    sim = np.asarray(mi.sim)
    p_upper = (np.sum(sim >= mi.I) + 1) / (sim.size + 1)
    p_lower = (np.sum(sim <= mi.I) + 1) / (sim.size + 1)
    return MoranResult(
        I=float(mi.I), expected_I=float(mi.EI), p_upper=float(p_upper),
        p_two_sided=float(min(1.0, 2 * min(p_upper, p_lower))), p_sim=float(mi.p_sim),
        z_norm=float(mi.z_norm), p_norm=float(mi.p_norm), permutations=int(permutations),
        seed=seed,
    )


# ---------------------------------------------------------------------------------------------
# regression models
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SpatialResult:
    """OLS, spatial error and spatial lag models of one outcome, with residual Moran's I.

    Attributes
    ----------
    coefficients : pandas.DataFrame
        Long form: ``model`` (``ols``, ``error``, ``lag``), ``term`` (``const``, the
        regressors, ``lambda`` for the error model, ``rho`` for the lag model), ``coef``,
        ``se``, ``statistic``, ``p_value``.
    fit : pandas.DataFrame
        One row per model: ``model``, ``method``, ``nobs``, ``k``, ``llf``, ``aic``, ``bic``,
        ``spatial_param`` (NaN for OLS).
    moran : MoranResult
        Moran's I of the OLS residuals (permutation test).
    moran_analytic : tuple of float
        spreg's Moran's I test for regression residuals: (I, z, p), which accounts for the
        residuals being fitted (Cliff and Ord).
    weights : WeightsInfo
    dropped : int
        Rows dropped for missing values (weights are built on the remaining areas).
    """

    coefficients: pd.DataFrame
    fit: pd.DataFrame
    moran: MoranResult
    moran_analytic: tuple
    weights: WeightsInfo
    dropped: int


def spatial_models(
    gdf,
    y: str,
    X: Sequence[str],
    kind: Literal["queen", "knn"] = "queen",
    k: int = 5,
    islands: Literal["attach", "keep"] = "attach",
    method: Literal["ml", "gm"] = "ml",
    permutations: int = 999,
    seed: int | None = 0,
) -> SpatialResult:
    """Fit OLS, spatial error and spatial lag models of ``y`` on ``X`` over the areas' polygons.

    Parameters
    ----------
    gdf : geopandas.GeoDataFrame
        One row per area with the polygon, ``y`` and ``X``; the index identifies the areas.
    y : str
        Outcome.
    X : sequence of str
        Regressors (an intercept is added).
    kind, k, islands
        See :func:`build_weights`; weights are built on the rows that have every value.
    method : {"ml", "gm"}
        Maximum likelihood (``spreg.ML_Error``, ``spreg.ML_Lag``; likelihoods, AIC, BIC) or
        GMM (``spreg.GM_Error_Het``, heteroscedasticity-robust, and ``spreg.GM_Lag``; no
        likelihood, so ``llf``/``aic``/``bic`` are NaN for them).
    permutations, seed
        See :func:`moran_test`.

    Returns
    -------
    SpatialResult
    """
    import spreg

    if method not in ("ml", "gm"):
        raise UsageError(f"method must be 'ml' or 'gm', got {clip(method)}")
    X = list(X)
    missing = [c for c in [y, *X] if c not in gdf.columns]
    if missing:
        raise InputDataError(f"spatial_models: missing column(s) {missing}")
    data = gdf[[y, *X]].apply(pd.to_numeric, errors="raise").astype(float)
    if np.isinf(data.to_numpy()).any():
        raise InputDataError("spatial_models: infinite values (a log of zero?)")
    complete = data.notna().all(axis=1).to_numpy()
    dropped = int((~complete).sum())
    if dropped:
        logger.info("spatial_models(%s): dropped %d area(s) with missing values", y, dropped)
    sub = gdf.loc[complete]
    data = data.loc[complete]
    n, n_x = len(data), len(X) + 1
    if n <= n_x + 2:
        raise InputDataError(f"spatial_models: {n} complete area(s) for {n_x} coefficient(s)")
    w, info = build_weights(sub, kind=kind, k=k, islands=islands)
    yv = data[[y]].to_numpy()
    xv = data[X].to_numpy()
    terms = ["const", *X]

    # spreg 1.9 prints the class name of ML/GM models to stdout (a stray debug print in
    # spreg.output); the library must not write to stdout, so it is captured and logged.
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        ols = spreg.OLS(yv, xv, w=w, spat_diag=True, moran=True, name_y=y, name_x=X)
    resid = np.asarray(ols.u).ravel()
    moran = moran_test(resid, w, permutations=permutations, seed=seed)
    rows, fits = [], []

    def add(model, fitted, names, spatial_term, k_params, llf, meth):
        betas = np.asarray(fitted.betas).ravel()
        se = np.asarray(fitted.std_err).ravel()
        stat = np.array([z for z, _ in (fitted.z_stat if hasattr(fitted, "z_stat")
                                         else fitted.t_stat)], dtype=float)
        pval = np.array([p for _, p in (fitted.z_stat if hasattr(fitted, "z_stat")
                                        else fitted.t_stat)], dtype=float)
        for i, name in enumerate(names):
            rows.append({"model": model, "term": name, "coef": betas[i], "se": se[i],
                         "statistic": stat[i], "p_value": pval[i]})
        spatial = betas[names.index(spatial_term)] if spatial_term else math.nan
        fits.append({"model": model, "method": meth, "nobs": n, "k": k_params, "llf": llf,
                     "aic": -2 * llf + 2 * k_params, "bic": -2 * llf + k_params * math.log(n),
                     "spatial_param": spatial})

    add("ols", ols, terms, None, n_x + 1, float(ols.logll), "ols")
    if method == "ml":
        with contextlib.redirect_stdout(quiet), warnings.catch_warnings():
            # scipy's note that spreg's bounded search ignores a relative tolerance: noise on stderr
            warnings.filterwarnings("ignore", message="Method 'bounded' does not support relative tolerance",
                                    category=RuntimeWarning)
            err = spreg.ML_Error(yv, xv, w, name_y=y, name_x=X)
            lag = spreg.ML_Lag(yv, xv, w, name_y=y, name_x=X)
        add("error", err, [*terms, "lambda"], "lambda", n_x + 2, float(err.logll), "ml")
        add("lag", lag, [*terms, "rho"], "rho", n_x + 2, float(lag.logll), "ml")
    else:
        with contextlib.redirect_stdout(quiet):
            err = spreg.GM_Error_Het(yv, xv, w, name_y=y, name_x=X)
            lag = spreg.GM_Lag(yv, xv, w=w, name_y=y, name_x=X, robust="white")
        add("error", err, [*terms, "lambda"], "lambda", n_x + 2, math.nan, "gm")
        add("lag", lag, [*terms, "rho"], "rho", n_x + 2, math.nan, "gm")
    if quiet.getvalue().strip():
        logger.debug("spreg stdout: %s", " ".join(quiet.getvalue().split()))
    return SpatialResult(
        coefficients=pd.DataFrame(rows),
        fit=pd.DataFrame(fits),
        moran=moran,
        moran_analytic=tuple(float(v) for v in ols.moran_res),
        weights=info,
        dropped=dropped,
    )


# ---------------------------------------------------------------------------------------------
# generator helpers
# ---------------------------------------------------------------------------------------------


def polygon_grid(nrows: int, ncols: int, size: float = 1.0, origin=(0.0, 0.0), crs=None):
    """A lattice of ``nrows x ncols`` square polygons, index ``0 .. n - 1`` row by row.

    Examples
    --------
    >>> g = polygon_grid(2, 3)
    >>> len(g), g.geometry.iloc[4].bounds
    (6, (1.0, 1.0, 2.0, 2.0))
    """
    import geopandas as gpd
    import shapely

    if nrows < 1 or ncols < 1 or not size > 0:
        raise UsageError("polygon_grid needs positive nrows, ncols and size")
    x0, y0 = origin
    polys = [shapely.box(x0 + c * size, y0 + r * size, x0 + (c + 1) * size, y0 + (r + 1) * size)
             for r in range(nrows) for c in range(ncols)]
    return gpd.GeoDataFrame({"row": np.repeat(np.arange(nrows), ncols),
                             "col": np.tile(np.arange(ncols), nrows)},
                            geometry=polys, crs=crs)


def sar_errors(w, lam: float, size: int | None = None, sd: float = 1.0,
               seed: int | np.random.Generator = 0) -> np.ndarray:
    """Spatially autocorrelated errors ``u = (I - lam W)^-1 eps``, ``eps ~ N(0, sd^2)``.

    Parameters
    ----------
    w : libpysal.weights.W
        Row-standardised inside (a copy's ``sparse`` matrix is used; ``w`` is unchanged).
    lam : float
        Spatial autoregressive parameter, ``|lam| < 1``; 0 gives independent errors.
    size : int, optional
        Number of independent draws; ``None`` gives one vector of length ``n``.
    sd : float
        Standard deviation of ``eps``.
    seed : int or numpy.random.Generator

    Returns
    -------
    numpy.ndarray
        Shape ``(n,)`` or ``(size, n)``, in the order of ``w.id_order``.
    """
    import scipy.sparse
    import scipy.sparse.linalg

    if not (-1 < lam < 1):
        raise UsageError(f"lam must lie in (-1, 1), got {clip(lam)}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = w.n
    m = w.sparse.tocsr().astype(float)
    rs = np.asarray(m.sum(axis=1)).ravel()
    m = scipy.sparse.diags(np.where(rs > 0, 1 / np.where(rs > 0, rs, 1), 0.0)) @ m
    eps = rng.normal(0, sd, (1 if size is None else int(size), n))
    a = (scipy.sparse.identity(n, format="csc") - lam * m).tocsc()
    u = scipy.sparse.linalg.splu(a).solve(eps.T).T
    return u[0] if size is None else u
