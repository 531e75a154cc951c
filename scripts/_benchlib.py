"""Shared helpers of the benchmark scripts (``scripts/bench_*.py``); not part of the library.

What is here:

- the machine and versions a table was measured on (:func:`machine_info`);
- :class:`Probe` / :func:`measure`: wall time, CPU time and peak RSS of the driver and of every
  Dask worker (``client.run`` + psutil; the peak is the kernel's ``VmHWM``, reset at the start of
  each measurement through ``/proc/self/clear_refs``), bytes read and written (``rchar`` /
  ``wchar``: everything read or written through system calls, page cache included);
- a fixed benchmark dataset written once by the real generator (:func:`ensure_dataset`);
- the floors (pyarrow raw parse, reading the cube alone, numpy memory bandwidth) and the public
  code's way (per-file pandas ``read_csv``, merge with a tile -> commune table, groupby-sum to
  commune-hour, groupby-apply Pearson per commune per lag);
- :func:`run_pipeline_measured`: ``jobs.pipeline.run_pipeline`` with every stage measured;
- a summary of ``client.profile()`` and of cProfile output, Markdown tables, JSON.

The machine the benchmarks were written on is shared and noisy: measure things side by side in
one run and read the ratios; absolute figures drift by +-30 %.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import datetime as dt
import io
import json
import logging
import os
import platform
import pstats
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import cloudpickle  # noqa: E402

# Workers cannot import this file (scripts/ is not on their path): ship its functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

from cpc_core.netmob import facts as netmob  # noqa: E402

logger = logging.getLogger("bench")

SERVICES = netmob.STUDY_SERVICES  # Tor, Web_Adult, YouTube
DEFAULT_ROOT = Path(os.environ.get("CPC_BENCH_DIR", "/tmp/cpc-bench"))
LAGS = tuple(range(-6, 7))
MIN_HOURS = 168
ZERO_VALUE = 0.001


# ---------------------------------------------------------------------------------------------
# machine, output
# ---------------------------------------------------------------------------------------------


def machine_info() -> dict:
    """nproc, CPU model, memory, load, versions and git revision: the header of every table."""
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = {"python": platform.python_version()}
    for name in (
        "numpy",
        "pandas",
        "pyarrow",
        "numba",
        "scipy",
        "dask",
        "distributed",
        "zarr",
        "numcodecs",
        "xarray",
        "geopandas",
        "shapely",
    ):
        try:
            versions[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 - a missing package is reported, not fatal
            versions[name] = None
    git = {}
    with contextlib.suppress(Exception):
        git["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
        ).stdout
        git["dirty_files"] = len([x for x in status.splitlines() if x.strip()])
    return {
        "nproc": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "versions": versions,
        "git": git,
        "date": dt.datetime.now().isoformat(timespec="seconds"),
    }


def command_line() -> str:
    """The command that is running, as one would type it (for the tables' provenance)."""
    exe = Path(sys.executable)
    py = os.path.relpath(exe, REPO) if str(exe).startswith(str(REPO)) else exe.name
    script = os.path.relpath(sys.argv[0], REPO) if sys.argv[0] else "?"
    return " ".join([py, script, *sys.argv[1:]])


def header(title: str, info: dict) -> str:
    v = info["versions"]
    return (
        f"## {title}\n\nMachine: {info['nproc']} cores ({info['cpu_model']}), {info['memory_gib']} GiB, "
        f"load {info['loadavg_at_start']} at start; Python {v['python']}, numpy {v['numpy']}, pandas "
        f"{v['pandas']}, pyarrow {v['pyarrow']}, numba {v['numba']}, dask {v['dask']}, zarr {v['zarr']}, "
        f"numcodecs {v['numcodecs']}, xarray {v['xarray']}; git {info['git'].get('commit', '?')}"
        f" ({info['git'].get('dirty_files', '?')} files changed); {info['date']}.\n\n"
        f"Command: `{command_line()}`\n"
    )


def md_table(headers: Sequence[str], rows: Iterable[Sequence]) -> str:
    def cell(x):
        if isinstance(x, float):
            if x != x:
                return "-"
            if abs(x) >= 100:
                return f"{x:,.0f}"
            return f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"
        return "-" if x is None else str(x)

    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def arg_parser(doc: str) -> argparse.ArgumentParser:
    """The scripts' common parser: description and example from the module docstring, --cities."""
    p = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        epilog=doc.split("Example::")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cities", nargs="+", default=["Lyon"])
    return p


def new_result(info: dict, spec, workers: int, **more) -> dict:
    """The header every result JSON starts with: machine, command, dataset, workers."""
    return {"machine": info, "command": command_line(), "spec": spec.__dict__, "workers": workers, **more}


def emit(text: str, res: dict, json_path: Path | None, md_path: Path | None) -> None:
    """Print the Markdown report and write it and the JSON results where asked."""
    print()
    print(text)
    if json_path:
        write_json(json_path, res)
    if md_path:
        md_path.parent.mkdir(parents=True, exist_ok=True)
        md_path.write_text(text)


def write_json(path: str | Path, obj) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o):
    if isinstance(o, np.integer | np.floating):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path | dt.date):
        return str(o)
    raise TypeError(type(o))


def mb(nbytes: float) -> float:
    return nbytes / 1e6


