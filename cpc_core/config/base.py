"""What every configuration reader shares: errors, bounded YAML, overrides, secrets.

The base of :mod:`cpc_core.config`: :mod:`~cpc_core.config.core` (the run configuration) and
:mod:`~cpc_core.config.validation_options` (the ``validation:`` section, also read alone by
``cpc validate``) both import from here and never from each other's module, so the package has
no import circle.

- :class:`ConfigError` -- a configuration problem (exit code 2), naming the key.
- :func:`read_yaml`, :func:`safe_load_bounded` -- YAML with bounded size, nesting and aliases.
- :func:`apply_overrides` -- ``--set key.sub=value``.
- :func:`format_errors` -- one line per pydantic error, with "did you mean".
- :func:`redact`, :func:`redacted`, :func:`redact_message`, :func:`is_secret_key` -- secrets
  never reach a record, a log or a message.
- ``_Frozen`` -- the base of every configuration model (frozen, unknown keys forbidden).
- :class:`DisclosureConfig` -- the ``disclosure:`` section, mounted by the run configuration
  and by the ``validation:`` section (hence here, below both).
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from cpc_core import disclosure
from cpc_core.errors import UsageError, clip

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "REDACTED",
    "SECRET_ENV",
    "ConfigError",
    "DisclosureConfig",
    "apply_overrides",
    "format_errors",
    "is_secret_key",
    "read_yaml",
    "redact",
    "redact_message",
    "redacted",
    "safe_load_bounded",
]

#: what every secret is replaced with in a record, a log, a message or ``cpc config show``
REDACTED = "***"
#: a configuration file larger than this is refused before it is parsed
MAX_CONFIG_BYTES = 1 << 20
#: YAML nodes of a configuration after alias expansion (a real config has a few hundred): a
#: "billion laughs" file of 600 bytes expands to 10^9 and is refused before it is built
MAX_YAML_NODES = 100_000
#: nesting depth of a configuration's YAML
MAX_YAML_DEPTH = 64

# A key whose value is a credential, in any mapping of the config (storage.options, nested
# client_kwargs, cluster.cluster_options): matched case-insensitively on the key's name.
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential", "private", "signature",
                 "session", "apikey", "api_key", "sas")
_SECRET_KEY = re.compile(r"(^|[_\-.])(key|pwd|pass|auth_kwargs)$|^key[_\-]|access[_\-]?key|account[_\-]?key")
# user:password@ in a URL (an s3/gateway/http address given with its credentials)
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^/@\s:]*):(?P<pw>[^/@\s]*)@")


def is_secret_key(key: object) -> bool:
    """Whether a mapping key names a credential (its value is redacted everywhere).

    Examples
    --------
    >>> [k for k in ("key", "secret", "token", "aws_secret_access_key", "Password", "session_token",
    ...              "account_key", "endpoint_url", "client_kwargs", "region_name", "lag_h")
    ...  if is_secret_key(k)]
    ['key', 'secret', 'token', 'aws_secret_access_key', 'Password', 'session_token', 'account_key']
    """
    k = str(key).lower()
    return any(w in k for w in _SECRET_WORDS) or bool(_SECRET_KEY.search(k))


def _redact_text(text: str) -> str:
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{REDACTED}@", text)


def redact(value: Any) -> Any:
    """A JSON-able copy of ``value`` with every secret replaced by :data:`REDACTED`.

    Secrets are: :class:`pydantic.SecretStr` values, the value of any key that names a
    credential (:func:`is_secret_key`, at any depth) and the password of a ``scheme://user:pw@``
    URL. Everything else is kept, so that the dump stays a faithful record of the run.
    """
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, BaseModel):
        return redact(value.model_dump())
    if isinstance(value, Mapping):
        return {str(k): (REDACTED if is_secret_key(k) and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return _redact_text(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return _redact_text(str(value))


#: environment variables whose values are credentials: never echoed, whatever the message
SECRET_ENV = ("DASK_GATEWAY__AUTH__KWARGS__PASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS_JSON")


def _secret_values(value: Any, under_secret: bool = False) -> list[str]:
    """Every secret string inside ``value`` (a config model, mapping or list)."""
    if isinstance(value, SecretStr):
        return [value.get_secret_value()]
    if isinstance(value, BaseModel):
        return [s for name in type(value).model_fields
                for s in _secret_values(getattr(value, name), under_secret or is_secret_key(name))]
    if isinstance(value, Mapping):
        return [s for k, v in value.items() for s in _secret_values(v, under_secret or is_secret_key(k))]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [s for v in value for s in _secret_values(v, under_secret)]
    if under_secret and value is not None and not isinstance(value, bool):
        return [str(value)]
    return []


def redact_message(text: str, cfg: BaseModel | Mapping | None = None) -> str:
    """``text`` (an error message, a log line) with every secret replaced by :data:`REDACTED`.

    Removes the secrets of ``cfg`` (``SecretStr`` values and the values of credential-named
    keys, e.g. in ``storage.options`` or ``cluster.cluster_options``), the values of the
    credential environment variables (:data:`SECRET_ENV`) and the password of any
    ``scheme://user:pw@`` URL.

    Examples
    --------
    >>> redact_message("failed: s3://me:hunter22@host/b (token abc123)",
    ...                {"storage": {"options": {"token": "abc123"}}})
    'failed: s3://me:***@host/b (token ***)'
    """
    secrets = [os.environ.get(name) for name in SECRET_ENV]
    if cfg is not None:
        secrets += _secret_values(cfg)
    # longest first, so that a secret containing another is replaced whole
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _redact_text(text)


def redacted(cfg: BaseModel) -> dict:
    """The effective configuration (defaults filled in) with every secret as ``"***"``.

    The one dump of a configuration: run.json's ``config``, the report, logs, error messages
    and ``cpc config show`` all use it. Never feed it back to :func:`cpc_core.config.core.parse_config` (the secrets
    are gone).
    """
    return redact(cfg)


class _Frozen(BaseModel):
    # allow_inf_nan=False: an infinite share or threshold is never meant, and nan compares
    # false with every bound
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    #: fields shown redacted in repr()/str() (and, through their serializers, in every dump)
    _REDACTED_FIELDS: ClassVar[frozenset[str]] = frozenset()

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            yield name, (redact(value) if name in self._REDACTED_FIELDS and value is not None else value)


class DisclosureConfig(_Frozen):
    """Statistical disclosure control of every published output.

    The thresholds of :mod:`cpc_core.disclosure`; :meth:`to_thresholds` converts the section into
    the library's :class:`cpc_core.disclosure.Thresholds`.
    """

    min_population: int = Field(disclosure.MIN_POPULATION, ge=0, le=disclosure.MAX_MIN_POPULATION,
                                description="areas below are flagged and their rates suppressed (0 .. 1e8)")
    min_tiles: int = Field(disclosure.MIN_TILES, ge=1, le=disclosure.MAX_MIN_TILES,
                           description="areas with fewer tiles are flagged and their rates suppressed (1 .. 1e6)")
    publish_tile_coordinates: bool = Field(False, description="reserved, no effect today: no published output "
                                           "carries tile coordinates whatever its value (tile-level "
                                           "intermediates stay under internal/)")

    def to_thresholds(self) -> disclosure.Thresholds:
        """The plain option object the library takes.

        Examples
        --------
        >>> DisclosureConfig(min_population=1000).to_thresholds()
        Thresholds(min_population=1000, min_tiles=3)
        """
        return disclosure.Thresholds(min_population=self.min_population, min_tiles=self.min_tiles)


class ConfigError(UsageError):
    """A configuration problem, with the key and what is allowed (exit code 2)."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader; :func:`safe_load_bounded` checks the composed node graph first."""


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Nodes of ``root`` once every alias is expanded, without expanding anything.

    Aliases compose to the very node they name, so a node's expanded size is computed once and
    reused (a billion-laughs file costs microseconds here). A node that contains itself (a
    recursive alias) is refused.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in on_path:
            raise ConfigError(f"{source}: a YAML alias refers to a node that contains it (line "
                              f"{node.start_mark.line + 1}); not allowed in a configuration")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}: nested deeper than {MAX_YAML_DEPTH} levels (line "
                              f"{node.start_mark.line + 1})")
        on_path.add(key)
        n = 1
        if isinstance(node, yaml.SequenceNode):
            for child in node.value:
                n += size(child, depth + 1)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                n += size(k, depth + 1) + size(v, depth + 1)
        on_path.discard(key)
        sizes[key] = n
        if n > MAX_YAML_NODES:
            raise ConfigError(f"{source}: YAML aliases expand to more than {MAX_YAML_NODES:,} values (line "
                              f"{node.start_mark.line + 1}); refused (an alias bomb?). Write the values out")
        return n

    return size(root, 0)


