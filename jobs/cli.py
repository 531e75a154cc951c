"""The ``cpc`` command line: ``synth``, ``ingest``, ``run``, ``demo``, ``validate``, ``sweep``, ``submit``.

Each subcommand validates its arguments and configuration before any work starts, obtains a
Dask client from ``cluster`` and calls one job function. Exit status: 0 on success, 1 on a
data error (named file, line and reason), 2 on a usage or configuration error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path

from cpc_core import netmob
from cpc_core.config import ClusterConfig, ConfigError, RunConfig, load_config
from cpc_core.errors import CpcError

# `cluster` (distributed, ~0.6 s) and the parser (numba) are imported where a command needs
# them: `cpc --help` and a configuration error answer without them.

logger = logging.getLogger("cpc")

DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


def _client(cfg: ClusterConfig, cli_value: str | None):
    """A Dask client (context manager) for the cluster of ``--cluster`` or of the config."""
    from cluster import get_client

    _quiet()
    return get_client(_cluster_spec(cfg, cli_value))


def _cluster_spec(cfg: ClusterConfig, cli_value: str | None):
    """The cluster from ``--cluster`` if given, else from the config's cluster section."""
    from cluster import ClusterSpec

    if cli_value:
        spec = ClusterSpec.from_cli(cli_value)
        if spec.kind == cfg.kind:
            # keep the config's details (size, gateway options) for the same kind
            return ClusterSpec(**{**cfg.model_dump(exclude_none=True), **{k: v for k, v in vars(spec).items() if v is not None}})
        return spec
    return ClusterSpec(**cfg.model_dump(exclude_none=True))


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected YYYY-MM-DD") from None


def _cities(values: list[str] | None) -> tuple[str, ...] | None:
    if not values:
        return None
    if values == ["all"]:
        return netmob.CITIES
    return tuple(values)


def _add_cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="local|gateway|ADDRESS", default=None,
                   help="Dask cluster: a local one (default), a Dask Gateway (settings from the config "
                        "or DASK_GATEWAY__* variables) or a scheduler address tcp://host:port")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cpc", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write synthetic NetMob23-format data with planted truth")
    s.add_argument("--out", required=True, help="output folder (netmob/, geo/, covariates/, truth/)")
    s.add_argument("--cities", nargs="+", default=None, help="city names or 'all' (default: Paris Lyon Toulouse Nice)")
    s.add_argument("--services", nargs="+", default=list(netmob.STUDY_SERVICES))
    s.add_argument("--start", type=_date, default=netmob.NETMOB_START)
    s.add_argument("--days", type=int, default=28)
    s.add_argument("--directions", nargs="+", default=["DL"], choices=list(netmob.DIRECTIONS))
    s.add_argument("--scale", type=float, default=0.01, help="tiles as a fraction of the real city's count (1.0 = real size)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--lag", type=int, default=0, help="planted lag in hours (Tor follows Web_Adult by LAG hours)")
    _add_cluster(s)

    i = sub.add_parser("ingest", help="parse a NetMob tree into a Zarr cube")
    i.add_argument("--input", required=True, help="NetMob root folder or URL (<City>/<Service>/<YYYYMMDD>/...)")
    i.add_argument("--store", required=True, help="Zarr store path or URL")
    i.add_argument("--cities", nargs="+", default=None)
    i.add_argument("--services", nargs="+", default=None)
    i.add_argument("--directions", nargs="+", default=None, choices=list(netmob.DIRECTIONS))
    i.add_argument("--on-error", choices=["fail", "quarantine"], default="fail",
                   help="fail: stop at the first bad file (default); quarantine: keep the good lines, report the rest")
    i.add_argument("--compressor", choices=["lz4", "zstd", "blosc-zstd", "none"], default="lz4")
    i.add_argument("--report-dir", default=None, help="where the QC report goes (default <store>.reports/)")
    i.add_argument("--force", action="store_true", help="re-ingest files already complete in the store")
    _add_cluster(i)

    d = sub.add_parser("demo", help="generate the default synthetic data set and run the whole chain on it")
    d.add_argument("--out", default="cpc-demo", help="output folder (default ./cpc-demo)")
    d.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    _add_cluster(d)

    r = sub.add_parser("run", help="run the chain described by a YAML config")
    r.add_argument("config", help="YAML run configuration (see configs/)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set ingest.on_error=quarantine")
    _add_cluster(r)

    b = sub.add_parser("submit", help="batch run for CI: non-interactive, run id, run.json, exit 0 only if every stage succeeded")
    b.add_argument("config")
    b.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--run-id", default=None, help="run id to record (default: time + random suffix)")
    _add_cluster(b)

    w = sub.add_parser("sweep", help="re-run over grids and lags on the same cube; one comparison table and plot")
    w.add_argument("config")
    w.add_argument("--lags", nargs="+", type=int, default=None, help="lags (hours) to compare (default: the config's)")
    w.add_argument("--grids", nargs="+", default=["communes"], help="communes, departments, square:<metres>")
    w.add_argument("--outcome", default=None, help="CSV with the validation outcome per area (default: synthetic covariates)")
    w.add_argument("--outcome-column", default="sexual_violence_per_1000")
    w.add_argument("--outcome-key", default="commune")
    w.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    _add_cluster(w)

    add_validate_parser(sub)
    return p


