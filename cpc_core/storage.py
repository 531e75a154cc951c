"""One home for every path cpc reads or writes: local paths and object-storage URLs.

Every path of a run (``input.netmob``, ``ingest.store``, ``areas.path``, ``areas.tiles``,
covariates, POIs, search interest, ``output.dir``) is either a local path, a ``file://`` URL
(the same local path) or an object-storage URL: ``s3://``, ``gs://`` (``gcs://``), ``az://``
(``abfs://``, ``abfss://``). Local paths keep going through :mod:`pathlib` and the OS, exactly
as before; URLs go through fsspec.

Credentials and endpoints
    come from the standard environment of each store (``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, ``AWS_PROFILE``...;
    ``GOOGLE_APPLICATION_CREDENTIALS``; ``AZURE_STORAGE_*``), or from the configuration's
    ``storage.options`` (fsspec ``storage_options``), installed once per process by
    :func:`configure` as fsspec's defaults, so that pandas, xarray, zarr and geopandas all use
    them, and on every Dask worker by :func:`install_on_workers`.

Errors
    :func:`guard` turns what the storage answers into cpc's contract: a missing bucket, refused
    credentials or an unreachable endpoint are :class:`~cpc_core.errors.EnvironmentUnavailable`
    (exit 3) naming the URL, never a secret.

:func:`path` gives a pathlib-like object for a folder: :class:`pathlib.Path` for local paths
and :class:`RemotePath` (the subset of ``Path`` the jobs use) for URLs, so a job writes
``out / "communes.csv"`` the same way in both cases.
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from cpc_core.errors import EnvironmentUnavailable, UsageError, clip

# fsspec (~0.07 s with asyncio) is imported by the functions that open files: the configuration
# imports this module for its path helpers, and `cpc --help` or a configuration error need none.

__all__ = [
    "SCHEMES",
    "RemotePath",
    "configure",
    "exists",
    "guard",
    "install_on_workers",
    "is_remote",
    "join",
    "local_path",
    "local_size",
    "open_file",
    "path",
    "read_bytes",
    "scheme",
    "write_bytes",
]

logger = logging.getLogger(__name__)

#: URL schemes accepted for paths; each maps to the fsspec protocol that serves it and the
#: package that provides it (named in the error when it is not installed)
SCHEMES: dict[str, str] = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
                           "abfs": "adlfs", "abfss": "adlfs", "file": "fsspec"}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")

#: storage options set by :func:`configure` (the configuration's ``storage.options``)
_OPTIONS: dict[str, Any] = {}



def local_tree(root: str) -> Iterator[os.DirEntry]:
    """Every entry under the local folder ``root``, depth first, in name order, symbolic links
    to folders entered.

    NetMob trees are often assembled with links (a city's or a service's folder, or the files,
    on another disk), so the ingest's survey (:mod:`cpc_core.cube.ingest`) and the no-op
    ingest's signature (:mod:`jobs._ingest_state`) walk them the same way, through this one
    function. A folder reached twice (a link cycle, two links to one folder) is entered once.

    Raises
    ------
    OSError
        For a folder that cannot be listed (``PermissionError``), or ``root`` itself missing.
    """
    seen: set[tuple[int, int]] = set()

    def walk(folder: str) -> Iterator[os.DirEntry]:
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(folder) as it:
            found = sorted(it, key=lambda e: e.name)
        for e in found:
            yield e
            try:
                into = e.is_dir()  # follows a link
            except OSError:  # a link loop or an entry gone meanwhile: not a folder to enter
                into = False
            if into:
                yield from walk(e.path)

    yield from walk(root)

def scheme(p: str | os.PathLike) -> str | None:
    """The URL scheme of ``p`` in lower case (``"s3"``), or None for a plain local path."""
    m = _SCHEME.match(str(p))
    return m.group(1).lower() if m else None


def is_remote(p: str | os.PathLike | None) -> bool:
    """True for an object-storage URL (any scheme but ``file``)."""
    if p is None or isinstance(p, Path):
        return False
    s = scheme(p)
    return s is not None and s != "file"


def local_size(paths: Iterable[str | os.PathLike]) -> int | None:
    """Total bytes of local files ``paths``; None when one is an object or cannot be stat'ed.

    The size hint of a local cluster (``cluster.processes: auto``): objects in a bucket are not
    listed for it, and a file that cannot be read is named by the stage that reads it.

    Examples
    --------
    >>> local_size([]), local_size(["s3://bucket/a.txt"]), local_size(["/no/such/file"])
    (0, None, None)
    >>> local_size([__file__]) == local_size([f"file://{__file__}"]) == os.stat(__file__).st_size
    True
    """
    total = 0
    for p in paths:
        if is_remote(p):
            return None
        try:
            total += os.stat(local_path(p)).st_size
        except OSError:
            return None
    return total


def local_path(p: str | os.PathLike) -> str:
    """A local path or ``file://`` URL as a plain path (``file://`` removed)."""
    s = str(p)
    return s[len("file://"):] if s.lower().startswith("file://") else s


