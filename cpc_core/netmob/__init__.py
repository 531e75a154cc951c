"""NetMob23 format facts, the validating parser and text output.

Entry points are re-exported lazily: nothing is imported until used (``cpc_core._exports``).
"""

from cpc_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "facts": ('CITIES', 'CITY_DIMS', 'STUDY_SERVICES', 'GRID_CRS', 'LOCAL_TZ', 'parse_file_path', 'file_path', 'time_axis'),
    "parse": ('parse_bytes', 'check_file', 'NetmobFormatError', 'ParsedFile'),
    "textio": ('format_netmob',),
})
