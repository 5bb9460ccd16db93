"""The replay kept in the broker's log: two gateway processes, a client moving between them.

On RabbitMQ (a stream queue) and NATS (a JetStream stream), each test with an exchange, a
pool and a log of its own, deleted at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiormq
import nats
import pytest
from firehose_support import GatewayProcess, SSEClient, types_of, ws_client, ws_events

import relaybus
from relaybus.testing.brokers import require_broker
from relaybus.transport.eventlog import Retention

pytestmark = pytest.mark.broker

MAX_BYTES = 8 * 1024 * 1024

URLS = {"rabbit": ("rabbit://guest:guest@127.0.0.1:5672/", 5672),
        "nats": ("nats://127.0.0.1:4222", 4222)}


class Setup:
    """One test's names on one broker."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.url, port = URLS[transport]
        require_broker(transport, "127.0.0.1", port)
        self.exchange = f"fhlog_{uuid.uuid4().hex[:10]}"
        self.pool = f"{self.exchange}-firehose"
        self.log = f"{self.exchange}-replay"
        self.sent = 0

    @property
    def bus_url(self) -> str:
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}control_exchange={self.exchange}"

    def args(self, *extra: str) -> list[str]:
        return ["--pool", self.pool, "--replay-log", self.log, "--replay-max-age", "600",
                "--replay-max-bytes", str(MAX_BYTES), *extra]

    async def notify(self, bus: relaybus.Bus, count: int) -> list[str]:
        """Send ``count`` notifications; returns their event types, in order."""
        notifier = bus.notifier("compute.host1", topics=["notifications"])
        types = []
        for _ in range(count):
            types.append(f"step.n{self.sent}")
            self.sent += 1
            await notifier.info({}, types[-1], {"n": self.sent})
        return types

    async def clean_up(self) -> None:
        async with await relaybus.connect(self.bus_url) as bus:
            log = await bus.driver.event_log(self.log, Retention(600, MAX_BYTES))
            await log.delete()
            await log.close()
        if self.transport == "rabbit":
            connection = await aiormq.connect("amqp://guest:guest@127.0.0.1:5672/")
            channel = await connection.channel()
            await channel.queue_delete(self.pool)
            await connection.close()
        else:
            client = await nats.connect("nats://127.0.0.1:4222")
            js = client.jetstream()
            streams = await js.streams_info()
            for info in streams:
                if self.exchange in info.config.name:
                    await js.delete_stream(info.config.name)
            await client.close()


@pytest.fixture(params=["rabbit", "nats"])
async def setup(request: pytest.FixtureRequest) -> AsyncIterator[Setup]:
    names = Setup(request.param)
    try:
        yield names
    finally:
        await names.clean_up()


def cursors(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["id"], e["firehoseseq"]) for e in events]


async def test_a_client_resumes_on_another_gateway_and_after_a_restart(
        start_gateway: Callable[..., GatewayProcess], setup: Setup) -> None:
    first = start_gateway(*setup.args(), bus=setup.bus_url)
    second = start_gateway(*setup.args(), bus=setup.bus_url)
    topics = [f"{setup.exchange}/#"]
    async with await relaybus.connect(setup.bus_url) as bus:
        async with ws_client(first.ws_url(topics)) as websocket:
            sent = await setup.notify(bus, 3)
            seen = await ws_events(websocket, 3)
        # Both gateways take turns with the notifications of their pool and append them
        # to the log; the log's order (which every gateway gives) is the order they
        # appended in, so events sent together may come in another order than sent.
        assert sorted(types_of(seen)) == sent
        missed = await setup.notify(bus, 3)

        # The same client on the other gateway (SSE: Last-Event-ID) gets exactly what it
        # missed, with the ids and offsets the first gateway gives them.
        last = str(seen[-1]["firehoseseq"])
        sse = await SSEClient.open(second.port, f"/events?topic={setup.exchange}/%23",
                                   {"Last-Event-ID": last})
        on_second = await sse.events(3)
        marker = await setup.notify(bus, 1)
        (next_one,) = await sse.events(1)
        await sse.close()
        async with ws_client(first.ws_url(topics, since=last)) as websocket:
            on_first = await ws_events(websocket, 4)
        assert sorted(types_of(on_second)) == missed and types_of([next_one]) == marker
        assert cursors([*on_second, next_one]) == cursors(on_first)
        offsets = [e["firehoseseq"] for e in [*seen, *on_first]]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)

        # A gateway restarted holds nothing in memory: it reads what was missed from the
        # log, then goes on live, with no event twice.
        assert second.stop() == 0
        restarted = start_gateway(*setup.args(), bus=setup.bus_url)
        controls: list[dict[str, Any]] = []
        async with ws_client(restarted.ws_url(topics, since=last)) as websocket:
            replayed = await ws_events(websocket, 4, controls)
            after = await setup.notify(bus, 1)
            (live,) = await ws_events(websocket, 1, controls)
        assert cursors(replayed) == cursors(on_first) and controls == []
        assert types_of([live]) == after

        # Further back than --replay-events: a gap marker, then the newest events.
        capped = start_gateway(*setup.args("--replay-events", "2"), bus=setup.bus_url)
        controls = []
        async with ws_client(capped.ws_url(topics, since=str(seen[0]["firehoseseq"]))) \
                as websocket:
            newest = await ws_events(websocket, 2, controls)
        assert [c["kind"] for c in controls] == ["gap"]
        assert cursors(newest) == cursors([next_one, live])
        assert controls[0]["oldest"] == str(next_one["firehoseseq"])
        stats = await restarted.stats()
        assert stats["replay_log"]["log"] == setup.log
