"""The only place cpc reaches past zarr's public API: chunk keys, codecs and raw chunk I/O.

The store writes and reads whole chunks itself (:mod:`cpc_core.cube.store`: encoding the
chunks directly and reading a day chunk straight into its output buffer is several times
faster than zarr's generic selection path, see ``docs/benchmarks-history.md``). Doing so
needs a few things zarr does not export: the chunk key encoding of an array, the
configuration of its codecs, and a synchronous call into its event loop to ``get``/``set``
raw bytes on a store that is not local. They are all here, behind plain functions, so that
a zarr release that moves them breaks one small module, and this module refuses to load on a
zarr it was not written and tested for (:data:`SUPPORTED`) instead of writing chunks that
zarr may not read.

``tests/cube/test_store_zarr_compat.py`` checks, for every kind of chunk and metadata document cpc
writes itself, that the result is byte-identical to what zarr's public API writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import zarr

from cpc_core.errors import EnvironmentUnavailable, clip

__all__ = [
    "SUPPORTED",
    "check_version",
    "chunk_key",
    "decoder",
    "encoder",
    "local_dir",
    "read_chunk",
    "read_chunks",
    "slash_keys",
    "write_chunks",
]

#: The zarr versions this module was written for, as (lowest, first excluded); the same range
#: as the pin in ``pyproject.toml``. A new minor release is admitted by widening both after
#: ``tests/cube/test_store_zarr_compat.py`` passes with it.
SUPPORTED = ((3, 1), (3, 2))


def check_version(version: str) -> None:
    """Raise :class:`EnvironmentUnavailable` unless zarr ``version`` is in :data:`SUPPORTED`.

    Examples
    --------
    >>> check_version("3.1.6")
    >>> check_version("3.2.0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cpc_core.errors.EnvironmentUnavailable: zarr 3.2.0 is installed; ... >=3.1,<3.2 (it writes chunks with ...
    """
    m = re.match(r"(\d+)\.(\d+)", version)
    lo, hi = SUPPORTED
    if m is None or not lo <= (int(m[1]), int(m[2])) < hi:
        raise EnvironmentUnavailable(
            f"zarr {clip(version, 40)} is installed; cpc's store supports zarr >={lo[0]}.{lo[1]},<{hi[0]}.{hi[1]} "
            f"(it writes chunks with zarr's internal codecs and keys): install a supported zarr, e.g. "
            f"`pip install 'zarr>={lo[0]}.{lo[1]},<{hi[0]}.{hi[1]}'`, or the versions in requirements.lock")


# before the internal imports: a zarr that moved them gets this message, not an ImportError
check_version(zarr.__version__)

from numcodecs import Blosc, Zstd  # noqa: E402
from zarr.codecs import BloscCodec, BytesCodec, ZstdCodec  # noqa: E402
from zarr.core.buffer import default_buffer_prototype  # noqa: E402
from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding  # noqa: E402
from zarr.core.sync import sync  # noqa: E402
from zarr.storage import LocalStore  # noqa: E402


def chunk_key(arr: zarr.Array, coords: Sequence[int]) -> str:
    """The store key of the chunk at ``coords`` relative to the array (``c/0/0/5``)."""
    return arr.metadata.encode_chunk_key(tuple(coords))


def slash_keys(arr: zarr.Array) -> bool:
    """Whether the array's chunk keys are zarr v3's default ``c/i/j/...`` (folders on disk)."""
    enc = arr.metadata.chunk_key_encoding
    return isinstance(enc, DefaultChunkKeyEncoding) and enc.separator == "/"


def local_dir(arr: zarr.Array) -> Path | None:
    """The array's folder when its store is a local one, else None."""
    if isinstance(arr.store, LocalStore):
        return Path(arr.store.root) / arr.path
    return None


def _little_endian_bytes(arr: zarr.Array) -> bool:
    """Whether the array's first codec stores its values as little-endian bytes (cpc's layout)."""
    codecs = list(arr.metadata.codecs)
    if not codecs or not isinstance(codecs[0], BytesCodec) or np.dtype(arr.dtype).byteorder == ">":
        return False
    return np.dtype(arr.dtype).itemsize == 1 or codecs[0].endian is None or codecs[0].endian.value == "little"


def encoder(arr: zarr.Array) -> Callable[[np.ndarray], bytes] | None:
    """A function encoding one C-contiguous chunk exactly as the array's codecs would, or None.

    Only for the layouts cpc creates: little-endian bytes, then blosc, zstd or nothing.
    """
    if not _little_endian_bytes(arr):
        return None
    codecs = list(arr.metadata.codecs)
    if len(codecs) == 1:
        return lambda chunk: chunk.tobytes()
    if len(codecs) == 2 and isinstance(codecs[1], BloscCodec):
        c = codecs[1]
        shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[c.shuffle.name]
        blosc = Blosc.from_config({"cname": c.cname.name, "clevel": c.clevel, "shuffle": shuffle,
                                   "blocksize": c.blocksize, "typesize": c.typesize})
        return lambda chunk: blosc.encode(chunk.view(np.uint8).reshape(-1))
    if len(codecs) == 2 and isinstance(codecs[1], ZstdCodec):
        zstd = Zstd(level=codecs[1].level, checksum=codecs[1].checksum)
        return lambda chunk: zstd.encode(chunk.view(np.uint8).reshape(-1))
    return None


def decoder(arr: zarr.Array) -> Callable[[bytes, np.ndarray], None] | None:
    """A function decoding one stored chunk's bytes into a given C-contiguous array, or None.

    The counterpart of :func:`encoder`, for the same layouts.
    """
    if not _little_endian_bytes(arr):
        return None
    codecs = list(arr.metadata.codecs)

    def raw(data, out):
        out.view(np.uint8).reshape(-1)[:] = np.frombuffer(data, dtype=np.uint8)

    if len(codecs) == 1:
        return raw
    if len(codecs) == 2 and isinstance(codecs[1], BloscCodec):
        blosc = Blosc()
        return lambda data, out: blosc.decode(data, out=out.view(np.uint8).reshape(-1))
    if len(codecs) == 2 and isinstance(codecs[1], ZstdCodec):
        zstd = Zstd()
        return lambda data, out: raw(zstd.decode(data), out)
    return None


def read_chunks(arr: zarr.Array, keys: Sequence[str]) -> list[bytes | None]:
    """The stored bytes of the chunks ``keys`` of ``arr`` (None for a chunk never written).

    A local store is read as plain files (zarr's ``LocalStore.get`` costs a round trip to its
    event loop per chunk); any other store through the store's own ``get``, all keys at once
    (an object store answers them concurrently).
    """
    base = local_dir(arr)
    if base is not None:
        root = os.fspath(base)  # plain strings: pathlib's joins cost more than the reads here
        out: list[bytes | None] = []
        for key in keys:
            try:
                with open(f"{root}/{key}", "rb") as fh:
                    out.append(fh.read())
            except FileNotFoundError:
                out.append(None)
        return out
    proto = default_buffer_prototype()

    async def get():
        return await asyncio.gather(*(arr.store.get(f"{arr.path}/{key}", prototype=proto) for key in keys))

    return [None if buf is None else buf.to_bytes() for buf in sync(get())]


def read_chunk(arr: zarr.Array, key: str) -> bytes | None:
    """The stored bytes of one chunk (:func:`read_chunks`)."""
    return read_chunks(arr, [key])[0]


#: Flags of a chunk file's creation: a raw descriptor, no buffering (one write per chunk).
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)


