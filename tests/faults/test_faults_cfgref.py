"""Faults of ``cpc config reference`` and ``cpc config show`` (the configuration reference)."""

from __future__ import annotations

import pytest

from tests.faults.harness import expect, run_cpc


def test_reference_into_a_missing_folder(tmp_path):
    target = tmp_path / "no-such-folder" / "config.md"
    expect(run_cpc("config", "reference", "--out", target), 2, "no such file or folder", "no-such-folder")
    assert not target.parent.exists()  # nothing created on the way


def test_reference_onto_a_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    expect(run_cpc("config", "reference", "--out", tmp_path), 2, "is a folder")
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]  # the folder unchanged


def test_reference_over_a_file_in_place_of_a_folder(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    expect(run_cpc("config", "reference", "--out", tmp_path / "file" / "config.md"), 2, "not a folder")
    assert (tmp_path / "file").read_text() == "not a folder"


@pytest.mark.parametrize("args", [["config"], ["config", "list"]])
def test_config_without_a_known_subcommand(args):
    answer = expect(run_cpc(*args), 2, "usage: cpc config")
    assert "show" in answer.err and "reference" in answer.err and answer.out == ""


def test_reference_takes_no_configuration(tmp_path):
    # `cpc config reference FILE` is a slip for `config show FILE`: refused, nothing printed
    cfg = tmp_path / "c.yaml"
    cfg.write_text("estimate: {lag_h: 1}\n")
    answer = expect(run_cpc("config", "reference", cfg), 2, "unrecognized arguments")
    assert answer.out == "" and cfg.read_text() == "estimate: {lag_h: 1}\n"
