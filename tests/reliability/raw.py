"""Publishing straight to a broker, past relaybus's own checks, as a hostile peer would."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from relaybus.url import parse_url

#: publish(kind, name, body, reply_to): kind "rpc" (name: a topic) or "notify" (name: a
#: topic; priority info)
Publish = Callable[[str, str, bytes, "str | None"], Awaitable[None]]


class RawPeer:
    """A plain client of the broker behind ``url`` (none for memory://)."""

    def __init__(self, transport: str, url: str) -> None:
        self.transport, self.url = transport, url
        self._client: Any = None
        self._channel: Any = None

    async def __aenter__(self) -> RawPeer:
        host = parse_url(self.url).hosts[0]
        if self.transport == "rabbit":
            import aiormq

            self._client = await aiormq.connect(
                f"amqp://{host.username}:{host.password}@{host.hostname}:{host.port or 5672}/")
            self._channel = await self._client.channel()
        elif self.transport == "nats":
            import nats

            self._client = await nats.connect(f"nats://{host.hostname}:{host.port or 4222}",
                                              allow_reconnect=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.close()

    @property
    def client(self) -> Any:
        """The underlying nats-py or aiormq connection."""
        return self._client

    async def publish(self, kind: str, topic: str, body: bytes,
                      reply_to: str | None = None) -> None:
        """Publish ``body`` as a request (``kind="rpc"``) or info notification to ``topic``."""
        key = topic if kind == "rpc" else f"{topic}.info"
        if self.transport == "memory":
            from relaybus.drivers.memory.broker import broker_named

            broker_named(parse_url(self.url).hosts[0].hostname or "default").publish(
                "openstack", key, body)
        elif self.transport == "rabbit":
            await self._channel.basic_publish(body, exchange="openstack", routing_key=key)
        else:
            subject = (f"relaybus.openstack.rpc.{topic}" if kind == "rpc"
                       else f"relaybus.openstack.notify.{topic}.info")
            await self._client.publish(subject, body, reply=reply_to or "")
            await self._client.flush()
