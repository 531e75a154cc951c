"""The method's constants (method, sections 1-3 and 12), each defined here once.

Plain numbers with their sources, and nothing else: this module imports nothing, so that the
configuration (:mod:`cpc_core.config`), which takes its defaults from here, loads without
numpy, pandas or xarray (a configuration error must answer at once). The formulas that use
them live in :mod:`cpc_core.estimate.cpc`, which re-exports every name.
"""

__all__ = [
    "CSAM_SITES",
    "CSAM_SITES_LINKED",
    "C_FLOOR",
    "CSAM_SHARE",
    "GLOBAL_SHARE",
    "MIN_HOURS",
    "ONION_SHARE",
    "ONION_SHARE_CONCENTRATION",
    "PORN_SHARE",
    "TOP_SHARE",
    "ZERO_VALUE",
]

#: Share of Tor traffic that goes to onion services (Tor metrics, 2019-03-16..05-31).
ONION_SHARE = 0.011
#: Share of onion pages that are pornographic: 2,267,628 / 5,437,248 (DarkBERT crawl).
PORN_SHARE = 0.41705
#: Share of pornographic onion sites that are CSAM: 105 / 253 (DUTA).
CSAM_SHARE = 0.41502
#: Global estimate of the CSAM share of Tor download traffic, ONION x PORN x CSAM = 0.19 %
#: (Figure 1, left). Locally, the area's rho_j takes the place of PORN_SHARE.
GLOBAL_SHARE = ONION_SHARE * PORN_SHARE * CSAM_SHARE
#: Replacement for non-positive c_j (paper: 1e-5, i.e. rho_j,0 = 1e-5 / (0.011 x 0.41502)).
C_FLOOR = 1e-5
#: Replaces zero hourly traffic before the log of the correlation (the authors' code).
ZERO_VALUE = 0.001
#: Valid hours an area needs for rho_j: one week (``estimate.min_hours``).
MIN_HOURS = 168
#: The counts behind CSAM_SHARE: 105 of 253 pornographic onion sites (DUTA, Al-Nabki et al.
#: 2019); the uncertainty stage's default Beta(105, 148) of the CSAM share.
CSAM_SITES_LINKED = 105
CSAM_SITES = 253
#: alpha + beta of the onion share's default Beta (Tor metrics publish no sample size: an
#: assumption, an sd of 19 % of the mean; ``estimate.uncertainty.onion_concentration``).
ONION_SHARE_CONCENTRATION = 2500.0
#: Share of tiles with the highest traffic whose POIs make Table 4: the top 0.1 % (the paper).
TOP_SHARE = 0.001
