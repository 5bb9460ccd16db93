"""connect(): URL choice, options, errors naming what is wrong."""

from typing import Any

import pytest

import relaybus
from relaybus import InvalidTransportURL, Target
from relaybus.drivers.memory import MemoryDriver
from relaybus.testing.behaviour import WAIT, Compute
from relaybus.transport import available_schemes, register_transport


async def test_default_is_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYBUS_URL", raising=False)
    async with await relaybus.connect() as bus:
        assert bus.url.scheme == "memory"


async def test_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYBUS_URL", "memory://from-env")
    async with await relaybus.connect() as bus:
        assert bus.url.hosts[0].hostname == "from-env"


async def test_unknown_scheme_lists_the_installed_ones() -> None:
    with pytest.raises(InvalidTransportURL, match=r"no transport is installed for scheme "
                                                  r"'kafka'; installed: .*memory"):
        await relaybus.connect("kafka://localhost:9092")
    assert "memory" in available_schemes()


@pytest.mark.parametrize("options, reason", [
    ({"no_such_option": 1}, "unknown memory option .no_such_option."),
    ({"max_message_size": "big"}, "max_message_size"),
    ({"max_message_size": 0}, "at least 1 byte"),
    ({"control_exchange": "has space"}, "control_exchange"),
])
async def test_bad_options(options: dict, reason: str) -> None:
    with pytest.raises(InvalidTransportURL, match=reason):
        await relaybus.connect("memory://", **options)


async def test_options_from_the_query() -> None:
    async with await relaybus.connect("memory://q?control_exchange=nova&max_message_size=99") \
            as bus:
        assert bus.driver.control_exchange == "nova"
        assert bus.driver.max_message_size == 99


async def test_control_exchange_scopes_topics() -> None:
    async with await relaybus.connect("memory://ex", control_exchange="nova") as nova, \
            await relaybus.connect("memory://ex", control_exchange="cinder") as cinder:
        async with nova.rpc_server(Target(topic="scheduler", server="s"), [Compute("nova")]):
            with pytest.raises(relaybus.MessageUndeliverable):
                await cinder.rpc_client(Target(topic="scheduler")).call({}, "whoami")
            client = cinder.rpc_client(Target(topic="scheduler", exchange="nova"),
                                       timeout=WAIT)
            assert await client.call({}, "whoami") == "nova"


async def test_a_bus_works_with_a_driver_object_passed_in() -> None:
    driver = MemoryDriver(relaybus.parse_url("memory://injected"))
    await driver.connect()
    async with relaybus.Bus(driver) as bus:
        async with bus.rpc_server(Target(topic="inj", server="s"), [Compute()]):
            assert await bus.rpc_client(Target(topic="inj"), timeout=WAIT).call(
                {}, "echo", value=1) == 1


async def test_registered_driver_class_is_used() -> None:
    class Named(MemoryDriver):
        pass

    register_transport("unitmem", Named)
    async with await relaybus.connect("unitmem://x") as bus:
        assert isinstance(bus.driver, Named)


@pytest.mark.parametrize("make", [
    lambda bus: bus.rpc_client("compute"),
    lambda bus: bus.rpc_client(Target(topic="t"), timeout=0),
    lambda bus: bus.rpc_client(Target(topic="t"), timeout=-1),
    lambda bus: bus.rpc_client(Target(topic="t"), version_cap="latest"),
    lambda bus: bus.rpc_client(Target(topic="t"), allowed_remote_exmods="mymod"),
    lambda bus: bus.rpc_client(Target(topic="t")).prepare(colour="red"),
    lambda bus: bus.rpc_server(Target(), [Compute()]),
    lambda bus: bus.rpc_server(Target(topic="t", fanout=True), [Compute()]),
    lambda bus: bus.rpc_server(Target(topic="t"), []),
    lambda bus: bus.rpc_server(Target(topic="t"), [Compute()], max_concurrency=0),
    lambda bus: bus.notifier("p", topics=[]),
    lambda bus: bus.notifier("p", driver="carrier-pigeon"),
    lambda bus: bus.notifier(42),
    lambda bus: bus.notifier("p", retry=-1),
    lambda bus: bus.notification_listener(Target(topic="t"), [object()]),
    lambda bus: bus.notification_listener([Target()], [object()]),
    lambda bus: bus.notification_listener([Target(topic="t")], [object()]),
    lambda bus: bus.notification_listener([Target(topic="t")], [Compute()], pool="a b"),
    lambda bus: bus.batch_notification_listener([Target(topic="t")], [Compute()], 0),
])
async def test_bad_arguments_fail_clearly(make: Any) -> None:
    async with await relaybus.connect("memory://bad") as bus:
        with pytest.raises((ValueError, TypeError)):
            make(bus)


async def test_bad_call_arguments() -> None:
    async with await relaybus.connect("memory://badcall") as bus:
        client = bus.rpc_client(Target(topic="t"))
        with pytest.raises(ValueError, match="method"):
            await client.call({}, "")
        with pytest.raises(relaybus.InvalidTarget, match="topic"):
            await bus.rpc_client(Target()).cast({}, "m")
        with pytest.raises(TypeError, match="context"):
            await client.cast(42, "m")
        with pytest.raises(ValueError, match="event_type"):
            await bus.notifier("p").info({}, "", {})
