"""The conformance kit: a small echo contract, its reference server and the checks.

An implementation in any language proves it speaks relaybus by serving the contract below
on a topic and passing :func:`run_checks` (``relaybus conformance --url URL --topic T``).
A client implementation tests itself against the reference server
(``relaybus conformance --serve --url URL --topic T``). The contract is documented in
docs/protocol/conformance.md.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import relaybus
from relaybus import Target

NAMESPACE = "conformance"
VERSION = "1.2"
ECHO_VALUE = {"text": "héllo ✓", "int": 42, "float": 2.5, "null": None, "bool": [True, False],
              "nested": {"list": [1, "two", {"three": 3}]}}
WAIT = 10.0
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")


def events_topic(topic: str) -> str:
    """The notification topic a conformance server emits to."""
    return f"{topic}_events"


class ConformanceEndpoint:
    """The reference implementation of the echo contract (namespace conformance, 1.2)."""

    target = Target(namespace=NAMESPACE, version=VERSION)

    def __init__(self, server: str, notifier: relaybus.Notifier) -> None:
        self.server = server
        self.notifier = notifier
        self.recorded: set[str] = set()

    async def echo(self, ctxt: Any, value: Any) -> Any:
        """Return the value unchanged."""
        return value

    async def whoami(self, ctxt: Any) -> str:
        """Return the server's name."""
        return self.server

    async def fail(self, ctxt: Any, message: str) -> None:
        """Raise ValueError(message)."""
        raise ValueError(message)

    async def record(self, ctxt: Any, token: str) -> None:
        """Remember a token (sent as a cast)."""
        self.recorded.add(token)

    async def recorded_tokens(self, ctxt: Any, token: str) -> bool:
        """Whether a cast of record(token) arrived."""
        return token in self.recorded

    async def emit(self, ctxt: Any, event_type: str, payload: Any) -> None:
        """Send an INFO notification with this event type and payload."""
        await self.notifier.info(ctxt, event_type, payload)

    async def slow(self, ctxt: Any, seconds: float) -> str:
        """Return "done" after the given number of seconds."""
        await asyncio.sleep(min(float(seconds), 30.0))
        return "done"


def reference_server(bus: relaybus.Bus, topic: str, server: str) -> relaybus.RPCServer:
    """The reference server for ``topic`` on ``bus`` (not started)."""
    notifier = bus.notifier(f"conformance.{server}", topics=[events_topic(topic)])
    return bus.rpc_server(Target(topic=topic, server=server),
                          [ConformanceEndpoint(server, notifier)])


@dataclass
class CheckResult:
    name: str
    passed: bool
    detail: str


