"""The method's constants (method, sections 1-3 and 12), each defined here once.

Plain numbers with their sources, and nothing else: this module imports nothing, so that the
configuration (:mod:`cpc_core.config`), which takes its defaults from here, loads without
numpy, pandas or xarray (a configuration error must answer at once). The formulas that use
them live in :mod:`cpc_core.estimate.cpc`, which re-exports every name.
"""

__all__ = ["C_FLOOR", "CSAM_SHARE", "GLOBAL_SHARE", "MIN_HOURS", "ONION_SHARE", "PORN_SHARE", "ZERO_VALUE"]

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