def _write_file(path: str, data: bytes) -> None:
    """``data`` into a new (or truncated) file: ``open(path, "wb")`` without its buffered
    writer, whose set-up (an ``isatty`` ioctl, an ``fstat``, an ``lseek``) cost more than the
    write of a ~1 kB chunk."""
    fd = os.open(path, _CREATE, 0o666)
    try:
        view = memoryview(data)
        while view:  # a regular file takes it whole, unless the disk fills (an OSError)
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def write_chunks(arr: zarr.Array, items: Sequence[tuple[str, bytes]], atomic: bool = False) -> None:
    """Store encoded chunks ``(key, bytes)`` of ``arr``.

    A local store gets plain file writes: zarr's ``LocalStore.set`` makes the folders and a
    temp file per chunk, a large share of a write. A data chunk cut short by a crash is harmless: its
    file's status stays ``pending`` and the next run rewrites every chunk of that file.
    ``atomic``: write each chunk to a temp file and rename it into place (the per-file status
    and total cells, which no later run could decode if cut short). Any other store: the
    store's own ``set``, all chunks at once (object stores replace an object atomically).
    """
    base = local_dir(arr)
    if base is None:
        proto = default_buffer_prototype()

        async def put():
            await asyncio.gather(*(arr.store.set(f"{arr.path}/{key}", proto.buffer.from_bytes(data))
                                   for key, data in items))

        sync(put())
        return
    # plain strings: at ~1 kB a chunk (a small city's hour), pathlib's joins cost more than the
    # writes
    root = os.fspath(base)
    made: set[str] = set()
    pid = os.getpid()
    for key, data in items:
        path = f"{root}/{key}"
        parent, _, name = path.rpartition("/")
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        target, path = path, (f"{parent}/.{name}.{pid}.tmp" if atomic else path)
        try:
            _write_file(path, data)
        except OSError as e:
            if atomic:  # a full disk must not leave temp files behind
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
            if e.filename is None:  # a failed write() names no file: name the chunk
                e.filename = target
            raise
        if atomic:
            os.replace(path, target)
