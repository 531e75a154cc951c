"""Configuration of the validation and report stage (``validation:`` section of a run config).

:class:`ValidationConfig` is a frozen pydantic model with ``extra="forbid"``: a typo in a key
is an error, never a silent default. It can be mounted as the ``validation:`` section of the
run configuration, or read on its own by ``cpc validate`` through
:func:`cpc_core.config.core.load_validation_config`, which accepts either a file holding only a
``validation:`` section (plus, optionally, ``disclosure:``) or a whole run configuration (its
other sections are ignored); that function lives beside the run configuration, whose sections
it must know, so that this module never imports ``config.core``.

Every constant of the method (``docs/method.md`` sections 1, 6 and 12) is a default here.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

# the shared helpers come from config.base, never from config.core (which mounts ValidationConfig
# as its `validation:` section): no import circle
from cpc_core.config.base import ConfigError, DisclosureConfig, _Frozen, format_errors
from cpc_core.estimate.constants import C_FLOOR, CSAM_SHARE, ONION_SHARE, PORN_SHARE
from cpc_core.validation.choices import (
    COV_TYPES,
    COVARIATE_ROLES,
    DEPENDENT_CORRELATION_METHODS,
    POI_ROLES,
    REQUIRED_ROLES,
    STANDARD_METHODS,
)

__all__ = [
    "COVARIATE_ROLES",
    "DisclosureThresholds",
    "POI_ROLES",
    "REQUIRED_ROLES",
    "ColumnsConfig",
    "CovariateFile",
    "FiguresConfig",
    "GeoConfig",
    "SearchInterestConfig",
    "SpearmanIntervalConfig",
    "ValidationConfig",
    "parse_validation_config",
]

class ColumnsConfig(_Frozen):
    """Role -> column name of the commune table (after the covariate files are joined).

    The defaults are the names the pipeline (``communes.csv``) and the synthetic covariates
    use. A required role whose column is absent is an error naming the role and the columns
    found; an optional role whose column is absent (or that is set to null) skips the tables
    that need it, with a note in the report.
    """

    commune: str = Field("commune", description="commune (area) code, the join key of every covariate file")
    population: str = Field("population", description="population, inhabitants (denominator of the per 1000 "
                            "rates, small-area threshold)")
    tor: str = Field("tor", description="Tor traffic of the study period (NetMob23 traffic units)")
    web_adult: str = Field("web_adult", description="Web_Adult traffic of the study period (NetMob23 units)")
    youtube: str = Field("youtube", description="YouTube traffic of the study period (NetMob23 units), the "
                         "placebo")
    c: str | None = Field("c", description="correction factor c_j; c or rho must exist")
    rho: str | None = Field("rho", description="correlation rho_j; c or rho must exist")
    outcome: str = Field("sexual_violence_per_1000", description="validation outcome per 1000")
    name: str | None = Field("name", description="area name shown in tables and figures; null: the code")
    city: str | None = Field("city", description="metropole: one choropleth per value")
    n_tiles: str | None = Field(
        "n_tiles", description="tiles per area, for the tile-count threshold"
    )
    density: str | None = Field("density", description="population density (its log is used)")
    share_singles: str | None = Field("share_singles", description="share of one-person households (percent "
                                      "or fraction, see percent_roles)")
    poverty_rate: str | None = Field("poverty_rate", description="poverty rate (percent or fraction, see "
                                     "percent_roles)")
    unemployment_rate: str | None = Field("unemployment_rate", description="unemployment rate (percent or "
                                          "fraction, see percent_roles)")
    turnout_2017: str | None = Field("turnout_2017", description="turnout, 2017 presidential election (percent "
                                     "or fraction, see percent_roles)")
    le_pen: str | None = Field("le_pen_2017", description="Le Pen vote share 2017")
    macron: str | None = Field("macron_2017", description="Macron vote share 2017")
    poi_adult_entertainment: str | None = Field("poi_adult_entertainment", description="count of adult "
                                                "entertainment POIs in the area (Table 3)")
    poi_amateur_sports_team: str | None = Field("poi_amateur_sports_team", description="count of amateur sports "
                                                "team POIs in the area (Table 3)")
    poi_church_cathedral: str | None = Field("poi_church_cathedral", description="count of church or cathedral "
                                             "POIs in the area (Table 3)")
    poi_mosque: str | None = Field("poi_mosque", description="count of mosque POIs in the area (Table 3)")
    poi_religious_organization: str | None = Field("poi_religious_organization", description="count of "
                                                   "religious organisation POIs in the area (Table 3)")
    poi_school: str | None = Field("poi_school", description="count of school POIs in the area (Table 3)")
    drug_abuse: str | None = Field("drug_abuse_per_1000", description="Table 5 only")
    department: str | None = Field("department", description="maps search interest to communes")
    region: str | None = Field("region", description="maps search interest to communes")
    c_lagged: str | None = Field(
        None, description="c at the Table 7 lag, if the table carries it (else estimates_by_lag)"
    )
    c_floored: str | None = Field(
        "c_floored",
        description="the estimate's own flag of floored c_j (re-derived only when absent)",
    )


class CovariateFile(_Frozen):
    """A CSV (``,`` or ``;``) or Parquet file of commune covariates, joined on the code."""

    path: str = Field(description="CSV (, or ;) or Parquet file of commune covariates")
    commune: str = Field("commune", description="commune code column of this file")


class SearchInterestConfig(_Frozen):
    """Google Trends popularity per region (docs/method.md section 5) -> PCA -> commune covariates."""

    path: str = Field(description="CSV of Google Trends popularity: one row per region, one column per search "
                      "term")
    region: str = Field("region", description="region column of the file")
    n_components: int = Field(3, ge=1, le=100, description="principal components, 1 .. 100")
    keep: tuple[str, ...] = Field(("PC1", "PC3"), description="components used as covariates")
    ddof: int = Field(
        0, ge=0, le=1,
        description="delta degrees of freedom of the z-scores: 0 is the authors' (scikit-learn's "
        "StandardScaler), 1 is R's scale(); only the scores' scale differs",
    )  # fmt: skip
    terms: tuple[str, ...] | None = Field(
        None, description="the search-term columns, explicitly; default: every column except the "
        "region column, `exclude`, and columns named like codes/IDs or without a number (reported)",
    )  # fmt: skip
    exclude: tuple[str, ...] = Field((), description="columns of the file that are not search terms")
    departments: dict[str, tuple[str, ...]] | None = Field(
        None,
        description="region -> department codes; default: the (region, department) pairs of "
        "the commune table",
    )

    @model_validator(mode="after")
    def _keep_in_range(self):
        allowed = {f"PC{i + 1}" for i in range(self.n_components)}
        bad = [k for k in self.keep if k not in allowed]
        if bad:
            raise ValueError(f"keep: {bad} not among {sorted(allowed)}")
        return self


class GeoConfig(_Frozen):
    """Commune polygons for the choropleths (Figure 5)."""

    path: str = Field(description="vector file of commune polygons (GeoPackage, GeoJSON, Shapefile, GeoParquet)")
    layer: str | None = Field("communes", description="layer of a multi-layer file; null: the only layer")
    commune: str = Field("commune", description="commune code column of the file (joined to columns.commune)")


#: The ``disclosure:`` section has one model, shared with the run configuration (the old name is
#: kept for existing imports).
DisclosureThresholds = DisclosureConfig


class FiguresConfig(_Frozen):
    """Which figures and in what formats."""

    enabled: bool = Field(True, description="draw Figures 1-5; false: tables and report only")
    formats: tuple[Literal["png", "svg", "pdf"], ...] = Field(("png", "svg"), description="file formats written "
                                                             "per figure (the report embeds the PNG)")
    dpi: int = Field(110, ge=50, le=600, description="resolution of the PNG figures, dots per inch")
    top_n: int = Field(10, ge=1, le=1000, description="communes in Figure 3's cpc panel (paper: 10; at most 1000)")
    process: bool | None = Field(None, description="draw the figures in a second process while the statistics "
                                 "and models are computed (the same bytes; ~100-150 MiB more memory "
                                 "meanwhile); null: when 2 or more CPUs are usable and 1 GiB of memory "
                                 "available; false: in this process, after the models")


class ModelsConfig(_Frozen):
    """Outcome models beside the paper's OLS (issue #15): hurdle, counts, spatial."""

    hurdle: bool = Field(True, description="fit the two-part (hurdle) model of the outcome on all rows: logit "
                         "for outcome > 0 and OLS of the positive part, beside the paper's OLS")
    hurdle_positive: Literal["linear", "log"] = Field(
        "linear", description="scale of the hurdle's positive part: linear (the paper's OLS of Table 6) or log")
    count_models: bool = Field(False, description="fit Poisson, NB2, ZIP and ZINB of the counts (outcome x "
                               "population / 1000) with AIC/BIC and Vuong tests; needs the population. Off by "
                               "default: ~12 s per validation (ZINB), and meant for outcomes that are counts")
    spatial: bool = Field(True, description="Moran's I of the OLS residuals and the spatial error and lag "
                          "models; needs commune polygons (validation.geo), else reported as not run")
    weights: Literal["queen", "knn"] = Field("queen", description="spatial weights: queen contiguity of the "
                                             "polygons or k nearest centroids")
    k: int = Field(5, ge=1, le=50, description="neighbours of the knn weights (1 .. 50)")
    permutations: int = Field(999, ge=99, le=99_999, description="permutations of Moran's I test "
                              "(99 .. 99999; at least 99 for a 1 % test)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the permutations (0 .. 2^32-1)")


