"""Scenario 14: oversized bodies on every transport.

Requests and notifications just over the receiver's ``max_message_size`` (8 MiB + 10 B)
and far over it (100 MB, where the broker takes it), published straight to the broker
past the sender's own check. Before issue 12 RabbitMQ and NATS decoded and handled them
(only memory:// checked received sizes). The promise: none reaches a handler, each is
refused before it is decoded and counted (``too-large``), the server and the listener keep
consuming, and the receiver's memory stays under twice the limit: an oversized body is
never assembled (before, RabbitMQ's client assembled a 100 MB body and peaked at 309 MB).
"""

from __future__ import annotations

import asyncio
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from figures import Figures
from raw import RawPeer
from transports import unique

import relaybus
from relaybus import Target
from relaybus.message import build_notification, build_request, pack

LIMIT = 8 * 1024 * 1024
SIZES = (LIMIT + 10, 100 * 1000 * 1000)
WAIT = 30.0


def _request(size: int) -> bytes:
    body = pack(build_request("record", {"value": ""}, {}))
    return body.replace(b'\\"value\\":\\"\\"', b'\\"value\\":\\"' + b"x" * (size - len(body))
                        + b'\\"')


def _notification(size: int) -> bytes:
    body = pack(build_notification("p", "big", "info", "", {}))
    return body.replace(b'\\"payload\\":\\"\\"',
                        b'\\"payload\\":\\"' + b"x" * (size - len(body)) + b'\\"')


_PUBLISHER = """
import asyncio, sys
sys.path.insert(0, {here!r})
import sc_oversized
from raw import RawPeer

async def main():
    async with RawPeer("rabbit", {url!r}) as peer:
        for kind, name, size in {plan!r}:
            make = sc_oversized._request if kind == "rpc" else sc_oversized._notification
            await peer.publish(kind, name, make(size))

asyncio.run(main())
"""


async def _publish_from_another_process(url: str, plan: list[tuple[str, str, int]]) -> None:
    """RabbitMQ: publish from a child process, so that the memory traced here is the
    receiver's alone (the sender's frames would otherwise double it)."""
    script = _PUBLISHER.format(here=str(Path(__file__).parent), url=url, plan=plan)
    child = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
    if await asyncio.wait_for(child.wait(), WAIT) != 0:
        raise RuntimeError("the publishing process failed")


async def run(transport: str, url: str) -> Figures:
    figures = Figures("oversized bodies", transport)
    topic, ntopic = unique("big"), unique("big_n")
    ran: list[Any] = []
    got: list[Any] = []
    arrived = asyncio.Event()

    class Server:
        async def record(self, ctxt: Any, value: Any) -> None:
            ran.append(len(value))

        async def echo(self, ctxt: Any, value: Any) -> Any:
            return value

    class Listener:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:
            got.append(payload)
            arrived.set()

    plan = [(kind, name, size) for size in SIZES for kind, name in (("rpc", topic),
                                                                    ("notify", ntopic))]
    bodies = [] if transport == "rabbit" else [
        (kind, name, (_request if kind == "rpc" else _notification)(size))
        for kind, name, size in plan]
    tracemalloc.start()
    try:
        async with await relaybus.connect(url, max_message_size=LIMIT) as bus, \
                RawPeer(transport, url) as peer:
            async with bus.rpc_server(Target(topic=topic, server="s1"), [Server()]), \
                    bus.notification_listener([Target(topic=ntopic)], [Listener()]):
                baseline = tracemalloc.get_traced_memory()[0]
                tracemalloc.reset_peak()
                if transport == "rabbit":
                    figures.sent += len(plan)
                    await _publish_from_another_process(url, plan)
                for kind, name, body in bodies:
                    figures.sent += 1
                    try:
                        await peer.publish(kind, name, body)
                    except Exception as exc:  # noqa: BLE001 - NATS: over max_payload
                        figures.error(f"refused by the broker ({type(exc).__name__})")
                client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
                alive = await client.call({}, "echo", value="alive") == "alive"
                await bus.notifier("p", topics=[ntopic]).info({}, "small", "end")
                async with asyncio.timeout(WAIT):
                    while "end" not in got:
                        arrived.clear()
                        await arrived.wait()
                peak = tracemalloc.get_traced_memory()[1] - baseline
            refused = dict(bus.driver.intake.refused)  # type: ignore[attr-defined]
            if transport == "memory":  # a body over a queue's byte limit never waits in it
                dropped = bus.driver.broker.dropped()  # type: ignore[attr-defined]
                for name in (topic, f"{ntopic}.info"):
                    if dropped.get(name):
                        figures.errors["refused by the broker (queue limit)"] += dropped[name]
    finally:
        tracemalloc.stop()
    for reason, count in refused.items():
        figures.errors[f"refused: {reason}"] = count
    by_broker = sum(v for k, v in figures.errors.items() if k.startswith("refused by the broker"))
    figures.received = len(ran) + len([p for p in got if p != "end"])
    figures.check("the server and the listener kept consuming", alive and "end" in got)
    figures.check("no oversized body reached a handler", figures.received == 0)
    figures.check("each one refused (by relaybus or the broker)",
                  refused.get("too-large", 0) + by_broker == figures.sent)
    # nothing over the limit is ever assembled (RabbitMQ: body frames are counted and
    # dropped as they arrive), so the receiver's peak stays far below one oversized body
    bound = 2 * LIMIT
    figures.check(f"peak memory under {bound >> 20} MiB", peak < bound)
    figures.notes.append(f"bodies of {', '.join(f'{s:,}' for s in SIZES)} bytes; peak traced "
                         f"memory {peak / 1e6:.0f} MB")
    return figures
