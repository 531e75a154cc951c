"""The validating parser against an independent plain-Python parse, and the bad-input corpus."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cpc_core.netmob.parse import NetmobFormatError, check_file, parse_bytes
from cpc_core.netmob.textio import format_netmob


def plain_parse(text: str, ncols: int):
    """Reference: str.split per line, int()/float() per token."""
    ids, rows = [], []
    for line in text.splitlines():
        tok = line.split()
        assert len(tok) == ncols + 1
        ids.append(int(tok[0]))
        rows.append([float(t) for t in tok[1:]])
    return np.array(ids), np.array(rows, dtype=np.float32)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 30),
    m=st.sampled_from([92, 96, 100, 3]),
    data=st.data(),
)
def test_round_trip_matches_plain_parse(n, m, data):
    ids = np.array(data.draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True)))
    vals = np.array(data.draw(st.lists(st.integers(0, 2**24), min_size=n * m, max_size=n * m))).reshape(n, m)
    raw = format_netmob(ids, vals)
    ref_ids, ref_vals = plain_parse(raw.decode(), m)
    pf = parse_bytes(raw, m)
    assert check_file(pf) == []
    np.testing.assert_array_equal(pf.tile_ids, ref_ids)
    np.testing.assert_array_equal(pf.values, ref_vals)
    assert pf.values_read == n * m


def test_decimals_exponents_and_crlf():
    raw = b"5 1.5 2e3 0.25\r\n6 3. 4E-1 +7\r\n7 0 0 0\r\n"
    pf = parse_bytes(raw, 3)
    assert check_file(pf) == [] and not pf.truncated
    np.testing.assert_allclose(pf.values, [[1.5, 2000, 0.25], [3, 0.4, 7], [0, 0, 0]], rtol=1e-6)


@pytest.mark.parametrize("raw,found", [
    (b"5 1 2 3\n7 1 2 1234"[:-2], 3),  # cut inside the last number: 1234 would read as 12
    (b"5 1 2 3\n7 1 2 3", 3),  # cut right before the newline: the right column count
    (b"5 1 2 3\n7 1 2 3\r", 3),
    (b"5 1 2 3\n7 1", 1),
    (b"5 1 2 3\n71", 0),  # cut inside the tile id: not a tile of the file
    (b"7 1 2 3", 3),  # a one-line file
])
def test_missing_final_newline_is_a_truncated_last_line(raw, found):
    """Every NetMob file ends with a newline: without one the last line is never data, whatever
    it parses to, and its value tokens are counted as rejected."""
    pf = parse_bytes(raw, 3, "f.txt")
    errors = check_file(pf)
    assert pf.truncated
    last = raw.count(b"\n") + 1
    assert [(e.line, e.values) for e in errors] == [(last, found)]
    assert errors[0].reason.startswith("truncated last line (the file does not end with a newline)")
    assert np.isnan(pf.values[-1]).all() and not pf.has_tile[-1]
    assert pf.values_read == 3 * (last - 1) + found
    if last > 1:
        np.testing.assert_array_equal(pf.values[0], [1, 2, 3])


# (content, ncols, expected reason fragment, 1-based line)
BAD = [
    (b"1 1 2 3\n2 1 2\n", 3, "too few value columns: expected 3, found 2", 2),
    (b"1 1 2 3\n2 1 2 3 4\n", 3, "too many value columns: expected 3, found 4", 2),
    (b"1 1 x 3\n", 3, "non-numeric value in value column 2", 1),
    (b"1 1 2 3\n2 1 -2 3\n", 3, "negative value in value column 2", 2),
    (b"1 nan 2 3\n", 3, "NaN value in value column 1", 1),
    (b"1 1 2 3\n2 NaN 2 3\n", 3, "NaN value in value column 1", 2),
    (b"1 1 2 3\n1 4 5 6\n", 3, "duplicate tile id: 1", 2),
    (b"1 1 2 3\n2 1 2", 3, "truncated last line (the file does not end with a newline): 2 of 3", 2),
    (b"1 1 2 3\n\n2 1 2 3\n", 3, "empty line", 2),
    (b"1.5 1 2 3\n", 3, "tile id is not a non-negative integer", 1),
    (b"-4 1 2 3\n", 3, "negative tile id", 1),
    (b"1 1 2 3x\n", 3, "non-numeric value in value column 3", 1),
    # overflow: an int64 wrapped these to -9.2e18, 5 and inf before
    (b"1 1 1e39 3\n", 3, "value too large to store as float32 (above 3.4e38) in value column 2", 1),
    (b"1 1 2 1e400\n", 3, "value too large to store as float32", 1),
    (b"1 1 2 3\n2 340282350000000000000000000000000000000 2 3\n", 3, "value too large", 2),
    (b"18446744073709551716 1 2 3\n", 3, "tile id too large (more than 18 digits)", 1),
]


@pytest.mark.parametrize("token", [
    "9223372036854775808",  # 2**63: wrapped to a negative value
    "18446744073709551621",  # 2**64 + 5: wrapped to 5
    "99999999999999999999999",
    "123456789012345678",  # 18 digits: the fast path's limit
    "1.12345678901234567890123",  # a fraction longer than an int64
    "0e999999999999999999",  # 0 x 10**huge must stay 0, not NaN
    "1e-99999999999",
    "3.4e38",
    "0000000000000000000005",  # leading zeros are not significant digits
    "0000000000000000000005.5",
    "0.0000000000000000000123",  # 1.23e-20: float32 holds it
    "0" * 330,
])
def test_long_numbers_are_parsed_as_python_does(token):
    pf = parse_bytes(f"7 {token} 1\n".encode(), 2)
    assert check_file(pf) == []
    assert pf.tile_ids.tolist() == [7]
    assert pf.values[0, 0] == np.float32(float(token)), (pf.values[0, 0], float(token))


@pytest.mark.parametrize("raw,ncols,reason,line", BAD)
def test_bad_lines_are_named(raw, ncols, reason, line):
    pf = parse_bytes(raw, ncols, "f.txt")
    errors = check_file(pf)
    assert errors, "the bad line was not detected"
    assert errors[0].line == line
    assert reason in errors[0].reason
    # the rejected line is NaN, never zero
    assert np.isnan(pf.values[line - 1]).all()


def test_lines_without_a_tile_id_have_none():
    # an empty line or a negative id must not read as tile 0 (ids used to start at 0)
    pf = parse_bytes(b"5 1\n\n-3 2\n7 3\n", 1, "f.txt")
    assert pf.tile_ids.tolist() == [5, -1, -1, 7]
    assert 0 not in pf.tile_ids[pf.status != 6]


def test_grid_and_tile_list_checks():
    pf = parse_bytes(b"1 1\n500 2\n3 3\n", 1, "f.txt")
    errors = check_file(pf, grid_size=100, tiles=np.array([1, 2, 500]))
    reasons = {e.line: e.reason for e in errors}
    assert reasons == {2: "tile id outside the city's grid: 500", 3: "tile id not in the city's tile list: 3"}
    assert pf.values[0, 0] == 1


def test_empty_file_is_an_error():
    for raw in (b"", b"\n\n", b"  \n"):
        with pytest.raises(NetmobFormatError, match="f.txt: empty file"):
            parse_bytes(raw, 96, "f.txt")


def test_counts_add_up_on_mixed_file():
    raw = b"1 1 2 3\n2 1 -2 3\n3 1 2\n4 1 2 3 4\n5 5 5 5\n"
    pf = parse_bytes(raw, 3)
    errors = check_file(pf)
    stored = int(pf.ok.sum()) * 3
    rejected = sum(e.values for e in errors)
    assert (stored, rejected, pf.values_read) == (6, 3 + 2 + 4, 15)


def test_error_survives_pickling():
    import pickle

    e = NetmobFormatError("a/b.txt", "negative value in value column 2", 7)
    e2 = pickle.loads(pickle.dumps(e))
    assert (e2.path, e2.line, e2.reason, str(e2)) == (e.path, 7, e.reason, "a/b.txt:7: negative value in value column 2")
