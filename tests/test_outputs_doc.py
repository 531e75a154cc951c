"""``docs/outputs.md``, the data dictionary, against what the code writes.

The quick tests read the document and the code's own vocabularies (status flags, correlation
reasons, the covariate table's columns). The integration test runs a small real pipeline and
checks that every column of its per-area tables and every file it writes is documented.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from cpc_core.config.core import parse_config
from cpc_core.cube import store
from cpc_core.estimate.correlation import CorrelationStatus
from cpc_core.validation.covariates import OUTPUT_COLUMNS
from jobs.pipeline import run_pipeline

DOC = Path(__file__).resolve().parents[1] / "docs" / "outputs.md"


def sections(text: str) -> dict[str, str]:
    """Heading (without the #s and backticks) -> the text under it, up to the next heading."""
    out: dict[str, str] = {}
    for block in re.split(r"(?m)^(?=#{2,4} )", text):
        head, _, body = block.partition("\n")
        out[head.lstrip("#").strip().replace("`", "")] = body
    return out


def documented_columns(body: str) -> list[str]:
    """The first cell of each table row of a section, when it is a backticked name."""
    return [m.group(1) for m in re.finditer(r"(?m)^\| `([^`]+)` \|", body)]


@pytest.fixture(scope="module")
def doc() -> dict[str, str]:
    return sections(DOC.read_text(encoding="utf-8"))


def test_tables_of_the_dictionary_are_well_formed(doc):
    for title in (
        "communes.csv",
        "estimates_by_lag.csv",
        "rho_by_lag.csv",
        "profiles.csv",
        "poi_counts.csv",
        "validation/communes_public.csv",
        "<out> (default covariates.csv)",
    ):
        body = doc[title]
        rows = [r for r in body.splitlines() if r.startswith("| `")]
        assert rows, title
        for r in rows:  # column | type | unit | description: four cells, a unit for every column
            cells = [c.strip() for c in r.strip().strip("|").split("|")]
            assert len(cells) == 4 and cells[2], (title, r)


def test_vocabularies_match_the_code(doc):
    for name in CorrelationStatus.__members__:
        assert f"`{name}`" in doc["communes.csv"] and f"`{name}`" in doc["rho_by_lag.csv"], name
    flags = ", ".join(f"{v} {k}" for k, v in store.STATUS.items())
    assert flags in doc["cube.zarr"]
    assert documented_columns(doc["<out> (default covariates.csv)"]) == list(OUTPUT_COLUMNS)


@pytest.mark.integration
def test_every_output_column_and_file_is_documented(client, tmp_path, doc):
    """A small real run (2 cities, 3 days, 0.5 % of the tiles, with POIs and the validation)."""
    synth = {
        "cities": ["Lyon", "Nice"],
        "start": "2019-03-30",
        "days": 3,
        "scale": 0.005,
        "seed": 5,
        "lag_h": 0,
    }
    cfg = parse_config({"synth": synth, "output": {"dir": str(tmp_path)}, "estimate": {"lags": [-1, 0, 1]},
                        "poi": {"path": str(tmp_path / "data" / "covariates" / "poi.csv")}})  # fmt: skip
    run_pipeline(cfg, client)
    # issue #16: a run on generated data says so in its record
    assert json.loads((tmp_path / "run.json").read_text())["data"] == "synthetic"
    # integers written as integers (centroid crosswalk: whole tiles; legal populations)
    text = pd.read_csv(tmp_path / "communes.csv", dtype=str, keep_default_na=False)
    for col in ("population", "n_tiles"):
        values = text[col][text[col] != ""]
        assert len(values) and values.str.fullmatch(r"\d+").all(), (col, values.head().tolist())
    per_area = {"communes.csv": "communes.csv", "estimates_by_lag.csv": "estimates_by_lag.csv",
                "rho_by_lag.csv": "rho_by_lag.csv", "profiles.csv": "profiles.csv",
                "validation/communes_public.csv": "validation/communes_public.csv"}  # fmt: skip
    for title, rel in per_area.items():
        columns = pd.read_csv(tmp_path / rel, nrows=0).columns
        documented = set(documented_columns(doc[title]))
        assert set(columns) - documented == set(), f"{rel}: undocumented columns"
        assert documented - set(columns) == set(), f"{rel}: documented columns it does not have"
    poi = pd.read_csv(tmp_path / "poi_counts.csv", nrows=0).columns
    assert {c for c in poi if not c.startswith("poi_")} == {"commune", "small_area"}
    for c in poi[poi.str.startswith("poi_")]:
        assert f"`{c}`" in doc["poi_counts.csv"]
    assert set(documented_columns(doc["poi_top_tiles.csv"])) == set(pd.read_csv(tmp_path / "poi_top_tiles.csv",
                                                                                nrows=0).columns)  # fmt: skip

    # every file written at the top level, under reports/ and validation/ is named in the text
    text = DOC.read_text(encoding="utf-8")
    for p in tmp_path.rglob("*"):
        rel = p.relative_to(tmp_path)
        if p.is_dir() or rel.parts[0] in ("internal", "data", "cube.zarr"):
            continue
        if rel.parts[0] == "runs" and len(rel.parts) > 2 and rel.parts[2] != "run.json":
            continue  # runs/<id>/...: copies of the run's own result files, checked at the top
        name = re.sub(r"\d{8}T\d{6}", "<stamp>", rel.as_posix())
        if rel.parts[0] == "validation" and rel.parent.name in ("tables", "figures"):
            # named once in the validation section's list, with their suffixes
            assert (
                f"`{p.stem}`" in doc["validation/"]
                and f".{p.suffix.lstrip('.')}`" in doc["validation/"]
            ), rel
            continue
        leaf = name.rsplit("/", 1)[-1]
        assert f"`{name}`" in text or f"`{leaf}`" in text, f"{rel} is not in docs/outputs.md"
    for d in (
        "internal/hourly.zarr",
        "internal/tile_cpc.zarr",
        "internal/top_tiles.csv",
        "internal/cache/",
    ):
        assert (tmp_path / d).exists() and d in text
