"""Scenario 6: a handler that always raises.

It must be retried the configured number of times with backoff — never in a hot loop —
then the notification dead-lettered with the reason attached, and the listener must go on
with the next notification.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from figures import Figures
from transports import unique

import relaybus
from relaybus import Target

RETRIES = 3
BACKOFF = 0.05


class Poisoned:
    def __init__(self) -> None:
        self.attempts: list[float] = []
        self.healthy: list[Any] = []
        self.healthy_seen = asyncio.Event()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        if payload.get("poison"):
            self.attempts.append(time.perf_counter())
            raise RuntimeError("indigestible")
        self.healthy.append(payload)
        self.healthy_seen.set()


class DeadLetters:
    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any], str]] = []
        self.arrived = asyncio.Event()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.items.append((ctxt, metadata["message_id"]))
        self.arrived.set()


async def run(transport: str, url: str) -> Figures:
    figures = Figures("poison message", transport)
    topic, dead = unique("poison"), unique("dead")
    poisoned, letters = Poisoned(), DeadLetters()
    async with await relaybus.connect(url) as bus:
        async with bus.notification_listener([Target(topic=dead)], [letters], pool="dlq"), \
                bus.notification_listener([Target(topic=topic)], [poisoned], pool="work",
                                          retries=RETRIES, retry_backoff=BACKOFF,
                                          dead_letter_topic=dead):
            notifier = bus.notifier("poisoner", topics=[topic])
            await notifier.info({}, "order.bad", {"poison": True})
            await notifier.info({}, "order.good", {"n": 1})
            figures.sent = 2
            await asyncio.wait_for(letters.arrived.wait(), 20)
            await asyncio.wait_for(poisoned.healthy_seen.wait(), 20)
    figures.received = len(poisoned.healthy) + len(letters.items)
    gaps = [b - a for a, b in itertools.pairwise(poisoned.attempts)]
    figures.errors["RuntimeError"] = len(poisoned.attempts)
    figures.check(f"handler ran {RETRIES + 1} times", len(poisoned.attempts) == RETRIES + 1)
    figures.check("backoff between attempts",
                  all(gap >= BACKOFF * 2 ** i * 0.9 for i, gap in enumerate(gaps)))
    reason = letters.items[0][0].get("relaybus_dead_letter", {}) if letters.items else {}
    figures.check("dead-lettered once with its reason",
                  len(letters.items) == 1 and reason.get("attempts") == RETRIES + 1
                  and "indigestible" in reason.get("error", ""))
    figures.check("the next notification was handled", poisoned.healthy == [{"n": 1}])
    figures.notes.append("gaps between attempts: " + ", ".join(f"{g * 1000:.0f} ms"
                                                             for g in gaps))
    return figures