def add_validate_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``cpc validate`` to the ``cpc`` sub-command parsers (:func:`jobs.validate.cmd` runs it).

    Defined here, not in :mod:`jobs.validate`, so that building the parser (``cpc --help``)
    does not import the validation stage, matplotlib and statsmodels.

    Examples
    --------
    >>> p = argparse.ArgumentParser(prog="cpc")
    >>> _ = add_validate_parser(p.add_subparsers(dest="command"))
    >>> p.parse_args(["validate", "--table", "t.csv", "--out", "o"]).command
    'validate'
    """
    v = subparsers.add_parser(
        "validate",
        help="validation tables, figures and report from a commune table",
        description="Run the validation stage (Tables 1-3, 5-7, Figures 1-5, report.html) on "
        "the pipeline's communes.csv or any commune table (CSV with , or ;, or Parquet).",
    )
    v.add_argument("--table", required=True, help="commune table (CSV or Parquet)")
    v.add_argument("--config", default=None,
                   help="YAML with a 'validation:' section (roles -> columns, covariate files...); "
                        "a whole run config is accepted too")  # fmt: skip
    v.add_argument("--out", required=True, help="output folder")
    v.add_argument("--run-dir", default=None,
                   help="pipeline output folder to take optional inputs from (default: the "
                        "table's folder)")  # fmt: skip
    v.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override, e.g. --set validation.cov_type=HC1")  # fmt: skip
    v.set_defaults(func=_validate)
    return v


def _validate(args) -> int:
    from jobs import validate

    return validate.cmd(args)


#: Libraries kept quiet unless -vv: distributed is chatty at INFO about worker start-up; the
#: dashboard's websocket-origin notice (bokeh) is about its own defaults, not the run.
_LIBRARY_LEVELS = {"distributed": logging.WARNING, "tornado": logging.WARNING, "pyogrio": logging.WARNING,
                   "fiona": logging.WARNING, "bokeh": logging.ERROR}


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose < 0 else (logging.INFO if verbose < 2 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    _quiet()


def _quiet() -> None:
    """The libraries' levels, unless -vv (root at DEBUG); again after importing distributed,
    whose import sets its loggers' levels from the dask config."""
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name, lvl in _LIBRARY_LEVELS.items():
            logging.getLogger(name).setLevel(lvl)


