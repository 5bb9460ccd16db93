"""NATS slow-consumer drops are counted and logged once per interval, not once per message.

A private nats-server (never the shared one) and a tap whose handler is blocked: nats-py
keeps 128 MiB for it and drops the rest, calling the error callback once per message.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_nats_support import PrivateNatsServer, raw_client, require_nats, wait_for_jetstream

import relaybus
from relaybus import Target
from relaybus.drivers.nats import NatsDriver
from relaybus.drivers.nats.connection import round_trip
from relaybus.message import pack
from relaybus.testing.behaviour import WAIT

pytestmark = [pytest.mark.broker]

PUBLISHED = 200
BODY = pack({"method": "m", "args": {"pad": "x" * 900_000}})  # 200 x 0.9 MB > 128 MiB
LINE = re.compile(r"NATS slow consumer (\S+) on .* dropped (\d+) message\(s\) since the last "
                  r"report \((\d+) in all\)")


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[PrivateNatsServer]:
    require_nats()
    server = await PrivateNatsServer(tmp_path).start()
    await wait_for_jetstream(server.url)
    yield server
    await server.stop()


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, int, int]]:
    found = []
    for record in caplog.records:
        match = LINE.search(record.getMessage())
        if match:
            found.append((match.group(1), int(match.group(2)), int(match.group(3))))
    return found


async def test_slow_consumer_drops_are_logged_once_per_interval_with_a_count(
        nats_server: PrivateNatsServer, caplog: pytest.LogCaptureFixture) -> None:
    release, all_handled = asyncio.Event(), asyncio.Event()
    handled = 0
    expected_handled = PUBLISHED

    async def blocked(exchange: str, key: str, message: dict[str, Any]) -> None:
        nonlocal handled
        await release.wait()
        handled += 1
        if handled == expected_handled:
            all_handled.set()

    topic = "slow_consumer_log"
    caplog.set_level(logging.WARNING, logger="relaybus")
    bus = await relaybus.connect(nats_server.url)
    try:
        assert isinstance(bus.driver, NatsDriver)
        connection = bus.driver._connection
        subscription = await bus.tap(Target(topic=topic), blocked)
        subject = bus.driver.naming.rpc_subject(Target(topic=topic))
        try:
            async with raw_client(nats_server.url) as publisher:
                for _ in range(PUBLISHED):
                    await publisher.publish(subject, BODY)
                await publisher.flush()
            # The server delivered everything before answering this PING: every drop has
            # been reported to the error callback by now.
            await round_trip(connection.client)
            dropped = sum(connection.slow_consumers.dropped.values())
            assert 0 < dropped < PUBLISHED
            lines = _lines(caplog)
            assert len(lines) == 1, lines  # the first drop at once; the rest wait
            name, count, total = lines[0]
            assert name.startswith("relaybus[nats].tap[") and (count, total) == (1, 1)
            expected_handled = PUBLISHED - dropped
        finally:
            release.set()
        await asyncio.wait_for(all_handled.wait(), WAIT)
        await subscription.stop()
    finally:
        await bus.close()
    lines = _lines(caplog)
    # Closing reports what the interval held back: two lines for all the drops.
    assert len(lines) == 2, lines
    assert sum(count for _, count, _ in lines) == dropped == lines[-1][2]
    assert not [r for r in caplog.records if "SlowConsumerError" in r.getMessage()]


async def test_a_trailing_count_is_reported_when_the_interval_ends(
        nats_server: PrivateNatsServer, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from relaybus.drivers.nats import slow_consumers

    monkeypatch.setattr(slow_consumers, "LOG_INTERVAL", 0.2)
    release = asyncio.Event()
    reported = asyncio.Event()
    published = False
    counted: dict[str, int] = {}  # the driver's live drop counters, bound once connected

    totals: dict[str, int] = {}  # the last reported total of each consumer

    def check() -> None:
        # Compared with the live counter: nats-py may still report a drop after the round trip.
        if published and sum(totals.values()) == sum(counted.values()):
            reported.set()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            match = LINE.search(record.getMessage())
            if match:
                totals[match.group(1)] = int(match.group(3))
                check()

    async def blocked(exchange: str, key: str, message: dict[str, Any]) -> None:
        await release.wait()

    watch = Watch()
    logging.getLogger("relaybus").addHandler(watch)
    caplog.set_level(logging.WARNING, logger="relaybus")
    bus = await relaybus.connect(nats_server.url)
    try:
        assert isinstance(bus.driver, NatsDriver)
        connection = bus.driver._connection
        counted = connection.slow_consumers.dropped
        await bus.tap(Target(topic="slow_consumer_trailing"), blocked)
        subject = bus.driver.naming.rpc_subject(Target(topic="slow_consumer_trailing"))
        try:
            async with raw_client(nats_server.url) as publisher:
                for _ in range(PUBLISHED):
                    await publisher.publish(subject, BODY)
                await publisher.flush()
            await round_trip(connection.client)
            assert sum(counted.values()) > 1
            published = True
            check()  # the timers may have reported everything already
            # Without closing anything, the timer reports the rest when the interval ends.
            try:
                await asyncio.wait_for(reported.wait(), WAIT)
            except TimeoutError:
                pytest.fail(f"no line reported all drops: {_lines(caplog)}; {dict(counted)}")
        finally:
            release.set()
    finally:
        logging.getLogger("relaybus").removeHandler(watch)
        await bus.close()
    lines = _lines(caplog)
    dropped_total = sum(counted.values())
    assert sum(count for _, count, _ in lines) == dropped_total
    assert len(lines) < dropped_total
