"""A RabbitMQ restart under a server, a client and a notifier: nothing hangs, sends made while
the broker is away go out once it is back, and a server comes back to its topic.

The broker restarted is a node of this module's own (the ``own_rabbit`` fixture,
tests/reliability/instances.py's RabbitInstance), stopped and started with
``rabbitmqctl -n NODE stop_app / start_app``: the shared broker is never restarted, since
other runs on this machine use it at the same time.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from instances import RabbitInstance
from rabbit_support import WAIT, node_ctl
from rabbit_support import RecordingServer as Server

import relaybus
from relaybus import Target

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lossy_proxy import LossyProxy

pytestmark = pytest.mark.broker

MakeBus = Callable[..., Awaitable[relaybus.Bus]]


def restart_begun(node: str) -> None:
    node_ctl(node, "stop_app")


def restart_ended(node: str) -> None:
    node_ctl(node, "start_app")
    node_ctl(node, "await_startup")


# -- broker restart --------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_server_lives_through_a_broker_restart(make_bus: MakeBus, topic: str,
                                                      own_rabbit: RabbitInstance) -> None:
    # the client's resend window after reconnecting (reconnect_delay_max + 2 s) outlasts
    # the server's backoff, whichever of the two is back first
    server_bus = await make_bus(own_rabbit.url, reconnect_delay=0.2, reconnect_delay_max=1.0)
    client_bus = await make_bus(own_rabbit.url, reconnect_delay=0.2, reconnect_delay_max=4.0)
    server = Server()
    async with server_bus.rpc_server(Target(topic=topic, server="s1"), [server]):
        client = client_bus.rpc_client(Target(topic=topic), timeout=30)
        assert await client.call({}, "echo", value="before") == "before"
        in_flight = asyncio.ensure_future(
            client.prepare(timeout=8).call({}, "sleep", seconds=0.5))
        restart_begun(own_rabbit.node)
        try:
            # sent while the broker is down: it waits for the connection, then goes out
            cast = asyncio.ensure_future(client.cast({}, "record", value="during"))
            # the call in flight ends: answered, or MessagingTimeout (its request or its
            # reply was lost with the broker's transient queues); it never hangs
            with contextlib.suppress(relaybus.MessagingTimeout):
                await asyncio.wait_for(in_flight, 15)
        finally:
            restart_ended(own_rabbit.node)
        await asyncio.wait_for(cast, 30)
        await asyncio.wait_for(server.cast_seen.wait(), 30)
        assert server.casts == ["during"]
        assert await client.call({}, "echo", value="after") == "after"


class _Returns(logging.Handler):
    """Counts the "returned right after reconnecting" log lines, by what was returned."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: collections.Counter[str] = collections.Counter()
        self.changed = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        if "right after reconnecting" in line:
            self.counts[line.split()[1]] += 1  # "a call was returned..."
            self.changed.set()

    async def seen(self, what: str) -> None:
        while not self.counts[what]:
            self.changed.clear()
            await self.changed.wait()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_sends_made_during_a_broker_restart_wait_for_their_servers_to_return(
        make_bus: MakeBus, topic: str, own_rabbit: RabbitInstance) -> None:
    # The order the previous test leaves to chance, forced: the client is back on the
    # restarted broker first, where the transient exchange and queues are gone; the
    # server can come back only once the client's cast and call have been returned.
    proxy = await LossyProxy(own_rabbit.port).start()
    returns = _Returns()
    publisher_log = logging.getLogger("relaybus.drivers.rabbit.publisher")
    publisher_log.addHandler(returns)
    previous_level = publisher_log.level
    publisher_log.setLevel(logging.INFO)
    try:
        server_bus = await make_bus(f"rabbit://guest:guest@127.0.0.1:{proxy.port}/",
                                    reconnect_delay=0.2, reconnect_delay_max=0.5)
        # its resend window after reconnecting is reconnect_delay_max + 2 s: room for the
        # steps below and the server's reconnection on a loaded machine
        client_bus = await make_bus(own_rabbit.url, reconnect_delay=0.2,
                                    reconnect_delay_max=4.0)
        server = Server()
        async with server_bus.rpc_server(Target(topic=topic, server="s1"), [server]):
            client = client_bus.rpc_client(Target(topic=topic), timeout=30)
            notifier = client_bus.notifier("p", topics=[f"{topic}_n"])
            assert await client.call({}, "echo", value="before") == "before"
            await notifier.info({}, "e", {"n": "before"})  # declares the queue once
            restart_begun(own_rabbit.node)
            proxy.refusing = True
            try:
                cast = asyncio.ensure_future(client.cast({}, "record", value="during"))
                notified = asyncio.ensure_future(notifier.info({}, "e", {"n": "during"}))
            finally:
                restart_ended(own_rabbit.node)
            # the notification's queue is declared again on the new connection
            await asyncio.wait_for(notified, 30)
            await asyncio.wait_for(returns.seen("message"), 30)  # the cast, nobody there
            # a call made now (a call made before the client saw its connection drop is
            # lost with it: calls are never sent twice) is returned too, and sent again
            call = asyncio.ensure_future(client.call({}, "echo", value="after"))
            await asyncio.wait_for(returns.seen("call"), 30)
            assert not cast.done() and not call.done()
            proxy.refusing = False
            await asyncio.wait_for(cast, 30)
            assert await asyncio.wait_for(call, 30) == "after"
            assert server.casts == ["during"]

        got: list[Any] = []
        seen = asyncio.Event()

        class Listener:
            def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                     metadata: Any) -> None:
                got.append(payload)
                seen.set()

        async with client_bus.notification_listener([Target(topic=f"{topic}_n")],
                                                    [Listener()]):
            await asyncio.wait_for(seen.wait(), WAIT)
        assert got == [{"n": "during"}]  # "before" went with the broker's transient queue
    finally:
        publisher_log.removeHandler(returns)
        publisher_log.setLevel(previous_level)
        await proxy.close()
