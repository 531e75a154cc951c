"""``cpc covariates SPEC``: build the validation's covariate table from the public files.

The spec is a small YAML file naming each source as downloaded (``docs/real-data.md``,
section 2; ``docs/outputs.md`` lists the table's columns)::

    ssmsi:                       # SSMSI communal base (outcome; drug abuse optional)
      path: donnee-data.gouv-2024-geographie2024.csv.gz
      years: [2017, 2021]
      drug_indicator: Usage de stupéfiants
    comparateur: base_cc_comparateur.csv      # density, poverty, unemployment
    households: base-cc-coupl-fam-men-2020.csv  # share of one-person households
    election:
      path: PR17_T1_communes.txt               # Latin-1, ';', one block per candidate
      share_of: expressed
    communes: results/communes.csv             # optional: keep the run's communes only
    pad_codes: false
    out: inputs/covariates.csv

The table is written as UTF-8 CSV (codes as text), and the loss report next to it as
``<out stem>_report.json`` and ``<out stem>_report.md``. The library computes
(:mod:`cpc_core.validation.covariates`); this module reads the spec and writes the files.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from cpc_core.config.core import ConfigError, apply_overrides, format_errors, read_yaml
from cpc_core.errors import CpcError, EnvironmentUnavailable, clip
from cpc_core.validation.covariates import CovariatesSpec, build_covariates, report_markdown

logger = logging.getLogger(__name__)


def load_spec(path: str, overrides: list[str] | tuple[str, ...] = ()) -> CovariatesSpec:
    """The spec of ``path`` with ``--set`` overrides; relative paths are taken from the spec's folder."""
    from pydantic import ValidationError

    raw, source = read_yaml(path)
    raw = apply_overrides(raw, overrides)
    try:
        spec = CovariatesSpec.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e, source)) from None
    base = Path(path).resolve().parent

    def rel(p: str | None) -> str | None:
        return None if p is None else str(p if os.path.isabs(p) else base / p)

    update: dict = {"communes": rel(spec.communes), "out": rel(spec.out)}
    for key in ("ssmsi", "comparateur", "households", "election"):
        src = getattr(spec, key)
        if src is not None:
            update[key] = src.model_copy(update={"path": rel(src.path)})
    return spec.model_copy(update=update)


def run_covariates(spec: CovariatesSpec) -> dict:
    """Build the table, write it and its report; return the output paths and the row count."""
    table, report = build_covariates(spec)
    out = Path(spec.out)
    stem = out.with_suffix("")
    paths = {
        "table": str(out),
        "report_json": f"{stem}_report.json",
        "report_md": f"{stem}_report.md",
    }
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        # codes are text; %.10g keeps the sources' precision without float noise
        table.to_csv(tmp, index=False, float_format="%.10g")
        os.replace(tmp, out)
        report = {"output": str(out), **report}
        Path(paths["report_json"]).write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        )
        Path(paths["report_md"]).write_text(report_markdown(report, out.name))
    except OSError as e:
        raise EnvironmentUnavailable(
            f"{clip(e.filename or out)}: cannot write ({e.strerror})"
        ) from None
    lost = sum(x["rows"] for x in report["losses"])
    logger.info("covariates: %d communes written to %s; %d rows or values left out (see %s)",
                len(table), out, lost, paths["report_md"])  # fmt: skip
    return {**paths, "rows": len(table), "left_out": lost}


def cmd(args) -> int:
    """``cpc covariates``: maps cpc's errors to their exit codes (one line, no traceback)."""
    overrides = list(args.overrides)
    if args.out:
        overrides.append(f"out={args.out}")
    if args.communes:
        overrides.append(f"communes={args.communes}")
    if args.pad_codes:
        overrides.append("pad_codes=true")
    try:
        spec = load_spec(args.spec, overrides)
        if args.out:  # the command line's paths are relative to the working directory
            spec = spec.model_copy(update={"out": str(Path(args.out).resolve())})
        if args.communes:
            spec = spec.model_copy(update={"communes": str(Path(args.communes).resolve())})
        res = run_covariates(spec)
    except CpcError as e:
        if args.verbose:
            raise
        print(f"cpc covariates: {e}", file=sys.stderr)
        return e.exit_code
    print(f"covariates: {res['table']} ({res['rows']} communes)\n"
          f"report: {res['report_md']} ({res['left_out']} rows or values left out, by reason)")  # fmt: skip
    return 0
