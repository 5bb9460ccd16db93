"""The bus: one connection to a transport, and the factory of clients, servers and listeners."""

from __future__ import annotations

import os
import weakref
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from types import TracebackType
from typing import Any

from relaybus import telemetry
from relaybus.errors import InvalidTransportURL
from relaybus.lifecycle import Consuming
from relaybus.middleware import Middleware, Pipeline
from relaybus.notify.listener import BatchNotificationListener, NotificationListener
from relaybus.notify.notifier import Notifier
from relaybus.rpc.client import RPCClient
from relaybus.rpc.dispatcher import RPCAccessPolicy
from relaybus.rpc.server import RPCServer
from relaybus.serializer import Serializer
from relaybus.target import Target
from relaybus.transport.base import (
    DEFAULT_CONTROL_EXCHANGE,
    DEFAULT_MAX_MESSAGE_SIZE,
    Driver,
    Subscription,
)
from relaybus.transport.registry import driver_class_for
from relaybus.url import TransportURL, parse_url

DEFAULT_URL = "memory://"
URL_ENV = "RELAYBUS_URL"


def _bus_options(url: str, options: dict[str, Any]) -> tuple[str, int]:
    exchange = options.pop("control_exchange", DEFAULT_CONTROL_EXCHANGE)
    if not isinstance(exchange, str) or not exchange or any(c.isspace() for c in exchange):
        raise InvalidTransportURL(url, f"control_exchange must be a name, got {exchange!r}")
    size = options.pop("max_message_size", DEFAULT_MAX_MESSAGE_SIZE)
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise InvalidTransportURL(url, f"max_message_size must be a whole number of bytes, "
                                  f"got {size!r}") from None
    if size < 1:
        raise InvalidTransportURL(url, "max_message_size must be at least 1 byte")
    return exchange, size


def make_driver(url: str | None = None, **options: Any) -> Driver:
    """Build (without connecting) the driver a URL names.

    ``url`` None reads ``$RELAYBUS_URL``, else ``memory://``. Options come from the URL's
    query and from ``options`` (which win).
    """
    text = url if url is not None else os.environ.get(URL_ENV) or DEFAULT_URL
    parsed: TransportURL = parse_url(text)
    merged: dict[str, Any] = {**parsed.query, **options}
    control_exchange, max_message_size = _bus_options(text, merged)
    driver_class = driver_class_for(parsed.scheme, parsed.masked())
    return driver_class(parsed, control_exchange=control_exchange,
                        max_message_size=max_message_size, **merged)


async def connect(url: str | None = None, *, middleware: Sequence[Middleware] = (),
                  **options: Any) -> Bus:
    """Connect to the transport a URL names and return a bus.

    Args:
        url: e.g. ``memory://``, ``rabbit://user:pass@host:5672/vhost``; None reads
            ``$RELAYBUS_URL``, else ``memory://``.
        middleware: code around sending and handling every request and notification of
            this bus, the first outermost (see :mod:`relaybus.middleware`).
        options: ``control_exchange`` (default ``openstack``), ``max_message_size``
            (bytes, default 8 MiB), and the driver's own options.

    Raises:
        InvalidTransportURL: a malformed URL, an unknown scheme (the message lists the
            installed ones), or an unknown option.
        ConnectionFailure, AuthenticationFailure: the broker cannot be reached or refuses.
    """
    pipeline = Pipeline(middleware, builtins=telemetry.builtin_middleware)  # checked first
    driver = make_driver(url, **options)
    await driver.connect()
    return Bus(driver, pipeline=pipeline)


