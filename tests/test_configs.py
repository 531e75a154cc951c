"""Every shipped configuration validates, and the embedded demo default matches configs/demo.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cpc_core.config import load_config
from jobs.cli import DEMO_CONFIG

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path):
    cfg = load_config(path)
    assert cfg.output.dir


def test_demo_config_is_the_embedded_default():
    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/demo.yaml").read_text())
    assert shipped == yaml.safe_load(DEMO_CONFIG.read_text())
