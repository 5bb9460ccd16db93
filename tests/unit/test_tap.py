"""A tap sees a topic's traffic without taking it (memory://)."""

from __future__ import annotations

from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.testing.behaviour import WAIT, Compute, Recorder


async def test_tap_sees_calls_casts_fanout_and_notifications_without_taking_them() -> None:
    seen = Recorder()

    async def watch(exchange: str, routing_key: str, message: dict[str, Any]) -> None:
        seen.add((exchange, routing_key, message.get("method") or message.get("event_type")))

    async with await relaybus.connect("memory://tap") as bus:
        requests = await bus.tap(Target(topic="tapped"), watch)
        notes = await bus.tap(Target(topic="tapped_n"), watch)
        recorder = Recorder()
        async with bus.rpc_server(Target(topic="tapped", server="s1"), [Compute("s1", recorder)]):
            client = bus.rpc_client(Target(topic="tapped"), timeout=WAIT)
            assert await client.call({}, "echo", value=1) == 1
            await client.prepare(server="s1").cast({}, "record", value="direct")
            await client.prepare(fanout=True).cast({}, "record", value="all")
            await recorder.wait_for(2)
            await bus.notifier("p", topics=["tapped_n"]).info({}, "thing.done", {})
            await seen.wait_for(4)
        with pytest.raises(relaybus.MessageUndeliverable):  # a tap makes nothing routable
            await client.cast({}, "record", value="nobody")
        await requests.stop()
        await notes.stop()
    assert seen.items[:3] == [("openstack", "tapped", "echo"),
                              ("openstack", "tapped.s1", "record"),
                              ("tapped_fanout", "", "record")]
    assert seen.items[3] == ("openstack", "tapped_n.info", "thing.done")
    assert recorder.items == [("s1", "direct"), ("s1", "all")]
