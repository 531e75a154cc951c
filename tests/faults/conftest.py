"""The fault corpus runs whole commands in fresh interpreters (3-5 s each, some with a cluster
or a gateway): it is marked ``slow``, so the README's default test command leaves it out and
``.ci/run`` runs it as its second step (``pytest -m slow``)."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).resolve().parent == _HERE:
            item.add_marker(pytest.mark.slow)
