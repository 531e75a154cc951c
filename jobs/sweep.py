"""Job: re-run the chain over grids and lags and compare the variants (``cpc sweep``).

Lags cost nothing extra: every run correlates all lags in one pass. Each grid is one run of
the chain on the *same cube* (no re-ingest) with its own output folder; grids run one after
the other, each using the whole cluster, because the crosswalk and the rollup already spread
over every worker. One comparison table and one plot summarise the variants.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from distributed import Client

from cpc_core import storage
from cpc_core.config.core import RunConfig, parse_config
from cpc_core.errors import InputDataError
from cpc_core.estimate import areas as area_tables
from cpc_core.estimate import variants
from jobs.pipeline import run_pipeline

logger = logging.getLogger(__name__)


def parse_grid(value: str) -> dict:
    """``communes``, ``departments`` or ``square:<metres>`` -> an ``areas`` override."""
    if value in ("communes", "departments"):
        return {"grid": value}
    if value.startswith("square:"):
        try:
            size = float(value.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"--grids {value!r}: expected square:<metres>, e.g. square:1000") from None
        return {"grid": "square", "square_m": size}
    raise ValueError(f"--grids {value!r}: allowed communes, departments, square:<metres>")


def _variant_config(cfg: RunConfig, grid: str, lags: list[int], out: Path) -> RunConfig:
    raw = cfg.model_dump(mode="json")
    # the dump shows secrets as ***: the variant needs the values themselves
    raw["storage"] = {"options": dict(cfg.storage.options)}
    raw["areas"].update(parse_grid(grid))
    raw["estimate"]["lags"] = sorted(set(lags) | {cfg.estimate.lag_h})
    raw["output"]["dir"] = str(out)
    # every variant reads the base run's data and cube: nothing is generated or ingested twice
    raw["synth"] = None
    raw["input"]["netmob"] = cfg.netmob_root
    raw["ingest"]["store"] = cfg.store_path
    if cfg.areas_path:
        raw["areas"]["path"] = cfg.areas_path
        if raw["areas"]["source"] == "synthetic":
            raw["areas"]["source"] = "file"
    if cfg.poi_path:
        raw["poi"]["path"] = cfg.poi_path
    # the sections with secrets as they are: their dumps are redacted
    raw["cluster"], raw["storage"] = cfg.cluster, cfg.storage
    return parse_config(raw, f"sweep variant {grid}")


def outcome_table(cfg: RunConfig, path: str | None, column: str, key: str) -> pd.Series | None:
    """The validation outcome per area, from ``path`` or a synthetic run's covariates."""
    if path is None and cfg.synth is not None:
        path = storage.join(cfg.output.dir, "data", "covariates", "communes.csv")
    if path is None or not storage.exists(path):
        return None
    t = pd.read_csv(path, sep=None, engine="python")
    for col in (column, key):
        if col not in t.columns:
            raise InputDataError(f"{path}: no column {col!r}; columns found: {list(t.columns)}")
    return t.set_index(t[key].astype(str))[column]


def summarise(grid: str, out: Path, outcome: pd.Series | None) -> pd.DataFrame:
    """One row per lag: areas, rho_j summary and Spearman correlations with the outcome."""
    col = area_tables.PUBLISHED_AREA_COLUMN  # the files' name of the area column
    rbl, est, com = (pd.read_csv(out / f, dtype={col: str}).rename(columns={col: area_tables.AREA_COLUMN})
                     for f in ("rho_by_lag.csv", "estimates_by_lag.csv", "communes.csv"))
    return variants.lag_summary(grid, rbl, est, com.set_index(area_tables.AREA_COLUMN), outcome)


def plot(table: pd.DataFrame, rbl: dict[str, pd.DataFrame], path: Path) -> None:
    """The comparison plot: rho_j per lag for each variant (points below 10 areas), and the
    outcome correlation per variant when an outcome is known (cpc_core.render.figures)."""
    from cpc_core.render import figures

    fig = figures.sweep_comparison(rbl, table)
    if isinstance(path, storage.RemotePath):  # matplotlib writes local files only
        import io

        for target, kw in ((path, {"dpi": 120, "format": "png"}), (path.with_suffix(".svg"), {"format": "svg"})):
            buf = io.BytesIO()
            fig.savefig(buf, **kw)
            target.write_bytes(buf.getvalue())
    else:
        fig.savefig(path, dpi=120)
        fig.savefig(path.with_suffix(".svg"))


def run_sweep(cfg: RunConfig, client: Client, lags: list[int], grids: list[str],
              outcome_path: str | None = None, outcome_column: str = "sexual_violence_per_1000",
              outcome_key: str = "commune") -> dict:
    """Run the base configuration, then each grid variant; write ``sweep/comparison.csv``."""
    for g in grids:
        parse_grid(g)  # fail on a bad grid before any work
    base = run_pipeline(cfg, client)
    sweep_dir = storage.path(cfg.output.dir) / "sweep"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    outcome = outcome_table(cfg, outcome_path, outcome_column, outcome_key)
    tables, rbl = [], {}
    for grid in grids:
        out = sweep_dir / grid.replace(":", "_")
        vcfg = _variant_config(cfg, grid, lags, out)
        logger.info("sweep variant %s -> %s", grid, out)
        run_pipeline(vcfg, client)
        tables.append(summarise(grid, out, outcome))
        rbl[grid] = pd.read_csv(out / "rho_by_lag.csv")
    table = pd.concat(tables, ignore_index=True)
    table = table[table["lag_h"].isin(lags)] if lags else table
    table.to_csv(sweep_dir / "comparison.csv", index=False)
    plot(table, rbl, sweep_dir / "comparison.png")
    return {"output_dir": str(sweep_dir), "outputs": {"comparison": str(sweep_dir / "comparison.csv"),
                                                        "plot": str(sweep_dir / "comparison.png"),
                                                        "base run": base["output_dir"]}}
