"""The ``gateway`` kind of :func:`cluster.get_client`: a new cluster from Dask Gateway.

dask-gateway is imported lazily so that only gateway users need it installed.
"""

from __future__ import annotations

import logging
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import dask.config

from cpc_core.errors import EnvironmentUnavailable, UsageError, clip

if TYPE_CHECKING:
    from distributed import Client

    from cluster import ClusterSpec

__all__ = ["gateway_client", "gateway_auth", "close_gateway", "public_address"]

logger = logging.getLogger(__name__)


@contextmanager
def gateway_client(spec: ClusterSpec) -> Iterator[Client]:
    """Start a gateway cluster for ``spec``, yield its client, always stop it."""
    from dask_gateway import Gateway

    if spec.address is None and dask.config.get("gateway.address", None) is None:
        raise ValueError(
            "kind='gateway' needs an address: set ClusterSpec.address, dask config "
            "'gateway.address' or the environment variable DASK_GATEWAY__ADDRESS"
        )
    from dask_gateway.utils import format_template

    from cluster._workers import DEFAULT_CONNECT_TIMEOUT

    timeout = spec.connect_timeout or DEFAULT_CONNECT_TIMEOUT
    address = spec.address or format_template(str(dask.config.get("gateway.address")))
    where = f"Dask Gateway {public_address(address)}"
    if not _is_url(address, ("http", "https")):  # from dask config: not checked by ClusterSpec
        raise UsageError(f"dask config gateway.address (DASK_GATEWAY__ADDRESS) must be an http:// or https:// "
                         f"URL with a host (and a port in 1..65535), got {public_address(address)!r}")
    _check_reachable(address, where, timeout)
    # None values make dask-gateway read gateway.address / proxy-address / auth.* itself.
    gateway = Gateway(
        address=spec.address, proxy_address=spec.proxy_address, auth=gateway_auth(spec)
    )
    try:
        # submit + connect rather than new_cluster: we learn the name before waiting
        # for the scheduler, so an error or Ctrl-C during startup can still stop it.
        try:
            name = gateway.submit(**dict(spec.cluster_options or {}))
        except Exception as e:
            raise _opening_error(e, where) from None
        cluster = None
        try:
            try:
                cluster = gateway.connect(name, shutdown_on_close=True)
                _scale(cluster, spec)
                client = cluster.get_client(set_as_default=True)
            except Exception as e:
                raise _opening_error(e, f"{where} (cluster {name}, proxy {public_address(gateway.proxy_address)})") from None
            with client:
                yield client
        finally:
            try:
                if cluster is not None:
                    cluster.close(shutdown=True)
                    close_gateway(cluster.gateway)
            finally:
                # Idempotent on the server; also covers a failed or interrupted connect(),
                # and cluster.close() only logs a failed stop.
                gateway.stop_cluster(name)
                logger.info("Dask Gateway cluster %s stopped", name)
    finally:
        close_gateway(gateway)


