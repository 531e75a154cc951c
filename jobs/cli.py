"""The cpc command line: synth, ingest, run, demo, validate, sweep, submit, covariates, config, cluster.

Each subcommand validates its arguments and configuration before any work starts, obtains a
Dask client from ``cluster`` and calls one job function.

Exit status (docs/errors.md): 0 success; 1 bad input data (the file, line and reason); 2 usage or
configuration (the key or argument and what is allowed); 3 environment unavailable (cluster,
storage, permissions, disk full: the address or path); 4 internal error (a bug: re-run with
--debug for the traceback and report it); 130 interrupted. One line on stderr; a traceback
only with --debug (or -vv).
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import gc
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from cpc_core.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    CpcError,
    clip,
)
from cpc_core.netmob import facts as netmob  # names and dates only: no numpy/pandas at import

if TYPE_CHECKING:
    from cpc_core.config.core import ClusterConfig, RunConfig

# Start-up cost (issue 14): building the parser imports nothing but the standard library and the
# NetMob names, so `cpc --help` answers in ~0.1 s of CPU. The configuration (pydantic, yaml) is
# imported when a command reads one; `cluster` (distributed, ~0.6 s), the pipeline (numba,
# xarray, zarr) and the parser are imported where a command needs them, so a configuration
# error answers without them. tests/jobs/test_cli_startup.py checks the modules `import jobs.cli` loads.

logger = logging.getLogger("cpc")

#: True when this process is the ``cpc`` command (:func:`entry`), not a caller of :func:`main`.
_OWN_PROCESS = False


@contextmanager
def _loading():
    """The imports of a command's libraries.

    In the ``cpc`` process (:func:`entry`) the cyclic garbage collector pauses while they load,
    and what they loaded is then frozen out of later collections (:func:`gc.freeze`): pandas,
    xarray, zarr, pydantic and the rest leave some 10^5 long-lived objects that every full
    collection of the run traversed again. Measured on a lag re-run: 2.0 s -> 1.7 s
    (BENCHMARKS.md, "Whole commands"). A test or notebook that calls :func:`main` keeps its
    collector untouched (frozen objects are never collected: not for a long-lived caller).
    """
    if not _OWN_PROCESS:
        yield
        return
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


DEMO_CONFIG = Path(__file__).with_name("demo.yaml")


def _client(cfg: ClusterConfig, cli_value: str | None, input_bytes: int | None = None):
    """A Dask client (context manager) for the cluster of ``--cluster`` or of the config.

    ``input_bytes``: the work's input size when known (a local cluster of threads for a small
    one, ``cluster.processes: auto``).
    """
    return _get_client()(_cluster_spec(cfg, cli_value), input_bytes=input_bytes)


def _get_client():
    """:func:`cluster.get_client`, distributed imported (as a command's library, :func:`_loading`)
    and its loggers quieted after: its import resets their levels."""
    with _loading():
        import distributed  # noqa: F401

        from cluster import get_client
    _quiet()
    return get_client


def _on_demand_client(spec):
    """A client whose cluster starts only when a stage has work for it (:mod:`jobs._client`):
    ``cpc run``, ``demo`` and ``sweep`` re-runs on cached inputs start none. A gateway or a
    scheduler address is connected at once (a bad address or password fails before any work)."""
    from jobs._client import OnDemandClient

    def opener():
        # the input's size, when the pipeline knew it: processes: auto (cluster.in_threads)
        return _get_client()(spec, input_bytes=proxy.input_bytes)

    proxy = OnDemandClient(opener, spec.kind)
    if spec.kind != "local":
        # A gateway or a scheduler address is reached up front: a wrong address, password or
        # cluster option, or a closed port, fails in one line before any stage writes a file
        # (docs/errors.md). Connecting costs no cluster start (a gateway cluster starts from
        # zero workers, adaptive); only a private local cluster is worth deferring.
        proxy.stage = f"connecting to the {spec.kind}"
        proxy.get()
    return proxy


def _cluster_spec(cfg: ClusterConfig, cli_value: str | None):
    """The cluster from ``--cluster`` if given, else from the config's cluster section.

    A spec the cluster module refuses (``ValueError``/``TypeError`` naming the field) is a
    configuration error (exit 2), raised before any cluster starts.
    """
    try:
        return _make_cluster_spec(cfg, cli_value)
    except (TypeError, ValueError) as e:
        if isinstance(e, CpcError):
            raise
        from cpc_core.config.core import ConfigError

        where = f"--cluster {clip(cli_value, 80)}" if cli_value else "cluster section"
        raise ConfigError(f"{where}: {clip(str(e).replace('ClusterSpec.', 'cluster.'))}") from None


def _make_cluster_spec(cfg: ClusterConfig, cli_value: str | None):
    from cluster import ClusterSpec

    if cli_value:
        spec = ClusterSpec.from_cli(cli_value)
        if spec.kind == cfg.kind:
            # keep the config's details (size, gateway options) for the same kind
            return ClusterSpec(**{**cfg.spec_fields(), **{k: v for k, v in vars(spec).items() if v is not None}})
        # the waits apply to any kind: keep the config's
        waits = {k: v for k, v in cfg.spec_fields().items() if k in ("connect_timeout", "worker_timeout")}
        return ClusterSpec(**{**{k: v for k, v in vars(spec).items() if v is not None}, **waits}) if waits else spec
    if cfg.kind == "local":
        shared = _shared_cluster(cfg)
        if shared is not None:
            return shared
    return ClusterSpec(**cfg.spec_fields())


def _shared_cluster(cfg: ClusterConfig):
    """The cluster of ``cpc cluster up`` as an address spec, when its state file names a live
    scheduler; None otherwise (a stale file is named in a warning, :mod:`cluster._daemon`)."""
    from cluster import ClusterSpec
    from cluster._daemon import live_address

    found = live_address()
    if found is None:
        return None
    address, path = found
    sized = [k for k in ("n_workers", "threads_per_worker", "memory_limit") if getattr(cfg, k) is not None]
    logger.info("Dask cluster: the local cluster of `cpc cluster up` at %s (state file %s)%s; "
                "`--cluster local` starts a private one, `cpc cluster down` stops it", address, path,
                f", with its own sizing (cluster.{', cluster.'.join(sized)} not applied)" if sized else "")
    waits = {k: v for k, v in cfg.spec_fields().items() if k in ("connect_timeout", "worker_timeout")}
    return ClusterSpec(kind="address", address=address, **waits)


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


def _add_set(p: argparse.ArgumentParser, what: str = "config",
             example: str = "ingest.on_error=quarantine") -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a {what} value (a YAML value; repeatable), e.g. --set {example}; keys: "
                        f"docs/config.md")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cpc", description=__doc__.splitlines()[0],
                                epilog="exit status: 0 ok, 1 bad input data, 2 usage or configuration, "
                                       "3 environment (cluster, storage, permissions, disk), 4 internal "
                                       "error, 130 interrupted (docs/errors.md)")
    p.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    p.add_argument("--debug", action="store_true", help="debug logging and the traceback of an error (-vv)")
    p.add_argument("--version", action="version", version=f"cpc {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("config", help="show the effective configuration (defaults filled in, secrets as ***) or "
                                      "the reference of every key")
    csub = c.add_subparsers(dest="config_command", required=True)
    cs = csub.add_parser("show", help="print the effective configuration as YAML, defaults filled in, secrets "
                                      "redacted")
    cs.add_argument("config", help="YAML run configuration")
    _add_set(cs, example="estimate.lag_h=2")
    cr = csub.add_parser("reference", help="print the reference of every configuration key (Markdown: type, "
                                           "default, allowed values, description; docs/config.md)")
    cr.add_argument("--out", default=None, help="write it to this file instead of printing it")

    s = sub.add_parser("synth", help="write synthetic NetMob23-format data with planted truth")
    s.add_argument("--out", required=True, help="output folder (netmob/, geo/, covariates/, truth/)")
    s.add_argument("--cities", nargs="+", default=None, help="city names or 'all' (default: Paris Lyon Toulouse Nice)")
    s.add_argument("--services", nargs="+", default=list(netmob.STUDY_SERVICES), metavar="SERVICE",
                   help="NetMob23 services to generate (default: Tor Web_Adult YouTube, which carry the planted "
                        "truth; any other gets a YouTube-like daily shape)")
    s.add_argument("--start", type=_date, default=netmob.NETMOB_START, metavar="YYYY-MM-DD",
                   help=f"first day generated (default {netmob.NETMOB_START}, the first day of NetMob23)")
    s.add_argument("--days", type=int, default=28, help="number of consecutive days generated (default 28)")
    s.add_argument("--directions", nargs="+", default=["DL"], choices=list(netmob.DIRECTIONS),
                   help="traffic directions: DL download, UL upload (default DL)")
    s.add_argument("--scale", type=float, default=0.01, help="tiles as a fraction of the real city's count (1.0 = real size)")
    s.add_argument("--seed", type=int, default=0,
                   help="random seed, 0 .. 2^32-1: the same seed gives the same files (default 0)")
    s.add_argument("--lag", type=int, default=0, help="planted lag in hours (Tor follows Web_Adult by LAG hours)")
    s.add_argument("--spatial-errors", type=float, default=0.0, metavar="LAMBDA",
                   help="plant spatially autocorrelated (SAR) errors of the validation outcome over the "
                        "communes' contiguity, -1 < LAMBDA < 1 (default 0: independent errors)")
    _add_cluster(s)

    i = sub.add_parser("ingest", help="parse a NetMob tree into a Zarr cube")
    i.add_argument("--input", required=True, help="NetMob root folder or URL (<City>/<Service>/<YYYYMMDD>/...)")
    i.add_argument("--store", required=True, help="Zarr store path or URL")
    i.add_argument("--cities", nargs="+", default=None, help="city folders to ingest, or 'all' (default: every "
                                                              "city found)")
    i.add_argument("--services", nargs="+", default=None, help="services to ingest (default: every service found)")
    i.add_argument("--directions", nargs="+", default=None, choices=list(netmob.DIRECTIONS),
                   help="traffic directions to ingest (default: both found)")
    i.add_argument("--on-error", choices=["fail", "quarantine"], default="fail",
                   help="fail: stop at the first bad file (default); quarantine: keep the good lines, report the rest")
    i.add_argument("--compressor", choices=["lz4", "zstd", "blosc-zstd", "none"], default="lz4",
                   help="compression of the cube's arrays (default lz4, the fastest; zstd, the smallest)")
    i.add_argument("--report-dir", default=None, help="where the QC report goes (default <store>.reports/)")
    i.add_argument("--force", action="store_true", help="re-ingest files already complete in the store")
    i.add_argument("--repair", action="store_true",
                   help="check every stored chunk against its checksum (reads the whole store) and re-ingest the "
                        "files of damaged ones; a plain run checks sizes and metadata only")
    _add_cluster(i)

    d = sub.add_parser("demo", help="generate the default synthetic data set and run the whole chain on it")
    d.add_argument("--out", default="cpc-demo", help="output folder (default ./cpc-demo)")
    _add_set(d, "demo config", "synth.days=7")
    _add_cluster(d)

    r = sub.add_parser("run", help="run the chain described by a YAML config")
    r.add_argument("config", help="YAML run configuration (see configs/)")
    _add_set(r)
    _add_cluster(r)

    b = sub.add_parser("submit", help="batch run for CI: non-interactive, run id, run.json, exit 0 only if every stage succeeded")
    b.add_argument("config", help="YAML run configuration (see configs/)")
    _add_set(b)
    b.add_argument("--run-id", default=None, help="run id to record (default: time + random suffix)")
    _add_cluster(b)

    w = sub.add_parser("sweep", help="re-run over grids and lags on the same cube; one comparison table and plot")
    w.add_argument("config", help="YAML run configuration whose cube and areas are swept (see configs/)")
    w.add_argument("--lags", nargs="+", type=int, default=None, help="lags (hours) to compare (default: the config's)")
    w.add_argument("--grids", nargs="+", default=["communes"], help="communes, departments, square:<metres>")
    w.add_argument("--outcome", default=None, help="CSV with the validation outcome per area (default: synthetic covariates)")
    w.add_argument("--outcome-column", default="sexual_violence_per_1000",
                   help="column of the outcome CSV holding the outcome per 1000 inhabitants (default "
                        "sexual_violence_per_1000)")
    w.add_argument("--outcome-key", default="commune",
                   help="column of the outcome CSV holding the commune code (default commune)")
    _add_set(w)
    _add_cluster(w)

    k = sub.add_parser("cluster", help="a long-lived local Dask cluster for an interactive day: later commands "
                                       "(cluster.kind local, no --cluster) use it instead of starting their own",
                       description="Start, stop or show a local Dask cluster that runs in the background. Its "
                                   "address is kept in a state file ($CPC_CACHE_DIR, else $XDG_CACHE_HOME/cpc or "
                                   "~/.cache/cpc, local-cluster.json); a file whose scheduler is gone is named and "
                                   "ignored.")
    ksub = k.add_subparsers(dest="cluster_command", required=True)
    ku = ksub.add_parser("up", help="start it in the background (or show the one running) and write its address")
    ku.add_argument("--n-workers", type=int, default=None,
                    help="worker processes (default: one per core, fewer where a worker would get under 2 GiB)")
    ku.add_argument("--threads-per-worker", type=int, default=None, help="threads per worker (default 1)")
    ku.add_argument("--memory-limit", default=None, help="memory per worker, e.g. 4GiB (default: shared equally)")
    ku.add_argument("--no-dashboard", action="store_true", help="do not serve the dashboard")
    ksub.add_parser("down", help="stop it and remove its state file (a stale one too)")
    ksub.add_parser("status", help="print its address, size and state file, or that none is running")

    add_validate_parser(sub)
    add_covariates_parser(sub)
    # --debug also after the command (`cpc run my.yaml --debug`), where users put it
    for parser in [*sub.choices.values(), *csub.choices.values(), *ksub.choices.values()]:
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                            help="debug logging and the traceback of an error (-vv)")
    return p


def add_covariates_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``cpc covariates`` (:func:`jobs.covariates.cmd` runs it; imported only then)."""
    c = subparsers.add_parser(
        "covariates",
        help="build the validation's covariate table from the public source files as downloaded",
        description="Read the SSMSI, INSEE and 2017 election files named in SPEC (docs/real-data.md), "
        "join them on the commune code and write the covariate table with a report of every row left out.",
    )
    c.add_argument("spec", help="YAML naming the source files (see jobs/covariates.py)")
    c.add_argument("--out", default=None, help="output CSV (default: the spec's out)")
    c.add_argument("--communes", default=None, help="keep only the communes of this table (column 'commune')")
    c.add_argument("--pad-codes", action="store_true",
                   help="zero-pad 4-digit codes that lost their leading zero instead of refusing them")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec value (repeatable), e.g. --set ssmsi.min_years=3")
    c.set_defaults(func=_covariates)
    return c


def _covariates(args) -> int:
    with _loading():
        from jobs import covariates

    return covariates.cmd(args)


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


def _version() -> str:
    from cpc_core import __version__

    return __version__


def cmd_config_reference(out: str | None) -> int:
    """Print (or write to ``out``) the configuration reference, ``docs/config.md``."""
    from cpc_core.config.reference import render_markdown

    text = render_markdown()
    if out is None:
        print(text, end="")
    else:
        Path(out).write_text(text, encoding="utf-8")
    return 0


def cmd_config_show(cfg: RunConfig) -> int:
    """Print the effective configuration (defaults filled in) with every secret as ``***``."""
    import yaml

    from cpc_core.config.core import redacted

    print(yaml.safe_dump(redacted(cfg), sort_keys=False), end="")
    return 0


def _validate(args) -> int:
    with _loading():
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
    with _loading():
        from cpc_core.config.core import ClusterConfig
        from cpc_core.synth.generator import DEMO_CITIES, SynthSpec
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
        spatial_errors=args.spatial_errors,
    )
    if "://" not in str(args.out):
        # a folder that cannot be made fails here, in one line, before a cluster starts
        Path(args.out).mkdir(parents=True, exist_ok=True)
    from cpc_core.synth.spec import text_bytes

    with _client(ClusterConfig(), args.cluster, text_bytes(spec)) as client:
        summary = run_synth(spec, args.out, client)
    print(json.dumps(summary, indent=2))
    return 0


