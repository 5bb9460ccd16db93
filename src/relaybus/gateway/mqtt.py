"""The MQTT side: every event published to a broker, QoS 1, on its hierarchical topic.

It never dies or lies:

- The bridge has a bounded queue like every client: a slow or absent broker makes it drop
  its oldest events (counted in /stats), never slows the hub.
- It speaks MQTT 5 (falling back to 3.1.1 only when the broker cannot do 5), sends each
  event in structured mode with ``Content Type: application/cloudevents+json``, and reads the
  reason code of every PUBACK: a refused publish (not authorised, quota...) is counted and
  makes /readyz fail, instead of passing for a delivery.
- An event MQTT cannot carry (a topic longer than 65,535 bytes, a packet larger than the
  broker's Maximum Packet Size) is skipped, counted, and logged once per kind.
- A lost connection (broker restart, network) is retried with capped, jittered backoff,
  while browsers keep being served; what was in flight is republished (QoS 1 is
  at-least-once; the event id tells duplicates apart). Only a refusal of the credentials on
  the *first* connection ends the gateway, with a clear error.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any, Self

import aiomqtt
import paho.mqtt.client as paho
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from relaybus.gateway.events import Event

LOG = logging.getLogger(__name__)

BACKOFF_START = 0.1
BACKOFF_CAP = 5.0
IN_FLIGHT = 64
MAX_TOPIC_BYTES = 65_535
MQTT_MAX_PACKET = 268_435_455 + 5  # the largest remaining length, plus the fixed header
STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
_REFUSED = (4, 5, 134, 135)  # v3: bad user name or password, not authorised; v5 the same
_NO_V5 = (1, 132)  # v3 "unacceptable protocol version"; v5 "unsupported protocol version"


class MqttRefused(ConnectionError):
    """The broker refused the gateway's credentials (or it is not allowed to connect)."""


class Unpublishable(ValueError):
    """An event MQTT cannot carry (its topic or its packet is too large)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


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

    def client(self, identifier: str | None = None, *,
               protocol: aiomqtt.ProtocolVersion = aiomqtt.ProtocolVersion.V5,
               **options: Any) -> _Client:
        """A client for this URL (not connected)."""
        return _Client(self.host, self.port, username=self.username,
                       password=self.password, identifier=identifier, protocol=protocol,
                       tls_context=ssl.create_default_context() if self.tls else None,
                       **options)


class _Client(aiomqtt.Client):
    """aiomqtt's client, keeping what it drops: each PUBACK's reason code and the CONNACK's
    Maximum Packet Size."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_packet = MQTT_MAX_PACKET
        self._reasons: dict[int, ReasonCode] = {}

    async def __aenter__(self) -> Self:
        """Connect; fail (to be retried) when the broker closed the connection at once.

        aiomqtt forgets a loss that comes between the CONNACK and the end of its
        ``__aenter__`` (it replaces its completed "disconnected" future with a fresh one), so
        a broker going down as the bridge connected left it believing it was connected, for
        ever: nothing published, /readyz saying ready.

        Raises:
            aiomqtt.MqttError: the connection failed, or ended as soon as it was made.
        """
        disconnected = self._disconnected
        await super().__aenter__()
        if disconnected is not self._disconnected:  # replaced: it had completed
            if not disconnected.cancelled():
                disconnected.exception()  # retrieved: reported by this error instead
            raise aiomqtt.MqttError("the broker closed the connection as soon as it was made")
        return self

    def _on_connect(self, client: paho.Client, userdata: Any, flags: paho.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None = None) -> None:
        limit = getattr(properties, "MaximumPacketSize", None)
        if isinstance(limit, int) and limit > 0:
            self.max_packet = limit
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_publish(self, client: paho.Client, userdata: Any, mid: int,
                    reason_code: ReasonCode, properties: Properties) -> None:
        self._reasons[mid] = reason_code
        super()._on_publish(client, userdata, mid, reason_code, properties)

    async def publish_acked(self, topic: str, payload: bytes, qos: int,
                            properties: Properties | None) -> ReasonCode | None:
        """Publish and wait for the broker's acknowledgement.

        Returns:
            The PUBACK's reason code (None for QoS 0 or when the broker sent none).

        Raises:
            aiomqtt.MqttError: the connection was lost.
        """
        info = self._client.publish(topic, payload, qos, False, properties)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        if not info.is_published():
            confirmation = asyncio.Event()
            with self._pending_call(info.mid, confirmation, self._pending_publishes):
                await self._wait_for(confirmation.wait(), timeout=None)
        return self._reasons.pop(info.mid, None)


