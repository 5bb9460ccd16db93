"""The MQTT side: every event published to a broker, QoS 1, on its hierarchical topic.

The bridge has a bounded queue like every client: a slow or absent broker makes it drop
its oldest events (counted in /stats), never slows the hub. It reconnects with capped,
jittered backoff and republishes what was in flight (QoS 1 is at-least-once; the event id
tells duplicates apart). Refused credentials end the gateway with a clear error instead of
a retry loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

import aiomqtt

from relaybus.gateway.events import Event

LOG = logging.getLogger(__name__)

BACKOFF_START = 0.1
BACKOFF_CAP = 5.0
IN_FLIGHT = 64


class MqttRefused(ConnectionError):
    """The broker refused the gateway's credentials (or it is not allowed to connect)."""


@dataclass(frozen=True)
class MqttURL:
    """``mqtt://[user:password@]host[:port]`` or ``mqtts://...`` (TLS, port 8883)."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, text: str) -> MqttURL:
        """Raises ValueError for anything but an mqtt:// or mqtts:// URL with a host."""
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"expected mqtt://[user:password@]host[:port], got {text!r}")
        try:
            port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        except ValueError as exc:
            raise ValueError(f"bad port in {text!r}") from exc
        unquote = urllib.parse.unquote
        return cls(parts.hostname, port, unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None,
                   parts.scheme == "mqtts")

    def __str__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"

    def client(self, identifier: str | None = None, **options: Any) -> aiomqtt.Client:
        """An aiomqtt client for this URL (not connected)."""
        return aiomqtt.Client(self.host, self.port, username=self.username,
                              password=self.password, identifier=identifier,
                              tls_context=ssl.create_default_context() if self.tls else None,
                              **options)


def _refused(exc: aiomqtt.MqttError) -> bool:
    """Whether a connect error means 'bad credentials / not authorised' (not worth retrying)."""
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return value in (4, 5, 134, 135)  # v3: bad user/password, not authorised; v5 the same


class MqttBridge:
    """Publishes events to an MQTT broker.

    Args:
        url: the broker, with the gateway's own credentials.
        qos: the publish QoS (1: at least once).
        max_queue: events waiting for the broker; beyond it the oldest are dropped.
        identifier: the MQTT client id.
    """

    def __init__(self, url: MqttURL, *, qos: int = 1, max_queue: int = 10_000,
                 identifier: str | None = None) -> None:
        self.url = url
        self.qos = qos
        self.max_queue = max_queue
        self.identifier = identifier
        self.connected = False
        self.published = 0
        self.dropped = 0
        self.reconnects = 0
        self._queue: collections.deque[Event] = collections.deque()
        self._wakeup = asyncio.Event()
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._in_flight = 0

    def offer(self, event: Event) -> None:
        """Queue an event for the broker; never blocks (drops the oldest when full)."""
        if len(self._queue) >= self.max_queue:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._idle.clear()
        self._wakeup.set()

    async def drained(self) -> None:
        """Return once every queued event has been acknowledged by the broker."""
        await self._idle.wait()

    async def wait_connected(self) -> None:
        """Return once the first connection is up."""
        await self._ready.wait()

    def stats(self) -> dict[str, Any]:
        return {"broker": str(self.url), "connected": self.connected,
                "published": self.published, "dropped": self.dropped,
                "queued": len(self._queue), "reconnects": self.reconnects}

    async def check(self, timeout: float = 5.0) -> bool:
        """Try the broker once, so refused credentials stop the gateway before it starts.

        Returns:
            Whether the broker accepted the connection (False: unreachable; :meth:`run`
            keeps trying).

        Raises:
            MqttRefused: the broker refused the credentials.
        """
        try:
            async with self.url.client(f"{self.identifier}-check" if self.identifier else None,
                                       timeout=timeout):
                return True
        except aiomqtt.MqttError as exc:
            if _refused(exc):
                raise MqttRefused(f"the MQTT broker {self.url} refused the gateway: "
                                  f"{exc}") from exc
            LOG.warning("MQTT broker %s is not reachable yet (%s); will retry",
                        self.url, exc)
            return False

    async def run(self) -> None:
        """Connect, publish for ever, reconnect on loss.

        Raises:
            MqttRefused: the broker refused the credentials.
        """
        delay = BACKOFF_START
        while True:
            try:
                async with self.url.client(self.identifier) as client:
                    self.connected = True
                    self._ready.set()
                    delay = BACKOFF_START
                    LOG.info("publishing to %s", self.url)
                    await self._publish_forever(client)
            except aiomqtt.MqttError as exc:
                if _refused(exc):
                    raise MqttRefused(f"the MQTT broker {self.url} refused the gateway: "
                                      f"{exc}") from exc
                LOG.warning("MQTT broker %s: %s; retrying in %.1f s",
                            self.url, exc, delay)
            finally:
                self.connected = False
            self.reconnects += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, BACKOFF_CAP)

    async def _publish_forever(self, client: aiomqtt.Client) -> None:
        """Publish queued events in order, up to IN_FLIGHT awaiting their PUBACK at once.

        On a lost connection the unacknowledged ones go back to the front of the queue.
        """
        window = asyncio.Semaphore(IN_FLIGHT)
        unacked: dict[int, Event] = {}  # by seq, in publish order
        try:
            async with asyncio.TaskGroup() as tasks:
                while True:
                    if not self._queue:
                        self._wakeup.clear()
                        await self._wakeup.wait()
                        continue
                    await window.acquire()
                    if not self._queue:
                        window.release()
                        continue
                    event = self._queue.popleft()
                    unacked[event.seq] = event
                    self._in_flight += 1
                    tasks.create_task(self._publish_one(client, event, unacked, window),
                                      name=f"relaybus.gateway.mqtt.publish[{event.seq}]")
        except BaseExceptionGroup as group:
            errors = [e for e in group.exceptions if isinstance(e, aiomqtt.MqttError)]
            if errors:
                raise errors[0] from None
            raise
        finally:
            self._queue.extendleft(reversed(unacked.values()))

    async def _publish_one(self, client: aiomqtt.Client, event: Event,
                           unacked: dict[int, Event], window: asyncio.Semaphore) -> None:
        try:
            await client.publish(event.topic, event.json, qos=self.qos)
            del unacked[event.seq]
            self.published += 1
        finally:
            self._in_flight -= 1
            if not self._queue and not self._in_flight and not unacked:
                self._idle.set()
            window.release()
