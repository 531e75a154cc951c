"""The names the validation statistics accept, without the statistics.

:mod:`cpc_core.config.validation_options` checks a configuration against these names, and a
configuration is read by every command (``cpc run``, ``cpc validate``, a configuration error):
keeping them here lets the configuration load without numpy, pandas and scipy, which
:mod:`cpc_core.validation.statistics` needs for its computations. That module re-exports them.
"""

from __future__ import annotations

__all__ = ["COV_TYPES", "DEPENDENT_CORRELATION_METHODS", "STANDARD_METHODS"]

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