def _refused(exc: aiomqtt.MqttError) -> bool:
    """Whether a CONNACK said 'bad credentials / not authorised' (not worth retrying)."""
    return isinstance(exc, MqttConnectError) and _rc(exc) in _REFUSED


def _no_v5(exc: aiomqtt.MqttError) -> bool:
    """Whether a CONNACK said the broker does not speak MQTT 5."""
    return isinstance(exc, MqttConnectError) and _rc(exc) in _NO_V5


def _rc(exc: aiomqtt.MqttError) -> int | None:
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


def _varint_size(value: int) -> int:
    size = 1
    while value >= 128:
        value //= 128
        size += 1
    return size


def packet_size(topic: bytes, payload: bytes, *, v5: bool) -> int:
    """The size of a QoS 1 PUBLISH packet carrying ``payload`` on ``topic``."""
    properties = 1 + 2 + len(STRUCTURED_CONTENT_TYPE) if v5 else 0
    variable = 2 + len(topic) + 2 + (_varint_size(properties) + properties if v5 else 0)
    remaining = variable + len(payload)
    return 1 + _varint_size(remaining) + remaining


def check_publishable(event: Event, max_packet: int, *, v5: bool) -> None:
    """Raises Unpublishable when MQTT cannot carry ``event``."""
    topic = event.topic.encode()
    if len(topic) > MAX_TOPIC_BYTES:
        raise Unpublishable("topic-too-long", f"its MQTT topic is {len(topic)} bytes long "
                                              f"(MQTT allows {MAX_TOPIC_BYTES})")
    size = packet_size(topic, event.json, v5=v5)
    if size > max_packet:
        raise Unpublishable("packet-too-large", f"its PUBLISH packet is {size} bytes (the "
                                                f"broker accepts at most {max_packet})")