class SpearmanIntervalConfig(_Frozen):
    """Bootstrap intervals of Table 2's Spearman correlations (issue #15)."""

    enabled: bool = Field(True, description="add a pairs-bootstrap interval (communes resampled) to each "
                          "Spearman correlation of Table 2")
    draws: int = Field(1000, ge=100, le=100_000, description="bootstrap resamples (100 .. 100000)")
    level: float = Field(0.90, gt=0, lt=1, description="interval level, in (0, 1)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the resampling (0 .. 2^32-1)")


class ValidationConfig(_Frozen):
    """The validation and report stage (docs/method.md sections 6-7; the paper's Tables 1-7).

    Paths left at ``None`` are looked for next to the commune table (or in the run directory
    handed to ``run_validation``): ``data/covariates/communes.csv``,
    ``data/covariates/search_interest.csv``, ``data/geo/communes.gpkg``,
    ``estimates_by_lag.csv``, ``rho_by_lag.csv``, ``internal/hourly.zarr``, ``run.json``.
    An explicit empty list of covariate files means none.
    """

    columns: ColumnsConfig = Field(ColumnsConfig(), description="role -> column name of the commune table")
    covariates: tuple[CovariateFile, ...] | None = Field(
        None, description="covariate files joined on the commune code (a path, a list of paths or of "
        "{path, commune}); null: data/covariates/communes.csv if found; []: none")
    search_interest: SearchInterestConfig | None = Field(
        None, description="Google Trends file (a path or a mapping) for Table 6; null: "
        "data/covariates/search_interest.csv if found")
    geo: GeoConfig | None = Field(None, description="commune polygons for Figure 5's maps (a path or a mapping); "
                                  "null: data/geo/communes.gpkg if found")
    poi_counts: str | None = Field(
        None, description="the pipeline's poi_counts.csv (the counts cpc computed from the POI file); "
        "default: discovered in the run directory",
    )  # fmt: skip
    use_poi_counts: bool = Field(
        True, description="the POI roles come from poi_counts.csv when there is one (one source: "
        "the POI columns of the covariate files are then ignored); false: from the table/covariates",
    )  # fmt: skip
    estimates_by_lag: str | None = Field(None, description="the pipeline's estimates_by_lag.csv")
    rho_by_lag: str | None = Field(None, description="the pipeline's rho_by_lag.csv")
    hourly: str | None = Field(None, description="the pipeline's internal/hourly.zarr")
    discover: bool = Field(True, description="look for the files above when not given")

    outcome_label: str = Field("Sexual_violence_per_1000", description="name of the outcome in the tables and "
                               "figures")
    # The method's constants for a table from elsewhere. On a pipeline run's own table the
    # run's estimate.onion_share, estimate.csam_share, estimate.c_floor and estimate.lag_h are
    # used instead (cpc_core.validation.inputs.EstimateConstants: the pipeline hands them over
    # in memory, `cpc validate` reads them from the run record): one source per run.
    onion_share: float = Field(
        ONION_SHARE, gt=0, le=1, description="external tables only; a run's table uses estimate.*"
    )
    porn_share: float = Field(PORN_SHARE, gt=0, le=1, description="Figure 1 (global share) only")
    csam_share: float = Field(
        CSAM_SHARE, gt=0, le=1, description="external tables only; a run's table uses estimate.*"
    )
    c_floor: float = Field(
        C_FLOOR, gt=0, le=1, description="external tables only; a run's table uses estimate.c_floor (0 .. 1)"
    )
    table_lag_h: int | None = Field(
        None,
        ge=-48,
        le=48,
        description="external tables only: the lag of the table's c_j and rho_j (default 0, "
        "unlagged); a run's table uses estimate.lag_h, the one source of its lag",
    )
    percent_roles: tuple[str, ...] = Field(
        ("share_singles", "poverty_rate", "unemployment_rate", "turnout_2017", "le_pen", "macron"),
        description="rate roles given in percent (divided by 100); the other rate roles must be "
        "shares in [0, 1]. The paper's regressions use shares (decisions.md, 'Units')",
    )
    pad_codes: bool = Field(
        False, description="zero-pad 4-digit commune codes (a department 01-09 code that lost its "
        "leading zero) in every input; without it such codes are an error when other codes have 5 "
        "characters (they would not join), else a warning",
    )  # fmt: skip
    standardise_poi: bool = Field(True, description="POI counts as z-scores (over the areas the statistics use) "
                                  "in the regressions, as the paper")
    poi_scaling: Literal["model_sample", "statistics_rows"] = Field(
        "model_sample",
        description="over which rows the POI z-scores are taken: model_sample (the authors' way, "
        "R's scale() after dropping incomplete rows: each model's own sample) or statistics_rows "
        "(once, over every commune the statistics use: one scale for all tables)",
    )

    cov_type: Literal["HC0", "HC1", "HC2", "HC3", "nonrobust"] = Field(
        "HC3", description="covariance of the OLS coefficients: heteroskedasticity-robust HC0-HC3 or nonrobust")
    use_t: bool = Field(True, description="p-values and intervals from the t distribution; false: normal")
    conf_level: float = Field(0.95, gt=0, lt=1, description="confidence level of the intervals, a fraction")
    dependent_methods: tuple[str, ...] = Field(
        (*STANDARD_METHODS, "koebe2024"),
        description="cocor's tests; koebe2024 is the authors' formula, for replication only",
    )
    alternative: Literal["two-sided", "greater", "less"] = Field(
        "two-sided", description="alternative hypothesis of the dependent-correlation tests (Table 2)")
    lag_h: int = Field(
        -2,
        ge=-48,
        le=48,
        description="Table 7 lag; rho(L) = corr(WA(t), Tor(t+L)), -2 is R's dplyr::lag(tor, 2)",
    )
    partial_controls: bool = Field(
        False, description="fit the regressions without missing optional covariates (noted)"
    )
    include_small_areas: bool = Field(
        True, description="statistics use small areas too (as the paper); outputs suppress them"
    )
    small_areas: Literal["suppress", "flag"] = Field(
        "suppress", description="suppress: rates blanked, maps hatched; flag: shown and marked"
    )
    disclosure: DisclosureConfig | None = Field(
        None, description="thresholds; default the run's disclosure section"
    )
    digits: int = Field(2, ge=1, le=6, description="decimals of the coefficients in the regression tables")
    figures: FiguresConfig = Field(FiguresConfig(), description="which figures, in what formats")
    report: bool = Field(True, description="write the self-contained report.html")
    models: ModelsConfig = Field(ModelsConfig(), description="outcome models beside the paper's OLS: "
                                 "hurdle, count and spatial models (tables/outcome_models.*)")
    spearman_ci: SpearmanIntervalConfig = Field(SpearmanIntervalConfig(), description="bootstrap "
                                                "intervals of the Spearman correlations (Table 2)")

    @field_validator("covariates", mode="before")
    @classmethod
    def _paths_as_files(cls, v):
        # A bare path is the common case: accept it for {path: ..., commune: "commune"}.
        if v is None:
            return v
        if isinstance(v, str):
            v = [v]
        return [{"path": x} if isinstance(x, str) else x for x in v]

    @field_validator("search_interest", "geo", mode="before")
    @classmethod
    def _path_as_section(cls, v):
        return {"path": v} if isinstance(v, str) else v

    @field_validator("dependent_methods")
    @classmethod
    def _known_methods(cls, v):
        bad = [m for m in v if m not in DEPENDENT_CORRELATION_METHODS]
        if bad:
            raise ValueError(f"unknown {bad}; allowed: {', '.join(DEPENDENT_CORRELATION_METHODS)}")
        return v

    @field_validator("percent_roles")
    @classmethod
    def _known_roles(cls, v):
        bad = [r for r in v if r not in ColumnsConfig.model_fields]
        if bad:
            raise ValueError(f"unknown roles {bad}; roles: {', '.join(ColumnsConfig.model_fields)}")
        return v

    @model_validator(mode="after")
    def _c_or_rho(self):
        if self.columns.c is None and self.columns.rho is None:
            raise ValueError("columns: c or rho must name a column")
        if self.cov_type not in COV_TYPES:  # pragma: no cover - Literal already checks
            raise ValueError(f"cov_type: one of {COV_TYPES}")
        return self


def parse_validation_config(raw: dict | None, source: str = "<config>") -> ValidationConfig:
    """Validate a raw mapping (the content of the ``validation:`` section).

    Raises
    ------
    ConfigError
        Naming each offending key.

    Examples
    --------
    >>> cfg = parse_validation_config({"columns": {"outcome": "sv_com_17_21"}})
    >>> cfg.columns.outcome, cfg.cov_type, cfg.lag_h
    ('sv_com_17_21', 'HC3', -2)
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the validation section must be a mapping")
    try:
        return ValidationConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e, source, prefix="validation.", model=ValidationConfig)) from None
