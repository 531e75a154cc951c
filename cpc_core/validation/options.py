"""Plain options of the validation statistics (no pydantic): what the library reads.

The library's functions (:func:`~cpc_core.validation.stage.prepare`,
:func:`~cpc_core.validation.fit.compute`, :func:`~cpc_core.validation.export.to_json`,
:func:`~cpc_core.validation.outcomes.fit_outcome_models`) read only the attributes below, so
they are called with these frozen dataclasses; ``jobs/`` converts the configuration model
(:class:`cpc_core.config.validation_options.ValidationConfig`) into them
(``jobs.validate.validation_options``). The fields have no defaults on purpose: the
configuration model is the one home of every default, so a value is never written twice.
(A ``ValidationConfig`` has the same attributes and is accepted too, which keeps the tests
that pass one working.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DisclosureOptions", "ModelsOptions", "SearchOptions", "ValidationOptions"]


@dataclass(frozen=True)
class SearchOptions:
    """The search-interest PCA (``validation.search_interest``)."""

    path: str
    region: str
    n_components: int
    keep: tuple[str, ...]
    ddof: int
    terms: tuple[str, ...] | None
    exclude: tuple[str, ...]
    departments: Mapping[str, tuple[str, ...]] | None


@dataclass(frozen=True)
class ModelsOptions:
    """The outcome models beside the OLS (``validation.models``)."""

    hurdle: bool
    hurdle_positive: str
    count_models: bool
    spatial: bool
    weights: str
    k: int
    permutations: int
    seed: int


@dataclass(frozen=True)
class SpearmanIntervalOptions:
    """``validation.spearman_ci``: the pairs-bootstrap interval of each Spearman rho."""

    enabled: bool
    draws: int
    level: float
    seed: int


@dataclass(frozen=True)
class DisclosureOptions:
    """Small-area thresholds."""

    min_population: int
    min_tiles: int


@dataclass(frozen=True)
class ValidationOptions:
    """Everything the validation statistics read (the meaning of each: ``docs/config.md``).

    Attributes
    ----------
    columns : mapping
        Role -> column name (None: the role has no column).
    search_interest : SearchOptions or None
    disclosure : DisclosureOptions or None
        None: the caller's thresholds (the run's), else the defaults.
    models : ModelsOptions
    """

    columns: Mapping[str, str | None]
    outcome_label: str
    onion_share: float
    csam_share: float
    c_floor: float
    table_lag_h: int | None
    lag_h: int
    percent_roles: tuple[str, ...]
    pad_codes: bool
    standardise_poi: bool
    poi_scaling: str
    cov_type: str
    use_t: bool
    conf_level: float
    dependent_methods: tuple[str, ...]
    alternative: str
    partial_controls: bool
    include_small_areas: bool
    small_areas: str
    disclosure: DisclosureOptions | None
    search_interest: SearchOptions | None
    models: ModelsOptions
    spearman_ci: SpearmanIntervalOptions
