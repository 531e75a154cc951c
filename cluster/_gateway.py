"""The ``gateway`` kind of :func:`cluster.get_client`: a new cluster from Dask Gateway.

dask-gateway is imported lazily so that only gateway users need it installed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dask.config
from distributed import Client

if TYPE_CHECKING:
    from cluster import ClusterSpec

__all__ = ["gateway_client", "gateway_auth", "close_gateway"]

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
    # None values make dask-gateway read gateway.address / proxy-address / auth.* itself.
    gateway = Gateway(
        address=spec.address, proxy_address=spec.proxy_address, auth=gateway_auth(spec)
    )
    try:
        # submit + connect rather than new_cluster: we learn the name before waiting
        # for the scheduler, so an error or Ctrl-C during startup can still stop it.
        name = gateway.submit(**dict(spec.cluster_options or {}))
        cluster = None
        try:
            cluster = gateway.connect(name, shutdown_on_close=True)
            _scale(cluster, spec)
            with cluster.get_client(set_as_default=True) as client:
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