def check_scheme(p: str | None, key: str) -> None:
    """Refuse a URL scheme cpc does not serve, naming the configuration key (exit 2)."""
    if p is None:
        return
    s = scheme(p)
    if s is not None and s not in SCHEMES:
        raise UsageError(f"{key}: unknown URL scheme '{clip(s, 20)}://' in {clip(p)}; allowed: a local path or "
                         f"{', '.join(k + '://' for k in SCHEMES)}")


def join(base: str | os.PathLike, *parts: str) -> str:
    """``base/parts...`` for a local path (as :class:`pathlib.Path` joins) or a URL (with ``/``)."""
    if is_remote(base):
        return posixpath.join(str(base).rstrip("/"), *parts)
    return str(Path(local_path(base)).joinpath(*parts))


def _plain(value: Any) -> Any:
    """A configuration value with secrets unwrapped (pydantic ``SecretStr`` and friends)."""
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def configure(options: Mapping[str, Any] | None, urls: list[str | None] = ()) -> None:
    """Make ``options`` the default fsspec storage options of the URLs' protocols in this process.

    Parameters
    ----------
    options
        fsspec ``storage_options`` from the configuration (``storage.options``); secrets may be
        pydantic ``SecretStr`` values. Empty: nothing changes (the standard environment rules).
    urls
        The run's paths: the options go to the protocols these use (``s3``...), since options
        of one store (``endpoint_url``, ``key``) mean nothing to another.
    """
    global _OPTIONS
    plain = {k: _plain(v) for k, v in (options or {}).items()}
    _OPTIONS = plain
    if not plain:
        return
    import fsspec

    protocols = {_protocol(u) for u in urls if is_remote(u)}
    for proto in protocols:
        cls = fsspec.get_filesystem_class(proto) if _installed(proto) else None
        names = cls.protocol if cls is not None and isinstance(cls.protocol, tuple | list) else [proto]
        for name in names:
            fsspec.config.conf[name] = {**fsspec.config.conf.get(name, {}), **plain}
    # instances built before (fsspec caches them) would keep the old settings
    for proto in protocols:
        if _installed(proto):
            fsspec.get_filesystem_class(proto).clear_instance_cache()
    logger.debug("storage options installed for %s: %s", sorted(protocols), sorted(plain))


def _protocol(url: str) -> str:
    s = scheme(url) or "file"
    return {"s3a": "s3", "gs": "gcs"}.get(s, s)


def _installed(proto: str) -> bool:
    import fsspec

    try:
        fsspec.get_filesystem_class(proto)
        return True
    except (ImportError, ValueError):
        return False


class _ConfigurePlugin:
    """A Dask worker plugin installing the storage options on every worker, also those that
    join later (adaptive scaling)."""

    name = "cpc-storage-options"

    def __init__(self, conf: dict):
        self.conf = conf

    def setup(self, worker) -> None:
        import fsspec

        for proto, opts in self.conf.items():
            fsspec.config.conf[proto] = {**fsspec.config.conf.get(proto, {}), **opts}
            try:
                fsspec.get_filesystem_class(proto).clear_instance_cache()
            except (ImportError, ValueError):
                pass


def install_on_workers(client: Any) -> None:
    """Send the options of :func:`configure` to the cluster's workers (nothing when none)."""
    if not _OPTIONS:
        return
    import fsspec

    conf = {p: dict(v) for p, v in fsspec.config.conf.items() if v and all(v.get(k) == x for k, x in _OPTIONS.items())}
    if not conf:
        return
    from distributed import WorkerPlugin

    plugin = type("CpcStorageOptions", (_ConfigurePlugin, WorkerPlugin), {})(conf)
    client.register_plugin(plugin, name=_ConfigurePlugin.name)


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


def _bucket(url: str) -> str:
    s = scheme(url)
    rest = str(url).split("://", 1)[1]
    return f"{s}://{rest.split('/', 1)[0]}"


