"""Job: write a synthetic NetMob23 tree with planted truth (``cpc synth``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
from dask.base import tokenize
from distributed import Client

from cluster import require_workers
from cpc_core.synth import generator as synth
from jobs._compute import map_with_progress

logger = logging.getLogger(__name__)


def _model(model):
    return model


def _write_group(batch, out, spec, models):
    """Write a batch of (city, service, day) file groups; the bytes written."""
    return sum(synth.write_file(out, spec, models[city], service, day) for city, service, day in batch)


def run_synth(spec: synth.SynthSpec, out: str | Path, client: Client) -> dict:
    """Generate ``spec`` under ``out`` on the cluster; return a summary.

    Writes ``out/netmob/...`` (traffic files and tile GeoJSONs), ``out/geo/communes.gpkg``,
    ``out/covariates/`` and ``out/truth/``. ``out`` must be a filesystem path the workers
    share (a local cluster always does).
    """
    out = Path(out)
    t0 = time.perf_counter()
    models = {c: synth.build_city(spec, c) for c in spec.cities}
    geography = [synth.write_city_geography(out, m) for m in models.values()]
    synth.write_communes(out, geography)
    synth.write_covariates(out, spec, list(models.values()), pd.concat(geography, ignore_index=True))
    # the per-city models (tiles, weights, hourly series) go to the cluster once, inside the
    # graph: not scatter(), which needs a worker to exist (an adaptive gateway cluster starts
    # with none and adds them for submitted work: "No valid workers found"); a worker that
    # runs a file task fetches its city's model from wherever it was computed
    require_workers(client, "synth", wait=False)  # check the workers there before any task
    fmodels = {c: client.submit(_model, m, key=f"synth-model-{c}-{tokenize(m)}") for c, m in models.items()}
    jobs = synth.file_jobs(spec)
    batches = synth.file_batches(jobs, models, spec)
    sizes = map_with_progress(client, _write_group, batches, "synth", str(out), spec, fmodels,
                              counts=[len(b) * len(spec.directions) for b in batches])
    summary = {
        "out": str(out),
        "files": len(jobs) * len(spec.directions),
        "bytes": int(sum(sizes)),
        "tiles": {c: int(len(m.tiles)) for c, m in models.items()},
        "communes": {c: int(len(m.communes)) for c, m in models.items()},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    logger.info("synthetic data: %d files, %.1f MB in %.1f s under %s", summary["files"],
                summary["bytes"] / 1e6, summary["seconds"], out)
    return summary
