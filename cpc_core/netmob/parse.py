"""A validating parser for NetMob23 traffic files.

A NetMob file is ``tile_id v_1 ... v_n`` per line, space separated, no header, with ``n`` the
number of 15-minute slots of that local day (96, or 92 on the spring DST day). Parsing is the
whole cost of ingest (``docs/benchmarks-history.md``), so this module has a
format-specific kernel compiled with numba that parses *and validates* in one pass over the
bytes: it measured ~2x faster than pandas' or pyarrow's general CSV readers here, and those
would still need a second pass to find negative values, NaN text or ragged lines.

The kernel never raises: it records a status code per line, and :func:`check_file` turns codes
into :class:`LineError` records naming the file, the 1-based line and the reason. Callers
decide whether the first error fails the file (``fail``) or the bad lines are rejected and the
rest kept (``quarantine``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from cpc_core import _jit  # numba.njit at the first call: numba is not imported with the module
from cpc_core.errors import InputDataError

__all__ = [
    "REASONS",
    "LineError",
    "NetmobFormatError",
    "ParsedFile",
    "check_file",
    "parse_bytes",
]

logger = logging.getLogger(__name__)

# Line status codes. Codes < 20 come from the kernel, >= 20 from checks against the grid and
# the city's tile list.
OK = 0
TOO_FEW = 1
TOO_MANY = 2
NON_NUMERIC = 3
NEGATIVE = 4
NAN_VALUE = 5
BAD_TILE_ID = 6
TRUNCATED = 7
EMPTY_LINE = 8
NEGATIVE_TILE_ID = 9
OUT_OF_RANGE = 10
TILE_ID_RANGE = 11
DUPLICATE_TILE = 20
OUTSIDE_GRID = 21
UNKNOWN_TILE = 22

REASONS = {
    TOO_FEW: "too few value columns",
    TOO_MANY: "too many value columns",
    NON_NUMERIC: "non-numeric value",
    NEGATIVE: "negative value",
    NAN_VALUE: "NaN value",
    BAD_TILE_ID: "tile id is not a non-negative integer",
    TRUNCATED: "truncated last line (the file does not end with a newline)",
    EMPTY_LINE: "empty line",
    NEGATIVE_TILE_ID: "negative tile id",
    OUT_OF_RANGE: "value too large to store as float32 (above 3.4e38)",
    TILE_ID_RANGE: "tile id too large (more than 18 digits)",
    DUPLICATE_TILE: "duplicate tile id",
    OUTSIDE_GRID: "tile id outside the city's grid",
    UNKNOWN_TILE: "tile id not in the city's tile list",
}

_SP, _TAB, _NL, _CR = 32, 9, 10, 13
_DOT, _MINUS, _PLUS = 46, 45, 43
_ZERO, _NINE = 48, 57

#: Digits an int64 accumulates without overflow (10**18 < 2**63): longer digit runs take the
#: checked path. A 19-digit value wrapped to a negative number before (or, past 2**64, to a
#: small positive one), and was stored as if it were in the file.
_MAX_DIGITS = 18
#: The largest finite float32: a value above it is rejected, never stored as inf.
_F32_MAX = float(np.finfo(np.float32).max)


@_jit.njit(cache=True, nogil=True)
def _count_tokens(buf, start, end):
    """Whitespace-separated tokens in ``buf[start:end]``."""
    ntok = 0
    intok = False
    for i in range(start, end):
        c = buf[i]
        if c == _SP or c == _TAB or c == _CR:
            intok = False
        elif not intok:
            intok = True
            ntok += 1
    return ntok


@_jit.njit(cache=True, nogil=True)
def _parse_value(buf, p, stop):
    """Parse one non-negative number at ``p``; return (value, new_p, code).

    Any number of digits: the first 18 significant digits of the integer and of the fraction
    part are exact in an int64 (leading zeros do not count), later ones only scale the integer
    part or lie below float32's precision; exponents saturate. A value above float32's range is
    ``OUT_OF_RANGE``, never inf.
    """
    c = buf[p]
    if c == _MINUS:
        return 0.0, p, NEGATIVE
    if c == 110 or c == 78:  # 'n' / 'N': nan, NaN, NAN
        return 0.0, p, NAN_VALUE
    if c == _PLUS:
        p += 1
    iv = 0
    nd = 0
    sig = 0  # significant integer digits accumulated in iv
    extra = 0  # significant integer digits past the first _MAX_DIGITS
    while p < stop:
        d = buf[p] - _ZERO
        if d < 0 or d > 9:
            break
        if sig < _MAX_DIGITS:
            iv = iv * 10 + d
            if iv:
                sig += 1
        else:
            extra += 1
        nd += 1
        p += 1
    val = float(iv)
    if extra:
        val *= 10.0 ** min(extra, 400)
    if p < stop and buf[p] == _DOT:
        p += 1
        scale = 1.0
        frac = 0
        nf = 0
        while p < stop and _ZERO <= buf[p] <= _NINE:
            if nf < _MAX_DIGITS:  # leading zeros only scale (0.00012 is 12 / 1e5)
                frac = frac * 10 + (buf[p] - _ZERO)
                scale *= 10.0
                if frac:
                    nf += 1
            nd += 1
            p += 1
        val += frac / scale
    if nd > 0 and p < stop and (buf[p] == 101 or buf[p] == 69):  # e / E
        p += 1
        esign = 1
        if p < stop and (buf[p] == _MINUS or buf[p] == _PLUS):
            if buf[p] == _MINUS:
                esign = -1
            p += 1
        ev = 0
        ne = 0
        while p < stop and _ZERO <= buf[p] <= _NINE:
            if ev < 100_000:  # saturates: 10**100000 is inf, 10**-100000 is 0
                ev = ev * 10 + (buf[p] - _ZERO)
            ne += 1
            p += 1
        if ne == 0:
            nd = 0
        elif val != 0.0:  # 0 x 10**huge would be 0 x inf = NaN
            val *= 10.0 ** (esign * ev)
    if nd == 0 or (p < stop and not (buf[p] == _SP or buf[p] == _TAB or buf[p] == _NL or buf[p] == _CR)):
        return 0.0, p, NON_NUMERIC
    if not val <= _F32_MAX:
        return 0.0, p, OUT_OF_RANGE
    return val, p, OK


@_jit.njit(cache=True, nogil=True)
def _parse_kernel(buf, ncols, ids, values, status, errcol, ntok):
    """Parse every line of ``buf`` into ``ids``/``values``; return the number of lines.

    One pass over the bytes for good lines; a bad line is scanned again only to count its
    tokens. ``values`` rows of bad lines are NaN; ``errcol`` holds the field index (0 = tile
    id) where the first problem was seen; ``ntok`` the number of value tokens on the line, so
    that values read = values stored + values rejected can be accounted.
    """
    n = buf.shape[0]
    pos = 0
    line = 0
    while pos < n:
        code = OK
        col = 0
        p = pos
        while p < n and (buf[p] == _SP or buf[p] == _TAB):
            p += 1
        if p >= n or buf[p] == _NL or buf[p] == _CR:
            code = EMPTY_LINE
        elif buf[p] == _MINUS:
            code = NEGATIVE_TILE_ID
        else:
            tid = 0
            nd = 0
            while p < n:
                d = buf[p] - _ZERO
                if d < 0 or d > 9:
                    break
                tid = tid * 10 + d
                nd += 1
                p += 1
            ids[line] = tid
            if nd == 0 or (p < n and not (buf[p] == _SP or buf[p] == _TAB)):
                code = BAD_TILE_ID
            elif nd > _MAX_DIGITS:
                code = TILE_ID_RANGE
                ids[line] = -1  # wrapped: not a tile id
        k = 0
        row = values[line]
        while code == OK:
            while p < n and (buf[p] == _SP or buf[p] == _TAB):
                p += 1
            if p >= n or buf[p] == _NL or buf[p] == _CR:
                break
            if k == ncols:
                code = TOO_MANY
                col = k + 1
                break
            # fast path: a plain integer followed by a separator (what NetMob files hold)
            # at most _MAX_DIGITS digits: a longer run stops on a digit and takes the checked path
            q = p
            iv = 0
            lim = min(n, p + _MAX_DIGITS)
            while q < lim:
                d = np.int64(buf[q]) - _ZERO
                if d < 0 or d > 9:
                    break
                iv = iv * 10 + d
                q += 1
            if q > p and (q >= n or buf[q] == _SP or buf[q] == _NL or buf[q] == _TAB or buf[q] == _CR):
                row[k] = iv
                p = q
            else:
                val, p, code = _parse_value(buf, p, n)
                if code != OK:
                    col = k + 1
                    break
                row[k] = val
            k += 1
        end = p
        while end < n and buf[end] != _NL:
            end += 1
        if code == OK and end > p and not (end == p + 1 and buf[p] == _CR):
            code = NON_NUMERIC  # stray bytes after the last value
            col = k
        if code == OK and k < ncols:
            code = TOO_FEW if end < n else TRUNCATED
            col = k + 1
        if code == OK:
            ntok[line] = ncols
        else:
            ntok[line] = max(_count_tokens(buf, pos, end) - 1, 0)
            for j in range(ncols):
                values[line, j] = np.nan
        status[line] = code
        errcol[line] = col
        line += 1
        pos = end + 1
    return line


class NetmobFormatError(InputDataError):
    """A NetMob file that cannot be ingested, with the file, line and reason."""

    def __init__(self, path: str, reason: str, line: int | None = None):
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):
        # keep the structured fields when the error crosses a process boundary (Dask workers)
        return (type(self), (self.path, self.reason, self.line))


@dataclass(frozen=True)
class LineError:
    """One rejected line: 1-based line number, status code, reason, value tokens lost."""

    line: int
    code: int
    reason: str
    values: int


@dataclass
class ParsedFile:
    """Result of :func:`parse_bytes`: per-line tile ids, values and status codes.

    ``values`` has shape (lines, ncols) float32; rows of rejected lines are NaN.
    """

    path: str
    ncols: int
    tile_ids: np.ndarray
    values: np.ndarray
    status: np.ndarray
    errcol: np.ndarray
    ntok: np.ndarray
    nbytes: int = 0
    errors: list[LineError] = field(default_factory=list)
    #: the file does not end with a newline: a damaged copy, its last line is ``TRUNCATED``
    truncated: bool = False

    @property
    def n_lines(self) -> int:
        return int(self.status.shape[0])

    @property
    def values_read(self) -> int:
        """Value tokens in the file (tile ids excluded)."""
        return int(self.ntok.sum())

    @property
    def ok(self) -> np.ndarray:
        return self.status == OK

    @property
    def has_tile(self) -> np.ndarray:
        """Lines that name a valid tile id, whatever their values (tile-list comparisons)."""
        # a truncated last line may have been cut inside its tile id
        return ~np.isin(self.status, (BAD_TILE_ID, TILE_ID_RANGE, EMPTY_LINE, NEGATIVE_TILE_ID, TRUNCATED))


def parse_bytes(data: bytes | memoryview | np.ndarray, ncols: int, path: str = "<bytes>") -> ParsedFile:
    """Parse the bytes of one NetMob file expecting ``ncols`` values per line.

    Parameters
    ----------
    data
        The file's content.
    ncols
        Value columns per line for the file's day (:func:`cpc_core.netmob.facts.slots_per_day`).
    path
        Used in error messages only.

    Returns
    -------
    ParsedFile
        With a status per line; nothing is raised for bad lines (see :func:`check_file`).

    Raises
    ------
    NetmobFormatError
        If the file is empty.

    Examples
    --------
    >>> pf = parse_bytes(b"7 1 2\\n9 0 5\\n", ncols=2)
    >>> pf.tile_ids.tolist(), pf.values.tolist()
    ([7, 9], [[1.0, 2.0], [0.0, 5.0]])
    """
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if buf.size == 0:
        raise NetmobFormatError(path, "empty file")
    n_lines = int(np.count_nonzero(buf == _NL)) + (0 if buf[-1] == _NL else 1)
    ids = np.full(n_lines, -1, dtype=np.int64)  # -1: a line without a tile id (empty, negative)
    values = np.empty((n_lines, ncols), dtype=np.float32)
    status = np.zeros(n_lines, dtype=np.int8)
    errcol = np.zeros(n_lines, dtype=np.int16)
    ntok = np.zeros(n_lines, dtype=np.int32)
    got = _parse_kernel(buf, ncols, ids, values, status, errcol, ntok)
    assert got == n_lines, (got, n_lines)
    # only blank lines: an empty file (checked after the parse, which is one pass anyway)
    if status[0] == EMPTY_LINE and np.all(status == EMPTY_LINE):
        raise NetmobFormatError(path, "empty file")
    truncated = buf[-1] != _NL
    if truncated:
        # Every NetMob file ends with a newline: without one the copy was cut, maybe inside the
        # last number (``1234`` read as ``12`` with the right column count), so the last line
        # is never taken as data, whatever it parsed to.
        start = int(buf.size) - int(np.argmax(buf[::-1] == _NL)) if (buf == _NL).any() else 0
        ntok[-1] = max(_count_tokens(buf, start, int(buf.size)) - 1, 0)
        status[-1] = TRUNCATED
        errcol[-1] = ntok[-1]
        values[-1] = np.nan
    return ParsedFile(path, ncols, ids, values, status, errcol, ntok, nbytes=int(buf.size), truncated=bool(truncated))


def check_file(
    pf: ParsedFile,
    grid_size: int | None = None,
    tiles: np.ndarray | None = None,
) -> list[LineError]:
    """Apply the file-wide checks and return every rejected line, in line order.

    Marks in ``pf.status`` (and NaN-fills) lines whose tile id is a duplicate of an earlier
    line, lies outside ``[0, grid_size)`` or is not in the city's sorted tile list ``tiles``.

    Parameters
    ----------
    pf
        A parsed file; modified in place (status and values of rejected lines).
    grid_size
        ``rows * cols`` of the city's grid, or None to skip the grid check.
    tiles
        The city's tile ids, sorted ascending, or None to skip that check.
    """
    ok = pf.status == OK
    ids = pf.tile_ids
    if grid_size is not None:
        bad = ok & (ids >= grid_size)
        pf.status[bad] = OUTSIDE_GRID
        ok &= ~bad
    if tiles is not None:
        pos = np.searchsorted(tiles, ids).clip(0, max(len(tiles) - 1, 0))
        bad = ok & ((len(tiles) == 0) | (tiles[pos] != ids))
        pf.status[bad] = UNKNOWN_TILE
        ok &= ~bad
    # duplicates: the first occurrence is kept, later ones rejected (stable order)
    idx = np.flatnonzero(ok)
    _, first = np.unique(ids[idx], return_index=True)
    dup = np.ones(idx.size, dtype=bool)
    dup[first] = False
    pf.status[idx[dup]] = DUPLICATE_TILE
    rejected = np.flatnonzero(pf.status != OK)
    pf.values[rejected] = np.nan
    pf.errors = [
        LineError(int(i) + 1, int(pf.status[i]), _describe(pf, int(i)), int(pf.ntok[i]))
        for i in rejected
    ]
    return pf.errors


def _describe(pf: ParsedFile, i: int) -> str:
    code = int(pf.status[i])
    reason = REASONS[code]
    if code in (TOO_FEW, TOO_MANY):
        return f"{reason}: expected {pf.ncols}, found {int(pf.ntok[i])}"
    if code == TRUNCATED:
        return f"{reason}: {int(pf.ntok[i])} of {pf.ncols} values, the last maybe cut"
    if code in (NON_NUMERIC, NEGATIVE, NAN_VALUE, OUT_OF_RANGE):
        return f"{reason} in value column {int(pf.errcol[i])}"
    if code in (DUPLICATE_TILE, OUTSIDE_GRID, UNKNOWN_TILE):
        return f"{reason}: {int(pf.tile_ids[i])}"
    return reason
