"""Configuration at the edge: YAML validated into frozen, typed models.

Only ``jobs/`` reads configuration. It loads a run configuration once (:func:`load_config`),
converts the sections into the library's plain option objects (``SynthConfig.to_spec()``,
``ClusterConfig.to_spec()``, ``DisclosureConfig.to_thresholds()``) and hands them to the stages;
the library never takes a pydantic model where a plain object will do.

Modules: :mod:`~cpc_core.config.base` (errors, bounded YAML, overrides, secrets: shared by the
two others, which never import each other in a circle), :mod:`~cpc_core.config.core` (the run
configuration), :mod:`~cpc_core.config.validation_options` (the ``validation:`` section) and
:mod:`~cpc_core.config.reference` (``docs/config.md``).

Examples
--------
>>> from cpc_core.config import load_config
>>> cfg = load_config(None, ["synth.days=2"])
>>> cfg.synth.to_spec().days, cfg.disclosure.to_thresholds().min_population
(2, 500)
"""

from cpc_core.config.base import (
    REDACTED,
    ConfigError,
    DisclosureConfig,
    apply_overrides,
    format_errors,
    is_secret_key,
    read_yaml,
    redact,
    redact_message,
    redacted,
    safe_load_bounded,
)
from cpc_core.config.core import (
    ClusterConfig,
    EstimateConfig,
    RunConfig,
    StorageConfig,
    SynthConfig,
    load_config,
    load_validation_config,
    parse_config,
)
from cpc_core.config.validation_options import ValidationConfig, parse_validation_config

__all__ = [
    "REDACTED",
    "ClusterConfig",
    "ConfigError",
    "DisclosureConfig",
    "EstimateConfig",
    "RunConfig",
    "StorageConfig",
    "SynthConfig",
    "ValidationConfig",
    "apply_overrides",
    "format_errors",
    "is_secret_key",
    "load_config",
    "load_validation_config",
    "parse_config",
    "parse_validation_config",
    "read_yaml",
    "redact",
    "redact_message",
    "redacted",
    "safe_load_bounded",
]
