"""The behaviour suite of pinging every server of a topic (:func:`relaybus.rpc.ping.ping_all`
over :meth:`relaybus.transport.base.Driver.gather`), written once for every transport.

Bind it like the RPC suite (see :mod:`relaybus.testing.behaviour`)::

    class TestMyPingAll(PingAllBehaviour):
        transport_url = "mine://127.0.0.1:1234/"
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.rpc.ping import IDENTIFY, MAX_WINDOW, PING_METHOD, PONG, ping_all
from relaybus.testing.behaviour import WAIT, Compute, _Suite

SHORT = 0.5  # a window that every server on loopback answers within


class SlowPing:
    """An endpoint declaring the ping itself, which answers once ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.received = asyncio.Event()
        self.answered = asyncio.Event()

    async def oslo_rpc_server_ping(self, ctxt: Any, **kwargs: Any) -> str:
        self.received.set()
        await self.gate.wait()
        self.answered.set()
        return PONG


def _nothing_pending(bus: relaybus.Bus) -> None:
    pending = getattr(bus.driver, "_replies", None)
    if pending is not None:  # the drivers that keep a PendingReplies table
        assert len(pending) == 0


class PingAllBehaviour(_Suite):
    """One fanout ping, every server's answer once, within a window, bounded."""

    async def test_every_server_answers_once_and_relaybus_ones_say_who(
            self, bus: relaybus.Bus, topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="a"), [Compute()], ping=True), \
                bus.rpc_server(Target(topic=topic, server="b"), [Compute()], ping=True), \
                bus.rpc_server(Target(topic=topic, server="off"), [Compute()]):
            answers = await ping_all(bus.driver, topic, window=SHORT)
        named = sorted(a.server for a in answers if a.server is not None)
        assert named == ["a", "b"]
        assert all(a.ok and a.pid is not None and a.host for a in answers if a.server)
        off = [a for a in answers if a.server is None]
        assert len(off) == 1 and isinstance(off[0].error, relaybus.NoSuchMethod)
        assert not off[0].ok
        assert all(0 < a.elapsed < SHORT for a in answers)
        _nothing_pending(bus)

    async def test_servers_on_other_buses_answer_too(self, make_bus: Any, topic: str) -> None:
        caller, other = await make_bus(), await make_bus()
        async with other.rpc_server(Target(topic=topic, server="far"), [Compute()],
                                    ping=True):
            answers = await ping_all(caller.driver, topic, window=SHORT)
        assert [(a.server, a.ok) for a in answers] == [("far", True)]

    async def test_nobody_listening_is_undeliverable(self, bus: relaybus.Bus,
                                                     topic: str) -> None:
        with pytest.raises(relaybus.MessageUndeliverable):
            await ping_all(bus.driver, topic, window=SHORT)
        _nothing_pending(bus)

    async def test_the_limit_ends_the_gathering_at_once(self, bus: relaybus.Bus,
                                                        topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="a"), [Compute()], ping=True), \
                bus.rpc_server(Target(topic=topic, server="b"), [Compute()], ping=True):
            # the window is far longer than the test may take: only the limit ends it
            async with asyncio.timeout(WAIT):
                answers = await ping_all(bus.driver, topic, window=MAX_WINDOW, limit=1)
        assert len(answers) == 1 and answers[0].server in ("a", "b")
        _nothing_pending(bus)

    async def test_an_answer_after_the_window_is_dropped(self, bus: relaybus.Bus,
                                                         topic: str) -> None:
        slow = SlowPing()
        async with bus.rpc_server(Target(topic=topic, server="fast"), [Compute()],
                                  ping=True), \
                bus.rpc_server(Target(topic=topic, server="slow"), [slow]):
            first = await ping_all(bus.driver, topic, window=SHORT)
            assert [a.server for a in first] == ["fast"]
            slow.gate.set()
            await asyncio.wait_for(slow.answered.wait(), WAIT)
            # the late answer to the first ping counts for nobody; the next ping gets both
            second = await ping_all(bus.driver, topic, window=SHORT)
        assert sorted((a.server or "unnamed", a.reply == PONG) for a in second) == \
            [("fast", False), ("unnamed", True)]
        _nothing_pending(bus)

    async def test_a_cancelled_gathering_leaves_nothing_behind(self, bus: relaybus.Bus,
                                                               topic: str) -> None:
        slow = SlowPing()
        async with bus.rpc_server(Target(topic=topic, server="slow"), [slow]):
            for steps in range(30):  # cancel after 0, 1, 2 ... turns of the event loop
                gathering = asyncio.ensure_future(
                    ping_all(bus.driver, topic, window=MAX_WINDOW))
                for _ in range(steps):
                    await asyncio.sleep(0)  # one loop turn: a scheduling point, not a wait
                gathering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await gathering
                _nothing_pending(bus)
            # and once the server has the ping, while the window is open
            gathering = asyncio.ensure_future(ping_all(bus.driver, topic, window=MAX_WINDOW))
            await asyncio.wait_for(slow.received.wait(), WAIT)
            gathering.cancel()
            with pytest.raises(asyncio.CancelledError):
                await gathering
            _nothing_pending(bus)
            slow.gate.set()  # the answers to the cancelled pings now go to nobody
            await asyncio.wait_for(slow.answered.wait(), WAIT)
            assert [a.reply for a in await ping_all(bus.driver, topic, window=SHORT)] == \
                [PONG]

    async def test_a_call_still_takes_exactly_one_reply(self, bus: relaybus.Bus,
                                                        topic: str) -> None:
        async with bus.rpc_server(Target(topic=topic, server="a"), [Compute()], ping=True), \
                bus.rpc_server(Target(topic=topic, server="b"), [Compute()], ping=True):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            assert await client.call({}, PING_METHOD) == PONG  # oslo's answer, unchanged
            named = await client.prepare(server="b").call({}, PING_METHOD, **{IDENTIFY: True})
            assert named["reply"] == PONG and named["server"] == "b"
            for _ in range(5):
                assert await client.call({}, "echo", value=1) == 1
        _nothing_pending(bus)
