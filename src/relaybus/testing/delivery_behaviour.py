"""The delivery-policy part of the behaviour suite: retries, backoff and dead letters.

Bind it like the rest of the suite::

    class TestMyDelivery(DeliveryBehaviour):
        transport_url = "mine://127.0.0.1:1234/"

Each test's dead-letter topic is ``<topic>_dlq`` (see :meth:`DeliveryBehaviour.dlq`), so a
binding that cleans up per topic (JetStream streams) cleans both.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import time
from typing import Any

import pytest

import relaybus
from relaybus import DeadLetterReason, DeliveryPolicy, Target
from relaybus.testing.behaviour import WAIT, Recorder, _Suite

BACKOFF = 0.05


class Permanent(Exception):
    """An error the tests' policies call permanent."""


class Flaky:
    """Fails its first ``failures`` runs (``Permanent`` if asked), then records."""

    def __init__(self, failures: int, error: type[Exception] = RuntimeError) -> None:
        self.failures = failures
        self.error = error
        self.runs: list[float] = []
        self.handled = Recorder()
        self.ran = Recorder()

    def _run(self, value: Any) -> None:
        self.runs.append(time.monotonic())
        self.ran.add(value)
        if len(self.runs) <= self.failures:
            raise self.error(f"failure {len(self.runs)}")
        self.handled.add(value)

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        self._run(payload)

    async def record(self, ctxt: Any, value: Any) -> None:
        self._run(value)


class Letters:
    """A listener on a dead-letter topic: records ``(reason, event_type, payload, metadata)``."""

    def __init__(self) -> None:
        self.recorder = Recorder()

    def _add(self, ctxt: Any, event_type: str, payload: Any, metadata: dict[str, Any]) -> None:
        self.recorder.add((DeadLetterReason.from_context(ctxt), event_type, payload, metadata))

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: dict[str, Any]) -> None:
        self._add(ctxt, event_type, payload, metadata)

    async def error(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                    metadata: dict[str, Any]) -> None:
        self._add(ctxt, event_type, payload, metadata)


def _gaps(runs: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(runs)]


