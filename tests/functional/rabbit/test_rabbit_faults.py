"""Bad input and faults: malformed messages, dead-lettering and refused credentials (a broker
restart is in test_rabbit_broker_restart.py, on a node of its own)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from rabbit_support import (
    WAIT,
    Tap,
    close_connection,
    envelope,
    message_of,
    parse_body,
    rabbitmqctl,
)
from rabbit_support import RecordingServer as Server

import relaybus
from relaybus import Target
from relaybus.drivers.rabbit import RabbitDriver

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


pytestmark = pytest.mark.broker

MakeBus = Callable[..., Awaitable[relaybus.Bus]]
DROPPED = "relaybus"  # requests: relaybus.transport.intake; notifications: the driver


def call(method: str, reply_q: str, **members: Any) -> dict[str, Any]:
    return {"method": method, "args": {}, "_msg_id": "d" * 32, "_reply_q": reply_q,
            "_timeout": None, "_unique_id": os.urandom(16).hex(), **members}


def dropped_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name.startswith(DROPPED) and r.levelno == logging.WARNING]


BAD_REQUESTS = {
    "not JSON": b"{this is not json",
    "not an object": b"[1, 2, 3]",
    "unknown envelope": json.dumps({"oslo.version": "3.0", "oslo.message": "{}"}).encode(),
    "no method": envelope({"args": {}, "_unique_id": "e" * 32}),
    "args not an object": envelope({"method": "echo", "args": [1], "_unique_id": "f" * 32}),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
async def test_a_malformed_cast_is_logged_once_and_dropped(case: str, bus: relaybus.Bus,
                                                           tap: Tap, topic: str,
                                                           caplog: pytest.LogCaptureFixture
                                                           ) -> None:
    caplog.set_level(logging.WARNING, logger=DROPPED)
    server = Server()
    async with bus.rpc_server(Target(topic=topic, server="s1"), [server]):
        await tap.publish("openstack", topic, BAD_REQUESTS[case])
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await client.call({}, "echo", value="still serving") == "still serving"
        assert await tap.queue_info(topic) == (0, 1)  # not waiting for a redelivery
    (line,) = dropped_lines(caplog)
    assert "(malformed)" in line and topic in line


async def test_a_malformed_call_gets_a_failure_reply(bus: relaybus.Bus, tap: Tap, topic: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=DROPPED)
    reply_q = await tap.queue(f"reply_{uuid.uuid4().hex}")
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Server()]):
        bad = call("echo", reply_q, args="not an object")
        await tap.publish("openstack", topic, envelope(bad))
        reply = message_of(parse_body((await tap.get(reply_q)).body))
    assert reply["ending"] is True and reply["result"] is None and reply["_msg_id"] == "d" * 32
    failure = reply["failure"]
    assert (failure["class"], failure["module"]) == ("MalformedMessage", "relaybus.errors")
    assert "'args' must be an object" in failure["message"]
    assert len(dropped_lines(caplog)) == 1


async def test_bad_arguments_get_a_type_error_reply(bus: relaybus.Bus, tap: Tap,
                                                    topic: str) -> None:
    reply_q = await tap.queue(f"reply_{uuid.uuid4().hex}")
    async with bus.rpc_server(Target(topic=topic, server="s1"), [Server()]):
        await tap.publish("openstack", topic,
                          envelope(call("echo", reply_q, args={"wrong_name": 1})))
        reply = message_of(parse_body((await tap.get(reply_q)).body))
        client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
        assert await client.call({}, "echo", value=1) == 1
    failure = reply["failure"]
    # a TypeError, or relaybus's TypeError subclass for typed endpoints
    assert (failure["class"], failure["module"]) in {("TypeError", "builtins"),
                                                     ("InvalidArguments", "relaybus.errors")}
    assert "wrong_name" in failure["message"]


BAD_NOTIFICATIONS = {
    "not JSON": b"\xff\xfe garbage",
    "unknown priority": envelope({"message_id": "m", "publisher_id": "p", "event_type": "e",
                                  "priority": "LOUD", "payload": {}, "timestamp": "t"}),
    "no event_type": envelope({"message_id": "m", "priority": "INFO", "payload": {}}),
}


@pytest.mark.parametrize("case", list(BAD_NOTIFICATIONS))
async def test_a_malformed_notification_is_logged_once_and_dropped(
        case: str, bus: relaybus.Bus, tap: Tap, topic: str,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=DROPPED)
    got = asyncio.Event()
    payloads: list[Any] = []

    class Listener:
        def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                 metadata: Any) -> None:
            payloads.append(payload)
            got.set()

    tap.forget_later(f"{topic}.info")
    async with bus.notification_listener([Target(topic=topic)], [Listener()]):
        await tap.publish("openstack", f"{topic}.info", BAD_NOTIFICATIONS[case])
        await bus.notifier("p", topics=[topic]).info({}, "e", {"good": True})
        await asyncio.wait_for(got.wait(), WAIT)
        assert await tap.queue_info(f"{topic}.info") == (0, 1)
    assert payloads == [{"good": True}]
    (line,) = dropped_lines(caplog)
    assert "malformed notification" in line


async def test_malformed_messages_are_dead_lettered_where_a_policy_says_so(
        bus: relaybus.Bus, tap: Tap, topic: str) -> None:
    dead = await tap.queue(f"{topic}.dead", (f"{topic}.dlx", "#"), consume=True) \
        if await _dlx(tap, topic) else ""
    rabbitmqctl("set_policy", f"{topic}-dlx", f"^{topic}$",
                json.dumps({"dead-letter-exchange": f"{topic}.dlx"}), "--apply-to", "queues")
    try:
        async with bus.rpc_server(Target(topic=topic, server="s1"), [Server()]):
            await tap.publish("openstack", topic, b"{this is not json")
            letter = await tap.get(dead)
    finally:
        rabbitmqctl("clear_policy", f"{topic}-dlx")
        assert tap.channel is not None
        await tap.channel.exchange_delete(f"{topic}.dlx")
    assert letter.body == b"{this is not json"
    (death,) = letter.header.properties.headers["x-death"]
    assert death["reason"] == "rejected" and death["queue"] == topic


async def _dlx(tap: Tap, topic: str) -> bool:
    await tap.exchange(f"{topic}.dlx")
    return True


# -- credentials ---------------------------------------------------------------------------

async def test_credentials_revoked_while_connected_end_in_authentication_failure(
        rabbit_url: str, topic: str) -> None:
    user, password = f"{topic}_user", os.urandom(8).hex()
    rabbitmqctl("add_user", user, password)
    try:
        rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        bus = await relaybus.connect(f"rabbit://{user}:{password}@127.0.0.1:5672/",
                                     reconnect_delay=0.1, reconnect_delay_max=0.2)
        try:
            async with bus.rpc_server(Target(topic=topic, server="s1"), [Server()]):
                client = bus.rpc_client(Target(topic=topic), timeout=WAIT)
                assert await client.call({}, "echo", value=1) == 1
                waiting = asyncio.ensure_future(client.call({}, "sleep", seconds=30))
                rabbitmqctl("change_password", user, "something-else")
                assert isinstance(bus.driver, RabbitDriver)
                close_connection(bus.driver.connection_name)
                # one refused login ends it: no retry loop, the waiting call is told why
                with pytest.raises(relaybus.AuthenticationFailure):
                    await asyncio.wait_for(waiting, WAIT)
                with pytest.raises(relaybus.AuthenticationFailure):
                    await client.cast({}, "record", value=2)
        finally:
            await bus.close()
    finally:
        rabbitmqctl("delete_user", user)
