"""Benchmark of the estimation chain on an ingested cube, against its floor and the public way.

In one run, on the same cube / files and the same cores:

- the first run end to end (``jobs.pipeline.run_pipeline``: ingest, areas, crosswalk, rollup,
  correlation, estimate, outputs), which also writes the cube the rest reads;
- reading the cube alone: a dask sum over the chunks the rollup uses (the floor), with the
  pipeline's chunking (``open_cube`` default: one local day, then rechunked to a week) and with
  the cube opened directly at a week per Dask chunk;
- rollup + all-lag correlation through the library's functions (what ``run_pipeline`` does);
- ``xarray.corr`` per lag against cpc's one-pass kernel, on the same hourly series in memory;
- the public code's way: per-file pandas ``read_csv``, merge with a tile -> commune table,
  groupby-sum to commune-hour, pandas groupby-apply Pearson per commune per lag;
- re-runs through ``run_pipeline`` with its stage cache: another lag (crosswalk and hourly
  series reused), another grid (square 1 km: crosswalk and rollup recomputed, ingest reused).

Aims reported: rollup + correlation <= 2x reading the cube; a re-run for another grid >= 10x
faster than the pandas loop; for another lag >= 100x.

Example::

    .venv/bin/python scripts/bench_estimate.py                  # Lyon, real size, 14 days
    .venv/bin/python scripts/bench_estimate.py --scale 0.25 --days 10 --repeat 1
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _benchlib as bl  # noqa: E402


def corr_in_memory(hourly_parts: list, lags, repeat: int) -> dict:
    """cpc's kernel vs ``xr.corr`` per lag on the same in-memory hourly series."""
    import xarray as xr

    from cpc_core.estimate import correlation, rollup

    h = rollup.combine_cities(dict(enumerate(hourly_parts)))
    wa, tor = h.sel(service="Web_Adult"), h.sel(service="Tor")
    t_k, t_x = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ds = correlation.lagged_correlation(
            wa, tor, lags=list(lags), transform="log", zero_value=bl.ZERO_VALUE, min_pairs=2
        )
        t_k.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        x = np.log(wa.where(wa > 0, bl.ZERO_VALUE).astype(np.float64))
        y = np.log(tor.where(tor > 0, bl.ZERO_VALUE).astype(np.float64))
        xc = xr.concat([xr.corr(x, y.shift(hour=-lag), dim="hour") for lag in lags], dim="lag")
        t_x.append(time.perf_counter() - t0)
    diff = float(
        np.nanmax(
            np.abs(ds["rho"].transpose("lag", "area").values - xc.transpose("lag", "area").values)
        )
    )
    return {
        "kernel_s": min(t_k),
        "xr_corr_s": min(t_x),
        "max_abs_diff": diff,
        "areas": int(h.sizes["area"]),
        "hours": int(h.sizes["hour"]),
        "lags": len(lags),
    }


