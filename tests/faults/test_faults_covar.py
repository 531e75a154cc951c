"""Fault cases of ``cpc covariates``: bad public files and bad specs, each refused with its
exit code, a message naming the file, line or key, and no output written (no half table)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import yaml

from tests.faults.harness import expect, run_cpc
from tests.validation.test_covariates import (
    planted,
    write_comparateur,
    write_election,
    write_households,
    write_ssmsi,
)


@pytest.fixture(scope="module")
def public(tmp_path_factory):
    """Clean sources in their published formats (codes with their zeros) and a spec naming them."""
    d = tmp_path_factory.mktemp("public")
    truth = planted()
    write_ssmsi(d / "ssmsi.csv.gz", truth["ssmsi"], "2024")
    write_comparateur(d / "base_cc_comparateur.csv", truth["communes"], lose_zeros=False)
    write_households(d / "base-cc-coupl-fam-men-2020.csv", truth["communes"], duplicate="")
    write_election(d / "PR17_T1_communes.txt", truth["election"], truth["communes"], missing="")
    spec = {"ssmsi": {"path": str(d / "ssmsi.csv.gz"), "drug_indicator": "Usage de stupéfiants"},
            "comparateur": {"path": str(d / "base_cc_comparateur.csv")},
            "households": {"path": str(d / "base-cc-coupl-fam-men-2020.csv")},
            "election": {"path": str(d / "PR17_T1_communes.txt")}}  # fmt: skip
    return d, truth, spec


def _edit(src: Path, dst: Path, encoding: str, fn) -> Path:
    lines = src.read_bytes().decode(encoding).splitlines()
    dst.write_bytes(("\n".join(fn(lines)) + "\n").encode(encoding))
    return dst


def _cell(lines: list[str], row: int, col: int, value: str) -> list[str]:
    cells = lines[row].split(";")
    cells[col] = value
    lines[row] = ";".join(cells)
    return lines


def _ssmsi_lines(src: Path) -> list[str]:
    return gzip.decompress(src.read_bytes()).decode("utf-8").splitlines()


def _ssmsi_write(dst: Path, lines: list[str]) -> Path:
    dst.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8")))
    return dst


def _first(lines: list[str], prefix: str) -> int:
    return next(i for i, x in enumerate(lines) if x.startswith(prefix))


def fault(name: str, d: Path, t: Path, spec: dict) -> dict:
    """Apply fault ``name`` (sources in ``d``, writes into ``t``); return the spec to run."""
    com = d / "base_cc_comparateur.csv"
    hh = d / "base-cc-coupl-fam-men-2020.csv"
    el = d / "PR17_T1_communes.txt"
    ss = d / "ssmsi.csv.gz"
    if name == "lost_zero":
        spec["comparateur"]["path"] = str(
            _edit(com, t / com.name, "latin-1", lambda x: _cell(x, 1, 0, "1001"))
        )
    elif name == "conflicting_duplicate":

        def dup(x):
            i = _first(x, "69382")
            cells = x[i].split(";")
            cells[3] = str(float(cells[3]) + 1)  # C20_MEN differs
            return [*x[: i + 1], ";".join(cells), *x[i + 1 :]]

        spec["households"]["path"] = str(_edit(hh, t / hh.name, "utf-8-sig", dup))
    elif name == "not_a_number":
        spec["comparateur"]["path"] = str(
            _edit(com, t / com.name, "latin-1", lambda x: _cell(x, 3, 9, "12,5%"))
        )
    elif name == "rate_out_of_range":
        spec["comparateur"]["path"] = str(
            _edit(com, t / com.name, "latin-1", lambda x: _cell(x, 3, 9, "140"))
        )
    elif name == "missing_column":
        spec["comparateur"]["path"] = str(_edit(com, t / com.name, "latin-1",
                                                lambda x: [x[0].replace("P20_ACT1564", "P20_ACTIFS"), *x[1:]]))  # fmt: skip
    elif name == "short_row":
        spec["election"]["path"] = str(_edit(el, t / el.name, "latin-1",
                                             lambda x: [*x[:2], x[2].rsplit(";", 2)[0], *x[3:]]))  # fmt: skip
    elif name == "wrong_encoding":
        spec["election"]["encoding"] = "utf-8"
    elif name == "truncated_gzip":
        (t / ss.name).write_bytes(ss.read_bytes()[:200])
        spec["ssmsi"]["path"] = str(t / ss.name)
    elif name == "ssmsi_flag":
        lines = _ssmsi_lines(ss)
        spec["ssmsi"]["path"] = str(_ssmsi_write(t / ss.name, _cell(lines, 5, 6, "oui")))
    elif name == "ssmsi_duplicate_year":
        lines = _ssmsi_lines(ss)
        i = next(
            k for k, x in enumerate(lines) if ";2018;Violences sexuelles;" in x and ";diff;" in x
        )
        cells = lines[i].split(";")
        cells[5] = "9.9999"
        spec["ssmsi"]["path"] = str(_ssmsi_write(t / ss.name, [*lines, ";".join(cells)]))
    elif name == "ssmsi_bad_year":
        lines = _ssmsi_lines(ss)
        spec["ssmsi"]["path"] = str(_ssmsi_write(t / ss.name, _cell(lines, 4, 1, "deux mille")))
    elif name == "unknown_indicator":
        spec["ssmsi"]["outcome_indicator"] = "Violence sexuelle"
    elif name == "no_candidate":
        spec["election"]["le_pen"] = "LEPEN"
    elif name == "header_only":
        (t / com.name).write_bytes(com.read_bytes().split(b"\n")[0] + b"\n")
        spec = {"comparateur": {"path": str(t / com.name)}}
    elif name == "empty_file":
        (t / com.name).write_bytes(b"")
        spec["comparateur"]["path"] = str(t / com.name)
    elif name == "communes_list_without_code":
        (t / "communes.csv").write_text("code,name\n01001,A\n")
        spec["communes"] = str(t / "communes.csv")
    elif name == "unknown_key":
        spec["ssmsi"]["year"] = 2017
    elif name == "years_reversed":
        spec["ssmsi"]["years"] = [2021, 2017]
    elif name == "missing_source_file":
        spec["households"]["path"] = str(t / "nowhere.csv")
    elif name == "no_source":
        spec = {"pad_codes": True}
    elif name == "unknown_role":
        spec["comparateur"]["columns"] = {"pauvrete": "TP6020"}
    elif name == "bad_separator":
        spec["comparateur"]["separator"] = "|"
    return spec


CASES = [
    (
        "lost_zero",
        1,
        ["base_cc_comparateur.csv", "line 2", "lost its leading zero", "'01001'", "--pad-codes"],
    ),
    (
        "conflicting_duplicate",
        1,
        ["base-cc-coupl-fam-men-2020.csv", "commune 69382 appears 2 times with different values"],
    ),
    ("not_a_number", 1, ["base_cc_comparateur.csv", "line 4", "'12,5%' is not a number"]),
    ("rate_out_of_range", 1, ["poverty_rate = 140 is outside [0, 100]", "TP6020"]),
    ("missing_column", 1, ["no column like 'Pyy_ACT1564'", "comparateur.columns.labour_force"]),
    ("short_row", 1, ["PR17_T1_communes.txt", "line 3", "blocks of 7 candidate columns"]),
    ("wrong_encoding", 1, ["PR17_T1_communes.txt", "line 1", "not valid utf-8", "latin-1"]),
    ("truncated_gzip", 1, ["ssmsi.csv.gz", "not a readable gzip file"]),
    ("ssmsi_flag", 1, ["ssmsi.csv.gz", "line 6", "'oui'", "expected diff or ndiff"]),
    ("ssmsi_duplicate_year", 1, ["ssmsi.csv.gz", "commune/column/year", "/2018 appears 2 times"]),
    ("ssmsi_bad_year", 1, ["ssmsi.csv.gz", "line 5", "'deux mille'", "is not a year"]),
    ("unknown_indicator", 1, ["no row with indicator 'Violence sexuelle'", "Violences sexuelles"]),
    ("no_candidate", 1, ["no candidate named 'LEPEN'", "election.le_pen"]),
    ("empty_file", 1, ["base_cc_comparateur.csv", "line 1: empty"]),
    ("communes_list_without_code", 1, ["communes.csv", "no 'commune' column"]),
    ("unknown_key", 2, ["ssmsi.year: unknown key"]),
    ("years_reversed", 2, ["years: first 2021 after last 2017"]),
    ("missing_source_file", 2, ["nowhere.csv: file not found"]),
    ("no_source", 2, ["the spec names no source"]),
    ("unknown_role", 2, ["comparateur.columns: unknown roles ['pauvrete']"]),
    ("bad_separator", 2, ["comparateur.separator"]),
]


@pytest.mark.parametrize("name, code, fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_source_or_spec_is_refused(public, tmp_path, name, code, fragments):
    d, _, spec = public
    spec = fault(name, d, tmp_path, yaml.safe_load(yaml.safe_dump(spec)))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    out = tmp_path / "out" / "cov.csv"
    a = expect(run_cpc("covariates", tmp_path / "spec.yaml", "--out", out), code, *fragments)
    assert code == 2 or len(a.err.strip().splitlines()) == 1, a.err
    # data check: nothing written, not even the report (no half table passes for a result)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_header_only_source_gives_an_empty_table_not_an_error(public, tmp_path):
    """A source with a header and no rows is not an error: an empty table, 0 communes, said."""
    d, _, spec = public
    spec = fault("header_only", d, tmp_path, yaml.safe_load(yaml.safe_dump(spec)))
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    expect(
        run_cpc("covariates", tmp_path / "spec.yaml", "--out", tmp_path / "cov.csv"),
        0,
        "(0 communes)",
    )
    assert (tmp_path / "cov.csv").read_text().splitlines() == [
        "commune,department,density,poverty_rate,unemployment_rate"
    ]
