"""Notifications between relaybus and a real oslo.messaging 18, both ways, with pools."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import uuid
from typing import Any

import pytest
from interop_support import WAIT, Oslo, RequestContext

import relaybus
from relaybus import Target

pytestmark = [pytest.mark.broker, pytest.mark.interop]


class Seen:
    """Records notifications from any thread; ``wait_for(n)`` from the event loop."""

    def __init__(self, name: str = "", also: Seen | None = None) -> None:
        self.name = name
        self.items: list[dict[str, Any]] = []
        self._lock = threading.Condition()
        self._also = also

    def add(self, item: dict[str, Any]) -> None:
        with self._lock:
            self.items.append(item)
            self._lock.notify_all()
        if self._also is not None:
            self._also.add(item)

    async def wait_for(self, count: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        def wait() -> bool:
            with self._lock:
                return self._lock.wait_for(lambda: len(self.items) >= count, timeout)
        assert await asyncio.to_thread(wait), f"{self.name} got {len(self.items)} of {count}"
        return self.items

    def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
             metadata: dict[str, Any]) -> None:
        self.add({"ctxt": dict(ctxt), "publisher_id": publisher_id, "event_type": event_type,
                  "payload": payload, "metadata": dict(metadata), "by": self.name})


async def test_relaybus_notifier_to_an_oslo_listener(bus: relaybus.Bus, oslo: Oslo,
                                                     topic: str) -> None:
    seen = Seen("oslo")
    await oslo.listener(topic, [seen])
    await bus.notifier("compute.host1", topics=[topic]).info(
        {"user": "u-1", "request_id": "req-1", "auth_token": "secret"},
        "compute.instance.create.end", {"instance_id": 52})
    (got,) = await seen.wait_for(1)
    assert got["publisher_id"] == "compute.host1"
    assert got["event_type"] == "compute.instance.create.end"
    assert got["payload"] == {"instance_id": 52}
    assert got["ctxt"] == {"user": "u-1", "request_id": "req-1", "auth_token": None,
                           "client_timeout": None}
    assert uuid.UUID(got["metadata"]["message_id"])


async def test_relaybus_notifier_to_oslo_listeners_in_pools(bus: relaybus.Bus, oslo: Oslo,
                                                            topic: str) -> None:
    pools = {"a": Seen("a"), "b": Seen("b"), None: Seen("default")}
    for pool, seen in pools.items():
        await oslo.listener(topic, [seen], pool=f"{topic}-{pool}" if pool else None)
    notifier = bus.notifier("p", topics=[topic])
    for n in range(3):
        await notifier.info({}, "e", {"n": n})
    for seen in pools.values():  # every pool, and the default one, gets every notification
        items = await seen.wait_for(3)
        assert sorted(item["payload"]["n"] for item in items) == [0, 1, 2]


async def test_oslo_notifier_to_a_relaybus_listener(bus: relaybus.Bus, oslo: Oslo,
                                                    topic: str) -> None:
    seen = Seen("relaybus")
    context = RequestContext(user_id="u-0001", project_id="p-0001", auth_token="secret",
                             request_id="req-00000000-0000-0000-0000-000000000002")
    async with bus.notification_listener([Target(topic=topic)], [seen]):
        notifier = oslo.notifier(topic, "wirecap.host1")
        await asyncio.to_thread(notifier.info, context, "wirecap.widget.create",
                                {"widget_id": "w-1"})
        await asyncio.to_thread(notifier.error, context, "wirecap.widget.broken", {})
        (got,) = await seen.wait_for(1)
    assert (got["publisher_id"], got["event_type"], got["payload"]) == \
        ("wirecap.host1", "wirecap.widget.create", {"widget_id": "w-1"})
    assert got["ctxt"]["user"] == "u-0001" and got["ctxt"]["project_id"] == "p-0001"
    assert got["ctxt"]["request_id"] == "req-00000000-0000-0000-0000-000000000002"
    assert got["ctxt"]["auth_token"] is None  # oslo redacts the token in notifications
    assert len(seen.items) == 1  # no error method: relaybus did not consume that priority


async def test_oslo_notifier_to_relaybus_listeners_in_pools(make_bus: Any, oslo: Oslo,
                                                            topic: str) -> None:
    pools = {"a": Seen("a"), "b": Seen("b")}
    listeners = [(await make_bus()).notification_listener([Target(topic=topic)], [seen],
                                                          pool=f"{topic}-{pool}")
                 for pool, seen in pools.items()]
    for listener in listeners:
        await listener.start()
    notifier = oslo.notifier(topic, "p")
    context = RequestContext(user_id="u")
    for n in range(3):
        await asyncio.to_thread(notifier.info, context, "e", {"n": n})
    for seen in pools.values():
        items = await seen.wait_for(3)
        assert sorted(item["payload"]["n"] for item in items) == [0, 1, 2]
    for listener in listeners:
        await listener.stop()
        await listener.wait()


async def test_relaybus_and_oslo_listeners_share_one_pool(bus: relaybus.Bus, oslo: Oslo,
                                                          topic: str) -> None:
    total = Seen("the pool")
    by_oslo, by_relaybus = Seen("oslo", also=total), Seen("relaybus", also=total)
    pool = f"{topic}-shared"
    await oslo.listener(topic, [by_oslo], pool=pool)
    async with bus.notification_listener([Target(topic=topic)], [by_relaybus], pool=pool):
        notifier = bus.notifier("p", topics=[topic])
        for n in range(20):
            await notifier.info({}, "e", {"n": n})
        await total.wait_for(20)
    assert sorted(item["payload"]["n"] for item in total.items) == list(range(20))  # once each
    assert by_oslo.items and by_relaybus.items  # and the pool's two members shared them


@pytest.mark.parametrize("options, arguments", [
    ({"rabbit_quorum_queue": True, "rabbit_quorum_delivery_limit": 5,
      "rabbit_quorum_max_memory_length": 100},
     {"x-queue-type": "quorum", "x-delivery-limit": 5, "x-max-in-memory-length": 100}),
    ({"rabbit_ha_queues": True}, {"x-ha-policy": "all"}),
], ids=["quorum-config", "ha-queues"])
async def test_queue_options_declare_what_oslo_declares(
        make_bus: Any, oslo: Oslo, topic: str, vhost: str, options: dict[str, Any],
        arguments: dict[str, Any]) -> None:
    # relaybus declares the notification queue first; oslo, declaring it again with the
    # same options, would be refused (406) by any argument relaybus left out
    for name, value in options.items():
        oslo.conf.set_override(name, value, group="oslo_messaging_rabbit")
    exchange = f"{topic}_ex"  # durable or not with the options: one of its own
    oslo.conf.set_override("control_exchange", exchange)
    bus = await make_bus(control_exchange=exchange, **options)
    await bus.notifier("rb", topics=[topic]).info({}, "e", {"n": 1})
    notifier = oslo.notifier(topic, "oslo")
    await asyncio.to_thread(notifier.info, RequestContext(), "e", {"n": 2})
    seen = Seen("relaybus")
    async with bus.notification_listener([Target(topic=topic)], [seen]):
        got = await seen.wait_for(2)
    assert sorted(item["payload"]["n"] for item in got) == [1, 2]
    queues = json.loads((await asyncio.to_thread(
        subprocess.run,
        ["rabbitmqctl", "-q", "--formatter", "json", "list_queues", "-p", vhost, "name",
         "arguments"], capture_output=True, text=True, check=True, timeout=60)).stdout)
    (declared,) = [q["arguments"] for q in queues if q["name"] == f"{topic}.info"]
    assert {key: value for key, _, value in declared} == arguments
