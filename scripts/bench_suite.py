"""Performance at scale: one command, a fixed dataset, every stage, floors and the public way.

Generates a fixed benchmark dataset with the real generator (default: one city at real size,
the three study services, 14 days, DL), then on a LocalCluster of ``--workers`` processes:

1. the first run end to end (``run_pipeline``: ingest, areas, crosswalk, rollup, correlation,
   estimate, outputs), per stage: wall, CPU (driver + workers), values/s per worker, peak RSS
   per worker, bytes read / written; a profile of the driver (cProfile) and of the workers
   (``client.profile()``) says which stage and function dominate;
2. side by side the floors: pyarrow raw parse of the text (one thread per worker), reading the
   Zarr cube alone (a dask sum), numpy memory bandwidth; and the public code's way (pandas
   read_csv per file, merge, groupby, groupby-apply Pearson), whose total is compared with the
   first run;
3. re-runs through the stage cache: another lag, another grid (square 1 km), as % of the first
   run;
4. memory flatness: peak worker memory per stage at D and 2D days.

Results go to ``--json`` and ``--md``. ``--combine A.json B.json ...`` merges runs made with
different ``--workers`` into one scaling table (``scripts/device_scaling.sh`` uses it).

Example::

    .venv/bin/python scripts/bench_suite.py --quick               # ~3 minutes on 2 cores
    .venv/bin/python scripts/bench_suite.py --workers 16 --days 28 --json suite.json --md suite.md
    .venv/bin/python scripts/bench_suite.py --combine w1.json w2.json w4.json --md scaling.md
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _benchlib as bl  # noqa: E402

QUICK = {"scale": 0.5, "days": 10}
FULL = {"scale": 1.0, "days": 14}


def _stage_rows(run: dict, n_text_values: int, n_cube_values: int, workers: int) -> list[list]:
    total = run["total"]["wall_s"]
    rows = []
    for name, st in run["stages"].items():
        m = st.get("bench")
        if m is None:
            continue
        vals = {"ingest": n_text_values, "rollup": n_cube_values}.get(name)
        if st.get("cached") or (name == "ingest" and not st.get("files_done", 1)):
            vals = None
        if st.get("overlaps"):
            # run on the driver beside the ingest: its process figures would include the
            # ingest's, so only its own wall time is given (it does not add to the total)
            rows.append([f"{name}{' (cached)' if st.get('cached') else ''} (during {st['overlaps']})",
                         m["wall_s"], None, None, None, None, None, None, None])
            continue
        rows.append(
            [
                name + (" (cached)" if st.get("cached") else ""),
                m["wall_s"],
                m["wall_s"] / total,
                bl.cpu_s(m),
                vals / m["wall_s"] / 1e6 / workers if vals else None,
                bl.mb(m["worker_peak_rss_max"]),
                bl.mb(m["driver_peak_rss"]),
                bl.mb(m["driver_read"] + m["workers_read"]),
                bl.mb(m["driver_written"] + m["workers_written"]),
            ]
        )
    t = run["total"]
    rows.append(
        [
            "**total**",
            total,
            1.0,
            bl.cpu_s(t),
            None,
            bl.mb(t["worker_peak_rss_max"]),
            bl.mb(t["driver_peak_rss"]),
            bl.mb(t["driver_read"] + t["workers_read"]),
            bl.mb(t["driver_written"] + t["workers_written"]),
        ]
    )
    return rows


STAGE_HEADERS = [
    "stage",
    "wall s",
    "share",
    "CPU s",
    "M values/s per worker",
    "peak RSS per worker MB (max)",
    "driver peak MB",
    "read MB",
    "written MB",
]


def run_suite(args) -> dict:
    info = bl.machine_info()
    spec = bl.DataSpec(cities=tuple(args.cities), scale=args.scale, days=args.days)
    work = args.root / f"work-suite-{spec.tag}-w{args.workers}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # a fresh shared cache: the first run parses the tile GeoJSONs as a user's first run does,
    # later runs into other folders (another grid) reuse the parsed copy as theirs would
    os.environ["CPC_CACHE_DIR"] = str(work / "user-cache")
    W = args.workers
    res = bl.new_result(info, spec, W, parts={})
    t_start = time.perf_counter()

    with bl.local_client(W) as client:
        bl.warm_workers(client)
        bl.say(f"dataset {spec.tag}: generating if needed ({W} workers)")
        data, gen = bl.ensure_dataset(spec, client, args.root)
        stamp = bl.dataset_stamp(data)
        res["synth"] = {
            "measurement": stamp.get("measurement"),
            "reused": gen is None,
            "summary": stamp["summary"],
        }
        files = bl.netmob_files(data)
        fs = bl.describe_files(files)
        res["files"] = {"n": len(files), "bytes": fs.nbytes, "values": fs.values}
        how = " (reused)" if gen is None else f", generated in {gen['wall_s']:.1f} s"
        bl.say(
            f"  {len(files)} files, {bl.mb(fs.nbytes):.0f} MB text, {fs.values / 1e6:.0f} M values{how}"
        )
        if args.generate_only:
            return res
        cube = str(work / "cube.zarr")
        if not args.public_only:
            bl.say("first run end to end")
            if gen is not None:  # the generator ran on these workers: start the run on fresh ones
                client.restart()
                bl.warm_workers(client)
            first = bl.run_pipeline_measured(
                bl.pipeline_config(data, cube, work / "run", figures=not args.no_figures),
                client,
                driver_profile=True,
                sample_workers=True,
            )
            t = first["total"]
            res["first_run"] = first
            n_values, n_bytes = bl.cube_values(cube, spec.cities)
            res["cube"] = {
                "values": n_values,
                "bytes_float32": n_bytes,
                "bytes_on_disk": bl.dir_bytes(cube),
            }
            bl.say(
                f"  {t['wall_s']:.1f} s: "
                + ", ".join(f"{k} {v['seconds']:.1f}" for k, v in first["stages"].items())
            )

            if not args.no_floors:
                bl.say("floors: pyarrow raw parse, cube read, numpy bandwidth")
                runs: dict[str, list] = {
                    "pyarrow_parse": [],
                    "cube_read": [],
                    "cube_read_aligned": [],
                }
                hourly = bl.has_hourly(cube, spec.cities)
                if hourly:
                    runs["cube_read_hourly"] = []
                for _ in range(args.repeat):
                    with bl.measure() as m:
                        bl.pyarrow_parse(files, W)
                    runs["pyarrow_parse"].append(m)
                    with bl.measure(client) as m:
                        bl.cube_read_store(client, cube, spec.cities)
                    runs["cube_read"].append(m)
                    with bl.measure(client) as m:
                        bl.cube_read(client, cube, spec.cities, aligned=True)
                    runs["cube_read_aligned"].append(m)
                    if hourly:
                        with bl.measure(client) as m:
                            bl.cube_read_hourly(client, cube, spec.cities)
                        runs["cube_read_hourly"].append(m)
                fl = {k: bl.best(v) for k, v in runs.items()}
                fl["numpy_sum_Bps_1thread"] = bl.numpy_bandwidth(0.5)
                res["floors"] = fl

            if not args.no_reruns:
                bl.say("re-runs: another lag, another grid")

                def rerun(folder: str, **kw):
                    return bl.pipeline_config(data, cube, work / folder, figures=not args.no_figures, **kw)

                res["rerun_lag"] = bl.run_pipeline_measured(rerun("run", lag_h=2), client)
                res["rerun_grid"] = bl.run_pipeline_measured(rerun("run-square", grid="square"), client)
                # the same two re-runs as a user makes them: without the per-stage probes
                # (two client.run calls per stage to read /proc in every worker), which add
                # ~0.1-0.4 s to a ~1-3 s run; a third lag, and a fresh folder for the grid so
                # that its rollup is not a cache hit
                res["rerun_lag_plain"] = bl.run_pipeline_plain(rerun("run", lag_h=3), client)
                res["rerun_grid_plain"] = bl.run_pipeline_plain(rerun("run-square-2", grid="square"), client)

            if not args.no_flatness:
                spec2 = bl.DataSpec(cities=spec.cities, scale=spec.scale, days=2 * spec.days)
                bl.say(f"memory flatness: dataset {spec2.tag}")
                data2, _ = bl.ensure_dataset(spec2, client, args.root)
                # fresh worker processes, as the first run had: peaks must not carry over between runs
                client.restart()
                bl.warm_workers(client)
                cube2 = str(work / "cube-2d.zarr")
                run2 = bl.run_pipeline_measured(
                    bl.pipeline_config(data2, cube2, work / "run-2d", figures=not args.no_figures),
                    client,
                )
                res["flatness"] = {
                    "days": [spec.days, spec2.days],
                    "run_2d": run2,
                    "files_2d": len(bl.netmob_files(data2)),
                }
                shutil.rmtree(cube2, ignore_errors=True)

    if not args.no_public or args.public_only:
        bl.say("public way (pandas, one core)")
        t_pub, _ = bl.public_way(data, spec.cities, files, "communes")
        res["public"] = t_pub
        bl.say(f"  {t_pub['total']:.1f} s")
    res["seconds"] = time.perf_counter() - t_start
    shutil.rmtree(work, ignore_errors=True)
    return res


def render(res: dict) -> str:
    W = res["workers"]
    spec = res["spec"]
    d = res["files"]
    title = (
        f"Suite: {'-'.join(spec['cities'])}, scale {spec['scale']:g}, {spec['days']} days ({d['n']} files, "
        f"{bl.mb(d['bytes']):.0f} MB text, {d['values'] / 1e6:.0f} M values), {W} workers"
    )
    md = [bl.header(title, res["machine"])]
    sy = res["synth"]
    if sy.get("measurement"):
        m = sy["measurement"]
        md.append(
            f"Dataset generated by `run_synth` in {m['wall_s']:.1f} s ({bl.cpu_s(m):.1f} CPU s, "
            f"{bl.mb(sy['summary']['bytes']) / m['wall_s']:.0f} MB/s of text"
            f"{'; reused from an earlier run' if sy['reused'] else ''}).\n"
        )
    if "first_run" in res:
        first = res["first_run"]
        c = res["cube"]
        md += [
            f"First run end to end (cube {c['values'] / 1e6:.0f} M values, {c['bytes_float32'] / 1e9:.2f} GB as "
            f"float32, {bl.mb(c['bytes_on_disk']):.0f} MB on disk):",
            "",
            bl.md_table(STAGE_HEADERS, _stage_rows(first, d["values"], c["values"], W)),
            "",
        ]
        ratios = {}
        lines = []
        if "floors" in res:
            fl = res["floors"]
            ing = first["stages"]["ingest"]["bench"]
            rol = first["stages"]["rollup"]["bench"]
            bw = fl["numpy_sum_Bps_1thread"]
            rows = [
                [
                    f"pyarrow.csv raw parse, {W} threads",
                    fl["pyarrow_parse"]["wall_s"],
                    bl.cpu_s(fl["pyarrow_parse"]),
                    d["values"] / fl["pyarrow_parse"]["wall_s"] / 1e6 / W,
                ],
                *(
                    [[
                        "read the hourly tile array alone (the rollup's tasks and day-chunk reads, summed)",
                        fl["cube_read_hourly"]["wall_s"],
                        bl.cpu_s(fl["cube_read_hourly"]),
                        c["values"] / fl["cube_read_hourly"]["wall_s"] / 1e6 / W,
                    ]]
                    if "cube_read_hourly" in fl
                    else []
                ),
                [
                    "read the 15-minute cube alone (hour-chunk reads in week tasks, summed)",
                    fl["cube_read"]["wall_s"],
                    bl.cpu_s(fl["cube_read"]),
                    c["values"] / fl["cube_read"]["wall_s"] / 1e6 / W,
                ],
                [
                    "read the cube alone (dask sum over `open_cube` at week chunks)",
                    fl["cube_read_aligned"]["wall_s"],
                    bl.cpu_s(fl["cube_read_aligned"]),
                    c["values"] / fl["cube_read_aligned"]["wall_s"] / 1e6 / W,
                ],
                [
                    f"numpy sum over the cube's bytes at {bw / 1e9:.1f} GB/s per thread, {W} threads",
                    c["bytes_float32"] / bw / W,
                    None,
                    bw / 4 / 1e6,
                ],
            ]
            md += [
                "Floors:",
                "",
                bl.md_table(["floor", "wall s", "CPU s", "M values/s per worker"], rows),
                "",
            ]
            ratios["ingest_vs_pyarrow_parse"] = fl["pyarrow_parse"]["wall_s"] / ing["wall_s"]
            ratios["ingest_vs_pyarrow_parse_cpu"] = bl.cpu_s(fl["pyarrow_parse"]) / bl.cpu_s(ing)
            # the floor of the rollup is reading what it reads: the hourly array when there is one
            rfl = fl.get("cube_read_hourly", fl["cube_read"])
            ratios["rollup_vs_cube_read"] = rol["wall_s"] / rfl["wall_s"]
            ratios["rollup_vs_cube_read_cpu"] = bl.cpu_s(rol) / bl.cpu_s(rfl)
            ratios["rollup_vs_15min_cube_read"] = rol["wall_s"] / fl["cube_read"]["wall_s"]
            lines += [
                f"- ingest throughput / pyarrow raw parse: {ratios['ingest_vs_pyarrow_parse']:.2f}x wall, "
                f"{ratios['ingest_vs_pyarrow_parse_cpu']:.2f}x per CPU-second (target >= 1.0x)",
                f"- rollup stage (incl. writing its cache) / reading what it reads alone "
                f"({'the hourly tile array' if 'cube_read_hourly' in fl else 'the 15-minute cube'}): "
                f"{ratios['rollup_vs_cube_read']:.2f}x wall, {ratios['rollup_vs_cube_read_cpu']:.2f}x CPU "
                f"(target <= 2x); / reading the 15-minute cube: {ratios['rollup_vs_15min_cube_read']:.2f}x",
            ]
        f_s = bl.chain_s(first)
        if "public" in res:
            ratios["first_run_vs_public"] = res["public"]["total"] / f_s
            p = res["public"]
            lines.append(
                f"- public way (pandas, 1 core) {p['total']:.1f} s (table {p['table']:.1f}, read+merge+groupby "
                f"{p['read+merge+groupby']:.1f}, correlation {p['correlation']:.1f}); cpc's first run "
                f"without its validation stage {f_s:.1f} s (all stages {first['total']['wall_s']:.1f} s): "
                f"**{ratios['first_run_vs_public']:.2f}x** the public way's speed"
            )
        if "rerun_lag" in res:
            lag_s, grid_s = bl.chain_s(res["rerun_lag"]), bl.chain_s(res["rerun_grid"])
            if "rerun_lag_plain" in res:
                ratios["rerun_lag_probed_pct_of_first"] = 100 * lag_s / f_s
                ratios["rerun_grid_probed_pct_of_first"] = 100 * grid_s / f_s
                lines.append(
                    f"- re-runs with the per-stage probes (the tables below): another lag {lag_s:.2f} s "
                    f"({ratios['rerun_lag_probed_pct_of_first']:.0f} %), another grid {grid_s:.2f} s "
                    f"({ratios['rerun_grid_probed_pct_of_first']:.0f} %); without them (as a user runs):"
                )
                lag_s, grid_s = res["rerun_lag_plain"]["chain_s"], res["rerun_grid_plain"]["chain_s"]
            ratios["rerun_lag_pct_of_first"] = 100 * lag_s / f_s
            ratios["rerun_grid_pct_of_first"] = 100 * grid_s / f_s
            lag_all = res.get("rerun_lag_plain", res["rerun_lag"]["total"])["wall_s"]
            grid_all = res.get("rerun_grid_plain", res["rerun_grid"]["total"])["wall_s"]
            ratios["rerun_lag_pct_of_first_all_stages"] = 100 * lag_all / first["total"]["wall_s"]
            ratios["rerun_grid_pct_of_first_all_stages"] = 100 * grid_all / first["total"]["wall_s"]
            lines += [
                f"- re-run with another lag: {lag_s:.2f} s = **{ratios['rerun_lag_pct_of_first']:.0f} %** of the "
                f"first run (with validation: {ratios['rerun_lag_pct_of_first_all_stages']:.0f} %)",
                f"- re-run with another grid (square 1 km): {grid_s:.2f} s = "
                f"**{ratios['rerun_grid_pct_of_first']:.0f} %** of the first run (with validation: "
                f"{ratios['rerun_grid_pct_of_first_all_stages']:.0f} %)",
            ]
            if "public" in res:
                ratios["rerun_lag_vs_public"] = res["public"]["total"] / lag_s
                ratios["rerun_grid_vs_public"] = res["public"]["total"] / grid_s
                lines.append(
                    f"- vs the public way: lag re-run {ratios['rerun_lag_vs_public']:.0f}x faster, grid "
                    f"re-run {ratios['rerun_grid_vs_public']:.0f}x faster"
                )
            for key, label in (("rerun_lag", "another lag"), ("rerun_grid", "another grid")):
                md += [
                    f"Re-run, {label}:",
                    "",
                    bl.md_table(STAGE_HEADERS, _stage_rows(res[key], d["values"], c["values"], W)),
                    "",
                ]
        if "flatness" in res:
            fl2 = res["flatness"]
            run2 = fl2["run_2d"]
            rows = []
            for name, st in first["stages"].items():
                b1 = st.get("bench")
                b2 = run2["stages"].get(name, {}).get("bench")
                if b1 and b2:
                    rows.append(
                        [
                            name,
                            bl.mb(b1["worker_peak_rss_max"]),
                            bl.mb(b2["worker_peak_rss_max"]),
                            b2["worker_peak_rss_max"] / max(b1["worker_peak_rss_max"], 1),
                            bl.mb(b1["driver_peak_rss"]),
                            bl.mb(b2["driver_peak_rss"]),
                            b1["wall_s"],
                            b2["wall_s"],
                        ]
                    )
            D, D2 = fl2["days"]
            md += [
                f"Memory flatness: peak RSS at {D} and {D2} days (per stage, max over workers; driver):",
                "",
                bl.md_table(
                    [
                        "stage",
                        f"worker MB, {D} d",
                        f"worker MB, {D2} d",
                        "ratio",
                        f"driver MB, {D} d",
                        f"driver MB, {D2} d",
                        f"wall s, {D} d",
                        f"wall s, {D2} d",
                    ],
                    rows,
                ),
                "",
            ]
            tot1 = first["total"]["worker_peak_rss_max"]
            tot2 = run2["total"]["worker_peak_rss_max"]
            ratios["worker_peak_2d_vs_d"] = tot2 / max(tot1, 1)
            ratios["driver_peak_2d_vs_d"] = run2["total"]["driver_peak_rss"] / max(
                first["total"]["driver_peak_rss"], 1
            )
            lines.append(
                f"- memory flatness: peak worker RSS {ratios['worker_peak_2d_vs_d']:.2f}x, driver "
                f"{ratios['driver_peak_2d_vs_d']:.2f}x when the days double (flat = 1.0x)"
            )
        res["ratios"] = ratios
        md += ["\n".join(lines), ""]
        # where the time goes
        md += [
            "Where the first run's time goes, driver (cProfile, cumulative s):",
            "",
            bl.md_table(["function", "cumulative s", "own s"], first["driver_profile"][:12]),
            "",
        ]
        wt = first.get("worker_threads", {})
        busy = sorted(
            ((n, v["samples"]) for n, v in wt.items() if n != "all" and v["samples"]),
            key=lambda x: -x[1],
        )
        if busy:
            tot = sum(c for _, c in busy)
            md += [
                "Worker threads, all of them (sampling profiler in each worker, 5 ms): busy samples per stage "
                "and the top functions (self) of the busiest stages:",
                "",
                bl.md_table(
                    [
                        "stage",
                        "share of busy worker samples",
                        "top functions (self share within the stage)",
                    ],
                    [
                        (
                            n,
                            f"{c / tot:.0%}",
                            "; ".join(f"{k} {v:.0%}" for k, v in wt[n]["self"][:5]),
                        )
                        for n, c in busy[:4]
                    ],
                ),
                "",
            ]
    elif "public" in res:
        md.append(f"Public way (pandas, 1 core): {res['public']}\n")
    return "\n".join(md)


def combine(paths: list[Path]) -> tuple[dict, str]:
    """Scaling table over suite runs made with different ``--workers`` on the same dataset."""
    runs = [json.loads(Path(p).read_text()) for p in paths]
    public = next((r["public"] for r in runs if "public" in r), None)
    runs = sorted([r for r in runs if "first_run" in r], key=lambda r: r["workers"])
    out = {"runs": [], "public": public, "suites": runs}
    if not runs:
        return out, "(no suite runs to combine)\n"
    base = runs[0]
    rows = []

    def stage(r, name):
        st = r["first_run"]["stages"].get(name)
        return st["bench"]["wall_s"] if st and "bench" in st else float("nan")

    for r in runs:
        f = bl.chain_s(r["first_run"])
        row = {
            "workers": r["workers"],
            "first_run_s": f,
            "speedup": bl.chain_s(base["first_run"]) / f,
            "ingest_s": stage(r, "ingest"),
            "rollup_s": stage(r, "rollup"),
            "pyarrow_s": r.get("floors", {}).get("pyarrow_parse", {}).get("wall_s", float("nan")),
            "cube_read_s": (r.get("floors", {}).get("cube_read_hourly") or r.get("floors", {}).get("cube_read", {})
                            ).get("wall_s", float("nan")),
            "validation_s": r["first_run"]["stages"]
            .get("validation", {})
            .get("seconds", float("nan")),
            # re-runs as a user makes them (no probes) where measured, else the probed ones
            "rerun_lag_s": r["rerun_lag_plain"]["chain_s"] if "rerun_lag_plain" in r
            else bl.chain_s(r["rerun_lag"]) if "rerun_lag" in r else float("nan"),
            "rerun_grid_s": r["rerun_grid_plain"]["chain_s"] if "rerun_grid_plain" in r
            else bl.chain_s(r["rerun_grid"]) if "rerun_grid" in r else float("nan"),
            "peak_worker_MB": bl.mb(r["first_run"]["total"]["worker_peak_rss_max"]),
        }
        row["efficiency"] = row["speedup"] * base["workers"] / r["workers"]
        row["ingest_vs_pyarrow"] = row["pyarrow_s"] / row["ingest_s"]
        if public:
            row["vs_public"] = public["total"] / f
        out["runs"].append(row)
        rows.append(
            [
                row["workers"],
                f,
                row["speedup"],
                row["efficiency"],
                row["ingest_s"],
                row["pyarrow_s"],
                row["ingest_vs_pyarrow"],
                row["rollup_s"],
                row["cube_read_s"],
                row["rerun_lag_s"],
                row["rerun_grid_s"],
                row["validation_s"],
                row["peak_worker_MB"],
                row.get("vs_public"),
            ]
        )
    spec = base["spec"]
    d = base["files"]
    md = [
        bl.header(
            f"Scaling: {'-'.join(spec['cities'])}, scale {spec['scale']:g}, {spec['days']} days "
            f"({d['n']} files, {bl.mb(d['bytes']):.0f} MB text, {d['values'] / 1e6:.0f} M values)",
            base["machine"],
        ),
        f"Each row: `{base['command']}` with its `--workers`. Run times exclude the validation stage "
        "(tables, figures, report; its own column).\n",
        bl.md_table(
            [
                "workers",
                "first run s",
                f"speedup vs {base['workers']}",
                "efficiency",
                "ingest s",
                "pyarrow parse s",
                "ingest / pyarrow",
                "rollup s",
                "cube read s",
                "re-run lag s",
                "re-run grid s",
                "validation s",
                "peak worker MB",
                "first run vs public",
            ],
            rows,
        ),
        "",
    ]
    if public:
        md.append(
            f"Public way (pandas, 1 core): {public['total']:.1f} s (table {public['table']:.1f}, "
            f"read+merge+groupby {public['read+merge+groupby']:.1f}, correlation {public['correlation']:.1f}).\n"
        )
    flat = next((r for r in runs if "flatness" in r), None)
    if flat:
        r2 = flat["flatness"]["run_2d"]["total"]
        r1 = flat["first_run"]["total"]
        D, D2 = flat["flatness"]["days"]
        md.append(
            f"Memory flatness ({flat['workers']} workers): peak worker RSS {bl.mb(r1['worker_peak_rss_max']):.0f} "
            f"MB at {D} days, {bl.mb(r2['worker_peak_rss_max']):.0f} MB at {D2} days; first run "
            f"{r1['wall_s']:.1f} s vs {r2['wall_s']:.1f} s.\n"
        )
    return out, "\n".join(md)


def main(argv=None) -> int:
    p = bl.arg_parser(__doc__)
    p.add_argument(
        "--scale",
        type=float,
        default=None,
        help=f"default {FULL['scale']} ({QUICK['scale']} with --quick)",
    )
    p.add_argument(
        "--days",
        type=int,
        default=None,
        help=f"D; default {FULL['days']} ({QUICK['days']} with --quick)",
    )
    p.add_argument("--quick", action="store_true", help="smaller preset (~3 minutes on 2 cores)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeat", type=int, default=2, help="repeats of the floors (best kept)")
    p.add_argument("--root", type=Path, default=bl.DEFAULT_ROOT, help="dataset and scratch folder")
    p.add_argument("--json", type=Path)
    p.add_argument("--md", type=Path)
    p.add_argument("--no-public", action="store_true", help="skip the public code's way")
    p.add_argument(
        "--public-only", action="store_true", help="only the public code's way (and the dataset)"
    )
    p.add_argument("--no-floors", action="store_true")
    p.add_argument("--no-reruns", action="store_true")
    p.add_argument("--no-flatness", action="store_true", help="skip the 2D-day run")
    p.add_argument(
        "--no-figures", action="store_true", help="validation stage without figures (saves time)"
    )
    p.add_argument("--generate-only", action="store_true", help="only write the dataset")
    p.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="merge suite JSONs into a scaling table",
    )
    args = p.parse_args(argv)
    bl.quiet_logs()
    if args.combine:
        out, text = combine(args.combine)
        print(text)
        if args.json:
            bl.write_json(args.json, out)
        if args.md:
            args.md.write_text(text)
        return 0
    preset = QUICK if args.quick else FULL
    args.scale = preset["scale"] if args.scale is None else args.scale
    args.days = preset["days"] if args.days is None else args.days
    res = run_suite(args)
    text = render(res) if not args.generate_only else ""
    print()
    print(text)
    if args.json:
        bl.write_json(args.json, res)
    if args.md and text:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