class Bus:
    """A connected transport and everything created from it.

    Closing the bus stops (and drains) the servers and listeners it created, then closes
    the transport. A bus works with any driver object, so tests may pass their own.

    Args:
        driver: the transport.
        middleware: as for :func:`connect` (ignored when ``pipeline`` is given).
        pipeline: the middleware already composed, telemetry included.
    """

    def __init__(self, driver: Driver, *, middleware: Sequence[Middleware] = (),
                 pipeline: Pipeline | None = None) -> None:
        self.driver = driver
        self.pipeline = pipeline or Pipeline(middleware, builtins=telemetry.builtin_middleware)
        self._consumers: weakref.WeakSet[Consuming] = weakref.WeakSet()
        self._closed = False

    @property
    def url(self) -> TransportURL:
        return self.driver.url

    @property
    def closed(self) -> bool:
        return self._closed

    def connection_problem(self) -> str | None:
        """Why the transport cannot carry messages right now (a lost connection being
        re-established, a transport that gave up or is closed), or None when it can."""
        if self._closed:
            return "the bus is closed"
        return self.driver.connection_problem()

    def rpc_client(self, target: Target, timeout: float | None = None,
                   version_cap: str | None = None, serializer: Serializer | None = None, *,
                   allowed_remote_exmods: Collection[str] = (),
                   call_monitor_timeout: float | None = None) -> RPCClient:
        """A client for ``target``; see :class:`~relaybus.rpc.RPCClient`."""
        return RPCClient(self.driver, target, timeout=timeout, version_cap=version_cap,
                         serializer=serializer, allowed_remote_exmods=allowed_remote_exmods,
                         call_monitor_timeout=call_monitor_timeout, pipeline=self.pipeline)

    def rpc_server(self, target: Target, endpoints: Sequence[object],
                   access_policy: RPCAccessPolicy | None = None,
                   serializer: Serializer | None = None, **options: Any) -> RPCServer:
        """A server for ``target`` (not started); see :class:`~relaybus.rpc.RPCServer`."""
        server = RPCServer(self.driver, target, endpoints, access_policy=access_policy,
                           serializer=serializer, pipeline=self.pipeline, **options)
        self._consumers.add(server)
        return server

    def notifier(self, publisher_id: str | None = None,
                 topics: Sequence[str] = ("notifications",),
                 driver: str | Sequence[str] = "messaging",
                 serializer: Serializer | None = None, retry: int | None = None,
                 emits: Mapping[str, Any] | None = None) -> Notifier:
        """A notifier; see :class:`~relaybus.notify.Notifier`."""
        return Notifier(self.driver, publisher_id, topics=topics, notifier_driver=driver,
                        serializer=serializer, retry=retry, emits=emits,
                        pipeline=self.pipeline)

    def notification_listener(self, targets: Sequence[Target], endpoints: Sequence[object],
                              pool: str | None = None, **options: Any) -> NotificationListener:
        """A listener (not started); see :class:`~relaybus.notify.NotificationListener`."""
        listener = NotificationListener(self.driver, targets, endpoints, pool=pool,
                                        pipeline=self.pipeline, **options)
        self._consumers.add(listener)
        return listener

    def batch_notification_listener(self, targets: Sequence[Target],
                                    endpoints: Sequence[object], batch_size: int,
                                    batch_timeout: float | None = None,
                                    pool: str | None = None,
                                    **options: Any) -> BatchNotificationListener:
        """A batching listener; see :class:`~relaybus.notify.BatchNotificationListener`."""
        listener = BatchNotificationListener(self.driver, targets, endpoints,
                                             batch_size=batch_size,
                                             batch_timeout=batch_timeout, pool=pool,
                                             **options)
        self._consumers.add(listener)
        return listener

    async def tap(self, target: Target,
                  handler: Callable[[str, str, dict[str, Any]], Awaitable[None]]) -> Subscription:
        """Watch the requests and notifications of a topic without taking them.

        ``handler(exchange, routing_key, message)`` gets each decoded message object; stop
        watching with ``await subscription.stop()``.

        Raises:
            TransportError: the transport cannot tap.
        """
        return await self.driver.tap(target, handler)

    async def close(self) -> None:
        """Stop and drain servers and listeners, then close the transport; idempotent."""
        if self._closed:
            return
        self._closed = True
        consumers = list(self._consumers)
        for consumer in consumers:
            await consumer.stop()
        for consumer in consumers:
            await consumer.wait()
        try:
            await self.driver.close()
        finally:
            await self.driver.tasks.close()  # whatever the driver's own close left running

    async def __aenter__(self) -> Bus:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()
