"""Helpers for the rabbit driver's tests: the oslo vectors, and an independent AMQP peer.

The peer (:class:`Tap`) is built on aiormq, not on relaybus's own AMQP code, so what it
reports about relaybus's messages (properties, routing, bodies) is a second opinion.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import aiormq
from pamqp import commands

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "oslo-rabbit"
URL = "rabbit://guest:guest@127.0.0.1:5672/"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
BROKER = ("RabbitMQ", "127.0.0.1", 5672)
HEX32 = re.compile(r"^[0-9a-f]{32}$")
WAIT = 10.0

# the names the capture used, which tests replace with their own
VECTOR_TOPIC = "wirecap"
VECTOR_NOTIFICATION_TOPIC = "notifications"


def vector(name: str) -> dict[str, Any]:
    """One vector file, parsed."""
    return json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))


def parse_body(body: bytes | str) -> Any:
    """Decode a body the way the vectors' ``body_parsed`` is decoded (nested JSON too)."""
    outer = json.loads(body)
    if isinstance(outer, dict) and "oslo.message" in outer:
        inner = json.loads(outer["oslo.message"])
        if isinstance(inner.get("failure"), str):
            inner["failure"] = json.loads(inner["failure"])
        outer["oslo.message"] = inner
    return outer


def _drop(document: Any, pointer: str) -> None:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    for part in parts[:-1]:
        document = document[int(part)] if isinstance(document, list) else document[part]
    document.pop(parts[-1], None)


def stable_body(parsed: Any, vec: dict[str, Any]) -> Any:
    """``parsed`` without the members the vector lists as varying from run to run."""
    document = {"body_parsed": json.loads(json.dumps(parsed))}
    for pointer in vec["variable_fields"]:
        if pointer.startswith("/body_parsed/"):
            _drop(document, pointer)
    return document["body_parsed"]


def message_of(parsed: Any) -> dict[str, Any]:
    """The message object inside a parsed body (the envelope's, or the bare 1.0 form)."""
    return parsed.get("oslo.message", parsed)


def properties_of(message: aiormq.abc.DeliveredMessage) -> dict[str, Any]:
    """The basic properties a message carries, in the vectors' form (unset ones left out)."""
    props = message.header.properties
    names = ("content_type", "content_encoding", "headers", "delivery_mode", "priority",
             "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
             "message_type", "user_id", "app_id", "cluster_id")
    found = {name: getattr(props, name) for name in names if getattr(props, name) is not None}
    if found.get("cluster_id") == "":  # pamqp's default for an absent cluster_id
        del found["cluster_id"]
    return found


def expected_properties(vec: dict[str, Any]) -> dict[str, Any]:
    return dict(vec["properties"])


