"""Job: the whole chain for one configuration (``cpc run`` and ``cpc demo``).

Only wiring: each stage is a library call, each compute point is here or in the stage's job.
"""

from __future__ import annotations

import logging
from pathlib import Path

from distributed import Client

from cpc_core.config import RunConfig
from cpc_core.synth import SynthSpec
from jobs.ingest import run_ingest
from jobs.synth import run_synth

logger = logging.getLogger(__name__)


def run_pipeline(cfg: RunConfig, client: Client) -> dict:
    """Run synth (if configured and not yet written), ingest, and the estimation stages."""
    out = Path(cfg.output.dir)
    out.mkdir(parents=True, exist_ok=True)
    outputs: dict[str, str] = {}
    if cfg.synth is not None:
        data = out / "data"
        if (data / "truth" / "truth.json").exists():
            logger.info("synthetic data already in %s: not regenerated", data)
        else:
            run_synth(SynthSpec(**cfg.synth.model_dump()), data, client)
        outputs["synthetic data"] = str(data)
    qc = run_ingest(
        cfg.netmob_root,
        cfg.store_path,
        client,
        cities=cfg.input.cities,
        services=cfg.input.services,
        directions=cfg.input.directions,
        on_error=cfg.ingest.on_error,
        compressor=cfg.ingest.compressor,
        tile_chunk=cfg.ingest.tile_chunk,
        outage_ratio=cfg.ingest.outage_ratio,
        report_dir=out / "reports",
    )
    outputs["cube"] = cfg.store_path
    outputs["ingest QC report"] = qc["report_dir"]
    return {"output_dir": str(out), "outputs": outputs}
