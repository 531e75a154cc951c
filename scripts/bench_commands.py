"""Whole commands as a user types them: first run, re-runs, no-op ingest, help, errors, demo.

Every row is one command run in a fresh Python process (``subprocess``, wall clock, start-up
and imports included), repeated ``--repeat`` times with the rows interleaved (side by side in
one run, so that a change of the machine's load touches every row alike); the median and the
minimum are printed, with the ratios and the targets of issue #14, as a Markdown table that
goes into BENCHMARKS.md unchanged ("Whole commands").

The dataset is the issue's: generated Lyon at full size (scale 1.0), 14 days from 2019-04-15,
the 3 services of the study, download (42 files). It is generated once with ``cpc synth`` into
``--workdir`` and reused while its options are the same (not timed). ``--quick`` runs the same
rows on Lyon at 5 % of its tiles and 8 days (tests/test_bench_smoke.py).

Rows
    first run        ``cpc run bench.yaml`` into an empty output folder and an empty shared cache
                     (a small input: one worker of threads, ``cluster.processes: auto``)
    first run, worker processes   the same with ``--set cluster.processes=true``
    lag re-run       ``cpc run bench.yaml --set estimate.lag_h=-2`` on the completed folder
    grid re-run      ``cpc run bench.yaml --set areas.grid=departments`` (the departments'
                     crosswalk and rollup removed before each repeat: the cube is reused)
    ingest, no-op    ``cpc ingest`` on the complete cube
    help             ``cpc --help``
    config error     ``cpc run bench.yaml --set estimate.lag_h=99`` (exit 2)
    demo             ``cpc demo`` into an empty folder
    authors' loop    the authors' per-file pandas loop on the same files and crosswalk, one lag
                     (:func:`authors_loop`; also a fresh process)

Example::

    python scripts/bench_commands.py --workdir /tmp/cpc-bench-commands --repeat 3 \\
        --md bench-commands.md
    python scripts/bench_commands.py --quick --repeat 1     # a minute: the smoke test's run
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("Tor", "Web_Adult", "YouTube")
LAG = -2  # the lag of the lag re-run and of the authors' loop
ZERO_VALUE = 0.001  # estimate.zero_value's default: log of a zero hour


@dataclass(frozen=True)
class Dataset:
    """A generated NetMob tree (``cpc synth`` options)."""

    city: str
    scale: float
    start: str
    days: int

    @property
    def tag(self) -> str:
        return f"{self.city.lower()}-s{self.scale:g}-{self.start}-{self.days}d"


FULL = Dataset("Lyon", 1.0, "2019-04-15", 14)
QUICK = Dataset("Lyon", 0.05, "2019-04-15", 8)  # 8 days: 192 hours, over estimate.min_hours
PARIS = Dataset("Paris", 1.0, "2019-03-16", 77)

#: row -> (target text, test on the median seconds), issue #14
TARGETS = {
    "lag re-run": ("<= 2.0 s", lambda s: s <= 2.0),
    "grid re-run": ("<= 3.5 s", lambda s: s <= 3.5),
    "ingest, nothing to do": ("<= 1.0 s", lambda s: s <= 1.0),
    "cpc --help": ("<= 0.5 s", lambda s: s <= 0.5),
    "config error": ("<= 0.5 s", lambda s: s <= 0.5),
    "cpc demo": ("<= 8 s", lambda s: s <= 8.0),
}


# ---------------------------------------------------------------------------------------------
# the authors' way: one pandas read per file, the crosswalk merged in, hourly sums, Pearson
# ---------------------------------------------------------------------------------------------


def authors_loop(netmob: Path, city: str, crosswalk: Path, lag: int) -> dict:
    """The authors' per-file pandas loop on ``city``'s Tor and Web_Adult files, one lag.

    Each day file (``tile_id`` then 96 quarter-hour columns, space separated) is read with
    ``pandas.read_csv``, its tiles mapped to communes with the crosswalk cpc built (``tile_id``,
    ``area``, ``weight``), summed per commune and hour, and Web_Adult correlated with Tor
    ``lag`` hours later per commune on the log of the hourly series. Quarter-hour columns are
    given their UTC hours as NetMob23 defines them (local time, Europe/Paris).
    """
    import numpy as np
    import pandas as pd

    xw = pd.read_parquet(crosswalk)[["tile_id", "area", "weight"]]
    per_service = {}
    for service in ("Tor", "Web_Adult"):
        parts = []
        for day_dir in sorted((netmob / city / service).iterdir()):
            for f in sorted(day_dir.glob("*_DL.txt")):
                df = pd.read_csv(f, sep=" ", header=None)
                n_values = df.shape[1] - 1  # 96, or 92 / 100 on the days the clocks change
                df = df.rename(columns={0: "tile_id"}).merge(xw, on="tile_id", how="inner")
                vals = df.iloc[:, 1:1 + n_values].mul(df["weight"], axis=0)
                vals["area"] = df["area"].to_numpy()
                by_area = vals.groupby("area").sum()
                # the day's quarter hours in UTC: local midnight to local midnight, Europe/Paris
                day = pd.Timestamp(day_dir.name)
                start, end = (d.tz_localize("Europe/Paris").tz_convert("UTC") for d in (day, day + pd.Timedelta(days=1)))
                slots = pd.date_range(start, end, freq="15min", inclusive="left")
                if len(slots) != n_values:
                    raise SystemExit(f"authors_loop: {f} has {n_values} values, its day {len(slots)} quarter hours")
                hourly = by_area.T.groupby(slots.floor("h").to_numpy()).sum().T
                parts.append(hourly)
        per_service[service] = pd.concat(parts, axis=1).sort_index(axis=1)
    wa, tor = (np.log(per_service[s].where(per_service[s] > 0, ZERO_VALUE)) for s in ("Web_Adult", "Tor"))
    rho = {}
    for area in wa.index:
        x = wa.loc[area]
        y = tor.loc[area].reindex(x.index).shift(-lag)  # Tor ``lag`` hours after Web_Adult
        rho[area] = float(x.corr(y))
    return {"areas": len(rho), "rho": rho}


# ---------------------------------------------------------------------------------------------
# running commands
# ---------------------------------------------------------------------------------------------


def _env(cache: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["CPC_CACHE_DIR"] = str(cache)  # the shared geometry cache: per benchmark, never the user's
    env["TQDM_DISABLE"] = "1"
    return env


#: What the installed ``cpc`` console script runs (pyproject.toml's ``jobs.cli:entry``), with this
#: repository's code first on the path. Not ``python -m jobs.cli``: a module run as ``__main__``
#: ends differently, and the interpreter's teardown after a demo took ~1 s with the console
#: script against 0.04 s with ``-m`` (before ``entry`` ended the process itself): the user's wait
#: is the console script's.
CPC_SCRIPT = "import sys; from jobs.cli import entry; sys.argv[0] = 'cpc'; sys.exit(entry())"


def cpc(*args: str) -> list[str]:
    return [sys.executable, "-c", CPC_SCRIPT, *args]


def timed(cmd: list[str], env: dict, expect: int = 0, timeout: float = 3600) -> float:
    """Wall seconds of ``cmd`` in a fresh process; its exit status must be ``expect``."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if p.returncode != expect:
        raise SystemExit(f"bench_commands: {' '.join(cmd)} exited {p.returncode}, expected {expect}:\n"
                         f"{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return wall


def cpu_probe() -> float:
    """Seconds of a fixed pure-Python loop (10^7 additions) in a fresh process: how fast this
    machine's CPU is at the moment. The VMs here share their host, and their speed drifts by
    1.5x between quiet and busy periods without the load average showing it (the host's other
    guests are not in it): read the figures of two runs with their probes."""
    code = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(10**7):\n    s += i\nprint(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    return round(float(out.stdout.strip()), 2)


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def ensure_dataset(ds: Dataset, workdir: Path) -> Path:
    """``workdir/data-<tag>``: generated with ``cpc synth`` unless its stamp says it is there."""
    data = workdir / f"data-{ds.tag}"
    stamp = data / "bench-dataset.json"
    if stamp.exists() and json.loads(stamp.read_text()) == asdict(ds):
        return data
    if data.exists():
        shutil.rmtree(data)
    print(f"generating {ds} into {data} (not timed)", flush=True)
    timed(cpc("synth", "--out", str(data), "--cities", ds.city, "--start", ds.start, "--days", str(ds.days),
              "--scale", f"{ds.scale:g}", "--services", *SERVICES, "--directions", "DL"),
          _env(workdir / "cache-synth"))
    stamp.write_text(json.dumps(asdict(ds)))
    return data


def write_config(data: Path, out: Path, path: Path) -> Path:
    path.write_text(
        "# written by scripts/bench_commands.py\n"
        f"input:\n  netmob: {data / 'netmob'}\n  services: [{', '.join(SERVICES)}]\n  directions: [DL]\n"
        f"areas:\n  path: {data / 'geo' / 'communes.gpkg'}\n"
        f"poi:\n  path: {data / 'covariates' / 'poi.csv'}\n"
        f"output:\n  dir: {out}\n"
    )
    return path


def _reset(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


class Bench:
    """The rows of one dataset, measured ``repeat`` times each, interleaved."""

    def __init__(self, ds: Dataset, workdir: Path, repeat: int, demo_args: list[str], with_demo: bool = True):
        self.ds, self.workdir, self.repeat = ds, workdir, repeat
        self.data = ensure_dataset(ds, workdir)
        self.root = workdir / f"runs-{ds.tag}"
        self.root.mkdir(parents=True, exist_ok=True)
        self.first_out, self.re_out = self.root / "first", self.root / "rerun"
        self.first_cfg = write_config(self.data, self.first_out, self.root / "first.yaml")
        self.re_cfg = write_config(self.data, self.re_out, self.root / "rerun.yaml")
        self.env = _env(self.root / "shared-cache")
        self.demo_args, self.with_demo = demo_args, with_demo
        self.times: dict[str, list[float]] = {}
        self.commands: dict[str, str] = {}

    def _row(self, name: str, cmd: list[str], env: dict | None = None, expect: int = 0) -> None:
        shown = ["cpc", *cmd[3:]] if cmd[1:3] == ["-c", CPC_SCRIPT] else ["python", *cmd[1:]]
        # paths under the work folder as $W, the repository's as relative: a readable table
        text = " ".join(shown).replace(str(REPO) + "/", "").replace(str(self.workdir.resolve()), "$W")
        self.commands.setdefault(name, text.replace(str(self.workdir), "$W"))
        wall = timed(cmd, env or self.env, expect)
        self.times.setdefault(name, []).append(wall)
        print(f"  {name}: {wall:.2f} s (load {load()})", flush=True)

    def prepare(self) -> None:
        """The re-runs' folder: one completed run (not timed), its cache entries noted."""
        if not (self.re_out / "runs" / "LATEST").exists():
            _reset(self.re_out)
            timed(cpc("run", str(self.re_cfg)), self.env)
        self.base_cache = {p.name for p in (self.re_out / "internal" / "cache").iterdir()}

    def crosswalk(self) -> Path:
        found = sorted((self.re_out / "internal" / "cache").glob(f"crosswalk-{self.ds.city}-*.parquet"))
        base = [p for p in found if p.name in self.base_cache]
        return base[0]

    def once(self) -> None:
        # first run: empty output folder, empty shared cache (tile grid parsed and reprojected)
        _reset(self.first_out)
        fresh = self.root / "shared-cache-first"
        _reset(fresh)
        self._row("first run", cpc("run", str(self.first_cfg)), _env(fresh))
        # the same with worker processes (cluster.processes: true): what processes cost a small run
        _reset(self.first_out)
        _reset(fresh)
        self._row("first run, worker processes", cpc("run", str(self.first_cfg), "--set", "cluster.processes=true"),
                  _env(fresh))
        self._row("lag re-run", cpc("run", str(self.re_cfg), "--set", f"estimate.lag_h={LAG}"))
        cache = self.re_out / "internal" / "cache"
        for p in cache.iterdir():  # the grid's own crosswalk and rollup: built again each time
            if p.name not in self.base_cache:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        self._row("grid re-run", cpc("run", str(self.re_cfg), "--set", "areas.grid=departments"))
        self._row("ingest, nothing to do", cpc("ingest", "--input", str(self.data / "netmob"), "--store",
                                               str(self.re_out / "cube.zarr"), "--services", *SERVICES,
                                               "--directions", "DL"))
        self._row("cpc --help", cpc("--help"))
        self._row("config error", cpc("run", str(self.re_cfg), "--set", "estimate.lag_h=99"), expect=2)
        if self.with_demo:
            demo = self.root / "demo"
            _reset(demo)
            self._row("cpc demo", cpc("demo", "--out", str(demo), *self.demo_args))
        self._row("authors' loop", [sys.executable, str(Path(__file__).resolve()), "--authors-loop",
                                    str(self.data / "netmob"), self.ds.city, str(self.crosswalk()), str(LAG)])

    def agreement(self) -> float:
        """Largest |rho| difference, authors' loop against cpc's rho_by_lag.csv at the lag,
        over the areas that are not small and have no outage hours (a check, not a timing)."""
        import pandas as pd

        ref = authors_loop(self.data / "netmob", self.ds.city, self.crosswalk(), LAG)["rho"]
        # the re-run folder holds the departments now; the first run's folder the communes
        rbl = pd.read_csv(self.first_out / "rho_by_lag.csv", dtype={"commune": str})
        mine = rbl[(rbl["lag_h"] == LAG) & ~rbl["small_area"]].set_index("commune")["rho"]
        diffs = [abs(mine[a] - ref[a]) for a in mine.index if a in ref and mine[a] == mine[a] and ref[a] == ref[a]]
        return (max(diffs) if diffs else float("nan")), len(diffs)


def summarize(bench: Bench, target: str = ">= 1.5x") -> tuple[list[dict], dict]:
    rows = []
    for name, ts in bench.times.items():
        med = statistics.median(ts)
        tgt = TARGETS.get(name)
        rows.append({"row": name, "command": bench.commands[name], "median_s": med, "min_s": min(ts), "n": len(ts),
                     "target": tgt[0] if tgt else "", "met": (tgt[1](med) if tgt else None)})
    med = {r["row"]: r["median_s"] for r in rows}
    low = {r["row"]: r["min_s"] for r in rows}
    pairs = []
    if "first run" in med and "authors' loop" in med:
        pairs.append((f"authors' loop / first run (target {target})", "authors' loop", "first run"))
    pairs += [(f"first run / {name}", "first run", name) for name in ("lag re-run", "grid re-run")
              if "first run" in med and name in med]
    if "first run, worker processes" in med and "first run" in med:
        pairs.append(("first run: worker processes / one worker of threads (processes: auto)",
                      "first run, worker processes", "first run"))
    # of the medians, and of the minimums (the least disturbed by a shared machine's load)
    ratios = {label: med[a] / med[b] for label, a, b in pairs}
    ratios.update({f"{label}, minimums": low[a] / low[b] for label, a, b in pairs})
    return rows, ratios


def markdown(title: str, rows: list[dict], ratios: dict, notes: list[str]) -> str:
    out = [f"### {title}", "", "| command | median s | min s | n | target | met |", "|---|---|---|---|---|---|"]
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "no")
        out.append(f"| `{r['command']}` ({r['row']}) | {r['median_s']:.2f} | {r['min_s']:.2f} | {r['n']} | "
                   f"{r['target']} | {met} |")
    out += ["", "| ratio | value |", "|---|---|"]
    out += [f"| {k} | {v:.2f}x |" for k, v in ratios.items()]
    out += ["", *notes]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("Example::")[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/cpc-bench-commands"),
                   help="generated data, outputs and caches (kept between runs: the data is generated once)")
    p.add_argument("--repeat", type=int, default=3, help="repeats of every row (default 3)")
    p.add_argument("--quick", action="store_true", help="Lyon at 5 %% of its tiles, 8 days, a small demo (Nice, 4 days)")
    p.add_argument("--paris", action="store_true", help="also full-size Paris, 77 days: first run and the "
                                                        "authors' loop (long; a many-core machine)")
    p.add_argument("--paris-only", action="store_true", help="only the Paris rows (implies --paris)")
    p.add_argument("--md", type=Path, default=None, help="also write the Markdown table here")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    p.add_argument("--authors-loop", nargs=4, metavar=("NETMOB", "CITY", "CROSSWALK", "LAG"), default=None,
                   help=argparse.SUPPRESS)  # one timed row: the reference loop in its own process
    a = p.parse_args(argv)
    if a.authors_loop:
        netmob, city, xw, lag = a.authors_loop
        res = authors_loop(Path(netmob), city, Path(xw), int(lag))
        print(f"authors' loop: {res['areas']} areas, lag {lag}")
        return 0

    a.workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"cpus": os.cpu_count()}
    md = ""
    if not a.paris_only:
        ds = QUICK if a.quick else FULL
        demo_args = ["--set", "synth.cities=[Nice]", "--set", "synth.days=4"] if a.quick else []
        load_start, probe_start = load(), cpu_probe()
        t0 = time.perf_counter()
        bench = Bench(ds, a.workdir, a.repeat, demo_args)
        bench.prepare()
        for i in range(a.repeat):
            print(f"repeat {i + 1}/{a.repeat} (load {load()})", flush=True)
            bench.once()
            if a.json and i + 1 < a.repeat:  # what is measured so far survives an interrupted run
                rows, ratios = summarize(bench)
                a.json.write_text(json.dumps({"dataset": asdict(ds), "rows": rows, "ratios": ratios, "partial": i + 1,
                                              "load_start": load_start, "load_now": load()}, indent=2, default=str))
        rows, ratios = summarize(bench)
        diff, n_common = bench.agreement()
        results = {"dataset": asdict(ds), "rows": rows, "ratios": ratios, "load_start": load_start, "load_end": load(),
                   "cpu_probe_s": [probe_start, cpu_probe()],
                   "rho_max_abs_diff_vs_authors": diff, "rho_areas_compared": n_common,
                   "seconds": round(time.perf_counter() - t0, 1), "cpus": os.cpu_count()}
        notes = [f"Dataset: generated {ds.city}, scale {ds.scale:g}, {ds.days} days from {ds.start}, "
                 f"{', '.join(SERVICES)}, download. {os.cpu_count()} cores; load average {load_start} at start, "
                 f"{results['load_end']} at the end; CPU probe (10^7 Python additions) {probe_start} s at start, "
                 f"{results['cpu_probe_s'][1]} s at the end. Rows interleaved, {a.repeat} repeat(s).",
                 f"rho at lag {LAG}, authors' loop against cpc (rho_by_lag.csv, {n_common} areas not small with "
                 f"a rho in both): max |difference| {diff:.2g} (cpc leaves out the known outage days and areas "
                 "with too few hours; the loop does not).",
                 "", f"$W is the work folder. Command: `python scripts/bench_commands.py "
                 f"{' '.join(argv if argv is not None else sys.argv[1:])}`"]
        md = markdown(f"Whole commands ({'quick' if a.quick else 'issue #14 dataset'})", rows, ratios, notes)
    if a.paris or a.paris_only:
        pb = Bench(PARIS, a.workdir, 1, [], with_demo=False)
        pb.prepare()
        _reset(pb.first_out)
        pb._row("first run", cpc("run", str(pb.first_cfg)), _env(pb.root / "shared-cache-first"))
        pb._row("authors' loop", [sys.executable, str(Path(__file__).resolve()), "--authors-loop",
                                  str(pb.data / "netmob"), PARIS.city, str(pb.crosswalk()), str(LAG)])
        prow, pratios = summarize(pb, ">= 3x")
        results["paris"] = {"rows": prow, "ratios": pratios}
        md += ("\n\n" if md else "") + markdown(
            "Whole commands, Paris at full size, 77 days (target >= 3x)", prow, pratios,
            [f"load average {load()} at the end; {os.cpu_count()} cores; worker processes (the input is over "
             "cluster.SMALL_INPUT_BYTES)"])
    print()
    print(md)
    if a.md:
        a.md.write_text(md + "\n")
    if a.json:
        a.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
