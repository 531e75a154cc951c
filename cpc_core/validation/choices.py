"""The names the validation accepts (methods, estimators, column roles), without the statistics.

:mod:`cpc_core.config.validation_options` checks a configuration against these names, and a
configuration is read by every command (``cpc run``, ``cpc validate``, a configuration error):
keeping them here lets the configuration load without numpy, pandas and scipy, which
:mod:`cpc_core.validation.statistics` needs for its computations. That module re-exports them.
"""

from __future__ import annotations

__all__ = ["COVARIATE_ROLES", "COV_TYPES", "DEPENDENT_CORRELATION_METHODS", "POI_ROLES", "REQUIRED_ROLES",
           "STANDARD_METHODS"]

#: Methods accepted by :func:`cpc_core.validation.statistics.compare_dependent_correlations`.
DEPENDENT_CORRELATION_METHODS = (
    "williams",
    "steiger",
    "hittner",
    "meng",
    "dunn_clark",
    "hotelling",
    "zou",
    "koebe2024",
)
#: The methods from the literature (everything except the authors' ad-hoc ``koebe2024``).
STANDARD_METHODS = tuple(m for m in DEPENDENT_CORRELATION_METHODS if m != "koebe2024")

#: Covariance estimators accepted by :func:`cpc_core.validation.statistics.fit_ols`.
COV_TYPES = ("nonrobust", "HC0", "HC1", "HC2", "HC3")

#: Roles that must resolve to a column (``c`` or ``rho``: at least one of the two).
REQUIRED_ROLES = ("commune", "population", "tor", "web_adult", "youtube", "outcome")
#: The six POI count roles of the regressions (docs/method.md section 4), in table order.
POI_ROLES = (
    "poi_adult_entertainment",
    "poi_amateur_sports_team",
    "poi_church_cathedral",
    "poi_mosque",
    "poi_religious_organization",
    "poi_school",
)
#: Commune-level covariate roles of the regressions besides the traffic and the PCs.
COVARIATE_ROLES = (
    "density",
    "share_singles",
    "poverty_rate",
    "unemployment_rate",
    "turnout_2017",
    "le_pen",
    "macron",
    *POI_ROLES,
)
