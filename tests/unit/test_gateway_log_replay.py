"""The gateway's replay kept in a log: catching a resuming client up, against a log in memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import relaybus
from relaybus.errors import TransportError
from relaybus.gateway.events import encode
from relaybus.gateway.hub import Dropped, Gap, Hub, Item, Subscriber
from relaybus.gateway.logreplay import LogReplay
from relaybus.gateway.replay import ReplayBuffer
from relaybus.gateway.tap import _Endpoint
from relaybus.gateway.topics import DEFAULT_TEMPLATE, FilterSet, TopicTemplate
from relaybus.transport.eventlog import EventLog, Record, Start


class MemoryLog(EventLog):
    """A log in a list; ``first`` is the oldest offset retention kept."""

    def __init__(self) -> None:
        self.name = "test-log"
        self.records: list[Record] = []
        self.first = 0
        self.readers = 0
        self.reads: list[Start] = []
        self.lose_at: int | None = None  # a read reaching this offset loses its connection
        self._grown = asyncio.Condition()

    async def append(self, body: bytes) -> None:
        async with self._grown:
            self.records.append(Record(len(self.records), body))
            self._grown.notify_all()

    async def read(self, start: Start) -> AsyncGenerator[Record, None]:
        position = len(self.records) - 1 if start == "last" else (
            len(self.records) if start == "next" else max(start, self.first))
        self.readers += 1
        self.reads.append(start)
        try:
            while True:
                async with self._grown:
                    await self._grown.wait_for(lambda at=position: len(self.records) > at)
                if position == self.lose_at:
                    self.lose_at = None
                    raise TransportError("the broker restarted")
                yield self.records[position]
                position += 1
        finally:
            self.readers -= 1

    async def delete(self) -> None:
        self.records.clear()

    async def close(self) -> None:
        pass


def body(n: int, topic: str = "nova/x") -> bytes:
    return encode({"id": f"m{n}", "type": f"t{n}", "firehosetopic": topic, "data": n})


async def setup(count: int, ingested: range, max_resume: int = 100,
                ) -> tuple[MemoryLog, Hub, LogReplay]:
    log = MemoryLog()
    for n in range(count):
        await log.append(body(n))
    hub = Hub(ReplayBuffer(100))
    replay = LogReplay(log, hub, max_resume)
    hub.history = replay
    for n in ingested:
        event = replay.event(log.records[n])
        assert event is not None
        hub.ingest(event.id, event.topic, event.type, event.json, n)
    replay.primed.set()
    return log, hub, replay


async def take(subscriber: Subscriber, count: int) -> list[Item]:
    found: list[Item] = []
    async with asyncio.timeout(5):
        while len(found) < count:
            found += await subscriber.take()
    return found


def kinds(items: list[Item]) -> list[object]:
    return [type(i).__name__ if isinstance(i, (Gap, Dropped)) else i.offset  # type: ignore[union-attr]
            for i in items]


async def test_a_resume_older_than_the_buffer_reads_the_log_then_goes_on_live() -> None:
    log, hub, replay = await setup(10, range(8, 10))
    subscriber = hub.subscribe("c", FilterSet.parse(["nova/#"]), since="3")
    assert subscriber.held
    # A live event arrives while the log is being read: it waits, and comes once, after.
    await log.append(body(10))
    event = replay.event(log.records[10])
    assert event is not None
    hub.ingest(event.id, event.topic, event.type, event.json, 10)
    assert kinds(await take(subscriber, 7)) == [4, 5, 6, 7, 8, 9, 10]
    assert not subscriber.held and subscriber.queued == 0
    hub.close()
    await replay.close()


async def test_the_cursor_is_the_offset_the_same_for_every_reader() -> None:
    _, hub, replay = await setup(3, range(3))
    subscriber = hub.subscribe("c", FilterSet.parse(["nova/#"]), since="0")
    (one, two) = await take(subscriber, 2)
    assert (one.cursor, two.cursor) == ("1", "2")  # type: ignore[union-attr]
    assert one.json.startswith(b'{"firehoseseq":1,') and b'"id":"m1"' in one.json  # type: ignore[union-attr]
    assert one.sse_frame.startswith(b"id: 1\n")  # type: ignore[union-attr]
    # Resuming with an event id this gateway holds works too; one it does not hold is a
    # gap marker, then all the buffer holds (as without a log).
    by_id = hub.subscribe("d", FilterSet.parse(["nova/#"]), since="m1")
    assert kinds(await take(by_id, 1)) == [2]
    unknown = hub.subscribe("e", FilterSet.parse(["nova/#"]), since="nope")
    assert kinds(await take(unknown, 4)) == ["Gap", 0, 1, 2]
    hub.close()
    await replay.close()


async def test_further_back_than_max_resume_is_a_gap_then_the_newest() -> None:
    _, hub, replay = await setup(10, range(9, 10), max_resume=3)
    subscriber = hub.subscribe("c", FilterSet.parse(["nova/#"]), since="1")
    items = await take(subscriber, 4)
    assert kinds(items) == ["Gap", 7, 8, 9]
    assert isinstance(items[0], Gap) and items[0].oldest == "7" and items[0].replayed == 3
    hub.close()
    await replay.close()


async def test_older_than_the_retention_is_a_gap_then_all_the_log_keeps() -> None:
    log, hub, replay = await setup(10, range(9, 10))
    log.first = 6
    subscriber = hub.subscribe("c", FilterSet.parse(["nova/#"]), since="2")
    items = await take(subscriber, 5)
    assert kinds(items) == ["Gap", 6, 7, 8, 9]
    assert isinstance(items[0], Gap) and items[0].oldest == "6"
    hub.close()
    await replay.close()


async def test_filters_apply_to_what_is_read_from_the_log() -> None:
    log, hub, replay = await setup(0, range(0))
    for n in range(6):
        await log.append(body(n, "nova/x" if n % 2 else "glance/y"))
    for n in range(5, 6):
        event = replay.event(log.records[n])
        assert event is not None
        hub.ingest(event.id, event.topic, event.type, event.json, n)
    subscriber = hub.subscribe("c", FilterSet.parse(["nova/#"]), since="0")
    assert kinds(await take(subscriber, 3)) == [1, 3, 5]
    hub.close()
    await replay.close()


async def test_a_client_that_leaves_while_catching_up_stops_its_reader() -> None:
    log, hub, replay = await setup(3, range(0))  # nothing ingested: the end is not known
    subscriber = hub.subscribe("c", FilterSet.parse(["nova/#"]), since="0")
    assert kinds(await take(subscriber, 2)) == [1, 2]
    assert log.readers == 1 and subscriber.held  # waiting for the live events to begin
    hub.unsubscribe(subscriber)
    async with asyncio.timeout(5):
        while log.readers:  # noqa: ASYNC110 - the reader's end has no event to await
            await asyncio.sleep(0.01)
    await replay.close()


async def test_a_catch_up_that_loses_the_log_reads_on_from_where_it_was() -> None:
    log, hub, replay = await setup(10, range(8, 10))
    log.lose_at = 6
    subscriber = hub.subscribe("c", FilterSet.parse(["nova/#"]), since="3")
    # No gap marker, nothing twice: the second read starts after the last event given.
    assert kinds(await take(subscriber, 6)) == [4, 5, 6, 7, 8, 9]
    assert log.reads == [4, 6] and not subscriber.held
    hub.close()
    await replay.close()


async def test_the_follower_reads_on_after_a_lost_connection() -> None:
    log, hub, replay = await setup(3, range(0))
    log.lose_at = 4
    follower = asyncio.create_task(replay.follow())

    async def until_ingested(offset: int) -> None:
        async with asyncio.timeout(5):
            while hub.last_offset != offset:  # noqa: ASYNC110 - the hub has no event to await
                await asyncio.sleep(0.01)

    await until_ingested(2)
    for n in range(3, 6):
        await log.append(body(n))
    await until_ingested(5)
    assert log.reads == ["last", 4] and hub.counters.events_in == 4  # 2 (the last), 3, 4, 5
    follower.cancel()
    hub.close()
    await replay.close()


async def test_the_tap_appends_until_the_log_takes_the_event() -> None:
    # A log whose broker restarts refuses for a while: the notification must wait (it is
    # acknowledged only once appended), not be dropped by the listener's policy.
    refusals = [TransportError("404 home node down"), TransportError("still down")]
    appended: list[bytes] = []

    async def append(body: bytes) -> None:
        if refusals:
            raise refusals.pop(0)
        appended.append(body)

    endpoint = _Endpoint(Hub(ReplayBuffer(100)), TopicTemplate(DEFAULT_TEMPLATE), "nova",
                         "notifications", append)
    await endpoint.info({}, "compute.host1", "compute.instance.create.end", {},
                        {"message_id": "m1", "timestamp": ""})
    assert refusals == [] and len(appended) == 1 and b'"id":"m1"' in appended[0]


async def test_a_stopping_tap_gives_an_unlogged_event_back_to_the_bus() -> None:
    # While the gateway stops, a log that refuses must not cost the event: its
    # notification is requeued (for the next gateway), not given up by the policy.
    async def append(body: bytes) -> None:
        raise TransportError("404 home node down")

    stopping = asyncio.Event()
    stopping.set()
    endpoint = _Endpoint(Hub(ReplayBuffer(100)), TopicTemplate(DEFAULT_TEMPLATE), "nova",
                         "notifications", append, stopping)
    result = await endpoint.info({}, "compute.host1", "compute.instance.create.end", {},
                                 {"message_id": "m2", "timestamp": ""})
    assert result == relaybus.NotificationResult.REQUEUE
