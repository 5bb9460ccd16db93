"""The notifier's log, noop and capture drivers, and several at once."""

import json
import logging

import pytest

import relaybus


async def test_capture_keeps_the_messages_for_tests() -> None:
    async with await relaybus.connect("memory://capture") as bus:
        notifier = bus.notifier("svc.host", driver="capture")
        first_id = await notifier.warning({"auth_token": "secret", "user": "u"},
                                          "thing.happened", {"a": 1})
        await notifier.prepare(publisher_id="other").sample({}, "meter", 3)
    first, second = notifier.captured
    assert first["message_id"] == first_id
    assert (first["priority"], first["event_type"], first["payload"]) == \
        ("WARN", "thing.happened", {"a": 1})
    assert first["_context_auth_token"] is None and first["_context_user"] == "u"
    assert (second["publisher_id"], second["priority"]) == ("other", "SAMPLE")


async def test_log_driver_writes_the_message(caplog: pytest.LogCaptureFixture) -> None:
    async with await relaybus.connect("memory://log") as bus:
        with caplog.at_level(logging.DEBUG, logger="relaybus.notification"):
            await bus.notifier("p", driver="log").error({}, "disk.full", {"pct": 99})
    (record,) = [r for r in caplog.records if r.name == "relaybus.notification.disk.full"]
    assert record.levelno == logging.ERROR
    assert json.loads(record.getMessage())["payload"] == {"pct": 99}


async def test_noop_sends_nothing_and_several_drivers_combine() -> None:
    async with await relaybus.connect("memory://noop") as bus:
        await bus.notifier("p", driver="noop").info({}, "e", {})
        both = bus.notifier("p", topics=["n_both"], driver=["capture", "messaging"])
        await both.info({}, "e", {"n": 1})
        assert len(both.captured) == 1
