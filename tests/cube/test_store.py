"""The store's direct chunk writer gives byte-identical chunks to zarr's own write path."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from cpc_core.cube import store


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
    assert store._write_whole_chunks(arrays[0], 1, 96, block)  # every codec cpc creates has a direct encoder
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
    assert not store._write_whole_chunks(a, 0, 0, np.ones((5, 6), np.float32))  # ends mid-hour
    assert not list((tmp_path / "s.zarr" / "x").rglob("c/*"))  # nothing written


def test_direct_writer_cuts_several_tile_chunks_as_zarr_does(tmp_path):
    """7 tiles in chunks of 3: each hour is cut into three tile chunks, the last padded with
    the fill value; the chunk files equal zarr's own write of the same block."""
    block = np.arange(7 * 8, dtype=np.float32).reshape(7, 8)
    block[6, 1] = np.nan
    arrays = []
    for name in ("direct", "zarr"):
        g = zarr.open_group(tmp_path / f"{name}.zarr", mode="w")
        arrays.append(g.create_array("y", shape=(1, 7, 16), chunks=(1, 3, 4), dtype="float32", fill_value=np.nan,
                                     compressors=store.codec("lz4"), config={"write_empty_chunks": True}))
    written = store._write_whole_chunks(arrays[0], 0, 4, block)
    assert written is not None and len(written) == 2 * 3  # two hours x three tile chunks
    arrays[1][0, :, 4:12] = block
    np.testing.assert_array_equal(arrays[0][0, :, 4:12], block)
    for name in ("direct", "zarr"):
        assert sorted(p.relative_to(tmp_path / f"{name}.zarr").as_posix()
                      for p in (tmp_path / f"{name}.zarr" / "y" / "c").rglob("*") if p.is_file()) == [
            f"y/c/0/{t}/{h}" for t in range(3) for h in (1, 2)]
    for t in range(3):
        for h in (1, 2):
            key = f"y/c/0/{t}/{h}"
            assert (tmp_path / "direct.zarr" / key).read_bytes() == (tmp_path / "zarr.zarr" / key).read_bytes()


def test_file_states_direct_read_equals_zarr(tmp_path):
    """The direct read of the per-file arrays gives what zarr gives: written chunks, chunks
    never written (fill values), and chunks written after the store was extended."""
    import datetime as dt

    lay = store.CityLayout("Nice", dt.date(2019, 3, 29), dt.date(2019, 4, 2), ("Tor", "YouTube"),
                           np.arange(10, dtype=np.int64), ("DL",))
    s = str(tmp_path / "c.zarr")
    store.create_or_extend(s, lay)
    block = np.arange(10 * 96, dtype=np.float32).reshape(10, 96)
    store.write_file_block(s, "Nice", "DL", 1, 0, lay.day_slice(dt.date(2019, 3, 29)), block, store.STATUS["ok"])
    store.write_file_block(s, "Nice", "DL", 0, 2, lay.day_slice(dt.date(2019, 3, 31)), None, store.STATUS["missing"])
    later = store.CityLayout("Nice", lay.first_day, dt.date(2019, 4, 5), ("Tor", "YouTube", "Web_Adult"),
                             lay.tiles, ("DL",))
    store.create_or_extend(s, later)
    store.write_file_block(s, "Nice", "DL", 2, 6, later.day_slice(dt.date(2019, 4, 4)), block, store.STATUS["partial"])
    status, total = store.file_states(s, "Nice", "DL")
    g = store.open_city(s, "Nice")
    np.testing.assert_array_equal(status, g["DL_status"][:])
    np.testing.assert_array_equal(total, g["DL_total"][:])
    assert status.dtype == np.int8 and total.dtype == np.float64 and status.shape == (3, 8)
    assert status[1, 0] == store.STATUS["ok"] and total[1, 0] == block.sum(dtype=np.float64)
    assert status[0, 2] == store.STATUS["missing"] and np.isnan(total[0, 2])
    assert status[2, 6] == store.STATUS["partial"] and (status == 0).sum() == 3 * 8 - 3
    assert np.isnan(total[status == 0]).all()


