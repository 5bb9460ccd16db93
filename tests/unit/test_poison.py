"""A handler that always raises: retried with backoff, then dead-lettered with the reason."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import relaybus
from relaybus import Target

pytest_plugins = ["relaybus.testing.pytest_plugin"]


class Poisoned:
    def __init__(self) -> None:
        self.attempts = 0

    async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                   metadata: Any) -> None:
        self.attempts += 1
        raise RuntimeError("cannot digest this")


async def test_poison_message_is_retried_then_dead_lettered(
        relaybus_bus: relaybus.Bus, captured_notifications: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    poisoned = Poisoned()
    dead_letters = await captured_notifications("dlq")
    async with relaybus_bus.notification_listener([Target(topic="orders")], [poisoned],
                                                  retries=3, retry_backoff=0.01,
                                                  dead_letter_topic="dlq"):
        with caplog.at_level(logging.WARNING, logger="relaybus"):
            await relaybus_bus.notifier("shop", topics=["orders"]).info({"user": "u"},
                                                                       "order.bad", {"id": 7})
            dead = await dead_letters.next()
    assert poisoned.attempts == 4
    assert (dead.event_type, dead.payload) == ("order.bad", {"id": 7})
    reason = dead.ctxt["relaybus_dead_letter"]
    assert reason["error"] == "RuntimeError: cannot digest this" and reason["attempts"] == 4
    assert reason["topic"] == "orders" and "Poisoned.info" in reason["handler"]
    assert dead.ctxt["user"] == "u"
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert [r.getMessage().split("attempt ")[1][:6] for r in retries] == \
        ["1 of 4", "2 of 4", "3 of 4"]


async def test_without_retries_the_handler_runs_once_and_the_message_is_dropped(
        relaybus_bus: relaybus.Bus, relaybus_spy: Any) -> None:
    class Next:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:
            pass

    poisoned, after = Poisoned(), relaybus_spy(Next())
    async with relaybus_bus.notification_listener([Target(topic="once")], [poisoned, after]):
        await relaybus_bus.notifier("p", topics=["once"]).info({}, "e", {"n": 1})
        await after.next_call("info")
    assert poisoned.attempts == 1


@pytest.mark.parametrize("options", [{"retries": -1}, {"retry_backoff": -1},
                                     {"dead_letter_topic": "has space"}])
async def test_bad_retry_options(relaybus_bus: relaybus.Bus, options: dict) -> None:
    with pytest.raises(ValueError):
        relaybus_bus.notification_listener([Target(topic="t")], [Poisoned()], **options)