def cmd_ingest(args) -> int:
    with _loading():
        from cpc_core import storage
        from jobs.ingest import run_ingest

    def cluster_config():
        # pydantic (~0.2 s) only when a cluster is to be described: not for a complete store
        from cpc_core.config.core import ClusterConfig

        return ClusterConfig()

    for key, path in (("--input", args.input), ("--store", args.store), ("--report-dir", args.report_dir)):
        storage.check_scheme(path, key)  # storage problems answered before a cluster is started
        if path:
            storage.check_bucket(path, key)
    if args.cluster:
        _cluster_spec(cluster_config(), args.cluster)  # a bad --cluster is refused before any work
    # the cluster starts only if there are files to ingest: a complete store is answered without one
    qc = run_ingest(args.input, args.store,
                    lambda input_bytes=None: _client(cluster_config(), args.cluster, input_bytes), _cities(args.cities),
                    args.services, args.directions, on_error=args.on_error, compressor=args.compressor,
                    report_dir=args.report_dir, force=args.force, repair=args.repair)
    print(f"cube: {args.store}\nQC report: {qc['report_dir']}")
    return 0


def cmd_cluster(args) -> int:
    """``cpc cluster up|down|status`` (:mod:`cluster._daemon`)."""
    from cluster import _daemon

    if args.cluster_command == "up":
        from cluster import ClusterSpec
        from cpc_core.errors import UsageError

        try:  # refused here, in one line, before a background process starts
            ClusterSpec(kind="local", n_workers=args.n_workers, threads_per_worker=args.threads_per_worker,
                        memory_limit=args.memory_limit)
        except (TypeError, ValueError) as e:
            msg = str(e)
            for name in ("n_workers", "threads_per_worker", "memory_limit"):
                msg = msg.replace(f"ClusterSpec.{name}", "--" + name.replace("_", "-"))
            raise UsageError(clip(msg, 400)) from None
        rec = _daemon.up(args.n_workers, args.threads_per_worker, args.memory_limit, not args.no_dashboard)
        print(f"local cluster: {rec['address']} ({rec['n_workers']} workers x {rec['threads_per_worker']} "
              f"thread(s), process {rec['pid']})\nstate file: {_daemon.state_file()}")
        if rec.get("dashboard"):
            print(f"dashboard: {rec['dashboard']}")
        print("commands whose config says cluster.kind: local (the default) now use it; `cpc cluster down` stops it")
        return 0
    if args.cluster_command == "down":
        f = _daemon.down()
        if f.live:
            print(f"stopped the local cluster at {f.address}; removed {f.path}")
        elif f.record is not None or f.reason != "no state file":
            print(f"no local cluster was running ({f.reason}); removed the stale state file {f.path}")
        else:
            print(f"no local cluster is running (no state file {f.path})")
        return 0
    f = _daemon.find()
    if f.live:
        r = f.record
        print(f"running: {r['address']} ({r.get('n_workers')} workers x {r.get('threads_per_worker')} thread(s), "
              f"process {r.get('pid')}, since {r.get('started')})\nstate file: {f.path}")
        if r.get("dashboard"):
            print(f"dashboard: {r['dashboard']}")
    elif f.record is not None or f.reason != "no state file":
        logger.warning("the local-cluster file %s is stale (%s); `cpc cluster down` removes it", f.path, f.reason)
        print(f"not running: stale state file {f.path} ({f.reason})")
    else:
        print(f"not running (no state file {f.path})")
    return 0