@pytest.mark.parametrize("compressor", ["lz4", "zstd", "blosc-zstd", "none"])
def test_read_day_chunk_equals_zarr(tmp_path, compressor):
    """The in-place reader of hourly day chunks gives zarr's values for every codec cpc
    offers, and NaN for a chunk never written."""
    import datetime as dt

    lay = store.CityLayout("Nice", dt.date(2019, 3, 30), dt.date(2019, 4, 1), ("Tor",),
                           np.arange(13, dtype=np.int64), ("DL",))
    s = str(tmp_path / "c.zarr")
    store.create_or_extend(s, lay, compressor=compressor)
    rng = np.random.default_rng(1)
    day = dt.date(2019, 3, 31)  # 92 slots: 23 hours, two padding columns
    block = rng.integers(0, 9000, (13, 92)).astype(np.float32)
    block[4, 7] = np.nan
    store.write_file_block(s, "Nice", "DL", 0, 1, lay.day_slice(day), block, store.STATUS["partial"])
    arr = store.open_city(s, "Nice")["DL_hourly"]
    got = store.read_day_chunk(arr, 0, 1)
    np.testing.assert_array_equal(got, arr[0, :, 1, :])
    np.testing.assert_allclose(got[:, :23], block.astype(np.float64).reshape(13, 23, 4).sum(axis=2), rtol=1e-7)
    assert np.isnan(got[4, 1]) and np.isnan(got[:, 23:]).all() and np.isfinite(np.delete(got[:, :23], 4, 0)).all()
    buf = np.zeros((13, 25), np.float32)
    assert store.read_day_chunk(arr, 0, 2, buf) is buf and np.isnan(buf).all()  # never written