class DeliveryBehaviour(_Suite):
    """DeliveryPolicy on listeners and on servers' casts, the same on every transport."""

    @staticmethod
    def dlq(topic: str) -> str:
        """The dead-letter topic of a test's topic."""
        return f"{topic}_dlq"

    async def test_a_handler_failing_twice_is_handled_once_after_the_backoff(
            self, bus: relaybus.Bus, topic: str) -> None:
        flaky, letters = Flaky(failures=2), Letters()
        policy = DeliveryPolicy(attempts=3, backoff=BACKOFF, factor=2,
                                dead_letter=self.dlq(topic))
        async with bus.notification_listener([Target(topic=self.dlq(topic))], [letters]), \
                bus.notification_listener([Target(topic=topic)], [flaky], delivery=policy):
            await bus.notifier("p", topics=[topic]).info({}, "e", {"n": 1})
            assert await flaky.handled.wait_for(1) == [{"n": 1}]
        # the listener is stopped and drained: a second delivery would have happened by now
        assert flaky.handled.items == [{"n": 1}] and len(flaky.runs) == 3
        assert letters.recorder.items == []
        gaps = _gaps(flaky.runs)
        assert gaps[0] >= BACKOFF * 0.9 and gaps[1] >= 2 * BACKOFF * 0.9, gaps

    async def test_a_permanent_error_dead_letters_at_once(self, bus: relaybus.Bus,
                                                          topic: str) -> None:
        flaky, letters = Flaky(failures=10, error=Permanent), Letters()
        policy = DeliveryPolicy(attempts=5, backoff=WAIT, permanent=(Permanent,),
                                dead_letter=self.dlq(topic))
        async with bus.notification_listener([Target(topic=self.dlq(topic))], [letters]), \
                bus.notification_listener([Target(topic=topic)], [flaky], delivery=policy,
                                          pool=f"{topic}_w"):
            await bus.notifier("shop", topics=[topic]).info({"user": "u"}, "order.bad",
                                                            {"id": 7})
            ((reason, event_type, payload, metadata),) = await letters.recorder.wait_for(1)
        assert len(flaky.runs) == 1
        assert (event_type, payload) == ("order.bad", {"id": 7})
        assert isinstance(reason, DeadLetterReason)
        assert (reason.kind, reason.error_type, reason.error_message, reason.attempts,
                reason.permanent, reason.topic, reason.pool, reason.priority) == \
            ("notification", "Permanent", "failure 1", 1, True, topic, f"{topic}_w", "info")
        assert reason.exchange == "openstack" and reason.message_id == metadata["message_id"]
        assert reason.first_failure == reason.last_failure and "Flaky.info" in reason.handler

    async def test_out_of_attempts_dead_letters_with_the_reason(self, bus: relaybus.Bus,
                                                                topic: str) -> None:
        flaky, letters = Flaky(failures=10), Letters()
        policy = DeliveryPolicy(attempts=3, backoff=BACKOFF, dead_letter=self.dlq(topic))
        async with bus.notification_listener([Target(topic=self.dlq(topic))], [letters]), \
                bus.notification_listener([Target(topic=topic)], [flaky], delivery=policy):
            await bus.notifier("p", topics=[topic]).info({}, "e", {"n": 1})
            ((reason, _, payload, _),) = await letters.recorder.wait_for(1)
        assert len(flaky.runs) == 3 and payload == {"n": 1}
        assert (reason.attempts, reason.permanent, reason.error_message) == \
            (3, False, "failure 3")
        assert reason.first_failure < reason.last_failure

    async def test_a_retry_at_the_broker_survives_the_consumers_restart(
            self, bus: relaybus.Bus, topic: str) -> None:
        policy = DeliveryPolicy(attempts=3, backoff=0.3, at_broker=True)
        first = Flaky(failures=1)
        contexts = Recorder()

        class Second(Flaky):
            async def info(self, ctxt: Any, publisher_id: str, event_type: str,
                           payload: Any, metadata: dict[str, Any]) -> None:
                contexts.add(ctxt)
                await super().info(ctxt, publisher_id, event_type, payload, metadata)

        second = Second(failures=0)
        pool = f"{topic}_w"
        async with bus.notification_listener([Target(topic=topic)], [first], pool=pool,
                                             delivery=policy):
            await bus.notifier("p", topics=[topic]).info({}, "e", {"n": 1})
            await first.ran.wait_for(1)
        # the first consumer is gone; the retry waits at the broker for the next one
        async with bus.notification_listener([Target(topic=topic)], [second], pool=pool,
                                             delivery=policy):
            assert await second.handled.wait_for(1) == [{"n": 1}]
        assert first.handled.items == [] and len(first.runs) == 1
        assert second.runs[0] - first.runs[0] >= 0.3 * 0.9
        ctxt = contexts.items[0]
        if "relaybus_attempt" in ctxt:  # where the transport rewrites the message
            assert ctxt["relaybus_attempt"] == 2 and ctxt["relaybus_first_failure"]

    async def test_retries_at_the_broker_end_in_the_dead_letter_topic(
            self, bus: relaybus.Bus, topic: str) -> None:
        flaky, letters = Flaky(failures=10), Letters()
        policy = DeliveryPolicy(attempts=3, backoff=BACKOFF, at_broker=True,
                                dead_letter=self.dlq(topic))
        async with bus.notification_listener([Target(topic=self.dlq(topic))], [letters]), \
                bus.notification_listener([Target(topic=topic)], [flaky], delivery=policy):
            await bus.notifier("p", topics=[topic]).info({}, "e", {"n": 1})
            ((reason, _, payload, _),) = await letters.recorder.wait_for(1)
        assert len(flaky.runs) == 3 and payload == {"n": 1}
        assert (reason.attempts, reason.error_message) == (3, "failure 3")
        assert reason.first_failure < reason.last_failure
        assert _gaps(flaky.runs)[1] >= 2 * BACKOFF * 0.9

    async def test_a_batch_handler_is_retried(self, bus: relaybus.Bus, topic: str) -> None:
        batches: list[list[Any]] = []
        done = asyncio.Event()

        class FlakyBatch:
            async def info(self, messages: list[dict[str, Any]]) -> None:
                batches.append([m["payload"] for m in messages])
                if len(batches) == 1:
                    raise RuntimeError("not yet")
                done.set()

        policy = DeliveryPolicy(attempts=2, backoff=BACKOFF)
        async with bus.batch_notification_listener([Target(topic=topic)], [FlakyBatch()],
                                                   batch_size=2, batch_timeout=WAIT,
                                                   delivery=policy):
            notifier = bus.notifier("p", topics=[topic])
            await notifier.info({}, "e", {"n": 1})
            await notifier.info({}, "e", {"n": 2})
            await asyncio.wait_for(done.wait(), WAIT)
        assert len(batches) == 2 and batches[0] == batches[1]
        assert sorted(p["n"] for p in batches[1]) == [1, 2]

    async def test_a_batch_retry_at_the_broker_survives_the_consumers_restart(
            self, bus: relaybus.Bus, topic: str) -> None:
        policy = DeliveryPolicy(attempts=3, backoff=0.3, at_broker=True)
        failed_at: list[float] = []
        first_ran, handled = asyncio.Event(), Recorder()

        class Failing:
            async def info(self, messages: list[dict[str, Any]]) -> None:
                failed_at.append(time.monotonic())
                first_ran.set()
                raise RuntimeError("not yet")

        class Working:
            async def info(self, messages: list[dict[str, Any]]) -> None:
                for m in messages:
                    handled.add((time.monotonic(), m["payload"]["n"], m["ctxt"]))

        pool = f"{topic}_w"
        target = [Target(topic=topic)]
        async with bus.batch_notification_listener(target, [Failing()], batch_size=2,
                                                   batch_timeout=WAIT, pool=pool,
                                                   delivery=policy):
            notifier = bus.notifier("p", topics=[topic])
            await notifier.info({}, "e", {"n": 1})
            await notifier.info({}, "e", {"n": 2})
            await asyncio.wait_for(first_ran.wait(), WAIT)
        # the first consumer is gone; both retries wait at the broker for the next one
        async with bus.batch_notification_listener(target, [Working()], batch_size=2,
                                                   batch_timeout=0.05, pool=pool,
                                                   delivery=policy):
            items = await handled.wait_for(2)
        assert len(failed_at) == 1 and sorted(n for _, n, _ in items) == [1, 2]
        assert min(at for at, _, _ in items) - failed_at[0] >= 0.3 * 0.9
        for _, _, ctxt in items:
            if "relaybus_attempt" in ctxt:  # where the transport rewrites the message
                assert ctxt["relaybus_attempt"] == 2

    async def test_batch_retries_at_the_broker_end_in_the_dead_letter_topic(
            self, bus: relaybus.Bus, topic: str) -> None:
        letters, runs = Letters(), Recorder()
        policy = DeliveryPolicy(attempts=2, backoff=BACKOFF, at_broker=True,
                                dead_letter=self.dlq(topic))

        class Failing:
            async def info(self, messages: list[dict[str, Any]]) -> None:
                for m in messages:
                    runs.add(m["payload"]["n"])
                raise RuntimeError("never")

        async with bus.notification_listener([Target(topic=self.dlq(topic))], [letters]), \
                bus.batch_notification_listener([Target(topic=topic)], [Failing()],
                                                batch_size=2, batch_timeout=0.05,
                                                delivery=policy):
            notifier = bus.notifier("p", topics=[topic])
            await notifier.info({}, "e", {"n": 1})
            await notifier.info({}, "e", {"n": 2})
            items = await letters.recorder.wait_for(2)
        assert sorted(payload["n"] for _, _, payload, _ in items) == [1, 2]
        for reason, _, _, _ in items:
            assert (reason.attempts, reason.error_message, reason.permanent) == \
                (2, "never", False)
        assert sorted(runs.items) == [1, 1, 2, 2]

    async def test_a_cast_failing_twice_is_handled_once(self, bus: relaybus.Bus,
                                                        topic: str) -> None:
        flaky = Flaky(failures=2)
        policy = DeliveryPolicy(attempts=3, backoff=BACKOFF)
        async with bus.rpc_server(Target(topic=topic, server="s1"), [flaky], delivery=policy):
            await bus.rpc_client(Target(topic=topic)).cast({}, "record", value=5)
            assert await flaky.handled.wait_for(1) == [5]
        assert flaky.handled.items == [5] and len(flaky.runs) == 3
        assert _gaps(flaky.runs)[0] >= BACKOFF * 0.9

    async def test_a_cast_retry_at_the_broker_survives_the_servers_restart(
            self, bus: relaybus.Bus, topic: str) -> None:
        policy = DeliveryPolicy(attempts=3, backoff=0.5, at_broker=True)
        first = Flaky(failures=1)
        contexts = Recorder()

        class Second(Flaky):
            async def record(self, ctxt: Any, value: Any) -> None:
                contexts.add(ctxt)
                await super().record(ctxt, value)

        second = Second(failures=0)
        async with bus.rpc_server(Target(topic=topic, server="s1"), [first], delivery=policy):
            await bus.rpc_client(Target(topic=topic)).cast({}, "record", value=5)
            await first.ran.wait_for(1)
        async with bus.rpc_server(Target(topic=topic, server="s2"), [second],
                                  delivery=policy):
            assert await second.handled.wait_for(1) == [5]
        assert first.handled.items == [] and second.runs[0] - first.runs[0] >= 0.5 * 0.9
        assert contexts.items[0]["relaybus_attempt"] == 2

    async def test_a_failing_cast_is_dead_lettered_to_be_cast_again(
            self, bus: relaybus.Bus, topic: str) -> None:
        flaky, letters = Flaky(failures=10), Letters()
        policy = DeliveryPolicy(attempts=2, backoff=BACKOFF, dead_letter=self.dlq(topic))
        async with bus.notification_listener([Target(topic=self.dlq(topic))], [letters]), \
                bus.rpc_server(Target(topic=topic, server="s1"), [flaky], delivery=policy):
            client = bus.rpc_client(Target(topic=topic))
            await client.cast({"user": "u"}, "record", value=5)
            await client.cast({}, "no_such_method", value=6)
            items = await letters.recorder.wait_for(2)
        by_method = {event_type: (reason, payload) for reason, event_type, payload, _ in items}
        reason, payload = by_method["record"]
        assert (reason.kind, reason.attempts, reason.permanent, reason.topic) == \
            ("cast", 2, False, topic)
        assert payload == {"method": "record", "args": {"value": 5}, "namespace": None,
                           "version": None}
        reason, payload = by_method["no_such_method"]  # cannot be dispatched: at once
        assert (reason.error_type, reason.attempts, reason.permanent) == \
            ("NoSuchMethod", 1, True)
        assert len(flaky.runs) == 2

    async def test_calls_are_never_retried(self, bus: relaybus.Bus, topic: str) -> None:
        flaky = Flaky(failures=1)
        policy = DeliveryPolicy(attempts=3, backoff=BACKOFF)
        async with bus.rpc_server(Target(topic=topic, server="s1"), [flaky], delivery=policy):
            client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
            with pytest.raises(RuntimeError, match="failure 1"):
                await client.call({}, "record", value=1)
        assert len(flaky.runs) == 1