def _yaml_problem(e: yaml.YAMLError) -> str:
    # The problem and its position only: PyYAML's own text quotes the offending line, which
    # may be a password's.
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(e, "problem", None) or type(e).__name__
    return f"{clip(problem, 120)}{where}"


def safe_load_bounded(text: str, source: str) -> Any:
    """``yaml.safe_load`` with a bound on alias expansion and nesting.

    Raises
    ------
    ConfigError
        Naming ``source`` when the text expands beyond :data:`MAX_YAML_NODES` values, nests
        deeper than :data:`MAX_YAML_DEPTH`, has a recursive alias or is not valid YAML.
    yaml.YAMLError
        Never: it becomes a :class:`ConfigError`.
    """
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML: {_yaml_problem(e)}") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply") from None
    finally:
        loader.dispose()


def _override_value(value: str) -> Any:
    """A ``--set`` value: YAML where it is YAML, else the text itself.

    ``{netmob}/{city}/x.geojson`` is not YAML and ``{netmob}`` parses as a set-like mapping
    (every value null) that no one means: both are taken as the string typed.
    """
    try:
        parsed = safe_load_bounded(value, "--set")
    except ConfigError:
        return value
    if isinstance(parsed, dict) and parsed and all(v is None for v in parsed.values()) and value.lstrip().startswith("{"):
        return value
    return parsed


