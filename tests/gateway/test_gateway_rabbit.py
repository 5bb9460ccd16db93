"""The gateway on RabbitMQ, with the notifier in a process of its own (functional)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest
from firehose_support import ROOT, WAIT, GatewayProcess, SSEClient, types_of, ws_client, ws_events

import relaybus
from relaybus import Target

pytestmark = pytest.mark.broker

RABBIT_URL = "rabbit://guest:guest@127.0.0.1:5672/"
NOTIFIER = """
import asyncio, sys, relaybus
async def main():
    async with await relaybus.connect(sys.argv[1], control_exchange=sys.argv[2]) as bus:
        notifier = bus.notifier("compute.host1", topics=["notifications"])
        for event_type in sys.argv[3:]:
            await notifier.info({"user": "admin"}, event_type, {"type": event_type})
asyncio.run(main())
"""


async def notify(exchange: str, *types: str) -> None:
    """Send notifications from a separate process."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", NOTIFIER, RABBIT_URL,
                                                   exchange, *types, cwd=ROOT)
    async with asyncio.timeout(WAIT):
        assert await process.wait() == 0


class Pool:
    def __init__(self) -> None:
        self.types: list[str] = []
        self.changed = asyncio.Event()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        self.types.append(event_type)
        self.changed.set()


async def test_the_gateway_follows_a_notifier_process_and_steals_from_no_pool(
        start_gateway: Callable[..., GatewayProcess], exchange: str) -> None:
    gateway = start_gateway("--pool", f"{exchange}-firehose",
                            bus=f"{RABBIT_URL}?control_exchange={exchange}")
    metering = Pool()
    async with await relaybus.connect(RABBIT_URL, control_exchange=exchange) as bus, \
            bus.notification_listener([Target(topic="notifications")], [metering],
                                      pool=f"{exchange}-metering"):
        sse = await SSEClient.open(gateway.port, f"/events?topic={exchange}/%23")
        await sse.message()  # hello: subscribed
        await notify(exchange, "compute.instance.create.start", "compute.instance.create.end")
        got = await sse.events(2)
        await sse.close()
        async with asyncio.timeout(WAIT):
            while len(metering.types) < 2:
                metering.changed.clear()
                await metering.changed.wait()
    assert types_of(got) == metering.types == ["compute.instance.create.start",
                                               "compute.instance.create.end"]
    assert got[1]["firehosetopic"] == f"{exchange}/compute.host1/compute/instance/create/end"
    assert got[1]["busexchange"] == exchange and got[1]["data"] == {
        "type": "compute.instance.create.end"}


@pytest.mark.parametrize("replay_log", ["", "none"], ids=["log", "in-process"])
async def test_notifications_sent_while_the_gateway_is_down_are_not_lost(
        start_gateway: Callable[..., GatewayProcess], exchange: str, replay_log: str) -> None:
    bus = f"{RABBIT_URL}?control_exchange={exchange}"
    args = ("--pool", f"{exchange}-firehose", "--replay-log", replay_log)
    first = start_gateway(*args, bus=bus)
    async with ws_client(first.ws_url()) as websocket:
        await notify(exchange, "before")
        (before,) = await ws_events(websocket, 1)
    assert first.stop() == 0
    await notify(exchange, "while.down.0", "while.down.1", "while.down.2")
    second = start_gateway(*args, bus=bus)
    controls: list[dict[str, Any]] = []
    # A client resumes after the cursor it was given: the log offset when there is a log.
    since = str(before.get("firehoseseq", before["id"]))
    async with ws_client(second.ws_url(since=since)) as websocket:
        await notify(exchange, "after")
        after = await ws_events(websocket, 4, controls)
    assert types_of(after) == ["while.down.0", "while.down.1", "while.down.2", "after"]
    if replay_log == "none":
        # The new gateway never saw 'before': it says so, and replays all it has.
        assert [c["kind"] for c in controls] == ["gap"] and controls[0]["since"] == before["id"]
    else:
        # It read 'before' back from the broker's log: nothing is missing.
        assert controls == []
