"""Scenario 10: a sync handler blocks for several heartbeat intervals.

Sync endpoint methods run in worker threads, so the event loop keeps answering broker
heartbeats and other calls: the connection must survive (same broker-side connection
before and after, for RabbitMQ: checked with rabbitmqctl, not the client) and other calls
must be served meanwhile.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from figures import Figures
from rabbitctl import rabbitmqctl
from transports import unique

import relaybus
from relaybus import Target

HEARTBEAT = 1
BLOCK = 5.0


class Blocking:
    def block(self, ctxt: Any, seconds: float) -> str:
        time.sleep(seconds)
        return "unblocked"

    async def echo(self, ctxt: Any, value: Any) -> Any:
        return value


def _connections() -> set[str]:
    lines = rabbitmqctl("list_connections", "--no-table-headers", "name").splitlines()
    return {line.strip() for line in lines if line.strip()}


async def run(transport: str, url: str) -> Figures:
    figures = Figures("blocked handler", transport)
    topic = unique("blocked")
    server_url = f"{url}?heartbeat={HEARTBEAT}" if transport == "rabbit" else url
    before = _connections() if transport == "rabbit" else set()
    async with await relaybus.connect(server_url) as server_bus, \
            await relaybus.connect(url) as client_bus:
        ours = (_connections() - before) if transport == "rabbit" else set()
        async with server_bus.rpc_server(Target(topic=topic, server="s1"), [Blocking()]):
            client = client_bus.rpc_client(Target(topic=topic), timeout=BLOCK + 10)
            blocked = asyncio.ensure_future(client.call({}, "block", seconds=BLOCK))
            latencies = []
            while not blocked.done():
                started = time.perf_counter()
                assert await client.call({}, "echo", value=1) == 1
                latencies.append(time.perf_counter() - started)
                figures.sent += 1
                await asyncio.wait({blocked}, timeout=0.25)
            figures.check("blocking call completed", await blocked == "unblocked")
        figures.received = len(latencies)
        figures.check("other calls served while it blocked", len(latencies) >= BLOCK * 2)
        figures.recovery_s = max(latencies)
        if transport == "rabbit":
            after = _connections()
            figures.check("the broker kept the same connections", ours <= after and ours)
            figures.notes.append(f"heartbeat {HEARTBEAT} s, handler blocked {BLOCK:.0f} s; "
                                 f"{len(ours)} connection(s) of this scenario survived")
    figures.notes.append(f"{len(latencies)} calls served during the block, slowest "
                         f"{max(latencies) * 1000:.1f} ms")
    return figures
