"""Fault corpus of the fidelity settings of ``cpc validate`` (lost leading zeros, search-term
columns, the new settings), run as a user would (a real subprocess).

Every case states its exit code, a fragment of the message and a data check: on an error
nothing is written; where the command goes on, what it joined or left out is checked in
``tables.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.faults.harness import expect, run_cpc

N = 30
OUTCOME = "sexual_violence_per_1000"


def table(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Communes of departments 01-09 and 69 (5-character codes), six regions, every role."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "commune": [f"0{1 + i % 9}{i:03d}" if i % 2 else f"69{i:03d}" for i in range(n)],
        "population": rng.integers(1000, 50000, n),
        "tor": rng.lognormal(10, 1, n), "web_adult": rng.lognormal(13, 1, n),
        "youtube": rng.lognormal(17, 1, n), "rho": rng.normal(0.16, 0.07, n), "n_tiles": 10,
        OUTCOME: rng.gamma(2, 0.5, n), "region": [f"R{i % 6}" for i in range(n)],
        "department": [f"D{i % 6}" for i in range(n)],
    })  # fmt: skip


def write(tmp_path: Path, name: str, df: pd.DataFrame) -> Path:
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def validate(tmp_path: Path, *extra: str):
    out = tmp_path / "out"
    return run_cpc(
        "validate", "--table", write(tmp_path, "t.csv", table()), "--out", out, *extra
    ), out


def assert_no_outputs(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))


def search(tmp_path: Path, **extra_columns) -> Path:
    rng = np.random.default_rng(1)
    s = pd.DataFrame(rng.uniform(1, 100, (6, 5)), columns=[f"term{j}" for j in range(5)])
    s.insert(0, "region", [f"R{i}" for i in range(6)])
    for k, v in extra_columns.items():
        s[k] = v
    return write(tmp_path, "search.csv", s)


# --------------------------------------------------------------------------------------------
# Lost leading zeros
# --------------------------------------------------------------------------------------------


def _lost_cov(tmp_path: Path) -> tuple[Path, int]:
    t = table()
    cov = pd.DataFrame(
        {"commune": t["commune"].str.lstrip("0"), "density": np.linspace(50, 900, N)}
    )
    return write(tmp_path, "cov.csv", cov), int((cov["commune"].str.len() == 4).sum())


def test_covariate_codes_that_lost_their_zero_are_refused_with_the_fix(tmp_path):
    cov, n = _lost_cov(tmp_path)
    answer, out = validate(tmp_path, "--set", f"validation.covariates=[{cov}]")
    expect(
        answer,
        1,
        "cov.csv",
        f"{n} code(s)",
        "data row 2",
        "'2001' -> '02001'",
        "lost its leading zero",
        "validation.pad_codes",
    )
    assert_no_outputs(out)


def test_pad_codes_joins_every_row(tmp_path):
    cov, n = _lost_cov(tmp_path)
    answer, out = validate(
        tmp_path, "--set", f"validation.covariates=[{cov}]", "--set", "validation.pad_codes=true"
    )
    expect(answer, 0, "zero-padded")
    doc = json.loads((out / "tables.json").read_text())
    assert doc["joins"][0]["matched"] == N and doc["joins"][0]["unmatched_table_rows"] == 0
    assert any(f"cov.csv: {n} code(s)" in x["text"] for x in doc["notes"])


def test_table_codes_that_lost_their_zero_are_refused(tmp_path):
    t = table().assign(commune=lambda d: d["commune"].str.lstrip("0"))
    cov = write(
        tmp_path, "cov.csv", pd.DataFrame({"commune": table()["commune"], "density": 100.0})
    )
    out = tmp_path / "out"
    answer = run_cpc(
        "validate",
        "--table",
        write(tmp_path, "lost.csv", t),
        "--out",
        out,
        "--set",
        f"validation.covariates=[{cov}]",
    )
    expect(answer, 1, "lost.csv", "lost its leading zero", "validation.pad_codes")
    assert_no_outputs(out)


# --------------------------------------------------------------------------------------------
# Search-interest columns and the new settings
# --------------------------------------------------------------------------------------------


def test_id_and_text_columns_are_left_out_of_the_pca_and_said(tmp_path):
    si = search(tmp_path, code_reg=np.arange(11, 17), nom=[f"Region {i}" for i in range(6)])
    answer, out = validate(tmp_path, "--set", f"validation.search_interest.path={si}")
    expect(answer, 0, "code_reg", "left out of the PCA")
    pca = json.loads((out / "tables.json").read_text())["search_interest_pca"]
    assert pca["excluded_columns"] == {
        "code_reg": "named like a code or identifier",
        "nom": "no numeric value",
    }
    assert sorted(pca["terms"]) == [f"term{j}" for j in range(5)]
    scores = pd.read_csv(out / "search_interest_scores.csv")
    assert scores["region"].tolist() == [f"R{i}" for i in range(6)] and list(
        scores.columns[1:]
    ) == ["PC1", "PC2", "PC3"]


@pytest.mark.parametrize(("setting", "fragment"), [
    ("validation.search_interest.terms=[term0,termX]", "termX"),
    ("validation.search_interest.exclude=[nosuch]", "nosuch"),
])  # fmt: skip
def test_unknown_terms_or_exclude_are_usage_errors(tmp_path, setting, fragment):
    si = search(tmp_path)
    answer, out = validate(
        tmp_path, "--set", f"validation.search_interest.path={si}", "--set", setting
    )
    expect(answer, 2, "validation.search_interest.terms/exclude", "search.csv", fragment)
    assert_no_outputs(out)


def test_a_search_table_without_terms_is_refused(tmp_path):
    si = write(
        tmp_path,
        "search.csv",
        pd.DataFrame(
            {"region": [f"R{i}" for i in range(6)], "code_reg": range(6), "name": list("abcdef")}
        ),
    )
    answer, out = validate(tmp_path, "--set", f"validation.search_interest.path={si}")
    expect(answer, 1, "search.csv", "no search-term column left")
    assert_no_outputs(out)


@pytest.mark.parametrize(("setting", "fragment"), [
    ("validation.search_interest.ddof=2", "ddof"),
    ("validation.poi_scaling=all", "poi_scaling"),
    ("validation.pad_codes=maybe", "pad_codes"),
    ("validation.use_poi_counts=perhaps", "use_poi_counts"),
])  # fmt: skip
def test_bad_values_of_the_new_settings(tmp_path, setting, fragment):
    si = search(tmp_path)
    answer, out = validate(
        tmp_path, "--set", f"validation.search_interest.path={si}", "--set", setting
    )
    expect(answer, 2, fragment)
    assert_no_outputs(out)
