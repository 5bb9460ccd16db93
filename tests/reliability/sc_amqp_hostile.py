"""Scenarios 17 and 18: a broker turned against the client (RabbitMQ only).

* frame flood: a fake broker on loopback (tests/functional/rabbit/fake_amqp_broker.py, a
  real TCP peer speaking AMQP through pamqp) lets a bus in, then announces a 1 GiB frame
  and streams 64 MiB behind it. The client must drop the connection at the frame header,
  without buffering the payload, and keep its memory flat.
* resource alarm during close: on a RabbitMQ node of the scenario's own, a memory alarm
  blocks the bus's connection (the broker stops reading it); ``bus.close()`` must return
  within ``close_timeout`` by aborting the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "functional" / "rabbit"))

from fake_amqp_broker import FakeBroker, FakePeer
from figures import Figures
from instances import RabbitInstance

import relaybus
from relaybus.drivers.rabbit.amqp import Connection, FrameTooLarge, codec
from relaybus.drivers.rabbit.driver import RabbitDriver

CLOSE_TIMEOUT = 2.0
FLOOD = 64 << 20


def _connection(bus: relaybus.Bus) -> Connection:
    driver = bus.driver
    assert isinstance(driver, RabbitDriver) and driver._connector is not None
    connection = driver._connector.current
    assert connection is not None
    return connection


async def run_flood(transport: str, url: str) -> Figures:
    figures = Figures("frame flood from a fake broker", transport)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    async with FakeBroker() as broker:
        bus = await relaybus.connect(broker.url, reconnect_delay=5, reconnect_delay_max=5)
        try:
            connection = _connection(bus)
            peer: FakePeer = await broker.peer()
            started = time.perf_counter()
            flood = asyncio.ensure_future(peer.flood(
                codec.FRAME_HEAD.pack(codec.FRAME_METHOD, 0, 1 << 30), 65536, FLOOD))
            reason = await connection.closed
            figures.recovery_s = time.perf_counter() - started
            outcome = await flood
            figures.sent = 1
            figures.check("refused with FrameTooLarge", isinstance(reason, FrameTooLarge))
            figures.check("the client hung up before the 64 MiB were sent", outcome == "reset")
            figures.check("nothing buffered", connection.protocol.buffered == 0)
        finally:
            await bus.close()
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss_before
    figures.check("peak RSS grew by less than 16 MB", growth < 16)
    figures.notes.append(f"1 GiB frame header + {FLOOD >> 20} MiB streamed; connection "
                         f"dropped in {figures.recovery_s * 1000:.1f} ms; peak RSS "
                         f"+{growth:.1f} MB")
    return figures


async def run_alarm_close(transport: str, url: str) -> Figures:
    figures = Figures("resource alarm during close", transport)
    node = await asyncio.to_thread(RabbitInstance)
    ctl = ["rabbitmqctl", "-n", node.node, "-q", "set_vm_memory_high_watermark"]
    try:
        bus = await relaybus.connect(node.url, close_timeout=CLOSE_TIMEOUT)
        connection = _connection(bus)
        client = bus.rpc_client(relaybus.Target(topic="alarm_close"), timeout=0.5)
        with contextlib.suppress(relaybus.MessagingTimeout, relaybus.MessageUndeliverable):
            await client.call({}, "ping")  # nobody serves it: the reply queue now exists
        await asyncio.to_thread(subprocess.run, [*ctl, "0.000001"], check=True, timeout=60)
        raw = await connection.channel()
        blocked = asyncio.ensure_future(connection.blocked.wait())
        while not blocked.done():  # the node blocks a connection once it publishes
            raw.publish("", "nowhere", b"{}", codec.message_properties())
            figures.sent += 1
            await asyncio.wait([blocked], timeout=0.2)
        started = time.perf_counter()
        await bus.close()
        figures.recovery_s = time.perf_counter() - started
        figures.check("close returned within close_timeout + 1 s",
                      figures.recovery_s < CLOSE_TIMEOUT + 1)
        figures.check("the connection is closed", connection.is_closed)
        figures.notes.append(f"close_timeout {CLOSE_TIMEOUT} s; close took "
                             f"{figures.recovery_s:.2f} s (socket aborted)")
    finally:
        await asyncio.to_thread(subprocess.run, [*ctl, "0.4"], timeout=60)
        await asyncio.to_thread(node.stop)
    return figures
