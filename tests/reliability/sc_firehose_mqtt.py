"""Scenario firehose-mqtt-outage: the gateway's MQTT broker restarts, refuses, and is sent
what MQTT cannot carry; the gateway must neither die nor lie.

A Mosquitto from deploy/mosquitto and a gateway publishing to it. A browser (WebSocket)
follows the stream throughout. Then:

1. ``sent`` events in three equal parts: before the broker stops, while it is down, and
   after it is back. The browser must get every one (``received``), the gateway must stay
   up, ``/readyz`` must say 503 while the broker is down and 200 again after
   (``recovery_s``: from the broker's restart to ready), and the bridge must publish every
   event (the outage's from its queue): ``confirmed`` counts PUBACKs.
2. The broker restarted with ``max_packet_size 4000``: an event larger than that is skipped
   and counted, the next one published (``errors``: skips by reason).
3. A gateway publishing as the anonymous (read-only) user: its publishes are refused by
   reason code and ``/readyz`` says so.
4. A service on the bus (RabbitMQ here: ``POST /publish`` caps names at 255 characters)
   sends two notifications whose ``event_type`` makes a topic past MQTT's 65,535 bytes, then
   a small one: both skipped and counted by reason (one log line), the small one published,
   the browser given all three, the gateway up (it used to end on the first).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiormq
from figures import Figures
from transports import unique

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from firehose_support import (
    WAIT,
    GatewayProcess,
    Mosquitto,
    event,
    start_mosquitto,
    ws_client,
    ws_events,
)
from test_gateway_rabbit import RABBIT_URL, notify

PART = 50


async def _status(gateway: GatewayProcess, path: str) -> int:
    return (await asyncio.to_thread(gateway.request, "GET", path))[0]


async def _until(gateway: GatewayProcess, path: str, expected: int) -> bool:
    try:
        async with asyncio.timeout(WAIT):
            while True:  # polling: the gateway's answers are all there is to watch
                if await _status(gateway, path) == expected:
                    return True
                await asyncio.sleep(0.05)
    except TimeoutError:
        return False


async def _outage(figures: Figures, mosquitto: Mosquitto, exchange: str) -> None:
    gateway = GatewayProcess(["--bus", f"memory://?control_exchange={exchange}",
                              "--publish-token", "t", "--mqtt", mosquitto.gateway_url])
    await asyncio.to_thread(gateway.start)
    try:
        async with ws_client(gateway.ws_url()) as browser:
            figures.check("ready with the broker up", await _until(gateway, "/readyz", 200))

            async def send(part: str) -> None:
                await gateway.publish([event("h", f"{part}.e{i}") for i in range(PART)], "t")
                figures.sent += PART

            await send("before")
            await asyncio.to_thread(mosquitto.stop)
            figures.check("/readyz says 503 while the broker is down",
                          await _until(gateway, "/readyz", 503))
            await send("during")
            started = time.monotonic()
            await asyncio.to_thread(mosquitto.restart)
            back = await _until(gateway, "/readyz", 200)
            figures.recovery_s = round(time.monotonic() - started, 3)
            figures.check("/readyz says 200 again once the broker is back", back)
            await send("after")
            got = await ws_events(browser, figures.sent)
            figures.received = len(got)
            figures.check("the browser got every event, outage or not",
                          len({e["id"] for e in got}) == figures.sent)
            async with asyncio.timeout(WAIT):
                while True:  # polling /stats until the queue is flushed
                    stats = (await gateway.stats())["mqtt"]
                    if stats["published"] >= figures.sent or (stats["queued"] == 0 and \
                            stats["published"] + stats["dropped"] >= figures.sent):
                        break
                    await asyncio.sleep(0.05)
            figures.confirmed = stats["published"]
            figures.lost = figures.sent - stats["published"]
            figures.check("the bridge published every event, the outage's from its queue",
                          stats["published"] >= figures.sent)
            figures.notes.append(f"reconnects {stats['reconnects']}")
        figures.check("the gateway stayed up", gateway.process is not None
                      and gateway.process.poll() is None)
    finally:
        await asyncio.to_thread(gateway.stop)


async def _too_large(figures: Figures, mosquitto: Mosquitto, exchange: str) -> None:
    await asyncio.to_thread(mosquitto.restart, "max_packet_size 4000")
    gateway = GatewayProcess(["--bus", f"memory://?control_exchange={exchange}",
                              "--publish-token", "t", "--mqtt", mosquitto.gateway_url])
    await asyncio.to_thread(gateway.start)
    try:
        await _until(gateway, "/readyz", 200)
        await gateway.publish([event("h", "big", {"pad": "z" * 8000}), event("h", "small")], "t")
        async with asyncio.timeout(WAIT):
            while True:  # polling /stats
                stats = (await gateway.stats())["mqtt"]
                if stats["published"] >= 1:
                    break
                await asyncio.sleep(0.05)
        for reason, count in stats["skipped_by_reason"].items():
            figures.errors[reason] += count
        figures.check("an event over the broker's packet limit is skipped, the next sent",
                      stats["skipped_by_reason"] == {"packet-too-large": 1}
                      and stats["reconnects"] == 0)
    finally:
        await asyncio.to_thread(gateway.stop)


async def _refused(figures: Figures, mosquitto: Mosquitto, exchange: str) -> None:
    gateway = GatewayProcess(["--bus", f"memory://?control_exchange={exchange}",
                              "--publish-token", "t", "--mqtt", mosquitto.anonymous_url])
    await asyncio.to_thread(gateway.start)
    try:
        await _until(gateway, "/readyz", 200)
        await gateway.publish(event("h", "refused"), "t")
        figures.check("refused publishes make /readyz say 503",
                      await _until(gateway, "/readyz", 503))
        stats = (await gateway.stats())["mqtt"]
        figures.errors["refused"] += stats["refused"]
        figures.check("refusals are counted, none passed for a delivery",
                      stats["refused"] == 1 and stats["published"] == 0)
    finally:
        await asyncio.to_thread(gateway.stop)


async def _too_long(figures: Figures, mosquitto: Mosquitto, exchange: str) -> None:
    pool = f"{exchange}-firehose"
    gateway = GatewayProcess(["--bus", f"{RABBIT_URL}?control_exchange={exchange}",
                              "--pool", pool, "--mqtt", mosquitto.gateway_url])
    await asyncio.to_thread(gateway.start)
    try:
        await _until(gateway, "/readyz", 200)
        huge = "x" * 70_000
        async with ws_client(gateway.ws_url()) as browser:
            await notify(exchange, huge, huge + "y", "small.after")
            got = await ws_events(browser, 3)
        async with asyncio.timeout(WAIT):
            while True:  # polling /stats
                stats = (await gateway.stats())["mqtt"]
                if stats["published"] >= 1:
                    break
                await asyncio.sleep(0.05)
        for reason, count in stats["skipped_by_reason"].items():
            figures.errors[reason] += count
        figures.check("topics past 65,535 bytes are skipped and counted, the next sent",
                      stats["skipped_by_reason"] == {"topic-too-long": 2}
                      and stats["published"] == 1 and len(got) == 3)
        figures.check("one log line for the skips, not one per event",
                      gateway.output().count("skipped event") == 1)
        figures.check("the gateway stayed up after topics MQTT cannot carry",
                      gateway.process is not None and gateway.process.poll() is None)
    finally:
        await asyncio.to_thread(gateway.stop)
        connection = await aiormq.connect(RABBIT_URL.replace("rabbit://", "amqp://"))
        channel = await connection.channel()
        await channel.queue_delete(pool)
        await channel.queue_delete(f"{pool}.replay")  # the gateway's replay log (a stream)
        await connection.close()


async def run(transport: str, url: str) -> Figures:
    figures = Figures("firehose mqtt outage", transport)
    exchange = unique("fhmqtt")
    workdir = Path(tempfile.mkdtemp(prefix="relaybus-firehose-mqtt-"))
    mosquitto = await asyncio.to_thread(start_mosquitto, workdir, uuid.uuid4().hex)
    try:
        await _outage(figures, mosquitto, exchange)
        await _too_large(figures, mosquitto, exchange)
        await _refused(figures, mosquitto, exchange)
        await _too_long(figures, mosquitto, exchange)
    finally:
        await asyncio.to_thread(mosquitto.stop)
    return figures
