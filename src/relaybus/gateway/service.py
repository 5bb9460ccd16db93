"""The gateway as one component: bus tap, hub, MQTT bridge and HTTP server, started together.

Embed it next to your own services (on ``memory://`` it must share their process)::

    async with await relaybus.connect("memory://") as bus:
        async with Gateway(bus, GatewayOptions(http="127.0.0.1:8765")).running() as gateway:
            print("console:", gateway.url)
            ...  # notify as usual; every notification reaches the firehose

Its background work runs in one TaskGroup, each task named ``relaybus.gateway.<part>``;
leaving ``running()`` stops taking notifications, ends every client's stream, flushes the
MQTT queue (briefly) and stops the server. A task that fails (the MQTT broker refusing the
gateway's credentials) ends the whole gateway with that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn

import relaybus
from relaybus import Target
from relaybus.gateway.auth import Tokens, load_tokens_file, redact_server_logs
from relaybus.gateway.hub import Hub
from relaybus.gateway.limits import ConnectionLimits
from relaybus.gateway.logreplay import LogReplay
from relaybus.gateway.mqtt import MqttBridge, MqttURL
from relaybus.gateway.origins import Origins
from relaybus.gateway.publish import BusPublisher
from relaybus.gateway.replay import ReplayBuffer
from relaybus.gateway.tap import DEFAULT_POOL, BusTap
from relaybus.gateway.topics import DEFAULT_TEMPLATE, TopicTemplate
from relaybus.gateway.web import WebContext, build_app
from relaybus.transport.eventlog import DEFAULT_MAX_AGE, DEFAULT_MAX_BYTES, Retention

LOG = logging.getLogger(__name__)

MQTT_FLUSH_SECONDS = 2.0


@dataclass
class GatewayOptions:
    """How a gateway runs; the ``relaybus firehose`` options, one for one.

    Attributes:
        topics: notification topics to listen to.
        exchange: the exchange of those topics (None: the bus's control exchange).
        pool: the gateway's listener pool.
        http: ``host:port`` of the HTTP server (port 0: any free port).
        mqtt: ``mqtt://user:password@host:port`` to publish to (None: no MQTT).
        mqtt_topic: the topic template (see :class:`~relaybus.gateway.topics.TopicTemplate`).
        mqtt_client_id: the gateway's MQTT client id (None: generated).
        replay_events, replay_bytes: the in-memory replay buffer's bounds; with a log,
            ``replay_events`` is also the most events one resuming client is replayed
            from the log.
        replay_log: the broker's log that keeps the replay on rabbit:// (a stream queue)
            and nats:// (a JetStream stream), shared by every gateway naming it: ``""``
            is ``<pool>.replay``; ``"none"`` keeps the replay in this process only (as
            memory://, whose transport has no log, always does).
        replay_max_age, replay_max_bytes: the log's retention (seconds, bytes).
        client_queue: each client's bounded queue, in events.
        client_queue_bytes: the same bound, in bytes.
        write_timeout: seconds a write to a client may stall before it is let go.
        max_connections: concurrent connections; beyond, HTTP 503 (the open-files limit
            is raised to match).
        header_timeout: seconds a connection has to send its first request's headers.
        allowed_origins: web origins (``https://ui.example.com``, ``*``) whose pages may use
            /ws, /events and /publish (empty: the gateway's own origin only).
        token: needed to subscribe (None: open).
        publish_token: needed to publish through the gateway (None: nobody can).
        tokens_file: a TOML file of tokens scoped to topic filters (see
            :func:`~relaybus.gateway.auth.load_tokens_file`); with it, clients without a
            token get only what its ``[anonymous]`` table allows.
        max_frame: the largest WebSocket frame or POST body accepted, in bytes.
        keepalive: seconds between SSE keep-alive comments.
    """

    topics: Sequence[str] = ("notifications",)
    exchange: str | None = None
    pool: str = DEFAULT_POOL
    http: str = "127.0.0.1:8765"
    mqtt: str | None = None
    mqtt_topic: str = DEFAULT_TEMPLATE
    mqtt_client_id: str | None = None
    replay_events: int = 10_000
    replay_bytes: int = 16 * 1024 * 1024
    replay_log: str = ""
    replay_max_age: float = DEFAULT_MAX_AGE
    replay_max_bytes: int = DEFAULT_MAX_BYTES
    client_queue: int = 1000
    client_queue_bytes: int = 4 * 1024 * 1024
    write_timeout: float = 10.0
    max_connections: int = 10_000
    header_timeout: float = 10.0
    allowed_origins: Sequence[str] = ()
    token: str | None = field(default=None, repr=False)
    publish_token: str | None = field(default=None, repr=False)
    tokens_file: str | None = None
    max_frame: int = 1024 * 1024
    keepalive: float = 15.0


def parse_hostport(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port``; raises ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected host:port, got {text!r}")
    return host.strip("[]"), int(port)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: the gateway's owner decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Gateway:
    """The firehose gateway on a connected bus.

    Args:
        bus: the bus to listen to (and publish to, with the publish token).
        options: see :class:`GatewayOptions`.

    Raises:
        ValueError: a bad option (topic template, host:port, MQTT URL, token, sizes).
    """

    def __init__(self, bus: relaybus.Bus, options: GatewayOptions | None = None) -> None:
        self.bus = bus
        self.options = options = options or GatewayOptions()
        self.instance = uuid.uuid4().hex[:12]
        self.host, self.port = parse_hostport(options.http)
        template = TopicTemplate(options.mqtt_topic)
        self.hub = Hub(ReplayBuffer(options.replay_events, options.replay_bytes),
                       options.client_queue, options.client_queue_bytes)
        targets = [Target(topic=t, exchange=options.exchange) for t in options.topics]
        self.tap = BusTap(bus, self.hub, targets, template, options.pool)
        self.bridge = None
        if options.mqtt:
            self.bridge = MqttBridge(MqttURL.parse(options.mqtt),
                                     identifier=options.mqtt_client_id
                                     or f"relaybus-firehose-{self.instance}")
            self.hub.add_sink(self.bridge.offer)
        self.limits = ConnectionLimits(options.max_connections, options.header_timeout)
        self.tokens = Tokens(options.token, options.publish_token,
                             load_tokens_file(options.tokens_file)
                             if options.tokens_file else None)
        self.publisher = (BusPublisher(bus, options.topics[0], template)
                          if self.tokens.can_publish else None)
        self._context = WebContext(self.hub, self.tokens, self.publisher, self.stats,
                                   self.health, self.ready, self.instance, options.max_frame,
                                   options.keepalive, options.write_timeout,
                                   Origins(options.allowed_origins))
        self._server: _Server | None = None
        self.log_replay: LogReplay | None = None
        self.retention = Retention(options.replay_max_age, options.replay_max_bytes)

    @property
    def log_name(self) -> str | None:
        """The replay log's name (None: the replay stays in this process)."""
        name = self.options.replay_log
        if name.lower() == "none" or self.bus.url.scheme == "memory":
            return None
        return name or f"{self.options.pool}.replay"

    async def _open_log(self) -> None:
        """Keep the replay in the broker's log, when the transport has one."""
        name = self.log_name
        if name is None:
            return
        log = await self.bus.driver.event_log(name, self.retention)
        self.log_replay = LogReplay(log, self.hub, self.options.replay_events)
        self.hub.history = self.log_replay
        self.tap.send_to(self.log_replay.append)

    @property
    def url(self) -> str:
        """The console's URL (the bound port, once running)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def stats(self) -> dict[str, Any]:
        """The /stats document."""
        stats = self.hub.stats()
        stats["instance"] = self.instance
        stats["published_via_gateway"] = self.publisher.published if self.publisher else 0
        stats["mqtt"] = self.bridge.stats() if self.bridge else None
        stats["connections"] = self.limits.stats()
        stats["replay_log"] = self.log_replay.stats() if self.log_replay else None
        return stats

    def health(self, detailed: bool = False) -> tuple[bool, dict[str, Any]]:
        """/healthz: healthy while listening to the bus (a restart would help otherwise).

        MQTT trouble makes it ``degraded`` but not unhealthy: browsers are still served and
        the bridge reconnects by itself; :meth:`ready` fails instead. Without ``detailed``
        (a valid token) the bus shows as scheme and hosts only, never a user name.
        """
        listening = all(listener.running for listener in self.tap.listeners)
        problems = self._problems(listening)
        url = self.bus.url
        hosts = ",".join(f"{h.hostname}:{h.port}" if h.port else str(h.hostname)
                         for h in url.hosts if h.hostname)
        details: dict[str, Any] = {
            "status": "ok" if not problems else ("degraded" if listening else "unhealthy"),
            "bus": url.masked() if detailed else f"{url.scheme}://{hosts}",
            "listening": listening,
            "mqtt": None if self.bridge is None else self.bridge.connected,
            "mqtt_reaching": None if self.bridge is None else self.bridge.reaching,
            "problems": problems, "instance": self.instance}
        return listening, details

    def ready(self) -> tuple[bool, dict[str, Any]]:
        """/readyz: ready when events flow end to end (bus listened to, MQTT accepting them)."""
        healthy, details = self.health()
        ready = healthy and not details["problems"]
        details["status"] = "ready" if ready else "not-ready"
        return ready, details

    def _problems(self, listening: bool) -> list[str]:
        problems = [] if listening else ["not listening to the bus"]
        problem = self.bridge.problem() if self.bridge is not None else None
        return problems + ([problem] if problem else [])

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Gateway]:
        """Run the gateway for the duration of the ``async with`` block."""
        if self.bridge is not None:
            await self.bridge.check()
        self.limits.raise_open_files()
        await self._open_log()
        redact_server_logs()  # it logs request lines and headers: ?token=, Authorization
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(build_app(self._context), lifespan="off",
                                http=self.limits.protocol(),
                                ws="websockets-sansio", ws_max_size=self.options.max_frame,
                                ws_per_message_deflate=False,
                                log_config=None, access_log=False, server_header=False,
                                timeout_graceful_shutdown=3)
        self._server = server = _Server(config)
        try:
            async with asyncio.TaskGroup() as tasks:
                follower = None
                if self.log_replay is not None:
                    follower = tasks.create_task(self.log_replay.follow(),
                                                 name="relaybus.gateway.log")
                await self.tap.start()
                tasks.create_task(server.serve(sockets=[sock]), name="relaybus.gateway.http")
                mqtt = None
                if self.bridge is not None:
                    mqtt = tasks.create_task(self.bridge.run(), name="relaybus.gateway.mqtt")
                try:
                    yield self
                finally:
                    await self._stop(server, mqtt)
                    if follower is not None:
                        follower.cancel()
        finally:
            sock.close()
            if self.log_replay is not None:
                await self.log_replay.close()

    async def _stop(self, server: _Server, mqtt: asyncio.Task[None] | None) -> None:
        await self.tap.stop()
        self.hub.close()
        server.should_exit = True
        if mqtt is not None and self.bridge is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(MQTT_FLUSH_SECONDS):
                    await self.bridge.drained()
            mqtt.cancel()
