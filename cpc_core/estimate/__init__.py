"""From the cube to per-area estimates: rollup, outages, lagged correlation, Equation 1,
uncertainty, profiles and POI. The method's constants live in :mod:`cpc_core.estimate.constants`.

Entry points are re-exported lazily: nothing is imported until used (``cpc_core._exports``).
"""

from cpc_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "rollup": ('rollup_store', 'combine_cities', 'window_totals'),
    "outages": ('exclude_outages', 'exclusion_summary'),
    "correlation": ('lagged_correlation', 'best_lag'),
    "constants": ('ONION_SHARE', 'PORN_SHARE', 'CSAM_SHARE', 'GLOBAL_SHARE', 'C_FLOOR', 'ZERO_VALUE', 'MIN_HOURS'),
    "cpc": ('correction_factor', 'estimate', 'estimate_by_lag', 'per_1000', 'cpc_per_1000'),
    "areas": ('area_tables', 'area_city'),
    "uncertainty": ('bootstrap_rho', 'propagate_draws', 'intervals_by_lag', 'rank_probabilities'),
    "profiles": ('scope_profiles', 'weekday_hour_cells', 'weekday_hour_profile'),
    "poi": ('poi_table', 'poi_counts', 'top_tiles'),
    "variants": ('lag_summary',),
})