def _command(args, *positional: str) -> str:
    """The command line as the report names it: ``--set`` values left out (they may be secrets)."""
    sets = " ".join(f"--set {o.split('=', 1)[0]}=..." for o in getattr(args, "overrides", []) or [])
    return " ".join(["cpc", args.command, *positional, *([sets] if sets else [])])


def cmd_run(cfg: RunConfig, cluster: str | None, run_id: str | None = None, batch: bool = False,
            command: str | None = None) -> int:
    """Run the chain.

    ``cpc run`` refuses a bad cluster setting before it touches the output folder, like any
    other configuration error. ``cpc submit`` (``batch``) opens the run record first, so that
    its run.json records whatever happens: a bad cluster setting, a cluster that cannot be
    reached, or any stage's failure.
    """
    with _loading():
        from jobs.pipeline import preflight, run_pipeline, run_record

    if not batch:  # answered before anything is written; submit records them (run_record)
        preflight(cfg)
    spec = None if batch else _cluster_spec(cfg.cluster, cluster)
    with run_record(cfg, run_id) as record:
        spec = spec or _cluster_spec(cfg.cluster, cluster)
        record["cluster"] = {"kind": spec.kind}
        with _on_demand_client(spec) as client:
            result = run_pipeline(cfg, client, record=record, command=command)
    print(f"results: {result['output_dir']}")
    for name, path in result.get("outputs", {}).items():
        print(f"  {name}: {path}")
    return 0


