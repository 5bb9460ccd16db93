"""``get_rpc_transport``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relaybus.oslo_messaging.transport import RPCTransport, TransportURL, _get_transport

__all__ = ["get_rpc_transport"]


def get_rpc_transport(conf: Any, url: str | TransportURL | None = None,
                      allowed_remote_exmods: Sequence[str] | None = None) -> RPCTransport:
    """The transport for RPC: ``url``, else ``[DEFAULT] transport_url``.

    Args:
        allowed_remote_exmods: modules whose exceptions callers rebuild as themselves.

    Raises:
        InvalidTransportURL, DriverLoadFailure.
    """
    transport = _get_transport(conf, url, allowed_remote_exmods, RPCTransport)
    assert isinstance(transport, RPCTransport)
    return transport
