"""The MQTT bridge never dies or lies: broker restarts, events MQTT cannot carry, a broker
that refuses the gateway's publishes, and MQTT 5's content type, against a real Mosquitto of
the test's own."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import pytest
from firehose_support import WAIT, GatewayProcess, Mosquitto, event, ws_client, ws_events
from test_gateway_rabbit import RABBIT_URL, notify

pytestmark = pytest.mark.broker


@contextlib.asynccontextmanager
async def v5_subscriber(port: int, topic_filter: str) -> AsyncIterator[aiomqtt.Client]:
    """An anonymous MQTT 5 client subscribed (SUBACK received) to ``topic_filter``."""
    async with aiomqtt.Client("127.0.0.1", port,
                              protocol=aiomqtt.ProtocolVersion.V5) as client:
        await client.subscribe(topic_filter, qos=1)
        yield client


async def next_message(client: aiomqtt.Client) -> aiomqtt.Message:
    async with asyncio.timeout(WAIT):
        async for message in client.messages:
            return message
    raise AssertionError("the subscription ended")


async def http(gateway: GatewayProcess, path: str) -> tuple[int, Any]:
    return await asyncio.to_thread(gateway.request, "GET", path)


async def until(check: Callable[[], Any], what: str) -> None:
    """Poll the gateway's own answer until ``check`` holds (the gateway has no push for it)."""
    try:  # polling: the gateway's HTTP answers are all there is to watch
        async with asyncio.timeout(WAIT):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"the gateway never reported {what}") from None


def payload(message: aiomqtt.Message) -> dict[str, Any]:
    assert isinstance(message.payload, bytes)
    return dict(json.loads(message.payload))


async def test_mqtt5_structured_mode_has_the_cloudevents_content_type(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    async with v5_subscriber(mosquitto.port, "#") as client:
        await gateway.publish(event(name, "compute.instance.create.end", {"n": 1}))
        message = await next_message(client)
    assert message.properties is not None
    assert message.properties.ContentType == "application/cloudevents+json"  # type: ignore[attr-defined]
    assert payload(message)["source"] == name
    assert (await gateway.stats())["mqtt"]["protocol"] == "5"


async def test_a_broker_restart_is_survived_and_browsers_are_served_meanwhile(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    async with ws_client(gateway.ws_url()) as websocket:
        await asyncio.to_thread(mosquitto.stop)
        await until(lambda: _status(gateway, "/readyz", 503), "not ready\n" + gateway.output())
        status, health = await http(gateway, "/healthz")
        assert status == 200 and health["status"] == "degraded", health
        assert "not connected to the MQTT broker" in health["problems"][0]
        # The broker is down: browsers still get every event.
        await gateway.publish(event(name, "during.outage", {"n": 1}))
        (during,) = await ws_events(websocket, 1)
        assert during["type"] == "during.outage"
        await asyncio.to_thread(mosquitto.restart)
        await until(lambda: _status(gateway, "/readyz", 200), "ready again")
        async with v5_subscriber(mosquitto.port, "#") as client:
            await gateway.publish(event(name, "after.restart", {"n": 2}))
            message = await next_message(client)
            (after,) = await ws_events(websocket, 1)
    assert payload(message)["type"] == "after.restart" and after["type"] == "after.restart"
    stats = (await gateway.stats())["mqtt"]
    assert stats["reconnects"] >= 1 and stats["connected"] is True
    assert gateway.process is not None and gateway.process.poll() is None


async def _status(gateway: GatewayProcess, path: str, expected: int) -> bool:
    return (await http(gateway, path))[0] == expected


async def test_an_event_whose_topic_is_too_long_for_mqtt_is_skipped_and_counted(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess],
        exchange: str) -> None:
    # Any service on the bus may send a 70,000-character event_type (POST /publish may not).
    gateway = start_gateway("--mqtt", mosquitto.gateway_url, "--pool", f"{exchange}-firehose",
                            bus=f"{RABBIT_URL}?control_exchange={exchange}")
    huge = "x" * 70_000
    async with v5_subscriber(mosquitto.port, "#") as client, \
            ws_client(gateway.ws_url()) as websocket:
        await notify(exchange, huge, huge + "y", "small.after")
        message = await next_message(client)
        browser = await ws_events(websocket, 3)
    assert payload(message)["type"] == "small.after"
    assert [e["type"] for e in browser] == [huge, huge + "y", "small.after"]
    mqtt = (await gateway.stats())["mqtt"]
    assert mqtt["skipped_by_reason"] == {"topic-too-long": 2} and mqtt["published"] == 1
    assert gateway.output().count("skipped event") == 1  # one log line, not one per event


async def test_an_event_larger_than_the_brokers_packet_limit_is_skipped_and_counted(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    mosquitto.restart(extra="max_packet_size 4000")
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    async with v5_subscriber(mosquitto.port, "#") as client:
        await gateway.publish([event(name, "too.large", {"blob": "z" * 8000}),
                               event(name, "fits", {"blob": "z" * 100})])
        message = await next_message(client)
    assert payload(message)["type"] == "fits"
    mqtt = (await gateway.stats())["mqtt"]
    assert mqtt["skipped_by_reason"] == {"packet-too-large": 1}
    assert mqtt["reconnects"] == 0 and mqtt["connected"] is True


async def test_a_broker_refusing_the_publishes_is_counted_and_fails_readyz(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess], name: str) -> None:
    # Anonymous clients may only read (deploy/mosquitto/acl): every publish is refused.
    gateway = start_gateway("--mqtt", mosquitto.anonymous_url)
    await until(lambda: _status(gateway, "/readyz", 200), "ready")
    await gateway.publish([event(name, "refused.one"), event(name, "refused.two")])
    await until(lambda: _refused(gateway, 2), "two refusals")
    status, ready = await http(gateway, "/readyz")
    assert status == 503 and ready["status"] == "not-ready"
    assert "refuses the gateway's publishes" in ready["problems"][0]
    assert "Not authorized" in ready["problems"][0]
    status, health = await http(gateway, "/healthz")
    assert status == 200 and health["status"] == "degraded" and health["mqtt_reaching"] is False
    assert (await gateway.stats())["mqtt"]["published"] == 0


async def _refused(gateway: GatewayProcess, count: int) -> bool:
    return bool((await gateway.stats())["mqtt"]["refused"] >= count)
