"""Reconnection: RPC servers and notification listeners outlive their NATS server.

Each test runs its own nats-server on a free port (never the shared one) and stops or
restarts it; the buses reconnect with a short backoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lossy_proxy import LossyProxy
from test_nats_support import WAIT, PrivateNatsServer, require_nats, wait_for_jetstream

import relaybus
from relaybus import Target
from relaybus.drivers.nats import NatsDriver
from relaybus.testing.behaviour import Compute, Recorder

pytestmark = [pytest.mark.broker, pytest.mark.slow]

FAST_RECONNECT = {"reconnect_delay": 0.05, "reconnect_delay_max": 0.5, "idle_heartbeat": 0.5}
# a notification caught by a pull request as it ends comes back after ack_wait (see
# relaybus.drivers.nats.consumers); keep that short here
SHORT_ACK_WAIT = {"ack_wait": 2}


async def wait_for_values(recorder: Recorder, expected: set[int]) -> set[int]:
    """Wait until ``recorder`` saw every value of ``expected`` (duplicates allowed)."""
    async with asyncio.timeout(WAIT):
        while not expected <= set(recorder.items):
            await recorder.wait_for(len(recorder.items) + 1, timeout=WAIT)
    return set(recorder.items)


def reconnected(bus: relaybus.Bus) -> asyncio.Event:
    """An event set the next time ``bus`` reconnects."""
    assert isinstance(bus.driver, NatsDriver)
    event = asyncio.Event()
    bus.driver._connection.on_reconnect.add(event.set)
    return event


class Meter:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        self.recorder.add(payload["n"])


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[PrivateNatsServer]:
    require_nats()
    server = await PrivateNatsServer(tmp_path).start()
    await wait_for_jetstream(server.url)
    yield server
    await server.stop()


async def test_servers_and_listeners_survive_a_restart(nats_server: PrivateNatsServer) -> None:
    serving = await relaybus.connect(nats_server.url, **FAST_RECONNECT, **SHORT_ACK_WAIT)
    calling = await relaybus.connect(nats_server.url, **FAST_RECONNECT)
    topic, target = "restart", Target(topic="restart")
    try:
        await serving.rpc_server(Target(topic=topic, server="s1"), [Compute("s1")]).start()
        client = calling.rpc_client(Target(topic=topic), timeout=WAIT)
        notifier = calling.notifier("p", topics=[topic])
        running, paused = Recorder(), Recorder()
        await serving.notification_listener([target], [Meter(running)], pool="running").start()
        later = serving.notification_listener([target], [Meter(paused)], pool="paused")
        await later.start()
        assert await client.call({}, "whoami") == "s1"
        await notifier.info({}, "e", {"n": 1})
        assert await running.wait_for(1) == [1] and await paused.wait_for(1) == [1]
        await later.stop()
        await later.wait()
        await notifier.info({}, "e", {"n": 2})  # kept for "paused" across the restart

        events = [reconnected(serving), reconnected(calling)]
        await nats_server.stop()
        await nats_server.start()
        async with asyncio.timeout(WAIT):
            for event in events:
                await event.wait()
        await wait_for_jetstream(nats_server.url)

        assert await client.call({}, "whoami") == "s1"  # the server's subscriptions are back
        await notifier.info({}, "e", {"n": 3})
        # the running listener's pull request was renewed after the restart
        assert await wait_for_values(running, {1, 2, 3}) == {1, 2, 3}
        await later.start()  # n=2 was kept for the paused pool across the restart
        assert await wait_for_values(paused, {1, 2, 3}) == {1, 2, 3}
    finally:
        await calling.close()
        await serving.close()


async def test_failover_to_another_server_of_the_url(tmp_path: Path) -> None:
    require_nats()
    first = await PrivateNatsServer(tmp_path / "a", jetstream=False).start()
    second = await PrivateNatsServer(tmp_path / "b", jetstream=False).start()
    url = f"{first.url},{second.url.removeprefix('nats://')}"
    serving = await relaybus.connect(url, **FAST_RECONNECT)
    calling = await relaybus.connect(url, **FAST_RECONNECT)
    try:
        await serving.rpc_server(Target(topic="failover", server="s1"), [Compute("s1")]).start()
        client = calling.rpc_client(Target(topic="failover"), timeout=WAIT)
        assert await client.call({}, "whoami") == "s1"
        events = [reconnected(serving), reconnected(calling)]
        await first.stop()
        async with asyncio.timeout(WAIT):
            for event in events:
                await event.wait()
        for bus in (serving, calling):
            assert isinstance(bus.driver, NatsDriver)
            connected = bus.driver._connection.client.connected_url
            assert connected is not None and connected.port == second.port
        assert await client.call({}, "whoami") == "s1"
    finally:
        await calling.close()
        await serving.close()
        await second.stop()
        await first.stop()


async def test_a_connection_gone_for_good_fails_waiting_calls(tmp_path: Path) -> None:
    require_nats()
    server = await PrivateNatsServer(tmp_path, jetstream=False).start()
    serving = await relaybus.connect(server.url)
    calling = await relaybus.connect(server.url, reconnect_delay=0.05, reconnect_delay_max=0.1,
                                     max_reconnect_attempts=2)
    try:
        await serving.rpc_server(Target(topic="gone", server="s1"), [Compute()],
                                 drain_timeout=0).start()
        client = calling.rpc_client(Target(topic="gone"), timeout=60)
        call = asyncio.ensure_future(client.call({}, "sleep", seconds=30))
        await client.call({}, "echo", value=1)  # the sleep call is surely in progress
        await server.stop()
        with pytest.raises(relaybus.ConnectionFailure, match="gone for good"):
            await asyncio.wait_for(call, WAIT)  # long before its 60 s timeout
        with pytest.raises(relaybus.ConnectionFailure):
            await client.call({}, "echo", value=2)
    finally:
        await calling.close()
        await serving.close()
        await server.stop()


# -- sends in flight when the connection drops --------------------------------------
# The caller talks to the server through a proxy that swallows one direction and then
# cuts the connection, as a node dying mid-send does. "up": the message itself is lost;
# "down": it arrived but its confirmation is lost. Either way the caller reconnects and
# the send completes once, long before its send_timeout (which would fail the test).

LONG_SEND_TIMEOUT = {"send_timeout": 600, "reconnect_delay": 0.05, "reconnect_delay_max": 0.1}
SWALLOWED = {"up": b"relaybus.openstack.", "down": b"_INBOX."}


@pytest.mark.parametrize("lost", ["up", "down"])
async def test_a_cast_in_flight_when_the_connection_drops_is_sent_again(
        tmp_path: Path, lost: str) -> None:
    require_nats()
    server = await PrivateNatsServer(tmp_path, jetstream=False).start()
    proxy = await LossyProxy(server.port).start()
    serving = await relaybus.connect(server.url)
    calling = await relaybus.connect(proxy.url, **LONG_SEND_TIMEOUT)
    recorder = Recorder()
    try:
        await serving.rpc_server(Target(topic="inflight", server="s1"),
                                 [Compute(recorder=recorder)]).start()
        client = calling.rpc_client(Target(topic="inflight"))
        await client.cast({}, "record", value="before")
        proxy.swallow = lost
        cast = asyncio.ensure_future(client.cast({}, "record", value="in flight"))
        async with asyncio.timeout(WAIT):
            await proxy.swallowed_contains(SWALLOWED[lost])
        again = reconnected(calling)
        proxy.cut()
        async with asyncio.timeout(WAIT):
            await again.wait()
            await cast
        await client.cast({}, "record", value="after")
        assert [value for _, value in await recorder.wait_for(3)] == ["before", "in flight",
                                                                    "after"]
    finally:
        await calling.close()
        await serving.close()
        await proxy.close()
        await server.stop()


@pytest.mark.parametrize("lost", ["up", "down"])
async def test_a_notification_in_flight_when_the_connection_drops_is_stored_once(
        tmp_path: Path, lost: str) -> None:
    require_nats()
    server = await PrivateNatsServer(tmp_path).start()
    await wait_for_jetstream(server.url)
    proxy = await LossyProxy(server.port).start()
    listening = await relaybus.connect(server.url)
    sending = await relaybus.connect(proxy.url, **LONG_SEND_TIMEOUT)
    recorder = Recorder()
    try:
        notifier = sending.notifier("meter", topics=["inflight"])
        await notifier.info({}, "tick", {"n": 0})  # makes the stream
        await listening.notification_listener([Target(topic="inflight")], [Meter(recorder)],
                                              pool="p").start()
        proxy.swallow = lost
        send = asyncio.ensure_future(notifier.info({}, "tick", {"n": 1}))
        async with asyncio.timeout(WAIT):
            await proxy.swallowed_contains(SWALLOWED[lost])
        again = reconnected(sending)
        proxy.cut()
        async with asyncio.timeout(WAIT):
            await again.wait()
            await send
        await notifier.info({}, "tick", {"n": 2})
        assert await wait_for_values(recorder, {0, 1, 2}) == {0, 1, 2}
        assert sorted(recorder.items) == [0, 1, 2]  # stored once: no copy came through
    finally:
        await sending.close()
        await listening.close()
        await proxy.close()
        await server.stop()