def cmd_synth(args) -> int:
    from cpc_core.synth import DEMO_CITIES, SynthSpec
    from jobs.synth import run_synth

    spec = SynthSpec(
        cities=_cities(args.cities) or DEMO_CITIES,
        services=tuple(args.services),
        start=args.start,
        days=args.days,
        directions=tuple(args.directions),
        scale=args.scale,
        seed=args.seed,
        lag_h=args.lag,
    )
    with _client(ClusterConfig(), args.cluster) as client:
        summary = run_synth(spec, args.out, client)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_ingest(args) -> int:
    from cpc_core import storage
    from jobs.ingest import run_ingest

    for key, path in (("--input", args.input), ("--store", args.store), ("--report-dir", args.report_dir)):
        storage.check_scheme(path, key)  # storage problems answered before a cluster is started
        if path:
            storage.check_bucket(path, key)
    with _client(ClusterConfig(), args.cluster) as client:
        qc = run_ingest(args.input, args.store, client, _cities(args.cities), args.services, args.directions,
                        on_error=args.on_error, compressor=args.compressor, report_dir=args.report_dir,
                        force=args.force)
    print(f"cube: {args.store}\nQC report: {qc['report_dir']}")
    return 0


def cmd_run(cfg: RunConfig, cluster: str | None, run_id: str | None = None) -> int:
    from jobs.pipeline import preflight, run_pipeline

    preflight(cfg)  # storage problems answered before a cluster is started
    with _client(cfg.cluster, cluster) as client:
        result = run_pipeline(cfg, client, run_id=run_id)
    print(f"results: {result['output_dir']}")
    for name, path in result.get("outputs", {}).items():
        print(f"  {name}: {path}")
    return 0


def cmd_sweep(cfg: RunConfig, args) -> int:
    from jobs.sweep import parse_grid, run_sweep

    for g in args.grids:
        parse_grid(g)
    lags = args.lags if args.lags is not None else list(cfg.estimate.lags)
    with _client(cfg.cluster, args.cluster) as client:
        result = run_sweep(cfg, client, lags, args.grids, args.outcome, args.outcome_column, args.outcome_key)
    print(f"sweep: {result['output_dir']}")
    for name, path in result["outputs"].items():
        print(f"  {name}: {path}")
    return 0


def cmd_submit(cfg: RunConfig, args) -> int:
    """Batch run: no progress bars, the run id logged first, run.json written whatever happens."""
    import os

    from jobs.pipeline import new_run_id

    os.environ["TQDM_DISABLE"] = "1"
    run_id = args.run_id or new_run_id()
    logger.info("cpc submit: run id %s", run_id)
    return cmd_run(cfg, args.cluster, run_id=run_id)


def _terminate_as_interrupt(signum, frame):
    # SIGTERM (CI cancelling a job, a scheduler's kill) unwinds like Ctrl-C: clusters are shut
    # down by their context managers and run.json records the interruption; every stage
    # resumes from what was completed.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    import signal

    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose + 1)
    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, _terminate_as_interrupt)
        except ValueError:  # not the main thread (e.g. called from a test thread)
            pass
    try:
        if args.command == "synth":
            return cmd_synth(args)
        if args.command == "ingest":
            return cmd_ingest(args)
        if args.command == "demo":
            cfg = load_config(DEMO_CONFIG, [f"output.dir={args.out}", *args.overrides])
            return cmd_run(cfg, args.cluster)
        if args.command == "run":
            cfg = load_config(args.config, args.overrides)
            return cmd_run(cfg, args.cluster)
        if args.command == "submit":
            cfg = load_config(args.config, args.overrides)
            return cmd_submit(cfg, args)
        if args.command == "validate":
            return _validate(args)
        if args.command == "sweep":
            cfg = load_config(args.config, args.overrides)
            return cmd_sweep(cfg, args)
    except KeyboardInterrupt:
        print(f"cpc {args.command}: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except CpcError as e:  # the error contract: each class carries its exit code
        print(f"cpc {args.command}: {e}", file=sys.stderr)
        return e.exit_code
    except (ConfigError, FileNotFoundError) as e:
        print(f"cpc {args.command}: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        from cpc_core.parse import NetmobFormatError

        if isinstance(e, NetmobFormatError):
            print(f"cpc {args.command}: bad input: {e}", file=sys.stderr)
            return 1
        print(f"cpc {args.command}: {e}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