def translate(exc: BaseException, url: str, what: str) -> BaseException | None:
    """cpc's error for what a storage call raised on ``url`` (None: not a storage failure).

    The message names the URL and what was being done; it never carries the exception's own
    text where that could hold a credential (signatures, keys).
    """
    name = type(exc).__name__
    text = str(exc)
    u = clip(url)
    if isinstance(exc, ImportError):
        pkg = SCHEMES.get(scheme(url) or "", "an fsspec implementation")
        return EnvironmentUnavailable(f"{u}: {what}: the {scheme(url)}:// scheme needs the package {pkg} "
                                      f"(pip install {pkg})")
    if isinstance(exc, PermissionError) or any(k in text for k in ("AccessDenied", "InvalidAccessKeyId",
                                                                  "SignatureDoesNotMatch", "Forbidden")):
        return EnvironmentUnavailable(f"{u}: {what}: access denied by the storage (check the credentials: "
                                      "AWS_* environment variables or storage.options, and the bucket's policy)")
    if "NoSuchBucket" in text or "bucket does not exist" in text.lower():
        return EnvironmentUnavailable(f"{u}: {what}: bucket {_bucket(url)} does not exist (or is not visible "
                                      "with these credentials)")
    connection = ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionError", "ClientConnectorError",
                  "ServerDisconnectedError", "ReadTimeoutError")
    if name in connection or any(k in text for k in ("Could not connect", "Cannot connect", "Connect call failed")) \
            or isinstance(exc, ConnectionError | TimeoutError):
        return EnvironmentUnavailable(f"{u}: {what}: the storage endpoint cannot be reached (check AWS_ENDPOINT_URL "
                                      "or storage.options.endpoint_url and the network)")
    if isinstance(exc, OSError) and not isinstance(exc, FileNotFoundError):
        return EnvironmentUnavailable(f"{u}: {what}: storage error ({name})")
    return None


@contextmanager
def guard(url: str | os.PathLike, what: str) -> Iterator[None]:
    """Translate storage failures on a URL inside the block (:func:`translate`); local paths
    and cpc's own errors pass through unchanged."""
    if not is_remote(url):
        yield
        return
    try:
        yield
    except (UsageError, EnvironmentUnavailable):
        raise
    except Exception as e:  # noqa: BLE001 - sorted by translate(), re-raised when not ours
        mine = translate(e, str(url), what)
        if mine is None:
            raise
        raise mine from None


def check_bucket(url: str, key: str) -> None:
    """Fail early (exit 3) when the bucket of ``url`` is missing, refused or unreachable."""
    if not is_remote(url):
        return
    fs, p = _fs(url)
    bucket = p.split("/", 1)[0]
    with guard(url, f"{key}: checking the bucket"):
        try:
            fs.ls(bucket, detail=False)
        except FileNotFoundError:
            raise EnvironmentUnavailable(f"{clip(url)}: {key}: bucket {_bucket(url)} does not exist (or is not "
                                         "visible with these credentials)") from None


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------


def _fs(url: str) -> tuple[Any, str]:
    """The fsspec file system and path of a URL (its instances are cached by fsspec)."""
    import fsspec

    s = scheme(url)
    if s is not None and s not in SCHEMES:
        raise UsageError(f"unknown URL scheme '{clip(s, 20)}://' in {clip(url)}")
    try:
        return fsspec.core.url_to_fs(str(url))
    except ImportError as e:
        raise translate(e, str(url), "opening") from None


def exists(p: str | os.PathLike) -> bool:
    """Whether a file or folder exists (a local path, a ``file://`` URL or an object URL)."""
    if not is_remote(p):
        return os.path.exists(local_path(p))
    fs, q = _fs(str(p))
    with guard(p, "checking"):
        return fs.exists(q)


def read_bytes(p: str | os.PathLike) -> bytes:
    """The whole content of a file."""
    if not is_remote(p):
        return Path(local_path(p)).read_bytes()
    fs, q = _fs(str(p))
    with guard(p, "reading"):
        return fs.cat_file(q)


def write_bytes(p: str | os.PathLike, data: bytes) -> None:
    """Write (replace) a file; local folders are created, object stores have none."""
    if not is_remote(p):
        lp = Path(local_path(p))
        lp.parent.mkdir(parents=True, exist_ok=True)
        lp.write_bytes(data)
        return
    fs, q = _fs(str(p))
    with guard(p, "writing"):
        fs.pipe_file(q, data)


@contextmanager
def open_file(p: str | os.PathLike, mode: str = "rb", **kwargs: Any) -> Iterator[IO]:
    """``open`` for a local path or a URL."""
    if not is_remote(p):
        with open(local_path(p), mode, **kwargs) as fh:
            yield fh
        return
    fs, q = _fs(str(p))
    with guard(p, "opening"), fs.open(q, mode, **kwargs) as fh:
        yield fh


