"""Disclosure control exactly at its thresholds: 499/500/501 inhabitants, 2/3/4 tiles, unknowns.

The rule, stated here as the independent reference (docs/method.md section 9, the paper): an area is small
when its population is below 500 or unknown, or when it has fewer than 3 tiles (an unknown
tile count does not flag). It is checked on every public output that carries a flag:

* :func:`cpc_core.disclosure.small_area_flags` (and :class:`cpc_core.disclosure.Thresholds`,
  the option object the configuration converts into), which the pipeline calls for ``communes.csv``,
  ``communes.parquet``, ``rho_by_lag.csv``, ``estimates_by_lag.csv``, the profiles and the
  POI counts (jobs/pipeline.py), with the run configuration's default thresholds;
* the validation stage: ``communes_public.csv`` (blanked rates in ``suppress`` mode, flags
  in ``flag`` mode), ``tables.json``'s disclosure counts and the report's disclosure section.

Turning ``>=`` into ``>`` (500 flagged) or ``<`` into ``<=`` (3 tiles flagged) in the rule
fails these tests in about a second.
"""

from __future__ import annotations

import itertools
import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from cpc_core.config.core import ConfigError, DisclosureConfig, parse_config
from cpc_core.config.validation_options import DisclosureThresholds, FiguresConfig, ValidationConfig
from cpc_core.disclosure import Thresholds, small_area_flags
from jobs.validate import run_validation

POPULATIONS = (499, 500, 501, None)
TILES = (2, 3, 4, None)
CASES = list(itertools.product(POPULATIONS, TILES))


def expected(pop, tiles) -> tuple[bool, str]:
    """The rule written out by hand, reasons as the outputs spell them."""
    small_pop = pop is None or pop < 500
    few_tiles = tiles is not None and tiles < 3
    if small_pop and few_tiles:
        return True, "population < 500 and tiles < 3"
    if small_pop:
        return True, "population < 500"
    if few_tiles:
        return True, "tiles < 3"
    return False, ""


def _nan(v):
    return np.nan if v is None else float(v)


def table() -> pd.DataFrame:
    n = len(CASES)
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "commune": [f"{i:05d}" for i in range(n)],
        "population": [_nan(p) for p, _ in CASES],
        "n_tiles": [_nan(t) for _, t in CASES],
        "tor": rng.lognormal(9, 1, n), "web_adult": rng.lognormal(12, 1, n),
        "youtube": rng.lognormal(16, 1, n), "rho": rng.normal(0.2, 0.05, n),
        "sexual_violence_per_1000": rng.gamma(2, 1, n),
    })  # fmt: skip


WANT = [expected(p, t) for p, t in CASES]
N_SMALL = sum(s for s, _ in WANT)
N_BELOW_POP = sum(p is None or p < 500 for p, _ in CASES)
N_BELOW_TILES = sum(t is not None and t < 3 for _, t in CASES)


def test_the_defaults_are_500_inhabitants_and_3_tiles():
    assert DisclosureConfig().min_population == 500 and DisclosureConfig().min_tiles == 3
    assert DisclosureThresholds().min_population == 500 and DisclosureThresholds().min_tiles == 3
    assert Thresholds().min_population == 500 and Thresholds().min_tiles == 3
    assert DisclosureConfig().to_thresholds() == Thresholds(500, 3)


def test_flags_of_the_run_tables_at_the_thresholds():
    """What communes.csv (and every per-area table of the pipeline) gets, via the function
    and the thresholds the pipeline uses."""
    d = DisclosureConfig()
    t = table()
    flags = small_area_flags(t["population"], t["n_tiles"], d.min_population, d.min_tiles)
    got = list(zip(flags["small_area"].tolist(), flags["small_area_reason"].tolist(), strict=True))
    assert got == WANT
    assert (N_SMALL, N_BELOW_POP, N_BELOW_TILES) == (10, 8, 4)  # the reference itself
    # the option object the library takes gives the same flags, from the config's conversion
    thr = d.to_thresholds()
    both = thr.flags(t["population"], t["n_tiles"])
    assert list(zip(both["small_area"], both["small_area_reason"], strict=True)) == WANT


