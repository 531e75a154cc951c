"""Job: NetMob tree -> Zarr cube (``cpc ingest``), with a QC report per run."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from distributed import Client

from cpc_core import storage
from cpc_core.cube import ingest
from jobs import _cache
from jobs._compute import map_with_progress
from jobs._lock import exclusive

logger = logging.getLogger(__name__)


def report_dir_for(store: str):
    """Default place of a run's QC reports: ``<store>.reports/`` next to the store, a local
    folder or an object-storage prefix alike (never the working directory)."""
    return storage.path(str(storage.local_path(store)).rstrip("/") + ".reports")


def run_ingest(
    root: str,
    store: str,
    client: Client,
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

    Raises
    ------
    cpc_core.netmob.parse.NetmobFormatError
        In ``fail`` mode, for the first bad file (file, line, reason).
    cpc_core.errors.EnvironmentUnavailable
        When the store or the report folder cannot be written (disk full, permissions).
    """
    t0 = time.perf_counter()
    with exclusive(store, f"store {store}"):
        plan = ingest.plan(root, store, cities, services, directions, on_error=on_error,
                           compressor=compressor, tile_chunk=tile_chunk, force=force, repair=repair)
        logger.info("ingest: %d files to do, %d already complete", len(plan.tasks), plan.skipped)
        # small files travel in groups (a task's fixed cost would dominate them)
        groups = ingest.batches(plan.tasks, plan.layouts)
        done = map_with_progress(client, ingest.ingest_files, groups, "ingest", counts=[len(g) for g in groups])
        reports = [r for group in done for r in group]
        planned = sorted(plan.layouts)
        # the per-file arrays, read once for the report and the fingerprint (the plan's when
        # nothing was written)
        states = plan.states if not plan.tasks else ingest.read_states(store, plan.layouts)
        qc = ingest.qc_report(store, reports, planned, outage_ratio=outage_ratio, states=states,
                              ignored=plan.ignored, tile_refs=plan.tile_refs,
                              ignored_reasons=plan.ignored_reasons)
        qc["store_fingerprint"] = _cache.store_fingerprint(store, planned, states=states)
    qc["skipped_complete"] = plan.skipped
    qc["repaired"] = [{"city": d.city, "array": d.array, "chunk": d.chunk, "reason": d.reason,
                       "sources": list(d.sources)} for d in plan.damage]
    qc["verified"] = "checksums" if repair else "sizes"
    qc["seconds"] = round(time.perf_counter() - t0, 2)
    out = storage.path(report_dir) if report_dir else report_dir_for(store)
    with storage.guard(out, "writing the QC report"):
        out.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        (out / f"ingest-{stamp}.json").write_text(json.dumps(qc, indent=2, default=str))
        (out / f"ingest-{stamp}.md").write_text(ingest.qc_markdown(qc) + _repaired_markdown(qc))
        ingest.rejected_frame(reports).to_csv(out / f"rejected-{stamp}.csv", index=False)
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
