"""The Zarr tile-traffic cube: store, ingest plan, quality control.

Entry points are re-exported lazily: nothing is imported until used (``cpc_core._exports``).
"""

from cpc_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "store": ('open_cube', 'open_city', 'verify', 'repair_metadata', 'write_file_block', 'create_or_extend'),
    "ingest": ('plan', 'survey', 'ingest_files', 'qc_report'),
})
