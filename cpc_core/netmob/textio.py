"""Fast writing of NetMob-format text (used by the synthetic generator and the test corpus).

Formatting integers with Python or ``np.savetxt`` runs at 1-2 million values per second, far
too slow to write benchmark-sized trees; this numba kernel writes the digits straight into a
byte buffer at memory speed.
"""

from __future__ import annotations

import numpy as np

from cpc_core import _jit  # numba.njit at the first call: numba is not imported with the module

__all__ = ["format_netmob"]


@_jit.njit(cache=True, nogil=True)
def _write_int(out, pos, v):
    if v == 0:
        out[pos] = 48
        return pos + 1
    start = pos
    while v > 0:
        out[pos] = 48 + v % 10
        v //= 10
        pos += 1
    # digits were written least significant first
    i, j = start, pos - 1
    while i < j:
        out[i], out[j] = out[j], out[i]
        i += 1
        j -= 1
    return pos


@_jit.njit(cache=True, nogil=True)
def _format(ids, values, out):
    pos = 0
    n, m = values.shape
    for r in range(n):
        pos = _write_int(out, pos, ids[r])
        for k in range(m):
            out[pos] = 32
            pos = _write_int(out, pos + 1, values[r, k])
        out[pos] = 10
        pos += 1
    return pos


def format_netmob(tile_ids: np.ndarray, values: np.ndarray) -> bytes:
    """Bytes of a NetMob file: ``tile_id v1 ... vn`` per line, space separated, no header.

    Parameters
    ----------
    tile_ids
        (n,) non-negative integers.
    values
        (n, m) non-negative integers (any integer dtype).

    Examples
    --------
    >>> format_netmob(np.array([3, 10]), np.array([[0, 12], [7, 0]]))
    b'3 0 12\\n10 7 0\\n'
    """
    ids = np.ascontiguousarray(tile_ids, dtype=np.int64)
    vals = np.ascontiguousarray(values, dtype=np.int64)
    if vals.ndim != 2 or vals.shape[0] != ids.shape[0]:
        raise ValueError(f"values must be (len(tile_ids), slots), got {vals.shape} for {ids.shape[0]} tiles")
    if ids.size and (ids.min() < 0 or (vals.size and vals.min() < 0)):
        raise ValueError("NetMob files hold non-negative integers only")
    vmax = int(vals.max()) if vals.size else 0
    imax = int(ids.max()) if ids.size else 0
    width = len(str(max(vmax, 1))) + 1
    size = ids.size * (len(str(max(imax, 1))) + 1) + vals.size * width + 16
    out = np.empty(size, dtype=np.uint8)
    end = _format(ids, vals, out)
    return out[:end].tobytes()
