"""memory:// keeps nothing without bound: queues nobody takes from, slow consumers, taps.

Queues are limited like a RabbitMQ queue with ``x-max-length``/``x-max-length-bytes`` and
``overflow: drop-head``; consumers hold at most a prefetch of bodies.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

import relaybus
from relaybus import InvalidTransportURL, Target
from relaybus.drivers.memory import broker as broker_module
from relaybus.drivers.memory.broker import CONSUMER_PREFETCH, MemoryBroker, QueueLimits
from relaybus.testing.behaviour import WAIT

DROP_LOG = "over its limit"


class Counting:
    """A notification endpoint that records payloads and says when it has ``expected``."""

    def __init__(self, expected: int) -> None:
        self.payloads: list[Any] = []
        self.expected = expected
        self.done = asyncio.Event()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.payloads.append(payload)
        if len(self.payloads) >= self.expected:
            self.done.set()


def _broker(bus: relaybus.Bus) -> MemoryBroker:
    return bus.driver.broker  # type: ignore[attr-defined, no-any-return]


def _drop_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if DROP_LOG in r.getMessage()]


@pytest.fixture
async def small_bus(request: pytest.FixtureRequest) -> AsyncIterator[relaybus.Bus]:
    name = request.node.name.replace("[", "_").replace("]", "")
    async with await relaybus.connect(
            f"memory://{name}?max_queue_length=50&max_queue_bytes=1048576") as bus:
        yield bus


async def test_default_pool_queue_is_bounded_when_only_named_pools_listen(
        small_bus: relaybus.Bus, caplog: pytest.LogCaptureFixture) -> None:
    named = Counting(200)
    notifier = small_bus.notifier("p", topics=["bounded_pool"])
    with caplog.at_level(logging.WARNING, logger="relaybus"):
        async with small_bus.notification_listener([Target(topic="bounded_pool")], [named],
                                                   pool="named"):
            for n in range(200):
                await notifier.info({}, "e", {"n": n})
            await asyncio.wait_for(named.done.wait(), WAIT)
    assert len(named.payloads) == 200  # the named pool lost nothing
    broker = _broker(small_bus)
    assert broker.depth("bounded_pool.info")[0] == 50
    assert broker.dropped()["bounded_pool.info"] == 150
    lines = _drop_lines(caplog)
    assert len(lines) == 1, lines  # one line per interval, not one per message
    assert "'bounded_pool.info'" in lines[0] and "dropped 1 message" in lines[0]


async def test_drop_head_keeps_the_newest(small_bus: relaybus.Bus) -> None:
    notifier = small_bus.notifier("p", topics=["drop_head"])
    for n in range(120):
        await notifier.info({}, "e", {"n": n})
    late = Counting(50)
    async with small_bus.notification_listener([Target(topic="drop_head")], [late]):
        await asyncio.wait_for(late.done.wait(), WAIT)
    assert [p["n"] for p in late.payloads] == list(range(70, 120))
    assert _broker(small_bus).dropped()["drop_head.info"] == 70


async def test_queue_bytes_are_bounded_too() -> None:
    async with await relaybus.connect(
            "memory://bytes_bound?max_queue_bytes=65536") as bus:
        notifier = bus.notifier("p", topics=["bytes_bound"])
        for n in range(100):
            await notifier.info({}, "e", {"n": n, "pad": "x" * 4000})
        messages, size = _broker(bus).depth("bytes_bound.info")
        assert size <= 65536 and 10 <= messages < 100
        assert _broker(bus).dropped()["bytes_bound.info"] == 100 - messages


async def test_a_pool_whose_listener_left_is_bounded(small_bus: relaybus.Bus) -> None:
    """The gateway (firehose) listens as a pool of its own; stopped, its queue stays."""
    first = Counting(1)
    notifier = small_bus.notifier("p", topics=["firehose_gone"])
    async with small_bus.notification_listener([Target(topic="firehose_gone")], [first],
                                               pool="relaybus-firehose"):
        await notifier.info({}, "e", {"n": -1})
        await asyncio.wait_for(first.done.wait(), WAIT)
    for n in range(500):
        await notifier.info({}, "e", {"n": n})
    assert _broker(small_bus).depth("relaybus-firehose")[0] == 50
    assert _broker(small_bus).dropped()["relaybus-firehose"] == 450


async def test_a_slow_server_holds_at_most_its_prefetch(small_bus: relaybus.Bus) -> None:
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()
    handled: list[int] = []

    class Slow:
        async def work(self, ctxt: Any, n: int) -> None:
            started.set()
            await release.wait()
            handled.append(n)
            if len(handled) == casts:
                finished.set()

    casts = CONSUMER_PREFETCH + 40
    async with await relaybus.connect("memory://slow_server") as bus:
        async with bus.rpc_server(Target(topic="slow_prefetch", server="s1"), [Slow()],
                                  max_concurrency=1):
            client = bus.rpc_client(Target(topic="slow_prefetch"))
            for n in range(casts):
                await client.cast({}, "work", n=n)
            await asyncio.wait_for(started.wait(), WAIT)
            # One in the endpoint, a prefetch held by the consumer, the rest in the queue,
            # once the consumer's task has had its turns (the first handler ran inside its
            # cast, eagerly; asyncio.wait_for need not yield, on 3.12 it does not)
            depths = []
            for _ in range(10):
                await asyncio.sleep(0)
                depths.append(_broker(bus).depth("slow_prefetch")[0])
            assert depths[-3:] == [casts - 1 - CONSUMER_PREFETCH] * 3, depths
            release.set()
            await asyncio.wait_for(finished.wait(), WAIT)
        assert handled == list(range(casts))  # nothing lost, in order
        assert _broker(bus).dropped() == {}


async def test_a_slow_tap_is_bounded_by_bytes(caplog: pytest.LogCaptureFixture) -> None:
    release = asyncio.Event()
    seen: list[str] = []

    async def slow_tap(exchange: str, key: str, message: dict[str, Any]) -> None:
        await release.wait()
        seen.append(key)

    limit = 200_000
    async with await relaybus.connect(f"memory://slow_tap?max_queue_bytes={limit}") as bus:
        subscription = await bus.tap(Target(topic="tapped"), slow_tap)
        tap_queue = "relaybus[memory].tap[tapped]"
        try:
            notifier = bus.notifier("p", topics=["tapped"])
            with caplog.at_level(logging.WARNING, logger="relaybus"):
                for n in range(CONSUMER_PREFETCH + 2000):
                    await notifier.info({}, "e", {"n": n, "pad": "x" * 300})
            broker = _broker(bus)
            assert broker.dropped()[tap_queue] > 0
            assert len([line for line in _drop_lines(caplog) if "tap[tapped]" in line]) == 1
        finally:
            release.set()
        await subscription.stop()
    assert len(seen) == CONSUMER_PREFETCH  # what it held; a stopped tap leaves its queue


async def test_a_burst_to_a_live_consumer_is_kept_whole() -> None:
    """Many small casts in a burst: over max_queue_length, under max_queue_bytes."""
    done = asyncio.Event()
    received: list[int] = []
    casts = 3 * 1000

    class Counter:
        async def count(self, ctxt: Any, n: int) -> None:
            await asyncio.sleep(0)  # a handler that waits: the executor's slots fill up
            received.append(n)
            if len(received) == casts:
                done.set()

    async with await relaybus.connect("memory://burst_live?max_queue_length=1000") as bus:
        async with bus.rpc_server(Target(topic="burst_live", server="s1"), [Counter()]):
            client = bus.rpc_client(Target(topic="burst_live"))
            for n in range(casts):  # no await yields to the server: all of it queues up
                await client.cast({}, "count", n=n)
            assert _broker(bus).depth("burst_live")[0] > 1000
            await asyncio.wait_for(done.wait(), WAIT)
        assert received == list(range(casts)) and _broker(bus).dropped() == {}


async def test_a_stuck_consumer_queue_stays_under_max_queue_bytes() -> None:
    started, release = asyncio.Event(), asyncio.Event()

    class Stuck:
        async def hang(self, ctxt: Any, pad: str) -> None:
            started.set()
            await release.wait()

    limit = 100_000
    bus = await relaybus.connect(f"memory://stuck_bytes?max_queue_bytes={limit}")
    async with bus, bus.rpc_server(Target(topic="stuck_bytes", server="s1"), [Stuck()],
                                   max_concurrency=1, drain_timeout=0):
        client = bus.rpc_client(Target(topic="stuck_bytes"))
        try:
            for _ in range(CONSUMER_PREFETCH + 1000):
                await client.cast({}, "hang", pad="x" * 500)
            await asyncio.wait_for(started.wait(), WAIT)
            messages, size = _broker(bus).depth("stuck_bytes")
            assert size <= limit and messages > 0
            assert _broker(bus).dropped()["stuck_bytes"] > 0
        finally:
            release.set()


async def test_one_log_line_per_interval(small_bus: relaybus.Bus, caplog: pytest.LogCaptureFixture,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    notifier = small_bus.notifier("p", topics=["log_interval"])
    with caplog.at_level(logging.WARNING, logger="relaybus"):
        for n in range(300):
            await notifier.info({}, "e", {"n": n})
        assert len(_drop_lines(caplog)) == 1
        monkeypatch.setattr(broker_module, "DROP_LOG_INTERVAL", 0.0)
        await notifier.info({}, "e", {"n": 300})
    lines = _drop_lines(caplog)
    # The next line reports every drop since the first line, and the total.
    assert len(lines) == 2 and "dropped 250 message(s)" in lines[1]
    assert "251 in all" in lines[1]


async def test_defaults_are_documented_values() -> None:
    async with await relaybus.connect("memory://defaults_bound") as bus:
        assert _broker(bus).limits == QueueLimits(10_000, 64 * 1024 * 1024)


@pytest.mark.parametrize("url, reason", [
    ("memory://o?max_queue_length=0", "at least 1"),
    ("memory://o?max_queue_bytes=-5", "at least 1"),
    ("memory://o?max_queue_length=lots", "max_queue_length"),
    ("memory://o?max_length=5", "unknown memory option"),
])
async def test_bad_limit_options_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidTransportURL, match=reason):
        await relaybus.connect(url)


async def test_limits_as_connect_options() -> None:
    async with await relaybus.connect("memory://kw_bound", max_queue_length=7) as bus:
        assert _broker(bus).limits == QueueLimits(max_queue_length=7)