@pytest.mark.parametrize("n_slots", [92, 96, 100])
def test_split_hours_against_numpy(n_slots):
    """The ingest's one-pass split: hour chunks, hourly sums (NaN when a slot is NaN, padded
    with NaN) and the file total (NaN skipped) equal plain numpy on a block with holes."""
    rng = np.random.default_rng(n_slots)
    block = rng.integers(0, 5000, (300, n_slots)).astype(np.float32)
    block[rng.random(block.shape) < 0.01] = np.nan
    block[7] = np.nan  # a whole tile missing
    hours = np.empty((n_slots // 4, 300, 4), np.float32)
    hourly = np.empty((300, store.HOURS_PAD), np.float32)
    total = store._split_hours(block, hours, hourly)
    np.testing.assert_array_equal(hours, block.reshape(300, -1, 4).transpose(1, 0, 2))
    ref = block.astype(np.float64).reshape(300, -1, 4).sum(axis=2)  # NaN propagates
    np.testing.assert_array_equal(hourly[:, : n_slots // 4], ref.astype(np.float32))
    assert np.isnan(hourly[:, n_slots // 4 :]).all()
    assert total == pytest.approx(np.nansum(block, dtype=np.float64), rel=1e-15)


def test_per_file_cells_written_directly_equal_zarr(tmp_path):
    """The per-file status/total cells written straight to their chunk files (zarr's default
    zstd) are byte-identical to zarr's own writes, and read back through zarr."""
    cells = {"int8": 2, "float64": 12345.5}
    for dtype, value in cells.items():
        paths = []
        for name in ("direct", "zarr"):
            g = zarr.open_group(tmp_path / f"{name}-{dtype}.zarr", mode="w")
            a = g.create_array("x", shape=(3, 4), chunks=(1, 1), dtype=dtype, fill_value=0)
            if name == "direct":
                store._put_cell(a, 1, 2, value)
            else:
                a[1, 2] = value
            paths.append(tmp_path / f"{name}-{dtype}.zarr" / "x" / a.metadata.encode_chunk_key((1, 2)))
            assert a[1, 2] == value and a[:].sum() == value
        assert paths[0].read_bytes() == paths[1].read_bytes()


def test_file_arrays_reopened_when_the_store_changes(tmp_path):
    """Cached handles follow the store: an extension (new days) and a store recreated at the
    same path with other tiles are seen by the next ingest task in the same process."""
    import datetime as dt
    import shutil

    s = str(tmp_path / "c.zarr")
    lay = store.CityLayout("Nice", dt.date(2019, 3, 29), dt.date(2019, 3, 30), ("Tor",),
                           np.arange(5, dtype=np.int64), ("DL",))
    store.create_or_extend(s, lay)
    a = store.file_arrays(s, "Nice", "DL")
    assert a is store.file_arrays(s, "Nice", "DL")  # unchanged store: the same handles
    assert a.status.shape == (1, 2)
    later = store.CityLayout("Nice", lay.first_day, dt.date(2019, 4, 2), ("Tor",), lay.tiles, ("DL",))
    store.create_or_extend(s, later)
    b = store.file_arrays(s, "Nice", "DL")
    assert b.status.shape == (1, 5) and b.data.shape[2] == len(later.days)  # layout 3: indexed by day
    block = np.ones((5, 96), np.float32)
    store.write_file_block(s, "Nice", "DL", 0, 4, later.day_slice(dt.date(2019, 4, 2)), block, store.STATUS["ok"])
    status, total = store.file_states(s, "Nice", "DL")
    assert status[0, 4] == store.STATUS["ok"] and total[0, 4] == 5 * 96
    shutil.rmtree(s)
    other = store.CityLayout("Nice", lay.first_day, lay.last_day, ("Tor",), np.arange(100, 107, dtype=np.int64),
                             ("DL",))
    store.create_or_extend(s, other)
    assert store.file_arrays(s, "Nice", "DL").tiles.tolist() == list(range(100, 107))


def test_per_file_cells_are_replaced_atomically(tmp_path, monkeypatch):
    """A status cell is written to a temp file and renamed into place: a write that dies
    before the rename leaves the previous value readable, never an empty chunk."""
    import os

    g = zarr.open_group(tmp_path / "s.zarr", mode="w")
    a = g.create_array("x", shape=(2, 2), chunks=(1, 1), dtype="int8", fill_value=0)
    store._put_cell(a, 0, 1, 1)

    def dies(src, dst):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", dies)
    with pytest.raises(OSError, match="killed"):
        store._put_cell(a, 0, 1, 2)
    monkeypatch.undo()
    assert a[0, 1] == 1
    assert store._read_per_file_array(a)[0, 1] == 1


def _small_store(tmp_path, version: int | None = None):
    """A city of 10 tiles, two services, the spring DST day (92 slots) and the day before,
    every file written; the blocks are returned as written. ``version``: the store's layout
    (the current one by default; 2 is what stores written before layout 3 hold)."""
    import datetime as dt

    lay = store.CityLayout("Nice", dt.date(2019, 3, 30), dt.date(2019, 3, 31), ("Tor", "YouTube"),
                           np.arange(10, dtype=np.int64), ("DL",))
    s = str(tmp_path / "c.zarr")
    with pytest.MonkeyPatch.context() as mp:
        if version is not None:
            mp.setattr(store, "LAYOUT_VERSION", version)
        store.create_or_extend(s, lay)
    rng = np.random.default_rng(1)
    blocks = {}
    for si in range(2):
        for di, day in enumerate(lay.days):
            sl = lay.day_slice(day)
            blocks[si, di] = rng.integers(0, 9000, (10, sl.stop - sl.start)).astype(np.float32)
            store.write_file_block(s, "Nice", "DL", si, di, sl, blocks[si, di], store.STATUS["ok"])
    return s, lay, blocks


def _data_key(version: int, si: int, di: int, hour: int) -> str:
    """The key of the DL chunk holding service ``si``'s file ``di`` (layout 3: one chunk per
    file) or UTC hour ``hour`` of the time axis (layout 2: one chunk per hour)."""
    return f"c/{si}/0/{di}/0" if version >= 3 else f"c/{si}/0/{hour}"


@pytest.mark.parametrize("version", [3, 2])
def test_chunk_records_are_the_size_and_crc32_of_the_files_written(tmp_path, version):
    import zlib
    from pathlib import Path

    s, lay, blocks = _small_store(tmp_path, version)
    g = zarr.open_group(s, mode="r")["Nice"]
    assert g.attrs["layout_version"] == version and g["DL"].ndim == (4 if version >= 3 else 3)
    rec = g["DL_chunks"][:]
    root = Path(s) / "Nice"
    for si in range(2):
        h0 = 0
        for di, day in enumerate(lay.days):
            n_hours = (lay.day_slice(day).stop - lay.day_slice(day).start) // 4
            if version >= 3:
                data = (root / "DL" / f"c/{si}/0/{di}/0").read_bytes()
                assert tuple(rec[si, di, 0]) == (len(data), zlib.crc32(data))
                assert not rec[si, di, 1:25].any()
                # the chunk is the file's slots, NaN-padded to 100 (zarr's own reading)
                got = g["DL"][si, :, di, :]
                np.testing.assert_array_equal(got[:, : 4 * n_hours], blocks[si, di])
                assert np.isnan(got[:, 4 * n_hours:]).all()
            else:
                for k in range(25):
                    if k < n_hours:
                        data = (root / "DL" / f"c/{si}/0/{h0 + k}").read_bytes()
                        assert tuple(rec[si, di, k]) == (len(data), zlib.crc32(data))
                    else:
                        assert tuple(rec[si, di, k]) == (0, 0)  # the DST day has 23 hours
            data = (root / "DL_hourly" / f"c/{si}/0/{di}/0").read_bytes()
            assert tuple(rec[si, di, 25]) == (len(data), zlib.crc32(data))
            h0 += n_hours
    assert store.verify(s, lay) == [] and store.verify(s, lay, full=True) == []


@pytest.mark.parametrize("version", [3, 2])
def test_verify_sizes_then_checksums(tmp_path, version):
    """The cheap check sees a chunk of the wrong size or a missing one; only the full check
    sees same-size damage; each names the chunk and its source file."""
    from pathlib import Path

    s, lay, _ = _small_store(tmp_path, version)
    root = Path(s) / "Nice"
    cut_key = _data_key(version, 1, 1, 30)  # YouTube, 2019-03-31 (layout 2: its hour 6; 24 hours on the 30th)
    gone_key = _data_key(version, 0, 0, 2)  # Tor, 2019-03-30 (layout 2: its hour 2)
    cut = root / "DL" / cut_key
    cut.write_bytes(cut.read_bytes()[:-5])
    (root / "DL" / gone_key).unlink()
    same = root / "DL_hourly" / "c/0/0/1/0"
    same.write_bytes(bytes(b ^ 0xFF for b in same.read_bytes()))
    found = {(d.array, d.chunk): d for d in store.verify(s, lay)}
    assert set(found) == {("DL", cut_key), ("DL", gone_key)}
    assert found["DL", cut_key].sources == ("Nice/YouTube/20190331/Nice_YouTube_20190331_DL.txt",)
    assert found["DL", cut_key].cells == ((1, 1),) and "bytes, " in found["DL", cut_key].reason
    assert found["DL", gone_key].reason == "chunk file missing" and found["DL", gone_key].cells == ((0, 0),)
    full = {(d.array, d.chunk): d for d in store.verify(s, lay, full=True)}
    assert set(full) == set(found) | {("DL_hourly", "c/0/0/1/0")}
    assert full["DL_hourly", "c/0/0/1/0"].reason == "checksum (CRC-32) mismatch"


@pytest.mark.parametrize("version", [3, 2])
def test_damaged_chunk_never_read_as_data(tmp_path, version):
    from pathlib import Path

    from cpc_core.errors import StoreDamaged

    s, lay, blocks = _small_store(tmp_path, version)
    arr = store.open_city(s, "Nice")["DL_hourly"]
    rec, src = store.hourly_records(s, "Nice", "DL", 0, 0, 2)
    got = store.read_day_chunk(arr, 0, 1, record=tuple(rec[1]), describe=src[1])
    np.testing.assert_allclose(got[:, :23], blocks[0, 1].reshape(10, 23, 4).astype(np.float64).sum(axis=2))
    p = Path(s) / "Nice" / "DL_hourly" / "c/0/0/1/0"
    data = bytearray(p.read_bytes())
    data[-1] ^= 1  # one bit: blosc may still decode it; the CRC does not let it through
    p.write_bytes(bytes(data))
    with pytest.raises(StoreDamaged, match=r"Nice/DL_hourly chunk c/0/0/1/0 \(from Nice/Tor/20190331/"
                                           r"Nice_Tor_20190331_DL.txt\): checksum \(CRC-32\) mismatch; run `cpc "
                                           r"ingest --repair`"):
        store.read_day_chunk(arr, 0, 1, record=tuple(rec[1]), describe=src[1])
    # the 15-minute array: the slots of both days read back as written, until a chunk is damaged
    np.testing.assert_array_equal(store.read_slots(s, "Nice", "DL", 1, 90, 100),
                                  np.hstack([blocks[1, 0][:, 90:], blocks[1, 1][:, :4]]))
    key = _data_key(version, 0, 1, 30)
    p = Path(s) / "Nice" / "DL" / key
    p.write_bytes(bytes(reversed(p.read_bytes())))
    with pytest.raises(StoreDamaged, match=rf"DL chunk {key} \(from Nice/Tor/20190331/Nice_Tor_20190331_DL.txt\): "
                                           r"checksum \(CRC-32\) mismatch"):
        store.read_slots(s, "Nice", "DL", 0, 0, 188)


@pytest.mark.parametrize("version", [3, 2])
def test_disk_full_names_the_chunk_and_leaves_the_file_pending(tmp_path, monkeypatch, version):
    """ENOSPC on a chunk write: EnvironmentUnavailable (exit 3) naming the chunk's path; the
    file's status stays pending and no temp file is left; the same write succeeds later."""
    import errno
    import re

    from cpc_core.errors import EnvironmentUnavailable

    s, lay, blocks = _small_store(tmp_path, version)
    store.mark_pending(s, "Nice", "DL", [(1, 0)])
    real_write = store._zarr._write_file
    writes = []
    ok_writes = 0 if version >= 3 else 3  # layout 3: the file's one chunk; layout 2: its fourth hour

    def full_after(path, data):
        writes.append(path)
        if len(writes) > ok_writes:  # the file is created, then its write fails, as on a full disk
            real_write(path, data[:1])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(store._zarr, "_write_file", full_after)
    key = re.escape(_data_key(version, 1, 0, 3))
    with pytest.raises(EnvironmentUnavailable, match=rf"disk full writing .*c\.zarr/Nice/DL/{key}: free space"):
        store.write_file_block(s, "Nice", "DL", 1, 0, lay.day_slice(lay.days[0]), blocks[1, 0], store.STATUS["ok"])
    monkeypatch.undo()
    assert store.file_states(s, "Nice", "DL")[0][1, 0] == store.STATUS["pending"]
    assert not list((tmp_path / "c.zarr").rglob("*.tmp"))
    # the status cell itself on a full disk: the temp file, created and cut short, is removed
    writes.clear()
    monkeypatch.setattr(store._zarr, "_write_file", lambda path, data: (real_write(path, b""), writes.append(path),
                                                                        (_ for _ in ()).throw(OSError(errno.ENOSPC, "full"))))
    a = store.open_city(s, "Nice", mode="r+")["DL_status"]
    with pytest.raises(OSError):
        store._put_cell(a, 1, 0, store.STATUS["ok"])
    monkeypatch.undo()
    assert len(writes) == 1 and writes[0].endswith(".tmp")  # written to a temp file, then removed
    assert not list((tmp_path / "c.zarr").rglob("*.tmp"))
    store.write_file_block(s, "Nice", "DL", 1, 0, lay.day_slice(lay.days[0]), blocks[1, 0], store.STATUS["ok"])
    assert store.verify(s, lay, full=True) == []
    dl = store.open_city(s, "Nice")["DL"]
    np.testing.assert_array_equal(dl[1, :, 0, :96] if version >= 3 else dl[1, :, :96], blocks[1, 0])


@pytest.mark.parametrize("version", [3, 2])
def test_repair_metadata_recreates_and_resets(tmp_path, version):
    """A lost array's zarr.json: recreated from the expected layout, the direction's files
    reset to pending (ingested again); a lost group's: rewritten with the store's own layout
    version (told from its arrays), nothing reset."""
    from pathlib import Path

    s, lay, _ = _small_store(tmp_path, version)
    (Path(s) / "Nice" / "zarr.json").unlink()
    (Path(s) / "Nice" / "DL_total" / "zarr.json").unlink()
    with pytest.raises(store.StoreDamaged, match="Nice metadata"):
        store.read_layout(s, "Nice")
    lost = store.repair_metadata(s, ["Nice"])
    assert {(d.city, d.array) for d in lost} == {("Nice", ""), ("Nice", "DL_total")}
    assert store.lost_metadata(s, "Nice") == []
    assert store.read_layout(s, "Nice").services == lay.services
    status, total = store.file_states(s, "Nice", "DL")
    assert (status == store.STATUS["pending"]).all() and np.isnan(total).all()
    g = zarr.open_group(s, mode="r")["Nice"]
    assert g.attrs["layout_version"] == version and g["DL_total"].shape == (2, 2)
    assert g["DL"].ndim == (4 if version >= 3 else 3)
    assert store.repair_metadata(s, ["Nice"]) == []  # a second repair finds nothing


def _layout_fields(lay):
    return (lay.city, lay.first_day, lay.last_day, lay.services, lay.tiles.tolist(), lay.directions)


def test_read_layout_answers_again_only_while_its_files_are_unchanged(tmp_path, monkeypatch):
    """read_layout's kept answers: equal to zarr's own reading of the coordinates, a copy each
    time, and dropped when any file they came from changes, by this process (an extension), by
    another writer (zarr directly) or by damage (a lost zarr.json is still named)."""
    import datetime as dt
    from pathlib import Path

    monkeypatch.setattr(store, "_RACY_NS", 0)  # trust the time stamps of files just written
    reads = []
    orig = store._read_layout
    monkeypatch.setattr(store, "_read_layout", lambda *a: reads.append(a) or orig(*a))
    s, lay, _ = _small_store(tmp_path)
    first = store.read_layout(s, "Nice")
    g = zarr.open_group(s, mode="r")["Nice"]  # the independent reference
    assert first.tiles.tolist() == g["tile"][:].tolist() and first.services == tuple(g["service"][:])
    n = len(reads)
    again = store.read_layout(s, "Nice")
    assert len(reads) == n and _layout_fields(again) == _layout_fields(first)  # kept
    again.tiles[:] = -1  # a caller's copy
    assert store.read_layout(s, "Nice").tiles.tolist() == list(range(10))
    # extended here: read again
    later = store.CityLayout("Nice", lay.first_day, dt.date(2019, 4, 2), lay.services, lay.tiles, ("DL",))
    store.create_or_extend(s, later)
    assert store.read_layout(s, "Nice").last_day == dt.date(2019, 4, 2)
    # another writer changes a tile id in place (same size): seen
    n = len(reads)
    t = zarr.open_group(s, mode="r+")["Nice"]["tile"]
    t[0] = 99
    assert store.read_layout(s, "Nice").tiles[0] == 99 and len(reads) == n + 1
    # damage: a lost array's zarr.json is named, as without the kept answer
    store.read_layout(s, "Nice")
    (Path(s) / "Nice" / "DL_total" / "zarr.json").unlink()
    with pytest.raises(store.StoreDamaged, match="DL_total"):
        store.read_layout(s, "Nice")


def test_read_layout_does_not_keep_answers_from_files_just_written(tmp_path, monkeypatch):
    """Files changed within the file system's clock tick could change again unseen (same size,
    same time stamp): such an answer is read again each time."""
    reads = []
    orig = store._read_layout
    monkeypatch.setattr(store, "_read_layout", lambda *a: reads.append(a) or orig(*a))
    monkeypatch.setattr(store, "_RACY_NS", 10**12)  # every file counts as just written
    s, _, _ = _small_store(tmp_path)
    n = len(reads)
    store.read_layout(s, "Nice")
    store.read_layout(s, "Nice")
    assert len(reads) == n + 2


def test_open_cube_of_a_day_indexed_store_is_the_time_axis(tmp_path):
    """Layout 3 through ``open_cube``: (service, tile, time) with the files' slots in time order
    (92 on the DST day, no padding), one Dask chunk per file by default or the chunks asked
    for; ``read_slots`` cuts any span across days, an empty one included."""
    s, lay, blocks = _small_store(tmp_path)
    want = np.stack([np.hstack([blocks[si, 0], blocks[si, 1]]) for si in range(2)])  # (2, 10, 96 + 92)
    ds = store.open_cube(s, "Nice")
    assert ds["DL"].dims == ("service", "tile", "time") and "slot" not in ds.dims
    assert ds["DL"].chunks[2] == (96, 92)  # one chunk per file
    np.testing.assert_array_equal(ds["DL"].values, want)
    np.testing.assert_array_equal(ds["time"].values, lay.time.values)
    other = store.open_cube(s, "Nice", chunks={"service": 1, "tile": -1, "time": 50})
    assert other["DL"].chunks[2] == (50, 50, 50, 38)
    np.testing.assert_array_equal(other["DL"].values, want)
    np.testing.assert_array_equal(store.read_slots(s, "Nice", "DL", 1, 95, 97), want[1, :, 95:97])
    assert store.read_slots(s, "Nice", "DL", 0, 5, 5).shape == (10, 0)