def cmd_sweep(cfg: RunConfig, args) -> int:
    with _loading():
        from jobs.sweep import parse_grid, run_sweep

    for g in args.grids:
        parse_grid(g)
    lags = args.lags if args.lags is not None else list(cfg.estimate.lags)
    with _on_demand_client(_cluster_spec(cfg.cluster, args.cluster)) as client:
        result = run_sweep(cfg, client, lags, args.grids, args.outcome, args.outcome_column, args.outcome_key)
    print(f"sweep: {result['output_dir']}")
    for name, path in result["outputs"].items():
        print(f"  {name}: {path}")
    return 0


def cmd_submit(cfg: RunConfig, args) -> int:
    """Batch run: no progress bars, the run id logged first, run.json written whatever happens."""
    import os

    from jobs.pipeline import check_run_id, new_run_id

    os.environ["TQDM_DISABLE"] = "1"
    run_id = check_run_id(args.run_id) if args.run_id is not None else new_run_id()
    logger.info("cpc submit: run id %s", run_id)
    return cmd_run(cfg, args.cluster, run_id=run_id, batch=True, command=_command(args, args.config))


def _terminate_as_interrupt(signum, frame):
    # SIGTERM (CI cancelling a job, a scheduler's kill) unwinds like Ctrl-C: clusters are shut
    # down by their context managers and run.json records the interruption; every stage
    # resumes from what was completed.
    raise KeyboardInterrupt(f"signal {signum}")


