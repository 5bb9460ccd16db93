"""A silent partition is noticed by the keep-alives, and the bus recovers when it heals.

A proxy between the bus and the shared broker stops forwarding what the broker sends
(sockets stay open: no RST, no FIN), as a firewall eating packets would. With short
keep-alives the driver must declare the connection lost by itself, and serve again once
the proxy forwards. Timings live in benchmarks/partition_detection.py and
docs/partitions.md; here the bounds are only the generous test timeouts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from lossy_proxy import HOST, LossyProxy

import relaybus
from relaybus import Target
from relaybus.testing.brokers import require_broker

pytestmark = [pytest.mark.broker]

WAIT = 30.0

CASES = {
    "rabbit": (5672, "rabbit://guest:guest@{host}:{port}/", {"heartbeat": 1},
               "connection lost"),
    "nats": (4222, "nats://{host}:{port}", {"ping_interval": 0.5},
             "lost the connection to NATS"),
}


class Echo:
    async def echo(self, ctxt: Any, value: int) -> int:
        return value


class _Seen(logging.Handler):
    def __init__(self, marker: str) -> None:
        super().__init__(logging.WARNING)
        self.marker = marker
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.marker in record.getMessage():
            self.event.set()


@pytest.fixture
async def seen_log() -> AsyncIterator[list[_Seen]]:
    handlers: list[_Seen] = []
    yield handlers
    for handler in handlers:
        logging.getLogger("relaybus").removeHandler(handler)


async def _call_until_it_works(client: Any) -> int:
    async with asyncio.timeout(WAIT):
        while True:
            try:
                return int(await client.call({}, "echo", value=7))
            except (relaybus.MessagingTimeout, relaybus.TransportError):
                continue  # reconnecting: each attempt waits for its own short timeout


@pytest.mark.parametrize("transport", sorted(CASES))
async def test_silent_partition_is_noticed_and_healed(
        transport: str, seen_log: list[_Seen]) -> None:
    upstream, url, options, marker = CASES[transport]
    require_broker(transport, HOST, upstream)
    seen = _Seen(marker)
    seen_log.append(seen)
    logging.getLogger("relaybus").addHandler(seen)
    proxy = await LossyProxy(upstream).start()
    topic = f"partition_heal_{transport}"
    try:
        bus = await relaybus.connect(url.format(host=HOST, port=proxy.port), **options)
        async with bus, bus.rpc_server(Target(topic=topic, server="s1"), [Echo()]):
            client = bus.rpc_client(Target(topic=topic), timeout=2)
            assert await client.call({}, "echo", value=1) == 1
            proxy.swallow = "down"  # the broker's bytes vanish; nothing is closed
            await asyncio.wait_for(seen.event.wait(), WAIT)
            proxy.cut()  # the network heals (old sockets are gone by now anyway)
            assert await _call_until_it_works(client) == 7
    finally:
        await proxy.close()
