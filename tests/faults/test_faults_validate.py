"""Fault corpus of ``cpc validate``: bad commune tables, run as a user would (a real subprocess).

Every case states its exit code, a fragment of the message and a data check: what was left
out is counted exactly (the rows broken here, by commune code), nothing else changed, and on
an error no output is written. The tables are small (a few dozen communes), so each case is
one ``cpc validate`` of a second or two.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.faults.harness import expect, run_cpc

N = 30
OUTCOME = "sexual_violence_per_1000"


def table(n: int = N, seed: int = 0) -> pd.DataFrame:
    """A commune table with every required role, no small area (population >= 1000, 10 tiles)."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "commune": [f"{i:05d}" for i in range(n)],
        "population": rng.integers(1000, 50000, n),
        "tor": rng.lognormal(10, 1, n), "web_adult": rng.lognormal(13, 1, n),
        "youtube": rng.lognormal(17, 1, n), "rho": rng.normal(0.16, 0.07, n), "n_tiles": 10,
        OUTCOME: rng.gamma(2, 0.5, n),
    })  # fmt: skip


def validate(tmp_path: Path, path: Path | str, *extra: str):
    out = tmp_path / "out"
    return run_cpc("validate", "--table", path, "--out", out, *extra), out


def assert_no_outputs(out: Path) -> None:
    """An error writes nothing: no half-finished tables or report to be mistaken for results."""
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))


def tables_json(out: Path) -> dict:
    return json.loads((out / "tables.json").read_text())


def spearman_n(doc: dict) -> dict[str, int]:
    return {r["variable"]: r["n"] for r in doc["spearman"]}


# --------------------------------------------------------------------------------------------
# Values that are not numbers: counted per column, named, never silently dropped
# --------------------------------------------------------------------------------------------

BROKEN = {
    # column: {row: cell}, reason of each
    "tor": ({3: "abc", 5: "inf", 11: "1e999"}, {3: "not a number", 5: "infinite", 11: "infinite"}),
    "population": ({1: "-inf", 2: "x12"}, {1: "infinite", 2: "not a number"}),
    OUTCOME: ({4: "abc", 7: "inf", 9: "-Infinity"}, {4: "not a number", 7: "infinite",
                                                      9: "infinite"}),
}  # fmt: skip


@pytest.mark.parametrize("column", sorted(BROKEN))
def test_non_numeric_and_infinite_values_are_counted_and_reported(tmp_path, column):
    cells, reasons = BROKEN[column]
    t = table()
    t[column] = t[column].astype(object)
    for row, cell in cells.items():
        t.loc[row, column] = cell
    path = tmp_path / "bad.csv"
    t.to_csv(path, index=False)
    answer, out = validate(tmp_path, path)
    expect(answer, 0, "left out", f"'{column}'")

    # tables.json: one entry per reason, the exact rows broken here and nothing else
    doc = tables_json(out)
    got = {(x["reason"], c) for x in doc["invalid_values"] if x["column"] == column
           for c in x["communes"]}  # fmt: skip
    want = {(reasons[r], f"{r:05d}") for r in cells}
    assert got == want
    assert sum(x["n"] for x in doc["invalid_values"]) == len(cells)
    # the report and the log say it too
    html = (out / "report.html").read_text()
    for reason in set(reasons.values()):
        assert f"value(s) {reason}, left out" in html
        assert f"value(s) {reason}, left out" in answer.err
    # read = used + left out: the Spearman n of the affected variables is N minus those rows
    n = spearman_n(doc)
    if column in ("tor", "population"):
        assert n["log_tor_per_1000"] == N - len(cells)
    else:
        assert set(n.values()) == {N - len(cells)}


def test_decimal_comma_column_with_one_bad_value_keeps_the_others(tmp_path):
    """A ';' file with decimal commas and one "abc": that one value is reported, the column
    is not silently turned to text (which would lose every value)."""
    t = table()
    text = t.to_csv(index=False, sep=";", decimal=",").splitlines()
    cells = text[6].split(";")
    cells[2] = "abc"  # column 2 is 'tor', row 5
    text[6] = ";".join(cells)
    path = tmp_path / "fr.csv"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    answer, out = validate(tmp_path, path)
    expect(answer, 0, "left out")
    doc = tables_json(out)
    assert [(x["column"], x["reason"], x["communes"]) for x in doc["invalid_values"]] == [
        ("tor", "not a number", ["00005"])
    ]
    assert spearman_n(doc)["log_tor_per_1000"] == N - 1


