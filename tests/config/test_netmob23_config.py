"""configs/netmob23.yaml names an input for every role the paper's tables need (issue #16,
"From the real NetMob23 files"): no table of one `cpc run` is skipped for want of an input.
Fast: no data is read, only the configurations and the roles' columns."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from cpc_core.config.core import load_config
from cpc_core.config.validation_options import POI_ROLES
from cpc_core.validation.covariates import OUTPUT_COLUMNS
from jobs.covariates import load_spec
from tests.faults.harness import expect, run_cpc

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "configs" / "netmob23.yaml"
SPEC = REPO / "configs" / "covariates" / "netmob23.yaml"

#: The roles Tables 3, 5, 6 and 7 read from the covariate table (docs/real-data.md, section
#: 2.0; cpc_core.validation.stage: the controls, the outcome and Table 5's drug abuse), written
#: out here rather than taken from the code under test.
COVARIATE_ROLES = ("outcome", "density", "share_singles", "poverty_rate", "unemployment_rate",
                   "turnout_2017", "le_pen", "macron", "drug_abuse")


def test_config_show_accepts_it():
    expect(run_cpc("config", "show", str(CONFIG)), 0, "/data/cpc/inputs/covariates.csv", "search_interest")


def test_every_table_has_its_inputs():
    cfg = load_config(CONFIG)
    v = cfg.validation
    spec = load_spec(str(SPEC))
    # the covariate table is the one `cpc covariates` writes from the spec shipped with it
    assert [c.path for c in v.covariates] == [spec.out]
    # Tables 2, 3, 5-7: every covariate role is a column that table has
    for role in COVARIATE_ROLES:
        assert getattr(v.columns, role) in OUTPUT_COLUMNS, role
    # ... and the spec gives the sources those columns come from
    assert spec.ssmsi is not None and spec.ssmsi.outcome_indicator and spec.ssmsi.drug_indicator  # Table 5
    assert spec.comparateur is not None and spec.households is not None and spec.election is not None
    assert tuple(spec.ssmsi.years) == (2017, 2021)
    # Table 4 and the six POI controls: a POI file; poi_counts.csv names its columns poi_<category>
    assert cfg.poi.path
    assert {f"poi_{c}" for c in cfg.poi.categories} == {getattr(v.columns, r) for r in POI_ROLES}
    assert v.use_poi_counts and v.discover  # the run's own poi_counts.csv is found in its folder
    # Table 6's PC1 and PC3: search interest, mapped to communes by the region column
    assert v.search_interest is not None and v.search_interest.path
    assert {"PC1", "PC3"} <= set(v.search_interest.keep)
    assert v.columns.region in OUTPUT_COLUMNS and spec.regions
    # Table 7: the lag swept, and c_j at lag 0 for its "no lag" column
    assert v.lag_h != 0 and v.lag_h in cfg.estimate.lags and cfg.estimate.lag_h == 0
    # Figure 5: commune polygons
    assert v.geo is not None and v.geo.path
    assert not v.partial_controls  # the paper's tables, not a reduced model


def test_the_regions_cover_metropolitan_france_once_without_corsica():
    spec = load_spec(str(SPEC))
    deps = [d for ds in spec.regions.values() for d in ds]
    assert len(spec.regions) == 21  # the paper's 21 pre-2016 regions
    assert len(deps) == len(set(deps))
    assert set(deps) == {f"{i:02d}" for i in range(1, 96) if i != 20}  # 94 departments, no 2A/2B


def test_real_data_guide_shows_this_configuration():
    text = (REPO / "docs" / "real-data.md").read_text(encoding="utf-8")
    section = text.split("## 7. One run for every table", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    assert yaml.safe_load(block) == yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
