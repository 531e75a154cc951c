"""Every shipped configuration validates, and the embedded demo default matches configs/demo.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cpc_core.config import load_config
from jobs.cli import DEMO_CONFIG

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert cfg.output.dir


def test_demo_config_is_the_embedded_default():
    shipped = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs/demo.yaml").read_text())
    assert shipped == yaml.safe_load(DEMO_CONFIG.read_text())


def test_method_options_are_config_defaults():
    """The outage rule, the POI covariate categories and the profile scope are config keys
    with the paper's defaults, validated at the edge."""
    from cpc_core.config.core import ConfigError, parse_config

    cfg = load_config(None, ["synth.days=2"])
    assert cfg.estimate.outage_rule == "known_days" and cfg.estimate.exclude_known_outages
    assert [str(d) for d in cfg.estimate.zero_web_adult_days] == ["2019-03-31", "2019-05-12"]
    assert cfg.poi.categories == ("adult_entertainment", "amateur_sports_team", "church_cathedral", "mosque",
                                  "religious_organization", "school")
    assert cfg.poi.profile_top_n == 10
    other = load_config(None, ["synth.days=2", "poi.categories=[school]", "poi.profile_top_n=3",
                               "estimate.outage_rule=authors", "estimate.zero_web_adult_days=[2019-04-14]"])
    assert other.poi.categories == ("school",) and other.poi.profile_top_n == 3
    assert [str(d) for d in other.estimate.zero_web_adult_days] == ["2019-04-14"]
    for bad, key in ((["poi.categories=[]"], "categories"), (["poi.categories=[school, school]"], "categories"),
                     (["poi.profile_top_n=0"], "profile_top_n"), (["estimate.outage_rule=paper"], "outage_rule")):
        with pytest.raises(ConfigError, match=key):
            load_config(None, ["synth.days=2", *bad])
    with pytest.raises(ConfigError, match="outage_rule"):
        parse_config({"synth": {}, "estimate": {"outage_rule": "authors", "exclude_known_outages": False}})


def test_config_modules_import_no_circle():
    """config.base and config.validation_options never import config.core (at module level or
    inside a function): the package has no import circle (issue #13)."""
    import ast

    root = Path(__file__).resolve().parents[2] / "cpc_core" / "config"
    for name in ("base.py", "validation_options.py"):
        tree = ast.parse((root / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in imported if m.startswith("cpc_core.config.core")}, (name, imported)
        if name == "base.py":
            assert not {m for m in imported if m.startswith("cpc_core.config.validation_options")}, imported


def test_synth_section_converts_into_the_generators_spec():
    """One option type per concept: the synth section's fields are SynthSpec's, with its defaults,
    and to_spec() is the conversion; a bad city fails at the edge naming the key."""
    import dataclasses
    import datetime as dt

    from cpc_core.config.core import ConfigError, SynthConfig, parse_config
    from cpc_core.synth.generator import SynthSpec

    spec_fields = {f.name: f.default for f in dataclasses.fields(SynthSpec)}
    for name, info in SynthConfig.model_fields.items():
        assert name in spec_fields, name
        assert info.default == spec_fields[name], (name, info.default, spec_fields[name])
    assert SynthConfig().to_spec() == SynthSpec()
    cfg = parse_config({"synth": {"cities": ["Nice", "Lyon"], "days": 3, "start": "2019-04-01", "seed": 7,
                                  "lag_h": -2, "scale": 0.002}})
    assert cfg.synth.to_spec() == SynthSpec(cities=("Nice", "Lyon"), days=3, start=dt.date(2019, 4, 1), seed=7,
                                            lag_h=-2, scale=0.002)
    with pytest.raises(ConfigError, match=r"synth\.cities: unknown cities \['Atlantis'\]"):
        parse_config({"synth": {"cities": ["Atlantis"]}})
    with pytest.raises(ValueError, match=r"unknown cities \['Atlantis'\]"):
        SynthSpec(cities=("Atlantis",))


def test_cluster_section_converts_into_the_cluster_spec():
    """The cluster section's fields are ClusterSpec's; to_spec() keeps the password a secret,
    applies overrides (None ignored) and lets ClusterSpec refuse what it refuses."""
    import dataclasses

    from pydantic import SecretStr

    from cluster import ClusterSpec
    from cpc_core.config.core import ClusterConfig

    spec_fields = {f.name for f in dataclasses.fields(ClusterSpec)}
    assert set(ClusterConfig.model_fields) <= spec_fields, set(ClusterConfig.model_fields) - spec_fields
    assert ClusterConfig().to_spec() == ClusterSpec(kind="local")
    gw = ClusterConfig(kind="gateway", address="https://gw.example:443", auth="basic", username="u",
                       password="pw-1234", workers=4)
    spec = gw.to_spec(workers=None, connect_timeout=5)
    assert (spec.kind, spec.address, spec.workers, spec.connect_timeout) == ("gateway", "https://gw.example:443", 4, 5)
    assert isinstance(spec.password, SecretStr) and spec.password.get_secret_value() == "pw-1234"
    assert "pw-1234" not in repr(spec) and "pw-1234" not in repr(gw)
    with pytest.raises(ValueError, match="applies only to kind"):
        ClusterConfig(kind="local", workers=3).to_spec()


def test_the_reported_lag_is_always_swept():
    """estimate.lag_h joins estimate.lags when absent (sorted), while validating: the frozen model
    is never changed afterwards; duplicates are an error naming estimate.lags."""
    import pydantic

    from cpc_core.config.core import ConfigError, EstimateConfig, parse_config

    assert EstimateConfig().lags == tuple(range(-6, 7))
    assert EstimateConfig(lag_h=10).lags == (*range(-6, 7), 10)
    assert EstimateConfig(lag_h=-2, lags=[3, 0]).lags == (-2, 0, 3)
    assert EstimateConfig(lag_h=3, lags=[3, 0]).lags == (3, 0)  # already swept: left as given
    cfg = parse_config({"synth": {}, "estimate": {"lag_h": "4", "lags": ["0", "1"]}})
    assert cfg.estimate.lags == (0, 1, 4)
    with pytest.raises(pydantic.ValidationError):
        cfg.estimate.lags = (0,)  # frozen
    with pytest.raises(ConfigError, match=r"estimate\.lags: duplicates in \[1, 1\]"):
        parse_config({"synth": {}, "estimate": {"lags": [1, 1]}})
    with pytest.raises(ConfigError, match=r"estimate\.lag_h: Input should be less than or equal to 48"):
        parse_config({"synth": {}, "estimate": {"lag_h": 49}})


def test_the_configurations_method_modules_load_without_numpy():
    """The homes of the constants and of the disclosure thresholds import no numpy, pandas or
    xarray: the configuration takes its defaults from them, and a configuration error must answer
    without loading the numeric stack (issue #14)."""
    import json
    import subprocess
    import sys

    code = ("import json, sys\n"
            "import cpc_core.estimate.constants, cpc_core.disclosure\n"
            "print(json.dumps(sorted(m for m in ('numpy', 'pandas', 'xarray', 'scipy') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert json.loads(out.stdout) == [], out.stdout
