"""numba kernels that import numba at their first call, not when their module is imported.

A cached re-run (another lag, only the report) calls no kernel of the estimate or the store,
yet importing those modules imported numba (~0.17 s of a 2.6 s command, issue #14).
:func:`njit` is ``numba.njit`` deferred: the decorated function becomes a :class:`LazyKernel`;
its first call imports numba, turns *every* registered kernel into its ``numba.njit``
dispatcher (with the same options, ``cache=True`` included, so a compiled kernel is still
loaded from numba's cache) and puts the dispatchers in place of the lazy kernels in the
modules' globals. That last step matters for kernels calling kernels (``finite_mean`` inside
``_lagged_pearson_2d``): numba resolves a callee from the caller's globals when it compiles,
and must find a dispatcher there, not a Python object.

Every kernel of the library uses it (``cube.store``, ``estimate.rollup``,
``estimate.correlation``, ``estimate.uncertainty``, ``netmob.parse``, ``netmob.textio``): a
module that imports numba at load would make every importer pay it. The numbers are the same:
the same function is compiled with the same options.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["LazyKernel", "njit"]

_KERNELS: list[LazyKernel] = []
_LOCK = threading.Lock()


class LazyKernel:
    """A numba kernel compiled at its first call (see the module docstring).

    ``py_func`` is the plain Python function, as on a numba dispatcher.
    """

    def __init__(self, py_func: Callable, options: dict[str, Any]):
        self.py_func = py_func
        self._options = options
        self._dispatcher: Callable | None = None
        functools.update_wrapper(self, py_func)
        _KERNELS.append(self)

    def __call__(self, *args: Any) -> Any:
        if self._dispatcher is None:
            _materialize()
        return self._dispatcher(*args)

    def __reduce__(self):
        # pickled by reference (a task that carries a kernel): the worker imports its module
        return _kernel_by_name, (self.py_func.__module__, self.py_func.__qualname__)

    def __repr__(self) -> str:
        return f"<LazyKernel {self.py_func.__module__}.{self.py_func.__qualname__}>"


def _kernel_by_name(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def njit(**options: Any) -> Callable[[Callable], LazyKernel]:
    """``numba.njit(**options)``, applied at the kernel's first call.

    Examples
    --------
    >>> @njit(nogil=True)
    ... def add(a, b):
    ...     return a + b
    >>> add(2, 3)
    5
    """

    def wrap(fn: Callable) -> LazyKernel:
        return LazyKernel(fn, options)

    return wrap


def _materialize() -> None:
    """Dispatchers for every kernel that has none yet, then put them in the modules' globals."""
    with _LOCK:
        pending = [k for k in _KERNELS if k._dispatcher is None]
        if not pending:
            return
        import numba

        for k in pending:
            k._dispatcher = numba.njit(**k._options)(k.py_func)
        for k in _KERNELS:
            scope = k.py_func.__globals__
            for name, value in list(scope.items()):
                if isinstance(value, LazyKernel) and value._dispatcher is not None:
                    scope[name] = value._dispatcher
