"""Shared fixtures: a real Dask cluster (scheduler + 2 worker processes) and small NetMob trees.

Fixtures build on each other: ``synth_tree`` is written once per session by the real
generator on the real cluster, and ``cube`` ingests it once; tests that modify data copy it.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from cpc_core.synth.generator import SynthSpec

# Optional test data, never part of the project nor needed by the code: real NetMob23 commune
# polygons in a folder ``shared/data`` supplied beside the checkout (../shared; CI lays a copy
# there, development machines may have it at /work/shared). Tests that need it skip, saying so,
# when it is absent. This is the only place the repository looks outside itself
# (tests/test_repo_hygiene.py).
SHARED = next((p for p in (Path(__file__).resolve().parents[1].parent / "shared", Path("/work/shared"))
               if p.is_dir()), Path(__file__).resolve().parents[1].parent / "shared")
SHARED_COMMUNES = SHARED / "data" / "netmob23-metro-communes"

#: A tiny tree spanning the spring DST day (2019-03-31 has 92 slots) and an all-city outage
#: day is far away, so two cities, 4 days, 0.5 % of the tiles.
SMALL_SPEC = SynthSpec(
    cities=("Lyon", "Nice"),
    start=dt.date(2019, 3, 29),
    days=4,
    scale=0.005,
    seed=7,
    lag_h=2,
)


@pytest.fixture(scope="session", autouse=True)
def _private_shared_cache(tmp_path_factory):
    """Runs share parsed tile grids through ``$CPC_CACHE_DIR``: a private one per test session,
    so tests neither read nor fill the user's ``~/.cache/cpc``."""
    import os

    old = os.environ.get("CPC_CACHE_DIR")
    os.environ["CPC_CACHE_DIR"] = str(tmp_path_factory.mktemp("cpc-cache"))
    yield
    if old is None:
        os.environ.pop("CPC_CACHE_DIR", None)
    else:
        os.environ["CPC_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      memory_limit="4GiB") as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="session")
def synth_tree(tmp_path_factory, client) -> Path:
    from jobs.synth import run_synth

    out = tmp_path_factory.mktemp("synth")
    run_synth(SMALL_SPEC, out, client)
    return out


@pytest.fixture(scope="session")
def cube(tmp_path_factory, synth_tree, client) -> str:
    from jobs.ingest import run_ingest

    store = str(tmp_path_factory.mktemp("cube") / "cube.zarr")
    run_ingest(str(synth_tree / "netmob"), store, client)
    return store


@pytest.fixture(scope="session")
def cube_v2(tmp_path_factory, synth_tree, client) -> str:
    """The same tree ingested into a layout-2 store (what cpc wrote before layout 3: the
    15-minute arrays indexed by UTC time, one chunk per hour): stores users already have.

    The layout is decided where the store is created (in this process, before any task); the
    workers write each array in the layout they find.
    """
    from cpc_core.cube import store as store_mod
    from jobs.ingest import run_ingest

    store = str(tmp_path_factory.mktemp("cube_v2") / "cube.zarr")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(store_mod, "LAYOUT_VERSION", 2)
        run_ingest(str(synth_tree / "netmob"), store, client)
    return store


@pytest.fixture
def tree_copy(tmp_path, synth_tree) -> Path:
    """A private, modifiable copy of the small NetMob tree."""
    dst = tmp_path / "netmob"
    shutil.copytree(synth_tree / "netmob", dst)
    return dst


@pytest.fixture(scope="session")
def four_city_run_dir(tmp_path_factory) -> Path:
    """A validation run folder (``build_run_dir``): Paris, Lyon, Toulouse and Nice at 5 % of
    their tiles, 7 days, seed 1. Shared by the report and the outcome-model tests, which only
    read it (they validate into their own folders)."""
    from tests.validation.test_validation_stage import build_run_dir

    return build_run_dir(tmp_path_factory.mktemp("run4"), ("Paris", "Lyon", "Toulouse", "Nice"), 0.05, days=7, seed=1)
