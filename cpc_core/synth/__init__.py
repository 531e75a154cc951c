"""The NetMob23-format generator with planted truth, and the check against it.

Entry points are re-exported lazily: nothing is imported until used (``cpc_core._exports``).
"""

from cpc_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "spec": ('SynthSpec', 'DEMO_CITIES'),
    "generator": ('build_city', 'write_file'),
    "truth": ('truth_check',),
})