def test_one_disclosure_model_for_the_run_and_the_validation_section():
    """The run's ``disclosure:`` section and ``validation.disclosure`` are one type, converted into
    the plain :class:`Thresholds` by one method; bad thresholds fail at the edge, naming the key."""
    assert DisclosureThresholds is DisclosureConfig
    assert ValidationConfig.model_fields["disclosure"].annotation == DisclosureConfig | None
    cfg = parse_config({"synth": {}, "disclosure": {"min_population": 1000, "min_tiles": 5}})
    assert cfg.disclosure.to_thresholds() == Thresholds(min_population=1000, min_tiles=5)
    for raw, key in (({"min_tiles": 0}, "disclosure.min_tiles"), ({"min_population": -1}, "disclosure.min_population"),
                     ({"min_people": 5}, "disclosure.min_people")):
        with pytest.raises(ConfigError, match=key):
            parse_config({"synth": {}, "disclosure": raw})
    # the plain type refuses the same values itself (a library caller never meets pydantic)
    for kwargs in ({"min_tiles": 0}, {"min_population": -1}, {"min_population": 2.5}, {"min_tiles": True}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            Thresholds(**kwargs)
    # 500 and 3 themselves are not small; one less is
    flags = Thresholds().flags(pd.Series([499.0, 500.0, 500.0]), pd.Series([3.0, 3.0, 2.0]))
    assert flags["small_area"].tolist() == [True, False, True]


@pytest.mark.parametrize("mode", ["suppress", "flag"])
def test_every_validation_output_at_the_thresholds(tmp_path, mode):
    cfg = ValidationConfig(figures=FiguresConfig(enabled=False), small_areas=mode, discover=False)
    res = run_validation(table(), tmp_path, cfg)
    rates = ["cpc_per_1000", "tor_per_1000", "web_adult_per_1000", "youtube_per_1000", "c", "rho"]

    pub = pd.read_csv(res["outputs"]["communes_public.csv"], dtype={"commune": str},
                      keep_default_na=False, na_values=[""])  # fmt: skip
    assert pub["commune"].tolist() == table()["commune"].tolist()
    for (small, reason), (_, row) in zip(WANT, pub.iterrows(), strict=True):
        assert bool(row["small_area"]) is small
        assert (row["small_area_reason"] if isinstance(row["small_area_reason"], str) else "") == reason
        assert bool(row["suppressed"]) is (small and mode == "suppress")
        # suppressed: every rate blank; otherwise every rate published (all are defined here,
        # except the per-1000 rates of an area of unknown population)
        blank = [math.isnan(row[c]) for c in rates]
        if small and mode == "suppress":
            assert all(blank), row.to_dict()
        else:
            assert not any(blank[-2:]), row.to_dict()

    doc = json.loads((tmp_path / "tables.json").read_text())
    d = doc["disclosure"]
    assert (d["min_population"], d["min_tiles"]) == (500, 3)
    assert (d["n_areas"], d["n_small_areas"], d["n_below_population"], d["n_below_tiles"]) == (
        16, N_SMALL, N_BELOW_POP, N_BELOW_TILES)  # fmt: skip
    known_small = sum(p for (p, _), (s, _) in zip(CASES, WANT, strict=True) if s and p is not None)
    assert d["population_in_small_areas"] == known_small

    html = (tmp_path / "report.html").read_text()
    section = re.search(r'<section id="disclosure">(.*?)</section>', html, re.S).group(1)
    for label, value in [("population threshold", 500), ("tile-count threshold", 3),
                         ("small areas (suppressed or flagged)", N_SMALL),
                         ("of which below the population threshold", N_BELOW_POP),
                         ("of which below the tile threshold", N_BELOW_TILES)]:  # fmt: skip
        assert re.search(rf"{re.escape(label)}</td><td[^>]*>{value}</td>", section), (label, value)
    assert f"{N_SMALL} small areas" in section
