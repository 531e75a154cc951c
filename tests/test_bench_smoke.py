"""Smoke runs of the three benchmark scripts on a tiny dataset (no timing assertions).

The scripts are part of what the project ships (BENCHMARKS.md is re-run with them); these
tests run each as a user does, through its command line, on Nice at 5 % of its tiles, and
check that it finishes, writes its JSON and Markdown, and that what it reports is coherent:
every value of the generated text is in the cube, the pandas "public way" and cpc agree on
rho, the ratios it prints are there and positive. Speed itself is measured by the scripts,
never asserted here.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[1]
TINY = ["--cities", "Nice", "--scale", "0.05", "--repeat", "1", "--workers", "2"]


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory) -> Path:
    # one root for the three scripts: the suite's 4-day set doubled for its memory check
    # is the 8-day set the estimation bench uses, generated once
    return tmp_path_factory.mktemp("bench")


def _run(script: str, root: Path, *args: str) -> tuple[dict, str]:
    out = root / f"{script}-{len(list(root.glob('*.json')))}"
    cmd = [sys.executable, str(REPO / "scripts" / f"{script}.py"), *TINY, *args, "--root", str(root),
           "--json", f"{out}.json", "--md", f"{out}.md"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"{script} failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return json.loads(Path(f"{out}.json").read_text()), Path(f"{out}.md").read_text()


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_bench_suite_smoke(bench_root):
    r, md = _run("bench_suite", bench_root, "--days", "4")
    # every value of the text landed in the cube (3 services x tiles x slots, no file missing)
    assert r["files"]["values"] == r["cube"]["values"] > 0
    assert r["files"]["n"] == 3 * 4
    for key in ("first_run_vs_public", "ingest_vs_pyarrow_parse", "rollup_vs_cube_read", "rerun_lag_pct_of_first",
                "rerun_grid_pct_of_first", "rerun_lag_probed_pct_of_first", "worker_peak_2d_vs_d"):
        assert _positive(r["ratios"][key]), key
    # the re-runs as a user runs them: timed whole, the validation stage left out of the chain
    for key in ("rerun_lag_plain", "rerun_grid_plain"):
        assert 0 < r[key]["chain_s"] < r[key]["wall_s"]
        assert "validation" in r[key]["stages"]
    assert r["rerun_lag_plain"]["stages"]["rollup"]["cached"]  # another lag reuses the series
    assert not r["rerun_grid_plain"]["stages"]["rollup"]["cached"]  # another grid rolls up again
    assert r["flatness"]["days"] == [4, 8]
    for line in ("ingest throughput / pyarrow raw parse", "the public way's speed", "re-run with another lag",
                 "re-run with another grid", "memory flatness"):
        assert line in md, line


def test_bench_ingest_smoke(bench_root):
    r, md = _run("bench_ingest", bench_root, "--days", "3")
    for key in ("ingest_vs_pyarrow", "ingest_vs_pandas_loop", "parser_1core_vs_pyarrow_per_thread"):
        assert _positive(r["ratios"][key]), key
    assert r["files"]["n"] == 3 * 3 and r["files"]["values"] > 0
    micro = {c["codec"]: c for c in r["codec_micro"]}
    assert {"lz4", "zstd", "blosc-zstd"} <= set(micro)
    assert all(c["ratio"] > 1 and _positive(c["compress_MBps"]) for k, c in micro.items() if k != "none")
    e2e = {c["codec"]: c for c in r["codec_e2e"]}
    assert e2e["none"]["store_MB"] > e2e["lz4"]["store_MB"] > 0  # the store's codec compresses
    assert "lz4" in md and "pandas read_csv loop" in md


def test_bench_estimate_smoke(bench_root):
    r, md = _run("bench_estimate", bench_root, "--days", "8")
    # an independent implementation (pandas merge, groupby, groupby-apply Pearson) agrees
    assert r["public_vs_cpc_areas"][0] > 0
    assert r["public_vs_cpc_max_diff"] < 1e-5
    assert r["pipeline_vs_functions_max_diff"] < 1e-6
    for key in ("first_run_speedup_vs_public", "lag_rerun_speedup_vs_public", "rollup_corr_vs_read"):
        assert _positive(r["ratios"][key]), key
    assert "public way" in md


@pytest.mark.timeout(2400)  # ~2 min alone; a loaded 2-core machine made it 10+
def test_bench_commands_smoke(tmp_path):
    """scripts/bench_commands.py --quick: every row runs (the config error exits 2, checked by
    the script), is printed in the Markdown table, and the authors' pandas loop, written in the
    script, agrees with cpc's rho at its lag (no known outage day in the window)."""
    cmd = [sys.executable, str(REPO / "scripts" / "bench_commands.py"), "--quick", "--repeat", "1",
           "--workdir", str(tmp_path / "w"), "--json", str(tmp_path / "r.json"), "--md", str(tmp_path / "r.md")]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=2300)
    assert p.returncode == 0, f"bench_commands failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    r = json.loads((tmp_path / "r.json").read_text())
    md = (tmp_path / "r.md").read_text()
    rows = {row["row"]: row for row in r["rows"]}
    assert list(rows) == ["first run", "first run, worker processes", "lag re-run", "grid re-run",
                          "ingest, nothing to do", "cpc --help", "config error", "cpc demo", "authors' loop"]
    for name, row in rows.items():
        assert _positive(row["median_s"]) and row["min_s"] <= row["median_s"] and row["n"] == 1, name
        assert f"({name})" in md and row["command"] in md, name
    assert "`cpc run $W/" in md  # the work folder is abbreviated, not spelled out per row
    assert _positive(r["ratios"]["authors' loop / first run (target >= 1.5x)"])
    assert _positive(r["ratios"]["first run: worker processes / one worker of threads (processes: auto)"])
    assert r["rho_areas_compared"] > 0 and r["rho_max_abs_diff_vs_authors"] < 1e-5
    assert p.stdout.count("| `cpc") >= 7
    # the machine's speed at both ends (a busy host slows everything alike)
    assert len(r["cpu_probe_s"]) == 2 and all(_positive(v) for v in r["cpu_probe_s"])
    assert "CPU probe (10^7 Python additions)" in md


def test_bench_uncertainty_smoke():
    """The uncertainty kernels' benchmark runs and prints every figure (positive times)."""
    cmd = [sys.executable, str(REPO / "scripts" / "bench_uncertainty.py"), "--areas", "20", "--days", "10",
           "--draws", "50", "--repeat", "1"]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = {line.split(":")[0].strip(): line for line in p.stdout.splitlines() if ":" in line}
    assert {"bootstrap_rho", "propagate", "total (min)"} <= set(lines), p.stdout
    total = float(lines["total (min)"].split(":")[1].split()[0])
    assert _positive(total), p.stdout