def _is_url(value: str, schemes: tuple[str, ...]) -> bool:
    """Whether ``value`` is a URL of one of ``schemes`` with a host and a valid (or no) port."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018  (raises ValueError when out of range or not a number)
    except ValueError:
        return False
    return parts.scheme in schemes and bool(parts.hostname)


def public_address(address: str | None) -> str:
    """``address`` fit for a message: any ``user:password@`` part removed, clipped.

    Examples
    --------
    >>> public_address("https://me:s3cret@gw.example.org:8000/")
    'https://gw.example.org:8000/'
    """
    if not address:
        return "(no address)"
    # textual, not urlsplit: it refuses some malformed URLs that may still carry a password
    return clip(re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)?[^/@]*@", r"\1", str(address)))


def _check_reachable(address: str, where: str, timeout: float) -> None:
    """Ask the gateway's health endpoint, within ``timeout`` seconds.

    dask-gateway's own HTTP session has no connect timeout (a black-holed address hangs for
    minutes), and its connection errors carry no hint of what to check. Any HTTP answer,
    even an error status, means the server is there: authentication is checked by the first
    real request.
    """
    url = address.rstrip("/") + "/api/health"
    # No HTTP(S)_PROXY from the environment: dask-gateway's aiohttp session ignores it too
    # (trust_env is off), so the check takes the route the real requests will take.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return
    except ValueError as e:  # urllib's own parse errors: a malformed address
        raise UsageError(f"cluster.address: not a usable gateway URL: {public_address(address)} ({e})") from None
    except (OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise EnvironmentUnavailable(
            f"cannot reach {where} within {timeout:g} s ({clip(reason, 120)}); check the address "
            "(cluster.address or DASK_GATEWAY__ADDRESS) and that the gateway is running"
        ) from None


def _opening_error(e: Exception, where: str) -> Exception:
    """The cpc error for a failure while a gateway cluster is being created or joined."""
    import aiohttp
    from dask_gateway.client import GatewayClusterError, GatewayServerError

    status = getattr(e, "status", None)
    if isinstance(e, aiohttp.ClientResponseError) and status in (401, 403):
        # aiohttp's message is "401, message='Unauthorized', url=..."; no header, no secret
        return EnvironmentUnavailable(
            f"{where} refused the credentials (HTTP {status}): check cluster.username / "
            "cluster.password or DASK_GATEWAY__AUTH__KWARGS__USERNAME / __PASSWORD"
        )
    if isinstance(e, aiohttp.ClientResponseError):  # its text repeats the URL: status only
        return EnvironmentUnavailable(f"{where} answered HTTP {status} ({clip(e.message, 80)})")
    if isinstance(e, ValueError) and not isinstance(e, EnvironmentUnavailable):
        # dask-gateway maps HTTP 404 / 422 (e.g. an unknown cluster option) to ValueError
        return UsageError(f"{where} rejected the cluster request: {clip(e)} (check cluster.cluster_options)")
    if isinstance(e, (aiohttp.ClientError, GatewayClusterError, GatewayServerError, OSError, TimeoutError)):
        return EnvironmentUnavailable(f"{where}: {type(e).__name__}: {clip(e, 160)}")
    return e


def gateway_auth(spec: ClusterSpec) -> Any:
    """Return the ``auth`` argument for ``dask_gateway.Gateway``.

    ``None`` (dask-gateway reads ``gateway.auth.type`` / ``.kwargs``), the auth
    name, or a ``BasicAuth`` when the spec carries credentials; whichever of
    username/password the spec leaves unset still comes from dask config.
    """
    if spec.username is None and spec.password is None:
        return spec.auth
    from dask_gateway import BasicAuth
    from dask_gateway.utils import format_template

    configured = dask.config.get("gateway.auth.kwargs", None) or {}

    def pick(name: str) -> str | None:
        value = getattr(spec, name)
        if value is None and configured.get(name) is not None:
            # str(): dask parses env values as Python literals, so a digits-only
            # password arrives as an int; format_template expands "{ENV_VAR}"
            # templates as dask-gateway itself does.
            value = format_template(str(configured[name]))
        # the run config's password is a SecretStr: unwrapped here, for BasicAuth only
        return value.get_secret_value() if hasattr(value, "get_secret_value") else value

    return BasicAuth(username=pick("username"), password=pick("password"))


def close_gateway(gateway: Any) -> None:
    """Close a ``dask_gateway.Gateway`` for good, so that its ``__del__`` stays quiet.

    With distributed >= 2023.6 ``Gateway.close()`` is not idempotent: a second
    call (``Gateway.__del__`` makes one at some later garbage collection) raises
    because ``LoopRunner.loop`` refuses a stopped loop. An exception inside
    ``__del__`` is not just noise: when the collection happens inside
    ``compile()`` it can fail that unrelated compile on CPython 3.11 ("AST
    constructor recursion depth mismatch"). ``Gateway.__del__`` skips objects
    without ``_loop_runner``, so drop it once closed. Safe on a closed gateway.
    """
    try:
        gateway.close()
    except RuntimeError:
        # Already closed (its loop is stopped): the very non-idempotency above.
        pass
    finally:
        gateway.__dict__.pop("_loop_runner", None)


def _scale(cluster: Any, spec: ClusterSpec) -> None:
    if spec.workers is not None:
        cluster.scale(spec.workers)
        size = f"{spec.workers} workers"
    else:
        # None bounds are filled in by the gateway's own limits.
        cluster.adapt(minimum=spec.adapt_minimum, maximum=spec.adapt_maximum)
        size = f"adaptive {spec.adapt_minimum or 0}..{spec.adapt_maximum or 'gateway max'} workers"
    logger.info(
        "Dask cluster: gateway %s, cluster %s, %s", cluster.gateway.address, cluster.name, size
    )
