"""Job: NetMob tree -> Zarr cube (``cpc ingest``), with a QC report per run."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from cpc_core import storage
from jobs import _ingest_state
from jobs._lock import exclusive

if TYPE_CHECKING:
    from distributed import Client

# The ingest library (numpy, pandas, zarr, xarray, the numba parser), distributed and the cache
# are imported once a plan is needed: a run with nothing to do (jobs._ingest_state) is answered
# from the record next to the store, with the standard library only and no cluster.

logger = logging.getLogger(__name__)


def report_dir_for(store: str):
    """Default place of a run's QC reports: ``<store>.reports/`` next to the store, a local
    folder or an object-storage prefix alike (never the working directory)."""
    return storage.path(str(storage.local_path(store)).rstrip("/") + ".reports")


def run_ingest(
    root: str,
    store: str,
    client: Client | Callable[[], AbstractContextManager[Client]],
    cities=None,
    services=None,
    directions=None,
    on_error: str = "fail",
    compressor: str = "lz4",
    tile_chunk: int = 131_072,
    outage_ratio: float = 0.1,
    report_dir: str | Path | None = None,
    force: bool = False,
    repair: bool = False,
) -> dict:
    """Plan, run and report an ingest; return the QC report (also written as JSON/Markdown).

    Every run checks the store first and re-ingests the files of damaged chunks (their sizes
    against what was written; ``repair``: their checksums too, which reads every chunk); the
    QC report lists what was repaired (``repaired``).

    ``client``: a ``distributed.Client``, or a function returning a context manager that yields
    one (``cpc ingest``'s cluster), called only when there are files to ingest; with an
    ``input_bytes`` keyword parameter it is told their size (None when they are not all local
    files), so that a small ingest's local cluster runs in threads (``cluster.processes``). A run with
    nothing to do, on a store and input unchanged since the last such run, is answered from
    ``<store>.ingest-state.json`` without planning (:mod:`jobs._ingest_state`); its QC report
    is the same.

    Raises
    ------
    cpc_core.netmob.parse.NetmobFormatError
        In ``fail`` mode, for the first bad file (file, line, reason).
    cpc_core.errors.EnvironmentUnavailable
        When the store or the report folder cannot be written (disk full, permissions).
    """
    t0 = time.perf_counter()
    options = {"cities": sorted(cities) if cities else None, "services": sorted(services) if services else None,
               "directions": sorted(directions) if directions else None, "on_error": on_error,
               "compressor": compressor, "tile_chunk": tile_chunk, "outage_ratio": outage_ratio}
    # taken before anything reads the input: a file changed during this run makes the next plan
    input_sig = None if force or repair else _ingest_state.signature(root, store, options, "input")
    with exclusive(store, f"store {store}"):
        rec = _ingest_state.load(store, input_sig, options)
        if rec is not None:
            qc = dict(rec["qc"])
            logger.info("ingest: nothing to do: %d files complete, store and input unchanged since %s (%s); "
                        "no plan, no cluster", qc.get("skipped_complete", 0), rec.get("written"),
                        _ingest_state.state_path(store))
            return _write_reports(qc, store, report_dir, t0, rec["markdown"], rec["rejected_csv"])
        from cpc_core.cube import ingest

        plan = ingest.plan(root, store, cities, services, directions, on_error=on_error,
                           compressor=compressor, tile_chunk=tile_chunk, force=force, repair=repair)
        logger.info("ingest: %d files to do, %d already complete", len(plan.tasks), plan.skipped)
        if plan.tasks or plan.damage:
            _ingest_state.forget(store)
        reports = _run_tasks(plan, client) if plan.tasks else []
        qc = _qc(store, plan, reports, outage_ratio, repair, written=bool(plan.tasks))
        markdown = ingest.qc_markdown(qc) + _repaired_markdown(qc)
        rejected_csv = ingest.rejected_frame(reports).to_csv(index=False)
        if input_sig is not None:
            if not plan.tasks and not plan.damage:
                noop = (qc, markdown, rejected_csv)
            else:
                # what the next run, with nothing left to do, will report: planned now (a plan
                # of a complete store reads records only), so that it need not plan at all
                again = ingest.plan(root, store, cities, services, directions, on_error=on_error,
                                    compressor=compressor, tile_chunk=tile_chunk)
                noop = None
                if not again.tasks and not again.damage:
                    q = _qc(store, again, [], outage_ratio, False, written=False)
                    noop = (q, ingest.qc_markdown(q) + _repaired_markdown(q), ingest.rejected_frame([]).to_csv(index=False))
            if noop is not None:
                # as JSON reads it back, so that the answer from the record is the same dict
                _ingest_state.save(store, input_sig, options, json.loads(json.dumps(noop[0], default=str)),
                                   noop[1], noop[2])
    return _write_reports(qc, store, report_dir, t0, markdown, rejected_csv)


def _run_tasks(plan, client) -> list:
    """The plan's tasks on the cluster (started here when ``client`` is a factory)."""
    from cpc_core.cube import ingest
    from jobs._compute import map_with_progress

    # small files travel in groups (a task's fixed cost would dominate them)
    groups = ingest.batches(plan.tasks, plan.layouts)
    if callable(client) and not hasattr(client, "submit"):
        import inspect

        # a factory told the input's size starts a small ingest's local cluster in threads
        takes_size = "input_bytes" in inspect.signature(client).parameters
        with (client(input_bytes=_task_bytes(plan.tasks)) if takes_size else client()) as c:
            done = map_with_progress(c, ingest.ingest_files, groups, "ingest", counts=[len(g) for g in groups])
    else:
        done = map_with_progress(client, ingest.ingest_files, groups, "ingest", counts=[len(g) for g in groups])
    return [r for group in done for r in group]


def _task_bytes(tasks) -> int | None:
    """Bytes of the files the tasks read (:func:`cpc_core.storage.local_size`)."""
    return storage.local_size(t.path for t in tasks if t.path is not None and not t.unusable)


def _qc(store: str, plan, reports: list, outage_ratio: float, repair: bool, written: bool) -> dict:
    """The QC dictionary of a run (without its time and report folder)."""
    from cpc_core.cube import ingest
    from jobs import _cache

    planned = sorted(plan.layouts)
    # the per-file arrays, read once for the report and the fingerprint (the plan's when
    # nothing was written)
    states = ingest.read_states(store, plan.layouts) if written else plan.states
    qc = ingest.qc_report(store, reports, planned, outage_ratio=outage_ratio, states=states,
                          ignored=plan.ignored, tile_refs=plan.tile_refs,
                          ignored_reasons=plan.ignored_reasons)
    qc["store_fingerprint"] = _cache.store_fingerprint(store, planned, states=states)
    qc["skipped_complete"] = plan.skipped
    qc["repaired"] = [{"city": d.city, "array": d.array, "chunk": d.chunk, "reason": d.reason,
                       "sources": list(d.sources)} for d in plan.damage]
    qc["verified"] = "checksums" if repair else "sizes"
    return qc


def _write_reports(qc: dict, store: str, report_dir, t0: float, markdown: str, rejected_csv: str) -> dict:
    """Write the QC report (JSON, Markdown, rejected lines) under a time stamp; log the summary."""
    qc["seconds"] = round(time.perf_counter() - t0, 2)
    out = storage.path(report_dir) if report_dir else report_dir_for(store)
    with storage.guard(out, "writing the QC report"):
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        (out / f"ingest-{stamp}.json").write_text(json.dumps(qc, indent=2, default=str))
        (out / f"ingest-{stamp}.md").write_text(markdown)
        (out / f"rejected-{stamp}.csv").write_text(rejected_csv)
    qc["report_dir"] = str(out)
    n_out = sum(len(c["outages"]) for c in qc["cities"].values())
    n_missing = sum(len(c["missing"]) for c in qc["cities"].values())
    logger.info(
        "ingest done in %.1f s: %d values stored, %d rejected, %d files missing, %d outage days flagged, "
        "%d files ignored (each with its reason in the QC report); QC report in %s", qc["seconds"], qc["values_stored"],
        qc["values_rejected"], n_missing, n_out, qc["ignored_files"], out,
    )
    return qc


def _repaired_markdown(qc: dict) -> str:
    """The QC report's section on store damage found and repaired by this run (empty if none)."""
    rows = qc.get("repaired") or []
    if not rows:
        return ""
    lines = ["", f"## Store damage repaired ({len(rows)}; checked: {qc.get('verified', 'sizes')})", "",
             "| city | array | chunk | reason | source files (ingested again) |", "|---|---|---|---|---|"]
    lines += [f"| {r['city']} | {r['array']} | {r['chunk']} | {r['reason']} | {', '.join(r['sources'])} |" for r in rows]
    return "\n".join(lines) + "\n"