def _describe_set_item(item: str) -> str:
    # never echo what may be a credential typed without its "="
    return "(hidden: it names a credential)" if any(w in item.lower() for w in ("pass", "secret", "token", "key")) \
        else repr(clip(item, 80))


def apply_overrides(raw: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Apply ``key.sub=value`` overrides to a raw config mapping.

    Values are parsed as YAML (numbers, lists, booleans); a value that is not valid YAML is
    taken as the string typed.

    Examples
    --------
    >>> apply_overrides({"ingest": {"on_error": "fail"}}, ["ingest.on_error=quarantine"])
    {'ingest': {'on_error': 'quarantine'}}
    >>> apply_overrides({}, ["areas.tiles={netmob}/{city}/x.geojson"])
    {'areas': {'tiles': '{netmob}/{city}/x.geojson'}}
    """
    out = copy.deepcopy(raw) if raw else {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {_describe_set_item(item)}: expected KEY=VALUE, e.g. ingest.on_error=quarantine")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(p.strip() for p in parts):
            raise ConfigError(f"--set {clip(key, 80)!r}: empty key part; expected e.g. estimate.lag_h=2")
        node = out
        for depth, p in enumerate(parts[:-1]):
            child = node.setdefault(p, {})
            if child is None:  # `synth:` with nothing under it, then --set synth.days=2
                child = node[p] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {clip(key, 80)}: {'.'.join(parts[:depth + 1])} is not a section")
            node = child
        node[parts[-1]] = _override_value(value)
    return out


def _model_at(model: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The pydantic model that holds the key at ``loc`` (for a "did you mean" hint)."""
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        model = _model_in(field.annotation)
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is dict:
        return None
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _unknown_key_hint(model: type[BaseModel] | None, loc: tuple) -> str:
    holder = _model_at(model, loc[:-1])
    if holder is None:
        return "unknown key"
    keys = list(holder.model_fields)
    near = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.6)
    if near:
        return f"unknown key (did you mean {near[0]}?)"
    return f"unknown key; allowed: {clip(', '.join(keys))}"


def format_errors(err: ValidationError, source: str, prefix: str = "",
                  model: type[BaseModel] | None = None) -> str:
    """One line per problem: the dotted key (with ``prefix``) and what is allowed.

    The offending value is echoed (clipped, :func:`cpc_core.errors.clip`) only for a choice
    among allowed values, and never when the key names a credential; an unknown key gets the
    nearest known key of ``model`` ("did you mean lag_h?"); without ``model``, no hint.
    """
    lines = [f"{clip(source)}: invalid configuration"]
    for e in err.errors()[:20]:
        loc = tuple(e["loc"])
        dotted = ".".join(clip(x, 60) for x in loc) or "(top level)"
        secret = any(is_secret_key(x) for x in loc if isinstance(x, str))
        msg = clip(e["msg"].removeprefix("Value error, "), 400)
        if e["type"] == "extra_forbidden":
            msg = _unknown_key_hint(model, loc)
        elif e["type"] == "literal_error" and not secret:
            msg = f"{msg} (got {clip(repr(e.get('input')), 80)})"
        if secret:
            msg = msg.replace(str(e.get("input")), REDACTED) if isinstance(e.get("input"), str) and e.get("input") else msg
        lines.append(f"  {prefix}{dotted}: {msg}")
    if len(err.errors()) > 20:
        lines.append(f"  ... and {len(err.errors()) - 20} more")
    return "\n".join(lines)


def read_yaml(path: str | Path | None) -> tuple[dict, str]:
    """The mapping in a YAML file (``{}`` for None) and a name for messages.

    Raises
    ------
    ConfigError
        The file is missing, a folder, unreadable, larger than :data:`MAX_CONFIG_BYTES`, not
        valid YAML, an alias bomb (:func:`safe_load_bounded`) or not a mapping.
    """
    if path is None:
        return {}, "<defaults>"
    name = clip(str(path))
    p = Path(path)
    try:
        if p.is_dir():
            raise ConfigError(f"{name}: is a folder; give the configuration file (YAML)")
        with p.open("rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{name}: configuration file not found") from None
    except PermissionError:
        raise ConfigError(f"{name}: configuration file not readable (permission denied)") from None
    except OSError as e:
        raise ConfigError(f"{name}: configuration file cannot be read: {e.strerror or e}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: larger than {MAX_CONFIG_BYTES // 1024} KiB; not a configuration file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{name}: not UTF-8 text (byte {e.start}); not a configuration file") from None
    raw = safe_load_bounded(text, name) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: the configuration must be a mapping of sections")
    return raw, str(path)