def main(argv=None) -> int:
    p = bl.arg_parser(__doc__)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument(
        "--repeat", type=int, default=2, help="interleaved repeats of the cube-side timings"
    )
    p.add_argument("--hours-per-chunk", type=int, default=168)
    p.add_argument("--root", type=Path, default=bl.DEFAULT_ROOT)
    p.add_argument("--json", type=Path)
    p.add_argument("--md", type=Path)
    args = p.parse_args(argv)
    bl.quiet_logs()
    info = bl.machine_info()
    spec = bl.DataSpec(cities=tuple(args.cities), scale=args.scale, days=args.days)
    work = args.root / f"work-estimate-{spec.tag}"
    shutil.rmtree(work, ignore_errors=True)
    os.environ["CPC_CACHE_DIR"] = str(work / "user-cache")  # fresh: the first run parses the tile grids
    work.mkdir(parents=True)
    cube = str(work / "cube.zarr")
    lags = bl.LAGS
    H = args.hours_per_chunk
    res = bl.new_result(info, spec, args.workers)

    with bl.local_client(args.workers) as client:
        bl.warm_workers(client)
        bl.say(f"dataset {spec.tag}: generating if needed")
        data, gen = bl.ensure_dataset(spec, client, args.root)
        if gen:
            res["synth"] = gen
        files = bl.netmob_files(data)
        fs = bl.describe_files(files)
        res["files"] = {"n": len(files), "bytes": fs.nbytes, "values": fs.values}
        bl.say(f"{len(files)} files, {bl.mb(fs.nbytes):.0f} MB text; first run end to end")
        first = bl.run_pipeline_measured(bl.pipeline_config(data, cube, work / "run"), client)
        res["first_run"] = first
        n_values, n_bytes = bl.cube_values(cube, spec.cities)
        bl.say(f"first run {first['total']['wall_s']:.1f} s; crosswalks")
        t0 = time.perf_counter()
        xw = bl.crosswalks(data, spec.cities)
        res["crosswalk_s"] = time.perf_counter() - t0

        hourly = bl.has_hourly(cube, spec.cities)
        keys = ("read_store", "read_aligned", "read", "rollup", "corr", "rollup_slots", "rollup_xarray")
        if hourly:
            keys = ("read_hourly",) + keys
        runs: dict[str, list] = {k: [] for k in keys}
        for r in range(args.repeat):
            # the floor: the rollup's own tasks and zarr reads, summed instead of reduced
            if hourly:
                with bl.measure(client) as m:
                    bl.cube_read_hourly(client, cube, spec.cities, H)
                runs["read_hourly"].append(m)
            with bl.measure(client) as m:
                bl.cube_read_store(client, cube, spec.cities, H)
            runs["read_store"].append(m)
            with bl.measure(client) as m:
                bl.cube_read(client, cube, spec.cities, H, aligned=True)
            runs["read_aligned"].append(m)
            with bl.measure(client) as m:
                bl.cube_read(client, cube, spec.cities, H)
            runs["read"].append(m)
            with bl.measure(client) as m:
                done = client.compute(bl.rollup_lazy(cube, spec.cities, xw, H), sync=True)
            runs["rollup"].append(m)
            with bl.measure(client) as m:
                corr = bl.correlate(done[0::2], lags)
            runs["corr"].append(m)
            with bl.measure(client) as m:
                client.compute(bl.rollup_lazy(cube, spec.cities, xw, H, method="slots"), sync=True)
            runs["rollup_slots"].append(m)
            with bl.measure(client) as m:
                client.compute(bl.rollup_lazy(cube, spec.cities, xw, H, method="xarray"), sync=True)
            runs["rollup_xarray"].append(m)
            bl.say(
                f"repeat {r + 1}: " + ", ".join(f"{k} {runs[k][-1]['wall_s']:.2f} s" for k in keys)
            )
        best = {k: bl.best(v) for k, v in runs.items()}
        res["runs"], res["best"] = runs, best
        rb = best["rollup"]
        res["rollup_worker_profile"] = bl.dask_profile_top(
            client.profile(start=rb["epoch"][0], stop=rb["epoch"][1])
        )
        res["corr_in_memory"] = corr_in_memory(done[0::2], lags, args.repeat)
        # consistency with the pipeline's own output
        import pandas as pd

        rbl = pd.read_csv(Path(first["output_dir"]) / "rho_by_lag.csv", dtype={"commune": str})
        got = rbl.pivot(index="commune", columns="lag_h", values="rho")
        here = corr["rho"].to_pandas()
        res["pipeline_vs_functions_max_diff"] = float(
            np.nanmax(np.abs(got.loc[here.index, here.columns].values - here.values))
        )

        bl.say("re-run: another lag (cached crosswalk and hourly series)")
        lag_runs = []
        for _ in range(args.repeat):
            lag_runs.append(
                bl.run_pipeline_measured(
                    bl.pipeline_config(data, cube, work / "run", lag_h=2), client
                )
            )
        bl.say("re-run: another grid (square 1 km; ingest reused)")
        grid_runs = []
        for r in range(args.repeat):
            grid_runs.append(
                bl.run_pipeline_measured(
                    bl.pipeline_config(data, cube, work / f"run-square-{r}", grid="square"), client
                )
            )
        res["rerun_lag"] = min(lag_runs, key=lambda x: x["total"]["wall_s"])
        res["rerun_grid"] = min(grid_runs, key=lambda x: x["total"]["wall_s"])

    bl.say("public way: communes (pandas, one core)")
    pub_t, pub_rho = bl.public_way(data, spec.cities, files, "communes", lags)
    bl.say(f"  {pub_t['total']:.1f} s; public way: square 1 km")
    pub_sq_t, _ = bl.public_way(data, spec.cities, files, "square", lags)
    res["public"] = {"communes": pub_t, "square": pub_sq_t}
    here = corr["rho"].to_pandas()
    common = here.index.intersection(pub_rho.index)
    res["public_vs_cpc_max_diff"] = float(
        np.nanmax(
            np.abs(pub_rho.loc[common, list(lags)].values - here.loc[common, list(lags)].values)
        )
    )
    res["public_vs_cpc_areas"] = [int(len(common)), int(len(here)), int(len(pub_rho))]

    # ------------------------------------------------------------------ report
    W = args.workers
    # the rollup's floor is reading what it reads: the hourly tile array when the store has one
    read, rollup, corr_m = best.get("read_hourly", best["read_store"]), best["rollup"], best["corr"]
    rc = rollup["wall_s"] + corr_m["wall_s"]
    # the public way has no tables/figures/report: compare it with the chain without that stage
    first_s = bl.chain_s(first)
    lag_s, grid_s = bl.chain_s(res["rerun_lag"]), bl.chain_s(res["rerun_grid"])
    ratios = {
        "rollup_corr_vs_read": rc / read["wall_s"],
        "rollup_corr_vs_read_cpu": (bl.cpu_s(rollup) + bl.cpu_s(corr_m)) / bl.cpu_s(read),
        "rollup_xarray_vs_store": best["rollup_xarray"]["wall_s"] / rollup["wall_s"],
        "rollup_slots_vs_store": best["rollup_slots"]["wall_s"] / rollup["wall_s"],
        "read_15min_vs_read": best["read_store"]["wall_s"] / read["wall_s"],
        "read_open_cube_day_vs_week": best["read"]["wall_s"] / best["read_aligned"]["wall_s"],
        "grid_rerun_speedup_vs_public": pub_sq_t["total"] / grid_s,
        "lag_rerun_speedup_vs_public": pub_t["total"] / lag_s,
        "lag_rerun_speedup_vs_public_corr_only": pub_t["correlation"] / lag_s,
        "first_run_speedup_vs_public": pub_t["total"] / first_s,
        "xr_corr_vs_kernel": res["corr_in_memory"]["xr_corr_s"] / res["corr_in_memory"]["kernel_s"],
    }
    res["ratios"] = ratios
    gb = n_bytes / 1e9

    def row(label, m, per_value=True):
        return [
            label,
            m["wall_s"],
            bl.cpu_s(m),
            gb / m["wall_s"] if per_value else None,
            n_values / m["wall_s"] / 1e6 / W if per_value else None,
            bl.mb(max(m["worker_peak_rss_max"], 0) or m["driver_peak_rss"]),
        ]

    rows = [
        *(
            [row("read the hourly tile array alone: the rollup's tasks and day-chunk reads, summed (floor)",
                 best["read_hourly"])]
            if "read_hourly" in best
            else []
        ),
        row("read the 15-minute cube alone: week tasks of hour-chunk reads, summed", best["read_store"]),
        row("read the cube alone: dask sum over `open_cube` at week chunks", best["read_aligned"]),
        row("read the cube alone: `open_cube` day chunks rechunked to weeks", best["read"]),
        row(
            "rollup as the pipeline runs it (`rollup.rollup_store`: area series + tile totals)",
            rollup,
        ),
        row("rollup from the 15-minute cube (`rollup_store(source='slots')`, the path before the hourly array)",
            best["rollup_slots"]),
        row(
            "rollup the earlier way (`open_cube` + `xarray_rollup` + `tile_totals`, scripts/_benchlib.py)",
            best["rollup_xarray"],
        ),
        row(f"all-lag correlation ({len(lags)} lags, on the driver)", corr_m, per_value=False),
    ]
    t1 = bl.md_table(
        [
            "step",
            "wall s",
            "CPU s",
            "GB/s of cube (float32)",
            "M values/s per worker",
            "peak worker RSS MB",
        ],
        rows,
    )
    cm = res["corr_in_memory"]
    t2 = bl.md_table(
        ["correlation on in-memory hourly series", "seconds", "max abs diff"],
        [
            [
                f"cpc kernel, all {cm['lags']} lags in one pass ({cm['areas']} areas x {cm['hours']} h)",
                cm["kernel_s"],
                None,
            ],
            ["`xr.corr` per lag (log, shift, corr)", cm["xr_corr_s"], cm["max_abs_diff"]],
        ],
    )

    def stages(run):
        return ", ".join(
            f"{k} {v['seconds']:.2f}{' (cached)' if v.get('cached') else ''}"
            for k, v in run["stages"].items()
        )

    rows3 = [
        [
            "cpc first run end to end (ingest ... outputs)",
            first_s,
            first["total"]["wall_s"],
            bl.cpu_s(first["total"]),
            stages(first),
        ],
        [
            "cpc re-run, another lag (lag_h=2)",
            lag_s,
            res["rerun_lag"]["total"]["wall_s"],
            bl.cpu_s(res["rerun_lag"]["total"]),
            stages(res["rerun_lag"]),
        ],
        [
            "cpc re-run, another grid (square 1 km)",
            grid_s,
            res["rerun_grid"]["total"]["wall_s"],
            bl.cpu_s(res["rerun_grid"]["total"]),
            stages(res["rerun_grid"]),
        ],
        [
            "public way, communes (pandas, 1 core)",
            pub_t["total"],
            None,
            None,
            ", ".join(f"{k} {v:.2f}" for k, v in pub_t.items() if k != "total"),
        ],
        [
            "public way, square 1 km",
            pub_sq_t["total"],
            None,
            None,
            ", ".join(f"{k} {v:.2f}" for k, v in pub_sq_t.items() if k != "total"),
        ],
    ]
    t3 = bl.md_table(
        ["run", "wall s (without validation)", "wall s (all stages)", "CPU s (all)", "stages (s)"],
        rows3,
    )

    def verdict(ok):
        return "met" if ok else "MISSED"

    lines = [
        f"- rollup + correlation / reading what the rollup reads: **{ratios['rollup_corr_vs_read']:.2f}x** wall "
        f"(aim <= 2x: {verdict(ratios['rollup_corr_vs_read'] <= 2)}), {ratios['rollup_corr_vs_read_cpu']:.2f}x CPU; "
        f"the rollup from the 15-minute cube took {ratios['rollup_slots_vs_store']:.1f}x the time of the hourly one, "
        f"reading the 15-minute cube {ratios['read_15min_vs_read']:.1f}x the time of reading the hourly array; the earlier "
        f"xarray path took {ratios['rollup_xarray_vs_store']:.1f}x the time of `rollup_store`; through `open_cube`, "
        f"day chunks rechunked to weeks read {ratios['read_open_cube_day_vs_week']:.2f}x slower than week chunks",
        f"- re-run for another grid vs the pandas loop (square 1 km): speed-up **{ratios['grid_rerun_speedup_vs_public']:.1f}x** "
        f"(aim >= 10x: {verdict(ratios['grid_rerun_speedup_vs_public'] >= 10)})",
        f"- re-run for another lag vs the pandas loop: speed-up **{ratios['lag_rerun_speedup_vs_public']:.1f}x** "
        f"(aim >= 100x: {verdict(ratios['lag_rerun_speedup_vs_public'] >= 100)}); vs the pandas correlation step "
        f"alone {ratios['lag_rerun_speedup_vs_public_corr_only']:.1f}x",
        f"- first run end to end (incl. ingest) vs the pandas loop: speed-up {ratios['first_run_speedup_vs_public']:.2f}x",
        "- cpc runs are compared without their validation stage (tables, figures, report), which the public "
        "way does not do; the table above also gives the totals",
        f"- `xr.corr` per lag / cpc kernel: {ratios['xr_corr_vs_kernel']:.0f}x slower (same rho to "
        f"{cm['max_abs_diff']:.1e})",
        f"- checks: library functions vs the pipeline's rho_by_lag.csv max |diff| "
        f"{res['pipeline_vs_functions_max_diff']:.1e}; pandas public way vs cpc max |diff| "
        f"{res['public_vs_cpc_max_diff']:.1e} over {res['public_vs_cpc_areas'][0]} areas",
    ]
    top = res["rollup_worker_profile"]
    d = res["files"]
    md = [
        bl.header(
            f"Estimation: {spec.tag} ({d['n']} files, {bl.mb(d['bytes']):.0f} MB text; cube "
            f"{n_values / 1e6:.0f} M values = {gb:.2f} GB float32), {W} workers",
            info,
        ),
        f"Best of {args.repeat} interleaved repeats (public way: one run each). Crosswalk (communes) built "
        f"in {res['crosswalk_s']:.1f} s outside the timings.\n",
        t1,
        "",
        t2,
        "",
        t3,
        "",
        "\n".join(lines),
        "",
        "Worker profile during the rollup (`client.profile()`, share of task samples, self):",
        "",
        bl.md_table(["function", "share"], [(k, f"{v:.0%}") for k, v in top["self"][:8]]),
        "",
    ]
    bl.emit("\n".join(md), res, args.json, args.md)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
