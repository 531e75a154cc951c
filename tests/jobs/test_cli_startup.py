"""Start-up of the commands (issue 14): what `import jobs.cli` and a no-op ingest load and do.

Speed itself is measured by benchmark scripts (whole commands, wall clock), never here; these
tests check the causes: which modules a process imports and whether a cluster starts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from jobs import _ingest_state
from jobs.ingest import run_ingest

ROOT = Path(__file__).resolve().parents[2]

#: what `cpc --help` and a configuration error must not pay for
HEAVY = ("matplotlib", "geopandas", "dask_geopandas", "numba", "distributed", "dask", "xarray", "zarr",
         "pandas", "numpy", "scipy", "statsmodels")


def _probe(code: str, *args: str, env: dict | None = None) -> tuple[int, dict, str]:
    """Run ``code`` in a fresh interpreter; it prints a JSON line last. Returns (rc, that JSON, stderr)."""
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", **(env or {})},
                         timeout=300)
    assert out.stdout.strip(), out.stderr[-2000:]
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1]), out.stderr


def test_import_cli_loads_none_of_the_heavy_libraries():
    code = ("import json, sys\nimport jobs.cli\nheavy = %r\n"  # noqa: UP031 - the probe's source has braces of its own
            "before = sorted(m for m in heavy if m in sys.modules)\n"
            # the control: the probe does see a heavy import when one happens
            "import cpc_core.cube.ingest\n"
            "after = sorted(m for m in heavy if m in sys.modules)\n"
            "print(json.dumps({'before': before, 'after': after}))") % (HEAVY,)
    rc, seen, err = _probe(code)
    assert rc == 0, err
    assert seen["before"] == [], seen
    # (numba is imported at a kernel's first call since cpc_core._jit, not by the ingest module)
    assert {"numpy", "pandas", "zarr"} <= set(seen["after"]), seen


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["cluster", "--help"]])
def test_help_imports_no_configuration_machinery(args):
    code = ("import json, sys\nfrom jobs.cli import main\n"  # noqa: UP031 - the probe's source has braces of its own
            "try:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
            "print(json.dumps(sorted(m for m in %r if m in sys.modules)))") % ((*HEAVY, "pydantic", "yaml"),)
    rc, seen, err = _probe(code, *args)
    assert rc == 0 and seen == [], (seen, err[-500:])


def test_config_errors_answer_without_the_pipeline(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("estimate:\n  lag_h: [1\n")
    code = ("import json, sys\nfrom jobs.cli import main\nrc = main(sys.argv[1:])\n"  # noqa: UP031 - the probe's source has braces of its own
            "print(json.dumps({'rc': rc, 'heavy': sorted(m for m in %r if m in sys.modules)}))") % (HEAVY,)
    for args in (["run", str(tmp_path / "missing.yaml")], ["run", str(bad)],
                 ["run", str(bad.with_name("ok.yaml")), "--set", "estimate.nonsense=1"]):
        bad.with_name("ok.yaml").write_text("estimate:\n  lag_h: 1\n")
        _, seen, err = _probe(code, *args)
        assert seen["rc"] == 2 and seen["heavy"] == [], (args, seen, err[-500:])
        assert "Traceback" not in err and err.strip().splitlines()[0].startswith("cpc run: "), err


def _tree_digest(root: Path) -> str:
    """Names and bytes of every file under ``root`` (the store's content, not its times)."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _no_cluster():
    raise AssertionError("a cluster was asked for although there is nothing to ingest")


def _reports(d: Path) -> tuple[dict, str, str]:
    (j,) = d.glob("ingest-*.json")
    (m,) = d.glob("ingest-*.md")
    (c,) = d.glob("rejected-*.csv")
    qc = json.loads(j.read_text())
    qc.pop("seconds")
    return qc, m.read_text(), c.read_text()


def test_noop_ingest_needs_no_plan_nor_cluster_and_reports_as_a_planned_one(tree_copy, tmp_path, client, caplog):
    store = str(tmp_path / "c.zarr")
    run_ingest(str(tree_copy), store, client, report_dir=tmp_path / "r1")
    state = _ingest_state.state_path(store)
    assert state.is_file()  # recorded by the run that wrote (it planned the next run's answer)

    # the reference: the planned answer of a run with nothing to do (the record put aside)
    state.rename(state.with_suffix(".aside"))
    with caplog.at_level(logging.INFO, logger="jobs.ingest"):
        run_ingest(str(tree_copy), store, _no_cluster, report_dir=tmp_path / "r2")
    assert "0 files to do" in caplog.text and state.is_file()
    before = _tree_digest(Path(store))

    # a new process: answered from the record, no ingest library, no distributed, no cluster
    code = ("import json, sys\nfrom jobs.cli import main\nrc = main(sys.argv[1:])\n"
            "print(json.dumps({'rc': rc, 'mods': sorted(m for m in ('distributed', 'numba', 'zarr', "
            "'cpc_core.cube.ingest', 'pydantic') if m in sys.modules)}))")
    _, seen, err = _probe(code, "ingest", "--input", str(tree_copy), "--store", store,
                          "--report-dir", str(tmp_path / "r3"))
    assert seen == {"rc": 0, "mods": []}, (seen, err[-1500:])
    assert "nothing to do: " in err and "no cluster" in err
    assert _tree_digest(Path(store)) == before
    assert _reports(tmp_path / "r3") == _reports(tmp_path / "r2")


def test_noop_record_is_not_used_once_the_input_or_the_store_changed(tree_copy, tmp_path, client, caplog):
    store = tmp_path / "c.zarr"
    run_ingest(str(tree_copy), str(store), client, report_dir=tmp_path / "r")
    caplog.set_level(logging.INFO, logger="jobs.ingest")
    run_ingest(str(tree_copy), str(store), _no_cluster, report_dir=tmp_path / "r")
    assert "nothing to do: " in caplog.text

    # an input file touched: planned again (still nothing to do: its record in the store is complete)
    f = next(p for p in sorted(tree_copy.rglob("*")) if p.is_file())
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    caplog.clear()
    run_ingest(str(tree_copy), str(store), _no_cluster, report_dir=tmp_path / "r")
    assert "nothing to do: " not in caplog.text and "0 files to do" in caplog.text

    # another option: planned again
    caplog.clear()
    run_ingest(str(tree_copy), str(store), _no_cluster, report_dir=tmp_path / "r", outage_ratio=0.2)
    assert "nothing to do: " not in caplog.text

    # a chunk truncated in the store: planned, the damage found and its files ingested again
    run_ingest(str(tree_copy), str(store), _no_cluster, report_dir=tmp_path / "r")  # record with 0.1 again
    chunk = max((p for p in store.rglob("*") if p.is_file() and "/c/" in str(p)), key=lambda p: p.stat().st_size)
    chunk.write_bytes(chunk.read_bytes()[:-7])
    caplog.clear()
    qc = run_ingest(str(tree_copy), str(store), lambda: contextlib.nullcontext(client), report_dir=tmp_path / "r")
    assert "nothing to do: " not in caplog.text and qc["repaired"], caplog.text[-2000:]

    # --force and --repair never take the shortcut
    caplog.clear()
    run_ingest(str(tree_copy), str(store), lambda: contextlib.nullcontext(client), report_dir=tmp_path / "r",
               repair=True)
    assert "nothing to do: " not in caplog.text and "already complete" in caplog.text


def test_numba_cache_falls_back_to_a_private_folder_when_nothing_is_writable(tmp_path, monkeypatch):
    from jobs import _numba_cache

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(_numba_cache, "_writable", lambda d: str(d).startswith(str(tmp_path)))
    monkeypatch.setattr(_numba_cache.tempfile, "gettempdir", lambda: str(tmp_path))
    got = _numba_cache.ensure_numba_cache()
    assert got is not None and Path(got).parent == tmp_path and os.environ["NUMBA_CACHE_DIR"] == got
    # a user's own setting is kept
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/elsewhere")
    assert _numba_cache.ensure_numba_cache() is None and os.environ["NUMBA_CACHE_DIR"] == "/elsewhere"


def test_numba_kernels_compiled_once_are_loaded_by_the_next_process(tmp_path):
    """cache=True: the first process compiles and writes the kernel to NUMBA_CACHE_DIR, a second
    one loads it (numba's own counters), so workers started later skip the JIT."""
    code = ("import json\nimport numpy as np\nfrom cpc_core.netmob import textio\n"
            "b = textio.format_netmob(np.array([7, 10]), np.array([[0, 12], [305, 4]]))\n"
            "st = textio._format.stats\n"
            "print(json.dumps({'text': b.decode(), 'hits': sum(st.cache_hits.values()), "
            "'misses': sum(st.cache_misses.values())}))")
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    _, first, err1 = _probe(code, env=env)
    _, second, err2 = _probe(code, env=env)
    assert first["text"] == second["text"] == "7 0 12\n10 305 4\n", (err1[-500:], err2[-500:])
    assert first["misses"] >= 1 and first["hits"] == 0, first
    assert second["hits"] >= 1 and second["misses"] == 0, second
    assert any((tmp_path / "numba").rglob("*.nbi"))


def test_small_first_run_in_threads_and_cached_lag_rerun_without_distributed(tmp_path):
    """A city-sized first run gets one worker of threads in this process (``cluster.processes:
    auto``, the input measured); a lag re-run on its caches starts no cluster and never
    imports distributed, scipy.stats, matplotlib or statsmodels (no outcome table here), nor
    geopandas and its libraries (areas, crosswalk, located POIs cached; the POI table is
    pandas), and reads every lag's correlation back; the POI table equals the first run's
    (the same top tiles at another lag here, values aside)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "CPC_CACHE_DIR": str(tmp_path / "cache")}
    data = tmp_path / "d"
    subprocess.run([sys.executable, "-m", "jobs.cli", "synth", "--out", str(data), "--cities", "Nice", "--days", "8",
                    "--scale", "0.003", "--services", "Tor", "Web_Adult", "YouTube", "--directions", "DL"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    cfg = tmp_path / "run.yaml"
    cfg.write_text(json.dumps({"input": {"netmob": str(data / "netmob"), "services": ["Tor", "Web_Adult", "YouTube"],
                                         "directions": ["DL"]},
                               "areas": {"path": str(data / "geo" / "communes.gpkg")},
                               "poi": {"path": str(data / "covariates" / "poi.csv")},
                               "output": {"dir": str(tmp_path / "out")}}))
    first = subprocess.run([sys.executable, "-m", "jobs.cli", "run", str(cfg)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    files = sorted((data / "netmob").glob("*/*/*/*.txt"))
    assert run["cluster"]["processes"] is False and run["cluster"]["scheduler"].startswith("inproc://")
    assert run["cluster"]["input_bytes"] == sum(f.stat().st_size for f in files) > 0
    assert run["stages"]["correlation"]["cached"] is False
    before = (tmp_path / "out" / "rho_by_lag.csv").read_bytes()
    code = ("import json, sys\nfrom jobs.cli import main\nrc = main(sys.argv[1:])\n"
            "mods = ('distributed', 'scipy.stats', 'matplotlib', 'statsmodels', 'numba', 'jobs.validate',\n"
            "        'geopandas', 'shapely', 'pyproj', 'pyogrio')\n"
            "print(json.dumps({'rc': rc, 'imported': [m for m in mods if m in sys.modules]}))")
    probe_env = {"CPC_CACHE_DIR": str(tmp_path / "cache")}
    rc, got, err = _probe(code, "run", str(cfg), "--set", "estimate.lag_h=-2", env=probe_env)
    assert rc == 0 and got["rc"] == 0, err[-2000:]
    # a new lag: its bootstrap draws are computed here (numba), without a cluster; jobs.validate
    # is imported to say why the validation is skipped, its figures module is not. (dask.array
    # is not listed: xarray imports it whenever it builds an array and dask is installed.)
    assert got["imported"] == ["numba", "jobs.validate"], got
    rc, got, err = _probe(code, "run", str(cfg), "--set", "estimate.lag_h=-2", env=probe_env)
    assert rc == 0 and got["rc"] == 0, err[-2000:]
    assert got["imported"] == ["jobs.validate"], got  # the same lag again: every input cached
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["cluster"] == {"kind": "local", "started": False, "reason": "not needed: all inputs cached"}
    assert run["stages"]["correlation"]["cached"] is True and run["stages"]["rollup"]["cached"] is True
    assert (tmp_path / "out" / "rho_by_lag.csv").read_bytes() == before  # every lag: the same table
    # the POI table from the POIs located at the first run equals one computed afresh from the
    # grid, the POI file and this lag's top tiles
    from cpc_core.config.core import RunConfig
    from cpc_core.estimate import poi
    from cpc_core.geo import tiles as geo_tiles

    rc_ = RunConfig(**json.loads(cfg.read_text()))
    grid = geo_tiles.read_tile_grid(rc_.areas.tiles.format(netmob=str(data / "netmob"), city="Nice"))
    top = pd.read_csv(tmp_path / "out" / "internal" / "top_tiles.csv")
    want = poi.poi_table(top, grid.to_crs(rc_.crosswalk.crs).assign(city="Nice"),
                         pd.read_csv(data / "covariates" / "poi.csv"), min_n=1)
    got = poi.poi_table_located(top, pd.concat([pd.read_parquet(p) for p in
                                                (tmp_path / "out" / "internal" / "cache").glob("poi-located-*")]),
                                min_n=1)
    assert len(want) > 0
    pd.testing.assert_frame_equal(got, want)
    assert (tmp_path / "out" / "poi_top_tiles.csv").read_text() == \
        want[want["n"] >= rc_.poi.min_n].reset_index(drop=True).to_csv(index=False)


def test_the_cpc_process_freezes_its_imports_and_main_leaves_a_callers_collector_alone(tmp_path):
    """`cpc` (jobs.cli:entry) pauses the garbage collector while a command's libraries load and
    freezes them out of later collections (jobs.cli._loading), then ends without tearing the
    modules down: its output complete, atexit handlers run, the exit code kept. A caller of
    main() keeps its own collector."""
    import gc
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["cpc"] == "jobs.cli:entry"
    cfg = ROOT / "configs" / "demo.yaml"
    code = ("import atexit, gc, json, sys\nimport jobs.cli\nsys.argv = ['cpc', *sys.argv[1:]]\n"
            "before = gc.get_freeze_count()\n"
            "atexit.register(lambda: print(json.dumps({'before': before, 'frozen': gc.get_freeze_count(), "
            "'enabled': gc.isenabled(), 'pydantic': 'pydantic' in sys.modules}), flush=True))\n"
            "jobs.cli.entry()\nprint('entry returned')")
    out = subprocess.run([sys.executable, "-c", code, "config", "show", str(cfg)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr[-1000:]
    lines = out.stdout.strip().splitlines()
    assert "entry returned" not in lines
    assert any(line.startswith("synth:") for line in lines)  # the configuration, all of it, then the handler
    seen = json.loads(lines[-1])
    assert seen["pydantic"] and seen["before"] == 0
    assert seen["frozen"] > 10_000, seen  # the configuration's libraries, frozen
    assert seen["enabled"] is True  # and the collector running again for the command's work
    # a failing command's exit code survives the fast exit
    bad = tmp_path / "bad.yaml"
    bad.write_text("estimate:\n  lag_h: [1\n")
    out = subprocess.run([sys.executable, "-m", "jobs.cli", "run", str(bad)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 2 and "bad.yaml" in out.stderr, (out.returncode, out.stderr[-500:])

    from jobs.cli import main

    frozen, enabled = gc.get_freeze_count(), gc.isenabled()
    assert main(["config", "show", str(cfg)]) == 0
    assert (gc.get_freeze_count(), gc.isenabled()) == (frozen, enabled)


def test_the_validation_models_import_their_statsmodels_modules_only():
    """OLS, the hurdle's logit and the count models come from their own statsmodels modules:
    ``statsmodels.api`` imports every model (~0.5 s of each validation)."""
    code = ("import json, sys\nimport numpy as np, pandas as pd\n"
            "from cpc_core.validation.statistics import fit_ols\nfrom cpc_core.validation.models import fit_hurdle\n"
            "rng = np.random.default_rng(0)\nx = rng.normal(size=60)\n"
            "df = pd.DataFrame({'x': x, 'y': x + rng.normal(size=60), 'z': np.where(x > 0, np.exp(x), 0.0)})\n"
            "fit_ols(df, 'y', ['x'])\nfit_hurdle(df, 'z', ['x'])\n"
            "print(json.dumps({'api': 'statsmodels.api' in sys.modules, "
            "'ols': 'statsmodels.regression.linear_model' in sys.modules, "
            "'logit': 'statsmodels.discrete.discrete_model' in sys.modules}))")
    rc, seen, err = _probe(code)
    assert rc == 0, err[-2000:]
    assert seen == {"api": False, "ols": True, "logit": True}, seen


def test_a_factory_told_the_size_gets_the_bytes_of_the_files_to_ingest(tree_copy, tmp_path, client):
    """``run_ingest`` tells a cluster factory that takes ``input_bytes`` the size of the files
    it ingests (the reference: os.stat of the tree's traffic files), so that ``cpc ingest``'s
    local cluster runs a small ingest in threads; a factory without it is called bare."""
    seen = []

    def factory(input_bytes=None):
        seen.append(input_bytes)
        return contextlib.nullcontext(client)

    run_ingest(str(tree_copy), str(tmp_path / "c.zarr"), factory, report_dir=tmp_path / "r")
    traffic = [f for f in tree_copy.rglob("*") if f.is_file() and f.suffix != ".geojson"]
    assert traffic and seen == [sum(f.stat().st_size for f in traffic)]


def test_small_synth_and_ingest_commands_run_in_threads(tmp_path):
    """``cpc synth`` and ``cpc ingest`` of a small input start one worker of threads in their
    own process (``cluster.processes: auto``), not worker processes: they know the size."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1", "CPC_CACHE_DIR": str(tmp_path / "cache")}
    data = tmp_path / "d"
    runs = [["synth", "--out", str(data), "--cities", "Nice", "--days", "2", "--scale", "0.003"],
            ["ingest", "--input", str(data / "netmob"), "--store", str(tmp_path / "c.zarr")]]
    for args in runs:
        p = subprocess.run([sys.executable, "-m", "jobs.cli", *args], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        assert "Dask cluster: local, 1 worker of" in p.stderr and "threads in this process" in p.stderr, p.stderr[-2000:]
        assert "worker processes" not in p.stderr