class DelayBehaviour(_Suite):
    """Delayed casts and notifications: never early, and within the transport's precision.

    ``delay_slack`` is how much later than its delay a message may arrive before the test
    fails: the transport's stated precision plus room for a loaded test machine.
    """

    delay: float = 0.4
    delay_slack: float = 2.0

    async def test_a_delayed_cast_arrives_no_earlier_than_its_delay(
            self, bus: relaybus.Bus, topic: str) -> None:
        arrivals = Recorder()

        class Clock:
            async def record(self, ctxt: Any, value: Any) -> None:
                arrivals.add((value, time.monotonic()))

        client = bus.rpc_client(Target(topic=topic)).prepare(delay=self.delay)
        sent = time.monotonic()
        await client.cast({}, "record", value=1)  # no server yet: it may start in the delay
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Clock()]):
            ((value, arrived),) = await arrivals.wait_for(1, WAIT + self.delay)
        assert value == 1
        assert self.delay <= arrived - sent < self.delay + self.delay_slack, arrived - sent

    async def test_a_delayed_notification_arrives_no_earlier_than_its_delay(
            self, bus: relaybus.Bus, topic: str) -> None:
        arrivals = Recorder()

        class Clock:
            async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                           metadata: dict[str, Any]) -> None:
                arrivals.add((payload, time.monotonic()))

        async with bus.notification_listener([Target(topic=topic)], [Clock()]):
            notifier = bus.notifier("p", topics=[topic])
            sent = time.monotonic()
            await notifier.prepare(delay=self.delay).info({}, "later", {"n": 1})
            await notifier.info({}, "now", {"n": 2})
            first, second = await arrivals.wait_for(2, WAIT + self.delay)
        assert first[0] == {"n": 2} and second[0] == {"n": 1}
        assert self.delay <= second[1] - sent < self.delay + self.delay_slack, second[1] - sent

    async def test_a_call_cannot_be_delayed(self, bus: relaybus.Bus, topic: str) -> None:
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT).prepare(delay=1)
        with pytest.raises(ValueError, match="a call cannot be delayed"):
            await client.call({}, "record", value=1)


