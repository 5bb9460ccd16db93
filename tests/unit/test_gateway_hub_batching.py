"""The hub wakes writers together: a burst reaches each client as one batch."""

from __future__ import annotations

import asyncio

from relaybus.gateway.hub import WAKE_CHUNK, Hub, Item, Subscriber
from relaybus.gateway.replay import ReplayBuffer
from relaybus.gateway.topics import FilterSet


async def _writer(subscriber: Subscriber, batches: list[list[Item]]) -> None:
    while batch := await subscriber.take():
        batches.append(batch)


async def test_a_burst_after_a_wake_up_of_many_goes_out_as_one_batch_per_client() -> None:
    hub = Hub(ReplayBuffer(100))
    subscribers = [hub.subscribe(f"c{i}", FilterSet.parse(["#"])) for i in range(3)]
    batches: list[list[list[Item]]] = [[] for _ in subscribers]
    writers = [asyncio.create_task(_writer(subscriber, got))
               for subscriber, got in zip(subscribers, batches, strict=True)]
    await asyncio.sleep(0)  # every writer waits
    hub.ingest("e0", "a/b", "t", b'{"n":0}')
    async with asyncio.timeout(5):
        while any(not b for b in batches):  # noqa: ASYNC110 - the writers have no event
            await asyncio.sleep(0)
    # Three were woken: the next wake-up waits a little, so these three travel together.
    for n in range(1, 4):
        hub.ingest(f"e{n}", "a/b", "t", b'{"n":%d}' % n)
        await asyncio.sleep(0)
    async with asyncio.timeout(5):
        while any(len(b) < 2 for b in batches):  # noqa: ASYNC110 - as above
            await asyncio.sleep(0.001)
    hub.close()
    await asyncio.gather(*writers)
    for got in batches:
        assert [[e.id for e in batch] for batch in got] == [  # type: ignore[union-attr]
            ["e0"], ["e1", "e2", "e3"]]


async def test_a_lone_client_is_woken_at_once() -> None:
    hub = Hub(ReplayBuffer(100))
    subscriber = hub.subscribe("c", FilterSet.parse(["#"]))
    for n in range(3):
        hub.ingest(f"e{n}", "a/b", "t", b"{}")
        async with asyncio.timeout(5):
            assert [e.id for e in await subscriber.take()] == [f"e{n}"]  # type: ignore[union-attr]
    hub.close()


async def test_a_pass_over_many_writers_lets_the_loop_run_between_chunks() -> None:
    hub = Hub(ReplayBuffer(100))
    subscribers = [hub.subscribe(f"c{i}", FilterSet.parse(["#"]))
                   for i in range(WAKE_CHUNK * 2 + 1)]
    woken: list[int] = []

    def count() -> None:
        woken.append(sum(s._wakeup.is_set() for s in subscribers))
        if woken[-1] < len(subscribers):
            asyncio.get_running_loop().call_soon(count)

    hub.ingest("e0", "a/b", "t", b"{}")
    asyncio.get_running_loop().call_soon(count)
    async with asyncio.timeout(5):
        while not woken or woken[-1] < len(subscribers):  # noqa: ASYNC110 - counted above
            await asyncio.sleep(0)
    assert woken == [WAKE_CHUNK, WAKE_CHUNK * 2, WAKE_CHUNK * 2 + 1]
    assert all(s.queued == 1 for s in subscribers)
    hub.close()


async def test_a_resume_while_events_wait_for_the_flush_gets_each_once() -> None:
    hub = Hub(ReplayBuffer(100))
    for n in range(1, 4):
        hub.ingest(f"e{n}", "a/b", "t", b"{}")  # queued for subscribers at the next flush
    resumed = hub.subscribe("r", FilterSet.parse(["#"]), since="e1")
    hub.ingest("e4", "a/b", "t", b"{}")
    got: list[str] = []
    async with asyncio.timeout(5):
        while len(got) < 3:
            got += [e.id for e in await resumed.take()]  # type: ignore[union-attr]
    assert got == ["e2", "e3", "e4"] and resumed.queued == 0
    hub.close()
