"""Benchmark of the ingest (NetMob text -> Zarr cube) against its floors, on one fixed dataset.

In one run, on the same files (page cache warm) and the same cores:

(a) pyarrow.csv raw parse of every file with its threads (one per worker): the floor;
(b) the per-file ``pandas.read_csv(sep=" ", header=None)`` loop the public loaders use;
(c) cpc's end-to-end ingest (``jobs.ingest.run_ingest``: plan, parse, validate, compress, write,
    QC report) on a LocalCluster of ``--workers`` single-threaded processes;
(d) cpc's parser alone (``parse_bytes`` + ``check_file``), one core.

Then the codec choice on the real cube data: lz4 / zstd / blosc-zstd / none, per chunk (one
core: compress and decompress speed, ratio) and end to end (ingest wall, store size, reading
the cube back).

Targets reported: ingest >= 1.0x pyarrow's raw parse with its threads; >= 2x the pandas loop.

Example::

    .venv/bin/python scripts/bench_ingest.py                      # Lyon, real size, 7 days
    .venv/bin/python scripts/bench_ingest.py --scale 0.25 --repeat 1 --json /tmp/ingest.json
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _benchlib as bl  # noqa: E402

CODECS = ("lz4", "zstd", "blosc-zstd", "none")


def codec_micro(store_path: str, city: str, max_chunks: int = 72, repeat: int = 3) -> list[dict]:
    """Compress / decompress real cube chunks with each of the store's codecs, one core."""
    import numcodecs
    from numcodecs import Blosc, Zstd

    from cpc_core.cube import store

    numcodecs.blosc.use_threads = (
        False  # what a Dask worker thread gets (zarr calls it off the main thread)
    )
    g = store.open_city(store_path, city)
    arr = g["DL"]
    n_s = arr.shape[0]
    chunks = []
    per_service = max(1, max_chunks // n_s)
    for s in range(n_s):
        if arr.ndim == 4:  # layout 3: a file's chunk (tiles, 100 slots, NaN-padded)
            chunks += [np.ascontiguousarray(arr[s, :, d, :]) for d in range(min(per_service, arr.shape[2]))]
            continue
        for k in range(min(per_service, arr.shape[2] // store.TIME_CHUNK)):
            chunks.append(
                np.ascontiguousarray(arr[s, :, k * store.TIME_CHUNK : (k + 1) * store.TIME_CHUNK])
            )
    raw = sum(c.nbytes for c in chunks)
    impl = {
        "lz4": Blosc(cname="lz4", clevel=1, shuffle=Blosc.BITSHUFFLE),  # store.codec("lz4")
        "lz4 (before: level 5, byte shuffle)": Blosc(cname="lz4", clevel=5, shuffle=Blosc.SHUFFLE),
        "zstd": Zstd(level=1),
        "blosc-zstd": Blosc(cname="zstd", clevel=1, shuffle=Blosc.SHUFFLE),
    }
    rows = []
    for name, codec in impl.items():
        enc = [codec.encode(c) for c in chunks]
        t_c = min(
            bl._timeit(lambda codec=codec: [codec.encode(c) for c in chunks]) for _ in range(repeat)
        )
        t_d = min(
            bl._timeit(lambda codec=codec, enc=enc: [codec.decode(e) for e in enc])
            for _ in range(repeat)
        )
        comp = sum(len(e) for e in enc)
        rows.append(
            {
                "codec": name,
                "ratio": raw / comp,
                "compress_MBps": bl.mb(raw) / t_c,
                "decompress_MBps": bl.mb(raw) / t_d,
                "chunks": len(chunks),
                "raw_MB": bl.mb(raw),
            }
        )
    rows.append(
        {
            "codec": "none",
            "ratio": 1.0,
            "compress_MBps": float("nan"),
            "decompress_MBps": float("nan"),
            "chunks": len(chunks),
            "raw_MB": bl.mb(raw),
        }
    )
    return rows


def file_breakdown(data: Path, scratch: Path, files: list[Path], n_files: int = 6) -> dict:
    """Seconds per phase of ``ingest_file`` on a few files, in this process (one core).

    Into a fresh scratch cube (as a first ingest writes): read bytes, parse, validate
    (``check_file`` against the city's tiles), and ``write_file_block`` (zarr chunk writes with
    lz4, the file's total and status). A sampling profiler over all threads (zarr compresses and
    writes on its own threads) says where the write phase goes.
    """
    from cpc_core.cube import ingest, store
    from cpc_core.netmob import facts as netmob
    from cpc_core.netmob import parse

    plan = ingest.plan(str(data / "netmob"), str(scratch))
    t = {"read": 0.0, "parse": 0.0, "validate": 0.0, "write": 0.0}
    nbytes = 0
    step = max(1, len(files) // n_files)
    picked = files[::step][:n_files]
    sampler = bl.ThreadSampler()
    for f in picked:
        key = netmob.parse_file_path(f)
        lay = plan.layouts[key.city]
        ncols = netmob.slots_per_day(key.day)
        t0 = time.perf_counter()
        data_b = Path(f).read_bytes()
        t1 = time.perf_counter()
        pf = parse.parse_bytes(data_b, ncols, str(f))
        t2 = time.perf_counter()
        tiles = store.open_city(str(scratch), key.city)["tile"][:]
        parse.check_file(pf, grid_size=None, tiles=tiles)
        t3 = time.perf_counter()
        with sampler.resume():
            store.write_file_block(
                str(scratch),
                key.city,
                key.direction,
                lay.services.index(key.service),
                lay.days.index(key.day),
                lay.day_slice(key.day),
                pf.values,
                store.STATUS["ok"],
            )
        t4 = time.perf_counter()
        for k, a, b in (
            ("read", t0, t1),
            ("parse", t1, t2),
            ("validate", t2, t3),
            ("write", t3, t4),
        ):
            t[k] += b - a
        nbytes += len(data_b)
    sampler.close()
    total = sum(t.values())
    return {
        "files": len(picked),
        "bytes": nbytes,
        "seconds": t,
        "share": {k: v / total for k, v in t.items()},
        "MBps": {k: bl.mb(nbytes) / v for k, v in t.items() if v > 0},
        "write_profile": sampler.top(10),
    }


def write_variants(files: list[Path], scratch: Path, n_files: int = 7, repeat: int = 3) -> dict:
    """One core: the store's chunk writes as configured vs two cheaper settings, same blocks.

    ``store`` -- an array like ``store._create_direction`` makes (lz4, NaN fill, hour chunks);
    ``write_empty_chunks`` -- the same with zarr's ``write_empty_chunks=True`` (no per-chunk
    comparison with the fill value); plus the file total by ``np.nansum`` (as ``write_file_block``)
    vs a plain float64 ``sum`` (enough when no line was rejected).
    """
    import zarr

    from cpc_core.cube import store
    from cpc_core.netmob import facts as netmob
    from cpc_core.netmob import parse

    picked = files[:: max(1, len(files) // n_files)][:n_files]
    blocks = [
        parse.parse_bytes(
            Path(f).read_bytes(), netmob.slots_per_day(netmob.parse_file_path(f).day)
        ).values
        for f in picked
    ]
    n_t, width = blocks[0].shape[0], max(b.shape[1] for b in blocks)
    out: dict = {"files": len(blocks)}
    for _ in range(repeat):
        for name, cfg in (("store", {}), ("write_empty_chunks", {"write_empty_chunks": True})):
            path = scratch / f"wv-{name}.zarr"
            shutil.rmtree(path, ignore_errors=True)
            g = zarr.open_group(str(path), mode="w", zarr_format=3)
            a = g.create_array(
                "DL",
                shape=(1, n_t, width * len(blocks)),
                chunks=(1, n_t, store.TIME_CHUNK),
                dtype="float32",
                fill_value=np.nan,
                compressors=store.codec("lz4"),
                config=cfg,
            )
            c0 = time.process_time()
            for i, b in enumerate(blocks):
                a[0, :, i * width : i * width + b.shape[1]] = b
            ms = (time.process_time() - c0) / len(blocks) * 1e3
            out[name + "_cpu_ms"] = min(out.get(name + "_cpu_ms", 1e9), ms)
            shutil.rmtree(path)
    b = blocks[0]
    out["nansum_ms"] = (
        min(bl._timeit(lambda: np.nansum(b, dtype=np.float64)) for _ in range(5)) * 1e3
    )
    out["sum_ms"] = min(bl._timeit(lambda: b.sum(dtype=np.float64)) for _ in range(5)) * 1e3
    return out


def main(argv=None) -> int:
    p = bl.arg_parser(__doc__)
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="tiles as a fraction of the real city (default 1.0)",
    )
    p.add_argument("--days", type=int, default=7)
    p.add_argument(
        "--workers", type=int, default=2, help="Dask workers, and pyarrow threads (default 2)"
    )
    p.add_argument(
        "--repeat", type=int, default=2, help="interleaved repeats; the best wall time is kept"
    )
    p.add_argument("--root", type=Path, default=bl.DEFAULT_ROOT, help="dataset and scratch folder")
    p.add_argument("--no-codecs", action="store_true", help="skip the codec comparison")
    p.add_argument("--json", type=Path, help="write results as JSON")
    p.add_argument("--md", type=Path, help="write the Markdown tables")
    args = p.parse_args(argv)
    bl.quiet_logs()
    info = bl.machine_info()
    spec = bl.DataSpec(cities=tuple(args.cities), scale=args.scale, days=args.days)
    work = args.root / f"work-ingest-{spec.tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    res = bl.new_result(info, spec, args.workers)

    from jobs.ingest import run_ingest

    with bl.local_client(args.workers) as client:
        bl.warm_workers(client)
        bl.say(f"dataset {spec.tag}: generating if needed")
        data, gen = bl.ensure_dataset(spec, client, args.root)
        if gen:
            res["synth"] = gen
            bl.say(f"  generated in {gen['wall_s']:.1f} s")
        fs = bl.describe_files(bl.netmob_files(data))
        res["files"] = {
            "n": len(fs.files),
            "bytes": fs.nbytes,
            "values": fs.values,
            "lines": fs.lines,
        }
        bl.say(
            f"{len(fs.files)} files, {bl.mb(fs.nbytes):.0f} MB of text, {fs.values / 1e6:.1f} M values"
        )

        runs: dict[str, list] = {"pyarrow": [], "pandas": [], "parser": [], "ingest": []}
        for r in range(args.repeat):
            with bl.measure() as m:
                n = bl.pyarrow_parse(fs.files, args.workers)
            assert n == fs.values, (n, fs.values)
            runs["pyarrow"].append(m)
            with bl.measure() as m:
                n = bl.pandas_loop(fs.files)
            assert n == fs.values
            runs["pandas"].append(m)
            with bl.measure() as m:
                n = bl.cpc_parse_loop(fs.files)
            assert n == fs.values
            runs["parser"].append(m)
            cube = work / f"cube-{r}.zarr"
            with bl.measure(client) as m:
                qc = run_ingest(
                    str(data / "netmob"), str(cube), client, report_dir=work / "reports"
                )
            assert qc["values_stored"] == fs.values, (qc["values_stored"], fs.values)
            m["store_bytes"] = bl.dir_bytes(cube)
            runs["ingest"].append(m)
            bl.say(
                f"repeat {r + 1}: pyarrow {runs['pyarrow'][-1]['wall_s']:.2f} s, pandas "
                f"{runs['pandas'][-1]['wall_s']:.2f} s, parser {runs['parser'][-1]['wall_s']:.2f} s, "
                f"ingest {m['wall_s']:.2f} s"
            )
            if r < args.repeat - 1:
                shutil.rmtree(cube)
        best = {k: bl.best(v) for k, v in runs.items()}
        res["runs"] = runs
        res["best"] = best
        ing = best["ingest"]
        prof = client.profile(key="ingest_file", start=ing["epoch"][0], stop=ing["epoch"][1])
        res["ingest_worker_profile"] = bl.dask_profile_top(prof)
        bl.say("per-file breakdown, one core")
        res["breakdown"] = file_breakdown(data, work / "scratch.zarr", fs.files)
        res["write_variants"] = write_variants(fs.files, work)

        # codecs: per chunk on the real cube data, and end to end
        if not args.no_codecs:
            bl.say("codecs: per chunk")
            res["codec_micro"] = codec_micro(str(cube), spec.cities[0])
            bl.say("codecs: end-to-end ingest and cube read per codec")
            e2e: dict[str, list] = {c: [] for c in CODECS}
            for _ in range(args.repeat):
                for name in CODECS:
                    c2 = work / f"cube-{name}.zarr"
                    with bl.measure(client) as m:
                        run_ingest(
                            str(data / "netmob"),
                            str(c2),
                            client,
                            compressor=name,
                            report_dir=work / "reports",
                        )
                    t0 = time.perf_counter()
                    bl.cube_read(client, str(c2), spec.cities, aligned=True)
                    m["read_s"] = time.perf_counter() - t0
                    m["store_MB"] = bl.mb(bl.dir_bytes(c2))
                    e2e[name].append(m)
                    shutil.rmtree(c2)
            e2e = [
                {
                    "codec": c,
                    "ingest_s": bl.best(v)["wall_s"],
                    "ingest_cpu_s": min(bl.cpu_s(m) for m in v),
                    "store_MB": v[0]["store_MB"],
                    "read_s": min(m["read_s"] for m in v),
                }
                for c, v in e2e.items()
            ]
            res["codec_e2e"] = e2e

    # ------------------------------------------------------------------ report
    W = args.workers
    rows = []
    labels = {
        "pyarrow": f"(a) pyarrow.csv raw parse, {W} threads (floor)",
        "pandas": "(b) pandas read_csv loop, 1 core (public loaders)",
        "ingest": f"(c) cpc ingest end to end, {W} workers",
        "parser": "(d) cpc parser alone (parse + validate), 1 core",
    }
    units = {"pyarrow": W, "pandas": 1, "ingest": W, "parser": 1}
    for k in ("pyarrow", "pandas", "ingest", "parser"):
        m = best[k]
        rows.append(
            [
                labels[k],
                m["wall_s"],
                bl.cpu_s(m),
                bl.mb(fs.nbytes) / m["wall_s"],
                fs.values / m["wall_s"] / 1e6,
                fs.values / m["wall_s"] / 1e6 / units[k],
                bl.mb(fs.nbytes) / bl.cpu_s(m),
                bl.mb(max(m["driver_peak_rss"], m["worker_peak_rss_max"])),
            ]
        )
    table = bl.md_table(
        [
            "step",
            "wall s",
            "CPU s",
            "MB/s text",
            "M values/s",
            "M values/s per core",
            "MB per CPU-s",
            "peak RSS MB (max process)",
        ],
        rows,
    )
    r_pa = best["pyarrow"]["wall_s"] / ing["wall_s"]
    r_pd = best["pandas"]["wall_s"] / ing["wall_s"]
    c_pa = bl.cpu_s(best["pyarrow"]) / bl.cpu_s(ing)
    c_pd = bl.cpu_s(best["pandas"]) / bl.cpu_s(ing)
    r_parser = best["pyarrow"]["wall_s"] * W / best["parser"]["wall_s"]
    util = bl.cpu_s(ing) / (ing["wall_s"] * W)
    res["ratios"] = {
        "ingest_vs_pyarrow": r_pa,
        "ingest_vs_pandas_loop": r_pd,
        "ingest_vs_pyarrow_cpu": c_pa,
        "ingest_vs_pandas_loop_cpu": c_pd,
        "parser_1core_vs_pyarrow_per_thread": r_parser,
        "ingest_core_utilisation": util,
    }
    ratios = (
        f"- ingest / pyarrow raw parse ({W} threads), wall: **{r_pa:.2f}x** the throughput "
        f"(target >= 1.0x: {'met' if r_pa >= 1.0 else 'MISSED'}); per CPU-second {c_pa:.2f}x\n"
        f"- ingest ({W} workers) / pandas read_csv loop (1 core), wall: **{r_pd:.2f}x** "
        f"(target >= 2x: {'met' if r_pd >= 2 else 'MISSED'}); per CPU-second {c_pd:.2f}x\n"
        f"- cpc parser, 1 core / pyarrow per thread: {r_parser:.2f}x\n"
        f"- ingest kept its {W} cores {util:.0%} busy (CPU s / (wall x workers)); worker CPU "
        f"{ing['workers_cpu_s']:.1f} s + driver {ing['driver_cpu_s']:.1f} s for {bl.mb(fs.nbytes):.0f} MB; "
        f"workers read {bl.mb(ing['workers_read']):.0f} MB, wrote {bl.mb(ing['workers_written']):.0f} MB "
        f"(store {bl.mb(ing['store_bytes']):.0f} MB on disk, {fs.nbytes / ing['store_bytes']:.1f}x smaller "
        f"than the text); peak worker RSS {bl.mb(ing['worker_peak_rss_max']):.0f} MB"
    )
    d = res["files"]
    md = [
        bl.header(
            f"Ingest: {spec.tag} ({d['n']} files, {bl.mb(d['bytes']):.0f} MB text, "
            f"{d['values'] / 1e6:.1f} M values), {W} workers",
            info,
        ),
        f"Best of {args.repeat} interleaved repeats, page cache warm. CPU s counts every process "
        "(driver + workers, all threads).\n",
        table,
        "",
        ratios,
        "",
    ]
    b = res["breakdown"]
    wp = b["write_profile"]
    md += [
        f"One core, per phase of `ingest_file` ({b['files']} files, {bl.mb(b['bytes']):.0f} MB text, fresh "
        "lz4 cube):",
        "",
        bl.md_table(
            ["phase", "share", "MB/s of text"],
            [(k, f"{b['share'][k]:.0%}", b["MBps"].get(k)) for k in b["seconds"]],
        ),
        "",
        f"Inside `write_file_block` (sampling all threads, {wp['samples']} samples), self time:",
        "",
        bl.md_table(["function", "share"], [(k, f"{v:.0%}") for k, v in wp["self"][:8]]),
        "",
    ]
    wv = res["write_variants"]
    md += [
        f"Cheaper write settings, one core, per file (CPU ms, best of 3 over {wv['files']} files): zarr chunk "
        f"writes as the store configures them {wv['store_cpu_ms']:.0f} ms, with `write_empty_chunks=True` "
        f"{wv['write_empty_chunks_cpu_ms']:.0f} ms; the file total by `np.nansum` {wv['nansum_ms']:.1f} ms, "
        f"by a float64 `sum` {wv['sum_ms']:.1f} ms.",
        "",
    ]
    top = res["ingest_worker_profile"]
    if top["samples"]:
        md += [
            "Worker task threads during the ingest (`client.profile(key='ingest_file')`; zarr's own "
            "threads are not sampled, they show as `sync`/`wait`):",
            "",
            bl.md_table(
                ["function (self)", "share"], [(k, f"{v:.0%}") for k, v in top["self"][:6]]
            ),
            "",
        ]
    if "codec_micro" in res:
        cm = res["codec_micro"]
        md += [
            f"Codecs on real cube chunks ({cm[0]['chunks']} chunks of (tiles, 4 slots) float32, "
            f"{cm[0]['raw_MB']:.0f} MB; one core):",
            "",
            bl.md_table(
                ["codec", "ratio", "compress MB/s", "decompress MB/s"],
                [(c["codec"], c["ratio"], c["compress_MBps"], c["decompress_MBps"]) for c in cm],
            ),
            "",
            f"End to end per codec (best of {args.repeat} ingests each, then a dask sum reading the cube):",
            "",
            bl.md_table(
                ["codec", "ingest wall s", "ingest CPU s", "store MB", "cube read s"],
                [
                    (c["codec"], c["ingest_s"], c["ingest_cpu_s"], c["store_MB"], c["read_s"])
                    for c in res["codec_e2e"]
                ],
            ),
            "",
        ]
    bl.emit("\n".join(md), res, args.json, args.md)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