#: OSError kinds that are the environment's (exit 3) or the user's choice of a path (exit 2),
#: each with a remedy; any other OSError is the environment's
_OS_ERRORS: dict[int, tuple[int, str, str]] = {
    errno.EACCES: (EXIT_ENVIRONMENT, "permission denied", "check its permissions or choose another path"),
    errno.EPERM: (EXIT_ENVIRONMENT, "operation not permitted", "check its permissions or choose another path"),
    errno.ENOSPC: (EXIT_ENVIRONMENT, "no space left on device",
                   "free space and re-run the same command: completed work is kept and resumed"),
    errno.EDQUOT: (EXIT_ENVIRONMENT, "disk quota exceeded",
                   "free space and re-run the same command: completed work is kept and resumed"),
    errno.EROFS: (EXIT_ENVIRONMENT, "read-only file system", "choose a writable path"),
    errno.ELOOP: (EXIT_ENVIRONMENT, "too many levels of symbolic links (a symlink loop)",
                  "remove or fix the link"),
    errno.EIO: (EXIT_ENVIRONMENT, "input/output error", "check the disk or the mount, then re-run"),
    errno.ENAMETOOLONG: (EXIT_USAGE, "file name too long",
                         "choose a shorter path (at most 255 characters per folder or file name)"),
    errno.ENOENT: (EXIT_USAGE, "no such file or folder", "check the path"),
    errno.ENOTDIR: (EXIT_USAGE, "not a folder", "check the path: a file stands where a folder is expected"),
    errno.EISDIR: (EXIT_USAGE, "is a folder", "give a file, not a folder"),
    errno.EEXIST: (EXIT_USAGE, "already exists", "remove it or choose another path"),
}