def test_semicolon_file_with_decimal_commas_reads_like_the_comma_file(tmp_path):
    t = table()
    comma, semi = tmp_path / "a" / "t.csv", tmp_path / "b" / "t.csv"
    comma.parent.mkdir()
    semi.parent.mkdir()
    t.to_csv(comma, index=False)
    t.to_csv(semi, index=False, sep=";", decimal=",")
    assert "," in semi.read_text().splitlines()[1]  # really decimal commas
    a, out_a = validate(tmp_path / "a", comma)
    b, out_b = validate(tmp_path / "b", semi)
    expect(a, 0)
    expect(b, 0)
    da, db = tables_json(out_a), tables_json(out_b)
    assert db["invalid_values"] == []
    for ra, rb in zip(da["spearman"], db["spearman"], strict=True):
        assert rb["n"] == ra["n"] == N
        assert rb["rho"] == pytest.approx(ra["rho"], abs=1e-12)
    assert db["table1"]["rho_j"]["mean"] == pytest.approx(t["rho"].mean(), rel=1e-12)


def test_negative_population_is_reported_and_the_area_suppressed(tmp_path):
    t = table()
    t.loc[[2, 8], "population"] = [-5, 0]
    path = tmp_path / "t.csv"
    t.to_csv(path, index=False)
    answer, out = validate(tmp_path, path)
    expect(answer, 0, "not positive")
    doc = tables_json(out)
    assert [(x["column"], x["reason"], x["n"], x["communes"]) for x in doc["invalid_values"]] == [
        ("population", "not positive", 2, ["00002", "00008"])
    ]
    pub = pd.read_csv(out / "communes_public.csv", dtype={"commune": str}).set_index("commune")
    # an unusable population is an unknown one: below any threshold, so suppressed
    assert pub.loc[["00002", "00008"], "suppressed"].all()
    assert pub.loc[["00002", "00008"], "cpc_per_1000"].isna().all()
    assert int(pub["suppressed"].sum()) == 2


# --------------------------------------------------------------------------------------------
# Small n, constant columns
# --------------------------------------------------------------------------------------------


