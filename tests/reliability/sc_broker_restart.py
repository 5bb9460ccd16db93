"""Scenario 1: the broker is killed hard mid-stream and started again.

Casts and notifications stream with confirms (a send returns only once the broker has
the message) from one process to a server and a listener. At a third of the stream the
broker (an instance of the scenario's own) gets SIGKILL and is started again. Every
confirmed message must arrive; publishers and consumers carry on without a restart;
duplicates are counted by their sequence number and notification message_id.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

from figures import Figures
from instances import NatsInstance, RabbitInstance
from transports import unique

import relaybus
from relaybus import Target

MESSAGES = 600
DEADLINE = 90.0
OPTIONS = {"rabbit": "?amqp_durable_queues=true", "nats": ""}


class Sink:
    def __init__(self) -> None:
        self.casts: Counter[int] = Counter()
        self.notes: Counter[int] = Counter()
        self.note_ids: Counter[str] = Counter()

    async def record(self, ctxt: Any, seq: int) -> None:
        self.casts[seq] += 1

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.notes[payload["seq"]] += 1
        self.note_ids[metadata["message_id"]] += 1


async def _send_until_confirmed(send: Any, figures: Figures, deadline: float) -> bool:
    while time.monotonic() < deadline:
        figures.sent += 1
        try:
            await send()
            return True
        except relaybus.MessagingError as exc:
            figures.error(exc)
            await asyncio.sleep(0.2)  # back off while the broker is away
    return False


def _reconnects(transport: str) -> float:
    import prometheus_client

    return prometheus_client.REGISTRY.get_sample_value(
        "relaybus_reconnects_total", {"transport": transport}) or 0.0


async def run(transport: str, url: str) -> Figures:
    figures = Figures("broker restart mid-load", transport)
    reconnects_before = _reconnects(transport)
    broker = RabbitInstance() if transport == "rabbit" else NatsInstance()
    sink = Sink()
    topic, ntopic = unique("restart"), unique("restart_n")
    confirmed_casts: set[int] = set()
    confirmed_notes: set[int] = set()
    back_up_at: list[float] = []
    recovered_at: list[float] = []
    try:
        scoped = broker.url + OPTIONS[transport]
        async with await relaybus.connect(scoped) as bus:
            server = bus.rpc_server(Target(topic=topic, server="s1"), [sink])
            listener = bus.notification_listener([Target(topic=ntopic)], [sink], pool="p")
            async with server, listener:
                client = bus.rpc_client(Target(topic=topic), timeout=10)
                notifier = bus.notifier("restarter", topics=[ntopic])
                deadline = time.monotonic() + DEADLINE

                async def restart() -> None:
                    await asyncio.to_thread(broker.kill)
                    await asyncio.to_thread(broker.start)
                    back_up_at.append(time.monotonic())

                restarter: asyncio.Task[None] | None = None
                for seq in range(MESSAGES):
                    if seq == MESSAGES // 3:
                        restarter = asyncio.ensure_future(restart())
                    if await _send_until_confirmed(
                            lambda seq=seq: client.cast({}, "record", seq=seq), figures,
                            deadline):
                        confirmed_casts.add(seq)
                    if await _send_until_confirmed(
                            lambda seq=seq: notifier.info({}, "restart.tick", {"seq": seq}),
                            figures, deadline):
                        confirmed_notes.add(seq)
                    if back_up_at and not recovered_at:
                        recovered_at.append(time.monotonic())
                if restarter is not None:
                    await restarter
                figures.confirmed = len(confirmed_casts) + len(confirmed_notes)
                end = time.monotonic() + 30
                while (not confirmed_casts <= set(sink.casts)  # noqa: ASYNC110 - polls what sends no event
                       or not confirmed_notes <= set(sink.notes)) and time.monotonic() < end:
                    # draining: nothing signals the last arrival
                    await asyncio.sleep(0.1)
    finally:
        broker.stop()
    figures.received = sum(sink.casts.values()) + sum(sink.notes.values())
    figures.lost = len(confirmed_casts - set(sink.casts)) + len(confirmed_notes - set(sink.notes))
    figures.duplicated = (sum(n - 1 for n in sink.casts.values())
                          + sum(n - 1 for n in sink.notes.values()))
    if back_up_at and recovered_at:
        figures.recovery_s = max(recovered_at[0] - back_up_at[0], 0.0)
    figures.check("zero confirmed messages lost", figures.lost == 0)
    figures.check("the reconnects metric counted the reconnection",
                  _reconnects(transport) > reconnects_before)
    figures.check("the broker was really restarted", bool(back_up_at))
    figures.check("every message confirmed in the end",
                  len(confirmed_casts) == MESSAGES and len(confirmed_notes) == MESSAGES)
    figures.check("duplicates keep their message_id", len(sink.note_ids) == len(sink.notes))
    figures.notes.append(f"{MESSAGES} casts + {MESSAGES} notifications; broker killed at "
                         f"{MESSAGES // 3}; {sum(figures.errors.values())} failed sends retried")
    return figures
