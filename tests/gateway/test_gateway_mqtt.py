"""The MQTT side against a real Mosquitto: topic mapping, wildcards, clients, and the ACL."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
import pytest
from firehose_support import WAIT, GatewayProcess, Mosquitto, event, need_program
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from relaybus.testing.brokers import require_broker

pytestmark = pytest.mark.broker

NOVA = [event("compute.host1", "compute.instance.create.end", {"instance_id": 1}),
        event("compute.host2", "compute.instance.delete.end", {"instance_id": 2}),
        event("scheduler.host1", "scheduler.select_destinations.end", {"host": "host1"}),
        event("compute.host1", "compute.instance.create.start", {"instance_id": 3}, "warn")]
NOVA_TOPICS = ["nova/compute.host1/compute/instance/create/end",
               "nova/compute.host2/compute/instance/delete/end",
               "nova/scheduler.host1/scheduler/select_destinations/end",
               "nova/compute.host1/compute/instance/create/start"]


@contextlib.asynccontextmanager
async def subscriber(url: str, *filters: str) -> AsyncIterator[aiomqtt.Client]:
    """An anonymous aiomqtt client subscribed (SUBACK received) to ``filters`` at QoS 1."""
    host, port = url.removeprefix("mqtt://").split(":")
    async with aiomqtt.Client(host, int(port)) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)
        yield client


async def received(client: aiomqtt.Client, count: int) -> list[aiomqtt.Message]:
    found = []
    async with asyncio.timeout(WAIT):
        async for message in client.messages:
            found.append(message)
            if len(found) == count:
                return found
    raise AssertionError("the subscription ended")


def topics_of(messages: list[aiomqtt.Message]) -> list[str]:
    return [str(m.topic) for m in messages]


async def test_events_are_published_on_hierarchical_topics(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    async with subscriber(mosquitto.anonymous_url, "nova/#") as client:
        await gateway.publish(NOVA)
        messages = await received(client, 4)
    assert topics_of(messages) == NOVA_TOPICS
    assert all(m.qos == 1 for m in messages)
    first = json.loads(messages[0].payload)  # type: ignore[arg-type]
    assert first["specversion"] == "1.0" and first["source"] == "compute.host1"
    assert first["type"] == "compute.instance.create.end"
    assert first["data"] == {"instance_id": 1} and first["firehosetopic"] == NOVA_TOPICS[0]
    stats = await gateway.stats()
    assert stats["mqtt"]["connected"] is True and stats["mqtt"]["dropped"] == 0
    assert ":***@" in stats["mqtt"]["broker"] and mosquitto.password not in json.dumps(stats)


async def test_wildcard_subscriptions(mosquitto: Mosquitto,
                                      start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    url = mosquitto.anonymous_url
    async with subscriber(url, "+/compute.host1/#") as host1, \
            subscriber(url, "nova/+/compute/instance/+/end") as ends, \
            subscriber(url, "nova/scheduler.host1/scheduler/select_destinations/end") as exact, \
            subscriber(url, "#") as everything:
        await gateway.publish(NOVA)
        assert topics_of(await received(everything, 4)) == NOVA_TOPICS
        assert topics_of(await received(host1, 2)) == [NOVA_TOPICS[0], NOVA_TOPICS[3]]
        assert topics_of(await received(ends, 2)) == NOVA_TOPICS[:2]
        assert topics_of(await received(exact, 1)) == [NOVA_TOPICS[2]]


async def test_a_topic_template_of_ones_own(mosquitto: Mosquitto,
                                            start_gateway: Callable[..., GatewayProcess],
                                            name: str) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url,
                            "--mqtt-topic", "firehose/{priority}/{bustopic}/{event_type}")
    async with subscriber(mosquitto.anonymous_url, "firehose/#") as client:
        await gateway.publish([event(name, f"{name}.created"),
                               event(name, f"{name}.failed", priority="error")])
        messages = await received(client, 2)
    assert topics_of(messages) == [f"firehose/info/notifications/{name}.created",
                                   f"firehose/error/notifications/{name}.failed"]


class PahoSubscriber:
    """A paho-mqtt client on its own thread, as the firehose's users write them."""

    def __init__(self, port: int, topic: str, transport: str = "tcp") -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.subscribed = threading.Event()
        self.got = threading.Event()
        self.expected = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, transport=transport)  # type: ignore[arg-type]
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self.messages.append((message.topic, json.loads(message.payload)))
        if len(self.messages) >= self.expected:
            self.got.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.parametrize("transport", ["tcp", "websockets"])
