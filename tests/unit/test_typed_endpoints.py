"""Typed endpoint methods: arguments checked and converted, precise errors, typed payloads."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import msgspec
import pydantic
import pytest

import relaybus
from relaybus import InvalidArguments, Target
from relaybus.testing.behaviour import WAIT

pytest_plugins = ["relaybus.testing.pytest_plugin"]


class Flavor(msgspec.Struct):
    name: str
    vcpus: int
    memory_mb: int = 512


@dataclasses.dataclass
class Placement:
    host: str
    when: datetime.datetime


class Quota(pydantic.BaseModel):
    instances: int
    cores: int = 20


class InstanceCreated(msgspec.Struct):
    instance_id: int
    host: str


@dataclasses.dataclass
class Rebuild:
    image: str
    preserve_ephemeral: bool = False
    tags: list[str] = dataclasses.field(default_factory=list)


class Scheduler:
    async def rebuild(self, ctxt: Any, request: list[Rebuild]) -> list[Rebuild]:
        return request

    async def select(self, ctxt: Any, flavor: Flavor, hosts: list[str],
                     retries: int = 0) -> Placement:
        """Pick a host for a flavor."""
        return Placement(hosts[retries % len(hosts)],
                         datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))

    def set_quota(self, ctxt: Any, quota: Quota) -> Quota:
        return quota

    async def untyped(self, ctxt, value, other=None):
        return [value, other]


@pytest.fixture
async def client(relaybus_bus: relaybus.Bus) -> Any:
    async with relaybus_bus.rpc_server(Target(topic="typed", server="s"), [Scheduler()]):
        yield relaybus_bus.rpc_client(Target(topic="typed"), timeout=WAIT)


async def test_arguments_are_converted_and_results_encoded(client: Any) -> None:
    result = await client.call({}, "select", flavor={"name": "m1", "vcpus": 2},
                               hosts=["h1", "h2"], retries=1)
    assert result == {"host": "h2", "when": "2026-01-01T00:00:00Z"}


async def test_a_converted_dataclass_keeps_its_defaults(client: Any) -> None:
    """msgspec leaves defaults on the class; returned as they came, they must still show."""
    result = await client.call({}, "rebuild", request=[{"image": "cirros"}])
    assert result == [{"image": "cirros", "preserve_ephemeral": False, "tags": []}]


async def test_a_struct_can_be_sent_as_an_argument(client: Any) -> None:
    result = await client.call({}, "select", flavor=Flavor("m1", 2), hosts=["h1"])
    assert result["host"] == "h1"


@pytest.mark.parametrize("kwargs, argument, path, text", [
    ({"flavor": {"name": "m1", "vcpus": "two"}, "hosts": ["h"]}, "flavor", "$.vcpus",
     "Expected `int`, got `str`"),
    ({"flavor": {"name": "m1"}, "hosts": ["h"]}, "flavor", "$", "missing required field"),
    ({"flavor": {"name": "m1", "vcpus": 1}, "hosts": ["h", 3]}, "hosts", "$[1]",
     "Expected `str`, got `int`"),
    ({"flavor": {"name": "m1", "vcpus": 1}}, "hosts", None, "missing required argument"),
    ({"flavor": {"name": "m1", "vcpus": 1}, "hosts": [], "colour": "red"}, "colour", None,
     "unexpected argument"),
])
async def test_invalid_arguments_name_the_argument_and_path(
        client: Any, kwargs: dict, argument: str, path: str | None, text: str) -> None:
    with pytest.raises(InvalidArguments) as info:
        await client.call({}, "select", **kwargs)
    error = info.value
    assert error.method == "select" and error.argument == argument
    if path is not None:
        assert error.path == path
    assert text in str(error)
    assert isinstance(error, TypeError)


async def test_pydantic_models_work_too(client: Any) -> None:
    assert await client.call({}, "set_quota", quota={"instances": 3}) == \
        {"instances": 3, "cores": 20}
    with pytest.raises(InvalidArguments, match="quota"):
        await client.call({}, "set_quota", quota={"instances": "many"})


async def test_untyped_methods_keep_working(client: Any) -> None:
    assert await client.call({}, "untyped", value={"any": "thing"}) == [{"any": "thing"}, None]
    with pytest.raises(TypeError):
        await client.call({}, "untyped", nope=1)


class TypedListener:
    async def info(self, ctxt: Any, publisher_id: str, event_type: str,
                   payload: InstanceCreated, metadata: dict[str, Any]) -> None:
        pass


async def test_listener_payloads_are_converted_and_bad_ones_dropped(
        relaybus_bus: relaybus.Bus, relaybus_spy: Any) -> None:
    listener = relaybus_spy(TypedListener())
    async with relaybus_bus.notification_listener([Target(topic="typed_n")], [listener]):
        notifier = relaybus_bus.notifier("compute.h1", topics=["typed_n"])
        await notifier.info({}, "compute.instance.create.end", {"instance_id": "x"})
        await notifier.info({}, "compute.instance.create.end", InstanceCreated(52, "h1"))
        await listener.next_call("info")
    # after the drain: the bad one dropped
    assert [call.arguments["payload"] for call in listener.calls] == [InstanceCreated(52, "h1")]
