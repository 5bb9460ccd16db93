"""Scenario: poison and delay across a broker restart.

A listener runs under a delivery policy (3 attempts, 1 s backoff, a dead-letter topic): some
notifications are poison (always raise), some flaky (raise once, then succeed). Delayed
casts and delayed notifications (3 s) are sent beside them. While retries wait for their
backoff and the delayed messages wait in the broker, the broker (an instance of the
scenario's own) is SIGKILLed and started again. Nothing may be lost: every delayed message
arrives, none before its delay; every flaky notification is handled; every poison one ends
in the dead-letter topic with its reason, where ``relaybus dlq`` can read it.
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
from relaybus import DeliveryPolicy, Target
from relaybus.delivery.store import DeadLetterStore

DELAYED = 20  # casts, and as many notifications
POISON = 5
FLAKY = 10
DELAY = 3.0
BACKOFF = 1.0
DEADLINE = 90.0
OPTIONS = {"rabbit": "?amqp_durable_queues=true", "nats": "?ack_wait=3"}


class Sink:
    def __init__(self) -> None:
        self.casts: dict[int, list[float]] = {}
        self.delayed: dict[int, list[float]] = {}
        self.flaky_runs: Counter[int] = Counter()
        self.flaky_done: Counter[int] = Counter()
        self.poison_runs = 0
        self.changed = asyncio.Event()

    async def record(self, ctxt: Any, seq: int) -> None:
        self.casts.setdefault(seq, []).append(time.monotonic())
        self.changed.set()

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        seq = payload["seq"]
        if event_type == "poison":
            self.poison_runs += 1
            raise RuntimeError(f"poison {seq}")
        if event_type == "flaky":
            self.flaky_runs[seq] += 1
            if self.flaky_runs[seq] == 1:
                raise RuntimeError(f"flaky {seq}, first run")
            self.flaky_done[seq] += 1
        else:
            self.delayed.setdefault(seq, []).append(time.monotonic())
        self.changed.set()

    def complete(self) -> bool:
        return (len(self.casts) == DELAYED and len(self.delayed) == DELAYED
                and len(self.flaky_done) == FLAKY)


async def run(transport: str, url: str) -> Figures:
    figures = Figures("poison and delay across a broker restart", transport)
    broker = RabbitInstance() if transport == "rabbit" else NatsInstance()
    sink = Sink()
    topic, ntopic, dead = unique("pd"), unique("pd_n"), unique("pd_dead")
    policy = DeliveryPolicy(attempts=3, backoff=BACKOFF, dead_letter=dead)
    sent_at: float = 0.0
    letters: list[Any] = []
    try:
        async with await relaybus.connect(broker.url + OPTIONS[transport]) as bus:
            server = bus.rpc_server(Target(topic=topic, server="s1"), [sink])
            listener = bus.notification_listener([Target(topic=ntopic)], [sink], pool="work",
                                                 delivery=policy)
            async with server, listener:
                client = bus.rpc_client(Target(topic=topic)).prepare(delay=DELAY)
                notifier = bus.notifier("pd", topics=[ntopic])
                later = notifier.prepare(delay=DELAY)
                sent_at = time.monotonic()
                for seq in range(DELAYED):
                    await client.cast({}, "record", seq=seq)
                    await later.info({}, "delayed", {"seq": seq})
                for seq in range(POISON):
                    await notifier.info({}, "poison", {"seq": seq})
                for seq in range(FLAKY):
                    await notifier.info({}, "flaky", {"seq": seq})
                figures.sent = figures.confirmed = 2 * DELAYED + POISON + FLAKY
                while not sink.flaky_runs:  # retries are now waiting for their backoff
                    sink.changed.clear()
                    await asyncio.wait_for(sink.changed.wait(), 10)
                killed = time.monotonic()
                await asyncio.to_thread(broker.kill)
                await asyncio.to_thread(broker.start)
                back = time.monotonic()
                async with asyncio.timeout(DEADLINE):
                    while not sink.complete():
                        sink.changed.clear()
                        await sink.changed.wait()
                figures.recovery_s = time.monotonic() - back
                figures.notes.append(f"broker down {back - killed:.1f} s, from "
                                     f"{killed - sent_at:.1f} s after the sends")
                store = DeadLetterStore(bus.driver, dead)
                async with asyncio.timeout(DEADLINE):
                    while len({letter.payload["seq"] for letter in letters}) < POISON:
                        letters = await store.letters()  # the store sends no event: polled
                        await asyncio.sleep(0.2)
    except TimeoutError:
        figures.error("timed out waiting")
    finally:
        broker.stop()
    arrivals = [t for ts in (*sink.casts.values(), *sink.delayed.values()) for t in ts]
    figures.received = len(arrivals) + sum(sink.flaky_done.values()) + len(letters)
    figures.lost = (DELAYED - len(sink.casts)) + (DELAYED - len(sink.delayed)) \
        + (FLAKY - len(sink.flaky_done)) + (POISON - len({lt.payload["seq"] for lt in letters}))
    figures.duplicated = (len(arrivals) - len(sink.casts) - len(sink.delayed)
                          + sum(sink.flaky_done.values()) - len(sink.flaky_done)
                          + len(letters) - len({lt.payload["seq"] for lt in letters}))
    figures.errors["RuntimeError"] = sink.poison_runs + sum(sink.flaky_runs.values()) \
        - sum(sink.flaky_done.values())
    figures.check("nothing lost", figures.lost == 0)
    early = [t - sent_at for t in arrivals if t - sent_at < DELAY]
    figures.check("no delayed message arrived before its delay", not early)
    reasons = [lt.reason for lt in letters]
    figures.check("every poison notification dead-lettered with its reason",
                  all(r is not None and r.error_type == "RuntimeError" and r.attempts >= 1
                      for r in reasons) and len(reasons) >= POISON)
    if arrivals:
        figures.notes.append(f"delayed arrivals {min(arrivals) - sent_at:.2f}-"
                             f"{max(arrivals) - sent_at:.2f} s after sending (delay {DELAY} s)")
    figures.notes.append(f"dead letters' attempts: {sorted(r.attempts for r in reasons if r)}")
    return figures