def _properties(v5: bool) -> Properties | None:
    if not v5:
        return None
    properties = Properties(PacketTypes.PUBLISH)
    properties.ContentType = STRUCTURED_CONTENT_TYPE
    return properties


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
        self.protocol = aiomqtt.ProtocolVersion.V5
        self.published = 0
        self.dropped = 0
        self.refused = 0
        self.skipped: collections.Counter[str] = collections.Counter()
        self.reconnects = 0
        self.last_error: str | None = None
        self.last_refusal: str | None = None
        self._refusing = False  # the latest PUBACK was a refusal
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

    @property
    def reaching(self) -> bool:
        """Whether events are reaching the broker: connected, and the broker accepts them."""
        return self.connected and not self._refusing

    def problem(self) -> str | None:
        """Why events are not reaching the broker (None: they are)."""
        if not self.connected:
            return f"not connected to the MQTT broker ({self.last_error or 'connecting'})"
        if self._refusing:
            return f"the MQTT broker refuses the gateway's publishes ({self.last_refusal})"
        return None

    def stats(self) -> dict[str, Any]:
        return {"broker": str(self.url), "connected": self.connected,
                "reaching": self.reaching,
                "protocol": "5" if self.protocol is aiomqtt.ProtocolVersion.V5 else "3.1.1",
                "published": self.published, "dropped": self.dropped,
                "refused": self.refused, "last_refusal": self.last_refusal,
                "skipped": sum(self.skipped.values()), "skipped_by_reason": dict(self.skipped),
                "queued": len(self._queue), "reconnects": self.reconnects,
                "last_error": self.last_error}

    async def check(self, timeout: float = 5.0) -> bool:
        """Try the broker once, so refused credentials stop the gateway before it starts.

        Also settles the protocol: MQTT 5, or 3.1.1 when the broker cannot do 5.

        Returns:
            Whether the broker accepted the connection (False: unreachable; :meth:`run`
            keeps trying).

        Raises:
            MqttRefused: the broker refused the credentials.
        """
        identifier = f"{self.identifier}-check" if self.identifier else None
        try:
            try:
                async with self.url.client(identifier, protocol=self.protocol,
                                           timeout=timeout):
                    return True
            except aiomqtt.MqttError as exc:
                if not _no_v5(exc):
                    raise
                self._fall_back(exc)
                async with self.url.client(identifier, protocol=self.protocol,
                                           timeout=timeout):
                    return True
        except aiomqtt.MqttError as exc:
            if _refused(exc):
                raise MqttRefused(f"the MQTT broker {self.url} refused the gateway: "
                                  f"{exc}") from exc
            self.last_error = str(exc)
            LOG.warning("MQTT broker %s is not reachable yet (%s); will retry",
                        self.url, exc)
            return False

    def _fall_back(self, exc: aiomqtt.MqttError) -> None:
        self.protocol = aiomqtt.ProtocolVersion.V311
        LOG.warning("MQTT broker %s does not speak MQTT 5 (%s); using 3.1.1, without "
                    "PUBACK reason codes or content type", self.url, exc)

    async def run(self) -> None:
        """Connect, publish for ever, reconnect on loss (browsers are served meanwhile).

        Raises:
            MqttRefused: the broker refused the credentials before any connection succeeded.
        """
        delay = BACKOFF_START
        while True:
            try:
                async with self.url.client(self.identifier, protocol=self.protocol) as client:
                    self.connected = True
                    self.last_error = None
                    self._ready.set()
                    delay = BACKOFF_START
                    LOG.info("publishing to %s (MQTT %s)", self.url,
                             self.stats()["protocol"])
                    await self._publish_forever(client)
            except aiomqtt.MqttError as exc:
                self.last_error = str(exc) or type(exc).__name__
                if _no_v5(exc) and self.protocol is aiomqtt.ProtocolVersion.V5:
                    self._fall_back(exc)
                elif _refused(exc) and not self._ready.is_set():
                    raise MqttRefused(f"the MQTT broker {self.url} refused the gateway: "
                                      f"{exc}") from exc
                LOG.warning("MQTT broker %s: %s; retrying in about %.1f s",
                            self.url, self.last_error, delay)
            finally:
                self.connected = False
            self.reconnects += 1
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, BACKOFF_CAP)

    async def _publish_forever(self, client: _Client) -> None:
        """Publish queued events in order, up to IN_FLIGHT awaiting their PUBACK at once.

        On a lost connection the unacknowledged ones go back to the front of the queue.
        """
        window = asyncio.Semaphore(IN_FLIGHT)
        unacked: dict[int, Event] = {}  # by seq, in publish order
        v5 = self.protocol is aiomqtt.ProtocolVersion.V5
        properties = _properties(v5)
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(self._watch(client), name="relaybus.gateway.mqtt.watch")
                while True:
                    if not self._queue:
                        self._settle()
                        self._wakeup.clear()
                        await self._wakeup.wait()
                        continue
                    await window.acquire()
                    if not self._queue:
                        window.release()
                        continue
                    event = self._queue.popleft()
                    try:
                        check_publishable(event, client.max_packet, v5=v5)
                    except Unpublishable as exc:
                        window.release()
                        self._skip(event, exc)
                        continue
                    unacked[event.seq] = event
                    self._in_flight += 1
                    tasks.create_task(self._publish_one(client, event, properties, unacked,
                                                        window),
                                      name=f"relaybus.gateway.mqtt.publish[{event.seq}]")
        except BaseExceptionGroup as group:
            errors = [e for e in group.exceptions if isinstance(e, aiomqtt.MqttError)]
            if errors:
                raise errors[0] from None
            raise
        finally:
            self._queue.extendleft(reversed(unacked.values()))

    @staticmethod
    async def _watch(client: _Client) -> None:
        """Raise once the connection is lost, even while there is nothing to publish (the
        gateway subscribes to nothing: the message iterator only ever ends with the loss)."""
        async for _ in client.messages:
            pass
        raise aiomqtt.MqttError("the connection ended")

    def _skip(self, event: Event, exc: Unpublishable) -> None:
        first = exc.kind not in self.skipped
        self.skipped[exc.kind] += 1
        if first:  # one line per kind, not one per event: a flood must not flood the log
            LOG.warning("skipped event %s for MQTT: %s (counted in /stats mqtt.skipped; "
                        "further ones are not logged)", event.id[:80], exc)
        self._settle()

    def _settle(self) -> None:
        if not self._queue and not self._in_flight:
            self._idle.set()

    async def _publish_one(self, client: _Client, event: Event, properties: Properties | None,
                           unacked: dict[int, Event], window: asyncio.Semaphore) -> None:
        try:
            reason = await client.publish_acked(event.topic, event.json, self.qos, properties)
            del unacked[event.seq]
            if reason is not None and reason.is_failure:
                self.refused += 1
                self.last_refusal = f"{reason.getName()} ({reason.value}) on {event.topic[:200]}"
                if not self._refusing:
                    LOG.error("MQTT broker %s refused event %s: %s", self.url, event.id[:80],
                              self.last_refusal)
                self._refusing = True
            else:
                self.published += 1
                if self._refusing:
                    LOG.info("MQTT broker %s accepts events again", self.url)
                self._refusing = False
        finally:
            self._in_flight -= 1
            self._settle()
            window.release()
