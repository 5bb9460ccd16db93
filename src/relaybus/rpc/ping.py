"""The RPC ping: oslo.messaging's ``oslo_rpc_server_ping``, answered ``"pong"``.

oslo.messaging servers answer it when ``[DEFAULT] rpc_ping_enabled`` is on (oslo 12.4+);
relaybus servers when created with ``ping=True`` (``relaybus serve --ping``), and the
oslo.messaging drop-in with oslo's option, through this one implementation. The method
lives in no namespace at version 1.0, as oslo's does, so a caller needs to know nothing
about the server's interfaces: ``relaybus ping TOPIC [--server S]``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from relaybus.rpc.dispatcher import expose

LOG = logging.getLogger(__name__)

PING_METHOD = "oslo_rpc_server_ping"
PONG = "pong"


class PingEndpoint:
    """Answers :data:`PING_METHOD` with :data:`PONG`, on the event loop (no handler thread
    is needed, so a ping says the server consumes and its loop runs). Exposed, so
    ``ExplicitRPCAccessPolicy`` servers answer it too."""

    @expose
    async def oslo_rpc_server_ping(self, ctxt: Any, **kwargs: Any) -> str:
        return PONG


def with_ping(endpoints: Sequence[object], enabled: bool) -> list[object]:
    """``endpoints``, plus a :class:`PingEndpoint` when ``enabled``.

    As oslo.messaging does, an endpoint that declares the reserved method itself is
    warned about, and keeps answering it (no second ping endpoint is added).
    """
    declared = [e for e in endpoints
                if not isinstance(e, PingEndpoint) and getattr(e, PING_METHOD, None)]
    for endpoint in declared:
        LOG.warning("%s is reserved for the RPC ping; endpoint %r declares it",
                    PING_METHOD, endpoint)
    listed = list(endpoints)
    if enabled and not declared and not any(isinstance(e, PingEndpoint) for e in listed):
        listed.append(PingEndpoint())
    elif enabled and declared:
        LOG.warning("the RPC ping is enabled but %s is already declared by an endpoint; "
                    "not adding the ping endpoint", PING_METHOD)
    return listed
