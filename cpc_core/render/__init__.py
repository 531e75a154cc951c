"""Tables (Markdown, LaTeX, HTML, CSV), figures and the self-contained HTML report.

Entry points are re-exported lazily: nothing is imported until used (``cpc_core._exports``).
"""

from cpc_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "tables": ('regression_table', 'to_markdown', 'to_latex', 'to_html'),
    "figures": ('render',),
    "report": ('build_report', 'CAUTIONS'),
    "labels": ('label',),
})
