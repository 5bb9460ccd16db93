"""A handler that always raises: retried with backoff, then dead-lettered with the reason."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.testing.behaviour import Recorder


class Poisoned:
    def __init__(self) -> None:
        self.attempts = 0

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.attempts += 1
        raise RuntimeError("cannot digest this")


class DeadLetters:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.recorder.add((ctxt, event_type, payload, metadata["message_id"]))


async def test_poison_message_is_retried_then_dead_lettered(
        caplog: pytest.LogCaptureFixture) -> None:
    recorder, poisoned = Recorder(), Poisoned()
    async with await relaybus.connect("memory://poison") as bus:
        async with bus.notification_listener([Target(topic="dlq")], [DeadLetters(recorder)]), \
                bus.notification_listener([Target(topic="orders")], [poisoned], retries=3,
                                          retry_backoff=0.01, dead_letter_topic="dlq"):
            with caplog.at_level(logging.WARNING, logger="relaybus"):
                await bus.notifier("shop", topics=["orders"]).info({"user": "u"}, "order.bad",
                                                                  {"id": 7})
                ((ctxt, event_type, payload, _message_id),) = await recorder.wait_for(1)
    assert poisoned.attempts == 4
    assert (event_type, payload) == ("order.bad", {"id": 7})
    reason = ctxt["relaybus_dead_letter"]
    assert reason["error"] == "RuntimeError: cannot digest this" and reason["attempts"] == 4
    assert reason["topic"] == "orders" and "Poisoned.info" in reason["handler"]
    assert ctxt["user"] == "u"
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert [r.getMessage().split("attempt ")[1][:6] for r in retries] == \
        ["1 of 4", "2 of 4", "3 of 4"]


async def test_without_retries_the_handler_runs_once_and_the_message_is_dropped() -> None:
    poisoned, after = Poisoned(), Recorder()

    class Next:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:
            after.add(payload)

    async with await relaybus.connect("memory://poison-once") as bus:
        async with bus.notification_listener([Target(topic="once")], [poisoned, Next()]):
            notifier = bus.notifier("p", topics=["once"])
            await notifier.info({}, "e", {"n": 1})
            await after.wait_for(1)
    assert poisoned.attempts == 1


@pytest.mark.parametrize("options", [{"retries": -1}, {"retry_backoff": -1},
                                     {"dead_letter_topic": "has space"}])
async def test_bad_retry_options(options: dict) -> None:
    async with await relaybus.connect("memory://poison-bad") as bus:
        with pytest.raises(ValueError):
            bus.notification_listener([Target(topic="t")], [Poisoned()], **options)