class _Collector:
    def __init__(self) -> None:
        self.events: dict[str, list[tuple[str | None, str, Any, dict[str, Any]]]] = {}
        self.arrived = asyncio.Event()

    async def info(self, ctxt: Any, publisher_id: str | None, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        self.events.setdefault(event_type, []).append((publisher_id, event_type, payload,
                                                       metadata))
        self.arrived.set()

    async def wait_for(self, event_type: str) -> tuple[str | None, str, Any, dict[str, Any]]:
        async with asyncio.timeout(WAIT):
            while event_type not in self.events:
                self.arrived.clear()
                await self.arrived.wait()
        return self.events[event_type][0]


async def _expect_failure(call: Awaitable[Any], kind: type[BaseException]) -> str:
    try:
        value = await call
    except kind as exc:
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    raise AssertionError(f"expected {kind.__name__}, got the result {value!r}")


async def run_checks(bus: relaybus.Bus, topic: str) -> list[CheckResult]:
    """Run every check against the server(s) of ``topic``; never raises for a failed check."""
    base = bus.rpc_client(Target(topic=topic, namespace=NAMESPACE, version="1.0"), timeout=WAIT)
    collector = _Collector()
    listener = bus.notification_listener([Target(topic=events_topic(topic))], [collector],
                                         pool=f"conformance-kit-{uuid.uuid4().hex[:8]}")
    results: list[CheckResult] = []
    state: dict[str, Any] = {}

    async def check(name: str, body: Callable[[], Awaitable[str]]) -> None:
        try:
            results.append(CheckResult(name, True, await body()))
        except Exception as exc:  # noqa: BLE001 - a failed check is reported, not raised
            results.append(CheckResult(name, False, f"{type(exc).__name__}: {exc}"
                                       .splitlines()[0]))

    async def echo() -> str:
        got = await base.call({"request_id": "req-conformance"}, "echo", value=ECHO_VALUE)
        assert got == ECHO_VALUE, f"echo returned {got!r}"
        return "a nested value with non-ASCII text came back unchanged"

    async def directed() -> str:
        server = await base.call({}, "whoami")
        assert isinstance(server, str) and server, f"whoami returned {server!r}"
        state["server"] = server
        got = await base.prepare(server=server).call({}, "echo", value="direct")
        assert got == "direct", f"echo via {topic}.{server} returned {got!r}"
        return f"server {server!r} answered on {topic}.{server}"

    async def cast() -> str:
        token = uuid.uuid4().hex
        direct = base.prepare(server=state.get("server"))
        await direct.cast({}, "record", token=token)
        async with asyncio.timeout(WAIT):
            while not await direct.call({}, "recorded_tokens", token=token):  # noqa: ASYNC110 - polls what sends no event
                await asyncio.sleep(0.05)  # asking the remote server
        return "a cast arrived (seen by a later call)"

    async def fanout() -> str:
        token = uuid.uuid4().hex
        await base.prepare(fanout=True).cast({}, "record", token=token)
        direct = base.prepare(server=state.get("server"))
        async with asyncio.timeout(WAIT):
            while not await direct.call({}, "recorded_tokens", token=token):  # noqa: ASYNC110 - polls what sends no event
                await asyncio.sleep(0.05)  # asking the remote server
        return f"a fanout cast reached {state.get('server')!r}"

    async def versions() -> str:
        for version in ("1.0", "1.2"):
            assert await base.prepare(version=version).call({}, "echo", value=1) == 1
        for version in ("1.3", "2.0"):
            await _expect_failure(base.prepare(version=version).call({}, "echo", value=1),
                                  relaybus.UnsupportedVersion)
        return await _expect_failure(base.prepare(namespace="other").call({}, "echo", value=1),
                                     relaybus.UnsupportedVersion)

    async def no_such_method() -> str:
        return await _expect_failure(base.call({}, "no_such_method_here"),
                                     relaybus.NoSuchMethod)

    async def remote_error() -> str:
        detail = await _expect_failure(base.call({}, "fail", message="boom 42"), ValueError)
        assert "boom 42" in detail, detail
        return detail

    async def heartbeats() -> str:
        monitored = base.prepare(call_monitor_timeout=2, timeout=WAIT + 5)
        assert await monitored.call({}, "slow", seconds=2.5) == "done"
        return "a 2.5 s call with a 2 s call-monitor timeout completed"

    async def notification() -> str:
        event_type = f"conformance.check.{uuid.uuid4().hex[:8]}"
        await base.call({"user": "kit"}, "emit", event_type=event_type, payload={"n": 1})
        publisher, _, payload, metadata = await collector.wait_for(event_type)
        assert payload == {"n": 1}, f"payload {payload!r}"
        assert publisher and publisher.startswith("conformance."), f"publisher {publisher!r}"
        uuid.UUID(metadata["message_id"])
        assert _TIMESTAMP.match(metadata["timestamp"]), metadata["timestamp"]
        return f"{event_type} from {publisher}"

    async with listener:
        for name, body in [("echo", echo), ("directed call", directed), ("cast", cast),
                           ("fanout cast", fanout), ("version negotiation", versions),
                           ("NoSuchMethod", no_such_method), ("remote error", remote_error),
                           ("call-monitor heartbeats", heartbeats),
                           ("notification", notification)]:
            await check(name, body)
    return results
