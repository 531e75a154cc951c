"""Counts are written as integers in the output tables, values unchanged."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest

from cpc_core.config.validation_options import ValidationConfig
from cpc_core.estimate.cpc import estimate, integer_if_whole
from cpc_core.validation import stage as vs

INTEGER_TEXT = re.compile(r"^-?\d+$")


def _csv_text(df: pd.DataFrame) -> pd.DataFrame:
    """The CSV as written, read back as text (no type guessing)."""
    return pd.read_csv(io.StringIO(df.to_csv(index=False)), dtype=str, keep_default_na=False)


def test_estimate_writes_population_as_integers_and_keeps_missing_ones_empty():
    pops = [15818.0, np.nan, 4561.0, 0.0]
    totals = pd.DataFrame({"commune": ["a", "b", "c", "d"], "city": "Nice", "population": pops,
                           "tor": [1e6, 2e6, 3e6, 4e6], "web_adult": 1e7, "youtube": 1e9})
    out = estimate(totals, pd.Series([0.2, 0.1, 0.3, 0.2], index=["a", "b", "c", "d"]))
    text = _csv_text(out)
    assert text["population"].tolist() == ["15818", "", "4561", "0"]
    # the rates are those of the float populations: a missing or zero population has none
    assert text["cpc_per_1000"].iloc[1] == "" and text["cpc_per_1000"].iloc[3] == ""
    back = pd.read_csv(io.StringIO(out.to_csv(index=False)))
    np.testing.assert_array_equal(back["population"].to_numpy(dtype=float), np.array(pops))
    expected = 0.011 * 0.41502 * 0.2 * 1e6 / 15818 * 1000
    assert float(text["cpc_per_1000"].iloc[0]) == pytest.approx(expected, rel=1e-12)
    # floats keep their shortest round-trip text: read back bit for bit
    np.testing.assert_array_equal(back["cpc"].to_numpy(), out["cpc"].to_numpy())


@pytest.mark.parametrize(("values", "dtype"), [
    ([1.0, 2.0, np.nan], "Int64"),
    ([1.0, 2.0], "int64"),  # nothing missing: plain numpy integers
    ([1.0, 2.5], "float64"),  # tile counts under area weights
    ([1.0, np.inf], "float64"),
    ([2.0**53, 1.0], "float64"),  # not every integer of this size is a float
    ([np.nan, np.nan], "Int64"),
    ([-3.0, 0.0], "int64"),
])
def test_integer_if_whole(values, dtype):
    s = pd.Series(values, dtype=np.float64)
    got = integer_if_whole(s)
    assert str(got.dtype) == dtype
    np.testing.assert_array_equal(got.to_numpy(dtype=float, na_value=np.nan), np.array(values))


def test_integer_if_whole_leaves_other_dtypes_alone():
    for s in (pd.Series([1, 2], dtype=np.int64), pd.Series(["1", "2"]), pd.Series([True, False])):
        assert integer_if_whole(s).dtype == s.dtype


def test_public_communes_write_population_as_integers():
    t = pd.DataFrame({"commune": ["a", "b", "c"], "population": [1000.0, 200.0, np.nan], "tor": 1e4,
                      "web_adult": 1e5, "youtube": 1e7, "rho": 0.2, "n_tiles": 5.0,
                      "sexual_violence_per_1000": 1.0})
    pub = vs.public_communes(vs.prepare(t, ValidationConfig()))
    assert _csv_text(pub).set_index("commune")["population"].to_dict() == {"a": "1000", "b": "200", "c": ""}
