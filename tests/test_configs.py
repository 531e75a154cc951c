"""Every shipped configuration validates, and the embedded demo default matches configs/demo.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cpc_core.config.core import load_config
from jobs.cli import DEMO_CONFIG

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert cfg.output.dir


def test_demo_config_is_the_embedded_default():
    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/demo.yaml").read_text())
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