async def test_paho_clients_see_the_stream(mosquitto: Mosquitto,
                                           start_gateway: Callable[..., GatewayProcess],
                                           transport: str) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    port = mosquitto.port if transport == "tcp" else mosquitto.ws_port
    client = PahoSubscriber(port, "nova/#", transport)
    client.expected = 4
    try:
        assert await asyncio.to_thread(client.subscribed.wait, WAIT)
        await gateway.publish(NOVA)
        assert await asyncio.to_thread(client.got.wait, WAIT)
    finally:
        client.close()
    assert [topic for topic, _ in client.messages] == NOVA_TOPICS
    assert client.messages[1][1]["type"] == "compute.instance.delete.end"


async def test_mosquitto_sub_sees_the_stream(mosquitto: Mosquitto,
                                             start_gateway: Callable[..., GatewayProcess]) -> None:
    program = need_program("mosquitto_sub")
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    # stdbuf: line-buffered output, so its "SUBACK" line is readable as soon as it is written.
    sub = subprocess.Popen([need_program("stdbuf"), "-oL", program, "-h", "127.0.0.1",  # noqa: ASYNC220 (read line by line below)
                            "-p", str(mosquitto.port), "-t", "nova/#", "-q", "1", "-v",
                            "-C", "4", "-d"], stdout=subprocess.PIPE, text=True)
    try:
        assert sub.stdout is not None
        for line in sub.stdout:  # -d says when the subscription is in place
            if "SUBACK" in line:
                break
        await gateway.publish(NOVA)
        out, _ = await asyncio.to_thread(sub.communicate, timeout=WAIT)
    finally:
        sub.kill()
        sub.wait()
    lines = [line for line in out.splitlines() if line.startswith("nova/")]
    assert [line.split(" ", 1)[0] for line in lines] == NOVA_TOPICS
    assert json.loads(lines[0].split(" ", 1)[1])["source"] == "compute.host1"


def _anonymous_publish(port: int, topic: str) -> ReasonCode:
    """Publish at QoS 1 as an anonymous MQTT 5 client; return the broker's PUBACK reason."""
    done = threading.Event()
    reasons: list[ReasonCode] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_publish = lambda c, u, mid, reason, props: (reasons.append(reason), done.set())
    connected = threading.Event()
    client.on_connect = lambda *_: connected.set()
    client.connect("127.0.0.1", port, properties=Properties(paho.PacketTypes.CONNECT))
    client.loop_start()
    try:
        assert connected.wait(WAIT)
        client.publish(topic, b'{"forged": true}', qos=1)
        assert done.wait(WAIT)
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


async def test_the_acl_refuses_an_anonymous_publish(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway("--mqtt", mosquitto.gateway_url)
    async with subscriber(mosquitto.anonymous_url, "nova/#") as client:
        reason = await asyncio.to_thread(_anonymous_publish, mosquitto.port,
                                         "nova/compute.host1/compute/instance/create/end")
        assert reason.is_failure and reason.getName() == "Not authorized"
        # The forged message never arrives: the next one is the gateway's own.
        await gateway.publish(NOVA[0])
        (message,) = await received(client, 1)
    assert json.loads(message.payload)["source"] == "compute.host1"  # type: ignore[arg-type]
    assert b"forged" not in message.payload  # type: ignore[operator]


async def test_the_gateway_ends_with_a_clear_error_on_bad_mqtt_credentials(
        mosquitto: Mosquitto, start_gateway: Callable[..., GatewayProcess]) -> None:
    url = mosquitto.gateway_url.replace(mosquitto.password, "wrong-password")
    gateway = GatewayProcess(["--bus", "memory://", "--mqtt", url])
    with pytest.raises(AssertionError, match="refused the gateway"):
        gateway.start()
    # a transport failure: exit 5, as the README promises for every command
    assert gateway.process is not None and gateway.process.returncode == 5
    assert "wrong-password" not in gateway.output()


async def test_against_the_shared_mosquitto(start_gateway: Callable[..., GatewayProcess],
                                            name: str) -> None:
    require_broker("Mosquitto", "127.0.0.1", 1883)
    gateway = start_gateway("--mqtt", "mqtt://127.0.0.1:1883",
                            bus=f"memory://?control_exchange={name}")
    async with subscriber("mqtt://127.0.0.1:1883", f"{name}/+/compute/#") as client:
        await gateway.publish(NOVA)
        messages = await received(client, 3)
    assert topics_of(messages) == [t.replace("nova/", f"{name}/", 1)
                                   for t in (NOVA_TOPICS[0], NOVA_TOPICS[1], NOVA_TOPICS[3])]
