"""oslo.messaging peers for the interop tests, run the way blocking code must be run.

oslo.messaging is blocking: its servers and listeners run on their own threads (the
"threading" executor) and its client calls run in ``asyncio.to_thread``, so the relaybus
side keeps the test's event loop.
"""

from __future__ import annotations

import asyncio
import importlib
import warnings
from typing import Any

with warnings.catch_warnings():
    # oslo.messaging's import chain warns about eventlet and its own deprecated modules.
    warnings.simplefilter("ignore")
    import oslo_messaging as om
    from oslo_config import cfg
    from oslo_context.context import RequestContext

BROKER = ("RabbitMQ", "127.0.0.1", 5672)
WAIT = 10.0

# (module, options list, group): what oslo_messaging.conffixture.ConfFixture registers
_OSLO_OPTIONS = [
    ("oslo_messaging._drivers.impl_rabbit", "rabbit_opts", "oslo_messaging_rabbit"),
    ("oslo_messaging._drivers.amqp", "amqp_opts", "oslo_messaging_rabbit"),
    ("oslo_messaging.rpc.client", "_client_opts", None),
    ("oslo_messaging.transport", "_transport_opts", None),
    ("oslo_messaging.rpc.dispatcher", "_dispatcher_opts", None),
    ("oslo_messaging.notify.notifier", "_notifier_opts", "oslo_messaging_notifications"),
    ("oslo_messaging._metrics.client", "oslo_messaging_metrics", "oslo_messaging_metrics"),
    ("oslo_messaging._tracing.client", "oslo_messaging_tracing", "oslo_messaging_tracing"),
]

__all__ = ["BROKER", "WAIT", "Oslo", "RequestContext", "om", "wait_for_thread_event"]


class Oslo:
    """oslo.messaging objects on one URL, stopped and cleaned up together."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conf = cfg.ConfigOpts()
        self.conf([], project="relaybus-interop", default_config_files=[],
                  default_config_dirs=[])
        # oslo registers some options (tracing, metrics) on the global CONF only; register
        # them all on this private ConfigOpts, as oslo's own ConfFixture does.
        for module, name, group in _OSLO_OPTIONS:
            self.conf.register_opts(getattr(importlib.import_module(module), name), group=group)
        self._transports: list[Any] = []
        self._servers: list[Any] = []

    def _transport(self, notifications: bool = False, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if notifications:
                transport = om.get_notification_transport(self.conf, url=self.url)
            else:
                transport = om.get_rpc_transport(self.conf, url=self.url, **kwargs)
        self._transports.append(transport)
        return transport

    async def rpc_server(self, topic: str, server: str, endpoints: list[object]) -> Any:
        """A started oslo RPC server (its queues exist when this returns)."""
        rpc_server = om.get_rpc_server(self._transport(), om.Target(topic=topic, server=server),
                                       endpoints)
        await asyncio.to_thread(rpc_server.start)
        self._servers.append(rpc_server)
        return rpc_server

    def rpc_client(self, topic: str, *, allowed_remote_exmods: list[str] | None = None,
                   **kwargs: Any) -> Any:
        transport = self._transport(allowed_remote_exmods=allowed_remote_exmods or [])
        return om.get_rpc_client(transport, om.Target(topic=topic), timeout=WAIT, **kwargs)

    def notifier(self, topic: str, publisher_id: str) -> Any:
        return om.Notifier(self._transport(notifications=True), publisher_id=publisher_id,
                           driver="messagingv2", topics=[topic])

    async def listener(self, topic: str, endpoints: list[object], pool: str | None = None) -> Any:
        listener = om.get_notification_listener(
            self._transport(notifications=True), [om.Target(topic=topic)], endpoints,
            pool=pool)
        await asyncio.to_thread(listener.start)
        self._servers.append(listener)
        return listener

    def close(self) -> None:
        for server in self._servers:
            server.stop()
        for server in self._servers:
            server.wait()
        for transport in self._transports:
            transport.cleanup()


async def wait_for_thread_event(event: Any, timeout: float = WAIT) -> None:
    """Await a ``threading.Event`` set by an oslo thread."""
    assert await asyncio.to_thread(event.wait, timeout), "the oslo side never got there"