def _describe_os_error(e: OSError) -> tuple[int, str]:
    """Exit code and one line for an ``OSError`` that reached the top: the kind, the path
    (clipped) and a remedy."""
    if isinstance(e, (ConnectionError, TimeoutError)) or e.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH,
                                                                    errno.ENETUNREACH, errno.ETIMEDOUT):
        return EXIT_ENVIRONMENT, (f"cannot connect: {clip(e)} (check the address, the network and that the "
                                  "service is up, then re-run)")
    number = e.errno
    if number is None:  # raised by a library as FileNotFoundError("...") etc.: no errno set
        number = next((n for cls, n in _ERRNO_OF_CLASS if isinstance(e, cls)), None)
    code, what, remedy = _OS_ERRORS.get(number, (EXIT_ENVIRONMENT, e.strerror or type(e).__name__,
                                                 "check the path and the storage, then re-run"))
    paths = [clip(p) for p in (e.filename, e.filename2) if p is not None]
    if paths:
        where = f": {' -> '.join(paths)}"
    elif e.strerror is None and str(e):
        where = f": {clip(e)}"  # the library's own text names what was missing
    else:
        where = ""
    return code, f"{what}{where} ({remedy})"


_ERRNO_OF_CLASS = ((FileNotFoundError, errno.ENOENT), (PermissionError, errno.EACCES),
                   (IsADirectoryError, errno.EISDIR), (NotADirectoryError, errno.ENOTDIR),
                   (FileExistsError, errno.EEXIST))


