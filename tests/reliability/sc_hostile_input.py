"""Scenario 5: hostile input, fuzzed with hypothesis, at a server and a listener.

Bodies of every kind of wrongness are published straight to the broker, past the
client's own checks: bytes that are not UTF-8 or JSON, JSON that is not an object,
requests with missing, extra and mistyped members, unknown envelope versions, private and
unexposed methods, deep nesting, huge objects, repeated ``_unique_id``s, replies aimed at
other queues, bodies one byte over the size limit and far over it. The server and the
listener must keep consuming (probed with real traffic throughout), reject each bad
message with a reason, and keep memory bounded. A failure naming a module outside the
client's allowlist must never import it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import threading
import tracemalloc
from collections import Counter
from collections.abc import Callable
from typing import Any

from figures import Figures
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transports import unique

import relaybus
from relaybus import Target
from relaybus.rpc.remote_errors import deserialize_exception
from relaybus.url import parse_url

EXAMPLES = 300
SIZE_LIMIT = 64 * 1024
MEMORY_BOUND = 64 * 1024 * 1024

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)
_method = st.sampled_from(["echo", "_private", "__class__", "hidden", "missing", ""]) | _json
_request = st.fixed_dictionaries({}, optional={
    "method": _method,
    "args": st.dictionaries(st.sampled_from(["value", "x", "__init__"]), _json, max_size=3)
    | _json,
    "namespace": st.none() | st.text(max_size=5) | _json,
    "version": st.sampled_from(["1.0", "9.9", "1", "x.y", ""]) | _json,
    "_msg_id": st.text(max_size=40) | _json,
    "_reply_q": st.sampled_from(["nowhere", "{topic}"]) | _json,
    "_timeout": st.floats(allow_nan=False) | _json,
    "_unique_id": st.sampled_from(["repeated-id"]) | st.text(max_size=40),
    "_context_user": _json,
    "extra": _json,
})


def _envelope(message: Any, version: Any = "2.0") -> bytes:
    return json.dumps({"oslo.version": version, "oslo.message": json.dumps(message)}).encode()


def _nested(depth: int) -> bytes:
    return _envelope({"method": "echo", "args": {"value": "PLACEHOLDER"}}).replace(
        b'\\"PLACEHOLDER\\"', b"[" * depth + b"]" * depth)


def _huge(entries: int) -> bytes:
    return _envelope({"method": "echo", "args": {"value": {str(i): i for i in range(entries)}},
                      "_unique_id": "huge"})


BODIES = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(lambda t: t.encode("utf-8")),
    _json.map(lambda v: json.dumps(v).encode()),
    _request.map(lambda m: json.dumps(m).encode()),
    _request.map(_envelope),
    st.tuples(_request, st.sampled_from(["1.0", "2.1", "3.0", "", "2"]) | _json).map(
        lambda pair: _envelope(*pair)),
    st.integers(min_value=10, max_value=100_000).map(_nested),
    st.integers(min_value=100, max_value=20_000).map(_huge),
    st.sampled_from([SIZE_LIMIT + 1, SIZE_LIMIT * 20]).map(
        lambda n: _envelope({"method": "echo", "args": {"value": "x" * n}})),
)

_REASONS = [("(reply-address)", "hostile reply address"),
            ("nested too deeply", "nested too deeply"), ("exceeds max_message_size", "too large"),
            ("not valid JSON", "invalid JSON"), ("envelope version", "unknown envelope"),
            ("must be a JSON object", "not an object"), ("duplicate", "duplicate id"),
            ("NoSuchMethod", "no such method"), ("UnsupportedVersion", "unsupported version"),
            ("TypeError", "bad arguments"), ("InvalidArguments", "bad arguments"),
            ("malformed", "missing or mistyped members")]


class _Reasons(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: Counter[str] = Counter()
        self.unexplained: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        for needle, reason in _REASONS:
            if needle in text:
                self.counts[reason] += 1
                return
        if record.levelno >= logging.ERROR:
            if record.exc_info and record.exc_info[1] is not None:
                error = record.exc_info[1]
                text += f" ({type(error).__name__}: {error})"
            self.unexplained.append(text[:300])


class _Harness:
    """A server, a listener and a raw publisher on an event loop of their own."""

    def __init__(self, transport: str, url: str) -> None:
        self.transport, self.url = transport, url
        self.topic, self.ntopic = unique("hostile"), unique("hostile_n")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.handled: list[Any] = []
        self.run(self._start())

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        harness = self

        class Echo:
            async def echo(self, ctxt: Any, value: Any) -> Any:
                return value

            async def _private(self, ctxt: Any) -> str:
                return "must never run"

        class Listener:
            async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                           metadata: Any) -> None:
                harness.handled.append(payload)

        self.bus = await relaybus.connect(self.url, max_message_size=SIZE_LIMIT)
        self.server = self.bus.rpc_server(Target(topic=self.topic, server="s1"), [Echo()],
                                          access_policy=relaybus.ExplicitRPCAccessPolicy())
        self.listener = self.bus.notification_listener([Target(topic=self.ntopic)],
                                                       [Listener()], pool="hostile")
        await self.server.start()
        await self.listener.start()
        self.client = self.bus.rpc_client(Target(topic=self.topic), timeout=10)
        self.notifier = self.bus.notifier("probe", topics=[self.ntopic])
        self.publish = await self._raw_publisher()

    async def _raw_publisher(self) -> Callable[[str, bytes], Any]:
        if self.transport == "memory":
            from relaybus.drivers.memory.broker import broker_named

            broker = broker_named(parse_url(self.url).hosts[0].hostname or "default")

            async def publish(key: str, body: bytes) -> None:
                broker.publish("openstack", key, body)
            return publish
        if self.transport == "rabbit":
            import aio_pika

            host = parse_url(self.url).hosts[0]
            self._raw = await aio_pika.connect(
                f"amqp://{host.username}:{host.password}@{host.hostname}:{host.port or 5672}/")
            exchange = await (await self._raw.channel()).get_exchange("openstack")

            async def publish(key: str, body: bytes) -> None:
                await exchange.publish(aio_pika.Message(body, content_type="application/json"),
                                       routing_key=key)
            return publish
        import nats

        host = parse_url(self.url).hosts[0]
        self._raw = await nats.connect(f"nats://{host.hostname}:{host.port or 4222}")

        async def publish(key: str, body: bytes) -> None:
            subject = (f"relaybus.openstack.notify.{key.replace('.info', '')}.info"
                       if key.endswith(".info") else f"relaybus.openstack.rpc.{key}")
            await self._raw.publish(subject, body)
        return publish

    def inject(self, body: bytes) -> str | None:
        """Publish to the server and the listener; the broker's refusal, if it refused."""
        body = body.replace(b"{topic}", self.topic.encode())
        try:
            self.run(self.publish(self.topic, body))
            self.run(self.publish(f"{self.ntopic}.info", body))
        except Exception as exc:  # noqa: BLE001 - e.g. NATS refuses bodies over max_payload
            return type(exc).__name__
        return None

    def probe(self) -> bool:
        # echo is not @expose'd: NoSuchMethod means the server answered, which is the point
        with contextlib.suppress(relaybus.NoSuchMethod):
            self.run(self.client.call({}, "echo", value="alive"), timeout=15)
        before = len(self.handled)
        self.run(self.notifier.info({}, "probe", {"n": before}))
        deadline = self.loop.time() + 15
        while len(self.handled) <= before:
            if self.loop.time() > deadline:
                return False
            self.run(asyncio.sleep(0.01))
        return self.server.running and self.listener.running

    def close(self) -> None:
        self.refused = dict(self.bus.driver.intake.refused)  # type: ignore[attr-defined]

        async def stop() -> None:
            await self.bus.close()
            if self.transport in ("rabbit", "nats"):
                await self._raw.close()
        self.run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _run_sync(transport: str, url: str) -> Figures:
    figures = Figures("hostile input", transport)
    reasons = _Reasons()
    relaybus_log = logging.getLogger("relaybus")
    previous_level = relaybus_log.level
    relaybus_log.setLevel(logging.INFO)
    relaybus_log.addHandler(reasons)
    previous_limit = sys.getrecursionlimit()
    tracemalloc.start()
    harness = _Harness(transport, url)
    alive: list[bool] = []
    try:
        baseline = tracemalloc.get_traced_memory()[0]

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(body=BODIES)
        def fuzz(body: bytes) -> None:
            figures.sent += 1
            refused = harness.inject(body)
            if refused is not None:
                figures.errors[f"refused by the broker ({refused})"] += 1
            if figures.sent % 50 == 0:
                alive.append(harness.probe())

        fuzz()
        alive.append(harness.probe())
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        harness.close()
        tracemalloc.stop()
        relaybus_log.removeHandler(reasons)
        relaybus_log.setLevel(previous_level)
        sys.setrecursionlimit(previous_limit)
    figures.errors.update(reasons.counts)
    # the intake logs a reason once per interval; its counters have every refusal
    for reason, count in harness.refused.items():
        figures.errors[f"intake refused: {reason}"] = count
    figures.received = len(harness.handled)
    figures.check("server and listener kept consuming", all(alive) and bool(alive))
    figures.check("every error explained", not reasons.unexplained)
    figures.check(f"memory grew less than {MEMORY_BOUND >> 20} MiB", grown < MEMORY_BOUND)
    leaked = deserialize_exception({"class": "system", "module": "os", "message": "rm -rf",
                                    "args": ["echo pwned"]})
    figures.check("failures from unlisted modules are not imported",
                  isinstance(leaked, relaybus.RemoteError))
    figures.notes.append(f"{figures.sent} hostile bodies to a server and a listener; memory "
                         f"grew {grown / 1e6:.1f} MB; {len(alive)} probes answered")
    if reasons.unexplained:
        figures.notes.append("unexplained: " + " | ".join(reasons.unexplained[:3]))
    return figures


async def run(transport: str, url: str) -> Figures:
    return await asyncio.to_thread(_run_sync, transport, url)