def _exact_two_sided(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman permutation p-value by enumerating every permutation (ranks: no ties here)."""
    rx, ry = x.argsort().argsort().astype(float), y.argsort().argsort().astype(float)
    obs = abs(np.corrcoef(rx, ry)[0, 1])
    perms = [abs(np.corrcoef(rx[list(p)], ry)[0, 1]) for p in itertools.permutations(range(len(x)))]
    return sum(v >= obs - 1e-12 for v in perms) / math.factorial(len(x))


def test_three_communes_give_exact_p_values_never_zero(tmp_path):
    t = table(3)
    path = tmp_path / "t.csv"
    t.to_csv(path, index=False)
    answer, out = validate(tmp_path, path)
    expect(answer, 0, "undefined")
    doc = tables_json(out)
    y = t[OUTCOME].to_numpy()
    tor = np.log(t["tor"] / t["population"] * 1000)
    for row in doc["spearman"]:
        assert row["n"] == 3
        assert row["p_value"] >= 1 / 3  # 2 of 3! pairings reach |rho| = 1
    got = {r["variable"]: r["p_value"] for r in doc["spearman"]}
    assert got["log_tor_per_1000"] == pytest.approx(_exact_two_sided(y, tor.to_numpy()))
    # n = 3 leaves no degree of freedom for the dependent tests (n - 3): NaN, with a note
    assert all(r["statistic"] is None for r in doc["dependent_tests"])


def test_constant_outcome_gives_nan_and_a_note_not_a_traceback(tmp_path):
    t = table()
    t[OUTCOME] = 1.5
    path = tmp_path / "t.csv"
    t.to_csv(path, index=False)
    answer, out = validate(tmp_path, path)
    expect(answer, 0, "constant")
    doc = tables_json(out)
    assert [r["rho"] for r in doc["spearman"]] == [None] * 4
    assert all(r["statistic"] is None and r["p_value"] is None for r in doc["dependent_tests"])
    assert any("outcome is constant (all 30 published values are 1.5)" in n["text"]
               for n in doc["notes"])  # fmt: skip


# --------------------------------------------------------------------------------------------
# Nothing to validate, unreadable tables: exit 1 naming the file, nothing written
# --------------------------------------------------------------------------------------------


def _write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _latin1(path: Path) -> Path:
    t = table(5)
    t.insert(1, "name", ["Évry", "Orléans", "Créteil", "Nîmes", "Sète"])
    path.write_bytes(t.to_csv(index=False).encode("latin-1"))
    return path


def _datetime_population(path: Path) -> Path:
    t = table()
    t["population"] = pd.to_datetime("2020-01-01") + pd.to_timedelta(t["population"], unit="D")
    t.to_parquet(path)
    return path


def _missing_outcome(path: Path) -> Path:
    table().drop(columns=[OUTCOME]).to_csv(path, index=False)
    return path


def _duplicated(path: Path) -> Path:
    t = table()
    t.loc[7, "commune"] = "00002"
    t.to_csv(path, index=False)
    return path


def _all_nan_outcome(path: Path) -> Path:
    t = table()
    t[OUTCOME] = np.nan
    t.to_csv(path, index=False)
    return path


def _ragged(path: Path) -> Path:
    lines = table().to_csv(index=False).splitlines()
    lines[4] += ",7,8"
    return _write(path, "\n".join(lines) + "\n")


DATA_ERRORS = {
    "empty file": ("t.csv", lambda p: _write(p, ""), ("t.csv", "the file is empty")),
    "header only": ("t.csv", lambda p: _write(p, ",".join(table().columns) + "\n"),
                    ("t.csv", "only a header", "nothing to validate")),
    "all-NaN outcome": ("t.csv", _all_nan_outcome,
                        ("t.csv", f"outcome column '{OUTCOME}'", "no numeric value in its 30 row")),
    "missing outcome column": ("t.csv", _missing_outcome,
                               ("t.csv", f"role 'outcome' -> column '{OUTCOME}' not found")),
    "duplicated code": ("t.csv", _duplicated, ("t.csv", "duplicated commune code", "00002")),
    "Latin-1 file": ("t.csv", _latin1, ("t.csv", "line 2", "not UTF-8", "0xc9")),
    "Parquet with a date as population": ("t.parquet", _datetime_population,
                                          ("t.parquet", "'population'", "datetime64")),
    "Parquet that is not Parquet": ("t.parquet", lambda p: _write(p, "commune,x\n1,2\n"),
                                    ("t.parquet", "cannot be read as Parquet")),
    "ragged CSV": ("t.csv", _ragged, ("t.csv", "cannot be read as a table", "line 5")),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(DATA_ERRORS))
def test_bad_table_is_a_data_error_naming_the_file(tmp_path, case):
    name, make, fragments = DATA_ERRORS[case]
    path = make(tmp_path / name)
    answer, out = validate(tmp_path, path)
    expect(answer, 1, *fragments)
    assert len(answer.err.strip().splitlines()) == 1, answer.err
    assert_no_outputs(out)


# --------------------------------------------------------------------------------------------
# Usage: the arguments are wrong, not the data (exit 2)
# --------------------------------------------------------------------------------------------


def test_table_path_that_does_not_exist(tmp_path):
    answer, out = validate(tmp_path, tmp_path / "nope.csv")
    expect(answer, 2, "--table", "nope.csv", "no such file")
    assert_no_outputs(out)


def test_directory_as_table(tmp_path):
    d = tmp_path / "communes.csv"
    d.mkdir()
    answer, out = validate(tmp_path, d)
    expect(answer, 2, "--table", "is a directory")
    assert_no_outputs(out)


def test_unknown_extension(tmp_path):
    path = tmp_path / "t.xlsx"
    table().to_csv(path, index=False)
    answer, out = validate(tmp_path, path)
    expect(answer, 2, "t.xlsx", "expected a .csv")
    assert_no_outputs(out)


def test_unknown_set_key(tmp_path):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False)
    answer, out = validate(tmp_path, path, "--set", "validation.cov_typ=HC1")
    expect(answer, 2, "validation.cov_typ", "unknown key")
    assert_no_outputs(out)


def test_parquet_with_integer_codes_and_text_numbers(tmp_path):
    """Wrong but usable dtypes: integer codes become text, numbers stored as text are read,
    and the one text that is not a number is counted."""
    t = table()
    t["commune"] = np.arange(1000, 1000 + N)
    t["tor"] = t["tor"].map(repr)
    t.loc[6, "tor"] = "n.d."
    path = tmp_path / "t.parquet"
    t.to_parquet(path)
    answer, out = validate(tmp_path, path)
    expect(answer, 0, "left out")
    doc = tables_json(out)
    assert [(x["column"], x["reason"], x["communes"]) for x in doc["invalid_values"]] == [
        ("tor", "not a number", ["1006"])
    ]
    pub = pd.read_csv(out / "communes_public.csv", dtype={"commune": str})
    assert pub["commune"].tolist() == [str(c) for c in t["commune"]]
    assert pub["tor_per_1000"].notna().sum() == N - 1


def test_search_interest_with_a_non_numeric_cell_names_the_file_region_and_term(tmp_path):
    """The PCA needs every region x term: a bad cell is an error naming where it is."""
    t = table()
    t["region"] = [f"R{i % 6}" for i in range(N)]
    t["department"] = [f"D{i % 6}" for i in range(N)]
    path = tmp_path / "t.csv"
    t.to_csv(path, index=False)
    rng = np.random.default_rng(1)
    search = pd.DataFrame(rng.uniform(1, 100, (6, 5)), columns=[f"term{j}" for j in range(5)])
    search.insert(0, "region", [f"R{i}" for i in range(6)])
    search = search.astype({"term3": object})
    search.loc[4, "term3"] = "<1"
    si = tmp_path / "search.csv"
    search.to_csv(si, index=False)
    answer, out = validate(tmp_path, path, "--set", f"validation.search_interest.path={si}")
    expect(answer, 1, "search.csv", "1 search-interest value(s)", "R4 / term3 = <1")
    assert_no_outputs(out)