_PACKAGE_DIRS = tuple(str(Path(__file__).resolve().parents[1] / d) for d in ("cpc_core", "jobs", "cluster"))


def _raised_by_cpc(e: BaseException) -> bool:
    """Whether the innermost frame of ``e``'s traceback is cpc's own code (not a library's)."""
    tb = e.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return str(Path(tb.tb_frame.f_code.co_filename).resolve()).startswith(_PACKAGE_DIRS)


def main(argv: list[str] | None = None) -> int:
    """The ``cpc`` command: parse, configure logging, run one command, map any failure to an
    exit code and one line on stderr (docs/errors.md)."""
    import signal

    args = build_parser().parse_args(argv)
    from jobs._numba_cache import ensure_numba_cache

    ensure_numba_cache()  # before numba is imported, here or in a worker started from here
    verbosity = max(args.verbose, 2 if args.debug else 0)
    _setup_logging(verbosity + 1)
    debug = verbosity >= 2
    if hasattr(signal, "SIGTERM"):
        try:
            signal.signal(signal.SIGTERM, _terminate_as_interrupt)
        except ValueError:  # not the main thread (e.g. called from a test thread)
            pass
    name = f"cpc {args.command}"

    def fail(code: int, message: str) -> int:
        from cpc_core.config.core import redact_message

        if debug:
            import traceback

            traceback.print_exc()
        # no secret of the environment or of a URL reaches the terminal or a CI log
        print(f"{name}: {redact_message(message)}", file=sys.stderr)
        return code

    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return fail(EXIT_INTERRUPTED, "interrupted; re-run the same command to resume")
    except CpcError as e:
        # ConfigError, UsageError, InputDataError (NetmobFormatError), EnvironmentUnavailable
        from cpc_core.errors import InputDataError

        prefix = "bad input: " if isinstance(e, InputDataError) and not str(e).startswith("bad input") else ""
        return fail(e.exit_code, f"{prefix}{e}")
    except OSError as e:
        code, message = _describe_os_error(e)
        return fail(code, message)
    except ValueError as e:
        if _raised_by_cpc(e):
            # cpc's own checks that predate cpc_core.errors raise a plain ValueError naming the
            # value and what is allowed: a usage problem, as before
            return fail(EXIT_USAGE, clip(e, 2000))
        return fail(EXIT_INTERNAL, f"internal error: {type(e).__name__}: {clip(e)} (re-run with --debug for the "
                                   "traceback and report it)")
    except MemoryError:
        return fail(EXIT_ENVIRONMENT, "out of memory (use a machine or workers with more memory, or fewer "
                                      "threads per worker)")
    except Exception as e:  # noqa: BLE001 - the contract: one line, a distinct code, never a traceback
        return fail(EXIT_INTERNAL, f"internal error: {type(e).__name__}: {clip(e)} (re-run with --debug for the "
                                   "traceback and report it)")


