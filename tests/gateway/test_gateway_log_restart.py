"""The broker that keeps the shared replay log restarts under a gateway that follows it.

A broker of the test's own (never the shared one): a nats-server with JetStream on file
storage (the replay in a JetStream stream), or a RabbitMQ node with durable queues (the
replay in a stream queue) shut down and started again; a gateway process on it, a browser
that stays connected throughout and one that leaves before the restart. Across the restart
the gateway must stay up and keep serving browsers, lose no event the bus confirmed, give
every event one id and one ``firehoseseq`` (the same on every gateway), and a client
resuming after it (SSE ``Last-Event-ID``, WebSocket ``since=``, on this gateway or a fresh
one) must get exactly what it missed.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from firehose_support import WAIT, GatewayProcess, SSEClient, ws_client, ws_events

import relaybus
from relaybus.errors import MessagingError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from instances import RabbitInstance
from test_nats_support import PrivateNatsServer, require_nats, wait_for_jetstream

from relaybus.testing.brokers import require_program

pytestmark = [pytest.mark.broker, pytest.mark.slow]

# The gateway and the sender reconnect quickly; on NATS a listener's pull request is
# renewed after two missed heartbeats (a restarted server forgot it). On RabbitMQ the queues
# are durable (a deployment that must not lose notifications across a broker restart
# declares them so) and a send may wait out the node's restart.
FAST = {
    "nats": "reconnect_delay=0.05&reconnect_delay_max=0.5&idle_heartbeat=0.5&send_timeout=5",
    "rabbit": "reconnect_delay=0.05&reconnect_delay_max=0.5&send_timeout=60"
              "&amqp_durable_queues=true",
}
PART = 20


class OwnRabbit:
    """A RabbitMQ node of the test's own, shut down cleanly and started again. (A single node
    killed with SIGKILL does not bring its stream queues back on RabbitMQ 3.10: see
    docs/reliability.md.)"""

    def __init__(self) -> None:
        self.instance = RabbitInstance()
        self.url = self.instance.url

    async def stop(self) -> None:
        await asyncio.to_thread(self.instance.shutdown)

    async def start(self) -> None:
        await asyncio.to_thread(self.instance.start)


@pytest.fixture(params=["nats", "rabbit"])
async def log_broker(request: pytest.FixtureRequest,
                     tmp_path: Path) -> AsyncIterator[tuple[str, PrivateNatsServer | OwnRabbit]]:
    if request.param == "nats":
        require_nats()
        server = await PrivateNatsServer(tmp_path / "nats").start()
        await wait_for_jetstream(server.url)
        yield "nats", server
        await server.stop()
        return
    require_program("rabbitmq-server", "for a node of the test's own")
    node = await asyncio.to_thread(OwnRabbit)
    try:
        yield "rabbit", node
    finally:
        await asyncio.to_thread(node.instance.stop)


def cursors(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["id"], e["firehoseseq"]) for e in events]


class Sender:
    """Sends notifications in parts, noting which ones the bus confirmed."""

    def __init__(self, bus: relaybus.Bus) -> None:
        self.notifier = bus.notifier("compute.host1", topics=["notifications"])
        self.confirmed: list[str] = []
        self.failed: list[str] = []

    async def part(self, name: str, count: int = PART) -> None:
        for n in range(count):
            event_type = f"{name}.e{n}"
            try:
                await self.notifier.info({}, event_type, {"n": n})
            except MessagingError:
                self.failed.append(event_type)  # not confirmed: it may or may not arrive
            else:
                self.confirmed.append(event_type)


async def until_healthy(gateway: GatewayProcess) -> None:
    async with asyncio.timeout(WAIT):
        while (await asyncio.to_thread(gateway.request, "GET", "/healthz"))[0] != 200:  # noqa: ASYNC110 - the gateway's answer is all there is to watch
            await asyncio.sleep(0.05)


async def test_a_restart_of_the_log_s_broker_loses_nothing_confirmed(
        start_gateway: Callable[..., GatewayProcess],
        log_broker: tuple[str, PrivateNatsServer | OwnRabbit]) -> None:
    kind, broker = log_broker
    exchange = f"fhrs_{uuid.uuid4().hex[:8]}"
    bus_url = f"{broker.url}?control_exchange={exchange}&{FAST[kind]}"
    args = ["--pool", f"{exchange}-firehose", "--replay-log", f"{exchange}-replay"]
    gateway = start_gateway(*args, bus=bus_url)
    topics = [f"{exchange}/#"]
    bus = await relaybus.connect(bus_url)
    try:
        sender = Sender(bus)
        async with ws_client(gateway.ws_url(topics)) as follower:
            leaver = await SSEClient.open(gateway.port, f"/events?topic={exchange}/%23")
            await sender.part("before")
            seen = await ws_events(follower, PART)
            left_at = (await leaver.events(PART))[-1]
            await leaver.close()

            await broker.stop()
            # Down: the gateway keeps serving browsers, from what it holds.
            async with ws_client(gateway.ws_url(topics, since=seen[0]["id"])) as during:
                assert cursors(await ws_events(during, PART - 1)) == cursors(seen[1:])
            sending = asyncio.create_task(sender.part("during"))
            await broker.start()
            await sending
            await sender.part("after")
            await until_healthy(gateway)

            # Every confirmed event reaches the browser that stayed, once, in log order;
            # one not confirmed may have been stored too.
            expected = len(sender.confirmed)
            controls: list[dict[str, Any]] = []
            seen += await ws_events(follower, expected - PART, controls)
            marker = f"{exchange}.marker"
            await sender.notifier.info({}, marker, {})
            while seen[-1]["type"] != marker:
                seen += await ws_events(follower, 1, controls)
        assert controls == []
        types = [e["type"] for e in seen[:-1]]
        assert set(sender.confirmed) <= set(types) <= set(sender.confirmed + sender.failed)
        assert len(types) == len(set(types))
        offsets = [e["firehoseseq"] for e in seen]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
        missed = [e for e in seen if e["firehoseseq"] > left_at["firehoseseq"]]

        # The client that left resumes (SSE Last-Event-ID) and gets exactly what it missed.
        sse = await SSEClient.open(gateway.port, f"/events?topic={exchange}/%23",
                                   {"Last-Event-ID": str(left_at["firehoseseq"])})
        resumed_controls: list[dict[str, Any]] = []
        resumed = await sse.events(len(missed), resumed_controls)
        await sse.close()
        assert cursors(resumed) == cursors(missed) and resumed_controls == []

        # The same on a gateway started after the restart (WebSocket since=): the ids and
        # offsets are the log's, not one process's.
        fresh = start_gateway(*args, bus=bus_url)
        async with ws_client(fresh.ws_url(topics, since=str(left_at["firehoseseq"]))) as ws:
            on_fresh = await ws_events(ws, len(missed), resumed_controls)
        assert cursors(on_fresh) == cursors(missed) and resumed_controls == []
        assert gateway.process is not None and gateway.process.poll() is None
    finally:
        await bus.close()
