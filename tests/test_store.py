"""The store's direct chunk writer gives byte-identical chunks to zarr's own write path."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from cpc_core import store


@pytest.mark.parametrize("compressor", ["lz4", "zstd", "blosc-zstd", "none"])
def test_direct_chunk_writes_equal_zarr_writes(tmp_path, compressor):
    rng = np.random.default_rng(0)
    n_tiles = 37
    block = rng.integers(0, 5000, (n_tiles, 96)).astype(np.float32)
    block[3, 10] = np.nan
    arrays = []
    for name in ("direct", "zarr"):
        g = zarr.open_group(tmp_path / f"{name}.zarr", mode="w")
        a = g.create_array("x", shape=(2, n_tiles, 192), chunks=(1, n_tiles, 4), dtype="float32",
                           fill_value=np.nan, compressors=store.codec(compressor),
                           config={"write_empty_chunks": True})
        arrays.append(a)
    used = store._write_whole_chunks(arrays[0], 1, 96, block)
    # zstd (not blosc) has no direct encoder: the function must say so and write nothing
    assert used == (compressor != "zstd")
    if not used:
        return
    arrays[1][1, :, 96:192] = block
    np.testing.assert_array_equal(arrays[0][:], arrays[1][:])
    for h in range(24, 48):
        key = arrays[0].metadata.encode_chunk_key((1, 0, h))
        a = (tmp_path / "direct.zarr/x" / key).read_bytes()
        b = (tmp_path / "zarr.zarr/x" / key).read_bytes()
        assert a == b


def test_direct_writer_refuses_unaligned_blocks(tmp_path):
    g = zarr.open_group(tmp_path / "s.zarr", mode="w")
    a = g.create_array("x", shape=(1, 5, 16), chunks=(1, 5, 4), dtype="float32", fill_value=np.nan,
                       compressors=store.codec("lz4"))
    assert not store._write_whole_chunks(a, 0, 2, np.ones((5, 4), np.float32))  # starts mid-hour
    b = g.create_array("y", shape=(1, 6, 16), chunks=(1, 3, 4), dtype="float32", fill_value=np.nan,
                       compressors=store.codec("lz4"))
    assert not store._write_whole_chunks(b, 0, 0, np.ones((6, 4), np.float32))  # several tile chunks