class DeadLetterStoreBehaviour(_Suite):
    """What ``relaybus dlq`` does, through :class:`~relaybus.delivery.store.DeadLetterStore`:
    dead letters are listed without being taken, replayed through the normal path (and
    kept when the replay fails), and purged by age."""

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}_dlq"

    async def _dead_letter(self, bus: relaybus.Bus, topic: str, count: int) -> None:
        flaky = Flaky(failures=10_000)
        policy = DeliveryPolicy(attempts=1, dead_letter=self.dlq(topic))
        async with bus.notification_listener([Target(topic=topic)], [flaky], delivery=policy), \
                bus.rpc_server(Target(topic=topic, server="s1"), [flaky], delivery=policy):
            notifier = bus.notifier("p", topics=[topic])
            for n in range(count):
                await notifier.info({"n": n}, "e", {"n": n})
            await bus.rpc_client(Target(topic=topic)).cast({}, "record", value=99)
            await flaky.ran.wait_for(count + 1)
        # stopped and drained: every dead letter was sent (and confirmed) before this

    async def test_letters_are_listed_replayed_and_purged(self, bus: relaybus.Bus,
                                                          topic: str) -> None:
        from relaybus.delivery.store import DeadLetterStore

        await self._dead_letter(bus, topic, 3)
        store = DeadLetterStore(bus.driver, self.dlq(topic))
        letters = await store.letters()
        assert sorted((letter.event_type, letter.reason.kind if letter.reason else None)
                      for letter in letters) == \
            [("e", "notification")] * 3 + [("record", "cast")]
        assert len(await store.letters()) == 4  # listing takes nothing
        first = next(letter for letter in letters if letter.event_type == "e")
        assert (await store.find(first.id)) == first

        replayed = Recorder()

        class Healthy:
            async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                           metadata: dict[str, Any]) -> None:
                replayed.add((ctxt, payload, metadata["message_id"]))

            async def record(self, ctxt: Any, value: Any) -> None:
                replayed.add((ctxt, value, None))

        cast = next(letter for letter in letters if letter.event_type == "record")
        done, failed = await store.replay({cast.id})  # nobody serves the topic: it stays
        assert done == [] and [letter.id for letter, _ in failed] == [cast.id]
        assert isinstance(failed[0][1], relaybus.MessageUndeliverable)
        assert len(await store.letters()) == 4

        async with bus.notification_listener([Target(topic=topic)], [Healthy()]), \
                bus.rpc_server(Target(topic=topic, server="s1"), [Healthy()]):
            done, failed = await store.replay({first.id, cast.id})
            assert sorted(letter.id for letter in done) == sorted([first.id, cast.id])
            assert failed == []
            items = await replayed.wait_for(2)
        by_kind = {message_id is None: (ctxt, payload) for ctxt, payload, message_id in items}
        ctxt, payload = by_kind[False]
        assert payload == first.payload and ctxt["relaybus_replayed"]["from"] == first.id
        assert "relaybus_dead_letter" not in ctxt
        assert by_kind[True][1] == 99
        assert len(await store.letters()) == 2

        assert await store.purge(datetime.timedelta(hours=1)) == []
        assert len(await store.purge(datetime.timedelta(0))) == 2
        assert await store.letters() == []
