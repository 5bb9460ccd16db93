"""What is specific to memory://: injected bad messages, duplicates, isolation, threads."""

import asyncio
import json
import logging
from typing import Any

import pytest

import relaybus
from relaybus import Target
from relaybus.drivers.memory.broker import broker_named
from relaybus.message import build_request, pack
from relaybus.testing.behaviour import WAIT, Compute, Recorder


@pytest.fixture
async def bus() -> Any:
    async with await relaybus.connect("memory://unit") as bus:
        yield bus


def _inject(topic: str, body: bytes) -> int:
    return broker_named("unit").publish("openstack", topic, body)


@pytest.mark.parametrize("body", [
    b"not json",
    b"[1]",
    json.dumps({"oslo.version": "9.9", "oslo.message": "{}"}).encode(),
    pack({"args": {}}),
    pack({"method": "record", "args": "not an object"}),
])
async def test_malformed_requests_are_logged_once_and_dropped(
        bus: relaybus.Bus, body: bytes, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    async with bus.rpc_server(Target(topic="bad_input", server="s1"),
                              [Compute("s1", recorder)]):
        with caplog.at_level(logging.WARNING, logger="relaybus"):
            assert _inject("bad_input", body) == 1
            client = bus.rpc_client(Target(topic="bad_input"), timeout=WAIT)
            assert await client.call({}, "echo", value="still serving") == "still serving"
    assert recorder.items == []
    malformed = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(malformed) == 1


async def test_a_repeated_unique_id_is_served_once(bus: relaybus.Bus) -> None:
    recorder = Recorder()
    async with bus.rpc_server(Target(topic="dup", server="s1"), [Compute("s1", recorder)]):
        body = pack(build_request("record", {"value": 1}, {}))
        _inject("dup", body)
        _inject("dup", body)
        await bus.rpc_client(Target(topic="dup"), timeout=WAIT).call({}, "record", value=2)
    assert recorder.items == [("s1", 1), ("s1", 2)]


async def test_a_failing_cast_is_logged_and_the_server_goes_on(
        bus: relaybus.Bus, caplog: pytest.LogCaptureFixture) -> None:
    async with bus.rpc_server(Target(topic="castfail", server="s1"), [Compute()]):
        client = bus.rpc_client(Target(topic="castfail"), timeout=WAIT)
        with caplog.at_level(logging.WARNING, logger="relaybus"):
            await client.cast({}, "fail_builtin", text="boom")
            await client.cast({}, "no_such_method")
            assert await client.call({}, "echo", value=3) == 3
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert len(failures) == 2 and "ValueError: boom" in failures[0]


async def test_named_brokers_are_isolated() -> None:
    async with await relaybus.connect("memory://one") as one, \
            await relaybus.connect("memory://two") as two:
        async with one.rpc_server(Target(topic="iso", server="s"), [Compute()]):
            with pytest.raises(relaybus.MessageUndeliverable):
                await two.rpc_client(Target(topic="iso")).call({}, "echo", value=1)


async def test_unencodable_result_becomes_a_failure(bus: relaybus.Bus) -> None:
    class Odd:
        async def odd(self, ctxt: Any) -> object:
            return object()

    async with bus.rpc_server(Target(topic="odd", server="s"), [Odd()]):
        with pytest.raises(TypeError, match="not JSON-serialisable"):
            await bus.rpc_client(Target(topic="odd"), timeout=WAIT).call({}, "odd")


async def test_closed_bus_refuses_to_send() -> None:
    bus = await relaybus.connect("memory://closed")
    await bus.close()
    await bus.close()  # idempotent
    with pytest.raises(relaybus.TransportError):
        await bus.rpc_client(Target(topic="x")).cast({}, "m")


async def test_closing_the_bus_stops_its_servers(bus: relaybus.Bus) -> None:
    server = bus.rpc_server(Target(topic="closing", server="s"), [Compute()])
    await server.start()
    await bus.close()
    assert not server.running


async def test_endpoint_may_be_a_custom_serializer_user(bus: relaybus.Bus) -> None:
    class Tagging(relaybus.JsonPayloadSerializer):
        def serialize_entity(self, ctxt: Any, entity: Any) -> Any:
            return {"tagged": entity}

        def deserialize_entity(self, ctxt: Any, entity: Any) -> Any:
            return entity["tagged"] if isinstance(entity, dict) and "tagged" in entity \
                else entity

    async with bus.rpc_server(Target(topic="ser", server="s"), [Compute()],
                              serializer=Tagging()):
        client = bus.rpc_client(Target(topic="ser"), timeout=WAIT, serializer=Tagging())
        assert await client.call({}, "echo", value=[1, 2]) == [1, 2]


async def test_notification_requeued_at_drain_timeout_is_not_lost(bus: relaybus.Bus) -> None:
    started = asyncio.Event()
    recorder = Recorder()

    class Slow:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:
            started.set()
            await asyncio.sleep(30)

    class Fast:
        async def info(self, ctxt: Any, publisher_id: str, event_type: str, payload: Any,
                       metadata: Any) -> None:
            recorder.add(payload)

    slow = bus.notification_listener([Target(topic="drain")], [Slow()], drain_timeout=0)
    await slow.start()
    await bus.notifier("p", topics=["drain"]).info({}, "e", {"n": 1})
    await asyncio.wait_for(started.wait(), WAIT)
    await slow.stop()
    await slow.wait()  # cancels the slow handler, which gives the message back
    async with bus.notification_listener([Target(topic="drain")], [Fast()]):
        assert await recorder.wait_for(1) == [{"n": 1}]


async def test_received_bodies_over_the_size_limit_are_dropped(
        caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder()
    async with await relaybus.connect("memory://sized", max_message_size=1000) as bus:
        async with bus.rpc_server(Target(topic="sized", server="s1"), [Compute("s1", recorder)]):
            body = pack(build_request("record", {"value": "x" * 2000}, {}))
            with caplog.at_level(logging.WARNING, logger="relaybus"):
                assert broker_named("sized").publish("openstack", "sized", body) == 1
                client = bus.rpc_client(Target(topic="sized"), timeout=WAIT)
                assert await client.call({}, "echo", value="ok") == "ok"
    assert recorder.items == []
    assert any("exceeds max_message_size" in r.getMessage() for r in caplog.records)