def _dispatch(args) -> int:
    if args.command in ("ingest", "synth", "covariates", "validate", "cluster"):
        # no run configuration to read: pydantic is imported only if one of them needs it
        return {"ingest": cmd_ingest, "synth": cmd_synth, "covariates": _covariates, "validate": _validate,
                "cluster": cmd_cluster}[args.command](args)
    with _loading():
        from cpc_core.config.core import ConfigError, load_config

    if args.command == "config":
        if args.config_command == "reference":
            return cmd_config_reference(args.out)
        return cmd_config_show(load_config(args.config, args.overrides))
    if args.command == "demo":
        cfg = load_config(DEMO_CONFIG, [f"output.dir={args.out}", *args.overrides])
        return cmd_run(cfg, args.cluster, command=_command(args, "--out", args.out))
    if args.command == "run":
        cfg = load_config(args.config, args.overrides)
        return cmd_run(cfg, args.cluster, command=_command(args, args.config))
    if args.command == "submit":
        cfg = load_config(args.config, args.overrides)
        return cmd_submit(cfg, args)
    if args.command == "sweep":
        cfg = load_config(args.config, args.overrides)
        return cmd_sweep(cfg, args)
    raise ConfigError(f"unknown command {clip(args.command)}")  # pragma: no cover - argparse checks


def entry() -> NoReturn:
    """The ``cpc`` console script (and ``python -m jobs.cli``): :func:`main` as the owner of the
    process, which lets :func:`_loading` tune the garbage collector for a short-lived command.

    When the command returns, the process ends as the interpreter would end it, minus its last
    step: the streams are flushed, non-daemon threads joined and the ``atexit`` handlers run
    (logging's flush, multiprocessing's and weakref finalizers, distributed's), then
    :func:`os._exit` skips tearing down the ~3,700 loaded modules one by one, which took ~1 s
    after a demo's work was done and every file closed (BENCHMARKS.md, "Whole commands").
    ``--help`` and argparse's usage errors (``SystemExit``) end the usual way.
    """
    import atexit
    import os
    import threading

    global _OWN_PROCESS
    _OWN_PROCESS = True
    rc = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said on it
            pass
    threading._shutdown()  # what the interpreter does first at exit: join non-daemon threads
    atexit._run_exitfuncs()
    os._exit(rc)


if __name__ == "__main__":
    sys.exit(entry())
