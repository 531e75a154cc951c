"""The validation against outcome data: inputs, roles, derived variables, the paper's
tables, outcome models, spatial models and search interest.

Entry points are re-exported lazily: nothing is imported until used (``cpc_core._exports``).
"""

from cpc_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "inputs": ('ValidationInputs', 'EstimateConstants'),
    "options": ('ValidationOptions',),
    "stage": ('prepare', 'compute'),
    "statistics": ('spearman_table', 'fit_ols', 'compare_dependent_correlations', 'dependent_tests'),
    "models": ('fit_hurdle', 'fit_count_models', 'vuong_test'),
    "spatial": ('build_weights', 'moran_test', 'spatial_models'),
    "search_interest": ('search_interest_pca',),
    "covariates": ('build_covariates',),
})