def quiet_logs() -> None:
    import distributed  # noqa: F401 - it configures its loggers on import; override after

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("distributed", "bokeh", "tornado", "pyogrio", "fiona", "cpc_core", "jobs"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # progress bars of the jobs go to stderr; keep them out of benchmark output
    os.environ.setdefault("TQDM_DISABLE", "1")


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# measuring: wall, CPU, peak memory, bytes, on the driver and on every worker
# ---------------------------------------------------------------------------------------------


def _proc_stats(reset_peak: bool = False) -> dict:
    """CPU seconds, RSS, peak RSS and I/O counters of the calling process (runs on workers too)."""
    p = psutil.Process()
    if reset_peak:
        # Linux: writing 5 resets the peak RSS (VmHWM) to the current RSS
        with contextlib.suppress(OSError):
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
    ct = p.cpu_times()
    hwm = 0
    with contextlib.suppress(OSError):
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
                break
    try:
        ioc = p.io_counters()
        rchar, wchar = ioc.read_chars, ioc.write_chars
    except (AttributeError, psutil.Error):
        rchar = wchar = 0
    return {
        "cpu": ct.user + ct.system,
        "rss": p.memory_info().rss,
        "peak": hwm,
        "rchar": rchar,
        "wchar": wchar,
    }


class Probe:
    """Measure a block: ``p = Probe(client).start(); ...; result = p.stop()``.

    The result holds wall seconds, driver CPU / peak RSS / bytes, and per worker the CPU
    seconds, peak RSS and bytes read/written during the block, plus their totals / maximum.
    """

    def __init__(self, client=None):
        self.client = client

    def _workers(self, reset: bool) -> dict:
        if self.client is None:
            return {}
        return self.client.run(_proc_stats, reset)

    def start(self) -> Probe:
        self.w0 = self._workers(True)
        self.d0 = _proc_stats(True)
        self.t0 = time.perf_counter()
        self.epoch0 = time.time()
        return self

    def stop(self) -> dict:
        wall = time.perf_counter() - self.t0
        d1 = _proc_stats()
        w1 = self._workers(False)
        workers = {}
        for addr, s1 in w1.items():
            s0 = self.w0.get(addr)
            if s0 is None:  # a worker (re)started during the block
                s0 = {"cpu": 0.0, "rchar": 0, "wchar": 0}
            workers[addr] = {
                "cpu_s": s1["cpu"] - s0["cpu"],
                "peak_rss": s1["peak"],
                "rss": s1["rss"],
                "read": s1["rchar"] - s0["rchar"],
                "written": s1["wchar"] - s0["wchar"],
            }
        self.epoch1 = time.time()
        return {
            "wall_s": wall,
            "driver_cpu_s": d1["cpu"] - self.d0["cpu"],
            "driver_peak_rss": d1["peak"],
            "driver_read": d1["rchar"] - self.d0["rchar"],
            "driver_written": d1["wchar"] - self.d0["wchar"],
            "workers_cpu_s": sum(w["cpu_s"] for w in workers.values()),
            "worker_peak_rss_max": max((w["peak_rss"] for w in workers.values()), default=0),
            "workers_read": sum(w["read"] for w in workers.values()),
            "workers_written": sum(w["written"] for w in workers.values()),
            "n_workers": len(workers),
            "workers": workers,
        }


@contextlib.contextmanager
def measure(client=None, into: dict | None = None, key: str | None = None):
    """``with measure(client, results, "name"): ...`` stores the :class:`Probe` result."""
    p = Probe(client).start()
    box: dict = {}
    try:
        yield box
    finally:
        box.update(p.stop())
        box["epoch"] = (p.epoch0, p.epoch1)
        if into is not None and key is not None:
            into[key] = box


def cpu_s(m: dict) -> float:
    """All CPU seconds of a measurement: driver plus workers (floored at 1 µs, so that
    ratios on tiny datasets, where the sampled CPU time can read 0, stay defined)."""
    return max(m["driver_cpu_s"] + m["workers_cpu_s"], 1e-6)


def best(runs: list[dict]) -> dict:
    """The run with the smallest wall time (the least disturbed by other load on the machine)."""
    return min(runs, key=lambda m: m["wall_s"])


@contextlib.contextmanager
def local_client(n_workers: int, memory_limit: int | None = None):
    """A LocalCluster of ``n_workers`` single-threaded processes (as ``cluster.get_client`` makes)."""
    from distributed import Client, LocalCluster

    from cluster import local_worker_env

    limit = memory_limit or psutil.virtual_memory().total // n_workers
    with (
        local_worker_env(),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=limit,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.wait_for_workers(n_workers)
        yield client


def warm_workers(client) -> None:
    """Import and JIT-compile the library on every worker, outside any measurement."""

    def _warm():
        import scipy.sparse as sp

        from cpc_core.cube import store  # noqa: F401
        from cpc_core.estimate import (
            correlation,  # noqa: F401
            rollup,  # noqa: F401
        )
        from cpc_core.netmob import (
            parse,  # noqa: F401
            textio,  # noqa: F401
        )

        store._split_hours(np.ones((1, 4), np.float32), np.empty((1, 1, 4), np.float32), np.empty((1, 25), np.float32))
        # the hourly rollup's kernel, on a day block viewed as rollup.day_blocks yields it
        w = sp.csc_matrix(np.ones((1, 2), np.float32))
        for day in (np.ones((2, 25), np.float32)[:, None, :][:, 0, :],  # large cities: one day per read
                    np.ones((2, 2, 25), np.float32)[:, 0, :]):  # small ones: several days per read
            rollup._reduce_day(day, 24, w.indptr, w.indices, w.data, np.zeros((1, 25)), np.zeros(2))

        parse.parse_bytes(b"1 2 3\n", ncols=2)
        textio.format_netmob(np.array([1]), np.array([[1, 2]]))
        return True

    def _warm_driver():
        # the correlation kernel and the store's hour splitter run in this process; a fresh
        # install compiles them once (~2 s, then numba's on-disk cache): not part of a run
        import xarray as xr

        from cpc_core.cube import store
        from cpc_core.estimate import correlation

        x = xr.DataArray(np.arange(1.0, 49.0).reshape(1, 48), dims=("area", "hour"))
        correlation.lagged_correlation(x, x, lags=[0, 1], transform="log", zero_value=0.001, min_pairs=10)
        store._split_hours(np.ones((1, 4), np.float32), np.empty((1, 1, 4), np.float32), np.empty((1, 25), np.float32))

    _warm_driver()
    _warm()  # first here: numba writes its cache, the workers then load it instead of compiling
    client.run(_warm)


# ---------------------------------------------------------------------------------------------
# the benchmark dataset
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSpec:
    cities: tuple[str, ...] = ("Lyon",)
    scale: float = 1.0
    days: int = 14
    services: tuple[str, ...] = SERVICES
    seed: int = 0
    lag_h: int = 2

    @property
    def tag(self) -> str:
        return f"{'-'.join(self.cities)}-s{self.scale:g}-d{self.days}"


def dataset_dir(spec: DataSpec, root: Path = DEFAULT_ROOT) -> Path:
    return Path(root) / f"data-{spec.tag}"


def ensure_dataset(spec: DataSpec, client, root: Path = DEFAULT_ROOT) -> tuple[Path, dict | None]:
    """Write ``spec`` with the real generator (``jobs.synth.run_synth``) unless already there.

    Returns the dataset folder and the generation's measurement (None when it was reused).
    """
    from cpc_core.synth.generator import SynthSpec
    from jobs.synth import run_synth

    out = dataset_dir(spec, root)
    stamp = out / "bench-dataset.json"
    want = asdict(spec)
    if stamp.exists() and json.loads(stamp.read_text()).get("spec") == json.loads(json.dumps(want)):
        return out, None
    if out.exists():
        shutil.rmtree(out)
    s = SynthSpec(
        cities=spec.cities,
        services=spec.services,
        days=spec.days,
        directions=("DL",),
        scale=spec.scale,
        seed=spec.seed,
        lag_h=spec.lag_h,
    )
    with measure(client) as m:
        summary = run_synth(s, out, client)
    m["bytes_written_text"] = summary["bytes"]
    stamp.write_text(
        json.dumps(
            {"spec": want, "summary": summary, "measurement": m}, indent=2, default=_json_default
        )
    )
    return out, m


def dataset_stamp(data: Path) -> dict:
    """What :func:`ensure_dataset` recorded when it generated ``data`` (spec, summary, timing)."""
    return json.loads((Path(data) / "bench-dataset.json").read_text())


def netmob_files(data: Path) -> list[Path]:
    return sorted((Path(data) / "netmob").glob("*/*/*/*.txt"))


@dataclass
class FileSet:
    files: list[Path]
    nbytes: int
    values: int  # value tokens (tile ids excluded)
    lines: int


def describe_files(files: Sequence[Path]) -> FileSet:
    """Bytes, lines and values of a file set; reading them also warms the page cache."""
    nbytes = values = lines = 0
    for f in files:
        data = Path(f).read_bytes()
        n = data.count(b"\n")
        ncols = netmob.slots_per_day(netmob.parse_file_path(f).day)
        nbytes += len(data)
        lines += n
        values += n * ncols
    return FileSet(list(files), nbytes, values, lines)


# ---------------------------------------------------------------------------------------------
# floors
# ---------------------------------------------------------------------------------------------


def pyarrow_parse(files: Sequence[Path], threads: int) -> int:
    """pyarrow.csv raw parse of every file with ``threads`` threads; returns values parsed."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pa.set_cpu_count(threads)
    ro = pacsv.ReadOptions(autogenerate_column_names=True, use_threads=True)
    po = pacsv.ParseOptions(delimiter=" ")
    n = 0
    for f in files:
        t = pacsv.read_csv(f, read_options=ro, parse_options=po)
        n += t.num_rows * (t.num_columns - 1)
    return n


def pandas_loop(files: Sequence[Path]) -> int:
    """The public loaders' way to read: ``pd.read_csv(f, sep=" ", header=None)`` per file."""
    import pandas as pd

    n = 0
    for f in files:
        df = pd.read_csv(f, sep=" ", header=None)
        n += df.shape[0] * (df.shape[1] - 1)
    return n


def cpc_parse_loop(files: Sequence[Path]) -> int:
    """cpc's validating parser alone, one core: read the bytes, ``parse_bytes``, ``check_file``."""
    from cpc_core.netmob import parse

    n = 0
    for f in files:
        ncols = netmob.slots_per_day(netmob.parse_file_path(f).day)
        pf = parse.parse_bytes(Path(f).read_bytes(), ncols, str(f))
        parse.check_file(pf)
        n += pf.values_read
    return n


def numpy_bandwidth(gib: float = 1.0, repeat: int = 3) -> float:
    """Bytes/s of ``np.sum`` over a float32 array (one thread): the memory floor."""
    a = np.ones(int(gib * 2**30) // 4, dtype=np.float32)
    a.sum()
    t = min(_timeit(a.sum) for _ in range(repeat))
    return a.nbytes / t


def _timeit(fn: Callable) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cube_read(
    client,
    store_path: str,
    cities: Sequence[str],
    hours_per_chunk: int = 168,
    aligned: bool = False,
) -> float:
    """Read the study services of the cube alone: a dask sum over the chunks the rollup uses.

    ``aligned=False`` opens the cube as ``compute_hourly`` does (``open_cube`` default chunks,
    one local day of slots, then ``rollup``'s rechunk to ``hours_per_chunk`` hours);
    ``aligned=True`` opens it directly at ``hours_per_chunk`` hours per Dask chunk.
    """
    from cpc_core.cube import store

    parts = []
    for city in cities:
        chunks = {"service": 1, "tile": -1, "time": hours_per_chunk * 4} if aligned else None
        ds = store.open_cube(store_path, city, chunks=chunks)
        data = ds["DL"].sel(service=list(SERVICES)).transpose("service", "tile", "time").data
        data = data.rechunk({0: 1, 1: -1, 2: hours_per_chunk * 4})
        parts.append(data.sum(dtype=np.float64))
    return float(sum(client.compute(parts, sync=True)))


def _read_store_task(
    store_path: str, city: str, direction: str, services: tuple[int, ...], h0: int, h1: int
) -> float:
    """Read hours ``h0:h1`` of the cube with the rollup's read pattern and only sum them."""
    from cpc_core.cube import store
    from cpc_core.estimate import rollup

    arr = store.open_city(store_path, city)[direction]
    step = rollup.hours_per_read(arr, h1 - h0)
    total = 0.0
    for si in services:
        for a in range(h0, h1, step):
            blk = store.read_slots(store_path, city, direction, si, a * 4, min(a + step, h1) * 4, arr=arr, checked=True)
            total += float(np.nansum(blk, dtype=np.float64))
    return total


def cube_read_store(
    client, store_path: str, cities: Sequence[str], hours_per_task: int = 168
) -> float:
    """The floor of ``rollup.rollup_store``: its tasks and zarr reads, with a sum for the reduction."""
    import dask

    from cpc_core.cube import store
    from cpc_core.estimate import rollup

    tasks = []
    for city in cities:
        g = store.open_city(store_path, city)
        names = [str(x) for x in g["service"][:]]
        n_tiles, n_hours = g["DL"].shape[1], g["time"].shape[0] // 4
        for x in SERVICES:  # one task per service and block, as rollup_store on this array
            for h0, h1 in rollup.task_spans(n_tiles, n_hours, hours_per_task):
                tasks.append(
                    dask.delayed(_read_store_task, pure=False)(store_path, city, "DL", (names.index(x),), h0, h1)
                )
    return float(sum(client.compute(tasks, sync=True)))


def _read_hourly_task(store_path: str, city: str, direction: str, si: int, d0: int, d1: int,
                      n_hours: tuple[int, ...]) -> float:
    """Read days ``d0:d1`` of the hourly tile array as the rollup does (``rollup.day_blocks``); sum."""
    from cpc_core.cube import store
    from cpc_core.estimate import rollup

    arr = store.open_city(store_path, city)[store.hourly_name(direction)]
    return sum(float(blk[:, :nh].sum(dtype=np.float64)) for blk, nh in rollup.day_blocks(arr, si, d0, d1, n_hours))


def cube_read_hourly(
    client, store_path: str, cities: Sequence[str], hours_per_task: int = 168
) -> float:
    """The floor of the hourly rollup: its tasks and day-chunk reads of ``DL_hourly``, summed."""
    import dask

    from cpc_core.cube import store
    from cpc_core.estimate import rollup
    from cpc_core.netmob import facts as netmob

    tasks = []
    for city in cities:
        g = store.open_city(store_path, city)
        names = [str(x) for x in g["service"][:]]
        hours = [netmob.slots_per_day(d) // 4 for d in store.read_layout(store_path, city).days]
        spans = rollup.task_spans(g["tile"].shape[0], sum(hours), hours_per_task, days=len(hours))
        for x in SERVICES:
            for d0, d1 in spans:
                tasks.append(
                    dask.delayed(_read_hourly_task, pure=False)(
                        store_path, city, "DL", names.index(x), d0, d1, tuple(hours[d0:d1])
                    )
                )
    return float(sum(client.compute(tasks, sync=True)))


def has_hourly(store_path: str, cities: Sequence[str]) -> bool:
    """Whether every city of the store has the hourly tile array (layout version >= 2)."""
    from cpc_core.cube import store

    return all(store.has_hourly(store_path, c, "DL") for c in cities)


def cube_values(store_path: str, cities: Sequence[str]) -> tuple[int, int]:
    """(values, uncompressed bytes) of the study services in the cube."""
    from cpc_core.cube import store

    n = 0
    for city in cities:
        lay = store.read_layout(store_path, city)
        n += len(SERVICES) * len(lay.tiles) * len(lay.time)
    return n, 4 * n


def dir_bytes(path: str | Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# ---------------------------------------------------------------------------------------------
# cpc's estimation chain through its functions (what run_pipeline does), outside the pipeline
# ---------------------------------------------------------------------------------------------


def crosswalks(
    data: Path, cities: Sequence[str], grid: str = "communes", square_m: float = 1000.0
) -> dict:
    """The pipeline's tile -> area crosswalks (centroid rule, Lambert-93) per city."""
    import geopandas as gpd
    import pandas as pd

    from cpc_core.geo import areas as geo
    from cpc_core.geo import crosswalk as xwalk
    from cpc_core.geo import tiles as geo_tiles

    tiles = {c: geo_tiles.read_tile_grid(Path(data) / "netmob" / c / f"{c}.geojson") for c in cities}
    if grid == "square":
        all_tiles = pd.concat([t.to_crs("EPSG:2154") for t in tiles.values()], ignore_index=True)
        areas = geo.square_grid(
            gpd.GeoDataFrame(all_tiles, crs="EPSG:2154"), square_m, crs="EPSG:2154"
        )
    else:
        areas = geo.read_areas(
            Path(data) / "geo" / "communes.gpkg",
            code="commune",
            name="name",
            population="population",
            layer="communes",
        )
    return {c: xwalk.crosswalk(tiles[c], areas) for c in cities}


# The earlier xarray rollup: only the benchmarks (and the tests comparing it with rollup_store) use it.


def xarray_rollup(
    traffic: Any,
    weights: Any,
    areas: Iterable[str],
    hours_per_chunk: int = 168,
) -> Any:
    """Hourly traffic per area: ``weights @ traffic`` with slots summed to hours, lazily.

    The pipeline's earlier rollup (``blockwise`` over :func:`cpc_core.cube.store.open_cube`),
    kept here for the benchmarks' comparison with ``rollup.rollup_store`` and for the tests
    that check both agree; it shares the kernel ``rollup._rollup_block``.

    Parameters
    ----------
    traffic
        (service, tile, time) 15-minute traffic of one city, Dask-backed (from
        :func:`cpc_core.cube.store.open_cube`); the time axis starts on a whole UTC hour.
    weights
        (areas, tiles) crosswalk weights in the order of ``traffic.tile`` (see
        ``cpc_core.geo.crosswalk.Crosswalk.matrix``).
    areas
        Area codes, the rows of ``weights``.
    hours_per_chunk
        Hours per task (default a week: blocks of ~10-100 MB at NetMob scale).

    Returns
    -------
    xarray.DataArray
        (service, area, hour) float32, ``hour`` the UTC start of each hour.

    Examples
    --------
    >>> hourly = xarray_rollup(ds["DL"], xwalk.matrix(ds.tile.values, codes), codes)  # doctest: +SKIP
    """
    import dask
    import dask.array as da
    import pandas as pd
    import scipy.sparse as sp
    import xarray as xr

    from cpc_core.estimate.rollup import SLOTS_PER_HOUR, _rollup_block

    areas = np.asarray(list(areas), dtype=object)
    w = sp.csr_matrix(weights, dtype=np.float32)
    n_tile = traffic.sizes["tile"]
    if w.shape != (len(areas), n_tile):
        raise ValueError(f"weights are {w.shape}, expected (areas={len(areas)}, tiles={n_tile})")
    if traffic.sizes["time"] % SLOTS_PER_HOUR:
        raise ValueError(f"time axis of {traffic.sizes['time']} slots is not whole hours")
    t0 = pd.Timestamp(traffic["time"].values[0])
    if t0.minute or t0.second:
        raise ValueError(f"time axis starts at {t0}, not on a whole hour")
    traffic = traffic.transpose("service", "tile", "time")
    data = traffic.data if isinstance(traffic.data, da.Array) else da.from_array(traffic.data)
    # one task = one service x all tiles x a whole number of hours (aligned with Zarr chunks)
    data = data.rechunk({0: 1, 1: -1, 2: hours_per_chunk * SLOTS_PER_HOUR})
    wd = dask.delayed(w, pure=True)
    out = da.blockwise(
        _rollup_block, "sah", data, "sth", wd, None,
        new_axes={"a": len(areas)}, adjust_chunks={"h": lambda c: c // SLOTS_PER_HOUR},
        concatenate=True, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32),
    )
    hours = traffic["time"].values[::SLOTS_PER_HOUR]
    return xr.DataArray(
        out,
        dims=("service", "area", "hour"),
        coords={"service": traffic["service"].values, "area": areas, "hour": hours},
        name="traffic",
        attrs={"long_name": "hourly traffic per area (sum of tile-slots x crosswalk weights)"},
    )


def tile_totals(traffic: Any) -> Any:
    """Window total per (service, tile), float64, lazily (tile-level cpc and top tiles).

    Built on the same Dask array as :func:`xarray_rollup`, so computing both together reads each
    chunk once.
    """
    return traffic.astype(np.float64).sum("time", skipna=True)


def rollup_lazy(
    store_path: str,
    cities: Sequence[str],
    xwalks: dict,
    hours_per_chunk: int = 168,
    aligned: bool = False,
    parts: Sequence[str] = ("rollup", "tiles"),
    method: str = "store",
) -> list:
    """Hourly area series and tile totals per city, lazily, as ``compute_hourly`` builds them.

    ``method="store"``: ``rollup.rollup_store`` (what the pipeline calls: one task per week reads
    the hourly tile array's day chunks, or the hour chunks of a version-1 store, and reduces
    them at once); ``method="slots"``: the same from the 15-minute array; ``method="xarray"``: ``store.open_cube`` +
    ``xarray_rollup`` + ``tile_totals`` (the earlier path), where ``parts`` selects the
    rollup, the tile totals or both and ``aligned`` opens the cube at week chunks.
    """
    from cpc_core.cube import store
    from cpc_core.estimate import rollup

    lazy = []
    if method in ("store", "slots"):
        for city in cities:
            xw = xwalks[city]
            codes = xw.areas
            w = xw.matrix(store.read_layout(store_path, city).tiles, codes)
            lazy += list(
                rollup.rollup_store(
                    store_path, city, w, codes, list(SERVICES), hours_per_task=hours_per_chunk,
                    source="slots" if method == "slots" else "auto",
                )
            )
        return lazy
    for city in cities:
        chunks = {"service": 1, "tile": -1, "time": hours_per_chunk * 4} if aligned else None
        ds = store.open_cube(store_path, city, chunks=chunks)
        traffic = ds["DL"].sel(service=list(SERVICES))
        xw = xwalks[city]
        codes = xw.areas
        if "rollup" in parts:
            lazy.append(
                xarray_rollup(
                    traffic,
                    xw.matrix(ds["tile"].values, codes),
                    codes,
                    hours_per_chunk=hours_per_chunk,
                )
            )
        if "tiles" in parts:
            lazy.append(tile_totals(traffic))
    return lazy


def correlate(hourly_parts: list, lags: Sequence[int] = LAGS):
    """All-lag correlation of log Web_Adult and log Tor per area (the pipeline's call)."""
    from cpc_core.estimate import correlation, rollup

    hourly = rollup.combine_cities(dict(enumerate(hourly_parts)))
    return correlation.lagged_correlation(
        hourly.sel(service="Web_Adult"),
        hourly.sel(service="Tor"),
        lags=list(lags),
        transform="log",
        zero_value=ZERO_VALUE,
        min_pairs=MIN_HOURS,
    )


def pipeline_config(
    data: Path,
    store_path: str,
    out_dir: Path,
    lag_h: int = 0,
    grid: str = "communes",
    square_m: float = 1000.0,
    compressor: str = "lz4",
    figures: bool = True,
):
    """A RunConfig reading the benchmark dataset (no synth section: the data exist)."""
    from cpc_core.config.core import parse_config

    areas = {
        "source": "file",
        "path": str(Path(data) / "geo" / "communes.gpkg"),
        "layer": "communes",
        "code": "commune",
        "name": "name",
        "population": "population",
    }
    if grid != "communes":
        areas.update(grid=grid, square_m=square_m)
    raw = {
        "input": {"netmob": str(Path(data) / "netmob")},
        "ingest": {"store": str(store_path), "compressor": compressor},
        "areas": areas,
        "estimate": {"lag_h": lag_h},
        "output": {"dir": str(out_dir)},
    }
    cov = Path(data) / "covariates"
    # the synthetic covariates for the POI and validation stages (found by themselves only when
    # the data sit under <output.dir>/data); sections the pipeline does not have are left out
    extra = {
        "poi": {"path": str(cov / "poi.csv")},
        "validation": {
            "covariates": [str(cov / "communes.csv")],
            "search_interest": str(cov / "search_interest.csv"),
            "geo": str(Path(data) / "geo" / "communes.gpkg"),
            **({} if figures else {"figures": {"enabled": False}}),
        },
    }
    for key, section in extra.items():
        with contextlib.suppress(Exception):
            parse_config({**raw, key: section}, "<bench>")
            raw[key] = section
    return parse_config(raw, "<bench>")


def run_pipeline_measured(
    cfg, client, driver_profile: bool = False, sample_workers: bool = False
) -> dict:
    """``run_pipeline`` with a :class:`Probe` around every stage it times.

    The pipeline's own stage timer is wrapped (benchmark-side only) so that each stage also
    records CPU time, peak memory and bytes of the driver and the workers under
    ``stages[name]["bench"]``. Returns ``{"total": measurement, "stages": ..., "profile": ...}``.
    """
    import jobs.pipeline as jp

    orig = jp._Timer

    class _Measured(orig):
        def __call__(self, name, cached=False, **extra):
            inner = orig.__call__(self, name, cached, **extra)
            stages = self.stages

            class _Ctx:
                def __enter__(ctx):
                    # a stage run beside another (areas and crosswalks during the ingest) keeps
                    # the workers' samples labelled with the stage they work for
                    if sample_workers and not extra.get("overlaps"):
                        client.run(_sampler_label, name)
                    ctx.probe = Probe(client).start()
                    return inner.__enter__()

                def __exit__(ctx, *exc):
                    r = inner.__exit__(*exc)
                    if sample_workers and not extra.get("overlaps"):
                        client.run(_sampler_label, "-")
                    m = ctx.probe.stop()
                    m["epoch"] = (ctx.probe.epoch0, ctx.probe.epoch1)
                    stages[name]["bench"] = m
                    return r

            return _Ctx()

    jp._Timer = _Measured
    prof = cProfile.Profile() if driver_profile else None
    sampled: dict = {}
    try:
        with contextlib.ExitStack() as stack:
            if sample_workers:
                stack.enter_context(worker_sampling(client, into=sampled))
            with measure(client) as total:
                if prof:
                    prof.enable()
                res = jp.run_pipeline(cfg, client)
                if prof:
                    prof.disable()
    finally:
        jp._Timer = orig
    out = {"total": total, "stages": res["run"]["stages"], "output_dir": res["output_dir"]}
    if prof:
        out["driver_profile"] = cprofile_top(prof)
    if sampled:
        out["worker_threads"] = {"all": sampler_top(sampled["raws"])}
        for name in out["stages"]:
            out["worker_threads"][name] = sampler_top(sampled["raws"], 8, label=name)
    return out


#: Stages after the estimate that the public code has no counterpart for (tables, figures, report).
REPORT_STAGES = ("validation",)


def run_pipeline_plain(cfg, client) -> dict:
    """``run_pipeline`` timed by its wall clock only (no per-stage probes).

    Returns ``{"wall_s", "chain_s" (without the validation/report stage), "stages"}``.
    """
    import jobs.pipeline as jp

    t0 = time.perf_counter()
    res = jp.run_pipeline(cfg, client)
    wall = time.perf_counter() - t0
    stages = res["run"]["stages"]
    report = sum(st["seconds"] for name, st in stages.items() if name in REPORT_STAGES)
    return {"wall_s": wall, "chain_s": wall - report, "stages": stages}


def chain_s(run: dict) -> float:
    """Wall seconds of a measured pipeline run without its validation/report stage."""
    return run["total"]["wall_s"] - sum(
        st["seconds"] for name, st in run["stages"].items() if name in REPORT_STAGES
    )


# ---------------------------------------------------------------------------------------------
# the public code's way: pandas per file, merge, groupby, groupby-apply Pearson
# ---------------------------------------------------------------------------------------------


def public_tile_table(
    data: Path, cities: Sequence[str], grid: str = "communes", square_m: float = 1000.0
):
    """tile -> area table the public way: geopandas centroids in Lambert-93, ``sjoin`` (within)."""
    import geopandas as gpd
    import pandas as pd

    com = gpd.read_file(Path(data) / "geo" / "communes.gpkg", layer="communes").to_crs("EPSG:2154")
    rows = []
    for city in cities:
        tiles = gpd.read_file(Path(data) / "netmob" / city / f"{city}.geojson").to_crs("EPSG:2154")
        cent = gpd.GeoDataFrame(
            {"tile_id": tiles["tile_id"].astype("int64")}, geometry=tiles.centroid, crs="EPSG:2154"
        )
        if grid == "square":
            size = int(square_m)
            x0 = (np.floor(cent.geometry.x / size) * size).astype(int)
            y0 = (np.floor(cent.geometry.y / size) * size).astype(int)
            area = "sq" + str(size) + "_" + x0.astype(str) + "_" + y0.astype(str)
            t = pd.DataFrame({"tile_id": cent["tile_id"], "area": area})
        else:
            j = gpd.sjoin(cent, com[["commune", "geometry"]], predicate="within", how="inner")
            t = pd.DataFrame({"tile_id": j["tile_id"], "area": j["commune"].astype(str)})
        t["city"] = city
        rows.append(t.drop_duplicates("tile_id"))
    return pd.concat(rows, ignore_index=True)


def public_hourly(files: Sequence[Path], table):
    """Per file: ``read_csv``, merge with the tile table, groupby-sum to area x slot, then hours.

    Returns a long frame ``service, area, hour, value``. Slots get their real UTC instants (92 on
    the spring DST day), which is more than the public loaders did, at no cost here.
    """
    import pandas as pd

    by_city = {c: t[["tile_id", "area"]] for c, t in table.groupby("city")}
    out = []
    for f in files:
        key = netmob.parse_file_path(f)
        df = pd.read_csv(f, sep=" ", header=None)
        df = df.merge(by_city[key.city], left_on=0, right_on="tile_id", how="inner")
        wide = df.drop(columns=[0, "tile_id"]).groupby("area").sum()
        slots = netmob.day_slots_utc(key.day)
        hours = slots.floor("h")
        hourly = wide.T.groupby(hours.to_numpy()).sum().T
        long = hourly.stack().rename("value").reset_index()
        long.columns = ["area", "hour", "value"]
        long["service"] = key.service
        out.append(long)
    return pd.concat(out, ignore_index=True)


def public_correlation(long, lags: Sequence[int] = LAGS):
    """Pearson per area per lag with pandas ``groupby().apply`` on log hourly series."""
    import pandas as pd

    w = long.pivot_table(
        index=["area", "hour"], columns="service", values="value", aggfunc="sum"
    ).sort_index()
    w = np.log(w.where(w > 0, ZERO_VALUE))
    res = {}
    for lag in lags:
        res[lag] = w.groupby(level="area").apply(
            lambda g, lag=lag: g["Web_Adult"].corr(g["Tor"].shift(-lag))
        )
    return pd.DataFrame(res)


def public_way(
    data: Path,
    cities: Sequence[str],
    files: Sequence[Path],
    grid: str = "communes",
    lags: Sequence[int] = LAGS,
) -> tuple[dict, object]:
    """The whole public pipeline, timed per step; returns (seconds per step, rho area x lag)."""
    t = {}
    t0 = time.perf_counter()
    table = public_tile_table(data, cities, grid)
    t["table"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    long = public_hourly(files, table)
    t["read+merge+groupby"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rho = public_correlation(long, lags)
    t["correlation"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    return t, rho


# ---------------------------------------------------------------------------------------------
# profiles
# ---------------------------------------------------------------------------------------------


def _short(filename: str) -> str:
    parts = Path(filename).parts
    for anchor in ("cpc_core", "jobs", "site-packages"):
        if anchor in parts:
            i = parts.index(anchor)
            return "/".join(parts[i + (1 if anchor == "site-packages" else 0) :])
    return "/".join(parts[-2:])


def dask_profile_top(prof: dict, n: int = 12) -> dict:
    """Top functions of a ``client.profile()`` tree: inclusive and self share of samples."""
    incl: dict[str, int] = defaultdict(int)
    selfc: dict[str, int] = defaultdict(int)

    def walk(node, seen):
        for child in node.get("children", {}).values():
            d = child["description"]
            name = f"{d['name']} ({_short(d['filename'])}:{d['line_number']})"
            c = child["count"]
            if name not in seen:
                incl[name] += c
            selfc[name] += c - sum(g["count"] for g in child.get("children", {}).values())
            walk(child, seen | {name})

    walk(prof, frozenset())
    total = max(prof.get("count", 0), 1)
    return {
        "samples": prof.get("count", 0),
        "inclusive": [
            (k, round(v / total, 3)) for k, v in sorted(incl.items(), key=lambda kv: -kv[1])[:n]
        ],
        "self": [
            (k, round(v / total, 3)) for k, v in sorted(selfc.items(), key=lambda kv: -kv[1])[:n]
        ],
    }


def cprofile_top(prof: cProfile.Profile, n: int = 15) -> list[tuple[str, float, float]]:
    """(function, cumulative s, own s) of the driver's top functions by cumulative time."""
    s = io.StringIO()
    st = pstats.Stats(prof, stream=s)
    rows = []
    for (fn, line, name), (_cc, _nc, tt, ct, _callers) in st.stats.items():
        rows.append((f"{name} ({_short(fn)}:{line})", ct, tt))
    rows.sort(key=lambda r: -r[1])
    return [(a, round(b, 3), round(c, 3)) for a, b, c in rows[:n]]


def print_profile(title: str, top: dict) -> str:
    lines = [
        f"{title}: {top['samples']} samples (share of worker task time)",
        "  inclusive: " + "; ".join(f"{k} {v:.0%}" for k, v in top["inclusive"][:10]),
        "  self:      " + "; ".join(f"{k} {v:.0%}" for k, v in top["self"][:10]),
    ]
    text = "\n".join(lines)
    print(text, flush=True)
    return text


class ThreadSampler:
    """A tiny sampling profiler over *all* threads of a process (py-spy-like, in-process).

    cProfile and ``client.profile()`` only see the thread that runs the code; zarr v3 and pyarrow
    do their work on their own threads. Every ``interval`` seconds the stacks of all other
    threads are read (``sys._current_frames``); idle frames (waiting on locks, selectors) are
    dropped. Samples are counted under the current ``label`` (a pipeline stage).
    ``with ThreadSampler() as s: ...`` samples the block; ``with s.resume(): ...`` adds blocks.
    """

    IDLE = {
        "wait",
        "acquire",
        "select",
        "poll",
        "_worker",
        "get",
        "sleep",
        "run_forever",
        "_run_once",
        "epoll",
        "__enter__",
        "result",
        "join",
        "_run",
        "_recv",
        "_recv_bytes",
        "recv_bytes",
        "accept",
    }

    def __init__(self, interval: float = 0.001):
        import threading

        self.interval = interval
        self.label = "-"
        self.incl: dict[tuple[str, str], int] = defaultdict(int)
        self.selfc: dict[tuple[str, str], int] = defaultdict(int)
        self.samples: dict[str, int] = defaultdict(int)
        self._active = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-sampler")
        self._thread.start()

    def _run(self):
        import threading

        me = threading.get_ident()
        while not self._stop.is_set():
            if not self._active.wait(0.05):
                continue
            label = self.label
            for tid, frame in sys._current_frames().items():
                if tid == me or frame.f_code.co_name in self.IDLE:
                    continue
                names = []
                f = frame
                while f is not None:
                    co = f.f_code
                    names.append(f"{co.co_name} ({_short(co.co_filename)}:{co.co_firstlineno})")
                    f = f.f_back
                self.samples[label] += 1
                self.selfc[(label, names[0])] += 1
                for n in set(names):
                    self.incl[(label, n)] += 1
            time.sleep(self.interval)

    @contextlib.contextmanager
    def resume(self):
        self._active.set()
        try:
            yield self
        finally:
            self._active.clear()

    def close(self):
        self._active.clear()
        self._stop.set()
        self._thread.join()

    def __enter__(self):
        self._active.set()
        return self

    def __exit__(self, *exc):
        self.close()

    def raw(self) -> dict:
        return {
            "samples": dict(self.samples),
            "self": list(self.selfc.items()),
            "incl": list(self.incl.items()),
        }

    def top(self, n: int = 12, label: str | None = None) -> dict:
        return sampler_top([self.raw()], n, label)


def sampler_top(raws: list[dict], n: int = 12, label: str | None = None) -> dict:
    """Merge :meth:`ThreadSampler.raw` results (e.g. one per worker); top functions by share."""
    samples = sum(
        v for raw in raws for k, v in raw["samples"].items() if label is None or k == label
    )
    out = {"samples": samples}
    for kind in ("self", "incl"):
        agg: dict[str, int] = defaultdict(int)
        for raw in raws:
            for (lab, name), c in raw[kind]:
                if label is None or lab == label:
                    agg[name] += c
        out["inclusive" if kind == "incl" else "self"] = [
            (k, round(v / max(samples, 1), 3))
            for k, v in sorted(agg.items(), key=lambda kv: -kv[1])[:n]
        ]
    return out


def _sampler_start(interval: float, dask_worker=None):
    dask_worker._bench_sampler = ThreadSampler(interval)
    dask_worker._bench_sampler._active.set()


def _sampler_label(label: str, dask_worker=None):
    s = getattr(dask_worker, "_bench_sampler", None)
    if s is not None:
        s.label = label


def _sampler_stop(dask_worker=None) -> dict:
    s = dask_worker._bench_sampler
    s.close()
    del dask_worker._bench_sampler
    return s.raw()


@contextlib.contextmanager
def worker_sampling(client, interval: float = 0.005, into: dict | None = None):
    """Sample every thread of every worker during the block; ``into["raws"]`` gets the counts."""
    client.run(_sampler_start, interval)
    try:
        yield
    finally:
        raws = client.run(_sampler_stop)
        if into is not None:
            into["raws"] = list(raws.values())