def pandas_options(p: str | os.PathLike) -> dict[str, Any]:
    """Keyword arguments that make pandas open ``p`` through fsspec.

    pandas hands an ``s3://`` string given to ``read_parquet``/``to_parquet`` without
    ``storage_options`` to pyarrow's own S3 client, which ignores ``storage.options`` (fsspec's
    defaults). An explicit, empty ``storage_options`` sends it through fsspec, which applies
    them. Local paths: nothing (pandas refuses storage options there).
    """
    return {"storage_options": {}} if is_remote(str(p)) else {}


def buffer(p: str | os.PathLike) -> str | io.BytesIO:
    """What a reader (pyogrio, geopandas, pandas) should be given for ``p``: the local path
    itself, or the object's bytes in memory (read through fsspec, so with the configured
    credentials and endpoint, never through GDAL's own network drivers)."""
    if not is_remote(p):
        return local_path(p)
    return io.BytesIO(read_bytes(p))


class RemotePath:
    """The subset of :class:`pathlib.Path` the jobs use, on an object-storage URL.

    ``os.fspath`` gives the URL, which pandas, xarray and zarr open through fsspec (with the
    options of :func:`configure`). Object stores have no folders: :meth:`mkdir` does nothing.
    """

    def __init__(self, url: str):
        self._url = str(url).rstrip("/")

    def __str__(self) -> str:
        return self._url

    def __repr__(self) -> str:
        return f"RemotePath({self._url!r})"

    def __fspath__(self) -> str:
        return self._url

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemotePath) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    def __truediv__(self, part: str | os.PathLike) -> RemotePath:
        return RemotePath(posixpath.join(self._url, str(part)))

    def joinpath(self, *parts: str) -> RemotePath:
        return RemotePath(posixpath.join(self._url, *map(str, parts)))

    @property
    def name(self) -> str:
        return posixpath.basename(self._url)

    @property
    def suffix(self) -> str:
        return posixpath.splitext(self.name)[1]

    @property
    def stem(self) -> str:
        return posixpath.splitext(self.name)[0]

    @property
    def parent(self) -> RemotePath:
        return RemotePath(posixpath.dirname(self._url))

    def with_suffix(self, suffix: str) -> RemotePath:
        return RemotePath(posixpath.splitext(self._url)[0] + suffix)

    def with_name(self, name: str) -> RemotePath:
        return self.parent / name

    def resolve(self) -> RemotePath:
        return self

    def exists(self) -> bool:
        return exists(self._url)

    def is_file(self) -> bool:
        fs, q = _fs(self._url)
        with guard(self._url, "checking"):
            return fs.isfile(q)

    def is_dir(self) -> bool:
        fs, q = _fs(self._url)
        with guard(self._url, "checking"):
            return fs.isdir(q)

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        # object stores have no folders: a key's prefix exists once something is written
        # under it (s3fs's makedirs would even create a missing bucket)
        return None

    def read_bytes(self) -> bytes:
        return read_bytes(self._url)

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return self.read_bytes().decode(encoding, errors)

    def write_bytes(self, data: bytes) -> int:
        write_bytes(self._url, data)
        return len(data)

    def write_text(self, text: str, encoding: str = "utf-8", errors: str = "strict", newline: str | None = None) -> int:
        data = text.encode(encoding, errors)
        write_bytes(self._url, data)
        return len(text)

    def open(self, mode: str = "r", **kwargs: Any):
        fs, q = _fs(self._url)
        return fs.open(q, mode, **kwargs)

    def unlink(self, missing_ok: bool = False) -> None:
        fs, q = _fs(self._url)
        with guard(self._url, "deleting"):
            try:
                fs.rm_file(q)
            except FileNotFoundError:
                if not missing_ok:
                    raise

    def iterdir(self) -> Iterator[RemotePath]:
        fs, q = _fs(self._url)
        with guard(self._url, "listing"):
            names = fs.ls(q, detail=False)
        proto = scheme(self._url)
        for n in names:
            yield RemotePath(f"{proto}://{n}")

    def glob(self, pattern: str) -> Iterator[RemotePath]:
        fs, q = _fs(self._url)
        proto = scheme(self._url)
        with guard(self._url, "listing"):
            names = fs.glob(posixpath.join(q, pattern))
        for n in names:
            yield RemotePath(f"{proto}://{n}")


def path(p: str | os.PathLike) -> Path | RemotePath:
    """A folder or file as :class:`pathlib.Path` (local, ``file://`` removed) or :class:`RemotePath`."""
    if isinstance(p, Path | RemotePath):
        return p
    if is_remote(p):
        return RemotePath(str(p))
    return Path(local_path(p))
