"""The method's constants, stated literally from the paper, against every place they are defined.

The values below are the independent reference (Koebe et al.; ``docs/method.md`` section 12): they are typed
here, never imported. Each constant is then checked wherever the code defines a default for
it: module constants, configuration models (run and validation), function defaults, and any
other function of the library whose parameter of that name has a default (a scan, so that a
new copy of a constant is checked too). The whole file runs in well under a second once
imported, so changing one of them fails a fast test instead of a 20-110 s pipeline test.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import yaml

from cpc_core import disclosure
from cpc_core.config import base as config_base
from cpc_core.config import core as run_config
from cpc_core.config import validation_options as config_validation
from cpc_core.estimate import correlation
from cpc_core.estimate import cpc as estimate
from cpc_core.synth import generator as synth
from cpc_core.validation import stage as validation_stage
from cpc_core.validation import statistics as validation

# ---- the paper's values (literal: this is the reference) ------------------------------------
ZERO_VALUE = 0.001  # replaces zero hourly volumes before the log
ONION_SHARE = 0.011  # Tor traffic to onion services
PORN_SHARE = 0.41705  # pornographic share of onion pages (Figure 1 only)
CSAM_SHARE = 0.41502  # CSAM share of pornographic onion sites
C_FLOOR = 1e-5  # replacement of non-positive c_j
MIN_HOURS = 168  # one week of valid hours for rho_j
COV_TYPE = "HC3"  # R sandwich's vcovHC default, t-based p-values
VALIDATION_LAG_H = -2  # Table 7: R's dplyr::lag(tor, 2) -> corr(WA(t), Tor(t - 2))
MIN_POPULATION = 500  # disclosure: inhabitants
MIN_TILES = 3  # disclosure: tiles

ROOT = Path(__file__).resolve().parents[2]


def _default(model, field: str):
    return model.model_fields[field].default


# (description, actual value, paper value): every known definition
PLACES = [
    ("estimate.ONION_SHARE", estimate.ONION_SHARE, ONION_SHARE),
    ("estimate.PORN_SHARE", estimate.PORN_SHARE, PORN_SHARE),
    ("estimate.CSAM_SHARE", estimate.CSAM_SHARE, CSAM_SHARE),
    ("estimate.C_FLOOR", estimate.C_FLOOR, C_FLOOR),
    ("estimate.GLOBAL_SHARE", estimate.GLOBAL_SHARE, ONION_SHARE * PORN_SHARE * CSAM_SHARE),
    ("estimate.ZERO_VALUE", estimate.ZERO_VALUE, ZERO_VALUE),
    ("estimate.MIN_HOURS", estimate.MIN_HOURS, MIN_HOURS),
    ("disclosure.MIN_POPULATION", disclosure.MIN_POPULATION, MIN_POPULATION),
    ("disclosure.MIN_TILES", disclosure.MIN_TILES, MIN_TILES),
    ("disclosure.Thresholds()", disclosure.Thresholds(), disclosure.Thresholds(MIN_POPULATION, MIN_TILES)),
    ("run config estimate.zero_value", _default(run_config.EstimateConfig, "zero_value"), ZERO_VALUE),
    ("run config estimate.min_hours", _default(run_config.EstimateConfig, "min_hours"), MIN_HOURS),
    ("run config estimate.onion_share", _default(run_config.EstimateConfig, "onion_share"), ONION_SHARE),
    ("run config estimate.csam_share", _default(run_config.EstimateConfig, "csam_share"), CSAM_SHARE),
    ("run config estimate.c_floor", _default(run_config.EstimateConfig, "c_floor"), C_FLOOR),
    ("run config disclosure.min_population", _default(run_config.DisclosureConfig, "min_population"),
     MIN_POPULATION),
    ("run config disclosure.min_tiles", _default(run_config.DisclosureConfig, "min_tiles"), MIN_TILES),
    ("validation.onion_share", _default(config_validation.ValidationConfig, "onion_share"), ONION_SHARE),
    ("validation.porn_share", _default(config_validation.ValidationConfig, "porn_share"), PORN_SHARE),
    ("validation.csam_share", _default(config_validation.ValidationConfig, "csam_share"), CSAM_SHARE),
    ("validation.c_floor", _default(config_validation.ValidationConfig, "c_floor"), C_FLOOR),
    ("validation.cov_type", _default(config_validation.ValidationConfig, "cov_type"), COV_TYPE),
    ("validation.use_t", _default(config_validation.ValidationConfig, "use_t"), True),
    ("validation.lag_h", _default(config_validation.ValidationConfig, "lag_h"), VALIDATION_LAG_H),
    ("validation.disclosure min_population",
     _default(config_validation.DisclosureThresholds, "min_population"), MIN_POPULATION),
    ("validation.disclosure min_tiles", _default(config_validation.DisclosureThresholds, "min_tiles"),
     MIN_TILES),
    ("correlation.transform zero_value",
     inspect.signature(correlation.transform).parameters["zero_value"].default, ZERO_VALUE),
    ("correlation.lagged_correlation zero_value",
     inspect.signature(correlation.lagged_correlation).parameters["zero_value"].default, ZERO_VALUE),
    ("correlation.lagged_correlation min_pairs",
     inspect.signature(correlation.lagged_correlation).parameters["min_pairs"].default, MIN_HOURS),
    ("validation.fit_ols cov_type", inspect.signature(validation.fit_ols).parameters["cov_type"].default,
     COV_TYPE),
    ("validation.fit_ols use_t", inspect.signature(validation.fit_ols).parameters["use_t"].default, True),
    ("synth.planted_cpc_per_1000 onion_share",
     inspect.signature(synth.planted_cpc_per_1000).parameters["onion_share"].default, ONION_SHARE),
    ("synth.planted_cpc_per_1000 csam_share",
     inspect.signature(synth.planted_cpc_per_1000).parameters["csam_share"].default, CSAM_SHARE),
    ("synth.planted_cpc_per_1000 floor",
     inspect.signature(synth.planted_cpc_per_1000).parameters["floor"].default, C_FLOOR),
]  # fmt: skip


@pytest.mark.parametrize(("where", "actual", "paper"), PLACES, ids=[p[0] for p in PLACES])
def test_constant_equals_the_paper(where, actual, paper):
    assert actual == paper, f"{where} = {actual!r}; the paper's value is {paper!r}"


# Parameter names that carry a method constant, wherever a function of the library has one.
BY_PARAMETER = {
    "zero_value": ZERO_VALUE, "onion_share": ONION_SHARE, "csam_share": CSAM_SHARE,
    "porn_share": PORN_SHARE, "floor": C_FLOOR, "c_floor": C_FLOOR, "min_pairs": MIN_HOURS,
    "min_hours": MIN_HOURS, "cov_type": COV_TYPE, "min_population": MIN_POPULATION,
    "min_tiles": MIN_TILES,
}  # fmt: skip
MODULES = (estimate, correlation, synth, validation, validation_stage, disclosure, config_base, config_validation,
           run_config)


def test_every_function_default_of_a_constant_is_the_papers():
    seen = []
    for mod in MODULES:
        for name, fn in inspect.getmembers(mod, inspect.isfunction):
            if fn.__module__ != mod.__name__:
                continue
            for p in inspect.signature(fn).parameters.values():
                if p.name in BY_PARAMETER and p.default is not inspect.Parameter.empty:
                    seen.append(f"{mod.__name__}.{name}({p.name})")
                    assert p.default == BY_PARAMETER[p.name], (
                        f"{mod.__name__}.{name}: {p.name}={p.default!r}, the paper's is "
                        f"{BY_PARAMETER[p.name]!r}")  # fmt: skip
    # the scan found the known definitions (it is not vacuous)
    assert {"cpc_core.estimate.cpc.correction_factor(onion_share)", "cpc_core.estimate.cpc.estimate(floor)",
            "cpc_core.estimate.correlation.lagged_correlation(min_pairs)",
            "cpc_core.validation.statistics.fit_ols(cov_type)"} <= set(seen), seen  # fmt: skip


def test_every_pydantic_default_of_a_constant_is_the_papers():
    """Any configuration model with a field named like a constant (run and validation)."""
    import pydantic

    seen = []
    for mod in (config_base, run_config, config_validation):
        for name, cls in inspect.getmembers(mod, inspect.isclass):
            if not issubclass(cls, pydantic.BaseModel) or cls.__module__ != mod.__name__:
                continue
            for field, info in cls.model_fields.items():
                if field in BY_PARAMETER:
                    seen.append(f"{name}.{field}")
                    assert info.default == BY_PARAMETER[field], (name, field, info.default)
    assert len(seen) >= 12, seen


def test_shipped_configs_keep_the_papers_constants():
    """The shipped configurations may change the lag, never the method's constants."""
    for path in sorted((ROOT / "configs").glob("*.yaml")) + [ROOT / "jobs" / "demo.yaml"]:
        doc = yaml.safe_load(path.read_text()) or {}
        for section in ("estimate", "validation", "disclosure"):
            for key, value in (doc.get(section) or {}).items():
                if key in BY_PARAMETER:
                    assert value == BY_PARAMETER[key], (path.name, section, key, value)


def test_the_methods_distinctive_numbers_are_written_only_in_their_home():
    """One home per constant (issue #13): the shares, the floor, the counts behind them and the
    onion share's concentration appear as numeric literals in cpc_core/estimate/constants.py only
    (docstrings and comments may quote them; code may not)."""
    import ast
    from pathlib import Path

    distinctive = {0.011, 0.41705, 0.41502, 1e-5, 2500.0, 253, 105}
    root = Path(__file__).resolve().parents[2] / "cpc_core"
    home = root / "estimate" / "constants.py"
    found, homes = [], []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool)
                    and node.value in distinctive and id(node) not in docstrings):
                (homes if path == home else found).append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    assert len(homes) >= 6, homes  # the scan sees the definitions themselves
    assert found == [], found
