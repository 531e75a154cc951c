"""Modules imported at their first use, for the libraries a command may not need.

geopandas (with shapely and pyproj) takes ~0.4 s to import; a re-run whose geometry is all
cached (another lag) reads none, yet every module of :mod:`cpc_core.geo` is imported with the
pipeline. Those modules take the handles below (``from cpc_core._lazy import geopandas as
gpd``): the import happens at the first attribute read (``gpd.GeoDataFrame``), once.

Examples
--------
>>> import sys
>>> json = module("json")
>>> json.dumps([1]) == sys.modules["json"].dumps([1])
True
"""

from __future__ import annotations

import importlib
import types


class LazyModule(types.ModuleType):
    """A stand-in for module ``name`` that imports it at the first attribute read."""

    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):  # copy, pickle, doctest probes
            raise AttributeError(attr)
        real = importlib.import_module(self.__name__)
        return getattr(real, attr)

    def __repr__(self) -> str:
        return f"<lazy module {self.__name__!r}>"


def module(name: str) -> LazyModule:
    """A :class:`LazyModule` for ``name`` (imported at the first attribute read)."""
    return LazyModule(name)


#: The geometry libraries, for the modules that build or read geometry.
geopandas = module("geopandas")
shapely = module("shapely")
pyproj = module("pyproj")
pyogrio = module("pyogrio")
