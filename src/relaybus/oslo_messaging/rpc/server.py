"""``get_rpc_server`` and the decorators endpoints use."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import relaybus
from relaybus.oslo_messaging.exceptions import InvalidTarget
from relaybus.oslo_messaging.rpc.dispatcher import ExpectedException, RPCDispatcher
from relaybus.oslo_messaging.serializer import bridge
from relaybus.oslo_messaging.server import MessageHandlingServer
from relaybus.oslo_messaging.target import Target, to_relaybus
from relaybus.sync import SyncConsumer

__all__ = ["RPCServer", "expected_exceptions", "expose", "get_rpc_server"]

F = TypeVar("F", bound=Callable[..., Any])


class RPCServer(MessageHandlingServer):
    """Serves the calls and casts sent to ``target`` (topic and server) with a dispatcher.

    Raises:
        InvalidTarget: the target lacks a topic or a server (at :meth:`start`).
    """

    def __init__(self, transport: Any, target: Target, dispatcher: RPCDispatcher,
                 executor: str | None = None) -> None:
        super().__init__(transport, executor)
        self.target = target
        self.dispatcher = dispatcher

    def _listen_target(self) -> Any:
        return self.target

    def _make_consumer(self, pool_size: int) -> SyncConsumer:
        if not (self.target.topic and self.target.server):
            raise InvalidTarget("A server's target must have topic and server names "
                                "specified", self.target)
        try:
            target = to_relaybus(self.target, fanout=False)
        except relaybus.InvalidTarget as exc:
            raise InvalidTarget(str(exc), self.target) from exc
        return self.transport.bus.rpc_server(
            target, self.dispatcher.relaybus_endpoints(),
            access_policy=self.dispatcher.relaybus_policy(),
            serializer=bridge(self.dispatcher.serializer),
            threads=pool_size, max_concurrency=pool_size, drain_timeout=None)


def get_rpc_server(transport: Any, target: Target, endpoints: Sequence[Any],
                   executor: str | None = None, serializer: Any = None,
                   access_policy: Any = None,
                   server_cls: type[RPCServer] = RPCServer) -> RPCServer:
    """An RPC server (not started) for ``target`` with ``endpoints``.

    Args:
        executor: ``threading`` (default); ``eventlet`` fails at once in an
            eventlet-monkey-patched process (relaybus runs on native threads).
        access_policy: a subclass of ``RPCAccessPolicyBase`` (the class itself).

    Raises:
        TypeError: an endpoint whose ``target`` is not a Target, or a bad access policy.
        ExecutorLoadFailure: an executor that cannot be used.
    """
    ping = bool(getattr(transport.conf, "rpc_ping_enabled", False))
    dispatcher = RPCDispatcher(endpoints, serializer, access_policy, ping=ping)
    return server_cls(transport, target, dispatcher, executor)


def expected_exceptions(*exceptions: type[BaseException]) -> Callable[[F], F]:
    """Mark exceptions an endpoint method raises on purpose: the caller gets them, the
    server does not log them as failures."""

    def outer(func: F) -> F:
        @functools.wraps(func)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except exceptions:
                raise ExpectedException() from None

        return inner  # type: ignore[return-value]

    return outer


def expose(func: F) -> F:
    """Make a method callable under ``ExplicitRPCAccessPolicy``."""
    func.exposed = True  # type: ignore[attr-defined]
    return func
