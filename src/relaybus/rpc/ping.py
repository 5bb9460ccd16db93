"""The RPC ping: oslo.messaging's ``oslo_rpc_server_ping``, answered ``"pong"``.

oslo.messaging servers answer it when ``[DEFAULT] rpc_ping_enabled`` is on (oslo 12.4+);
relaybus servers when created with ``ping=True`` (``relaybus serve --ping``), and the
oslo.messaging drop-in with oslo's option, through this one implementation. The method
lives in no namespace at version 1.0, as oslo's does, so a caller needs to know nothing
about the server's interfaces: ``relaybus ping TOPIC [--server S]``.

**Every server of a topic** (:func:`ping_all`, ``relaybus ping TOPIC --all``): no broker
lists a topic's servers, but every server of a topic, oslo.messaging's and relaybus's,
consumes the topic's fanout route and answers any request there that carries a reply
address (oslo's rabbit listener treats every message with ``_msg_id`` and ``_reply_q`` as
a call, whichever queue it came from). So one ping sent fanout is answered by every
server, and the replies that arrive within a window are the topic's servers. The ping
asks relaybus servers to name themselves (the :data:`IDENTIFY` argument): they answer
``{"reply": "pong", "server": ..., "host": ..., "pid": ...}``; oslo.messaging servers
accept and ignore the argument and answer ``"pong"``, unnamed. Servers whose ping is off
answer too, with ``NoSuchMethod``: they are listed as such.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
from collections.abc import Sequence
from typing import Any

from relaybus.message import Request
from relaybus.rpc.dispatcher import expose
from relaybus.rpc.remote_errors import deserialize_exception
from relaybus.target import Target
from relaybus.transport.base import Driver

LOG = logging.getLogger(__name__)

PING_METHOD = "oslo_rpc_server_ping"
PONG = "pong"
#: the ping argument that asks a relaybus server to name itself (oslo's ignore it)
IDENTIFY = "relaybus_identify"

#: seconds :func:`ping_all` waits for answers by default, and at most
DEFAULT_WINDOW = 1.0
MAX_WINDOW = 60.0
#: answers :func:`ping_all` keeps by default, and at most
DEFAULT_LIMIT = 10_000
MAX_LIMIT = 100_000


class PingEndpoint:
    """Answers :data:`PING_METHOD` with :data:`PONG`, on the event loop (no handler thread
    is needed, so a ping says the server consumes and its loop runs). Exposed, so
    ``ExplicitRPCAccessPolicy`` servers answer it too.

    Args:
        server: the server's name, given (with this host's name and the process id) to a
            ping that asks with :data:`IDENTIFY`; None: it answers ``"pong"`` anyway.
    """

    def __init__(self, server: str | None = None) -> None:
        self.server = server

    @expose
    async def oslo_rpc_server_ping(self, ctxt: Any, **kwargs: Any) -> str | dict[str, Any]:
        if kwargs.get(IDENTIFY) is True and self.server is not None:
            return {"reply": PONG, "server": self.server, "host": socket.gethostname(),
                    "pid": os.getpid()}
        return PONG


def with_ping(endpoints: Sequence[object], enabled: bool,
              server: str | None = None) -> list[object]:
    """``endpoints``, plus a :class:`PingEndpoint` when ``enabled``.

    As oslo.messaging does, an endpoint that declares the reserved method itself is
    warned about, and keeps answering it (no second ping endpoint is added). With
    ``server``, the ping endpoint (added, or one already listed without a name, as the
    drop-in's) answers with that name.
    """
    declared = [e for e in endpoints
                if not isinstance(e, PingEndpoint) and getattr(e, PING_METHOD, None)]
    for endpoint in declared:
        LOG.warning("%s is reserved for the RPC ping; endpoint %r declares it",
                    PING_METHOD, endpoint)
    listed = [PingEndpoint(server) if isinstance(e, PingEndpoint) and e.server is None
              and server is not None else e for e in endpoints]
    if enabled and not declared and not any(isinstance(e, PingEndpoint) for e in listed):
        listed.append(PingEndpoint(server))
    elif enabled and declared:
        LOG.warning("the RPC ping is enabled but %s is already declared by an endpoint; "
                    "not adding the ping endpoint", PING_METHOD)
    return listed


@dataclasses.dataclass(frozen=True)
class Pong:
    """One answer to :func:`ping_all`.

    Attributes:
        elapsed: seconds from the send to the answer's arrival.
        reply: what the server answered (None when it answered a failure).
        error: the failure it answered (``NoSuchMethod``: its ping is off), or None.
        server, host, pid: the name, host and process a relaybus server gave; None for
            a server that names nobody (oslo.messaging's answers ``"pong"`` only).
    """

    elapsed: float
    reply: Any = None
    error: BaseException | None = None
    server: str | None = None
    host: str | None = None
    pid: int | None = None

    @property
    def ok(self) -> bool:
        """Whether it answered the ping as a ping is answered (pong)."""
        return self.error is None and (self.reply == PONG or (
            isinstance(self.reply, dict) and self.reply.get("reply") == PONG))


def _pong(elapsed: float, result: Any, failure: Any) -> Pong:
    if failure is not None:
        return Pong(elapsed, error=deserialize_exception(failure))
    if isinstance(result, dict) and result.get("reply") == PONG:
        server, host, pid = result.get("server"), result.get("host"), result.get("pid")
        return Pong(elapsed, result, server=server if isinstance(server, str) else None,
                    host=host if isinstance(host, str) else None,
                    pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None)
    return Pong(elapsed, result)


def check_window(window: float, limit: int) -> None:
    """Raise ValueError unless ``0 < window <= MAX_WINDOW`` and ``1 <= limit <= MAX_LIMIT``."""
    if isinstance(window, bool) or not isinstance(window, (int, float)) \
            or not 0 < window <= MAX_WINDOW:
        raise ValueError(f"the window must be more than 0 and at most {MAX_WINDOW:g} "
                         f"seconds, got {window!r}")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"the limit must be a whole number from 1 to {MAX_LIMIT}, "
                         f"got {limit!r}")


async def ping_all(driver: Driver, topic: str, *, exchange: str | None = None,
                   window: float = DEFAULT_WINDOW, limit: int = DEFAULT_LIMIT) -> list[Pong]:
    """Ping every server of ``topic`` at once; their answers within ``window`` seconds.

    One ping goes fanout (see the module docstring); every answer that arrives within the
    window is returned, in order of arrival, each server once, at most ``limit`` (then it
    returns at once: more servers may have answered). An empty list: servers listen (the
    broker took the ping) but none answered in time.

    Raises:
        MessageUndeliverable: nobody listens on the topic.
        ValueError: a window or limit out of bounds (see :func:`check_window`).
    """
    check_window(window, limit)
    request = Request(method=PING_METHOD, args={IDENTIFY: True}, context={},
                      version="1.0")
    target = Target(exchange=exchange, topic=topic, fanout=True)
    answers = await driver.gather(target, request, window=window, limit=limit)
    # a reply with neither result nor failure is the closing message older oslo.messaging
    # servers (before 5.0) sent after their answer; a ping is never answered None
    return [_pong(a.elapsed, a.reply.result, a.reply.failure) for a in answers
            if a.reply.result is not None or a.reply.failure is not None]

