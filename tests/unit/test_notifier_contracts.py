"""A notifier given ``emits`` holds declared payloads to their types before sending."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
import pytest

import relaybus
from relaybus import Service, Target

pytest_plugins = ["relaybus.testing.pytest_plugin"]


@dataclasses.dataclass
class InstancePayload:
    instance_id: int
    state: str = "active"


class FlavorPayload(msgspec.Struct):
    name: str
    vcpus: int


EMITS = {"compute.instance.create.end": InstancePayload,
         "compute.instance.error": (FlavorPayload, "error")}


async def test_a_declared_payload_is_converted_and_sent_in_its_json_form(
        relaybus_bus: relaybus.Bus) -> None:
    notifier = relaybus_bus.notifier("compute.host1", driver="capture", emits=EMITS)
    await notifier.info({}, "compute.instance.create.end", {"instance_id": 52})
    await notifier.info({}, "compute.instance.create.end", InstancePayload(53, "building"))
    await notifier.error({}, "compute.instance.error", FlavorPayload("m1.tiny", 1))
    assert [m["payload"] for m in notifier.captured] == [
        {"instance_id": 52, "state": "active"},
        {"instance_id": 53, "state": "building"},
        {"name": "m1.tiny", "vcpus": 1}]


@pytest.mark.parametrize("payload, path, problem", [
    ({"instance_id": "52"}, "$.instance_id", "Expected `int`, got `str`"),
    ({}, "$", "missing required field `instance_id`"),
    (["not", "an", "object"], "$", "Expected `object`, got `array`"),
    ({"instance_id": object()}, "$", "Encoding objects of type object is unsupported"),
])
async def test_a_payload_that_breaks_its_type_is_refused_before_sending(
        relaybus_bus: relaybus.Bus, payload: Any, path: str, problem: str) -> None:
    notifier = relaybus_bus.notifier("compute.host1", driver="capture", emits=EMITS)
    with pytest.raises(relaybus.InvalidPayload) as caught:
        await notifier.info({}, "compute.instance.create.end", payload)
    assert caught.value.event_type == "compute.instance.create.end"
    assert caught.value.path == path
    assert problem in str(caught.value) and "compute.instance.create.end" in str(caught.value)
    assert isinstance(caught.value, TypeError)
    assert notifier.captured == []


async def test_a_declared_priority_is_kept(relaybus_bus: relaybus.Bus) -> None:
    notifier = relaybus_bus.notifier("compute.host1", driver="capture", emits=EMITS)
    with pytest.raises(relaybus.InvalidPayload, match="declared as a error notification"):
        await notifier.info({}, "compute.instance.error", {"name": "m1", "vcpus": 1})
    assert notifier.captured == []


async def test_undeclared_events_go_out_unchecked_and_prepare_keeps_the_contract(
        relaybus_bus: relaybus.Bus) -> None:
    notifier = relaybus_bus.notifier("compute.host1", driver="capture", emits=EMITS)
    await notifier.info({}, "compute.other", {"anything": [1, "x"]})
    assert notifier.captured[0]["payload"] == {"anything": [1, "x"]}
    with pytest.raises(relaybus.InvalidPayload):
        await notifier.prepare("compute.host2").info({}, "compute.instance.create.end", {})


@pytest.mark.parametrize("emits", [{"e": (InstancePayload,)}, {"e": (InstancePayload, "loud")}])
async def test_a_malformed_emits_is_refused(relaybus_bus: relaybus.Bus, emits: Any) -> None:
    with pytest.raises(ValueError, match=r"emits\['e'\] must be a type or \(type, priority\)"):
        relaybus_bus.notifier("p", emits=emits)


class Meter:
    async def info(self, ctxt: Any, publisher_id: str, event_type: str,
                   payload: InstancePayload, metadata: Any) -> None:
        pass


async def test_a_services_notifier_sends_to_its_topic_under_its_name(
        relaybus_bus: relaybus.Bus, relaybus_spy: Any) -> None:
    service = Service("compute", Target(topic="compute"), [], emits=EMITS,
                      notification_topic="compute-events")
    meter = relaybus_spy(Meter())
    async with relaybus_bus.notification_listener([Target(topic="compute-events")], [meter]):
        notifier = service.notifier(relaybus_bus)
        await notifier.info({}, "compute.instance.create.end", InstancePayload(7))
        with pytest.raises(relaybus.InvalidPayload):
            await notifier.info({}, "compute.instance.create.end", {"instance_id": None})
        call = await meter.next_call("info")
    assert (call.arguments["publisher_id"], call.arguments["payload"]) == \
        ("compute", InstancePayload(7))
