"""Lazy re-exports for the subpackages' ``__init__`` (PEP 562).

Each subpackage names its entry points and the module that holds each one. Nothing is imported
until a name is used, so ``import cpc_core.estimate`` stays as light as the command that needs it
(the CLI's start-up budget, docs/architecture.md) while ``from cpc_core.estimate import
lagged_correlation`` works as in flox's ``__init__``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, tuple[str, ...]]
                 ) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """``(__getattr__, __dir__, __all__)`` for ``package`` from ``{module: names}``.

    Parameters
    ----------
    package
        The package's ``__name__``.
    exports
        Submodule name (relative to ``package``) -> the public names it provides.

    Examples
    --------
    >>> get, names, all_ = lazy_exports("cpc_core", {"errors": ("clip",)})
    >>> get("clip")("abc", 2)[:1], all_
    ('a', ['clip'])
    """
    home = {name: module for module, names in exports.items() for name in names}
    if len(home) != sum(len(names) for names in exports.values()):
        raise ValueError(f"{package}: a name is exported from two modules")

    def __getattr__(name: str) -> object:
        try:
            module = home[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(home)

    return __getattr__, __dir__, sorted(home)