class Tap:
    """A plain AMQP client (aiormq) that declares, publishes and records raw messages."""

    def __init__(self) -> None:
        self.connection: aiormq.abc.AbstractConnection | None = None
        self.channel: aiormq.abc.AbstractChannel | None = None
        self.queues: list[str] = []
        self._inboxes: dict[str, asyncio.Queue[aiormq.abc.DeliveredMessage]] = {}

    async def open(self) -> Tap:
        self.connection = await aiormq.connect(AMQP_URL)
        self.channel = await self.connection.channel()
        return self

    async def close(self) -> None:
        if self.connection is None:
            return
        channel = await self.connection.channel()
        for name in self.queues:
            await channel.queue_delete(name)
        await self.connection.close()
        self.connection = None

    def forget_later(self, *names: str) -> None:
        """Delete these queues when the tap closes (queues relaybus declared in a test)."""
        self.queues.extend(names)

    async def exchange(self, name: str, kind: str = "topic", *, auto_delete: bool = False) -> None:
        assert self.channel is not None
        await self.channel.exchange_declare(name, exchange_type=kind, durable=False,
                                            auto_delete=auto_delete)

    async def queue(self, name: str, *bindings: tuple[str, str],
                    arguments: dict[str, Any] | None = None, consume: bool = True) -> str:
        """Declare (as oslo would), bind, and start recording a queue."""
        assert self.channel is not None
        await self.channel.queue_declare(name, durable=False, auto_delete=False,
                                         arguments=arguments or {})
        self.queues.append(name)
        for exchange, key in bindings:
            await self.channel.queue_bind(name, exchange, routing_key=key)
        if consume:
            inbox: asyncio.Queue[aiormq.abc.DeliveredMessage] = asyncio.Queue()
            self._inboxes[name] = inbox

            async def record(message: aiormq.abc.DeliveredMessage) -> None:
                inbox.put_nowait(message)

            await self.channel.basic_consume(name, record, no_ack=True)
        return name

    async def get(self, queue: str, timeout: float = WAIT) -> aiormq.abc.DeliveredMessage:
        """The next message recorded on ``queue``."""
        return await asyncio.wait_for(self._inboxes[queue].get(), timeout)

    def pending(self, queue: str) -> int:
        return self._inboxes[queue].qsize()

    async def publish(self, exchange: str, routing_key: str, body: bytes, *,
                      expiration: str | None = None, content_type: str | None = "application/json",
                      mandatory: bool = False) -> None:
        """Publish with oslo's properties (wire §3)."""
        assert self.channel is not None
        props = commands.Basic.Properties(
            content_type=content_type, content_encoding="utf-8", headers={}, delivery_mode=2,
            priority=0, expiration=expiration)
        await self.channel.basic_publish(body, exchange=exchange, routing_key=routing_key,
                                         properties=props, mandatory=mandatory)

    async def queue_info(self, name: str) -> tuple[int, int]:
        """(messages, consumers) of a queue, by a passive declare on a scratch channel."""
        assert self.connection is not None
        channel = await self.connection.channel()
        try:
            ok = await channel.queue_declare(name, passive=True)
            return ok.message_count, ok.consumer_count
        finally:
            await channel.close()


def envelope(message: dict[str, Any]) -> bytes:
    """Wrap a message object the way oslo does (Python's default JSON separators)."""
    return json.dumps({"oslo.version": "2.0", "oslo.message": json.dumps(message)}).encode()


def rabbitmqctl(*args: str, timeout: float = 30) -> str:
    """Run ``rabbitmqctl`` on the local node (skip, or fail in CI, when it is missing)."""
    import subprocess

    from relaybus.testing.brokers import require_program

    require_program("rabbitmqctl")
    done = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def node_ctl(node: str, *args: str, timeout: float = 60) -> str:
    """``rabbitmqctl`` on a test's own node (the ``own_rabbit`` fixture's ``node``), never
    the shared one."""
    return subprocess.run(["rabbitmqctl", "-n", node, "-q", *args], check=True,
                          capture_output=True, text=True, timeout=timeout).stdout


def rabbitmq_json(*args: str) -> Any:
    return json.loads(rabbitmqctl("--formatter", "json", *args) or "[]")


def is_named(connection: dict[str, Any], connection_name: str) -> bool:
    """Whether a ``list_connections`` row is the connection a client named so (a connection
    still in its handshake, another run's, lists its client properties as a string)."""
    properties = connection["client_properties"]
    return isinstance(properties, list) and [
        "connection_name", "longstr", connection_name] in properties


def connection_pid(connection_name: str) -> str:
    """The broker-side pid of the connection a client named ``connection_name``."""
    for row in rabbitmq_json("list_connections", "name", "client_properties"):
        if is_named(row, connection_name):
            # the JSON formatter prints pids in a form close_connection does not take
            for line in rabbitmqctl("list_connections", "name", "pid").splitlines():
                name, _, pid = line.rpartition("\t")
                if name == row["name"]:
                    return pid
    raise LookupError(f"no connection named {connection_name}")


def close_connection(connection_name: str) -> None:
    """Make the broker close one client's connection (320 CONNECTION_FORCED)."""
    rabbitmqctl("close_connection", connection_pid(connection_name), "closed by a test")


class RecordingServer:
    """Echoes, records casts and sleeps on request: the server of the fault tests."""


    def __init__(self) -> None:
        self.casts: list[Any] = []
        self.cast_seen = asyncio.Event()

    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value

    async def record(self, ctxt: Any, value: Any) -> None:
        self.casts.append(value)
        self.cast_seen.set()

    async def sleep(self, ctxt: Any, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return "slept"
