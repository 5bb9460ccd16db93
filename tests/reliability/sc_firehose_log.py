"""Scenario firehose-log-restart: the broker that keeps the gateways' shared replay log is
stopped and started again under a gateway that follows it.

A broker of the scenario's own: a nats-server (the log a JetStream stream) killed with
SIGKILL, or a RabbitMQ node (the log a stream queue, the bus's queues durable) shut down
cleanly; a ``relaybus firehose`` process on it, a browser (WebSocket) that follows the
stream throughout and one (SSE) that leaves before the fault. ``PART`` notifications are
sent before the broker stops, ``PART`` while it is down and coming back (each sent until the
bus confirms it), ``PART`` after. Then:

- the gateway is still up, and ``/healthz`` is 200 again;
- the browser that stayed got every confirmed notification (``lost`` counts those it did
  not), each event once (``duplicated``: an event id twice), in log order (``firehoseseq``
  strictly increasing); a send the bus did not confirm may have arrived too;
- the browser that left resumes with ``Last-Event-ID`` and gets exactly what it missed, with
  the same ids and offsets; so does a client of a gateway started after the fault
  (``since=``);
- ``recovery_s``: from the broker accepting connections again to the first event sent after
  that reaching the browser.

RabbitMQ is shut down cleanly rather than killed: on RabbitMQ 3.10 a stream queue on a
single node killed with SIGKILL and started again stays ``404 home node ... is down or
inaccessible`` for more than 90 s (the node is up, the stream never comes back), so no
gateway can serve from it; the gateway keeps its notifications unacknowledged and retries
meanwhile (see docs/reliability.md). After a clean shutdown the stream is back about 1 s
after the node.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from pathlib import Path
from typing import Any

from figures import Figures
from instances import NatsInstance, RabbitInstance
from transports import unique

import relaybus

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gateway"))
from firehose_support import GatewayProcess, SSEClient, ws_client, ws_events

PART = 30
DEADLINE = 120.0
OPTIONS = {"rabbit": "amqp_durable_queues=true",
           "nats": "reconnect_delay=0.1&reconnect_delay_max=1&idle_heartbeat=1"}


def _cursors(events: list[dict[str, Any]]) -> list[tuple[str, int]]:
    return [(e["id"], e["firehoseseq"]) for e in events]


class _Sender:
    def __init__(self, bus: relaybus.Bus, figures: Figures) -> None:
        self.notifier = bus.notifier("compute.host1", topics=["notifications"])
        self.figures = figures
        self.confirmed: list[str] = []
        self.tried: set[str] = set()

    async def part(self, name: str, deadline: float) -> None:
        for n in range(PART):
            event_type = f"{name}.e{n}"
            while time.monotonic() < deadline:
                self.figures.sent += 1
                self.tried.add(event_type)
                try:
                    await self.notifier.info({}, event_type, {"n": n})
                except relaybus.MessagingError as exc:
                    self.figures.error(exc)
                    await asyncio.sleep(0.2)  # the broker is away: try again shortly
                else:
                    self.confirmed.append(event_type)
                    break


async def _healthy(gateway: GatewayProcess, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if (await asyncio.to_thread(gateway.request, "GET", "/healthz"))[0] == 200:
            return True
        await asyncio.sleep(0.1)
    return False


async def run(transport: str, url: str) -> Figures:
    figures = Figures("firehose log broker restart", transport)
    broker = RabbitInstance() if transport == "rabbit" else NatsInstance()
    exchange = unique("fhlog")
    bus_url = f"{broker.url}?control_exchange={exchange}&{OPTIONS[transport]}"
    args = ["--bus", bus_url, "--pool", f"{exchange}-firehose", "--replay-log",
            f"{exchange}-replay"]
    gateways = [GatewayProcess(args)]
    topics = [f"{exchange}/#"]
    deadline = time.monotonic() + DEADLINE
    try:
        gateway = await asyncio.to_thread(gateways[0].start)
        async with await relaybus.connect(bus_url) as bus:
            sender = _Sender(bus, figures)
            async with ws_client(gateway.ws_url(topics)) as follower:
                leaver = await SSEClient.open(gateway.port, f"/events?topic={exchange}/%23")
                await sender.part("before", deadline)
                seen = await ws_events(follower, PART)
                left_at = (await leaver.events(PART))[-1]
                await leaver.close()

                stop = broker.shutdown if isinstance(broker, RabbitInstance) else broker.kill
                await asyncio.to_thread(stop)
                restart = asyncio.ensure_future(asyncio.to_thread(broker.start))
                await sender.part("during", deadline)
                await restart
                back_up = time.monotonic()
                await sender.part("after", deadline)
                figures.confirmed = len(sender.confirmed)
                marker = f"{exchange}.marker"
                await sender.notifier.info({}, marker, {})
                first_after: float | None = None
                while seen[-1]["type"] != marker:
                    seen += await ws_events(follower, 1, [])
                    if first_after is None and seen[-1]["type"].startswith("after."):
                        first_after = time.monotonic()
                if first_after is not None:
                    figures.recovery_s = first_after - back_up
            figures.check("the gateway is healthy again", await _healthy(gateway, deadline))
            events = seen[:-1]
            types = [e["type"] for e in events]
            figures.received = len(events)
            figures.lost = len(set(sender.confirmed) - set(types))
            figures.duplicated = len(events) - len({e["id"] for e in events})
            offsets = [e["firehoseseq"] for e in seen]
            figures.check("zero confirmed events lost", figures.lost == 0)
            figures.check("no event twice", figures.duplicated == 0)
            figures.check("nothing that was not sent", set(types) <= sender.tried)
            figures.check("firehoseseq strictly increasing",
                          all(a < b for a, b in itertools.pairwise(offsets)))
            missed = [e for e in seen if e["firehoseseq"] > left_at["firehoseseq"]]

            sse = await SSEClient.open(gateway.port, f"/events?topic={exchange}/%23",
                                       {"Last-Event-ID": str(left_at["firehoseseq"])})
            controls: list[dict[str, Any]] = []
            resumed = await sse.events(len(missed), controls)
            await sse.close()
            figures.check("a resume (Last-Event-ID) gets exactly what it missed",
                          _cursors(resumed) == _cursors(missed) and not controls)
            gateways.append(GatewayProcess(args))
            fresh = await asyncio.to_thread(gateways[1].start)
            since = str(left_at["firehoseseq"])
            async with ws_client(fresh.ws_url(topics, since=since)) as websocket:
                on_fresh = await ws_events(websocket, len(missed), controls)
            figures.check("a resume on a gateway started after the fault (since=) too",
                          _cursors(on_fresh) == _cursors(missed) and not controls)
            figures.check("the gateway stayed up", gateway.process is not None
                          and gateway.process.poll() is None)
    finally:
        for started in gateways:
            if started.process is not None:
                await asyncio.to_thread(started.stop)
        await asyncio.to_thread(broker.stop)
    fault = "clean shutdown" if transport == "rabbit" else "SIGKILL"
    figures.notes.append(
        f"{PART} events before the broker's {fault}, {PART} while it was down and coming "
        f"back (sent until confirmed: {sum(figures.errors.values())} sends failed and were "
        f"sent again), {PART} after; {len(missed)} resumed after the restart")
    return figures
