"""Tile grids, target areas, French geography and the tile-to-area crosswalk.

Entry points are re-exported lazily: nothing is imported until used (``cpc_core._exports``).
"""

from cpc_core._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "tiles": ('read_tile_grid', 'tile_polygons'),
    "areas": ('read_areas', 'square_grid'),
    "france": ('departments', 'france_communes'),
    "crosswalk": ('Crosswalk', 'CrosswalkPlan', 'crosswalk', 'crosswalk_lazy'),
})
